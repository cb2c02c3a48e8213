//! The TCP transport over real sockets on 127.0.0.1: delivery and order, refused handshakes,
//! rejected frames, and reconnection after a peer restarts. Every wait has a deadline.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, Message, MessageBody, NodeId, SnapshotMeta, Term,
};
use raft_node::transport::tcp::{TcpConfig, TcpTransport};
use raft_node::transport::Transport;
use raft_node::wire::{encode_frame, Handshake, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const CLUSTER: &str = "test-cluster";
const DEADLINE: Duration = Duration::from_secs(10);

async fn within_deadline<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `condition` until it holds, failing after the deadline.
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    within_deadline(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

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
    let mut frame = BytesMut::new();
    encode_frame(
        &Handshake {
            protocol_version,
            cluster_id: cluster_id.into(),
            from,
            to,
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

/// Sends a heartbeat from `from` to `to` every few milliseconds until `to` receives one.
async fn expect_delivery(nodes: &mut BTreeMap<u64, Node>, from: u64, to: u64) {
    let mut round = 1000;
    within_deadline("a message to be delivered", async {
        loop {
            nodes[&from].transport.send(heartbeat(from, to, round));
            round += 1;
            let receiver = &mut nodes.get_mut(&to).expect("node exists").inbound;
            if let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_millis(20), receiver.recv()).await
            {
                if message.from == NodeId(from) {
                    return;
                }
            }
        }
    })
    .await;
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
