//! The wire format between peers: protobuf messages derived in code with `prost` (no `protoc`),
//! in length-prefixed frames.
//!
//! ```text
//!  connection := frame*          the dialer's first frame is a Handshake, then Envelopes
//!  frame      := length u32 (big-endian) | payload (protobuf)       length <= frame_bytes_max
//! ```
//!
//! Rolling upgrades: field tags are never reused or renumbered; a newer peer may add fields and
//! message kinds (an older one skips unknown fields, and refuses an envelope whose body it does
//! not know, which the core treats as a lost message). `Handshake::protocol_version` is raised
//! only for changes an older peer cannot skip.
//!
//! Decoding checks structure (a body is present, every log id is there, an entry kind is
//! known); the core checks the values (terms, indexes, addressing) when it steps the message.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message as _;
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, Message, MessageBody, NodeId, SnapshotMeta, Term,
};
use thiserror::Error;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Bytes of the length prefix of a frame.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Why bytes from the network could not be turned into a message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The protobuf encoding is broken.
    #[error("undecodable frame: {0}")]
    Undecodable(String),
    /// A field the message cannot do without is absent, or a value is out of its domain.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which message or field.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A frame announced more bytes than the connection accepts.
    #[error("frame of {length} bytes exceeds the limit of {limit}")]
    FrameTooLarge {
        /// The announced length.
        length: u64,
        /// The limit.
        limit: u64,
    },
}

/// The first frame the dialing side sends on a connection: who it is and which cluster it
/// belongs to, so that a connection from a foreign cluster or to the wrong node is refused.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Handshake {
    /// [`PROTOCOL_VERSION`] of the sender.
    #[prost(uint32, tag = "1")]
    pub protocol_version: u32,
    /// The cluster both ends must belong to.
    #[prost(string, tag = "2")]
    pub cluster_id: String,
    /// The sender's node id.
    #[prost(uint64, tag = "3")]
    pub from: u64,
    /// The node id the sender believes it is talking to.
    #[prost(uint64, tag = "4")]
    pub to: u64,
    /// Where the sender listens for Raft traffic, `host:port`; empty when it does not say. A
    /// node that does not know the sender yet (it joined while this one was down) admits it
    /// and answers at this address.
    #[prost(string, tag = "5")]
    pub from_address: String,
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

/// The kinds of message, one per [`MessageBody`] variant.
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

/// A log entry's identity.
#[allow(missing_docs)]
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct WireLogId {
    #[prost(uint64, tag = "1")]
    pub term: u64,
    #[prost(uint64, tag = "2")]
    pub index: u64,
}

/// A log entry.
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

/// What a snapshot covers: its last entry and the configuration as of it. `outgoing` and
/// `learners` came with membership changes (tags 3 and 4): a message from an older peer has
/// neither and decodes as a configuration of voters only. An older peer skips them, so it
/// would read a joint or learner configuration as its voters alone: membership changes wait
/// until every peer runs a build that knows them.
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

#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoteResponse {
    #[prost(bool, tag = "1")]
    pub granted: bool,
    #[prost(bool, tag = "2")]
    pub pre_vote: bool,
}

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

#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeartbeatResponse {
    #[prost(uint64, tag = "1")]
    pub read_round: u64,
}

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

#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeoutNow {}

#[allow(missing_docs)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadIndexRequest {
    #[prost(uint64, tag = "1")]
    pub context: u64,
}

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

fn node_ids(set: &std::collections::BTreeSet<NodeId>) -> Vec<u64> {
    set.iter().map(|node| node.0).collect()
}

fn wire_log_id(id: LogId) -> Option<WireLogId> {
    Some(WireLogId {
        term: id.term.0,
        index: id.index.0,
    })
}

fn log_id(id: Option<WireLogId>, what: &'static str) -> Result<LogId, WireError> {
    let id = id.ok_or(WireError::Malformed {
        what,
        reason: "log id missing",
    })?;
    Ok(LogId::new(Term(id.term), Index(id.index)))
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
                entries: entries
                    .iter()
                    .map(|entry| WireEntry {
                        term: entry.id.term.0,
                        index: entry.id.index.0,
                        kind: match entry.kind {
                            EntryKind::Normal => ENTRY_NORMAL,
                            EntryKind::Noop => ENTRY_NOOP,
                            EntryKind::Configuration => ENTRY_CONFIGURATION,
                        },
                        data: entry.data.clone(),
                    })
                    .collect(),
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
                meta: Some(WireSnapshotMeta {
                    last_included: wire_log_id(meta.last_included),
                    voters: node_ids(&meta.configuration.voters),
                    outgoing: node_ids(&meta.configuration.outgoing),
                    learners: node_ids(&meta.configuration.learners),
                }),
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
    type Error = WireError;

    fn try_from(envelope: Envelope) -> Result<Message, WireError> {
        let body = match envelope.body.ok_or(WireError::Malformed {
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
                    .map(|entry| {
                        let kind = match entry.kind {
                            ENTRY_NORMAL => EntryKind::Normal,
                            ENTRY_NOOP => EntryKind::Noop,
                            ENTRY_CONFIGURATION => EntryKind::Configuration,
                            _ => {
                                return Err(WireError::Malformed {
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
                    })
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
            Body::InstallSnapshot(install) => {
                let meta = install.meta.ok_or(WireError::Malformed {
                    what: "install snapshot",
                    reason: "metadata missing",
                })?;
                MessageBody::InstallSnapshot {
                    meta: SnapshotMeta {
                        last_included: log_id(meta.last_included, "snapshot metadata")?,
                        configuration: Configuration {
                            voters: meta.voters.into_iter().map(NodeId).collect(),
                            outgoing: meta.outgoing.into_iter().map(NodeId).collect(),
                            learners: meta.learners.into_iter().map(NodeId).collect(),
                        },
                    },
                    offset: install.offset,
                    data: install.data,
                    done: install.done,
                }
            }
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

/// Appends the frame of `message` (length prefix and protobuf) to `out`.
pub fn encode_message(message: &Message, out: &mut BytesMut) {
    encode_frame(&Envelope::from(message), out);
}

/// Appends the frame of any wire message to `out`.
pub fn encode_frame(message: &impl prost::Message, out: &mut BytesMut) {
    let length = message.encoded_len();
    out.reserve(FRAME_PREFIX_BYTES + length);
    out.put_u32(u32::try_from(length).expect("a message is far below 4 GiB"));
    message
        .encode(out)
        .expect("the buffer was reserved to the encoded length");
}

/// Decodes a frame's payload as a Raft message.
pub fn decode_message(payload: Bytes) -> Result<Message, WireError> {
    let envelope =
        Envelope::decode(payload).map_err(|error| WireError::Undecodable(error.to_string()))?;
    Message::try_from(envelope)
}

/// Decodes a frame's payload as a handshake.
pub fn decode_handshake(payload: Bytes) -> Result<Handshake, WireError> {
    Handshake::decode(payload).map_err(|error| WireError::Undecodable(error.to_string()))
}

/// Cuts a byte stream into frame payloads, refusing any frame longer than a limit before
/// buffering it.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: BytesMut,
    frame_bytes_max: u64,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `frame_bytes_max` bytes of payload.
    pub fn new(frame_bytes_max: u64) -> FrameDecoder {
        FrameDecoder {
            buffer: BytesMut::new(),
            frame_bytes_max,
        }
    }

    /// Adds bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The buffer to read into directly (e.g. with `read_buf`), avoiding a copy.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buffer
    }

    /// The next complete frame's payload, `Ok(None)` if more bytes are needed, or an error for
    /// a frame over the limit (the connection should then be closed: the stream cannot be
    /// resynchronised).
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, WireError> {
        if self.buffer.len() < FRAME_PREFIX_BYTES {
            return Ok(None);
        }
        let length = u64::from((&self.buffer[..FRAME_PREFIX_BYTES]).get_u32());
        if length > self.frame_bytes_max {
            return Err(WireError::FrameTooLarge {
                length,
                limit: self.frame_bytes_max,
            });
        }
        let frame_end = FRAME_PREFIX_BYTES + length as usize;
        if self.buffer.len() < frame_end {
            self.buffer.reserve(frame_end - self.buffer.len());
            return Ok(None);
        }
        // Copied out rather than split off: the entries decoded from a frame are slices of it
        // and live on in the log, and a split-off frame would keep the whole read buffer it
        // shares alive with them (measured: followers' resident size several times the log's).
        // The copy is one exact-size allocation per frame, and the read buffer is reused.
        let frame = Bytes::copy_from_slice(&self.buffer[FRAME_PREFIX_BYTES..frame_end]);
        self.buffer.advance(frame_end);
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_messages() -> Vec<Message> {
        let id = |term, index| LogId::new(Term(term), Index(index));
        let bodies = vec![
            MessageBody::VoteRequest {
                last_log: id(3, 9),
                pre_vote: true,
                leadership_transfer: false,
            },
            MessageBody::VoteResponse {
                granted: true,
                pre_vote: false,
            },
            MessageBody::Append {
                prev: id(2, 4),
                entries: vec![
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
                ],
                commit: Index(4),
            },
            MessageBody::AppendResponse {
                index: Index(6),
                success: false,
                hint: id(2, 3),
            },
            MessageBody::Heartbeat {
                commit: Index(6),
                read_round: 17,
            },
            MessageBody::HeartbeatResponse { read_round: 17 },
            MessageBody::Commit { commit: Index(9) },
            MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    last_included: id(3, 100),
                    configuration: Configuration::new([NodeId(1), NodeId(2), NodeId(3)]),
                },
                offset: 4096,
                data: Bytes::from(vec![5u8; 1000]),
                done: true,
            },
            MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    last_included: id(3, 101),
                    configuration: Configuration {
                        voters: [NodeId(1), NodeId(2), NodeId(4)].into_iter().collect(),
                        outgoing: [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect(),
                        learners: [NodeId(5)].into_iter().collect(),
                    },
                },
                offset: 0,
                data: Bytes::from_static(b"joint"),
                done: false,
            },
            MessageBody::InstallSnapshotResponse {
                last_included: id(3, 100),
                next_offset: 5096,
                done: true,
            },
            MessageBody::TimeoutNow,
            MessageBody::ReadIndexRequest { context: 99 },
            MessageBody::ReadIndexResponse {
                context: 99,
                index: Some(Index(6)),
            },
            MessageBody::ReadIndexResponse {
                context: 98,
                index: None,
            },
        ];
        bodies
            .into_iter()
            .map(|body| Message {
                from: NodeId(1),
                to: NodeId(2),
                term: Term(3),
                body,
            })
            .collect()
    }

    #[test]
    fn every_message_kind_roundtrips_through_frames() {
        let messages = sample_messages();
        let mut stream = BytesMut::new();
        for message in &messages {
            encode_message(message, &mut stream);
        }
        // Fed a byte at a time, the decoder still finds every frame.
        let mut decoder = FrameDecoder::new(1 << 20);
        let mut decoded = Vec::new();
        for byte in stream.iter() {
            decoder.extend(&[*byte]);
            while let Some(frame) = decoder.next_frame().expect("within the limit") {
                decoded.push(decode_message(frame).expect("decodes"));
            }
        }
        assert_eq!(decoded, messages);
    }

    #[test]
    fn oversized_frame_is_refused_before_it_is_buffered() {
        let mut decoder = FrameDecoder::new(100);
        decoder.extend(&101u32.to_be_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(WireError::FrameTooLarge {
                length: 101,
                limit: 100
            })
        );
    }

    #[test]
    fn structurally_incomplete_messages_are_errors() {
        let no_body = Envelope {
            from: 1,
            to: 2,
            term: 3,
            body: None,
        };
        assert!(matches!(
            Message::try_from(no_body),
            Err(WireError::Malformed { .. })
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
            Err(WireError::Malformed { .. })
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
        let decoded = WireSnapshotMeta::decode(older.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded.voters, vec![1, 2, 3]);
        assert!(decoded.outgoing.is_empty() && decoded.learners.is_empty());
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

    /// The payload bytes of `message`, in hex.
    fn payload_hex(message: &Message) -> String {
        let mut frame = BytesMut::new();
        encode_message(message, &mut frame);
        frame[FRAME_PREFIX_BYTES..]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Running clusters depend on these exact bytes: a change of tag, field type or the way a
    /// variant maps onto the wire shows up here before it splits a cluster of mixed builds.
    #[test]
    fn message_encodings_are_pinned_byte_for_byte() {
        let id = |term, index| LogId::new(Term(term), Index(index));
        let joint = Configuration {
            voters: [NodeId(1), NodeId(2), NodeId(4)].into_iter().collect(),
            outgoing: [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect(),
            learners: [NodeId(5)].into_iter().collect(),
        };
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
                    entries: vec![
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
                    ],
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
            (MessageBody::HeartbeatResponse { read_round: 300 }, "0801100218034a0308ac02"),
            (MessageBody::Commit { commit: Index(9) }, "080110021803420408091801"),
            (
                MessageBody::InstallSnapshot {
                    meta: SnapshotMeta {
                        last_included: id(3, 100),
                        configuration: joint,
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
            (MessageBody::ReadIndexRequest { context: 99 }, "0801100218036a020863"),
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
        for (body, hex) in golden {
            let message = Message {
                from: NodeId(1),
                to: NodeId(2),
                term: Term(3),
                body,
            };
            assert_eq!(payload_hex(&message), hex, "{message:?}");
        }
    }

    #[test]
    fn handshake_roundtrips() {
        let handshake = Handshake {
            protocol_version: PROTOCOL_VERSION,
            cluster_id: "prod-eu".into(),
            from: 1,
            to: 3,
            from_address: "10.0.0.1:9001".into(),
        };
        let mut stream = BytesMut::new();
        encode_frame(&handshake, &mut stream);
        let mut decoder = FrameDecoder::new(1024);
        decoder.extend(&stream);
        let frame = decoder.next_frame().expect("fits").expect("complete");
        assert_eq!(decode_handshake(frame), Ok(handshake));
    }
}
