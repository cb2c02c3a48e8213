//! The text table and the HTML page show the counterexample faithfully and safely.

mod common;

use common::*;
use lincheck::{render_html, Violation};

fn stale_read_violation() -> Violation {
    let history = Script::new()
        .ok(1, 1_000_000, 2_000_000, put("x", "1"), written())
        .ok(1, 3_000_000, 4_000_000, put("x", "2"), written())
        .unknown(3, 3_500_000, 9_000_000, append("x", "+u"))
        .ok(2, 5_000_000, 6_000_000, get("x"), read(Some("1")))
        .history();
    assert_not_linearizable(&history)
}

#[test]
fn display_prints_a_table_with_the_prefix_and_the_stuck_entries() {
    let violation = stale_read_violation();
    let text = violation.to_string();
    assert!(text.contains("key \"x\" is not linearizable"), "{text}");
    assert!(text.contains("invoke ms"), "{text}");
    assert!(text.contains("5.000000"), "invoke time in ms: {text}");
    assert!(text.contains("get"), "{text}");
    assert!(text.contains("ok \"1\""), "{text}");
    assert!(text.contains("linearized prefix: 2"), "{text}");
    assert!(text.contains("stuck on: 4"), "{text}");
    assert!(text.contains("contradicts that state"), "{text}");
}

#[test]
fn display_shows_unknown_completion_as_a_question_mark() {
    let history = Script::new()
        .unknown(1, 0, 10, put("x", "1"))
        .ok(2, 20, 30, get("x"), read(Some("1")))
        .ok(2, 40, 50, get("x"), read(None))
        .history();
    let violation = assert_not_linearizable(&history);
    let text = violation.to_string();
    let unknown_row = text
        .lines()
        .find(|line| line.contains("put"))
        .expect("the put's row");
    assert!(unknown_row.contains('?'), "{unknown_row}");
    assert!(unknown_row.contains("unknown: timeout"), "{unknown_row}");
}

#[test]
fn display_lists_rows_by_invocation_time() {
    let text = stale_read_violation().to_string();
    let rows: Vec<&str> = text
        .lines()
        .skip(2)
        .take_while(|line| !line.starts_with("linearized"))
        .collect();
    let invokes: Vec<f64> = rows
        .iter()
        .map(|row| {
            row.split_whitespace()
                .nth(2)
                .expect("invoke column")
                .parse()
                .expect("a number")
        })
        .collect();
    assert!(invokes.windows(2).all(|pair| pair[0] <= pair[1]), "{text}");
}

#[test]
fn html_is_self_contained_with_an_svg_timeline() {
    let html = render_html(&stale_read_violation());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"));
    assert!(html.contains("</html>"));
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains("src="), "no external assets");
    assert!(!html.contains("href="), "no external assets");
    assert!(
        html.contains("client 1") && html.contains("client 2"),
        "one lane per client"
    );
    assert!(
        html.contains("<title>entry 4, client 2"),
        "tooltips with details"
    );
    assert!(html.contains("get → 1"), "bar labels");
    assert!(html.contains("1. put x=2"), "the prefix is numbered");
    assert!(
        html.contains("stroke-dasharray"),
        "the unknown entry is dashed"
    );
    assert!(html.contains("#ef9a9a"), "the stuck entry is red");
    assert!(html.contains("time (ms)"), "a time axis");
}

#[test]
fn html_escapes_keys_and_values() {
    let key = "<k&\"'>";
    let history = Script::new()
        .ok(1, 0, 10, put(key, "<script>alert(1)</script>"), written())
        .ok(2, 20, 30, get(key), read(Some("</svg>")))
        .history();
    let violation = assert_not_linearizable(&history);
    let html = render_html(&violation);
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("</svg>\""), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert_eq!(
        html.matches("</svg>").count(),
        1,
        "only the picture's own closing tag"
    );
    assert!(html.contains("&lt;k&amp;"), "{html}");
}
