//! The write-ahead log's files ([`raft_wal`]): record payloads, segment files, a whole data
//! directory at recovery, and snapshot files. Checksums stop almost every mutation at the
//! first check, so the targets that read files can fix them up first (a flag): the fuzzer
//! then reaches what is behind them.

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, NodeId, PersistRequest, Snapshot,
    SnapshotMeta, Storage, Term,
};
use raft_wal::fuzzing::{
    crc32c, decode_payload, decode_snapshot_file, encode_frame, encode_segment_header,
    encode_snapshot_file, scan_segment, segment_file_name, snapshot_file_name, Record,
    ScannedRecord, SegmentEnd, SegmentScan, FRAME_HEADER_BYTES, PAYLOAD_BYTES_MAX,
    SEGMENT_HEADER_BYTES,
};
use raft_wal::{Wal, WalError, WalOptions};

use crate::{join_parts, scratch, split_parts, Seed};

/// Flag: recompute the checksums of the segment header and of every frame whose length fits.
const FIX_SEGMENT_CHECKSUMS: u8 = 1;
/// Flag ([`snapshot_file`], [`wal_recovery`]): recompute a snapshot file's checksum.
const FIX_SNAPSHOT_CHECKSUM: u8 = 2;
/// Flag ([`wal_recovery`]): the first part is the snapshot file, not the bootstrap snapshot.
const OWN_SNAPSHOT: u8 = 4;
/// Flag ([`wal_recovery`]): open with `truncate_corrupt_tail`.
const TRUNCATE_CORRUPT_TAIL: u8 = 8;
/// Flag ([`wal_recovery`]): open with `preallocate`.
const PREALLOCATE: u8 = 16;
/// Segment files [`wal_recovery`] writes at most.
const SEGMENTS_MAX: usize = 4;
/// Where a snapshot file says which index it covers (after magic, version and reserved word).
const SNAPSHOT_INDEX_AT: usize = 16;
/// Where a snapshot file says which term it covers.
const SNAPSHOT_TERM_AT: usize = 24;

/// The frame of `payload`, its header written by hand from the format's description (length,
/// payload checksum, header checksum: little-endian CRC32C), not by the log's encoder.
fn frame_by_hand(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c(payload).to_le_bytes());
    let header_crc = crc32c(&frame[..8]);
    frame.extend_from_slice(&header_crc.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Rewrites the checksums of a segment's header and of each frame, in order, while the frame's
/// length fits in what is left.
fn fix_segment_checksums(contents: &mut [u8]) {
    if contents.len() < SEGMENT_HEADER_BYTES {
        return;
    }
    let crc = crc32c(&contents[..24]);
    contents[24..28].copy_from_slice(&crc.to_le_bytes());
    let mut offset = SEGMENT_HEADER_BYTES;
    while contents.len() - offset >= FRAME_HEADER_BYTES {
        let length = u32::from_le_bytes([
            contents[offset],
            contents[offset + 1],
            contents[offset + 2],
            contents[offset + 3],
        ]) as usize;
        let payload_start = offset + FRAME_HEADER_BYTES;
        if length == 0 || length > contents.len() - payload_start {
            return;
        }
        let payload_crc = crc32c(&contents[payload_start..payload_start + length]);
        contents[offset + 4..offset + 8].copy_from_slice(&payload_crc.to_le_bytes());
        let header_crc = crc32c(&contents[offset..offset + 8]);
        contents[offset + 8..offset + 12].copy_from_slice(&header_crc.to_le_bytes());
        offset = payload_start + length;
    }
}

/// Rewrites a snapshot file's trailing checksum.
fn fix_snapshot_checksum(contents: &mut [u8]) {
    if let Some(body_bytes) = contents.len().checked_sub(4) {
        let crc = crc32c(&contents[..body_bytes]);
        contents[body_bytes..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// `data` as the payload of a record whose checksums hold ([`decode_payload`]), then framed
/// into a segment. A payload that decodes is the log encoder's exact output for its record,
/// and a scan of the segment hands over exactly that record, or refuses the segment when the
/// decoder refuses the payload.
pub fn wal_record(data: &[u8]) {
    let decoded = decode_payload(Bytes::copy_from_slice(data));
    if let Ok(record) = &decoded {
        let mut frame = Vec::new();
        encode_frame(record, &mut frame);
        assert_eq!(
            frame,
            frame_by_hand(data),
            "a payload decodes only from its record's encoding"
        );
    }
    if data.is_empty() || data.len() as u64 > PAYLOAD_BYTES_MAX {
        return;
    }
    let mut segment = encode_segment_header(1).to_vec();
    segment.extend_from_slice(&frame_by_hand(data));
    match (scan_segment(1, Bytes::from(segment)), decoded) {
        (Ok(scan), Ok(record)) => assert_eq!(
            scan,
            SegmentScan {
                records: vec![ScannedRecord {
                    offset: SEGMENT_HEADER_BYTES as u64,
                    payload_len: data.len() as u32,
                    record,
                }],
                end: SegmentEnd::Clean,
            },
            "the scan hands over the record"
        ),
        (Err(WalError::Corrupt { offset, .. }), Err(_)) => {
            assert_eq!(
                offset, SEGMENT_HEADER_BYTES as u64,
                "the error names the frame"
            )
        }
        (scan, decoded) => panic!("the scan ({scan:?}) disagrees with the decoder ({decoded:?})"),
    }
}

/// `data` after a flags byte as a segment file ([`scan_segment`]); flag 1 fixes its checksums.
/// The records handed over are a prefix of the file: frame after frame from the header on,
/// each the exact encoding of its record, up to where the scan says the frames end, and past
/// that only zeros when it says so.
pub fn wal_segment(data: &[u8]) {
    let Some((&flags, contents)) = data.split_first() else {
        return;
    };
    let mut contents = contents.to_vec();
    if flags & FIX_SEGMENT_CHECKSUMS != 0 {
        fix_segment_checksums(&mut contents);
    }
    let Ok(scan) = scan_segment(1, Bytes::from(contents.clone())) else {
        return;
    };
    let mut offset = SEGMENT_HEADER_BYTES as u64;
    for scanned in &scan.records {
        assert_eq!(scanned.offset, offset, "records follow each other");
        let mut frame = Vec::new();
        encode_frame(&scanned.record, &mut frame);
        let frame_end = offset + frame.len() as u64;
        assert!(
            frame_end <= contents.len() as u64,
            "a record within the file"
        );
        assert_eq!(
            frame,
            contents[offset as usize..frame_end as usize],
            "a record is read only from its exact encoding"
        );
        assert_eq!(
            u64::from(scanned.payload_len),
            frame.len() as u64 - FRAME_HEADER_BYTES as u64,
            "the payload length handed over is the frame's"
        );
        offset = frame_end;
    }
    match scan.end {
        SegmentEnd::Clean => assert_eq!(offset, contents.len() as u64, "clean to the end"),
        SegmentEnd::ZeroFilled { offset: zeros } => {
            assert_eq!(zeros, offset, "zeros right after the last record");
            assert!(
                contents[zeros as usize..].iter().all(|&byte| byte == 0),
                "only zeros"
            );
        }
        SegmentEnd::Damaged {
            offset: damage,
            intact_frame_after,
            ..
        } => {
            let header_damaged = damage == 0 && scan.records.is_empty();
            assert!(
                header_damaged || damage == offset,
                "damage right after the last record"
            );
            if let Some(intact) = intact_frame_after {
                assert!(
                    intact > damage && intact < contents.len() as u64,
                    "an intact frame after the damage"
                );
            }
        }
    }
}

/// `data` after a flags byte as a snapshot file ([`decode_snapshot_file`]); flag 2 fixes its
/// checksum. A file that decodes re-encodes to one that decodes to the same snapshot and is
/// no longer (a voters-only configuration is written in the older version, duplicate ids
/// once).
pub fn snapshot_file(data: &[u8]) {
    let Some((&flags, contents)) = data.split_first() else {
        return;
    };
    let mut contents = contents.to_vec();
    if flags & FIX_SNAPSHOT_CHECKSUM != 0 {
        fix_snapshot_checksum(&mut contents);
    }
    let length = contents.len();
    let Ok(snapshot) = decode_snapshot_file(contents) else {
        return;
    };
    assert!(
        snapshot.meta.configuration.validate().is_ok(),
        "a snapshot's configuration is valid"
    );
    let encoded = encode_snapshot_file(&snapshot);
    assert!(encoded.len() <= length, "re-encoding never grows a file");
    match decode_snapshot_file(encoded) {
        Ok(again) => assert_eq!(again, snapshot, "a decoded snapshot round-trips"),
        Err(error) => panic!("a re-encoded snapshot does not decode: {error}"),
    }
}

/// What a recovered log holds, as its readers see it.
#[derive(Debug, PartialEq, Eq)]
struct Recovered {
    hard_state: HardState,
    snapshot: SnapshotMeta,
    entries: Vec<Entry>,
}

fn recovered(wal: &Wal) -> Recovered {
    let storage = wal.storage();
    let read = || -> Result<Recovered, raft_core::StorageError> {
        let first = storage.first_index()?;
        let last = storage.last_index()?;
        let entries = if last >= first {
            storage.entries(first, last.next(), u64::MAX)?
        } else {
            Vec::new()
        };
        Ok(Recovered {
            hard_state: storage.hard_state()?,
            snapshot: storage.snapshot_meta()?,
            entries,
        })
    };
    match read() {
        Ok(recovered) => recovered,
        Err(error) => panic!("a recovered log cannot read itself back: {error}"),
    }
}

fn bootstrap_configuration() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

fn bootstrap_snapshot() -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::default(),
            configuration: bootstrap_configuration(),
        },
        data: Bytes::new(),
    }
}

/// The log id a snapshot file's header claims, to name the file after (the name must agree).
fn claimed_snapshot_id(contents: &[u8]) -> LogId {
    let word = |at: usize| {
        contents
            .get(at..at + 8)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    LogId::new(Term(word(SNAPSHOT_TERM_AT)), Index(word(SNAPSHOT_INDEX_AT)))
}

fn write_file(path: &std::path::Path, contents: &[u8]) {
    if let Err(error) = std::fs::write(path, contents) {
        panic!("cannot write {}: {error}", path.display());
    }
}

/// `data` after a flags byte as a data directory, its parts (split on
/// [`crate::PART_SEPARATOR`]) as files: with flag 4 the first part is the snapshot file (else
/// the bootstrap snapshot a new log writes), then up to 4 segment files from sequence 1.
/// Flags 1 and 2 fix the checksums of segments and snapshot, 8 and 16 open with
/// `truncate_corrupt_tail` and `preallocate`.
///
/// [`Wal::open`] fails or recovers a log whose every entry is one a segment holds, which it
/// can read back entirely; the repaired directory opens again to the same log, and an entry
/// appended after recovery is there after another open.
pub fn wal_recovery(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = split_parts(rest);
    let directory = scratch::directory();
    let mut snapshot = if flags & OWN_SNAPSHOT != 0 {
        parts.remove(0).to_vec()
    } else {
        encode_snapshot_file(&bootstrap_snapshot())
    };
    if flags & FIX_SNAPSHOT_CHECKSUM != 0 {
        fix_snapshot_checksum(&mut snapshot);
    }
    let snapshot_name = snapshot_file_name(claimed_snapshot_id(&snapshot));
    write_file(&directory.path().join(snapshot_name), &snapshot);
    let mut written = Vec::new();
    for (position, part) in parts.iter().take(SEGMENTS_MAX).enumerate() {
        let sequence = position as u64 + 1;
        let mut contents = part.to_vec();
        if flags & FIX_SEGMENT_CHECKSUMS != 0 {
            fix_segment_checksums(&mut contents);
        }
        if let Ok(scan) = scan_segment(sequence, Bytes::from(contents.clone())) {
            written.extend(scan.records.into_iter().map(|scanned| scanned.record));
        }
        write_file(
            &directory.path().join(segment_file_name(sequence)),
            &contents,
        );
    }
    let options = WalOptions {
        segment_bytes_max: 64 << 10,
        cache_bytes_max: 1 << 20,
        unsafe_no_sync: true,
        truncate_corrupt_tail: flags & TRUNCATE_CORRUPT_TAIL != 0,
        preallocate: flags & PREALLOCATE != 0,
        ..WalOptions::default()
    };
    let open = || Wal::open(directory.path(), bootstrap_configuration(), options.clone());
    let Ok(mut wal) = open() else {
        return;
    };
    let first = recovered(&wal);
    for entry in &first.entries {
        assert!(
            written.contains(&Record::Entry(entry.clone())),
            "recovered entry {} is one a segment holds",
            entry.id
        );
    }
    assert!(
        first.hard_state.commit.0
            <= (first.snapshot.last_included.index.0).saturating_add(first.entries.len() as u64),
        "the commit index is within the log"
    );
    drop(wal);
    wal = match open() {
        Ok(wal) => wal,
        Err(error) => panic!("a recovered log does not open again: {error}"),
    };
    let mut expected = first;
    assert_eq!(recovered(&wal), expected, "recovery is idempotent");
    let last = expected
        .entries
        .last()
        .map_or(expected.snapshot.last_included, |entry| entry.id);
    if last.index.0 == u64::MAX {
        return;
    }
    let appended = Entry {
        id: LogId::new(last.term.max(Term(1)), last.index.next()),
        kind: EntryKind::Normal,
        data: Bytes::from_static(b"appended after recovery"),
    };
    let request = PersistRequest {
        id: 1,
        snapshot: None,
        entries: vec![appended.clone()],
        hard_state: None,
    };
    match wal.persist(request) {
        Ok(()) => {}
        Err(WalError::InvalidWrite(_)) => return,
        Err(error) => panic!("a recovered log cannot append: {error}"),
    }
    drop(wal);
    wal = match open() {
        Ok(wal) => wal,
        Err(error) => panic!("a log appended to after recovery does not open: {error}"),
    };
    expected.entries.push(appended);
    assert_eq!(
        recovered(&wal),
        expected,
        "the appended entry follows the log"
    );
}

fn sample_records() -> Vec<Record> {
    let id = |term, index| LogId::new(Term(term), Index(index));
    vec![
        Record::HardState(HardState {
            term: Term(2),
            vote: Some(NodeId(1)),
            commit: Index(1),
        }),
        Record::Entry(Entry {
            id: id(1, 1),
            kind: EntryKind::Noop,
            data: Bytes::new(),
        }),
        Record::Entry(Entry {
            id: id(2, 2),
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"put greeting hello"),
        }),
        Record::Entry(Entry {
            id: id(2, 3),
            kind: EntryKind::Configuration,
            data: Configuration {
                voters: [NodeId(1), NodeId(2), NodeId(4)].into_iter().collect(),
                outgoing: [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect(),
                learners: [NodeId(5)].into_iter().collect(),
            }
            .encode(),
        }),
        Record::Snapshot {
            id: id(2, 2),
            discard: false,
        },
    ]
}

fn payload(record: &Record) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame(record, &mut frame);
    frame.split_off(FRAME_HEADER_BYTES)
}

fn segment(sequence: u64, records: &[Record]) -> Vec<u8> {
    let mut contents = encode_segment_header(sequence).to_vec();
    for record in records {
        encode_frame(record, &mut contents);
    }
    contents
}

/// Seeds of [`wal_record`]: a payload of every record kind.
pub(crate) fn record_seeds() -> Vec<Seed> {
    let names = ["hard_state", "noop", "command", "configuration", "snapshot"];
    names
        .into_iter()
        .zip(sample_records())
        .map(|(name, record)| (name, payload(&record)))
        .collect()
}

/// Seeds of [`wal_segment`].
pub(crate) fn segment_seeds() -> Vec<Seed> {
    let records = sample_records();
    let whole = segment(1, &records[..4]);
    let mut preallocated = whole.clone();
    preallocated.resize(whole.len() + 256, 0);
    let mut torn = whole.clone();
    torn.truncate(whole.len() - 5);
    let with_flags = |flags: u8, contents: &[u8]| join_parts(flags, &[contents]);
    vec![
        ("records", with_flags(0, &whole)),
        (
            "records_fixed_up",
            with_flags(FIX_SEGMENT_CHECKSUMS, &whole),
        ),
        ("preallocated", with_flags(0, &preallocated)),
        ("torn_tail", with_flags(FIX_SEGMENT_CHECKSUMS, &torn)),
    ]
}

/// Seeds of [`wal_recovery`].
pub(crate) fn recovery_seeds() -> Vec<Seed> {
    let records = sample_records();
    let first = segment(1, &records[..3]);
    let second = segment(2, &records[3..]);
    let snapshot = encode_snapshot_file(&Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::new(Term(2), Index(2)),
            configuration: bootstrap_configuration(),
        },
        data: Bytes::from_static(b"state"),
    });
    let mut torn = second.clone();
    torn.truncate(second.len() - 3);
    vec![
        ("one_segment", join_parts(0, &[&first])),
        (
            "two_segments",
            join_parts(FIX_SEGMENT_CHECKSUMS, &[&first, &second]),
        ),
        (
            "snapshot_and_segments",
            join_parts(OWN_SNAPSHOT, &[&snapshot, &first, &second]),
        ),
        (
            "torn_tail_preallocated",
            join_parts(PREALLOCATE, &[&first, &torn]),
        ),
        (
            "damage_truncated",
            join_parts(TRUNCATE_CORRUPT_TAIL, &[&torn, &second]),
        ),
    ]
}

/// Seeds of [`snapshot_file`]: version 1 (voters only) and version 2 files.
pub(crate) fn snapshot_file_seeds() -> Vec<Seed> {
    let mut snapshot = bootstrap_snapshot();
    snapshot.meta.last_included = LogId::new(Term(4), Index(120));
    snapshot.data = Bytes::from_static(b"state machine bytes");
    let voters_only = encode_snapshot_file(&snapshot);
    snapshot.meta.configuration.learners.insert(NodeId(9));
    snapshot.meta.configuration.outgoing = [NodeId(1), NodeId(2)].into_iter().collect();
    let membership = encode_snapshot_file(&snapshot);
    vec![
        ("voters_only", join_parts(0, &[&voters_only])),
        (
            "membership",
            join_parts(FIX_SNAPSHOT_CHECKSUM, &[&membership]),
        ),
    ]
}
