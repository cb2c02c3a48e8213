//! The apply loop: feeds the store from the node's apply channel, answers the waiting
//! writes, tells the reads how far the state is applied, and starts snapshots.
//!
//! ```text
//!  ApplyMsg::Command ─► StateMachine::apply_decoded ─► Waiters::applied ─┐
//!  ApplyMsg::Configuration / Noop ─► skip (and follow the configuration) ├─► answers handed over,
//!  ApplyMsg::Snapshot ─► StateMachine::restore ─► waiters: unknown       │   applied index sent
//!  bytes since the last snapshot ≥ threshold ─► snapshot_image ─► compact (off this path)
//!  Applied.changes ─► WatchHub::publish (never waits); a snapshot ─► WatchHub::restored;
//!  after each batch ─► WatchHub::reached(revision)
//!  lease grants, revokes, checkpoints ─► the lessor (before the write is answered); the
//!  leader's own Noop ─► the lessor promoted; a snapshot or leadership lost ─► demoted
//! ```

use std::sync::Arc;

use raft_core::{Configuration, NodeId};
use raft_node::ApplyMsg;
use tokio::sync::{mpsc, watch};

use super::proposals::{Resolution, WriteResult};
use super::snapshots::{staggered_threshold, start_snapshot};
use super::KvServer;
use crate::store::{Command, Operation, StateMachine};

/// Most applied messages handled before the reads waiting for an index are told.
const APPLY_BATCH_MAX: usize = 256;

/// Feeds the state machine from the apply channel, answers waiters, takes snapshots.
pub(super) async fn apply_loop(
    server: Arc<KvServer>,
    mut messages: mpsc::Receiver<ApplyMsg>,
    applied: watch::Sender<u64>,
) {
    let mut bytes_since_snapshot = 0u64;
    let snapshot_threshold =
        staggered_threshold(server.config.snapshot_threshold_bytes, rand::random());
    let mut configuration = Configuration::new(server.config.peers.keys().copied());
    let mut batch = Vec::with_capacity(APPLY_BATCH_MAX);
    while messages.recv_many(&mut batch, APPLY_BATCH_MAX).await > 0 {
        let mut last_applied = None;
        for message in batch.drain(..) {
            let Some(index) = apply_message(
                &server,
                message,
                &mut configuration,
                &mut bytes_since_snapshot,
            ) else {
                server.hand_over_answers();
                return;
            };
            last_applied = Some(index);
            if bytes_since_snapshot >= snapshot_threshold {
                bytes_since_snapshot = 0;
                start_snapshot(&server, index);
            }
        }
        server.hand_over_answers();
        server.note_leader();
        server.lessor_follow_leadership();
        // Once per batch, not per entry: every read waiting for an index wakes on each change.
        if let Some(index) = last_applied {
            applied.send_replace(index);
            // Every change up to this revision was published above, before it is announced:
            // an idle watcher's progress relies on that order.
            let revision = server.state().revision();
            server.watch_hub.reached(revision);
        }
    }
}

/// Applies one message from the node and answers its waiters; the index the state is at
/// afterwards, or `None` when the state cannot go on (an installed snapshot does not decode).
fn apply_message(
    server: &Arc<KvServer>,
    message: ApplyMsg,
    configuration: &mut Configuration,
    bytes_since_snapshot: &mut u64,
) -> Option<u64> {
    let index = match message {
        ApplyMsg::Command { index, term, data } => {
            let decoded = Command::decode(&data);
            let request = decoded.as_ref().ok().and_then(|command| command.request_id);
            if let Ok(Command {
                operation: Operation::RaftAddress { node, raft_address },
                ..
            }) = &decoded
            {
                // Dial a node about to be added at once: the leader replicates to it as
                // soon as its configuration entry is appended.
                if let (true, Ok(address)) = (*node != server.config.id.0, raft_address.parse()) {
                    let _ = server.transport.set_peer(NodeId(*node), address);
                }
            }
            // Only lease commands are kept for the lessor (a clone of a few ids).
            let lease_operation = match &decoded {
                Ok(Command {
                    operation:
                        operation @ (Operation::LeaseGrant { .. }
                        | Operation::LeaseRevoke { .. }
                        | Operation::LeaseCheckpoint { .. }),
                    ..
                }) => Some(operation.clone()),
                _ => None,
            };
            let applied = server.state().apply_decoded(index.0, term.0, decoded);
            // Before the write is answered: a client that saw its grant may keep it alive at
            // once.
            if let Some(operation) = &lease_operation {
                server.lessor_applied(operation, &applied.outcome);
            }
            *bytes_since_snapshot += data.len() as u64;
            // Published after the state's lock is released and before the next entry is
            // applied, so the window holds every revision in order.
            if let Some(changes) = applied.changes {
                server.watch_hub.publish(Arc::new(changes));
            }
            let result = WriteResult {
                outcome: applied.outcome,
                index: applied.index,
                term: applied.term,
                revision: applied.revision,
            };
            server.waiters().applied(index.0, request, Some(result));
            index.0
        }
        // A membership change carries no command: skipped like a no-op.
        ApplyMsg::Configuration {
            index,
            configuration: committed,
            ..
        } => {
            server.state().skip(index.0);
            server.waiters().applied(index.0, None, None);
            server.follow_configuration(configuration, &committed);
            *configuration = committed;
            index.0
        }
        ApplyMsg::Noop { index, term } => {
            server.state().skip(index.0);
            server.waiters().applied(index.0, None, None);
            // A leader's own no-op applied: every earlier entry is, so it may decide about
            // leases from here (a stale leader's revokes and checkpoints are all in).
            server.lessor_noop_applied(term.0);
            index.0
        }
        ApplyMsg::Snapshot { index, data, .. } => {
            match StateMachine::restore(&data, server.config.sessions_max) {
                Ok(restored) => {
                    // Nodes added at run time are known by the addresses in the state.
                    for (node, address) in restored.raft_addresses() {
                        if let (true, Ok(address)) = (*node != server.config.id.0, address.parse())
                        {
                            let _ = server.transport.set_peer(NodeId(*node), address);
                        }
                    }
                    let revision = restored.revision();
                    *server.state() = restored;
                    // Only a follower installs a snapshot; whatever deadlines it held are stale.
                    server.lessor().demote();
                    server.watch_hub.restored(revision);
                }
                Err(error) => {
                    // Every replica wrote this snapshot with the same code; failing to read
                    // it means the state is lost, so serving on would be wrong.
                    tracing::error!(%error, "cannot restore the installed snapshot; stopping");
                    return None;
                }
            }
            *bytes_since_snapshot = 0;
            server
                .waiters()
                .settle_through(index.0, || Resolution::ReplacedBySnapshot);
            index.0
        }
    };
    Some(index)
}
