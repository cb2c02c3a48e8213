//! # raft-sim
//!
//! A deterministic simulator for `raft-core`: a cluster of peers over virtual time, a network
//! that partitions, loses, duplicates and reorders, disks that lose unfinished writes in a
//! crash, invariant checks after every event, and the classic MIT 6.824 tester helpers.
//!
//! It also runs a state machine of the user's, on storage of the user's if wanted, under the
//! same faults and checks, with one call ([`check_state_machine`], below).
//!
//! ```text
//!   scenario (tests/*.rs, run_chaos, check_state_machine)   seeds: for_each_seed(name, |seed| ..)
//!        │ start · one · crash · partition ...
//!        ▼
//!   Cluster ── EventQueue (virtual time) ──► Tick / Deliver / DiskDone / Flush / ApplyDone
//!     │  peers: raft_core::Raft<SimStorage> + Service [+ the user's StateMachine]
//!     │  Network (network.rs) · Disk (disk.rs)
//!     │  stores (storage/): any LogStore through a StoreHarness: memory, raft-wal, the user's
//!     └─ Invariants (invariants/: one module per concern; machine.rs) after every event
//!        Trace (trace.rs): last events, printed as raft-core prints messages, + digest
//!   randomized_run.rs: run_chaos, a seed's configuration, faults and requests, then liveness
//! ```
//!
//! One `u64` seed fixes every random choice (network, disk, timeouts, scenario), so a failing
//! seed replays exactly: `RAFT_SIM_SEED=S cargo test -p raft-sim NAME`.
//!
//! ## Your state machine under the simulator
//!
//! Implement [`StateMachine`] (apply a command, take and restore a snapshot, a fingerprint of
//! the state, and how clients make commands from the run's random generator) and call
//! [`check_state_machine`]: every peer of a randomized run ([`run_chaos`]: crashes and
//! restarts, partitions, one-way cuts, loss, duplication, reordering, slow disks, membership
//! churn, then a liveness phase) runs the machine beside the built-in service, over
//! [`DEFAULT_SEEDS`] seeds. On top of every invariant of the simulator, each replica's
//! fingerprint is compared with a reference replica's after every command it applies and
//! every snapshot it restores (also after a restart): a difference fails the run with
//! `machine-deterministic` (apply depends on something besides the commands) or
//! `machine-replicas-agree` (a snapshot lost or changed state); every snapshot is restored into
//! a fresh machine at once (`machine-snapshot-round-trip`); a panic in the machine (an
//! assertion of its own, say) fails with `machine-panicked`.
//!
//! ```
//! use bytes::Bytes;
//! use raft_core::Index;
//! use raft_sim::rand::Rng;
//! use raft_sim::{check_state_machine, CheckOptions, SimRng, StateMachine};
//!
//! /// A counter that commands add to.
//! #[derive(Default)]
//! struct Counter(u64);
//!
//! impl StateMachine for Counter {
//!     fn apply(&mut self, _index: Index, command: &[u8]) {
//!         self.0 += command.iter().map(|&byte| u64::from(byte)).sum::<u64>();
//!     }
//!     fn snapshot(&self) -> Bytes {
//!         Bytes::copy_from_slice(&self.0.to_le_bytes())
//!     }
//!     fn restore(&mut self, _index: Index, snapshot: &[u8]) -> Result<(), String> {
//!         let bytes = snapshot.try_into().map_err(|_| "not 8 bytes".to_string())?;
//!         self.0 = u64::from_le_bytes(bytes);
//!         Ok(())
//!     }
//!     fn random_command(rng: &mut SimRng) -> Bytes {
//!         Bytes::from(vec![rng.gen::<u8>()])
//!     }
//! }
//!
//! // Panics with the seed, the broken check and the last events when a run fails.
//! let report = check_state_machine::<Counter>(&CheckOptions::new("counter").with_seeds(10));
//! // 10 seeds, unless RAFT_SIM_SEED or RAFT_SIM_SEEDS in the environment say otherwise.
//! assert!(!report.seeds.is_empty());
//! assert!(report.machine.fingerprints_compared > 0);
//! ```
//!
//! A failure ends with `state machine check NAME failed with seed S (CHECK); replay it by
//! running it again with RAFT_SIM_SEED=S in the environment`: the seed alone runs again, the
//! same way ([`run_state_machine`] runs one seed from code, [`try_check_state_machine`]
//! returns the failure instead of panicking). `RAFT_SIM_SEEDS=N` runs more seeds.
//! [`CheckOptions::with_storage`] puts the peers on the user's storage (below), and
//! [`ClusterBuilder::state_machine`] runs the machine in a scenario of one's own.
//! `examples/src/bin/simulate.rs` in the repository is a complete program: a bank whose total
//! must never change.
//!
//! ## Running
//!
//! ```text
//! cargo test -p raft-sim                          every scenario, default seeds (200; chaos
//!                                                 2000; on the write-ahead log 100 and 300)
//! RAFT_SIM_SEEDS=10000 cargo test -p raft-sim     more seeds (every sweep, chaos included)
//! RAFT_SIM_SEEDS=20000 cargo test -p raft-sim --test randomized    thousands of chaos seeds
//!                                                 (about 350 seeds a second on two cores)
//! RAFT_SIM_SEEDS=5000 cargo test -p raft-sim --test membership     membership scenarios
//! cargo test -p raft-sim --test state_machine     a user's machine: a correct one, planted bugs
//! cargo test -p raft-sim --test storage_conformance   the suite against the built-in stores
//! RAFT_SIM_SEED=1234 cargo test -p raft-sim NAME  replay one seed
//! RAFT_SIM_SEED_START=K                           start the sweep at seed K
//! RAFT_SIM_THREADS=T                              worker threads of a sweep (default: cores)
//! RAFT_SIM_TRACE=N                                events kept for failure reports (default 40)
//! RAFT_SIM_CHAOS_MS=MS                            fault phase of the randomized run (soaks)
//! RAFT_SIM_WAL_DIR=DIR                            where write-ahead logs go (default /dev/shm)
//! cargo run -p raft-bench --release -- sim               simulated seconds per real second
//! ```
//!
//! ## Writing a scenario
//!
//! ```no_run
//! use raft_sim::{command, for_each_seed, Cluster, SimConfig};
//!
//! for_each_seed("leader_survives_follower_loss", |seed| {
//!     let mut cluster = Cluster::new(SimConfig::new(3, seed));
//!     let leader = cluster.check_one_leader(); // runs virtual time, at most 5 s
//!     let follower = cluster.ids().into_iter().find(|&id| id != leader).unwrap();
//!     cluster.disconnect(follower);
//!     cluster.one(command(7), 2, false); // committed on 2 peers, or the seed fails
//! });
//! ```
//!
//! A failure panics with the invariant's name, the seed and the last events; the sweep prints
//! the command that replays it.
//!
//! ## Membership
//!
//! `SimConfig::initial_voters` puts only the first peers in the initial configuration; the
//! others run from the start with empty storage and an empty configuration (a new server, not
//! yet added), so they never campaign and learn the log and their configuration from a
//! leader once added. [`Cluster::propose_conf_change`] proposes one change on a leader,
//! [`Cluster::change_membership`] makes one and waits for it to complete, and
//! [`Cluster::restore_full_membership`] makes every peer a voter again (the randomized run's
//! liveness phase does, after random membership churn). The durable-majority check counts the
//! voters of the committing leader's configuration — both sets while it is joint.
//!
//! ## Storage
//!
//! Every peer keeps its durable state in a store implementing `raft_core::LogStore`, opened
//! through a [`StoreHarness`] — the trait of raft-core's storage conformance suite
//! (`raft_core::testing::storage`), so the harness that runs the suite against a store runs the
//! simulator on it too: `create` for each new peer, `reopen` (a drop without a close, and an
//! open of the same storage) at every crash. The core reads the store through its reader; the
//! disk model hands it each write when the write completes, so a crash loses exactly the writes
//! still in flight; and after the reopen the store must hold exactly what it held before, or the
//! run fails with `storage-recovers-durable-state`.
//!
//! `SimConfig::storage` picks a built-in harness: [`MemHarness`] (`SharedMemStorage`, the
//! default) or, with [`StorageKind::wal`], [`WalHarness`]: a real `raft_wal` write-ahead log
//! per peer in a temporary directory (under `RAFT_SIM_WAL_DIR`, default `/dev/shm`), without
//! fsyncs (a simulated crash is a process crash), recovered from its files at every crash
//! (`tests/wal_storage.rs` runs the classic scenarios this way). [`Cluster::builder`] takes
//! any other harness:
//!
//! ```no_run
//! # use raft_sim::{Cluster, SimConfig, WalHarness};
//! # let my_harness = WalHarness::new(4096, 0);
//! let mut cluster = Cluster::builder(SimConfig::new(3, 42)).storage(my_harness).build();
//! ```
//!
//! `tests/storage_conformance.rs` runs the suite against both built-in harnesses, and
//! `tests/state_machine.rs` shows a harness whose store loses a write at a reopen caught by the
//! simulator. The lying disk (`DiskConfig::lie_about_durability`, the planted bug the checkers
//! must catch) works on any store: the core reads an in-memory copy holding every write it was
//! told is durable, and the store gets each write only when the disk completes it. As a store
//! it fails the conformance suite with `durable-across-crash` (unit tests of
//! `storage/lying.rs`).
//!
//! [`Cluster::crash_losing_writes`] models a disk that lied about its syncs and lost power:
//! the peer's last few completed writes are undone, and its next boot reports
//! `possibly_lost_writes`, so that raft-core's protocol-aware recovery runs (a quarter of the
//! randomized run's crashes, one suspect peer at a time; `tests/recovery.rs`).
//!
//! The classic scenarios are functions of the storage kind and the seed
//! (`tests/scenarios/*.rs`), so one body serves both the memory tests and the WAL tests.

#![deny(missing_docs)]

mod check;
mod cluster;
mod config;
mod disk;
mod event;
pub mod explore;
mod invariants;
mod machine;
mod network;
mod randomized_run;
mod seeds;
mod service;
mod storage;
mod tester;
mod trace;

pub use check::{
    check_state_machine, run_state_machine, state_machine_config, try_check_state_machine,
    CheckFailure, CheckOptions, CheckReport,
};
pub use cluster::LOST_WRITES_MAX;
pub use cluster::{Cluster, ClusterBuilder, ForwardRecord, SimCounters};
pub use config::{DiskConfig, NetworkConfig, ServiceConfig, SimConfig, LOSSY_CRASH_PERCENT};
pub use invariants::{Check, Violation};
pub use machine::{MachineCounters, StateMachine};
pub use network::{KindStats, NetworkStats, KIND_NAMES};
pub use raft_core::testing::storage::{BoxError, StoreHarness};
pub use randomized_run::{
    chaos_config, run_chaos, run_chaos_on, run_chaos_with, ChaosOptions, ChaosReport,
};
pub use seeds::{for_each_seed, for_each_seed_n, seeds, DEFAULT_SEEDS};
pub use service::Service;
pub use storage::{
    wal_parent_dir, MemHarness, SimStorage, StorageKind, WalDisk, WalDiskError, WalHarness,
    WAL_CACHE_BYTES_MAX, WAL_SEGMENT_BYTES_MAX,
};
pub use tester::{
    command, Agreement, AgreementState, AGREEMENT_DEADLINE_MS, ATTEMPT_DEADLINE_MS,
    LEADER_DEADLINE_MS, MEMBERSHIP_DEADLINE_MS,
};
pub use trace::Digest;

/// The random generator crate, for [`StateMachine::random_command`] (`rand::Rng` brings
/// `gen`, `gen_range` and the rest to [`SimRng`]).
pub use rand;

/// The random generator of a run.
pub type SimRng = rand_xoshiro::Xoshiro256PlusPlus;
