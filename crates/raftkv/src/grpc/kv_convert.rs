//! The KV service's translation: etcd's requests into the store's range queries and
//! transactions (checked as etcd checks them, with etcd's statuses), and the store's answers
//! into etcd's responses.
//!
//! ```text
//!  RangeRequest ──► RangeQuery            PutRequest ─────► TxnOp::Put / PutKeeping
//!  DeleteRangeRequest ──► TxnOp::DeleteRange      TxnRequest ──► Txn (nested: TxnOp::Txn)
//!  RangeResult ──► RangeResponse          TxnOpOutcome + the request's op ──► ResponseOp
//! ```
//!
//! The checks and their order are etcd's (`etcdserver/api/v3rpc/key.go`): a level's
//! comparison and branch counts, then each comparison's key, then each operation (an empty key,
//! a put's `ignore_value` with a value or `ignore_lease` with a lease, a range's sort options),
//! then the duplicate keys of the whole transaction ([`Txn::validate`]). raftkv adds its own:
//! keys are UTF-8 (`InvalidArgument`, a `raftkv:` message), and a key or a value longer than
//! the node's limits is `REQUEST_TOO_LARGE`.

use bytes::Bytes;
use raftkv_etcd_api::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare as EtcdCompare, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use raftkv_etcd_api::mvccpb::KeyValue;
use tonic::Status;

use super::error::{
    revision_status, DUPLICATE_KEY, EMPTY_KEY, INVALID_SORT_OPTION, KEY_NOT_FOUND, LEASE_NOT_FOUND,
    LEASE_PROVIDED, REQUEST_TOO_LARGE, TOO_MANY_OPS, VALUE_PROVIDED,
};
use crate::store::{
    Compare, CompareOp, CompareTarget, KeyRange, KeyRangeError, LeaseError, Outcome, RangeQuery,
    RangeResult, SortOrder, SortTarget, Txn, TxnError, TxnOp, TxnOpOutcome, VersionedValue,
    TXN_OPERATIONS_MAX,
};

/// The node's size limits a request is checked against.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// The longest key (and range end), in bytes.
    pub(super) key_bytes_max: usize,
    /// The longest value, in bytes.
    pub(super) value_bytes_max: usize,
}

fn not_utf8() -> Status {
    Status::invalid_argument(KeyRangeError::KeyNotUtf8.to_string())
}

/// `key` as the store's key: not empty (`EMPTY_KEY`), within the limit, UTF-8.
fn key_of(key: &Bytes, limits: Limits) -> Result<String, Status> {
    if key.is_empty() {
        return Err(EMPTY_KEY.status());
    }
    if key.len() > limits.key_bytes_max {
        return Err(REQUEST_TOO_LARGE.status());
    }
    std::str::from_utf8(key)
        .map(str::to_owned)
        .map_err(|_| not_utf8())
}

/// The range etcd's `key` and `range_end` name; the key must not be empty.
fn range_of(key: &Bytes, range_end: &Bytes, limits: Limits) -> Result<KeyRange, Status> {
    if key.is_empty() {
        return Err(EMPTY_KEY.status());
    }
    if key.len() > limits.key_bytes_max || range_end.len() > limits.key_bytes_max {
        return Err(REQUEST_TOO_LARGE.status());
    }
    KeyRange::from_etcd(key, range_end).map_err(|_| not_utf8())
}

/// A revision or a bound of etcd's (`int64`) as the store's: 0 and below mean none (etcd reads
/// a revision at or below 0 as the current one).
fn revision_of(revision: i64) -> u64 {
    u64::try_from(revision).unwrap_or(0)
}

/// A lease id of etcd's as the store's. A negative id names no lease that can exist, so the
/// store answers it as the lease not found, as etcd does.
fn lease_of(lease: i64) -> u64 {
    u64::try_from(lease).unwrap_or(u64::MAX)
}

/// The store's query for `request`.
pub(super) fn range_query(request: &RangeRequest, limits: Limits) -> Result<RangeQuery, Status> {
    let range = range_of(&request.key, &request.range_end, limits)?;
    let sort_order = match range_request::SortOrder::try_from(request.sort_order) {
        Ok(range_request::SortOrder::None) => SortOrder::None,
        Ok(range_request::SortOrder::Ascend) => SortOrder::Ascend,
        Ok(range_request::SortOrder::Descend) => SortOrder::Descend,
        Err(_) => return Err(INVALID_SORT_OPTION.status()),
    };
    let sort_target = match range_request::SortTarget::try_from(request.sort_target) {
        Ok(range_request::SortTarget::Key) => SortTarget::Key,
        Ok(range_request::SortTarget::Version) => SortTarget::Version,
        Ok(range_request::SortTarget::Create) => SortTarget::Create,
        Ok(range_request::SortTarget::Mod) => SortTarget::Mod,
        Ok(range_request::SortTarget::Value) => SortTarget::Value,
        Err(_) => return Err(INVALID_SORT_OPTION.status()),
    };
    Ok(RangeQuery {
        range,
        revision: revision_of(request.revision),
        // etcd reads a limit at or below 0 as none.
        limit: u64::try_from(request.limit).unwrap_or(0),
        sort_order,
        sort_target,
        keys_only: request.keys_only,
        count_only: request.count_only,
        min_mod_revision: revision_of(request.min_mod_revision),
        max_mod_revision: revision_of(request.max_mod_revision),
        min_create_revision: revision_of(request.min_create_revision),
        max_create_revision: revision_of(request.max_create_revision),
    })
}

/// The store's operation for `put`.
pub(super) fn put_op(put: &PutRequest, limits: Limits) -> Result<TxnOp, Status> {
    let key = key_of(&put.key, limits)?;
    if put.ignore_value && !put.value.is_empty() {
        return Err(VALUE_PROVIDED.status());
    }
    if put.ignore_lease && put.lease != 0 {
        return Err(LEASE_PROVIDED.status());
    }
    if put.value.len() > limits.value_bytes_max {
        return Err(REQUEST_TOO_LARGE.status());
    }
    let lease = lease_of(put.lease);
    Ok(if put.ignore_value || put.ignore_lease {
        TxnOp::PutKeeping {
            key,
            value: (!put.ignore_value).then(|| put.value.clone()),
            lease: (!put.ignore_lease).then_some(lease),
        }
    } else {
        TxnOp::Put {
            key,
            value: put.value.clone(),
            lease,
        }
    })
}

/// The store's operation for `delete`.
pub(super) fn delete_op(delete: &DeleteRangeRequest, limits: Limits) -> Result<TxnOp, Status> {
    Ok(TxnOp::DeleteRange {
        range: range_of(&delete.key, &delete.range_end, limits)?,
        prev_kv: delete.prev_kv,
    })
}

/// The store's transaction for `request`, checked as etcd checks it.
pub(super) fn txn_of(request: &TxnRequest, limits: Limits) -> Result<Txn, Status> {
    let txn = txn_within(request, limits, TXN_OPERATIONS_MAX)?;
    txn.validate().map_err(|error| txn_status(&error))?;
    Ok(txn)
}

/// [`txn_of`] of a transaction that may hold `operations_max` operations per branch (less
/// than the bound when nested: the parent's count is taken off, as in etcd).
fn txn_within(request: &TxnRequest, limits: Limits, operations_max: usize) -> Result<Txn, Status> {
    let longest = request
        .compare
        .len()
        .max(request.success.len())
        .max(request.failure.len());
    if longest > operations_max {
        return Err(TOO_MANY_OPS.status());
    }
    let compare = request
        .compare
        .iter()
        .map(|compare| compare_of(compare, limits))
        .collect::<Result<_, _>>()?;
    let left = operations_max - longest;
    let branch = |ops: &[RequestOp]| {
        ops.iter()
            .map(|op| op_of(op, limits, left))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Txn {
        compare,
        success: branch(&request.success)?,
        failure: branch(&request.failure)?,
    })
}

fn op_of(op: &RequestOp, limits: Limits, operations_max: usize) -> Result<TxnOp, Status> {
    match &op.request {
        Some(request_op::Request::RequestRange(range)) => {
            Ok(TxnOp::Range(range_query(range, limits)?))
        }
        Some(request_op::Request::RequestPut(put)) => put_op(put, limits),
        Some(request_op::Request::RequestDeleteRange(delete)) => delete_op(delete, limits),
        Some(request_op::Request::RequestTxn(txn)) => {
            Ok(TxnOp::Txn(txn_within(txn, limits, operations_max)?))
        }
        None => Err(Status::invalid_argument(
            "raftkv: a transaction's operation names no request",
        )),
    }
}

fn compare_of(compare: &EtcdCompare, limits: Limits) -> Result<Compare, Status> {
    let range = if compare.range_end.is_empty() {
        KeyRange::single(key_of(&compare.key, limits)?)
    } else {
        range_of(&compare.key, &compare.range_end, limits)?
    };
    let op = match compare::CompareResult::try_from(compare.result) {
        Ok(compare::CompareResult::Equal) => CompareOp::Equal,
        Ok(compare::CompareResult::NotEqual) => CompareOp::NotEqual,
        Ok(compare::CompareResult::Less) => CompareOp::Less,
        Ok(compare::CompareResult::Greater) => CompareOp::Greater,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "raftkv: a comparison's result {} is none of etcd's",
                compare.result
            )))
        }
    };
    let target = compare::CompareTarget::try_from(compare.target).map_err(|_| {
        Status::invalid_argument(format!(
            "raftkv: a comparison's target {} is none of etcd's",
            compare.target
        ))
    })?;
    use compare::{CompareTarget as Target, TargetUnion as Union};
    // etcd reads the operand of the target named, and 0 (or the empty value) when the union
    // holds another one or none.
    let number = match (target, &compare.target_union) {
        (Target::Version, Some(Union::Version(number)))
        | (Target::Create, Some(Union::CreateRevision(number)))
        | (Target::Mod, Some(Union::ModRevision(number)))
        | (Target::Lease, Some(Union::Lease(number))) => *number,
        _ => 0,
    };
    let (op, target) = match target {
        Target::Value => {
            let value = match &compare.target_union {
                Some(Union::Value(value)) => value.clone(),
                _ => Bytes::new(),
            };
            if value.len() > limits.value_bytes_max {
                return Err(REQUEST_TOO_LARGE.status());
            }
            (op, CompareTarget::Value(value))
        }
        Target::Version => numeric(op, number, CompareTarget::Version),
        Target::Create => numeric(op, number, CompareTarget::CreateRevision),
        Target::Mod => numeric(op, number, CompareTarget::ModRevision),
        Target::Lease => numeric(op, number, CompareTarget::Lease),
    };
    Ok(Compare {
        key: range.start,
        range_end: range.end,
        op,
        target,
    })
}

/// A numeric comparison with etcd's signed operand. Every number the store keeps is at least
/// 0, so against a negative operand `>` and `!=` always hold and `=` and `<` never do; the
/// store's numbers are unsigned, so those become a comparison with the same constant answer
/// (no lease has the id `u64::MAX`).
fn numeric(
    op: CompareOp,
    operand: i64,
    target: fn(u64) -> CompareTarget,
) -> (CompareOp, CompareTarget) {
    match u64::try_from(operand) {
        Ok(operand) => (op, target(operand)),
        Err(_) => {
            let always = matches!(op, CompareOp::Greater | CompareOp::NotEqual);
            let op = if always {
                CompareOp::NotEqual
            } else {
                CompareOp::Equal
            };
            (op, CompareTarget::Lease(u64::MAX))
        }
    }
}

/// The status of a transaction the store refused (before it ran, or on the chosen path).
pub(super) fn txn_status(error: &TxnError) -> Status {
    match error {
        TxnError::TooManyCompares { .. } | TxnError::TooManyOperations { .. } => {
            TOO_MANY_OPS.status()
        }
        TxnError::KeyChangedTwice { .. } => DUPLICATE_KEY.status(),
        TxnError::KeyNotFound { .. } => KEY_NOT_FOUND.status(),
        TxnError::Revision(error) => revision_status(error),
        // Neither comes from etcd's API (no empty delete_prefix, no exists comparison).
        TxnError::EmptyDeletePrefix | TxnError::ExistsOrdered { .. } => {
            Status::invalid_argument(format!("raftkv: {error}"))
        }
    }
}

/// The transaction's answer from a write's outcome: whether it succeeded and each op's result,
/// or the status of its refusal.
pub(super) fn txn_outcome(outcome: Outcome) -> Result<(bool, Vec<TxnOpOutcome>), Status> {
    match outcome {
        Outcome::Txn { succeeded, results } => Ok((succeeded, results)),
        Outcome::TxnRefused { error } => Err(txn_status(&error)),
        Outcome::LeaseRefused {
            error: LeaseError::NotFound { .. } | LeaseError::InvalidId { .. },
        } => Err(LEASE_NOT_FOUND.status()),
        other => Err(unexpected(&other)),
    }
}

/// An outcome the store never gives the request asked: a bug, said as such.
pub(super) fn unexpected(outcome: &Outcome) -> Status {
    Status::internal(format!(
        "raftkv: the store answered with an unexpected outcome: {outcome:?}"
    ))
}

/// etcd's form of a key's version.
pub(super) fn key_value(key: Bytes, version: VersionedValue) -> KeyValue {
    KeyValue {
        key,
        create_revision: signed(version.create_revision),
        mod_revision: signed(version.mod_revision),
        version: signed(version.version),
        value: version.value,
        lease: signed(version.lease),
    }
}

/// A revision, version or lease id as etcd's `int64` (the store's never exceed it).
pub(super) fn signed(number: u64) -> i64 {
    i64::try_from(number).unwrap_or(i64::MAX)
}

fn key_values(items: Vec<(String, VersionedValue)>) -> Vec<KeyValue> {
    items
        .into_iter()
        .map(|(key, version)| key_value(Bytes::from(key), version))
        .collect()
}

/// The answer to a range read.
pub(super) fn range_response(header: Option<ResponseHeader>, result: RangeResult) -> RangeResponse {
    RangeResponse {
        header,
        kvs: key_values(result.kvs),
        more: result.more,
        count: signed(result.count),
    }
}

/// The answer to a put.
pub(super) fn put_response(
    header: Option<ResponseHeader>,
    put: &PutRequest,
    prev: Option<VersionedValue>,
) -> PutResponse {
    PutResponse {
        header,
        prev_kv: prev
            .filter(|_| put.prev_kv)
            .map(|prev| key_value(put.key.clone(), prev)),
    }
}

/// The answer to a range delete.
pub(super) fn delete_response(
    header: Option<ResponseHeader>,
    deleted: u64,
    prev: Vec<(String, VersionedValue)>,
) -> DeleteRangeResponse {
    DeleteRangeResponse {
        header,
        deleted: signed(deleted),
        prev_kvs: key_values(prev),
    }
}

/// Each operation's response, for the branch `ops` that ran and the store's `outcomes` of it.
/// etcd gives each inner response a header holding only the transaction's revision, except a
/// nested transaction's, which it leaves empty.
pub(super) fn txn_responses(
    ops: &[RequestOp],
    outcomes: Vec<TxnOpOutcome>,
    revision: i64,
) -> Result<Vec<ResponseOp>, Status> {
    if ops.len() != outcomes.len() {
        return Err(Status::internal(
            "raftkv: the store answered a transaction with another count of results",
        ));
    }
    let inner_header = || {
        Some(ResponseHeader {
            revision,
            ..ResponseHeader::default()
        })
    };
    ops.iter()
        .zip(outcomes)
        .map(|(op, outcome)| {
            let response = match (&op.request, outcome) {
                (Some(request_op::Request::RequestPut(put)), TxnOpOutcome::Put { prev }) => {
                    response_op::Response::ResponsePut(put_response(inner_header(), put, prev))
                }
                (
                    Some(request_op::Request::RequestDeleteRange(_)),
                    TxnOpOutcome::DeleteRange { deleted, prev },
                ) => response_op::Response::ResponseDeleteRange(delete_response(
                    inner_header(),
                    deleted,
                    prev,
                )),
                (Some(request_op::Request::RequestRange(_)), TxnOpOutcome::Range(result)) => {
                    response_op::Response::ResponseRange(range_response(inner_header(), result))
                }
                (
                    Some(request_op::Request::RequestTxn(txn)),
                    TxnOpOutcome::Txn { succeeded, results },
                ) => {
                    let ran = if succeeded {
                        &txn.success
                    } else {
                        &txn.failure
                    };
                    response_op::Response::ResponseTxn(TxnResponse {
                        // etcd leaves a nested transaction's own header empty.
                        header: Some(ResponseHeader::default()),
                        succeeded,
                        responses: txn_responses(ran, results, revision)?,
                    })
                }
                (_, outcome) => {
                    return Err(Status::internal(format!(
                        "raftkv: the store answered an operation with another kind of result: \
                         {outcome:?}"
                    )))
                }
            };
            Ok(ResponseOp {
                response: Some(response),
            })
        })
        .collect()
}
