//! `raftkv-bench lease`: what keeping leases alive costs the leader, and how long one keepalive
//! takes beside a linearizable read.
//!
//! ```text
//!  find the leader (GET /v1/status on every endpoint) and its process among --server-pids
//!  grant --leases leases (--grants-in-flight at once) ─► ids
//!  batched phase, --duration:
//!    --batches-in-flight tasks, each: next --batch ids (round robin) ─► POST /v1/lease/keepalive
//!    to the leader, one request in flight per task ─► count renewed / lost, request latency
//!    leader CPU (/proc/PID/stat utime+stime) before and after ─► CPU per keepalive
//!  latency phase, --latency-duration (default: --duration), to the leader, one in flight:
//!    single-lease keepalive, linearizable GET, keepalive, GET, ... (alternating, so both see
//!    the same machine) ─► two HdrHistograms ─► p50/p99/p99.9 and keepalive ÷ GET
//!    meanwhile the --leases leases are renewed every TTL/3, as a LeaseKeeper would
//!  revoke every lease granted
//! ```
//!
//! The keepalives go straight to the leader, so no follower forwards them: the leader's CPU
//! is then all the cost there is, and the latency is the leader's answer (a quorum round, as a
//! linearizable read's). A lease answered with TTL 0 during the run was lost (its keepalives
//! came too late, or the cluster expired it): the run fails with exit status 1 after printing
//! its figures, as they are then about fewer leases.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use raftkv_client::api::LEASE_KEEPALIVE_IDS_MAX;
use raftkv_client::{Client, Consistency};
use tokio::task::JoinSet;

use crate::{micros, mode_options, new_histogram, parse_duration, report, with_token};

/// `raftkv-bench lease` options.
#[derive(Clone, Debug, clap::Args)]
pub struct LeaseArgs {
    /// Leases granted and kept alive by the batched keepalives.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub leases: u64,
    /// Lease ids per keepalive request (at most 10,000, the API's limit).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=LEASE_KEEPALIVE_IDS_MAX as u64))]
    pub batch: u64,
    /// Keepalive requests in flight at once in the batched phase (each its own task).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub batches_in_flight: u64,
    /// TTL of every lease, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl: u64,
    /// How long the batched phase lasts.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How long the latency phase lasts (default: as long as the batched phase; 0s skips it).
    #[arg(long, value_parser = parse_duration)]
    pub latency_duration: Option<Duration>,
    /// Grants (and, at the end, revokes) in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub grants_in_flight: u64,
    /// Process ids of the cluster's nodes (Linux /proc), comma-separated: the leader's is found
    /// among them by its `--id` (from /proc/PID/cmdline) for its CPU per keepalive.
    #[arg(long, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// The leader's process id, when it cannot be found among --server-pids.
    #[arg(long)]
    pub leader_pid: Option<u32>,
    /// Key the linearizable GETs of the latency phase read (written once first).
    #[arg(long, default_value = "lease-bench/read")]
    pub read_key: String,
    /// Leave the leases granted at the end instead of revoking them (they then expire).
    #[arg(long)]
    pub keep_leases: bool,
    /// Longest wait for one answer.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

/// Runs `raftkv-bench lease`: prints the figures; exit 1 when a lease was lost during the run,
/// 2 when the run could not be made.
pub async fn run(endpoints: Vec<String>, token: Option<String>, args: LeaseArgs) -> ExitCode {
    match run_lease(&endpoints, token.as_deref(), &args).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(lost) => {
            eprintln!(
                "raftkv bench lease: {lost} keepalive answers said a lease was gone: the leases \
                 were not all kept alive, the figures cover fewer of them"
            );
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("raftkv bench lease: {error}");
            ExitCode::from(2)
        }
    }
}

/// The leader as the nodes report it.
struct Leader {
    id: u64,
    http: String,
    term: u64,
    pid: Option<u32>,
}

/// Runs the phases; `Ok` holds the count of keepalive answers that found a lease gone.
async fn run_lease(
    endpoints: &[String],
    token: Option<&str>,
    args: &LeaseArgs,
) -> Result<u64, String> {
    let options = mode_options(args.request_timeout);
    let with_token = |client| with_token(client, token);
    let cluster = with_token(Client::with_http2(endpoints, options))?;
    let leader = find_leader(&cluster, endpoints, args).await?;
    // Straight to the leader: HTTP/2 for the batches and grants (many requests on one
    // connection), HTTP/1.1 keep-alive for the one-in-flight latency streams.
    let to_leader = with_token(Client::with_http2([leader.http.as_str()], options))?;
    let latency_client = with_token(Client::with_options([leader.http.as_str()], options))?;
    println!(
        "lease benchmark: {} leases of TTL {} s, keepalives of {} ({} in flight) for {:?}; \
         leader node {} at {} (pid {})",
        args.leases,
        args.ttl,
        ids_text(args.batch.min(args.leases)),
        args.batches_in_flight,
        args.duration,
        leader.id,
        leader.http,
        leader
            .pid
            .map_or("unknown: no CPU figures".to_string(), |pid| pid.to_string()),
    );

    let granting = Instant::now();
    let ids = grant(&to_leader, args.leases, args.ttl, args.grants_in_flight).await?;
    let granted_in = granting.elapsed();
    println!(
        "granted {} leases in {:.2} s ({:.0} grants/s)",
        ids.len(),
        granted_in.as_secs_f64(),
        ids.len() as f64 / granted_in.as_secs_f64().max(1e-6)
    );
    let ids = Arc::new(ids);
    let outcome = phases(&to_leader, &latency_client, &ids, &leader, args).await;
    if args.keep_leases {
        println!("left {} leases granted (--keep-leases)", ids.len());
    } else {
        let revoking = Instant::now();
        let revoked = revoke(&to_leader, &ids, args.grants_in_flight).await?;
        println!(
            "revoked {revoked} leases in {:.2} s",
            revoking.elapsed().as_secs_f64()
        );
    }
    let lost = outcome?;
    let after = find_leader(&cluster, endpoints, args).await?;
    if after.id != leader.id || after.term != leader.term {
        return Err(format!(
            "the leadership changed during the run (node {} term {} → node {} term {}): the \
             figures mix two leaders; run again",
            leader.id, leader.term, after.id, after.term
        ));
    }
    Ok(lost)
}

/// The batched phase, then the latency phase; the number of keepalive answers that found a
/// lease gone.
async fn phases(
    to_leader: &Client,
    latency_client: &Client,
    ids: &Arc<Vec<u64>>,
    leader: &Leader,
    args: &LeaseArgs,
) -> Result<u64, String> {
    let batched = batched_phase(to_leader, ids, leader.pid, args).await?;
    print!("{}", batched.text(args));
    let mut lost = batched.lost;
    let latency_duration = args.latency_duration.unwrap_or(args.duration);
    if !latency_duration.is_zero() {
        let latency = latency_phase(to_leader, latency_client, ids, args, latency_duration).await?;
        print!("{}", latency.text());
        lost += latency.lost;
    }
    Ok(lost)
}

/// Asks every endpoint for its status; the leader is the node that says it leads, in the
/// highest term. Its pid is `--leader-pid`, or the one of `--server-pids` started with its id.
async fn find_leader(
    cluster: &Client,
    endpoints: &[String],
    args: &LeaseArgs,
) -> Result<Leader, String> {
    let mut best: Option<(u64, u64, String)> = None;
    let mut errors = Vec::new();
    for endpoint in endpoints {
        match cluster.status(endpoint).await {
            Ok(status) if status.role == "leader" => {
                if best.as_ref().is_none_or(|(term, _, _)| status.term > *term) {
                    best = Some((status.term, status.id, status.http_address.clone()));
                }
            }
            Ok(_) => {}
            Err(error) => errors.push(format!("{endpoint}: {error}")),
        }
    }
    let Some((term, id, http)) = best else {
        return Err(format!(
            "no endpoint says it leads (is the cluster up and elected?){}",
            if errors.is_empty() {
                String::new()
            } else {
                format!(": {}", errors.join("; "))
            }
        ));
    };
    let pid = match args.leader_pid {
        Some(pid) => Some(pid),
        None if args.server_pids.is_empty() => None,
        None => Some(pid_of_node(&args.server_pids, id)?),
    };
    Ok(Leader {
        id,
        http,
        term,
        pid,
    })
}

/// The process among `pids` that was started as node `id` (`serve --id ID` on its command
/// line).
fn pid_of_node(pids: &[u32], id: u64) -> Result<u32, String> {
    for &pid in pids {
        let path = format!("/proc/{pid}/cmdline");
        let cmdline = std::fs::read(&path)
            .map_err(|error| format!("cannot read {path} (is process {pid} running?): {error}"))?;
        if node_id_in_cmdline(&cmdline) == Some(id) {
            return Ok(pid);
        }
    }
    Err(format!(
        "none of the processes {pids:?} was started with --id {id} (the leader): give the \
         leader's process with --leader-pid"
    ))
}

/// The value of `--id N` (or `--id=N`) in a NUL-separated command line.
fn node_id_in_cmdline(cmdline: &[u8]) -> Option<u64> {
    let words: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
    words.iter().enumerate().find_map(|(index, word)| {
        let value = match word.strip_prefix(b"--id") {
            Some(b"") => words.get(index + 1).copied()?,
            Some(rest) => rest.strip_prefix(b"=")?,
            None => return None,
        };
        std::str::from_utf8(value).ok()?.parse().ok()
    })
}

/// Grants `count` leases of `ttl_seconds`, `in_flight` at once; their ids, in grant order.
pub(crate) async fn grant(
    client: &Client,
    count: u64,
    ttl_seconds: u64,
    in_flight: u64,
) -> Result<Vec<u64>, String> {
    let next = Arc::new(AtomicU64::new(0));
    let mut granters = JoinSet::new();
    for _ in 0..in_flight.min(count) {
        let (client, next) = (client.new_session(), Arc::clone(&next));
        granters.spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let granted = client
                    .lease_grant(ttl_seconds, None)
                    .await
                    .map_err(|error| format!("granting a lease: {error}"))?;
                if granted.ttl_seconds != ttl_seconds {
                    return Err(format!(
                        "asked for a TTL of {ttl_seconds} s, granted {} s (the cluster's \
                         --lease-ttl-min-seconds?): choose --ttl within its bounds",
                        granted.ttl_seconds
                    ));
                }
                ids.push(granted.id);
            }
            Ok::<_, String>(ids)
        });
    }
    let mut ids = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    while let Some(joined) = granters.join_next().await {
        ids.extend(joined.map_err(|error| format!("a granter failed: {error}"))??);
    }
    Ok(ids)
}

/// Revokes every lease of `ids`, `in_flight` at once; how many existed still.
pub(crate) async fn revoke(
    client: &Client,
    ids: &Arc<Vec<u64>>,
    in_flight: u64,
) -> Result<u64, String> {
    let next = Arc::new(AtomicU64::new(0));
    let revoked = Arc::new(AtomicU64::new(0));
    let mut revokers = JoinSet::new();
    for _ in 0..in_flight.min(ids.len() as u64) {
        let (client, next, ids, revoked) = (
            client.new_session(),
            Arc::clone(&next),
            Arc::clone(ids),
            Arc::clone(&revoked),
        );
        revokers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&id) = ids.get(index) else {
                    return Ok::<(), String>(());
                };
                match client.lease_revoke(id).await {
                    Ok(_) => {
                        revoked.fetch_add(1, Ordering::Relaxed);
                    }
                    // Expired meanwhile: nothing left to revoke.
                    Err(raftkv_client::ClientError::LeaseNotFound { .. }) => {}
                    Err(error) => return Err(format!("revoking lease {id:x}: {error}")),
                }
            }
        });
    }
    while let Some(joined) = revokers.join_next().await {
        joined.map_err(|error| format!("a revoker failed: {error}"))??;
    }
    Ok(revoked.load(Ordering::Relaxed))
}

/// The ids of batch number `batch` (round robin over the leases, `size` ids each; the last
/// batch of a round may be shorter).
fn batch_ids(ids: &[u64], size: usize, batch: u64) -> &[u64] {
    assert!(size > 0, "a batch names at least one lease");
    let batches = ids.len().div_ceil(size) as u64;
    let start = (batch % batches.max(1)) as usize * size;
    &ids[start.min(ids.len())..(start + size).min(ids.len())]
}

/// One keepalive request's answer, counted: (renewed, gone).
async fn keep_alive_batch(client: &Client, ids: &[u64]) -> Result<(u64, u64), String> {
    let answer = client
        .lease_keep_alive_once(ids)
        .await
        .map_err(|error| format!("a keepalive of {} leases: {error}", ids.len()))?;
    let renewed = answer
        .leases
        .iter()
        .filter(|lease| lease.ttl_seconds > 0)
        .count() as u64;
    Ok((renewed, ids.len() as u64 - renewed))
}

/// What the batched phase measured.
struct Batched {
    requests: u64,
    renewed: u64,
    lost: u64,
    elapsed: Duration,
    request_latency: Histogram<u64>,
    leader_cpu_seconds: Option<f64>,
    own_cpu_seconds: f64,
}

impl Batched {
    fn text(&self, args: &LeaseArgs) -> String {
        let seconds = self.elapsed.as_secs_f64().max(1e-6);
        let mut text = String::new();
        let _ = writeln!(
            text,
            "\n== batched keepalives: {} a request, {} in flight, {:.1} s ==",
            ids_text(args.batch.min(args.leases)),
            args.batches_in_flight,
            seconds
        );
        let _ = writeln!(
            text,
            "{} requests, {} keepalives ({:.0} keepalives/s, {:.1} requests/s), {} answered \
             lease gone; request latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.requests,
            self.renewed,
            self.renewed as f64 / seconds,
            self.requests as f64 / seconds,
            self.lost,
            millis(&self.request_latency, 0.5),
            millis(&self.request_latency, 0.99),
            self.request_latency.max() as f64 / 1000.0,
        );
        if let Some(cpu) = self.leader_cpu_seconds {
            let per_keepalive = cpu / self.renewed.max(1) as f64;
            // A LeaseKeeper renews every TTL/3: what holding --leases leases costs that way.
            let steady_rate = args.leases as f64 / (args.ttl as f64 / 3.0);
            let _ = writeln!(
                text,
                "leader CPU {:.2} s = {:.1}% of a core; {:.2} µs per keepalive, {:.0} µs per \
                 request; at one keepalive per lease every TTL/3 ({:.0}/s) that is {:.3}% of a core",
                cpu,
                cpu / seconds * 100.0,
                per_keepalive * 1e6,
                cpu / self.requests.max(1) as f64 * 1e6,
                steady_rate,
                per_keepalive * steady_rate * 100.0,
            );
        }
        let _ = writeln!(
            text,
            "load generator CPU {:.1}% of a core",
            self.own_cpu_seconds / seconds * 100.0
        );
        text
    }
}

/// Keeps every lease alive with back-to-back batched keepalives for `--duration`.
async fn batched_phase(
    client: &Client,
    ids: &Arc<Vec<u64>>,
    leader_pid: Option<u32>,
    args: &LeaseArgs,
) -> Result<Batched, String> {
    let size = usize::try_from(args.batch).map_err(|_| "--batch is too large".to_string())?;
    let next_batch = Arc::new(AtomicU64::new(0));
    let cpu_before = leader_pid.map(report::process_cpu_seconds).transpose()?;
    let own_before = report::own_cpu_seconds();
    let started = Instant::now();
    let stop_at = started + args.duration;
    let mut senders = JoinSet::new();
    for _ in 0..args.batches_in_flight {
        let (client, ids, next_batch) = (client.clone(), Arc::clone(ids), Arc::clone(&next_batch));
        senders.spawn(async move {
            let mut latency = new_histogram();
            let (mut requests, mut renewed, mut lost) = (0u64, 0u64, 0u64);
            while Instant::now() < stop_at {
                let batch = batch_ids(&ids, size, next_batch.fetch_add(1, Ordering::Relaxed));
                let sent = Instant::now();
                let (ok, gone) = keep_alive_batch(&client, batch).await?;
                latency.saturating_record(micros(sent.elapsed()).max(1));
                requests += 1;
                renewed += ok;
                lost += gone;
            }
            Ok::<_, String>((latency, requests, renewed, lost))
        });
    }
    let mut batched = Batched {
        requests: 0,
        renewed: 0,
        lost: 0,
        elapsed: Duration::ZERO,
        request_latency: new_histogram(),
        leader_cpu_seconds: None,
        own_cpu_seconds: 0.0,
    };
    while let Some(joined) = senders.join_next().await {
        let (latency, requests, renewed, lost) =
            joined.map_err(|error| format!("a keepalive sender failed: {error}"))??;
        batched
            .request_latency
            .add(&latency)
            .map_err(|error| format!("merging histograms: {error}"))?;
        batched.requests += requests;
        batched.renewed += renewed;
        batched.lost += lost;
    }
    batched.elapsed = started.elapsed();
    batched.own_cpu_seconds = report::own_cpu_seconds() - own_before;
    if let (Some(pid), Some(before)) = (leader_pid, cpu_before) {
        batched.leader_cpu_seconds = Some(report::process_cpu_seconds(pid)? - before);
    }
    Ok(batched)
}

/// What the latency phase measured.
struct Latency {
    keepalive: Histogram<u64>,
    get: Histogram<u64>,
    elapsed: Duration,
    lost: u64,
    background_rounds: u64,
}

impl Latency {
    fn text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "\n== latency: one request in flight to the leader, a single-lease keepalive and a \
             linearizable GET in turn, {:.1} s (the leases renewed every TTL/3 meanwhile: {} \
             rounds) ==",
            self.elapsed.as_secs_f64(),
            self.background_rounds
        );
        for (name, histogram) in [
            ("keepalive (1 lease)", &self.keepalive),
            ("linearizable GET", &self.get),
        ] {
            let _ = writeln!(
                text,
                "{name:>20}: p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  ({} requests)",
                millis(histogram, 0.5),
                millis(histogram, 0.99),
                millis(histogram, 0.999),
                histogram.max() as f64 / 1000.0,
                histogram.len(),
            );
        }
        let ratio = |quantile: f64| {
            self.keepalive.value_at_quantile(quantile) as f64
                / self.get.value_at_quantile(quantile).max(1) as f64
        };
        let _ = writeln!(
            text,
            "{:>20}: p50 {:.2}  p99 {:.2}  p99.9 {:.2}",
            "keepalive ÷ GET",
            ratio(0.5),
            ratio(0.99),
            ratio(0.999),
        );
        text
    }
}

/// A single-lease keepalive and a linearizable GET in turn, one in flight, for `duration`,
/// while a background task renews every lease each TTL/3.
async fn latency_phase(
    batch_client: &Client,
    client: &Client,
    ids: &Arc<Vec<u64>>,
    args: &LeaseArgs,
    duration: Duration,
) -> Result<Latency, String> {
    client
        .put(&args.read_key, Bytes::from_static(b"lease-bench"))
        .await
        .map_err(|error| format!("writing {}: {error}", args.read_key))?;
    let single = client
        .lease_grant(args.ttl, None)
        .await
        .map_err(|error| format!("granting the single lease: {error}"))?
        .id;

    let stop = Arc::new(AtomicBool::new(false));
    let background = tokio::spawn(renew_every_third_of_ttl(
        batch_client.clone(),
        Arc::clone(ids),
        args.batch,
        args.ttl,
        Arc::clone(&stop),
    ));
    let result = alternate(client, single, &args.read_key, duration).await;
    stop.store(true, Ordering::Relaxed);
    let background = background
        .await
        .map_err(|error| format!("the background keepalives failed: {error}"))?;
    let revoked = client.lease_revoke(single).await;
    let (keepalive, get, elapsed, single_lost) = result?;
    let (background_rounds, background_lost) = background?;
    revoked.map_err(|error| format!("revoking the single lease {single:x}: {error}"))?;
    Ok(Latency {
        keepalive,
        get,
        elapsed,
        lost: single_lost + background_lost,
        background_rounds,
    })
}

/// The alternating stream: (keepalive latencies, GET latencies, time taken, answers that found
/// the lease gone).
async fn alternate(
    client: &Client,
    lease: u64,
    read_key: &str,
    duration: Duration,
) -> Result<(Histogram<u64>, Histogram<u64>, Duration, u64), String> {
    let (mut keepalive, mut get) = (new_histogram(), new_histogram());
    let mut lost = 0;
    let started = Instant::now();
    while started.elapsed() < duration {
        let sent = Instant::now();
        let (_, gone) = keep_alive_batch(client, &[lease]).await?;
        keepalive.saturating_record(micros(sent.elapsed()).max(1));
        lost += gone;
        let sent = Instant::now();
        let value = client
            .get(read_key, Consistency::Linearizable)
            .await
            .map_err(|error| format!("reading {read_key}: {error}"))?;
        get.saturating_record(micros(sent.elapsed()).max(1));
        if value.is_none() {
            return Err(format!("{read_key} vanished during the run"));
        }
    }
    Ok((keepalive, get, started.elapsed(), lost))
}

/// Renews every lease once per TTL/3 (at once first) until `stop`: (rounds, answers that found
/// a lease gone).
pub(crate) async fn renew_every_third_of_ttl(
    client: Client,
    ids: Arc<Vec<u64>>,
    batch: u64,
    ttl_seconds: u64,
    stop: Arc<AtomicBool>,
) -> Result<(u64, u64), String> {
    let size = usize::try_from(batch).map_err(|_| "--batch is too large".to_string())?;
    let interval = Duration::from_secs(ttl_seconds) / 3;
    let (mut rounds, mut lost) = (0, 0);
    let mut next_round = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_round {
            for chunk in ids.chunks(size) {
                let (_, gone) = keep_alive_batch(&client, chunk).await?;
                lost += gone;
            }
            rounds += 1;
            next_round += interval;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((rounds, lost))
}

/// `1 id`, `10000 ids`.
fn ids_text(count: u64) -> String {
    match count {
        1 => "1 id".to_string(),
        count => format!("{count} ids"),
    }
}

/// A histogram's value at `quantile`, in milliseconds.
fn millis(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_id_is_read_from_a_command_line_in_either_spelling() {
        assert_eq!(
            node_id_in_cmdline(b"raftkv\0serve\0--id\x002\0--data-dir\0d\0"),
            Some(2)
        );
        assert_eq!(node_id_in_cmdline(b"/x/raftkv\0serve\0--id=13\0"), Some(13));
        // `--idle-timeout 5` is not `--id`, and a missing or bad value is no id.
        assert_eq!(
            node_id_in_cmdline(b"raftkv\0serve\0--idle-timeout\x005\0"),
            None
        );
        assert_eq!(node_id_in_cmdline(b"raftkv\0serve\0--id\0"), None);
        assert_eq!(node_id_in_cmdline(b"raftkv\0serve\0--id\0x\0"), None);
    }

    #[test]
    fn batches_go_round_robin_over_every_lease() {
        let ids: Vec<u64> = (1..=10).collect();
        assert_eq!(batch_ids(&ids, 4, 0), &[1, 2, 3, 4]);
        assert_eq!(batch_ids(&ids, 4, 1), &[5, 6, 7, 8]);
        assert_eq!(batch_ids(&ids, 4, 2), &[9, 10]);
        assert_eq!(batch_ids(&ids, 4, 3), &[1, 2, 3, 4]);
        assert_eq!(batch_ids(&ids, 10_000, 7), &ids[..]);
        // Every lease is renewed once per round of batches.
        let mut seen: Vec<u64> = (0..3)
            .flat_map(|batch| batch_ids(&ids, 4, batch).to_vec())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, ids);
    }
}
