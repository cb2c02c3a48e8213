//! Leases on the server: the [`Lessor`] fed by the apply loop, the leader's scan that
//! expires and checkpoints leases through the log, and the requests the HTTP API serves
//! (grant ids and TTLs, keepalives, time to live).
//!
//! ```text
//!  apply loop: Noop of term T while leading in T ─► promote (store's leases)
//!              grant / revoke / checkpoint applied ─► Lessor; snapshot or leadership lost ─► demote
//!  scan (every 100 ms): leadership lost ─► demote; expired ─► propose LeaseRevoke{expired}
//!                       checkpoint interval ─► propose LeaseCheckpoint batches (≤ 1000 each)
//!  keepalive: promoted? ─► renew (lease time at receipt) ─► clear checkpoints through the log
//!             ─► read_index (a quorum still follows) ─► same term, still promoted ─► answer
//! ```

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::lessor::{Lessor, CHECKPOINTS_PER_ENTRY_MAX, SCAN_INTERVAL};
use super::{KvServer, ServeError};
use crate::store::{LeaseCheckpoint, Operation, Outcome, LEASE_ID_MAX};

/// Largest id the node picks for a grant that names none: 2^53, the largest integer a
/// JavaScript number holds exactly.
const PICKED_ID_MAX: u64 = 1 << 53;

/// A lease as the promoted leader answers a time-to-live query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTimeToLive {
    /// The lease.
    pub id: u64,
    /// The TTL it was granted with, in seconds.
    pub granted_ttl_seconds: u64,
    /// Seconds left before it expires unless renewed (rounded up; 0 while it is being
    /// revoked).
    pub ttl_seconds: u64,
    /// Its keys, in key order, when asked for.
    pub keys: Option<Vec<String>>,
    /// The store's revision the answer reflects.
    pub revision: u64,
}

/// Why a lease could not be granted as asked, before anything was proposed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseGrantError {
    /// The TTL asked for is above `--lease-ttl-max-seconds`.
    #[error("the TTL of {ttl_seconds} s is above the cluster's maximum of {max_seconds} s")]
    TtlTooLong {
        /// The TTL asked for.
        ttl_seconds: u64,
        /// The cluster's maximum.
        max_seconds: u64,
    },
    /// The id asked for is 0 or above `i64::MAX`.
    #[error("lease id {id} is invalid: ids are 1 to {LEASE_ID_MAX}")]
    InvalidId {
        /// The id asked for.
        id: u64,
    },
}

impl KvServer {
    /// The lessor, locked. Held briefly: the apply loop waits for it.
    pub(super) fn lessor(&self) -> MutexGuard<'_, Lessor> {
        self.lessor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this node is the leader that decides about leases now (for the metrics).
    pub fn lessor_promoted(&self) -> bool {
        self.lessor().promoted_term().is_some()
    }

    /// The grant to propose for a request of `ttl_seconds` and `id`: the TTL raised to
    /// `--lease-ttl-min-seconds` or refused above `--lease-ttl-max-seconds`, the id checked, or
    /// when absent picked at random among the unused ones in 1 ..= 2^53.
    pub fn lease_grant_operation(
        &self,
        ttl_seconds: u64,
        id: Option<u64>,
    ) -> Result<Operation, LeaseGrantError> {
        let settings = &self.config.coordination;
        if ttl_seconds > settings.lease_ttl_max_seconds {
            return Err(LeaseGrantError::TtlTooLong {
                ttl_seconds,
                max_seconds: settings.lease_ttl_max_seconds,
            });
        }
        let ttl_seconds = ttl_seconds.max(settings.lease_ttl_min_seconds);
        let id = match id {
            Some(id) if id == 0 || id > LEASE_ID_MAX => {
                return Err(LeaseGrantError::InvalidId { id })
            }
            Some(id) => id,
            None => self.unused_lease_id(),
        };
        Ok(Operation::LeaseGrant { id, ttl_seconds })
    }

    /// A random id in 1 ..= 2^53 that no lease has here now. Two grants racing for one id
    /// (odds about n / 2^53) get "already exists" for the second.
    fn unused_lease_id(&self) -> u64 {
        loop {
            let id = rand::Rng::gen_range(&mut rand::thread_rng(), 1..=PICKED_ID_MAX);
            if self.state().lease(id).is_none() {
                return id;
            }
        }
    }

    /// Renews each of `ids` for its TTL from now, on the promoted leader, and answers each
    /// one's TTL (0: missing or being revoked) with the store's revision. Answered only after
    /// a quorum confirmed this node still leads in the term the renewal was made in, so any
    /// later leader's promotion (which extends every lease by its TTL and an election timeout)
    /// comes after the renewal.
    pub async fn lease_keep_alive(
        &self,
        ids: &[u64],
    ) -> Result<(Vec<(u64, u64)>, u64), ServeError> {
        let answered = self
            .through_leadership_change(|| self.keep_alive_once(ids))
            .await?;
        let renewed = answered.0.iter().filter(|(_, ttl)| *ttl > 0).count();
        self.counters
            .lease_keepalives_answered_total
            .fetch_add(renewed as u64, Ordering::Relaxed);
        Ok(answered)
    }

    async fn keep_alive_once(&self, ids: &[u64]) -> Result<(Vec<(u64, u64)>, u64), ServeError> {
        let term = self.promoted_leader_term()?;
        let plan = self
            .lessor()
            .keep_alive(ids, Instant::now())
            .ok_or(ServeError::LessorNotPromoted)?;
        if plan.term != term {
            return Err(ServeError::LessorNotPromoted);
        }
        // A checkpoint in the store, or on its way there, would let a later leader expire the
        // lease from a remaining TTL older than this renewal: cleared through the log first.
        for chunk in plan.clear.chunks(CHECKPOINTS_PER_ENTRY_MAX) {
            let checkpoints = chunk
                .iter()
                .map(|&id| LeaseCheckpoint {
                    id,
                    remaining_ms: 0,
                })
                .collect();
            self.write(None, Operation::LeaseCheckpoint { checkpoints })
                .await?;
        }
        self.node.read_index().await?;
        // The node led in `term` at the renewal and still does after the quorum's
        // confirmation: it led throughout (a node leads at most once in a term), so the read
        // was its own, confirmed after the renewal.
        if self.promoted_leader_term()? != term {
            return Err(ServeError::ReadNotConfirmed);
        }
        let revision = self.state().revision();
        Ok((plan.answers, revision))
    }

    /// The term this node leads and is promoted in, or why it cannot decide about leases: not
    /// the leader (the one it knows, to forward to), or not promoted yet.
    fn promoted_leader_term(&self) -> Result<u64, ServeError> {
        let (term, leading) = self.node.get_state();
        if !leading {
            return Err(match self.node.metrics().leader {
                Some(leader) if leader != self.config.id => ServeError::NotLeader { leader },
                _ => ServeError::NoLeader,
            });
        }
        let mut lessor = self.lessor();
        match lessor.promoted_term() {
            Some(promoted) if promoted == term.0 => Ok(term.0),
            Some(_) => {
                // Promoted in an earlier term: leadership was lost and won again since.
                lessor.demote();
                Err(ServeError::LessorNotPromoted)
            }
            None => Err(ServeError::LessorNotPromoted),
        }
    }

    /// The time to live of lease `id` (with its keys if `keys`), from the promoted leader
    /// after a linearizable read; `Ok(None)`: no such lease.
    pub async fn lease_time_to_live(
        &self,
        id: u64,
        keys: bool,
    ) -> Result<Option<LeaseTimeToLive>, ServeError> {
        self.through_leadership_change(|| async {
            let term = self.promoted_leader_term()?;
            self.node.read_index().await?;
            if self.promoted_leader_term()? != term {
                return Err(ServeError::ReadNotConfirmed);
            }
            // Everything this leader committed is applied here once its own no-op was (the
            // promotion waited for it); a revoke committed and not yet applied is missed, as a
            // read at the previous index would.
            let (info, revision) = {
                let state = self.state();
                (state.lease(id), state.revision())
            };
            let Some(info) = info else {
                return Ok(None);
            };
            let left = self.lessor().time_to_live(id, Instant::now());
            Ok(Some(LeaseTimeToLive {
                id,
                granted_ttl_seconds: info.ttl_seconds,
                // Held by the store and not by the lessor: granted in this very moment.
                ttl_seconds: left.unwrap_or(info.ttl_seconds),
                keys: keys.then_some(info.keys),
                revision,
            }))
        })
        .await
    }

    /// What the apply loop tells the lessor after applying `operation` with `outcome`.
    pub(super) fn lessor_applied(&self, operation: &Operation, outcome: &Outcome) {
        match (operation, outcome) {
            (_, Outcome::LeaseGranted { id, ttl_seconds }) => {
                self.lessor().granted(*id, *ttl_seconds, Instant::now());
            }
            (Operation::LeaseRevoke { id, .. }, Outcome::LeaseRevoked { .. })
            | (Operation::LeaseRevoke { id, .. }, Outcome::LeaseRefused { .. }) => {
                self.lessor().revoked(*id);
            }
            (Operation::LeaseCheckpoint { checkpoints }, Outcome::LeaseCheckpointed) => {
                let mut lessor = self.lessor();
                for checkpoint in checkpoints {
                    lessor.checkpoint_applied(checkpoint.id, checkpoint.remaining_ms);
                }
            }
            _ => {}
        }
    }

    /// The apply loop applied the no-op of `term`: if this node leads in that term, it has
    /// applied every earlier entry and takes the leases over.
    pub(super) fn lessor_noop_applied(&self, term: u64) {
        let (current, leading) = self.node.get_state();
        if !leading || current.0 != term {
            return;
        }
        let stored = self.state().lease_deadlines();
        let mut lessor = self.lessor();
        lessor.promote(term, Instant::now(), &stored);
        tracing::info!(term, leases = stored.len(), "lessor promoted");
    }

    /// Drops every deadline if this node no longer leads in the term it was promoted in.
    pub(super) fn lessor_follow_leadership(&self) {
        let (term, leading) = self.node.get_state();
        let mut lessor = self.lessor();
        if let Some(promoted) = lessor.promoted_term() {
            if !leading || term.0 != promoted {
                lessor.demote();
                tracing::info!(promoted, term = term.0, "lessor demoted");
            }
        }
    }
}

/// Runs for as long as the server does: every [`SCAN_INTERVAL`], follows leadership and, on
/// the promoted leader, proposes the revokes of expired leases and the checkpoint rounds.
pub(super) async fn lease_loop(server: Weak<KvServer>) {
    let mut interval = tokio::time::interval(SCAN_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(server) = server.upgrade() else {
            return;
        };
        server.lessor_follow_leadership();
        let now = Instant::now();
        let checkpoint_interval = server.config.coordination.lease_checkpoint_interval;
        let (expired, checkpoints) = {
            let mut lessor = server.lessor();
            lessor.observe(now);
            (
                lessor.expired(now),
                lessor.checkpoints_due(now, checkpoint_interval),
            )
        };
        for id in expired {
            server
                .counters
                .leases_expired_total
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(revoke_expired(Arc::clone(&server), id));
        }
        for chunk in checkpoints.chunks(CHECKPOINTS_PER_ENTRY_MAX) {
            server
                .counters
                .lease_checkpoints_proposed_total
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let checkpoints = chunk
                .iter()
                .map(|&(id, remaining_ms)| LeaseCheckpoint { id, remaining_ms })
                .collect();
            tokio::spawn(propose_checkpoints(Arc::clone(&server), checkpoints));
        }
    }
}

async fn revoke_expired(server: Arc<KvServer>, id: u64) {
    let revoke = Operation::LeaseRevoke { id, expired: true };
    match server.write(None, revoke).await {
        Ok(result) => match result.outcome {
            Outcome::LeaseRevoked { keys_deleted, .. } => {
                tracing::debug!(id, keys_deleted, "expired lease revoked");
            }
            // Revoked by a client meanwhile: the apply loop dropped it.
            other => {
                tracing::debug!(id, ?other, "expired lease not revoked");
                server.lessor().revoke_ended(id);
            }
        },
        Err(error) => {
            // Lost leadership (the next leader decides again) or not seen applied in time.
            tracing::debug!(id, %error, "revoke of an expired lease not seen applied");
            server.lessor().revoke_ended(id);
        }
    }
}

async fn propose_checkpoints(server: Arc<KvServer>, checkpoints: Vec<LeaseCheckpoint>) {
    let ids: Vec<u64> = checkpoints.iter().map(|checkpoint| checkpoint.id).collect();
    if let Err(error) = server
        .write(None, Operation::LeaseCheckpoint { checkpoints })
        .await
    {
        tracing::debug!(%error, leases = ids.len(), "lease checkpoints not seen applied");
        server.lessor().checkpoints_ended(&ids);
    }
}

/// The longest election timeout of a node ticking every `tick` with `election_ticks`: the
/// timeout is drawn from `[election_ticks, 2 × election_ticks)` ticks (§5.2).
pub(super) fn election_timeout_max(tick: Duration, election_ticks: u32) -> Duration {
    tick.saturating_mul(2 * election_ticks)
}
