//! CRC32C, the checksum of every record, header and snapshot file.
//!
//! Large inputs go to the `crc32c` crate, whose three-way parallel code is the fastest there
//! is. Short ones (frame headers, small entries: most of what a log of small commands
//! checksums) go straight to the SSE4.2 instruction when the CPU has it: the crate's dispatch
//! costs about 130 instructions a call, more than the checksum itself at these sizes.

/// Inputs up to this long take the short path.
const SHORT_BYTES_MAX: usize = 256;

/// The CRC32C of `bytes`.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    crc32c_append(0, bytes)
}

/// The CRC32C of the bytes checksummed as `crc`, followed by `bytes`.
pub(crate) fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if bytes.len() <= SHORT_BYTES_MAX && std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU has SSE4.2, checked just above.
            return unsafe { short_crc32c_sse42(crc, bytes) };
        }
    }
    crc32c::crc32c_append(crc, bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn short_crc32c_sse42(crc: u32, bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut words = bytes.chunks_exact(8);
    let mut state = u64::from(!crc);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunks of eight bytes"));
        state = _mm_crc32_u64(state, word);
    }
    let mut state = state as u32;
    for &byte in words.remainder() {
        state = _mm_crc32_u8(state, byte);
    }
    !state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_crc32c_crate_at_every_short_length() {
        let data: Vec<u8> = (0..600u32).map(|at| (at * 7919 % 251) as u8).collect();
        for length in 0..=data.len() {
            for start in [0, 1, 3] {
                let bytes = &data[start..length.max(start)];
                assert_eq!(
                    crc32c(bytes),
                    crc32c::crc32c(bytes),
                    "length {length} from {start}"
                );
                assert_eq!(
                    crc32c_append(0xdead_beef, bytes),
                    crc32c::crc32c_append(0xdead_beef, bytes),
                    "append, length {length} from {start}"
                );
            }
        }
    }

    #[test]
    fn known_value() {
        // The CRC32C check value (RFC 3720, appendix B.4).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
