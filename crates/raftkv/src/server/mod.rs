//! The server runtime: one raftkv node, a [`RaftNode`] over TCP and a write-ahead log, the
//! store ([`crate::store`]) fed by the apply channel, and the write and read paths the HTTP API
//! calls.
//!
//! ```text
//!  KvServer::start ─► Wal::open, TcpTransport, RaftNode on the node's runtime (node_runtime)
//!        │                                 └─► apply loop (apply) ─► StateMachine, Waiters
//!        ▼
//!  write   (proposals)  register waiter ─► propose ─► answered once applied
//!  read    (reads)      read index ─► wait applied ─► read the state
//!  held    (leadership) a request refused for a leadership change is tried again
//!  members (membership) follow configurations, announce addresses, join, transfer
//!  snapshot(snapshots)  staggered threshold ─► encode off the apply path ─► compact
//!  backup  (backup)     read barrier ─► image ─► encode off the apply path ─► a backup's header
//!  serve   (launch)     `raftkv serve`: settings ─► KvServer + HTTP API ─► stop on a signal
//!  counted (counters)   the service's own counters, each declared once
//!  watch   (watches)    the watch hub the apply loop feeds; a watcher's history
//!  compact (retention)  the leader's automatic compaction by retention
//!  leases  (leases)     the lessor's wiring: promotion, the expiry scan, keepalives
//!  lessor  (lessor)     the promoted leader's lease deadlines on the lease clock
//!  hashes  (state_hashes) this node's hashes of its state at hash checks, taken off the apply
//!                       path
//!  check   (consistency) the leader's consistency checks: the members' hashes compared
//! ```

mod apply;
mod backup;
mod consistency;
mod counters;
mod error;
mod idle;
mod launch;
mod leadership;
mod leases;
mod lessor;
mod membership;
mod node_runtime;
mod proposals;
mod reads;
mod retention;
mod snapshots;
mod state_hashes;
mod watches;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use raft_core::{Config, Configuration, NodeId, Role};
use raft_node::transport::tcp::{TcpConfig, TcpTransport};
use raft_node::{NodeConfig, RaftNode};
use raft_wal::{HistogramSnapshot, LatencyHistogram, Wal, WalOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use backup::BackupSnapshotError;
pub use consistency::{ConsistencyFigures, StateHashFetcher};
pub use counters::{ServiceCounters, ServiceFigures};
pub use error::{membership_refusal_is_transient, ServeError};
pub use launch::{serve, stop_signal};
pub use leases::{LeaseGrantError, LeaseTimeToLive};
pub use membership::{AnnounceForwarder, AnnouncedAddresses};
pub use proposals::{Route, WriteResult};
pub use reads::ReadMode;
pub use state_hashes::{StateHash, StateHashAnswer};

use crate::auth::BearerToken;
use crate::settings::ServeConfig;
use crate::store::StateMachine;
use apply::apply_loop;
use membership::{join_loop, members_at};
use node_runtime::NodeRuntime;
use proposals::{Answers, RequestIds, Waiters};

/// A running raftkv node. Cheap to share (`Arc`).
pub struct KvServer {
    config: ServeConfig,
    node: RaftNode,
    /// A handle on the node's transport, to follow membership changes.
    transport: TcpTransport,
    state: Mutex<StateMachine>,
    /// Shared with the node's event loop, which records where each write was placed.
    waiters: Arc<Mutex<Waiters>>,
    /// The apply loop's progress: every entry through this index is reflected in `state`.
    applied: watch::Receiver<u64>,
    /// The ids this node's writes carry, to recognise their entries when applied.
    request_ids: RequestIds,
    /// The token of this node's own calls to other nodes (joining), when they need one.
    node_token: Option<BearerToken>,
    /// HTTPS and peer TLS settings; none by default.
    tls: crate::tls::NodeTls,
    /// Service-level counters, exported as metrics.
    pub counters: ServiceCounters,
    /// The highest term in which this node was seen knowing a leader (noted by the apply loop
    /// and the request paths), for [`KvServer::is_electing`].
    leader_known_in_term: AtomicU64,
    /// Longest a request waits for a leadership change to pass: two election timeouts, the
    /// longest a transfer lasts (the core abandons one after an election timeout, thesis
    /// §3.10) and then some for the new leader to make itself known; at most the request
    /// timeout.
    leadership_change_hold: Duration,
    /// The way the apply loop's answers reach the HTTP runtime.
    answers: Answers,
    /// Where the node, its transport and the apply loop run.
    node_runtime: NodeRuntime,
    /// How long the write-ahead log's fdatasyncs take, taken from the log before the node
    /// moved it to its storage thread.
    wal_sync_latency: Arc<LatencyHistogram>,
    /// The changes the apply loop applied, handed to the watchers.
    watch_hub: crate::watch::WatchHub,
    /// The leases' deadlines, while this node is the promoted leader.
    lessor: Mutex<lessor::Lessor>,
    /// This node's hashes of its state at hash checks' indexes.
    state_hashes: state_hashes::StateHashes,
    /// What this node's consistency checks found.
    consistency: consistency::ConsistencyCounters,
}

impl KvServer {
    /// Opens the data directory, starts the transport and the node, and the apply loop.
    pub async fn start(config: ServeConfig) -> Result<Arc<KvServer>, String> {
        KvServer::start_with_node_token(config, None).await
    }

    /// [`KvServer::start`] for a cluster whose nodes run with `--auth-tokens`: joining
    /// (`--join`) asks the other nodes with `node_token`, which must be an admin token of
    /// theirs (adding and promoting a member are admin requests).
    pub async fn start_with_node_token(
        config: ServeConfig,
        node_token: Option<BearerToken>,
    ) -> Result<Arc<KvServer>, String> {
        KvServer::start_with_tls(config, node_token, crate::tls::NodeTls::default()).await
    }

    /// [`KvServer::start_with_node_token`] with TLS: the Raft transport uses `tls`'s peer
    /// settings, and calls to other nodes (joining) go over HTTPS when `tls` serves it.
    pub async fn start_with_tls(
        config: ServeConfig,
        node_token: Option<BearerToken>,
        tls: crate::tls::NodeTls,
    ) -> Result<Arc<KvServer>, String> {
        // `Wal::open` creates a missing data directory and syncs its parent, so that the new
        // directory survives a crash (creating it here first would skip that sync).
        // A joining node starts outside any configuration: it learns the membership, itself
        // included, from the leader's log once it is added.
        let voters = Configuration::new(config.peers.keys().copied());
        let wal_options = WalOptions {
            distrust_unclean_shutdown: config.distrust_unclean_restart,
            ..WalOptions::default()
        };
        let wal = Wal::open(&config.data_dir, voters, wal_options)
            .map_err(|error| format!("cannot open the log: {error}"))?;
        let report = wal.recovery_report();
        tracing::info!(?report, "write-ahead log opened");
        let wal_sync_latency = wal.sync_latency();
        // Only a node that holds nothing yet asks the --join address who the members are. One
        // that joined before knows them from its own snapshot and log, and must start even when
        // the node it once joined through has left the cluster since.
        let holds_nothing = report.entries == 0 && report.snapshot.index.0 == 0;
        let joined_peers = match &config.join {
            Some(join) if holds_nothing => {
                members_at(join, config.id, node_token.as_ref(), &tls).await?
            }
            _ => BTreeMap::new(),
        };
        let node_runtime = NodeRuntime::start()?;
        // Everything the node and its transport spawn, and the sockets they open, belong to the
        // node's runtime from here.
        let entered = node_runtime.enter();
        let listener = std::net::TcpListener::bind(config.raft_addr)
            .and_then(|listener| {
                listener.set_nonblocking(true)?;
                TcpListener::from_std(listener)
            })
            .map_err(|error| format!("cannot listen on {}: {error}", config.raft_addr))?;
        let (inbound_sender, inbound) = mpsc::channel(4096);
        let peers = config
            .peers
            .iter()
            .chain(&joined_peers)
            .filter(|(id, _)| **id != config.id)
            .map(|(id, address)| (*id, *address))
            .collect();
        let mut tcp_config = TcpConfig::new(config.id, config.cluster_id.clone(), peers);
        // Members that joined while this node was down learn where to answer it from its
        // handshake, and it theirs from their handshakes.
        tcp_config.advertised_address = Some(config.advertised_raft_addr);
        tcp_config.tls = tls.peer().cloned();
        let transport = TcpTransport::start(tcp_config, listener, inbound_sender)
            .map_err(|error| format!("cannot start the transport: {error}"))?;
        let (apply, apply_messages) = mpsc::channel(4096);
        let node_config = NodeConfig {
            raft: Config::new(config.id, rand::random()),
            tick: config.tick,
            commands_max: 4096,
            addresses: BTreeMap::new(),
            trust_unclean_restart: config.trust_unclean_restart,
        };
        let leadership_change_hold = config
            .tick
            .saturating_mul(2 * node_config.raft.election_ticks)
            .min(config.request_timeout);
        let election_timeout =
            leases::election_timeout_max(config.tick, node_config.raft.election_ticks);
        let node = RaftNode::start(node_config, wal, transport.clone(), inbound, apply)
            .map_err(|error| format!("cannot start the node: {error}"))?;
        drop(entered);
        let (applied_sender, applied) = watch::channel(0);
        let config_window = config.coordination.watch_window_revisions;
        let request_ids = RequestIds::new(config.id.0, rand::random());
        let server = Arc::new(KvServer {
            state: Mutex::new(StateMachine::new(config.sessions_max)),
            config,
            node,
            transport,
            waiters: Arc::default(),
            applied,
            request_ids,
            node_token,
            tls,
            counters: ServiceCounters::default(),
            leadership_change_hold,
            leader_known_in_term: AtomicU64::new(0),
            answers: Answers::start(),
            node_runtime,
            wal_sync_latency,
            watch_hub: crate::watch::WatchHub::new(config_window),
            lessor: Mutex::new(lessor::Lessor::new(election_timeout)),
            state_hashes: state_hashes::StateHashes::new(),
            consistency: consistency::ConsistencyCounters::default(),
        });
        if let Some(join) = server.config.join.clone() {
            tokio::spawn(join_loop(Arc::clone(&server), join, !holds_nothing));
        }
        server.node_runtime.spawn(apply_loop(
            Arc::clone(&server),
            apply_messages,
            applied_sender,
        ));
        tokio::spawn(retention::compaction_loop(Arc::downgrade(&server)));
        tokio::spawn(leases::lease_loop(Arc::downgrade(&server)));
        Ok(server)
    }

    /// How long each fdatasync of the write-ahead log took.
    pub fn wal_sync_latency(&self) -> HistogramSnapshot {
        self.wal_sync_latency.snapshot()
    }

    /// The settings the node runs with.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// Its TLS settings (HTTPS, peer TLS).
    pub fn tls(&self) -> &crate::tls::NodeTls {
        &self.tls
    }

    /// The counters of its Raft transport (TLS handshake failures among them).
    pub fn transport_counters(&self) -> raft_node::transport::tcp::TcpCounters {
        self.transport.counters()
    }

    /// The Raft node underneath.
    pub fn node(&self) -> &RaftNode {
        &self.node
    }

    /// The state machine, locked. Held briefly: the apply loop waits for it.
    pub fn state(&self) -> MutexGuard<'_, StateMachine> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this node leads now.
    pub fn is_leader(&self) -> bool {
        self.node.get_state().1
    }

    /// The HTTP address of node `id`, as it announced it.
    pub fn http_address_of(&self, id: NodeId) -> Option<String> {
        if id == self.config.id {
            return Some(self.config.http_addr.to_string());
        }
        self.state().http_address(id.0).map(str::to_string)
    }

    /// The etcd gRPC address of node `id`, as it announced it; `None` when it serves no gRPC
    /// API (or has not announced it yet).
    pub fn grpc_address_of(&self, id: NodeId) -> Option<String> {
        if id == self.config.id {
            return self.config.grpc_addr.map(|address| address.to_string());
        }
        self.state().grpc_address(id.0).map(str::to_string)
    }

    /// The role name used in status answers.
    pub fn role_name(role: Role) -> &'static str {
        match role {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::PreCandidate => "precandidate",
        }
    }
}
