//! Exactly-once writes: a write retried under the same client session is applied once and
//! answered with the first result, whether the client id is a number or an opaque text.

use bytes::Bytes;
use raftkv_client::api::Consistency;

use crate::common::error_of;
use crate::common::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_is_applied_once_and_answered_with_the_first_result() {
    let cluster = TestCluster::start(3, &[]).await;
    let follower = (cluster.wait_for_leader().await + 1) % 3;
    let session = [("client-id", "77"), ("request-seq", "1")];
    let (status, _, first) = cluster
        .request(follower, "POST", "/v1/kv/log/append", &session, "x")
        .await;
    assert_eq!(status, 200, "{first:?}");
    // The same request again (a client that did not see the answer retries) through another node.
    let (status, _, again) = cluster
        .request(
            (follower + 1) % 3,
            "POST",
            "/v1/kv/log/append",
            &session,
            "x",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again, first, "the retry is answered with the first result");
    let value = cluster
        .client()
        .get("log", Consistency::Linearizable)
        .await
        .expect("read");
    assert_eq!(value, Some(Bytes::from("x")), "applied once");
    let next = [("client-id", "77"), ("request-seq", "2")];
    let (status, _, _) = cluster
        .request(follower, "POST", "/v1/kv/log/append", &next, "y")
        .await;
    assert_eq!(status, 200);
    // An older sequence than the session's last is refused, not applied.
    let (status, _, body) = cluster
        .request(follower, "POST", "/v1/kv/log/append", &session, "z")
        .await;
    assert_eq!(status, 409, "{body:?}");
    let value = cluster
        .client()
        .get("log", Consistency::Linearizable)
        .await
        .expect("read");
    assert_eq!(value, Some(Bytes::from("xy")));
    // The Rust client's retries are safe the same way: each call is one application.
    let client = cluster.client();
    for _ in 0..5 {
        client.append("counter", "+").await.expect("append");
    }
    assert_eq!(
        client
            .get("counter", Consistency::Linearizable)
            .await
            .expect("read"),
        Some(Bytes::from("+++++"))
    );
}

/// HTTP clients have a UUID or a name at hand, not a 64-bit number: any opaque id of up to 128
/// visible ASCII characters is a session, with the same exactly-once guarantee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_under_a_uuid_client_id_is_applied_once() {
    let cluster = TestCluster::start(3, &[]).await;
    let follower = (cluster.wait_for_leader().await + 1) % 3;
    let uuid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    let session = [("client-id", uuid), ("request-seq", "1")];
    let (status, _, first) = cluster
        .request(follower, "POST", "/v1/kv/uuid-log/append", &session, "x")
        .await;
    assert_eq!(status, 200, "{first:?}");
    for node in [follower, (follower + 1) % 3, (follower + 2) % 3] {
        let (status, _, again) = cluster
            .request(node, "POST", "/v1/kv/uuid-log/append", &session, "x")
            .await;
        assert_eq!(status, 200, "{again:?}");
        assert_eq!(again, first, "the retry is answered with the first result");
    }
    // A client whose id differs only by case is another client: its append is applied.
    let other = [
        ("client-id", "3F2504E0-4F89-11D3-9A0C-0305E82C3301"),
        ("request-seq", "1"),
    ];
    let (status, _, _) = cluster
        .request(follower, "POST", "/v1/kv/uuid-log/append", &other, "y")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        cluster
            .client()
            .get("uuid-log", Consistency::Linearizable)
            .await
            .expect("read"),
        Some(Bytes::from("xy")),
        "each client's append applied once"
    );
    // An id outside the rule is refused with the rule.
    let (status, _, body) = cluster
        .request(
            follower,
            "PUT",
            "/v1/kv/k",
            &[("client-id", "no spaces please"), ("request-seq", "1")],
            "v",
        )
        .await;
    assert_eq!(status, 400);
    let error = error_of(&body).error;
    assert!(
        error.contains("client-id") && error.contains("1 to 128 visible ASCII characters"),
        "{error}"
    );
}
