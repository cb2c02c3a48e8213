//! The writer: turns the core's [`PersistRequest`]s into durable records.
//!
//! ```text
//!  write(batch of requests)
//!    for each request:  snapshot? → snapshot file (tmp, fsync, rename, dir fsync) + marker record
//!                                   (staged ahead with the same contents: rename, dir fsync)
//!                       entries   → entry records (a lower index replaces the suffix)
//!                       hard state→ hard state record
//!    one vectored write of every record at the end of the active segment (payloads of 2 KiB
//!    and more straight from their own buffers), one fdatasync
//!    publish to readers (index, cache, hard state, snapshot) → hand compacted segments,
//!    old snapshot files and replaced memory to the reaper thread (crate::reaper)
//! ```
//!
//! A batch is all or nothing for the caller: only after `write` returns `Ok` may it report the
//! requests persisted. After any failure the log stops and refuses further writes.

use std::any::Any;
use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, HardState, PersistId, PersistRequest, Snapshot, SnapshotStager,
};

use crate::codec::{
    decode_configuration, encode_frame, encode_frame_leaving_data, frame_bytes, Record,
    FRAME_HEADER_BYTES,
};
use crate::error::{Result, WalError};
use crate::fsutil::{DirectoryLock, Syncer};
use crate::index::Location;
use crate::metrics::LatencyHistogram;
use crate::pending::PendingView;
use crate::reaper::{Job, Reaper};
use crate::recovery::RecoveryReport;
use crate::segment;
use crate::snapshot_file;
use crate::staging::StagedSnapshots;
use crate::storage::{SegmentFile, Shared, WalStorage};

/// Settings of a write-ahead log.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A new segment is started once the active one reaches this size (a segment may exceed it
    /// by one batch). At most 2 GiB.
    pub segment_bytes_max: u64,
    /// Bytes of the newest entries kept in memory for reads.
    pub cache_bytes_max: u64,
    /// Largest batch [`Wal::write`] accepts, in encoded bytes.
    pub batch_bytes_max: u64,
    /// Skip every fsync and fdatasync (of segments, snapshot files and directories). A power
    /// failure then loses acknowledged writes; only for tests and simulation, where a crash is
    /// a process crash and the page cache survives it.
    pub unsafe_no_sync: bool,
    /// Operator override: when recovery finds damage that is not a torn tail, truncate the log
    /// there (losing everything after it, loudly) instead of refusing to start.
    pub truncate_corrupt_tail: bool,
    /// Give each new segment its full size up front (a sparse file), so that an fdatasync
    /// after an append need not record a new file size, and write zeros over that space a
    /// little ahead of the appends (a mebibyte at a time), so that most fdatasyncs write data
    /// into blocks already allocated and need no journal commit at all. A segment is cut back
    /// to its data when the next one starts. Only the last segment may end in zeros.
    pub preallocate: bool,
    /// Count every start after an unclean stop (no clean-shutdown marker) as one that may
    /// have lost writes reported durable, not only a start that finds damage (a torn tail cut,
    /// corrupt bytes dropped). For disks whose write cache may acknowledge an fsync it has
    /// not done and lose it at a power cut: nothing on the disk then shows the loss. Off by
    /// default: a disk that keeps what it synced loses nothing to a crash.
    pub distrust_unclean_shutdown: bool,
    /// The most bytes a second a staged snapshot's file is written at (0: as fast as the disk
    /// takes it). Staging runs beside the log, so writing slower costs the log nothing, while
    /// at full speed the file's writeback shares the disk with the log's fdatasyncs (and each
    /// of their cache flushes carries whatever part of the file reached the disk since the
    /// last one): measured at 15,000 writes/s on a VM disk, requests during a 73 MB staging
    /// write waited p50 23 ms unpaced, 2.8 ms at 64 MiB/s (`bench/snapshot-stall.sh`). A file
    /// written through the log itself (a snapshot installed from the leader) is not paced.
    pub staged_snapshot_bytes_per_second: u64,
}

impl WalOptions {
    pub(crate) fn syncer(&self) -> Syncer {
        Syncer::new(!self.unsafe_no_sync)
    }

    /// The size a new segment is given when it is created.
    pub(crate) fn preallocate_bytes(&self) -> u64 {
        if self.preallocate {
            self.segment_bytes_max
        } else {
            0
        }
    }
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes_max: 64 << 20,
            cache_bytes_max: 32 << 20,
            batch_bytes_max: 1 << 30,
            unsafe_no_sync: false,
            truncate_corrupt_tail: false,
            preallocate: true,
            distrust_unclean_shutdown: false,
            staged_snapshot_bytes_per_second: 64 << 20,
        }
    }
}

/// How far ahead of the appends a preallocated segment's space is overwritten with zeros.
///
/// The first fdatasync after a write into a hole of a sparse file must also commit the
/// file system's journal (the blocks are allocated then); one after an overwrite of blocks
/// already written just writes the data. Zero-filling ahead in steps pays that journal
/// commit once per step instead of on every sync: on ext4 here, 3 KB appends each followed by
/// an fdatasync took 130 µs (p50) and about 170 µs of machine CPU instead of 310 µs and
/// 550 µs. Larger steps change little; each step is a megabyte more for one sync to write.
const ZERO_FILL_AHEAD_BYTES: u64 = 1 << 20;

static ZEROS: [u8; ZERO_FILL_AHEAD_BYTES as usize] = [0; ZERO_FILL_AHEAD_BYTES as usize];

/// The segment appends go to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) sequence: u64,
    pub(crate) file: Arc<SegmentFile>,
    /// Bytes written so far; the next frame goes here.
    pub(crate) bytes: u64,
    /// The file's length when it became the active segment: its preallocated space ends here.
    preallocated_to: u64,
    /// Everything before this offset has been written (frames or zeros) since the segment
    /// became active, so it is allocated and an overwrite of it changes no file metadata.
    written_to: u64,
}

/// Entry data at least this long is written from the entry's own buffer rather than copied
/// into the batch (below it, one copy is cheaper than another piece for the kernel to gather).
const INLINE_DATA_BYTES_MAX: usize = 2048;

/// A batch of encoded frames: everything is in `inline` except large entry payloads, which
/// stay in the buffers they arrived in (no copy from the client's request to the disk).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    inline: Vec<u8>,
    /// `(at, data)`: `data` is written after `inline[..at]`, before the rest.
    large_data: Vec<(usize, Bytes)>,
    /// Bytes the batch writes in all.
    bytes: u64,
}

impl Batch {
    fn clear(&mut self) {
        self.inline.clear();
        self.large_data.clear();
        self.bytes = 0;
    }

    /// The batch's bytes in write order.
    fn io_slices(&self) -> Vec<IoSlice<'_>> {
        let mut slices = Vec::with_capacity(2 * self.large_data.len() + 1);
        let mut from = 0;
        for (at, data) in &self.large_data {
            slices.push(IoSlice::new(&self.inline[from..*at]));
            slices.push(IoSlice::new(data));
            from = *at;
        }
        slices.push(IoSlice::new(&self.inline[from..]));
        slices
    }
}

impl ActiveSegment {
    /// The segment `sequence`, stored in `file`, whose next frame goes at `bytes`.
    pub(crate) fn new(sequence: u64, file: Arc<SegmentFile>, bytes: u64) -> Result<Self> {
        let length = file
            .file
            .metadata()
            .map_err(|error| WalError::io("stat segment", &file.path, error))?
            .len();
        Ok(ActiveSegment {
            sequence,
            file,
            bytes,
            preallocated_to: length,
            written_to: bytes,
        })
    }

    /// Writes `frames` at the end of the segment and makes them durable, timing the sync into
    /// `latency`.
    pub(crate) fn append(
        &mut self,
        frames: &[u8],
        syncer: Syncer,
        latency: &LatencyHistogram,
    ) -> Result<()> {
        self.append_vectored(&mut [IoSlice::new(frames)], syncer, latency)
    }

    /// Writes the bytes of `slices`, in order, at the end of the segment and makes them
    /// durable, timing the sync into `latency`.
    pub(crate) fn append_vectored(
        &mut self,
        slices: &mut [IoSlice<'_>],
        syncer: Syncer,
        latency: &LatencyHistogram,
    ) -> Result<()> {
        let file = &self.file;
        let bytes: u64 = slices.iter().map(|slice| slice.len() as u64).sum();
        write_all_vectored_at(&file.file, slices, self.bytes)
            .map_err(|error| WalError::io("write segment", &file.path, error))?;
        let end = self.bytes + bytes;
        if end > self.written_to {
            // Zeros are what recovery expects after the last frame, so a crash before the
            // sync below leaves the same segment whichever of these writes reached the disk.
            let zeros_end = self
                .preallocated_to
                .min(end + ZERO_FILL_AHEAD_BYTES)
                .max(end);
            self.written_to = zeros_end;
            if zeros_end > end {
                if let Err(error) = file
                    .file
                    .write_all_at(&ZEROS[..(zeros_end - end) as usize], end)
                {
                    // Only speed is lost (a full disk, say, may still hold the frames): the
                    // segment's appends go on into its holes.
                    tracing::warn!(path = %file.path.display(), %error, "stopped zero-filling a segment ahead of its appends");
                    self.written_to = self.preallocated_to;
                }
            }
        }
        syncer.data(&file.file, &file.path, latency)?;
        self.bytes = end;
        Ok(())
    }
}

/// Writes every byte of `slices` at `offset`. Only the writer moves the file's cursor; readers
/// use positioned reads.
fn write_all_vectored_at(
    mut file: &File,
    mut slices: &mut [IoSlice<'_>],
    offset: u64,
) -> io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// A change to publish once its batch is durable.
#[derive(Debug)]
pub(crate) enum Published {
    /// An entry, where it is, and the configuration it carries if it is a configuration entry.
    Entry(Entry, Location, Option<Configuration>),
    Snapshot(Snapshot, bool),
    HardState(HardState),
}

/// A durable write-ahead log in one data directory: the single writer of its files. Reads go
/// through [`Wal::storage`].
#[derive(Debug)]
pub struct Wal {
    pub(crate) dir: PathBuf,
    pub(crate) options: WalOptions,
    pub(crate) shared: Arc<Shared>,
    pub(crate) active: ActiveSegment,
    pub(crate) report: RecoveryReport,
    /// Why the log stopped accepting writes, if it did.
    pub(crate) failure: Option<String>,
    /// Deletes and frees what recorded snapshots made obsolete. Before the lock: dropping it
    /// finishes its work while the directory is still this log's.
    pub(crate) reaper: Reaper,
    pub(crate) _lock: DirectoryLock,
    /// Reused encoding buffer.
    pub(crate) buffer: Batch,
    /// Reused list of what a batch changes, published once it is durable.
    pub(crate) published: Vec<Published>,
    /// Durations of the segment fdatasyncs, shared with [`Wal::sync_latency`]'s callers.
    pub(crate) sync_latency: Arc<LatencyHistogram>,
    /// Snapshots whose files were made durable ahead of the write that records them, shared
    /// with the stager handles.
    pub(crate) staged: Arc<StagedSnapshots>,
}

/// The write-ahead log as the storage a `raft-node` peer runs on: [`Wal::write`] makes a batch
/// durable with one fdatasync, [`Wal::storage`] is the reader.
impl raft_core::LogStore for Wal {
    type Reader = WalStorage;
    type Error = WalError;

    fn reader(&self) -> WalStorage {
        self.storage()
    }

    fn write(&mut self, requests: Vec<PersistRequest>) -> Result<()> {
        Wal::write(self, requests).map(|_| ())
    }

    /// Stages a snapshot's file under a temporary name of its own, which the write that
    /// records the snapshot renames into place (see [`SnapshotStager`]'s contract).
    fn snapshot_stager(&self) -> Option<Arc<dyn SnapshotStager>> {
        Some(Arc::clone(&self.staged) as Arc<dyn SnapshotStager>)
    }
}

impl Wal {
    /// A read handle implementing [`raft_core::Storage`].
    pub fn storage(&self) -> WalStorage {
        WalStorage::new(Arc::clone(&self.shared))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What recovery found when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Overrides what the log reports as `InitialState::possibly_lost_writes` (recovery's
    /// judgement, [`RecoveryReport::possibly_lost_writes`], until then), for a caller that
    /// knows better before the core is built on it: a simulator whose crashes are process
    /// crashes on an honest disk, having checked the reopened log holds every completed
    /// write. Reporting `false` for a log that did lose writes lets its peer vote twice in a
    /// term or help lose committed entries.
    pub fn set_possibly_lost_writes(&mut self, possibly_lost_writes: bool) {
        self.shared.write().possibly_lost_writes = possibly_lost_writes;
    }

    /// Why the log stopped accepting writes, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Closes the log after a graceful stop: writes the clean-shutdown marker durably (the
    /// file, then the directory), so that the next [`Wal::open`] knows no write reported
    /// durable can have been lost to a crash (its [`RecoveryReport::possibly_lost_writes`] is
    /// then false unless it finds damage). Every write [`Wal::write`] returned from is durable
    /// already; call this only once nothing more will be written, and only if the peer
    /// running on the log trusts its own state (`raft_core::Raft::is_recovering` is false:
    /// a peer still recovering must recover again after the next start). Dropping the log
    /// without it counts as a crash. Fails with [`WalError::Stopped`] if an earlier write
    /// failed: what is on disk is then unknown.
    pub fn close_cleanly(self) -> Result<()> {
        if let Some(failure) = &self.failure {
            return Err(WalError::Stopped(failure.clone()));
        }
        self.reaper.wait();
        crate::clean_shutdown::write(self.options.syncer(), &self.dir)?;
        crate::clean_shutdown::clear_suspicion(self.options.syncer(), &self.dir)?;
        tracing::info!(dir = %self.dir.display(), "write-ahead log closed cleanly");
        Ok(())
    }

    /// Waits until what the snapshots recorded so far made obsolete is gone: compacted
    /// segments and older snapshot files deleted, the entries and snapshot they replaced
    /// freed. [`Wal::write`] hands that work to a thread of the log's own and returns without
    /// it (it is not needed for durability: recovery skips whatever a crash left of it), so
    /// that the next write does not wait behind deletions; dropping the log waits for it too.
    pub fn wait_for_cleanup(&self) {
        self.reaper.wait();
    }

    /// The histogram of how long each fdatasync of a segment took (the sync every write
    /// ends with, and the one of a marker restored at open), shared: take it before handing
    /// the log to another thread (`raft-node`'s storage thread), and read it from any thread. Syncs skipped with
    /// [`WalOptions::unsafe_no_sync`] are not recorded; the rarer fsyncs of snapshot files,
    /// trimmed segments and directories are not either.
    pub fn sync_latency(&self) -> Arc<LatencyHistogram> {
        Arc::clone(&self.sync_latency)
    }

    /// Makes one request durable (a batch of one).
    pub fn persist(&mut self, request: PersistRequest) -> Result<()> {
        self.write(std::iter::once(request)).map(|_| ())
    }

    /// Makes every request durable with one fdatasync, in order, and returns the id of the last
    /// one (every earlier one is durable too). Nothing is visible to readers before it is
    /// durable. After an error the log accepts no more writes.
    pub fn write(
        &mut self,
        requests: impl IntoIterator<Item = PersistRequest>,
    ) -> Result<Option<PersistId>> {
        if let Some(failure) = &self.failure {
            return Err(WalError::Stopped(failure.clone()));
        }
        let result = self.write_batch(requests);
        if let Err(error) = &result {
            tracing::error!(dir = %self.dir.display(), %error, "write-ahead log stopped");
            self.failure = Some(error.to_string());
        }
        result
    }

    fn write_batch(
        &mut self,
        requests: impl IntoIterator<Item = PersistRequest>,
    ) -> Result<Option<PersistId>> {
        if self.active.bytes >= self.options.segment_bytes_max {
            self.roll_segment()?;
        }
        let mut published = std::mem::take(&mut self.published);
        let mut last_id = None;
        let mut wrote_snapshot = false;
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        {
            let state = self
                .shared
                .read()
                .map_err(|error| WalError::Stopped(error.to_string()))?;
            let mut view = PendingView::new(&state.log);
            for request in requests {
                last_id = Some(request.id);
                if let Some(snapshot) = request.snapshot {
                    let id = snapshot.meta.last_included;
                    if let Some(discard) = view.apply_snapshot(id) {
                        // The file is durable before the marker that refers to it.
                        let started = std::time::Instant::now();
                        let staged = self.write_snapshot_file(&snapshot)?;
                        tracing::info!(
                            index = id.index.0,
                            bytes = snapshot.data.len(),
                            staged,
                            write_us = started.elapsed().as_micros() as u64,
                            "snapshot file written"
                        );
                        self.encode(&Record::Snapshot { id, discard }, &mut buffer)?;
                        published.push(Published::Snapshot(snapshot, discard));
                        wrote_snapshot = true;
                    }
                }
                published.reserve(request.entries.len());
                for entry in request.entries {
                    if view.append(entry.id).map_err(WalError::InvalidWrite)? {
                        // Refused before anything is written: recovery could not read it back.
                        let configuration =
                            decode_configuration(&entry).map_err(WalError::InvalidWrite)?;
                        let record = Record::Entry(entry);
                        let location = self.encode(&record, &mut buffer)?;
                        if let Record::Entry(entry) = record {
                            published.push(Published::Entry(entry, location, configuration));
                        }
                    }
                }
                if let Some(hard_state) = request.hard_state {
                    self.encode(&Record::HardState(hard_state), &mut buffer)?;
                    published.push(Published::HardState(hard_state));
                }
            }
        }
        if buffer.bytes > 0 {
            let mut slices = buffer.io_slices();
            self.active
                .append_vectored(&mut slices, self.options.syncer(), &self.sync_latency)?;
        }
        self.buffer = buffer;
        let garbage = self.publish(&mut published);
        self.published = published;
        if wrote_snapshot {
            self.remove_compacted(garbage);
        }
        Ok(last_id)
    }

    /// Makes `snapshot`'s file durable under its final name: a staged file of the same
    /// contents is renamed into place, otherwise the whole file is written here. Returns
    /// whether it had been staged.
    fn write_snapshot_file(&self, snapshot: &Snapshot) -> Result<bool> {
        let syncer = self.options.syncer();
        let id = snapshot.meta.last_included;
        if self.staged.take_if_staged(snapshot)
            && snapshot_file::rename_staged(syncer, &self.dir, id)?
        {
            return Ok(true);
        }
        snapshot_file::write(syncer, &self.dir, snapshot)?;
        Ok(false)
    }

    /// Appends `record`'s frame to `batch`; returns where the frame will be in the segment.
    fn encode(&self, record: &Record, batch: &mut Batch) -> Result<Location> {
        let offset = self.active.bytes + batch.bytes;
        let frame_bytes = frame_bytes(record);
        if batch.bytes + frame_bytes > self.options.batch_bytes_max {
            return Err(WalError::InvalidWrite(format!(
                "batch exceeds {} bytes",
                self.options.batch_bytes_max
            )));
        }
        let large_data = match record {
            Record::Entry(entry) if entry.data.len() >= INLINE_DATA_BYTES_MAX => {
                Some(entry.data.clone())
            }
            _ => None,
        };
        encode_frame_leaving_data(record, &mut batch.inline, large_data.is_some());
        if let Some(data) = large_data {
            batch.large_data.push((batch.inline.len(), data));
        }
        batch.bytes += frame_bytes;
        Ok(Location {
            segment: self.active.sequence,
            offset: u32::try_from(offset).expect("segments stay below 4 GiB"),
            payload_len: (frame_bytes - FRAME_HEADER_BYTES) as u32,
        })
    }

    /// Makes a durable batch visible to readers, in write order.
    /// Makes `published` visible to readers; returns what a snapshot among them replaced
    /// (cached entries, the previous snapshot), to be freed after the readers' lock is
    /// released, off this thread.
    fn publish(&mut self, published: &mut Vec<Published>) -> Vec<Box<dyn Any + Send>> {
        let mut garbage: Vec<Box<dyn Any + Send>> = Vec::new();
        let mut state = self.shared.write();
        for change in published.drain(..) {
            match change {
                Published::Entry(entry, location, configuration) => {
                    if let Err(reason) = state.log.append(entry.id, location) {
                        panic!("Wal::publish: validated entries apply to the index: {reason}");
                    }
                    let base = state.log.base().index;
                    state
                        .configurations
                        .append(base, entry.index(), configuration);
                    state.cache.push(entry);
                }
                Published::Snapshot(snapshot, discard) => {
                    let id = snapshot.meta.last_included;
                    state.log.apply_snapshot(id, discard);
                    state.configurations.apply_snapshot(id, discard);
                    let dropped = if discard {
                        state.cache.take_all()
                    } else {
                        state.cache.take_through(id.index)
                    };
                    garbage.push(Box::new(dropped));
                    state.hard_state.commit = state.hard_state.commit.max(id.index);
                    garbage.push(Box::new(std::mem::replace(&mut state.snapshot, snapshot)));
                }
                Published::HardState(hard_state) => {
                    state.hard_state = HardState {
                        commit: hard_state
                            .commit
                            .max(state.snapshot.meta.last_included.index),
                        ..hard_state
                    };
                }
            }
        }
        garbage
    }

    /// Starts a new segment whose first record is the durable hard state, so that deleting
    /// older segments never loses the newest one.
    fn roll_segment(&mut self) -> Result<()> {
        let hard_state = self
            .shared
            .read()
            .map_err(|error| WalError::Stopped(error.to_string()))?
            .hard_state;
        // The finished segment gives back its unused preallocated space first, so that a
        // segment other than the last never ends in zeros (there they would be lost data).
        let finished = &self.active.file;
        let length = finished
            .file
            .metadata()
            .map_err(|error| WalError::io("stat segment", &finished.path, error))?
            .len();
        if length > self.active.bytes {
            finished
                .file
                .set_len(self.active.bytes)
                .map_err(|error| WalError::io("trim segment", &finished.path, error))?;
            self.options
                .syncer()
                .file(&finished.file, &finished.path, "fsync trimmed segment")?;
        }
        let mut initial = Vec::new();
        encode_frame(&Record::HardState(hard_state), &mut initial);
        let sequence = self.active.sequence + 1;
        let (file, path, bytes) = segment::create(
            self.options.syncer(),
            &self.dir,
            sequence,
            &initial,
            self.options.preallocate_bytes(),
        )?;
        let file = Arc::new(SegmentFile { path, file });
        self.shared
            .write()
            .segments
            .insert(sequence, Arc::clone(&file));
        self.active = ActiveSegment::new(sequence, file, bytes)?;
        Ok(())
    }

    /// Hands the reaper ([`crate::reaper`]) the segments that hold nothing the newest
    /// snapshot does not cover, the snapshot files older than it and the staged ones it covers
    /// (they will never be recorded), and `garbage` to free. The segments go oldest first with
    /// a directory fsync after each, so that a crash leaves a prefix of them deleted and never
    /// a hole. A failure there loses nothing (the files just stay): it is logged and the
    /// deletion stops.
    fn remove_compacted(&mut self, mut garbage: Vec<Box<dyn Any + Send>>) {
        let (removable, newest) = {
            let mut state = self.shared.write();
            let keep_from = state.log.first_segment().unwrap_or(self.active.sequence);
            let keep_from = keep_from.min(self.active.sequence);
            let kept = state.segments.split_off(&keep_from);
            let removable = std::mem::replace(&mut state.segments, kept);
            (removable, state.snapshot.meta.last_included)
        };
        self.staged.forget_through(newest.index);
        let segments = removable
            .values()
            .map(|segment| segment.path.clone())
            .collect();
        // Their open files are closed there too.
        garbage.push(Box::new(removable));
        self.reaper.hand(Job {
            dir: self.dir.clone(),
            syncer: self.options.syncer(),
            segments,
            newest_snapshot: newest.index,
            garbage,
        });
    }
}
