//! Settings of one `raftkv serve` node, from flags, environment variables and a TOML file.
//!
//! ```text
//!  --flag  >  RAFTKV_* environment variable  >  --config FILE (TOML)  >  default
//! ```
//!
//! clap resolves a flag and its environment variable; the file fills what both left unset.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use raft_core::NodeId;
use serde::Deserialize;
use thiserror::Error;

/// A setting that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A required setting is missing everywhere.
    #[error("missing setting `{0}` (give --{1}, the environment variable, or set it in the config file)")]
    Missing(&'static str, &'static str),
    /// A setting does not parse or is out of range.
    #[error("invalid setting `{name}`: {reason}")]
    Invalid {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The config file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// `raftkv serve` flags; every one may also come from its environment variable or the config
/// file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below (keys as the flags, with underscores:
    /// `id`, `data_dir`, `raft_addr`, `http_addr`, `peers`, ...).
    #[arg(long, env = "RAFTKV_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id (a positive integer, one of the ids in --peers).
    #[arg(long, env = "RAFTKV_ID")]
    pub id: Option<u64>,
    /// Directory of this node's write-ahead log and snapshots; created if missing. A node
    /// restarted on the same directory rejoins with its state.
    #[arg(long, env = "RAFTKV_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the Raft transport listens on (peers connect here).
    #[arg(long, env = "RAFTKV_RAFT_ADDR")]
    pub raft_addr: Option<SocketAddr>,
    /// Address the HTTP API listens on.
    #[arg(long, env = "RAFTKV_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// The Raft address other nodes dial to reach this one, when it is not the address it
    /// listens on (behind a proxy or NAT). Default: this node's entry in --peers, else
    /// --raft-addr.
    #[arg(long, env = "RAFTKV_ADVERTISE_RAFT_ADDR")]
    pub advertise_raft_addr: Option<SocketAddr>,
    /// Every member, this node included, as ID=RAFT_ADDR pairs separated by commas, e.g.
    /// `1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003`.
    #[arg(long, env = "RAFTKV_PEERS", conflicts_with = "join")]
    pub peers: Option<String>,
    /// Instead of --peers: the HTTP address of any member of a running cluster. A new node
    /// asks it for the members, is added as a learner and promotes itself to voter once it
    /// has caught up; restarted later (same data directory), it rejoins with its state.
    #[arg(long, env = "RAFTKV_JOIN")]
    pub join: Option<String>,
    /// A name shared by the members; a connection from another cluster is refused.
    #[arg(long, env = "RAFTKV_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Serve the HTTP API over HTTPS with this certificate (PEM, the node's certificate
    /// first). Needs --tls-key, and a CA to verify the other nodes with when it calls them
    /// (--tls-ca or --peer-tls-ca): with it, the node reaches the others' HTTP addresses
    /// over https:// and presents this certificate. `raftkv certs` makes suitable files.
    #[arg(long, env = "RAFTKV_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "RAFTKV_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Require HTTPS clients to present a certificate signed by this CA (PEM). The node also
    /// trusts it for the other nodes' HTTPS certificates.
    #[arg(long, env = "RAFTKV_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Mutual TLS on the Raft transport: this node's certificate (PEM), which must carry the
    /// DNS name `node-ID` and be signed by --peer-tls-ca. Give all three --peer-tls-* or none;
    /// every member must then use TLS with the same CA.
    #[arg(long, env = "RAFTKV_PEER_TLS_CERT")]
    pub peer_tls_cert: Option<PathBuf>,
    /// The private key of --peer-tls-cert (PEM).
    #[arg(long, env = "RAFTKV_PEER_TLS_KEY")]
    pub peer_tls_key: Option<PathBuf>,
    /// The cluster CA (PEM) every peer's certificate must chain to; a peer with another
    /// certificate is refused during the TLS handshake.
    #[arg(long, env = "RAFTKV_PEER_TLS_CA")]
    pub peer_tls_ca: Option<PathBuf>,
    /// Take a snapshot once about this many bytes of commands were applied since the last
    /// one: each node draws its own threshold at start, between 0.75 and 1.25 times this, so
    /// that the nodes of a cluster do not all stop to write a snapshot at the same moment.
    #[arg(long, env = "RAFTKV_SNAPSHOT_THRESHOLD_BYTES")]
    pub snapshot_threshold_bytes: Option<u64>,
    /// Client sessions remembered for exactly-once writes; beyond it the least recently
    /// active is forgotten.
    #[arg(long, env = "RAFTKV_SESSIONS_MAX")]
    pub sessions_max: Option<usize>,
    /// Longest key, in bytes.
    #[arg(long, env = "RAFTKV_KEY_BYTES_MAX")]
    pub key_bytes_max: Option<usize>,
    /// Largest value, in bytes.
    #[arg(long, env = "RAFTKV_VALUE_BYTES_MAX")]
    pub value_bytes_max: Option<usize>,
    /// How long a request may wait for commit (or for the leader, when forwarded), in
    /// milliseconds.
    #[arg(long, env = "RAFTKV_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Length of a Raft tick in milliseconds (elections time out after 15–30 ticks).
    #[arg(long, env = "RAFTKV_TICK_MS")]
    pub tick_ms: Option<u64>,
    /// Threads serving the HTTP API (default: one per CPU core); the Raft node and the apply
    /// loop have a thread of their own besides, and the log its writer thread. Nodes sharing a
    /// machine do better with fewer: the cores divided among them (`raftkv dev` does this).
    #[arg(long, env = "RAFTKV_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// A TOML file of bearer tokens: `[[token]]` tables with a unique `name`, a `role`
    /// (read-only, read-write or admin) and `token_sha256` (64 hex digits: the SHA-256 of the
    /// token, `printf %s TOKEN | sha256sum`) or `token` (the token itself, 16 characters or
    /// more). Every HTTP request must then carry `Authorization: Bearer <token>` whose role
    /// allows it: reads need read-only, writes read-write, membership changes and leader
    /// transfer admin. Without this file the API is open to anyone.
    #[arg(long, env = "RAFTKV_AUTH_TOKENS")]
    pub auth_tokens: Option<PathBuf>,
    /// A file whose first line is the token this node sends on its own calls to other nodes
    /// (announcing its address, joining); it must be an admin token of theirs. Default: the
    /// first admin entry of --auth-tokens given as `token`.
    #[arg(long, env = "RAFTKV_CLUSTER_TOKEN_FILE")]
    pub cluster_token_file: Option<PathBuf>,
    /// With --auth-tokens: let anyone read /metrics (for a scraper without a token).
    #[arg(long, env = "RAFTKV_PUBLIC_METRICS", value_parser = clap::builder::BoolishValueParser::new())]
    pub public_metrics: bool,
    /// With --auth-tokens: let anyone read /v1/status (for load balancers' health checks).
    #[arg(long, env = "RAFTKV_PUBLIC_STATUS", value_parser = clap::builder::BoolishValueParser::new())]
    pub public_status: bool,
    /// HTTP connections open at once (default 10000); one more is closed as it is accepted.
    #[arg(long, env = "RAFTKV_HTTP_CONNECTIONS_MAX")]
    pub http_connections_max: Option<usize>,
    /// HTTP requests handled at once (default 4096); one more is answered 503 with
    /// Retry-After, its body unread.
    #[arg(long, env = "RAFTKV_HTTP_REQUESTS_IN_FLIGHT_MAX")]
    pub http_requests_in_flight_max: Option<usize>,
    /// Bytes of request bodies held at once over all requests, each counted at its declared
    /// length from before it is read until it is answered (default 268435456); a body beyond
    /// it is answered 503 with Retry-After, unread.
    #[arg(long, env = "RAFTKV_HTTP_BODY_BYTES_IN_FLIGHT_MAX")]
    pub http_body_bytes_in_flight_max: Option<usize>,
    /// Bytes of a request's line and headers (default 65536); more is answered 431.
    #[arg(long, env = "RAFTKV_HTTP_HEADER_BYTES_MAX")]
    pub http_header_bytes_max: Option<usize>,
    /// Headers in a request (default 100); more is answered 431.
    #[arg(long, env = "RAFTKV_HTTP_HEADERS_MAX")]
    pub http_headers_max: Option<usize>,
    /// Milliseconds a client has to send a request's head once it started (against
    /// slowloris: the connection is closed), and again its body (408); default 10000.
    #[arg(long, env = "RAFTKV_HTTP_REQUEST_READ_TIMEOUT_MS")]
    pub http_request_read_timeout_ms: Option<u64>,
    /// Milliseconds a connection may wait for its next request before it is closed
    /// (default 60000).
    #[arg(long, env = "RAFTKV_HTTP_IDLE_TIMEOUT_MS")]
    pub http_idle_timeout_ms: Option<u64>,
}

/// The same settings as read from a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    id: Option<u64>,
    data_dir: Option<PathBuf>,
    raft_addr: Option<SocketAddr>,
    advertise_raft_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    peers: Option<String>,
    join: Option<String>,
    cluster_id: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    peer_tls_cert: Option<PathBuf>,
    peer_tls_key: Option<PathBuf>,
    peer_tls_ca: Option<PathBuf>,
    snapshot_threshold_bytes: Option<u64>,
    sessions_max: Option<usize>,
    key_bytes_max: Option<usize>,
    value_bytes_max: Option<usize>,
    request_timeout_ms: Option<u64>,
    tick_ms: Option<u64>,
    worker_threads: Option<usize>,
    auth_tokens: Option<PathBuf>,
    cluster_token_file: Option<PathBuf>,
    public_metrics: Option<bool>,
    public_status: Option<bool>,
    http_connections_max: Option<usize>,
    http_requests_in_flight_max: Option<usize>,
    http_body_bytes_in_flight_max: Option<usize>,
    http_header_bytes_max: Option<usize>,
    http_headers_max: Option<usize>,
    http_request_read_timeout_ms: Option<u64>,
    http_idle_timeout_ms: Option<u64>,
}

/// The HTTP server's settings, beside the node's ([`ServeConfig`]): who may use the API and
/// the limits it holds. Resolved by [`ServeArgs::resolve_http`].
#[derive(Clone, Debug, Default)]
pub struct HttpSettings {
    /// Tokens and the node's own token (see [`crate::auth`]).
    pub access: crate::auth::Access,
    /// Connection, request and time limits (see [`crate::limits`]).
    pub limits: crate::limits::HttpLimits,
}

/// Everything a node needs, validated.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// This node.
    pub id: NodeId,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Where the Raft transport listens.
    pub raft_addr: SocketAddr,
    /// The Raft address the others dial to reach this node: --advertise-raft-addr, else this
    /// node's entry in --peers, else `raft_addr`.
    pub advertised_raft_addr: SocketAddr,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Every member's Raft address, this node's included; empty when joining.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The HTTP address of a member to join through, instead of `peers`.
    pub join: Option<String>,
    /// The cluster's name.
    pub cluster_id: String,
    /// Applied command bytes between snapshots, before each node's own stagger (0.75–1.25x).
    pub snapshot_threshold_bytes: u64,
    /// Sessions remembered.
    pub sessions_max: usize,
    /// Longest key.
    pub key_bytes_max: usize,
    /// Largest value.
    pub value_bytes_max: usize,
    /// How long a request may wait.
    pub request_timeout: Duration,
    /// Length of a Raft tick.
    pub tick: Duration,
    /// Threads serving the HTTP API; `None`: one per core.
    pub worker_threads: Option<usize>,
}

impl ServeArgs {
    /// Merges flags, environment and file, and validates the result.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let id = self
            .id
            .or(file.id)
            .ok_or(ConfigError::Missing("id", "id"))?;
        let id = NodeId(id);
        let join = self.join.or(file.join);
        let peers_text = self.peers.or(file.peers);
        let (peers, raft_addr) = match (peers_text, join.as_ref()) {
            (Some(_), Some(_)) => {
                return Err(invalid("peers", "give --peers or --join, not both".into()))
            }
            (None, None) => return Err(ConfigError::Missing("peers", "peers (or --join)")),
            (Some(text), None) => {
                let peers = parse_peers(&text)?;
                let Some(own_raft_addr) = peers.get(&id).copied() else {
                    return Err(invalid("peers", format!("node {} is not listed", id.0)));
                };
                let raft_addr = self.raft_addr.or(file.raft_addr).unwrap_or(own_raft_addr);
                (peers, raft_addr)
            }
            (None, Some(_)) => {
                let raft_addr = self
                    .raft_addr
                    .or(file.raft_addr)
                    .ok_or(ConfigError::Missing("raft_addr", "raft-addr"))?;
                (BTreeMap::new(), raft_addr)
            }
        };
        let advertised_raft_addr = self
            .advertise_raft_addr
            .or(file.advertise_raft_addr)
            .or_else(|| peers.get(&id).copied())
            .unwrap_or(raft_addr);
        let config = ServeConfig {
            id,
            advertised_raft_addr,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .ok_or(ConfigError::Missing("data_dir", "data-dir"))?,
            raft_addr,
            http_addr: self
                .http_addr
                .or(file.http_addr)
                .ok_or(ConfigError::Missing("http_addr", "http-addr"))?,
            peers,
            join,
            cluster_id: self
                .cluster_id
                .or(file.cluster_id)
                .unwrap_or_else(|| "raftkv".to_string()),
            snapshot_threshold_bytes: self
                .snapshot_threshold_bytes
                .or(file.snapshot_threshold_bytes)
                .unwrap_or(64 * 1024 * 1024),
            sessions_max: self.sessions_max.or(file.sessions_max).unwrap_or(100_000),
            key_bytes_max: self
                .key_bytes_max
                .or(file.key_bytes_max)
                .unwrap_or(raftkv_client::api::KEY_BYTES_MAX),
            value_bytes_max: self
                .value_bytes_max
                .or(file.value_bytes_max)
                .unwrap_or(raftkv_client::api::VALUE_BYTES_MAX),
            request_timeout: Duration::from_millis(
                self.request_timeout_ms
                    .or(file.request_timeout_ms)
                    .unwrap_or(5_000),
            ),
            tick: Duration::from_millis(self.tick_ms.or(file.tick_ms).unwrap_or(20)),
            worker_threads: self.worker_threads.or(file.worker_threads),
        };
        config.validate()?;
        Ok(config)
    }
}

impl ServeArgs {
    /// The HTTP server's settings from flags, environment and file (the same precedence as
    /// [`ServeArgs::resolve`]), validated against the node's `config`: the token files are
    /// read and checked now, so a bad one stops the node at start with the reason.
    pub fn resolve_http(&self, config: &ServeConfig) -> Result<HttpSettings, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let defaults = crate::limits::HttpLimits::default();
        let milliseconds =
            |flag: Option<u64>, file: Option<u64>, default: Duration| match flag.or(file) {
                Some(milliseconds) => Duration::from_millis(milliseconds),
                None => default,
            };
        let body_bytes_max =
            crate::limits::request_body_bytes_max(config.key_bytes_max, config.value_bytes_max);
        let limits = crate::limits::HttpLimits {
            connections_max: self
                .http_connections_max
                .or(file.http_connections_max)
                .unwrap_or(defaults.connections_max),
            requests_in_flight_max: self
                .http_requests_in_flight_max
                .or(file.http_requests_in_flight_max)
                .unwrap_or(defaults.requests_in_flight_max),
            body_bytes_in_flight_max: self
                .http_body_bytes_in_flight_max
                .or(file.http_body_bytes_in_flight_max)
                // Values larger than the default allows raise it to fit one request.
                .unwrap_or(defaults.body_bytes_in_flight_max.max(body_bytes_max)),
            header_bytes_max: self
                .http_header_bytes_max
                .or(file.http_header_bytes_max)
                .unwrap_or(defaults.header_bytes_max),
            headers_max: self
                .http_headers_max
                .or(file.http_headers_max)
                .unwrap_or(defaults.headers_max),
            request_read_timeout: milliseconds(
                self.http_request_read_timeout_ms,
                file.http_request_read_timeout_ms,
                defaults.request_read_timeout,
            ),
            idle_timeout: milliseconds(
                self.http_idle_timeout_ms,
                file.http_idle_timeout_ms,
                defaults.idle_timeout,
            ),
        };
        limits
            .validate(config.key_bytes_max, body_bytes_max)
            .map_err(|(name, reason)| invalid(name, reason))?;
        let auth_tokens = self.auth_tokens.clone().or(file.auth_tokens);
        let cluster_token_file = self.cluster_token_file.clone().or(file.cluster_token_file);
        // A flag can only turn these on; the file decides when the flag is absent.
        let public_metrics = self.public_metrics || file.public_metrics.unwrap_or(false);
        let public_status = self.public_status || file.public_status.unwrap_or(false);
        let access = crate::auth::Access::load(
            auth_tokens.as_deref(),
            cluster_token_file.as_deref(),
            public_metrics,
            public_status,
        )
        .map_err(|reason| invalid("auth_tokens", reason))?;
        Ok(HttpSettings { access, limits })
    }
}

impl ServeArgs {
    /// The node's TLS settings from flags, environment and file (the same precedence as
    /// [`ServeArgs::resolve`]): checked to come in usable groups, then every file is read and
    /// parsed now, so a bad one stops the node at start with the reason.
    pub fn resolve_tls(&self) -> Result<crate::tls::NodeTls, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let paths = crate::tls::TlsPaths {
            http_certificate: self.tls_cert.clone().or(file.tls_cert),
            http_key: self.tls_key.clone().or(file.tls_key),
            http_client_ca: self.tls_ca.clone().or(file.tls_ca),
            peer_certificate: self.peer_tls_cert.clone().or(file.peer_tls_cert),
            peer_key: self.peer_tls_key.clone().or(file.peer_tls_key),
            peer_ca: self.peer_tls_ca.clone().or(file.peer_tls_ca),
        };
        let tls =
            crate::tls::NodeTls::load(&paths).map_err(|(name, reason)| invalid(name, reason))?;
        if let (Some(peer), Some(id)) = (tls.peer(), self.id.or(file.id)) {
            // Here rather than when the transport starts, so that it is reported as the
            // configuration error it is.
            peer.check_identity(NodeId(id))
                .map_err(|error| invalid("peer_tls_cert", error.to_string()))?;
        }
        Ok(tls)
    }
}

impl ServeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.id.0 == 0 {
            return Err(invalid("id", "must be at least 1".into()));
        }
        if self.sessions_max == 0 {
            return Err(invalid("sessions_max", "must be at least 1".into()));
        }
        if self.key_bytes_max == 0 || self.value_bytes_max == 0 {
            return Err(invalid(
                "key_bytes_max / value_bytes_max",
                "must be at least 1".into(),
            ));
        }
        // A value travels in one log entry, and the core refuses proposals above 8 MiB.
        if self.value_bytes_max > 4 * 1024 * 1024 || self.key_bytes_max > 64 * 1024 {
            return Err(invalid(
                "key_bytes_max / value_bytes_max",
                "at most 64 KiB keys and 4 MiB values".into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(invalid("request_timeout_ms", "must be at least 1".into()));
        }
        if self.tick.is_zero() || self.tick > Duration::from_secs(1) {
            return Err(invalid("tick_ms", "must be between 1 and 1000".into()));
        }
        if self
            .worker_threads
            .is_some_and(|threads| threads == 0 || threads > 1024)
        {
            return Err(invalid(
                "worker_threads",
                "must be between 1 and 1024".into(),
            ));
        }
        if self.snapshot_threshold_bytes == 0 {
            return Err(invalid(
                "snapshot_threshold_bytes",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

fn invalid(name: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { name, reason }
}

fn read_file(path: &PathBuf) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::File {
        path: path.clone(),
        reason: error.to_string(),
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::File {
        path: path.clone(),
        reason: error.to_string(),
    })
}

/// Parses `1=host:port,2=host:port,...`.
pub fn parse_peers(text: &str) -> Result<BTreeMap<NodeId, SocketAddr>, ConfigError> {
    let mut peers = BTreeMap::new();
    for pair in text
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (id, address) = pair
            .split_once('=')
            .ok_or_else(|| invalid("peers", format!("`{pair}` is not ID=ADDRESS")))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| invalid("peers", format!("`{id}` is not a node id")))?;
        if id == 0 {
            return Err(invalid("peers", "node ids start at 1".into()));
        }
        let address: SocketAddr = address
            .trim()
            .parse()
            .map_err(|error| invalid("peers", format!("`{address}`: {error}")))?;
        if peers.insert(NodeId(id), address).is_some() {
            return Err(invalid("peers", format!("node {id} is listed twice")));
        }
    }
    if peers.is_empty() {
        return Err(invalid("peers", "no members".into()));
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            id: Some(2),
            data_dir: Some("data".into()),
            http_addr: Some("127.0.0.1:8002".parse().expect("address")),
            peers: Some("1=127.0.0.1:9001, 2=127.0.0.1:9002,3=127.0.0.1:9003".into()),
            ..ServeArgs::default()
        }
    }

    #[test]
    fn the_raft_address_defaults_to_this_node_in_the_peer_list() {
        let config = args().resolve().expect("valid");
        assert_eq!(config.raft_addr, "127.0.0.1:9002".parse().expect("address"));
        assert_eq!(config.peers.len(), 3);
        assert_eq!(config.value_bytes_max, 1024 * 1024);
    }

    #[test]
    fn the_advertised_raft_address_is_the_flag_else_the_peer_entry_else_the_bind_address() {
        let mut args = args();
        args.raft_addr = Some("0.0.0.0:9002".parse().expect("address"));
        let config = args.clone().resolve().expect("valid");
        assert_eq!(config.raft_addr, "0.0.0.0:9002".parse().expect("address"));
        assert_eq!(
            config.advertised_raft_addr,
            "127.0.0.1:9002".parse().expect("address")
        );
        args.advertise_raft_addr = Some("10.0.0.9:7102".parse().expect("address"));
        let config = args.clone().resolve().expect("valid");
        assert_eq!(
            config.advertised_raft_addr,
            "10.0.0.9:7102".parse().expect("address")
        );
        args.peers = None;
        args.advertise_raft_addr = None;
        args.join = Some("127.0.0.1:8001".into());
        let config = args.resolve().expect("valid");
        assert_eq!(
            config.advertised_raft_addr,
            "0.0.0.0:9002".parse().expect("address")
        );
    }

    #[test]
    fn bad_peer_lists_are_refused_with_a_reason() {
        for (text, reason) in [
            ("1=127.0.0.1:9001,1=127.0.0.1:9002", "twice"),
            ("x=127.0.0.1:9001", "not a node id"),
            ("1=nowhere", "nowhere"),
            ("1", "not ID=ADDRESS"),
            ("0=127.0.0.1:1", "start at 1"),
            ("", "no members"),
        ] {
            let error = parse_peers(text).expect_err(text).to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn a_joining_node_needs_its_raft_address_and_no_peer_list() {
        let mut args = args();
        args.peers = None;
        args.join = Some("127.0.0.1:8001".into());
        let error = args
            .clone()
            .resolve()
            .expect_err("no raft address")
            .to_string();
        assert!(error.contains("raft_addr"), "{error}");
        args.raft_addr = Some("127.0.0.1:9004".parse().expect("address"));
        let config = args.clone().resolve().expect("valid");
        assert!(config.peers.is_empty());
        assert_eq!(config.join.as_deref(), Some("127.0.0.1:8001"));
        args.peers = Some("2=127.0.0.1:9002".into());
        let error = args.resolve().expect_err("both").to_string();
        assert!(error.contains("not both"), "{error}");
    }

    #[test]
    fn a_node_missing_from_its_peer_list_is_refused() {
        let mut args = args();
        args.id = Some(7);
        let error = args.resolve().expect_err("not listed").to_string();
        assert!(error.contains("node 7 is not listed"), "{error}");
    }

    #[test]
    fn the_file_fills_what_flags_leave_unset_and_flags_win() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 3\nsessions_max = 10\ndata_dir = \"from-file\"\nhttp_addr = \"127.0.0.1:8003\"\n\
             peers = \"3=127.0.0.1:9003\"\n",
        )
        .expect("writes");
        let config = ServeArgs {
            config: Some(path.clone()),
            data_dir: Some("from-flag".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .expect("valid");
        assert_eq!(config.id, NodeId(3));
        assert_eq!(config.sessions_max, 10);
        assert_eq!(config.data_dir, PathBuf::from("from-flag"));
        std::fs::write(&path, "idd = 3\n").expect("writes");
        let error = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        }
        .resolve()
        .expect_err("unknown key")
        .to_string();
        assert!(error.contains("idd"), "{error}");
    }

    #[test]
    fn http_limits_and_tokens_come_from_flags_or_the_file_and_are_checked_at_start() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(
            &tokens,
            "[[token]]\nname = \"nodes\"\nrole = \"admin\"\ntoken = \"0123456789abcdef-admin\"\n",
        )
        .expect("writes");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            format!(
                "http_connections_max = 5\nhttp_idle_timeout_ms = 1500\npublic_status = true\n\
                 auth_tokens = {:?}\n",
                tokens.display().to_string()
            ),
        )
        .expect("writes");
        let mut args = args();
        args.config = Some(path);
        args.http_connections_max = Some(7);
        let config = args.clone().resolve().expect("valid");
        let http = args.resolve_http(&config).expect("valid");
        assert_eq!(http.limits.connections_max, 7, "the flag wins");
        assert_eq!(http.limits.idle_timeout, Duration::from_millis(1500));
        assert_eq!(http.limits.requests_in_flight_max, 4096, "the default");
        assert!(http.access.policy.is_some());
        assert!(http.access.node_token.is_some());

        let open = ServeArgs::default().resolve_http(&config).expect("valid");
        assert!(
            open.access.policy.is_none(),
            "no token file: open as before"
        );

        args.http_header_bytes_max = Some(4096);
        let error = args.clone().resolve_http(&config).expect_err("too small");
        assert!(
            error.to_string().contains("http_header_bytes_max"),
            "{error}"
        );
        args.http_header_bytes_max = None;
        args.auth_tokens = Some(dir.path().join("missing.toml"));
        let error = args.resolve_http(&config).expect_err("no such file");
        assert!(error.to_string().contains("missing.toml"), "{error}");
    }
}
