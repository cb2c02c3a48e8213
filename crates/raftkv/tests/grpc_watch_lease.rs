//! The etcd v3 Watch and Lease services of real `raftkv serve` processes, driven with the
//! generated etcd clients (`raftkv_etcd_api`): what etcd's clients see.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftkv_client::{Client, ClientOptions, Consistency};
use raftkv_etcd_api::etcdserverpb::lease_client::LeaseClient;
use raftkv_etcd_api::etcdserverpb::watch_client::WatchClient;
use raftkv_etcd_api::etcdserverpb::watch_create_request::FilterType;
use raftkv_etcd_api::etcdserverpb::watch_request::RequestUnion;
use raftkv_etcd_api::etcdserverpb::*;
use raftkv_etcd_api::mvccpb::event::EventType;
use raftkv_etcd_api::mvccpb::Event;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use common::{free_port, wait_for, DEADLINE};

/// `raftkv serve` processes with the etcd API on.
struct GrpcCluster {
    nodes: Vec<GrpcNode>,
    _dir: tempfile::TempDir,
}

struct GrpcNode {
    http: String,
    grpc: String,
    log: PathBuf,
    process: Option<Child>,
}

impl GrpcCluster {
    /// Starts `size` nodes (each with `extra_args`) and waits until they agree on a leader.
    async fn start(size: u64, extra_args: &[&str]) -> GrpcCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ids: Vec<u64> = (1..=size).collect();
        let rafts: Vec<String> = ids
            .iter()
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let peers = ids
            .iter()
            .zip(&rafts)
            .map(|(id, raft)| format!("{id}={raft}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (id, raft) in ids.iter().zip(&rafts) {
            let http = format!("127.0.0.1:{}", free_port());
            let grpc = format!("127.0.0.1:{}", free_port());
            let log = dir.path().join(format!("node-{id}.log"));
            let out = std::fs::File::create(&log).expect("log file");
            let process = Command::new(env!("CARGO_BIN_EXE_raftkv"))
                .arg("serve")
                .args(["--id", &id.to_string()])
                .arg("--data-dir")
                .arg(dir.path().join(format!("node-{id}")))
                .args([
                    "--http-addr",
                    &http,
                    "--grpc-addr",
                    &grpc,
                    "--raft-addr",
                    raft,
                ])
                .args(["--peers", &peers, "--cluster-id", "raftkv-grpc-test"])
                .args(extra_args)
                .env("RAFTKV_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::from(out.try_clone().expect("log file")))
                .stderr(Stdio::from(out))
                .spawn()
                .expect("raftkv starts");
            nodes.push(GrpcNode {
                http,
                grpc,
                log,
                process: Some(process),
            });
        }
        let cluster = GrpcCluster { nodes, _dir: dir };
        cluster.leader().await;
        cluster
    }

    /// An HTTP client of every node (for the writes the test makes).
    fn client(&self) -> Client {
        let options = ClientOptions {
            request_timeout: Duration::from_secs(5),
            retry_deadline: DEADLINE,
        };
        Client::with_options(self.nodes.iter().map(|node| node.http.clone()), options)
            .expect("valid endpoints")
    }

    /// The index of the leader every node names.
    async fn leader(&self) -> usize {
        let client = self.client();
        wait_for("a leader every node knows", || {
            let client = &client;
            async move {
                let mut leaders = Vec::new();
                for node in &self.nodes {
                    let status = client.status(&node.http).await.ok()?;
                    status.leader_http.as_ref()?;
                    leaders.push(status.leader?);
                }
                let first = *leaders.first()?;
                leaders
                    .iter()
                    .all(|leader| *leader == first)
                    .then(|| (first - 1) as usize)
            }
        })
        .await
    }

    async fn channel(&self, index: usize) -> Channel {
        Channel::from_shared(format!("http://{}", self.nodes[index].grpc))
            .expect("a valid URI")
            .connect_timeout(DEADLINE)
            .connect()
            .await
            .expect("the gRPC API answers")
    }

    async fn watch_stream(&self, index: usize) -> WatchStream {
        WatchStream::open(self.channel(index).await).await
    }

    async fn lease_client(&self, index: usize) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel(index).await)
    }

    /// The value of the metric sample `series` on node `index`.
    async fn metric(&self, index: usize, series: &str) -> f64 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut connection = tokio::net::TcpStream::connect(&self.nodes[index].http)
            .await
            .expect("the HTTP API answers");
        connection
            .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .await
            .expect("sent");
        let mut answer = String::new();
        connection
            .read_to_string(&mut answer)
            .await
            .expect("an answer");
        answer
            .lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.split_whitespace().last())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("node {} exports {series}", index + 1))
    }

    /// SIGTERMs node `index`; returns its process, to wait for.
    fn sigterm(&mut self, index: usize) -> Child {
        let process = self.nodes[index].process.take().expect("running");
        let pid = i32::try_from(process.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid with a valid signal.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        process
    }
}

/// Waits (within the deadline) for `process` to exit, while the test's clients go on (they
/// run on the test's runtime).
async fn exited(mut process: Child) {
    let deadline = Instant::now() + DEADLINE;
    while !matches!(process.try_wait(), Ok(Some(_))) {
        assert!(Instant::now() < deadline, "node did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for GrpcCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if std::thread::panicking() {
                common::print_log_tail(&node.grpc, &node.log, 30);
            }
            if let Some(mut process) = node.process.take() {
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }
}

/// One Watch stream: requests in, responses out.
struct WatchStream {
    requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

impl WatchStream {
    async fn open(channel: Channel) -> WatchStream {
        let (requests, outgoing) = mpsc::channel(16);
        let responses = WatchClient::new(channel)
            .watch(ReceiverStream::new(outgoing))
            .await
            .expect("the watch stream opens")
            .into_inner();
        WatchStream {
            requests,
            responses,
        }
    }

    async fn send(&self, request: RequestUnion) {
        self.requests
            .send(WatchRequest {
                request_union: Some(request),
            })
            .await
            .expect("the stream takes requests");
    }

    async fn create(&self, create: WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(create)).await;
    }

    /// The next response, within the deadline.
    async fn next(&mut self) -> WatchResponse {
        tokio::time::timeout(DEADLINE, self.responses.message())
            .await
            .expect("a response within the deadline")
            .expect("no error")
            .expect("the stream goes on")
    }

    /// Reads responses until one with events; returns it.
    async fn next_events(&mut self) -> WatchResponse {
        loop {
            let response = self.next().await;
            if !response.events.is_empty() {
                return response;
            }
        }
    }

    /// Reads the responses of watch `watch_id` until they held `count` events (a response
    /// may hold several revisions' events); returns them in order. Responses of other
    /// watches go to `others`.
    async fn events_of_watch(
        &mut self,
        watch_id: i64,
        count: usize,
        others: &mut Vec<WatchResponse>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        while events.len() < count {
            let response = self.next().await;
            if response.watch_id == watch_id {
                assert!(!response.canceled, "{response:?}");
                events.extend(response.events);
            } else {
                others.push(response);
            }
        }
        assert_eq!(events.len(), count, "no more than asked for");
        events
    }
}

fn create(key: &str, range_end: &[u8]) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.as_bytes().to_vec().into(),
        range_end: range_end.to_vec().into(),
        ..WatchCreateRequest::default()
    }
}

/// The revisions of `events`.
fn mod_revisions(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .map(|event| event.kv.as_ref().expect("a key").mod_revision as u64)
        .collect()
}

fn revision_of(response: &WatchResponse) -> i64 {
    response.header.as_ref().expect("a header").revision
}

/// The events of a response as (type, key, value, previous value).
fn events_of(response: &WatchResponse) -> Vec<(EventType, String, String, Option<String>)> {
    response
        .events
        .iter()
        .map(|event| {
            let kv = event.kv.as_ref().expect("a key");
            (
                EventType::try_from(event.r#type).expect("a known type"),
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
                event
                    .prev_kv
                    .as_ref()
                    .map(|prev| String::from_utf8_lossy(&prev.value).into_owned()),
            )
        })
        .collect()
}

#[tokio::test]
async fn watches_share_a_stream_with_their_ids_history_prev_kv_filters_and_cancel() {
    let cluster = GrpcCluster::start(1, &[]).await;
    let client = cluster.client();
    let first = client.put("a", "1").await.expect("put").revision;
    client.put("a", "2").await.expect("put");
    let mut stream = cluster.watch_stream(0).await;

    // From an old revision, with previous values: caught up from history.
    let mut from_history = create("a", b"");
    from_history.start_revision = i64::try_from(first).expect("fits");
    from_history.prev_kv = true;
    stream.create(from_history).await;
    let created = stream.next().await;
    assert!(created.created && !created.canceled, "{created:?}");
    assert_eq!(created.watch_id, 0, "the server's ids start at 0");
    let put = |key: &str, value: &str, prev: Option<&str>| {
        (
            EventType::Put,
            key.to_string(),
            value.to_string(),
            prev.map(str::to_string),
        )
    };
    // Both from history: etcd sends them in one response, as raftkv does.
    let events = stream.next_events().await;
    assert_eq!(
        events_of(&events),
        [put("a", "1", None), put("a", "2", Some("1"))],
        "a creation has no previous version"
    );
    assert_eq!(mod_revisions(&events.events), [first, first + 1]);
    assert!(
        revision_of(&events) > first as i64,
        "the header is past both"
    );

    // A prefix, deletes only; then the ids: the next free one, and a taken one refused.
    let mut deletes = create("p/", b"p0");
    deletes.filters = vec![FilterType::Noput as i32];
    stream.create(deletes).await;
    let created = stream.next().await;
    assert_eq!((created.created, created.watch_id), (true, 1));
    let mut taken = create("x", b"");
    taken.watch_id = 1;
    stream.create(taken).await;
    let refused = stream.next().await;
    assert!(refused.created && refused.canceled, "{refused:?}");
    assert_eq!(refused.watch_id, -1);
    assert_eq!(
        refused.cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    stream.create(create("b", b"a")).await;
    let empty = stream.next().await;
    assert!(empty.created && empty.canceled);
    assert_eq!(empty.cancel_reason, "mvcc: watcher range is empty");
    let mut chosen = create("c", b"");
    chosen.watch_id = 7;
    stream.create(chosen).await;
    assert_eq!(stream.next().await.watch_id, 7, "the client's id is kept");

    client.put("p/x", "1").await.expect("put");
    let deleted = client.delete("p/x").await.expect("delete").revision;
    client.put("a", "3").await.expect("put");
    // Each watch gets its own events, in revision order (etcd orders events per watch).
    let mut others = Vec::new();
    let deletes = stream.events_of_watch(1, 1, &mut others).await;
    assert_eq!(deletes[0].r#type, EventType::Delete as i32);
    assert_eq!(mod_revisions(&deletes), [deleted]);
    let mut puts = others
        .drain(..)
        .inspect(|response| assert_eq!(response.watch_id, 0, "{response:?}"))
        .flat_map(|response| response.events)
        .collect::<Vec<_>>();
    if puts.is_empty() {
        puts = stream.events_of_watch(0, 1, &mut others).await;
    }
    let response = WatchResponse {
        events: puts,
        ..WatchResponse::default()
    };
    assert_eq!(events_of(&response), [put("a", "3", Some("2"))]);

    // Cancel: answered; a cancel of an unknown id is not answered at all (as etcd).
    stream
        .send(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: 99,
        }))
        .await;
    stream
        .send(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: 0,
        }))
        .await;
    let cancelled = stream.next().await;
    assert!(
        cancelled.canceled && cancelled.watch_id == 0,
        "{cancelled:?}"
    );
    let last = client.put("a", "4").await.expect("put").revision;
    stream
        .send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    let progress = stream.next().await;
    assert_eq!(progress.watch_id, -1, "{progress:?}");
    assert!(progress.events.is_empty());
    assert!(
        revision_of(&progress) >= last as i64,
        "every watch caught up"
    );
    let watchers = "raftkv_watch_watchers_open";
    assert_eq!(cluster.metric(0, watchers).await, 2.0, "watches 1 and 7");
    drop(stream);
    wait_for("the stream's watchers are dropped", || async {
        (cluster.metric(0, watchers).await == 0.0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_watch_from_a_compacted_revision_is_created_then_canceled_with_the_compaction() {
    let cluster = GrpcCluster::start(1, &[]).await;
    let client = cluster.client();
    let mut last = 0;
    for value in ["1", "2", "3"] {
        last = client.put("k", value).await.expect("put").revision;
    }
    client.compact(last).await.expect("compact");
    let mut stream = cluster.watch_stream(0).await;
    let mut old = create("k", b"");
    old.start_revision = 2;
    stream.create(old).await;
    let created = stream.next().await;
    assert!(created.created && !created.canceled, "{created:?}");
    let compacted = stream.next().await;
    assert!(compacted.canceled, "{compacted:?}");
    assert_eq!(compacted.watch_id, created.watch_id);
    assert_eq!(compacted.compact_revision, last as i64);
    assert_eq!(revision_of(&compacted), 0, "etcd's header revision here");
    assert_eq!(
        compacted.cancel_reason,
        "etcdserver: mvcc: required revision has been compacted"
    );
    // At the compaction revision itself: still readable. The previous version of its
    // change (at the revision before) is compacted: left out, as etcd leaves it out.
    let mut at = create("k", b"");
    at.start_revision = last as i64;
    at.prev_kv = true;
    stream.create(at).await;
    assert!(stream.next().await.created);
    let events = stream.next_events().await;
    assert_eq!(
        events_of(&events),
        [(EventType::Put, "k".into(), "3".into(), None)]
    );
    client.put("k", "4").await.expect("put");
    let events = stream.next_events().await;
    assert_eq!(events_of(&events)[0].3.as_deref(), Some("3"));
}

#[tokio::test]
async fn an_idle_watch_gets_progress_notifications_and_a_large_revision_comes_in_fragments() {
    let cluster = GrpcCluster::start(1, &["--watch-progress-notify-interval", "300ms"]).await;
    let client = cluster.client();
    let mut stream = cluster.watch_stream(0).await;
    let mut quiet = create("quiet", b"");
    quiet.progress_notify = true;
    stream.create(quiet).await;
    assert!(stream.next().await.created);
    let busy = client.put("busy", "1").await.expect("put").revision;
    let started = Instant::now();
    let progress = loop {
        let response = stream.next().await;
        assert!(response.events.is_empty(), "{response:?}");
        if revision_of(&response) >= busy as i64 {
            break response;
        }
    };
    assert_eq!(progress.watch_id, 0);
    assert!(started.elapsed() < Duration::from_secs(10));

    // One revision of three 1 MB deletes (a lease revoke) with their previous values:
    // over 2 MiB, so it comes in two parts.
    let lease = client.lease_grant(60, None).await.expect("grant").id;
    let big = "v".repeat(1_000_000);
    for key in ["big/1", "big/2", "big/3"] {
        client
            .put_with_lease(key, big.clone(), lease)
            .await
            .expect("put");
    }
    let mut watch = create("big/", b"big0");
    watch.prev_kv = true;
    watch.fragment = true;
    watch.filters = vec![FilterType::Noput as i32];
    stream.create(watch).await;
    let created = loop {
        let response = stream.next().await;
        if response.created {
            break response;
        }
    };
    let mut leases = cluster.lease_client(0).await;
    leases
        .lease_revoke(LeaseRevokeRequest { id: lease as i64 })
        .await
        .expect("revoked");
    let mut parts = Vec::new();
    loop {
        let response = stream.next().await;
        if response.watch_id != created.watch_id || response.events.is_empty() {
            continue;
        }
        let last = !response.fragment;
        parts.push(response);
        if last {
            break;
        }
    }
    let sizes: Vec<usize> = parts.iter().map(|part| part.events.len()).collect();
    assert_eq!(
        sizes,
        [2, 1],
        "split under 2 MiB, fragment on all but the last"
    );
    for part in &parts {
        for event in &part.events {
            assert_eq!(event.r#type, EventType::Delete as i32);
            let prev = event.prev_kv.as_ref().expect("the deleted value");
            assert_eq!(prev.value.len(), big.len());
        }
    }
}

#[tokio::test]
async fn a_slow_reader_misses_nothing_and_a_stopping_node_ends_the_stream_unavailable() {
    let mut cluster = GrpcCluster::start(1, &["--watch-window-revisions", "8"]).await;
    let client = cluster.client();
    let mut stream = cluster.watch_stream(0).await;
    stream.create(create("s/", b"s0")).await;
    let created = stream.next().await;
    let start = revision_of(&created) + 1;
    // Nobody reads while 120 revisions of 128 KB pass a window of 8 (more than HTTP/2's
    // flow-control windows and the stream's queue hold): the watch falls behind it, and
    // catches up from history as etcd's slow watchers do.
    let value = "x".repeat(128 * 1024);
    let count = 120;
    for index in 0..count {
        client
            .put(&format!("s/{}", index % 7), value.clone())
            .await
            .expect("put");
    }
    let mut others = Vec::new();
    let events = stream
        .events_of_watch(created.watch_id, count as usize, &mut others)
        .await;
    let expected: Vec<u64> = (start..start + count)
        .map(|revision| revision as u64)
        .collect();
    assert_eq!(mod_revisions(&events), expected, "in order, none missing");
    assert!(
        cluster.metric(0, "raftkv_watch_cancelled_lagged").await > 0.0,
        "the watch did fall out of the window"
    );

    let process = cluster.sigterm(0);
    let ended = tokio::time::timeout(DEADLINE, stream.responses.message())
        .await
        .expect("the stream ends");
    let status = ended.expect_err("ended with a status");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "etcdserver: server stopped");
    exited(process).await;
}

#[tokio::test]
async fn leases_grant_keep_alive_tell_their_time_and_keys_and_revoke_as_etcd() {
    let cluster = GrpcCluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let client = cluster.client();
    for index in [leader, follower] {
        let mut leases = cluster.lease_client(index).await;
        let granted = leases
            .lease_grant(LeaseGrantRequest { ttl: 1, id: 0 })
            .await
            .expect("granted")
            .into_inner();
        assert!(granted.id > 0, "picked by the server");
        assert_eq!(granted.ttl, 2, "raised to the minimum");
        assert_eq!(
            granted.header.as_ref().expect("a header").member_id,
            index as u64 + 1,
            "the member asked answers"
        );
        let taken = leases
            .lease_grant(LeaseGrantRequest {
                ttl: 30,
                id: granted.id,
            })
            .await
            .expect_err("taken");
        assert_eq!(
            (taken.code(), taken.message()),
            (Code::FailedPrecondition, "etcdserver: lease already exists")
        );
        let long = leases
            .lease_grant(LeaseGrantRequest {
                ttl: 100_000_000_000,
                id: 0,
            })
            .await
            .expect_err("too long");
        assert_eq!(
            (long.code(), long.message()),
            (Code::OutOfRange, "etcdserver: too large lease TTL")
        );

        let id = granted.id + 1;
        leases
            .lease_grant(LeaseGrantRequest { ttl: 30, id })
            .await
            .expect("granted with its id");
        client
            .put_with_lease(&format!("held/{index}"), "v", id as u64)
            .await
            .expect("put");
        let alive = leases
            .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
            .await
            .expect("alive")
            .into_inner();
        assert_eq!((alive.id, alive.granted_ttl), (id, 30));
        assert!(alive.ttl > 0 && alive.ttl <= 30, "{alive:?}");
        assert_eq!(alive.keys, [format!("held/{index}").into_bytes()]);

        // Each keepalive is answered with the lease's TTL; a missing lease with TTL 0.
        let (requests, outgoing) = mpsc::channel(4);
        let mut answers = leases
            .lease_keep_alive(ReceiverStream::new(outgoing))
            .await
            .expect("the keepalive stream opens")
            .into_inner();
        for (asked, ttl) in [(id, 30), (id, 30), (424_242, 0)] {
            requests
                .send(LeaseKeepAliveRequest { id: asked })
                .await
                .expect("sent");
            let answer = tokio::time::timeout(DEADLINE, answers.message())
                .await
                .expect("answered in time")
                .expect("no error")
                .expect("an answer");
            assert_eq!((answer.id, answer.ttl), (asked, ttl));
        }
        drop(requests);

        let listed = leases
            .lease_leases(LeaseLeasesRequest {})
            .await
            .expect("listed")
            .into_inner();
        assert!(listed.leases.iter().any(|lease| lease.id == id));
        leases
            .lease_revoke(LeaseRevokeRequest { id })
            .await
            .expect("revoked");
        let missing = leases
            .lease_revoke(LeaseRevokeRequest { id })
            .await
            .expect_err("gone");
        assert_eq!(
            (missing.code(), missing.message()),
            (Code::NotFound, "etcdserver: requested lease not found")
        );
        let gone = leases
            .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
            .await
            .expect("answered")
            .into_inner();
        assert_eq!(
            (gone.id, gone.ttl),
            (id, -1),
            "etcd's TTL of a missing lease"
        );
        assert_eq!(
            client
                .get(&format!("held/{index}"), Consistency::Linearizable)
                .await
                .expect("read"),
            None,
            "the revoke deleted its key"
        );
    }
}
