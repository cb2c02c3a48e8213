//! Watchers during a run, and the authoritative change history read after it.
//!
//! Each watcher follows one key or prefix through one node (a client of that node's address
//! alone), from revision 1, with progress notifications. When its stream ends (the node was
//! killed, partitioned, paused, or cancelled it), it opens a new one at one past the last
//! revision it reached, and records that resume. Everything it is handed is recorded for
//! [`crate::revision_check::watcher_anomalies`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use raftkv_client::api::{EventType, WatchEvents};
use raftkv_client::{Client, ClientOptions, WatchMessage, WatchRequest, WatchSelector};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::revision_check::{Change, ChangeLog, Delivered, Selection, WatcherRecord};

/// Progress notifications asked of the nodes while nothing changes.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// Pause before a watcher reopens its stream.
const RESUME_PAUSE: Duration = Duration::from_millis(100);

/// A client of one node's address alone, giving up on it quickly (a watcher then resumes).
pub fn node_client(endpoint: &str) -> Result<Client, String> {
    Client::with_options(
        [endpoint.to_string()],
        ClientOptions {
            request_timeout: Duration::from_secs(1),
            retry_deadline: Duration::from_secs(2),
        },
    )
    .map_err(|error| format!("a client of {endpoint}: {error}"))
}

/// The changes of one watch message.
pub fn changes_of(events: &WatchEvents) -> Vec<Change> {
    events
        .events
        .iter()
        .map(|event| Change {
            key: event.kv.key.clone(),
            value: match event.kind {
                EventType::Put => Some(
                    event
                        .kv
                        .value
                        .clone()
                        .or_else(|| event.kv.value_base64.clone().map(|b| format!("base64:{b}")))
                        .unwrap_or_default(),
                ),
                EventType::Delete => None,
            },
        })
        .collect()
}

fn request(selection: &Selection, start_revision: u64) -> WatchRequest {
    WatchRequest {
        selector: match selection {
            Selection::Key(key) => WatchSelector::Key(key.clone()),
            Selection::Prefix(prefix) => WatchSelector::Prefix(prefix.clone()),
        },
        start_revision: Some(start_revision),
        progress_interval: Some(PROGRESS_INTERVAL),
    }
}

/// Runs one watcher until `stop` is set; `reached` follows the highest revision it knows it
/// has everything up to.
pub async fn run_watcher(
    name: String,
    client: Client,
    selection: Selection,
    reached: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> WatcherRecord {
    let mut record = WatcherRecord {
        name,
        selection: selection.clone(),
        start_revision: 1,
        delivered: Vec::new(),
    };
    let mut next = 1u64;
    while !*stop.borrow() {
        let mut stream = client.watch(request(&selection, next));
        let why = loop {
            let message = tokio::select! {
                message = stream.next() => message,
                _ = stop.changed() => return record,
            };
            match message {
                Some(Ok(WatchMessage::Events(events))) => {
                    next = next.max(events.revision + 1);
                    record.delivered.push(Delivered::Events {
                        revision: events.revision,
                        changes: changes_of(&events),
                    });
                }
                Some(Ok(WatchMessage::Progress(progress))) => {
                    next = next.max(progress.revision + 1);
                    record.delivered.push(Delivered::Progress {
                        revision: progress.revision,
                    });
                }
                Some(Err(error)) => break error.to_string(),
                None => break "the stream ended".to_string(),
            }
            reached.store(next - 1, Ordering::Relaxed);
        };
        drop(stream);
        tokio::select! {
            _ = tokio::time::sleep(RESUME_PAUSE) => {}
            _ = stop.changed() => return record,
        }
        record.delivered.push(Delivered::Resumed {
            start_revision: next,
            why,
        });
    }
    record
}

/// Every change one node holds from revision 1 to `target`: a watch of every key, read until
/// it reaches `target`, within `timeout`.
pub async fn read_change_log(
    endpoint: &str,
    target: u64,
    timeout: Duration,
) -> Result<ChangeLog, String> {
    let client = node_client(endpoint)?;
    let deadline = Instant::now() + timeout;
    let mut log = ChangeLog::new();
    let mut next = 1u64;
    while next <= target {
        let mut stream = client.watch(request(&Selection::Prefix(String::new()), next));
        loop {
            let message = tokio::time::timeout_at(deadline, stream.next())
                .await
                .map_err(|_| {
                    format!(
                        "{endpoint}'s history reached only revision {} of {target}",
                        next - 1
                    )
                })?;
            match message {
                Some(Ok(WatchMessage::Events(events))) => {
                    if events.revision >= next {
                        log.insert(events.revision, changes_of(&events));
                        next = events.revision + 1;
                    }
                }
                Some(Ok(WatchMessage::Progress(progress))) => {
                    next = next.max(progress.revision + 1);
                }
                Some(Err(error)) => {
                    if Instant::now() >= deadline {
                        return Err(format!("{endpoint}'s history: {error}"));
                    }
                    break;
                }
                None => break,
            }
            if next > target {
                break;
            }
        }
    }
    Ok(log)
}
