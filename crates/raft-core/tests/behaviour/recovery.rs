//! Protocol-aware recovery (raft-core/src/recovery.rs): a peer that restarts having lost
//! writes it reported durable. Each danger the recovery guards against has a scenario run
//! twice on the same lost state: with `possibly_lost_writes = false` (the loss unnoticed) it
//! breaks Raft's safety, which the test shows; with `true` it does not.

use bytes::Bytes;
use raft_core::{Config, HardState, Index, LogId, MessageBody, NodeId, RecoveryPhase, Role, Term};

use crate::common::{classic_config, config, Net};
use crate::msg;

/// No pre-vote and no CheckQuorum: a stale leader stays leader until told otherwise, and a
/// campaign reaches voters at once; every follower is sent every entry. Each scenario is
/// short and exact.
fn quiet_config(id: u64) -> Config {
    let mut config = classic_config(id);
    config.pre_vote = false;
    config.check_quorum = false;
    config
}

/// Ticks peer `id` alone until its election timer fires, then delivers everything.
fn campaign(net: &mut Net, id: u64) {
    net.settle();
    for _ in 0..100 {
        net.peer(id).tick();
        net.process_ready(NodeId(id));
        if !net.queue.is_empty() {
            break;
        }
    }
    net.settle();
}

/// Every peer that believes itself leader, with its term.
fn leaders(net: &Net) -> Vec<(u64, Term)> {
    net.peers
        .iter()
        .filter(|(_, peer)| peer.raft.role() == Role::Leader)
        .map(|(id, peer)| (id.0, peer.raft.term()))
        .collect()
}

/// Heals every cut and ticks until one leader leads every other peer and none recovers.
fn converge(net: &mut Net) -> u64 {
    net.cut.clear();
    for _ in 0..300 {
        net.tick_all(1);
        let leaders = leaders(net);
        if let [(leader, term)] = leaders[..] {
            let all_follow = net.peers.values().all(|peer| {
                peer.raft.term() == term
                    && peer.raft.leader() == Some(NodeId(leader))
                    && !peer.raft.is_recovering()
            });
            if all_follow {
                return leader;
            }
        }
    }
    let states: Vec<_> = net.peers.values().map(|peer| peer.raft.status()).collect();
    panic!("no single leader followed by every peer: {states:#?}");
}

/// Danger 1, a vote from a log that lost committed entries. Entry x commits on peers 1 and 2
/// (3 is cut off); peer 2 loses it; with 1 down, 3 asks 2 for its vote. Returns the net.
fn lost_committed_entry(recover: bool) -> Net {
    let mut net = Net::with_config(3, quiet_config);
    net.elect(1);
    net.cut.insert(NodeId(3));
    net.peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader");
    net.settle();
    assert_eq!(net.commit(1), Index(2), "x committed on 1 and 2");
    net.restart_with_lost_writes(2, 1, None, recover, quiet_config);
    net.cut = [NodeId(1)].into();
    campaign(&mut net, 3);
    net
}

#[test]
fn danger_1_a_voter_that_lost_committed_entries_elects_no_leader_without_them() {
    // Unnoticed: 2's log (1.1) is as up to date as 3's, so it elects 3, whose no-op then
    // replaces the committed x; 1 stops when asked to overwrite it.
    let mut net = lost_committed_entry(false);
    assert_eq!(leaders(&net), [(1, Term(1)), (3, Term(2))]);
    net.cut.clear();
    net.tick_all(3);
    assert!(
        net.peer(1).safety_violation().is_some(),
        "the committed x was to be overwritten"
    );

    // Recovering: 2 waits for 1's answer and grants nothing meanwhile.
    let mut net = lost_committed_entry(true);
    assert_eq!(leaders(&net), [(1, Term(1))], "3 cannot win without 2");
    assert_eq!(net.peer(2).term(), Term(1), "2 did not even take 3's term");
    let status = net.peer(2).status().recovery.expect("recovering");
    assert_eq!(status.phase, RecoveryPhase::Probing);
    assert_eq!(status.answered, [NodeId(3)]);
    assert_eq!(status.awaiting, [NodeId(1)]);
    converge(&mut net);
    for id in 1..=3 {
        assert_eq!(net.peer(id).safety_violation(), None);
        assert_eq!(
            net.peer(id).entries(Index(2), Index(3)).expect("held")[0].data,
            Bytes::from_static(b"x"),
            "peer {id} holds the committed x"
        );
    }
    assert_eq!(net.peer(2).counters().recoveries_finished, 1);
}

/// Danger 2, a lost vote. Peer 1 wins term 1 with 2's vote (3 is cut off, 2 never gets the
/// no-op); 2 loses that vote; with 1 cut off, 3 campaigns in term 1.
fn lost_vote(recover: bool) -> Net {
    let mut net = Net::with_config(3, quiet_config);
    net.cut.insert(NodeId(3));
    net.drop_if = Some(Box::new(|message| {
        message.to == NodeId(2) && matches!(message.body, MessageBody::Append { .. })
    }));
    net.elect(1);
    net.drop_if = None;
    assert_eq!(net.peer(2).hard_state().vote, Some(NodeId(1)));
    net.restart_with_lost_writes(2, 0, Some(HardState::default()), recover, quiet_config);
    net.cut = [NodeId(1)].into();
    campaign(&mut net, 3);
    net
}

#[test]
fn danger_2_a_voter_that_lost_its_vote_does_not_vote_again_in_that_term() {
    // Unnoticed: 2 votes again in term 1, and term 1 has two leaders.
    let net = lost_vote(false);
    assert_eq!(leaders(&net), [(1, Term(1)), (3, Term(1))]);

    // Recovering: no vote until both answered; then term 1 is at most T_all, refused.
    let mut net = lost_vote(true);
    assert_eq!(leaders(&net), [(1, Term(1))]);
    net.cut.clear();
    // 2 probes 1 again and hears term 1; it gets no entry yet, so it is still catching up.
    net.drop_if = Some(Box::new(|message| {
        message.to == NodeId(2) && matches!(message.body, MessageBody::Append { .. })
    }));
    net.tick_all(2);
    let status = net.peer(2).status().recovery.expect("still recovering");
    assert_eq!(status.phase, RecoveryPhase::CatchingUp);
    assert_eq!(status.term_floor, Term(1));
    assert_eq!(
        net.peer(2).hard_state().vote,
        Some(NodeId(2)),
        "abstains in 1"
    );
    net.peer(2)
        .step(msg(
            3,
            2,
            1,
            MessageBody::VoteRequest {
                last_log: LogId::default(),
                pre_vote: false,
                leadership_transfer: false,
            },
        ))
        .expect("stepped");
    net.process_ready(NodeId(2));
    let refused = net.queue.iter().any(|message| {
        message.from == NodeId(2)
            && message.body
                == MessageBody::VoteResponse {
                    granted: false,
                    pre_vote: false,
                }
    });
    assert!(refused, "no second vote in term 1: {:?}", net.queue);
    net.drop_if = None;
    converge(&mut net);
}

/// Danger 3, a regressed term. Term 1: leader 1, then cut off; 2 wins term 2 with 3's vote
/// and commits its no-op 2.2 with 3's acknowledgement; 3 loses both (back to term 1, vote
/// 1); 2 is cut off and the stale leader 1 proposes y.
fn regressed_term(recover: bool) -> Net {
    let mut net = Net::with_config(3, quiet_config);
    net.elect(1);
    net.cut = [NodeId(1)].into();
    campaign(&mut net, 2);
    assert_eq!(leaders(&net), [(1, Term(1)), (2, Term(2))]);
    assert_eq!(net.commit(2), Index(2), "2.2 committed on 2 and 3");
    let older = HardState {
        term: Term(1),
        vote: Some(NodeId(1)),
        commit: Index(1),
    };
    net.restart_with_lost_writes(3, 1, Some(older), recover, quiet_config);
    net.cut = [NodeId(2)].into();
    net.settle();
    net.peer(1)
        .propose(Bytes::from_static(b"y"))
        .expect("still leader");
    net.settle();
    net
}

#[test]
fn danger_3_a_voter_whose_term_regressed_does_not_help_a_stale_leader_commit() {
    // Unnoticed: 3 acknowledges the stale leader, which commits y at index 2, where 2 has
    // committed 2.2.
    let mut net = regressed_term(false);
    assert_eq!(net.commit(1), Index(2));
    assert_eq!(net.peer(1).term_at(Index(2)), Ok(Term(1)));
    assert_eq!(net.commit(2), Index(2));
    assert_eq!(
        net.peer(2).term_at(Index(2)),
        Ok(Term(2)),
        "two commits at 2"
    );

    // Recovering: 3 answers no leader until 2 answered too, then takes term 2.
    let mut net = regressed_term(true);
    assert_eq!(net.commit(1), Index(1), "y not committed");
    assert_eq!(net.peer(3).last_index(), Index(1), "3 took no entry");
    let leader = converge(&mut net);
    assert_eq!(leader, 2, "only 2 can win: 1's log is behind 2.2");
    assert_eq!(net.peer(3).counters().recoveries_started, 1);
    for id in 1..=3 {
        assert_eq!(net.peer(id).term_at(Index(2)), Ok(Term(2)));
        assert!(!net.applied_data(id).contains(&Bytes::from_static(b"y")));
    }
}

#[test]
fn every_peer_restarting_with_lost_writes_still_elects_the_best_log_and_commits() {
    // A power cut of the whole cluster: each peer suspects its own storage. Peer 3 really
    // lost its last entry; 1 and 2 lost nothing. Each answers the others' probes while
    // recovering, the best logs end their recovery and campaign, and the others grant them
    // because their logs are at least as up to date as every answer.
    let mut net = Net::new(3);
    net.elect(1);
    for command in [b"a", b"b"] {
        net.peer(1)
            .propose(Bytes::from_static(command))
            .expect("leader");
    }
    net.settle();
    for id in 1..=3 {
        let lost = if id == 3 { 1 } else { 0 };
        net.restart_with_lost_writes(id, lost, None, true, config);
        assert!(net.peer(id).is_recovering());
    }
    let leader = converge(&mut net);
    assert_ne!(leader, 3, "3's log is behind");
    net.peer(leader)
        .propose(Bytes::from_static(b"c"))
        .expect("leader");
    net.tick_all(5);
    for id in 1..=3 {
        // A restarted peer applies its log from the start: 3 got b back from the leader.
        assert_eq!(
            net.applied_data(id),
            [b"a", b"b", b"c"].map(|data| Bytes::from_static(data)),
            "peer {id}"
        );
        assert_eq!(net.peer(id).counters().recoveries_finished, 1);
    }
}

#[test]
fn learners_and_lone_voters_do_not_recover() {
    // A single voter has nobody to ask: it cannot be protected (docs/design.md).
    let mut net = Net::new(1);
    net.elect(1);
    net.restart_with_lost_writes(1, 0, None, true, config);
    assert!(!net.peer(1).is_recovering());
    // A learner's votes and acknowledgements never count.
    let mut net = Net::with_members(3, 2, config);
    net.elect(1);
    net.peer(1)
        .propose_conf_change(raft_core::ConfChange::AddLearner(NodeId(3)))
        .expect("leader");
    net.settle();
    assert!(net.peer(3).configuration().is_learner(NodeId(3)));
    net.restart_with_lost_writes(3, 0, None, true, config);
    assert!(!net.peer(3).is_recovering());
    assert_eq!(net.peer(3).counters().recoveries_started, 0);
}

#[test]
fn five_voters_end_probing_on_three_answers_of_the_other_four() {
    let mut net = Net::new(5);
    net.elect(1);
    net.cut = [NodeId(4), NodeId(5)].into();
    net.restart_with_lost_writes(2, 0, None, true, config);
    net.settle();
    let status = net.peer(2).status().recovery.expect("recovering");
    assert_eq!(status.phase, RecoveryPhase::Probing, "two answers of four");
    net.cut = [NodeId(5)].into();
    net.tick_all(2);
    let status = net.peer(2).status().recovery.expect("recovering");
    assert_eq!(status.phase, RecoveryPhase::CatchingUp, "three of four");
    assert_eq!(status.awaiting, [NodeId(5)], "still probing 5");
    assert_eq!(status.log_floor, LogId::new(Term(1), Index(1)));
    // Catching up: it follows the leader and its acknowledgements count.
    net.peer(1)
        .propose(Bytes::from_static(b"z"))
        .expect("leader");
    net.tick_all(4);
    assert_eq!(net.peer(2).last_index(), Index(2));
    assert_eq!(net.commit(2), Index(2));
    assert!(net.peer(2).is_recovering(), "5 has not answered");
    converge(&mut net);
    assert!(!net.peer(2).is_recovering());
}

#[test]
fn a_probe_changes_nothing_on_the_peer_that_answers_it() {
    let mut net = Net::three_peers_with_one_entry();
    let before = net.peer(2).status();
    let hard_before = net.peer(2).hard_state();
    net.peer(2)
        .step(msg(3, 2, 9, MessageBody::RecoveryProbe))
        .expect("answered");
    net.process_ready(NodeId(2));
    assert_eq!(net.peer(2).status(), before);
    assert_eq!(net.peer(2).hard_state(), hard_before);
    let answer = net.queue.back().expect("an answer").clone();
    assert_eq!(
        answer,
        msg(
            2,
            3,
            1,
            MessageBody::RecoveryProbeResponse {
                last_log: LogId::new(Term(1), Index(2)),
            }
        )
    );
    // An answer to a peer that is not recovering is dropped and counted.
    let ignored = net.peer(1).counters().dropped_ignored;
    let _ = net.peer(1).step(answer_to_1());
    assert_eq!(net.peer(1).counters().dropped_ignored, ignored + 1);
}

fn answer_to_1() -> raft_core::Message {
    msg(
        2,
        1,
        1,
        MessageBody::RecoveryProbeResponse {
            last_log: LogId::default(),
        },
    )
}
