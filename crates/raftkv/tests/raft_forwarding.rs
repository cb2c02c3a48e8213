//! Writes sent to a follower, against real `raftkv serve` processes: the follower hands the
//! proposal to the leader over the Raft transport (not as a second HTTP request or gRPC call),
//! answers once it applied the entry itself, and sessions keep a retry exactly-once while
//! leadership moves under writes spread over every node.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{TestCluster, DEADLINE};
use raftkv_client::api::{WriteResponse, LEADER_HEADER, VERSION_HEADER};
use raftkv_etcd_api::etcdserverpb::kv_client::KvClient;
use raftkv_etcd_api::etcdserverpb::{PutRequest, RangeRequest};
use tonic::transport::Endpoint;

/// The sum of the samples on node `index` whose metric name ends with `name` (the exported
/// names carry the service's prefix).
async fn counter(cluster: &TestCluster, index: usize, name: &str) -> u64 {
    let (status, _, body) = cluster.request(index, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body).into_owned();
    let samples: Vec<u64> = text
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|metric| metric.ends_with(name))
        })
        .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .collect();
    assert!(
        !samples.is_empty(),
        "no metric {name} on node {}",
        index + 1
    );
    samples.iter().sum()
}

/// The forwarding counters of node `index`: proposals it forwarded over Raft, HTTP requests
/// and gRPC calls it relayed to the leader.
async fn forwards(cluster: &TestCluster, index: usize) -> [u64; 3] {
    [
        counter(cluster, index, "raft_forwarded_proposals_sent_total").await,
        counter(cluster, index, "kv_requests_forwarded_total").await,
        counter(cluster, index, "kv_grpc_calls_forwarded_total").await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_forwards_writes_over_raft_and_reads_its_own_write_at_once() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let before = forwards(&cluster, follower).await;
    let received_before =
        counter(&cluster, leader, "raft_forwarded_proposals_received_total").await;

    // HTTP: a put, under a session.
    let session = [("client-id", "forwarding-test"), ("request-seq", "1")];
    let (status, headers, body) = cluster
        .request(follower, "PUT", "/v1/kv/through-raft", &session, "one")
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let first: WriteResponse = serde_json::from_slice(&body).expect("a write answer");
    assert_eq!(
        headers
            .get(LEADER_HEADER)
            .and_then(|value| value.to_str().ok()),
        Some(cluster.nodes[leader].http.as_str()),
        "the answer names the leader, as a forwarded answer does"
    );
    // Answered once applied on the follower: even a stale read there sees it.
    let (status, headers, body) = cluster
        .request(
            follower,
            "GET",
            "/v1/kv/through-raft?consistency=stale",
            &[],
            "",
        )
        .await;
    assert_eq!((status, body), (200, Bytes::from("one")));
    assert_eq!(
        headers
            .get(VERSION_HEADER)
            .and_then(|value| value.to_str().ok()),
        Some("1")
    );
    // The same session sequence again: the first answer, not a second write.
    let (status, _, body) = cluster
        .request(follower, "PUT", "/v1/kv/through-raft", &session, "one")
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let again: WriteResponse = serde_json::from_slice(&body).expect("a write answer");
    assert_eq!(
        (again.index, again.revision),
        (first.index, first.revision),
        "a retry is answered from its session"
    );
    // A transaction and a delete take the same path.
    let txn = r#"{"compare": [{"key": "through-raft", "op": "=", "value": "one"}],
                  "success": [{"put": {"key": "txn-key", "value": "two"}}]}"#;
    let (status, _, body) = cluster.request(follower, "POST", "/v1/txn", &[], txn).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("a txn answer");
    assert_eq!(answer["succeeded"], true, "{answer}");
    let (status, _, body) = cluster
        .request(follower, "GET", "/v1/kv/txn-key?consistency=stale", &[], "")
        .await;
    assert_eq!((status, body), (200, Bytes::from("two")));
    let (status, _, body) = cluster
        .request(follower, "DELETE", "/v1/kv/txn-key", &[], "")
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = cluster
        .request(follower, "GET", "/v1/kv/txn-key?consistency=stale", &[], "")
        .await;
    assert_eq!(status, 404, "deleted, as the follower sees at once");

    // gRPC: a put on the follower, read there serializably (its own state) at once.
    let channel = Endpoint::from_shared(format!("http://{}", cluster.nodes[follower].grpc))
        .expect("a valid address")
        .timeout(DEADLINE)
        .connect_lazy();
    let mut kv = KvClient::new(channel);
    let put = kv
        .put(PutRequest {
            key: Bytes::from("grpc-key"),
            value: Bytes::from("three"),
            ..PutRequest::default()
        })
        .await
        .expect("a put through the follower")
        .into_inner();
    let header = put.header.expect("a header");
    assert_eq!(
        header.member_id,
        follower as u64 + 1,
        "answered by the member called"
    );
    let range = kv
        .range(RangeRequest {
            key: Bytes::from("grpc-key"),
            serializable: true,
            ..RangeRequest::default()
        })
        .await
        .expect("a range")
        .into_inner();
    assert_eq!(range.kvs.len(), 1);
    assert_eq!(&range.kvs[0].value[..], b"three");
    assert!(range.header.expect("a header").revision >= header.revision);

    let after = forwards(&cluster, follower).await;
    // Put, retried put (answered from its session, but proposed again), txn, delete, gRPC put.
    assert!(
        after[0] >= before[0] + 5,
        "forwarded over Raft: {before:?} → {after:?}"
    );
    assert_eq!(after[1], before[1], "no HTTP request relayed to the leader");
    assert_eq!(after[2], before[2], "no gRPC call relayed to the leader");
    let received = counter(&cluster, leader, "raft_forwarded_proposals_received_total").await;
    assert!(
        received >= received_before + 5,
        "{received_before} → {received}"
    );
}

/// How one spread writer's write ended.
#[derive(Debug, Default)]
struct Outcomes {
    /// Writes answered 200, by session sequence: the log index of the answer.
    answered: BTreeMap<u64, u64>,
    /// 503 answers (a retry follows, under the same sequence).
    transient: u64,
    /// Writes given up on after every retry was transient: their outcome is unknown.
    unknown: Vec<u64>,
}

/// Writes `writes` keys `writer-N-S` through node `node` only, each under session sequence S,
/// retrying a 503 under the same sequence (safe: the session answers a repeat from the first
/// application).
async fn spread_writer(
    cluster: Arc<TestCluster>,
    writer: usize,
    node: usize,
    writes: u64,
) -> Outcomes {
    let client_id = format!("spread-writer-{writer}");
    let mut outcomes = Outcomes::default();
    for sequence in 1..=writes {
        let key = format!("/v1/kv/writer-{writer}-{sequence}");
        let seq = sequence.to_string();
        let headers = [("client-id", client_id.as_str()), ("request-seq", &seq)];
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let (status, _, body) = cluster
                .request(node, "PUT", &key, &headers, seq.clone())
                .await;
            match status {
                200 => {
                    let answer: WriteResponse =
                        serde_json::from_slice(&body).expect("a write answer");
                    assert!(
                        outcomes.answered.insert(sequence, answer.index).is_none(),
                        "one answer per write"
                    );
                    break;
                }
                503 if tokio::time::Instant::now() < deadline => {
                    outcomes.transient += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                503 => {
                    outcomes.unknown.push(sequence);
                    break;
                }
                other => panic!(
                    "writer {writer}, write {sequence} on node {}: {other} {}",
                    node + 1,
                    String::from_utf8_lossy(&body)
                ),
            }
        }
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_writes_during_leadership_transfers_are_each_applied_once() {
    const WRITERS: usize = 6;
    const WRITES: u64 = 40;
    let cluster = Arc::new(TestCluster::start(3, &[]).await);
    cluster.wait_for_leader().await;

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            tokio::spawn(spread_writer(
                Arc::clone(&cluster),
                writer,
                writer % 3,
                WRITES,
            ))
        })
        .collect();
    // Leadership moves around the cluster while the writes go on.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let leader = cluster.wait_for_leader().await;
        let target = (leader + 1) % 3;
        cluster
            .client()
            .transfer_leader(target as u64 + 1)
            .await
            .expect("a leadership transfer");
        cluster.wait_until_leads(target).await;
    }
    let mut transient = 0;
    let mut unknown = 0;
    for (writer, handle) in writers.into_iter().enumerate() {
        let outcomes = handle.await.expect("the writer ran");
        transient += outcomes.transient;
        unknown += outcomes.unknown.len();
        assert_eq!(
            outcomes.answered.len() + outcomes.unknown.len(),
            WRITES as usize,
            "writer {writer}: every write answered or given up on"
        );
        // Every write answered took effect once: its key holds its value at version 1.
        for sequence in outcomes.answered.keys() {
            let (status, headers, body) = cluster
                .request(
                    writer % 3,
                    "GET",
                    &format!("/v1/kv/writer-{writer}-{sequence}"),
                    &[],
                    "",
                )
                .await;
            assert_eq!(
                (status, body),
                (200, Bytes::from(sequence.to_string())),
                "writer {writer}, write {sequence}"
            );
            assert_eq!(
                headers
                    .get(VERSION_HEADER)
                    .and_then(|value| value.to_str().ok()),
                Some("1"),
                "writer {writer}, write {sequence}: applied once"
            );
        }
    }
    println!("spread writes across transfers: {transient} transient answers, {unknown} unknown");
    assert_eq!(
        unknown, 0,
        "the retries under the same sequence settled every write"
    );
}
