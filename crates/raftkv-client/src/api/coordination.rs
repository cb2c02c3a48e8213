//! Revisions, transactions, compaction and watch: the routes and bodies of the coordination API.
//!
//! ```text
//!  GET  /v1/kv/{key}?revision=N&format=json            → 200 KeyValueResponse (format=json),
//!                                                         or value bytes + revision headers
//!  GET  /v1/kv?prefix=P&limit=N&revision=N             → 200 ScanResponse (with its revision)
//!  POST /v1/txn      JSON TxnRequest                   → 200 TxnResponse
//!  POST /v1/compact  JSON CompactRequest               → 200 CompactResponse
//!  GET  /v1/watch?key=K | prefix=P & start_revision=N & progress_interval_ms=N
//!                    (or header Last-Event-ID: R, meaning start_revision R + 1)
//!                                                      → 200 text/event-stream of
//!       event: events    id: R   data: WatchEvents     every change of revision R, together
//!       event: progress          data: WatchProgress   the revision reached, while idle
//!       event: cancelled         data: WatchCancelled  the last message: why, where to resume
//!  errors, beside the API's usual ones:
//!    410 Gone  RevisionErrorResponse: the revision asked for is compacted
//!    400       RevisionErrorResponse: the revision asked for is in the future
//! ```
//!
//! The cluster's **revision** counts the changes the store has applied: every write that
//! changes at least one key (a put, a delete of a key that exists, an append, a swap that
//! happened, a transaction that changed something) raises it by exactly one, and all the keys
//! one write changes carry that same revision. An empty store is at revision 1, as in etcd.
//! Each key carries `create_revision` (the revision that created it since it last did not
//! exist), `mod_revision` (the revision of its latest change) and `version` (changes since its
//! creation, 1 after the first put); a key that does not exist has all three 0.

use serde::{Deserialize, Serialize};

/// Header on a plain `GET /v1/kv/{key}` answer (and on every write's answer): the store's
/// revision the answer reflects.
pub const REVISION_HEADER: &str = "raftkv-revision";
/// Header on a plain `GET /v1/kv/{key}` answer: the key's create revision.
pub const CREATE_REVISION_HEADER: &str = "raftkv-create-revision";
/// Header on a plain `GET /v1/kv/{key}` answer: the key's mod revision.
pub const MOD_REVISION_HEADER: &str = "raftkv-mod-revision";
/// Header on a plain `GET /v1/kv/{key}` answer: the key's version.
pub const VERSION_HEADER: &str = "raftkv-version";

/// A key with its value and revisions, as reads, transactions and watch events give it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedKeyValue {
    /// The key.
    pub key: String,
    /// The value, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value in standard base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// The revision that created the key (since it last did not exist).
    pub create_revision: u64,
    /// The revision of the key's latest change.
    pub mod_revision: u64,
    /// The number of changes since the key's creation (1 after the first put).
    pub version: u64,
    /// The lease the key is attached to (0, left out of the JSON: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lease: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Answer to `GET /v1/kv/{key}?format=json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValueResponse {
    /// The key with its value and revisions; `null` when it does not exist at that revision
    /// (the answer is then 404 with this body).
    pub kv: Option<VersionedKeyValue>,
    /// The store's revision the answer reflects: the one asked for with `?revision=`, else the
    /// current one.
    pub revision: u64,
}

/// How a comparison of a transaction compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// `=`
    #[serde(rename = "=")]
    Equal,
    /// `!=`
    #[serde(rename = "!=")]
    NotEqual,
    /// `<`
    #[serde(rename = "<")]
    Less,
    /// `>`
    #[serde(rename = ">")]
    Greater,
}

/// What a comparison looks at, and the operand: exactly one per comparison.
///
/// A key that does not exist has version, create revision and mod revision 0 and no value: to
/// require absence compare `"version": 0` with `=` (or use [`CompareTarget::Exists`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareTarget {
    /// The value, compared as bytes (UTF-8 here). A missing key fails every value comparison
    /// (as in etcd).
    Value(String),
    /// The value given in standard base64, for values that are not UTF-8.
    ValueBase64(String),
    /// The version.
    Version(u64),
    /// The create revision.
    CreateRevision(u64),
    /// The mod revision.
    ModRevision(u64),
    /// Whether the key exists (`=` and `!=` only).
    Exists(bool),
    /// The lease the key is attached to (0: none, or the key does not exist).
    Lease(u64),
}

/// One comparison of a transaction: `key`'s target `op` operand.
///
/// JSON: `{"key": "k", "op": "=", "version": 0}` (the target is a field beside `key` and `op`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key compared.
    pub key: String,
    /// The comparison.
    pub op: CompareOp,
    /// The target and its operand.
    #[serde(flatten)]
    pub target: CompareTarget,
}

/// One operation of a transaction's branch.
///
/// JSON: `{"put": {"key": "k", "value": "v"}}`, `{"delete": {"key": "k"}}`,
/// `{"delete_prefix": {"prefix": "p/"}}`, `{"get": {"key": "k"}}`,
/// `{"scan": {"prefix": "p/", "limit": 100}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOp {
    /// Sets a key.
    Put {
        /// The key.
        key: String,
        /// The value, when it is UTF-8.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        /// The value in standard base64 (exactly one of the two).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value_base64: Option<String>,
        /// The lease to attach the key to (absent: none; the put detaches the key from any
        /// lease it had). A lease that does not exist fails the whole transaction (404).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<u64>,
    },
    /// Removes a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Removes every key with a prefix (the empty prefix is refused: it would empty the store).
    DeletePrefix {
        /// The prefix.
        prefix: String,
    },
    /// Reads a key, seeing the transaction's earlier operations.
    Get {
        /// The key.
        key: String,
    },
    /// Reads the keys with a prefix in key order, seeing the transaction's earlier operations.
    Scan {
        /// The prefix.
        prefix: String,
        /// Most keys returned (at most 10,000; the default 1,000).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
}

/// Body of `POST /v1/txn`: if every comparison holds, `success` runs, else `failure`; all at
/// one revision, atomically. Sent with `client-id` and `request-seq` it is applied exactly
/// once like any write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    /// The comparisons, all of which must hold (none: the success branch runs).
    #[serde(default)]
    pub compare: Vec<Compare>,
    /// The operations when every comparison holds.
    #[serde(default)]
    pub success: Vec<TxnOp>,
    /// The operations otherwise.
    #[serde(default)]
    pub failure: Vec<TxnOp>,
}

/// What one operation of a transaction did, in the order of the branch that ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnOpResult {
    /// A put: the key's state before it (`null`: it did not exist).
    Put {
        /// The key's previous state.
        prev: Option<VersionedKeyValue>,
    },
    /// A delete or a delete by prefix: how many keys it removed.
    Delete {
        /// Keys removed.
        deleted: u64,
    },
    /// A get: the key (`null`: it does not exist).
    Get {
        /// The key.
        kv: Option<VersionedKeyValue>,
    },
    /// A scan: the keys.
    Scan {
        /// The keys, in key order.
        items: Vec<VersionedKeyValue>,
        /// More keys with the prefix follow the last one returned.
        truncated: bool,
    },
}

/// Answer to `POST /v1/txn`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    /// Whether every comparison held (the success branch ran).
    pub succeeded: bool,
    /// Each operation's result, in order.
    pub results: Vec<TxnOpResult>,
    /// The store's revision after the transaction: the transaction's own revision if it
    /// changed something, else the revision it read at.
    pub revision: u64,
    /// Log index of the transaction.
    pub index: u64,
    /// Term it was committed in.
    pub term: u64,
}

/// Body of `POST /v1/compact`: forget the history before `revision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactRequest {
    /// The oldest revision still readable afterwards (at most the current revision).
    pub revision: u64,
}

/// Answer to `POST /v1/compact`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactResponse {
    /// The oldest revision still readable: the one asked for, or a later one if the history was
    /// already compacted further.
    pub compact_revision: u64,
    /// The store's current revision.
    pub revision: u64,
    /// Log index of the compaction.
    pub index: u64,
    /// Term it was committed in.
    pub term: u64,
}

/// Error body (410, 400) of a read, transaction or watch at a revision the store cannot serve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionErrorResponse {
    /// What went wrong, for a person.
    pub error: String,
    /// The oldest revision still readable.
    pub compact_revision: u64,
    /// The store's current revision.
    pub revision: u64,
}

/// What happened to a key in a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The key was set (created or changed).
    Put,
    /// The key was removed.
    Delete,
}

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// Put or delete.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The key after the change: for a delete, the value is empty, `mod_revision` the delete's
    /// revision, and `create_revision` and `version` 0.
    pub kv: VersionedKeyValue,
}

/// `event: events` of a watch stream (SSE `id:` is the revision): every change the watch
/// selects of one revision, so a transaction's events arrive together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvents {
    /// The revision of every event here.
    pub revision: u64,
    /// The changes, in the order the write made them.
    pub events: Vec<WatchEvent>,
}

/// `event: progress` of a watch stream: every change up to `revision` that the watch selects
/// has been sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchProgress {
    /// The revision the watch has reached.
    pub revision: u64,
}

/// Why a watch ended (`event: cancelled`, its last message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The start revision is compacted.
    Compacted,
    /// The watcher fell too far behind the changes (it read too slowly); resume at
    /// `resume_revision`.
    Lagged,
    /// The node is stopping; resume elsewhere at `resume_revision`.
    Stopping,
}

/// `event: cancelled` of a watch stream: the watch ended; a new watch with
/// `start_revision = resume_revision` continues without a gap (unless compacted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchCancelled {
    /// Why.
    pub reason: CancelReason,
    /// What went wrong, for a person.
    pub error: String,
    /// Where to resume: the revision after the last one sent.
    pub resume_revision: u64,
    /// The oldest revision still readable.
    pub compact_revision: u64,
}
