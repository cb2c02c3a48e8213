//! A snapshot of this node's state for a backup (`GET /v1/snapshot`, `raftkv snapshot save`),
//! consistent at one applied index.
//!
//! ```text
//!  read barrier (linearizable: the state holds every write acknowledged before the request)
//!    ─► image under the state's lock (O(1): the store's map is shared) at its applied index
//!    ─► term read after it (no older than the entry at that index), members from the node
//!    ─► encoded on a thread of its own (idle::run_at_low_priority), off the apply path
//!    ─► header (crate::backup::file): index, term, cluster id, members, revision, SHA-256
//! ```

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::idle;
use super::reads::ReadMode;
use super::{KvServer, ServeError};
use crate::backup::file::sha256_hex;
use crate::backup::{SnapshotHeader, SnapshotMember};

/// Why no backup snapshot was made.
#[derive(Debug, thiserror::Error)]
pub enum BackupSnapshotError {
    /// The state could not be made current (no leader, the read not confirmed ...).
    #[error(transparent)]
    NotCurrent(#[from] ServeError),
    /// The encoding thread could not start or failed.
    #[error("the snapshot could not be encoded")]
    EncodingFailed,
}

impl KvServer {
    /// This node's state as a backup: every write acknowledged before the call is in it (a
    /// linearizable read barrier first), and it is the state at exactly one applied index (an
    /// image taken under the state's lock). The header's checksum is of the body returned.
    pub async fn backup_snapshot(&self) -> Result<(SnapshotHeader, Bytes), BackupSnapshotError> {
        self.read_barrier(ReadMode::Linearizable).await?;
        let (image, index, revision, compact_revision, keys, leases, sessions) = {
            let state = self.state();
            (
                state.snapshot_image(),
                state.applied_index(),
                state.revision(),
                state.compact_revision(),
                state.keys() as u64,
                state.leases_count() as u64,
                state.sessions() as u64,
            )
        };
        // Read after the image: terms only grow, so this is no older than the term of the
        // entry at `index`, which is what a log restored from the snapshot needs.
        let (term, _) = self.node.get_state();
        let members = match self.node.status().await {
            Ok(status) => status
                .configuration
                .members()
                .map(|id| SnapshotMember {
                    id: id.0,
                    voter: status.configuration.voters.contains(&id)
                        || status.configuration.outgoing.contains(&id),
                    raft_address: self.raft_address_of(id).map(|address| address.to_string()),
                })
                .collect(),
            Err(error) => return Err(ServeError::from(error).into()),
        };
        let encode: idle::Cancellable<Bytes> = Arc::new(move |_| Some(image.encode()));
        let body = idle::run_at_low_priority("backup-encode", encode)
            .await
            .ok_or(BackupSnapshotError::EncodingFailed)?;
        let taken_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let header = SnapshotHeader {
            index,
            term: term.0,
            cluster_id: self.config.cluster_id.clone(),
            node_id: self.config.id.0,
            members,
            revision,
            compact_revision,
            keys,
            leases,
            sessions,
            taken_unix_ms,
            body_bytes: body.len() as u64,
            body_sha256: sha256_hex(&body),
        };
        tracing::info!(
            index,
            revision,
            bytes = body.len(),
            "backup snapshot served"
        );
        Ok((header, body))
    }
}
