//! Opening a data directory: bootstrap a new one, or rebuild the durable state of an old one.
//!
//! ```text
//!  lock ─► list files ─► newest snapshot file (older ones and temporaries removed, staged
//!          snapshots among them: no marker names those)
//!       ─► replay every segment in order into the index (entries, hard state, markers),
//!            decoding configuration entries as they pass (the configuration in effect at
//!            start-up, with no second read)
//!            damage in the last segment with no intact frame after it: torn tail, truncated
//!            any other damage: refuse to start, naming file and offset
//!       ─► apply the snapshot ─► check the log reaches it ─► open the last segment for appends
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use raft_core::{Configuration, HardState, LogId, Snapshot, SnapshotMeta, Term};

use crate::clean_shutdown;
use crate::codec::{decode_configuration, encode_frame, Record};
use crate::error::{Result, WalError};
use crate::fsutil::{DirectoryLock, Syncer, LOCK_FILE};
use crate::index::{ConfigurationIndex, Location, LogIndex, TailCache};
use crate::metrics::LatencyHistogram;
use crate::segment::{self, Damage, Fault, ScanEnd};
use crate::snapshot_file;
use crate::staging::StagedSnapshots;
use crate::storage::{DurableState, SegmentFile, Shared, WalStorage};
use crate::wal::{ActiveSegment, Wal, WalOptions};

/// At most this much of the log's end is read back into the tail cache after recovery, so
/// that a restart does not read a large cache's worth of entries before it can serve.
const WARM_CACHE_BYTES_MAX: u64 = 4 << 20;

/// What recovery found when a log was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The directory held no log, and a new one was created from the bootstrap configuration.
    pub bootstrapped: bool,
    /// Segment files replayed.
    pub segments: usize,
    /// Records replayed.
    pub records: u64,
    /// Bytes of segment files read.
    pub bytes_scanned: u64,
    /// Live entries after recovery.
    pub entries: u64,
    /// The snapshot the log follows.
    pub snapshot: LogId,
    /// Bytes cut from the end of the last segment as a torn write.
    pub torn_tail_bytes: u64,
    /// Bytes dropped at damage because [`WalOptions::truncate_corrupt_tail`] allowed it.
    pub corrupt_bytes_dropped: u64,
    /// The newest snapshot's marker record was missing (a crash right after the snapshot file
    /// became durable) and was written.
    pub snapshot_marker_restored: bool,
    /// Files removed: temporaries, superseded snapshots, a segment whose creation was torn.
    /// (The clean-shutdown marker is not listed: see [`RecoveryReport::clean_shutdown`].)
    pub removed_files: Vec<PathBuf>,
    /// The previous process closed the log with [`Wal::close_cleanly`]: its clean-shutdown
    /// marker was found (and removed, so that a crash from now on counts as unclean).
    pub clean_shutdown: bool,
    /// An earlier start found that the log may have lost writes, and no clean shutdown of a
    /// recovered peer has happened since (the `SUSPECT` file; see [`Wal::close_cleanly`]).
    pub still_suspect: bool,
    /// The log may lack writes that were reported durable: it held state from an earlier
    /// run (it was not bootstrapped now), and recovery cut a torn tail or dropped corrupt
    /// bytes, or an earlier start found the same and no clean shutdown of a recovered peer
    /// followed (`still_suspect`), or, with [`WalOptions::distrust_unclean_shutdown`], that
    /// run did not close it cleanly (a crash, whose loss a disk lying about its fsyncs
    /// hides). What [`raft_core::Storage::initial_state`] reports, so that the
    /// peer recovers with its peers' help before it votes (see `raft_core`'s recovery).
    pub possibly_lost_writes: bool,
}

impl RecoveryReport {
    /// [`RecoveryReport::possibly_lost_writes`] from the other findings.
    fn judge_lost_writes(&self, distrust_unclean_shutdown: bool) -> bool {
        let damaged = self.torn_tail_bytes > 0 || self.corrupt_bytes_dropped > 0;
        !self.bootstrapped
            && (damaged
                || self.still_suspect
                || (distrust_unclean_shutdown && !self.clean_shutdown))
    }
}

/// The files of a data directory, by kind (the inspection lists them the same way).
#[derive(Default)]
pub(crate) struct Listing {
    pub(crate) segments: BTreeMap<u64, PathBuf>,
    pub(crate) snapshots: BTreeMap<(u64, u64), PathBuf>,
    pub(crate) temporaries: Vec<PathBuf>,
    /// The clean-shutdown marker is there.
    pub(crate) clean_shutdown: bool,
    /// The suspect marker is there.
    pub(crate) suspect: bool,
    /// Files the log does not know (the lock file and markers aside), sorted.
    pub(crate) others: Vec<PathBuf>,
}

pub(crate) fn list(dir: &Path) -> Result<Listing> {
    let mut listing = Listing::default();
    let entries = fs::read_dir(dir).map_err(|error| WalError::io("list directory", dir, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| WalError::io("list directory", dir, error))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            listing.others.push(entry.path());
            continue;
        };
        if let Some(sequence) = segment::parse_file_name(name) {
            listing.segments.insert(sequence, entry.path());
        } else if let Some(id) = snapshot_file::parse_file_name(name) {
            listing
                .snapshots
                .insert((id.index.0, id.term.0), entry.path());
        } else if name.ends_with(snapshot_file::TEMPORARY_SUFFIX) {
            listing.temporaries.push(entry.path());
        } else if name == clean_shutdown::CLEAN_SHUTDOWN_FILE {
            listing.clean_shutdown = true;
        } else if name == clean_shutdown::SUSPECT_FILE {
            listing.suspect = true;
        } else if name != LOCK_FILE {
            listing.others.push(entry.path());
        }
    }
    listing.temporaries.sort();
    listing.others.sort();
    Ok(listing)
}

fn remove(path: &Path, report: &mut RecoveryReport) -> Result<()> {
    fs::remove_file(path).map_err(|error| WalError::io("remove file", path, error))?;
    report.removed_files.push(path.to_path_buf());
    Ok(())
}

/// Reads the whole file at `path` into `buffer`'s allocation (reused from segment to segment,
/// so recovery pays for page faults on one segment's worth of memory, not on every segment).
fn read_whole(path: &Path, buffer: &mut Vec<u8>) -> Result<Bytes> {
    let mut contents = std::mem::take(buffer);
    contents.clear();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut contents))
        .map_err(|error| WalError::io("read segment", path, error))?;
    Ok(Bytes::from(contents))
}

/// Takes the allocation back from a segment's contents once nothing refers to them.
fn reclaim(contents: Bytes) -> Vec<u8> {
    contents.try_into_mut().map(Vec::from).unwrap_or_default()
}

/// Cuts the segment at `path` to `length` bytes durably; a segment cut to nothing (its header
/// was torn) is removed.
fn truncate_segment(
    syncer: Syncer,
    path: &Path,
    length: u64,
    report: &mut RecoveryReport,
) -> Result<()> {
    if length == 0 {
        return remove(path, report);
    }
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|error| WalError::io("open segment", path, error))?;
    file.set_len(length)
        .map_err(|error| WalError::io("truncate segment", path, error))?;
    syncer.file(&file, path, "fsync truncated segment")
}

/// Replays segment records, in write order, into the log that follows the newest snapshot.
///
/// Starting from the snapshot rather than from the first record makes the replay independent
/// of which older segments compaction has deleted: entries the snapshot covers are skipped
/// (though writing one cut off every entry after it), and markers of older snapshots only
/// matter for the entries they discarded. The inspection (`crate::inspect`) replays the same
/// way, so that it reports the state recovery would rebuild.
pub(crate) struct Replay {
    log: LogIndex,
    configurations: ConfigurationIndex,
    hard_state: HardState,
    /// Whether the newest snapshot's own marker was found (the bootstrap snapshot has none).
    marker_found: bool,
    /// The term of the entry at the snapshot's index in the log as replayed so far: what the
    /// snapshot is checked against if its marker was never written.
    term_at_snapshot: Option<Term>,
    /// The first entry met since the log was last empty that did not connect to the snapshot,
    /// with where it is. Such entries follow entries in deleted segments; they are dead if a
    /// later entry replaces them, and a sign of a lost segment if none does.
    unconnected: Option<(PathBuf, u64, LogId)>,
}

/// Why replayed records do not make a log recovery can open: a corrupt-log error at `path`
/// and `offset`, sorted by kind for the inspection.
#[derive(Debug)]
pub(crate) struct ReplayFault {
    pub(crate) kind: ReplayFaultKind,
    pub(crate) path: PathBuf,
    pub(crate) offset: u64,
    pub(crate) reason: String,
}

/// The kinds of [`ReplayFault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplayFaultKind {
    /// A configuration entry's data does not decode.
    UndecodableConfiguration,
    /// An entry leaves a gap after the last one.
    IndexGap,
    /// A marker names a snapshot newer than the newest snapshot file.
    MarkerBeyondSnapshot,
    /// Entries do not follow the snapshot: a segment before them is missing.
    MissingEarlierSegment,
    /// The hard state's commit index is beyond the last entry.
    CommitBeyondLog,
}

impl ReplayFault {
    fn new(
        kind: ReplayFaultKind,
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> ReplayFault {
        ReplayFault {
            kind,
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

impl From<ReplayFault> for WalError {
    fn from(fault: ReplayFault) -> WalError {
        WalError::corrupt(fault.path, fault.offset, fault.reason)
    }
}

/// What a replay rebuilt, once its end checks passed.
pub(crate) struct ReplayEnd {
    /// The live log.
    pub(crate) log: LogIndex,
    /// Its configuration entries.
    pub(crate) configurations: ConfigurationIndex,
    /// The hard state, its commit at least the snapshot's index.
    pub(crate) hard_state: HardState,
    /// The newest snapshot's marker must be written, with this discard decision.
    pub(crate) missing_marker: Option<bool>,
}

impl Replay {
    /// A replay of the log that follows the newest snapshot, through `snapshot_id`.
    pub(crate) fn new(snapshot_id: LogId) -> Replay {
        Replay {
            log: LogIndex::new(snapshot_id),
            configurations: ConfigurationIndex::default(),
            hard_state: HardState::default(),
            marker_found: snapshot_id.index.0 == 0,
            term_at_snapshot: None,
            unconnected: None,
        }
    }

    /// Replays `record`, the frame at `offset` of segment `sequence` (at `path`).
    pub(crate) fn record(
        &mut self,
        path: &Path,
        sequence: u64,
        offset: u64,
        payload_len: u32,
        record: Record,
    ) -> Result<(), ReplayFault> {
        let snapshot = self.log.base();
        match record {
            Record::Entry(entry) => {
                if entry.index() == snapshot.index {
                    self.term_at_snapshot = Some(entry.term());
                } else if entry.index() < snapshot.index {
                    self.term_at_snapshot = None;
                }
                if entry.index() > self.log.last_index().next() && self.log.len() == 0 {
                    if self.unconnected.is_none() {
                        self.unconnected = Some((path.to_path_buf(), offset, entry.id));
                    }
                    return Ok(());
                }
                self.unconnected = None;
                let location = Location {
                    segment: sequence,
                    offset: offset as u32,
                    payload_len,
                };
                let fault = |kind, reason| ReplayFault::new(kind, path, offset, reason);
                let configuration = decode_configuration(&entry)
                    .map_err(|reason| fault(ReplayFaultKind::UndecodableConfiguration, reason))?;
                self.log
                    .append(entry.id, location)
                    .map_err(|reason| fault(ReplayFaultKind::IndexGap, reason))?;
                self.configurations
                    .append(snapshot.index, entry.index(), configuration);
            }
            Record::HardState(hard_state) => self.hard_state = hard_state,
            Record::Snapshot { id, discard } => {
                if id.index > snapshot.index {
                    return Err(ReplayFault::new(
                        ReplayFaultKind::MarkerBeyondSnapshot,
                        path,
                        offset,
                        format!(
                            "the log records snapshot {id} but the newest snapshot file covers \
                             only {snapshot}"
                        ),
                    ));
                }
                if discard {
                    self.term_at_snapshot = None;
                    self.unconnected = None;
                }
                self.marker_found |= id == snapshot;
                self.log.apply_snapshot(id, discard);
                self.configurations.apply_snapshot(id, discard);
            }
        }
        Ok(())
    }
}

impl Replay {
    /// The checks recovery makes once every segment was replayed (`last_segment` is the last
    /// one kept): no entry left that follows a missing segment, the newest snapshot's marker
    /// settled if it was never written, the commit index within the log.
    pub(crate) fn finish(self, last_segment: Option<&Path>) -> Result<ReplayEnd, ReplayFault> {
        let Replay {
            mut log,
            mut configurations,
            mut hard_state,
            marker_found,
            term_at_snapshot,
            unconnected,
        } = self;
        let snapshot_id = log.base();
        if let Some((path, offset, id)) = unconnected {
            return Err(ReplayFault::new(
                ReplayFaultKind::MissingEarlierSegment,
                path,
                offset,
                format!(
                    "entry {id} does not follow snapshot {snapshot_id}: a segment before it is missing"
                ),
            ));
        }
        // A crash between making the snapshot file durable and writing its marker: settle now
        // what the marker would have said, and have it written before any new entry.
        let missing_marker = (!marker_found).then(|| {
            let discard = term_at_snapshot != Some(snapshot_id.term);
            log.apply_snapshot(snapshot_id, discard);
            configurations.apply_snapshot(snapshot_id, discard);
            discard
        });
        hard_state.commit = hard_state.commit.max(snapshot_id.index);
        if hard_state.commit > log.last_index() {
            return Err(ReplayFault::new(
                ReplayFaultKind::CommitBeyondLog,
                last_segment.unwrap_or(Path::new("")),
                0,
                format!(
                    "commit index {} is beyond the last durable entry {}",
                    hard_state.commit,
                    log.last_index()
                ),
            ));
        }
        Ok(ReplayEnd {
            log,
            configurations,
            hard_state,
            missing_marker,
        })
    }
}

impl Wal {
    /// Opens the log in `dir`, creating the directory and a new log whose initial
    /// configuration is `bootstrap` if it holds none (an existing log keeps its own).
    pub fn open(
        dir: impl AsRef<Path>,
        bootstrap: Configuration,
        options: WalOptions,
    ) -> Result<Wal> {
        let dir = dir.as_ref().to_path_buf();
        validate(&options)?;
        if !dir.exists() {
            fs::create_dir_all(&dir)
                .map_err(|error| WalError::io("create directory", &dir, error))?;
            // The new directory's own entry must survive a crash too.
            if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                options.syncer().dir(parent)?;
            }
        }
        let lock = DirectoryLock::acquire(&dir)?;
        let mut report = RecoveryReport {
            // First, before anything in the directory changes (see clean_shutdown).
            clean_shutdown: clean_shutdown::take(options.syncer(), &dir)?,
            still_suspect: clean_shutdown::is_suspect(&dir),
            ..RecoveryReport::default()
        };
        let mut listing = list(&dir)?;
        if listing.segments.is_empty() && listing.snapshots.is_empty() {
            bootstrap_directory(options.syncer(), &dir, bootstrap)?;
            report.bootstrapped = true;
            listing = list(&dir)?;
        }
        for temporary in &listing.temporaries {
            remove(temporary, &mut report)?;
        }
        let snapshot = newest_snapshot(&dir, &listing, &mut report)?;
        let Replayed {
            log,
            configurations,
            hard_state,
            segments,
            last_data_end,
            missing_marker,
        } = replay(&listing, &snapshot, &options, &mut report)?;
        let (mut active, segments) =
            open_active(&options, &dir, segments, last_data_end, hard_state)?;
        let sync_latency = Arc::new(LatencyHistogram::new());
        if let Some(discard) = missing_marker {
            let id = snapshot.meta.last_included;
            let mut frame = Vec::new();
            encode_frame(&Record::Snapshot { id, discard }, &mut frame);
            active.append(&frame, options.syncer(), &sync_latency)?;
            report.snapshot_marker_restored = true;
        }
        report.entries = log.len();
        report.snapshot = snapshot.meta.last_included;
        report.possibly_lost_writes = report.judge_lost_writes(options.distrust_unclean_shutdown);
        if report.possibly_lost_writes && !report.still_suspect {
            // Until a recovered peer stops cleanly, every later start must recover again,
            // even one that finds no damage (a crash in the middle of the recovery).
            clean_shutdown::mark_suspect(options.syncer(), &dir)?;
        }
        tracing::info!(
            dir = %dir.display(),
            segments = report.segments,
            entries = report.entries,
            snapshot = %report.snapshot,
            torn_tail_bytes = report.torn_tail_bytes,
            clean_shutdown = report.clean_shutdown,
            possibly_lost_writes = report.possibly_lost_writes,
            "write-ahead log recovered"
        );
        let shared = Shared::new(DurableState {
            hard_state,
            snapshot,
            log,
            configurations,
            cache: TailCache::new(options.cache_bytes_max),
            segments,
            possibly_lost_writes: report.possibly_lost_writes,
        });
        let warm = WalStorage::new(Arc::clone(&shared))
            .warm_cache(options.cache_bytes_max.min(WARM_CACHE_BYTES_MAX));
        if let Err(error) = warm {
            // Only an optimisation: the same read fails again, loudly, when the core needs it.
            tracing::warn!(dir = %dir.display(), %error, "could not read the log's end into the cache");
        }
        let staged = Arc::new(StagedSnapshots::new(
            dir.clone(),
            options.syncer(),
            options.staged_snapshot_bytes_per_second,
            report.snapshot.index,
        ));
        Ok(Wal {
            dir,
            options,
            shared,
            active,
            report,
            failure: None,
            reaper: Default::default(),
            _lock: lock,
            buffer: Default::default(),
            published: Vec::new(),
            sync_latency,
            staged,
        })
    }
}

fn validate(options: &WalOptions) -> Result<()> {
    let invalid = |reason: &str| Err(WalError::InvalidOptions(reason.into()));
    if options.segment_bytes_max == 0 || options.segment_bytes_max > 2 << 30 {
        return invalid("segment_bytes_max must be between 1 byte and 2 GiB");
    }
    if options.batch_bytes_max == 0 || options.batch_bytes_max > 1 << 30 {
        return invalid("batch_bytes_max must be between 1 byte and 1 GiB");
    }
    Ok(())
}

/// Writes the initial snapshot (index 0, the bootstrap configuration); the first segment is
/// created when the log is opened.
fn bootstrap_directory(syncer: Syncer, dir: &Path, configuration: Configuration) -> Result<()> {
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::default(),
            configuration,
        },
        data: Bytes::new(),
    };
    snapshot_file::write(syncer, dir, &snapshot)?;
    Ok(())
}

/// Reads the newest snapshot file and removes the ones it supersedes. Only the newest is
/// trusted: a damaged newest snapshot is an error, never a reason to fall back.
fn newest_snapshot(dir: &Path, listing: &Listing, report: &mut RecoveryReport) -> Result<Snapshot> {
    let Some((_, newest_path)) = listing.snapshots.last_key_value() else {
        return Err(WalError::corrupt(
            dir,
            0,
            "segments exist but no snapshot file does",
        ));
    };
    let snapshot = snapshot_file::read(newest_path)?;
    for path in listing.snapshots.values() {
        if path != newest_path {
            remove(path, report)?;
        }
    }
    Ok(snapshot)
}

type Segments = BTreeMap<u64, Arc<SegmentFile>>;

/// The outcome of replaying the segments.
struct Replayed {
    log: LogIndex,
    configurations: ConfigurationIndex,
    hard_state: HardState,
    segments: Segments,
    /// Where the valid frames of the last segment end.
    last_data_end: u64,
    /// The newest snapshot's marker must be written, with this discard decision.
    missing_marker: Option<bool>,
}

fn replay(
    listing: &Listing,
    snapshot: &Snapshot,
    options: &WalOptions,
    report: &mut RecoveryReport,
) -> Result<Replayed> {
    let mut replay = Replay::new(snapshot.meta.last_included);
    let mut retained = BTreeMap::new();
    let mut read_buffer = Vec::new();
    // Where the next frame goes in the last segment kept.
    let mut last_data_end = 0;
    let sequences: Vec<u64> = listing.segments.keys().copied().collect();
    for (position, &sequence) in sequences.iter().enumerate() {
        let path = &listing.segments[&sequence];
        if position > 0 && sequences[position - 1] + 1 != sequence {
            return Err(WalError::corrupt(
                path,
                0,
                format!(
                    "segment {} is missing before this one",
                    sequences[position - 1] + 1
                ),
            ));
        }
        let contents = read_whole(path, &mut read_buffer)?;
        if contents.len() as u64 > u32::MAX as u64 {
            return Err(WalError::corrupt(
                path,
                u32::MAX as u64,
                "segment larger than 4 GiB",
            ));
        }
        report.segments += 1;
        report.bytes_scanned += contents.len() as u64;
        let mut segment_records = 0;
        let end = segment::scan(path, sequence, &contents, |offset, payload_len, record| {
            segment_records += 1;
            Ok(replay.record(path, sequence, offset, payload_len, record)?)
        })?;
        report.records += segment_records;
        let is_last = position + 1 == sequences.len();
        let (damage, mut data_end) = match end {
            ScanEnd::Clean => (None, contents.len() as u64),
            ScanEnd::ZeroFilled { offset } if is_last => (None, offset),
            // Segments are trimmed to their data when the next one starts.
            ScanEnd::ZeroFilled { offset } => (
                Some(Damage {
                    offset,
                    reason: "zeros where records should be",
                    fault: Fault::Zeros,
                    intact_frame_after: None,
                }),
                offset,
            ),
            ScanEnd::Damaged(damage) => {
                let offset = damage.offset;
                (Some(damage), offset)
            }
        };
        let mut kept = true;
        if let Some(damage) = damage {
            let dropped = contents.len() as u64 - damage.offset;
            // A segment starts with the hard state in the same write as its header; one cut
            // before that record ends never became part of the log and goes whole, so that
            // the segment kept last always holds the hard state.
            let cut_at = if segment_records == 0 {
                0
            } else {
                damage.offset
            };
            if is_last && damage.intact_frame_after.is_none() {
                tracing::warn!(
                    path = %path.display(),
                    offset = damage.offset,
                    bytes = dropped,
                    reason = damage.reason,
                    "truncating a torn write at the end of the log"
                );
                report.torn_tail_bytes += dropped;
            } else if options.truncate_corrupt_tail {
                let later: Vec<&PathBuf> = sequences[position + 1..]
                    .iter()
                    .map(|sequence| &listing.segments[sequence])
                    .collect();
                tracing::error!(
                    path = %path.display(),
                    offset = damage.offset,
                    reason = damage.reason,
                    later_segments = later.len(),
                    "CORRUPT WRITE-AHEAD LOG: truncating at the damage as the operator allowed; \
                     everything after it is lost"
                );
                report.corrupt_bytes_dropped += dropped;
                for later_path in later {
                    report.corrupt_bytes_dropped +=
                        fs::metadata(later_path).map(|meta| meta.len()).unwrap_or(0);
                    remove(later_path, report)?;
                }
                truncate_segment(options.syncer(), path, cut_at, report)?;
                if cut_at > 0 {
                    retained.insert(sequence, open_segment(path)?);
                    last_data_end = cut_at;
                }
                break;
            } else {
                let mut reason = damage.reason.to_string();
                if let Some(intact) = damage.intact_frame_after {
                    reason.push_str(&format!(" (an intact record follows at byte {intact})"));
                }
                return Err(WalError::corrupt(path, damage.offset, reason));
            }
            truncate_segment(options.syncer(), path, cut_at, report)?;
            if cut_at > 0 && options.preallocate_bytes() > cut_at {
                // Give the segment back the space appends go to (see segment::create).
                let file = open_segment(path)?;
                file.file
                    .set_len(options.preallocate_bytes())
                    .map_err(|error| WalError::io("preallocate segment", path, error))?;
                options
                    .syncer()
                    .file(&file.file, path, "fsync preallocated segment")?;
            }
            kept = cut_at > 0;
            data_end = cut_at;
        } else if is_last && segment_records == 0 {
            // Only a header: the same torn creation, cut exactly after the header.
            remove(path, report)?;
            kept = false;
        }
        read_buffer = reclaim(contents);
        if kept {
            retained.insert(sequence, open_segment(path)?);
            last_data_end = data_end;
        }
    }
    let last_segment = listing.segments.values().last().map(PathBuf::as_path);
    let ReplayEnd {
        log,
        configurations,
        hard_state,
        missing_marker,
    } = replay.finish(last_segment)?;
    Ok(Replayed {
        log,
        configurations,
        hard_state,
        segments: retained,
        last_data_end,
        missing_marker,
    })
}

fn open_segment(path: &Path) -> Result<Arc<SegmentFile>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|error| WalError::io("open segment", path, error))?;
    Ok(Arc::new(SegmentFile {
        path: path.to_path_buf(),
        file,
    }))
}

/// The last retained segment becomes the active one; with none, a new segment starts with the
/// hard state.
fn open_active(
    options: &WalOptions,
    dir: &Path,
    mut segments: Segments,
    last_data_end: u64,
    hard_state: HardState,
) -> Result<(ActiveSegment, Segments)> {
    if let Some((&sequence, file)) = segments.last_key_value() {
        let active = ActiveSegment::new(sequence, Arc::clone(file), last_data_end)?;
        return Ok((active, segments));
    }
    let mut initial = Vec::new();
    encode_frame(&Record::HardState(hard_state), &mut initial);
    let sequence = 1;
    let (file, path, bytes) = segment::create(
        options.syncer(),
        dir,
        sequence,
        &initial,
        options.preallocate_bytes(),
    )?;
    let file = Arc::new(SegmentFile { path, file });
    segments.insert(sequence, Arc::clone(&file));
    Ok((ActiveSegment::new(sequence, file, bytes)?, segments))
}
