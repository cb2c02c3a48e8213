//! The deterministic key-value state machine every replica applies the committed log to.
//!
//! ```text
//!  committed entry (index, data)
//!        │
//!        ▼
//!  apply ── decode fails ─────────────────────────────────────────► Rejected { reason }
//!        │ Command { session, operation }
//!        ▼
//!  session? ── none ─────────────────────────────────────────────► execute ──► outcome
//!        │ Some { client_id, sequence }
//!        ▼
//!  sessions[client_id] ── sequence == last ──► cached outcome   (the retry is not applied again)
//!                      ── sequence <  last ──► StaleSequence { last }      (nothing changes)
//!                      ── otherwise, or no session ──► execute ──► cache (sequence, outcome)
//!                                                              └─► evict beyond sessions_max
//!  (applied_index moves to the entry's index in every case; `skip` moves only it)
//! ```
//!
//! Everything here is a function of the log: the same entries applied in the same order give the
//! same state and the same outcomes on every replica, and [`StateMachine::snapshot`] gives the
//! same bytes. That is why there is no clock, no randomness and no hash-map iteration order in
//! this module, and why eviction is ordered by log index.
//!
//! # Exactly-once writes
//!
//! A client numbers its requests and retries a request under the same number (Raft thesis §6.3).
//! The machine keeps, per client, the last sequence number applied and that request's outcome,
//! so a retry of the last request returns the first application's outcome without applying it
//! again, and an older request is refused as stale. A client is expected to have one request
//! in flight at a time; a request older than the last is not applied, so a client that pipelines
//! requests must not let them overtake each other.
//!
//! Sessions are bounded by `sessions_max`. A session is active at the index of the last entry
//! that applied a request of it or returned its cached outcome; when more than `sessions_max`
//! sessions exist, the one least recently active (smallest index, then smallest client id) is
//! evicted (client ids in [`ClientId`]'s order: numbers first, by value, then texts, byte
//! by byte). In words: a client silent for longer than the `sessions_max` most recent clients
//! loses its session; a retry after that may apply twice. Every replica must be configured with
//! the same `sessions_max`, or their sessions diverge. `sessions_max = 0` disables exactly-once
//! writes.
//!
//! # Snapshot format
//!
//! ```text
//!  SnapshotRecord
//!    1 version        uint32: 1, or 2 when a session's client id is text; anything else
//!                     is refused
//!    2 applied_index  uint64
//!    3 entries        repeated { 1 key: string, 2 value: bytes }                 key order
//!    4 sessions       repeated { 1 client_id, 2 sequence, 3 last_active_index: uint64,
//!                                4 outcome: OutcomeRecord, 5 applied_index,
//!                                6 applied_term, 7 text_client_id: bytes }      client order
//!    5 addresses      repeated { 1 node: uint64, 2 http_address: string }        node order
//!    6 raft_addresses repeated { 1 node: uint64, 2 address: string }             node order
//!  OutcomeRecord oneof: 1 put {}, 2 deleted { 1 existed }, 3 appended { 1 length },
//!    4 cas { 1 swapped, 2 current: optional bytes }, 5 announced {}, 6 rejected { 1 reason },
//!    7 stale_sequence { 1 last }
//! ```
//!
//! A session's client id is field 1 when it is a number, field 7 (with field 1 zero) when it
//! is text ([`ClientId`]). Text ids came later, so a snapshot holding one says version 2: an
//! older build, which would read every such session as client 0, refuses it instead. A
//! snapshot without one stays version 1, byte for byte what older releases wrote and read.
//!
//! NB: the snapshot is built as one buffer in memory; a store much larger than memory would need
//! a streamed format.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use thiserror::Error;

use crate::command::{ClientId, ClientIdError, Command, CommandError, Operation, Session};

/// The newest snapshot format this build reads and writes: 2, with text client ids. It writes
/// [`SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS`] when every session's client id is a number.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;

/// The snapshot format of older releases, whose client ids were all numbers; still read, and
/// still written when every client id is a number.
pub const SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS: u32 = 1;

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

/// Why snapshot bytes could not be restored.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// The bytes are not a well-formed protobuf snapshot.
    #[error("undecodable snapshot: {0}")]
    Undecodable(String),
    /// The snapshot is in a format this build does not read (or is not a snapshot at all).
    #[error("snapshot format version {version} is not supported (1 to {supported} are)")]
    UnsupportedVersion {
        /// The snapshot's format version.
        version: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The snapshot decodes but contradicts itself.
    #[error("malformed snapshot {what}: {reason}")]
    Malformed {
        /// Which part.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One client's exactly-once session.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ClientSession {
    /// The last sequence number applied.
    sequence: u64,
    /// The outcome of applying it, returned again to a retry.
    outcome: Outcome,
    /// The index of the last entry that applied a request of this session or answered a retry.
    last_active_index: u64,
    /// Index and term of the entry that first applied `sequence`, reported again to a retry.
    applied_at: (u64, u64),
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
    /// Sessions by client id.
    /// Invariant: `sessions.len() <= sessions_max` after every call.
    sessions: BTreeMap<ClientId, ClientSession>,
    /// The eviction order: `(last_active_index, client_id)` of every session, least recently
    /// active first.
    /// Invariant: holds exactly one pair per session, matching it.
    activity: BTreeSet<(u64, ClientId)>,
    /// Sessions kept.
    sessions_max: usize,
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
            .field("sessions_max", &self.sessions_max)
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
            sessions: BTreeMap::new(),
            activity: BTreeSet::new(),
            sessions_max,
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
        if let Some(existing) = self.sessions.get(&session.client_id) {
            if session.sequence < existing.sequence {
                let last = existing.sequence;
                return (Outcome::StaleSequence { last }, here);
            }
            if session.sequence == existing.sequence {
                let answer = (existing.outcome.clone(), existing.applied_at);
                // A retry shows the client is alive and may retry again: keep its session.
                self.mark_active(&session.client_id, index);
                return answer;
            }
        }
        let outcome = self.execute(command.operation);
        self.record_session(session, here, outcome.clone());
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

    /// Serialized state: data, sessions (with cached outcomes), announced addresses, applied
    /// index. Equal states give equal bytes.
    pub fn snapshot(&self) -> Bytes {
        self.snapshot_image().encode()
    }

    /// A copy of the state for [`SnapshotImage::encode`], so that the slow part, encoding
    /// (about 100 ms for 25 MB), can run off the apply path and without the state's lock.
    pub fn snapshot_image(&self) -> SnapshotImage {
        // Numbers sort before texts: the last session tells whether any id is text.
        let text_ids = self
            .sessions
            .last_key_value()
            .is_some_and(|(client_id, _)| client_id.as_text().is_some());
        let version = if text_ids {
            SNAPSHOT_FORMAT_VERSION
        } else {
            SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS
        };
        let record = SnapshotRecord {
            version,
            applied_index: self.applied_index,
            entries: self
                .data
                .iter()
                .map(|(key, value)| EntryRecord {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(client_id, session)| SessionRecord {
                    client_id: client_id.as_number().unwrap_or(0),
                    sequence: session.sequence,
                    last_active_index: session.last_active_index,
                    outcome: Some(OutcomeRecord::from(&session.outcome)),
                    applied_index: session.applied_at.0,
                    applied_term: session.applied_at.1,
                    text_client_id: client_id.as_text().cloned().unwrap_or_default(),
                })
                .collect(),
            addresses: self
                .http_addresses
                .iter()
                .map(|(node, http_address)| AddressRecord {
                    node: *node,
                    http_address: http_address.clone(),
                })
                .collect(),
            raft_addresses: self
                .raft_addresses
                .iter()
                .map(|(node, address)| AddressRecord {
                    node: *node,
                    http_address: address.clone(),
                })
                .collect(),
        };
        SnapshotImage { record }
    }

    /// The machine `data` (from [`StateMachine::snapshot`]) describes, keeping at most
    /// `sessions_max` sessions (the least recently active are evicted if the snapshot holds
    /// more). Never panics, whatever the bytes.
    pub fn restore(data: &[u8], sessions_max: usize) -> Result<StateMachine, SnapshotError> {
        let record = SnapshotRecord::decode(data)
            .map_err(|error| SnapshotError::Undecodable(error.to_string()))?;
        if !(SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS..=SNAPSHOT_FORMAT_VERSION)
            .contains(&record.version)
        {
            return Err(SnapshotError::UnsupportedVersion {
                version: record.version,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        let mut machine = StateMachine::new(sessions_max);
        machine.applied_index = record.applied_index;
        for entry in record.entries {
            // Keys are written in increasing order; requiring it also refuses duplicates.
            if let Some((last_key, _)) = machine.data.last_key_value() {
                if *last_key >= entry.key {
                    return Err(SnapshotError::Malformed {
                        what: "entries",
                        reason: "keys not in strictly increasing order",
                    });
                }
            }
            machine.data_bytes += entry_bytes(&entry.key, &entry.value);
            machine.data.insert(entry.key, entry.value);
        }
        for session in record.sessions {
            if session.last_active_index > record.applied_index
                || session.applied_index > session.last_active_index
            {
                return Err(SnapshotError::Malformed {
                    what: "session",
                    reason: "active after the applied index",
                });
            }
            let outcome = Outcome::try_from(session.outcome.unwrap_or_default())?;
            let client_id = session_client_id(session.client_id, &session.text_client_id)?;
            let previous = machine.sessions.insert(
                client_id.clone(),
                ClientSession {
                    sequence: session.sequence,
                    outcome,
                    last_active_index: session.last_active_index,
                    applied_at: (session.applied_index, session.applied_term),
                },
            );
            if previous.is_some() {
                return Err(SnapshotError::Malformed {
                    what: "session",
                    reason: "client id appears twice",
                });
            }
            machine
                .activity
                .insert((session.last_active_index, client_id));
        }
        for address in record.addresses {
            let previous = machine
                .http_addresses
                .insert(address.node, address.http_address);
            if previous.is_some() {
                return Err(SnapshotError::Malformed {
                    what: "address",
                    reason: "node appears twice",
                });
            }
        }
        for address in record.raft_addresses {
            let previous = machine
                .raft_addresses
                .insert(address.node, address.http_address);
            if previous.is_some() {
                return Err(SnapshotError::Malformed {
                    what: "raft address",
                    reason: "node appears twice",
                });
            }
        }
        machine.evict_beyond_limit();
        machine.check_invariants();
        Ok(machine)
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
        assert!(
            self.sessions.len() <= self.sessions_max,
            "invariant sessions-bounded: {} sessions, limit {}",
            self.sessions.len(),
            self.sessions_max
        );
        assert_eq!(
            self.activity.len(),
            self.sessions.len(),
            "invariant activity-indexes-sessions"
        );
        for (last_active_index, client_id) in &self.activity {
            let session = self
                .sessions
                .get(client_id)
                .expect("invariant activity-indexes-sessions: session missing");
            assert_eq!(
                session.last_active_index, *last_active_index,
                "invariant activity-indexes-sessions: index differs"
            );
            assert!(
                *last_active_index <= self.applied_index,
                "invariant session-active-before-applied"
            );
        }
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

    /// Caches the outcome of a newly applied request of `session`, then evicts sessions beyond
    /// the limit.
    fn record_session(&mut self, session: Session, applied_at: (u64, u64), outcome: Outcome) {
        let index = applied_at.0;
        assert!(
            !matches!(
                outcome,
                Outcome::Rejected { .. } | Outcome::StaleSequence { .. }
            ),
            "only applied requests are cached"
        );
        let previous = self.sessions.insert(
            session.client_id.clone(),
            ClientSession {
                sequence: session.sequence,
                outcome,
                last_active_index: index,
                applied_at,
            },
        );
        // A text id's clone shares its bytes: the two copies here cost no allocation.
        if let Some(previous) = previous {
            assert!(
                previous.sequence < session.sequence,
                "a session's sequence only grows"
            );
            let removed = self
                .activity
                .remove(&(previous.last_active_index, session.client_id.clone()));
            assert!(removed, "invariant activity-indexes-sessions");
        }
        self.activity.insert((index, session.client_id));
        self.evict_beyond_limit();
    }

    /// Moves `client_id`'s session to the most recently active end of the eviction order.
    fn mark_active(&mut self, client_id: &ClientId, index: u64) {
        let session = self
            .sessions
            .get_mut(client_id)
            .expect("mark_active is called for an existing session");
        let removed = self
            .activity
            .remove(&(session.last_active_index, client_id.clone()));
        assert!(removed, "invariant activity-indexes-sessions");
        session.last_active_index = index;
        self.activity.insert((index, client_id.clone()));
    }

    /// Evicts the least recently active sessions until at most `sessions_max` remain.
    fn evict_beyond_limit(&mut self) {
        while self.sessions.len() > self.sessions_max {
            let (_, client_id) = self
                .activity
                .pop_first()
                .expect("invariant activity-indexes-sessions: more sessions than activity");
            let removed = self.sessions.remove(&client_id);
            assert!(removed.is_some(), "invariant activity-indexes-sessions");
        }
    }
}

/// The client id of a snapshot's session record: `text` when it is not empty (and `number`
/// then zero), else `number`.
fn session_client_id(number: u64, text: &[u8]) -> Result<ClientId, SnapshotError> {
    if text.is_empty() {
        return Ok(ClientId::number(number));
    }
    if number != 0 {
        return Err(SnapshotError::Malformed {
            what: "session",
            reason: "both a numeric and a text client id",
        });
    }
    ClientId::parse(text).map_err(|_: ClientIdError| SnapshotError::Malformed {
        what: "session",
        reason: "the text client id is not a valid one",
    })
}

/// The state machine at one applied index, detached from it (values are shared, not copied).
#[derive(Debug)]
pub struct SnapshotImage {
    record: SnapshotRecord,
}

impl SnapshotImage {
    /// The snapshot's bytes: what [`StateMachine::snapshot`] gives for the same state.
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.record.encode_to_vec())
    }
}

/// The protobuf form of a snapshot; tags are listed in the module documentation.
#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotRecord {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(uint64, tag = "2")]
    applied_index: u64,
    #[prost(message, repeated, tag = "3")]
    entries: Vec<EntryRecord>,
    #[prost(message, repeated, tag = "4")]
    sessions: Vec<SessionRecord>,
    #[prost(message, repeated, tag = "5")]
    addresses: Vec<AddressRecord>,
    /// Raft addresses, in the same record shape (its `http_address` field holds the address).
    #[prost(message, repeated, tag = "6")]
    raft_addresses: Vec<AddressRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EntryRecord {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SessionRecord {
    #[prost(uint64, tag = "1")]
    client_id: u64,
    #[prost(uint64, tag = "2")]
    sequence: u64,
    #[prost(uint64, tag = "3")]
    last_active_index: u64,
    #[prost(message, optional, tag = "4")]
    outcome: Option<OutcomeRecord>,
    #[prost(uint64, tag = "5")]
    applied_index: u64,
    #[prost(uint64, tag = "6")]
    applied_term: u64,
    /// The client id when it is text (then `client_id` is 0); empty when it is a number.
    #[prost(bytes = "bytes", tag = "7")]
    text_client_id: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AddressRecord {
    #[prost(uint64, tag = "1")]
    node: u64,
    #[prost(string, tag = "2")]
    http_address: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OutcomeRecord {
    #[prost(oneof = "OutcomeKind", tags = "1, 2, 3, 4, 5, 6, 7")]
    kind: Option<OutcomeKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum OutcomeKind {
    #[prost(message, tag = "1")]
    Put(EmptyRecord),
    #[prost(message, tag = "2")]
    Deleted(DeletedRecord),
    #[prost(message, tag = "3")]
    Appended(AppendedRecord),
    #[prost(message, tag = "4")]
    Cas(CasOutcomeRecord),
    #[prost(message, tag = "5")]
    Announced(EmptyRecord),
    #[prost(message, tag = "6")]
    Rejected(RejectedRecord),
    #[prost(message, tag = "7")]
    StaleSequence(StaleSequenceRecord),
}

#[derive(Clone, PartialEq, prost::Message)]
struct EmptyRecord {}

#[derive(Clone, PartialEq, prost::Message)]
struct DeletedRecord {
    #[prost(bool, tag = "1")]
    existed: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AppendedRecord {
    #[prost(uint64, tag = "1")]
    length: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CasOutcomeRecord {
    #[prost(bool, tag = "1")]
    swapped: bool,
    /// Explicit presence, so that an absent key differs from an empty value.
    #[prost(bytes = "bytes", optional, tag = "2")]
    current: Option<Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RejectedRecord {
    #[prost(string, tag = "1")]
    reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StaleSequenceRecord {
    #[prost(uint64, tag = "1")]
    last: u64,
}

impl From<&Outcome> for OutcomeRecord {
    fn from(outcome: &Outcome) -> OutcomeRecord {
        let kind = match outcome {
            Outcome::Put => OutcomeKind::Put(EmptyRecord {}),
            Outcome::Deleted { existed } => {
                OutcomeKind::Deleted(DeletedRecord { existed: *existed })
            }
            Outcome::Appended { length } => {
                OutcomeKind::Appended(AppendedRecord { length: *length })
            }
            Outcome::Cas { swapped, current } => OutcomeKind::Cas(CasOutcomeRecord {
                swapped: *swapped,
                current: current.clone(),
            }),
            Outcome::Announced => OutcomeKind::Announced(EmptyRecord {}),
            Outcome::Rejected { reason } => OutcomeKind::Rejected(RejectedRecord {
                reason: reason.clone(),
            }),
            Outcome::StaleSequence { last } => {
                OutcomeKind::StaleSequence(StaleSequenceRecord { last: *last })
            }
        };
        OutcomeRecord { kind: Some(kind) }
    }
}

impl TryFrom<OutcomeRecord> for Outcome {
    type Error = SnapshotError;

    fn try_from(record: OutcomeRecord) -> Result<Outcome, SnapshotError> {
        let kind = record.kind.ok_or(SnapshotError::Malformed {
            what: "session",
            reason: "cached outcome missing or of an unknown kind",
        })?;
        Ok(match kind {
            OutcomeKind::Put(EmptyRecord {}) => Outcome::Put,
            OutcomeKind::Deleted(deleted) => Outcome::Deleted {
                existed: deleted.existed,
            },
            OutcomeKind::Appended(appended) => Outcome::Appended {
                length: appended.length,
            },
            OutcomeKind::Cas(cas) => {
                if cas.swapped && cas.current.is_some() {
                    return Err(SnapshotError::Malformed {
                        what: "session",
                        reason: "a swapped compare-and-swap reports a current value",
                    });
                }
                Outcome::Cas {
                    swapped: cas.swapped,
                    current: cas.current,
                }
            }
            OutcomeKind::Announced(EmptyRecord {}) => Outcome::Announced,
            OutcomeKind::Rejected(rejected) => Outcome::Rejected {
                reason: rejected.reason,
            },
            OutcomeKind::StaleSequence(stale) => Outcome::StaleSequence { last: stale.last },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every outcome kind survives the snapshot encoding, including the ones never cached.
    #[test]
    fn every_outcome_roundtrips_through_its_record() {
        let outcomes = [
            Outcome::Put,
            Outcome::Deleted { existed: true },
            Outcome::Appended { length: 9 },
            Outcome::Cas {
                swapped: false,
                current: Some(Bytes::new()),
            },
            Outcome::Cas {
                swapped: false,
                current: None,
            },
            Outcome::Cas {
                swapped: true,
                current: None,
            },
            Outcome::Announced,
            Outcome::Rejected {
                reason: "bad".into(),
            },
            Outcome::StaleSequence { last: 4 },
        ];
        for outcome in outcomes {
            let record = OutcomeRecord::decode(&OutcomeRecord::from(&outcome).encode_to_vec()[..])
                .expect("decodes");
            assert_eq!(Outcome::try_from(record), Ok(outcome));
        }
    }

    #[test]
    fn restore_refuses_duplicate_sessions() {
        let session = SessionRecord {
            client_id: 1,
            sequence: 1,
            last_active_index: 1,
            outcome: Some(OutcomeRecord::from(&Outcome::Put)),
            applied_index: 1,
            applied_term: 1,
            text_client_id: Bytes::new(),
        };
        let record = SnapshotRecord {
            version: SNAPSHOT_FORMAT_VERSION,
            applied_index: 2,
            entries: Vec::new(),
            sessions: vec![session.clone(), session],
            addresses: Vec::new(),
            raft_addresses: Vec::new(),
        };
        assert!(matches!(
            StateMachine::restore(&record.encode_to_vec(), 10),
            Err(SnapshotError::Malformed { .. })
        ));
    }

    /// The session and snapshot records as releases before text client ids wrote them.
    mod older {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct SnapshotRecord {
            #[prost(uint32, tag = "1")]
            pub version: u32,
            #[prost(uint64, tag = "2")]
            pub applied_index: u64,
            #[prost(message, repeated, tag = "3")]
            pub entries: Vec<super::EntryRecord>,
            #[prost(message, repeated, tag = "4")]
            pub sessions: Vec<SessionRecord>,
            #[prost(message, repeated, tag = "5")]
            pub addresses: Vec<super::AddressRecord>,
            #[prost(message, repeated, tag = "6")]
            pub raft_addresses: Vec<super::AddressRecord>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct SessionRecord {
            #[prost(uint64, tag = "1")]
            pub client_id: u64,
            #[prost(uint64, tag = "2")]
            pub sequence: u64,
            #[prost(uint64, tag = "3")]
            pub last_active_index: u64,
            #[prost(message, optional, tag = "4")]
            pub outcome: Option<super::OutcomeRecord>,
            #[prost(uint64, tag = "5")]
            pub applied_index: u64,
            #[prost(uint64, tag = "6")]
            pub applied_term: u64,
        }
    }

    fn put_command(client_id: ClientId, sequence: u64, key: &str, value: &'static [u8]) -> Bytes {
        Command {
            session: Some(Session {
                client_id,
                sequence,
            }),
            operation: Operation::Put {
                key: key.into(),
                value: Bytes::from_static(value),
            },
            request_id: None,
        }
        .encode()
    }

    /// A snapshot an older release wrote (version 1, no text ids) restores with its sessions:
    /// a retry of the request it cached is answered from it, not applied again.
    #[test]
    fn an_older_snapshot_restores_with_its_sessions() {
        let older = older::SnapshotRecord {
            version: 1,
            applied_index: 5,
            entries: vec![EntryRecord {
                key: "k".into(),
                value: Bytes::from_static(b"first"),
            }],
            sessions: vec![older::SessionRecord {
                client_id: 7,
                sequence: 3,
                last_active_index: 4,
                outcome: Some(OutcomeRecord::from(&Outcome::Put)),
                applied_index: 4,
                applied_term: 2,
            }],
            addresses: Vec::new(),
            raft_addresses: Vec::new(),
        };
        let bytes = older.encode_to_vec();
        let mut machine = StateMachine::restore(&bytes, 10).expect("restores");
        machine.check_invariants();
        assert_eq!(machine.sessions(), 1);
        assert_eq!(machine.snapshot(), bytes, "written back byte for byte");
        let retry = machine.apply_entry(6, 3, &put_command(ClientId::number(7), 3, "k", b"again"));
        assert_eq!(
            retry,
            Applied {
                outcome: Outcome::Put,
                index: 4,
                term: 2
            },
            "answered from the session"
        );
        assert_eq!(machine.get("k"), Some(&Bytes::from_static(b"first")));
    }

    /// Text client ids go in a field of their own under version 2, which an older build
    /// refuses instead of reading every such session as client 0.
    #[test]
    fn a_snapshot_with_a_text_client_id_is_version_2_and_round_trips() {
        let uuid = ClientId::parse(b"3f2504e0-4f89-11d3-9a0c-0305e82c3301").expect("valid");
        let mut machine = StateMachine::new(10);
        machine.apply(1, &put_command(ClientId::number(7), 1, "a", b"1"));
        machine.apply(2, &put_command(uuid.clone(), 1, "b", b"2"));
        let snapshot = machine.snapshot();
        let older = older::SnapshotRecord::decode(&snapshot[..]).expect("decodes");
        assert_eq!(older.version, SNAPSHOT_FORMAT_VERSION);
        assert_ne!(older.version, SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS);
        let mut restored = StateMachine::restore(&snapshot, 10).expect("restores");
        restored.check_invariants();
        assert_eq!(restored.snapshot(), snapshot);
        let retry = restored.apply_entry(3, 1, &put_command(uuid.clone(), 1, "b", b"again"));
        assert_eq!(retry.index, 2, "the text id's session survived");
        assert_eq!(restored.get("b"), Some(&Bytes::from_static(b"2")));
        // Once the text id's session is evicted, the snapshot is version 1 again.
        let mut numeric = StateMachine::new(1);
        numeric.apply(1, &put_command(uuid, 1, "b", b"2"));
        numeric.apply(2, &put_command(ClientId::number(7), 1, "a", b"1"));
        let record = SnapshotRecord::decode(&numeric.snapshot()[..]).expect("decodes");
        assert_eq!(record.version, SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS);
    }

    #[test]
    fn restore_refuses_a_session_with_two_ids_or_a_bad_text_id() {
        let session = |client_id, text: &'static [u8]| SessionRecord {
            client_id,
            sequence: 1,
            last_active_index: 1,
            outcome: Some(OutcomeRecord::from(&Outcome::Put)),
            applied_index: 1,
            applied_term: 1,
            text_client_id: Bytes::from_static(text),
        };
        for bad in [session(7, b"ab"), session(0, b"a b")] {
            let record = SnapshotRecord {
                version: SNAPSHOT_FORMAT_VERSION,
                applied_index: 2,
                entries: Vec::new(),
                sessions: vec![bad],
                addresses: Vec::new(),
                raft_addresses: Vec::new(),
            };
            assert!(matches!(
                StateMachine::restore(&record.encode_to_vec(), 10),
                Err(SnapshotError::Malformed {
                    what: "session",
                    ..
                })
            ));
        }
    }
}
