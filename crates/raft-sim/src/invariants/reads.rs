//! Linearizable reads: a ReadIndex answer covers every index committed before the read began
//! (thesis §6.4).

use std::collections::BTreeMap;

use raft_core::{Index, NodeId};

use super::{violated, Check};

/// A ReadIndex answer is at least every index known committed when the read began, so a read
/// served at it reflects every write completed before (thesis §6.4).
#[derive(Default)]
pub(crate) struct ReadLinearizability {
    pending: BTreeMap<u64, (NodeId, Index)>,
    served: u64,
}

impl ReadLinearizability {
    pub(crate) fn begin(&mut self, context: u64, peer: NodeId, committed: Index) {
        self.pending.insert(context, (peer, committed));
    }

    pub(crate) fn complete(&mut self, context: u64, peer: NodeId, index: Index) -> Check {
        let Some((origin, floor)) = self.pending.remove(&context) else {
            return violated(
                "read-index-answered-once",
                format!("{peer} got read {context} that is not pending"),
            );
        };
        if origin != peer {
            return violated(
                "read-index-answered-once",
                format!("read {context} of {origin} completed on {peer}"),
            );
        }
        if index < floor {
            return violated(
                "read-index-linearizable",
                format!(
                    "read {context} on {peer} answered {index}, but {floor} was committed before it began"
                ),
            );
        }
        self.served += 1;
        Ok(())
    }

    pub(crate) fn fail(&mut self, context: u64) {
        self.pending.remove(&context);
    }

    /// Forgets the reads of a crashed peer.
    pub(crate) fn forget_peer(&mut self, peer: NodeId) {
        self.pending.retain(|_, (origin, _)| *origin != peer);
    }

    pub(crate) fn served(&self) -> u64 {
        self.served
    }
}
