//! The coordination calls on the wire: reads at a revision, transactions as session writes,
//! compaction, and the typed revision errors.

use raftkv_client::api::{
    Compare, CompareOp, CompareTarget, TxnOp, TxnOpResult, TxnRequest, CLIENT_ID_HEADER,
};
use raftkv_client::{Client, ClientError};

use crate::fake_node::{canned, quick_options, FakeNode, NO_LEADER};

const COMPACTED: &str =
    r#"{"error":"revision 3 is compacted","compact_revision":10,"revision":42}"#;

#[tokio::test]
async fn reads_at_a_revision_ask_for_json_and_decode_the_revisions() {
    let node = FakeNode::start(vec![
        canned(
            200,
            r#"{"kv":{"key":"k","value":"v","create_revision":4,"mod_revision":9,"version":3},"revision":12}"#,
        ),
        canned(404, r#"{"kv":null,"revision":12}"#),
        canned(
            200,
            r#"{"items":[{"key":"p/a","value":"1","create_revision":2,"mod_revision":5,"version":2}],"truncated":false,"revision":7}"#,
        ),
        canned(404, r#"{"error":"no such route"}"#),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");

    let found = client.get_versioned("k", Some(12)).await.expect("found");
    let kv = found.kv.expect("a key");
    assert_eq!(
        (
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            found.revision
        ),
        (4, 9, 3, 12)
    );
    let absent = client.get_versioned("gone", None).await.expect("absent");
    assert_eq!((absent.kv, absent.revision), (None, 12));
    let scanned = client.scan_at("p/", 5, Some(7)).await.expect("scan");
    assert_eq!(scanned.revision, 7);
    assert_eq!(scanned.items[0].mod_revision, 5);
    // A 404 that is not the contract's absent key is an error, not "absent".
    assert!(matches!(
        client.get_versioned("k", None).await,
        Err(ClientError::Server { status: 404, .. })
    ));

    let targets: Vec<_> = node.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        [
            "/v1/kv/k?format=json&consistency=linearizable&revision=12",
            "/v1/kv/gone?format=json&consistency=linearizable",
            "/v1/kv?prefix=p%2F&limit=5&consistency=linearizable&revision=7",
            "/v1/kv/k?format=json&consistency=linearizable",
        ]
    );
}

#[tokio::test]
async fn a_compacted_or_future_revision_is_a_typed_error_and_zero_is_refused_unsent() {
    let node = FakeNode::start(vec![
        canned(410, COMPACTED),
        canned(
            400,
            r#"{"error":"revision 99 is in the future","compact_revision":10,"revision":42}"#,
        ),
        canned(400, r#"{"error":"compact: revision 50 is past the current one","compact_revision":10,"revision":42}"#),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");

    let compacted = client.get_versioned("k", Some(3)).await.expect_err("410");
    assert!(
        matches!(
            compacted,
            ClientError::Compacted {
                requested: 3,
                compact_revision: 10,
                revision: 42
            }
        ),
        "{compacted:?}"
    );
    assert!(compacted
        .to_string()
        .contains("oldest revision available is 10"));
    let future = client.scan_at("p", 10, Some(99)).await.expect_err("400");
    assert!(
        matches!(
            future,
            ClientError::FutureRevision {
                requested: 99,
                revision: 42,
                ..
            }
        ),
        "{future:?}"
    );
    assert!(matches!(
        client.compact(50).await,
        Err(ClientError::FutureRevision { requested: 50, .. })
    ));
    assert_eq!(node.requests().len(), 3);
    for refused in [
        client.get_versioned("k", Some(0)).await.map(|_| ()),
        client.scan_at("p", 1, Some(0)).await.map(|_| ()),
        client.compact(0).await.map(|_| ()),
    ] {
        assert!(matches!(refused, Err(ClientError::InvalidInput(_))));
    }
    assert_eq!(node.requests().len(), 3, "nothing sent for revision 0");
}

#[tokio::test]
async fn a_transaction_is_a_session_write_retried_under_one_sequence() {
    let node = FakeNode::start(vec![
        canned(503, NO_LEADER),
        canned(
            200,
            r#"{"succeeded":true,"results":[{"put":{"prev":null}},{"get":{"kv":{"key":"k","value":"v","create_revision":8,"mod_revision":8,"version":1}}}],"revision":8,"index":20,"term":2}"#,
        ),
        canned(
            200,
            r#"{"compact_revision":5,"revision":8,"index":21,"term":2}"#,
        ),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");
    let request = TxnRequest {
        compare: vec![Compare {
            key: "k".to_string(),
            op: CompareOp::Equal,
            target: CompareTarget::Version(0),
        }],
        success: vec![
            TxnOp::Put {
                key: "k".to_string(),
                value: Some("v".to_string()),
                value_base64: None,
                lease: None,
            },
            TxnOp::Get {
                key: "k".to_string(),
            },
        ],
        failure: vec![],
    };
    let answer = client.txn(&request).await.expect("txn");
    assert!(answer.succeeded);
    assert_eq!(answer.revision, 8);
    assert!(matches!(answer.results[0], TxnOpResult::Put { prev: None }));
    let compacted = client.compact(5).await.expect("compact");
    assert_eq!(compacted.compact_revision, 5);

    let requests = node.requests();
    assert_eq!(requests.len(), 3);
    let client_id = client.client_id().to_string();
    for attempt in &requests[..2] {
        assert_eq!(
            (attempt.method.as_str(), attempt.target.as_str()),
            ("POST", "/v1/txn")
        );
        assert_eq!(attempt.header(CLIENT_ID_HEADER), Some(client_id.as_str()));
        assert_eq!(attempt.sequence(), Some(1), "a retry keeps its sequence");
        let sent: TxnRequest = serde_json::from_slice(&attempt.body).expect("a TxnRequest");
        assert_eq!(sent, request);
    }
    assert_eq!(requests[2].target, "/v1/compact");
    assert_eq!(requests[2].body, br#"{"revision":5}"#);
    assert_eq!(requests[2].sequence(), None, "compaction needs no session");
}

#[tokio::test]
async fn a_refused_transaction_is_a_server_error() {
    let node = FakeNode::start(vec![canned(
        400,
        r#"{"error":"key k is changed twice in one branch"}"#,
    )])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");
    let twice = TxnRequest {
        success: vec![
            TxnOp::Delete {
                key: "k".to_string(),
            },
            TxnOp::Delete {
                key: "k".to_string(),
            },
        ],
        ..TxnRequest::default()
    };
    match client.txn(&twice).await {
        Err(ClientError::Server { status: 400, error }) => {
            assert!(error.error.contains("twice"), "{}", error.error)
        }
        other => panic!("expected a 400: {other:?}"),
    }
}
