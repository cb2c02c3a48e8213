//! The counterexample is small, a subset of the original, and still fails on its own.

mod common;

use common::*;
use lincheck::simulate::{simulate, SimulationOptions};
use lincheck::{check, CheckOptions, History};

/// 300 rounds on key "x" of a put by one client and reads of it by two others, with traffic on
/// other keys; a stale read placed in round `stale_round`; 300 more rounds after it.
fn long_history_with_a_stale_read(stale_round: u64) -> History {
    let mut script = Script::new();
    let rounds = 600;
    for round in 0..rounds {
        let start_ns = round * 1_000;
        let value = format!("v{round}");
        script = script
            .ok(1, start_ns, start_ns + 100, put("x", &value), written())
            .ok(
                2,
                start_ns + 200,
                start_ns + 400,
                get("x"),
                read(Some(&value)),
            )
            .ok(
                3,
                start_ns + 300,
                start_ns + 500,
                get("x"),
                read(Some(&value)),
            )
            .ok(
                4,
                start_ns + 100,
                start_ns + 600,
                append("y", "+"),
                appended(Some(round + 1)),
            )
            .ok(5, start_ns + 700, start_ns + 800, get("z"), read(None));
        if round == stale_round {
            // Invoked after this round's put completed, yet it sees the previous round's value.
            let stale = format!("v{}", round - 1);
            script = script.ok(
                6,
                start_ns + 150,
                start_ns + 190,
                get("x"),
                read(Some(&stale)),
            );
        }
    }
    script.history()
}

#[test]
fn stale_read_in_a_long_history_minimizes_to_a_few_entries() {
    let history = long_history_with_a_stale_read(300);
    assert_eq!(history.len(), 3001);
    let violation = assert_not_linearizable(&history);
    assert_eq!(violation.key, "x");
    assert_eq!(violation.full_key_operations, 1801);
    assert!(
        violation.history.len() <= 5,
        "minimized to {} entries:\n{violation}",
        violation.history.len()
    );
    // The stale read is the last entry written for round 300, and the entry the search is stuck on.
    let stale_id = history
        .entries
        .iter()
        .find(|entry| entry.client == 6)
        .map(|entry| entry.id)
        .expect("the stale read");
    eprintln!("{violation}");
    assert_eq!(violation.stuck_on, [stale_id]);
}

#[test]
fn minimized_history_is_a_subset_that_still_fails() {
    let history = long_history_with_a_stale_read(10);
    let violation = assert_not_linearizable(&history);
    // `assert_not_linearizable` checks the subset and the re-check; this makes it explicit.
    let ids: Vec<u64> = history.entries.iter().map(|entry| entry.id).collect();
    assert!(violation
        .history
        .iter()
        .all(|entry| ids.contains(&entry.id)));
    let minimized = History {
        entries: violation.history.clone(),
    };
    assert!(check(&minimized, &CheckOptions::default())
        .verdict
        .is_not_linearizable());
}

#[test]
fn minimized_history_is_sorted_by_invocation() {
    let history = long_history_with_a_stale_read(42);
    let violation = assert_not_linearizable(&history);
    let times: Vec<(u64, u64)> = violation
        .history
        .iter()
        .map(|entry| (entry.invoke_ns, entry.id))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted);
}

#[test]
fn lost_append_in_a_concurrent_history_minimizes_and_still_fails() {
    // A simulated append-heavy history on one key, with one read's value losing a suffix.
    let options = SimulationOptions {
        seed: 11,
        operations: 400,
        keys: 1,
        clients: 4,
        mix: lincheck::simulate::OperationMix {
            get: 40,
            put: 0,
            delete: 0,
            append: 60,
            cas: 0,
        },
        unknown_percent: 0,
        failed_percent: 0,
        ..SimulationOptions::default()
    };
    let mut history = simulate(&options);
    let reads: Vec<usize> = (0..history.len())
        .filter(|&index| {
            matches!(
                history.entries[index].operation,
                lincheck::Operation::Get { .. }
            )
        })
        .collect();
    // Drop the first suffix from a read near the end: its append completed long before.
    let target = reads[reads.len() - 3];
    let lincheck::Outcome::Ok {
        output: lincheck::Output::Get { value: Some(value) },
    } = &mut history.entries[target].outcome
    else {
        panic!("reads answer with a value here");
    };
    let first_suffix_end = value.find(';').expect("a suffix") + 1;
    value.replace_range(..first_suffix_end, "");
    let violation = assert_not_linearizable(&history);
    assert!(
        violation.history.len() < 400,
        "{} entries",
        violation.history.len()
    );
    eprintln!("{violation}");
    assert!(violation.stuck_on.contains(&(target as u64)), "{violation}");
}
