//! Forwarding a call only the leader serves (a lease call, a membership change, a compaction)
//! from a follower to the leader's gRPC API; and the fallback of a store write whose Raft
//! forwarding met a leader that no longer leads (`super::kv`).
//!
//! ```text
//!  call on a follower ─► leader_channel: leader known? ─ no ─► wait out an election, else NO_LEADER
//!       │                   │ yes
//!       │                   └► its announced gRPC address ─ none ─► Unavailable (says why)
//!       │                         └► cached Channel (TLS when this node serves HTTPS)
//!       └► forwarded(request): credentials kept, marked `raftkv-forwarded-by`, request timeout
//!            └► the leader serves it, or answers NOT_LEADER if it no longer leads: a marked
//!               call is never forwarded again, so calls cannot circle between two nodes
//!               that each think the other leads
//! ```
//!
//! The leader's answer is relayed as it is, with the header's `member_id` set to this node's
//! (the member the client called).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use raft_core::NodeId;
use raftkv_etcd_api::etcdserverpb::*;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Response, Status};

use super::error::NOT_LEADER;
use super::error::NO_LEADER;
use super::EtcdApi;

/// The metadata key that marks a call a node forwarded to the leader; its value is the
/// forwarding node's id. A node that does not lead answers such a call NOT_LEADER instead of
/// forwarding it again.
pub const FORWARDED_METADATA: &str = "raftkv-forwarded-by";

/// The metadata of a client's call that goes along when it is forwarded: its credentials, which
/// the leader checks again (a follower's word is not taken for them). Nothing else: the rest
/// (encodings, timeouts) belongs to the client's own connection.
const FORWARDED_CREDENTIALS: [&str; 2] = ["token", "authorization"];

/// The channel to the leader this node forwarded to last, kept while that node leads at that
/// address: a channel holds one HTTP/2 connection that every forwarded call shares.
#[derive(Default)]
pub(super) struct LeaderChannel {
    cached: Mutex<Option<(NodeId, String, Channel)>>,
}

impl LeaderChannel {
    /// The channel to node `leader` at `address`, made by `make` unless cached.
    fn get(
        &self,
        leader: NodeId,
        address: &str,
        make: impl FnOnce() -> Result<Channel, Status>,
    ) -> Result<Channel, Status> {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((id, cached_address, channel)) = cached.as_ref() {
            if *id == leader && cached_address == address {
                return Ok(channel.clone());
            }
        }
        let channel = make()?;
        *cached = Some((leader, address.to_string(), channel.clone()));
        Ok(channel)
    }
}

impl EtcdApi {
    /// A channel to the leader's gRPC API for `request`, a call only the leader serves; `None`
    /// when this node leads (serve it here).
    ///
    /// Errors: NOT_LEADER when `request` was already forwarded to this node (see the module
    /// doc); NO_LEADER when no leader is known (after waiting out an election under way);
    /// `Unavailable` when the leader serves no gRPC API. Build the client on the channel with
    /// `max_decoding_message_size(usize::MAX)` (the leader's answer was already bounded by
    /// it), send [`EtcdApi::forwarded`]`(request)` and answer [`EtcdApi::relay`] of the result.
    pub(crate) async fn leader_channel<T>(
        &self,
        request: &Request<T>,
    ) -> Result<Option<Channel>, Status> {
        let server = self.server();
        if server.is_leader() {
            return Ok(None);
        }
        if request.metadata().contains_key(FORWARDED_METADATA) {
            return Err(NOT_LEADER.status());
        }
        let leader = match server.node().metrics().leader {
            Some(leader) => Some(leader),
            None => server.leader_after_election().await,
        };
        let Some(leader) = leader else {
            return Err(NO_LEADER.status());
        };
        if leader == server.config().id {
            // It won an election while the call waited.
            return Ok(None);
        }
        let Some(address) = server.grpc_address_of(leader) else {
            return Err(Status::unavailable(format!(
                "raftkv: the leader (node {}) serves no etcd gRPC API (started without \
                 --grpc-addr, or not announced yet), so this call cannot be forwarded to it; \
                 call the leader, or give every node --grpc-addr",
                leader.0
            )));
        };
        let channel = self
            .inner
            .leader_channel
            .get(leader, &address, || self.channel_to(&address))?;
        server
            .counters
            .grpc_calls_forwarded_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Some(channel))
    }

    /// A lazily connecting channel to the gRPC API at `address` (`HOST:PORT`), over TLS when
    /// this node serves HTTPS.
    fn channel_to(&self, address: &str) -> Result<Channel, Status> {
        let timeout = self.server().config().request_timeout;
        // The scheme stays `http` even over TLS: the connector below does the TLS itself, and
        // tonic, if a build enabled its own TLS, would refuse an `https` address it has no
        // settings for.
        let endpoint = Endpoint::from_shared(format!("http://{address}")).map_err(|error| {
            Status::unavailable(format!(
                "raftkv: the leader's announced gRPC address {address} is unusable: {error}"
            ))
        })?;
        let endpoint = endpoint
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(timeout);
        Ok(match self.server().tls().http_client() {
            Some(tls) => {
                let mut config = (*tls.config()).clone();
                // gRPC is HTTP/2 only; servers that check ALPN refuse a connection without it.
                config.alpn_protocols = vec![b"h2".to_vec()];
                endpoint.connect_with_connector_lazy(TlsConnector {
                    config: Arc::new(config),
                })
            }
            None => endpoint.connect_lazy(),
        })
    }

    /// `request` as it is sent to the leader: the client's credentials, marked as forwarded by
    /// this node, with the request timeout as its deadline (the leader stops working on it
    /// then, and so does the channel).
    pub(crate) fn forwarded<T>(&self, request: Request<T>) -> Request<T> {
        let (metadata, _, message) = request.into_parts();
        let mut forwarded = Request::new(message);
        for key in FORWARDED_CREDENTIALS {
            if let Some(value) = metadata.get(key) {
                forwarded.metadata_mut().insert(key, value.clone());
            }
        }
        let own = MetadataValue::from(self.server().config().id.0);
        forwarded.metadata_mut().insert(FORWARDED_METADATA, own);
        forwarded.set_timeout(self.server().config().request_timeout);
        forwarded
    }

    /// The leader's `answer` to a forwarded call, as this node answers it: the header names
    /// this node as the member that answered.
    pub(crate) fn relay<R: Answer>(
        &self,
        answer: Result<Response<R>, Status>,
    ) -> Result<Response<R>, Status> {
        let own = self.server().config().id.0;
        answer.map(|response| {
            let mut message = response.into_inner();
            if let Some(header) = message.header_mut() {
                header.member_id = own;
            }
            Response::new(message)
        })
    }
}

/// An etcd answer with a response header.
pub(crate) trait Answer {
    /// Its header, if set.
    fn header_mut(&mut self) -> Option<&mut ResponseHeader>;
}

macro_rules! answers {
    ($($answer:ty),* $(,)?) => {
        $(impl Answer for $answer {
            fn header_mut(&mut self) -> Option<&mut ResponseHeader> {
                self.header.as_mut()
            }
        })*
    };
}

answers!(
    RangeResponse,
    PutResponse,
    DeleteRangeResponse,
    TxnResponse,
    CompactionResponse,
    LeaseGrantResponse,
    LeaseRevokeResponse,
    LeaseKeepAliveResponse,
    LeaseTimeToLiveResponse,
    LeaseLeasesResponse,
    MemberAddResponse,
    MemberRemoveResponse,
    MemberUpdateResponse,
    MemberPromoteResponse,
    MoveLeaderResponse,
);

/// Opens TLS connections for a [`Channel`]: TCP to the URI's host and port, then a TLS
/// handshake with this node's client settings (the cluster CA, its certificate).
#[derive(Clone)]
struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let invalid = |what: &str| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{what} in the leader's gRPC address {uri}"),
                )
            };
            let host = uri.host().ok_or_else(|| invalid("no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().ok_or_else(|| invalid("no port"))?;
            let server_name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|_| invalid("a host that is no server name"))?;
            let stream = tokio::net::TcpStream::connect((host, port)).await?;
            stream.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(server_name, stream)
                .await?;
            Ok(TokioIo::new(stream))
        })
    }
}
