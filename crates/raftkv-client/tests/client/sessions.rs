//! Exactly-once sessions: every write carries the client's id and a sequence number that a
//! retry keeps; reads carry none; one write in flight per session, sessions side by side.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use raftkv_client::api::{CLIENT_ID_HEADER, REQUEST_SEQ_HEADER};
use raftkv_client::{Client, Consistency};

use crate::fake_node::{canned, quick_options, FakeNode, Recorded, NO_LEADER, WRITE_OK};

#[tokio::test]
async fn put_carries_the_session_and_a_retry_after_503_reuses_its_sequence() {
    let node = FakeNode::start(vec![
        canned(503, NO_LEADER),
        canned(200, WRITE_OK),
        canned(200, r#"{"index":8,"term":2}"#),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");

    let first = client.put("color", "blue").await.expect("first put");
    assert_eq!((first.index, first.term), (7, 2));
    let second = client.put("color", "green").await.expect("second put");
    assert_eq!((second.index, second.term), (8, 2));

    let requests = node.requests();
    assert_eq!(requests.len(), 3);
    let client_id = client.client_id().to_string();
    for request in &requests {
        assert_eq!(request.method, "PUT");
        assert_eq!(request.target, "/v1/kv/color");
        assert_eq!(request.header(CLIENT_ID_HEADER), Some(client_id.as_str()));
    }
    assert_eq!(requests[0].body, b"blue");
    assert_eq!(requests[1].body, b"blue");
    assert_eq!(requests[2].body, b"green");
    let sequences: Vec<_> = requests.iter().map(Recorded::sequence).collect();
    assert_eq!(sequences, [Some(1), Some(1), Some(2)]);
}

/// The server answers every transient condition 503 + Retry-After (a leadership transfer, a
/// write not committed, a membership change that must wait); a slow request body gets 408. None
/// is final: each is retried under the same session sequence until a definite answer.
#[tokio::test]
async fn every_transient_answer_is_retried_under_the_same_sequence() {
    let node = FakeNode::start(vec![
        canned(503, r#"{"error":"leadership transfer in progress; retry shortly"}"#),
        canned(
            503,
            r#"{"error":"not committed: leadership changed before the write was committed; retry"}"#,
        ),
        canned(408, r#"{"error":"the request body did not arrive within 10s"}"#),
        canned(429, ""),
        canned(200, r#"{"length":3,"index":9,"term":4}"#),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");

    let appended = client.append("log", "abc").await.expect("append");
    assert_eq!((appended.length, appended.index), (3, 9));
    let requests = node.requests();
    assert_eq!(requests.len(), 5);
    let client_id = client.client_id().to_string();
    for request in &requests {
        assert_eq!(request.target, "/v1/kv/log/append");
        assert_eq!(request.header(CLIENT_ID_HEADER), Some(client_id.as_str()));
        assert_eq!(request.sequence(), Some(1));
        assert_eq!(request.body, b"abc");
    }
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_sequence() {
    let node = FakeNode::start(vec![
        canned(500, r#"{"error":"apply failed"}"#),
        canned(200, r#"{"deleted":true,"index":9,"term":3}"#),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");

    let deleted = client.delete("color").await.expect("delete");
    assert!(deleted.deleted);

    let requests = node.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|request| request.method == "DELETE"));
    assert_eq!(requests[0].sequence(), Some(1));
    assert_eq!(requests[1].sequence(), Some(1));
}

#[tokio::test]
async fn reads_carry_no_session() {
    let node = FakeNode::start(vec![canned(200, "value")]).await;
    let client = Client::new([&node.address]).expect("client");

    let value = client.get("k", Consistency::Stale).await.expect("get");
    assert_eq!(value.as_deref(), Some(&b"value"[..]));

    let requests = node.requests();
    assert_eq!(requests[0].target, "/v1/kv/k?consistency=stale");
    assert_eq!(requests[0].header(CLIENT_ID_HEADER), None);
    assert_eq!(requests[0].header(REQUEST_SEQ_HEADER), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_clones_of_one_client_are_serialized() {
    let mut slow = canned(200, WRITE_OK);
    slow.delay = Duration::from_millis(20);
    let node = FakeNode::start(vec![slow]).await;
    let client = Client::new([&node.address]).expect("client");

    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let client = client.clone();
            tokio::spawn(async move { client.put(&format!("k{writer}"), "v").await })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer task").expect("put");
    }

    assert_eq!(node.in_flight_max.load(Ordering::SeqCst), 1);
    let sequences: BTreeSet<_> = node
        .requests()
        .iter()
        .filter_map(Recorded::sequence)
        .collect();
    assert_eq!(sequences, BTreeSet::from([1, 2, 3, 4]));
}

#[tokio::test]
async fn sessions_made_from_one_client_write_concurrently_under_their_own_ids() {
    let mut slow = canned(200, WRITE_OK);
    slow.delay = Duration::from_millis(50);
    let node = FakeNode::start(vec![slow]).await;
    let client = Client::new([&node.address]).expect("client");
    let sessions: Vec<Client> = (0..4).map(|_| client.new_session()).collect();
    let ids: BTreeSet<u64> = sessions.iter().map(Client::client_id).collect();
    assert_eq!(ids.len(), 4, "each session has its own id");
    assert!(!ids.contains(&client.client_id()));

    let writers: Vec<_> = sessions
        .into_iter()
        .map(|session| tokio::spawn(async move { session.put("k", "v").await }))
        .collect();
    for writer in writers {
        writer.await.expect("writer task").expect("put");
    }

    assert_eq!(
        node.in_flight_max.load(Ordering::SeqCst),
        4,
        "the sessions' writes overlap"
    );
    assert!(node
        .requests()
        .iter()
        .all(|request| request.sequence() == Some(1)));
}
