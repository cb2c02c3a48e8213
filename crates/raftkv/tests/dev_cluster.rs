//! `raftkv dev --secure`, run as a user would: the real command starts three real nodes with
//! certificates and tokens it makes itself, prints how to reach them, and stops them all on
//! SIGTERM. Every wait has a deadline.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener as StdListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv_client::{Client, ClientError, ClientOptions, ClientTls, Consistency};

use common::{describe, free_port_run, stdout};

/// How long any awaited outcome may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// A running `raftkv dev`, stopped with SIGTERM when dropped (so that it stops its nodes).
struct Dev {
    process: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Dev {
    fn start(data_dir: &Path, http_port: u16, raft_port: u16, grpc_port: u16) -> Dev {
        let mut process = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["dev", "--secure", "--data-dir"])
            .arg(data_dir)
            .args(["--http-port", &http_port.to_string()])
            .args(["--raft-port", &raft_port.to_string()])
            .args(["--grpc-port", &grpc_port.to_string()])
            // A setting meant for another node, which dev does not set itself: handed on to its
            // nodes, it would keep them from starting.
            .env("RAFTKV_TLS_CA", "/nonexistent/ca.pem")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("raftkv dev starts");
        let stdout = process.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Dev {
            process,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads the output until a line starts with `prefix` (after indentation); returns it.
    fn wait_for_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.trim_start().starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "raftkv dev printed no line starting with {prefix:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn terminate(&self) {
        let pid = i32::try_from(self.process.id()).expect("a pid fits in i32");
        // SAFETY: kill(2) with our own child's pid and a valid signal has no memory-safety
        // preconditions.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            self.terminate();
            let deadline = Instant::now() + DEADLINE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.process.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// The value of `name = "..."` in `text`'s `[[token]]` table whose `name` is `token_name`.
fn token_of(text: &str, token_name: &str) -> String {
    let table = text
        .split("[[token]]")
        .find(|table| table.contains(&format!("name = \"{token_name}\"")))
        .unwrap_or_else(|| panic!("no token named {token_name} in {text}"));
    table
        .lines()
        .find_map(|line| line.strip_prefix("token = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("token {token_name} has no token line"))
        .to_string()
}

fn client(endpoints: &[String], ca: &Path, token: Option<&str>) -> Client {
    let tls = ClientTls::from_pem_files(ca, None).expect("a valid CA file");
    let options = ClientOptions {
        request_timeout: Duration::from_secs(5),
        retry_deadline: Duration::from_secs(10),
    };
    let client = Client::with_tls(endpoints, options, tls).expect("valid endpoints");
    match token {
        Some(token) => client.with_bearer_token(token).expect("a valid token"),
        None => client,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_secure_starts_a_tls_cluster_with_tokens_and_stops_it_on_sigterm() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");
    let http_port = free_port_run(9);
    let raft_port = http_port + 3;
    let grpc_port = http_port + 6;
    let mut dev = Dev::start(&data_dir, http_port, raft_port, grpc_port);

    let node_line = dev.wait_for_line("node 1");
    assert!(
        node_line.contains(&format!("https://127.0.0.1:{http_port}"))
            && node_line.contains(&format!("etcd gRPC https://127.0.0.1:{grpc_port}")),
        "node 1 is announced over https, its etcd API too: {node_line}"
    );
    let export = dev.wait_for_line("export RAFTKV_CA_CERT=");
    let words: Vec<&str> = export.split_whitespace().collect();
    let ca = PathBuf::from(
        words
            .iter()
            .find_map(|word| word.strip_prefix("RAFTKV_CA_CERT="))
            .expect("the CA path"),
    );
    let admin_token = words
        .iter()
        .find_map(|word| word.strip_prefix("RAFTKV_TOKEN="))
        .expect("the admin token")
        .to_string();
    let etcdctl_example = dev.wait_for_line("etcdctl --cacert");
    let grpc_endpoints: Vec<String> = (0..3)
        .map(|offset| format!("https://127.0.0.1:{}", grpc_port + offset))
        .collect();
    assert!(
        etcdctl_example.contains(&format!("--endpoints {}", grpc_endpoints.join(","))),
        "the etcdctl example names every node's etcd API: {etcdctl_example}"
    );
    dev.wait_for_line("Ctrl-C stops the cluster");

    let tokens_file = data_dir.join("tokens.toml");
    let mode = std::fs::metadata(&tokens_file)
        .expect("tokens.toml written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "tokens.toml is its owner's only: {mode:o}");
    let tokens_text = std::fs::read_to_string(&tokens_file).expect("tokens.toml readable");
    assert_eq!(token_of(&tokens_text, "dev-admin"), admin_token);
    let reader_token = token_of(&tokens_text, "dev-reader");
    assert_ne!(reader_token, admin_token);

    let endpoints: Vec<String> = (0..3)
        .map(|offset| format!("127.0.0.1:{}", http_port + offset))
        .collect();
    // A write through node 1 is read back linearizably through node 3 (its follower or
    // leader alike), all over HTTPS with the printed token.
    let writer = client(&endpoints[..1], &ca, Some(&admin_token));
    writer
        .put("greeting", Bytes::from_static(b"hi"))
        .await
        .expect("the admin token may write");
    let other = client(&endpoints[2..], &ca, Some(&admin_token));
    let read = other
        .get("greeting", Consistency::Linearizable)
        .await
        .expect("the admin token may read");
    assert_eq!(read.as_deref(), Some(&b"hi"[..]));

    // The read-only token reads and may not write; no token is refused outright.
    let reader = client(&endpoints, &ca, Some(&reader_token));
    let read = reader
        .get("greeting", Consistency::Linearizable)
        .await
        .expect("the read-only token may read");
    assert_eq!(read.as_deref(), Some(&b"hi"[..]));
    let refused = reader
        .put("greeting", Bytes::from_static(b"nope"))
        .await
        .expect_err("the read-only token may not write");
    assert!(
        matches!(refused, ClientError::Server { status: 403, .. }),
        "{refused}"
    );
    let anonymous = client(&endpoints, &ca, None);
    let refused = anonymous
        .get("greeting", Consistency::Linearizable)
        .await
        .expect_err("no token, no read");
    assert!(
        matches!(refused, ClientError::Server { status: 401, .. }),
        "{refused}"
    );

    // Every node's etcd API answers over the same TLS, with the same tokens: etcdctl (which
    // must be installed) with the CA and the admin token as the password.
    for (index, endpoint) in grpc_endpoints.iter().enumerate() {
        let status = etcdctl(&ca, Some(&admin_token), endpoint, &["endpoint", "status"]);
        assert!(
            status.status.success() && stdout(&status).contains(", 3.5.0, "),
            "node {}'s etcd API answers its status: {}",
            index + 1,
            describe(&status)
        );
    }
    // Once every node announced itself (a moment after the leader is known), each is listed
    // as started with its Raft and gRPC addresses.
    let members: Vec<String> = (0..3)
        .map(|offset| {
            format!(
                "{id}, started, {id}, https://127.0.0.1:{}, https://127.0.0.1:{}, false",
                raft_port + offset,
                grpc_port + offset,
                id = offset + 1,
            )
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let listed = etcdctl(
            &ca,
            Some(&reader_token),
            &grpc_endpoints[1],
            &["member", "list"],
        );
        assert!(listed.status.success(), "{}", describe(&listed));
        if members
            .iter()
            .all(|member| stdout(&listed).contains(member))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every member is listed as started: {}",
            describe(&listed)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = etcdctl(
        &ca,
        Some(&reader_token),
        &grpc_endpoints[0],
        &["member", "remove", "3"],
    );
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("etcdserver: permission denied"),
        "the read-only token may not change the membership: {}",
        describe(&refused)
    );
    let refused = etcdctl(&ca, None, &grpc_endpoints[0], &["member", "list"]);
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("etcdserver: invalid auth token"),
        "no token, no answer: {}",
        describe(&refused)
    );

    // SIGTERM stops dev and every node it started: their ports are free again.
    dev.terminate();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Ok(Some(status)) = dev.process.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "raftkv dev did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "raftkv dev exits cleanly: {status}");
    for port in http_port..http_port + 9 {
        assert!(
            StdListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is free once dev has stopped"
        );
    }
}

/// Runs etcdctl (Debian's etcd-client: the test fails without it) against `endpoint` over
/// TLS with `ca`, as user `admin` with `token` as the password when given.
fn etcdctl(ca: &Path, token: Option<&str>, endpoint: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .arg("--cacert")
        .arg(ca)
        .args(["--endpoints", endpoint, "--command-timeout", "10s"]);
    if let Some(token) = token {
        command.args(["--user", &format!("admin:{token}")]);
    }
    command
        .args(args)
        .output()
        .expect("etcdctl runs (install Debian's etcd-client)")
}
