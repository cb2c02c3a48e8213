//! Log replication and commitment that the golden scripts (tests/golden) do not reach: Figure 8,
//! which needs logs built by hand (§5.4.2). Appends before the leader's own write,
//! acknowledgements after the follower's, commit notices and catching up a divergent follower
//! are in tests/golden/testdata/{durability,replication,fast_backtracking}.txt.

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, MemStorage, MessageBody, NodeId, Raft, Role,
    Term,
};

use crate::common::config;
use crate::msg;

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
