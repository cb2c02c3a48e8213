//! Snapshot files: written whole to a temporary name, fsynced, renamed into place and the
//! directory fsynced, so a snapshot file under its final name is always complete.
//!
//! ```text
//!  snapshot-<index>-<term>.snap :=
//!      magic "RAFTSNAP" | version u32 | reserved u32 | index u64 | term u64
//!      | voter_count u32 | voter u64 * voter_count | data_len u64 | data | crc u32 (of all before)
//! ```

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, Bytes};
use raft_core::{Configuration, Index, LogId, NodeId, Snapshot, SnapshotMeta, Term};

use crate::checksum;
use crate::codec::FORMAT_VERSION;
use crate::error::{Result, WalError};
use crate::fsutil::Syncer;

const SNAPSHOT_MAGIC: [u8; 8] = *b"RAFTSNAP";
const SUFFIX: &str = ".snap";
const PREFIX: &str = "snapshot-";
/// Suffix of a snapshot still being written; such files are never read and are removed at
/// start-up.
pub(crate) const TEMPORARY_SUFFIX: &str = ".snap.tmp";

/// The final name of the snapshot covering through `id`.
pub(crate) fn file_name(id: LogId) -> String {
    format!("{PREFIX}{:020}-{:020}{SUFFIX}", id.index.0, id.term.0)
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

/// Encodes a snapshot into its file contents.
fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let voters = &snapshot.meta.configuration.voters;
    let mut out = Vec::with_capacity(64 + voters.len() * 8 + snapshot.data.len());
    out.put_slice(&SNAPSHOT_MAGIC);
    out.put_u32_le(FORMAT_VERSION);
    out.put_u32_le(0);
    out.put_u64_le(snapshot.meta.last_included.index.0);
    out.put_u64_le(snapshot.meta.last_included.term.0);
    out.put_u32_le(voters.len() as u32);
    for voter in voters {
        out.put_u64_le(voter.0);
    }
    out.put_u64_le(snapshot.data.len() as u64);
    out.put_slice(&snapshot.data);
    let crc = checksum::crc32c(&out);
    out.put_u32_le(crc);
    out
}

/// Decodes the contents of the snapshot file at `path`.
fn decode(path: &Path, contents: Vec<u8>) -> Result<Snapshot> {
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
    if version != FORMAT_VERSION {
        return Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let _reserved = cursor.get_u32_le();
    let index = Index(cursor.get_u64_le());
    let term = Term(cursor.get_u64_le());
    let voter_count = cursor.get_u32_le() as usize;
    if cursor.remaining() < voter_count.saturating_mul(8).saturating_add(8) {
        return Err(corrupt(36, "voter count runs past the end of the file"));
    }
    let voters = (0..voter_count).map(|_| NodeId(cursor.get_u64_le()));
    let configuration = Configuration::new(voters);
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
    let contents = encode(snapshot);
    let mut file = File::create(&temporary_path)
        .map_err(|error| WalError::io("create snapshot", &temporary_path, error))?;
    file.write_all(&contents)
        .map_err(|error| WalError::io("write snapshot", &temporary_path, error))?;
    syncer.file(&file, &temporary_path, "fsync snapshot")?;
    drop(file);
    fs::rename(&temporary_path, &final_path)
        .map_err(|error| WalError::io("rename snapshot", &final_path, error))?;
    syncer.dir(dir)?;
    Ok(final_path)
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
    fn every_flipped_byte_is_detected() {
        let contents = encode(&sample());
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
