//! The wire format against arbitrary input: every message survives a round trip, and no byte
//! string makes decoding panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use raft_core::testing::messages::arb_message;
use raft_node::wire::{decode_message, encode_message_frame, FrameDecoder};

proptest! {
    #[test]
    fn every_message_roundtrips(messages in proptest::collection::vec(arb_message(), 1..8)) {
        let mut stream = BytesMut::new();
        for message in &messages {
            encode_message_frame(message, &mut stream);
        }
        let mut decoder = FrameDecoder::new(1 << 20);
        decoder.extend(&stream);
        let mut decoded = Vec::new();
        while let Some(frame) = decoder.next_frame().expect("within the limit") {
            decoded.push(decode_message(frame).expect("decodes"));
        }
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut decoder = FrameDecoder::new(256);
        decoder.extend(&bytes);
        while let Ok(Some(frame)) = decoder.next_frame() {
            let _ = decode_message(frame);
        }
        let _ = decode_message(Bytes::from(bytes));
    }
}
