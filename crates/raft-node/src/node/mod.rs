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

//!
//! The parts, one module each: [`config`] (settings), [`command`] (requests queued for the
//! loop and their replies), [`event_loop`] (the task that owns the core), [`clock`] (real time
//! as ticks), [`apply`] (the task feeding the service), [`staging`] (the service's snapshots
//! made durable before the core compacts), [`metrics`] (the figures, declared once),
//! [`error`] (what can go wrong). This file is the API a service calls.

use std::sync::Arc;

use bytes::Bytes;
use raft_core::{ConfChange, Index, LogStore, Message, NodeId, Raft, Status, Term};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::metrics::add;
use crate::storage_thread::StorageThread;
use crate::transport::Transport;

mod apply;
mod clock;
mod command;
mod config;
mod error;
mod event_loop;
mod metrics;
mod reader;
mod staging;

pub use apply::ApplyMsg;
pub use config::NodeConfig;
pub use error::{NodeError, StartError, StopReason};
pub use metrics::NodeMetrics;

use apply::apply_task;
use command::{Command, PlacedCallback, Placement};
use event_loop::EventLoop;
use metrics::Published;
use reader::NodeReader;
use staging::Staging;

/// A running peer. Dropping it stops the event loop as a crash would (the next start on its
/// write-ahead log recovers with the peers' help); [`RaftNode::shutdown`] waits for queued
/// writes to reach the disk and closes the log cleanly.
pub struct RaftNode {
    id: NodeId,
    /// The runtime the node runs on, for the blocking calls.
    runtime: tokio::runtime::Handle,
    commands: mpsc::Sender<Command>,
    /// The figures the event loop, the apply task and the storage thread publish.
    published: Arc<Published>,
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
        let reader = NodeReader::new(store.reader(), config.trust_unclean_restart);
        let (staged_sender, staged) = mpsc::unbounded_channel();
        let staging = store
            .snapshot_stager()
            .map(|stager| Staging::new(stager, staged_sender));
        let raft = Raft::new(config.raft.clone(), reader)?;
        let published = Arc::new(Published::default());
        let write_latency = Arc::clone(&published.figures.storage_write_latency);
        let (durable_sender, durable) = mpsc::unbounded_channel();
        let writer = StorageThread::spawn(store, write_latency, move |result| {
            // The loop may be gone at shutdown; nothing is waiting then.
            let _ = durable_sender.send(result);
        })
        .map_err(StartError::StorageThread)?;
        let (applied_sender, applied) = mpsc::unbounded_channel();
        let (apply_work, apply_queue) = mpsc::unbounded_channel();
        tokio::spawn(apply_task(
            apply_queue,
            apply,
            applied_sender,
            Arc::clone(&published),
        ));
        let (commands_sender, commands) = mpsc::channel(config.commands_max);
        let event_loop = EventLoop::new(
            &config,
            raft,
            transport,
            writer,
            apply_work,
            staging,
            Arc::clone(&published),
        );
        let handle = tokio::spawn(event_loop.run(commands, inbound, durable, applied, staged));
        Ok(RaftNode {
            id,
            runtime: tokio::runtime::Handle::current(),
            commands: commands_sender,
            published,
            event_loop: std::sync::Mutex::new(Some(handle)),
        })
    }

    /// This peer's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current term and whether this peer is the leader.
    pub fn get_state(&self) -> (Term, bool) {
        self.published.role()
    }

    /// The error for a request to a stopped node: why it stopped, as the event loop recorded
    /// it (a loop aborted by dropping the node recorded nothing: it was shut down).
    fn stopped(&self) -> NodeError {
        let reason = self.published.stop_reason();
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
            add(&self.published.figures.proposals_refused_total, 1);
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
        self.queue_with_callback(Command::Propose(
            command,
            Placement::Callback(PlacedCallback(Some(Box::new(placed)))),
        ))
    }

    /// [`RaftNode::start_command_with`] (the same queue, the same callback rules: `placed` is
    /// called once, on the event loop), but a follower that knows the leader forwards the
    /// command to it over the Raft transport instead of refusing with `NotLeader`. `placed`
    /// is then called when the leader's answer arrives: `Ok((index, term))` where the leader
    /// put it (committed, it arrives on this node's apply channel like any entry), `Err` with
    /// the leader's refusal (it is not in the log), or `Err(NodeError::ForwardUnanswered)`
    /// when no answer can come any more (the leader or term changed, or none came within two
    /// election timeouts): it may be in the log, and if committed it is applied as usual.
    /// On the leader this is `start_command_with`; with no leader known it refuses with
    /// `NotLeader`, as `start_command_with` does.
    pub fn start_command_or_forward(
        &self,
        command: Bytes,
        placed: impl FnOnce(Result<(Index, Term), NodeError>) + Send + 'static,
    ) -> Result<(), NodeError> {
        self.queue_with_callback(Command::ProposeOrForward(
            command,
            PlacedCallback(Some(Box::new(placed))),
        ))
    }

    /// Queues a proposal whose place goes to a callback. Refused here (a full queue, a stopped
    /// node), the caller learns of it from the error, not from the callback too.
    fn queue_with_callback(&self, command: Command) -> Result<(), NodeError> {
        self.commands.try_send(command).map_err(|error| {
            let (error, mut command) = match error {
                mpsc::error::TrySendError::Full(command) => {
                    add(&self.published.figures.proposals_refused_total, 1);
                    (NodeError::Busy, command)
                }
                mpsc::error::TrySendError::Closed(command) => (self.stopped(), command),
            };
            if let Command::Propose(_, Placement::Callback(placed))
            | Command::ProposeOrForward(_, placed) = &mut command
            {
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
        self.published.figures.snapshot()
    }

    /// Tells the node the service has snapshotted its state through `index` (which it has
    /// applied), so the log up to there can be compacted. If the store stages snapshots
    /// ([`LogStore::snapshot_stager`]; `raft_wal::Wal` does), the snapshot's file is written
    /// first on a thread of its own while the log goes on appending, and this returns once
    /// the core has taken the snapshot after that; a snapshot no newer than one still being
    /// staged is refused as [`raft_core::CompactError::AlreadyCompacted`].
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
    ///
    /// On a write-ahead log ([`raft_wal::Wal`]) it then writes the clean-shutdown marker
    /// ([`raft_wal::Wal::close_cleanly`]), so that the next start trusts the log, unless the
    /// peer is still recovering from an earlier unclean stop ([`Status::recovery`]): it then
    /// recovers again at the next start. Any other stop (a dropped node, a storage failure)
    /// leaves no marker: the next start recovers (see [`NodeConfig::trust_unclean_restart`]).
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
