//! Snapshots the service takes: when (each node's staggered threshold, one at a time) and how
//! (an O(1) image on the apply path, encoded on a thread that runs only when a core is idle,
//! then handed to the node to compact its log).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{CompactError, Index};
use raft_node::NodeError;

use super::KvServer;
use crate::store::SnapshotImage;

/// This node's snapshot threshold: `configured` scaled by a factor in [0.75, 1.25) that `draw`
/// picks. The nodes of a cluster apply the same entries at about the same moment, so with one
/// threshold they all took their snapshots together, and each log's writer stalled writing its
/// snapshot file (a 25 MB state: about 0.2 s) at the same time as the others: no write could
/// commit meanwhile. Staggered, a majority goes on writing while one node snapshots.
pub(super) fn staggered_threshold(configured: u64, draw: u64) -> u64 {
    let quarter = configured / 4;
    let offset = match quarter {
        0 => 0,
        _ => draw % (2 * quarter),
    };
    (configured - quarter + offset).max(1)
}

/// Starts a snapshot of the state at `index` (just applied): takes its image here, on the
/// apply path, and leaves the rest to a task of its own. Returns about the bytes the snapshot
/// encodes to ([`super::apply::state_bytes`]), which spaces the next one; `None`, starting
/// nothing, while the previous one (`in_flight`) is not done: encodings that pile up would
/// each hold an image and take turns for the same idle time.
pub(super) fn start_snapshot(
    server: &Arc<KvServer>,
    index: u64,
    in_flight: &Arc<AtomicBool>,
) -> Option<u64> {
    let done = InFlight::claim(in_flight)?;
    let started = Instant::now();
    // Only the image is taken here, under the lock; encoding 25 MB takes about 100 ms, which
    // on this path stalled every write and read for as long.
    let (image, state_size) = {
        let state = server.state();
        (state.snapshot_image(), super::apply::state_bytes(&state))
    };
    let imaged_in = started.elapsed();
    let patience = idle_encoding_patience(state_size);
    let server = Arc::clone(server);
    tokio::spawn(async move {
        compact(server, index, image, imaged_in, patience).await;
        drop(done);
    });
    Some(state_size)
}

/// A snapshot's in-flight mark, cleared when dropped (so also by a task that panics).
struct InFlight(Arc<AtomicBool>);

impl InFlight {
    /// Sets the mark; `None` if it is set already.
    fn claim(mark: &Arc<AtomicBool>) -> Option<InFlight> {
        match mark.swap(true, Ordering::AcqRel) {
            true => None,
            false => Some(InFlight(Arc::clone(mark))),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// How long an encoding at idle priority may take before it is taken for starved:
/// [`IDLE_ENCODING_PATIENCE_BASE`] plus the state at [`IDLE_ENCODING_SLOWEST_RATE`].
fn idle_encoding_patience(state_bytes: u64) -> Duration {
    IDLE_ENCODING_PATIENCE_BASE
        + Duration::from_secs_f64(state_bytes as f64 / IDLE_ENCODING_SLOWEST_RATE)
}

/// See [`idle_encoding_patience`].
const IDLE_ENCODING_PATIENCE_BASE: Duration = Duration::from_secs(1);

/// Bytes per second below which an idle-priority encoding counts as starved. A core encodes
/// 50 to 100 MB/s; a sixth of that means the machine has had almost no idle time.
const IDLE_ENCODING_SLOWEST_RATE: f64 = 16e6;

/// How much lower than the server's own the encoding thread's priority is (`nice`). Encoding
/// a large state takes a core for a good part of a second; at the same priority it took
/// turns with the threads answering requests (on a machine with few cores, one of them).
const ENCODE_NICENESS: libc::c_int = 10;

/// `image`'s bytes, encoded on a thread of its own at a lower priority ([`ENCODE_NICENESS`]);
/// `None` if that thread could not start or panicked.
pub(super) async fn encode_in_background(image: SnapshotImage) -> Option<Bytes> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("snapshot-encode".into())
        .spawn(move || {
            lower_this_threads_priority();
            let _ = sender.send(image.encode());
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the snapshot's encoding thread");
        return None;
    }
    receiver.await.ok()
}

/// `image`'s bytes, encoded on a thread that runs only when a core would otherwise be idle
/// (Linux's `SCHED_IDLE`), so that requests never wait for it. A machine with no idle time
/// would starve it, and the log would grow meanwhile: past `patience` it is cancelled and
/// the encoding starts again at [`encode_in_background`]'s priority (an unprivileged thread
/// cannot leave `SCHED_IDLE`). `None` if no thread could start or the encoding panicked.
pub(super) async fn encode_when_idle(image: SnapshotImage, patience: Duration) -> Option<Bytes> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let (spare_sender, spare_receiver) = std::sync::mpsc::channel::<SnapshotImage>();
    let again = image.clone();
    let flag = Arc::clone(&cancelled);
    let spawned = std::thread::Builder::new()
        .name("snapshot-encode-idle".into())
        .spawn(move || {
            run_this_thread_only_when_idle();
            let _ = sender.send(image.encode_unless_cancelled(&flag));
            // The waiting side's clone comes back to be dropped here with this one: whichever
            // goes last frees every node the live store stopped sharing since the image was
            // taken (tens of MB at a high write rate), a burst of work for this thread and not
            // for a runtime worker answering requests. Taken by the fallback instead, it is
            // dropped on the fallback's thread.
            let spare = spare_receiver.recv();
            let dropping = Instant::now();
            drop(image);
            drop(spare);
            tracing::debug!(
                drop_us = dropping.elapsed().as_micros() as u64,
                "the snapshot's image dropped"
            );
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the snapshot's idle encoding thread");
        return encode_in_background(again).await;
    }
    match tokio::time::timeout(patience, receiver).await {
        Ok(Ok(encoded)) => {
            let _ = spare_sender.send(again);
            encoded
        }
        // The thread panicked.
        Ok(Err(_)) => None,
        Err(_) => {
            drop(spare_sender);
            cancelled.store(true, Ordering::Relaxed);
            tracing::info!(
                patience_ms = patience.as_millis() as u64,
                "the snapshot's encoding found too little idle time; encoding it at low priority"
            );
            encode_in_background(again).await
        }
    }
}

/// Puts the calling thread in the `SCHED_IDLE` class (Linux); where that is refused or
/// unknown, lowers its priority by [`ENCODE_NICENESS`] instead.
fn run_this_thread_only_when_idle() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a plain system call on the calling thread (pid 0); `param` outlives it.
        let refused = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0;
        if !refused {
            return;
        }
    }
    lower_this_threads_priority();
}

/// Lowers the calling thread's scheduling priority by [`ENCODE_NICENESS`] (Linux schedules
/// threads, so the rest of the process keeps its own); best effort: unchanged elsewhere or if
/// refused.
pub(super) fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id, no memory handed over.
        unsafe {
            let thread = libc::gettid();
            let current = libc::getpriority(libc::PRIO_PROCESS, thread as libc::id_t);
            libc::setpriority(
                libc::PRIO_PROCESS,
                thread as libc::id_t,
                current + ENCODE_NICENESS,
            );
        }
    }
}

/// Encodes `image` when a core is idle ([`encode_when_idle`]) and hands it to the node,
/// retrying while the node has not yet seen `index` applied (its applied report trails the
/// apply channel by a moment). `imaged_in`: how long taking the image held the apply path
/// (logged).
async fn compact(
    server: Arc<KvServer>,
    index: u64,
    image: SnapshotImage,
    imaged_in: Duration,
    patience: Duration,
) {
    let started = Instant::now();
    let Some(data) = encode_when_idle(image, patience).await else {
        tracing::warn!(index, "snapshot not taken: encoding failed");
        return;
    };
    let encoded_in = started.elapsed();
    for _ in 0..100 {
        match server.node.snapshot(Index(index), data.clone()).await {
            Ok(()) => {
                server
                    .counters
                    .snapshots_taken_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    index,
                    bytes = data.len(),
                    image_us = imaged_in.as_micros() as u64,
                    encode_us = encoded_in.as_micros() as u64,
                    hand_over_us = (started.elapsed() - encoded_in).as_micros() as u64,
                    "snapshot taken"
                );
                return;
            }
            Err(reason @ NodeError::Compact(CompactError::NotApplied { .. })) => {
                tracing::debug!(%reason, index, "snapshot not taken yet");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => {
                tracing::warn!(%error, index, "snapshot not taken");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Command, Operation, StateMachine};

    #[test]
    fn one_snapshot_at_a_time() {
        let mark = Arc::new(AtomicBool::new(false));
        let first = InFlight::claim(&mark).expect("nothing in flight");
        assert!(
            InFlight::claim(&mark).is_none(),
            "a second while the first runs"
        );
        drop(first);
        assert!(
            InFlight::claim(&mark).is_some(),
            "the next once the first is done"
        );
    }

    fn image_of_a_few_keys() -> SnapshotImage {
        let mut machine = StateMachine::new(16);
        for (index, key) in (1..).zip(["a", "b", "c"]) {
            let command = Command {
                session: None,
                operation: Operation::Put {
                    key: key.into(),
                    value: Bytes::from_static(b"v"),
                    lease: 0,
                },
                request_id: None,
            };
            machine.apply(index, &command.encode());
        }
        machine.snapshot_image()
    }

    #[tokio::test]
    async fn an_idle_encoding_and_one_that_ran_out_of_patience_give_the_same_bytes() {
        let image = image_of_a_few_keys();
        let expected = image.encode();
        let patient = encode_when_idle(image.clone(), Duration::from_secs(60)).await;
        assert_eq!(patient.as_ref(), Some(&expected));
        let impatient = encode_when_idle(image.clone(), Duration::ZERO).await;
        assert_eq!(impatient.as_ref(), Some(&expected));
        assert_eq!(
            image.encode_unless_cancelled(&AtomicBool::new(true)),
            None,
            "cancelled before it began"
        );
    }

    #[test]
    fn each_node_snapshots_within_a_quarter_of_the_configured_threshold() {
        for configured in [1, 3, 4, 1000, 64 << 20] {
            for draw in [0, 1, 7, u64::MAX / 3, u64::MAX] {
                let threshold = staggered_threshold(configured, draw);
                assert!(threshold >= 1);
                assert!(
                    4 * threshold >= 3 * configured && 4 * threshold <= 5 * configured,
                    "{threshold} for {configured}"
                );
            }
        }
        let spread: std::collections::BTreeSet<u64> = (0..64)
            .map(|draw| staggered_threshold(1000, draw * 7919))
            .collect();
        assert!(spread.len() > 32, "draws spread the threshold: {spread:?}");
    }
}
