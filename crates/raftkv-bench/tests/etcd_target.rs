//! `raftkv-bench --target etcd` on the generated etcd v3 client (crate `raftkv-etcd-api`),
//! against a real etcd (Debian's `etcd-server`, which `.ci/run` installs: the test fails when
//! `etcd` is missing) and against raftkv's own etcd API on `--grpc-addr`: a short mixed load,
//! checked through the JSON report and through the keys it left behind.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{free_port, raftkv_bin, Cluster};
use raftkv_etcd_api::etcdserverpb::kv_client::KvClient;
use raftkv_etcd_api::etcdserverpb::RangeRequest;
use serde_json::Value;

/// How long etcd may take to start and answer.
const DEADLINE: Duration = Duration::from_secs(30);
/// Bytes of every written value.
const VALUE_SIZE: usize = 100;
/// Distinct keys of a run.
const KEYS: u64 = 40;
/// Operations of a run.
const OPS: u64 = 400;

/// One etcd member on free loopback ports; killed when dropped.
struct Etcd {
    process: Child,
    client_url: String,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts a one-member etcd and waits until it answers a Range.
    async fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("temporary directory");
        let client_url = format!("http://127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log file");
        let process = Command::new("etcd")
            .args(["--name", "bench-test"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("bench-test={peer_url}")])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start etcd ({error}): this test needs Debian's etcd-server \
                     (apt-get install etcd-server), which .ci/run installs"
                )
            });
        let etcd = Etcd {
            process,
            client_url,
            dir,
        };
        let started = Instant::now();
        loop {
            match count_keys(&etcd.client_url, "absent-").await {
                Ok(_) => return etcd,
                Err(error) if started.elapsed() > DEADLINE => {
                    etcd.dump_log();
                    panic!("etcd did not answer within {DEADLINE:?}: {error}");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn dump_log(&self) {
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        eprintln!("--- etcd ---\n{log}");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The keys under `prefix` at `url` and their values' lengths, read with the generated client.
async fn count_keys(url: &str, prefix: &str) -> Result<Vec<usize>, String> {
    let mut kv = KvClient::connect(url.to_string())
        .await
        .map_err(|error| error.to_string())?;
    let mut end = prefix.as_bytes().to_vec();
    // The prefix ends in an ASCII character below 0xff: its successor ends the range.
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let answer = kv
        .range(RangeRequest {
            key: Bytes::copy_from_slice(prefix.as_bytes()),
            range_end: Bytes::from(end),
            ..RangeRequest::default()
        })
        .await
        .map_err(|status| status.to_string())?
        .into_inner();
    Ok(answer.kvs.iter().map(|kv| kv.value.len()).collect())
}

/// Runs `raftkv-bench --target etcd` against `endpoints` with the test's workload and `extra`
/// options.
fn run_bench(endpoints: &str, prefix: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv-bench"))
        .args(["--endpoints", endpoints, "--target", "etcd"])
        .args(["--clients", "8", "--ops", &OPS.to_string()])
        .args(["--keys", &KEYS.to_string(), "--read-ratio", "0.5"])
        .args(["--value-size", &VALUE_SIZE.to_string()])
        .args(["--key-prefix", prefix, "--seed", "11", "--json"])
        .args(extra)
        .output()
        .expect("raftkv-bench runs")
}

/// The JSON report of a run that must have succeeded.
fn report(output: &Output, on_failure: impl Fn()) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        on_failure();
        panic!(
            "raftkv-bench failed ({}): {}\nstdout: {stdout}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

fn count(report: &Value, field: &str) -> u64 {
    report["ops"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("ops.{field} is not a count in {report}"))
}

/// Every operation succeeded, both kinds ran, and the keys written hold values of the size
/// asked, one key per distinct written key at most.
async fn check_run(report: &Value, url: &str, prefix: &str, protocol: &str) {
    assert_eq!(report["target"], "etcd", "{report}");
    assert_eq!(report["protocol"], protocol, "{report}");
    assert_eq!(count(report, "ok"), OPS, "{report}");
    assert_eq!(count(report, "errors"), 0, "{report}");
    let (reads, writes) = (count(report, "reads"), count(report, "writes"));
    assert_eq!(reads + writes, OPS, "{report}");
    assert!(reads > 0 && writes > 0, "a 50% mix ran both: {report}");
    let values = count_keys(url, prefix).await.expect("the keys read back");
    assert!(
        !values.is_empty() && values.len() as u64 <= KEYS.min(writes),
        "{} keys under {prefix} after {writes} writes over {KEYS} keys",
        values.len()
    );
    assert!(
        values.iter().all(|&length| length == VALUE_SIZE),
        "value lengths {values:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_target_drives_a_real_etcd_over_one_or_more_connections_and_to_its_leader() {
    let etcd = Etcd::start().await;
    let url = etcd.client_url.clone();
    // The bare host:port form, as the other targets take, and the URL form.
    let bare = url.trim_start_matches("http://").to_string();
    let on_failure = || etcd.dump_log();

    let output = run_bench(&bare, "one-", &[]);
    check_run(
        &report(&output, on_failure),
        &url,
        "one-",
        "gRPC, 1 connection per endpoint",
    )
    .await;

    let output = run_bench(&url, "three-", &["--connections", "3"]);
    check_run(
        &report(&output, on_failure),
        &url,
        "three-",
        "gRPC, 3 connections per endpoint",
    )
    .await;

    // One member leads itself: Maintenance.Status names it.
    let output = run_bench(&url, "leader-", &["--target-leader"]);
    check_run(
        &report(&output, on_failure),
        &url,
        "leader-",
        "gRPC, 1 connection to the leader",
    )
    .await;
}

#[test]
fn the_etcd_target_says_what_it_cannot_reach() {
    // A port nothing listens on.
    let nobody = format!("127.0.0.1:{}", free_port());
    let output = run_bench(&nobody, "none-", &["--request-timeout", "2s"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot connect to etcd at"), "{stderr}");

    let output = run_bench("https://127.0.0.1:1", "none-", &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("plain HTTP/2 only"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_target_drives_raftkv_through_its_grpc_api() {
    let raftkv = raftkv_bin();
    let cluster = Cluster::start(Path::new(&raftkv)).await;
    let endpoints = cluster.grpc_endpoints().join(",");
    let output = run_bench(&endpoints, "grpc-", &[]);
    let report = report(&output, || cluster.dump_logs());
    // Every node's clients wrote through it (followers hand writes to the leader); the keys
    // are read back from the first node.
    let url = format!("http://{}", cluster.grpc_endpoints()[0]);
    check_run(&report, &url, "grpc-", "gRPC, 1 connection per endpoint").await;
}
