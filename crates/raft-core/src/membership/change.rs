//! Membership changes by joint consensus (thesis §4.3), with learners.
//!
//! ```text
//!  propose_conf_change(AddLearner(n))  ─► C + learner n                       (one entry)
//!  propose_conf_change(Remove(learner))─► C − learner                         (one entry)
//!  propose_conf_change(Promote(n))     ─► C_old,new: outgoing = C_old, voters = C_old + n
//!  propose_conf_change(Remove(voter))  ─► C_old,new: outgoing = C_old, voters = C_old − n
//!        │ C_old,new committed (both majorities)
//!        ▼
//!  leader appends C_new by itself: outgoing = {}
//!        │ C_new committed, leader not in C_new
//!        ▼
//!  leader steps down (thesis §4.2.2), handing over to the most up-to-date voter of C_new
//! ```
//!
//! A configuration takes effect on a peer as soon as its entry is in the peer's log (thesis
//! §4.1): the leader when it appends it, a follower when it receives it. A follower whose
//! log suffix is replaced by a new leader falls back to the latest configuration left in its
//! log, or to its snapshot's; [`ConfigurationHistory`] keeps what that needs. Learners take
//! no part in quorums, so adding or removing one needs no joint phase. One change at a time:
//! a new one is refused while the latest configuration entry is uncommitted or joint. A voter
//! change is also refused while fewer than a majority of the new voters answer the leader
//! (`ConfChangeError::TooFewActiveVoters`, as etcd's strict reconfiguration check): done, it
//! would leave a configuration that can elect no leader.

use std::collections::BTreeMap;

use crate::error::ConfChangeError;
use crate::membership::{Configuration, ConfigurationError};
use crate::message::MessageBody;
use crate::progress::Progress;
use crate::raft::Raft;
use crate::storage::Storage;
use crate::types::{Entry, EntryKind, Index, LogId, NodeId, Role};

/// One membership change, proposed on the leader with [`Raft::propose_conf_change`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfChange {
    /// Adds a peer that is not a member as a learner: it receives the log and snapshots but
    /// neither votes nor counts, so it can catch up without slowing commits (thesis §4.2.1).
    AddLearner(NodeId),
    /// Makes a learner a voter, by joint consensus. Refused until the learner trails the
    /// leader's log by at most `Config::promotion_lag_max` entries, and while the voters
    /// after it would not have a majority that answers the leader.
    Promote(NodeId),
    /// Removes a voter (by joint consensus) or a learner (in one step). Refused for the last
    /// voter, and for a voter while the voters left would not have a majority that answers
    /// the leader. A leader that removes itself leads until the change is committed, then steps
    /// down (thesis §4.2.2).
    Remove(NodeId),
}

/// The configuration a change leads to from `current`: the joint configuration for a voter
/// change, the final one for a learner change. Checks membership only; the caller checks
/// that no change is in progress and that a learner to promote has caught up.
pub(crate) fn plan(
    current: &Configuration,
    change: ConfChange,
) -> Result<Configuration, ConfChangeError> {
    assert!(
        !current.is_joint(),
        "invariant one-change-at-a-time: planning from a joint configuration"
    );
    let node = match change {
        ConfChange::AddLearner(node) | ConfChange::Promote(node) | ConfChange::Remove(node) => node,
    };
    if node == NodeId(0) {
        return Err(ConfChangeError::InvalidNode);
    }
    let mut next = current.clone();
    match change {
        ConfChange::AddLearner(_) => {
            if current.is_member(node) {
                return Err(ConfChangeError::AlreadyMember(node));
            }
            next.learners.insert(node);
        }
        ConfChange::Promote(_) => {
            if current.is_voter(node) {
                return Err(ConfChangeError::AlreadyVoter(node));
            }
            if !current.is_learner(node) {
                return Err(ConfChangeError::NotMember(node));
            }
            next.learners.remove(&node);
            next.outgoing = current.voters.clone();
            next.voters.insert(node);
        }
        ConfChange::Remove(_) => {
            if current.is_learner(node) {
                next.learners.remove(&node);
            } else if current.is_voter(node) {
                if current.voters.len() == 1 {
                    return Err(ConfChangeError::LastVoter(node));
                }
                next.outgoing = current.voters.clone();
                next.voters.remove(&node);
            } else {
                return Err(ConfChangeError::NotMember(node));
            }
        }
    }
    assert!(
        next.validate().is_ok(),
        "invariant planned-configuration-valid: {next:?}"
    );
    Ok(next)
}

/// The second step of joint consensus: C_new alone.
pub(crate) fn leave_joint(joint: &Configuration) -> Configuration {
    assert!(joint.is_joint(), "invariant leave-only-joint: {joint:?}");
    Configuration {
        voters: joint.voters.clone(),
        outgoing: Default::default(),
        learners: joint.learners.clone(),
    }
}

/// The configurations of a log: the one as of a base index (the snapshot's, or the oldest one
/// still needed) and every configuration entry after it. Answers "which configuration is in
/// effect" (the latest) and "which one was in effect at index i" (for a snapshot at i), and
/// falls back when a log suffix is replaced.
#[derive(Clone, Debug, Hash)]
pub(crate) struct ConfigurationHistory {
    base_index: Index,
    base: Configuration,
    /// Invariant: every key is above `base_index`.
    entries: BTreeMap<Index, Configuration>,
}

impl ConfigurationHistory {
    /// The history of a log that starts after `base_index`, whose configuration there is
    /// `base`, holding the configuration entries `entries` (those at or below the base are
    /// covered by it and ignored).
    pub(crate) fn new(
        base_index: Index,
        base: Configuration,
        entries: impl IntoIterator<Item = (Index, Configuration)>,
    ) -> ConfigurationHistory {
        ConfigurationHistory {
            base_index,
            base,
            entries: entries
                .into_iter()
                .filter(|(index, _)| *index > base_index)
                .collect(),
        }
    }

    /// The configuration in effect: the latest entry's, or the base.
    pub(crate) fn latest(&self) -> &Configuration {
        self.entries.values().next_back().unwrap_or(&self.base)
    }

    /// The index the base configuration is of (the snapshot's or the compaction's).
    pub(crate) fn base_index(&self) -> Index {
        self.base_index
    }

    /// The index of the latest configuration entry, or the base index.
    pub(crate) fn latest_index(&self) -> Index {
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.base_index)
    }

    /// The configuration in effect once the log through `index` is applied.
    pub(crate) fn at(&self, index: Index) -> &Configuration {
        assert!(
            index >= self.base_index,
            "invariant configuration-history-covers: {index} below base {}",
            self.base_index
        );
        self.entries
            .range(..=index)
            .next_back()
            .map_or(&self.base, |(_, configuration)| configuration)
    }

    /// Whether `predicate` holds for the configuration as of `index` or any configuration
    /// entry after it.
    pub(crate) fn any_since(
        &self,
        index: Index,
        predicate: impl Fn(&Configuration) -> bool,
    ) -> bool {
        predicate(self.at(index))
            || self
                .entries
                .range(index.next()..)
                .any(|(_, configuration)| predicate(configuration))
    }

    /// Forgets the entries from `index` on (the log suffix from there is replaced). Returns
    /// whether any went.
    pub(crate) fn truncate_from(&mut self, index: Index) -> bool {
        assert!(
            index > self.base_index,
            "invariant configuration-base-immutable: truncating at {index}, base {}",
            self.base_index
        );
        !self.entries.split_off(&index).is_empty()
    }

    /// Records the configuration entry at `index`, the new last one.
    pub(crate) fn append(&mut self, index: Index, configuration: Configuration) {
        assert!(
            index > self.latest_index(),
            "invariant configuration-entries-ordered: {index} after {}",
            self.latest_index()
        );
        self.entries.insert(index, configuration);
    }

    /// The log was replaced by a snapshot through `index` whose configuration is
    /// `configuration`.
    pub(crate) fn reset(&mut self, index: Index, configuration: Configuration) {
        self.base_index = index;
        self.base = configuration;
        self.entries.clear();
    }

    /// The log through `index` was compacted: keep only what a later question can need.
    pub(crate) fn compact_to(&mut self, index: Index) {
        if index <= self.base_index {
            return;
        }
        self.base = self.at(index).clone();
        self.base_index = index;
        self.entries = self.entries.split_off(&index.next());
    }
}

impl<S: Storage> Raft<S> {
    /// Proposes a membership change (thesis §4.3). On the leader it appends the configuration
    /// entry, which takes effect at once, and returns its id; a voter change then completes
    /// by itself once the joint configuration is committed. See [`ConfChange`] for each
    /// change's conditions and [`ConfChangeError`] for the refusals.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<LogId, ConfChangeError> {
        let result = self.propose_conf_change_inner(change);
        self.debug_check_invariants();
        result
    }

    fn propose_conf_change_inner(&mut self, change: ConfChange) -> Result<LogId, ConfChangeError> {
        if self.role != Role::Leader || self.is_stopped() {
            return Err(ConfChangeError::NotLeader {
                leader: self.leader.filter(|&leader| leader != self.id),
            });
        }
        if self.transfer_target.is_some() {
            return Err(ConfChangeError::TransferInProgress);
        }
        if self.configuration_change_in_progress() {
            return Err(ConfChangeError::InProgress);
        }
        let next = plan(&self.configuration, change)?;
        if let ConfChange::Promote(learner) = change {
            let last_index = self.log.last_index();
            let match_index = self
                .progress
                .get(&learner)
                .map(|progress| progress.match_index)
                .unwrap_or_default();
            // A voter far behind would hold the new majority back until it caught up.
            if match_index.0.saturating_add(self.config.promotion_lag_max) < last_index.0 {
                return Err(ConfChangeError::NotCaughtUp {
                    match_index,
                    last_index,
                });
            }
        }
        if next.voters != self.configuration.voters {
            self.check_new_voters_answer(&next)?;
        }
        let id = self.append_configuration(next);
        tracing::debug!(id = %self.id, term = %self.term, ?change, entry = %id, "configuration change proposed");
        Ok(id)
    }

    /// Refuses a change whose new voters would not have a majority that answers: once it is
    /// done, they alone elect the leader, and a majority that includes unreachable or
    /// never-started peers elects none (a promoted learner that was never reached, then the
    /// leader removed: the cluster stops). This leader counts while it stays a voter; the
    /// others count once they answered within an election timeout.
    fn check_new_voters_answer(&self, next: &Configuration) -> Result<(), ConfChangeError> {
        let window = self.config.election_ticks;
        let active = next
            .voters
            .iter()
            .filter(|&&voter| {
                voter == self.id
                    || self
                        .progress
                        .get(&voter)
                        .is_some_and(|progress| progress.silent_ticks <= window)
            })
            .count();
        let needed = next.voters.len() / 2 + 1;
        if active < needed {
            return Err(ConfChangeError::TooFewActiveVoters { active, needed });
        }
        Ok(())
    }

    /// Whether a membership change is under way on this peer: the configuration in effect is
    /// joint, or its entry is not committed yet. While it is, the leader refuses another
    /// change with [`ConfChangeError::InProgress`].
    pub fn configuration_change_in_progress(&self) -> bool {
        self.configuration.is_joint()
            || self.configuration_history.latest_index() > self.log.committed()
    }

    /// Appends a configuration entry as leader; it takes effect at once.
    fn append_configuration(&mut self, next: Configuration) -> LogId {
        assert!(
            self.role == Role::Leader,
            "invariant configuration-appended-by-leader"
        );
        self.counters.configuration_changes_proposed += 1;
        self.append_as_leader(EntryKind::Configuration, next.encode())
    }

    /// Appends entries to the log, tracking the configuration entries among them: the first
    /// entry's index replaces the suffix from there, so configurations from there on are
    /// forgotten and the latest remaining one takes effect (thesis §4.1). Nothing changes
    /// when a configuration entry does not decode.
    pub(crate) fn append_entries(&mut self, entries: Vec<Entry>) -> Result<(), ConfigurationError> {
        let Some(first) = entries.first().map(Entry::index) else {
            return Ok(());
        };
        let mut appended = Vec::new();
        for entry in &entries {
            if entry.kind == EntryKind::Configuration {
                appended.push((entry.index(), Configuration::decode(&entry.data)?));
            }
        }
        let reverted = self.configuration_history.truncate_from(first);
        let changed = reverted || !appended.is_empty();
        for (index, configuration) in appended {
            self.configuration_history.append(index, configuration);
        }
        self.log.append(entries);
        if changed {
            self.adopt_latest_configuration();
        }
        Ok(())
    }

    /// Makes the latest configuration of the history the one in effect; a leader adds
    /// progress for new members and drops it for removed ones.
    pub(crate) fn adopt_latest_configuration(&mut self) {
        let latest = self.configuration_history.latest();
        if *latest == self.configuration {
            return;
        }
        self.configuration = latest.clone();
        self.counters.configurations_adopted += 1;
        tracing::debug!(id = %self.id, term = %self.term, configuration = ?self.configuration, "configuration in effect");
        if self.role == Role::Leader {
            self.sync_progress_with_configuration();
        }
    }

    /// Leader: one progress per replication target, the leader's own kept whatever the
    /// configuration says. The targets are the members of the configuration in effect
    /// (learners included, so they receive the log) and, until a change is committed, those
    /// of the configuration it replaces: a peer being removed keeps receiving the log until
    /// its removal is committed, so it normally learns of it and stops campaigning (thesis
    /// §4.2.3). Only the configuration in effect counts in quorums.
    pub(crate) fn sync_progress_with_configuration(&mut self) {
        let own = self.id;
        let committed = self.configuration_history.at(self.log.committed());
        let mut members: Vec<NodeId> = self
            .configuration
            .members()
            .chain(committed.members())
            .collect();
        members.sort_unstable();
        members.dedup();
        self.progress
            .retain(|id, _| *id == own || members.binary_search(id).is_ok());
        let last = self.log.last_index();
        for member in members {
            self.progress.entry(member).or_insert_with(|| {
                let mut progress = Progress::new(last, self.config.inflight_messages_max);
                // A new voter gets the benefit of the doubt in the next CheckQuorum round.
                progress.recent_active = true;
                progress
            });
        }
        if self
            .transfer_target
            .is_some_and(|(target, _)| !self.configuration.voters.contains(&target))
        {
            self.transfer_target = None;
        }
        self.replication_due = true;
    }

    /// Leader: the commit index moved from `before`; once it passes the latest configuration
    /// entry, peers that configuration removed stop being replicated to. Those that hold the
    /// entry are told it is committed first, so they know they are out and stop campaigning
    /// (see `Raft::is_promotable`).
    pub(crate) fn on_commit_advanced(&mut self, before: Index) {
        let latest = self.configuration_history.latest_index();
        if before >= latest || latest > self.log.committed() {
            return;
        }
        let committed = self.log.committed();
        let farewells: Vec<(NodeId, Index)> = self
            .progress
            .iter()
            .filter(|&(&id, progress)| {
                id != self.id && !self.configuration.is_member(id) && progress.match_index >= latest
            })
            .map(|(&id, progress)| (id, committed.min(progress.match_index)))
            .collect();
        for (peer, commit) in farewells {
            self.send(
                peer,
                MessageBody::Heartbeat {
                    commit,
                    read_round: 0,
                },
            );
        }
        self.sync_progress_with_configuration();
    }

    /// Leader: once the joint configuration is committed, appends C_new (thesis §4.3). Returns
    /// whether it did.
    pub(crate) fn maybe_leave_joint(&mut self) -> bool {
        let committed = self.configuration_history.latest_index() <= self.log.committed();
        if self.role != Role::Leader || !self.configuration.is_joint() || !committed {
            return false;
        }
        let next = leave_joint(&self.configuration);
        self.append_configuration(next);
        true
    }

    /// Leader: once a configuration without this peer as a voter is committed, step down
    /// (thesis §4.2.2). Until then it led without counting itself. It hands over to the most
    /// up-to-date voter of the new configuration, so the cluster need not wait for an
    /// election timeout. Returns whether it stepped down.
    pub(crate) fn maybe_step_down_when_removed(&mut self) -> bool {
        let committed = self.configuration_history.latest_index() <= self.log.committed();
        if self.role != Role::Leader
            || self.configuration.is_voter(self.id)
            || self.configuration.is_joint()
            || !committed
        {
            return false;
        }
        let last = self.log.last_index();
        let successor = self
            .configuration
            .voters
            .iter()
            .filter_map(|&voter| Some((self.progress.get(&voter)?.match_index, voter)))
            .max();
        tracing::debug!(id = %self.id, term = %self.term, ?successor, "removed from the configuration; stepping down");
        if let Some((match_index, voter)) = successor {
            if match_index == last {
                self.send(voter, MessageBody::TimeoutNow);
            }
        }
        self.become_follower(self.term, None);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ids(values: &[u64]) -> BTreeSet<NodeId> {
        values.iter().copied().map(NodeId).collect()
    }

    fn stable(voters: &[u64], learners: &[u64]) -> Configuration {
        Configuration {
            voters: ids(voters),
            outgoing: BTreeSet::new(),
            learners: ids(learners),
        }
    }

    #[test]
    fn learner_changes_take_one_step_and_voter_changes_go_joint() {
        let current = stable(&[1, 2, 3], &[4]);
        assert_eq!(
            plan(&current, ConfChange::AddLearner(NodeId(5))),
            Ok(stable(&[1, 2, 3], &[4, 5]))
        );
        assert_eq!(
            plan(&current, ConfChange::Remove(NodeId(4))),
            Ok(stable(&[1, 2, 3], &[]))
        );
        let promoted = plan(&current, ConfChange::Promote(NodeId(4))).expect("a learner");
        assert_eq!(promoted.voters, ids(&[1, 2, 3, 4]));
        assert_eq!(promoted.outgoing, ids(&[1, 2, 3]));
        assert!(promoted.learners.is_empty());
        assert_eq!(leave_joint(&promoted), stable(&[1, 2, 3, 4], &[]));
        let removed = plan(&current, ConfChange::Remove(NodeId(1))).expect("a voter");
        assert_eq!(removed.voters, ids(&[2, 3]));
        assert_eq!(removed.outgoing, ids(&[1, 2, 3]));
        assert_eq!(removed.learners, ids(&[4]));
    }

    #[test]
    fn invalid_changes_are_refused_with_their_reason() {
        let current = stable(&[1], &[4]);
        let cases = [
            (
                ConfChange::AddLearner(NodeId(1)),
                ConfChangeError::AlreadyMember(NodeId(1)),
            ),
            (
                ConfChange::AddLearner(NodeId(4)),
                ConfChangeError::AlreadyMember(NodeId(4)),
            ),
            (
                ConfChange::Promote(NodeId(1)),
                ConfChangeError::AlreadyVoter(NodeId(1)),
            ),
            (
                ConfChange::Promote(NodeId(9)),
                ConfChangeError::NotMember(NodeId(9)),
            ),
            (
                ConfChange::Remove(NodeId(9)),
                ConfChangeError::NotMember(NodeId(9)),
            ),
            (
                ConfChange::Remove(NodeId(1)),
                ConfChangeError::LastVoter(NodeId(1)),
            ),
            (
                ConfChange::AddLearner(NodeId(0)),
                ConfChangeError::InvalidNode,
            ),
        ];
        for (change, error) in cases {
            assert_eq!(plan(&current, change), Err(error), "{change:?}");
        }
    }

    #[test]
    fn history_falls_back_on_truncation_and_keeps_what_compaction_needs() {
        let base = stable(&[1, 2, 3], &[]);
        let mut history = ConfigurationHistory::new(Index(5), base.clone(), []);
        assert_eq!(history.latest_index(), Index(5));
        let with_learner = stable(&[1, 2, 3], &[4]);
        history.append(Index(8), with_learner.clone());
        let joint = plan(&with_learner, ConfChange::Promote(NodeId(4))).expect("learner");
        history.append(Index(12), joint.clone());
        assert_eq!(history.latest(), &joint);
        assert_eq!(history.at(Index(7)), &base);
        assert_eq!(history.at(Index(11)), &with_learner);
        assert!(!history.truncate_from(Index(13)), "nothing from 13 on");
        assert!(history.truncate_from(Index(10)));
        assert_eq!(history.latest(), &with_learner);
        assert_eq!(history.latest_index(), Index(8));
        history.compact_to(Index(9));
        assert_eq!(history.latest(), &with_learner);
        assert_eq!(history.latest_index(), Index(9));
        assert_eq!(history.at(Index(9)), &with_learner);
        history.reset(Index(20), base.clone());
        assert_eq!(history.latest(), &base);
    }
}
