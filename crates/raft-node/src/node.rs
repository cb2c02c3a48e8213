//! A running Raft peer: the event loop that drives the core, the storage thread and the apply
//! task, behind the API a service uses.
//!
//! ```text
//!  RaftNode::start_command / read_index / lease_read_index / ... ─► commands (bounded) ─┐
//!  transport inbound ───────────────────────────────────────────────┤
//!  timer ticks ─────────────────────────────────────────────────────┤► event loop: Raft<S::Reader>
//!  storage thread (S: LogStore): durable ids ───────────────────────┤      │ ready()
//!  apply task: applied indexes ─────────────────────────────────────┘      ├─► transport.send
//!                                                                          ├─► StorageThread::submit (or write_here)
//!                                                                          └─► apply task ─► ApplyMsg channel
//! ```
//!
//! Messages go out as soon as `ready()` hands them over, while the leader's own write is being
//! synced (thesis §10.2.1); the core holds back anything that must wait for the write. A small
//! write when the storage thread is idle is made on the loop's own thread, a leader's after the
//! loop has yielded once so its appends are on the wire first: one client's writes then cost no
//! thread hand-offs to the disk and back. The state machine is fed by its own task, so a slow
//! service delays applying, never elections.
//!
//! After each round of work the event loop (and, for applying, the apply task) stores its
//! figures in atomics, so [`RaftNode::get_state`] and [`RaftNode::metrics`] answer at once,
//! without a round trip to the loop.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raft_core::{
    CompactError, ConfChange, ConfChangeError, Config, Configuration, Entry, EntryKind, Index,
    InitError, LogStore, Message, NodeId, PersistId, PersistRequest, ProposeError, Raft,
    ReadContext, Snapshot, Status, Term,
};
use raft_wal::{HistogramSnapshot, LatencyHistogram};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::storage_thread::{self, StorageThread, WriteHere};
use crate::transport::Transport;

/// What the node delivers to the service, in log order. A peer restarted after a compaction
/// first delivers its stored snapshot, then the commands after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyMsg {
    /// A committed command.
    Command {
        /// Its log index.
        index: Index,
        /// The term it was proposed in.
        term: Term,
        /// The command.
        data: Bytes,
    },
    /// A committed entry that carries no command (a new leader's no-op): nothing to apply,
    /// but everything through `index` has now been delivered, which a service waiting to
    /// serve a read at `index` needs to know.
    Noop {
        /// Its log index.
        index: Index,
        /// Its term.
        term: Term,
    },
    /// A committed configuration entry (a membership change): not a command, so nothing to
    /// apply to the service's state, but like [`ApplyMsg::Noop`] it tells the service that
    /// everything through `index` has been delivered, and which membership is now committed.
    Configuration {
        /// Its log index.
        index: Index,
        /// Its term.
        term: Term,
        /// The configuration it carries.
        configuration: Configuration,
    },
    /// A snapshot installed from the leader: the service replaces its state with it.
    Snapshot {
        /// The last index it covers.
        index: Index,
        /// The term of that entry.
        term: Term,
        /// The service's serialized state.
        data: Bytes,
    },
}

/// Why a request to the node failed. Every condition a caller must tell apart is a variant of
/// its own; [`NodeError::is_retryable`] says which ones pass by themselves.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// This peer is not the leader; the leader it knows of, if any, and its address. Send the
    /// request there (or, with no leader known, retry shortly: an election is under way).
    #[error("not the leader (leader: {leader:?} at {address:?})")]
    NotLeader {
        /// The known leader.
        leader: Option<NodeId>,
        /// The known leader's address, from [`NodeConfig::addresses`].
        address: Option<String>,
    },
    /// A leadership transfer is under way: the leader takes no proposals until it ends (a
    /// moment: the target is caught up and campaigns, or the attempt is abandoned after an
    /// election timeout). Retry, at the new leader if it changed.
    #[error("leadership transfer in progress; retry shortly")]
    TransferInProgress,
    /// The command is larger than the core accepts (`Config::proposal_bytes_max`); retrying
    /// the same command cannot succeed.
    #[error("command of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// The command's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Too much is queued or in flight (the node's request queue, uncommitted bytes, pending
    /// reads); retry later.
    #[error("busy: too many requests in flight; retry later")]
    Busy,
    /// The read could not be confirmed (leadership changed or the request was lost); retry.
    #[error("read failed; retry")]
    ReadFailed,
    /// A leadership transfer named a peer that is not a voter.
    #[error("{0} is not a voter")]
    NotVoter(NodeId),
    /// The membership change was refused as it stands (one already in progress, a learner not
    /// caught up, an unknown member...); the core's reason says which.
    #[error("membership change refused: {0}")]
    Membership(ConfChangeError),
    /// The snapshot handed to [`RaftNode::snapshot`] was refused: its index is not applied yet
    /// (the apply task reports applied indexes a moment after handing them over) or already
    /// covered by a snapshot.
    #[error("snapshot refused: {0}")]
    Compact(CompactError),
    /// The node has stopped, and why.
    #[error("node stopped: {0}")]
    Stopped(StopReason),
}

impl NodeError {
    /// Whether the same request may succeed if retried after a short wait, here or at the
    /// leader named in [`NodeError::NotLeader`]: not the leader, a transfer or a membership
    /// change under way, busy, a read not confirmed, a snapshot whose index is not reported
    /// applied yet. A service maps these to "try again" (HTTP 503), never to "bad request".
    pub fn is_retryable(&self) -> bool {
        match self {
            NodeError::NotLeader { .. }
            | NodeError::TransferInProgress
            | NodeError::Busy
            | NodeError::ReadFailed => true,
            NodeError::Membership(refusal) => matches!(
                refusal,
                ConfChangeError::NotLeader { .. }
                    | ConfChangeError::InProgress
                    | ConfChangeError::TransferInProgress
                    | ConfChangeError::NotCaughtUp { .. }
            ),
            NodeError::Compact(refusal) => matches!(refusal, CompactError::NotApplied { .. }),
            NodeError::TooLarge { .. } | NodeError::NotVoter(_) | NodeError::Stopped(_) => false,
        }
    }

    /// The error for a core refusal, with the leader's address looked up in `addresses`.
    fn from_propose(error: ProposeError, addresses: &BTreeMap<NodeId, String>) -> NodeError {
        match error {
            ProposeError::NotLeader { leader } => NodeError::NotLeader {
                leader,
                address: leader.and_then(|leader| addresses.get(&leader).cloned()),
            },
            ProposeError::Busy => NodeError::Busy,
            ProposeError::TransferInProgress => NodeError::TransferInProgress,
            ProposeError::TooLarge { size, limit } => NodeError::TooLarge { size, limit },
            ProposeError::NotVoter(peer) => NodeError::NotVoter(peer),
        }
    }
}

/// Why a node stopped. A stopped node refuses every request with [`NodeError::Stopped`].
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Its owner stopped it: [`RaftNode::shutdown`], or every handle dropped.
    #[error("shut down")]
    Shutdown,
    /// The storage failed (an I/O error, a full disk, corruption found on a read): the node
    /// stopped rather than acknowledge anything it could not make durable. The text is the
    /// storage's error, for the operator.
    #[error("storage failed: {0}")]
    StorageFailed(String),
    /// The service closed its apply channel: nobody applies what commits any more, so the
    /// node stopped rather than commit more.
    #[error("the service closed its apply channel")]
    ApplyChannelClosed,
}

/// Why [`RaftNode::start`] could not start a node.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// The core refused the settings or could not read its initial state from storage.
    #[error("cannot start the core: {0}")]
    Core(#[from] InitError),
    /// The storage thread could not be spawned.
    #[error("cannot start the storage thread: {0}")]
    StorageThread(std::io::Error),
}

/// Settings of a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The consensus settings (id, seed, timeouts in ticks, limits).
    pub raft: Config,
    /// Length of one core tick.
    pub tick: Duration,
    /// Requests that may wait for the event loop; more are refused with [`NodeError::Busy`].
    pub commands_max: usize,
    /// An address for each peer (whatever a client should be redirected to), named in
    /// [`NodeError::NotLeader`].
    pub addresses: BTreeMap<NodeId, String>,
}

impl NodeConfig {
    /// Defaults for peer `id`: 20 ms ticks (so elections time out after 300–600 ms).
    pub fn new(id: NodeId, seed: u64) -> NodeConfig {
        NodeConfig {
            raft: Config::new(id, seed),
            tick: Duration::from_millis(20),
            commands_max: 4096,
            addresses: BTreeMap::new(),
        }
    }
}

/// What a read waits for: the index to apply before serving it.
type ReadReply = oneshot::Sender<Result<Index, NodeError>>;

/// Who learns where a proposal was placed.
enum Placement {
    /// A task awaiting [`RaftNode::start_command`].
    Reply(oneshot::Sender<Placed>),
    /// A callback of [`RaftNode::start_command_with`], run on the event loop.
    Callback(PlacedCallback),
}

/// The callback of [`RaftNode::start_command_with`]: called once, with the proposal's place,
/// or with [`NodeError::Stopped`] when dropped uncalled (the event loop ended first).
struct PlacedCallback(Option<Box<dyn FnOnce(Placed) + Send>>);

/// Where a proposal was placed, or why it was not.
type Placed = Result<(Index, Term), NodeError>;

impl PlacedCallback {
    fn call(mut self, result: Placed) {
        if let Some(placed) = self.0.take() {
            placed(result);
        }
    }
}

impl Drop for PlacedCallback {
    fn drop(&mut self) {
        if let Some(placed) = self.0.take() {
            placed(Err(NodeError::Stopped(StopReason::Shutdown)));
        }
    }
}

enum Command {
    Propose(Bytes, Placement),
    ReadIndex(ReadReply),
    LeaseRead(ReadReply),
    Snapshot(Index, Bytes, oneshot::Sender<Result<(), NodeError>>),
    Transfer(NodeId, oneshot::Sender<Result<(), NodeError>>),
    ChangeMembership(
        ConfChange,
        oneshot::Sender<Result<(Index, Term), NodeError>>,
    ),
    Status(oneshot::Sender<Status>),
    Shutdown,
}

impl Command {
    /// Answers the request with `error` without running it.
    fn refuse(self, error: NodeError) {
        match self {
            Command::Propose(_, Placement::Reply(reply)) => {
                let _ = reply.send(Err(error));
            }
            Command::Propose(_, Placement::Callback(placed)) => placed.call(Err(error)),
            Command::ReadIndex(reply) | Command::LeaseRead(reply) => {
                let _ = reply.send(Err(error));
            }
            Command::Snapshot(_, _, reply) | Command::Transfer(_, reply) => {
                let _ = reply.send(Err(error));
            }
            Command::ChangeMembership(_, reply) => {
                let _ = reply.send(Err(error));
            }
            // Dropping the reply tells the caller the node stopped.
            Command::Status(_) | Command::Shutdown => {}
        }
    }
}

enum ApplyWork {
    Snapshot(Snapshot),
    Entries(Vec<Entry>),
}

/// A node's figures for monitoring, read by [`RaftNode::metrics`]. Gauges are as of the event
/// loop's last round of work (or the apply task's last hand-over); counters (`_total`) count
/// from this node's start and never decrease.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeMetrics {
    /// The current term.
    pub term: Term,
    /// Whether this peer is the leader.
    pub is_leader: bool,
    /// The leader this peer knows of in its term, itself included.
    pub leader: Option<NodeId>,
    /// The highest index known committed.
    pub commit_index: Index,
    /// The last index the apply task handed to the service (a command, a skipped no-op, or
    /// the end of a snapshot), as of this node's start: zero until the first hand-over.
    pub applied_index: Index,
    /// The last index in the log, durable or not.
    pub last_log_index: Index,
    /// The last index covered by the newest snapshot (zero if the log was never compacted).
    pub snapshot_index: Index,
    /// Proposals the leader appended to its log.
    pub proposals_accepted_total: u64,
    /// Proposals refused: not the leader, busy (core limits or a full command queue), too
    /// large, or during a leadership transfer.
    pub proposals_refused_total: u64,
    /// Entries committed: the sum of every advance of the commit index, no-ops and entries a
    /// snapshot from the leader covers included.
    pub entries_committed_total: u64,
    /// Log entries the apply task handed to the service (no-ops counted, though the service
    /// never sees them; entries covered by a snapshot are not).
    pub entries_applied_total: u64,
    /// Elections this peer started (real campaigns, not pre-votes).
    pub elections_started_total: u64,
    /// Times this peer learned of a leader it did not know: another peer, or the same peer
    /// elected in a new term. The first leader counts.
    pub leader_changes_total: u64,
    /// Snapshots received from a leader and handed to the service (not the snapshot a
    /// restarted peer restores from its own log).
    pub snapshots_installed_total: u64,
    /// Snapshots the service handed to [`RaftNode::snapshot`] that compacted the log.
    pub snapshots_taken_total: u64,
    /// Messages handed to the transport.
    pub messages_sent_total: u64,
    /// Messages received from the transport (including those the core then dropped).
    pub messages_received_total: u64,
    /// How long each durable write of the storage took (a batch of requests and its sync,
    /// on the storage thread or the event loop): the figure that bounds how fast a write can
    /// be acknowledged.
    pub storage_write_latency: HistogramSnapshot,
}

/// What the event loop and the apply task publish for readers on other threads: term and
/// leadership for [`RaftNode::get_state`] (Release / Acquire), and the figures of
/// [`NodeMetrics`], each read and written on its own (Relaxed), as monitoring needs no
/// ordering between them.
#[derive(Default)]
struct Published {
    term: AtomicU64,
    is_leader: AtomicBool,
    /// Why the event loop stopped, once it has.
    stop_reason: std::sync::Mutex<Option<StopReason>>,
    /// The known leader's id, or 0 for none (no peer has id 0).
    leader: AtomicU64,
    commit_index: AtomicU64,
    applied_index: AtomicU64,
    last_log_index: AtomicU64,
    snapshot_index: AtomicU64,
    proposals_accepted_total: AtomicU64,
    proposals_refused_total: AtomicU64,
    entries_committed_total: AtomicU64,
    entries_applied_total: AtomicU64,
    elections_started_total: AtomicU64,
    leader_changes_total: AtomicU64,
    snapshots_installed_total: AtomicU64,
    snapshots_taken_total: AtomicU64,
    messages_sent_total: AtomicU64,
    messages_received_total: AtomicU64,
}

/// Adds `amount` to a published counter.
fn count(counter: &AtomicU64, amount: u64) {
    counter.fetch_add(amount, Ordering::Relaxed);
}

/// A running peer. Dropping it stops the event loop; [`RaftNode::shutdown`] also waits for
/// queued writes to reach the disk.
pub struct RaftNode {
    id: NodeId,
    /// The runtime the node runs on, for the blocking calls.
    runtime: tokio::runtime::Handle,
    commands: mpsc::Sender<Command>,
    published: Arc<Published>,
    /// The write-ahead log's fdatasync durations, recorded by the storage thread.
    /// How long each durable write took, recorded by whoever wrote it.
    write_latency: Arc<LatencyHistogram>,
    event_loop: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl RaftNode {
    /// Starts a peer on `store` (its durable log: `raft_wal::Wal`, opened by the caller, or any
    /// [`LogStore`]), sending through `transport`, receiving from `inbound`, and delivering
    /// committed commands and installed snapshots on `apply`. The store moves to a storage
    /// thread of its own. Must be called inside a tokio runtime.
    pub fn start<S: LogStore, T: Transport>(
        config: NodeConfig,
        store: S,
        transport: T,
        inbound: mpsc::Receiver<Message>,
        apply: mpsc::Sender<ApplyMsg>,
    ) -> Result<RaftNode, StartError> {
        let id = config.raft.id;
        let raft = Raft::new(config.raft.clone(), store.reader())?;
        // The core hands out the snapshot in its own log first; that one is no install.
        let restoring_snapshot = raft.snapshot_index() > Index(0);
        let write_latency = Arc::new(LatencyHistogram::new());
        let (durable_sender, durable) = mpsc::unbounded_channel();
        let writer = StorageThread::spawn(store, Arc::clone(&write_latency), move |result| {
            // The loop may be gone at shutdown; nothing is waiting then.
            let _ = durable_sender.send(result);
        })
        .map_err(StartError::StorageThread)?;
        let published = Arc::new(Published::default());
        let (applied_sender, applied) = mpsc::unbounded_channel();
        let (apply_work, apply_queue) = mpsc::unbounded_channel();
        tokio::spawn(apply_task(
            apply_queue,
            apply,
            applied_sender,
            Arc::clone(&published),
        ));
        let (commands_sender, commands) = mpsc::channel(config.commands_max);
        let commit_index = raft.commit_index();
        let mut event_loop = EventLoop {
            raft,
            addresses: config.addresses.clone(),
            transport,
            writer: Some(writer),
            persist_backlog: VecDeque::new(),
            durable_through: 0,
            write_after_yield: false,
            apply_work,
            published: Arc::clone(&published),
            reads: BTreeMap::new(),
            next_read: 0,
            restoring_snapshot,
            commit_index,
            known_leader: None,
            clock: Clock::new(config.tick, config.raft.election_ticks),
        };
        event_loop.publish();
        let handle = tokio::spawn(event_loop.run(commands, inbound, durable, applied));
        Ok(RaftNode {
            id,
            runtime: tokio::runtime::Handle::current(),
            commands: commands_sender,
            published,
            write_latency,
            event_loop: std::sync::Mutex::new(Some(handle)),
        })
    }

    /// This peer's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current term and whether this peer is the leader.
    pub fn get_state(&self) -> (Term, bool) {
        (
            Term(self.published.term.load(Ordering::Acquire)),
            self.published.is_leader.load(Ordering::Acquire),
        )
    }

    /// The error for a request to a stopped node: why it stopped, as the event loop recorded
    /// it (a loop aborted by dropping the node recorded nothing: it was shut down).
    fn stopped(&self) -> NodeError {
        let reason = self
            .published
            .stop_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        NodeError::Stopped(reason.unwrap_or(StopReason::Shutdown))
    }

    async fn ask<R>(
        &self,
        command: impl FnOnce(oneshot::Sender<R>) -> Command,
    ) -> Result<R, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .try_send(command(reply))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => NodeError::Busy,
                mpsc::error::TrySendError::Closed(_) => self.stopped(),
            })?;
        answer.await.map_err(|_| self.stopped())
    }

    /// Proposes `command`; returns at once with the index and term it will have if it is
    /// committed (it then arrives on the apply channel), or why it cannot be proposed here.
    pub async fn start_command(&self, command: Bytes) -> Result<(Index, Term), NodeError> {
        let answer = self
            .ask(|reply| Command::Propose(command, Placement::Reply(reply)))
            .await;
        if let Err(NodeError::Busy) = answer {
            // Refused before the event loop saw it, so the loop did not count it.
            count(&self.published.proposals_refused_total, 1);
        }
        answer?
    }

    /// Proposes `command` without waiting for its place: `placed` is called on the event
    /// loop with what [`RaftNode::start_command`] would have returned, before the entry can
    /// be committed. A service that registers its interest in the entry there learns of the
    /// proposal without a task woken for it (a thread hop per write when the service runs
    /// elsewhere). `placed` is called exactly once, with [`NodeError::Stopped`] if the node
    /// stops first, unless this returns an error (a full queue, a stopped node).
    pub fn start_command_with(
        &self,
        command: Bytes,
        placed: impl FnOnce(Result<(Index, Term), NodeError>) + Send + 'static,
    ) -> Result<(), NodeError> {
        let sent = self.commands.try_send(Command::Propose(
            command,
            Placement::Callback(PlacedCallback(Some(Box::new(placed)))),
        ));
        sent.map_err(|error| {
            let (error, command) = match error {
                mpsc::error::TrySendError::Full(command) => {
                    count(&self.published.proposals_refused_total, 1);
                    (NodeError::Busy, command)
                }
                mpsc::error::TrySendError::Closed(command) => (self.stopped(), command),
            };
            // The caller learns of the failure from the error, not from the callback too.
            if let Command::Propose(_, Placement::Callback(mut placed)) = command {
                placed.0 = None;
            }
            error
        })
    }

    /// Resolves with an index once a linearizable read may be served: the service answers it
    /// after applying through that index (thesis §6.4).
    pub async fn read_index(&self) -> Result<Index, NodeError> {
        self.ask(Command::ReadIndex).await?
    }

    /// [`RaftNode::read_index`] served on the leader's lease (thesis §6.4.1): while the lease
    /// holds it resolves with no message exchanged, otherwise after a confirmation round as
    /// `read_index` does. Only the leader serves it: elsewhere it fails with
    /// [`NodeError::NotLeader`], for the service to forward to the leader. It is linearizable
    /// as long as no peer's clock runs faster than `Config::lease_margin_ticks` allows.
    pub async fn lease_read_index(&self) -> Result<Index, NodeError> {
        self.ask(Command::LeaseRead).await?
    }

    /// The node's figures for monitoring: cheap, synchronous, and never waits for the event
    /// loop (it reads what the loop last published). Still answers after the node stopped,
    /// with the last figures.
    pub fn metrics(&self) -> NodeMetrics {
        let published = &self.published;
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let leader = load(&published.leader);
        NodeMetrics {
            term: Term(load(&published.term)),
            is_leader: published.is_leader.load(Ordering::Relaxed),
            leader: (leader != 0).then_some(NodeId(leader)),
            commit_index: Index(load(&published.commit_index)),
            applied_index: Index(load(&published.applied_index)),
            last_log_index: Index(load(&published.last_log_index)),
            snapshot_index: Index(load(&published.snapshot_index)),
            proposals_accepted_total: load(&published.proposals_accepted_total),
            proposals_refused_total: load(&published.proposals_refused_total),
            entries_committed_total: load(&published.entries_committed_total),
            entries_applied_total: load(&published.entries_applied_total),
            elections_started_total: load(&published.elections_started_total),
            leader_changes_total: load(&published.leader_changes_total),
            snapshots_installed_total: load(&published.snapshots_installed_total),
            snapshots_taken_total: load(&published.snapshots_taken_total),
            messages_sent_total: load(&published.messages_sent_total),
            messages_received_total: load(&published.messages_received_total),
            storage_write_latency: self.write_latency.snapshot(),
        }
    }

    /// Tells the node the service has snapshotted its state through `index` (which it has
    /// applied), so the log up to there can be compacted.
    pub async fn snapshot(&self, index: Index, data: Bytes) -> Result<(), NodeError> {
        self.ask(|reply| Command::Snapshot(index, data, reply))
            .await?
    }

    /// Asks the leader to hand leadership to `to` (thesis §3.10).
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<(), NodeError> {
        self.ask(|reply| Command::Transfer(to, reply)).await?
    }

    /// Proposes a membership change on the leader (thesis §4.3): adding a learner, promoting
    /// a caught-up learner or removing a member. Returns where its configuration entry sits;
    /// a promotion or a voter's removal then goes through the joint configuration, and the
    /// leader appends the final one itself once the joint one is committed. The service learns
    /// of committed configurations through [`ApplyMsg::Configuration`].
    pub async fn change_membership(&self, change: ConfChange) -> Result<(Index, Term), NodeError> {
        self.ask(|reply| Command::ChangeMembership(change, reply))
            .await?
    }

    /// [`RaftNode::change_membership`] for a plain thread.
    pub fn blocking_change_membership(
        &self,
        change: ConfChange,
    ) -> Result<(Index, Term), NodeError> {
        self.runtime.block_on(self.change_membership(change))
    }

    /// Role, leader, commit and applied index, last log index and per-follower progress.
    pub async fn status(&self) -> Result<Status, NodeError> {
        self.ask(Command::Status).await
    }

    /// [`RaftNode::start_command`] for a plain thread (outside the node's runtime: calling it
    /// on a runtime thread panics, as blocking there would stall the runtime).
    pub fn blocking_start_command(&self, command: Bytes) -> Result<(Index, Term), NodeError> {
        self.runtime.block_on(self.start_command(command))
    }

    /// [`RaftNode::read_index`] for a plain thread.
    pub fn blocking_read_index(&self) -> Result<Index, NodeError> {
        self.runtime.block_on(self.read_index())
    }

    /// [`RaftNode::lease_read_index`] for a plain thread.
    pub fn blocking_lease_read_index(&self) -> Result<Index, NodeError> {
        self.runtime.block_on(self.lease_read_index())
    }

    /// [`RaftNode::snapshot`] for a plain thread.
    pub fn blocking_snapshot(&self, index: Index, data: Bytes) -> Result<(), NodeError> {
        self.runtime.block_on(self.snapshot(index, data))
    }

    /// [`RaftNode::transfer_leadership`] for a plain thread.
    pub fn blocking_transfer_leadership(&self, to: NodeId) -> Result<(), NodeError> {
        self.runtime.block_on(self.transfer_leadership(to))
    }

    /// [`RaftNode::status`] for a plain thread.
    pub fn blocking_status(&self) -> Result<Status, NodeError> {
        self.runtime.block_on(self.status())
    }

    /// [`RaftNode::shutdown`] for a plain thread.
    pub fn blocking_shutdown(&self) {
        self.runtime.block_on(self.shutdown());
    }

    /// Stops the node after the writes already handed to the storage thread are durable.
    /// Takes `&self` so a node shared by a service can be stopped; later calls fail with
    /// [`NodeError::Stopped`], and a second `shutdown` returns at once.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
        let handle = self.take_event_loop();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }

    fn take_event_loop(&self) -> Option<JoinHandle<()>> {
        self.event_loop
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

impl Drop for RaftNode {
    fn drop(&mut self) {
        if let Some(handle) = self.take_event_loop() {
            handle.abort();
        }
    }
}

struct EventLoop<S: LogStore, T> {
    raft: Raft<S::Reader>,
    addresses: BTreeMap<NodeId, String>,
    transport: T,
    writer: Option<StorageThread<S>>,
    /// Writes the storage thread's full queue refused, offered again in order after the next
    /// durable report, so that the event loop never blocks on the disk.
    persist_backlog: VecDeque<PersistRequest>,
    /// The newest persist id the core has been told is durable: a storage thread's report
    /// can arrive after a later write made on the loop (see [`EventLoop::write_place`]).
    durable_through: PersistId,
    /// A leader's small write waits in the backlog until the loop has yielded once, so that
    /// the transport puts the appends handed to it on the wire before the sync blocks the
    /// thread (see [`EventLoop::write_place`]).
    write_after_yield: bool,
    /// Bounded by the core: it hands out no more than `Config::apply_bytes_max` of entries
    /// the apply task has not reported applied.
    apply_work: mpsc::UnboundedSender<ApplyWork>,
    published: Arc<Published>,
    reads: BTreeMap<ReadContext, ReadReply>,
    next_read: ReadContext,
    /// The core's first snapshot hand-out restores the peer's own snapshot, not a leader's.
    restoring_snapshot: bool,
    /// The commit index last published, to count its advances.
    commit_index: Index,
    /// The leader last published and its term, to count leader changes.
    known_leader: Option<(Term, NodeId)>,
    clock: Clock,
}

/// Most events the loop takes in one round before it hands out the core's output, so a flood
/// of input cannot hold back messages and disk writes indefinitely.
const EVENTS_PER_ROUND_MAX: usize = 1024;

/// Where the event loop has a write made durable (see [`EventLoop::write_place`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WritePlace {
    /// Handed to the storage thread.
    Thread,
    /// Written on the loop's thread, if the storage thread is idle.
    Here,
    /// Written on the loop's thread once it has yielded.
    AfterYield,
}

/// One input of the event loop.
enum Event {
    Tick,
    Message(Message),
    /// `None`: every handle to the node is gone.
    Command(Option<Command>),
    Durable(storage_thread::Durable),
    /// `None`: the apply task is gone.
    Applied(Option<Index>),
}

/// Keeps the core's ticks in step with real (monotonic) time. The timer alone would not: after
/// the loop stalls (a paused process, an overloaded machine) it fires once, not once per tick
/// missed, and a leader whose ticks lag real time would think its lease lasts longer than it
/// does (thesis §6.4.1). So the loop ticks the core for every tick that has really passed, on
/// each timer fire and before every lease read.
struct Clock {
    started: tokio::time::Instant,
    tick: Duration,
    /// Ticks handed to the core so far.
    ticks_done: u64,
    /// The most ticks one catch-up hands out. Two election timeouts end any lease, timer and
    /// election the stall overran; more would only spin.
    catch_up_ticks_max: u64,
}

impl Clock {
    fn new(tick: Duration, election_ticks: u32) -> Clock {
        assert!(!tick.is_zero(), "invariant tick-positive");
        Clock {
            started: tokio::time::Instant::now(),
            tick,
            ticks_done: 0,
            catch_up_ticks_max: 2 * u64::from(election_ticks),
        }
    }

    /// How many ticks to hand the core now: every tick that has passed since the start and
    /// was not handed out yet (the first one at the start itself, as the timer's), at most
    /// `catch_up_ticks_max`; ticks beyond that are dropped.
    fn ticks_due(&mut self) -> u64 {
        let elapsed_ticks = self.started.elapsed().as_nanos() / self.tick.as_nanos();
        let due = u64::try_from(elapsed_ticks)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let ticks = due.saturating_sub(self.ticks_done);
        self.ticks_done = self.ticks_done.max(due);
        ticks.min(self.catch_up_ticks_max)
    }
}

impl<S: LogStore, T: Transport> EventLoop<S, T> {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Message>,
        mut durable: mpsc::UnboundedReceiver<storage_thread::Durable>,
        mut applied: mpsc::UnboundedReceiver<Index>,
    ) {
        let mut ticker = tokio::time::interval(self.clock.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop_reason = 'run: loop {
            let event = tokio::select! {
                _ = ticker.tick() => Event::Tick,
                Some(message) = inbound.recv() => Event::Message(message),
                command = commands.recv() => Event::Command(command),
                Some(result) = durable.recv() => Event::Durable(result),
                index = applied.recv() => Event::Applied(index),
            };
            if let Some(reason) = self.on_event(event) {
                break reason;
            }
            // Take what else is already waiting before asking the core for its output, so that
            // many proposals, replies and durable reports share one append message, one disk
            // write and one wake-up of the storage thread (batching under load costs nothing
            // when idle: the channels are empty then).
            for _ in 0..EVENTS_PER_ROUND_MAX {
                let event = if let Ok(message) = inbound.try_recv() {
                    Event::Message(message)
                } else if let Ok(result) = durable.try_recv() {
                    Event::Durable(result)
                } else {
                    match commands.try_recv() {
                        Ok(command) => Event::Command(Some(command)),
                        Err(mpsc::error::TryRecvError::Disconnected) => Event::Command(None),
                        Err(mpsc::error::TryRecvError::Empty) => match applied.try_recv() {
                            Ok(index) => Event::Applied(Some(index)),
                            Err(mpsc::error::TryRecvError::Disconnected) => Event::Applied(None),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                        },
                    }
                };
                if let Some(reason) = self.on_event(event) {
                    break 'run reason;
                }
            }
            if let Some(error) = self.raft.fatal_error() {
                break StopReason::StorageFailed(error.to_string());
            }
            if let Err(reason) = self.process_ready(false) {
                break reason;
            }
            if std::mem::take(&mut self.write_after_yield) {
                tokio::task::yield_now().await;
                if let Err(reason) = self.process_ready(true) {
                    break reason;
                }
            }
        };
        tracing::info!(id = %self.raft.id(), reason = %stop_reason, "raft node stopping");
        *self
            .published
            .stop_reason
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(stop_reason.clone());
        self.published.is_leader.store(false, Ordering::Release);
        for (_, waiter) in std::mem::take(&mut self.reads) {
            let _ = waiter.send(Err(NodeError::Stopped(stop_reason.clone())));
        }
        // Requests already queued hear why, rather than a bare "gone".
        commands.close();
        while let Ok(command) = commands.try_recv() {
            command.refuse(NodeError::Stopped(stop_reason.clone()));
        }
        if let Some(writer) = self.writer.take() {
            let backlog = std::mem::take(&mut self.persist_backlog);
            // Joins the storage thread after it wrote what it was handed.
            let _ = tokio::task::spawn_blocking(move || {
                for request in backlog {
                    if writer.submit(request).is_err() {
                        break;
                    }
                }
                writer.shutdown()
            })
            .await;
        }
    }

    /// Feeds one event to the core; `Some(reason)` when the loop must stop.
    fn on_event(&mut self, event: Event) -> Option<StopReason> {
        match event {
            Event::Tick => self.tick_core(),
            Event::Message(message) => {
                count(&self.published.messages_received_total, 1);
                // Rejected input is counted by the core; nothing else to do here.
                let _ = self.raft.step(message);
            }
            Event::Command(Some(Command::Shutdown) | None) => return Some(StopReason::Shutdown),
            Event::Command(Some(command)) => self.handle(command),
            Event::Durable(Ok(id)) => self.on_durable(id),
            Event::Durable(Err(error)) => return Some(StopReason::StorageFailed(error)),
            Event::Applied(Some(index)) => self.raft.on_applied(index),
            // Nobody applies what commits any more: serving on would be a lie.
            Event::Applied(None) => return Some(StopReason::ApplyChannelClosed),
        }
        None
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Propose(data, placement) => {
                let result = self
                    .raft
                    .propose(data)
                    .map(|id| (id.index, id.term))
                    .map_err(|error| NodeError::from_propose(error, &self.addresses));
                let counter = match result {
                    Ok(_) => &self.published.proposals_accepted_total,
                    Err(_) => &self.published.proposals_refused_total,
                };
                count(counter, 1);
                match placement {
                    Placement::Reply(reply) => {
                        let _ = reply.send(result);
                    }
                    Placement::Callback(placed) => placed.call(result),
                }
            }
            Command::ReadIndex(reply) => self.start_read(reply, false),
            Command::LeaseRead(reply) => self.start_read(reply, true),
            Command::Snapshot(index, data, reply) => {
                let result = self.raft.compact(index, data).map_err(NodeError::Compact);
                if result.is_ok() {
                    count(&self.published.snapshots_taken_total, 1);
                }
                let _ = reply.send(result);
            }
            Command::Transfer(to, reply) => {
                let result = self
                    .raft
                    .transfer_leader(to)
                    .map_err(|error| NodeError::from_propose(error, &self.addresses));
                let _ = reply.send(result);
            }
            Command::ChangeMembership(change, reply) => {
                let result = match self.raft.propose_conf_change(change) {
                    Ok(id) => Ok((id.index, id.term)),
                    Err(ConfChangeError::NotLeader { leader }) => Err(NodeError::NotLeader {
                        leader,
                        address: leader.and_then(|leader| self.addresses.get(&leader).cloned()),
                    }),
                    Err(error) => Err(NodeError::Membership(error)),
                };
                let _ = reply.send(result);
            }
            Command::Status(reply) => {
                let _ = reply.send(self.raft.status());
            }
            Command::Shutdown => {}
        }
    }

    /// Hands the core the ticks that have passed (see [`Clock`]).
    fn tick_core(&mut self) {
        for _ in 0..self.clock.ticks_due() {
            self.raft.tick();
        }
    }

    /// Registers a read (ReadIndex, or on the lease) under a fresh context; the answer comes
    /// with a later `ready()`.
    fn start_read(&mut self, reply: ReadReply, lease: bool) {
        let context = self.next_read;
        self.next_read += 1;
        let started = if lease {
            // The lease is judged by the core's ticks: they must not lag real time.
            self.tick_core();
            self.raft.lease_read(context)
        } else {
            self.raft.read_index(context)
        };
        match started {
            Ok(()) => {
                self.reads.insert(context, reply);
            }
            Err(error) => {
                let _ = reply.send(Err(NodeError::from_propose(error, &self.addresses)));
            }
        }
    }

    fn on_durable(&mut self, id: PersistId) {
        if id > self.durable_through {
            self.durable_through = id;
            self.raft.on_persisted(id);
        }
    }

    /// Hands out everything the core has ready. Errs with the reason to stop if the storage
    /// failed or its thread is gone.
    /// `yielded`: the loop has yielded since the messages of the waiting writes were handed
    /// to the transport (see [`EventLoop::write_place`]).
    fn process_ready(&mut self, yielded: bool) -> Result<(), StopReason> {
        while self.raft.has_ready() {
            let ready = self.raft.ready();
            count(
                &self.published.messages_sent_total,
                ready.messages.len() as u64,
            );
            for message in ready.messages {
                self.transport.send(message);
            }
            if let Some(request) = ready.persist {
                self.persist_backlog.push_back(request);
            }
            self.submit_backlog(yielded)?;
            if let Some(snapshot) = ready.snapshot_to_apply {
                if !std::mem::take(&mut self.restoring_snapshot) {
                    count(&self.published.snapshots_installed_total, 1);
                }
                let _ = self.apply_work.send(ApplyWork::Snapshot(snapshot));
            }
            if !ready.committed_entries.is_empty() {
                let _ = self
                    .apply_work
                    .send(ApplyWork::Entries(ready.committed_entries));
            }
            for read in ready.read_states {
                if let Some(waiter) = self.reads.remove(&read.context) {
                    let _ = waiter.send(Ok(read.index));
                }
            }
            for context in ready.failed_reads {
                if let Some(waiter) = self.reads.remove(&context) {
                    let _ = waiter.send(Err(NodeError::ReadFailed));
                }
            }
        }
        // A durable report may have made room for writes refused earlier.
        self.submit_backlog(yielded)?;
        if self.raft.has_ready() {
            // One of them was written here and made it durable.
            return self.process_ready(yielded);
        }
        self.publish();
        Ok(())
    }

    /// Publishes the core's state for [`RaftNode::get_state`] and [`RaftNode::metrics`].
    fn publish(&mut self) {
        let published = &self.published;
        let (term, is_leader) = self.raft.state();
        published.term.store(term.0, Ordering::Release);
        published.is_leader.store(is_leader, Ordering::Release);
        let leader = self.raft.leader();
        published
            .leader
            .store(leader.map_or(0, |leader| leader.0), Ordering::Relaxed);
        if let Some(leader) = leader {
            if self.known_leader != Some((term, leader)) {
                self.known_leader = Some((term, leader));
                count(&published.leader_changes_total, 1);
            }
        }
        let commit_index = self.raft.commit_index();
        assert!(
            commit_index >= self.commit_index,
            "invariant commit-monotonic: {commit_index} < {}",
            self.commit_index
        );
        count(
            &published.entries_committed_total,
            commit_index.0 - self.commit_index.0,
        );
        self.commit_index = commit_index;
        published
            .commit_index
            .store(commit_index.0, Ordering::Relaxed);
        published
            .last_log_index
            .store(self.raft.last_index().0, Ordering::Relaxed);
        published
            .snapshot_index
            .store(self.raft.snapshot_index().0, Ordering::Relaxed);
        published
            .elections_started_total
            .store(self.raft.counters().elections_started, Ordering::Relaxed);
    }

    /// Offers the storage thread the waiting writes, oldest first, until its queue is full,
    /// or writes a small one on the loop when the thread is idle (see
    /// [`EventLoop::write_place`]). Errs with the reason to stop if the storage failed or its
    /// thread is gone.
    fn submit_backlog(&mut self, yielded: bool) -> Result<(), StopReason> {
        let gone = || StopReason::StorageFailed("the storage thread is gone".to_string());
        while let Some(request) = self.persist_backlog.pop_front() {
            let place = self.write_place(&request, yielded);
            if place == WritePlace::AfterYield {
                self.persist_backlog.push_front(request);
                self.write_after_yield = true;
                break;
            }
            let writer = self.writer.as_mut().ok_or_else(gone)?;
            let request = if place == WritePlace::Here {
                match writer.write_here(request) {
                    WriteHere::Written(Ok(id)) => {
                        self.on_durable(id);
                        continue;
                    }
                    WriteHere::Written(Err(error)) => return Err(StopReason::StorageFailed(error)),
                    WriteHere::Busy(request) => request,
                }
            } else {
                request
            };
            if let Some(refused) = writer.try_submit(request).map_err(|_| gone())? {
                self.persist_backlog.push_front(refused);
                break;
            }
        }
        Ok(())
    }

    /// Where to write `request`. On the event loop's thread when the storage thread is idle
    /// and the write is small: handing it over and back costs two thread wake-ups, which on
    /// a virtual machine cost more than the write itself when writes come one at a time. A
    /// follower answers the leader only once its write is durable, so it has nothing else to
    /// do meanwhile. A leader's appends go out only after the loop yields, and must not wait
    /// for its own sync, so it yields first; it writes here only a few entries (one client's
    /// pace), where blocking for the sync holds back nothing. A snapshot, or a batch big
    /// enough to hold the loop up for long, goes to the thread.
    fn write_place(&self, request: &PersistRequest, yielded: bool) -> WritePlace {
        const FOLLOWER_BYTES_MAX: u64 = 256 << 10;
        const LEADER_BYTES_MAX: u64 = 4 << 10;
        if request.snapshot.is_some() {
            return WritePlace::Thread;
        }
        let entry_bytes: u64 = request.entries.iter().map(Entry::size_bytes).sum();
        match self.raft.state().1 {
            false if entry_bytes <= FOLLOWER_BYTES_MAX => WritePlace::Here,
            true if entry_bytes <= LEADER_BYTES_MAX
                && self.writer.as_ref().is_some_and(StorageThread::is_idle) =>
            {
                if yielded {
                    WritePlace::Here
                } else {
                    WritePlace::AfterYield
                }
            }
            _ => WritePlace::Thread,
        }
    }
}

/// Feeds the service in log order and reports what it has been handed, to the event loop and
/// in the published metrics.
async fn apply_task(
    mut work: mpsc::UnboundedReceiver<ApplyWork>,
    service: mpsc::Sender<ApplyMsg>,
    applied: mpsc::UnboundedSender<Index>,
    published: Arc<Published>,
) {
    while let Some(item) = work.recv().await {
        let entries_applied = match &item {
            ApplyWork::Snapshot(_) => 0,
            ApplyWork::Entries(entries) => entries.len() as u64,
        };
        let last = match item {
            ApplyWork::Snapshot(snapshot) => {
                let id = snapshot.meta.last_included;
                let message = ApplyMsg::Snapshot {
                    index: id.index,
                    term: id.term,
                    data: snapshot.data,
                };
                if service.send(message).await.is_err() {
                    return;
                }
                id.index
            }
            ApplyWork::Entries(entries) => {
                let Some(last) = entries.last().map(Entry::index) else {
                    continue;
                };
                for entry in entries {
                    let (index, term) = (entry.index(), entry.term());
                    let message = match entry.kind {
                        EntryKind::Noop => ApplyMsg::Noop { index, term },
                        EntryKind::Normal => ApplyMsg::Command {
                            index,
                            term,
                            data: entry.data,
                        },
                        // The core decoded this entry before appending it, so a failure here
                        // is a broken invariant, not bad input.
                        EntryKind::Configuration => match Configuration::decode(&entry.data) {
                            Ok(configuration) => ApplyMsg::Configuration {
                                index,
                                term,
                                configuration,
                            },
                            Err(error) => panic!(
                                "invariant committed-configuration-decodes: entry {}: {error}",
                                entry.id
                            ),
                        },
                    };
                    if service.send(message).await.is_err() {
                        return;
                    }
                }
                last
            }
        };
        published.applied_index.store(last.0, Ordering::Relaxed);
        count(&published.entries_applied_total, entries_applied);
        if applied.send(last).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placement_callback_is_called_once_and_hears_of_a_stop_if_dropped_uncalled() {
        use std::sync::Mutex;
        let heard = Arc::new(Mutex::new(Vec::new()));
        let callback = |heard: &Arc<Mutex<Vec<_>>>| {
            let heard = Arc::clone(heard);
            PlacedCallback(Some(Box::new(move |place| {
                heard.lock().expect("not poisoned").push(place)
            })))
        };
        callback(&heard).call(Ok((Index(3), Term(2))));
        drop(callback(&heard));
        let heard = heard.lock().expect("not poisoned");
        assert_eq!(
            *heard,
            vec![
                Ok((Index(3), Term(2))),
                Err(NodeError::Stopped(StopReason::Shutdown))
            ]
        );
    }

    #[test]
    fn the_clock_hands_out_one_tick_at_the_start_and_every_tick_that_passed() {
        let mut hourly = Clock::new(Duration::from_secs(3600), 100);
        assert_eq!(
            hourly.ticks_due(),
            1,
            "the timer's first tick is at the start"
        );
        assert_eq!(hourly.ticks_due(), 0);
        let mut clock = Clock::new(Duration::from_millis(1), 100);
        // Time is the input here: the loop stalled for 20 ticks.
        std::thread::sleep(Duration::from_millis(20));
        let caught_up = clock.ticks_due();
        assert!(
            (20..=200).contains(&caught_up),
            "{caught_up} ticks after 20 ms"
        );
    }

    #[test]
    fn a_long_stall_hands_out_two_election_timeouts_and_drops_the_rest() {
        let mut clock = Clock::new(Duration::from_millis(5), 5);
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(clock.ticks_due(), 10);
        assert!(
            clock.ticks_due() <= 2,
            "the dropped ticks do not come later"
        );
    }
}
