//! Bad input of every kind gets its documented status and a JSON error, and the node stays
//! healthy.

use std::time::Duration;

use bytes::Bytes;
use raftkv_client::api::{StatusResponse, WriteResponse};

use crate::common::error_of;
use crate::common::TestCluster;

/// Method, path, headers, body and the status it must get.
type BadRequest = (
    &'static str,
    String,
    Vec<(&'static str, &'static str)>,
    Bytes,
    u16,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_status_and_the_node_stays_healthy() {
    let cluster = TestCluster::start(3, &[]).await;
    let node = (cluster.wait_for_leader().await + 1) % 3;
    let long_key = "k".repeat(5000);
    let big_value = Bytes::from(vec![b'v'; 1024 * 1024 + 1]);
    let too_long_client_id: &'static str = Box::leak("c".repeat(129).into_boxed_str());
    let cases: Vec<BadRequest> = vec![
        ("PUT", "/v1/kv/".into(), vec![], Bytes::from("x"), 400),
        (
            "PUT",
            format!("/v1/kv/{long_key}"),
            vec![],
            Bytes::from("x"),
            413,
        ),
        ("PUT", "/v1/kv/big".into(), vec![], big_value, 413),
        ("GET", "/v1/kv/missing".into(), vec![], Bytes::new(), 404),
        (
            "GET",
            "/v1/kv/a?consistency=psychic".into(),
            vec![],
            Bytes::new(),
            400,
        ),
        (
            "PUT",
            "/v1/kv/a".into(),
            vec![("client-id", too_long_client_id), ("request-seq", "1")],
            Bytes::from("v"),
            400,
        ),
        (
            "PUT",
            "/v1/kv/a".into(),
            vec![("client-id", "two words"), ("request-seq", "1")],
            Bytes::from("v"),
            400,
        ),
        (
            "PUT",
            "/v1/kv/a".into(),
            vec![("client-id", "a"), ("request-seq", "x")],
            Bytes::from("v"),
            400,
        ),
        (
            "PUT",
            "/v1/kv/a".into(),
            vec![("client-id", "1")],
            Bytes::from("v"),
            400,
        ),
        (
            "PUT",
            "/v1/kv/a".into(),
            vec![("client-id", "1"), ("request-seq", "0")],
            Bytes::from("v"),
            400,
        ),
        (
            "POST",
            "/v1/kv/a/cas".into(),
            vec![],
            Bytes::from("{not json"),
            400,
        ),
        (
            "POST",
            "/v1/kv/a/cas".into(),
            vec![],
            Bytes::from(r#"{"value": 5}"#),
            400,
        ),
        ("GET", "/v1/kv?limit=0".into(), vec![], Bytes::new(), 400),
        ("GET", "/v1/kv?limit=many".into(), vec![], Bytes::new(), 400),
        ("GET", "/nowhere".into(), vec![], Bytes::new(), 404),
        ("GET", "/set?key=a".into(), vec![], Bytes::new(), 400),
        ("GET", "/set?key=a&key=b".into(), vec![], Bytes::new(), 400),
        // Not UTF-8 once decoded; ids that are not numbers.
        ("PUT", "/v1/kv/%FF".into(), vec![], Bytes::from("x"), 400),
        (
            "DELETE",
            "/v1/members/abc".into(),
            vec![],
            Bytes::new(),
            400,
        ),
        (
            "POST",
            "/v1/members/-1/promote".into(),
            vec![],
            Bytes::new(),
            400,
        ),
        (
            "POST",
            "/v1/internal/announce".into(),
            vec![],
            Bytes::from(r#"{"node": 99, "http_address": "1.2.3.4:5"}"#),
            400,
        ),
    ];
    for (method, path, headers, body, expected) in cases {
        let (status, _, answer) = cluster.request(node, method, &path, &headers, body).await;
        assert_eq!(
            status,
            expected,
            "{method} {}: {:?}",
            &path[..path.len().min(60)],
            String::from_utf8_lossy(&answer)
        );
        let error = error_of(&answer);
        assert!(!error.error.is_empty());
    }
    // Compare-and-swap: 409 with the current value, then 200.
    let client = cluster.client();
    client.put("cas-key", "old").await.expect("write");
    let failed = client
        .cas("cas-key", Some("wrong"), "new")
        .await
        .expect("answered");
    assert!(!failed.ok);
    assert_eq!(failed.current, Some("old".to_string()));
    let absent = client
        .cas("cas-missing", Some("x"), "new")
        .await
        .expect("answered");
    assert_eq!(absent.current, None);
    assert!(
        client
            .cas("cas-key", Some("old"), "new")
            .await
            .expect("answered")
            .ok
    );
    assert!(
        client
            .cas("cas-created", None, "first")
            .await
            .expect("answered")
            .ok
    );
    // Garbage on the socket closes that connection and nothing else.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(&cluster.nodes[node].http)
        .await
        .expect("connects");
    raw.write_all(b"\x00\xff garbage that is not HTTP\r\n\r\n")
        .await
        .expect("writes");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut sink)).await;
    // Still healthy: it answers status and serves writes and reads.
    let (status, _, body) = cluster
        .request(node, "GET", "/v1/status", &[], Bytes::new())
        .await;
    assert_eq!(status, 200);
    let status: StatusResponse = serde_json::from_slice(&body).expect("status JSON");
    assert_eq!(status.members, vec![1, 2, 3]);
    let (code, _, body) = cluster
        .request(node, "PUT", "/v1/kv/after", &[], Bytes::from("ok"))
        .await;
    assert_eq!(code, 200);
    let written: WriteResponse = serde_json::from_slice(&body).expect("write JSON");
    assert!(written.index > 0);
}
