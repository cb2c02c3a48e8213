//! The service's snapshot is staged (its file made durable on a thread of its own) before the
//! core compacts with it, so a slow snapshot write holds up no append: entries after the
//! snapshot's index become durable, commit and are applied while it is written.
//!
//! The store is a `SharedMemStorage` behind a gate: staging waits at the gate, and so does a
//! write that records a snapshot that was not staged (the file written on the log's writer,
//! as before staging existed). Either way the snapshot is slow; only staging lets the log go
//! on meanwhile.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::within_deadline;
use raft_node::core::{PersistRequest, Snapshot, SnapshotStager, StageError};
use raft_node::tokio::sync::mpsc;
use raft_node::{
    ApplyMsg, Bytes, CompactError, Index, LogId, LogStore, NodeError, NodeId, RaftNode,
    SharedMemStorage,
};

/// Closed until the test opens it; counts who waited at it.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    open: bool,
    waited: u64,
}

impl Gate {
    fn pass(&self) {
        let mut state = self.state.lock().expect("no panic while held");
        state.waited += 1;
        self.changed.notify_all();
        while !state.open {
            state = self.changed.wait(state).expect("no panic while held");
        }
    }

    fn open(&self) {
        self.state.lock().expect("no panic while held").open = true;
        self.changed.notify_all();
    }

    fn waited(&self) -> u64 {
        self.state.lock().expect("no panic while held").waited
    }
}

/// Opens the gate when dropped, so a failing test does not leave threads waiting at it.
struct OpenOnDrop(Arc<Shared>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.gate.open();
    }
}

/// What the gated store and its stager share.
#[derive(Default)]
struct Shared {
    gate: Gate,
    staged: Mutex<Vec<LogId>>,
    discarded: Mutex<Vec<LogId>>,
}

/// A store whose snapshots are slow to make durable (see the file's doc).
struct GatedStore {
    inner: SharedMemStorage,
    shared: Arc<Shared>,
}

struct GatedStager(Arc<Shared>);

impl SnapshotStager for GatedStager {
    fn stage(&self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.0.gate.pass();
        self.0
            .staged
            .lock()
            .expect("no panic while held")
            .push(snapshot.meta.last_included);
        Ok(())
    }

    fn discard(&self, id: LogId) {
        self.0
            .discarded
            .lock()
            .expect("no panic while held")
            .push(id);
    }
}

impl LogStore for GatedStore {
    type Reader = SharedMemStorage;
    type Error = std::convert::Infallible;

    fn reader(&self) -> SharedMemStorage {
        self.inner.clone()
    }

    fn write(&mut self, requests: Vec<PersistRequest>) -> Result<(), Self::Error> {
        let unstaged_snapshot = requests.iter().any(|request| {
            request.snapshot.as_ref().is_some_and(|snapshot| {
                !self
                    .shared
                    .staged
                    .lock()
                    .expect("no panic while held")
                    .contains(&snapshot.meta.last_included)
            })
        });
        if unstaged_snapshot {
            self.shared.gate.pass();
        }
        self.inner.write(requests)
    }

    fn snapshot_stager(&self) -> Option<Arc<dyn SnapshotStager>> {
        Some(Arc::new(GatedStager(Arc::clone(&self.shared))))
    }
}

fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.local_addr().expect("bound")
}

fn command(number: u64) -> Bytes {
    Bytes::from(format!("command {number}"))
}

/// Proposes `numbers` (retrying while no leader is known) and returns the index of the last.
async fn propose(node: &RaftNode, numbers: std::ops::RangeInclusive<u64>) -> Index {
    let mut last = Index(0);
    for number in numbers {
        last = within_deadline("a proposal is placed", async {
            loop {
                match node.start_command(command(number)).await {
                    Ok((index, _)) => break index,
                    Err(error) if error.is_retryable() => {
                        raft_node::tokio::time::sleep(Duration::from_millis(10)).await
                    }
                    Err(error) => panic!("proposal refused: {error}"),
                }
            }
        })
        .await;
    }
    last
}

/// Receives applied messages until `index` is applied, within `deadline`.
async fn applied_through(
    applied: &mut mpsc::Receiver<ApplyMsg>,
    index: Index,
    deadline: Duration,
) -> bool {
    raft_node::tokio::time::timeout(deadline, async {
        loop {
            let at = match applied.recv().await.expect("the node runs") {
                ApplyMsg::Command { index, .. }
                | ApplyMsg::Noop { index, .. }
                | ApplyMsg::Configuration { index, .. }
                | ApplyMsg::Snapshot { index, .. } => index,
            };
            if at >= index {
                return;
            }
        }
    })
    .await
    .is_ok()
}

/// The index the snapshot recorded in `memory` covers.
fn recorded_through(memory: &SharedMemStorage) -> Index {
    memory.to_storage().snapshot_meta().last_included.index
}

/// Hands the node a snapshot through `index`, retrying while it has not seen it applied.
async fn snapshot(node: &RaftNode, index: Index) -> Result<(), NodeError> {
    loop {
        match node.snapshot(index, Bytes::from("state")).await {
            Err(NodeError::Compact(CompactError::NotApplied { .. })) => {
                raft_node::tokio::time::sleep(Duration::from_millis(10)).await
            }
            other => return other,
        }
    }
}

#[raft_node::tokio::test(
    crate = "raft_node::tokio",
    flavor = "multi_thread",
    worker_threads = 2
)]
async fn entries_after_a_snapshot_commit_and_apply_while_its_file_is_written() {
    let builder = RaftNode::builder(NodeId(1)).peers([(NodeId(1), free_address())]);
    let memory = SharedMemStorage::new(builder.bootstrap_configuration());
    let shared = Arc::new(Shared::default());
    let _open_at_the_end = OpenOnDrop(Arc::clone(&shared));
    let store = GatedStore {
        inner: memory.clone(),
        shared: Arc::clone(&shared),
    };
    let (node, mut applied) = builder.start_on(store).await.expect("starts");
    let node = Arc::new(node);
    let snapshot_index = propose(&node, 1..=5).await;
    assert!(applied_through(&mut applied, snapshot_index, common::DEADLINE).await);

    let snapshotting = {
        let node = Arc::clone(&node);
        raft_node::tokio::spawn(async move { snapshot(&node, snapshot_index).await })
    };
    common::wait_until("the snapshot is being written", || {
        shared.gate.waited() == 1
    })
    .await;

    // The snapshot's file is still being written: the log goes on.
    let last = propose(&node, 6..=10).await;
    assert!(
        applied_through(&mut applied, last, Duration::from_secs(5)).await,
        "entries after the snapshot were not applied while its file was written"
    );
    assert_eq!(recorded_through(&memory), Index(0), "not recorded yet");
    // A snapshot the one being written covers is refused as such.
    assert_eq!(
        node.snapshot(Index(3), Bytes::from("older state")).await,
        Err(NodeError::Compact(CompactError::AlreadyCompacted {
            index: Index(3),
            snapshot: snapshot_index,
        }))
    );

    shared.gate.open();
    within_deadline("the snapshot is taken", snapshotting)
        .await
        .expect("no panic")
        .expect("the snapshot is taken");
    common::wait_until("the snapshot is recorded", || {
        recorded_through(&memory) == snapshot_index
    })
    .await;
    assert_eq!(shared.gate.waited(), 1, "the recording write did not wait");
    assert!(shared.discarded.lock().expect("no panic").is_empty());
    let stored = memory.to_storage();
    assert_eq!(&stored.stored_snapshot().data[..], b"state");
    assert_eq!(
        stored.stored_entries().last().map(|entry| entry.id.index),
        Some(last)
    );
    Arc::into_inner(node)
        .expect("the task ended")
        .shutdown()
        .await;
}
