//! The operations files in `ops/`, checked by the tools that consume them: the alerting rules
//! by `promtool` (syntax and unit tests), the Grafana dashboard's queries as PromQL, the
//! systemd unit by `systemd-analyze verify`, the three-machine example by the node's own
//! settings loader and `promtool check config`; and a real Prometheus server scraping a
//! cluster of `raftkv serve` processes with the shipped rules: every target up, the series the
//! rules and the dashboard use present, no alert while the cluster is healthy, and
//! `RaftkvNodeDown` firing for a killed node.
//!
//! `promtool`, `prometheus` (Debian's `prometheus`) and `systemd-analyze` (Debian's `systemd`)
//! are installed by `.ci/run`; without them these tests fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{free_port, TestCluster, DEADLINE};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HttpClient};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

fn ops_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops")
}

/// Runs `program` with `args` in `dir`; a missing program fails the test with the reason.
fn run_tool(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            panic!("{program} must be installed (.ci/run installs it): {error}")
        })
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = ops_dir().join("prometheus");
    let check = run_tool("promtool", &["check", "rules", "raftkv-alerts.yml"], &dir);
    assert_success("promtool check rules", &check);
    let tests = run_tool(
        "promtool",
        &["test", "rules", "raftkv-alerts.test.yml"],
        &dir,
    );
    assert_success("promtool test rules", &tests);
}

/// The dashboard's queries, with Grafana's variables replaced by what a Prometheus query
/// takes: `$job` by `raftkv`, `$__rate_interval` by `interval`.
fn dashboard_queries(interval: &str) -> Vec<(String, String)> {
    let path = ops_dir().join("grafana/raftkv-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard is readable");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queries = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("a panel has targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("a target has an expr");
            queries.push((
                format!("{title} / {}", target["refId"].as_str().unwrap_or("?")),
                expr.replace("$__rate_interval", interval)
                    .replace("$job", "raftkv"),
            ));
        }
    }
    queries
}

#[test]
fn grafana_dashboard_is_well_formed_and_its_queries_are_promql() {
    let path = ops_dir().join("grafana/raftkv-dashboard.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = std::collections::BTreeSet::new();
    for panel in panels {
        let id = panel["id"].as_u64().expect("every panel has a numeric id");
        assert!(ids.insert(id), "panel id {id} is used twice");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
        assert!(
            matches!((x, w), (Some(x), Some(w)) if w > 0 && x + w <= 24),
            "panel {id} does not fit Grafana's 24 columns: {grid}"
        );
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "panel {id} uses the dashboard's data source variable"
            );
        }
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    for name in ["datasource", "job"] {
        assert!(
            variables.iter().any(|variable| variable["name"] == name),
            "the dashboard defines ${name}"
        );
    }
    // promtool parses every query as a recording rule's expression.
    let queries = dashboard_queries("5m");
    assert!(queries.len() >= 20, "only {} queries", queries.len());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, (_, expr)) in queries.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard_query_{index}\n        expr: {}\n",
            serde_json::to_string(expr).expect("a string")
        ));
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("dashboard-rules.yml"), rules).expect("writable");
    let check = run_tool(
        "promtool",
        &["check", "rules", "dashboard-rules.yml"],
        dir.path(),
    );
    assert_success("promtool check rules (the dashboard's queries)", &check);
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(ops_dir().join("systemd/raftkv.service"))
        .expect("the unit is readable");
    assert!(unit.contains("ExecStart=/usr/local/bin/raftkv serve --config"));
    // verify checks that ExecStart's program exists: point it at the binary under test.
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("raftkv.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/raftkv", env!("CARGO_BIN_EXE_raftkv")),
    )
    .expect("writable");
    let output = run_tool(
        "systemd-analyze",
        &["verify", path.to_str().expect("UTF-8 path")],
        dir.path(),
    );
    assert_success("systemd-analyze verify", &output);
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(
        complaints.trim().is_empty(),
        "systemd-analyze verify complains:\n{complaints}"
    );
}

/// A copy of the three-machine example in `dir` with `/etc/raftkv/` and `/etc/prometheus/`
/// pointing into it, and the files they name there: certificates from `raftkv certs`, a token
/// file, the alerting rules.
fn example_in(dir: &Path) -> PathBuf {
    let certs = dir.join("etc");
    let output = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["certs", "--out"])
        .arg(&certs)
        .args([
            "--nodes",
            "1,2,3",
            "--ip",
            "1=10.0.0.1,2=10.0.0.2,3=10.0.0.3",
        ])
        .output()
        .expect("raftkv certs runs");
    assert_success("raftkv certs", &output);
    std::fs::write(
        certs.join("tokens.toml"),
        "[[token]]\nname = \"prometheus\"\nrole = \"read-only\"\ntoken = \"read-only-token-for-the-scrapes\"\n\n\
         [[token]]\nname = \"nodes\"\nrole = \"admin\"\ntoken = \"the-nodes-own-admin-token\"\n",
    )
    .expect("writable");
    std::fs::write(
        certs.join("read-only.token"),
        "read-only-token-for-the-scrapes",
    )
    .expect("w");
    std::fs::create_dir_all(certs.join("raftkv")).expect("writable");
    for file in ["ca.pem", "client.pem", "client-key.pem", "read-only.token"] {
        std::fs::copy(certs.join(file), certs.join("raftkv").join(file)).expect("copied");
    }
    std::fs::copy(
        ops_dir().join("prometheus/raftkv-alerts.yml"),
        certs.join("raftkv-alerts.yml"),
    )
    .expect("copied");
    let example = dir.join("three-machines");
    std::fs::create_dir_all(&example).expect("writable");
    let prefix = format!("{}/", certs.display());
    for entry in std::fs::read_dir(ops_dir().join("three-machines")).expect("readable") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let text = text
            .replace("/etc/raftkv/", &prefix)
            .replace("/etc/prometheus/", &prefix);
        std::fs::write(example.join(path.file_name().expect("a name")), text).expect("w");
    }
    example
}

#[test]
fn the_three_machine_example_resolves_and_prometheus_accepts_its_config() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let example = example_in(dir.path());
    for id in 1..=3u64 {
        let args = raftkv::settings::ServeArgs {
            config: Some(example.join(format!("node-{id}.toml"))),
            ..Default::default()
        };
        let config = args
            .clone()
            .resolve()
            .unwrap_or_else(|error| panic!("node-{id}.toml: {error}"));
        assert_eq!(config.id.0, id);
        assert_eq!(config.peers.len(), 3, "node-{id}.toml names three peers");
        assert_eq!(
            config.http_addr.ip().to_string(),
            format!("10.0.0.{id}"),
            "node-{id}.toml listens on its machine's address"
        );
        args.resolve_http(&config)
            .unwrap_or_else(|error| panic!("node-{id}.toml's HTTP settings: {error}"));
        let tls = args
            .resolve_tls()
            .unwrap_or_else(|error| panic!("node-{id}.toml's TLS settings: {error}"));
        assert!(tls.https(), "node-{id}.toml serves HTTPS");
    }
    let check = run_tool("promtool", &["check", "config", "prometheus.yml"], &example);
    assert_success("promtool check config", &check);
}

type PlainClient = HttpClient<HttpConnector, Empty<Bytes>>;

async fn get_json(client: &PlainClient, url: &str) -> Result<Value, String> {
    let uri: hyper::Uri = url.parse().map_err(|error| format!("{url}: {error}"))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
        .await
        .map_err(|_| format!("{url}: no answer"))?
        .map_err(|error| format!("{url}: {error}"))?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("{url}: {error}"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|error| format!("{url}: {error}"))
}

/// Polls `check` every 250 ms until it gives a value or `DEADLINE` passes; then fails with the
/// last reason it gave.
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(reason) if Instant::now() > deadline => {
                panic!("{what} within {DEADLINE:?}; last: {reason}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// A Prometheus server for the test; killed when dropped.
struct Prometheus {
    process: std::process::Child,
    base: String,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        if std::thread::panicking() {
            common::print_log_tail("prometheus", &self.log, 40);
        }
    }
}

/// The scrapes' token (read-only) and the test's own (admin), as a token file gives them.
const SCRAPE_TOKEN: &str = "prometheus-scrape-token-0123";
const ADMIN_TOKEN: &str = "ops-test-admin-token-012345";

/// Starts Prometheus in `dir`, scraping `targets` every second with a read-only token and the
/// shipped rules, their `for:` waits cut to 2 s (the rules' own unit tests check them as
/// shipped).
fn start_prometheus(dir: &Path, targets: &[String]) -> Prometheus {
    let rules = std::fs::read_to_string(ops_dir().join("prometheus/raftkv-alerts.yml"))
        .expect("the rules are readable");
    let rules: String = rules
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 2s\n", &line[..line.len() - line.trim_start().len()]),
            None => format!("{line}\n"),
        })
        .collect();
    std::fs::write(dir.join("rules.yml"), rules).expect("writable");
    let targets: Vec<String> = targets
        .iter()
        .map(|target| format!("\"{target}\""))
        .collect();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             rule_files:\n  - rules.yml\n\
             scrape_configs:\n  - job_name: raftkv\n    authorization:\n      type: Bearer\n      credentials: {SCRAPE_TOKEN}\n\
             \x20   static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    )
    .expect("writable");
    let address = format!("127.0.0.1:{}", free_port());
    let log = dir.join("prometheus.log");
    let log_file = std::fs::File::create(&log).expect("writable");
    let process = Command::new("prometheus")
        .current_dir(dir)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={address}"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().expect("log file")))
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap_or_else(|error| {
            panic!("prometheus must be installed (.ci/run installs Debian's prometheus): {error}")
        });
    Prometheus {
        process,
        base: format!("http://{address}"),
        log,
    }
}

fn encoded(query: &str) -> String {
    percent_encoding::utf8_percent_encode(query, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The metric names `expr` reads (`raftkv_...`, and `up`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("raftkv_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        names.push(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_a_cluster_and_alerts_when_a_node_dies() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // With tokens, as a deployment runs: the scrapes need theirs, and the token file's reload
    // series exist.
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"prometheus\"\nrole = \"read-only\"\ntoken = \"{SCRAPE_TOKEN}\"\n\
             [[token]]\nname = \"admin\"\nrole = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\n"
        ),
    )
    .expect("writes the token file");
    let tokens = tokens.display().to_string();
    let mut cluster =
        TestCluster::start_with_token(3, &["--auth-tokens", &tokens], Some(ADMIN_TOKEN)).await;
    let targets = cluster.endpoints();
    let prometheus = start_prometheus(dir.path(), &targets);
    let client: PlainClient = HttpClient::builder(TokioExecutor::new()).build(HttpConnector::new());
    let base = prometheus.base.clone();

    poll("every target up", || async {
        let answer = get_json(&client, &format!("{base}/api/v1/targets")).await?;
        let active = answer["data"]["activeTargets"]
            .as_array()
            .ok_or("no targets yet")?;
        let up = active
            .iter()
            .filter(|target| target["health"] == "up")
            .count();
        (up == 3)
            .then_some(())
            .ok_or(format!("{up} of 3 up: {active:?}"))
    })
    .await;

    // Requests, so that the request series exist.
    let writer = cluster.client();
    for index in 0..20 {
        writer
            .put(&format!("ops/{index}"), "value")
            .await
            .expect("a write");
    }

    let query = |expr: String| {
        let (client, base) = (&client, &base);
        async move {
            let answer = get_json(
                client,
                &format!("{base}/api/v1/query?query={}", encoded(&expr)),
            )
            .await?;
            if answer["status"] != "success" {
                return Err(format!("{expr}: {answer}"));
            }
            let results = answer["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            Ok(results)
        }
    };

    // Every series the rules read exists, as does every one the dashboard reads.
    let rules =
        std::fs::read_to_string(ops_dir().join("prometheus/raftkv-alerts.yml")).expect("readable");
    let dashboard = dashboard_queries("10s");
    let mut names: Vec<String> = metric_names(&rules);
    for (_, expr) in &dashboard {
        names.extend(metric_names(expr));
    }
    names.sort();
    names.dedup();
    assert!(names.len() > 15, "names read: {names:?}");
    for name in &names {
        poll(&format!("{name} scraped from the nodes"), || async {
            let results = query(format!("count({name})")).await?;
            (!results.is_empty())
                .then_some(())
                .ok_or_else(|| format!("no series {name}"))
        })
        .await;
    }
    // Every dashboard query gives an answer (a rate needs two scrapes in its window).
    for (panel, expr) in &dashboard {
        poll(&format!("panel {panel} shows data"), || async {
            let results = query(expr.clone()).await?;
            (!results.is_empty())
                .then_some(())
                .ok_or_else(|| format!("no data for {expr}"))
        })
        .await;
    }
    let alerts = get_json(&client, &format!("{base}/api/v1/alerts"))
        .await
        .expect("the alerts");
    let firing: Vec<&Value> = alerts["data"]["alerts"]
        .as_array()
        .map(|alerts| {
            alerts
                .iter()
                .filter(|alert| alert["state"] == "firing")
                .collect()
        })
        .unwrap_or_default();
    assert!(
        firing.is_empty(),
        "alerts fire for a healthy cluster: {firing:?}"
    );

    cluster.kill(2);
    let killed = targets[2].clone();
    let started = Instant::now();
    poll("RaftkvNodeDown firing for the killed node", || async {
        let answer = get_json(&client, &format!("{base}/api/v1/alerts")).await?;
        let alerts = answer["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let down = alerts.iter().any(|alert| {
            alert["labels"]["alertname"] == "RaftkvNodeDown"
                && alert["labels"]["instance"] == killed.as_str()
                && alert["state"] == "firing"
        });
        assert!(
            !alerts
                .iter()
                .any(|alert| alert["labels"]["alertname"] == "RaftkvMajorityDown"),
            "one node of three down is not a majority: {alerts:?}"
        );
        down.then_some(()).ok_or(format!("alerts: {alerts:?}"))
    })
    .await;
    eprintln!(
        "RaftkvNodeDown fired {:.1} s after the kill (scrapes every 1 s, `for` cut to 2 s)",
        started.elapsed().as_secs_f64()
    );
}
