//! Consistency checks: every replica hashes its state at the index of a hash-check entry,
//! and a check compares the members' hashes at that index.
//!
//! ```text
//!  GET  /v1/consistency/hash?index=I[&wait_ms=W]   (read-only)  → 200 StateHashResponse
//!       this node's hash at index I; with W, waits up to W ms (at most 10 s) for it
//!  POST /v1/consistency/check                      (admin)      → 200 ConsistencyCheckResponse
//!       the leader proposes a hash check and compares every member's hash at its index
//!       (a follower forwards the request to the leader)
//! ```
//!
//! A hash is the SHA-256 of the state's snapshot encoding at that index (every version held
//! with its revisions and lease, the sessions, leases and addresses, the applied index), in
//! lowercase hex. Replicas that applied the same log hash the same; one that differs holds a
//! different state at the same index: it diverged.

use serde::{Deserialize, Serialize};

/// Longest `wait_ms` a `GET /v1/consistency/hash` waits for, in milliseconds; a larger one is
/// cut to it.
pub const STATE_HASH_WAIT_MS_MAX: u64 = 10_000;

/// Where a node stands on its hash at one index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateHashState {
    /// Hashed: `hash` and `revision` are given.
    Hashed,
    /// Not yet: the node has not applied the index, or is still hashing its state there.
    Pending,
    /// The node applied the index without hashing there: it is not a hash check's index, the
    /// node installed a snapshot past it or restarted from one, or its hashing was busy.
    NotHashed,
    /// Older than the hashes the node keeps (its last few).
    Forgotten,
}

/// Answer of `GET /v1/consistency/hash`: one node's hash of its state at one index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateHashResponse {
    /// The node that answered.
    pub node: u64,
    /// The index asked about.
    pub index: u64,
    /// Whether the node has a hash there.
    pub state: StateHashState,
    /// The SHA-256 of the node's state at `index`, in lowercase hex, when `state` is
    /// `hashed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The store's revision at `index`, when `state` is `hashed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// What a consistency check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyVerdict {
    /// Every member hashed its state at the index, and all the hashes are equal.
    Consistent,
    /// Two members' hashes differ: `divergent` names the members outside the largest group
    /// of equal hashes (every member that hashed, when no group is the largest alone).
    Divergent,
    /// The hashes given agree, but some member gave none (down, unreachable, or it did not
    /// hash at the index): the check cannot vouch for it.
    Incomplete,
}

/// One member's part of a check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStateHash {
    /// The member's id.
    pub id: u64,
    /// Its hash at the check's index (lowercase hex SHA-256), if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Its revision at the check's index, with the hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Why it gave no hash (unreachable, still pending when the check ended, not hashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// Answer of `POST /v1/consistency/check`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyCheckResponse {
    /// The log index of the check's entry: the index every member hashed its state at.
    pub index: u64,
    /// What the check found.
    pub verdict: ConsistencyVerdict,
    /// Every member of the configuration at the check, in id order.
    pub members: Vec<MemberStateHash>,
    /// The members whose hash disagrees (empty unless the verdict is `divergent`), in id
    /// order.
    pub divergent: Vec<u64>,
}
