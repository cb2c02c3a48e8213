//! Group commit: a thread that owns the [`Wal`] and makes everything handed to it while one
//! fdatasync runs durable with the next one.
//!
//! ```text
//!  submit(request) ──► queue ──► writer thread: take all queued (up to a byte bound)
//!                                  ─► Wal::write (one fdatasync) ─► on_durable(last id)
//! ```
//!
//! With one request in flight at a time this is one fsync per request; with many, the fsync
//! cost is shared, so throughput grows with the offered load until the disk's bandwidth is
//! the limit.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::{self, JoinHandle};

use raft_core::{PersistId, PersistRequest};

use crate::error::WalError;
use crate::wal::Wal;

/// Bytes of entry payloads one group takes before it is written, so that one very busy moment
/// does not delay every acknowledgement behind a huge write.
const GROUP_BYTES_MAX: u64 = 16 << 20;

/// Requests that may wait for the writer; [`GroupCommit::submit`] blocks while this many do,
/// which pushes back on the producer instead of queueing without bound.
pub const QUEUED_REQUESTS_MAX: usize = 4096;

/// Handle on the group-commit thread. Dropping it stops the thread after the queued
/// requests are written.
#[derive(Debug)]
pub struct GroupCommit {
    sender: Option<SyncSender<PersistRequest>>,
    thread: Option<JoinHandle<Wal>>,
}

/// What the writer thread reports after each group.
pub type Durable = Result<PersistId, WalError>;

impl GroupCommit {
    /// Moves `wal` to a new thread. `on_durable` is called on that thread after each group
    /// with the id of the group's last request (every earlier one is durable too), or with the
    /// error that stopped the log; after an error no more requests are written. The next group
    /// waits for `on_durable` to return, so it should only hand the id on (send it to a
    /// channel, wake a task), not do work of its own.
    pub fn spawn(
        wal: Wal,
        on_durable: impl FnMut(Durable) + Send + 'static,
    ) -> std::io::Result<GroupCommit> {
        let (sender, receiver) = mpsc::sync_channel(QUEUED_REQUESTS_MAX);
        let thread = thread::Builder::new()
            .name("raft-wal-writer".into())
            .spawn(move || run(wal, receiver, on_durable))?;
        Ok(GroupCommit {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Queues a request to be made durable; blocks while [`QUEUED_REQUESTS_MAX`] requests wait.
    pub fn submit(&self, request: PersistRequest) -> Result<(), WalError> {
        let stopped = || WalError::Stopped("the group-commit thread has exited".into());
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        sender.send(request).map_err(|_| stopped())
    }

    /// Queues a request without blocking: a full queue hands it back as `Ok(Some(request))`,
    /// for a caller that must not block (an async event loop) to offer again after the next
    /// durable report.
    pub fn try_submit(&self, request: PersistRequest) -> Result<Option<PersistRequest>, WalError> {
        let stopped = || WalError::Stopped("the group-commit thread has exited".into());
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        match sender.try_send(request) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full(request)) => Ok(Some(request)),
            Err(TrySendError::Disconnected(_)) => Err(stopped()),
        }
    }

    /// Writes what is queued, stops the thread and hands the log back.
    pub fn shutdown(mut self) -> Result<Wal, WalError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<Wal, WalError> {
        self.sender = None;
        let thread = self
            .thread
            .take()
            .ok_or_else(|| WalError::Stopped("already shut down".into()))?;
        thread
            .join()
            .map_err(|_| WalError::Stopped("the group-commit thread panicked".into()))
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

fn run(
    mut wal: Wal,
    receiver: Receiver<PersistRequest>,
    mut on_durable: impl FnMut(Durable),
) -> Wal {
    while let Ok(first) = receiver.recv() {
        let mut group_bytes = request_bytes(&first);
        let mut group = vec![first];
        while group_bytes < GROUP_BYTES_MAX {
            let Ok(next) = receiver.try_recv() else { break };
            group_bytes += request_bytes(&next);
            group.push(next);
        }
        match wal.write(group) {
            Ok(Some(id)) => on_durable(Ok(id)),
            Ok(None) => {}
            Err(error) => {
                on_durable(Err(error));
                break;
            }
        }
    }
    wal
}

fn request_bytes(request: &PersistRequest) -> u64 {
    let entries: u64 = request.entries.iter().map(|entry| entry.size_bytes()).sum();
    let snapshot = request
        .snapshot
        .as_ref()
        .map_or(0, |snapshot| snapshot.data.len() as u64);
    entries + snapshot
}
