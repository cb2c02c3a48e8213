//! The apply task: feeds the service every committed entry in log order, on a task of its
//! own so that a slow service delays applying, never elections.
//!
//! ```text
//!  event loop ─ ApplyWork (entries, or a snapshot) ─► apply task ─ ApplyMsg ─► service
//!       ▲                                                │
//!       └──────── applied index (core's on_applied) ─────┘ and Published figures
//! ```

use std::sync::Arc;

use bytes::Bytes;
use raft_core::{Configuration, Entry, EntryKind, Index, Snapshot, Term};
use tokio::sync::mpsc;

use super::metrics::Published;
use crate::metrics::{add, set};

/// What the node delivers to the service, in log order. A peer restarted after a compaction
/// first delivers its stored snapshot, then the commands after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyMsg {
    /// A committed command.
    Command {
        /// Its log index.
        index: Index,
        /// The term it was proposed in.
        term: Term,
        /// The command.
        data: Bytes,
    },
    /// A committed entry that carries no command (a new leader's no-op): nothing to apply,
    /// but everything through `index` has now been delivered, which a service waiting to
    /// serve a read at `index` needs to know.
    Noop {
        /// Its log index.
        index: Index,
        /// Its term.
        term: Term,
    },
    /// A committed configuration entry (a membership change): not a command, so nothing to
    /// apply to the service's state, but like [`ApplyMsg::Noop`] it tells the service that
    /// everything through `index` has been delivered, and which membership is now committed.
    Configuration {
        /// Its log index.
        index: Index,
        /// Its term.
        term: Term,
        /// The configuration it carries.
        configuration: Configuration,
    },
    /// A snapshot installed from the leader: the service replaces its state with it.
    Snapshot {
        /// The last index it covers.
        index: Index,
        /// The term of that entry.
        term: Term,
        /// The service's serialized state.
        data: Bytes,
    },
}

/// What the event loop hands the apply task.
pub(super) enum ApplyWork {
    /// A snapshot installed from the leader (or restored from this peer's own log).
    Snapshot(Snapshot),
    /// Committed entries, in log order.
    Entries(Vec<Entry>),
}

/// Feeds the service in log order and reports what it has been handed, to the event loop and
/// in the published metrics.
pub(super) async fn apply_task(
    mut work: mpsc::UnboundedReceiver<ApplyWork>,
    service: mpsc::Sender<ApplyMsg>,
    applied: mpsc::UnboundedSender<Index>,
    published: Arc<Published>,
) {
    while let Some(item) = work.recv().await {
        let entries_applied = match &item {
            ApplyWork::Snapshot(_) => 0,
            ApplyWork::Entries(entries) => entries.len() as u64,
        };
        let last = match item {
            ApplyWork::Snapshot(snapshot) => {
                let id = snapshot.meta.last_included;
                let message = ApplyMsg::Snapshot {
                    index: id.index,
                    term: id.term,
                    data: snapshot.data,
                };
                if service.send(message).await.is_err() {
                    return;
                }
                id.index
            }
            ApplyWork::Entries(entries) => {
                let Some(last) = entries.last().map(Entry::index) else {
                    continue;
                };
                for entry in entries {
                    let (index, term) = (entry.index(), entry.term());
                    let message = match entry.kind {
                        EntryKind::Noop => ApplyMsg::Noop { index, term },
                        EntryKind::Normal => ApplyMsg::Command {
                            index,
                            term,
                            data: entry.data,
                        },
                        // The core decoded this entry before appending it, so a failure here
                        // is a broken invariant, not bad input.
                        EntryKind::Configuration => match Configuration::decode(&entry.data) {
                            Ok(configuration) => ApplyMsg::Configuration {
                                index,
                                term,
                                configuration,
                            },
                            Err(error) => panic!(
                                "invariant committed-configuration-decodes: entry {}: {error}",
                                entry.id
                            ),
                        },
                    };
                    if service.send(message).await.is_err() {
                        return;
                    }
                }
                last
            }
        };
        let figures = &published.figures;
        set(&figures.applied_index, last);
        add(&figures.entries_applied_total, entries_applied);
        if applied.send(last).is_err() {
            return;
        }
    }
}
