//! Clusters of real nodes (event loop, write-ahead log on disk, apply task) over the in-process
//! network, in real time: outcomes are awaited with generous deadlines, never fixed sleeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use raft_core::{Configuration, Index, NodeId};
use raft_node::transport::memory::{Faults, MemoryNetwork};
use raft_node::{ApplyMsg, NodeConfig, RaftNode};
use raft_wal::{Wal, WalOptions};
use tokio::sync::mpsc;

mod common;

use common::{wait_for, DEADLINE};

/// What a peer's service was handed, shared with the task that collects it.
type Received<T> = Arc<Mutex<Vec<T>>>;

struct Cluster {
    network: MemoryNetwork,
    voters: Configuration,
    dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Option<RaftNode>>,
    /// Commands each peer's service received, per incarnation (cleared at restart).
    applied: Vec<Received<Bytes>>,
    /// Index of the last command or snapshot each peer's service received.
    applied_index: Vec<Arc<AtomicU64>>,
    /// Snapshots each peer's service was handed: (last index, data).
    snapshots: Vec<Received<(Index, Bytes)>>,
}

impl Cluster {
    async fn new(peers: u64, seed: u64) -> Cluster {
        let voters = Configuration::new((1..=peers).map(NodeId));
        let mut cluster = Cluster {
            network: MemoryNetwork::new(seed),
            voters,
            dirs: (0..peers)
                .map(|_| tempfile::tempdir().expect("temporary directory"))
                .collect(),
            nodes: (0..peers).map(|_| None).collect(),
            applied: (0..peers).map(|_| Arc::default()).collect(),
            applied_index: (0..peers).map(|_| Arc::default()).collect(),
            snapshots: (0..peers).map(|_| Arc::default()).collect(),
        };
        for peer in 0..peers as usize {
            cluster.start(peer, seed);
        }
        cluster
    }

    fn start(&mut self, peer: usize, seed: u64) {
        let id = NodeId(peer as u64 + 1);
        let wal = Wal::open(
            self.dirs[peer].path(),
            self.voters.clone(),
            WalOptions::default(),
        )
        .expect("the log opens");
        let (inbound_sender, inbound) = mpsc::channel(4096);
        let transport = self.network.endpoint(id, inbound_sender);
        let (apply, mut applied_messages) = mpsc::channel(1024);
        let applied = Arc::clone(&self.applied[peer]);
        let applied_index = Arc::clone(&self.applied_index[peer]);
        let snapshots = Arc::clone(&self.snapshots[peer]);
        applied.lock().expect("not poisoned").clear();
        tokio::spawn(async move {
            while let Some(message) = applied_messages.recv().await {
                match message {
                    ApplyMsg::Command { index, data, .. } => {
                        applied.lock().expect("not poisoned").push(data);
                        applied_index.store(index.0, Ordering::Release);
                    }
                    ApplyMsg::Snapshot { index, data, .. } => {
                        snapshots.lock().expect("not poisoned").push((index, data));
                        applied_index.store(index.0, Ordering::Release);
                    }
                }
            }
        });
        let mut config = NodeConfig::new(id, seed * 100 + peer as u64);
        config.addresses = self
            .voters
            .members()
            .map(|member| (member, format!("node-{}.test:7000", member.0)))
            .collect();
        let node = RaftNode::start(config, wal, transport, inbound, apply).expect("starts");
        self.nodes[peer] = Some(node);
    }

    async fn stop(&mut self, peer: usize) {
        self.network.disconnect(NodeId(peer as u64 + 1));
        if let Some(node) = self.nodes[peer].take() {
            node.shutdown().await;
        }
    }

    /// The one running peer that believes it leads, once there is exactly one.
    async fn leader(&self) -> usize {
        wait_for("one leader", || {
            let leaders: Vec<usize> = (0..self.nodes.len())
                .filter(|&peer| {
                    self.nodes[peer]
                        .as_ref()
                        .is_some_and(|node| node.get_state().1)
                })
                .collect();
            (leaders.len() == 1).then(|| leaders[0])
        })
        .await
    }

    fn applied(&self, peer: usize) -> Vec<Bytes> {
        self.applied[peer].lock().expect("not poisoned").clone()
    }

    /// Heals the network, commits one more command and, once every peer applied it, checks
    /// that every peer applied the same log; returns that log.
    async fn converge_to_one_log(&self) -> Vec<Bytes> {
        self.network.heal();
        self.network.set_faults(Faults::reliable());
        propose(self, 1000..1001).await;
        let last = command(1000);
        for peer in 0..self.nodes.len() {
            wait_for("every peer applies the last command", || {
                self.applied(peer)
                    .last()
                    .is_some_and(|applied| *applied == last)
                    .then_some(())
            })
            .await;
        }
        let reference = self.applied(0);
        for peer in 1..self.nodes.len() {
            assert_eq!(
                self.applied(peer),
                reference,
                "peer {peer} applied another log"
            );
        }
        reference
    }
}

/// A step of a xorshift generator: the tests' fault schedules are fixed by their seed.
fn next_random(state: &mut u64) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
}

fn command(number: u64) -> Bytes {
    Bytes::from(format!("command {number}"))
}

async fn propose(cluster: &Cluster, numbers: std::ops::Range<u64>) {
    for number in numbers {
        loop {
            let leader = cluster.leader().await;
            let node = cluster.nodes[leader].as_ref().expect("the leader runs");
            if node.start_command(command(number)).await.is_ok() {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_elect_a_leader_and_apply_every_command_in_order() {
    let cluster = Cluster::new(3, 1).await;
    propose(&cluster, 0..50).await;
    let expected: Vec<Bytes> = (0..50).map(command).collect();
    for peer in 0..3 {
        wait_for("every command applied", || {
            (cluster.applied(peer) == expected).then_some(())
        })
        .await;
    }
    let (term, _) = cluster.nodes[cluster.leader().await]
        .as_ref()
        .expect("runs")
        .get_state();
    assert!(term.0 >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_and_a_restarted_peer_catches_up_from_its_log() {
    let mut cluster = Cluster::new(3, 2).await;
    propose(&cluster, 0..20).await;
    // Acknowledged by the leader is not committed: wait until every peer has them.
    let committed: Vec<Bytes> = (0..20).map(command).collect();
    for peer in 0..3 {
        wait_for("the first commands applied", || {
            (cluster.applied(peer) == committed).then_some(())
        })
        .await;
    }
    let first_leader = cluster.leader().await;
    cluster.stop(first_leader).await;
    propose(&cluster, 20..40).await;
    let expected: Vec<Bytes> = (0..40).map(command).collect();
    for peer in (0..3).filter(|&peer| peer != first_leader) {
        wait_for("the survivors apply everything", || {
            (cluster.applied(peer) == expected).then_some(())
        })
        .await;
    }
    // The old leader restarts from its own log and hears about the rest.
    cluster.start(first_leader, 2);
    cluster.network.connect(NodeId(first_leader as u64 + 1));
    wait_for("the restarted peer applies everything", || {
        (cluster.applied(first_leader) == expected).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_commands_and_names_the_leader() {
    let cluster = Cluster::new(3, 3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let refused = cluster.nodes[follower]
        .as_ref()
        .expect("runs")
        .start_command(command(0))
        .await;
    // The follower may not have heard from the new leader yet; once it has, it names it.
    match refused {
        Err(raft_node::NodeError::NotLeader {
            leader: named,
            address,
        }) => {
            assert!(named.is_none() || named == Some(NodeId(leader as u64 + 1)));
            if named.is_some() {
                assert_eq!(address, Some(format!("node-{}.test:7000", leader + 1)));
            }
        }
        // Only if leadership moved to it in the meantime (a slow machine can delay heartbeats).
        Ok(_) => assert!(
            cluster.nodes[follower]
                .as_ref()
                .expect("runs")
                .get_state()
                .1,
            "a follower accepted a command"
        ),
        Err(other) => panic!("unexpected refusal: {other:?}"),
    }
    // The leader serves a linearizable read (retried if leadership moves meanwhile).
    let read = tokio::time::timeout(DEADLINE, async {
        loop {
            let leader = cluster.leader().await;
            let node = cluster.nodes[leader].as_ref().expect("runs");
            if let Ok(index) = node.read_index().await {
                break index;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no read served within {DEADLINE:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_threads_use_the_blocking_calls() {
    let cluster = Arc::new(Cluster::new(3, 4).await);
    cluster.leader().await;
    let from_thread = Arc::clone(&cluster);
    // A plain thread offers the command to every peer until the leader takes it.
    let (peer, index, status) = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            for (peer, node) in from_thread.nodes.iter().enumerate() {
                let node = node.as_ref().expect("runs");
                if let Ok((index, _)) = node.blocking_start_command(command(7)) {
                    return (peer, index, node.blocking_status().expect("status"));
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no peer took the command"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .await
    .expect("the thread finishes");
    assert_eq!(status.id, NodeId(peer as u64 + 1));
    assert!(status.last_index >= index);
    wait_for("the command applied", || {
        (cluster.applied(peer) == vec![command(7)]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_peer_is_caught_up_by_a_snapshot_over_the_network() {
    let cluster = Cluster::new(3, 5).await;
    let leader = cluster.leader().await;
    let lagging = (leader + 1) % 3;
    cluster.network.disconnect(NodeId(lagging as u64 + 1));
    propose(&cluster, 0..100).await;
    let leader = cluster.leader().await;
    wait_for("the leader applies the first commands", || {
        (cluster.applied(leader).len() == 100).then_some(())
    })
    .await;
    // The service snapshots what it applied; the log before it goes.
    let snapshot_index = Index(cluster.applied_index[leader].load(Ordering::Acquire));
    let state = Bytes::from("the state after 100 commands");
    cluster.nodes[leader]
        .as_ref()
        .expect("runs")
        .snapshot(snapshot_index, state.clone())
        .await
        .expect("the leader compacts");
    propose(&cluster, 100..110).await;
    cluster.network.connect(NodeId(lagging as u64 + 1));
    wait_for("the lagging peer installs the snapshot", || {
        let snapshots = cluster.snapshots[lagging]
            .lock()
            .expect("not poisoned")
            .clone();
        snapshots
            .iter()
            .any(|(index, data)| *index >= snapshot_index && *data == state)
            .then_some(())
    })
    .await;
    let after: Vec<Bytes> = (100..110).map(command).collect();
    wait_for("the lagging peer applies what followed", || {
        cluster.applied(lagging).ends_with(&after).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_election_after_the_leader_is_cut_off_and_one_leader_after_it_returns() {
    let cluster = Cluster::new(3, 6).await;
    let first = cluster.leader().await;
    let (first_term, _) = cluster.nodes[first].as_ref().expect("runs").get_state();
    cluster.network.disconnect(NodeId(first as u64 + 1));
    // The other two elect a leader of a later term.
    let second = wait_for("a new leader", || {
        (0..3).filter(|&peer| peer != first).find(|&peer| {
            let (term, leads) = cluster.nodes[peer].as_ref().expect("runs").get_state();
            leads && term > first_term
        })
    })
    .await;
    cluster.network.connect(NodeId(first as u64 + 1));
    // The old leader learns of the new term and steps down: one leader again.
    wait_for("the old leader steps down", || {
        (!cluster.nodes[first].as_ref().expect("runs").get_state().1).then_some(())
    })
    .await;
    assert_ne!(second, first);
    propose(&cluster, 0..5).await;
    let expected: Vec<Bytes> = (0..5).map(command).collect();
    for peer in 0..3 {
        wait_for("everyone applies after the return", || {
            (cluster.applied(peer) == expected).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agreement_continues_without_a_follower_and_it_catches_up() {
    let cluster = Cluster::new(3, 7).await;
    let leader = cluster.leader().await;
    let follower = (leader + 2) % 3;
    cluster.network.disconnect(NodeId(follower as u64 + 1));
    propose(&cluster, 0..20).await;
    let expected: Vec<Bytes> = (0..20).map(command).collect();
    for peer in (0..3).filter(|&peer| peer != follower) {
        wait_for("the majority applies", || {
            (cluster.applied(peer) == expected).then_some(())
        })
        .await;
    }
    assert!(
        cluster.applied(follower).is_empty(),
        "a cut-off follower applies nothing"
    );
    cluster.network.connect(NodeId(follower as u64 + 1));
    wait_for("the follower catches up", || {
        (cluster.applied(follower) == expected).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreliable_network_with_churn_converges_once_healed() {
    let cluster = Cluster::new(5, 8).await;
    cluster.network.set_faults(Faults::unreliable());
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut accepted = Vec::new();
    for number in 0..60u64 {
        // Every few commands, a random peer drops off or comes back.
        if number.is_multiple_of(6) {
            next_random(&mut rng_state);
            let peer = NodeId(rng_state % 5 + 1);
            if rng_state.is_multiple_of(2) {
                cluster.network.disconnect(peer);
            } else {
                cluster.network.connect(peer);
            }
        }
        // Offer the command to whichever peer leads now; it may be lost with a deposed leader.
        for node in cluster.nodes.iter().flatten() {
            if node.start_command(command(number)).await.is_ok() {
                accepted.push(command(number));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reference = cluster.converge_to_one_log().await;
    let mut unique = reference.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), reference.len(), "no command applied twice");
    assert!(
        reference
            .iter()
            .all(|applied| accepted.contains(applied) || *applied == command(1000)),
        "only proposed commands are applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_service_closed_its_apply_channel_stops() {
    let voters = Configuration::new([NodeId(1)]);
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = Wal::open(dir.path(), voters, WalOptions::default()).expect("opens");
    let network = MemoryNetwork::new(9);
    let (inbound_sender, inbound) = mpsc::channel(16);
    let transport = network.endpoint(NodeId(1), inbound_sender);
    let (apply, apply_receiver) = mpsc::channel(16);
    let node = RaftNode::start(
        NodeConfig::new(NodeId(1), 9),
        wal,
        transport,
        inbound,
        apply,
    )
    .expect("starts");
    wait_for("a single peer leads itself", || {
        node.get_state().1.then_some(())
    })
    .await;
    drop(apply_receiver);
    node.start_command(command(1))
        .await
        .expect("accepted before the apply");
    let stopped = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Err(raft_node::NodeError::Stopped(reason)) = node.start_command(command(2)).await
            {
                break reason;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the node stops");
    assert!(stopped.contains("event loop ended"), "{stopped}");
    assert!(!node.get_state().1, "a stopped node does not claim to lead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_and_restarts_on_an_unreliable_network_keep_one_log() {
    let seed = 10;
    let mut cluster = Cluster::new(5, seed).await;
    cluster.network.set_faults(Faults::unreliable());
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut down: Vec<usize> = Vec::new();
    for round in 0..12u64 {
        // Offer a few commands to whoever leads now (Figure 8: leaders come and go with
        // uncommitted entries).
        for offset in 0..3 {
            for node in cluster.nodes.iter().flatten() {
                if node
                    .start_command(command(round * 10 + offset))
                    .await
                    .is_ok()
                {
                    break;
                }
            }
        }
        next_random(&mut rng_state);
        // Crash the leader or a random peer, keeping a majority up; restart one that is down.
        if down.len() < 2 {
            let victim = (0..5)
                .find(|&peer| {
                    cluster.nodes[peer]
                        .as_ref()
                        .is_some_and(|node| node.get_state().1)
                })
                .unwrap_or((rng_state % 5) as usize);
            if cluster.nodes[victim].is_some() {
                cluster.stop(victim).await;
                down.push(victim);
            }
        } else {
            let back = down.remove((rng_state % down.len() as u64) as usize);
            cluster.start(back, seed);
            cluster.network.connect(NodeId(back as u64 + 1));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for back in down.drain(..) {
        cluster.start(back, seed);
        cluster.network.connect(NodeId(back as u64 + 1));
    }
    // Nothing was compacted, so a restarted peer applies its whole log again: every peer's
    // service has seen the same commands in the same order.
    cluster.converge_to_one_log().await;
}
