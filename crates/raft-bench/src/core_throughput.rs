//! Core throughput: a 3-peer cluster stepped in one thread, memory storage, an instant network
//! (every message delivered in the next round). Closed loop: `writers` proposals are kept
//! outstanding; each committed one is replaced by a new one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{Config, Configuration, EntryKind, MemStorage, Message, NodeId, Raft};

const PEERS: u64 = 3;
const RUNS: usize = 3;
const ENTRY_BYTES: usize = 100;
/// Every peer compacts its log once this many entries are applied past its last snapshot, as
/// a service would, so the run's memory stays bounded.
const COMPACT_EVERY_ENTRIES: u64 = 50_000;

struct Cluster {
    peers: Vec<Raft<MemStorage>>,
    /// Per peer, the index of its last compaction.
    compacted: Vec<u64>,
    queue: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Cluster {
        let configuration = Configuration::new((1..=PEERS).map(NodeId));
        let peers = (1..=PEERS)
            .map(|id| {
                let mut config = Config::new(NodeId(id), 42);
                config.inflight_messages_max = 256;
                let storage = MemStorage::new(configuration.clone());
                Raft::new(config, storage).expect("valid benchmark configuration")
            })
            .collect();
        Cluster {
            peers,
            compacted: vec![0; PEERS as usize],
            queue: VecDeque::new(),
        }
    }

    /// Handles every peer's ready; returns Normal entries the leader (peer 0) applied.
    fn pump(&mut self) -> u64 {
        let mut leader_applied = 0;
        for (position, peer) in self.peers.iter_mut().enumerate() {
            loop {
                let ready = peer.ready();
                if ready.is_empty() {
                    break;
                }
                self.queue.extend(ready.messages);
                if let Some(persist) = ready.persist {
                    let persist_id = persist.id;
                    peer.storage_mut().persist(persist);
                    peer.on_persisted(persist_id);
                }
                if let Some(last) = ready.committed_entries.last() {
                    let last = last.index();
                    if last.0 - self.compacted[position] >= COMPACT_EVERY_ENTRIES {
                        self.compacted[position] = last.0;
                        peer.on_applied(last);
                        peer.compact(last, Bytes::new())
                            .expect("applied entries can be compacted");
                    }
                    if position == 0 {
                        leader_applied += ready
                            .committed_entries
                            .iter()
                            .filter(|entry| entry.kind == EntryKind::Normal)
                            .count() as u64;
                    }
                    peer.on_applied(last);
                }
            }
        }
        leader_applied
    }

    fn deliver(&mut self) {
        while let Some(message) = self.queue.pop_front() {
            let to = (message.to.0 - 1) as usize;
            // Dropped messages are counted by the core; a benchmark ignores them.
            let _ = self.peers[to].step(message);
        }
    }

    fn elect_first_peer(&mut self) {
        while !self.peers[0].state().1 {
            self.peers[0].tick();
            self.pump();
            self.deliver();
        }
        for _ in 0..4 {
            self.pump();
            self.deliver();
        }
    }
}

/// One run: `total` proposals with `writers` outstanding. Returns (elapsed, rounds).
fn run_closed_loop(writers: u64, total: u64) -> (Duration, u64) {
    let mut cluster = Cluster::new();
    cluster.elect_first_peer();
    let payload = Bytes::from(vec![7u8; ENTRY_BYTES]);
    let (mut proposed, mut committed, mut rounds) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while committed < total {
        while proposed - committed < writers && proposed < total {
            cluster.peers[0]
                .propose(payload.clone())
                .expect("peer 1 stays leader in a fault-free benchmark");
            proposed += 1;
        }
        committed += cluster.pump();
        cluster.deliver();
        rounds += 1;
    }
    (start.elapsed(), rounds)
}

/// Prints committed entries per second for several writer counts.
pub fn run() {
    println!("== core throughput: 3 peers, one thread, memory storage, instant network, {ENTRY_BYTES}-byte entries ==");
    println!("median of {RUNS} runs (min–max); the machine is shared, so spreads are wide");
    println!(
        "{:>8} {:>10} {:>14} {:>22} {:>10} {:>14}",
        "writers", "entries", "entries/s", "min–max", "µs/entry", "entries/round"
    );
    for writers in [1u64, 16, 64, 256, 1024, 4096] {
        let total = (writers * 2_000).clamp(200_000, 2_000_000);
        // Warm up allocator and caches with a short run first.
        run_closed_loop(writers, total / 10);
        let mut per_second = Vec::new();
        let mut rounds = 0;
        for _ in 0..RUNS {
            let (elapsed, run_rounds) = run_closed_loop(writers, total);
            per_second.push(total as f64 / elapsed.as_secs_f64());
            rounds = run_rounds;
        }
        per_second.sort_by(f64::total_cmp);
        let median = per_second[RUNS / 2];
        println!(
            "{:>8} {:>10} {:>14.0} {:>22} {:>10.3} {:>14.1}",
            writers,
            total,
            median,
            format!("{:.0}–{:.0}", per_second[0], per_second[RUNS - 1]),
            1e6 / median,
            total as f64 / rounds as f64
        );
    }
    println!(
        "peak resident memory of the process: {}",
        peak_resident_memory()
    );
    println!("reference: openraft publishes 70,000 writes/s (1 writer) and 1,000,000 writes/s (256 writers) in-process");
}

/// The process's peak resident set size, from `/proc/self/status` (Linux).
fn peak_resident_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .map(|line| line.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}
