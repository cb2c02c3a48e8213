//! Exactly-once client sessions: who a client is ([`ClientId`]) and what the store remembers
//! of it, the last request applied and its outcome, so that a retry is answered, not applied
//! again.
//!
//! ```text
//!  Command { session: Some { client_id, sequence }, .. } at index i
//!        │
//!        ▼
//!  sessions[client_id] ── sequence == last ──► cached outcome   (the retry is not applied again;
//!                      │                                         the session is active at i)
//!                      ── sequence <  last ──► StaleSequence { last }      (nothing changes)
//!                      ── otherwise, or no session ──► execute ──► record (sequence, outcome)
//!                                                              └─► evict beyond sessions_max
//! ```
//!
//! A client numbers its requests and retries a request under the same number (Raft thesis §6.3).
//! The store keeps, per client, the last sequence number applied and that request's outcome,
//! so a retry of the last request returns the first application's outcome without applying it
//! again, and an older request is refused as stale. A client is expected to have one request
//! in flight at a time; a request older than the last is not applied, so a client that pipelines
//! requests must not let them overtake each other.
//!
//! Sessions are bounded by `sessions_max`. A session is active at the index of the last entry
//! that applied a request of it or returned its cached outcome; when more than `sessions_max`
//! sessions exist, the one least recently active (smallest index, then smallest client id) is
//! evicted (client ids in [`ClientId`]'s order: numbers first, by value, then texts, byte
//! by byte). In words: a client silent for longer than the `sessions_max` most recent clients
//! loses its session; a retry after that may apply twice. Every replica must be configured with
//! the same `sessions_max`, or their sessions diverge. `sessions_max = 0` disables exactly-once
//! writes. Eviction is ordered by log index, never by a clock, so every replica evicts the same
//! session at the same entry.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;
use raftkv_client::api::CLIENT_ID_BYTES_MAX;
use thiserror::Error;

use super::command::Session;
use super::Outcome;

/// Who a session belongs to: the client's `client-id`, as the log and the snapshots keep it.
///
/// Two ids are the same client exactly when their texts are the same bytes. An id whose text
/// is an unsigned integer in canonical decimal form (no sign, no leading zero, at most
/// `u64::MAX`), as the Rust client and older releases send, is kept as that number; any other
/// is kept as its text. Every id has one form only, so no two texts share a session.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub(super) ClientIdForm);

/// Invariant: a `Text` is valid ([`ClientId::parse`]) and not the canonical form of a number.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum ClientIdForm {
    Number(u64),
    Text(Bytes),
}

/// Why a `client-id` is refused. Each message states the rule.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ClientIdError {
    /// The id is empty.
    #[error(
        "a client id is 1 to {CLIENT_ID_BYTES_MAX} visible ASCII characters (letters, digits, \
         punctuation; no spaces), such as a UUID; this one is empty"
    )]
    Empty,
    /// The id is longer than [`CLIENT_ID_BYTES_MAX`].
    #[error(
        "a client id is 1 to {CLIENT_ID_BYTES_MAX} visible ASCII characters (letters, digits, \
         punctuation; no spaces), such as a UUID; this one is {length} bytes long"
    )]
    TooLong {
        /// The id's length in bytes.
        length: usize,
    },
    /// A byte of the id is not visible ASCII (`!` to `~`).
    #[error(
        "a client id is 1 to {CLIENT_ID_BYTES_MAX} visible ASCII characters (letters, digits, \
         punctuation; no spaces), such as a UUID; byte {position} of this one is not"
    )]
    NotVisibleAscii {
        /// Where the first such byte is, from 0.
        position: usize,
    },
}

impl ClientId {
    /// The id of `text`: 1 to [`CLIENT_ID_BYTES_MAX`] visible ASCII bytes (`!` to `~`).
    /// Visible ASCII is what every HTTP client can send in a header unchanged, proxies pass
    /// through and logs show as it is; no spaces, since HTTP trims them from the ends of a
    /// header value. The length bounds what every replica keeps per session.
    pub fn parse(text: &[u8]) -> Result<ClientId, ClientIdError> {
        if text.is_empty() {
            return Err(ClientIdError::Empty);
        }
        if text.len() > CLIENT_ID_BYTES_MAX {
            return Err(ClientIdError::TooLong { length: text.len() });
        }
        if let Some(position) = text.iter().position(|byte| !byte.is_ascii_graphic()) {
            return Err(ClientIdError::NotVisibleAscii { position });
        }
        if let Some(number) = canonical_number(text) {
            return Ok(ClientId::number(number));
        }
        // Copied: `text` is usually a slice of a log entry or a request, which a session
        // would otherwise keep alive whole.
        Ok(ClientId(ClientIdForm::Text(Bytes::copy_from_slice(text))))
    }

    /// The id whose text is `number` in decimal.
    pub fn number(number: u64) -> ClientId {
        ClientId(ClientIdForm::Number(number))
    }

    /// The number this id is, when its text is one.
    pub fn as_number(&self) -> Option<u64> {
        match &self.0 {
            ClientIdForm::Number(number) => Some(*number),
            ClientIdForm::Text(_) => None,
        }
    }

    /// The id's text when it is not a number.
    pub fn as_text(&self) -> Option<&Bytes> {
        match &self.0 {
            ClientIdForm::Number(_) => None,
            ClientIdForm::Text(text) => Some(text),
        }
    }
}

impl From<u64> for ClientId {
    fn from(number: u64) -> ClientId {
        ClientId::number(number)
    }
}

impl fmt::Display for ClientId {
    /// The id's text, as the client sent it.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ClientIdForm::Number(number) => write!(formatter, "{number}"),
            // Visible ASCII by the invariant, so this is the text itself.
            ClientIdForm::Text(text) => formatter.write_str(&String::from_utf8_lossy(text)),
        }
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ClientId({self})")
    }
}

/// The number `text` writes in canonical decimal form (digits only, no leading zero, at most
/// `u64::MAX`), if it is one.
fn canonical_number(text: &[u8]) -> Option<u64> {
    let digits_only = !text.is_empty() && text.iter().all(u8::is_ascii_digit);
    let leading_zero = text.len() > 1 && text[0] == b'0';
    if !digits_only || leading_zero {
        return None;
    }
    // Digits only, so the text is UTF-8; `parse` refuses what overflows.
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// One client's exactly-once session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ClientSession {
    /// The last sequence number applied.
    pub(super) sequence: u64,
    /// The outcome of applying it, returned again to a retry.
    pub(super) outcome: Outcome,
    /// The index of the last entry that applied a request of this session or answered a retry.
    pub(super) last_active_index: u64,
    /// Index and term of the entry that first applied `sequence`, reported again to a retry.
    pub(super) applied_at: (u64, u64),
    /// The store's revision after `sequence` was first applied, reported again to a retry.
    pub(super) revision: u64,
}

/// Every client's session, bounded by `sessions_max`, with the order they are evicted in.
#[derive(Debug)]
pub(super) struct Sessions {
    /// Sessions by client id.
    /// Invariant: `by_client.len() <= sessions_max` after every call.
    by_client: BTreeMap<ClientId, ClientSession>,
    /// The eviction order: `(last_active_index, client_id)` of every session, least recently
    /// active first.
    /// Invariant: holds exactly one pair per session, matching it.
    activity: BTreeSet<(u64, ClientId)>,
    /// Sessions kept.
    sessions_max: usize,
}

impl Sessions {
    /// No sessions; at most `sessions_max` kept.
    pub(super) fn new(sessions_max: usize) -> Sessions {
        Sessions {
            by_client: BTreeMap::new(),
            activity: BTreeSet::new(),
            sessions_max,
        }
    }

    /// The number of sessions held.
    pub(super) fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Sessions kept at most.
    pub(super) fn sessions_max(&self) -> usize {
        self.sessions_max
    }

    /// Every session, in client id order (numbers first).
    pub(super) fn iter(&self) -> impl Iterator<Item = (&ClientId, &ClientSession)> {
        self.by_client.iter()
    }

    /// The answer the session gives the request `session` carried in the entry `here` (index,
    /// term) without applying it, with the entry and the revision it reports: the cached
    /// outcome of a retry with its first application's (the session is then active at
    /// `here`), or [`Outcome::StaleSequence`] for an older request, with `here` and
    /// `current_revision`. `None`: the request is new, to be applied and then
    /// [recorded](Sessions::record).
    pub(super) fn answer_again(
        &mut self,
        session: &Session,
        here: (u64, u64),
        current_revision: u64,
    ) -> Option<(Outcome, (u64, u64), u64)> {
        let existing = self.by_client.get(&session.client_id)?;
        if session.sequence < existing.sequence {
            let last = existing.sequence;
            return Some((Outcome::StaleSequence { last }, here, current_revision));
        }
        if session.sequence > existing.sequence {
            return None;
        }
        let answer = (
            existing.outcome.clone(),
            existing.applied_at,
            existing.revision,
        );
        // A retry shows the client is alive and may retry again: keep its session.
        self.mark_active(&session.client_id, here.0);
        Some(answer)
    }

    /// Caches the outcome of a newly applied request of `session`, with the store's
    /// `revision` after it, then evicts sessions beyond the limit.
    pub(super) fn record(
        &mut self,
        session: Session,
        applied_at: (u64, u64),
        revision: u64,
        outcome: Outcome,
    ) {
        let index = applied_at.0;
        assert!(
            !matches!(
                outcome,
                Outcome::Rejected { .. } | Outcome::StaleSequence { .. }
            ),
            "only applied requests are cached"
        );
        let previous = self.by_client.insert(
            session.client_id.clone(),
            ClientSession {
                sequence: session.sequence,
                outcome,
                last_active_index: index,
                applied_at,
                revision,
            },
        );
        // A text id's clone shares its bytes: the two copies here cost no allocation.
        if let Some(previous) = previous {
            assert!(
                previous.sequence < session.sequence,
                "a session's sequence only grows"
            );
            let removed = self
                .activity
                .remove(&(previous.last_active_index, session.client_id.clone()));
            assert!(removed, "invariant activity-indexes-sessions");
        }
        self.activity.insert((index, session.client_id));
        self.evict_beyond_limit();
    }

    /// Adds a session read from a snapshot, without evicting (the caller evicts once all are
    /// in, with [`Sessions::evict_beyond_limit`]); `false` if the client already has one.
    pub(super) fn insert_restored(&mut self, client_id: ClientId, session: ClientSession) -> bool {
        let last_active_index = session.last_active_index;
        if self.by_client.contains_key(&client_id) {
            return false;
        }
        self.activity.insert((last_active_index, client_id.clone()));
        self.by_client.insert(client_id, session);
        true
    }

    /// Moves `client_id`'s session to the most recently active end of the eviction order.
    fn mark_active(&mut self, client_id: &ClientId, index: u64) {
        let session = self
            .by_client
            .get_mut(client_id)
            .expect("mark_active is called for an existing session");
        let removed = self
            .activity
            .remove(&(session.last_active_index, client_id.clone()));
        assert!(removed, "invariant activity-indexes-sessions");
        session.last_active_index = index;
        self.activity.insert((index, client_id.clone()));
    }

    /// Evicts the least recently active sessions until at most `sessions_max` remain.
    pub(super) fn evict_beyond_limit(&mut self) {
        while self.by_client.len() > self.sessions_max {
            let (_, client_id) = self
                .activity
                .pop_first()
                .expect("invariant activity-indexes-sessions: more sessions than activity");
            let removed = self.by_client.remove(&client_id);
            assert!(removed.is_some(), "invariant activity-indexes-sessions");
        }
    }

    /// Panics, naming the invariant, if the sessions contradict themselves, one is active
    /// after `applied_index` or one reports a revision after `revision`.
    pub(super) fn check_invariants(&self, applied_index: u64, revision: u64) {
        assert!(
            self.by_client.len() <= self.sessions_max,
            "invariant sessions-bounded: {} sessions, limit {}",
            self.by_client.len(),
            self.sessions_max
        );
        assert_eq!(
            self.activity.len(),
            self.by_client.len(),
            "invariant activity-indexes-sessions"
        );
        for (last_active_index, client_id) in &self.activity {
            let session = self
                .by_client
                .get(client_id)
                .expect("invariant activity-indexes-sessions: session missing");
            assert_eq!(
                session.last_active_index, *last_active_index,
                "invariant activity-indexes-sessions: index differs"
            );
            assert!(
                *last_active_index <= applied_index,
                "invariant session-active-before-applied"
            );
            assert!(
                session.revision <= revision,
                "invariant session-revision-not-in-future"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_is_a_number_exactly_when_its_text_is_canonical_decimal() {
        let id = |text: &str| ClientId::parse(text.as_bytes());
        assert_eq!(id("7"), Ok(ClientId::number(7)));
        assert_eq!(id("0"), Ok(ClientId::number(0)));
        assert_eq!(id("18446744073709551615"), Ok(ClientId::number(u64::MAX)));
        for text in [
            "007",
            "00",
            "+7",
            "18446744073709551616",
            "7a",
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "billing-service/worker-3",
        ] {
            let parsed = id(text).expect("a valid id");
            assert_eq!(parsed.as_number(), None, "{text}");
            assert_eq!(parsed.to_string(), text, "the id keeps its text");
        }
        assert_ne!(id("007"), id("7"), "two texts, two clients");
        assert_eq!(id(""), Err(ClientIdError::Empty));
        let longest = "x".repeat(CLIENT_ID_BYTES_MAX);
        assert!(id(&longest).is_ok());
        assert_eq!(
            id(&format!("{longest}x")),
            Err(ClientIdError::TooLong {
                length: CLIENT_ID_BYTES_MAX + 1
            })
        );
        assert_eq!(
            id("a b"),
            Err(ClientIdError::NotVisibleAscii { position: 1 })
        );
        assert_eq!(
            ClientId::parse("é".as_bytes()),
            Err(ClientIdError::NotVisibleAscii { position: 0 })
        );
        assert!(
            ClientIdError::Empty
                .to_string()
                .contains("1 to 128 visible ASCII"),
            "the message states the rule"
        );
    }
}
