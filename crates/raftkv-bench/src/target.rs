//! The systems `raftkv bench` drives: one [`Driver`] per client.

use bytes::Bytes;
use raftkv_client::{Client, ClientOptions, ClientTls, Consistency};

use super::{BenchArgs, ReadConsistency, TargetKind};

/// One client's connection to the system under test.
pub(super) enum Driver {
    /// A raftkv client with its own session and keep-alive connection.
    Raftkv {
        client: Client,
        consistency: Consistency,
    },
    /// An etcd KV client on one of the shared gRPC connections.
    #[cfg(feature = "etcd")]
    Etcd {
        kv: etcd_client::KvClient,
        serializable: bool,
    },
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
            let pool = match tls {
                Some(_) if args.http2 => {
                    return Err("--http2 speaks plain HTTP only, not HTTPS".to_string())
                }
                Some(tls) => Client::with_tls(endpoints, options, tls),
                None if args.http2 => Client::with_http2(endpoints, options),
                None => Client::with_options(endpoints, options),
            };
            let pool = pool
                .and_then(|pool| match token {
                    Some(token) => pool.with_bearer_token(token),
                    None => Ok(pool),
                })
                .map_err(|error| error.to_string())?;
            Ok((0..clients)
                .map(|_| Driver::Raftkv {
                    client: pool.new_session(),
                    consistency,
                })
                .collect())
        }
        #[cfg(feature = "etcd")]
        TargetKind::Etcd => {
            let options = etcd_client::ConnectOptions::new()
                .with_timeout(args.request_timeout)
                .with_connect_timeout(args.request_timeout);
            let mut connections = Vec::new();
            for _ in 0..args.connections {
                let client = etcd_client::Client::connect(endpoints, Some(options.clone()))
                    .await
                    .map_err(|error| format!("cannot connect to etcd at {endpoints:?}: {error}"))?;
                connections.push(client.kv_client());
            }
            let serializable = args.consistency == ReadConsistency::Stale;
            Ok((0..clients)
                .map(|index| Driver::Etcd {
                    kv: connections[index % connections.len()].clone(),
                    serializable,
                })
                .collect())
        }
        #[cfg(not(feature = "etcd"))]
        TargetKind::Etcd => Err(
            "this raftkv-bench was built without etcd support: build it with \
             `cargo build --release -p raftkv-bench --features etcd` (needs protoc, Debian's \
             protobuf-compiler)"
                .to_string(),
        ),
    }
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
            #[cfg(feature = "etcd")]
            Driver::Etcd { kv, .. } => kv
                .put(key, value.as_ref(), None)
                .await
                .map(drop)
                .map_err(|error| error.to_string()),
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
            #[cfg(feature = "etcd")]
            Driver::Etcd { kv, serializable } => {
                let options =
                    serializable.then(|| etcd_client::GetOptions::new().with_serializable());
                kv.get(key, options)
                    .await
                    .map(drop)
                    .map_err(|error| error.to_string())
            }
        }
    }
}
