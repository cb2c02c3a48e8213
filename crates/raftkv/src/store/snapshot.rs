//! The snapshot format: the whole store at one applied index, as the bytes a leader sends a
//! follower that is too far behind and a node writes beside its log.
//!
//! ```text
//!  SnapshotRecord
//!    1 version          uint32: 4 (written); 1, 2 and 3 are still read; anything else is
//!                       refused
//!    2 applied_index    uint64
//!    3 entries          repeated { 1 key: string, 2 value: bytes }      versions 1, 2 only
//!    4 sessions         repeated { 1 client_id, 2 sequence, 3 last_active_index: uint64,
//!                                  4 outcome: OutcomeRecord, 5 applied_index,
//!                                  6 applied_term, 7 text_client_id: bytes,
//!                                  8 revision: uint64 }                       client order
//!    5 addresses        repeated { 1 node: uint64, 2 http_address: string }  node order
//!    6 raft_addresses   repeated { 1 node: uint64, 2 address: string }       node order
//!    7 revision         uint64                                            version 3
//!    8 compact_revision uint64                                            version 3
//!    9 base             repeated VersionRecord: each key's one version older than the
//!                       compaction revision, when it has one (never a delete); key order
//!   10 changes          repeated VersionRecord: every version since the compaction
//!                       revision, in the order made (revision order, then each
//!                       command's own order)
//!   11 leases           repeated { 1 id: uint64, 2 ttl_seconds: uint64,
//!                                  3 remaining_ms: optional uint64 }   id order; version 4
//!   12 grpc_addresses   repeated { 1 node: uint64, 2 address: string }       node order
//!                       (absent from older snapshots: no node announced one then)
//!  VersionRecord { 1 key: string, 2 value: bytes, 3 create_revision, 4 mod_revision,
//!                  5 version: uint64, 6 lease: uint64 (version 4; 0: none) }
//!                                                                 (a delete: version 0)
//!  OutcomeRecord oneof: 1 put {}, 2 deleted { 1 existed }, 3 appended { 1 length },
//!    4 cas { 1 swapped, 2 current: optional bytes }, 5 announced {}, 6 rejected { 1 reason },
//!    7 stale_sequence { 1 last }, 8 compacted { 1 compact_revision },
//!    9 compact_refused RevisionErrorRecord { 1 compacted: bool, 2 requested,
//!                      3 compact_revision, 4 current },
//!   10 txn { 1 succeeded: bool, 2 results: repeated TxnOpOutcomeRecord },
//!   11 txn_refused { 1 kind: uint32, 2 key: string, 3 count: uint64,
//!                    4 revision: RevisionErrorRecord (kind 7) },
//!   12 lease_granted { 1 id, 2 ttl_seconds }, 13 lease_revoked { 1 id, 2 keys_deleted,
//!      3 expired: bool }, 14 lease_checkpointed {},
//!   15 lease_refused { 1 kind: uint32 (1 not found, 2 already exists, 3 invalid id), 2 id },
//!   16 hash_check_marked {}
//!  TxnOpOutcomeRecord oneof: 1 put { 1 prev: optional VersionRecord },
//!    2 delete { 1 deleted: uint64 }, 3 get { 1 value: optional VersionRecord },
//!    4 scan { 1 items: repeated VersionRecord, 2 truncated: bool },
//!    5 delete_range { 1 deleted: uint64, 2 prev: repeated VersionRecord },
//!    6 range { 1 kvs: repeated VersionRecord, 2 more: bool, 3 count: uint64 },
//!    7 txn { 1 succeeded: bool, 2 results: repeated TxnOpOutcomeRecord } (nested)
//! ```
//!
//! Version 3 carries the history ([`super::history`]): the store's revision, its compaction
//! revision, and every version held, so a restored replica answers reads at past revisions
//! and watches' catch-up exactly as the one that wrote it, and its own snapshot is the same
//! bytes. `changes` is the history's log: the versions in the order they were made, which is
//! the order a watch must see them in (within one revision, the per-key lists alone would
//! lose it); `base` holds the older versions reads at the compaction revision still see.
//!
//! Version 4 adds leases ([`super::lease`]): the table (id, granted TTL, checkpointed
//! remaining time) and each version's lease. Which keys a lease holds is not written: it is
//! the live keys whose latest version names it, rebuilt on restore (a live key naming a lease
//! the snapshot does not hold is refused). Version 3 snapshots restore without leases.
//!
//! Versions 1 and 2 (older releases) carry current values only: every key restores as
//! created at revision 1, version 1, with the store at revision 1 and compacted there, the
//! same on every replica that restores the same snapshot. NB: a replica that replays the log
//! from an older snapshot and one that restores a later one reach different revisions for the
//! same index; a cluster upgraded from a release without revisions agrees on revisions only
//! once every replica restarts from snapshots of the same index (or a new snapshot is installed
//! everywhere).
//!
//! A session's client id is field 1 when it is a number, field 7 (with field 1 zero) when it
//! is text ([`ClientId`]). Text ids came with version 2, which older builds refuse instead of
//! reading every such session as client 0; versions 3 and 4 carry both kinds.
//!
//! NB: the snapshot is built as one buffer in memory; a store much larger than memory would need
//! a streamed format.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use thiserror::Error;

mod outcomes;

use super::history::History;
use super::sessions::{ClientId, ClientIdError, ClientSession};
use super::{Outcome, StateMachine, VersionedValue};
use outcomes::OutcomeRecord;

/// The snapshot format this build writes, and the newest it reads: 4, with revisions,
/// history and leases.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 4;

/// The snapshot format of releases with revisions and history but without leases; still read.
pub const SNAPSHOT_FORMAT_VERSION_REVISIONS: u32 = 3;

/// The oldest snapshot format still read: releases before text client ids (all client ids
/// numbers), without revisions.
pub const SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS: u32 = 1;

/// The snapshot format of releases with text client ids and without revisions; still read.
pub const SNAPSHOT_FORMAT_VERSION_TEXT_IDS: u32 = 2;

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

impl StateMachine {
    /// Serialized state: data, sessions (with cached outcomes), announced addresses, applied
    /// index. Equal states give equal bytes.
    pub fn snapshot(&self) -> Bytes {
        self.snapshot_image().encode()
    }

    /// The state as it is now, detached from it, for [`SnapshotImage::encode`], so that the
    /// slow part, encoding (about 100 ms for 25 MB), runs off the apply path and without the
    /// state's lock. Cheap: the store's keys are shared, not copied (a persistent map, see
    /// `store::history`); the sessions, leases and addresses are copied.
    pub fn snapshot_image(&self) -> SnapshotImage {
        let record = SnapshotRecord {
            version: SNAPSHOT_FORMAT_VERSION,
            applied_index: self.applied_index,
            entries: Vec::new(),
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
                    revision: session.revision,
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
            grpc_addresses: self
                .grpc_addresses
                .iter()
                .map(|(node, address)| AddressRecord {
                    node: *node,
                    http_address: address.clone(),
                })
                .collect(),
            revision: self.history.revision(),
            compact_revision: self.history.compact_revision(),
            // Written from `history` by `encode`, off the apply path.
            base: Vec::new(),
            changes: Vec::new(),
            leases: self
                .leases
                .iter()
                .map(|(id, lease)| LeaseRecord {
                    id,
                    ttl_seconds: lease.ttl_seconds,
                    remaining_ms: lease.remaining_ms,
                })
                .collect(),
        };
        SnapshotImage {
            record,
            // O(1) for the map of keys (shared until either side changes it), and a copy of
            // the log's records, one short record per version since the compaction revision.
            history: self.history.clone(),
        }
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
        let versioned = record.version >= SNAPSHOT_FORMAT_VERSION_REVISIONS;
        let with_leases = record.version >= SNAPSHOT_FORMAT_VERSION;
        if !with_leases {
            let leased = record
                .base
                .iter()
                .chain(&record.changes)
                .any(|version| version.lease != 0);
            if leased || !record.leases.is_empty() {
                return Err(SnapshotError::Malformed {
                    what: "leases",
                    reason: "leases in a snapshot of a format without them",
                });
            }
        }
        if versioned {
            if !record.entries.is_empty() {
                return Err(SnapshotError::Malformed {
                    what: "entries",
                    reason: "unversioned entries in a snapshot with history",
                });
            }
            let versions =
                |records: Vec<VersionRecord>| records.into_iter().map(VersionRecord::into_parts);
            machine.history = History::restore(
                record.revision,
                record.compact_revision,
                versions(record.base),
                versions(record.changes),
            )
            .map_err(|reason| SnapshotError::Malformed {
                what: "history",
                reason,
            })?;
        } else {
            if record.revision != 0
                || record.compact_revision != 0
                || !record.base.is_empty()
                || !record.changes.is_empty()
            {
                return Err(SnapshotError::Malformed {
                    what: "history",
                    reason: "history in a snapshot of a format without it",
                });
            }
            for entry in record.entries {
                // Keys are written in increasing order; requiring it also refuses duplicates.
                if !machine.history.insert_unversioned(&entry.key, entry.value) {
                    return Err(SnapshotError::Malformed {
                        what: "entries",
                        reason: "keys not in strictly increasing order",
                    });
                }
            }
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
            // Older formats kept no revisions: their store, and every answer cached, is at 1.
            let revision = if versioned { session.revision } else { 1 };
            if !(1..=machine.history.revision()).contains(&revision) {
                return Err(SnapshotError::Malformed {
                    what: "session",
                    reason: "revision outside 1 and the store's revision",
                });
            }
            let client_id = session_client_id(session.client_id, &session.text_client_id)?;
            let inserted = machine.sessions.insert_restored(
                client_id,
                ClientSession {
                    sequence: session.sequence,
                    outcome,
                    last_active_index: session.last_active_index,
                    applied_at: (session.applied_index, session.applied_term),
                    revision,
                },
            );
            if !inserted {
                return Err(SnapshotError::Malformed {
                    what: "session",
                    reason: "client id appears twice",
                });
            }
        }
        for lease in record.leases {
            if !machine
                .leases
                .insert_restored(lease.id, lease.ttl_seconds, lease.remaining_ms)
            {
                return Err(SnapshotError::Malformed {
                    what: "leases",
                    reason: "an id is 0, too large or out of order, or a checkpoint is 0",
                });
            }
        }
        for (key, lease) in machine.history.leased_keys() {
            if !machine.leases.contains(lease) {
                return Err(SnapshotError::Malformed {
                    what: "leases",
                    reason: "a key is attached to a lease the snapshot does not hold",
                });
            }
            machine.leases.attach(lease, Arc::clone(key));
        }
        machine.http_addresses = addresses_by_node(record.addresses, "address")?;
        machine.raft_addresses = addresses_by_node(record.raft_addresses, "raft address")?;
        machine.grpc_addresses = addresses_by_node(record.grpc_addresses, "gRPC address")?;
        machine.sessions.evict_beyond_limit();
        machine.check_invariants();
        Ok(machine)
    }
}

/// The addresses of a snapshot's `records` by node; `what` names them when a node appears twice.
fn addresses_by_node(
    records: Vec<AddressRecord>,
    what: &'static str,
) -> Result<BTreeMap<u64, String>, SnapshotError> {
    let mut addresses = BTreeMap::new();
    for record in records {
        if addresses.insert(record.node, record.http_address).is_some() {
            return Err(SnapshotError::Malformed {
                what,
                reason: "node appears twice",
            });
        }
    }
    Ok(addresses)
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

/// The state machine at one applied index, detached from it (values are shared, not copied;
/// a clone shares everything too).
#[derive(Clone, Debug)]
pub struct SnapshotImage {
    /// Every field but the history's versions (`base` and `changes` are empty).
    record: SnapshotRecord,
    /// The history at that index, sharing its keys with the machine's.
    history: History,
}

/// How many versions [`SnapshotImage::encode_unless_cancelled`] writes between looks at its
/// flag: a few milliseconds of work at most.
const VERSIONS_PER_CANCEL_CHECK: usize = 4096;

/// The snapshot record's field of each key's version older than the compaction revision.
const BASE_TAG: u32 = 9;
/// The snapshot record's field of the versions since the compaction revision.
const CHANGES_TAG: u32 = 10;

impl SnapshotImage {
    /// The snapshot's bytes: what [`StateMachine::snapshot`] gives for the same state.
    ///
    /// A protobuf message is the concatenation of its fields, so the record is written in
    /// three parts in tag order: the fields before `base` (prost), the versions (written here
    /// straight from the history into a buffer sized exactly beforehand, with no record or key
    /// copy per version), and the fields after `changes` (prost). The bytes are those prost
    /// gives for the whole record.
    pub fn encode(&self) -> Bytes {
        let never = AtomicBool::new(false);
        match self.encode_unless_cancelled(&never) {
            Some(bytes) => bytes,
            None => unreachable!("an encoding nobody can cancel was cancelled"),
        }
    }

    /// [`SnapshotImage::encode`], given up (`None`) soon after `cancelled` is set: it is
    /// checked every few thousand versions.
    pub fn encode_unless_cancelled(&self, cancelled: &AtomicBool) -> Option<Bytes> {
        let (head, tail) = self.head_and_tail();
        let versions_len: usize = self
            .history
            .base()
            .chain(self.history.logged())
            .map(|(key, version)| field_len(version_record_len(key, version)))
            .sum();
        let mut out = Vec::with_capacity(head.encoded_len() + versions_len + tail.encoded_len());
        head.encode_raw(&mut out);
        let base = self.history.base().map(|version| (BASE_TAG, version));
        let changes = self.history.logged().map(|version| (CHANGES_TAG, version));
        for (written, (tag, (key, version))) in base.chain(changes).enumerate() {
            if written % VERSIONS_PER_CANCEL_CHECK == 0 && cancelled.load(Ordering::Relaxed) {
                return None;
            }
            encode_version_record(tag, key, version, &mut out);
        }
        tail.encode_raw(&mut out);
        Some(Bytes::from(out))
    }

    /// The SHA-256 digest of the bytes [`SnapshotImage::encode`] gives, computed a version at
    /// a time, without holding those bytes: equal states give equal digests, and the digest
    /// covers everything a snapshot holds (every version held, with its revisions and lease,
    /// sessions with their cached answers, leases, addresses, the applied index). Consistency
    /// checks compare it across replicas at one applied index.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest as _;
        let (head, tail) = self.head_and_tail();
        let mut hasher = sha2::Sha256::new();
        // One buffer for every part: a version's record is small, the head and tail are what
        // prost writes for the fields around the versions.
        let mut part = head.encode_to_vec();
        hasher.update(&part);
        let versions = self
            .history
            .base()
            .map(|version| (BASE_TAG, version))
            .chain(self.history.logged().map(|version| (CHANGES_TAG, version)));
        for (tag, (key, version)) in versions {
            part.clear();
            encode_version_record(tag, key, version, &mut part);
            hasher.update(&part);
        }
        part.clear();
        tail.encode_raw(&mut part);
        hasher.update(&part);
        hasher.finalize().into()
    }

    /// The applied index of the state this image was taken of.
    pub fn applied_index(&self) -> u64 {
        self.record.applied_index
    }

    /// The store's revision in the state this image was taken of.
    pub fn revision(&self) -> u64 {
        self.record.revision
    }

    /// The record's fields before the versions (`head`) and after them (`tail`), each a
    /// record of its own: a protobuf message is the concatenation of its fields, so the
    /// snapshot's bytes are `head`, the versions, then `tail`.
    fn head_and_tail(&self) -> (SnapshotRecord, SnapshotRecord) {
        let head = SnapshotRecord {
            leases: Vec::new(),
            grpc_addresses: Vec::new(),
            ..self.record.clone()
        };
        let tail = SnapshotRecord {
            leases: self.record.leases.clone(),
            grpc_addresses: self.record.grpc_addresses.clone(),
            ..SnapshotRecord::default()
        };
        (head, tail)
    }
}

/// Bytes of a length-delimited field (of a one-byte tag) whose payload is `payload_len`.
fn field_len(payload_len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(payload_len as u64) + payload_len
}

/// Bytes of a `uint64` field of a one-byte tag holding `value` (none when 0, as proto3 omits
/// it).
fn uint64_field_len(value: u64) -> usize {
    match value {
        0 => 0,
        _ => 1 + prost::encoding::encoded_len_varint(value),
    }
}

/// Bytes of the [`VersionRecord`] of `key` at `version`, as prost encodes it.
fn version_record_len(key: &str, version: &VersionedValue) -> usize {
    let text = |length: usize| if length == 0 { 0 } else { field_len(length) };
    text(key.len())
        + text(version.value.len())
        + uint64_field_len(version.create_revision)
        + uint64_field_len(version.mod_revision)
        + uint64_field_len(version.version)
        + uint64_field_len(version.lease)
}

/// Appends the [`VersionRecord`] of `key` at `version` as field `tag` of the snapshot record:
/// the bytes prost writes for it, without building the record (and copying the key).
fn encode_version_record(tag: u32, key: &str, version: &VersionedValue, out: &mut Vec<u8>) {
    use prost::encoding::{encode_key, encode_varint, WireType};
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(version_record_len(key, version) as u64, out);
    for (field, text) in [(1, key.as_bytes()), (2, &version.value[..])] {
        if !text.is_empty() {
            encode_key(field, WireType::LengthDelimited, out);
            encode_varint(text.len() as u64, out);
            out.extend_from_slice(text);
        }
    }
    let numbers = [
        version.create_revision,
        version.mod_revision,
        version.version,
        version.lease,
    ];
    for (field, value) in (3..).zip(numbers) {
        if value != 0 {
            encode_key(field, WireType::Varint, out);
            encode_varint(value, out);
        }
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
    #[prost(uint64, tag = "7")]
    revision: u64,
    #[prost(uint64, tag = "8")]
    compact_revision: u64,
    #[prost(message, repeated, tag = "9")]
    base: Vec<VersionRecord>,
    #[prost(message, repeated, tag = "10")]
    changes: Vec<VersionRecord>,
    #[prost(message, repeated, tag = "11")]
    leases: Vec<LeaseRecord>,
    /// etcd gRPC addresses, in the same record shape as `raft_addresses`.
    #[prost(message, repeated, tag = "12")]
    grpc_addresses: Vec<AddressRecord>,
}

/// One lease of the table (its keys are the live keys naming it).
#[derive(Clone, PartialEq, prost::Message)]
struct LeaseRecord {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    ttl_seconds: u64,
    #[prost(uint64, optional, tag = "3")]
    remaining_ms: Option<u64>,
}

/// One held version of a key.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct VersionRecord {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
    #[prost(uint64, tag = "3")]
    create_revision: u64,
    #[prost(uint64, tag = "4")]
    mod_revision: u64,
    #[prost(uint64, tag = "5")]
    version: u64,
    #[prost(uint64, tag = "6")]
    lease: u64,
}

impl From<(&str, &VersionedValue)> for VersionRecord {
    fn from((key, version): (&str, &VersionedValue)) -> VersionRecord {
        VersionRecord {
            key: key.to_owned(),
            value: version.value.clone(),
            create_revision: version.create_revision,
            mod_revision: version.mod_revision,
            version: version.version,
            lease: version.lease,
        }
    }
}

impl VersionRecord {
    pub(super) fn into_parts(self) -> (String, VersionedValue) {
        let version = VersionedValue {
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        };
        (self.key, version)
    }
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
    /// The store's revision after the cached request was applied.
    #[prost(uint64, tag = "8")]
    revision: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AddressRecord {
    #[prost(uint64, tag = "1")]
    node: u64,
    #[prost(string, tag = "2")]
    http_address: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        Applied, Command, LeaseError, Operation, RevisionError, Session, TxnError, TxnOpOutcome,
    };

    /// Every outcome kind survives the snapshot encoding, including the ones never cached.
    #[test]
    fn every_outcome_roundtrips_through_its_record() {
        let version = VersionedValue {
            value: Bytes::from_static(b"v"),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: 0,
        };
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
            Outcome::Compacted {
                compact_revision: 3,
            },
            Outcome::CompactRefused {
                error: RevisionError::Future {
                    requested: 9,
                    current: 4,
                    compact_revision: 2,
                },
            },
            Outcome::Txn {
                succeeded: false,
                results: vec![
                    TxnOpOutcome::Put { prev: None },
                    TxnOpOutcome::Put {
                        prev: Some(version.clone()),
                    },
                    TxnOpOutcome::Delete { deleted: 2 },
                    TxnOpOutcome::Get { value: None },
                    TxnOpOutcome::Scan {
                        items: vec![("k".into(), version.clone())],
                        truncated: true,
                    },
                    TxnOpOutcome::DeleteRange {
                        deleted: 1,
                        prev: vec![("k".into(), version.clone())],
                    },
                    TxnOpOutcome::Range(crate::store::RangeResult {
                        kvs: vec![("k".into(), version.clone())],
                        more: true,
                        count: 4,
                    }),
                    TxnOpOutcome::Txn {
                        succeeded: true,
                        results: vec![TxnOpOutcome::DeleteRange {
                            deleted: 0,
                            prev: Vec::new(),
                        }],
                    },
                ],
            },
            Outcome::TxnRefused {
                error: TxnError::KeyChangedTwice { key: "k".into() },
            },
            Outcome::TxnRefused {
                error: TxnError::KeyNotFound { key: "k".into() },
            },
            Outcome::TxnRefused {
                error: TxnError::Revision(RevisionError::Compacted {
                    requested: 2,
                    compact_revision: 3,
                    current: 9,
                }),
            },
            Outcome::TxnRefused {
                error: TxnError::TooManyOperations { count: 200 },
            },
            Outcome::TxnRefused {
                error: TxnError::EmptyDeletePrefix,
            },
            Outcome::LeaseGranted {
                id: 5,
                ttl_seconds: 60,
            },
            Outcome::LeaseRevoked {
                id: 5,
                keys_deleted: 3,
                expired: true,
            },
            Outcome::LeaseCheckpointed,
            Outcome::HashCheckMarked,
            Outcome::LeaseRefused {
                error: LeaseError::NotFound { id: 8 },
            },
            Outcome::LeaseRefused {
                error: LeaseError::AlreadyExists { id: 8 },
            },
            Outcome::LeaseRefused {
                error: LeaseError::InvalidId { id: 0 },
            },
        ];
        for outcome in outcomes {
            let record = OutcomeRecord::decode(&OutcomeRecord::from(&outcome).encode_to_vec()[..])
                .expect("decodes");
            assert_eq!(Outcome::try_from(record), Ok(outcome));
        }
    }

    /// The snapshot written in parts is the bytes prost gives for the whole record, with every
    /// field present: sessions, addresses, history before and after a compaction, leases.
    #[test]
    fn the_snapshot_is_the_whole_record_prost_writes() {
        let machine = machine_with_every_field();
        let image = machine.snapshot_image();
        let whole = SnapshotRecord {
            base: machine.history.base().map(VersionRecord::from).collect(),
            changes: machine.history.logged().map(VersionRecord::from).collect(),
            ..image.record.clone()
        };
        assert!(!whole.base.is_empty() && !whole.changes.is_empty() && !whole.leases.is_empty());
        assert!(!whole.sessions.is_empty() && !whole.grpc_addresses.is_empty());
        assert_eq!(machine.snapshot(), Bytes::from(whole.encode_to_vec()));
    }

    /// A machine whose snapshot has every field present: sessions, addresses, history before
    /// and after a compaction, leases.
    fn machine_with_every_field() -> StateMachine {
        let mut machine = StateMachine::new(10);
        let operations = [
            Operation::Announce {
                node: 1,
                http_address: "127.0.0.1:1".into(),
                grpc_address: Some("127.0.0.1:2".into()),
            },
            Operation::LeaseGrant {
                id: 9,
                ttl_seconds: 30,
            },
            Operation::Put {
                key: "a".into(),
                value: Bytes::from_static(b"1"),
                lease: 9,
            },
            Operation::Put {
                key: "b".into(),
                value: Bytes::from_static(b"2"),
                lease: 0,
            },
            Operation::Put {
                key: "a".into(),
                value: Bytes::from_static(b"3"),
                lease: 0,
            },
            Operation::Compact { revision: 3 },
            Operation::Delete { key: "b".into() },
        ];
        for (at, operation) in operations.into_iter().enumerate() {
            let command = Command {
                session: Some(Session {
                    client_id: ClientId::number(at as u64 % 2 + 1),
                    sequence: at as u64 + 1,
                }),
                operation,
                request_id: None,
            };
            machine.apply(at as u64 + 1, &command.encode());
        }
        machine
    }

    /// The digest is SHA-256 of the snapshot's bytes, computed without them.
    #[test]
    fn the_digest_is_the_sha256_of_the_encoded_snapshot() {
        use sha2::Digest as _;
        for machine in [StateMachine::new(10), machine_with_every_field()] {
            let expected: [u8; 32] = sha2::Sha256::digest(machine.snapshot()).into();
            assert_eq!(machine.snapshot_image().digest(), expected);
        }
    }

    /// Replicas that applied the same entries hash the same, and so does one restored from
    /// the other's snapshot (a node restarted, or one that installed a snapshot); a value
    /// changed, or any other part of the state, changes the digest.
    #[test]
    fn equal_states_hash_equal_and_a_changed_value_does_not() {
        let replica = machine_with_every_field();
        let digest = replica.snapshot_image().digest();
        assert_eq!(machine_with_every_field().snapshot_image().digest(), digest);
        let restored = StateMachine::restore(&replica.snapshot(), 10).expect("restores");
        assert_eq!(restored.snapshot_image().digest(), digest);

        let snapshot = replica.snapshot();
        let at = snapshot
            .windows(3)
            .position(|window| window == b"\x12\x013")
            .expect("the value of `a` is in the snapshot");
        let mut corrupted = snapshot.to_vec();
        corrupted[at + 2] = b'4';
        let diverged = StateMachine::restore(&corrupted, 10).expect("still a valid snapshot");
        assert_eq!(diverged.get("a").map(|value| &value[..]), Some(&b"4"[..]));
        assert_ne!(diverged.snapshot_image().digest(), digest);

        let mut advanced = machine_with_every_field();
        let hash_check = Command {
            session: None,
            operation: Operation::HashCheck,
            request_id: None,
        };
        let before = (advanced.revision(), advanced.keys());
        assert_eq!(
            advanced.apply(100, &hash_check.encode()),
            Outcome::HashCheckMarked
        );
        assert_eq!(
            (advanced.revision(), advanced.keys()),
            before,
            "nothing changed"
        );
        // The applied index is part of the state hashed: hashes compare at one index.
        assert_ne!(advanced.snapshot_image().digest(), digest);
        assert_eq!(advanced.snapshot_image().applied_index(), 100);
    }

    /// The versions written without building their records are the bytes prost writes for
    /// the records, zero and empty fields (which proto3 leaves out) and long varints included.
    #[test]
    fn a_version_written_directly_is_the_record_prost_writes() {
        let long_value = Bytes::from(vec![7u8; 300]);
        let cases = [
            ("", Bytes::new(), 0, 0, 0, 0),
            ("k", Bytes::from_static(b"v"), 1, 1, 1, 0),
            ("key", Bytes::new(), 0, 5, 0, 0),
            ("ключ", long_value, 127, 128, 16_384, u64::MAX),
        ];
        for (key, value, create_revision, mod_revision, version, lease) in cases {
            let version = VersionedValue {
                value,
                create_revision,
                mod_revision,
                version,
                lease,
            };
            let mut written = Vec::new();
            encode_version_record(BASE_TAG, key, &version, &mut written);
            let mut expected = Vec::new();
            prost::encoding::message::encode(
                BASE_TAG,
                &VersionRecord::from((key, &version)),
                &mut expected,
            );
            assert_eq!(written, expected, "{key:?} {version:?}");
            assert_eq!(field_len(version_record_len(key, &version)), expected.len());
        }
    }

    /// A snapshot whose keys and lease table disagree, or whose table is out of order or
    /// holds an impossible checkpoint, is refused, never restored into a broken machine.
    #[test]
    fn restore_refuses_leases_that_contradict_the_keys() {
        let leased_key = |lease| VersionRecord {
            key: "k".into(),
            value: Bytes::from_static(b"v"),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
            lease,
        };
        let lease = |id, remaining_ms| LeaseRecord {
            id,
            ttl_seconds: 10,
            remaining_ms,
        };
        let snapshot = |leases, lease_of_key| SnapshotRecord {
            version: SNAPSHOT_FORMAT_VERSION,
            applied_index: 3,
            revision: 2,
            compact_revision: 1,
            changes: vec![leased_key(lease_of_key)],
            leases,
            ..SnapshotRecord::default()
        };
        let restore = |record: SnapshotRecord| StateMachine::restore(&record.encode_to_vec(), 10);
        let good = restore(snapshot(vec![lease(3, None), lease(4, Some(5))], 3)).expect("restores");
        assert_eq!(
            good.lease(3).map(|info| info.keys),
            Some(vec!["k".to_string()])
        );
        for bad in [
            snapshot(Vec::new(), 3),
            snapshot(vec![lease(4, None)], 3),
            snapshot(vec![lease(4, None), lease(3, None)], 3),
            snapshot(vec![lease(3, None), lease(3, None)], 3),
            snapshot(vec![lease(0, None)], 0),
            snapshot(vec![lease(3, Some(0))], 3),
        ] {
            assert!(matches!(
                restore(bad),
                Err(SnapshotError::Malformed { what: "leases", .. })
            ));
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
            revision: 0,
        };
        let record = SnapshotRecord {
            version: SNAPSHOT_FORMAT_VERSION_TEXT_IDS,
            applied_index: 2,
            sessions: vec![session.clone(), session],
            ..SnapshotRecord::default()
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
                lease: 0,
            },
            request_id: None,
        }
        .encode()
    }

    /// A snapshot an older release wrote (version 1, no text ids, no revisions) restores with
    /// its sessions (a retry of the request it cached is answered from it, not applied again)
    /// and its keys at revision 1; written back in the current format, it restores to the same.
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
        assert_eq!((machine.revision(), machine.compact_revision()), (1, 1));
        let first = VersionedValue {
            value: Bytes::from_static(b"first"),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            lease: 0,
        };
        assert_eq!(machine.get_at("k", Some(1)), Ok(Some(first)));
        let written = machine.snapshot();
        let again = StateMachine::restore(&written, 10).expect("restores");
        assert_eq!(again.snapshot(), written, "the current format round-trips");
        let retry = machine.apply_entry(6, 3, &put_command(ClientId::number(7), 3, "k", b"again"));
        assert_eq!(
            retry,
            Applied {
                outcome: Outcome::Put,
                index: 4,
                term: 2,
                revision: 1,
                changes: None,
            },
            "answered from the session"
        );
        assert_eq!(machine.get("k"), Some(&Bytes::from_static(b"first")));
    }

    /// Text client ids go in a field of their own, which version 2 introduced and an older
    /// build refuses instead of reading every such session as client 0; the current format carries
    /// them too, and a retry after the restore gets the first answer and revision.
    #[test]
    fn a_snapshot_with_a_text_client_id_round_trips() {
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
        assert_eq!(
            (retry.index, retry.revision),
            (2, 3),
            "the text id's session survived"
        );
        assert_eq!(restored.get("b"), Some(&Bytes::from_static(b"2")));
    }

    /// A version 2 snapshot (text client ids, no revisions) still restores.
    #[test]
    fn a_version_2_snapshot_restores_at_revision_1() {
        let record = SnapshotRecord {
            version: SNAPSHOT_FORMAT_VERSION_TEXT_IDS,
            applied_index: 3,
            entries: vec![EntryRecord {
                key: "k".into(),
                value: Bytes::from_static(b"v"),
            }],
            sessions: vec![SessionRecord {
                client_id: 0,
                sequence: 1,
                last_active_index: 2,
                outcome: Some(OutcomeRecord::from(&Outcome::Put)),
                applied_index: 2,
                applied_term: 1,
                text_client_id: Bytes::from_static(b"worker-1"),
                revision: 0,
            }],
            ..SnapshotRecord::default()
        };
        let mut machine = StateMachine::restore(&record.encode_to_vec(), 10).expect("restores");
        machine.check_invariants();
        assert_eq!(machine.revision(), 1);
        let client_id = ClientId::parse(b"worker-1").expect("valid");
        let retry = machine.apply_entry(4, 1, &put_command(client_id, 1, "k", b"again"));
        assert_eq!((retry.index, retry.revision), (2, 1));
        assert_eq!(
            machine
                .get_at("k", None)
                .expect("readable")
                .map(|v| v.version),
            Some(1)
        );
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
            revision: 0,
        };
        for bad in [session(7, b"ab"), session(0, b"a b")] {
            let record = SnapshotRecord {
                version: SNAPSHOT_FORMAT_VERSION_TEXT_IDS,
                applied_index: 2,
                sessions: vec![bad],
                ..SnapshotRecord::default()
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
