//! Staged snapshots: a snapshot's file made durable on the caller's thread, ahead of the write
//! that records it, so that the log's writer does not stop appending for the length of a large
//! file write.
//!
//! ```text
//!  stage(snapshot)      any thread: snapshot-<index>-<term>.staged.snap.tmp written, fsynced
//!                         ─► remembered (id → snapshot)
//!  Wal::write_batch     the writer: a request's snapshot remembered with the same contents
//!                         ─► renamed to its final name, directory fsync ─► marker record
//!                       anything else: the whole file written there, as without staging
//!  cleanup              recorded (renamed away); a newer snapshot recorded (remove_compacted
//!                       deletes staged files it covers); discard; at open every *.snap.tmp
//! ```
//!
//! Recovery never reads a staged file: its name is a temporary one. Only the rename, done by
//! the write that also appends the snapshot's marker, makes it the log's snapshot, so a crash
//! between staging and recording leaves the log as if nothing had been staged.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use raft_core::{Index, LogId, Snapshot, SnapshotStager, StageError};

use crate::error::{Result, WalError};
use crate::fsutil::Syncer;
use crate::snapshot_file;

/// The snapshots staged in one data directory and not yet recorded, shared by the log's writer
/// and the stager handles ([`raft_core::LogStore::snapshot_stager`]).
#[derive(Debug)]
pub(crate) struct StagedSnapshots {
    dir: PathBuf,
    syncer: Syncer,
    /// [`crate::WalOptions::staged_snapshot_bytes_per_second`].
    bytes_per_second: u64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Snapshots being staged or staged, by [`key`].
    slots: BTreeMap<(u64, u64), Slot>,
    /// The index of the newest snapshot recorded: staging one no newer is pointless, and one
    /// that finishes after such a snapshot was recorded deletes its own file.
    recorded_through: Index,
}

/// A snapshot's place among the staged ones: by index, then term.
fn key(id: LogId) -> (u64, u64) {
    (id.index.0, id.term.0)
}

#[derive(Debug)]
enum Slot {
    /// A thread is writing its file: the writer must not count on it yet.
    Writing,
    /// Its file is durable under the staged name. The data is shared with the caller's copy
    /// (the core holds the same buffer until the snapshot is recorded), so remembering it
    /// costs no memory in the usual course.
    Durable(Snapshot),
}

impl StagedSnapshots {
    /// Nothing staged yet in `dir`, whose log has recorded a snapshot through
    /// `recorded_through`; files are written at most `bytes_per_second` (0: unpaced).
    pub(crate) fn new(
        dir: PathBuf,
        syncer: Syncer,
        bytes_per_second: u64,
        recorded_through: Index,
    ) -> StagedSnapshots {
        StagedSnapshots {
            dir,
            syncer,
            bytes_per_second,
            state: Mutex::new(State {
                slots: BTreeMap::new(),
                recorded_through,
            }),
        }
    }

    /// The state, locked. A panic while it was held poisons nothing worth refusing: every
    /// change to it is a single insert, removal or assignment.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn staged_path(&self, id: LogId) -> PathBuf {
        self.dir.join(snapshot_file::staged_file_name(id))
    }

    /// Deletes a staged file nothing will use; a failure is only logged (the file goes at the
    /// next compaction or open).
    fn delete(&self, id: LogId) {
        let path = self.staged_path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "could not delete a staged snapshot")
            }
        }
    }

    /// Writes `snapshot`'s file under its staged name and fsyncs it, then marks it durable.
    fn stage_file(&self, snapshot: &Snapshot) -> Result<()> {
        let id = snapshot.meta.last_included;
        {
            let mut state = self.lock();
            if id.index <= state.recorded_through {
                return Ok(());
            }
            if state.slots.contains_key(&key(id)) {
                return Err(WalError::InvalidWrite(format!(
                    "snapshot {id} is already staged"
                )));
            }
            state.slots.insert(key(id), Slot::Writing);
        }
        let path = self.staged_path(id);
        let started = Instant::now();
        let written =
            snapshot_file::write_unnamed(self.syncer, &path, snapshot, self.bytes_per_second);
        let mut state = self.lock();
        let wanted = matches!(state.slots.get(&key(id)), Some(Slot::Writing))
            && id.index > state.recorded_through;
        if written.is_err() || !wanted {
            // Failed, discarded or covered by a newer snapshot meanwhile.
            if wanted {
                state.slots.remove(&key(id));
            }
            drop(state);
            self.delete(id);
            return written;
        }
        // Only once the file is durable may the writer count on it.
        state.slots.insert(key(id), Slot::Durable(snapshot.clone()));
        drop(state);
        tracing::info!(
            index = id.index.0,
            bytes = snapshot.data.len(),
            write_us = started.elapsed().as_micros() as u64,
            "snapshot file staged"
        );
        Ok(())
    }

    /// Takes `snapshot` out of the staged ones if it was staged with exactly these contents:
    /// its file is then durable under its staged name. A staged one of the same id that
    /// differs is forgotten (its file goes with the next compaction).
    pub(crate) fn take_if_staged(&self, snapshot: &Snapshot) -> bool {
        let id = snapshot.meta.last_included;
        let mut state = self.lock();
        let Some(Slot::Durable(staged)) = state.slots.get(&key(id)) else {
            // Not staged, or still being written: the writer writes the file itself.
            return false;
        };
        // The core hands back the very buffer that was staged: compared by address first, so
        // tens of megabytes are not compared byte by byte.
        let same_data = (staged.data.as_ptr() == snapshot.data.as_ptr()
            && staged.data.len() == snapshot.data.len())
            || staged.data == snapshot.data;
        let same = staged.meta == snapshot.meta && same_data;
        state.slots.remove(&key(id));
        if !same {
            tracing::warn!(%id, "a staged snapshot differs from the one recorded: written again");
        }
        same
    }

    /// A snapshot through `index` is recorded: forgets the staged snapshots it covers (the
    /// caller deletes their files; one still being written deletes its own).
    pub(crate) fn forget_through(&self, index: Index) {
        let mut state = self.lock();
        state.recorded_through = state.recorded_through.max(index);
        state
            .slots
            .retain(|&(staged_index, _), _| staged_index > index.0);
    }
}

impl SnapshotStager for StagedSnapshots {
    fn stage(&self, snapshot: &Snapshot) -> std::result::Result<(), StageError> {
        self.stage_file(snapshot).map_err(StageError::from)
    }

    fn discard(&self, id: LogId) {
        // One still being written deletes its own file when it finds its slot gone.
        if let Some(Slot::Durable(_)) = self.lock().slots.remove(&key(id)) {
            self.delete(id);
        }
    }
}
