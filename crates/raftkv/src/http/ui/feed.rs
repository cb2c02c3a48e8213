//! The dashboard's live feed: one gathering task per node, running only while a page is
//! connected, and the frames each connected page is sent.
//!
//! ```text
//!  page connects ─► FeedHub::subscribe (at most SUBSCRIBERS_MAX) ─► first one starts gather
//!  gather task: every GATHER_INTERVAL, or at once when this node's term, leader or role
//!               changes (looked at every LOCAL_POLL_INTERVAL):
//!      this node's status + configuration ─┐
//!      each other member's /v1/status?load ├─► members, Observed ─► events_between
//!        (in parallel, PEER_TIMEOUT each;  │   loads ─► LoadDelta ─► Sample
//!         no answer: shown unreachable) ───┘   ─► FeedState ─► version += 1 (watch)
//!  each page: version changed ─► one frame: the members, and the samples and events it
//!             has not had (everything kept, the first time) ─► `event: cluster` SSE message
//!  last page gone ─► the task stops at its next round: nothing is gathered unwatched
//! ```
//!
//! Everything kept is bounded: the samples of the last [`HISTORY`] (at most
//! [`SAMPLES_MAX`]), the last [`EVENTS_MAX`] events, one previous reading per member.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use raft_core::{Configuration, NodeId};
use raftkv_client::api::{NodeLoad, StatusResponse};
use serde::Serialize;
use tokio::sync::watch;

use super::view::{events_between, lag, ClusterEvent, LoadDelta, MemberView, Observed, Sample};
use crate::http::status::local_status;
use crate::http::AppState;

/// Pages connected to one node's feed at most; more are refused (503), which bounds what the
/// feed costs the node however many dashboards are open.
pub(super) const SUBSCRIBERS_MAX: usize = 32;
/// Time between two gatherings while nothing changes.
const GATHER_INTERVAL: Duration = Duration::from_secs(1);
/// Time between two looks at this node's own term, leader and role (atomics, no I/O), so a
/// change is shown at once rather than at the next gathering.
const LOCAL_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest interval a sample covers: a gathering on a change that comes sooner after the
/// previous sample updates the members and events only, so that a burst (the writes held by a
/// leadership transfer, answered at once) does not show as a rate many times the real one.
const SAMPLE_INTERVAL_MIN: Duration = Duration::from_millis(900);
/// Longest wait for another member's status: a member slower than this is shown unreachable.
const PEER_TIMEOUT: Duration = Duration::from_millis(800);
/// How far back the samples go.
const HISTORY: Duration = Duration::from_secs(5 * 60);
/// Samples kept at most (gatherings on changes come between the regular ones).
const SAMPLES_MAX: usize = 600;
/// Events kept at most.
const EVENTS_MAX: usize = 100;

/// Where a node's feed keeps what it gathered, and who listens.
#[derive(Debug)]
pub(crate) struct FeedHub {
    state: Mutex<FeedState>,
    /// Bumped after every gathering: the connected pages wait on it.
    version: watch::Sender<u64>,
}

/// The feed's state, under the hub's lock.
#[derive(Debug, Default)]
struct FeedState {
    /// Pages connected now.
    subscribers: usize,
    /// The gathering task runs (it clears this when it stops, under the lock).
    gathering: bool,
    /// The latest gathering's cluster, once there was one.
    latest: Option<Latest>,
    samples: VecDeque<(Instant, Sample)>,
    events: VecDeque<ClusterEvent>,
    /// Each member's previous load reading, and when it was taken.
    previous_loads: HashMap<u64, NodeLoad>,
    previous_reading: Option<Instant>,
    previous_observed: Option<Observed>,
    next_sample_seq: u64,
    next_event_seq: u64,
}

/// The cluster at the latest gathering, as a frame shows it.
#[derive(Clone, Debug, Serialize)]
struct Latest {
    at_ms: u64,
    /// The node serving the page.
    served_by: u64,
    /// The leader it knows.
    leader: Option<u64>,
    /// Its term.
    term: u64,
    members: Vec<MemberView>,
    /// The configuration is joint (voters being changed).
    joint: bool,
    /// A membership change is under way.
    change_in_progress: bool,
    /// The store's revision and its oldest readable one (for the compact action).
    revision: u64,
    compact_revision: u64,
}

/// One message to a page.
#[derive(Serialize)]
struct Frame<'a> {
    #[serde(flatten)]
    latest: &'a Latest,
    /// Samples the page has not had, oldest first.
    samples: Vec<&'a Sample>,
    /// Events the page has not had, oldest first.
    events: Vec<&'a ClusterEvent>,
    /// How far the series goes back, in seconds (for the charts' axis).
    history_seconds: u64,
}

/// What a page was sent up to: the next sample and event it has not had.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Cursor {
    sample_seq: u64,
    event_seq: u64,
}

/// A connected page; leaving (dropping it) lets the feed stop once nobody watches.
#[derive(Debug)]
pub(super) struct Subscription {
    hub: Arc<FeedHub>,
    /// Wakes the page's stream after each gathering.
    pub(super) version: watch::Receiver<u64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        assert!(state.subscribers > 0, "invariant feed-subscribers-counted");
        state.subscribers -= 1;
    }
}

impl Default for FeedHub {
    fn default() -> FeedHub {
        FeedHub {
            state: Mutex::default(),
            version: watch::Sender::new(0),
        }
    }
}

impl FeedHub {
    fn lock(&self) -> MutexGuard<'_, FeedState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Connects a page, starting the gathering task if it does not run; `None` when
    /// [`SUBSCRIBERS_MAX`] pages are connected already.
    pub(super) fn subscribe(self: &Arc<FeedHub>, app: &AppState) -> Option<Subscription> {
        let start = {
            let mut state = self.lock();
            if state.subscribers >= SUBSCRIBERS_MAX {
                return None;
            }
            state.subscribers += 1;
            !std::mem::replace(&mut state.gathering, true)
        };
        if start {
            tokio::spawn(gather_loop(app.clone(), Arc::clone(self)));
        }
        Some(Subscription {
            hub: Arc::clone(self),
            version: self.version.subscribe(),
        })
    }

    /// The page's next frame after `cursor` as an SSE message, and the cursor past it; `None`
    /// before the first gathering.
    pub(super) fn frame_after(&self, cursor: Cursor) -> Option<(Bytes, Cursor)> {
        let state = self.lock();
        let latest = state.latest.as_ref()?;
        let frame = Frame {
            latest,
            samples: state
                .samples
                .iter()
                .map(|(_, sample)| sample)
                .filter(|sample| sample.seq >= cursor.sample_seq)
                .collect(),
            events: state
                .events
                .iter()
                .filter(|event| event.seq >= cursor.event_seq)
                .collect(),
            history_seconds: HISTORY.as_secs(),
        };
        let json = match serde_json::to_string(&frame) {
            Ok(json) => json,
            Err(error) => {
                // Every field is plain data; this would be a bug, reported but not fatal.
                tracing::error!(%error, "the dashboard's frame could not be encoded");
                return None;
            }
        };
        let next = Cursor {
            sample_seq: state.next_sample_seq,
            event_seq: state.next_event_seq,
        };
        Some((
            Bytes::from(format!("event: cluster\ndata: {json}\n\n")),
            next,
        ))
    }
}

/// Gathers while pages are connected; stops at the first round that finds none.
async fn gather_loop(app: AppState, hub: Arc<FeedHub>) {
    let mut next_gathering = Instant::now();
    let mut seen = None;
    loop {
        {
            let mut state = hub.lock();
            if state.subscribers == 0 {
                state.gathering = false;
                return;
            }
        }
        let metrics = app.server.node().metrics();
        let local = Some((metrics.term, metrics.leader, metrics.is_leader));
        if Instant::now() >= next_gathering || local != seen {
            seen = local;
            next_gathering = Instant::now() + GATHER_INTERVAL;
            gather(&app, &hub).await;
            hub.version.send_modify(|version| *version += 1);
        }
        tokio::time::sleep(LOCAL_POLL_INTERVAL).await;
    }
}

/// A member's status, or why it could not be had.
type Reading = Result<StatusResponse, String>;

/// What one gathering found, before it is recorded.
struct Gathered {
    own_id: u64,
    /// This node's term and the leader it knows.
    term: u64,
    leader: Option<u64>,
    configuration: Configuration,
    change_in_progress: bool,
    /// Every member's status (this node's included), by id.
    readings: BTreeMap<u64, Reading>,
    /// The HTTP addresses known of the members that did not answer.
    addresses: BTreeMap<u64, Option<String>>,
    revision: u64,
    compact_revision: u64,
    /// When: for rates, and for a person.
    now: Instant,
    at_ms: u64,
}

/// One gathering: every member's status, recorded into the hub.
async fn gather(app: &AppState, hub: &FeedHub) {
    match read_cluster(app).await {
        Ok(gathered) => hub.lock().record(gathered),
        Err(error) => tracing::debug!(%error, "the dashboard could not read this node's status"),
    }
}

/// This node's status and configuration, and every other member's status (in parallel).
async fn read_cluster(app: &AppState) -> Result<Gathered, crate::server::ServeError> {
    let server = &app.server;
    let own_id = server.config().id;
    let status = server.node().status().await?;
    let configuration = status.configuration;
    let others: Vec<NodeId> = configuration.members().filter(|id| *id != own_id).collect();
    // This node's status is read with the others', not before them: under load, readings
    // taken apart differ by what was written in between, which would show as lag.
    let (own, answers) = tokio::join!(
        local_status(app, true),
        futures_util::future::join_all(others.iter().map(|id| read_member(app, *id)))
    );
    let own = own?;
    let mut readings: BTreeMap<u64, Reading> = others.iter().map(|id| id.0).zip(answers).collect();
    let addresses = readings
        .iter()
        .filter(|(_, reading)| reading.is_err())
        .map(|(id, _)| (*id, server.http_address_of(NodeId(*id))))
        .collect();
    let (term, leader) = (own.term, own.leader);
    readings.insert(own_id.0, Ok(own));
    let (revision, compact_revision) = {
        let store = server.state();
        (store.revision(), store.compact_revision())
    };
    Ok(Gathered {
        own_id: own_id.0,
        term,
        leader,
        configuration,
        change_in_progress: status.configuration_change_in_progress,
        readings,
        addresses,
        revision,
        compact_revision,
        now: Instant::now(),
        at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            }),
    })
}

impl FeedState {
    /// Records a gathering: the members as shown, the events since the previous one, and a
    /// sample when one is due.
    fn record(&mut self, mut gathered: Gathered) {
        let sample_due = self
            .previous_reading
            .is_none_or(|previous| gathered.now.duration_since(previous) >= SAMPLE_INTERVAL_MIN);
        let answers = || {
            gathered
                .readings
                .values()
                .filter_map(|reading| reading.as_ref().ok())
        };
        let commit_max = answers()
            .map(|status| status.commit_index)
            .max()
            .unwrap_or(0);
        let term = answers()
            .map(|status| status.term)
            .fold(gathered.term, u64::max);
        let mut loads = ClusterLoad::default();
        let members: Vec<MemberView> = gathered
            .readings
            .iter()
            .map(|(id, reading)| {
                let membership = membership_of(&gathered.configuration, NodeId(*id));
                match reading {
                    Ok(status) => {
                        let previous = self.previous_loads.get(id);
                        let fsyncs = loads.add(previous, status.load.as_ref());
                        answered(status, membership, commit_max, &fsyncs)
                    }
                    Err(reason) => unreachable_member(
                        *id,
                        gathered.addresses.get(id).cloned().flatten(),
                        membership,
                        reason,
                    ),
                }
            })
            .collect();
        if sample_due {
            // Members that did not answer keep their previous reading, so that their first
            // answer after an outage counts from it (a restart shows as counts gone down).
            for (id, reading) in &mut gathered.readings {
                if let Ok(StatusResponse {
                    load: Some(load), ..
                }) = reading
                {
                    self.previous_loads
                        .insert(*id, std::mem::replace(load, empty_load()));
                }
            }
            let readings = &gathered.readings;
            self.previous_loads
                .retain(|id, _| readings.contains_key(id));
        }
        let observed = Observed {
            term,
            leader: gathered.leader,
            members: members
                .iter()
                .map(|member| (member.id, (member.membership, member.reachable)))
                .collect(),
            change_in_progress: gathered.change_in_progress,
        };
        self.record_events(&observed, gathered.at_ms);
        self.previous_observed = Some(observed);
        if sample_due {
            self.record_sample(&loads, commit_max, gathered.now, gathered.at_ms);
        }
        self.latest = Some(Latest {
            at_ms: gathered.at_ms,
            served_by: gathered.own_id,
            leader: gathered.leader,
            term: gathered.term,
            members,
            joint: gathered.configuration.is_joint(),
            change_in_progress: gathered.change_in_progress,
            revision: gathered.revision,
            compact_revision: gathered.compact_revision,
        });
    }

    /// The events between the previous observation and `observed` (the first one: what the
    /// feed starts from), keeping the last [`EVENTS_MAX`].
    fn record_events(&mut self, observed: &Observed, at_ms: u64) {
        let events = match &self.previous_observed {
            Some(before) => events_between(before, observed),
            None => vec![(
                "info",
                match observed.leader {
                    Some(leader) => {
                        format!("watching: term {}, node {leader} leads", observed.term)
                    }
                    None => format!("watching: term {}, no leader known", observed.term),
                },
            )],
        };
        for (kind, text) in events {
            let seq = self.next_event_seq;
            self.next_event_seq += 1;
            self.events.push_back(ClusterEvent {
                seq,
                at_ms,
                kind,
                text,
            });
        }
        while self.events.len() > EVENTS_MAX {
            self.events.pop_front();
        }
    }

    /// A sample of what `loads` observed since the previous reading (none for the first
    /// reading, which has nothing to compare with), keeping the last [`HISTORY`].
    fn record_sample(&mut self, loads: &ClusterLoad, commit_max: u64, now: Instant, at_ms: u64) {
        if let Some(previous) = self.previous_reading {
            let seconds = now.duration_since(previous).as_secs_f64().max(0.001);
            let seq = self.next_sample_seq;
            self.next_sample_seq += 1;
            self.samples.push_back((
                now,
                Sample {
                    seq,
                    at_ms,
                    writes_per_second: loads.writes.count() as f64 / seconds,
                    reads_per_second: loads.reads.count() as f64 / seconds,
                    write_p99_ms: loads.writes.quantile_ms(0.99),
                    read_p99_ms: loads.reads.quantile_ms(0.99),
                    fsync_p99_ms: loads.fsyncs.quantile_ms(0.99),
                    commit_index: commit_max,
                },
            ));
        }
        self.previous_reading = Some(now);
        while self.samples.len() > SAMPLES_MAX
            || self
                .samples
                .front()
                .is_some_and(|(taken, _)| now.duration_since(*taken) > HISTORY)
        {
            self.samples.pop_front();
        }
    }
}

/// What the members observed since their previous readings, summed.
#[derive(Default)]
struct ClusterLoad {
    writes: LoadDelta,
    reads: LoadDelta,
    fsyncs: LoadDelta,
}

impl ClusterLoad {
    /// Adds a member's `now` reading against its `previous` one; returns its own fsyncs.
    fn add(&mut self, previous: Option<&NodeLoad>, now: Option<&NodeLoad>) -> LoadDelta {
        let mut own_fsyncs = LoadDelta::default();
        if let Some(now) = now {
            self.writes
                .add(previous.map(|p| &p.write_latency), &now.write_latency);
            self.reads
                .add(previous.map(|p| &p.read_latency), &now.read_latency);
            self.fsyncs
                .add(previous.map(|p| &p.wal_fsync), &now.wal_fsync);
            own_fsyncs.add(previous.map(|p| &p.wal_fsync), &now.wal_fsync);
        }
        own_fsyncs
    }
}

/// The view of a member that did not answer.
fn unreachable_member(
    id: u64,
    http_address: Option<String>,
    membership: &'static str,
    reason: &str,
) -> MemberView {
    MemberView {
        id,
        http_address,
        membership,
        reachable: false,
        unreachable_reason: Some(reason.to_string()),
        role: None,
        term: None,
        commit_index: None,
        applied_index: None,
        last_log_index: None,
        snapshot_index: None,
        lag: None,
        recovering: None,
        keys: None,
        fsync_p99_ms: None,
    }
}

/// A load with no observation, left where a reading was moved out.
fn empty_load() -> NodeLoad {
    NodeLoad {
        read_latency: Default::default(),
        write_latency: Default::default(),
        wal_fsync: Default::default(),
    }
}

/// Member `id`'s status with its load, or why it could not be had.
async fn read_member(app: &AppState, id: NodeId) -> Reading {
    let address = app
        .server
        .http_address_of(id)
        .ok_or_else(|| "its HTTP address is not known yet".to_string())?;
    let body = app
        .forwarder
        .fetch(&address, "/v1/status?load=true", PEER_TIMEOUT)
        .await?;
    let status: StatusResponse = serde_json::from_slice(&body)
        .map_err(|error| format!("{address} answered an unreadable status: {error}"))?;
    if status.id != id.0 {
        return Err(format!(
            "{address} is node {}, not node {}",
            status.id, id.0
        ));
    }
    Ok(status)
}

/// `id`'s place in `configuration`.
fn membership_of(configuration: &Configuration, id: NodeId) -> &'static str {
    if configuration.voters.contains(&id) {
        "voter"
    } else if configuration.outgoing.contains(&id) {
        "outgoing"
    } else {
        "learner"
    }
}

/// The view of a member that answered `status`.
fn answered(
    status: &StatusResponse,
    membership: &'static str,
    commit_max: u64,
    fsyncs: &LoadDelta,
) -> MemberView {
    MemberView {
        id: status.id,
        http_address: Some(status.http_address.clone()),
        membership,
        reachable: true,
        unreachable_reason: None,
        role: Some(status.role.clone()),
        term: Some(status.term),
        commit_index: Some(status.commit_index),
        applied_index: Some(status.applied_index),
        last_log_index: Some(status.last_log_index),
        snapshot_index: Some(status.snapshot_index),
        lag: Some(lag(commit_max, status.applied_index)),
        recovering: status
            .recovery
            .as_ref()
            .map(|recovery| recovery.phase.clone()),
        keys: Some(status.keys),
        fsync_p99_ms: fsyncs.quantile_ms(0.99),
    }
}
