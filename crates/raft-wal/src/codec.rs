//! On-disk format of segments and their records.
//!
//! ```text
//!  segment := header frame*
//!  header  := magic "RAFTWAL\n" | version u32 | reserved u32 | sequence u64 | crc u32 | pad u32   (32 bytes)
//!  frame   := payload_len u32 | payload_crc u32 | header_crc u32 | payload                        (12 + n bytes)
//!  payload := 1 | index u64 | term u64 | kind u8 | data        an entry (kind 0 command,
//!                                                              1 no-op, 2 configuration)
//!           | 2 | term u64 | vote u64 (0 = none) | commit u64  the hard state
//!           | 3 | index u64 | term u64 | discard u8           the log now follows this snapshot
//! ```
//!
//! Integers are little-endian; checksums are CRC32C. The configuration entry kind (2) came
//! with membership changes without a new format version: logs written before it read as
//! before, and a build that predates it refuses a log holding one as damaged ("unknown entry
//! kind 2") rather than misreading it.
//!
//! The frame header carries its own checksum so that a damaged length is recognised as damage
//! instead of sending the reader off to a wrong offset, and so that recovery can look for
//! intact frames after a damaged one.

use bytes::{Buf, BufMut, Bytes};
use raft_core::{Configuration, Entry, EntryKind, HardState, Index, LogId, NodeId, Term};

use crate::checksum;

/// Identifies a segment file of this format.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"RAFTWAL\n";
/// The segment format this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Size of the segment header.
pub(crate) const SEGMENT_HEADER_BYTES: u64 = 32;
/// Size of a frame header.
pub(crate) const FRAME_HEADER_BYTES: u64 = 12;

const RECORD_ENTRY: u8 = 1;
const RECORD_HARD_STATE: u8 = 2;
const RECORD_SNAPSHOT: u8 = 3;
const ENTRY_NORMAL: u8 = 0;
const ENTRY_NOOP: u8 = 1;
/// A configuration entry; its data is `raft_core::Configuration::encode`'s form.
const ENTRY_CONFIGURATION: u8 = 2;
/// Bytes of an entry payload before its data.
pub(crate) const ENTRY_PREFIX_BYTES: u64 = 1 + 8 + 8 + 1;

/// One logical record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A log entry; a later entry at the same or a lower index replaces the suffix from there.
    Entry(Entry),
    /// The term, vote and commit as of this point.
    HardState(HardState),
    /// A snapshot covering everything through `id` was made durable: entries up to it are
    /// dropped, and if `discard` (the log disagreed with it at its index, Raft paper §7) every
    /// entry written before this record is dropped too. The decision is recorded rather than
    /// recomputed on replay because the entry it was taken against may be compacted away.
    Snapshot {
        /// The last entry the snapshot covers.
        id: LogId,
        /// Whether the log written before this record is discarded.
        discard: bool,
    },
}

/// Encodes a segment header for segment `sequence`.
pub(crate) fn encode_segment_header(sequence: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    let mut cursor = &mut header[..];
    cursor.put_slice(&SEGMENT_MAGIC);
    cursor.put_u32_le(FORMAT_VERSION);
    cursor.put_u32_le(0);
    cursor.put_u64_le(sequence);
    let crc = checksum::crc32c(&header[..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    header
}

/// What a segment header says, or why it cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SegmentHeader {
    /// A valid header.
    Valid { sequence: u64 },
    /// The magic or checksum is wrong.
    Damaged(&'static str),
    /// A valid header of another format version.
    Version(u32),
}

/// Decodes a segment header from exactly [`SEGMENT_HEADER_BYTES`] bytes.
pub(crate) fn decode_segment_header(header: &[u8]) -> SegmentHeader {
    assert_eq!(header.len() as u64, SEGMENT_HEADER_BYTES);
    if header[..8] != SEGMENT_MAGIC {
        return SegmentHeader::Damaged("bad magic number");
    }
    let stored_crc = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    if checksum::crc32c(&header[..24]) != stored_crc {
        return SegmentHeader::Damaged("segment header checksum mismatch");
    }
    let mut cursor = &header[8..24];
    let version = cursor.get_u32_le();
    let _reserved = cursor.get_u32_le();
    let sequence = cursor.get_u64_le();
    if version != FORMAT_VERSION {
        return SegmentHeader::Version(version);
    }
    SegmentHeader::Valid { sequence }
}

/// Bytes the frame of `record` takes on disk.
pub(crate) fn frame_bytes(record: &Record) -> u64 {
    FRAME_HEADER_BYTES + payload_bytes(record)
}

fn payload_bytes(record: &Record) -> u64 {
    match record {
        Record::Entry(entry) => ENTRY_PREFIX_BYTES + entry.data.len() as u64,
        Record::HardState(_) => 1 + 24,
        Record::Snapshot { .. } => 1 + 16 + 1,
    }
}

/// Appends the frame of `record` to `out`.
pub(crate) fn encode_frame(record: &Record, out: &mut Vec<u8>) {
    encode_frame_leaving_data(record, out, false);
}

/// Appends the frame of `record` to `out`; with `leave_data`, an entry's data is left out (it
/// is still checksummed) for the caller to write from the entry's own buffer right after what
/// is appended here, which saves copying large payloads.
pub(crate) fn encode_frame_leaving_data(record: &Record, out: &mut Vec<u8>, leave_data: bool) {
    let start = out.len();
    let payload_len = payload_bytes(record);
    assert!(
        payload_len <= u32::MAX as u64,
        "encode_frame: payload fits the length field"
    );
    out.put_bytes(0, FRAME_HEADER_BYTES as usize);
    let mut data_left_out: &[u8] = &[];
    match record {
        Record::Entry(entry) => {
            out.put_u8(RECORD_ENTRY);
            out.put_u64_le(entry.id.index.0);
            out.put_u64_le(entry.id.term.0);
            out.put_u8(match entry.kind {
                EntryKind::Normal => ENTRY_NORMAL,
                EntryKind::Noop => ENTRY_NOOP,
                EntryKind::Configuration => ENTRY_CONFIGURATION,
            });
            if leave_data {
                data_left_out = &entry.data;
            } else {
                out.put_slice(&entry.data);
            }
        }
        Record::HardState(hard_state) => {
            out.put_u8(RECORD_HARD_STATE);
            out.put_u64_le(hard_state.term.0);
            out.put_u64_le(hard_state.vote.map_or(0, |node| node.0));
            out.put_u64_le(hard_state.commit.0);
        }
        Record::Snapshot { id, discard } => {
            out.put_u8(RECORD_SNAPSHOT);
            out.put_u64_le(id.index.0);
            out.put_u64_le(id.term.0);
            out.put_u8(u8::from(*discard));
        }
    }
    let payload_start = start + FRAME_HEADER_BYTES as usize;
    assert_eq!(
        (out.len() - payload_start + data_left_out.len()) as u64,
        payload_len
    );
    let payload_crc =
        checksum::crc32c_append(checksum::crc32c(&out[payload_start..]), data_left_out);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = checksum::crc32c(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&header_crc.to_le_bytes());
}

/// A frame header whose own checksum holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// Length of the payload that follows.
    pub(crate) payload_len: u32,
    /// Checksum the payload must have.
    pub(crate) payload_crc: u32,
}

/// Decodes a frame header from exactly [`FRAME_HEADER_BYTES`] bytes; `None` if its checksum
/// fails.
pub(crate) fn decode_frame_header(bytes: &[u8]) -> Option<FrameHeader> {
    assert_eq!(bytes.len() as u64, FRAME_HEADER_BYTES);
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if checksum::crc32c(&bytes[..8]) != word(8) {
        return None;
    }
    Some(FrameHeader {
        payload_len: word(0),
        payload_crc: word(4),
    })
}

/// Decodes a payload whose checksum was verified. Errors describe a payload that is
/// well-framed but meaningless, which only a bug or deliberate tampering produces.
pub(crate) fn decode_payload(payload: Bytes) -> Result<Record, String> {
    let mut cursor = payload.clone();
    if !cursor.has_remaining() {
        return Err("empty record".into());
    }
    let kind = cursor.get_u8();
    let need = |cursor: &Bytes, bytes: usize| {
        if cursor.remaining() < bytes {
            Err(format!("record of kind {kind} is too short"))
        } else {
            Ok(())
        }
    };
    // Hard-state and snapshot records have a fixed size: bytes after them were not written by
    // this format, and reading past them would accept a record the encoder never makes.
    let exactly = |cursor: &Bytes, bytes: usize| {
        need(cursor, bytes)?;
        if cursor.remaining() > bytes {
            Err(format!("record of kind {kind} is too long"))
        } else {
            Ok(())
        }
    };
    match kind {
        RECORD_ENTRY => {
            need(&cursor, (ENTRY_PREFIX_BYTES - 1) as usize)?;
            let index = Index(cursor.get_u64_le());
            let term = Term(cursor.get_u64_le());
            let entry_kind = match cursor.get_u8() {
                ENTRY_NORMAL => EntryKind::Normal,
                ENTRY_NOOP => EntryKind::Noop,
                ENTRY_CONFIGURATION => EntryKind::Configuration,
                other => return Err(format!("unknown entry kind {other}")),
            };
            if index.0 == 0 {
                return Err("entry at index 0".into());
            }
            Ok(Record::Entry(Entry {
                id: LogId::new(term, index),
                kind: entry_kind,
                data: cursor,
            }))
        }
        RECORD_HARD_STATE => {
            exactly(&cursor, 24)?;
            let term = Term(cursor.get_u64_le());
            let vote = cursor.get_u64_le();
            let commit = Index(cursor.get_u64_le());
            Ok(Record::HardState(HardState {
                term,
                vote: (vote != 0).then_some(NodeId(vote)),
                commit,
            }))
        }
        RECORD_SNAPSHOT => {
            exactly(&cursor, 17)?;
            let index = Index(cursor.get_u64_le());
            let term = Term(cursor.get_u64_le());
            let discard = match cursor.get_u8() {
                0 => false,
                1 => true,
                other => return Err(format!("snapshot record with discard flag {other}")),
            };
            Ok(Record::Snapshot {
                id: LogId::new(term, index),
                discard,
            })
        }
        other => Err(format!("unknown record kind {other}")),
    }
}

/// The configuration a configuration entry carries; `None` for other kinds.
pub(crate) fn decode_configuration(entry: &Entry) -> Result<Option<Configuration>, String> {
    if entry.kind != EntryKind::Configuration {
        return Ok(None);
    }
    Configuration::decode(&entry.data)
        .map(Some)
        .map_err(|error| format!("configuration entry {} does not decode: {error}", entry.id))
}

/// Decodes the entry at the start of a payload read back for [`raft_core::Storage`].
pub(crate) fn decode_entry(payload: Bytes) -> Result<Entry, String> {
    match decode_payload(payload)? {
        Record::Entry(entry) => Ok(entry),
        other => Err(format!("expected an entry record, found {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(record: Record) {
        let mut out = Vec::new();
        encode_frame(&record, &mut out);
        assert_eq!(out.len() as u64, frame_bytes(&record));
        let header = decode_frame_header(&out[..12]).expect("header checksum holds");
        assert_eq!(header.payload_len as usize, out.len() - 12);
        assert_eq!(checksum::crc32c(&out[12..]), header.payload_crc);
        let decoded = decode_payload(Bytes::copy_from_slice(&out[12..])).expect("decodes");
        assert_eq!(decoded, record);
    }

    #[test]
    fn records_roundtrip() {
        roundtrip(Record::Entry(Entry {
            id: LogId::new(Term(3), Index(7)),
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"hello"),
        }));
        roundtrip(Record::Entry(Entry {
            id: LogId::new(Term(1), Index(1)),
            kind: EntryKind::Noop,
            data: Bytes::new(),
        }));
        roundtrip(Record::Entry(Entry {
            id: LogId::new(Term(2), Index(3)),
            kind: EntryKind::Configuration,
            data: raft_core::Configuration::new([NodeId(1), NodeId(2)]).encode(),
        }));
        roundtrip(Record::HardState(HardState {
            term: Term(9),
            vote: Some(NodeId(2)),
            commit: Index(4),
        }));
        roundtrip(Record::HardState(HardState::default()));
        roundtrip(Record::Snapshot {
            id: LogId::new(Term(2), Index(40)),
            discard: false,
        });
        roundtrip(Record::Snapshot {
            id: LogId::new(Term(5), Index(41)),
            discard: true,
        });
    }

    /// Found by fuzzing (fuzz/regressions/wal_record/): a hard-state payload with bytes after
    /// its fields decoded as if they were not there.
    #[test]
    fn fixed_size_records_with_bytes_after_them_are_refused() {
        let records = [
            Record::HardState(HardState {
                term: Term(9),
                vote: Some(NodeId(2)),
                commit: Index(4),
            }),
            Record::Snapshot {
                id: LogId::new(Term(2), Index(40)),
                discard: true,
            },
        ];
        for record in records {
            let mut out = Vec::new();
            encode_frame(&record, &mut out);
            let mut payload = out.split_off(FRAME_HEADER_BYTES as usize);
            assert_eq!(decode_payload(Bytes::from(payload.clone())), Ok(record));
            payload.push(0);
            let refused = decode_payload(Bytes::from(payload));
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|reason| reason.contains("too long")),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn leaving_the_data_out_gives_the_same_frame() {
        let record = Record::Entry(Entry {
            id: LogId::new(Term(3), Index(7)),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![9u8; 5000]),
        });
        let mut whole = Vec::new();
        encode_frame(&record, &mut whole);
        let mut split = Vec::new();
        encode_frame_leaving_data(&record, &mut split, true);
        let Record::Entry(entry) = &record else {
            unreachable!()
        };
        split.extend_from_slice(&entry.data);
        assert_eq!(split, whole);
    }

    #[test]
    fn segment_header_roundtrip_and_damage() {
        let header = encode_segment_header(42);
        assert_eq!(
            decode_segment_header(&header),
            SegmentHeader::Valid { sequence: 42 }
        );
        for byte in 0..SEGMENT_HEADER_BYTES as usize - 4 {
            let mut damaged = header;
            damaged[byte] ^= 0x10;
            assert!(
                matches!(decode_segment_header(&damaged), SegmentHeader::Damaged(_)),
                "flip in byte {byte} is noticed"
            );
        }
    }

    #[test]
    fn every_bit_flip_in_a_frame_header_is_noticed() {
        let mut out = Vec::new();
        encode_frame(
            &Record::Snapshot {
                id: LogId::new(Term(2), Index(40)),
                discard: false,
            },
            &mut out,
        );
        for bit in 0..(FRAME_HEADER_BYTES * 8) as usize {
            let mut damaged = out.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_frame_header(&damaged[..12]), None, "bit {bit}");
        }
    }
}
