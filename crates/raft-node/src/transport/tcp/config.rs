//! A [`TcpTransport`]'s settings, their defaults, and the checks made before it starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use raft_core::NodeId;

use super::super::tls::PeerTls;
#[cfg(doc)]
use super::{TcpTransport, Transport};

/// The largest handshake frame accepted: a handshake is a few dozen bytes, and an
/// unauthenticated dialer must not make us buffer a full-size frame.
pub const HANDSHAKE_BYTES_MAX: u64 = 1024;

/// The longest cluster id, so that a handshake always fits in the 1 KiB accepted for it.
pub const CLUSTER_ID_BYTES_MAX: usize = 256;

/// Settings of a [`TcpTransport`].
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// This node's id.
    pub id: NodeId,
    /// The cluster this node belongs to; a connection from another cluster is refused.
    pub cluster_id: String,
    /// The initial peers (this node excluded) and the addresses they listen on. The set is
    /// changed at run time with [`TcpTransport::set_peer`] and [`TcpTransport::remove_peer`];
    /// [`TcpTransport::peers`] reads the current one.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The largest frame payload accepted or sent.
    pub frame_bytes_max: u64,
    /// Messages queued per peer before [`Transport::send`] drops.
    pub queue_messages_max: usize,
    /// Approximate bytes queued per peer before [`Transport::send`] drops.
    pub queue_bytes_max: u64,
    /// Bytes of frames coalesced into one write (a single larger message still goes alone).
    pub write_batch_bytes_max: usize,
    /// The first delay before reconnecting to a peer.
    pub reconnect_backoff_min: Duration,
    /// The longest delay between attempts to reconnect to a peer.
    pub reconnect_backoff_max: Duration,
    /// The limit on connecting, on receiving a handshake, and on one write.
    pub io_timeout: Duration,
    /// Inbound connections served at once; more are refused.
    pub connections_inbound_max: usize,
    /// The address this node tells the peers it dials, so that one that does not know it yet
    /// can answer (see [`TcpTransport::set_peer`]). `None`: it tells none, and only peers that
    /// were given its address accept its connections.
    pub advertised_address: Option<SocketAddr>,
    /// Mutual TLS on every connection, both ways; `None` (the default): plain TCP. Every peer
    /// must use the same setting and CA: a TLS node refuses a plain dialer and the reverse.
    pub tls: Option<PeerTls>,
}

impl TcpConfig {
    /// A configuration with the default limits.
    pub fn new(
        id: NodeId,
        cluster_id: impl Into<String>,
        peers: BTreeMap<NodeId, SocketAddr>,
    ) -> TcpConfig {
        TcpConfig {
            id,
            cluster_id: cluster_id.into(),
            peers,
            frame_bytes_max: 16 * 1024 * 1024,
            queue_messages_max: 4096,
            queue_bytes_max: 64 * 1024 * 1024,
            write_batch_bytes_max: 1024 * 1024,
            reconnect_backoff_min: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(2),
            io_timeout: Duration::from_secs(5),
            connections_inbound_max: 1024,
            advertised_address: None,
            tls: None,
        }
    }

    pub(super) fn validate(&self) -> Result<(), &'static str> {
        if self.id == NodeId(0) {
            return Err("node id 0 is not a valid id");
        }
        if self.peers.contains_key(&self.id) {
            return Err("peers must not contain this node");
        }
        if self.peers.contains_key(&NodeId(0)) {
            return Err("peer id 0 is not a valid id");
        }
        if self.cluster_id.len() > CLUSTER_ID_BYTES_MAX {
            return Err("cluster_id is longer than CLUSTER_ID_BYTES_MAX");
        }
        if self.frame_bytes_max == 0 || self.frame_bytes_max > u64::from(u32::MAX) {
            return Err("frame_bytes_max must be in 1..=u32::MAX");
        }
        if self.queue_messages_max == 0 || self.queue_bytes_max == 0 {
            return Err("queue limits must be positive");
        }
        if self.write_batch_bytes_max == 0 || self.connections_inbound_max == 0 {
            return Err("write_batch_bytes_max and connections_inbound_max must be positive");
        }
        if self.reconnect_backoff_min.is_zero()
            || self.reconnect_backoff_min > self.reconnect_backoff_max
        {
            return Err("reconnect backoff must satisfy 0 < min <= max");
        }
        if self.io_timeout.is_zero() {
            return Err("io_timeout must be positive");
        }
        Ok(())
    }
}
