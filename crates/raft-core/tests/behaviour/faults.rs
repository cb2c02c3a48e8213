//! Bad input and unreachable peers: dropped and counted, never panicked on; a follower the
//! runtime cannot reach goes back to probing.

use bytes::Bytes;
use raft_core::{Entry, EntryKind, Index, LogId, MessageBody, NodeId, SnapshotMeta, Term};

use crate::common::Net;
use crate::msg;

#[test]
fn bad_input_is_dropped_and_counted_not_panicked_on() {
    let mut net = Net::new(3);
    net.elect(1);
    let term = net.peer(2).term().0;
    let cases = vec![
        // A campaign from outside the configuration with a log behind ours (thesis §4.2.3).
        msg(
            9,
            2,
            term + 1,
            MessageBody::VoteRequest {
                last_log: LogId::default(),
                pre_vote: false,
                leadership_transfer: true,
            },
        ),
        msg(9, 2, term, MessageBody::TimeoutNow),
        msg(2, 3, term, MessageBody::TimeoutNow),
        msg(
            1,
            2,
            term,
            MessageBody::Append {
                prev: LogId::new(Term(0), Index(0)),
                entries: vec![Entry {
                    id: LogId::new(Term(term + 5), Index(7)),
                    kind: EntryKind::Normal,
                    data: Bytes::new(),
                }],
                commit: Index(u64::MAX),
            },
        ),
        msg(
            1,
            2,
            term,
            MessageBody::InstallSnapshot {
                meta: SnapshotMeta::default(),
                offset: 5,
                data: Bytes::new(),
                done: true,
            },
        ),
        msg(
            3,
            1,
            term,
            MessageBody::AppendResponse {
                index: Index(u64::MAX),
                success: true,
                hint: LogId::default(),
            },
        ),
        msg(
            3,
            1,
            term,
            MessageBody::InstallSnapshotResponse {
                last_included: LogId::new(Term(1), Index(99)),
                next_offset: u64::MAX,
                done: false,
            },
        ),
        msg(
            1,
            2,
            term,
            MessageBody::Heartbeat {
                commit: Index(u64::MAX),
                read_round: 0,
            },
        ),
        msg(1, 2, 0, MessageBody::TimeoutNow),
    ];
    for case in cases {
        let to = case.to.0;
        let _ = net.peer(to).step(case);
    }
    let counters2 = net.peer(2).counters();
    let counters1 = net.peer(1).counters();
    assert!(counters2.dropped_unknown_peer >= 1);
    assert!(counters2.dropped_invalid >= 2);
    assert!(counters1.dropped_invalid + counters1.dropped_ignored >= 2);
    assert!(net.peer(2).commit_index() <= net.peer(2).last_index());
    net.tick_all(3);
    assert!(net.peer(1).state().1, "cluster still healthy");
}

#[test]
fn unreachable_report_returns_follower_to_probing() {
    let mut net = Net::three_peers_with_one_entry();
    let state = |net: &mut Net| {
        net.peer(1)
            .status()
            .peers
            .iter()
            .find(|p| p.id == NodeId(2))
            .map(|p| p.state)
    };
    assert_eq!(state(&mut net), Some(raft_core::ProgressState::Replicate));
    net.peer(1).report_unreachable(NodeId(2));
    assert_eq!(state(&mut net), Some(raft_core::ProgressState::Probe));
    net.peer(1)
        .propose(Bytes::from_static(b"y"))
        .expect("leader");
    net.settle();
    assert_eq!(state(&mut net), Some(raft_core::ProgressState::Replicate));
    assert_eq!(net.applied_data(2).len(), 2);
}
