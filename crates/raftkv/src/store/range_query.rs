//! Range reads as etcd answers them: the keys of a [`KeyRange`] at a revision, filtered,
//! sorted, limited and counted.
//!
//! ```text
//!  RangeQuery { range, revision, limit, sort, filters, keys_only, count_only }
//!        │ revision readable? (0: now) ── no ──► RevisionError (compacted / future)
//!        ▼
//!  every key of the range at the revision ──► count (all of them, whatever else is asked)
//!        │ count_only ──► no keys
//!        ▼
//!  filters (min/max mod and create revision) ─► sort (a target other than the key with no
//!  order sorts ascending) ─► first `limit` (`more` when keys were cut) ─► keys_only: no values
//! ```
//!
//! One function serves the Range RPC (after its read barrier, at the store's current revision)
//! and a transaction's range operations (which also see the transaction's earlier writes), so
//! both answer alike. The rules are etcd's, checked against etcd 3.4: `count` is the number of
//! keys in the range at the revision before the filters and the limit apply; `more` says the
//! limit cut keys that passed the filters; an end at or before the start selects nothing.
//! Ties of a sort keep key order, so every replica answers the same.

use std::cmp::Ordering;

use bytes::Bytes;

use super::history::{History, RevisionError, VersionedValue};
use super::range::KeyRange;

/// The order a range's keys are returned in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Key order (but see [`RangeQuery::sort_target`]).
    #[default]
    None,
    /// Ascending by the target.
    Ascend,
    /// Descending by the target.
    Descend,
}

/// What a range's keys are sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value, as bytes.
    Value,
}

/// A read of a range of keys (etcd's `RangeRequest`, keys as raftkv keeps them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeQuery {
    /// The keys.
    pub range: KeyRange,
    /// The revision to read at (0: the current one).
    pub revision: u64,
    /// Most keys returned (0: no limit).
    pub limit: u64,
    /// The order.
    pub sort_order: SortOrder,
    /// What to sort by: anything but the key, with [`SortOrder::None`], sorts ascending.
    pub sort_target: SortTarget,
    /// Return the keys without their values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Only keys last changed at or after this revision (0: no bound).
    pub min_mod_revision: u64,
    /// Only keys last changed at or before this revision (0: no bound).
    pub max_mod_revision: u64,
    /// Only keys created at or after this revision (0: no bound).
    pub min_create_revision: u64,
    /// Only keys created at or before this revision (0: no bound).
    pub max_create_revision: u64,
}

impl RangeQuery {
    /// Every key of `range` at the current revision, in key order, with values.
    pub fn of(range: KeyRange) -> RangeQuery {
        RangeQuery {
            range,
            revision: 0,
            limit: 0,
            sort_order: SortOrder::None,
            sort_target: SortTarget::Key,
            keys_only: false,
            count_only: false,
            min_mod_revision: 0,
            max_mod_revision: 0,
            min_create_revision: 0,
            max_create_revision: 0,
        }
    }

    /// Whether `version` passes the revision filters.
    fn passes(&self, version: &VersionedValue) -> bool {
        let at_least = |bound: u64, value: u64| bound == 0 || value >= bound;
        let at_most = |bound: u64, value: u64| bound == 0 || value <= bound;
        at_least(self.min_mod_revision, version.mod_revision)
            && at_most(self.max_mod_revision, version.mod_revision)
            && at_least(self.min_create_revision, version.create_revision)
            && at_most(self.max_create_revision, version.create_revision)
    }

    fn filtered(&self) -> bool {
        self.min_mod_revision != 0
            || self.max_mod_revision != 0
            || self.min_create_revision != 0
            || self.max_create_revision != 0
    }

    /// The order asked for, as etcd reads it: `None` for key order ascending.
    fn effective_order(&self) -> Option<(SortTarget, bool)> {
        match (self.sort_order, self.sort_target) {
            (SortOrder::None, SortTarget::Key) | (SortOrder::Ascend, SortTarget::Key) => None,
            (SortOrder::None | SortOrder::Ascend, target) => Some((target, false)),
            (SortOrder::Descend, target) => Some((target, true)),
        }
    }
}

/// What a range read found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResult {
    /// The keys, in the order asked, with their versions (values empty when keys only).
    pub kvs: Vec<(String, VersionedValue)>,
    /// The limit cut keys that passed the filters.
    pub more: bool,
    /// Keys in the range at the revision, before the filters and the limit.
    pub count: u64,
}

/// Reads `query` from `history`. `now` is the revision a query without one reads at: the
/// store's revision for a read, `u64::MAX` for a transaction's operation (which sees the
/// transaction's earlier writes). A query's own revision must be readable: at least the
/// compaction revision and at most the store's revision.
pub(super) fn run(
    history: &History,
    query: &RangeQuery,
    now: u64,
) -> Result<RangeResult, RevisionError> {
    let revision = if query.revision == 0 {
        now
    } else {
        history.check_readable(query.revision)?;
        query.revision
    };
    let mut matching = history.range_at(&query.range, revision);
    if query.count_only {
        return Ok(RangeResult {
            kvs: Vec::new(),
            more: false,
            count: len_u64(matching.count()),
        });
    }
    let order = query.effective_order();
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let take = |key: &str, version: &VersionedValue| {
        let mut version = version.clone();
        if query.keys_only {
            version.value = Bytes::new();
        }
        (key.to_owned(), version)
    };
    if order.is_none() && !query.filtered() {
        // Key order and no filter: keep the first `limit`, only count the rest (no copies).
        let mut kvs = Vec::new();
        let mut count = 0_usize;
        for (key, version) in matching.by_ref() {
            if limit == 0 || kvs.len() < limit {
                kvs.push(take(key, version));
            }
            count += 1;
        }
        let more = limit != 0 && count > limit;
        return Ok(RangeResult {
            kvs,
            more,
            count: len_u64(count),
        });
    }
    let mut count = 0_usize;
    let mut selected: Vec<(&str, &VersionedValue)> = Vec::new();
    for (key, version) in matching {
        count += 1;
        if query.passes(version) {
            selected.push((key, version));
        }
    }
    if let Some((target, descending)) = order {
        // Stable: ties stay in key order on every replica.
        selected.sort_by(|left, right| {
            let ordering = compare_by(target, left, right);
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
    let more = limit != 0 && selected.len() > limit;
    if more {
        selected.truncate(limit);
    }
    Ok(RangeResult {
        kvs: selected
            .into_iter()
            .map(|(key, version)| take(key, version))
            .collect(),
        more,
        count: len_u64(count),
    })
}

fn compare_by(
    target: SortTarget,
    (left_key, left): &(&str, &VersionedValue),
    (right_key, right): &(&str, &VersionedValue),
) -> Ordering {
    match target {
        SortTarget::Key => left_key.cmp(right_key),
        SortTarget::Version => left.version.cmp(&right.version),
        SortTarget::Create => left.create_revision.cmp(&right.create_revision),
        SortTarget::Mod => left.mod_revision.cmp(&right.mod_revision),
        SortTarget::Value => left.value.cmp(&right.value),
    }
}

fn len_u64(length: usize) -> u64 {
    // usize is at most 64 bits on every supported target, so this never truncates.
    length as u64
}
