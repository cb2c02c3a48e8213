//! The Watch service of the etcd v3 API: one bidirectional stream, many watches on it, each
//! a watcher of this node's watch hub ([`crate::watch`]), answered as etcd answers.
//!
//! ```text
//!  requests ─► Session (one task per stream) ──────────────────────────► responses (bounded)
//!   create ─► id (client's, or the next free from 0) ─► KvServer::watch ─► catch_up
//!             ├─ refused (duplicate id, empty range, not UTF-8) ─► created + canceled, reason
//!             ├─ compacted ─► created, then canceled with compact_revision
//!             └─ created ─► a follow task per watch:
//!                  Events (with the later ones ready now: a batch, as etcd's catch-up)
//!                    ─► filters, prev_kv (history at revision - 1), fragments ─► responses
//!                  Progress (notify interval) ─► empty response with the watch's id
//!                  Lagged ─► a new watcher from where it stopped (etcd keeps slow watchers)
//!                  Compacted ─► canceled with compact_revision;   Stopping ─► ends
//!   cancel ─► task aborted (and awaited) ─► canceled response (unknown id: nothing, as etcd)
//!   progress request ─► every watch drains the window and reports its revision ─► once all
//!                       did: a response with watch_id -1 at the lowest (no watch: at once)
//!   node stopping ─► the stream ends at once with `etcdserver: server stopped` (Unavailable:
//!                    etcd's clients reconnect and resume each watch from its next revision)
//!   client gone (responses dropped, or its request stream broken) ─► every task aborted
//! ```
//!
//! Ordering: a watch's created response is queued before its task starts; a task queues its
//! events before it reports progress; the session queues a cancellation only after the task
//! ended. So every event of a watch comes after its creation and before its cancellation,
//! and a progress response after every event up to its revision. A response holds the events
//! of one revision, or of several when more were ready (a catch-up from history, a reader
//! that fell behind), as etcd batches them; either way no revision is split across responses
//! but by fragments.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use prost::Message;
use raftkv_client::api::CancelReason;
use raftkv_etcd_api::etcdserverpb::watch_create_request::FilterType;
use raftkv_etcd_api::etcdserverpb::watch_request::RequestUnion;
use raftkv_etcd_api::etcdserverpb::*;
use raftkv_etcd_api::mvccpb::{self, event::EventType};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::codegen::tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::error::{COMPACTED, STOPPED};
use super::{EtcdApi, GRPC_RECEIVE_BYTES_MAX};
use crate::server::KvServer;
use crate::store::{Change, ChangeKind, KeyRange, KeySelector, StateMachine, VersionedValue};
use crate::watch::{RevisionEvents, Start, WatchMessage, Watcher};

/// etcd's reason for a create naming a watch id the stream already has.
pub const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// etcd's reason for a create whose range end is at or before its key.
pub const EMPTY_WATCHER_RANGE: &str = "mvcc: watcher range is empty";

/// Watches one stream may hold at once; a create beyond is refused (created and canceled,
/// with the reason). etcd has no such limit.
pub const WATCHES_PER_STREAM_MAX: usize = 10_000;
/// Responses queued for the client before the watches wait for it to read: a watch that
/// waits long enough falls behind the hub's window and catches up from history.
const RESPONSES_QUEUED_MAX: usize = 64;
/// Progress requests awaiting their answer on one stream; more are dropped (the client has
/// that many unanswered already, and each answer covers every request made before it).
const PROGRESS_REQUESTS_PENDING_MAX: usize = 1_000;
/// Revisions in one response at most (etcd's batch of a catch-up).
const BATCH_REVISIONS_MAX: usize = 1_000;
/// Keys and values in one response, past its first revision, at most: etcd has no such
/// bound, but clients bound what they decode (tonic's default: 4 MiB), and the revisions
/// left over come in the next response.
const BATCH_BYTES_MAX: usize = 1024 * 1024;
/// The size from which the events of one revision are sent in fragments, for a watch that
/// allows them: etcd's rule, its largest request (`--max-request-bytes`, 1.5 MiB by
/// default) and the gRPC overhead it allows on top (512 KiB).
pub const FRAGMENT_BYTES: usize = GRPC_RECEIVE_BYTES_MAX;

/// The responses of one stream.
type ResponseStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send + 'static>>;
/// Where a stream's responses are queued.
type Responses = mpsc::Sender<Result<WatchResponse, Status>>;

/// A signed revision, count or id for the wire (the store's never exceed `i64::MAX`).
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// What one watch asked for at its creation.
#[derive(Clone, Debug)]
struct WatchOptions {
    /// Its id on the stream.
    id: i64,
    /// The keys, start revision and progress interval, as the hub takes them.
    start: Start,
    /// Drop put events (etcd's NOPUT filter).
    no_put: bool,
    /// Drop delete events (etcd's NODELETE filter).
    no_delete: bool,
    /// Send each event's previous version.
    prev_kv: bool,
    /// Split a revision's events larger than [`FRAGMENT_BYTES`].
    fragment: bool,
}

impl WatchOptions {
    fn selects(&self, change: &Change) -> bool {
        match change.kind {
            ChangeKind::Put => !self.no_put,
            ChangeKind::Delete => !self.no_delete,
        }
    }
}

/// What a watch's task tells its session.
#[derive(Debug)]
enum Report {
    /// Every event of the watch up to `revision` is queued, answering the progress requests
    /// up to `request`.
    Progress {
        watch_id: i64,
        generation: u64,
        request: u64,
        revision: u64,
    },
    /// The watch ended by itself (compacted, or the node stops).
    Ended { watch_id: i64, generation: u64 },
}

/// A watch's task, as its session holds it. Dropped, the task is aborted.
struct WatchTask {
    /// Tells watches apart that reused an id.
    generation: u64,
    /// Progress requests, by number.
    progress: mpsc::UnboundedSender<u64>,
    task: JoinHandle<()>,
}

impl Drop for WatchTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WatchTask {
    /// Stops the task and waits until it has: it queues nothing after this returns.
    async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

/// A progress request waiting for watches to report.
struct PendingProgress {
    /// Its number on the stream (from 1).
    number: u64,
    /// The watches that have not reported since it was made.
    waiting: BTreeSet<i64>,
    /// The lowest revision reported so far.
    revision: Option<u64>,
}

/// The session closed: the client went away.
struct Closed;

/// One watch stream.
struct Session {
    api: EtcdApi,
    responses: Responses,
    reports: mpsc::UnboundedSender<Report>,
    watches: BTreeMap<i64, WatchTask>,
    /// The next id the server picks (etcd's: from 0, skipping ids in use).
    next_id: i64,
    next_generation: u64,
    progress: VecDeque<PendingProgress>,
    progress_requests: u64,
}

impl Session {
    async fn run(
        mut self,
        mut requests: Streaming<WatchRequest>,
        mut reports: mpsc::UnboundedReceiver<Report>,
    ) {
        let stopped = self.api.server().watch_hub().stopped();
        tokio::pin!(stopped);
        let mut requests_open = true;
        loop {
            let outcome = tokio::select! {
                biased;
                () = self.responses.closed() => Err(Closed),
                // The response stream ends itself with the status (see `watch`); queued
                // here too, for a stream that drains its queue first.
                () = &mut stopped => {
                    let _ = self.responses.try_send(Err(STOPPED.status()));
                    Err(Closed)
                }
                Some(report) = reports.recv() => self.report(report).await,
                request = requests.next(), if requests_open => match request {
                    Some(Ok(request)) => self.request(request).await,
                    // A broken request stream: the client is gone.
                    Some(Err(_)) => Err(Closed),
                    // The client closed its side: etcd goes on serving the watches until
                    // the client goes away.
                    None => {
                        requests_open = false;
                        Ok(())
                    }
                },
            };
            if outcome.is_err() {
                break;
            }
        }
        // Dropping the tasks aborts them: each drops its watcher.
        self.watches.clear();
    }

    async fn send(&self, response: WatchResponse) -> Result<(), Closed> {
        self.responses.send(Ok(response)).await.map_err(|_| Closed)
    }

    async fn request(&mut self, request: WatchRequest) -> Result<(), Closed> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => self.cancel(cancel.watch_id).await,
            Some(RequestUnion::ProgressRequest(_)) => self.request_progress().await,
            // As etcd: a request of no known kind is ignored, the stream goes on.
            None => Ok(()),
        }
    }

    /// A create refused: etcd answers it created and canceled at once, with the reason.
    async fn refuse(&self, watch_id: i64, reason: &str) -> Result<(), Closed> {
        self.send(WatchResponse {
            header: Some(self.api.header()),
            watch_id,
            created: true,
            canceled: true,
            cancel_reason: reason.to_owned(),
            ..WatchResponse::default()
        })
        .await
    }

    async fn create(&mut self, create: WatchCreateRequest) -> Result<(), Closed> {
        let range = match KeyRange::from_etcd(&create.key, &create.range_end) {
            Ok(range) => range,
            Err(error) => return self.refuse(-1, &error.to_string()).await,
        };
        if range.is_empty() {
            return self.refuse(-1, EMPTY_WATCHER_RANGE).await;
        }
        if self.watches.len() >= WATCHES_PER_STREAM_MAX {
            let reason = format!(
                "raftkv: a watch stream holds at most {WATCHES_PER_STREAM_MAX} watches; cancel \
                 one or open another stream"
            );
            return self.refuse(-1, &reason).await;
        }
        let id = if create.watch_id != 0 {
            if self.watches.contains_key(&create.watch_id) {
                return self.refuse(-1, DUPLICATE_WATCH_ID).await;
            }
            create.watch_id
        } else {
            while self.watches.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        };
        let config = self.api.server().config();
        let options = WatchOptions {
            id,
            start: Start {
                selector: KeySelector::Range(range),
                // 0: from the next revision; a negative one, as etcd, reads from the oldest.
                start_revision: match create.start_revision {
                    0 => None,
                    revision => Some(u64::try_from(revision).unwrap_or(1).max(1)),
                },
                progress_interval: if create.progress_notify {
                    config.coordination.watch_progress_notify_interval
                } else {
                    Duration::ZERO
                },
            },
            no_put: create.filters.contains(&(FilterType::Noput as i32)),
            no_delete: create.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: create.prev_kv,
            fragment: create.fragment,
        };
        let mut watcher = self.api.server().watch(options.start.clone());
        let caught_up = watcher.catch_up();
        // The header of a watch from now is the revision it starts after, as etcd's.
        let header = match options.start.start_revision {
            None => self
                .api
                .header_at(watcher.start_revision().saturating_sub(1)),
            Some(_) => self.api.header(),
        };
        self.send(WatchResponse {
            header: Some(header),
            watch_id: id,
            created: true,
            ..WatchResponse::default()
        })
        .await?;
        if caught_up.is_err() {
            // Compacted: the only refusal of a catch-up.
            let compact_revision = self.api.server().state().compact_revision();
            return self.send(compacted(&self.api, id, compact_revision)).await;
        }
        let (progress, asked) = mpsc::unbounded_channel();
        self.next_generation += 1;
        let generation = self.next_generation;
        let follower = Follower {
            api: self.api.clone(),
            options,
            generation,
            responses: self.responses.clone(),
            reports: self.reports.clone(),
        };
        let task = tokio::spawn(follower.run(watcher, asked));
        self.watches.insert(
            id,
            WatchTask {
                generation,
                progress,
                task,
            },
        );
        Ok(())
    }

    async fn cancel(&mut self, watch_id: i64) -> Result<(), Closed> {
        // etcd answers a cancel of a watch it does not have with nothing.
        let Some(task) = self.watches.remove(&watch_id) else {
            return Ok(());
        };
        task.stop().await;
        self.send(WatchResponse {
            header: Some(self.api.header()),
            watch_id,
            canceled: true,
            ..WatchResponse::default()
        })
        .await?;
        self.forget_progress_of(watch_id).await
    }

    async fn request_progress(&mut self) -> Result<(), Closed> {
        if self.watches.is_empty() {
            // Nothing to wait for (etcd 3.4 answers at once too).
            return self.send(progress_response(&self.api, None)).await;
        }
        if self.progress.len() >= PROGRESS_REQUESTS_PENDING_MAX {
            tracing::debug!("progress request dropped: too many unanswered on the stream");
            return Ok(());
        }
        self.progress_requests += 1;
        let number = self.progress_requests;
        self.progress.push_back(PendingProgress {
            number,
            waiting: self.watches.keys().copied().collect(),
            revision: None,
        });
        for task in self.watches.values() {
            // A task that ended reports it; the session then stops waiting for it.
            let _ = task.progress.send(number);
        }
        Ok(())
    }

    async fn report(&mut self, report: Report) -> Result<(), Closed> {
        match report {
            Report::Progress {
                watch_id,
                generation,
                request,
                revision,
            } => {
                if !self.is_current(watch_id, generation) {
                    return Ok(());
                }
                for pending in self
                    .progress
                    .iter_mut()
                    .filter(|pending| pending.number <= request)
                {
                    if pending.waiting.remove(&watch_id) {
                        pending.revision = Some(
                            pending
                                .revision
                                .map_or(revision, |lowest| lowest.min(revision)),
                        );
                    }
                }
                self.answer_progress().await
            }
            Report::Ended {
                watch_id,
                generation,
            } => {
                if !self.is_current(watch_id, generation) {
                    return Ok(());
                }
                self.watches.remove(&watch_id);
                self.forget_progress_of(watch_id).await
            }
        }
    }

    fn is_current(&self, watch_id: i64, generation: u64) -> bool {
        self.watches
            .get(&watch_id)
            .is_some_and(|task| task.generation == generation)
    }

    async fn forget_progress_of(&mut self, watch_id: i64) -> Result<(), Closed> {
        for pending in &mut self.progress {
            pending.waiting.remove(&watch_id);
        }
        self.answer_progress().await
    }

    /// Answers the progress requests every watch has reported for, oldest first.
    async fn answer_progress(&mut self) -> Result<(), Closed> {
        while self
            .progress
            .front()
            .is_some_and(|pending| pending.waiting.is_empty())
        {
            let Some(pending) = self.progress.pop_front() else {
                break;
            };
            self.send(progress_response(&self.api, pending.revision))
                .await?;
        }
        Ok(())
    }
}

/// The answer to a progress request: watch id -1 and the revision every watch reached.
fn progress_response(api: &EtcdApi, revision: Option<u64>) -> WatchResponse {
    WatchResponse {
        header: Some(revision.map_or_else(|| api.header(), |revision| api.header_at(revision))),
        watch_id: -1,
        ..WatchResponse::default()
    }
}

/// A watch's end because history it needs is compacted: canceled with the compaction
/// revision, from which etcd's clients report `ErrCompacted`.
fn compacted(api: &EtcdApi, watch_id: i64, compact_revision: u64) -> WatchResponse {
    WatchResponse {
        // Revision 0, as etcd's (its response carries no revision of the store).
        header: Some(api.header_at(0)),
        watch_id,
        canceled: true,
        compact_revision: signed(compact_revision),
        // etcd 3.4 sends no reason (its clients derive this text from compact_revision);
        // raftkv sends the same text, for clients that read only the reason.
        cancel_reason: COMPACTED.message.to_owned(),
        ..WatchResponse::default()
    }
}

/// One watch's task: its watcher's messages as responses.
struct Follower {
    api: EtcdApi,
    options: WatchOptions,
    generation: u64,
    responses: Responses,
    reports: mpsc::UnboundedSender<Report>,
}

impl Follower {
    async fn run(
        self,
        mut watcher: Watcher<Arc<KvServer>>,
        mut asked: mpsc::UnboundedReceiver<u64>,
    ) {
        let id = self.options.id;
        // The latest progress request handed to the watcher, and the latest answered.
        let (mut requested, mut answered) = (0, 0);
        // A message read while gathering a batch of events, to handle after it.
        let mut held = None;
        loop {
            let message = if let Some(message) = held.take() {
                Some(message)
            } else {
                tokio::select! {
                biased;
                request = asked.recv() => match request {
                    Some(request) => {
                        requested = request;
                        watcher.request_progress();
                        continue;
                    }
                    // The session is gone.
                    None => return,
                },
                message = watcher.next() => message,
                }
            };
            let Some(message) = message else {
                break;
            };
            match message {
                WatchMessage::Events(events) => {
                    let batch = gather(&mut watcher, events, &mut held);
                    for response in self.responses_of(&batch) {
                        if self.responses.send(Ok(response)).await.is_err() {
                            return;
                        }
                    }
                }
                WatchMessage::Progress { revision } => {
                    if requested > answered {
                        answered = requested;
                        let _ = self.reports.send(Report::Progress {
                            watch_id: id,
                            generation: self.generation,
                            request: requested,
                            revision,
                        });
                    } else {
                        // A notification of the interval (only a watch that asked for them
                        // has one).
                        let response = WatchResponse {
                            header: Some(self.api.header_at(revision)),
                            watch_id: id,
                            ..WatchResponse::default()
                        };
                        if self.responses.send(Ok(response)).await.is_err() {
                            return;
                        }
                    }
                }
                WatchMessage::Cancelled {
                    reason: CancelReason::Lagged,
                    resume_revision,
                    ..
                } => {
                    // etcd never drops a slow watcher: it catches it up from history. So
                    // does this one, from the revision after the last it processed.
                    let mut start = self.options.start.clone();
                    start.start_revision = Some(resume_revision);
                    watcher = self.api.server().watch(start);
                    if watcher.catch_up().is_err() {
                        let compact_revision = self.api.server().state().compact_revision();
                        let _ = self
                            .responses
                            .send(Ok(compacted(&self.api, id, compact_revision)))
                            .await;
                        break;
                    }
                    if requested > answered {
                        watcher.request_progress();
                    }
                }
                WatchMessage::Cancelled {
                    reason: CancelReason::Compacted,
                    compact_revision,
                    ..
                } => {
                    let _ = self
                        .responses
                        .send(Ok(compacted(&self.api, id, compact_revision)))
                        .await;
                    break;
                }
                // The session ends the stream for the stop.
                WatchMessage::Cancelled {
                    reason: CancelReason::Stopping,
                    ..
                } => break,
            }
        }
        let _ = self.reports.send(Report::Ended {
            watch_id: id,
            generation: self.generation,
        });
    }

    /// The responses of a batch of revisions' changes: one with those the filters let
    /// through, with their previous versions if asked, in fragments if asked and large; none
    /// if none is left. Its header's revision is the store's when the store is past the
    /// batch (a catch-up, as etcd's), else the batch's last.
    fn responses_of(&self, batch: &[RevisionEvents]) -> Vec<WatchResponse> {
        let Some(last) = batch.last() else {
            return Vec::new();
        };
        let revision = last
            .revision()
            .max(self.api.server().watch_hub().revision());
        let selected: Vec<&Change> = batch
            .iter()
            .flat_map(RevisionEvents::changes)
            .filter(|change| self.options.selects(change))
            .collect();
        if selected.is_empty() {
            return Vec::new();
        }
        let events = {
            let state = self.options.prev_kv.then(|| self.api.server().state());
            selected
                .iter()
                .map(|change| mvccpb::Event {
                    r#type: match change.kind {
                        ChangeKind::Put => EventType::Put as i32,
                        ChangeKind::Delete => EventType::Delete as i32,
                    },
                    kv: Some(key_value(&change.key, &change.value)),
                    prev_kv: state.as_deref().and_then(|state| previous(state, change)),
                })
                .collect()
        };
        let response = WatchResponse {
            header: Some(self.api.header_at(revision)),
            watch_id: self.options.id,
            events,
            ..WatchResponse::default()
        };
        if self.options.fragment {
            fragments(response, FRAGMENT_BYTES)
        } else {
            vec![response]
        }
    }
}

/// `first` and the events messages of later revisions `watcher` has ready now, as etcd
/// sends a catch-up from history: several revisions in one response, at most
/// [`BATCH_REVISIONS_MAX`] and, past the first, [`BATCH_BYTES_MAX`] of values. A ready
/// message of another kind goes to `held`, to handle after the batch.
fn gather(
    watcher: &mut Watcher<Arc<KvServer>>,
    first: RevisionEvents,
    held: &mut Option<WatchMessage>,
) -> Vec<RevisionEvents> {
    let value_bytes = |events: &RevisionEvents| -> usize {
        events
            .changes()
            .iter()
            .map(|change| change.key.len() + change.value.value.len())
            .sum()
    };
    let mut bytes = value_bytes(&first);
    let mut batch = vec![first];
    while batch.len() < BATCH_REVISIONS_MAX && bytes < BATCH_BYTES_MAX {
        // `next` is cancel-safe: a message not ready now stays where it is.
        match watcher.next().now_or_never() {
            Some(Some(WatchMessage::Events(events))) => {
                bytes += value_bytes(&events);
                batch.push(events);
            }
            Some(Some(other)) => {
                *held = Some(other);
                break;
            }
            // Ended (the next read says so again), or nothing ready.
            Some(None) | None => break,
        }
    }
    batch
}

/// A key at a version, as etcd's `KeyValue`.
fn key_value(key: &str, value: &VersionedValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: Bytes::copy_from_slice(key.as_bytes()),
        create_revision: signed(value.create_revision),
        mod_revision: signed(value.mod_revision),
        version: signed(value.version),
        value: value.value.clone(),
        lease: signed(value.lease),
    }
}

/// The version of the changed key before the change, read from history at the revision
/// before it, as etcd reads it: none for a creation, and none once that revision is
/// compacted (etcd leaves it out too rather than fail the watch).
fn previous(state: &StateMachine, change: &Change) -> Option<mvccpb::KeyValue> {
    let value = &change.value;
    if change.kind == ChangeKind::Put && value.create_revision == value.mod_revision {
        return None;
    }
    let before = value.mod_revision.checked_sub(1)?;
    let version = state.get_at(&change.key, Some(before)).ok()??;
    Some(key_value(&change.key, &version))
}

/// `response` split as etcd splits it when it is `bytes_max` or more and has two events or
/// more: each part takes events while it stays under `bytes_max` (at least one), and every
/// part but the last has `fragment` set.
fn fragments(response: WatchResponse, bytes_max: usize) -> Vec<WatchResponse> {
    if response.encoded_len() < bytes_max || response.events.len() < 2 {
        return vec![response];
    }
    let mut shell = response.clone();
    shell.events = Vec::new();
    shell.fragment = true;
    let shell_bytes = shell.encoded_len();
    // An event's bytes in its response: prost's length of field 11 with this message.
    let event_bytes = |event: &mvccpb::Event| prost::encoding::message::encoded_len(11, event);
    let mut parts = Vec::new();
    let mut part = shell.clone();
    let mut part_bytes = shell_bytes;
    for event in response.events {
        let bytes = event_bytes(&event);
        if !part.events.is_empty() && part_bytes + bytes >= bytes_max {
            parts.push(std::mem::replace(&mut part, shell.clone()));
            part_bytes = shell_bytes;
        }
        part_bytes += bytes;
        part.events.push(event);
    }
    part.fragment = false;
    parts.push(part);
    parts
}

#[tonic::async_trait]
impl watch_server::Watch for EtcdApi {
    type WatchStream = ResponseStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (responses, queued) = mpsc::channel(RESPONSES_QUEUED_MAX);
        let (reports, reported) = mpsc::unbounded_channel();
        let session = Session {
            api: self.clone(),
            responses,
            reports,
            watches: BTreeMap::new(),
            next_id: 0,
            next_generation: 0,
            progress: VecDeque::new(),
            progress_requests: 0,
        };
        tokio::spawn(session.run(request.into_inner(), reported));
        // When the node stops, the stream ends at once with `etcdserver: server stopped`
        // (Unavailable: etcd's clients take it for a passing failure, reconnect, to another
        // member, and resume every watch from its next revision), even if responses are
        // still queued for a client that reads slowly: they are dropped, the client resumes
        // from the last it read.
        let stopped: Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            Box::pin(self.server().watch_hub().stopped());
        let stream = futures_util::stream::unfold(Some((queued, stopped)), |state| async move {
            let (mut queued, mut stopped) = state?;
            tokio::select! {
                biased;
                () = &mut stopped => Some((Err(STOPPED.status()), None)),
                response = queued.recv() => Some((response?, Some((queued, stopped)))),
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str, value_bytes: usize) -> mvccpb::Event {
        mvccpb::Event {
            r#type: EventType::Put as i32,
            kv: Some(mvccpb::KeyValue {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::from(vec![b'v'; value_bytes]),
                ..mvccpb::KeyValue::default()
            }),
            prev_kv: None,
        }
    }

    fn response_of(events: Vec<mvccpb::Event>) -> WatchResponse {
        WatchResponse {
            watch_id: 3,
            events,
            ..WatchResponse::default()
        }
    }

    #[test]
    fn a_small_response_or_a_single_event_is_not_fragmented() {
        let small = response_of(vec![event("a", 10), event("b", 10)]);
        assert_eq!(fragments(small.clone(), 1_000), vec![small]);
        let single = response_of(vec![event("a", 5_000)]);
        assert_eq!(fragments(single.clone(), 1_000), vec![single]);
    }

    #[test]
    fn a_large_response_is_split_under_the_limit_with_fragment_on_all_but_the_last() {
        let events: Vec<mvccpb::Event> = (0..10).map(|i| event(&format!("k{i}"), 300)).collect();
        let whole = response_of(events.clone());
        let parts = fragments(whole, 1_000);
        assert!(parts.len() > 1, "{} parts", parts.len());
        for (index, part) in parts.iter().enumerate() {
            assert_eq!(part.fragment, index + 1 < parts.len(), "part {index}");
            assert_eq!(part.watch_id, 3);
            assert!(
                part.events.len() == 1 || part.encoded_len() < 1_000,
                "part {index}: {} bytes",
                part.encoded_len()
            );
        }
        let rejoined: Vec<mvccpb::Event> = parts.into_iter().flat_map(|part| part.events).collect();
        assert_eq!(rejoined, events, "every event once, in order");
    }

    #[test]
    fn filters_drop_puts_or_deletes() {
        let options = |no_put, no_delete| WatchOptions {
            id: 0,
            start: Start {
                selector: KeySelector::Key("k".into()),
                start_revision: None,
                progress_interval: Duration::ZERO,
            },
            no_put,
            no_delete,
            prev_kv: false,
            fragment: false,
        };
        let change = |kind| Change {
            kind,
            key: "k".into(),
            value: VersionedValue {
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: 2,
                version: 0,
                lease: 0,
            },
        };
        let (put, delete) = (change(ChangeKind::Put), change(ChangeKind::Delete));
        assert!(options(false, false).selects(&put) && options(false, false).selects(&delete));
        assert!(!options(true, false).selects(&put) && options(true, false).selects(&delete));
        assert!(options(false, true).selects(&put) && !options(false, true).selects(&delete));
    }
}
