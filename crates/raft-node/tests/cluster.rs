//! Clusters of real nodes (event loop, write-ahead log on disk, apply task) in real time. Each
//! scenario runs over the in-process network and over loopback TCP with fsync; outcomes are
//! awaited with generous deadlines, never fixed sleeps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raft_core::{ConfChange, Configuration, Index, NodeId, ProgressState, Term};
use raft_node::transport::memory::{Faults, MemoryNetwork};
use raft_node::{NodeConfig, NodeError, RaftNode, StopReason};
use raft_wal::{Wal, WalOptions};
use tokio::sync::mpsc;

mod common;

use common::cluster::{command, next_random, Cluster, Net};
use common::{wait_for, within_deadline, DEADLINE};

/// Runs each named scenario `async fn name(net: Net)` once per network, and once more on
/// memory storage.
macro_rules! over_both_networks {
    ($($scenario:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Net::Memory).await
                }
            )*
        }
        mod over_tcp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Net::Tcp).await
                }
            )*
        }
        mod in_process_on_memory_storage {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Net::MemoryOnMemStorage).await
                }
            )*
        }
    };
}

over_both_networks!(
    three_peers_elect_a_leader_and_apply_every_command_in_order,
    five_peers_elect_a_leader_and_apply_every_command_in_order,
    a_new_leader_takes_over_and_a_restarted_peer_catches_up_from_its_log,
    a_restarted_peer_delivers_its_snapshot_then_the_commands_after_it,
    a_lagging_peer_is_caught_up_by_a_snapshot_over_the_network,
    a_peer_crashed_while_installing_a_snapshot_installs_it_after_restart,
    re_election_after_the_leader_is_cut_off_and_one_leader_after_it_returns,
    agreement_continues_without_a_follower_and_it_catches_up,
    a_healed_partition_keeps_the_majority_log_and_drops_the_minority_proposals,
    an_unreliable_network_with_churn_converges_once_healed,
    crashes_and_restarts_on_an_unreliable_network_keep_one_log,
    membership_changes_add_a_learner_and_remove_the_leader,
);

async fn membership_changes_add_a_learner_and_remove_the_leader(net: Net) {
    let cluster = Cluster::new(net, 3, 15).await;
    cluster.propose(0..5).await;
    let leader = cluster.leader().await;
    let node = cluster.running(leader);
    // A learner (no process behind it here) joins the configuration without a joint phase.
    node.change_membership(ConfChange::AddLearner(NodeId(9)))
        .await
        .expect("the leader adds a learner");
    let status = node.status().await.expect("status");
    assert!(status.configuration.learners.contains(&NodeId(9)));
    assert!(!status.configuration.is_voter(NodeId(9)));
    let refused = node.change_membership(ConfChange::Remove(NodeId(42))).await;
    assert!(
        matches!(refused, Err(NodeError::Membership(_))),
        "{refused:?}"
    );
    // The leader removes itself: it hands over once the change commits.
    let removed = Cluster::id(leader);
    loop {
        match cluster
            .running(leader)
            .change_membership(ConfChange::Remove(removed))
            .await
        {
            Ok(_) => break,
            // The learner's entry may still be committing.
            Err(NodeError::Membership(raft_core::ConfChangeError::InProgress)) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(other) => panic!("the leader could not remove itself: {other:?}"),
        }
    }
    let successor = wait_for("another member leads", || {
        (0..3)
            .filter(|&peer| peer != leader)
            .find(|&peer| cluster.running(peer).get_state().1)
    })
    .await;
    let status = cluster.running(successor).status().await.expect("status");
    assert!(!status.configuration.is_voter(removed), "{status:?}");
    assert!(!status.configuration.is_joint());
    for number in 5..10 {
        loop {
            if cluster
                .running(successor)
                .start_command(command(number))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let expected: Vec<Bytes> = (0..10).map(command).collect();
    for peer in (0..3).filter(|&peer| peer != leader) {
        cluster.wait_applied(peer, &expected).await;
    }
}

async fn elect_and_apply(net: Net, peers: u64, seed: u64) {
    let cluster = Cluster::new(net, peers, seed).await;
    cluster.propose(0..50).await;
    let expected: Vec<Bytes> = (0..50).map(command).collect();
    for peer in 0..peers as usize {
        cluster.wait_applied(peer, &expected).await;
    }
    let (term, _) = cluster.running(cluster.leader().await).get_state();
    assert!(term.0 >= 1);
}

async fn three_peers_elect_a_leader_and_apply_every_command_in_order(net: Net) {
    elect_and_apply(net, 3, 1).await;
}

async fn five_peers_elect_a_leader_and_apply_every_command_in_order(net: Net) {
    elect_and_apply(net, 5, 11).await;
}

async fn a_new_leader_takes_over_and_a_restarted_peer_catches_up_from_its_log(net: Net) {
    let mut cluster = Cluster::new(net, 3, 2).await;
    cluster.propose(0..20).await;
    // Acknowledged by the leader is not committed: wait until every peer has them.
    let committed: Vec<Bytes> = (0..20).map(command).collect();
    for peer in 0..3 {
        cluster.wait_applied(peer, &committed).await;
    }
    let first_leader = cluster.leader().await;
    cluster.stop(first_leader).await;
    cluster.propose(20..40).await;
    let expected: Vec<Bytes> = (0..40).map(command).collect();
    for peer in (0..3).filter(|&peer| peer != first_leader) {
        cluster.wait_applied(peer, &expected).await;
    }
    // The old leader restarts from its own log and hears about the rest.
    cluster.start(first_leader).await;
    cluster.wait_applied(first_leader, &expected).await;
}

async fn a_restarted_peer_delivers_its_snapshot_then_the_commands_after_it(net: Net) {
    let mut cluster = Cluster::new(net, 3, 14).await;
    cluster.propose(0..20).await;
    let first: Vec<Bytes> = (0..20).map(command).collect();
    let peer = (cluster.leader().await + 1) % 3;
    cluster.wait_applied(peer, &first).await;
    let snapshot_index = Index(cluster.applied_index[peer].load(Ordering::Acquire));
    let state = Bytes::from("the state after 20 commands");
    cluster
        .running(peer)
        .snapshot(snapshot_index, state.clone())
        .await
        .expect("the follower compacts");
    cluster.propose(20..30).await;
    let all: Vec<Bytes> = (0..30).map(command).collect();
    cluster.wait_applied(peer, &all).await;
    cluster.stop(peer).await;
    cluster.start(peer).await;
    // The service of the new incarnation restores the snapshot, then applies only what
    // followed it.
    let after: Vec<Bytes> = (20..30).map(command).collect();
    cluster.wait_applied(peer, &after).await;
    let snapshots = cluster.snapshots[peer]
        .lock()
        .expect("not poisoned")
        .clone();
    assert_eq!(snapshots, vec![(snapshot_index, state)]);
}

/// Cuts `lagging` off, commits 100 commands, has the leader's service snapshot them as
/// `state` (compacting the log), and commits ten more; returns the leader and the snapshot's
/// index.
async fn compact_while_cut_off(cluster: &Cluster, lagging: usize, state: Bytes) -> (usize, Index) {
    cluster.network.disconnect(Cluster::id(lagging));
    cluster.propose(0..100).await;
    let leader = cluster.leader().await;
    wait_for("the leader applies the first commands", || {
        (cluster.applied(leader).len() == 100).then_some(())
    })
    .await;
    // The service snapshots what it applied; the log before it goes.
    let snapshot_index = Index(cluster.applied_index[leader].load(Ordering::Acquire));
    cluster
        .running(leader)
        .snapshot(snapshot_index, state)
        .await
        .expect("the leader compacts");
    // The compaction takes effect once the snapshot is durable; only then must the leader
    // send a snapshot rather than entries.
    wait_for("the leader's snapshot is durable", || {
        (cluster.running(leader).metrics().snapshot_index >= snapshot_index).then_some(())
    })
    .await;
    cluster.propose(100..110).await;
    (leader, snapshot_index)
}

/// Waits until `peer` installed a snapshot through at least `index` holding `state`, then
/// applied the ten commands proposed after it.
async fn wait_installed(cluster: &Cluster, peer: usize, index: Index, state: &Bytes) {
    wait_for("the lagging peer installs the snapshot", || {
        let snapshots = cluster.snapshots[peer]
            .lock()
            .expect("not poisoned")
            .clone();
        snapshots
            .iter()
            .any(|(installed, data)| *installed >= index && data == state)
            .then_some(())
    })
    .await;
    let after: Vec<Bytes> = (100..110).map(command).collect();
    wait_for("the lagging peer applies what followed", || {
        cluster.applied(peer).ends_with(&after).then_some(())
    })
    .await;
}

async fn a_lagging_peer_is_caught_up_by_a_snapshot_over_the_network(net: Net) {
    let cluster = Cluster::new(net, 3, 5).await;
    let lagging = (cluster.leader().await + 1) % 3;
    let state = Bytes::from("the state after 100 commands");
    let (_, snapshot_index) = compact_while_cut_off(&cluster, lagging, state.clone()).await;
    cluster.network.connect(Cluster::id(lagging));
    wait_installed(&cluster, lagging, snapshot_index, &state).await;
}

async fn a_peer_crashed_while_installing_a_snapshot_installs_it_after_restart(net: Net) {
    // A 512 KiB snapshot in 1 KiB chunks, each a round trip of 2–4 ms: the transfer takes
    // seconds, and the peer is killed in the middle of it.
    let mut cluster = Cluster::with_settings(
        net,
        3,
        12,
        Box::new(|config: &mut NodeConfig| config.raft.snapshot_chunk_bytes = 1024),
    )
    .await;
    let lagging = (cluster.leader().await + 1) % 3;
    let state = Bytes::from(
        (0..512 * 1024u32)
            .map(|byte| (byte % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let (leader, snapshot_index) = compact_while_cut_off(&cluster, lagging, state.clone()).await;
    cluster.network.set_faults(Faults {
        drop_probability: 0.0,
        delay_min: Duration::from_millis(1),
        delay_max: Duration::from_millis(2),
    });
    cluster.network.connect(Cluster::id(lagging));
    let sending = || async {
        cluster.running(leader).status().await.is_ok_and(|status| {
            status.peers.iter().any(|progress| {
                progress.id == Cluster::id(lagging)
                    && matches!(progress.state, ProgressState::Snapshot(_))
            })
        })
    };
    tokio::time::timeout(DEADLINE, async {
        while !sending().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the leader starts sending the snapshot");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sending().await, "the transfer is still under way");
    assert!(
        cluster.snapshots[lagging]
            .lock()
            .expect("not poisoned")
            .is_empty(),
        "the snapshot is not installed yet"
    );
    cluster.crash(lagging);
    cluster.start(lagging).await;
    wait_installed(&cluster, lagging, snapshot_index, &state).await;
}

async fn re_election_after_the_leader_is_cut_off_and_one_leader_after_it_returns(net: Net) {
    let cluster = Cluster::new(net, 3, 6).await;
    let first = cluster.leader().await;
    let (first_term, _) = cluster.running(first).get_state();
    cluster.network.disconnect(Cluster::id(first));
    // The other two elect a leader of a later term.
    let second = wait_for("a new leader", || {
        (0..3).filter(|&peer| peer != first).find(|&peer| {
            let (term, leads) = cluster.running(peer).get_state();
            leads && term > first_term
        })
    })
    .await;
    cluster.network.connect(Cluster::id(first));
    // The old leader learns of the new term and steps down: one leader again.
    wait_for("the old leader steps down", || {
        (!cluster.running(first).get_state().1).then_some(())
    })
    .await;
    assert_ne!(second, first);
    cluster.propose(0..5).await;
    let expected: Vec<Bytes> = (0..5).map(command).collect();
    for peer in 0..3 {
        cluster.wait_applied(peer, &expected).await;
    }
}

async fn agreement_continues_without_a_follower_and_it_catches_up(net: Net) {
    let cluster = Cluster::new(net, 3, 7).await;
    let leader = cluster.leader().await;
    let follower = (leader + 2) % 3;
    cluster.network.disconnect(Cluster::id(follower));
    cluster.propose(0..20).await;
    let expected: Vec<Bytes> = (0..20).map(command).collect();
    for peer in (0..3).filter(|&peer| peer != follower) {
        cluster.wait_applied(peer, &expected).await;
    }
    assert!(
        cluster.applied(follower).is_empty(),
        "a cut-off follower applies nothing"
    );
    cluster.network.connect(Cluster::id(follower));
    cluster.wait_applied(follower, &expected).await;
}

async fn a_healed_partition_keeps_the_majority_log_and_drops_the_minority_proposals(net: Net) {
    let cluster = Cluster::new(net, 5, 13).await;
    cluster.propose(0..5).await;
    let committed: Vec<Bytes> = (0..5).map(command).collect();
    for peer in 0..5 {
        cluster.wait_applied(peer, &committed).await;
    }
    let old_leader = cluster.leader().await;
    let (old_term, _) = cluster.running(old_leader).get_state();
    let minority = [old_leader, (old_leader + 1) % 5];
    let majority: Vec<usize> = (0..5).filter(|peer| !minority.contains(peer)).collect();
    let ids = |peers: &[usize]| {
        peers
            .iter()
            .map(|&peer| Cluster::id(peer))
            .collect::<Vec<_>>()
    };
    cluster
        .network
        .partition(&[&ids(&minority), &ids(&majority)]);
    // The deposed leader still takes proposals; it can never commit them.
    for number in 500..505 {
        let _ = cluster
            .running(old_leader)
            .start_command(command(number))
            .await;
    }
    let new_leader = wait_for("the majority elects a leader", || {
        majority.iter().copied().find(|&peer| {
            let (term, leads) = cluster.running(peer).get_state();
            leads && term > old_term
        })
    })
    .await;
    for number in 5..15 {
        loop {
            if cluster
                .running(new_leader)
                .start_command(command(number))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let log = cluster.converge_to_one_log().await;
    assert!(
        !log.iter()
            .any(|applied| (500..505).map(command).any(|lost| lost == *applied)),
        "a proposal the minority could not commit was applied"
    );
    for number in 0..15 {
        assert!(log.contains(&command(number)), "command {number} lost");
    }
}

async fn an_unreliable_network_with_churn_converges_once_healed(net: Net) {
    let cluster = Cluster::new(net, 5, 8).await;
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
        if cluster.offer(command(number)).await {
            accepted.push(command(number));
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

async fn crashes_and_restarts_on_an_unreliable_network_keep_one_log(net: Net) {
    let mut cluster = Cluster::new(net, 5, 10).await;
    cluster.network.set_faults(Faults::unreliable());
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut down: Vec<usize> = Vec::new();
    for round in 0..12u64 {
        // Offer a few commands to whoever leads now (Figure 8: leaders come and go with
        // uncommitted entries).
        for offset in 0..3 {
            cluster.offer(command(round * 10 + offset)).await;
        }
        next_random(&mut rng_state);
        // Crash the leader or a random peer, keeping a majority up; restart one that is down.
        if down.len() < 2 {
            let victim = (0..5)
                .find(|&peer| cluster.node(peer).is_some_and(|node| node.get_state().1))
                .unwrap_or((rng_state % 5) as usize);
            if cluster.node(victim).is_some() {
                cluster.crash(victim);
                down.push(victim);
            }
        } else {
            let back = down.remove((rng_state % down.len() as u64) as usize);
            cluster.start(back).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for back in down.drain(..) {
        cluster.start(back).await;
    }
    // Nothing was compacted, so a restarted peer applies its whole log again: every peer's
    // service has seen the same commands in the same order.
    cluster.converge_to_one_log().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_commands_and_names_the_leader() {
    let cluster = Cluster::new(Net::Memory, 3, 3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let refused = cluster.running(follower).start_command(command(0)).await;
    // The follower may not have heard from the new leader yet; once it has, it names it.
    match refused {
        Err(NodeError::NotLeader {
            leader: named,
            address,
        }) => {
            assert!(named.is_none() || named == Some(Cluster::id(leader)));
            if named.is_some() {
                assert_eq!(address, Some(format!("node-{}.test:7000", leader + 1)));
            }
        }
        // Only if leadership moved to it in the meantime (a slow machine can delay heartbeats).
        Ok(_) => assert!(
            cluster.running(follower).get_state().1,
            "a follower accepted a command"
        ),
        Err(other) => panic!("unexpected refusal: {other:?}"),
    }
    // The leader serves a linearizable read (retried if leadership moves meanwhile).
    let read = tokio::time::timeout(DEADLINE, async {
        loop {
            let leader = cluster.leader().await;
            if let Ok(index) = cluster.running(leader).read_index().await {
                break index;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no read served within {DEADLINE:?}");
}

/// Where a proposal was placed, or why not, as a placement callback hears it.
type Placed = Result<(Index, Term), NodeError>;

/// A placement callback for `start_command_with` / `start_command_or_forward`, and the place
/// it is called with (within the deadline; called once).
fn placement_callback() -> (
    impl FnOnce(Placed) + Send + 'static,
    impl std::future::Future<Output = Placed>,
) {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let callback = move |place| {
        let _ = sender.send(place);
    };
    let place = async move {
        within_deadline("the callback", receiver)
            .await
            .expect("called once")
    };
    (callback, place)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_callback_learns_where_each_command_went_or_why_not() {
    let cluster = Cluster::new(Net::Memory, 3, 4).await;
    let placed = |node: &RaftNode, number: u64| {
        let (callback, place) = placement_callback();
        node.start_command_with(command(number), callback)
            .expect("queued");
        place
    };
    // Placed entries are applied where the callback said (retried if leadership moves).
    let mut places = Vec::new();
    for number in 0..5 {
        let place = loop {
            match placed(cluster.running(cluster.leader().await), number).await {
                Ok(place) => break place,
                Err(NodeError::NotLeader { .. }) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(other) => panic!("unexpected refusal: {other:?}"),
            }
        };
        places.push(place);
    }
    let expected: Vec<Bytes> = (0..5).map(command).collect();
    cluster.wait_applied(0, &expected).await;
    let indexes: Vec<Index> = places.iter().map(|(index, _)| *index).collect();
    assert!(
        indexes.windows(2).all(|pair| pair[0] < pair[1]),
        "{indexes:?}"
    );
    // A follower's callback hears the refusal (unless leadership moved to it meanwhile).
    let follower = (cluster.leader().await + 1) % 3;
    match placed(cluster.running(follower), 9).await {
        Err(NodeError::NotLeader { .. }) => {}
        Ok(_) => assert!(cluster.running(follower).get_state().1),
        Err(other) => panic!("unexpected refusal: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_forwards_a_command_that_every_node_applies_where_its_callback_said() {
    let cluster = Cluster::new(Net::Memory, 3, 5).await;
    let forwarded = |node: &RaftNode, number: u64| {
        let (callback, place) = placement_callback();
        node.start_command_or_forward(command(number), callback)
            .expect("queued");
        place
    };
    // Offered to a follower until one takes it: right after the election a follower may not
    // know the leader yet, and a leader change may leave a forward unanswered.
    let mut places = Vec::new();
    for number in 0..3 {
        let place = within_deadline("a forwarded command placed", async {
            loop {
                let follower = (cluster.leader().await + 1 + number as usize % 2) % 3;
                let node = cluster.running(follower);
                match forwarded(node, number).await {
                    Ok(place) => break (follower, place),
                    Err(NodeError::NotLeader { .. } | NodeError::ForwardUnanswered) => {
                        tokio::time::sleep(Duration::from_millis(10)).await
                    }
                    Err(other) => panic!("unexpected refusal: {other:?}"),
                }
            }
        })
        .await;
        places.push(place);
    }
    // Every node applies each command exactly once, at the index its callback was given.
    for peer in 0..3 {
        let applied = wait_for(
            &format!("peer {peer} applies the forwarded commands"),
            || {
                let applied = cluster.applied_at(peer);
                (applied.len() >= 3).then_some(applied)
            },
        )
        .await;
        for (number, (_, (index, _))) in places.iter().enumerate() {
            let at_index: Vec<&Bytes> = applied
                .iter()
                .filter(|(applied_index, _)| applied_index == index)
                .map(|(_, data)| data)
                .collect();
            assert_eq!(at_index, vec![&command(number as u64)], "peer {peer}");
        }
    }
    // The forwarding followers counted what they sent and heard placed, and the leader what
    // it received (a command offered to a peer that had just become leader is placed there
    // directly, so at least one, not all three, went through a forward).
    let sent: u64 = (0..3)
        .map(|peer| {
            cluster
                .running(peer)
                .metrics()
                .forwarded_proposals_sent_total
        })
        .sum();
    let placed: u64 = (0..3)
        .map(|peer| {
            cluster
                .running(peer)
                .metrics()
                .forwarded_proposals_placed_total
        })
        .sum();
    assert!(sent >= 3 && placed == 3, "sent {sent}, placed {placed}");
    let received = wait_for("the leader publishes what it received", || {
        let received: u64 = (0..3)
            .map(|peer| {
                cluster
                    .running(peer)
                    .metrics()
                    .forwarded_proposals_received_total
            })
            .sum();
        (received >= 3).then_some(received)
    })
    .await;
    assert!(received >= placed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_threads_use_the_blocking_calls() {
    let cluster = Arc::new(Cluster::new(Net::Memory, 3, 4).await);
    cluster.leader().await;
    let from_thread = Arc::clone(&cluster);
    // A plain thread offers the command to every peer until the leader takes it.
    let (peer, index, status) = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            for peer in 0..3 {
                let node = from_thread.running(peer);
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
    assert_eq!(status.id, Cluster::id(peer));
    assert!(status.last_index >= index);
    cluster.wait_applied(peer, &[command(7)]).await;
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
    // The node may already have stopped: the leader's no-op is delivered too (as
    // `ApplyMsg::Noop`), and its delivery alone finds the channel closed. Otherwise this
    // command's delivery does.
    let _ = node.start_command(command(1)).await;
    let stopped = wait_until_stopped(&node, 2).await;
    assert_eq!(
        stopped,
        StopReason::ApplyChannelClosed,
        "the node says why it stopped"
    );
    assert!(!node.get_state().1, "a stopped node does not claim to lead");
    // Refused at once, a placement callback is dropped uncalled: the error tells.
    let called = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&called);
    let refused = node.start_command_with(command(3), move |_| flag.store(true, Ordering::SeqCst));
    assert!(matches!(refused, Err(NodeError::Stopped(_))), "{refused:?}");
    assert!(
        !called.load(Ordering::SeqCst),
        "the callback is not called as well"
    );
}

/// A follower handed an append that would overwrite an entry it knows committed stops (it
/// never drops such a message silently): the stop reason names the sender, term and index,
/// and the metric counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_asked_to_overwrite_a_committed_entry_stops_and_says_why() {
    use raft_core::{Entry, EntryKind, LogId, Message, MessageBody, Term};

    let voters = Configuration::new([NodeId(1), NodeId(2), NodeId(3)]);
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = Wal::open(dir.path(), voters, WalOptions::default()).expect("opens");
    let network = MemoryNetwork::new(11);
    let (inbound_sender, inbound) = mpsc::channel(16);
    let transport = network.endpoint(NodeId(1), inbound_sender.clone());
    let (apply, _apply_receiver) = mpsc::channel(16);
    let node = RaftNode::start(
        NodeConfig::new(NodeId(1), 11),
        wal,
        transport,
        inbound,
        apply,
    )
    .expect("starts");
    // Peers 2 and 3 are forged here. Terms far above any this node reaches by campaigning
    // alone keep both appends current.
    let append = |from: u64, term: u64, entry_data: &'static [u8], commit: u64| Message {
        from: NodeId(from),
        to: NodeId(1),
        term: Term(term),
        body: MessageBody::Append {
            prev: LogId::default(),
            entries: vec![Entry {
                id: LogId::new(Term(term), Index(1)),
                kind: EntryKind::Normal,
                data: Bytes::from_static(entry_data),
            }],
            commit: Index(commit),
        },
    };
    inbound_sender
        .send(append(2, 1_000, b"committed", 1))
        .await
        .expect("the node takes messages");
    wait_for("the follower commits entry 1", || {
        let metrics = node.metrics();
        (metrics.commit_index >= Index(1)).then_some(())
    })
    .await;
    inbound_sender
        .send(append(3, 2_000, b"forged", 0))
        .await
        .expect("the node takes messages");
    let stopped = wait_until_stopped(&node, 1).await;
    let StopReason::SafetyViolation(text) = &stopped else {
        panic!("stopped for another reason: {stopped:?}");
    };
    assert!(
        text.contains("n3") && text.contains("2000") && text.contains("committed entry"),
        "the reason names sender, term and the committed entry: {text}"
    );
    assert_eq!(node.metrics().safety_violations_total, 1, "counted once");
}

/// Offers `node` command `n` until it answers that it stopped; its reason.
async fn wait_until_stopped(node: &RaftNode, n: u64) -> StopReason {
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Err(NodeError::Stopped(reason)) = node.start_command(command(n)).await {
                break reason;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the node stops")
}
