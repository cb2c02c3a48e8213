//! Revisions against a naive model: random sequences of writes, transactions, compactions and
//! lease commands (grant, put with a lease, revoke, checkpoint) applied to a machine (and to a
//! second one snapshotted and restored part-way), while a model keeps the whole map of every
//! revision (each version with its lease), the changes that made it and the lease table. After
//! every step every read at every revision, every catch-up since every revision, the history's
//! counters and every lease (TTL, checkpoint, keys) must match the model. Failing cases are shrunk and persisted by proptest
//! (`proptest-regressions/`), which prints the minimal failing input.

use std::collections::BTreeMap;

use proptest::prelude::*;
use raftkv::store::{
    Change, ChangeKind, Compare, CompareOp, CompareTarget, KeyRange, KeySelector, LeaseCheckpoint,
    LeaseError, LeaseInfo, RangeEnd, RangeQuery, RangeResult, RevisionChanges, RevisionError,
    SortOrder, SortTarget, Txn, TxnError, TxnOp, TxnOpOutcome, LEASE_ID_MAX,
};

use super::*;

type State = BTreeMap<String, VersionedValue>;

/// Every revision's whole map, and the changes that made it.
struct Model {
    /// `states[r]`: the store after revision `r` (`states[0]` is unused).
    states: Vec<State>,
    /// `changes[r]`: what revision `r` changed, in order.
    changes: Vec<Vec<Change>>,
    compact_revision: u64,
    /// Every lease now: its TTL and checkpointed remaining time (its keys are the current
    /// state's keys naming it).
    leases: BTreeMap<u64, (u64, Option<u64>)>,
}

impl Model {
    fn new() -> Model {
        Model {
            states: vec![State::new(), State::new()],
            changes: vec![Vec::new(), Vec::new()],
            compact_revision: 1,
            leases: BTreeMap::new(),
        }
    }

    /// `Err` (the refusal) unless `lease` is none or exists.
    fn check_lease(&self, lease: u64) -> Result<(), Outcome> {
        if lease == 0 || self.leases.contains_key(&lease) {
            Ok(())
        } else {
            Err(Outcome::LeaseRefused {
                error: LeaseError::NotFound { id: lease },
            })
        }
    }

    /// Every lease as the machine must describe it.
    fn lease_infos(&self) -> Vec<LeaseInfo> {
        let current = self.states.last().expect("a state");
        self.leases
            .iter()
            .map(|(&id, &(ttl_seconds, remaining_ms))| LeaseInfo {
                id,
                ttl_seconds,
                remaining_ms,
                keys: current
                    .iter()
                    .filter(|(_, version)| version.lease == id)
                    .map(|(key, _)| key.clone())
                    .collect(),
            })
            .collect()
    }

    fn revision(&self) -> u64 {
        self.states.len() as u64 - 1
    }

    fn apply(&mut self, operation: &Operation) -> Outcome {
        let mut work = Working {
            state: self.states.last().expect("a state").clone(),
            changes: Vec::new(),
            revision: self.revision() + 1,
        };
        let outcome = match operation {
            Operation::Put { key, value, lease } => match self.check_lease(*lease) {
                Ok(()) => {
                    work.put(key, value.clone(), *lease);
                    Outcome::Put
                }
                Err(refused) => refused,
            },
            Operation::Delete { key } => Outcome::Deleted {
                existed: work.delete(key),
            },
            Operation::Append { key, suffix } => {
                let current = work.state.get(key);
                let lease = current.map_or(0, |current| current.lease);
                let mut value = current
                    .map(|current| current.value.to_vec())
                    .unwrap_or_default();
                value.extend_from_slice(suffix);
                let length = value.len() as u64;
                work.put(key, Bytes::from(value), lease);
                Outcome::Appended { length }
            }
            Operation::Cas { key, expect, value } => {
                let lease = work.state.get(key).map_or(0, |current| current.lease);
                let current = work.state.get(key).map(|current| current.value.clone());
                if current == *expect {
                    work.put(key, value.clone(), lease);
                    Outcome::Cas {
                        swapped: true,
                        current: None,
                    }
                } else {
                    Outcome::Cas {
                        swapped: false,
                        current,
                    }
                }
            }
            Operation::Compact { revision } => {
                if *revision > self.revision() {
                    Outcome::CompactRefused {
                        error: RevisionError::Future {
                            requested: *revision,
                            current: self.revision(),
                            compact_revision: self.compact_revision,
                        },
                    }
                } else {
                    self.compact_revision = self.compact_revision.max(*revision);
                    Outcome::Compacted {
                        compact_revision: self.compact_revision,
                    }
                }
            }
            Operation::Txn(txn) => work.txn(txn, |lease| self.check_lease(lease)),
            Operation::Announce { .. } | Operation::RaftAddress { .. } => Outcome::Announced,
            Operation::LeaseGrant { id, ttl_seconds } => {
                let error = if *id == 0 || *id > LEASE_ID_MAX {
                    Some(LeaseError::InvalidId { id: *id })
                } else if self.leases.contains_key(id) {
                    Some(LeaseError::AlreadyExists { id: *id })
                } else {
                    None
                };
                match error {
                    Some(error) => Outcome::LeaseRefused { error },
                    None => {
                        self.leases.insert(*id, (*ttl_seconds, None));
                        Outcome::LeaseGranted {
                            id: *id,
                            ttl_seconds: *ttl_seconds,
                        }
                    }
                }
            }
            Operation::LeaseRevoke { id, expired } => {
                if self.leases.remove(id).is_none() {
                    Outcome::LeaseRefused {
                        error: LeaseError::NotFound { id: *id },
                    }
                } else {
                    // The state is a BTreeMap: its keys come in key order, as a revoke's do.
                    let keys: Vec<String> = work
                        .state
                        .iter()
                        .filter(|(_, version)| version.lease == *id)
                        .map(|(key, _)| key.clone())
                        .collect();
                    for key in &keys {
                        work.delete(key);
                    }
                    Outcome::LeaseRevoked {
                        id: *id,
                        keys_deleted: keys.len() as u64,
                        expired: *expired,
                    }
                }
            }
            Operation::LeaseCheckpoint { checkpoints } => {
                for checkpoint in checkpoints {
                    if let Some(lease) = self.leases.get_mut(&checkpoint.id) {
                        lease.1 = (checkpoint.remaining_ms != 0).then_some(checkpoint.remaining_ms);
                    }
                }
                Outcome::LeaseCheckpointed
            }
            Operation::HashCheck => Outcome::HashCheckMarked,
        };
        if !work.changes.is_empty() {
            self.states.push(work.state);
            self.changes.push(work.changes);
        }
        outcome
    }

    /// What a read at `revision` must answer.
    fn readable(&self, revision: u64) -> Result<&State, RevisionError> {
        if revision < self.compact_revision {
            return Err(RevisionError::Compacted {
                requested: revision,
                compact_revision: self.compact_revision,
                current: self.revision(),
            });
        }
        if revision > self.revision() {
            return Err(RevisionError::Future {
                requested: revision,
                current: self.revision(),
                compact_revision: self.compact_revision,
            });
        }
        Ok(&self.states[revision as usize])
    }

    /// Every change since `start` that `selector` selects, grouped by revision.
    fn changes_since(&self, start: u64, selector: &KeySelector) -> Vec<RevisionChanges> {
        (start.max(1)..=self.revision())
            .filter_map(|revision| {
                let changes: Vec<Change> = self.changes[revision as usize]
                    .iter()
                    .filter(|change| selector.matches(&change.key))
                    .cloned()
                    .collect();
                (!changes.is_empty()).then_some(RevisionChanges { revision, changes })
            })
            .collect()
    }

    /// The versions the rule says are held: each one some read at a revision from the
    /// compaction on can see, and a delete made at the compaction revision; with their value
    /// bytes. Less the current ones, it is the history the machine reports.
    fn held_history(&self) -> (usize, u64) {
        let mut versions: BTreeMap<&str, Vec<&VersionedValue>> = BTreeMap::new();
        for changes in &self.changes {
            for change in changes {
                versions.entry(&change.key).or_default().push(&change.value);
            }
        }
        let compact_revision = self.compact_revision;
        let (mut count, mut bytes) = (0, 0);
        for list in versions.values() {
            let seen_at_compaction = list
                .iter()
                .rposition(|version| version.mod_revision <= compact_revision);
            for (at, version) in list.iter().enumerate() {
                let held = version.mod_revision >= compact_revision
                    || (Some(at) == seen_at_compaction && version.version != 0);
                if held {
                    count += 1;
                    bytes += version.value.len() as u64;
                }
            }
        }
        let current = self.states.last().expect("a state");
        let current_bytes: u64 = current.values().map(|v| v.value.len() as u64).sum();
        (count - current.len(), bytes - current_bytes)
    }
}

/// The state a command works on, with the changes it made.
struct Working {
    state: State,
    changes: Vec<Change>,
    revision: u64,
}

impl Working {
    fn put(&mut self, key: &str, value: Bytes, lease: u64) -> Option<VersionedValue> {
        let previous = self.state.get(key).cloned();
        let (create_revision, version) = previous.as_ref().map_or((self.revision, 1), |previous| {
            (previous.create_revision, previous.version + 1)
        });
        let new = VersionedValue {
            value,
            create_revision,
            mod_revision: self.revision,
            version,
            lease,
        };
        self.state.insert(key.to_owned(), new.clone());
        self.changes.push(Change {
            kind: ChangeKind::Put,
            key: key.to_owned(),
            value: new,
        });
        previous
    }

    fn delete(&mut self, key: &str) -> bool {
        if self.state.remove(key).is_none() {
            return false;
        }
        self.changes.push(Change {
            kind: ChangeKind::Delete,
            key: key.to_owned(),
            value: VersionedValue {
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: self.revision,
                version: 0,
                lease: 0,
            },
        });
        true
    }

    fn txn(&mut self, txn: &Txn, check_lease: impl Fn(u64) -> Result<(), Outcome>) -> Outcome {
        // Refusals are unit-tested in txn.rs; here the model follows the same rule.
        if let Err(error) = txn.validate() {
            return Outcome::TxnRefused { error };
        }
        // Every comparison (nested ones too) sees the state before any operation: the path
        // is chosen first, as one flag per transaction in the order the run meets them.
        let mut path = Vec::new();
        self.choose(txn, &mut path);
        let mut flags = path.iter().copied();
        if let Err(refused) = self.check(txn, &mut flags, &check_lease) {
            return refused;
        }
        let mut flags = path.iter().copied();
        let (succeeded, results) = self.run(txn, &mut flags);
        Outcome::Txn { succeeded, results }
    }

    fn holds(&self, compare: &Compare) -> bool {
        let range = KeyRange {
            start: compare.key.clone(),
            end: compare.range_end.clone(),
        };
        let found: Vec<&VersionedValue> = self
            .state
            .iter()
            .filter(|(key, _)| range.contains(key) && !range.is_empty())
            .map(|(_, version)| version)
            .collect();
        if found.is_empty() {
            return holds_for(compare, None);
        }
        found
            .into_iter()
            .all(|version| holds_for(compare, Some(version)))
    }

    fn choose(&self, txn: &Txn, path: &mut Vec<bool>) {
        let succeeded = txn.compare.iter().all(|compare| self.holds(compare));
        path.push(succeeded);
        for op in if succeeded {
            &txn.success
        } else {
            &txn.failure
        } {
            if let TxnOp::Txn(nested) = op {
                self.choose(nested, path);
            }
        }
    }

    fn check(
        &self,
        txn: &Txn,
        path: &mut impl Iterator<Item = bool>,
        check_lease: &impl Fn(u64) -> Result<(), Outcome>,
    ) -> Result<(), Outcome> {
        let succeeded = path.next().expect("a flag per transaction");
        for op in if succeeded {
            &txn.success
        } else {
            &txn.failure
        } {
            match op {
                TxnOp::Put { lease, .. } => check_lease(*lease)?,
                TxnOp::PutKeeping { key, lease, .. } => {
                    if !self.state.contains_key(key) {
                        return Err(Outcome::TxnRefused {
                            error: TxnError::KeyNotFound { key: key.clone() },
                        });
                    }
                    check_lease(lease.unwrap_or(0))?;
                }
                TxnOp::Txn(nested) => self.check(nested, path, check_lease)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn run(
        &mut self,
        txn: &Txn,
        path: &mut impl Iterator<Item = bool>,
    ) -> (bool, Vec<TxnOpOutcome>) {
        let succeeded = path.next().expect("a flag per transaction");
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let mut results = Vec::new();
        for op in branch {
            results.push(match op {
                TxnOp::Put { key, value, lease } => TxnOpOutcome::Put {
                    prev: self.put(key, value.clone(), *lease),
                },
                TxnOp::PutKeeping { key, value, lease } => {
                    let current = self.state.get(key).cloned().expect("checked");
                    let value = value.clone().unwrap_or(current.value);
                    let lease = lease.unwrap_or(current.lease);
                    TxnOpOutcome::Put {
                        prev: self.put(key, value, lease),
                    }
                }
                TxnOp::Delete { key } => TxnOpOutcome::Delete {
                    deleted: u64::from(self.delete(key)),
                },
                TxnOp::DeletePrefix { prefix } => {
                    let keys: Vec<String> = self
                        .state
                        .keys()
                        .filter(|key| key.starts_with(prefix.as_str()))
                        .cloned()
                        .collect();
                    for key in &keys {
                        self.delete(key);
                    }
                    TxnOpOutcome::Delete {
                        deleted: keys.len() as u64,
                    }
                }
                TxnOp::DeleteRange { range, prev_kv } => {
                    let found = self.in_range(range);
                    for (key, _) in &found {
                        self.delete(key);
                    }
                    TxnOpOutcome::DeleteRange {
                        deleted: found.len() as u64,
                        prev: if *prev_kv { found } else { Vec::new() },
                    }
                }
                TxnOp::Get { key } => TxnOpOutcome::Get {
                    value: self.state.get(key).cloned(),
                },
                TxnOp::Scan { prefix, limit } => {
                    let matching: Vec<(String, VersionedValue)> = self
                        .state
                        .iter()
                        .filter(|(key, _)| key.starts_with(prefix.as_str()))
                        .map(|(key, value)| (key.clone(), value.clone()))
                        .collect();
                    TxnOpOutcome::Scan {
                        truncated: matching.len() > *limit,
                        items: matching.into_iter().take(*limit).collect(),
                    }
                }
                TxnOp::Range(query) => {
                    TxnOpOutcome::Range(model_range(self.in_range(&query.range), query))
                }
                TxnOp::Txn(nested) => {
                    let (succeeded, results) = self.run(nested, path);
                    TxnOpOutcome::Txn { succeeded, results }
                }
            });
        }
        (succeeded, results)
    }

    fn in_range(&self, range: &KeyRange) -> Vec<(String, VersionedValue)> {
        self.state
            .iter()
            .filter(|(key, _)| !range.is_empty() && range.contains(key))
            .map(|(key, version)| (key.clone(), version.clone()))
            .collect()
    }
}

/// Whether `compare` holds for a key's version (`None`: missing), as etcd defines it.
fn holds_for(compare: &Compare, current: Option<&VersionedValue>) -> bool {
    let number = |get: fn(&VersionedValue) -> u64| current.map_or(0, get);
    let ordering = match &compare.target {
        CompareTarget::Value(operand) => match current {
            None => return false,
            Some(current) => current.value.cmp(operand),
        },
        CompareTarget::Version(operand) => number(|v| v.version).cmp(operand),
        CompareTarget::CreateRevision(operand) => number(|v| v.create_revision).cmp(operand),
        CompareTarget::ModRevision(operand) => number(|v| v.mod_revision).cmp(operand),
        CompareTarget::Exists(operand) => current.is_some().cmp(operand),
        CompareTarget::Lease(operand) => number(|v| v.lease).cmp(operand),
    };
    match compare.op {
        CompareOp::Equal => ordering.is_eq(),
        CompareOp::NotEqual => ordering.is_ne(),
        CompareOp::Less => ordering.is_lt(),
        CompareOp::Greater => ordering.is_gt(),
    }
}

/// etcd's range over `found` (every key of the range, in key order), naively: count them all,
/// filter, sort (stably; a target other than the key without an order ascends), cut.
fn model_range(found: Vec<(String, VersionedValue)>, query: &RangeQuery) -> RangeResult {
    let count = found.len() as u64;
    if query.count_only {
        return RangeResult {
            kvs: Vec::new(),
            more: false,
            count,
        };
    }
    let bound = |bound: u64, value: u64, at_least: bool| {
        bound == 0
            || if at_least {
                value >= bound
            } else {
                value <= bound
            }
    };
    let mut kvs: Vec<(String, VersionedValue)> = found
        .into_iter()
        .filter(|(_, v)| {
            bound(query.min_mod_revision, v.mod_revision, true)
                && bound(query.max_mod_revision, v.mod_revision, false)
                && bound(query.min_create_revision, v.create_revision, true)
                && bound(query.max_create_revision, v.create_revision, false)
        })
        .collect();
    let descending = query.sort_order == SortOrder::Descend;
    if query.sort_order != SortOrder::None || query.sort_target != SortTarget::Key {
        kvs.sort_by(|(left_key, left), (right_key, right)| {
            let ordering = match query.sort_target {
                SortTarget::Key => left_key.cmp(right_key),
                SortTarget::Version => left.version.cmp(&right.version),
                SortTarget::Create => left.create_revision.cmp(&right.create_revision),
                SortTarget::Mod => left.mod_revision.cmp(&right.mod_revision),
                SortTarget::Value => left.value.cmp(&right.value),
            };
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
    let limit = query.limit as usize;
    let more = limit != 0 && kvs.len() > limit;
    if more {
        kvs.truncate(limit);
    }
    if query.keys_only {
        for (_, version) in &mut kvs {
            version.value = Bytes::new();
        }
    }
    RangeResult { kvs, more, count }
}

const KEYS: [&str; 5] = ["", "a", "ab", "b", "ba"];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS.to_vec()).prop_map(String::from)
}

fn prefix() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "a", "b", "ab"]).prop_map(String::from)
}

fn value() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(0u8..2, 0..3).prop_map(Bytes::from)
}

/// A lease id: 0 (none, and invalid for a grant) or one of three, so grants collide and puts
/// name missing leases often enough.
fn lease_id() -> impl Strategy<Value = u64> {
    0u64..4
}

/// A put's lease: none half the time.
fn put_lease() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), lease_id()]
}

fn compare() -> impl Strategy<Value = Compare> {
    let op = prop::sample::select(vec![
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Less,
        CompareOp::Greater,
    ]);
    let target = prop_oneof![
        value().prop_map(CompareTarget::Value),
        (0u64..3).prop_map(CompareTarget::Version),
        (0u64..6).prop_map(CompareTarget::CreateRevision),
        (0u64..8).prop_map(CompareTarget::ModRevision),
        any::<bool>().prop_map(CompareTarget::Exists),
        lease_id().prop_map(CompareTarget::Lease),
    ];
    let end = prop_oneof![
        3 => Just(RangeEnd::Single),
        1 => Just(RangeEnd::Unbounded),
        1 => key().prop_map(|end| RangeEnd::Before(Bytes::from(end.into_bytes()))),
    ];
    (key(), end, op, target).prop_map(|(key, range_end, op, target)| Compare {
        key,
        range_end,
        op,
        target,
    })
}

/// A range: one key, a prefix, from a key on, or between two (perhaps empty).
fn key_range() -> impl Strategy<Value = KeyRange> {
    prop_oneof![
        key().prop_map(KeyRange::single),
        prefix().prop_map(KeyRange::prefix),
        key().prop_map(|start| KeyRange {
            start,
            end: RangeEnd::Unbounded
        }),
        (key(), key()).prop_map(|(start, end)| KeyRange {
            start,
            end: RangeEnd::Before(Bytes::from(end.into_bytes())),
        }),
    ]
}

fn range_query() -> impl Strategy<Value = RangeQuery> {
    let order = prop::sample::select(vec![SortOrder::None, SortOrder::Ascend, SortOrder::Descend]);
    let target = prop::sample::select(vec![
        SortTarget::Key,
        SortTarget::Version,
        SortTarget::Create,
        SortTarget::Mod,
        SortTarget::Value,
    ]);
    (
        key_range(),
        0u64..3,
        order,
        target,
        any::<bool>(),
        prop::bool::weighted(0.1),
        0u64..6,
        0u64..8,
    )
        .prop_map(
            |(
                range,
                limit,
                sort_order,
                sort_target,
                keys_only,
                count_only,
                max_create,
                min_mod,
            )| {
                RangeQuery {
                    limit,
                    sort_order,
                    sort_target,
                    keys_only,
                    count_only,
                    max_create_revision: max_create,
                    min_mod_revision: min_mod,
                    ..RangeQuery::of(range)
                }
            },
        )
}

fn leaf_txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        3 => (key(), value(), put_lease()).prop_map(|(key, value, lease)| TxnOp::Put { key, value, lease }),
        1 => (key(), prop::option::of(value()), prop::option::of(put_lease()))
            .prop_map(|(key, value, lease)| TxnOp::PutKeeping { key, value, lease }),
        2 => key().prop_map(|key| TxnOp::Delete { key }),
        1 => prefix().prop_map(|prefix| TxnOp::DeletePrefix { prefix }),
        1 => (key_range(), any::<bool>()).prop_map(|(range, prev_kv)| TxnOp::DeleteRange { range, prev_kv }),
        2 => key().prop_map(|key| TxnOp::Get { key }),
        2 => (prefix(), 0usize..4).prop_map(|(prefix, limit)| TxnOp::Scan { prefix, limit }),
        2 => range_query().prop_map(TxnOp::Range),
    ]
}

/// An operation, or (one time in eight) a nested transaction of leaf operations.
fn txn_op() -> impl Strategy<Value = TxnOp> {
    let branch = || prop::collection::vec(leaf_txn_op(), 0..3);
    prop_oneof![
        7 => leaf_txn_op(),
        1 => (prop::collection::vec(compare(), 0..2), branch(), branch())
            .prop_map(|(compare, success, failure)| TxnOp::Txn(Txn { compare, success, failure })),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    let branch = || prop::collection::vec(txn_op(), 0..4);
    prop_oneof![
        4 => (key(), value(), put_lease())
            .prop_map(|(key, value, lease)| Operation::Put { key, value, lease }),
        2 => (lease_id(), 1u64..3).prop_map(|(id, ttl_seconds)| Operation::LeaseGrant { id, ttl_seconds }),
        1 => (lease_id(), any::<bool>()).prop_map(|(id, expired)| Operation::LeaseRevoke { id, expired }),
        1 => prop::collection::vec((lease_id(), 0u64..3), 0..3).prop_map(|checkpoints| {
            Operation::LeaseCheckpoint {
                checkpoints: checkpoints
                    .into_iter()
                    .map(|(id, remaining_ms)| LeaseCheckpoint { id, remaining_ms })
                    .collect(),
            }
        }),
        2 => key().prop_map(|key| Operation::Delete { key }),
        1 => (key(), value()).prop_map(|(key, suffix)| Operation::Append { key, suffix }),
        1 => (key(), prop::option::of(value()), value())
            .prop_map(|(key, expect, value)| Operation::Cas { key, expect, value }),
        2 => (0u64..12).prop_map(|revision| Operation::Compact { revision }),
        4 => (prop::collection::vec(compare(), 0..3), branch(), branch())
            .prop_map(|(compare, success, failure)| Operation::Txn(Txn {
                compare,
                success,
                failure,
            })),
        1 => Just(Operation::Announce { node: 1, http_address: "h:1".into(), grpc_address: None }),
        1 => Just(Operation::HashCheck),
    ]
}

/// Every read of `machine` at every revision (and one past the current) against the model.
fn check_reads(machine: &StateMachine, model: &Model, limit: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(machine.revision(), model.revision());
    prop_assert_eq!(machine.compact_revision(), model.compact_revision);
    for revision in 0..=model.revision() + 1 {
        let expected = model.readable(revision);
        let scanned = machine.scan_at("", usize::MAX, Some(revision));
        match expected {
            Err(error) => {
                prop_assert_eq!(scanned, Err(error.clone()));
                prop_assert_eq!(machine.get_at("a", Some(revision)), Err(error));
            }
            Ok(state) => {
                let all: Vec<(String, VersionedValue)> =
                    state.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(scanned, Ok((all, false)), "revision {}", revision);
                for key in KEYS {
                    prop_assert_eq!(
                        machine.get_at(key, Some(revision)),
                        Ok(state.get(key).cloned())
                    );
                }
                let (items, more) = machine
                    .scan_at("a", limit, Some(revision))
                    .expect("readable");
                let matching: Vec<_> = state.keys().filter(|k| k.starts_with('a')).collect();
                prop_assert_eq!(items.len(), matching.len().min(limit));
                prop_assert_eq!(more, matching.len() > limit);
                // etcd's range read at the revision, sorted and filtered, against the model.
                for range in [
                    KeyRange::prefix("a"),
                    KeyRange::from_etcd(b"ab", b"\0").expect("utf-8"),
                ] {
                    let query = RangeQuery {
                        revision,
                        limit: limit as u64,
                        sort_order: SortOrder::Descend,
                        sort_target: SortTarget::Create,
                        min_mod_revision: 2,
                        ..RangeQuery::of(range.clone())
                    };
                    let found = state
                        .iter()
                        .filter(|(key, _)| range.contains(key))
                        .map(|(key, version)| (key.clone(), version.clone()))
                        .collect();
                    prop_assert_eq!(machine.range(&query), Ok(model_range(found, &query)));
                }
            }
        }
    }
    let selectors = [
        KeySelector::Prefix(String::new()),
        KeySelector::Prefix("a".into()),
        KeySelector::Key("ab".into()),
        KeySelector::Key(String::new()),
    ];
    for start in 0..=model.revision() + 1 {
        for selector in &selectors {
            let got = machine.changes_since(start, selector);
            if start < model.compact_revision {
                let compacted = matches!(got, Err(RevisionError::Compacted { .. }));
                prop_assert!(compacted, "start {} is compacted", start);
            } else {
                prop_assert_eq!(got, Ok(model.changes_since(start, selector)));
                let (first_page, more) = machine
                    .changes_since_bounded(start, selector, 1)
                    .expect("readable");
                let all = model.changes_since(start, selector);
                prop_assert_eq!(&first_page[..], &all[..all.len().min(1)]);
                prop_assert_eq!(more, all.len() > 1);
            }
        }
    }
    let infos = model.lease_infos();
    prop_assert_eq!(
        machine.lease_ids(),
        infos.iter().map(|info| info.id).collect::<Vec<_>>()
    );
    for info in infos {
        prop_assert_eq!(machine.lease(info.id), Some(info));
    }
    Ok(())
}

/// The history's counters match the model's: for a machine that dropped every version a
/// compaction left waiting (the commands applied after one drop them a few at a time).
fn check_counters(machine: &StateMachine, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(machine.compaction_waiting(), 0);
    let (history_versions, history_bytes) = model.held_history();
    prop_assert_eq!(machine.history_versions(), history_versions);
    prop_assert_eq!(machine.history_bytes(), history_bytes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Reads at every revision, catch-up from every revision and the history's counters match
    /// the model after every step; a replica restored from a snapshot part-way answers the
    /// same and ends with the same snapshot bytes; one that drops what each compaction made
    /// unreadable at once (not a few keys per command) writes the same snapshot at every step.
    #[test]
    fn reads_at_every_revision_and_changes_since_match_the_model(
        operations in prop::collection::vec(operation(), 0..40),
        restore_at in any::<prop::sample::Index>(),
        limit in 0usize..3,
    ) {
        let restore_at = restore_at.index(operations.len() + 1);
        let mut straight = StateMachine::new(SESSIONS_MAX);
        let mut restored = StateMachine::new(SESSIONS_MAX);
        let mut eager = StateMachine::new(SESSIONS_MAX);
        let mut model = Model::new();
        for (at, operation) in operations.iter().enumerate() {
            if at == restore_at {
                let snapshot = restored.snapshot();
                restored = StateMachine::restore(&snapshot, SESSIONS_MAX).expect("restores");
                prop_assert_eq!(restored.snapshot(), snapshot);
            }
            let index = at as u64 + 1;
            let data = encode(None, operation.clone());
            let before = model.revision();
            let expected = model.apply(operation);
            let applied = straight.apply_entry(index, 1, &data);
            straight.check_invariants();
            prop_assert_eq!(&applied.outcome, &expected, "step {}: {:?}", at, operation);
            prop_assert_eq!(applied.revision, model.revision());
            let made = (model.revision() > before).then(|| RevisionChanges {
                revision: model.revision(),
                changes: model.changes[model.revision() as usize].clone(),
            });
            prop_assert_eq!(&applied.changes, &made);
            prop_assert_eq!(&restored.apply_entry(index, 1, &data), &applied);
            restored.check_invariants();
            prop_assert_eq!(eager.apply_entry(index, 1, &data), applied);
            eager.finish_compaction();
            eager.check_invariants();
            check_reads(&straight, &model, limit)?;
            check_reads(&restored, &model, limit)?;
            check_reads(&eager, &model, limit)?;
            check_counters(&eager, &model)?;
            prop_assert_eq!(eager.snapshot(), straight.snapshot());
        }
        prop_assert_eq!(straight.snapshot(), restored.snapshot());
    }
}
