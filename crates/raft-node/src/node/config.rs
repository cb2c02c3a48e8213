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
}

impl NodeConfig {
    /// Defaults for peer `id`: 20 ms ticks (so elections time out after 300–600 ms).
    pub fn new(id: NodeId, seed: u64) -> NodeConfig {
        NodeConfig {
            raft: Config::new(id, seed),
            tick: Duration::from_millis(20),
            commands_max: 4096,
            addresses: BTreeMap::new(),
        }
    }
}
