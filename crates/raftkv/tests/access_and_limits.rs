//! Real `raftkv serve` processes behind bearer tokens (`--auth-tokens`) and the HTTP server's
//! limits: who may read, write and change the membership, forwarding and joining with auth on,
//! and what an abusive client gets (oversized heads and bodies, a slowloris, a flood).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv_client::{ClientError, Consistency};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::{error_of, wait_for, TestCluster, DEADLINE};

const READER: &str = "reader-token-for-tests-0001";
const WRITER: &str = "writer-token-for-tests-0002";
const ADMIN: &str = "admin-token-for-tests-0003";
const CHALLENGE: &str = "Bearer realm=\"raftkv\"";

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Writes a token file (the reader and the admin by digest, the writer as is) and a cluster
/// token file holding the admin token; returns their paths.
fn write_token_files(dir: &Path) -> (PathBuf, PathBuf) {
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"dashboards\"\nrole = \"read-only\"\ntoken_sha256 = \"{}\"\n\n\
             [[token]]\nname = \"app\"\nrole = \"read-write\"\ntoken = \"{WRITER}\"\n\n\
             [[token]]\nname = \"operators\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
            sha256_hex(READER),
            sha256_hex(ADMIN)
        ),
    )
    .expect("writes the token file");
    let cluster_token = dir.join("cluster-token");
    std::fs::write(&cluster_token, format!("{ADMIN}\n")).expect("writes the cluster token");
    (tokens, cluster_token)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The value of the Prometheus sample whose line starts with `series` on node `index`, read
/// with `token`.
async fn metric(cluster: &TestCluster, index: usize, token: Option<&str>, series: &str) -> f64 {
    let authorization = token.map(bearer);
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    let (status, _, body) = cluster
        .request(index, "GET", "/metrics", &headers, Bytes::new())
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{series} is exported:\n{text}"))
}

/// One node behind the token files of [`write_token_files`] (written into `files`), run with
/// `extra` flags besides, whose clients send `token`; returns the token file's path too.
async fn one_node_with_tokens(files: &Path, extra: &[&str], token: &str) -> (PathBuf, TestCluster) {
    let (tokens, cluster_token) = write_token_files(files);
    let tokens_arg = tokens.to_string_lossy().into_owned();
    let cluster_token = cluster_token.to_string_lossy().into_owned();
    let mut args = vec![
        "--auth-tokens",
        tokens_arg.as_str(),
        "--cluster-token-file",
        cluster_token.as_str(),
    ];
    args.extend_from_slice(extra);
    let cluster = TestCluster::start_with_token(1, &args, Some(token)).await;
    (tokens, cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_who_reads_writes_and_administers_and_refusals_are_counted() {
    let files = tempfile::tempdir().expect("temporary directory");
    let (tokens, cluster_token) = write_token_files(files.path());
    let tokens = tokens.to_string_lossy().into_owned();
    let cluster_token = cluster_token.to_string_lossy().into_owned();
    let mut cluster = TestCluster::start_with_token(
        3,
        &[
            "--auth-tokens",
            &tokens,
            "--cluster-token-file",
            &cluster_token,
        ],
        Some(ADMIN),
    )
    .await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    let reader = bearer(READER);
    let writer = bearer(WRITER);
    let as_reader = [("authorization", reader.as_str())];
    let as_writer = [("authorization", writer.as_str())];

    // The dashboard: its page is public, its feed needs the read role, and the node gathers
    // the other members' status with its own token (every member shown reachable).
    let (status, headers, _) = cluster
        .request(follower, "GET", "/ui", &[], Bytes::new())
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    let (status, _, _) = cluster
        .request(follower, "GET", "/v1/ui/events", &[], Bytes::new())
        .await;
    assert_eq!(status, 401, "the feed needs a token");
    let members =
        dashboard_members_once_all_reachable(&cluster.nodes[follower].http, &reader).await;
    assert_eq!(members, [1, 2, 3]);

    // No token, a malformed one or an unknown one: the same 401 with a challenge, whatever
    // the route (status and metrics are not public by default).
    let mut refusal_bodies = Vec::new();
    for (method, path) in [
        ("GET", "/v1/kv/greeting"),
        ("PUT", "/v1/kv/greeting"),
        ("GET", "/v1/status"),
        ("GET", "/metrics"),
        ("POST", "/v1/leader/transfer"),
        ("GET", "/no-such-route"),
    ] {
        for authorization in [
            None,
            Some("Bearer"),
            Some("Bearer not-a-token-of-this-cluster"),
        ] {
            let headers: Vec<(&str, &str)> = authorization
                .map(|value| ("authorization", value))
                .into_iter()
                .collect();
            let (status, headers, body) = cluster
                .request(follower, method, path, &headers, Bytes::from("x"))
                .await;
            assert_eq!(status, 401, "{method} {path} with {authorization:?}");
            assert_eq!(
                headers
                    .get("www-authenticate")
                    .and_then(|value| value.to_str().ok()),
                Some(CHALLENGE)
            );
            error_of(&body);
            refusal_bodies.push(body);
        }
    }
    assert!(
        refusal_bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "every 401 says the same, so it tells a guesser nothing"
    );

    // A read-only token reads and is refused writes and membership changes with 403.
    let (status, _, _) = cluster
        .request(follower, "GET", "/v1/kv/greeting", &as_reader, Bytes::new())
        .await;
    assert_eq!(status, 404);
    for (method, path, body) in [
        ("PUT", "/v1/kv/greeting", "hello"),
        ("DELETE", "/v1/kv/greeting", ""),
        ("POST", "/v1/kv/greeting/append", "!"),
        (
            "POST",
            "/v1/members",
            r#"{"id": 9, "raft_address": "127.0.0.1:1"}"#,
        ),
    ] {
        let (status, headers, answer) = cluster
            .request(follower, method, path, &as_reader, Bytes::from(body))
            .await;
        assert_eq!(status, 403, "{method} {path}");
        assert!(!headers.contains_key("www-authenticate"));
        error_of(&answer);
    }

    // A read-write token writes through a follower (forwarded to the leader with the
    // client's credentials, which the leader checks again) and reads.
    let (status, _, body) = cluster
        .request(follower, "PUT", "/v1/kv/greeting", &as_writer, "hello")
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    for consistency in ["linearizable", "lease", "stale"] {
        let path = format!("/v1/kv/greeting?consistency={consistency}");
        let (status, _, body) = cluster
            .request(follower, "GET", &path, &as_reader, Bytes::new())
            .await;
        // A stale read on a follower may not have applied the write yet.
        if consistency != "stale" {
            assert_eq!((status, body), (200, Bytes::from("hello")), "{consistency}");
        }
    }
    // Leader transfer and membership are the admin's.
    let (status, _, _) = cluster
        .request(
            follower,
            "POST",
            "/v1/leader/transfer",
            &as_writer,
            r#"{"to": 1}"#,
        )
        .await;
    assert_eq!(status, 403);

    let unauthenticated = metric(
        &cluster,
        follower,
        Some(READER),
        "raftkv_auth_refusals_total{reason=\"unauthenticated\"}",
    )
    .await;
    let forbidden = metric(
        &cluster,
        follower,
        Some(READER),
        "raftkv_auth_refusals_total{reason=\"forbidden\"}",
    )
    .await;
    assert!(unauthenticated >= 18.0, "{unauthenticated}");
    assert!(forbidden >= 5.0, "{forbidden}");

    // The Rust client sends its token; without one, or with too weak a one, it gets the
    // server's refusal as a final error.
    let admin = cluster.client();
    admin.put("from-client", "1").await.expect("admin writes");
    let read_only = admin.with_bearer_token(READER).expect("valid token");
    assert_eq!(
        read_only
            .get("from-client", Consistency::Linearizable)
            .await
            .expect("reads"),
        Some(Bytes::from("1"))
    );
    let refused = read_only.put("from-client", "2").await;
    assert!(
        matches!(refused, Err(ClientError::Server { status: 403, .. })),
        "{refused:?}"
    );
    let anonymous = raftkv_client::Client::new(cluster.endpoints()).expect("valid endpoints");
    let refused = anonymous.get("from-client", Consistency::Stale).await;
    assert!(
        matches!(refused, Err(ClientError::Server { status: 401, .. })),
        "{refused:?}"
    );

    // The command line takes --token or RAFTKV_TOKEN.
    let endpoints = cluster.endpoints().join(",");
    let command_line = tokio::task::spawn_blocking(move || {
        let run = |token_flag: Option<&str>, token_env: Option<&str>, args: &[&str]| {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_raftkv"));
            command
                .arg("--endpoints")
                .arg(&endpoints)
                .env_remove("RAFTKV_TOKEN");
            if let Some(token) = token_flag {
                command.args(["--token", token]);
            }
            if let Some(token) = token_env {
                command.env("RAFTKV_TOKEN", token);
            }
            let output = command.args(args).output().expect("raftkv runs");
            (
                output.status.code().expect("exited"),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        };
        assert_eq!(run(Some(WRITER), None, &["put", "cli", "v"]).0, 0);
        assert_eq!(
            run(None, Some(READER), &["get", "cli"]),
            (0, "v\n".to_string(), String::new())
        );
        let (code, _, stderr) = run(None, None, &["get", "cli"]);
        assert_eq!(code, 4, "{stderr}");
        assert!(stderr.contains("401"), "{stderr}");
        let (code, _, stderr) = run(None, Some(READER), &["put", "cli", "w"]);
        assert_eq!(code, 4, "{stderr}");
        assert!(stderr.contains("403"), "{stderr}");
        let (code, stdout, _) = run(Some(READER), None, &["status"]);
        assert_eq!(code, 0);
        assert!(stdout.contains("leader"), "{stdout}");
    });
    command_line.await.expect("the command-line checks pass");

    // A node joins with auth on: it learns the members, is added and promoted, and announces
    // its HTTP address, all with its cluster token.
    let fourth = cluster.join(follower);
    wait_for(
        "node 4 joins as a voter and publishes its HTTP address",
        || {
            let client = cluster.client_of(leader);
            async move {
                let members = client.members().await.ok()?;
                members
                    .members
                    .iter()
                    .any(|member| {
                        member.id == 4 && member.role == "voter" && member.http_address.is_some()
                    })
                    .then_some(())
            }
        },
    )
    .await;
    let (status, _, _) = cluster
        .request(fourth, "PUT", "/v1/kv/via-node-4", &as_writer, "ok")
        .await;
    assert_eq!(status, 200);
    let (status, _, body) = cluster
        .request(leader, "GET", "/v1/kv/via-node-4", &as_reader, Bytes::new())
        .await;
    assert_eq!((status, body), (200, Bytes::from("ok")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_status_and_metrics_need_no_token_when_asked_for() {
    let files = tempfile::tempdir().expect("temporary directory");
    let (_, cluster) = one_node_with_tokens(
        files.path(),
        &["--public-status", "--public-metrics"],
        READER,
    )
    .await;
    for path in ["/v1/status", "/metrics"] {
        let (status, _, _) = cluster.request(0, "GET", path, &[], Bytes::new()).await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, _, _) = cluster
        .request(0, "GET", "/v1/kv/anything", &[], Bytes::new())
        .await;
    assert_eq!(status, 401, "only those two are public");
}

/// A token that is in no file until the test rotates it in.
const ROTATED: &str = "rotated-writer-token-0004";

/// Writes `text` to `path` in place (not renamed into place), as an editor may.
fn rewrite(path: &Path, text: &str) {
    std::fs::write(path, text).expect("rewrites the file");
}

/// The status of `method path` on node 0 with `token`.
async fn status_with(cluster: &TestCluster, method: &str, path: &str, token: &str) -> u16 {
    let authorization = bearer(token);
    let (status, _, _) = cluster
        .request(
            0,
            method,
            path,
            &[("authorization", authorization.as_str())],
            Bytes::from("v"),
        )
        .await;
    status
}

/// Lines of node 0's log containing every one of `parts`.
fn log_lines(cluster: &TestCluster, parts: &[&str]) -> usize {
    std::fs::read_to_string(&cluster.nodes[0].log)
        .unwrap_or_default()
        .lines()
        .filter(|line| parts.iter().all(|part| line.contains(part)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_token_file_is_reloaded_and_a_bad_one_leaves_the_tokens_in_force() {
    let files = tempfile::tempdir().expect("temporary directory");
    // Polled often so the test waits little; the default is a second.
    let (tokens, cluster) =
        one_node_with_tokens(files.path(), &["--config-watch-interval-ms", "100"], ADMIN).await;
    let reloads = |result: &'static str| {
        let cluster = &cluster;
        async move {
            metric(
                cluster,
                0,
                Some(ADMIN),
                &format!("raftkv_config_reloads_total{{what=\"tokens\",result=\"{result}\"}}"),
            )
            .await
        }
    };
    assert_eq!((reloads("ok").await, reloads("failed").await), (0.0, 0.0));
    assert_eq!(status_with(&cluster, "PUT", "/v1/kv/k", ROTATED).await, 401);
    assert_eq!(status_with(&cluster, "PUT", "/v1/kv/k", WRITER).await, 200);

    // The writer's token rotated: the new one in, the old one out, in a file rewritten in
    // place while the node runs.
    let rotated = format!(
        "[[token]]\nname = \"dashboards\"\nrole = \"read-only\"\ntoken_sha256 = \"{}\"\n\n\
         [[token]]\nname = \"app\"\nrole = \"read-write\"\ntoken = \"{ROTATED}\"\n\n\
         [[token]]\nname = \"operators\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
        sha256_hex(READER),
        sha256_hex(ADMIN)
    );
    rewrite(&tokens, &rotated);
    wait_for("the new token to be accepted", || async {
        (status_with(&cluster, "PUT", "/v1/kv/k", ROTATED).await == 200).then_some(())
    })
    .await;
    assert_eq!(status_with(&cluster, "PUT", "/v1/kv/k", WRITER).await, 401);
    assert_eq!(status_with(&cluster, "GET", "/v1/kv/k", READER).await, 200);
    assert_eq!(reloads("ok").await, 1.0);
    assert_eq!(
        log_lines(
            &cluster,
            &[
                "INFO",
                "configuration reloaded",
                "what=\"tokens\"",
                "file change"
            ]
        ),
        1
    );

    // Unusable files leave the tokens in force: one that does not parse, and one that no
    // longer holds the node's own (cluster) token as admin, which its calls to the other
    // nodes send.
    for (number, (bad, reason)) in [
        (
            "[[token]]\nname = \"half-written\"\n".to_string(),
            "missing field",
        ),
        (
            rotated.replace(&sha256_hex(ADMIN), &sha256_hex("some-other-admin-token-05")),
            "not an admin token",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        rewrite(&tokens, &bad);
        wait_for("the bad file to be refused", || async {
            (reloads("failed").await == (number + 1) as f64).then_some(())
        })
        .await;
        assert_eq!(
            log_lines(
                &cluster,
                &["ERROR", "reload refused", "what=\"tokens\"", reason]
            ),
            1,
            "{reason}"
        );
        assert_eq!(status_with(&cluster, "PUT", "/v1/kv/k", ROTATED).await, 200);
        assert_eq!(status_with(&cluster, "PUT", "/v1/kv/k", WRITER).await, 401);
        assert_eq!(
            status_with(&cluster, "POST", "/v1/compact", ADMIN).await,
            400
        );
    }
    // A bad file is refused once, not once a poll: the ERROR lines above stayed one each.
    // SIGHUP tries again at once, whatever changed.
    let pid = cluster.nodes[0].process.as_ref().expect("running").id();
    let pid = i32::try_from(pid).expect("pid fits");
    // SAFETY: kill(2) on our own child's pid with a valid signal.
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }
    wait_for("SIGHUP to retry the bad file", || async {
        (reloads("failed").await == 3.0).then_some(())
    })
    .await;
    assert_eq!(
        log_lines(&cluster, &["ERROR", "what=\"tokens\"", "SIGHUP"]),
        1
    );
    assert_eq!(reloads("ok").await, 1.0);
    assert_eq!(status_with(&cluster, "PUT", "/v1/kv/k", ROTATED).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_filter_changes_at_run_time_for_admins_and_a_bad_one_is_refused() {
    let files = tempfile::tempdir().expect("temporary directory");
    let (_, cluster) = one_node_with_tokens(files.path(), &[], ADMIN).await;
    let admin = bearer(ADMIN);
    let as_admin = [("authorization", admin.as_str())];
    let writer = bearer(WRITER);
    let as_writer = [("authorization", writer.as_str())];
    let filter_of = |body: &Bytes| -> String {
        let answer: raftkv_client::api::LogLevelResponse =
            serde_json::from_slice(body).expect("a LogLevelResponse");
        answer.filter
    };

    // Admins only, reading as well as writing: a filter at `trace` can fill a disk.
    let (status, _, _) = cluster
        .request(0, "GET", "/v1/log-level", &as_writer, Bytes::new())
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = cluster
        .request(0, "PUT", "/v1/log-level", &as_writer, "debug")
        .await;
    assert_eq!(status, 403);
    let (status, _, body) = cluster
        .request(0, "GET", "/v1/log-level", &as_admin, Bytes::new())
        .await;
    assert_eq!((status, filter_of(&body).as_str()), (200, "info"));

    // A connection to the Raft port that closes at once is logged by the transport at debug
    // level: not under `info`.
    let raft = cluster.nodes[0].raft.clone();
    let knock = || async {
        let stream = TcpStream::connect(&raft)
            .await
            .expect("the Raft port accepts");
        drop(stream);
    };
    knock().await;

    // A filter that does not parse is refused with the reason, and the old one stays.
    let (status, _, body) = cluster
        .request(0, "PUT", "/v1/log-level", &as_admin, "info,raft_node=loud")
        .await;
    assert_eq!(status, 400);
    let error = error_of(&body).error;
    assert!(
        error.contains("raft_node=loud") && error.contains("level"),
        "{error}"
    );
    let (_, _, body) = cluster
        .request(0, "GET", "/v1/log-level", &as_admin, Bytes::new())
        .await;
    assert_eq!(filter_of(&body), "info");

    // Debug for the transport: its lines appear from the next event on.
    let (status, _, body) = cluster
        .request(0, "PUT", "/v1/log-level", &as_admin, "info,raft_node=debug")
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(filter_of(&body), "raft_node=debug,info");
    let log = &cluster.nodes[0].log;
    let changed_at = |text: &str| {
        text.lines()
            .position(|line| line.contains("log filter changed at run time"))
    };
    knock().await;
    let text = wait_for("a debug line of the transport", || async {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let changed = changed_at(&text)?;
        text.lines()
            .skip(changed)
            .any(|line| line.contains("DEBUG") && line.contains("raft_node::transport"))
            .then_some(text)
    })
    .await;
    let changed = changed_at(&text).expect("the change is logged");
    assert!(
        !text
            .lines()
            .take(changed)
            .any(|line| line.contains("DEBUG")),
        "no debug line before the change:\n{text}"
    );

    // The command line: print, set, and a bad filter's exit status.
    let endpoints = cluster.endpoints();
    let run = |args: &[&str]| {
        let mut all = vec!["--token", ADMIN];
        all.extend_from_slice(args);
        common::raftkv(&endpoints, &all)
    };
    let printed = run(&["log-level"]);
    assert!(printed.status.success(), "{}", common::describe(&printed));
    assert_eq!(common::stdout(&printed), "raft_node=debug,info\n");
    let set = run(&["log-level", "warn", "--all"]);
    assert!(set.status.success(), "{}", common::describe(&set));
    assert_eq!(common::stdout(&set), format!("{}\twarn\n", endpoints[0]));
    let refused = run(&["log-level", "warn,raft_node=loud"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        common::describe(&refused)
    );
    let forbidden = common::raftkv(&endpoints, &["--token", WRITER, "log-level"]);
    assert_eq!(
        forbidden.status.code(),
        Some(4),
        "{}",
        common::describe(&forbidden)
    );
    let (_, _, body) = cluster
        .request(0, "GET", "/v1/log-level", &as_admin, Bytes::new())
        .await;
    assert_eq!(filter_of(&body), "warn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_an_unusable_token_file_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cases = [
        (
            "[[token]]\nname = \"a\"\nrole = \"superuser\"\ntoken = \"0123456789abcdefgh\"\n",
            "unknown role `superuser`",
        ),
        (
            "[[token]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"\"\n",
            "the token is empty",
        ),
        (
            "[[token]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"0123456789abcdefgh\"\n\
             [[token]]\nname = \"b\"\nrole = \"read-only\"\ntoken = \"0123456789abcdefgh\"\n",
            "the same token",
        ),
        (
            // Digests only and no --cluster-token-file: the node could not announce itself.
            &format!(
                "[[token]]\nname = \"a\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
                sha256_hex(ADMIN)
            ),
            "needs an admin token",
        ),
    ];
    for (number, (text, reason)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("tokens-{number}.toml"));
        std::fs::write(&path, text).expect("writes");
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(["serve", "--id", "1", "--http-addr", "127.0.0.1:0"])
            .args(["--peers", "1=127.0.0.1:1", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--auth-tokens")
            .arg(&path)
            .output()
            .await
            .expect("raftkv runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(reason), "{reason}: {stderr}");
        assert!(!stderr.contains("0123456789abcdefgh"), "{stderr}");
    }
}

/// An answer read off a raw connection, or the connection's end without one.
#[derive(Debug)]
enum RawAnswer {
    Answered {
        status: u16,
        head: String,
        body: Vec<u8>,
    },
    Closed,
}

/// Reads one HTTP/1.1 answer (its head and a `Content-Length` body) from `stream`.
async fn read_answer(stream: &mut TcpStream) -> RawAnswer {
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|code| code.parse().ok())
                .expect("a status line");
            let length: usize = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse().ok())
                .unwrap_or(0);
            while received.len() < end + 4 + length {
                match tokio::time::timeout(DEADLINE, stream.read(&mut chunk)).await {
                    Ok(Ok(read)) if read > 0 => received.extend_from_slice(&chunk[..read]),
                    _ => break,
                }
            }
            let body = received[end + 4..].to_vec();
            return RawAnswer::Answered { status, head, body };
        }
        match tokio::time::timeout(DEADLINE, stream.read(&mut chunk)).await {
            Ok(Ok(read)) if read > 0 => received.extend_from_slice(&chunk[..read]),
            Ok(_) => return RawAnswer::Closed,
            Err(_) => panic!("no answer and no close within {DEADLINE:?}"),
        }
    }
}

/// Sends `request` on a new connection to `address` and reads the answer.
async fn raw_exchange(address: &str, request: &[u8]) -> RawAnswer {
    let mut stream = TcpStream::connect(address).await.expect("connects");
    // A refused connection may be closed before the request is written: that is an answer.
    if stream.write_all(request).await.is_err() {
        return RawAnswer::Closed;
    }
    read_answer(&mut stream).await
}

/// The dashboard feed's members, read as `authorization` from node `address`'s
/// `/v1/ui/events`, once a frame shows every member reachable; fails after [`DEADLINE`].
async fn dashboard_members_once_all_reachable(address: &str, authorization: &str) -> Vec<u64> {
    let mut stream = TcpStream::connect(address).await.expect("connects");
    let request = format!(
        "GET /v1/ui/events HTTP/1.1\r\nhost: {address}\r\nauthorization: {authorization}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("sends");
    let deadline = Instant::now() + DEADLINE;
    let mut received = String::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Each frame is one line `data: {...}` (the body is chunked: sizes are lines apart).
        let frames: Vec<serde_json::Value> = received
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str(data).ok())
            .collect();
        if let Some(frame) = frames.iter().rev().find(|frame| {
            frame["members"]
                .as_array()
                .is_some_and(|members| members.iter().all(|member| member["reachable"] == true))
        }) {
            assert!(received.starts_with("HTTP/1.1 200"), "{received}");
            return frame["members"]
                .as_array()
                .expect("members")
                .iter()
                .filter_map(|member| member["id"].as_u64())
                .collect();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Ok(Ok(read)) if read > 0 => received.push_str(&String::from_utf8_lossy(&chunk[..read])),
            _ => panic!("no frame with every member reachable within {DEADLINE:?}: {received}"),
        }
    }
}

fn status_of(answer: &RawAnswer) -> Option<u16> {
    match answer {
        RawAnswer::Answered { status, .. } => Some(*status),
        RawAnswer::Closed => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_bodies_are_refused_and_a_slowloris_is_cut_off() {
    let cluster = TestCluster::start(
        1,
        &[
            "--http-request-read-timeout-ms",
            "1500",
            "--http-header-bytes-max",
            "16384",
            "--http-headers-max",
            "32",
        ],
    )
    .await;
    let address = cluster.nodes[0].http.clone();

    // A body declared larger than any value is refused before a byte of it is read.
    let started = Instant::now();
    let answer = raw_exchange(
        &address,
        b"PUT /v1/kv/big HTTP/1.1\r\nhost: raftkv\r\ncontent-length: 104857600\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), Some(413), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    if let RawAnswer::Answered { body, .. } = &answer {
        error_of(&Bytes::from(body.clone()));
    }

    // Too many headers, or too many bytes of them: 431.
    let mut many = String::from("GET /v1/status HTTP/1.1\r\nhost: raftkv\r\n");
    for number in 0..40 {
        many.push_str(&format!("x-filler-{number}: {number}\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw_exchange(&address, many.as_bytes()).await;
    assert_eq!(status_of(&answer), Some(431), "{answer:?}");
    let large = format!(
        "GET /v1/status HTTP/1.1\r\nhost: raftkv\r\nx-large: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let answer = raw_exchange(&address, large.as_bytes()).await;
    assert_eq!(status_of(&answer), Some(431), "{answer:?}");

    // An idle connection may wait longer than the read timeout before its request.
    let mut idle = TcpStream::connect(&address).await.expect("connects");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    idle.write_all(b"GET /v1/status HTTP/1.1\r\nhost: raftkv\r\n\r\n")
        .await
        .expect("writes");
    assert_eq!(status_of(&read_answer(&mut idle).await), Some(200));

    // A slowloris: a head trickling in a byte at a time is cut off once it has taken longer
    // than the read timeout, while other clients are served as usual.
    let mut slow = TcpStream::connect(&address).await.expect("connects");
    let head = b"GET /v1/status HTTP/1.1\r\nhost: raftkv\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let first_byte = Instant::now();
    let mut closed_after = None;
    let mut others_served = false;
    for byte in head.iter() {
        if slow.write_all(&[*byte]).await.is_err() {
            closed_after = Some(first_byte.elapsed());
            break;
        }
        let mut probe = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(200), slow.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(first_byte.elapsed());
                break;
            }
            Ok(Ok(_)) => panic!("the slow head was answered"),
            Err(_) => {} // Still open.
        }
        if first_byte.elapsed() > Duration::from_millis(700) && !others_served {
            // Meanwhile others are served promptly.
            others_served = true;
            let asked = Instant::now();
            let (status, _, _) = cluster
                .request(0, "GET", "/v1/status", &[], Bytes::new())
                .await;
            assert_eq!(status, 200);
            assert!(asked.elapsed() < Duration::from_secs(2));
        }
    }
    let closed_after = closed_after.expect("the slow connection was closed");
    assert!(others_served);
    assert!(
        closed_after >= Duration::from_millis(1400) && closed_after < Duration::from_secs(6),
        "closed after {closed_after:?}"
    );
    let timed_out = metric(&cluster, 0, None, "raftkv_http_connections_timed_out_total").await;
    assert!(timed_out >= 1.0, "{timed_out}");
}

/// Resident memory of process `pid` in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_limits_is_refused_and_the_node_stays_healthy() {
    const IN_FLIGHT_MAX: usize = 4;
    const CONNECTIONS_MAX: usize = 24;
    let cluster = TestCluster::start(
        1,
        &[
            "--http-requests-in-flight-max",
            "4",
            "--http-connections-max",
            "24",
            "--http-request-read-timeout-ms",
            "5000",
        ],
    )
    .await;
    let address = cluster.nodes[0].http.clone();
    let pid = cluster.nodes[0]
        .process
        .as_ref()
        .map(std::process::Child::id)
        .expect("running");
    let resident_before = resident_kib(pid);

    // Fill every request slot: writes whose bodies do not come (yet).
    let mut held = Vec::new();
    for number in 0..IN_FLIGHT_MAX {
        let mut stream = TcpStream::connect(&address).await.expect("connects");
        let head = format!(
            "PUT /v1/kv/held-{number} HTTP/1.1\r\nhost: raftkv\r\ncontent-length: 4\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("writes");
        held.push(stream);
    }
    // Every slot is taken once the node counts the four as in flight (monitoring has slots
    // of its own, taken first, so asking takes none of theirs).
    wait_for("every request slot is taken", || {
        let cluster = &cluster;
        async move {
            let in_flight = metric(cluster, 0, None, "raftkv_http_requests_in_flight").await;
            // The metrics request is one of them while it is answered.
            (in_flight > IN_FLIGHT_MAX as f64).then_some(())
        }
    })
    .await;
    let probe = raw_exchange(
        &address,
        b"GET /v1/kv/probe HTTP/1.1\r\nhost: raftkv\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&probe), Some(503), "{probe:?}");
    // Monitoring still sees the node: status and metrics have slots of their own.
    for path in ["/v1/status", "/metrics"] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: raftkv\r\nconnection: close\r\n\r\n");
        let answer = raw_exchange(&address, request.as_bytes()).await;
        assert_eq!(status_of(&answer), Some(200), "{path}: {answer:?}");
    }

    // A flood: every request is answered at once, 503 with Retry-After, not queued.
    let flooders: Vec<_> = (0..8)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(&address).await.expect("connects");
                let mut statuses = Vec::new();
                for _ in 0..25 {
                    stream
                        .write_all(b"GET /v1/kv/anything HTTP/1.1\r\nhost: raftkv\r\n\r\n")
                        .await
                        .expect("writes");
                    match read_answer(&mut stream).await {
                        RawAnswer::Answered { status, head, .. } => {
                            assert!(head.to_ascii_lowercase().contains("retry-after: 1"));
                            statuses.push(status);
                        }
                        RawAnswer::Closed => panic!("a shed request closes nothing"),
                    }
                }
                statuses
            })
        })
        .collect();
    for flooder in flooders {
        let statuses = flooder.await.expect("the flooder finishes");
        assert!(statuses.iter().all(|status| *status == 503), "{statuses:?}");
    }

    // The held writes complete once their bodies come, but one whose body never comes is
    // answered 408 after the read timeout.
    let mut late = held.pop().expect("held");
    for stream in &mut held {
        stream.write_all(b"done").await.expect("writes");
        assert_eq!(status_of(&read_answer(stream).await), Some(200));
    }
    assert_eq!(status_of(&read_answer(&mut late).await), Some(408));
    drop(held);
    drop(late);

    // Connections beyond the limit are closed as they are accepted.
    let mut connections = Vec::new();
    for _ in 0..CONNECTIONS_MAX + 8 {
        connections.push(TcpStream::connect(&address).await.expect("connects"));
    }
    let mut closed = 0;
    for stream in &mut connections {
        let request = b"GET /v1/status HTTP/1.1\r\nhost: raftkv\r\n\r\n";
        let answer = match stream.write_all(request).await {
            Ok(()) => read_answer(stream).await,
            Err(_) => RawAnswer::Closed,
        };
        match status_of(&answer) {
            Some(status) => assert_eq!(status, 200),
            None => closed += 1,
        }
    }
    assert!(closed >= 8, "{closed} connections refused");
    drop(connections);

    // Healthy afterwards: prompt answers, writes commit, memory did not balloon, and the
    // refusals are counted.
    wait_for("the node answers promptly again", || {
        let cluster = &cluster;
        async move {
            let asked = Instant::now();
            // A connection accepted while the flood's last ones are still being closed may
            // itself be closed as one too many: that is the limit working, so ask again.
            let answer = cluster
                .try_request(0, "PUT", "/v1/kv/after-the-flood", &[], "ok")
                .await;
            let prompt = asked.elapsed() < Duration::from_secs(1);
            answer
                .is_ok_and(|(status, _, _)| status == 200 && prompt)
                .then_some(())
        }
    })
    .await;
    let shed = metric(&cluster, 0, None, "raftkv_http_requests_shed_total").await;
    assert!(shed >= 200.0, "{shed}");
    let refused = metric(&cluster, 0, None, "raftkv_http_connections_refused_total").await;
    assert!(refused >= 8.0, "{refused}");
    let resident_after = resident_kib(pid);
    assert!(
        resident_after < resident_before + 256 * 1024,
        "resident memory grew from {resident_before} KiB to {resident_after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_the_byte_budget_are_refused_before_they_are_read() {
    // Room for two bodies of 1,000,000 bytes (and a bit), not three; the least the node
    // accepts is the largest single body (two 1 MiB values and two 4 KiB keys in JSON).
    const BUDGET: usize = 2_500_000;
    const LARGE: usize = 1_000_000;
    let cluster =
        TestCluster::start(1, &["--http-body-bytes-in-flight-max", &BUDGET.to_string()]).await;
    let address = cluster.nodes[0].http.clone();
    let put_head = |key: &str, length: usize| {
        format!("PUT /v1/kv/{key} HTTP/1.1\r\nhost: raftkv\r\ncontent-length: {length}\r\n\r\n")
    };

    // Two large writes whose bodies have not come yet hold 2,000,000 bytes of the budget.
    let mut held = Vec::new();
    for number in 0..2 {
        let mut stream = TcpStream::connect(&address).await.expect("connects");
        let head = put_head(&format!("large-{number}"), LARGE);
        stream.write_all(head.as_bytes()).await.expect("writes");
        held.push(stream);
    }
    wait_for("the node holds both bodies' bytes", || {
        let cluster = &cluster;
        async move {
            let held = metric(cluster, 0, None, "raftkv_http_request_body_bytes_held").await;
            (held >= (2 * LARGE) as f64).then_some(())
        }
    })
    .await;
    // A third is answered 503 with Retry-After at once, its body unread; so is a chunked
    // body, which counts as the largest allowed.
    let third = raw_exchange(&address, put_head("large-2", LARGE).as_bytes()).await;
    let RawAnswer::Answered { head, body, .. } = third else {
        panic!("answered")
    };
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    let error = error_of(&Bytes::from(body));
    assert!(error.error.contains("bytes of request bodies"), "{error:?}");
    let chunked = raw_exchange(
        &address,
        b"PUT /v1/kv/chunked HTTP/1.1\r\nhost: raftkv\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&chunked), Some(503));

    // What is left serves small writes and requests without a body.
    let small = raw_exchange(
        &address,
        b"PUT /v1/kv/small HTTP/1.1\r\nhost: raftkv\r\ncontent-length: 5\r\n\r\nsmall",
    )
    .await;
    assert_eq!(status_of(&small), Some(200));
    let (status, _, _) = cluster.request(0, "GET", "/v1/kv/small", &[], "").await;
    assert_eq!(status, 200);

    // The held writes complete when their bodies come, and give their bytes back: the
    // large write and the chunked one go through now.
    let value = vec![b'v'; LARGE];
    for stream in &mut held {
        stream.write_all(&value).await.expect("writes");
        assert_eq!(status_of(&read_answer(stream).await), Some(200));
    }
    drop(held);
    let mut request = put_head("large-2", LARGE).into_bytes();
    request.extend_from_slice(&value);
    assert_eq!(
        status_of(&raw_exchange(&address, &request).await),
        Some(200)
    );
    let chunked = raw_exchange(
        &address,
        b"PUT /v1/kv/chunked HTTP/1.1\r\nhost: raftkv\r\ntransfer-encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&chunked), Some(200));
    let shed = metric(&cluster, 0, None, "raftkv_http_request_bodies_shed_total").await;
    assert!(shed >= 2.0, "{shed}");
}
