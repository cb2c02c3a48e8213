//! # raft-node
//!
//! Raft for a service, in one dependency: a [`RaftNode`] runs one peer of a replicated state
//! machine (the event loop driving the consensus core, a storage thread with group commit, the
//! task that hands committed entries to the service) and talks to its peers through a
//! [`transport::Transport`]: TCP (optionally mutual TLS, see [`transport::tls`]) or the
//! in-process network with fault injection that tests use. [`wire`] is the versioned format
//! they exchange.
//!
//! ```text
//!  service ── start_command / read_index / snapshot / change_membership ──► RaftNode
//!     ▲                                                                        │
//!     └──────────── ApplyMsg channel: every committed entry, in log order ◄────┘
//!                   (Command, Noop, Configuration; Snapshot when one is installed)
//! ```
//!
//! The crate re-exports what a service needs: the core as [`core`] (`raft-core`), the
//! write-ahead log as [`wal`] (`raft-wal`), and the [`tokio`] and [`bytes`] versions it runs
//! on, so `Cargo.toml` needs one line.
//!
//! ## Starting a peer
//!
//! Over TCP with the write-ahead log, [`RaftNode::builder`] does the wiring:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use raft_node::{NodeId, RaftNode};
//!
//! let peers = [
//!     (NodeId(1), "10.0.0.1:9001".parse()?),
//!     (NodeId(2), "10.0.0.2:9001".parse()?),
//!     (NodeId(3), "10.0.0.3:9001".parse()?),
//! ];
//! let (node, mut applied) = RaftNode::builder(NodeId(1))
//!     .peers(peers)
//!     .data_dir("/var/lib/my-service/raft")
//!     .start()
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`RaftNode::start`] takes the parts instead: any [`LogStore`] (the write-ahead log
//! [`Wal`], [`SharedMemStorage`], or a storage engine of your own) and any transport. Three
//! peers in one process, over the in-process network and on memory storage:
//!
//! ```
//! use raft_node::tokio::{self, sync::mpsc};
//! use raft_node::transport::memory::MemoryNetwork;
//! use raft_node::{ApplyMsg, Bytes, Configuration, NodeConfig, NodeId, RaftNode, SharedMemStorage};
//!
//! # #[tokio::main(crate = "raft_node::tokio")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = MemoryNetwork::new(1);
//! let voters = Configuration::new([NodeId(1), NodeId(2), NodeId(3)]);
//! let mut nodes = Vec::new();
//! let mut appliers = Vec::new();
//! for id in voters.members() {
//!     let (inbound_sender, inbound) = mpsc::channel(1024);
//!     let transport = network.endpoint(id, inbound_sender);
//!     let store = SharedMemStorage::new(voters.clone());
//!     let (apply, applied) = mpsc::channel(64);
//!     nodes.push(RaftNode::start(NodeConfig::new(id, id.0), store, transport, inbound, apply)?);
//!     appliers.push(applied);
//! }
//! // Propose at whichever peer leads; the others answer NotLeader naming it.
//! let (index, _term) = 'placed: loop {
//!     for node in &nodes {
//!         if let Ok(place) = node.start_command(Bytes::from("x=1")).await {
//!             break 'placed place;
//!         }
//!     }
//!     tokio::time::sleep(std::time::Duration::from_millis(50)).await;
//! };
//! // Every peer applies it at that index (after the leader's no-op).
//! for applied in &mut appliers {
//!     loop {
//!         match applied.recv().await.ok_or("node stopped")? {
//!             ApplyMsg::Command { index: at, data, .. } => {
//!                 assert_eq!((at, &data[..]), (index, &b"x=1"[..]));
//!                 break;
//!             }
//!             ApplyMsg::Noop { .. } | ApplyMsg::Configuration { .. } | ApplyMsg::Snapshot { .. } => {}
//!         }
//!     }
//! }
//! for node in &nodes {
//!     node.shutdown().await;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## What the service does with [`ApplyMsg`]
//!
//! Every committed entry arrives once, in log order. [`ApplyMsg::Command`] is applied;
//! [`ApplyMsg::Noop`] (a new leader's first entry) and [`ApplyMsg::Configuration`] (a membership
//! change) take an index but change nothing; [`ApplyMsg::Snapshot`] replaces the state (a
//! snapshot installed from the leader, or the peer's own at a restart). The index
//! [`RaftNode::start_command`] returns is the command's own: the command is applied when an
//! `ApplyMsg::Command` at that index *and term* arrives; another term there means a new leader
//! replaced it (it was not applied). [`RaftNode::snapshot`] hands the node the service's state
//! through an applied index so the log can be compacted.
//!
//! ## Restarts
//!
//! [`RaftNode::shutdown`] leaves the write-ahead log closed cleanly. A peer started on a log
//! that was not (a crash, a killed process, a power cut) may have lost writes its disk
//! reported synced, so it recovers first: it asks the other voters for their terms and logs,
//! and votes only once it cannot vote twice in a term or for a candidate missing a committed
//! entry; [`Status::recovery`] and [`NodeMetrics::recovering`] show it. For disks known to
//! keep every synced write, [`NodeBuilder::trust_unclean_restart`] skips it.
//!
//! ## Errors
//!
//! Requests fail with a typed [`NodeError`]; [`NodeError::is_retryable`] tells the conditions
//! that pass by themselves (not the leader, a leadership transfer or membership change under
//! way, busy) from the ones that do not (too large, not a voter, stopped, with its
//! [`StopReason`]).
//!
//! ## Stability
//!
//! Version 0.x: the API may change between minor versions, and the changes are listed in the
//! README. The wire format ([`wire`]) and the write-ahead log's on-disk format are kept
//! compatible across versions (a rolling upgrade must work); items marked `#[doc(hidden)]` are
//! for this workspace's benchmarks and fuzzers and may change at any time.

#![deny(missing_docs)]

mod builder;
pub mod metrics;
mod node;
// Public for the group-commit benchmark (raft-bench) only: the node runs it for every store;
// not part of the library's stable surface.
#[doc(hidden)]
pub mod storage_thread;
pub mod transport;
pub mod wire;

pub use builder::{BuildError, NodeBuilder};
pub use node::{ApplyMsg, NodeConfig, NodeError, NodeMetrics, RaftNode, StartError, StopReason};

// The facade: what a service needs, from one dependency. The whole of the core and of the
// log stay reachable as `raft_node::core` and `raft_node::wal`; the runtime and the payload
// type too, so that their versions always match the node's.
pub use bytes::{self, Bytes};
pub use raft_core as core;
pub use raft_core::{
    CompactError, ConfChange, ConfChangeError, Config, Configuration, Index, LogId, LogStore,
    NodeId, Role, SharedMemStorage, SnapshotStager, StageError, Status, Term,
};
pub use raft_wal as wal;
pub use raft_wal::{HistogramSnapshot, Wal, WalError, WalOptions};
pub use tokio;
