//! The store's reader as the core sees it: every read passes through, except that the initial
//! state reports no lost writes when the operator trusts unclean restarts
//! ([`NodeConfig::trust_unclean_restart`]).
//!
//! ```text
//!  Raft::new(NodeReader { store.reader(), trust }) ─► initial_state(): possibly_lost_writes
//!                                                       as the store says, or false if trusted
//!                                                  ─► every other read: the store's own
//! ```

use raft_core::{Entry, Index, InitialState, Snapshot, Storage, StorageError, Term};

#[cfg(doc)]
use super::NodeConfig;

/// A store's reader with the node's trust setting applied to its initial state.
#[derive(Debug)]
pub(super) struct NodeReader<R> {
    inner: R,
    trust_unclean_restart: bool,
}

impl<R: Storage> NodeReader<R> {
    pub(super) fn new(inner: R, trust_unclean_restart: bool) -> NodeReader<R> {
        NodeReader {
            inner,
            trust_unclean_restart,
        }
    }
}

impl<R: Storage> Storage for NodeReader<R> {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        let mut state = self.inner.initial_state()?;
        if state.possibly_lost_writes && self.trust_unclean_restart {
            tracing::warn!(
                "the store may have lost durable writes (an unclean restart), but unclean \
                 restarts are trusted: starting without recovery"
            );
            state.possibly_lost_writes = false;
        }
        Ok(state)
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        self.inner.entries(low, high, max_bytes)
    }

    fn entries_size_bytes(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<u64, StorageError> {
        self.inner.entries_size_bytes(low, high, max_bytes)
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        self.inner.term(index)
    }

    fn first_index(&self) -> Result<Index, StorageError> {
        self.inner.first_index()
    }

    fn last_index(&self) -> Result<Index, StorageError> {
        self.inner.last_index()
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.inner.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Configuration, MemStorage, NodeId};

    fn lossy_store() -> MemStorage {
        let mut store = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
        store.set_possibly_lost_writes(true);
        store
    }

    #[test]
    fn a_distrusting_reader_reports_lost_writes_as_the_store_does() {
        let reader = NodeReader::new(lossy_store(), false);
        let state = reader.initial_state().expect("memory reads");
        assert!(state.possibly_lost_writes);
        assert_eq!(state, lossy_store().initial_state().expect("memory reads"));
    }

    #[test]
    fn a_trusting_reader_reports_no_lost_writes_and_changes_nothing_else() {
        let reader = NodeReader::new(lossy_store(), true);
        let state = reader.initial_state().expect("memory reads");
        assert!(!state.possibly_lost_writes);
        let mut expected = lossy_store().initial_state().expect("memory reads");
        expected.possibly_lost_writes = false;
        assert_eq!(state, expected);
    }
}
