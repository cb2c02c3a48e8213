//! raftkv over TLS, with real `raftkv serve` processes on free loopback ports: HTTPS for the
//! API (client certificates required), mutual TLS between peers, and HTTPS between the nodes
//! (forwarding to the leader, announcing). Certificates are made at test time by
//! `raftkv certs` in a temporary directory; no key is checked in. Every wait has a deadline.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{client_tls, free_port, make_certs, tls_args, wait_for, TestCluster, DEADLINE};
use raftkv_client::api::LEADER_HEADER;
use raftkv_client::{Client, ClientError, ClientOptions, ClientTls, Consistency};

/// A node that is not one of the cluster's: certificates from another CA, its own
/// membership flags. Killed when dropped.
struct Outsider {
    log: PathBuf,
    process: Child,
}

impl Outsider {
    /// Starts node `id` with the certificates in `certs` and `membership` (`--peers ...` or
    /// `--join ...`).
    fn spawn(
        dir: &Path,
        certs: &Path,
        id: u64,
        http: &str,
        raft: &str,
        membership: [&str; 2],
    ) -> Outsider {
        let log = dir.join(format!("node-{id}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let process = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("serve")
            .args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(dir.join(format!("node-{id}")))
            .args(["--http-addr", http, "--raft-addr", raft])
            .args(membership)
            .args(["--cluster-id", "raftkv-test"])
            .args(tls_args(certs, id))
            .env("RAFTKV_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone().expect("log file")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("raftkv starts");
        Outsider { log, process }
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

impl Drop for Outsider {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        retry_deadline: DEADLINE,
    }
}

/// The value of counter `name` in node `index`'s metrics.
async fn counter(cluster: &TestCluster, index: usize, name: &str) -> u64 {
    let (status, _, body) = cluster.request(index, "GET", "/metrics", &[], "").await;
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
    let cluster = TestCluster::start_tls(3).await;
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

    // A write sent to a follower goes to the leader over the (mutual TLS) Raft transport, and
    // the answer names the leader.
    let follower = (leader + 1) % 3;
    let (status, headers, body) = cluster
        .request(follower, "PUT", "/v1/kv/forwarded", &[], "yes")
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        headers
            .get(LEADER_HEADER)
            .and_then(|value| value.to_str().ok()),
        Some(cluster.nodes[leader].http.as_str()),
        "the leader is named"
    );
    // A lease grant only the leader serves is forwarded to the leader's HTTPS API, and
    // answered by it through the follower.
    let (status, headers, body) = cluster
        .request(
            follower,
            "POST",
            "/v1/lease/grant",
            &[("content-type", "application/json")],
            r#"{"ttl_seconds": 60}"#,
        )
        .await;
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
        ClientTls::from_pem_files(&cluster.certs().join("ca.pem"), None).expect("a CA");
    let anonymous = Client::with_tls([endpoint], quick, anonymous_tls).expect("valid endpoint");
    assert!(
        anonymous.status(endpoint).await.is_err(),
        "a client without a certificate was answered"
    );
    // Nor does it wait out the retry deadline: a refused certificate is not retried for long.
    let patient = ClientOptions {
        request_timeout: Duration::from_secs(2),
        retry_deadline: Duration::from_secs(60),
    };
    let anonymous_tls =
        ClientTls::from_pem_files(&cluster.certs().join("ca.pem"), None).expect("a CA");
    let anonymous =
        Client::with_tls(cluster.endpoints(), patient, anonymous_tls).expect("valid endpoints");
    match anonymous.get("key-0", Consistency::Linearizable).await {
        Err(ClientError::Unavailable(message)) => assert!(
            message.contains("every node refused the TLS handshake"),
            "{message}"
        ),
        other => panic!("a client without a certificate was answered: {other:?}"),
    }
    assert!(counter(&cluster, 0, "http_tls_handshakes_failed_total").await >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_foreign_ca_certificate_cannot_join_or_disturb_the_cluster() {
    let cluster = TestCluster::start_tls(3).await;
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
    let foreign = cluster.dir().join("foreign");
    make_certs(&foreign, "4,5");
    // Node 4 counts itself a member beside the three and dials them all, to campaign.
    let intruder_http = format!("127.0.0.1:{}", free_port());
    let intruder_raft = format!("127.0.0.1:{}", free_port());
    let intruder = Outsider::spawn(
        cluster.dir(),
        &foreign,
        4,
        &intruder_http,
        &intruder_raft,
        ["--peers", &format!("{},4={intruder_raft}", cluster.peers())],
    );
    // Node 5 asks to join through the leader.
    let mut joiner = Outsider::spawn(
        cluster.dir(),
        &foreign,
        5,
        &format!("127.0.0.1:{}", free_port()),
        &format!("127.0.0.1:{}", free_port()),
        ["--join", &cluster.nodes[leader].http],
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
    // It gave up on the certificate at once, not after retrying until the client's deadline.
    assert!(
        log.contains("every node refused the TLS handshake"),
        "{log}"
    );
}

/// A one-node cluster serving HTTPS (client certificates required) and peer TLS from files in
/// a directory of its own (`node.pem`, `node-key.pem`, `ca.pem`), which the test rewrites while
/// it runs. Killed when dropped.
struct LiveNode {
    files: PathBuf,
    http: String,
    log: PathBuf,
    process: Child,
}

impl LiveNode {
    /// Starts node 1 under `dir/name` with copies of node 1's files in `certs`, polling them
    /// every `watch_interval_ms` (0: on SIGHUP only).
    fn spawn(dir: &Path, name: &str, certs: &Path, watch_interval_ms: &str) -> LiveNode {
        let files = dir.join(name);
        std::fs::create_dir_all(&files).expect("creates the files' directory");
        for (from, to) in [
            ("node-1.pem", "node.pem"),
            ("node-1-key.pem", "node-key.pem"),
            ("ca.pem", "ca.pem"),
        ] {
            std::fs::copy(certs.join(from), files.join(to)).expect("copies a TLS file");
        }
        let http = format!("127.0.0.1:{}", free_port());
        let raft = format!("127.0.0.1:{}", free_port());
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let file = |name: &str| files.join(name).into_os_string();
        let process = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("serve")
            .args(["--id", "1", "--http-addr", &http, "--raft-addr", &raft])
            .arg("--data-dir")
            .arg(dir.join(format!("{name}-data")))
            .args([
                "--peers",
                &format!("1={raft}"),
                "--cluster-id",
                "raftkv-test",
            ])
            .arg("--tls-cert")
            .arg(file("node.pem"))
            .arg("--tls-key")
            .arg(file("node-key.pem"))
            .arg("--tls-ca")
            .arg(file("ca.pem"))
            .arg("--peer-tls-cert")
            .arg(file("node.pem"))
            .arg("--peer-tls-key")
            .arg(file("node-key.pem"))
            .arg("--peer-tls-ca")
            .arg(file("ca.pem"))
            .args(["--config-watch-interval-ms", watch_interval_ms])
            .env("RAFTKV_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone().expect("log file")))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("raftkv starts");
        LiveNode {
            files,
            http,
            log,
            process,
        }
    }

    /// Rewrites its file `name` in place with the contents of `sources`, one after another.
    fn put_file(&self, name: &str, sources: &[&Path]) {
        let mut contents = Vec::new();
        for source in sources {
            contents.extend(std::fs::read(source).expect("reads a TLS file"));
        }
        std::fs::write(self.files.join(name), contents).expect("rewrites a TLS file");
    }

    fn hangup(&self) {
        let pid = i32::try_from(self.process.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid with a valid signal.
        unsafe {
            libc::kill(pid, libc::SIGHUP);
        }
    }

    /// Lines of its log containing every one of `parts`.
    fn log_lines(&self, parts: &[&str]) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| parts.iter().all(|part| line.contains(part)))
            .count()
    }

    /// Whether a client trusting `server_ca` and presenting the client certificate of `certs`
    /// (a `raftkv certs` directory) gets an answer.
    async fn answers(&self, server_ca: &Path, certs: &Path) -> bool {
        let quick = ClientOptions {
            request_timeout: Duration::from_secs(2),
            retry_deadline: Duration::ZERO,
        };
        let tls = presenting(server_ca, certs);
        let client = Client::with_tls([self.http.as_str()], quick, tls).expect("valid endpoint");
        client.status(&self.http).await.is_ok()
    }

    /// The certificate a new HTTPS handshake gets, seen by a client trusting `server_ca` and
    /// presenting the client certificate of `certs`.
    async fn served_certificate(&self, server_ca: &Path, certs: &Path) -> Vec<u8> {
        let tls = presenting(server_ca, certs);
        let connector = tokio_rustls::TlsConnector::from(tls.config());
        let stream = tokio::net::TcpStream::connect(&self.http)
            .await
            .expect("connects");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("an IP name");
        let stream = tokio::time::timeout(DEADLINE, connector.connect(name, stream))
            .await
            .expect("a handshake within the deadline")
            .expect("the handshake succeeds");
        let chain = stream
            .get_ref()
            .1
            .peer_certificates()
            .expect("the server presents a certificate");
        chain[0].to_vec()
    }

    /// `raftkv_config_reloads_total{what, result}`, read by a client trusting `server_ca` and
    /// presenting the client certificate of `certs`.
    async fn reloads(&self, what: &str, result: &str, server_ca: &Path, certs: &Path) -> u64 {
        let tls = presenting(server_ca, certs);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls.config()).clone())
            .https_only()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, http_body_util::Full<bytes::Bytes>>(connector);
        let uri = format!("https://{}/metrics", self.http)
            .parse::<hyper::Uri>()
            .expect("a URI");
        let response = tokio::time::timeout(DEADLINE, client.get(uri))
            .await
            .expect("an answer within the deadline")
            .expect("an answer");
        use http_body_util::BodyExt as _;
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the body")
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        let series = format!("raftkv_config_reloads_total{{what=\"{what}\",result=\"{result}\"}}");
        text.lines()
            .find(|line| line.starts_with(&series))
            .and_then(|line| line.split_whitespace().last())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{series} is exported:\n{text}"))
    }
}

impl Drop for LiveNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            common::print_log_tail("live node", &self.log, 40);
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Client settings trusting `server_ca` and presenting the client certificate of `certs` (a
/// `raftkv certs` directory).
fn presenting(server_ca: &Path, certs: &Path) -> ClientTls {
    ClientTls::from_pem_files(
        server_ca,
        Some((&certs.join("client.pem"), &certs.join("client-key.pem"))),
    )
    .expect("valid client TLS files")
}

/// The DER of the first certificate in the PEM file at `path`.
fn der_of(path: &Path) -> Vec<u8> {
    raft_node::transport::tls::read_certificates(path).expect("a certificate")[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_cas_are_reloaded_on_sighup_or_change_and_bad_ones_leave_the_old() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let dir = dir.path();
    // The cluster's CA with node 1's first certificate and a client's; a second certificate
    // for node 1 from the same CA (`raftkv certs` reuses the CA it finds); and another CA
    // with a certificate for node 1 and a client of its own.
    let certs = dir.join("certs");
    make_certs(&certs, "1");
    let renewed = dir.join("renewed");
    std::fs::create_dir_all(&renewed).expect("creates a directory");
    for file in ["ca.pem", "ca-key.pem"] {
        std::fs::copy(certs.join(file), renewed.join(file)).expect("copies the CA");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args([
            "certs",
            "--nodes",
            "1",
            "--ip",
            "127.0.0.1",
            "--no-client",
            "--out",
        ])
        .arg(&renewed)
        .output()
        .expect("raftkv certs runs");
    assert!(output.status.success(), "{output:?}");
    let other = dir.join("other");
    make_certs(&other, "1");
    let both_cas = dir.join("both-cas.pem");
    let mut bundle = std::fs::read(certs.join("ca.pem")).expect("reads");
    bundle.extend(std::fs::read(other.join("ca.pem")).expect("reads"));
    std::fs::write(&both_cas, bundle).expect("writes");
    let (first, second) = (
        der_of(&certs.join("node-1.pem")),
        der_of(&renewed.join("node-1.pem")),
    );
    assert_ne!(first, second);
    let ca = certs.join("ca.pem");

    let on_signal = LiveNode::spawn(dir, "on-signal", &certs, "0");
    let on_change = LiveNode::spawn(dir, "on-change", &certs, "100");
    for node in [&on_signal, &on_change] {
        wait_for("the node to answer", || async {
            node.answers(&ca, &certs).await.then_some(())
        })
        .await;
        assert_eq!(node.served_certificate(&ca, &certs).await, first);
    }

    // A renewed certificate (same CA), taken up on SIGHUP by a node that does not poll.
    for (name, source) in [
        ("node.pem", "node-1.pem"),
        ("node-key.pem", "node-1-key.pem"),
    ] {
        on_signal.put_file(name, &[&renewed.join(source)]);
    }
    assert_eq!(on_signal.served_certificate(&ca, &certs).await, first);
    on_signal.hangup();
    wait_for("SIGHUP to put the renewed certificate in force", || async {
        (on_signal.served_certificate(&ca, &certs).await == second).then_some(())
    })
    .await;
    assert_eq!(
        on_signal.log_lines(&["INFO", "configuration reloaded", "what=\"tls\"", "SIGHUP"]),
        1
    );

    // The same without a signal, on a node that polls its files.
    for (name, source) in [
        ("node.pem", "node-1.pem"),
        ("node-key.pem", "node-1-key.pem"),
    ] {
        on_change.put_file(name, &[&renewed.join(source)]);
    }
    wait_for(
        "the change to put the renewed certificate in force",
        || async { (on_change.served_certificate(&ca, &certs).await == second).then_some(()) },
    )
    .await;
    assert_eq!(
        on_change.log_lines(&[
            "INFO",
            "configuration reloaded",
            "what=\"tls\"",
            "file change"
        ]),
        1
    );

    // A key that does not fit the certificate: refused, the renewed certificate stays.
    on_change.put_file("node-key.pem", &[&other.join("node-1-key.pem")]);
    wait_for("the mismatched key to be refused", || async {
        (on_change.log_lines(&["ERROR", "reload refused", "what=\"tls\"", "do not fit"]) == 1)
            .then_some(())
    })
    .await;
    assert_eq!(on_change.served_certificate(&ca, &certs).await, second);
    assert!(on_change.answers(&ca, &certs).await);
    on_change.put_file("node-key.pem", &[&renewed.join("node-1-key.pem")]);

    // Clients of the other CA are refused until the node trusts it.
    assert!(!on_change.answers(&ca, &other).await);
    // The other CA alone is refused: the node's own peer certificate is not from it.
    on_change.put_file("ca.pem", &[&other.join("ca.pem")]);
    wait_for(
        "a CA that does not vouch for the node to be refused",
        || async {
            let refused = on_change.log_lines(&[
                "ERROR",
                "reload refused",
                "what=\"ca\"",
                "does not verify against the CA",
            ]);
            (refused == 1).then_some(())
        },
    )
    .await;
    assert!(on_change.answers(&ca, &certs).await, "the old CA stays");
    assert!(!on_change.answers(&ca, &other).await);
    // Both CAs: the other CA's clients are let in, the first CA's still are.
    on_change.put_file("ca.pem", &[&certs.join("ca.pem"), &other.join("ca.pem")]);
    wait_for("the other CA's client to be accepted", || async {
        on_change.answers(&ca, &other).await.then_some(())
    })
    .await;
    assert!(on_change.answers(&ca, &certs).await);
    // The node moves to a certificate of the other CA, then trusts that CA alone: the first
    // CA's clients are refused from then on.
    for (name, source) in [
        ("node.pem", "node-1.pem"),
        ("node-key.pem", "node-1-key.pem"),
    ] {
        on_change.put_file(name, &[&other.join(source)]);
    }
    let third = der_of(&other.join("node-1.pem"));
    wait_for("the other CA's certificate to be served", || async {
        (on_change.served_certificate(&both_cas, &other).await == third).then_some(())
    })
    .await;
    on_change.put_file("ca.pem", &[&other.join("ca.pem")]);
    wait_for("the first CA's client to be refused", || async {
        (!on_change.answers(&both_cas, &certs).await).then_some(())
    })
    .await;
    assert!(on_change.answers(&both_cas, &other).await);

    let count = |what: &'static str, result: &'static str| {
        let (node, both_cas, other) = (&on_change, &both_cas, &other);
        async move { node.reloads(what, result, both_cas, other).await }
    };
    assert_eq!(
        [
            count("tls", "ok").await,
            count("tls", "failed").await,
            count("ca", "ok").await,
            count("ca", "failed").await,
        ],
        [2, 1, 2, 1]
    );
}
