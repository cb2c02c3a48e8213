//! `raftkv bench` (the `raftkv` binary running this crate's `raftkv-bench` beside it) against a
//! real 3-node cluster: a few seconds of mixed load, checked through its JSON report, its plot
//! and the data it left behind. This is the CI smoke of the load generator; figures are
//! printed, never asserted.

mod common;

use std::process::Command;

use common::{puts_answered, raftkv_bin, Cluster};
use serde_json::Value;

fn number(report: &Value, path: &[&str]) -> f64 {
    let mut value = report;
    for key in path {
        value = &value[*key];
    }
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_drives_a_mixed_load_and_reports_it_as_json_with_a_plot() {
    let raftkv = raftkv_bin();
    let cluster = Cluster::start(&raftkv).await;
    let plot = tempfile::NamedTempFile::new().expect("plot file");
    let pids: Vec<String> = cluster.pids().iter().map(u32::to_string).collect();
    assert_eq!(pids.len(), 3, "every node runs");

    let output = Command::new(&raftkv)
        .arg("--endpoints")
        .arg(cluster.endpoints().join(","))
        .args([
            "bench",
            "--clients",
            "4",
            "--duration",
            "2s",
            "--keys",
            "50",
        ])
        .args(["--value-size", "64", "--read-ratio", "0.5", "--json"])
        .args(["--key-prefix", "smoke-", "--seed", "7"])
        .arg("--server-pids")
        .arg(pids.join(","))
        .arg("--plot")
        .arg(plot.path())
        .output()
        .expect("raftkv bench runs");
    let stdout = cluster.succeeded(&output);
    // Piped output: no progress bar, just the JSON object.
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("stdout is not one JSON object ({error}): {stdout}"));
    println!("bench smoke: {report}");

    assert_eq!(report["target"], "raftkv");
    assert_eq!(report["seed"], 7);
    assert_eq!(number(&report, &["ops", "errors"]), 0.0, "{report}");
    let reads = number(&report, &["ops", "reads"]);
    let writes = number(&report, &["ops", "writes"]);
    assert!(reads > 0.0 && writes > 0.0, "a 50% mix does both: {report}");
    assert_eq!(number(&report, &["ops", "ok"]), reads + writes);
    let elapsed = number(&report, &["elapsed_secs"]);
    assert!((1.9..10.0).contains(&elapsed), "ran about 2 s: {elapsed}");
    let throughput = number(&report, &["throughput_ops_per_sec"]);
    assert!(((reads + writes) / elapsed - throughput).abs() < 1.0);
    let latency = |name: &str| number(&report, &["latency_us", name]);
    assert!(latency("p50") >= 1.0);
    assert!(latency("p50") <= latency("p99") && latency("p99") <= latency("max"));
    assert!(number(&report, &["client_cpu", "cpu_seconds"]) > 0.0);
    let resident = report["servers"]["rss_bytes"]
        .as_array()
        .expect("resident sizes");
    assert_eq!(resident.len(), 3);
    assert!(resident
        .iter()
        .all(|bytes| bytes.as_u64().is_some_and(|bytes| bytes > 1 << 20)));
    assert!(number(&report, &["servers", "cpu_seconds"]) > 0.0);

    let svg = std::fs::read_to_string(plot.path()).expect("plot written");
    assert!(svg.trim_start().starts_with("<svg"), "an SVG: {svg:.100}");
    assert!(svg.trim_end().ends_with("</svg>"));

    // The writes are really there.
    let stored = cluster
        .client()
        .scan("smoke-", 100)
        .await
        .expect("scan after the run");
    assert!(!stored.items.is_empty(), "the bench's keys are stored");
    assert!(stored
        .items
        .iter()
        .all(|item| item.key.starts_with("smoke-") && item.key.len() == "smoke-".len() + 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_spread_sends_every_clients_requests_to_its_own_node() {
    let raftkv = raftkv_bin();
    let cluster = Cluster::start(&raftkv).await;
    let before: Vec<f64> = cluster
        .endpoints()
        .iter()
        .map(|http| puts_answered(http))
        .collect();
    let output = Command::new(&raftkv)
        .arg("--endpoints")
        .arg(cluster.endpoints().join(","))
        .args([
            "bench",
            "--spread",
            "--http2",
            "--clients",
            "6",
            "--ops",
            "300",
        ])
        .args(["--keys", "50", "--key-prefix", "spread-", "--json"])
        .output()
        .expect("raftkv bench runs");
    let stdout = cluster.succeeded(&output);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("stdout is not one JSON object ({error}): {stdout}"));
    println!("bench spread: {report}");
    assert_eq!(report["placement"], "spread", "{report}");
    assert_eq!(number(&report, &["ops", "errors"]), 0.0, "{report}");
    assert_eq!(number(&report, &["ops", "writes"]), 300.0, "{report}");
    // Two clients per node, each staying on its node whatever the answers say of the leader:
    // every node answered its share of the puts.
    for (index, http) in cluster.endpoints().iter().enumerate() {
        let answered = puts_answered(http) - before[index];
        assert!(
            answered >= 50.0,
            "node {} answered {answered} of 300 puts",
            index + 1
        );
    }
}

#[test]
fn bench_refuses_bad_options_with_a_clear_message() {
    let raftkv = raftkv_bin();
    let run = |args: &[&str]| {
        let output = Command::new(&raftkv)
            .args(["--endpoints", "127.0.0.1:1", "bench"])
            .args(args)
            .output()
            .expect("raftkv bench runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["--read-ratio", "1.5"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("between 0.0 and 1.0"), "{stderr}");
    let (code, stderr) = run(&["--duration", "soon"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("not a duration"), "{stderr}");
    let (code, stderr) = run(&["--target", "etcd", "--consistency", "lease"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no lease reads"), "{stderr}");
    // Nothing listens on port 1: every operation fails, and the run says so.
    let (code, stderr) = run(&["--clients", "2", "--ops", "4", "--request-timeout", "200ms"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no operation succeeded"), "{stderr}");
}

/// The figure printed right before `label` on the line that has it (`123 keepalives`).
fn figure_before(stdout: &str, label: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|line| line.contains(label))
        .unwrap_or_else(|| panic!("no line with {label:?} in:\n{stdout}"));
    let before = &line[..line.find(label).expect("found above")];
    before
        .split_whitespace()
        .last()
        .and_then(|word| word.trim_start_matches('(').parse().ok())
        .unwrap_or_else(|| panic!("no number before {label:?} in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_lease_keeps_every_lease_alive_reports_its_cost_and_revokes_them() {
    let raftkv = raftkv_bin();
    let cluster = Cluster::start(&raftkv).await;
    let pids: Vec<String> = cluster.pids().iter().map(u32::to_string).collect();
    let output = Command::new(&raftkv)
        .arg("--endpoints")
        .arg(cluster.endpoints().join(","))
        .args(["bench", "lease", "--leases", "300", "--batch", "100"])
        .args(["--ttl", "5", "--duration", "2s", "--latency-duration", "1s"])
        .arg("--server-pids")
        .arg(pids.join(","))
        .output()
        .expect("raftkv bench lease runs");
    let stdout = cluster.succeeded(&output);
    println!("bench lease smoke:\n{stdout}");

    assert_eq!(figure_before(&stdout, "leases in"), 300.0, "{stdout}");
    // Two seconds of back-to-back batches of 100 renew every one of the 300 at least once.
    let requests = figure_before(&stdout, "requests,");
    let keepalives = figure_before(&stdout, "keepalives (");
    assert!(keepalives >= 300.0, "{stdout}");
    assert!(keepalives <= requests * 100.0, "{stdout}");
    assert_eq!(
        figure_before(&stdout, "answered lease gone"),
        0.0,
        "{stdout}"
    );
    // The leader was found among the pids, so its CPU per keepalive is reported.
    assert!(stdout.contains("µs per keepalive"), "{stdout}");
    for stream in [
        "keepalive (1 lease):",
        "linearizable GET:",
        "keepalive ÷ GET:",
    ] {
        assert!(stdout.contains(stream), "no {stream:?} line: {stdout}");
    }
    assert!(stdout.contains("revoked 300 leases"), "{stdout}");

    // Nothing is left behind: every lease the run granted was revoked.
    let left = cluster.client().lease_list().await.expect("lease list");
    assert!(left.ids.is_empty(), "leases left: {:?}", left.ids);
}
