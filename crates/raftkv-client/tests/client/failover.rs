//! Which node a call goes to, and when it gives up: dead nodes are skipped, a named leader is
//! tried next, a transient answer is waited out until the retry deadline.

use std::time::Duration;

use raftkv_client::{Client, ClientError, ClientOptions, Consistency};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::fake_node::{
    canned, dead_address, quick_options, FakeNode, Recorded, NO_LEADER, WRITE_OK,
};

#[tokio::test]
async fn connection_refused_on_the_first_endpoint_moves_to_the_second() {
    let dead = dead_address().await;
    let node = FakeNode::start(vec![canned(200, WRITE_OK)]).await;
    let client = Client::with_options([&dead, &node.address], quick_options()).expect("client");

    client
        .put("k", "v")
        .await
        .expect("put through the second node");
    client
        .get("k", Consistency::Linearizable)
        .await
        .expect("get through the node that answered last");
    assert_eq!(node.requests().len(), 2);
}

#[tokio::test]
async fn a_leader_named_by_a_503_is_tried_next() {
    let leader = FakeNode::start(vec![canned(200, WRITE_OK)]).await;
    let follower = FakeNode::start(vec![canned(
        503,
        &format!(
            r#"{{"error":"leader unreachable","leader":2,"leader_http":"{}"}}"#,
            leader.address
        ),
    )])
    .await;
    let other = FakeNode::start(vec![canned(503, NO_LEADER)]).await;
    let client =
        Client::with_options([&follower.address, &other.address], quick_options()).expect("client");

    client.put("k", "v").await.expect("put through the leader");

    assert_eq!(follower.requests().len(), 1);
    assert_eq!(other.requests().len(), 0, "the named leader comes first");
    let requests = leader.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].sequence(), Some(1));
    assert_eq!(follower.requests()[0].sequence(), Some(1));
}

#[tokio::test]
async fn a_forwarded_answer_sends_the_next_call_straight_to_the_leader_it_names() {
    let leader = FakeNode::start(vec![canned(200, WRITE_OK)]).await;
    let mut forwarded = canned(200, WRITE_OK);
    forwarded
        .headers
        .push((raftkv_client::api::LEADER_HEADER, leader.address.clone()));
    let follower = FakeNode::start(vec![forwarded]).await;
    let client = Client::with_options([&follower.address], quick_options()).expect("client");

    client.put("k", "1").await.expect("first put, forwarded");
    client.put("k", "2").await.expect("second put");
    client
        .get("k", Consistency::Linearizable)
        .await
        .expect("read");

    assert_eq!(
        follower.requests().len(),
        1,
        "only the first call went there"
    );
    let sequences: Vec<_> = leader.requests().iter().map(Recorded::sequence).collect();
    assert_eq!(sequences, vec![Some(2), None], "then the leader, directly");
}

#[tokio::test]
async fn no_leader_until_the_retry_deadline_is_unavailable() {
    let node = FakeNode::start(vec![canned(503, NO_LEADER)]).await;
    let retry_deadline = Duration::from_millis(300);
    let client = Client::with_options(
        [&node.address],
        ClientOptions {
            request_timeout: Duration::from_secs(1),
            retry_deadline,
        },
    )
    .expect("client");

    let started = Instant::now();
    match client.put("k", "v").await {
        Err(ClientError::Unavailable(message)) => {
            assert!(message.contains("no leader"), "{message}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed <= retry_deadline + Duration::from_millis(200),
        "took {elapsed:?}"
    );

    let requests = node.requests();
    assert!(requests.len() >= 2, "retried: {} attempts", requests.len());
    assert!(requests.iter().all(|request| request.sequence() == Some(1)));
}

#[tokio::test]
async fn a_503_retry_after_is_waited_for() {
    let mut busy = canned(503, NO_LEADER);
    busy.headers.push(("retry-after", "1".to_string()));
    let node = FakeNode::start(vec![busy, canned(200, "v")]).await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");

    let started = Instant::now();
    let value = client
        .get("k", Consistency::Linearizable)
        .await
        .expect("get");
    assert_eq!(value.as_deref(), Some(&b"v"[..]));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(node.requests().len(), 2);
}

#[tokio::test]
async fn an_unreachable_cluster_is_unavailable() {
    let client = Client::with_options(
        [dead_address().await, dead_address().await],
        ClientOptions {
            request_timeout: Duration::from_secs(1),
            retry_deadline: Duration::from_millis(200),
        },
    )
    .expect("client");

    match client.get("k", Consistency::Linearizable).await {
        Err(ClientError::Unavailable(message)) => {
            assert!(message.to_lowercase().contains("connect"), "{message}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_node_times_out_and_the_next_answers() {
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_address = silent.local_addr().expect("local address").to_string();
    let held = tokio::spawn(async move {
        let mut streams = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            streams.push(stream);
        }
    });
    let node = FakeNode::start(vec![canned(200, r#"{"length":3,"index":4,"term":1}"#)]).await;
    let client = Client::with_options(
        [&silent_address, &node.address],
        ClientOptions {
            request_timeout: Duration::from_millis(200),
            retry_deadline: Duration::from_secs(5),
        },
    )
    .expect("client");

    let appended = client.append("k", "abc").await.expect("append");
    assert_eq!(appended.length, 3);
    let requests = node.requests();
    assert_eq!(requests[0].target, "/v1/kv/k/append");
    assert_eq!(requests[0].body, b"abc");
    held.abort();
}

#[tokio::test]
async fn status_asks_one_node_once() {
    let status = r#"{"id":2,"role":"follower","term":4,"leader":1,
        "leader_http":"127.0.0.1:8001","commit_index":10,"applied_index":9,"last_log_index":10,
        "snapshot_index":0,"members":[1,2,3],"followers":[],"keys":3,
        "http_address":"127.0.0.1:8002"}"#;
    let node = FakeNode::start(vec![canned(200, status)]).await;
    let dead = dead_address().await;
    let client = Client::new([&dead, &node.address]).expect("client");

    let answer = client
        .status(&format!("http://{}", node.address))
        .await
        .expect("status");
    assert_eq!(
        (answer.id, answer.leader, answer.applied_index),
        (2, Some(1), 9)
    );
    assert_eq!(node.requests()[0].target, "/v1/status");

    let started = Instant::now();
    assert!(matches!(
        client.status(&dead).await,
        Err(ClientError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(1), "no retries");
}
