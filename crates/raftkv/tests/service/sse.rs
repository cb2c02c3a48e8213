//! A watch as a test reads it: `GET /v1/watch` over a raw HTTP connection, its Server-Sent
//! Events parsed into the API's bodies.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use raftkv_client::api::{RevisionErrorResponse, WatchCancelled, WatchEvents, WatchProgress};

use crate::common::{TestCluster, DEADLINE};

/// One message of a watch stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `event: events`, with its `id:`.
    Events { id: u64, body: WatchEvents },
    /// `event: progress`.
    Progress(WatchProgress),
    /// `event: cancelled`.
    Cancelled(WatchCancelled),
}

/// An open watch.
pub struct Watch {
    body: hyper::body::Incoming,
    buffer: String,
}

/// A watch refused before its stream started: the status and the body.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: Bytes,
}

impl Refused {
    /// The body as a revision error.
    pub fn revision_error(&self) -> RevisionErrorResponse {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "a RevisionErrorResponse ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

impl Watch {
    /// Opens `GET /v1/watch?{query}` on node `index` with `headers`.
    pub async fn open(
        cluster: &TestCluster,
        index: usize,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Watch, Refused> {
        let client = HttpClient::builder(TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
        let mut request = hyper::Request::builder().method("GET").uri(format!(
            "http://{}/v1/watch?{query}",
            cluster.nodes[index].http
        ));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        let response = tokio::time::timeout(DEADLINE, client.request(request))
            .await
            .expect("an answer in time")
            .expect("the node answers");
        let (parts, body) = response.into_parts();
        if parts.status != 200 {
            let body = body.collect().await.expect("a body").to_bytes();
            return Err(Refused {
                status: parts.status.as_u16(),
                body,
            });
        }
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        assert_eq!(content_type, "text/event-stream");
        Ok(Watch {
            body,
            buffer: String::new(),
        })
    }

    /// The next message, or `None` when the stream ended; fails after `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Message> {
        tokio::time::timeout(within, self.next_message())
            .await
            .unwrap_or_else(|_| panic!("no watch message within {within:?}"))
    }

    /// The next message, or `None` when the stream ended; fails after [`DEADLINE`].
    pub async fn next(&mut self) -> Option<Message> {
        self.next_within(DEADLINE).await
    }

    /// The next events message, skipping progress; fails on anything else.
    pub async fn next_events(&mut self) -> WatchEvents {
        loop {
            match self.next().await {
                Some(Message::Events { id, body }) => {
                    assert_eq!(id, body.revision, "the SSE id is the revision");
                    return body;
                }
                Some(Message::Progress(_)) => continue,
                other => panic!("events expected, got {other:?}"),
            }
        }
    }

    async fn next_message(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(message) = parse_block(&block) {
                    return Some(message);
                }
                continue;
            }
            let frame = self.body.frame().await?.expect("the stream breaks not");
            if let Ok(data) = frame.into_data() {
                self.buffer
                    .push_str(std::str::from_utf8(&data).expect("UTF-8"));
            }
        }
    }
}

/// One SSE message block (lines up to a blank one); comments alone are none.
fn parse_block(block: &str) -> Option<Message> {
    let (mut event, mut id, mut data) = (None, None, String::new());
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            event = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.trim().parse::<u64>().expect("a numeric id"));
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    let json = |what: &str| -> serde_json::Value {
        serde_json::from_str(&data).unwrap_or_else(|error| panic!("{what} JSON ({error}): {data}"))
    };
    match event.as_deref()? {
        "events" => Some(Message::Events {
            id: id.expect("events carry an id"),
            body: serde_json::from_value(json("events")).expect("WatchEvents"),
        }),
        "progress" => Some(Message::Progress(
            serde_json::from_value(json("progress")).expect("WatchProgress"),
        )),
        "cancelled" => Some(Message::Cancelled(
            serde_json::from_value(json("cancelled")).expect("WatchCancelled"),
        )),
        other => panic!("unknown event `{other}`"),
    }
}
