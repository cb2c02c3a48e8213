//! An in-process network with fault injection, for tests of the runtime in real time (the
//! classic course network): messages can be delayed (and so reordered), dropped, and stopped
//! by disconnected peers, partitions and one-way cuts.
//!
//! ```text
//!  MemoryTransport::send ─► faults decided now (seeded) ─► [delay on the tokio timer]
//!                         ─► links checked again at delivery ─► wire encode + decode
//!                         ─► the receiver's inbound channel
//! ```
//!
//! Every message goes through the wire format, so tests over this network exercise the codec
//! too.
//!
//! [`MemoryNetwork::wrap`] puts a real transport (TCP) behind the same faults: a wrapped peer's
//! messages are delayed, dropped and stopped by links here, then leave through the real
//! transport instead of being delivered in process. With every peer wrapped, partitions and
//! crashes can be played over real sockets. Links are checked both when a message is sent and when it would be delivered, so a
//! message in flight when a partition starts is lost, as on a real network.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use raft_core::{Message, NodeId};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::Transport;
use crate::wire::{decode_message, encode_message_frame, FrameDecoder};

/// What the network does to messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Probability that a message is dropped.
    pub drop_probability: f64,
    /// Each message is delayed by a duration drawn uniformly from this range; a wide range
    /// reorders messages.
    pub delay_min: Duration,
    /// See `delay_min`.
    pub delay_max: Duration,
}

impl Faults {
    /// A network that delivers everything at once, in order.
    pub fn reliable() -> Faults {
        Faults {
            drop_probability: 0.0,
            delay_min: Duration::ZERO,
            delay_max: Duration::ZERO,
        }
    }

    /// The classic unreliable network: a tenth of the messages lost, delays up to 27 ms.
    pub fn unreliable() -> Faults {
        Faults {
            drop_probability: 0.1,
            delay_min: Duration::ZERO,
            delay_max: Duration::from_millis(27),
        }
    }
}

crate::declare_metrics! {
    /// Messages the network has seen, by fate (none is exported: a test reads them).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NetworkCounters;
    /// Where the network counts, as messages go.
    struct Counters;

    /// Handed to `send`.
    sent: u64,
    /// Put in a receiver's inbound channel.
    delivered: u64,
    /// Lost by the fault model.
    dropped_by_faults: u64,
    /// Stopped by a disconnected peer, a partition or a cut link.
    dropped_by_links: u64,
    /// Lost because the receiver is not registered or its inbound channel is full.
    dropped_at_receiver: u64,
}

struct State {
    endpoints: BTreeMap<NodeId, mpsc::Sender<Message>>,
    /// Real transports of wrapped peers: what they send leaves through these.
    wrapped: BTreeMap<NodeId, Arc<dyn Transport>>,
    faults: Faults,
    disconnected: BTreeSet<NodeId>,
    /// Directed links that carry nothing.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Group of each peer while partitioned; peers in different groups cannot talk.
    partition: BTreeMap<NodeId, usize>,
    rng: Xoshiro256PlusPlus,
}

impl State {
    fn link_open(&self, from: NodeId, to: NodeId) -> bool {
        !self.disconnected.contains(&from)
            && !self.disconnected.contains(&to)
            && !self.cut.contains(&(from, to))
            && self.partition.get(&from) == self.partition.get(&to)
    }
}

struct Shared {
    state: Mutex<State>,
    counters: Counters,
    runtime: Handle,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn deliver(&self, message: Message) {
        let (endpoint, wrapped) = {
            let state = self.state();
            if !state.link_open(message.from, message.to) {
                self.counters
                    .dropped_by_links
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            (
                state.endpoints.get(&message.to).cloned(),
                state.wrapped.get(&message.from).cloned(),
            )
        };
        if let Some(transport) = wrapped {
            // Handed to the real transport, which counts its own losses.
            transport.send(message);
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(endpoint) = endpoint else {
            self.counters
                .dropped_at_receiver
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(message) = through_the_wire(&message) else {
            self.counters
                .dropped_at_receiver
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        if endpoint.try_send(message).is_ok() {
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters
                .dropped_at_receiver
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Encodes and decodes `message` as a TCP peer would.
fn through_the_wire(message: &Message) -> Option<Message> {
    let mut stream = BytesMut::new();
    encode_message_frame(message, &mut stream);
    let mut decoder = FrameDecoder::new(u64::MAX);
    decoder.extend(&stream);
    let frame = decoder.next_frame().ok()??;
    match decode_message(frame) {
        Ok(decoded) => Some(decoded),
        Err(error) => {
            tracing::error!(%error, "a message did not survive the wire format");
            None
        }
    }
}

/// The network: registers peers and controls faults. Cheap to clone.
#[derive(Clone)]
pub struct MemoryNetwork {
    shared: Arc<Shared>,
}

impl MemoryNetwork {
    /// A reliable network whose random choices come from `seed`. Must be created inside a
    /// tokio runtime (delayed deliveries run on its timer).
    pub fn new(seed: u64) -> MemoryNetwork {
        MemoryNetwork {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    endpoints: BTreeMap::new(),
                    wrapped: BTreeMap::new(),
                    faults: Faults::reliable(),
                    disconnected: BTreeSet::new(),
                    cut: BTreeSet::new(),
                    partition: BTreeMap::new(),
                    rng: Xoshiro256PlusPlus::seed_from_u64(seed),
                }),
                counters: Counters::default(),
                runtime: Handle::current(),
            }),
        }
    }

    /// Registers peer `id`, whose inbound messages go to `inbound`, and returns its transport.
    /// Registering an id again replaces the old endpoint (a restarted peer).
    pub fn endpoint(&self, id: NodeId, inbound: mpsc::Sender<Message>) -> MemoryTransport {
        let mut state = self.shared.state();
        state.wrapped.remove(&id);
        state.endpoints.insert(id, inbound);
        MemoryTransport {
            id,
            shared: Arc::clone(&self.shared),
        }
    }

    /// Puts peer `id`'s real `transport` behind this network's faults and links: what `id`
    /// sends through the returned transport is delayed, dropped or stopped here first, then
    /// handed to `transport`. Faults act on the sending side only, so a partition holds when
    /// every peer is wrapped. Wrapping an id again replaces the old transport.
    pub fn wrap<T: Transport>(&self, id: NodeId, transport: T) -> MemoryTransport {
        let mut state = self.shared.state();
        state.endpoints.remove(&id);
        state.wrapped.insert(id, Arc::new(transport));
        MemoryTransport {
            id,
            shared: Arc::clone(&self.shared),
        }
    }

    /// Forgets peer `id` (a crashed peer): messages to it are lost, and a wrapped transport is
    /// dropped, which stops it.
    pub fn remove(&self, id: NodeId) {
        let removed = {
            let mut state = self.shared.state();
            state.endpoints.remove(&id);
            state.wrapped.remove(&id)
        };
        // Dropped outside the lock: stopping a transport may take a while.
        drop(removed);
    }

    /// Sets what happens to messages from now on.
    pub fn set_faults(&self, faults: Faults) {
        assert!(
            faults.delay_min <= faults.delay_max,
            "MemoryNetwork::set_faults: delay range is empty"
        );
        self.shared.state().faults = faults;
    }

    /// Cuts every link to and from `id`.
    pub fn disconnect(&self, id: NodeId) {
        self.shared.state().disconnected.insert(id);
    }

    /// Restores the links of `id` (partitions and cuts still apply).
    pub fn connect(&self, id: NodeId) {
        self.shared.state().disconnected.remove(&id);
    }

    /// Splits the peers into groups that cannot reach each other; peers not named form one
    /// more group.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        let mut state = self.shared.state();
        state.partition.clear();
        for (group, members) in groups.iter().enumerate() {
            for member in members.iter() {
                state.partition.insert(*member, group + 1);
            }
        }
    }

    /// Stops messages from `from` to `to` (one way).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        self.shared.state().cut.insert((from, to));
    }

    /// Ends every partition, cut and disconnection.
    pub fn heal(&self) {
        let mut state = self.shared.state();
        state.partition.clear();
        state.cut.clear();
        state.disconnected.clear();
    }

    /// What has happened to messages so far.
    pub fn counters(&self) -> NetworkCounters {
        self.shared.counters.snapshot()
    }
}

/// One peer's handle on a [`MemoryNetwork`].
#[derive(Clone)]
pub struct MemoryTransport {
    id: NodeId,
    shared: Arc<Shared>,
}

impl MemoryTransport {
    /// The peer this transport sends for.
    pub fn id(&self) -> NodeId {
        self.id
    }
}

impl Transport for MemoryTransport {
    fn send(&self, message: Message) {
        let shared = &self.shared;
        shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        let delay = {
            let mut state = shared.state();
            if !state.link_open(message.from, message.to) {
                shared
                    .counters
                    .dropped_by_links
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            let faults = state.faults.clone();
            if faults.drop_probability > 0.0 && state.rng.gen_bool(faults.drop_probability) {
                shared
                    .counters
                    .dropped_by_faults
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            if faults.delay_max.is_zero() {
                Duration::ZERO
            } else {
                state.rng.gen_range(faults.delay_min..=faults.delay_max)
            }
        };
        if delay.is_zero() {
            shared.deliver(message);
            return;
        }
        let shared = Arc::clone(shared);
        self.shared.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            shared.deliver(message);
        });
    }
}
