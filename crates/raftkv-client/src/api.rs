//! The HTTP API's routes, headers and JSON bodies, shared by the server and the client so the
//! two cannot drift apart.
//!
//! ```text
//!  PUT    /v1/kv/{key}          body = value bytes        → 200 WriteResponse
//!  GET    /v1/kv/{key}?consistency=linearizable|lease|stale → 200 value bytes, 404
//!  DELETE /v1/kv/{key}                                    → 200 DeleteResponse
//!  POST   /v1/kv/{key}/append   body = suffix bytes       → 200 AppendResponse
//!  POST   /v1/kv/{key}/cas      JSON CasRequest           → 200 CasResponse, 409 CasResponse
//!  GET    /v1/kv?prefix=P&limit=N                         → 200 ScanResponse
//!  GET    /v1/status                                      → 200 StatusResponse
//!  GET    /v1/members                                     → 200 MembersResponse
//!  POST   /v1/members           JSON AddMemberRequest     → 200 MembershipChangeResponse (a learner)
//!  POST   /v1/members/{id}/promote                        → 200 MembershipChangeResponse
//!  DELETE /v1/members/{id}                                → 200 MembershipChangeResponse
//!  POST   /v1/leader/transfer   JSON TransferRequest      → 204
//!  GET    /metrics                                        → Prometheus text
//!  revisions, transactions, compaction, watch: see [`coordination`]
//!  GET, PUT /v1/log-level: a node's log filter, see [`log_level`]
//!  consistency checks (state hashes): see [`consistency`]
//!  errors: JSON ErrorResponse with
//!    400 the request can never succeed as sent (bad key, header, body, node id 0)
//!    404 no such key (GET) or route
//!    409 conflicts with the cluster's state (request-seq reused or stale; a membership
//!        change refused for good: already a member, not a member, the last voter; a
//!        transfer to a node that is not a voter)
//!    413 too large
//!    503 + Retry-After: transient, retry (no leader, a leadership transfer, busy, a read not
//!        confirmed, a write not committed or of unknown outcome, a membership change in
//!        progress or a learner not caught up yet, a node stopping)
//!    500 a refusal the server does not expect
//! ```
//!
//! Keys are UTF-8 strings, percent-encoded in the path. Values are bytes; where JSON must carry
//! one (scans, compare-and-swap), it is a string, and a scanned value that is not UTF-8 is
//! given as base64 instead.

use serde::{Deserialize, Serialize};

pub mod consistency;
pub mod coordination;
pub mod lease;
pub mod log_level;
pub use consistency::*;
pub use coordination::*;
pub use lease::*;
pub use log_level::*;

/// Header naming the client's session, for exactly-once writes: any opaque id of 1 to
/// [`CLIENT_ID_BYTES_MAX`] visible ASCII characters (`!` to `~`: letters, digits and
/// punctuation, no spaces), such as a UUID or a name. Ids are compared byte for byte, so `7`
/// and `007` are two clients.
pub const CLIENT_ID_HEADER: &str = "client-id";
/// Longest `client-id`, in bytes.
pub const CLIENT_ID_BYTES_MAX: usize = 128;
/// Header carrying the request's sequence number within its client's session: an unsigned
/// integer, at least 1, that grows with every new request of the client and stays the same
/// on a retry.
pub const REQUEST_SEQ_HEADER: &str = "request-seq";
/// Header a node sets on a request it forwards to the leader, naming itself, so a request is
/// forwarded at most once.
pub const FORWARDED_HEADER: &str = "raftkv-forwarded";
/// Header on an answer a node got by forwarding the request: the HTTP address of the leader that
/// served it. Clients send their next requests there directly, saving the extra hop.
pub const LEADER_HEADER: &str = "raftkv-leader";

/// Longest key, in bytes (the default; servers may be configured otherwise).
pub const KEY_BYTES_MAX: usize = 4 * 1024;
/// Largest value, in bytes (the default; servers may be configured otherwise).
pub const VALUE_BYTES_MAX: usize = 1024 * 1024;

/// Read consistency of a `GET`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Confirmed with a quorum (ReadIndex) before it is served: sees every write acknowledged
    /// before the read began.
    #[default]
    Linearizable,
    /// Served by the leader while its lease holds (no round trip); linearizable unless clocks
    /// drift by more than the configured margin.
    Lease,
    /// The local state of whichever node answers; may be behind.
    Stale,
}

impl Consistency {
    /// The query-string value.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Lease => "lease",
            Consistency::Stale => "stale",
        }
    }
}

/// Answer to a `PUT`: where the write sits in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResponse {
    /// Log index of the write.
    pub index: u64,
    /// Term it was committed in.
    pub term: u64,
    /// The store's revision after the write (the write's own when it changed a key); 0 from
    /// nodes of versions before revisions.
    #[serde(default)]
    pub revision: u64,
}

/// Answer to a `DELETE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResponse {
    /// Whether the key existed.
    pub deleted: bool,
    /// Log index of the delete.
    pub index: u64,
    /// Term it was committed in.
    pub term: u64,
    /// The store's revision after the write (the write's own when it changed a key); 0 from
    /// nodes of versions before revisions.
    #[serde(default)]
    pub revision: u64,
}

/// Answer to an append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    /// Length of the value after the append, in bytes.
    pub length: u64,
    /// Log index of the append.
    pub index: u64,
    /// Term it was committed in.
    pub term: u64,
    /// The store's revision after the write (the write's own when it changed a key); 0 from
    /// nodes of versions before revisions.
    #[serde(default)]
    pub revision: u64,
}

/// Body of a compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasRequest {
    /// The value the key must hold for the swap to happen; `null` means the key must be absent.
    pub expect: Option<String>,
    /// The value to store.
    pub value: String,
}

/// Answer to a compare-and-swap: 200 when it swapped, 409 when it did not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasResponse {
    /// Whether the value was swapped.
    pub ok: bool,
    /// On a failed swap, the value found: `null` when the key is absent. Always `null` on a
    /// swap that happened.
    pub current: Option<String>,
    /// Log index of the operation.
    pub index: u64,
    /// Term it was committed in.
    pub term: u64,
    /// The store's revision after the write (the write's own when it changed a key); 0 from
    /// nodes of versions before revisions.
    #[serde(default)]
    pub revision: u64,
}

/// One key and its value in a scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value in standard base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// The revision that created the key; 0 from nodes of versions before revisions.
    #[serde(default)]
    pub create_revision: u64,
    /// The revision of the key's latest change.
    #[serde(default)]
    pub mod_revision: u64,
    /// The key's changes since its creation.
    #[serde(default)]
    pub version: u64,
}

/// Answer to a scan: keys in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResponse {
    /// The keys with the prefix, in key order, at most `limit`.
    pub items: Vec<KeyValue>,
    /// More keys with the prefix follow the last one returned.
    pub truncated: bool,
    /// The store's revision the scan read at (`?revision=`, else the current one).
    #[serde(default)]
    pub revision: u64,
}

/// A follower's replication progress, as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerStatus {
    /// The follower.
    pub id: u64,
    /// Highest index known replicated on it.
    pub match_index: u64,
    /// Next index the leader sends it.
    pub next_index: u64,
    /// `probe`, `replicate` or `snapshot`.
    pub state: String,
}

/// A node's recovery after a restart that may have lost durable writes (an unclean stop):
/// until it ends, the node neither campaigns nor votes unless that is safe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryStatus {
    /// `probing` (asking the other voters for their terms and logs; the node answers no
    /// replication meanwhile) or `catching-up` (replicating from the leader; it votes only
    /// once every other voter has answered).
    pub phase: String,
    /// Voters that answered its probe.
    pub answered: Vec<u64>,
    /// Voters it still waits for.
    pub awaiting: Vec<u64>,
    /// The highest term among the answers: it votes only for a candidate of a higher term.
    pub term_floor: u64,
    /// Index of the most up-to-date log among the answers: a candidate it votes for must
    /// hold a log at least as up-to-date as that.
    pub log_floor_index: u64,
    /// Term of that log's last entry.
    pub log_floor_term: u64,
}

/// Answer to `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// This node.
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `precandidate`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader this node knows of.
    pub leader: Option<u64>,
    /// That leader's HTTP address, once known.
    pub leader_http: Option<String>,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Highest index applied to the key-value state.
    pub applied_index: u64,
    /// Last index in this node's log.
    pub last_log_index: u64,
    /// Last index covered by this node's snapshot.
    pub snapshot_index: u64,
    /// Voting members.
    pub members: Vec<u64>,
    /// On the leader, each follower's progress; empty elsewhere.
    pub followers: Vec<FollowerStatus>,
    /// Keys held.
    pub keys: u64,
    /// This node's HTTP address.
    pub http_address: String,
    /// While the node recovers after an unclean restart, how far it is; absent otherwise
    /// (and from nodes of versions before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryStatus>,
    /// The requests this node served and its log's fsyncs, since it started: given only when
    /// asked for (`GET /v1/status?load=true`, what the dashboard's feed gathers), absent
    /// otherwise and from nodes of versions before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<NodeLoad>,
}

/// What a node served and how fast, since it started, for a dashboard to turn into rates and
/// percentiles by taking the difference of two readings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Time to answer each read of keys (a get or a scan) a client sent to this node.
    pub read_latency: LatencyBuckets,
    /// Time to answer each write of keys (put, delete, append, compare-and-swap, transaction)
    /// a client sent to this node.
    pub write_latency: LatencyBuckets,
    /// Time of each fdatasync of this node's write-ahead log.
    pub wal_fsync: LatencyBuckets,
}

/// A latency histogram in Prometheus' shape: cumulative counts under fixed bounds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyBuckets {
    /// Upper bound of each finite bucket, in microseconds, increasing.
    pub bounds_micros: Vec<u64>,
    /// Observations at or below each bound (cumulative, so non-decreasing); one per bound.
    pub cumulative_counts: Vec<u64>,
    /// Observations in all, those above the last bound included.
    pub count: u64,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong, for a person.
    pub error: String,
    /// The leader, when the error is about leadership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u64>,
    /// The leader's HTTP address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_http: Option<String>,
}

/// One member of the cluster, in `GET /v1/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's id.
    pub id: u64,
    /// `voter`, `learner` (receives the log, does not vote), or `outgoing` (a voter being
    /// removed while a change is in progress).
    pub role: String,
    /// Where its peers reach its Raft transport.
    pub raft_address: Option<String>,
    /// Its HTTP API, once it published it.
    pub http_address: Option<String>,
    /// On the leader: the highest log index known replicated on it.
    pub match_index: Option<u64>,
}

/// Answer to `GET /v1/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersResponse {
    /// Every member, in id order.
    pub members: Vec<Member>,
    /// A change is in progress (joint consensus): decisions need majorities of both the old
    /// and the new voters.
    pub joint: bool,
    /// A change is under way: the configuration is joint or its entry is not committed yet.
    /// The leader refuses another change (503, retry) until this is false.
    #[serde(default)]
    pub change_in_progress: bool,
    /// The leader this node knows of.
    pub leader: Option<u64>,
    /// The cluster id the answering node runs with (`--cluster-id`): the Raft transport
    /// refuses peers of another, so a node joining checks it first (absent from older nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// Body of `POST /v1/members`: adds a node as a learner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMemberRequest {
    /// The new node's id (unused so far in this cluster).
    pub id: u64,
    /// Where the other nodes reach its Raft transport.
    pub raft_address: String,
}

/// Answer to a membership change: the log entry that carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChangeResponse {
    /// Log index of the configuration entry.
    pub index: u64,
    /// Its term.
    pub term: u64,
}

/// Body of `POST /v1/leader/transfer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    /// The voter that should lead.
    pub to: u64,
}
