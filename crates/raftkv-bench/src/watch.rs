//! `raftkv-bench watch`: what watchers cost a node, and how long a change takes to reach them.
//!
//! ```text
//!  idle, once per --idle-progress interval:
//!    sample the node (RSS, CPU) ─► open --idle watches on the first endpoint, one key each,
//!    as HTTP/2 streams (--streams-per-connection per connection) ─► wait until the node's
//!    watch_watchers_open gauge counts them ─► sample ─► --idle-duration ─► sample
//!    ─► close them, wait until the gauge is back
//!  active:
//!    --active watches of one prefix on the first endpoint, from the revision after now
//!    ─► a writer puts --write-rate keys a second of that prefix (open loop: each put its own
//!       task) for --active-duration, noting each put's start, acknowledgement and revision
//!    ─► every watcher must deliver exactly the acknowledged revisions, in order, each once,
//!       with the key written: a gap, a repeat or a wrong key fails the run (exit 1)
//!    ─► delay from acknowledgement (and from the put's start) to delivery, over all watchers
//! ```
//!
//! The watchers are the Rust client's [`WatchStream`]s, which resume by themselves after a
//! cancellation and drop repeats the node sends after a resumption; the node's own counters
//! (`/metrics`: cancellations, events sent) are printed beside, so a cancellation the client
//! hid still shows. Every delay percentile is HdrHistogram's, like the rest of the reports.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use raftkv_client::{Client, WatchMessage, WatchRequest, WatchStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::{micros, mode_options, new_histogram, parse_duration, report, with_token};

/// How long the node may take to count every watch opened (or closed).
const GAUGE_WAIT_MAX: Duration = Duration::from_secs(180);

/// How long the watchers may take, after the last write, to deliver it.
const DRAIN_WAIT_MAX: Duration = Duration::from_secs(60);

/// `raftkv-bench watch` options.
#[derive(Clone, Debug, clap::Args)]
pub struct WatchArgs {
    /// Idle watches to open on the first endpoint's node, each on a key of its own (0: skip
    /// the idle part).
    #[arg(long, default_value_t = 10_000)]
    pub idle: usize,
    /// How long to sample the node while the idle watches are open.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_duration: Duration,
    /// Progress intervals the idle watches ask for, one idle measurement each (comma-separated;
    /// "1h" is as good as off for a minute's sampling).
    #[arg(long, value_delimiter = ',', default_value = "1h,1s", value_parser = parse_duration)]
    pub idle_progress: Vec<Duration>,
    /// Active watches of one prefix on the first endpoint's node (0: skip the active part).
    #[arg(long, default_value_t = 1_000)]
    pub active: usize,
    /// Puts a second the writer starts (open loop: each put is its own task).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub write_rate: u64,
    /// How long the writer writes.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub active_duration: Duration,
    /// Distinct keys the writer cycles through under the active prefix.
    #[arg(long, default_value_t = 100)]
    pub active_keys: u64,
    /// Bytes of each written value.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Watch streams per HTTP/2 connection (the node takes --http-requests-in-flight-max
    /// streams on one, 4096 by default).
    #[arg(long, default_value_t = 4_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams_per_connection: u64,
    /// Process id of the first endpoint's node, for its RSS and CPU (Linux /proc); without
    /// it only the delays are measured.
    #[arg(long)]
    pub node_pid: Option<u32>,
    /// Prefix of every key watched or written.
    #[arg(long, default_value = "watch-bench/")]
    pub key_prefix: String,
    /// Longest wait for one answer.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

/// A failure that makes the run's figures untrustworthy or shows a broken guarantee.
type Failure = String;

/// Runs `raftkv-bench watch`: prints the figures; exit 1 on a gap, repeat or wrong event,
/// 2 when the run could not be made.
pub async fn run(endpoints: Vec<String>, token: Option<String>, args: WatchArgs) -> ExitCode {
    raise_open_files_limit();
    match run_watch(&endpoints, token.as_deref(), &args).await {
        Ok(Verdict::Clean) => ExitCode::SUCCESS,
        Ok(Verdict::Broken(problems)) => {
            for problem in &problems {
                eprintln!("raftkv bench watch: GUARANTEE BROKEN: {problem}");
            }
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("raftkv bench watch: {error}");
            ExitCode::from(2)
        }
    }
}

enum Verdict {
    Clean,
    Broken(Vec<Failure>),
}

async fn run_watch(
    endpoints: &[String],
    token: Option<&str>,
    args: &WatchArgs,
) -> Result<Verdict, String> {
    let node = endpoints
        .first()
        .ok_or_else(|| "no endpoint given".to_string())?
        .clone();
    let options = mode_options(args.request_timeout);
    let with_token = |client| with_token(client, token);
    let cluster = with_token(Client::with_options(endpoints, options))?;
    let connections = |watchers: usize| -> Result<Vec<Client>, String> {
        let count = watchers
            .div_ceil(args.streams_per_connection as usize)
            .max(1);
        (0..count)
            .map(|_| with_token(Client::with_http2([node.as_str()], options)))
            .collect()
    };
    println!(
        "watch benchmark against {node} (node pid {}), writes through {}",
        args.node_pid
            .map_or("not given: no RSS/CPU".to_string(), |pid| pid.to_string()),
        endpoints.join(",")
    );
    if args.idle > 0 {
        // The node's RSS before the first set of watches: a later set reuses memory the
        // allocator kept from the one before, so its own growth reads low.
        let first = sample(args.node_pid)?;
        for interval in &args.idle_progress {
            idle(
                &node,
                &cluster,
                connections(args.idle)?,
                *interval,
                first,
                args,
            )
            .await?;
        }
    }
    let mut problems = Vec::new();
    if args.active > 0 {
        problems = active(&node, &cluster, connections(args.active)?, args).await?;
    }
    Ok(if problems.is_empty() {
        Verdict::Clean
    } else {
        Verdict::Broken(problems)
    })
}

/// RSS and CPU seconds of the node, when its pid is known.
#[derive(Clone, Copy)]
struct NodeSample {
    rss_bytes: u64,
    cpu_seconds: f64,
    at: Instant,
}

fn sample(pid: Option<u32>) -> Result<Option<NodeSample>, String> {
    let Some(pid) = pid else { return Ok(None) };
    Ok(Some(NodeSample {
        rss_bytes: report::process_rss_bytes(pid)?,
        cpu_seconds: report::process_cpu_seconds(pid)?,
        at: Instant::now(),
    }))
}

/// CPU of the node between two samples, in percent of one core.
fn cpu_percent(from: NodeSample, to: NodeSample) -> f64 {
    let wall = (to.at - from.at).as_secs_f64().max(1e-6);
    (to.cpu_seconds - from.cpu_seconds) / wall * 100.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Counts what the drain tasks of idle watchers saw.
#[derive(Default)]
struct IdleCounts {
    progress: AtomicU64,
    events: AtomicU64,
    ended: AtomicU64,
    first_error: Mutex<Option<String>>,
}

async fn idle(
    node: &str,
    cluster: &Client,
    connections: Vec<Client>,
    interval: Duration,
    first: Option<NodeSample>,
    args: &WatchArgs,
) -> Result<(), String> {
    println!(
        "\n== {} idle watches, progress every {interval:?}, over {} HTTP/2 connection(s) ==",
        args.idle,
        connections.len()
    );
    let base = metrics(node).await?;
    let open_before = figure(&base, "watch_watchers_open");
    let start = cluster
        .scan_at(&args.key_prefix, 1, None)
        .await
        .map_err(|error| format!("reading the current revision: {error}"))?
        .revision
        + 1;
    let before = sample(args.node_pid)?;
    let own_rss_before = report::process_rss_bytes(std::process::id()).unwrap_or(0);
    let counts = Arc::new(IdleCounts::default());
    let mut watchers = JoinSet::new();
    let opening = Instant::now();
    for index in 0..args.idle {
        let mut request =
            WatchRequest::key(format!("{}idle/{index:06}", args.key_prefix), Some(start));
        request.progress_interval = Some(interval);
        let stream = connections[index % connections.len()].watch(request);
        watchers.spawn(drain_idle(stream, Arc::clone(&counts)));
    }
    let target = open_before + args.idle as u64;
    wait_for_open_watches(&[node], |open| open >= target, &counts.first_error).await?;
    let opened_in = opening.elapsed();
    let opened = sample(args.node_pid)?;
    let progress_before = counts.progress.load(Ordering::Relaxed);
    tokio::time::sleep(args.idle_duration).await;
    let after = sample(args.node_pid)?;
    let progress_idle = counts.progress.load(Ordering::Relaxed) - progress_before;
    let own_rss = report::process_rss_bytes(std::process::id()).unwrap_or(0);
    let end = metrics(node).await?;
    if let Some(error) = counts
        .first_error
        .lock()
        .map_err(|_| "a watcher panicked".to_string())?
        .take()
    {
        return Err(format!("an idle watch failed: {error}"));
    }
    println!(
        "opened in {:.1} s; node counts {} watches open",
        opened_in.as_secs_f64(),
        figure(&end, "watch_watchers_open")
    );
    if let (Some(before), Some(opened), Some(after), Some(first)) = (before, opened, after, first) {
        let watchers = args.idle as f64;
        println!(
            "node RSS with the watches open over its RSS before the first set ({:.1} MiB): +{:.0} bytes a watch",
            mib(first.rss_bytes),
            (after.rss_bytes as f64 - first.rss_bytes as f64) / watchers,
        );
        println!(
            "node RSS: {:.1} MiB before, {:.1} MiB opened (+{:.0} bytes a watch), {:.1} MiB after {:?} idle (+{:.0} bytes a watch)",
            mib(before.rss_bytes),
            mib(opened.rss_bytes),
            (opened.rss_bytes as f64 - before.rss_bytes as f64) / watchers,
            mib(after.rss_bytes),
            args.idle_duration,
            (after.rss_bytes as f64 - before.rss_bytes as f64) / watchers,
        );
        println!(
            "node CPU: {:.1}% of a core while opening, {:.2}% of a core idle",
            cpu_percent(before, opened),
            cpu_percent(opened, after),
        );
    }
    println!(
        "progress messages received while idle: {progress_idle} ({:.1}/s); events: {}; node sent {} progress in all; load generator RSS {:.1} MiB -> {:.1} MiB",
        progress_idle as f64 / args.idle_duration.as_secs_f64().max(1e-6),
        counts.events.load(Ordering::Relaxed),
        figure(&end, "watch_progress_sent") - figure(&base, "watch_progress_sent"),
        mib(own_rss_before),
        mib(own_rss),
    );
    watchers.shutdown().await;
    drop(connections);
    wait_for_open_watches(&[node], |open| open <= open_before, &counts.first_error).await?;
    Ok(())
}

async fn drain_idle(mut stream: WatchStream, counts: Arc<IdleCounts>) {
    while let Some(message) = stream.next().await {
        match message {
            Ok(WatchMessage::Progress(_)) => {
                counts.progress.fetch_add(1, Ordering::Relaxed);
            }
            Ok(WatchMessage::Events(_)) => {
                counts.events.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                if let Ok(mut first) = counts.first_error.lock() {
                    first.get_or_insert(error.to_string());
                }
                break;
            }
        }
    }
    counts.ended.fetch_add(1, Ordering::Relaxed);
}

/// The watches open on `nodes`, by their `watch_watchers_open` gauges, summed.
pub(crate) async fn open_watches(nodes: &[impl AsRef<str>]) -> Result<u64, String> {
    let mut open = 0;
    for node in nodes {
        open += figure(&metrics(node.as_ref()).await?, "watch_watchers_open");
    }
    Ok(open)
}

/// Polls the open watches of `nodes` (their `watch_watchers_open`, summed) until `done`
/// holds; fails when a watcher ended with an error (`first_error`: it will not be counted) or
/// after [`GAUGE_WAIT_MAX`].
pub(crate) async fn wait_for_open_watches(
    nodes: &[impl AsRef<str>],
    done: impl Fn(u64) -> bool,
    first_error: &Mutex<Option<String>>,
) -> Result<(), String> {
    let deadline = Instant::now() + GAUGE_WAIT_MAX;
    loop {
        let open = open_watches(nodes).await?;
        if done(open) {
            return Ok(());
        }
        if let Ok(first) = first_error.lock() {
            if let Some(error) = first.as_ref() {
                return Err(format!("a watch failed while opening: {error}"));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the open watches stayed at {open} for {GAUGE_WAIT_MAX:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One acknowledged put.
#[derive(Clone)]
struct Written {
    key: String,
    started: Instant,
    acknowledged: Instant,
}

/// What one active watcher delivered: (revision, when) in order, and what went wrong.
struct Delivered {
    index: usize,
    received: Vec<(u64, Instant, String)>,
    problem: Option<String>,
}

async fn active(
    node: &str,
    cluster: &Client,
    connections: Vec<Client>,
    args: &WatchArgs,
) -> Result<Vec<Failure>, String> {
    println!(
        "\n== {} active watches of one prefix, a writer at {}/s for {:?}, over {} HTTP/2 connection(s) ==",
        args.active,
        args.write_rate,
        args.active_duration,
        connections.len()
    );
    let prefix = format!("{}active/", args.key_prefix);
    let base = metrics(node).await?;
    let open_before = figure(&base, "watch_watchers_open");
    let start = cluster
        .scan_at(&prefix, 1, None)
        .await
        .map_err(|error| format!("reading the current revision: {error}"))?
        .revision
        + 1;
    // The last revision the watchers must reach; u64::MAX while the writer writes.
    let (last_sender, last) = tokio::sync::watch::channel(u64::MAX);
    let mut watchers = JoinSet::new();
    for index in 0..args.active {
        let stream = connections[index % connections.len()]
            .watch(WatchRequest::prefix(prefix.clone(), Some(start)));
        watchers.spawn(follow_active(index, stream, last.clone()));
    }
    let counts = IdleCounts::default();
    let target = open_before + args.active as u64;
    wait_for_open_watches(&[node], |open| open >= target, &counts.first_error).await?;
    let before = sample(args.node_pid)?;
    let own_cpu_before = report::own_cpu_seconds();

    // The writer: open loop, one task per put, started on a fixed schedule.
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let writer = cluster.new_session();
    let written: Arc<Mutex<HashMap<u64, Written>>> = Arc::default();
    let write_errors = Arc::new(Mutex::new((0u64, None::<String>)));
    let write_latency = Arc::new(Mutex::new(new_histogram()));
    let mut puts = JoinSet::new();
    let period = Duration::from_secs_f64(1.0 / args.write_rate as f64);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let writing = Instant::now();
    let mut sequence = 0u64;
    while writing.elapsed() < args.active_duration {
        ticker.tick().await;
        let key = format!("{prefix}{:05}", sequence % args.active_keys.max(1));
        sequence += 1;
        let (writer, value) = (writer.clone(), value.clone());
        let (written, errors, latency) = (
            Arc::clone(&written),
            Arc::clone(&write_errors),
            Arc::clone(&write_latency),
        );
        puts.spawn(async move {
            let started = Instant::now();
            let outcome = writer.put(&key, value).await;
            let acknowledged = Instant::now();
            match outcome {
                Ok(answer) => {
                    if let Ok(mut histogram) = latency.lock() {
                        histogram.saturating_record(micros(acknowledged - started).max(1));
                    }
                    if let Ok(mut written) = written.lock() {
                        written.insert(
                            answer.revision,
                            Written {
                                key,
                                started,
                                acknowledged,
                            },
                        );
                    }
                }
                Err(error) => {
                    if let Ok(mut errors) = errors.lock() {
                        errors.0 += 1;
                        errors.1.get_or_insert(error.to_string());
                    }
                }
            }
        });
    }
    while puts.join_next().await.is_some() {}
    let wrote_for = writing.elapsed();
    let written = std::mem::take(&mut *written.lock().map_err(|_| "writer panicked")?);
    let (write_error_count, first_write_error) = write_errors
        .lock()
        .map_err(|_| "writer panicked".to_string())?
        .clone();
    let last_revision = written.keys().copied().max().unwrap_or(start - 1);
    let _ = last_sender.send(last_revision);
    let mut delivered = Vec::new();
    let drained = tokio::time::timeout(DRAIN_WAIT_MAX, async {
        while let Some(joined) = watchers.join_next().await {
            match joined {
                Ok(one) => delivered.push(one),
                Err(error) => return Err(format!("a watcher task failed: {error}")),
            }
        }
        Ok(())
    })
    .await;
    let after = sample(args.node_pid)?;
    let own_cpu = report::own_cpu_seconds() - own_cpu_before;
    let mut problems = Vec::new();
    match drained {
        Ok(result) => result?,
        Err(_) => problems.push(format!(
            "{} of {} watchers had not delivered revision {last_revision} {DRAIN_WAIT_MAX:?} after the last write",
            args.active - delivered.len(),
            args.active
        )),
    }
    watchers.shutdown().await;
    drop(connections);
    let end = metrics(node).await?;

    delivered.sort_by_key(|one| one.index);
    let Checked {
        from_ack,
        from_start,
        before_ack,
        unacknowledged,
        events,
        problems: found,
    } = check_deliveries(&written, &delivered, write_error_count);
    problems.extend(found);
    let mut text = String::new();
    let write_latency = write_latency
        .lock()
        .map_err(|_| "writer panicked".to_string())?
        .clone();
    let _ = writeln!(
        text,
        "writer: {} puts acknowledged in {:.1} s ({:.0}/s), {write_error_count} failed{}; put latency p50 {:.2} ms, p99 {:.2} ms",
        written.len(),
        wrote_for.as_secs_f64(),
        written.len() as f64 / wrote_for.as_secs_f64().max(1e-6),
        first_write_error.map_or(String::new(), |error| format!(" (first: {error})")),
        write_latency.value_at_quantile(0.5) as f64 / 1000.0,
        write_latency.value_at_quantile(0.99) as f64 / 1000.0,
    );
    let _ = writeln!(
        text,
        "delivered: {events} events to {} watchers ({} expected), {before_ack} before the writer's acknowledgement, {unacknowledged} of unacknowledged puts",
        delivered.len(),
        written.len() * args.active,
    );
    for (name, histogram) in [
        ("ack -> delivery", &from_ack),
        ("put start -> delivery", &from_start),
    ] {
        let _ = writeln!(
            text,
            "{name:>22}: p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            histogram.value_at_quantile(0.5) as f64 / 1000.0,
            histogram.value_at_quantile(0.99) as f64 / 1000.0,
            histogram.value_at_quantile(0.999) as f64 / 1000.0,
            histogram.max() as f64 / 1000.0,
        );
    }
    let delta = |name: &str| figure(&end, name).saturating_sub(figure(&base, name));
    let _ = writeln!(
        text,
        "node: {} events sent, cancelled lagged {}, compacted {}, stopping {} (the client resumes lagged/stopping by itself)",
        delta("watch_events_sent"),
        delta("watch_cancelled_lagged"),
        delta("watch_cancelled_compacted"),
        delta("watch_cancelled_stopping"),
    );
    if let (Some(before), Some(after)) = (before, after) {
        let _ = writeln!(
            text,
            "node CPU {:.1}% of a core, RSS {:.1} MiB; load generator CPU {:.1}% of a core",
            cpu_percent(before, after),
            mib(after.rss_bytes),
            own_cpu / (after.at - before.at).as_secs_f64().max(1e-6) * 100.0,
        );
    }
    print!("{text}");
    Ok(problems)
}

/// What the active watchers' deliveries add up to.
struct Checked {
    from_ack: Histogram<u64>,
    from_start: Histogram<u64>,
    before_ack: u64,
    unacknowledged: u64,
    events: u64,
    problems: Vec<Failure>,
}

/// Checks every watcher's deliveries against the acknowledged puts: each must hold exactly
/// the acknowledged revisions, each once, each with the key written; a revision nobody
/// acknowledged is a put whose answer was lost, which only a failed put explains. Records
/// every delivery's delay from its put's acknowledgement and start.
fn check_deliveries(
    written: &HashMap<u64, Written>,
    delivered: &[Delivered],
    write_error_count: u64,
) -> Checked {
    let mut from_ack = new_histogram();
    let mut from_start = new_histogram();
    let mut before_ack = 0u64;
    let mut unacknowledged = 0u64;
    let mut events = 0u64;
    let mut problems = Vec::new();
    for one in delivered {
        if let Some(problem) = &one.problem {
            problems.push(format!("watcher {}: {problem}", one.index));
        }
        let mut matched = 0usize;
        for (revision, at, key) in &one.received {
            events += 1;
            let Some(write) = written.get(revision) else {
                unacknowledged += 1;
                continue;
            };
            matched += 1;
            if *key != write.key {
                problems.push(format!(
                    "watcher {} got key {key:?} at revision {revision}, the writer wrote {:?}",
                    one.index, write.key
                ));
            }
            if *at < write.acknowledged {
                before_ack += 1;
            }
            from_ack
                .saturating_record(micros(at.saturating_duration_since(write.acknowledged)).max(1));
            from_start
                .saturating_record(micros(at.saturating_duration_since(write.started)).max(1));
        }
        if matched != written.len() {
            let seen: std::collections::HashSet<u64> = one
                .received
                .iter()
                .map(|(revision, _, _)| *revision)
                .collect();
            let missing = written
                .keys()
                .filter(|revision| !seen.contains(revision))
                .min();
            problems.push(format!(
                "watcher {} delivered {matched} of the {} acknowledged revisions (a gap: first missing {missing:?})",
                one.index,
                written.len()
            ));
        }
    }
    if unacknowledged > 0 && write_error_count == 0 {
        problems.push(format!(
            "{unacknowledged} events of revisions no put was acknowledged for, with no failed put"
        ));
    }
    Checked {
        from_ack,
        from_start,
        before_ack,
        unacknowledged,
        events,
        problems,
    }
}

/// One active watcher: records every revision it is handed until it reaches the last one
/// written, failing on a revision out of order or repeated.
async fn follow_active(
    index: usize,
    mut stream: WatchStream,
    mut last: tokio::sync::watch::Receiver<u64>,
) -> Delivered {
    let mut delivered = Delivered {
        index,
        received: Vec::new(),
        problem: None,
    };
    let mut reached = 0u64;
    loop {
        if reached >= *last.borrow() {
            return delivered;
        }
        let message = tokio::select! {
            message = stream.next() => message,
            changed = last.changed() => {
                if changed.is_err() {
                    return delivered;
                }
                continue;
            }
        };
        match message {
            Some(Ok(WatchMessage::Events(batch))) => {
                let at = Instant::now();
                // `reached` is the last revision delivered or reported by progress as complete.
                if batch.revision <= reached {
                    delivered.problem = Some(format!(
                        "revision {} after revision {reached} was reached: a repeat or out of order",
                        batch.revision
                    ));
                    return delivered;
                }
                reached = batch.revision;
                let [event] = batch.events.as_slice() else {
                    delivered.problem = Some(format!(
                        "revision {} carries {} events, one put makes one",
                        batch.revision,
                        batch.events.len()
                    ));
                    return delivered;
                };
                delivered
                    .received
                    .push((batch.revision, at, event.kv.key.clone()));
            }
            Some(Ok(WatchMessage::Progress(progress))) => {
                reached = reached.max(progress.revision);
            }
            Some(Err(error)) => {
                delivered.problem = Some(format!("the watch ended: {error}"));
                return delivered;
            }
            None => {
                delivered.problem = Some("the watch ended without an error".to_string());
                return delivered;
            }
        }
    }
}

/// The node's Prometheus text (`GET /metrics` over plain HTTP/1.1).
pub(crate) async fn metrics(node: &str) -> Result<String, String> {
    let authority = node
        .strip_prefix("http://")
        .unwrap_or(node)
        .trim_end_matches('/');
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        stream
            .write_all(
                format!("GET /metrics HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .map_err(|_| format!("{node}/metrics: no answer within 10 s"))?
        .map_err(|error| format!("{node}/metrics: {error}"))?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{node}/metrics: {}",
            text.lines().next().unwrap_or("no answer")
        ));
    }
    // A chunked body splits lines only between chunks of whole lines in practice; the
    // figures are read by name at a line's start, so a chunk-size line is merely skipped.
    Ok(text)
}

/// The value of the first sample named `name` (with or without a `_total` suffix and
/// labels) in Prometheus text; 0 when absent.
pub(crate) fn figure(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let series = series.split('{').next()?;
            let series = series.strip_suffix("_total").unwrap_or(series);
            let wanted = series.strip_prefix("raftkv_").unwrap_or(series);
            (wanted == name || series == name)
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
        })
        .map_or(0, |value| value as u64)
}

/// Raises this process's open-file limit to its hard limit: each HTTP/1.1 connection is a
/// descriptor, and the default soft limit (1,024) is far below 10,000 watches' worth.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str, at: Instant) -> Written {
        Written {
            key: key.to_string(),
            started: at,
            acknowledged: at + Duration::from_millis(1),
        }
    }

    fn delivered(index: usize, received: &[(u64, &str)], at: Instant) -> Delivered {
        Delivered {
            index,
            received: received
                .iter()
                .map(|(revision, key)| (*revision, at + Duration::from_millis(3), key.to_string()))
                .collect(),
            problem: None,
        }
    }

    #[test]
    fn complete_deliveries_pass_and_their_delays_are_recorded() {
        let now = Instant::now();
        let written = HashMap::from([(5, write("a", now)), (6, write("b", now))]);
        let watchers = [
            delivered(0, &[(5, "a"), (6, "b")], now),
            delivered(1, &[(5, "a"), (6, "b")], now),
        ];
        let checked = check_deliveries(&written, &watchers, 0);
        assert!(checked.problems.is_empty(), "{:?}", checked.problems);
        assert_eq!(checked.events, 4);
        assert_eq!(checked.from_ack.len(), 4);
        // 3 ms after the start, 2 ms after the acknowledgement.
        assert!((1_990..=2_010).contains(&checked.from_ack.value_at_quantile(0.5)));
        assert!((2_990..=3_010).contains(&checked.from_start.value_at_quantile(0.5)));
    }

    #[test]
    fn a_gap_a_wrong_key_and_an_unexplained_revision_are_failures() {
        let now = Instant::now();
        let written = HashMap::from([(5, write("a", now)), (6, write("b", now))]);
        let gap = check_deliveries(&written, &[delivered(3, &[(6, "b")], now)], 0);
        assert_eq!(gap.problems.len(), 1);
        assert!(gap.problems[0].contains("watcher 3") && gap.problems[0].contains("Some(5)"));
        let wrong_key = check_deliveries(&written, &[delivered(0, &[(5, "a"), (6, "a")], now)], 0);
        assert_eq!(wrong_key.problems.len(), 1);
        assert!(wrong_key.problems[0].contains("key \"a\" at revision 6"));
        let extra = [delivered(0, &[(5, "a"), (6, "b"), (7, "c")], now)];
        assert_eq!(check_deliveries(&written, &extra, 0).problems.len(), 1);
        // A put that failed may still have been applied: its event is no failure then.
        let explained = check_deliveries(&written, &extra, 1);
        assert!(explained.problems.is_empty());
        assert_eq!(explained.unacknowledged, 1);
    }

    #[test]
    fn figures_are_read_by_name_with_or_without_prefix_suffix_and_labels() {
        let text = "# HELP raftkv_watch_watchers_open Watches open\n\
                    raftkv_watch_watchers_open 12\n\
                    raftkv_watch_events_sent_total 345\n\
                    watch_cancelled_lagged_total{node=\"1\"} 2\n";
        assert_eq!(figure(text, "watch_watchers_open"), 12);
        assert_eq!(figure(text, "watch_events_sent"), 345);
        assert_eq!(figure(text, "watch_cancelled_lagged"), 2);
        assert_eq!(figure(text, "watch_cancelled_stopping"), 0);
    }
}
