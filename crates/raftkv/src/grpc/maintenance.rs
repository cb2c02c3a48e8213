//! The Maintenance service of the etcd v3 API: what `etcdctl endpoint status`, `endpoint
//! health` and `move-leader` need.
//!
//! ```text
//!  Status      this node's figures: version, data size, leader, commit/applied index, term
//!  Alarm       GET: no alarms (raftkv raises none); ACTIVATE / DEACTIVATE: Unimplemented
//!  MoveLeader  on the leader (forwarded there): leadership transfer, answered once the
//!              target leads (thesis §3.10)
//!  HashKV      a CRC-32C of the store as a read at the revision sees it: every key with its
//!              revisions, version, lease and value (the same on every member that applied
//!              that revision; not etcd's number for the same data)
//!  Defragment, Hash, Snapshot, Downgrade: Unimplemented, saying why
//! ```

use std::time::Duration;

use raft_core::NodeId;
use raftkv_etcd_api::etcdserverpb::*;
use raftkv_etcd_api::maintenance_client::MaintenanceClient;
use tonic::{Request, Response, Status};

use super::error::{self, serve_status, unimplemented};
use super::EtcdApi;

/// The etcd version raftkv answers in `Status`. Clients read it to decide which calls the
/// server knows: the API served here (the fields of our `.proto` files, `isLearner`,
/// `dbSizeInUse`, learners, `MemberPromote`, `MemberList.linearizable`) is etcd 3.5's, and
/// etcdctl 3.4 and 3.5 both accept a 3.5 server.
pub const ETCD_VERSION: &str = "3.5.0";

#[tonic::async_trait]
impl maintenance_server::Maintenance for EtcdApi {
    type SnapshotStream = std::pin::Pin<
        Box<
            dyn tonic::codegen::tokio_stream::Stream<Item = Result<SnapshotResponse, Status>>
                + Send
                + 'static,
        >,
    >;

    async fn alarm(
        &self,
        request: Request<AlarmRequest>,
    ) -> Result<Response<AlarmResponse>, Status> {
        match request.get_ref().action() {
            // raftkv has no space quota and checks its data at start: it raises no alarm, so
            // a list of alarms is always empty (etcdctl 3.5's health check reads it).
            alarm_request::AlarmAction::Get => Ok(Response::new(AlarmResponse {
                header: Some(self.header()),
                alarms: Vec::new(),
            })),
            alarm_request::AlarmAction::Activate | alarm_request::AlarmAction::Deactivate => {
                Err(unimplemented(
                    "raising or clearing an alarm",
                    "raftkv raises no alarms (it has no space quota), so there is none to set \
                     or disarm",
                ))
            }
        }
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let server = self.server();
        let status = server
            .node()
            .status()
            .await
            .map_err(|error| serve_status(&error.into()))?;
        let (revision, applied_index, data_bytes) = {
            let state = server.state();
            (
                state.revision(),
                state.applied_index(),
                state.data_bytes().saturating_add(state.history_bytes()),
            )
        };
        let size = i64::try_from(data_bytes).unwrap_or(i64::MAX);
        let own = server.config().id;
        let mut header = self.header_at(revision);
        header.raft_term = status.term.0;
        Ok(Response::new(StatusResponse {
            header: Some(header),
            version: ETCD_VERSION.to_string(),
            // The store lives in memory: what it holds is what it uses (no free pages).
            db_size: size,
            db_size_in_use: size,
            leader: status.leader.map_or(0, |leader| leader.0),
            raft_index: status.commit.0,
            raft_term: status.term.0,
            raft_applied_index: applied_index,
            errors: Vec::new(),
            is_learner: status.configuration.learners.contains(&own),
        }))
    }

    async fn defragment(
        &self,
        _request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(unimplemented(
            "Defragment",
            "raftkv keeps its store in memory and compacts its log with snapshots; there is no \
             database file to defragment",
        ))
    }

    async fn hash(&self, _request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(unimplemented(
            "Hash",
            "it hashes etcd's database file, which raftkv does not have",
        ))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let revision = u64::try_from(request.get_ref().revision)
            .ok()
            .filter(|revision| *revision > 0);
        let (hash, compact_revision, revision) = {
            let state = self.server().state();
            // NB: the store is read under its lock, which holds up the apply loop for as long
            // as hashing the whole store takes (as etcd's HashKV reads its whole backend); an
            // operator's check, not a request to make often on a large store.
            let (items, _) = state
                .scan_at("", usize::MAX, revision)
                .map_err(|error| error::revision_status(&error))?;
            let at = revision.unwrap_or_else(|| state.revision());
            (hash_of(&items), state.compact_revision(), at)
        };
        Ok(Response::new(HashKvResponse {
            header: Some(self.header_at(revision)),
            hash,
            compact_revision: i64::try_from(compact_revision).unwrap_or(i64::MAX),
        }))
    }

    async fn snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(unimplemented(
            "Snapshot",
            "it streams etcd's bbolt database file, a format raftkv does not write; raftkv's \
             own snapshots are in each node's data directory",
        ))
    }

    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        if let Some(channel) = self.leader_channel(&request).await? {
            let answer = MaintenanceClient::new(channel)
                .move_leader(self.forwarded(request))
                .await;
            return self.relay(answer);
        }
        let target = NodeId(request.get_ref().target_id);
        let server = self.server();
        let voter = server
            .node()
            .status()
            .await
            .map_err(|error| serve_status(&error.into()))?
            .configuration
            .voters
            .contains(&target);
        // etcd refuses a transfer to a member that is not one, or is a learner.
        if !voter {
            return Err(error::BAD_LEADER_TRANSFEREE.status());
        }
        if target != server.config().id {
            server
                .transfer_leadership(target)
                .await
                .map_err(|error| serve_status(&error))?;
            // etcd answers once the target leads; the core abandons a transfer after an
            // election timeout, so the request timeout bounds the wait.
            let deadline = tokio::time::Instant::now() + server.config().request_timeout;
            while server.node().metrics().leader != Some(target) {
                if tokio::time::Instant::now() >= deadline {
                    return Err(error::TIMEOUT_LEADER_TRANSFER.status());
                }
                tokio::time::sleep(server.config().tick.min(Duration::from_millis(50))).await;
            }
        }
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.header()),
        }))
    }

    async fn downgrade(
        &self,
        _request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(unimplemented(
            "Downgrade",
            "it changes etcd's cluster version; raftkv's releases read older logs and \
             snapshots by themselves",
        ))
    }
}

/// The HashKV digest of `items` (keys in order, as a read sees them): CRC-32C over each key's
/// fields, each length-prefixed so that no two stores hash the same bytes.
fn hash_of(items: &[(String, crate::store::VersionedValue)]) -> u32 {
    items.iter().fold(0, |crc, (key, version)| {
        let crc = crc32c::crc32c_append(crc, &(key.len() as u64).to_le_bytes());
        let crc = crc32c::crc32c_append(crc, key.as_bytes());
        let crc = [
            version.create_revision,
            version.mod_revision,
            version.version,
            version.lease,
            version.value.len() as u64,
        ]
        .iter()
        .fold(crc, |crc, number| {
            crc32c::crc32c_append(crc, &number.to_le_bytes())
        });
        crc32c::crc32c_append(crc, &version.value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::VersionedValue;

    fn item(key: &str, value: &'static [u8], mod_revision: u64) -> (String, VersionedValue) {
        let version = VersionedValue {
            value: bytes::Bytes::from_static(value),
            create_revision: 2,
            mod_revision,
            version: 1,
            lease: 0,
        };
        (key.to_string(), version)
    }

    #[test]
    fn the_hash_covers_keys_values_and_revisions_and_not_their_concatenation() {
        let base = hash_of(&[item("a", b"1", 2), item("b", b"2", 3)]);
        assert_eq!(base, hash_of(&[item("a", b"1", 2), item("b", b"2", 3)]));
        assert_ne!(base, hash_of(&[item("a", b"1", 2), item("b", b"2", 4)]));
        assert_ne!(base, hash_of(&[item("a", b"1", 2), item("b", b"3", 3)]));
        assert_ne!(base, hash_of(&[item("a", b"1", 2)]));
        // The key "ab" with value "c" is not the key "a" with value "bc".
        assert_ne!(
            hash_of(&[item("ab", b"c", 2)]),
            hash_of(&[item("a", b"bc", 2)])
        );
        assert_eq!(hash_of(&[]), 0);
    }
}
