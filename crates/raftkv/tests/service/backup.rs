//! Backup and disaster recovery with the commands alone: `raftkv snapshot save` from a
//! follower of a running cluster and `raftkv snapshot restore` into a new cluster (history,
//! sessions and leases kept; a damaged file refused), and `raftkv recover --force-new-cluster`
//! after the loss of a majority, with a new member joining the recovered node.

use std::path::Path;

use bytes::Bytes;
use raftkv_client::api::Consistency;
use raftkv_client::Client;

use crate::common::{describe, raftkv, stdout, wait_for, TestCluster};

/// `--endpoints` of the offline commands, which reach no node.
const UNUSED_ENDPOINT: &str = "127.0.0.1:9";

/// A temporary path as a command-line argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// The value of `name=` in a command's `key=value` line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("`{name}=` in {line:?}"))
}

/// Everything a client sees of `keys` and of the leases `leases`: the keys now, each key at
/// every revision from 1 to the current one (a compacted revision's error included), the
/// leases held, and each lease's granted TTL and keys.
async fn observe(client: &Client, keys: &[&str], leases: &[u64]) -> Vec<String> {
    let now = client.scan_at("", 1000, None).await.expect("scan");
    let mut seen = vec![format!("{:?} at revision {}", now.items, now.revision)];
    for key in keys {
        for revision in 1..=now.revision {
            let read = client.get_versioned(key, Some(revision)).await;
            seen.push(format!("{key}@{revision}: {read:?}"));
        }
    }
    let mut held = client.lease_list().await.expect("lease list").ids;
    held.sort_unstable();
    seen.push(format!("leases {held:x?}"));
    for lease in leases {
        let ttl = client
            .lease_time_to_live(*lease, true)
            .await
            .expect("lease ttl");
        seen.push(format!(
            "lease {lease:x}: granted {} s, keys {:?}",
            ttl.granted_ttl_seconds, ttl.keys
        ));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_saved_from_a_follower_restores_a_new_cluster_with_history_sessions_and_leases()
{
    let old = TestCluster::start(3, &[]).await;
    let client = old.client();
    // History: a key changed several times, a compaction, a change and a delete after it.
    for value in ["v1", "v2", "v3"] {
        client.put("history", value).await.expect("put");
    }
    client.put("plain", "p").await.expect("put");
    let v3 = client
        .get_versioned("history", None)
        .await
        .expect("read")
        .kv
        .expect("exists");
    client.compact(v3.mod_revision - 1).await.expect("compact");
    client.put("history", "v4").await.expect("put");
    client.delete("plain").await.expect("delete");
    // Leases: one to revoke after the restore, one left to expire there.
    let kept = client.lease_grant(600, None).await.expect("grant").id;
    client
        .put_with_lease("leased/kept", "k", kept)
        .await
        .expect("put");
    let expiring = client.lease_grant(8, None).await.expect("grant").id;
    client
        .put_with_lease("leased/expiring", "e", expiring)
        .await
        .expect("put");
    // A session's write, whose retry after the restore must be answered, not applied again.
    let session = [("client-id", "4242"), ("request-seq", "1")];
    let (status, _, first) = old
        .request(0, "POST", "/v1/kv/log/append", &session, "x")
        .await;
    assert_eq!(status, 200, "{first:?}");
    let keys = ["history", "plain", "leased/kept", "leased/expiring", "log"];
    let before = observe(&client, &keys, &[kept, expiring]).await;

    let follower = (old.wait_for_leader().await + 1) % 3;
    client
        .lease_keep_alive_once(&[expiring])
        .await
        .expect("keepalive");
    let file = old.dir().join("backup.snap");
    let saved = raftkv(
        &[old.nodes[follower].http.clone()],
        &["snapshot", "save", arg(&file)],
    );
    assert!(saved.status.success(), "{}", describe(&saved));
    let line = stdout(&saved);
    println!("{line}");
    assert!(line.starts_with("saved index="), "{line}");
    assert_eq!(field(&line, "node"), (follower + 1).to_string(), "{line}");
    assert_eq!(
        field(&line, "bytes"),
        std::fs::metadata(&file).expect("saved").len().to_string()
    );
    assert!(!old.dir().join("backup.snap.tmp").exists());

    let mut new = TestCluster::prepare(3, &[]);
    // The nodes take the cluster id the restore wrote.
    new.set_cluster_id(None);
    let copy = new.dir().join("backup.snap");
    std::fs::copy(&file, &copy).expect("copy");
    drop(old);
    let mut cluster_ids = std::collections::BTreeSet::new();
    for node in &new.nodes {
        let restored = raftkv(
            &new.endpoints(),
            &[
                "snapshot",
                "restore",
                arg(&copy),
                "--data-dir",
                arg(&node.data_dir),
                "--id",
                &node.id.to_string(),
                "--peers",
                new.peers(),
            ],
        );
        assert!(restored.status.success(), "{}", describe(&restored));
        let line = stdout(&restored);
        assert!(line.starts_with("restored index="), "{line}");
        assert_eq!(field(&line, "index"), field(&stdout(&saved), "index"));
        cluster_ids.insert(field(&line, "cluster_id").to_string());
    }
    assert_eq!(cluster_ids.len(), 1, "every member derives the same id");
    let cluster_id = cluster_ids.first().expect("one");
    assert!(
        cluster_id.starts_with("raftkv-test-restored-"),
        "{cluster_id}"
    );
    for index in 0..3 {
        new.spawn(index);
    }
    new.wait_for_leader().await;
    let client = new.client();
    assert_eq!(observe(&client, &keys, &[kept, expiring]).await, before);

    let (status, _, again) = new
        .request(1, "POST", "/v1/kv/log/append", &session, "x")
        .await;
    assert_eq!(status, 200);
    assert_eq!(again, first, "the retry is answered with the first result");
    let log = client.get("log", Consistency::Linearizable).await;
    assert_eq!(log.expect("read"), Some(Bytes::from("x")), "applied once");

    client.lease_revoke(kept).await.expect("revoke");
    let gone = client.get("leased/kept", Consistency::Linearizable).await;
    assert_eq!(
        gone.expect("read"),
        None,
        "revoking the lease deletes its key"
    );
    wait_for(
        "the lease left to expire expires in the new cluster",
        || {
            let client = client.clone();
            async move {
                let read = client
                    .get("leased/expiring", Consistency::Linearizable)
                    .await;
                matches!(read, Ok(None)).then_some(())
            }
        },
    )
    .await;
    let revision_at_save: u64 = field(&stdout(&saved), "revision").parse().expect("number");
    let put = client
        .put("after", "a")
        .await
        .expect("the new cluster takes writes");
    assert!(
        put.revision > revision_at_save,
        "revisions go on from the snapshot's"
    );
}

/// A snapshot file of a store holding one key, as `raftkv snapshot save` writes it.
fn snapshot_file() -> Vec<u8> {
    use raftkv::backup::file::{encode_head, sha256_hex};
    let mut state = raftkv::store::StateMachine::new(16);
    let put = raftkv::store::Command {
        session: None,
        operation: raftkv::store::Operation::Put {
            key: "key".into(),
            value: Bytes::from_static(b"value"),
            lease: 0,
        },
        request_id: None,
    };
    state.apply(1, &put.encode());
    let body = state.snapshot();
    let header = raftkv::backup::SnapshotHeader {
        index: 1,
        term: 1,
        cluster_id: "raftkv".into(),
        node_id: 1,
        members: Vec::new(),
        revision: state.revision(),
        compact_revision: state.compact_revision(),
        keys: 1,
        leases: 0,
        sessions: 0,
        taken_unix_ms: 0,
        body_bytes: body.len() as u64,
        body_sha256: sha256_hex(&body),
    };
    let mut file = encode_head(&header);
    file.extend_from_slice(&body);
    file
}

#[test]
fn a_damaged_or_truncated_snapshot_file_is_refused_by_restore_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let good = snapshot_file();
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let cases = [
        ("flipped.snap", flipped, "SHA-256"),
        (
            "truncated.snap",
            good[..good.len() - 3].to_vec(),
            "truncated",
        ),
        ("other.snap", b"{}".to_vec(), "not a raftkv snapshot file"),
    ];
    for (name, bytes, reason) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).expect("write");
        let data_dir = dir.path().join(format!("{name}.data"));
        let refused = raftkv(
            &[UNUSED_ENDPOINT.to_string()],
            &[
                "snapshot",
                "restore",
                arg(&file),
                "--data-dir",
                arg(&data_dir),
                "--id",
                "1",
                "--peers",
                "1=127.0.0.1:9",
            ],
        );
        assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(reason), "{name}: {stderr}");
        assert!(!data_dir.exists(), "{name}: nothing written");
    }
    // The same file undamaged restores, and a directory that holds something is refused.
    let file = dir.path().join("good.snap");
    std::fs::write(&file, good).expect("write");
    let data_dir = dir.path().join("good.data");
    let restore = |data_dir: &Path| {
        raftkv(
            &[UNUSED_ENDPOINT.to_string()],
            &[
                "snapshot",
                "restore",
                arg(&file),
                "--data-dir",
                arg(data_dir),
                "--id",
                "1",
                "--peers",
                "1=127.0.0.1:9",
            ],
        )
    };
    let restored = restore(&data_dir);
    assert!(restored.status.success(), "{}", describe(&restored));
    let again = restore(&data_dir);
    assert_eq!(again.status.code(), Some(2), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_of_a_lost_majority_recovers_alone_with_its_acknowledged_writes_and_a_member_joins(
) {
    // Snapshots every kilobyte or so: the survivor's state is a snapshot and entries after it.
    let mut cluster = TestCluster::start(3, &["--snapshot-threshold-bytes", "1024"]).await;
    let leader = cluster.wait_for_leader().await;
    let survivor = (leader + 1) % 3;
    let client = cluster.client();
    let mut acknowledged = Vec::new();
    for number in 0..30 {
        let (key, value) = (format!("key/{number:02}"), format!("value {number}"));
        let put = client.put(&key, value.clone()).await.expect("put");
        acknowledged.push((key, value, put.index));
    }
    let last_index = acknowledged.last().expect("writes").2;
    // Which node survives is chance; the runbook picks the one furthest ahead. This one is
    // made to hold every acknowledged write.
    wait_for(
        "the survivor applied every write and took a snapshot",
        || async {
            let status = cluster.status(survivor).await?;
            (status.applied_index >= last_index && status.snapshot_index > 0).then_some(())
        },
    )
    .await;
    for lost in (0..3).filter(|index| *index != survivor) {
        cluster.kill(lost);
        std::fs::remove_dir_all(&cluster.nodes[lost].data_dir).expect("the data is gone");
    }
    cluster.kill(survivor);
    let node = &cluster.nodes[survivor];
    let (id, data_dir) = (node.id.to_string(), node.data_dir.clone());
    let endpoints = cluster.endpoints();

    let unconfirmed = raftkv(
        &endpoints,
        &["recover", "--data-dir", arg(&data_dir), "--id", &id],
    );
    assert_eq!(
        unconfirmed.status.code(),
        Some(2),
        "{}",
        describe(&unconfirmed)
    );
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--force-new-cluster"));
    let recovered = raftkv(
        &endpoints,
        &[
            "recover",
            "--force-new-cluster",
            "--data-dir",
            arg(&data_dir),
            "--id",
            &id,
        ],
    );
    assert!(recovered.status.success(), "{}", describe(&recovered));
    let line = stdout(&recovered);
    println!("{line}");
    let index: u64 = field(&line, "index").parse().expect("number");
    assert!(index >= last_index, "{line}");
    let snapshot_index: u64 = field(&line, "snapshot_index").parse().expect("number");
    assert!(
        snapshot_index > 0,
        "recovered from a snapshot and its log: {line}"
    );
    let old_data = Path::new(field(&line, "old_data"));
    assert!(
        old_data.is_dir(),
        "the old data directory is kept beside: {line}"
    );

    let own_peer = format!("{id}={}", cluster.nodes[survivor].raft);
    cluster.set_peers(&own_peer);
    cluster.spawn(survivor);
    cluster.wait_for_leader().await;
    let client = cluster.client_of(survivor);
    for (key, value, _) in &acknowledged {
        let read = client
            .get(key, Consistency::Linearizable)
            .await
            .expect("read");
        assert_eq!(read, Some(Bytes::from(value.clone())), "{key}");
    }
    client
        .put("after-recovery", "written")
        .await
        .expect("a cluster of one takes writes");

    let joined = cluster.join(survivor);
    let joined_id = cluster.nodes[joined].id;
    wait_for("the new member is a voter", || {
        let client = client.clone();
        async move {
            let members = client.members().await.ok()?.members;
            members
                .iter()
                .any(|member| member.id == joined_id && member.role == "voter")
                .then_some(())
        }
    })
    .await;
    let newcomer = cluster.client_of(joined);
    wait_for("the new member caught up", || async {
        let read = newcomer.get("after-recovery", Consistency::Stale).await;
        matches!(read, Ok(Some(value)) if value == "written").then_some(())
    })
    .await;
    for (key, value, _) in &acknowledged {
        let read = newcomer.get(key, Consistency::Stale).await.expect("read");
        assert_eq!(
            read,
            Some(Bytes::from(value.clone())),
            "{key} on the new member"
        );
    }
}
