//! Shorthands for writing histories by hand in tests.

#![allow(dead_code)]

use lincheck::{
    check, CheckOptions, Entry, History, Operation, Outcome, Output, Verdict, Violation,
};

/// A history written entry by entry; ids are 1, 2, 3, ... in the order written.
#[derive(Default)]
pub struct Script {
    entries: Vec<Entry>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    fn push(
        mut self,
        client: u64,
        invoke_ns: u64,
        complete_ns: u64,
        operation: Operation,
        outcome: Outcome,
    ) -> Script {
        let id = self.entries.len() as u64 + 1;
        self.entries.push(Entry {
            id,
            client,
            operation,
            invoke_ns,
            complete_ns,
            outcome,
        });
        self
    }

    /// An answered entry.
    pub fn ok(
        self,
        client: u64,
        invoke_ns: u64,
        complete_ns: u64,
        operation: Operation,
        output: Output,
    ) -> Script {
        let outcome = Outcome::Ok { output };
        self.push(client, invoke_ns, complete_ns, operation, outcome)
    }

    /// An entry whose client gave up at `give_up_ns` without knowing whether it took effect.
    pub fn unknown(
        self,
        client: u64,
        invoke_ns: u64,
        give_up_ns: u64,
        operation: Operation,
    ) -> Script {
        let outcome = Outcome::Unknown {
            reason: "timeout".into(),
        };
        self.push(client, invoke_ns, give_up_ns, operation, outcome)
    }

    /// An entry that definitely did not take effect.
    pub fn failed(
        self,
        client: u64,
        invoke_ns: u64,
        complete_ns: u64,
        operation: Operation,
    ) -> Script {
        let outcome = Outcome::Failed {
            reason: "refused".into(),
        };
        self.push(client, invoke_ns, complete_ns, operation, outcome)
    }

    pub fn history(self) -> History {
        History {
            entries: self.entries,
        }
    }
}

pub fn get(key: &str) -> Operation {
    Operation::Get { key: key.into() }
}

pub fn put(key: &str, value: &str) -> Operation {
    Operation::Put {
        key: key.into(),
        value: value.into(),
    }
}

pub fn delete(key: &str) -> Operation {
    Operation::Delete { key: key.into() }
}

pub fn append(key: &str, suffix: &str) -> Operation {
    Operation::Append {
        key: key.into(),
        suffix: suffix.into(),
    }
}

pub fn cas(key: &str, expect: Option<&str>, value: &str) -> Operation {
    Operation::Cas {
        key: key.into(),
        expect: expect.map(Into::into),
        value: value.into(),
    }
}

/// The output of a get.
pub fn read(value: Option<&str>) -> Output {
    Output::Get {
        value: value.map(Into::into),
    }
}

pub fn written() -> Output {
    Output::Put
}

pub fn deleted(existed: bool) -> Output {
    Output::Delete { existed }
}

pub fn appended(length: Option<u64>) -> Output {
    Output::Append { length }
}

pub fn swapped() -> Output {
    Output::Cas {
        swapped: true,
        current: None,
    }
}

pub fn not_swapped(current: Option<&str>) -> Output {
    Output::Cas {
        swapped: false,
        current: current.map(Into::into),
    }
}

/// Checks with the default options and asserts the verdict is linearizable.
pub fn assert_linearizable(history: &History) {
    let report = check(history, &CheckOptions::default());
    assert!(
        report.verdict.is_linearizable(),
        "expected linearizable, got {:#?}",
        report.verdict
    );
}

/// Checks with the default options, asserts the verdict is not linearizable, and returns the
/// violation after checking it is well formed.
pub fn assert_not_linearizable(history: &History) -> Violation {
    let report = check(history, &CheckOptions::default());
    let Verdict::NotLinearizable(violation) = report.verdict else {
        panic!("expected not linearizable, got {:#?}", report.verdict);
    };
    assert_violation_well_formed(history, &violation);
    violation
}

/// The violation's history is a subset of the original's entries of its key (ids), still fails
/// on its own, and its prefix and stuck entries are among its ids.
pub fn assert_violation_well_formed(history: &History, violation: &Violation) {
    assert!(!violation.history.is_empty());
    for entry in &violation.history {
        let original = history
            .entries
            .iter()
            .find(|original| original.id == entry.id)
            .unwrap_or_else(|| panic!("entry {} is not in the original history", entry.id));
        assert_eq!(original.operation, entry.operation);
        assert_eq!(original.key(), violation.key);
        assert_eq!(original.invoke_ns, entry.invoke_ns);
        assert!(
            entry.outcome == original.outcome || entry.outcome.is_unknown(),
            "entry {} changed other than by becoming unknown",
            entry.id
        );
    }
    let ids: Vec<u64> = violation.history.iter().map(|entry| entry.id).collect();
    for id in violation
        .linearized_prefix
        .iter()
        .chain(&violation.stuck_on)
    {
        assert!(ids.contains(id), "id {id} is not in the minimized history");
    }
    assert!(
        !violation.stuck_on.is_empty(),
        "a failing search is stuck on something"
    );
    let minimized = History {
        entries: violation.history.clone(),
    };
    let recheck = check(&minimized, &CheckOptions::default());
    assert!(
        recheck.verdict.is_not_linearizable(),
        "the minimized history must fail on its own"
    );
    let full_key = history
        .entries
        .iter()
        .filter(|entry| entry.key() == violation.key && !entry.outcome.is_failed())
        .count();
    assert_eq!(violation.full_key_operations, full_key);
}

/// The number in environment variable `name`, if set; a value that is not a number fails the
/// test, naming the variable.
pub fn environment_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")),
    )
}
