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
//!
//! When the thread has written everything it was handed, the owner may write a request on
//! its own thread instead ([`GroupCommit::write_here`]): two thread wake-ups fewer, which on
//! a virtual machine cost more than the write itself when requests come one at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
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
    thread: Option<JoinHandle<()>>,
    /// Locked by the thread while it writes a group and by [`GroupCommit::write_here`]; `None`
    /// once handed back by [`GroupCommit::shutdown`].
    wal: Option<Arc<Mutex<Wal>>>,
    /// Requests handed to the thread.
    handed: AtomicU64,
    /// Requests the thread has finished with (written, or refused after an error).
    finished: Arc<AtomicU64>,
}

/// What the writer thread reports after each group.
pub type Durable = Result<PersistId, WalError>;

/// What [`GroupCommit::write_here`] did with a request.
#[derive(Debug)]
pub enum WriteHere {
    /// Written on the calling thread: its id once durable, or the error that stopped the log.
    Written(Durable),
    /// Handed back: the group-commit thread has requests of its own to finish first.
    Busy(PersistRequest),
}

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
        let wal = Arc::new(Mutex::new(wal));
        let finished = Arc::new(AtomicU64::new(0));
        let thread = {
            let (wal, finished) = (Arc::clone(&wal), Arc::clone(&finished));
            thread::Builder::new()
                .name("raft-wal-writer".into())
                .spawn(move || run(&wal, receiver, &finished, on_durable))?
        };
        Ok(GroupCommit {
            sender: Some(sender),
            thread: Some(thread),
            wal: Some(wal),
            handed: AtomicU64::new(0),
            finished,
        })
    }

    /// Queues a request to be made durable; blocks while [`QUEUED_REQUESTS_MAX`] requests wait.
    pub fn submit(&self, request: PersistRequest) -> Result<(), WalError> {
        let stopped = || WalError::Stopped("the group-commit thread has exited".into());
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        self.handed.fetch_add(1, Ordering::Relaxed);
        sender.send(request).map_err(|_| stopped())
    }

    /// Whether the thread has finished every request handed to it, so that
    /// [`GroupCommit::write_here`] would write now.
    pub fn is_idle(&self) -> bool {
        self.finished.load(Ordering::Acquire) == self.handed.load(Ordering::Relaxed)
    }

    /// Writes `request` on the calling thread if the group-commit thread has finished every
    /// request handed to it (so the order holds); otherwise hands it back untouched, to be
    /// submitted. `on_durable` is not called for a request written here. Blocks for the
    /// write and its fdatasync.
    pub fn write_here(&mut self, request: PersistRequest) -> WriteHere {
        let idle = self.is_idle();
        let Some(wal) = self.wal.as_ref().filter(|_| idle) else {
            return WriteHere::Busy(request);
        };
        let id = request.id;
        WriteHere::Written(match wal.lock() {
            Ok(mut wal) => wal.write([request]).map(|_| id),
            Err(_) => Err(WalError::Stopped("the group-commit thread panicked".into())),
        })
    }

    /// Queues a request without blocking: a full queue hands it back as `Ok(Some(request))`,
    /// for a caller that must not block (an async event loop) to offer again after the next
    /// durable report.
    pub fn try_submit(&self, request: PersistRequest) -> Result<Option<PersistRequest>, WalError> {
        let stopped = || WalError::Stopped("the group-commit thread has exited".into());
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        self.handed.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(request) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full(request)) => {
                self.handed.fetch_sub(1, Ordering::Relaxed);
                Ok(Some(request))
            }
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
        let panicked = || WalError::Stopped("the group-commit thread panicked".into());
        thread.join().map_err(|_| panicked())?;
        let wal = self.wal.take().ok_or_else(panicked)?;
        // The thread is gone, and with it the only other handle on the log.
        let wal = Arc::try_unwrap(wal).map_err(|_| panicked())?;
        wal.into_inner().map_err(|_| panicked())
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
    wal: &Mutex<Wal>,
    receiver: Receiver<PersistRequest>,
    finished: &AtomicU64,
    mut on_durable: impl FnMut(Durable),
) {
    while let Ok(first) = receiver.recv() {
        let mut group_bytes = request_bytes(&first);
        let mut group = vec![first];
        while group_bytes < GROUP_BYTES_MAX {
            let Ok(next) = receiver.try_recv() else { break };
            group_bytes += request_bytes(&next);
            group.push(next);
        }
        let requests = group.len() as u64;
        let written = match wal.lock() {
            Ok(mut wal) => wal.write(group),
            Err(_) => Err(WalError::Stopped("the log's lock is poisoned".into())),
        };
        finished.fetch_add(requests, Ordering::Release);
        match written {
            Ok(Some(id)) => on_durable(Ok(id)),
            Ok(None) => {}
            Err(error) => {
                on_durable(Err(error));
                break;
            }
        }
    }
}

fn request_bytes(request: &PersistRequest) -> u64 {
    let entries: u64 = request.entries.iter().map(|entry| entry.size_bytes()).sum();
    let snapshot = request
        .snapshot
        .as_ref()
        .map_or(0, |snapshot| snapshot.data.len() as u64);
    entries + snapshot
}
