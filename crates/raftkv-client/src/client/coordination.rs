//! The coordination calls that are one request each: reads with revisions and at a past
//! revision, transactions, compaction (the watch, a stream, is `watch`).
//!
//! ```text
//!  get_versioned / scan_at ── GET, linearizable, ?revision=N ──┐
//!  txn ── POST /v1/txn, a write: session, one in flight ───────┼─▶ retry::execute ─▶ answer
//!  compact ── POST /v1/compact (idempotent: no session) ───────┘        │
//!      410 / 400 with a RevisionErrorResponse ─▶ ClientError::Compacted / FutureRevision
//! ```

use bytes::Bytes;
use hyper::{Method, StatusCode};

use super::answer::{decode, decode_success, Answer};
use super::endpoint::{encode, key_path};
use super::transport::Call;
use super::{Client, ClientError};
use crate::api::{
    CompactRequest, CompactResponse, KeyValueResponse, RevisionErrorResponse, ScanResponse,
    TxnRequest, TxnResponse,
};

impl Client {
    /// `key` with its value and revisions (`create_revision`, `mod_revision`, `version`), as
    /// of `revision` (`None`: now), a linearizable read. A key that does not exist at that
    /// revision is `Ok` with `kv: None`.
    ///
    /// A revision older than the cluster's compaction is [`ClientError::Compacted`], one past
    /// its current revision [`ClientError::FutureRevision`]; revisions start at 1, so `Some(0)`
    /// is refused before anything is sent.
    pub async fn get_versioned(
        &self,
        key: &str,
        revision: Option<u64>,
    ) -> Result<KeyValueResponse, ClientError> {
        let path = format!(
            "{}?format=json&consistency=linearizable{}",
            key_path(key)?,
            revision_query(revision)?
        );
        let answer = self.execute(&Call::empty(Method::GET, path)).await?;
        if answer.status.is_success() {
            return decode(&answer, "KeyValueResponse");
        }
        if answer.status == StatusCode::NOT_FOUND {
            // The contract's "no such key" carries a KeyValueResponse; a 404 with another body
            // (a node without the route) is an error.
            if let Ok(absent) = serde_json::from_slice::<KeyValueResponse>(&answer.body) {
                return Ok(absent);
            }
        }
        Err(revision_error(&answer, revision.unwrap_or(0)))
    }

    /// The keys starting with `prefix`, in key order, at most `limit` of them, as of
    /// `revision` (`None`: now): one consistent snapshot of the store, a linearizable read.
    /// Each key carries its revisions, and the answer the revision it read at. Errors as
    /// [`Client::get_versioned`].
    pub async fn scan_at(
        &self,
        prefix: &str,
        limit: usize,
        revision: Option<u64>,
    ) -> Result<ScanResponse, ClientError> {
        let path = format!(
            "/v1/kv?prefix={}&limit={limit}&consistency=linearizable{}",
            encode(prefix),
            revision_query(revision)?
        );
        let answer = self.execute(&Call::empty(Method::GET, path)).await?;
        if !answer.status.is_success() {
            return Err(revision_error(&answer, revision.unwrap_or(0)));
        }
        decode(&answer, "ScanResponse")
    }

    /// Runs a transaction: if every comparison of `request` holds, its `success` operations,
    /// else its `failure` ones, atomically at one revision. It is a write like
    /// [`Client::put`]: sent under this client's session, retried with the same sequence
    /// number, so it is applied exactly once, and serialized with the client's other writes.
    ///
    /// A transaction whose comparisons fail is `Ok` with `succeeded: false`. One the server
    /// refuses as it stands (a key changed twice in a branch, an empty prefix to delete) is
    /// [`ClientError::Server`] with status 400.
    pub async fn txn(&self, request: &TxnRequest) -> Result<TxnResponse, ClientError> {
        let body = serde_json::to_vec(request)
            .map_err(|error| ClientError::InvalidInput(format!("transaction body: {error}")))?;
        let call = Call::json(Method::POST, "/v1/txn".to_string(), Bytes::from(body));
        let answer = self.write(call).await?;
        if !answer.status.is_success() {
            return Err(revision_error(&answer, 0));
        }
        decode(&answer, "TxnResponse")
    }

    /// Forgets the history before `revision`: reads and watches at older revisions fail with
    /// [`ClientError::Compacted`] afterwards; `revision` itself stays readable. A revision at
    /// or below the present compaction is a no-op that answers the present one; one past the
    /// current revision is [`ClientError::FutureRevision`]. Being idempotent, it is retried
    /// without a session.
    pub async fn compact(&self, revision: u64) -> Result<CompactResponse, ClientError> {
        if revision == 0 {
            return Err(ClientError::InvalidInput(
                "revisions start at 1: compact needs a revision of 1 or more".to_string(),
            ));
        }
        let body = serde_json::to_vec(&CompactRequest { revision })
            .map_err(|error| ClientError::InvalidInput(format!("compact body: {error}")))?;
        let call = Call::json(Method::POST, "/v1/compact".to_string(), Bytes::from(body));
        let answer = self.execute(&call).await?;
        if !answer.status.is_success() {
            return Err(revision_error(&answer, revision));
        }
        decode_success(answer, "CompactResponse")
    }
}

/// `&revision=N` for a read at `revision`, nothing for a read of the present.
fn revision_query(revision: Option<u64>) -> Result<String, ClientError> {
    match revision {
        None => Ok(String::new()),
        Some(0) => Err(ClientError::InvalidInput(
            "revisions start at 1 (leave the revision out to read the current one)".to_string(),
        )),
        Some(revision) => Ok(format!("&revision={revision}")),
    }
}

/// A failed answer as an error: a 410 or 400 carrying a [`RevisionErrorResponse`] is
/// [`ClientError::Compacted`] or [`ClientError::FutureRevision`] (`requested` is the revision
/// the call asked for), anything else [`ClientError::Server`].
pub(super) fn revision_error(answer: &Answer, requested: u64) -> ClientError {
    assert!(
        !answer.status.is_success(),
        "only a failed answer is an error"
    );
    let revision_body = serde_json::from_slice::<RevisionErrorResponse>(&answer.body).ok();
    match (answer.status, revision_body) {
        (StatusCode::GONE, Some(body)) => ClientError::Compacted {
            requested,
            compact_revision: body.compact_revision,
            revision: body.revision,
        },
        (StatusCode::BAD_REQUEST, Some(body)) => ClientError::FutureRevision {
            requested,
            revision: body.revision,
            compact_revision: body.compact_revision,
        },
        // A transaction whose branch puts with a lease that does not exist.
        _ => super::lease::lease_error(answer, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::answer::tests::answer;

    #[test]
    fn revision_errors_are_typed_and_other_errors_stay_server_errors() {
        let gone = answer(
            410,
            br#"{"error":"compacted","compact_revision":40,"revision":90}"#,
        );
        assert!(matches!(
            revision_error(&gone, 12),
            ClientError::Compacted {
                requested: 12,
                compact_revision: 40,
                revision: 90
            }
        ));
        let future = answer(
            400,
            br#"{"error":"future","compact_revision":1,"revision":9}"#,
        );
        assert!(matches!(
            revision_error(&future, 30),
            ClientError::FutureRevision {
                requested: 30,
                revision: 9,
                compact_revision: 1
            }
        ));
        // A 400 with an ordinary error body (a bad key, a refused transaction) stays a
        // server error, and so does a 410 that is not the contract's.
        let bad = answer(400, br#"{"error":"key changed twice in one branch"}"#);
        assert!(matches!(
            revision_error(&bad, 0),
            ClientError::Server { status: 400, .. }
        ));
        assert!(matches!(
            revision_error(&answer(410, b"gone"), 3),
            ClientError::Server { status: 410, .. }
        ));
    }

    #[test]
    fn revision_zero_is_refused_and_none_reads_the_present() {
        assert_eq!(revision_query(None).ok(), Some(String::new()));
        assert_eq!(
            revision_query(Some(7)).ok(),
            Some("&revision=7".to_string())
        );
        assert!(matches!(
            revision_query(Some(0)),
            Err(ClientError::InvalidInput(_))
        ));
    }
}
