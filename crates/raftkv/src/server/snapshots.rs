//! Snapshots the service takes: when (each node's staggered threshold, one at a time) and how
//! (an O(1) image on the apply path, encoded on a thread that runs only when a core is idle,
//! then handed to the node to compact its log).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{CompactError, Index};
use raft_node::NodeError;

use super::{idle, KvServer};
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
    let patience = idle::patience_for(state_size);
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

/// Encodes `image` when a core is idle ([`idle::run_when_idle`]) and hands it to the node,
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
    let encode: idle::Cancellable<Bytes> =
        Arc::new(move |cancelled| image.encode_unless_cancelled(cancelled));
    let Some(data) = idle::run_when_idle("snapshot-encode", encode, patience).await else {
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
