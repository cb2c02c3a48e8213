//! raftkv over TLS, with real `raftkv serve` processes on free loopback ports: HTTPS for the
//! API (client certificates required), mutual TLS between peers, and HTTPS between the nodes
//! (forwarding to the leader, announcing). Certificates are made at test time by
//! `raftkv certs` in a temporary directory; no key is checked in. Every wait has a deadline.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{client_tls, free_port, make_certs, tls_args, TestCluster, DEADLINE};
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
