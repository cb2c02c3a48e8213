//! A peer restarted after an unclean stop recovers with its peers' help before it votes; one
//! stopped gracefully, or told to trust unclean restarts, starts as an ordinary member. The
//! clean-shutdown marker of its write-ahead log is what tells them apart (see
//! docs/operations.md, "A node that restarted uncleanly").
//!
//! ```text
//!  crash (node dropped) ─► no marker ─► restart: recovering (Probing until the other voters
//!                                       answer, then CatchingUp) ─► ordinary member
//!  shutdown()           ─► marker (only if not recovering) ─► restart: ordinary member
//! ```

use bytes::Bytes;
use raft_core::{RecoveryPhase, RecoveryStatus};
use raft_node::RaftNode;

mod common;

use common::cluster::{command, Cluster, Net};
use common::{wait_for, DEADLINE};

/// The marker's file name, as raft-wal's on-disk format documents it.
const CLEAN_SHUTDOWN_MARKER: &str = "CLEAN_SHUTDOWN";

fn has_marker(cluster: &Cluster, peer: usize) -> bool {
    cluster.data_dir(peer).join(CLEAN_SHUTDOWN_MARKER).exists()
}

async fn recovery_of(node: &RaftNode) -> Option<RecoveryStatus> {
    node.status().await.expect("the node runs").recovery
}

/// `node` did not start recovering (a recovery starts with the node or never).
async fn assert_started_as_an_ordinary_member(node: &RaftNode) {
    let metrics = node.metrics();
    assert!(!metrics.recovering, "{metrics:?}");
    assert_eq!(metrics.recoveries_started_total, 0, "{metrics:?}");
    assert_eq!(recovery_of(node).await, None);
}

/// Two followers of the leader of a 3-peer cluster that applied `commands`.
async fn cluster_with_commands(seed: u64, commands: &[Bytes]) -> (Cluster, usize, [usize; 2]) {
    println!("seed {seed}");
    let cluster = Cluster::new(Net::Memory, 3, seed).await;
    cluster.propose(0..commands.len() as u64).await;
    for peer in 0..3 {
        cluster.wait_applied(peer, commands).await;
    }
    let leader = cluster.leader().await;
    let followers: Vec<usize> = (0..3).filter(|&peer| peer != leader).collect();
    (cluster, leader, [followers[0], followers[1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_peer_recovers_until_every_voter_answered_and_stays_suspect_across_a_graceful_restart(
) {
    let commands: Vec<Bytes> = (0..10).map(command).collect();
    let (mut cluster, leader, [crashed, stopped]) = cluster_with_commands(31, &commands).await;
    cluster.crash(crashed);
    cluster.stop(stopped).await;
    assert!(!has_marker(&cluster, crashed), "a crash leaves no marker");
    assert!(has_marker(&cluster, stopped), "a graceful stop leaves one");

    // Of its two other voters only the leader is up: recovery cannot pass the probing phase.
    cluster.start(crashed).await;
    assert!(
        !has_marker(&cluster, crashed),
        "the marker is never there while the log is open"
    );
    let node = cluster.running(crashed);
    let metrics = node.metrics();
    assert!(metrics.recovering, "{metrics:?}");
    assert_eq!(
        (
            metrics.recoveries_started_total,
            metrics.recoveries_finished_total
        ),
        (1, 0)
    );
    let stopped_id = Cluster::id(stopped);
    let leader_id = Cluster::id(leader);
    let recovery = wait_for_recovery("the leader answers the probe", node, |recovery| {
        recovery.answered.contains(&leader_id)
    })
    .await;
    assert_eq!(recovery.phase, RecoveryPhase::Probing, "{recovery:?}");
    assert_eq!(recovery.awaiting, vec![stopped_id], "{recovery:?}");

    // Stopped while recovering, it must not claim a clean shutdown: it recovers again.
    cluster.stop(crashed).await;
    assert!(
        !has_marker(&cluster, crashed),
        "a peer still recovering writes no marker"
    );
    cluster.start(crashed).await;
    assert!(cluster.running(crashed).metrics().recovering);

    // The gracefully stopped peer starts as an ordinary member, and its answer ends the
    // recovery; the recovered peer then catches up with the log.
    cluster.start(stopped).await;
    assert_started_as_an_ordinary_member(cluster.running(stopped)).await;
    let node = cluster.running(crashed);
    wait_for("the recovery ends", || {
        let metrics = node.metrics();
        (!metrics.recovering && metrics.recoveries_finished_total == 1).then_some(())
    })
    .await;
    assert_eq!(recovery_of(node).await, None);
    cluster.wait_applied(crashed, &commands).await;
    let all: Vec<Bytes> = (0..20).map(command).collect();
    cluster.propose(10..20).await;
    for peer in 0..3 {
        cluster.wait_applied(peer, &all).await;
    }

    // Recovered, it stops cleanly like any member and restarts as one.
    cluster.stop(crashed).await;
    assert!(
        has_marker(&cluster, crashed),
        "a recovered peer writes the marker"
    );
    cluster.start(crashed).await;
    assert_started_as_an_ordinary_member(cluster.running(crashed)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gracefully_stopped_peer_restarts_without_recovery() {
    let commands: Vec<Bytes> = (0..10).map(command).collect();
    let (mut cluster, _leader, [stopped, _]) = cluster_with_commands(32, &commands).await;
    cluster.stop(stopped).await;
    assert!(has_marker(&cluster, stopped));
    cluster.start(stopped).await;
    assert_started_as_an_ordinary_member(cluster.running(stopped)).await;
    cluster.wait_applied(stopped, &commands).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_trusts_unclean_restarts_restarts_after_a_crash_without_recovery() {
    let seed = 33;
    println!("seed {seed}");
    let mut cluster = Cluster::with_settings(
        Net::Memory,
        3,
        seed,
        Box::new(|config| config.trust_unclean_restart = true),
    )
    .await;
    let commands: Vec<Bytes> = (0..10).map(command).collect();
    cluster.propose(0..10).await;
    let leader = cluster.leader().await;
    let crashed = (leader + 1) % 3;
    cluster.wait_applied(crashed, &commands).await;
    cluster.crash(crashed);
    assert!(!has_marker(&cluster, crashed));
    cluster.start(crashed).await;
    assert_started_as_an_ordinary_member(cluster.running(crashed)).await;
    cluster.wait_applied(crashed, &commands).await;
}

/// Polls `node`'s recovery status until `accept` takes it, failing the test after
/// [`DEADLINE`].
async fn wait_for_recovery(
    what: &str,
    node: &RaftNode,
    accept: impl Fn(&RecoveryStatus) -> bool,
) -> RecoveryStatus {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let recovery = recovery_of(node).await;
        if let Some(recovery) = recovery.filter(|recovery| accept(recovery)) {
            return recovery;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached within {DEADLINE:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
