//! Where the invariant checkers are consulted, and how a failure is reported.
//!
//! ```text
//!  after every event touching peer p ─► check_peer(p):
//!      fatal error? · safety violation? · the core's self-check (Raft::check_invariants, in
//!      every build) · commit scan ─► durable-majority check of fresh commits (each disk
//!                                    read back through Storage)
//!      election safety · leader completeness · index monotonicity
//!  failure ─► panic: invariant name, detail, seed, virtual time, recent trace
//! ```

use raft_core::Storage;

use super::Cluster;
use crate::invariants::{check_durable_majority, Check, Violation};

impl Cluster {
    /// Runs every per-peer checker against the peer an event touched.
    pub(super) fn check_peer(&mut self, peer: usize) {
        let current = &self.peers[peer];
        let Some(node) = current.node.as_ref() else {
            return;
        };
        if let Some(error) = node.fatal_error() {
            self.fail(Violation {
                invariant: "storage-never-fails",
                detail: format!("{} stopped on a storage error: {error}", current.id),
            });
        }
        if let Some(violation) = node.safety_violation() {
            self.fail(Violation {
                invariant: "committed-entries-never-overwritten",
                detail: format!("{} stopped: {violation}", current.id),
            });
        }
        // The core's own invariants, whatever the build profile (debug builds also check them
        // inside the core after every call).
        let broken = node.invariant_violations();
        if !broken.is_empty() {
            let list: Vec<String> = broken.iter().map(ToString::to_string).collect();
            self.fail(Violation {
                invariant: broken[0].invariant,
                detail: format!("{} (core self-check): {}", current.id, list.join("; ")),
            });
        }
        let (term, is_leader) = node.state();
        let invariants = &mut self.invariants;
        if !node.is_recovering() {
            invariants.lost_writes.forget(current.id);
        }
        let commit_check = invariants.committed.observe(node, current.incarnation);
        self.check(commit_check);
        self.check_fresh_commits();
        let current = &self.peers[peer];
        let Some(node) = current.node.as_ref() else {
            return;
        };
        let invariants = &mut self.invariants;
        let checks = [
            invariants.election.observe(current.id, term, is_leader),
            invariants.completeness.observe(node, &invariants.committed),
            invariants.monotonic.observe(
                current.id,
                current.incarnation,
                node.commit_index(),
                current.service.applied(),
            ),
        ];
        for check in checks {
            self.check(check);
        }
    }

    /// Checks every entry newly known committed against the disks of the voters of the
    /// configuration it was committed under.
    pub(super) fn check_fresh_commits(&mut self) {
        let fresh = self.invariants.committed.take_fresh();
        for (id, configuration) in fresh {
            let disks = self
                .peers
                .iter()
                .map(|peer| (peer.id, &peer.disk as &dyn Storage));
            let content = self.invariants.log_matching.content(id);
            self.check(check_durable_majority(
                id,
                content,
                disks,
                &configuration,
                &self.invariants.lost_writes,
            ));
        }
    }

    pub(super) fn check(&self, check: Check) {
        if let Err(violation) = check {
            self.fail(violation);
        }
    }

    /// Panics with a report naming the invariant, the seed and the recent events.
    pub(crate) fn fail(&self, violation: Violation) -> ! {
        panic!(
            "invariant violated: {}\n  {}\n  seed {} at {}.{:03} ms virtual\nlast {} events (oldest first):\n{}",
            violation.invariant,
            violation.detail,
            self.config.seed,
            self.now_us / 1_000,
            self.now_us % 1_000,
            self.trace.len(),
            self.trace.render()
        );
    }

    /// Panics with a report for a scenario expectation that did not hold (a missed deadline,
    /// a wrong count).
    pub fn fail_scenario(&self, what: &str) -> ! {
        self.fail(Violation {
            invariant: "scenario",
            detail: what.to_string(),
        })
    }

    /// Liveness check: every write acknowledged to a client is applied, with its content, on
    /// every running peer. Call it once the cluster has converged.
    pub fn check_acknowledged_applied(&self) {
        let max = self.invariants.acknowledged.max();
        for peer in &self.peers {
            if peer.node.is_some() && peer.service.applied() < max {
                self.fail(Violation {
                    invariant: "acknowledged-writes-applied",
                    detail: format!(
                        "{} applied through {} only; writes through {max} were acknowledged",
                        peer.id,
                        peer.service.applied()
                    ),
                });
            }
        }
        self.check(
            self.invariants
                .acknowledged
                .check_applied(&self.invariants.state_machine),
        );
    }
}
