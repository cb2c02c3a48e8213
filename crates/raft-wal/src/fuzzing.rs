//! The decoders of what the log reads back from disk, over bytes in memory, for the fuzz
//! targets (`crates/fuzz-targets`). Compiled only with the `fuzzing` feature: the on-disk
//! format is otherwise private to this crate. Each function hands its bytes to the code
//! recovery runs, adding no checks of its own, so a fuzzer exercises exactly that code.
//!
//! ```text
//!  segment file  ─► scan_segment ─────────► records in order, how the frames end   (segment::scan)
//!  record payload ─► decode_payload ──────► Record                                 (codec)
//!  snapshot file ─► decode_snapshot_file ─► Snapshot                               (snapshot_file)
//! ```
//!
//! Recovery as a whole (files in a directory, truncation, the snapshot) is fuzzed through
//! [`crate::Wal::open`] itself.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use raft_core::{LogId, Snapshot};

use crate::codec;
pub use crate::codec::Record;
use crate::error::WalError;
use crate::segment::{self, ScanEnd};
use crate::snapshot_file;

/// Bytes of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = codec::SEGMENT_HEADER_BYTES as usize;
/// Bytes of a record frame's header (length, payload checksum, header checksum).
pub const FRAME_HEADER_BYTES: usize = codec::FRAME_HEADER_BYTES as usize;
/// The largest payload a frame may claim; a larger claim is damage.
pub const PAYLOAD_BYTES_MAX: u64 = segment::PAYLOAD_BYTES_MAX;

/// The header segment `sequence` starts with.
pub fn encode_segment_header(sequence: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    codec::encode_segment_header(sequence)
}

/// Appends the frame (header and payload) of `record` to `out`, as the log writes it.
pub fn encode_frame(record: &Record, out: &mut Vec<u8>) {
    codec::encode_frame(record, out);
}

/// Decodes a record payload whose checksum held; the error says why it is meaningless.
pub fn decode_payload(payload: Bytes) -> Result<Record, String> {
    codec::decode_payload(payload)
}

/// The CRC32C the log's headers, frames and snapshot files carry.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crate::checksum::crc32c(bytes)
}

/// How the frames of a scanned segment end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Every byte belongs to a valid frame.
    Clean,
    /// Valid frames up to `offset`, then only zeros (space preallocated for frames).
    ZeroFilled {
        /// Where the zeros start.
        offset: u64,
    },
    /// The frame at `offset` fails its checks.
    Damaged {
        /// The first byte that is not part of a valid frame.
        offset: u64,
        /// What is wrong there.
        reason: &'static str,
        /// An intact frame after the damage, if there is one.
        intact_frame_after: Option<u64>,
    },
}

/// One valid record of a scanned segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedRecord {
    /// Offset of its frame in the segment.
    pub offset: u64,
    /// Length of its payload.
    pub payload_len: u32,
    /// The record.
    pub record: Record,
}

/// What a scan of one segment found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// The valid records, in order.
    pub records: Vec<ScannedRecord>,
    /// How the valid frames end.
    pub end: SegmentEnd,
}

/// Scans `contents` as the segment file of `sequence`, as recovery does. An error is what
/// recovery refuses to start with whatever the segment's position (a record that passes its
/// checksum but means nothing, another segment's header, another format version).
pub fn scan_segment(sequence: u64, contents: Bytes) -> Result<SegmentScan, WalError> {
    let path = PathBuf::from(segment::file_name(sequence));
    let mut records = Vec::new();
    let end = segment::scan(&path, sequence, &contents, |offset, payload_len, record| {
        records.push(ScannedRecord {
            offset,
            payload_len,
            record,
        });
        Ok(())
    })?;
    let end = match end {
        ScanEnd::Clean => SegmentEnd::Clean,
        ScanEnd::ZeroFilled { offset } => SegmentEnd::ZeroFilled { offset },
        ScanEnd::Damaged(damage) => SegmentEnd::Damaged {
            offset: damage.offset,
            reason: damage.reason,
            intact_frame_after: damage.intact_frame_after,
        },
    };
    Ok(SegmentScan { records, end })
}

/// The file name of segment `sequence`.
pub fn segment_file_name(sequence: u64) -> String {
    segment::file_name(sequence)
}

/// The contents of the snapshot file of `snapshot`, as the log writes it.
pub fn encode_snapshot_file(snapshot: &Snapshot) -> Vec<u8> {
    snapshot_file::encode(snapshot)
}

/// Decodes the contents of a snapshot file (all its checks but the one of its file name).
pub fn decode_snapshot_file(contents: Vec<u8>) -> Result<Snapshot, WalError> {
    snapshot_file::decode(Path::new("fuzz.snap"), contents)
}

/// The file name of the snapshot covering through `id`.
pub fn snapshot_file_name(id: LogId) -> String {
    snapshot_file::file_name(id)
}
