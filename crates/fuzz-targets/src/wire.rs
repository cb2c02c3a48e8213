//! The peer wire format: a payload as a Raft message ([`raft_core::wire`]) or a handshake
//! ([`raft_node::wire`]), and a connection's byte stream cut into frames as the TCP transport
//! reads it.

use bytes::{Bytes, BytesMut};
use raft_core::testing::messages::{sample_messages, SAMPLE_BODY_NAMES};
use raft_core::wire::{decode_message, encode_message};
use raft_core::{Configuration, EntryKind, Message, MessageBody};
use raft_node::transport::tcp::HANDSHAKE_BYTES_MAX;
use raft_node::wire::{
    decode_handshake, encode_frame, encode_message_frame, FrameDecoder, Handshake, WireError,
    FRAME_PREFIX_BYTES, PROTOCOL_VERSION,
};

use crate::Seed;

/// The frame limit after the handshake in [`wire_frames`]: small, so that the fuzzer reaches
/// it (the transport's default is 16 MiB).
const FRAME_BYTES_MAX: u64 = 4096;

/// The payload of `message`'s frame.
fn message_payload(message: &Message) -> Bytes {
    let mut payload = BytesMut::new();
    encode_message(message, &mut payload);
    payload.freeze()
}

/// The payload of `handshake`'s frame.
fn handshake_payload(handshake: &Handshake) -> Bytes {
    let mut frame = BytesMut::new();
    encode_frame(handshake, &mut frame);
    frame.split_off(FRAME_PREFIX_BYTES).freeze()
}

/// Checks what must hold of a message that decoded: it re-encodes to a payload that decodes to
/// the same message, and the data of its configuration entries either is refused or is the
/// canonical encoding of the configuration it decodes to.
fn check_decoded_message(message: &Message) {
    let again = decode_message(message_payload(message));
    assert_eq!(again.as_ref(), Ok(message), "a decoded message round-trips");
    if let MessageBody::Append { entries, .. } = &message.body {
        for entry in entries {
            if entry.kind != EntryKind::Configuration {
                continue;
            }
            if let Ok(configuration) = Configuration::decode(&entry.data) {
                assert_eq!(
                    configuration.encode(),
                    entry.data,
                    "a configuration decodes only from its canonical encoding"
                );
            }
        }
    }
}

/// `data` as the payload of a frame from a peer ([`decode_message`]).
pub fn wire_message(data: &[u8]) {
    if let Ok(message) = decode_message(Bytes::copy_from_slice(data)) {
        check_decoded_message(&message);
    }
}

/// `data` as the payload of a dialer's first frame ([`decode_handshake`]).
pub fn wire_handshake(data: &[u8]) {
    if let Ok(handshake) = decode_handshake(Bytes::copy_from_slice(data)) {
        let again = decode_handshake(handshake_payload(&handshake));
        assert_eq!(again, Ok(handshake), "a decoded handshake round-trips");
    }
}

/// `data` as what an accepted connection receives, read as the TCP transport reads it: the
/// first byte sets how many bytes each read returns (1 to 16), the rest is the stream. The
/// handshake frame (at most [`HANDSHAKE_BYTES_MAX`] bytes) comes first, then message frames (at
/// most 4 KiB here). Every frame handed out is exactly the next length-prefixed run of the
/// stream and within the limit, a frame over the limit is refused from its prefix alone,
/// no more than one frame and one read are ever buffered, and every frame that decodes
/// round-trips. The connection ends, as in the transport, at the first refused frame.
pub fn wire_frames(data: &[u8]) {
    let Some((&chunking, stream)) = data.split_first() else {
        return;
    };
    let read_bytes = usize::from(chunking % 16) + 1;
    let mut limit = HANDSHAKE_BYTES_MAX;
    let mut decoder = FrameDecoder::new(limit);
    let mut handshake_done = false;
    // Bytes of the stream handed out as frames, prefixes included.
    let mut consumed = 0usize;
    for read in stream.chunks(read_bytes) {
        decoder.extend(read);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(WireError::FrameTooLarge {
                    length,
                    limit: refused_at,
                }) => {
                    assert_eq!(refused_at, limit, "refused at the decoder's limit");
                    assert!(length > limit, "only a frame over the limit is refused");
                    let prefix = &stream[consumed..consumed + FRAME_PREFIX_BYTES];
                    assert_eq!(
                        u64::from(u32::from_be_bytes([
                            prefix[0], prefix[1], prefix[2], prefix[3]
                        ])),
                        length,
                        "the refused length is the next prefix"
                    );
                    return;
                }
                Err(other) => panic!("the frame decoder only refuses sizes, not {other}"),
            };
            assert!(frame.len() as u64 <= limit, "a frame within the limit");
            let frame_end = consumed + FRAME_PREFIX_BYTES + frame.len();
            assert_eq!(
                &stream[consumed..consumed + FRAME_PREFIX_BYTES],
                (frame.len() as u32).to_be_bytes(),
                "the frame's length is the next prefix"
            );
            assert_eq!(
                &stream[consumed + FRAME_PREFIX_BYTES..frame_end],
                &frame[..],
                "the frame is the bytes after its prefix"
            );
            consumed = frame_end;
            if handshake_done {
                match decode_message(frame) {
                    Ok(message) => check_decoded_message(&message),
                    Err(_) => return,
                }
            } else {
                let Ok(handshake) = decode_handshake(frame) else {
                    return;
                };
                let again = decode_handshake(handshake_payload(&handshake));
                assert_eq!(again, Ok(handshake), "a decoded handshake round-trips");
                // As the transport does: a new decoder for the messages, taking over the bytes
                // that came behind the handshake.
                handshake_done = true;
                limit = FRAME_BYTES_MAX;
                let mut messages = FrameDecoder::new(limit);
                messages.extend(decoder.buffer_mut());
                decoder = messages;
            }
        }
        let buffered = decoder.buffer_mut().len();
        assert!(
            buffered < FRAME_PREFIX_BYTES + limit as usize,
            "{buffered} bytes buffered: more than an incomplete frame"
        );
        assert!(
            consumed + buffered <= stream.len(),
            "nothing buffered twice"
        );
    }
}

fn sample_handshake() -> Handshake {
    Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: "raftkv".into(),
        from: 1,
        to: 2,
        from_address: "127.0.0.1:9001".into(),
    }
}

/// Seeds of [`wire_message`]: a payload of every message kind.
pub(crate) fn message_seeds() -> Vec<Seed> {
    let messages = sample_messages();
    assert_eq!(
        messages.len(),
        SAMPLE_BODY_NAMES.len(),
        "a name per sample message"
    );
    SAMPLE_BODY_NAMES
        .into_iter()
        .zip(messages)
        .map(|(name, message)| (name, message_payload(&message).to_vec()))
        .collect()
}

/// Seeds of [`wire_handshake`].
pub(crate) fn handshake_seeds() -> Vec<Seed> {
    let mut foreign = sample_handshake();
    foreign.cluster_id = "another-cluster".into();
    foreign.protocol_version = PROTOCOL_VERSION + 1;
    vec![
        ("handshake", handshake_payload(&sample_handshake()).to_vec()),
        ("foreign_handshake", handshake_payload(&foreign).to_vec()),
    ]
}

/// Seeds of [`wire_frames`]: a handshake and every message kind, read a few bytes at a time.
pub(crate) fn frames_seeds() -> Vec<Seed> {
    let mut stream = BytesMut::new();
    encode_frame(&sample_handshake(), &mut stream);
    let handshake_only = stream.to_vec();
    for message in sample_messages() {
        encode_message_frame(&message, &mut stream);
    }
    let mut oversized = handshake_only.clone();
    oversized.extend_from_slice(&(FRAME_BYTES_MAX as u32 + 1).to_be_bytes());
    let with_chunking = |chunking: u8, stream: &[u8]| {
        let mut input = vec![chunking];
        input.extend_from_slice(stream);
        input
    };
    vec![
        ("every_message_whole_reads", with_chunking(15, &stream)),
        ("every_message_3_byte_reads", with_chunking(2, &stream)),
        ("handshake_only", with_chunking(0, &handshake_only)),
        ("oversized_frame", with_chunking(7, &oversized)),
    ]
}
