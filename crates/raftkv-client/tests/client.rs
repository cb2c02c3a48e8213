//! The client against fake nodes: plain TCP listeners that record each request and answer from
//! a script of canned HTTP/1.1 responses (hyper's server side is not a dependency).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftkv_client::api::{CLIENT_ID_HEADER, REQUEST_SEQ_HEADER};
use raftkv_client::{Client, ClientError, ClientOptions, Consistency};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Largest request the fake node accepts; far above anything these tests send.
const REQUEST_BYTES_MAX: usize = 1024 * 1024;

/// A request as the fake node received it.
#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(found, _)| found.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn sequence(&self) -> Option<u64> {
        self.header(REQUEST_SEQ_HEADER)?.parse().ok()
    }
}

/// One scripted answer.
#[derive(Clone, Debug)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Held back this long, to widen the window in which a second request could overlap.
    delay: Duration,
}

fn canned(status: u16, body: &str) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
        delay: Duration::ZERO,
    }
}

/// A fake node: answers the n-th request with the n-th canned answer, repeating the last.
struct FakeNode {
    address: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    in_flight_max: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FakeNode {
    async fn start(script: Vec<Canned>) -> FakeNode {
        assert!(!script.is_empty(), "a fake node needs at least one answer");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address").to_string();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let in_flight_max = Arc::new(AtomicUsize::new(0));
        let task = {
            let recorded = recorded.clone();
            let in_flight_max = in_flight_max.clone();
            tokio::spawn(async move {
                let script = Arc::new(script);
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (recorded, script) = (recorded.clone(), script.clone());
                    let (in_flight, in_flight_max) = (in_flight.clone(), in_flight_max.clone());
                    tokio::spawn(async move {
                        let current = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        in_flight_max.fetch_max(current, Ordering::SeqCst);
                        serve_one(stream, &recorded, &script).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        FakeNode {
            address,
            recorded,
            in_flight_max,
            task,
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().expect("recorded").clone()
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request, records it and answers it, then closes the connection.
async fn serve_one(mut stream: TcpStream, recorded: &Mutex<Vec<Recorded>>, script: &[Canned]) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let answer = {
        let mut recorded = recorded.lock().expect("recorded");
        recorded.push(request);
        script[(recorded.len() - 1).min(script.len() - 1)].clone()
    };
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut head = format!(
        "HTTP/1.1 {} Canned\r\ncontent-length: {}\r\nconnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&answer.body).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position;
        }
        if buffer.len() > REQUEST_BYTES_MAX {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let target = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let content_length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < content_length {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

/// An address nothing listens on: a port the system just handed out and took back.
async fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local address").to_string()
}

fn quick_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_deadline: Duration::from_secs(5),
    }
}

const WRITE_OK: &str = r#"{"index":7,"term":2}"#;
const NO_LEADER: &str = r#"{"error":"no leader"}"#;

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

#[tokio::test]
async fn an_answer_that_does_not_parse_is_a_decode_error() {
    let node = FakeNode::start(vec![canned(200, "not json")]).await;
    let client = Client::new([&node.address]).expect("client");

    assert!(matches!(
        client.scan("", 10).await,
        Err(ClientError::Decode(_))
    ));
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
