//! Leases: the table of leases the log granted, and which keys each one holds.
//!
//! ```text
//!  leases: BTreeMap<id, Lease>                       keys (history)
//!  ┌────┬─────────────────────────────────────┐      ┌──────┬───────────────┐
//!  │ 7  │ ttl 10 s, remaining none, {a, b}    │◄────►│ "a"  │ latest lease 7│
//!  │ 9  │ ttl 60 s, remaining 42000 ms, {}    │      │ "b"  │ latest lease 7│
//!  └────┴─────────────────────────────────────┘      │ "c"  │ latest lease 0│
//!                                                    └──────┴───────────────┘
//!  grant   ── a new lease without keys (the revision does not move)
//!  put     ── with lease L: attach the key to L (detaching it from its old lease);
//!             without: detach it. Append and cas keep the key's lease.
//!  delete  ── detach (every kind: delete, delete_prefix, a revoke's deletes)
//!  revoke  ── delete every key of the lease at one revision, in key order; drop the lease
//!  checkpoint ── record the remaining time a leader computed (0: clear it)
//! ```
//!
//! The store knows no time: it holds each lease's granted TTL and, when a leader checkpointed
//! it, the remaining milliseconds at that moment, for the next leader's lessor (which alone
//! counts time, `server::lessor`). Everything here is a function of the log, like the rest of
//! the store: ordered maps and sets only, so every replica iterates them alike.
//!
//! The table and the history's latest versions describe the same attachment twice (a key's
//! latest version names its lease; the lease lists its keys): the table answers "which keys
//! does lease L hold" without a scan of the store, which a revoke needs. The two must agree
//! ([`super::StateMachine::check_invariants`] checks it). A listed key shares its text with
//! the history's map (an `Arc<str>`), so attaching costs a set node, not a copy of the key.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use thiserror::Error;

/// The largest lease id: ids are positive `i64`s, as in etcd (0 means "no lease").
pub const LEASE_ID_MAX: u64 = i64::MAX as u64;

/// Why a lease command, or a put or transaction naming a lease, was refused. Nothing changed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LeaseError {
    /// No lease with this id exists (never granted, revoked or expired).
    #[error("lease {id} does not exist (never granted, revoked or expired)")]
    NotFound {
        /// The lease named.
        id: u64,
    },
    /// A grant named an id already in use.
    #[error("lease {id} already exists")]
    AlreadyExists {
        /// The lease named.
        id: u64,
    },
    /// A grant named an id outside 1 ..= [`LEASE_ID_MAX`].
    #[error("lease id {id} is invalid: ids are 1 to {LEASE_ID_MAX}")]
    InvalidId {
        /// The id named.
        id: u64,
    },
}

/// What the store knows of one lease, as [`super::StateMachine::lease`] answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease's id.
    pub id: u64,
    /// The TTL it was granted with, in seconds.
    pub ttl_seconds: u64,
    /// The remaining time a leader last checkpointed, in milliseconds (`None`: never, or
    /// cleared by a keepalive since: the full TTL counts).
    pub remaining_ms: Option<u64>,
    /// The keys attached to it, in key order.
    pub keys: Vec<String>,
}

/// One lease's remaining time, as a leader's checkpoint records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseCheckpoint {
    /// The lease (skipped if it no longer exists when the checkpoint is applied).
    pub id: u64,
    /// The time left, in milliseconds; 0 clears the checkpoint (the full TTL counts again).
    pub remaining_ms: u64,
}

/// One lease in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Lease {
    /// The granted TTL, in seconds.
    pub(super) ttl_seconds: u64,
    /// The last checkpointed remaining time, in milliseconds.
    pub(super) remaining_ms: Option<u64>,
    /// The keys attached: exactly the live keys whose latest version names this lease.
    pub(super) keys: BTreeSet<Arc<str>>,
}

/// Every lease the log granted and did not revoke.
#[derive(Clone, Debug, Default)]
pub(super) struct Leases {
    by_id: BTreeMap<u64, Lease>,
}

impl Leases {
    pub(super) fn new() -> Leases {
        Leases::default()
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn contains(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// The leases in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &Lease)> {
        self.by_id.iter().map(|(id, lease)| (*id, lease))
    }

    pub(super) fn info(&self, id: u64) -> Option<LeaseInfo> {
        self.by_id.get(&id).map(|lease| LeaseInfo {
            id,
            ttl_seconds: lease.ttl_seconds,
            remaining_ms: lease.remaining_ms,
            keys: lease.keys.iter().map(|key| key.to_string()).collect(),
        })
    }

    /// Adds lease `id` without keys; refused for an invalid or existing id.
    pub(super) fn grant(&mut self, id: u64, ttl_seconds: u64) -> Result<(), LeaseError> {
        if !(1..=LEASE_ID_MAX).contains(&id) {
            return Err(LeaseError::InvalidId { id });
        }
        if self.by_id.contains_key(&id) {
            return Err(LeaseError::AlreadyExists { id });
        }
        self.by_id.insert(
            id,
            Lease {
                ttl_seconds,
                remaining_ms: None,
                keys: BTreeSet::new(),
            },
        );
        Ok(())
    }

    /// Restores lease `id` as a snapshot holds it (keys are attached afterwards); `false` if
    /// the id is invalid or not after every id held, or the checkpoint is 0 (never recorded:
    /// 0 clears).
    pub(super) fn insert_restored(
        &mut self,
        id: u64,
        ttl_seconds: u64,
        remaining_ms: Option<u64>,
    ) -> bool {
        let in_order = self
            .by_id
            .last_key_value()
            .is_none_or(|(last, _)| *last < id);
        if !(1..=LEASE_ID_MAX).contains(&id) || !in_order || remaining_ms == Some(0) {
            return false;
        }
        self.by_id.insert(
            id,
            Lease {
                ttl_seconds,
                remaining_ms,
                keys: BTreeSet::new(),
            },
        );
        true
    }

    /// Removes lease `id`, handing back its keys in key order (the caller deletes them).
    pub(super) fn revoke(&mut self, id: u64) -> Result<BTreeSet<Arc<str>>, LeaseError> {
        self.by_id
            .remove(&id)
            .map(|lease| lease.keys)
            .ok_or(LeaseError::NotFound { id })
    }

    /// Records each checkpoint of a lease that still exists (0 clears).
    pub(super) fn checkpoint(&mut self, checkpoints: &[LeaseCheckpoint]) {
        for checkpoint in checkpoints {
            if let Some(lease) = self.by_id.get_mut(&checkpoint.id) {
                lease.remaining_ms =
                    (checkpoint.remaining_ms != 0).then_some(checkpoint.remaining_ms);
            }
        }
    }

    /// Lists `key` under lease `id` (which exists: the caller checked before changing anything).
    pub(super) fn attach(&mut self, id: u64, key: Arc<str>) {
        let lease = self
            .by_id
            .get_mut(&id)
            .expect("a key is attached only to a lease that exists");
        lease.keys.insert(key);
    }

    /// Removes `key` from lease `id`'s keys, if the lease exists (a revoke removes the lease
    /// before deleting its keys).
    pub(super) fn detach(&mut self, id: u64, key: &str) {
        if let Some(lease) = self.by_id.get_mut(&id) {
            lease.keys.remove(key);
        }
    }

    /// Panics, naming the invariant, unless the table and `live_leases` (every live key with
    /// the lease its latest version names, 0 for none) describe the same attachments.
    pub(super) fn check_against<'a>(&self, live_leases: impl Iterator<Item = (&'a str, u64)>) {
        let mut listed = 0;
        for (key, id) in live_leases {
            if id == 0 {
                continue;
            }
            let lease = self
                .by_id
                .get(&id)
                .unwrap_or_else(|| panic!("invariant key-lease-exists: {key} names lease {id}"));
            assert!(
                lease.keys.contains(key),
                "invariant lease-lists-its-keys: lease {id} does not list {key}"
            );
            listed += 1;
        }
        let total: usize = self.by_id.values().map(|lease| lease.keys.len()).sum();
        assert_eq!(
            total, listed,
            "invariant lease-keys-exist: a lease lists a key that does not exist with it"
        );
        for id in self.by_id.keys() {
            assert!(
                (1..=LEASE_ID_MAX).contains(id),
                "invariant lease-id-valid: {id}"
            );
        }
    }
}
