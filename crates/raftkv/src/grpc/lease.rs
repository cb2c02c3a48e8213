//! The Lease service of the etcd v3 API.

use raftkv_etcd_api::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::unimplemented;
use super::EtcdApi;

#[tonic::async_trait]
impl lease_server::Lease for EtcdApi {
    type LeaseKeepAliveStream = std::pin::Pin<
        Box<
            dyn tonic::codegen::tokio_stream::Stream<Item = Result<LeaseKeepAliveResponse, Status>>
                + Send
                + 'static,
        >,
    >;

    async fn lease_grant(
        &self,
        _request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        Err(unimplemented("Lease.lease_grant", "not yet"))
    }

    async fn lease_revoke(
        &self,
        _request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        Err(unimplemented("Lease.lease_revoke", "not yet"))
    }

    async fn lease_keep_alive(
        &self,
        _request: Request<tonic::Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        Err(unimplemented("Lease.lease_keep_alive", "not yet"))
    }

    async fn lease_time_to_live(
        &self,
        _request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        Err(unimplemented("Lease.lease_time_to_live", "not yet"))
    }

    async fn lease_leases(
        &self,
        _request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        Err(unimplemented("Lease.lease_leases", "not yet"))
    }
}
