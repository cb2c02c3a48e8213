//! The builder: what it refuses, and a peer it starts on the write-ahead log and on a store of
//! the caller's that commits and applies.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use raft_node::{ApplyMsg, BuildError, Bytes, NodeId, RaftNode, SharedMemStorage};

/// A loopback address nothing listens on right now.
fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("bound")
}

/// Proposes one command at a single-voter node once it leads, and waits until the node hands
/// it over at the index it was given.
async fn commits_one_command(
    node: &RaftNode,
    applied: &mut raft_node::tokio::sync::mpsc::Receiver<ApplyMsg>,
) {
    let deadline = raft_node::tokio::time::Instant::now() + Duration::from_secs(10);
    let (index, term) = loop {
        match node.start_command(Bytes::from_static(b"x=1")).await {
            Ok(place) => break place,
            Err(error) => {
                assert!(error.is_retryable(), "{error}");
                assert!(
                    raft_node::tokio::time::Instant::now() < deadline,
                    "never became leader: {error}"
                );
                raft_node::tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    loop {
        let message = raft_node::tokio::time::timeout_at(deadline, applied.recv())
            .await
            .expect("applied within the deadline")
            .expect("the node runs");
        if let ApplyMsg::Command {
            index: at,
            term: in_term,
            data,
        } = message
        {
            assert_eq!((at, in_term, &data[..]), (index, term, &b"x=1"[..]));
            return;
        }
    }
}

#[raft_node::tokio::test(crate = "raft_node::tokio")]
async fn a_node_missing_from_its_peers_or_without_a_data_directory_is_refused() {
    let refused = RaftNode::builder(NodeId(4))
        .peers([(NodeId(1), free_address())])
        .data_dir(tempfile::tempdir().expect("temporary directory").path())
        .start()
        .await;
    assert!(
        matches!(refused, Err(BuildError::NotAPeer(NodeId(4)))),
        "{:?}",
        refused.err()
    );
    let refused = RaftNode::builder(NodeId(1))
        .peers([(NodeId(1), free_address())])
        .start()
        .await;
    assert!(
        matches!(refused, Err(BuildError::NoDataDir)),
        "{:?}",
        refused.err()
    );
}

#[raft_node::tokio::test(crate = "raft_node::tokio")]
async fn a_single_voter_built_on_the_log_commits_and_finds_its_log_again() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (node, mut applied) = RaftNode::builder(NodeId(1))
        .peers([(NodeId(1), free_address())])
        .data_dir(dir.path().join("raft"))
        .start()
        .await
        .expect("starts");
    commits_one_command(&node, &mut applied).await;
    node.shutdown().await;
    drop(applied);
    // A restart hands the committed command over again, from the log. (On another address:
    // the old listener closes a moment after the shutdown.)
    let (node, mut applied) = RaftNode::builder(NodeId(1))
        .peers([(NodeId(1), free_address())])
        .data_dir(dir.path().join("raft"))
        .start()
        .await
        .expect("restarts");
    let replayed = raft_node::tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(ApplyMsg::Command { data, .. }) = applied.recv().await {
                return data;
            }
        }
    })
    .await
    .expect("replayed");
    assert_eq!(&replayed[..], b"x=1");
    node.shutdown().await;
}

#[raft_node::tokio::test(crate = "raft_node::tokio")]
async fn a_node_built_on_a_store_of_the_callers_commits() {
    let builder = RaftNode::builder(NodeId(1)).peers([(NodeId(1), free_address())]);
    let store = SharedMemStorage::new(builder.bootstrap_configuration());
    let (node, mut applied) = builder.start_on(store.clone()).await.expect("starts");
    commits_one_command(&node, &mut applied).await;
    node.shutdown().await;
    let stored = store.to_storage();
    assert!(
        stored
            .stored_entries()
            .any(|entry| &entry.data[..] == b"x=1"),
        "the command is in the caller's store"
    );
}
