//! The systems `raftkv bench` drives: one [`Driver`] per client.

use std::time::Duration;

use bytes::Bytes;
use raftkv_client::{Client, ClientOptions, ClientTls, Consistency};
use raftkv_etcd_api::etcdserverpb::kv_client::KvClient;
use raftkv_etcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use raftkv_etcd_api::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use tonic::transport::{Channel, Endpoint};

use super::{BenchArgs, Placement, ReadConsistency, TargetKind};

/// One client's connection to the system under test.
pub(super) enum Driver {
    /// A raftkv client with its own session and keep-alive connection.
    Raftkv {
        client: Client,
        consistency: Consistency,
    },
    /// An etcd v3 KV client on one of the shared gRPC (HTTP/2) connections: a stream of it
    /// per request.
    Etcd {
        kv: KvClient<Channel>,
        serializable: bool,
    },
}

/// How `args` has the clients reach the target, for the report: protocol and connections
/// (which nodes the clients send to is [`BenchArgs::placement`]).
pub(super) fn protocol(args: &BenchArgs, tls: bool) -> String {
    match args.target {
        TargetKind::Raftkv if args.http2 => "HTTP/2, one connection per node".to_string(),
        TargetKind::Raftkv if tls => "HTTPS, a connection per client".to_string(),
        TargetKind::Raftkv => "HTTP/1.1, a connection per client".to_string(),
        TargetKind::Etcd => format!(
            "gRPC, {} connection{} {}",
            args.connections,
            if args.connections == 1 { "" } else { "s" },
            match args.placement() {
                Placement::Leader => "to the leader",
                Placement::Spread => "per endpoint",
            }
        ),
    }
}

/// Makes one driver per client of `args`; raftkv clients send `token` as bearer token and
/// speak HTTPS with `tls`.
pub(super) async fn connect(
    endpoints: &[String],
    token: Option<&str>,
    tls: Option<ClientTls>,
    args: &BenchArgs,
) -> Result<Vec<Driver>, String> {
    let clients = usize::try_from(args.clients).map_err(|_| "too many clients".to_string())?;
    match args.target {
        TargetKind::Raftkv => {
            let options = ClientOptions {
                request_timeout: args.request_timeout,
                retry_deadline: args.request_timeout,
            };
            let consistency = match args.consistency {
                ReadConsistency::Linearizable => Consistency::Linearizable,
                ReadConsistency::Lease => Consistency::Lease,
                ReadConsistency::Stale => Consistency::Stale,
            };
            // One pool; every client is a session of its own on it (a connection each, as an
            // HTTP/1.1 connection carries one request at a time; over HTTP/2 a stream each).
            if tls.is_some() && args.http2 {
                return Err("--http2 speaks plain HTTP only, not HTTPS".to_string());
            }
            let pool = |endpoints: &[String]| {
                let pool = match &tls {
                    Some(tls) => Client::with_tls(endpoints, options, tls.clone()),
                    None if args.http2 => Client::with_http2(endpoints, options),
                    None => Client::with_options(endpoints, options),
                };
                pool.and_then(|pool| match token {
                    Some(token) => pool.with_bearer_token(token),
                    None => Ok(pool),
                })
                .map_err(|error| error.to_string())
            };
            // Following the leader: one pool, every client a session of its own on it (a
            // connection each over HTTP/1.1, as a connection carries one request at a time;
            // over HTTP/2 a stream each).
            if args.placement() == Placement::Leader {
                let pool = pool(endpoints)?;
                return Ok((0..clients)
                    .map(|_| Driver::Raftkv {
                        client: pool.new_session(),
                        consistency,
                    })
                    .collect());
            }
            // Spread: a pool per node, its endpoints starting at that node (a client goes on
            // to the next only when its own fails), client i on pool i mod nodes, each
            // ignoring the leader the nodes name.
            let pools = (0..endpoints.len())
                .map(|first| {
                    let mut rotated = endpoints.to_vec();
                    rotated.rotate_left(first);
                    pool(&rotated)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if pools.is_empty() {
                return Err("no --endpoints given".to_string());
            }
            Ok((0..clients)
                .map(|index| Driver::Raftkv {
                    client: pools[index % pools.len()].ignoring_leader_hints(),
                    consistency,
                })
                .collect())
        }
        TargetKind::Etcd => {
            if tls.is_some() {
                return Err("--target etcd speaks plain HTTP/2 only, not HTTPS".to_string());
            }
            let channels = etcd_channels(endpoints, args).await?;
            let serializable = args.consistency == ReadConsistency::Stale;
            // Client i on connection i mod count: the endpoints' connections take turns, so
            // every member serves the same share of the clients (when spread).
            Ok((0..clients)
                .map(|index| Driver::Etcd {
                    kv: KvClient::new(channels[index % channels.len()].clone()),
                    serializable,
                })
                .collect())
        }
    }
}

/// The gRPC connections of `--target etcd`: `--connections` per endpoint (or per the leader's
/// endpoint alone with `--target-leader`), each made now, so a wrong address fails the run
/// before it starts. Ordered endpoint by endpoint within each round, so that handing them
/// out in turn spreads clients over the endpoints first.
async fn etcd_channels(endpoints: &[String], args: &BenchArgs) -> Result<Vec<Channel>, String> {
    if endpoints.is_empty() {
        return Err("no --endpoints given".to_string());
    }
    let endpoints = endpoints
        .iter()
        .map(|address| etcd_endpoint(address, args.request_timeout))
        .collect::<Result<Vec<_>, _>>()?;
    let endpoints = if args.placement() == Placement::Leader {
        vec![etcd_leader(&endpoints).await?]
    } else {
        endpoints
    };
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        for endpoint in &endpoints {
            let channel = endpoint.connect().await.map_err(|error| {
                format!("cannot connect to etcd at {}: {error}", endpoint.uri())
            })?;
            channels.push(channel);
        }
    }
    Ok(channels)
}

/// One etcd client URL, `host:port` meaning `http://host:port`, with the request timeout as
/// the deadline of every call (sent to the server as `grpc-timeout`, as etcd's clients do)
/// and of connecting.
pub(crate) fn etcd_endpoint(address: &str, request_timeout: Duration) -> Result<Endpoint, String> {
    let url = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    if url.starts_with("https://") {
        return Err(format!(
            "{address}: --target etcd speaks plain HTTP/2 only, not HTTPS"
        ));
    }
    Endpoint::from_shared(url)
        .map(|endpoint| {
            endpoint
                .timeout(request_timeout)
                .connect_timeout(request_timeout)
                // Both ends on loopback: no reason to hold small frames back.
                .tcp_nodelay(true)
        })
        .map_err(|error| format!("{address} is not an etcd client URL: {error}"))
}

/// The endpoint of the member that leads, as the members' Maintenance.Status tells: the one
/// whose own id (its answer's header) is the leader id it reports.
async fn etcd_leader(endpoints: &[Endpoint]) -> Result<Endpoint, String> {
    let mut failures = Vec::new();
    for endpoint in endpoints {
        let answer = match endpoint.connect().await {
            Ok(channel) => MaintenanceClient::new(channel)
                .status(StatusRequest {})
                .await
                .map(tonic::Response::into_inner)
                .map_err(|status| status.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match answer {
            Ok(status) => {
                let own_id = status.header.map(|header| header.member_id);
                if status.leader != 0 && own_id == Some(status.leader) {
                    return Ok(endpoint.clone());
                }
            }
            Err(error) => failures.push(format!("{}: {error}", endpoint.uri())),
        }
    }
    Err(format!(
        "no endpoint says it leads (--target-leader){}{}",
        if failures.is_empty() { "" } else { "; " },
        failures.join("; ")
    ))
}

impl Driver {
    /// Sets `key` to `value`.
    pub(super) async fn write(&mut self, key: &str, value: &Bytes) -> Result<(), String> {
        match self {
            Driver::Raftkv { client, .. } => client
                .put(key, value.clone())
                .await
                .map(drop)
                .map_err(|error| error.to_string()),
            Driver::Etcd { kv, .. } => kv
                .put(PutRequest {
                    key: Bytes::copy_from_slice(key.as_bytes()),
                    value: value.clone(),
                    ..PutRequest::default()
                })
                .await
                .map(drop)
                .map_err(|status| status.to_string()),
        }
    }

    /// Reads `key`; an absent key is a successful read.
    pub(super) async fn read(&mut self, key: &str) -> Result<(), String> {
        match self {
            Driver::Raftkv {
                client,
                consistency,
            } => client
                .get(key, *consistency)
                .await
                .map(drop)
                .map_err(|error| error.to_string()),
            // One key, no range end: what `etcdctl get KEY` asks.
            Driver::Etcd { kv, serializable } => kv
                .range(RangeRequest {
                    key: Bytes::copy_from_slice(key.as_bytes()),
                    serializable: *serializable,
                    ..RangeRequest::default()
                })
                .await
                .map(drop)
                .map_err(|status| status.to_string()),
        }
    }
}
