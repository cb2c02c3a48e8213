//! One raftkv node: a [`RaftNode`] over TCP and a write-ahead log, the key-value state machine
//! fed by the apply channel, and the write and read paths the HTTP API calls.
//!
//! ```text
//!  write: register waiter(request id) ─► node.start_command(Command) ─► (index, term) placed
//!                                                                            │
//!  apply loop: ApplyMsg ─► StateMachine::apply ─► waiter(request id) ◄───────┘ Outcome
//!                       └► every waiter placed at or below the index and not applied there:
//!                          not committed (another entry won that index)
//!  read:  node.read_index() (any node; a follower asks the leader) ─► wait applied ≥ index ─► get
//! ```
//!
//! A waiter is registered under a request id carried in the command before it is proposed, so
//! its outcome cannot be missed however fast the entry commits. A write is answered only once
//! it is applied; a write whose entry lost its index to another leader's entry is answered
//! "not committed" (a definite no), and one swallowed by an installed snapshot or a timeout is
//! answered "outcome unknown" (the session makes a retry safe).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use raft_core::{
    CompactError, ConfChange, ConfChangeError, Config, Configuration, Index, NodeId, Role, Term,
};
use raft_node::transport::tcp::{TcpConfig, TcpTransport};
use raft_node::{ApplyMsg, NodeConfig, NodeError, RaftNode, StopReason};
use raft_wal::{HistogramSnapshot, LatencyHistogram, Wal, WalOptions};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::auth::BearerToken;
use crate::command::{Command, Operation, Session};
use crate::config::ServeConfig;
use crate::state_machine::{Outcome, SnapshotImage, StateMachine};

/// Why a request could not be served. Every condition a caller must tell apart is a variant
/// of its own; [`ServeError::is_transient`] says which pass by themselves, so that the same
/// request, retried shortly (at the leader, for [`ServeError::NotLeader`]), may succeed.
#[derive(Debug, Error)]
pub enum ServeError {
    /// This node is not the leader, and the request must be served by the leader, `leader`.
    #[error("this node is not the leader (node {} is)", leader.0)]
    NotLeader {
        /// The leader this node knows of.
        leader: NodeId,
    },
    /// No leader is known right now: an election is under way, or this node is cut off from
    /// a majority.
    #[error("no leader is known right now; retry shortly")]
    NoLeader,
    /// The leader is handing leadership over, and takes no proposals or membership changes
    /// until the transfer ends (within an election timeout).
    #[error("leadership transfer in progress; retry shortly")]
    TransferInProgress,
    /// Too much is queued or in flight on the node.
    #[error("busy: too many requests in flight; retry shortly")]
    Busy,
    /// The read could not be confirmed with the leader (leadership changed meanwhile).
    #[error("the read could not be confirmed with the leader; retry")]
    ReadNotConfirmed,
    /// This node confirmed a read at `index` but did not apply that far in time.
    #[error("this node did not apply through index {index} within {within:?}; retry")]
    ApplyBehind {
        /// The read's index.
        index: u64,
        /// How long it waited.
        within: Duration,
    },
    /// The command is larger than the node accepts; retrying it cannot succeed.
    #[error("the command of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The encoded command's size, in bytes.
        size: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The write's entry lost its place to another leader's entry: it was not applied.
    #[error("not committed: leadership changed before the write was committed; retry")]
    NotCommitted,
    /// A snapshot from the leader replaced this node's state before the write was seen
    /// applied: it may or may not have been.
    #[error(
        "a snapshot replaced this node's state before the write was seen applied; the outcome \
         is unknown (retry with the same client-id and request-seq to be safe)"
    )]
    ReplacedBySnapshot,
    /// The write was not seen applied within the request timeout: it may or may not be.
    #[error(
        "not applied within {within:?}; the outcome is unknown (retry with the same client-id \
         and request-seq to be safe)"
    )]
    TimedOut {
        /// The request timeout.
        within: Duration,
    },
    /// A leadership transfer named a node that is not a voter.
    #[error("node {} is not a voter", .0 .0)]
    NotVoter(NodeId),
    /// The membership change was refused, for the core's reason (the transient ones, a
    /// change or a transfer in progress and a learner not caught up, included).
    #[error("membership change refused: {0}")]
    Membership(ConfChangeError),
    /// The node stopped, and why.
    #[error("node stopped: {0}")]
    Stopped(StopReason),
    /// The apply loop ended (the state could not go on), so nothing is applied any more.
    #[error("this node stopped applying the log")]
    ApplyLoopEnded,
    /// Any other refusal of the node (none on the service's paths today); typed still, and
    /// transient as [`NodeError::is_retryable`] says.
    #[error(transparent)]
    Node(NodeError),
}

impl ServeError {
    /// Whether the same request may succeed if retried shortly (at the leader, for
    /// [`ServeError::NotLeader`]): true for everything but a command too large, a transfer to
    /// a non-voter, a membership change refused for good, and refusals of the node that are not
    /// retryable. A service answers these "try again" (HTTP 503), never "bad request".
    pub fn is_transient(&self) -> bool {
        match self {
            ServeError::NotLeader { .. }
            | ServeError::NoLeader
            | ServeError::TransferInProgress
            | ServeError::Busy
            | ServeError::ReadNotConfirmed
            | ServeError::ApplyBehind { .. }
            | ServeError::NotCommitted
            | ServeError::ReplacedBySnapshot
            | ServeError::TimedOut { .. }
            // Another node can serve the request.
            | ServeError::Stopped(_)
            | ServeError::ApplyLoopEnded => true,
            ServeError::Membership(refusal) => membership_refusal_is_transient(refusal),
            ServeError::TooLarge { .. } | ServeError::NotVoter(_) => false,
            ServeError::Node(error) => error.is_retryable(),
        }
    }

    /// Whether this is a moment of a leadership change, which passes within an election
    /// timeout or two: a transfer, a read that leadership changed under, or no leader known
    /// yet while an election is under way (`electing`), or right after one of the others.
    fn is_leadership_changing(&self, electing: bool) -> bool {
        match self {
            ServeError::TransferInProgress
            | ServeError::ReadNotConfirmed
            | ServeError::Membership(ConfChangeError::TransferInProgress) => true,
            ServeError::NoLeader => electing,
            _ => false,
        }
    }
}

/// Whether the core's refusal of a membership change passes by itself: a change or a transfer
/// in progress, a learner that has not caught up yet, or not the leader.
pub fn membership_refusal_is_transient(refusal: &ConfChangeError) -> bool {
    match refusal {
        ConfChangeError::NotLeader { .. }
        | ConfChangeError::InProgress
        | ConfChangeError::TransferInProgress
        | ConfChangeError::NotCaughtUp { .. } => true,
        ConfChangeError::AlreadyMember(_)
        | ConfChangeError::AlreadyVoter(_)
        | ConfChangeError::NotMember(_)
        | ConfChangeError::LastVoter(_)
        | ConfChangeError::InvalidNode => false,
    }
}

impl From<NodeError> for ServeError {
    fn from(error: NodeError) -> ServeError {
        match error {
            NodeError::NotLeader {
                leader: Some(leader),
                ..
            }
            | NodeError::Membership(ConfChangeError::NotLeader {
                leader: Some(leader),
            }) => ServeError::NotLeader { leader },
            NodeError::NotLeader { leader: None, .. }
            | NodeError::Membership(ConfChangeError::NotLeader { leader: None }) => {
                ServeError::NoLeader
            }
            NodeError::TransferInProgress => ServeError::TransferInProgress,
            NodeError::TooLarge { size, limit } => ServeError::TooLarge { size, limit },
            NodeError::Busy => ServeError::Busy,
            NodeError::ReadFailed => ServeError::ReadNotConfirmed,
            NodeError::NotVoter(node) => ServeError::NotVoter(node),
            NodeError::Membership(refusal) => ServeError::Membership(refusal),
            NodeError::Stopped(reason) => ServeError::Stopped(reason),
            other => ServeError::Node(other),
        }
    }
}

/// What a write achieved, and where it sits in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteResult {
    /// The state machine's answer.
    pub outcome: Outcome,
    /// Log index of the entry.
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
}

/// How a read is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex: a quorum confirms leadership; any node can serve it.
    Linearizable,
    /// The leader's lease; only the leader serves it.
    Lease,
    /// Local state as it is.
    Stale,
}

enum Resolution {
    Applied(WriteResult),
    NotCommitted,
    /// A snapshot replaced the state before the entry was seen applied.
    ReplacedBySnapshot,
    /// The node did not take the proposal (not the leader, busy, stopped).
    Refused(NodeError),
}

struct Waiter {
    reply: oneshot::Sender<Resolution>,
    /// Where the entry was placed, once the event loop proposed it.
    placed_at: Option<u64>,
}

/// Writes this node proposed and not yet answered.
#[derive(Default)]
struct Waiters {
    by_request: HashMap<u64, Waiter>,
    /// Index → request id, for waiters that know their index.
    by_index: BTreeMap<u64, u64>,
    /// Highest index the apply loop finished. Invariant: no waiter in `by_index` at or below
    /// it (each was resolved when that index was applied).
    applied_through: u64,
    /// Answers the apply loop settled and has not handed over yet (see [`Answers`]).
    settled: AnswerBatch,
}

/// A batch of settled writes' answers, from the apply loop to the HTTP runtime.
type AnswerBatch = Vec<(oneshot::Sender<Resolution>, Resolution)>;

/// Hands the apply loop's answers to the HTTP runtime a batch at a time. Answered one by one
/// from the node's thread, each answer cost a syscall to wake the HTTP runtime (tokio wakes a
/// runtime's I/O driver on every task scheduled from another thread); delivered together by a
/// task on that runtime, the writes it answers become ready together, locally.
struct Answers {
    batches: mpsc::UnboundedSender<AnswerBatch>,
}

impl Answers {
    /// Spawns the delivering task on the current runtime (the HTTP one).
    fn start() -> Answers {
        let (batches, mut incoming) = mpsc::unbounded_channel::<AnswerBatch>();
        tokio::spawn(async move {
            while let Some(batch) = incoming.recv().await {
                deliver(batch);
            }
        });
        Answers { batches }
    }

    /// Delivers `batch` through the HTTP runtime, or here if that runtime is gone. A lone
    /// answer goes straight to its task: one wake either way, and one task hop fewer.
    fn hand_over(&self, batch: AnswerBatch) {
        if batch.len() <= 1 {
            deliver(batch);
        } else if let Err(mpsc::error::SendError(batch)) = self.batches.send(batch) {
            deliver(batch);
        }
    }
}

fn deliver(batch: AnswerBatch) {
    for (reply, resolution) in batch {
        let _ = reply.send(resolution);
    }
}

impl Waiters {
    /// Records where `request` was placed; answers at once if that index is already past.
    fn placed(&mut self, request: u64, index: u64) {
        let applied_through = self.applied_through;
        let Some(waiter) = self.by_request.get_mut(&request) else {
            return; // Already answered: applied before its placement was known.
        };
        if index <= applied_through {
            // Applied entries at that index resolved their own waiter; this one lost it.
            if let Some(waiter) = self.by_request.remove(&request) {
                let _ = waiter.reply.send(Resolution::NotCommitted);
            }
            return;
        }
        waiter.placed_at = Some(index);
        self.by_index.insert(index, request);
    }

    /// The entry at `index` was applied; `request` is the request id it carried, if any.
    fn applied(&mut self, index: u64, request: Option<u64>, result: Option<WriteResult>) {
        if let (Some(request), Some(result)) = (request, result) {
            if let Some(waiter) = self.by_request.remove(&request) {
                if let Some(at) = waiter.placed_at {
                    self.by_index.remove(&at);
                }
                self.settled
                    .push((waiter.reply, Resolution::Applied(result)));
            }
        }
        self.settle_through(index, || Resolution::NotCommitted);
    }

    /// Answers every placed waiter at or below `index` (their entries did not apply there).
    fn settle_through(&mut self, index: u64, resolution: impl Fn() -> Resolution) {
        self.applied_through = self.applied_through.max(index);
        // Oldest first, stopping at the first later one: this runs for every applied entry, and
        // splitting the map instead copied every later waiter each time (quadratic in the
        // writes in flight).
        while let Some(entry) = self.by_index.first_entry() {
            if *entry.key() > index {
                break;
            }
            let request = entry.remove();
            if let Some(waiter) = self.by_request.remove(&request) {
                self.settled.push((waiter.reply, resolution()));
            }
        }
    }
}

fn lock_waiters(waiters: &Mutex<Waiters>) -> MutexGuard<'_, Waiters> {
    waiters
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Counters of the service itself (the node keeps its own).
#[derive(Debug, Default)]
pub struct ServiceCounters {
    /// Requests forwarded to the leader.
    pub forwarded_total: AtomicU64,
    /// Snapshots the service took.
    pub snapshots_taken_total: AtomicU64,
    /// Writes answered "not committed".
    pub writes_not_committed_total: AtomicU64,
    /// Writes answered "outcome unknown".
    pub writes_unknown_total: AtomicU64,
    /// Requests (writes, reads, membership changes) that waited for a leadership change to
    /// pass instead of being refused at once.
    pub held_for_leadership_change_total: AtomicU64,
}

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
    request_base: u64,
    next_request: AtomicU64,
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
}

/// The Raft node's own runtime: one thread for its event loop, its transport and the apply
/// loop. On the HTTP runtime they waited behind every request ready at the time, so under
/// hundreds of clients a follower's answer waited milliseconds to be read, and each write as
/// long for its commit; here they run as soon as their input arrives. A current-thread runtime
/// driven by a thread of its own: one thread needs no work-stealing scheduler.
struct NodeRuntime {
    handle: tokio::runtime::Handle,
    /// Dropped, it ends the thread's `block_on`; the runtime then stops its tasks.
    stop: Option<oneshot::Sender<()>>,
}

impl NodeRuntime {
    fn start() -> Result<NodeRuntime, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .thread_name("raft-node")
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the node's runtime: {error}"))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("raft-node".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                // Its tasks are stopped without waiting for blocking ones (a snapshot encode).
                runtime.shutdown_background();
            })
            .map_err(|error| format!("cannot start the node's thread: {error}"))?;
        Ok(NodeRuntime {
            handle,
            stop: Some(stop),
        })
    }

    fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.handle.enter()
    }

    fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(future);
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        // The last handle on the server may go inside an async context, where waiting for
        // the runtime's tasks to stop would panic; the thread stops them and nobody waits.
        drop(self.stop.take());
    }
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
        let wal = Wal::open(&config.data_dir, voters, WalOptions::default())
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
        };
        let leadership_change_hold = config
            .tick
            .saturating_mul(2 * node_config.raft.election_ticks)
            .min(config.request_timeout);
        let node = RaftNode::start(node_config, wal, transport.clone(), inbound, apply)
            .map_err(|error| format!("cannot start the node: {error}"))?;
        drop(entered);
        let (applied_sender, applied) = watch::channel(0);
        let server = Arc::new(KvServer {
            state: Mutex::new(StateMachine::new(config.sessions_max)),
            config,
            node,
            transport,
            waiters: Arc::default(),
            applied,
            request_base: rand::random::<u64>() & !0xFFFF_FFFF,
            next_request: AtomicU64::new(1),
            node_token,
            tls,
            counters: ServiceCounters::default(),
            leadership_change_hold,
            leader_known_in_term: AtomicU64::new(0),
            answers: Answers::start(),
            node_runtime,
            wal_sync_latency,
        });
        if let Some(join) = server.config.join.clone() {
            tokio::spawn(join_loop(Arc::clone(&server), join));
        }
        server.node_runtime.spawn(apply_loop(
            Arc::clone(&server),
            apply_messages,
            applied_sender,
        ));
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

    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        lock_waiters(&self.waiters)
    }

    /// Sends the answers the apply loop settled so far on their way.
    fn hand_over_answers(&self) {
        let settled = std::mem::take(&mut self.waiters().settled);
        self.answers.hand_over(settled);
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

    /// Where node `id`'s Raft transport listens: recorded when it was added, else from
    /// `--peers`.
    pub fn raft_address_of(&self, id: NodeId) -> Option<std::net::SocketAddr> {
        let recorded = self
            .state()
            .raft_address(id.0)
            .and_then(|address| address.parse().ok());
        recorded.or_else(|| self.config.peers.get(&id).copied())
    }

    /// Points the transport at every member of `configuration` whose address is known and
    /// stops talking to members of `previous` that left.
    fn follow_configuration(&self, previous: &Configuration, configuration: &Configuration) {
        for member in configuration.members() {
            if member == self.config.id {
                continue;
            }
            match self.raft_address_of(member) {
                Some(address) => {
                    if let Err(error) = self.transport.set_peer(member, address) {
                        tracing::warn!(%error, node = member.0, "cannot dial a member");
                    }
                }
                None => tracing::warn!(node = member.0, "a member's Raft address is unknown"),
            }
        }
        for gone in previous.members() {
            if gone != self.config.id && !configuration.members().any(|member| member == gone) {
                self.transport.remove_peer(gone);
            }
        }
    }

    /// Runs `attempt` until it succeeds, fails on something other than a moment of a
    /// leadership change, or `leadership_change_hold` passes.
    ///
    /// A planned transfer (`raftkv leader transfer`) refuses proposals for a moment and then
    /// leaves this node a follower, with no leader known until the new one's first message;
    /// answering "try again" during it failed requests of every client that does not retry,
    /// and slowed those that do by a whole Retry-After. Held here, a request is proposed once
    /// the transfer ends, or refused with the new leader named, which the HTTP layer forwards
    /// it to. No leader known is waited out only while an election is under way
    /// ([`KvServer::is_electing`]) or right after a transfer was seen. Only refusals that left
    /// nothing in the log are retried (the proposal was not placed, the read not confirmed),
    /// so a retry cannot apply anything twice.
    async fn through_leadership_change<T, F, Attempt>(
        &self,
        mut attempt: F,
    ) -> Result<T, ServeError>
    where
        F: FnMut() -> Attempt,
        Attempt: std::future::Future<Output = Result<T, ServeError>>,
    {
        let deadline = tokio::time::Instant::now() + self.leadership_change_hold;
        let mut change_seen = false;
        loop {
            let error = match attempt().await {
                Ok(result) => return Ok(result),
                Err(error) => error,
            };
            let pause = self.config.tick;
            let electing =
                change_seen || matches!(error, ServeError::NoLeader) && self.no_leader_is_passing();
            let passing = error.is_leadership_changing(electing);
            if !passing || tokio::time::Instant::now() + pause > deadline {
                return Err(error);
            }
            if !change_seen {
                change_seen = true;
                self.counters
                    .held_for_leadership_change_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Notes the term in which this node knows a leader, if it knows one now.
    fn note_leader(&self) {
        let metrics = self.node.metrics();
        if metrics.leader.is_some() {
            self.leader_known_in_term
                .fetch_max(metrics.term.0, Ordering::Relaxed);
        }
    }

    /// Whether an election is under way as far as this node can tell: it knows no leader, in
    /// a term past the last one it knew a leader in. Every leadership transfer ends so (the
    /// target campaigns in a new term), and the new leader is known a round trip later. A node
    /// cut off from the others knows no leader either, but in the same term (with PreVote its
    /// campaigns do not raise it), and is answered at once.
    fn is_electing(&self) -> bool {
        let metrics = self.node.metrics();
        metrics.leader.is_none()
            && metrics.term.0 > self.leader_known_in_term.load(Ordering::Relaxed)
    }

    /// Whether the node's refusal for want of a leader will likely pass within an election
    /// timeout: an election is under way ([`KvServer::is_electing`]), or the figures the node
    /// published still name a leader (they trail its state by a moment, so leadership has
    /// just changed).
    fn no_leader_is_passing(&self) -> bool {
        self.node.metrics().leader.is_some() || self.is_electing()
    }

    /// The leader, waiting for one to be known while an election is under way (this node
    /// knows no leader, in a term past the last one it knew a leader in), at most two election
    /// timeouts.
    pub async fn leader_after_election(&self) -> Option<NodeId> {
        let deadline = tokio::time::Instant::now() + self.leadership_change_hold;
        let mut waited = false;
        loop {
            if let Some(leader) = self.node.metrics().leader {
                return Some(leader);
            }
            if !self.is_electing() || tokio::time::Instant::now() + self.config.tick > deadline {
                return None;
            }
            if !waited {
                waited = true;
                self.counters
                    .held_for_leadership_change_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(self.config.tick).await;
        }
    }

    /// Proposes `operation` on this node (which must lead) and waits until it is applied; a
    /// proposal refused for a leadership transfer is proposed again once it ends.
    pub async fn write(
        &self,
        session: Option<Session>,
        operation: Operation,
    ) -> Result<WriteResult, ServeError> {
        // Each attempt carries a request id of its own (`write_once`).
        let command = Command {
            session,
            operation,
            request_id: None,
        };
        self.through_leadership_change(|| self.write_once(&command))
            .await
    }

    /// Proposes `command` once, under a request id of its own, and waits until it is applied.
    async fn write_once(&self, command: &Command) -> Result<WriteResult, ServeError> {
        let request = self.request_base | self.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.waiters().by_request.insert(
            request,
            Waiter {
                reply,
                placed_at: None,
            },
        );
        // The event loop records the placement itself, so this task wakes once, answered.
        let waiters = Arc::clone(&self.waiters);
        let proposed =
            self.node
                .start_command_with(command.encode_for_request(request), move |placed| {
                    let mut waiters = lock_waiters(&waiters);
                    match placed {
                        Ok((index, _)) => waiters.placed(request, index.0),
                        Err(error) => {
                            if let Some(waiter) = waiters.by_request.remove(&request) {
                                let _ = waiter.reply.send(Resolution::Refused(error));
                            }
                        }
                    }
                });
        if let Err(error) = proposed {
            self.waiters().by_request.remove(&request);
            return Err(error.into());
        }
        match tokio::time::timeout(self.config.request_timeout, answer).await {
            Ok(Ok(Resolution::Applied(result))) => Ok(result),
            Ok(Ok(Resolution::Refused(error))) => Err(error.into()),
            Ok(Ok(Resolution::NotCommitted)) => {
                self.counters
                    .writes_not_committed_total
                    .fetch_add(1, Ordering::Relaxed);
                Err(ServeError::NotCommitted)
            }
            Ok(Ok(Resolution::ReplacedBySnapshot)) => {
                self.counters
                    .writes_unknown_total
                    .fetch_add(1, Ordering::Relaxed);
                Err(ServeError::ReplacedBySnapshot)
            }
            Ok(Err(_)) => Err(ServeError::ApplyLoopEnded),
            Err(_) => {
                let mut waiters = self.waiters();
                if let Some(waiter) = waiters.by_request.remove(&request) {
                    if let Some(at) = waiter.placed_at {
                        waiters.by_index.remove(&at);
                    }
                }
                drop(waiters);
                self.counters
                    .writes_unknown_total
                    .fetch_add(1, Ordering::Relaxed);
                Err(ServeError::TimedOut {
                    within: self.config.request_timeout,
                })
            }
        }
    }

    /// Waits until a read in `mode` may be served from the local state. A read that a
    /// leadership change failed is asked again once the change passed.
    pub async fn read_barrier(&self, mode: ReadMode) -> Result<(), ServeError> {
        let read_index = || async {
            match mode {
                ReadMode::Stale => Ok(None),
                ReadMode::Linearizable => self.node.read_index().await.map(Some),
                ReadMode::Lease => self.node.lease_read_index().await.map(Some),
            }
            .map_err(ServeError::from)
        };
        match self.through_leadership_change(read_index).await? {
            Some(index) => self.wait_applied(index).await,
            None => Ok(()),
        }
    }

    /// Proposes `change` to the membership (this node must lead), once a leadership transfer
    /// under way ended; the entry that carries it.
    pub async fn change_membership(&self, change: ConfChange) -> Result<(Index, Term), ServeError> {
        self.through_leadership_change(|| async {
            self.node
                .change_membership(change)
                .await
                .map_err(ServeError::from)
        })
        .await
    }

    /// Asks this node (which must lead) to hand leadership to voter `to`.
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<(), ServeError> {
        Ok(self.node.transfer_leadership(to).await?)
    }

    async fn wait_applied(&self, index: Index) -> Result<(), ServeError> {
        let mut applied = self.applied.clone();
        let reached = tokio::time::timeout(
            self.config.request_timeout,
            applied.wait_for(|applied| *applied >= index.0),
        )
        .await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ServeError::ApplyLoopEnded),
            Err(_) => Err(ServeError::ApplyBehind {
                index: index.0,
                within: self.config.request_timeout,
            }),
        }
    }

    /// Keeps this node's HTTP and Raft addresses in the replicated state, so other nodes can
    /// forward to it when it leads and nodes that join later can dial it. Runs until the node
    /// stops.
    pub async fn announce_loop(self: Arc<KvServer>, forward: impl AnnounceForwarder) {
        let own_http = self.config.http_addr.to_string();
        let own_raft = self.config.advertised_raft_addr.to_string();
        let id = self.config.id.0;
        loop {
            let (http_recorded, raft_recorded) = {
                let state = self.state();
                (
                    state.http_address(id) == Some(own_http.as_str()),
                    state.raft_address(id) == Some(own_raft.as_str()),
                )
            };
            if http_recorded && raft_recorded {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            if self.is_leader() {
                let http = Operation::Announce {
                    node: id,
                    http_address: own_http.clone(),
                };
                let raft = Operation::RaftAddress {
                    node: id,
                    raft_address: own_raft.clone(),
                };
                for operation in [http, raft] {
                    if let Err(error) = self.write(None, operation).await {
                        tracing::debug!(%error, "announcing addresses failed; retrying");
                    }
                }
            } else if let Some(leader) = self.node.metrics().leader {
                if let Some(address) = self.http_address_of(leader) {
                    forward
                        .announce(address, id, own_http.clone(), own_raft.clone())
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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

/// How the announce loop reaches the leader's HTTP API (the HTTP layer implements it).
pub trait AnnounceForwarder: Send + Sync + 'static {
    /// Asks the node at `leader_http` to record `http_address` and `raft_address` for `node`.
    fn announce(
        &self,
        leader_http: String,
        node: u64,
        http_address: String,
        raft_address: String,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// The Raft addresses of the members of the cluster at `join` (an HTTP address), this node
/// excluded.
async fn members_at(
    join: &str,
    own: NodeId,
    node_token: Option<&BearerToken>,
    tls: &crate::tls::NodeTls,
) -> Result<BTreeMap<NodeId, std::net::SocketAddr>, String> {
    let client = tls
        .client([join], raftkv_client::ClientOptions::default())
        .and_then(|client| authenticated(client, node_token))
        .map_err(|error| format!("--join {join}: {error}"))?;
    let members = client
        .members()
        .await
        .map_err(|error| format!("cannot learn the members from {join}: {error}"))?;
    Ok(members
        .members
        .iter()
        .filter(|member| member.id != own.0)
        .filter_map(|member| {
            let address = member.raft_address.as_ref()?.parse().ok()?;
            Some((NodeId(member.id), address))
        })
        .collect())
}

/// Joins the cluster at `join`: asks to be added as a learner, then to be promoted until the
/// leader finds this node caught up. Ends once it is a voter, or was removed after being one.
async fn join_loop(server: Arc<KvServer>, join: String) {
    let id = server.config.id.0;
    loop {
        // The --join address, and every node whose address this node has learned: the node
        // joined through may have left the cluster since.
        let mut endpoints = vec![join.clone()];
        for address in server.state().http_addresses().values() {
            if !endpoints.contains(address) {
                endpoints.push(address.clone());
            }
        }
        let options = raftkv_client::ClientOptions {
            request_timeout: Duration::from_secs(2),
            retry_deadline: Duration::from_secs(5),
        };
        let client = match server.tls.client(&endpoints, options) {
            Ok(client) => client,
            // A recorded address that does not parse: the --join address alone, then.
            Err(_) => match server.tls.client([join.as_str()], options) {
                Ok(client) => client,
                Err(_) => return,
            },
        };
        let client = match authenticated(client, server.node_token.as_ref()) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot join: the node token is unusable");
                return;
            }
        };
        let role = client.members().await.ok().map(|members| {
            members
                .members
                .iter()
                .find(|member| member.id == id)
                .map(|member| member.role.clone())
        });
        match role.as_ref().map(|role| role.as_deref()) {
            Some(Some("voter")) => {
                tracing::info!(id, "joined the cluster as a voter");
                return;
            }
            Some(Some("learner")) => match client.promote(id).await {
                Ok(_) => tracing::info!(id, "promotion to voter proposed"),
                Err(error) => tracing::debug!(%error, "not promoted yet"),
            },
            Some(None) => {
                let address = server.config.advertised_raft_addr.to_string();
                match client.add_member(id, &address).await {
                    Ok(_) => tracing::info!(id, %address, "added as a learner"),
                    Err(error) => tracing::warn!(%error, "cannot be added yet"),
                }
            }
            // A member being removed, or the cluster unreachable: ask again shortly.
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `client`, sending `node_token` with every request when there is one.
fn authenticated(
    client: raftkv_client::Client,
    node_token: Option<&BearerToken>,
) -> Result<raftkv_client::Client, raftkv_client::ClientError> {
    match node_token {
        Some(token) => client.with_bearer_token(token.secret()),
        None => Ok(client),
    }
}

/// Most applied messages handled before the reads waiting for an index are told.
const APPLY_BATCH_MAX: usize = 256;

/// Feeds the state machine from the apply channel, answers waiters, takes snapshots.
async fn apply_loop(
    server: Arc<KvServer>,
    mut messages: mpsc::Receiver<ApplyMsg>,
    applied: watch::Sender<u64>,
) {
    let mut bytes_since_snapshot = 0u64;
    let snapshot_threshold =
        staggered_threshold(server.config.snapshot_threshold_bytes, rand::random());
    let mut configuration = Configuration::new(server.config.peers.keys().copied());
    let mut batch = Vec::with_capacity(APPLY_BATCH_MAX);
    while messages.recv_many(&mut batch, APPLY_BATCH_MAX).await > 0 {
        let mut last_applied = None;
        for message in batch.drain(..) {
            let Some(index) = apply_message(
                &server,
                message,
                &mut configuration,
                &mut bytes_since_snapshot,
            ) else {
                server.hand_over_answers();
                return;
            };
            last_applied = Some(index);
            if bytes_since_snapshot >= snapshot_threshold {
                bytes_since_snapshot = 0;
                // Only the copy is made here, under the lock; encoding 25 MB takes about
                // 100 ms, which on this path stalled every write and read for as long.
                let image = server.state().snapshot_image();
                tokio::spawn(compact(Arc::clone(&server), index, image));
            }
        }
        server.hand_over_answers();
        server.note_leader();
        // Once per batch, not per entry: every read waiting for an index wakes on each change.
        if let Some(index) = last_applied {
            applied.send_replace(index);
        }
    }
}

/// This node's snapshot threshold: `configured` scaled by a factor in [0.75, 1.25) that `draw`
/// picks. The nodes of a cluster apply the same entries at about the same moment, so with one
/// threshold they all took their snapshots together, and each log's writer stalled writing its
/// snapshot file (a 25 MB state: about 0.2 s) at the same time as the others: no write could
/// commit meanwhile. Staggered, a majority goes on writing while one node snapshots.
fn staggered_threshold(configured: u64, draw: u64) -> u64 {
    let quarter = configured / 4;
    let offset = match quarter {
        0 => 0,
        _ => draw % (2 * quarter),
    };
    (configured - quarter + offset).max(1)
}

/// Applies one message from the node and answers its waiters; the index the state is at
/// afterwards, or `None` when the state cannot go on (an installed snapshot does not decode).
fn apply_message(
    server: &Arc<KvServer>,
    message: ApplyMsg,
    configuration: &mut Configuration,
    bytes_since_snapshot: &mut u64,
) -> Option<u64> {
    let index = match message {
        ApplyMsg::Command { index, term, data } => {
            let decoded = Command::decode(&data);
            let request = decoded.as_ref().ok().and_then(|command| command.request_id);
            if let Ok(Command {
                operation: Operation::RaftAddress { node, raft_address },
                ..
            }) = &decoded
            {
                // Dial a node about to be added at once: the leader replicates to it as
                // soon as its configuration entry is appended.
                if let (true, Ok(address)) = (*node != server.config.id.0, raft_address.parse()) {
                    let _ = server.transport.set_peer(NodeId(*node), address);
                }
            }
            let applied = server.state().apply_decoded(index.0, term.0, decoded);
            *bytes_since_snapshot += data.len() as u64;
            let result = WriteResult {
                outcome: applied.outcome,
                index: applied.index,
                term: applied.term,
            };
            server.waiters().applied(index.0, request, Some(result));
            index.0
        }
        // A membership change carries no command: skipped like a no-op.
        ApplyMsg::Configuration {
            index,
            configuration: committed,
            ..
        } => {
            server.state().skip(index.0);
            server.waiters().applied(index.0, None, None);
            server.follow_configuration(configuration, &committed);
            *configuration = committed;
            index.0
        }
        ApplyMsg::Noop { index, .. } => {
            server.state().skip(index.0);
            server.waiters().applied(index.0, None, None);
            index.0
        }
        ApplyMsg::Snapshot { index, data, .. } => {
            match StateMachine::restore(&data, server.config.sessions_max) {
                Ok(restored) => {
                    // Nodes added at run time are known by the addresses in the state.
                    for (node, address) in restored.raft_addresses() {
                        if let (true, Ok(address)) = (*node != server.config.id.0, address.parse())
                        {
                            let _ = server.transport.set_peer(NodeId(*node), address);
                        }
                    }
                    *server.state() = restored;
                }
                Err(error) => {
                    // Every replica wrote this snapshot with the same code; failing to read
                    // it means the state is lost, so serving on would be wrong.
                    tracing::error!(%error, "cannot restore the installed snapshot; stopping");
                    return None;
                }
            }
            *bytes_since_snapshot = 0;
            server
                .waiters()
                .settle_through(index.0, || Resolution::ReplacedBySnapshot);
            index.0
        }
    };
    Some(index)
}

/// Encodes `image` on a blocking thread and hands it to the node, retrying while the node has
/// not yet seen `index` applied (its applied report trails the apply channel by a moment).
async fn compact(server: Arc<KvServer>, index: u64, image: SnapshotImage) {
    let started = std::time::Instant::now();
    let data = match tokio::task::spawn_blocking(move || image.encode()).await {
        Ok(data) => data,
        Err(error) => {
            tracing::warn!(%error, index, "snapshot not taken: encoding failed");
            return;
        }
    };
    let encoded_in = started.elapsed();
    for _ in 0..100 {
        match server.node.snapshot(Index(index), data.clone()).await {
            Ok(()) => {
                server
                    .counters
                    .snapshots_taken_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    index,
                    bytes = data.len(),
                    encode_ms = encoded_in.as_millis() as u64,
                    hand_over_ms = (started.elapsed() - encoded_in).as_millis() as u64,
                    "snapshot taken"
                );
                return;
            }
            Err(reason @ NodeError::Compact(CompactError::NotApplied { .. })) => {
                tracing::debug!(%reason, index, "snapshot not taken yet");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => {
                tracing::warn!(%error, index, "snapshot not taken");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> (oneshot::Sender<Resolution>, oneshot::Receiver<Resolution>) {
        oneshot::channel()
    }

    fn is_not_committed(received: Result<Resolution, oneshot::error::TryRecvError>) -> bool {
        matches!(received, Ok(Resolution::NotCommitted))
    }

    #[test]
    fn each_node_snapshots_within_a_quarter_of_the_configured_threshold() {
        for configured in [1, 3, 4, 1000, 64 << 20] {
            for draw in [0, 1, 7, u64::MAX / 3, u64::MAX] {
                let threshold = staggered_threshold(configured, draw);
                assert!(threshold >= 1);
                assert!(
                    4 * threshold >= 3 * configured && 4 * threshold <= 5 * configured,
                    "{threshold} for {configured}"
                );
            }
        }
        let spread: std::collections::BTreeSet<u64> = (0..64)
            .map(|draw| staggered_threshold(1000, draw * 7919))
            .collect();
        assert!(spread.len() > 32, "draws spread the threshold: {spread:?}");
    }

    #[test]
    fn a_batch_of_answers_is_delivered_by_the_http_runtime_and_a_lone_one_at_once() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let answers = runtime.block_on(async { Answers::start() });
        let (lone, mut lone_answer) = answer();
        answers.hand_over(vec![(lone, Resolution::NotCommitted)]);
        assert!(
            is_not_committed(lone_answer.try_recv()),
            "delivered at once"
        );

        let (first, mut first_answer) = answer();
        let (second, second_answer) = answer();
        answers.hand_over(vec![
            (first, Resolution::NotCommitted),
            (second, Resolution::NotCommitted),
        ]);
        assert!(
            first_answer.try_recv().is_err(),
            "waits for the HTTP runtime"
        );
        runtime.block_on(async {
            assert!(matches!(first_answer.await, Ok(Resolution::NotCommitted)));
            assert!(matches!(second_answer.await, Ok(Resolution::NotCommitted)));
        });

        // With the HTTP runtime gone, the apply loop delivers its answers itself.
        drop(runtime);
        let (first, mut first_answer) = answer();
        let (second, mut second_answer) = answer();
        answers.hand_over(vec![
            (first, Resolution::NotCommitted),
            (second, Resolution::NotCommitted),
        ]);
        assert!(is_not_committed(first_answer.try_recv()));
        assert!(is_not_committed(second_answer.try_recv()));
    }
}
