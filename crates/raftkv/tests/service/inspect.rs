//! `raftkv inspect DATA_DIR` on the data directory of a node that ran: refused while the node
//! holds it, clean once it stopped (the JSON parsed and checked against what was written), and
//! a flipped byte named with its file and offset, exactly where the node itself then refuses
//! to start.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{describe, TestCluster};

/// Runs `raftkv inspect DIR ARGS`.
fn inspect(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .arg("inspect")
        .arg(dir)
        .args(args)
        .output()
        .expect("raftkv runs")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!("inspect --json prints JSON ({error}): {}", describe(output))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reports_a_stopped_nodes_log_and_names_a_flipped_byte_where_the_node_refuses() {
    let mut cluster = TestCluster::start(1, &[]).await;
    let client = cluster.client();
    for number in 0..20 {
        client
            .put(&format!("inspect/{number:02}"), format!("value {number}"))
            .await
            .expect("write");
    }
    let dir = cluster.nodes[0].data_dir.clone();

    let running = inspect(&dir, &["--verify"]);
    assert_eq!(running.status.code(), Some(2), "{}", describe(&running));
    assert!(
        String::from_utf8_lossy(&running.stderr).contains("stop the node first"),
        "{}",
        describe(&running)
    );

    let status = cluster.terminate(0).expect("the node was running");
    assert!(status.success(), "{status:?}");

    let clean = inspect(&dir, &["--verify", "--json", "--entries"]);
    assert_eq!(clean.status.code(), Some(0), "{}", describe(&clean));
    let report = json_of(&clean);
    assert_eq!(report["damaged"], false, "{report:#}");
    assert_eq!(report["recovery"], "opens");
    assert_eq!(report["clean_shutdown"], true, "stopped with SIGTERM");
    assert_eq!(report["findings"], serde_json::json!([]));
    let recovered = &report["recovered"];
    assert_eq!(recovered["configuration"]["voters"], serde_json::json!([1]));
    assert_eq!(recovered["hard_state"]["vote"], 1, "voted for itself");
    let last_index = recovered["last_index"].as_u64().expect("a number");
    let commit = recovered["hard_state"]["commit"]
        .as_u64()
        .expect("a number");
    assert!(commit >= 20 && commit <= last_index, "{recovered:#}");
    let segments = report["segments"].as_array().expect("segments");
    let normal_entries: u64 = segments
        .iter()
        .map(|segment| {
            segment["records"]["normal_entries"]
                .as_u64()
                .expect("a count")
        })
        .sum();
    assert!(normal_entries >= 20, "every put is an entry: {segments:#?}");
    let entries = report["entries"]
        .as_array()
        .expect("--entries lists entries");
    let put = |number: u32| {
        let summary = format!("put \"inspect/{number:02}\"");
        entries
            .iter()
            .find(|entry| {
                entry["summary"]
                    .as_str()
                    .is_some_and(|text| text.starts_with(&summary))
            })
            .unwrap_or_else(|| panic!("{summary} listed among {entries:#?}"))
            .clone()
    };
    let fifth = put(5);
    assert_eq!(fifth["kind"], "normal");

    // Flip a byte of the fifth put's data: records follow it, so this is no torn tail.
    let segment = format!("{:020}.wal", fifth["segment"].as_u64().expect("a segment"));
    let offset = fifth["offset"].as_u64().expect("an offset");
    let path = dir.join(&segment);
    let mut contents = std::fs::read(&path).expect("the segment reads");
    // Frame header (12 bytes), entry prefix (kind, index, term, entry kind: 18), then data.
    contents[offset as usize + 12 + 18 + 1] ^= 0x20;
    std::fs::write(&path, contents).expect("the segment is written back");

    let damaged = inspect(&dir, &["--verify"]);
    assert_eq!(damaged.status.code(), Some(1), "{}", describe(&damaged));
    let named = format!("checksum_mismatch: {} at byte {offset}", path.display());
    assert!(
        String::from_utf8_lossy(&damaged.stderr).contains(&named),
        "{named} in {}",
        describe(&damaged)
    );
    assert!(
        String::from_utf8_lossy(&damaged.stdout).contains("REFUSES to start"),
        "{}",
        describe(&damaged)
    );
    let without_verify = inspect(&dir, &["--json"]);
    assert_eq!(
        without_verify.status.code(),
        Some(0),
        "read, so 0 without --verify: {}",
        describe(&without_verify)
    );
    let report = json_of(&without_verify);
    assert_eq!(report["damaged"], true);
    assert_eq!(report["recovery"], "refuses");
    let first = &report["findings"][0];
    assert_eq!(
        (
            &first["severity"],
            &first["problem"],
            &first["file"],
            &first["offset"]
        ),
        (
            &Value::from("damage"),
            &Value::from("checksum_mismatch"),
            &Value::from(segment.as_str()),
            &Value::from(offset)
        ),
        "{report:#}"
    );

    // The node itself refuses to start, naming the same file and offset.
    cluster.spawn(0);
    let exit = cluster.wait_for_exit(0);
    assert!(!exit.success(), "{exit:?}");
    let log = std::fs::read_to_string(&cluster.nodes[0].log).expect("the node's log");
    let refusal = format!("{} at byte {offset}", path.display());
    assert!(
        log.contains(&refusal),
        "{refusal} in the node's log:\n{log}"
    );
}
