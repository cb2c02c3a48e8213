//! The Lease service of the etcd v3 API: a translation onto the node's lease calls
//! (`server/leases.rs`), with etcd's answers for etcd's conditions.
//!
//! ```text
//!  LeaseGrant ─┐ leader? ── no ─► the leader's Lease service (leader_channel), its answer
//!  LeaseRevoke ├─────────── yes ─► KvServer::lease_grant_operation / write LeaseRevoke
//!  LeaseTimeToLive ─┘               KvServer::lease_time_to_live (missing: TTL -1)
//!  LeaseKeepAlive (stream) ── leader? ── no ─► the whole stream relayed to the leader
//!                                  └─ yes ─► each request: KvServer::lease_keep_alive
//!                                            (missing: TTL 0); an error ends the stream
//!  LeaseLeases ─► a linearizable read barrier on this node ─► the store's lease ids
//! ```
//!
//! A relayed answer is the leader's, but for the header's `member_id`, which names the node
//! the client asked (the member it talks to, as etcd's proxying members answer).

use std::pin::Pin;

use raftkv_etcd_api::etcdserverpb::lease_client::LeaseClient;
use raftkv_etcd_api::etcdserverpb::*;
use tonic::codegen::tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use super::error::{serve_status, LEASE_EXIST, LEASE_NOT_FOUND, LEASE_TTL_TOO_LARGE};
use super::EtcdApi;
use crate::server::{LeaseGrantError, ReadMode};
use crate::store::{LeaseError, Operation, Outcome};

/// The answers of a keepalive stream.
type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send + 'static>>;

/// etcd's status for the store's refusal of a lease command.
fn lease_status(error: &LeaseError) -> Status {
    match error {
        LeaseError::NotFound { .. } => LEASE_NOT_FOUND.status(),
        LeaseError::AlreadyExists { .. } => LEASE_EXIST.status(),
        LeaseError::InvalidId { .. } => Status::invalid_argument(format!("raftkv: {error}")),
    }
}

/// The answer a write of a lease command got that is not the one expected: a refusal, or
/// (a bug) another outcome.
fn unexpected_outcome(outcome: Outcome) -> Status {
    match outcome {
        Outcome::LeaseRefused { error } => lease_status(&error),
        other => Status::internal(format!("raftkv: unexpected outcome {other:?}")),
    }
}

/// A lease id from a request as the store's (`None`: 0 or negative, which names no lease).
fn lease_id(id: i64) -> Option<u64> {
    u64::try_from(id).ok().filter(|id| *id > 0)
}

impl EtcdApi {
    /// A Lease client of the leader for `request` when another node leads (see
    /// [`EtcdApi::leader_channel`]); `None` when this one does.
    async fn lease_leader<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Option<LeaseClient<Channel>>, Status> {
        Ok(self.leader_channel(request).await?.map(|channel| {
            LeaseClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX)
        }))
    }

    /// The answers of this node, the promoted leader, to a keepalive stream: one per request,
    /// in order; the first error ends the stream (etcd's clients open a new one).
    fn keep_alive_here(&self, requests: Streaming<LeaseKeepAliveRequest>) -> KeepAliveStream {
        let api = self.clone();
        let answers = futures_util::stream::unfold(Some((api, requests)), |state| async move {
            let (api, mut requests) = state?;
            // A client that closed its side, or whose stream broke, is answered no more.
            let request = requests.next().await?.ok()?;
            let answer = api.keep_alive_once(request.id).await;
            let next = answer.is_ok().then_some((api, requests));
            Some((answer, next))
        });
        Box::pin(answers)
    }

    async fn keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse, Status> {
        let Some(lease) = lease_id(id) else {
            // No lease has this id: TTL 0, as for any missing lease.
            return Ok(LeaseKeepAliveResponse {
                header: Some(self.header()),
                id,
                ttl: 0,
            });
        };
        let (answers, revision) = self
            .server()
            .lease_keep_alive(&[lease])
            .await
            .map_err(|error| serve_status(&error))?;
        let ttl = answers
            .iter()
            .find(|(answered, _)| *answered == lease)
            .map_or(0, |(_, ttl)| *ttl);
        Ok(LeaseKeepAliveResponse {
            header: Some(self.header_at(revision)),
            id,
            ttl: i64::try_from(ttl).unwrap_or(i64::MAX),
        })
    }

    /// The keepalive stream relayed to the leader: the requests as they come, its answers
    /// with this node's member id.
    async fn keep_alive_relayed(
        &self,
        mut leader: LeaseClient<Channel>,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<KeepAliveStream, Status> {
        let forwarded = self.forwarded(request);
        let (mut metadata, extensions, requests) = forwarded.into_parts();
        // A keepalive stream lasts as long as the client keeps its lease: no deadline.
        metadata.remove("grpc-timeout");
        // The relayed stream ends when the client's does (or breaks).
        let outgoing = requests.map_while(Result::ok);
        let relayed = Request::from_parts(metadata, extensions, outgoing);
        let answers = leader.lease_keep_alive(relayed).await?.into_inner();
        let own = self.server().config().id.0;
        Ok(Box::pin(answers.map(move |answer| {
            answer.map(|mut answer| {
                if let Some(header) = answer.header.as_mut() {
                    header.member_id = own;
                }
                answer
            })
        })))
    }
}

#[tonic::async_trait]
impl lease_server::Lease for EtcdApi {
    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        // The node that proposes the grant picks its id, against its own store: the leader.
        if let Some(mut leader) = self.lease_leader(&request).await? {
            return self.relay(leader.lease_grant(self.forwarded(request)).await);
        }
        let request = request.into_inner();
        // A TTL of 0 or less is raised to the minimum, as any short one.
        let ttl_seconds = u64::try_from(request.ttl).unwrap_or(0);
        let id = match request.id {
            0 => None,
            id => Some(u64::try_from(id).unwrap_or(0)),
        };
        let operation = match self.server().lease_grant_operation(ttl_seconds, id) {
            Ok(operation) => operation,
            Err(LeaseGrantError::TtlTooLong { .. }) => return Err(LEASE_TTL_TOO_LARGE.status()),
            // NB: etcd takes a negative id; raftkv's ids are 1 ..= i64::MAX.
            Err(error @ LeaseGrantError::InvalidId { .. }) => {
                return Err(Status::invalid_argument(format!("raftkv: {error}")))
            }
        };
        let result = self
            .server()
            .write(None, operation)
            .await
            .map_err(|error| serve_status(&error))?;
        match result.outcome {
            Outcome::LeaseGranted { id, ttl_seconds } => Ok(Response::new(LeaseGrantResponse {
                header: Some(self.header_at(result.revision)),
                id: i64::try_from(id).unwrap_or(i64::MAX),
                ttl: i64::try_from(ttl_seconds).unwrap_or(i64::MAX),
                error: String::new(),
            })),
            other => Err(unexpected_outcome(other)),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let Some(id) = lease_id(request.get_ref().id) else {
            return Err(LEASE_NOT_FOUND.status());
        };
        if let Some(mut leader) = self.lease_leader(&request).await? {
            return self.relay(leader.lease_revoke(self.forwarded(request)).await);
        }
        let operation = Operation::LeaseRevoke { id, expired: false };
        let result = self
            .server()
            .write(None, operation)
            .await
            .map_err(|error| serve_status(&error))?;
        match result.outcome {
            Outcome::LeaseRevoked { .. } => Ok(Response::new(LeaseRevokeResponse {
                header: Some(self.header_at(result.revision)),
            })),
            other => Err(unexpected_outcome(other)),
        }
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let answers = match self.lease_leader(&request).await? {
            Some(leader) => self.keep_alive_relayed(leader, request).await?,
            None => self.keep_alive_here(request.into_inner()),
        };
        Ok(Response::new(answers))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let asked = request.get_ref().id;
        // etcd answers a lease it does not have with TTL -1 rather than an error.
        let missing = |api: &EtcdApi| LeaseTimeToLiveResponse {
            header: Some(api.header()),
            id: asked,
            ttl: -1,
            granted_ttl: 0,
            keys: Vec::new(),
        };
        let Some(id) = lease_id(asked) else {
            return Ok(Response::new(missing(self)));
        };
        if let Some(mut leader) = self.lease_leader(&request).await? {
            return self.relay(leader.lease_time_to_live(self.forwarded(request)).await);
        }
        let request = request.into_inner();
        let lease = self
            .server()
            .lease_time_to_live(id, request.keys)
            .await
            .map_err(|error| serve_status(&error))?;
        let Some(lease) = lease else {
            return Ok(Response::new(missing(self)));
        };
        Ok(Response::new(LeaseTimeToLiveResponse {
            header: Some(self.header_at(lease.revision)),
            id: asked,
            ttl: i64::try_from(lease.ttl_seconds).unwrap_or(i64::MAX),
            granted_ttl: i64::try_from(lease.granted_ttl_seconds).unwrap_or(i64::MAX),
            keys: lease
                .keys
                .unwrap_or_default()
                .into_iter()
                .map(bytes::Bytes::from)
                .collect(),
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let server = self.server();
        server
            .read_barrier(ReadMode::Linearizable)
            .await
            .map_err(|error| serve_status(&error))?;
        let (ids, revision) = {
            let store = server.state();
            (store.lease_ids(), store.revision())
        };
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.header_at(revision)),
            leases: ids
                .into_iter()
                .map(|id| LeaseStatus {
                    id: i64::try_from(id).unwrap_or(i64::MAX),
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_id_is_positive_and_refusals_are_etcds() {
        assert_eq!(lease_id(0), None);
        assert_eq!(lease_id(-7), None);
        assert_eq!(lease_id(7), Some(7));
        let not_found = lease_status(&LeaseError::NotFound { id: 7 });
        assert_eq!(not_found.code(), tonic::Code::NotFound);
        assert_eq!(not_found.message(), "etcdserver: requested lease not found");
        let exists = lease_status(&LeaseError::AlreadyExists { id: 7 });
        assert_eq!(exists.code(), tonic::Code::FailedPrecondition);
        assert_eq!(exists.message(), "etcdserver: lease already exists");
    }
}
