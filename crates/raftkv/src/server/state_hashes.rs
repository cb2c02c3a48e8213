//! This node's hashes of its state at the indexes of hash-check entries, taken off the apply
//! path, and the answer to "what is your hash at index I?".
//!
//! ```text
//!  apply loop: HashCheck applied at I ─► snapshot_image (O(1), under the state's lock)
//!     ─► StateHashes::begin(I, image): record I as hashing ─► a thread of its own (lower
//!        priority): SnapshotImage::digest ─► record I as hashed ─► wake the waiters
//!     (HASHINGS_IN_FLIGHT_MAX hashings at once: one more is recorded as not hashed)
//!  at(I, applied index): hashed │ hashing or I not applied yet: pending │ applied past I
//!                                without a record: not hashed │ before the records kept:
//!                                forgotten
//! ```
//!
//! The records live in memory only, the last [`RECORDS_MAX`]: a node restarted replays the
//! hash checks still in its log and hashes again; those its snapshot covers are not hashed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use raftkv_client::api::StateHashState;
use tokio::sync::watch;

use crate::store::SnapshotImage;

/// Most hashes kept (the newest): a check compares the hashes at its own index within
/// seconds, so a few are enough to serve the checks that overlap.
pub(super) const RECORDS_MAX: usize = 16;

/// Most states hashed at once. A hash check comes every few minutes; more than two at once
/// means they come faster than the node hashes, and each holds an image of the state (its
/// history's log records copied) until it is hashed.
const HASHINGS_IN_FLIGHT_MAX: usize = 2;

/// One node's hash of its state at one applied index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateHash {
    /// SHA-256 of the state's snapshot encoding ([`SnapshotImage::digest`]).
    pub digest: [u8; 32],
    /// The store's revision at that index.
    pub revision: u64,
}

impl StateHash {
    /// The digest in lowercase hex, as the API gives it.
    pub fn hex(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(2 * self.digest.len());
        for byte in self.digest {
            // Writing to a String cannot fail.
            let _ = write!(text, "{byte:02x}");
        }
        text
    }
}

/// Where this node stands on its hash at one index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateHashAnswer {
    /// Hashed.
    Hashed(StateHash),
    /// Not applied yet, or being hashed.
    Pending,
    /// Applied without a hash there (see [`StateHashState::NotHashed`]).
    NotHashed,
    /// Before the hashes kept.
    Forgotten,
}

impl StateHashAnswer {
    /// The answer's state in the API's terms.
    pub fn state(&self) -> StateHashState {
        match self {
            StateHashAnswer::Hashed(_) => StateHashState::Hashed,
            StateHashAnswer::Pending => StateHashState::Pending,
            StateHashAnswer::NotHashed => StateHashState::NotHashed,
            StateHashAnswer::Forgotten => StateHashState::Forgotten,
        }
    }
}

/// A hash check's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Record {
    /// A thread is hashing the state at this index.
    Hashing,
    /// Done.
    Hashed(StateHash),
    /// Not hashed: too many hashings were in flight, or the hashing thread failed.
    Skipped,
}

/// The records, shared with the hashing threads.
#[derive(Debug)]
struct Shared {
    /// By index, the newest [`RECORDS_MAX`].
    /// Invariant: at most `RECORDS_MAX` entries.
    records: Mutex<BTreeMap<u64, Record>>,
    /// Bumped whenever a record changes, to wake the requests waiting for one.
    changed: watch::Sender<u64>,
    /// Hashing threads running.
    /// Invariant: at most [`HASHINGS_IN_FLIGHT_MAX`].
    in_flight: AtomicUsize,
}

impl Shared {
    fn records(&self) -> MutexGuard<'_, BTreeMap<u64, Record>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `record` at `index` and wakes the waiters.
    fn set(&self, index: u64, record: Record) {
        {
            let mut records = self.records();
            records.insert(index, record);
            while records.len() > RECORDS_MAX {
                records.pop_first();
            }
        }
        self.changed.send_modify(|version| *version += 1);
    }
}

/// This node's hashes of its state at hash checks' indexes.
#[derive(Debug)]
pub(super) struct StateHashes {
    shared: Arc<Shared>,
}

impl StateHashes {
    pub(super) fn new() -> StateHashes {
        StateHashes {
            shared: Arc::new(Shared {
                records: Mutex::new(BTreeMap::new()),
                changed: watch::Sender::new(0),
                in_flight: AtomicUsize::new(0),
            }),
        }
    }

    /// Starts hashing `image`, the state at the hash check just applied, on a thread of its
    /// own; the apply loop goes on at once. Recorded before this returns, so that a request
    /// that sees the index applied finds the record.
    pub(super) fn begin(&self, image: SnapshotImage) {
        let index = image.applied_index();
        let revision = image.revision();
        let shared = &self.shared;
        if shared.in_flight.fetch_add(1, Ordering::AcqRel) >= HASHINGS_IN_FLIGHT_MAX {
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(
                index,
                "state not hashed: earlier hashes are still being taken"
            );
            shared.set(index, Record::Skipped);
            return;
        }
        shared.set(index, Record::Hashing);
        let thread_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("state-hash".into())
            .spawn(move || {
                super::idle::lower_this_threads_priority();
                let started = std::time::Instant::now();
                let digest = image.digest();
                drop(image);
                let hash = StateHash { digest, revision };
                tracing::debug!(
                    index,
                    revision,
                    hash = %hash.hex(),
                    hash_us = started.elapsed().as_micros() as u64,
                    "state hashed"
                );
                // The slot is free before the hash is seen: whoever waited for it may start
                // the next one at once.
                thread_shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                thread_shared.set(index, Record::Hashed(hash));
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, index, "cannot start the state's hashing thread");
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            shared.set(index, Record::Skipped);
        }
    }

    /// The hash at `index`, for a node that applied through `applied_index`.
    pub(super) fn at(&self, index: u64, applied_index: u64) -> StateHashAnswer {
        let records = self.shared.records();
        match records.get(&index) {
            Some(Record::Hashed(hash)) => StateHashAnswer::Hashed(*hash),
            Some(Record::Hashing) => StateHashAnswer::Pending,
            Some(Record::Skipped) => StateHashAnswer::NotHashed,
            None if index > applied_index => StateHashAnswer::Pending,
            None => match records.first_key_value() {
                Some((oldest, _)) if index < *oldest && records.len() == RECORDS_MAX => {
                    StateHashAnswer::Forgotten
                }
                _ => StateHashAnswer::NotHashed,
            },
        }
    }

    /// A receiver that sees every change of the records, to wait for one.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Command, Operation, StateMachine};

    fn image_at(index: u64) -> SnapshotImage {
        let mut machine = StateMachine::new(4);
        let check = Command {
            session: None,
            operation: Operation::HashCheck,
            request_id: None,
        };
        machine.apply(index, &check.encode());
        machine.snapshot_image()
    }

    async fn hashed(hashes: &StateHashes, index: u64) -> StateHash {
        let mut changed = hashes.subscribe();
        loop {
            match hashes.at(index, index) {
                StateHashAnswer::Hashed(hash) => return hash,
                StateHashAnswer::Pending => {}
                other => panic!("index {index} will not be hashed: {other:?}"),
            }
            changed.changed().await.expect("the sender lives");
        }
    }

    #[tokio::test]
    async fn a_hash_is_pending_until_taken_and_indexes_without_a_check_are_not_hashed() {
        let hashes = StateHashes::new();
        assert_eq!(hashes.at(5, 4), StateHashAnswer::Pending, "not applied yet");
        assert_eq!(
            hashes.at(3, 4),
            StateHashAnswer::NotHashed,
            "no check there"
        );
        let image = image_at(5);
        let expected = image.digest();
        hashes.begin(image);
        assert!(matches!(
            hashes.at(5, 5),
            StateHashAnswer::Pending | StateHashAnswer::Hashed(_)
        ));
        let hash = hashed(&hashes, 5).await;
        assert_eq!(hash.digest, expected);
        assert_eq!(hash.revision, 1);
        assert_eq!(hash.hex().len(), 64);
        assert_eq!(hashes.at(4, 9), StateHashAnswer::NotHashed);
    }

    #[tokio::test]
    async fn only_the_newest_records_are_kept_and_older_indexes_are_forgotten() {
        let hashes = StateHashes::new();
        let last = RECORDS_MAX as u64 + 4;
        for index in 1..=last {
            hashes.begin(image_at(index * 10));
            hashed(&hashes, index * 10).await;
        }
        let oldest_kept = (last - RECORDS_MAX as u64 + 1) * 10;
        assert!(matches!(
            hashes.at(oldest_kept, last * 10),
            StateHashAnswer::Hashed(_)
        ));
        assert_eq!(
            hashes.at(oldest_kept - 10, last * 10),
            StateHashAnswer::Forgotten
        );
        assert_eq!(
            hashes.at(oldest_kept + 1, last * 10),
            StateHashAnswer::NotHashed,
            "between two checks kept: no check there"
        );
        assert!(hashes.shared.records().len() <= RECORDS_MAX);
    }
}
