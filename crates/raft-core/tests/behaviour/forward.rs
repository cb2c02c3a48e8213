//! Proposals forwarded by followers (`Raft::propose_or_forward`, raft-core/src/forward.rs):
//! where they land, how they are refused, and that no copy of a message appends twice.

use bytes::Bytes;
use raft_core::{
    Config, EntryKind, ForwardError, ForwardId, Index, LogId, Message, MessageBody, NodeId,
    Proposal, ProposeError, StepError, Term, FORWARD_ANSWER_ELECTION_TIMEOUTS,
};

use crate::common::{config, Net};

/// Three peers, peer 1 leading in term 1 with its no-op committed everywhere.
fn three_peers() -> Net {
    let mut net = Net::new(3);
    net.elect(1);
    net.settle();
    net
}

/// Forwards `data` from peer `from`, expecting it to be forwarded.
fn forward(net: &mut Net, from: u64, data: &'static [u8]) -> ForwardId {
    match net.peer(from).propose_or_forward(Bytes::from_static(data)) {
        Ok(Proposal::Forwarded(id)) => id,
        other => panic!("peer {from} should forward, got {other:?}"),
    }
}

/// Runs peer `id`'s ready and takes the messages it queued, leaving the others queued.
fn take_sent(net: &mut Net, id: u64) -> Vec<Message> {
    net.process_ready(NodeId(id));
    let mut taken = Vec::new();
    net.queue.retain(|message| {
        let from_id = message.from == NodeId(id);
        if from_id {
            taken.push(message.clone());
        }
        !from_id
    });
    taken
}

/// Steps `message` into its recipient, runs its ready, and returns the step's result.
fn deliver(net: &mut Net, message: Message) -> Result<(), StepError> {
    let to = message.to;
    let result = net.peer(to.0).step(message);
    net.process_ready(to);
    result
}

/// How many entries of the leader's log carry `data`.
fn copies_in_log(net: &mut Net, leader: u64, data: &[u8]) -> usize {
    let raft = net.peer(leader);
    let last = raft.last_index();
    raft.entries(Index(1), last.next())
        .expect("log readable")
        .iter()
        .filter(|entry| entry.kind == EntryKind::Normal && entry.data.as_ref() == data)
        .count()
}

#[test]
fn a_forwarded_proposal_is_applied_everywhere_and_its_place_reported_to_the_follower() {
    let mut net = three_peers();
    let id = forward(&mut net, 2, b"x");
    net.settle();
    let placed = LogId::new(Term(1), Index(2));
    assert_eq!(net.peers[&NodeId(2)].forwarded, vec![(id, Ok(placed))]);
    net.tick_all(1);
    for peer in 1..=3 {
        assert_eq!(net.applied_data(peer), vec![Bytes::from_static(b"x")]);
        let applied = &net.peers[&NodeId(peer)].applied;
        assert_eq!(applied.last().map(|entry| entry.id), Some(placed));
    }
    assert_eq!(net.peer(1).counters().forwarded_proposals_received, 1);
}

#[test]
fn the_leader_places_at_once_and_a_peer_without_a_leader_refuses() {
    let mut net = Net::new(3);
    assert_eq!(
        net.peer(2).propose_or_forward(Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader { leader: None })
    );
    net.elect(1);
    assert_eq!(
        net.peer(1).propose_or_forward(Bytes::from_static(b"x")),
        Ok(Proposal::Placed(LogId::new(Term(1), Index(2))))
    );
    // `propose` itself still refuses on a follower.
    assert_eq!(
        net.peer(2).propose(Bytes::from_static(b"y")),
        Err(ProposeError::NotLeader {
            leader: Some(NodeId(1))
        })
    );
}

#[test]
fn the_forwards_of_one_round_travel_in_one_message_up_to_the_batch_limit() {
    let mut net = Net::with_config(3, |id| Config {
        forward_batch_max: 2,
        ..config(id)
    });
    net.elect(1);
    net.settle();
    for data in [b"a", b"b", b"c"] {
        forward(&mut net, 2, data);
    }
    let sent = take_sent(&mut net, 2);
    let batches: Vec<(u64, usize)> = sent
        .iter()
        .map(|message| match &message.body {
            MessageBody::ForwardProposal {
                first_id,
                proposals,
                ..
            } => (*first_id, proposals.len()),
            other => panic!("only forwards expected, got {other:?}"),
        })
        .collect();
    assert_eq!(batches, vec![(1, 2), (3, 1)]);
    assert!(sent.iter().all(|message| message.to == NodeId(1)));
}

#[test]
fn a_duplicated_forward_is_appended_once_and_answered_once() {
    let mut net = three_peers();
    let id = forward(&mut net, 2, b"once");
    let sent = take_sent(&mut net, 2);
    assert_eq!(sent.len(), 1);
    let message = sent[0].clone();
    assert_eq!(deliver(&mut net, message.clone()), Ok(()));
    let answers: Vec<Message> = take_sent(&mut net, 1)
        .into_iter()
        .filter(|message| matches!(message.body, MessageBody::ForwardProposalResponse { .. }))
        .collect();
    assert_eq!(answers.len(), 1);
    assert_eq!(
        deliver(&mut net, message),
        Err(StepError::Ignored(
            "forwarded proposals: duplicate or late batch"
        ))
    );
    let again = take_sent(&mut net, 1)
        .into_iter()
        .filter(|message| matches!(message.body, MessageBody::ForwardProposalResponse { .. }))
        .count();
    assert_eq!(again, 0, "a duplicate gets no answer");
    assert_eq!(copies_in_log(&mut net, 1, b"once"), 1);
    // The answer, duplicated too, is reported once.
    assert_eq!(deliver(&mut net, answers[0].clone()), Ok(()));
    assert_eq!(deliver(&mut net, answers[0].clone()), Ok(()));
    net.settle();
    assert_eq!(
        net.peers[&NodeId(2)].forwarded,
        vec![(id, Ok(LogId::new(Term(1), Index(2))))]
    );
}

#[test]
fn a_batch_overtaken_by_a_later_one_is_dropped_and_given_up_as_unanswered() {
    let mut net = three_peers();
    let early = forward(&mut net, 2, b"early");
    let first = take_sent(&mut net, 2);
    let late = forward(&mut net, 2, b"late");
    let second = take_sent(&mut net, 2);
    assert_eq!(deliver(&mut net, second[0].clone()), Ok(()));
    assert_eq!(
        deliver(&mut net, first[0].clone()),
        Err(StepError::Ignored(
            "forwarded proposals: duplicate or late batch"
        ))
    );
    net.settle();
    assert_eq!(copies_in_log(&mut net, 1, b"early"), 0);
    assert_eq!(
        net.peers[&NodeId(2)].forwarded,
        vec![(late, Ok(LogId::new(Term(1), Index(2))))]
    );
    // The dropped batch's answer never comes: the follower gives up on it after its wait.
    net.tick_all(10 * FORWARD_ANSWER_ELECTION_TIMEOUTS);
    assert_eq!(
        net.peers[&NodeId(2)].forwarded[1..],
        [(early, Err(ForwardError::Unanswered))]
    );
    assert_eq!(copies_in_log(&mut net, 1, b"early"), 0);
}

#[test]
fn a_forward_of_an_older_term_is_never_appended_by_a_later_leader() {
    let mut net = three_peers();
    let id = forward(&mut net, 2, b"stale");
    let sent = take_sent(&mut net, 2);
    // Peer 3 takes over in term 2 before the forward arrives anywhere.
    net.peer(1).transfer_leader(NodeId(3)).expect("leader");
    net.settle();
    assert_eq!(net.peer(3).state(), (Term(2), true));
    // Peer 2 followed the new leader: the forward to the old one is unanswered.
    assert_eq!(
        net.peers[&NodeId(2)].forwarded,
        vec![(id, Err(ForwardError::Unanswered))]
    );
    let mut to_new_leader = sent[0].clone();
    to_new_leader.to = NodeId(3);
    assert_eq!(
        deliver(&mut net, to_new_leader),
        Err(StepError::StaleTerm(Term(1)))
    );
    assert_eq!(
        deliver(&mut net, sent[0].clone()),
        Err(StepError::StaleTerm(Term(1)))
    );
    net.settle();
    for peer in 1..=3 {
        assert_eq!(copies_in_log(&mut net, peer, b"stale"), 0);
    }
}

#[test]
fn forwards_not_yet_sent_when_the_leader_changes_are_refused_as_not_sent() {
    let mut net = three_peers();
    let id = forward(&mut net, 2, b"unsent");
    // A leader of term 2 is heard of before peer 2's next ready: the forward never left.
    let heartbeat = Message {
        from: NodeId(3),
        to: NodeId(2),
        term: Term(2),
        body: MessageBody::Heartbeat {
            commit: Index(1),
            read_round: 0,
        },
    };
    assert_eq!(net.peer(2).step(heartbeat), Ok(()));
    let sent = take_sent(&mut net, 2);
    assert!(sent
        .iter()
        .all(|message| !matches!(message.body, MessageBody::ForwardProposal { .. })));
    assert_eq!(
        net.peers[&NodeId(2)].forwarded,
        vec![(
            id,
            Err(ForwardError::Refused(ProposeError::NotLeader {
                leader: Some(NodeId(3))
            }))
        )]
    );
}

#[test]
fn the_leader_refuses_each_forward_as_it_refuses_a_proposal() {
    // Peer 1 leads with smaller limits than its followers know of.
    let mut net = Net::with_config(3, |id| {
        let mut config = config(id);
        if id == 1 {
            config.proposal_bytes_max = 4;
            config.uncommitted_bytes_max = 64;
        }
        config
    });
    net.elect(1);
    net.settle();
    let too_large = forward(&mut net, 2, b"too large");
    let fits = forward(&mut net, 2, b"ok");
    let sent = take_sent(&mut net, 2);
    assert_eq!(deliver(&mut net, sent[0].clone()), Ok(()));
    net.settle();
    let placed = LogId::new(Term(1), Index(2));
    assert_eq!(
        net.peers[&NodeId(2)].forwarded,
        vec![
            (
                too_large,
                Err(ForwardError::Refused(ProposeError::TooLarge {
                    size: 9,
                    limit: 4
                }))
            ),
            (fits, Ok(placed)),
        ]
    );

    // Busy: the leader holds too many uncommitted bytes (peers 2 and 3 do not answer).
    net.cut.extend([NodeId(2), NodeId(3)]);
    while net.peer(1).propose(Bytes::from_static(b"fill")).is_ok() {}
    net.cut.clear();
    net.queue.clear();
    let busy = forward(&mut net, 3, b"busy");
    let sent = take_sent(&mut net, 3);
    let to_leader: Vec<Message> = sent
        .into_iter()
        .filter(|message| matches!(message.body, MessageBody::ForwardProposal { .. }))
        .collect();
    assert_eq!(deliver(&mut net, to_leader[0].clone()), Ok(()));
    let answer = take_sent(&mut net, 1)
        .into_iter()
        .find(|message| matches!(message.body, MessageBody::ForwardProposalResponse { .. }))
        .expect("an answer");
    assert_eq!(deliver(&mut net, answer), Ok(()));
    assert_eq!(
        net.peers[&NodeId(3)].forwarded,
        vec![(busy, Err(ForwardError::Refused(ProposeError::Busy)))]
    );
    assert_eq!(copies_in_log(&mut net, 1, b"busy"), 0);
}

#[test]
fn a_leader_handing_over_refuses_forwards_and_one_that_stepped_down_says_so() {
    let mut net = three_peers();
    let during_transfer = forward(&mut net, 2, b"t");
    let sent = take_sent(&mut net, 2);
    // Peer 3 is caught up, so the transfer's TimeoutNow is queued at once; keep it back.
    net.peer(1).transfer_leader(NodeId(3)).expect("leader");
    let held_back = take_sent(&mut net, 1);
    assert!(held_back
        .iter()
        .any(|message| message.body == MessageBody::TimeoutNow));
    assert_eq!(deliver(&mut net, sent[0].clone()), Ok(()));
    let answer = take_sent(&mut net, 1)
        .into_iter()
        .find(|message| matches!(message.body, MessageBody::ForwardProposalResponse { .. }))
        .expect("an answer");
    assert_eq!(deliver(&mut net, answer), Ok(()));
    assert_eq!(
        net.peers[&NodeId(2)].forwarded,
        vec![(
            during_transfer,
            Err(ForwardError::Refused(ProposeError::TransferInProgress))
        )]
    );

    // The transfer is abandoned; then peer 1 loses its quorum and steps down in term 1.
    let stepped_down = forward(&mut net, 2, b"s");
    let sent = take_sent(&mut net, 2);
    for _ in 0..2 * config(1).election_ticks {
        net.peer(1).tick();
        take_sent(&mut net, 1);
    }
    assert_eq!(net.peer(1).state(), (Term(1), false));
    assert_eq!(deliver(&mut net, sent[0].clone()), Ok(()));
    let answer = take_sent(&mut net, 1)
        .into_iter()
        .find(|message| matches!(message.body, MessageBody::ForwardProposalResponse { .. }))
        .expect("an answer");
    assert_eq!(deliver(&mut net, answer), Ok(()));
    assert_eq!(
        net.peers[&NodeId(2)].forwarded[1..],
        [(
            stepped_down,
            Err(ForwardError::Refused(ProposeError::NotLeader {
                leader: None
            }))
        )]
    );
    assert_eq!(copies_in_log(&mut net, 1, b"s"), 0);
}

#[test]
fn a_leader_that_restarted_in_its_term_answers_no_forward() {
    let mut net = three_peers();
    forward(&mut net, 2, b"r");
    let sent = take_sent(&mut net, 2);
    assert_eq!(deliver(&mut net, sent[0].clone()), Ok(()));
    net.queue.clear();
    // A copy arrives after the leader restarted (still in term 1, as a follower): it cannot
    // tell whether it appended the batch before, so it neither appends nor refuses it.
    net.restart(1, config);
    assert_eq!(
        deliver(&mut net, sent[0].clone()),
        Err(StepError::Ignored(
            "forwarded proposals to a peer that did not lead this term"
        ))
    );
    assert!(take_sent(&mut net, 1).is_empty());
    assert_eq!(copies_in_log(&mut net, 1, b"r"), 1);
}

#[test]
fn a_follower_holds_a_bounded_number_of_forwards() {
    let mut net = Net::with_config(3, |id| Config {
        forwards_pending_max: 2,
        ..config(id)
    });
    net.elect(1);
    net.settle();
    forward(&mut net, 2, b"a");
    forward(&mut net, 2, b"b");
    assert_eq!(
        net.peer(2).propose_or_forward(Bytes::from_static(b"c")),
        Err(ProposeError::Busy)
    );
    // Sent but unanswered still counts; answered frees the room.
    take_sent(&mut net, 2);
    assert_eq!(
        net.peer(2).propose_or_forward(Bytes::from_static(b"c")),
        Err(ProposeError::Busy)
    );
    net.tick_all(10 * FORWARD_ANSWER_ELECTION_TIMEOUTS);
    forward(&mut net, 2, b"c");
}

#[test]
fn malformed_batches_are_dropped_as_invalid() {
    let mut net = three_peers();
    let batch = |first_id: u64, count: usize| Message {
        from: NodeId(2),
        to: NodeId(1),
        term: Term(1),
        body: MessageBody::ForwardProposal {
            session: 1,
            first_id,
            proposals: vec![Bytes::from_static(b"m"); count],
        },
    };
    for message in [
        batch(1, 0),
        batch(0, 1),
        batch(u64::MAX, 2),
        batch(1, config(1).forward_batch_max + 1),
    ] {
        assert!(matches!(
            deliver(&mut net, message),
            Err(StepError::Invalid(_))
        ));
    }
    assert_eq!(copies_in_log(&mut net, 1, b"m"), 0);
}

#[test]
fn a_spare_follower_that_forwards_is_sent_its_entry_and_the_commit_at_once() {
    // Flushed only every 1000 ticks, peer 3 (the spare: peer 2 makes the quorum) would see a
    // write it forwarded, and so answer its client, only at the next flush.
    let mut net = Net::with_config(3, |id| {
        let mut config = config(id);
        config.spare_flush_ticks = 1000;
        config
    });
    net.elect(1);
    net.settle();
    net.peer(1)
        .propose(Bytes::from_static(b"from the leader"))
        .expect("the leader takes it");
    net.settle();
    assert!(
        !net.applied_data(3)
            .contains(&Bytes::from_static(b"from the leader")),
        "peer 3 is a spare: the leader's own write waits for the flush"
    );

    forward(&mut net, 3, b"x");
    net.settle();
    assert!(
        net.applied_data(3).contains(&Bytes::from_static(b"x")),
        "a follower serving clients is no spare: it applied its forwarded write without a tick"
    );

    // It stays prompt while it serves clients, and becomes a spare again once it stops.
    net.tick_all(25);
    net.settle();
    net.peer(1)
        .propose(Bytes::from_static(b"later"))
        .expect("the leader takes it");
    net.settle();
    assert!(
        !net.applied_data(3).contains(&Bytes::from_static(b"later")),
        "20 ticks without client traffic: a spare again"
    );
}
