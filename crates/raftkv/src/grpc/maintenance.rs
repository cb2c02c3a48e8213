//! The Maintenance service of the etcd v3 API.

use raftkv_etcd_api::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::unimplemented;
use super::EtcdApi;

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
        _request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        Err(unimplemented("Maintenance.alarm", "not yet"))
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Err(unimplemented("Maintenance.status", "not yet"))
    }

    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(unimplemented("Maintenance.defragment", "not yet"))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(unimplemented("Maintenance.hash", "not yet"))
    }

    async fn hash_kv(
        &self,
        _request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        Err(unimplemented("Maintenance.hash_kv", "not yet"))
    }

    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(unimplemented("Maintenance.snapshot", "not yet"))
    }

    async fn move_leader(
        &self,
        _request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(unimplemented("Maintenance.move_leader", "not yet"))
    }

    async fn downgrade(
        &self,
        _request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(unimplemented("Maintenance.downgrade", "not yet"))
    }
}
