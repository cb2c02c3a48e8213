//! The driving loop of one peer: take `Ready`s and carry them out.
//!
//! ```text
//!  ready() ─┬─ persist   ─► log-matching check ─► Disk ─► DiskDone event
//!           ├─ messages  ─► Network ─► Deliver events (unreachable: report_unreachable)
//!           ├─ snapshot_to_apply / committed_entries ─► Service (now, or via the apply queue)
//!           │        └─► on_applied(index) ─► every K entries: compact(index, snapshot)
//!           └─ read_states / failed_reads ─► read checks
//! ```

use raft_core::{CompactError, LogId, LogStore, Message, NodeId};
use rand::Rng;

use super::{ApplyItem, Cluster, ForwardRecord, EMPTY_READY_ROUNDS_MAX, READY_ROUNDS_MAX};
use crate::event::Event;
use crate::invariants::{check_durable_before_answer, check_membership_steps, Violation};
use crate::network::Fate;
use crate::service::Service;
use crate::trace::{DropReason, TraceEvent};

impl Cluster {
    /// Takes and carries out the peer's `Ready`s until it has nothing more to do.
    ///
    /// A `Ready` may legitimately carry only part of the work (apply batches are bounded), so
    /// the loop runs as long as each round hands out something; `has_ready()` answering yes
    /// while `ready()` keeps returning nothing means the core is stuck.
    pub(super) fn drive(&mut self, peer: usize) {
        let mut empty_rounds = 0;
        for _ in 0..READY_ROUNDS_MAX {
            let Some(node) = self.peers[peer].node.as_mut() else {
                return;
            };
            if !node.has_ready() {
                return;
            }
            let ready = node.ready();
            if ready.is_empty() {
                empty_rounds += 1;
                if empty_rounds == EMPTY_READY_ROUNDS_MAX {
                    self.fail(Violation {
                        invariant: "ready-settles",
                        detail: format!(
                            "n{} has_ready() stays true but ready() returned nothing {empty_rounds} times",
                            peer + 1
                        ),
                    });
                }
            } else {
                empty_rounds = 0;
            }
            self.handle_ready(peer, ready);
        }
        self.fail(Violation {
            invariant: "ready-settles",
            detail: format!(
                "n{} still has output after {READY_ROUNDS_MAX} ready() rounds in one event",
                peer + 1
            ),
        });
    }

    pub(super) fn handle_ready(&mut self, peer: usize, ready: raft_core::Ready) {
        let id = self.peers[peer].id;
        if let Some(soft_state) = ready.soft_state {
            let term = self.peers[peer]
                .node
                .as_ref()
                .map(|node| node.term())
                .unwrap_or_default();
            self.trace.record(
                self.now_us,
                TraceEvent::Role {
                    peer: id.0,
                    role: soft_state.role,
                    term,
                    leader: soft_state.leader.map(|leader| leader.0),
                },
            );
        }
        if let Some(request) = ready.persist {
            self.issue_write(peer, request);
        }
        let mut unreachable = Vec::new();
        for message in ready.messages {
            if let Some(to) = self.send(peer, message) {
                if !unreachable.contains(&to) {
                    unreachable.push(to);
                }
            }
        }
        if let Some(snapshot) = ready.snapshot_to_apply {
            self.hand_to_service(peer, ApplyItem::Snapshot(snapshot));
        }
        if !ready.committed_entries.is_empty() {
            self.hand_to_service(peer, ApplyItem::Entries(ready.committed_entries));
        }
        for read in ready.read_states {
            let check = self.invariants.reads.complete(read.context, id, read.index);
            self.check(check);
            let committed = self
                .peers
                .iter()
                .filter_map(|peer| peer.node.as_ref().map(|node| node.commit_index()))
                .chain([self.invariants.committed.max()])
                .max()
                .unwrap_or_default();
            if read.index > committed {
                self.fail(Violation {
                    invariant: "read-index-committed",
                    detail: format!(
                        "read {} on {id} answered {}, beyond every commit index ({committed})",
                        read.context, read.index
                    ),
                });
            }
            self.counters.reads_served += 1;
            self.peers[peer].reads.push(read);
        }
        for context in ready.failed_reads {
            self.invariants.reads.fail(context);
            self.counters.reads_failed += 1;
            self.peers[peer].failed_reads.push(context);
        }
        for (forward, outcome) in ready.forwarded {
            let Some(command) = self.peers[peer].forwards.remove(&forward) else {
                self.fail(Violation {
                    invariant: "forward-answered-once",
                    detail: format!("{id} handed out {forward:?} twice, or one it never made"),
                });
            };
            self.forward_outcomes.push(ForwardRecord {
                peer: id,
                command,
                outcome,
            });
        }
        if let Some(node) = self.peers[peer].node.as_mut() {
            for to in unreachable {
                node.report_unreachable(to);
            }
        }
    }

    pub(super) fn issue_write(&mut self, peer: usize, request: raft_core::PersistRequest) {
        let Some(node) = self.peers[peer].node.as_ref() else {
            return;
        };
        let id = node.id();
        let incarnation = self.peers[peer].incarnation;
        let check =
            self.invariants
                .append_only
                .on_write(id, incarnation, node.state(), &request.entries);
        self.check(check);
        if let Some(first) = request.entries.first() {
            let previous_index = first.index().prev();
            let previous = node
                .term_at(previous_index)
                .ok()
                .map(|term| LogId::new(term, previous_index));
            let check = self
                .invariants
                .log_matching
                .record(id, previous, &request.entries);
            self.check(check);
            self.check(check_membership_steps(id, &request.entries));
        }
        if let Some(snapshot) = &request.snapshot {
            // A snapshot covers committed entries; should this be the first the checkers hear
            // of them (a leader compacting in the event that committed them), the leader's
            // configuration is the one its commit counted on, not the snapshot's (which is as
            // of its index and may be the joint configuration the commit just left).
            let check = self.invariants.committed.record(
                id,
                snapshot.meta.last_included,
                node.configuration(),
            );
            self.check(check);
        }
        let done_us = self.disk.completion_us(peer, self.now_us, &mut self.rng);
        if self.config.disk.lie_about_durability {
            // The planted bug: the write is visible (in the overlay the core reads) and
            // acknowledged at once; only the store, what really reached the disk, waits for
            // the completion (`on_disk_done`).
            let current = &mut self.peers[peer];
            if let (Some(node), Some(overlay)) = (current.node.as_mut(), current.overlay.as_mut()) {
                let Ok(()) = overlay.write(vec![request.clone()]);
                node.on_persisted(request.id);
            }
        }
        self.queue.schedule(
            done_us,
            Event::DiskDone {
                peer,
                incarnation,
                request,
            },
        );
    }

    /// Hands a message to the network. Returns the receiver's id when it is unreachable, so
    /// the sender can be told (as a transport whose connection is down would).
    pub(super) fn send(&mut self, peer: usize, message: Message) -> Option<NodeId> {
        let Some(to) = self.index_of(message.to) else {
            self.fail(Violation {
                invariant: "messages-to-members",
                detail: format!("n{} sent a message to unknown {}", peer + 1, message.to),
            });
        };
        if let Some(node) = self.peers[peer].node.as_ref() {
            let disk = &self.peers[peer].disk;
            self.check(check_durable_before_answer(&message, node, disk));
        }
        match self.network.send(peer, to, &message.body, &mut self.rng) {
            Fate::Unreachable => {
                self.trace.record(
                    self.now_us,
                    TraceEvent::drop(&message, DropReason::Unreachable),
                );
                Some(message.to)
            }
            Fate::Lost => {
                self.trace
                    .record(self.now_us, TraceEvent::drop(&message, DropReason::Lost));
                None
            }
            Fate::Deliver { delays_us, copies } => {
                let from_incarnation = self.peers[peer].incarnation;
                if copies == 2 {
                    self.queue.schedule(
                        self.now_us + delays_us[1],
                        Event::Deliver {
                            message: message.clone(),
                            from_incarnation,
                        },
                    );
                }
                self.queue.schedule(
                    self.now_us + delays_us[0],
                    Event::Deliver {
                        message,
                        from_incarnation,
                    },
                );
                None
            }
        }
    }

    /// Hands work to the service: at once, or through the apply queue when applying is
    /// asynchronous.
    pub(super) fn hand_to_service(&mut self, peer: usize, item: ApplyItem) {
        let delay_max = self.config.service.apply_delay_max_us;
        if delay_max == 0 {
            match item {
                ApplyItem::Snapshot(snapshot) => self.restore_snapshot(peer, &snapshot),
                ApplyItem::Entries(entries) => self.apply_entries(peer, &entries),
            }
            return;
        }
        let delay = self.rng.gen_range(0..=delay_max);
        let current = &mut self.peers[peer];
        let done_us = (self.now_us + delay).max(current.apply_done_us);
        current.apply_done_us = done_us;
        current.apply_queue.push_back(item);
        let incarnation = current.incarnation;
        self.queue
            .schedule(done_us, Event::ApplyDone { peer, incarnation });
    }

    pub(super) fn restore_snapshot(&mut self, peer: usize, snapshot: &raft_core::Snapshot) {
        let id = self.peers[peer].id;
        let index = snapshot.meta.last_included.index;
        let (restored, machine_data) = match Service::decode(&snapshot.data, index) {
            Ok(decoded) => decoded,
            Err(reason) => self.fail(Violation {
                invariant: "snapshot-integrity",
                detail: format!("{id} got a damaged snapshot through {index}: {reason}"),
            }),
        };
        let applied = self.peers[peer].service.applied();
        if index < applied {
            self.fail(Violation {
                invariant: "applied-monotonic",
                detail: format!(
                    "{id} was told to restore a snapshot at {index} after applying {applied}"
                ),
            });
        }
        let check = self
            .invariants
            .state_machine
            .on_restore(id, index, restored.digest());
        self.check(check);
        let machine = match (self.machines.as_mut(), machine_data) {
            (Some(machines), Some(data)) => Some(machines.restore(id, index, data)),
            (Some(_), None) => Some(Err(Violation {
                invariant: "snapshot-integrity",
                detail: format!("{id} got a snapshot through {index} without a state machine"),
            })),
            (None, _) => None,
        };
        let machine = match machine.transpose() {
            Ok(machine) => machine,
            Err(violation) => self.fail(violation),
        };
        // As in `issue_write`: the configuration of the peer, not the snapshot's.
        let configuration = match self.peers[peer].node.as_ref() {
            Some(node) => node.configuration().clone(),
            None => snapshot.meta.configuration.clone(),
        };
        let check =
            self.invariants
                .committed
                .record(id, snapshot.meta.last_included, &configuration);
        self.check(check);
        let current = &mut self.peers[peer];
        current.service = restored;
        if machine.is_some() {
            current.machine = machine;
        }
        current.proposals = current.proposals.split_off(&index.next());
        if let Some(node) = current.node.as_mut() {
            node.on_applied(index);
        }
        self.counters.snapshots_restored += 1;
        self.trace
            .record(self.now_us, TraceEvent::Restore { peer: id.0, index });
    }

    pub(super) fn apply_entries(&mut self, peer: usize, entries: &[raft_core::Entry]) {
        let id = self.peers[peer].id;
        for entry in entries {
            let current = &mut self.peers[peer];
            let commit = current.node.as_ref().map(|node| node.commit_index());
            if commit.is_some_and(|commit| entry.index() > commit) {
                self.fail(Violation {
                    invariant: "apply-only-committed",
                    detail: format!(
                        "{id} applied {} beyond its commit index {commit:?}",
                        entry.id
                    ),
                });
            }
            if let Err(reason) = current.service.apply(entry) {
                self.fail(Violation {
                    invariant: "apply-in-order",
                    detail: format!("{id}: {reason}"),
                });
            }
            let digest = current.service.digest();
            if let Some((proposed, hash)) = current.proposals.remove(&entry.index()) {
                if proposed == entry.id {
                    self.invariants.acknowledged.record(entry.index(), hash);
                }
            }
            let check = self.invariants.state_machine.on_apply(id, entry, digest);
            self.check(check);
            let current = &mut self.peers[peer];
            if let (Some(machines), Some(machine)) =
                (self.machines.as_mut(), current.machine.as_mut())
            {
                let check = machines.apply(id, machine, entry);
                self.check(check);
            }
        }
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        self.counters.entries_applied += entries.len() as u64;
        self.trace.record(
            self.now_us,
            TraceEvent::Apply {
                peer: id.0,
                first: first.index(),
                last: last.index(),
            },
        );
        let interval = self.config.service.snapshot_interval;
        let padding = self.config.service.snapshot_padding_bytes;
        let current = &mut self.peers[peer];
        let Some(node) = current.node.as_mut() else {
            return;
        };
        node.on_applied(last.index());
        if !current.service.snapshot_due(interval) {
            return;
        }
        let applied = current.service.applied();
        let machine_snapshot = match (self.machines.as_mut(), current.machine.as_ref()) {
            (Some(machines), Some(machine)) => Some(machines.take_snapshot(id, machine, applied)),
            _ => None,
        };
        let machine_snapshot = match machine_snapshot.transpose() {
            Ok(snapshot) => snapshot,
            Err(violation) => self.fail(violation),
        };
        let current = &mut self.peers[peer];
        let Some(node) = current.node.as_mut() else {
            return;
        };
        let data = current.service.encode(padding, machine_snapshot.as_deref());
        match node.compact(applied, data) {
            Ok(()) => {
                current.service.snapshot_taken();
                self.counters.snapshots_taken += 1;
            }
            Err(CompactError::AlreadyCompacted { .. }) => current.service.snapshot_taken(),
            Err(error) => self.fail(Violation {
                invariant: "compact-applied-state",
                detail: format!("{id} could not snapshot its applied state at {applied}: {error}"),
            }),
        }
    }
}
