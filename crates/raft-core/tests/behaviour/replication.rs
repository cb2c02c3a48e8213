//! Log replication and commitment: appends before the leader's own write, acknowledgements
//! after the follower's, commit notices, Figure 8, and catching up a divergent follower (§5.3, §5.4).

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, MemStorage, MessageBody, NodeId, Raft, Role,
    Term,
};

use crate::common::{classic_config, config, Net};
use crate::{msg, propose_each_on_leader, three_led_by_1};

#[test]
fn a_commit_index_that_advanced_alone_asks_for_no_write_and_rides_with_the_next_one() {
    let mut net = Net::new(1);
    net.elect(1);
    net.peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader");
    let persist = net.peer(1).ready().persist.expect("entry to persist");
    let persist_id = persist.id;
    net.peer(1).storage_mut().persist(persist);
    net.peer(1).on_persisted(persist_id);
    assert_eq!(
        net.peer(1).commit_index(),
        Index(2),
        "committed once durable"
    );
    let ready = net.peer(1).ready();
    assert_eq!(
        ready.persist, None,
        "a new commit index alone is not written"
    );
    assert!(!net.peer(1).has_ready(), "nothing is left to hand out");
    net.peer(1)
        .propose(Bytes::from_static(b"y"))
        .expect("leader");
    let persist = net.peer(1).ready().persist.expect("entry to persist");
    assert_eq!(persist.entries.len(), 1);
    assert_eq!(
        persist.hard_state.map(|hard_state| hard_state.commit),
        Some(Index(2)),
        "the next write carries the commit index"
    );
}

#[test]
fn a_commit_index_that_moved_reaches_followers_in_a_notice_they_do_not_answer() {
    let mut net = Net::with_config(3, classic_config);
    net.elect(1);
    net.delivered.clear();
    net.peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader");
    net.settle();
    let commit = net.commit(1);
    assert_eq!(commit, Index(2), "the no-op and the write");
    let kinds: Vec<(u64, u64, &str)> = net
        .delivered
        .iter()
        .map(|message| (message.from.0, message.to.0, message.body.kind_name()))
        .collect();
    for follower in [2, 3] {
        assert_eq!(net.commit(follower), commit, "peer {follower} learned it");
        let notices: Vec<_> = net
            .delivered
            .iter()
            .filter(|message| message.to == NodeId(follower))
            .filter_map(|message| match message.body {
                MessageBody::Commit { commit } => Some(commit),
                _ => None,
            })
            .collect();
        assert_eq!(notices, vec![commit], "peer {follower}: {kinds:?}");
    }
    // Each follower answered its append, and nothing else.
    let answers = kinds.iter().filter(|(from, _, _)| *from != 1).count();
    assert_eq!(answers, 2, "{kinds:?}");
}

#[test]
fn leader_sends_appends_before_its_own_write_and_followers_ack_after_theirs() {
    let mut net = three_led_by_1(classic_config, |_| {});
    propose_each_on_leader(&mut net, &["x"]);
    let ready = net.peer(1).ready();
    assert!(ready.persist.is_some());
    let appends: Vec<_> = ready
        .messages
        .iter()
        .filter(|m| matches!(&m.body, MessageBody::Append { entries, .. } if !entries.is_empty()))
        .collect();
    assert_eq!(
        appends.len(),
        2,
        "both followers get the entry before the leader's fsync"
    );
    let append = appends[0].clone();
    let follower = append.to;
    let raft = &mut net.peers.get_mut(&follower).expect("peer").raft;
    raft.step(append).expect("accepted");
    let ready = raft.ready();
    assert!(
        !ready
            .messages
            .iter()
            .any(|m| matches!(m.body, MessageBody::AppendResponse { .. })),
        "ack sent before durable"
    );
    let persist = ready.persist.expect("entries");
    let persist_id = persist.id;
    raft.storage_mut().persist(persist);
    raft.on_persisted(persist_id);
    let ready = raft.ready();
    assert!(matches!(
        ready.messages[0].body,
        MessageBody::AppendResponse { success: true, .. }
    ));
}

/// Figure 8: a leader must not commit an entry of an earlier term by counting replicas.
#[test]
fn entries_of_earlier_terms_are_not_committed_by_counting() {
    let config = |id: u64| {
        let mut config = config(id);
        config.pre_vote = false;
        config
    };
    let make = |id: u64| {
        let storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
        let mut raft = Raft::new(config(id), storage).expect("valid");
        // Every peer holds entry 1 of term 1; peer 1 also holds entry 2 of term 2 alone.
        let mut entries = vec![Entry {
            id: LogId::new(Term(1), Index(1)),
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"one"),
        }];
        if id == 1 {
            entries.push(Entry {
                id: LogId::new(Term(2), Index(2)),
                kind: EntryKind::Normal,
                data: Bytes::from_static(b"two"),
            });
        }
        raft.storage_mut().persist(raft_core::PersistRequest {
            id: 0,
            snapshot: None,
            entries,
            hard_state: Some(raft_core::HardState {
                term: Term(3),
                vote: None,
                commit: Index(0),
            }),
        });
        Raft::new(config(id), raft.into_storage()).expect("valid")
    };
    let mut leader = make(1);
    // Make peer 1 leader of term 4 by hand.
    for _ in 0..40 {
        leader.tick();
        if leader.role() != Role::Follower {
            break;
        }
    }
    assert_eq!(leader.role(), Role::Candidate);
    let ready = leader.ready();
    let persist = ready.persist.expect("term and vote");
    let persist_id = persist.id;
    leader.storage_mut().persist(persist);
    leader.on_persisted(persist_id);
    let requests = leader.ready().messages;
    assert_eq!(
        requests.len(),
        2,
        "vote requests released once the vote is durable"
    );
    let term = leader.term();
    leader
        .step(msg(
            2,
            1,
            term.0,
            MessageBody::VoteResponse {
                granted: true,
                pre_vote: false,
            },
        ))
        .expect("vote");
    assert_eq!(leader.role(), Role::Leader);
    // Peer 2 acknowledges index 2 (the old-term entry) but not the no-op at index 3.
    leader
        .step(msg(
            2,
            1,
            term.0,
            MessageBody::AppendResponse {
                index: Index(2),
                success: true,
                hint: LogId::default(),
            },
        ))
        .expect("ack");
    assert_eq!(
        leader.commit_index(),
        Index(0),
        "old-term entry committed by counting"
    );
    let ready = leader.ready();
    if let Some(persist) = ready.persist {
        let persist_id = persist.id;
        leader.storage_mut().persist(persist);
        leader.on_persisted(persist_id);
    }
    leader
        .step(msg(
            2,
            1,
            term.0,
            MessageBody::AppendResponse {
                index: Index(3),
                success: true,
                hint: LogId::default(),
            },
        ))
        .expect("ack");
    assert_eq!(
        leader.commit_index(),
        Index(3),
        "no-op commits the earlier entries with it"
    );
}

#[test]
fn far_behind_follower_with_divergent_log_catches_up_in_few_round_trips() {
    let mut net = Net::new(3);
    net.elect(1);
    // Peer 3 is cut off while the old leader appends 50 entries it cannot commit.
    net.cut.insert(NodeId(2));
    net.cut.insert(NodeId(3));
    for k in 0..50u8 {
        net.peer(1).propose(Bytes::from(vec![k])).expect("leader");
    }
    net.settle();
    net.cut.clear();
    net.cut.insert(NodeId(1));
    net.tick_all(60);
    let new_leader = if net.peer(2).state().1 { 2 } else { 3 };
    assert!(net.peer(new_leader).state().1);
    for k in 0..50u8 {
        net.peer(new_leader)
            .propose(Bytes::from(vec![100 + k]))
            .expect("leader");
    }
    net.settle();
    net.cut.clear();
    net.delivered.clear();
    net.tick_all(4);
    let rejections = net
        .delivered
        .iter()
        .filter(|m| m.to == NodeId(new_leader) && m.from == NodeId(1))
        .filter(|m| matches!(m.body, MessageBody::AppendResponse { success: false, .. }))
        .count();
    assert!(
        rejections <= 3,
        "{rejections} rejections: backtracking is not fast"
    );
    assert_eq!(net.applied_data(1), net.applied_data(new_leader));
    assert_eq!(net.applied_data(1).len(), 50);
}
