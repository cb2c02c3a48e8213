//! Fault injection: crashes and restarts, disconnections, partitions, one-way link cuts,
//! unreliable and slow networks, slow disks.
//!
//! ```text
//!  crash(p)   ─► core dropped, incarnation += 1 (its in-flight writes, ticks and
//!                undelivered messages become void) ─► store reopened through its harness
//!                (a write-ahead log recovers from its files), checked against what it held
//!  restart(p) ─► Raft::new(config, a reader of the store), fresh Service, new tick chain
//! ```

use raft_core::{NodeId, Raft, SharedMemStorage};
use rand::Rng;

use super::Cluster;
use crate::event::Event;
use crate::invariants::Violation;
use crate::machine::Machines;
use crate::service::Service;
use crate::storage::{copy_to_memory, SimStorage};
use crate::trace::TraceEvent;

impl Cluster {
    /// Starts (or restarts) a peer from its store; does nothing to a running peer.
    pub(super) fn boot(&mut self, peer: usize) {
        if self.peers[peer].node.is_some() {
            return;
        }
        let storage = if self.config.disk.lie_about_durability {
            // The core reads what it was told is durable; it starts from what truly is.
            let copy = match copy_to_memory(&self.peers[peer].disk) {
                Ok(copy) => copy,
                Err(error) => self.fail(Violation {
                    invariant: "storage-never-fails",
                    detail: format!("n{} cannot copy its store to memory: {error}", peer + 1),
                }),
            };
            let overlay = SharedMemStorage::from_storage(copy);
            self.peers[peer].overlay = Some(overlay.clone());
            SimStorage::new(overlay)
        } else {
            self.stores.reader(peer)
        };
        let storage = storage.reporting_lost_writes(self.peers[peer].possibly_lost_writes);
        let mut config = self.config.core.clone();
        config.id = self.peers[peer].id;
        config.seed = self.rng.gen();
        let node = match Raft::new(config, storage) {
            Ok(node) => node,
            Err(error) => self.fail(Violation {
                invariant: "restart-from-storage",
                detail: format!("n{} cannot start from its storage: {error}", peer + 1),
            }),
        };
        let first_tick_us = self.now_us + self.rng.gen_range(0..self.config.tick_us);
        let current = &mut self.peers[peer];
        current.node = Some(node);
        current.service = Service::new();
        current.machine = self.machines.as_ref().map(Machines::boot);
        current.proposals.clear();
        let incarnation = current.incarnation;
        self.queue
            .schedule(first_tick_us, Event::Tick { peer, incarnation });
        self.schedule_flush(peer);
    }

    /// Crashes `peer`: its core, unfinished disk writes and undelivered messages are lost; its
    /// store is reopened (a crash and a restart, for the store) and must hold exactly what was
    /// durable.
    pub fn crash(&mut self, peer: NodeId) {
        let index = self.peer_index(peer);
        let current = &mut self.peers[index];
        let Some(node) = current.node.take() else {
            return;
        };
        // A node layer records a clean shutdown only once recovered; a crash records none
        // either way, so a peer that crashes while recovering recovers again (recovery.rs).
        current.possibly_lost_writes = node.is_recovering();
        current.overlay = None;
        current.incarnation += 1;
        current.flush_scheduled = false;
        current.proposals.clear();
        // The core that would have reported these is gone: their outcome stays unknown.
        current.forwards.clear();
        current.apply_queue.clear();
        if let Err(error) = self.stores.reopen(index) {
            self.fail(Violation {
                invariant: "storage-recovers-durable-state",
                detail: error,
            });
        }
        self.peers[index].disk = self.stores.reader(index);
        self.invariants.reads.forget_peer(peer);
        self.counters.crashes += 1;
        self.note(format!("crash n{}", peer.0));
    }

    /// Restarts `peer` from its storage with a fresh service (crashing it first if it runs,
    /// like 6.824's `start1`).
    pub fn restart(&mut self, peer: NodeId) {
        let index = self.peer_index(peer);
        self.crash(peer);
        self.counters.restarts += 1;
        self.note(format!("restart n{}", peer.0));
        self.boot(index);
        self.check_peer(index);
    }

    /// Detaches `peer` from the network.
    pub fn disconnect(&mut self, peer: NodeId) {
        let index = self.peer_index(peer);
        self.network.set_connected(index, false);
        self.counters.partitions += 1;
        self.note(format!("disconnect n{}", peer.0));
    }

    /// Attaches `peer` to the network again.
    pub fn connect(&mut self, peer: NodeId) {
        let index = self.peer_index(peer);
        self.network.set_connected(index, true);
        self.note(format!("connect n{}", peer.0));
    }

    /// Splits the network into the given groups; peers not listed are alone.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        let groups: Vec<Vec<usize>> = groups
            .iter()
            .map(|group| group.iter().map(|&id| self.peer_index(id)).collect())
            .collect();
        self.network.partition(&groups);
        self.counters.partitions += 1;
        self.note(format!("partition {groups:?} (0-based)"));
    }

    /// Cuts the one-way link from `from` to `to` (messages from `to` to `from` still pass),
    /// until [`Cluster::heal`].
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        let (from_index, to_index) = (self.peer_index(from), self.peer_index(to));
        self.network.cut_link(from_index, to_index);
        self.counters.partitions += 1;
        self.note(format!("cut link n{} -> n{}", from.0, to.0));
    }

    /// Reconnects everyone into one partition and restores every link.
    pub fn heal(&mut self) {
        self.network.heal();
        self.note("heal".to_string());
    }

    /// Makes the network reliable or not (losses, duplicates, extra delays).
    pub fn set_reliable(&mut self, reliable: bool) {
        self.network.set_reliable(reliable);
        self.note(format!("reliable={reliable}"));
    }

    /// Turns long reordering of responses on or off.
    pub fn set_long_reordering(&mut self, long_reordering: bool) {
        self.network.set_long_reordering(long_reordering);
        self.note(format!("long_reordering={long_reordering}"));
    }

    /// Slows `peer` down: extra one-way delay on its messages and extra latency on its disk
    /// writes (0 and 0 make it normal again).
    pub fn set_slow(&mut self, peer: NodeId, network_extra_ms: u64, disk_extra_ms: u64) {
        let index = self.peer_index(peer);
        self.network.set_slow(index, network_extra_ms * 1_000);
        self.disk.set_slow(index, disk_extra_ms * 1_000);
        self.note(format!(
            "slow n{}: network +{network_extra_ms} ms, disk +{disk_extra_ms} ms",
            peer.0
        ));
    }

    /// Records a note in the trace (fault injections, scenario steps).
    pub fn note(&mut self, text: String) {
        self.trace.record(self.now_us, TraceEvent::Note(text));
    }
}
