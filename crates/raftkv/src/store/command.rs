//! The commands raftkv writes into the Raft log, and their on-log encoding.
//!
//! ```text
//!  HTTP request ──► Command { session, operation } ──encode──► log entry data (protobuf)
//!                                                                   │ replicated, committed
//!  StateMachine::apply ◄──decode── log entry data ◄─────────────────┘
//! ```
//!
//! The log outlives the build that wrote it: a node restarted on a newer release replays entries
//! an older one appended, and a follower may lag a release behind its leader during a rolling
//! upgrade. The format therefore follows protobuf's evolution rules:
//!
//! - field tags are never reused or renumbered; a newer release may add fields, which an older
//!   one skips;
//! - each operation is one case of a `oneof`, so a newer release adds an operation under a new
//!   tag; an older build decodes it to [`CommandError::UnknownOperation`] (never a panic), and
//!   the state machine rejects it the same way on every replica of that build;
//! - `format_version` (tag 15, absent today) is raised only for a change an older build must not
//!   misread; an older build then refuses the command with
//!   [`CommandError::UnsupportedVersion`] instead of applying it wrongly.
//!
//! NB: a replica that rejects an operation its peers apply diverges from them, so a release must
//! not propose a new operation (or a new `format_version`) until every node runs a build that
//! knows it. That gate belongs to the service, not to this encoding.
//!
//! ```text
//!  CommandRecord
//!    1  session         Session { 1 client_id: uint64, 2 sequence: uint64 }   optional
//!                       (a client id that is a number: see ClientId)
//!    oneof operation
//!      2  put           { 1 key: bytes (UTF-8), 2 value: bytes, 3 lease: uint64 (0: none) }
//!      3  delete        { 1 key: bytes (UTF-8) }
//!      4  append        { 1 key: bytes (UTF-8), 2 suffix: bytes }
//!      5  cas           { 1 key: bytes (UTF-8), 2 expect: optional bytes, 3 value: bytes }
//!      6  announce      { 1 node: uint64, 2 http_address: string,
//!                         3 grpc_address: optional string (absent: serves no gRPC API) }
//!      7  raft_address  { 1 node: uint64, 2 raft_address: string }
//!      8  compact       { 1 revision: uint64 }
//!      9  txn           { 1 compare: repeated CompareRecord,
//!                         2 success: repeated TxnOpRecord, 3 failure: repeated TxnOpRecord }
//!     10  lease_grant   { 1 id: uint64, 2 ttl_seconds: uint64 }
//!     11  lease_revoke  { 1 id: uint64, 2 expired: bool (proposed by the leader's expiry) }
//!     12  lease_checkpoint { 1 checkpoints: repeated { 1 id: uint64,
//!                                                      2 remaining_ms: uint64 (0: clear) } }
//!     13  hash_check    {}   (changes nothing: every replica hashes its state here)
//!    15 format_version  uint32, 0 (absent) for this format
//!    16 request_id      uint64, optional: the proposing node's id for its waiter
//!    17 text_session    TextSession { 1 client_id: bytes, 2 sequence: uint64 }  optional
//!                       (any other client id; never together with 1)
//!  CompareRecord  { 1 key: bytes (UTF-8), 2 op: uint32 (1 =, 2 !=, 3 <, 4 >; 0 refused),
//!                   oneof target { 3 value: bytes, 4 version: uint64,
//!                                  5 create_revision: uint64, 6 mod_revision: uint64,
//!                                  7 exists: bool, 8 lease: uint64 },
//!                   9 range_end: bytes (etcd's form: absent for the key alone),
//!                   10 range_end_before: bool (an end of "" or "\0" that is not etcd's form) }
//!  TxnOpRecord    oneof { 1 put { 1 key, 2 value, 3 lease }, 2 delete { 1 key },
//!                         3 delete_prefix { 1 prefix: bytes (UTF-8) }, 4 get { 1 key },
//!                         5 scan { 1 prefix: bytes (UTF-8), 2 limit: uint64 },
//!                         6 range { 1 key, 2 range_end, 3 revision, 4 limit,
//!                                   5 sort_order: uint32, 6 sort_target: uint32,
//!                                   7 keys_only, 8 count_only, 9 min_mod_revision,
//!                                   10 max_mod_revision, 11 min_create_revision,
//!                                   12 max_create_revision, 13 range_end_before },
//!                         7 delete_range { 1 key, 2 range_end, 3 prev_kv: bool,
//!                                          4 range_end_before },
//!                         8 put_keeping { 1 key, 2 value: optional bytes (absent: keep),
//!                                         3 lease: optional uint64 (absent: keep) },
//!                         9 txn TxnRecord (nested) }
//! ```
//!
//! A comparison without its target or operator, or an operation of a kind this build does
//! not know (a newer release's), makes the whole transaction
//! [`CommandError::UnknownTxnPart`]: applying part of a transaction would be wrong.
//!
//! A client id that is not a number came later than the rest (older releases refused it), so
//! it has a field of its own: an older build skips field 17 and sees a command without a
//! session, which it applies as any write sent without one. NB: that is at-least-once on
//! that build, so during a rolling upgrade a retried write with such an id may be applied
//! twice by the replicas not yet upgraded; clients should send such ids only once every node
//! runs a build that knows them. Numeric ids keep field 1, so their commands are byte for
//! byte what older releases wrote.
//!
//! Leases came later too: a put's `lease` (field 3, not encoded when 0, so a put without a
//! lease is byte for byte what older releases wrote) and the three lease operations. NB: an
//! older build skips field 3 and applies such a put without its lease, and rejects the lease
//! operations; like every new operation, they may be proposed only once every node knows them.
//!
//! etcd's semantics came later still: a comparison's range end (field 9) and the operations
//! 6 to 9. NB: an older build skips field 9 and compares the start key alone, so like every
//! new operation these may be proposed only once every node knows them; the older operations
//! decode exactly as before (`an_older_txn_encoding_still_decodes`).
//!
//! The hash check (13) came with consistency checks. It changes nothing, so an older build that
//! rejects it as an unknown operation stays in step with the others; it only has no hash to
//! compare at that index.
//!
//! Keys are carried as `bytes` rather than `string` (the two are the same on the wire) so that a
//! key that is not UTF-8 is reported as such instead of as a generic decoding failure.

use bytes::Bytes;
use prost::Message as _;
use thiserror::Error;

use super::lease::LeaseCheckpoint;
use super::range::{KeyRange, RangeEnd};
use super::range_query::{RangeQuery, SortOrder, SortTarget};
use super::sessions::{ClientId, ClientIdError, ClientIdForm};
use super::txn::{Compare, CompareOp, CompareTarget, Txn, TxnOp};

/// The highest `format_version` this build reads and the one it writes.
pub const COMMAND_FORMAT_VERSION: u32 = 0;

/// Identifies one request of a client's session, for exactly-once writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The client, chosen by the client (at random or unique by construction, so that clients
    /// do not collide).
    pub client_id: ClientId,
    /// The request's number within the client's session. A client numbers its requests in
    /// increasing order and retries a request under the same number.
    pub sequence: u64,
}

/// What a command does to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Sets `key` to `value`, attached to `lease` (0: detached from any lease, as in etcd).
    /// Refused, changing nothing, when `lease` names a lease that does not exist.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Bytes,
        /// The lease to attach the key to; 0 for none.
        lease: u64,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Appends `suffix` to the value of `key`, creating the key if it is absent.
    Append {
        /// The key.
        key: String,
        /// The bytes to append.
        suffix: Bytes,
    },
    /// Sets `key` to `value` if its current value is `expect`.
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold; `None` means the key must be absent.
        expect: Option<Bytes>,
        /// The new value.
        value: Bytes,
    },
    /// A node records the HTTP address clients can reach it at (so other nodes can forward to it),
    /// and its etcd gRPC address if it serves that API.
    Announce {
        /// The announcing node's id.
        node: u64,
        /// Its HTTP address, e.g. `127.0.0.1:8080`.
        http_address: String,
        /// Its etcd v3 gRPC address (`--grpc-addr`), e.g. `127.0.0.1:2379`; `None` when it
        /// serves no gRPC API (then any address recorded before is forgotten). Entries written
        /// before the field existed decode to `None`; an older build skips the field.
        grpc_address: Option<String>,
    },
    /// Records where the other nodes reach `node`'s Raft transport, before it is added to the
    /// cluster, so every node (and any later leader) can dial it.
    RaftAddress {
        /// The node.
        node: u64,
        /// Its Raft address, e.g. `10.0.0.4:9001`.
        raft_address: String,
    },
    /// Forgets the history before `revision`: reads and watches at earlier revisions fail
    /// afterwards ([`super::history`]). Refused when `revision` is after the store's current
    /// one; a no-op at or below the compaction revision in force.
    Compact {
        /// The oldest revision still readable afterwards.
        revision: u64,
    },
    /// Comparisons, then one of two branches of operations, at one revision
    /// ([`super::txn`]).
    Txn(Txn),
    /// Grants lease `id` ([`super::lease`]); changes no key, so the revision stays. Refused
    /// when the id is 0, above [`super::LEASE_ID_MAX`] or in use.
    LeaseGrant {
        /// The lease's id.
        id: u64,
        /// Its time to live, in seconds (bounds are checked where it is proposed).
        ttl_seconds: u64,
    },
    /// Revokes lease `id`: deletes every key attached to it, at one revision in key order, and
    /// removes the lease. Refused when it does not exist. No keys: the revision stays.
    LeaseRevoke {
        /// The lease.
        id: u64,
        /// Proposed by the leader's expiry rather than by a client (for logs and metrics; the
        /// effect is the same).
        expired: bool,
    },
    /// Records the remaining time of leases, as the leader computed it, for the next leader.
    /// Ids that no longer exist are skipped.
    LeaseCheckpoint {
        /// The leases' remaining times.
        checkpoints: Vec<LeaseCheckpoint>,
    },
    /// Changes nothing (the revision stays): marks the index at which every replica hashes
    /// its state, so that the hashes of the replicas, taken at the same applied index, can be
    /// compared (a consistency check).
    HashCheck,
}

/// One entry of the log as the key-value service sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The client request this command carries out, for exactly-once application; `None` for
    /// commands that may be applied more than once (or are idempotent).
    pub session: Option<Session>,
    /// What to do.
    pub operation: Operation,
    /// Set by the node that proposed the command, to recognise its own entry when it is
    /// applied (a waiter is registered under it before proposing). Replicas ignore it.
    pub request_id: Option<u64>,
}

/// Why log entry data is not a command this build can apply.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CommandError {
    /// The bytes are not a well-formed protobuf command.
    #[error("undecodable command: {0}")]
    Undecodable(String),
    /// The command names no operation this build knows: it has none, or one a newer release
    /// added.
    #[error("unknown operation (absent, or added by a newer release)")]
    UnknownOperation,
    /// The command was written in a format newer than this build reads.
    #[error("command format version {version} is newer than the supported {supported}")]
    UnsupportedVersion {
        /// The command's format version.
        version: u32,
        /// The highest version this build reads.
        supported: u32,
    },
    /// A key is not valid UTF-8.
    #[error("key is not valid UTF-8")]
    KeyNotUtf8,
    /// The session's client id is not a valid one.
    #[error("invalid session: {0}")]
    ClientId(#[from] ClientIdError),
    /// The command carries a numeric and a text session at once.
    #[error("the command carries two sessions")]
    TwoSessions,
    /// A part of a transaction is missing or of a kind this build does not know.
    #[error("transaction {what} is missing or of a kind this build does not know")]
    UnknownTxnPart {
        /// Which part: a comparison's target or operator, or an operation.
        what: &'static str,
    },
}

impl Command {
    /// The command's on-log bytes.
    pub fn encode(&self) -> Bytes {
        let record = CommandRecord::from(self);
        let bytes = Bytes::from(record.encode_to_vec());
        // Every command names an operation, so it always encodes to something.
        assert!(!bytes.is_empty(), "invariant command-encoding-nonempty");
        bytes
    }

    /// The on-log bytes of this command proposed as request `request_id` (in place of
    /// [`Command::request_id`]), without a copy of the command.
    pub fn encode_for_request(&self, request_id: u64) -> Bytes {
        let mut record = CommandRecord::from(self);
        record.request_id = Some(request_id);
        Bytes::from(record.encode_to_vec())
    }

    /// Reads a command from its on-log bytes. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        let record = CommandRecord::decode(bytes)
            .map_err(|error| CommandError::Undecodable(error.to_string()))?;
        Command::try_from(record)
    }
}

/// The protobuf form of a [`Command`]; tags are listed in the module documentation.
#[derive(Clone, PartialEq, prost::Message)]
struct CommandRecord {
    /// The client request, if any.
    #[prost(message, optional, tag = "1")]
    session: Option<SessionRecord>,
    /// The operation; `None` when absent or of a kind this build does not know.
    #[prost(
        oneof = "OperationRecord",
        tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13"
    )]
    operation: Option<OperationRecord>,
    /// [`COMMAND_FORMAT_VERSION`] of the writer; 0 is not encoded, so today it costs nothing.
    #[prost(uint32, tag = "15")]
    format_version: u32,
    /// [`Command::request_id`].
    #[prost(uint64, optional, tag = "16")]
    request_id: Option<u64>,
    /// The session when its client id is not a number.
    #[prost(message, optional, tag = "17")]
    text_session: Option<TextSessionRecord>,
}

/// The protobuf form of a [`Session`] whose client id is a number.
#[derive(Clone, Copy, PartialEq, prost::Message)]
struct SessionRecord {
    #[prost(uint64, tag = "1")]
    client_id: u64,
    #[prost(uint64, tag = "2")]
    sequence: u64,
}

/// The protobuf form of a [`Session`] whose client id is text.
#[derive(Clone, PartialEq, prost::Message)]
struct TextSessionRecord {
    #[prost(bytes = "bytes", tag = "1")]
    client_id: Bytes,
    #[prost(uint64, tag = "2")]
    sequence: u64,
}

/// The protobuf form of an [`Operation`], one case per variant.
#[derive(Clone, PartialEq, prost::Oneof)]
enum OperationRecord {
    #[prost(message, tag = "2")]
    Put(PutRecord),
    #[prost(message, tag = "3")]
    Delete(DeleteRecord),
    #[prost(message, tag = "4")]
    Append(AppendRecord),
    #[prost(message, tag = "5")]
    Cas(CasRecord),
    #[prost(message, tag = "6")]
    Announce(AnnounceRecord),
    #[prost(message, tag = "7")]
    RaftAddress(RaftAddressRecord),
    #[prost(message, tag = "8")]
    Compact(CompactRecord),
    #[prost(message, tag = "9")]
    Txn(TxnRecord),
    #[prost(message, tag = "10")]
    LeaseGrant(LeaseGrantRecord),
    #[prost(message, tag = "11")]
    LeaseRevoke(LeaseRevokeRecord),
    #[prost(message, tag = "12")]
    LeaseCheckpoint(LeaseCheckpointsRecord),
    #[prost(message, tag = "13")]
    HashCheck(HashCheckRecord),
}

/// A hash check carries nothing: its index is all it says.
#[derive(Clone, Copy, PartialEq, prost::Message)]
struct HashCheckRecord {}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct LeaseGrantRecord {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    ttl_seconds: u64,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct LeaseRevokeRecord {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(bool, tag = "2")]
    expired: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LeaseCheckpointsRecord {
    #[prost(message, repeated, tag = "1")]
    checkpoints: Vec<LeaseCheckpointRecord>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct LeaseCheckpointRecord {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    remaining_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TxnRecord {
    #[prost(message, repeated, tag = "1")]
    compare: Vec<CompareRecord>,
    #[prost(message, repeated, tag = "2")]
    success: Vec<TxnOpRecord>,
    #[prost(message, repeated, tag = "3")]
    failure: Vec<TxnOpRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CompareRecord {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    #[prost(uint32, tag = "2")]
    op: u32,
    #[prost(oneof = "CompareTargetRecord", tags = "3, 4, 5, 6, 7, 8")]
    target: Option<CompareTargetRecord>,
    /// The range's end in etcd's form (see [`range_end_record`]); absent for one key, which
    /// is what older releases wrote.
    #[prost(bytes = "bytes", tag = "9")]
    range_end: Bytes,
    /// `range_end` is a [`RangeEnd::Before`] even though etcd's form would read it otherwise.
    #[prost(bool, tag = "10")]
    range_end_before: bool,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum CompareTargetRecord {
    #[prost(bytes = "bytes", tag = "3")]
    Value(Bytes),
    #[prost(uint64, tag = "4")]
    Version(u64),
    #[prost(uint64, tag = "5")]
    CreateRevision(u64),
    #[prost(uint64, tag = "6")]
    ModRevision(u64),
    #[prost(bool, tag = "7")]
    Exists(bool),
    #[prost(uint64, tag = "8")]
    Lease(u64),
}

#[derive(Clone, PartialEq, prost::Message)]
struct TxnOpRecord {
    #[prost(oneof = "TxnOpKind", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9")]
    op: Option<TxnOpKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum TxnOpKind {
    #[prost(message, tag = "1")]
    Put(PutRecord),
    #[prost(message, tag = "2")]
    Delete(DeleteRecord),
    /// The prefix in the key field.
    #[prost(message, tag = "3")]
    DeletePrefix(DeleteRecord),
    #[prost(message, tag = "4")]
    Get(DeleteRecord),
    #[prost(message, tag = "5")]
    Scan(ScanRecord),
    #[prost(message, tag = "6")]
    Range(RangeRecord),
    #[prost(message, tag = "7")]
    DeleteRange(DeleteRangeRecord),
    #[prost(message, tag = "8")]
    PutKeeping(PutKeepingRecord),
    #[prost(message, tag = "9")]
    Txn(TxnRecord),
}

#[derive(Clone, PartialEq, prost::Message)]
struct RangeRecord {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    range_end: Bytes,
    #[prost(uint64, tag = "3")]
    revision: u64,
    #[prost(uint64, tag = "4")]
    limit: u64,
    /// 0 none, 1 ascending, 2 descending (etcd's numbers).
    #[prost(uint32, tag = "5")]
    sort_order: u32,
    /// 0 key, 1 version, 2 create, 3 mod, 4 value (etcd's numbers).
    #[prost(uint32, tag = "6")]
    sort_target: u32,
    #[prost(bool, tag = "7")]
    keys_only: bool,
    #[prost(bool, tag = "8")]
    count_only: bool,
    #[prost(uint64, tag = "9")]
    min_mod_revision: u64,
    #[prost(uint64, tag = "10")]
    max_mod_revision: u64,
    #[prost(uint64, tag = "11")]
    min_create_revision: u64,
    #[prost(uint64, tag = "12")]
    max_create_revision: u64,
    #[prost(bool, tag = "13")]
    range_end_before: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DeleteRangeRecord {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    range_end: Bytes,
    #[prost(bool, tag = "3")]
    prev_kv: bool,
    #[prost(bool, tag = "4")]
    range_end_before: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PutKeepingRecord {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    /// Absent: keep the current value.
    #[prost(bytes = "bytes", optional, tag = "2")]
    value: Option<Bytes>,
    /// Absent: keep the current lease.
    #[prost(uint64, optional, tag = "3")]
    lease: Option<u64>,
}

/// etcd's form of a range's end: empty for the start key alone, `"\0"` for every key from the
/// start on, else the end itself; and whether it is a [`RangeEnd::Before`] of one of the first
/// two (an end etcd's form cannot say: `Before("")` selects nothing, `Before("\0")` only the
/// empty key), so that every range decodes to itself.
fn range_end_record(end: &RangeEnd) -> (Bytes, bool) {
    match end {
        RangeEnd::Single => (Bytes::new(), false),
        RangeEnd::Unbounded => (Bytes::from_static(b"\0"), false),
        RangeEnd::Before(end) => (end.clone(), matches!(&end[..], [] | [0])),
    }
}

fn range_from_record(key: Bytes, range_end: Bytes, before: bool) -> Result<KeyRange, CommandError> {
    let mut range = KeyRange::from_etcd(&key, &range_end).map_err(|_| CommandError::KeyNotUtf8)?;
    if before {
        range.end = RangeEnd::Before(range_end);
    }
    Ok(range)
}

const SORT_ORDERS: [(u32, SortOrder); 3] = [
    (0, SortOrder::None),
    (1, SortOrder::Ascend),
    (2, SortOrder::Descend),
];

const SORT_TARGETS: [(u32, SortTarget); 5] = [
    (0, SortTarget::Key),
    (1, SortTarget::Version),
    (2, SortTarget::Create),
    (3, SortTarget::Mod),
    (4, SortTarget::Value),
];

fn code_of<T: PartialEq + Copy>(table: &[(u32, T)], value: T) -> u32 {
    table
        .iter()
        .find(|(_, known)| *known == value)
        .map(|(code, _)| *code)
        .expect("every value has a code")
}

fn value_of<T: Copy>(table: &[(u32, T)], code: u32, what: &'static str) -> Result<T, CommandError> {
    table
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(_, value)| *value)
        .ok_or(CommandError::UnknownTxnPart { what })
}

impl From<&RangeQuery> for RangeRecord {
    fn from(query: &RangeQuery) -> RangeRecord {
        RangeRecord {
            key: key_record(&query.range.start),
            range_end: range_end_record(&query.range.end).0,
            range_end_before: range_end_record(&query.range.end).1,
            revision: query.revision,
            limit: query.limit,
            sort_order: code_of(&SORT_ORDERS, query.sort_order),
            sort_target: code_of(&SORT_TARGETS, query.sort_target),
            keys_only: query.keys_only,
            count_only: query.count_only,
            min_mod_revision: query.min_mod_revision,
            max_mod_revision: query.max_mod_revision,
            min_create_revision: query.min_create_revision,
            max_create_revision: query.max_create_revision,
        }
    }
}

impl TryFrom<RangeRecord> for RangeQuery {
    type Error = CommandError;

    fn try_from(record: RangeRecord) -> Result<RangeQuery, CommandError> {
        Ok(RangeQuery {
            range: range_from_record(record.key, record.range_end, record.range_end_before)?,
            revision: record.revision,
            limit: record.limit,
            sort_order: value_of(&SORT_ORDERS, record.sort_order, "range sort order")?,
            sort_target: value_of(&SORT_TARGETS, record.sort_target, "range sort target")?,
            keys_only: record.keys_only,
            count_only: record.count_only,
            min_mod_revision: record.min_mod_revision,
            max_mod_revision: record.max_mod_revision,
            min_create_revision: record.min_create_revision,
            max_create_revision: record.max_create_revision,
        })
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScanRecord {
    #[prost(bytes = "bytes", tag = "1")]
    prefix: Bytes,
    #[prost(uint64, tag = "2")]
    limit: u64,
}

const COMPARE_OPS: [(u32, CompareOp); 4] = [
    (1, CompareOp::Equal),
    (2, CompareOp::NotEqual),
    (3, CompareOp::Less),
    (4, CompareOp::Greater),
];

impl From<&Compare> for CompareRecord {
    fn from(compare: &Compare) -> CompareRecord {
        let op = COMPARE_OPS
            .iter()
            .find(|(_, op)| *op == compare.op)
            .map(|(code, _)| *code)
            .expect("every operator has a code");
        let target = match &compare.target {
            CompareTarget::Value(value) => CompareTargetRecord::Value(value.clone()),
            CompareTarget::Version(version) => CompareTargetRecord::Version(*version),
            CompareTarget::CreateRevision(revision) => {
                CompareTargetRecord::CreateRevision(*revision)
            }
            CompareTarget::ModRevision(revision) => CompareTargetRecord::ModRevision(*revision),
            CompareTarget::Exists(exists) => CompareTargetRecord::Exists(*exists),
            CompareTarget::Lease(lease) => CompareTargetRecord::Lease(*lease),
        };
        CompareRecord {
            key: key_record(&compare.key),
            op,
            target: Some(target),
            range_end: range_end_record(&compare.range_end).0,
            range_end_before: range_end_record(&compare.range_end).1,
        }
    }
}

impl TryFrom<CompareRecord> for Compare {
    type Error = CommandError;

    fn try_from(record: CompareRecord) -> Result<Compare, CommandError> {
        let op = COMPARE_OPS
            .iter()
            .find(|(code, _)| *code == record.op)
            .map(|(_, op)| *op)
            .ok_or(CommandError::UnknownTxnPart {
                what: "comparison operator",
            })?;
        let target = match record.target.ok_or(CommandError::UnknownTxnPart {
            what: "comparison target",
        })? {
            CompareTargetRecord::Value(value) => CompareTarget::Value(value),
            CompareTargetRecord::Version(version) => CompareTarget::Version(version),
            CompareTargetRecord::CreateRevision(revision) => {
                CompareTarget::CreateRevision(revision)
            }
            CompareTargetRecord::ModRevision(revision) => CompareTarget::ModRevision(revision),
            CompareTargetRecord::Exists(exists) => CompareTarget::Exists(exists),
            CompareTargetRecord::Lease(lease) => CompareTarget::Lease(lease),
        };
        let range = range_from_record(record.key, record.range_end, record.range_end_before)?;
        Ok(Compare {
            key: range.start,
            range_end: range.end,
            op,
            target,
        })
    }
}

impl From<&TxnOp> for TxnOpRecord {
    fn from(op: &TxnOp) -> TxnOpRecord {
        let key = |key: &str| DeleteRecord {
            key: key_record(key),
        };
        let kind = match op {
            TxnOp::Put { key, value, lease } => TxnOpKind::Put(PutRecord {
                key: key_record(key),
                value: value.clone(),
                lease: *lease,
            }),
            TxnOp::Delete { key: deleted } => TxnOpKind::Delete(key(deleted)),
            TxnOp::DeletePrefix { prefix } => TxnOpKind::DeletePrefix(key(prefix)),
            TxnOp::Get { key: read } => TxnOpKind::Get(key(read)),
            TxnOp::Scan { prefix, limit } => TxnOpKind::Scan(ScanRecord {
                prefix: key_record(prefix),
                limit: *limit as u64,
            }),
            TxnOp::Range(query) => TxnOpKind::Range(RangeRecord::from(query)),
            TxnOp::DeleteRange { range, prev_kv } => TxnOpKind::DeleteRange(DeleteRangeRecord {
                key: key_record(&range.start),
                range_end: range_end_record(&range.end).0,
                range_end_before: range_end_record(&range.end).1,
                prev_kv: *prev_kv,
            }),
            TxnOp::PutKeeping { key, value, lease } => TxnOpKind::PutKeeping(PutKeepingRecord {
                key: key_record(key),
                value: value.clone(),
                lease: *lease,
            }),
            TxnOp::Txn(txn) => TxnOpKind::Txn(TxnRecord::from(txn)),
        };
        TxnOpRecord { op: Some(kind) }
    }
}

impl TryFrom<TxnOpRecord> for TxnOp {
    type Error = CommandError;

    fn try_from(record: TxnOpRecord) -> Result<TxnOp, CommandError> {
        Ok(
            match record
                .op
                .ok_or(CommandError::UnknownTxnPart { what: "operation" })?
            {
                TxnOpKind::Put(put) => TxnOp::Put {
                    key: key_from_record(put.key)?,
                    value: put.value,
                    lease: put.lease,
                },
                TxnOpKind::Delete(delete) => TxnOp::Delete {
                    key: key_from_record(delete.key)?,
                },
                TxnOpKind::DeletePrefix(delete) => TxnOp::DeletePrefix {
                    prefix: key_from_record(delete.key)?,
                },
                TxnOpKind::Get(get) => TxnOp::Get {
                    key: key_from_record(get.key)?,
                },
                TxnOpKind::Scan(scan) => TxnOp::Scan {
                    prefix: key_from_record(scan.prefix)?,
                    // A limit beyond the address space means "all"; the store caps it anyway.
                    limit: usize::try_from(scan.limit).unwrap_or(usize::MAX),
                },
                TxnOpKind::Range(range) => TxnOp::Range(RangeQuery::try_from(range)?),
                TxnOpKind::DeleteRange(delete) => TxnOp::DeleteRange {
                    range: range_from_record(
                        delete.key,
                        delete.range_end,
                        delete.range_end_before,
                    )?,
                    prev_kv: delete.prev_kv,
                },
                TxnOpKind::PutKeeping(put) => TxnOp::PutKeeping {
                    key: key_from_record(put.key)?,
                    value: put.value,
                    lease: put.lease,
                },
                TxnOpKind::Txn(txn) => TxnOp::Txn(Txn::try_from(txn)?),
            },
        )
    }
}

impl From<&Txn> for TxnRecord {
    fn from(txn: &Txn) -> TxnRecord {
        TxnRecord {
            compare: txn.compare.iter().map(CompareRecord::from).collect(),
            success: txn.success.iter().map(TxnOpRecord::from).collect(),
            failure: txn.failure.iter().map(TxnOpRecord::from).collect(),
        }
    }
}

impl TryFrom<TxnRecord> for Txn {
    type Error = CommandError;

    fn try_from(record: TxnRecord) -> Result<Txn, CommandError> {
        let ops = |records: Vec<TxnOpRecord>| {
            records
                .into_iter()
                .map(TxnOp::try_from)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Txn {
            compare: record
                .compare
                .into_iter()
                .map(Compare::try_from)
                .collect::<Result<_, _>>()?,
            success: ops(record.success)?,
            failure: ops(record.failure)?,
        })
    }
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct CompactRecord {
    #[prost(uint64, tag = "1")]
    revision: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PutRecord {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
    /// 0 (none) is not encoded: a put without a lease is what older releases wrote.
    #[prost(uint64, tag = "3")]
    lease: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DeleteRecord {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AppendRecord {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    suffix: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CasRecord {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    /// Explicit presence (proto3 `optional`), so that "must be absent" (not encoded) differs
    /// from "must be the empty value" (encoded with length 0).
    #[prost(bytes = "bytes", optional, tag = "2")]
    expect: Option<Bytes>,
    #[prost(bytes = "bytes", tag = "3")]
    value: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RaftAddressRecord {
    #[prost(uint64, tag = "1")]
    node: u64,
    #[prost(string, tag = "2")]
    raft_address: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AnnounceRecord {
    #[prost(uint64, tag = "1")]
    node: u64,
    #[prost(string, tag = "2")]
    http_address: String,
    /// Explicit presence, so "serves no gRPC API" is not encoded at all: an announcement
    /// without it is byte for byte what older releases wrote.
    #[prost(string, optional, tag = "3")]
    grpc_address: Option<String>,
}

fn key_record(key: &str) -> Bytes {
    Bytes::copy_from_slice(key.as_bytes())
}

fn key_from_record(key: Bytes) -> Result<String, CommandError> {
    String::from_utf8(key.to_vec()).map_err(|_| CommandError::KeyNotUtf8)
}

impl From<&Command> for CommandRecord {
    fn from(command: &Command) -> CommandRecord {
        let operation = match &command.operation {
            Operation::Put { key, value, lease } => OperationRecord::Put(PutRecord {
                key: key_record(key),
                value: value.clone(),
                lease: *lease,
            }),
            Operation::Delete { key } => OperationRecord::Delete(DeleteRecord {
                key: key_record(key),
            }),
            Operation::Append { key, suffix } => OperationRecord::Append(AppendRecord {
                key: key_record(key),
                suffix: suffix.clone(),
            }),
            Operation::Cas { key, expect, value } => OperationRecord::Cas(CasRecord {
                key: key_record(key),
                expect: expect.clone(),
                value: value.clone(),
            }),
            Operation::Announce {
                node,
                http_address,
                grpc_address,
            } => OperationRecord::Announce(AnnounceRecord {
                node: *node,
                http_address: http_address.clone(),
                grpc_address: grpc_address.clone(),
            }),
            Operation::RaftAddress { node, raft_address } => {
                OperationRecord::RaftAddress(RaftAddressRecord {
                    node: *node,
                    raft_address: raft_address.clone(),
                })
            }
            Operation::Compact { revision } => OperationRecord::Compact(CompactRecord {
                revision: *revision,
            }),
            Operation::Txn(txn) => OperationRecord::Txn(TxnRecord::from(txn)),
            Operation::LeaseGrant { id, ttl_seconds } => {
                OperationRecord::LeaseGrant(LeaseGrantRecord {
                    id: *id,
                    ttl_seconds: *ttl_seconds,
                })
            }
            Operation::LeaseRevoke { id, expired } => {
                OperationRecord::LeaseRevoke(LeaseRevokeRecord {
                    id: *id,
                    expired: *expired,
                })
            }
            Operation::LeaseCheckpoint { checkpoints } => {
                OperationRecord::LeaseCheckpoint(LeaseCheckpointsRecord {
                    checkpoints: checkpoints
                        .iter()
                        .map(|checkpoint| LeaseCheckpointRecord {
                            id: checkpoint.id,
                            remaining_ms: checkpoint.remaining_ms,
                        })
                        .collect(),
                })
            }
            Operation::HashCheck => OperationRecord::HashCheck(HashCheckRecord {}),
        };
        let (session, text_session) = match &command.session {
            None => (None, None),
            Some(session) => match &session.client_id.0 {
                ClientIdForm::Number(client_id) => (
                    Some(SessionRecord {
                        client_id: *client_id,
                        sequence: session.sequence,
                    }),
                    None,
                ),
                ClientIdForm::Text(text) => (
                    None,
                    Some(TextSessionRecord {
                        client_id: text.clone(),
                        sequence: session.sequence,
                    }),
                ),
            },
        };
        CommandRecord {
            session,
            operation: Some(operation),
            format_version: COMMAND_FORMAT_VERSION,
            request_id: command.request_id,
            text_session,
        }
    }
}

impl TryFrom<CommandRecord> for Command {
    type Error = CommandError;

    fn try_from(record: CommandRecord) -> Result<Command, CommandError> {
        // The version is checked first: in a newer format the other fields may mean something
        // else, so nothing else about the command can be trusted.
        if record.format_version > COMMAND_FORMAT_VERSION {
            return Err(CommandError::UnsupportedVersion {
                version: record.format_version,
                supported: COMMAND_FORMAT_VERSION,
            });
        }
        let operation = match record.operation.ok_or(CommandError::UnknownOperation)? {
            OperationRecord::Put(put) => Operation::Put {
                key: key_from_record(put.key)?,
                value: put.value,
                lease: put.lease,
            },
            OperationRecord::Delete(delete) => Operation::Delete {
                key: key_from_record(delete.key)?,
            },
            OperationRecord::Append(append) => Operation::Append {
                key: key_from_record(append.key)?,
                suffix: append.suffix,
            },
            OperationRecord::Cas(cas) => Operation::Cas {
                key: key_from_record(cas.key)?,
                expect: cas.expect,
                value: cas.value,
            },
            OperationRecord::Announce(announce) => Operation::Announce {
                node: announce.node,
                http_address: announce.http_address,
                grpc_address: announce.grpc_address,
            },
            OperationRecord::RaftAddress(record) => Operation::RaftAddress {
                node: record.node,
                raft_address: record.raft_address,
            },
            OperationRecord::Compact(record) => Operation::Compact {
                revision: record.revision,
            },
            OperationRecord::Txn(record) => Operation::Txn(Txn::try_from(record)?),
            OperationRecord::LeaseGrant(record) => Operation::LeaseGrant {
                id: record.id,
                ttl_seconds: record.ttl_seconds,
            },
            OperationRecord::LeaseRevoke(record) => Operation::LeaseRevoke {
                id: record.id,
                expired: record.expired,
            },
            OperationRecord::LeaseCheckpoint(record) => Operation::LeaseCheckpoint {
                checkpoints: record
                    .checkpoints
                    .into_iter()
                    .map(|checkpoint| LeaseCheckpoint {
                        id: checkpoint.id,
                        remaining_ms: checkpoint.remaining_ms,
                    })
                    .collect(),
            },
            OperationRecord::HashCheck(HashCheckRecord {}) => Operation::HashCheck,
        };
        let session = match (record.session, record.text_session) {
            (Some(_), Some(_)) => return Err(CommandError::TwoSessions),
            (Some(session), None) => Some(Session {
                client_id: ClientId::number(session.client_id),
                sequence: session.sequence,
            }),
            (None, Some(session)) => Some(Session {
                client_id: ClientId::parse(&session.client_id)?,
                sequence: session.sequence,
            }),
            (None, None) => None,
        };
        Ok(Command {
            session,
            operation,
            request_id: record.request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The on-log bytes of a simple command are pinned: a change here breaks every existing log.
    #[test]
    fn put_encoding_is_stable() {
        let command = Command {
            session: Some(Session {
                client_id: ClientId::number(7),
                sequence: 1,
            }),
            operation: Operation::Put {
                key: "k".into(),
                value: Bytes::from_static(b"v"),
                lease: 0,
            },
            request_id: None,
        };
        let expected: &[u8] = &[
            // 1 session { 1 client_id: 7, 2 sequence: 1 }
            0x0a, 0x04, 0x08, 0x07, 0x10, 0x01, // 2 put { 1 key: "k", 2 value: "v" }
            0x12, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v',
        ];
        assert_eq!(&command.encode()[..], expected);
        assert_eq!(Command::decode(expected), Ok(command));
    }

    /// An announcement without a gRPC address is byte for byte what releases before the field
    /// wrote, and those bytes decode to "serves no gRPC API"; one with it adds field 3.
    #[test]
    fn announce_encoding_keeps_older_entries_readable() {
        let announce = |grpc_address: Option<&str>| Command {
            session: None,
            operation: Operation::Announce {
                node: 2,
                http_address: "h".into(),
                grpc_address: grpc_address.map(str::to_string),
            },
            request_id: None,
        };
        // 6 announce { 1 node: 2, 2 http_address: "h" }
        let older: &[u8] = &[0x32, 0x05, 0x08, 0x02, 0x12, 0x01, b'h'];
        assert_eq!(&announce(None).encode()[..], older);
        assert_eq!(Command::decode(older), Ok(announce(None)));
        // ... 3 grpc_address: "g"
        let newer: &[u8] = &[0x32, 0x08, 0x08, 0x02, 0x12, 0x01, b'h', 0x1a, 0x01, b'g'];
        assert_eq!(&announce(Some("g")).encode()[..], newer);
        assert_eq!(Command::decode(newer), Ok(announce(Some("g"))));
    }

    fn put_as(client_id: ClientId, sequence: u64) -> Command {
        Command {
            session: Some(Session {
                client_id,
                sequence,
            }),
            operation: Operation::Put {
                key: "k".into(),
                value: Bytes::from_static(b"v"),
                lease: 0,
            },
            request_id: None,
        }
    }

    /// A text client id has a field of its own; its bytes are pinned like the numeric one's.
    #[test]
    fn a_text_session_is_encoded_in_its_own_field_and_round_trips() {
        let command = put_as(ClientId::parse(b"ab").expect("valid"), 1);
        let expected: &[u8] = &[
            // 2 put { 1 key: "k", 2 value: "v" }
            0x12, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v',
            // 17 text_session { 1 client_id: "ab", 2 sequence: 1 }
            0x8a, 0x01, 0x06, 0x0a, 0x02, b'a', b'b', 0x10, 0x01,
        ];
        assert_eq!(&command.encode()[..], expected);
        assert_eq!(Command::decode(expected), Ok(command));
        // A numeric id written as text (no writer does) is still that number's client.
        let as_text = CommandRecord {
            session: None,
            operation: Some(OperationRecord::Delete(DeleteRecord {
                key: Bytes::from_static(b"k"),
            })),
            format_version: 0,
            request_id: None,
            text_session: Some(TextSessionRecord {
                client_id: Bytes::from_static(b"7"),
                sequence: 3,
            }),
        };
        let decoded = Command::decode(&as_text.encode_to_vec()).expect("decodes");
        assert_eq!(
            decoded.session,
            Some(Session {
                client_id: ClientId::number(7),
                sequence: 3
            })
        );
    }

    #[test]
    fn a_command_with_two_sessions_or_a_bad_text_id_is_refused() {
        let mut record = CommandRecord::from(&put_as(ClientId::number(7), 1));
        record.text_session = Some(TextSessionRecord {
            client_id: Bytes::from_static(b"ab"),
            sequence: 1,
        });
        assert_eq!(
            Command::decode(&record.encode_to_vec()),
            Err(CommandError::TwoSessions)
        );
        record.session = None;
        record.text_session = Some(TextSessionRecord {
            client_id: Bytes::from_static(b"a b"),
            sequence: 1,
        });
        assert_eq!(
            Command::decode(&record.encode_to_vec()),
            Err(CommandError::ClientId(ClientIdError::NotVisibleAscii {
                position: 1
            }))
        );
    }

    /// What an older build (without field 17) makes of a command with a text id: a write
    /// without a session, as the module documentation says, never a session of client 0.
    #[test]
    fn an_older_build_reads_a_text_session_command_as_one_without_a_session() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct OlderCommandRecord {
            #[prost(message, optional, tag = "1")]
            session: Option<SessionRecord>,
            #[prost(oneof = "OperationRecord", tags = "2, 3, 4, 5, 6, 7")]
            operation: Option<OperationRecord>,
            #[prost(uint32, tag = "15")]
            format_version: u32,
            #[prost(uint64, optional, tag = "16")]
            request_id: Option<u64>,
        }
        let command = put_as(ClientId::parse(b"worker-1").expect("valid"), 4);
        let older = OlderCommandRecord::decode(&command.encode()[..]).expect("decodes");
        assert_eq!(older.session, None);
        assert!(matches!(older.operation, Some(OperationRecord::Put(_))));
        assert_eq!(older.format_version, 0);
    }

    #[test]
    fn cas_distinguishes_absent_from_empty_expectation() {
        let command = |expect| Command {
            session: None,
            operation: Operation::Cas {
                key: "k".into(),
                expect,
                value: Bytes::from_static(b"v"),
            },
            request_id: None,
        };
        let absent = command(None);
        let empty = command(Some(Bytes::new()));
        assert_ne!(absent.encode(), empty.encode());
        assert_eq!(Command::decode(&absent.encode()), Ok(absent));
        assert_eq!(Command::decode(&empty.encode()), Ok(empty));
    }

    /// A put's lease and the lease operations have pinned bytes too; each round-trips.
    #[test]
    fn lease_encodings_are_stable_and_round_trip() {
        let command = |operation| Command {
            session: None,
            operation,
            request_id: None,
        };
        let put = command(Operation::Put {
            key: "k".into(),
            value: Bytes::from_static(b"v"),
            lease: 5,
        });
        let expected: &[u8] = &[
            // 2 put { 1 key: "k", 2 value: "v", 3 lease: 5 }
            0x12, 0x08, 0x0a, 0x01, b'k', 0x12, 0x01, b'v', 0x18, 0x05,
        ];
        assert_eq!(&put.encode()[..], expected);
        let grant = command(Operation::LeaseGrant {
            id: 7,
            ttl_seconds: 60,
        });
        // 10 lease_grant { 1 id: 7, 2 ttl_seconds: 60 }
        assert_eq!(&grant.encode()[..], &[0x52, 0x04, 0x08, 0x07, 0x10, 0x3c]);
        let revoke = command(Operation::LeaseRevoke {
            id: 7,
            expired: true,
        });
        // 11 lease_revoke { 1 id: 7, 2 expired: true }
        assert_eq!(&revoke.encode()[..], &[0x5a, 0x04, 0x08, 0x07, 0x10, 0x01]);
        let checkpoint = command(Operation::LeaseCheckpoint {
            checkpoints: vec![
                LeaseCheckpoint {
                    id: 7,
                    remaining_ms: 1500,
                },
                LeaseCheckpoint {
                    id: 9,
                    remaining_ms: 0,
                },
            ],
        });
        let txn = command(Operation::Txn(Txn {
            compare: vec![Compare {
                key: "k".into(),
                range_end: RangeEnd::Single,
                op: CompareOp::Equal,
                target: CompareTarget::Lease(7),
            }],
            success: vec![TxnOp::Put {
                key: "k".into(),
                value: Bytes::new(),
                lease: 7,
            }],
            failure: Vec::new(),
        }));
        for command in [put, grant, revoke, checkpoint, txn] {
            assert_eq!(Command::decode(&command.encode()), Ok(command.clone()));
        }
    }

    /// A transaction as releases before etcd's operations wrote it (a comparison without a
    /// range end, a put, a get) still decodes to the same transaction, and is still written
    /// byte for byte the same.
    #[test]
    fn an_older_txn_encoding_still_decodes() {
        let older: &[u8] = &[
            // 9 txn {
            0x4a, 0x1a, //
            // 1 compare { 1 key: "k", 2 op: 1 (=), 4 version: 2 }
            0x0a, 0x07, 0x0a, 0x01, b'k', 0x10, 0x01, 0x20, 0x02,
            // 2 success { 1 put { 1 key: "k", 2 value: "v" } }
            0x12, 0x08, 0x0a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v',
            // 3 failure { 4 get { 1 key: "k" } } }
            0x1a, 0x05, 0x22, 0x03, 0x0a, 0x01, b'k',
        ];
        let expected = Command {
            session: None,
            operation: Operation::Txn(Txn {
                compare: vec![Compare::key(
                    "k",
                    CompareOp::Equal,
                    CompareTarget::Version(2),
                )],
                success: vec![TxnOp::Put {
                    key: "k".into(),
                    value: Bytes::from_static(b"v"),
                    lease: 0,
                }],
                failure: vec![TxnOp::Get { key: "k".into() }],
            }),
            request_id: None,
        };
        assert_eq!(Command::decode(older), Ok(expected.clone()));
        assert_eq!(&expected.encode()[..], older);
    }

    /// A command as a build that knew only puts, without leases, reads it.
    #[derive(Clone, PartialEq, prost::Message)]
    struct OlderCommandRecord {
        #[prost(oneof = "OlderOperation", tags = "2")]
        operation: Option<OlderOperation>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    enum OlderOperation {
        #[prost(message, tag = "2")]
        Put(OlderPut),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct OlderPut {
        #[prost(bytes = "bytes", tag = "1")]
        key: Bytes,
        #[prost(bytes = "bytes", tag = "2")]
        value: Bytes,
    }

    /// An older build (without the lease operations) decodes them as an unknown operation,
    /// never as something else; a put with a lease reads as the same put without it.
    #[test]
    fn an_older_build_rejects_lease_operations_and_skips_a_puts_lease() {
        let grant = Command {
            session: None,
            operation: Operation::LeaseGrant {
                id: 1,
                ttl_seconds: 5,
            },
            request_id: None,
        };
        let older = OlderCommandRecord::decode(&grant.encode()[..]).expect("decodes");
        assert_eq!(older.operation, None);
        let put = Command {
            session: None,
            operation: Operation::Put {
                key: "k".into(),
                value: Bytes::from_static(b"v"),
                lease: 3,
            },
            request_id: None,
        };
        let older = OlderCommandRecord::decode(&put.encode()[..]).expect("decodes");
        assert_eq!(
            older.operation,
            Some(OlderOperation::Put(OlderPut {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
            }))
        );
    }

    /// A hash check is field 13 with an empty record (its bytes fixed here), round-trips, and
    /// an older build (which knows operations up to 12) reads it as an unknown operation: it
    /// rejects it, changing nothing, like every replica of that build.
    #[test]
    fn a_hash_check_is_stable_round_trips_and_an_older_build_finds_it_unknown() {
        let check = Command {
            session: None,
            operation: Operation::HashCheck,
            request_id: Some(7),
        };
        let bytes = check.encode();
        assert_eq!(&bytes[..], &[0x6a, 0x00, 0x80, 0x01, 0x07]);
        assert_eq!(Command::decode(&bytes), Ok(check));
        let older = OlderCommandRecord::decode(&bytes[..]).expect("decodes");
        assert_eq!(older.operation, None, "unknown to an older build");
    }
}
