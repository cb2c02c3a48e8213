//! A replicated key-value store of its own on `raft-node`: three processes, Raft over TCP, each
//! with a write-ahead log on disk. Type commands into any node:
//!
//! ```text
//! put KEY VALUE      replicated; answered once committed and applied here
//! get KEY            linearizable: confirmed by the leader, answered once applied here
//! ```
//!
//! Start it (three terminals):
//!
//! ```text
//! PEERS=1=127.0.0.1:9101,2=127.0.0.1:9102,3=127.0.0.1:9103
//! cargo run -p raft-examples --bin kv_node -- 1 $PEERS kv-data/1
//! cargo run -p raft-examples --bin kv_node -- 2 $PEERS kv-data/2
//! cargo run -p raft-examples --bin kv_node -- 3 $PEERS kv-data/3
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use raft_node::tokio::io::{AsyncBufReadExt, BufReader};
use raft_node::tokio::{self, sync::watch};
use raft_node::{ApplyMsg, Bytes, Index, NodeError, NodeId, RaftNode, Term};

/// Commands applied between two snapshots (which let the log be compacted).
const SNAPSHOT_EVERY: u64 = 1_000;
/// Applied entries whose term is remembered for a waiting write.
const TERMS_KEPT: usize = 10_000;

/// The replicated state, and where applying has reached.
#[derive(Default)]
struct Store {
    data: BTreeMap<String, String>,
    /// Terms of the entries applied lately (the last `TERMS_KEPT`): a write is acknowledged
    /// only if the entry applied at its index is its own (a new leader may have replaced it).
    terms: BTreeMap<Index, Term>,
}

#[tokio::main(crate = "raft_node::tokio")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, id, peers, data_dir] = args.as_slice() else {
        return Err(
            "usage: kv_node ID PEERS DATA_DIR   (PEERS: 1=host:port,2=host:port,...)".into(),
        );
    };
    let id = NodeId(id.parse()?);
    let (node, mut committed) = RaftNode::builder(id)
        .peers(parse_peers(peers)?)
        .data_dir(data_dir)
        .start()
        .await?;
    let node = Arc::new(node);
    let store = Arc::new(Mutex::new(Store::default()));
    let (applied_sender, applied) = watch::channel(Index(0));
    let applier = {
        let (node, store) = (Arc::clone(&node), Arc::clone(&store));
        tokio::spawn(async move {
            let mut since_snapshot = 0;
            while let Some(message) = committed.recv().await {
                let index = apply(&mut lock(&store), message);
                since_snapshot += 1;
                if since_snapshot >= SNAPSHOT_EVERY {
                    let image = encode(&lock(&store).data);
                    // Refused while the node has not yet heard this index was handed over.
                    if node.snapshot(index, image).await.is_ok() {
                        since_snapshot = 0;
                    }
                }
                applied_sender.send_replace(index);
            }
        })
    };
    println!("node {id} ready: put KEY VALUE | get KEY");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["put", key, value] => put(&node, &store, applied.clone(), key, value).await,
            ["get", key] => get(&node, &store, applied.clone(), key).await,
            [] => continue,
            _ => "? put KEY VALUE | get KEY".to_string(),
        };
        println!("{answer}");
    }
    node.shutdown().await;
    applier.abort();
    Ok(())
}

async fn put(
    node: &RaftNode,
    store: &Mutex<Store>,
    mut applied: watch::Receiver<Index>,
    key: &str,
    value: &str,
) -> String {
    if key.contains('=') {
        return "error: a key holds no '='".to_string();
    }
    let command = Bytes::from(format!("{key}={value}"));
    let (index, term) = match node.start_command(command).await {
        Ok(place) => place,
        Err(error) => return refused(error),
    };
    if applied.wait_for(|applied| *applied >= index).await.is_err() {
        return "error: the node stopped".to_string();
    }
    match lock(store).terms.get(&index) {
        Some(applied_term) if *applied_term == term => format!("ok {key}={value} (at {index})"),
        Some(_) => "error: leadership changed before the write committed; retry".to_string(),
        None => "unknown: a snapshot covered the write; read it back".to_string(),
    }
}

async fn get(
    node: &RaftNode,
    store: &Mutex<Store>,
    mut applied: watch::Receiver<Index>,
    key: &str,
) -> String {
    let read_at = match node.read_index().await {
        Ok(index) => index,
        Err(error) => return refused(error),
    };
    if applied
        .wait_for(|applied| *applied >= read_at)
        .await
        .is_err()
    {
        return "error: the node stopped".to_string();
    }
    match lock(store).data.get(key) {
        Some(value) => format!("{key} = {value}"),
        None => format!("{key} is not set"),
    }
}

/// Applies one committed message; returns the index applying has reached.
fn apply(store: &mut Store, message: ApplyMsg) -> Index {
    match message {
        ApplyMsg::Command { index, term, data } => {
            let text = String::from_utf8_lossy(&data);
            if let Some((key, value)) = text.split_once('=') {
                store.data.insert(key.to_string(), value.to_string());
            }
            remember(store, index, term)
        }
        // A new leader's no-op and membership changes take an index but change no data.
        ApplyMsg::Noop { index, term } | ApplyMsg::Configuration { index, term, .. } => {
            remember(store, index, term)
        }
        ApplyMsg::Snapshot { index, data, .. } => {
            store.data = decode(&data);
            store.terms.clear();
            index
        }
    }
}

fn remember(store: &mut Store, index: Index, term: Term) -> Index {
    store.terms.insert(index, term);
    if store.terms.len() > TERMS_KEPT {
        store.terms.pop_first();
    }
    index
}

fn refused(error: NodeError) -> String {
    match error {
        NodeError::NotLeader {
            leader: Some(leader),
            ..
        } => format!("not the leader: try node {}", leader.0),
        retryable if retryable.is_retryable() => format!("busy ({retryable}); retry"),
        other => format!("error: {other}"),
    }
}

/// The snapshot format: one `key=value` line per key (keys hold no `=`, values no newline).
fn encode(data: &BTreeMap<String, String>) -> Bytes {
    let lines: String = data
        .iter()
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect();
    Bytes::from(lines)
}

fn decode(image: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(image);
    let pairs = text.lines().filter_map(|line| line.split_once('='));
    pairs
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// `1=host:port,2=host:port,...`
fn parse_peers(text: &str) -> Result<Vec<(NodeId, SocketAddr)>, Box<dyn Error>> {
    let mut peers = Vec::new();
    for peer in text.split(',') {
        let (id, address) = peer
            .split_once('=')
            .ok_or("a peer is written ID=HOST:PORT")?;
        peers.push((NodeId(id.parse()?), address.parse()?));
    }
    Ok(peers)
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
