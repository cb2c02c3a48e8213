//! The lock workload, recorded for [`crate::lock_check`].
//!
//! ```text
//!  lock client (each its own session: a lease with a keeper)
//!    Session::lock(LOCK_NAME) → token = the key's create revision
//!    fenced read of the register's counter c        (transaction, see lock_check)
//!    read of the unguarded counter u                (plain linearizable read)
//!    [stalled: revoke its own lease (the lock passes on), wait 0.5-2 s]
//!    fenced write of c + 1                          (refused if a newer token came)
//!    write of u + 1                                 (plain put: the lock is its only guard)
//!    unlock
//! ```
//!
//! A stalled holder plays a process paused past its lease (a garbage collection, a swap
//! storm): it stops vouching for its lease while holding the lock, so another client takes
//! the lock, and it then acts with its old token. The register must refuse it; the unguarded
//! counter may lose an increment, which is reported as information.

use std::sync::Arc;
use std::time::Duration;

use raftkv_client::api::{Compare, CompareOp, CompareTarget, TxnOp, TxnOpResult, TxnRequest};
use raftkv_client::{Client, Session};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::lock_check::{
    token_value, LockAction, LockHolding, LockOutcome, LockStep, FENCE_TOKEN_KEY, FENCE_VALUE_KEY,
    UNGUARDED_KEY,
};
use crate::workload::nanos;

/// The lock's name: its keys are `{LOCK_NAME}/{lease id in hex}`.
pub const LOCK_NAME: &str = "chaos/lock/mutex";
/// Every key of the lock workload starts with this.
pub const LOCK_PREFIX: &str = "chaos/lock/";
/// The sessions' TTL, in seconds: short, so a lost holder's key goes soon.
const SESSION_TTL_SECONDS: u64 = 3;
/// Chance that a holder stalls past its lease, in percent.
const STALL_PERCENT: u32 = 20;
/// Shortest and longest stall, in milliseconds.
const STALL_MS: (u64, u64) = (500, 2_000);
/// Pause after a failed session or lock attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What a lock client works with.
#[derive(Clone, Debug)]
pub struct LockShared {
    /// The run's time origin.
    pub origin: Instant,
    /// Set to stop the clients.
    pub stop: watch::Receiver<bool>,
}

/// Runs one lock client until `shared.stop` is set; returns its holdings.
pub async fn run_lock_client(
    number: u64,
    client: Client,
    shared: Arc<LockShared>,
    seed: u64,
) -> Vec<LockHolding> {
    let mut random = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut holdings = Vec::new();
    let mut stop = shared.stop.clone();
    'sessions: while !*stop.borrow() {
        let session = tokio::select! {
            session = Session::new(&client, SESSION_TTL_SECONDS) => session,
            _ = stop.changed() => break,
        };
        let Ok(session) = session else {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        while !*stop.borrow() {
            let requested = shared.origin.elapsed();
            let guard = tokio::select! {
                guard = session.lock(LOCK_NAME) => guard,
                _ = stop.changed() => break 'sessions,
            };
            let Ok(guard) = guard else {
                // The session's lease is lost or a call failed: start over with a new one.
                tokio::time::sleep(RETRY_PAUSE).await;
                continue 'sessions;
            };
            let mut holding = LockHolding {
                client: number,
                acquisition: holdings.len() as u64 + 1,
                key: guard.key().to_string(),
                token: guard.fencing_token(),
                requested_ns: nanos(requested),
                acquired_ns: nanos(shared.origin.elapsed()),
                released_ns: 0,
                stalled: random.gen_ratio(STALL_PERCENT, 100),
                steps: Vec::new(),
            };
            act(&client, &shared, &session, &mut holding, &mut random).await;
            let stalled = holding.stalled;
            if !stalled {
                let _ = guard.unlock().await;
            }
            holding.released_ns = nanos(shared.origin.elapsed());
            holdings.push(holding);
            if stalled {
                // Its lease is gone: the session is over.
                continue 'sessions;
            }
        }
        let _ = session.close().await;
    }
    holdings
}

/// What a holder does with the lock: a fenced and an unguarded increment, stalling between
/// read and write when it plays a paused process.
async fn act(
    client: &Client,
    shared: &LockShared,
    session: &Session,
    holding: &mut LockHolding,
    random: &mut Xoshiro256PlusPlus,
) {
    let token = holding.token;
    let fenced = step(
        shared,
        LockAction::FencedRead,
        fenced_access(client, token, None),
    )
    .await;
    let fenced_value = match fenced.outcome {
        LockOutcome::Ok { value, .. } => Some(value),
        _ => None,
    };
    holding.steps.push(fenced);
    let unguarded = step(shared, LockAction::UnguardedRead, unguarded_read(client)).await;
    let unguarded_value = match unguarded.outcome {
        LockOutcome::Ok { value, .. } => Some(value),
        _ => None,
    };
    holding.steps.push(unguarded);
    if holding.stalled {
        // Stop vouching for the lease: its keys, the lock key among them, go now, and the next
        // waiter takes the lock while this holder still means to act.
        let _ = client.lease_revoke(session.lease_id()).await;
        let stall = Duration::from_millis(random.gen_range(STALL_MS.0..=STALL_MS.1));
        let mut stop = shared.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(stall) => {}
            _ = stop.changed() => {}
        }
    }
    if let Some(value) = fenced_value {
        let write = LockAction::FencedWrite { value: value + 1 };
        let written = step(shared, write, fenced_access(client, token, Some(value + 1))).await;
        holding.steps.push(written);
    }
    if let Some(value) = unguarded_value {
        let write = LockAction::UnguardedWrite { value: value + 1 };
        let written = step(shared, write, unguarded_write(client, value + 1)).await;
        holding.steps.push(written);
    }
}

async fn step(
    shared: &LockShared,
    action: LockAction,
    future: impl std::future::Future<Output = LockOutcome>,
) -> LockStep {
    let invoke = shared.origin.elapsed();
    let outcome = future.await;
    LockStep {
        invoke_ns: nanos(invoke),
        complete_ns: nanos(shared.origin.elapsed()),
        action,
        outcome,
    }
}

/// One access to the fencing register with `token`: refused when the register holds a
/// higher token; else stores `token` and reads the counter (`write: None`) or writes it.
async fn fenced_access(client: &Client, token: u64, write: Option<u64>) -> LockOutcome {
    let store_token = TxnOp::Put {
        key: FENCE_TOKEN_KEY.to_string(),
        value: Some(token_value(token)),
        value_base64: None,
        lease: None,
    };
    let access = match write {
        None => TxnOp::Get {
            key: FENCE_VALUE_KEY.to_string(),
        },
        Some(value) => TxnOp::Put {
            key: FENCE_VALUE_KEY.to_string(),
            value: Some(value.to_string()),
            value_base64: None,
            lease: None,
        },
    };
    let request = TxnRequest {
        // Tokens are stored at a fixed width, so comparing values compares tokens; a missing
        // register fails the comparison (as every value comparison of a missing key does).
        compare: vec![Compare {
            key: FENCE_TOKEN_KEY.to_string(),
            op: CompareOp::Greater,
            target: CompareTarget::Value(token_value(token)),
        }],
        success: vec![TxnOp::Get {
            key: FENCE_TOKEN_KEY.to_string(),
        }],
        failure: vec![store_token, access],
    };
    match client.txn(&request).await {
        Ok(response) if response.succeeded => LockOutcome::Refused {
            register_token: match response.results.first() {
                Some(TxnOpResult::Get { kv: Some(kv) }) => number(kv.value.as_deref()),
                _ => 0,
            },
        },
        Ok(response) => LockOutcome::Ok {
            value: match (write, response.results.get(1)) {
                (Some(value), _) => value,
                (None, Some(TxnOpResult::Get { kv })) => {
                    number(kv.as_ref().and_then(|kv| kv.value.as_deref()))
                }
                (None, _) => 0,
            },
            revision: response.revision,
        },
        Err(error) => outcome_of_error(error),
    }
}

async fn unguarded_read(client: &Client) -> LockOutcome {
    match client.get_versioned(UNGUARDED_KEY, None).await {
        Ok(answer) => LockOutcome::Ok {
            value: number(answer.kv.as_ref().and_then(|kv| kv.value.as_deref())),
            revision: answer.revision,
        },
        Err(error) => LockOutcome::Failed {
            reason: error.to_string(),
        },
    }
}

async fn unguarded_write(client: &Client, value: u64) -> LockOutcome {
    match client.put(UNGUARDED_KEY, value.to_string()).await {
        Ok(written) => LockOutcome::Ok {
            value,
            revision: written.revision,
        },
        Err(error) => outcome_of_error(error),
    }
}

fn outcome_of_error(error: raftkv_client::ClientError) -> LockOutcome {
    match crate::workload::write_error(error) {
        lincheck::Outcome::Failed { reason } => LockOutcome::Failed { reason },
        lincheck::Outcome::Unknown { reason } => LockOutcome::Unknown { reason },
        lincheck::Outcome::Ok { .. } => LockOutcome::Unknown {
            reason: "no definite answer".into(),
        },
    }
}

/// A counter or token as stored; an absent or unreadable one counts as 0.
fn number(text: Option<&str>) -> u64 {
    text.and_then(|text| text.parse().ok()).unwrap_or(0)
}
