//! Segment files: naming, creation and the recovery scan.
//!
//! A scan walks a segment's frames in order and stops at the first frame that fails its
//! checks. Whether that is a torn tail (cut by a power failure mid-write, safe to truncate) or
//! damage to data that was acknowledged (refuse to start) is decided by the caller from where
//! the segment is and whether an intact frame follows the damage.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::checksum;
use crate::codec::{
    decode_frame_header, decode_payload, decode_segment_header, encode_segment_header, Record,
    SegmentHeader, FORMAT_VERSION, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::error::{Result, WalError};
use crate::fsutil::Syncer;

const SUFFIX: &str = ".wal";

/// Largest payload a frame may claim; anything larger is damage.
pub(crate) const PAYLOAD_BYTES_MAX: u64 = 1 << 30;

/// The file name of segment `sequence`.
pub(crate) fn file_name(sequence: u64) -> String {
    format!("{sequence:020}{SUFFIX}")
}

/// Parses a segment file name back into its sequence number.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Creates segment `sequence` in `dir` holding its header followed by `initial_frames`,
/// extended with zeros to `preallocate_bytes`, and makes the file and its directory entry
/// durable before returning. Returns the file, its path and where the next frame goes.
///
/// Preallocating matters for speed, not safety: an fdatasync after an append that grows the
/// file must also record the new size, one that writes within the file's length need not.
pub(crate) fn create(
    syncer: Syncer,
    dir: &Path,
    sequence: u64,
    initial_frames: &[u8],
    preallocate_bytes: u64,
) -> Result<(File, PathBuf, u64)> {
    let path = dir.join(file_name(sequence));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|error| WalError::io("create segment", &path, error))?;
    let mut contents = Vec::with_capacity(SEGMENT_HEADER_BYTES as usize + initial_frames.len());
    contents.extend_from_slice(&encode_segment_header(sequence));
    contents.extend_from_slice(initial_frames);
    file.write_all_at(&contents, 0)
        .map_err(|error| WalError::io("write segment", &path, error))?;
    if preallocate_bytes > contents.len() as u64 {
        file.set_len(preallocate_bytes)
            .map_err(|error| WalError::io("preallocate segment", &path, error))?;
    }
    syncer.file(&file, &path, "fsync segment")?;
    syncer.dir(dir)?;
    Ok((file, path, contents.len() as u64))
}

/// Where and why a scan stopped before the end of the file.
#[derive(Debug)]
pub(crate) struct Damage {
    /// Offset of the first byte that is not part of a valid frame (the segment header counts
    /// as offset 0).
    pub(crate) offset: u64,
    /// What is wrong there.
    pub(crate) reason: &'static str,
    /// The kind of fault `reason` describes, for sorting damage (the inspection).
    pub(crate) fault: Fault,
    /// Offset of an intact frame after the damage, if there is one: proof that the damage is
    /// not a torn tail.
    pub(crate) intact_frame_after: Option<u64>,
}

/// The kinds of fault a scan stops at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The segment header is incomplete, or its magic number or checksum is wrong.
    SegmentHeader,
    /// A frame header fails its checksum, or gives an implausible length.
    FrameHeader,
    /// A payload fails its checksum.
    Payload,
    /// The file ends inside a frame.
    Truncated,
    /// Zeros where records should be: a segment is trimmed to its data when the next one
    /// starts, so only the last one may end in preallocated zeros.
    Zeros,
}

/// How a scan ended.
#[derive(Debug)]
pub(crate) enum ScanEnd {
    /// Every byte belongs to a valid frame.
    Clean,
    /// Valid frames up to `offset`, then only zeros: space preallocated for frames not yet
    /// written (or never written because of a crash, which is the same thing).
    ZeroFilled {
        /// Where the zeros start.
        offset: u64,
    },
    /// A frame fails its checks.
    Damaged(Damage),
}

/// Walks the frames of the segment at `path` whose bytes are `contents`, handing every valid
/// record to `visit` with its frame offset and payload length, and says how the frames end.
/// A record that passes its checksum but cannot be decoded is an error right away: no torn
/// write produces one.
pub(crate) fn scan(
    path: &Path,
    expected_sequence: u64,
    contents: &Bytes,
    visit: impl FnMut(u64, u32, Record) -> Result<()>,
) -> Result<ScanEnd> {
    Ok(
        match scan_frames(path, expected_sequence, contents, visit)? {
            None => ScanEnd::Clean,
            Some(damage)
                if damage.offset >= SEGMENT_HEADER_BYTES
                    && contents[damage.offset as usize..]
                        .iter()
                        .all(|&byte| byte == 0) =>
            {
                ScanEnd::ZeroFilled {
                    offset: damage.offset,
                }
            }
            Some(damage) => ScanEnd::Damaged(damage),
        },
    )
}

fn scan_frames(
    path: &Path,
    expected_sequence: u64,
    contents: &Bytes,
    mut visit: impl FnMut(u64, u32, Record) -> Result<()>,
) -> Result<Option<Damage>> {
    if let Some(damage) = check_header(path, expected_sequence, contents)? {
        return Ok(Some(damage));
    }
    walk_frames(
        contents,
        SEGMENT_HEADER_BYTES,
        |offset, payload_len, payload| {
            let record = decode_payload(payload)
                .map_err(|reason| WalError::corrupt(path, offset, reason))?;
            visit(offset, payload_len, record)
        },
    )
}

/// Checks the header of the segment at `path` whose bytes are `contents`: `None` when it is
/// valid and names `expected_sequence`, the damage when it is damaged (a torn creation looks
/// the same), an error when it is intact but belongs elsewhere (another segment, another
/// format version).
pub(crate) fn check_header(
    path: &Path,
    expected_sequence: u64,
    contents: &Bytes,
) -> Result<Option<Damage>> {
    if (contents.len() as u64) < SEGMENT_HEADER_BYTES {
        return Ok(Some(Damage {
            offset: 0,
            reason: "incomplete segment header",
            fault: Fault::SegmentHeader,
            intact_frame_after: None,
        }));
    }
    match decode_segment_header(&contents[..SEGMENT_HEADER_BYTES as usize]) {
        SegmentHeader::Valid { sequence } if sequence == expected_sequence => Ok(None),
        SegmentHeader::Valid { sequence } => Err(WalError::corrupt(
            path,
            0,
            format!("segment header says sequence {sequence}, the file name {expected_sequence}"),
        )),
        SegmentHeader::Version(found) => Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        }),
        SegmentHeader::Damaged(reason) => Ok(Some(Damage {
            offset: 0,
            reason,
            fault: Fault::SegmentHeader,
            intact_frame_after: find_intact_frame(contents, SEGMENT_HEADER_BYTES),
        })),
    }
}

/// Walks the frames of `contents` from the one at offset `from`, handing each intact frame's
/// offset, payload length and payload to `visit`, up to the end of the file (`None`) or the
/// first frame that fails its checks (its damage). The segment header is not looked at.
pub(crate) fn walk_frames(
    contents: &Bytes,
    from: u64,
    mut visit: impl FnMut(u64, u32, Bytes) -> Result<()>,
) -> Result<Option<Damage>> {
    let total = contents.len() as u64;
    assert!(
        from >= SEGMENT_HEADER_BYTES,
        "walk_frames: frames start after the segment header"
    );
    let mut offset = from;
    while offset < total {
        let damage = |reason: &'static str, fault: Fault, search_from: u64| {
            // Zeros to the end hold no frame; checking that first spares a byte-by-byte search
            // of a large preallocated tail.
            let zeros = contents[offset as usize..].iter().all(|&byte| byte == 0);
            Ok(Some(Damage {
                offset,
                reason,
                fault,
                intact_frame_after: if zeros {
                    None
                } else {
                    find_intact_frame(contents, search_from)
                },
            }))
        };
        if total - offset < FRAME_HEADER_BYTES {
            return damage("incomplete frame header", Fault::Truncated, total);
        }
        let header_end = offset + FRAME_HEADER_BYTES;
        let Some(header) = decode_frame_header(&contents[offset as usize..header_end as usize])
        else {
            return damage(
                "frame header checksum mismatch",
                Fault::FrameHeader,
                offset + 1,
            );
        };
        let payload_len = header.payload_len as u64;
        if payload_len == 0 || payload_len > PAYLOAD_BYTES_MAX {
            return damage("implausible record length", Fault::FrameHeader, offset + 1);
        }
        let frame_end = header_end + payload_len;
        if frame_end > total {
            return damage(
                "record runs past the end of the file",
                Fault::Truncated,
                total,
            );
        }
        let payload = contents.slice(header_end as usize..frame_end as usize);
        if checksum::crc32c(&payload) != header.payload_crc {
            // The header's own checksum holds, so its length can be trusted to find what
            // follows.
            return damage("record checksum mismatch", Fault::Payload, frame_end);
        }
        visit(offset, header.payload_len, payload)?;
        offset = frame_end;
    }
    Ok(None)
}

/// The offset of the first intact frame (header and payload checksums hold) at or after
/// `from`.
fn find_intact_frame(contents: &[u8], from: u64) -> Option<u64> {
    let total = contents.len() as u64;
    let mut offset = from;
    while offset + FRAME_HEADER_BYTES <= total {
        let header_end = offset + FRAME_HEADER_BYTES;
        if let Some(header) = decode_frame_header(&contents[offset as usize..header_end as usize]) {
            let frame_end = header_end + header.payload_len as u64;
            if header.payload_len > 0
                && frame_end <= total
                && checksum::crc32c(&contents[header_end as usize..frame_end as usize])
                    == header.payload_crc
            {
                return Some(offset);
            }
        }
        offset += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_frame;
    use raft_core::{Index, LogId, Term};

    fn segment_with(records: &[Record]) -> Vec<u8> {
        let mut contents = encode_segment_header(5).to_vec();
        for record in records {
            encode_frame(record, &mut contents);
        }
        contents
    }

    fn scan_all(contents: Vec<u8>) -> (Vec<Record>, Option<Damage>) {
        let mut records = Vec::new();
        let damage = scan_frames(
            Path::new("s.wal"),
            5,
            &Bytes::from(contents),
            |_, _, record| {
                records.push(record);
                Ok(())
            },
        )
        .expect("no hard error");
        (records, damage)
    }

    fn marker(index: u64) -> Record {
        Record::Snapshot {
            id: LogId::new(Term(1), Index(index)),
            discard: false,
        }
    }

    #[test]
    fn zeros_after_the_last_record_are_preallocated_space() {
        let mut contents = segment_with(&[marker(1)]);
        let end = contents.len() as u64;
        contents.resize(4096, 0);
        let scanned = scan(
            Path::new("s.wal"),
            5,
            &Bytes::from(contents.clone()),
            |_, _, _| Ok(()),
        );
        assert!(
            matches!(scanned, Ok(ScanEnd::ZeroFilled { offset }) if offset == end),
            "{scanned:?}"
        );
        contents[3000] = 1;
        let scanned = scan(Path::new("s.wal"), 5, &Bytes::from(contents), |_, _, _| {
            Ok(())
        });
        assert!(matches!(scanned, Ok(ScanEnd::Damaged(_))), "{scanned:?}");
    }

    #[test]
    fn names_roundtrip() {
        assert_eq!(parse_file_name(&file_name(17)), Some(17));
        assert_eq!(parse_file_name("17.wal"), None);
        assert_eq!(parse_file_name("0000000000000000001x.wal"), None);
    }

    #[test]
    fn clean_segment_scans_every_record() {
        let records = [marker(1), marker(2), marker(3)];
        let (scanned, damage) = scan_all(segment_with(&records));
        assert_eq!(scanned, records);
        assert!(damage.is_none());
    }

    #[test]
    fn cut_last_record_is_damage_with_nothing_after() {
        let contents = segment_with(&[marker(1), marker(2)]);
        let one_record = segment_with(&[marker(1)]).len();
        for cut in one_record + 1..contents.len() {
            let (scanned, damage) = scan_all(contents[..cut].to_vec());
            assert_eq!(scanned, [marker(1)], "cut at {cut}");
            let damage = damage.expect("the cut record is reported");
            assert_eq!(damage.offset, one_record as u64);
            assert_eq!(damage.intact_frame_after, None, "cut at {cut}");
        }
    }

    #[test]
    fn damage_before_intact_records_points_at_them() {
        let contents = segment_with(&[marker(1), marker(2), marker(3)]);
        let frame = segment_with(&[marker(1)]).len() - SEGMENT_HEADER_BYTES as usize;
        for byte in 32..32 + frame {
            let mut damaged = contents.clone();
            damaged[byte] ^= 0x04;
            let (scanned, damage) = scan_all(damaged);
            assert!(scanned.is_empty(), "byte {byte}");
            let damage = damage.expect("damage found");
            assert_eq!(damage.offset, 32);
            assert!(damage.intact_frame_after.is_some(), "byte {byte}");
        }
    }
}
