//! Transactions on real nodes: comparisons on each target choose the branch, each operation's
//! result comes back at one revision, a transaction that changes a key twice is refused before
//! it is proposed, a retry under the same session is applied once, and a watcher gets a
//! transaction's changes together.

use raftkv_client::api::{EventType, TxnOpResult, TxnResponse};
use serde_json::json;

use crate::common::TestCluster;
use crate::sse::Watch;

async fn txn(
    cluster: &TestCluster,
    index: usize,
    headers: &[(&str, &str)],
    body: serde_json::Value,
) -> (u16, bytes::Bytes) {
    let (status, _, answer) = cluster
        .request(index, "POST", "/v1/txn", headers, body.to_string())
        .await;
    (status, answer)
}

async fn committed(cluster: &TestCluster, index: usize, body: serde_json::Value) -> TxnResponse {
    let (status, answer) = txn(cluster, index, &[], body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    serde_json::from_slice(&answer).expect("a TxnResponse")
}

/// The current revision, as node `index` reads it.
async fn revision(cluster: &TestCluster, index: usize) -> u64 {
    let (_, headers, _) = cluster.request(index, "GET", "/v1/kv/x", &[], "").await;
    headers
        .get("raftkv-revision")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .expect("a revision header")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparisons_on_every_target_choose_the_branch_and_each_result_comes_back() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let created = committed(
        &cluster,
        follower,
        json!({"success": [{"put": {"key": "k", "value": "v1"}}]}),
    )
    .await;
    assert!(created.succeeded, "no comparison: the success branch");
    let r1 = created.revision;
    // Value, then the branch's get sees its own put.
    let swapped = committed(
        &cluster,
        follower,
        json!({
            "compare": [{"key": "k", "op": "=", "value": "v1"}],
            "success": [{"put": {"key": "k", "value": "v2"}}, {"get": {"key": "k"}}],
            "failure": [{"get": {"key": "k"}}],
        }),
    )
    .await;
    assert!(swapped.succeeded);
    assert_eq!(swapped.revision, r1 + 1, "one revision for the transaction");
    let [TxnOpResult::Put { prev: Some(prev) }, TxnOpResult::Get { kv: Some(now) }] =
        &swapped.results[..]
    else {
        panic!("a put then a get: {:?}", swapped.results);
    };
    assert_eq!(prev.value.as_deref(), Some("v1"));
    assert_eq!((prev.mod_revision, prev.version), (r1, 1));
    assert_eq!(now.value.as_deref(), Some("v2"));
    assert_eq!(
        (now.create_revision, now.mod_revision, now.version),
        (r1, r1 + 1, 2)
    );
    // Each target, holding: version, create revision, mod revision, existence, absence.
    let holding = [
        json!({"key": "k", "op": "=", "version": 2}),
        json!({"key": "k", "op": "<", "version": 3}),
        json!({"key": "k", "op": "=", "create_revision": r1}),
        json!({"key": "k", "op": ">", "mod_revision": r1}),
        json!({"key": "k", "op": "!=", "value": "v1"}),
        json!({"key": "k", "op": "=", "value_base64": "djI="}),
        json!({"key": "k", "op": "=", "exists": true}),
        json!({"key": "none", "op": "=", "version": 0}),
        json!({"key": "none", "op": "!=", "exists": true}),
    ];
    for compare in holding {
        let read = committed(
            &cluster,
            leader,
            json!({"compare": [compare], "success": [{"get": {"key": "k"}}]}),
        )
        .await;
        assert!(read.succeeded, "{compare} holds");
        assert_eq!(
            read.revision,
            r1 + 1,
            "a read-only transaction changes nothing"
        );
    }
    // And failing: the failure branch runs, and a missing key fails every value comparison.
    let failing = [
        json!({"key": "k", "op": ">", "version": 2}),
        json!({"key": "k", "op": "!=", "create_revision": r1}),
        json!({"key": "k", "op": "<", "mod_revision": r1 + 1}),
        json!({"key": "k", "op": "=", "exists": false}),
        json!({"key": "none", "op": "!=", "value": "anything"}),
    ];
    for compare in failing {
        let read = committed(
            &cluster,
            leader,
            json!({
                "compare": [{"key": "k", "op": "=", "version": 2}, compare],
                "success": [{"delete": {"key": "k"}}],
                "failure": [{"get": {"key": "none"}}],
            }),
        )
        .await;
        assert!(!read.succeeded, "{compare} fails");
        assert_eq!(read.results, [TxnOpResult::Get { kv: None }]);
    }
    // Deletes and scans: a delete_prefix, then a scan that sees it.
    for key in ["p/1", "p/2", "q"] {
        committed(
            &cluster,
            leader,
            json!({"success": [{"put": {"key": key, "value": key}}]}),
        )
        .await;
    }
    let cleared = committed(
        &cluster,
        follower,
        json!({"success": [
            {"delete_prefix": {"prefix": "p/"}},
            {"delete": {"key": "q"}},
            {"delete": {"key": "absent"}},
            {"scan": {"prefix": "", "limit": 10}},
        ]}),
    )
    .await;
    let [TxnOpResult::Delete { deleted: 2 }, TxnOpResult::Delete { deleted: 1 }, TxnOpResult::Delete { deleted: 0 }, TxnOpResult::Scan {
        items,
        truncated: false,
    }] = &cleared.results[..]
    else {
        panic!("three deletes and a scan: {:?}", cleared.results);
    };
    let keys: Vec<&str> = items.iter().map(|item| item.key.as_str()).collect();
    assert_eq!(keys, ["k"], "the scan sees the deletes before it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_can_never_run_is_refused_before_anything_is_proposed() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let before = revision(&cluster, leader).await;
    let refused = [
        (
            json!({"success": [{"put": {"key": "a", "value": "1"}}, {"put": {"key": "a", "value": "2"}}]}),
            "twice",
        ),
        (
            json!({"failure": [{"put": {"key": "p/a", "value": "1"}}, {"delete_prefix": {"prefix": "p/"}}]}),
            "twice",
        ),
        (
            json!({"success": [{"delete_prefix": {"prefix": ""}}]}),
            "empty prefix",
        ),
        (
            json!({"compare": [{"key": "a", "op": "<", "exists": true}]}),
            "= or !=",
        ),
        (
            json!({"success": [{"put": {"key": "a", "value": "1", "value_base64": "MQ=="}}]}),
            "exactly one",
        ),
        (
            json!({"success": [{"put": {"key": "a", "value_base64": "%%"}}]}),
            "base64",
        ),
        (
            json!({"success": [{"put": {"key": "", "value": "1"}}]}),
            "empty",
        ),
        (
            json!({"success": [{"scan": {"prefix": "", "limit": 0}}]}),
            "limit",
        ),
        (
            json!({"compare": [{"key": "a", "op": "~", "version": 1}]}),
            "JSON",
        ),
        (json!({"compare": [{"key": "a", "op": "="}]}), "JSON"),
    ];
    for (body, rule) in refused {
        let (status, answer) = txn(&cluster, follower, &[], body.clone()).await;
        assert_eq!(status, 400, "{body}: {}", String::from_utf8_lossy(&answer));
        let error = crate::common::error_of(&answer).error;
        assert!(error.contains(rule), "{body}: {error}");
    }
    assert_eq!(
        revision(&cluster, leader).await,
        before,
        "nothing was applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_transaction_is_applied_once_and_answered_with_the_first_result() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let session = [("client-id", "txn-client"), ("request-seq", "1")];
    let increment = json!({
        "compare": [{"key": "n", "op": "=", "version": 0}],
        "success": [{"put": {"key": "n", "value": "1"}}],
        "failure": [{"put": {"key": "n", "value": "again"}}],
    });
    let (status, first) = txn(&cluster, (leader + 1) % 3, &session, increment.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    // The same request again, as a client that lost the answer retries, through each node.
    for index in 0..3 {
        let (status, again) = txn(&cluster, index, &session, increment.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(again, first, "the first answer, not a second application");
    }
    let first: TxnResponse = serde_json::from_slice(&first).expect("JSON");
    assert!(first.succeeded);
    assert_eq!(
        revision(&cluster, leader).await,
        first.revision,
        "applied once"
    );
    let (status, _, value) = cluster.request(leader, "GET", "/v1/kv/n", &[], "").await;
    assert_eq!((status, &value[..]), (200, &b"1"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_gets_a_transactions_changes_together_in_its_order() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let first = committed(
        &cluster,
        leader,
        json!({"success": [{"put": {"key": "t/c", "value": "old"}}]}),
    )
    .await;
    // From the revision after the first transaction: a watch "from now" on a follower that
    // has not applied it yet would begin with it.
    let query = format!("prefix=t/&start_revision={}", first.revision + 1);
    let mut watch = Watch::open(&cluster, (leader + 2) % 3, &query, &[])
        .await
        .expect("opens");
    let together = committed(
        &cluster,
        leader,
        json!({"success": [
            {"put": {"key": "t/b", "value": "2"}},
            {"delete": {"key": "t/c"}},
            {"put": {"key": "u", "value": "not watched"}},
            {"put": {"key": "t/a", "value": "1"}},
        ]}),
    )
    .await;
    let events = watch.next_events().await;
    assert_eq!(events.revision, together.revision);
    let seen: Vec<(EventType, &str)> = events
        .events
        .iter()
        .map(|event| (event.kind, event.kv.key.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (EventType::Put, "t/b"),
            (EventType::Delete, "t/c"),
            (EventType::Put, "t/a"),
        ],
        "one message, the transaction's order, the watched keys only"
    );
    assert!(events
        .events
        .iter()
        .all(|event| event.kv.mod_revision == together.revision));
}
