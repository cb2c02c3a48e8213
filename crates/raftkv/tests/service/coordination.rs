//! Revisions on real nodes: write answers and read headers carry them, reads at a past
//! revision see the whole store as it was (one key, a prefix scan), compaction refuses what it
//! removed and names the oldest revision left, and the leader compacts by retention by
//! itself.

use raftkv_client::api::{
    CompactResponse, KeyValueResponse, RevisionErrorResponse, ScanResponse, WriteResponse,
};

use crate::common::{wait_for, TestCluster};

async fn put(cluster: &TestCluster, index: usize, key: &str, value: &str) -> WriteResponse {
    let (status, headers, body) = cluster
        .request(index, "PUT", &key_path(key), &[], value.to_owned())
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: WriteResponse = serde_json::from_slice(&body).expect("a WriteResponse");
    assert_eq!(
        header(&headers, "raftkv-revision"),
        Some(answer.revision),
        "the header and the body agree"
    );
    answer
}

/// The path of `key` (one percent-encoded segment).
fn key_path(key: &str) -> String {
    format!("/v1/kv/{}", key.replace('/', "%2F"))
}

fn header(headers: &hyper::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> T {
    serde_json::from_slice(body).unwrap_or_else(|error| {
        panic!("JSON expected ({error}): {}", String::from_utf8_lossy(body))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_carry_revisions_and_a_past_revision_reads_the_whole_store_as_it_was() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let created = put(&cluster, leader, "acct/a", "10").await;
    let b = put(&cluster, leader, "acct/b", "20").await;
    assert_eq!(b.revision, created.revision + 1, "one revision per change");
    let both = b.revision;
    // A transfer made of two writes; the scan at `both` still sees the pair before it.
    let first = put(&cluster, leader, "acct/a", "5").await;
    let second = put(&cluster, leader, "acct/b", "25").await;
    // An unchanged delete changes nothing: no revision.
    let (status, _, body) = cluster
        .request(leader, "DELETE", "/v1/kv/acct%2Fnone", &[], "")
        .await;
    assert_eq!(status, 200);
    let nothing: raftkv_client::api::DeleteResponse = json(&body);
    assert_eq!(nothing.revision, second.revision);

    // The plain value with its revisions in headers, from a follower.
    let (status, headers, body) = cluster
        .request(follower, "GET", "/v1/kv/acct%2Fa", &[], "")
        .await;
    assert_eq!((status, &body[..]), (200, &b"5"[..]));
    assert_eq!(header(&headers, "raftkv-revision"), Some(second.revision));
    assert_eq!(
        header(&headers, "raftkv-create-revision"),
        Some(created.revision)
    );
    assert_eq!(
        header(&headers, "raftkv-mod-revision"),
        Some(first.revision)
    );
    assert_eq!(header(&headers, "raftkv-version"), Some(2));
    // The JSON form, now and at a past revision.
    let (status, _, body) = cluster
        .request(follower, "GET", "/v1/kv/acct%2Fa?format=json", &[], "")
        .await;
    assert_eq!(status, 200);
    let now: KeyValueResponse = json(&body);
    let kv = now.kv.expect("exists");
    assert_eq!(kv.value.as_deref(), Some("5"));
    assert_eq!((kv.version, kv.mod_revision), (2, first.revision));
    let path = format!("/v1/kv/acct%2Fa?format=json&revision={both}");
    let (status, _, body) = cluster.request(follower, "GET", &path, &[], "").await;
    assert_eq!(status, 200);
    let then: KeyValueResponse = json(&body);
    assert_eq!(then.revision, both);
    assert_eq!(then.kv.expect("existed").value.as_deref(), Some("10"));
    // Before the key existed: 404 with the JSON body.
    let path = format!("/v1/kv/acct%2Fb?format=json&revision={}", created.revision);
    let (status, _, body) = cluster.request(follower, "GET", &path, &[], "").await;
    assert_eq!(status, 404);
    assert_eq!(json::<KeyValueResponse>(&body).kv, None);

    // A prefix scan at each revision sees a consistent pair.
    for (revision, expected) in [
        (both, ["10", "20"]),
        (first.revision, ["5", "20"]),
        (second.revision, ["5", "25"]),
    ] {
        let path = format!("/v1/kv?prefix=acct/&revision={revision}");
        let (status, headers, body) = cluster.request(follower, "GET", &path, &[], "").await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let scan: ScanResponse = json(&body);
        assert_eq!(scan.revision, revision);
        assert_eq!(header(&headers, "raftkv-revision"), Some(revision));
        let values: Vec<&str> = scan
            .items
            .iter()
            .map(|item| item.value.as_deref().expect("text"))
            .collect();
        assert_eq!(values, expected, "at {revision}");
        assert!(scan.items.iter().all(|item| item.mod_revision <= revision));
    }
    // The future is refused (400), naming the current revision.
    let path = format!("/v1/kv/acct%2Fa?revision={}", second.revision + 100);
    let (status, _, body) = cluster.request(follower, "GET", &path, &[], "").await;
    assert_eq!(status, 400);
    let error: RevisionErrorResponse = json(&body);
    assert_eq!(error.revision, second.revision);
    let (status, _, _) = cluster
        .request(follower, "GET", "/v1/kv/acct%2Fa?revision=0", &[], "")
        .await;
    assert_eq!(status, 400);
    let (status, _, _) = cluster
        .request(follower, "GET", "/v1/kv/acct%2Fa?format=xml", &[], "")
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_below_the_compaction_fails_naming_the_oldest_revision_left() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let mut revisions = Vec::new();
    for round in 0..5 {
        revisions.push(
            put(&cluster, leader, "c", &round.to_string())
                .await
                .revision,
        );
    }
    let compact_at = revisions[3];
    // Through a follower: forwarded to the leader like any write.
    let (status, _, body) = cluster
        .request(
            follower,
            "POST",
            "/v1/compact",
            &[],
            format!("{{\"revision\": {compact_at}}}"),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let compacted: CompactResponse = json(&body);
    assert_eq!(compacted.compact_revision, compact_at);
    assert_eq!(compacted.revision, revisions[4]);
    let path = format!("/v1/kv/c?revision={}", revisions[1]);
    let (status, _, body) = cluster.request(follower, "GET", &path, &[], "").await;
    assert_eq!(status, 410, "{}", String::from_utf8_lossy(&body));
    let error: RevisionErrorResponse = json(&body);
    assert_eq!(error.compact_revision, compact_at);
    assert_eq!(error.revision, revisions[4]);
    assert!(
        error.error.contains(&compact_at.to_string()),
        "{}",
        error.error
    );
    let path = format!("/v1/kv?prefix=c&revision={}", revisions[2]);
    let (status, _, _) = cluster.request(follower, "GET", &path, &[], "").await;
    assert_eq!(status, 410);
    // The compaction revision itself stays readable.
    let path = format!("/v1/kv/c?revision={compact_at}");
    let (status, _, body) = cluster.request(follower, "GET", &path, &[], "").await;
    assert_eq!((status, &body[..]), (200, &b"3"[..]));
    // Compacting the future is refused; compacting less than done is a no-op.
    let future = format!("{{\"revision\": {}}}", revisions[4] + 10);
    let (status, _, body) = cluster
        .request(leader, "POST", "/v1/compact", &[], future)
        .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let _: RevisionErrorResponse = json(&body);
    let (status, _, body) = cluster
        .request(leader, "POST", "/v1/compact", &[], "{\"revision\": 2}")
        .await;
    assert_eq!(status, 200);
    assert_eq!(json::<CompactResponse>(&body).compact_revision, compact_at);
    for bad in ["{\"revision\": 0}", "{}", "not json"] {
        let (status, _, _) = cluster
            .request(leader, "POST", "/v1/compact", &[], bad)
            .await;
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_compacts_the_history_to_the_revisions_retained() {
    let cluster = TestCluster::start(3, &["--history-retention-revisions", "10"]).await;
    let leader = cluster.wait_for_leader().await;
    let mut last = 0;
    for round in 0..40 {
        last = put(&cluster, leader, &format!("r/{}", round % 3), "x")
            .await
            .revision;
    }
    // Every node applies the leader's compaction: the last ten revisions (at least) stay.
    for index in 0..3 {
        let compact_revision = wait_for("the history is compacted by retention", || async {
            let compact_revision = cluster.metric(index, "raftkv_kv_compact_revision").await as u64;
            (compact_revision + 16 > last).then_some(compact_revision)
        })
        .await;
        assert!(
            compact_revision <= last - 9,
            "ten revisions kept: {compact_revision}"
        );
        let path = format!("/v1/kv?prefix=r/&revision={}", last - 9);
        let (status, _, body) = cluster.request(index, "GET", &path, &[], "").await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let path = format!("/v1/kv?prefix=r/&revision={}", compact_revision - 1);
        let (status, _, _) = cluster.request(index, "GET", &path, &[], "").await;
        assert_eq!(status, 410);
    }
    let versions = cluster.metric(leader, "raftkv_kv_history_versions").await;
    assert!(
        versions <= 16.0 + 3.0,
        "history bounded: {versions} versions"
    );
}
