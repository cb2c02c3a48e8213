//! Snapshots the service takes: when (each node's staggered threshold) and how (encoded off
//! the apply path, then handed to the node to compact its log).

use std::sync::atomic::Ordering;
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
/// encodes to ([`super::apply::state_bytes`]), which spaces the next one.
pub(super) fn start_snapshot(server: &Arc<KvServer>, index: u64) -> u64 {
    let started = Instant::now();
    // Only the image is taken here, under the lock; encoding 25 MB takes about 100 ms, which
    // on this path stalled every write and read for as long.
    let (image, state_size) = {
        let state = server.state();
        (state.snapshot_image(), super::apply::state_bytes(&state))
    };
    let imaged_in = started.elapsed();
    tokio::spawn(compact(Arc::clone(server), index, image, imaged_in));
    state_size
}

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

/// Encodes `image` in the background and hands it to the node, retrying while the node has
/// not yet seen `index` applied (its applied report trails the apply channel by a moment).
/// `imaged_in`: how long taking the image held the apply path (logged).
async fn compact(server: Arc<KvServer>, index: u64, image: SnapshotImage, imaged_in: Duration) {
    let started = Instant::now();
    let Some(data) = encode_in_background(image).await else {
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
