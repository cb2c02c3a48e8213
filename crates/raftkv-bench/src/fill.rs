//! `raftkv-bench fill`: puts `--keys` distinct keys into the store as fast as transactions of
//! up to 128 puts allow, so the cost of a large store (memory per key, snapshot, restart and
//! catch-up time) can be measured without waiting for a million single puts.
//!
//! ```text
//!  keys PREFIX000…0 .. PREFIX{keys-1}, in order, cut into transactions of --batch puts
//!  ─► --in-flight tasks take the next transaction until none is left (HTTP/2, one connection
//!     per endpoint; a follower hands each to the leader)
//!  ─► keys/s, the revision reached
//! ```

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftkv_client::api::{TxnOp, TxnRequest};
use raftkv_client::Client;
use tokio::task::JoinSet;

use crate::{mode_options, parse_duration, with_token};

/// The most operations one transaction may hold (the API's limit).
const TXN_PUTS_MAX: u64 = 128;

/// `raftkv-bench fill` options.
#[derive(Clone, Debug, clap::Args)]
pub struct FillArgs {
    /// Distinct keys to put.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub keys: u64,
    /// Bytes of each value (printable ASCII).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    pub value_size: u64,
    /// Puts per transaction.
    #[arg(long, default_value_t = TXN_PUTS_MAX, value_parser = clap::value_parser!(u64).range(1..=TXN_PUTS_MAX))]
    pub batch: u64,
    /// Transactions in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub in_flight: u64,
    /// Prefix of every key.
    #[arg(long, default_value = "fill/")]
    pub key_prefix: String,
    /// Longest wait for one answer.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

/// Fills the store and prints how fast; exit 2 on any failure.
pub async fn run(endpoints: Vec<String>, token: Option<String>, args: FillArgs) -> ExitCode {
    match fill(&endpoints, token.as_deref(), &args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("raftkv bench fill: {error}");
            ExitCode::from(2)
        }
    }
}

async fn fill(endpoints: &[String], token: Option<&str>, args: &FillArgs) -> Result<(), String> {
    let client = with_token(
        Client::with_http2(endpoints, mode_options(args.request_timeout)),
        token,
    )?;
    let width = args.keys.saturating_sub(1).to_string().len();
    let value = value_of(args.value_size as usize);
    let transactions = args.keys.div_ceil(args.batch);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..args.in_flight.min(transactions) {
        let (client, next, value) = (client.new_session(), Arc::clone(&next), value.clone());
        let (prefix, keys, batch) = (args.key_prefix.clone(), args.keys, args.batch);
        tasks.spawn(async move {
            let mut revision = 0;
            loop {
                let number = next.fetch_add(1, Ordering::Relaxed);
                if number >= transactions {
                    return Ok::<u64, String>(revision);
                }
                let first = number * batch;
                let request = TxnRequest {
                    compare: Vec::new(),
                    success: (first..(first + batch).min(keys))
                        .map(|key| TxnOp::Put {
                            key: format!("{prefix}{key:0width$}"),
                            value: Some(value.clone()),
                            value_base64: None,
                            lease: None,
                        })
                        .collect(),
                    failure: Vec::new(),
                };
                let answer = client
                    .txn(&request)
                    .await
                    .map_err(|error| format!("a transaction of keys from {first}: {error}"))?;
                revision = revision.max(answer.revision);
            }
        });
    }
    let mut revision = 0;
    while let Some(joined) = tasks.join_next().await {
        revision = revision.max(joined.map_err(|error| format!("a task failed: {error}"))??);
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "filled {} keys of {} B ({} puts per transaction, {} in flight) in {:.1} s: {:.0} keys/s, revision {}",
        args.keys,
        args.value_size,
        args.batch,
        args.in_flight,
        seconds,
        args.keys as f64 / seconds,
        revision
    );
    Ok(())
}

/// `size` bytes of printable ASCII, varied so that nothing along the way shrinks them.
fn value_of(size: usize) -> String {
    (0..size)
        .map(|index| char::from(b'a' + ((index * 7 + index / 26) % 26) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_size_asked_and_are_printable() {
        for size in [0, 1, 100, 4096] {
            let value = value_of(size);
            assert_eq!(value.len(), size);
            assert!(value.bytes().all(|byte| byte.is_ascii_lowercase()));
        }
    }
}
