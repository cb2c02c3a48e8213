//! Settings of one `raftkv serve` node, from flags, environment variables and a TOML file.
//!
//! ```text
//!  --flag  >  RAFTKV_* environment variable  >  --config FILE (TOML)  >  default
//!
//!  serve_settings! { name: FlagType [ENV] clap(..) default(..); ... }   one entry per setting
//!        ├─► ServeArgs      the flags (clap; `--name-with-dashes`, its environment variable)
//!        ├─► FileSettings   the file's keys (serde; `name_with_underscores`, unknown keys refused)
//!        └─► Merged         flag, else file, else the default: what `resolve*` read
//! ```
//!
//! clap resolves a flag and its environment variable; the file fills what both left unset.
//! Every setting is declared once, in the `serve_settings!` table below: its name (the flag
//! and the file key), its environment variable, its type, its default and its doc (the flag's
//! help). A setting whose default depends on others (the Raft addresses, the body bytes in
//! flight) has none there and is derived in [`ServeArgs::resolve`] or
//! [`ServeArgs::resolve_http`], as its comment in the table says.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use raft_core::NodeId;
use serde::Deserialize;
use thiserror::Error;

use crate::limits::HttpLimits;

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

/// Declares every `serve` setting once and generates from the list the flags ([`ServeArgs`]),
/// the file's keys (`FileSettings`) and their merge (`Merged`, built by `ServeArgs::merged`).
///
/// Each entry is `name: FlagType [ENV] clap(extra arg attributes)? default(expression)?;`
/// after its doc. An `Option<T>` setting is `Option<T>` as a key too, and in `Merged` a `T`
/// when it has a default (flag, else file, else default), else still an `Option<T>`. A `bool`
/// is a switch: a flag without a value (`--public-metrics`) and a `true`/`false` key
/// ([`Flag`] says how they merge); it is off by default.
macro_rules! serve_settings {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $flag:ty [$env:literal] $(clap($($clap:tt)*))? $(default($default:expr))?;
    )*) => {
        /// `raftkv serve` flags; every one may also come from its environment variable or the
        /// config file.
        #[derive(Clone, Debug, Default, clap::Args)]
        pub struct ServeArgs {
            /// A TOML file with any of the settings below (keys as the flags, with underscores:
            /// `id`, `data_dir`, `raft_addr`, `http_addr`, `peers`, ...).
            #[arg(long, env = "RAFTKV_CONFIG")]
            pub config: Option<PathBuf>,
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $env $(, $($clap)*)?)]
                pub $name: $flag,
            )*
        }

        /// The same settings as read from a TOML file.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileSettings {
            $($name: <$flag as Flag>::InFile,)*
        }

        /// Every setting after precedence: the flag (or its environment variable), else the
        /// file, else the default.
        #[derive(Debug)]
        struct Merged {
            $($name: serve_settings!(@merged $flag $(, $default)?),)*
        }

        impl ServeArgs {
            /// The settings of the flags and of the file (read now, if given), merged.
            fn merged(&self) -> Result<Merged, ConfigError> {
                let file = match &self.config {
                    Some(path) => read_file(path)?,
                    None => FileSettings::default(),
                };
                Ok(Merged {
                    $($name: serve_settings!(
                        @merge Flag::merge(self.$name.clone(), file.$name) $(, $default)?
                    ),)*
                })
            }
        }
    };
    (@merged $flag:ty) => { $flag };
    (@merged $flag:ty, $default:expr) => { <$flag as Flag>::Value };
    (@merge $merged:expr) => { $merged };
    (@merge $merged:expr, $default:expr) => { $merged.unwrap_or_else(|| $default) };
}

/// How a flag's type reads in the file and merges with it: an `Option<T>` flag is an optional
/// key, the flag winning; a `bool` switch is an optional `true`/`false` key, which a flag can
/// only turn on (the file decides when the flag is absent).
trait Flag {
    /// The key's type in the file.
    type InFile;
    /// The value a default stands in for.
    type Value;
    /// The flag merged with the file's key.
    fn merge(self, file: Self::InFile) -> Self;
}

impl<T> Flag for Option<T> {
    type InFile = Option<T>;
    type Value = T;
    fn merge(self, file: Option<T>) -> Option<T> {
        self.or(file)
    }
}

impl Flag for bool {
    type InFile = Option<bool>;
    type Value = bool;
    fn merge(self, file: Option<bool>) -> bool {
        self || file.unwrap_or(false)
    }
}

serve_settings! {
    /// This node's id (a positive integer, one of the ids in --peers).
    id: Option<u64> ["RAFTKV_ID"];
    /// Directory of this node's write-ahead log and snapshots; created if missing. A node
    /// restarted on the same directory rejoins with its state.
    data_dir: Option<PathBuf> ["RAFTKV_DATA_DIR"];
    /// Address the Raft transport listens on (peers connect here).
    // Default: this node's entry in `peers` (required when joining).
    raft_addr: Option<SocketAddr> ["RAFTKV_RAFT_ADDR"];
    /// Address the HTTP API listens on.
    http_addr: Option<SocketAddr> ["RAFTKV_HTTP_ADDR"];
    /// Address the etcd v3 gRPC API listens on (etcdctl and etcd's client libraries talk to
    /// it); none by default.
    grpc_addr: Option<SocketAddr> ["RAFTKV_GRPC_ADDR"];
    /// The Raft address other nodes dial to reach this one, when it is not the address it
    /// listens on (behind a proxy or NAT). Default: this node's entry in --peers, else
    /// --raft-addr.
    // Default: this node's entry in `peers`, else `raft_addr`.
    advertise_raft_addr: Option<SocketAddr> ["RAFTKV_ADVERTISE_RAFT_ADDR"];
    /// Every member, this node included, as ID=RAFT_ADDR pairs separated by commas, e.g.
    /// `1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003`.
    peers: Option<String> ["RAFTKV_PEERS"] clap(conflicts_with = "join");
    /// Instead of --peers: the HTTP address of any member of a running cluster. A new node
    /// asks it for the members, is added as a learner and promotes itself to voter once it
    /// has caught up; restarted later (same data directory), it rejoins with its state.
    join: Option<String> ["RAFTKV_JOIN"];
    /// A name shared by the members; a connection from another cluster is refused. Default:
    /// the one in the data directory's CLUSTER_ID file (written by `raftkv snapshot restore`
    /// and `raftkv recover`), else `raftkv`; a value that contradicts that file is refused.
    // Default: `cluster_id_for` (the data directory's file, else `DEFAULT_CLUSTER_ID`).
    cluster_id: Option<String> ["RAFTKV_CLUSTER_ID"];
    /// Serve the HTTP API over HTTPS with this certificate (PEM, the node's certificate
    /// first). Needs --tls-key, and a CA to verify the other nodes with when it calls them
    /// (--tls-ca or --peer-tls-ca): with it, the node reaches the others' HTTP addresses
    /// over https:// and presents this certificate. `raftkv certs` makes suitable files.
    tls_cert: Option<PathBuf> ["RAFTKV_TLS_CERT"];
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    tls_key: Option<PathBuf> ["RAFTKV_TLS_KEY"];
    /// Require HTTPS clients to present a certificate signed by this CA (PEM). The node also
    /// trusts it for the other nodes' HTTPS certificates.
    tls_ca: Option<PathBuf> ["RAFTKV_TLS_CA"];
    /// Mutual TLS on the Raft transport: this node's certificate (PEM), which must carry the
    /// DNS name `node-ID` and be signed by --peer-tls-ca. Give all three --peer-tls-* or none;
    /// every member must then use TLS with the same CA.
    peer_tls_cert: Option<PathBuf> ["RAFTKV_PEER_TLS_CERT"];
    /// The private key of --peer-tls-cert (PEM).
    peer_tls_key: Option<PathBuf> ["RAFTKV_PEER_TLS_KEY"];
    /// The cluster CA (PEM) every peer's certificate must chain to; a peer with another
    /// certificate is refused during the TLS handshake.
    peer_tls_ca: Option<PathBuf> ["RAFTKV_PEER_TLS_CA"];
    /// Take a snapshot once about this many bytes of commands were applied since the last
    /// one, or, when the state (with its history) is larger, about the state's size, so that
    /// snapshot work stays in proportion to the writes as the state grows: each node draws
    /// its own factor at start, between 0.75 and 1.25, so that the nodes of a cluster do not
    /// all stop to write a snapshot at the same moment.
    snapshot_threshold_bytes: Option<u64> ["RAFTKV_SNAPSHOT_THRESHOLD_BYTES"]
        default(64 * 1024 * 1024);
    /// Client sessions remembered for exactly-once writes; beyond it the least recently
    /// active is forgotten.
    sessions_max: Option<usize> ["RAFTKV_SESSIONS_MAX"] default(100_000);
    /// Longest key, in bytes.
    key_bytes_max: Option<usize> ["RAFTKV_KEY_BYTES_MAX"] default(raftkv_client::api::KEY_BYTES_MAX);
    /// Largest value, in bytes.
    value_bytes_max: Option<usize> ["RAFTKV_VALUE_BYTES_MAX"]
        default(raftkv_client::api::VALUE_BYTES_MAX);
    /// How long a request may wait for commit (or for the leader, when forwarded), in
    /// milliseconds.
    request_timeout_ms: Option<u64> ["RAFTKV_REQUEST_TIMEOUT_MS"] default(5_000);
    /// Length of a Raft tick in milliseconds (elections time out after 15–30 ticks).
    tick_ms: Option<u64> ["RAFTKV_TICK_MS"] default(20);
    /// Threads serving the HTTP API (default: one per CPU core); the Raft node and the apply
    /// loop have a thread of their own besides, and the log its writer thread. Nodes sharing a
    /// machine do better with fewer: the cores divided among them (`raftkv dev` does this).
    // Default: one per CPU core (`None` in `ServeConfig`).
    worker_threads: Option<usize> ["RAFTKV_WORKER_THREADS"];
    /// A TOML file of bearer tokens: `[[token]]` tables with a unique `name`, a `role`
    /// (read-only, read-write or admin) and `token_sha256` (64 hex digits: the SHA-256 of the
    /// token, `printf %s TOKEN | sha256sum`) or `token` (the token itself, 16 characters or
    /// more). Every HTTP request must then carry `Authorization: Bearer <token>` whose role
    /// allows it: reads need read-only, writes read-write, membership changes and leader
    /// transfer admin. Without this file the API is open to anyone.
    auth_tokens: Option<PathBuf> ["RAFTKV_AUTH_TOKENS"];
    /// A file whose first line is the token this node sends on its own calls to other nodes
    /// (announcing its address, joining); it must be an admin token of theirs. Default: the
    /// first admin entry of --auth-tokens given as `token`.
    cluster_token_file: Option<PathBuf> ["RAFTKV_CLUSTER_TOKEN_FILE"];
    /// Start as a node that lost nothing even after an unclean stop (a crash, a kill, a
    /// power loss: no clean-shutdown marker in the data directory). By default such a node
    /// first recovers with the other voters' help and votes only once that is safe, because
    /// a disk whose write cache lies about fsync may have lost what the node acknowledged.
    /// Only for disks known to keep every synced write: if one lost writes after all, the
    /// node may vote twice in a term and committed entries can be lost.
    trust_unclean_restart: bool ["RAFTKV_TRUST_UNCLEAN_RESTART"]
        clap(value_parser = clap::builder::BoolishValueParser::new());
    /// Recover after every unclean stop (no clean-shutdown marker), not only after one whose
    /// log shows damage (a torn tail cut): for disks whose write cache may acknowledge an
    /// fsync it has not done, which leaves no trace of the loss. Costs availability: a node
    /// restarted after a crash counts as down until the other voters answered it.
    distrust_unclean_restart: bool ["RAFTKV_DISTRUST_UNCLEAN_RESTART"]
        clap(value_parser = clap::builder::BoolishValueParser::new());
    /// With --auth-tokens: let anyone read /metrics (for a scraper without a token).
    public_metrics: bool ["RAFTKV_PUBLIC_METRICS"]
        clap(value_parser = clap::builder::BoolishValueParser::new());
    /// With --auth-tokens: let anyone read /v1/status (for load balancers' health checks).
    public_status: bool ["RAFTKV_PUBLIC_STATUS"]
        clap(value_parser = clap::builder::BoolishValueParser::new());
    /// Milliseconds between checks of the TLS files (certificates, keys, CAs) and the token
    /// files for changes (default 1000): a changed file is reloaded without a restart once its
    /// content has stayed the same for one interval, if it is valid. 0: only on SIGHUP.
    config_watch_interval_ms: Option<u64> ["RAFTKV_CONFIG_WATCH_INTERVAL_MS"]
        default(1000);
    /// HTTP connections open at once (default 10000); one more is closed as it is accepted.
    http_connections_max: Option<usize> ["RAFTKV_HTTP_CONNECTIONS_MAX"]
        default(HttpLimits::default().connections_max);
    /// HTTP requests handled at once (default 4096); one more is answered 503 with
    /// Retry-After, its body unread.
    http_requests_in_flight_max: Option<usize> ["RAFTKV_HTTP_REQUESTS_IN_FLIGHT_MAX"]
        default(HttpLimits::default().requests_in_flight_max);
    /// Bytes of request bodies held at once over all requests, each counted at its declared
    /// length from before it is read until it is answered (default 268435456); a body beyond
    /// it is answered 503 with Retry-After, unread.
    // Default: `HttpLimits::default()`'s, raised to fit one request of the largest key and
    // value.
    http_body_bytes_in_flight_max: Option<usize> ["RAFTKV_HTTP_BODY_BYTES_IN_FLIGHT_MAX"];
    /// Bytes of a request's line and headers (default 65536); more is answered 431.
    http_header_bytes_max: Option<usize> ["RAFTKV_HTTP_HEADER_BYTES_MAX"]
        default(HttpLimits::default().header_bytes_max);
    /// Headers in a request (default 100); more is answered 431.
    http_headers_max: Option<usize> ["RAFTKV_HTTP_HEADERS_MAX"]
        default(HttpLimits::default().headers_max);
    /// Milliseconds a client has to send a request's head once it started (against
    /// slowloris: the connection is closed), and again its body (408); default 10000.
    http_request_read_timeout_ms: Option<u64> ["RAFTKV_HTTP_REQUEST_READ_TIMEOUT_MS"]
        default(milliseconds(HttpLimits::default().request_read_timeout));
    /// Milliseconds a connection may wait for its next request before it is closed
    /// (default 60000).
    http_idle_timeout_ms: Option<u64> ["RAFTKV_HTTP_IDLE_TIMEOUT_MS"]
        default(milliseconds(HttpLimits::default().idle_timeout));
    /// Revisions of history kept for reads at a past revision and watches from one: the
    /// leader compacts the history to the last this many revisions (0: no compaction by
    /// count).
    history_retention_revisions: Option<u64> ["RAFTKV_HISTORY_RETENTION_REVISIONS"]
        default(CoordinationSettings::default().history_retention_revisions);
    /// History kept by age, e.g. `90s`, `30m`, `1h`, `7d`: the leader compacts away the
    /// revisions older than this (measured on its own monotonic clock since it began
    /// leading). Default: off. With --history-retention-revisions too, the history is cut at
    /// whichever of the two keeps less.
    history_retention: Option<String> ["RAFTKV_HISTORY_RETENTION"];
    /// Revisions of changes held in memory for live watchers (the broadcast window): a
    /// watcher that falls this many revisions behind the store is cancelled (`lagged`) with
    /// the revision to resume from.
    watch_window_revisions: Option<usize> ["RAFTKV_WATCH_WINDOW_REVISIONS"]
        default(CoordinationSettings::default().watch_window_revisions);
    /// Milliseconds between progress notifications of an idle watch, unless the watch asks
    /// for another interval (0: none).
    watch_progress_interval_ms: Option<u64> ["RAFTKV_WATCH_PROGRESS_INTERVAL_MS"]
        default(milliseconds(CoordinationSettings::default().watch_progress_interval));
    /// Interval of the progress notifications of an idle etcd watch created with
    /// `progress_notify` (gRPC API), e.g. `10m` (etcd's), `30s`, `500ms`.
    watch_progress_notify_interval: Option<String> ["RAFTKV_WATCH_PROGRESS_NOTIFY_INTERVAL"]
        default("10m".to_string());
    /// Shortest lease TTL, in seconds (default 2): a grant asking for less gets this, as etcd
    /// does.
    lease_ttl_min_seconds: Option<u64> ["RAFTKV_LEASE_TTL_MIN_SECONDS"]
        default(CoordinationSettings::default().lease_ttl_min_seconds);
    /// Longest lease TTL, in seconds (default 2592000, 30 days): a grant asking for more is
    /// refused (400).
    lease_ttl_max_seconds: Option<u64> ["RAFTKV_LEASE_TTL_MAX_SECONDS"]
        default(CoordinationSettings::default().lease_ttl_max_seconds);
    /// How often the leader records in the log how much of each lease's TTL is left (a
    /// checkpoint), e.g. `90s`, `5m`, `1h`, so that a lease that is not kept alive still
    /// expires when leaders change more often than its TTL (a new leader starts from the
    /// checkpoint, not the full TTL). Default `5m`; `0`: never.
    lease_checkpoint_interval: Option<String> ["RAFTKV_LEASE_CHECKPOINT_INTERVAL"]
        default("5m".to_string());
    /// How often the leader checks that the members hold the same state, e.g. `90s`, `5m`,
    /// `1h`: it proposes a hash check, every member hashes its state at that entry's index,
    /// and a member whose hash differs is reported (metric
    /// `raftkv_consistency_divergent_members`, an error in the log). Default `5m`; `0`:
    /// never (`raftkv check consistency` still runs one on demand).
    consistency_check_interval: Option<String> ["RAFTKV_CONSISTENCY_CHECK_INTERVAL"]
        default("5m".to_string());
}

/// The cluster id of a node given none, in a data directory that records none.
pub const DEFAULT_CLUSTER_ID: &str = "raftkv";

/// The cluster id a node runs with: `given` (flag, environment or file), else the one
/// `data_dir` records (`raftkv snapshot restore` and `raftkv recover` write it), else
/// [`DEFAULT_CLUSTER_ID`]. A given id that contradicts the recorded one is refused: the
/// directory belongs to another cluster.
fn cluster_id_for(
    given: Option<String>,
    data_dir: Option<&std::path::Path>,
) -> Result<String, ConfigError> {
    let recorded = match data_dir {
        Some(dir) => crate::backup::data_dir::read_cluster_id(dir)
            .map_err(|error| invalid("cluster_id", error.to_string()))?,
        None => None,
    };
    match (given, recorded) {
        (Some(given), Some(recorded)) if given != recorded => Err(invalid(
            "cluster_id",
            format!(
                "`{given}`, but the data directory belongs to cluster `{recorded}` (its {} \
                 file)",
                crate::backup::data_dir::CLUSTER_ID_FILE
            ),
        )),
        (Some(given), _) => Ok(given),
        (None, Some(recorded)) => Ok(recorded),
        (None, None) => Ok(DEFAULT_CLUSTER_ID.to_string()),
    }
}

/// The largest `--lease-ttl-max-seconds` accepted: a century.
pub const LEASE_TTL_SECONDS_LIMIT: u64 = 100 * 365 * 86_400;

/// Revision history, watch and lease settings ([`ServeConfig::coordination`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoordinationSettings {
    /// Revisions of history the leader keeps when it compacts automatically (0: no
    /// compaction by count).
    pub history_retention_revisions: u64,
    /// Age of history the leader keeps when it compacts automatically (`None`: no compaction
    /// by age).
    pub history_retention: Option<Duration>,
    /// Capacity of the broadcast window live watchers read from, in revisions.
    pub watch_window_revisions: usize,
    /// Default interval of an idle watch's progress notifications (zero: none).
    pub watch_progress_interval: Duration,
    /// Interval of the progress notifications of an idle etcd watch that asks for them.
    pub watch_progress_notify_interval: Duration,
    /// Shortest lease TTL granted, in seconds (a shorter one asked for is raised to it).
    pub lease_ttl_min_seconds: u64,
    /// Longest lease TTL granted, in seconds (a longer one asked for is refused).
    pub lease_ttl_max_seconds: u64,
    /// How often the leader checkpoints the remaining TTL of leases (zero: never).
    pub lease_checkpoint_interval: Duration,
}

impl Default for CoordinationSettings {
    fn default() -> CoordinationSettings {
        CoordinationSettings {
            history_retention_revisions: 100_000,
            history_retention: None,
            // Measured (docs/configuration.md): 16,384 slots cost about 0.8 MB and let a
            // watcher stall about 0.8 s behind the fastest write rate this service sustains
            // (about 20,000 revisions a second on a laptop) before it is cancelled.
            watch_window_revisions: 16_384,
            watch_progress_interval: Duration::from_secs(10),
            // etcd's default.
            watch_progress_notify_interval: Duration::from_secs(600),
            lease_ttl_min_seconds: 2,
            // 30 days, as etcd's longest.
            lease_ttl_max_seconds: 30 * 86_400,
            lease_checkpoint_interval: Duration::from_secs(300),
        }
    }
}

/// Parses a duration such as `500ms`, `90s`, `30m`, `1h` or `7d` (a whole number and a unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let unit_seconds = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "`{other}` is not a unit of time (ms, s, m, h or d)"
            ))
        }
    };
    number
        .checked_mul(unit_seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// `duration` in whole milliseconds, as the `*_ms` settings count.
fn milliseconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The HTTP server's settings, beside the node's ([`ServeConfig`]): who may use the API and
/// the limits it holds. Resolved by [`ServeArgs::resolve_http`].
#[derive(Clone, Debug, Default)]
pub struct HttpSettings {
    /// Tokens and the node's own token (see [`crate::auth`]).
    pub access: crate::auth::Access,
    /// Connection, request and time limits (see [`crate::limits`]).
    pub limits: crate::limits::HttpLimits,
    /// How often the TLS and token files are checked for changes ([`crate::live_config`]);
    /// zero: only on SIGHUP.
    pub config_watch_interval: Duration,
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
    /// Where the etcd v3 gRPC API listens, if it is served.
    pub grpc_addr: Option<SocketAddr>,
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
    /// Start without recovery after an unclean stop (see `--trust-unclean-restart`).
    pub trust_unclean_restart: bool,
    /// Recover after every unclean stop (see `--distrust-unclean-restart`).
    pub distrust_unclean_restart: bool,
    /// Revision history retention and watch settings.
    pub coordination: CoordinationSettings,
    /// How often the leader runs a consistency check (zero: never).
    pub consistency_check_interval: Duration,
}

impl ServeArgs {
    /// Merges flags, environment and file, and validates the result.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let settings = self.merged()?;
        let id = NodeId(settings.id.ok_or(ConfigError::Missing("id", "id"))?);
        let (peers, raft_addr) = match (settings.peers, settings.join.as_ref()) {
            (Some(_), Some(_)) => {
                return Err(invalid("peers", "give --peers or --join, not both".into()))
            }
            (None, None) => return Err(ConfigError::Missing("peers", "peers (or --join)")),
            (Some(text), None) => {
                let peers = parse_peers(&text)?;
                let Some(own_raft_addr) = peers.get(&id).copied() else {
                    return Err(invalid("peers", format!("node {} is not listed", id.0)));
                };
                (peers, settings.raft_addr.unwrap_or(own_raft_addr))
            }
            (None, Some(_)) => {
                let raft_addr = settings
                    .raft_addr
                    .ok_or(ConfigError::Missing("raft_addr", "raft-addr"))?;
                (BTreeMap::new(), raft_addr)
            }
        };
        let advertised_raft_addr = settings
            .advertise_raft_addr
            .or_else(|| peers.get(&id).copied())
            .unwrap_or(raft_addr);
        let cluster_id = cluster_id_for(settings.cluster_id, settings.data_dir.as_deref())?;
        let config = ServeConfig {
            id,
            advertised_raft_addr,
            data_dir: settings
                .data_dir
                .ok_or(ConfigError::Missing("data_dir", "data-dir"))?,
            raft_addr,
            http_addr: settings
                .http_addr
                .ok_or(ConfigError::Missing("http_addr", "http-addr"))?,
            grpc_addr: settings.grpc_addr,
            peers,
            join: settings.join,
            cluster_id,
            snapshot_threshold_bytes: settings.snapshot_threshold_bytes,
            sessions_max: settings.sessions_max,
            key_bytes_max: settings.key_bytes_max,
            value_bytes_max: settings.value_bytes_max,
            request_timeout: Duration::from_millis(settings.request_timeout_ms),
            tick: Duration::from_millis(settings.tick_ms),
            worker_threads: settings.worker_threads,
            trust_unclean_restart: settings.trust_unclean_restart,
            distrust_unclean_restart: settings.distrust_unclean_restart,
            coordination: CoordinationSettings {
                history_retention_revisions: settings.history_retention_revisions,
                history_retention: settings
                    .history_retention
                    .as_deref()
                    .map(parse_duration)
                    .transpose()
                    .map_err(|reason| invalid("history_retention", reason))?
                    .filter(|retention| !retention.is_zero()),
                watch_window_revisions: settings.watch_window_revisions,
                watch_progress_interval: Duration::from_millis(settings.watch_progress_interval_ms),
                watch_progress_notify_interval: parse_duration(
                    &settings.watch_progress_notify_interval,
                )
                .ok()
                .filter(|interval| !interval.is_zero())
                .ok_or_else(|| {
                    invalid(
                        "watch_progress_notify_interval",
                        format!(
                            "`{}` is not a positive duration such as 500ms, 30s or 10m",
                            settings.watch_progress_notify_interval
                        ),
                    )
                })?,
                lease_ttl_min_seconds: settings.lease_ttl_min_seconds,
                lease_ttl_max_seconds: settings.lease_ttl_max_seconds,
                lease_checkpoint_interval: match settings.lease_checkpoint_interval.trim() {
                    "0" => Duration::ZERO,
                    text => parse_duration(text)
                        .map_err(|reason| invalid("lease_checkpoint_interval", reason))?,
                },
            },
            consistency_check_interval: match settings.consistency_check_interval.trim() {
                "0" => Duration::ZERO,
                text => parse_duration(text)
                    .map_err(|reason| invalid("consistency_check_interval", reason))?,
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// The HTTP server's settings from flags, environment and file (the same precedence as
    /// [`ServeArgs::resolve`]), validated against the node's `config`: the token files are
    /// read and checked now, so a bad one stops the node at start with the reason.
    pub fn resolve_http(&self, config: &ServeConfig) -> Result<HttpSettings, ConfigError> {
        let settings = self.merged()?;
        let body_bytes_max =
            crate::limits::request_body_bytes_max(config.key_bytes_max, config.value_bytes_max);
        let limits = HttpLimits {
            connections_max: settings.http_connections_max,
            requests_in_flight_max: settings.http_requests_in_flight_max,
            body_bytes_in_flight_max: settings
                .http_body_bytes_in_flight_max
                // Values larger than the default allows raise it to fit one request.
                .unwrap_or(
                    HttpLimits::default()
                        .body_bytes_in_flight_max
                        .max(body_bytes_max),
                ),
            header_bytes_max: settings.http_header_bytes_max,
            headers_max: settings.http_headers_max,
            request_read_timeout: Duration::from_millis(settings.http_request_read_timeout_ms),
            idle_timeout: Duration::from_millis(settings.http_idle_timeout_ms),
        };
        limits
            .validate(config.key_bytes_max, body_bytes_max)
            .map_err(|(name, reason)| invalid(name, reason))?;
        let access = crate::auth::Access::load(
            settings.auth_tokens.as_deref(),
            settings.cluster_token_file.as_deref(),
            settings.public_metrics,
            settings.public_status,
        )
        .map_err(|reason| invalid("auth_tokens", reason))?;
        Ok(HttpSettings {
            access,
            limits,
            config_watch_interval: Duration::from_millis(settings.config_watch_interval_ms),
        })
    }

    /// The node's TLS settings from flags, environment and file (the same precedence as
    /// [`ServeArgs::resolve`]): checked to come in usable groups, then every file is read and
    /// parsed now, so a bad one stops the node at start with the reason.
    pub fn resolve_tls(&self) -> Result<crate::tls::NodeTls, ConfigError> {
        let settings = self.merged()?;
        let paths = crate::tls::TlsPaths {
            http_certificate: settings.tls_cert,
            http_key: settings.tls_key,
            http_client_ca: settings.tls_ca,
            peer_certificate: settings.peer_tls_cert,
            peer_key: settings.peer_tls_key,
            peer_ca: settings.peer_tls_ca,
        };
        let tls =
            crate::tls::NodeTls::load(&paths).map_err(|(name, reason)| invalid(name, reason))?;
        if let (Some(peer), Some(id)) = (tls.peer(), settings.id) {
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
        let window = self.coordination.watch_window_revisions;
        // tokio's broadcast channel takes at most usize::MAX / 2 slots; far fewer fit in
        // memory anyway.
        if window == 0 || window > 1 << 24 {
            return Err(invalid(
                "watch_window_revisions",
                "must be between 1 and 16777216".into(),
            ));
        }
        let coordination = &self.coordination;
        if coordination.lease_ttl_min_seconds == 0
            || coordination.lease_ttl_min_seconds > coordination.lease_ttl_max_seconds
            || coordination.lease_ttl_max_seconds > LEASE_TTL_SECONDS_LIMIT
        {
            return Err(invalid(
                "lease_ttl_min_seconds / lease_ttl_max_seconds",
                format!("need 1 <= min <= max <= {}", LEASE_TTL_SECONDS_LIMIT),
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

    #[test]
    fn the_cluster_id_is_the_flag_else_the_data_directorys_and_a_contradiction_is_refused() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut args = args();
        args.data_dir = Some(dir.path().to_path_buf());
        assert_eq!(args.clone().resolve().expect("valid").cluster_id, "raftkv");
        std::fs::write(
            dir.path().join(crate::backup::data_dir::CLUSTER_ID_FILE),
            "restored-1\n",
        )
        .expect("writes");
        assert_eq!(
            args.clone().resolve().expect("valid").cluster_id,
            "restored-1"
        );
        args.cluster_id = Some("restored-1".into());
        assert_eq!(
            args.clone().resolve().expect("valid").cluster_id,
            "restored-1"
        );
        args.cluster_id = Some("raftkv".into());
        let error = args.resolve().expect_err("contradiction").to_string();
        assert!(error.contains("belongs to cluster `restored-1`"), "{error}");
    }

    /// The defaults of the table, as the flags' help and the README state them.
    #[test]
    fn unset_settings_take_their_defaults() {
        let config = args().resolve().expect("valid");
        assert_eq!(config.cluster_id, "raftkv");
        assert_eq!(config.snapshot_threshold_bytes, 64 * 1024 * 1024);
        assert_eq!(config.sessions_max, 100_000);
        assert_eq!(config.key_bytes_max, raftkv_client::api::KEY_BYTES_MAX);
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert_eq!(config.tick, Duration::from_millis(20));
        assert_eq!(config.worker_threads, None);
        assert!(
            !config.trust_unclean_restart && !config.distrust_unclean_restart,
            "a restart recovers when its log shows damage, not after every crash"
        );
        let http = args().resolve_http(&config).expect("valid");
        let defaults = HttpLimits::default();
        assert_eq!(http.limits.connections_max, 10_000);
        assert_eq!(http.limits.requests_in_flight_max, 4096);
        assert_eq!(http.limits.header_bytes_max, defaults.header_bytes_max);
        assert_eq!(http.limits.headers_max, defaults.headers_max);
        assert_eq!(http.limits.request_read_timeout, Duration::from_secs(10));
        assert_eq!(http.limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(
            http.limits.body_bytes_in_flight_max,
            defaults.body_bytes_in_flight_max
        );
        assert!(http.access.policy.is_none(), "no token file: open");
        assert_eq!(config.coordination, CoordinationSettings::default());
    }

    #[test]
    fn the_consistency_check_interval_is_five_minutes_unless_set_and_zero_turns_it_off() {
        let config = args().resolve().expect("valid");
        assert_eq!(config.consistency_check_interval, Duration::from_secs(300));
        let mut args = args();
        args.consistency_check_interval = Some("0".into());
        let config = args.clone().resolve().expect("valid");
        assert_eq!(config.consistency_check_interval, Duration::ZERO);
        args.consistency_check_interval = Some("750ms".into());
        let config = args.clone().resolve().expect("valid");
        assert_eq!(
            config.consistency_check_interval,
            Duration::from_millis(750)
        );
        args.consistency_check_interval = Some("hourly".into());
        let error = args.resolve().expect_err("refused").to_string();
        assert!(error.contains("consistency_check_interval"), "{error}");
    }

    #[test]
    fn history_retention_takes_a_duration_with_its_unit_and_refuses_anything_else() {
        for (text, expected) in [
            ("500ms", Duration::from_millis(500)),
            ("90s", Duration::from_secs(90)),
            ("30m", Duration::from_secs(1800)),
            ("1h", Duration::from_secs(3600)),
            ("7d", Duration::from_secs(7 * 86_400)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for text in ["", "h", "1", "1 week", "-1s", "99999999999999999999d"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
        let mut args = args();
        args.history_retention = Some("2h".into());
        args.history_retention_revisions = Some(0);
        args.watch_window_revisions = Some(64);
        args.watch_progress_interval_ms = Some(250);
        args.watch_progress_notify_interval = Some("2s".into());
        args.lease_ttl_min_seconds = Some(5);
        args.lease_ttl_max_seconds = Some(60);
        args.lease_checkpoint_interval = Some("0".into());
        let config = args.clone().resolve().expect("valid");
        assert_eq!(
            config.coordination,
            CoordinationSettings {
                history_retention_revisions: 0,
                history_retention: Some(Duration::from_secs(7200)),
                watch_window_revisions: 64,
                watch_progress_interval: Duration::from_millis(250),
                watch_progress_notify_interval: Duration::from_secs(2),
                lease_ttl_min_seconds: 5,
                lease_ttl_max_seconds: 60,
                lease_checkpoint_interval: Duration::ZERO,
            }
        );
        args.lease_checkpoint_interval = Some("90s".into());
        let config = args.clone().resolve().expect("valid");
        assert_eq!(
            config.coordination.lease_checkpoint_interval,
            Duration::from_secs(90)
        );
        args.lease_checkpoint_interval = Some("often".into());
        let error = args.clone().resolve().expect_err("refused").to_string();
        assert!(error.contains("lease_checkpoint_interval"), "{error}");
        args.lease_checkpoint_interval = None;
        for bad in ["0", "0s", "soon"] {
            args.watch_progress_notify_interval = Some(bad.into());
            let error = args.clone().resolve().expect_err("refused").to_string();
            assert!(error.contains("watch_progress_notify_interval"), "{error}");
        }
        args.watch_progress_notify_interval = None;
        args.lease_ttl_min_seconds = Some(61);
        let error = args.clone().resolve().expect_err("refused").to_string();
        assert!(error.contains("lease_ttl_min_seconds"), "{error}");
        args.lease_ttl_min_seconds = None;
        args.history_retention = Some("2 fortnights".into());
        let error = args.clone().resolve().expect_err("refused").to_string();
        assert!(error.contains("history_retention"), "{error}");
        args.history_retention = None;
        args.watch_window_revisions = Some(0);
        let error = args.resolve().expect_err("refused").to_string();
        assert!(error.contains("watch_window_revisions"), "{error}");
    }

    #[test]
    fn trusting_unclean_restarts_is_a_switch_of_the_flags_or_the_file() {
        let mut flagged = args();
        flagged.trust_unclean_restart = true;
        assert!(flagged.resolve().expect("valid").trust_unclean_restart);
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "trust_unclean_restart = true\n").expect("writes");
        let mut from_file = args();
        from_file.config = Some(path);
        assert!(from_file.resolve().expect("valid").trust_unclean_restart);
    }

    #[test]
    fn distrusting_unclean_restarts_is_a_switch_of_the_flags_or_the_file() {
        let mut flagged = args();
        flagged.distrust_unclean_restart = true;
        assert!(flagged.resolve().expect("valid").distrust_unclean_restart);
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "distrust_unclean_restart = true\n").expect("writes");
        let mut from_file = args();
        from_file.config = Some(path);
        assert!(from_file.resolve().expect("valid").distrust_unclean_restart);
    }

    /// Flags are `--name-with-dashes` and switches take no value; `--peers` and `--join`
    /// exclude each other.
    #[test]
    fn the_table_declares_the_flags_as_before() {
        #[derive(Debug, clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        let parsed = <Serve as clap::Parser>::try_parse_from([
            "serve",
            "--id",
            "2",
            "--data-dir",
            "d",
            "--advertise-raft-addr",
            "10.0.0.9:7102",
            "--http-idle-timeout-ms",
            "1500",
            "--public-metrics",
        ])
        .expect("parses");
        assert_eq!(parsed.args.id, Some(2));
        assert_eq!(parsed.args.data_dir, Some(PathBuf::from("d")));
        assert_eq!(parsed.args.http_idle_timeout_ms, Some(1500));
        assert!(parsed.args.public_metrics);
        assert!(!parsed.args.public_status);
        let both = <Serve as clap::Parser>::try_parse_from([
            "serve",
            "--peers",
            "1=127.0.0.1:9001",
            "--join",
            "127.0.0.1:8001",
        ]);
        assert!(both.is_err(), "--peers conflicts with --join");
    }
}
