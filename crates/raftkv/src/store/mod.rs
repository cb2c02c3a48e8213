//! The store: the deterministic key-value state machine every replica applies the committed
//! log to, and the reads served from it.
//!
//! ```text
//!  committed entry (index, term, data)
//!        │
//!        ▼
//!  apply ── Command::decode fails ─────────────────────────────────► Rejected { reason }
//!        │ Command { session, operation }                (command: the log's encoding)
//!        ▼
//!  session? ── Some ──► Sessions::answer_again ── retry or stale ──► that answer
//!        │ none            (sessions: exactly-once writes)   │ new
//!        ▼                                                   ▼
//!  execute(operation) ──► put_key / delete_key ──► commit ──► Sessions::record
//!        │                 │ History::put / delete  │ (outcome, revision)
//!        │                 │ (history: versions,    ▼
//!        │                 │  revisions, compaction)
//!        │                 └ Leases attach / detach (lease: which keys each lease holds)
//!        └──────────────────────────────────► Applied { outcome, revision, changes }
//!  (applied_index moves to the entry's index in every case; `skip` moves only it)
//!
//!  lease / lease_ids / lease_deadlines: the lease table                    (lease)
//!  get / scan: the current state; get_at / scan_at: at a past revision;
//!  range: etcd's range read (count, limit, sort, filters) at any revision  (range_query)
//!  changes_since: a watch's catch-up from history                        (history)
//!  snapshot / snapshot_image / restore: the whole store as bytes        (snapshot)
//! ```
//!
//! Everything here is a function of the log: the same entries applied in the same order give the
//! same state and the same outcomes on every replica, and [`StateMachine::snapshot`] gives the
//! same bytes. That is why there is no clock, no randomness, no node, no HTTP and no hash-map
//! iteration order in this module or below it, and why session eviction is ordered by log
//! index. The simulator and the property tests check it as they check the core.
//!
//! One module per job: [`command`] (what the log carries and its encoding), [`sessions`]
//! (who a client is, and the exactly-once bookkeeping), [`snapshot`] (the snapshot format),
//! [`history`] (revisions, every key's versions, compaction), and this one (apply and read).
//! Transactions ([`txn`]: comparisons, then the operations of the path they choose, nested
//! transactions included) and leases ([`lease`]: the lease table, which keys each lease holds)
//! each have a module of their own beside these, as do etcd's key ranges ([`range`]) and its
//! range reads ([`range_query`]), which the Range RPC and a transaction's range operations
//! share.

pub mod command;
pub mod history;
pub mod lease;
pub mod range;
pub mod range_query;
pub mod sessions;
pub mod snapshot;
pub mod txn;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

pub use command::{Command, CommandError, Operation, Session, COMMAND_FORMAT_VERSION};
pub use history::{
    Change, ChangeKind, KeySelector, RevisionChanges, RevisionError, VersionedValue,
};
pub use lease::{LeaseCheckpoint, LeaseError, LeaseInfo, LEASE_ID_MAX};
pub use range::{KeyRange, KeyRangeError, RangeEnd};
pub use range_query::{RangeQuery, RangeResult, SortOrder, SortTarget};
pub use sessions::{ClientId, ClientIdError};
pub use snapshot::{
    SnapshotError, SnapshotImage, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS,
    SNAPSHOT_FORMAT_VERSION_REVISIONS, SNAPSHOT_FORMAT_VERSION_TEXT_IDS,
};
pub use txn::{
    Compare, CompareOp, CompareTarget, Txn, TxnError, TxnOp, TxnOpOutcome, TXN_COMPARES_MAX,
    TXN_OPERATIONS_MAX, TXN_SCAN_LIMIT_MAX,
};

use history::{History, Written};
use lease::Leases;
use sessions::Sessions;

/// Keys a compaction left waiting ([`History::compact_some`]) that each applied command
/// compacts per key it changed (at least one). A compaction waits with about one key per
/// command applied since the previous one, so at a steady rate the waiting keys are done
/// halfway to the next compaction; a burst's leftovers wait with the next compaction's keys.
/// At ~2.5 µs a key, a command pays ~5 µs instead of one command paying 25 ms.
const COMPACTION_KEYS_PER_CHANGE: usize = 2;

/// What applying a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The key was set.
    Put,
    /// The key was removed.
    Deleted {
        /// Whether the key existed.
        existed: bool,
    },
    /// The suffix was appended.
    Appended {
        /// The value's length afterwards, in bytes.
        length: u64,
    },
    /// A compare-and-swap ran.
    Cas {
        /// Whether the value matched the expectation and was replaced.
        swapped: bool,
        /// The value found when not swapped (`None`: the key was absent); `None` when swapped.
        current: Option<Bytes>,
    },
    /// A node's HTTP address was recorded.
    Announced,
    /// The history before a revision was forgotten (or already had been).
    Compacted {
        /// The compaction revision in force afterwards: the oldest revision still readable.
        compact_revision: u64,
    },
    /// A compaction was refused: its revision is later than the store's
    /// ([`RevisionError::Future`]).
    CompactRefused {
        /// Why.
        error: RevisionError,
    },
    /// A transaction ran.
    Txn {
        /// Whether every comparison held (the success branch ran).
        succeeded: bool,
        /// Each operation's result, in the order of the branch that ran.
        results: Vec<TxnOpOutcome>,
    },
    /// A transaction was refused before it ran ([`Txn::validate`]); nothing changed.
    TxnRefused {
        /// Why.
        error: TxnError,
    },
    /// A lease was granted.
    LeaseGranted {
        /// The lease's id.
        id: u64,
        /// Its TTL, in seconds.
        ttl_seconds: u64,
    },
    /// A lease was revoked and its keys deleted, all at the revision after the command (which
    /// did not move when the lease held no keys).
    LeaseRevoked {
        /// The lease.
        id: u64,
        /// How many keys were deleted.
        keys_deleted: u64,
        /// The revoke was proposed by the leader's expiry, not by a client.
        expired: bool,
    },
    /// Lease checkpoints were recorded (those of leases that still exist).
    LeaseCheckpointed,
    /// A hash check was applied: nothing changed; the replicas hash their state at its index.
    HashCheckMarked,
    /// A lease command, or a put or transaction naming a lease, was refused; nothing changed.
    LeaseRefused {
        /// Why.
        error: LeaseError,
    },
    /// The command could not be decoded (every replica rejects it the same way).
    Rejected {
        /// Why, for the operator.
        reason: String,
    },
    /// The session already moved past this sequence number: the request is older than the one
    /// whose result is cached.
    StaleSequence {
        /// The session's last sequence number.
        last: u64,
    },
}

/// What applying an entry achieved, and the entry that achieved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The outcome (for a retry, the first application's).
    pub outcome: Outcome,
    /// Index of the entry that applied the request: for a retry, the first application's.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The store's revision after the command: for a retry answered from its session, the
    /// revision after the first application.
    pub revision: u64,
    /// What the command changed, for watchers: `None` when it changed nothing, and for a
    /// retry (its changes were handed out when it was first applied).
    pub changes: Option<RevisionChanges>,
}

/// The replicated key-value store with its history, its client sessions and the nodes'
/// announced addresses.
pub struct StateMachine {
    /// The store: every key's versions since the compaction revision.
    history: History,
    /// The leases, and which keys each holds.
    /// Invariant: they agree with the lease of every live key's latest version.
    leases: Leases,
    /// The client sessions, for exactly-once writes.
    sessions: Sessions,
    /// The HTTP address each node announced.
    http_addresses: BTreeMap<u64, String>,
    /// The Raft address recorded for each node added at run time.
    raft_addresses: BTreeMap<u64, String>,
    /// The etcd gRPC address each node announced (only nodes that serve that API).
    grpc_addresses: BTreeMap<u64, String>,
    /// The index of the last entry applied or skipped.
    /// Invariant: no session is active at a later index.
    applied_index: u64,
}

impl fmt::Debug for StateMachine {
    /// A summary: the store itself can be far too large to print.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("StateMachine")
            .field("applied_index", &self.applied_index)
            .field("revision", &self.history.revision())
            .field("compact_revision", &self.history.compact_revision())
            .field("keys", &self.history.live_keys())
            .field("data_bytes", &self.history.live_bytes())
            .field("history_versions", &self.history.history_versions())
            .field("history_bytes", &self.history.history_bytes())
            .field("leases", &self.leases.len())
            .field("sessions", &self.sessions.len())
            .field("sessions_max", &self.sessions.sessions_max())
            .field("http_addresses", &self.http_addresses)
            .field("raft_addresses", &self.raft_addresses)
            .field("grpc_addresses", &self.grpc_addresses)
            .finish()
    }
}

impl StateMachine {
    /// An empty machine, before any entry is applied, at revision 1.
    ///
    /// `sessions_max`: sessions kept; beyond it the least recently active is evicted (0
    /// disables exactly-once writes). Every replica must use the same value.
    pub fn new(sessions_max: usize) -> StateMachine {
        StateMachine {
            history: History::new(),
            leases: Leases::new(),
            sessions: Sessions::new(sessions_max),
            http_addresses: BTreeMap::new(),
            raft_addresses: BTreeMap::new(),
            grpc_addresses: BTreeMap::new(),
            applied_index: 0,
        }
    }

    /// Applies the committed command at `index` (indexes strictly increase; a repeated or older
    /// index is a bug in the caller and panics). Returns the outcome, which for a retried
    /// request (same client id and sequence as the session's last) is the cached outcome of the
    /// first application (nothing is applied again).
    pub fn apply(&mut self, index: u64, data: &[u8]) -> Outcome {
        self.apply_entry(index, 0, data).outcome
    }

    /// [`StateMachine::apply`] for the entry at `index` of `term`, also saying which entry
    /// applied the request (for a retry answered from its session, the first application's
    /// index and term, so the retry gets exactly the first answer), the revision and what
    /// changed.
    pub fn apply_entry(&mut self, index: u64, term: u64, data: &[u8]) -> Applied {
        self.apply_decoded(index, term, Command::decode(data))
    }

    /// [`StateMachine::apply_entry`] for a caller that already decoded the entry (to look at
    /// it before applying), so it is decoded once.
    pub fn apply_decoded(
        &mut self,
        index: u64,
        term: u64,
        decoded: Result<Command, CommandError>,
    ) -> Applied {
        let here = (index, term);
        self.advance_applied_index(index);
        let command = match decoded {
            Ok(command) => command,
            Err(error) => {
                let reason = error.to_string();
                return self.applied_here(Outcome::Rejected { reason }, here, None);
            }
        };
        let Some(session) = command.session else {
            let (outcome, changes) = self.execute(command.operation);
            return self.applied_here(outcome, here, changes);
        };
        let revision = self.history.revision();
        if let Some((outcome, applied_at, revision)) =
            self.sessions.answer_again(&session, here, revision)
        {
            return Applied {
                outcome,
                index: applied_at.0,
                term: applied_at.1,
                revision,
                changes: None,
            };
        }
        let (outcome, changes) = self.execute(command.operation);
        let revision = self.history.revision();
        self.sessions
            .record(session, here, revision, outcome.clone());
        self.applied_here(outcome, here, changes)
    }

    fn applied_here(
        &self,
        outcome: Outcome,
        here: (u64, u64),
        changes: Option<RevisionChanges>,
    ) -> Applied {
        Applied {
            outcome,
            index: here.0,
            term: here.1,
            revision: self.history.revision(),
            changes,
        }
    }

    /// Marks `index` applied without a command (a no-op or configuration entry the service
    /// skips): only moves `applied_index`.
    pub fn skip(&mut self, index: u64) {
        self.advance_applied_index(index);
    }

    /// The current value of `key`.
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.history.current(key).map(|version| &version.value)
    }

    /// The current value of `key` with its revisions.
    pub fn get_versioned(&self, key: &str) -> Option<&VersionedValue> {
        self.history.current(key)
    }

    /// Current keys starting with `prefix` in key order, at most `limit`; the bool says more
    /// followed.
    pub fn scan(&self, prefix: &str, limit: usize) -> (Vec<(String, Bytes)>, bool) {
        let (items, more) = self.history.scan_at(prefix, limit, self.history.revision());
        let items = items
            .into_iter()
            .map(|(key, version)| (key.to_owned(), version.value.clone()))
            .collect();
        (items, more)
    }

    /// `key` with its revisions as a read at `revision` sees it (`None`: the current
    /// revision); `Ok(None)` when the key does not exist then.
    pub fn get_at(
        &self,
        key: &str,
        revision: Option<u64>,
    ) -> Result<Option<VersionedValue>, RevisionError> {
        let revision = self.readable(revision)?;
        Ok(self.history.at(key, revision).cloned())
    }

    /// Keys starting with `prefix` that exist at `revision` (`None`: the current revision), in
    /// key order with their revisions then, at most `limit`; the bool says more followed. A
    /// consistent snapshot of the whole store at that revision.
    pub fn scan_at(
        &self,
        prefix: &str,
        limit: usize,
        revision: Option<u64>,
    ) -> Result<(Vec<(String, VersionedValue)>, bool), RevisionError> {
        let revision = self.readable(revision)?;
        let (items, more) = self.history.scan_at(prefix, limit, revision);
        let items = items
            .into_iter()
            .map(|(key, version)| (key.to_owned(), version.clone()))
            .collect();
        Ok((items, more))
    }

    /// Every change with revision `>= start_revision` that `selector` selects, grouped by
    /// revision, in revision order (a watch's catch-up from history). Empty when
    /// `start_revision` is after the current revision; [`RevisionError::Compacted`] when it is
    /// before the compaction revision.
    pub fn changes_since(
        &self,
        start_revision: u64,
        selector: &KeySelector,
    ) -> Result<Vec<RevisionChanges>, RevisionError> {
        self.changes_since_bounded(start_revision, selector, usize::MAX)
            .map(|(changes, _)| changes)
    }

    /// [`StateMachine::changes_since`] in pages: stops at the first revision boundary after
    /// `changes_max` changes (never splitting a revision, so a page may hold more when one
    /// revision does); the bool says it stopped early (continue after the last revision
    /// returned).
    pub fn changes_since_bounded(
        &self,
        start_revision: u64,
        selector: &KeySelector,
        changes_max: usize,
    ) -> Result<(Vec<RevisionChanges>, bool), RevisionError> {
        if start_revision > self.history.revision() {
            return Ok((Vec::new(), false));
        }
        self.history.check_readable(start_revision)?;
        Ok(self
            .history
            .changes_since(start_revision, selector, changes_max))
    }

    fn readable(&self, revision: Option<u64>) -> Result<u64, RevisionError> {
        let revision = revision.unwrap_or(self.history.revision());
        self.history.check_readable(revision)?;
        Ok(revision)
    }

    /// The store's revision: 1 when empty, raised by one by every command that changes a key.
    pub fn revision(&self) -> u64 {
        self.history.revision()
    }

    /// The oldest revision still readable (1 until the first compaction).
    pub fn compact_revision(&self) -> u64 {
        self.history.compact_revision()
    }

    /// Keys the last compactions made versions unreadable of that may still hold them: each
    /// command applied drops those of two for each key it changed (at least one).
    pub fn compaction_waiting(&self) -> usize {
        self.history.compaction_waiting()
    }

    /// Drops at once every version the last compactions left waiting, which the commands
    /// applied next would otherwise drop a few at a time. Changes no read and no snapshot:
    /// for tests and tools that count the versions held.
    pub fn finish_compaction(&mut self) {
        self.history.compact_some(usize::MAX);
    }

    /// The number of versions held beyond the current ones (older versions and deletes'
    /// tombstones, including those a compaction left waiting), for metrics.
    pub fn history_versions(&self) -> usize {
        self.history.history_versions()
    }

    /// The bytes of the values of those versions (keys are shared with the current ones), for
    /// metrics.
    pub fn history_bytes(&self) -> u64 {
        self.history.history_bytes()
    }

    /// The number of keys that exist.
    pub fn keys(&self) -> usize {
        self.history.live_keys()
    }

    /// The index of the last entry applied or skipped (0 before the first).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The number of client sessions held.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The HTTP address node `node` announced, if any.
    pub fn http_address(&self, node: u64) -> Option<&str> {
        self.http_addresses.get(&node).map(String::as_str)
    }

    /// Every node's recorded HTTP address.
    pub fn http_addresses(&self) -> &BTreeMap<u64, String> {
        &self.http_addresses
    }

    /// The etcd gRPC address node `node` announced, if it serves that API.
    pub fn grpc_address(&self, node: u64) -> Option<&str> {
        self.grpc_addresses.get(&node).map(String::as_str)
    }

    /// Every node's announced etcd gRPC address.
    pub fn grpc_addresses(&self) -> &BTreeMap<u64, String> {
        &self.grpc_addresses
    }

    /// The Raft address recorded for node `node`, if any.
    pub fn raft_address(&self, node: u64) -> Option<&str> {
        self.raft_addresses.get(&node).map(String::as_str)
    }

    /// Every recorded Raft address.
    pub fn raft_addresses(&self) -> &BTreeMap<u64, String> {
        &self.raft_addresses
    }

    /// Forgets the HTTP, Raft and gRPC addresses of every node but those `keep` names. For a
    /// state moved to another cluster (`raftkv snapshot restore`, `raftkv recover`): an
    /// address recorded here wins over the new members' `--peers`, so the old cluster's would
    /// send them to the old machines; each node announces its own again once it serves.
    pub fn forget_addresses_except(&mut self, keep: impl Fn(u64) -> bool) {
        self.http_addresses.retain(|node, _| keep(*node));
        self.raft_addresses.retain(|node, _| keep(*node));
        self.grpc_addresses.retain(|node, _| keep(*node));
    }

    /// Approximate bytes of the current keys and values (for metrics): the sum of their
    /// lengths, without the maps' overhead or the history.
    pub fn data_bytes(&self) -> u64 {
        self.history.live_bytes()
    }

    /// What the store knows of lease `id` (its keys in key order), if it exists.
    pub fn lease(&self, id: u64) -> Option<LeaseInfo> {
        self.leases.info(id)
    }

    /// Every lease's id, ascending.
    pub fn lease_ids(&self) -> Vec<u64> {
        self.leases.iter().map(|(id, _)| id).collect()
    }

    /// The number of leases.
    pub fn leases_count(&self) -> usize {
        self.leases.len()
    }

    /// Every lease as a new leader's lessor starts from: `(id, ttl_seconds, remaining_ms)`,
    /// ascending by id (`remaining_ms` as the last checkpoint left it).
    pub fn lease_deadlines(&self) -> Vec<(u64, u64, Option<u64>)> {
        self.leases
            .iter()
            .map(|(id, lease)| (id, lease.ttl_seconds, lease.remaining_ms))
            .collect()
    }

    /// Panics, naming the invariant, if the machine's internal state contradicts itself. Takes
    /// time linear in the state: for tests and simulators.
    pub fn check_invariants(&self) {
        self.history.check_invariants();
        self.leases.check_against(
            self.history
                .leased_keys()
                .map(|(key, lease)| (&**key, lease)),
        );
        self.sessions
            .check_invariants(self.applied_index, self.history.revision());
    }

    fn advance_applied_index(&mut self, index: u64) {
        assert!(
            index > self.applied_index,
            "invariant applied-index-increases: applying {index} after {}",
            self.applied_index
        );
        self.applied_index = index;
    }

    /// Carries out `operation` on the store; what it changed, at the revision it moved to.
    fn execute(&mut self, operation: Operation) -> (Outcome, Option<RevisionChanges>) {
        // Most commands change one key: one allocation, not a vector grown from empty.
        let mut changes = Vec::with_capacity(1);
        let outcome = match operation {
            Operation::Put { key, value, lease } => {
                if let Err(error) = self.check_lease(lease) {
                    return (Outcome::LeaseRefused { error }, None);
                }
                changes.push(self.put_key(key, copied(&value), lease));
                Outcome::Put
            }
            Operation::Delete { key } => {
                let deleted = self.delete_key(&key);
                let existed = deleted.is_some();
                changes.extend(deleted);
                Outcome::Deleted { existed }
            }
            Operation::Append { key, suffix } => {
                let (value, lease) = match self.history.current(&key) {
                    Some(existing) => {
                        let mut value =
                            BytesMut::with_capacity(existing.value.len() + suffix.len());
                        value.extend_from_slice(&existing.value);
                        value.extend_from_slice(&suffix);
                        (value.freeze(), existing.lease)
                    }
                    None => (copied(&suffix), 0),
                };
                let length = value.len() as u64;
                // An append changes the value in place: the key keeps its lease.
                changes.push(self.put_key(key, value, lease));
                Outcome::Appended { length }
            }
            Operation::Cas { key, expect, value } => {
                let current = self.history.current(&key);
                if current.map(|current| &current.value) == expect.as_ref() {
                    // Like an append, a swap keeps the key's lease.
                    let lease = current.map_or(0, |current| current.lease);
                    changes.push(self.put_key(key, copied(&value), lease));
                    Outcome::Cas {
                        swapped: true,
                        current: None,
                    }
                } else {
                    Outcome::Cas {
                        swapped: false,
                        current: current.map(|current| current.value.clone()),
                    }
                }
            }
            Operation::Announce {
                node,
                http_address,
                grpc_address,
            } => {
                self.http_addresses.insert(node, http_address);
                // A node restarted without --grpc-addr no longer serves the API: forget the
                // old address so nobody forwards to it.
                match grpc_address {
                    Some(grpc_address) => self.grpc_addresses.insert(node, grpc_address),
                    None => self.grpc_addresses.remove(&node),
                };
                Outcome::Announced
            }
            Operation::RaftAddress { node, raft_address } => {
                self.raft_addresses.insert(node, raft_address);
                Outcome::Announced
            }
            Operation::Compact { revision } => self.compact(revision),
            Operation::Txn(txn) => self.run_txn(txn, &mut changes),
            Operation::LeaseGrant { id, ttl_seconds } => match self.leases.grant(id, ttl_seconds) {
                Ok(()) => Outcome::LeaseGranted { id, ttl_seconds },
                Err(error) => Outcome::LeaseRefused { error },
            },
            Operation::LeaseRevoke { id, expired } => self.revoke(id, expired, &mut changes),
            Operation::LeaseCheckpoint { checkpoints } => {
                self.leases.checkpoint(&checkpoints);
                Outcome::LeaseCheckpointed
            }
            Operation::HashCheck => Outcome::HashCheckMarked,
        };
        // A share of the last compaction's work (COMPACTION_KEYS_PER_CHANGE).
        self.history
            .compact_some(COMPACTION_KEYS_PER_CHANGE * changes.len().max(1));
        (outcome, self.history.commit(changes))
    }

    /// `Ok` if a put may attach a key to `lease`: none (0), or one that exists.
    fn check_lease(&self, lease: u64) -> Result<(), LeaseError> {
        if lease == 0 || self.leases.contains(lease) {
            Ok(())
        } else {
            Err(LeaseError::NotFound { id: lease })
        }
    }

    /// Sets `key` to `value` attached to `lease` (checked to exist, or 0) at the pending
    /// revision, moving the key between leases' lists. Every write of a key goes through here
    /// (and every delete through [`StateMachine::delete_key`]), so the lease table cannot miss
    /// one. This runs for every put on every node: the history hands back the lease the key
    /// had and its shared text from its one search of the map, so nothing searches it again.
    fn put_key(&mut self, key: String, value: Bytes, lease: u64) -> Change {
        let Written {
            change,
            previous_lease,
        } = self.history.put(key, value, lease);
        if previous_lease != lease {
            if previous_lease != 0 {
                self.leases.detach(previous_lease, &change.key);
            }
            if lease != 0 {
                let shared = self
                    .history
                    .last_changed_key()
                    .expect("the put was just logged");
                assert_eq!(**shared, *change.key, "the put's key is the last logged");
                self.leases.attach(lease, Arc::clone(shared));
            }
        }
        change
    }

    /// Deletes `key` at the pending revision if it exists, detaching it from its lease.
    fn delete_key(&mut self, key: &str) -> Option<Change> {
        let Written {
            change,
            previous_lease,
        } = self.history.delete(key)?;
        if previous_lease != 0 {
            self.leases.detach(previous_lease, key);
        }
        Some(change)
    }

    /// Revokes lease `id`: its keys deleted in key order at the pending revision (pushed onto
    /// `changes`), then the lease gone.
    fn revoke(&mut self, id: u64, expired: bool, changes: &mut Vec<Change>) -> Outcome {
        let keys = match self.leases.revoke(id) {
            Ok(keys) => keys,
            Err(error) => return Outcome::LeaseRefused { error },
        };
        let keys_deleted = keys.len() as u64;
        changes.reserve(keys.len());
        for key in keys {
            // The lease is already out of the table: detaching from it is a no-op.
            let change = self.delete_key(&key);
            changes.push(change.expect("invariant lease-keys-exist"));
        }
        Outcome::LeaseRevoked {
            id,
            keys_deleted,
            expired,
        }
    }

    /// Runs `txn` (refused if [`Txn::validate`] refuses it, or if the path its comparisons
    /// choose puts with a lease that does not exist, keeps the value or lease of a key that
    /// does not exist, or reads at a revision the store cannot read), pushing what it changed
    /// onto `changes`.
    fn run_txn(&mut self, txn: Txn, changes: &mut Vec<Change>) -> Outcome {
        if let Err(error) = txn.validate() {
            return Outcome::TxnRefused { error };
        }
        // Every comparison, nested ones included, sees the state before any operation runs.
        let path = self.choose(&txn);
        // Before any operation runs: a transaction either runs whole or changes nothing.
        if let Err(outcome) = self.check_path(&txn, &path) {
            return outcome;
        }
        let (succeeded, results) = self.run_path(txn, &path, changes);
        Outcome::Txn { succeeded, results }
    }

    /// Which branch `txn` and every nested transaction of the branch it takes run.
    fn choose(&self, txn: &Txn) -> Path {
        let succeeded = txn
            .compare
            .iter()
            .all(|compare| self.compare_holds(compare));
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let nested = branch
            .iter()
            .filter_map(|op| match op {
                TxnOp::Txn(nested) => Some(self.choose(nested)),
                _ => None,
            })
            .collect();
        Path { succeeded, nested }
    }

    fn compare_holds(&self, compare: &Compare) -> bool {
        if compare.range_end == RangeEnd::Single {
            return compare.holds(self.history.current(&compare.key));
        }
        let range = compare.range();
        let mut keys = self.history.range_at(&range, u64::MAX).peekable();
        if keys.peek().is_none() {
            // etcd's rule: a range without keys compares as a missing key.
            return compare.holds(None);
        }
        keys.all(|(_, version)| compare.holds(Some(version)))
    }

    /// `Err` with the refusal if an operation on `path` cannot run: puts first (a key kept
    /// must exist, then the lease), then range reads' revisions, as etcd checks them.
    fn check_path(&self, txn: &Txn, path: &Path) -> Result<(), Outcome> {
        self.check_puts(txn, path)?;
        self.check_ranges(txn, path)
            .map_err(|error| Outcome::TxnRefused {
                error: TxnError::Revision(error),
            })
    }

    fn check_puts(&self, txn: &Txn, path: &Path) -> Result<(), Outcome> {
        let mut nested = path.nested.iter();
        for op in path.branch(txn) {
            match op {
                TxnOp::Put { lease, .. } => {
                    self.check_lease(*lease)
                        .map_err(|error| Outcome::LeaseRefused { error })?;
                }
                TxnOp::PutKeeping { key, lease, .. } => {
                    if self.history.current(key).is_none() {
                        return Err(Outcome::TxnRefused {
                            error: TxnError::KeyNotFound { key: key.clone() },
                        });
                    }
                    self.check_lease(lease.unwrap_or(0))
                        .map_err(|error| Outcome::LeaseRefused { error })?;
                }
                TxnOp::Txn(inner) => {
                    let inner_path = nested.next().expect("one path per nested transaction");
                    self.check_puts(inner, inner_path)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_ranges(&self, txn: &Txn, path: &Path) -> Result<(), RevisionError> {
        let mut nested = path.nested.iter();
        for op in path.branch(txn) {
            match op {
                TxnOp::Range(query) if query.revision != 0 => {
                    self.history.check_readable(query.revision)?;
                }
                TxnOp::Txn(inner) => {
                    let inner_path = nested.next().expect("one path per nested transaction");
                    self.check_ranges(inner, inner_path)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Runs the operations `path` chose, in order; whether the comparisons held, and each
    /// operation's outcome.
    fn run_path(
        &mut self,
        txn: Txn,
        path: &Path,
        changes: &mut Vec<Change>,
    ) -> (bool, Vec<TxnOpOutcome>) {
        let branch = if path.succeeded {
            txn.success
        } else {
            txn.failure
        };
        let mut nested = path.nested.iter();
        let results = branch
            .into_iter()
            .map(|op| match op {
                TxnOp::Txn(inner) => {
                    let inner_path = nested.next().expect("one path per nested transaction");
                    let (succeeded, results) = self.run_path(inner, inner_path, changes);
                    TxnOpOutcome::Txn { succeeded, results }
                }
                op => self.run_txn_op(op, changes),
            })
            .collect();
        (path.succeeded, results)
    }

    /// One operation of a transaction, on the current state with the path's earlier
    /// operations applied (they are in the history at the pending revision).
    fn run_txn_op(&mut self, op: TxnOp, changes: &mut Vec<Change>) -> TxnOpOutcome {
        match op {
            TxnOp::Put { key, value, lease } => {
                let prev = self.history.current(&key).cloned();
                changes.push(self.put_key(key, copied(&value), lease));
                TxnOpOutcome::Put { prev }
            }
            TxnOp::PutKeeping { key, value, lease } => {
                let prev = self
                    .history
                    .current(&key)
                    .cloned()
                    .expect("checked: a put keeping the value or lease finds its key");
                let value = value.map_or_else(|| prev.value.clone(), |value| copied(&value));
                let lease = lease.unwrap_or(prev.lease);
                changes.push(self.put_key(key, value, lease));
                TxnOpOutcome::Put { prev: Some(prev) }
            }
            TxnOp::Delete { key } => {
                let deleted = self.delete_key(&key);
                let count = u64::from(deleted.is_some());
                changes.extend(deleted);
                TxnOpOutcome::Delete { deleted: count }
            }
            TxnOp::DeletePrefix { prefix } => {
                assert!(!prefix.is_empty(), "validated: no empty delete_prefix");
                let deleted = self.delete_range(&KeyRange::prefix(prefix), false, changes);
                TxnOpOutcome::Delete { deleted: deleted.0 }
            }
            TxnOp::DeleteRange { range, prev_kv } => {
                let (deleted, prev) = self.delete_range(&range, prev_kv, changes);
                TxnOpOutcome::DeleteRange { deleted, prev }
            }
            TxnOp::Get { key } => TxnOpOutcome::Get {
                value: self.history.current(&key).cloned(),
            },
            TxnOp::Scan { prefix, limit } => {
                let limit = limit.min(TXN_SCAN_LIMIT_MAX);
                let (items, truncated) = self.history.scan_latest(&prefix, limit);
                let items = items
                    .into_iter()
                    .map(|(key, version)| (key.to_owned(), version.clone()))
                    .collect();
                TxnOpOutcome::Scan { items, truncated }
            }
            TxnOp::Range(query) => TxnOpOutcome::Range(
                range_query::run(&self.history, &query, u64::MAX)
                    .expect("checked: a range read's revision is readable"),
            ),
            TxnOp::Txn(_) => unreachable!("nested transactions run through run_path"),
        }
    }

    /// Deletes every key of `range` at the pending revision, in key order; how many, and the
    /// keys as they were when `prev_kv`.
    fn delete_range(
        &mut self,
        range: &KeyRange,
        prev_kv: bool,
        changes: &mut Vec<Change>,
    ) -> (u64, Vec<(String, VersionedValue)>) {
        let matching: Vec<(String, Option<VersionedValue>)> = self
            .history
            .range_at(range, u64::MAX)
            .map(|(key, version)| (key.to_owned(), prev_kv.then(|| version.clone())))
            .collect();
        let deleted = matching.len() as u64;
        changes.reserve(matching.len());
        let mut prev = Vec::new();
        for (key, version) in matching {
            let change = self.delete_key(&key).expect("a key the range found exists");
            changes.push(change);
            if let Some(version) = version {
                prev.push((key, version));
            }
        }
        (deleted, prev)
    }

    /// Reads `query` at the current revision ([`range_query`]): the Range of etcd's API, after
    /// the caller's read barrier.
    pub fn range(&self, query: &RangeQuery) -> Result<RangeResult, RevisionError> {
        range_query::run(&self.history, query, self.history.revision())
    }

    /// Compacts the history at `revision` (a no-op at or below the compaction revision in
    /// force); refused beyond the current revision.
    fn compact(&mut self, revision: u64) -> Outcome {
        if revision > self.history.revision() {
            return Outcome::CompactRefused {
                error: RevisionError::Future {
                    requested: revision,
                    current: self.history.revision(),
                    compact_revision: self.history.compact_revision(),
                },
            };
        }
        if revision > self.history.compact_revision() {
            self.history.compact(revision);
        }
        Outcome::Compacted {
            compact_revision: self.history.compact_revision(),
        }
    }
}

/// The branches a transaction's comparisons chose: its own, and those of the nested
/// transactions of that branch, in order.
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

impl Path {
    fn branch<'a>(&self, txn: &'a Txn) -> &'a [TxnOp] {
        if self.succeeded {
            &txn.success
        } else {
            &txn.failure
        }
    }
}

/// A copy of `value` the store may keep.
///
/// The value handed in is usually a slice of a larger buffer (a network frame, an HTTP read
/// buffer, a WAL segment read), and keeping the slice would keep that whole buffer alive for
/// as long as the version lives (measured: followers' resident size grew to several times the
/// data they held).
fn copied(value: &Bytes) -> Bytes {
    Bytes::copy_from_slice(value)
}
