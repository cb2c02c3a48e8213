//! The family of one-key histories with many interchangeable unknown deletes
//! (`lincheck::simulate::unknown_deletes_history`): the search must decide each, right, and in
//! a number of steps that grows like the square of the number of deletes, not exponentially.
//! Before its failure cache was exact and identical unknown entries were used in invocation
//! order, ten deletes took 11 million steps and twelve ran out of the default budget.

mod common;

use common::{assert_linearizable, assert_not_linearizable};
use lincheck::simulate::{unknown_deletes_history, FinalRead};
use lincheck::{check, CheckOptions, History, Outcome};

const SIZES: [usize; 5] = [1, 10, 20, 25, 100];

/// Steps the search may take for `unknown_deletes` deletes: measured 1,662 for 20 and 32,302 for
/// 100 (about 3.2 n²); an exponential search passes this bound by 20.
fn steps_max(unknown_deletes: usize) -> u64 {
    20 * (unknown_deletes as u64).pow(2) + 1_000
}

#[test]
fn the_history_has_the_documented_shape() {
    let history = unknown_deletes_history(20, FinalRead::Overwritten);
    assert_eq!(history.len(), 62);
    history.validate().expect("a well-formed history");
    let unknown = history
        .entries
        .iter()
        .filter(|entry| entry.outcome.is_unknown())
        .count();
    assert_eq!(unknown, 20);
    assert_eq!(history.keys().len(), 1);
}

/// The search decided `history` (of `size` unknown deletes) within [`steps_max`] steps.
fn assert_decided_in_few_steps(history: &History, size: usize) {
    let report = check(history, &CheckOptions::default());
    assert!(
        report.steps <= steps_max(size),
        "{size} unknown deletes took {} steps",
        report.steps
    );
}

#[test]
fn final_read_of_a_value_that_may_be_written_last_is_linearizable() {
    for size in SIZES {
        let history = unknown_deletes_history(size, FinalRead::Linearizable);
        assert_linearizable(&history);
        assert_decided_in_few_steps(&history, size);
    }
}

#[test]
fn final_read_of_an_overwritten_value_is_not_linearizable() {
    for size in SIZES {
        let history = unknown_deletes_history(size, FinalRead::Overwritten);
        let violation = assert_not_linearizable(&history);
        // The counterexample keeps the stale read.
        let final_read_id = history.entries.last().expect("entries").id;
        assert!(
            violation
                .history
                .iter()
                .any(|entry| entry.id == final_read_id && entry.outcome.is_ok()),
            "{size}: {violation}"
        );
        assert_decided_in_few_steps(&history, size);
    }
}

/// One delete too few for the gets that find the key absent: each needs a delete of its own.
#[test]
fn a_get_of_absent_without_a_delete_left_is_not_linearizable() {
    let mut history = unknown_deletes_history(20, FinalRead::Linearizable);
    let dropped = history
        .entries
        .iter()
        .position(|entry| entry.outcome.is_unknown())
        .expect("an unknown delete");
    history.entries[dropped].outcome = Outcome::Failed {
        reason: "refused".to_owned(),
    };
    assert_not_linearizable(&history);
}
