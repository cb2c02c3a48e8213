//! One chaos run, from setting up the hosts to writing the reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use lincheck::{CheckOptions, Entry, History, Operation, Outcome, Output};
use raftkv_bench::plot::{render_svg_with_bands, Band, Sample};
use raftkv_client::{Client, ClientOptions, Consistency};
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::analysis::{self, CoordinationFigures, Copy, LincheckFigures, Skipped, Summary};
use crate::bank::{run_bank_client, BankShared, BANK_PREFIX, TOTAL};
use crate::cluster::{libfaketime, Cluster, NodeOptions, ProcessState};
use crate::leases::{self, run_lease_client, LeaseShared, LEASE_PREFIX};
use crate::locks::{run_lock_client, LockShared};
use crate::nemesis::{run_nemesis, FaultContext, FaultRecord, Nemesis, Schedule, Timeline};
use crate::proxy::LinkProxies;
use crate::revision_check::{
    self as checks, BankEntry, BankOutcome, ChangeLog, Selection, Stamp, WatcherRecord,
};
use crate::topology::{is_root, namespace_tools_missing, Isolation, Topology};
use crate::watchers::{node_client, read_change_log, run_watcher};
use crate::workload::{nanos, run_client, ClientRecord, WorkloadOptions, WorkloadShared};
use crate::ChaosError;
use crate::{lease_check, lock_check};

/// How a run goes.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The fault families to inject, all at once.
    pub nemeses: BTreeSet<Nemesis>,
    /// How long the clients run while faults come and go.
    pub duration: Duration,
    /// Founding voters (3 or 5).
    pub nodes: usize,
    /// Concurrent client sessions.
    pub clients: usize,
    /// The seed of every random choice of the harness.
    pub seed: u64,
    /// Where the run's files go; created if missing.
    pub out_dir: PathBuf,
    /// The `raftkv` executable.
    pub raftkv_bin: PathBuf,
    /// How nodes are separated; `None` picks namespaces when running as root with `ip` and
    /// `nft` installed, else loopback addresses.
    pub isolation: Option<Isolation>,
    /// How long faults last and the calm between them.
    pub schedule: Schedule,
    /// Percentage of reads done as lease reads.
    pub lease_read_percent: u8,
    /// A client's pause after each operation.
    pub pause_between_operations: Duration,
    /// Operations, over all clients, before the clients move to fresh keys.
    pub operations_per_generation: u64,
    /// Longest wait for the cluster to settle once every fault is healed.
    pub settle_timeout: Duration,
    /// Raft tick of the nodes.
    pub tick_ms: u64,
    /// Print a progress line to stderr every this often; `None` for quiet.
    pub progress_every: Option<Duration>,
    /// The fsync shim (`libraftkv_fsync_fault.so`, crate `raftkv-fsync-fault`) the `fsync`
    /// nemesis loads into the nodes; without it that nemesis is skipped.
    pub fsync_shim: Option<PathBuf>,
    /// Let the storage nemeses also take away what a node had synced: a cut inside the last
    /// record of its newest segment (taken for a torn write and truncated) and fsync that
    /// lies followed by a power loss. Both are beyond the storage model Raft assumes (what a
    /// node acknowledged stays on its disk), and raftkv has no protocol-aware recovery yet,
    /// so such a run can lose acknowledged writes; off by default and in `all`.
    pub lossy_storage: bool,
    /// Which workloads the clients run.
    pub workload: Workload,
    /// Clients of the bank workload (beside `clients` of the kv one).
    pub bank_clients: usize,
    /// Clients of the lease workload.
    pub lease_clients: usize,
    /// Clients of the lock workload.
    pub lock_clients: usize,
}

/// The workloads of a run: any of them, at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Single-key operations on registers and logs, checked by lincheck.
    pub kv: bool,
    /// Transfers and whole reads of a bank's accounts by transaction, checked by revision.
    pub bank: bool,
    /// Leases with keys kept alive, revoked or left to expire, checked against the lease
    /// timing rule and the expiry bound (`lease_check`).
    pub lease: bool,
    /// Holders of a lock incrementing a fenced and an unguarded counter (`lock_check`).
    pub lock: bool,
}

impl Workload {
    /// Every workload.
    pub const ALL: Workload = Workload {
        kv: true,
        bank: true,
        lease: true,
        lock: true,
    };
    const NAMES: &'static str = "kv, bank, lease, lock or all";

    /// Whether the kv workload runs.
    pub fn kv(self) -> bool {
        self.kv
    }

    /// Whether the bank workload runs.
    pub fn bank(self) -> bool {
        self.bank
    }

    /// Whether the lease workload runs.
    pub fn lease(self) -> bool {
        self.lease
    }

    /// Whether the lock workload runs.
    pub fn lock(self) -> bool {
        self.lock
    }

    /// Parses a comma-separated list of `kv`, `bank`, `lease`, `lock`, or `all`.
    pub fn parse(text: &str) -> Result<Workload, String> {
        let mut workload = Workload {
            kv: false,
            bank: false,
            lease: false,
            lock: false,
        };
        for name in text.split(',').map(str::trim) {
            match name {
                "kv" => workload.kv = true,
                "bank" => workload.bank = true,
                "lease" => workload.lease = true,
                "lock" => workload.lock = true,
                "all" => workload = Workload::ALL,
                other => return Err(format!("unknown workload {other:?}: {}", Workload::NAMES)),
            }
        }
        Ok(workload)
    }

    fn names(self) -> Vec<String> {
        [
            (self.kv, "kv"),
            (self.bank, "bank"),
            (self.lease, "lease"),
            (self.lock, "lock"),
        ]
        .into_iter()
        .filter(|(runs, _)| *runs)
        .map(|(_, name)| name.to_string())
        .collect()
    }
}

impl RunOptions {
    /// Defaults sized for a short run: 3 nodes, 8 clients, 10 s, every nemesis.
    pub fn new(raftkv_bin: PathBuf, out_dir: PathBuf) -> RunOptions {
        RunOptions {
            nemeses: Nemesis::ALL.into_iter().collect(),
            duration: Duration::from_secs(10),
            nodes: 3,
            clients: 8,
            seed: 1,
            out_dir,
            raftkv_bin,
            isolation: None,
            schedule: Schedule {
                calm: (Duration::from_millis(500), Duration::from_secs(2)),
                hold: (Duration::from_secs(1), Duration::from_secs(4)),
            },
            lease_read_percent: 20,
            pause_between_operations: Duration::from_millis(5),
            operations_per_generation: 400,
            settle_timeout: Duration::from_secs(60),
            tick_ms: 20,
            progress_every: None,
            fsync_shim: None,
            lossy_storage: false,
            workload: Workload::ALL,
            bank_clients: 3,
            lease_clients: 3,
            lock_clients: 3,
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The findings.
    pub summary: Summary,
    /// Where its files are.
    pub out_dir: PathBuf,
}

impl RunReport {
    /// Whether it found nothing wrong and proved the history linearizable.
    pub fn passed(&self) -> bool {
        self.summary.passed()
    }
}

/// The client id of the final reads in the history (the workload's clients count from 1).
const FINAL_READER: u64 = 0;
/// Keys scanned per request when comparing copies.
const SCAN_LIMIT: usize = 10_000;
/// Longest wait for the first leader.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the watchers of the members to reach the final revision once settled.
const WATCHERS_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest read of one member's whole change history.
const CHANGE_LOG_TIMEOUT: Duration = Duration::from_secs(600);

/// Carries out one run: sets up the hosts and nodes, runs the clients and the nemeses for
/// `options.duration`, heals, settles, checks, and writes everything to `options.out_dir`.
/// An error means the run could not be carried out; what it found is in the report.
pub async fn run(options: RunOptions) -> Result<RunReport, ChaosError> {
    let out_dir = options.out_dir.clone();
    std::fs::create_dir_all(&out_dir).map_err(|source| output_error(&out_dir, source))?;
    let Plan {
        isolation,
        nemeses,
        skipped,
    } = plan(&options)?;
    for skip in &skipped {
        eprintln!("raftkv-chaos: skipping {}: {}", skip.nemesis, skip.reason);
    }
    let membership = nemeses.contains(&Nemesis::Membership);
    // A joining node needs a slot of its own while the one it replaces is still a member.
    let slots = options.nodes + usize::from(membership);
    let topology = tokio::task::spawn_blocking(move || Topology::create(slots, isolation))
        .await
        .map_err(|error| ChaosError::Setup(format!("creating the hosts: {error}")))??;
    let proxies = match isolation {
        Isolation::Namespaces => Some(
            LinkProxies::start(&topology, options.seed)
                .await
                .map_err(|error| {
                    ChaosError::Setup(format!("starting the link proxies: {error}"))
                })?,
        ),
        Isolation::Loopback => None,
    };
    let node_options = NodeOptions {
        raftkv_bin: options.raftkv_bin.clone(),
        tick_ms: options.tick_ms,
        snapshot_threshold_bytes: 256 * 1024,
        request_timeout_ms: 2_000,
        worker_threads: 2,
        fake_clock: if nemeses.contains(&Nemesis::Clock) {
            libfaketime()
        } else {
            None
        },
        fsync_shim: if nemeses.contains(&Nemesis::Fsync) {
            options.fsync_shim.clone()
        } else {
            None
        },
        distrust_unclean_restart: options.lossy_storage,
    };
    let cluster = Cluster::launch(topology, &out_dir, node_options, options.nodes)?;
    let endpoints = cluster.all_endpoints();
    let cluster = Arc::new(Mutex::new(cluster));
    let admin = Client::with_options(
        &endpoints,
        ClientOptions {
            request_timeout: Duration::from_secs(1),
            retry_deadline: Duration::from_secs(5),
        },
    )
    .map_err(|error| ChaosError::Setup(format!("admin client: {error}")))?;
    wait_until_ready(&admin).await?;

    let origin = Instant::now();
    let timeline = Arc::new(Timeline::default());
    let mut context = FaultContext::new(
        cluster.clone(),
        proxies,
        admin.clone(),
        origin,
        timeline.clone(),
        options.nodes,
    );
    context.lossy_storage = options.lossy_storage;
    let context = Arc::new(context);
    let (stop_sender, stop) = watch::channel(false);
    let workload = WorkloadOptions {
        clients: options.clients,
        keys_per_kind: 3,
        operations_per_generation: options.operations_per_generation,
        lease_read_percent: options.lease_read_percent,
        request_timeout: Duration::from_secs(1),
        operation_deadline: Duration::from_secs(3),
        pause_between_operations: options.pause_between_operations,
    };
    let shared = Arc::new(WorkloadShared {
        origin,
        operations_started: AtomicU64::new(0),
        stop: stop.clone(),
    });
    let client_base = Client::with_options(
        &endpoints,
        ClientOptions {
            request_timeout: workload.request_timeout,
            retry_deadline: workload.operation_deadline,
        },
    )
    .map_err(|error| ChaosError::Setup(format!("workload client: {error}")))?;
    let mut bank_entries = Vec::new();
    if options.workload.bank() {
        bank_entries.push(
            crate::bank::initialise(&admin, origin)
                .await
                .map_err(ChaosError::NotReady)?,
        );
    }
    let bank_shared = Arc::new(BankShared {
        origin,
        next_id: AtomicU64::new(1),
        stop: stop.clone(),
        pause: options.pause_between_operations,
    });
    let bank_clients: Vec<_> = (1..=options.bank_clients as u64)
        .filter(|_| options.workload.bank())
        .map(|number| {
            tokio::spawn(run_bank_client(
                number,
                client_base.new_session(),
                bank_shared.clone(),
                derive_seed(options.seed, 2_000 + number),
            ))
        })
        .collect();
    let (watchers_stop_sender, watchers_stop) = watch::channel(false);
    let watchers = start_watchers(&cluster, options.workload, &watchers_stop).await?;
    let lease_shared = Arc::new(LeaseShared {
        origin,
        stop: stop.clone(),
    });
    let lease_clients: Vec<_> = (1..=options.lease_clients as u64)
        .filter(|_| options.workload.lease())
        .map(|number| {
            tokio::spawn(run_lease_client(
                number,
                client_base.new_session(),
                lease_shared.clone(),
                derive_seed(options.seed, 3_000 + number),
            ))
        })
        .collect();
    let (observers_stop_sender, observers_stop) = watch::channel(false);
    let lease_observers = if options.workload.lease() {
        Some(LeaseObservers::start(
            &client_base,
            slot_endpoints(&cluster)
                .await
                .into_iter()
                .map(|(_, e)| e)
                .collect(),
            origin,
            &observers_stop,
        ))
    } else {
        None
    };
    let lock_shared = Arc::new(LockShared {
        origin,
        stop: stop.clone(),
    });
    let lock_clients: Vec<_> = (1..=options.lock_clients as u64)
        .filter(|_| options.workload.lock())
        .map(|number| {
            tokio::spawn(run_lock_client(
                number,
                client_base.new_session(),
                lock_shared.clone(),
                derive_seed(options.seed, 4_000 + number),
            ))
        })
        .collect();
    let clients: Vec<_> = (1..=options.clients as u64)
        .filter(|_| options.workload.kv())
        .map(|number| {
            tokio::spawn(run_client(
                number,
                client_base.new_session(),
                workload.clone(),
                shared.clone(),
                derive_seed(options.seed, 1_000 + number),
            ))
        })
        .collect();
    let nemesis_tasks: Vec<_> = nemeses
        .iter()
        .map(|&nemesis| {
            tokio::spawn(run_nemesis(
                nemesis,
                context.clone(),
                options.schedule,
                derive_seed(options.seed, nemesis as u64),
                stop.clone(),
            ))
        })
        .collect();

    let unexpected = watch_processes(&cluster, origin, &options, &shared, &timeline).await;
    let workload_seconds = origin.elapsed().as_secs_f64();
    let _ = stop_sender.send(true);
    let mut records = Vec::new();
    for client in clients {
        match client.await {
            Ok(record) => records.push(record),
            Err(error) => return Err(ChaosError::Setup(format!("a client task failed: {error}"))),
        }
    }
    for client in bank_clients {
        match client.await {
            Ok(entries) => bank_entries.extend(entries),
            Err(error) => {
                return Err(ChaosError::Setup(format!(
                    "a bank client task failed: {error}"
                )))
            }
        }
    }
    let mut leases = Vec::new();
    for client in lease_clients {
        match client.await {
            Ok(histories) => leases.extend(histories),
            Err(error) => {
                return Err(ChaosError::Setup(format!(
                    "a lease client task failed: {error}"
                )))
            }
        }
    }
    let mut holdings = Vec::new();
    for client in lock_clients {
        match client.await {
            Ok(held) => holdings.extend(held),
            Err(error) => {
                return Err(ChaosError::Setup(format!(
                    "a lock client task failed: {error}"
                )))
            }
        }
    }
    for task in nemesis_tasks {
        let _ = task.await;
    }
    let mut unexpected_exits = unexpected;
    unexpected_exits.extend(describe_exits(&cluster).await);
    context.heal_everything().await?;

    let settle_started = Instant::now();
    let settled = settle(&context, options.settle_timeout).await;
    let settle_seconds = settle_started.elapsed().as_secs_f64();
    let mut anomalies = Vec::new();
    let members = match &settled {
        Ok(members) => members.clone(),
        Err(reason) => {
            anomalies.push(format!("the cluster did not settle once healed: {reason}"));
            Vec::new()
        }
    };

    let mut history = History::new();
    let mut samples = Vec::new();
    let mut stamps = Vec::new();
    for ClientRecord {
        entries,
        samples: s,
        stamps: st,
    } in records
    {
        history.entries.extend(entries);
        samples.extend(s);
        stamps.extend(st);
    }
    history.entries.sort_by_key(|entry| entry.id);
    let workload_entries = history.entries.len();
    let final_values = read_final_values(&admin, &mut history, origin).await;
    if final_values.len() < history.keys().len() {
        anomalies.push(format!(
            "{} of {} keys could not be read at the end",
            history.keys().len() - final_values.len(),
            history.keys().len()
        ));
    }
    anomalies.extend(analysis::append_anomalies(
        &history.entries,
        &final_values
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    ));
    if !members.is_empty() {
        let copies = read_copies(&cluster, &members, &history).await;
        match copies {
            Ok(copies) => anomalies.extend(analysis::copy_anomalies(&copies)),
            Err(reason) => anomalies.push(reason),
        }
    }
    // The leases left to expire go now: wait for them before the final revision is taken,
    // so the change history holds their deletes.
    let lease_evidence = match lease_observers {
        Some(observers) => {
            if settled.is_ok() {
                wait_for_leases_to_go(&admin).await;
            }
            let _ = observers_stop_sender.send(true);
            Some(observers.finish().await)
        }
        None => None,
    };
    let mut coordination = check_revisions(
        &admin,
        &cluster,
        &members,
        watchers,
        watchers_stop_sender,
        stamps,
        &bank_entries,
        options.workload,
        &mut anomalies,
    )
    .await;
    if let Some(log) = &coordination.log {
        let election_timeout = Duration::from_millis(ELECTION_TICKS_MAX * options.tick_ms);
        if let Some(evidence) = &lease_evidence {
            let (found, figures) =
                lease_check::lease_anomalies(&leases, evidence, log, election_timeout);
            anomalies.extend(found);
            coordination.figures.leases = Some(figures);
        }
        if options.workload.lock() {
            let (found, figures) = lock_check::lock_anomalies(&holdings, log);
            anomalies.extend(found);
            coordination.figures.locks = Some(figures);
        }
    }
    unexpected_exits.extend(describe_exits(&cluster).await);
    anomalies.extend(context.findings());
    for exit in &unexpected_exits {
        anomalies.push(format!("a node exited on its own: {exit}"));
    }

    let check_started = std::time::Instant::now();
    let history = Arc::new(history);
    let report = {
        let history = history.clone();
        tokio::task::spawn_blocking(move || lincheck::check(&history, &CheckOptions::default()))
            .await
            .map_err(|error| ChaosError::Setup(format!("the checker failed: {error}")))?
    };
    let lincheck = LincheckFigures::of(&report, check_started.elapsed().as_secs_f64());
    if let Some(violation) = report.verdict.violation() {
        anomalies.push(format!(
            "the history is not linearizable: key {} (see violation.txt / violation.html)",
            violation.key
        ));
        write_file(&out_dir.join("violation.txt"), violation.to_string())?;
        write_file(
            &out_dir.join("violation.html"),
            lincheck::render_html(violation),
        )?;
    }

    let workload_history = &history.entries[..workload_entries];
    let faults_records = timeline.records();
    let (operations, operations_by_kind) = analysis::count_outcomes(workload_history);
    let mut faults = BTreeMap::new();
    for record in &faults_records {
        *faults.entry(record.nemesis.name().to_string()).or_insert(0) += 1;
    }
    let summary = Summary {
        seed: options.seed,
        nodes: options.nodes,
        isolation: match isolation {
            Isolation::Namespaces => "namespaces".into(),
            Isolation::Loopback => "loopback".into(),
        },
        nemeses: nemeses.iter().map(|n| n.name().to_string()).collect(),
        skipped,
        workload_seconds,
        operations,
        operations_by_kind,
        faults,
        availability: analysis::availability(workload_history, &faults_records),
        latency: analysis::latency_figures(workload_history),
        settle_seconds: settled.is_ok().then_some(settle_seconds),
        lincheck,
        unexpected_exits,
        coordination: coordination.figures,
        anomalies,
    };

    write_jsonl(&out_dir.join("bank.jsonl"), &bank_entries)?;
    write_jsonl(&out_dir.join("watchers.jsonl"), &coordination.watchers)?;
    if options.workload.lease() {
        write_jsonl(&out_dir.join("leases.jsonl"), &leases)?;
    }
    if let Some(evidence) = &lease_evidence {
        write_jsonl(&out_dir.join("lease-scans.jsonl"), &evidence.scans)?;
        write_jsonl(&out_dir.join("lease-deletes.jsonl"), &evidence.deletes_seen)?;
        write_jsonl(&out_dir.join("terms.jsonl"), &evidence.terms)?;
    }
    if options.workload.lock() {
        write_jsonl(&out_dir.join("locks.jsonl"), &holdings)?;
    }
    write_outputs(
        &out_dir,
        &history,
        &faults_records,
        &summary,
        &samples_of(&samples),
    )?;
    cluster.lock().await.shutdown();
    Ok(RunReport { summary, out_dir })
}

/// What a run will do on this machine.
#[derive(Clone, Debug)]
pub struct Plan {
    /// How the nodes are separated.
    pub isolation: Isolation,
    /// The nemeses that can run.
    pub nemeses: BTreeSet<Nemesis>,
    /// Those asked for that cannot, and why.
    pub skipped: Vec<Skipped>,
}

/// Which isolation and nemeses this machine allows for `options`, and what is skipped and why.
/// An error when `options` asks for what cannot be had (namespaces without root).
pub fn plan(options: &RunOptions) -> Result<Plan, ChaosError> {
    if !(1..=crate::topology::SLOTS_MAX - 1).contains(&options.nodes) {
        return Err(ChaosError::Setup(format!(
            "--nodes must be between 1 and {}",
            crate::topology::SLOTS_MAX - 1
        )));
    }
    let missing = namespace_tools_missing();
    let namespaces_possible = is_root() && missing.is_empty();
    let isolation = match options.isolation {
        Some(Isolation::Namespaces) if !namespaces_possible => {
            return Err(ChaosError::Unsupported(namespaces_refusal(&missing)));
        }
        Some(isolation) => isolation,
        None if namespaces_possible => Isolation::Namespaces,
        None => Isolation::Loopback,
    };
    let mut nemeses = BTreeSet::new();
    let mut skipped = Vec::new();
    for &nemesis in &options.nemeses {
        let reason = if nemesis.needs_namespaces() && isolation == Isolation::Loopback {
            Some(if namespaces_possible {
                "network faults need network namespaces; this run uses loopback".to_string()
            } else {
                namespaces_refusal(&missing)
            })
        } else if nemesis == Nemesis::Clock && libfaketime().is_none() {
            Some(
                "clock jumps need libfaketime (Debian/Ubuntu package `faketime`; .ci/run installs it)"
                    .to_string(),
            )
        } else if nemesis == Nemesis::Fsync
            && !options
                .fsync_shim
                .as_ref()
                .is_some_and(|shim| shim.exists())
        {
            Some(
                "fsync faults need the LD_PRELOAD shim libraftkv_fsync_fault.so \
                 (cargo build --release -p raftkv-fsync-fault; --fsync-shim names it)"
                    .to_string(),
            )
        } else {
            None
        };
        match reason {
            Some(reason) => skipped.push(Skipped {
                nemesis: nemesis.name().to_string(),
                reason,
            }),
            None => {
                nemeses.insert(nemesis);
            }
        }
    }
    Ok(Plan {
        isolation,
        nemeses,
        skipped,
    })
}

fn namespaces_refusal(missing: &[&str]) -> String {
    if !is_root() {
        "network faults need network namespaces, which need root: run as root (or in a container \
         with CAP_NET_ADMIN and CAP_SYS_ADMIN)"
            .to_string()
    } else {
        format!(
            "network faults need {} (Debian/Ubuntu packages iproute2 and nftables)",
            missing.join(" and ")
        )
    }
}

/// A seed for the stream `stream` of a run seeded with `seed`.
fn derive_seed(seed: u64, stream: u64) -> u64 {
    // SplitMix64's finalizer: nearby streams get unrelated seeds.
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Waits until a write commits.
async fn wait_until_ready(admin: &Client) -> Result<(), ChaosError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match admin.put("chaos/ready", "1").await {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(ChaosError::NotReady(format!(
                    "no write committed within {READY_TIMEOUT:?}: {error}"
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Sleeps out the workload phase, restarting any node that exits on its own (a finding) and
/// printing progress; returns the exits seen.
async fn watch_processes(
    cluster: &Mutex<Cluster>,
    origin: Instant,
    options: &RunOptions,
    shared: &WorkloadShared,
    timeline: &Timeline,
) -> Vec<String> {
    let mut exits = Vec::new();
    let end = origin + options.duration;
    let mut next_progress = options.progress_every.map(|every| origin + every);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500).min(end - Instant::now())).await;
        exits.extend(describe_exits(cluster).await);
        if let Some(at) = next_progress {
            if Instant::now() >= at {
                eprintln!(
                    "raftkv-chaos: {:>6.0} s: {} operations, {} faults",
                    origin.elapsed().as_secs_f64(),
                    shared.operations_started.load(Ordering::Relaxed),
                    timeline.records().len()
                );
                next_progress = options.progress_every.map(|every| at + every);
            }
        }
    }
    exits
}

/// Reaps nodes that exited on their own, restarts them, and describes each exit.
async fn describe_exits(cluster: &Mutex<Cluster>) -> Vec<String> {
    let mut cluster = cluster.lock().await;
    let exits = cluster.reap_unexpected_exits();
    let mut described = Vec::new();
    for exit in exits {
        described.push(format!("node {} ({})", exit.id, exit.status));
        if let Some(slot) = cluster.slot_of_id(exit.id) {
            if let Err(error) = cluster.start(slot) {
                eprintln!("raftkv-chaos: restarting node {}: {error}", exit.id);
            }
        }
    }
    described
}

/// Waits until a write made after healing is applied on every member, every member process
/// runs, and no membership change is in progress. Returns the members' (id, slot).
async fn settle(context: &FaultContext, timeout: Duration) -> Result<Vec<(u64, usize)>, String> {
    let deadline = Instant::now() + timeout;
    let mut last_problem = String::from("nothing tried");
    while Instant::now() < deadline {
        match settled_members(context).await {
            Ok(members) => return Ok(members),
            Err(problem) => last_problem = problem,
        }
        // An operator replaces a node stuck recovering from a configuration long gone.
        crate::disk_faults::replace_orphaned_recoveries(context).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(last_problem)
}

async fn settled_members(context: &FaultContext) -> Result<Vec<(u64, usize)>, String> {
    let written = context
        .admin
        .put("chaos/settle", "1")
        .await
        .map_err(|error| format!("no write commits: {error}"))?;
    let members = context
        .admin
        .members()
        .await
        .map_err(|error| format!("the members cannot be read: {error}"))?;
    if members.change_in_progress {
        return Err("a membership change is in progress".into());
    }
    let mut settled = Vec::new();
    for member in &members.members {
        let (slot, endpoint) = {
            let cluster = context.cluster.lock().await;
            let Some(slot) = cluster.slot_of_id(member.id) else {
                return Err(format!("member {} has no process", member.id));
            };
            if cluster.state(slot) != Some(ProcessState::Running) {
                return Err(format!("member {} is not running", member.id));
            }
            (slot, cluster.topology().http_addr(slot).to_string())
        };
        // A follower learns of the commit with the leader's next message: give it a moment
        // rather than a new write (which would move the goal again).
        let catch_up_deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let status = context
                .admin
                .status(&endpoint)
                .await
                .map_err(|error| format!("member {} does not answer: {error}", member.id))?;
            if status.applied_index >= written.index {
                break;
            }
            if Instant::now() >= catch_up_deadline {
                return Err(format!(
                    "member {} has applied {} of {}",
                    member.id, status.applied_index, written.index
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        settled.push((member.id, slot));
    }
    Ok(settled)
}

/// Reads every key of the history linearizably, adding the reads to the history as entries of
/// client [`FINAL_READER`]. Returns the values read (keys that could not be read are missing).
async fn read_final_values(
    admin: &Client,
    history: &mut History,
    origin: Instant,
) -> BTreeMap<String, Option<String>> {
    let keys: Vec<String> = history.keys().into_iter().map(str::to_string).collect();
    let first_id = history
        .entries
        .iter()
        .map(|entry| entry.id + 1)
        .max()
        .unwrap_or(0);
    let mut values = BTreeMap::new();
    for (id, key) in (first_id..).zip(keys) {
        let invoke = origin.elapsed();
        let outcome =
            crate::workload::execute(admin, &Operation::Get { key: key.clone() }, false).await;
        let complete = origin.elapsed();
        if let Outcome::Ok {
            output: Output::Get { value },
        } = &outcome
        {
            values.insert(key.clone(), value.clone());
        }
        history.push(Entry {
            id,
            client: FINAL_READER,
            operation: Operation::Get { key },
            invoke_ns: nanos(invoke),
            complete_ns: nanos(complete),
            outcome,
        });
    }
    values
}

/// Attempts at reading every member's copy at one applied index.
const COPY_ATTEMPTS: usize = 10;
/// The entry of a [`Copy`] that holds how many keys the member holds in all, so that keys
/// outside the workload's generations are compared too.
const KEYS_HELD: &str = "<keys held, all prefixes>";

/// Every member's own copy of the workload's keys (stale scans of each key generation) and
/// its count of all keys, read while its applied index stays put, and with every member at
/// the same applied index: copies compared at different points of the log would differ
/// without anything being wrong. Retried while the members are still applying.
async fn read_copies(
    cluster: &Mutex<Cluster>,
    members: &[(u64, usize)],
    history: &History,
) -> Result<Vec<(u64, Copy)>, String> {
    let mut last_problem = String::new();
    for _ in 0..COPY_ATTEMPTS {
        match read_copies_once(cluster, members, history).await {
            Ok(copies) => {
                let indexes: BTreeSet<u64> = copies.iter().map(|(_, index, _)| *index).collect();
                if indexes.len() <= 1 {
                    return Ok(copies.into_iter().map(|(id, _, copy)| (id, copy)).collect());
                }
                last_problem = format!(
                    "the members' applied indexes differ: {:?}",
                    copies
                        .iter()
                        .map(|(id, index, _)| (*id, *index))
                        .collect::<Vec<_>>()
                );
            }
            Err(problem) => last_problem = problem,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "the members' copies could not be read at one applied index in {COPY_ATTEMPTS} \
         attempts: {last_problem}"
    ))
}

/// One reading of every member: (id, applied index, copy).
async fn read_copies_once(
    cluster: &Mutex<Cluster>,
    members: &[(u64, usize)],
    history: &History,
) -> Result<Vec<(u64, u64, Copy)>, String> {
    let prefixes: BTreeSet<String> = history
        .keys()
        .into_iter()
        .filter_map(|key| key.rfind('/').map(|end| key[..=end].to_string()))
        .collect();
    let mut copies = Vec::new();
    for &(id, slot) in members {
        let endpoint = cluster.lock().await.topology().http_addr(slot).to_string();
        let client = Client::with_options(
            [endpoint.clone()],
            ClientOptions {
                request_timeout: Duration::from_secs(2),
                retry_deadline: Duration::from_secs(5),
            },
        )
        .map_err(|error| format!("a client of node {id}: {error}"))?;
        let before = client
            .status(&endpoint)
            .await
            .map_err(|error| format!("node {id} does not answer: {error}"))?;
        let mut copy = Copy::new();
        for prefix in &prefixes {
            let scan = client
                .scan_with(prefix, SCAN_LIMIT, Consistency::Stale)
                .await
                .map_err(|error| format!("node {id} cannot be scanned: {error}"))?;
            if scan.truncated {
                return Err(format!("{prefix} holds more than {SCAN_LIMIT} keys"));
            }
            for item in scan.items {
                copy.insert(item.key, item.value.unwrap_or_default());
            }
        }
        let after = client
            .status(&endpoint)
            .await
            .map_err(|error| format!("node {id} does not answer: {error}"))?;
        if after.applied_index != before.applied_index {
            return Err(format!(
                "node {id} applied from {} to {} while it was read",
                before.applied_index, after.applied_index
            ));
        }
        copy.insert(KEYS_HELD.to_string(), after.keys.to_string());
        copies.push((id, after.applied_index, copy));
    }
    Ok(copies)
}

fn samples_of(samples: &[crate::workload::LatencySample]) -> Vec<Sample> {
    samples
        .iter()
        .map(|sample| {
            let latency_micros = u64::try_from(sample.latency.as_micros()).unwrap_or(u64::MAX);
            Sample {
                at_micros: u64::try_from(sample.at.as_micros()).unwrap_or(u64::MAX),
                latency_micros,
                ok: sample.ok,
                // A closed loop: each operation is sent when the previous one is answered.
                service_micros: latency_micros,
                // Not drawn: the fault plots do not split reads from writes.
                read: false,
            }
        })
        .collect()
}

fn write_outputs(
    out_dir: &Path,
    history: &History,
    faults: &[FaultRecord],
    summary: &Summary,
    samples: &[Sample],
) -> Result<(), ChaosError> {
    let history_path = out_dir.join("history.jsonl");
    let file = std::fs::File::create(&history_path)
        .map_err(|source| output_error(&history_path, source))?;
    history
        .write_jsonl(std::io::BufWriter::new(file))
        .map_err(|source| output_error(&history_path, source))?;
    let mut timeline = String::new();
    for fault in faults {
        timeline.push_str(&serde_json::to_string(fault).unwrap_or_default());
        timeline.push('\n');
    }
    write_file(&out_dir.join("nemesis.jsonl"), timeline)?;
    write_file(
        &out_dir.join("summary.json"),
        serde_json::to_string_pretty(summary).unwrap_or_default() + "\n",
    )?;
    write_file(&out_dir.join("summary.txt"), summary.to_text())?;
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|error| ChaosError::Setup(format!("histogram: {error}")))?;
    for sample in samples.iter().filter(|sample| sample.ok) {
        let _ = histogram.record(sample.latency_micros.clamp(1, 3_600_000_000));
    }
    let end_ns = samples
        .iter()
        .map(|sample| sample.at_micros * 1_000)
        .max()
        .unwrap_or(0);
    let bands: Vec<Band> = faults
        .iter()
        .map(|fault| Band {
            start_micros: fault.start_ns / 1_000,
            end_micros: fault.end_ns.unwrap_or(end_ns) / 1_000,
            row: fault.nemesis.name().to_string(),
        })
        .collect();
    let title = format!(
        "raftkv-chaos seed {}: {}",
        summary.seed,
        if summary.nemeses.is_empty() {
            "no faults".to_string()
        } else {
            summary.nemeses.join(", ")
        }
    );
    let svg = render_svg_with_bands(&title, samples, &histogram, &bands).map_err(|error| {
        output_error(&out_dir.join("latency.svg"), std::io::Error::other(error))
    })?;
    write_file(&out_dir.join("latency.svg"), svg)
}

fn write_file(path: &Path, contents: String) -> Result<(), ChaosError> {
    std::fs::write(path, contents).map_err(|source| output_error(path, source))
}

fn output_error(path: &Path, source: std::io::Error) -> ChaosError {
    ChaosError::Output {
        path: path.display().to_string(),
        source,
    }
}

/// Every host slot with its HTTP address (slots count from 1).
async fn slot_endpoints(cluster: &Mutex<Cluster>) -> Vec<(usize, String)> {
    let cluster = cluster.lock().await;
    let topology = cluster.topology();
    (1..=topology.slots())
        .map(|slot| (slot, topology.http_addr(slot).to_string()))
        .collect()
}

/// The largest randomized election timeout of the nodes, in ticks (`--tick-ms`).
const ELECTION_TICKS_MAX: u64 = 30;
/// Longest wait, once settled, for the keys of the leases left to expire to go.
const LEASES_GONE_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until no lease key is left, or [`LEASES_GONE_TIMEOUT`] passed (the lease checks
/// then judge the keys still there against their bound).
async fn wait_for_leases_to_go(admin: &Client) {
    let deadline = Instant::now() + LEASES_GONE_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(scan) = admin.scan_at(LEASE_PREFIX, 1, None).await {
            if scan.items.is_empty() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The lease workload's observers: the scanner, the delete watcher and the term observer.
struct LeaseObservers {
    scanner: tokio::task::JoinHandle<Vec<lease_check::LeaseScan>>,
    deletes: tokio::task::JoinHandle<Vec<lease_check::SeenDelete>>,
    terms: tokio::task::JoinHandle<Vec<lease_check::TermSample>>,
}

impl LeaseObservers {
    fn start(
        client: &Client,
        endpoints: Vec<String>,
        origin: Instant,
        stop: &watch::Receiver<bool>,
    ) -> LeaseObservers {
        LeaseObservers {
            scanner: tokio::spawn(leases::run_scanner(
                client.new_session(),
                origin,
                stop.clone(),
            )),
            deletes: tokio::spawn(leases::run_delete_watcher(
                client.new_session(),
                origin,
                stop.clone(),
            )),
            terms: tokio::spawn(leases::run_term_observer(endpoints, origin, stop.clone())),
        }
    }

    /// Waits for the observers (stopped by their channel) and gathers what they saw.
    async fn finish(self) -> lease_check::LeaseEvidence {
        lease_check::LeaseEvidence {
            scans: self.scanner.await.unwrap_or_default(),
            deletes_seen: self.deletes.await.unwrap_or_default(),
            terms: self.terms.await.unwrap_or_default(),
        }
    }
}

/// A running watcher: its name, slot, how far it has got, and its task.
struct RunningWatcher {
    slot: usize,
    reached: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<WatcherRecord>,
}

/// Starts the watchers: through every host slot, a prefix watcher on each workload's keys and
/// a key watcher on one key of each.
async fn start_watchers(
    cluster: &Mutex<Cluster>,
    workload: Workload,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<RunningWatcher>, ChaosError> {
    let mut selections = Vec::new();
    if workload.kv() {
        selections.push(Selection::Prefix("chaos/g".to_string()));
        selections.push(Selection::Key(crate::workload::register_key(0, 0)));
    }
    if workload.bank() {
        selections.push(Selection::Prefix(BANK_PREFIX.to_string()));
        selections.push(Selection::Key(crate::bank::account_key(0)));
    }
    if workload.lease() {
        // A revoke deletes several keys at one revision: the watchers must hand them together.
        selections.push(Selection::Prefix(LEASE_PREFIX.to_string()));
    }
    let endpoints = slot_endpoints(cluster).await;
    let mut watchers = Vec::new();
    for (slot, endpoint) in &endpoints {
        let slot = *slot;
        let client = node_client(endpoint).map_err(ChaosError::Setup)?;
        for selection in &selections {
            let name = match selection {
                Selection::Key(key) => format!("slot {slot} key {key}"),
                Selection::Prefix(prefix) => format!("slot {slot} prefix {prefix}"),
            };
            let reached = Arc::new(AtomicU64::new(0));
            watchers.push(RunningWatcher {
                slot,
                reached: reached.clone(),
                task: tokio::spawn(run_watcher(
                    name,
                    client.clone(),
                    selection.clone(),
                    reached,
                    stop.clone(),
                )),
            });
        }
    }
    Ok(watchers)
}

/// What the revision checks produced.
struct RevisionFindings {
    figures: CoordinationFigures,
    watchers: Vec<WatcherRecord>,
    /// The first member's change history, when one could be read.
    log: Option<ChangeLog>,
}

/// After settling: lets the members' watchers catch up to the final revision and stops them,
/// reads every member's revision and change history, and runs every check of
/// [`checks`], adding what they find to `anomalies`.
#[allow(clippy::too_many_arguments)]
async fn check_revisions(
    admin: &Client,
    cluster: &Mutex<Cluster>,
    members: &[(u64, usize)],
    watchers: Vec<RunningWatcher>,
    stop_watchers: watch::Sender<bool>,
    mut stamps: Vec<Stamp>,
    bank_entries: &[BankEntry],
    workload: Workload,
    anomalies: &mut Vec<String>,
) -> RevisionFindings {
    let mut figures = CoordinationFigures {
        workloads: workload.names(),
        ..CoordinationFigures::default()
    };
    let target = match admin.scan_at("chaos/settle", 1, None).await {
        Ok(scan) => Some(scan.revision),
        Err(error) => {
            anomalies.push(format!("the final revision could not be read: {error}"));
            None
        }
    };
    let member_slots: BTreeSet<usize> = members.iter().map(|(_, slot)| *slot).collect();
    if let Some(target) = target {
        let deadline = Instant::now() + WATCHERS_CATCH_UP_TIMEOUT;
        while Instant::now() < deadline
            && watchers.iter().any(|watcher| {
                member_slots.contains(&watcher.slot)
                    && watcher.reached.load(Ordering::Relaxed) < target
            })
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = stop_watchers.send(true);
    let mut records = Vec::new();
    for watcher in watchers {
        let on_member = member_slots.contains(&watcher.slot);
        let reached = watcher.reached.load(Ordering::Relaxed);
        match watcher.task.await {
            Ok(record) => {
                if let Some(target) = target.filter(|target| on_member && reached < *target) {
                    anomalies.push(format!(
                        "watcher {} on a member reached only revision {reached} of {target} \
                         within {WATCHERS_CATCH_UP_TIMEOUT:?} of settling",
                        record.name
                    ));
                }
                records.push(record);
            }
            Err(error) => anomalies.push(format!("a watcher task failed: {error}")),
        }
    }
    figures.watchers = records.len() as u64;
    figures.watch_events_delivered = records.iter().map(WatcherRecord::events).sum();
    figures.watch_progress_delivered = records
        .iter()
        .flat_map(|record| &record.delivered)
        .filter(|delivered| matches!(delivered, checks::Delivered::Progress { .. }))
        .count() as u64;
    figures.watchers_resumed = records.iter().map(WatcherRecord::resumes).sum();
    for entry in bank_entries {
        let counts = match entry.operation {
            checks::BankOperation::Read => &mut figures.bank_reads,
            checks::BankOperation::Transfer { .. } => &mut figures.bank_transfers,
            checks::BankOperation::Init { .. } => continue,
        };
        counts.add(&match &entry.outcome {
            BankOutcome::Failed { reason } => lincheck::Outcome::Failed {
                reason: reason.clone(),
            },
            BankOutcome::Unknown { reason } => lincheck::Outcome::Unknown {
                reason: reason.clone(),
            },
            _ => lincheck::Outcome::Ok {
                output: Output::Put,
            },
        });
        if matches!(entry.outcome, BankOutcome::CompareFailed { .. }) {
            figures.bank_transfers_compare_failed += 1;
        }
    }
    stamps.extend(bank_entries.iter().filter_map(BankEntry::stamp));
    figures.operations_with_revision = stamps.len() as u64;
    anomalies.extend(checks::real_time_anomalies(&stamps));

    let Some(target) = target else {
        return RevisionFindings {
            figures,
            watchers: records,
            log: None,
        };
    };
    let mut member_revisions = Vec::new();
    let mut logs = Vec::new();
    for &(id, slot) in members {
        let endpoint = cluster.lock().await.topology().http_addr(slot).to_string();
        let client = match node_client(&endpoint) {
            Ok(client) => client,
            Err(error) => {
                anomalies.push(error);
                continue;
            }
        };
        match client
            .scan_with("chaos/settle", 1, Consistency::Stale)
            .await
        {
            Ok(scan) => member_revisions.push((id, scan.revision)),
            Err(error) => anomalies.push(format!("node {id}'s revision cannot be read: {error}")),
        }
        match read_change_log(&endpoint, target, CHANGE_LOG_TIMEOUT).await {
            Ok(log) => logs.push((id, log)),
            Err(error) => anomalies.push(format!("node {id}'s change history: {error}")),
        }
    }
    figures.member_revisions = member_revisions.iter().copied().collect();
    anomalies.extend(checks::member_revision_anomalies(&member_revisions));
    anomalies.extend(checks::log_anomalies(&logs));
    let Some((_, log)) = logs.first() else {
        anomalies.push("no member's change history could be read".to_string());
        return RevisionFindings {
            figures,
            watchers: records,
            log: None,
        };
    };
    figures.history_revisions = log.len() as u64;
    anomalies.extend(checks::acknowledged_write_anomalies(&stamps, log));
    if workload.bank() {
        anomalies.extend(checks::bank_anomalies(
            bank_entries,
            log,
            BANK_PREFIX,
            TOTAL,
        ));
    }
    for record in &records {
        anomalies.extend(checks::watcher_anomalies(record, log));
    }
    anomalies.extend(checks::watcher_agreement_anomalies(&records));
    RevisionFindings {
        figures,
        watchers: records,
        log: Some(log.clone()),
    }
}

fn write_jsonl<T: serde::Serialize>(path: &Path, items: &[T]) -> Result<(), ChaosError> {
    let mut text = String::new();
    for item in items {
        text.push_str(&serde_json::to_string(item).unwrap_or_default());
        text.push('\n');
    }
    write_file(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_as_a_list_and_all_means_every_one() {
        assert_eq!(Workload::parse("all"), Ok(Workload::ALL));
        let chosen = Workload::parse("kv, lease").expect("a list of names");
        assert!(chosen.kv() && chosen.lease() && !chosen.bank() && !chosen.lock());
        assert_eq!(chosen.names(), vec!["kv".to_string(), "lease".to_string()]);
        assert_eq!(
            Workload::ALL.names(),
            vec!["kv", "bank", "lease", "lock"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        );
        assert!(Workload::parse("kv,locks")
            .unwrap_err()
            .contains("unknown workload \"locks\""));
    }
}
