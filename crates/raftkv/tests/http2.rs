//! HTTP/2 with prior knowledge (h2c) on the HTTP port, beside HTTP/1.1: a connection that
//! opens with HTTP/2's preface multiplexes its requests, and shutting the node down closes it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

mod common;

use common::{wait_for, TestCluster};

/// Opens an HTTP/2 connection to `address`; the connection runs on a task of its own.
async fn connect(address: &str) -> http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(address).await.expect("connects");
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("the node speaks HTTP/2");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// Sends one request over `sender`; returns the status and the body.
async fn exchange(
    mut sender: http2::SendRequest<Full<Bytes>>,
    address: &str,
    method: &str,
    path: &str,
    body: &'static [u8],
) -> (u16, Bytes) {
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .body(Full::new(Bytes::from_static(body)))
        .expect("a valid request");
    sender.ready().await.expect("the connection is open");
    let response = sender.send_request(request).await.expect("answered");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body arrives")
        .to_bytes();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_http2_connection_carries_many_requests_at_once_beside_http1() {
    let mut cluster = TestCluster::start(1, &[]).await;
    let address = cluster.nodes[0].http.clone();
    let sender = connect(&address).await;

    // 64 writes at once, each its own stream of the one connection.
    let writes = (0..64).map(|number| {
        let (sender, address) = (sender.clone(), address.clone());
        tokio::spawn(async move {
            let value: &'static [u8] = if number % 2 == 0 { b"even" } else { b"odd" };
            exchange(
                sender,
                &address,
                "PUT",
                &format!("/v1/kv/h2-{number}"),
                value,
            )
            .await
        })
    });
    for (number, write) in writes.enumerate() {
        let (status, body) = write.await.expect("no panic");
        assert_eq!(status, 200, "write {number}: {body:?}");
    }
    for number in [0, 1, 62, 63] {
        let (status, body) = exchange(
            sender.clone(),
            &address,
            "GET",
            &format!("/v1/kv/h2-{number}"),
            b"",
        )
        .await;
        assert_eq!(status, 200);
        let expected: &[u8] = if number % 2 == 0 { b"even" } else { b"odd" };
        assert_eq!(body, expected, "key h2-{number}");
    }

    // HTTP/1.1 on the same port reads what HTTP/2 wrote.
    let (status, _, body) = cluster
        .request(0, "GET", "/v1/kv/h2-63", &[], Bytes::new())
        .await;
    assert_eq!((status, body.as_ref()), (200, b"odd".as_ref()));

    // An open, idle HTTP/2 connection does not hold the node up when it stops (a node waits
    // for its connections to close; `terminate` fails the test after its deadline), and it is
    // closed.
    let status = cluster.terminate(0).expect("the node was running");
    assert!(status.success(), "{status:?}");
    wait_for("the HTTP/2 connection to close", || {
        let closed = sender.is_closed();
        async move { closed.then_some(()) }
    })
    .await;
}
