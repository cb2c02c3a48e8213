//! Watches of this node: the hub the apply loop feeds, and the store's history a watcher
//! catches up from.
//!
//! ```text
//!  KvServer::watch(start) ─► WatchHub::watch(history = this server) ─► Watcher
//!  History::since ─► StateMachine::changes_since under the state lock (a start after the
//!                    current revision: nothing yet, the watch waits for it)
//! ```

use std::sync::Arc;

use super::KvServer;
use crate::store::{KeySelector, RevisionError};
use crate::watch::{CaughtUp, History, Start, WatchHub, Watcher};

impl History for Arc<KvServer> {
    fn since(&self, start: Option<u64>, selector: &KeySelector) -> Result<CaughtUp, RevisionError> {
        let state = self.state();
        let revision = state.revision();
        let changes = match start {
            // A start after the current revision (a follower behind the node the client
            // watched before) has nothing to catch up yet; its changes arrive live.
            Some(start) if start <= revision => state.changes_since(start, selector)?,
            _ => Vec::new(),
        };
        Ok(CaughtUp { changes, revision })
    }

    fn compact_revision(&self) -> u64 {
        self.state().compact_revision()
    }
}

impl KvServer {
    /// A watch of this node's applied changes (see [`crate::watch`]); call
    /// [`Watcher::catch_up`] before reading it.
    pub fn watch(self: &Arc<KvServer>, start: Start) -> Watcher<Arc<KvServer>> {
        self.watch_hub.watch(Arc::clone(self), start)
    }

    /// The hub this node's watchers follow.
    pub fn watch_hub(&self) -> &WatchHub {
        &self.watch_hub
    }
}
