//! The nemeses: faults injected into a running cluster, each family on its own schedule.
//!
//! Every family runs as one loop: calm for a while, inject a fault, hold it, heal it, and so on
//! until the run ends, when the fault in force is healed. With several families enabled their
//! loops run side by side, so faults combine (a partition during a pause during a membership
//! change). Process faults never take down more than a minority of the founding voters at
//! once; everything else is unbounded. Every fault is written to the timeline with its start
//! and end.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use raftkv_client::Client;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::cluster::{Cluster, ProcessState};
use crate::proxy::{LinkDelay, LinkProxies};
use crate::topology::NetworkFaults;
use crate::workload::nanos;

/// A family of faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Nemesis {
    /// Network partitions: random halves, the leader isolated, a bridge or majority ring.
    Partition,
    /// `kill -9` of a node, restarted after the hold.
    Kill,
    /// SIGSTOP of a node, SIGCONT after the hold.
    Pause,
    /// Delay and jitter on links, through the link proxies.
    Slow,
    /// Random packet loss on links, and connection resets.
    Flaky,
    /// A node added (joining as a learner, then promoted), or a voter removed.
    Membership,
    /// A node's clocks (wall and monotonic) jumped forward, through libfaketime.
    Clock,
    /// A node killed, a bit flipped in (or a cut made to) its newest write-ahead log segment
    /// or snapshot file, and restarted: it must refuse to start naming the file and offset, or
    /// truncate a torn tail; a refusal is mended by the operator's runbook.
    Disk,
    /// A node's fsync and fdatasync fail with EIO (it must stop) or lie (then a power loss on
    /// kill), through the `raftkv-fsync-fault` LD_PRELOAD shim.
    Fsync,
}

impl Nemesis {
    /// Every family.
    pub const ALL: [Nemesis; 9] = [
        Nemesis::Partition,
        Nemesis::Kill,
        Nemesis::Pause,
        Nemesis::Slow,
        Nemesis::Flaky,
        Nemesis::Membership,
        Nemesis::Clock,
        Nemesis::Disk,
        Nemesis::Fsync,
    ];

    /// Its name on the command line and in the timeline.
    pub fn name(self) -> &'static str {
        match self {
            Nemesis::Partition => "partition",
            Nemesis::Kill => "kill",
            Nemesis::Pause => "pause",
            Nemesis::Slow => "slow",
            Nemesis::Flaky => "flaky",
            Nemesis::Membership => "membership",
            Nemesis::Clock => "clock",
            Nemesis::Disk => "disk",
            Nemesis::Fsync => "fsync",
        }
    }

    /// Whether it needs network namespaces.
    pub fn needs_namespaces(self) -> bool {
        matches!(self, Nemesis::Partition | Nemesis::Slow | Nemesis::Flaky)
    }
}

impl fmt::Display for Nemesis {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Nemesis {
    type Err = String;

    fn from_str(text: &str) -> Result<Nemesis, String> {
        Nemesis::ALL
            .into_iter()
            .find(|nemesis| nemesis.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Nemesis::ALL.iter().map(|n| n.name()).collect();
                format!(
                    "unknown nemesis `{text}`; one of {} or all",
                    names.join(", ")
                )
            })
    }
}

/// Parses `all` or a comma-separated list of nemesis names.
pub fn parse_nemeses(text: &str) -> Result<BTreeSet<Nemesis>, String> {
    let mut nemeses = BTreeSet::new();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        if part == "all" {
            nemeses.extend(Nemesis::ALL);
        } else if part != "none" {
            nemeses.insert(part.parse()?);
        }
    }
    Ok(nemeses)
}

/// One fault in the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// Its family.
    pub nemesis: Nemesis,
    /// What exactly, for a person.
    pub detail: String,
    /// When it started, since the run's origin.
    pub start_ns: u64,
    /// When it was healed; `None` while in force. Equal to the start for an instant fault.
    pub end_ns: Option<u64>,
}

/// The faults of a run, in order of start.
#[derive(Debug, Default)]
pub struct Timeline {
    records: StdMutex<Vec<FaultRecord>>,
}

impl Timeline {
    /// How many faults of `nemesis` the timeline holds.
    fn count(&self, nemesis: Nemesis) -> usize {
        self.lock()
            .iter()
            .filter(|record| record.nemesis == nemesis)
            .count()
    }

    pub(crate) fn begin(&self, origin: Instant, nemesis: Nemesis, detail: String) -> usize {
        let mut records = self.lock();
        records.push(FaultRecord {
            nemesis,
            detail,
            start_ns: nanos(origin.elapsed()),
            end_ns: None,
        });
        records.len() - 1
    }

    pub(crate) fn end(&self, origin: Instant, index: usize) {
        if let Some(record) = self.lock().get_mut(index) {
            record.end_ns = Some(nanos(origin.elapsed()));
        }
    }

    /// Adds `text` to the detail of record `index` (what a fault turned out to do).
    pub(crate) fn amend(&self, index: usize, text: &str) {
        if let Some(record) = self.lock().get_mut(index) {
            record.detail.push_str(text);
        }
    }

    fn instant(&self, origin: Instant, nemesis: Nemesis, detail: String) {
        let index = self.begin(origin, nemesis, detail);
        self.end(origin, index);
    }

    /// A copy of every record so far.
    pub fn records(&self) -> Vec<FaultRecord> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRecord>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How long faults last and how long the calm between them is.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Calm between faults of one family: uniformly between these.
    pub calm: (Duration, Duration),
    /// How long a fault is held: uniformly between these.
    pub hold: (Duration, Duration),
}

/// What the nemeses act on.
pub struct FaultContext {
    /// The nodes.
    pub cluster: Arc<Mutex<Cluster>>,
    /// The link proxies, in namespaces.
    pub proxies: Option<LinkProxies>,
    /// A client with every slot's endpoint, for status and membership calls.
    pub admin: Client,
    /// The run's time origin.
    pub origin: Instant,
    /// Where faults are recorded.
    pub timeline: Arc<Timeline>,
    /// The founding voters: process faults keep a majority of this many running.
    pub voters: usize,
    network: StdMutex<NetworkState>,
    /// What the nemeses found wrong (a damaged node that started, a refusal that named no
    /// file, a replacement that never caught up): anomalies of the run.
    findings: StdMutex<Vec<String>>,
    /// Per node id, the length of its log when a disk nemesis last restarted it.
    restart_log_offsets: StdMutex<BTreeMap<u64, u64>>,
    /// Why the last membership step did nothing (empty when it acted).
    membership_skip: StdMutex<String>,
    /// Whether the storage nemeses may also take away data a node had synced (see
    /// [`crate::run::RunOptions::lossy_storage`]).
    pub lossy_storage: bool,
}

#[derive(Debug, Default)]
struct NetworkState {
    partition: BTreeSet<(usize, usize)>,
    loss_percent: BTreeMap<(usize, usize), u8>,
}

impl FaultContext {
    /// A context over `cluster`.
    pub fn new(
        cluster: Arc<Mutex<Cluster>>,
        proxies: Option<LinkProxies>,
        admin: Client,
        origin: Instant,
        timeline: Arc<Timeline>,
        voters: usize,
    ) -> FaultContext {
        FaultContext {
            cluster,
            proxies,
            admin,
            origin,
            timeline,
            voters,
            network: StdMutex::new(NetworkState::default()),
            findings: StdMutex::new(Vec::new()),
            restart_log_offsets: StdMutex::new(BTreeMap::new()),
            membership_skip: StdMutex::new(String::new()),
            lossy_storage: false,
        }
    }

    /// Records a finding: an anomaly of the run.
    pub(crate) fn report(&self, finding: String) {
        tracing_error(&finding);
        self.findings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(finding);
    }

    /// What the nemeses found wrong so far.
    pub fn findings(&self) -> Vec<String> {
        self.findings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Says on stderr why a membership step did nothing, once per change of reason; `""`
    /// when a step acted. Not in the timeline, which counts every record as a strike.
    fn note_membership_skip(&self, reason: &str) {
        let mut last = self
            .membership_skip
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *last != reason {
            if !reason.is_empty() {
                tracing_error(&format!("membership: skipping steps: {reason}"));
            }
            *last = reason.to_string();
        }
    }

    pub(crate) fn set_restart_log_offset(&self, id: u64, offset: u64) {
        self.restart_log_offsets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id, offset);
    }

    pub(crate) fn restart_log_offset(&self, id: u64) -> u64 {
        self.restart_log_offsets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    async fn apply_network(&self, change: impl FnOnce(&mut NetworkState)) {
        let faults = {
            let mut state = self
                .network
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            change(&mut state);
            NetworkFaults {
                blocked: state.partition.clone(),
                loss_percent: state.loss_percent.clone(),
            }
        };
        let cluster = self.cluster.lock().await;
        if let Err(error) = cluster.topology().apply_network(&faults) {
            tracing_error(&format!("applying network faults: {error}"));
        }
    }

    /// Whether a network or process fault is in force on any node but the one in
    /// `own_slot`: a partition, packet loss, a delayed link, or a node killed, paused or
    /// under a storage fault. Clock jumps are instants and do not count.
    pub(crate) async fn faults_in_force(&self, own_slot: usize) -> bool {
        let network = {
            let state = self
                .network
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            !state.partition.is_empty() || !state.loss_percent.is_empty()
        };
        let delayed = self.proxies.as_ref().is_some_and(LinkProxies::any_delay);
        let impaired = self
            .cluster
            .lock()
            .await
            .impaired_slots()
            .into_iter()
            .any(|slot| slot != own_slot);
        network || delayed || impaired
    }

    /// Heals every fault: the network, link delays, paused and killed nodes.
    pub async fn heal_everything(&self) -> Result<(), crate::ChaosError> {
        self.apply_network(|state| *state = NetworkState::default())
            .await;
        if let Some(proxies) = &self.proxies {
            proxies.clear_delays();
        }
        self.cluster.lock().await.revive_all()
    }

    /// The member list as the current leader has it. Every node answers `GET /v1/members`
    /// from its own configuration, and a node that is behind (a joiner still catching up, a
    /// removed node, a leader cut off by a partition that has not noticed yet) may lack a
    /// member the cluster has: trusting one, the harness once retired a node that was still a
    /// voter and cost the cluster its quorum. So the list is taken from a node that answers as
    /// leader, and only if that node is still leader in the same term after a new write
    /// commits and its commit index covers that write: a deposed leader cannot learn of a
    /// commit without stepping down.
    pub async fn leader_members(&self) -> Option<raftkv_client::api::MembersResponse> {
        let slot = self.leader_slot().await?;
        let (endpoint, id) = {
            let cluster = self.cluster.lock().await;
            (
                cluster.topology().http_addr(slot).to_string(),
                cluster.id_in(slot)?,
            )
        };
        let client = Client::with_options(
            [endpoint.clone()],
            raftkv_client::ClientOptions {
                request_timeout: Duration::from_secs(1),
                retry_deadline: Duration::from_secs(1),
            },
        )
        .ok()?;
        let before = self.admin.status(&endpoint).await.ok()?;
        let members = client.members().await.ok()?;
        let written = self.admin.put("chaos/leader-check", "1").await.ok()?;
        let after = self.admin.status(&endpoint).await.ok()?;
        let confirmed = before.role == "leader"
            && before.id == id
            && members.leader == Some(id)
            && after.role == "leader"
            && after.term == before.term
            && after.commit_index >= written.index;
        confirmed.then_some(members)
    }

    /// The slots of running nodes that say they are recovering after a restart that may have
    /// lost writes (`recovery` in `/v1/status`). Such a node counts as down: it acknowledges
    /// nothing, or votes for no one, until the other voters answered it, so a fault that takes
    /// another node away can leave the cluster without a quorum it cannot regain by itself (a
    /// voter that refuses to start cannot be removed without a leader).
    pub async fn recovering_slots(&self) -> Vec<usize> {
        let mut recovering = Vec::new();
        for (slot, endpoint) in self.running_endpoints().await {
            let status =
                tokio::time::timeout(Duration::from_secs(1), self.admin.status(&endpoint)).await;
            if let Ok(Ok(status)) = status {
                if status.recovery.is_some() {
                    recovering.push(slot);
                }
            }
        }
        recovering
    }

    /// The slot and HTTP address of every running node.
    async fn running_endpoints(&self) -> Vec<(usize, String)> {
        let cluster = self.cluster.lock().await;
        cluster
            .occupants()
            .into_iter()
            .filter(|&(slot, _)| cluster.state(slot) == Some(ProcessState::Running))
            .map(|(slot, _)| (slot, cluster.topology().http_addr(slot).to_string()))
            .collect()
    }

    /// The slot of the leader with the highest term among the nodes that answer, if any.
    pub async fn leader_slot(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (slot, endpoint) in self.running_endpoints().await {
            if let Ok(status) = self.admin.status(&endpoint).await {
                if status.role == "leader" && best.is_none_or(|(term, _)| status.term > term) {
                    best = Some((status.term, slot));
                }
            }
        }
        best.map(|(_, slot)| slot)
    }
}

pub(crate) fn tracing_error(message: &str) {
    eprintln!("raftkv-chaos: {message}");
}

/// How soon a storage or process nemesis that could not strike tries again.
const STRIKE_RETRY: Duration = Duration::from_millis(200);

/// Runs `nemesis`'s loop until `stop` turns true, healing its fault in force at the end.
pub async fn run_nemesis(
    nemesis: Nemesis,
    context: Arc<FaultContext>,
    schedule: Schedule,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut random = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut retry_soon = false;
    loop {
        let calm = if retry_soon {
            STRIKE_RETRY
        } else {
            between(&mut random, schedule.calm)
        };
        if sleep_or_stop(calm, &mut stop).await {
            return;
        }
        let hold = between(&mut random, schedule.hold);
        let struck_before = context.timeline.count(nemesis);
        match nemesis {
            Nemesis::Partition => partition(&context, &mut random, hold, &mut stop).await,
            Nemesis::Kill | Nemesis::Pause => {
                process_fault(nemesis, &context, &mut random, hold, &mut stop).await
            }
            Nemesis::Slow => slow(&context, &mut random, hold, &mut stop).await,
            Nemesis::Flaky => flaky(&context, &mut random, hold, &mut stop).await,
            Nemesis::Membership => membership(&context, &mut random, hold).await,
            Nemesis::Clock => clock(&context, &mut random).await,
            Nemesis::Disk => crate::disk_faults::disk(&context, &mut random).await,
            Nemesis::Fsync => {
                crate::disk_faults::fsync(&context, &mut random, hold, &mut stop).await
            }
        }
        // A storage fault waits for every founding voter to be up and unimpaired, and a kill or
        // a pause for no other node to be down: one that could not strike tries again soon
        // rather than after another calm, or a short run with every nemesis would seldom see
        // one (seed 18 of the combined run once ended without a single kill).
        retry_soon = matches!(
            nemesis,
            Nemesis::Disk | Nemesis::Fsync | Nemesis::Kill | Nemesis::Pause
        ) && context.timeline.count(nemesis) == struck_before;
        if *stop.borrow() {
            return;
        }
    }
}

fn between(random: &mut Xoshiro256PlusPlus, (low, high): (Duration, Duration)) -> Duration {
    if high <= low {
        return low;
    }
    low + Duration::from_micros(random.gen_range(0..=(high - low).as_micros() as u64))
}

/// Sleeps for `duration`; true when `stop` turned true first.
pub(crate) async fn sleep_or_stop(duration: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(duration) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn member_slots(context: &FaultContext) -> Vec<usize> {
    context
        .cluster
        .lock()
        .await
        .occupants()
        .into_iter()
        .map(|(slot, _)| slot)
        .collect()
}

async fn partition(
    context: &FaultContext,
    random: &mut Xoshiro256PlusPlus,
    hold: Duration,
    stop: &mut watch::Receiver<bool>,
) {
    let mut slots = member_slots(context).await;
    if slots.len() < 2 {
        return;
    }
    slots.shuffle(random);
    let mut blocked = BTreeSet::new();
    let mut block = |a: usize, b: usize| {
        blocked.insert((a, b));
        blocked.insert((b, a));
    };
    let detail = match random.gen_range(0..3) {
        0 => {
            let (small, large) = slots.split_at(slots.len() / 2);
            for &a in small {
                for &b in large {
                    block(a, b);
                }
            }
            format!("halves {small:?} | {large:?}")
        }
        1 => {
            let leader = context.leader_slot().await.unwrap_or(slots[0]);
            for &other in slots.iter().filter(|&&slot| slot != leader) {
                block(leader, other);
            }
            format!("leader (slot {leader}) isolated")
        }
        _ if slots.len() >= 5 => {
            // Majority ring: each node hears only its two ring neighbours, so every node sees
            // a majority and no two see the same one.
            let count = slots.len();
            for i in 0..count {
                for j in (i + 1)..count {
                    let distance = (j - i).min(count - (j - i));
                    if distance > 1 {
                        block(slots[i], slots[j]);
                    }
                }
            }
            format!("majority ring {slots:?}")
        }
        _ => {
            // Bridge: two sides that cannot hear each other, and one node that hears both.
            let bridge = slots[0];
            let rest = &slots[1..];
            let (left, right) = rest.split_at(rest.len() / 2);
            for &a in left {
                for &b in right {
                    block(a, b);
                }
            }
            format!("bridge: {left:?} | {right:?} both hear slot {bridge}")
        }
    };
    context
        .apply_network(|state| state.partition = blocked)
        .await;
    let index = context
        .timeline
        .begin(context.origin, Nemesis::Partition, detail);
    sleep_or_stop(hold, stop).await;
    context.apply_network(|state| state.partition.clear()).await;
    context.timeline.end(context.origin, index);
}

/// Picks a running node to kill or pause, the leader half the time, while at most a minority
/// of the founding voters' count is down.
pub(crate) async fn process_victim(
    context: &FaultContext,
    random: &mut Xoshiro256PlusPlus,
) -> Option<usize> {
    let leader = if random.gen_bool(0.5) {
        context.leader_slot().await
    } else {
        None
    };
    let recovering = context.recovering_slots().await;
    let cluster = context.cluster.lock().await;
    let down_max = (context.voters.saturating_sub(1)) / 2;
    let mut impaired = cluster.impaired_slots();
    impaired.extend(recovering.iter().copied());
    impaired.sort_unstable();
    impaired.dedup();
    if impaired.len() >= down_max.max(1) {
        return None;
    }
    let running: Vec<usize> = cluster
        .occupants()
        .into_iter()
        .map(|(slot, _)| slot)
        .filter(|&slot| cluster.state(slot) == Some(ProcessState::Running))
        .filter(|slot| !recovering.contains(slot))
        .collect();
    match leader {
        Some(slot) if running.contains(&slot) => Some(slot),
        _ => running.choose(random).copied(),
    }
}

/// Kills (`Nemesis::Kill`) or pauses (`Nemesis::Pause`) one node for `hold`, then restarts or
/// resumes it.
async fn process_fault(
    nemesis: Nemesis,
    context: &FaultContext,
    random: &mut Xoshiro256PlusPlus,
    hold: Duration,
    stop: &mut watch::Receiver<bool>,
) {
    let Some(slot) = process_victim(context, random).await else {
        return;
    };
    let kill = nemesis == Nemesis::Kill;
    let id = {
        let mut cluster = context.cluster.lock().await;
        if kill {
            cluster.kill(slot);
        } else {
            cluster.pause(slot);
        }
        cluster.id_in(slot)
    };
    let what = if kill { "kill -9" } else { "SIGSTOP" };
    let index = context.timeline.begin(
        context.origin,
        nemesis,
        format!("{what} node {} (slot {slot})", id.unwrap_or(0)),
    );
    sleep_or_stop(hold, stop).await;
    let mut cluster = context.cluster.lock().await;
    // The membership nemesis may have removed the node meanwhile, and its slot moved on; or
    // it is retiring it, or a storage nemesis took it over (quarantined): theirs now.
    if id.is_some() && cluster.id_in(slot) == id && !cluster.is_quarantined(slot) {
        if kill {
            if let Err(error) = cluster.start(slot) {
                tracing_error(&format!("restarting slot {slot}: {error}"));
            }
        } else {
            cluster.resume(slot);
        }
    }
    drop(cluster);
    context.timeline.end(context.origin, index);
}

/// The directed links touched by a link fault: every link of one node, or every link.
fn chosen_links(slots: &[usize], random: &mut Xoshiro256PlusPlus) -> (Vec<(usize, usize)>, String) {
    let every = slots
        .iter()
        .flat_map(|&a| slots.iter().map(move |&b| (a, b)))
        .filter(|(a, b)| a != b);
    if random.gen_bool(0.5) {
        (every.collect(), "every link".to_string())
    } else {
        let node = *slots.choose(random).unwrap_or(&1);
        (
            every.filter(|(a, b)| *a == node || *b == node).collect(),
            format!("links of slot {node}"),
        )
    }
}

async fn slow(
    context: &FaultContext,
    random: &mut Xoshiro256PlusPlus,
    hold: Duration,
    stop: &mut watch::Receiver<bool>,
) {
    let Some(proxies) = context.proxies.clone() else {
        return;
    };
    let slots = member_slots(context).await;
    let (links, which) = chosen_links(&slots, random);
    let delay = LinkDelay {
        base: Duration::from_millis(random.gen_range(20..=200)),
        jitter: Duration::from_millis(random.gen_range(0..=100)),
    };
    for &(from, to) in &links {
        proxies.set_delay(from, to, Some(delay));
    }
    let index = context.timeline.begin(
        context.origin,
        Nemesis::Slow,
        format!(
            "{which}: +{} ms, jitter {} ms",
            delay.base.as_millis(),
            delay.jitter.as_millis()
        ),
    );
    sleep_or_stop(hold, stop).await;
    for &(from, to) in &links {
        proxies.set_delay(from, to, None);
    }
    context.timeline.end(context.origin, index);
}

async fn flaky(
    context: &FaultContext,
    random: &mut Xoshiro256PlusPlus,
    hold: Duration,
    stop: &mut watch::Receiver<bool>,
) {
    let slots = member_slots(context).await;
    let (links, which) = chosen_links(&slots, random);
    let percent: u8 = random.gen_range(5..=35);
    let reset = random.gen_bool(0.5);
    if reset {
        if let Some(proxies) = &context.proxies {
            proxies.reset_connections();
        }
    }
    let loss: BTreeMap<(usize, usize), u8> = links.iter().map(|&link| (link, percent)).collect();
    context
        .apply_network(|state| state.loss_percent = loss)
        .await;
    let index = context.timeline.begin(
        context.origin,
        Nemesis::Flaky,
        format!(
            "{which}: {percent}% packet loss{}",
            if reset { ", connections reset" } else { "" }
        ),
    );
    sleep_or_stop(hold, stop).await;
    context
        .apply_network(|state| state.loss_percent.clear())
        .await;
    context.timeline.end(context.origin, index);
}

/// One membership step: while the cluster has its founding number of voters, a new node joins
/// (as a learner that promotes itself); once it has more, a random voter is removed and its
/// process retired. Bounded by a few holds; a step that does not finish is left to finish on
/// its own.
async fn membership(context: &FaultContext, random: &mut Xoshiro256PlusPlus, hold: Duration) {
    let deadline = Instant::now() + hold * 4 + Duration::from_secs(5);
    let Ok(members) = context.admin.members().await else {
        context.timeline.instant(
            context.origin,
            Nemesis::Membership,
            "skipped: the members could not be read".into(),
        );
        return;
    };
    let voters = voter_ids(&members);
    if members.change_in_progress {
        context.note_membership_skip(&format!(
            "a change is in progress (voters {voters:?}, leader {:?})",
            members.leader
        ));
        return;
    }
    if voters.len() <= context.voters {
        let (slot, join) = {
            let cluster = context.cluster.lock().await;
            let Some(slot) = cluster.free_slot() else {
                context.note_membership_skip(&format!(
                    "no free slot for a joiner (voters {voters:?}, processes {:?})",
                    cluster.occupants()
                ));
                return;
            };
            let running: Vec<usize> = cluster
                .occupants()
                .into_iter()
                .map(|(slot, _)| slot)
                .filter(|&s| cluster.state(s) == Some(ProcessState::Running))
                .collect();
            let Some(&through) = running.choose(random) else {
                return;
            };
            (slot, cluster.topology().http_addr(through).to_string())
        };
        let added = context.cluster.lock().await.add_joiner(slot, join);
        let id = match added {
            Ok(id) => id,
            Err(error) => {
                tracing_error(&format!("adding a node: {error}"));
                return;
            }
        };
        context.note_membership_skip("");
        let index = context.timeline.begin(
            context.origin,
            Nemesis::Membership,
            format!("node {id} joins in slot {slot}"),
        );
        while Instant::now() < deadline {
            let promoted = context.admin.members().await.is_ok_and(|members| {
                members
                    .members
                    .iter()
                    .any(|member| member.id == id && member.role == "voter")
            });
            if promoted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        context.timeline.end(context.origin, index);
    } else {
        // A node a storage nemesis holds (quarantined) is in the middle of its runbook, which
        // waits for it to catch up: removing it would end that check without an answer.
        let removable: Vec<u64> = {
            let cluster = context.cluster.lock().await;
            voters
                .iter()
                .copied()
                .filter(|&id| {
                    cluster
                        .slot_of_id(id)
                        .is_none_or(|slot| !cluster.is_quarantined(slot))
                })
                .collect()
        };
        let Some(&victim) = removable.choose(random) else {
            context.note_membership_skip(&format!(
                "every voter is held by a storage nemesis (voters {voters:?})"
            ));
            return;
        };
        context.note_membership_skip("");
        let index = context.timeline.begin(
            context.origin,
            Nemesis::Membership,
            format!("node {victim} removed"),
        );
        let _ = context.admin.remove_member(victim).await;
        let mut removed = false;
        while Instant::now() < deadline {
            removed = context.leader_members().await.is_some_and(|members| {
                !members.change_in_progress
                    && members.members.iter().all(|member| member.id != victim)
            });
            if removed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if removed {
            retire_removed(context, victim).await;
        }
        context.timeline.end(context.origin, index);
    }
}

/// Longest wait for the leader to confirm, after a removed node's process was stopped, that
/// the committed configuration still lacks it.
const RETIRE_CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

/// Retires the process of node `victim`, whose removal the leader reported committed, but
/// only once the committed configuration lacks it with the process stopped. While it ran,
/// the node could ask to be added back (seed 2601: a removed node restarted with `--join`
/// did, between the harness's check and the retirement, and the run ended with a member
/// that had no process). So the process is killed first, and the leader's committed list is
/// read again: a node listed again is a finding, and its process is started again rather
/// than retired.
async fn retire_removed(context: &FaultContext, victim: u64) {
    let slot = {
        let mut cluster = context.cluster.lock().await;
        let Some(slot) = cluster.slot_of_id(victim) else {
            return;
        };
        // Quarantined, so that no process fault restarts or resumes it meanwhile.
        cluster.set_quarantined(slot, true);
        cluster.kill(slot);
        slot
    };
    let deadline = Instant::now() + RETIRE_CONFIRM_TIMEOUT;
    while Instant::now() < deadline {
        let Some(members) = context.leader_members().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let listed = members.members.iter().find(|member| member.id == victim);
        let mut cluster = context.cluster.lock().await;
        if cluster.id_in(slot) != Some(victim) {
            return;
        }
        match listed {
            None if !members.change_in_progress => {
                cluster.retire(slot);
                return;
            }
            None => {}
            Some(member) => {
                let role = member.role.clone();
                cluster.set_quarantined(slot, false);
                if let Err(error) = cluster.start(slot) {
                    tracing_error(&format!("restarting slot {slot}: {error}"));
                }
                drop(cluster);
                context.report(format!(
                    "node {victim} is a member again ({role}) after its removal committed; \
                     its process was kept"
                ));
                return;
            }
        }
        drop(cluster);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Never retire without the confirmation: the node runs on, outside the configuration.
    let mut cluster = context.cluster.lock().await;
    if cluster.id_in(slot) == Some(victim) {
        cluster.set_quarantined(slot, false);
        if let Err(error) = cluster.start(slot) {
            tracing_error(&format!("restarting slot {slot}: {error}"));
        }
    }
    tracing_error(&format!(
        "node {victim}'s removal could not be confirmed again within \
         {RETIRE_CONFIRM_TIMEOUT:?}; its process was started again"
    ));
}

async fn clock(context: &FaultContext, random: &mut Xoshiro256PlusPlus) {
    let mut cluster = context.cluster.lock().await;
    let running: Vec<(usize, u64)> = cluster
        .occupants()
        .into_iter()
        .filter(|(slot, _)| cluster.state(*slot) == Some(ProcessState::Running))
        .collect();
    let Some(&(slot, id)) = running.choose(random) else {
        return;
    };
    let seconds = random.gen_range(1..=5);
    match cluster.jump_clock(slot, seconds) {
        Ok(total) => context.timeline.instant(
            context.origin,
            Nemesis::Clock,
            format!("node {id}'s clocks jump +{seconds} s (+{total} s in all)"),
        ),
        Err(error) => tracing_error(&format!("jumping a clock: {error}")),
    }
}

/// The ids of the voters in a members answer.
pub(crate) fn voter_ids(members: &raftkv_client::api::MembersResponse) -> Vec<u64> {
    members
        .members
        .iter()
        .filter(|member| member.role == "voter")
        .map(|member| member.id)
        .collect()
}
