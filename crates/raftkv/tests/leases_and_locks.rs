//! Leases, locks and elections end to end, against real `raftkv serve` processes: the Rust
//! client's keeper, sessions, locks with fencing tokens and elections, and the CLI's `lease`,
//! `put --lease`, `lock` and `elect` as a user runs them. Every wait has a deadline.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{describe, raftkv, stdout, TestCluster, DEADLINE};
use raftkv_client::api::Consistency;
use raftkv_client::{
    ClientError, ElectionLeader, ElectionObserver, LeaseLost, LeaseStatus, LockError, LockLost,
    Session,
};

/// `raftkv --endpoints ... ARGS` started, its stdout piped.
fn spawn_raftkv(endpoints: &[String], args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("raftkv starts")
}

/// Waits (polling, with the deadline) for `child` to exit.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first line `child` prints.
fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    receiver
        .recv_timeout(DEADLINE)
        .expect("a line within the deadline")
}

/// Polls `check` until it gives a value, within the deadline.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {DEADLINE:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_keeps_a_short_lease_past_its_ttl_and_after_stop_it_expires() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let client = cluster.client();
    let granted = client.lease_grant(2, None).await.expect("grant");
    assert_eq!(granted.ttl_seconds, 2);
    client
        .put_with_lease("svc/a", "up", granted.id)
        .await
        .expect("put with the lease");
    let keeper = client.keep_alive(granted.id).await.expect("keeper");
    let started = tokio::time::Instant::now();
    // Three TTLs of acknowledged keepalives.
    let mut status = keeper.status();
    within("keepalives for three TTLs", async {
        loop {
            match &*status.borrow_and_update() {
                LeaseStatus::Alive {
                    acknowledged_at, ..
                } if *acknowledged_at > started + Duration::from_secs(6) => break,
                LeaseStatus::Alive { .. } => {}
                LeaseStatus::Lost { reason } => panic!("lost: {reason}"),
            }
            status.changed().await.expect("the keeper runs");
        }
    })
    .await;
    let ttl = client
        .lease_time_to_live(granted.id, true)
        .await
        .expect("alive");
    assert_eq!(ttl.keys.as_deref(), Some(&["svc/a".to_string()][..]));
    assert!(client
        .get("svc/a", Consistency::Linearizable)
        .await
        .expect("get")
        .is_some());

    keeper.stop().await;
    assert_eq!(
        *status.borrow_and_update(),
        LeaseStatus::Lost {
            reason: LeaseLost::Stopped
        }
    );
    assert!(
        status.changed().await.is_err(),
        "stop ended the keeper's task"
    );
    // Unrenewed, the lease expires and takes its key.
    eventually("the lease expires", || async {
        match client.lease_time_to_live(granted.id, false).await {
            Err(ClientError::LeaseNotFound { .. }) => Some(()),
            _ => None,
        }
    })
    .await;
    assert_eq!(
        client
            .get("svc/a", Consistency::Linearizable)
            .await
            .expect("get"),
        None
    );
    assert!(matches!(
        client.keep_alive(granted.id).await,
        Err(ClientError::LeaseNotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keeper_follows_a_new_leader_without_losing_the_lease() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let client = cluster.client();
    let granted = client.lease_grant(10, None).await.expect("grant");
    let keeper = client.keep_alive(granted.id).await.expect("keeper");
    cluster.kill(leader);
    let killed_at = tokio::time::Instant::now();
    // A keepalive sent after the old leader died is acknowledged (by the new leader, through
    // the client's retries), and the lease was never lost on the way.
    let mut status = keeper.status();
    within("a keepalive acknowledged by the new leader", async {
        loop {
            match &*status.borrow_and_update() {
                LeaseStatus::Alive {
                    acknowledged_at, ..
                } if *acknowledged_at > killed_at => break,
                LeaseStatus::Alive { .. } => {}
                LeaseStatus::Lost { reason } => panic!("lost across the leader change: {reason}"),
            }
            status.changed().await.expect("the keeper runs");
        }
    })
    .await;
    let ttl = cluster
        .client()
        .lease_time_to_live(granted.id, false)
        .await
        .expect("the new leader knows the lease");
    assert_eq!(ttl.granted_ttl_seconds, 10);
    keeper.revoke().await.expect("revoke");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_contending_for_a_lock_get_increasing_tokens_and_never_hold_it_together() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let held = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut contenders = Vec::new();
    for contender in 0..2 {
        let client = cluster.client();
        let held = Arc::clone(&held);
        let tokens = Arc::clone(&tokens);
        contenders.push(tokio::spawn(async move {
            let session = Session::new(&client, 10).await.expect("session");
            for round in 0..5 {
                let guard = session.lock("jobs").await.expect("lock");
                assert!(
                    !held.swap(true, Ordering::SeqCst),
                    "contender {contender} took the lock while the other held it"
                );
                tokens.lock().expect("tokens").push(guard.fencing_token());
                // Work under the lock that goes to the cluster and back, so the other
                // contender has every chance to (wrongly) get in.
                client
                    .put(&format!("work/{contender}"), format!("{round}"))
                    .await
                    .expect("work");
                held.store(false, Ordering::SeqCst);
                assert!(guard.unlock().await.expect("unlock"), "still ours");
            }
            session.close().await.expect("close");
        }));
    }
    for contender in contenders {
        within("the contenders finish", contender)
            .await
            .expect("no contender panicked");
    }
    let tokens = tokens.lock().expect("tokens").clone();
    assert_eq!(tokens.len(), 10);
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "fencing tokens increase with every acquisition: {tokens:?}"
    );
    let left = cluster.client().scan("jobs/", 10).await.expect("scan");
    assert!(left.items.is_empty(), "released: {:?}", left.items);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_lease_is_revoked_sees_lost_and_the_waiter_gets_the_lock() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let client = cluster.client();
    let holder = Session::new(&client, 30).await.expect("session");
    let guard = holder.lock("door").await.expect("lock");
    let lost = guard.lost();

    let waiter_client = cluster.client();
    let waiter = tokio::spawn(async move {
        let session = Session::new(&waiter_client, 30).await.expect("session");
        let guard = session.lock("door").await.expect("lock");
        (session, guard.fencing_token(), guard.key().to_string())
    });
    // Revoked by someone else (an operator, or the leader's expiry would do the same).
    cluster
        .client()
        .lease_revoke(holder.lease_id())
        .await
        .expect("revoke");
    let reason = within("the holder sees the loss", lost).await;
    assert!(
        matches!(
            reason,
            LockLost::KeyDeleted { .. } | LockLost::Lease(LeaseLost::NotFound)
        ),
        "{reason:?}"
    );
    let (session, token, key) = within("the waiter gets the lock", waiter)
        .await
        .expect("waiter");
    assert!(
        token > guard.fencing_token(),
        "a later holder, a greater token"
    );
    assert_ne!(key, guard.key());
    assert!(!guard.unlock().await.expect("unlock"), "already lost");
    // The holder's session knows its lease is gone; locking with it fails as lost.
    let again = within("locking with a dead session", holder.lock("door")).await;
    assert!(matches!(again, Err(LockError::LeaseLost(_))), "{again:?}");
    session.close().await.expect("close");
}

/// Seed 3101 of the chaos soak: a lock taken again by a session whose key survived (an unlock
/// whose answer was lost) got the same fencing token as the holding before it, so a write that
/// holding left in flight could not be told apart from the new holder's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_again_in_the_same_session_gets_a_new_token_and_ends_the_old_holding() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let client = cluster.client();
    let session = Session::new(&client, 30).await.expect("session");
    let first = session.lock("vault").await.expect("lock");
    let first_lost = first.lost();
    // As if the unlock's answer were lost: the key is still there, and the session locks again.
    let second = within("locking again", session.lock("vault"))
        .await
        .expect("lock");
    assert!(
        second.fencing_token() > first.fencing_token(),
        "a new holding, a greater token: {} after {}",
        second.fencing_token(),
        first.fencing_token()
    );
    assert_eq!(second.key(), first.key(), "one key per lease and lock");
    let reason = within("the first holding ends", first_lost).await;
    assert!(matches!(reason, LockLost::KeyDeleted { .. }), "{reason:?}");
    assert!(
        !first.unlock().await.expect("unlock"),
        "not the first's any more"
    );
    assert!(
        second.unlock().await.expect("unlock"),
        "the second still holds"
    );
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_election_leader_changes_when_the_leader_resigns_and_observers_see_each_change() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let client = cluster.client();
    let mut observer = client.observe_election("db");
    assert_eq!(
        next_leader(&mut observer).await,
        None,
        "nobody campaigns yet"
    );

    let first = Session::new(&cluster.client(), 30).await.expect("session");
    let leading = first.campaign("db", "node-1").await.expect("campaign");
    let seen = next_leader(&mut observer).await.expect("a leader");
    assert_eq!(
        (seen.key.as_str(), &seen.value[..], seen.create_revision),
        (leading.key(), &b"node-1"[..], leading.create_revision())
    );

    let second_client = cluster.client();
    let second = tokio::spawn(async move {
        let session = Session::new(&second_client, 30).await.expect("session");
        let leadership = session.campaign("db", "node-2").await.expect("campaign");
        (session, leadership)
    });
    leading.proclaim("node-1b").await.expect("proclaim");
    let seen = next_leader(&mut observer).await.expect("a leader");
    assert_eq!(
        (seen.key.as_str(), &seen.value[..]),
        (leading.key(), &b"node-1b"[..])
    );

    // The second candidate is queued before the first resigns, so the leadership passes
    // straight to it.
    eventually("the second candidate queues", || async {
        let scan = client.scan("db/", 10).await.ok()?;
        (scan.items.len() == 2).then_some(())
    })
    .await;
    let first_key = leading.key().to_string();
    assert!(leading.resign().await.expect("resign"));
    let (second_session, second_leadership) = within("the second candidate leads", second)
        .await
        .expect("second");
    let seen = next_leader(&mut observer).await.expect("a leader");
    assert_eq!(
        (seen.key.as_str(), &seen.value[..]),
        (second_leadership.key(), &b"node-2"[..])
    );
    assert_ne!(seen.key, first_key);
    assert_eq!(seen.create_revision, second_leadership.create_revision());

    second_session.close().await.expect("close");
    assert_eq!(
        next_leader(&mut observer).await,
        None,
        "nobody leads after the session ends"
    );
    first.close().await.expect("close");
}

async fn next_leader(observer: &mut ElectionObserver) -> Option<ElectionLeader> {
    within("an observed change", observer.next())
        .await
        .expect("the observer runs")
        .expect("no error")
}

/// The lease id in `lease ID granted with TTL(Ns)`.
fn granted_id(line: &str) -> String {
    let id = line
        .strip_prefix("lease ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no lease id in {line:?}"));
    assert!(line.ends_with("granted with TTL(30s)\n"), "{line:?}");
    assert_eq!(id.len(), 16, "16 hexadecimal digits, as etcdctl prints");
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_commands_grant_attach_renew_list_and_revoke() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let endpoints = cluster.endpoints();

    let grant = raftkv(&endpoints, &["lease", "grant", "30"]);
    assert_eq!(grant.status.code(), Some(0), "{}", describe(&grant));
    let id = granted_id(&stdout(&grant));

    let put = raftkv(&endpoints, &["put", "svc/web", "10.0.0.1", "--lease", &id]);
    assert_eq!(put.status.code(), Some(0), "{}", describe(&put));
    let ttl = raftkv(&endpoints, &["lease", "ttl", &id, "--keys"]);
    assert_eq!(ttl.status.code(), Some(0), "{}", describe(&ttl));
    let line = stdout(&ttl);
    assert!(
        line.starts_with(&format!("lease {id} granted with TTL(30s), remaining("))
            && line.ends_with(", attached keys([svc/web])\n"),
        "{line:?}"
    );
    let keepalive = raftkv(&endpoints, &["lease", "keepalive", &id, "--once"]);
    assert_eq!(
        stdout(&keepalive),
        format!("lease {id} keepalived with TTL(30)\n"),
        "{}",
        describe(&keepalive)
    );
    let list = raftkv(&endpoints, &["lease", "list"]);
    assert_eq!(
        stdout(&list),
        format!("found 1 leases\n{id}\n"),
        "{}",
        describe(&list)
    );

    let revoke = raftkv(&endpoints, &["lease", "revoke", &id]);
    assert!(
        stdout(&revoke).starts_with(&format!("lease {id} revoked (1 keys deleted, revision ")),
        "{}",
        describe(&revoke)
    );
    let get = raftkv(&endpoints, &["get", "svc/web"]);
    assert_eq!(get.status.code(), Some(1), "the key went with its lease");
    for gone in [
        vec!["lease", "ttl", &id],
        vec!["lease", "revoke", &id],
        vec!["put", "svc/db", "x", "--lease", &id],
    ] {
        let output = raftkv(&endpoints, &gone);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{gone:?}: {}",
            describe(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("not found"),
            "{}",
            describe(&output)
        );
    }
    let not_hex = raftkv(&endpoints, &["lease", "ttl", "xyz"]);
    assert_eq!(not_hex.status.code(), Some(2), "{}", describe(&not_hex));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_runs_its_command_with_the_key_and_fencing_token_and_releases_on_exit() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let endpoints = cluster.endpoints();

    let run = raftkv(
        &endpoints,
        &[
            "lock",
            "jobs",
            "--",
            "sh",
            "-c",
            "echo $RAFTKV_LOCK_KEY $RAFTKV_FENCING_TOKEN",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    let printed = stdout(&run);
    let (key, token) = printed
        .trim_end()
        .split_once(' ')
        .unwrap_or_else(|| panic!("{printed:?}"));
    assert!(key.starts_with("jobs/"), "{key}");
    let token: u64 = token.parse().expect("a fencing token");
    assert!(token > 1);

    let again = raftkv(
        &endpoints,
        &[
            "lock",
            "jobs",
            "--",
            "sh",
            "-c",
            "echo $RAFTKV_FENCING_TOKEN; exit 3",
        ],
    );
    assert_eq!(
        again.status.code(),
        Some(3),
        "the command's status: {}",
        describe(&again)
    );
    let second: u64 = stdout(&again).trim().parse().expect("a token");
    assert!(
        second > token,
        "the lock was released, and taken again later"
    );
    let client = cluster.client();
    assert!(client
        .scan("jobs/", 10)
        .await
        .expect("scan")
        .items
        .is_empty());
    assert!(
        client.lease_list().await.expect("list").ids.is_empty(),
        "sessions revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_kills_its_command_and_exits_5_when_the_lease_is_lost() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let endpoints = cluster.endpoints();
    let client = cluster.client();

    let mut holder = spawn_raftkv(&endpoints, &["lock", "door", "--", "sleep", "60"]);
    let key = eventually("the lock is taken", || async {
        let scan = client.scan("door/", 10).await.ok()?;
        scan.items.first().map(|kv| kv.key.clone())
    })
    .await;
    let lease = u64::from_str_radix(key.trim_start_matches("door/"), 16).expect("hex lease");
    client.lease_revoke(lease).await.expect("revoke");
    let status = wait_exit(&mut holder);
    assert_eq!(status.code(), Some(5), "exit 5 on the loss");

    // Without a command it prints the key and token, and releases on SIGTERM.
    let mut holder = spawn_raftkv(&endpoints, &["lock", "door"]);
    let line = first_line(&mut holder);
    assert!(
        line.starts_with("locked key=door/") && line.contains(" fencing_token="),
        "{line:?}"
    );
    // SAFETY: kill(2) on a child process of this test.
    unsafe { libc::kill(holder.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(wait_exit(&mut holder).code(), Some(0));
    assert!(client
        .scan("door/", 10)
        .await
        .expect("scan")
        .items
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_campaigns_and_observe_prints_the_leader() {
    let cluster = TestCluster::start(3, &[]).await;
    cluster.wait_for_leader().await;
    let endpoints = cluster.endpoints();

    let mut leader = spawn_raftkv(&endpoints, &["elect", "db", "alpha"]);
    let elected = first_line(&mut leader);
    assert!(
        elected.starts_with("elected key=db/") && elected.ends_with(" value=alpha\n"),
        "{elected:?}"
    );
    let key = elected
        .split_whitespace()
        .find_map(|word| word.strip_prefix("key="))
        .expect("a key")
        .to_string();
    let observed = raftkv(&endpoints, &["elect", "db", "--observe", "--count", "1"]);
    assert_eq!(
        stdout(&observed),
        format!("{key}\talpha\n"),
        "{}",
        describe(&observed)
    );

    // SAFETY: kill(2) on a child process of this test.
    unsafe { libc::kill(leader.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(
        wait_exit(&mut leader).code(),
        Some(0),
        "resigned on SIGTERM"
    );
    let observed = raftkv(&endpoints, &["elect", "db", "--observe", "--count", "1"]);
    assert_eq!(
        stdout(&observed),
        "(no leader)\n",
        "{}",
        describe(&observed)
    );
}
