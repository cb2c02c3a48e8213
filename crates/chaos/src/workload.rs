//! The clients: concurrent sessions doing get / put / append / cas / delete on a few keys,
//! recording every operation with its invocation and completion times.
//!
//! Keys come in two kinds. *Register* keys take get, put, cas and delete; *log* keys take get
//! and append only, so the final value of a log key lists every append that took effect and
//! a lost or doubled acknowledged append is visible directly. Every value written is unique
//! (client and counter), so a read names the write it saw.
//!
//! Keys rotate: after `operations_per_generation` operations in all, every client moves to a
//! fresh set of keys. A key's history stays short, and an operation of unknown outcome (which
//! stays concurrent with everything after it) burdens only the key's own generation; this is
//! what keeps checking a long soak linear in its length.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lincheck::{Entry, Operation, Outcome, Output};

use crate::revision_check::{ExpectedWrite, Stamp};
use raftkv_client::{Client, ClientError, Consistency};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tokio::sync::watch;
use tokio::time::Instant;

/// What the clients do.
#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    /// Concurrent clients, each its own session.
    pub clients: usize,
    /// Register keys and log keys per generation (each).
    pub keys_per_kind: usize,
    /// Operations, over all clients, before every client moves to fresh keys.
    pub operations_per_generation: u64,
    /// Percentage of reads that are lease reads instead of linearizable ones.
    pub lease_read_percent: u8,
    /// Longest wait for one attempt's answer.
    pub request_timeout: Duration,
    /// Longest time one operation is retried before its outcome is recorded as unknown.
    pub operation_deadline: Duration,
    /// A client's pause after each operation, which sets the load (and the history's size).
    pub pause_between_operations: Duration,
}

/// One completed operation for the latency plot.
#[derive(Clone, Copy, Debug)]
pub struct LatencySample {
    /// Completion time since the run started.
    pub at: Duration,
    /// Invocation to completion.
    pub latency: Duration,
    /// Whether it succeeded (a failed or unknown outcome is not).
    pub ok: bool,
}

/// What one client recorded.
#[derive(Debug, Default)]
pub struct ClientRecord {
    /// Its operations.
    pub entries: Vec<Entry>,
    /// Their latencies.
    pub samples: Vec<LatencySample>,
    /// The writes acknowledged with a revision, for the revision checks.
    pub stamps: Vec<Stamp>,
}

/// Shared by the clients of a run.
#[derive(Debug)]
pub struct WorkloadShared {
    /// The run's time origin.
    pub origin: Instant,
    /// Operations started so far: their ids, and what picks the key generation.
    pub operations_started: AtomicU64,
    /// Set to stop the clients.
    pub stop: watch::Receiver<bool>,
}

/// The register key `index` of generation `generation`.
pub fn register_key(generation: u64, index: usize) -> String {
    format!("chaos/g{generation}/r{index}")
}

/// The log key `index` of generation `generation`.
pub fn log_key(generation: u64, index: usize) -> String {
    format!("chaos/g{generation}/a{index}")
}

/// Runs one client until `shared.stop` is set; returns what it recorded.
pub async fn run_client(
    number: u64,
    client: Client,
    options: WorkloadOptions,
    shared: Arc<WorkloadShared>,
    seed: u64,
) -> ClientRecord {
    let mut random = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut record = ClientRecord::default();
    let mut stop = shared.stop.clone();
    let mut counter = 0u64;
    // The last value this client saw per register key, the guess its next cas expects.
    let mut last_seen: std::collections::HashMap<String, Option<String>> = Default::default();
    while !*stop.borrow() {
        let id = shared.operations_started.fetch_add(1, Ordering::Relaxed);
        let generation = id / options.operations_per_generation.max(1);
        let index = random.gen_range(0..options.keys_per_kind.max(1));
        counter += 1;
        let operation = if random.gen_bool(0.5) {
            let key = register_key(generation, index);
            match random.gen_range(0..100) {
                0..=39 => Operation::Get { key },
                40..=69 => Operation::Put {
                    key,
                    value: format!("c{number}.{counter}"),
                },
                70..=94 => {
                    let expect = last_seen.get(&key).cloned().flatten();
                    Operation::Cas {
                        key,
                        expect,
                        value: format!("c{number}.{counter}"),
                    }
                }
                _ => Operation::Delete { key },
            }
        } else {
            let key = log_key(generation, index);
            if random.gen_range(0..100) < 40 {
                Operation::Get { key }
            } else {
                Operation::Append {
                    key,
                    suffix: format!("{number}.{counter},"),
                }
            }
        };
        let lease = random.gen_range(0..100u8) < options.lease_read_percent;
        let invoke = shared.origin.elapsed();
        let outcome = tokio::select! {
            answer = execute_with_revision(&client, &operation, lease) => answer,
            // At the end of the run an operation in flight is abandoned: its outcome is unknown.
            _ = stop.changed() => (Outcome::Unknown { reason: "the run ended".into() }, None),
        };
        let (outcome, revision) = outcome;
        let complete = shared.origin.elapsed();
        if let Some(revision) = revision {
            record.stamps.push(Stamp {
                operation: format!("kv op {id}"),
                invoke_ns: nanos(invoke),
                complete_ns: nanos(complete),
                revision,
                writes: expected_writes(&operation, &outcome),
            });
        }
        if let Outcome::Ok { output } = &outcome {
            match (&operation, output) {
                (Operation::Get { key }, Output::Get { value }) => {
                    last_seen.insert(key.clone(), value.clone());
                }
                (Operation::Cas { key, value, .. }, Output::Cas { swapped, current }) => {
                    let now = if *swapped {
                        Some(value.clone())
                    } else {
                        current.clone()
                    };
                    last_seen.insert(key.clone(), now);
                }
                (Operation::Put { key, value }, _) => {
                    last_seen.insert(key.clone(), Some(value.clone()));
                }
                (Operation::Delete { key }, _) => {
                    last_seen.insert(key.clone(), None);
                }
                _ => {}
            }
        }
        record.samples.push(LatencySample {
            at: complete,
            latency: complete.saturating_sub(invoke),
            ok: matches!(outcome, Outcome::Ok { .. }),
        });
        record.entries.push(Entry {
            id,
            client: number,
            operation,
            invoke_ns: nanos(invoke),
            complete_ns: nanos(complete),
            outcome,
        });
        if !options.pause_between_operations.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(options.pause_between_operations) => {}
                _ = stop.changed() => {}
            }
        }
    }
    record
}

/// Nanoseconds in `duration`, saturating.
pub fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Performs `operation` and classifies its result.
pub async fn execute(client: &Client, operation: &Operation, lease: bool) -> Outcome {
    execute_with_revision(client, operation, lease).await.0
}

/// What an acknowledged `operation` with `outcome` changed: nothing for a read, a delete of
/// an absent key or a compare-and-swap that did not swap.
fn expected_writes(operation: &Operation, outcome: &Outcome) -> Vec<ExpectedWrite> {
    let Outcome::Ok { output } = outcome else {
        return Vec::new();
    };
    match (operation, output) {
        (Operation::Put { key, value }, _)
        | (Operation::Cas { key, value, .. }, Output::Cas { swapped: true, .. }) => {
            vec![ExpectedWrite::Put {
                key: key.clone(),
                value: value.clone(),
            }]
        }
        (Operation::Append { key, suffix }, _) => vec![ExpectedWrite::EndsWith {
            key: key.clone(),
            suffix: suffix.clone(),
        }],
        (Operation::Delete { key }, Output::Delete { existed: true }) => {
            vec![ExpectedWrite::Delete { key: key.clone() }]
        }
        _ => Vec::new(),
    }
}

/// Performs `operation` and classifies its result, with the revision a write was answered
/// (reads of the plain route carry none here; a node before revisions answers 0: none).
pub async fn execute_with_revision(
    client: &Client,
    operation: &Operation,
    lease: bool,
) -> (Outcome, Option<u64>) {
    let consistency = if lease {
        Consistency::Lease
    } else {
        Consistency::Linearizable
    };
    let revision = |revision: u64| (revision > 0).then_some(revision);
    match operation {
        Operation::Get { key } => (
            match client.get(key, consistency).await {
                Ok(value) => match value.map(|bytes| String::from_utf8(bytes.to_vec())) {
                    None => ok(Output::Get { value: None }),
                    Some(Ok(text)) => ok(Output::Get { value: Some(text) }),
                    Some(Err(_)) => Outcome::Failed {
                        reason: "the value is not UTF-8".into(),
                    },
                },
                // A read changes nothing, so a read without an answer simply did not happen.
                Err(error) => Outcome::Failed {
                    reason: error.to_string(),
                },
            },
            None,
        ),
        Operation::Put { key, value } => match client.put(key, value.clone()).await {
            Ok(response) => (ok(Output::Put), revision(response.revision)),
            Err(error) => (write_error(error), None),
        },
        Operation::Delete { key } => match client.delete(key).await {
            Ok(response) => (
                ok(Output::Delete {
                    existed: response.deleted,
                }),
                revision(response.revision),
            ),
            Err(error) => (write_error(error), None),
        },
        Operation::Append { key, suffix } => match client.append(key, suffix.clone()).await {
            Ok(response) => (
                ok(Output::Append {
                    length: Some(response.length),
                }),
                revision(response.revision),
            ),
            Err(error) => (write_error(error), None),
        },
        Operation::Cas { key, expect, value } => {
            match client.cas(key, expect.as_deref(), value).await {
                Ok(response) => (
                    ok(Output::Cas {
                        swapped: response.ok,
                        current: response.current,
                    }),
                    revision(response.revision),
                ),
                Err(error) => (write_error(error), None),
            }
        }
    }
}

fn ok(output: Output) -> Outcome {
    Outcome::Ok { output }
}

/// A write that got no definite answer may have been applied; only a refusal before sending,
/// or a definite rejection of the input, means it was not.
pub fn write_error(error: ClientError) -> Outcome {
    match &error {
        ClientError::InvalidInput(_) => Outcome::Failed {
            reason: error.to_string(),
        },
        ClientError::Server {
            status: 400 | 413, ..
        } => Outcome::Failed {
            reason: error.to_string(),
        },
        _ => Outcome::Unknown {
            reason: error.to_string(),
        },
    }
}
