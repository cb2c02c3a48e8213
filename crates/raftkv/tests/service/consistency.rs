//! Consistency checks against real processes: a healthy cluster checks consistent; a follower
//! whose state machine was corrupted on disk (one value of its newest snapshot changed, the
//! file rewritten with a valid checksum, as silent corruption before the checksum would leave
//! it) is named by `raftkv check consistency` and by the leader's periodic check (metric and
//! log line).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use raftkv::store::StateMachine;

use crate::common::{describe, raftkv, stdout, wait_for, TestCluster};

/// The value changed on disk: written once, never overwritten, so it appears once in a
/// snapshot (in the version that holds it).
const ORIGINAL: &[u8] = b"precious-000-original-value";
/// The same length, so the snapshot's lengths stay right and it still decodes.
const TAMPERED: &[u8] = b"precious-000-tampered-value";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_state_was_changed_on_disk_is_reported_divergent() {
    // Small snapshots, so every node has one holding the first key; checks every second.
    let mut cluster = TestCluster::start(
        3,
        &[
            "--snapshot-threshold-bytes",
            "4096",
            "--consistency-check-interval",
            "1s",
        ],
    )
    .await;
    let client = cluster.client();
    client
        .put("key-000", Bytes::from_static(ORIGINAL))
        .await
        .expect("put");
    for number in 1..120 {
        let value = format!("value-{number:03}-{}", "x".repeat(64));
        client
            .put(&format!("key-{number:03}"), Bytes::from(value))
            .await
            .expect("put");
    }
    let leader = cluster.wait_for_leader().await;
    let victim = (leader + 1) % 3;
    let victim_id = cluster.nodes[victim].id;

    // Healthy: the leader's periodic checks (before any on demand, which the leader counts
    // too) and one on demand agree.
    wait_for("a periodic check on the leader", || async {
        let checks = cluster.metric(leader, CHECKS).await;
        (checks >= 1.0).then_some(())
    })
    .await;
    assert_eq!(cluster.metric(leader, DIVERGENT).await, 0.0);
    let healthy = check(&cluster);
    assert_eq!(healthy.status.code(), Some(0), "{}", describe(&healthy));
    let text = stdout(&healthy);
    assert!(text.contains("consistent index="), "{text}");
    let hashes: Vec<&str> = text
        .lines()
        .skip(1)
        .take(3)
        .map(|row| row.split_whitespace().nth(1).expect("a hash column"))
        .collect();
    assert_eq!(hashes.len(), 3, "{text}");
    assert!(
        hashes
            .iter()
            .all(|hash| hash.len() == 64 && *hash == hashes[0]),
        "{text}"
    );

    // Corrupt the victim's state: stopped cleanly, one value of its newest snapshot changed.
    wait_for("the victim's snapshot", || async {
        newest_snapshot(&cluster.nodes[victim].data_dir).map(|_| ())
    })
    .await;
    cluster.terminate(victim);
    let path = newest_snapshot(&cluster.nodes[victim].data_dir).expect("a snapshot");
    tamper_with(&path);
    cluster.spawn(victim);
    cluster.wait_for_leader().await;

    // On demand: the victim is named, with exit status 1. A check while it catches up may
    // find it without a hash (incomplete, exit 3): asked again until it has one.
    let diverged = wait_for("a check naming the victim", || async {
        let output = tokio::task::block_in_place(|| check(&cluster));
        match output.status.code() {
            Some(1) => Some(output),
            Some(3) => None,
            _ => panic!("unexpected: {}", describe(&output)),
        }
    })
    .await;
    let text = stdout(&diverged);
    assert!(
        text.contains("divergent index=") && text.ends_with(&format!("members={victim_id}\n")),
        "{}",
        describe(&diverged)
    );
    let stderr = String::from_utf8_lossy(&diverged.stderr);
    assert!(
        stderr.contains(&format!("member(s) {victim_id} hold a different state")),
        "{stderr}"
    );

    // Periodic: a check after the one on demand (and after the restart's leadership, if it
    // moved) leaves the leader's gauge at one divergent member, and each logs it.
    let leader = cluster.wait_for_leader().await;
    let checks_on_demand = cluster.metric(leader, CHECKS).await;
    let checked_index = cluster.metric(leader, LAST_INDEX).await;
    wait_for("a periodic check naming one divergent member", || async {
        let checks = cluster.metric(leader, CHECKS).await;
        let index = cluster.metric(leader, LAST_INDEX).await;
        let divergent = cluster.metric(leader, DIVERGENT).await;
        (checks > checks_on_demand && index > checked_index && divergent == 1.0).then_some(())
    })
    .await;
    let divergence = format!("divergent=[{victim_id}]");
    let log = std::fs::read_to_string(&cluster.nodes[leader].log).expect("the leader's log");
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("members hold different states at the same index"))
        .collect();
    assert!(!lines.is_empty(), "the leader logs the divergence");
    for line in lines {
        assert!(
            line.contains("ERROR") && line.contains(&divergence),
            "{line}"
        );
        assert!(
            line.contains(&format!("{victim_id}=")),
            "each member's hash: {line}"
        );
    }
    // Only the leader reports (a node that led before clears its gauge within a second).
    for follower in (0..3).filter(|index| *index != leader) {
        wait_for("a follower's gauge at 0", || async {
            (cluster.metric(follower, DIVERGENT).await == 0.0).then_some(())
        })
        .await;
    }
}

/// The leader's count of checks.
const CHECKS: &str = "raftkv_consistency_checks_total";
/// Members that disagreed at the last check (the space: not a longer name's prefix).
const DIVERGENT: &str = "raftkv_consistency_divergent_members ";
/// The last check's index.
const LAST_INDEX: &str = "raftkv_consistency_last_check_index ";

/// `raftkv check consistency` against every node.
fn check(cluster: &TestCluster) -> std::process::Output {
    raftkv(&cluster.endpoints(), &["check", "consistency"])
}

/// The newest snapshot file in `data_dir`, if there is one.
fn newest_snapshot(data_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(data_dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("snapshot-") && name.ends_with(".snap"))
        })
        .max()
}

/// Changes [`ORIGINAL`] to [`TAMPERED`] in the snapshot at `path`: decoded and re-encoded
/// with the log's own snapshot file format (so its checksum is right), the state checked to
/// still decode with the changed value.
fn tamper_with(path: &Path) {
    let contents = std::fs::read(path).expect("the snapshot file");
    let mut snapshot =
        raft_wal::fuzzing::decode_snapshot_file(contents).expect("a valid snapshot file");
    let mut data = snapshot.data.to_vec();
    let found: Vec<usize> = data
        .windows(ORIGINAL.len())
        .enumerate()
        .filter(|(_, window)| *window == ORIGINAL)
        .map(|(at, _)| at)
        .collect();
    assert_eq!(found.len(), 1, "the value is in the snapshot once");
    data[found[0]..found[0] + TAMPERED.len()].copy_from_slice(TAMPERED);
    let state = StateMachine::restore(&data, 100_000).expect("the changed state decodes");
    assert_eq!(
        state.get("key-000").map(|value| &value[..]),
        Some(TAMPERED),
        "the value changed, and only it"
    );
    snapshot.data = Bytes::from(data);
    let rewritten = path.with_extension("tampered");
    std::fs::write(
        &rewritten,
        raft_wal::fuzzing::encode_snapshot_file(&snapshot),
    )
    .expect("write the changed snapshot");
    std::fs::rename(&rewritten, path).expect("replace the snapshot");
}
