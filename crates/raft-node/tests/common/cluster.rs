//! A cluster of real nodes (event loop, write-ahead log on disk, apply task) for tests in real
//! time, over the in-process network or over loopback TCP. Either way every peer's messages
//! pass through one [`MemoryNetwork`], so the tests cut links, partition and add faults the same
//! way over both (over TCP the network wraps each peer's real transport).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use raft_core::{Configuration, Index, NodeId, SharedMemStorage};
use raft_node::transport::memory::{Faults, MemoryNetwork, MemoryTransport};
use raft_node::transport::tcp::{TcpConfig, TcpTransport};
use raft_node::{ApplyMsg, NodeConfig, RaftNode};
use raft_wal::{Wal, WalError, WalOptions};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{wait_for, DEADLINE};

/// How the peers reach each other (and, for one case, where they keep their log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// The in-process network.
    Memory,
    /// Loopback TCP, each peer with its own listener.
    Tcp,
    /// The in-process network, and every peer's log in a `SharedMemStorage` instead of a
    /// write-ahead log: the node runs on any `LogStore`. A crash keeps what the store holds,
    /// as a disk would.
    MemoryOnMemStorage,
}

/// What a peer's service was handed, shared with the task that collects it.
pub type Received<T> = Arc<Mutex<Vec<T>>>;

/// Changes the default node settings of every peer (smaller snapshot chunks...).
pub type Tweak = Box<dyn Fn(&mut NodeConfig) + Send + Sync>;

/// Peers numbered from 0 (node id = peer + 1).
pub struct Cluster {
    /// The links and faults between the peers.
    pub network: MemoryNetwork,
    net: Net,
    seed: u64,
    voters: Configuration,
    tweak: Tweak,
    dirs: Vec<tempfile::TempDir>,
    /// Each peer's log, with [`Net::MemoryOnMemStorage`].
    memory_stores: Vec<SharedMemStorage>,
    /// Listening addresses over TCP.
    addresses: BTreeMap<NodeId, SocketAddr>,
    /// Listeners bound at creation, used by the first start of each peer.
    listeners: Vec<Option<TcpListener>>,
    /// The running peers.
    pub nodes: Vec<Option<RaftNode>>,
    /// Commands each peer's service received, per incarnation (cleared at restart).
    applied: Vec<Received<Bytes>>,
    /// Commands each peer's service received with their index, per incarnation.
    applied_at: Vec<Received<(Index, Bytes)>>,
    /// Index of the last command or snapshot each peer's service received.
    pub applied_index: Vec<Arc<AtomicU64>>,
    /// Snapshots each peer's service was handed: (last index, data).
    pub snapshots: Vec<Received<(Index, Bytes)>>,
}

impl Cluster {
    /// Starts `peers` peers with the default settings.
    pub async fn new(net: Net, peers: u64, seed: u64) -> Cluster {
        Cluster::with_settings(net, peers, seed, Box::new(|_| {})).await
    }

    /// Starts `peers` peers whose settings `tweak` adjusts.
    pub async fn with_settings(net: Net, peers: u64, seed: u64, tweak: Tweak) -> Cluster {
        let voters = Configuration::new((1..=peers).map(NodeId));
        let mut listeners = Vec::new();
        let mut addresses = BTreeMap::new();
        if net == Net::Tcp {
            for id in voters.members() {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
                addresses.insert(id, listener.local_addr().expect("bound"));
                listeners.push(Some(listener));
            }
        }
        let memory_stores = (0..peers)
            .map(|_| SharedMemStorage::new(voters.clone()))
            .collect();
        let mut cluster = Cluster {
            network: MemoryNetwork::new(seed),
            net,
            seed,
            voters,
            tweak,
            dirs: (0..peers)
                .map(|_| tempfile::tempdir().expect("temporary directory"))
                .collect(),
            memory_stores,
            addresses,
            listeners,
            nodes: (0..peers).map(|_| None).collect(),
            applied: (0..peers).map(|_| Arc::default()).collect(),
            applied_at: (0..peers).map(|_| Arc::default()).collect(),
            applied_index: (0..peers).map(|_| Arc::default()).collect(),
            snapshots: (0..peers).map(|_| Arc::default()).collect(),
        };
        for peer in 0..peers as usize {
            cluster.start(peer).await;
        }
        cluster
    }

    /// The data directory of `peer`'s write-ahead log.
    pub fn data_dir(&self, peer: usize) -> &std::path::Path {
        self.dirs[peer].path()
    }

    /// The node id of `peer`.
    pub fn id(peer: usize) -> NodeId {
        NodeId(peer as u64 + 1)
    }

    /// Starts (or restarts, from its data directory) `peer` and connects it.
    pub async fn start(&mut self, peer: usize) {
        let id = Cluster::id(peer);
        let (inbound_sender, inbound) = mpsc::channel(4096);
        let transport = self.transport(peer, inbound_sender).await;
        let (apply, mut applied_messages) = mpsc::channel(1024);
        let applied = Arc::clone(&self.applied[peer]);
        let applied_at = Arc::clone(&self.applied_at[peer]);
        let applied_index = Arc::clone(&self.applied_index[peer]);
        let snapshots = Arc::clone(&self.snapshots[peer]);
        applied.lock().expect("not poisoned").clear();
        applied_at.lock().expect("not poisoned").clear();
        tokio::spawn(async move {
            while let Some(message) = applied_messages.recv().await {
                match message {
                    ApplyMsg::Command { index, data, .. } => {
                        applied_at
                            .lock()
                            .expect("not poisoned")
                            .push((index, data.clone()));
                        applied.lock().expect("not poisoned").push(data);
                        applied_index.store(index.0, Ordering::Release);
                    }
                    ApplyMsg::Noop { index, .. } | ApplyMsg::Configuration { index, .. } => {
                        applied_index.store(index.0, Ordering::Release);
                    }
                    ApplyMsg::Snapshot { index, data, .. } => {
                        snapshots.lock().expect("not poisoned").push((index, data));
                        applied_index.store(index.0, Ordering::Release);
                    }
                }
            }
        });
        let mut config = NodeConfig::new(id, self.seed * 100 + peer as u64);
        config.addresses = self
            .voters
            .members()
            .map(|member| (member, format!("node-{}.test:7000", member.0)))
            .collect();
        (self.tweak)(&mut config);
        let node = if self.net == Net::MemoryOnMemStorage {
            let store = self.memory_stores[peer].clone();
            RaftNode::start(config, store, transport, inbound, apply)
        } else {
            let wal = self.open_wal(peer).await;
            RaftNode::start(config, wal, transport, inbound, apply)
        };
        let node = node.expect("starts");
        self.nodes[peer] = Some(node);
        self.network.connect(id);
    }

    /// Opens `peer`'s log, waiting while a crashed incarnation still holds it (an abandoned
    /// event loop is dropped on the runtime, a moment after the crash).
    async fn open_wal(&self, peer: usize) -> Wal {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match Wal::open(
                self.dirs[peer].path(),
                self.voters.clone(),
                // A crash here is a dropped node on an honest disk; the peers distrust it all
                // the same, so that every crash test runs the recovery too.
                WalOptions {
                    distrust_unclean_shutdown: true,
                    ..WalOptions::default()
                },
            ) {
                Ok(wal) => return wal,
                Err(WalError::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(error) => panic!("peer {peer}'s log does not open: {error}"),
            }
        }
    }

    async fn transport(
        &mut self,
        peer: usize,
        inbound: mpsc::Sender<raft_core::Message>,
    ) -> MemoryTransport {
        let id = Cluster::id(peer);
        if self.net != Net::Tcp {
            return self.network.endpoint(id, inbound);
        }
        let listener = match self.listeners[peer].take() {
            Some(listener) => listener,
            None => rebind(self.addresses[&id]).await,
        };
        let peers = self
            .addresses
            .iter()
            .filter(|(other, _)| **other != id)
            .map(|(other, address)| (*other, *address))
            .collect();
        let tcp = TcpTransport::start(
            TcpConfig::new(id, "raft-node-tests", peers),
            listener,
            inbound,
        )
        .expect("the transport starts");
        self.network.wrap(id, tcp)
    }

    /// Stops `peer` cleanly (its queued writes reach the disk) and cuts it off.
    pub async fn stop(&mut self, peer: usize) {
        self.network.disconnect(Cluster::id(peer));
        if let Some(node) = self.nodes[peer].take() {
            node.shutdown().await;
        }
        self.network.remove(Cluster::id(peer));
    }

    /// Kills `peer` at once: its event loop is abandoned wherever it is.
    pub fn crash(&mut self, peer: usize) {
        self.network.disconnect(Cluster::id(peer));
        self.nodes[peer] = None;
        self.network.remove(Cluster::id(peer));
    }

    /// The one running peer that believes it leads, once there is exactly one.
    pub async fn leader(&self) -> usize {
        wait_for("one leader", || {
            let leaders: Vec<usize> = (0..self.nodes.len())
                .filter(|&peer| self.node(peer).is_some_and(|node| node.get_state().1))
                .collect();
            (leaders.len() == 1).then(|| leaders[0])
        })
        .await
    }

    /// `peer`'s node, if it runs.
    pub fn node(&self, peer: usize) -> Option<&RaftNode> {
        self.nodes[peer].as_ref()
    }

    /// `peer`'s node, which must run.
    pub fn running(&self, peer: usize) -> &RaftNode {
        self.node(peer).expect("the peer runs")
    }

    /// The commands `peer`'s service received in its current incarnation.
    pub fn applied(&self, peer: usize) -> Vec<Bytes> {
        self.applied[peer].lock().expect("not poisoned").clone()
    }

    /// The commands `peer`'s service received in its current incarnation, with their index.
    pub fn applied_at(&self, peer: usize) -> Vec<(Index, Bytes)> {
        self.applied_at[peer].lock().expect("not poisoned").clone()
    }

    /// Waits until `peer`'s service has received exactly `expected`.
    pub async fn wait_applied(&self, peer: usize, expected: &[Bytes]) {
        wait_for(
            &format!("peer {peer} applies the expected commands"),
            || (self.applied(peer) == expected).then_some(()),
        )
        .await
    }

    /// Offers each command to the leader until one takes it.
    pub async fn propose(&self, numbers: std::ops::Range<u64>) {
        for number in numbers {
            loop {
                let leader = self.leader().await;
                if let Some(node) = self.node(leader) {
                    if node.start_command(command(number)).await.is_ok() {
                        break;
                    }
                }
            }
        }
    }

    /// Offers `command` to every running peer in turn; true if one took it.
    pub async fn offer(&self, command: Bytes) -> bool {
        for node in self.nodes.iter().flatten() {
            if node.start_command(command.clone()).await.is_ok() {
                return true;
            }
        }
        false
    }

    /// Heals the network, commits one more command and, once every peer applied it, checks
    /// that every peer applied the same log; returns that log.
    pub async fn converge_to_one_log(&self) -> Vec<Bytes> {
        self.network.heal();
        self.network.set_faults(Faults::reliable());
        self.propose(1000..1001).await;
        let last = command(1000);
        for peer in 0..self.nodes.len() {
            wait_for("every peer applies the last command", || {
                self.applied(peer)
                    .last()
                    .is_some_and(|applied| *applied == last)
                    .then_some(())
            })
            .await;
        }
        let reference = self.applied(0);
        for peer in 1..self.nodes.len() {
            assert_eq!(
                self.applied(peer),
                reference,
                "peer {peer} applied another log"
            );
        }
        reference
    }
}

/// Binds `address` again after its previous listener was dropped (the drop completes on the
/// runtime, so the first attempts may find it still in use).
async fn rebind(address: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match TcpListener::bind(address).await {
            Ok(listener) => return listener,
            Err(error) => assert!(
                tokio::time::Instant::now() < deadline,
                "cannot bind {address} again: {error}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The test command numbered `number`.
pub fn command(number: u64) -> Bytes {
    Bytes::from(format!("command {number}"))
}

/// A step of a xorshift generator: the tests' fault schedules are fixed by their seed.
pub fn next_random(state: &mut u64) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
}
