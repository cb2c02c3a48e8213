//! The etcd v3 KV service through etcd's own protocol: real `raftkv serve` processes with
//! `--grpc-addr`, driven by the generated client (`raftkv_etcd_api::kv_client::KvClient`).
//! Each answer asserted here is the one etcd 3.4 gives for the same request (checked by hand
//! against a real etcd; the report of issue 28 lists which).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::{free_port, wait_for};
use raftkv_client::{Client, ClientOptions};
use raftkv_etcd_api::etcdserverpb::{
    compare, range_request, request_op, response_op, CompactionRequest, Compare,
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use raftkv_etcd_api::kv_client::KvClient;
use tonic::transport::Channel;
use tonic::Code;

/// `raftkv serve` processes with the etcd API, killed when dropped.
struct GrpcCluster {
    nodes: Vec<(Child, String, String)>,
    _dir: tempfile::TempDir,
}

impl GrpcCluster {
    /// `size` nodes, each with `--grpc-addr`, and `extra` arguments for all.
    fn start(size: u64, extra: &[&str]) -> GrpcCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let addresses: Vec<(String, String, String)> = (1..=size)
            .map(|_| {
                (
                    format!("127.0.0.1:{}", free_port()),
                    format!("127.0.0.1:{}", free_port()),
                    format!("127.0.0.1:{}", free_port()),
                )
            })
            .collect();
        let peers = addresses
            .iter()
            .enumerate()
            .map(|(at, (_, raft, _))| format!("{}={raft}", at + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = addresses
            .into_iter()
            .enumerate()
            .map(|(at, (http, raft, grpc))| {
                let id = at + 1;
                let log_path: PathBuf = dir.path().join(format!("node-{id}.log"));
                let log = std::fs::File::create(&log_path).expect("log file");
                let child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
                    .arg("serve")
                    .args(["--id", &id.to_string()])
                    .arg("--data-dir")
                    .arg(dir.path().join(format!("node-{id}")))
                    .args([
                        "--http-addr",
                        &http,
                        "--raft-addr",
                        &raft,
                        "--grpc-addr",
                        &grpc,
                    ])
                    .args(["--peers", &peers, "--cluster-id", "raftkv-test"])
                    .args(extra)
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(log.try_clone().expect("log file")))
                    .stderr(Stdio::from(log))
                    .spawn()
                    .expect("raftkv starts");
                (child, http, grpc)
            })
            .collect();
        GrpcCluster { nodes, _dir: dir }
    }

    /// A KV client of node `index` (connects lazily).
    fn kv(&self, index: usize) -> KvClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.nodes[index].2))
            .expect("an address")
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        KvClient::new(channel)
    }

    /// The index of the node that leads, once every node names it.
    async fn leader(&self) -> usize {
        wait_for("a leader every node names", || async {
            let mut leaders = Vec::new();
            for (_, http, _) in &self.nodes {
                let client = Client::with_options(
                    [http.clone()],
                    ClientOptions {
                        request_timeout: Duration::from_secs(2),
                        retry_deadline: Duration::from_secs(2),
                    },
                )
                .ok()?;
                let status = client.status(http).await.ok()?;
                status.leader_http.as_ref()?;
                leaders.push(status.leader?);
            }
            let first = *leaders.first()?;
            leaders
                .iter()
                .all(|leader| *leader == first)
                .then(|| (first - 1) as usize)
        })
        .await
    }
}

impl Drop for GrpcCluster {
    fn drop(&mut self) {
        for (child, _, _) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        ..PutRequest::default()
    }
}

fn range(key: &str, range_end: &str) -> RangeRequest {
    RangeRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        range_end: Bytes::copy_from_slice(range_end.as_bytes()),
        ..RangeRequest::default()
    }
}

fn keys(kvs: &[raftkv_etcd_api::mvccpb::KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn op(request: request_op::Request) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

fn revision_of(header: Option<raftkv_etcd_api::etcdserverpb::ResponseHeader>) -> i64 {
    header.expect("a header").revision
}

/// Asserts `result` failed with etcd's `code` and `message`.
fn assert_status<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = result.expect_err("refused");
    assert_eq!(
        (status.code(), status.message()),
        (code, message),
        "{status:?}"
    );
}

#[tokio::test]
async fn puts_ranges_deletes_and_transactions_answer_as_etcd_does() {
    let cluster = GrpcCluster::start(1, &["--value-bytes-max", "1024"]);
    cluster.leader().await;
    let mut kv = cluster.kv(0);
    let first = wait_for("the first put", || {
        let mut kv = kv.clone();
        async move { kv.put(put("a", "1")).await.ok() }
    })
    .await
    .into_inner();
    let header = first.header.expect("a header");
    assert_eq!(header.revision, 2, "the put's own revision");
    assert_eq!(header.member_id, 1);
    assert!(header.raft_term >= 1);

    // put with prev_kv answers the key before the put.
    let mut again = put("a", "2");
    again.prev_kv = true;
    let answer = kv.put(again).await.expect("put").into_inner();
    let prev = answer.prev_kv.expect("a previous key");
    assert_eq!(
        (&prev.value[..], prev.mod_revision, prev.version),
        (&b"1"[..], 2, 1)
    );
    assert_eq!(revision_of(answer.header), 3);
    for (key, value) in [("b", "x"), ("c", "yy"), ("d", "0")] {
        kv.put(put(key, value)).await.expect("put");
    } // b 4, c 5, d 6

    // Limit, more and count; an end before the key selects nothing.
    let mut limited = range("a", "d");
    limited.limit = 2;
    let answer = kv.range(limited).await.expect("range").into_inner();
    assert_eq!(keys(&answer.kvs), ["a", "b"]);
    assert!(answer.more);
    assert_eq!(answer.count, 3);
    assert_eq!(revision_of(answer.header), 6);
    let answer = kv.range(range("d", "a")).await.expect("range").into_inner();
    assert_eq!((answer.kvs.len(), answer.count, answer.more), (0, 0, false));

    // Sorting by value with no order ascends; descending by create revision with a limit.
    let mut by_value = range("a", "\0");
    by_value.sort_target = range_request::SortTarget::Value as i32;
    let answer = kv.range(by_value).await.expect("range").into_inner();
    assert_eq!(keys(&answer.kvs), ["d", "a", "b", "c"]);
    let mut lock_recipe = range("a", "\0");
    lock_recipe.sort_order = range_request::SortOrder::Descend as i32;
    lock_recipe.sort_target = range_request::SortTarget::Create as i32;
    lock_recipe.max_create_revision = 4;
    lock_recipe.limit = 1;
    let answer = kv.range(lock_recipe).await.expect("range").into_inner();
    assert_eq!(keys(&answer.kvs), ["b"]);
    assert!(answer.more);
    assert_eq!(answer.count, 4);

    // Keys only, count only, serializable, and a read at an older revision.
    let mut keys_only = range("a", "c");
    keys_only.keys_only = true;
    keys_only.serializable = true;
    let answer = kv.range(keys_only).await.expect("range").into_inner();
    assert!(answer.kvs.iter().all(|kv| kv.value.is_empty()));
    let mut count_only = range("a", "\0");
    count_only.count_only = true;
    let answer = kv.range(count_only).await.expect("range").into_inner();
    assert_eq!((answer.kvs.len(), answer.count), (0, 4));
    let mut old = range("a", "");
    old.revision = 2;
    let answer = kv.range(old).await.expect("range").into_inner();
    assert_eq!(&answer.kvs[0].value[..], b"1");
    assert_eq!(
        revision_of(answer.header),
        6,
        "the header holds the current revision"
    );
    let mut future = range("a", "");
    future.revision = 60;
    assert_status(
        kv.range(future).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );

    // A range delete with prev_kv, at one revision; deleting nothing keeps the revision.
    let answer = kv
        .delete_range(DeleteRangeRequest {
            key: Bytes::from_static(b"c"),
            range_end: Bytes::from_static(b"\0"),
            prev_kv: true,
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(answer.deleted, 2);
    assert_eq!(keys(&answer.prev_kvs), ["c", "d"]);
    assert_eq!(revision_of(answer.header), 7);
    let answer = kv
        .delete_range(DeleteRangeRequest {
            key: Bytes::from_static(b"zz"),
            ..DeleteRangeRequest::default()
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!((answer.deleted, revision_of(answer.header)), (0, 7));

    // A transaction with a nested one: every comparison sees the state before the writes.
    let value_is = |key: &str, value: &str| Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Value as i32,
        key: Bytes::copy_from_slice(key.as_bytes()),
        target_union: Some(compare::TargetUnion::Value(Bytes::copy_from_slice(
            value.as_bytes(),
        ))),
        ..Compare::default()
    };
    let nested = TxnRequest {
        compare: vec![value_is("a", "2")],
        success: vec![
            op(request_op::Request::RequestPut(put("n", "then"))),
            op(request_op::Request::RequestRange(range("a", ""))),
        ],
        failure: vec![op(request_op::Request::RequestPut(put("n", "else")))],
    };
    let txn = TxnRequest {
        compare: vec![value_is("b", "x")],
        success: vec![
            op(request_op::Request::RequestPut(put("a", "3"))),
            op(request_op::Request::RequestTxn(nested)),
        ],
        failure: Vec::new(),
    };
    let answer = kv.txn(txn).await.expect("txn").into_inner();
    assert!(answer.succeeded);
    assert_eq!(revision_of(answer.header), 8);
    let Some(response_op::Response::ResponseTxn(inner)) = &answer.responses[1].response else {
        panic!("a nested response: {answer:?}");
    };
    assert!(inner.succeeded, "a was 2 before the outer put");
    assert_eq!(
        inner.header.as_ref().map(|header| header.revision),
        Some(0),
        "etcd leaves a nested transaction's header empty"
    );
    assert_eq!(
        answer.responses[0].response,
        Some(response_op::Response::ResponsePut(
            raftkv_etcd_api::etcdserverpb::PutResponse {
                header: Some(raftkv_etcd_api::etcdserverpb::ResponseHeader {
                    revision: 8,
                    ..Default::default()
                }),
                prev_kv: None,
            }
        )),
        "an inner response's header holds the transaction's revision only"
    );
    let Some(response_op::Response::ResponseRange(read)) = &inner.responses[1].response else {
        panic!("a range response: {inner:?}");
    };
    assert_eq!(
        &read.kvs[0].value[..],
        b"3",
        "the nested read sees the outer put"
    );

    // A comparison over a range: every key must hold.
    let version_above = |key: &str, end: &str, version: i64| Compare {
        result: compare::CompareResult::Greater as i32,
        target: compare::CompareTarget::Version as i32,
        key: Bytes::copy_from_slice(key.as_bytes()),
        range_end: Bytes::copy_from_slice(end.as_bytes()),
        target_union: Some(compare::TargetUnion::Version(version)),
    };
    let ranged = |compare| TxnRequest {
        compare: vec![compare],
        ..TxnRequest::default()
    };
    let held = kv
        .txn(ranged(version_above("a", "c", 0)))
        .await
        .expect("txn");
    assert!(held.into_inner().succeeded);
    let failed = kv
        .txn(ranged(version_above("a", "c", 1)))
        .await
        .expect("txn");
    assert!(!failed.into_inner().succeeded, "b has version 1");

    // Compaction: a future revision, then a real one, then again at it.
    assert_status(
        kv.compact(CompactionRequest {
            revision: 100,
            physical: false,
        })
        .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    let answer = kv
        .compact(CompactionRequest {
            revision: 5,
            physical: true,
        })
        .await
        .expect("compact");
    assert_eq!(revision_of(answer.into_inner().header), 8);
    assert_status(
        kv.compact(CompactionRequest {
            revision: 5,
            physical: false,
        })
        .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    let mut compacted = range("a", "");
    compacted.revision = 4;
    assert_status(
        kv.range(compacted).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
}

#[tokio::test]
async fn bad_requests_get_etcds_statuses_and_change_nothing() {
    let cluster = GrpcCluster::start(1, &["--value-bytes-max", "1024"]);
    cluster.leader().await;
    let mut kv = cluster.kv(0);
    wait_for("the first put", || {
        let mut kv = kv.clone();
        async move { kv.put(put("k", "v")).await.ok() }
    })
    .await;

    let with = |mut request: PutRequest, change: fn(&mut PutRequest)| {
        change(&mut request);
        request
    };
    let refusals = [
        (
            kv.put(put("", "v")).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        ),
        (
            kv.range(range("", "")).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        ),
        (
            kv.put(with(put("k", "v"), |put| put.ignore_value = true))
                .await
                .map(drop),
            Code::InvalidArgument,
            "etcdserver: value is provided",
        ),
        (
            kv.put(with(put("k", ""), |put| {
                put.ignore_lease = true;
                put.lease = 5;
            }))
            .await
            .map(drop),
            Code::InvalidArgument,
            "etcdserver: lease is provided",
        ),
        (
            kv.put(with(put("missing", ""), |put| put.ignore_value = true))
                .await
                .map(drop),
            Code::InvalidArgument,
            "etcdserver: key not found",
        ),
        (
            kv.put(with(put("k", "v"), |put| put.lease = 12345))
                .await
                .map(drop),
            Code::NotFound,
            "etcdserver: requested lease not found",
        ),
        (
            kv.put(put("k", &"x".repeat(1025))).await.map(drop),
            Code::InvalidArgument,
            "etcdserver: request is too large",
        ),
    ];
    for (result, code, message) in refusals {
        assert_status(result, code, message);
    }
    let not_utf8 = PutRequest {
        key: Bytes::from_static(b"\xff"),
        ..PutRequest::default()
    };
    let status = kv.put(not_utf8).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("raftkv:"), "{status:?}");
    let mut bad_sort = range("k", "");
    bad_sort.sort_order = 7;
    assert_status(
        kv.range(bad_sort).await,
        Code::InvalidArgument,
        "etcdserver: invalid sort option",
    );

    let twice = TxnRequest {
        success: vec![
            op(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: Bytes::from_static(b"a"),
                    range_end: Bytes::from_static(b"z"),
                    prev_kv: false,
                },
            )),
            op(request_op::Request::RequestPut(put("k", "2"))),
        ],
        ..TxnRequest::default()
    };
    assert_status(
        kv.txn(twice).await,
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );
    let too_many = TxnRequest {
        success: vec![op(request_op::Request::RequestRange(range("k", ""))); 129],
        ..TxnRequest::default()
    };
    assert_status(
        kv.txn(too_many).await,
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    let mut leased = put("other", "v");
    leased.lease = 99;
    let lease_in_txn = TxnRequest {
        success: vec![
            op(request_op::Request::RequestPut(put("k", "3"))),
            op(request_op::Request::RequestPut(leased)),
        ],
        ..TxnRequest::default()
    };
    assert_status(
        kv.txn(lease_in_txn).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );

    let answer = kv
        .range(range("a", "\0"))
        .await
        .expect("range")
        .into_inner();
    assert_eq!(keys(&answer.kvs), ["k"]);
    assert_eq!(
        &answer.kvs[0].value[..],
        b"v",
        "no refused request changed anything"
    );
    assert_eq!(revision_of(answer.header), 2);
}

#[tokio::test]
async fn followers_serve_reads_and_forward_writes_to_the_leader() {
    let cluster = GrpcCluster::start(3, &[]);
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut on_leader = cluster.kv(leader);
    let mut on_follower = cluster.kv(follower);
    // The follower forwards once it knows the leader's gRPC address (announced through the log).
    let answer = wait_for("a put through a follower", || {
        let mut kv = on_follower.clone();
        async move { kv.put(put("f", "1")).await.ok() }
    })
    .await
    .into_inner();
    let header = answer.header.expect("a header");
    assert_eq!(header.member_id, follower as u64 + 1, "the member called");
    let written = header.revision;

    let answer = on_leader
        .range(range("f", ""))
        .await
        .expect("range")
        .into_inner();
    assert_eq!(&answer.kvs[0].value[..], b"1");
    // A linearizable read on the follower sees the write it forwarded.
    let answer = on_follower
        .range(range("f", ""))
        .await
        .expect("range")
        .into_inner();
    assert_eq!(&answer.kvs[0].value[..], b"1");
    assert!(revision_of(answer.header) >= written);
    let txn = TxnRequest {
        success: vec![op(request_op::Request::RequestPut(put("g", "2")))],
        ..TxnRequest::default()
    };
    assert!(
        on_follower
            .txn(txn)
            .await
            .expect("txn")
            .into_inner()
            .succeeded
    );
}
