//! Reads: how a read is confirmed ([`ReadMode`]) and the wait until this node applied through
//! the confirmed index.
//!
//! ```text
//!  read: node.read_index() (any node; a follower asks the leader) ─► wait applied ≥ index ─► get
//! ```

use raft_core::Index;

use super::{KvServer, ServeError};

/// How a read is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex: a quorum confirms leadership; any node can serve it.
    Linearizable,
    /// The leader's lease; only the leader serves it.
    Lease,
    /// Local state as it is.
    Stale,
}

impl KvServer {
    /// Waits until a read in `mode` may be served from the local state. A read that a
    /// leadership change failed is asked again once the change passed.
    pub async fn read_barrier(&self, mode: ReadMode) -> Result<(), ServeError> {
        let read_index = || async {
            match mode {
                ReadMode::Stale => Ok(None),
                ReadMode::Linearizable => self.node.read_index().await.map(Some),
                ReadMode::Lease => self.node.lease_read_index().await.map(Some),
            }
            .map_err(ServeError::from)
        };
        match self.through_leadership_change(read_index).await? {
            Some(index) => self.wait_applied(index).await,
            None => Ok(()),
        }
    }

    async fn wait_applied(&self, index: Index) -> Result<(), ServeError> {
        let mut applied = self.applied.clone();
        let reached = tokio::time::timeout(
            self.config.request_timeout,
            applied.wait_for(|applied| *applied >= index.0),
        )
        .await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ServeError::ApplyLoopEnded),
            Err(_) => Err(ServeError::ApplyBehind {
                index: index.0,
                within: self.config.request_timeout,
            }),
        }
    }
}
