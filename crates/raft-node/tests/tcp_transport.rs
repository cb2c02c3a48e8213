//! The TCP transport over real sockets on 127.0.0.1: delivery and order, refused handshakes,
//! rejected frames, reconnection after a peer restarts, and peers added, moved and removed at
//! run time through clones of the transport. Every wait has a deadline.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, Message, MessageBody, NodeId, SnapshotMeta, Term,
};
use raft_node::transport::tcp::{PeerChange, PeerError, TcpConfig, TcpTransport};
use raft_node::transport::Transport;
use raft_node::wire::{encode_frame, encode_message_frame, Handshake, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use common::{wait_until, within_deadline};

const CLUSTER: &str = "test-cluster";

struct Node {
    transport: TcpTransport,
    inbound: mpsc::Receiver<Message>,
}

fn config(id: u64, addresses: &BTreeMap<NodeId, SocketAddr>) -> TcpConfig {
    let peers = addresses
        .iter()
        .filter(|(&peer, _)| peer != NodeId(id))
        .map(|(&peer, &address)| (peer, address))
        .collect();
    let mut config = TcpConfig::new(NodeId(id), CLUSTER, peers);
    config.reconnect_backoff_min = Duration::from_millis(10);
    config.reconnect_backoff_max = Duration::from_millis(200);
    config
}

fn start_node(config: TcpConfig, listener: TcpListener) -> Node {
    let (sender, inbound) = mpsc::channel(1024);
    let transport = TcpTransport::start(config, listener, sender).expect("starts");
    Node { transport, inbound }
}

/// Binds a listener per node first, so every address is known before any transport starts.
async fn start_cluster(ids: &[u64]) -> (BTreeMap<NodeId, SocketAddr>, BTreeMap<u64, Node>) {
    let mut listeners = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    for &id in ids {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        addresses.insert(NodeId(id), listener.local_addr().expect("bound"));
        listeners.insert(id, listener);
    }
    let nodes = listeners
        .into_iter()
        .map(|(id, listener)| (id, start_node(config(id, &addresses), listener)))
        .collect();
    (addresses, nodes)
}

fn heartbeat(from: u64, to: u64, read_round: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(7),
        body: MessageBody::Heartbeat {
            commit: Index(3),
            read_round,
        },
    }
}

/// Messages of several kinds, the snapshot chunk 256 KiB, each marked with its sender.
fn messages_between(from: u64, to: u64) -> Vec<Message> {
    let id = |term, index| LogId::new(Term(term), Index(index));
    let bodies = vec![
        MessageBody::VoteRequest {
            last_log: id(6, 40),
            pre_vote: true,
            leadership_transfer: false,
        },
        MessageBody::Append {
            prev: id(6, 40),
            entries: (41..=45)
                .map(|index| Entry {
                    id: id(7, index),
                    kind: EntryKind::Normal,
                    data: Bytes::from(format!("command {index} from {from}")),
                })
                .collect(),
            commit: Index(40),
        },
        MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                last_included: id(6, 30),
                configuration: Configuration::new([NodeId(1), NodeId(2), NodeId(3)]),
            },
            offset: 0,
            data: Bytes::from((0..256 * 1024).map(|i| (i % 251) as u8).collect::<Vec<_>>()),
            done: false,
        },
        MessageBody::AppendResponse {
            index: Index(45),
            success: true,
            hint: id(7, 45),
        },
        MessageBody::TimeoutNow,
    ];
    let mut messages: Vec<Message> = bodies
        .into_iter()
        .map(|body| Message {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(7),
            body,
        })
        .collect();
    messages.extend((0..50).map(|round| heartbeat(from, to, round)));
    messages
}

fn handshake_frame(cluster_id: &str, from: u64, to: u64, protocol_version: u32) -> BytesMut {
    handshake_frame_from(cluster_id, from, to, protocol_version, "")
}

fn handshake_frame_from(
    cluster_id: &str,
    from: u64,
    to: u64,
    protocol_version: u32,
    from_address: &str,
) -> BytesMut {
    let mut frame = BytesMut::new();
    encode_frame(
        &Handshake {
            protocol_version,
            cluster_id: cluster_id.into(),
            from,
            to,
            from_address: from_address.into(),
        },
        &mut frame,
    );
    frame
}

/// Writes `bytes` on a fresh connection and waits until the transport closes it.
async fn send_raw_and_expect_close(address: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(address).await.expect("connects");
    stream.write_all(bytes).await.expect("writes");
    let mut buffer = [0u8; 16];
    let read = within_deadline("the connection to close", stream.read(&mut buffer)).await;
    // A close arrives as end of stream, or as a reset when unread bytes were discarded.
    assert!(matches!(read, Ok(0) | Err(_)), "unexpected read {read:?}");
}

/// Heartbeat rounds handed out by [`deliver_heartbeats`], growing for the whole test binary so
/// that a heartbeat from an earlier call is never taken for one of the current call. Rounds
/// below the start are free for tests to mark their own messages.
static NEXT_ROUND: AtomicU64 = AtomicU64::new(1_000_000);

fn heartbeat_round(message: &Message) -> Option<u64> {
    match message.body {
        MessageBody::Heartbeat { read_round, .. } => Some(read_round),
        _ => None,
    }
}

/// Sends a heartbeat from `from` to `to` every few milliseconds until `to` receives one of
/// them. Returns how many were sent, and every message `to` received meanwhile.
async fn deliver_heartbeats(
    nodes: &mut BTreeMap<u64, Node>,
    from: u64,
    to: u64,
) -> (u64, Vec<Message>) {
    let first_round = NEXT_ROUND.fetch_add(1, Ordering::Relaxed);
    let mut round = first_round;
    let mut sent = 0;
    let mut received = Vec::new();
    within_deadline("a message to be delivered", async {
        loop {
            nodes[&from].transport.send(heartbeat(from, to, round));
            sent += 1;
            round = NEXT_ROUND.fetch_add(1, Ordering::Relaxed);
            let receiver = &mut nodes.get_mut(&to).expect("node exists").inbound;
            while let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_millis(20), receiver.recv()).await
            {
                let ours = message.from == NodeId(from)
                    && heartbeat_round(&message).is_some_and(|round| round >= first_round);
                received.push(message);
                if ours {
                    return;
                }
            }
        }
    })
    .await;
    (sent, received)
}

/// Sends heartbeats from `from` to `to` until `to` receives one; returns how many were sent.
async fn expect_delivery(nodes: &mut BTreeMap<u64, Node>, from: u64, to: u64) -> u64 {
    deliver_heartbeats(nodes, from, to).await.0
}

async fn bind_any() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("binds")
}

/// A node that starts with no peers, to be given them at run time.
async fn start_lone_node(id: u64) -> Node {
    start_node(config(id, &BTreeMap::new()), bind_any().await)
}

/// Reads and discards whatever arrives until the other end closes the connection.
async fn expect_closed(stream: &mut TcpStream) {
    within_deadline("the connection to close", async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// Binds `address` as soon as it is free again.
async fn rebind(address: SocketAddr) -> TcpListener {
    within_deadline("the address to be free", async {
        loop {
            match TcpListener::bind(address).await {
                Ok(listener) => return listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_intact_and_in_order_per_sender() {
    let ids = [1, 2, 3];
    let (_, mut nodes) = start_cluster(&ids).await;
    for &from in &ids {
        for &to in &ids {
            if from != to {
                for message in messages_between(from, to) {
                    nodes[&from].transport.send(message);
                }
            }
        }
    }
    for &to in &ids {
        let expected_count = (ids.len() - 1) * messages_between(1, 2).len();
        let mut received: BTreeMap<NodeId, Vec<Message>> = BTreeMap::new();
        let inbound = &mut nodes.get_mut(&to).expect("node exists").inbound;
        for _ in 0..expected_count {
            let message = within_deadline("every message", inbound.recv())
                .await
                .expect("the transport is running");
            assert_eq!(message.to, NodeId(to));
            received.entry(message.from).or_default().push(message);
        }
        for &from in &ids {
            if from != to {
                assert!(
                    received[&NodeId(from)] == messages_between(from, to),
                    "messages from {from} to {to} differ or are out of order"
                );
            }
        }
    }
    // A counter moves just after its message is written or handed over, so wait for it.
    let per_node = 2 * messages_between(1, 2).len() as u64;
    for node in nodes.values() {
        wait_until("the counters to settle", || {
            let counters = node.transport.counters();
            counters.messages_sent == per_node && counters.messages_received == per_node
        })
        .await;
        assert_eq!(node.transport.counters().messages_dropped, 0);
    }
    for (_, node) in nodes {
        node.transport.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_or_misrouted_handshakes_are_refused() {
    let (addresses, mut nodes) = start_cluster(&[1, 2]).await;
    let address = addresses[&NodeId(1)];
    let refusals = [
        handshake_frame("other-cluster", 2, 1, PROTOCOL_VERSION),
        handshake_frame(CLUSTER, 2, 3, PROTOCOL_VERSION),
        handshake_frame(CLUSTER, 9, 1, PROTOCOL_VERSION),
        handshake_frame(CLUSTER, 2, 1, PROTOCOL_VERSION + 1),
    ];
    for (count, frame) in refusals.iter().enumerate() {
        send_raw_and_expect_close(address, frame).await;
        let refused = count as u64 + 1;
        wait_until("the refusal to be counted", || {
            nodes[&1].transport.counters().connections_refused == refused
        })
        .await;
    }
    expect_delivery(&mut nodes, 2, 1).await;
    assert_eq!(nodes[&1].transport.counters().frames_rejected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_undecodable_frames_close_only_their_connection() {
    let (addresses, mut nodes) = start_cluster(&[1, 2]).await;
    let address = addresses[&NodeId(1)];
    let frame_bytes_max = TcpConfig::new(NodeId(1), CLUSTER, BTreeMap::new()).frame_bytes_max;

    let mut oversized = handshake_frame(CLUSTER, 2, 1, PROTOCOL_VERSION);
    oversized.extend_from_slice(&(frame_bytes_max as u32 + 1).to_be_bytes());
    send_raw_and_expect_close(address, &oversized).await;
    wait_until("the oversized frame to be counted", || {
        nodes[&1].transport.counters().frames_rejected == 1
    })
    .await;

    // Ten bytes with the continuation bit set are not a valid varint: prost cannot decode it.
    let mut garbage = handshake_frame(CLUSTER, 2, 1, PROTOCOL_VERSION);
    garbage.extend_from_slice(&10u32.to_be_bytes());
    garbage.extend_from_slice(&[0xff; 10]);
    send_raw_and_expect_close(address, &garbage).await;
    wait_until("the undecodable frame to be counted", || {
        nodes[&1].transport.counters().frames_rejected == 2
    })
    .await;

    expect_delivery(&mut nodes, 2, 1).await;
    assert_eq!(nodes[&1].transport.counters().connections_refused, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_reconnect_to_a_restarted_node() {
    let (addresses, mut nodes) = start_cluster(&[1, 2, 3]).await;
    expect_delivery(&mut nodes, 1, 3).await;
    expect_delivery(&mut nodes, 2, 3).await;

    let old = nodes.remove(&3).expect("node 3 exists");
    old.transport.shutdown().await;
    let listener = TcpListener::bind(addresses[&NodeId(3)])
        .await
        .expect("the address is free again after shutdown");
    nodes.insert(3, start_node(config(3, &addresses), listener));

    expect_delivery(&mut nodes, 1, 3).await;
    expect_delivery(&mut nodes, 2, 3).await;
    expect_delivery(&mut nodes, 3, 1).await;
    for id in [1, 2] {
        assert!(nodes[&id].transport.counters().connections_established >= 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_added_at_run_time_exchange_messages_both_ways() {
    let mut nodes = BTreeMap::from([(1, start_lone_node(1).await), (2, start_lone_node(2).await)]);
    let address_1 = nodes[&1].transport.local_addr();
    let address_2 = nodes[&2].transport.local_addr();

    nodes[&1].transport.send(heartbeat(1, 2, 0));
    assert_eq!(nodes[&1].transport.counters().messages_dropped, 1);

    assert_eq!(
        nodes[&1].transport.set_peer(NodeId(2), address_2),
        Ok(PeerChange::Added)
    );
    assert_eq!(
        nodes[&1].transport.peers(),
        BTreeMap::from([(NodeId(2), address_2)])
    );
    // Node 1 dials at once, and node 2, which does not know it yet, refuses the handshake.
    wait_until("node 2 to refuse node 1", || {
        nodes[&2].transport.counters().connections_refused >= 1
    })
    .await;

    assert_eq!(
        nodes[&2].transport.set_peer(NodeId(1), address_1),
        Ok(PeerChange::Added)
    );
    expect_delivery(&mut nodes, 1, 2).await;
    expect_delivery(&mut nodes, 2, 1).await;
    for (_, node) in nodes {
        node.transport.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_that_says_where_it_listens_is_admitted_and_answered_unless_removed() {
    // Node 2 knows node 1; node 1 knows nobody (it restarted from a state older than node 2).
    let listener_1 = bind_any().await;
    let address_1 = listener_1.local_addr().expect("bound");
    let listener_2 = bind_any().await;
    let address_2 = listener_2.local_addr().expect("bound");
    let mut config_2 = config(2, &BTreeMap::from([(NodeId(1), address_1)]));
    config_2.advertised_address = Some(address_2);
    let mut nodes = BTreeMap::from([
        (1, start_node(config(1, &BTreeMap::new()), listener_1)),
        (2, start_node(config_2, listener_2)),
    ]);
    expect_delivery(&mut nodes, 2, 1).await;
    assert_eq!(
        nodes[&1].transport.peers(),
        BTreeMap::from([(NodeId(2), address_2)]),
        "node 1 learned where node 2 listens from its handshake"
    );
    expect_delivery(&mut nodes, 1, 2).await;

    // Removed, node 2 is refused even though it says where it listens ...
    assert_eq!(nodes[&1].transport.remove_peer(NodeId(2)), Some(address_2));
    let refused_before = nodes[&1].transport.counters().connections_refused;
    send_raw_and_expect_close(
        address_1,
        &handshake_frame_from(CLUSTER, 2, 1, PROTOCOL_VERSION, &address_2.to_string()),
    )
    .await;
    wait_until("the removed peer's refusal to be counted", || {
        nodes[&1].transport.counters().connections_refused > refused_before
    })
    .await;
    assert!(nodes[&1].transport.peers().is_empty());
    // ... until it is set again.
    assert_eq!(
        nodes[&1].transport.set_peer(NodeId(2), address_2),
        Ok(PeerChange::Added)
    );
    expect_delivery(&mut nodes, 2, 1).await;
    expect_delivery(&mut nodes, 1, 2).await;
    for (_, node) in nodes {
        node.transport.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_peer_refuses_this_node_and_id_zero() {
    let node = start_lone_node(1).await;
    let address = node.transport.local_addr();
    assert_eq!(
        node.transport.set_peer(NodeId(1), address),
        Err(PeerError::ThisNode(NodeId(1)))
    );
    assert_eq!(
        node.transport.set_peer(NodeId(0), address),
        Err(PeerError::InvalidId)
    );
    assert!(node.transport.peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_peer_is_neither_sent_to_nor_accepted() {
    /// Heartbeat rounds node 1 sends while node 2 is removed.
    const REMOVED_ROUNDS: std::ops::Range<u64> = 0..100;
    /// The round of the heartbeat a hand-made connection from node 2 sends.
    const RAW_ROUND: u64 = 500;
    let (addresses, mut nodes) = start_cluster(&[1, 2]).await;
    expect_delivery(&mut nodes, 1, 2).await;
    expect_delivery(&mut nodes, 2, 1).await;

    // A connection dialed by hand as node 2, open and delivering before the removal.
    let mut dialed_by_2 = TcpStream::connect(addresses[&NodeId(1)])
        .await
        .expect("connects");
    let mut bytes = handshake_frame(CLUSTER, 2, 1, PROTOCOL_VERSION);
    encode_message_frame(&heartbeat(2, 1, RAW_ROUND), &mut bytes);
    dialed_by_2.write_all(&bytes).await.expect("writes");
    within_deadline("the hand-made connection's message", async {
        let inbound = &mut nodes.get_mut(&1).expect("node exists").inbound;
        while let Some(message) = inbound.recv().await {
            if heartbeat_round(&message) == Some(RAW_ROUND) {
                return;
            }
        }
    })
    .await;

    let transport = &nodes[&1].transport;
    assert_eq!(
        transport.remove_peer(NodeId(2)),
        Some(addresses[&NodeId(2)])
    );
    assert_eq!(transport.remove_peer(NodeId(2)), None);
    assert!(transport.peers().is_empty());
    expect_closed(&mut dialed_by_2).await;

    let dropped_before = transport.counters().messages_dropped;
    for round in REMOVED_ROUNDS {
        transport.send(heartbeat(1, 2, round));
    }
    let dropped = transport.counters().messages_dropped - dropped_before;
    assert!(
        dropped >= REMOVED_ROUNDS.end,
        "only {dropped} counted as dropped"
    );

    let refused_before = transport.counters().connections_refused;
    send_raw_and_expect_close(
        addresses[&NodeId(1)],
        &handshake_frame(CLUSTER, 2, 1, PROTOCOL_VERSION),
    )
    .await;
    wait_until("the refusal to be counted", || {
        nodes[&1].transport.counters().connections_refused > refused_before
    })
    .await;

    // Added again, node 2 gets what is sent from now on, and nothing sent while it was out:
    // one connection carries node 1's messages in order, so the first new one arriving means
    // any earlier one would have arrived before it.
    assert_eq!(
        nodes[&1]
            .transport
            .set_peer(NodeId(2), addresses[&NodeId(2)]),
        Ok(PeerChange::Added)
    );
    let (_, received) = deliver_heartbeats(&mut nodes, 1, 2).await;
    let leaked: Vec<u64> = received
        .iter()
        .filter_map(heartbeat_round)
        .filter(|round| REMOVED_ROUNDS.contains(round))
        .collect();
    assert!(
        leaked.is_empty(),
        "sent while removed, yet delivered: {leaked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_peer_is_dialed_at_its_new_address() {
    let (addresses, mut nodes) = start_cluster(&[1, 2]).await;
    let mut handed = expect_delivery(&mut nodes, 1, 2).await;

    // Node 2 restarts on another port; node 1 goes on dialing the old one until told.
    let old = nodes.remove(&2).expect("node 2 exists");
    old.transport.shutdown().await;
    let listener = bind_any().await;
    let new_address = listener.local_addr().expect("bound");
    assert_ne!(new_address, addresses[&NodeId(2)]);
    nodes.insert(2, start_node(config(2, &addresses), listener));
    for round in 0..10 {
        nodes[&1].transport.send(heartbeat(1, 2, round));
        handed += 1;
    }

    let transport = &nodes[&1].transport;
    assert_eq!(
        transport.set_peer(NodeId(2), new_address),
        Ok(PeerChange::AddressChanged {
            previous: addresses[&NodeId(2)]
        })
    );
    assert_eq!(
        transport.set_peer(NodeId(2), new_address),
        Ok(PeerChange::Unchanged)
    );
    assert_eq!(
        transport.peers(),
        BTreeMap::from([(NodeId(2), new_address)])
    );
    handed += expect_delivery(&mut nodes, 1, 2).await;
    expect_delivery(&mut nodes, 2, 1).await;

    // Every message node 1 was given is counted once: written, or dropped with the old
    // address's queue.
    wait_until("every message to be counted once", || {
        let counters = nodes[&1].transport.counters();
        counters.messages_sent + counters.messages_dropped == handed
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_share_the_peer_set_and_the_counters() {
    let mut nodes = BTreeMap::from([(1, start_lone_node(1).await), (2, start_lone_node(2).await)]);
    let address_1 = nodes[&1].transport.local_addr();
    let address_2 = nodes[&2].transport.local_addr();
    // The service keeps a clone; the node's copy is the one in `nodes`.
    let service = nodes[&1].transport.clone();

    assert_eq!(
        service.set_peer(NodeId(2), address_2),
        Ok(PeerChange::Added)
    );
    assert_eq!(nodes[&1].transport.peers(), service.peers());
    nodes[&2]
        .transport
        .set_peer(NodeId(1), address_1)
        .expect("node 1 is a valid peer");
    let handed = expect_delivery(&mut nodes, 1, 2).await;
    wait_until("both clones to count every message sent", || {
        service.counters().messages_sent == handed
            && nodes[&1].transport.counters().messages_sent == handed
    })
    .await;

    assert_eq!(nodes[&1].transport.remove_peer(NodeId(2)), Some(address_2));
    assert!(service.peers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_clone_stops_the_tasks() {
    let peer = bind_any().await;
    let peer_address = peer.local_addr().expect("bound");
    let listener = bind_any().await;
    let address = listener.local_addr().expect("bound");
    let Node {
        transport,
        inbound: _inbound,
    } = start_node(
        config(1, &BTreeMap::from([(NodeId(2), peer_address)])),
        listener,
    );
    let service = transport.clone();
    let (mut connection, _) = within_deadline("node 1 to dial", peer.accept())
        .await
        .expect("accepts");

    // One clone left: the transport keeps running and writing.
    drop(transport);
    service.send(heartbeat(1, 2, 0));
    let handshake_bytes = handshake_frame(CLUSTER, 1, 2, PROTOCOL_VERSION).len();
    within_deadline("the handshake and the message", async {
        let mut buffer = [0u8; 4096];
        let mut received = 0;
        while received <= handshake_bytes {
            let read = connection.read(&mut buffer).await.expect("reads");
            assert!(
                read > 0,
                "node 1 closed its connection while a clone is alive"
            );
            received += read;
        }
    })
    .await;

    drop(service);
    expect_closed(&mut connection).await;
    rebind(address).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_other_clones_inert() {
    let (addresses, mut nodes) = start_cluster(&[1, 2]).await;
    expect_delivery(&mut nodes, 1, 2).await;
    let service = nodes[&1].transport.clone();

    let node = nodes.remove(&1).expect("node 1 exists");
    node.transport.shutdown().await;
    TcpListener::bind(addresses[&NodeId(1)])
        .await
        .expect("the address is free once shutdown returns");

    assert!(service.peers().is_empty());
    let dropped_before = service.counters().messages_dropped;
    service.send(heartbeat(1, 2, 0));
    assert_eq!(service.counters().messages_dropped, dropped_before + 1);
    assert_eq!(
        service.set_peer(NodeId(2), addresses[&NodeId(2)]),
        Err(PeerError::ShutDown)
    );
    assert_eq!(service.remove_peer(NodeId(2)), None);
}
