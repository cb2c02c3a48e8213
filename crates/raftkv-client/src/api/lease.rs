//! Leases (keys with a time to live): the routes and bodies of the lease API.
//!
//! ```text
//!  POST /v1/lease/grant      JSON LeaseGrantRequest      → 200 LeaseGrantResponse
//!  POST /v1/lease/revoke     JSON LeaseRevokeRequest     → 200 LeaseRevokeResponse
//!  POST /v1/lease/keepalive  JSON LeaseKeepAliveRequest  → 200 LeaseKeepAliveResponse
//!  GET  /v1/lease/{id}?keys=true                         → 200 LeaseTimeToLiveResponse
//!  GET  /v1/leases                                       → 200 LeaseListResponse
//!  PUT  /v1/kv/{key}?lease=ID                            → a put that attaches the key to ID
//!  errors, beside the API's usual ones:
//!    404 LeaseErrorResponse: no lease with that id (never granted, revoked or expired)
//!    409 LeaseErrorResponse: a grant named an id that is already in use
//!    400 LeaseErrorResponse: the id is 0 or above i64::MAX, or the TTL is above the cluster's
//!                            maximum (--lease-ttl-max-seconds)
//! ```
//!
//! A **lease** has an id (a positive 63-bit number; 0 means "no lease") and a TTL in seconds.
//! Keys put with `?lease=ID` (or a transaction put with `"lease": ID`) are attached to it; a put
//! without a lease detaches a key (as in etcd), a delete detaches it too. When the lease is
//! revoked, or expires because no keepalive reached the leader for its TTL, every key attached
//! to it is deleted by one log entry, at one revision, so watchers see the deletes together.
//!
//! The timing rule: a lease's keys are never deleted by expiry earlier than its TTL after the
//! last keepalive whose answer the owner received (whatever happens to leadership or to clocks);
//! see `docs/leases.md` for the rule, its proof sketch and the bound on how late expiry can be.
//! Keepalives are answered by the leader (a follower forwards them) after it confirmed its
//! leadership with a quorum; they are not written to the log.

use serde::{Deserialize, Serialize};

/// The largest lease id: ids are positive `i64`s, as in etcd.
pub const LEASE_ID_MAX: u64 = i64::MAX as u64;

/// Most lease ids one keepalive request may name.
pub const LEASE_KEEPALIVE_IDS_MAX: usize = 10_000;

/// Body of `POST /v1/lease/grant`. Sent with `client-id` and `request-seq` it is applied
/// exactly once like any write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantRequest {
    /// The time to live asked for, in seconds. A TTL below the cluster's minimum
    /// (`--lease-ttl-min-seconds`) is raised to it; one above the maximum is refused (400).
    pub ttl_seconds: u64,
    /// The id wanted (1 ..= [`LEASE_ID_MAX`]); absent: the node picks an unused one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// Answer to `POST /v1/lease/grant`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantResponse {
    /// The lease's id.
    pub id: u64,
    /// The TTL granted, in seconds (the one asked for, or the cluster's minimum).
    pub ttl_seconds: u64,
    /// The store's revision after the grant (a grant changes no key, so it does not raise it).
    pub revision: u64,
    /// Log index of the grant.
    pub index: u64,
    /// Term it was committed in.
    pub term: u64,
}

/// Body of `POST /v1/lease/revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeRequest {
    /// The lease to revoke.
    pub id: u64,
}

/// Answer to `POST /v1/lease/revoke`: the lease is gone and its keys deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeResponse {
    /// The lease revoked.
    pub id: u64,
    /// How many keys the revoke deleted (all at `revision`).
    pub keys_deleted: u64,
    /// The store's revision after the revoke: the deletes' revision when it deleted keys.
    pub revision: u64,
    /// Log index of the revoke.
    pub index: u64,
    /// Term it was committed in.
    pub term: u64,
}

/// Body of `POST /v1/lease/keepalive`: renew each lease for its full TTL from now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseKeepAliveRequest {
    /// The leases to renew (at most [`LEASE_KEEPALIVE_IDS_MAX`]).
    pub ids: Vec<u64>,
}

/// One lease's answer in a [`LeaseKeepAliveResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseKeepAlive {
    /// The lease.
    pub id: u64,
    /// The TTL it was renewed for, in seconds, counted from when the leader received the
    /// request; 0: the lease does not exist (revoked, expired or never granted) and was not
    /// renewed.
    pub ttl_seconds: u64,
}

/// Answer to `POST /v1/lease/keepalive`, one entry per id asked, in the order asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseKeepAliveResponse {
    /// Each lease's answer.
    pub leases: Vec<LeaseKeepAlive>,
    /// The store's revision when the leader answered.
    pub revision: u64,
}

/// Answer to `GET /v1/lease/{id}` (`?keys=true` adds the keys); served by the leader, which
/// alone knows the deadlines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTimeToLiveResponse {
    /// The lease.
    pub id: u64,
    /// The TTL it was granted with, in seconds.
    pub granted_ttl_seconds: u64,
    /// The seconds left before the leader expires it (rounded up), unless renewed.
    pub ttl_seconds: u64,
    /// The keys attached to it, in key order (with `?keys=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// The store's revision the answer reflects.
    pub revision: u64,
}

/// Answer to `GET /v1/leases`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseListResponse {
    /// The id of every lease that exists, ascending.
    pub ids: Vec<u64>,
    /// The store's revision the answer reflects.
    pub revision: u64,
}

/// Error body (404, 409, 400) of a lease request, or of a put or transaction naming a lease
/// that does not exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseErrorResponse {
    /// What went wrong, for a person.
    pub error: String,
    /// The lease concerned.
    pub id: u64,
}
