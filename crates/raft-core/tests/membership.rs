//! Membership changes by joint consensus (thesis §4.3), with learners: each test drives a few
//! cores through the in-memory message loop of `common` and checks the configuration, the
//! commit index and the roles that result.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::{config, Net};
use raft_core::{
    ConfChange, ConfChangeError, Config, Configuration, EntryKind, Index, MemStorage, Message,
    MessageBody, NodeId, Raft, Role, Term,
};

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

fn propose(net: &mut Net, leader: u64, data: &'static [u8]) -> Index {
    net.peer(leader)
        .propose(Bytes::from_static(data))
        .expect("leader accepts")
        .index
}

fn change(net: &mut Net, leader: u64, change: ConfChange) -> Index {
    net.peer(leader)
        .propose_conf_change(change)
        .unwrap_or_else(|error| panic!("{change:?} refused: {error}"))
        .index
}

fn leader_among(net: &mut Net, candidates: impl IntoIterator<Item = u64>) -> Option<u64> {
    candidates
        .into_iter()
        .find(|&id| net.peer(id).role() == Role::Leader)
}

#[test]
fn a_learner_receives_the_log_but_its_acknowledgements_never_count() {
    let mut net = Net::with_members(4, 3, config);
    net.elect(1);
    propose(&mut net, 1, b"a");
    net.settle();
    let added = change(&mut net, 1, ConfChange::AddLearner(NodeId(4)));
    net.settle();
    // Peer 3 is a spare follower: it gets the change at the next tick's flush.
    net.tick_all(1);
    for id in 1..=4 {
        assert_eq!(
            net.peer(id).configuration(),
            &stable(&[1, 2, 3], &[4]),
            "peer {id}"
        );
    }
    assert!(net.commit(1) >= added);
    assert_eq!(
        net.applied_data(4),
        vec!["a"],
        "the learner applies the log"
    );
    let status = net.peer(1).status();
    let learner = status
        .peers
        .iter()
        .find(|peer| peer.id == NodeId(4))
        .expect("the leader tracks the learner");
    assert!(learner.learner);
    assert_eq!(learner.match_index, status.last_index);

    // With both other voters cut off, the learner alone acknowledges: nothing commits.
    net.cut.extend([NodeId(2), NodeId(3)]);
    let before = net.commit(1);
    let entry = propose(&mut net, 1, b"b");
    net.settle();
    assert_eq!(
        net.peer(4).last_index(),
        entry,
        "the learner holds the entry"
    );
    assert_eq!(net.commit(1), before, "its acknowledgement does not count");
}

#[test]
fn a_learner_never_campaigns_and_its_vote_never_counts() {
    let configuration = stable(&[1, 2, 3], &[4]);
    let mut learner = Raft::new(config(4), MemStorage::new(configuration.clone())).expect("valid");
    for _ in 0..100 {
        learner.tick();
    }
    let ready = learner.ready();
    assert_eq!(learner.role(), Role::Follower);
    assert!(ready.messages.is_empty(), "a learner never campaigns");

    let mut voter = Raft::new(config(1), MemStorage::new(configuration)).expect("valid");
    while voter.role() != Role::PreCandidate {
        voter.tick();
    }
    let ready = voter.ready();
    let asked: BTreeSet<NodeId> = ready.messages.iter().map(|message| message.to).collect();
    assert_eq!(asked, ids(&[2, 3]), "learners are not asked for votes");
    let grant = |from: u64| Message {
        from: NodeId(from),
        to: NodeId(1),
        term: Term(1),
        body: MessageBody::VoteResponse {
            granted: true,
            pre_vote: true,
        },
    };
    voter.step(grant(4)).expect("a vote is accepted");
    assert_eq!(
        voter.role(),
        Role::PreCandidate,
        "the learner's vote does not count"
    );
    voter.step(grant(2)).expect("a vote is accepted");
    assert_eq!(voter.role(), Role::Candidate, "two of three voters");
}

fn with_small_promotion_lag(id: u64) -> Config {
    let mut config = config(id);
    config.promotion_lag_max = 2;
    config
}

#[test]
fn a_learner_is_promoted_only_once_it_has_caught_up() {
    let mut net = Net::with_members(4, 3, with_small_promotion_lag);
    net.elect(1);
    net.cut.insert(NodeId(4));
    change(&mut net, 1, ConfChange::AddLearner(NodeId(4)));
    net.settle();
    for data in [b"a", b"b", b"c", b"d"] {
        propose(&mut net, 1, data);
    }
    net.settle();
    let last_index = net.peer(1).last_index();
    assert_eq!(
        net.peer(1)
            .propose_conf_change(ConfChange::Promote(NodeId(4))),
        Err(ConfChangeError::NotCaughtUp {
            match_index: Index(0),
            last_index
        })
    );
    net.cut.clear();
    net.tick_all(5);
    assert_eq!(net.applied_data(4), vec!["a", "b", "c", "d"]);
    let joint = change(&mut net, 1, ConfChange::Promote(NodeId(4)));
    let in_effect = net.peer(1).configuration().clone();
    assert_eq!(in_effect.voters, ids(&[1, 2, 3, 4]), "in effect at once");
    assert_eq!(in_effect.outgoing, ids(&[1, 2, 3]));
    net.settle();
    // Out of the joint configuration peer 4 is a spare: the next tick's flush brings C_new.
    net.tick_all(1);
    for id in 1..=4 {
        assert_eq!(
            net.peer(id).configuration(),
            &stable(&[1, 2, 3, 4], &[]),
            "peer {id}"
        );
    }
    let last = net.peer(1).last_index();
    assert_eq!(last, joint.next(), "the leader appended C_new by itself");
    let entries = net.peer(1).entries(joint, last.next()).expect("in the log");
    assert!(entries
        .iter()
        .all(|entry| entry.kind == EntryKind::Configuration));
    assert_eq!(net.commit(1), last);
    assert_eq!(net.peer(1).counters().configuration_changes_proposed, 3);
}

#[test]
fn the_joint_configuration_needs_a_majority_of_both_sets() {
    let mut net = Net::with_members(4, 3, config);
    net.elect(1);
    change(&mut net, 1, ConfChange::AddLearner(NodeId(4)));
    net.settle();
    let joint = change(&mut net, 1, ConfChange::Promote(NodeId(4)));
    // C_old = {1, 2, 3} has a majority in {1, 2}; C_new = {1, 2, 3, 4} does not.
    net.cut.extend([NodeId(3), NodeId(4)]);
    net.settle();
    assert_eq!(net.peer(2).last_index(), joint, "2 holds the joint entry");
    assert!(net.commit(1) < joint, "but C_new has no majority");
    assert!(net.peer(1).configuration().is_joint());
    assert_eq!(
        net.peer(1)
            .propose_conf_change(ConfChange::AddLearner(NodeId(5))),
        Err(ConfChangeError::InProgress)
    );
    net.cut.remove(&NodeId(3));
    // The appends 3 missed are resent once the leader notices they were lost.
    net.tick_all(12);
    assert!(net.commit(1) > joint, "{{1, 2, 3}} is a majority of both");
    assert_eq!(net.peer(1).configuration(), &stable(&[1, 2, 3, 4], &[]));
    assert_eq!(net.commit(1), net.peer(1).last_index());
}

#[test]
fn a_leader_that_removes_itself_leads_until_c_new_commits_then_steps_down() {
    let mut net = Net::new(3);
    net.elect(1);
    propose(&mut net, 1, b"a");
    net.settle();
    let joint = change(&mut net, 1, ConfChange::Remove(NodeId(1)));
    assert_eq!(net.peer(1).configuration().voters, ids(&[2, 3]));
    assert_eq!(net.peer(1).configuration().outgoing, ids(&[1, 2, 3]));
    // Without 3, C_new = {2, 3} has no majority: the leader does not count itself in it.
    net.cut.insert(NodeId(3));
    net.settle();
    assert!(net.commit(1) < joint);
    assert_eq!(
        net.peer(1).role(),
        Role::Leader,
        "it keeps leading meanwhile"
    );
    net.cut.clear();
    net.tick_all(12);
    assert_ne!(
        net.peer(1).role(),
        Role::Leader,
        "stepped down once C_new committed"
    );
    assert_eq!(net.peer(1).configuration(), &stable(&[2, 3], &[]));
    let leader = leader_among(&mut net, [2, 3]).expect("the successor took over at once");
    for id in [2, 3] {
        assert_eq!(net.peer(id).configuration(), &stable(&[2, 3], &[]));
    }
    propose(&mut net, leader, b"b");
    net.settle();
    net.tick_all(2);
    assert_eq!(net.applied_data(2), vec!["a", "b"]);
    assert_eq!(net.applied_data(3), vec!["a", "b"]);
    // The removed peer is not contacted, does not campaign, and never leads again.
    net.delivered.clear();
    net.tick_all(60);
    assert!(net
        .delivered
        .iter()
        .all(|message| message.to != NodeId(1) && message.from != NodeId(1)));
    assert_ne!(net.peer(1).role(), Role::Leader);
    assert_eq!(leader_among(&mut net, [2, 3]), Some(leader));
}

#[test]
fn a_removed_peer_that_missed_its_removal_cannot_disrupt_or_win() {
    for pre_vote in [true, false] {
        let make = |id| {
            let mut config = config(id);
            config.pre_vote = pre_vote;
            config.check_quorum = pre_vote;
            config
        };
        let mut net = Net::with_config(3, make);
        net.elect(1);
        net.cut.insert(NodeId(3));
        change(&mut net, 1, ConfChange::Remove(NodeId(3)));
        net.settle();
        net.tick_all(3);
        assert_eq!(net.peer(1).configuration(), &stable(&[1, 2], &[]));
        assert!(
            net.peer(3).configuration().is_voter(NodeId(3)),
            "3 never heard of its removal"
        );
        let term = net.peer(1).term();
        net.cut.clear();
        net.tick_all(100);
        assert_eq!(net.peer(1).role(), Role::Leader, "pre_vote {pre_vote}");
        assert_eq!(net.peer(1).term(), term, "no campaign of 3 got through");
        assert_ne!(net.peer(3).role(), Role::Leader);
        assert!(net.peer(2).counters().dropped_unknown_peer > 0);
    }
}

#[test]
fn a_second_change_while_one_is_in_flight_is_refused() {
    let mut net = Net::with_members(5, 3, config);
    net.elect(1);
    change(&mut net, 1, ConfChange::AddLearner(NodeId(4)));
    assert_eq!(
        net.peer(1)
            .propose_conf_change(ConfChange::AddLearner(NodeId(5))),
        Err(ConfChangeError::InProgress),
        "the first is not committed yet"
    );
    assert_eq!(
        net.peer(2)
            .propose_conf_change(ConfChange::AddLearner(NodeId(5))),
        Err(ConfChangeError::NotLeader {
            leader: Some(NodeId(1))
        })
    );
    net.settle();
    let refusals = [
        (
            ConfChange::AddLearner(NodeId(4)),
            ConfChangeError::AlreadyMember(NodeId(4)),
        ),
        (
            ConfChange::Promote(NodeId(2)),
            ConfChangeError::AlreadyVoter(NodeId(2)),
        ),
        (
            ConfChange::Promote(NodeId(5)),
            ConfChangeError::NotMember(NodeId(5)),
        ),
        (
            ConfChange::Remove(NodeId(5)),
            ConfChangeError::NotMember(NodeId(5)),
        ),
        (ConfChange::Remove(NodeId(0)), ConfChangeError::InvalidNode),
    ];
    for (proposed, refusal) in refusals {
        assert_eq!(
            net.peer(1).propose_conf_change(proposed),
            Err(refusal),
            "{proposed:?}"
        );
    }
    change(&mut net, 1, ConfChange::AddLearner(NodeId(5)));
    net.settle();
    // A transfer in progress refuses changes too.
    net.cut.insert(NodeId(2));
    propose(&mut net, 1, b"x");
    net.settle();
    net.peer(1).transfer_leader(NodeId(2)).expect("a voter");
    assert_eq!(
        net.peer(1)
            .propose_conf_change(ConfChange::Remove(NodeId(4))),
        Err(ConfChangeError::TransferInProgress)
    );
}

#[test]
fn the_last_voter_cannot_be_removed() {
    let mut net = Net::with_members(2, 1, config);
    net.elect(1);
    assert_eq!(
        net.peer(1)
            .propose_conf_change(ConfChange::Remove(NodeId(1))),
        Err(ConfChangeError::LastVoter(NodeId(1)))
    );
    // Growing from one voter: the single voter is a majority of C_old, but C_new needs both.
    change(&mut net, 1, ConfChange::AddLearner(NodeId(2)));
    net.settle();
    change(&mut net, 1, ConfChange::Promote(NodeId(2)));
    net.settle();
    assert_eq!(net.peer(1).configuration(), &stable(&[1, 2], &[]));
    assert_eq!(net.peer(2).configuration(), &stable(&[1, 2], &[]));
}

#[test]
fn a_follower_falls_back_when_its_configuration_entry_is_replaced() {
    let mut net = Net::with_members(6, 5, config);
    net.elect(1);
    propose(&mut net, 1, b"a");
    net.settle();
    net.cut.extend([NodeId(3), NodeId(4), NodeId(5)]);
    let added = change(&mut net, 1, ConfChange::AddLearner(NodeId(6)));
    net.settle();
    assert_eq!(net.peer(2).configuration(), &stable(&[1, 2, 3, 4, 5], &[6]));
    assert!(net.commit(1) < added, "two of five hold it");
    // 3, 4 and 5 elect a leader whose log lacks the entry, and it writes over it.
    net.cut.clear();
    net.cut.extend([NodeId(1), NodeId(2), NodeId(6)]);
    net.tick_all(40);
    let leader = leader_among(&mut net, [3, 4, 5]).expect("a majority elects");
    propose(&mut net, leader, b"b");
    net.settle();
    net.cut.remove(&NodeId(2));
    net.tick_all(5);
    assert_eq!(net.peer(2).last_index(), net.peer(leader).last_index());
    assert_eq!(
        net.peer(2).configuration(),
        &Configuration::new((1..=5).map(NodeId)),
        "back to the configuration before the replaced entry"
    );
    assert_eq!(net.peer(2).counters().configurations_adopted, 2);
    net.restart(2, config);
    assert_eq!(
        net.peer(2).configuration(),
        &Configuration::new((1..=5).map(NodeId)),
        "and so says its storage"
    );
}

#[test]
fn the_configuration_survives_snapshots_and_restarts() {
    let mut net = Net::with_members(5, 3, config);
    net.elect(1);
    change(&mut net, 1, ConfChange::AddLearner(NodeId(4)));
    net.settle();
    // Compact exactly at the joint entry: the snapshot carries the joint configuration.
    let joint = change(&mut net, 1, ConfChange::Promote(NodeId(4)));
    net.settle();
    net.tick_all(2);
    let expected_joint = net
        .peer(1)
        .entries(joint, joint.next())
        .map(|entries| Configuration::decode(&entries[0].data).expect("decodes"))
        .expect("in the log");
    assert!(expected_joint.is_joint());
    for id in 1..=4 {
        net.peer(id)
            .compact(joint, Bytes::from_static(b"state"))
            .expect("applied");
        net.process_ready(NodeId(id));
        assert_eq!(
            net.peer(id).storage().snapshot_meta().configuration,
            expected_joint,
            "peer {id}'s snapshot is as of the joint entry"
        );
    }
    let final_configuration = stable(&[1, 2, 3, 4], &[]);
    for id in 1..=4 {
        net.restart(id, config);
        assert_eq!(
            net.peer(id).configuration(),
            &final_configuration,
            "peer {id}: C_new is in the log after the snapshot"
        );
    }
    net.tick_all(40);
    let leader = leader_among(&mut net, 1..=4).expect("re-elected");
    // A learner cut off while the log is compacted past it receives a snapshot carrying it.
    net.cut.insert(NodeId(5));
    change(&mut net, leader, ConfChange::AddLearner(NodeId(5)));
    net.settle();
    propose(&mut net, leader, b"x");
    net.settle();
    net.tick_all(2);
    let applied = net.peer(leader).status().applied;
    net.peer(leader)
        .compact(applied, Bytes::from_static(b"state"))
        .expect("applied");
    net.process_ready(NodeId(leader));
    net.cut.clear();
    net.tick_all(5);
    let with_learner = stable(&[1, 2, 3, 4], &[5]);
    assert!(net.peer(5).counters().snapshots_installed >= 1);
    assert_eq!(net.peer(5).configuration(), &with_learner);
    assert_eq!(
        net.peer(5).storage().snapshot_meta().configuration,
        with_learner
    );
    net.restart(5, config);
    assert_eq!(net.peer(5).configuration(), &with_learner);
}

#[test]
fn a_voter_that_is_a_quorum_alone_leads_only_once_its_vote_is_durable() {
    // A single voter wins the moment its own vote counts; were that before the vote is
    // written, a crash could bring it back in the previous term, to be elected in this one
    // again and send the learner other entries under the same ids.
    let mut voter = Raft::new(config(1), MemStorage::new(stable(&[1], &[2]))).expect("valid");
    while voter.role() != Role::Candidate {
        voter.tick();
    }
    let ready = voter.ready();
    assert!(ready.messages.is_empty(), "nobody else to ask");
    let persist = ready.persist.expect("the term and vote to write");
    assert_eq!(
        persist.hard_state.map(|state| (state.term, state.vote)),
        Some((voter.term(), Some(NodeId(1))))
    );
    assert_eq!(
        voter.role(),
        Role::Candidate,
        "not leader before the vote is durable"
    );
    let persist_id = persist.id;
    voter.storage_mut().persist(persist);
    voter.on_persisted(persist_id);
    assert_eq!(voter.role(), Role::Leader);
    let ready = voter.ready();
    assert!(ready.messages.iter().any(|message| {
        message.to == NodeId(2) && matches!(message.body, MessageBody::Append { .. })
    }));
}

#[test]
fn a_promoted_peer_that_knows_no_configuration_yet_still_votes() {
    // Thesis §4.1: a voter may be needed before it has seen the configuration that made it
    // one. Here 2 answers heartbeats but loses every append (the default lag admits its
    // promotion, and it answers, so the new voters have a majority that answers): the joint
    // configuration needs its vote, and it has an empty log that names nobody.
    let mut net = Net::with_members(2, 1, config);
    net.elect(1);
    net.drop_if = Some(Box::new(|message: &Message| {
        message.to == NodeId(2)
            && matches!(
                message.body,
                MessageBody::Append { .. } | MessageBody::InstallSnapshot { .. }
            )
    }));
    change(&mut net, 1, ConfChange::AddLearner(NodeId(2)));
    net.settle();
    net.tick_all(2);
    change(&mut net, 1, ConfChange::Promote(NodeId(2)));
    net.cut.insert(NodeId(2));
    net.drop_if = None;
    net.settle();
    net.restart(1, config);
    assert!(net.peer(1).configuration().is_joint());
    assert_eq!(net.peer(2).configuration(), &Configuration::default());
    net.cut.clear();
    net.tick_all(60);
    assert_eq!(net.peer(1).role(), Role::Leader);
    assert_eq!(net.peer(2).configuration(), &stable(&[1, 2], &[]));
}
