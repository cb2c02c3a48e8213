//! Leases on a real three-node cluster, one test per guarantee: a lease's life (grant, keys put
//! with it, time to live and keys, list, revoke deleting every key at one revision, seen by a
//! watcher as one batch); the refusals (a missing lease 404, a TTL above the maximum 400, an
//! id taken 409); expiry not before the TTL and within the bound; keepalives through a
//! follower; and a lease kept alive across a leader's SIGKILL and a leadership transfer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use raftkv_client::api::{
    EventType, KeyValueResponse, LeaseErrorResponse, LeaseGrantResponse, LeaseKeepAliveResponse,
    LeaseListResponse, LeaseRevokeResponse, LeaseTimeToLiveResponse, TxnResponse,
};
use serde::de::DeserializeOwned;

use crate::common::{wait_for, TestCluster};
use crate::sse::Watch;

fn json<T: DeserializeOwned>(body: &[u8]) -> T {
    serde_json::from_slice(body).unwrap_or_else(|error| {
        panic!("{error}: {}", String::from_utf8_lossy(body));
    })
}

/// Grants a lease of `ttl_seconds` (and `id`, if given) through node `index`.
async fn grant(
    cluster: &TestCluster,
    index: usize,
    ttl_seconds: u64,
    id: Option<u64>,
) -> (u16, Bytes) {
    let body = match id {
        Some(id) => format!(r#"{{"ttl_seconds": {ttl_seconds}, "id": {id}}}"#),
        None => format!(r#"{{"ttl_seconds": {ttl_seconds}}}"#),
    };
    let (status, _, answer) = cluster
        .request(index, "POST", "/v1/lease/grant", &[], body)
        .await;
    (status, answer)
}

async fn granted(cluster: &TestCluster, index: usize, ttl_seconds: u64) -> LeaseGrantResponse {
    let (status, body) = grant(cluster, index, ttl_seconds, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    json(&body)
}

/// Puts `key` = `value` with `lease` through node `index`: status and body.
async fn put_with_lease(
    cluster: &TestCluster,
    index: usize,
    key: &str,
    lease: u64,
) -> (u16, Bytes) {
    let path = format!("/v1/kv/{}?lease={lease}", key.replace('/', "%2F"));
    let (status, _, body) = cluster
        .request(index, "PUT", &path, &[], format!("value of {key}"))
        .await;
    (status, body)
}

/// The key as a linearizable JSON read through node `index` sees it (`None`: absent).
async fn read(
    cluster: &TestCluster,
    index: usize,
    key: &str,
) -> Option<raftkv_client::api::VersionedKeyValue> {
    let path = format!("/v1/kv/{key}?format=json");
    let (status, _, body) = cluster.request(index, "GET", &path, &[], "").await;
    match status {
        200 => json::<KeyValueResponse>(&body).kv,
        404 => None,
        other => panic!("GET {key}: {other} {}", String::from_utf8_lossy(&body)),
    }
}

async fn keep_alive(
    cluster: &TestCluster,
    index: usize,
    ids: &[u64],
) -> Result<LeaseKeepAliveResponse, String> {
    let body = serde_json::json!({ "ids": ids }).to_string();
    let (status, _, answer) = cluster
        .try_request(index, "POST", "/v1/lease/keepalive", &[], body)
        .await?;
    match status {
        200 => Ok(json(&answer)),
        other => Err(format!("{other} {}", String::from_utf8_lossy(&answer))),
    }
}

async fn time_to_live(cluster: &TestCluster, index: usize, id: u64) -> (u16, Bytes) {
    let path = format!("/v1/lease/{id}?keys=true");
    let (status, _, body) = cluster.request(index, "GET", &path, &[], "").await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_s_keys_are_listed_and_its_revoke_deletes_them_all_at_one_revision() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    // Granted through a follower (forwarded): the leader picks an id safe in JavaScript.
    let lease = granted(&cluster, follower, 60).await;
    assert!((1..=1 << 53).contains(&lease.id), "{}", lease.id);
    assert_eq!(lease.ttl_seconds, 60);
    let other = granted(&cluster, leader, 60).await;
    assert_ne!(lease.id, other.id);
    for key in ["svc/c", "svc/a", "svc/b"] {
        let (status, body) = put_with_lease(&cluster, follower, key, lease.id).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let (status, body) = put_with_lease(&cluster, leader, "svc/other", other.id).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let kv = read(&cluster, follower, "svc%2Fa").await.expect("put");
    assert_eq!(kv.lease, lease.id, "every version carries its lease");

    // Time to live and keys, through a follower (the leader answers).
    let (status, body) = time_to_live(&cluster, follower, lease.id).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let ttl: LeaseTimeToLiveResponse = json(&body);
    assert_eq!(ttl.granted_ttl_seconds, 60);
    assert!((50..=60).contains(&ttl.ttl_seconds), "{ttl:?}");
    assert_eq!(
        ttl.keys.as_deref(),
        Some(&["svc/a".to_string(), "svc/b".into(), "svc/c".into()][..])
    );
    let (_, _, body) = cluster
        .request(follower, "GET", "/v1/leases", &[], "")
        .await;
    let list: LeaseListResponse = json(&body);
    let mut both = vec![lease.id, other.id];
    both.sort_unstable();
    assert_eq!(list.ids, both);

    // A watcher sees the revoke's deletes together, at the revoke's revision.
    let start = list.revision + 1;
    let query = format!("prefix=svc/&start_revision={start}");
    let mut watch = Watch::open(&cluster, follower, &query, &[])
        .await
        .expect("the watch opens");
    let body = format!(r#"{{"id": {}}}"#, lease.id);
    let (status, _, answer) = cluster
        .request(follower, "POST", "/v1/lease/revoke", &[], body.clone())
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let revoked: LeaseRevokeResponse = json(&answer);
    assert_eq!(revoked.keys_deleted, 3);
    let events = watch.next_events().await;
    assert_eq!(events.revision, revoked.revision, "one revision for all");
    let deleted: Vec<&str> = events
        .events
        .iter()
        .map(|event| {
            assert_eq!(event.kind, EventType::Delete);
            event.kv.key.as_str()
        })
        .collect();
    assert_eq!(deleted, ["svc/a", "svc/b", "svc/c"], "in key order");
    for key in ["svc%2Fa", "svc%2Fb", "svc%2Fc"] {
        assert!(read(&cluster, leader, key).await.is_none(), "{key} deleted");
    }
    assert!(read(&cluster, leader, "svc%2Fother").await.is_some());

    // Gone: its time to live, a second revoke and a put with it are 404.
    let (status, body) = time_to_live(&cluster, follower, lease.id).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json::<LeaseErrorResponse>(&body).id, lease.id);
    let (status, _, _) = cluster
        .request(leader, "POST", "/v1/lease/revoke", &[], body_of(lease.id))
        .await;
    assert_eq!(status, 404);
    let (_, _, body) = cluster.request(leader, "GET", "/v1/leases", &[], "").await;
    assert_eq!(json::<LeaseListResponse>(&body).ids, vec![other.id]);
    // The other lease's revoke takes its own key.
    let (status, _, answer) = cluster
        .request(leader, "POST", "/v1/lease/revoke", &[], body_of(other.id))
        .await;
    assert_eq!(status, 200);
    let emptied: LeaseRevokeResponse = json(&answer);
    assert_eq!(emptied.keys_deleted, 1, "svc/other");
}

fn body_of(id: u64) -> String {
    format!(r#"{{"id": {id}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_lease_a_ttl_too_long_and_a_taken_id_are_refused() {
    let cluster = TestCluster::start(3, &["--lease-ttl-max-seconds", "100"]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 2) % 3;
    // Above the maximum: 400; below the minimum: raised to it.
    let (status, body) = grant(&cluster, follower, 101, None).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(json::<LeaseErrorResponse>(&body).error.contains("100"));
    let (status, body) = grant(&cluster, follower, 1, Some(77)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        json::<LeaseGrantResponse>(&body).ttl_seconds,
        2,
        "the minimum"
    );
    let (status, body) = grant(&cluster, leader, 30, Some(77)).await;
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json::<LeaseErrorResponse>(&body).id, 77);
    let (status, _) = grant(&cluster, leader, 30, Some(0)).await;
    assert_eq!(status, 400, "id 0 means no lease");
    let (status, _) = grant(&cluster, leader, 30, Some(1 << 63)).await;
    assert_eq!(status, 400, "above i64::MAX");

    // A put naming a missing lease changes nothing.
    let (status, _, _) = cluster
        .request(leader, "PUT", "/v1/kv/kept", &[], "before")
        .await;
    assert_eq!(status, 200);
    let (status, body) = put_with_lease(&cluster, follower, "kept", 4242).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json::<LeaseErrorResponse>(&body).id, 4242);
    let kv = read(&cluster, leader, "kept").await.expect("still there");
    assert_eq!((kv.value.as_deref(), kv.lease), (Some("before"), 0));

    // A transaction whose chosen branch puts with a missing lease: 404, nothing ran; the
    // other branch's missing lease does not matter; a comparison of a key's lease works.
    let txn = |compare_lease: u64, put_lease: u64| {
        serde_json::json!({
            "compare": [{"key": "kept", "op": "=", "lease": compare_lease}],
            "success": [{"put": {"key": "kept", "value": "after", "lease": put_lease}}],
            "failure": [{"put": {"key": "other", "value": "x", "lease": 4242}}],
        })
        .to_string()
    };
    let (status, _, body) = cluster
        .request(follower, "POST", "/v1/txn", &[], txn(0, 4242))
        .await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        read(&cluster, leader, "kept")
            .await
            .expect("kept")
            .value
            .as_deref(),
        Some("before")
    );
    let (status, _, body) = cluster
        .request(follower, "POST", "/v1/txn", &[], txn(0, 77))
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(json::<TxnResponse>(&body).succeeded);
    assert_eq!(
        read(&cluster, leader, "kept").await.expect("kept").lease,
        77
    );
    let (status, _, body) = cluster
        .request(follower, "POST", "/v1/txn", &[], txn(77, 77))
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        json::<TxnResponse>(&body).succeeded,
        "the key's lease is 77"
    );

    // A keepalive of a missing lease answers 0 and renews nothing; the existing one its TTL.
    let answer = keep_alive(&cluster, follower, &[4242, 77])
        .await
        .expect("answered");
    let ttls: Vec<(u64, u64)> = answer
        .leases
        .iter()
        .map(|l| (l.id, l.ttl_seconds))
        .collect();
    assert_eq!(ttls, [(4242, 0), (77, 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_kept_alive_through_a_follower_lives_and_expires_within_the_bound_after() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let ttl = Duration::from_secs(2);
    let lease = granted(&cluster, follower, 2).await;
    let (status, _) = put_with_lease(&cluster, follower, "alive", lease.id).await;
    assert_eq!(status, 200);
    // Kept alive through the follower (forwarded) for three TTLs: the key stays.
    let until = Instant::now() + ttl * 3;
    let mut last_sent = Instant::now();
    while Instant::now() < until {
        let sent = Instant::now();
        let answer = keep_alive(&cluster, follower, &[lease.id])
            .await
            .expect("answered");
        assert_eq!(answer.leases[0].ttl_seconds, 2);
        last_sent = sent;
        assert!(read(&cluster, follower, "alive").await.is_some());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Stopped: the key goes no earlier than TTL after the last acknowledged keepalive was
    // sent, and within the documented bound (TTL + a scan + a commit; a second of slack for a
    // loaded test machine).
    let gone_at = wait_for("the lease expires", || async {
        read(&cluster, leader, "alive")
            .await
            .is_none()
            .then(Instant::now)
    })
    .await;
    let lived = gone_at - last_sent;
    assert!(lived >= ttl, "expired after {lived:?}, before its TTL");
    assert!(
        lived <= ttl + Duration::from_millis(1100),
        "expired after {lived:?}"
    );
    let (status, _) = time_to_live(&cluster, leader, lease.id).await;
    assert_eq!(status, 404, "the lease went with its key");
    let expired = cluster
        .metric(leader, "raftkv_kv_leases_expired_total")
        .await;
    assert!(expired >= 1.0, "{expired}");
    let promoted = cluster.metric(leader, "raftkv_kv_lessor_promoted").await;
    assert_eq!(promoted, 1.0);
    let promoted = cluster.metric(follower, "raftkv_kv_lessor_promoted").await;
    assert_eq!(promoted, 0.0);
}

/// POSTs `body` to `path` at `endpoint`: the body of a 200 answer, else `None` (a 503, a
/// dead node).
async fn post(
    http: &HttpClient<HttpConnector, Full<Bytes>>,
    endpoint: &str,
    path: &str,
    body: &str,
) -> Option<Bytes> {
    let request = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{endpoint}{path}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a valid request");
    let response = tokio::time::timeout(Duration::from_secs(5), http.request(request))
        .await
        .ok()?
        .ok()?;
    let status = response.status();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    (status == 200).then_some(body)
}

/// What the keepalive task saw: when each acknowledged keepalive was sent.
#[derive(Default)]
struct Acknowledged {
    last_sent: Option<Instant>,
    count: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_kept_alive_survives_a_leader_kill_and_a_transfer() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let first_leader = cluster.wait_for_leader().await;
    let watched = (first_leader + 1) % 3;
    let ttl = Duration::from_secs(3);
    let lease = granted(&cluster, watched, 3).await;
    let (status, body) = put_with_lease(&cluster, watched, "held", lease.id).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let created = json::<raftkv_client::api::WriteResponse>(&body).revision;
    let query = format!("key=held&start_revision={}", created + 1);
    let mut watch = Watch::open(&cluster, watched, &query, &[])
        .await
        .expect("the watch opens");

    // A keepalive every 500 ms, through each node in turn (a dead one fails), as a client
    // would; only answers with the lease alive are acknowledgements.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let endpoints = cluster.endpoints();
    let keeper = {
        let (stop, acknowledged, id) = (Arc::clone(&stop), Arc::clone(&acknowledged), lease.id);
        tokio::spawn(async move {
            let http = HttpClient::builder(TokioExecutor::new()).build(HttpConnector::new());
            let body = serde_json::json!({ "ids": [id] }).to_string();
            let mut turn = 0usize;
            while !stop.load(Ordering::Acquire) {
                let sent = Instant::now();
                let endpoint = &endpoints[turn % endpoints.len()];
                if let Some(answer) = post(&http, endpoint, "/v1/lease/keepalive", &body).await {
                    let answer: LeaseKeepAliveResponse = json(&answer);
                    assert_ne!(
                        answer.leases[0].ttl_seconds, 0,
                        "the lease was lost while kept alive"
                    );
                    let mut seen = acknowledged.lock().expect("not poisoned");
                    seen.last_sent = Some(sent);
                    seen.count += 1;
                }
                turn += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let acknowledgements = || acknowledged.lock().expect("not poisoned").count;
    wait_for("keepalives are acknowledged", || async {
        (acknowledgements() >= 2).then_some(())
    })
    .await;

    // The leader is killed; the lease lives on under the next one.
    cluster.kill(first_leader);
    // The survivors name the dead leader until one of them is elected.
    let second_leader = wait_for("a new leader", || async {
        let leader = cluster.wait_for_leader().await;
        (leader != first_leader).then_some(leader)
    })
    .await;
    let before = acknowledgements();
    wait_for("keepalives are acknowledged by the new leader", || async {
        (acknowledgements() >= before + 3).then_some(())
    })
    .await;
    // Leadership moves to the other live node; still alive.
    let target = (0..3)
        .find(|node| *node != first_leader && *node != second_leader)
        .expect("a third node");
    let body = format!(r#"{{"to": {}}}"#, target + 1);
    wait_for("the transfer is accepted", || {
        let (cluster, body) = (&cluster, body.clone());
        async move {
            let (status, _, _) = cluster
                .try_request(second_leader, "POST", "/v1/leader/transfer", &[], body)
                .await
                .ok()?;
            (status == 204).then_some(())
        }
    })
    .await;
    cluster.wait_until_leads(target).await;
    let before = acknowledgements();
    wait_for("keepalives are acknowledged after the transfer", || async {
        (acknowledgements() >= before + 3).then_some(())
    })
    .await;
    assert!(read(&cluster, target, "held").await.is_some(), "kept alive");

    // Stopped: it expires, and the watch saw no delete before (only the expiry's).
    stop.store(true, Ordering::Release);
    keeper.await.expect("the keeper ends cleanly");
    let last_sent = acknowledged
        .lock()
        .expect("not poisoned")
        .last_sent
        .expect("acknowledged");
    let events = watch.next_events().await;
    let deleted_at = Instant::now();
    assert_eq!(events.events.len(), 1);
    assert_eq!(events.events[0].kind, EventType::Delete, "{events:?}");
    assert!(
        deleted_at - last_sent >= ttl,
        "deleted {:?} after the last acknowledged keepalive was sent",
        deleted_at - last_sent
    );
}

/// etcd's lease checkpoints: a leader records how much of each lease's TTL is left, so a
/// lease nobody keeps alive still expires after a leader change, from what was left rather
/// than from a full TTL again (and never before its TTL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_expires_a_lease_from_its_checkpoint_not_a_full_ttl() {
    let mut cluster = TestCluster::start(3, &["--lease-checkpoint-interval", "1s"]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let ttl = Duration::from_secs(10);
    let sent = Instant::now();
    let lease = granted(&cluster, follower, 10).await;
    let (status, _) = put_with_lease(&cluster, follower, "checkpointed", lease.id).await;
    assert_eq!(status, 200);
    wait_for("a checkpoint of the lease is proposed", || async {
        let proposed = cluster
            .metric(leader, "raftkv_kv_lease_checkpoints_proposed_total")
            .await;
        (proposed >= 2.0).then_some(())
    })
    .await;
    // Half its TTL used: the leader dies.
    tokio::time::sleep_until((sent + ttl / 2).into()).await;
    let killed_at = Instant::now();
    cluster.kill(leader);
    let gone_at = wait_for("the lease expires under the new leader", || async {
        let survivor = cluster.wait_for_leader().await;
        let path = "/v1/kv/checkpointed?consistency=linearizable";
        let answer = cluster.try_request(survivor, "GET", path, &[], "").await;
        matches!(answer, Ok((404, _, _))).then(Instant::now)
    })
    .await;
    assert!(
        gone_at - sent >= ttl,
        "deleted {:?} after the grant was sent, before its TTL",
        gone_at - sent
    );
    // From a full TTL again it would live at least 10.6 s after the kill; from the checkpoint
    // (at most 6 s left, a second old), an election and an election timeout add about 2 s.
    assert!(
        gone_at - killed_at < Duration::from_millis(9_500),
        "deleted {:?} after the leader's kill: the checkpoint was not used",
        gone_at - killed_at
    );
}
