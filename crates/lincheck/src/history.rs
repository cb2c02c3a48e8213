//! The recorded history: what each client asked, when, and what it was told.
//!
//! A history is stored as JSON Lines, one [`Entry`] a line, so a test harness can append to it as
//! operations complete and a crash loses at most the last line.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a client asked the key-value store to do. Every operation touches exactly one key, which
/// is what lets the checker split a history by key (P-compositionality).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operation {
    /// Read the key's value.
    Get {
        /// The key read.
        key: String,
    },
    /// Set the key's value, creating the key when absent.
    Put {
        /// The key written.
        key: String,
        /// The new value.
        value: String,
    },
    /// Remove the key.
    Delete {
        /// The key removed.
        key: String,
    },
    /// Concatenate `suffix` to the key's value; an absent key counts as the empty string.
    Append {
        /// The key appended to.
        key: String,
        /// The bytes added at the end.
        suffix: String,
    },
    /// Compare-and-swap: set `value` only when the current value equals `expect`.
    Cas {
        /// The key swapped.
        key: String,
        /// The value the key must hold for the swap; `None` means the key must be absent.
        expect: Option<String>,
        /// The value written when the swap happens.
        value: String,
    },
}

impl Operation {
    /// The key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            Operation::Get { key }
            | Operation::Put { key, .. }
            | Operation::Delete { key }
            | Operation::Append { key, .. }
            | Operation::Cas { key, .. } => key,
        }
    }

    /// The operation's kind as a lowercase word (`get`, `put`, ...), as spelled in JSON.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Operation::Get { .. } => "get",
            Operation::Put { .. } => "put",
            Operation::Delete { .. } => "delete",
            Operation::Append { .. } => "append",
            Operation::Cas { .. } => "cas",
        }
    }
}

/// What the store answered to a completed operation. Its kind must match the operation's kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Output {
    /// The value read; `None` means the key was absent.
    Get {
        /// The value read, if the key was present.
        value: Option<String>,
    },
    /// The put was applied.
    Put,
    /// The delete was applied.
    Delete {
        /// Whether the key was present before the delete.
        existed: bool,
    },
    /// The append was applied.
    Append {
        /// The value's length in bytes after the append, when the server reported it; `None`
        /// leaves it unchecked.
        length: Option<u64>,
    },
    /// The compare-and-swap was evaluated.
    Cas {
        /// Whether the value was swapped.
        swapped: bool,
        /// When not swapped: the value found (`None` = absent), which must match the model.
        /// Ignored when swapped.
        current: Option<String>,
    },
}

impl Output {
    /// The output's kind as a lowercase word, matching [`Operation::kind_name`].
    pub fn kind_name(&self) -> &'static str {
        match self {
            Output::Get { .. } => "get",
            Output::Put => "put",
            Output::Delete { .. } => "delete",
            Output::Append { .. } => "append",
            Output::Cas { .. } => "cas",
        }
    }
}

/// How an operation ended, from the client's point of view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The store answered.
    Ok {
        /// The answer.
        output: Output,
    },
    /// Definitely did not take effect (for example, rejected before reaching the store): the
    /// checker drops it.
    Failed {
        /// Why, for the report.
        reason: String,
    },
    /// May or may not have taken effect (for example, a timeout): its completion is +infinity and
    /// its output unconstrained.
    Unknown {
        /// Why, for the report.
        reason: String,
    },
}

impl Outcome {
    /// Whether the store answered.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    /// Whether the operation definitely did not take effect.
    pub fn is_failed(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }

    /// Whether the operation may or may not have taken effect.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Outcome::Unknown { .. })
    }
}

/// One operation of the history, from invocation to completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Unique in the history; reports name entries by it.
    pub id: u64,
    /// The process or session that issued it; a client issues one operation at a time.
    pub client: u64,
    /// What was asked.
    pub operation: Operation,
    /// Monotonic nanoseconds since the history started, taken before sending the request.
    pub invoke_ns: u64,
    /// When the answer (or the give-up) arrived. For [`Outcome::Unknown`] the checker treats the
    /// completion as +infinity, since the operation may still take effect later.
    pub complete_ns: u64,
    /// How it ended.
    pub outcome: Outcome,
}

impl Entry {
    /// The key the entry's operation touches.
    pub fn key(&self) -> &str {
        self.operation.key()
    }

    /// Whether the entry can be dropped from a failing history without the smaller history
    /// failing where the original would pass: it cannot have changed the key's value. That holds
    /// for any get, and for a delete that found the key absent or a compare-and-swap that did not
    /// swap, as long as the store said so.
    pub fn is_read_only(&self) -> bool {
        match (&self.operation, &self.outcome) {
            (Operation::Get { .. }, _) => true,
            (
                Operation::Delete { .. },
                Outcome::Ok {
                    output: Output::Delete { existed },
                },
            ) => !existed,
            (
                Operation::Cas { .. },
                Outcome::Ok {
                    output: Output::Cas { swapped, .. },
                },
            ) => !swapped,
            _ => false,
        }
    }
}

#[cfg(test)]
impl Entry {
    /// An entry from 0 to 1 ns of client 0, for unit tests that care only about what it did.
    pub(crate) fn sketch(operation: Operation, outcome: Outcome) -> Entry {
        Entry {
            id: 1,
            client: 0,
            operation,
            invoke_ns: 0,
            complete_ns: 1,
            outcome,
        }
    }
}

/// Why a history could not be read or is malformed. Every variant names the 1-based line (for
/// [`History::read_jsonl`]) or entry position (for [`History::validate`]).
#[derive(Debug, Error)]
pub enum HistoryError {
    /// The reader failed, or the line is not UTF-8.
    #[error("line {line}: cannot read the history: {source}")]
    Io {
        /// The 1-based line number.
        line: usize,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The line is not a JSON history entry.
    #[error("line {line}: not a history entry: {source}")]
    Parse {
        /// The 1-based line number.
        line: usize,
        /// The JSON error, with its column.
        #[source]
        source: serde_json::Error,
    },
    /// The entry parses but contradicts the history's rules.
    #[error("line {line}: {reason}")]
    Invalid {
        /// The 1-based line number (or entry position).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl HistoryError {
    /// The 1-based line number (or entry position) the error is about.
    pub fn line(&self) -> usize {
        match self {
            HistoryError::Io { line, .. }
            | HistoryError::Parse { line, .. }
            | HistoryError::Invalid { line, .. } => *line,
        }
    }
}

/// A whole history: every entry of every client and key, in any order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The entries, in any order; the checker sorts by time itself.
    pub entries: Vec<Entry>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Adds an entry at the end.
    pub fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    /// How many entries the history holds, failed ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the history holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The distinct keys the history touches, in order.
    pub fn keys(&self) -> BTreeSet<&str> {
        self.entries.iter().map(Entry::key).collect()
    }

    /// Reads a JSON Lines history: one [`Entry`] object a line; blank lines are skipped. The
    /// entries are then validated as by [`History::validate`], with line numbers.
    pub fn read_jsonl(reader: impl BufRead) -> Result<History, HistoryError> {
        let mut history = History::new();
        let mut lines_of_entries = Vec::new();
        for (index, line) in reader.lines().enumerate() {
            let line_number = index + 1;
            let text = line.map_err(|source| HistoryError::Io {
                line: line_number,
                source,
            })?;
            if text.trim().is_empty() {
                continue;
            }
            let entry: Entry =
                serde_json::from_str(&text).map_err(|source| HistoryError::Parse {
                    line: line_number,
                    source,
                })?;
            history.push(entry);
            lines_of_entries.push(line_number);
        }
        history.validate_with_lines(|position| lines_of_entries[position])?;
        Ok(history)
    }

    /// Writes the history as JSON Lines, one entry a line, in the order held.
    pub fn write_jsonl(&self, mut writer: impl Write) -> io::Result<()> {
        for entry in &self.entries {
            serde_json::to_writer(&mut writer, entry)?;
            writer.write_all(b"\n")?;
        }
        writer.flush()
    }

    /// Checks the rules a recorder must keep: ids are unique, no entry completes before it is
    /// invoked, and an answered entry's output is of its operation's kind. The error's line is the
    /// entry's 1-based position. [`crate::check`] does not require this (it clamps an early
    /// completion to the invocation and treats a mismatched output as impossible), but a recorder
    /// that breaks these rules has a bug worth knowing about.
    pub fn validate(&self) -> Result<(), HistoryError> {
        self.validate_with_lines(|position| position + 1)
    }

    fn validate_with_lines(&self, line_of: impl Fn(usize) -> usize) -> Result<(), HistoryError> {
        let mut ids = HashSet::with_capacity(self.entries.len());
        for (position, entry) in self.entries.iter().enumerate() {
            let invalid = |reason: String| HistoryError::Invalid {
                line: line_of(position),
                reason,
            };
            if !ids.insert(entry.id) {
                return Err(invalid(format!("duplicate entry id {}", entry.id)));
            }
            if entry.complete_ns < entry.invoke_ns {
                return Err(invalid(format!(
                    "entry {} completes at {} ns, before its invocation at {} ns",
                    entry.id, entry.complete_ns, entry.invoke_ns
                )));
            }
            if let Outcome::Ok { output } = &entry.outcome {
                if output.kind_name() != entry.operation.kind_name() {
                    return Err(invalid(format!(
                        "entry {} is a {} but its output is a {}",
                        entry.id,
                        entry.operation.kind_name(),
                        output.kind_name()
                    )));
                }
            }
        }
        Ok(())
    }
}

impl From<Vec<Entry>> for History {
    fn from(entries: Vec<Entry>) -> History {
        History { entries }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&crate::describe::operation_text(self))
    }
}
