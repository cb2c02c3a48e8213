//! The wire format between peers on a connection: length-prefixed frames, the first of which is
//! a [`Handshake`], the rest messages in the encoding of [`raft_core::wire`] (protobuf; its
//! rolling-upgrade rules, its structural checks and its pinned bytes live there, so that a user
//! with a transport of their own speaks the same format without this crate).
//!
//! ```text
//!  connection := frame*          the dialer's first frame is a Handshake, then Envelopes
//!  frame      := length u32 (big-endian) | payload (protobuf)       length <= frame_bytes_max
//! ```
//!
//! `Handshake::protocol_version` is raised only for changes an older peer cannot skip.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message as _;
use raft_core::wire::Envelope;
use raft_core::Message;
use thiserror::Error;

pub use raft_core::wire::{decode_message, DecodeError};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Bytes of the length prefix of a frame.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Why bytes from the network could not be turned into a frame, a handshake or a message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// A frame's payload does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
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

/// Appends the frame of `message` (length prefix and [`raft_core::wire`] payload) to `out`.
pub fn encode_message_frame(message: &Message, out: &mut BytesMut) {
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

/// Decodes a frame's payload as a handshake.
pub fn decode_handshake(payload: Bytes) -> Result<Handshake, WireError> {
    Handshake::decode(payload)
        .map_err(|error| WireError::Decode(DecodeError::Undecodable(error.to_string())))
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
    use raft_core::testing::messages::sample_messages;
    use raft_core::MessageBody;

    use super::*;

    /// Every message kind (the codec's own tests in raft-core pin their bytes), and a snapshot
    /// chunk longer than a one-byte length varint, and than some frames are.
    fn messages_of_a_few_sizes() -> Vec<Message> {
        let mut messages = sample_messages();
        let mut large = messages
            .iter()
            .find(|message| matches!(message.body, MessageBody::InstallSnapshot { .. }))
            .expect("a sample snapshot chunk")
            .clone();
        if let MessageBody::InstallSnapshot { data, .. } = &mut large.body {
            *data = Bytes::from(vec![5u8; 1000]);
        }
        messages.push(large);
        messages
    }

    #[test]
    fn messages_roundtrip_through_frames_read_a_byte_at_a_time() {
        let messages = messages_of_a_few_sizes();
        let mut stream = BytesMut::new();
        for message in &messages {
            encode_message_frame(message, &mut stream);
        }
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
