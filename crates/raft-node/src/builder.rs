//! The short way to start a peer: a [`NodeBuilder`] wires the write-ahead log (or the user's
//! own [`LogStore`]), the TCP transport, the apply channel and the node from a list of peers.
//!
//! ```text
//!  RaftNode::builder(id).peers(..).data_dir(..)
//!     .start()      ─► Wal::open(data_dir, bootstrap)  ┐
//!     .start_on(s)  ─► the caller's LogStore           ├─► bind peers[id] ─► TcpTransport
//!                                                      └─► RaftNode::start ─► (node, applied)
//! ```
//!
//! Everything it does is also possible by hand with [`RaftNode::start`], which takes any store
//! and any [`Transport`](crate::transport::Transport) (the in-process network of tests, a
//! transport of the user's own).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use raft_core::{Configuration, LogStore, NodeId};
use raft_wal::{Wal, WalError, WalOptions};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::node::{ApplyMsg, NodeConfig, RaftNode, StartError};
use crate::transport::tcp::{TcpConfig, TcpTransport};
use crate::transport::tls::PeerTls;

/// Messages the transport may hold for the event loop before the connection they arrive on
/// waits (TCP backpressure to that peer).
const INBOUND_MESSAGES_MAX: usize = 4096;

/// The cluster id when none is given: peers refuse connections from another cluster id.
const DEFAULT_CLUSTER_ID: &str = "raft";

/// Why a [`NodeBuilder`] could not start the node.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The peer list does not name this node, so it has no address to listen on.
    #[error("{0} is not among the peers, so it has no address to listen on")]
    NotAPeer(NodeId),
    /// [`NodeBuilder::start`] needs [`NodeBuilder::data_dir`].
    #[error("no data directory: call data_dir(..) (or start_on(store) with a store of your own)")]
    NoDataDir,
    /// The write-ahead log could not be opened (locked by another process, damaged, no
    /// permission ...).
    #[error("cannot open the write-ahead log: {0}")]
    Wal(#[from] WalError),
    /// The listening address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// This node's address from the peer list.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TCP transport refused its settings (an id 0, a cluster id too long, TLS for another
    /// node ...).
    #[error("cannot start the transport: {0}")]
    Transport(std::io::Error),
    /// The node itself could not start.
    #[error(transparent)]
    Start(#[from] StartError),
}

/// A peer being configured; see [`RaftNode::builder`].
pub struct NodeBuilder {
    config: NodeConfig,
    peers: BTreeMap<NodeId, SocketAddr>,
    cluster_id: String,
    data_dir: Option<PathBuf>,
    wal_options: WalOptions,
    tls: Option<PeerTls>,
    joining: bool,
    apply_messages_max: usize,
}

impl RaftNode {
    /// Starts configuring peer `id`. The defaults: 20 ms ticks (elections after 300-600 ms),
    /// a seed drawn from the operating system's randomness, the cluster id `"raft"`, plain
    /// TCP, an apply channel of 1,024 messages.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use raft_node::{ApplyMsg, NodeId, RaftNode};
    ///
    /// let peers = [
    ///     (NodeId(1), "127.0.0.1:9001".parse()?),
    ///     (NodeId(2), "127.0.0.1:9002".parse()?),
    ///     (NodeId(3), "127.0.0.1:9003".parse()?),
    /// ];
    /// let (node, mut applied) = RaftNode::builder(NodeId(1))
    ///     .peers(peers)
    ///     .data_dir("data/1")
    ///     .start()
    ///     .await?;
    /// while let Some(message) = applied.recv().await {
    ///     if let ApplyMsg::Command { index, data, .. } = message {
    ///         println!("{index}: {data:?}");
    ///     }
    /// }
    /// # drop(node);
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(id: NodeId) -> NodeBuilder {
        NodeBuilder {
            config: NodeConfig::new(id, random_seed(id)),
            peers: BTreeMap::new(),
            cluster_id: DEFAULT_CLUSTER_ID.to_string(),
            data_dir: None,
            wal_options: WalOptions::default(),
            tls: None,
            joining: false,
            apply_messages_max: 1024,
        }
    }
}

impl NodeBuilder {
    /// Every voter of the cluster (this node included) and the address it listens on for
    /// Raft traffic. This node listens on its own entry; the set is the configuration a new
    /// cluster starts from (a restarted node reads its configuration from its log instead).
    pub fn peers(mut self, peers: impl IntoIterator<Item = (NodeId, SocketAddr)>) -> NodeBuilder {
        self.peers = peers.into_iter().collect();
        self
    }

    /// The cluster's name: a connection from a node of another cluster is refused.
    pub fn cluster_id(mut self, cluster_id: impl Into<String>) -> NodeBuilder {
        self.cluster_id = cluster_id.into();
        self
    }

    /// Where [`NodeBuilder::start`] keeps the write-ahead log (created if missing).
    pub fn data_dir(mut self, data_dir: impl Into<PathBuf>) -> NodeBuilder {
        self.data_dir = Some(data_dir.into());
        self
    }

    /// Settings of the write-ahead log [`NodeBuilder::start`] opens.
    pub fn wal_options(mut self, options: WalOptions) -> NodeBuilder {
        self.wal_options = options;
        self
    }

    /// Mutual TLS between the peers (see [`crate::transport::tls`]).
    pub fn tls(mut self, tls: PeerTls) -> NodeBuilder {
        self.tls = Some(tls);
        self
    }

    /// A node joining a running cluster: it starts outside any configuration and learns the
    /// membership, itself included, from the leader once a member adds it (see
    /// [`RaftNode::change_membership`]). `peers` then only says where the members are.
    pub fn joining(mut self, joining: bool) -> NodeBuilder {
        self.joining = joining;
        self
    }

    /// Trust a restart after a crash: start as a peer that lost nothing even when the
    /// write-ahead log was not closed cleanly (see [`NodeConfig::trust_unclean_restart`] for
    /// the risk). Off by default: a peer restarted after a crash recovers with its peers'
    /// help before it votes.
    pub fn trust_unclean_restart(mut self, trust: bool) -> NodeBuilder {
        self.config.trust_unclean_restart = trust;
        self
    }

    /// Messages the apply channel holds before the node waits for the service to take them.
    pub fn apply_channel_capacity(mut self, messages: usize) -> NodeBuilder {
        self.apply_messages_max = messages.max(1);
        self
    }

    /// Adjusts the node's settings: tick length, consensus timeouts and limits
    /// (`config.raft`), the addresses named in [`crate::NodeError::NotLeader`] ...
    pub fn configure(mut self, adjust: impl FnOnce(&mut NodeConfig)) -> NodeBuilder {
        adjust(&mut self.config);
        self
    }

    /// The configuration a new cluster starts from: every peer a voter, or none for a joining
    /// node. A store of the user's own ([`NodeBuilder::start_on`]) is created with it.
    pub fn bootstrap_configuration(&self) -> Configuration {
        if self.joining {
            Configuration::default()
        } else {
            Configuration::new(self.peers.keys().copied())
        }
    }

    /// Opens the write-ahead log in [`NodeBuilder::data_dir`] and starts the node on it,
    /// listening on this node's address. Returns the node and the channel on which every
    /// committed entry (and every snapshot installed) arrives, in log order.
    pub async fn start(self) -> Result<(RaftNode, mpsc::Receiver<ApplyMsg>), BuildError> {
        let dir = self.data_dir.clone().ok_or(BuildError::NoDataDir)?;
        let (bootstrap, options) = (self.bootstrap_configuration(), self.wal_options.clone());
        // Recovery reads the whole log: off the runtime's threads. `Wal::open` creates a missing
        // directory itself, and syncs its parent so that the new entry survives a crash.
        let opened = tokio::task::spawn_blocking(move || Wal::open(&dir, bootstrap, options)).await;
        let wal = match opened {
            Ok(wal) => wal?,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        self.start_on(wal).await
    }

    /// Starts the node on `store`, a [`LogStore`] of the caller's (created with
    /// [`NodeBuilder::bootstrap_configuration`] when new), listening on this node's address.
    pub async fn start_on<S: LogStore>(
        self,
        store: S,
    ) -> Result<(RaftNode, mpsc::Receiver<ApplyMsg>), BuildError> {
        let id = self.config.raft.id;
        let address = *self.peers.get(&id).ok_or(BuildError::NotAPeer(id))?;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| BuildError::Bind { address, source })?;
        let others = self
            .peers
            .iter()
            .filter(|(peer, _)| **peer != id)
            .map(|(peer, address)| (*peer, *address))
            .collect();
        let mut tcp = TcpConfig::new(id, self.cluster_id, others);
        tcp.advertised_address = Some(address);
        tcp.tls = self.tls;
        let (inbound_sender, inbound) = mpsc::channel(INBOUND_MESSAGES_MAX);
        let transport =
            TcpTransport::start(tcp, listener, inbound_sender).map_err(BuildError::Transport)?;
        let (apply, applied) = mpsc::channel(self.apply_messages_max);
        let node = RaftNode::start(self.config, store, transport, inbound, apply)?;
        Ok((node, applied))
    }
}

/// A seed no other process draws: the standard library's per-process random hash keys, mixed
/// with the node id.
fn random_seed(id: NodeId) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(id.0)
}
