//! The bank workload: accounts under one prefix, created in one transaction; clients read
//! every account with one prefix scan at one revision, then move money between two of them
//! by a transaction that requires both accounts unchanged since that read. Every operation is
//! recorded with its times, outcome and the revision it was answered, for
//! [`crate::revision_check::bank_anomalies`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raftkv_client::api::{Compare, CompareOp, CompareTarget, TxnOp, TxnRequest};
use raftkv_client::Client;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::revision_check::{bank_balance, bank_value, BankEntry, BankOperation, BankOutcome};
use crate::workload::nanos;

/// The prefix of every account key.
pub const BANK_PREFIX: &str = "chaos/bank/";
/// Accounts.
pub const ACCOUNTS: usize = 8;
/// Each account's first balance.
pub const INITIAL_BALANCE: i64 = 100;
/// The sum every read must find.
pub const TOTAL: i64 = ACCOUNTS as i64 * INITIAL_BALANCE;
/// Most money one transfer moves.
const TRANSFER_MAX: i64 = 10;

/// The key of account `index`.
pub fn account_key(index: usize) -> String {
    format!("{BANK_PREFIX}{index:02}")
}

/// Shared by the bank's clients.
#[derive(Debug)]
pub struct BankShared {
    /// The run's time origin.
    pub origin: Instant,
    /// Bank operation ids handed out so far (the init is 0).
    pub next_id: AtomicU64,
    /// Set to stop the clients.
    pub stop: watch::Receiver<bool>,
    /// A client's pause after each transfer.
    pub pause: Duration,
}

/// Creates the accounts in one transaction (each must be absent), before any fault; returns
/// its entry (id 0, client 0). An error when it does not commit.
pub async fn initialise(client: &Client, origin: Instant) -> Result<BankEntry, String> {
    let balances: BTreeMap<String, String> = (0..ACCOUNTS)
        .map(|index| (account_key(index), bank_value(INITIAL_BALANCE, "init")))
        .collect();
    let request = TxnRequest {
        compare: balances
            .keys()
            .map(|key| Compare {
                key: key.clone(),
                op: CompareOp::Equal,
                target: CompareTarget::Version(0),
            })
            .collect(),
        success: balances
            .iter()
            .map(|(key, value)| TxnOp::Put {
                key: key.clone(),
                value: Some(value.clone()),
                value_base64: None,
                lease: None,
            })
            .collect(),
        failure: Vec::new(),
    };
    let invoke = origin.elapsed();
    let answer = client.txn(&request).await;
    let complete = origin.elapsed();
    let outcome = match answer {
        Ok(response) if response.succeeded => BankOutcome::Written {
            revision: response.revision,
        },
        Ok(_) => return Err("the accounts existed before the run".to_string()),
        Err(error) => return Err(format!("creating the accounts: {error}")),
    };
    Ok(BankEntry {
        id: 0,
        client: 0,
        invoke_ns: nanos(invoke),
        complete_ns: nanos(complete),
        operation: BankOperation::Init { balances },
        outcome,
    })
}

/// Runs one bank client until `shared.stop` is set: read everything, transfer, pause.
pub async fn run_bank_client(
    number: u64,
    client: Client,
    shared: Arc<BankShared>,
    seed: u64,
) -> Vec<BankEntry> {
    let mut random = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut entries = Vec::new();
    let mut stop = shared.stop.clone();
    while !*stop.borrow() {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let invoke = shared.origin.elapsed();
        // Each account's mod revision as read: what the transfer requires unchanged.
        let mut mod_revisions = BTreeMap::new();
        let outcome = tokio::select! {
            answer = client.scan_at(BANK_PREFIX, ACCOUNTS * 2, None) => match answer {
                Ok(scan) => BankOutcome::Read {
                    revision: scan.revision,
                    accounts: scan
                        .items
                        .into_iter()
                        .map(|item| {
                            mod_revisions.insert(item.key.clone(), item.mod_revision);
                            (item.key, item.value.unwrap_or_default())
                        })
                        .collect(),
                },
                // A read changes nothing: one without an answer did not happen.
                Err(error) => BankOutcome::Failed { reason: error.to_string() },
            },
            _ = stop.changed() => BankOutcome::Failed { reason: "the run ended".into() },
        };
        let read = entry(number, id, invoke, &shared, BankOperation::Read, outcome);
        let transfer_id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let transfer = plan_transfer(&read, &mod_revisions, transfer_id, &mut random);
        entries.push(read);
        if let Some(operation) = transfer {
            let invoke = shared.origin.elapsed();
            let outcome = tokio::select! {
                outcome = transfer_outcome(&client, &operation) => outcome,
                _ = stop.changed() => BankOutcome::Unknown { reason: "the run ended".into() },
            };
            entries.push(entry(
                number,
                transfer_id,
                invoke,
                &shared,
                operation,
                outcome,
            ));
        }
        if !shared.pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(shared.pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
    entries
}

fn entry(
    client: u64,
    id: u64,
    invoke: Duration,
    shared: &BankShared,
    operation: BankOperation,
    outcome: BankOutcome,
) -> BankEntry {
    BankEntry {
        id,
        client,
        invoke_ns: nanos(invoke),
        complete_ns: nanos(shared.origin.elapsed()),
        operation,
        outcome,
    }
}

/// Transfer `id` between two accounts the read found, from their values and mod revisions as
/// read; `None` when the read failed or the debited account is empty.
fn plan_transfer(
    read: &BankEntry,
    mod_revisions: &BTreeMap<String, u64>,
    id: u64,
    random: &mut Xoshiro256PlusPlus,
) -> Option<BankOperation> {
    let BankOutcome::Read { accounts, .. } = &read.outcome else {
        return None;
    };
    let keys: Vec<&String> = accounts.keys().collect();
    if keys.len() < 2 {
        return None;
    }
    let from = keys[random.gen_range(0..keys.len())];
    let to = keys
        [(keys.iter().position(|k| *k == from)? + random.gen_range(1..keys.len())) % keys.len()];
    let from_balance = bank_balance(&accounts[from])?;
    let to_balance = bank_balance(&accounts[to])?;
    if from_balance <= 0 {
        return None;
    }
    let amount = random.gen_range(1..=from_balance.min(TRANSFER_MAX));
    let tag = format!("t{id}");
    Some(BankOperation::Transfer {
        from: (
            from.clone(),
            *mod_revisions.get(from)?,
            bank_value(from_balance - amount, &tag),
        ),
        to: (
            to.clone(),
            *mod_revisions.get(to)?,
            bank_value(to_balance + amount, &tag),
        ),
    })
}

/// Sends a transfer: compare both mod revisions, put both values; nothing on failure.
async fn transfer_outcome(client: &Client, operation: &BankOperation) -> BankOutcome {
    let BankOperation::Transfer { from, to } = operation else {
        return BankOutcome::Failed {
            reason: "not a transfer".into(),
        };
    };
    let request = TxnRequest {
        compare: [from, to]
            .iter()
            .map(|(key, mod_revision, _)| Compare {
                key: key.clone(),
                op: CompareOp::Equal,
                target: CompareTarget::ModRevision(*mod_revision),
            })
            .collect(),
        success: [from, to]
            .iter()
            .map(|(key, _, value)| TxnOp::Put {
                key: key.clone(),
                value: Some(value.clone()),
                value_base64: None,
                lease: None,
            })
            .collect(),
        failure: Vec::new(),
    };
    match client.txn(&request).await {
        Ok(response) if response.succeeded => BankOutcome::Written {
            revision: response.revision,
        },
        Ok(response) => BankOutcome::CompareFailed {
            revision: response.revision,
        },
        Err(error) => match crate::workload::write_error(error) {
            lincheck::Outcome::Failed { reason } => BankOutcome::Failed { reason },
            outcome => BankOutcome::Unknown {
                reason: match outcome {
                    lincheck::Outcome::Unknown { reason } => reason,
                    _ => "no definite answer".into(),
                },
            },
        },
    }
}
