//! One state of the explored cluster (a [`World`]) and the actions that lead out of it.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use raft_core::{
    Config, Configuration, Entry, EntryKind, Index, LogId, MemStorage, Message, MessageBody,
    NodeId, PersistRequest, Raft, Role, Term,
};

use super::checks;
use super::{Bounds, Persistence, PlantedBug};
use crate::invariants::Violation;

/// Election timeout of the explored peers, in ticks. Small, so a whole timeout is few ticks;
/// its value changes no state the digest sees.
const ELECTION_TICKS: u32 = 2;

/// One step the explorer may take. Messages are named by their hash (the network is a
/// multiset, and equal messages are one choice), so an action stays small in the trace arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    /// The peer's timer fires: a follower or candidate campaigns, a leader sends heartbeats.
    Timeout(usize),
    /// A message in flight arrives.
    Deliver(u64),
    /// A message in flight is lost.
    Drop(u64),
    /// A message in flight is sent twice.
    Duplicate(u64),
    /// A client command at the peer, a leader.
    Propose(usize),
    /// The peer's oldest write becomes durable.
    Persist(usize),
    /// The peer crashes and restarts from its disk.
    Crash(usize),
}

/// What one action caused, for the printed trace: one line per event, in the order they
/// happened.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) lines: Vec<String>,
}

/// One peer: the core, its disk queue and a state machine.
#[derive(Clone)]
pub(super) struct Peer {
    pub(super) raft: Raft<MemStorage>,
    /// Writes handed out and not yet durable (only with [`Persistence::Deferred`]).
    pub(super) writes: VecDeque<PersistRequest>,
    /// A digest of the commands applied, in order.
    pub(super) machine: u64,
}

/// History the checkers need beyond the current state; part of the digest.
#[derive(Clone, Default, Hash)]
pub(super) struct Ghost {
    /// Every (term, peer) that was ever leader.
    pub(super) leaders: BTreeSet<(Term, NodeId)>,
    /// The term of every index any peer ever counted committed.
    pub(super) committed: BTreeMap<Index, Term>,
    /// What was first applied at each index: the entry, its command, and the state-machine
    /// digest after it (the peer that applied it first is kept for messages only).
    pub(super) applied: BTreeMap<Index, Applied>,
}

#[derive(Clone)]
pub(super) struct Applied {
    pub(super) entry: Entry,
    pub(super) machine_after: u64,
    pub(super) first_by: NodeId,
}

impl Hash for Applied {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entry.hash(state);
        self.machine_after.hash(state);
    }
}

/// The whole cluster in one state.
#[derive(Clone)]
pub(super) struct World {
    pub(super) peers: Vec<Peer>,
    /// Messages in flight, sorted by hash: a canonical multiset.
    pub(super) network: Vec<(u64, Message)>,
    pub(super) commands_proposed: u32,
    pub(super) crashes: u32,
    pub(super) duplicates: u32,
    pub(super) ghost: Ghost,
    /// The peer that became leader in the last action, if one did (for leader completeness,
    /// which holds at the moment of election; not part of the digest).
    pub(super) new_leader: Option<usize>,
}

/// The configuration of peer `id` under `bounds`.
fn config(bounds: &Bounds, id: NodeId) -> Config {
    let mut config = Config::new(id, 0x5eed);
    config.election_ticks = ELECTION_TICKS;
    config.heartbeat_ticks = 1;
    config.lease_margin_ticks = 1;
    config.check_quorum = false;
    config.pre_vote = bounds.pre_vote;
    // Spare followers are a timing optimisation; every follower gets everything at once.
    config.spare_flush_ticks = 0;
    config
}

pub(super) fn message_key(message: &Message) -> u64 {
    let mut hasher = DefaultHasher::new();
    message.hash(&mut hasher);
    hasher.finish()
}

fn command(number: u32) -> Bytes {
    Bytes::from(format!("c{number}"))
}

impl World {
    /// Fresh peers that share the initial configuration, nothing in flight.
    pub(super) fn initial(bounds: &Bounds) -> World {
        assert!(bounds.peers >= 1, "a cluster needs a peer");
        let ids: Vec<NodeId> = (1..=bounds.peers).map(NodeId).collect();
        let configuration = Configuration::new(ids.iter().copied());
        let peers = ids
            .iter()
            .map(|&id| Peer {
                raft: Raft::new(config(bounds, id), MemStorage::new(configuration.clone()))
                    .expect("a fresh peer on empty memory storage starts"),
                writes: VecDeque::new(),
                machine: 0,
            })
            .collect();
        World {
            peers,
            network: Vec::new(),
            commands_proposed: 0,
            crashes: 0,
            duplicates: 0,
            ghost: Ghost::default(),
            new_leader: None,
        }
    }

    /// The canonical digest of this state.
    pub(super) fn digest(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        for peer in &self.peers {
            peer.raft.hash_state(&mut hasher);
            let disk = peer.raft.storage();
            let durable = disk.hard_state();
            (durable.term, durable.vote, durable.commit).hash(&mut hasher);
            for entry in disk.stored_entries() {
                entry.hash(&mut hasher);
            }
            peer.writes.len().hash(&mut hasher);
            for write in &peer.writes {
                write.entries.hash(&mut hasher);
                write
                    .hard_state
                    .map(|state| (state.term, state.vote, state.commit))
                    .hash(&mut hasher);
                write.snapshot.is_some().hash(&mut hasher);
            }
            peer.machine.hash(&mut hasher);
        }
        for (key, _) in &self.network {
            key.hash(&mut hasher);
        }
        self.commands_proposed.hash(&mut hasher);
        self.crashes.hash(&mut hasher);
        self.duplicates.hash(&mut hasher);
        self.ghost.hash(&mut hasher);
        hasher.finish()
    }

    /// Every action enabled here (some may still lead over a bound, found once taken).
    pub(super) fn actions(&self, bounds: &Bounds) -> Vec<Action> {
        let mut actions = Vec::new();
        for (slot, peer) in self.peers.iter().enumerate() {
            // A campaign raises the term (with pre-vote only once the probe succeeds, which
            // the bound check after the action catches).
            let campaigning_would_pass_term_max = peer.raft.role() != Role::Leader
                && peer.raft.term() >= Term(bounds.term_max)
                && !bounds.pre_vote;
            if !campaigning_would_pass_term_max {
                actions.push(Action::Timeout(slot));
            }
            if peer.raft.role() == Role::Leader && self.commands_proposed < bounds.commands_max {
                actions.push(Action::Propose(slot));
            }
            if !peer.writes.is_empty() {
                actions.push(Action::Persist(slot));
            }
            if self.crashes < bounds.crashes_max {
                actions.push(Action::Crash(slot));
            }
        }
        let mut previous = None;
        for &(key, _) in &self.network {
            if previous == Some(key) {
                continue;
            }
            previous = Some(key);
            actions.push(Action::Deliver(key));
            actions.push(Action::Drop(key));
            if self.duplicates < bounds.duplicates_max && self.network.len() < bounds.in_flight_max
            {
                actions.push(Action::Duplicate(key));
            }
        }
        actions
    }

    /// Takes `action`. `None` when it leads over a bound (or does nothing); a violation found
    /// while taking it (a second vote written in a term, a peer stopped) comes back with the
    /// world it left.
    pub(super) fn take(
        &mut self,
        bounds: &Bounds,
        action: Action,
        effects: Option<&mut Effects>,
    ) -> Option<Result<(), Violation>> {
        self.new_leader = None;
        let mut scratch = Effects::default();
        let effects = effects.unwrap_or(&mut scratch);
        let touched = match action {
            Action::Timeout(slot) => {
                let raft = &mut self.peers[slot].raft;
                let mut fired = false;
                // The timer fires within twice the election timeout (the randomized range).
                for _ in 0..=2 * ELECTION_TICKS {
                    raft.tick();
                    if raft.has_ready() {
                        fired = true;
                        break;
                    }
                }
                if !fired {
                    return None;
                }
                slot
            }
            Action::Deliver(key) => {
                let mut message = self.remove_message(key)?;
                let slot = self.slot_of(message.to)?;
                if bounds.planted_bug == Some(PlantedBug::VoteWithoutLogCheck) {
                    plant_vote_without_log_check(&self.peers[slot].raft, &mut message);
                }
                // Refusals (stale terms, ignored messages) are the protocol at work; a fatal
                // one stops the peer, which the checks report.
                let _ = self.peers[slot].raft.step(message);
                slot
            }
            Action::Drop(key) => {
                self.remove_message(key)?;
                return Some(Ok(()));
            }
            Action::Duplicate(key) => {
                let message = self
                    .network
                    .iter()
                    .find(|(found, _)| *found == key)
                    .map(|(_, message)| message.clone())?;
                self.duplicates += 1;
                self.add_message(message);
                return self.within(bounds).then_some(Ok(()));
            }
            Action::Propose(slot) => {
                let data = command(self.commands_proposed);
                self.peers[slot].raft.propose(data).ok()?;
                self.commands_proposed += 1;
                slot
            }
            Action::Persist(slot) => {
                let write = self.peers[slot].writes.pop_front()?;
                if let Err(violation) = self.write(slot, write, effects) {
                    return Some(Err(violation));
                }
                slot
            }
            Action::Crash(slot) => {
                self.crashes += 1;
                let peer = &mut self.peers[slot];
                let storage = peer.raft.storage().clone();
                let config = config(bounds, peer.raft.id());
                peer.raft = match Raft::new(config, storage) {
                    Ok(raft) => raft,
                    Err(error) => {
                        return Some(Err(Violation {
                            invariant: "restart-from-disk",
                            detail: format!("peer {} cannot restart: {error}", slot + 1),
                        }))
                    }
                };
                peer.writes.clear();
                peer.machine = 0;
                slot
            }
        };
        if let Err(violation) = self.drive(bounds, touched, effects) {
            return Some(Err(violation));
        }
        if !self.within(bounds) {
            return None;
        }
        Some(Ok(()))
    }

    /// Whether the world is inside the bounds that actions can break.
    fn within(&self, bounds: &Bounds) -> bool {
        self.network.len() <= bounds.in_flight_max
            && self
                .peers
                .iter()
                .all(|peer| peer.raft.term() <= Term(bounds.term_max))
    }

    fn slot_of(&self, id: NodeId) -> Option<usize> {
        let slot = usize::try_from(id.0).ok()?.checked_sub(1)?;
        (slot < self.peers.len()).then_some(slot)
    }

    fn remove_message(&mut self, key: u64) -> Option<Message> {
        let at = self.network.iter().position(|(found, _)| *found == key)?;
        Some(self.network.remove(at).1)
    }

    fn add_message(&mut self, message: Message) {
        let key = message_key(&message);
        let at = self.network.partition_point(|(found, _)| *found <= key);
        self.network.insert(at, (key, message));
    }

    /// Hands out everything the peer has to do: messages go in flight, writes to its disk
    /// queue (or to disk), committed entries are applied at once.
    fn drive(
        &mut self,
        bounds: &Bounds,
        slot: usize,
        effects: &mut Effects,
    ) -> Result<(), Violation> {
        while self.peers[slot].raft.has_ready() {
            let ready = self.peers[slot].raft.ready();
            if let Some(soft) = ready.soft_state {
                effects.lines.push(format!(
                    "{} is {:?} in {}",
                    self.peers[slot].raft.id(),
                    soft.role,
                    self.peers[slot].raft.term()
                ));
            }
            for message in ready.messages {
                effects.lines.push(format!("sends {message}"));
                self.add_message(message);
            }
            if let Some(write) = ready.persist {
                match bounds.persistence {
                    Persistence::Immediate => self.write(slot, write, effects)?,
                    Persistence::Deferred => self.peers[slot].writes.push_back(write),
                }
            }
            if let Some(snapshot) = ready.snapshot_to_apply {
                self.peers[slot]
                    .raft
                    .on_applied(snapshot.meta.last_included.index);
            }
            let peer = &mut self.peers[slot];
            let id = peer.raft.id();
            for entry in ready.committed_entries {
                if entry.kind == EntryKind::Normal {
                    let mut hasher = DefaultHasher::new();
                    (peer.machine, &entry.data).hash(&mut hasher);
                    peer.machine = hasher.finish();
                }
                checks::on_apply(&mut self.ghost, id, &entry, peer.machine)?;
                effects.lines.push(format!("{id} applies {}", entry.id));
                peer.raft.on_applied(entry.index());
            }
        }
        let raft = &self.peers[slot].raft;
        if raft.role() == Role::Leader && self.ghost.leaders.insert((raft.term(), raft.id())) {
            self.new_leader = Some(slot);
        }
        Ok(())
    }

    /// Makes `write` durable on the peer's disk and reports it to the core.
    fn write(
        &mut self,
        slot: usize,
        write: PersistRequest,
        effects: &mut Effects,
    ) -> Result<(), Violation> {
        let raft = &mut self.peers[slot].raft;
        let before = raft.storage().hard_state();
        effects.lines.push(format!("{} writes {write}", raft.id()));
        let id = write.id;
        raft.storage_mut().persist(write);
        checks::durable_vote(raft.id(), before, raft.storage().hard_state())?;
        raft.on_persisted(id);
        Ok(())
    }
}

/// The planted bug: the request claims the receiver's own last entry, which the receiver
/// always finds up to date.
fn plant_vote_without_log_check(receiver: &Raft<MemStorage>, message: &mut Message) {
    if let MessageBody::VoteRequest { last_log, .. } = &mut message.body {
        let index = receiver.last_index();
        if let Ok(term) = receiver.term_at(index) {
            *last_log = LogId::new(term, index);
        }
    }
}
