//! The Watch service of the etcd v3 API.

use raftkv_etcd_api::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::unimplemented;
use super::EtcdApi;

#[tonic::async_trait]
impl watch_server::Watch for EtcdApi {
    type WatchStream = std::pin::Pin<
        Box<
            dyn tonic::codegen::tokio_stream::Stream<Item = Result<WatchResponse, Status>>
                + Send
                + 'static,
        >,
    >;

    async fn watch(
        &self,
        _request: Request<tonic::Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(unimplemented("Watch.watch", "not yet"))
    }
}
