//! One store under test for the length of a scenario: writes with numbered requests, reads of
//! everything it holds, reopens, and failures that name the rule and the history behind them.
//!
//! ```text
//!  Session::create ─► write(batch) ─► image() == expected?  ─► reopen() ─► same image?
//!        │                 │                  │                   │
//!        └── harness error, store error, read error or difference ─► ConformanceFailure
//! ```

use std::fmt::Write as _;

use crate::log_store::LogStore;
use crate::ready::{PersistId, PersistRequest};
use crate::storage::{Storage, StorageError};
use crate::types::{Configuration, Entry, EntryKind, HardState, Index, Snapshot};

use super::{ConformanceFailure, Rule, StoreHarness, Tally};

/// History lines kept for a failure report (the oldest are dropped first).
const HISTORY_LINES_MAX: usize = 24;

/// Everything a store holds, as its reads report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Image {
    pub(super) snapshot: Snapshot,
    pub(super) first_index: Index,
    pub(super) last_index: Index,
    /// Every stored entry, `first_index..=last_index`.
    pub(super) entries: Vec<Entry>,
    pub(super) hard_state: HardState,
    /// What `initial_state` reports as in effect.
    pub(super) configuration: Configuration,
    /// What `initial_state` reports as the configuration entries after the snapshot.
    pub(super) configuration_entries: Vec<(Index, Configuration)>,
}

impl Image {
    /// What a store holding `snapshot`, then `entries`, and `hard_state` must report, by the
    /// rules: the log follows the snapshot, and the configuration in effect is the newest
    /// configuration entry's, else the snapshot's.
    pub(super) fn of(snapshot: &Snapshot, entries: &[Entry], hard_state: HardState) -> Image {
        let base = snapshot.meta.last_included.index;
        for (offset, entry) in entries.iter().enumerate() {
            assert_eq!(
                entry.index(),
                base.plus(1 + offset as u64),
                "Image::of: the expected entries follow the snapshot without a gap"
            );
        }
        let configuration_entries: Vec<(Index, Configuration)> = entries
            .iter()
            .filter(|entry| entry.kind == EntryKind::Configuration)
            .map(|entry| {
                let configuration = Configuration::decode(&entry.data)
                    .expect("Image::of: the suite's configuration entries decode");
                (entry.index(), configuration)
            })
            .collect();
        let configuration = configuration_entries
            .last()
            .map_or(&snapshot.meta.configuration, |(_, configuration)| {
                configuration
            })
            .clone();
        Image {
            snapshot: snapshot.clone(),
            first_index: base.next(),
            last_index: base.plus(entries.len() as u64),
            entries: entries.to_vec(),
            hard_state,
            configuration,
            configuration_entries,
        }
    }
}

/// Which part of a store's state a difference is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// The snapshot and the entries.
    Log,
    HardState,
    Configuration,
}

impl Part {
    /// The rule a reopen broke when this part changed across it.
    pub(super) fn rule_across_reopen(self) -> Rule {
        match self {
            Part::Log => Rule::DurableAcrossCrash,
            Part::HardState => Rule::HardState,
            Part::Configuration => Rule::ConfigurationAcrossReopen,
        }
    }
}

/// The first way `actual` differs from `expected`, log first, then hard state, then
/// configuration.
pub(super) fn difference(expected: &Image, actual: &Image) -> Option<(Part, String)> {
    let log = |text: String| Some((Part::Log, text));
    if expected.snapshot.meta != actual.snapshot.meta {
        return log(format!(
            "snapshot: expected {}, read {}",
            describe_snapshot(&expected.snapshot),
            describe_snapshot(&actual.snapshot)
        ));
    }
    if expected.snapshot.data != actual.snapshot.data {
        return log(format!(
            "snapshot {}: the data differs from what was written ({} bytes expected, {} read)",
            expected.snapshot.meta.last_included,
            expected.snapshot.data.len(),
            actual.snapshot.data.len()
        ));
    }
    if (expected.first_index, expected.last_index) != (actual.first_index, actual.last_index) {
        return log(format!(
            "log: expected first_index {} and last_index {}, read {} and {} (stored: {})",
            expected.first_index,
            expected.last_index,
            actual.first_index,
            actual.last_index,
            describe_entries(&actual.entries)
        ));
    }
    for (expected_entry, actual_entry) in expected.entries.iter().zip(&actual.entries) {
        if expected_entry == actual_entry {
            continue;
        }
        let what =
            if expected_entry.id == actual_entry.id && expected_entry.kind == actual_entry.kind {
                " (same identity, other data)"
            } else {
                ""
            };
        return log(format!(
            "entry at {}: expected {expected_entry:?}, read {actual_entry:?}{what}",
            expected_entry.index()
        ));
    }
    if expected.hard_state != actual.hard_state {
        return Some((
            Part::HardState,
            format!(
                "hard state: expected {}, read {}",
                describe_hard_state(expected.hard_state),
                describe_hard_state(actual.hard_state)
            ),
        ));
    }
    if expected.configuration != actual.configuration
        || expected.configuration_entries != actual.configuration_entries
    {
        return Some((
            Part::Configuration,
            format!(
                "initial_state: expected the configuration {} with configuration entries {}, \
                 read {} with {}",
                describe_configuration(&expected.configuration),
                describe_configuration_entries(&expected.configuration_entries),
                describe_configuration(&actual.configuration),
                describe_configuration_entries(&actual.configuration_entries)
            ),
        ));
    }
    None
}

/// Reads everything `reader` holds, checking that its reads agree with each other.
pub(super) fn read_image(reader: &impl Storage) -> Result<Image, String> {
    let first_index = reader
        .first_index()
        .map_err(|error| format!("first_index() failed: {error}"))?;
    let last_index = reader
        .last_index()
        .map_err(|error| format!("last_index() failed: {error}"))?;
    if last_index.next() < first_index {
        return Err(format!(
            "first_index() {first_index} is beyond last_index() {last_index} + 1"
        ));
    }
    let entries = reader
        .entries(first_index, last_index.next(), u64::MAX)
        .map_err(|error| {
            format!(
                "entries({first_index}, {}, unlimited) of the whole log failed: {error}",
                last_index.next()
            )
        })?;
    let expected_count = last_index.next().0 - first_index.0;
    if entries.len() as u64 != expected_count {
        return Err(format!(
            "entries({first_index}, {}, unlimited) returned {} entries, not {expected_count}",
            last_index.next(),
            entries.len()
        ));
    }
    for (offset, entry) in entries.iter().enumerate() {
        let index = first_index.plus(offset as u64);
        if entry.index() != index {
            return Err(format!(
                "entries({first_index}, ..) returned {:?} where index {index} belongs",
                entry
            ));
        }
        match reader.term(index) {
            Ok(term) if term == entry.term() => {}
            other => {
                return Err(format!(
                    "term({index}) answered {other:?}, but entries() holds {entry:?} there"
                ))
            }
        }
    }
    let snapshot = reader
        .snapshot()
        .map_err(|error| format!("snapshot() failed: {error}"))?;
    let initial = reader
        .initial_state()
        .map_err(|error| format!("initial_state() failed: {error}"))?;
    Ok(Image {
        snapshot,
        first_index,
        last_index,
        entries,
        hard_state: initial.hard_state,
        configuration: initial.configuration,
        configuration_entries: initial.configuration_entries,
    })
}

/// The variant of a read's outcome, for comparing errors without the index they carry (the
/// core tells them apart by variant only).
pub(super) fn outcome<T>(result: &Result<T, StorageError>) -> &'static str {
    match result {
        Ok(_) => "Ok",
        Err(StorageError::Compacted(_)) => "Compacted",
        Err(StorageError::Unavailable(_)) => "Unavailable",
        Err(StorageError::Failed(_)) => "Failed",
    }
}

/// A configuration in a few words: `{1,2,3}`, or `{1,2} joint with {2,3}, learners {11}`.
pub(super) fn describe_configuration(configuration: &Configuration) -> String {
    let set = |nodes: &std::collections::BTreeSet<crate::types::NodeId>| {
        let ids: Vec<String> = nodes.iter().map(|node| node.0.to_string()).collect();
        format!("{{{}}}", ids.join(","))
    };
    let mut text = set(&configuration.voters);
    if !configuration.outgoing.is_empty() {
        let _ = write!(text, " joint with {}", set(&configuration.outgoing));
    }
    if !configuration.learners.is_empty() {
        let _ = write!(text, ", learners {}", set(&configuration.learners));
    }
    text
}

/// `[2: {1,2,3}, 4: {1,2}]`.
fn describe_configuration_entries(entries: &[(Index, Configuration)]) -> String {
    let parts: Vec<String> = entries
        .iter()
        .map(|(index, configuration)| {
            format!("{}: {}", index.0, describe_configuration(configuration))
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// `term 2, vote 3, commit 4` (`no vote` when there is none).
fn describe_hard_state(hard_state: HardState) -> String {
    let vote = match hard_state.vote {
        Some(node) => format!("vote {}", node.0),
        None => "no vote".to_string(),
    };
    format!(
        "term {}, {vote}, commit {}",
        hard_state.term.0, hard_state.commit.0
    )
}

/// A snapshot's identity, configuration and size.
fn describe_snapshot(snapshot: &Snapshot) -> String {
    format!(
        "snapshot {} of {} ({} bytes)",
        snapshot.meta.last_included,
        describe_configuration(&snapshot.meta.configuration),
        snapshot.data.len()
    )
}

/// `first..=last` of a run of entries, with their terms, in a few words.
pub(super) fn describe_entries(entries: &[Entry]) -> String {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return "no entries".to_string();
    };
    let mut terms: Vec<u64> = entries.iter().map(|entry| entry.term().0).collect();
    terms.dedup();
    format!(
        "{}..={} of terms {terms:?}",
        first.index().0,
        last.index().0
    )
}

/// A request in one line, for the history of a failure.
pub(super) fn describe(request: &PersistRequest) -> String {
    let mut parts = Vec::new();
    if let Some(snapshot) = &request.snapshot {
        parts.push(describe_snapshot(snapshot));
    }
    if !request.entries.is_empty() {
        let configurations = request
            .entries
            .iter()
            .filter(|entry| entry.kind == EntryKind::Configuration)
            .count();
        let mut text = format!("entries {}", describe_entries(&request.entries));
        if configurations > 0 {
            let _ = write!(text, " ({configurations} configuration)");
        }
        parts.push(text);
    }
    if let Some(hard_state) = request.hard_state {
        parts.push(format!("hard state {}", describe_hard_state(hard_state)));
    }
    if parts.is_empty() {
        parts.push("nothing".to_string());
    }
    format!("#{} {}", request.id, parts.join("; "))
}

/// One store under test, and what happened to it.
pub(super) struct Session<'a, H: StoreHarness> {
    harness: &'a mut H,
    tally: &'a mut Tally,
    rule: Rule,
    /// `None` only while a reopen has the store.
    store: Option<H::Store>,
    next_id: PersistId,
    /// Put before every failure's detail (the seed of a random run, say).
    context: String,
    history: Vec<String>,
    /// History lines dropped from the front.
    history_dropped: usize,
}

impl<'a, H: StoreHarness> Session<'a, H> {
    /// A new store whose bootstrap configuration is `bootstrap`, checked for `rule`.
    pub(super) fn create(
        harness: &'a mut H,
        tally: &'a mut Tally,
        rule: Rule,
        bootstrap: &Configuration,
    ) -> Result<Session<'a, H>, ConformanceFailure> {
        let created = harness.create(bootstrap);
        let mut session = Session {
            harness,
            tally,
            rule,
            store: None,
            next_id: 1,
            context: String::new(),
            history: Vec::new(),
            history_dropped: 0,
        };
        session.note(format!(
            "create (bootstrap {})",
            describe_configuration(bootstrap)
        ));
        match created {
            Ok(store) => {
                session.store = Some(store);
                Ok(session)
            }
            Err(error) => {
                Err(session.fail(format!("the harness could not create a store: {error}")))
            }
        }
    }

    /// Sets what every later failure's detail starts with.
    pub(super) fn set_context(&mut self, context: String) {
        self.context = context;
    }

    fn store(&self) -> &H::Store {
        self.store
            .as_ref()
            .expect("Session: the store is open (a failed reopen ends the scenario)")
    }

    /// A new read view of the store.
    pub(super) fn reader(&self) -> <H::Store as LogStore>::Reader {
        self.store().reader()
    }

    /// Adds a line to the history.
    pub(super) fn note(&mut self, line: String) {
        if self.history.len() == HISTORY_LINES_MAX {
            self.history.remove(0);
            self.history_dropped += 1;
        }
        self.history.push(line);
    }

    /// A failure of the session's rule.
    pub(super) fn fail(&self, detail: String) -> ConformanceFailure {
        self.fail_as(self.rule, detail)
    }

    /// A failure of `rule`, with the session's context and history.
    pub(super) fn fail_as(&self, rule: Rule, detail: String) -> ConformanceFailure {
        let mut text = String::new();
        if !self.context.is_empty() {
            let _ = write!(text, "{}: ", self.context);
        }
        text.push_str(&detail);
        text.push_str("\n  history, oldest first:");
        if self.history_dropped > 0 {
            let _ = write!(
                text,
                "\n    ({} earlier lines left out)",
                self.history_dropped
            );
        }
        for line in &self.history {
            let _ = write!(text, "\n    {line}");
        }
        ConformanceFailure { rule, detail: text }
    }

    /// Writes `requests` as one batch, numbering them.
    pub(super) fn write(
        &mut self,
        mut requests: Vec<PersistRequest>,
    ) -> Result<(), ConformanceFailure> {
        for request in &mut requests {
            request.id = self.next_id;
            self.next_id += 1;
        }
        let line = requests
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join(" | ");
        self.note(format!("write [{line}]"));
        self.tally.writes += 1;
        let store = self
            .store
            .as_mut()
            .expect("Session: the store is open (a failed reopen ends the scenario)");
        match store.write(requests) {
            Ok(()) => Ok(()),
            Err(error) => Err(self.fail(format!("write of the last batch failed: {error}"))),
        }
    }

    /// Writes one request.
    pub(super) fn write_one(&mut self, request: PersistRequest) -> Result<(), ConformanceFailure> {
        self.write(vec![request])
    }

    /// Everything the store holds, through a new reader.
    pub(super) fn image(&self) -> Result<Image, ConformanceFailure> {
        read_image(&self.reader()).map_err(|detail| self.fail(detail))
    }

    /// Checks that the store holds exactly `expected`; `what` says what was just done.
    pub(super) fn expect(&self, what: &str, expected: &Image) -> Result<(), ConformanceFailure> {
        let actual = self.image()?;
        match difference(expected, &actual) {
            None => Ok(()),
            Some((_, text)) => Err(self.fail(format!("{what}: {text}"))),
        }
    }

    /// Drops the store without closing it and opens it again, without checking what it reads.
    pub(super) fn reopen_unchecked(&mut self) -> Result<(), ConformanceFailure> {
        self.note("reopen".to_string());
        self.tally.reopens += 1;
        let store = self
            .store
            .take()
            .expect("Session: the store is open (a failed reopen ends the scenario)");
        match self.harness.reopen(store) {
            Ok(store) => {
                self.store = Some(store);
                Ok(())
            }
            Err(error) => {
                Err(self.fail(format!("the harness could not reopen the store: {error}")))
            }
        }
    }

    /// Reopens the store and checks that it reads back exactly what it held before; a
    /// difference breaks the rule of the part that changed ([`Part::rule_across_reopen`]).
    pub(super) fn reopen(&mut self) -> Result<(), ConformanceFailure> {
        let before = self.image()?;
        self.reopen_unchecked()?;
        let after = self.image()?;
        match difference(&before, &after) {
            None => Ok(()),
            Some((part, text)) => Err(self.fail_as(
                part.rule_across_reopen(),
                format!("after a reopen (dropped without a close, opened again): {text}"),
            )),
        }
    }
}
