//! The KV service of the etcd v3 API.

use raftkv_etcd_api::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::unimplemented;
use super::EtcdApi;

#[tonic::async_trait]
impl kv_server::Kv for EtcdApi {
    async fn range(
        &self,
        _request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        Err(unimplemented("KV.range", "not yet"))
    }

    async fn put(&self, _request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        Err(unimplemented("KV.put", "not yet"))
    }

    async fn delete_range(
        &self,
        _request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        Err(unimplemented("KV.delete_range", "not yet"))
    }

    async fn txn(&self, _request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Err(unimplemented("KV.txn", "not yet"))
    }

    async fn compact(
        &self,
        _request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        Err(unimplemented("KV.compact", "not yet"))
    }
}
