//! Node throughput: three `RaftNode`s on loopback TCP, each with its write-ahead log on disk
//! (fsync on), driven through the service API by closed-loop proposers.
//!
//! ```text
//!  proposer ×N: start ─► leader.start_command(100 B) ─► (index, term) ─► Tracker::wait(index)
//!                  ▲                                                          │
//!                  └──────────── latency = start → applied on the leader ◄────┘
//!  per peer: apply channel ─► dispatcher ─► Tracker: wakes the waiter of each applied index
//!  floor:    median fdatasync (130 B appended + File::sync_data, same directory)
//!          + median loopback round trip (tokio TcpStream ping-pong of 8 bytes)
//!  shared-disk floor: the same, with the fdatasync measured while three files (one per
//!          peer) are synced at once, as the three peers share one disk here
//! ```
//!
//! Each proposer count runs twice, alternating: proposals entering at the leader
//! (`start_command`), then at a follower (`start_command_or_forward`: the follower forwards
//! them to the leader over the Raft transport, and the proposer waits for the command to be
//! applied on that follower, as a service answering its client there would); the table prints
//! both and their ratio.
//!
//! A commit needs the leader's fsync and one follower's fsync, which run in parallel, plus one
//! round trip to that follower, so the 1-proposer latency is expected at 1.0–1.5× the floor.
//! The floor is sampled before and after the cluster runs (by `crate::floor`, which `raft-bench
//! floor` also runs on its own), and the samples are pooled, so a disk whose speed drifts
//! during the run shows up in both figures.
//!
//! Environment variables:
//!
//! - `RAFT_BENCH_DIR`: the directory (and so the disk) holding the logs; default `$TMPDIR`.
//! - `RAFT_BENCH_SECONDS`: length of each timed run; default 2.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{Configuration, Index, NodeId, Term};
use raft_node::transport::tcp::{TcpConfig, TcpTransport};
use raft_node::{ApplyMsg, NodeConfig, NodeError, RaftNode};
use raft_wal::{Wal, WalOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::floor::{Floor, FloorShape, Latencies};

/// Peers in the cluster.
const PEERS: u64 = 3;
/// Worker threads of the runtime all peers and proposers share.
const WORKER_THREADS: usize = 2;
/// Payload of every command.
const COMMAND_BYTES: usize = 100;
/// Concurrent closed-loop proposers of each run.
const PROPOSERS: [usize; 3] = [1, 16, 256];
/// Bytes appended before each fdatasync of the floor: a 100-byte command plus a WAL record's
/// framing, roughly.
const FLOOR_SYNC_BYTES: usize = 130;
/// How long each half of the floor is sampled, before and after the cluster runs.
const FLOOR_SAMPLE_TIME: Duration = Duration::from_millis(500);
/// How long the cluster may take to elect a leader, or a proposer to find one again.
const LEADER_DEADLINE: Duration = Duration::from_secs(15);
/// Applied entries nobody waits for yet that a tracker remembers; older ones are forgotten
/// (their proposers, if any, count them as lost).
const UNCLAIMED_MAX: usize = 65_536;
/// Capacity of each peer's inbound and apply channels.
const CHANNEL_CAPACITY: usize = 4096;

/// What the benchmark measures, from the environment.
#[derive(Debug)]
struct Settings {
    /// Length of each timed run.
    measure: Duration,
    /// The directory the logs and the floor's file go under.
    parent: PathBuf,
}

impl Settings {
    fn from_environment() -> Settings {
        let measure = match std::env::var("RAFT_BENCH_SECONDS") {
            Ok(text) => text
                .parse::<f64>()
                .ok()
                .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
                .map(Duration::from_secs_f64)
                .unwrap_or_else(|| panic!("RAFT_BENCH_SECONDS={text:?} is not a positive number")),
            Err(_) => Duration::from_secs(2),
        };
        let parent =
            std::env::var_os("RAFT_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        Settings { measure, parent }
    }
}

/// A directory for the benchmark's files, removed with everything in it when dropped (also
/// when a measurement panics).
#[derive(Debug)]
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `raft-bench-node-<pid>` under `parent`.
    fn create(parent: &Path) -> ScratchDir {
        let path = parent.join(format!("raft-bench-node-{}", std::process::id()));
        if let Err(error) = fs::create_dir_all(&path) {
            panic!("create {}: {error}", path.display());
        }
        ScratchDir { path }
    }

    /// The scratch directory itself.
    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_dir_all(&self.path) {
            eprintln!("could not remove {}: {error}", self.path.display());
        }
    }
}

/// What one peer's apply channel has delivered, and who waits for which index.
#[derive(Debug, Default)]
struct TrackerState {
    /// The highest index delivered so far.
    applied_through: Index,
    /// Proposers waiting for an index above `applied_through`, each told the applied term.
    /// Invariant: every key is above `applied_through`.
    waiters: BTreeMap<Index, oneshot::Sender<Term>>,
    /// Delivered entries no proposer had registered for yet (a proposer registers only after
    /// `start_command` returns, and the entry may be applied before that).
    /// Invariant: every key is at or below `applied_through`; at most `UNCLAIMED_MAX` keys.
    unclaimed: BTreeMap<Index, Term>,
}

/// Matches one peer's applied entries to the proposers waiting for them.
#[derive(Debug, Default)]
struct Tracker {
    state: Mutex<TrackerState>,
}

impl Tracker {
    /// Records that the entry `index` of `term` was applied, waking its waiter if there is one.
    fn on_applied(&self, index: Index, term: Term) {
        let mut state = self.state.lock().expect("tracker lock is not poisoned");
        assert!(index > state.applied_through, "apply order: indexes rise");
        state.applied_through = index;
        match state.waiters.remove(&index) {
            // A proposer that gave up has dropped its receiver; nothing to tell.
            Some(waiter) => drop(waiter.send(term)),
            None => {
                state.unclaimed.insert(index, term);
                if state.unclaimed.len() > UNCLAIMED_MAX {
                    state.unclaimed.pop_first();
                }
            }
        }
        if let Some((first, _)) = state.waiters.first_key_value() {
            assert!(
                *first > state.applied_through,
                "waiters: above applied_through"
            );
        }
    }

    /// Resolves with the term of the entry applied at `index`, or `None` if it was applied
    /// too long ago to be remembered or is not applied within `LEADER_DEADLINE`.
    async fn wait(&self, index: Index) -> Option<Term> {
        let receiver = {
            let mut state = self.state.lock().expect("tracker lock is not poisoned");
            if index <= state.applied_through {
                return state.unclaimed.remove(&index);
            }
            let (sender, receiver) = oneshot::channel();
            // A waiter already there proposed at this index in an earlier term and its entry
            // was overwritten; replacing it drops its sender, so it counts its command as lost.
            state.waiters.insert(index, sender);
            receiver
        };
        // An entry overwritten on this peer may never be followed by another at its index;
        // the deadline turns that into a lost command rather than a proposer stuck forever.
        match tokio::time::timeout(LEADER_DEADLINE, receiver).await {
            Ok(term) => term.ok(),
            Err(_) => None,
        }
    }
}

/// A running cluster: the nodes, each peer's tracker, and the directory of their logs.
struct Cluster {
    nodes: Vec<Arc<RaftNode>>,
    trackers: Vec<Arc<Tracker>>,
}

impl Cluster {
    /// Starts `PEERS` nodes on loopback TCP, each with a WAL in its own directory under
    /// `dir`, and a dispatcher task per peer feeding that peer's tracker.
    async fn start(dir: &Path) -> Cluster {
        let ids: Vec<NodeId> = (1..=PEERS).map(NodeId).collect();
        let mut listeners = Vec::new();
        for _ in &ids {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binds a loopback port");
            listeners.push(listener);
        }
        let addresses: BTreeMap<NodeId, SocketAddr> = ids
            .iter()
            .zip(&listeners)
            .map(|(id, listener)| (*id, listener.local_addr().expect("listener is bound")))
            .collect();
        let voters = Configuration::new(ids.iter().copied());
        let mut nodes = Vec::new();
        let mut trackers = Vec::new();
        for (id, listener) in ids.iter().zip(listeners) {
            let peers = addresses
                .iter()
                .filter(|(peer, _)| *peer != id)
                .map(|(peer, address)| (*peer, *address))
                .collect();
            let (inbound_sender, inbound) = mpsc::channel(CHANNEL_CAPACITY);
            let transport = TcpTransport::start(
                TcpConfig::new(*id, "raft-bench", peers),
                listener,
                inbound_sender,
            )
            .expect("transport starts");
            let wal_dir = dir.join(format!("peer-{}", id.0));
            let wal = Wal::open(&wal_dir, voters.clone(), WalOptions::default())
                .unwrap_or_else(|error| panic!("open WAL in {}: {error}", wal_dir.display()));
            let (apply, applied) = mpsc::channel(CHANNEL_CAPACITY);
            let tracker = Arc::new(Tracker::default());
            tokio::spawn(dispatch(applied, Arc::clone(&tracker)));
            let config = NodeConfig::new(*id, 42 + id.0);
            let node = RaftNode::start(config, wal, transport, inbound, apply).expect("starts");
            nodes.push(Arc::new(node));
            trackers.push(tracker);
        }
        Cluster { nodes, trackers }
    }

    /// The position of the one peer that believes it leads, once there is exactly one.
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + LEADER_DEADLINE;
        loop {
            let leaders: Vec<usize> = (0..self.nodes.len())
                .filter(|position| self.nodes[*position].get_state().1)
                .collect();
            if let [leader] = leaders[..] {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no single leader within {LEADER_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops every node after its queued writes are durable.
    async fn shutdown(self) {
        for node in self.nodes {
            match Arc::try_unwrap(node) {
                Ok(node) => node.shutdown().await,
                Err(_) => panic!("a proposer still holds a node at shutdown"),
            }
        }
    }
}

/// Feeds one peer's applied commands to its tracker until the node drops the channel.
async fn dispatch(mut applied: mpsc::Receiver<ApplyMsg>, tracker: Arc<Tracker>) {
    while let Some(message) = applied.recv().await {
        match message {
            ApplyMsg::Command { index, term, .. } => tracker.on_applied(index, term),
            // A new leader's no-op or a membership change: no proposer waits for it.
            ApplyMsg::Noop { .. } | ApplyMsg::Configuration { .. } => {}
            ApplyMsg::Snapshot { .. } => {
                unreachable!("the benchmark never snapshots, so no peer installs one")
            }
        }
    }
}

/// Where the proposers' commands enter the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// At the leader, with `start_command`.
    Leader,
    /// At a follower, forwarded to the leader (`start_command_or_forward`).
    Follower,
}

impl Entry {
    fn name(self) -> &'static str {
        match self {
            Entry::Leader => "leader",
            Entry::Follower => "follower",
        }
    }
}

/// Proposes `payload` at `peer` through `start_command_or_forward`; the place the leader gave
/// it, or why not.
async fn forward(node: &RaftNode, payload: Bytes) -> Result<(Index, Term), NodeError> {
    let (sender, receiver) = oneshot::channel();
    node.start_command_or_forward(payload, move |placed| {
        let _ = sender.send(placed);
    })?;
    receiver.await.unwrap_or(Err(NodeError::ForwardUnanswered))
}

/// What the proposers of one run observed.
#[derive(Debug, Default)]
struct RunResult {
    /// Commit latency of every command that committed, start → applied on the leader.
    latencies: Vec<Duration>,
    /// Proposals refused with `NotLeader` or `Busy`, and retried.
    refused: u64,
    /// Proposals accepted but never applied at their index with their term (lost to a
    /// leadership change), and retried.
    lost: u64,
}

/// One closed-loop proposer: proposes where `entry` says, waits for the entry peer to apply,
/// repeats until `end`.
async fn propose_until(cluster: Arc<Cluster>, end: Instant, entry: Entry) -> RunResult {
    let payload = Bytes::from(vec![0x5a; COMMAND_BYTES]);
    let mut result = RunResult::default();
    while Instant::now() < end {
        let leader = cluster.leader().await;
        let (peer, proposed) = match entry {
            Entry::Leader => (leader, None),
            Entry::Follower => ((leader + 1) % cluster.nodes.len(), Some(())),
        };
        let start = Instant::now();
        let placed = match proposed {
            None => cluster.nodes[peer].start_command(payload.clone()).await,
            Some(()) => forward(&cluster.nodes[peer], payload.clone()).await,
        };
        let (index, term) = match placed {
            Ok(proposed) => proposed,
            Err(NodeError::NotLeader { .. } | NodeError::Busy | NodeError::ForwardUnanswered) => {
                result.refused += 1;
                tokio::task::yield_now().await;
                continue;
            }
            Err(error) => panic!("start_command failed: {error}"),
        };
        match cluster.trackers[peer].wait(index).await {
            Some(applied_term) if applied_term == term => result.latencies.push(start.elapsed()),
            _ => result.lost += 1,
        }
    }
    result
}

/// Runs `proposers` closed-loop proposers entering at `entry` for `measure`; prints one row
/// of the table and returns the p50 latency and the throughput.
async fn measure_run(
    cluster: &Arc<Cluster>,
    proposers: usize,
    measure: Duration,
    entry: Entry,
) -> (Duration, f64) {
    assert!(proposers > 0, "at least one proposer");
    let start = Instant::now();
    let end = start + measure;
    let tasks: Vec<_> = (0..proposers)
        .map(|_| tokio::spawn(propose_until(Arc::clone(cluster), end, entry)))
        .collect();
    let mut total = RunResult::default();
    for task in tasks {
        let result = task.await.expect("proposer does not panic");
        total.latencies.extend(result.latencies);
        total.refused += result.refused;
        total.lost += result.lost;
    }
    let elapsed = start.elapsed();
    assert!(!total.latencies.is_empty(), "some command committed");
    let latencies = Latencies::of(&total.latencies);
    let p50 = latencies.at(0.50);
    let p99 = latencies.at(0.99);
    let throughput = total.latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{proposers:>9}  {:>8}  {throughput:>10.0}  {:>10}  {:>10}  {:>8}  {:>5}",
        entry.name(),
        micros(p50),
        micros(p99),
        total.refused,
        total.lost,
    );
    (p50, throughput)
}

/// A duration as whole microseconds followed by the unit, for the tables.
fn micros(duration: Duration) -> String {
    format!("{} µs", duration.as_micros())
}

/// Measures the floor, the cluster under 1, 16 and 256 proposers, then the floor again.
async fn measure(settings: &Settings, scratch: &ScratchDir) {
    let mut floor = Floor::new(FloorShape {
        sync_bytes: FLOOR_SYNC_BYTES,
        shared_files: PEERS as usize,
        sample_time: FLOOR_SAMPLE_TIME,
    });
    sample_floor(&mut floor, scratch.path(), 0).await;

    let cluster = Arc::new(Cluster::start(scratch.path()).await);
    let leader = cluster.leader().await;
    println!(
        "node: {PEERS} peers on loopback TCP, WAL with fsync in {}; {COMMAND_BYTES}-byte \
         commands, {WORKER_THREADS} runtime workers, {:.1} s per run, leader peer {}",
        scratch.path().display(),
        settings.measure.as_secs_f64(),
        leader + 1,
    );
    println!(
        "{:>9}  {:>8}  {:>10}  {:>10}  {:>10}  {:>8}  {:>5}",
        "proposers", "entry", "commands/s", "p50", "p99", "refused", "lost"
    );
    let mut single_p50 = None;
    for proposers in PROPOSERS {
        let (p50, at_leader) =
            measure_run(&cluster, proposers, settings.measure, Entry::Leader).await;
        if proposers == 1 {
            single_p50 = Some(p50);
        }
        let (_, at_follower) =
            measure_run(&cluster, proposers, settings.measure, Entry::Follower).await;
        println!(
            "{proposers:>9}  follower ÷ leader throughput: {:.2}",
            at_follower / at_leader
        );
    }
    Arc::try_unwrap(cluster)
        .unwrap_or_else(|_| panic!("every proposer has finished"))
        .shutdown()
        .await;

    sample_floor(&mut floor, scratch.path(), 1).await;
    let summary = floor.summary();
    let (sync, shared_sync, round_trip) = (
        summary.sync.p50,
        summary.shared_sync.p50,
        summary.round_trip.p50,
    );
    let total = sync + round_trip;
    let shared_total = shared_sync + round_trip;
    println!(
        "floor: fdatasync of {FLOOR_SYNC_BYTES} B {} (median of {}) + loopback round trip {} \
         (median of {}) = {}",
        micros(sync),
        summary.sync.samples,
        micros(round_trip),
        summary.round_trip.samples,
        micros(total),
    );
    println!(
        "shared-disk floor: fdatasync while {PEERS} files sync at once {} (median of {}) + \
         round trip = {}",
        micros(shared_sync),
        summary.shared_sync.samples,
        micros(shared_total),
    );
    let single_p50 = single_p50.expect("the 1-proposer run is measured");
    println!(
        "1-proposer p50 ÷ floor: {:.2}; ÷ shared-disk floor: {:.2} (expected best ~1.0–1.5: \
         the leader's and a follower's fsync in parallel plus a round trip)",
        single_p50.as_secs_f64() / total.as_secs_f64(),
        single_p50.as_secs_f64() / shared_total.as_secs_f64(),
    );
}

/// Adds one round of floor samples; the benchmark cannot go on without them.
async fn sample_floor(floor: &mut Floor, dir: &Path, round: usize) {
    if let Err(error) = floor.sample(dir, round).await {
        panic!("floor sampling in {}: {error}", dir.display());
    }
}

/// Runs the node benchmark and prints its tables.
pub fn run() {
    let settings = Settings::from_environment();
    let scratch = ScratchDir::create(&settings.parent);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    runtime.block_on(measure(&settings, &scratch));
    // Shut the runtime down before the directory goes, so no task still holds a file in it.
    drop(runtime);
    drop(scratch);
}
