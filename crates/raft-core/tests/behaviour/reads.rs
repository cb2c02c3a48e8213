//! ReadIndex reads on the leader and through a follower, and their failure without a quorum
//! (thesis §6.4).

use raft_core::NodeId;

use crate::common::Net;

#[test]
fn read_index_on_leader_and_follower_reflect_committed_writes() {
    let mut net = Net::three_peers_with_one_entry();
    let committed = net.commit(1);
    net.peer(1).read_index(7).expect("leader read");
    net.peer(2).read_index(8).expect("follower read");
    net.settle();
    let leader_reads = &net.peers[&NodeId(1)].read_states;
    assert_eq!(leader_reads.len(), 1);
    assert_eq!(leader_reads[0].context, 7);
    assert!(leader_reads[0].index >= committed);
    let follower_reads = &net.peers[&NodeId(2)].read_states;
    assert_eq!(follower_reads.len(), 1);
    assert_eq!(follower_reads[0].context, 8);
    assert!(follower_reads[0].index >= committed);
}

#[test]
fn read_index_fails_when_the_leader_cannot_confirm() {
    let mut net = Net::new(3);
    net.elect(1);
    net.cut.insert(NodeId(1));
    net.peer(1).read_index(1).expect("accepted");
    net.tick_all(25);
    let ready_reads = &net.peers[&NodeId(1)].read_states;
    assert!(ready_reads.is_empty(), "read served without a quorum");
}
