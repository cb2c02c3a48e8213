//! Snapshots (§7): the service compacts its log with [`crate::Raft::compact`]; a follower whose
//! next entry is compacted away receives the leader's newest snapshot in chunks.
//!
//! ```text
//!  leader (Snapshot state)                 follower
//!  send chunk @offset ── InstallSnapshot ─► buffer if offset == received so far
//!        ▲                                  │ done: restore log (or just commit, if it
//!        │                                  │ already holds the last included entry)
//!        └──── next_offset / done ◄─────────┘ (done answered once durable)
//!  silence for an election timeout, or a report of failure ─► Probe, which resends; the
//!  follower keeps its partial data, so the transfer resumes where it stopped.
//! ```

use bytes::Bytes;

use crate::message::MessageBody;
use crate::progress::{OutgoingSnapshot, ProgressState};
use crate::raft::{Raft, StepError};
use crate::storage::{Storage, StorageError};
use crate::types::{LogId, NodeId, Role, Snapshot, SnapshotMeta, Term};

/// A snapshot being received.
#[derive(Clone, Debug, Hash)]
pub(crate) struct IncomingSnapshot {
    /// The leader sending it, in `term`: chunks from two transfers are never mixed, even of
    /// the same snapshot index (two leaders may encode one state differently).
    leader: NodeId,
    term: Term,
    meta: SnapshotMeta,
    data: Vec<u8>,
}

impl IncomingSnapshot {
    /// The term of the transfer and the bytes received so far.
    pub(crate) fn term_and_bytes(&self) -> (Term, u64) {
        (self.term, self.data.len() as u64)
    }

    /// A transfer from `leader` in `term` with nothing received yet.
    #[cfg(test)]
    pub(crate) fn for_test(leader: NodeId, term: Term, meta: SnapshotMeta) -> IncomingSnapshot {
        IncomingSnapshot {
            leader,
            term,
            meta,
            data: Vec::new(),
        }
    }
}

impl<S: Storage> Raft<S> {
    /// Starts sending the newest stored snapshot to `peer`. Returns `false`: nothing more is
    /// sent to the peer until the transfer ends.
    pub(crate) fn send_snapshot(&mut self, peer: NodeId) -> Result<bool, StorageError> {
        assert!(
            peer != self.id && self.role == Role::Leader,
            "precondition snapshot-to-a-follower: {:?} {} sending to {peer}",
            self.role,
            self.id
        );
        let snapshot = self.log.storage().snapshot()?;
        if snapshot.meta.last_included.index.0 == 0 {
            return Err(StorageError::Failed(
                "log is compacted but storage holds no snapshot".to_string(),
            ));
        }
        let Some(progress) = self.progress.get_mut(&peer) else {
            return Ok(false);
        };
        progress.become_snapshot(OutgoingSnapshot {
            meta: snapshot.meta,
            data: snapshot.data,
            offset: 0,
        });
        self.counters.snapshots_sent += 1;
        self.send_snapshot_chunk(peer);
        assert!(
            self.progress
                .get(&peer)
                .is_some_and(|progress| matches!(progress.state, ProgressState::Snapshot(_))),
            "postcondition snapshot-state: {peer} not in Snapshot state"
        );
        Ok(false)
    }

    fn send_snapshot_chunk(&mut self, peer: NodeId) {
        assert!(
            self.role == Role::Leader,
            "precondition only-leader-sends-snapshots: {:?}",
            self.role
        );
        let chunk_bytes = self.config.snapshot_chunk_bytes;
        let Some(outgoing) = self
            .progress
            .get(&peer)
            .and_then(|progress| progress.outgoing_snapshot.as_ref())
        else {
            return;
        };
        let total = outgoing.data.len() as u64;
        let start = outgoing.offset.min(total);
        let end = start.saturating_add(chunk_bytes).min(total);
        assert!(
            start <= end && (end > start || total == 0 || end == total),
            "invariant snapshot-chunk-within-data: {start}..{end} of {total}"
        );
        let body = MessageBody::InstallSnapshot {
            meta: outgoing.meta.clone(),
            offset: start,
            data: outgoing.data.slice(start as usize..end as usize),
            done: end == total,
        };
        self.send(peer, body);
    }

    pub(crate) fn handle_install_snapshot(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Bytes,
        done: bool,
    ) -> Result<(), StepError> {
        debug_assert!(
            self.role == Role::Follower && self.leader == Some(from),
            "precondition snapshot-from-our-leader: {:?} following {:?}, snapshot from {from}",
            self.role,
            self.leader
        );
        let last = meta.last_included;
        if last.index.0 == 0
            || last.term == Term(0)
            || last.term > self.term
            || meta.configuration.voters.is_empty()
            || meta.configuration.validate().is_err()
        {
            return Err(StepError::Invalid("impossible snapshot metadata"));
        }
        let term = self.term;
        if last.index <= self.log.committed() {
            // We already hold everything the snapshot covers; let the leader move on.
            self.incoming_snapshot = None;
            self.send_after_persist(
                from,
                term,
                MessageBody::InstallSnapshotResponse {
                    last_included: last,
                    next_offset: offset.saturating_add(data.len() as u64),
                    done: true,
                },
            );
            return Ok(());
        }
        let same_transfer = self.incoming_snapshot.as_ref().is_some_and(|incoming| {
            incoming.meta == meta && incoming.leader == from && incoming.term == term
        });
        if !same_transfer {
            if offset != 0 {
                self.send(
                    from,
                    MessageBody::InstallSnapshotResponse {
                        last_included: last,
                        next_offset: 0,
                        done: false,
                    },
                );
                return Ok(());
            }
            self.incoming_snapshot = Some(IncomingSnapshot {
                leader: from,
                term,
                meta: meta.clone(),
                data: Vec::new(),
            });
        }
        let Some(incoming) = self.incoming_snapshot.as_mut() else {
            return Err(StepError::Ignored("no snapshot transfer in progress"));
        };
        let received = incoming.data.len() as u64;
        if offset != received {
            // A lost or duplicated chunk: tell the leader where to resume.
            self.send(
                from,
                MessageBody::InstallSnapshotResponse {
                    last_included: last,
                    next_offset: received,
                    done: false,
                },
            );
            return Ok(());
        }
        if received + data.len() as u64 > self.config.snapshot_bytes_max {
            self.incoming_snapshot = None;
            return Err(StepError::Invalid("snapshot exceeds snapshot_bytes_max"));
        }
        incoming.data.extend_from_slice(&data);
        let received = incoming.data.len() as u64;
        if !done {
            self.send(
                from,
                MessageBody::InstallSnapshotResponse {
                    last_included: last,
                    next_offset: received,
                    done: false,
                },
            );
            return Ok(());
        }
        let Some(incoming) = self.incoming_snapshot.take() else {
            return Err(StepError::Ignored("no snapshot transfer in progress"));
        };
        if self.log.matches(last) {
            // Our log already holds the snapshot's last entry (§7: "retain log entries
            // following it"); committing through it is all that is needed.
            self.log.commit_to(last.index);
        } else {
            tracing::debug!(id = %self.id, snapshot = %last, "installing snapshot from leader");
            // The snapshot's configuration, joint and learner state included, replaces every
            // configuration of the discarded log.
            self.configuration_history
                .reset(last.index, incoming.meta.configuration.clone());
            self.adopt_latest_configuration();
            self.log.restore(Snapshot {
                meta: incoming.meta,
                data: Bytes::from(incoming.data),
            });
            self.counters.snapshots_installed += 1;
        }
        // Either way the log now holds the snapshot's last entry, committed (§7).
        assert!(
            self.log.committed() >= last.index,
            "postcondition snapshot-committed: committed {} below snapshot {last}",
            self.log.committed()
        );
        self.send_after_persist(
            from,
            term,
            MessageBody::InstallSnapshotResponse {
                last_included: last,
                next_offset: received,
                done: true,
            },
        );
        Ok(())
    }

    pub(crate) fn handle_install_snapshot_response(
        &mut self,
        from: NodeId,
        last_included: LogId,
        next_offset: u64,
        done: bool,
    ) -> Result<(), StepError> {
        if self.role != Role::Leader {
            return Err(StepError::Ignored("snapshot response while not leader"));
        }
        assert!(
            from != self.id,
            "precondition response-from-another: {from}"
        );
        let Some(progress) = self.progress.get_mut(&from) else {
            return Err(StepError::UnknownPeer(from));
        };
        progress.heard_from();
        let Some(outgoing) = progress.outgoing_snapshot.as_mut() else {
            return Err(StepError::Ignored("no snapshot transfer to this peer"));
        };
        if !matches!(progress.state, ProgressState::Snapshot(_))
            || outgoing.meta.last_included != last_included
        {
            return Err(StepError::Ignored("response for another snapshot"));
        }
        if next_offset > outgoing.data.len() as u64 {
            return Err(StepError::Invalid("snapshot offset beyond its size"));
        }
        progress.idle_ticks = 0;
        if done {
            progress.maybe_update(last_included.index);
            progress.become_probe();
            assert!(
                progress.match_index >= last_included.index
                    && progress.next_index > last_included.index,
                "postcondition snapshot-acknowledged: {from} match {}, next {}, snapshot {last_included}",
                progress.match_index,
                progress.next_index
            );
            self.replication_due = true;
            return self.maybe_commit().map_err(StepError::Fatal);
        }
        outgoing.offset = next_offset;
        self.send_snapshot_chunk(from);
        Ok(())
    }
}
