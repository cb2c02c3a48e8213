//! Writes a client was told are committed reach every live peer once faults stop.

use std::collections::BTreeMap;

use raft_core::Index;

use super::state_machine::StateMachineSafety;
use super::{violated, Check};
use crate::trace::hash_bytes;

/// Writes a client was told are committed (its proposal was applied where it proposed it).
/// Liveness: once faults stop, every live peer applies all of them.
#[derive(Default)]
pub(crate) struct Acknowledged {
    writes: BTreeMap<Index, u64>,
}

impl Acknowledged {
    pub(crate) fn record(&mut self, index: Index, command_hash: u64) {
        self.writes.insert(index, command_hash);
    }

    pub(crate) fn count(&self) -> usize {
        self.writes.len()
    }

    /// The highest acknowledged index.
    pub(crate) fn max(&self) -> Index {
        self.writes.keys().next_back().copied().unwrap_or_default()
    }

    /// Every acknowledged write is what the cluster applied at its index.
    pub(crate) fn check_applied(&self, applied: &StateMachineSafety) -> Check {
        for (&index, &hash) in &self.writes {
            let held = applied.command_at(index).map(|command| hash_bytes(command));
            if held != Some(hash) {
                return violated(
                    "acknowledged-writes-durable",
                    format!("the write acknowledged at {index} is not what was applied there"),
                );
            }
        }
        Ok(())
    }
}
