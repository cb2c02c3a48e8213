//! A tiny synchronous harness for core tests: peers with memory storage, instant writes, and a
//! message queue the test controls.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use raft_core::{
    Config, Configuration, Entry, EntryKind, ForwardError, ForwardId, HardState, Index, LogId,
    MemStorage, Message, NodeId, Raft, ReadState, Snapshot,
};

/// A peer with its applied state.
pub struct Peer {
    pub raft: Raft<MemStorage>,
    pub applied: Vec<Entry>,
    pub snapshot: Option<Snapshot>,
    pub read_states: Vec<ReadState>,
    /// The outcomes of proposals this peer forwarded, as handed out.
    pub forwarded: Vec<(ForwardId, Result<LogId, ForwardError>)>,
}

/// Decides which messages are lost.
pub type DropFilter = Box<dyn FnMut(&Message) -> bool>;

/// Peers joined by a queue; persistence is instant unless a peer's disk is "held".
pub struct Net {
    pub peers: BTreeMap<NodeId, Peer>,
    pub queue: VecDeque<Message>,
    pub cut: BTreeSet<NodeId>,
    pub delivered: Vec<Message>,
    /// Messages for which this returns `true` are lost.
    pub drop_if: Option<DropFilter>,
}

pub fn config(id: u64) -> Config {
    let mut config = Config::new(NodeId(id), 7);
    config.election_ticks = 10;
    config.heartbeat_ticks = 2;
    config
}

/// [`config`] with every follower sent every entry at once (no spare followers), for tests of
/// what each follower does with it.
pub fn classic_config(id: u64) -> Config {
    let mut config = config(id);
    config.spare_flush_ticks = 0;
    config
}

impl Net {
    pub fn new(size: u64) -> Net {
        Net::with_config(size, config)
    }

    pub fn with_config(size: u64, make: impl Fn(u64) -> Config) -> Net {
        Net::with_members(size, size, make)
    }

    /// `peers` peers of which `1..=voters` form the initial configuration; the others start
    /// with an empty configuration, as a new server does, and learn theirs from the leader.
    pub fn with_members(peers: u64, voters: u64, make: impl Fn(u64) -> Config) -> Net {
        let configuration = Configuration::new((1..=voters).map(NodeId));
        let peers = (1..=peers)
            .map(|id| {
                let initial = if id <= voters {
                    configuration.clone()
                } else {
                    Configuration::default()
                };
                let storage = MemStorage::new(initial);
                let raft = Raft::new(make(id), storage).expect("valid config");
                (
                    NodeId(id),
                    Peer {
                        raft,
                        applied: Vec::new(),
                        snapshot: None,
                        read_states: Vec::new(),
                        forwarded: Vec::new(),
                    },
                )
            })
            .collect();
        Net {
            peers,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            delivered: Vec::new(),
            drop_if: None,
        }
    }

    /// Restarts a peer from what its storage holds (everything persisted, since writes here
    /// are instant), with a fresh service.
    pub fn restart(&mut self, id: u64, make: impl Fn(u64) -> Config) {
        self.reboot(id, make, |storage| storage);
    }

    /// Replaces peer `id` with one built by `make` on its storage as `damage` leaves it, with a
    /// fresh service and no message to or from it in flight.
    fn reboot(
        &mut self,
        id: u64,
        make: impl Fn(u64) -> Config,
        damage: impl FnOnce(MemStorage) -> MemStorage,
    ) {
        let node = NodeId(id);
        let peer = self.peers.remove(&node).expect("peer exists");
        let storage = damage(peer.raft.into_storage());
        self.peers.insert(
            node,
            Peer {
                raft: Raft::new(make(id), storage).expect("restarts from its storage"),
                applied: Vec::new(),
                snapshot: None,
                read_states: Vec::new(),
                forwarded: Vec::new(),
            },
        );
        self.queue
            .retain(|message| message.to != node && message.from != node);
        self.process_ready(node);
    }

    /// Restarts a peer as after a power loss on a disk that lied about its syncs: the last
    /// `lost_entries` entries are gone, the hard state is `hard_state` when given (an older
    /// one it once made durable), and the storage reports `possibly_lost_writes` as `recover`
    /// says (`false`: the same loss, unnoticed).
    pub fn restart_with_lost_writes(
        &mut self,
        id: u64,
        lost_entries: usize,
        hard_state: Option<HardState>,
        recover: bool,
        make: impl Fn(u64) -> Config,
    ) {
        self.reboot(id, make, |storage| {
            lose_writes(storage, lost_entries, hard_state, recover)
        });
    }

    pub fn peer(&mut self, id: u64) -> &mut Raft<MemStorage> {
        &mut self.peers.get_mut(&NodeId(id)).expect("peer exists").raft
    }

    /// Processes one peer's ready: persists at once, queues messages, applies.
    pub fn process_ready(&mut self, id: NodeId) {
        let peer = self.peers.get_mut(&id).expect("peer exists");
        loop {
            let ready = peer.raft.ready();
            if ready.is_empty() {
                break;
            }
            self.queue.extend(ready.messages);
            if let Some(persist) = ready.persist {
                let persist_id = persist.id;
                peer.raft.storage_mut().persist(persist);
                peer.raft.on_persisted(persist_id);
            }
            if let Some(snapshot) = ready.snapshot_to_apply {
                peer.applied
                    .retain(|entry| entry.index() > snapshot.meta.last_included.index);
                peer.raft.on_applied(snapshot.meta.last_included.index);
                peer.snapshot = Some(snapshot);
            }
            if let Some(last) = ready.committed_entries.last() {
                let last = last.index();
                peer.applied.extend(ready.committed_entries);
                peer.raft.on_applied(last);
            }
            peer.read_states.extend(ready.read_states);
            peer.forwarded.extend(ready.forwarded);
        }
    }

    /// Delivers queued messages (and the messages they cause) until quiet.
    pub fn settle(&mut self) {
        let ids: Vec<NodeId> = self.peers.keys().copied().collect();
        for &id in &ids {
            self.process_ready(id);
        }
        while let Some(message) = self.queue.pop_front() {
            if self.cut.contains(&message.from) || self.cut.contains(&message.to) {
                continue;
            }
            if self
                .drop_if
                .as_mut()
                .is_some_and(|drop_if| drop_if(&message))
            {
                continue;
            }
            let to = message.to;
            self.delivered.push(message.clone());
            if let Some(peer) = self.peers.get_mut(&to) {
                let _ = peer.raft.step(message);
                self.process_ready(to);
            }
        }
    }

    /// Ticks one peer until it starts an election, then settles.
    pub fn elect(&mut self, id: u64) {
        let node = NodeId(id);
        for _ in 0..100 {
            self.peer(id).tick();
            self.process_ready(node);
            if !self.queue.is_empty() || self.peer(id).state().1 {
                break;
            }
        }
        self.settle();
        assert!(self.peer(id).state().1, "peer {id} should be leader");
    }

    pub fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            let ids: Vec<NodeId> = self.peers.keys().copied().collect();
            for id in ids {
                if self.cut.contains(&id) {
                    self.peers.get_mut(&id).expect("peer").raft.tick();
                    self.process_ready(id);
                    self.queue.retain(|m| m.from != id && m.to != id);
                    continue;
                }
                self.peers.get_mut(&id).expect("peer").raft.tick();
                self.process_ready(id);
            }
            self.settle();
        }
    }

    pub fn applied_data(&self, id: u64) -> Vec<Bytes> {
        self.peers[&NodeId(id)]
            .applied
            .iter()
            .filter(|entry| entry.kind == EntryKind::Normal)
            .map(|entry| entry.data.clone())
            .collect()
    }

    pub fn commit(&self, id: u64) -> Index {
        self.peers[&NodeId(id)].raft.commit_index()
    }
}

/// `storage` as a power loss leaves a disk that lied about its syncs: without its last
/// `lost_entries` entries, its hard state back to `hard_state` when given (commit cut to the
/// log), reporting `possibly_lost_writes` as `recover` says.
pub fn lose_writes(
    storage: MemStorage,
    lost_entries: usize,
    hard_state: Option<HardState>,
    recover: bool,
) -> MemStorage {
    let (mut hard, snapshot, mut entries) = storage.into_parts();
    entries.truncate(entries.len().saturating_sub(lost_entries));
    if let Some(older) = hard_state {
        hard.term = older.term;
        hard.vote = older.vote;
    }
    let last = entries
        .last()
        .map_or(snapshot.meta.last_included.index, Entry::index);
    hard.commit = hard.commit.min(last);
    let mut storage =
        MemStorage::restore(hard, snapshot, entries).expect("a state the peer once held");
    storage.set_possibly_lost_writes(recover);
    storage
}

impl Net {
    /// Three peers, peer 1 leading, one entry ("x") proposed and replicated.
    pub fn three_peers_with_one_entry() -> Net {
        let mut net = Net::new(3);
        net.elect(1);
        net.peer(1)
            .propose(Bytes::from_static(b"x"))
            .expect("leader");
        net.settle();
        net
    }
}
