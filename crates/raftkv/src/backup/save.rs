//! `raftkv snapshot save FILE`: a node's state, online, to a file.
//!
//! ```text
//!  Client::download_snapshot (any node that answers; admin token)
//!    ─► every chunk: SnapshotVerifier::push (damage stops it at once) and FILE.tmp
//!    ─► SnapshotVerifier::finish (whole: length and SHA-256 as the header says)
//!    ─► fsync FILE.tmp ─► rename to FILE ─► fsync the directory
//!  any failure: FILE.tmp removed, FILE untouched
//! ```

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use raftkv_client::Client;

use super::data_dir::{parent_of, sync_dir};
use super::file::{SnapshotHeader, SnapshotVerifier};
use super::{io_error, BackupError};

/// What a save wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// The file's header.
    pub header: SnapshotHeader,
    /// The file's bytes.
    pub file_bytes: u64,
    /// The node that served it.
    pub endpoint: String,
}

impl std::fmt::Display for Saved {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "saved {} bytes={} sha256={} node={} endpoint={}",
            self.header.figures(),
            self.file_bytes,
            self.header.body_sha256,
            self.header.node_id,
            self.endpoint
        )
    }
}

/// `FILE.tmp`: where a download goes until it is checked.
fn temporary_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Runs `raftkv snapshot save FILE` with `client`.
pub async fn run(client: &Client, file: &Path) -> Result<Saved, BackupError> {
    let temporary = temporary_path(file);
    let saved = download_to(client, file, &temporary).await;
    if saved.is_err() {
        // Best effort: what is left is a partial download, named as such.
        let _ = std::fs::remove_file(&temporary);
    }
    saved
}

async fn download_to(client: &Client, file: &Path, temporary: &Path) -> Result<Saved, BackupError> {
    let mut download = client.download_snapshot().await?;
    let mut out = File::create(temporary).map_err(io_error("create", temporary))?;
    let mut verifier = SnapshotVerifier::new();
    let mut file_bytes = 0u64;
    let damaged = |error| BackupError::File {
        path: PathBuf::from(download_name(file)),
        error,
    };
    while let Some(chunk) = download.next_chunk().await? {
        verifier.push(&chunk).map_err(damaged)?;
        // Small writes to a local file: not worth a blocking-pool hop per chunk in a command
        // that does nothing else meanwhile.
        out.write_all(&chunk)
            .map_err(io_error("write", temporary))?;
        file_bytes += chunk.len() as u64;
    }
    let header = verifier.finish().map_err(damaged)?;
    out.sync_all().map_err(io_error("sync", temporary))?;
    drop(out);
    std::fs::rename(temporary, file).map_err(io_error("rename into place", file))?;
    sync_dir(&parent_of(file))?;
    Ok(Saved {
        header,
        file_bytes,
        endpoint: download.endpoint().to_string(),
    })
}

/// How a download is named in errors: the file it was meant to become.
fn download_name(file: &Path) -> String {
    format!("the download for {}", file.display())
}
