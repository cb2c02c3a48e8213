//! A 3-node cluster of real `raftkv serve` processes on loopback for the load generator to
//! drive, and the `raftkv` binary that runs `raftkv bench`.
//!
//! ```text
//!  raftkv_bin(): cargo build --workspace --tests (this test's profile) ─► target/<profile>/raftkv,
//!                beside target/<profile>/raftkv-bench, which `raftkv bench` runs
//!  Cluster::start(): 3 × raftkv serve on free ports (HTTP, and etcd's gRPC API on
//!                   --grpc-addr) ─► wait until a write succeeds
//!  drop: kill every node
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv_client::{Client, ClientOptions};

/// How long the cluster may take to elect a leader and take a write.
const DEADLINE: Duration = Duration::from_secs(30);

/// The `raftkv` binary of this tree, built for the profile this test runs in, so it lands in
/// the directory that also holds this crate's `raftkv-bench` (as `cargo build` puts both in
/// target/release). `RAFTKV_BIN` names another.
pub fn raftkv_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("RAFTKV_BIN") {
        return PathBuf::from(path);
    }
    let bench = Path::new(env!("CARGO_BIN_EXE_raftkv-bench"));
    let profile_dir = bench.parent().expect("target/<profile>").to_path_buf();
    // Every workspace package's tests, as `cargo test --workspace` builds them: `-p raftkv`
    // alone resolves features without the dev-dependencies' and rebuilt tokio and all above it
    // (about three minutes of the CI run); this selection finds everything fresh.
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "--locked", "--workspace", "--tests"]);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    } else {
        build.args(["--profile", "test"]);
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building raftkv failed: {status}");
    let path = profile_dir.join("raftkv");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A loopback port nothing listens on right now, below the kernel's ephemeral range: a port
/// handed out for `127.0.0.1:0` may meanwhile become the local end of an outgoing connection.
pub fn free_port() -> u16 {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (start..start + 2_000)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok() && !taken(port))
        .expect("a free loopback port")
}

/// Ports this process handed out already (a node binds its port a little later).
fn taken(port: u16) -> bool {
    static TAKEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().expect("port list");
    if taken.contains(&port) {
        return true;
    }
    taken.push(port);
    false
}

/// Three `raftkv serve` processes; killed when dropped.
pub struct Cluster {
    nodes: Vec<Child>,
    http: Vec<String>,
    grpc: Vec<String>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three nodes and waits until the cluster takes a write.
    pub async fn start(raftkv: &Path) -> Cluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let http: Vec<String> = (0..3)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let grpc: Vec<String> = (0..3)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let raft: Vec<String> = (0..3)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let peers: Vec<String> = raft
            .iter()
            .enumerate()
            .map(|(index, address)| format!("{}={address}", index + 1))
            .collect();
        let nodes = (0..3)
            .map(|index| {
                let log = std::fs::File::create(dir.path().join(format!("node-{}.log", index + 1)))
                    .expect("log file");
                Command::new(raftkv)
                    .arg("serve")
                    .args(["--id", &(index + 1).to_string()])
                    .arg("--data-dir")
                    .arg(dir.path().join(format!("node-{}", index + 1)))
                    .args(["--http-addr", &http[index], "--raft-addr", &raft[index]])
                    .args(["--grpc-addr", &grpc[index]])
                    .args(["--peers", &peers.join(","), "--cluster-id", "bench-test"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(log.try_clone().expect("log file")))
                    .stderr(Stdio::from(log))
                    .spawn()
                    .expect("raftkv serve starts")
            })
            .collect();
        let cluster = Cluster {
            nodes,
            http,
            grpc,
            dir,
        };
        let client = cluster.client();
        let started = Instant::now();
        while let Err(error) = client
            .put("bench-test-ready", Bytes::from_static(b"1"))
            .await
        {
            if started.elapsed() > DEADLINE {
                cluster.dump_logs();
                panic!("no write succeeded within {DEADLINE:?}: {error}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cluster
    }

    /// The nodes' HTTP addresses.
    /// A `raftkv bench` run's stdout, once it exited 0; else the nodes' logs and the output,
    /// and the test fails.
    #[allow(dead_code)] // Each test binary compiles this module; not every one uses each.
    pub fn succeeded(&self, output: &std::process::Output) -> String {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            self.dump_logs();
            panic!(
                "raftkv bench failed ({}): {}\nstdout: {stdout}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        stdout
    }

    #[allow(dead_code)] // Each test binary compiles this module; not every one uses each.
    pub fn endpoints(&self) -> &[String] {
        &self.http
    }

    /// The nodes' etcd v3 gRPC addresses (`--grpc-addr`).
    #[allow(dead_code)] // Each test binary compiles this module; not every one uses each.
    pub fn grpc_endpoints(&self) -> &[String] {
        &self.grpc
    }

    /// The nodes' process ids.
    #[allow(dead_code)] // Each test binary compiles this module; not every one uses each.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(Child::id).collect()
    }

    /// A client of the cluster.
    pub fn client(&self) -> Client {
        let options = ClientOptions {
            request_timeout: Duration::from_secs(2),
            retry_deadline: Duration::from_secs(5),
        };
        Client::with_options(&self.http, options).expect("valid endpoints")
    }

    /// Prints every node's log, for a failed test.
    pub fn dump_logs(&self) {
        for index in 1..=self.nodes.len() {
            let path = self.dir.path().join(format!("node-{index}.log"));
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            eprintln!("--- node {index} ---\n{log}");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

/// The count of PUTs of a key that node `http` answered 200, from its `/metrics` (a plain
/// HTTP/1.0 GET: nothing more is needed to read it).
#[allow(dead_code)] // Each test binary compiles this module; not every one uses each.
pub fn puts_answered(http: &str) -> f64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(http).expect("the node listens");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {http}\r\n\r\n").expect("request sent");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("metrics read");
    text.lines()
        .filter(|line| {
            line.starts_with("raftkv_http_request_duration_seconds_count{")
                && line.contains(r#"route="/v1/kv/{key}""#)
                && line.contains(r#"method="PUT""#)
                && line.contains(r#"status="200""#)
        })
        .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}
