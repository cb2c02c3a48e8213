//! The etcd v3 front end: etcd's gRPC API (KV, Watch, Lease, Cluster, Maintenance, Auth) on
//! `--grpc-addr`, a thin translation onto the same service calls as the HTTP API, so that
//! `etcdctl` and etcd's client libraries work against raftkv.
//!
//! ```text
//!  gRPC request ─► EtcdApi (one per node, shared by every connection)
//!     kv           Range (ReadIndex, then the store's range), Put / DeleteRange / Txn (the
//!                  store's transaction through Raft), Compact
//!     watch        one stream, many watches on the watch hub
//!     lease        grant / revoke through Raft, keepalives and time-to-live on the leader
//!     cluster      the membership as etcd's members
//!     maintenance  status, alarms (none), leadership transfer
//!     auth         raftkv's bearer tokens as etcd's auth tokens
//!  access          every call's token checked first (the HTTP API's tokens and roles)
//!  forward         a call only the leader serves, on a follower ─► the leader's gRPC address
//!                  (announced through the log), once: a forwarded call is never forwarded again
//!  over TLS when the node serves HTTPS (the same certificate and client CA)
//! ```
//!
//! The statuses are etcd's ([`error`]); what raftkv does not serve answers `Unimplemented`
//! with a message (the list is in the README).

pub mod error;

pub use forward::FORWARDED_METADATA;

mod access;
mod auth;
mod cluster;
mod forward;
mod kv;
mod kv_convert;
mod lease;
mod maintenance;
mod watch;

use std::future::Future;
use std::sync::Arc;

use raftkv_etcd_api::etcdserverpb::ResponseHeader;
use raftkv_etcd_api::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer as KvGrpcServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use tokio::net::TcpListener;

use crate::auth::AccessPolicy;
use crate::server::KvServer;

/// Largest request the front end decodes, in bytes: etcd's default `--max-request-bytes`
/// (1.5 MiB) and the 512 KiB it allows on top for the gRPC envelope.
pub const GRPC_RECEIVE_BYTES_MAX: usize = 3 * 512 * 1024 + 512 * 1024;

/// The etcd v3 API of one node: every service, over the node's [`KvServer`]. Cheap to clone.
#[derive(Clone)]
pub struct EtcdApi {
    inner: Arc<Inner>,
}

struct Inner {
    server: Arc<KvServer>,
    /// The header's `cluster_id`: a digest of the cluster's name (`--cluster-id`), the same on
    /// every member.
    cluster_id: u64,
    /// Where calls only the leader serves are forwarded ([`forward`]).
    leader_channel: forward::LeaderChannel,
    /// Who may call ([`access`]): the HTTP API's tokens; `None` when anyone may.
    policy: Option<Arc<AccessPolicy>>,
}

impl EtcdApi {
    /// The API of the node `server` runs.
    pub fn new(server: Arc<KvServer>) -> EtcdApi {
        let cluster_id = cluster_id_of(&server.config().cluster_id);
        EtcdApi {
            inner: Arc::new(Inner {
                server,
                cluster_id,
                leader_channel: forward::LeaderChannel::default(),
                policy: None,
            }),
        }
    }

    /// This API requiring the tokens of `policy` on every call (the HTTP API's
    /// `--auth-tokens`, with the same roles); `None`: open to anyone.
    pub fn with_policy(self, policy: Option<Arc<AccessPolicy>>) -> EtcdApi {
        EtcdApi {
            inner: Arc::new(Inner {
                server: Arc::clone(&self.inner.server),
                cluster_id: self.inner.cluster_id,
                leader_channel: forward::LeaderChannel::default(),
                policy,
            }),
        }
    }

    /// The tokens calls need, if any.
    pub(crate) fn policy(&self) -> Option<&Arc<AccessPolicy>> {
        self.inner.policy.as_ref()
    }

    /// The node.
    pub(crate) fn server(&self) -> &Arc<KvServer> {
        &self.inner.server
    }

    /// A response header as of now: the store's current revision and the node's term.
    pub(crate) fn header(&self) -> ResponseHeader {
        let revision = self.inner.server.state().revision();
        self.header_at(revision)
    }

    /// A response header at `revision` (the revision a write produced, or a read saw).
    pub(crate) fn header_at(&self, revision: u64) -> ResponseHeader {
        let (term, _) = self.inner.server.node().get_state();
        ResponseHeader {
            cluster_id: self.inner.cluster_id,
            member_id: self.inner.server.config().id.0,
            revision: i64::try_from(revision).unwrap_or(i64::MAX),
            raft_term: term.0,
        }
    }

    /// Every service, ready to serve.
    pub fn routes(&self) -> tonic::service::Routes {
        let limit = GRPC_RECEIVE_BYTES_MAX;
        tonic::service::Routes::new(
            KvGrpcServer::new(self.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            WatchServer::new(self.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            LeaseServer::new(self.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(ClusterServer::new(self.clone()).max_decoding_message_size(limit))
        .add_service(MaintenanceServer::new(self.clone()).max_decoding_message_size(limit))
        .add_service(AuthServer::new(self.clone()).max_decoding_message_size(limit))
    }
}

/// The header's cluster id for a cluster named `name`: FNV-1a, 64 bits (stable across builds
/// and machines, unlike the standard library's hasher).
fn cluster_id_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Serves `api` on `listener` until `stopping` resolves, then lets the calls in flight finish.
/// Over TLS when the node serves HTTPS (the same certificate and client CA, [`NodeTls`]); every
/// call checked against the node's tokens when it has any.
///
/// [`NodeTls`]: crate::tls::NodeTls
pub async fn serve(
    listener: TcpListener,
    api: EtcdApi,
    stopping: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let access = access::AccessLayer {
        policy: api.policy().cloned(),
    };
    let server = tonic::transport::Server::builder()
        .layer(access)
        .add_routes(api.routes());
    // Calls are small and a client waits for each: no Nagle's delay, on TLS streams too.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a gRPC connection");
        }
    });
    let served = match api.server().tls().grpc_listener(listener) {
        // Each connection does its TLS handshake in its own task, on first use (as the HTTPS
        // API's): a slow handshake never holds up the accept loop.
        Ok(listener) => {
            server
                .serve_with_incoming_shutdown(connections(listener), stopping)
                .await
        }
        Err(listener) => {
            server
                .serve_with_incoming_shutdown(connections(listener), stopping)
                .await
        }
    };
    served.map_err(|error| format!("the gRPC server failed: {error}"))
}

/// The connections `listener` accepts, as the stream tonic serves (the listener itself retries
/// accept errors such as running out of file descriptors).
fn connections<L: axum::serve::Listener>(
    listener: L,
) -> impl futures_util::Stream<Item = Result<L::Io, std::io::Error>> {
    futures_util::stream::unfold(listener, |mut listener| async move {
        let (stream, _) = listener.accept().await;
        Some((Ok(stream), listener))
    })
}

impl<S> tonic::transport::server::Connected for crate::tls::TlsIo<S> {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_id_is_a_stable_digest_of_the_name() {
        assert_eq!(cluster_id_of("raftkv"), cluster_id_of("raftkv"));
        assert_ne!(cluster_id_of("raftkv"), cluster_id_of("raftkv2"));
        // FNV-1a of the empty string is its offset basis.
        assert_eq!(cluster_id_of(""), 0xcbf2_9ce4_8422_2325);
    }
}
