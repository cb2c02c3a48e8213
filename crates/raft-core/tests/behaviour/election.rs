//! Elections and leadership: who campaigns, who is granted a vote and when, when a leader
//! steps down, and handing leadership over (§5.2, §5.4.1, thesis §3.10, §4.2.3).

use bytes::Bytes;
use raft_core::{
    Configuration, Index, LogId, MemStorage, MessageBody, NodeId, ProposeError, Raft, Role, Term,
};

use crate::common::{config, Net};
use crate::msg;

#[test]
fn single_peer_elects_itself_and_commits_after_its_write_is_durable() {
    let mut net = Net::new(1);
    net.elect(1);
    let id = net
        .peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader");
    assert_eq!(id.index, Index(2), "index 1 is the leader's no-op");
    let ready = net.peer(1).ready();
    let persist = ready.persist.expect("entry to persist");
    assert_eq!(
        net.peer(1).commit_index(),
        Index(1),
        "not committed before durable"
    );
    let persist_id = persist.id;
    net.peer(1).storage_mut().persist(persist);
    net.peer(1).on_persisted(persist_id);
    assert_eq!(net.peer(1).commit_index(), Index(2));
}

#[test]
fn three_peers_elect_one_leader_and_replicate() {
    let mut net = Net::new(3);
    net.elect(1);
    assert_eq!(net.peer(2).leader(), Some(NodeId(1)));
    assert_eq!(net.peer(3).role(), Role::Follower);
    for value in [b"a", b"b", b"c"] {
        net.peer(1)
            .propose(Bytes::from_static(value))
            .expect("leader");
    }
    net.settle();
    net.tick_all(3);
    for id in 1..=3 {
        assert_eq!(net.applied_data(id), vec!["a", "b", "c"], "peer {id}");
    }
}

#[test]
fn proposals_on_a_follower_name_the_leader() {
    let mut net = Net::new(3);
    net.elect(1);
    let error = net.peer(2).propose(Bytes::from_static(b"x")).unwrap_err();
    assert_eq!(
        error,
        ProposeError::NotLeader {
            leader: Some(NodeId(1))
        }
    );
}

#[test]
fn vote_response_waits_for_the_vote_to_be_durable() {
    let storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
    let mut raft = Raft::new(config(2), storage).expect("valid");
    raft.step(msg(
        1,
        2,
        1,
        MessageBody::VoteRequest {
            last_log: LogId::default(),
            pre_vote: false,
            leadership_transfer: false,
        },
    ))
    .expect("accepted");
    let ready = raft.ready();
    assert!(ready.messages.is_empty(), "vote sent before it was durable");
    let persist = ready.persist.expect("vote to persist");
    assert_eq!(persist.hard_state.map(|hs| hs.vote), Some(Some(NodeId(1))));
    raft.on_persisted(persist.id);
    let ready = raft.ready();
    assert_eq!(ready.messages.len(), 1);
    assert_eq!(
        ready.messages[0].body,
        MessageBody::VoteResponse {
            granted: true,
            pre_vote: false
        }
    );
}

#[test]
fn vote_is_refused_to_a_candidate_with_an_older_log() {
    let mut net = Net::three_peers_with_one_entry();
    // Peer 3 holds the entry. Cut off from the leader until its leader lease has long passed
    // (so it does not ignore the request as a disruption), it is asked for its vote in a later
    // term by a candidate claiming an empty log: it takes the term, and refuses, because the
    // candidate's log is not at least as up to date as its own (§5.4.1).
    net.cut.insert(NodeId(3));
    net.tick_all(60);
    assert!(
        net.peer(3).term() < Term(9),
        "the cut-off peer never reached term 9 itself"
    );
    net.peer(3)
        .step(msg(
            2,
            3,
            9,
            MessageBody::VoteRequest {
                last_log: LogId::default(),
                pre_vote: false,
                leadership_transfer: false,
            },
        ))
        .expect("a well-formed vote request is taken");
    assert_eq!(
        net.peer(3).term(),
        Term(9),
        "a request of a later term moves the peer to it"
    );
    let ready = net.peer(3).ready();
    let persist = ready.persist.expect("the new term is written");
    assert_eq!(
        persist
            .hard_state
            .map(|hard_state| (hard_state.term, hard_state.vote)),
        Some((Term(9), None)),
        "the vote is not given"
    );
    net.peer(3).on_persisted(persist.id);
    let answers: Vec<_> = net
        .peer(3)
        .ready()
        .messages
        .into_iter()
        .filter(|message| message.to == NodeId(2))
        .map(|message| message.body)
        .collect();
    assert_eq!(
        answers,
        [MessageBody::VoteResponse {
            granted: false,
            pre_vote: false
        }],
        "the candidate hears a refusal"
    );
}

#[test]
fn partitioned_peer_rejoining_does_not_depose_the_leader() {
    let mut net = Net::new(3);
    net.elect(1);
    let term = net.peer(1).term();
    net.cut.insert(NodeId(3));
    net.tick_all(100);
    assert_eq!(
        net.peer(3).term(),
        term,
        "pre-vote keeps the isolated peer's term"
    );
    net.cut.clear();
    net.tick_all(10);
    assert!(net.peer(1).state().1);
    assert_eq!(net.peer(1).term(), term);
}

#[test]
fn leader_without_quorum_steps_down_within_an_election_timeout() {
    let mut net = Net::new(3);
    net.elect(1);
    net.cut.insert(NodeId(1));
    net.tick_all(2 * 10 + 1);
    assert_eq!(net.peer(1).role(), Role::Follower);
}

#[test]
fn leadership_transfer_hands_over_to_the_target() {
    let mut net = Net::three_peers_with_one_entry();
    net.peer(1).transfer_leader(NodeId(3)).expect("transfer");
    net.settle();
    assert!(net.peer(3).state().1, "target is leader");
    assert_eq!(net.peer(1).role(), Role::Follower);
}

#[test]
fn leadership_transfer_to_an_unreachable_peer_is_abandoned() {
    let mut net = Net::new(3);
    net.elect(1);
    net.cut.insert(NodeId(3));
    net.peer(1).transfer_leader(NodeId(3)).expect("transfer");
    assert_eq!(
        net.peer(1).propose(Bytes::from_static(b"x")),
        Err(ProposeError::TransferInProgress)
    );
    net.tick_all(11);
    assert!(net.peer(1).state().1);
    net.peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("transfer abandoned");
}

#[test]
fn a_stale_campaign_is_refused_with_the_current_term() {
    // Figure 2: the answer carries currentTerm, so a candidate that fell behind catches up;
    // without it, a peer whose term others keep raising would drop its campaigns for good.
    let storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
    let mut raft = Raft::new(config(2), storage).expect("valid");
    let vote_request = |term: u64| {
        msg(
            3,
            2,
            term,
            MessageBody::VoteRequest {
                last_log: LogId::default(),
                pre_vote: false,
                leadership_transfer: false,
            },
        )
    };
    raft.step(vote_request(5)).expect("a newer term");
    let ready = raft.ready();
    if let Some(persist) = ready.persist {
        raft.on_persisted(persist.id);
    }
    let _ = raft.ready();
    assert!(raft.step(vote_request(3)).is_err(), "stale");
    let ready = raft.ready();
    assert_eq!(
        ready.messages,
        vec![msg(
            2,
            3,
            5,
            MessageBody::VoteResponse {
                granted: false,
                pre_vote: false
            }
        )]
    );
}
