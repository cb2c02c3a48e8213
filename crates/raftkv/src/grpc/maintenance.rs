//! The Maintenance service of the etcd v3 API: what `etcdctl endpoint status`, `endpoint
//! health` and `move-leader` need.
//!
//! ```text
//!  Status      this node's figures: version, data size, leader, commit/applied index, term
//!  Alarm       GET: no alarms (raftkv raises none); ACTIVATE / DEACTIVATE: Unimplemented
//!  MoveLeader  on the leader (forwarded there): leadership transfer, answered once the
//!              target leads (thesis §3.10)
//!  Defragment, Hash, HashKV, Snapshot, Downgrade: Unimplemented, saying why
//! ```

use std::time::Duration;

use raft_core::NodeId;
use raftkv_etcd_api::etcdserverpb::*;
use raftkv_etcd_api::maintenance_client::MaintenanceClient;
use tonic::{Request, Response, Status};

use super::error::{self, serve_status, unimplemented};
use super::EtcdApi;

/// The etcd version raftkv answers in `Status`. Clients read it to decide which calls the
/// server knows: the API served here (the fields of our `.proto` files, `isLearner`,
/// `dbSizeInUse`, learners, `MemberPromote`, `MemberList.linearizable`) is etcd 3.5's, and
/// etcdctl 3.4 and 3.5 both accept a 3.5 server.
pub const ETCD_VERSION: &str = "3.5.0";

#[tonic::async_trait]
impl maintenance_server::Maintenance for EtcdApi {
    type SnapshotStream = std::pin::Pin<
        Box<
            dyn tonic::codegen::tokio_stream::Stream<Item = Result<SnapshotResponse, Status>>
                + Send
                + 'static,
        >,
    >;

    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        match request.get_ref().action() {
            // raftkv has no space quota and checks its data at start: it raises no alarm, so
            // a list of alarms is always empty (etcdctl 3.5's health check reads it).
            alarm_request::AlarmAction::Get => Ok(Response::new(AlarmResponse {
                header: Some(self.header()),
                alarms: Vec::new(),
            })),
            alarm_request::AlarmAction::Activate | alarm_request::AlarmAction::Deactivate => {
                Err(unimplemented(
                    "raising or clearing an alarm",
                    "raftkv raises no alarms (it has no space quota), so there is none to set \
                     or disarm",
                ))
            }
        }
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let server = self.server();
        let status = server
            .node()
            .status()
            .await
            .map_err(|error| serve_status(&error.into()))?;
        let (revision, applied_index, data_bytes) = {
            let state = server.state();
            (
                state.revision(),
                state.applied_index(),
                state.data_bytes().saturating_add(state.history_bytes()),
            )
        };
        let size = i64::try_from(data_bytes).unwrap_or(i64::MAX);
        let own = server.config().id;
        let mut header = self.header_at(revision);
        header.raft_term = status.term.0;
        Ok(Response::new(StatusResponse {
            header: Some(header),
            version: ETCD_VERSION.to_string(),
            // The store lives in memory: what it holds is what it uses (no free pages).
            db_size: size,
            db_size_in_use: size,
            leader: status.leader.map_or(0, |leader| leader.0),
            raft_index: status.commit.0,
            raft_term: status.term.0,
            raft_applied_index: applied_index,
            errors: Vec::new(),
            is_learner: status.configuration.learners.contains(&own),
        }))
    }

    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(unimplemented(
            "Defragment",
            "raftkv keeps its store in memory and compacts its log with snapshots; there is no \
             database file to defragment",
        ))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(unimplemented(
            "Hash",
            "it hashes etcd's database file, which raftkv does not have",
        ))
    }

    async fn hash_kv(
        &self,
        _request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        Err(unimplemented(
            "HashKV",
            "raftkv has no hash of its key-value history yet; compare members with \
             `etcdctl get --prefix ''` at one revision",
        ))
    }

    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(unimplemented(
            "Snapshot",
            "it streams etcd's bbolt database file, a format raftkv does not write; raftkv's \
             own snapshots are in each node's data directory",
        ))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        if let Some(channel) = self.leader_channel(&request).await? {
            let answer = MaintenanceClient::new(channel)
                .move_leader(self.forwarded(request))
                .await;
            return self.relay(answer);
        }
        let target = NodeId(request.get_ref().target_id);
        let server = self.server();
        let voter = server
            .node()
            .status()
            .await
            .map_err(|error| serve_status(&error.into()))?
            .configuration
            .voters
            .contains(&target);
        // etcd refuses a transfer to a member that is not one, or is a learner.
        if !voter {
            return Err(error::BAD_LEADER_TRANSFEREE.status());
        }
        if target != server.config().id {
            server
                .transfer_leadership(target)
                .await
                .map_err(|error| serve_status(&error))?;
            // etcd answers once the target leads; the core abandons a transfer after an
            // election timeout, so the request timeout bounds the wait.
            let deadline = tokio::time::Instant::now() + server.config().request_timeout;
            while server.node().metrics().leader != Some(target) {
                if tokio::time::Instant::now() >= deadline {
                    return Err(error::TIMEOUT_LEADER_TRANSFER.status());
                }
                tokio::time::sleep(server.config().tick.min(Duration::from_millis(50))).await;
            }
        }
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.header()),
        }))
    }

    async fn downgrade(
        &self,
        _request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(unimplemented(
            "Downgrade",
            "it changes etcd's cluster version; raftkv's releases read older logs and \
             snapshots by themselves",
        ))
    }
}
