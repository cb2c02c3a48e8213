//! The Cluster service of the etcd v3 API.

use raftkv_etcd_api::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::unimplemented;
use super::EtcdApi;

#[tonic::async_trait]
impl cluster_server::Cluster for EtcdApi {
    async fn member_add(
        &self,
        _request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(unimplemented("Cluster.member_add", "not yet"))
    }

    async fn member_remove(
        &self,
        _request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(unimplemented("Cluster.member_remove", "not yet"))
    }

    async fn member_update(
        &self,
        _request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(unimplemented("Cluster.member_update", "not yet"))
    }

    async fn member_list(
        &self,
        _request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Err(unimplemented("Cluster.member_list", "not yet"))
    }

    async fn member_promote(
        &self,
        _request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(unimplemented("Cluster.member_promote", "not yet"))
    }
}
