//! The watch hub: the changes the apply loop applies, handed to every watcher in revision
//! order, and the watchers that follow them.
//!
//! ```text
//!  apply loop ── Applied.changes ──► WatchHub::publish ─► PublishedRevision (Arc, shared:
//!     │                                 events.rs)        ─► broadcast window (bounded,
//!     │                                                       never blocks the sender)
//!     ├── snapshot installed at R ──────► WatchHub::restored ─► the same window
//!     └── after each batch: revision ───► WatchHub::reached  ─► watch channel (latest only)
//!
//!  watcher (watcher.rs): subscribe ─► catch up from the store's history (under its lock)
//!        ─► follow the window, skipping revisions already sent
//!        ├── fell out of the window (Lagged) ──► cancelled `lagged`, resume = next revision
//!        ├── snapshot marker ─────────────────► catch up from history again (or `compacted`)
//!        ├── idle for the progress interval ──► progress: the revision it has processed
//!        └── node stopping ───────────────────► cancelled `stopping`, resume = next revision
//! ```
//!
//! A watcher that selects every change of a published revision yields the shared revision
//! itself, not a copy, and the front ends encode it once for all such watchers
//! ([`PublishedRevision::encoded`]): what a write costs N watchers of its key is then the
//! hand-over of the same bytes N times, not N encodings.
//!
//! The apply loop never waits for a watcher: a broadcast send only overwrites the window's
//! oldest slot, so a slow watcher costs the loop nothing and is told it fell behind when it
//! next reads. Its cancellation names the revision to resume from, so a client never misses
//! a change silently: it resumes from the store's history, or learns that history is gone.

mod events;
mod watcher;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raft_node::declare_metrics;
use raft_wal::LatencyHistogram;
use tokio::sync::{broadcast, watch};

pub use events::{PublishedRevision, RevisionEvents, SharedEncoding};
pub use watcher::{CaughtUp, History, Start, WatchMessage, Watcher};

use crate::store::RevisionChanges;

/// What the window carries.
#[derive(Clone, Debug)]
pub enum HubMessage {
    /// Every change of one revision, in the order the command made them, and when the
    /// apply loop published them (for the delivery delay).
    Changes(Arc<PublishedRevision>),
    /// A snapshot replaced the state, which is now at `revision`: the changes between the
    /// last one published and it were never published, so watchers read them from history.
    Restored {
        /// The installed state's revision.
        revision: u64,
    },
}

declare_metrics! {
    /// The watch hub's figures at one moment, as the metrics endpoint exports them.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct WatchFigures;
    /// Counters of the watch hub, written as watchers go.
    pub struct WatchCounters;

    /// Watches open now.
    watchers_open: u64 => gauge("watch_watchers_open", "Watches open"),
    /// Events sent to watchers.
    events_sent_total: u64 => counter("watch_events_sent",
        "Watch events sent (one per changed key per watcher)"),
    /// Progress notifications sent.
    progress_sent_total: u64 => counter("watch_progress_sent",
        "Progress notifications sent to idle watches"),
    /// Watches cancelled because their start revision was compacted.
    cancelled_compacted_total: u64 => counter("watch_cancelled_compacted",
        "Watches cancelled because the revision they needed was compacted"),
    /// Watches cancelled because they fell out of the window.
    cancelled_lagged_total: u64 => counter("watch_cancelled_lagged",
        "Watches cancelled because they fell behind the broadcast window (lagged)"),
    /// Watches cancelled because the node stops.
    cancelled_stopping_total: u64 => counter("watch_cancelled_stopping",
        "Watches cancelled because the node was stopping"),
}

/// The hub every watcher of a node subscribes to. Cheap to share.
pub struct WatchHub {
    window: broadcast::Sender<HubMessage>,
    /// The store's revision after the apply loop's latest batch: every change up to it was
    /// published before it was set.
    reached: watch::Sender<u64>,
    /// Turns true once when the node stops.
    stopping: watch::Sender<bool>,
    /// The capacity of `window`, in revisions.
    window_revisions: usize,
    /// The hub's counters, exported as metrics.
    pub counters: Arc<WatchCounters>,
    /// Time from the apply loop's publish of a revision to its events' hand-over to a
    /// watch's stream, per live events message (catch-up from history is not counted).
    pub delivery_latency: Arc<LatencyHistogram>,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WatchHub")
            .field("window_revisions", &self.window_revisions)
            .field("reached", &*self.reached.borrow())
            .field("watchers", &self.window.receiver_count())
            .finish()
    }
}

impl WatchHub {
    /// A hub whose window holds the last `window_revisions` revisions' changes.
    pub fn new(window_revisions: usize) -> WatchHub {
        assert!(
            window_revisions > 0,
            "a watch window holds a revision at least"
        );
        let (window, _) = broadcast::channel(window_revisions);
        let (reached, _) = watch::channel(0);
        let (stopping, _) = watch::channel(false);
        WatchHub {
            window,
            reached,
            stopping,
            window_revisions,
            counters: Arc::default(),
            delivery_latency: Arc::default(),
        }
    }

    /// Hands one revision's changes to the watchers. Never waits: with no watcher the
    /// changes are dropped, and a full window overwrites its oldest revision.
    pub fn publish(&self, changes: RevisionChanges) {
        // With no watcher the window would drop it anyway: skip the allocation. A watcher
        // that subscribes after this check reads the revision from history (it was applied
        // before it was published).
        if self.window.receiver_count() == 0 {
            return;
        }
        let _ = self
            .window
            .send(HubMessage::Changes(Arc::new(PublishedRevision::new(
                changes,
            ))));
    }

    /// Tells the watchers that a snapshot replaced the state, now at `revision`.
    pub fn restored(&self, revision: u64) {
        let _ = self.window.send(HubMessage::Restored { revision });
    }

    /// Records that every change up to `revision` was published (after each apply batch).
    pub fn reached(&self, revision: u64) {
        self.reached.send_if_modified(|reached| {
            let moved = revision != *reached;
            *reached = revision;
            moved
        });
    }

    /// The revision the store reached, as last told.
    pub fn revision(&self) -> u64 {
        *self.reached.borrow()
    }

    /// Cancels every watcher (`stopping`) and any opened from now on: the node is stopping.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once the node stops ([`WatchHub::stop`]): for what serves watches and must
    /// end with them even while it has none.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopping = self.stopping.subscribe();
        async move {
            // The sender lives as long as the hub: an error means it is gone, a stop too.
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }

    /// The capacity of the window, in revisions.
    pub fn window_revisions(&self) -> usize {
        self.window_revisions
    }

    /// A new watcher of the keys `start` selects, from its start revision, catching up from
    /// `history`. The subscription is taken before the history is read, so nothing applied
    /// in between is missed (and what both hold is sent once).
    pub fn watch<H: History>(&self, history: H, start: Start) -> Watcher<H> {
        let live = self.window.subscribe();
        self.counters.watchers_open.fetch_add(1, Ordering::Relaxed);
        Watcher::new(
            history,
            start,
            live,
            self.reached.subscribe(),
            self.stopping.subscribe(),
            Arc::clone(&self.counters),
            Arc::clone(&self.delivery_latency),
        )
    }

    /// The figures of the hub now.
    pub fn figures(&self) -> WatchFigures {
        self.counters.snapshot()
    }
}

/// Adds one to a counter.
fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
