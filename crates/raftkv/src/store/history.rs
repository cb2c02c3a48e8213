//! Revisions and multi-version history: every key's versions since the compaction revision,
//! the order the changes were made in, and the reads at a past revision they answer.
//!
//! ```text
//!  keys: OrdMap<key, KeyVersions>                   log: VecDeque<LogRecord>
//!  (here compacted at 4)                            (every change at or after 4)
//!  ┌──────┬──────────────────────────────────┐      ┌──────────┬─────┐
//!  │ "a"  │ older: [a@3, a@5]   latest: a@9  │◄─────│ rev 5    │ "a" │  one record per change,
//!  │ "b"  │ older: [b@6]        latest: b@7✝ │◄─────│ rev 6    │ "b" │  revision order; within a
//!  │ "c"  │ older: [c@2]        latest: c@7  │◄─────│ rev 7    │ "b" │  revision, the command's
//!  └──────┴──────────────────────────────────┘      │ rev 7    │ "c" │  order (✝: a delete,
//!   versions ascending by mod_revision; a@3 and     │ rev 9    │ "a" │  kept as a tombstone)
//!   c@2 are what reads at 4 see                     └──────────┴─────┘
//!
//!  get / scan        ── the latest version (a tombstone reads as absent)
//!  get_at / scan_at  ── the latest version with mod_revision <= R, per key (binary search)
//!  changes_since(S)  ── Key: that key's versions >= S; Prefix: the log from S, values looked
//!                       up by (key, revision)
//!  compact(C)        ── C is the oldest readable revision at once; the log records before C
//!                       go; the keys they name, each once in key order, wait to have every
//!                       version a read at >= C cannot see dropped, a few per command applied
//!                       after it (compact_some), so that no one command pays for them all
//! ```
//!
//! The store's revision starts at 1 (the empty store) and rises by exactly one for every
//! command that changes at least one key; all that command's changes carry that revision (the
//! same semantics as etcd, so its API maps onto this one directly). Per key, `create_revision`
//! is the revision that created it since it last did not exist, `mod_revision` the revision of
//! its latest change and `version` the number of changes since its creation; a delete leaves a
//! *tombstone* (empty value, `mod_revision` the delete's revision, `create_revision` and
//! `version` 0) so that reads at a revision before it still see the key and reads after it do
//! not.
//!
//! Compaction at C keeps, per key, the latest version with `mod_revision <= C` (what reads at
//! C and later see) and everything after it; a tombstone older than C with nothing after it
//! goes, and the key with it. A tombstone made *at* C stays until a later compaction, so that
//! a watch starting at C (still a valid start) is told of the delete. Every version with
//! `mod_revision >= C` is therefore held, and the log names exactly those versions: that is
//! what lets a snapshot write the log as the versions in log order and restore it.
//!
//! Until compact_some reaches a key, it may still hold versions older than the one reads at C
//! see: no read reaches them (every read at a revision checks it against C, and reads at C or
//! later find that version or a later one first), and a snapshot writes only what the
//! history would hold once every waiting key is compacted (`History::base`), so replicas
//! agree on their snapshots whatever their progress. Measured: a compaction of the ~10,000
//! revisions a busy leader proposes every half second took 20–30 ms on every node, all at
//! once, in the apply of one command: every request in flight waited for it twice a second.
//!
//! Why the log beside the per-key lists: a watch on a prefix catching up from revision S must
//! see every change since S in revision order, and a transaction's changes in the order it
//! made them; the per-key lists know neither across keys. The log costs one record (a revision
//! and a shared key, 24 bytes) per change, and makes catch-up and compaction cost what changed
//! since S (or since the last compaction), not the size of the store.
//!
//! The current version of every key is the `latest` field inline in the map, so a read of the
//! current state is one map search, as it was before there was history; older versions live in
//! a vector that is not allocated until a key changes a second time.
//!
//! Measured (`tests/store/apply_cost.rs`, release build, 1M overwrites of 10,000 keys with
//! 100-byte values): the resident set grows by about 240 bytes per history version held,
//! that is per revision of a one-key write: the value's own allocation (about 112 bytes),
//! its 56-byte `VersionedValue` in the key's vector (plus the vector's growth slack), the
//! 24-byte log record, and the shared-buffer header the value gets when the change is handed
//! to watchers. Retention is what bounds it: 1M revisions of such writes hold about 240 MB.
//! (Measured before leases; each version's lease id has since made `VersionedValue` 64 bytes,
//! 8 more per version. A key attached to a lease also costs a node in the lease's set, which
//! shares the key's text with this map.)

use std::collections::VecDeque;
use std::mem;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use imbl::OrdMap;
use thiserror::Error;

/// A key's value at one version, with the key's revisions at that version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionedValue {
    /// The value (empty for a delete).
    pub value: Bytes,
    /// The revision that created the key, since it last did not exist (0 for a delete).
    pub create_revision: u64,
    /// The revision of this change.
    pub mod_revision: u64,
    /// Changes since the key's creation: 1 after the first put (0 for a delete).
    pub version: u64,
    /// The lease the key is attached to at this version (0: none, and always for a delete).
    pub lease: u64,
}

impl VersionedValue {
    /// Whether the key exists at this version (`false`: this is a delete's tombstone).
    pub fn exists(&self) -> bool {
        self.version != 0
    }

    /// The tombstone a delete at `revision` leaves.
    fn tombstone(revision: u64) -> VersionedValue {
        VersionedValue {
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
            lease: 0,
        }
    }
}

/// What a change did to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// The key was set (created or changed).
    Put,
    /// The key was removed.
    Delete,
}

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Put or delete.
    pub kind: ChangeKind,
    /// The key.
    pub key: String,
    /// The key after the change: for a delete, an empty value, `mod_revision` the delete's
    /// revision, and `create_revision` and `version` 0.
    pub value: VersionedValue,
}

impl Change {
    fn from_version(key: &str, value: VersionedValue) -> Change {
        let kind = if value.exists() {
            ChangeKind::Put
        } else {
            ChangeKind::Delete
        };
        Change {
            kind,
            key: key.to_owned(),
            value,
        }
    }
}

/// Every change of one revision, in the order the command made them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionChanges {
    /// The revision of every change here.
    pub revision: u64,
    /// The changes, in the order the command made them (at least one).
    pub changes: Vec<Change>,
}

/// Which keys a watch or a history query looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySelector {
    /// Exactly this key.
    Key(String),
    /// Every key starting with this prefix; the empty prefix selects every key.
    Prefix(String),
    /// Every key in an etcd range ([`super::KeyRange`]).
    Range(super::KeyRange),
}

impl KeySelector {
    /// Whether `key` is selected.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            KeySelector::Key(selected) => key == selected,
            KeySelector::Prefix(prefix) => key.starts_with(prefix.as_str()),
            KeySelector::Range(range) => range.contains(key),
        }
    }
}

/// Why a read or a watch at a revision cannot be served.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RevisionError {
    /// The revision is older than the compaction revision: its history is gone.
    #[error(
        "revision {requested} is compacted: the oldest revision still available is \
         {compact_revision} (the current revision is {current})"
    )]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still available.
        compact_revision: u64,
        /// The store's current revision.
        current: u64,
    },
    /// The revision is later than the store's current one.
    #[error(
        "revision {requested} is in the future: the current revision is {current} (the oldest \
         revision still available is {compact_revision})"
    )]
    Future {
        /// The revision asked for.
        requested: u64,
        /// The store's current revision.
        current: u64,
        /// The oldest revision still available.
        compact_revision: u64,
    },
}

/// One key's held versions.
#[derive(Clone, Debug)]
struct KeyVersions {
    /// The older versions, by increasing `mod_revision`.
    /// Invariant: every `mod_revision` here is below `latest.mod_revision`.
    older: Vec<VersionedValue>,
    /// The latest version: the current value, or a tombstone if the key is deleted.
    latest: VersionedValue,
}

impl KeyVersions {
    /// The version a read at `revision` sees (a tombstone included), if any is held.
    fn at(&self, revision: u64) -> Option<&VersionedValue> {
        if self.latest.mod_revision <= revision {
            return Some(&self.latest);
        }
        let later = self
            .older
            .partition_point(|version| version.mod_revision <= revision);
        later.checked_sub(1).map(|at| &self.older[at])
    }

    /// The version made at exactly `revision`, if held.
    fn made_at(&self, revision: u64) -> Option<&VersionedValue> {
        self.at(revision)
            .filter(|version| version.mod_revision == revision)
    }

    /// Every held version, oldest first.
    fn iter(&self) -> impl Iterator<Item = &VersionedValue> {
        self.older.iter().chain(std::iter::once(&self.latest))
    }
}

/// One change in the log: the revision and the key (its version is found in the key's list).
#[derive(Clone, Debug)]
struct LogRecord {
    revision: u64,
    key: Arc<str>,
}

/// A change [`History::put`] or [`History::delete`] made, with the lease the key was attached
/// to before it (0: none, or the key did not exist): the lease table moves the key by it.
#[derive(Debug)]
pub(super) struct Written {
    /// The change.
    pub(super) change: Change,
    /// The lease of the key's version before the change.
    pub(super) previous_lease: u64,
}

/// What [`History::push_version`] made.
struct Pushed {
    /// The key's new latest version.
    version: VersionedValue,
    /// The lease of the latest version before it (0 if none: a tombstone's is 0).
    previous_lease: u64,
}

/// The held history of every key, and the store's revisions.
#[derive(Clone, Debug)]
pub(super) struct History {
    /// Every key with at least one held version. A persistent map: a clone shares every
    /// node with the original (each copied only when one side changes it), so that a snapshot
    /// takes its image of the whole store in O(1) on the apply path instead of copying it.
    keys: OrdMap<Arc<str>, KeyVersions>,
    /// Every change with `revision >= compact_revision`, in the order made.
    /// Invariant: names exactly the held versions with `mod_revision >= compact_revision`.
    log: VecDeque<LogRecord>,
    /// The revision of the last change (1: the empty store).
    /// Invariant: `compact_revision <= revision`.
    revision: u64,
    /// The oldest revision still readable.
    compact_revision: u64,
    /// Keys whose latest version is not a tombstone.
    live_keys: usize,
    /// `key.len() + value.len()` over the live keys' latest versions.
    live_bytes: u64,
    /// Held versions that are not a live key's latest one (older versions and tombstones).
    history_versions: usize,
    /// `value.len()` over those versions.
    history_bytes: u64,
    /// Keys a compaction made unreadable versions of that may still hold them.
    waiting: WaitingCompaction,
}

/// The keys [`History::compact`] left for [`History::compact_some`]: in key order, those
/// before `next` done. Shared (a snapshot's image clones the history on the apply path).
#[derive(Clone, Debug, Default)]
struct WaitingCompaction {
    keys: Arc<[Arc<str>]>,
    next: usize,
}

impl WaitingCompaction {
    fn remaining(&self) -> &[Arc<str>] {
        &self.keys[self.next..]
    }
}

fn len_u64(length: usize) -> u64 {
    // usize is at most 64 bits on every supported target, so this never truncates.
    length as u64
}

impl History {
    /// The empty store at revision 1, compacted at 1.
    pub(super) fn new() -> History {
        History {
            keys: OrdMap::new(),
            log: VecDeque::new(),
            revision: 1,
            compact_revision: 1,
            live_keys: 0,
            live_bytes: 0,
            history_versions: 0,
            history_bytes: 0,
            waiting: WaitingCompaction::default(),
        }
    }

    pub(super) fn revision(&self) -> u64 {
        self.revision
    }

    pub(super) fn compact_revision(&self) -> u64 {
        self.compact_revision
    }

    pub(super) fn live_keys(&self) -> usize {
        self.live_keys
    }

    pub(super) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    pub(super) fn history_versions(&self) -> usize {
        self.history_versions
    }

    pub(super) fn history_bytes(&self) -> u64 {
        self.history_bytes
    }

    /// The revision the command being applied writes at.
    fn pending_revision(&self) -> u64 {
        self.revision + 1
    }

    /// The current version of `key`, if it exists.
    pub(super) fn current(&self, key: &str) -> Option<&VersionedValue> {
        self.keys
            .get(key)
            .map(|versions| &versions.latest)
            .filter(|latest| latest.exists())
    }

    /// `Ok` if a read at `revision` can be served.
    pub(super) fn check_readable(&self, revision: u64) -> Result<(), RevisionError> {
        if revision < self.compact_revision {
            return Err(RevisionError::Compacted {
                requested: revision,
                compact_revision: self.compact_revision,
                current: self.revision,
            });
        }
        if revision > self.revision {
            return Err(RevisionError::Future {
                requested: revision,
                current: self.revision,
                compact_revision: self.compact_revision,
            });
        }
        Ok(())
    }

    /// The version of `key` a read at `revision` (checked readable) sees, if it exists then.
    pub(super) fn at(&self, key: &str, revision: u64) -> Option<&VersionedValue> {
        self.keys
            .get(key)
            .and_then(|versions| versions.at(revision))
            .filter(|version| version.exists())
    }

    /// Keys starting with `prefix` that exist at `revision` (checked readable), in key order,
    /// with their versions then; at most `limit`, and whether more followed.
    pub(super) fn scan_at(
        &self,
        prefix: &str,
        limit: usize,
        revision: u64,
    ) -> (Vec<(&str, &VersionedValue)>, bool) {
        let mut matching = self
            .keys
            .range::<_, str>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, versions)| {
                let version = versions.at(revision).filter(|version| version.exists())?;
                Some((&**key, version))
            });
        let items: Vec<_> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        assert!(items.len() <= limit, "a scan returns at most its limit");
        (items, more)
    }

    /// The keys of `range` that exist at `revision` (checked readable, or `u64::MAX` for the
    /// latest versions including the pending command's), in key order, with their versions
    /// then. Lazy: a caller that stops early pays for what it took.
    pub(super) fn range_at<'a>(
        &'a self,
        range: &'a super::KeyRange,
        revision: u64,
    ) -> impl Iterator<Item = (&'a str, &'a VersionedValue)> + 'a {
        // An empty range selects nothing; starting past its end keeps `take_while` honest.
        let empty = range.is_empty();
        self.keys
            .range::<_, str>((Bound::Included(range.start.as_str()), Bound::Unbounded))
            .take_while(move |(key, _)| !empty && range.contains(key))
            .filter_map(move |(key, versions)| {
                let version = versions.at(revision).filter(|version| version.exists())?;
                Some((&**key, version))
            })
    }

    /// [`History::scan_at`] of the latest versions, including those the command being
    /// applied made (a transaction's reads see its earlier writes).
    pub(super) fn scan_latest(
        &self,
        prefix: &str,
        limit: usize,
    ) -> (Vec<(&str, &VersionedValue)>, bool) {
        self.scan_at(prefix, limit, u64::MAX)
    }

    /// Sets `key` to `value` at the pending revision and returns the change, with the lease of
    /// the version it replaced. The caller [commits](History::commit) the command's changes
    /// once it made them all.
    ///
    /// Panics if the command already changed `key` (a transaction changes each key once; that
    /// is checked before it runs).
    pub(super) fn put(&mut self, key: String, value: Bytes, lease: u64) -> Written {
        let revision = self.pending_revision();
        let pushed = self.push_version(&key, |latest| {
            Some(match latest.filter(|latest| latest.exists()) {
                Some(latest) => VersionedValue {
                    value,
                    create_revision: latest.create_revision,
                    mod_revision: revision,
                    version: latest.version + 1,
                    lease,
                },
                None => VersionedValue {
                    value,
                    create_revision: revision,
                    mod_revision: revision,
                    version: 1,
                    lease,
                },
            })
        });
        let pushed = pushed.expect("a put always makes a version");
        Written {
            change: Change {
                kind: ChangeKind::Put,
                key,
                value: pushed.version,
            },
            previous_lease: pushed.previous_lease,
        }
    }

    /// Deletes `key` at the pending revision if it exists, returning the change with the lease
    /// the key was attached to.
    pub(super) fn delete(&mut self, key: &str) -> Option<Written> {
        let revision = self.pending_revision();
        let pushed = self.push_version(key, |latest| {
            latest
                .filter(|latest| latest.exists())
                .map(|_| VersionedValue::tombstone(revision))
        })?;
        Some(Written {
            change: Change {
                kind: ChangeKind::Delete,
                key: key.to_owned(),
                value: pushed.version,
            },
            previous_lease: pushed.previous_lease,
        })
    }

    /// The map's shared text of the key the latest change was made to (a lease lists its keys
    /// with it, instead of a copy): the log's last record names it, so this is no search.
    pub(super) fn last_changed_key(&self) -> Option<&Arc<str>> {
        self.log.back().map(|record| &record.key)
    }

    /// Makes `make(latest version)` the latest version of `key` unless it gives `None`, with
    /// one search of the map (this runs on every write on every node), keeping the counters
    /// and the log. Returns the version made, and the lease of the one it replaced, which the
    /// caller needs for the lease table and would otherwise search the map again for.
    fn push_version(
        &mut self,
        key: &str,
        make: impl FnOnce(Option<&VersionedValue>) -> Option<VersionedValue>,
    ) -> Option<Pushed> {
        let key_bytes = len_u64(key.len());
        let (shared_key, new, previous_lease) = match self.keys.get_key_value_mut(key) {
            Some((shared_key, versions)) => {
                let new = make(Some(&versions.latest))?;
                assert!(
                    versions.latest.mod_revision < new.mod_revision,
                    "invariant one-change-per-key-per-revision: {key} changed twice at {}",
                    new.mod_revision
                );
                let previous = mem::replace(&mut versions.latest, new.clone());
                // A tombstone's lease is 0 (invariant tombstone-empty): a deleted key is
                // attached to nothing.
                let previous_lease = previous.lease;
                if previous.exists() {
                    // A live version becomes history (a tombstone already was).
                    self.live_keys -= 1;
                    self.live_bytes -= key_bytes + len_u64(previous.value.len());
                    self.history_versions += 1;
                    self.history_bytes += len_u64(previous.value.len());
                }
                versions.older.push(previous);
                (Arc::clone(shared_key), new, previous_lease)
            }
            None => {
                let new = make(None)?;
                let shared_key: Arc<str> = Arc::from(key);
                self.keys.insert(
                    Arc::clone(&shared_key),
                    KeyVersions {
                        older: Vec::new(),
                        latest: new.clone(),
                    },
                );
                (shared_key, new, 0)
            }
        };
        if new.exists() {
            self.live_keys += 1;
            self.live_bytes += key_bytes + len_u64(new.value.len());
        } else {
            self.history_versions += 1;
        }
        self.log.push_back(LogRecord {
            revision: new.mod_revision,
            key: shared_key,
        });
        Some(Pushed {
            version: new,
            previous_lease,
        })
    }

    /// Ends the command that made `changes` (with [`History::put`] and [`History::delete`]):
    /// if it changed anything, the store moves to their revision.
    pub(super) fn commit(&mut self, changes: Vec<Change>) -> Option<RevisionChanges> {
        if changes.is_empty() {
            return None;
        }
        let revision = self.pending_revision();
        assert!(
            changes
                .iter()
                .all(|change| change.value.mod_revision == revision),
            "invariant changes-share-their-revision"
        );
        self.revision = revision;
        Some(RevisionChanges { revision, changes })
    }

    /// Makes `compact_revision` the oldest readable revision and forgets the log before it;
    /// the versions no read at it or later can see are dropped later, by
    /// [`History::compact_some`] (module documentation). The caller checked it is between the
    /// current compaction revision and the current revision.
    pub(super) fn compact(&mut self, compact_revision: u64) {
        assert!(
            self.compact_revision <= compact_revision && compact_revision <= self.revision,
            "compaction at {compact_revision} outside {}..={}",
            self.compact_revision,
            self.revision
        );
        // Only keys changed at or after the previous compaction revision can hold versions to
        // drop: every other key was left with one version then (or waits from an earlier
        // compaction: it stays waiting, and is compacted at the newer revision).
        let changed_until = self
            .log
            .partition_point(|record| record.revision <= compact_revision);
        // Each such key once, in key order, rather than once per log record in revision
        // order: a key changed many times is searched once, and each search walks the map's
        // upper nodes the previous one just brought into cache, where revision order sends
        // every search to a random part of a map far larger than the cache. (Compacting a key
        // is idempotent and touches no other key, so the order cannot change the result.)
        let mut waiting: Vec<Arc<str>> = self
            .log
            .range(..changed_until)
            .map(|record| Arc::clone(&record.key))
            .chain(self.waiting.remaining().iter().cloned())
            .collect();
        // The map's order is `str`'s, so neighbours here are neighbours there.
        waiting.sort_unstable();
        waiting.dedup();
        self.waiting = WaitingCompaction {
            keys: waiting.into(),
            next: 0,
        };
        let forgotten = self
            .log
            .partition_point(|record| record.revision < compact_revision);
        self.log.drain(..forgotten);
        self.compact_revision = compact_revision;
    }

    /// Drops the versions no read can see of up to `keys` of the keys the last compactions
    /// left waiting.
    pub(super) fn compact_some(&mut self, keys: usize) {
        let waiting = &mut self.waiting;
        let until = waiting.keys.len().min(waiting.next.saturating_add(keys));
        let (mut dropped_versions, mut dropped_bytes) = (0, 0);
        for key in &waiting.keys[waiting.next..until] {
            let (versions, bytes) = compact_key(&mut self.keys, key, self.compact_revision);
            dropped_versions += versions;
            dropped_bytes += bytes;
        }
        waiting.next = until;
        if waiting.next == waiting.keys.len() && !waiting.keys.is_empty() {
            *waiting = WaitingCompaction::default();
        }
        self.history_versions -= dropped_versions;
        self.history_bytes -= dropped_bytes;
    }

    /// Keys a compaction left that may still hold versions no read can see.
    pub(super) fn compaction_waiting(&self) -> usize {
        self.waiting.remaining().len()
    }

    /// Every change with revision `>= start_revision` (checked not compacted) that `selector`
    /// selects, grouped by revision in revision order, stopping at the first revision boundary
    /// after `changes_max` changes (a revision is never split); and whether it stopped early.
    pub(super) fn changes_since(
        &self,
        start_revision: u64,
        selector: &KeySelector,
        changes_max: usize,
    ) -> (Vec<RevisionChanges>, bool) {
        assert!(
            start_revision >= self.compact_revision,
            "history before the compaction revision is asked for"
        );
        let mut grouped: Vec<RevisionChanges> = Vec::new();
        let mut count = 0;
        let mut push = |change: Change| -> bool {
            let revision = change.value.mod_revision;
            match grouped.last_mut() {
                Some(last) if last.revision == revision => last.changes.push(change),
                _ => {
                    if count >= changes_max {
                        return false;
                    }
                    grouped.push(RevisionChanges {
                        revision,
                        changes: vec![change],
                    });
                }
            }
            count += 1;
            true
        };
        match selector {
            KeySelector::Key(key) => {
                // One key: its own list is in revision order and short.
                if let Some(versions) = self.keys.get(key.as_str()) {
                    for version in versions.iter() {
                        if version.mod_revision >= start_revision
                            && !push(Change::from_version(key, version.clone()))
                        {
                            return (grouped, true);
                        }
                    }
                }
            }
            KeySelector::Prefix(_) | KeySelector::Range(_) => {
                let from = self
                    .log
                    .partition_point(|record| record.revision < start_revision);
                for record in self.log.range(from..) {
                    if !selector.matches(&record.key) {
                        continue;
                    }
                    let version = self
                        .keys
                        .get(&record.key)
                        .and_then(|versions| versions.made_at(record.revision))
                        .expect("invariant log-names-held-versions");
                    if !push(Change::from_version(&record.key, version.clone())) {
                        return (grouped, true);
                    }
                }
            }
        }
        (grouped, false)
    }

    /// Adds `key` with `value` as a snapshot without history (format 1 or 2) gives it: created
    /// at revision 1, version 1. `false` (and nothing added) unless `key` sorts after every key
    /// held.
    pub(super) fn insert_unversioned(&mut self, key: &str, value: Bytes) -> bool {
        assert_eq!(
            self.revision, 1,
            "unversioned keys are restored at revision 1"
        );
        if !self.sorts_last(key) {
            return false;
        }
        let made = self.push_version(key, |_| {
            Some(VersionedValue {
                value,
                create_revision: 1,
                mod_revision: 1,
                version: 1,
                lease: 0,
            })
        });
        assert!(made.is_some(), "a new key always gets its version");
        true
    }

    fn sorts_last(&self, key: &str) -> bool {
        self.keys.get_max().is_none_or(|(last, _)| **last < *key)
    }

    /// Each key's version older than the compaction revision, when it has one (never a
    /// tombstone), in key order: with [`History::logged`], every held version.
    /// A key still waiting for [`History::compact_some`] gives the version it will keep, not
    /// the older ones it still holds: snapshots are the same whatever the progress.
    pub(super) fn base(&self) -> impl Iterator<Item = (&str, &VersionedValue)> {
        let compact_revision = self.compact_revision;
        self.keys.iter().filter_map(move |(key, versions)| {
            // The version reads at the compaction revision see; kept unless it is made at it
            // (the log names it) or is a tombstone older than it (dropped with its key).
            let seen = versions.at(compact_revision)?;
            (seen.mod_revision < compact_revision && seen.exists()).then_some((&**key, seen))
        })
    }

    /// Every live key attached to a lease, in key order, with that lease.
    pub(super) fn leased_keys(&self) -> impl Iterator<Item = (&Arc<str>, u64)> {
        self.keys.iter().filter_map(|(key, versions)| {
            let latest = &versions.latest;
            (latest.exists() && latest.lease != 0).then_some((key, latest.lease))
        })
    }

    /// Every version since the compaction revision, in the order made.
    pub(super) fn logged(&self) -> impl Iterator<Item = (&str, &VersionedValue)> {
        self.log.iter().map(|record| {
            let version = self
                .keys
                .get(&record.key)
                .and_then(|versions| versions.made_at(record.revision))
                .expect("invariant log-names-held-versions");
            (&*record.key, version)
        })
    }

    /// The history a snapshot describes ([`History::base`] and [`History::logged`] of the
    /// history it was taken from); the reason when it is not one [`History::check_invariants`]
    /// accepts. Never panics, whatever it is given.
    pub(super) fn restore(
        revision: u64,
        compact_revision: u64,
        base: impl IntoIterator<Item = (String, VersionedValue)>,
        logged: impl IntoIterator<Item = (String, VersionedValue)>,
    ) -> Result<History, &'static str> {
        if !(1 <= compact_revision && compact_revision <= revision) {
            return Err("the compaction revision is not between 1 and the revision");
        }
        let mut history = History::new();
        history.revision = revision;
        history.compact_revision = compact_revision;
        for (key, version) in base {
            if !history.sorts_last(&key) {
                return Err("base keys not in strictly increasing order");
            }
            if !version.exists() || version.mod_revision >= compact_revision {
                return Err("a base version is a delete or not older than the compaction");
            }
            check_first_held(&version)?;
            history.push_version(&key, |_| Some(version));
        }
        // The log names only the versions since the compaction, which follow.
        history.log.clear();
        let mut last_revision = compact_revision;
        for (key, version) in logged {
            let in_order = last_revision <= version.mod_revision
                && version.mod_revision <= last_revision + 1
                && version.mod_revision <= revision;
            if !in_order {
                return Err("changes out of revision order, with a gap, or after the revision");
            }
            last_revision = version.mod_revision;
            let latest = history
                .keys
                .get(key.as_str())
                .map(|versions| &versions.latest);
            check_next_version(latest, &version, compact_revision)?;
            history.push_version(&key, |_| Some(version));
        }
        if revision > compact_revision && last_revision != revision {
            return Err("the changes end before the revision");
        }
        Ok(history)
    }

    /// Panics, naming the invariant, if the history contradicts itself. Linear in its size.
    pub(super) fn check_invariants(&self) {
        if !self.waiting.keys.is_empty() {
            let remaining = self.waiting.remaining();
            assert!(
                remaining.windows(2).all(|pair| *pair[0] < *pair[1]),
                "invariant waiting-keys-sorted-once"
            );
            // Every key holding versions no read can see must be among the waiting ones: once
            // they are compacted, nothing may be left over.
            let mut compacted = self.clone();
            compacted.compact_some(usize::MAX);
            compacted.check_invariants();
            return;
        }
        assert!(
            1 <= self.compact_revision && self.compact_revision <= self.revision,
            "invariant compact-revision-in-range"
        );
        let (mut live_keys, mut live_bytes) = (0, 0);
        let (mut history_versions, mut history_bytes) = (0, 0);
        let mut from_compaction = 0;
        for (key, versions) in &self.keys {
            let mut previous: Option<&VersionedValue> = None;
            for version in versions.iter() {
                assert!(
                    version.mod_revision <= self.revision,
                    "invariant versions-not-in-future: {key}"
                );
                if version.exists() {
                    let (version_expected, created) = match previous {
                        Some(previous) if previous.exists() => {
                            (previous.version + 1, previous.create_revision)
                        }
                        // After a tombstone: a creation.
                        Some(_) => (1, version.mod_revision),
                        // The oldest held: compaction may have dropped the versions before it.
                        None if version.version == 1 => (1, version.mod_revision),
                        None => (version.version, version.create_revision),
                    };
                    assert_eq!(
                        version.version, version_expected,
                        "invariant version-counts-changes: {key}"
                    );
                    assert_eq!(
                        version.create_revision, created,
                        "invariant create-revision-kept: {key}"
                    );
                    assert!(
                        1 <= version.create_revision
                            && version.create_revision <= version.mod_revision,
                        "invariant create-before-mod: {key}"
                    );
                } else {
                    assert!(
                        version.value.is_empty()
                            && version.create_revision == 0
                            && version.lease == 0,
                        "invariant tombstone-empty: {key}"
                    );
                }
                if let Some(previous) = previous {
                    assert!(
                        previous.mod_revision < version.mod_revision,
                        "invariant versions-sorted: {key}"
                    );
                    assert!(
                        previous.exists() || version.exists(),
                        "invariant no-tombstone-after-tombstone: {key}"
                    );
                } else if !version.exists() {
                    assert_eq!(
                        version.mod_revision, self.compact_revision,
                        "invariant no-tombstone-first-unless-made-at-compaction: {key}"
                    );
                }
                if version.mod_revision >= self.compact_revision {
                    from_compaction += 1;
                    assert!(
                        previous.is_none_or(|previous| {
                            previous.mod_revision >= self.compact_revision
                                || version.mod_revision > self.compact_revision
                        }),
                        "invariant compacted-versions-dropped: {key}"
                    );
                } else {
                    assert!(
                        previous.is_none(),
                        "invariant compacted-to-one-version-before-compaction: {key}"
                    );
                }
                previous = Some(version);
            }
            for version in &versions.older {
                history_versions += 1;
                history_bytes += len_u64(version.value.len());
            }
            if versions.latest.exists() {
                live_keys += 1;
                live_bytes += len_u64(key.len() + versions.latest.value.len());
            } else {
                history_versions += 1;
            }
        }
        assert_eq!(self.live_keys, live_keys, "invariant live-keys-counted");
        assert_eq!(self.live_bytes, live_bytes, "invariant live-bytes-counted");
        assert_eq!(
            (self.history_versions, self.history_bytes),
            (history_versions, history_bytes),
            "invariant history-counted"
        );
        assert_eq!(
            self.log.len(),
            from_compaction,
            "invariant log-names-held-versions: one record per version since compaction"
        );
        let mut previous_revision = self.compact_revision;
        for record in &self.log {
            assert!(
                previous_revision <= record.revision && record.revision <= previous_revision + 1,
                "invariant log-in-revision-order: no revision without a change"
            );
            previous_revision = record.revision;
            let made = self
                .keys
                .get(&record.key)
                .and_then(|versions| versions.made_at(record.revision));
            assert!(made.is_some(), "invariant log-names-held-versions");
        }
        if self.revision > self.compact_revision {
            assert_eq!(
                previous_revision, self.revision,
                "invariant log-reaches-revision"
            );
        }
    }
}

/// `Ok` if `version` may be the oldest held version of its key, made before the compaction
/// revision or at it (the versions before it compacted away).
fn check_first_held(version: &VersionedValue) -> Result<(), &'static str> {
    if version.exists() {
        let created_ok = 1 <= version.create_revision
            && version.create_revision <= version.mod_revision
            && (version.version != 1 || version.create_revision == version.mod_revision);
        if !created_ok {
            return Err("a version's create revision does not fit its mod revision and version");
        }
    } else if !version.value.is_empty() || version.create_revision != 0 || version.lease != 0 {
        return Err("a delete's tombstone has a value, a create revision or a lease");
    }
    Ok(())
}

/// `Ok` if `version`, made at or after `compact_revision`, may follow `latest`, the latest
/// held version of its key (`None`: none held).
fn check_next_version(
    latest: Option<&VersionedValue>,
    version: &VersionedValue,
    compact_revision: u64,
) -> Result<(), &'static str> {
    check_first_held(version)?;
    let Some(latest) = latest else {
        // Nothing held before: a creation, unless made at the compaction revision itself
        // (what came before it is compacted away).
        if version.mod_revision == compact_revision {
            return Ok(());
        }
        return if version.version == 1 {
            Ok(())
        } else {
            Err("a key's oldest version after the compaction is not a creation")
        };
    };
    if latest.mod_revision >= version.mod_revision {
        return Err("a key's versions are not in increasing revision order");
    }
    if latest.mod_revision < compact_revision && version.mod_revision == compact_revision {
        return Err("a version no read can see is held (it is compacted)");
    }
    let fits = match (latest.exists(), version.exists()) {
        (true, true) => {
            version.version == latest.version + 1
                && version.create_revision == latest.create_revision
        }
        (false, true) => version.version == 1,
        (true, false) => true,
        (false, false) => false,
    };
    if fits {
        Ok(())
    } else {
        Err("a key's version does not follow from the one before it")
    }
}

/// Drops the versions of `key` in `keys` no read at `compact_revision` or later sees (the key
/// itself when that is every version); how many versions and value bytes went.
fn compact_key(
    keys: &mut OrdMap<Arc<str>, KeyVersions>,
    key: &str,
    compact_revision: u64,
) -> (usize, u64) {
    // `get_mut` copies every node on the path that a snapshot's image still shares, found or
    // not: a read-only search first keeps a key with nothing to drop from copying them.
    let Some((dropped, held)) = keys.get(key).map(|versions| {
        (
            versions_compacted(versions, compact_revision),
            versions.older.len() + 1,
        )
    }) else {
        return (0, 0);
    };
    if dropped == 0 {
        return (0, 0);
    }
    assert!(dropped <= held, "compaction drops at most every version");
    let dropped_bytes = if dropped == held {
        // Everything goes (the latest is an old tombstone): removed with one search, without
        // first copying the path for a `get_mut`.
        let removed = keys.remove(key).expect("the key was just found");
        removed
            .iter()
            .map(|version| len_u64(version.value.len()))
            .sum()
    } else {
        let versions = keys.get_mut(key).expect("the key was just found");
        versions
            .older
            .drain(..dropped)
            .map(|version| len_u64(version.value.len()))
            .sum()
    };
    (dropped, dropped_bytes)
}

/// How many of a key's oldest versions compaction at `compact_revision` drops: those before
/// the one reads at `compact_revision` see, and that one too if it is a tombstone older than
/// the compaction revision (it hides nothing from anyone).
fn versions_compacted(versions: &KeyVersions, compact_revision: u64) -> usize {
    // The version reads at compact_revision see: the latest with mod_revision <= it.
    let seen_at = versions
        .iter()
        .take_while(|version| version.mod_revision <= compact_revision)
        .count();
    let Some(seen_at) = seen_at.checked_sub(1) else {
        return 0;
    };
    let seen = if seen_at == versions.older.len() {
        &versions.latest
    } else {
        &versions.older[seen_at]
    };
    let drop_seen = !seen.exists() && seen.mod_revision < compact_revision;
    seen_at + usize::from(drop_seen)
}
