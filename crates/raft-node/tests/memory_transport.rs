//! The in-process network delivers, loses, delays and blocks messages as configured.

use std::time::Duration;

use raft_core::{Message, MessageBody, NodeId, Term};
use raft_node::transport::memory::{Faults, MemoryNetwork};
use raft_node::transport::Transport;
use tokio::sync::mpsc;
use tokio::time::timeout;

fn heartbeat(from: u64, to: u64, round: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(1),
        body: MessageBody::Heartbeat {
            commit: raft_core::Index(0),
            read_round: round,
        },
    }
}

fn round_of(message: &Message) -> u64 {
    match message.body {
        MessageBody::Heartbeat { read_round, .. } => read_round,
        _ => panic!("only heartbeats are sent here"),
    }
}

/// Everything `inbound` holds once `expected` messages arrived, or what arrived by the deadline.
async fn receive(inbound: &mut mpsc::Receiver<Message>, expected: usize) -> Vec<Message> {
    let mut received = Vec::new();
    let _ = timeout(Duration::from_secs(5), async {
        while received.len() < expected {
            match inbound.recv().await {
                Some(message) => received.push(message),
                None => break,
            }
        }
    })
    .await;
    received
}

#[tokio::test]
async fn reliable_network_delivers_everything_in_order() {
    let network = MemoryNetwork::new(1);
    let (sender, _) = mpsc::channel(16);
    let one = network.endpoint(NodeId(1), sender);
    let (sender, mut inbound) = mpsc::channel(1024);
    let _two = network.endpoint(NodeId(2), sender);
    for round in 0..100 {
        one.send(heartbeat(1, 2, round));
    }
    let received = receive(&mut inbound, 100).await;
    assert_eq!(
        received.iter().map(round_of).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    assert_eq!(network.counters().delivered, 100);
}

#[tokio::test]
async fn unreliable_network_loses_some_and_reorders() {
    let network = MemoryNetwork::new(7);
    network.set_faults(Faults {
        drop_probability: 0.2,
        delay_min: Duration::ZERO,
        delay_max: Duration::from_millis(20),
    });
    let (sender, _) = mpsc::channel(16);
    let one = network.endpoint(NodeId(1), sender);
    let (sender, mut inbound) = mpsc::channel(4096);
    let _two = network.endpoint(NodeId(2), sender);
    for round in 0..1000 {
        one.send(heartbeat(1, 2, round));
    }
    let counters = network.counters();
    let expected = (counters.sent - counters.dropped_by_faults) as usize;
    assert!(
        (100..300).contains(&counters.dropped_by_faults),
        "about a fifth dropped: {counters:?}"
    );
    let received = receive(&mut inbound, expected).await;
    assert_eq!(
        received.len(),
        expected,
        "every message not dropped arrives"
    );
    let rounds: Vec<u64> = received.iter().map(round_of).collect();
    assert!(
        rounds.windows(2).any(|pair| pair[0] > pair[1]),
        "delays reorder"
    );
}

#[tokio::test]
async fn disconnected_and_partitioned_peers_hear_nothing() {
    let network = MemoryNetwork::new(3);
    let mut inbounds = Vec::new();
    let mut transports = Vec::new();
    for id in 1..=3 {
        let (sender, inbound) = mpsc::channel(64);
        transports.push(network.endpoint(NodeId(id), sender));
        inbounds.push(inbound);
    }
    network.disconnect(NodeId(3));
    transports[0].send(heartbeat(1, 3, 0));
    transports[2].send(heartbeat(3, 2, 0));
    network.connect(NodeId(3));
    network.partition(&[&[NodeId(1)], &[NodeId(2), NodeId(3)]]);
    transports[0].send(heartbeat(1, 2, 1));
    transports[1].send(heartbeat(2, 3, 2));
    network.heal();
    network.cut(NodeId(1), NodeId(2));
    transports[0].send(heartbeat(1, 2, 3));
    transports[1].send(heartbeat(2, 1, 4));
    let counters = network.counters();
    assert_eq!(counters.dropped_by_links, 4, "{counters:?}");
    assert_eq!(counters.delivered, 2, "{counters:?}");
    assert_eq!(
        receive(&mut inbounds[2], 1)
            .await
            .iter()
            .map(round_of)
            .collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(
        receive(&mut inbounds[0], 1)
            .await
            .iter()
            .map(round_of)
            .collect::<Vec<_>>(),
        [4]
    );
}

#[tokio::test]
async fn a_message_in_flight_when_the_link_goes_down_is_lost() {
    let network = MemoryNetwork::new(5);
    network.set_faults(Faults {
        drop_probability: 0.0,
        delay_min: Duration::from_millis(200),
        delay_max: Duration::from_millis(200),
    });
    let (sender, _) = mpsc::channel(16);
    let one = network.endpoint(NodeId(1), sender);
    let (sender, mut inbound) = mpsc::channel(16);
    let _two = network.endpoint(NodeId(2), sender);
    one.send(heartbeat(1, 2, 0));
    network.disconnect(NodeId(2));
    let arrived = timeout(Duration::from_millis(600), inbound.recv()).await;
    assert!(arrived.is_err(), "nothing arrives: {arrived:?}");
    assert_eq!(network.counters().dropped_by_links, 1);
}
