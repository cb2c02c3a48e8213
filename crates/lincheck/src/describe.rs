//! Words for entries, shared by the text table ([`Violation`]'s `Display`) and the HTML view.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use crate::history::{Entry, Operation, Outcome, Output};
use crate::model::{apply_entry, KeyState};
use crate::report::Violation;

/// Values longer than this many characters are shown abbreviated in the table.
const TABLE_VALUE_CHARS_MAX: usize = 48;

/// Values longer than this many characters are shown abbreviated in short labels.
const LABEL_VALUE_CHARS_MAX: usize = 16;

/// Nanoseconds as milliseconds with all six decimals, since real-time order can hinge on a
/// difference of a few nanoseconds.
pub(crate) fn format_ms(nanoseconds: u64) -> String {
    format!("{}.{:06}", nanoseconds / 1_000_000, nanoseconds % 1_000_000)
}

/// `text` itself when short; otherwise its start and end around an ellipsis, with its length,
/// since in a long appended value the end is usually what matters.
pub(crate) fn abbreviate(text: &str, chars_max: usize) -> String {
    let chars = text.chars().count();
    if chars <= chars_max {
        return text.to_owned();
    }
    let half = chars_max / 2;
    let head: String = text.chars().take(half).collect();
    let tail: String = text.chars().skip(chars - half).collect();
    format!("{head}…{tail} ({} bytes)", text.len())
}

/// A value quoted as Rust would (so spaces and control characters are visible), or `absent`.
fn quoted(value: Option<&str>) -> String {
    match value {
        Some(text) => format!("{:?}", abbreviate(text, TABLE_VALUE_CHARS_MAX)),
        None => "absent".to_owned(),
    }
}

/// A value bare and short for a label, `∅` when absent.
fn bare(value: Option<&str>) -> String {
    value.map_or_else(
        || "∅".to_owned(),
        |text| abbreviate(text, LABEL_VALUE_CHARS_MAX),
    )
}

/// The operation alone, as in `put "3"` or `cas "1" → "2"`; the key is left out, since a
/// counterexample is about one key.
pub(crate) fn operation_text(operation: &Operation) -> String {
    match operation {
        Operation::Get { .. } => "get".to_owned(),
        Operation::Put { value, .. } => format!("put {}", quoted(Some(value))),
        Operation::Delete { .. } => "delete".to_owned(),
        Operation::Append { suffix, .. } => format!("append {}", quoted(Some(suffix))),
        Operation::Cas { expect, value, .. } => {
            format!(
                "cas {} → {}",
                quoted(expect.as_deref()),
                quoted(Some(value))
            )
        }
    }
}

/// How the entry ended, as in `ok "3"`, `ok, not swapped, found absent`, `unknown: timeout`.
pub(crate) fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ok { output } => match output {
            Output::Get { value } => format!("ok {}", quoted(value.as_deref())),
            Output::Put => "ok".to_owned(),
            Output::Delete { existed: true } => "ok, existed".to_owned(),
            Output::Delete { existed: false } => "ok, was absent".to_owned(),
            Output::Append {
                length: Some(length),
            } => format!("ok, length {length} bytes"),
            Output::Append { length: None } => "ok".to_owned(),
            Output::Cas { swapped: true, .. } => "ok, swapped".to_owned(),
            Output::Cas {
                swapped: false,
                current,
            } => {
                format!("ok, not swapped, found {}", quoted(current.as_deref()))
            }
        },
        Outcome::Failed { reason } => format!("failed: {reason}"),
        Outcome::Unknown { reason } => format!("unknown: {reason}"),
    }
}

/// A short label for a bar in the picture, as in `put x=3`, `get → 3`, `append +t7`,
/// `cas 1→2 ✓`; an unknown outcome ends in `?`.
pub(crate) fn short_label(entry: &Entry) -> String {
    let key = abbreviate(entry.key(), LABEL_VALUE_CHARS_MAX);
    let output = match &entry.outcome {
        Outcome::Ok { output } => Some(output),
        _ => None,
    };
    let label = match (&entry.operation, output) {
        (Operation::Get { .. }, Some(Output::Get { value })) => {
            format!("get → {}", bare(value.as_deref()))
        }
        (Operation::Get { .. }, _) => "get → ?".to_owned(),
        (Operation::Put { value, .. }, _) => format!("put {key}={}", bare(Some(value))),
        (Operation::Delete { .. }, Some(Output::Delete { existed: true })) => "delete ✓".to_owned(),
        (Operation::Delete { .. }, Some(Output::Delete { existed: false })) => {
            "delete ∅".to_owned()
        }
        (Operation::Delete { .. }, _) => "delete".to_owned(),
        (Operation::Append { suffix, .. }, _) => format!("append +{}", bare(Some(suffix))),
        (Operation::Cas { expect, value, .. }, output) => {
            let mark = match output {
                Some(Output::Cas { swapped: true, .. }) => " ✓".to_owned(),
                Some(Output::Cas {
                    swapped: false,
                    current,
                }) => {
                    format!(" ✗ ({})", bare(current.as_deref()))
                }
                _ => String::new(),
            };
            format!(
                "cas {}→{}{mark}",
                bare(expect.as_deref()),
                bare(Some(value))
            )
        }
    };
    if entry.outcome.is_unknown() {
        format!("{label} ?")
    } else {
        label
    }
}

/// When the entry completed, for a table: milliseconds, `?` for an unknown outcome (it may still
/// take effect), `never` for a failed one.
pub(crate) fn completion_text(entry: &Entry) -> String {
    match entry.outcome {
        Outcome::Ok { .. } => format_ms(entry.complete_ns),
        Outcome::Unknown { .. } => "?".to_owned(),
        Outcome::Failed { .. } => "never".to_owned(),
    }
}

/// The key's state after the violation's linearized prefix, by the reference model; `None` when
/// the prefix names entries the history lacks or the model rejects it (a hand-built violation).
pub(crate) fn state_after_prefix(violation: &Violation) -> Option<KeyState> {
    let by_id: HashMap<u64, &Entry> = violation
        .history
        .iter()
        .map(|entry| (entry.id, entry))
        .collect();
    let mut state: KeyState = None;
    for id in &violation.linearized_prefix {
        state = apply_entry(state.as_deref(), by_id.get(id)?)?;
    }
    Some(state)
}

/// Why a stuck entry cannot come next: the model rejects it in `state`, or it fits but nothing
/// can follow it.
pub(crate) fn stuck_reason(state: Option<&KeyState>, entry: &Entry) -> &'static str {
    match state.map(|state| apply_entry(state.as_deref(), entry)) {
        Some(None) => "contradicts that state",
        Some(Some(_)) => "fits that state, but no order continues from it",
        None => "could not replay the prefix",
    }
}

/// The key's state for a sentence: quoted, or `absent`.
pub(crate) fn state_text(state: &KeyState) -> String {
    quoted(state.as_deref())
}

fn ids_text(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Violation {
    /// A table of the minimized history (id, client, invoke and completion in ms, operation,
    /// outcome), then the longest linearized prefix and the candidates the search got stuck on.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            formatter,
            "key {:?} is not linearizable: {} of its {} operations still fail after minimizing",
            self.key,
            self.history.len(),
            self.full_key_operations
        )?;
        let mut rows: Vec<&Entry> = self.history.iter().collect();
        rows.sort_by_key(|entry| (entry.invoke_ns, entry.id));
        let operations: Vec<String> = rows
            .iter()
            .map(|entry| operation_text(&entry.operation))
            .collect();
        let operation_width = operations
            .iter()
            .map(|text| text.chars().count())
            .max()
            .unwrap_or(0)
            .max(9);
        writeln!(
            formatter,
            "{:>8}  {:>6}  {:>15}  {:>15}  {:<operation_width$}  outcome",
            "id", "client", "invoke ms", "complete ms", "operation"
        )?;
        for (entry, operation) in rows.iter().zip(&operations) {
            writeln!(
                formatter,
                "{:>8}  {:>6}  {:>15}  {:>15}  {:<operation_width$}  {}",
                entry.id,
                entry.client,
                format_ms(entry.invoke_ns),
                completion_text(entry),
                operation,
                outcome_text(&entry.outcome)
            )?;
        }
        write!(
            formatter,
            "linearized prefix: {}",
            ids_text(&self.linearized_prefix)
        )?;
        if let Some(state) = state_after_prefix(self) {
            write!(formatter, " (leaves the key {})", state_text(&state))?;
        }
        let state = state_after_prefix(self);
        let mut stuck = String::new();
        for id in &self.stuck_on {
            if let Some(entry) = self.history.iter().find(|entry| entry.id == *id) {
                let _ = write!(
                    stuck,
                    "\n  {id}: {}, {} ({})",
                    operation_text(&entry.operation),
                    outcome_text(&entry.outcome),
                    stuck_reason(state.as_ref(), entry)
                );
            }
        }
        write!(formatter, "\nstuck on: {}{stuck}", ids_text(&self.stuck_on))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_ms_keeps_nanoseconds() {
        assert_eq!(format_ms(0), "0.000000");
        assert_eq!(format_ms(1_234_567), "1.234567");
        assert_eq!(format_ms(12_000_000_000), "12000.000000");
    }

    #[test]
    fn abbreviate_keeps_both_ends_and_respects_characters() {
        assert_eq!(abbreviate("short", 10), "short");
        let long = "ééééééééééxyz";
        let shown = abbreviate(long, 6);
        assert!(shown.starts_with("ééé…"), "{shown}");
        assert!(shown.contains("xyz"), "{shown}");
        assert!(
            shown.ends_with(&format!("({} bytes)", long.len())),
            "{shown}"
        );
    }

    #[test]
    fn short_labels_read_like_the_operations() {
        let entry = Entry::sketch;
        let ok = |output| Outcome::Ok { output };
        let key = || "x".to_owned();
        assert_eq!(
            short_label(&entry(
                Operation::Put {
                    key: key(),
                    value: "3".into()
                },
                ok(Output::Put)
            )),
            "put x=3"
        );
        assert_eq!(
            short_label(&entry(
                Operation::Get { key: key() },
                ok(Output::Get {
                    value: Some("3".into())
                })
            )),
            "get → 3"
        );
        assert_eq!(
            short_label(&entry(
                Operation::Append {
                    key: key(),
                    suffix: "t7".into()
                },
                Outcome::Unknown {
                    reason: "timeout".into()
                }
            )),
            "append +t7 ?"
        );
        assert_eq!(
            short_label(&entry(
                Operation::Cas {
                    key: key(),
                    expect: Some("1".into()),
                    value: "2".into()
                },
                ok(Output::Cas {
                    swapped: true,
                    current: None
                })
            )),
            "cas 1→2 ✓"
        );
        assert_eq!(
            short_label(&entry(
                Operation::Cas {
                    key: key(),
                    expect: None,
                    value: "2".into()
                },
                ok(Output::Cas {
                    swapped: false,
                    current: Some("5".into())
                })
            )),
            "cas ∅→2 ✗ (5)"
        );
    }
}
