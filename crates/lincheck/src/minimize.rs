//! Shrinking a failing key's history to a counterexample a person can read.
//!
//! Every reduction here is sound: when the reduced history fails, so does the original. Two kinds
//! qualify.
//!
//! 1. **Prefix cut.** For a time `T`, `H_T` keeps the entries invoked at or before `T`; those
//!    answered after `T` become unknown. Given a linearization of `H`, its operations with points
//!    at or before `T` form one of `H_T` (an entry invoked after `T` has its point after `T`;
//!    one answered by `T` has its point by `T`; the unknown ones left over never took effect).
//!    So `H` linearizable implies `H_T` linearizable, and the same argument on `H_T` makes
//!    failure monotone in `T`: binary search finds the smallest failing cut.
//! 2. **Starting from a put.** Pick an answered put `w`. Drop every answered entry that completed
//!    before `w` was invoked, and make unknown every answered entry overlapping `w` whose answer
//!    depends on the state (anything but a put). In a linearization of `H`, the dropped entries
//!    all come before `w`, and `w` sets the state whatever came before; so the linearization
//!    restricted to what is kept is valid from `w` on, and before `w` it holds only unknown
//!    entries and puts, which any state accepts. `H` linearizable therefore implies the reduced
//!    history linearizable. Failure is not monotone in the choice of `w`, so the latest puts
//!    are tried first, at most [`ANCHOR_ATTEMPTS_MAX`] of them.
//! 3. **Dropping read-only entries.** An entry that cannot change the state (a get, a delete
//!    that found nothing, a compare-and-swap that did not swap) can be removed from any
//!    linearization without disturbing the rest. Other writes, answered or unknown, cannot be
//!    dropped: a later read may depend on them.
//!
//! Each re-check has a step budget of its own, a few times what the key's own check took: a
//! reduction that makes the search much harder (dropping the reads that pinned down unknown
//! appends, say) is not worth taking. A re-check that runs out counts as passing, so the
//! reduction it tested is not taken. The whole minimization is bounded too, in steps and in
//! re-checks (see the constants).

use std::collections::HashSet;

use crate::describe::format_ms;
use crate::history::{Entry, Operation, Outcome};
use crate::report::{CheckOptions, KeyResult, Violation};
use crate::search::search;

/// A re-check may use this many times the steps of the key's own check...
const RECHECK_STEPS_FACTOR: u64 = 2;

/// ...or this many steps, when more: a check that failed fast says little about its variants.
const RECHECK_STEPS_MIN: u64 = 50_000;

/// All re-checks together may use this many times the steps of the key's own check...
const MINIMIZE_STEPS_FACTOR: u64 = 8;

/// ...or this many steps, when more.
const MINIMIZE_STEPS_MIN: u64 = 1_000_000;

/// Neither may exceed this many times the per-key budget.
const MINIMIZE_BUDGETS_MAX: u64 = 4;

/// Minimization re-checks the history at most this many times.
const MINIMIZE_CHECKS_MAX: u64 = 10_000;

/// At most this many puts are tried as the start of the history.
const ANCHOR_ATTEMPTS_MAX: usize = 64;

/// What minimization may still spend.
struct Budget {
    steps_max_per_check: u64,
    steps_remaining: u64,
    checks_remaining: u64,
}

impl Budget {
    /// Whether `entries` is proven not linearizable within the budget left. Out of budget counts
    /// as not proven.
    fn fails(&mut self, entries: &[Entry]) -> bool {
        if self.checks_remaining == 0 || self.steps_remaining == 0 {
            return false;
        }
        let steps_max = self.steps_max_per_check.min(self.steps_remaining);
        let references: Vec<&Entry> = entries.iter().collect();
        let outcome = search(&references, steps_max, false);
        assert!(outcome.steps <= self.steps_remaining);
        self.steps_remaining -= outcome.steps;
        self.checks_remaining -= 1;
        outcome.result == KeyResult::NotLinearizable
    }
}

/// Minimizes the failing history of `key`, whose check took `check_steps`, and explains where
/// the search got stuck.
///
/// # Panics
/// When `entries` is linearizable within the budget: callers explain only failing keys.
pub(crate) fn explain(
    key: &str,
    entries: &[&Entry],
    options: &CheckOptions,
    check_steps: u64,
) -> Violation {
    let steps_limit = options
        .steps_max_per_key
        .saturating_mul(MINIMIZE_BUDGETS_MAX);
    let mut budget = Budget {
        steps_max_per_check: check_steps
            .saturating_mul(RECHECK_STEPS_FACTOR)
            .max(RECHECK_STEPS_MIN)
            .min(options.steps_max_per_key),
        steps_remaining: check_steps
            .saturating_mul(MINIMIZE_STEPS_FACTOR)
            .max(MINIMIZE_STEPS_MIN)
            .min(steps_limit),
        checks_remaining: MINIMIZE_CHECKS_MAX,
    };
    let mut full: Vec<Entry> = entries
        .iter()
        .filter(|entry| !entry.outcome.is_failed())
        .map(|&entry| entry.clone())
        .collect();
    // The order in which entries reach the search breaks ties between equal timestamps, so
    // every re-check, and [`crate::check`] before them, sees the entries in this one order: the
    // search path, and with it the steps a verdict needs, are then the same each time.
    full.sort_by_key(|entry| (entry.invoke_ns, entry.id));
    let cut = cut_prefix(full, &mut budget);
    let anchored = start_from_put(cut, &mut budget);
    let history = drop_read_only(anchored, &mut budget);

    // Searching the same entries with the same budget takes the same path, so the verdict the
    // minimization saw holds here too; the trace only records the deepest point.
    let references: Vec<&Entry> = history.iter().collect();
    let traced = search(&references, options.steps_max_per_key, true);
    assert_eq!(
        traced.result,
        KeyResult::NotLinearizable,
        "precondition: the key fails"
    );
    let prefix: Vec<&Entry> = traced
        .longest_prefix
        .iter()
        .map(|&index| &history[index])
        .collect();
    let stuck_on = stuck_candidates(&history, &prefix);
    Violation {
        key: key.to_owned(),
        linearized_prefix: prefix.iter().map(|entry| entry.id).collect(),
        stuck_on,
        full_key_operations: entries.len(),
        history,
    }
}

/// The smallest prefix cut that still fails (see the module comment), or `entries` itself.
fn cut_prefix(entries: Vec<Entry>, budget: &mut Budget) -> Vec<Entry> {
    let mut cut_times_ns: Vec<u64> = entries
        .iter()
        .filter(|entry| entry.outcome.is_ok())
        .map(|entry| entry.complete_ns.max(entry.invoke_ns))
        .collect();
    cut_times_ns.sort_unstable();
    cut_times_ns.dedup();

    // Invariant: the smallest failing cut is at an index in low..=high, where index
    // cut_times_ns.len() stands for the whole history (known to fail).
    let (mut low, mut high) = (0, cut_times_ns.len());
    let mut best = None;
    while low < high {
        let middle = low + (high - low) / 2;
        let candidate = cut_at(&entries, cut_times_ns[middle]);
        if budget.fails(&candidate) {
            best = Some(candidate);
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let result = best.unwrap_or(entries);
    debug_assert!(!result.is_empty());
    result
}

/// `H_T`: the entries invoked at or before `cut_ns`, those answered after it made unknown.
fn cut_at(entries: &[Entry], cut_ns: u64) -> Vec<Entry> {
    entries
        .iter()
        .filter(|entry| entry.invoke_ns <= cut_ns)
        .map(|entry| {
            let mut entry = entry.clone();
            if entry.outcome.is_ok() && entry.complete_ns > cut_ns {
                entry.outcome = Outcome::Unknown {
                    reason: format!(
                        "answered at {} ms, after the cut at {} ms: output ignored",
                        format_ms(entry.complete_ns),
                        format_ms(cut_ns)
                    ),
                };
            }
            entry
        })
        .collect()
}

/// The history reduced to start from the latest put for which it still fails (see the module
/// comment), or `entries` itself.
fn start_from_put(entries: Vec<Entry>, budget: &mut Budget) -> Vec<Entry> {
    let mut puts: Vec<usize> = (0..entries.len())
        .filter(|&index| {
            matches!(entries[index].operation, Operation::Put { .. })
                && entries[index].outcome.is_ok()
        })
        .collect();
    puts.sort_by_key(|&index| std::cmp::Reverse((entries[index].invoke_ns, index)));
    for anchor in puts.into_iter().take(ANCHOR_ATTEMPTS_MAX) {
        let candidate = start_at(&entries, anchor);
        if candidate.len() < entries.len() && budget.fails(&candidate) {
            return candidate;
        }
    }
    entries
}

/// The entries from the put `anchor` on: those answered before its invocation dropped, the
/// answered ones overlapping it whose answer depends on the state made unknown.
fn start_at(entries: &[Entry], anchor_index: usize) -> Vec<Entry> {
    let anchor = &entries[anchor_index];
    let anchor_complete_ns = anchor.complete_ns.max(anchor.invoke_ns);
    entries
        .iter()
        .enumerate()
        .filter(|(_, entry)| {
            let precedes =
                entry.outcome.is_ok() && entry.complete_ns.max(entry.invoke_ns) < anchor.invoke_ns;
            !precedes
        })
        .map(|(index, entry)| {
            let mut entry = entry.clone();
            let overlaps = entry.invoke_ns <= anchor_complete_ns;
            let state_independent = matches!(entry.operation, Operation::Put { .. });
            if index != anchor_index && overlaps && entry.outcome.is_ok() && !state_independent {
                entry.outcome = Outcome::Unknown {
                    reason: format!(
                        "overlaps put {} where the minimized history starts: output ignored",
                        anchor.id
                    ),
                };
            }
            entry
        })
        .collect()
}

/// Drops read-only entries while the rest still fails: first all at once, then in halves,
/// quarters, and so on down to one at a time (a light form of delta debugging), since most
/// reads in a failing history are irrelevant and dropping them together saves re-checks.
fn drop_read_only(mut entries: Vec<Entry>, budget: &mut Budget) -> Vec<Entry> {
    // Later entries first: a read near the end is the likeliest to be irrelevant to a violation
    // the prefix cut placed at the end.
    let mut droppable: Vec<u64> = entries
        .iter()
        .rev()
        .filter(|entry| entry.is_read_only())
        .map(|entry| entry.id)
        .collect();
    let mut chunk = droppable.len();
    while chunk > 0 && !droppable.is_empty() {
        let mut start = 0;
        while start < droppable.len() {
            let end = (start + chunk).min(droppable.len());
            let removing: HashSet<u64> = droppable[start..end].iter().copied().collect();
            // Ids should be unique, but only read-only entries may go even if they are not.
            let candidate: Vec<Entry> = entries
                .iter()
                .filter(|entry| !(entry.is_read_only() && removing.contains(&entry.id)))
                .cloned()
                .collect();
            if budget.fails(&candidate) {
                entries = candidate;
                droppable.drain(start..end);
            } else {
                start = end;
            }
        }
        chunk /= 2;
    }
    entries
}

/// The answered entries that could be linearized right after `prefix` by real time: invoked no
/// later than the earliest answer still owed. The search found no way on from any of them (most
/// often the model rejects them outright in the state the prefix leaves). Unknown entries are
/// left out: they are never required.
fn stuck_candidates(history: &[Entry], prefix: &[&Entry]) -> Vec<u64> {
    let linearized: HashSet<u64> = prefix.iter().map(|entry| entry.id).collect();
    let pending: Vec<&Entry> = history
        .iter()
        .filter(|entry| entry.outcome.is_ok() && !linearized.contains(&entry.id))
        .collect();
    let deadline_ns = pending
        .iter()
        .map(|entry| entry.complete_ns.max(entry.invoke_ns))
        .min()
        .expect("invariant: a failing search leaves an answered entry pending");
    let stuck: Vec<u64> = pending
        .iter()
        .filter(|entry| entry.invoke_ns <= deadline_ns)
        .map(|entry| entry.id)
        .collect();
    assert!(
        !stuck.is_empty(),
        "invariant: the entry owing the earliest answer is a candidate"
    );
    stuck
}
