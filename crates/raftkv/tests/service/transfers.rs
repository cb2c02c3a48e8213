//! Leadership transfers under writes (issue 23): no write sent through any node gets a 4xx,
//! and every acknowledged one survives.

use std::time::Duration;

use bytes::Bytes;
use raftkv_client::api::Consistency;

use crate::common::error_of;
use crate::common::{self, wait_for, TestCluster};

/// What the writers of a test saw: the writes acknowledged, and every answer no client may
/// get for a write that can succeed.
#[derive(Default)]
struct WriteLog {
    /// `(key, value)` of every acknowledged write.
    acknowledged: Vec<(String, String)>,
    /// Answers that end a write for good (a 4xx, or the Rust client giving up).
    final_failures: Vec<String>,
    /// 503s (by error message) and connection failures, retried.
    retried: std::collections::BTreeMap<String, u64>,
}

/// A plain HTTP client that does not follow leader hints: write `number` goes to node
/// `number % 3`, under client id `client_id` and request-seq `number + 1`; a 503 or a failed
/// connection is retried under the same request-seq at the next node, as any well-behaved
/// client of the documented contract does. Writes until `stop`.
async fn round_robin_writer(
    cluster: std::sync::Arc<TestCluster>,
    client_id: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    log: std::sync::Arc<std::sync::Mutex<WriteLog>>,
) {
    let mut number = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let key = format!("{client_id}-{number}");
        let value = format!("value {number}");
        let sequence = (number + 1).to_string();
        let headers = [
            ("client-id", client_id.as_str()),
            ("request-seq", sequence.as_str()),
        ];
        let mut node = (number % 3) as usize;
        loop {
            let answer = cluster
                .try_request(
                    node,
                    "PUT",
                    &format!("/v1/kv/{key}"),
                    &headers,
                    value.clone(),
                )
                .await;
            match answer {
                Ok((200, _, _)) => {
                    let mut log = log.lock().expect("not poisoned");
                    log.acknowledged.push((key.clone(), value.clone()));
                    break;
                }
                Ok((503, headers, body)) => {
                    assert!(headers.contains_key("retry-after"), "a 503 says when");
                    let reason = format!("503 {}", error_of(&body).error);
                    *log.lock()
                        .expect("not poisoned")
                        .retried
                        .entry(reason)
                        .or_default() += 1;
                }
                Ok((status, _, body)) => {
                    log.lock()
                        .expect("not poisoned")
                        .final_failures
                        .push(format!(
                            "PUT {key} through node {}: {status} {}",
                            node + 1,
                            String::from_utf8_lossy(&body)
                        ));
                    return;
                }
                Err(error) => {
                    *log.lock()
                        .expect("not poisoned")
                        .retried
                        .entry(error)
                        .or_default() += 1
                }
            }
            node = (node + 1) % 3;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        number += 1;
    }
}

/// The sum over every node of the Prometheus counter `series`.
async fn counter_total(cluster: &TestCluster, series: &str) -> f64 {
    let mut total = 0.0;
    for node in 0..cluster.nodes.len() {
        total += cluster.metric(node, series).await;
    }
    total
}

/// The bug of issue 23: writes sent while `raftkv leader transfer` ran were answered 400
/// "leadership transfer in progress", which every client takes as final. Writers that do not
/// follow the leader (plain HTTP, round robin over the nodes) and Rust clients write while the
/// leadership moves at least eight times through the admin route the CLI uses: no write may get
/// a 4xx, and every acknowledged one is read back linearizably afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_every_node_during_leadership_transfers_get_no_4xx_and_all_survive() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const TRANSFERS_MIN: usize = 8;
    /// More transfers, only while none met a write yet (so the run tests something).
    const TRANSFERS_MAX: usize = 20;
    const HELD: &str = "raftkv_kv_requests_held_for_leadership_change_total";
    let cluster = Arc::new(TestCluster::start(3, &[]).await);
    // Every node can forward to whichever node leads next (a new cluster publishes the
    // nodes' HTTP addresses within a second or so).
    for node in 0..3 {
        wait_for("every node knows every node's HTTP address", || {
            let client = cluster.client_of(node);
            async move {
                let members = client.members().await.ok()?;
                let published = members
                    .members
                    .iter()
                    .all(|member| member.http_address.is_some());
                published.then_some(())
            }
        })
        .await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<WriteLog>> = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..4 {
        // Opaque ids, as HTTP clients have them at hand.
        let client_id = format!("http-writer-{writer}");
        writers.push(tokio::spawn(round_robin_writer(
            Arc::clone(&cluster),
            client_id,
            Arc::clone(&stop),
            Arc::clone(&log),
        )));
    }
    for writer in 0..2 {
        let client = cluster.client();
        let stop = Arc::clone(&stop);
        let log = Arc::clone(&log);
        writers.push(tokio::spawn(async move {
            let mut number = 0u64;
            while !stop.load(Ordering::Acquire) {
                let key = format!("rust-writer-{writer}-{number}");
                let value = format!("value {number}");
                match client.put(&key, value.clone()).await {
                    Ok(_) => log
                        .lock()
                        .expect("not poisoned")
                        .acknowledged
                        .push((key, value)),
                    Err(error) => {
                        log.lock()
                            .expect("not poisoned")
                            .final_failures
                            .push(format!("Rust client put {key}: {error}"));
                        return;
                    }
                }
                number += 1;
            }
        }));
    }
    // (acknowledged writes, whether a write failed for good)
    let progress = || {
        let log = log.lock().expect("not poisoned");
        (log.acknowledged.len(), !log.final_failures.is_empty())
    };
    // Whether a write met a transfer: it was held through it, or answered 503 and retried.
    let met_a_transfer = || async {
        let retried: u64 = log.lock().expect("not poisoned").retried.values().sum();
        counter_total(&cluster, HELD).await >= 1.0 || retried > 0
    };
    let mut transfers = 0;
    while transfers < TRANSFERS_MIN || (transfers < TRANSFERS_MAX && !met_a_transfer().await) {
        // Writes flow under the current leader before it hands over.
        let (before, _) = progress();
        let failed = wait_for("writes are acknowledged", || {
            let (now, failed) = progress();
            async move { (failed || now >= before + 20).then_some(failed) }
        })
        .await;
        if failed {
            break;
        }
        let leader = cluster.wait_for_leader().await;
        let target = (leader + 1) % 3;
        let body = format!(r#"{{"to": {}}}"#, target + 1);
        // Through any node, as `raftkv leader transfer` does; a follower forwards it.
        let through = transfers % 3;
        wait_for("the transfer is accepted", || {
            let (cluster, body) = (&cluster, body.clone());
            async move {
                let (status, _, _) = cluster
                    .try_request(through, "POST", "/v1/leader/transfer", &[], body)
                    .await
                    .ok()?;
                (status == 204).then_some(())
            }
        })
        .await;
        cluster.wait_until_leads(target).await;
        transfers += 1;
    }
    let held = counter_total(&cluster, HELD).await;
    let tested_something = met_a_transfer().await;
    stop.store(true, Ordering::Release);
    for writer in writers {
        tokio::time::timeout(common::DEADLINE, writer)
            .await
            .expect("the writer stops")
            .expect("the writer does not panic");
    }
    let log = std::mem::take(&mut *log.lock().expect("not poisoned"));
    assert!(
        log.final_failures.is_empty(),
        "writes refused for good during transfers: {:?}",
        log.final_failures
    );
    assert!(
        tested_something,
        "in {transfers} transfers no write met one: the run tested nothing"
    );
    eprintln!(
        "{transfers} transfers, {} writes acknowledged, {held} requests held through a \
         transfer; attempts retried: {:?}",
        log.acknowledged.len(),
        log.retried
    );
    let reader = cluster.client();
    for (key, value) in &log.acknowledged {
        assert_eq!(
            reader
                .get(key, Consistency::Linearizable)
                .await
                .expect("read"),
            Some(Bytes::from(value.clone())),
            "acknowledged write of {key} lost"
        );
    }
}
