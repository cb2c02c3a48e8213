//! One watcher: its catch-up from the store's history, then the window it follows, and the
//! messages it yields (events of one revision, progress, its cancellation) in order.
//!
//! ```text
//!  catch_up: History::since(start) under the store's lock ─► pending events, processed = R
//!  next:  pending? ─► yield it
//!         stopping ─► cancelled stopping            (resume = the next revision)
//!         window ── revision ≤ processed ─► skip (already read from history)
//!                └─ revision > processed ─► processed = it; selected changes? ─► events
//!                   Restored ─► catch_up again from processed + 1 (or cancelled compacted)
//!                   Lagged ─► cancelled lagged   (resume = the next revision, never skipped)
//!         progress tick, nothing sent since the last ─► drain the window, then progress
//! ```
//!
//! Invariant: every change the watch selects at a revision in `[start, processed]` was
//! yielded, once, in revision order; that is what makes `processed + 1` a gap-free resume
//! point and the progress revision true.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use raft_wal::LatencyHistogram;
use raftkv_client::api::CancelReason;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::{count, HubMessage, PublishedRevision, RevisionEvents, WatchCounters};
use crate::store::{KeySelector, RevisionChanges, RevisionError};

/// Where a watcher catches up from: the store's history, read under its lock.
pub trait History: Send + 'static {
    /// The changes `selector` picks at revisions from `start` (`None`: none, the watch starts
    /// after the current revision), with the store's revision when they were read; a
    /// compacted `start` fails.
    fn since(&self, start: Option<u64>, selector: &KeySelector) -> Result<CaughtUp, RevisionError>;

    /// The oldest revision still readable now.
    fn compact_revision(&self) -> u64;
}

/// What [`History::since`] read.
#[derive(Clone, Debug, Default)]
pub struct CaughtUp {
    /// The selected changes, by revision, oldest first.
    pub changes: Vec<RevisionChanges>,
    /// The store's revision they were read at.
    pub revision: u64,
}

/// What a watch asks for.
#[derive(Clone, Debug)]
pub struct Start {
    /// The keys watched.
    pub selector: KeySelector,
    /// The first revision to send (`None`: the one after the current).
    pub start_revision: Option<u64>,
    /// Interval of progress notifications while idle (zero: none).
    pub progress_interval: Duration,
}

/// What a watcher yields, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchMessage {
    /// The selected changes of one revision, in the order the command made them (shared
    /// with the other watchers when they are all of the revision's).
    Events(RevisionEvents),
    /// Every selected change up to `revision` was yielded.
    Progress {
        /// The revision reached.
        revision: u64,
    },
    /// The watch ended; its last message.
    Cancelled {
        /// Why.
        reason: CancelReason,
        /// The revision a new watch continues from without a gap.
        resume_revision: u64,
        /// The oldest revision still readable.
        compact_revision: u64,
        /// What went wrong, for a person.
        error: String,
    },
}

/// What woke a waiting watcher.
enum Woken {
    Stopping,
    Live(Result<HubMessage, RecvError>),
    ProgressTick,
}

/// One watch, following the hub's window after its catch-up. Yields through
/// [`Watcher::next`]; dropped, it unsubscribes.
pub struct Watcher<H: History> {
    history: H,
    selector: KeySelector,
    live: broadcast::Receiver<HubMessage>,
    reached: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    counters: Arc<WatchCounters>,
    delivery_latency: Arc<LatencyHistogram>,
    /// When the live revision whose events were queued last was published (`None`: read
    /// from history).
    published_at: VecDeque<Option<std::time::Instant>>,
    /// The first revision the watch sends (known once caught up).
    start: u64,
    /// Invariant: every selected change at a revision in `[start, processed]` is in
    /// `pending` or was yielded.
    processed: u64,
    pending: VecDeque<WatchMessage>,
    progress: Option<Interval>,
    /// Whether a message was yielded since the last progress tick.
    sent_since_tick: bool,
    /// Whether a progress message was asked for ([`Watcher::request_progress`]).
    progress_requested: bool,
    /// Whether the cancellation is queued: nothing follows it.
    finished: bool,
    requested_start: Option<u64>,
}

impl<H: History> Drop for Watcher<H> {
    fn drop(&mut self) {
        self.counters.watchers_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<H: History> Watcher<H> {
    pub(super) fn new(
        history: H,
        start: Start,
        live: broadcast::Receiver<HubMessage>,
        reached: watch::Receiver<u64>,
        stopping: watch::Receiver<bool>,
        counters: Arc<WatchCounters>,
        delivery_latency: Arc<LatencyHistogram>,
    ) -> Watcher<H> {
        let progress = (!start.progress_interval.is_zero()).then(|| {
            let mut interval = tokio::time::interval_at(
                Instant::now() + start.progress_interval,
                start.progress_interval,
            );
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        Watcher {
            history,
            selector: start.selector,
            live,
            reached,
            stopping,
            counters,
            delivery_latency,
            published_at: VecDeque::new(),
            start: start.start_revision.unwrap_or(0),
            processed: 0,
            pending: VecDeque::new(),
            progress,
            sent_since_tick: false,
            progress_requested: false,
            finished: false,
            requested_start: start.start_revision,
        }
    }

    /// Reads the history from the start revision: a compacted start fails here, before the
    /// watch is answered, so it can be refused outright. Call once, before [`Watcher::next`].
    pub fn catch_up(&mut self) -> Result<(), RevisionError> {
        let caught_up = self.history.since(self.requested_start, &self.selector)?;
        if self.requested_start.is_none() {
            self.start = caught_up.revision + 1;
        }
        self.processed = caught_up.revision;
        self.queue_history(caught_up.changes);
        Ok(())
    }

    /// The first revision this watch sends.
    pub fn start_revision(&self) -> u64 {
        self.start
    }

    /// Asks for a progress message: once the events already queued are yielded, the watcher
    /// takes what the window holds and yields [`WatchMessage::Progress`] with the revision
    /// the store reached (every selected change up to it yielded before), whether or not
    /// anything was sent lately. Requests made before it is yielded share it.
    pub fn request_progress(&mut self) {
        self.progress_requested = true;
    }

    /// The next message: events, progress, or the cancellation (after which `None`).
    /// Cancel-safe: a call dropped before it returns loses nothing.
    pub async fn next(&mut self) -> Option<WatchMessage> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                self.note_yielded(&message);
                return Some(message);
            }
            if self.finished {
                return None;
            }
            if std::mem::take(&mut self.progress_requested) {
                self.progress_now();
                continue;
            }
            // A revision already in the window (one of an apply batch, or a watcher a little
            // behind) is taken without the select below, which registers with and leaves
            // three wait lists for each message. The stop still comes first.
            if !*self.stopping.borrow() {
                match self.live.try_recv() {
                    Ok(message) => {
                        self.take(message);
                        continue;
                    }
                    Err(TryRecvError::Lagged(missed)) => {
                        self.lagged(missed);
                        continue;
                    }
                    // Nothing yet, or the hub is gone (the select says so): wait.
                    Err(TryRecvError::Empty | TryRecvError::Closed) => {}
                }
            }
            let (stopping, live, progress) =
                (&mut self.stopping, &mut self.live, &mut self.progress);
            let woken = tokio::select! {
                biased;
                // The stopping flag's sender lives as long as the hub: an error is a stop too.
                _ = async { stopping.wait_for(|stopping| *stopping).await.map(drop) } => {
                    Woken::Stopping
                }
                received = live.recv() => Woken::Live(received),
                _ = async {
                    match progress {
                        Some(interval) => interval.tick().await,
                        None => std::future::pending().await,
                    }
                } => Woken::ProgressTick,
            };
            match woken {
                Woken::Stopping | Woken::Live(Err(RecvError::Closed)) => {
                    self.cancel(CancelReason::Stopping, "the node is stopping".into());
                }
                Woken::Live(Ok(message)) => self.take(message),
                Woken::Live(Err(RecvError::Lagged(missed))) => self.lagged(missed),
                Woken::ProgressTick => self.progress_due(),
            }
        }
    }

    /// The revision a new watch resumes from to continue this one without a gap.
    fn resume_revision(&self) -> u64 {
        (self.processed + 1).max(self.start)
    }

    fn note_yielded(&mut self, message: &WatchMessage) {
        self.sent_since_tick = true;
        match message {
            WatchMessage::Events(events) => {
                self.counters
                    .events_sent_total
                    .fetch_add(events.changes().len() as u64, Ordering::Relaxed);
                if let Some(Some(published_at)) = self.published_at.pop_front() {
                    self.delivery_latency.record(published_at.elapsed());
                }
            }
            WatchMessage::Progress { .. } => count(&self.counters.progress_sent_total),
            WatchMessage::Cancelled { reason, .. } => count(match reason {
                CancelReason::Compacted => &self.counters.cancelled_compacted_total,
                CancelReason::Lagged => &self.counters.cancelled_lagged_total,
                CancelReason::Stopping => &self.counters.cancelled_stopping_total,
            }),
        }
    }

    fn queue_history(&mut self, changes: Vec<RevisionChanges>) {
        for mut revision in changes {
            assert!(
                revision.revision <= self.processed,
                "invariant history-within-its-revision: {} > {}",
                revision.revision,
                self.processed
            );
            revision
                .changes
                .retain(|change| self.selector.matches(&change.key));
            if !revision.changes.is_empty() {
                let events = RevisionEvents::Part {
                    revision: revision.revision,
                    changes: revision.changes,
                };
                self.queue(events, None);
            }
        }
    }

    /// Queues the changes of a published revision the watch selects, if any: the shared
    /// revision itself when it selects them all.
    fn queue_live(&mut self, published: &Arc<PublishedRevision>) {
        let selector = &self.selector;
        if let Some(events) =
            RevisionEvents::select(published, |change| selector.matches(&change.key))
        {
            self.queue(events, Some(published.published_at()));
        }
    }

    /// Queues selected events, unless they come before the watch's start.
    fn queue(&mut self, events: RevisionEvents, published_at: Option<std::time::Instant>) {
        let revision = events.revision();
        if revision < self.start {
            return;
        }
        if let Some(WatchMessage::Events(last)) = self.pending.back() {
            assert!(
                last.revision() < revision,
                "invariant events-in-revision-order"
            );
        }
        assert!(
            !events.changes().is_empty(),
            "invariant events-not-empty: a revision with nothing selected is not queued"
        );
        self.pending.push_back(WatchMessage::Events(events));
        self.published_at.push_back(published_at);
    }

    fn take(&mut self, message: HubMessage) {
        match message {
            HubMessage::Changes(published) => {
                let revision = published.revision();
                if revision <= self.processed {
                    return; // Read from history already.
                }
                assert_eq!(
                    revision,
                    self.processed + 1,
                    "invariant watch-window-contiguous: every revision is published, and a \
                     snapshot's marker comes before the revisions after it"
                );
                self.processed = revision;
                self.queue_live(&published);
            }
            HubMessage::Restored { revision } => {
                if revision <= self.processed {
                    return;
                }
                // The revisions up to the snapshot's were never published: read them from the
                // restored history.
                match self.history.since(Some(self.processed + 1), &self.selector) {
                    Ok(caught_up) => {
                        self.processed = self.processed.max(caught_up.revision);
                        self.queue_history(caught_up.changes);
                    }
                    Err(error) => self.cancel(
                        CancelReason::Compacted,
                        format!("a snapshot replaced this node's state: {error}"),
                    ),
                }
            }
        }
    }

    fn lagged(&mut self, missed: u64) {
        let window = self.live.len();
        self.cancel(
            CancelReason::Lagged,
            format!(
                "the watch fell {missed} revisions behind the node's window of changes (it \
                 read too slowly; {window} waiting); resume from the revision given"
            ),
        );
    }

    /// A progress tick: nothing was yielded since the last one, so tell how far the watch
    /// is. Every change up to the revision the store reached was published before it was
    /// recorded, so once the window is drained the watch has processed it all.
    fn progress_due(&mut self) {
        if std::mem::take(&mut self.sent_since_tick) {
            return;
        }
        self.progress_now();
    }

    /// Drains the window, then queues progress at the revision the store reached.
    fn progress_now(&mut self) {
        let reached = *self.reached.borrow();
        loop {
            match self.live.try_recv() {
                Ok(message) => self.take(message),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(missed)) => return self.lagged(missed),
                Err(TryRecvError::Closed) => {
                    return self.cancel(CancelReason::Stopping, "the node is stopping".into())
                }
            }
            if self.finished {
                return;
            }
        }
        self.processed = self.processed.max(reached);
        self.pending.push_back(WatchMessage::Progress {
            revision: self.processed,
        });
    }

    fn cancel(&mut self, reason: CancelReason, error: String) {
        let resume_revision = self.resume_revision();
        self.pending.push_back(WatchMessage::Cancelled {
            reason,
            resume_revision,
            compact_revision: self.history.compact_revision(),
            error,
        });
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;
    use crate::store::{Change, ChangeKind, VersionedValue};
    use crate::watch::{SharedEncoding, WatchHub};

    /// A store's history reduced to what a watcher reads.
    #[derive(Clone, Default)]
    struct FakeHistory(Arc<Mutex<FakeStore>>);

    #[derive(Default)]
    struct FakeStore {
        revisions: Vec<RevisionChanges>,
        revision: u64,
        compact_revision: u64,
    }

    impl History for FakeHistory {
        fn since(
            &self,
            start: Option<u64>,
            selector: &KeySelector,
        ) -> Result<CaughtUp, RevisionError> {
            let store = self.0.lock().expect("lock");
            let revision = store.revision;
            let Some(start) = start else {
                return Ok(CaughtUp::default().at(revision));
            };
            if start < store.compact_revision {
                return Err(RevisionError::Compacted {
                    requested: start,
                    compact_revision: store.compact_revision,
                    current: revision,
                });
            }
            let changes = store
                .revisions
                .iter()
                .filter(|changes| changes.revision >= start)
                .map(|changes| RevisionChanges {
                    revision: changes.revision,
                    changes: changes
                        .changes
                        .iter()
                        .filter(|change| selector.matches(&change.key))
                        .cloned()
                        .collect(),
                })
                .filter(|changes| !changes.changes.is_empty())
                .collect();
            Ok(CaughtUp { changes, revision })
        }

        fn compact_revision(&self) -> u64 {
            self.0.lock().expect("lock").compact_revision
        }
    }

    impl CaughtUp {
        fn at(mut self, revision: u64) -> CaughtUp {
            self.revision = revision;
            self
        }
    }

    fn put(key: &str, revision: u64) -> Change {
        Change {
            kind: ChangeKind::Put,
            key: key.into(),
            value: VersionedValue {
                value: Bytes::from(format!("{key}@{revision}")),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
                lease: 0,
            },
        }
    }

    impl FakeHistory {
        /// Applies a revision changing `keys`; returns its changes, as the apply loop
        /// publishes them.
        fn apply(&self, keys: &[&str]) -> RevisionChanges {
            let mut store = self.0.lock().expect("lock");
            store.revision += 1;
            let revision = store.revision;
            let changes = RevisionChanges {
                revision,
                changes: keys.iter().map(|key| put(key, revision)).collect(),
            };
            store.revisions.push(changes.clone());
            changes
        }
    }

    fn start(selector: KeySelector, start_revision: Option<u64>) -> Start {
        Start {
            selector,
            start_revision,
            progress_interval: Duration::ZERO,
        }
    }

    fn revision_of(message: &WatchMessage) -> u64 {
        match message {
            WatchMessage::Events(events) => events.revision(),
            other => panic!("events expected: {other:?}"),
        }
    }

    fn history_at(revision: u64) -> FakeHistory {
        let history = FakeHistory::default();
        history.0.lock().expect("lock").revision = revision;
        history.0.lock().expect("lock").compact_revision = 1;
        history
    }

    #[tokio::test]
    async fn a_watcher_catches_up_then_follows_live_without_a_gap_or_a_repeat() {
        let hub = WatchHub::new(64);
        let history = history_at(1);
        for _ in 0..3 {
            hub.publish(history.apply(&["a"])); // 2, 3, 4: before the watch
        }
        let mut watcher = hub.watch(
            history.clone(),
            start(KeySelector::Key("a".into()), Some(3)),
        );
        // Applied after the subscription and before the catch-up: in history and window both.
        hub.publish(history.apply(&["a"])); // 5
        watcher.catch_up().expect("not compacted");
        hub.publish(history.apply(&["b"])); // 6: not selected
        hub.publish(history.apply(&["a"])); // 7
        let mut revisions = Vec::new();
        for _ in 0..4 {
            revisions.push(revision_of(&watcher.next().await.expect("a message")));
        }
        assert_eq!(
            revisions,
            [3, 4, 5, 7],
            "in order, none missing, none twice"
        );
        assert_eq!(hub.figures().events_sent_total, 4);
        assert_eq!(
            hub.delivery_latency.snapshot().count,
            1,
            "only the live revision's delivery is timed"
        );
        assert_eq!(hub.figures().watchers_open, 1);
        drop(watcher);
        assert_eq!(hub.figures().watchers_open, 0);
    }

    #[tokio::test]
    async fn the_changes_of_one_revision_arrive_together_in_the_commands_order() {
        let hub = WatchHub::new(64);
        let history = history_at(1);
        let mut watcher = hub.watch(
            history.clone(),
            start(KeySelector::Prefix("p/".into()), None),
        );
        watcher.catch_up().expect("caught up");
        assert_eq!(
            watcher.start_revision(),
            2,
            "from the revision after the current"
        );
        hub.publish(history.apply(&["p/2", "q", "p/1"]));
        let Some(WatchMessage::Events(events)) = watcher.next().await else {
            panic!("events expected");
        };
        assert_eq!(events.revision(), 2);
        let keys: Vec<&str> = events
            .changes()
            .iter()
            .map(|change| change.key.as_str())
            .collect();
        assert_eq!(keys, ["p/2", "p/1"]);
        assert!(events.whole().is_none(), "a part of the revision: a copy");
    }

    #[tokio::test]
    async fn many_watchers_of_a_revision_share_it_and_its_encoding_is_made_once() {
        let hub = WatchHub::new(64);
        let history = history_at(1);
        let mut watchers: Vec<_> = (0..50)
            .map(|_| {
                let mut watcher = hub.watch(
                    history.clone(),
                    start(KeySelector::Prefix("p/".into()), None),
                );
                watcher.catch_up().expect("caught up");
                watcher
            })
            .collect();
        for _ in 0..5 {
            hub.publish(history.apply(&["p/a", "p/b"])); // 2..=6: every change selected
        }
        hub.publish(history.apply(&["p/c", "q"])); // 7: a part selected
        let encodings_made = std::sync::atomic::AtomicUsize::new(0);
        let encode = |revision: u64, changes: &[Change]| {
            encodings_made.fetch_add(1, Ordering::Relaxed);
            let keys: Vec<&str> = changes.iter().map(|change| change.key.as_str()).collect();
            Bytes::from(format!("{revision}:{}", keys.join(",")))
        };
        let mut first_seen: Option<Vec<Bytes>> = None;
        for watcher in &mut watchers {
            let mut seen = Vec::new();
            for expected in 2..=6 {
                let Some(WatchMessage::Events(events)) = watcher.next().await else {
                    panic!("events expected");
                };
                assert_eq!(events.revision(), expected, "in order, no gap");
                let whole = events.whole().expect("every change selected: shared");
                seen.push(whole.encoded(SharedEncoding::ServerSentEvents, encode));
            }
            let Some(WatchMessage::Events(part)) = watcher.next().await else {
                panic!("events expected");
            };
            assert_eq!(part.revision(), 7);
            assert!(part.whole().is_none(), "a part: this watcher's own copy");
            assert_eq!(part.changes().len(), 1);
            assert_eq!(part.changes()[0].key, "p/c");
            let first = first_seen.get_or_insert_with(|| seen.clone());
            for (bytes, first) in seen.iter().zip(first.iter()) {
                assert_eq!(bytes, first, "identical for every watcher");
                assert_eq!(bytes.as_ptr(), first.as_ptr(), "the same bytes, not a copy");
            }
            assert_eq!(seen[0], Bytes::from("2:p/a,p/b"));
        }
        assert_eq!(
            encodings_made.load(Ordering::Relaxed),
            5,
            "one encoding per revision for 50 watchers"
        );
        assert_eq!(hub.figures().events_sent_total, 50 * (5 * 2 + 1));
    }

    #[tokio::test]
    async fn a_watcher_that_fell_out_of_the_window_is_cancelled_with_where_to_resume() {
        let hub = WatchHub::new(4);
        let history = history_at(1);
        let mut watcher = hub.watch(
            history.clone(),
            start(KeySelector::Prefix(String::new()), Some(2)),
        );
        watcher.catch_up().expect("caught up");
        hub.publish(history.apply(&["k"])); // 2
        assert_eq!(revision_of(&watcher.next().await.expect("events")), 2);
        for _ in 0..10 {
            hub.publish(history.apply(&["k"])); // 3..=12
        }
        let cancelled = watcher.next().await.expect("cancelled");
        let WatchMessage::Cancelled {
            reason,
            resume_revision,
            ..
        } = cancelled
        else {
            panic!("cancelled expected: {cancelled:?}");
        };
        assert_eq!(reason, CancelReason::Lagged);
        assert_eq!(resume_revision, 3, "never skipped ahead");
        assert_eq!(watcher.next().await, None, "nothing after the cancellation");
        assert_eq!(hub.figures().cancelled_lagged_total, 1);
        // Resumed there, it gets every revision from the history.
        let mut resumed = hub.watch(
            history.clone(),
            start(KeySelector::Prefix(String::new()), Some(3)),
        );
        resumed.catch_up().expect("caught up");
        for expected in 3..=12 {
            assert_eq!(
                revision_of(&resumed.next().await.expect("events")),
                expected
            );
        }
    }

    #[tokio::test]
    async fn after_a_snapshot_a_watcher_reads_history_again_or_is_told_it_is_compacted() {
        let hub = WatchHub::new(64);
        let history = history_at(1);
        let selector = KeySelector::Prefix(String::new());
        let mut watcher = hub.watch(history.clone(), start(selector.clone(), Some(2)));
        watcher.catch_up().expect("caught up");
        // A snapshot brings revisions 2..=4 that were never published.
        for _ in 0..3 {
            history.apply(&["k"]);
        }
        hub.restored(4);
        hub.publish(history.apply(&["k"])); // 5
        for expected in 2..=5 {
            assert_eq!(
                revision_of(&watcher.next().await.expect("events")),
                expected
            );
        }
        // Another snapshot whose history starts after what the watcher needs.
        for _ in 0..3 {
            history.apply(&["k"]);
        }
        history.0.lock().expect("lock").compact_revision = 8;
        hub.restored(8);
        let cancelled = watcher.next().await.expect("cancelled");
        assert!(
            matches!(
                cancelled,
                WatchMessage::Cancelled {
                    reason: CancelReason::Compacted,
                    resume_revision: 6,
                    compact_revision: 8,
                    ..
                }
            ),
            "{cancelled:?}"
        );
        let mut late = hub.watch(history.clone(), start(selector, Some(3)));
        assert!(matches!(
            late.catch_up(),
            Err(RevisionError::Compacted {
                compact_revision: 8,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_stopping_node_cancels_its_watchers_with_where_to_resume() {
        let hub = WatchHub::new(64);
        let history = history_at(6);
        let mut watcher = hub.watch(
            history.clone(),
            start(KeySelector::Key("k".into()), Some(3)),
        );
        watcher.catch_up().expect("caught up");
        hub.stop();
        let cancelled = watcher.next().await.expect("cancelled");
        assert!(
            matches!(
                cancelled,
                WatchMessage::Cancelled {
                    reason: CancelReason::Stopping,
                    resume_revision: 7,
                    ..
                }
            ),
            "every revision through 6 was processed: {cancelled:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_watcher_is_told_how_far_the_store_is_at_each_interval() {
        let hub = WatchHub::new(64);
        let history = history_at(1);
        let mut asked = start(KeySelector::Key("quiet".into()), None);
        asked.progress_interval = Duration::from_secs(10);
        let mut watcher = hub.watch(history.clone(), asked);
        watcher.catch_up().expect("caught up");
        for _ in 0..5 {
            hub.publish(history.apply(&["busy"])); // 2..=6
        }
        hub.reached(6);
        let started = Instant::now();
        assert_eq!(
            watcher.next().await,
            Some(WatchMessage::Progress { revision: 6 })
        );
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        hub.publish(history.apply(&["quiet"])); // 7
        hub.reached(7);
        assert_eq!(revision_of(&watcher.next().await.expect("events")), 7);
        // An interval in which something was sent has no progress; the one after has.
        assert_eq!(
            watcher.next().await,
            Some(WatchMessage::Progress { revision: 7 })
        );
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_requested_progress_follows_the_queued_events_and_names_the_revision_reached() {
        let hub = WatchHub::new(64);
        let history = history_at(1);
        let mut watcher = hub.watch(
            history.clone(),
            start(KeySelector::Key("a".into()), Some(2)),
        );
        hub.publish(history.apply(&["a"])); // 2
        watcher.catch_up().expect("caught up");
        hub.publish(history.apply(&["a"])); // 3: in the window only
        hub.publish(history.apply(&["b"])); // 4: not selected
        hub.reached(4);
        watcher.request_progress();
        watcher.request_progress(); // shares the answer
        let mut messages = Vec::new();
        for _ in 0..3 {
            messages.push(watcher.next().await.expect("a message"));
        }
        assert_eq!(revision_of(&messages[0]), 2, "from history first");
        assert_eq!(revision_of(&messages[1]), 3, "then the window, drained");
        assert_eq!(messages[2], WatchMessage::Progress { revision: 4 });
        // Without an interval and with no new request, nothing more comes.
        let more = tokio::time::timeout(Duration::from_millis(50), watcher.next()).await;
        assert!(more.is_err(), "{more:?}");
    }
}
