//! Real `raftkv serve` processes on free loopback ports with temporary data directories.

#![allow(dead_code)] // Each test file uses a different part.

use std::ffi::OsString;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use raftkv_client::api::StatusResponse;
use raftkv_client::{Client, ClientOptions, ClientTls};

/// How long any awaited outcome may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A raw HTTPS client, for requests the raftkv client does not make.
type HttpsClient = HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One node's process and where it listens.
pub struct Node {
    pub id: u64,
    pub http: String,
    pub raft: String,
    /// Where its etcd gRPC API listens (`--grpc-addr`).
    pub grpc: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub process: Option<Child>,
    /// Started with `--join` this HTTP address instead of `--peers`.
    pub join: Option<String>,
}

/// A cluster of `raftkv serve` processes.
pub struct TestCluster {
    pub nodes: Vec<Node>,
    peers: String,
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    /// The bearer token of the cluster's own clients, when its nodes run with --auth-tokens.
    token: Option<String>,
    /// With TLS: the certificates (`raftkv certs` output), and an HTTPS client presenting the
    /// client certificate.
    tls: Option<(PathBuf, HttpsClient)>,
    /// The `--cluster-id` the nodes are started with (none: the data directory's, or the
    /// default).
    cluster_id: Option<String>,
}

/// A loopback port nothing listens on right now (the test's node binds it soon after).
pub fn free_port() -> u16 {
    free_port_run(1)
}

/// The first of `count` consecutive loopback ports nothing listens on right now, below the
/// kernel's ephemeral range. A port the OS hands out for `127.0.0.1:0` is in that range, and
/// may meanwhile become the local end of any outgoing connection (the tests' nodes and
/// clients make many), so that the node given it cannot listen on it.
pub fn free_port_run(count: u16) -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOWEST: u32 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|start| *start > LOWEST + 1000)
        .unwrap_or(32_768);
    let count = u32::from(count);
    let span = ephemeral_start - LOWEST - count;
    // Test binaries run one after another, tests within one at once: the counter keeps this
    // process's tests apart, the random start the runs of one binary.
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| rand::random::<u32>() % span);
    for _ in 0..span / count {
        let step = NEXT.fetch_add(count, Ordering::Relaxed);
        let first = LOWEST + (start + step) % span;
        let listeners: Vec<_> = (first..first + count)
            .map_while(|port| StdListener::bind(("127.0.0.1", port as u16)).ok())
            .collect();
        if listeners.len() == count as usize {
            return first as u16;
        }
    }
    panic!("no {count} consecutive free ports below {ephemeral_start}");
}

impl TestCluster {
    /// Starts `size` nodes with `extra_args` passed to each `serve`, and waits for a leader.
    pub async fn start(size: u64, extra_args: &[&str]) -> TestCluster {
        TestCluster::start_with_token(size, extra_args, None).await
    }

    /// [`TestCluster::start`] for nodes run with `--auth-tokens`: the cluster's clients (its
    /// leader checks among them) send `token`.
    pub async fn start_with_token(
        size: u64,
        extra_args: &[&str],
        token: Option<&str>,
    ) -> TestCluster {
        TestCluster::launch(size, extra_args, token, false).await
    }

    /// [`TestCluster::start`] with a CA and certificates of its own (`raftkv certs`): HTTPS
    /// wanting a client certificate, and mutual TLS between the nodes. Its clients present the
    /// client certificate.
    pub async fn start_tls(size: u64) -> TestCluster {
        TestCluster::launch(size, &[], None, true).await
    }

    async fn launch(size: u64, extra_args: &[&str], token: Option<&str>, tls: bool) -> TestCluster {
        let mut cluster = TestCluster::prepare_with(size, extra_args, token, tls);
        for index in 0..cluster.nodes.len() {
            cluster.spawn(index);
        }
        cluster.wait_for_leader().await;
        cluster
    }

    /// The addresses and directories of `size` nodes with `extra_args`, none started yet (for
    /// a test that writes their data directories first, then [`TestCluster::spawn`]s them).
    pub fn prepare(size: u64, extra_args: &[&str]) -> TestCluster {
        TestCluster::prepare_with(size, extra_args, None, false)
    }

    fn prepare_with(size: u64, extra_args: &[&str], token: Option<&str>, tls: bool) -> TestCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let tls = tls.then(|| {
            let certs = dir.path().join("certs");
            let ids: Vec<String> = (1..=size).map(|id| id.to_string()).collect();
            make_certs(&certs, &ids.join(","));
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config((*client_tls(&certs).config()).clone())
                .https_only()
                .enable_http1()
                .build();
            (
                certs,
                HttpClient::builder(TokioExecutor::new()).build(connector),
            )
        });
        let mut nodes = Vec::new();
        for id in 1..=size {
            nodes.push(Node {
                id,
                http: format!("127.0.0.1:{}", free_port()),
                raft: format!("127.0.0.1:{}", free_port()),
                grpc: format!("127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("node-{id}")),
                log: dir.path().join(format!("node-{id}.log")),
                process: None,
                join: None,
            });
        }
        let peers = nodes
            .iter()
            .map(|node| format!("{}={}", node.id, node.raft))
            .collect::<Vec<_>>()
            .join(",");
        TestCluster {
            nodes,
            peers,
            extra_args: extra_args.iter().map(|arg| arg.to_string()).collect(),
            dir,
            http: HttpClient::builder(TokioExecutor::new()).build(HttpConnector::new()),
            token: token.map(str::to_string),
            tls,
            cluster_id: Some("raftkv-test".to_string()),
        }
    }

    /// Nodes started from now on get `--peers peers` (unless they join).
    pub fn set_peers(&mut self, peers: &str) {
        self.peers = peers.to_string();
    }

    /// Nodes started from now on get `--cluster-id cluster_id`, or none.
    pub fn set_cluster_id(&mut self, cluster_id: Option<&str>) {
        self.cluster_id = cluster_id.map(str::to_string);
    }

    /// Starts node `index` (0-based) on its data directory.
    pub fn spawn(&mut self, index: usize) {
        let node = &self.nodes[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log file");
        let process = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("serve")
            .args(["--id", &node.id.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--http-addr", &node.http, "--raft-addr", &node.raft])
            .args(["--grpc-addr", &node.grpc])
            .args(match &node.join {
                Some(join) => ["--join", join.as_str()],
                None => ["--peers", self.peers.as_str()],
            })
            .args(
                self.cluster_id
                    .iter()
                    .flat_map(|cluster_id| ["--cluster-id", cluster_id.as_str()]),
            )
            .args(&self.extra_args)
            .args(match &self.tls {
                Some((certs, _)) => tls_args(certs, node.id),
                None => Vec::new(),
            })
            .env("RAFTKV_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("raftkv starts");
        self.nodes[index].process = Some(process);
    }

    /// Starts a new node that joins through node `through`; returns its index.
    pub fn join(&mut self, through: usize) -> usize {
        let id = self.nodes.len() as u64 + 1;
        self.nodes.push(Node {
            id,
            http: format!("127.0.0.1:{}", free_port()),
            raft: format!("127.0.0.1:{}", free_port()),
            grpc: format!("127.0.0.1:{}", free_port()),
            data_dir: self.dir.path().join(format!("node-{id}")),
            log: self.dir.path().join(format!("node-{id}.log")),
            process: None,
            join: Some(self.nodes[through].http.clone()),
        });
        let index = self.nodes.len() - 1;
        self.spawn(index);
        index
    }

    /// SIGKILLs node `index`.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.nodes[index].process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// SIGTERMs node `index` and waits for it to exit; returns its exit status.
    pub fn terminate(&mut self, index: usize) -> Option<std::process::ExitStatus> {
        let mut process = self.nodes[index].process.take()?;
        let pid = i32::try_from(process.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid with a valid signal.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        Some(wait_exit(&mut process, "node did not stop after SIGTERM"))
    }

    /// Waits for node `index`, started and expected to stop by itself (a node that refuses
    /// to start), to exit; returns its exit status.
    pub fn wait_for_exit(&mut self, index: usize) -> std::process::ExitStatus {
        let mut process = self.nodes[index].process.take().expect("node started");
        wait_exit(&mut process, "node did not exit")
    }

    /// Every endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.http.clone()).collect()
    }

    /// The certificates of a cluster started with [`TestCluster::start_tls`].
    pub fn certs(&self) -> &Path {
        &self.tls.as_ref().expect("a cluster with TLS").0
    }

    /// The temporary directory the nodes' data and logs are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--peers` of the first nodes: every one's Raft address.
    pub fn peers(&self) -> &str {
        &self.peers
    }

    /// A client of `endpoints`, over HTTPS with the client certificate in a TLS cluster, and
    /// with the cluster's token if it has one.
    fn client_for(&self, endpoints: impl IntoIterator<Item = String>) -> Client {
        let options = ClientOptions {
            request_timeout: Duration::from_secs(5),
            retry_deadline: DEADLINE,
        };
        let client = match &self.tls {
            Some((certs, _)) => Client::with_tls(endpoints, options, client_tls(certs)),
            None => Client::with_options(endpoints, options),
        };
        self.authenticated(client.expect("valid endpoints"))
    }

    /// `client` with the cluster's token, if it has one.
    fn authenticated(&self, client: Client) -> Client {
        match &self.token {
            Some(token) => client.with_bearer_token(token).expect("a valid token"),
            None => client,
        }
    }

    /// A client of every running node.
    pub fn client(&self) -> Client {
        self.client_for(
            self.nodes
                .iter()
                .filter(|node| node.process.is_some())
                .map(|node| node.http.clone()),
        )
    }

    /// A client of node `index` only.
    pub fn client_of(&self, index: usize) -> Client {
        self.client_for([self.nodes[index].http.clone()])
    }

    /// Status of node `index`, if it answers.
    pub async fn status(&self, index: usize) -> Option<StatusResponse> {
        self.client_of(index)
            .status(&self.nodes[index].http)
            .await
            .ok()
    }

    /// The value of the Prometheus sample whose line starts with `series` on node `index`
    /// (which must answer and export it).
    pub async fn metric(&self, index: usize, series: &str) -> f64 {
        let (status, _, body) = self
            .request(index, "GET", "/metrics", &[], Bytes::new())
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        String::from_utf8_lossy(&body)
            .lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.split_whitespace().last())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("node {} exports {series}", index + 1))
    }

    /// Waits until every running node names the same leader and knows its HTTP address (so
    /// any node can forward); returns the leader's index.
    pub async fn wait_for_leader(&self) -> usize {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut leaders = Vec::new();
            for (index, node) in self.nodes.iter().enumerate() {
                if node.process.is_none() {
                    continue;
                }
                let known = self
                    .status(index)
                    .await
                    .and_then(|status| status.leader.zip(status.leader_http));
                leaders.push(known.map(|(leader, _)| leader));
            }
            if let Some(Some(leader)) = leaders.first() {
                if leaders.iter().all(|known| *known == Some(*leader)) {
                    return (*leader - 1) as usize;
                }
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("no leader known to every node within {DEADLINE:?}: {leaders:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until node `index` says it leads (after a leadership transfer to it).
    pub async fn wait_until_leads(&self, index: usize) {
        wait_for(&format!("node {} leads", index + 1), || async move {
            let status = self.status(index).await?;
            (status.role == "leader").then_some(())
        })
        .await;
    }

    /// Sends a raw request to node `index`; returns status, headers and body.
    pub async fn request(
        &self,
        index: usize,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> (u16, hyper::HeaderMap, Bytes) {
        self.try_request(index, method, path_and_query, headers, body)
            .await
            .unwrap_or_else(|error| panic!("{method} {path_and_query}: {error}"))
    }

    /// [`TestCluster::request`], with a failure to get an answer returned rather than
    /// failing the test (for a node that may close connections, as at its connection limit).
    pub async fn try_request(
        &self,
        index: usize,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut request = hyper::Request::builder().method(method).uri(format!(
            "{scheme}://{}{path_and_query}",
            self.nodes[index].http
        ));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).expect("valid request");
        let response = match &self.tls {
            Some((_, https)) => tokio::time::timeout(DEADLINE, https.request(request)).await,
            None => tokio::time::timeout(DEADLINE, self.http.request(request)).await,
        };
        let response = response
            .map_err(|_| format!("no answer within {DEADLINE:?}"))?
            .map_err(|error| format!("the node does not answer: {error:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|error| format!("the body breaks off: {error}"))?
            .to_bytes();
        Ok((parts.status.as_u16(), parts.headers, body))
    }

    /// Prints every node's log (for a failing test).
    pub fn dump_logs(&self) {
        for node in &self.nodes {
            print_log_tail(&format!("node {}", node.id), &node.log, 40);
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}

/// Waits (polling, until [`DEADLINE`]) for `child` to exit; fails with `failure` if it does
/// not.
pub fn wait_exit(child: &mut Child, failure: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        assert!(Instant::now() < deadline, "{failure}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Prints the last `count` lines of the log at `path` (for a failing test), if it is readable.
pub fn print_log_tail(label: &str, path: &std::path::Path, count: usize) {
    if let Ok(text) = std::fs::read_to_string(path) {
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- {label} log (last {count} lines) ---");
        for line in &lines[lines.len().saturating_sub(count)..] {
            eprintln!("{line}");
        }
    }
}

/// Polls `condition` until it yields a value, failing after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `raftkv certs` for `nodes` (comma-separated ids) into `out`: a CA of its own.
pub fn make_certs(out: &Path, nodes: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["certs", "--out"])
        .arg(out)
        .args(["--nodes", nodes, "--ip", "127.0.0.1"])
        .output()
        .expect("raftkv certs runs");
    assert!(
        output.status.success(),
        "raftkv certs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The client side of a set of certificates: its CA, and its client certificate.
pub fn client_tls(certs: &Path) -> ClientTls {
    ClientTls::from_pem_files(
        &certs.join("ca.pem"),
        Some((&certs.join("client.pem"), &certs.join("client-key.pem"))),
    )
    .expect("valid client TLS files")
}

/// The `raftkv serve` flags of node `id` with the certificates in `certs`: HTTPS wanting a
/// client certificate, and mutual TLS between the nodes.
pub fn tls_args(certs: &Path, id: u64) -> Vec<OsString> {
    let certificate = certs.join(format!("node-{id}.pem"));
    let key = certs.join(format!("node-{id}-key.pem"));
    let ca = certs.join("ca.pem");
    [
        ("--tls-cert", &certificate),
        ("--tls-key", &key),
        ("--tls-ca", &ca),
        ("--peer-tls-cert", &certificate),
        ("--peer-tls-key", &key),
        ("--peer-tls-ca", &ca),
    ]
    .into_iter()
    .flat_map(|(flag, path)| [OsString::from(flag), path.clone().into_os_string()])
    .collect()
}

/// The JSON error of an error answer's body; a body that is not one fails the test.
pub fn error_of(body: &Bytes) -> raftkv_client::api::ErrorResponse {
    serde_json::from_slice(body).unwrap_or_else(|error| {
        panic!(
            "error bodies are JSON ({error}): {}",
            String::from_utf8_lossy(body)
        )
    })
}

/// `raftkv --endpoints ENDPOINTS ARGS` (the CLI under test), run to its end.
pub fn raftkv(endpoints: &[String], args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("raftkv runs")
}

/// A command's standard output, as text.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's exit status and both outputs, for an assertion's message.
pub fn describe(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}stderr:\n{}",
        output.status.code(),
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}
