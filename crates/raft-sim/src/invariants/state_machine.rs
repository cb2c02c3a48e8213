//! What peers apply: one command and one state per index across peers and restarts (§5.4.3,
//! State Machine Safety), and commit and applied indexes that never go back.

use std::collections::BTreeMap;

use bytes::Bytes;
use raft_core::{Entry, EntryKind, Index, LogId, NodeId};

use super::{violated, Check};

struct AppliedFacts {
    id: LogId,
    command: Option<Bytes>,
    first_applied_by: NodeId,
}

/// No two peers apply different entries at one index, and no two reach different states at
/// one index (§5.4.3, State Machine Safety), across restarts and snapshots.
#[derive(Default)]
pub(crate) struct StateMachineSafety {
    applied: BTreeMap<Index, AppliedFacts>,
    /// The service digest after applying through each index.
    digests: BTreeMap<Index, u64>,
}

impl StateMachineSafety {
    pub(crate) fn on_apply(&mut self, peer: NodeId, entry: &Entry, digest_after: u64) -> Check {
        let command = (entry.kind == EntryKind::Normal).then(|| entry.data.clone());
        let known = self
            .applied
            .entry(entry.index())
            .or_insert_with(|| AppliedFacts {
                id: entry.id,
                command: command.clone(),
                first_applied_by: peer,
            });
        if known.id != entry.id || known.command != command {
            return violated(
                "state-machine-safety",
                format!(
                    "{peer} applied {} ({:?}), but {} applied {} at that index",
                    entry.id, entry.kind, known.first_applied_by, known.id
                ),
            );
        }
        self.check_digest(peer, entry.index(), digest_after)
    }

    pub(crate) fn on_restore(&mut self, peer: NodeId, index: Index, digest: u64) -> Check {
        self.check_digest(peer, index, digest)
    }

    fn check_digest(&mut self, peer: NodeId, index: Index, digest: u64) -> Check {
        let known = *self.digests.entry(index).or_insert(digest);
        if known != digest {
            return violated(
                "state-machine-safety",
                format!("{peer} reached another service state at {index} than an earlier peer"),
            );
        }
        Ok(())
    }

    /// The command applied at `index`, if any peer applied a normal entry there.
    pub(crate) fn command_at(&self, index: Index) -> Option<&Bytes> {
        self.applied
            .get(&index)
            .and_then(|facts| facts.command.as_ref())
    }

    /// The highest index any peer applied.
    pub(crate) fn max_applied(&self) -> Index {
        self.applied.keys().next_back().copied().unwrap_or_default()
    }
}

/// Within one incarnation of a peer, the commit and applied indexes never decrease.
#[derive(Default)]
pub(crate) struct IndexMonotonic {
    seen: BTreeMap<NodeId, (u64, Index, Index)>,
}

impl IndexMonotonic {
    pub(crate) fn observe(
        &mut self,
        peer: NodeId,
        incarnation: u64,
        commit: Index,
        applied: Index,
    ) -> Check {
        let seen = self
            .seen
            .entry(peer)
            .or_insert((incarnation, commit, applied));
        if seen.0 == incarnation {
            if commit < seen.1 {
                return violated(
                    "commit-monotonic",
                    format!("{peer} commit index went back from {} to {commit}", seen.1),
                );
            }
            if applied < seen.2 {
                return violated(
                    "applied-monotonic",
                    format!(
                        "{peer} applied index went back from {} to {applied}",
                        seen.2
                    ),
                );
            }
        }
        *seen = (incarnation, commit, applied);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use raft_core::{Index, NodeId};

    use super::super::test_entry as entry;
    use super::*;

    #[test]
    fn state_machine_safety_catches_divergent_applies() {
        let mut checker = StateMachineSafety::default();
        assert!(checker.on_apply(NodeId(1), &entry(1, 1, b"a"), 7).is_ok());
        assert!(checker.on_apply(NodeId(2), &entry(1, 1, b"a"), 7).is_ok());
        assert!(checker.on_apply(NodeId(3), &entry(2, 1, b"a"), 7).is_err());
        assert!(checker.on_restore(NodeId(3), Index(1), 8).is_err());
    }
}
