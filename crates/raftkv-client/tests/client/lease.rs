//! The lease calls on the wire: routes, bodies, sessions on the writes, and the typed lease
//! errors; and a keeper that learns from the leader that its lease is gone.

use raftkv_client::api::{CLIENT_ID_HEADER, LEASE_ID_MAX};
use raftkv_client::{Client, ClientError, LeaseLost};

use crate::fake_node::{canned, quick_options, FakeNode};

const NOT_FOUND: &str = r#"{"error":"no lease 2a","id":42}"#;

#[tokio::test]
async fn each_lease_call_sends_its_route_and_body() {
    let node = FakeNode::start(vec![
        canned(
            200,
            r#"{"id":42,"ttl_seconds":60,"revision":3,"index":7,"term":2}"#,
        ),
        canned(
            200,
            r#"{"leases":[{"id":42,"ttl_seconds":60}],"revision":3}"#,
        ),
        canned(
            200,
            r#"{"id":42,"granted_ttl_seconds":60,"ttl_seconds":59,"keys":["a"],"revision":4}"#,
        ),
        canned(200, r#"{"ids":[42],"revision":4}"#),
        canned(200, r#"{"index":8,"term":2,"revision":4}"#),
        canned(
            200,
            r#"{"id":42,"keys_deleted":1,"revision":5,"index":9,"term":2}"#,
        ),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");

    let granted = client.lease_grant(60, Some(42)).await.expect("grant");
    assert_eq!((granted.id, granted.ttl_seconds), (42, 60));
    let renewed = client
        .lease_keep_alive_once(&[42])
        .await
        .expect("keepalive");
    assert_eq!(renewed.leases[0].ttl_seconds, 60);
    let ttl = client.lease_time_to_live(42, true).await.expect("ttl");
    assert_eq!(ttl.keys.as_deref(), Some(&["a".to_string()][..]));
    assert_eq!(client.lease_list().await.expect("list").ids, [42]);
    client.put_with_lease("a", "v", 42).await.expect("put");
    let revoked = client.lease_revoke(42).await.expect("revoke");
    assert_eq!(revoked.keys_deleted, 1);

    let requests = node.requests();
    let sent: Vec<(&str, &str, String)> = requests
        .iter()
        .map(|request| {
            (
                request.method.as_str(),
                request.target.as_str(),
                String::from_utf8_lossy(&request.body).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            (
                "POST",
                "/v1/lease/grant",
                r#"{"ttl_seconds":60,"id":42}"#.to_string()
            ),
            ("POST", "/v1/lease/keepalive", r#"{"ids":[42]}"#.to_string()),
            ("GET", "/v1/lease/42?keys=true", String::new()),
            ("GET", "/v1/leases", String::new()),
            ("PUT", "/v1/kv/a?lease=42", "v".to_string()),
            ("POST", "/v1/lease/revoke", r#"{"id":42}"#.to_string()),
        ]
    );
    // Grant, put and revoke are writes under the session (applied once); keepalive and the
    // reads are not.
    let sessions: Vec<Option<u64>> = requests.iter().map(|request| request.sequence()).collect();
    assert_eq!(sessions, [Some(1), None, None, None, Some(2), Some(3)]);
    assert!(requests[0].header(CLIENT_ID_HEADER).is_some());
}

#[tokio::test]
async fn a_missing_lease_or_an_id_in_use_is_a_typed_error() {
    let node = FakeNode::start(vec![
        canned(404, NOT_FOUND),
        canned(404, NOT_FOUND),
        canned(409, r#"{"error":"lease 2a exists","id":42}"#),
        canned(404, NOT_FOUND),
        canned(404, r#"{"error":"lease 2a not found","id":42}"#),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");
    assert!(matches!(
        client.lease_revoke(42).await,
        Err(ClientError::LeaseNotFound { id: 42, .. })
    ));
    assert!(matches!(
        client.put_with_lease("k", "v", 42).await,
        Err(ClientError::LeaseNotFound { id: 42, .. })
    ));
    assert!(matches!(
        client.lease_grant(5, Some(42)).await,
        Err(ClientError::LeaseAlreadyExists { id: 42, .. })
    ));
    assert!(matches!(
        client.lease_time_to_live(42, false).await,
        Err(ClientError::LeaseNotFound { id: 42, .. })
    ));
    // A transaction whose branch puts with a missing lease.
    let txn = raftkv_client::api::TxnRequest::default();
    assert!(matches!(
        client.txn(&txn).await,
        Err(ClientError::LeaseNotFound { id: 42, .. })
    ));
    // Refused before sending: id 0, ids past i64::MAX, no ids, TTL 0.
    let before = node.requests().len();
    assert!(matches!(
        client.lease_revoke(0).await,
        Err(ClientError::InvalidInput(_))
    ));
    assert!(matches!(
        client.lease_time_to_live(LEASE_ID_MAX + 1, false).await,
        Err(ClientError::InvalidInput(_))
    ));
    assert!(matches!(
        client.lease_keep_alive_once(&[]).await,
        Err(ClientError::InvalidInput(_))
    ));
    assert!(matches!(
        client.lease_grant(0, None).await,
        Err(ClientError::InvalidInput(_))
    ));
    assert_eq!(node.requests().len(), before, "nothing was sent");
}

#[tokio::test]
async fn a_keeper_whose_lease_the_leader_no_longer_knows_is_lost() {
    let node = FakeNode::start(vec![
        // The first keepalive (in keep_alive) renews for 1 s; the next, a third of it later,
        // answers TTL 0.
        canned(
            200,
            r#"{"leases":[{"id":42,"ttl_seconds":1}],"revision":3}"#,
        ),
        canned(
            200,
            r#"{"leases":[{"id":42,"ttl_seconds":0}],"revision":3}"#,
        ),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");
    let keeper = client.keep_alive(42).await.expect("keeper");
    let lost = tokio::time::timeout(std::time::Duration::from_secs(5), keeper.lost())
        .await
        .expect("lost within the TTL");
    assert_eq!(lost, LeaseLost::NotFound);
    assert_eq!(node.requests().len(), 2);
    // A keeper refused at once: the first answer says the lease is gone.
    let gone = FakeNode::start(vec![canned(
        200,
        r#"{"leases":[{"id":42,"ttl_seconds":0}],"revision":3}"#,
    )])
    .await;
    let client = Client::with_options([&gone.address], quick_options()).expect("client");
    assert!(matches!(
        client.keep_alive(42).await,
        Err(ClientError::LeaseNotFound { id: 42, .. })
    ));
}
