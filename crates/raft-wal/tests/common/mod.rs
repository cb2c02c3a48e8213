//! Helpers shared by the crash-point and corruption tests: directory images held in memory,
//! the durable state read back through [`Storage`], and a reader of the segment format that is
//! independent of the crate's own (so a test names offsets without trusting the code under
//! test).
//!
//! ```text
//!  Wal on disk ─► capture ─► Image (file name → bytes) ─► damage / cut in memory
//!                                                        ─► install in a scratch directory ─► Wal::open
//!  Wal::storage / MemStorage ─► LogState ─► compared with ==
//! ```

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::ops::RangeInclusive;
use std::path::Path;

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, MemStorage, NodeId, PersistRequest,
    Snapshot, SnapshotMeta, Storage, Term,
};

/// The files of a data directory (without the lock file), by name.
pub type Image = BTreeMap<String, Vec<u8>>;

/// Name of the lock file, which holds nothing and is never part of an image.
pub const LOCK_FILE: &str = "LOCK";
/// Size of a segment header (codec.rs).
pub const SEGMENT_HEADER_BYTES: u64 = 32;
/// Size of a frame header (codec.rs).
pub const FRAME_HEADER_BYTES: u64 = 12;
/// Payload kinds (codec.rs).
pub const RECORD_ENTRY: u8 = 1;
pub const RECORD_HARD_STATE: u8 = 2;
pub const RECORD_SNAPSHOT: u8 = 3;

pub fn voters() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

pub fn entry(term: u64, index: u64) -> Entry {
    Entry {
        id: LogId::new(Term(term), Index(index)),
        kind: EntryKind::Normal,
        data: Bytes::from(format!("command {index} of term {term}")),
    }
}

pub fn entries(term: u64, indexes: RangeInclusive<u64>) -> Vec<Entry> {
    indexes.map(|index| entry(term, index)).collect()
}

/// An entry whose payload is `data_bytes` long, to fill a segment on purpose.
pub fn big_entry(term: u64, index: u64, data_bytes: usize) -> Entry {
    Entry {
        id: LogId::new(Term(term), Index(index)),
        kind: EntryKind::Normal,
        data: Bytes::from(vec![b'x'; data_bytes]),
    }
}

pub fn snapshot(term: u64, index: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::new(Term(term), Index(index)),
            configuration: voters(),
        },
        data: Bytes::from(format!("state machine through {index}")),
    }
}

pub fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.map(NodeId),
        commit: Index(commit),
    }
}

/// Builds the requests of a workload, numbering them.
#[derive(Default)]
pub struct Script {
    pub requests: Vec<PersistRequest>,
}

impl Script {
    pub fn persist(
        &mut self,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
    ) {
        let id = self.requests.len() as u64 + 1;
        self.requests.push(PersistRequest {
            id,
            snapshot,
            entries,
            hard_state,
        });
    }

    pub fn append(&mut self, entries: Vec<Entry>) {
        self.persist(None, entries, None);
    }

    pub fn hard_state(&mut self, hard_state: HardState) {
        self.persist(None, Vec::new(), Some(hard_state));
    }

    pub fn snapshot(&mut self, snapshot: Snapshot) {
        self.persist(Some(snapshot), Vec::new(), None);
    }
}

/// A directory for test data, in memory when the machine has a tmpfs at /dev/shm: the tests
/// open thousands of images and recovery fsyncs what it truncates.
pub fn scratch_directory() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("raft-wal-test").to_owned();
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return dir;
        }
    }
    builder.tempdir().expect("temporary directory")
}

/// The suspect marker recovery leaves when the log may have lost writes (see
/// [`assert_suspect_marker_matches`]).
pub const SUSPECT_FILE: &str = "SUSPECT";

/// The suspect marker is in `dir` exactly when recovery judged that writes may have been lost.
pub fn assert_suspect_marker_matches(dir: &Path, report: &raft_wal::RecoveryReport, case: &str) {
    assert_eq!(
        dir.join(SUSPECT_FILE).exists(),
        report.possibly_lost_writes,
        "{case}: the suspect marker says what recovery judged: {report:?}"
    );
}

/// The files of `dir` except the lock file and the suspect marker (checked on its own by
/// [`assert_suspect_marker_matches`]).
pub fn capture(dir: &Path) -> Image {
    let mut image = Image::new();
    for item in fs::read_dir(dir).expect("data directory lists") {
        let item = item.expect("directory entry");
        let name = item
            .file_name()
            .into_string()
            .expect("file names are UTF-8");
        if name == LOCK_FILE || name == SUSPECT_FILE {
            continue;
        }
        let contents = fs::read(item.path()).expect("file reads");
        image.insert(name, contents);
    }
    image
}

/// Makes `dir` hold exactly the files of `image`.
pub fn install(dir: &Path, image: &Image) {
    if dir.exists() {
        fs::remove_dir_all(dir).expect("old image removed");
    }
    fs::create_dir_all(dir).expect("image directory created");
    for (name, contents) in image {
        fs::write(dir.join(name), contents).expect("image file written");
    }
}

/// Every live entry of `wal`, read through its storage.
pub fn stored(wal: &raft_wal::Wal) -> Vec<Entry> {
    let storage = wal.storage();
    let first = storage.first_index().expect("first index");
    let last = storage.last_index().expect("last index");
    storage
        .entries(first, last.next(), u64::MAX)
        .expect("every live entry reads back")
}

/// The sequence number of the newest segment file in `dir`.
pub fn newest_segment(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("lists")
        .filter_map(|item| {
            item.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".wal")?
                .parse()
                .ok()
        })
        .max()
        .expect("a log has a segment")
}

pub fn segment_name(sequence: u64) -> String {
    format!("{sequence:020}.wal")
}

pub fn is_segment(name: &str) -> bool {
    name.ends_with(".wal")
}

pub fn is_snapshot(name: &str) -> bool {
    name.ends_with(".snap")
}

/// Names of the segments of `image`, oldest first.
pub fn segment_names(image: &Image) -> Vec<String> {
    image
        .keys()
        .filter(|name| is_segment(name))
        .cloned()
        .collect()
}

/// One frame of a segment, as the format describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the frame header in the segment.
    pub offset: u64,
    /// Header and payload.
    pub bytes: u64,
    /// Payload kind.
    pub kind: u8,
    /// The index of an entry record, or of the snapshot a snapshot record names.
    pub index: Option<u64>,
}

impl Frame {
    pub fn end(&self) -> u64 {
        self.offset + self.bytes
    }

    pub fn payload_offset(&self) -> u64 {
        self.offset + FRAME_HEADER_BYTES
    }
}

/// The frames of an intact segment (a partial frame at the end is left out).
pub fn frames(segment: &[u8]) -> Vec<Frame> {
    let total = segment.len() as u64;
    let mut frames = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset + FRAME_HEADER_BYTES <= total {
        let at = offset as usize;
        let payload_bytes =
            u32::from_le_bytes(segment[at..at + 4].try_into().expect("four bytes")) as u64;
        let end = offset + FRAME_HEADER_BYTES + payload_bytes;
        if end > total {
            break;
        }
        let kind = segment[at + FRAME_HEADER_BYTES as usize];
        let index = (kind == RECORD_ENTRY || kind == RECORD_SNAPSHOT).then(|| {
            let start = at + FRAME_HEADER_BYTES as usize + 1;
            u64::from_le_bytes(segment[start..start + 8].try_into().expect("eight bytes"))
        });
        frames.push(Frame {
            offset,
            bytes: end - offset,
            kind,
            index,
        });
        offset = end;
    }
    frames
}

/// Everything a reader can learn from a log through [`Storage`], for comparing the log with
/// its model.
#[derive(Clone, PartialEq, Eq)]
pub struct LogState {
    pub snapshot: Snapshot,
    pub hard_state: HardState,
    pub configuration: Configuration,
    pub first_index: Index,
    pub last_index: Index,
    pub entries: Vec<Entry>,
    /// `term(i)` for every `i` from `first_index - 1` to `last_index`.
    pub terms: Vec<Term>,
}

impl std::fmt::Debug for LogState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self
            .entries
            .iter()
            .map(|entry| entry.id.to_string())
            .collect();
        write!(
            f,
            "snapshot {} hard state (term {}, vote {:?}, commit {}) log {}..={} [{}]",
            self.snapshot.meta.last_included,
            self.hard_state.term.0,
            self.hard_state.vote.map(|node| node.0),
            self.hard_state.commit.0,
            self.first_index.0,
            self.last_index.0,
            ids.join(" ")
        )
    }
}

/// Reads everything through `storage`; an error names the read that failed.
pub fn read_state(storage: &impl Storage) -> Result<LogState, String> {
    let initial = storage
        .initial_state()
        .map_err(|error| format!("initial_state: {error}"))?;
    let snapshot = storage
        .snapshot()
        .map_err(|error| format!("snapshot: {error}"))?;
    let first_index = storage
        .first_index()
        .map_err(|error| format!("first_index: {error}"))?;
    let last_index = storage
        .last_index()
        .map_err(|error| format!("last_index: {error}"))?;
    let entries = storage
        .entries(first_index, last_index.next(), u64::MAX)
        .map_err(|error| format!("entries {first_index}..={last_index}: {error}"))?;
    let mut terms = Vec::new();
    for index in first_index.0 - 1..=last_index.0 {
        let term = storage
            .term(Index(index))
            .map_err(|error| format!("term({index}): {error}"))?;
        terms.push(term);
    }
    Ok(LogState {
        snapshot,
        hard_state: initial.hard_state,
        configuration: initial.configuration,
        first_index,
        last_index,
        entries,
        terms,
    })
}

/// [`read_state`] of a model, which cannot fail.
pub fn model_state(storage: &impl Storage) -> LogState {
    read_state(storage).expect("the model answers every read")
}

/// The logs a crash during `request` can leave, in write order: none of its records, then the
/// snapshot marker, then each entry in turn, then the hard state.
pub fn candidates(before: &MemStorage, request: &PersistRequest) -> Vec<MemStorage> {
    let piece = |snapshot, entries, hard_state| PersistRequest {
        id: request.id,
        snapshot,
        entries,
        hard_state,
    };
    let mut candidates = vec![before.clone()];
    let mut current = before.clone();
    if let Some(snapshot) = &request.snapshot {
        current.persist(piece(Some(snapshot.clone()), Vec::new(), None));
        candidates.push(current.clone());
    }
    // Entries are applied as prefixes of the request's list: each one replaces the suffix
    // from its index, as its record does on replay.
    let after_snapshot = current.clone();
    for written in 1..=request.entries.len() {
        current = after_snapshot.clone();
        current.persist(piece(None, request.entries[..written].to_vec(), None));
        candidates.push(current.clone());
    }
    if let Some(hard_state) = request.hard_state {
        current.persist(piece(None, Vec::new(), Some(hard_state)));
        candidates.push(current);
    }
    candidates
}

/// Appends of one and several entries, hard-state changes alone and with entries, a follower
/// overwriting a conflicting suffix, compactions (alone and with entries and hard state), an
/// installed snapshot that disagrees with the log at its last entry and one beyond the end of
/// the log, and an entry larger than a segment.
pub fn mixed_workload() -> Vec<PersistRequest> {
    let mut script = Script::default();
    script.hard_state(hard_state(1, Some(1), 0));
    script.append(entries(1, 1..=1));
    script.append(entries(1, 2..=4));
    script.persist(None, entries(1, 5..=9), Some(hard_state(1, Some(1), 4)));
    script.append(entries(1, 10..=10));
    script.hard_state(hard_state(1, Some(1), 9));
    script.append(entries(1, 11..=14));
    script.append(entries(1, 15..=20));
    script.hard_state(hard_state(1, Some(1), 12));
    // A new leader in term 2 never had 16..=20: this follower replaces them.
    script.hard_state(hard_state(2, Some(2), 12));
    script.persist(None, entries(2, 16..=18), Some(hard_state(2, Some(2), 14)));
    script.append(entries(2, 19..=22));
    script.hard_state(hard_state(2, Some(2), 20));
    script.persist(None, entries(2, 23..=26), Some(hard_state(2, Some(2), 22)));
    script.snapshot(snapshot(2, 18));
    script.append(entries(2, 27..=30));
    script.persist(
        Some(snapshot(2, 25)),
        entries(2, 31..=32),
        Some(hard_state(2, Some(2), 28)),
    );
    script.append(entries(2, 33..=36));
    script.hard_state(hard_state(3, None, 28));
    script.hard_state(hard_state(3, Some(3), 28));
    script.persist(None, vec![entry(3, 37)], Some(hard_state(3, Some(3), 32)));
    script.append(entries(3, 38..=41));
    script.snapshot(snapshot(2, 30));
    // A leader of term 5 sends a snapshot through 41, where this log has term 3: all of it goes.
    script.hard_state(hard_state(5, None, 32));
    script.persist(
        Some(snapshot(5, 41)),
        Vec::new(),
        Some(hard_state(5, None, 41)),
    );
    script.append(entries(5, 42..=44));
    // A snapshot beyond the end of the log, installed with the entries that follow it.
    script.persist(
        Some(snapshot(6, 60)),
        entries(6, 61..=62),
        Some(hard_state(6, Some(2), 60)),
    );
    script.append(entries(6, 63..=66));
    script.hard_state(hard_state(6, Some(2), 64));
    script.append(vec![entry(6, 67)]);
    script.snapshot(snapshot(6, 64));
    script.persist(None, entries(7, 67..=69), Some(hard_state(7, Some(3), 65)));
    script.append(entries(7, 70..=72));
    script.hard_state(hard_state(7, Some(3), 70));
    script.persist(
        Some(snapshot(7, 69)),
        vec![entry(7, 73)],
        Some(hard_state(7, Some(3), 71)),
    );
    script.append(entries(7, 74..=76));
    script.persist(
        None,
        vec![big_entry(7, 77, 500)],
        Some(hard_state(7, Some(3), 76)),
    );
    script.append(entries(7, 78..=79));
    script.snapshot(snapshot(7, 78));
    script.hard_state(hard_state(8, None, 78));
    script.requests
}

/// The names of the files recovery reports it removed, sorted.
pub fn removed_names(report: &raft_wal::RecoveryReport) -> Vec<String> {
    let mut names: Vec<String> = report
        .removed_files
        .iter()
        .map(|path| {
            path.file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}
