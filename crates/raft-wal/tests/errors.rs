//! Opening or writing a log where the file system says no: the error is `WalError::Io` naming
//! the file or directory involved, and a failed write stops the log.
//!
//! File permissions do not apply to root (CAP_DAC_OVERRIDE), and tests here usually run as
//! root. Linux capabilities belong to a thread, so the permission tests run on a thread of
//! their own that drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its effective set; the
//! rest of the process keeps them. Where that is not possible the permission tests say so and
//! skip.

mod common;

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, NodeId, PersistRequest, Storage, Term,
};
use raft_wal::{Wal, WalError, WalOptions};

use common::newest_segment;

fn voters() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

fn entry(index: u64) -> Entry {
    Entry {
        id: LogId::new(Term(1), Index(index)),
        kind: EntryKind::Normal,
        data: Bytes::from(format!("command {index}")),
    }
}

fn append(index: u64) -> PersistRequest {
    PersistRequest {
        id: index,
        snapshot: None,
        entries: vec![entry(index)],
        hard_state: None,
    }
}

/// The path and OS error of an `Io` error, or a panic describing what came instead.
fn io_error<T: std::fmt::Debug>(
    result: Result<T, WalError>,
) -> (&'static str, PathBuf, std::io::Error) {
    match result {
        Err(WalError::Io {
            operation,
            path,
            source,
        }) => (operation, path, source),
        other => panic!("expected WalError::Io, got {other:?}"),
    }
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn open_on_a_regular_file_names_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("not-a-directory");
    fs::write(&file, b"hello").expect("file written");
    let result = Wal::open(&file, voters(), WalOptions::default());
    let message = format!("{:?}", result.as_ref().err());
    let (operation, path, source) = io_error(result);
    assert!(
        path.starts_with(&file),
        "{operation} names {path:?}, not under {file:?}"
    );
    assert_eq!(source.kind(), ErrorKind::NotADirectory, "{message}");
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert_eq!(
        fs::read(&file).expect("file still there"),
        b"hello",
        "the file is left alone"
    );
}

#[test]
fn open_below_a_regular_file_names_the_path() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("not-a-directory");
    fs::write(&file, b"hello").expect("file written");
    let data = file.join("data");
    let (operation, path, source) = io_error(Wal::open(&data, voters(), WalOptions::default()));
    assert_eq!(path, data, "{operation}");
    assert_eq!(source.kind(), ErrorKind::NotADirectory);
}

/// Linux capability sets, as the `capget`/`capset` system calls take them.
#[repr(C)]
struct CapabilityHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapabilityData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;

/// Drops the permission overrides from the calling thread's effective capabilities.
fn drop_permission_override() -> std::io::Result<()> {
    let mut header = CapabilityHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapabilityData::default(); 2];
    // SAFETY: the header and two data structs are the layout capget(2) and capset(2) take for
    // version 3; pid 0 is the calling thread.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        data[0].effective &= !((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH));
        if libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Runs `test` where file permissions apply: directly for a user other than root, on a thread
/// without the permission overrides for root. `None` if that cannot be arranged.
fn with_permissions_enforced<T: Send>(test: impl FnOnce() -> T + Send) -> Option<T> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(test());
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| match drop_permission_override() {
                Ok(()) => Some(test()),
                Err(error) => {
                    eprintln!("skipped: cannot drop CAP_DAC_OVERRIDE on this thread: {error}");
                    None
                }
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[test]
fn open_without_permission_names_the_path() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let read_only = dir.path().join("read-only");
    fs::create_dir(&read_only).expect("directory created");
    set_mode(&read_only, 0o500);
    let outcome = with_permissions_enforced(|| {
        // A directory the log cannot create its lock file in.
        let (operation, path, source) =
            io_error(Wal::open(&read_only, voters(), WalOptions::default()));
        assert_eq!(path, read_only.join("LOCK"), "{operation}");
        assert_eq!(source.kind(), ErrorKind::PermissionDenied);
        // A new directory inside it.
        let data = read_only.join("data");
        let (operation, path, source) = io_error(Wal::open(&data, voters(), WalOptions::default()));
        assert_eq!(path, data, "{operation}");
        assert_eq!(source.kind(), ErrorKind::PermissionDenied);
    });
    set_mode(&read_only, 0o700);
    if outcome.is_none() {
        eprintln!("open_without_permission_names_the_path: skipped");
    }
}

#[test]
fn open_with_an_unwritable_segment_names_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = Wal::open(dir.path(), voters(), WalOptions::default()).expect("opens");
    wal.persist(append(1)).expect("durable");
    drop(wal);
    let segment = dir.path().join(format!("{:020}.wal", 1));
    assert!(segment.is_file(), "the first segment is {segment:?}");
    set_mode(&segment, 0o400);
    let outcome = with_permissions_enforced(|| {
        let (operation, path, source) =
            io_error(Wal::open(dir.path(), voters(), WalOptions::default()));
        assert_eq!(path, segment, "{operation}");
        assert_eq!(source.kind(), ErrorKind::PermissionDenied);
    });
    set_mode(&segment, 0o600);
    if outcome.is_none() {
        eprintln!("open_with_an_unwritable_segment_names_it: skipped");
    }
    let wal = Wal::open(dir.path(), voters(), WalOptions::default()).expect("opens once writable");
    assert_eq!(wal.storage().last_index(), Ok(Index(1)));
}

/// A directory that turns read-only while the log is open: the next segment cannot be
/// created, the write fails naming it, and the log stops.
#[test]
fn segment_roll_into_a_read_only_directory_stops_the_log() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = WalOptions {
        // Every write after the first starts a new segment.
        segment_bytes_max: 1,
        ..WalOptions::default()
    };
    let outcome = with_permissions_enforced(|| {
        let mut wal = Wal::open(dir.path(), voters(), options.clone()).expect("opens");
        wal.persist(append(1)).expect("durable");
        let next_segment = dir
            .path()
            .join(format!("{:020}.wal", newest_segment(dir.path()) + 1));
        set_mode(dir.path(), 0o500);
        let result = wal.persist(append(2));
        set_mode(dir.path(), 0o700);
        let (operation, path, source) = io_error(result);
        assert_eq!(path, next_segment, "{operation}");
        assert_eq!(source.kind(), ErrorKind::PermissionDenied);
        let after = wal.persist(append(2));
        assert!(matches!(after, Err(WalError::Stopped(_))), "{after:?}");
        assert_eq!(
            wal.storage().last_index(),
            Ok(Index(1)),
            "nothing of the failed write is visible"
        );
        drop(wal);
        let mut wal = Wal::open(dir.path(), voters(), options.clone()).expect("reopens");
        assert_eq!(wal.storage().last_index(), Ok(Index(1)));
        wal.persist(append(2)).expect("writable again");
        assert_eq!(
            wal.storage().entries(Index(1), Index(3), u64::MAX),
            Ok(vec![entry(1), entry(2)])
        );
    });
    set_mode(dir.path(), 0o700);
    if outcome.is_none() {
        eprintln!("segment_roll_into_a_read_only_directory_stops_the_log: skipped");
    }
}
