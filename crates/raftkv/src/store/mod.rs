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
//!  execute(operation) ──► Outcome ──────────────────────► Sessions::record
//!  (applied_index moves to the entry's index in every case; `skip` moves only it)
//!
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
//! and this one (apply and read). Revisions with their history, transactions and leases each
//! go in a module of their own beside these.

pub mod command;
pub mod sessions;
pub mod snapshot;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use bytes::{Bytes, BytesMut};

pub use command::{Command, CommandError, Operation, Session, COMMAND_FORMAT_VERSION};
pub use sessions::{ClientId, ClientIdError};
pub use snapshot::{
    SnapshotError, SnapshotImage, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS,
};

use sessions::Sessions;

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
}

/// The replicated key-value store, its client sessions and the nodes' announced addresses.
pub struct StateMachine {
    /// The store.
    data: BTreeMap<String, Bytes>,
    /// Invariant: the sum of `key.len() + value.len()` over `data`.
    data_bytes: u64,
    /// The client sessions, for exactly-once writes.
    sessions: Sessions,
    /// The HTTP address each node announced.
    http_addresses: BTreeMap<u64, String>,
    /// The Raft address recorded for each node added at run time.
    raft_addresses: BTreeMap<u64, String>,
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
            .field("keys", &self.data.len())
            .field("data_bytes", &self.data_bytes)
            .field("sessions", &self.sessions.len())
            .field("sessions_max", &self.sessions.sessions_max())
            .field("http_addresses", &self.http_addresses)
            .field("raft_addresses", &self.raft_addresses)
            .finish()
    }
}

fn entry_bytes(key: &str, value: &Bytes) -> u64 {
    // usize is at most 64 bits on every supported target, so this never truncates.
    (key.len() + value.len()) as u64
}

impl StateMachine {
    /// An empty machine, before any entry is applied.
    ///
    /// `sessions_max`: sessions kept; beyond it the least recently active is evicted (0
    /// disables exactly-once writes). Every replica must use the same value.
    pub fn new(sessions_max: usize) -> StateMachine {
        StateMachine {
            data: BTreeMap::new(),
            data_bytes: 0,
            sessions: Sessions::new(sessions_max),
            http_addresses: BTreeMap::new(),
            raft_addresses: BTreeMap::new(),
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
    /// applied the request: for a retry answered from its session, the first application's
    /// index and term, so the retry gets exactly the first answer.
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
        let (outcome, applied_at) = self.apply_command(index, term, decoded);
        Applied {
            outcome,
            index: applied_at.0,
            term: applied_at.1,
        }
    }

    fn apply_command(
        &mut self,
        index: u64,
        term: u64,
        decoded: Result<Command, CommandError>,
    ) -> (Outcome, (u64, u64)) {
        let here = (index, term);
        self.advance_applied_index(index);
        let command = match decoded {
            Ok(command) => command,
            Err(error) => {
                let reason = error.to_string();
                return (Outcome::Rejected { reason }, here);
            }
        };
        let Some(session) = command.session else {
            return (self.execute(command.operation), here);
        };
        if let Some(answer) = self.sessions.answer_again(&session, here) {
            return answer;
        }
        let outcome = self.execute(command.operation);
        self.sessions.record(session, here, outcome.clone());
        (outcome, here)
    }

    /// Marks `index` applied without a command (a no-op or configuration entry the service
    /// skips): only moves `applied_index`.
    pub fn skip(&mut self, index: u64) {
        self.advance_applied_index(index);
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.data.get(key)
    }

    /// Keys starting with `prefix` in key order, at most `limit`; the bool says more followed.
    pub fn scan(&self, prefix: &str, limit: usize) -> (Vec<(String, Bytes)>, bool) {
        let mut matching = self
            .data
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix));
        let items: Vec<(String, Bytes)> = matching
            .by_ref()
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let more = matching.next().is_some();
        assert!(items.len() <= limit, "a scan returns at most its limit");
        (items, more)
    }

    /// The number of keys held.
    pub fn keys(&self) -> usize {
        self.data.len()
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

    /// The Raft address recorded for node `node`, if any.
    pub fn raft_address(&self, node: u64) -> Option<&str> {
        self.raft_addresses.get(&node).map(String::as_str)
    }

    /// Every recorded Raft address.
    pub fn raft_addresses(&self) -> &BTreeMap<u64, String> {
        &self.raft_addresses
    }

    /// Approximate bytes of keys and values held (for metrics): the sum of their lengths,
    /// without the maps' overhead.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Panics, naming the invariant, if the machine's internal state contradicts itself. Takes
    /// time linear in the state: for tests and simulators.
    pub fn check_invariants(&self) {
        let data_bytes: u64 = self
            .data
            .iter()
            .map(|(key, value)| entry_bytes(key, value))
            .sum();
        assert_eq!(self.data_bytes, data_bytes, "invariant data-bytes-counted");
        self.sessions.check_invariants(self.applied_index);
    }

    fn advance_applied_index(&mut self, index: u64) {
        assert!(
            index > self.applied_index,
            "invariant applied-index-increases: applying {index} after {}",
            self.applied_index
        );
        self.applied_index = index;
    }

    /// Carries out `operation` on the store.
    fn execute(&mut self, operation: Operation) -> Outcome {
        match operation {
            Operation::Put { key, value } => {
                self.insert(key, value);
                Outcome::Put
            }
            Operation::Delete { key } => {
                let removed = self.data.remove_entry(&key);
                if let Some((key, value)) = &removed {
                    self.data_bytes -= entry_bytes(key, value);
                }
                Outcome::Deleted {
                    existed: removed.is_some(),
                }
            }
            Operation::Append { key, suffix } => {
                let value = match self.data.get(&key) {
                    Some(existing) => {
                        let mut value = BytesMut::with_capacity(existing.len() + suffix.len());
                        value.extend_from_slice(existing);
                        value.extend_from_slice(&suffix);
                        value.freeze()
                    }
                    None => suffix,
                };
                let length = value.len() as u64;
                self.insert(key, value);
                Outcome::Appended { length }
            }
            Operation::Cas { key, expect, value } => {
                let current = self.data.get(&key);
                if current == expect.as_ref() {
                    self.insert(key, value);
                    Outcome::Cas {
                        swapped: true,
                        current: None,
                    }
                } else {
                    Outcome::Cas {
                        swapped: false,
                        current: current.cloned(),
                    }
                }
            }
            Operation::Announce { node, http_address } => {
                self.http_addresses.insert(node, http_address);
                Outcome::Announced
            }
            Operation::RaftAddress { node, raft_address } => {
                self.raft_addresses.insert(node, raft_address);
                Outcome::Announced
            }
        }
    }

    /// Sets `key` to `value`, keeping the byte count.
    ///
    /// The value is copied: the one handed in is usually a slice of a larger buffer (a network
    /// frame, an HTTP read buffer, a WAL segment read), and keeping the slice would keep that
    /// whole buffer alive for as long as the key lives (measured: followers' resident size grew
    /// to several times the data they held).
    fn insert(&mut self, key: String, value: Bytes) {
        let value = Bytes::copy_from_slice(&value);
        let key_bytes = key.len() as u64;
        self.data_bytes += key_bytes + value.len() as u64;
        // One search of the map, not a lookup and then an insert: this runs on every write on
        // every node.
        if let Some(previous) = self.data.insert(key, value) {
            self.data_bytes -= key_bytes + previous.len() as u64;
        }
    }
}
