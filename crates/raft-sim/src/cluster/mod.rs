//! The simulated cluster: peers driven by one event loop over virtual time.
//!
//! ```text
//!           ┌──────────────────────── EventQueue (time, sequence) ───────────────────────┐
//!           ▼                                                                            │
//!  pop ─► Tick ─► core.tick() ──────┐                                                    │
//!         Deliver ─► core.step(m) ──┼─► drive(peer): while has_ready { ready() }         │
//!         DiskDone ─► store.write, core.on_persisted(id)       (now, or at a Flush when  │
//!         Flush (start/read/restart, batching)                 ready() is batched)       │
//!         ApplyDone (asynchronous service)  │                                            │
//!                                   │   persist   ─► Disk ─► DiskDone ───────────────────┤
//!                                   │   messages  ─► Network ─► Deliver ─────────────────┤
//!                                   │   snapshot / committed ─► Service (now, or ────────┘
//!                                   │        ApplyDone later) [+ the user's machine,
//!                                   │        checked against a reference replica]
//!                                   │        ─► on_applied, compact
//!                                   └─► invariants checked for the peer the event touched
//! ```
//!
//! Nothing here reads a clock, spawns a thread or iterates a hash map: the seed and the calls
//! made on the cluster fix the whole run.
//!
//! Submodules: `inputs` (what each event does), `ready` (the driving loop), `requests`
//! (client calls), `faults` (fault injection), `lossy` (crashes that lose durable writes),
//! `checks` (invariant hooks and reports). Every
//! peer's store lives in `stores` (see `crate::storage`), the user's machines' checks in
//! `machines` (see `crate::machine`).

mod builder;
mod checks;
mod faults;
mod inputs;
mod lossy;
mod ready;
mod requests;

use std::panic::{self, AssertUnwindSafe};

use bytes::Bytes;
use raft_core::{Configuration, Index, LogId, NodeId, Raft, ReadState, SharedMemStorage};
use rand::SeedableRng;

use crate::config::SimConfig;
use crate::disk::Disk;
use crate::event::{Event, EventQueue};
use crate::invariants::{Invariants, Violation};
pub use builder::ClusterBuilder;
use lossy::WriteJournal;
pub use lossy::LOST_WRITES_MAX;

use crate::machine::{MachineCounters, MachineKind, Machines, PeerMachine, StateMachine};
use crate::network::{Network, NetworkStats};
use crate::service::Service;
use crate::storage::{SimStorage, Stores};
use crate::trace::{Digest, Trace};
use crate::SimRng;

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else {
        "a panic without a message".to_string()
    }
}

/// How many `ready()` rounds one event may take before the core is declared stuck.
const READY_ROUNDS_MAX: usize = 100_000;
/// How many consecutive empty `Ready`s (while `has_ready()` says otherwise) mean a stuck core.
/// One is normal: a leader with nothing to send clears its replication flag.
const EMPTY_READY_ROUNDS_MAX: usize = 3;

/// Counters of what happened in a run, besides network traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// Events processed.
    pub events: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Restarts.
    pub restarts: u64,
    /// Crashes that lost durable writes ([`Cluster::crash_losing_writes`]; counted in
    /// `crashes` too).
    pub lossy_crashes: u64,
    /// Network faults injected: partitions, disconnections and one-way link cuts.
    pub partitions: u64,
    /// Persist requests completed.
    pub disk_writes: u64,
    /// Entries applied by all services.
    pub entries_applied: u64,
    /// Snapshots the services took.
    pub snapshots_taken: u64,
    /// Snapshots the services restored (from a leader or at restart).
    pub snapshots_restored: u64,
    /// Messages the cores dropped (stale, ignored, invalid...).
    pub messages_rejected: u64,
    /// Proposals accepted by a leader.
    pub proposals: u64,
    /// Reads answered.
    pub reads_served: u64,
    /// Reads that failed (leader changed, lost request).
    pub reads_failed: u64,
    /// Lease reads a leader served at once, on its lease (the rest took a round).
    pub lease_reads: u64,
}

impl std::ops::AddAssign for SimCounters {
    fn add_assign(&mut self, other: SimCounters) {
        let SimCounters {
            events,
            crashes,
            restarts,
            lossy_crashes,
            partitions,
            disk_writes,
            entries_applied,
            snapshots_taken,
            snapshots_restored,
            messages_rejected,
            proposals,
            reads_served,
            reads_failed,
            lease_reads,
        } = other;
        self.events += events;
        self.crashes += crashes;
        self.restarts += restarts;
        self.lossy_crashes += lossy_crashes;
        self.partitions += partitions;
        self.disk_writes += disk_writes;
        self.entries_applied += entries_applied;
        self.snapshots_taken += snapshots_taken;
        self.snapshots_restored += snapshots_restored;
        self.messages_rejected += messages_rejected;
        self.proposals += proposals;
        self.reads_served += reads_served;
        self.reads_failed += reads_failed;
        self.lease_reads += lease_reads;
    }
}

/// One simulated server: the core (absent while crashed), its disk and its service.
pub(crate) struct Peer {
    id: NodeId,
    /// The running core; `None` while crashed.
    node: Option<Raft<SimStorage>>,
    /// What the peer's store holds: a reader of it, for the checkers (also while the peer is
    /// down). The core reads the same store through a reader of its own, except with the
    /// lying disk.
    disk: SimStorage,
    /// With a disk that lies about durability: what the core reads, every write it was told
    /// is durable (`disk` holds only those that really completed). Rebuilt at every boot.
    overlay: Option<SharedMemStorage>,
    /// Bumped by every crash: events of an older incarnation are void.
    incarnation: u64,
    service: Service,
    flush_scheduled: bool,
    /// Proposals of this incarnation not yet applied: index → (id, command hash).
    proposals: std::collections::BTreeMap<Index, (LogId, u64)>,
    /// Reads answered to this peer: (context, index).
    reads: Vec<ReadState>,
    /// Reads that failed on this peer.
    failed_reads: Vec<u64>,
    /// Commands this incarnation forwarded to a leader and awaits the outcome of.
    forwards: std::collections::BTreeMap<raft_core::ForwardId, Bytes>,
    /// Work handed to an asynchronous service, oldest first.
    apply_queue: std::collections::VecDeque<ApplyItem>,
    /// Completion time of the newest item of `apply_queue`.
    apply_done_us: u64,
    /// The user's state machine, beside `service`, when the cluster runs one.
    machine: Option<PeerMachine>,
    /// The peer's latest completed writes, for a crash that loses some (`lossy.rs`).
    journal: WriteJournal,
    /// The next boot reports `possibly_lost_writes`: the peer crashed losing writes, or
    /// crashed while still recovering (no clean-shutdown marker, in a real node's terms).
    possibly_lost_writes: bool,
}

/// Work for the service.
enum ApplyItem {
    Snapshot(raft_core::Snapshot),
    Entries(Vec<raft_core::Entry>),
}

/// A deterministic cluster of Raft peers. See the module documentation for the flow.
pub struct Cluster {
    config: SimConfig,
    /// Every peer's store.
    stores: Box<dyn Stores>,
    /// The user's state machines' checks, when the peers run one.
    machines: Option<Machines>,
    now_us: u64,
    rng: SimRng,
    queue: EventQueue,
    peers: Vec<Peer>,
    network: Network,
    disk: Disk,
    pub(crate) invariants: Invariants,
    trace: Trace,
    counters: SimCounters,
    next_read_context: u64,
    /// Every forwarded command's outcome as its follower learned it, in order.
    forward_outcomes: Vec<ForwardRecord>,
}

/// What a follower learned of a command it forwarded ([`Cluster::start_or_forward`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardRecord {
    /// The follower that forwarded it.
    pub peer: NodeId,
    /// The command.
    pub command: Bytes,
    /// The outcome handed out in its `Ready::forwarded`.
    pub outcome: Result<LogId, raft_core::ForwardError>,
}

impl Cluster {
    /// Starts a cluster: every peer boots from empty storage (of the configured kind). The
    /// first `config.initial_voters` name themselves as the voters; the others start with an
    /// empty configuration and wait to be added. [`Cluster::builder`] starts one on storage of
    /// another kind.
    pub fn new(config: SimConfig) -> Cluster {
        Cluster::builder(config).build()
    }

    /// A cluster to be started with more than a [`SimConfig`]: storage of the user's kind.
    pub fn builder(config: SimConfig) -> ClusterBuilder {
        ClusterBuilder::new(config)
    }

    pub(super) fn boot_all(
        config: SimConfig,
        mut stores: Box<dyn Stores>,
        machine: Option<MachineKind>,
    ) -> Cluster {
        assert!(config.peers >= 1, "a cluster needs at least one peer");
        assert!(
            (1..=config.peers).contains(&config.initial_voters),
            "between one voter and every peer start in the configuration, not {} of {}",
            config.initial_voters,
            config.peers
        );
        assert!(config.tick_us > 0, "the tick must last some time");
        let voters = Configuration::new((1..=config.initial_voters as u64).map(NodeId));
        let peers = (0..config.peers)
            .map(|index| {
                let bootstrap = if index < config.initial_voters {
                    voters.clone()
                } else {
                    Configuration::default()
                };
                if let Err(error) = stores.create(index, &bootstrap) {
                    panic!("seed {}: cannot create storage: {error}", config.seed);
                }
                Peer {
                    id: NodeId(index as u64 + 1),
                    node: None,
                    disk: stores.reader(index),
                    overlay: None,
                    incarnation: 0,
                    service: Service::new(),
                    flush_scheduled: false,
                    proposals: Default::default(),
                    reads: Vec::new(),
                    failed_reads: Vec::new(),
                    forwards: std::collections::BTreeMap::new(),
                    apply_queue: Default::default(),
                    apply_done_us: 0,
                    machine: None,
                    journal: WriteJournal::default(),
                    possibly_lost_writes: false,
                }
            })
            .collect();
        let mut cluster = Cluster {
            now_us: 0,
            rng: SimRng::seed_from_u64(config.seed),
            queue: EventQueue::default(),
            peers,
            stores,
            machines: machine.map(Machines::new),
            network: Network::new(config.network.clone(), config.peers),
            disk: Disk::new(config.disk.clone(), config.peers),
            invariants: Invariants::default(),
            trace: Trace::new(config.trace_capacity),
            counters: SimCounters::default(),
            next_read_context: 1,
            forward_outcomes: Vec::new(),
            config,
        };
        for peer in 0..cluster.peers.len() {
            cluster.boot(peer);
        }
        cluster
    }

    /// Runs every event up to `ms` virtual milliseconds from now.
    pub fn run_for(&mut self, ms: u64) {
        let end_us = self.now_us + ms * 1_000;
        while self.queue.next_time_us().is_some_and(|at| at <= end_us) {
            self.step_event();
        }
        self.now_us = end_us;
    }

    /// Runs events until `done` holds (checked before the first event and after each one) or
    /// `deadline_ms` virtual milliseconds have passed. Returns whether `done` held.
    pub fn run_until(&mut self, mut done: impl FnMut(&Cluster) -> bool, deadline_ms: u64) -> bool {
        let end_us = self.now_us + deadline_ms * 1_000;
        loop {
            if done(self) {
                return true;
            }
            match self.queue.next_time_us() {
                Some(at_us) if at_us <= end_us => self.step_event(),
                _ => {
                    self.now_us = end_us;
                    return done(self);
                }
            }
        }
    }

    /// Virtual milliseconds since the cluster started.
    pub fn now_ms(&self) -> u64 {
        self.now_us / 1_000
    }

    /// Virtual microseconds since the cluster started.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    fn step_event(&mut self) {
        let Some((at_us, event)) = self.queue.pop() else {
            return;
        };
        assert!(
            at_us >= self.now_us,
            "invariant time-monotonic: event in the past"
        );
        self.now_us = at_us;
        self.counters.events += 1;
        // A panic inside the core (its own invariant assertions) is reported like a violated
        // invariant, with the seed and the trace.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| self.dispatch(event)));
        match outcome {
            Ok(Some(peer)) => self.check_peer(peer),
            Ok(None) => {}
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                if message.starts_with("invariant violated") {
                    panic::resume_unwind(payload);
                }
                self.fail(Violation {
                    invariant: "core-panicked",
                    detail: message,
                });
            }
        }
    }

    fn dispatch(&mut self, event: Event) -> Option<usize> {
        match event {
            Event::Tick { peer, incarnation } => self.on_tick(peer, incarnation),
            Event::Deliver {
                message,
                from_incarnation,
            } => self.on_deliver(message, from_incarnation),
            Event::DiskDone {
                peer,
                incarnation,
                request,
            } => self.on_disk_done(peer, incarnation, request),
            Event::Flush { peer, incarnation } => self.on_flush(peer, incarnation),
            Event::ApplyDone { peer, incarnation } => self.on_apply_done(peer, incarnation),
        }
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        let index = (id.0 as usize).checked_sub(1)?;
        (index < self.peers.len()).then_some(index)
    }

    pub(crate) fn peer_index(&self, id: NodeId) -> usize {
        match self.index_of(id) {
            Some(index) => index,
            None => self.fail_scenario(&format!("{id} is not a peer of this cluster")),
        }
    }

    /// The ids of all peers, `NodeId(1)` to `NodeId(n)`.
    pub fn ids(&self) -> Vec<NodeId> {
        self.peers.iter().map(|peer| peer.id).collect()
    }

    /// Number of peers.
    pub fn size(&self) -> usize {
        self.peers.len()
    }

    /// The running core of `peer`, or `None` while it is crashed.
    pub fn node(&self, peer: NodeId) -> Option<&Raft<SimStorage>> {
        self.index_of(peer)
            .and_then(|index| self.peers[index].node.as_ref())
    }

    /// The configuration in effect on `peer` (the latest in its log), or `None` while it is
    /// crashed.
    pub fn configuration(&self, peer: NodeId) -> Option<&Configuration> {
        self.node(peer).map(|node| node.configuration())
    }

    /// The service (state machine) of `peer`; after a crash, the state it had.
    pub fn service(&self, peer: NodeId) -> &Service {
        &self.peers[self.peer_index(peer)].service
    }

    /// The user's state machine of `peer` (after a crash, the state it had), when the cluster
    /// runs one ([`ClusterBuilder::state_machine`]).
    pub fn machine(&self, peer: NodeId) -> Option<&dyn StateMachine> {
        self.peers[self.peer_index(peer)]
            .machine
            .as_ref()
            .map(PeerMachine::state)
    }

    /// What the state-machine checks did so far, when the cluster runs a user's machine.
    pub fn machine_counters(&self) -> Option<MachineCounters> {
        self.machines.as_ref().map(|machines| machines.counters)
    }

    /// Whether `peer` is running.
    pub fn is_alive(&self, peer: NodeId) -> bool {
        self.node(peer).is_some()
    }

    /// Whether `peer` is attached to the network (regardless of partitions and crashes).
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.network.is_connected(self.peer_index(peer))
    }

    /// Whether messages from `from` currently reach `to`.
    pub fn can_reach(&self, from: NodeId, to: NodeId) -> bool {
        self.network
            .can_reach(self.peer_index(from), self.peer_index(to))
    }

    /// Reads answered to `peer` so far (context and index), in order.
    pub fn reads(&self, peer: NodeId) -> &[ReadState] {
        &self.peers[self.peer_index(peer)].reads
    }

    /// Contexts of reads that failed on `peer` so far.
    pub fn failed_reads(&self, peer: NodeId) -> &[u64] {
        &self.peers[self.peer_index(peer)].failed_reads
    }

    /// The configuration the cluster runs with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The random generator of the run, for scenarios that need random choices (so that the
    /// seed fixes them too).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.rng
    }

    /// Message and byte counts per kind.
    pub fn network_stats(&self) -> &NetworkStats {
        self.network.stats()
    }

    /// Whether the network is currently reliable.
    pub fn is_reliable(&self) -> bool {
        self.network.config().reliable
    }

    /// Counters of the run.
    pub fn counters(&self) -> SimCounters {
        self.counters
    }

    /// Digest of every event so far: two runs of one seed have equal digests.
    pub fn digest(&self) -> Digest {
        self.trace.digest()
    }

    /// Events recorded in the trace so far.
    pub fn traced_events(&self) -> u64 {
        self.trace.events()
    }

    /// Pending events (messages in flight, writes, ticks).
    pub fn pending_events(&self) -> usize {
        self.queue.len()
    }

    /// Entries any peer applied, at most.
    pub fn max_applied(&self) -> Index {
        self.invariants.state_machine.max_applied()
    }

    /// The highest index known committed.
    pub fn max_committed(&self) -> Index {
        self.invariants.committed.max()
    }

    /// Writes acknowledged to clients so far.
    pub fn acknowledged_writes(&self) -> usize {
        self.invariants.acknowledged.count()
    }

    /// Terms in which some peer was leader.
    pub fn terms_with_leader(&self) -> usize {
        self.invariants.election.terms_with_leader()
    }

    /// Distinct log entries seen in any peer's log.
    pub fn distinct_entries(&self) -> usize {
        self.invariants.log_matching.len()
    }

    /// Reads answered, in total, with an index checked against the commit history.
    pub fn reads_verified(&self) -> u64 {
        self.invariants.reads.served()
    }

    /// The outcomes of forwarded commands so far, in the order the followers learned them.
    pub fn forward_outcomes(&self) -> &[ForwardRecord] {
        &self.forward_outcomes
    }

    /// The command applied at `index` by any peer (all peers agree, or an invariant failed).
    pub fn command_at(&self, index: Index) -> Option<&Bytes> {
        self.invariants.state_machine.command_at(index)
    }

    /// A command from the state machine's workload, when the peers run one.
    pub(crate) fn random_machine_command(&mut self) -> Option<Bytes> {
        let machines = self.machines.as_ref()?;
        Some(machines.random_command(&mut self.rng))
    }

    pub(crate) fn services(&self) -> impl Iterator<Item = &Service> + '_ {
        self.peers.iter().map(|peer| &peer.service)
    }
}
