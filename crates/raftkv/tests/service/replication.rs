//! Replication and recovery: writes through every node read back linearizably from every node,
//! a SIGKILLed leader replaced and caught up, every acknowledged write surviving a restart of
//! all nodes, a lagging node recovering from a snapshot and the log, and a clean stop on
//! SIGTERM.

use bytes::Bytes;
use raftkv_client::api::{Consistency, StatusResponse};

use crate::common::error_of;
use crate::common::{wait_for, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_every_node_are_read_back_linearizably_from_every_node() {
    let cluster = TestCluster::start(3, &[]).await;
    for (index, key) in ["a", "b", "c"].iter().enumerate() {
        cluster
            .client_of(index)
            .put(key, format!("written through node {}", index + 1))
            .await
            .expect("any node takes a write");
    }
    // A linearizable read on any node sees every write acknowledged before it began.
    for reader in 0..3 {
        let client = cluster.client_of(reader);
        for (index, key) in ["a", "b", "c"].iter().enumerate() {
            let value = client
                .get(key, Consistency::Linearizable)
                .await
                .expect("read");
            assert_eq!(
                value,
                Some(Bytes::from(format!("written through node {}", index + 1))),
                "node {reader} read {key}"
            );
        }
    }
    let leader = cluster.wait_for_leader().await;
    let lease = cluster
        .client_of(leader)
        .get("a", Consistency::Lease)
        .await
        .expect("lease read");
    assert_eq!(lease, Some(Bytes::from("written through node 1")));
    let follower = (leader + 1) % 3;
    let forwarded = cluster
        .client_of(follower)
        .get("b", Consistency::Lease)
        .await
        .expect("a follower forwards a lease read");
    assert_eq!(forwarded, Some(Bytes::from("written through node 2")));
    // The demo routes of the original project.
    let (status, _, _) = cluster
        .request(follower, "GET", "/set?key=demo&value=42", &[], Bytes::new())
        .await;
    assert_eq!(status, 200);
    let (status, _, body) = cluster
        .request(leader, "GET", "/get?key=demo", &[], Bytes::new())
        .await;
    assert_eq!((status, body), (200, Bytes::from("42")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_catches_up_after_restart() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let client = cluster.client();
    client.put("before", "1").await.expect("write");
    let leader = cluster.wait_for_leader().await;
    cluster.kill(leader);
    // The other two elect a leader and keep serving.
    let survivors = cluster.client();
    for number in 0..20 {
        survivors
            .put(&format!("after-{number}"), number.to_string())
            .await
            .expect("the survivors serve writes");
    }
    let new_leader = cluster.wait_for_leader().await;
    assert_ne!(new_leader, leader);
    cluster.spawn(leader);
    let restarted = cluster.client_of(leader);
    wait_for(
        "the restarted node applies the writes made without it",
        || {
            let restarted = &restarted;
            async move {
                let value = restarted.get("after-19", Consistency::Stale).await.ok()?;
                (value == Some(Bytes::from("19"))).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        restarted
            .get("before", Consistency::Stale)
            .await
            .expect("read"),
        Some(Bytes::from("1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_killing_and_restarting_all_nodes() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let client = cluster.client();
    let mut acknowledged = Vec::new();
    for number in 0..100u32 {
        let key = format!("key-{number:03}");
        client
            .put(&key, format!("value-{number}"))
            .await
            .expect("write");
        acknowledged.push(key);
    }
    for index in 0..3 {
        cluster.kill(index);
    }
    for index in 0..3 {
        cluster.spawn(index);
    }
    cluster.wait_for_leader().await;
    let client = cluster.client();
    for (number, key) in acknowledged.iter().enumerate() {
        assert_eq!(
            client
                .get(key, Consistency::Linearizable)
                .await
                .expect("read"),
            Some(Bytes::from(format!("value-{number}"))),
            "{key} lost"
        );
    }
    let scan = client.scan("key-", 1000).await.expect("scan");
    assert_eq!(scan.items.len(), 100);
    assert!(!scan.truncated);
    assert!(scan.items.windows(2).all(|pair| pair[0].key < pair[1].key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_node_recovers_from_a_snapshot_and_the_log() {
    let mut cluster = TestCluster::start(3, &["--snapshot-threshold-bytes", "20000"]).await;
    let leader = cluster.wait_for_leader().await;
    let lagging = (leader + 1) % 3;
    cluster.kill(lagging);
    let client = cluster.client();
    let value = "v".repeat(500);
    for number in 0..200 {
        client
            .put(&format!("bulk-{number:03}"), value.clone())
            .await
            .expect("write");
    }
    let leader = cluster.wait_for_leader().await;
    wait_for("the leader compacts its log", || {
        let cluster = &cluster;
        async move {
            let status: StatusResponse = cluster.status(leader).await?;
            (status.snapshot_index > 0).then_some(())
        }
    })
    .await;
    cluster.spawn(lagging);
    let restarted = cluster.client_of(lagging);
    wait_for("the lagging node catches up", || {
        let restarted = &restarted;
        let value = value.clone();
        async move {
            let got = restarted.get("bulk-199", Consistency::Stale).await.ok()?;
            (got == Some(Bytes::from(value))).then_some(())
        }
    })
    .await;
    let (status, _, metrics) = cluster
        .request(lagging, "GET", "/metrics", &[], Bytes::new())
        .await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8_lossy(&metrics);
    let installed = metrics
        .lines()
        .find(|line| line.starts_with("raftkv_raft_snapshots_installed_total"))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|value| value.parse::<u64>().ok())
        .expect("the installed-snapshot counter is exported");
    assert!(installed >= 1, "the lagging node installed a snapshot");
    // A node restarted after compacting recovers from its own snapshot plus log.
    cluster.kill(leader);
    cluster.spawn(leader);
    let again = cluster.client_of(leader);
    wait_for("the restarted leader serves its data", || {
        let again = &again;
        async move {
            let got = again.get("bulk-000", Consistency::Stale).await.ok()?;
            got.is_some().then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stops_cleanly_on_sigterm_and_without_a_leader_requests_get_503() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.client().put("k", "v").await.expect("write");
    let status = cluster.terminate(0).expect("was running");
    assert!(status.success(), "SIGTERM exits 0: {status}");
    let status = cluster.terminate(1).expect("was running");
    assert!(status.success());
    // One node of three cannot elect a leader or commit: it says so, with Retry-After.
    let (code, headers, body) = cluster
        .request(2, "PUT", "/v1/kv/k", &[], Bytes::from("w"))
        .await;
    assert_eq!(code, 503, "{:?}", String::from_utf8_lossy(&body));
    assert!(headers.contains_key("retry-after"));
    error_of(&body);
}
