//! Inputs of the event loop: what each kind of event does to its peer.
//!
//! ```text
//!  Tick ─► tick()          Deliver ─► reachable? ─► step(m)
//!  DiskDone ─► store.write([req]) ─► on_persisted(id)
//!  Flush / ApplyDone ─► the driving loop (ready.rs)
//!  every input ─► after_input: drive now, or after a batching delay
//! ```

use raft_core::{Message, StepError};
use rand::Rng;

use super::{ApplyItem, Cluster};
use crate::event::Event;
use crate::invariants::Violation;
use crate::trace::{DropReason, TraceEvent};

impl Cluster {
    pub(super) fn on_tick(&mut self, peer: usize, incarnation: u64) -> Option<usize> {
        let current = &mut self.peers[peer];
        if current.incarnation != incarnation {
            return None;
        }
        let node = current.node.as_mut()?;
        node.tick();
        let tick = TraceEvent::Tick { peer: current.id.0 };
        if node.has_ready() {
            self.trace.record(self.now_us, tick);
        } else {
            self.trace.record_quietly(self.now_us, &tick);
        }
        self.queue.schedule(
            self.now_us + self.config.tick_us,
            Event::Tick { peer, incarnation },
        );
        self.after_input(peer);
        Some(peer)
    }

    pub(super) fn on_deliver(&mut self, message: Message, from_incarnation: u64) -> Option<usize> {
        let from = self.index_of(message.from)?;
        let to = self.index_of(message.to)?;
        if self.peers[from].incarnation != from_incarnation {
            self.drop_message(&message, DropReason::SenderCrashed);
            return None;
        }
        if self.peers[to].node.is_none() || !self.network.can_reach(from, to) {
            self.drop_message(&message, DropReason::Unreachable);
            return None;
        }
        self.network.delivered(&message.body);
        self.trace
            .record(self.now_us, TraceEvent::deliver(&message));
        let node = self.peers[to].node.as_mut()?;
        match node.step(message) {
            Ok(()) => {}
            Err(StepError::Fatal(error)) => self.fail(Violation {
                invariant: "storage-never-fails",
                detail: format!("n{} stopped on a storage error: {error}", to + 1),
            }),
            Err(StepError::Invalid(reason)) if self.config.strict_invalid => self.fail(Violation {
                invariant: "no-invalid-messages",
                detail: format!("n{} rejected a message as invalid: {reason}", to + 1),
            }),
            Err(_) => self.counters.messages_rejected += 1,
        }
        self.after_input(to);
        Some(to)
    }

    pub(super) fn drop_message(&mut self, message: &Message, reason: DropReason) {
        self.network.dropped_on_arrival(&message.body);
        self.trace
            .record(self.now_us, TraceEvent::drop(message, reason));
    }

    pub(super) fn on_disk_done(
        &mut self,
        peer: usize,
        incarnation: u64,
        request: raft_core::PersistRequest,
    ) -> Option<usize> {
        let current = &mut self.peers[peer];
        if current.incarnation != incarnation {
            return None;
        }
        let id = current.id;
        current.node.as_ref()?;
        let (persist_id, hard_state, entry_count) =
            (request.id, request.hard_state, request.entries.len());
        current.journal.record(&request);
        if let Err(error) = self.stores.write(peer, vec![request]) {
            self.fail(Violation {
                invariant: "storage-never-fails",
                detail: error,
            });
        }
        if let Some(hard_state) = hard_state {
            let check = self.invariants.durable.on_persisted(id, hard_state);
            self.check(check);
        }
        // A lying disk told the core at once (see `issue_write`).
        if self.peers[peer].overlay.is_none() {
            let node = self.peers[peer].node.as_mut()?;
            node.on_persisted(persist_id);
        }
        self.counters.disk_writes += 1;
        self.trace.record(
            self.now_us,
            TraceEvent::DiskDone {
                peer: id.0,
                id: persist_id,
                entries: entry_count,
            },
        );
        self.after_input(peer);
        Some(peer)
    }

    pub(super) fn on_flush(&mut self, peer: usize, incarnation: u64) -> Option<usize> {
        let current = &mut self.peers[peer];
        if current.incarnation != incarnation || current.node.is_none() {
            return None;
        }
        current.flush_scheduled = false;
        self.drive(peer);
        Some(peer)
    }

    pub(super) fn on_apply_done(&mut self, peer: usize, incarnation: u64) -> Option<usize> {
        let current = &mut self.peers[peer];
        if current.incarnation != incarnation || current.node.is_none() {
            return None;
        }
        match current.apply_queue.pop_front()? {
            ApplyItem::Snapshot(snapshot) => self.restore_snapshot(peer, &snapshot),
            ApplyItem::Entries(entries) => self.apply_entries(peer, &entries),
        }
        self.after_input(peer);
        Some(peer)
    }

    pub(super) fn schedule_flush(&mut self, peer: usize) {
        self.schedule_flush_at(peer, self.now_us);
    }

    pub(super) fn schedule_flush_at(&mut self, peer: usize, at_us: u64) {
        let current = &mut self.peers[peer];
        if !current.flush_scheduled {
            current.flush_scheduled = true;
            let incarnation = current.incarnation;
            self.queue
                .schedule(at_us, Event::Flush { peer, incarnation });
        }
    }

    /// After an input: run the driving loop now, or later to batch inputs into one `Ready`.
    pub(super) fn after_input(&mut self, peer: usize) {
        let delay_max = self.config.ready_delay_max_us;
        if delay_max == 0 {
            self.drive(peer);
        } else if !self.peers[peer].flush_scheduled {
            let delay = self.rng.gen_range(0..=delay_max);
            self.schedule_flush_at(peer, self.now_us + delay);
        }
    }
}
