//! The coordination commands end to end, as a user runs them against real `raftkv serve`
//! processes: `raftkv txn`, `get --revision`, `scan --revision`, `compact` and `raftkv watch`,
//! whose watch keeps printing every change once, in order, while the node it follows is
//! killed; and the Rust client's watch over HTTP/2. Every wait has a deadline.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{describe, raftkv, stdout, TestCluster, DEADLINE};

/// The revision in `succeeded revision=R ...` / `failed revision=R ...`.
fn txn_revision(first_line: &str) -> u64 {
    first_line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("revision="))
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {first_line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_runs_the_branch_its_comparisons_choose_from_the_command_line() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let endpoints = cluster.endpoints();

    let took = raftkv(
        &endpoints,
        &[
            "txn",
            "--compare",
            "version(lock) = 0",
            "--success",
            "put lock alice",
            "--success",
            "put owner/alice \"since nine\"",
            "--failure",
            "get lock",
        ],
    );
    assert_eq!(took.status.code(), Some(0), "{}", describe(&took));
    let lines: Vec<String> = stdout(&took).lines().map(str::to_string).collect();
    assert!(lines[0].starts_with("succeeded revision="), "{lines:?}");
    assert_eq!(
        lines[1..],
        ["put lock prev=(absent)", "put owner/alice prev=(absent)"]
    );
    let revision = txn_revision(&lines[0]);

    let refused = raftkv(
        &endpoints,
        &[
            "txn",
            "--compare",
            "version(lock) = 0",
            "--success",
            "put lock bob",
            "--failure",
            "get lock",
            "--failure",
            "scan owner/",
        ],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let text = stdout(&refused);
    assert_eq!(
        text,
        format!(
            "failed revision={revision} index={} term={}\n\
             get lock alice create={revision} mod={revision} version=1\n\
             scan owner/ keys=1\nowner/alice\tsince nine\n",
            field(&text, "index"),
            field(&text, "term")
        ),
        "a failed comparison changes nothing: the revision stays"
    );

    let bad = raftkv(&endpoints, &["txn", "--success", "put lock"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--success #1: `put` needs a value"));
}

/// The value of `NAME=value` in `text`.
fn field<'t>(text: &'t str, name: &str) -> &'t str {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name}= in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_at_a_revision_and_compaction_from_the_command_line() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let endpoints = cluster.endpoints();

    let first = raftkv(&endpoints, &["put", "lock", "alice"]);
    assert_eq!(first.status.code(), Some(0), "{}", describe(&first));
    let at_first = raftkv(&endpoints, &["get", "lock", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&at_first.stdout).expect("JSON");
    let revision = answer["revision"].as_u64().expect("a revision");
    assert_eq!(answer["kv"]["mod_revision"], revision);

    // The lock changes; the old value stays readable at its revision until compacted.
    let moved = raftkv(&endpoints, &["put", "lock", "carol"]);
    assert_eq!(moved.status.code(), Some(0), "{}", describe(&moved));
    let then = raftkv(
        &endpoints,
        &["get", "lock", "--revision", &revision.to_string()],
    );
    assert_eq!(stdout(&then), "alice\n", "{}", describe(&then));
    let scanned = raftkv(
        &endpoints,
        &[
            "scan",
            "--prefix",
            "lo",
            "--revision",
            &revision.to_string(),
        ],
    );
    assert_eq!(stdout(&scanned), "lock\talice\n", "{}", describe(&scanned));
    let json = raftkv(&endpoints, &["get", "lock", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(answer["kv"]["value"], "carol");
    assert_eq!(answer["kv"]["version"], 2);
    assert_eq!(answer["kv"]["create_revision"], revision);
    assert_eq!(answer["revision"], revision + 1);
    let future = raftkv(&endpoints, &["get", "lock", "--revision", "1000"]);
    assert_eq!(future.status.code(), Some(2), "{}", describe(&future));

    let compacted = raftkv(&endpoints, &["compact", &(revision + 1).to_string()]);
    assert_eq!(compacted.status.code(), Some(0), "{}", describe(&compacted));
    assert!(stdout(&compacted).starts_with(&format!("compacted compact_revision={}", revision + 1)));
    let gone = raftkv(
        &endpoints,
        &["get", "lock", "--revision", &revision.to_string()],
    );
    assert_eq!(gone.status.code(), Some(2), "{}", describe(&gone));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains(&format!(
            "the oldest revision available is {}",
            revision + 1
        )),
        "{}",
        describe(&gone)
    );
    let watch_gone = raftkv(
        &endpoints,
        &[
            "watch",
            "lock",
            "--revision",
            &revision.to_string(),
            "--count",
            "1",
        ],
    );
    assert_eq!(
        watch_gone.status.code(),
        Some(2),
        "{}",
        describe(&watch_gone)
    );
    assert!(
        String::from_utf8_lossy(&watch_gone.stderr)
            .contains(&format!("watch again with --revision {}", revision + 1)),
        "{}",
        describe(&watch_gone)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_every_change_once_in_order_while_its_node_is_killed() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let endpoints = cluster.endpoints();
    // Writes go through the nodes the watch does not start on.
    let writer = raftkv_client::Client::new(&endpoints[1..]).expect("client");
    let first = writer.put("svc/a", "1").await.expect("put");
    let start = first.revision;
    assert!(start > 0, "the server reports revisions");

    const WRITES: u64 = 40;
    let mut watch = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .args([
            "watch",
            "svc/",
            "--prefix",
            "--revision",
            &start.to_string(),
        ])
        .args([
            "--count",
            &WRITES.to_string(),
            "--progress-interval-ms",
            "500",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("raftkv watch starts");
    let (sender, lines) = mpsc::channel();
    let out = watch.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let receive = |seen: &mut Vec<String>| {
        let line = lines
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no watch line within {DEADLINE:?}; saw {seen:?}"));
        seen.push(line);
    };

    let mut seen = Vec::new();
    receive(&mut seen);
    let mut expected = vec![format!("{start}\tput\tsvc/a\t1")];
    for write in 2..=WRITES {
        if write == WRITES / 2 {
            // The watch follows node 1 (the first endpoint) and has printed everything so far;
            // node 1 dies mid-stream, and the rest must come through another node.
            while (seen.len() as u64) < write - 1 {
                receive(&mut seen);
            }
            cluster.kill(0);
        }
        let value = write.to_string();
        let written = writer
            .put(&format!("svc/{write}"), value.clone())
            .await
            .expect("the cluster keeps a majority");
        expected.push(format!("{}\tput\tsvc/{write}\t{value}", written.revision));
    }
    while (seen.len() as u64) < WRITES {
        receive(&mut seen);
    }
    assert_eq!(seen, expected, "every change once, in revision order");
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = watch.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "watch did not stop after --count"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "watch exits 0 after --count: {status}");
}

/// The Rust client's watch from now over HTTP/2 (one connection per node, the watch a stream of
/// it beside other requests): every later write arrives, each revision once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_watch_over_http2_sees_every_later_write() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let endpoints = cluster.endpoints();
    let options = raftkv_client::ClientOptions::default();
    let client = raftkv_client::Client::with_http2(&endpoints, options).expect("client");
    let before = client.put("job/before", "0").await.expect("put");
    // From the revision after `before`: a watch "from now" (`None`) reads the present in its
    // own task, after `watch` returned, so writes made at once may land before it.
    let mut watch = client.watch(raftkv_client::WatchRequest::prefix(
        "job/",
        Some(before.revision + 1),
    ));
    let mut written = Vec::new();
    for job in 1..=5 {
        let answer = client
            .put(&format!("job/{job}"), job.to_string())
            .await
            .expect("put");
        written.push((answer.revision, format!("job/{job}")));
    }
    let mut seen = Vec::new();
    // One deadline for the whole wait: progress messages alone must not keep it going.
    let until = tokio::time::Instant::now() + DEADLINE;
    while seen.len() < written.len() {
        let message = tokio::time::timeout_at(until, watch.next())
            .await
            .expect("a message within the deadline")
            .expect("the watch goes on")
            .expect("no error");
        if let raftkv_client::WatchMessage::Events(batch) = message {
            for event in batch.events {
                seen.push((batch.revision, event.kv.key));
            }
        }
    }
    assert_eq!(seen, written);
}
