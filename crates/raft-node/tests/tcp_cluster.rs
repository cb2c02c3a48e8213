//! Clusters of real nodes over loopback TCP, each with its write-ahead log on disk (fsync on).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use raft_core::{Configuration, NodeId};
use raft_node::transport::tcp::{TcpConfig, TcpTransport};
use raft_node::{ApplyMsg, NodeConfig, RaftNode};
use raft_wal::{Wal, WalOptions};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

mod common;

use common::wait_for;

async fn elect_and_commit(peers: u64, seed: u64) {
    let ids: Vec<NodeId> = (1..=peers).map(NodeId).collect();
    let mut listeners = Vec::new();
    for _ in &ids {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("binds"));
    }
    let addresses: BTreeMap<NodeId, _> = ids
        .iter()
        .zip(&listeners)
        .map(|(id, listener)| (*id, listener.local_addr().expect("bound")))
        .collect();
    let voters = Configuration::new(ids.iter().copied());
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    let mut applied = Vec::new();
    for (id, listener) in ids.iter().zip(listeners) {
        let peers = addresses
            .iter()
            .filter(|(peer, _)| *peer != id)
            .map(|(peer, address)| (*peer, *address))
            .collect();
        let (inbound_sender, inbound) = mpsc::channel(4096);
        let transport =
            TcpTransport::start(TcpConfig::new(*id, "test", peers), listener, inbound_sender)
                .expect("transport starts");
        let dir = tempfile::tempdir().expect("temporary directory");
        let wal = Wal::open(dir.path(), voters.clone(), WalOptions::default()).expect("opens");
        let (apply, mut messages) = mpsc::channel(1024);
        let log: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                if let ApplyMsg::Command { data, .. } = message {
                    sink.lock().expect("not poisoned").push(data);
                }
            }
        });
        let config = NodeConfig::new(*id, seed * 10 + id.0);
        nodes.push(RaftNode::start(config, wal, transport, inbound, apply).expect("starts"));
        applied.push(log);
        dirs.push(dir);
    }
    let commands: Vec<Bytes> = (0..30)
        .map(|n| Bytes::from(format!("command {n}")))
        .collect();
    for command in &commands {
        loop {
            let leader = wait_for("one leader", || {
                let leaders: Vec<&RaftNode> =
                    nodes.iter().filter(|node| node.get_state().1).collect();
                (leaders.len() == 1).then(|| leaders[0])
            })
            .await;
            if leader.start_command(command.clone()).await.is_ok() {
                break;
            }
        }
    }
    for log in &applied {
        wait_for("every peer applies every command", || {
            (*log.lock().expect("not poisoned") == commands).then_some(())
        })
        .await;
    }
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_over_tcp_elect_and_commit() {
    elect_and_commit(3, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_peers_over_tcp_elect_and_commit() {
    elect_and_commit(5, 2).await;
}
