//! The one call that puts a user's state machine under the simulator: the randomized run
//! ([`crate::run_chaos`]: every fault, then a liveness phase) over many seeds, with every peer
//! running the machine beside the built-in service and every check of `machine.rs` on top of
//! the usual invariants.
//!
//! ```text
//!  check_state_machine::<M>(&options)
//!    seeds: options.exact_seeds, else RAFT_SIM_SEED / RAFT_SIM_SEEDS / RAFT_SIM_SEED_START,
//!           else options.seeds from 0
//!    per seed, on RAFT_SIM_THREADS threads:
//!      chaos_config(seed) + snapshots on every seed + no tiny proposal limits
//!      Cluster::builder(config).state_machine::<M>() [.storage(harness)] ─► run_chaos_on
//!    a failure ─► CheckFailure { seed, invariant, report } ─► panic naming the seed and
//!                 the replay: RAFT_SIM_SEED=S (run_state_machine(S, ..) runs that seed alone)
//! ```

use std::fmt;
use std::sync::{Arc, Mutex};

use raft_core::testing::storage::StoreHarness;
use raft_core::Config;

use crate::cluster::{panic_message, Cluster, SimCounters};
use crate::config::SimConfig;
use crate::machine::{MachineCounters, MachineKind, StateMachine};
use crate::randomized_run::{chaos_config, run_chaos_on, ChaosOptions, ChaosReport};
use crate::seeds::{seeds, sweep, DEFAULT_SEEDS};
use crate::storage::{HarnessStores, Stores};

/// Makes the stores of one run.
type StoresFactory = Arc<dyn Fn() -> Box<dyn Stores> + Send + Sync>;

/// What [`check_state_machine`] runs.
#[derive(Clone)]
pub struct CheckOptions {
    /// Names the check in reports and in the replay hint (the name of your test, say).
    pub name: String,
    /// How many seeds run, from seed 0, unless `RAFT_SIM_SEED`, `RAFT_SIM_SEEDS` or
    /// `RAFT_SIM_SEED_START` say otherwise (see [`crate::seeds`]).
    pub seeds: usize,
    /// Runs exactly these seeds instead, whatever the environment says (regression seeds, or
    /// a test that must not follow `RAFT_SIM_SEED`).
    pub exact_seeds: Option<Vec<u64>>,
    /// The randomized run of each seed.
    pub chaos: ChaosOptions,
    /// The peers' storage; memory storage when `None`.
    storage: Option<StoresFactory>,
}

impl CheckOptions {
    /// [`DEFAULT_SEEDS`] seeds of the default randomized run, on memory storage.
    pub fn new(name: impl Into<String>) -> CheckOptions {
        CheckOptions {
            name: name.into(),
            seeds: DEFAULT_SEEDS,
            exact_seeds: None,
            chaos: ChaosOptions::default(),
            storage: None,
        }
    }

    /// The same options with `count` seeds.
    pub fn with_seeds(mut self, count: usize) -> CheckOptions {
        self.seeds = count;
        self
    }

    /// The same options with exactly `seeds`, whatever the environment says.
    pub fn with_exact_seeds(mut self, seeds: impl IntoIterator<Item = u64>) -> CheckOptions {
        self.exact_seeds = Some(seeds.into_iter().collect());
        self
    }

    /// The same options with each seed's randomized run shaped by `chaos`.
    pub fn with_chaos(mut self, chaos: ChaosOptions) -> CheckOptions {
        self.chaos = chaos;
        self
    }

    /// The same options with the peers on stores of the user's kind: `harness` makes a
    /// [`StoreHarness`] for each seed's cluster (see [`crate::ClusterBuilder::storage`]).
    pub fn with_storage<H: StoreHarness + 'static>(
        mut self,
        harness: impl Fn() -> H + Send + Sync + 'static,
    ) -> CheckOptions {
        self.storage = Some(Arc::new(move || {
            Box::new(HarnessStores::new(harness())) as Box<dyn Stores>
        }));
        self
    }
}

impl fmt::Debug for CheckOptions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("CheckOptions")
            .field("name", &self.name)
            .field("seeds", &self.seeds)
            .field("exact_seeds", &self.exact_seeds)
            .field("chaos", &self.chaos)
            .field("own_storage", &self.storage.is_some())
            .finish()
    }
}

/// What a passing [`check_state_machine`] did, summed over its seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// [`CheckOptions::name`].
    pub name: String,
    /// The seeds that ran, in order.
    pub seeds: Vec<u64>,
    /// Virtual time of every run.
    pub virtual_ms: u64,
    /// Counters of every run: faults, writes, applies, snapshots.
    pub counters: SimCounters,
    /// What the state-machine checks did.
    pub machine: MachineCounters,
    /// Messages the peers sent.
    pub messages_sent: u64,
    /// Messages (or copies) the network lost or could not deliver.
    pub messages_lost: u64,
    /// Writes acknowledged to the simulated clients.
    pub acknowledged_writes: u64,
}

impl CheckReport {
    fn add(&mut self, run: &ChaosReport) {
        self.virtual_ms += run.virtual_ms;
        self.counters += run.counters;
        if let Some(machine) = run.machine {
            self.machine += machine;
        }
        self.messages_sent += run.network.messages();
        self.messages_lost += run
            .network
            .iter()
            .map(|(_, kind)| kind.dropped)
            .sum::<u64>();
        self.acknowledged_writes += run.acknowledged_writes as u64;
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, last) = (self.seeds.first(), self.seeds.last());
        let seeds = match (first, last) {
            (Some(first), Some(last)) if first != last => format!("seeds {first}..={last}"),
            (Some(only), _) => format!("seed {only}"),
            _ => "no seed".to_string(),
        };
        let (counters, machine) = (&self.counters, &self.machine);
        write!(
            formatter,
            "{}: {} runs ({seeds}), {:.1} virtual s\n  faults: {} crashes, {} restarts, {} \
             partitions, {} of {} messages lost\n  {} writes acknowledged, {} commands applied \
             by the replicas, {} snapshots taken, {} restored\n  checked: {} fingerprints \
             against the reference replica, {} snapshot round trips",
            self.name,
            self.seeds.len(),
            self.virtual_ms as f64 / 1000.0,
            counters.crashes,
            counters.restarts,
            counters.partitions,
            self.messages_lost,
            self.messages_sent,
            self.acknowledged_writes,
            machine.commands_applied,
            counters.snapshots_taken,
            machine.snapshots_restored,
            machine.fingerprints_compared,
            machine.snapshots_round_tripped,
        )
    }
}

/// How a [`check_state_machine`] seed failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckFailure {
    /// [`CheckOptions::name`].
    pub name: String,
    /// The failing seed: `RAFT_SIM_SEED=seed` replays it.
    pub seed: u64,
    /// The name of the broken invariant (`machine-deterministic`, `state-machine-safety`,
    /// ...), or `panic` for a panic outside the checkers.
    pub invariant: String,
    /// The failure report: the invariant, what broke it, the seed and the last events.
    pub report: String,
}

impl fmt::Display for CheckFailure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, seed) = (&self.name, self.seed);
        write!(
            formatter,
            "{}\nstate machine check {name} failed with seed {seed} ({}); replay it by running \
             it again with RAFT_SIM_SEED={seed} in the environment",
            self.report, self.invariant
        )
    }
}

/// The configuration of a state-machine run for `seed`: [`chaos_config`], with snapshots on
/// every seed (the machine's own are under test) and the proposal limits of the core's
/// defaults (some seeds cap proposals at 100 bytes to exercise flow control, which would
/// refuse any larger command of the user's for good).
pub fn state_machine_config(seed: u64, chaos: &ChaosOptions) -> SimConfig {
    let mut config = chaos_config(seed, chaos);
    if config.service.snapshot_interval.is_none() {
        config.service.snapshot_interval = Some(10);
    }
    let defaults = Config::new(raft_core::NodeId(1), 0);
    config.core.proposal_bytes_max = defaults.proposal_bytes_max;
    config.core.uncommitted_bytes_max = defaults.uncommitted_bytes_max;
    config
}

/// Runs one seed of [`check_state_machine`] and returns what it did; panics with the failure
/// report when a check fails.
pub fn run_state_machine<M: StateMachine + Default>(
    seed: u64,
    options: &CheckOptions,
) -> ChaosReport {
    run_seed(seed, MachineKind::of::<M>(), options)
}

fn run_seed(seed: u64, kind: MachineKind, options: &CheckOptions) -> ChaosReport {
    let config = state_machine_config(seed, &options.chaos);
    let mut builder = Cluster::builder(config).machine_kind(kind);
    if let Some(storage) = &options.storage {
        builder = builder.stores(storage());
    }
    run_chaos_on(builder, &options.chaos)
}

/// Runs a state machine of type `M` on every peer under the randomized run over many seeds
/// (see [`CheckOptions`]), with the invariant checks of every run and the state-machine checks
/// of [`StateMachine`]; returns what it did, or how the first failing seed failed.
pub fn try_check_state_machine<M: StateMachine + Default>(
    options: &CheckOptions,
) -> Result<CheckReport, CheckFailure> {
    let kind = MachineKind::of::<M>();
    let seeds = match &options.exact_seeds {
        Some(exact) => exact.clone(),
        None => seeds(options.seeds),
    };
    let report = Mutex::new(CheckReport {
        name: options.name.clone(),
        seeds: seeds.clone(),
        ..CheckReport::default()
    });
    let failure = sweep(&seeds, |seed| {
        let run = run_seed(seed, kind, options);
        report
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .add(&run);
    });
    if let Some((seed, payload)) = failure {
        let report = panic_message(payload.as_ref());
        let invariant = report
            .strip_prefix("invariant violated: ")
            .and_then(|rest| rest.lines().next())
            .unwrap_or("panic")
            .to_string();
        return Err(CheckFailure {
            name: options.name.clone(),
            seed,
            invariant,
            report,
        });
    }
    Ok(report
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner()))
}

/// [`try_check_state_machine`], panicking with the failure report, the seed and how to replay
/// it when a seed fails.
pub fn check_state_machine<M: StateMachine + Default>(options: &CheckOptions) -> CheckReport {
    match try_check_state_machine::<M>(options) {
        Ok(report) => report,
        Err(failure) => panic!("{failure}"),
    }
}
