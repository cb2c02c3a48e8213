//! The snapshot file `raftkv snapshot save` writes and `restore` reads: the state machine's
//! snapshot (store/snapshot.rs) behind a header that says what it is and how to check it.
//!
//! ```text
//!  magic          16 bytes  "raftkv-snapshot\n"
//!  format         u32 LE    SNAPSHOT_FILE_FORMAT (1)
//!  header_len     u32 LE    at most HEADER_BYTES_MAX
//!  header         JSON      SnapshotHeader: index, term, cluster id, members, revision,
//!                           body length, the body's SHA-256 ...
//!  header_crc     u32 LE    CRC-32C of the header's bytes
//!  body           body_bytes bytes: the state machine's snapshot at `index`
//! ```
//!
//! The header is JSON so that an operator can read it with `head -c`; its CRC catches damage
//! to it, the body's SHA-256 (in the header) damage to the body. A node serves this same
//! layout on `GET /v1/snapshot`, so a download is written as it arrives and checked with
//! [`SnapshotVerifier`] on the way.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The first bytes of every snapshot file.
pub const SNAPSHOT_FILE_MAGIC: &[u8; 16] = b"raftkv-snapshot\n";

/// The layout this build writes and reads.
pub const SNAPSHOT_FILE_FORMAT: u32 = 1;

/// Largest header accepted, in bytes: a header lists the members, so a few kilobytes at most;
/// a length beyond this is damage, not a header.
pub const HEADER_BYTES_MAX: u32 = 1 << 20;

/// Bytes before the header: the magic, the format and the header's length.
const PREFIX_BYTES: usize = SNAPSHOT_FILE_MAGIC.len() + 4 + 4;

/// A member of the configuration the snapshot was taken in, as the serving node knew it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMember {
    /// The node's id.
    pub id: u64,
    /// Whether it votes (else a learner).
    pub voter: bool,
    /// Its Raft address, when the serving node knew it.
    pub raft_address: Option<String>,
}

/// What a snapshot file holds, besides the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The log index the state is at: every entry through it is applied, none after.
    pub index: u64,
    /// The serving node's term when it took the snapshot: at least the term of the entry at
    /// `index`, so a log restored from it starts after that entry in a term no older.
    pub term: u64,
    /// The cluster id of the cluster it was taken from.
    pub cluster_id: String,
    /// The node that served it.
    pub node_id: u64,
    /// The configuration at the time, as the serving node knew it (for the record: a restore
    /// names the new cluster's members itself).
    pub members: Vec<SnapshotMember>,
    /// The store's revision at `index`.
    pub revision: u64,
    /// The oldest revision still readable at `index`.
    pub compact_revision: u64,
    /// Keys that exist at `index`.
    pub keys: u64,
    /// Leases held at `index`.
    pub leases: u64,
    /// Client sessions held at `index` (exactly-once writes).
    pub sessions: u64,
    /// When it was taken, in milliseconds since the Unix epoch (the serving node's clock).
    pub taken_unix_ms: u64,
    /// Bytes of the body.
    pub body_bytes: u64,
    /// SHA-256 of the body, in lowercase hexadecimal.
    pub body_sha256: String,
}

impl SnapshotHeader {
    /// `index=I term=T revision=R keys=K leases=L sessions=S`: what the commands print of it.
    pub fn figures(&self) -> String {
        format!(
            "index={} term={} revision={} keys={} leases={} sessions={}",
            self.index, self.term, self.revision, self.keys, self.leases, self.sessions
        )
    }
}

/// Why bytes are not a usable snapshot file.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapshotFileError {
    /// The file does not start with [`SNAPSHOT_FILE_MAGIC`].
    #[error("not a raftkv snapshot file (it does not start with the snapshot magic)")]
    NotASnapshot,
    /// A layout this build does not read.
    #[error("snapshot file format {0} is not supported (this build reads {SNAPSHOT_FILE_FORMAT})")]
    UnsupportedFormat(u32),
    /// The header's length is beyond [`HEADER_BYTES_MAX`].
    #[error("damaged snapshot file: a header of {0} bytes (at most {HEADER_BYTES_MAX})")]
    HeaderTooLarge(u32),
    /// The header's bytes do not match their CRC.
    #[error("damaged snapshot file: the header's checksum does not match (byte offsets {PREFIX_BYTES} to {end})")]
    HeaderChecksum {
        /// Where the header ends.
        end: usize,
    },
    /// The header's CRC matches but it does not parse (written by something else).
    #[error("snapshot file header does not parse: {0}")]
    HeaderUndecodable(String),
    /// The file ends before its header says it does.
    #[error("truncated snapshot file: {found} bytes of {expected}")]
    Truncated {
        /// The file's length its header implies (or the bytes needed to read the header).
        expected: u64,
        /// The bytes there are.
        found: u64,
    },
    /// Bytes follow the body.
    #[error("damaged snapshot file: {0} bytes after the end its header gives")]
    TrailingBytes(u64),
    /// The body's SHA-256 is not the header's.
    #[error("damaged snapshot file: the body's SHA-256 is {found}, the header says {expected}")]
    BodyChecksum {
        /// The header's.
        expected: String,
        /// The body's.
        found: String,
    },
}

/// The bytes that go before the body: magic, format, header and its CRC.
pub fn encode_head(header: &SnapshotHeader) -> Vec<u8> {
    // A struct of numbers, strings and a list: serializing it cannot fail.
    let json = serde_json::to_vec(header).unwrap_or_default();
    assert!(!json.is_empty(), "a snapshot header serializes");
    let header_len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    assert!(header_len <= HEADER_BYTES_MAX, "a snapshot header fits");
    let mut head = Vec::with_capacity(PREFIX_BYTES + json.len() + 4);
    head.extend_from_slice(SNAPSHOT_FILE_MAGIC);
    head.extend_from_slice(&SNAPSHOT_FILE_FORMAT.to_le_bytes());
    head.extend_from_slice(&header_len.to_le_bytes());
    head.extend_from_slice(&json);
    head.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
    head
}

/// The SHA-256 of `body` in lowercase hexadecimal, as [`SnapshotHeader::body_sha256`] holds it.
pub fn sha256_hex(body: &[u8]) -> String {
    hex_of(&Sha256::digest(body))
}

fn hex_of(digest: &[u8]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Checks a snapshot file as its bytes come, in any pieces: the header once it is whole, then
/// the body's length and SHA-256 at [`SnapshotVerifier::finish`]. Holds only the header.
#[derive(Debug)]
pub struct SnapshotVerifier {
    /// The bytes so far while the header is incomplete.
    head: Vec<u8>,
    /// The header, once read whole and checked.
    header: Option<SnapshotHeader>,
    body_hash: Sha256,
    body_seen: u64,
    /// Bytes seen in all.
    total: u64,
}

impl Default for SnapshotVerifier {
    fn default() -> Self {
        SnapshotVerifier::new()
    }
}

impl SnapshotVerifier {
    /// A verifier that has seen nothing.
    pub fn new() -> SnapshotVerifier {
        SnapshotVerifier {
            head: Vec::new(),
            header: None,
            body_hash: Sha256::new(),
            body_seen: 0,
            total: 0,
        }
    }

    /// The header, once its bytes arrived and checked out.
    pub fn header(&self) -> Option<&SnapshotHeader> {
        self.header.as_ref()
    }

    /// Takes the next bytes of the file; an error as soon as they show it is damaged.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), SnapshotFileError> {
        self.total += bytes.len() as u64;
        let body_bytes = loop {
            if let Some(header) = &self.header {
                break header.body_bytes;
            }
            let wanted = self.head_bytes_wanted()?;
            if self.head.len() >= wanted {
                self.header = Some(self.parse_head()?);
                self.head = Vec::new();
                continue;
            }
            if bytes.is_empty() {
                return Ok(());
            }
            let taken = (wanted - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..taken]);
            bytes = &bytes[taken..];
        };
        let room = body_bytes - self.body_seen;
        if bytes.len() as u64 > room {
            return Err(SnapshotFileError::TrailingBytes(bytes.len() as u64 - room));
        }
        self.body_hash.update(bytes);
        self.body_seen += bytes.len() as u64;
        Ok(())
    }

    /// The header once every byte arrived: an error unless the file was whole and its body's
    /// length and checksum are the header's.
    pub fn finish(self) -> Result<SnapshotHeader, SnapshotFileError> {
        let Some(header) = self.header else {
            let expected = self.head_bytes_wanted()? as u64;
            return Err(SnapshotFileError::Truncated {
                expected: expected.max(PREFIX_BYTES as u64 + 4),
                found: self.total,
            });
        };
        if self.body_seen < header.body_bytes {
            return Err(SnapshotFileError::Truncated {
                expected: self.total - self.body_seen + header.body_bytes,
                found: self.total,
            });
        }
        let found = hex_of(&self.body_hash.finalize());
        if found != header.body_sha256 {
            return Err(SnapshotFileError::BodyChecksum {
                expected: header.body_sha256,
                found,
            });
        }
        Ok(header)
    }

    /// How many bytes the head (everything before the body) takes, as far as known: the
    /// prefix until it is in, then the prefix, the header and its CRC.
    fn head_bytes_wanted(&self) -> Result<usize, SnapshotFileError> {
        // The magic is checked as soon as its bytes are in, so that a file of another kind is
        // named as such rather than as truncated or damaged.
        let magic_seen = self.head.len().min(SNAPSHOT_FILE_MAGIC.len());
        if self.head[..magic_seen] != SNAPSHOT_FILE_MAGIC[..magic_seen] {
            return Err(SnapshotFileError::NotASnapshot);
        }
        if self.head.len() < PREFIX_BYTES {
            return Ok(PREFIX_BYTES);
        }
        let format = read_u32(&self.head, SNAPSHOT_FILE_MAGIC.len());
        if format != SNAPSHOT_FILE_FORMAT {
            return Err(SnapshotFileError::UnsupportedFormat(format));
        }
        let header_len = read_u32(&self.head, SNAPSHOT_FILE_MAGIC.len() + 4);
        if header_len > HEADER_BYTES_MAX {
            return Err(SnapshotFileError::HeaderTooLarge(header_len));
        }
        Ok(PREFIX_BYTES + header_len as usize + 4)
    }

    /// The header of the complete head.
    fn parse_head(&self) -> Result<SnapshotHeader, SnapshotFileError> {
        let end = self.head.len() - 4;
        let json = &self.head[PREFIX_BYTES..end];
        if crc32c::crc32c(json) != read_u32(&self.head, end) {
            return Err(SnapshotFileError::HeaderChecksum { end });
        }
        serde_json::from_slice(json)
            .map_err(|error| SnapshotFileError::HeaderUndecodable(error.to_string()))
    }
}

/// The little-endian `u32` at `offset` of `bytes` (the caller checked the length).
fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

/// A whole snapshot file's header and body, checked.
pub fn decode(file: &Bytes) -> Result<(SnapshotHeader, Bytes), SnapshotFileError> {
    let mut verifier = SnapshotVerifier::new();
    verifier.push(file)?;
    let header = verifier.finish()?;
    // `finish` checked the body is the file's last `body_bytes` bytes.
    let body_start = file.len() - header.body_bytes as usize;
    Ok((header, file.slice(body_start..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(body: &[u8]) -> SnapshotHeader {
        SnapshotHeader {
            index: 42,
            term: 3,
            cluster_id: "raftkv".into(),
            node_id: 2,
            members: vec![SnapshotMember {
                id: 1,
                voter: true,
                raft_address: Some("127.0.0.1:9001".into()),
            }],
            revision: 17,
            compact_revision: 5,
            keys: 4,
            leases: 1,
            sessions: 2,
            taken_unix_ms: 1_700_000_000_000,
            body_bytes: body.len() as u64,
            body_sha256: sha256_hex(body),
        }
    }

    fn file(body: &[u8]) -> Vec<u8> {
        let mut file = encode_head(&header(body));
        file.extend_from_slice(body);
        file
    }

    #[test]
    fn a_file_reads_back_whole_and_in_pieces_of_any_size() {
        let body = b"the state machine's bytes".repeat(100);
        let bytes = file(&body);
        let (read, read_body) = decode(&Bytes::from(bytes.clone())).expect("whole");
        assert_eq!(read, header(&body));
        assert_eq!(&read_body[..], &body[..]);
        for piece in [1, 3, 7, 64, 4096] {
            let mut verifier = SnapshotVerifier::new();
            for chunk in bytes.chunks(piece) {
                verifier.push(chunk).expect("pieces");
            }
            assert_eq!(verifier.finish().expect("pieces"), header(&body));
        }
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let body = b"0123456789abcdef".repeat(8);
        let bytes = file(&body);
        for length in 0..bytes.len() {
            let error = decode(&Bytes::copy_from_slice(&bytes[..length])).expect_err("cut");
            assert!(
                matches!(
                    error,
                    SnapshotFileError::Truncated { .. } | SnapshotFileError::NotASnapshot
                ),
                "cut at {length}: {error}"
            );
        }
        for position in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[position] ^= 0x20;
            let error = decode(&Bytes::from(damaged));
            assert!(error.is_err(), "byte {position} flipped went unnoticed");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode(&Bytes::from(longer)),
            Err(SnapshotFileError::TrailingBytes(1))
        );
    }

    #[test]
    fn another_kind_of_file_is_named_as_such() {
        let error = decode(&Bytes::from_static(b"{\"not\": \"a snapshot\"}")).expect_err("json");
        assert_eq!(error, SnapshotFileError::NotASnapshot);
        let mut future = file(b"x");
        future[SNAPSHOT_FILE_MAGIC.len()] = 9;
        assert_eq!(
            decode(&Bytes::from(future)),
            Err(SnapshotFileError::UnsupportedFormat(9))
        );
    }
}
