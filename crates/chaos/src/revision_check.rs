//! The checks that use revisions as the witness order: the bank's transfers and reads, every
//! watcher's messages, and the real-time order of everything acknowledged with a revision,
//! each against the cluster's authoritative change history read after healing.
//!
//! ```text
//!  change log (every member's, from revision 1: one watch of every key)
//!    ├─ members agree revision by revision; no revision without a change
//!    ├─ acknowledged writes ── each one's writes are at the revision it was answered
//!    ├─ bank ── transfers exactly once at their revision, refused ones nowhere; every read
//!    │          equals the replayed accounts at its revision and sums to the total
//!    ├─ watchers ── ordered, none repeated, none missing up to the last revision reached,
//!    │              each revision's events together and equal to the log's, resumes gapless
//!    └─ real time ── an operation acknowledged before another began has a revision no
//!                    greater (strictly smaller when the later one wrote)
//! ```
//!
//! Every function here is pure: it takes recorded facts and returns anomalies as text naming
//! the operation ids and revisions, so doctored histories test each check (see the tests).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Anomalies of one kind shown at most; the rest are counted.
const SHOWN_MAX: usize = 20;

/// One change of one key: its new value, or `None` for a delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The key.
    pub key: String,
    /// The value after the change; `None`: the key was deleted.
    pub value: Option<String>,
}

impl Change {
    /// A put of `value` to `key`.
    pub fn put(key: &str, value: &str) -> Change {
        Change {
            key: key.to_string(),
            value: Some(value.to_string()),
        }
    }

    /// A delete of `key`.
    pub fn delete(key: &str) -> Change {
        Change {
            key: key.to_string(),
            value: None,
        }
    }
}

/// The changes of every revision, in revision order, each revision's in the order the write
/// made them.
pub type ChangeLog = BTreeMap<u64, Vec<Change>>;

/// What an acknowledged write must have left at its revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedWrite {
    /// `key` set to exactly this value.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `key` set to a value ending with this (an append).
    EndsWith {
        /// The key.
        key: String,
        /// The suffix.
        suffix: String,
    },
    /// `key` deleted.
    Delete {
        /// The key.
        key: String,
    },
}

impl ExpectedWrite {
    fn key(&self) -> &str {
        match self {
            ExpectedWrite::Put { key, .. }
            | ExpectedWrite::EndsWith { key, .. }
            | ExpectedWrite::Delete { key } => key,
        }
    }

    fn matches(&self, change: &Change) -> bool {
        if change.key != self.key() {
            return false;
        }
        match (self, &change.value) {
            (ExpectedWrite::Put { value, .. }, Some(found)) => found == value,
            (ExpectedWrite::EndsWith { suffix, .. }, Some(found)) => found.ends_with(suffix),
            (ExpectedWrite::Delete { .. }, None) => true,
            _ => false,
        }
    }
}

/// An operation acknowledged with a revision: when it ran, the revision it was answered, and
/// whether (and what) it wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Names the operation in reports, e.g. `kv op 12` or `bank op 40`.
    pub operation: String,
    /// Invocation, nanoseconds since the run's start.
    pub invoke_ns: u64,
    /// Completion (the answer), nanoseconds since the run's start.
    pub complete_ns: u64,
    /// The revision it was answered: its own when it changed something, else the one it read.
    pub revision: u64,
    /// What it changed; empty for a read or a write that changed nothing (a failed compare, a
    /// delete of an absent key).
    pub writes: Vec<ExpectedWrite>,
}

impl Stamp {
    fn wrote(&self) -> bool {
        !self.writes.is_empty()
    }
}

/// Real-time order: an operation acknowledged before another was invoked must have a revision
/// no greater than the other's, and strictly smaller when the later one changed something
/// (its change comes after all the earlier one saw or did). Two writes never share a revision.
pub fn real_time_anomalies(stamps: &[Stamp]) -> Vec<String> {
    let mut by_complete: Vec<&Stamp> = stamps.iter().collect();
    by_complete.sort_by_key(|stamp| stamp.complete_ns);
    let mut by_invoke: Vec<&Stamp> = stamps.iter().collect();
    by_invoke.sort_by_key(|stamp| stamp.invoke_ns);
    let mut anomalies = Vec::new();
    let mut finished = 0;
    // The completed operation with the highest revision so far.
    let mut highest: Option<&Stamp> = None;
    for later in by_invoke {
        while finished < by_complete.len() && by_complete[finished].complete_ns < later.invoke_ns {
            let done = by_complete[finished];
            if highest.is_none_or(|high| done.revision > high.revision) {
                highest = Some(done);
            }
            finished += 1;
        }
        let Some(earlier) = highest else { continue };
        let out_of_order = if later.wrote() {
            earlier.revision >= later.revision
        } else {
            earlier.revision > later.revision
        };
        if out_of_order {
            anomalies.push(format!(
                "real-time order broken: {} was answered revision {} before {} began, which \
                 was answered revision {}{}",
                earlier.operation,
                earlier.revision,
                later.operation,
                later.revision,
                if later.wrote() {
                    " (a write must come strictly later)"
                } else {
                    ""
                }
            ));
        }
    }
    let mut writers: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for stamp in stamps.iter().filter(|stamp| stamp.wrote()) {
        writers
            .entry(stamp.revision)
            .or_default()
            .push(&stamp.operation);
    }
    for (revision, operations) in writers {
        if operations.len() > 1 {
            anomalies.push(format!(
                "writes share revision {revision}: {}",
                operations.join(", ")
            ));
        }
    }
    bounded(anomalies, "real-time order")
}

/// Every acknowledged write's changes are in the log at the revision it was answered.
pub fn acknowledged_write_anomalies(stamps: &[Stamp], log: &ChangeLog) -> Vec<String> {
    let mut anomalies = Vec::new();
    for stamp in stamps.iter().filter(|stamp| stamp.wrote()) {
        let changes = log.get(&stamp.revision).map(Vec::as_slice).unwrap_or(&[]);
        for write in &stamp.writes {
            if !changes.iter().any(|change| write.matches(change)) {
                anomalies.push(format!(
                    "{} was acknowledged at revision {} but that revision holds {} (expected \
                     {write:?})",
                    stamp.operation,
                    stamp.revision,
                    describe_changes(changes)
                ));
            }
        }
    }
    bounded(anomalies, "acknowledged writes")
}

/// The members' logs agree: at every revision both hold, the same changes; and each holds
/// every revision from 2 (the first change) to its last, since every revision changes a key.
pub fn log_anomalies(logs: &[(u64, ChangeLog)]) -> Vec<String> {
    let mut anomalies = Vec::new();
    for (id, log) in logs {
        let last = log.keys().next_back().copied().unwrap_or(1);
        let missing: Vec<String> = (2..=last)
            .filter(|revision| !log.contains_key(revision))
            .map(|revision| revision.to_string())
            .collect();
        if !missing.is_empty() {
            anomalies.push(format!(
                "node {id}'s history has no change at revisions {}",
                examples(&missing)
            ));
        }
    }
    let Some((reference_id, reference)) = logs.first() else {
        return anomalies;
    };
    for (id, log) in &logs[1..] {
        let differing: Vec<String> = reference
            .iter()
            .filter_map(|(revision, changes)| {
                let other = log.get(revision)?;
                (other != changes).then(|| {
                    format!(
                        "revision {revision}: {} on node {reference_id}, {} on node {id}",
                        describe_changes(changes),
                        describe_changes(other)
                    )
                })
            })
            .collect();
        if !differing.is_empty() {
            anomalies.push(format!(
                "nodes {reference_id} and {id} disagree on the history: {}",
                examples(&differing)
            ));
        }
    }
    anomalies
}

/// After healing every member reports the same revision.
pub fn member_revision_anomalies(revisions: &[(u64, u64)]) -> Vec<String> {
    let distinct: BTreeSet<u64> = revisions.iter().map(|(_, revision)| *revision).collect();
    if distinct.len() > 1 {
        vec![format!(
            "members report different revisions after healing: {}",
            revisions
                .iter()
                .map(|(id, revision)| format!("node {id} at {revision}"))
                .collect::<Vec<_>>()
                .join(", ")
        )]
    } else {
        Vec::new()
    }
}

// ---------------------------------------------------------------------------------------------
// The bank.

/// What a bank operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankOperation {
    /// Creates every account (one transaction requiring each absent).
    Init {
        /// Account key to its first value.
        balances: BTreeMap<String, String>,
    },
    /// Moves money between two accounts: a transaction requiring both accounts' mod revisions
    /// to be those read, putting both new values.
    Transfer {
        /// The account debited, its mod revision as read and its new value.
        from: (String, u64, String),
        /// The account credited, its mod revision as read and its new value.
        to: (String, u64, String),
    },
    /// Reads every account with one prefix scan at one revision.
    Read,
}

/// How a bank operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankOutcome {
    /// The transaction's comparisons held and its writes were applied at `revision`.
    Written {
        /// Its revision.
        revision: u64,
    },
    /// The transaction's comparisons failed: nothing changed; `revision` is where it read.
    CompareFailed {
        /// The revision it read at.
        revision: u64,
    },
    /// The read's accounts (key to value) at `revision`.
    Read {
        /// The revision it read at.
        revision: u64,
        /// Every account found.
        accounts: BTreeMap<String, String>,
    },
    /// Definitely not applied.
    Failed {
        /// Why.
        reason: String,
    },
    /// Maybe applied.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// One bank operation as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankEntry {
    /// Unique among the bank's operations; its values carry it as their tag.
    pub id: u64,
    /// The client (0: the harness).
    pub client: u64,
    /// Invocation, nanoseconds since the run's start.
    pub invoke_ns: u64,
    /// Completion.
    pub complete_ns: u64,
    /// What it did.
    pub operation: BankOperation,
    /// How it ended.
    pub outcome: BankOutcome,
}

impl BankEntry {
    /// Its stamp for the real-time and acknowledged-write checks, when it has a revision.
    pub fn stamp(&self) -> Option<Stamp> {
        let (revision, wrote) = match &self.outcome {
            BankOutcome::Written { revision } => (*revision, true),
            BankOutcome::CompareFailed { revision } | BankOutcome::Read { revision, .. } => {
                (*revision, false)
            }
            BankOutcome::Failed { .. } | BankOutcome::Unknown { .. } => return None,
        };
        Some(Stamp {
            operation: format!("bank op {}", self.id),
            invoke_ns: self.invoke_ns,
            complete_ns: self.complete_ns,
            revision,
            writes: if wrote { self.writes() } else { Vec::new() },
        })
    }

    fn writes(&self) -> Vec<ExpectedWrite> {
        let put = |key: &String, value: &String| ExpectedWrite::Put {
            key: key.clone(),
            value: value.clone(),
        };
        match &self.operation {
            BankOperation::Init { balances } => balances.iter().map(|(k, v)| put(k, v)).collect(),
            BankOperation::Transfer { from, to } => vec![put(&from.0, &from.2), put(&to.0, &to.2)],
            BankOperation::Read => Vec::new(),
        }
    }
}

/// A bank value: the balance, a slash, and the tag of the operation that wrote it
/// (`init` or `t` and its id), so every value written is unique.
pub fn bank_value(balance: i64, tag: &str) -> String {
    format!("{balance}/{tag}")
}

/// The tag of bank operation `id`'s values.
pub fn bank_tag(entry: &BankEntry) -> String {
    match entry.operation {
        BankOperation::Init { .. } => "init".to_string(),
        _ => format!("t{}", entry.id),
    }
}

/// The balance in a bank value.
pub fn bank_balance(value: &str) -> Option<i64> {
    value.split('/').next()?.parse().ok()
}

/// The bank's checks against the change log: every acknowledged transfer (and the init)
/// appears exactly at its revision with exactly its writes, a refused one nowhere, one of
/// unknown outcome at most once and then with exactly its writes; no bank value appears that
/// no operation wrote; a failed comparison really failed at the revision it read; and every
/// read equals the accounts replayed to its revision and sums to `total`.
pub fn bank_anomalies(
    entries: &[BankEntry],
    log: &ChangeLog,
    prefix: &str,
    total: i64,
) -> Vec<String> {
    let mut anomalies = Vec::new();
    // Where each tag's values appear.
    let mut tag_revisions: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for (revision, changes) in log {
        for change in changes.iter().filter(|c| c.key.starts_with(prefix)) {
            let tag = change
                .value
                .as_deref()
                .and_then(|value| value.split_once('/'))
                .map_or("<deleted or untagged>", |(_, tag)| tag);
            tag_revisions.entry(tag).or_default().insert(*revision);
        }
    }
    let mut known_tags = BTreeSet::new();
    for entry in entries {
        if matches!(entry.operation, BankOperation::Read) {
            continue;
        }
        let tag = bank_tag(entry);
        known_tags.insert(tag.clone());
        let revisions: Vec<u64> = tag_revisions
            .get(tag.as_str())
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        let bank_changes_at = |revision: u64| -> BTreeSet<(String, Option<String>)> {
            log.get(&revision)
                .into_iter()
                .flatten()
                .filter(|change| change.key.starts_with(prefix))
                .map(|change| (change.key.clone(), change.value.clone()))
                .collect()
        };
        let own: BTreeSet<(String, Option<String>)> = entry
            .writes()
            .into_iter()
            .filter_map(|write| match write {
                ExpectedWrite::Put { key, value } => Some((key, Some(value))),
                _ => None,
            })
            .collect();
        let name = format!("bank op {}", entry.id);
        match &entry.outcome {
            BankOutcome::Written { revision } => {
                if revisions != [*revision] {
                    anomalies.push(format!(
                        "{name} was acknowledged at revision {revision} but its writes appear \
                         at revisions {revisions:?}"
                    ));
                } else if bank_changes_at(*revision) != own {
                    anomalies.push(format!(
                        "{name} was acknowledged at revision {revision}, which holds {:?} \
                         instead of exactly its writes {own:?}",
                        bank_changes_at(*revision)
                    ));
                }
            }
            BankOutcome::CompareFailed { .. } | BankOutcome::Failed { .. } => {
                if !revisions.is_empty() {
                    anomalies.push(format!(
                        "{name} did not take effect ({}) yet its writes appear at revisions \
                         {revisions:?}",
                        outcome_name(&entry.outcome)
                    ));
                }
            }
            BankOutcome::Unknown { .. } => {
                if revisions.len() > 1 {
                    anomalies.push(format!(
                        "{name} (outcome unknown) was applied more than once: revisions \
                         {revisions:?}"
                    ));
                } else if let Some(revision) = revisions.first() {
                    if bank_changes_at(*revision) != own {
                        anomalies.push(format!(
                            "{name} (outcome unknown) appears at revision {revision} with \
                             {:?} instead of exactly its writes {own:?}",
                            bank_changes_at(*revision)
                        ));
                    }
                }
            }
            BankOutcome::Read { .. } => {}
        }
    }
    for (tag, revisions) in &tag_revisions {
        if !known_tags.contains(*tag) {
            anomalies.push(format!(
                "bank values no operation wrote (tag {tag}) at revisions {:?}",
                revisions.iter().take(SHOWN_MAX).collect::<Vec<_>>()
            ));
        }
    }

    // Replay the accounts in revision order, answering each read and failed comparison at
    // its revision.
    let mut queries: Vec<&BankEntry> = entries
        .iter()
        .filter(|entry| {
            matches!(
                entry.outcome,
                BankOutcome::Read { .. } | BankOutcome::CompareFailed { .. }
            )
        })
        .collect();
    queries.sort_by_key(|entry| query_revision(entry));
    let last_revision = log.keys().next_back().copied().unwrap_or(1);
    // Account key to (value, mod revision).
    let mut accounts: BTreeMap<&str, (&str, u64)> = BTreeMap::new();
    let mut changes = log.iter().peekable();
    for entry in queries {
        let at = query_revision(entry);
        while let Some((revision, revision_changes)) = changes.next_if(|(r, _)| **r <= at) {
            for change in revision_changes
                .iter()
                .filter(|c| c.key.starts_with(prefix))
            {
                match &change.value {
                    Some(value) => {
                        accounts.insert(&change.key, (value, *revision));
                    }
                    None => {
                        accounts.remove(change.key.as_str());
                    }
                }
            }
        }
        let name = format!("bank op {}", entry.id);
        if at > last_revision {
            anomalies.push(format!(
                "{name} was answered revision {at}, beyond the history's last {last_revision}"
            ));
            continue;
        }
        match (&entry.outcome, &entry.operation) {
            (BankOutcome::Read { accounts: read, .. }, _) => {
                let sum: Option<i64> = read.values().map(|value| bank_balance(value)).sum();
                if sum != Some(total) {
                    anomalies.push(format!(
                        "{name} read at revision {at} sums to {} instead of {total}: {read:?}",
                        sum.map_or("an unreadable balance".to_string(), |s| s.to_string())
                    ));
                }
                let expected: BTreeMap<String, String> = accounts
                    .iter()
                    .map(|(key, (value, _))| (key.to_string(), value.to_string()))
                    .collect();
                if *read != expected {
                    anomalies.push(format!(
                        "{name} read {read:?} at revision {at}, but the history gives \
                         {expected:?} there"
                    ));
                }
            }
            (BankOutcome::CompareFailed { .. }, BankOperation::Transfer { from, to }) => {
                let mod_of = |key: &str| accounts.get(key).map_or(0, |(_, m)| *m);
                if mod_of(&from.0) == from.1 && mod_of(&to.0) == to.1 {
                    anomalies.push(format!(
                        "{name}'s comparison failed at revision {at}, yet there {} had mod \
                         revision {} and {} had {} as it required",
                        from.0, from.1, to.0, to.1
                    ));
                }
            }
            _ => {}
        }
    }
    bounded(anomalies, "bank")
}

fn query_revision(entry: &BankEntry) -> u64 {
    match entry.outcome {
        BankOutcome::Read { revision, .. } | BankOutcome::CompareFailed { revision } => revision,
        _ => 0,
    }
}

fn outcome_name(outcome: &BankOutcome) -> &'static str {
    match outcome {
        BankOutcome::Written { .. } => "written",
        BankOutcome::CompareFailed { .. } => "its comparison failed",
        BankOutcome::Read { .. } => "read",
        BankOutcome::Failed { .. } => "refused",
        BankOutcome::Unknown { .. } => "unknown",
    }
}

// ---------------------------------------------------------------------------------------------
// Watchers.

/// What a watcher follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// One key.
    Key(String),
    /// Every key with the prefix.
    Prefix(String),
}

impl Selection {
    /// Whether `key` is selected.
    pub fn selects(&self, key: &str) -> bool {
        match self {
            Selection::Key(watched) => key == watched,
            Selection::Prefix(prefix) => key.starts_with(prefix.as_str()),
        }
    }
}

/// One thing a watcher was handed, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivered {
    /// One message of events, all of one revision.
    Events {
        /// The revision.
        revision: u64,
        /// The changes, in the order delivered.
        changes: Vec<Change>,
    },
    /// A progress notification: everything selected up to `revision` has been delivered.
    Progress {
        /// The revision reached.
        revision: u64,
    },
    /// The stream ended and the watcher opened a new one at `start_revision`.
    Resumed {
        /// Where the new stream starts.
        start_revision: u64,
        /// Why the old one ended.
        why: String,
    },
}

/// Everything one watcher was handed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatcherRecord {
    /// Names it in reports: its node slot and selection.
    pub name: String,
    /// What it watches.
    pub selection: Selection,
    /// The revision its first stream started at.
    pub start_revision: u64,
    /// What it was handed.
    pub delivered: Vec<Delivered>,
}

impl WatcherRecord {
    /// The highest revision it knows it has everything up to: its last event's or progress'.
    pub fn reached(&self) -> u64 {
        self.delivered
            .iter()
            .filter_map(|delivered| match delivered {
                Delivered::Events { revision, .. } | Delivered::Progress { revision } => {
                    Some(*revision)
                }
                Delivered::Resumed { .. } => None,
            })
            .max()
            .unwrap_or(self.start_revision.saturating_sub(1))
    }

    /// Events delivered (changes, over all messages).
    pub fn events(&self) -> u64 {
        self.delivered
            .iter()
            .map(|delivered| match delivered {
                Delivered::Events { changes, .. } => changes.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Streams it reopened.
    pub fn resumes(&self) -> u64 {
        self.delivered
            .iter()
            .filter(|delivered| matches!(delivered, Delivered::Resumed { .. }))
            .count() as u64
    }
}

/// The watch checks of one watcher against the log: messages in strictly increasing revision
/// order and none after a progress notification at or below it; each message exactly the
/// log's selected changes of its revision (a revision's changes together, in order); no
/// selected revision missing between its start and the last revision it reached; every
/// resume at one past the last revision reached.
pub fn watcher_anomalies(record: &WatcherRecord, log: &ChangeLog) -> Vec<String> {
    let name = &record.name;
    let mut anomalies = Vec::new();
    let mut last_event = 0u64;
    let mut last_progress = 0u64;
    let mut delivered_revisions = BTreeSet::new();
    for delivered in &record.delivered {
        match delivered {
            Delivered::Events { revision, changes } => {
                if *revision <= last_event {
                    anomalies.push(format!(
                        "watcher {name}: events of revision {revision} after revision \
                         {last_event}'s (out of order or repeated)"
                    ));
                } else if *revision <= last_progress {
                    anomalies.push(format!(
                        "watcher {name}: events of revision {revision} after a progress \
                         notification claimed revision {last_progress}"
                    ));
                }
                if *revision < record.start_revision {
                    anomalies.push(format!(
                        "watcher {name}: events of revision {revision}, before its start \
                         revision {}",
                        record.start_revision
                    ));
                }
                let expected = selected(log, *revision, &record.selection);
                if *changes != expected {
                    anomalies.push(format!(
                        "watcher {name}: revision {revision} delivered {} but the history \
                         has {}",
                        describe_changes(changes),
                        describe_changes(&expected)
                    ));
                }
                delivered_revisions.insert(*revision);
                last_event = last_event.max(*revision);
            }
            Delivered::Progress { revision } => {
                last_progress = last_progress.max(*revision);
            }
            Delivered::Resumed { start_revision, .. } => {
                let expected = last_event
                    .max(last_progress)
                    .max(record.start_revision.saturating_sub(1))
                    + 1;
                if *start_revision != expected {
                    anomalies.push(format!(
                        "watcher {name}: resumed at revision {start_revision} instead of \
                         {expected} (one past the last reached)"
                    ));
                }
            }
        }
    }
    let reached = last_event.max(last_progress);
    let missing: Vec<String> = log
        .range(record.start_revision..=reached)
        .filter(|(revision, changes)| {
            changes.iter().any(|c| record.selection.selects(&c.key))
                && !delivered_revisions.contains(*revision)
        })
        .map(|(revision, _)| revision.to_string())
        .collect();
    if !missing.is_empty() {
        anomalies.push(format!(
            "watcher {name}: revisions missing between its start {} and revision {reached} it \
             reached: {}",
            record.start_revision,
            examples(&missing)
        ));
    }
    bounded(anomalies, &format!("watcher {name}"))
}

fn selected(log: &ChangeLog, revision: u64, selection: &Selection) -> Vec<Change> {
    log.get(&revision)
        .into_iter()
        .flatten()
        .filter(|change| selection.selects(&change.key))
        .cloned()
        .collect()
}

/// Watchers of one selection on different members agree at every revision both delivered.
pub fn watcher_agreement_anomalies(records: &[WatcherRecord]) -> Vec<String> {
    let mut anomalies = Vec::new();
    for (index, first) in records.iter().enumerate() {
        let events_of = |record: &WatcherRecord| -> BTreeMap<u64, Vec<Change>> {
            record
                .delivered
                .iter()
                .filter_map(|delivered| match delivered {
                    Delivered::Events { revision, changes } => Some((*revision, changes.clone())),
                    _ => None,
                })
                .collect()
        };
        let first_events = events_of(first);
        for second in records[index + 1..]
            .iter()
            .filter(|other| other.selection == first.selection)
        {
            let second_events = events_of(second);
            let differing: Vec<String> = first_events
                .iter()
                .filter(|(revision, changes)| {
                    second_events
                        .get(revision)
                        .is_some_and(|other| other != *changes)
                })
                .map(|(revision, _)| revision.to_string())
                .collect();
            if !differing.is_empty() {
                anomalies.push(format!(
                    "watchers {} and {} disagree at revisions {}",
                    first.name,
                    second.name,
                    examples(&differing)
                ));
            }
        }
    }
    anomalies
}

fn describe_changes(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no change".to_string();
    }
    changes
        .iter()
        .map(|change| match &change.value {
            Some(value) => format!("put {}={value:?}", change.key),
            None => format!("delete {}", change.key),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn examples(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(SHOWN_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN_MAX {
        text.push_str(&format!(" and {} more", items.len() - SHOWN_MAX));
    }
    text
}

/// At most [`SHOWN_MAX`] anomalies, then one line counting the rest.
pub(crate) fn bounded(mut anomalies: Vec<String>, what: &str) -> Vec<String> {
    if anomalies.len() > SHOWN_MAX {
        let more = anomalies.len() - SHOWN_MAX;
        anomalies.truncate(SHOWN_MAX);
        anomalies.push(format!("{what}: {more} more anomalies of this kind"));
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "bank/";
    const A: &str = "bank/a";
    const B: &str = "bank/b";
    const TOTAL: i64 = 200;

    /// A consistent run: the init at 2, transfer 1 at 3, a kv put at 4, transfer 3 at 5.
    fn log() -> ChangeLog {
        ChangeLog::from([
            (
                2,
                vec![Change::put(A, "100/init"), Change::put(B, "100/init")],
            ),
            (3, vec![Change::put(A, "90/t1"), Change::put(B, "110/t1")]),
            (4, vec![Change::put("kv/r0", "v1")]),
            (5, vec![Change::put(B, "100/t3"), Change::put(A, "100/t3")]),
        ])
    }

    fn transfer(from: (&str, u64, &str), to: (&str, u64, &str)) -> BankOperation {
        BankOperation::Transfer {
            from: (from.0.into(), from.1, from.2.into()),
            to: (to.0.into(), to.1, to.2.into()),
        }
    }

    fn entry(id: u64, at: u64, operation: BankOperation, outcome: BankOutcome) -> BankEntry {
        BankEntry {
            id,
            client: 1,
            invoke_ns: at * 10,
            complete_ns: at * 10 + 5,
            operation,
            outcome,
        }
    }

    fn read(id: u64, at: u64, revision: u64, a: &str, b: &str) -> BankEntry {
        entry(
            id,
            at,
            BankOperation::Read,
            BankOutcome::Read {
                revision,
                accounts: BTreeMap::from([(A.into(), a.into()), (B.into(), b.into())]),
            },
        )
    }

    fn entries() -> Vec<BankEntry> {
        vec![
            entry(
                0,
                0,
                BankOperation::Init {
                    balances: BTreeMap::from([
                        (A.into(), "100/init".into()),
                        (B.into(), "100/init".into()),
                    ]),
                },
                BankOutcome::Written { revision: 2 },
            ),
            read(2, 1, 2, "100/init", "100/init"),
            entry(
                1,
                2,
                transfer((A, 2, "90/t1"), (B, 2, "110/t1")),
                BankOutcome::Written { revision: 3 },
            ),
            read(4, 3, 3, "90/t1", "110/t1"),
            entry(
                3,
                5,
                transfer((B, 3, "100/t3"), (A, 3, "100/t3")),
                BankOutcome::Written { revision: 5 },
            ),
            // Read at 2, changed since: its comparison rightly failed.
            entry(
                5,
                6,
                transfer((A, 2, "80/t5"), (B, 2, "120/t5")),
                BankOutcome::CompareFailed { revision: 5 },
            ),
            entry(
                6,
                7,
                transfer((A, 5, "99/t6"), (B, 5, "101/t6")),
                BankOutcome::Unknown {
                    reason: "timed out".into(),
                },
            ),
            entry(
                7,
                8,
                transfer((A, 5, "98/t7"), (B, 5, "102/t7")),
                BankOutcome::Failed {
                    reason: "refused".into(),
                },
            ),
            read(8, 9, 5, "100/t3", "100/t3"),
        ]
    }

    fn events(revision: u64, changes: &[Change]) -> Delivered {
        Delivered::Events {
            revision,
            changes: changes.to_vec(),
        }
    }

    fn watcher(delivered: Vec<Delivered>) -> WatcherRecord {
        WatcherRecord {
            name: "test".into(),
            selection: Selection::Prefix(PREFIX.into()),
            start_revision: 1,
            delivered,
        }
    }

    fn faithful_watcher() -> WatcherRecord {
        let log = log();
        watcher(vec![
            events(2, &log[&2]),
            events(3, &log[&3]),
            Delivered::Progress { revision: 4 },
            Delivered::Resumed {
                start_revision: 5,
                why: "node killed".into(),
            },
            events(5, &log[&5]),
        ])
    }

    fn stamps() -> Vec<Stamp> {
        let mut stamps: Vec<Stamp> = entries().iter().filter_map(BankEntry::stamp).collect();
        stamps.push(Stamp {
            operation: "kv op 1".into(),
            invoke_ns: 32,
            complete_ns: 40,
            revision: 4,
            writes: vec![ExpectedWrite::Put {
                key: "kv/r0".into(),
                value: "v1".into(),
            }],
        });
        stamps
    }

    fn one_containing(anomalies: &[String], text: &str) {
        assert!(
            anomalies.iter().any(|anomaly| anomaly.contains(text)),
            "no anomaly mentions {text:?}: {anomalies:#?}"
        );
    }

    #[test]
    fn a_consistent_run_has_no_anomaly() {
        let log = log();
        assert_eq!(
            bank_anomalies(&entries(), &log, PREFIX, TOTAL),
            Vec::<String>::new()
        );
        assert_eq!(
            watcher_anomalies(&faithful_watcher(), &log),
            Vec::<String>::new()
        );
        assert_eq!(real_time_anomalies(&stamps()), Vec::<String>::new());
        assert_eq!(
            acknowledged_write_anomalies(&stamps(), &log),
            Vec::<String>::new()
        );
        assert_eq!(
            log_anomalies(&[(1, log.clone()), (2, log)]),
            Vec::<String>::new()
        );
        assert!(member_revision_anomalies(&[(1, 5), (2, 5)]).is_empty());
    }

    #[test]
    fn a_read_with_a_wrong_sum_is_reported() {
        let mut entries = entries();
        entries[3] = read(4, 3, 3, "90/t1", "100/init");
        let anomalies = bank_anomalies(&entries, &log(), PREFIX, TOTAL);
        one_containing(
            &anomalies,
            "bank op 4 read at revision 3 sums to 190 instead of 200",
        );
        // And it differs from the replayed accounts at revision 3.
        one_containing(&anomalies, "but the history gives");
    }

    #[test]
    fn a_transfer_at_the_wrong_revision_is_reported() {
        let mut entries = entries();
        entries[2].outcome = BankOutcome::Written { revision: 4 };
        let anomalies = bank_anomalies(&entries, &log(), PREFIX, TOTAL);
        one_containing(
            &anomalies,
            "bank op 1 was acknowledged at revision 4 but its writes appear at revisions [3]",
        );
        let mut stamps: Vec<Stamp> = entries.iter().filter_map(BankEntry::stamp).collect();
        stamps.retain(|stamp| stamp.operation == "bank op 1");
        one_containing(
            &acknowledged_write_anomalies(&stamps, &log()),
            "bank op 1 was acknowledged at revision 4 but that revision holds put kv/r0",
        );
    }

    #[test]
    fn a_refused_transfer_applied_an_unknown_one_applied_twice_and_a_phantom_are_reported() {
        let mut log = log();
        log.insert(6, vec![Change::put(A, "98/t7"), Change::put(B, "102/t7")]);
        log.insert(7, vec![Change::put(A, "99/t6"), Change::put(B, "101/t6")]);
        log.insert(8, vec![Change::put(A, "99/t6"), Change::put(B, "101/t6")]);
        log.insert(9, vec![Change::put(A, "50/t99"), Change::put(B, "150/t99")]);
        let anomalies = bank_anomalies(&entries(), &log, PREFIX, TOTAL);
        one_containing(&anomalies, "bank op 7 did not take effect (refused)");
        one_containing(
            &anomalies,
            "bank op 6 (outcome unknown) was applied more than once",
        );
        one_containing(&anomalies, "bank values no operation wrote (tag t99)");
    }

    #[test]
    fn a_transfer_applied_with_other_writes_beside_it_is_reported() {
        let mut log = log();
        log.get_mut(&3).unwrap().push(Change::delete("bank/c"));
        let anomalies = bank_anomalies(&entries(), &log, PREFIX, TOTAL);
        one_containing(&anomalies, "instead of exactly its writes");
    }

    #[test]
    fn a_comparison_that_should_have_held_is_reported() {
        let mut entries = entries();
        // At revision 5 both accounts have mod revision 5: a transfer requiring exactly that
        // cannot have failed its comparison there.
        entries[5].operation = transfer((A, 5, "80/t5"), (B, 5, "120/t5"));
        let anomalies = bank_anomalies(&entries, &log(), PREFIX, TOTAL);
        one_containing(&anomalies, "bank op 5's comparison failed at revision 5");
    }

    #[test]
    fn a_duplicated_event_is_reported() {
        let log = log();
        let mut record = faithful_watcher();
        record.delivered.insert(2, events(3, &log[&3]));
        one_containing(
            &watcher_anomalies(&record, &log),
            "events of revision 3 after revision 3's (out of order or repeated)",
        );
    }

    #[test]
    fn a_gap_is_reported() {
        let log = log();
        let mut record = faithful_watcher();
        record.delivered.remove(1);
        one_containing(
            &watcher_anomalies(&record, &log),
            "revisions missing between its start 1 and revision 5 it reached: 3",
        );
    }

    #[test]
    fn a_gap_covered_by_a_progress_notification_is_reported() {
        let log = log();
        // Nothing after 2, yet progress claims 5: revisions 3 and 5 are missing.
        let record = watcher(vec![
            events(2, &log[&2]),
            Delivered::Progress { revision: 5 },
        ]);
        one_containing(&watcher_anomalies(&record, &log), "reached: 3, 5");
    }

    #[test]
    fn a_transaction_split_over_two_messages_is_reported() {
        let log = log();
        let mut record = faithful_watcher();
        record.delivered[1] = events(3, &log[&3][..1]);
        record.delivered.insert(2, events(3, &log[&3][1..]));
        let anomalies = watcher_anomalies(&record, &log);
        one_containing(
            &anomalies,
            "revision 3 delivered put bank/a=\"90/t1\" but the history",
        );
        one_containing(&anomalies, "(out of order or repeated)");
    }

    #[test]
    fn an_event_at_or_below_a_progress_notification_is_reported() {
        let log = log();
        let record = watcher(vec![
            events(2, &log[&2]),
            Delivered::Progress { revision: 4 },
            events(3, &log[&3]),
        ]);
        one_containing(
            &watcher_anomalies(&record, &log),
            "events of revision 3 after a progress notification claimed revision 4",
        );
    }

    #[test]
    fn a_resume_that_skips_is_reported() {
        let log = log();
        let mut record = faithful_watcher();
        record.delivered[3] = Delivered::Resumed {
            start_revision: 6,
            why: "test".into(),
        };
        one_containing(
            &watcher_anomalies(&record, &log),
            "resumed at revision 6 instead of 5",
        );
    }

    #[test]
    fn watchers_that_disagree_are_reported() {
        let first = faithful_watcher();
        let mut second = faithful_watcher();
        second.name = "other".into();
        second.delivered[1] = events(3, &[Change::put(A, "91/t1"), Change::put(B, "109/t1")]);
        one_containing(
            &watcher_agreement_anomalies(&[first, second]),
            "watchers test and other disagree at revisions 3",
        );
    }

    #[test]
    fn revisions_against_real_time_order_are_reported() {
        let mut stamps = stamps();
        // The read of op 8 (invoked at 90) is answered an older revision than transfer 3
        // (acknowledged at 55) wrote.
        let read = stamps
            .iter_mut()
            .find(|stamp| stamp.operation == "bank op 8")
            .unwrap();
        read.revision = 4;
        one_containing(
            &real_time_anomalies(&stamps),
            "bank op 3 was answered revision 5 before bank op 8 began, which was answered \
             revision 4",
        );
        // Two writes at one revision.
        let mut stamps = self::stamps();
        stamps.push(Stamp {
            operation: "kv op 2".into(),
            invoke_ns: 1_000,
            complete_ns: 1_001,
            revision: 5,
            writes: vec![ExpectedWrite::Delete {
                key: "kv/r0".into(),
            }],
        });
        let anomalies = real_time_anomalies(&stamps);
        one_containing(&anomalies, "a write must come strictly later");
        one_containing(&anomalies, "writes share revision 5: bank op 3, kv op 2");
    }

    #[test]
    fn members_that_differ_are_reported() {
        let log = log();
        let mut other = log.clone();
        other.insert(3, vec![Change::put(A, "90/t1")]);
        other.remove(&4);
        let anomalies = log_anomalies(&[(1, log), (2, other)]);
        one_containing(&anomalies, "node 2's history has no change at revisions 4");
        one_containing(
            &anomalies,
            "nodes 1 and 2 disagree on the history: revision 3",
        );
        one_containing(
            &member_revision_anomalies(&[(1, 5), (2, 4)]),
            "node 1 at 5, node 2 at 4",
        );
    }

    #[test]
    fn a_lost_acknowledged_kv_write_is_reported() {
        let mut log = log();
        log.insert(4, vec![Change::put("kv/r0", "v0")]);
        one_containing(
            &acknowledged_write_anomalies(&stamps(), &log),
            "kv op 1 was acknowledged at revision 4 but that revision holds put kv/r0=\"v0\"",
        );
    }
}
