//! What goes on the wire: routes, encoded keys, JSON bodies, the bearer token; and input refused
//! before anything is sent.

use std::time::Duration;

use raftkv_client::{Client, ClientError, ClientOptions, Consistency};

use crate::fake_node::{canned, FakeNode, WRITE_OK};

#[tokio::test]
async fn keys_and_prefixes_are_percent_encoded() {
    let node = FakeNode::start(vec![
        canned(200, WRITE_OK),
        canned(200, "v"),
        canned(200, r#"{"items":[],"truncated":false}"#),
    ])
    .await;
    let client = Client::new([&node.address]).expect("client");

    client.put("a/b c", "v").await.expect("put");
    client.get("a/b c", Consistency::Lease).await.expect("get");
    client.scan("a/b c&limit=1", 10).await.expect("scan");

    let targets: Vec<_> = node
        .requests()
        .into_iter()
        .map(|request| request.target)
        .collect();
    assert_eq!(
        targets,
        [
            "/v1/kv/a%2Fb%20c",
            "/v1/kv/a%2Fb%20c?consistency=lease",
            "/v1/kv?prefix=a%2Fb%20c%26limit%3D1&limit=10&consistency=linearizable",
        ]
    );
}

#[tokio::test]
async fn membership_calls_use_their_routes_and_bodies() {
    let change = r#"{"index":7,"term":2}"#;
    let members = r#"{"members":[{"id":1,"role":"voter","raft_address":"10.0.0.1:9001",
        "http_address":"10.0.0.1:8001","match_index":7}],"joint":false,"leader":1}"#;
    let node = FakeNode::start(vec![
        canned(200, members),
        canned(200, change),
        canned(409, r#"{"error":"node 4 has not caught up"}"#),
        canned(200, change),
        canned(200, "{}"),
    ])
    .await;
    let client = Client::new([&node.address]).expect("client");
    let listed = client.members().await.expect("members");
    assert_eq!((listed.members.len(), listed.leader), (1, Some(1)));
    let added = client.add_member(4, "10.0.0.4:9001").await.expect("added");
    assert_eq!((added.index, added.term), (7, 2));
    let refused = client.promote(4).await;
    assert!(
        matches!(refused, Err(ClientError::Server { status: 409, .. })),
        "{refused:?}"
    );
    client.remove_member(2).await.expect("removed");
    client.transfer_leader(3).await.expect("transfer started");
    let requests = node.requests();
    let targets: Vec<(&str, &str)> = requests
        .iter()
        .map(|request| (request.method.as_str(), request.target.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            ("GET", "/v1/members"),
            ("POST", "/v1/members"),
            ("POST", "/v1/members/4/promote"),
            ("DELETE", "/v1/members/2"),
            ("POST", "/v1/leader/transfer"),
        ]
    );
    let added: serde_json::Value = serde_json::from_slice(&requests[1].body).expect("JSON body");
    assert_eq!(added["id"], 4);
    assert_eq!(added["raft_address"], "10.0.0.4:9001");
    let transfer: serde_json::Value = serde_json::from_slice(&requests[4].body).expect("JSON body");
    assert_eq!(transfer["to"], 3);
}

#[tokio::test]
async fn invalid_input_is_refused_before_anything_is_sent() {
    assert!(matches!(
        Client::new(Vec::<String>::new()),
        Err(ClientError::InvalidInput(_))
    ));
    assert!(matches!(
        Client::new(["127.0.0.1:8001", "https://127.0.0.1:8002"]),
        Err(ClientError::InvalidInput(_))
    ));

    assert!(matches!(
        Client::with_options(
            ["127.0.0.1:8001"],
            ClientOptions {
                request_timeout: Duration::ZERO,
                retry_deadline: Duration::from_secs(1),
            }
        ),
        Err(ClientError::InvalidInput(_))
    ));

    let node = FakeNode::start(vec![canned(200, WRITE_OK)]).await;
    let client = Client::new([format!(" http://{} ", node.address)]).expect("client");
    assert_eq!(client.endpoints(), [format!("http://{}", node.address)]);
    assert!(matches!(
        client.put("", "v").await,
        Err(ClientError::InvalidInput(_))
    ));
    let long_key = "k".repeat(raftkv_client::api::KEY_BYTES_MAX + 1);
    assert!(matches!(
        client.get(&long_key, Consistency::Linearizable).await,
        Err(ClientError::InvalidInput(_))
    ));
    assert_eq!(node.requests().len(), 0);

    // A refused write does not use up a sequence number.
    client.put("k", "v").await.expect("put");
    assert_eq!(node.requests()[0].sequence(), Some(1));
}

#[tokio::test]
async fn a_bearer_token_goes_with_every_request_of_the_client_and_its_sessions() {
    let node = FakeNode::start(vec![canned(200, WRITE_OK)]).await;
    let anonymous = Client::new([&node.address]).expect("client");
    let token = "a-token-of-the-cluster-0123";
    let client = anonymous.with_bearer_token(token).expect("a valid token");
    assert!(
        !format!("{client:?}").contains(token),
        "the token stays out of debug output"
    );
    client.put("k", "v").await.expect("put");
    client.new_session().put("k", "w").await.expect("put");
    anonymous.put("k", "x").await.expect("put");

    let requests = node.requests();
    let expected = format!("Bearer {token}");
    assert_eq!(requests[0].header("authorization"), Some(expected.as_str()));
    assert_eq!(requests[1].header("authorization"), Some(expected.as_str()));
    assert_eq!(
        requests[2].header("authorization"),
        None,
        "the client it was made from is unchanged"
    );
    for bad in ["", "two words", "tab\there"] {
        assert!(
            matches!(
                anonymous.with_bearer_token(bad),
                Err(ClientError::InvalidInput(_))
            ),
            "{bad:?} is refused"
        );
    }
}
