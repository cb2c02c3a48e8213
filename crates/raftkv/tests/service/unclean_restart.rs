//! A node that distrusts its disk (`--distrust-unclean-restart`) and is killed (SIGKILL)
//! restarts recovering, and says so in `/v1/status`, `raftkv status` and `/metrics` until
//! every other voter has answered; a node stopped with SIGTERM leaves the clean-shutdown marker
//! and restarts as an ordinary member; by default a kill that leaves the log undamaged does
//! not make a node recover.

use raftkv_client::api::{Consistency, RecoveryStatus, StatusResponse};

use crate::common::{wait_for, TestCluster};

/// The marker `raftkv serve` leaves in its data directory on a graceful stop.
const CLEAN_SHUTDOWN_MARKER: &str = "CLEAN_SHUTDOWN";

fn has_marker(cluster: &TestCluster, index: usize) -> bool {
    cluster.nodes[index]
        .data_dir
        .join(CLEAN_SHUTDOWN_MARKER)
        .exists()
}

/// The status of node `index`, once it answers (after a restart).
async fn status_once_up(cluster: &TestCluster, index: usize) -> StatusResponse {
    wait_for("the restarted node answers", || async move {
        cluster.status(index).await
    })
    .await
}

/// Node `index`'s gauge `raftkv_raft_recovering` and its counters of recoveries started and
/// finished.
async fn recovery_figures(cluster: &TestCluster, index: usize) -> [f64; 3] {
    [
        cluster.metric(index, "raftkv_raft_recovering ").await,
        cluster
            .metric(index, "raftkv_raft_recoveries_started_total ")
            .await,
        cluster
            .metric(index, "raftkv_raft_recoveries_finished_total ")
            .await,
    ]
}

/// `raftkv status` asked of node `index` alone: its row.
async fn status_row(cluster: &TestCluster, index: usize) -> String {
    let endpoint = cluster.nodes[index].http.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["--endpoints", &endpoint, "status"])
            .output()
            .expect("raftkv runs")
    })
    .await
    .expect("the command ran");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(stdout.starts_with("ENDPOINT"), "{stdout}");
    stdout.lines().nth(1).expect("a row").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_that_distrusts_its_disk_recovers_in_view_of_the_operator_and_a_terminated_one_does_not(
) {
    let mut cluster = TestCluster::start(3, &["--distrust-unclean-restart"]).await;
    cluster.client().put("k", "v").await.expect("write");
    let leader = cluster.wait_for_leader().await;
    let (killed, terminated) = ((leader + 1) % 3, (leader + 2) % 3);
    let leader_id = cluster.nodes[leader].id;
    let terminated_id = cluster.nodes[terminated].id;
    // Every node holds the write before the two go down, so the killed one has it to lose.
    for index in [killed, terminated] {
        let client = cluster.client_of(index);
        wait_for("the write reaches every node", || {
            let client = &client;
            async move { (client.get("k", Consistency::Stale).await.ok()?.is_some()).then_some(()) }
        })
        .await;
    }
    cluster.kill(killed);
    let status = cluster.terminate(terminated).expect("was running");
    assert!(status.success(), "SIGTERM exits 0: {status}");
    assert!(!has_marker(&cluster, killed), "SIGKILL leaves no marker");
    assert!(
        has_marker(&cluster, terminated),
        "SIGTERM leaves the marker"
    );

    // Its other voters are the leader, which answers, and the terminated node, which cannot:
    // the killed node stays in its first phase.
    cluster.spawn(killed);
    let recovery: RecoveryStatus = wait_for("the killed node probes", || {
        let cluster = &cluster;
        async move {
            let recovery = cluster.status(killed).await?.recovery?;
            (recovery.answered == [leader_id]).then_some(recovery)
        }
    })
    .await;
    assert_eq!(recovery.phase, "probing", "{recovery:?}");
    assert_eq!(recovery.awaiting, [terminated_id], "{recovery:?}");
    let row = status_row(&cluster, killed).await;
    assert!(
        row.ends_with(&format!("probing (awaiting {terminated_id})")),
        "{row}"
    );
    assert_eq!(recovery_figures(&cluster, killed).await, [1.0, 1.0, 0.0]);

    // The terminated node restarts as an ordinary member; its answer lets the other finish.
    cluster.spawn(terminated);
    let status = status_once_up(&cluster, terminated).await;
    assert_eq!(status.recovery, None, "a clean restart does not recover");
    assert_eq!(
        recovery_figures(&cluster, terminated).await,
        [0.0, 0.0, 0.0]
    );
    wait_for("the killed node finishes recovering", || {
        let cluster = &cluster;
        async move {
            let status = cluster.status(killed).await?;
            status.recovery.is_none().then_some(())
        }
    })
    .await;
    assert_eq!(recovery_figures(&cluster, killed).await, [0.0, 1.0, 1.0]);
    assert!(status_row(&cluster, killed).await.ends_with("  -"));
    cluster.wait_for_leader().await;
    cluster.client().put("k", "w").await.expect("write");
    let value = cluster
        .client_of(killed)
        .get("k", Consistency::Linearizable)
        .await
        .expect("read");
    assert_eq!(value.as_deref(), Some(&b"w"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_killed_node_whose_log_shows_no_damage_restarts_without_recovery() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let killed = (leader + 1) % 3;
    cluster.kill(killed);
    assert!(!has_marker(&cluster, killed));
    cluster.spawn(killed);
    let status = status_once_up(&cluster, killed).await;
    assert_eq!(status.recovery, None);
    assert_eq!(recovery_figures(&cluster, killed).await, [0.0, 0.0, 0.0]);
}
