//! `POST /v1/txn`: comparisons, then one of two branches of operations, at one revision
//! (routes and bodies in [`raftkv_client::api::coordination`]).
//!
//! ```text
//!  JSON TxnRequest ─► the store's Txn: keys (400 / 413), values (413), base64 (400), scan
//!  limits (400) checked ─► Txn::validate (a key changed twice, an empty delete_prefix ...: 400)
//!    ─► write through Raft (forwarded to the leader; client-id + request-seq: exactly once)
//!    ─► Outcome::Txn ─► 200 TxnResponse { succeeded, results (keys named from the branch
//!                                         that ran), revision, index, term }
//! ```
//!
//! The store validates again when it applies the transaction (every replica refuses the same
//! way); checking here first answers a malformed transaction without a log entry.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use raftkv_client::api::{self, TxnOpResult, TxnRequest, TxnResponse};

use super::error::ApiError;
use super::kv::{check_key, check_key_bytes, check_value};
use super::lease::{check_lease_id, lease_refusal};
use super::request::Original;
use super::revisions::versioned_key_value;
use super::write::{unexpected, write};
use super::AppState;
use crate::server::{KvServer, WriteResult};
use crate::store::txn::{Compare, CompareOp, CompareTarget, Txn, TxnOp, TxnOpOutcome};
use crate::store::{Operation, Outcome, RangeEnd, VersionedValue, LEASE_ID_MAX};

/// Keys a scan of a transaction returns unless it says otherwise.
const TXN_SCAN_LIMIT_DEFAULT: usize = 1000;
/// Most keys a scan of a transaction may ask for.
const TXN_SCAN_LIMIT_MAX: usize = crate::store::txn::TXN_SCAN_LIMIT_MAX;

fn decode_base64(text: &str, what: &str) -> Result<Bytes, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(Bytes::from)
        .map_err(|error| ApiError::bad_request(format!("{what} is not standard base64: {error}")))
}

fn check_prefix(prefix: &str, server: &KvServer) -> Result<(), ApiError> {
    check_key_bytes("prefix", prefix, server.config().key_bytes_max)
}

fn compare_of(compare: api::Compare, server: &KvServer) -> Result<Compare, ApiError> {
    check_key(&compare.key, server)?;
    let op = match compare.op {
        api::CompareOp::Equal => CompareOp::Equal,
        api::CompareOp::NotEqual => CompareOp::NotEqual,
        api::CompareOp::Less => CompareOp::Less,
        api::CompareOp::Greater => CompareOp::Greater,
    };
    let target = match compare.target {
        api::CompareTarget::Value(value) => {
            check_value(value.as_bytes(), server)?;
            CompareTarget::Value(Bytes::from(value))
        }
        api::CompareTarget::ValueBase64(text) => {
            let value = decode_base64(&text, "a comparison's value_base64")?;
            check_value(&value, server)?;
            CompareTarget::Value(value)
        }
        api::CompareTarget::Version(version) => CompareTarget::Version(version),
        api::CompareTarget::CreateRevision(revision) => CompareTarget::CreateRevision(revision),
        api::CompareTarget::ModRevision(revision) => CompareTarget::ModRevision(revision),
        api::CompareTarget::Exists(exists) => CompareTarget::Exists(exists),
        // 0 compares with "no lease" (a key without one, or a missing key).
        api::CompareTarget::Lease(lease) => CompareTarget::Lease(lease),
    };
    Ok(Compare {
        key: compare.key,
        range_end: RangeEnd::Single,
        op,
        target,
    })
}

fn operation_of(op: api::TxnOp, server: &KvServer) -> Result<TxnOp, ApiError> {
    Ok(match op {
        api::TxnOp::Put {
            key,
            value,
            value_base64,
            lease,
        } => {
            check_key(&key, server)?;
            // Ids above the largest were answered already (`invalid_lease`); 0 is no lease.
            let lease = lease.unwrap_or(0);
            let value = match (value, value_base64) {
                (Some(text), None) => Bytes::from(text),
                (None, Some(text)) => decode_base64(&text, "a put's value_base64")?,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "the put of `{key}` needs exactly one of value and value_base64"
                    )))
                }
            };
            check_value(&value, server)?;
            TxnOp::Put { key, value, lease }
        }
        api::TxnOp::Delete { key } => {
            check_key(&key, server)?;
            TxnOp::Delete { key }
        }
        api::TxnOp::DeletePrefix { prefix } => {
            check_prefix(&prefix, server)?;
            TxnOp::DeletePrefix { prefix }
        }
        api::TxnOp::Get { key } => {
            check_key(&key, server)?;
            TxnOp::Get { key }
        }
        api::TxnOp::Scan { prefix, limit } => {
            check_prefix(&prefix, server)?;
            let limit = limit.unwrap_or(TXN_SCAN_LIMIT_DEFAULT);
            if limit == 0 || limit > TXN_SCAN_LIMIT_MAX {
                return Err(ApiError::bad_request(format!(
                    "a scan's limit must be between 1 and {TXN_SCAN_LIMIT_MAX}"
                )));
            }
            TxnOp::Scan { prefix, limit }
        }
    })
}

/// The answer to a put of `request` naming a lease id no lease can have (above i64::MAX),
/// if one does: 400 with a LeaseErrorResponse.
fn invalid_lease(request: &TxnRequest) -> Option<Response> {
    request
        .success
        .iter()
        .chain(&request.failure)
        .find_map(|op| match op {
            api::TxnOp::Put {
                lease: Some(id), ..
            } if *id > LEASE_ID_MAX => check_lease_id(*id).err().map(|error| lease_refusal(&error)),
            _ => None,
        })
}

/// The store's transaction for `request`, checked as the store will check it.
fn txn_of(request: TxnRequest, server: &KvServer) -> Result<Txn, ApiError> {
    let branch = |ops: Vec<api::TxnOp>| {
        ops.into_iter()
            .map(|op| operation_of(op, server))
            .collect::<Result<Vec<_>, _>>()
    };
    let txn = Txn {
        compare: request
            .compare
            .into_iter()
            .map(|compare| compare_of(compare, server))
            .collect::<Result<_, _>>()?,
        success: branch(request.success)?,
        failure: branch(request.failure)?,
    };
    txn.validate()
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    Ok(txn)
}

/// The key an operation is about, to name it in its result (this API builds none of etcd's
/// range operations or nested transactions; their start key stands in).
fn key_of(op: &TxnOp) -> &str {
    match op {
        TxnOp::Put { key, .. }
        | TxnOp::PutKeeping { key, .. }
        | TxnOp::Delete { key }
        | TxnOp::Get { key } => key,
        TxnOp::DeletePrefix { prefix } | TxnOp::Scan { prefix, .. } => prefix,
        TxnOp::DeleteRange { range, .. } => &range.start,
        TxnOp::Range(query) => &query.range.start,
        TxnOp::Txn(_) => "",
    }
}

fn existing(value: Option<&VersionedValue>) -> Option<&VersionedValue> {
    value.filter(|value| value.exists())
}

/// Each operation's result as JSON; `ops` is the branch that ran, in order. The store gives
/// one outcome per operation of that branch; a different count means the outcome is a
/// session's cached answer to another request sent under the same `request-seq`.
fn results_of(ops: &[TxnOp], outcomes: Vec<TxnOpOutcome>) -> Option<Vec<TxnOpResult>> {
    if ops.len() != outcomes.len() {
        return None;
    }
    ops.iter()
        .zip(outcomes)
        .map(|(op, outcome)| {
            let key = key_of(op);
            Some(match outcome {
                TxnOpOutcome::Put { prev } => TxnOpResult::Put {
                    prev: existing(prev.as_ref()).map(|prev| versioned_key_value(key, prev)),
                },
                TxnOpOutcome::Delete { deleted } => TxnOpResult::Delete { deleted },
                TxnOpOutcome::Get { value } => TxnOpResult::Get {
                    kv: existing(value.as_ref()).map(|value| versioned_key_value(key, value)),
                },
                TxnOpOutcome::Scan { items, truncated } => TxnOpResult::Scan {
                    items: items
                        .iter()
                        .map(|(key, value)| versioned_key_value(key, value))
                        .collect(),
                    truncated,
                },
                // Outcomes of etcd's operations, which this API never sends: a cached answer
                // to another request under the same sequence.
                TxnOpOutcome::DeleteRange { .. }
                | TxnOpOutcome::Range(_)
                | TxnOpOutcome::Txn { .. } => return None,
            })
        })
        .collect()
}

pub(super) async fn txn(State(state): State<AppState>, original: Original) -> Response {
    let request: TxnRequest = match serde_json::from_slice(&original.body) {
        Ok(request) => request,
        Err(error) => {
            return ApiError::bad_request(format!(
                "the body must be a JSON transaction {{\"compare\": [...], \"success\": [...], \
                 \"failure\": [...]}}: {error}"
            ))
            .into_response()
        }
    };
    if let Some(refused) = invalid_lease(&request) {
        return refused;
    }
    let txn = match txn_of(request, &state.server) {
        Ok(txn) => txn,
        Err(error) => return error.into_response(),
    };
    let (success, failure) = (txn.success.clone(), txn.failure.clone());
    let answer = match write(&state, original, Operation::Txn(txn)).await {
        Ok(WriteResult {
            outcome: Outcome::Txn { succeeded, results },
            index,
            term,
            revision,
        }) => {
            let ran = if succeeded { &success } else { &failure };
            match results_of(ran, results.clone()) {
                Some(results) => Json(TxnResponse {
                    succeeded,
                    results,
                    revision,
                    index,
                    term,
                })
                .into_response(),
                None => unexpected(Outcome::Txn { succeeded, results }),
            }
        }
        Ok(WriteResult {
            outcome: Outcome::TxnRefused { error },
            ..
        }) => ApiError::bad_request(error.to_string()).into_response(),
        // The branch that ran puts with a lease that does not exist: nothing ran.
        Ok(WriteResult {
            outcome: Outcome::LeaseRefused { error },
            ..
        }) => lease_refusal(&error),
        Ok(result) => unexpected(result.outcome),
        Err(response) => response,
    };
    state.naming_leader(answer)
}
