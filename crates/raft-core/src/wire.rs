//! A wire encoding of the core's messages (feature `wire`): protobuf, derived in code with
//! `prost` (no `protoc`), for users who carry [`Message`]s over a transport of their own
//! (gRPC, HTTP, a queue). raft-node's TCP transport speaks it, inside its own frames.
//!
//! ```text
//!  Message ──From──► Envelope ──encode_message──► bytes ──decode_message──► Message
//!  Entry        ◄──► WireEntry          encode_entry / decode_entry
//!  SnapshotMeta ◄──► WireSnapshotMeta   encode_snapshot_meta / decode_snapshot_meta
//! ```
//!
//! A payload is a bare protobuf message: it carries no length and no version. A stream
//! transport frames it (raft-node prefixes its length); a request/response transport sends it
//! as a body (see [`MessageBody::kind`](crate::MessageBody::kind) for which messages answer
//! which).
//!
//! Rolling upgrades: field tags are never reused or renumbered, so peers of different builds
//! understand each other; a newer build may add fields and message kinds (an older one skips
//! unknown fields, and refuses an envelope whose body it does not know, which the core treats
//! as a lost message). The exact bytes of every message kind are pinned by a test.
//!
//! Decoding checks structure (a body is present, every log id is there, an entry kind is
//! known); the core checks the values (terms, indexes, addressing, configurations) when it
//! steps the message. Bytes fields of a decoded message are slices of the payload, not copies.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use raft_core::wire::{decode_message, encode_message};
//! use raft_core::{Index, Message, MessageBody, NodeId, Term};
//!
//! let heartbeat = Message {
//!     from: NodeId(1),
//!     to: NodeId(2),
//!     term: Term(3),
//!     body: MessageBody::Heartbeat { commit: Index(6), read_round: 1 },
//! };
//! let mut payload = BytesMut::new();
//! encode_message(&heartbeat, &mut payload);
//! assert_eq!(decode_message(payload.freeze()), Ok(heartbeat));
//! assert!(decode_message(Bytes::from_static(b"\xff")).is_err());
//! ```

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use crate::message::{Message, MessageBody};
use crate::types::{Configuration, Entry, EntryKind, Index, LogId, NodeId, SnapshotMeta, Term};

/// Why bytes could not be turned into a message, entry or snapshot metadata.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The protobuf encoding is broken (the text is prost's account of where).
    #[error("undecodable payload: {0}")]
    Undecodable(String),
    /// A field the message cannot do without is absent, or a value is out of its domain.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which message or field.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One Raft message on the wire.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// The sender.
    #[prost(uint64, tag = "1")]
    pub from: u64,
    /// The receiver.
    #[prost(uint64, tag = "2")]
    pub to: u64,
    /// The sender's term.
    #[prost(uint64, tag = "3")]
    pub term: u64,
    /// What the message says.
    #[prost(oneof = "Body", tags = "4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14")]
    pub body: Option<Body>,
}

/// The kinds of message, one per [`MessageBody`] variant except [`MessageBody::Commit`], which
/// travels as a [`Heartbeat`] with `commit_notice` set.
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    #[prost(message, tag = "4")]
    VoteRequest(VoteRequest),
    #[prost(message, tag = "5")]
    VoteResponse(VoteResponse),
    #[prost(message, tag = "6")]
    Append(Append),
    #[prost(message, tag = "7")]
    AppendResponse(AppendResponse),
    #[prost(message, tag = "8")]
    Heartbeat(Heartbeat),
    #[prost(message, tag = "9")]
    HeartbeatResponse(HeartbeatResponse),
    #[prost(message, tag = "10")]
    InstallSnapshot(InstallSnapshot),
    #[prost(message, tag = "11")]
    InstallSnapshotResponse(InstallSnapshotResponse),
    #[prost(message, tag = "12")]
    TimeoutNow(TimeoutNow),
    #[prost(message, tag = "13")]
    ReadIndexRequest(ReadIndexRequest),
    #[prost(message, tag = "14")]
    ReadIndexResponse(ReadIndexResponse),
}

/// A log entry's identity ([`LogId`]).
#[allow(missing_docs)]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct WireLogId {
    #[prost(uint64, tag = "1")]
    pub term: u64,
    #[prost(uint64, tag = "2")]
    pub index: u64,
}

/// A log entry ([`Entry`]).
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireEntry {
    #[prost(uint64, tag = "1")]
    pub term: u64,
    #[prost(uint64, tag = "2")]
    pub index: u64,
    /// 0: a command, 1: a leader's no-op, 2: a configuration (data: the core's
    /// `Configuration::encode` form). An older peer refuses kind 2 as malformed, which the
    /// core treats as a lost message.
    #[prost(uint32, tag = "3")]
    pub kind: u32,
    #[prost(bytes = "bytes", tag = "4")]
    pub data: Bytes,
}

/// What a snapshot covers ([`SnapshotMeta`]): its last entry and the configuration as of it.
/// `outgoing` and `learners` came with membership changes (tags 3 and 4): a message from an
/// older peer has neither and decodes as a configuration of voters only. An older peer skips
/// them, so it would read a joint or learner configuration as its voters alone: membership
/// changes wait until every peer runs a build that knows them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireSnapshotMeta {
    /// The last entry the snapshot covers.
    #[prost(message, optional, tag = "1")]
    pub last_included: Option<WireLogId>,
    /// The voters (C_new while joint).
    #[prost(uint64, repeated, tag = "2")]
    pub voters: Vec<u64>,
    /// The outgoing voters (C_old) while the configuration is joint.
    #[prost(uint64, repeated, tag = "3")]
    pub outgoing: Vec<u64>,
    /// The learners.
    #[prost(uint64, repeated, tag = "4")]
    pub learners: Vec<u64>,
}

/// [`MessageBody::VoteRequest`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteRequest {
    #[prost(message, optional, tag = "1")]
    pub last_log: Option<WireLogId>,
    #[prost(bool, tag = "2")]
    pub pre_vote: bool,
    #[prost(bool, tag = "3")]
    pub leadership_transfer: bool,
}

/// [`MessageBody::VoteResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteResponse {
    #[prost(bool, tag = "1")]
    pub granted: bool,
    #[prost(bool, tag = "2")]
    pub pre_vote: bool,
}

/// [`MessageBody::Append`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Append {
    #[prost(message, optional, tag = "1")]
    pub prev: Option<WireLogId>,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<WireEntry>,
    #[prost(uint64, tag = "3")]
    pub commit: u64,
}

/// [`MessageBody::AppendResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct AppendResponse {
    #[prost(uint64, tag = "1")]
    pub index: u64,
    #[prost(bool, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "3")]
    pub hint: Option<WireLogId>,
}

/// [`MessageBody::Heartbeat`], or [`MessageBody::Commit`] when `commit_notice` is set.
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Heartbeat {
    #[prost(uint64, tag = "1")]
    pub commit: u64,
    #[prost(uint64, tag = "2")]
    pub read_round: u64,
    /// A commit notice ([`MessageBody::Commit`]), which wants no answer. It travels as a
    /// heartbeat so that an older peer, which skips this field, takes it for one and answers
    /// it, rather than refusing a message kind it does not know.
    #[prost(bool, tag = "3")]
    pub commit_notice: bool,
}

/// [`MessageBody::HeartbeatResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatResponse {
    #[prost(uint64, tag = "1")]
    pub read_round: u64,
}

/// [`MessageBody::InstallSnapshot`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstallSnapshot {
    #[prost(message, optional, tag = "1")]
    pub meta: Option<WireSnapshotMeta>,
    #[prost(uint64, tag = "2")]
    pub offset: u64,
    #[prost(bytes = "bytes", tag = "3")]
    pub data: Bytes,
    #[prost(bool, tag = "4")]
    pub done: bool,
}

/// [`MessageBody::InstallSnapshotResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstallSnapshotResponse {
    #[prost(message, optional, tag = "1")]
    pub last_included: Option<WireLogId>,
    #[prost(uint64, tag = "2")]
    pub next_offset: u64,
    #[prost(bool, tag = "3")]
    pub done: bool,
}

/// [`MessageBody::TimeoutNow`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeoutNow {}

/// [`MessageBody::ReadIndexRequest`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadIndexRequest {
    #[prost(uint64, tag = "1")]
    pub context: u64,
}

/// [`MessageBody::ReadIndexResponse`].
#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadIndexResponse {
    #[prost(uint64, tag = "1")]
    pub context: u64,
    #[prost(uint64, optional, tag = "2")]
    pub index: Option<u64>,
}

/// [`WireEntry::kind`] of a command.
const ENTRY_NORMAL: u32 = 0;
/// [`WireEntry::kind`] of a leader's no-op.
const ENTRY_NOOP: u32 = 1;
/// [`WireEntry::kind`] of a configuration entry.
const ENTRY_CONFIGURATION: u32 = 2;

/// Appends the encoding of `message` to `out`.
pub fn encode_message(message: &Message, out: &mut BytesMut) {
    encode(&Envelope::from(message), out);
}

/// Decodes a payload written by [`encode_message`].
pub fn decode_message(payload: Bytes) -> Result<Message, DecodeError> {
    Message::try_from(decode::<Envelope>(payload)?)
}

/// Appends the encoding of one entry to `out`: the bytes an entry has inside an append
/// message, for a service that stores or forwards entries itself.
pub fn encode_entry(entry: &Entry, out: &mut BytesMut) {
    encode(&WireEntry::from(entry), out);
}

/// Decodes a payload written by [`encode_entry`]. A configuration entry's data is not decoded
/// here: [`Configuration::decode`] checks it.
pub fn decode_entry(payload: Bytes) -> Result<Entry, DecodeError> {
    Entry::try_from(decode::<WireEntry>(payload)?)
}

/// Appends the encoding of snapshot metadata to `out`: the bytes it has inside an
/// install-snapshot message, for a service that stores snapshots itself.
pub fn encode_snapshot_meta(meta: &SnapshotMeta, out: &mut BytesMut) {
    encode(&WireSnapshotMeta::from(meta), out);
}

/// Decodes a payload written by [`encode_snapshot_meta`]. The configuration is taken as it is;
/// [`Configuration::validate`] checks it.
pub fn decode_snapshot_meta(payload: Bytes) -> Result<SnapshotMeta, DecodeError> {
    SnapshotMeta::try_from(decode::<WireSnapshotMeta>(payload)?)
}

fn encode(message: &impl prost::Message, out: &mut BytesMut) {
    out.reserve(message.encoded_len());
    message
        .encode(out)
        .expect("the buffer was reserved to the encoded length");
}

fn decode<T: prost::Message + Default>(payload: Bytes) -> Result<T, DecodeError> {
    T::decode(payload).map_err(|error| DecodeError::Undecodable(error.to_string()))
}

fn node_ids(set: &BTreeSet<NodeId>) -> Vec<u64> {
    set.iter().map(|node| node.0).collect()
}

fn wire_log_id(id: LogId) -> Option<WireLogId> {
    Some(WireLogId {
        term: id.term.0,
        index: id.index.0,
    })
}

fn log_id(id: Option<WireLogId>, what: &'static str) -> Result<LogId, DecodeError> {
    let id = id.ok_or(DecodeError::Malformed {
        what,
        reason: "log id missing",
    })?;
    Ok(LogId::new(Term(id.term), Index(id.index)))
}

impl From<&Entry> for WireEntry {
    fn from(entry: &Entry) -> WireEntry {
        WireEntry {
            term: entry.id.term.0,
            index: entry.id.index.0,
            kind: match entry.kind {
                EntryKind::Normal => ENTRY_NORMAL,
                EntryKind::Noop => ENTRY_NOOP,
                EntryKind::Configuration => ENTRY_CONFIGURATION,
            },
            data: entry.data.clone(),
        }
    }
}

impl TryFrom<WireEntry> for Entry {
    type Error = DecodeError;

    fn try_from(entry: WireEntry) -> Result<Entry, DecodeError> {
        let kind = match entry.kind {
            ENTRY_NORMAL => EntryKind::Normal,
            ENTRY_NOOP => EntryKind::Noop,
            ENTRY_CONFIGURATION => EntryKind::Configuration,
            _ => {
                return Err(DecodeError::Malformed {
                    what: "entry",
                    reason: "unknown entry kind",
                })
            }
        };
        Ok(Entry {
            id: LogId::new(Term(entry.term), Index(entry.index)),
            kind,
            data: entry.data,
        })
    }
}

impl From<&SnapshotMeta> for WireSnapshotMeta {
    fn from(meta: &SnapshotMeta) -> WireSnapshotMeta {
        WireSnapshotMeta {
            last_included: wire_log_id(meta.last_included),
            voters: node_ids(&meta.configuration.voters),
            outgoing: node_ids(&meta.configuration.outgoing),
            learners: node_ids(&meta.configuration.learners),
        }
    }
}

impl TryFrom<WireSnapshotMeta> for SnapshotMeta {
    type Error = DecodeError;

    fn try_from(meta: WireSnapshotMeta) -> Result<SnapshotMeta, DecodeError> {
        Ok(SnapshotMeta {
            last_included: log_id(meta.last_included, "snapshot metadata")?,
            configuration: Configuration {
                voters: meta.voters.into_iter().map(NodeId).collect(),
                outgoing: meta.outgoing.into_iter().map(NodeId).collect(),
                learners: meta.learners.into_iter().map(NodeId).collect(),
            },
        })
    }
}

impl From<&Message> for Envelope {
    fn from(message: &Message) -> Envelope {
        let body = match &message.body {
            MessageBody::VoteRequest {
                last_log,
                pre_vote,
                leadership_transfer,
            } => Body::VoteRequest(VoteRequest {
                last_log: wire_log_id(*last_log),
                pre_vote: *pre_vote,
                leadership_transfer: *leadership_transfer,
            }),
            MessageBody::VoteResponse { granted, pre_vote } => Body::VoteResponse(VoteResponse {
                granted: *granted,
                pre_vote: *pre_vote,
            }),
            MessageBody::Append {
                prev,
                entries,
                commit,
            } => Body::Append(Append {
                prev: wire_log_id(*prev),
                entries: entries.iter().map(WireEntry::from).collect(),
                commit: commit.0,
            }),
            MessageBody::AppendResponse {
                index,
                success,
                hint,
            } => Body::AppendResponse(AppendResponse {
                index: index.0,
                success: *success,
                hint: wire_log_id(*hint),
            }),
            MessageBody::Heartbeat { commit, read_round } => Body::Heartbeat(Heartbeat {
                commit: commit.0,
                read_round: *read_round,
                commit_notice: false,
            }),
            MessageBody::HeartbeatResponse { read_round } => {
                Body::HeartbeatResponse(HeartbeatResponse {
                    read_round: *read_round,
                })
            }
            MessageBody::Commit { commit } => Body::Heartbeat(Heartbeat {
                commit: commit.0,
                read_round: 0,
                commit_notice: true,
            }),
            MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            } => Body::InstallSnapshot(InstallSnapshot {
                meta: Some(WireSnapshotMeta::from(meta)),
                offset: *offset,
                data: data.clone(),
                done: *done,
            }),
            MessageBody::InstallSnapshotResponse {
                last_included,
                next_offset,
                done,
            } => Body::InstallSnapshotResponse(InstallSnapshotResponse {
                last_included: wire_log_id(*last_included),
                next_offset: *next_offset,
                done: *done,
            }),
            MessageBody::TimeoutNow => Body::TimeoutNow(TimeoutNow {}),
            MessageBody::ReadIndexRequest { context } => {
                Body::ReadIndexRequest(ReadIndexRequest { context: *context })
            }
            MessageBody::ReadIndexResponse { context, index } => {
                Body::ReadIndexResponse(ReadIndexResponse {
                    context: *context,
                    index: index.map(|index| index.0),
                })
            }
        };
        Envelope {
            from: message.from.0,
            to: message.to.0,
            term: message.term.0,
            body: Some(body),
        }
    }
}

impl TryFrom<Envelope> for Message {
    type Error = DecodeError;

    fn try_from(envelope: Envelope) -> Result<Message, DecodeError> {
        let body = match envelope.body.ok_or(DecodeError::Malformed {
            what: "envelope",
            reason: "no body (a message kind this build does not know?)",
        })? {
            Body::VoteRequest(request) => MessageBody::VoteRequest {
                last_log: log_id(request.last_log, "vote request")?,
                pre_vote: request.pre_vote,
                leadership_transfer: request.leadership_transfer,
            },
            Body::VoteResponse(response) => MessageBody::VoteResponse {
                granted: response.granted,
                pre_vote: response.pre_vote,
            },
            Body::Append(append) => MessageBody::Append {
                prev: log_id(append.prev, "append")?,
                entries: append
                    .entries
                    .into_iter()
                    .map(Entry::try_from)
                    .collect::<Result<_, _>>()?,
                commit: Index(append.commit),
            },
            Body::AppendResponse(response) => MessageBody::AppendResponse {
                index: Index(response.index),
                success: response.success,
                hint: log_id(response.hint, "append response")?,
            },
            Body::Heartbeat(heartbeat) if heartbeat.commit_notice => MessageBody::Commit {
                commit: Index(heartbeat.commit),
            },
            Body::Heartbeat(heartbeat) => MessageBody::Heartbeat {
                commit: Index(heartbeat.commit),
                read_round: heartbeat.read_round,
            },
            Body::HeartbeatResponse(response) => MessageBody::HeartbeatResponse {
                read_round: response.read_round,
            },
            Body::InstallSnapshot(install) => MessageBody::InstallSnapshot {
                meta: SnapshotMeta::try_from(install.meta.ok_or(DecodeError::Malformed {
                    what: "install snapshot",
                    reason: "metadata missing",
                })?)?,
                offset: install.offset,
                data: install.data,
                done: install.done,
            },
            Body::InstallSnapshotResponse(response) => MessageBody::InstallSnapshotResponse {
                last_included: log_id(response.last_included, "install snapshot response")?,
                next_offset: response.next_offset,
                done: response.done,
            },
            Body::TimeoutNow(TimeoutNow {}) => MessageBody::TimeoutNow,
            Body::ReadIndexRequest(request) => MessageBody::ReadIndexRequest {
                context: request.context,
            },
            Body::ReadIndexResponse(response) => MessageBody::ReadIndexResponse {
                context: response.context,
                index: response.index.map(Index),
            },
        };
        Ok(Message {
            from: NodeId(envelope.from),
            to: NodeId(envelope.to),
            term: Term(envelope.term),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(Term(term), Index(index))
    }

    fn joint() -> Configuration {
        Configuration {
            voters: [NodeId(1), NodeId(2), NodeId(4)].into_iter().collect(),
            outgoing: [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect(),
            learners: [NodeId(5)].into_iter().collect(),
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn encoded(message: &Message) -> String {
        let mut payload = BytesMut::new();
        encode_message(message, &mut payload);
        hex(&payload)
    }

    /// One entry of each kind, as the append of the golden test carries them.
    fn sample_entries() -> Vec<Entry> {
        vec![
            Entry {
                id: id(3, 5),
                kind: EntryKind::Noop,
                data: Bytes::new(),
            },
            Entry {
                id: id(3, 6),
                kind: EntryKind::Normal,
                data: Bytes::from_static(b"put x 1"),
            },
            Entry {
                id: id(3, 7),
                kind: EntryKind::Configuration,
                data: Configuration::new([NodeId(1), NodeId(2)]).encode(),
            },
        ]
    }

    /// Running clusters depend on these exact bytes: a change of tag, field type or the way a
    /// variant maps onto the wire shows up here before it splits a cluster of mixed builds.
    /// (Pinned from the encoder as it was in raft-node before it moved here.)
    #[test]
    fn message_encodings_are_pinned_byte_for_byte() {
        let golden = [
            (
                MessageBody::VoteRequest {
                    last_log: id(3, 9),
                    pre_vote: true,
                    leadership_transfer: true,
                },
                "080110021803220a0a040803100910011801",
            ),
            (
                MessageBody::VoteResponse {
                    granted: true,
                    pre_vote: false,
                },
                "0801100218032a020801",
            ),
            (
                MessageBody::Append {
                    prev: id(2, 4),
                    entries: sample_entries(),
                    commit: Index(4),
                },
                "080110021803322f0a04080210041206080310051801120d08031006220770757420782031120e08031007180222060102010200001804",
            ),
            (
                MessageBody::AppendResponse {
                    index: Index(6),
                    success: false,
                    hint: id(2, 3),
                },
                "0801100218033a0808061a0408021003",
            ),
            (
                MessageBody::Heartbeat {
                    commit: Index(6),
                    read_round: 300,
                },
                "0801100218034205080610ac02",
            ),
            (
                MessageBody::HeartbeatResponse { read_round: 300 },
                "0801100218034a0308ac02",
            ),
            (
                MessageBody::Commit { commit: Index(9) },
                "080110021803420408091801",
            ),
            (
                MessageBody::InstallSnapshot {
                    meta: SnapshotMeta {
                        last_included: id(3, 100),
                        configuration: joint(),
                    },
                    offset: 4096,
                    data: Bytes::from_static(b"chunk"),
                    done: true,
                },
                "08011002180352210a130a040803106412030102041a030102032201051080201a056368756e6b2001",
            ),
            (
                MessageBody::InstallSnapshotResponse {
                    last_included: id(3, 100),
                    next_offset: 5096,
                    done: true,
                },
                "0801100218035a0b0a040803106410e8271801",
            ),
            (MessageBody::TimeoutNow, "0801100218036200"),
            (
                MessageBody::ReadIndexRequest { context: 99 },
                "0801100218036a020863",
            ),
            (
                MessageBody::ReadIndexResponse {
                    context: 99,
                    index: Some(Index(6)),
                },
                "080110021803720408631006",
            ),
            (
                MessageBody::ReadIndexResponse {
                    context: 98,
                    index: None,
                },
                "08011002180372020862",
            ),
        ];
        for (body, golden_hex) in golden {
            let message = Message {
                from: NodeId(1),
                to: NodeId(2),
                term: Term(3),
                body,
            };
            assert_eq!(encoded(&message), golden_hex, "{message:?}");
            let mut payload = BytesMut::new();
            encode_message(&message, &mut payload);
            assert_eq!(decode_message(payload.freeze()), Ok(message));
        }
    }

    /// An entry and snapshot metadata encode alone exactly as they do inside a message (the
    /// golden append and install-snapshot above), and decode back.
    #[test]
    fn entries_and_snapshot_metadata_encode_as_inside_messages() {
        let entry_golden = [
            "080310051801",
            "08031006220770757420782031",
            "0803100718022206010201020000",
        ];
        for (entry, golden_hex) in sample_entries().into_iter().zip(entry_golden) {
            let mut payload = BytesMut::new();
            encode_entry(&entry, &mut payload);
            assert_eq!(hex(&payload), golden_hex, "{entry:?}");
            assert_eq!(decode_entry(payload.freeze()), Ok(entry));
        }
        let meta = SnapshotMeta {
            last_included: id(3, 100),
            configuration: joint(),
        };
        let mut payload = BytesMut::new();
        encode_snapshot_meta(&meta, &mut payload);
        assert_eq!(hex(&payload), "0a040803106412030102041a03010203220105");
        assert_eq!(decode_snapshot_meta(payload.freeze()), Ok(meta));
    }

    #[test]
    fn structurally_incomplete_payloads_are_errors() {
        let no_body = Envelope {
            from: 1,
            to: 2,
            term: 3,
            body: None,
        };
        assert!(matches!(
            Message::try_from(no_body),
            Err(DecodeError::Malformed { .. })
        ));
        let no_prev = Envelope {
            from: 1,
            to: 2,
            term: 3,
            body: Some(Body::Append(Append {
                prev: None,
                entries: Vec::new(),
                commit: 0,
            })),
        };
        assert!(matches!(
            Message::try_from(no_prev),
            Err(DecodeError::Malformed { .. })
        ));
        let unknown_kind = WireEntry {
            term: 1,
            index: 1,
            kind: 3,
            data: Bytes::new(),
        };
        assert_eq!(
            decode_entry(Bytes::from(unknown_kind.encode_to_vec())),
            Err(DecodeError::Malformed {
                what: "entry",
                reason: "unknown entry kind"
            })
        );
        let no_last_included = WireSnapshotMeta {
            last_included: None,
            voters: vec![1],
            outgoing: Vec::new(),
            learners: Vec::new(),
        };
        assert!(matches!(
            decode_snapshot_meta(Bytes::from(no_last_included.encode_to_vec())),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode_message(Bytes::from_static(&[0x0a, 0x05, 0x01])),
            Err(DecodeError::Undecodable(_))
        ));
    }

    /// The snapshot metadata an older peer sends (voters only, tags 1 and 2) decodes as a
    /// configuration without outgoing voters or learners.
    #[test]
    fn snapshot_metadata_of_an_older_peer_decodes_as_voters_only() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct OlderSnapshotMeta {
            #[prost(message, optional, tag = "1")]
            last_included: Option<WireLogId>,
            #[prost(uint64, repeated, tag = "2")]
            voters: Vec<u64>,
        }
        let older = OlderSnapshotMeta {
            last_included: Some(WireLogId { term: 2, index: 9 }),
            voters: vec![1, 2, 3],
        };
        let decoded = decode_snapshot_meta(Bytes::from(older.encode_to_vec())).expect("decodes");
        assert_eq!(
            decoded.configuration,
            Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
        );
        // And an older peer reads the voters of a newer peer's metadata.
        let newer = WireSnapshotMeta {
            last_included: Some(WireLogId { term: 2, index: 9 }),
            voters: vec![1, 2, 4],
            outgoing: vec![1, 2, 3],
            learners: vec![5],
        };
        let read_by_older =
            OlderSnapshotMeta::decode(newer.encode_to_vec().as_slice()).expect("skips new fields");
        assert_eq!(read_by_older.voters, vec![1, 2, 4]);
    }

    #[test]
    fn a_commit_notice_reads_as_a_heartbeat_to_an_older_peer() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct OlderHeartbeat {
            #[prost(uint64, tag = "1")]
            commit: u64,
            #[prost(uint64, tag = "2")]
            read_round: u64,
        }
        let notice = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::Commit { commit: Index(7) },
        };
        let Some(Body::Heartbeat(heartbeat)) = Envelope::from(&notice).body else {
            panic!("a commit notice travels as a heartbeat");
        };
        let read_by_older = OlderHeartbeat::decode(heartbeat.encode_to_vec().as_slice())
            .expect("skips the new field");
        assert_eq!(read_by_older.commit, 7);
        // A heartbeat is still a heartbeat to this build.
        let heartbeat = Message {
            body: MessageBody::Heartbeat {
                commit: Index(7),
                read_round: 0,
            },
            ..notice
        };
        assert_eq!(Message::try_from(Envelope::from(&heartbeat)), Ok(heartbeat));
    }

    proptest! {
        /// Bytes from outside never make a decoder panic (message-level round trips are
        /// raft-node's `tests/wire.rs`, through its frames).
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let bytes = Bytes::from(bytes);
            let _ = decode_message(bytes.clone());
            let _ = decode_entry(bytes.clone());
            let _ = decode_snapshot_meta(bytes);
        }

        #[test]
        fn every_entry_roundtrips(
            term in any::<u64>(),
            index in any::<u64>(),
            kind in prop_oneof![
                Just(EntryKind::Normal),
                Just(EntryKind::Noop),
                Just(EntryKind::Configuration)
            ],
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let entry = Entry { id: id(term, index), kind, data: Bytes::from(data) };
            let mut payload = BytesMut::new();
            encode_entry(&entry, &mut payload);
            prop_assert_eq!(decode_entry(payload.freeze()), Ok(entry));
        }
    }
}
