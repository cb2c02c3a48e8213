//! Link proxies: every Raft connection passes through one, so links can be slowed.
//!
//! The kernel here has neither `tc netem` nor NFQUEUE, so delay and jitter are added in user
//! space. Each node advertises its proxy's address as its Raft address; the proxy of slot `to`
//! accepts a connection, learns the dialling slot `from` by its source address, dials the node
//! and copies bytes both ways, holding each chunk until its release time:
//!
//! ```text
//!   node from ──► proxy(to) ──[reader: stamp release = now + delay(from→to) ± jitter]──►
//!                            ──[writer: sleep until release, write]──► node to
//! ```
//!
//! Release times never go backwards within one direction of a connection: TCP delivers a
//! stream in order, so jitter here varies the delay but cannot reorder messages inside one
//! connection. Messages are reordered across connections, when a reset nemesis breaks them
//! and the transport reconnects. Partitions and loss are not done here but by nftables on the
//! bridge, so they hit real packets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::topology::Topology;

/// Delay added to one direction of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkDelay {
    /// Fixed delay.
    pub base: Duration,
    /// Up to this much more, uniformly at random per chunk.
    pub jitter: Duration,
}

/// Chunks read at once from a connection.
const CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Chunks waiting for their release time per direction; beyond it the reader waits, so a slow
/// link pushes back on its sender instead of buffering without bound.
const CHUNKS_IN_FLIGHT_MAX: usize = 256;
/// Longest wait to reach the node behind a proxy.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Shared {
    delays: BTreeMap<(usize, usize), LinkDelay>,
}

/// The proxies of all slots of a run, and the link delays they apply.
#[derive(Clone, Debug)]
pub struct LinkProxies {
    shared: Arc<Mutex<Shared>>,
    /// Bumped to break every proxied connection at once.
    reset: Arc<watch::Sender<u64>>,
}

impl LinkProxies {
    /// Starts one proxy per slot of `topology`, listening at its advertised Raft address and
    /// forwarding to the node's own listener.
    pub async fn start(topology: &Topology, seed: u64) -> std::io::Result<LinkProxies> {
        let (reset, _) = watch::channel(0u64);
        let proxies = LinkProxies {
            shared: Arc::new(Mutex::new(Shared::default())),
            reset: Arc::new(reset),
        };
        for slot in 1..=topology.slots() {
            let listener = TcpListener::bind(topology.proxy_listen(slot)).await?;
            let context = ProxyContext {
                to: slot,
                target: topology.raft_bind(slot),
                slot_of: (1..=topology.slots())
                    .map(|other| (topology.node_ip(other), other))
                    .collect(),
                proxies: proxies.clone(),
            };
            let seed = seed ^ (slot as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            tokio::spawn(accept_loop(listener, context, seed));
        }
        Ok(proxies)
    }

    /// Sets the delay of the link `from` → `to`; `None` removes it.
    pub fn set_delay(&self, from: usize, to: usize, delay: Option<LinkDelay>) {
        let mut shared = self.lock();
        match delay {
            Some(delay) => shared.delays.insert((from, to), delay),
            None => shared.delays.remove(&(from, to)),
        };
    }

    /// Removes every link delay.
    pub fn clear_delays(&self) {
        self.lock().delays.clear();
    }

    /// Whether any link is delayed now.
    pub fn any_delay(&self) -> bool {
        !self.lock().delays.is_empty()
    }

    /// Breaks every proxied connection; the nodes reconnect.
    pub fn reset_connections(&self) {
        self.reset.send_modify(|generation| *generation += 1);
    }

    fn delay_of(&self, from: Option<usize>, to: Option<usize>) -> Option<LinkDelay> {
        let (Some(from), Some(to)) = (from, to) else {
            return None;
        };
        self.lock().delays.get(&(from, to)).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A poisoned lock only means a panic elsewhere; the map itself is always whole.
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Clone)]
struct ProxyContext {
    to: usize,
    target: SocketAddr,
    slot_of: Vec<(std::net::Ipv4Addr, usize)>,
    proxies: LinkProxies,
}

async fn accept_loop(listener: TcpListener, context: ProxyContext, seed: u64) {
    let mut random = Xoshiro256PlusPlus::seed_from_u64(seed);
    loop {
        let Ok((inbound, peer)) = listener.accept().await else {
            // Out of descriptors or similar: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let from = match peer.ip() {
            std::net::IpAddr::V4(ip) => context
                .slot_of
                .iter()
                .find(|(address, _)| *address == ip)
                .map(|(_, slot)| *slot),
            std::net::IpAddr::V6(_) => None,
        };
        let connection_seed = random.gen::<u64>();
        tokio::spawn(serve_connection(
            inbound,
            from,
            context.clone(),
            connection_seed,
        ));
    }
}

async fn serve_connection(
    inbound: TcpStream,
    from: Option<usize>,
    context: ProxyContext,
    seed: u64,
) {
    let mut reset = context.proxies.reset.subscribe();
    let outbound =
        match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(context.target)).await {
            Ok(Ok(stream)) => stream,
            _ => return,
        };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (inbound_read, inbound_write) = inbound.into_split();
    let (outbound_read, outbound_write) = outbound.into_split();
    let to = Some(context.to);
    let forward = pump(
        inbound_read,
        outbound_write,
        context.proxies.clone(),
        (from, to),
        seed,
    );
    let backward = pump(
        outbound_read,
        inbound_write,
        context.proxies.clone(),
        (to, from),
        seed.rotate_left(17),
    );
    tokio::select! {
        _ = forward => {}
        _ = backward => {}
        _ = reset.changed() => {}
    }
}

/// Copies `reader` to `writer`, holding each chunk for the link's delay at the time it was
/// read. Ends when the reader reaches the end of its stream and everything read was written,
/// or when the writer fails.
async fn pump(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    proxies: LinkProxies,
    link: (Option<usize>, Option<usize>),
    seed: u64,
) {
    let (sender, mut receiver) = mpsc::channel::<(Instant, Bytes)>(CHUNKS_IN_FLIGHT_MAX);
    let read_side = async move {
        let mut random = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut last_release = Instant::now();
        let mut buffer = BytesMut::with_capacity(CHUNK_BYTES_MAX);
        loop {
            buffer.reserve(CHUNK_BYTES_MAX);
            match reader.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let now = Instant::now();
            let release = match proxies.delay_of(link.0, link.1) {
                None => now,
                Some(delay) => {
                    let jitter_micros = u64::try_from(delay.jitter.as_micros()).unwrap_or(0);
                    let extra = Duration::from_micros(random.gen_range(0..=jitter_micros));
                    now + delay.base + extra
                }
            };
            // Bytes of one stream leave in order: never before the chunk ahead of them.
            last_release = last_release.max(release);
            if sender
                .send((last_release, buffer.split().freeze()))
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let write_side = async move {
        while let Some((release, chunk)) = receiver.recv().await {
            tokio::time::sleep_until(release).await;
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // The reader saw the end of the stream and everything it read is out: pass the end on.
        let _ = writer.shutdown().await;
    };
    // A failed writer drops the receiver, which ends the reader at its next chunk.
    tokio::join!(read_side, write_side);
}
