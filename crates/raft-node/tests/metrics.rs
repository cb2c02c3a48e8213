//! A node's metrics move with its work, and lease reads are served by the leader only: a
//! three-peer cluster of real nodes (event loop, write-ahead log with fsync, apply task) on the
//! in-process network, outcomes awaited with deadlines, never fixed sleeps.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use raft_core::{CompactError, Index};
use raft_node::{NodeError, NodeMetrics};

mod common;

use common::cluster::{command, Cluster, Net};
use common::{wait_for, DEADLINE};

const COMMANDS: u64 = 20;

fn metrics(cluster: &Cluster, peer: usize) -> NodeMetrics {
    cluster.running(peer).metrics()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_proposals_commits_applies_and_elections() {
    let cluster = Cluster::new(Net::Memory, 3, 41).await;
    cluster.propose(0..COMMANDS).await;
    let expected: Vec<Bytes> = (0..COMMANDS).map(command).collect();
    for peer in 0..3 {
        cluster.wait_applied(peer, &expected).await;
    }
    // The leader may have changed while proposing; what follows is about the one now.
    let leader = cluster.leader().await;
    let leader_metrics = metrics(&cluster, leader);
    assert!(leader_metrics.is_leader);
    assert_eq!(leader_metrics.leader, Some(Cluster::id(leader)));
    assert!(
        leader_metrics.proposals_accepted_total >= 1,
        "{leader_metrics:?}"
    );
    let accepted: u64 = (0..3)
        .map(|peer| metrics(&cluster, peer).proposals_accepted_total)
        .sum();
    assert!(accepted >= COMMANDS, "{accepted} proposals accepted in all");
    for peer in 0..3 {
        // Every peer's apply task catches up with the commit index it published.
        let caught_up = wait_for(&format!("peer {peer} applies through its commit"), || {
            let now = metrics(&cluster, peer);
            (now.applied_index == now.commit_index && now.commit_index >= Index(COMMANDS))
                .then_some(now)
        })
        .await;
        assert!(caught_up.term.0 >= 1);
        assert!(caught_up.last_log_index >= caught_up.commit_index);
        assert!(
            caught_up.entries_committed_total > COMMANDS,
            "the commands and a leader's no-op: {caught_up:?}"
        );
        assert!(caught_up.entries_applied_total > COMMANDS);
        assert!(caught_up.leader_changes_total >= 1, "{caught_up:?}");
        assert!(caught_up.leader.is_some());
        assert!(caught_up.messages_sent_total > 0);
        assert!(caught_up.messages_received_total > 0);
        let write_latency = &caught_up.storage_write_latency;
        assert!(
            write_latency.count > 0,
            "peer {peer} recorded no storage write"
        );
        assert_eq!(
            write_latency.cumulative_counts.last(),
            Some(&write_latency.count)
        );
        assert!(write_latency.sum_seconds > 0.0);
    }
    let elections: u64 = (0..3)
        .map(|peer| metrics(&cluster, peer).elections_started_total)
        .sum();
    assert!(elections >= 1, "a leader was elected without an election");
    // A follower refuses proposals, and counts the refusal.
    let follower = (leader + 1) % 3;
    let refused_before = metrics(&cluster, follower).proposals_refused_total;
    let refusal = cluster.running(follower).start_command(command(99)).await;
    assert!(
        matches!(refusal, Err(NodeError::NotLeader { .. })),
        "{refusal:?}"
    );
    assert_eq!(
        metrics(&cluster, follower).proposals_refused_total,
        refused_before + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_reads_are_served_by_the_leader_and_refused_by_followers() {
    let cluster = Cluster::new(Net::Memory, 3, 42).await;
    cluster.propose(0..5).await;
    let expected: Vec<Bytes> = (0..5).map(command).collect();
    cluster.wait_applied(0, &expected).await;
    let committed = {
        let leader = cluster.leader().await;
        metrics(&cluster, leader).commit_index
    };
    // Leadership may move in real time; retry until the leader of the moment answers.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let (leader, index) = loop {
        let leader = cluster.leader().await;
        match cluster.running(leader).lease_read_index().await {
            Ok(index) => break (leader, index),
            Err(error) => assert!(
                tokio::time::Instant::now() < deadline,
                "no lease read served: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        index >= committed,
        "a lease read at {index} misses writes committed through {committed}"
    );
    let leader_id = Cluster::id(leader);
    for follower in (0..3).filter(|&peer| peer != leader) {
        match cluster.running(follower).lease_read_index().await {
            Err(NodeError::NotLeader {
                leader: Some(named),
                address,
            }) if named == leader_id => {
                assert_eq!(address, Some(format!("node-{}.test:7000", named.0)));
            }
            // The follower may not have heard of the leader yet, or leadership moved.
            Err(NodeError::NotLeader { .. }) => {}
            other => panic!("follower {follower} answered a lease read with {other:?}"),
        }
    }
    // The blocking form works from a plain thread.
    let blocking = {
        let node = cluster.running(leader);
        std::thread::scope(|scope| {
            scope
                .spawn(|| node.blocking_lease_read_index())
                .join()
                .expect("no panic")
        })
    };
    match blocking {
        Ok(index) => assert!(index >= committed),
        Err(NodeError::NotLeader { .. } | NodeError::ReadFailed) => {}
        Err(error) => panic!("blocking lease read failed: {error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_by_the_service_is_counted_and_moves_the_snapshot_index() {
    let mut cluster = Cluster::new(Net::Memory, 3, 43).await;
    cluster.propose(0..10).await;
    let expected: Vec<Bytes> = (0..10).map(command).collect();
    cluster.wait_applied(0, &expected).await;
    let peer = 0;
    let applied = wait_for("peer 0 applies through its commit", || {
        let now = metrics(&cluster, peer);
        (now.applied_index == now.commit_index && now.applied_index >= Index(10))
            .then_some(now.applied_index)
    })
    .await;
    assert_eq!(metrics(&cluster, peer).snapshots_taken_total, 0);
    snapshot_once_applied(&cluster, peer, applied).await;
    assert_eq!(metrics(&cluster, peer).snapshots_taken_total, 1);
    wait_for("the snapshot index reaches the snapshot", || {
        (metrics(&cluster, peer).snapshot_index == applied).then_some(())
    })
    .await;
    // A restarted peer restores its own snapshot first: that is no install from a leader.
    cluster.stop(peer).await;
    cluster.start(peer).await;
    wait_for("the restarted peer hands its snapshot over", || {
        (metrics(&cluster, peer).applied_index >= applied).then_some(())
    })
    .await;
    assert_eq!(metrics(&cluster, peer).snapshots_installed_total, 0);
    assert_eq!(
        metrics(&cluster, peer).snapshots_taken_total,
        0,
        "counted per start"
    );
}

/// Hands `peer` a snapshot through `index`, which its service has been handed. The core learns
/// of the hand-over a moment after the service does, so a refusal is retried.
async fn snapshot_once_applied(cluster: &Cluster, peer: usize, index: Index) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match cluster
            .running(peer)
            .snapshot(index, Bytes::from_static(b"service state"))
            .await
        {
            Ok(()) => return,
            Err(reason @ NodeError::Compact(CompactError::NotApplied { .. })) => assert!(
                tokio::time::Instant::now() < deadline,
                "snapshot refused: {reason}"
            ),
            Err(error) => panic!("snapshot failed: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_peer_counts_the_snapshot_it_installs_from_the_leader() {
    let cluster = Cluster::new(Net::Memory, 3, 44).await;
    let lagging = (cluster.leader().await + 1) % 3;
    cluster.network.disconnect(Cluster::id(lagging));
    cluster.propose(0..30).await;
    let leader = cluster.leader().await;
    wait_for("the leader applies the commands", || {
        (cluster.applied(leader).len() == 30).then_some(())
    })
    .await;
    let applied = Index(cluster.applied_index[leader].load(Ordering::Acquire));
    snapshot_once_applied(&cluster, leader, applied).await;
    cluster.propose(30..35).await;
    // Until the compaction is durable the leader can still send the entries themselves.
    wait_for("the leader's compaction is durable", || {
        (metrics(&cluster, leader).snapshot_index == applied).then_some(())
    })
    .await;
    assert_eq!(metrics(&cluster, lagging).snapshots_installed_total, 0);
    cluster.network.connect(Cluster::id(lagging));
    wait_for("the lagging peer installs the leader's snapshot", || {
        let now = metrics(&cluster, lagging);
        (now.snapshots_installed_total == 1 && now.applied_index > applied).then_some(())
    })
    .await;
    let after = metrics(&cluster, lagging);
    assert!(after.snapshot_index >= applied, "{after:?}");
    assert!(
        after.entries_applied_total < after.applied_index.0,
        "entries the snapshot covers are not counted as applied: {after:?}"
    );
}
