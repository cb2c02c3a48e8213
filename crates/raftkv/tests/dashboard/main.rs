//! The dashboard (`/ui`) in a real headless browser (Debian's `chromium`, driven through the
//! DevTools protocol: `cdp`), against three real `raftkv serve` processes. One cluster and
//! one browser for the whole story, told in the order an operator would see it:
//!
//! ```text
//!  open /ui on node 1 ─► three members, one leader (the one /v1/status names)
//!  a writer runs      ─► the writes per second and the commit index shown move
//!  a follower killed  ─► shown unreachable within seconds; restarted ─► shown up again
//!  "Make leader" on the page, confirmed in its dialog ─► the page and /v1/status agree on the
//!                       new leader; the events list tells the kill and the new leader
//!  "Compact history…" confirmed ─► the history shown starts at the revision offered
//!  phone width        ─► nothing wider than the screen
//!  screenshot         ─► target/tmp/dashboard.png; docs/dashboard.png (the README's) with
//!                         RAFTKV_UPDATE_SCREENSHOT=1
//!  tab closed         ─► node 1 stops asking the others for their status (no page, no cost)
//! ```
//!
//! Without chromium the test fails (it does not skip): see `cdp::chromium_path`.

#[path = "../common/mod.rs"]
mod common;

mod cdp;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdp::{Browser, Page};
use common::TestCluster;
use raftkv_client::Consistency;
use serde_json::Value;

/// The desktop viewport the screenshot is taken at.
const DESKTOP: (u32, u32) = (1280, 900);
/// A phone's viewport (an iPhone 12's CSS pixels).
const PHONE: (u32, u32) = (390, 844);
/// How soon a killed member must be shown down: the feed gathers every second and waits
/// 800 ms at most for a member.
const SHOWN_DOWN_WITHIN: Duration = Duration::from_secs(5);

/// The members the page shows: `[{id, role, health, membership}]`.
const MEMBERS: &str = "Array.from(document.querySelectorAll('#members tbody tr')).map(row => \
     ({ id: Number(row.dataset.member), role: row.dataset.role, health: row.dataset.health, \
        membership: row.dataset.membership }))";

/// The members the page shows, read from its table.
async fn members_shown(browser: &mut Browser, page: &Page) -> Vec<Value> {
    match browser.evaluate(page, MEMBERS).await {
        Value::Array(members) => members,
        other => panic!("the members table reads as {other}"),
    }
}

/// A number the page shows in the `data-value` of element `id`, if it shows one.
async fn shown_number(browser: &mut Browser, page: &Page, id: &str) -> Option<f64> {
    browser
        .evaluate(
            page,
            &format!("document.getElementById('{id}').dataset.value || null"),
        )
        .await
        .as_str()
        .and_then(|text| text.parse::<f64>().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_cluster_live_and_transfers_leadership() {
    let started = Instant::now();
    let mut cluster = TestCluster::start(3, &[]).await;
    let mut browser = Browser::launch(DESKTOP.0, DESKTOP.1);
    let page_url = format!("http://{}/ui", cluster.nodes[0].http);
    let page = browser.open(&page_url, DESKTOP.0, DESKTOP.1).await;

    // Three members, all up, exactly one leader: the one node 1's status names.
    browser
        .wait_for(
            &page,
            "three members up, one of them leader",
            &format!(
                "(() => {{ const members = {MEMBERS}; return members.length === 3 && \
                 members.every(member => member.health === 'up') && \
                 members.filter(member => member.role === 'leader').length === 1; }})()"
            ),
        )
        .await;
    let members = members_shown(&mut browser, &page).await;
    let leaders: Vec<u64> = members
        .iter()
        .filter(|member| member["role"] == "leader")
        .filter_map(|member| member["id"].as_u64())
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one leader shown: {members:?}");
    let status = cluster.status(0).await.expect("node 1 answers");
    assert_eq!(
        Some(leaders[0]),
        status.leader,
        "the page's leader is the cluster's"
    );
    assert!(members.iter().all(|member| member["membership"] == "voter"));

    // A writer: the writes per second and the commit index shown move.
    let commit_before = shown_number(&mut browser, &page, "commit")
        .await
        .unwrap_or(0.0);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let client = cluster.client_of(0);
        let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
        async move {
            // Bounded: stops when told, or after 90 s whatever happens.
            let deadline = Instant::now() + Duration::from_secs(90);
            let mut sequence = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                sequence += 1;
                let key = format!("dashboard/key-{}", sequence % 500);
                if client.put(&key, "value").await.is_ok() {
                    written.fetch_add(1, Ordering::Relaxed);
                }
                // A read for every two writes, so that the reads' line has something too.
                if sequence.is_multiple_of(2) {
                    let _ = client.get(&key, Consistency::Linearizable).await;
                }
            }
        }
    });
    browser
        .wait_for(
            &page,
            "the writes per second shown rise above zero",
            "Number(document.getElementById('writes-now').dataset.value || 0) > 0",
        )
        .await;
    browser
        .wait_for(
            &page,
            "the commit index shown moves by 50",
            &format!(
                "Number(document.getElementById('commit').dataset.value || 0) > {}",
                commit_before + 50.0
            ),
        )
        .await;
    assert!(written.load(Ordering::Relaxed) > 0, "the writer wrote");

    // A follower other than node 1 (which serves the page) is killed: shown down soon.
    let leader_index = (leaders[0] - 1) as usize;
    let victim = (1..3)
        .find(|index| *index != leader_index)
        .expect("a follower");
    let victim_id = cluster.nodes[victim].id;
    cluster.kill(victim);
    let killed_at = Instant::now();
    browser
        .wait_for_within(
            &page,
            &format!("node {victim_id} shown unreachable"),
            &format!("document.querySelector('#members tr[data-member=\"{victim_id}\"]').dataset.health === 'down'"),
            SHOWN_DOWN_WITHIN,
        )
        .await;
    let shown_down_after = killed_at.elapsed();
    println!("node {victim_id} shown down {shown_down_after:?} after it was killed");

    // "Make leader" on the one live follower, confirmed in the page's dialog.
    let target_index = (0..3)
        .find(|index| *index != leader_index && *index != victim)
        .expect("a live follower");
    let target_id = cluster.nodes[target_index].id;
    let transfer_button = format!("button[data-action=\"transfer\"][data-target=\"{target_id}\"]");
    browser
        .wait_for(
            &page,
            "the transfer button of the live follower",
            &format!(
                "document.querySelector('{}') !== null",
                transfer_button.replace('\'', "\\'")
            ),
        )
        .await;
    browser.click(&page, &transfer_button).await;
    browser
        .wait_for(
            &page,
            "the confirmation dialog opens",
            "document.getElementById('confirm-dialog').open",
        )
        .await;
    browser.click(&page, "#confirm-ok").await;
    browser
        .wait_for(
            &page,
            &format!("node {target_id} shown as the leader"),
            &format!(
                "document.getElementById('leader').dataset.leader === '{target_id}' && \
                 document.querySelector('#members tr[data-member=\"{target_id}\"]').dataset.role === 'leader'"
            ),
        )
        .await;
    let result = browser
        .evaluate(
            &page,
            "document.getElementById('action-result').textContent",
        )
        .await;
    assert!(
        result.as_str().is_some_and(|text| text.ends_with("done")),
        "the page reports the transfer done: {result}"
    );
    let status = cluster.status(0).await.expect("node 1 answers");
    assert_eq!(
        status.leader,
        Some(target_id),
        "/v1/status agrees with the page"
    );

    // The victim back: shown up again; the events list tells what happened.
    cluster.spawn(victim);
    browser
        .wait_for(
            &page,
            &format!("node {victim_id} shown up again"),
            &format!("document.querySelector('#members tr[data-member=\"{victim_id}\"]').dataset.health === 'up'"),
        )
        .await;
    browser
        .wait_for(
            &page,
            &format!("node {victim_id} shown caught up (lag below 100)"),
            &format!(
                "(() => {{ const lag = document.querySelector('#members tr[data-member=\"{victim_id}\"]').dataset.lag; \
                 return lag !== '' && Number(lag) < 100; }})()"
            ),
        )
        .await;
    let events = browser
        .evaluate(
            &page,
            "Array.from(document.querySelectorAll('#events li .what')).map(item => item.textContent)",
        )
        .await;
    let events: Vec<&str> = events
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        format!("node {victim_id} unreachable"),
        format!("node {target_id} elected leader"),
        format!("node {victim_id} reachable again"),
    ] {
        assert!(
            events.iter().any(|event| event.contains(&expected)),
            "the events list tells \"{expected}\": {events:?}"
        );
    }

    // Compaction from the page: its dialog offers the current revision; confirmed, the
    // history shown starts there.
    let compact_before = browser
        .evaluate(
            &page,
            "Number(document.getElementById('store-revision').dataset.compactRevision)",
        )
        .await
        .as_f64()
        .expect("the compact revision shown");
    browser.click(&page, "#compact").await;
    browser
        .wait_for(
            &page,
            "the compaction dialog opens with a revision",
            "document.getElementById('confirm-dialog').open && \
             Number(document.querySelector('#confirm-fields input').value) > 1",
        )
        .await;
    browser.click(&page, "#confirm-ok").await;
    browser
        .wait_for(
            &page,
            "the compacted history shown",
            &format!(
                "Number(document.getElementById('store-revision').dataset.compactRevision) > {compact_before} && \
                 /^Compact to revision \\d+: done$/.test(document.getElementById('action-result').textContent)"
            ),
        )
        .await;

    // At a phone's width nothing is wider than the screen.
    browser.resize(&page, PHONE.0, PHONE.1).await;
    let overflow = browser
        .evaluate(
            &page,
            "document.documentElement.scrollWidth - document.documentElement.clientWidth",
        )
        .await;
    assert_eq!(
        overflow.as_f64(),
        Some(0.0),
        "no horizontal scrolling on a phone"
    );
    let phone_shot = browser.screenshot(&page).await;
    let phone_path = std::env::temp_dir().join("raftkv-dashboard-phone.png");
    std::fs::write(&phone_path, &phone_shot).expect("phone screenshot written");

    // The README's screenshot, at a laptop's width, with the writer still running and some
    // seconds of samples in the charts.
    browser.resize(&page, DESKTOP.0, DESKTOP.1).await;
    browser
        .wait_for(
            &page,
            "12 samples in the charts",
            "state.samples.length >= 12",
        )
        .await;
    browser
        .wait_for(
            &page,
            "the charts redrawn at the desktop width",
            "(() => { const canvas = document.getElementById('chart-throughput'); \
             return canvas.clientWidth > 350 && \
             canvas.width === Math.round(canvas.clientWidth * devicePixelRatio); })()",
        )
        .await;
    let screenshot = browser.screenshot(&page).await;
    assert!(
        screenshot.starts_with(b"\x89PNG") && screenshot.len() > 10_000,
        "a PNG with something on it ({} bytes)",
        screenshot.len()
    );
    // Written into the target directory on every run, and over the README's picture only when
    // asked (RAFTKV_UPDATE_SCREENSHOT=1), so that running the suite leaves the tree clean.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, &screenshot).expect("screenshot written");
    if std::env::var_os("RAFTKV_UPDATE_SCREENSHOT").is_some_and(|value| value == "1") {
        let docs =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png");
        std::fs::write(&docs, &screenshot).expect("screenshot written into docs/");
    }

    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the writer ends");
    assert_eq!(
        browser.exceptions,
        Vec::<String>::new(),
        "the page threw nothing"
    );

    // The tab closed, nobody watches: node 1 stops asking the others for their status.
    let asked = "raftkv_http_request_duration_seconds_count{route=\"/v1/status\",method=\"GET\",status=\"200\"}";
    // Neither node 1 (which reads its own status directly) nor the victim (whose counts
    // restarted with it).
    let other = 3 - victim;
    let asked_while_watched = cluster.metric(other, asked).await;
    assert!(
        asked_while_watched > 0.0,
        "the feed asked node {} for its status",
        other + 1
    );
    browser.close(page).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut previous = asked_while_watched;
    loop {
        // Longer than two gathering intervals: a gathering still under way would show.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let now = cluster.metric(other, asked).await;
        if now == previous {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {} is still asked for its status with no page open ({previous} then {now})",
            other + 1
        );
        previous = now;
    }
    println!(
        "dashboard test: {:?} in all; screenshot {} bytes at {}; phone screenshot at {}",
        started.elapsed(),
        screenshot.len(),
        path.display(),
        phone_path.display()
    );
}
