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

mod convert;
mod schema;
#[cfg(test)]
mod tests;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use crate::message::Message;
#[cfg(doc)]
use crate::types::Configuration;
use crate::types::{Entry, SnapshotMeta};

pub use schema::{
    Append, AppendResponse, Body, Envelope, ForwardProposal, ForwardProposalResponse, Heartbeat,
    HeartbeatResponse, InstallSnapshot, InstallSnapshotResponse, ReadIndexRequest,
    ReadIndexResponse, RecoveryProbe, RecoveryProbeResponse, TimeoutNow, VoteRequest, VoteResponse,
    WireEntry, WireForwardOutcome, WireLogId, WireSnapshotMeta, REFUSAL_BUSY, REFUSAL_NOT_LEADER,
    REFUSAL_NOT_VOTER, REFUSAL_TOO_LARGE, REFUSAL_TRANSFER_IN_PROGRESS,
};

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
