//! Criterion benchmarks of the consensus core, stepped in one thread with memory storage and an
//! instant network (every message delivered by hand, as `raft-bench`'s core throughput does).
//!
//! ```text
//!  replicate/N        3 peers, leader elected once in setup; timed: propose N entries of 100 B,
//!                     then ready ─► persist ─► on_persisted ─► deliver rounds until the leader's
//!                     commit index covers all N (throughput in entries)
//!  election           3 fresh peers; timed: tick every peer, pump, deliver until one is leader
//!  follower_append/64 one follower, fed consecutive AppendEntries of 64 entries from its leader;
//!                     `step` times `Raft::step` alone, `step_persist_respond` also the ready,
//!                     the write to memory storage, `on_persisted` and the ready that releases
//!                     the response
//! ```
//!
//! Compaction, which keeps memory bounded over millions of entries, runs outside the timed
//! part. Run with `cargo bench -p raft-core`, or one group with
//! `cargo bench -p raft-core -- replicate` (the argument filters bench names).

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use raft_core::{
    Config, Configuration, Entry, EntryKind, Index, LogId, MemStorage, Message, MessageBody,
    NodeId, Raft, Ready, Term,
};

/// Peers of every benchmarked cluster.
const PEERS: u64 = 3;
/// Payload of every proposed or appended entry.
const ENTRY_BYTES: usize = 100;
/// Proposals per timed batch of the `replicate` group.
const BATCH_ENTRIES: [u64; 3] = [1, 64, 1024];
/// Entries per AppendEntries message of the `follower_append` group.
const APPEND_ENTRIES: u64 = 64;
/// Seed of every peer's random generator: the same election every time.
const SEED: u64 = 42;
/// A peer compacts its log once this many entries are applied past its last snapshot, so a
/// long run's memory stays bounded.
const COMPACT_EVERY_ENTRIES: u64 = 50_000;
/// Pump-and-deliver rounds a batch may take to commit in a fault-free cluster before the
/// benchmark declares the cluster stuck.
const COMMIT_ROUNDS_MAX: u32 = 64;
/// Ticks an election may take in a fault-free cluster (timeouts are drawn below
/// `2 * election_ticks`, and pre-vote plus vote take a few rounds) before the benchmark
/// declares the cluster stuck.
const ELECTION_TICKS_MAX: u32 = 200;

/// The configuration every peer of a benchmarked cluster starts from.
fn configuration() -> Configuration {
    Configuration::new((1..=PEERS).map(NodeId))
}

/// A peer with the default configuration, except for room for a 1024-entry batch in flight.
fn new_peer(id: u64) -> Raft<MemStorage> {
    let mut config = Config::new(NodeId(id), SEED);
    config.inflight_messages_max = 256;
    Raft::new(config, MemStorage::new(configuration())).expect("valid benchmark configuration")
}

/// Writes the ready's persist request to memory storage and reports it durable; reports its
/// committed entries applied. Returns the messages to send.
fn handle_ready(peer: &mut Raft<MemStorage>, ready: Ready) -> Vec<Message> {
    if let Some(persist) = ready.persist {
        let persist_id = persist.id;
        peer.storage_mut().persist(persist);
        peer.on_persisted(persist_id);
    }
    if let Some(last) = ready.committed_entries.last() {
        peer.on_applied(last.index());
    }
    ready.messages
}

/// Compacts `peer`'s log through its last applied entry once `COMPACT_EVERY_ENTRIES` have been
/// applied since `compacted`, and persists the snapshot. Returns the new compaction point and
/// the messages the peer sent meanwhile.
fn compact_if_due(
    peer: &mut Raft<MemStorage>,
    compacted: Index,
    applied: Index,
) -> (Index, Vec<Message>) {
    let mut sent = Vec::new();
    if applied.0 - compacted.0 < COMPACT_EVERY_ENTRIES {
        return (compacted, sent);
    }
    peer.compact(applied, Bytes::new())
        .expect("applied entries can be compacted");
    while peer.has_ready() {
        let ready = peer.ready();
        sent.extend(handle_ready(peer, ready));
    }
    assert_eq!(
        peer.snapshot_index(),
        applied,
        "compact_if_due: the snapshot is durable"
    );
    (applied, sent)
}

/// Peers wired in memory: a message goes straight into a queue that `deliver` empties.
struct Cluster {
    peers: Vec<Raft<MemStorage>>,
    queue: VecDeque<Message>,
    /// Per peer, the index of its last applied entry.
    applied: Vec<Index>,
    /// Per peer, the index of its last compaction.
    compacted: Vec<Index>,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            peers: (1..=PEERS).map(new_peer).collect(),
            queue: VecDeque::new(),
            applied: vec![Index(0); PEERS as usize],
            compacted: vec![Index(0); PEERS as usize],
        }
    }

    /// Handles every peer's ready until none has anything to do.
    fn pump(&mut self) {
        for (position, peer) in self.peers.iter_mut().enumerate() {
            while peer.has_ready() {
                let ready = peer.ready();
                if let Some(last) = ready.committed_entries.last() {
                    self.applied[position] = last.index();
                }
                self.queue.extend(handle_ready(peer, ready));
            }
        }
    }

    /// Delivers every queued message, including those the deliveries produce.
    fn deliver(&mut self) {
        while let Some(message) = self.queue.pop_front() {
            let to = (message.to.0 - 1) as usize;
            // Dropped messages are counted by the core; a benchmark ignores them.
            let _ = self.peers[to].step(message);
        }
    }

    /// The position of the leader, if a peer is one.
    fn leader(&self) -> Option<usize> {
        self.peers.iter().position(|peer| peer.state().1)
    }

    /// Ticks every peer, as the clocks of a real cluster would, until one is leader. Returns
    /// the ticks it took.
    fn elect_any(&mut self) -> u32 {
        let mut ticks = 0;
        while self.leader().is_none() {
            assert!(
                ticks < ELECTION_TICKS_MAX,
                "elect_any: a fault-free cluster elects a leader"
            );
            for peer in &mut self.peers {
                peer.tick();
            }
            ticks += 1;
            self.pump();
            self.deliver();
        }
        ticks
    }

    /// Ticks only the first peer until it is leader, then lets its first entry commit.
    fn elect_first_peer(&mut self) {
        let mut ticks = 0;
        while !self.peers[0].state().1 {
            assert!(
                ticks < ELECTION_TICKS_MAX,
                "elect_first_peer: a lone ticking peer wins"
            );
            self.peers[0].tick();
            ticks += 1;
            self.pump();
            self.deliver();
        }
        let leader_last = self.peers[0].last_index();
        self.replicate_until_committed(leader_last);
    }

    /// Pumps and delivers until the leader (the first peer) has committed `index`.
    fn replicate_until_committed(&mut self, index: Index) {
        let mut rounds = 0;
        while self.peers[0].commit_index() < index {
            assert!(
                rounds < COMMIT_ROUNDS_MAX,
                "replicate_until_committed: a fault-free cluster commits"
            );
            self.pump();
            self.deliver();
            rounds += 1;
        }
        // The leader applies what it committed in this call, not in the next one.
        self.pump();
    }

    /// Compacts each peer whose log has grown enough since its last compaction.
    fn compact_if_due(&mut self) {
        for (position, peer) in self.peers.iter_mut().enumerate() {
            let (compacted, sent) =
                compact_if_due(peer, self.compacted[position], self.applied[position]);
            self.compacted[position] = compacted;
            self.queue.extend(sent);
        }
    }
}

fn replicate(c: &mut Criterion) {
    let mut group = c.benchmark_group("replicate");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let payload = Bytes::from(vec![7u8; ENTRY_BYTES]);
    for batch_entries in BATCH_ENTRIES {
        let mut cluster = Cluster::new();
        cluster.elect_first_peer();
        group.throughput(Throughput::Elements(batch_entries));
        group.bench_function(batch_entries.to_string(), |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let start = Instant::now();
                    let mut last = Index(0);
                    for _ in 0..batch_entries {
                        last = cluster.peers[0]
                            .propose(payload.clone())
                            .expect("the first peer stays leader in a fault-free benchmark")
                            .index;
                    }
                    cluster.replicate_until_committed(last);
                    elapsed += start.elapsed();
                    cluster.compact_if_due();
                }
                elapsed
            });
        });
    }
    group.finish();
}

fn election(c: &mut Criterion) {
    let mut group = c.benchmark_group("election");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("3_peers", |b| {
        b.iter_batched(
            Cluster::new,
            |mut cluster| {
                black_box(cluster.elect_any());
                // Returned, so the cluster is dropped outside the timed part.
                cluster
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// A follower (peer 2) and the leader (peer 1, term 1) feeding it consecutive appends.
struct Follower {
    peer: Raft<MemStorage>,
    payload: Bytes,
    /// Index of the last entry sent.
    last_sent: Index,
    applied: Index,
    compacted: Index,
}

impl Follower {
    fn new() -> Follower {
        Follower {
            peer: new_peer(2),
            payload: Bytes::from(vec![7u8; ENTRY_BYTES]),
            last_sent: Index(0),
            applied: Index(0),
            compacted: Index(0),
        }
    }

    /// The next AppendEntries: `APPEND_ENTRIES` entries after the last sent, with a commit
    /// index one message behind (a leader commits once a majority acknowledged).
    fn next_append(&mut self) -> Message {
        let term = Term(1);
        let prev = if self.last_sent == Index(0) {
            LogId::default()
        } else {
            LogId::new(term, self.last_sent)
        };
        let entries = (1..=APPEND_ENTRIES)
            .map(|offset| Entry {
                id: LogId::new(term, self.last_sent.plus(offset)),
                kind: EntryKind::Normal,
                data: self.payload.clone(),
            })
            .collect();
        let commit = self.last_sent;
        self.last_sent = self.last_sent.plus(APPEND_ENTRIES);
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term,
            body: MessageBody::Append {
                prev,
                entries,
                commit,
            },
        }
    }

    /// Handles readies until the follower has nothing to do; returns the messages it sent.
    fn drain(&mut self) -> usize {
        let mut sent = 0;
        while self.peer.has_ready() {
            let ready = self.peer.ready();
            if let Some(last) = ready.committed_entries.last() {
                self.applied = last.index();
            }
            sent += handle_ready(&mut self.peer, ready).len();
        }
        sent
    }

    /// After a timed append: checks it was accepted, and compacts when due.
    fn finish_append(&mut self) {
        assert_eq!(
            self.peer.last_index(),
            self.last_sent,
            "follower_append: every append is accepted"
        );
        // The leader is played by the benchmark, which needs no answers.
        (self.compacted, _) = compact_if_due(&mut self.peer, self.compacted, self.applied);
    }
}

fn follower_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("follower_append");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(APPEND_ENTRIES));
    let mut follower = Follower::new();
    group.bench_function(format!("{APPEND_ENTRIES}/step"), |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let message = follower.next_append();
                let start = Instant::now();
                let result = follower.peer.step(message);
                elapsed += start.elapsed();
                result.expect("the follower accepts its leader's append");
                follower.drain();
                follower.finish_append();
            }
            elapsed
        });
    });
    let mut follower = Follower::new();
    group.bench_function(format!("{APPEND_ENTRIES}/step_persist_respond"), |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let message = follower.next_append();
                let start = Instant::now();
                follower
                    .peer
                    .step(message)
                    .expect("the follower accepts its leader's append");
                let sent = follower.drain();
                elapsed += start.elapsed();
                assert!(sent >= 1, "follower_append: the follower responds");
                follower.finish_append();
            }
            elapsed
        });
    });
    group.finish();
}

criterion_group!(benches, replicate, election, follower_append);
criterion_main!(benches);
