//! Options of a simulated cluster. One [`SimConfig`] and its seed fix every choice a run makes.
//!
//! ```text
//!  SimConfig ─┬─ core: raft_core::Config template (id and seed replaced per peer)
//!             ├─ network: NetworkConfig (delays, loss, duplication, reordering)
//!             ├─ disk: DiskConfig (write latency)
//!             ├─ storage: StorageKind (memory, or a write-ahead log per peer)
//!             └─ service: snapshot interval and size
//! ```
//!
//! Times are virtual microseconds (`_us`) inside the simulator; the public helpers speak
//! virtual milliseconds (`_ms`).

use raft_core::{Config, NodeId};

use crate::storage::StorageKind;

/// How messages travel between peers.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Smallest one-way delay of a message.
    pub delay_min_us: u64,
    /// Largest one-way delay of a message on a reliable network.
    pub delay_max_us: u64,
    /// Whether messages are lost, duplicated and delayed at random (labrpc's "unreliable").
    pub reliable: bool,
    /// Unreliable only: probability that a message is lost.
    pub drop_probability: f64,
    /// Unreliable only: probability that a message is delivered twice.
    pub duplicate_probability: f64,
    /// Unreliable only: extra delay drawn uniformly from `[0, extra_delay_max_us]`.
    pub extra_delay_max_us: u64,
    /// Whether responses are sometimes held back for a long time (labrpc's "long reordering").
    pub long_reordering: bool,
    /// Long reordering only: probability that a response is held back.
    pub long_reorder_probability: f64,
    /// Long reordering only: smallest hold-back delay. labrpc holds responses back 200 to
    /// 2200 ms, sized for 6.824's 1 s election timeout; [`SimConfig::new`] scales the range to
    /// the configured election timeout (0.2 to 2.2 times it), so the fault is as harsh
    /// relative to elections as in the classic tests.
    pub long_reorder_min_us: u64,
    /// Long reordering only: largest hold-back delay.
    pub long_reorder_max_us: u64,
    /// Long reordering also holds back requests (so stale appends arrive very late), not
    /// only responses as labrpc does.
    pub long_reorder_requests: bool,
}

impl Default for NetworkConfig {
    fn default() -> NetworkConfig {
        NetworkConfig {
            delay_min_us: 1_000,
            delay_max_us: 5_000,
            reliable: true,
            drop_probability: 0.1,
            duplicate_probability: 0.05,
            extra_delay_max_us: 27_000,
            long_reordering: false,
            long_reorder_probability: 2.0 / 3.0,
            long_reorder_min_us: 200_000,
            long_reorder_max_us: 2_200_000,
            long_reorder_requests: false,
        }
    }
}

/// How long a write to a peer's disk takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    /// Smallest latency of one persist request.
    pub latency_min_us: u64,
    /// Largest latency of one persist request.
    pub latency_max_us: u64,
    /// A planted bug for testing the checkers: the disk reports writes durable as soon as
    /// they are issued, so a crash loses acknowledged state. Never set it elsewhere. Works
    /// with any storage: the core reads an in-memory copy holding every acknowledged write,
    /// while the store gets each write only when the disk completes it.
    pub lie_about_durability: bool,
    /// Whether a peer restarted after [`crate::Cluster::crash_losing_writes`] is told that
    /// its storage may have lost writes (`InitialState::possibly_lost_writes`), so that it
    /// recovers. `false` models a node layer without protocol-aware recovery: the same loss,
    /// unnoticed, which the checkers must catch. Default `true`.
    pub report_lost_writes: bool,
    /// Randomized runs: the share of crashes, in percent, that also lose the writes of the
    /// peer's last one to three completed persist batches
    /// ([`crate::Cluster::crash_losing_writes`]), taken only while no peer is suspect (the
    /// recovery's fault model). 0 (the default) never does; [`crate::chaos_config`] sets
    /// [`LOSSY_CRASH_PERCENT`].
    pub lossy_crash_percent: u32,
}

/// The share of crashes (percent) that lose durable writes in randomized runs.
pub const LOSSY_CRASH_PERCENT: u32 = 25;

impl Default for DiskConfig {
    fn default() -> DiskConfig {
        DiskConfig {
            latency_min_us: 0,
            latency_max_us: 2_000,
            lie_about_durability: false,
            report_lost_writes: true,
            lossy_crash_percent: 0,
        }
    }
}

/// What the simulated service does besides applying commands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Take a snapshot and compact the log every this many applied entries (6.824's
    /// `SnapShotInterval`); `None` never snapshots.
    pub snapshot_interval: Option<u64>,
    /// Filler bytes added to every snapshot, so that snapshots span several chunks.
    pub snapshot_padding_bytes: usize,
    /// When above zero, the service applies off the consensus loop: each batch of committed
    /// entries (or snapshot) is applied after a random delay up to this, in order, and only
    /// then reported with `on_applied`.
    pub apply_delay_max_us: u64,
}

/// Everything that defines a simulated cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice of the run.
    pub seed: u64,
    /// Number of peers; they are `NodeId(1)` to `NodeId(peers)`.
    pub peers: usize,
    /// How many of the peers form the initial configuration: `NodeId(1)` to
    /// `NodeId(initial_voters)` are its voters. The others run from the start with empty
    /// storage and an empty configuration, as a new server does: they never campaign, and
    /// they learn the log and their configuration from a leader once a membership change
    /// adds them (see `Cluster::propose_conf_change`). At least 1, at most `peers`.
    pub initial_voters: usize,
    /// Virtual time between two ticks of one peer.
    pub tick_us: u64,
    /// Template of every peer's core configuration; `id` and `seed` are set per peer.
    pub core: Config,
    /// Network behaviour.
    pub network: NetworkConfig,
    /// Disk behaviour.
    pub disk: DiskConfig,
    /// What every peer stores its durable state in (unless the cluster is built with a
    /// harness of its own, `ClusterBuilder::storage`).
    pub storage: StorageKind,
    /// Service behaviour.
    pub service: ServiceConfig,
    /// Number of recent events kept for failure reports. The `RAFT_SIM_TRACE` environment
    /// variable overrides it.
    pub trace_capacity: usize,
    /// Panic when the core drops a message as [`raft_core::StepError::Invalid`]: a correct
    /// cluster never sends one, so it points at a bug.
    pub strict_invalid: bool,
    /// When above zero, a peer does not call `ready()` right after each input but after a
    /// random delay up to this, so several inputs (messages, ticks, completed writes) are
    /// batched into one `Ready`, as a busy runtime would.
    pub ready_delay_max_us: u64,
}

impl SimConfig {
    /// A reliable cluster of `peers` peers with the core's default configuration, a 10 ms
    /// tick, memory storage and no snapshots. Long reordering delays are scaled to the election
    /// timeout (see [`NetworkConfig::long_reorder_min_us`]).
    pub fn new(peers: usize, seed: u64) -> SimConfig {
        let mut config = SimConfig {
            seed,
            peers,
            initial_voters: peers,
            tick_us: 10_000,
            core: Config::new(NodeId(1), 0),
            network: NetworkConfig::default(),
            disk: DiskConfig::default(),
            storage: StorageKind::Memory,
            service: ServiceConfig::default(),
            trace_capacity: 40,
            strict_invalid: true,
            ready_delay_max_us: 0,
        };
        config.scale_long_reordering();
        config
    }

    /// Sets the long-reordering hold-back range to 0.2 to 2.2 election timeouts (labrpc's
    /// 200 to 2200 ms against 6.824's 1 s). Call again after changing the election timeout.
    pub fn scale_long_reordering(&mut self) {
        let timeout_us = self.election_timeout_ms() * 1_000;
        self.network.long_reorder_min_us = timeout_us / 5;
        self.network.long_reorder_max_us = timeout_us * 22 / 10;
    }

    /// The same configuration with snapshots every `interval` applied entries.
    pub fn with_snapshots(mut self, interval: u64) -> SimConfig {
        self.service.snapshot_interval = Some(interval);
        self
    }

    /// The same configuration with only the first `voters` peers in the initial
    /// configuration; the others wait to be added.
    pub fn with_initial_voters(mut self, voters: usize) -> SimConfig {
        self.initial_voters = voters;
        self
    }

    /// The same configuration with every peer on `storage`.
    pub fn with_storage(mut self, storage: StorageKind) -> SimConfig {
        self.storage = storage;
        self
    }

    /// The same configuration on an unreliable network.
    pub fn unreliable(mut self) -> SimConfig {
        self.network.reliable = false;
        self
    }

    /// The longest randomized election timeout, in virtual milliseconds: the counterpart of
    /// 6.824's `RaftElectionTimeout` (a bound on how long an election takes to start).
    pub fn election_timeout_ms(&self) -> u64 {
        2 * u64::from(self.core.election_ticks) * self.tick_us / 1_000
    }
}
