//! Watch, one test per guarantee the README states: events in revision order; none missing
//! and none repeated between the start revision and now; a transaction's events together; a
//! watch resumed at `last seen + 1` after a disconnect or the watched node's crash goes on
//! without a gap; progress while idle; a slow watcher cancelled with where to resume; a
//! compacted start refused.

use std::time::Duration;

use raftkv_client::api::{CancelReason, EventType, WatchEvents};

use crate::common::{wait_for, TestCluster};
use crate::sse::{Message, Watch};

/// Puts `key` = `value` through node `index`; returns the write's revision.
async fn put(cluster: &TestCluster, index: usize, key: &str, value: &str) -> u64 {
    let (status, _, body) = cluster
        .request(index, "PUT", &key_path(key), &[], value.to_owned())
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: raftkv_client::api::WriteResponse =
        serde_json::from_slice(&body).expect("a WriteResponse");
    assert!(
        answer.revision > 1,
        "every write answer carries its revision"
    );
    answer.revision
}

/// The path of `key` (one percent-encoded segment).
fn key_path(key: &str) -> String {
    format!("/v1/kv/{}", key.replace('/', "%2F"))
}

/// Reads events until one at `last` or later; returns them all.
async fn events_through(watch: &mut Watch, last: u64) -> Vec<WatchEvents> {
    let mut seen = Vec::new();
    while seen
        .last()
        .is_none_or(|events: &WatchEvents| events.revision < last)
    {
        seen.push(watch.next_events().await);
    }
    seen
}

fn revisions(seen: &[WatchEvents]) -> Vec<u64> {
    seen.iter().map(|events| events.revision).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_revision_order_with_the_values_written() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let mut watch = Watch::open(&cluster, follower, "prefix=order/", &[])
        .await
        .expect("watch opens");
    let mut written = Vec::new();
    for round in 0..20 {
        let key = format!("order/{}", round % 4);
        let value = format!("v{round}");
        let revision = put(&cluster, leader, &key, &value).await;
        written.push((revision, key, value));
    }
    let (status, _, body) = cluster
        .request(leader, "DELETE", "/v1/kv/order%2F0", &[], "")
        .await;
    assert_eq!(status, 200);
    let deleted: raftkv_client::api::DeleteResponse = serde_json::from_slice(&body).expect("JSON");
    let seen = events_through(&mut watch, deleted.revision).await;
    assert_eq!(
        revisions(&seen),
        written
            .iter()
            .map(|(revision, ..)| *revision)
            .chain([deleted.revision])
            .collect::<Vec<_>>(),
        "every write, in revision order, from a follower"
    );
    for (events, (revision, key, value)) in seen.iter().zip(&written) {
        let [event] = &events.events[..] else {
            panic!("one event per put: {events:?}");
        };
        assert_eq!(event.kind, EventType::Put);
        assert_eq!(&event.kv.key, key);
        assert_eq!(event.kv.value.as_deref(), Some(value.as_str()));
        assert_eq!(event.kv.mod_revision, *revision);
    }
    let last = &seen.last().expect("the delete").events[0];
    assert_eq!(last.kind, EventType::Delete);
    assert_eq!((last.kv.key.as_str(), last.kv.version), ("order/0", 0));
}

/// A watch started at a past revision while writes go on catches up from history and then
/// follows live: the switch neither loses nor repeats a revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_the_past_during_writes_misses_nothing_and_repeats_nothing() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let start = put(&cluster, leader, "gap/first", "0").await;
    let writer = {
        let client = cluster.client();
        tokio::spawn(async move {
            let mut revisions = Vec::new();
            for round in 0..150 {
                let answer = client
                    .put(&format!("gap/{}", round % 5), format!("{round}"))
                    .await
                    .expect("write");
                revisions.push(answer.revision);
            }
            revisions
        })
    };
    // Opened while the writer runs, on each node, from the revision before the writes.
    let mut watches = Vec::new();
    for index in 0..3 {
        let query = format!("prefix=gap/&start_revision={start}");
        watches.push(
            Watch::open(&cluster, index, &query, &[])
                .await
                .expect("opens"),
        );
    }
    let mut expected = vec![start];
    expected.extend(writer.await.expect("the writer"));
    let last = *expected.last().expect("writes");
    for (index, watch) in watches.iter_mut().enumerate() {
        let seen = events_through(watch, last).await;
        assert_eq!(revisions(&seen), expected, "node {}", index + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_at_the_revision_after_the_last_seen_continues_without_a_gap() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let watched = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut watch = Watch::open(&cluster, watched, "key=resume", &[])
        .await
        .expect("opens");
    let mut written = Vec::new();
    for round in 0..5 {
        written.push(put(&cluster, leader, "resume", &round.to_string()).await);
    }
    let seen = events_through(&mut watch, written[4]).await;
    assert_eq!(revisions(&seen), written);
    // A disconnect: the client goes away; writes go on.
    drop(watch);
    for round in 5..10 {
        written.push(put(&cluster, leader, "resume", &round.to_string()).await);
    }
    // Resumed with Last-Event-ID, as a browser's EventSource does.
    let last_seen = written[4].to_string();
    let mut resumed = Watch::open(
        &cluster,
        watched,
        "key=resume",
        &[("last-event-id", &last_seen)],
    )
    .await
    .expect("opens");
    let seen = events_through(&mut resumed, written[9]).await;
    assert_eq!(revisions(&seen), written[5..10]);
    // The watched node crashes; the watch resumes on another node.
    drop(resumed);
    cluster.kill(watched);
    for round in 10..15 {
        written.push(put(&cluster, leader, "resume", &round.to_string()).await);
    }
    let query = format!("key=resume&start_revision={}", written[9] + 1);
    let mut elsewhere = Watch::open(&cluster, other, &query, &[])
        .await
        .expect("opens");
    let seen = events_through(&mut elsewhere, written[14]).await;
    assert_eq!(revisions(&seen), written[10..15], "no gap across nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watch_is_told_the_revision_reached_while_its_keys_do_not_change() {
    // Short connection timeouts: a watch is an answer in progress, which neither the idle
    // timeout nor the request head's read timeout may cut.
    let timeouts = [
        "--http-idle-timeout-ms",
        "300",
        "--http-request-read-timeout-ms",
        "300",
    ];
    let cluster = TestCluster::start(3, &timeouts).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let mut watch = Watch::open(&cluster, follower, "key=idle&progress_interval_ms=100", &[])
        .await
        .expect("opens");
    let busy = put(&cluster, leader, "busy", "x").await;
    let reached = loop {
        match watch.next().await {
            Some(Message::Progress(progress)) if progress.revision >= busy => break progress,
            Some(Message::Progress(_)) => continue,
            other => panic!("only progress on an idle watch: {other:?}"),
        }
    };
    assert!(reached.revision >= busy);
    // Idle for many times the connection timeouts: progress goes on, all at that revision.
    let started = std::time::Instant::now();
    let mut notifications = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        match watch.next().await {
            Some(Message::Progress(progress)) => {
                assert_eq!(progress.revision, reached.revision, "nothing changed");
                notifications += 1;
            }
            other => panic!("only progress on an idle watch: {other:?}"),
        }
    }
    assert!(
        notifications >= 5,
        "{notifications} progress notifications in 1.5 s"
    );
    // The default interval is the server's (--watch-progress-interval-ms; 10 s by default).
    let quiet = Watch::open(&cluster, follower, "key=idle&progress_interval_ms=0", &[]).await;
    let mut quiet = quiet.expect("opens");
    let nothing = tokio::time::timeout(Duration::from_millis(500), quiet.next()).await;
    assert!(nothing.is_err(), "no progress when it is off: {nothing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_too_slow_is_cancelled_with_a_resume_revision_that_then_works() {
    // A window of 8 revisions, and values large enough that the socket buffers between the
    // node and the unread watch fill long before the writes end.
    let cluster = TestCluster::start(3, &["--watch-window-revisions", "8"]).await;
    let leader = cluster.wait_for_leader().await;
    let first = put(&cluster, leader, "slow/start", "0").await;
    let query = format!("prefix=slow/&start_revision={first}");
    let mut slow = Watch::open(&cluster, leader, &query, &[])
        .await
        .expect("opens");
    let value = "v".repeat(64 * 1024);
    let client = cluster.client();
    let mut last = first;
    for round in 0..300 {
        last = client
            .put(&format!("slow/{}", round % 10), value.clone())
            .await
            .expect("write")
            .revision;
    }
    // Now it reads: whatever came before the cancellation is gap-free from the start, and the
    // cancellation names the next revision.
    let mut expected = first;
    let cancelled = loop {
        match slow.next().await.expect("a message") {
            Message::Events { body, .. } => {
                assert_eq!(body.revision, expected, "no gap before the cancellation");
                expected += 1;
            }
            Message::Progress(_) => {}
            Message::Cancelled(cancelled) => break cancelled,
        }
    };
    assert_eq!(cancelled.reason, CancelReason::Lagged, "{cancelled:?}");
    assert_eq!(cancelled.resume_revision, expected, "never skipped ahead");
    assert!(cancelled.resume_revision <= last);
    assert!(slow.next().await.is_none(), "the stream ends after it");
    let query = format!("prefix=slow/&start_revision={}", cancelled.resume_revision);
    let mut resumed = Watch::open(&cluster, leader, &query, &[])
        .await
        .expect("opens");
    let seen = events_through(&mut resumed, last).await;
    assert_eq!(
        revisions(&seen),
        (cancelled.resume_revision..=last).collect::<Vec<_>>(),
        "resumed from history without a gap"
    );
    let lagged = cluster
        .metric(leader, "raftkv_watch_cancelled_lagged_total")
        .await;
    assert_eq!(lagged, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_compacted_revision_is_refused_naming_the_oldest_available() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let mut last = 0;
    for round in 0..6 {
        last = put(&cluster, leader, "compacted", &round.to_string()).await;
    }
    let (status, _, body) = cluster
        .request(
            leader,
            "POST",
            "/v1/compact",
            &[],
            format!("{{\"revision\": {}}}", last - 2),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Every node applies the compaction; each refuses the watch once it has.
    for index in 0..3 {
        let refused = wait_for("the compaction is applied", || async {
            let query = format!("key=compacted&start_revision={}", last - 3);
            Watch::open(&cluster, index, &query, &[]).await.err()
        })
        .await;
        assert_eq!(refused.status, 410, "{refused:?}");
        let error = refused.revision_error();
        assert_eq!(error.compact_revision, last - 2);
        assert!(error.revision >= last);
        assert!(
            error.error.contains(&(last - 2).to_string()),
            "{}",
            error.error
        );
    }
    // The compaction revision itself is still a valid start.
    let query = format!("key=compacted&start_revision={}", last - 2);
    let mut watch = Watch::open(&cluster, leader, &query, &[])
        .await
        .expect("opens");
    let seen = events_through(&mut watch, last).await;
    assert_eq!(revisions(&seen), (last - 2..=last).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopping_cancels_its_watches_with_where_to_resume_and_stops() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let watched = (leader + 1) % 3;
    let mut watch = Watch::open(&cluster, watched, "key=stop", &[])
        .await
        .expect("opens");
    let written = put(&cluster, leader, "stop", "1").await;
    assert_eq!(watch.next_events().await.revision, written);
    let status = cluster.terminate(watched).expect("was running");
    assert!(
        status.success(),
        "a clean stop with a watch open: {status:?}"
    );
    let cancelled = loop {
        match watch
            .next()
            .await
            .expect("the cancellation comes before the end")
        {
            Message::Cancelled(cancelled) => break cancelled,
            Message::Progress(_) => continue,
            other => panic!("nothing else was written: {other:?}"),
        }
    };
    assert_eq!(cancelled.reason, CancelReason::Stopping);
    assert_eq!(cancelled.resume_revision, written + 1);
    assert!(watch.next().await.is_none(), "the stream ends");
}
