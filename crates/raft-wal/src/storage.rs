//! The read side: [`WalStorage`] answers the core's [`Storage`] reads from the in-memory index,
//! the tail cache and positioned reads of segment files, while the writer appends.
//!
//! The writer publishes a batch into the shared state only after the batch is durable, so a
//! reader never sees anything a crash could take back. Reads look up locations under a read
//! lock and then read the files without it, holding the segment's file handle so that a
//! segment deleted by compaction meanwhile stays readable.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use raft_core::{
    Entry, HardState, Index, InitialState, Snapshot, SnapshotMeta, Storage, StorageError, Term,
};

use crate::checksum;
use crate::codec::{decode_entry, decode_frame_header, ENTRY_PREFIX_BYTES, FRAME_HEADER_BYTES};
use crate::index::{ConfigurationIndex, Location, LogIndex, TailCache};

/// An open segment file, shared by the writer and readers.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
}

/// What the writer has made durable, as readers see it.
#[derive(Debug)]
pub(crate) struct DurableState {
    pub(crate) hard_state: HardState,
    /// The newest durable snapshot.
    pub(crate) snapshot: Snapshot,
    pub(crate) log: LogIndex,
    /// The configuration entries of `log`.
    pub(crate) configurations: ConfigurationIndex,
    pub(crate) cache: TailCache,
    /// Every segment still on disk, by sequence number.
    pub(crate) segments: BTreeMap<u64, Arc<SegmentFile>>,
    /// What recovery judged when the log was opened (see
    /// [`crate::RecoveryReport::possibly_lost_writes`]); reported in every initial state.
    pub(crate) possibly_lost_writes: bool,
}

/// State shared between the writer and every [`WalStorage`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    state: RwLock<DurableState>,
}

impl Shared {
    pub(crate) fn new(state: DurableState) -> Arc<Shared> {
        Arc::new(Shared {
            state: RwLock::new(state),
        })
    }

    pub(crate) fn read(&self) -> Result<RwLockReadGuard<'_, DurableState>, StorageError> {
        self.state
            .read()
            .map_err(|_| StorageError::Failed("write-ahead log state poisoned by a panic".into()))
    }

    /// The state for the writer to update. A reader that panicked while holding the lock
    /// cannot have changed it, so poisoning is ignored.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, DurableState> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A read handle on a write-ahead log, implementing [`raft_core::Storage`]. Cheap to clone;
/// every clone sees what the writer has made durable.
#[derive(Clone, Debug)]
pub struct WalStorage {
    shared: Arc<Shared>,
}

/// One read to make outside the lock.
enum Piece {
    Cached(Entry),
    Stored(Arc<SegmentFile>, Location),
}

impl WalStorage {
    pub(crate) fn new(shared: Arc<Shared>) -> WalStorage {
        WalStorage { shared }
    }

    /// The durable term, vote and commit.
    pub fn hard_state(&self) -> Result<HardState, StorageError> {
        Ok(self.shared.read()?.hard_state)
    }

    /// The newest durable snapshot's metadata.
    pub fn snapshot_meta(&self) -> Result<SnapshotMeta, StorageError> {
        Ok(self.shared.read()?.snapshot.meta.clone())
    }

    /// Bytes of entries held in the tail cache.
    pub fn cached_bytes(&self) -> Result<u64, StorageError> {
        Ok(self.shared.read()?.cache.bytes())
    }

    /// Memory allocated for the log index, in bytes (its buffers grow by doubling, so up to
    /// half of it may not be in use yet).
    pub fn index_bytes(&self) -> Result<u64, StorageError> {
        Ok(self.shared.read()?.log.heap_bytes())
    }

    /// Reads the newest entries, up to `bytes_max` of them, into the tail cache (after
    /// recovery, so that a restarted leader serves followers that are close behind from
    /// memory, as before the restart).
    pub(crate) fn warm_cache(&self, bytes_max: u64) -> Result<(), StorageError> {
        let (low, high) = {
            let state = self.shared.read()?;
            let last = state.log.last_index();
            let mut low = last.next();
            let mut bytes = 0;
            while low > state.log.first_index() {
                let Some(location) = state.log.location(low.prev()) else {
                    break;
                };
                bytes += entry_size_bytes(location.payload_len);
                if bytes > bytes_max {
                    break;
                }
                low = low.prev();
            }
            (low, last.next())
        };
        let entries = self.entries(low, high, u64::MAX)?;
        let mut state = self.shared.write();
        for entry in entries {
            state.cache.push(entry);
        }
        Ok(())
    }

    /// Plans the reads of `[low, high)`, stopping once `max_bytes` are planned.
    fn plan(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Piece>, StorageError> {
        let state = self.shared.read()?;
        let log = &state.log;
        check_range(log, low, high)?;
        let mut pieces = Vec::new();
        let mut planned_bytes = 0;
        for index in low.0..high.0 {
            let index = Index(index);
            let piece = if let Some(entry) = state.cache.get(index) {
                planned_bytes += entry.size_bytes();
                Piece::Cached(entry.clone())
            } else {
                let location = log
                    .location(index)
                    .ok_or(StorageError::Unavailable(index))?;
                let segment = state.segments.get(&location.segment).ok_or_else(|| {
                    StorageError::Failed(format!(
                        "entry {index} is in segment {} which is not open",
                        location.segment
                    ))
                })?;
                planned_bytes += entry_size_bytes(location.payload_len);
                Piece::Stored(Arc::clone(segment), location)
            };
            if !pieces.is_empty() && planned_bytes > max_bytes {
                break;
            }
            pieces.push(piece);
        }
        Ok(pieces)
    }
}

/// Refuses a range that starts before the log's first entry or ends after its last.
fn check_range(log: &LogIndex, low: Index, high: Index) -> Result<(), StorageError> {
    if low < log.first_index() {
        return Err(StorageError::Compacted(low));
    }
    if high.0 > log.last_index().0 + 1 {
        return Err(StorageError::Unavailable(high.prev()));
    }
    Ok(())
}

/// What [`Entry::size_bytes`] says of the entry whose record payload is `payload_len` bytes,
/// without reading it: the core bounds messages by that measure, and reads must agree with the
/// bound whether an entry comes from the cache or the disk.
fn entry_size_bytes(payload_len: u32) -> u64 {
    let data_len = (payload_len as u64).saturating_sub(ENTRY_PREFIX_BYTES);
    Entry {
        id: Default::default(),
        kind: raft_core::EntryKind::Normal,
        data: Bytes::new(),
    }
    .size_bytes()
        + data_len
}

/// Frames further apart than this are read with separate reads.
const READ_RUN_BYTES_MAX: u64 = 4 << 20;

/// Reads the entries of `locations`, whose frames lie back to back in `segment`, with one
/// positioned read, verifying every checksum. The entries' data share the read buffer.
fn read_run(segment: &SegmentFile, locations: &[Location]) -> Result<Vec<Entry>, StorageError> {
    let (Some(first), Some(last)) = (locations.first(), locations.last()) else {
        return Ok(Vec::new());
    };
    let start = first.offset as u64;
    let end = last.offset as u64 + FRAME_HEADER_BYTES + last.payload_len as u64;
    let mut buffer = vec![0u8; (end - start) as usize];
    segment
        .file
        .read_exact_at(&mut buffer, start)
        .map_err(|error| {
            StorageError::Failed(format!(
                "read {} at byte {start}: {error}",
                segment.path.display()
            ))
        })?;
    let buffer = Bytes::from(buffer);
    let mut entries = Vec::with_capacity(locations.len());
    for location in locations {
        let damaged = |reason: &str| {
            StorageError::Failed(format!(
                "corrupt write-ahead log: {} at byte {}: {reason}",
                segment.path.display(),
                location.offset
            ))
        };
        let frame_start = (location.offset as u64 - start) as usize;
        let payload_start = frame_start + FRAME_HEADER_BYTES as usize;
        let header = decode_frame_header(&buffer[frame_start..payload_start])
            .ok_or_else(|| damaged("frame header checksum mismatch"))?;
        if header.payload_len != location.payload_len {
            return Err(damaged("record length changed since recovery"));
        }
        let payload = buffer.slice(payload_start..payload_start + location.payload_len as usize);
        if checksum::crc32c(&payload) != header.payload_crc {
            return Err(damaged("record checksum mismatch"));
        }
        entries.push(decode_entry(payload).map_err(|reason| damaged(&reason))?);
    }
    Ok(entries)
}

/// Whether `next`'s frame starts where `previous`'s ends, in the same segment.
fn adjacent(previous: &Location, next: &Location, run_start: u32) -> bool {
    let previous_end = previous.offset as u64 + FRAME_HEADER_BYTES + previous.payload_len as u64;
    next.segment == previous.segment
        && next.offset as u64 == previous_end
        && previous_end - run_start as u64 <= READ_RUN_BYTES_MAX
}

impl Storage for WalStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        let state = self.shared.read()?;
        // Tracked as records are replayed and written, so no entry is read back here.
        let configuration = state
            .configurations
            .latest()
            .unwrap_or(&state.snapshot.meta.configuration)
            .clone();
        Ok(InitialState {
            hard_state: state.hard_state,
            configuration,
            configuration_entries: state.configurations.to_vec(),
            possibly_lost_writes: state.possibly_lost_writes,
        })
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        let pieces = self.plan(low, high, max_bytes)?;
        let mut read = Vec::with_capacity(pieces.len());
        let mut pieces = pieces.into_iter().peekable();
        while let Some(piece) = pieces.next() {
            match piece {
                Piece::Cached(entry) => read.push(entry),
                Piece::Stored(segment, location) => {
                    let mut run = vec![location];
                    while let Some(Piece::Stored(_, next)) = pieces.peek() {
                        let previous = run.last().expect("a run is never empty");
                        if !adjacent(previous, next, run[0].offset) {
                            break;
                        }
                        run.push(*next);
                        pieces.next();
                    }
                    read.extend(read_run(&segment, &run)?);
                }
            }
        }
        // A record at the wrong place means the index and the files disagree: never serve it.
        for (offset, entry) in read.iter().enumerate() {
            let expected = low.plus(offset as u64);
            if entry.index() != expected {
                return Err(StorageError::Failed(format!(
                    "write-ahead log returned entry {} where {expected} was expected",
                    entry.id
                )));
            }
        }
        Ok(read)
    }

    /// From the index's record lengths, without reading an entry.
    fn entries_size_bytes(
        &self,
        low: Index,
        high: Index,
        max_bytes: u64,
    ) -> Result<u64, StorageError> {
        if low >= high {
            return Ok(0);
        }
        let state = self.shared.read()?;
        let log = &state.log;
        check_range(log, low, high)?;
        let mut bytes = 0u64;
        for index in low.0..high.0 {
            let payload_len = log
                .payload_len(Index(index))
                .ok_or(StorageError::Unavailable(Index(index)))?;
            bytes += entry_size_bytes(payload_len);
            if bytes > max_bytes {
                break;
            }
        }
        Ok(bytes)
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        let state = self.shared.read()?;
        let log = &state.log;
        if let Some(term) = log.term(index) {
            return Ok(term);
        }
        if index < log.first_index() {
            Err(StorageError::Compacted(index))
        } else {
            Err(StorageError::Unavailable(index))
        }
    }

    fn first_index(&self) -> Result<Index, StorageError> {
        Ok(self.shared.read()?.log.first_index())
    }

    fn last_index(&self) -> Result<Index, StorageError> {
        Ok(self.shared.read()?.log.last_index())
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.shared.read()?.snapshot.clone())
    }
}
