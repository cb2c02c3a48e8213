//! [`Client::with_http2`] against fake nodes that speak only HTTP/2 with prior knowledge (hyper's
//! server): one connection per node shared by every session, replaced once it closes.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use raftkv_client::api::{CLIENT_ID_HEADER, REQUEST_SEQ_HEADER};
use raftkv_client::{Client, ClientError, ClientOptions, Consistency};
use tokio::net::TcpListener;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

const WRITE_OK: &str = r#"{"index":7,"term":2}"#;

/// A request as the fake node received it.
#[derive(Clone, Debug)]
struct Recorded {
    method: Method,
    path: String,
    /// The `:authority` pseudo-header.
    authority: Option<String>,
    host_headers: usize,
    client_id: Option<String>,
    sequence: Option<String>,
}

/// A fake node: a `PUT` is answered as a committed write, a `GET` with the value `v`.
struct Http2Node {
    address: String,
    accepted: Arc<AtomicUsize>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    /// The tasks serving the accepted connections; aborting one drops its connection at once,
    /// without a GOAWAY, as a crashed node would.
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Http2Node {
    /// A node on a port of its own; each answer waits until `held_together` requests are waiting
    /// (1: no waiting), which proves that many were in flight at once.
    async fn start(held_together: usize) -> Http2Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Http2Node::serve(listener, held_together)
    }

    fn serve(listener: TcpListener, held_together: usize) -> Http2Node {
        let address = listener.local_addr().expect("local address").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let hold = Arc::new(Barrier::new(held_together));
        let task = {
            let (accepted, recorded, connections) =
                (accepted.clone(), recorded.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (recorded, hold) = (recorded.clone(), hold.clone());
                    let service =
                        service_fn(move |request| answer(request, recorded.clone(), hold.clone()));
                    let connection = tokio::spawn(async move {
                        let _ = http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                    connections.lock().expect("connections").push(connection);
                }
            })
        };
        Http2Node {
            address,
            accepted,
            recorded,
            connections,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().expect("recorded").clone()
    }

    /// Drops every connection accepted so far, and returns once they are closed.
    async fn close_connections(&self) {
        let connections: Vec<_> = self
            .connections
            .lock()
            .expect("connections")
            .drain(..)
            .collect();
        for connection in connections {
            connection.abort();
            let _ = connection.await;
        }
    }
}

impl Drop for Http2Node {
    fn drop(&mut self) {
        self.task.abort();
        for connection in self.connections.lock().expect("connections").iter() {
            connection.abort();
        }
    }
}

async fn answer(
    request: Request<Incoming>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    hold: Arc<Barrier>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    // The body is read so the request is whole before it counts as received.
    if body.collect().await.is_err() {
        return Ok(respond(StatusCode::BAD_REQUEST, "{\"error\":\"body\"}"));
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    recorded.lock().expect("recorded").push(Recorded {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        authority: parts.uri.authority().map(ToString::to_string),
        host_headers: parts.headers.get_all(header::HOST).iter().count(),
        client_id: header(CLIENT_ID_HEADER),
        sequence: header(REQUEST_SEQ_HEADER),
    });
    hold.wait().await;
    Ok(match parts.method {
        Method::PUT => respond(StatusCode::OK, WRITE_OK),
        Method::GET => respond(StatusCode::OK, "v"),
        _ => respond(StatusCode::NOT_FOUND, "{\"error\":\"not found\"}"),
    })
}

fn respond(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn quick_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        retry_deadline: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_sessions_share_one_connection_with_a_stream_each() {
    const SESSIONS: usize = 64;
    let node = Http2Node::start(SESSIONS).await;
    let client = Client::with_http2([&node.address], quick_options()).expect("client");
    assert_eq!(client.options(), quick_options());
    assert!(format!("{client:?}").contains("http2: true"), "{client:?}");

    let writers: Vec<_> = (0..SESSIONS)
        .map(|writer| {
            let session = client.new_session();
            tokio::spawn(async move { session.put(&format!("k{writer}"), "v").await })
        })
        .collect();
    for writer in writers {
        let written = writer.await.expect("writer task").expect("put");
        assert_eq!((written.index, written.term), (7, 2));
    }

    assert_eq!(node.accepted(), 1, "one connection for every session");
    let requests = node.requests();
    assert_eq!(requests.len(), SESSIONS, "no call was retried");
    let client_ids: BTreeSet<_> = requests
        .iter()
        .filter_map(|request| request.client_id.clone())
        .collect();
    assert_eq!(client_ids.len(), SESSIONS, "each session under its own id");
    for request in &requests {
        assert_eq!(request.method, Method::PUT);
        assert!(request.path.starts_with("/v1/kv/k"), "{request:?}");
        assert_eq!(request.sequence.as_deref(), Some("1"));
        // The authority travels in the pseudo-header, once, not in a `host` header as well.
        assert_eq!(request.authority.as_deref(), Some(node.address.as_str()));
        assert_eq!(request.host_headers, 0, "{request:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_node_dropped_is_replaced_by_one_new_connection() {
    const SESSIONS: usize = 8;
    let node = Http2Node::start(1).await;
    let client = Client::with_http2([&node.address], quick_options()).expect("client");
    let value = client.get("k", Consistency::Linearizable).await;
    assert_eq!(value.expect("get").as_deref(), Some(&b"v"[..]));
    assert_eq!(node.accepted(), 1);

    node.close_connections().await;
    let readers: Vec<_> = (0..SESSIONS)
        .map(|_| {
            let session = client.new_session();
            tokio::spawn(async move { session.get("k", Consistency::Linearizable).await })
        })
        .collect();
    for reader in readers {
        let value = reader.await.expect("reader task").expect("get");
        assert_eq!(value.as_deref(), Some(&b"v"[..]));
    }
    assert_eq!(
        node.accepted(),
        2,
        "the sessions share the one new connection"
    );
}

#[tokio::test]
async fn a_failed_connect_leaves_the_endpoint_usable_once_the_node_is_up() {
    // A port the system just handed out and took back: nothing listens on it yet.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    drop(listener);
    let try_once = ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_deadline: Duration::ZERO,
    };
    let client = Client::with_http2([address.to_string()], try_once).expect("client");
    match client.get("k", Consistency::Linearizable).await {
        Err(ClientError::Unavailable(message)) => {
            assert!(message.contains("connect"), "{message}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }

    let listener = TcpListener::bind(address)
        .await
        .expect("bind the port again");
    let node = Http2Node::serve(listener, 1);
    let value = client.get("k", Consistency::Linearizable).await;
    assert_eq!(value.expect("get, one attempt").as_deref(), Some(&b"v"[..]));
    assert_eq!(node.accepted(), 1);
}

#[test]
fn an_https_endpoint_is_refused_because_http2_is_plaintext_only() {
    for endpoints in [
        vec!["https://127.0.0.1:8001"],
        vec!["127.0.0.1:8001", " HTTPS://node-2:8002 "],
    ] {
        match Client::with_http2(&endpoints, ClientOptions::default()) {
            Err(ClientError::InvalidInput(message)) => {
                assert!(message.contains("plaintext"), "{message}")
            }
            other => panic!("{endpoints:?}: expected invalid input, got {other:?}"),
        }
    }
    assert!(matches!(
        Client::with_http2(Vec::<String>::new(), ClientOptions::default()),
        Err(ClientError::InvalidInput(_))
    ));
    let client = Client::with_http2(["http://127.0.0.1:8001"], ClientOptions::default());
    assert_eq!(
        client.expect("a plain endpoint").endpoints(),
        ["http://127.0.0.1:8001"]
    );
}
