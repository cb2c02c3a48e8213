//! The peer checks itself: every invariant the code relies on, tested on demand.
//!
//! ```text
//!  invariant_violations() ─► log window (log.rs)            cursors, unstable tail, apply budget
//!                         ─► roles, terms and votes (here)   leader voted for itself, ...
//!                         ─► configuration (here)            in effect = history's latest
//!                         ─► leader state (here, progress.rs) one progress per member, match < next
//!                         ─► hand-off (here)                 held messages wait for real writes
//!                         ─► reads (read_index.rs)           rounds, lease only on a leader
//!  check_invariants() ─► panic naming each broken one, with the values
//! ```
//!
//! In debug builds every public entry point ends with [`Raft::check_invariants`] (through
//! `debug_check_invariants`); the simulator calls it after every event whatever the build, and
//! the property tests after every input. A check never changes the peer, and storage that
//! cannot answer a question is skipped, not reported: a storage failure is an environmental
//! error (it stops the peer), not a broken invariant.

use crate::invariant::{InvariantViolation, Violations};
use crate::recovery::RecoveryPhase;
use crate::storage::Storage;
use crate::types::{Index, NodeId, Role};

use super::Raft;

impl<S: Storage> Raft<S> {
    /// Every invariant of this peer's state that does not hold, with the values that break
    /// it; empty when all hold. A non-empty answer is a bug in the core or in its caller (an
    /// input no peer could send is refused before it changes anything).
    ///
    /// The invariants, by name:
    /// - the log: `log-cursors-ordered` (applied <= applying <= committed <= last),
    ///   `log-snapshot-committed` (snapshot index <= committed), `log-unstable-contiguous`,
    ///   `log-terms-ordered`, `log-handed-out-within-unstable`, `log-snapshot-before-unstable`,
    ///   `log-unstable-joins-storage`, `log-unapplied-bytes-sum`, `log-unapplied-batches-ordered`;
    /// - terms and roles: `term-bounds-entries` (no entry of a later term than the peer's),
    ///   `term-bounds-durable-state`, `leader-voted-for-itself` (a leader knows itself as leader
    ///   and its vote for itself is durable), `candidate-voted-for-itself`,
    ///   `only-leader-knows-itself-leader`, `votes-only-while-campaigning`, `election-timer-bounds`;
    /// - membership: `configuration-is-latest` (the configuration in effect equals the
    ///   history's latest, thesis §4.1), `configuration-valid`, `configuration-history-within-log`;
    /// - leader state: `leader-state-only-on-leader` (progress, transfer, uncommitted entries),
    ///   `progress-for-every-member`, `progress-only-for-members`, the per-follower
    ///   `progress-match-below-next`, `progress-within-log`, `progress-commit-sent-committed`,
    ///   `progress-snapshot-state`, `progress-inflights-replicating`, `inflight-bounded`,
    ///   `progress-own-match-durable`, `uncommitted-bytes-sum`, `uncommitted-entries-ordered`,
    ///   `transfer-to-a-voter`;
    /// - the hand-off: `persist-ids-ordered`, `held-messages-wait-for-unpersisted-writes`,
    ///   `messages-from-self`, `snapshot-to-apply-committed`, `compaction-applied`,
    ///   `incoming-snapshot-bounded`;
    /// - reads: `reads-bounded`, `reads-pending-ordered`, `reads-echo-not-ahead`,
    ///   `lease-broadcasts-ordered`, `lease-broadcasts-bounded`, `lease-only-on-leader`,
    ///   `reads-forwarded-only-by-followers`, `reads-leader-state-only-on-leader`,
    ///   `reads-wait-only-before-first-commit`;
    /// - forwarded proposals (`forward.rs`): `forwards-bounded`, `forwards-count-sum`,
    ///   `forwards-ids-ascending`, `forwards-to-current-leader` (a follower waits only for the
    ///   leader and term it follows now; a leader forwards nothing), `forward-windows-bounded`;
    /// - recovery from possibly lost writes (`recovery.rs`): `recovery-never-campaigns` (a
    ///   recovering peer is a follower), `recovery-answers-from-others` (its own answer never
    ///   counts), `recovery-probe-timer-bounds`, `recovery-adopted-term-abstains` (phase 2
    ///   exactly when a term was adopted; the peer's term is at least it, its vote in it taken).
    pub fn invariant_violations(&self) -> Vec<InvariantViolation> {
        let mut out = Violations::default();
        self.log.collect_violations(&mut out);
        self.collect_role_violations(&mut out);
        self.collect_configuration_violations(&mut out);
        self.collect_leader_violations(&mut out);
        self.collect_hand_off_violations(&mut out);
        self.collect_recovery_violations(&mut out);
        let leads = self.role == Role::Leader;
        let committed = self.log.committed();
        self.reads
            .collect_violations(leads, committed, self.now_ticks, &mut out);
        self.forwards.collect_violations(
            leads,
            (self.leader, self.term),
            self.config.forwards_pending_max,
            &mut out,
        );
        // Reads wait for the first commit of the term (thesis §6.4 step 1), and are let go the
        // moment it happens. (The term lookup only when reads wait: it may read storage.)
        let waiting = self.reads.waiting_for_commit();
        if leads && waiting > 0 {
            let committed_in_term = self.log.term(committed).is_ok_and(|term| term == self.term);
            out.check(
                !committed_in_term,
                "reads-wait-only-before-first-commit",
                || format!("{waiting} reads wait although {committed} of this term is committed"),
            );
        }
        out.into_vec()
    }

    /// Panics naming every broken invariant and its values (see
    /// [`Raft::invariant_violations`] for the list), with this peer's id, term and role. Runs
    /// after every public entry point in debug builds; the simulator and the property tests
    /// call it after every input in any build.
    ///
    /// # Panics
    /// When any invariant is broken: a bug in the core or in its caller.
    pub fn check_invariants(&self) {
        let violations = self.invariant_violations();
        if violations.is_empty() {
            return;
        }
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        panic!(
            "invariant broken on {} (term {}, {:?}): {}",
            self.id,
            self.term,
            self.role,
            list.join("; ")
        );
    }

    /// [`Raft::check_invariants`] in debug builds; nothing in release builds, where the
    /// simulator calls the check itself.
    #[inline]
    pub(crate) fn debug_check_invariants(&self) {
        // A stopped peer's state no longer matters: a storage failure may have stopped it
        // half way through an input, and it hands nothing out any more.
        #[cfg(debug_assertions)]
        if !self.is_stopped() {
            self.check_invariants();
        }
    }

    fn collect_role_violations(&self, out: &mut Violations) {
        let (id, term, role) = (self.id, self.term, self.role);
        // Entries reach storage through the unstable tail, where this checked them against
        // a term that never decreases since: the newest in memory is the one to check.
        if let Some(newest) = self.log.newest_unstable_term() {
            out.check(newest <= term, "term-bounds-entries", || {
                format!("an entry of {newest} is newer than the peer's term {term}")
            });
        }
        let handed_out = self.handed_out_hard_state.term;
        let durable_vote = self.durable_vote;
        let durable_term = self.durable_term;
        out.check(
            handed_out <= term
                && durable_term <= handed_out
                && durable_vote.is_none_or(|(voted_in, _)| voted_in <= term),
            "term-bounds-durable-state",
            || {
                format!(
                    "term {term}, handed out {handed_out}, durable {durable_term}, durable vote {durable_vote:?}"
                )
            },
        );
        match role {
            Role::Leader => out.check(
                self.leader == Some(id)
                    && self.vote == Some(id)
                    && durable_vote == Some((term, id)),
                "leader-voted-for-itself",
                || {
                    format!(
                        "leader {id}: knows leader {:?}, vote {:?}, durable vote {durable_vote:?}",
                        self.leader, self.vote
                    )
                },
            ),
            Role::Candidate => out.check(
                self.vote == Some(id) && self.leader.is_none(),
                "candidate-voted-for-itself",
                || format!("vote {:?}, leader {:?}", self.vote, self.leader),
            ),
            Role::PreCandidate | Role::Follower => out.check(
                self.leader != Some(id),
                "only-leader-knows-itself-leader",
                || format!("{role:?} {id} names itself leader"),
            ),
        }
        let campaigning = matches!(role, Role::Candidate | Role::PreCandidate);
        out.check(
            campaigning || self.votes.is_empty(),
            "votes-only-while-campaigning",
            || format!("{role:?} holds votes {:?}", self.votes),
        );
        let election_ticks = self.config.election_ticks;
        let randomized = self.randomized_election_ticks;
        let timers_bounded = if role == Role::Leader {
            self.election_elapsed < election_ticks
                && self.heartbeat_elapsed < self.config.heartbeat_ticks
        } else {
            self.election_elapsed < randomized
        };
        out.check(
            timers_bounded && election_ticks <= randomized && randomized < 2 * election_ticks,
            "election-timer-bounds",
            || {
                format!(
                    "{role:?}: election elapsed {}, heartbeat elapsed {}, randomized timeout {randomized} (election ticks {election_ticks})",
                    self.election_elapsed, self.heartbeat_elapsed
                )
            },
        );
    }

    fn collect_recovery_violations(&self, out: &mut Violations) {
        let Some(recovery) = &self.recovery else {
            return;
        };
        let role = self.role;
        // It may have lost what makes it fit to lead (recovery.rs, dangers 1 and 2).
        out.check(role == Role::Follower, "recovery-never-campaigns", || {
            format!("recovering as {role:?}")
        });
        out.check(
            !recovery.answers.contains_key(&self.id),
            "recovery-answers-from-others",
            || format!("{} counts its own answer", self.id),
        );
        let heartbeat_ticks = self.config.heartbeat_ticks;
        out.check(
            recovery.probe_elapsed_ticks < heartbeat_ticks,
            "recovery-probe-timer-bounds",
            || {
                format!(
                    "{} ticks since the last probes, heartbeat interval {heartbeat_ticks}",
                    recovery.probe_elapsed_ticks
                )
            },
        );
        // Danger 3 is met only once the peer holds the adopted term, abstaining in it.
        let (term, vote) = (self.term, self.vote);
        let abstains = match (recovery.phase, recovery.adopted_term) {
            (RecoveryPhase::Probing, None) => true,
            (RecoveryPhase::CatchingUp, Some(adopted)) => {
                term > adopted || (term == adopted && vote.is_some())
            }
            _ => false,
        };
        out.check(abstains, "recovery-adopted-term-abstains", || {
            format!(
                "{:?} with adopted term {:?}, at term {term} vote {vote:?}",
                recovery.phase, recovery.adopted_term
            )
        });
    }

    fn collect_configuration_violations(&self, out: &mut Violations) {
        let latest = self.configuration_history.latest();
        out.check(
            *latest == self.configuration,
            "configuration-is-latest",
            || {
                format!(
                    "in effect {}, history's latest {latest}",
                    self.configuration
                )
            },
        );
        let valid = self.configuration.validate();
        out.check(valid.is_ok(), "configuration-valid", || {
            format!("{}: {valid:?}", self.configuration)
        });
        let (base, latest_index) = (
            self.configuration_history.base_index(),
            self.configuration_history.latest_index(),
        );
        let (committed, last) = (self.log.committed(), self.log.last_index());
        out.check(
            base <= committed && latest_index <= last,
            "configuration-history-within-log",
            || format!("history from {base} to {latest_index}, committed {committed}, last {last}"),
        );
    }

    fn collect_leader_violations(&self, out: &mut Violations) {
        let id = self.id;
        if self.role != Role::Leader {
            out.check(
                self.progress.is_empty()
                    && self.transfer_target.is_none()
                    && self.uncommitted.is_empty()
                    && self.uncommitted_bytes == 0,
                "leader-state-only-on-leader",
                || {
                    format!(
                        "{:?} holds progress for {:?}, transfer {:?}, {} uncommitted entries of {} bytes",
                        self.role,
                        self.progress.keys().collect::<Vec<_>>(),
                        self.transfer_target,
                        self.uncommitted.len(),
                        self.uncommitted_bytes
                    )
                },
            );
            return;
        }
        let (committed, last) = (self.log.committed(), self.log.last_index());
        for (&peer, progress) in &self.progress {
            progress.collect_violations(peer, last, committed, out);
        }
        // The cheap test first; the list of what is missing only for the report.
        let configuration = &self.configuration;
        let every_member = configuration
            .voters
            .iter()
            .chain(&configuration.outgoing)
            .chain(&configuration.learners)
            .chain([&id])
            .all(|member| self.progress.contains_key(member));
        out.check(every_member, "progress-for-every-member", || {
            let missing: Vec<NodeId> = configuration
                .members()
                .chain([id])
                .filter(|member| !self.progress.contains_key(member))
                .collect();
            format!("no progress for {missing:?} of {configuration}")
        });
        // A peer the configuration in effect removed is still replicated to until that
        // configuration commits (see `sync_progress_with_configuration`).
        let committed_configuration = self.configuration_history.at(committed);
        let is_stranger = |peer: NodeId| {
            peer != id
                && !self.configuration.is_member(peer)
                && !committed_configuration.is_member(peer)
        };
        let only_members = !self.progress.keys().any(|&peer| is_stranger(peer));
        out.check(only_members, "progress-only-for-members", || {
            let strangers: Vec<NodeId> = self
                .progress
                .keys()
                .copied()
                .filter(|&peer| is_stranger(peer))
                .collect();
            format!(
                "progress for {strangers:?}, members of neither {} nor the committed {committed_configuration}",
                self.configuration
            )
        });
        if let Some(own) = self.progress.get(&id) {
            let durable = self.log.durable_index();
            out.check(
                own.match_index <= durable,
                "progress-own-match-durable",
                || format!("own match {} beyond the durable {durable}", own.match_index),
            );
        }
        let bytes: u64 = self.uncommitted.iter().map(|&(_, bytes)| bytes).sum();
        out.check(
            bytes == self.uncommitted_bytes,
            "uncommitted-bytes-sum",
            || {
                format!(
                    "uncommitted bytes {} but the entries hold {bytes}",
                    self.uncommitted_bytes
                )
            },
        );
        let mut floor = committed;
        let misplaced = self.uncommitted.iter().find(|&&(index, _)| {
            let misplaced = index <= floor || index > last;
            floor = index;
            misplaced
        });
        out.check(misplaced.is_none(), "uncommitted-entries-ordered", || {
            format!("uncommitted entry {misplaced:?} not increasing within ({committed}, {last}]")
        });
        if let Some((target, elapsed)) = self.transfer_target {
            let election_ticks = self.config.election_ticks;
            out.check(
                target != id
                    && self.configuration.voters.contains(&target)
                    && elapsed < election_ticks
                    && !self.reads.lease_holds(self.now_ticks),
                "transfer-to-a-voter",
                || {
                    format!(
                        "transfer to {target} after {elapsed} of {election_ticks} ticks, voters {:?}, lease held {}",
                        self.configuration.voters,
                        self.reads.lease_holds(self.now_ticks)
                    )
                },
            );
        }
    }

    fn collect_hand_off_violations(&self, out: &mut Violations) {
        let (persisted, handed_out) = (self.persisted_id, self.last_persist_id);
        let pending = || self.pending_persists.iter().map(|pending| pending.id());
        out.check(
            persisted <= handed_out && pending().eq(persisted + 1..=handed_out),
            "persist-ids-ordered",
            || {
                let pending: Vec<u64> = pending().collect();
                format!("persisted {persisted}, handed out {handed_out}, pending {pending:?}")
            },
        );
        // Messages held for a write wait for one that is handed out and not yet durable
        // (Figure 2: persist before answering).
        let mut floor = persisted;
        let held = || {
            self.waiting_for_persist
                .iter()
                .map(|(required, _)| *required)
        };
        let misplaced = held().any(|required| {
            let misplaced = required <= floor || required > handed_out;
            floor = required;
            misplaced
        });
        out.check(!misplaced, "held-messages-wait-for-unpersisted-writes", || {
            let held: Vec<u64> = held().collect();
            format!("messages held for writes {held:?}; persisted {persisted}, handed out {handed_out}")
        });
        let foreign = self
            .messages
            .iter()
            .chain(&self.messages_after_persist)
            .chain(self.waiting_for_persist.iter().flat_map(|(_, held)| held))
            .find(|message| message.from != self.id);
        out.check(foreign.is_none(), "messages-from-self", || {
            format!("queued message not from {}: {foreign:?}", self.id)
        });
        let (committed, applied) = (self.log.committed(), self.log.applied());
        let to_apply = self
            .snapshot_to_apply
            .as_ref()
            .map(|snapshot| snapshot.meta.last_included.index);
        out.check(
            to_apply.is_none_or(|index| index <= committed),
            "snapshot-to-apply-committed",
            || format!("snapshot to apply at {to_apply:?}, committed {committed}"),
        );
        let compaction = self
            .pending_compaction
            .as_ref()
            .map(|snapshot| snapshot.meta.last_included.index);
        out.check(
            compaction.is_none_or(|index: Index| index <= applied),
            "compaction-applied",
            || format!("compaction through {compaction:?}, applied {applied}"),
        );
        if let Some(incoming) = &self.incoming_snapshot {
            let (term, bytes) = incoming.term_and_bytes();
            out.check(
                term <= self.term && bytes <= self.config.snapshot_bytes_max,
                "incoming-snapshot-bounded",
                || {
                    format!(
                        "receiving {bytes} bytes in term {term}; term {}, limit {}",
                        self.term, self.config.snapshot_bytes_max
                    )
                },
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    use bytes::Bytes;

    use super::*;
    use crate::message::{Message, MessageBody};
    use crate::options::Config;
    use crate::progress::{Progress, ProgressState};
    use crate::storage::MemStorage;
    use crate::types::{Configuration, LogId, Snapshot, SnapshotMeta, Term};

    /// Hands everything out and reports it done, as a caller with instant storage would.
    pub(crate) fn drive(raft: &mut Raft<MemStorage>) {
        while raft.has_ready() {
            let ready = raft.ready();
            if let Some(persist) = ready.persist {
                let id = persist.id;
                raft.storage_mut().persist(persist);
                raft.on_persisted(id);
            }
            if let Some(snapshot) = ready.snapshot_to_apply {
                raft.on_applied(snapshot.meta.last_included.index);
            }
            if let Some(last) = ready.committed_entries.last() {
                raft.on_applied(last.index());
            }
        }
    }

    fn config(id: u64) -> Config {
        let mut config = Config::new(NodeId(id), 7);
        config.election_ticks = 10;
        config.heartbeat_ticks = 2;
        config
    }

    /// Peer 1, the only voter, leading with learner 2 and three committed, applied commands.
    pub(crate) fn leader_with_learner() -> Raft<MemStorage> {
        let configuration = Configuration {
            voters: BTreeSet::from([NodeId(1)]),
            outgoing: BTreeSet::new(),
            learners: BTreeSet::from([NodeId(2)]),
        };
        let mut raft = Raft::new(config(1), MemStorage::new(configuration)).expect("valid");
        for _ in 0..40 {
            raft.tick();
            drive(&mut raft);
        }
        assert_eq!(raft.role, Role::Leader, "a single voter elects itself");
        for command in [b"a", b"b", b"c"] {
            raft.propose(Bytes::from_static(command)).expect("leader");
        }
        drive(&mut raft);
        assert_eq!(raft.log.applied(), raft.log.last_index());
        assert!(raft.invariant_violations().is_empty(), "a healthy leader");
        raft
    }

    /// Peer 2 of three, a follower that has heard from no leader.
    pub(crate) fn follower() -> Raft<MemStorage> {
        let storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
        let raft = Raft::new(config(2), storage).expect("valid");
        assert!(raft.invariant_violations().is_empty(), "a healthy follower");
        raft
    }

    fn snapshot_at(index: u64) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                last_included: LogId::new(Term(1), Index(index)),
                configuration: Configuration::new([NodeId(1)]),
            },
            data: Bytes::new(),
        }
    }

    /// Asserts that `corrupt` applied to `raft` breaks `invariant`, and that
    /// `check_invariants` names it.
    pub(crate) fn assert_breaks(
        mut raft: Raft<MemStorage>,
        invariant: &str,
        corrupt: impl FnOnce(&mut Raft<MemStorage>),
    ) {
        corrupt(&mut raft);
        let broken: Vec<&str> = raft
            .invariant_violations()
            .iter()
            .map(|violation| violation.invariant)
            .collect();
        assert!(
            broken.contains(&invariant),
            "corrupting for {invariant} broke {broken:?} instead"
        );
        let panic =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| raft.check_invariants()))
                .expect_err("check_invariants panics");
        let message = crate::test_panic_message(panic.as_ref());
        assert!(
            message.contains(&format!("invariant {invariant}: ")),
            "{invariant} not named in: {message}"
        );
    }

    #[test]
    #[should_panic(
        expected = "invariant broken on n1 (term t1, Leader): invariant uncommitted-bytes-sum: uncommitted bytes 1 but the entries hold 0"
    )]
    fn check_invariants_panics_naming_the_peer_the_invariant_and_the_values() {
        let mut raft = leader_with_learner();
        raft.uncommitted_bytes = 1;
        raft.check_invariants();
    }

    #[test]
    fn terms_and_roles_are_checked() {
        assert_breaks(leader_with_learner(), "term-bounds-entries", |raft| {
            raft.propose(Bytes::from_static(b"d")).expect("leader");
            raft.term = Term(0)
        });
        assert_breaks(leader_with_learner(), "term-bounds-durable-state", |raft| {
            raft.handed_out_hard_state.term = Term(9)
        });
        assert_breaks(leader_with_learner(), "leader-voted-for-itself", |raft| {
            raft.vote = Some(NodeId(2))
        });
        assert_breaks(leader_with_learner(), "leader-voted-for-itself", |raft| {
            raft.durable_vote = None
        });
        assert_breaks(follower(), "candidate-voted-for-itself", |raft| {
            raft.role = Role::Candidate
        });
        assert_breaks(follower(), "only-leader-knows-itself-leader", |raft| {
            raft.leader = Some(NodeId(2))
        });
        assert_breaks(follower(), "votes-only-while-campaigning", |raft| {
            raft.votes.insert(NodeId(1), true);
        });
        assert_breaks(follower(), "election-timer-bounds", |raft| {
            raft.election_elapsed = 2 * raft.config.election_ticks
        });
        assert_breaks(leader_with_learner(), "election-timer-bounds", |raft| {
            raft.heartbeat_elapsed = raft.config.heartbeat_ticks
        });
    }

    /// Peer 2 of three, restarted on storage that may have lost writes: probing.
    pub(crate) fn recovering_follower() -> Raft<MemStorage> {
        let mut storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
        storage.set_possibly_lost_writes(true);
        let raft = Raft::new(config(2), storage).expect("valid");
        assert!(raft.is_recovering(), "a voter with others to ask recovers");
        assert!(
            raft.invariant_violations().is_empty(),
            "a healthy recovering peer"
        );
        raft
    }

    /// [`recovering_follower`] after both others answered: catching up in term 4.
    fn caught_up_follower() -> Raft<MemStorage> {
        let mut raft = recovering_follower();
        for from in [1, 3] {
            raft.step(Message {
                from: NodeId(from),
                to: NodeId(2),
                term: Term(4),
                body: MessageBody::RecoveryProbeResponse {
                    last_log: LogId::default(),
                },
            })
            .expect("an answer");
        }
        let phase = raft.recovery.as_ref().map(|recovery| recovery.phase);
        assert_eq!(phase, Some(RecoveryPhase::CatchingUp));
        assert!(
            raft.invariant_violations().is_empty(),
            "a healthy catching-up peer"
        );
        raft
    }

    #[test]
    fn the_recovery_is_checked() {
        assert_breaks(recovering_follower(), "recovery-never-campaigns", |raft| {
            raft.role = Role::PreCandidate
        });
        assert_breaks(
            recovering_follower(),
            "recovery-answers-from-others",
            |raft| {
                if let Some(recovery) = &mut raft.recovery {
                    recovery
                        .answers
                        .insert(NodeId(2), (Term(1), LogId::default()));
                }
            },
        );
        assert_breaks(
            recovering_follower(),
            "recovery-probe-timer-bounds",
            |raft| {
                if let Some(recovery) = &mut raft.recovery {
                    recovery.probe_elapsed_ticks = raft.config.heartbeat_ticks;
                }
            },
        );
        assert_breaks(
            recovering_follower(),
            "recovery-adopted-term-abstains",
            |raft| {
                if let Some(recovery) = &mut raft.recovery {
                    recovery.adopted_term = Some(Term(1));
                }
            },
        );
        assert_breaks(
            caught_up_follower(),
            "recovery-adopted-term-abstains",
            |raft| raft.vote = None,
        );
        assert_breaks(
            caught_up_follower(),
            "recovery-adopted-term-abstains",
            |raft| raft.term = Term(3),
        );
        assert_breaks(follower(), "term-bounds-durable-state", |raft| {
            raft.durable_term = Term(9)
        });
    }

    #[test]
    fn the_configuration_is_checked() {
        assert_breaks(leader_with_learner(), "configuration-is-latest", |raft| {
            raft.configuration = Configuration::new([NodeId(1), NodeId(3)])
        });
        assert_breaks(follower(), "configuration-valid", |raft| {
            raft.configuration.learners.insert(NodeId(1));
        });
        assert_breaks(follower(), "configuration-history-within-log", |raft| {
            raft.configuration_history
                .append(Index(50), Configuration::new([NodeId(1)]))
        });
    }

    #[test]
    fn leader_state_is_checked() {
        assert_breaks(follower(), "leader-state-only-on-leader", |raft| {
            raft.transfer_target = Some((NodeId(1), 0))
        });
        assert_breaks(follower(), "leader-state-only-on-leader", |raft| {
            raft.progress.insert(NodeId(1), Progress::new(Index(0), 1));
        });
        assert_breaks(leader_with_learner(), "progress-for-every-member", |raft| {
            raft.progress.remove(&NodeId(2));
        });
        assert_breaks(leader_with_learner(), "progress-only-for-members", |raft| {
            raft.progress.insert(NodeId(9), Progress::new(Index(4), 1));
        });
        fn learner(raft: &mut Raft<MemStorage>) -> &mut Progress {
            raft.progress.get_mut(&NodeId(2)).expect("learner progress")
        }
        assert_breaks(leader_with_learner(), "progress-match-below-next", |raft| {
            let progress = learner(raft);
            progress.next_index = progress.match_index
        });
        assert_breaks(leader_with_learner(), "progress-within-log", |raft| {
            learner(raft).next_index = Index(60)
        });
        assert_breaks(
            leader_with_learner(),
            "progress-commit-sent-committed",
            |raft| learner(raft).commit_sent = Index(60),
        );
        assert_breaks(leader_with_learner(), "progress-snapshot-state", |raft| {
            learner(raft).state = ProgressState::Snapshot(Index(2))
        });
        assert_breaks(
            leader_with_learner(),
            "progress-inflights-replicating",
            |raft| {
                let progress = learner(raft);
                progress.state = ProgressState::Probe;
                progress.inflights.add(Index(3));
            },
        );
        assert_breaks(
            leader_with_learner(),
            "progress-own-match-durable",
            |raft| {
                let durable = raft.log.durable_index();
                raft.log.append([crate::types::Entry {
                    id: LogId::new(raft.term, durable.next()),
                    kind: crate::types::EntryKind::Noop,
                    data: Bytes::new(),
                }]);
                raft.progress.get_mut(&NodeId(1)).expect("own").match_index = durable.next();
            },
        );
        assert_breaks(leader_with_learner(), "uncommitted-bytes-sum", |raft| {
            raft.uncommitted_bytes += 1
        });
        assert_breaks(
            leader_with_learner(),
            "uncommitted-entries-ordered",
            |raft| raft.uncommitted.push_back((Index(1), 0)),
        );
        assert_breaks(leader_with_learner(), "transfer-to-a-voter", |raft| {
            raft.transfer_target = Some((NodeId(2), 0))
        });
    }

    #[test]
    fn the_hand_off_is_checked() {
        assert_breaks(leader_with_learner(), "persist-ids-ordered", |raft| {
            raft.persisted_id = raft.last_persist_id + 1
        });
        assert_breaks(
            leader_with_learner(),
            "held-messages-wait-for-unpersisted-writes",
            |raft| {
                let durable = raft.persisted_id;
                raft.waiting_for_persist.push_back((durable, Vec::new()))
            },
        );
        assert_breaks(follower(), "messages-from-self", |raft| {
            raft.messages.push(Message {
                from: NodeId(3),
                to: NodeId(1),
                term: Term(0),
                body: MessageBody::TimeoutNow,
            })
        });
        assert_breaks(follower(), "snapshot-to-apply-committed", |raft| {
            raft.snapshot_to_apply = Some(snapshot_at(5))
        });
        assert_breaks(leader_with_learner(), "compaction-applied", |raft| {
            raft.pending_compaction = Some(snapshot_at(50))
        });
        assert_breaks(follower(), "incoming-snapshot-bounded", |raft| {
            raft.incoming_snapshot = Some(crate::snapshot::IncomingSnapshot::for_test(
                NodeId(1),
                Term(5),
                snapshot_at(5).meta,
            ))
        });
    }
}
