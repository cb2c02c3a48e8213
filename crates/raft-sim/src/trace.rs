//! A bounded record of recent events, for failure reports, and a digest of every event, for
//! checking that a seed replays exactly.
//!
//! ```text
//!  cluster event ─► Trace::record(at, TraceEvent) ─┬─► ring buffer (last N, formatted on failure)
//!                                                   └─► running digest (all events)
//! ```
//!
//! Records are small copies (no payloads, no strings for the frequent kinds), so tracing costs
//! little on the hot path.

use std::collections::VecDeque;
use std::fmt;

use raft_core::{Index, LogId, Message, MessageBody, Role, Term};

/// A message without its payload: enough to follow the protocol in a trace.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BodySummary {
    Vote {
        last: LogId,
        pre_vote: bool,
        transfer: bool,
    },
    VoteResponse {
        granted: bool,
        pre_vote: bool,
    },
    Append {
        prev: LogId,
        entries: usize,
        commit: Index,
    },
    AppendResponse {
        index: Index,
        success: bool,
        hint: LogId,
    },
    Heartbeat {
        commit: Index,
        round: u64,
    },
    HeartbeatResponse {
        round: u64,
    },
    Commit {
        commit: Index,
    },
    Snapshot {
        last: LogId,
        offset: u64,
        bytes: usize,
        done: bool,
    },
    SnapshotResponse {
        last: LogId,
        next_offset: u64,
        done: bool,
    },
    TimeoutNow,
    ReadRequest {
        context: u64,
    },
    ReadResponse {
        context: u64,
        index: Option<Index>,
    },
}

impl BodySummary {
    pub(crate) fn of(body: &MessageBody) -> BodySummary {
        match body {
            MessageBody::VoteRequest {
                last_log,
                pre_vote,
                leadership_transfer,
            } => BodySummary::Vote {
                last: *last_log,
                pre_vote: *pre_vote,
                transfer: *leadership_transfer,
            },
            MessageBody::VoteResponse { granted, pre_vote } => BodySummary::VoteResponse {
                granted: *granted,
                pre_vote: *pre_vote,
            },
            MessageBody::Append {
                prev,
                entries,
                commit,
            } => BodySummary::Append {
                prev: *prev,
                entries: entries.len(),
                commit: *commit,
            },
            MessageBody::AppendResponse {
                index,
                success,
                hint,
            } => BodySummary::AppendResponse {
                index: *index,
                success: *success,
                hint: *hint,
            },
            MessageBody::Heartbeat { commit, read_round } => BodySummary::Heartbeat {
                commit: *commit,
                round: *read_round,
            },
            MessageBody::HeartbeatResponse { read_round } => {
                BodySummary::HeartbeatResponse { round: *read_round }
            }
            MessageBody::Commit { commit } => BodySummary::Commit { commit: *commit },
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            } => BodySummary::Snapshot {
                last: meta.last_included,
                offset: *offset,
                bytes: data.len(),
                done: *done,
            },
            MessageBody::InstallSnapshotResponse {
                last_included,
                next_offset,
                done,
            } => BodySummary::SnapshotResponse {
                last: *last_included,
                next_offset: *next_offset,
                done: *done,
            },
            MessageBody::TimeoutNow => BodySummary::TimeoutNow,
            MessageBody::ReadIndexRequest { context } => {
                BodySummary::ReadRequest { context: *context }
            }
            MessageBody::ReadIndexResponse { context, index } => BodySummary::ReadResponse {
                context: *context,
                index: *index,
            },
        }
    }

    fn words(&self) -> [u64; 5] {
        let id = |id: LogId| id.term.0 << 40 ^ id.index.0;
        match *self {
            BodySummary::Vote {
                last,
                pre_vote,
                transfer,
            } => [1, id(last), u64::from(pre_vote), u64::from(transfer), 0],
            BodySummary::VoteResponse { granted, pre_vote } => {
                [2, u64::from(granted), u64::from(pre_vote), 0, 0]
            }
            BodySummary::Append {
                prev,
                entries,
                commit,
            } => [3, id(prev), entries as u64, commit.0, 0],
            BodySummary::AppendResponse {
                index,
                success,
                hint,
            } => [4, index.0, u64::from(success), id(hint), 0],
            BodySummary::Heartbeat { commit, round } => [5, commit.0, round, 0, 0],
            BodySummary::HeartbeatResponse { round } => [6, round, 0, 0, 0],
            BodySummary::Commit { commit } => [12, commit.0, 0, 0, 0],
            BodySummary::Snapshot {
                last,
                offset,
                bytes,
                done,
            } => [7, id(last), offset, bytes as u64, u64::from(done)],
            BodySummary::SnapshotResponse {
                last,
                next_offset,
                done,
            } => [8, id(last), next_offset, u64::from(done), 0],
            BodySummary::TimeoutNow => [9, 0, 0, 0, 0],
            BodySummary::ReadRequest { context } => [10, context, 0, 0, 0],
            BodySummary::ReadResponse { context, index } => {
                [11, context, index.map_or(u64::MAX, |index| index.0), 0, 0]
            }
        }
    }
}

impl fmt::Display for BodySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodySummary::Vote {
                last,
                pre_vote,
                transfer,
            } => {
                let kind = if *pre_vote { "PreVote" } else { "Vote" };
                let transfer = if *transfer { " transfer" } else { "" };
                write!(f, "{kind} last={last}{transfer}")
            }
            BodySummary::VoteResponse { granted, pre_vote } => {
                let kind = if *pre_vote { "PreVoteResp" } else { "VoteResp" };
                write!(f, "{kind} granted={granted}")
            }
            BodySummary::Append {
                prev,
                entries,
                commit,
            } => write!(
                f,
                "Append prev={prev} entries={entries} commit={}",
                commit.0
            ),
            BodySummary::AppendResponse {
                index,
                success,
                hint,
            } => write!(
                f,
                "AppendResp index={} success={success} hint={hint}",
                index.0
            ),
            BodySummary::Heartbeat { commit, round } => {
                write!(f, "Heartbeat commit={} round={round}", commit.0)
            }
            BodySummary::HeartbeatResponse { round } => write!(f, "HeartbeatResp round={round}"),
            BodySummary::Commit { commit } => write!(f, "Commit commit={}", commit.0),
            BodySummary::Snapshot {
                last,
                offset,
                bytes,
                done,
            } => write!(
                f,
                "InstallSnapshot last={last} offset={offset} bytes={bytes} done={done}"
            ),
            BodySummary::SnapshotResponse {
                last,
                next_offset,
                done,
            } => write!(
                f,
                "InstallSnapshotResp last={last} next={next_offset} done={done}"
            ),
            BodySummary::TimeoutNow => write!(f, "TimeoutNow"),
            BodySummary::ReadRequest { context } => write!(f, "ReadIndex ctx={context}"),
            BodySummary::ReadResponse { context, index } => match index {
                Some(index) => write!(f, "ReadIndexResp ctx={context} index={}", index.0),
                None => write!(f, "ReadIndexResp ctx={context} refused"),
            },
        }
    }
}

/// Why the network did not deliver a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Sender and receiver are not connected (partition, disconnection, crash).
    Unreachable,
    /// The unreliable network lost it.
    Lost,
    /// The sender crashed before delivery.
    SenderCrashed,
}

/// One thing that happened.
#[derive(Clone, Debug)]
pub(crate) enum TraceEvent {
    Tick {
        peer: u64,
    },
    Deliver {
        from: u64,
        to: u64,
        term: Term,
        body: BodySummary,
    },
    Drop {
        from: u64,
        to: u64,
        term: Term,
        body: BodySummary,
        reason: DropReason,
    },
    DiskDone {
        peer: u64,
        id: u64,
        entries: usize,
    },
    Role {
        peer: u64,
        role: Role,
        term: Term,
        leader: Option<u64>,
    },
    Propose {
        peer: u64,
        id: LogId,
    },
    Apply {
        peer: u64,
        first: Index,
        last: Index,
    },
    Restore {
        peer: u64,
        index: Index,
    },
    Note(String),
}

impl TraceEvent {
    pub(crate) fn deliver(message: &Message) -> TraceEvent {
        TraceEvent::Deliver {
            from: message.from.0,
            to: message.to.0,
            term: message.term,
            body: BodySummary::of(&message.body),
        }
    }

    pub(crate) fn drop(message: &Message, reason: DropReason) -> TraceEvent {
        TraceEvent::Drop {
            from: message.from.0,
            to: message.to.0,
            term: message.term,
            body: BodySummary::of(&message.body),
            reason,
        }
    }

    fn mix_into(&self, digest: &mut Digest) {
        match self {
            TraceEvent::Tick { peer } => digest.mix(&[1, *peer]),
            TraceEvent::Deliver {
                from,
                to,
                term,
                body,
            } => {
                digest.mix(&[2, *from, *to, term.0]);
                digest.mix(&body.words());
            }
            TraceEvent::Drop {
                from,
                to,
                term,
                body,
                reason,
            } => {
                digest.mix(&[3, *from, *to, term.0, *reason as u64]);
                digest.mix(&body.words());
            }
            TraceEvent::DiskDone { peer, id, entries } => {
                digest.mix(&[4, *peer, *id, *entries as u64])
            }
            TraceEvent::Role {
                peer,
                role,
                term,
                leader,
            } => digest.mix(&[5, *peer, *role as u64, term.0, leader.unwrap_or(0)]),
            TraceEvent::Propose { peer, id } => digest.mix(&[6, *peer, id.term.0, id.index.0]),
            TraceEvent::Apply { peer, first, last } => digest.mix(&[7, *peer, first.0, last.0]),
            TraceEvent::Restore { peer, index } => digest.mix(&[8, *peer, index.0]),
            TraceEvent::Note(text) => {
                digest.mix(&[9]);
                digest.mix_bytes(text.as_bytes());
            }
        }
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::Tick { peer } => write!(f, "n{peer} tick"),
            TraceEvent::Deliver {
                from,
                to,
                term,
                body,
            } => write!(f, "n{from}->n{to} t{} {body}", term.0),
            TraceEvent::Drop {
                from,
                to,
                term,
                body,
                reason,
            } => write!(f, "DROP({reason:?}) n{from}->n{to} t{} {body}", term.0),
            TraceEvent::DiskDone { peer, id, entries } => {
                write!(f, "n{peer} disk write #{id} done ({entries} entries)")
            }
            TraceEvent::Role {
                peer,
                role,
                term,
                leader,
            } => match leader {
                Some(leader) => write!(f, "n{peer} is {role:?} in t{} (leader n{leader})", term.0),
                None => write!(f, "n{peer} is {role:?} in t{} (no leader)", term.0),
            },
            TraceEvent::Propose { peer, id } => write!(f, "n{peer} proposed {id}"),
            TraceEvent::Apply { peer, first, last } => {
                write!(f, "n{peer} applied {}..={}", first.0, last.0)
            }
            TraceEvent::Restore { peer, index } => {
                write!(f, "n{peer} restored snapshot through {}", index.0)
            }
            TraceEvent::Note(text) => write!(f, "{text}"),
        }
    }
}

/// A 64-bit running hash (FNV-1a over words, then a final mix). Not cryptographic; it only has
/// to tell two runs apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Digest {
        Digest(0xcbf2_9ce4_8422_2325)
    }
}

impl Digest {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// Mixes words into the digest.
    pub fn mix(&mut self, words: &[u64]) {
        for &word in words {
            self.0 = (self.0 ^ word).wrapping_mul(Self::PRIME);
            self.0 ^= self.0 >> 29;
        }
    }

    /// Mixes bytes into the digest.
    pub fn mix_bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(Self::PRIME);
        }
        self.mix(&[bytes.len() as u64]);
    }

    /// The digest's value.
    pub fn value(self) -> u64 {
        self.0
    }

    /// A digest continuing from `value` (as returned by [`Digest::value`]).
    pub fn from_value(value: u64) -> Digest {
        Digest(value)
    }
}

/// Hash of a byte string, for comparing commands without keeping them.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut digest = Digest::default();
    digest.mix_bytes(bytes);
    digest.value()
}

/// The bounded ring of recent events and the digest of all of them.
pub(crate) struct Trace {
    capacity: usize,
    recent: VecDeque<(u64, TraceEvent)>,
    digest: Digest,
    events: u64,
}

impl Trace {
    pub(crate) fn new(capacity: usize) -> Trace {
        let capacity = crate::seeds::env_number("RAFT_SIM_TRACE")
            .map_or(capacity, |capacity| capacity as usize)
            .max(1);
        Trace {
            capacity,
            recent: VecDeque::with_capacity(capacity),
            digest: Digest::default(),
            events: 0,
        }
    }

    pub(crate) fn record(&mut self, at_us: u64, event: TraceEvent) {
        self.digest.mix(&[at_us]);
        event.mix_into(&mut self.digest);
        self.events += 1;
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back((at_us, event));
    }

    /// Mixes an event into the digest without keeping it in the ring (frequent, uninformative
    /// events such as idle ticks).
    pub(crate) fn record_quietly(&mut self, at_us: u64, event: &TraceEvent) {
        self.digest.mix(&[at_us]);
        event.mix_into(&mut self.digest);
        self.events += 1;
    }

    pub(crate) fn digest(&self) -> Digest {
        self.digest
    }

    /// Events kept in the ring.
    pub(crate) fn len(&self) -> usize {
        self.recent.len()
    }

    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    /// The recent events, one a line, oldest first.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for (at_us, event) in &self.recent {
            out.push_str(&format!(
                "  {:>8}.{:03} ms  {event}\n",
                at_us / 1_000,
                at_us % 1_000
            ));
        }
        out
    }
}
