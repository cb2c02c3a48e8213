//! Lease reads (thesis §6.4.1): served by a leader at once while a majority's echo of a recent
//! heartbeat vouches that nobody else can have been elected, and by a confirmation round
//! otherwise. Each test feeds inputs and checks the exact effect.

mod common;

use bytes::Bytes;
use common::{config, Net};
use raft_core::{
    Configuration, HardState, Index, LogId, MemStorage, Message, MessageBody, NodeId,
    PersistRequest, ProposeError, Raft, Role, StepError, Term,
};

/// `config` gives election_ticks = 10 and heartbeat_ticks = 2; the default margin is 2, so
/// a lease lasts 8 ticks from the heartbeat a majority echoed.
const LEASE_TICKS: u32 = 8;

/// Three peers, peer 1 leading with one entry ("x") committed in its term, and a heartbeat
/// round it broadcast at its current tick echoed by both followers: its lease runs for
/// [`LEASE_TICKS`] ticks from now.
fn leader_with_fresh_lease() -> Net {
    let mut net = Net::three_peers_with_one_entry();
    tick_leader_until_heartbeat(&mut net);
    net.settle();
    net
}

/// Ticks peer 1 alone until it broadcasts a heartbeat (left in the queue).
fn tick_leader_until_heartbeat(net: &mut Net) {
    for _ in 0..10 {
        net.peer(1).tick();
        net.process_ready(NodeId(1));
        let heartbeat_sent = net
            .queue
            .iter()
            .any(|message| matches!(message.body, MessageBody::Heartbeat { .. }));
        if heartbeat_sent {
            return;
        }
    }
    panic!("the leader sent no heartbeat within 10 ticks");
}

/// Ticks peer 1 alone `ticks` times, losing everything it sends.
fn tick_leader_alone(net: &mut Net, ticks: u32) {
    for _ in 0..ticks {
        net.peer(1).tick();
        net.process_ready(NodeId(1));
        net.queue.clear();
    }
}

fn read_served(net: &Net, id: u64, context: u64) -> Option<Index> {
    net.peers[&NodeId(id)]
        .read_states
        .iter()
        .find(|read| read.context == context)
        .map(|read| read.index)
}

fn heartbeats_queued(net: &Net) -> usize {
    net.queue
        .iter()
        .filter(|message| matches!(message.body, MessageBody::Heartbeat { .. }))
        .count()
}

#[test]
fn lease_read_is_served_at_once_without_messages_while_the_lease_holds() {
    let mut net = leader_with_fresh_lease();
    let committed = net.commit(1);
    net.peer(1).lease_read(7).expect("leader read");
    net.process_ready(NodeId(1));
    assert_eq!(read_served(&net, 1, 7), Some(committed));
    assert!(net.queue.is_empty(), "a lease read sent {:?}", net.queue);
    assert_eq!(net.peer(1).counters().lease_reads, 1);
}

#[test]
fn an_idle_leader_keeps_its_lease_through_periodic_heartbeats() {
    let mut net = leader_with_fresh_lease();
    // Several leases long: only the periodic heartbeats renew it.
    net.tick_all(5 * LEASE_TICKS);
    assert!(net.peer(1).state().1, "peer 1 still leads");
    net.peer(1).lease_read(7).expect("leader read");
    net.process_ready(NodeId(1));
    assert_eq!(read_served(&net, 1, 7), Some(net.commit(1)));
    assert!(net.queue.is_empty(), "a lease read sent {:?}", net.queue);
}

#[test]
fn lease_read_takes_a_confirmation_round_once_the_lease_has_expired() {
    let mut net = leader_with_fresh_lease();
    // The followers hear nothing more: the last tick of the lease still serves at once...
    tick_leader_alone(&mut net, LEASE_TICKS - 1);
    net.peer(1).lease_read(1).expect("leader read");
    net.process_ready(NodeId(1));
    assert_eq!(read_served(&net, 1, 1), Some(net.commit(1)));
    assert!(net.queue.is_empty(), "a lease read sent {:?}", net.queue);
    // ...and the next one needs a round.
    tick_leader_alone(&mut net, 1);
    assert_eq!(
        net.peer(1).role(),
        Role::Leader,
        "CheckQuorum has not fired yet"
    );
    net.peer(1).lease_read(2).expect("leader read");
    net.process_ready(NodeId(1));
    assert_eq!(read_served(&net, 1, 2), None, "served on an expired lease");
    assert_eq!(
        heartbeats_queued(&net),
        2,
        "one confirmation heartbeat per follower"
    );
    net.settle();
    assert_eq!(read_served(&net, 1, 2), Some(net.commit(1)));
    // The round renewed the lease.
    net.peer(1).lease_read(3).expect("leader read");
    net.process_ready(NodeId(1));
    assert_eq!(read_served(&net, 1, 3), Some(net.commit(1)));
    assert!(net.queue.is_empty(), "a lease read sent {:?}", net.queue);
}

#[test]
fn lease_read_on_a_follower_is_refused_naming_the_leader() {
    let mut net = leader_with_fresh_lease();
    assert_eq!(
        net.peer(2).lease_read(7),
        Err(ProposeError::NotLeader {
            leader: Some(NodeId(1))
        })
    );
}

#[test]
fn leader_drops_its_lease_when_it_starts_a_leadership_transfer() {
    let mut net = leader_with_fresh_lease();
    // The target never hears the order to campaign, so the transfer stays pending.
    net.cut.insert(NodeId(3));
    net.peer(1).transfer_leader(NodeId(3)).expect("transfer");
    net.process_ready(NodeId(1));
    net.queue.clear();
    net.peer(1).lease_read(7).expect("leader read");
    net.process_ready(NodeId(1));
    assert_eq!(read_served(&net, 1, 7), None, "served on a dropped lease");
    assert_eq!(heartbeats_queued(&net), 2);
    net.settle();
    assert_eq!(
        read_served(&net, 1, 7),
        Some(net.commit(1)),
        "peer 2 confirms"
    );
    // The echo confirmed the read but renews no lease in this term.
    net.peer(1).lease_read(8).expect("leader read");
    net.process_ready(NodeId(1));
    assert_eq!(read_served(&net, 1, 8), None);
    assert_eq!(net.peer(1).counters().lease_reads, 0);
}

#[test]
fn a_deposed_leader_has_no_lease() {
    let mut net = leader_with_fresh_lease();
    let newer_term = Message {
        from: NodeId(2),
        to: NodeId(1),
        term: Term(net.peer(1).term().0 + 1),
        body: MessageBody::HeartbeatResponse { read_round: 0 },
    };
    let _ = net.peer(1).step(newer_term);
    assert_eq!(net.peer(1).role(), Role::Follower);
    assert_eq!(
        net.peer(1).lease_read(7),
        Err(ProposeError::NotLeader { leader: None })
    );
}

#[test]
fn without_check_quorum_every_lease_read_takes_a_round() {
    let mut net = Net::with_config(3, |id| {
        let mut config = config(id);
        config.check_quorum = false;
        config
    });
    net.elect(1);
    net.peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader");
    net.settle();
    net.tick_all(4);
    net.peer(1).lease_read(7).expect("leader read");
    net.process_ready(NodeId(1));
    assert_eq!(
        read_served(&net, 1, 7),
        None,
        "followers do not honour leases"
    );
    assert_eq!(heartbeats_queued(&net), 2);
    net.settle();
    assert_eq!(read_served(&net, 1, 7), Some(net.commit(1)));
}

fn vote_request(from: u64, to: u64, term: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body: MessageBody::VoteRequest {
            last_log: LogId::default(),
            pre_vote: false,
            leadership_transfer: false,
        },
    }
}

#[test]
fn a_restarted_peer_ignores_campaigns_for_an_election_timeout() {
    // It may have echoed a leader's heartbeat just before going down: it honours that lease.
    let mut storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
    storage.persist(PersistRequest {
        id: 1,
        snapshot: None,
        entries: Vec::new(),
        hard_state: Some(HardState {
            term: Term(3),
            vote: Some(NodeId(1)),
            commit: Index(0),
        }),
    });
    let mut restarted = Raft::new(config(2), storage).expect("valid");
    for _ in 0..config(2).election_ticks {
        assert_eq!(
            restarted.step(vote_request(3, 2, 4)),
            Err(StepError::Ignored("vote request inside leader lease"))
        );
        restarted.tick();
    }
    restarted.step(vote_request(3, 2, 4)).expect("considered");
    assert_eq!(restarted.term(), Term(4));
    // A peer that never had a term honours no lease.
    let fresh_storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
    let mut fresh = Raft::new(config(2), fresh_storage).expect("valid");
    fresh.step(vote_request(3, 2, 1)).expect("considered");
    assert_eq!(fresh.term(), Term(1));
}

#[test]
fn lease_margin_must_be_at_least_one_tick_and_below_the_election_timeout() {
    for margin in [0, 10, 11] {
        let mut config = config(1);
        config.lease_margin_ticks = margin;
        assert!(config.validate().is_err(), "margin {margin} accepted");
    }
    let mut config = config(1);
    config.lease_margin_ticks = 9;
    assert!(config.validate().is_ok());
}
