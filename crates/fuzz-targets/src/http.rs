//! raftkv's HTTP API ([`raftkv::http`]): the real router over a real single-node server (write-
//! ahead log in a scratch directory, Raft transport on a loopback port) in this process, driven
//! with one request per input through [`tower::ServiceExt::oneshot`].
//!
//! ```text
//!  input ─► requests (split on PART_SEPARATOR) ─► parse_request (text: "METHOD TARGET",
//!          header lines, blank line, body)
//!        ─► held back if it could make the server dial out (see `dials_nothing`)
//!        ─► router.oneshot ─► response checked ─► server replaced if it stopped leading alone
//! ```
//!
//! The server keeps its state from one input to the next, as a real one would; it is replaced
//! by a new one in a new directory when a request changed its membership, made it give up
//! leadership, or filled it past [`DATA_BYTES_MAX`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use axum::Router;
use raft_core::{Configuration, NodeId};
use raftkv::http::{router, AppState};
use raftkv::server::KvServer;
use raftkv::settings::ServeConfig;
use raftkv_client::api::{
    AddMemberRequest, CasRequest, ErrorResponse, TransferRequest, CLIENT_ID_HEADER,
    FORWARDED_HEADER, REQUEST_SEQ_HEADER,
};
use tower::ServiceExt;

use crate::{join_parts, scratch, split_parts, Seed};

/// Data the server may hold before it is replaced by an empty one.
const DATA_BYTES_MAX: u64 = 16 << 20;
/// How long a new server may take to elect itself.
const ELECTION_DEADLINE: Duration = Duration::from_secs(20);
/// Largest response body read.
const RESPONSE_BYTES_MAX: usize = 64 << 20;
/// This node.
const NODE: NodeId = NodeId(1);
/// Requests one input sends at most.
const REQUESTS_MAX: usize = 8;
/// Names the server's scratch directories, which outlive the process (it keeps its server to
/// the end and exits without dropping it): a later process removes them.
const HTTP_SCRATCH_PREFIX: &str = "fuzz-targets-http-";

/// The running server and its router.
struct Server {
    server: Arc<KvServer>,
    router: Router,
    /// Holds the data directory until the server is replaced.
    _directory: tempfile::TempDir,
}

/// What every input shares: a runtime and the server, started on first use.
struct Harness {
    runtime: tokio::runtime::Runtime,
    server: Option<Server>,
}

fn harness() -> MutexGuard<'static, Harness> {
    static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();
    let harness = HARNESS.get_or_init(|| {
        scratch::remove_abandoned(HTTP_SCRATCH_PREFIX);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => Mutex::new(Harness {
                runtime,
                server: None,
            }),
            Err(error) => panic!("cannot start a runtime: {error}"),
        }
    });
    // A panicking input leaves the harness as it was: usable by the next one.
    harness
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn start_server() -> Server {
    let directory = scratch::directory_of_this_process(HTTP_SCRATCH_PREFIX);
    let config = ServeConfig {
        id: NODE,
        data_dir: directory.path().join("node-1"),
        raft_addr: loopback(0),
        advertised_raft_addr: loopback(0),
        http_addr: loopback(8001),
        grpc_addr: None,
        peers: BTreeMap::from([(NODE, loopback(0))]),
        join: None,
        cluster_id: "fuzz".into(),
        // Small, so that snapshots and log compaction happen while fuzzing.
        snapshot_threshold_bytes: 1 << 20,
        sessions_max: 1000,
        key_bytes_max: raftkv_client::api::KEY_BYTES_MAX,
        value_bytes_max: raftkv_client::api::VALUE_BYTES_MAX,
        request_timeout: Duration::from_millis(500),
        tick: Duration::from_millis(5),
        worker_threads: Some(1),
        trust_unclean_restart: false,
        distrust_unclean_restart: false,
        coordination: Default::default(),
        consistency_check_interval: Duration::ZERO,
    };
    let server = match KvServer::start(config).await {
        Ok(server) => server,
        Err(error) => panic!("cannot start the server: {error}"),
    };
    let started = Instant::now();
    while !server.is_leader() {
        assert!(
            started.elapsed() < ELECTION_DEADLINE,
            "a single node elects itself within {ELECTION_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let router = router(AppState::new(Arc::clone(&server)));
    Server {
        server,
        router,
        _directory: directory,
    }
}

/// An address the server may dial: none at all, or loopback port 0 (refused at once).
fn harmless_address(text: &str) -> bool {
    text.parse::<SocketAddr>().map_or(true, |address| {
        address.ip().is_loopback() && address.port() == 0
    })
}

/// Whether sending `request` can make the server dial out.
///
/// A node dials every Raft address recorded for another node as soon as the record is
/// applied, and only two routes record one: adding a member, and an announcement by a member
/// (a node is a member once an address is recorded for it). Each takes it from its JSON body.
/// So a POST whose path may lead to either route passes only if its body is JSON in which no
/// string, wherever it is, is an address other than loopback port 0: a fuzzer must reach
/// nothing beyond this process.
fn dials_nothing(request: &Request<Body>, body: &[u8]) -> bool {
    let path = request.uri().path().to_ascii_lowercase();
    let may_record_address = request.method() == Method::POST
        && (path.contains('%') || path.contains("member") || path.contains("announce"));
    if !may_record_address {
        return true;
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => strings_are_harmless(&value),
        // Refused by the route too (both read the body with serde_json).
        Err(_) => false,
    }
}

fn strings_are_harmless(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => harmless_address(text),
        serde_json::Value::Array(values) => values.iter().all(strings_are_harmless),
        serde_json::Value::Object(fields) => fields
            .iter()
            .all(|(key, value)| harmless_address(key) && strings_are_harmless(value)),
        _ => true,
    }
}

/// Reads a request from its text form: `METHOD TARGET` (anything after a second space is
/// ignored), header lines `name: value`, an empty line, the body. `None` for what no HTTP
/// server would hand to a router (a method, URI or header that does not parse). The framing
/// headers are dropped: the body is whatever follows the empty line.
fn parse_request(data: &[u8]) -> Option<(Request<Body>, Vec<u8>)> {
    let (head, body) = match data.windows(2).position(|window| window == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head
        .split(|&byte| byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let mut request_line = lines.next()?.split(|&byte| byte == b' ');
    let method = Method::from_bytes(request_line.next()?).ok()?;
    let uri = Uri::try_from(request_line.next()?).ok()?;
    let mut builder = Request::builder().method(method).uri(uri);
    for line in lines {
        let colon = line.iter().position(|&byte| byte == b':')?;
        let name = HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        builder = builder.header(name, value);
    }
    let request = builder.body(Body::from(body.to_vec())).ok()?;
    Some((request, body.to_vec()))
}

/// Checks an answer: never a 500 (the API's answer to what cannot happen), a JSON body
/// wherever one is announced, and a 503 tells when to retry.
async fn check_response(response: axum::response::Response) {
    let status = response.status();
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the server met what it says cannot happen"
    );
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            response.headers().contains_key("retry-after"),
            "a 503 says when to retry"
        );
    }
    let body = match axum::body::to_bytes(response.into_body(), RESPONSE_BYTES_MAX).await {
        Ok(body) => body,
        Err(error) => panic!("the response body cannot be read: {error}"),
    };
    if !json {
        return;
    }
    if status.is_client_error() || status.is_server_error() {
        if status != StatusCode::CONFLICT {
            let error = serde_json::from_slice::<ErrorResponse>(&body);
            assert!(
                error.is_ok_and(|error| !error.error.is_empty()),
                "a JSON error says what is wrong: {}",
                String::from_utf8_lossy(&body)
            );
        }
    } else {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
            "a JSON body parses: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// Whether `server` must be replaced: it no longer leads a configuration of itself alone,
/// knows another node's address, or holds too much.
async fn must_replace(server: &KvServer) -> bool {
    let alone = Configuration::new([NODE]);
    let still_alone = match server.node().status().await {
        Ok(status) => status.configuration == alone,
        Err(_) => false,
    };
    let state = server.state();
    for (node, address) in state.raft_addresses() {
        assert!(
            *node == NODE.0 || harmless_address(address),
            "node {node} at {address} was recorded: the server may have dialed out"
        );
    }
    let others_known = state.raft_addresses().keys().any(|node| *node != NODE.0);
    !still_alone || !server.is_leader() || others_known || state.data_bytes() > DATA_BYTES_MAX
}

/// `data` as up to 8 HTTP requests (split on [`crate::PART_SEPARATOR`], each in the text form
/// of `parse_request`) sent in turn to a running single-node raftkv
/// ([`raftkv::http::router`]). The router answers every request without a panic or a 500, a
/// 503 carries Retry-After, and a JSON error body has an error message.
pub fn http_request(data: &[u8]) {
    let mut harness = harness();
    let Harness { runtime, server } = &mut *harness;
    runtime.block_on(async {
        for part in split_parts(data).into_iter().take(REQUESTS_MAX) {
            let Some((request, body)) = parse_request(part) else {
                continue;
            };
            if !dials_nothing(&request, &body) {
                continue;
            }
            if server.is_none() {
                *server = Some(start_server().await);
            }
            let Some(running) = server.as_ref() else {
                return;
            };
            let response = match running.router.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            check_response(response).await;
            if must_replace(&running.server).await {
                let stopping = Arc::clone(&running.server);
                *server = None;
                stopping.node().shutdown().await;
            }
        }
    });
}

/// A request's text form, as `parse_request` reads it.
fn request_text(head: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut text = head.as_bytes().to_vec();
    text.push(b'\n');
    for (name, value) in headers {
        text.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    text.push(b'\n');
    text.extend_from_slice(body);
    text
}

/// Seeds of [`http_request`]: every route, with sessions, consistencies and scan limits.
pub(crate) fn request_seeds() -> Vec<Seed> {
    let session = [(CLIENT_ID_HEADER, "17"), (REQUEST_SEQ_HEADER, "1")];
    let json_type = [("content-type", "application/json")];
    let cas = CasRequest {
        expect: Some("world".into()),
        value: "bye".into(),
    };
    let cas_absent = CasRequest {
        expect: None,
        value: "first".into(),
    };
    let member = AddMemberRequest {
        id: 1,
        raft_address: "127.0.0.1:0".into(),
    };
    let transfer = TransferRequest { to: 1 };
    let announcement = serde_json::json!({
        "node": 1,
        "http_address": "127.0.0.1:0",
        "raft_address": "127.0.0.1:0",
    });
    vec![
        (
            "put",
            request_text("PUT /v1/kv/hello HTTP/1.1", &[], b"world"),
        ),
        (
            "put_session",
            request_text("PUT /v1/kv/h%C3%A9llo", &session, b"\x00\xff"),
        ),
        (
            "put_text_session",
            request_text(
                "PUT /v1/kv/hello",
                &[
                    (CLIENT_ID_HEADER, "3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
                    (REQUEST_SEQ_HEADER, "2"),
                ],
                b"again",
            ),
        ),
        ("get", request_text("GET /v1/kv/hello", &[], b"")),
        (
            "get_stale",
            request_text("GET /v1/kv/hello?consistency=stale", &[], b""),
        ),
        (
            "get_lease",
            request_text("GET /v1/kv/hello?consistency=lease", &[], b""),
        ),
        ("delete", request_text("DELETE /v1/kv/hello", &session, b"")),
        (
            "append",
            request_text("POST /v1/kv/hello/append", &session, b"!"),
        ),
        (
            "cas",
            request_text(
                "POST /v1/kv/hello/cas",
                &json_type,
                &serde_json::to_vec(&cas).expect("an API type serializes"),
            ),
        ),
        (
            "cas_absent",
            request_text(
                "POST /v1/kv/new/cas",
                &session,
                &serde_json::to_vec(&cas_absent).expect("an API type serializes"),
            ),
        ),
        (
            "scan",
            request_text("GET /v1/kv?prefix=he&limit=10", &[], b""),
        ),
        (
            "scan_stale",
            request_text(
                "GET /v1/kv?prefix=%FF&limit=10000&consistency=stale",
                &[],
                b"",
            ),
        ),
        ("empty_key", request_text("PUT /v1/kv/", &[], b"x")),
        ("status", request_text("GET /v1/status", &[], b"")),
        ("metrics", request_text("GET /metrics", &[], b"")),
        ("members", request_text("GET /v1/members", &[], b"")),
        (
            "add_member",
            request_text(
                "POST /v1/members",
                &json_type,
                &serde_json::to_vec(&member).expect("an API type serializes"),
            ),
        ),
        (
            "transfer",
            request_text(
                "POST /v1/leader/transfer",
                &json_type,
                &serde_json::to_vec(&transfer).expect("an API type serializes"),
            ),
        ),
        (
            "announce",
            request_text(
                "POST /v1/internal/announce",
                &[(FORWARDED_HEADER, "1")],
                &serde_json::to_vec(&announcement).expect("an API type serializes"),
            ),
        ),
        (
            "demo_set",
            request_text("GET /set?key=demo&value=v", &[], b""),
        ),
        ("demo_get", request_text("GET /get?key=demo", &[], b"")),
        ("no_route", request_text("GET /v2/nothing", &[], b"")),
        (
            "put_then_read",
            join_requests(&[
                &request_text("PUT /v1/kv/k", &session, b"v"),
                &request_text("PUT /v1/kv/k", &session, b"v"),
                &request_text("GET /v1/kv/k?consistency=lease", &[], b""),
            ]),
        ),
    ]
}

/// Requests' text forms as one input.
fn join_requests(requests: &[&[u8]]) -> Vec<u8> {
    // join_parts starts with a flags byte, which this target does not have.
    join_parts(0, requests).split_off(1)
}
