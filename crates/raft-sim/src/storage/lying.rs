//! The lying disk as a store, for the storage conformance suite: the planted bug of
//! [`crate::DiskConfig::lie_about_durability`], which the suite must catch as the simulator's
//! checkers do.
//!
//! ```text
//!  LyingStore::write(batch) ─► the previous batch reaches the real store
//!                           ─► batch visible to readers at once (overlay in memory), and
//!                              acknowledged: it is still in flight
//!  LyingHarness::reopen     ─► in-flight batch lost ─► real store reopened ─► overlay copied
//!                              from it (copy_to_memory, as the simulator's lying disk does)
//! ```
//!
//! In the simulator the disk model finishes an acknowledged write at a virtual time; here, with
//! no clock, a write finishes when the next one arrives. Either way a crash loses a write the
//! store had called durable.

use std::mem;

use raft_core::testing::storage::{BoxError, StoreHarness};
use raft_core::{Configuration, LogStore, PersistRequest, SharedMemStorage};

use super::copy_to_memory;

/// Wraps the stores of another harness in [`LyingStore`]s.
pub(crate) struct LyingHarness<H>(pub(crate) H);

/// A store that acknowledges a write before it is durable.
pub(crate) struct LyingStore<S> {
    /// What really reached the disk.
    durable: S,
    /// What readers see: every acknowledged write.
    visible: SharedMemStorage,
    /// Acknowledged but not on the disk yet.
    in_flight: Vec<PersistRequest>,
}

impl<S: LogStore> LyingStore<S> {
    fn over(durable: S) -> Result<LyingStore<S>, BoxError> {
        let visible = SharedMemStorage::from_storage(copy_to_memory(&durable.reader())?);
        Ok(LyingStore {
            durable,
            visible,
            in_flight: Vec::new(),
        })
    }
}

impl<S: LogStore> LogStore for LyingStore<S> {
    type Reader = SharedMemStorage;
    type Error = S::Error;

    fn reader(&self) -> SharedMemStorage {
        self.visible.clone()
    }

    fn write(&mut self, requests: Vec<PersistRequest>) -> Result<(), S::Error> {
        self.durable.write(mem::take(&mut self.in_flight))?;
        let Ok(()) = self.visible.write(requests.clone());
        self.in_flight = requests;
        Ok(())
    }
}

impl<H: StoreHarness> StoreHarness for LyingHarness<H> {
    type Store = LyingStore<H::Store>;

    fn create(&mut self, bootstrap: &Configuration) -> Result<Self::Store, BoxError> {
        LyingStore::over(self.0.create(bootstrap)?)
    }

    fn reopen(&mut self, store: Self::Store) -> Result<Self::Store, BoxError> {
        LyingStore::over(self.0.reopen(store.durable)?)
    }
}

#[cfg(test)]
mod tests {
    use raft_core::testing::storage::{run_storage_suite_with, Rule, SuiteOptions};

    use super::*;
    use crate::storage::{MemHarness, WalHarness, WAL_CACHE_BYTES_MAX, WAL_SEGMENT_BYTES_MAX};

    fn options() -> SuiteOptions {
        SuiteOptions {
            seeds: vec![1],
            steps_per_seed: 50,
        }
    }

    #[test]
    fn the_lying_disk_breaks_durable_across_crash_on_memory() {
        let failure = run_storage_suite_with(LyingHarness(MemHarness), &options())
            .expect_err("a store that acknowledges writes before they are durable must fail");
        assert_eq!(failure.rule, Rule::DurableAcrossCrash, "{failure}");
    }

    #[test]
    fn the_lying_disk_breaks_durable_across_crash_on_the_write_ahead_log() {
        let harness = WalHarness::new(WAL_SEGMENT_BYTES_MAX, WAL_CACHE_BYTES_MAX);
        let failure = run_storage_suite_with(LyingHarness(harness), &options())
            .expect_err("a store that acknowledges writes before they are durable must fail");
        assert_eq!(failure.rule, Rule::DurableAcrossCrash, "{failure}");
    }
}
