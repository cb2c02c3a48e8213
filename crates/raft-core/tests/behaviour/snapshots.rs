//! Compaction, snapshot transfer in chunks (and its resumption after a lost chunk), and a
//! restart from a snapshot and the log tail (§7).

use bytes::Bytes;
use raft_core::{Configuration, Index, MemStorage, Message, MessageBody, NodeId, Raft};

use crate::common::{config, Net};
use crate::three_led_by_1;

/// A 3-peer cluster whose leader (peer 1) committed `entries` while peer 3 was cut off, then
/// compacted its log into a snapshot holding `snapshot_data`; peer 3 is still cut off.
fn leader_compacted_past_lagging_follower(
    snapshot_chunk_bytes: u64,
    entries: u8,
    snapshot_data: Bytes,
) -> Net {
    let mut net = three_led_by_1(config, |config| {
        config.snapshot_chunk_bytes = snapshot_chunk_bytes
    });
    net.cut.insert(NodeId(3));
    for k in 0..entries {
        net.peer(1).propose(Bytes::from(vec![k])).expect("leader");
    }
    net.settle();
    let applied = net.peer(1).status().applied;
    net.peer(1)
        .compact(applied, snapshot_data)
        .expect("compact");
    net.settle();
    assert_eq!(net.peer(1).status().snapshot_index, applied);
    net
}

#[test]
fn compaction_then_snapshot_install_catches_up_a_lagging_follower() {
    // Several chunks of 3 bytes.
    let mut net =
        leader_compacted_past_lagging_follower(3, 20, Bytes::from_static(b"state-of-the-service"));
    net.cut.clear();
    net.tick_all(6);
    let follower = &net.peers[&NodeId(3)];
    let snapshot = follower.snapshot.as_ref().expect("installed snapshot");
    assert_eq!(snapshot.data, Bytes::from_static(b"state-of-the-service"));
    assert_eq!(net.commit(3), net.commit(1));
    assert_eq!(net.peer(3).counters().snapshots_installed, 1);
}

#[test]
fn restart_resumes_from_snapshot_and_log_tail() {
    let mut net = Net::new(1);
    net.elect(1);
    for k in 0..5u8 {
        net.peer(1).propose(Bytes::from(vec![k])).expect("leader");
    }
    net.settle();
    net.peer(1)
        .compact(Index(3), Bytes::from_static(b"snap"))
        .expect("compact");
    net.settle();
    let storage = std::mem::replace(
        &mut net.peers.get_mut(&NodeId(1)).expect("peer").raft,
        Raft::new(config(1), MemStorage::new(Configuration::new([NodeId(1)]))).expect("valid"),
    )
    .into_storage();
    let mut raft = Raft::new(config(1), storage).expect("restart");
    let ready = raft.ready();
    let snapshot = ready.snapshot_to_apply.expect("snapshot first");
    assert_eq!(snapshot.meta.last_included.index, Index(3));
    raft.on_applied(Index(3));
    let ready = raft.ready();
    let indexes: Vec<u64> = ready
        .committed_entries
        .iter()
        .map(|e| e.index().0)
        .collect();
    assert_eq!(indexes, vec![4, 5, 6]);
}

#[test]
fn snapshot_transfer_resumes_after_a_lost_chunk_without_restarting() {
    let snapshot_data = Bytes::from_static(b"0123456789abcdefghij"); // 5 chunks of 4 bytes
    let mut net = leader_compacted_past_lagging_follower(4, 10, snapshot_data.clone());
    net.cut.clear();
    // Lose the third chunk once.
    let lost = std::rc::Rc::new(std::cell::Cell::new(None));
    let lost_in_filter = lost.clone();
    let mut chunks_seen = 0;
    net.drop_if = Some(Box::new(move |m: &Message| {
        if let MessageBody::InstallSnapshot { offset, .. } = &m.body {
            chunks_seen += 1;
            if chunks_seen == 3 {
                lost_in_filter.set(Some(*offset));
                return true;
            }
        }
        false
    }));
    for _ in 0..60 {
        net.tick_all(1);
        if net.peers[&NodeId(3)].snapshot.is_some() {
            break;
        }
    }
    let lost_offset = lost.get();
    let follower = &net.peers[&NodeId(3)];
    assert_eq!(
        follower.snapshot.as_ref().map(|s| s.data.clone()),
        Some(snapshot_data)
    );
    let resent_from_zero = net
        .delivered
        .iter()
        .filter(|m| matches!(m.body, MessageBody::InstallSnapshot { offset: 0, .. }))
        .count();
    assert!(lost_offset.is_some_and(|offset| offset > 0));
    // The first chunk may be re-offered once after the stall, but the follower answers with
    // the offset it has, so chunks before the loss are not all sent again.
    let chunk_messages = net
        .delivered
        .iter()
        .filter(|m| matches!(m.body, MessageBody::InstallSnapshot { .. }))
        .count();
    assert!(
        resent_from_zero <= 2,
        "restarted from zero {resent_from_zero} times"
    );
    assert!(
        chunk_messages <= 5 + 2,
        "{chunk_messages} chunks for a 5-chunk snapshot"
    );
}
