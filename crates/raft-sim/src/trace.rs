//! A bounded record of recent events, for failure reports, and a digest of every event, for
//! checking that a seed replays exactly.
//!
//! ```text
//!  cluster event ─► Trace::record(at, TraceEvent) ─┬─► ring buffer (last N, formatted on failure)
//!                                                   └─► running digest (all events)
//! ```
//!
//! A message is traced as raft-core prints it (`Display for Message`, the form golden
//! interaction files use too), and the digest mixes its content through its derived `Hash`:
//! no summary type of the simulator's own mirrors the message enum. Records are copies of the
//! message (its byte payloads shared, not copied), formatted only when a failure prints them.
//! Measured on `RAFT_SIM_SEEDS=300 RAFT_SIM_THREADS=1` of `tests/randomized.rs` (debug build,
//! user CPU): the old summary type 3.72 s, mixing the printed text 4.31 s (+16%), hashing
//! 3.76 s (+1%, the cost of copying the message).

use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};

use raft_core::{Index, LogId, Message, Role, Term};

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
        message: Message,
    },
    Drop {
        message: Message,
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
            message: message.clone(),
        }
    }

    pub(crate) fn drop(message: &Message, reason: DropReason) -> TraceEvent {
        TraceEvent::Drop {
            message: message.clone(),
            reason,
        }
    }

    fn mix_into(&self, digest: &mut Digest) {
        match self {
            TraceEvent::Tick { peer } => digest.mix(&[1, *peer]),
            TraceEvent::Deliver { message } => {
                digest.mix(&[2]);
                digest.mix_hash(message);
            }
            TraceEvent::Drop { message, reason } => {
                digest.mix(&[3, *reason as u64]);
                digest.mix_hash(message);
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
            TraceEvent::Deliver { message } => write!(f, "{message}"),
            TraceEvent::Drop { message, reason } => write!(f, "DROP({reason:?}) {message}"),
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
        self.absorb(bytes);
        self.mix(&[bytes.len() as u64]);
    }

    /// Mixes bytes in without their length (the caller mixes it once the run of bytes ends).
    fn absorb(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(Self::PRIME);
        }
    }

    /// Mixes `value` into the digest through its `Hash` (deterministic: the digest is the
    /// hasher, and it has no random keys).
    pub(crate) fn mix_hash(&mut self, value: &impl Hash) {
        value.hash(&mut DigestHasher(self));
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

/// A [`Digest`] as a [`Hasher`]: byte strings as [`Digest::mix_bytes`] mixes them (without
/// their length, which `Hash` writes itself), integers as one word each.
struct DigestHasher<'a>(&'a mut Digest);

impl Hasher for DigestHasher<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.0.absorb(bytes);
    }

    fn write_u8(&mut self, value: u8) {
        self.0.mix(&[u64::from(value)]);
    }

    fn write_u32(&mut self, value: u32) {
        self.0.mix(&[u64::from(value)]);
    }

    fn write_u64(&mut self, value: u64) {
        self.0.mix(&[value]);
    }

    fn write_usize(&mut self, value: usize) {
        self.0.mix(&[value as u64]);
    }

    fn write_isize(&mut self, value: isize) {
        self.0.mix(&[value as u64]);
    }

    fn finish(&self) -> u64 {
        self.0.value()
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

#[cfg(test)]
mod tests {
    use raft_core::{MessageBody, NodeId};

    use super::*;

    fn heartbeat(read_round: u64) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::Heartbeat {
                commit: Index(6),
                read_round,
            },
        }
    }

    fn digest_of(message: &Message) -> u64 {
        let mut trace = Trace::new(4);
        trace.record(1_500, TraceEvent::deliver(message));
        trace.digest().value()
    }

    #[test]
    fn a_message_is_traced_as_raft_core_prints_it() {
        let mut trace = Trace::new(4);
        trace.record(1_500, TraceEvent::deliver(&heartbeat(17)));
        trace.record(2_000, TraceEvent::drop(&heartbeat(17), DropReason::Lost));
        assert_eq!(
            trace.render(),
            "         1.500 ms  1->2 Heartbeat term=3 commit=6 read_round=17\n         \
             2.000 ms  DROP(Lost) 1->2 Heartbeat term=3 commit=6 read_round=17\n"
        );
    }

    /// Equal messages give equal digests, and a change of any field changes it.
    #[test]
    fn the_digest_follows_every_field() {
        assert_eq!(digest_of(&heartbeat(17)), digest_of(&heartbeat(17)));
        assert_ne!(digest_of(&heartbeat(17)), digest_of(&heartbeat(18)));
        let mut other_sender = heartbeat(17);
        other_sender.from = NodeId(3);
        assert_ne!(digest_of(&heartbeat(17)), digest_of(&other_sender));
    }
}
