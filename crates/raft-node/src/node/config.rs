//! A node's settings: the core's [`Config`] plus what the runtime adds (tick length, queue
//! bound, peers' addresses for redirects).

use std::collections::BTreeMap;
use std::time::Duration;

use raft_core::{Config, NodeId};

#[cfg(doc)]
use super::NodeError;

/// Settings of a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The consensus settings (id, seed, timeouts in ticks, limits).
    pub raft: Config,
    /// Length of one core tick.
    pub tick: Duration,
    /// Requests that may wait for the event loop; more are refused with [`NodeError::Busy`].
    pub commands_max: usize,
    /// An address for each peer (whatever a client should be redirected to), named in
    /// [`NodeError::NotLeader`].
    pub addresses: BTreeMap<NodeId, String>,
    /// Start as a peer that lost nothing even when the store says it may have lost durable
    /// writes (`InitialState::possibly_lost_writes`: the write-ahead log cut a torn tail, or
    /// was not closed cleanly under `WalOptions::distrust_unclean_shutdown`). Off by default: such a peer first recovers with its
    /// peers' help and votes only once that is safe (see `raft_core`'s recovery and
    /// docs/operations.md). Turn it on only for disks known to keep every write they
    /// acknowledged as synced (no volatile write cache that lies about its flushes): if such
    /// a disk lost writes after all, the peer may vote twice in a term or help commit an
    /// entry it no longer holds, and committed entries can be lost.
    pub trust_unclean_restart: bool,
}

impl NodeConfig {
    /// Defaults for peer `id`: 20 ms ticks (so elections time out after 300–600 ms).
    pub fn new(id: NodeId, seed: u64) -> NodeConfig {
        NodeConfig {
            raft: Config::new(id, seed),
            tick: Duration::from_millis(20),
            commands_max: 4096,
            addresses: BTreeMap::new(),
            trust_unclean_restart: false,
        }
    }
}
