//! Group commit: a thread that owns the node's [`LogStore`] and makes everything handed to it
//! while one write runs durable with the next one.
//!
//! ```text
//!  submit(request) ──► queue ──► storage thread: take all queued (up to a byte bound)
//!                                  ─► LogStore::write (one sync) ─► on_durable(last id)
//! ```
//!
//! With one request in flight at a time this is one sync per request; with many, the sync
//! cost is shared, so throughput grows with the offered load until the disk's bandwidth is
//! the limit.
//!
//! When the thread has written everything it was handed, the owner may write a request on
//! its own thread instead ([`StorageThread::write_here`]): two thread wake-ups fewer, which on
//! a virtual machine cost more than the write itself when requests come one at a time.
//!
//! Every write, here or on the thread, is timed into a [`LatencyHistogram`] the node exports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use raft_core::{LogStore, PersistId, PersistRequest};
use raft_wal::LatencyHistogram;

/// Bytes of entry payloads one group takes before it is written, so that one very busy moment
/// does not delay every acknowledgement behind a huge write.
const GROUP_BYTES_MAX: u64 = 16 << 20;

/// Requests that may wait for the thread; [`StorageThread::submit`] blocks while this many do,
/// which pushes back on the producer instead of queueing without bound.
const QUEUED_REQUESTS_MAX: usize = 4096;

/// Why the storage took no more writes: the store's error, as text for the operator (the node
/// stops on it either way), or the thread gone.
pub type WriteFailure = String;

/// What the thread reports after each group: the id of its last request (every earlier one is
/// durable too), or why it stopped.
pub type Durable = Result<PersistId, WriteFailure>;

/// What [`StorageThread::write_here`] did with a request.
#[derive(Debug)]
pub enum WriteHere {
    /// Written on the calling thread: its id once durable, or the error that stopped the store.
    Written(Durable),
    /// Handed back: the thread has requests of its own to finish first.
    Busy(PersistRequest),
}

/// Handle on the storage thread. Dropping it stops the thread after the queued requests are
/// written.
pub struct StorageThread<S: LogStore> {
    sender: Option<SyncSender<PersistRequest>>,
    thread: Option<JoinHandle<()>>,
    /// Locked by the thread while it writes a group and by [`StorageThread::write_here`];
    /// `None` once handed back by [`StorageThread::shutdown`].
    store: Option<Arc<Mutex<S>>>,
    /// Requests handed to the thread.
    handed: AtomicU64,
    /// Requests the thread has finished with (written, or refused after an error).
    finished: Arc<AtomicU64>,
    /// How long each write took.
    write_latency: Arc<LatencyHistogram>,
}

fn poisoned() -> WriteFailure {
    "a storage write panicked".to_string()
}

fn gone() -> WriteFailure {
    "the storage thread has exited".to_string()
}

impl<S: LogStore> StorageThread<S> {
    /// Moves `store` to a new thread. `on_durable` is called on that thread after each group
    /// (see [`Durable`]); after an error no more requests are written. The next group waits for
    /// `on_durable` to return, so it should only hand the id on (send it to a channel, wake a
    /// task), not do work of its own.
    pub fn spawn(
        store: S,
        write_latency: Arc<LatencyHistogram>,
        on_durable: impl FnMut(Durable) + Send + 'static,
    ) -> std::io::Result<StorageThread<S>> {
        let (sender, receiver) = mpsc::sync_channel(QUEUED_REQUESTS_MAX);
        let store = Arc::new(Mutex::new(store));
        let finished = Arc::new(AtomicU64::new(0));
        let thread = {
            let (store, finished, latency) = (
                Arc::clone(&store),
                Arc::clone(&finished),
                Arc::clone(&write_latency),
            );
            thread::Builder::new()
                .name("raft-storage".into())
                .spawn(move || run(&store, receiver, &finished, &latency, on_durable))?
        };
        Ok(StorageThread {
            sender: Some(sender),
            thread: Some(thread),
            store: Some(store),
            handed: AtomicU64::new(0),
            finished,
            write_latency,
        })
    }

    /// Queues a request to be made durable; blocks while [`QUEUED_REQUESTS_MAX`] requests wait.
    pub fn submit(&self, request: PersistRequest) -> Result<(), WriteFailure> {
        let sender = self.sender.as_ref().ok_or_else(gone)?;
        self.handed.fetch_add(1, Ordering::Relaxed);
        sender.send(request).map_err(|_| gone())
    }

    /// Whether the thread has finished every request handed to it, so that
    /// [`StorageThread::write_here`] would write now.
    pub fn is_idle(&self) -> bool {
        self.finished.load(Ordering::Acquire) == self.handed.load(Ordering::Relaxed)
    }

    /// Writes `request` on the calling thread if the storage thread has finished every request
    /// handed to it (so the order holds); otherwise hands it back untouched, to be submitted.
    /// `on_durable` is not called for a request written here. Blocks for the write and its
    /// sync.
    pub fn write_here(&mut self, request: PersistRequest) -> WriteHere {
        let idle = self.is_idle();
        let Some(store) = self.store.as_ref().filter(|_| idle) else {
            return WriteHere::Busy(request);
        };
        let id = request.id;
        WriteHere::Written(match store.lock() {
            Ok(mut store) => {
                timed_write(&mut *store, vec![request], &self.write_latency).map(|()| id)
            }
            Err(_) => Err(poisoned()),
        })
    }

    /// Queues a request without blocking: a full queue hands it back as `Ok(Some(request))`,
    /// for a caller that must not block (an async event loop) to offer again after the next
    /// durable report.
    pub fn try_submit(
        &self,
        request: PersistRequest,
    ) -> Result<Option<PersistRequest>, WriteFailure> {
        let sender = self.sender.as_ref().ok_or_else(gone)?;
        self.handed.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(request) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full(request)) => {
                self.handed.fetch_sub(1, Ordering::Relaxed);
                Ok(Some(request))
            }
            Err(TrySendError::Disconnected(_)) => Err(gone()),
        }
    }

    /// Writes what is queued, stops the thread and hands the store back.
    pub fn shutdown(mut self) -> Result<S, WriteFailure> {
        self.stop()
    }

    fn stop(&mut self) -> Result<S, WriteFailure> {
        self.sender = None;
        let thread = self.thread.take().ok_or_else(gone)?;
        thread.join().map_err(|_| poisoned())?;
        let store = self.store.take().ok_or_else(gone)?;
        // The thread is gone, and with it the only other handle on the store.
        let store = Arc::try_unwrap(store).map_err(|_| poisoned())?;
        store.into_inner().map_err(|_| poisoned())
    }
}

impl<S: LogStore> Drop for StorageThread<S> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

/// One durable write, timed.
fn timed_write<S: LogStore>(
    store: &mut S,
    requests: Vec<PersistRequest>,
    latency: &LatencyHistogram,
) -> Result<(), WriteFailure> {
    let started = Instant::now();
    let written = store.write(requests).map_err(|error| error.to_string());
    latency.record(started.elapsed());
    written
}

fn run<S: LogStore>(
    store: &Mutex<S>,
    receiver: Receiver<PersistRequest>,
    finished: &AtomicU64,
    latency: &LatencyHistogram,
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
        let last_id = group.iter().map(|request| request.id).max();
        let written = match store.lock() {
            Ok(mut store) => timed_write(&mut *store, group, latency),
            Err(_) => Err(poisoned()),
        };
        finished.fetch_add(requests, Ordering::Release);
        match (written, last_id) {
            (Ok(()), Some(id)) => on_durable(Ok(id)),
            (Ok(()), None) => {}
            (Err(error), _) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use raft_core::{
        Configuration, Entry, EntryKind, Index, LogId, NodeId, SharedMemStorage, Storage, Term,
    };
    use std::sync::mpsc as std_mpsc;

    fn entry(index: u64) -> Entry {
        Entry {
            id: LogId::new(Term(1), Index(index)),
            kind: EntryKind::Normal,
            data: Bytes::from(format!("command {index}")),
        }
    }

    /// A request to append entry `index` of term 1, with id `index`.
    fn request(index: u64) -> PersistRequest {
        PersistRequest {
            id: index,
            snapshot: None,
            entries: vec![entry(index)],
            hard_state: None,
        }
    }

    fn store() -> SharedMemStorage {
        SharedMemStorage::new(Configuration::new([NodeId(1)]))
    }

    fn stored(store: &SharedMemStorage) -> Vec<Entry> {
        let last = store.last_index().expect("memory reads");
        store
            .entries(Index(1), last.next(), u64::MAX)
            .expect("memory reads")
    }

    /// A storage thread whose reports each wait until the returned sender sends or is dropped,
    /// and then go to the returned receiver. The sender is bound after the thread, so a failing
    /// assertion drops it first and lets the thread go before it is joined.
    fn thread_holding_its_reports(
        store: SharedMemStorage,
    ) -> (
        StorageThread<SharedMemStorage>,
        std_mpsc::Sender<()>,
        std_mpsc::Receiver<u64>,
    ) {
        let (release_sender, release) = std_mpsc::channel::<()>();
        let (done_sender, done) = std_mpsc::channel();
        let thread = StorageThread::spawn(store, Arc::default(), move |result| {
            let _ = release.recv();
            done_sender
                .send(result.expect("durable"))
                .expect("test listens");
        })
        .expect("thread starts");
        (thread, release_sender, done)
    }

    #[test]
    fn every_group_is_reported_in_order_and_timed() {
        let latency = Arc::new(LatencyHistogram::new());
        let (done_sender, done) = std_mpsc::channel();
        let thread = StorageThread::spawn(store(), Arc::clone(&latency), move |result| {
            done_sender
                .send(result.expect("durable"))
                .expect("test listens");
        })
        .expect("thread starts");
        for index in 1..=500 {
            thread.submit(request(index)).expect("queued");
        }
        let mut reported = Vec::new();
        while reported.last() != Some(&500) {
            reported.push(done.recv().expect("a report per group"));
        }
        assert!(
            reported.windows(2).all(|pair| pair[0] < pair[1]),
            "{reported:?}"
        );
        assert_eq!(
            latency.snapshot().count,
            reported.len() as u64,
            "one timed write per group"
        );
        let store = thread.shutdown().expect("stops");
        assert_eq!(stored(&store), (1..=500).map(entry).collect::<Vec<_>>());
    }

    #[test]
    fn try_submit_hands_a_request_back_when_the_queue_is_full_and_loses_nothing() {
        // The thread holds its first report until the test lets it go, so the queue fills.
        let (thread, release_sender, done) = thread_holding_its_reports(store());
        let mut index = 1;
        let handed_back = loop {
            match thread.try_submit(request(index)).expect("the thread runs") {
                None => index += 1,
                Some(back) => break back,
            }
            // The thread may have taken many requests into its first group before it stopped.
            assert!(index < 1_000_000, "the queue never filled");
        };
        assert_eq!(
            handed_back.id, index,
            "the refused request comes back whole"
        );
        // Once the thread moves on, the refused request is accepted and everything is written.
        drop(release_sender);
        thread
            .submit(handed_back)
            .expect("queued once there is room");
        while done.recv().expect("a report per group") != index {}
        let store = thread.shutdown().expect("stops");
        assert_eq!(stored(&store), (1..=index).map(entry).collect::<Vec<_>>());
    }

    #[test]
    fn write_here_keeps_the_order_waiting_while_the_thread_has_work_and_writing_once_it_is_idle() {
        let shared = store();
        let (mut thread, release_sender, done) = thread_holding_its_reports(shared.clone());
        thread.submit(request(1)).expect("queued");
        // Once the first is written the thread waits in its report; the second stays queued.
        while shared.last_index().expect("readable") < Index(1) {
            std::thread::yield_now();
        }
        thread.submit(request(2)).expect("queued");
        let WriteHere::Busy(handed_back) = thread.write_here(request(3)) else {
            panic!("written while the thread had an unwritten request");
        };
        assert_eq!(handed_back, request(3), "the request comes back whole");
        drop(release_sender);
        assert_eq!(done.recv().expect("first report"), 1);
        assert_eq!(done.recv().expect("second report"), 2);
        let WriteHere::Written(written) = thread.write_here(handed_back) else {
            panic!("handed back though the thread is idle");
        };
        assert_eq!(written.expect("durable"), 3);
        assert!(
            done.try_recv().is_err(),
            "a request written here is not reported by the thread"
        );
        thread.submit(request(4)).expect("queued");
        assert_eq!(done.recv().expect("fourth report"), 4);
        let store = thread.shutdown().expect("stops");
        assert_eq!(stored(&store), (1..=4).map(entry).collect::<Vec<_>>());
    }
}
