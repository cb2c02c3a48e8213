//! The gRPC statuses raftkv answers, as etcd answers them.
//!
//! etcd's client libraries recognise an error by its code and its exact message (the Go client
//! maps the message back to a typed error, then decides whether to retry, to fail over to
//! another endpoint or to give up), so each refusal below carries etcd's code and message for
//! the same condition. Messages of raftkv's own conditions start with `raftkv:`.

use tonic::{Code, Status};

use crate::server::ServeError;
use crate::store::RevisionError;

/// An etcd error: the gRPC code and the message etcd's clients match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtcdError {
    /// The gRPC status code.
    pub code: Code,
    /// The message, exactly as etcd words it.
    pub message: &'static str,
}

impl EtcdError {
    const fn new(code: Code, message: &'static str) -> EtcdError {
        EtcdError { code, message }
    }

    /// The status to answer.
    pub fn status(self) -> Status {
        Status::new(self.code, self.message)
    }
}

impl From<EtcdError> for Status {
    fn from(error: EtcdError) -> Status {
        error.status()
    }
}

/// A request without a key.
pub const EMPTY_KEY: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: key is not provided");
/// A put with `ignore_value` or `ignore_lease` of a key that does not exist.
pub const KEY_NOT_FOUND: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: key not found");
/// A put with `ignore_value` that also gives a value.
pub const VALUE_PROVIDED: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: value is provided");
/// A put with `ignore_lease` that also gives a lease.
pub const LEASE_PROVIDED: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: lease is provided");
/// A transaction with more operations than allowed.
pub const TOO_MANY_OPS: EtcdError = EtcdError::new(
    Code::InvalidArgument,
    "etcdserver: too many operations in txn request",
);
/// A transaction that changes one key twice.
pub const DUPLICATE_KEY: EtcdError = EtcdError::new(
    Code::InvalidArgument,
    "etcdserver: duplicate key given in txn request",
);
/// A range with a sort order or target etcd does not define.
pub const INVALID_SORT_OPTION: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: invalid sort option");
/// A read, a watch or a compaction at a compacted revision.
pub const COMPACTED: EtcdError = EtcdError::new(
    Code::OutOfRange,
    "etcdserver: mvcc: required revision has been compacted",
);
/// A read or a compaction at a revision after the current one.
pub const FUTURE_REV: EtcdError = EtcdError::new(
    Code::OutOfRange,
    "etcdserver: mvcc: required revision is a future revision",
);
/// A lease that does not exist.
pub const LEASE_NOT_FOUND: EtcdError =
    EtcdError::new(Code::NotFound, "etcdserver: requested lease not found");
/// A grant of a lease id in use.
pub const LEASE_EXIST: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: lease already exists");
/// A grant with a time to live above the largest.
pub const LEASE_TTL_TOO_LARGE: EtcdError =
    EtcdError::new(Code::OutOfRange, "etcdserver: too large lease TTL");
/// A member id that does not exist.
pub const MEMBER_NOT_FOUND: EtcdError =
    EtcdError::new(Code::NotFound, "etcdserver: member not found");
/// A member added with a peer URL already in use.
pub const PEER_URL_EXIST: EtcdError = EtcdError::new(
    Code::FailedPrecondition,
    "etcdserver: Peer URLs already exists",
);
/// A member added with peer URLs that are not URLs.
pub const MEMBER_BAD_URLS: EtcdError = EtcdError::new(
    Code::InvalidArgument,
    "etcdserver: given member URLs are invalid",
);
/// A promotion of a member that is not a learner.
pub const MEMBER_NOT_LEARNER: EtcdError = EtcdError::new(
    Code::FailedPrecondition,
    "etcdserver: can only promote a learner member",
);
/// A promotion of a learner that has not caught up.
pub const LEARNER_NOT_READY: EtcdError = EtcdError::new(
    Code::FailedPrecondition,
    "etcdserver: can only promote a learner member which is in sync with leader",
);
/// A membership change that would leave too few started members.
pub const MEMBER_NOT_ENOUGH_STARTED: EtcdError = EtcdError::new(
    Code::FailedPrecondition,
    "etcdserver: re-configuration failed due to not enough started members",
);
/// A request larger than the server takes.
pub const REQUEST_TOO_LARGE: EtcdError =
    EtcdError::new(Code::InvalidArgument, "etcdserver: request is too large");
/// Too many requests queued.
pub const TOO_MANY_REQUESTS: EtcdError =
    EtcdError::new(Code::ResourceExhausted, "etcdserver: too many requests");
/// No leader is known.
pub const NO_LEADER: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: no leader");
/// This member is not the leader (for a call only the leader serves).
pub const NOT_LEADER: EtcdError =
    EtcdError::new(Code::FailedPrecondition, "etcdserver: not leader");
/// Leadership changed while the request was under way.
pub const LEADER_CHANGED: EtcdError =
    EtcdError::new(Code::Unavailable, "etcdserver: leader changed");
/// The server is stopping.
pub const STOPPED: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: server stopped");
/// The request was not answered within the request timeout.
pub const TIMEOUT: EtcdError = EtcdError::new(Code::Unavailable, "etcdserver: request timed out");
/// A write whose entry lost its place when leadership changed.
pub const TIMEOUT_DUE_TO_LEADER_FAIL: EtcdError = EtcdError::new(
    Code::Unavailable,
    "etcdserver: request timed out, possibly due to previous leader failure",
);
/// A leadership transfer to a member that cannot take it.
pub const BAD_LEADER_TRANSFEREE: EtcdError = EtcdError::new(
    Code::FailedPrecondition,
    "etcdserver: bad leader transferee",
);
/// A call without a valid token, to a node that requires one (`--auth-tokens`).
pub const INVALID_AUTH_TOKEN: EtcdError =
    EtcdError::new(Code::Unauthenticated, "etcdserver: invalid auth token");
/// A call whose token's role does not allow it.
pub const PERMISSION_DENIED: EtcdError =
    EtcdError::new(Code::PermissionDenied, "etcdserver: permission denied");
/// An `Authenticate` whose password is not a token of the node's.
pub const AUTH_FAILED: EtcdError = EtcdError::new(
    Code::InvalidArgument,
    "etcdserver: authentication failed, invalid user ID or password",
);
/// An `Authenticate` to a node that requires no tokens.
pub const AUTH_NOT_ENABLED: EtcdError = EtcdError::new(
    Code::FailedPrecondition,
    "etcdserver: authentication is not enabled",
);
/// A leadership transfer that did not finish within the request timeout.
pub const TIMEOUT_LEADER_TRANSFER: EtcdError = EtcdError::new(
    Code::Unavailable,
    "etcdserver: request timed out, leader transfer took too long",
);

/// The status of a request the service could not serve, as etcd answers the same condition.
pub fn serve_status(error: &ServeError) -> Status {
    let etcd = match error {
        ServeError::NotLeader { .. } => NOT_LEADER,
        ServeError::NoLeader => NO_LEADER,
        ServeError::TransferInProgress
        | ServeError::ReadNotConfirmed
        | ServeError::LessorNotPromoted => LEADER_CHANGED,
        ServeError::Busy => TOO_MANY_REQUESTS,
        ServeError::ApplyBehind { .. } | ServeError::TimedOut { .. } => TIMEOUT,
        ServeError::NotCommitted
        | ServeError::ReplacedBySnapshot
        | ServeError::ForwardUnanswered => TIMEOUT_DUE_TO_LEADER_FAIL,
        ServeError::TooLarge { .. } => REQUEST_TOO_LARGE,
        ServeError::NotVoter(_) => BAD_LEADER_TRANSFEREE,
        ServeError::Stopped(_) | ServeError::ApplyLoopEnded => STOPPED,
        ServeError::Membership(_) | ServeError::Node(_) => {
            let code = if error.is_transient() {
                Code::Unavailable
            } else {
                Code::FailedPrecondition
            };
            return Status::new(code, format!("raftkv: {error}"));
        }
    };
    etcd.status()
}

/// The status of a read or a watch at a revision the store cannot serve.
pub fn revision_status(error: &RevisionError) -> Status {
    match error {
        RevisionError::Compacted { .. } => COMPACTED.status(),
        RevisionError::Future { .. } => FUTURE_REV.status(),
    }
}

/// `Unimplemented`, saying what raftkv does not serve and why.
pub fn unimplemented(what: &str, why: &str) -> Status {
    Status::unimplemented(format!("raftkv: {what} is not supported: {why}"))
}
