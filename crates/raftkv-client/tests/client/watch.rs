//! The watch stream against fake nodes that serve Server-Sent Events from a script: it
//! resumes at one past the last revision it delivered, on the next node, after a dropped
//! connection, a cancellation or a transient refusal, with no gap and no repeat; a compacted
//! start ends it with the typed error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftkv_client::api::{WatchEvents, WatchProgress};
use raftkv_client::{Client, ClientError, WatchMessage, WatchRequest, WatchStream};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::fake_node::{quick_options, read_request, Recorded};

/// Longest wait for one message of a watch; the fake nodes answer at once, so reaching it
/// means a message that should have come never did.
const MESSAGE_DEADLINE: Duration = Duration::from_secs(10);

/// One connection's scripted answer.
#[derive(Clone)]
enum Reply {
    /// 200 text/event-stream: these bytes, then the connection closed (`hold` false) or kept
    /// open without another byte (`hold` true).
    Stream { bytes: Vec<u8>, hold: bool },
    /// A whole answer with this status and body.
    Whole(u16, &'static str),
}

/// A node that answers its n-th connection with the n-th reply (the last one repeating).
struct SseNode {
    address: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl SseNode {
    async fn start(script: Vec<Reply>) -> SseNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let script = Arc::new(script);
                while let Ok((stream, _)) = listener.accept().await {
                    let (recorded, script) = (recorded.clone(), script.clone());
                    tokio::spawn(serve(stream, recorded, script));
                }
            })
        };
        SseNode {
            address,
            recorded,
            task,
        }
    }

    fn targets(&self) -> Vec<String> {
        let recorded = self.recorded.lock().expect("recorded");
        recorded
            .iter()
            .map(|request| request.target.clone())
            .collect()
    }
}

impl Drop for SseNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Vec<Reply>>,
) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let reply = {
        let mut recorded = recorded.lock().expect("recorded");
        recorded.push(request);
        script[(recorded.len() - 1).min(script.len() - 1)].clone()
    };
    match reply {
        Reply::Whole(status, body) => {
            let head = format!(
                "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Reply::Stream { bytes, hold } => {
            // No length: the body is the stream, until the connection closes.
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        cache-control: no-cache\r\nconnection: close\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&bytes).await;
            let _ = stream.flush().await;
            if hold {
                // Open until the client goes (or the test ends).
                let mut sink = [0u8; 64];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await;
            }
        }
    }
}

/// `event: events` for revision `revision` with a put of each key, as the server frames it.
fn events(revision: u64, keys: &[&str]) -> String {
    let events: Vec<String> = keys
        .iter()
        .map(|key| {
            format!(
                r#"{{"type":"put","kv":{{"key":"{key}","value":"v{revision}","create_revision":{revision},"mod_revision":{revision},"version":1}}}}"#
            )
        })
        .collect();
    format!(
        "event: events\nid: {revision}\ndata: {{\"revision\":{revision},\"events\":[{}]}}\n\n",
        events.join(",")
    )
}

fn stream(parts: &[String], hold: bool) -> Reply {
    Reply::Stream {
        bytes: parts.concat().into_bytes(),
        hold,
    }
}

/// The next message, within the deadline.
async fn next(watch: &mut WatchStream) -> Option<Result<WatchMessage, ClientError>> {
    tokio::time::timeout(MESSAGE_DEADLINE, watch.next())
        .await
        .expect("a watch message within the deadline")
}

async fn next_events(watch: &mut WatchStream) -> WatchEvents {
    match next(watch).await {
        Some(Ok(WatchMessage::Events(events))) => events,
        other => panic!("expected events: {other:?}"),
    }
}

#[tokio::test]
async fn a_stream_dropped_mid_event_resumes_on_the_next_node_at_last_plus_one_without_repeats() {
    let cut_event = "event: events\nid: 7\ndata: {\"revision\":7,\"ev".to_string();
    let first = SseNode::start(vec![stream(
        &[events(3, &["k/a", "k/b"]), events(5, &["k/c"]), cut_event],
        false,
    )])
    .await;
    // The second node serves revision 5 again, as a node that resumes earlier than asked
    // would: the client must not hand it over twice.
    let second = SseNode::start(vec![stream(
        &[
            events(5, &["k/c"]),
            ": a comment, as keep-alive\r\n".to_string(),
            events(7, &["k/d"]).replace('\n', "\r\n"),
            events(8, &["k/e"]),
        ],
        true,
    )])
    .await;
    let client =
        Client::with_options([&first.address, &second.address], quick_options()).expect("client");
    let mut watch = client.watch(WatchRequest::prefix("k/", Some(3)));

    let transaction = next_events(&mut watch).await;
    assert_eq!(transaction.revision, 3);
    let keys: Vec<_> = transaction
        .events
        .iter()
        .map(|e| e.kv.key.as_str())
        .collect();
    assert_eq!(keys, ["k/a", "k/b"], "a revision's events arrive together");
    let mut revisions = vec![3];
    for _ in 0..3 {
        revisions.push(next_events(&mut watch).await.revision);
    }
    assert_eq!(
        revisions,
        [3, 5, 7, 8],
        "in order, none missing, none repeated"
    );
    assert_eq!(first.targets(), ["/v1/watch?prefix=k%2F&start_revision=3"]);
    assert_eq!(second.targets(), ["/v1/watch?prefix=k%2F&start_revision=6"]);
}

#[tokio::test]
async fn a_stopping_node_cancels_and_the_watch_resumes_with_progress_kept() {
    let first = SseNode::start(vec![stream(
        &[
            events(4, &["k"]),
            "event: progress\ndata: {\"revision\":6}\n\n".to_string(),
            "event: cancelled\ndata: {\"reason\":\"stopping\",\"error\":\"node stopping\",\
             \"resume_revision\":7,\"compact_revision\":1}\n\n"
                .to_string(),
        ],
        true,
    )])
    .await;
    let second = SseNode::start(vec![stream(&[events(9, &["k"])], true)]).await;
    let client =
        Client::with_options([&first.address, &second.address], quick_options()).expect("client");
    let mut request = WatchRequest::key("k", Some(4));
    request.progress_interval = Some(Duration::from_millis(1500));
    let mut watch = client.watch(request);

    assert_eq!(next_events(&mut watch).await.revision, 4);
    assert!(matches!(
        next(&mut watch).await,
        Some(Ok(WatchMessage::Progress(WatchProgress { revision: 6 })))
    ));
    assert_eq!(next_events(&mut watch).await.revision, 9);
    assert_eq!(
        second.targets(),
        ["/v1/watch?key=k&start_revision=7&progress_interval_ms=1500"],
        "progress moved the resume point past the idle revisions"
    );
}

#[tokio::test]
async fn transient_refusals_are_retried_and_the_watch_resumes_on_the_same_node() {
    let node = SseNode::start(vec![
        stream(&[events(2, &["k"])], false),
        Reply::Whole(503, r#"{"error":"node stopping"}"#),
        // A node behind the revisions delivered refuses a start in its future: retried.
        Reply::Whole(
            400,
            r#"{"error":"revision 3 is in the future","compact_revision":1,"revision":2}"#,
        ),
        stream(&[events(3, &["k"])], true),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");
    let mut watch = client.watch(WatchRequest::key("k", Some(2)));
    assert_eq!(next_events(&mut watch).await.revision, 2);
    assert_eq!(next_events(&mut watch).await.revision, 3);
    assert_eq!(
        node.targets(),
        [
            "/v1/watch?key=k&start_revision=2",
            "/v1/watch?key=k&start_revision=3",
            "/v1/watch?key=k&start_revision=3",
            "/v1/watch?key=k&start_revision=3",
        ]
    );
}

#[tokio::test]
async fn a_compacted_start_ends_the_stream_with_the_typed_error() {
    let node = SseNode::start(vec![Reply::Whole(
        410,
        r#"{"error":"revision 2 is compacted","compact_revision":10,"revision":42}"#,
    )])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");
    let mut watch = client.watch(WatchRequest::key("k", Some(2)));
    match next(&mut watch).await {
        Some(Err(ClientError::Compacted {
            requested: 2,
            compact_revision: 10,
            revision: 42,
        })) => {}
        other => panic!("expected Compacted: {other:?}"),
    }
    assert!(
        next(&mut watch).await.is_none(),
        "the error ends the stream"
    );
    assert_eq!(node.targets().len(), 1, "a compacted start is not retried");
}

#[tokio::test]
async fn a_compaction_cancelling_a_live_watch_ends_it_typed() {
    let node = SseNode::start(vec![stream(
        &[
            events(3, &["k"]),
            "event: cancelled\ndata: {\"reason\":\"compacted\",\"error\":\"compacted\",\
             \"resume_revision\":4,\"compact_revision\":20}\n\n"
                .to_string(),
        ],
        true,
    )])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");
    let mut watch = client.watch(WatchRequest::key("k", Some(3)));
    assert_eq!(next_events(&mut watch).await.revision, 3);
    assert!(matches!(
        next(&mut watch).await,
        Some(Err(ClientError::Compacted {
            requested: 4,
            compact_revision: 20,
            ..
        }))
    ));
    assert!(next(&mut watch).await.is_none());
}

#[tokio::test]
async fn a_watch_from_now_reads_the_current_revision_first() {
    let node = SseNode::start(vec![
        Reply::Whole(200, r#"{"items":[],"truncated":false,"revision":41}"#),
        stream(&[events(42, &["k"])], true),
    ])
    .await;
    let client = Client::with_options([&node.address], quick_options()).expect("client");
    let mut watch = client.watch(WatchRequest::key("k", None));
    assert_eq!(next_events(&mut watch).await.revision, 42);
    assert_eq!(
        node.targets(),
        [
            "/v1/kv?prefix=k&limit=1&consistency=linearizable",
            "/v1/watch?key=k&start_revision=42",
        ]
    );
}

#[tokio::test]
async fn bad_input_is_the_only_item() {
    let client = Client::with_options(["127.0.0.1:9"], quick_options()).expect("client");
    for request in [
        WatchRequest::key("", Some(1)),
        WatchRequest::key("k", Some(0)),
    ] {
        let mut watch = client.watch(request);
        assert!(matches!(
            next(&mut watch).await,
            Some(Err(ClientError::InvalidInput(_)))
        ));
        assert!(next(&mut watch).await.is_none());
    }
}
