//! Three `raft-node` peers in one process, over the in-process network, each keeping its log in
//! memory. The leader is crashed (its node dropped mid-flight), the others elect a new one and
//! go on, and the crashed peer restarts from what its store held and catches up.
//!
//! Run it: `cargo run -p raft-examples --bin in_memory_cluster`

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft_node::tokio::{self, sync::mpsc, time::Instant};
use raft_node::transport::memory::MemoryNetwork;
use raft_node::{ApplyMsg, Bytes, Configuration, NodeConfig, NodeId, RaftNode, SharedMemStorage};

/// How long each step may take before the example gives up.
const DEADLINE: Duration = Duration::from_secs(10);

/// One peer: its node while it runs, its store (kept across a crash, as a disk would be), and
/// the commands its service applied in the current incarnation.
struct Peer {
    id: NodeId,
    node: Option<RaftNode>,
    store: SharedMemStorage,
    applied: Arc<Mutex<Vec<Bytes>>>,
}

#[tokio::main(crate = "raft_node::tokio")]
async fn main() -> Result<(), Box<dyn Error>> {
    let network = MemoryNetwork::new(7);
    let voters = Configuration::new([NodeId(1), NodeId(2), NodeId(3)]);
    let mut peers: Vec<Peer> = voters
        .members()
        .map(|id| Peer {
            id,
            node: None,
            store: SharedMemStorage::new(voters.clone()),
            applied: Arc::default(),
        })
        .collect();
    for peer in &mut peers {
        start(&network, peer)?;
    }
    propose(&peers, &["a", "b", "c"]).await?;
    wait_until("every peer applies a, b, c", || {
        peers.iter().all(|peer| applied(peer).len() == 3)
    })
    .await?;

    let crashed = leader(&peers).await?;
    println!("crashing the leader, {}", peers[crashed].id);
    network.remove(peers[crashed].id);
    peers[crashed].node = None;
    propose(&peers, &["d", "e"]).await?;
    println!(
        "the others elected {} and went on",
        peers[leader(&peers).await?].id
    );

    start(&network, &mut peers[crashed])?;
    wait_until("every peer applies a..e", || {
        peers.iter().all(|peer| applied(peer).len() == 5)
    })
    .await?;
    for peer in &peers {
        println!("{} applied {:?}", peer.id, applied(peer));
    }
    if peers.iter().any(|peer| applied(peer) != applied(&peers[0])) {
        return Err("the peers applied different logs".into());
    }
    println!("the restarted peer caught up: every peer applied the same log");
    for peer in &peers {
        if let Some(node) = &peer.node {
            node.shutdown().await;
        }
    }
    Ok(())
}

/// Starts (or restarts) `peer` on its store, with a task applying what it commits.
fn start(network: &MemoryNetwork, peer: &mut Peer) -> Result<(), Box<dyn Error>> {
    let (inbound_sender, inbound) = mpsc::channel(1024);
    let transport = network.endpoint(peer.id, inbound_sender);
    let (apply, mut committed) = mpsc::channel(256);
    let config = NodeConfig::new(peer.id, peer.id.0);
    peer.node = Some(RaftNode::start(
        config,
        peer.store.clone(),
        transport,
        inbound,
        apply,
    )?);
    // A restarted service starts empty: the node hands it the log again from the start.
    let applied = Arc::new(Mutex::new(Vec::new()));
    peer.applied = Arc::clone(&applied);
    tokio::spawn(async move {
        while let Some(message) = committed.recv().await {
            if let ApplyMsg::Command { data, .. } = message {
                applied.lock().expect("no panic while held").push(data);
            }
        }
    });
    Ok(())
}

fn applied(peer: &Peer) -> Vec<Bytes> {
    peer.applied.lock().expect("no panic while held").clone()
}

/// The running peer that leads, once one does.
async fn leader(peers: &[Peer]) -> Result<usize, Box<dyn Error>> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let leading = peers
            .iter()
            .position(|peer| peer.node.as_ref().is_some_and(|node| node.get_state().1));
        match leading {
            Some(leader) => return Ok(leader),
            None if Instant::now() > deadline => return Err("no leader was elected".into()),
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Proposes each command at the leader, again at the next leader if it is refused.
async fn propose(peers: &[Peer], commands: &[&'static str]) -> Result<(), Box<dyn Error>> {
    for &command in commands {
        loop {
            let leader = leader(peers).await?;
            let node = peers[leader].node.as_ref().ok_or("the leader stopped")?;
            match node.start_command(Bytes::from(command)).await {
                Ok(_) => break,
                Err(error) if error.is_retryable() => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(())
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) -> Result<(), Box<dyn Error>> {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting until {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
