//! The apply loop: feeds the store from the node's apply channel, answers the waiting
//! writes, tells the reads how far the state is applied, and starts snapshots.
//!
//! ```text
//!  ApplyMsg::Command ─► StateMachine::apply_decoded ─► Waiters::applied ─┐
//!  ApplyMsg::Configuration / Noop ─► skip (and follow the configuration) ├─► answers handed over,
//!  ApplyMsg::Snapshot ─► StateMachine::restore ─► waiters: unknown       │   applied index sent
//!  bytes since the last snapshot ≥ spacing ─► snapshot_image ─► compact (off this path)
//!    spacing = the larger of --snapshot-threshold-bytes and the state's size at the last
//!    snapshot, staggered
//!  Applied.changes ─► WatchHub::publish (never waits); a snapshot ─► WatchHub::restored;
//!  after each batch ─► WatchHub::reached(revision)
//!  lease grants, revokes, checkpoints ─► the lessor (before the write is answered); the
//!  leader's own Noop ─► the lessor promoted; a snapshot or leadership lost ─► demoted
//!  HashCheck ─► snapshot_image at its index ─► StateHashes::begin (hashed off this path)
//! ```

use std::sync::atomic::AtomicBool;
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

/// Bytes a snapshot spends on each version it holds beyond its key's and value's own bytes
/// (field tags, the revisions and version as varints, the key again for a past version): an
/// estimate, within a few bytes for the keys of tens of bytes clients use.
const VERSION_RECORD_OVERHEAD_BYTES: u64 = 32;

/// About the bytes a snapshot of `state` encodes to: every held version's key and value and
/// its record's overhead. O(1): the store keeps these counts.
pub(super) fn state_bytes(state: &StateMachine) -> u64 {
    let versions = state.keys() as u64 + state.history_versions() as u64;
    state.data_bytes() + state.history_bytes() + versions * VERSION_RECORD_OVERHEAD_BYTES
}

/// Bytes of log to apply before the next snapshot: the configured threshold, or the state's
/// size at the last snapshot when that is larger. A snapshot costs about the state's size to
/// copy, encode and write; with a fixed spacing, a state that grows (history kept, more keys)
/// made every snapshot dearer at the same frequency, so the share of the nodes' time spent on
/// snapshots grew without bound over a long run: with retention off and a 256 KiB threshold,
/// as the chaos soaks run, a 15 MB snapshot every second of a 750 writes/s load after a
/// minute. Spaced by the last snapshot's size, the bytes snapshotted stay within a small
/// multiple of the bytes applied (the Raft thesis, §5.1.4, spaces snapshots by a multiple of
/// the previous one's size for the same reason), and the log between two snapshots holds
/// about as many bytes as the state. The last snapshot's size, not the current state's: a
/// state that grows as fast as the log (every version kept) would otherwise never be
/// overtaken, and the log never compacted.
fn snapshot_spacing(configured: u64, last_snapshot_state_bytes: u64) -> u64 {
    configured.max(last_snapshot_state_bytes)
}

/// Feeds the state machine from the apply channel, answers waiters, takes snapshots.
pub(super) async fn apply_loop(
    server: Arc<KvServer>,
    mut messages: mpsc::Receiver<ApplyMsg>,
    applied: watch::Sender<u64>,
) {
    let mut bytes_since_snapshot = 0u64;
    let configured_threshold = server.config.snapshot_threshold_bytes;
    // One draw for the node's life: its snapshots stay apart from the other nodes'.
    let stagger: u64 = rand::random();
    // Until the first snapshot, the configured threshold alone; then also the state's size
    // at the last snapshot (`snapshot_spacing`).
    let mut snapshot_threshold = staggered_threshold(configured_threshold, stagger);
    let snapshot_in_flight = Arc::new(AtomicBool::new(false));
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
                if let Some(state_size) = start_snapshot(&server, index, &snapshot_in_flight) {
                    bytes_since_snapshot = 0;
                    snapshot_threshold = staggered_threshold(
                        snapshot_spacing(configured_threshold, state_size),
                        stagger,
                    );
                }
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
            let hash_check = matches!(
                &decoded,
                Ok(Command {
                    operation: Operation::HashCheck,
                    ..
                })
            );
            let (applied, image) = {
                let mut state = server.state();
                let applied = state.apply_decoded(index.0, term.0, decoded);
                // The image of the state at this very index (O(1)), taken under the same lock.
                (applied, hash_check.then(|| state.snapshot_image()))
            };
            // Hashed off this path; recorded before the index is announced as applied.
            if let Some(image) = image {
                server.state_hashes.begin(image);
            }
            // Before the write is answered: a client that saw its grant may keep it alive at
            // once.
            if let Some(operation) = &lease_operation {
                server.lessor_applied(operation, &applied.outcome);
            }
            *bytes_since_snapshot += data.len() as u64;
            // Published after the state's lock is released and before the next entry is
            // applied, so the window holds every revision in order.
            if let Some(changes) = applied.changes {
                server.watch_hub.publish(changes);
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn put(key: String, value_bytes: usize) -> Bytes {
        Command {
            session: None,
            operation: Operation::Put {
                key,
                value: Bytes::from(vec![b'v'; value_bytes]),
                lease: 0,
            },
            request_id: None,
        }
        .encode()
    }

    #[test]
    fn the_state_size_estimate_is_near_the_encoded_snapshot_with_and_without_history() {
        let mut state = StateMachine::new(16);
        let mut index = 0;
        // 2,000 keys, then overwrites of a quarter of them: current values and history.
        for round in 0..3 {
            for number in 0..2000u64 {
                if round > 0 && number % 4 != 0 {
                    continue;
                }
                index += 1;
                state.apply(index, &put(format!("bench-{number:05}"), 100 + round * 50));
            }
        }
        let estimate = state_bytes(&state) as f64;
        let encoded = state.snapshot().len() as f64;
        println!("estimate {estimate} bytes, snapshot {encoded} bytes");
        assert!(
            (0.75..1.33).contains(&(estimate / encoded)),
            "estimate {estimate} against {encoded}"
        );
    }

    #[test]
    fn snapshots_are_spaced_by_the_threshold_or_the_last_state_whichever_is_larger() {
        assert_eq!(snapshot_spacing(64 << 20, 1 << 20), 64 << 20);
        assert_eq!(snapshot_spacing(256 << 10, 15 << 20), 15 << 20);
        assert_eq!(snapshot_spacing(1, 0), 1);
    }

    /// Applies `entries` entries of `entry` bytes, the state growing by `growth` bytes for
    /// each, snapshotting by the apply loop's rule; returns (snapshots, bytes snapshotted,
    /// the most bytes applied between two snapshots).
    fn simulate(threshold: u64, entries: u64, entry: u64, growth: u64) -> (u64, u64, u64) {
        let (mut state, mut since, mut last_size) = (0u64, 0u64, 0u64);
        let (mut snapshots, mut snapshotted, mut longest_gap) = (0u64, 0u64, 0u64);
        for _ in 0..entries {
            state += growth;
            since += entry;
            if since >= snapshot_spacing(threshold, last_size) {
                longest_gap = longest_gap.max(since);
                since = 0;
                last_size = state;
                snapshotted += state;
                snapshots += 1;
            }
        }
        (snapshots, snapshotted, longest_gap)
    }

    /// A state that keeps every version grows with every byte applied. With a fixed spacing
    /// the bytes snapshotted grow with the square of the bytes applied; spaced by the last
    /// snapshot's size they stay within a small multiple of them, and snapshots go on being
    /// taken (the log stays compacted) however fast the state grows.
    #[test]
    fn the_bytes_snapshotted_stay_proportional_to_the_bytes_applied_as_the_state_grows() {
        let threshold = 256 * 1024;
        let (entries, entry) = (200_000u64, 300u64);
        let applied = entries * entry;
        // For scale: a fixed spacing of the threshold snapshots a growing state this much.
        let fixed: u64 = (1..=applied / threshold).map(|n| n * threshold).sum();
        for growth in [entry, 3 * entry] {
            let (snapshots, snapshotted, longest_gap) = simulate(threshold, entries, entry, growth);
            println!(
                "state growing {growth} B per {entry} B entry: {snapshots} snapshots, \
                 {snapshotted} bytes for {applied} applied, longest gap {longest_gap} \
                 (fixed spacing: {fixed} bytes)"
            );
            let ratio = growth / entry;
            assert!(
                snapshotted <= (ratio + 1) * 2 * applied + threshold,
                "{snapshotted} bytes snapshotted for {applied} applied"
            );
            assert!(snapshots >= 3, "snapshots stopped: {snapshots}");
            // The log between two snapshots stays about as large as the state, no larger.
            assert!(longest_gap <= threshold.max(applied * ratio / 2) + entry);
        }
        // The state stops growing (retention reached): back to one snapshot per state's size.
        let (snapshots, _, longest_gap) = simulate(threshold, entries, entry, 0);
        assert_eq!(
            snapshots,
            applied / threshold,
            "fixed state: the threshold spaces them"
        );
        assert!(longest_gap < threshold + entry);
    }
}
