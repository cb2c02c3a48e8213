//! Riding out a leadership change: a request refused for a moment of one (a transfer, an
//! election under way) is held and tried again instead of being answered "try again".

use std::sync::atomic::Ordering;

use raft_core::NodeId;

use super::{KvServer, ServeError};

impl KvServer {
    /// Runs `attempt` until it succeeds, fails on something other than a moment of a
    /// leadership change, or `leadership_change_hold` passes.
    ///
    /// A planned transfer (`raftkv leader transfer`) refuses proposals for a moment and then
    /// leaves this node a follower, with no leader known until the new one's first message;
    /// answering "try again" during it failed requests of every client that does not retry,
    /// and slowed those that do by a whole Retry-After. Held here, a request is proposed once
    /// the transfer ends, or refused with the new leader named, which the HTTP layer forwards
    /// it to. No leader known is waited out only while an election is under way
    /// ([`KvServer::is_electing`]) or right after a transfer was seen. Only refusals that left
    /// nothing in the log are retried (the proposal was not placed, the read not confirmed),
    /// so a retry cannot apply anything twice.
    pub(super) async fn through_leadership_change<T, F, Attempt>(
        &self,
        mut attempt: F,
    ) -> Result<T, ServeError>
    where
        F: FnMut() -> Attempt,
        Attempt: std::future::Future<Output = Result<T, ServeError>>,
    {
        let deadline = tokio::time::Instant::now() + self.leadership_change_hold;
        let mut change_seen = false;
        loop {
            let error = match attempt().await {
                Ok(result) => return Ok(result),
                Err(error) => error,
            };
            let pause = self.config.tick;
            let electing =
                change_seen || matches!(error, ServeError::NoLeader) && self.no_leader_is_passing();
            let passing = error.is_leadership_changing(electing);
            if !passing || tokio::time::Instant::now() + pause > deadline {
                return Err(error);
            }
            if !change_seen {
                change_seen = true;
                self.counters
                    .held_for_leadership_change_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Notes the term in which this node knows a leader, if it knows one now.
    pub(super) fn note_leader(&self) {
        let metrics = self.node.metrics();
        if metrics.leader.is_some() {
            self.leader_known_in_term
                .fetch_max(metrics.term.0, Ordering::Relaxed);
        }
    }

    /// Whether an election is under way as far as this node can tell: it knows no leader, in
    /// a term past the last one it knew a leader in. Every leadership transfer ends so (the
    /// target campaigns in a new term), and the new leader is known a round trip later. A node
    /// cut off from the others knows no leader either, but in the same term (with PreVote its
    /// campaigns do not raise it), and is answered at once.
    fn is_electing(&self) -> bool {
        let metrics = self.node.metrics();
        metrics.leader.is_none()
            && metrics.term.0 > self.leader_known_in_term.load(Ordering::Relaxed)
    }

    /// Whether the node's refusal for want of a leader will likely pass within an election
    /// timeout: an election is under way ([`KvServer::is_electing`]), or the figures the node
    /// published still name a leader (they trail its state by a moment, so leadership has
    /// just changed).
    fn no_leader_is_passing(&self) -> bool {
        self.node.metrics().leader.is_some() || self.is_electing()
    }

    /// The leader, waiting for one to be known while an election is under way (this node
    /// knows no leader, in a term past the last one it knew a leader in), at most two election
    /// timeouts.
    pub async fn leader_after_election(&self) -> Option<NodeId> {
        let deadline = tokio::time::Instant::now() + self.leadership_change_hold;
        let mut waited = false;
        loop {
            if let Some(leader) = self.node.metrics().leader {
                return Some(leader);
            }
            if !self.is_electing() || tokio::time::Instant::now() + self.config.tick > deadline {
                return None;
            }
            if !waited {
                waited = true;
                self.counters
                    .held_for_leadership_change_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(self.config.tick).await;
        }
    }
}
