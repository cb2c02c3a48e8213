//! raftkv over TLS, with real `raftkv serve` processes on free loopback ports: HTTPS for the
//! API (client certificates required), mutual TLS between peers, and HTTPS between the nodes
//! (forwarding to the leader, announcing). Certificates are made at test time by
//! `raftkv certs` in a temporary directory; no key is checked in. Every wait has a deadline.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use raftkv_client::api::{StatusResponse, LEADER_HEADER};
use raftkv_client::{Client, ClientOptions, ClientTls, Consistency};

/// How long any awaited outcome may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// A port nothing listens on right now (the OS picks it; the test binds it soon after).
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn raftkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
}

/// Runs `raftkv certs` for `nodes` (comma-separated ids) into `out`: a CA of its own.
fn make_certs(out: &Path, nodes: &str) {
    let output = raftkv()
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
fn client_tls(certs: &Path) -> ClientTls {
    ClientTls::from_pem_files(
        &certs.join("ca.pem"),
        Some((&certs.join("client.pem"), &certs.join("client-key.pem"))),
    )
    .expect("valid client TLS files")
}

fn options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        retry_deadline: DEADLINE,
    }
}

/// One `raftkv serve` process with every TLS setting from `certs`, killed when dropped.
struct Node {
    id: u64,
    http: String,
    log: PathBuf,
    process: Child,
}

impl Node {
    fn spawn(dir: &Path, certs: &Path, id: u64, http: &str, raft: &str, members: &str) -> Node {
        let log = dir.join(format!("node-{id}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let file = |name: String| certs.join(name);
        let process = raftkv()
            .arg("serve")
            .args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(dir.join(format!("node-{id}")))
            .args(["--http-addr", http, "--raft-addr", raft])
            .args(members.split(' '))
            .args(["--cluster-id", "raftkv-tls-test"])
            .arg("--tls-cert")
            .arg(file(format!("node-{id}.pem")))
            .arg("--tls-key")
            .arg(file(format!("node-{id}-key.pem")))
            .arg("--tls-ca")
            .arg(file("ca.pem".into()))
            .arg("--peer-tls-cert")
            .arg(file(format!("node-{id}.pem")))
            .arg("--peer-tls-key")
            .arg(file(format!("node-{id}-key.pem")))
            .arg("--peer-tls-ca")
            .arg(file("ca.pem".into()))
            .env("RAFTKV_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone().expect("log file")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("raftkv starts");
        Node {
            id,
            http: http.to_string(),
            log,
            process,
        }
    }

    /// Waits for the process to exit by itself; `None` if it is still running at the deadline.
    fn wait_for_exit(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.process.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Three nodes with certificates from one CA.
struct TlsCluster {
    dir: tempfile::TempDir,
    certs: PathBuf,
    nodes: Vec<Node>,
    /// `--peers`, every member's Raft address.
    peers: String,
}

impl TlsCluster {
    async fn start() -> TlsCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let certs = dir.path().join("certs");
        make_certs(&certs, "1,2,3");
        let addresses: Vec<(u64, String, String)> = (1..=3)
            .map(|id| {
                (
                    id,
                    format!("127.0.0.1:{}", free_port()),
                    format!("127.0.0.1:{}", free_port()),
                )
            })
            .collect();
        let peers = addresses
            .iter()
            .map(|(id, _, raft)| format!("{id}={raft}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = addresses
            .iter()
            .map(|(id, http, raft)| {
                Node::spawn(
                    dir.path(),
                    &certs,
                    *id,
                    http,
                    raft,
                    &format!("--peers {peers}"),
                )
            })
            .collect();
        TlsCluster {
            dir,
            certs,
            nodes,
            peers,
        }
    }

    /// A client of node `index` only, over HTTPS with the cluster's client certificate.
    fn client_of(&self, index: usize) -> Client {
        Client::with_tls(
            [self.nodes[index].http.as_str()],
            options(),
            client_tls(&self.certs),
        )
        .expect("valid endpoint")
    }

    async fn status(&self, index: usize) -> Option<StatusResponse> {
        self.client_of(index)
            .status(&self.nodes[index].http)
            .await
            .ok()
    }

    /// Waits until every node names the same leader and knows its HTTP address; returns the
    /// leader's index.
    async fn wait_for_leader(&self) -> usize {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut leaders = Vec::new();
            for index in 0..self.nodes.len() {
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

    fn dump_logs(&self) {
        for node in &self.nodes {
            let text = node.log_text();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- node {} log (last 40 lines) ---", node.id);
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
    }
}

/// Sends one request over HTTPS with `tls`; returns the status, the headers and the body.
async fn https_request(
    tls: &ClientTls,
    method: &str,
    url: &str,
    body: &'static str,
) -> (u16, hyper::HeaderMap, Bytes) {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls.config()).clone())
        .https_only()
        .enable_http1()
        .build();
    let client: HttpClient<_, Full<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build(connector);
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("a valid request");
    let response = tokio::time::timeout(DEADLINE, client.request(request))
        .await
        .expect("answered in time")
        .expect("the node answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("the whole body").to_bytes();
    (parts.status.as_u16(), parts.headers, body)
}

/// The value of counter `name` in node `index`'s metrics.
async fn counter(cluster: &TlsCluster, index: usize, name: &str) -> u64 {
    let url = format!("https://{}/metrics", cluster.nodes[index].http);
    let (status, _, body) = https_request(&client_tls(&cluster.certs), "GET", &url, "").await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body).into_owned();
    text.lines()
        .find(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|metric| metric.ends_with(name))
        })
        .and_then(|line| line.split_whitespace().last())
        .and_then(|value| value.parse::<f64>().ok())
        .map(|value| value as u64)
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_writes_and_linearizable_reads_through_every_node_over_https() {
    let cluster = TlsCluster::start().await;
    let leader = cluster.wait_for_leader().await;

    // Each node gets writes from a client that knows only that node: followers forward them
    // to the leader over HTTPS, presenting their own certificate.
    for index in 0..3 {
        cluster
            .client_of(index)
            .put(&format!("key-{index}"), format!("value-{index}"))
            .await
            .unwrap_or_else(|error| panic!("write through node {index}: {error}"));
    }
    for index in 0..3 {
        let client = cluster.client_of(index);
        for key in 0..3 {
            let value = client
                .get(&format!("key-{key}"), Consistency::Linearizable)
                .await
                .unwrap_or_else(|error| panic!("read from node {index}: {error}"));
            assert_eq!(
                value.as_deref(),
                Some(format!("value-{key}").as_bytes()),
                "key-{key} read from node {index}"
            );
        }
    }

    // A write sent to a follower is answered by the leader, through the follower.
    let follower = (leader + 1) % 3;
    let url = format!("https://{}/v1/kv/forwarded", cluster.nodes[follower].http);
    let (status, headers, body) =
        https_request(&client_tls(&cluster.certs), "PUT", &url, "yes").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        headers
            .get(LEADER_HEADER)
            .and_then(|value| value.to_str().ok()),
        Some(cluster.nodes[leader].http.as_str()),
        "forwarded to the leader"
    );
    assert!(counter(&cluster, follower, "kv_requests_forwarded_total").await >= 1);

    // Every node announces its HTTPS address through the leader (followers over HTTPS), so
    // any can be forwarded to once it leads.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let members = cluster
            .client_of(follower)
            .members()
            .await
            .expect("members");
        let announced = members.members.iter().all(|member| {
            member.http_address.as_ref() == Some(&cluster.nodes[(member.id - 1) as usize].http)
        });
        if announced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every node announced its address: {members:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The peers found one another's certificates good.
    for index in 0..3 {
        assert_eq!(
            counter(&cluster, index, "raft_peer_tls_handshakes_failed_total").await,
            0,
            "node {index}"
        );
    }

    // Plain HTTP gets no answer from an HTTPS node, nor does a client without a certificate.
    let endpoint = cluster.nodes[0].http.as_str();
    let quick = ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_deadline: Duration::ZERO,
    };
    let plain = Client::with_options([endpoint], quick).expect("valid endpoint");
    assert!(plain.status(endpoint).await.is_err(), "plain HTTP answered");
    let anonymous_tls =
        ClientTls::from_pem_files(&cluster.certs.join("ca.pem"), None).expect("a CA");
    let anonymous = Client::with_tls([endpoint], quick, anonymous_tls).expect("valid endpoint");
    assert!(
        anonymous.status(endpoint).await.is_err(),
        "a client without a certificate was answered"
    );
    assert!(counter(&cluster, 0, "http_tls_handshakes_failed_total").await >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_foreign_ca_certificate_cannot_join_or_disturb_the_cluster() {
    let cluster = TlsCluster::start().await;
    let leader = cluster.wait_for_leader().await;
    let term = cluster
        .status(leader)
        .await
        .expect("the leader answers")
        .term;
    cluster
        .client_of(leader)
        .put("before", "1")
        .await
        .expect("a write before");

    // Certificates for nodes 4 and 5 from another CA, as consistent as the real ones.
    let foreign = cluster.dir.path().join("foreign");
    make_certs(&foreign, "4,5");
    // Node 4 counts itself a member beside the three and dials them all, to campaign.
    let intruder_http = format!("127.0.0.1:{}", free_port());
    let intruder_raft = format!("127.0.0.1:{}", free_port());
    let intruder = Node::spawn(
        cluster.dir.path(),
        &foreign,
        4,
        &intruder_http,
        &intruder_raft,
        &format!("--peers {},4={intruder_raft}", cluster.peers),
    );
    // Node 5 asks to join through the leader.
    let mut joiner = Node::spawn(
        cluster.dir.path(),
        &foreign,
        5,
        &format!("127.0.0.1:{}", free_port()),
        &format!("127.0.0.1:{}", free_port()),
        &format!("--join {}", cluster.nodes[leader].http),
    );

    // The cluster keeps serving while node 4 knocks at every member, again and again.
    let deadline = Instant::now() + DEADLINE;
    let mut round = 0;
    loop {
        for index in 0..3 {
            round += 1;
            cluster
                .client_of(index)
                .put(&format!("during-{round}"), "x")
                .await
                .unwrap_or_else(|error| panic!("write through node {index}: {error}"));
        }
        let mut refused = Vec::new();
        for index in 0..3 {
            refused.push(counter(&cluster, index, "raft_peer_tls_handshakes_failed_total").await);
        }
        if refused.iter().all(|count| *count >= 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 4 was not refused by every member: {refused:?}\n{}",
            intruder.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Undisturbed: the same leader in the same term, on every node.
    for index in 0..3 {
        let status = cluster.status(index).await.expect("the node answers");
        assert_eq!(status.leader, Some(leader as u64 + 1), "node {index}");
        assert_eq!(status.term, term, "node {index}: the term moved");
        assert_eq!(status.members, [1, 2, 3], "node {index}");
    }
    let value = cluster
        .client_of(0)
        .get("before", Consistency::Linearizable)
        .await
        .expect("a read after");
    assert_eq!(value.as_deref(), Some(&b"1"[..]));

    // Node 4 got nothing: no leader, no entry, no key.
    let intruder_client =
        Client::with_tls([intruder_http.as_str()], options(), client_tls(&foreign))
            .expect("valid endpoint");
    let status = intruder_client
        .status(&intruder_http)
        .await
        .expect("node 4 answers its own CA's clients");
    assert_eq!(status.leader, None, "{status:?}");
    assert_eq!((status.commit_index, status.keys), (0, 0), "{status:?}");
    let stale = intruder_client
        .get("before", Consistency::Stale)
        .await
        .expect("a stale read");
    assert_eq!(stale, None);

    // Node 5 could not even learn the members: the leader's certificate is not from its CA.
    let exit = joiner.wait_for_exit().expect("the joiner gives up");
    assert!(!exit.success(), "{exit:?}");
    let log = joiner.log_text();
    assert!(log.contains("cannot learn the members"), "{log}");
}
