//! Small histories whose answer is known by hand, each named for what it shows.

mod common;

use common::*;
use lincheck::{check, check_key, CheckOptions, KeyResult, Verdict};

// Linearizable.

#[test]
fn sequential_history_is_linearizable() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .ok(1, 20, 30, get("x"), read(Some("1")))
        .ok(2, 40, 50, append("x", "a"), appended(Some(2)))
        .ok(1, 60, 70, get("x"), read(Some("1a")))
        .ok(2, 80, 90, delete("x"), deleted(true))
        .ok(1, 100, 110, get("x"), read(None))
        .history();
    assert_linearizable(&history);
}

#[test]
fn empty_history_is_linearizable() {
    let report = check(&Script::new().history(), &CheckOptions::default());
    assert!(report.verdict.is_linearizable());
    assert_eq!(report.keys_checked, 0);
    assert_eq!(report.steps, 0);
}

#[test]
fn read_overlapping_two_writes_may_see_either_value() {
    for seen in ["1", "2"] {
        let history = Script::new()
            .ok(1, 0, 100, put("x", "1"), written())
            .ok(2, 0, 100, put("x", "2"), written())
            .ok(3, 10, 90, get("x"), read(Some(seen)))
            // After both writes, either may have won.
            .ok(3, 200, 210, get("x"), read(Some(seen)))
            .history();
        assert_linearizable(&history);
    }
}

#[test]
fn read_overlapping_a_write_may_see_the_old_or_new_value() {
    for seen in [None, Some("1")] {
        let history = Script::new()
            .ok(1, 0, 100, put("x", "1"), written())
            .ok(2, 50, 60, get("x"), read(seen))
            .history();
        assert_linearizable(&history);
    }
}

#[test]
fn unknown_write_that_took_effect_is_seen_by_a_later_read() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .unknown(2, 20, 30, put("x", "2"))
        // Long after the client gave up, the write shows.
        .ok(1, 100, 110, get("x"), read(Some("2")))
        .history();
    assert_linearizable(&history);
}

#[test]
fn unknown_write_that_never_took_effect_is_not_required() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .unknown(2, 20, 30, put("x", "2"))
        .ok(1, 100, 110, get("x"), read(Some("1")))
        .ok(1, 120, 130, get("x"), read(Some("1")))
        .history();
    assert_linearizable(&history);
}

#[test]
fn unknown_write_may_take_effect_long_after_it_gave_up() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .unknown(2, 20, 30, append("x", "+a"))
        .ok(1, 100, 110, get("x"), read(Some("1")))
        .ok(1, 200, 210, get("x"), read(Some("1+a")))
        .history();
    assert_linearizable(&history);
}

#[test]
fn failed_entries_are_ignored() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .failed(2, 20, 30, put("x", "2"))
        .ok(1, 100, 110, get("x"), read(Some("1")))
        .history();
    assert_linearizable(&history);
    let report = check(&history, &CheckOptions::default());
    assert_eq!(report.operations_checked, 2);
}

#[test]
fn cas_success_and_failure_follow_the_current_value() {
    let history = Script::new()
        .ok(1, 0, 10, cas("x", None, "1"), swapped())
        .ok(1, 20, 30, cas("x", Some("1"), "2"), swapped())
        .ok(2, 40, 50, cas("x", Some("1"), "3"), not_swapped(Some("2")))
        .ok(2, 60, 70, cas("x", None, "4"), not_swapped(Some("2")))
        .ok(1, 80, 90, get("x"), read(Some("2")))
        .ok(1, 100, 110, delete("x"), deleted(true))
        .ok(2, 120, 130, cas("x", Some("2"), "5"), not_swapped(None))
        .ok(2, 140, 150, cas("x", None, "6"), swapped())
        .ok(1, 160, 170, get("x"), read(Some("6")))
        .history();
    assert_linearizable(&history);
}

#[test]
fn delete_reports_whether_the_key_existed() {
    let history = Script::new()
        .ok(1, 0, 10, delete("x"), deleted(false))
        .ok(1, 20, 30, put("x", "1"), written())
        .ok(2, 40, 50, delete("x"), deleted(true))
        .ok(1, 60, 70, get("x"), read(None))
        .ok(2, 80, 90, delete("x"), deleted(false))
        .history();
    assert_linearizable(&history);
}

#[test]
fn empty_value_is_present_not_absent() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", ""), written())
        .ok(1, 20, 30, get("x"), read(Some("")))
        .ok(1, 40, 50, delete("x"), deleted(true))
        .history();
    assert_linearizable(&history);
    let absent_read = Script::new()
        .ok(1, 0, 10, put("x", ""), written())
        .ok(1, 20, 30, get("x"), read(None))
        .history();
    assert_not_linearizable(&absent_read);
}

#[test]
fn multiple_keys_are_checked_independently() {
    let history = Script::new()
        .ok(1, 0, 100, put("x", "1"), written())
        .ok(2, 0, 100, put("y", "1"), written())
        .ok(3, 10, 20, get("y"), read(None))
        .ok(3, 30, 40, get("x"), read(Some("1")))
        .ok(1, 110, 120, append("y", "z"), appended(Some(2)))
        .ok(2, 130, 140, get("y"), read(Some("1z")))
        .history();
    let report = check(&history, &CheckOptions::default());
    assert!(report.verdict.is_linearizable());
    assert_eq!(report.keys_checked, 2);
    assert_eq!(report.operations_checked, 6);
    let keys: Vec<&str> = report.per_key.iter().map(|key| key.key.as_str()).collect();
    assert_eq!(keys, ["x", "y"]);
    assert!(report
        .per_key
        .iter()
        .all(|key| key.result == KeyResult::Linearizable));
    assert_eq!(
        report.steps,
        report.per_key.iter().map(|key| key.steps).sum::<u64>()
    );
}

#[test]
fn return_and_invoke_at_the_same_nanosecond_are_concurrent() {
    // The read is invoked at the very nanosecond the write returns: either order is allowed.
    let tie = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .ok(2, 10, 20, get("x"), read(None))
        .history();
    assert_linearizable(&tie);
    let after = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .ok(2, 11, 20, get("x"), read(None))
        .history();
    assert_not_linearizable(&after);
}

#[test]
fn check_key_answers_for_one_key() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .ok(2, 20, 30, get("x"), read(Some("2")))
        .history();
    let (result, steps) = check_key(&history.entries, &CheckOptions::default());
    assert_eq!(result, KeyResult::NotLinearizable);
    assert!(steps > 0);
}

// Not linearizable.

#[test]
fn stale_read_after_a_completed_write_is_detected() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .ok(1, 20, 30, put("x", "2"), written())
        .ok(2, 40, 50, get("x"), read(Some("1")))
        .history();
    let violation = assert_not_linearizable(&history);
    assert_eq!(violation.key, "x");
    assert_eq!(violation.stuck_on, [3]);
    assert!(violation.linearized_prefix.ends_with(&[2]), "{violation}");
}

#[test]
fn lost_append_is_detected() {
    let history = Script::new()
        .ok(1, 0, 10, append("x", "a"), appended(Some(1)))
        .ok(2, 20, 30, append("x", "b"), appended(Some(2)))
        .ok(1, 40, 50, get("x"), read(Some("a")))
        .history();
    let violation = assert_not_linearizable(&history);
    assert_eq!(violation.stuck_on, [3]);
}

#[test]
fn duplicated_append_is_detected() {
    let history = Script::new()
        .ok(1, 0, 10, append("x", "a"), appended(None))
        .ok(2, 5, 30, append("x", "b"), appended(None))
        .ok(1, 40, 50, get("x"), read(Some("abb")))
        .history();
    assert_not_linearizable(&history);
}

#[test]
fn unknown_append_cannot_apply_twice() {
    let history = Script::new()
        .unknown(1, 0, 10, append("x", "a"))
        .ok(1, 40, 50, get("x"), read(Some("aa")))
        .history();
    assert_not_linearizable(&history);
}

#[test]
fn append_length_must_match_the_value() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "héllo"), written())
        // "héllo" is 6 bytes, not 5 characters: after appending "!" the length is 7.
        .ok(1, 20, 30, append("x", "!"), appended(Some(6)))
        .history();
    assert_not_linearizable(&history);
    let right = Script::new()
        .ok(1, 0, 10, put("x", "héllo"), written())
        .ok(1, 20, 30, append("x", "!"), appended(Some(7)))
        .history();
    assert_linearizable(&right);
}

#[test]
fn read_of_a_never_written_value_is_detected() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .ok(2, 0, 30, get("x"), read(Some("42")))
        .history();
    let violation = assert_not_linearizable(&history);
    assert_eq!(violation.stuck_on, [2]);
}

#[test]
fn cas_reporting_swapped_without_the_expected_value_is_detected() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .ok(2, 20, 30, cas("x", Some("7"), "8"), swapped())
        .history();
    assert_not_linearizable(&history);
}

#[test]
fn cas_reporting_a_wrong_current_value_is_detected() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .ok(2, 20, 30, cas("x", Some("7"), "8"), not_swapped(Some("3")))
        .history();
    assert_not_linearizable(&history);
}

#[test]
fn delete_reporting_existed_on_an_absent_key_is_detected() {
    let history = Script::new()
        .ok(1, 0, 10, delete("x"), deleted(true))
        .history();
    assert_not_linearizable(&history);
}

#[test]
fn read_seeing_an_unknown_write_then_losing_it_is_detected() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), written())
        .unknown(2, 20, 30, put("x", "2"))
        .ok(1, 100, 110, get("x"), read(Some("2")))
        .ok(1, 120, 130, get("x"), read(Some("1")))
        .history();
    assert_not_linearizable(&history);
}

#[test]
fn output_of_the_wrong_kind_is_never_linearizable() {
    let history = Script::new()
        .ok(1, 0, 10, put("x", "1"), read(None))
        .history();
    assert_not_linearizable(&history);
    assert!(history.validate().is_err());
}

#[test]
fn violation_names_the_failing_key_while_other_keys_are_fine() {
    let history = Script::new()
        .ok(1, 0, 10, put("a", "1"), written())
        .ok(2, 20, 30, get("a"), read(Some("1")))
        .ok(1, 0, 10, put("m", "1"), written())
        .ok(1, 20, 30, put("m", "2"), written())
        .ok(2, 40, 50, get("m"), read(Some("1")))
        .ok(3, 0, 10, put("z", "1"), written())
        .ok(3, 20, 30, get("z"), read(Some("1")))
        .history();
    let violation = assert_not_linearizable(&history);
    assert_eq!(violation.key, "m");
    assert!(violation.history.iter().all(|entry| entry.key() == "m"));
    let report = check(&history, &CheckOptions::default());
    let results: Vec<(&str, KeyResult)> = report
        .per_key
        .iter()
        .map(|key| (key.key.as_str(), key.result))
        .collect();
    assert_eq!(
        results,
        [
            ("a", KeyResult::Linearizable),
            ("m", KeyResult::NotLinearizable),
            ("z", KeyResult::Linearizable)
        ]
    );
}

#[test]
fn first_failing_key_in_key_order_is_reported() {
    let history = Script::new()
        .ok(1, 0, 10, put("q", "1"), written())
        .ok(2, 20, 30, get("q"), read(Some("2")))
        .ok(1, 0, 10, put("b", "1"), written())
        .ok(2, 20, 30, get("b"), read(Some("2")))
        .history();
    let report = check(&history, &CheckOptions::default());
    let Verdict::NotLinearizable(violation) = report.verdict else {
        panic!("not linearizable")
    };
    assert_eq!(violation.key, "b");
}

#[test]
fn same_history_gives_the_same_report() {
    let history = Script::new()
        .ok(1, 0, 100, put("x", "1"), written())
        .ok(2, 0, 100, put("x", "2"), written())
        .ok(3, 0, 100, append("x", "3"), appended(None))
        .ok(4, 50, 150, get("x"), read(Some("13")))
        .ok(4, 200, 210, get("x"), read(Some("2")))
        .history();
    let first = check(&history, &CheckOptions::default());
    let second = check(&history, &CheckOptions::default());
    assert_eq!(first, second);
}
