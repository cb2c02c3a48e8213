//! Snapshot files: written whole to a temporary name, fsynced, renamed into place and the
//! directory fsynced, so a snapshot file under its final name is always complete. A staged
//! snapshot (see `staging`) is written the same way under a temporary name of its own, and
//! renamed into place only by the write that records it.
//!
//! ```text
//!  snapshot-<index>-<term>.snap :=
//!      magic "RAFTSNAP" | version u32 | reserved u32 | index u64 | term u64
//!      | set voters
//!      | set outgoing | set learners                      (version 2 only)
//!      | data_len u64 | data | crc u32 (of all before)
//!  set := count u32 | node id u64 * count
//! ```
//!
//! Version 1 files (written before membership changes) carry voters only and read as a
//! configuration without outgoing voters or learners. A snapshot whose configuration has
//! neither is still written as version 1, so a build that predates membership changes can read
//! every file a cluster that never changed its membership writes; version 2 is written only
//! when there is more to say.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, Bytes};
use raft_core::{Configuration, Index, LogId, NodeId, Snapshot, SnapshotMeta, Term};

use crate::checksum;
use crate::codec::FORMAT_VERSION;
use crate::error::{Result, WalError};
use crate::fsutil::Syncer;

const SNAPSHOT_MAGIC: [u8; 8] = *b"RAFTSNAP";
/// Files whose configuration is a voter set only (the segment format's version number).
const VERSION_VOTERS_ONLY: u32 = FORMAT_VERSION;
/// Files whose configuration also names outgoing voters and learners.
const VERSION_MEMBERSHIP: u32 = 2;
const SUFFIX: &str = ".snap";
const PREFIX: &str = "snapshot-";
/// Suffix of a snapshot still being written; such files are never read and are removed at
/// start-up.
pub(crate) const TEMPORARY_SUFFIX: &str = ".snap.tmp";

/// The final name of the snapshot covering through `id`.
pub(crate) fn file_name(id: LogId) -> String {
    format!("{PREFIX}{:020}-{:020}{SUFFIX}", id.index.0, id.term.0)
}

/// The temporary name of the staged snapshot covering through `id`: it ends in
/// [`TEMPORARY_SUFFIX`], so recovery (of this build or an older one) removes it unread.
pub(crate) fn staged_file_name(id: LogId) -> String {
    format!(
        "{PREFIX}{:020}-{:020}{STAGED_INFIX}{TEMPORARY_SUFFIX}",
        id.index.0, id.term.0
    )
}

/// What sets a staged snapshot's name apart from a temporary one being written.
const STAGED_INFIX: &str = ".staged";

/// Parses a staged snapshot's file name back into its log id.
pub(crate) fn parse_staged_file_name(name: &str) -> Option<LogId> {
    let rest = name
        .strip_suffix(TEMPORARY_SUFFIX)?
        .strip_suffix(STAGED_INFIX)?;
    parse_file_name(&format!("{rest}{SUFFIX}"))
}

/// Parses a final snapshot file name back into its log id.
pub(crate) fn parse_file_name(name: &str) -> Option<LogId> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (index, term) = rest.split_once('-')?;
    Some(LogId::new(
        Term(term.parse().ok()?),
        Index(index.parse().ok()?),
    ))
}

/// Encodes a snapshot into its file contents: what [`write`] writes (in parts).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = encode_header(snapshot, snapshot.data.len());
    out.put_slice(&snapshot.data);
    let crc = checksum::crc32c(&out);
    out.put_u32_le(crc);
    out
}

/// The file's bytes before the data (the data length last), with room reserved for
/// `data_reserve` bytes more.
fn encode_header(snapshot: &Snapshot, data_reserve: usize) -> Vec<u8> {
    let configuration = &snapshot.meta.configuration;
    let voters_only = configuration.outgoing.is_empty() && configuration.learners.is_empty();
    let sets: &[&BTreeSet<NodeId>] = if voters_only {
        &[&configuration.voters]
    } else {
        &[
            &configuration.voters,
            &configuration.outgoing,
            &configuration.learners,
        ]
    };
    let ids: usize = sets.iter().map(|set| set.len()).sum();
    let mut out = Vec::with_capacity(64 + ids * 8 + data_reserve);
    out.put_slice(&SNAPSHOT_MAGIC);
    out.put_u32_le(if voters_only {
        VERSION_VOTERS_ONLY
    } else {
        VERSION_MEMBERSHIP
    });
    out.put_u32_le(0);
    out.put_u64_le(snapshot.meta.last_included.index.0);
    out.put_u64_le(snapshot.meta.last_included.term.0);
    for set in sets {
        out.put_u32_le(set.len() as u32);
        for node in *set {
            out.put_u64_le(node.0);
        }
    }
    out.put_u64_le(snapshot.data.len() as u64);
    out
}

/// Decodes the contents of the snapshot file at `path`.
pub(crate) fn decode(path: &Path, contents: Vec<u8>) -> Result<Snapshot> {
    let corrupt = |offset: usize, reason: &str| WalError::corrupt(path, offset as u64, reason);
    let total = contents.len();
    if total < 8 + 4 + 4 + 16 + 4 + 8 + 4 {
        return Err(corrupt(0, "snapshot file is shorter than its header"));
    }
    if contents[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "bad snapshot magic number"));
    }
    let stored_crc = u32::from_le_bytes(contents[total - 4..].try_into().expect("four bytes"));
    if checksum::crc32c(&contents[..total - 4]) != stored_crc {
        return Err(corrupt(total - 4, "snapshot checksum mismatch"));
    }
    let contents = Bytes::from(contents);
    let mut cursor = contents.slice(8..total - 4);
    let version = cursor.get_u32_le();
    if version != VERSION_VOTERS_ONLY && version != VERSION_MEMBERSHIP {
        return Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: VERSION_MEMBERSHIP,
        });
    }
    let _reserved = cursor.get_u32_le();
    let index = Index(cursor.get_u64_le());
    let term = Term(cursor.get_u64_le());
    let read_set = |cursor: &mut Bytes, what: &str| {
        let offset = total - 4 - cursor.remaining();
        if cursor.remaining() < 4 {
            return Err(corrupt(
                offset,
                &format!("{what} count runs past the end of the file"),
            ));
        }
        let count = cursor.get_u32_le() as usize;
        // The data length follows every set.
        if cursor.remaining() < count.saturating_mul(8).saturating_add(8) {
            return Err(corrupt(
                offset,
                &format!("{what} count runs past the end of the file"),
            ));
        }
        Ok((0..count)
            .map(|_| NodeId(cursor.get_u64_le()))
            .collect::<BTreeSet<NodeId>>())
    };
    let voters = read_set(&mut cursor, "voter")?;
    let (outgoing, learners) = if version == VERSION_MEMBERSHIP {
        (
            read_set(&mut cursor, "outgoing voter")?,
            read_set(&mut cursor, "learner")?,
        )
    } else {
        Default::default()
    };
    let configuration = Configuration {
        voters,
        outgoing,
        learners,
    };
    if let Err(error) = configuration.validate() {
        return Err(corrupt(36, &format!("invalid configuration: {error}")));
    }
    if cursor.remaining() < 8 {
        return Err(corrupt(
            total - 4,
            "data length runs past the end of the file",
        ));
    }
    let data_len = cursor.get_u64_le();
    if data_len != cursor.remaining() as u64 {
        return Err(corrupt(
            total - 4 - cursor.remaining(),
            "data length disagrees with the file size",
        ));
    }
    Ok(Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::new(term, index),
            configuration,
        },
        data: cursor,
    })
}

/// Writes `snapshot` durably into `dir`: temporary file, fsync, rename, directory fsync.
/// Returns the final path.
pub(crate) fn write(syncer: Syncer, dir: &Path, snapshot: &Snapshot) -> Result<PathBuf> {
    let name = file_name(snapshot.meta.last_included);
    let final_path = dir.join(&name);
    let temporary_path = dir.join(format!("{name}.tmp"));
    // Written through the log itself: at the disk's speed (only staged files are paced).
    write_unnamed(syncer, &temporary_path, snapshot, 0)?;
    fs::rename(&temporary_path, &final_path)
        .map_err(|error| WalError::io("rename snapshot", &final_path, error))?;
    syncer.dir(dir)?;
    Ok(final_path)
}

/// Writes `snapshot`'s file at `path` (a temporary name) and fsyncs it. The directory entry is
/// not made durable: the rename that gives the file its final name, followed by a directory
/// fsync, does that.
pub(crate) fn write_unnamed(
    syncer: Syncer,
    path: &Path,
    snapshot: &Snapshot,
    bytes_per_second: u64,
) -> Result<()> {
    // The same bytes as `encode`, without a copy of the data (tens of megabytes).
    let header = encode_header(snapshot, 0);
    let crc = checksum::crc32c_append(checksum::crc32c(&header), &snapshot.data);
    let mut file =
        File::create(path).map_err(|error| WalError::io("create snapshot", path, error))?;
    syncer.write_behind(
        &mut file,
        path,
        &[&header[..], &snapshot.data[..], &crc.to_le_bytes()],
        "write snapshot",
        bytes_per_second,
    )
}

/// Gives the staged snapshot through `id` in `dir` its final name and makes that durable
/// (directory fsync). False, with nothing changed, if no staged file is there.
pub(crate) fn rename_staged(syncer: Syncer, dir: &Path, id: LogId) -> Result<bool> {
    let staged_path = dir.join(staged_file_name(id));
    let final_path = dir.join(file_name(id));
    match fs::rename(&staged_path, &final_path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(WalError::io("rename staged snapshot", &final_path, error)),
    }
    syncer.dir(dir)?;
    Ok(true)
}

/// Reads and verifies the snapshot file at `path`.
pub(crate) fn read(path: &Path) -> Result<Snapshot> {
    let mut contents = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut contents))
        .map_err(|error| WalError::io("read snapshot", path, error))?;
    let snapshot = decode(path, contents)?;
    let named = parse_file_name(
        path.file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default(),
    );
    if named != Some(snapshot.meta.last_included) {
        return Err(WalError::corrupt(
            path,
            16,
            format!(
                "snapshot covers {} but its file name says otherwise",
                snapshot.meta.last_included
            ),
        ));
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                last_included: LogId::new(Term(4), Index(120)),
                configuration: Configuration::new([NodeId(1), NodeId(2), NodeId(3)]),
            },
            data: Bytes::from_static(b"state machine bytes"),
        }
    }

    #[test]
    fn snapshot_file_roundtrip() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = write(Syncer::new(true), dir.path(), &sample()).expect("written");
        assert_eq!(
            parse_file_name(&file_name(LogId::new(Term(4), Index(120)))),
            Some(LogId::new(Term(4), Index(120)))
        );
        assert_eq!(read(&path).expect("read back"), sample());
        assert!(!dir
            .path()
            .join(format!(
                "{}.tmp",
                file_name(LogId::new(Term(4), Index(120)))
            ))
            .exists());
    }

    #[test]
    fn a_staged_name_is_a_temporary_one_and_parses_back() {
        let id = LogId::new(Term(4), Index(120));
        let name = staged_file_name(id);
        assert!(name.ends_with(TEMPORARY_SUFFIX), "{name}");
        assert_eq!(parse_staged_file_name(&name), Some(id));
        assert_eq!(parse_file_name(&name), None, "never read as a snapshot");
        assert_eq!(parse_staged_file_name(&file_name(id)), None);
        assert_eq!(
            parse_staged_file_name(&format!("{}.tmp", file_name(id))),
            None
        );
    }

    fn sample_with_membership() -> Snapshot {
        let mut snapshot = sample();
        snapshot.meta.configuration = Configuration {
            voters: [NodeId(1), NodeId(2), NodeId(4)].into_iter().collect(),
            outgoing: [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect(),
            learners: [NodeId(5)].into_iter().collect(),
        };
        snapshot
    }

    /// The file is written in parts (no copy of the data), and holds exactly `encode`'s bytes.
    #[test]
    fn the_written_file_holds_the_encoded_bytes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        for snapshot in [sample(), sample_with_membership()] {
            let path = write(Syncer::new(true), dir.path(), &snapshot).expect("written");
            assert_eq!(fs::read(&path).expect("readable"), encode(&snapshot));
        }
    }

    #[test]
    fn joint_and_learner_state_roundtrips_in_version_2() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let snapshot = sample_with_membership();
        let path = write(Syncer::new(true), dir.path(), &snapshot).expect("written");
        let contents = fs::read(&path).expect("readable");
        assert_eq!(contents[8..12], VERSION_MEMBERSHIP.to_le_bytes());
        assert_eq!(read(&path).expect("read back"), snapshot);
        // Only learners, no joint state: still version 2.
        let mut learners_only = sample();
        learners_only.meta.configuration.learners.insert(NodeId(9));
        let decoded = decode(Path::new("x.snap"), encode(&learners_only)).expect("decodes");
        assert_eq!(decoded, learners_only);
    }

    #[test]
    fn voters_only_snapshots_are_written_in_version_1_as_before() {
        let contents = encode(&sample());
        assert_eq!(contents[8..12], VERSION_VOTERS_ONLY.to_le_bytes());
        // The exact bytes a build before membership changes wrote.
        let mut expected = Vec::new();
        expected.extend_from_slice(b"RAFTSNAP");
        expected.extend_from_slice(&1u32.to_le_bytes());
        expected.extend_from_slice(&0u32.to_le_bytes());
        expected.extend_from_slice(&120u64.to_le_bytes());
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(&3u32.to_le_bytes());
        for voter in 1..=3u64 {
            expected.extend_from_slice(&voter.to_le_bytes());
        }
        let data = b"state machine bytes";
        expected.extend_from_slice(&(data.len() as u64).to_le_bytes());
        expected.extend_from_slice(data);
        let crc = checksum::crc32c(&expected);
        expected.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(contents, expected);
        assert_eq!(
            decode(Path::new("x.snap"), expected).expect("version 1 reads"),
            sample()
        );
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut contents = encode(&sample());
        contents[8..12].copy_from_slice(&3u32.to_le_bytes());
        let total = contents.len();
        let crc = checksum::crc32c(&contents[..total - 4]);
        contents[total - 4..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode(Path::new("x.snap"), contents),
            Err(WalError::UnsupportedVersion { found: 3, .. })
        ));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        for snapshot in [sample(), sample_with_membership()] {
            every_flipped_byte_is_detected_in(&snapshot);
        }
    }

    fn every_flipped_byte_is_detected_in(snapshot: &Snapshot) {
        let contents = encode(snapshot);
        for byte in 0..contents.len() {
            let mut damaged = contents.clone();
            damaged[byte] ^= 0x01;
            assert!(
                decode(Path::new("x.snap"), damaged).is_err(),
                "flip in byte {byte} is detected"
            );
        }
        for cut in 0..contents.len() {
            assert!(
                decode(Path::new("x.snap"), contents[..cut].to_vec()).is_err(),
                "cut at {cut}"
            );
        }
    }
}
