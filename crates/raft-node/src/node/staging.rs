//! The service's snapshots, made durable before the core compacts: the store's
//! [`SnapshotStager`] writes the snapshot's file on a thread of its own while the log's writes go
//! on, and only then does the event loop hand the snapshot to `Raft::compact`, whose write
//! finds the file durable and just records it.
//!
//! ```text
//!  RaftNode::snapshot ─► event loop: Raft::snapshot_for_compaction (refusals answered now)
//!     ─► Staging::start ─► thread "raft-snapshot-stage": SnapshotStager::stage (one at a time;
//!                          one more waits, the newest)
//!     ─► Staged ─► event loop: Raft::compact ─► ready().persist ─► store: rename + marker
//!                  refused meanwhile (a newer snapshot installed): SnapshotStager::discard
//! ```
//!
//! Without staging, the file was written (37 MB: up to 1.7 s) by the write that recorded the
//! snapshot, and no entry became durable, so none was acknowledged or applied, until it was
//! done. Snapshots installed from a leader still take that path: they arrive through the core,
//! which records them at once.

use std::sync::Arc;

use raft_core::{CompactError, Index, LogId, Snapshot, SnapshotStager, StageError};
use tokio::sync::{mpsc, oneshot};

use super::NodeError;

/// Where the answer to [`super::RaftNode::snapshot`] goes.
pub(super) type SnapshotReply = oneshot::Sender<Result<(), NodeError>>;

/// A staging finished (or failed): what the event loop then hands to the core.
pub(super) struct Staged {
    pub(super) snapshot: Snapshot,
    /// `Err`: the file is not durable; the write that records the snapshot writes it whole.
    pub(super) result: Result<(), StageError>,
}

/// The service's snapshots being staged: at most one at a time, and one waiting.
pub(super) struct Staging {
    stager: Arc<dyn SnapshotStager>,
    finished: mpsc::UnboundedSender<Staged>,
    /// The snapshot a thread is staging, and who waits for it to be compacted.
    in_flight: Option<(LogId, SnapshotReply)>,
    /// The next one, started when the one in flight finishes. Only the newest waits: one
    /// covers everything an older one would.
    waiting: Option<(Snapshot, SnapshotReply)>,
}

/// The answer to a snapshot covered by a newer one staging or waiting.
fn covered(index: Index, newer: Index) -> Result<(), NodeError> {
    Err(NodeError::Compact(CompactError::AlreadyCompacted {
        index,
        snapshot: newer,
    }))
}

impl Staging {
    /// Stages with `stager`, reporting each finished staging on `finished`.
    pub(super) fn new(
        stager: Arc<dyn SnapshotStager>,
        finished: mpsc::UnboundedSender<Staged>,
    ) -> Staging {
        Staging {
            stager,
            finished,
            in_flight: None,
            waiting: None,
        }
    }

    /// Starts staging `snapshot`, or has it wait for the one in flight. A snapshot no newer
    /// than one already staging or waiting is refused as covered by it. Hands the snapshot
    /// back if no thread could be started for it: the caller compacts with it at once.
    pub(super) fn start(
        &mut self,
        snapshot: Snapshot,
        reply: SnapshotReply,
    ) -> Option<(Snapshot, SnapshotReply)> {
        let index = snapshot.meta.last_included.index;
        let newest_pending = self
            .waiting
            .as_ref()
            .map(|(waiting, _)| waiting.meta.last_included)
            .into_iter()
            .chain(self.in_flight.as_ref().map(|(id, _)| *id))
            .map(|id| id.index)
            .max();
        if let Some(newest) = newest_pending.filter(|&newest| newest >= index) {
            let _ = reply.send(covered(index, newest));
            return None;
        }
        if self.in_flight.is_some() {
            if let Some((older, older_reply)) = self.waiting.replace((snapshot, reply)) {
                let _ = older_reply.send(covered(older.meta.last_included.index, index));
            }
            return None;
        }
        self.spawn(snapshot, reply)
    }

    /// The staging in flight has finished: who waits for its snapshot to be compacted.
    pub(super) fn take_finished(&mut self) -> Option<SnapshotReply> {
        self.in_flight.take().map(|(_, reply)| reply)
    }

    /// Starts the waiting snapshot's staging, if one waits and none is in flight. Hands it
    /// back if no thread could be started for it.
    pub(super) fn start_waiting(&mut self) -> Option<(Snapshot, SnapshotReply)> {
        if self.in_flight.is_some() {
            return None;
        }
        let (snapshot, reply) = self.waiting.take()?;
        self.spawn(snapshot, reply)
    }

    /// Frees a staged snapshot the core refused, on a blocking thread (it deletes a file).
    pub(super) fn discard(&self, id: LogId) {
        let stager = Arc::clone(&self.stager);
        tokio::task::spawn_blocking(move || stager.discard(id));
    }

    fn spawn(
        &mut self,
        snapshot: Snapshot,
        reply: SnapshotReply,
    ) -> Option<(Snapshot, SnapshotReply)> {
        assert!(self.in_flight.is_none(), "invariant staging-one-at-a-time");
        let id = snapshot.meta.last_included;
        let stager = Arc::clone(&self.stager);
        let finished = self.finished.clone();
        // A copy for the thread (the data is shared, not copied), so the snapshot is still
        // here if the thread cannot start.
        let staged = snapshot.clone();
        let spawned = std::thread::Builder::new()
            .name("raft-snapshot-stage".into())
            .spawn(move || {
                let result = stager.stage(&staged);
                // The event loop may be gone (the node stopped): the staged file is then
                // removed at the store's next open.
                let _ = finished.send(Staged {
                    snapshot: staged,
                    result,
                });
            });
        match spawned {
            Ok(_) => {
                self.in_flight = Some((id, reply));
                None
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start a thread to stage a snapshot: the log writes it");
                Some((snapshot, reply))
            }
        }
    }
}
