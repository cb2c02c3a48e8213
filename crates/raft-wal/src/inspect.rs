//! Read-only inspection of a data directory, for an operator (`raftkv inspect`) or a test:
//! every file, every record's checksum, and what recovery would make of it all, without
//! changing a byte.
//!
//! ```text
//!  LOCK held by a running process? ─► InspectError::Locked (else a shared lock, held while reading)
//!  list the directory ─► snapshot files, each read whole (checksum, name) ─► the newest one is
//!                        what recovery starts from; a damaged newest one stops recovery
//!                     ─► segments in sequence order: header, then frame after frame (checksums);
//!                        past damage to the next intact frame (the search recovery makes)
//!                          counts, index and term ranges, hard state       (every intact record)
//!                          replayed as recovery replays them (Replay)      (until the first damage
//!                                                                           recovery refuses)
//!                     ─► staged and temporary files, markers, other files
//!  ─► Inspection { segments, snapshots, temporaries, findings, recovered (if recovery opens) }
//! ```
//!
//! Nothing is created, written, truncated or removed, not even the lock file: a directory
//! without one is read without a lock. What recovery repairs at the next open (a torn tail, a
//! leftover temporary file, a superseded snapshot, a missing snapshot marker) is reported as a
//! [`Severity::Repairable`] finding; what makes it refuse to start is [`Severity::Damage`],
//! named by file and byte offset as recovery would name it. Unlike recovery, the inspection
//! goes on past damage, so one run lists all of it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raft_core::{Configuration, Entry, EntryKind, HardState, Index, LogId, SnapshotMeta, Term};
use thiserror::Error;

use crate::codec::{decode_payload, Record, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::error::WalError;
use crate::fsutil::LOCK_FILE;
use crate::recovery::{self, Listing, Replay, ReplayEnd, ReplayFault, ReplayFaultKind};
use crate::segment::{self, Fault};
use crate::snapshot_file;

/// Why a directory could not be inspected at all (damage in it is a [`Finding`], not an error).
#[derive(Debug, Error)]
pub enum InspectError {
    /// The directory or its lock file could not be read.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What the inspection was doing.
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A running process holds the directory's lock: its log is being written, so a reader
    /// would see writes half done. Stop the node first.
    #[error("data directory lock {path} is held by a running process: stop the node first")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
}

/// How serious a [`Finding`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Recovery refuses to start because of it (or would, were it not already stopped by
    /// earlier damage): acknowledged data may be lost.
    Damage,
    /// Recovery repairs it at the next open without losing anything that was acknowledged: a
    /// write torn by a crash, a leftover temporary file, a superseded snapshot.
    Repairable,
}

/// What a [`Finding`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A segment header is incomplete, or its magic number or checksum is wrong.
    BadSegmentHeader,
    /// A segment header is intact but names another sequence number than its file name.
    WrongSegmentSequence,
    /// A file carries a format version this build does not read.
    UnsupportedVersion,
    /// A frame header fails its checksum or gives an implausible length.
    BadFrameHeader,
    /// A record's payload fails its checksum.
    ChecksumMismatch,
    /// The file ends inside a frame.
    TruncatedRecord,
    /// Zeros where records should be, in a segment that is not the last.
    ZerosInSealedSegment,
    /// A record passes its checksum but does not decode (only a bug or tampering writes one).
    UndecodableRecord,
    /// A configuration entry's data does not decode.
    UndecodableConfiguration,
    /// Segment sequence numbers skip one: a segment file is missing.
    MissingSegment,
    /// Entries do not follow the snapshot or the entry before them: a gap in the log's indexes.
    IndexGap,
    /// A snapshot marker names a snapshot newer than the newest snapshot file.
    MarkerBeyondSnapshot,
    /// The hard state's commit index is beyond the last durable entry.
    CommitBeyondLog,
    /// Segments exist but no snapshot file does.
    MissingSnapshot,
    /// A snapshot file fails its checks (checksum, header, name).
    DamagedSnapshot,
    /// A snapshot file older than the newest: removed at the next open.
    SupersededSnapshot,
    /// A temporary or staged snapshot file: removed unread at the next open.
    TemporaryFile,
    /// The last segment holds no record (its creation was torn): removed at the next open.
    EmptyLastSegment,
    /// The newest snapshot's marker record was never written (a crash right after the
    /// snapshot file became durable): written at the next open.
    MissingSnapshotMarker,
    /// A segment is larger than the log reads (4 GiB).
    SegmentTooLarge,
    /// A file could not be read.
    UnreadableFile,
}

impl Problem {
    /// A stable snake_case name, for scripts.
    pub fn name(self) -> &'static str {
        match self {
            Problem::BadSegmentHeader => "bad_segment_header",
            Problem::WrongSegmentSequence => "wrong_segment_sequence",
            Problem::UnsupportedVersion => "unsupported_version",
            Problem::BadFrameHeader => "bad_frame_header",
            Problem::ChecksumMismatch => "checksum_mismatch",
            Problem::TruncatedRecord => "truncated_record",
            Problem::ZerosInSealedSegment => "zeros_in_sealed_segment",
            Problem::UndecodableRecord => "undecodable_record",
            Problem::UndecodableConfiguration => "undecodable_configuration",
            Problem::MissingSegment => "missing_segment",
            Problem::IndexGap => "index_gap",
            Problem::MarkerBeyondSnapshot => "marker_beyond_snapshot",
            Problem::CommitBeyondLog => "commit_beyond_log",
            Problem::MissingSnapshot => "missing_snapshot",
            Problem::DamagedSnapshot => "damaged_snapshot",
            Problem::SupersededSnapshot => "superseded_snapshot",
            Problem::TemporaryFile => "temporary_file",
            Problem::EmptyLastSegment => "empty_last_segment",
            Problem::MissingSnapshotMarker => "missing_snapshot_marker",
            Problem::SegmentTooLarge => "segment_too_large",
            Problem::UnreadableFile => "unreadable_file",
        }
    }
}

/// One thing wrong, or to be repaired, in a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// What it is about.
    pub problem: Problem,
    /// The file (or, for a file that should be there and is not, the directory).
    pub path: PathBuf,
    /// The byte offset in that file, when the finding is at one place in it.
    pub offset: Option<u64>,
    /// What is wrong, in words (recovery's own words where it has them).
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let severity = match self.severity {
            Severity::Damage => "DAMAGE",
            Severity::Repairable => "repairable",
        };
        write!(
            f,
            "{severity} {}: {}",
            self.problem.name(),
            self.path.display()
        )?;
        if let Some(offset) = self.offset {
            write!(f, " at byte {offset}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// How many records of each kind a segment holds (intact ones, superseded or not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordCounts {
    /// Entries carrying a command.
    pub normal_entries: u64,
    /// Entries without data (a new leader's first entry).
    pub noop_entries: u64,
    /// Entries carrying a configuration.
    pub configuration_entries: u64,
    /// Hard-state records.
    pub hard_states: u64,
    /// Snapshot markers.
    pub snapshot_markers: u64,
}

impl RecordCounts {
    /// Every record counted.
    pub fn total(&self) -> u64 {
        self.entries() + self.hard_states + self.snapshot_markers
    }

    /// Every entry record counted.
    pub fn entries(&self) -> u64 {
        self.normal_entries + self.noop_entries + self.configuration_entries
    }
}

/// One segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The file.
    pub path: PathBuf,
    /// Its sequence number (from its name).
    pub sequence: u64,
    /// Its size.
    pub file_bytes: u64,
    /// Where its intact frames end (header included): past damage, where the last intact
    /// frame found after it ends.
    pub data_bytes: u64,
    /// Zeros after the last frame: space preallocated for frames not yet written.
    pub preallocated_bytes: u64,
    /// Intact records, by kind.
    pub records: RecordCounts,
    /// Bytes of entry data (commands and configurations) in its intact entry records.
    pub entry_data_bytes: u64,
    /// The lowest and highest entry index it holds.
    pub index_range: Option<(Index, Index)>,
    /// The lowest and highest entry term it holds.
    pub term_range: Option<(Term, Term)>,
    /// The last hard state it records.
    pub last_hard_state: Option<HardState>,
    /// How many of the live log's entries (as recovery rebuilds it) are in this segment; 0
    /// when recovery would not open. A segment before every one holding a live entry holds
    /// only superseded records: compaction deletes it.
    pub live_entries: u64,
    /// Damage findings in this file.
    pub damage: usize,
}

/// One snapshot file (`snapshot-<index>-<term>.snap`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFileSummary {
    /// The file.
    pub path: PathBuf,
    /// The snapshot its name says it covers.
    pub named: LogId,
    /// Its size.
    pub file_bytes: u64,
    /// What it holds, if every check passes (checksum, header, name).
    pub meta: Option<SnapshotMeta>,
    /// Bytes of state-machine data, if every check passes.
    pub data_bytes: Option<u64>,
    /// The newest snapshot file: the one recovery starts from (older ones it removes).
    pub newest: bool,
}

/// A temporary file: a snapshot being written, or staged ahead of the write that records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemporaryFile {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub file_bytes: u64,
    /// The snapshot a staged file's name says it holds (`None` for other temporaries).
    pub staged: Option<LogId>,
    /// Whether it holds a whole snapshot file that passes every check (one a crash
    /// interrupted does not).
    pub complete: bool,
}

/// The state recovery would rebuild: what the node starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredState {
    /// The snapshot the log follows.
    pub snapshot: LogId,
    /// The first live entry's index (the snapshot's index + 1, also when the log is empty).
    pub first_index: Index,
    /// The last live entry's index, or the snapshot's when there is none.
    pub last_index: Index,
    /// The last live entry's term, or the snapshot's.
    pub last_term: Term,
    /// Live entries.
    pub entries: u64,
    /// Term, vote and commit (the commit at least the snapshot's index, as recovery sets it).
    pub hard_state: HardState,
    /// The configuration in effect: the latest configuration entry's, or the snapshot's.
    pub configuration: Configuration,
    /// The index of the entry `configuration` comes from; `None` when it is the snapshot's.
    pub configuration_index: Option<Index>,
    /// Every configuration entry of the live log, oldest first.
    pub configuration_entries: Vec<(Index, Configuration)>,
}

/// Everything the inspection of a data directory found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// The directory.
    pub dir: PathBuf,
    /// Segment files, in sequence order.
    pub segments: Vec<SegmentSummary>,
    /// Snapshot files, oldest first.
    pub snapshots: Vec<SnapshotFileSummary>,
    /// Temporary and staged snapshot files.
    pub temporary_files: Vec<TemporaryFile>,
    /// The clean-shutdown marker is there: the last process stopped gracefully.
    pub clean_shutdown: bool,
    /// The suspect marker is there: an earlier start found the log may have lost writes, and
    /// no clean stop of a recovered peer followed.
    pub suspect: bool,
    /// Files and directories the log does not know.
    pub other_files: Vec<PathBuf>,
    /// Damage and what recovery would repair, in the order found (snapshots, segments,
    /// temporaries, then the checks at the end of the replay).
    pub findings: Vec<Finding>,
    /// The state recovery would rebuild; `None` when it would refuse to start (see
    /// [`Inspection::damage`]) or the directory holds no log.
    pub recovered: Option<RecoveredState>,
}

impl Inspection {
    /// Whether the directory holds a log (a segment or a snapshot file); one that does not
    /// is bootstrapped by the next open.
    pub fn holds_log(&self) -> bool {
        !self.segments.is_empty() || !self.snapshots.is_empty()
    }

    /// The damage findings: recovery refuses to start at the first one.
    pub fn damage(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|finding| finding.severity == Severity::Damage)
    }

    /// Whether any damage was found.
    pub fn is_damaged(&self) -> bool {
        self.damage().next().is_some()
    }
}

/// An intact entry record met by the inspection, in write order (superseded ones included).
#[derive(Clone, Copy, Debug)]
pub struct EntryRecord<'a> {
    /// The segment it is in.
    pub segment: u64,
    /// The offset of its frame in that segment.
    pub offset: u64,
    /// The entry.
    pub entry: &'a Entry,
}

/// Inspects the data directory `dir` without changing it. See the module documentation.
pub fn inspect_directory(dir: impl AsRef<Path>) -> Result<Inspection, InspectError> {
    inspect_directory_with(dir, |_| {})
}

/// [`inspect_directory`], handing every intact entry record to `on_entry` as it is read (so
/// that a caller can list or decode them without the inspection keeping them).
pub fn inspect_directory_with(
    dir: impl AsRef<Path>,
    mut on_entry: impl FnMut(EntryRecord<'_>),
) -> Result<Inspection, InspectError> {
    let dir = dir.as_ref();
    let _lock = SharedLock::take(dir)?;
    let listing = recovery::list(dir).map_err(|error| match error {
        WalError::Io {
            operation,
            path,
            source,
        } => InspectError::Io {
            operation,
            path,
            source,
        },
        other => InspectError::Io {
            operation: "list directory",
            path: dir.to_path_buf(),
            source: io::Error::other(other.to_string()),
        },
    })?;
    let mut inspector = Inspector {
        findings: Vec::new(),
        replay: None,
        snapshot_configuration: Configuration::default(),
    };
    let snapshots = inspector.snapshots(dir, &listing);
    let mut segments = inspector.segments(&listing, &mut on_entry);
    let temporary_files = inspector.temporaries(&listing);
    let last_segment = listing.segments.values().last().map(PathBuf::as_path);
    let recovered = inspector
        .finish_replay(last_segment)
        .map(|(state, live)| {
            for segment in &mut segments {
                segment.live_entries = live.get(&segment.sequence).copied().unwrap_or(0);
            }
            state
        })
        .filter(|_| {
            !inspector
                .findings
                .iter()
                .any(|f| f.severity == Severity::Damage)
        });
    for segment in &mut segments {
        segment.damage = inspector
            .findings
            .iter()
            .filter(|finding| finding.severity == Severity::Damage && finding.path == segment.path)
            .count();
    }
    Ok(Inspection {
        dir: dir.to_path_buf(),
        segments,
        snapshots,
        temporary_files,
        clean_shutdown: listing.clean_shutdown,
        suspect: listing.suspect,
        other_files: listing.others,
        findings: inspector.findings,
        recovered,
    })
}

/// A shared lock on the directory's lock file, if it has one: refused while a running log
/// holds it exclusively, and keeping one from opening the log while the inspection reads.
struct SharedLock {
    _file: Option<File>,
}

impl SharedLock {
    fn take(dir: &Path) -> Result<SharedLock, InspectError> {
        let path = dir.join(LOCK_FILE);
        // Opened for reading, never created: the inspection changes nothing.
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(SharedLock { _file: None })
            }
            Err(source) => {
                return Err(InspectError::Io {
                    operation: "open lock file",
                    path,
                    source,
                })
            }
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(SharedLock { _file: Some(file) }),
            Err(fs::TryLockError::WouldBlock) => Err(InspectError::Locked { path }),
            Err(fs::TryLockError::Error(source)) => Err(InspectError::Io {
                operation: "lock data directory",
                path,
                source,
            }),
        }
    }
}

/// The inspection under way: its findings, and the replay of what recovery would read.
struct Inspector {
    findings: Vec<Finding>,
    /// `None` once recovery would have stopped (or never started: no usable snapshot).
    replay: Option<Replay>,
    /// The newest snapshot's configuration: the one in effect when no entry changes it.
    snapshot_configuration: Configuration,
}

impl Inspector {
    fn find(
        &mut self,
        severity: Severity,
        problem: Problem,
        path: &Path,
        offset: Option<u64>,
        detail: impl Into<String>,
    ) {
        self.findings.push(Finding {
            severity,
            problem,
            path: path.to_path_buf(),
            offset,
            detail: detail.into(),
        });
    }

    /// Records damage that stops recovery: nothing after it is replayed.
    fn damage(
        &mut self,
        problem: Problem,
        path: &Path,
        offset: Option<u64>,
        detail: impl Into<String>,
    ) {
        self.find(Severity::Damage, problem, path, offset, detail);
        self.replay = None;
    }

    fn replay_fault(&mut self, fault: ReplayFault) {
        let problem = match fault.kind {
            ReplayFaultKind::UndecodableConfiguration => Problem::UndecodableConfiguration,
            ReplayFaultKind::IndexGap | ReplayFaultKind::MissingEarlierSegment => Problem::IndexGap,
            ReplayFaultKind::MarkerBeyondSnapshot => Problem::MarkerBeyondSnapshot,
            ReplayFaultKind::CommitBeyondLog => Problem::CommitBeyondLog,
        };
        self.damage(problem, &fault.path, Some(fault.offset), fault.reason);
    }

    /// Reads every snapshot file; starts the replay from the newest one if it is sound.
    fn snapshots(&mut self, dir: &Path, listing: &Listing) -> Vec<SnapshotFileSummary> {
        let newest_key = listing.snapshots.keys().next_back().copied();
        let mut summaries = Vec::new();
        for (&key, path) in &listing.snapshots {
            let newest = Some(key) == newest_key;
            let named = LogId::new(Term(key.1), Index(key.0));
            let file_bytes = fs::metadata(path).map_or(0, |meta| meta.len());
            let read = snapshot_file::read(path);
            let (meta, data_bytes) = match &read {
                Ok(snapshot) => (
                    Some(snapshot.meta.clone()),
                    Some(snapshot.data.len() as u64),
                ),
                Err(_) => (None, None),
            };
            match read {
                Ok(snapshot) if newest => {
                    self.replay = Some(Replay::new(snapshot.meta.last_included));
                    self.snapshot_configuration = snapshot.meta.configuration;
                }
                Ok(_) => self.find(
                    Severity::Repairable,
                    Problem::SupersededSnapshot,
                    path,
                    None,
                    "older than the newest snapshot: removed at the next open",
                ),
                Err(error) if newest => {
                    let (problem, offset, detail) = describe_snapshot_error(error);
                    self.damage(problem, path, offset, detail);
                }
                Err(error) => {
                    let (_, _, detail) = describe_snapshot_error(error);
                    self.find(
                        Severity::Repairable,
                        Problem::SupersededSnapshot,
                        path,
                        None,
                        format!("older than the newest snapshot (removed at the next open), and damaged: {detail}"),
                    );
                }
            }
            summaries.push(SnapshotFileSummary {
                path: path.clone(),
                named,
                file_bytes,
                meta,
                data_bytes,
                newest,
            });
        }
        if summaries.is_empty() && !listing.segments.is_empty() {
            self.damage(
                Problem::MissingSnapshot,
                dir,
                None,
                "segments exist but no snapshot file does",
            );
        }
        summaries
    }

    /// Walks every segment, replaying what recovery would replay.
    fn segments(
        &mut self,
        listing: &Listing,
        on_entry: &mut impl FnMut(EntryRecord<'_>),
    ) -> Vec<SegmentSummary> {
        let sequences: Vec<u64> = listing.segments.keys().copied().collect();
        let mut summaries = Vec::new();
        for (position, &sequence) in sequences.iter().enumerate() {
            let path = &listing.segments[&sequence];
            if position > 0 && sequences[position - 1] + 1 != sequence {
                self.damage(
                    Problem::MissingSegment,
                    path,
                    Some(0),
                    format!(
                        "segment {} is missing before this one",
                        sequences[position - 1] + 1
                    ),
                );
            }
            let is_last = position + 1 == sequences.len();
            summaries.push(self.segment(path, sequence, is_last, on_entry));
        }
        summaries
    }

    fn segment(
        &mut self,
        path: &Path,
        sequence: u64,
        is_last: bool,
        on_entry: &mut impl FnMut(EntryRecord<'_>),
    ) -> SegmentSummary {
        let mut summary = SegmentSummary {
            path: path.to_path_buf(),
            sequence,
            file_bytes: 0,
            data_bytes: 0,
            preallocated_bytes: 0,
            records: RecordCounts::default(),
            entry_data_bytes: 0,
            index_range: None,
            term_range: None,
            last_hard_state: None,
            live_entries: 0,
            damage: 0,
        };
        let contents = match read_whole(path) {
            Ok(contents) => contents,
            Err(error) => {
                self.damage(Problem::UnreadableFile, path, None, error.to_string());
                return summary;
            }
        };
        let total = contents.len() as u64;
        summary.file_bytes = total;
        if total > u32::MAX as u64 {
            self.damage(
                Problem::SegmentTooLarge,
                path,
                Some(u32::MAX as u64),
                "segment larger than 4 GiB",
            );
            return summary;
        }
        // Whether every byte so far belongs to an intact frame: the records recovery replays.
        let mut intact_so_far = true;
        let mut from = SEGMENT_HEADER_BYTES;
        match segment::check_header(path, sequence, &contents) {
            Ok(None) => {}
            Ok(Some(damage)) => {
                let torn = is_last && damage.intact_frame_after.is_none();
                self.segment_damage(path, &damage, torn, 0);
                intact_so_far = false;
                match damage.intact_frame_after {
                    Some(next) => from = next,
                    None => return summary,
                }
            }
            Err(WalError::UnsupportedVersion {
                found, supported, ..
            }) => {
                self.damage(
                    Problem::UnsupportedVersion,
                    path,
                    Some(0),
                    format!("format version {found}, this build reads version {supported}"),
                );
                return summary;
            }
            Err(error) => {
                // An intact header of another segment: its frames are still worth a look.
                self.damage(
                    Problem::WrongSegmentSequence,
                    path,
                    Some(0),
                    reason_of(error),
                );
                intact_so_far = false;
            }
        }
        summary.data_bytes = from.min(total);
        loop {
            let walked = segment::walk_frames(&contents, from, |offset, payload_len, payload| {
                summary.data_bytes = offset + FRAME_HEADER_BYTES + u64::from(payload_len);
                match decode_payload(payload) {
                    Ok(record) => {
                        count(&mut summary, &record);
                        if let Record::Entry(entry) = &record {
                            on_entry(EntryRecord {
                                segment: sequence,
                                offset,
                                entry,
                            });
                        }
                        if intact_so_far {
                            if let Some(replay) = self.replay.as_mut() {
                                if let Err(fault) =
                                    replay.record(path, sequence, offset, payload_len, record)
                                {
                                    self.replay_fault(fault);
                                }
                            }
                        }
                    }
                    Err(reason) => {
                        self.damage(Problem::UndecodableRecord, path, Some(offset), reason);
                        intact_so_far = false;
                    }
                }
                Ok(())
            });
            // The visitor never fails, so neither does the walk.
            let Ok(end) = walked else { break };
            let Some(damage) = end else { break };
            let zeros = damage.intact_frame_after.is_none()
                && contents[damage.offset as usize..]
                    .iter()
                    .all(|&byte| byte == 0);
            if zeros {
                summary.preallocated_bytes = total - damage.offset;
                if !is_last {
                    self.damage(
                        Problem::ZerosInSealedSegment,
                        path,
                        Some(damage.offset),
                        "zeros where records should be",
                    );
                }
                break;
            }
            let torn = is_last && intact_so_far && damage.intact_frame_after.is_none();
            self.segment_damage(path, &damage, torn, summary.records.total());
            intact_so_far = false;
            match damage.intact_frame_after {
                Some(next) => from = next,
                None => break,
            }
        }
        if is_last && intact_so_far && summary.records.total() == 0 {
            self.find(
                Severity::Repairable,
                Problem::EmptyLastSegment,
                path,
                None,
                "only a header (its creation was torn): removed at the next open",
            );
        }
        summary
    }

    /// Records damage a scan stopped at, after `records_before` intact records of its segment;
    /// `torn` when recovery takes it for a torn write and cuts it.
    fn segment_damage(
        &mut self,
        path: &Path,
        damage: &segment::Damage,
        torn: bool,
        records_before: u64,
    ) {
        let problem = match damage.fault {
            Fault::SegmentHeader => Problem::BadSegmentHeader,
            Fault::FrameHeader => Problem::BadFrameHeader,
            Fault::Payload => Problem::ChecksumMismatch,
            Fault::Truncated => Problem::TruncatedRecord,
            Fault::Zeros => Problem::ZerosInSealedSegment,
        };
        let mut detail = damage.reason.to_string();
        if let Some(intact) = damage.intact_frame_after {
            detail.push_str(&format!(" (an intact record follows at byte {intact})"));
        }
        if torn {
            detail.push_str(
                ": a write torn by a crash at the end of the log, never acknowledged; cut at the \
                 next open",
            );
            if records_before == 0 {
                detail.push_str(" (the whole segment: its creation never completed)");
            }
            self.find(
                Severity::Repairable,
                problem,
                path,
                Some(damage.offset),
                detail,
            );
        } else {
            self.damage(problem, path, Some(damage.offset), detail);
        }
    }

    /// Lists the temporary files (recovery removes them all unread).
    fn temporaries(&mut self, listing: &Listing) -> Vec<TemporaryFile> {
        let mut temporaries = Vec::new();
        for path in &listing.temporaries {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or_default();
            let staged = snapshot_file::parse_staged_file_name(name);
            let (file_bytes, complete) = match read_whole(path) {
                Ok(contents) => {
                    let file_bytes = contents.len() as u64;
                    let decoded = snapshot_file::decode(path, Vec::from(contents));
                    let complete = match (decoded, staged) {
                        (Ok(snapshot), Some(id)) => snapshot.meta.last_included == id,
                        (Ok(_), None) => true,
                        (Err(_), _) => false,
                    };
                    (file_bytes, complete)
                }
                Err(_) => (0, false),
            };
            let what = match (staged, complete) {
                (Some(_), true) => "a staged snapshot never recorded",
                (Some(_), false) => "a staged snapshot, incomplete",
                (None, true) => "a snapshot written but never renamed into place",
                (None, false) => "a snapshot being written, incomplete",
            };
            self.find(
                Severity::Repairable,
                Problem::TemporaryFile,
                path,
                None,
                format!("{what}: removed unread at the next open"),
            );
            temporaries.push(TemporaryFile {
                path: path.clone(),
                file_bytes,
                staged,
                complete,
            });
        }
        temporaries
    }

    /// The checks recovery makes once every segment was replayed, and the state it rebuilds
    /// with the number of live entries in each segment; `None` if recovery stopped.
    fn finish_replay(
        &mut self,
        last_segment: Option<&Path>,
    ) -> Option<(RecoveredState, BTreeMap<u64, u64>)> {
        let replay = self.replay.take()?;
        let ReplayEnd {
            log,
            configurations,
            hard_state,
            missing_marker,
        } = match replay.finish(last_segment) {
            Ok(end) => end,
            Err(fault) => {
                self.replay_fault(fault);
                return None;
            }
        };
        let snapshot = log.base();
        if let Some(discard) = missing_marker {
            let effect = if discard {
                "the log disagrees with it there, so every entry goes"
            } else {
                "the entries it covers go"
            };
            self.find(
                Severity::Repairable,
                Problem::MissingSnapshotMarker,
                last_segment.unwrap_or(Path::new("")),
                None,
                format!("the marker of snapshot {snapshot} is written at the next open ({effect})"),
            );
        }
        let latest = configurations.latest().cloned();
        let configuration_entries = configurations.to_vec();
        let configuration_index = configuration_entries.last().map(|(index, _)| *index);
        let last_index = log.last_index();
        let state = RecoveredState {
            snapshot,
            first_index: log.first_index(),
            last_index,
            last_term: log.term(last_index).unwrap_or(snapshot.term),
            entries: log.len(),
            hard_state,
            configuration: latest.unwrap_or_else(|| self.snapshot_configuration.clone()),
            configuration_index,
            configuration_entries,
        };
        Some((state, log.live_entries_by_segment()))
    }
}

fn count(summary: &mut SegmentSummary, record: &Record) {
    match record {
        Record::Entry(entry) => {
            match entry.kind {
                EntryKind::Normal => summary.records.normal_entries += 1,
                EntryKind::Noop => summary.records.noop_entries += 1,
                EntryKind::Configuration => summary.records.configuration_entries += 1,
            }
            summary.entry_data_bytes += entry.data.len() as u64;
            let (index, term) = (entry.index(), entry.term());
            summary.index_range = Some(match summary.index_range {
                Some((low, high)) => (low.min(index), high.max(index)),
                None => (index, index),
            });
            summary.term_range = Some(match summary.term_range {
                Some((low, high)) => (low.min(term), high.max(term)),
                None => (term, term),
            });
        }
        Record::HardState(hard_state) => {
            summary.records.hard_states += 1;
            summary.last_hard_state = Some(*hard_state);
        }
        Record::Snapshot { .. } => summary.records.snapshot_markers += 1,
    }
}

/// Sorts a snapshot file's read error: problem, offset and words.
fn describe_snapshot_error(error: WalError) -> (Problem, Option<u64>, String) {
    match error {
        WalError::Corrupt { offset, reason, .. } => {
            (Problem::DamagedSnapshot, Some(offset), reason)
        }
        WalError::UnsupportedVersion {
            found, supported, ..
        } => (
            Problem::UnsupportedVersion,
            Some(8),
            format!("format version {found}, this build reads version {supported}"),
        ),
        WalError::Io { source, .. } => (Problem::UnreadableFile, None, source.to_string()),
        other => (Problem::DamagedSnapshot, None, other.to_string()),
    }
}

/// The reason of a corrupt-log error, or the whole error's words.
fn reason_of(error: WalError) -> String {
    match error {
        WalError::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    }
}

fn read_whole(path: &Path) -> io::Result<Bytes> {
    let mut contents = Vec::new();
    File::open(path)?.read_to_end(&mut contents)?;
    Ok(Bytes::from(contents))
}
