//! The event loop: the one task that owns the core. It takes every input (requests, peers'
//! messages, ticks, durable and applied reports), steps the core, and hands out what the core
//! has ready.
//!
//! ```text
//!  RaftNode requests (Command) ─┐                                 ┌─► transport.send
//!  transport inbound ───────────┤                                 ├─► storage thread, or here
//!  ticks (Clock) ───────────────┼─► on_event ─► Raft ─► process_ready ┼─► apply task (ApplyWork)
//!  durable reports ─────────────┤   (one round takes what is      ├─► read replies
//!  applied reports ─────────────┤    waiting, then ready())       └─► publish() figures
//!  staged snapshots ────────────┘
//! ```
//!
//! The service's snapshots are staged first, when the store can (see [`super::staging`]).
//!
//! Messages go out as soon as `ready()` hands them over, while the leader's own write is being
//! synced (thesis §10.2.1); the core holds back anything that must wait for the write. Where a
//! write is made is [`EventLoop::write_place`]'s choice.

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use raft_core::{
    ConfChangeError, Entry, ForwardError, ForwardId, Index, LogId, LogStore, Message, NodeId,
    PersistId, PersistRequest, Proposal, Raft, ReadContext, Term,
};
use raft_wal::Wal;
use tokio::sync::mpsc;

use super::apply::ApplyWork;
use super::clock::Clock;
use super::command::{Command, PlacedCallback, Placement, ReadReply};
use super::metrics::Published;
use super::reader::NodeReader;
use super::staging::{SnapshotReply, Staged, Staging};
use super::{NodeConfig, NodeError, StopReason};
use crate::metrics::{add, set};
use crate::storage_thread::{self, StorageThread, WriteHere};
use crate::transport::Transport;

/// The event loop's state: the core and everything it hands work to.
pub(super) struct EventLoop<S: LogStore, T> {
    raft: Raft<NodeReader<S::Reader>>,
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
    /// The callbacks of commands this follower forwarded, until the core hands out their
    /// outcome (bounded by `Config::forwards_pending_max`). Dropped uncalled when the loop
    /// ends, which tells each it stopped.
    forwards: BTreeMap<ForwardId, PlacedCallback>,
    /// The core's first snapshot hand-out restores the peer's own snapshot, not a leader's.
    restoring_snapshot: bool,
    /// The commit index last published, to count its advances.
    commit_index: Index,
    /// The leader last published and its term, to count leader changes.
    known_leader: Option<(Term, NodeId)>,
    clock: Clock,
    /// Makes the service's snapshots durable before they are compacted with; `None` if the
    /// store cannot stage (the write that records a snapshot then writes it).
    staging: Option<Staging>,
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
    Staged(Staged),
}

impl<S: LogStore, T: Transport> EventLoop<S, T> {
    /// A loop over `raft`, writing through `writer`, sending through `transport`, feeding the
    /// apply task through `apply_work`, staging the service's snapshots through `staging` and
    /// publishing into `published` (done once here, so the figures are right before the first
    /// event).
    pub(super) fn new(
        config: &NodeConfig,
        raft: Raft<NodeReader<S::Reader>>,
        transport: T,
        writer: StorageThread<S>,
        apply_work: mpsc::UnboundedSender<ApplyWork>,
        staging: Option<Staging>,
        published: Arc<Published>,
    ) -> EventLoop<S, T> {
        // The core hands out the snapshot in its own log first; that one is no install.
        let restoring_snapshot = raft.snapshot_index() > Index(0);
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
            published,
            reads: BTreeMap::new(),
            forwards: BTreeMap::new(),
            next_read: 0,
            restoring_snapshot,
            commit_index,
            known_leader: None,
            clock: Clock::new(config.tick, config.raft.election_ticks),
            staging,
        };
        event_loop.publish();
        event_loop
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Message>,
        mut durable: mpsc::UnboundedReceiver<storage_thread::Durable>,
        mut applied: mpsc::UnboundedReceiver<Index>,
        mut staged: mpsc::UnboundedReceiver<Staged>,
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
                Some(staged) = staged.recv() => Event::Staged(staged),
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
            if let Some(violation) = self.raft.safety_violation() {
                add(&self.published.figures.safety_violations_total, 1);
                tracing::error!(id = %self.raft.id(), %violation, "stopping the node");
                break StopReason::SafetyViolation(violation.to_string());
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
        self.published.set_stop_reason(stop_reason.clone());
        self.published.figures.is_leader.store(0, Ordering::Release);
        for (_, waiter) in std::mem::take(&mut self.reads) {
            let _ = waiter.send(Err(NodeError::Stopped(stop_reason.clone())));
        }
        // Requests already queued hear why, rather than a bare "gone".
        commands.close();
        while let Ok(command) = commands.try_recv() {
            command.refuse(NodeError::Stopped(stop_reason.clone()));
        }
        if let Some(writer) = self.writer.take() {
            let mut backlog = std::mem::take(&mut self.persist_backlog);
            // Only a graceful stop may leave the clean-shutdown marker, and only once every
            // write the core asked for is durable: the one that ended a recovery (its term and
            // vote) may still be inside the core.
            let graceful = stop_reason == StopReason::Shutdown;
            let all_handed_out = graceful && self.take_pending_persists(&mut backlog);
            // A peer still recovering must recover again after the next start.
            let close_cleanly = all_handed_out && !self.raft.is_recovering();
            let id = self.raft.id();
            // Joins the storage thread after it wrote what it was handed.
            let closed = tokio::task::spawn_blocking(move || {
                for request in backlog {
                    if writer.submit(request).is_err() {
                        break;
                    }
                }
                let store = writer.shutdown()?;
                if close_cleanly {
                    close_store_cleanly(store)
                } else {
                    Ok(false)
                }
            })
            .await;
            match closed {
                Ok(Ok(true)) => tracing::info!(%id, "storage closed cleanly"),
                Ok(Ok(false)) => tracing::info!(
                    %id,
                    graceful,
                    all_handed_out,
                    recovering = self.raft.is_recovering(),
                    "storage closed without the clean-shutdown marker: the next start recovers"
                ),
                Ok(Err(error)) => {
                    tracing::warn!(%id, %error, "storage not closed cleanly: the next start recovers")
                }
                Err(join) => {
                    tracing::warn!(%id, error = %join, "the storage thread's shutdown failed")
                }
            }
        }
    }

    /// Takes every write the core has ready but not handed out yet into `backlog` (the rest
    /// of its output is dropped: the node is stopping). False if the core kept producing
    /// output past the bound, so that something may be left unwritten.
    fn take_pending_persists(&mut self, backlog: &mut VecDeque<PersistRequest>) -> bool {
        // Each round hands out all the core holds; with no input between rounds the second
        // finds nothing. The bound only keeps a core bug from hanging the stop.
        const ROUNDS_MAX: usize = 16;
        for _ in 0..ROUNDS_MAX {
            if !self.raft.has_ready() {
                return true;
            }
            backlog.extend(self.raft.ready().persist);
        }
        !self.raft.has_ready()
    }

    /// Feeds one event to the core; `Some(reason)` when the loop must stop.
    fn on_event(&mut self, event: Event) -> Option<StopReason> {
        match event {
            Event::Tick => self.tick_core(),
            Event::Message(message) => {
                add(&self.published.figures.messages_received_total, 1);
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
            Event::Staged(staged) => self.on_staged(staged),
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
                    Ok(_) => &self.published.figures.proposals_accepted_total,
                    Err(_) => &self.published.figures.proposals_refused_total,
                };
                add(counter, 1);
                match placement {
                    Placement::Reply(reply) => {
                        let _ = reply.send(result);
                    }
                    Placement::Callback(placed) => placed.call(result),
                }
            }
            Command::ProposeOrForward(data, placed) => self.propose_or_forward(data, placed),
            Command::ReadIndex(reply) => self.start_read(reply, false),
            Command::LeaseRead(reply) => self.start_read(reply, true),
            Command::Snapshot(index, data, reply) => {
                let Some(staging) = self.staging.as_mut() else {
                    self.compact(index, data, reply);
                    return;
                };
                // Refusals (not applied yet, covered already) are answered before anything
                // is written; `compact` checks again once the file is durable.
                match self.raft.snapshot_for_compaction(index, data) {
                    Ok(snapshot) => {
                        if let Some((snapshot, reply)) = staging.start(snapshot, reply) {
                            self.compact(index, snapshot.data, reply);
                        }
                    }
                    Err(error) => {
                        let _ = reply.send(Err(NodeError::Compact(error)));
                    }
                }
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

    /// Compacts the log through `index` with the service's snapshot `data`, answering `reply`;
    /// whether the core took it.
    fn compact(&mut self, index: Index, data: Bytes, reply: SnapshotReply) -> bool {
        let result = self.raft.compact(index, data).map_err(NodeError::Compact);
        let compacted = result.is_ok();
        if compacted {
            add(&self.published.figures.snapshots_taken_total, 1);
        }
        let _ = reply.send(result);
        compacted
    }

    /// A snapshot's staging finished: the core compacts with it now (its write finds the file
    /// durable), or, if it has been covered meanwhile by a snapshot installed from the leader,
    /// refuses and the staged file is discarded. A staging that failed leaves the file to the
    /// write that records the snapshot, as without staging.
    fn on_staged(&mut self, Staged { snapshot, result }: Staged) {
        let Some(reply) = self.staging.as_mut().and_then(Staging::take_finished) else {
            panic!("invariant staged-in-flight: a staging finished that was not started");
        };
        let id = snapshot.meta.last_included;
        if let Err(error) = &result {
            tracing::warn!(id = %self.raft.id(), snapshot = %id, %error, "could not stage the snapshot: the log writes it");
        }
        let compacted = self.compact(id.index, snapshot.data, reply);
        let Some(staging) = self.staging.as_mut() else {
            return;
        };
        if !compacted && result.is_ok() {
            staging.discard(id);
        }
        if let Some((next, reply)) = staging.start_waiting() {
            self.compact(next.meta.last_included.index, next.data, reply);
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
            add(
                &self.published.figures.messages_sent_total,
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
                    add(&self.published.figures.snapshots_installed_total, 1);
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
            for (id, outcome) in ready.forwarded {
                self.answer_forward(id, outcome);
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
    fn propose_or_forward(&mut self, data: Bytes, placed: PlacedCallback) {
        let figures = &self.published.figures;
        match self.raft.propose_or_forward(data) {
            Ok(Proposal::Placed(id)) => {
                add(&figures.proposals_accepted_total, 1);
                placed.call(Ok((id.index, id.term)));
            }
            Ok(Proposal::Forwarded(id)) => {
                add(&figures.forwarded_proposals_sent_total, 1);
                let previous = self.forwards.insert(id, placed);
                assert!(previous.is_none(), "invariant forward-ids-unique: {id:?}");
            }
            Err(error) => {
                add(&figures.proposals_refused_total, 1);
                placed.call(Err(NodeError::from_propose(error, &self.addresses)));
            }
        }
    }

    /// Calls the callback of the forwarded command `id` with its outcome.
    fn answer_forward(&mut self, id: ForwardId, outcome: Result<LogId, ForwardError>) {
        let figures = &self.published.figures;
        let (counter, result) = match outcome {
            Ok(placed) => (
                &figures.forwarded_proposals_placed_total,
                Ok((placed.index, placed.term)),
            ),
            Err(ForwardError::Refused(error)) => (
                &figures.forwarded_proposals_refused_total,
                Err(NodeError::from_propose(error, &self.addresses)),
            ),
            Err(ForwardError::Unanswered) => (
                &figures.forwarded_proposals_unanswered_total,
                Err(NodeError::ForwardUnanswered),
            ),
        };
        add(counter, 1);
        match self.forwards.remove(&id) {
            Some(placed) => placed.call(result),
            None => panic!("invariant forward-answered-once: {id:?} has no waiting callback"),
        }
    }

    fn publish(&mut self) {
        let published = &self.published;
        let figures = &published.figures;
        let (term, is_leader) = self.raft.state();
        published.set_role(term, is_leader);
        let leader = self.raft.leader();
        set(&figures.leader, leader);
        if let Some(leader) = leader {
            if self.known_leader != Some((term, leader)) {
                self.known_leader = Some((term, leader));
                add(&figures.leader_changes_total, 1);
            }
        }
        let commit_index = self.raft.commit_index();
        assert!(
            commit_index >= self.commit_index,
            "invariant commit-monotonic: {commit_index} < {}",
            self.commit_index
        );
        add(
            &figures.entries_committed_total,
            commit_index.0 - self.commit_index.0,
        );
        self.commit_index = commit_index;
        set(&figures.commit_index, commit_index);
        set(&figures.last_log_index, self.raft.last_index());
        set(&figures.snapshot_index, self.raft.snapshot_index());
        let counters = self.raft.counters();
        set(&figures.elections_started_total, counters.elections_started);
        set(&figures.recovering, self.raft.is_recovering());
        set(
            &figures.recoveries_started_total,
            counters.recoveries_started,
        );
        set(
            &figures.recoveries_finished_total,
            counters.recoveries_finished,
        );
        set(
            &figures.forwarded_proposals_received_total,
            counters.forwarded_proposals_received,
        );
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

/// Closes `store` after a graceful stop: a write-ahead log ([`Wal`]) writes its clean-shutdown
/// marker, so that the next start trusts its state (see [`Wal::close_cleanly`]). Another
/// store is just dropped (true if the marker was written).
///
/// NB: found by type, because `LogStore` has no method for it; a store of the user's own
/// reports `InitialState::possibly_lost_writes` by its own means.
fn close_store_cleanly<S: LogStore>(store: S) -> Result<bool, storage_thread::WriteFailure> {
    let store: Box<dyn Any> = Box::new(store);
    match store.downcast::<Wal>() {
        Ok(wal) => wal
            .close_cleanly()
            .map(|()| true)
            .map_err(|error| error.to_string()),
        Err(_) => Ok(false),
    }
}
