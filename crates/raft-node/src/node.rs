//! A running Raft peer: the event loop that drives the core, the storage thread and the apply
//! task, behind the API a service uses.
//!
//! ```text
//!  RaftNode::start_command / read_index / ... ─► commands (bounded) ─┐
//!  transport inbound ───────────────────────────────────────────────┤
//!  timer ticks ─────────────────────────────────────────────────────┤► event loop: Raft<WalStorage>
//!  storage thread (GroupCommit): durable ids ───────────────────────┤      │ ready()
//!  apply task: applied indexes ─────────────────────────────────────┘      ├─► transport.send
//!                                                                          ├─► GroupCommit::submit
//!                                                                          └─► apply task ─► ApplyMsg channel
//! ```
//!
//! Messages go out as soon as `ready()` hands them over, while the leader's own write is being
//! synced (thesis §10.2.1); the core holds back anything that must wait for the write. The
//! state machine is fed by its own task, so a slow service delays applying, never elections.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raft_core::{
    Config, Entry, EntryKind, Index, Message, NodeId, PersistRequest, ProposeError, Raft, Snapshot,
    Status, Term,
};
use raft_wal::{GroupCommit, Wal, WalStorage};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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

/// Why a request to the node failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NodeError {
    /// This peer is not the leader; the leader it knows of, if any, and its address.
    #[error("not the leader (leader: {leader:?} at {address:?})")]
    NotLeader {
        /// The known leader.
        leader: Option<NodeId>,
        /// The known leader's address, from [`NodeConfig::addresses`].
        address: Option<String>,
    },
    /// Too much is queued or in flight; retry later.
    #[error("busy: too many requests in flight")]
    Busy,
    /// The request cannot be accepted as it is (too large, a snapshot of an unapplied index...).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The read could not be confirmed (leadership changed or the request was lost).
    #[error("read failed; retry")]
    ReadFailed,
    /// The node has stopped (shut down, or stopped by a storage failure).
    #[error("node stopped: {0}")]
    Stopped(String),
}

impl NodeError {
    /// The error for a core refusal, with the leader's address looked up in `addresses`.
    fn from_propose(error: ProposeError, addresses: &BTreeMap<NodeId, String>) -> NodeError {
        match error {
            ProposeError::NotLeader { leader } => NodeError::NotLeader {
                leader,
                address: leader.and_then(|leader| addresses.get(&leader).cloned()),
            },
            ProposeError::Busy => NodeError::Busy,
            other => NodeError::Rejected(other.to_string()),
        }
    }
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

enum Command {
    Propose(Bytes, oneshot::Sender<Result<(Index, Term), NodeError>>),
    ReadIndex(oneshot::Sender<Result<Index, NodeError>>),
    Snapshot(Index, Bytes, oneshot::Sender<Result<(), NodeError>>),
    Transfer(NodeId, oneshot::Sender<Result<(), NodeError>>),
    Status(oneshot::Sender<Status>),
    Shutdown,
}

enum ApplyWork {
    Snapshot(Snapshot),
    Entries(Vec<Entry>),
}

/// Term and leadership, readable without a round trip to the event loop.
#[derive(Default)]
struct Published {
    term: AtomicU64,
    is_leader: AtomicBool,
    stopped: AtomicBool,
}

/// A running peer. Dropping it stops the event loop; [`RaftNode::shutdown`] also waits for
/// queued writes to reach the disk.
pub struct RaftNode {
    id: NodeId,
    /// The runtime the node runs on, for the blocking calls.
    runtime: tokio::runtime::Handle,
    commands: mpsc::Sender<Command>,
    published: Arc<Published>,
    event_loop: Option<JoinHandle<()>>,
}

impl RaftNode {
    /// Starts a peer on `wal` (opened by the caller, so it owns the data directory), sending
    /// through `transport`, receiving from `inbound`, and delivering committed commands and
    /// installed snapshots on `apply`. Must be called inside a tokio runtime.
    pub fn start<T: Transport>(
        config: NodeConfig,
        wal: Wal,
        transport: T,
        inbound: mpsc::Receiver<Message>,
        apply: mpsc::Sender<ApplyMsg>,
    ) -> Result<RaftNode, NodeError> {
        let id = config.raft.id;
        let raft = Raft::new(config.raft.clone(), wal.storage())
            .map_err(|error| NodeError::Rejected(format!("cannot start the core: {error}")))?;
        let (durable_sender, durable) = mpsc::unbounded_channel();
        let writer = GroupCommit::spawn(wal, move |result| {
            // The loop may be gone at shutdown; nothing is waiting then.
            let _ = durable_sender.send(result);
        })
        .map_err(|error| NodeError::Stopped(format!("cannot start the storage thread: {error}")))?;
        let (applied_sender, applied) = mpsc::unbounded_channel();
        let (apply_work, apply_queue) = mpsc::unbounded_channel();
        tokio::spawn(apply_task(apply_queue, apply, applied_sender));
        let (commands_sender, commands) = mpsc::channel(config.commands_max);
        let published = Arc::new(Published::default());
        let event_loop = EventLoop {
            raft,
            addresses: config.addresses.clone(),
            transport,
            writer: Some(writer),
            persist_backlog: VecDeque::new(),
            apply_work,
            published: Arc::clone(&published),
            reads: BTreeMap::new(),
            next_read: 0,
        };
        let handle = tokio::spawn(event_loop.run(config.tick, commands, inbound, durable, applied));
        Ok(RaftNode {
            id,
            runtime: tokio::runtime::Handle::current(),
            commands: commands_sender,
            published,
            event_loop: Some(handle),
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

    async fn ask<R>(
        &self,
        command: impl FnOnce(oneshot::Sender<R>) -> Command,
    ) -> Result<R, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .try_send(command(reply))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => NodeError::Busy,
                mpsc::error::TrySendError::Closed(_) => {
                    NodeError::Stopped("event loop ended".into())
                }
            })?;
        answer
            .await
            .map_err(|_| NodeError::Stopped("event loop ended".into()))
    }

    /// Proposes `command`; returns at once with the index and term it will have if it is
    /// committed (it then arrives on the apply channel), or why it cannot be proposed here.
    pub async fn start_command(&self, command: Bytes) -> Result<(Index, Term), NodeError> {
        self.ask(|reply| Command::Propose(command, reply)).await?
    }

    /// Resolves with an index once a linearizable read may be served: the service answers it
    /// after applying through that index (thesis §6.4).
    pub async fn read_index(&self) -> Result<Index, NodeError> {
        self.ask(Command::ReadIndex).await?
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
    pub fn blocking_shutdown(self) {
        let runtime = self.runtime.clone();
        runtime.block_on(self.shutdown());
    }

    /// Stops the node after the writes already handed to the storage thread are durable.
    pub async fn shutdown(mut self) {
        let _ = self.commands.send(Command::Shutdown).await;
        if let Some(handle) = self.event_loop.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for RaftNode {
    fn drop(&mut self) {
        if let Some(handle) = self.event_loop.take() {
            handle.abort();
        }
    }
}

struct EventLoop<T> {
    raft: Raft<WalStorage>,
    addresses: BTreeMap<NodeId, String>,
    transport: T,
    writer: Option<GroupCommit>,
    /// Writes the storage thread's full queue refused, offered again in order after the next
    /// durable report, so that the event loop never blocks on the disk.
    persist_backlog: VecDeque<PersistRequest>,
    /// Bounded by the core: it hands out no more than `Config::apply_bytes_max` of entries
    /// the apply task has not reported applied.
    apply_work: mpsc::UnboundedSender<ApplyWork>,
    published: Arc<Published>,
    reads: BTreeMap<u64, oneshot::Sender<Result<Index, NodeError>>>,
    next_read: u64,
}

impl<T: Transport> EventLoop<T> {
    async fn run(
        mut self,
        tick: Duration,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Message>,
        mut durable: mpsc::UnboundedReceiver<raft_wal::Durable>,
        mut applied: mpsc::UnboundedReceiver<Index>,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop_reason = loop {
            tokio::select! {
                _ = ticker.tick() => self.raft.tick(),
                Some(message) = inbound.recv() => {
                    // Rejected input is counted by the core; nothing else to do here.
                    let _ = self.raft.step(message);
                }
                command = commands.recv() => match command {
                    Some(Command::Shutdown) | None => break "shut down".to_string(),
                    Some(command) => self.handle(command),
                },
                Some(result) = durable.recv() => match result {
                    Ok(id) => self.raft.on_persisted(id),
                    Err(error) => break format!("storage failed: {error}"),
                },
                index = applied.recv() => match index {
                    Some(index) => self.raft.on_applied(index),
                    // Nobody applies what commits any more: serving on would be a lie.
                    None => break "the service closed its apply channel".to_string(),
                },
            }
            if let Some(error) = self.raft.fatal_error() {
                break format!("storage failed: {error}");
            }
            if self.process_ready().is_err() {
                break "storage thread gone".to_string();
            }
        };
        tracing::info!(id = %self.raft.id(), reason = %stop_reason, "raft node stopping");
        self.published.stopped.store(true, Ordering::Release);
        self.published.is_leader.store(false, Ordering::Release);
        for (_, waiter) in std::mem::take(&mut self.reads) {
            let _ = waiter.send(Err(NodeError::Stopped(stop_reason.clone())));
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

    fn handle(&mut self, command: Command) {
        match command {
            Command::Propose(data, reply) => {
                let result = self
                    .raft
                    .propose(data)
                    .map(|id| (id.index, id.term))
                    .map_err(|error| NodeError::from_propose(error, &self.addresses));
                let _ = reply.send(result);
            }
            Command::ReadIndex(reply) => {
                let context = self.next_read;
                self.next_read += 1;
                match self.raft.read_index(context) {
                    Ok(()) => {
                        self.reads.insert(context, reply);
                    }
                    Err(error) => {
                        let _ = reply.send(Err(NodeError::from_propose(error, &self.addresses)));
                    }
                }
            }
            Command::Snapshot(index, data, reply) => {
                let result = self
                    .raft
                    .compact(index, data)
                    .map_err(|error| NodeError::Rejected(error.to_string()));
                let _ = reply.send(result);
            }
            Command::Transfer(to, reply) => {
                let result = self
                    .raft
                    .transfer_leader(to)
                    .map_err(|error| NodeError::from_propose(error, &self.addresses));
                let _ = reply.send(result);
            }
            Command::Status(reply) => {
                let _ = reply.send(self.raft.status());
            }
            Command::Shutdown => {}
        }
    }

    /// Hands out everything the core has ready. Errs if the storage thread is gone.
    fn process_ready(&mut self) -> Result<(), ()> {
        while self.raft.has_ready() {
            let ready = self.raft.ready();
            for message in ready.messages {
                self.transport.send(message);
            }
            if let Some(request) = ready.persist {
                self.persist_backlog.push_back(request);
            }
            self.submit_backlog()?;
            if let Some(snapshot) = ready.snapshot_to_apply {
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
        self.submit_backlog()?;
        let (term, is_leader) = self.raft.state();
        self.published.term.store(term.0, Ordering::Release);
        self.published.is_leader.store(is_leader, Ordering::Release);
        Ok(())
    }

    /// Offers the storage thread the waiting writes, oldest first, until its queue is full.
    /// Errs if the storage thread is gone.
    fn submit_backlog(&mut self) -> Result<(), ()> {
        let writer = self.writer.as_ref().ok_or(())?;
        while let Some(request) = self.persist_backlog.pop_front() {
            if let Some(refused) = writer.try_submit(request).map_err(|_| ())? {
                self.persist_backlog.push_front(refused);
                break;
            }
        }
        Ok(())
    }
}

/// Feeds the service in log order and reports what it has been handed.
async fn apply_task(
    mut work: mpsc::UnboundedReceiver<ApplyWork>,
    service: mpsc::Sender<ApplyMsg>,
    applied: mpsc::UnboundedSender<Index>,
) {
    while let Some(item) = work.recv().await {
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
                    if entry.kind == EntryKind::Noop {
                        continue;
                    }
                    let message = ApplyMsg::Command {
                        index: entry.index(),
                        term: entry.term(),
                        data: entry.data,
                    };
                    if service.send(message).await.is_err() {
                        return;
                    }
                }
                last
            }
        };
        if applied.send(last).is_err() {
            return;
        }
    }
}
