//! The fake node these tests talk to: a plain TCP listener that records each request and
//! answers from a script of canned HTTP/1.1 responses, closing the connection after each, so
//! every request is seen exactly as sent and overlapping requests are counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raftkv_client::api::REQUEST_SEQ_HEADER;
use raftkv_client::ClientOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Largest request the fake node accepts; far above anything these tests send.
const REQUEST_BYTES_MAX: usize = 1024 * 1024;

/// A request as the fake node received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The request target: path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(found, _)| found.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn sequence(&self) -> Option<u64> {
        self.header(REQUEST_SEQ_HEADER)?.parse().ok()
    }
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Held back this long, to widen the window in which a second request could overlap.
    pub delay: Duration,
}

pub fn canned(status: u16, body: &str) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
        delay: Duration::ZERO,
    }
}

/// A fake node: answers the n-th request with the n-th canned answer, repeating the last.
pub struct FakeNode {
    pub address: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    /// The most requests it was serving at once.
    pub in_flight_max: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FakeNode {
    pub async fn start(script: Vec<Canned>) -> FakeNode {
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

    pub fn requests(&self) -> Vec<Recorded> {
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

pub async fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
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
pub async fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local address").to_string()
}

pub fn quick_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_deadline: Duration::from_secs(5),
    }
}

pub const WRITE_OK: &str = r#"{"index":7,"term":2}"#;
pub const NO_LEADER: &str = r#"{"error":"no leader"}"#;
