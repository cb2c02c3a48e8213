//! The etcd v3 API's Cluster and Maintenance services, forwarding to the leader, tokens and TLS,
//! against real `raftkv serve` processes, through etcd's generated gRPC clients.

mod common;

use common::{wait_for, Node, TestCluster, DEADLINE};
use raftkv_etcd_api::cluster_client::ClusterClient;
use raftkv_etcd_api::etcdserverpb::*;
use raftkv_etcd_api::maintenance_client::MaintenanceClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

/// A channel to node `index`'s gRPC API.
fn channel(cluster: &TestCluster, index: usize) -> Channel {
    Endpoint::from_shared(format!("http://{}", cluster.nodes[index].grpc))
        .expect("a valid address")
        .timeout(DEADLINE)
        .connect_lazy()
}

fn maintenance(cluster: &TestCluster, index: usize) -> MaintenanceClient<Channel> {
    MaintenanceClient::new(channel(cluster, index))
}

fn members(cluster: &TestCluster, index: usize) -> ClusterClient<Channel> {
    ClusterClient::new(channel(cluster, index))
}

/// The members node `index` lists, by id.
async fn member_list(cluster: &TestCluster, index: usize) -> Vec<Member> {
    let mut listed = members(cluster, index)
        .member_list(MemberListRequest { linearizable: true })
        .await
        .expect("MemberList answers")
        .into_inner()
        .members;
    listed.sort_by_key(|member| member.id);
    listed
}

/// A follower of a cluster led by `leader`: the first node that is not it.
fn follower_of(leader: usize) -> usize {
    usize::from(leader == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_alarms_hashes_and_member_list_describe_the_cluster() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    // Every member announced its gRPC address: each lists the others' client URLs.
    for index in 0..3 {
        let listed = wait_for("every member's client URL is known", || async {
            let listed = member_list(&cluster, index).await;
            listed
                .iter()
                .all(|member| !member.client_ur_ls.is_empty())
                .then_some(listed)
        })
        .await;
        let expected: Vec<Member> = cluster
            .nodes
            .iter()
            .map(|node: &Node| Member {
                id: node.id,
                name: node.id.to_string(),
                peer_ur_ls: vec![format!("http://{}", node.raft)],
                client_ur_ls: vec![format!("http://{}", node.grpc)],
                is_learner: false,
            })
            .collect();
        assert_eq!(listed, expected, "node {}", index + 1);
    }
    let mut cluster_ids = Vec::new();
    for index in 0..3 {
        let status = maintenance(&cluster, index)
            .status(StatusRequest {})
            .await
            .expect("Status answers")
            .into_inner();
        let header = status.header.expect("a header");
        assert_eq!(header.member_id, cluster.nodes[index].id);
        assert!(header.raft_term >= 1 && header.revision >= 1, "{header:?}");
        cluster_ids.push(header.cluster_id);
        assert_eq!(status.version, "3.5.0");
        assert_eq!(status.leader, cluster.nodes[leader].id);
        assert_eq!(status.raft_term, header.raft_term);
        assert!(status.raft_index >= 1, "{status:?}");
        assert!(
            status.raft_applied_index <= status.raft_index + 1,
            "{status:?}"
        );
        assert!(status.db_size >= 0 && status.db_size == status.db_size_in_use);
        assert!(status.errors.is_empty() && !status.is_learner);

        let alarms = maintenance(&cluster, index)
            .alarm(AlarmRequest::default())
            .await
            .expect("the alarm list answers")
            .into_inner();
        assert!(alarms.alarms.is_empty());
    }
    assert!(cluster_ids.iter().all(|id| *id == cluster_ids[0]));

    // HashKV: every member that applied a revision gives the same hash for it.
    let client = cluster.client();
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
        client
            .put(key, bytes::Bytes::from(value))
            .await
            .expect("a put through HTTP");
    }
    let nodes = &cluster;
    let hash_at = move |index: usize, revision: i64| async move {
        maintenance(nodes, index)
            .hash_kv(HashKvRequest { revision })
            .await
            .ok()
            .map(|answer| answer.into_inner())
    };
    let latest = hash_at(leader, 0).await.expect("HashKV on the leader");
    let revision = latest.header.as_ref().expect("a header").revision;
    assert!(revision >= 4, "{latest:?}");
    for index in 0..3 {
        let answer = wait_for("the member applied the revision", || {
            hash_at(index, revision)
        })
        .await;
        assert_eq!(answer.hash, latest.hash, "node {}", index + 1);
        assert_eq!(answer.compact_revision, latest.compact_revision);
    }
    let earlier = hash_at(leader, revision - 1)
        .await
        .expect("an earlier revision");
    assert_ne!(earlier.hash, latest.hash);
    let refusal = maintenance(&cluster, leader)
        .hash_kv(HashKvRequest {
            revision: revision + 1000,
        })
        .await
        .expect_err("a future revision");
    assert_eq!(refusal.code(), Code::OutOfRange);
    assert_eq!(
        refusal.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );

    // What raftkv does not serve says so, with a reason, at once.
    let mut client = maintenance(&cluster, 0);
    let refusals = [
        client
            .alarm(AlarmRequest {
                action: alarm_request::AlarmAction::Activate.into(),
                member_id: 1,
                alarm: AlarmType::Nospace.into(),
            })
            .await
            .map(|_| ()),
        client.defragment(DefragmentRequest {}).await.map(|_| ()),
        client.hash(HashRequest {}).await.map(|_| ()),
        client
            .downgrade(DowngradeRequest::default())
            .await
            .map(|_| ()),
    ];
    for refusal in refusals {
        let status = refusal.expect_err("unsupported");
        assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
        assert!(status.message().starts_with("raftkv: "), "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_only_calls_on_a_follower_are_forwarded_once() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = follower_of(leader);
    let target = (0..3)
        .find(|index| *index != leader && *index != follower)
        .expect("a third node");
    // The follower's gRPC API knows where the leader's is once the leader announced it.
    wait_for("the leader's gRPC address is known", || async {
        let listed = member_list(&cluster, follower).await;
        listed
            .iter()
            .all(|member| !member.client_ur_ls.is_empty())
            .then_some(())
    })
    .await;

    // A transfer asked of a follower is made by the leader, and answered once it took effect.
    let answer = maintenance(&cluster, follower)
        .move_leader(MoveLeaderRequest {
            target_id: cluster.nodes[target].id,
        })
        .await
        .expect("MoveLeader through a follower")
        .into_inner();
    assert_eq!(
        answer.header.expect("a header").member_id,
        cluster.nodes[follower].id,
        "the answer names the member the client called"
    );
    let status = maintenance(&cluster, target)
        .status(StatusRequest {})
        .await
        .expect("Status")
        .into_inner();
    assert_eq!(status.leader, cluster.nodes[target].id);

    // etcd's refusal for a transferee that is no member, from the leader through the follower.
    let refusal = maintenance(&cluster, leader)
        .move_leader(MoveLeaderRequest { target_id: 42 })
        .await
        .expect_err("no member 42");
    assert_eq!(refusal.code(), Code::FailedPrecondition);
    assert_eq!(refusal.message(), "etcdserver: bad leader transferee");

    // A call already forwarded once is not forwarded again by a node that does not lead.
    let mut forwarded = Request::new(MoveLeaderRequest {
        target_id: cluster.nodes[target].id,
    });
    forwarded
        .metadata_mut()
        .insert("raftkv-forwarded-by", 7u64.into());
    let refusal = maintenance(&cluster, follower)
        .move_leader(forwarded)
        .await
        .expect_err("not the leader");
    assert_eq!(refusal.code(), Code::FailedPrecondition);
    assert_eq!(refusal.message(), "etcdserver: not leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_promoted_updated_and_removed_as_etcd_does() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = follower_of(leader);
    let raft = format!("127.0.0.1:{}", common::free_port());
    let peer_url = format!("http://{raft}");

    // Added through a follower: the next unused id, a learner until it runs and catches up.
    let added = members(&cluster, follower)
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![peer_url.clone()],
            is_learner: false,
        })
        .await
        .expect("MemberAdd")
        .into_inner();
    let member = added.member.expect("the new member");
    assert_eq!(member.id, 4);
    assert_eq!(member.peer_ur_ls, vec![peer_url.clone()]);
    assert!(
        member.name.is_empty() && member.client_ur_ls.is_empty(),
        "{member:?}"
    );
    assert_eq!(added.members.len(), 4);

    let refusal = members(&cluster, leader)
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![peer_url.clone()],
            is_learner: true,
        })
        .await
        .expect_err("the peer URL is taken");
    assert_eq!(refusal.code(), Code::FailedPrecondition);
    assert_eq!(refusal.message(), "etcdserver: Peer URLs already exists");
    let refusal = members(&cluster, leader)
        .member_add(MemberAddRequest {
            peer_ur_ls: vec!["etcd-4:2380".into()],
            is_learner: true,
        })
        .await
        .expect_err("not a URL");
    assert_eq!(refusal.code(), Code::InvalidArgument);
    assert_eq!(
        refusal.message(),
        "etcdserver: given member URLs are invalid"
    );

    // Promotions: a voter is refused, and so is a learner that has not caught up (it does
    // not run yet).
    for (id, message) in [
        (1, "etcdserver: can only promote a learner member"),
        (
            4,
            "etcdserver: can only promote a learner member which is in sync with leader",
        ),
    ] {
        let refusal = members(&cluster, follower)
            .member_promote(MemberPromoteRequest { id })
            .await
            .expect_err("refused");
        assert_eq!(refusal.code(), Code::FailedPrecondition, "{refusal:?}");
        assert_eq!(refusal.message(), message);
    }
    let refusal = members(&cluster, follower)
        .member_remove(MemberRemoveRequest { id: 42 })
        .await
        .expect_err("no member 42");
    assert_eq!(refusal.code(), Code::NotFound);
    assert_eq!(refusal.message(), "etcdserver: member not found");

    // MemberUpdate moves the learner's peer URL.
    let moved = format!("127.0.0.1:{}", common::free_port());
    let updated = members(&cluster, follower)
        .member_update(MemberUpdateRequest {
            id: 4,
            peer_ur_ls: vec![format!("http://{moved}")],
        })
        .await
        .expect("MemberUpdate")
        .into_inner();
    let learner = updated
        .members
        .iter()
        .find(|member| member.id == 4)
        .expect("member 4");
    assert_eq!(learner.peer_ur_ls, vec![format!("http://{moved}")]);
    assert!(learner.is_learner);

    // Started by hand with --join, as the MemberAdd documentation says, it catches up and
    // promotes itself to voter.
    cluster.nodes.push(Node {
        id: 4,
        http: format!("127.0.0.1:{}", common::free_port()),
        raft: moved.clone(),
        grpc: format!("127.0.0.1:{}", common::free_port()),
        data_dir: cluster.dir().join("node-4"),
        log: cluster.dir().join("node-4.log"),
        process: None,
        join: Some(cluster.nodes[leader].http.clone()),
    });
    cluster.spawn(3);
    let grpc = cluster.nodes[3].grpc.clone();
    wait_for("member 4 is a started voter", || async {
        let listed = member_list(&cluster, leader).await;
        let member = listed.iter().find(|member| member.id == 4)?;
        (!member.is_learner && member.client_ur_ls == vec![format!("http://{grpc}")]).then_some(())
    })
    .await;

    let removed = members(&cluster, follower)
        .member_remove(MemberRemoveRequest { id: 4 })
        .await
        .expect("MemberRemove")
        .into_inner();
    let ids: Vec<u64> = removed.members.iter().map(|member| member.id).collect();
    assert!(!ids.contains(&4), "{ids:?}");
}

/// Runs etcdctl (Debian's etcd-client: the test fails without it) against `endpoints` with
/// `flags` before `args`.
fn etcdctl(endpoints: &str, flags: &[&str], args: &[&str]) -> std::process::Output {
    std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--command-timeout", "10s"])
        .args(flags)
        .args(args)
        .output()
        .expect("etcdctl runs (install Debian's etcd-client)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_reaches_the_api_over_the_nodes_tls_and_calls_are_forwarded_over_it() {
    let cluster = TestCluster::start_tls(3).await;
    let leader = cluster.wait_for_leader().await;
    let follower = follower_of(leader);
    let certs = cluster.certs();
    let file = |name: &str| certs.join(name).display().to_string();
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client-key.pem"));
    // The nodes want a client certificate (--tls-ca), as on their HTTPS API.
    let tls = ["--cacert", &ca, "--cert", &cert, "--key", &key];
    let endpoint = |index: usize| format!("https://{}", cluster.nodes[index].grpc);

    let status = etcdctl(&endpoint(follower), &tls, &["endpoint", "status"]);
    assert!(
        status.status.success() && common::stdout(&status).contains(", 3.5.0, "),
        "{}",
        common::describe(&status)
    );
    let listed = wait_for("every member's https client URL is listed", || async {
        let listed = etcdctl(&endpoint(follower), &tls, &["member", "list"]);
        let text = common::stdout(&listed);
        let all = cluster.nodes.iter().all(|node| {
            text.contains(&format!(
                "{id}, started, {id}, https://{}, https://{}, false",
                node.raft,
                node.grpc,
                id = node.id
            ))
        });
        all.then_some(listed)
    })
    .await;
    assert!(listed.status.success(), "{}", common::describe(&listed));

    // A follower forwards MemberAdd to the leader, over the same TLS.
    let peer = format!("https://127.0.0.1:{}", common::free_port());
    let added = etcdctl(
        &endpoint(follower),
        &tls,
        &["member", "add", "node-4", "--peer-urls", &peer],
    );
    assert!(
        added.status.success() && common::stdout(&added).contains("added to cluster"),
        "{}",
        common::describe(&added)
    );

    // Without the client certificate, or without TLS, nothing is answered.
    let refused = etcdctl(&endpoint(follower), &["--cacert", &ca], &["member", "list"]);
    assert!(!refused.status.success(), "{}", common::describe(&refused));
    let plain = etcdctl(&cluster.nodes[follower].grpc, &[], &["member", "list"]);
    assert!(!plain.status.success(), "{}", common::describe(&plain));
}

const READER: &str = "grpc-reader-token-0123456789";
const WRITER: &str = "grpc-writer-token-0123456789";
const ADMIN: &str = "grpc-admin-token-01234567890";

/// `message` with etcd's `token` metadata set to `token`.
fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("token", token.parse().expect("a valid token"));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_etcd_api_wants_the_http_apis_tokens_with_the_same_roles() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"r\"\nrole = \"read-only\"\ntoken = \"{READER}\"\n\
             [[token]]\nname = \"w\"\nrole = \"read-write\"\ntoken = \"{WRITER}\"\n\
             [[token]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n"
        ),
    )
    .expect("writes the token file");
    let tokens = tokens.display().to_string();
    let cluster = TestCluster::start_with_token(3, &["--auth-tokens", &tokens], Some(ADMIN)).await;
    let leader = cluster.wait_for_leader().await;
    let follower = follower_of(leader);
    let target = (0..3)
        .find(|index| *index != leader && *index != follower)
        .expect("a third node");

    // Authenticate takes a token as the password and hands it back as the etcd token.
    let mut auth = raftkv_etcd_api::auth_client::AuthClient::new(channel(&cluster, follower));
    let answer = auth
        .authenticate(AuthenticateRequest {
            name: "anyone".into(),
            password: WRITER.into(),
        })
        .await
        .expect("a token authenticates")
        .into_inner();
    assert_eq!(answer.token, WRITER);
    let refusal = auth
        .authenticate(AuthenticateRequest {
            name: "anyone".into(),
            password: "not-a-token-of-the-file".into(),
        })
        .await
        .expect_err("not a token");
    assert_eq!(refusal.code(), Code::InvalidArgument);
    assert_eq!(
        refusal.message(),
        "etcdserver: authentication failed, invalid user ID or password"
    );
    let status = auth
        .auth_status(AuthStatusRequest {})
        .await
        .expect("AuthStatus needs no token")
        .into_inner();
    assert!(status.enabled);
    let refusal = auth
        .user_add(with_token(AuthUserAddRequest::default(), ADMIN))
        .await
        .expect_err("users are the token file's");
    assert_eq!(refusal.code(), Code::Unimplemented, "{refusal:?}");
    assert!(refusal.message().contains("--auth-tokens"), "{refusal:?}");

    // No token, or an unknown one: etcd's invalid-token answer; a role too weak: denied.
    for request in [
        Request::new(MemberListRequest::default()),
        with_token(MemberListRequest::default(), "not-a-token-of-the-file"),
    ] {
        let refusal = members(&cluster, follower)
            .member_list(request)
            .await
            .expect_err("no valid token");
        assert_eq!(refusal.code(), Code::Unauthenticated);
        assert_eq!(refusal.message(), "etcdserver: invalid auth token");
    }
    members(&cluster, follower)
        .member_list(with_token(MemberListRequest::default(), READER))
        .await
        .expect("a reader lists the members");
    let target_id = cluster.nodes[target].id;
    let refusal = maintenance(&cluster, follower)
        .move_leader(with_token(MoveLeaderRequest { target_id }, WRITER))
        .await
        .expect_err("a writer may not move the leader");
    assert_eq!(refusal.code(), Code::PermissionDenied);
    assert_eq!(refusal.message(), "etcdserver: permission denied");
    // The admin's call is forwarded with its token, which the leader checks again.
    wait_for("the leader's gRPC address is known", || async {
        let listed = members(&cluster, follower)
            .member_list(with_token(MemberListRequest::default(), READER))
            .await
            .ok()?
            .into_inner()
            .members;
        listed
            .iter()
            .all(|member| !member.client_ur_ls.is_empty())
            .then_some(())
    })
    .await;
    maintenance(&cluster, follower)
        .move_leader(with_token(MoveLeaderRequest { target_id }, ADMIN))
        .await
        .expect("the admin moves the leader through a follower");

    // etcdctl's own flow: Authenticate with the token as the password, then the etcd token.
    let endpoint = cluster.nodes[follower].grpc.clone();
    let listed = etcdctl(
        &endpoint,
        &["--user", &format!("reader:{READER}")],
        &["member", "list"],
    );
    assert!(listed.status.success(), "{}", common::describe(&listed));
    let refused = etcdctl(
        &endpoint,
        &["--user", &format!("reader:{READER}")],
        &["member", "remove", "3"],
    );
    assert!(
        common::describe(&refused).contains("etcdserver: permission denied"),
        "{}",
        common::describe(&refused)
    );
}
