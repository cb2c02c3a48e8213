//! One revision's changes as every watcher of a node shares them, and the events a watcher
//! yields of it: the whole revision (shared, with its encodings made once), or the part of it
//! the watch selects (its own copy).
//!
//! ```text
//!  apply loop ─► PublishedRevision (Arc, in the hub's window) ◄─── every watcher reads it
//!  watcher: selects every change ─► RevisionEvents::Whole(Arc) ─► front end asks
//!           PublishedRevision::encoded(format): the first watcher encodes, the rest reuse
//!           selects some ─► RevisionEvents::Part(copies) ─► front end encodes its own
//! ```
//!
//! Why: with N watches of the written keys, each write used to be copied and encoded N
//! times (a JSON body per watcher). Encoding it once per revision and format makes the
//! per-watcher cost of an event the hand-over of shared bytes.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;

use crate::store::{Change, RevisionChanges};

/// The ways a front end encodes the events of a whole revision, each made at most once per
/// revision and shared by every watcher that selects all of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedEncoding {
    /// The HTTP API's Server-Sent Events message (`event: events`, `id:`, `data:` JSON).
    ServerSentEvents,
}

impl SharedEncoding {
    /// Every encoding, one slot each in a revision's cache.
    const COUNT: usize = 1;

    fn slot(self) -> usize {
        match self {
            SharedEncoding::ServerSentEvents => 0,
        }
    }
}

/// One revision's changes as the apply loop published them, shared by every watcher.
#[derive(Debug)]
pub struct PublishedRevision {
    changes: RevisionChanges,
    published_at: Instant,
    /// The encodings of the whole revision made so far, by [`SharedEncoding::slot`].
    encodings: [OnceLock<Bytes>; SharedEncoding::COUNT],
}

impl PublishedRevision {
    /// `changes`, published now.
    pub fn new(changes: RevisionChanges) -> PublishedRevision {
        assert!(
            !changes.changes.is_empty(),
            "invariant published-revision-changes: a revision has a change at least"
        );
        PublishedRevision {
            changes,
            published_at: Instant::now(),
            encodings: Default::default(),
        }
    }

    /// The revision.
    pub fn revision(&self) -> u64 {
        self.changes.revision
    }

    /// Every change of the revision, in the order the command made them.
    pub fn changes(&self) -> &[Change] {
        &self.changes.changes
    }

    /// When the apply loop published it.
    pub fn published_at(&self) -> Instant {
        self.published_at
    }

    /// The revision's events in `format`: encoded by `encode` the first time any watcher asks
    /// for this format, the same bytes for every later one.
    pub fn encoded(
        &self,
        format: SharedEncoding,
        encode: impl FnOnce(u64, &[Change]) -> Bytes,
    ) -> Bytes {
        self.encodings[format.slot()]
            .get_or_init(|| encode(self.revision(), self.changes()))
            .clone()
    }
}

/// The changes of one revision a watch selects, in the order the command made them (at least
/// one).
#[derive(Clone, Debug)]
pub enum RevisionEvents {
    /// Every change of a published revision: shared with the other watchers, and so are its
    /// encodings.
    Whole(Arc<PublishedRevision>),
    /// Some of a revision's changes, or changes read from history: this watch's own.
    Part {
        /// Their revision.
        revision: u64,
        /// The changes.
        changes: Vec<Change>,
    },
}

impl RevisionEvents {
    /// The selected changes of `published`, or `None` when the watch selects none.
    pub(super) fn select(
        published: &Arc<PublishedRevision>,
        selects: impl Fn(&Change) -> bool,
    ) -> Option<RevisionEvents> {
        let changes = published.changes();
        let selected_count = changes.iter().filter(|change| selects(change)).count();
        if selected_count == 0 {
            return None;
        }
        if selected_count == changes.len() {
            return Some(RevisionEvents::Whole(Arc::clone(published)));
        }
        Some(RevisionEvents::Part {
            revision: published.revision(),
            changes: changes
                .iter()
                .filter(|change| selects(change))
                .cloned()
                .collect(),
        })
    }

    /// Their revision.
    pub fn revision(&self) -> u64 {
        match self {
            RevisionEvents::Whole(published) => published.revision(),
            RevisionEvents::Part { revision, .. } => *revision,
        }
    }

    /// The changes, in the order the command made them.
    pub fn changes(&self) -> &[Change] {
        match self {
            RevisionEvents::Whole(published) => published.changes(),
            RevisionEvents::Part { changes, .. } => changes,
        }
    }

    /// The shared revision when these are all of its changes (its encodings can be reused).
    pub fn whole(&self) -> Option<&PublishedRevision> {
        match self {
            RevisionEvents::Whole(published) => Some(published),
            RevisionEvents::Part { .. } => None,
        }
    }
}

/// Equal when they hold the same changes of the same revision, shared or not.
impl PartialEq for RevisionEvents {
    fn eq(&self, other: &RevisionEvents) -> bool {
        self.revision() == other.revision() && self.changes() == other.changes()
    }
}
