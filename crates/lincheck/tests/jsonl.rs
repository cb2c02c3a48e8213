//! Histories survive a JSON Lines round trip, and bad input is an error naming its line.

mod common;

use common::*;
use lincheck::simulate::{simulate, SimulationOptions};
use lincheck::{History, HistoryError};

#[test]
fn jsonl_round_trip_keeps_every_entry() {
    let history = simulate(&SimulationOptions {
        seed: 3,
        operations: 500,
        unknown_percent: 10,
        failed_percent: 10,
        ..SimulationOptions::default()
    });
    let mut bytes = Vec::new();
    history.write_jsonl(&mut bytes).expect("writing to memory");
    let text = String::from_utf8(bytes.clone()).expect("JSON is UTF-8");
    assert_eq!(text.lines().count(), 500);
    let read = History::read_jsonl(bytes.as_slice()).expect("reading back");
    assert_eq!(read, history);
}

#[test]
fn jsonl_format_is_one_tagged_object_a_line() {
    let history = Script::new()
        .ok(7, 1, 2, cas("k", None, "v"), not_swapped(Some("w")))
        .unknown(8, 3, 4, get("k"))
        .history();
    let mut bytes = Vec::new();
    history.write_jsonl(&mut bytes).expect("writing to memory");
    let text = String::from_utf8(bytes).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"id":1,"client":7,"operation":{"kind":"cas","key":"k","expect":null,"value":"v"},"invoke_ns":1,"complete_ns":2,"outcome":{"status":"ok","output":{"kind":"cas","swapped":false,"current":"w"}}}"#
    );
    assert_eq!(
        lines[1],
        r#"{"id":2,"client":8,"operation":{"kind":"get","key":"k"},"invoke_ns":3,"complete_ns":4,"outcome":{"status":"unknown","reason":"timeout"}}"#
    );
}

#[test]
fn blank_lines_are_skipped() {
    let text = "\n{\"id\":1,\"client\":1,\"operation\":{\"kind\":\"put\",\"key\":\"k\",\"value\":\"v\"},\"invoke_ns\":1,\"complete_ns\":2,\"outcome\":{\"status\":\"ok\",\"output\":{\"kind\":\"put\"}}}\n\n";
    let history = History::read_jsonl(text.as_bytes()).expect("valid");
    assert_eq!(history.len(), 1);
}

/// An outcome that needs no output, for lines whose outcome does not matter.
const FAILED: &str = r#"{"status":"failed","reason":"x"}"#;

/// A JSON line of a get of "k".
fn get_line(id: u64, invoke_ns: u64, complete_ns: u64, outcome: &str) -> String {
    format!(
        r#"{{"id":{id},"client":1,"operation":{{"kind":"get","key":"k"}},"invoke_ns":{invoke_ns},"complete_ns":{complete_ns},"outcome":{outcome}}}"#
    )
}

fn read_error(text: &str) -> HistoryError {
    History::read_jsonl(text.as_bytes()).expect_err("the history is malformed")
}

#[test]
fn well_formed_line_helper_reads() {
    let history = History::read_jsonl(get_line(1, 1, 2, FAILED).as_bytes()).expect("valid");
    assert_eq!(history.len(), 1);
}

#[test]
fn malformed_line_gives_an_error_with_its_line_number() {
    let good = get_line(1, 1, 2, FAILED);
    let error = read_error(&format!(
        "{good}\n\n{{\"id\": 2, \"client\": oops}}\n{good}\n"
    ));
    assert!(
        matches!(error, HistoryError::Parse { line: 3, .. }),
        "{error:?}"
    );
    assert_eq!(error.line(), 3);
    assert!(error.to_string().starts_with("line 3: "), "{error}");
}

#[test]
fn unknown_kind_gives_an_error_with_its_line_number() {
    let error = read_error(&get_line(1, 1, 2, FAILED).replace("\"get\"", "\"increment\""));
    assert_eq!(error.line(), 1);
    assert!(error.to_string().contains("increment"), "{error}");
}

#[test]
fn duplicate_id_gives_an_error_with_its_line_number() {
    let line = get_line(5, 1, 2, FAILED);
    let error = read_error(&format!("{line}\n{line}\n"));
    let is_duplicate =
        matches!(&error, HistoryError::Invalid { line: 2, reason } if reason.contains("duplicate"));
    assert!(is_duplicate, "{error:?}");
}

#[test]
fn completion_before_invocation_gives_an_error() {
    let answered = r#"{"status":"ok","output":{"kind":"get","value":null}}"#;
    let error = read_error(&get_line(1, 9, 2, answered));
    assert_eq!(error.line(), 1);
    assert!(
        error.to_string().contains("before its invocation"),
        "{error}"
    );
}

#[test]
fn mismatched_output_kind_gives_an_error() {
    let error = read_error(&get_line(
        1,
        1,
        2,
        r#"{"status":"ok","output":{"kind":"put"}}"#,
    ));
    assert!(error.to_string().contains("get"), "{error}");
}

#[test]
fn invalid_utf8_gives_an_error_not_a_panic() {
    let mut bytes = get_line(1, 1, 2, FAILED).into_bytes();
    bytes.extend_from_slice(b"\n\xff\xfe\n");
    let error = History::read_jsonl(bytes.as_slice()).expect_err("not UTF-8");
    assert!(
        matches!(error, HistoryError::Io { line: 2, .. }),
        "{error:?}"
    );
}

#[test]
fn keys_lists_each_key_once_in_order() {
    let history = Script::new()
        .ok(1, 0, 1, put("b", "1"), written())
        .ok(1, 2, 3, put("a", "1"), written())
        .ok(1, 4, 5, get("b"), read(Some("1")))
        .history();
    assert_eq!(history.keys().into_iter().collect::<Vec<_>>(), ["a", "b"]);
}
