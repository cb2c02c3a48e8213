//! `raftkv bench --rate --report-every` against a real 3-node cluster: a paced run reported
//! per interval. What is checked is what the schedule and the bookkeeping guarantee whatever
//! the machine's speed (no timed assertions): no more operations start than the schedule has
//! slots before the deadline, and every operation is counted in exactly one interval; the
//! warm-up's operations reach the servers and none of them is counted.

mod common;

use std::process::Command;

use common::{puts_answered, raftkv_bin, Cluster};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_run_keeps_to_its_schedule_and_counts_every_operation_in_one_interval() {
    let raftkv = raftkv_bin();
    let cluster = Cluster::start(&raftkv).await;
    let pids: Vec<String> = cluster.pids().iter().map(u32::to_string).collect();
    const RATE: f64 = 200.0;
    const SECONDS: f64 = 3.0;
    let puts_before: f64 = cluster
        .endpoints()
        .iter()
        .map(|http| puts_answered(http))
        .sum();

    let output = Command::new(&raftkv)
        .arg("--endpoints")
        .arg(cluster.endpoints().join(","))
        .args([
            "bench",
            "--clients",
            "4",
            "--duration",
            "3s",
            "--keys",
            "50",
        ])
        .args(["--read-ratio", "0.5", "--json", "--seed", "11"])
        .args(["--rate", "200", "--report-every", "1s", "--warmup", "1s"])
        .arg("--server-pids")
        .arg(pids.join(","))
        .output()
        .expect("raftkv bench runs");
    let stdout = cluster.succeeded(&output);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|error| panic!("stdout is not one JSON object ({error}): {stdout}"));
    println!("paced run: {report}\nlive rows:\n{stderr}");

    assert_eq!(report["rate_ops_per_sec"], RATE);
    assert_eq!(report["latency_from"], "intended start");
    let total = report["ops"]["total"].as_u64().expect("total");
    let ok = report["ops"]["ok"].as_u64().expect("ok");
    assert!(ok > 0, "{report}");
    // Slot k is intended at k / RATE: slots 0 ..= RATE × SECONDS − 1 lie before the deadline
    // (the warm-up's second, counted, would have added up to RATE more).
    assert!(
        total <= (RATE * SECONDS) as u64,
        "{total} operations started in a 3 s schedule of {RATE}/s"
    );
    let puts: f64 = cluster
        .endpoints()
        .iter()
        .map(|http| puts_answered(http))
        .sum();
    let writes = report["ops"]["writes"].as_f64().expect("writes");
    assert!(
        puts - puts_before > writes,
        "the warm-up wrote too: {} puts answered, {writes} in the report",
        puts - puts_before
    );

    let rows = report["intervals"].as_array().expect("interval rows");
    assert!(!rows.is_empty(), "{report}");
    let counted: u64 = rows
        .iter()
        .map(|row| row["ok"].as_u64().unwrap_or(0) + row["errors"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        counted, total,
        "every operation in exactly one interval: {report}"
    );
    for (position, row) in rows.iter().enumerate() {
        assert_eq!(row["number"].as_u64(), Some(position as u64 + 1));
        let resident = row["server_rss_bytes"].as_array().expect("resident sizes");
        assert_eq!(resident.len(), 3, "one per server: {row}");
        if row["ok"].as_u64().unwrap_or(0) > 0 {
            let latency = &row["latency_us"];
            assert!(latency["p50"].as_u64() <= latency["p99"].as_u64(), "{row}");
            assert!(latency["p99"].as_u64() <= latency["p999"].as_u64(), "{row}");
            // Paced: the service time (from the send) never exceeds the latency from the
            // intended start, which precedes the send.
            assert!(row["service_latency_us"]["max"].as_u64() <= latency["max"].as_u64());
        }
    }
    assert!(
        stderr.lines().any(|line| line.contains("p50 ms")),
        "the rows are printed live with a header: {stderr}"
    );
}

#[test]
fn rate_and_interval_options_refuse_bad_values_with_a_clear_message() {
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
    for rate in ["0", "-5", "lots"] {
        // `=`: a lone `-5` would read as a flag.
        let flag = format!("--rate={rate}");
        let (code, stderr) = run(&[flag.as_str()]);
        assert_eq!(code, Some(2), "--rate {rate}: {stderr}");
        assert!(stderr.contains("not a rate"), "{stderr}");
    }
    let (code, stderr) = run(&["--report-every", "often"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("not a duration"), "{stderr}");
}
