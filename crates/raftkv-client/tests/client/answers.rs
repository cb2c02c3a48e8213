//! Definite answers and what the caller gets from them: a value, `None`, a compare-and-swap that
//! did not happen, or a final error that is not retried.

use raftkv_client::{Client, ClientError, Consistency};

use crate::fake_node::{canned, quick_options, FakeNode, Recorded, WRITE_OK};

#[tokio::test]
async fn get_of_a_missing_key_is_none() {
    let node = FakeNode::start(vec![canned(404, r#"{"error":"key not found"}"#)]).await;
    let client = Client::new([&node.address]).expect("client");

    let value = client
        .get("missing", Consistency::Linearizable)
        .await
        .expect("get");
    assert_eq!(value, None);
    assert_eq!(node.requests().len(), 1, "a 404 is final");
}

#[tokio::test]
async fn a_404_outside_get_is_a_server_error() {
    let node = FakeNode::start(vec![canned(404, r#"{"error":"no such route"}"#)]).await;
    let client = Client::new([&node.address]).expect("client");

    match client.append("k", "x").await {
        Err(ClientError::Server { status: 404, error }) => assert_eq!(error.error, "no such route"),
        other => panic!("expected a 404 server error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_bad_request_is_a_server_error_and_is_not_retried() {
    let node = FakeNode::start(vec![canned(400, r#"{"error":"key is not UTF-8"}"#)]).await;
    let other = FakeNode::start(vec![canned(200, WRITE_OK)]).await;
    let client =
        Client::with_options([&node.address, &other.address], quick_options()).expect("client");

    match client.put("k", "v").await {
        Err(ClientError::Server { status: 400, error }) => {
            assert_eq!(error.error, "key is not UTF-8")
        }
        other => panic!("expected a 400 server error, got {other:?}"),
    }
    assert_eq!(node.requests().len(), 1);
    assert_eq!(other.requests().len(), 0);
}

#[tokio::test]
async fn a_too_large_value_is_a_server_error() {
    let node = FakeNode::start(vec![canned(413, "")]).await;
    let client = Client::new([&node.address]).expect("client");

    match client.put("k", vec![0u8; 10]).await {
        Err(ClientError::Server { status: 413, error }) => {
            assert_eq!(error.error, "Payload Too Large")
        }
        other => panic!("expected a 413 server error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_compare_and_swap_that_did_not_happen_is_ok_false_with_the_current_value() {
    let node = FakeNode::start(vec![
        canned(409, r#"{"ok":false,"current":"red","index":5,"term":1}"#),
        canned(409, r#"{"ok":false,"current":null,"index":6,"term":1}"#),
        canned(200, r#"{"ok":true,"index":7,"term":1}"#),
    ])
    .await;
    let client = Client::new([&node.address]).expect("client");

    let conflict = client.cas("k", Some("blue"), "green").await.expect("cas");
    assert!(!conflict.ok);
    assert_eq!(conflict.current, Some("red".to_string()));
    let absent = client.cas("k", Some("blue"), "green").await.expect("cas");
    assert_eq!(absent.current, None);
    let swapped = client.cas("k", None, "green").await.expect("cas");
    assert!(swapped.ok);

    let requests = node.requests();
    assert_eq!(requests[0].target, "/v1/kv/k/cas");
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).expect("JSON body");
    assert_eq!(
        body,
        serde_json::json!({"expect": "blue", "value": "green"})
    );
    let body: serde_json::Value = serde_json::from_slice(&requests[2].body).expect("JSON body");
    assert_eq!(body, serde_json::json!({"expect": null, "value": "green"}));
    let sequences: Vec<_> = requests.iter().map(Recorded::sequence).collect();
    assert_eq!(sequences, [Some(1), Some(2), Some(3)]);
}

#[tokio::test]
async fn a_409_that_is_not_a_compare_and_swap_answer_is_a_server_error() {
    let node = FakeNode::start(vec![canned(409, r#"{"error":"membership change"}"#)]).await;
    let client = Client::new([&node.address]).expect("client");

    assert!(matches!(
        client.cas("k", None, "v").await,
        Err(ClientError::Server { status: 409, .. })
    ));
}

#[tokio::test]
async fn an_answer_that_does_not_parse_is_a_decode_error() {
    let node = FakeNode::start(vec![canned(200, "not json")]).await;
    let client = Client::new([&node.address]).expect("client");

    assert!(matches!(
        client.scan("", 10).await,
        Err(ClientError::Decode(_))
    ));
}
