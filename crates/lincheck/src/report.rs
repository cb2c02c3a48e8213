//! The checker's entry points and what they report.
//!
//! ```text
//!   History ──split by key──▶ key "a": entries ──search──▶ KeyResult ─┐
//!                             key "b": entries ──search──▶ KeyResult ─┼─▶ Report { verdict, per_key }
//!                             ...     (on two or more threads)         │
//!   first failing key, in key order ──minimize──▶ Violation ──────────┘
//! ```
//!
//! Splitting is sound and complete because every operation touches one key and linearizability
//! is local (Herlihy & Wing, 1990, §3.4): a history is linearizable iff each key's is.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::history::{Entry, History};
use crate::minimize::explain;
use crate::search::search;

/// How hard the checker may work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOptions {
    /// Search steps one key may use before its result is [`KeyResult::BudgetExhausted`]. Steps
    /// are counted, not timed, so the same history gets the same answer on any machine. A step
    /// costs tens of nanoseconds.
    pub steps_max_per_key: u64,
}

impl Default for CheckOptions {
    /// 50 million steps a key: about a second or two of search on a slow machine.
    fn default() -> CheckOptions {
        CheckOptions {
            steps_max_per_key: 50_000_000,
        }
    }
}

/// The result of searching one key's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyResult {
    /// An order of the key's operations exists that respects real time and the sequential model.
    Linearizable,
    /// No such order exists.
    NotLinearizable,
    /// The step budget ran out before either answer.
    BudgetExhausted,
}

/// What the checker found for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReport {
    /// The key.
    pub key: String,
    /// The key's entries checked (failed ones left out).
    pub operations: usize,
    /// Search steps used for the key (minimization not counted).
    pub steps: u64,
    /// The most bytes the key's search held at once (its failure cache and interned values),
    /// estimated from what it held, so as deterministic as the steps; minimization not counted.
    /// The search gives up (an unknown result) at 512 MiB.
    #[serde(default)]
    pub memory_bytes: u64,
    /// The answer.
    pub result: KeyResult,
}

/// A minimized counterexample: a small history of one key that is not linearizable, and what
/// the search got stuck on.
///
/// The history is a subset of the key's entries, sorted by invocation time. Minimization may have
/// turned some answered entries into [`crate::Outcome::Unknown`] ones (their reason says why):
/// that only loosens the history, so it still proves the original wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The key whose history is not linearizable.
    pub key: String,
    /// The smallest failing sub-history found, of that key only, sorted by invocation time.
    pub history: Vec<Entry>,
    /// Ids of the longest sequence of entries the search managed to linearize, in order.
    pub linearized_prefix: Vec<u64>,
    /// Ids of the answered entries that could come next after that prefix by real time, none of
    /// which leads anywhere: most often the model rejects them outright in the state the prefix
    /// leaves (the text and HTML views say which).
    pub stuck_on: Vec<u64>,
    /// How many entries the key had before minimizing.
    pub full_key_operations: usize,
}

/// The checker's answer for the whole history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Every key's history is linearizable.
    Linearizable,
    /// The first failing key, in key order, with its minimized counterexample.
    NotLinearizable(Violation),
    /// Some key ran out of budget and none failed: no answer.
    Unknown {
        /// The keys whose search ran out of budget, in order.
        keys: Vec<String>,
    },
}

impl Verdict {
    /// Whether the history is linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }

    /// Whether the history was proven not linearizable.
    pub fn is_not_linearizable(&self) -> bool {
        matches!(self, Verdict::NotLinearizable(_))
    }

    /// Whether the checker ran out of budget without an answer.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Verdict::Unknown { .. })
    }

    /// The counterexample, when the history is not linearizable.
    pub fn violation(&self) -> Option<&Violation> {
        match self {
            Verdict::NotLinearizable(violation) => Some(violation),
            _ => None,
        }
    }
}

/// What [`check`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The answer.
    pub verdict: Verdict,
    /// How many distinct keys had entries to check.
    pub keys_checked: usize,
    /// How many entries were checked: all but the failed ones.
    pub operations_checked: usize,
    /// Search steps used, summed over keys (minimization not counted).
    pub steps: u64,
    /// One report a key, in key order.
    pub per_key: Vec<KeyReport>,
}

/// No more threads than this, whatever the machine has: keys are usually few and the memoization
/// caches are the memory cost of each thread.
const THREADS_MAX: usize = 8;

/// Checks a whole history for linearizability: splits it by key, searches each key (on up to
/// [`std::thread::available_parallelism`] threads), and minimizes the first failing key.
/// Deterministic: the same history and options give the same report.
pub fn check(history: &History, options: &CheckOptions) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in &history.entries {
        if !entry.outcome.is_failed() {
            by_key.entry(entry.key()).or_default().push(entry);
        }
    }
    let mut keys: Vec<(&str, Vec<&Entry>)> = by_key.into_iter().collect();
    for (_, entries) in &mut keys {
        // One canonical order, shared with the minimization (see `explain`).
        entries.sort_by_key(|entry| (entry.invoke_ns, entry.id));
    }
    let results = run_keys(&keys, options);
    assert_eq!(results.len(), keys.len());

    let per_key: Vec<KeyReport> = keys
        .iter()
        .zip(&results)
        .map(|((key, entries), searched)| KeyReport {
            key: (*key).to_owned(),
            operations: entries.len(),
            steps: searched.steps,
            memory_bytes: searched.memory_bytes,
            result: searched.result,
        })
        .collect();
    let failing = keys
        .iter()
        .zip(&results)
        .find(|(_, searched)| searched.result == KeyResult::NotLinearizable);
    let verdict = if let Some(((key, entries), searched)) = failing {
        Verdict::NotLinearizable(explain(key, entries, options, searched.steps))
    } else {
        let exhausted: Vec<String> = per_key
            .iter()
            .filter(|report| report.result == KeyResult::BudgetExhausted)
            .map(|report| report.key.clone())
            .collect();
        if exhausted.is_empty() {
            Verdict::Linearizable
        } else {
            Verdict::Unknown { keys: exhausted }
        }
    };
    Report {
        verdict,
        keys_checked: keys.len(),
        operations_checked: keys.iter().map(|(_, entries)| entries.len()).sum(),
        steps: results.iter().map(|searched| searched.steps).sum(),
        per_key,
    }
}

/// Checks the entries of one key (failed ones are skipped): the result and the steps used.
///
/// # Panics
/// When the entries touch more than one key: that is a caller bug, and the answer would be
/// meaningless.
pub fn check_key(entries: &[Entry], options: &CheckOptions) -> (KeyResult, u64) {
    let entries: Vec<&Entry> = entries.iter().collect();
    let searched = search_key(&entries, options);
    (searched.result, searched.steps)
}

/// What searching one key gave.
#[derive(Clone, Copy, Debug)]
struct Searched {
    result: KeyResult,
    steps: u64,
    memory_bytes: u64,
}

fn search_key(entries: &[&Entry], options: &CheckOptions) -> Searched {
    let one_key = entries
        .first()
        .is_none_or(|first| entries.iter().all(|entry| entry.key() == first.key()));
    // A read-and-append key is usually settled at once by the order its longest read gives
    // (see `append_log`); when that shows nothing, the search decides.
    if one_key && crate::append_log::witness(entries) {
        return Searched {
            result: KeyResult::Linearizable,
            steps: entries.len() as u64,
            memory_bytes: 0,
        };
    }
    let outcome = search(entries, options.steps_max_per_key, false);
    Searched {
        result: outcome.result,
        steps: outcome.steps,
        memory_bytes: outcome.memory_bytes,
    }
}

/// Searches every key, keys handed out one at a time to the threads so a slow key does not hold
/// up the rest. Results go back in key order, so the thread schedule cannot change the report.
fn run_keys(keys: &[(&str, Vec<&Entry>)], options: &CheckOptions) -> Vec<Searched> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, THREADS_MAX)
        .min(keys.len());
    let run_one = |entries: &[&Entry]| search_key(entries, options);
    if threads <= 1 {
        return keys.iter().map(|(_, entries)| run_one(entries)).collect();
    }
    let next_key = AtomicUsize::new(0);
    let mut results: Vec<Option<Searched>> = vec![None; keys.len()];
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next_key.fetch_add(1, Ordering::Relaxed);
                        let Some((_, entries)) = keys.get(index) else {
                            break;
                        };
                        done.push((index, run_one(entries)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            for (index, result) in worker.join().expect("a key's search panicked") {
                assert!(
                    results[index].is_none(),
                    "invariant: each key searched once"
                );
                results[index] = Some(result);
            }
        }
    });
    results
        .into_iter()
        .map(|result| result.expect("invariant: every key searched"))
        .collect()
}
