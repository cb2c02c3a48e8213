//! `raftkv-bench history`: what a held version of history costs in a node's memory.
//!
//! ```text
//!  two fresh clusters, the same writes to both, chunk by chunk, alternating:
//!    "retained"  (--endpoints):           --overwrites puts over --keys keys, nothing compacted
//!    "compacted" (--compacted-endpoints): the same puts, compacted to the present after each
//!                                         --compact-every revisions
//!  RSS of every node before and after ─► bytes per held version =
//!    (growth of a retained node - growth of the compacted node of the same id) / overwrites
//!  beside the first node's own count (kv_history_versions, kv_history_bytes)
//! ```
//!
//! Two clusters rather than one before and after a compaction: memory a compaction frees stays
//! with the allocator for reuse, so RSS does not fall; and both clusters keep the same Raft log
//! in memory until their snapshots (taken at the same log sizes), so their difference is the
//! history alone. The nodes must not compact by themselves during the run: start them with
//! `--history-retention-revisions 0` and no `--history-retention`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv_client::{Client, ClientOptions};
use tokio::task::JoinSet;

use crate::{parse_duration, report};

/// `raftkv-bench history` options.
#[derive(Clone, Debug, clap::Args)]
pub struct HistoryArgs {
    /// Keys overwritten.
    #[arg(long, default_value_t = 1_000)]
    pub keys: u64,
    /// Overwrites in each of the two phases.
    #[arg(long, default_value_t = 200_000)]
    pub overwrites: u64,
    /// Bytes of each value.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// In the compacted phase, compact to the present every this many revisions.
    #[arg(long, default_value_t = 5_000)]
    pub compact_every: u64,
    /// Writers at once (HTTP/2 streams of one connection per node).
    #[arg(long, default_value_t = 64)]
    pub clients: u64,
    /// Process ids of the retained cluster's nodes (Linux /proc), comma-separated, in the
    /// order of the compacted cluster's.
    #[arg(long, value_delimiter = ',', required = true)]
    pub node_pids: Vec<u32>,
    /// HTTP addresses of the compacted cluster's nodes, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub compacted_endpoints: Vec<String>,
    /// Process ids of the compacted cluster's nodes, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub compacted_node_pids: Vec<u32>,
    /// Writes per chunk; the clusters take turns chunk by chunk.
    #[arg(long, default_value_t = 10_000)]
    pub chunk: u64,
    /// Prefix of every key written.
    #[arg(long, default_value = "history-bench/")]
    pub key_prefix: String,
    /// Longest wait for one answer.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

/// Runs `raftkv-bench history` and prints its figures.
pub async fn run(endpoints: Vec<String>, token: Option<String>, args: HistoryArgs) -> ExitCode {
    match run_history(&endpoints, token.as_deref(), &args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("raftkv bench history: {error}");
            ExitCode::from(2)
        }
    }
}

fn rss(pids: &[u32]) -> Result<Vec<u64>, String> {
    pids.iter()
        .map(|pid| report::process_rss_bytes(*pid))
        .collect()
}

fn growth(from: &[u64], to: &[u64]) -> Vec<f64> {
    from.iter()
        .zip(to)
        .map(|(from, to)| *to as f64 - *from as f64)
        .collect()
}

fn show(rss: &[u64]) -> String {
    rss.iter()
        .map(|bytes| format!("{:.1}", *bytes as f64 / (1024.0 * 1024.0)))
        .collect::<Vec<_>>()
        .join(" / ")
}

async fn run_history(
    endpoints: &[String],
    token: Option<&str>,
    args: &HistoryArgs,
) -> Result<(), String> {
    if args.node_pids.len() != args.compacted_node_pids.len() {
        return Err("--node-pids and --compacted-node-pids must name as many nodes".to_string());
    }
    let options = ClientOptions {
        request_timeout: args.request_timeout,
        retry_deadline: Duration::from_secs(30),
    };
    let connect = |endpoints: &[String]| {
        Client::with_http2(endpoints, options)
            .and_then(|client| match token {
                Some(token) => client.with_bearer_token(token),
                None => Ok(client),
            })
            .map_err(|error| error.to_string())
    };
    let retained = connect(endpoints)?;
    let compacted = connect(&args.compacted_endpoints)?;
    let value = Bytes::from(vec![b'h'; args.value_size]);
    println!(
        "history memory: {} keys, {} overwrites of {} B in chunks of {}; retained nodes {:?}, \
         compacted nodes {:?} (compacted every {} revisions)",
        args.keys,
        args.overwrites,
        args.value_size,
        args.chunk,
        args.node_pids,
        args.compacted_node_pids,
        args.compact_every
    );
    for client in [&retained, &compacted] {
        write(client, args, &value, 0..args.keys, None).await?;
        let revision = current_revision(client, args).await?;
        client
            .compact(revision)
            .await
            .map_err(|error| format!("compacting: {error}"))?;
    }
    let retained_start = rss(&args.node_pids)?;
    let compacted_start = rss(&args.compacted_node_pids)?;
    println!(
        "keys created, both compacted: RSS MiB retained {}, compacted {}",
        show(&retained_start),
        show(&compacted_start)
    );
    let began = Instant::now();
    let mut done = 0;
    while done < args.overwrites {
        let end = (done + args.chunk.max(1)).min(args.overwrites);
        write(&retained, args, &value, done..end, None).await?;
        write(
            &compacted,
            args,
            &value,
            done..end,
            Some(args.compact_every),
        )
        .await?;
        done = end;
    }
    let revision = current_revision(&compacted, args).await?;
    compacted
        .compact(revision)
        .await
        .map_err(|error| format!("compacting: {error}"))?;
    let retained_end = rss(&args.node_pids)?;
    let compacted_end = rss(&args.compacted_node_pids)?;
    println!(
        "after {} overwrites each ({:.1} s): RSS MiB retained {}, compacted {}",
        args.overwrites,
        began.elapsed().as_secs_f64(),
        show(&retained_end),
        show(&compacted_end)
    );
    let retained_growth = growth(&retained_start, &retained_end);
    let compacted_growth = growth(&compacted_start, &compacted_end);
    let per_write = |growth: &[f64]| {
        growth
            .iter()
            .map(|bytes| format!("{:.0}", bytes / args.overwrites as f64))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "RSS growth per write, per node: retained {}; compacted {}",
        per_write(&retained_growth),
        per_write(&compacted_growth)
    );
    let per_version: Vec<f64> = retained_growth
        .iter()
        .zip(&compacted_growth)
        .map(|(retained, compacted)| (retained - compacted) / args.overwrites as f64)
        .collect();
    let mean = per_version.iter().sum::<f64>() / per_version.len().max(1) as f64;
    let counted = match endpoints.first() {
        Some(node) => {
            let metrics = crate::watch::metrics(node).await?;
            format!(
                "{} versions, {} bytes of keys and values",
                crate::watch::figure(&metrics, "kv_history_versions"),
                crate::watch::figure(&metrics, "kv_history_bytes")
            )
        }
        None => "-".to_string(),
    };
    println!("the retained cluster's first node counts its history at {counted}");
    println!(
        "memory per held version (retained - compacted growth, per overwrite): {} bytes per node, \
         mean {mean:.0} (of it data: a key of {} B and a value of {} B)",
        per_version
            .iter()
            .map(|bytes| format!("{bytes:.0}"))
            .collect::<Vec<_>>()
            .join(" / "),
        args.key_prefix.len() + args.keys.saturating_sub(1).to_string().len(),
        args.value_size,
    );
    Ok(())
}

async fn current_revision(client: &Client, args: &HistoryArgs) -> Result<u64, String> {
    Ok(client
        .scan_at(&args.key_prefix, 1, None)
        .await
        .map_err(|error| format!("reading the current revision: {error}"))?
        .revision)
}

/// The puts numbered `range` (put `n` goes to key `n % keys`) by `args.clients` writers; with
/// `compact_every`, the first writer compacts to the present whenever that many revisions have
/// passed since its last compaction.
async fn write(
    client: &Client,
    args: &HistoryArgs,
    value: &Bytes,
    range: std::ops::Range<u64>,
    compact_every: Option<u64>,
) -> Result<(), String> {
    let count = range.end;
    let next = Arc::new(AtomicU64::new(range.start));
    let width = args.keys.saturating_sub(1).to_string().len();
    let mut writers = JoinSet::new();
    for writer in 0..args.clients.max(1) {
        let (client, value, next) = (client.new_session(), value.clone(), Arc::clone(&next));
        let (prefix, keys) = (args.key_prefix.clone(), args.keys.max(1));
        writers.spawn(async move {
            let mut compacted_at = 0u64;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return Ok::<(), String>(());
                }
                let key = format!("{prefix}{:0width$}", index % keys);
                let answer = client
                    .put(&key, value.clone())
                    .await
                    .map_err(|error| format!("put {key}: {error}"))?;
                if let (0, Some(every)) = (writer, compact_every) {
                    if answer.revision >= compacted_at + every {
                        client
                            .compact(answer.revision)
                            .await
                            .map_err(|error| format!("compacting: {error}"))?;
                        compacted_at = answer.revision;
                    }
                }
            }
        });
    }
    while let Some(joined) = writers.join_next().await {
        joined.map_err(|error| format!("a writer failed: {error}"))??;
    }
    Ok(())
}
