//! The KV service of the etcd v3 API: a thin translation ([`super::kv_convert`]) onto the
//! store's range reads and transactions, which hold the semantics.
//!
//! ```text
//!  Range ─► checked ─► read barrier (linearizable; serializable: the local state as it is)
//!        ─► StateMachine::range ─► RangeResponse (header: the store's revision)   any node
//!  Put / DeleteRange / Txn ─► checked ─► one store transaction (Operation::Txn) through
//!        Raft from this node (a follower forwards the proposal to the leader over Raft)
//!        ─► applied here ─► Outcome::Txn ─► the response (header: the write's revision)
//!  Compact ─► this node leads? ── no ─► the same call on the leader (its checks read the
//!        leader's state) ─► Operation::Compact (applied when answered: `physical` holds)
//! ```
//!
//! A put and a range delete are transactions of one operation, so the rules of leases,
//! `ignore_value` / `ignore_lease` and `prev_kv` live in one place, the store's transaction.
//! A write a follower forwards over Raft is answered by that follower once it applied the
//! entry, so a read there right after sees it (as etcd's followers do). A compaction forwarded
//! to the leader comes back as the leader answered it, with this node's member id in the
//! header.

use raftkv_etcd_api::etcdserverpb::*;
use raftkv_etcd_api::kv_client::KvClient;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::error::{revision_status, serve_status, COMPACTED, FUTURE_REV, NOT_LEADER};
use super::kv_convert::{
    delete_op, delete_response, put_op, put_response, range_query, range_response, signed, txn_of,
    txn_outcome, txn_responses, unexpected, Limits,
};
use super::{EtcdApi, GRPC_RECEIVE_BYTES_MAX};
use crate::server::{ReadMode, Route, ServeError};
use crate::store::{Operation, Outcome, Txn, TxnOp, TxnOpOutcome};

impl EtcdApi {
    fn limits(&self) -> Limits {
        let config = self.server().config();
        Limits {
            key_bytes_max: config.key_bytes_max,
            value_bytes_max: config.value_bytes_max,
        }
    }

    /// A client of the leader's KV service for `request`, when this node does not lead.
    async fn leader_kv<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Option<KvClient<Channel>>, Status> {
        Ok(self.leader_channel(request).await?.map(|channel| {
            // The leader's answer was bounded when it was made.
            KvClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(GRPC_RECEIVE_BYTES_MAX)
        }))
    }

    /// Runs `txn` through Raft from this node (a follower forwards the proposal to the leader
    /// over Raft, and answers once it applied it): whether its comparisons held, each
    /// operation's result and the revision after it.
    async fn write_txn(&self, txn: Txn) -> Result<(bool, Vec<TxnOpOutcome>, u64), Refusal> {
        let result = match self
            .server()
            .write_on(Route::AnyNode, None, Operation::Txn(txn))
            .await
        {
            Ok(result) => result,
            Err(ServeError::NotLeader { .. }) => return Err(Refusal::NotLeader),
            Err(error) => return Err(Refusal::Status(serve_status(&error))),
        };
        let (succeeded, results) = txn_outcome(result.outcome)?;
        Ok((succeeded, results, result.revision))
    }

    /// Runs the one operation `op` as a transaction; its result and the revision after it.
    async fn write_one(&self, op: TxnOp) -> Result<(TxnOpOutcome, u64), Refusal> {
        let txn = Txn {
            compare: Vec::new(),
            success: vec![op],
            failure: Vec::new(),
        };
        let (_, results, revision) = self.write_txn(txn).await?;
        let mut results = results.into_iter();
        match (results.next(), results.next()) {
            (Some(outcome), None) => Ok((outcome, revision)),
            _ => Err(Refusal::Status(Status::internal(
                "raftkv: the store answered one operation with another count of results",
            ))),
        }
    }
}

/// The result of `$written` (a [`Refusal`] result), or a return from the calling method with
/// its refusal, or, when the proposal met a node that no longer leads, with the answer of the
/// leader's gRPC API to the same call (`$call`, a method of [`KvClient`]) relayed.
macro_rules! written_or_relayed {
    ($api:expr, $request:ident, $written:expr, $call:ident) => {
        match $written {
            Ok(written) => written,
            Err(Refusal::Status(status)) => return Err(status),
            Err(Refusal::NotLeader) => {
                let mut leader = $api
                    .leader_kv(&$request)
                    .await?
                    .ok_or_else(|| NOT_LEADER.status())?;
                return $api.relay(leader.$call($api.forwarded($request)).await);
            }
        }
    };
}

/// Why a write from this node did not run.
enum Refusal {
    /// The leader the proposal reached no longer leads (the proposal is in no log): the call
    /// goes to the leader's gRPC API instead, as before Raft forwarding.
    NotLeader,
    /// Answered with this status.
    Status(Status),
}

impl From<Status> for Refusal {
    fn from(status: Status) -> Refusal {
        Refusal::Status(status)
    }
}

#[tonic::async_trait]
impl kv_server::Kv for EtcdApi {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let request = request.into_inner();
        let query = range_query(&request, self.limits())?;
        let mode = if request.serializable {
            ReadMode::Stale
        } else {
            ReadMode::Linearizable
        };
        self.server()
            .read_barrier(mode)
            .await
            .map_err(|error| serve_status(&error))?;
        let (result, revision) = {
            let state = self.server().state();
            (state.range(&query), state.revision())
        };
        let result = result.map_err(|error| revision_status(&error))?;
        // etcd's header holds the store's revision, even for a read at an older one.
        Ok(Response::new(range_response(
            Some(self.header_at(revision)),
            result,
        )))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let op = put_op(request.get_ref(), self.limits())?;
        let written = written_or_relayed!(self, request, self.write_one(op).await, put);
        match written {
            (TxnOpOutcome::Put { prev }, revision) => Ok(Response::new(put_response(
                Some(self.header_at(revision)),
                request.get_ref(),
                prev,
            ))),
            (other, _) => Err(unexpected(&Outcome::Txn {
                succeeded: true,
                results: vec![other],
            })),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let op = delete_op(request.get_ref(), self.limits())?;
        let written = written_or_relayed!(self, request, self.write_one(op).await, delete_range);
        match written {
            (TxnOpOutcome::DeleteRange { deleted, prev }, revision) => Ok(Response::new(
                delete_response(Some(self.header_at(revision)), deleted, prev),
            )),
            (other, _) => Err(unexpected(&Outcome::Txn {
                succeeded: true,
                results: vec![other],
            })),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let txn = txn_of(request.get_ref(), self.limits())?;
        let (succeeded, results, revision) =
            written_or_relayed!(self, request, self.write_txn(txn).await, txn);
        let request = request.into_inner();
        let ran = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        let responses = txn_responses(ran, results, signed(revision))?;
        Ok(Response::new(TxnResponse {
            header: Some(self.header_at(revision)),
            succeeded,
            responses,
        }))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        if let Some(mut leader) = self.leader_kv(&request).await? {
            return self.relay(leader.compact(self.forwarded(request)).await);
        }
        let request = request.into_inner();
        let revision = u64::try_from(request.revision).unwrap_or(0);
        {
            // etcd refuses a compaction at or below the one in force. The store takes it as a
            // no-op, and cannot tell its first compaction (at 1) from none, so revision 1 is
            // let through before any compaction.
            let state = self.server().state();
            let compacted = state.compact_revision();
            if revision < compacted || (revision == compacted && compacted > 1) {
                return Err(COMPACTED.status());
            }
            if revision > state.revision() {
                return Err(FUTURE_REV.status());
            }
        }
        let result = self
            .server()
            .write(None, Operation::Compact { revision })
            .await
            .map_err(|error| serve_status(&error))?;
        match result.outcome {
            Outcome::Compacted { compact_revision } if compact_revision == revision => {
                Ok(Response::new(CompactionResponse {
                    header: Some(self.header_at(result.revision)),
                }))
            }
            // Another compaction got there first.
            Outcome::Compacted { .. } => Err(COMPACTED.status()),
            Outcome::CompactRefused { error } => Err(revision_status(&error)),
            other => Err(unexpected(&other)),
        }
    }
}
