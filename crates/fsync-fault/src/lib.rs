//! An `LD_PRELOAD` shim that makes `fsync` and `fdatasync` misbehave on command, for the chaos
//! suite's `fsync` nemesis.
//!
//! ```text
//!  write / writev / pwrite(64) / pwritev(64) ─► the real call, then note the bytes written
//!                                               per descriptor since its last real sync
//!  fsync / fdatasync ─► read the control file ─► pass: the real call (forget the noted bytes)
//!                                              ─► fail: -1 with errno EIO, nothing synced
//!                                              ─► lie:  0 without syncing; append the noted
//!                                                 range to the ledger ("START END PATH")
//!  close ─► forget the descriptor
//! ```
//!
//! It does nothing unless `RAFTKV_FSYNC_FAULT_CONTROL` names a control file. That file holds one
//! word, `pass`, `fail` or `lie` (missing or anything else: `pass`); it is read at every sync,
//! so a harness switches one process's behaviour by rewriting it. `RAFTKV_FSYNC_FAULT_LEDGER`
//! names the ledger, where a lie records the byte ranges it pretended to make durable: a
//! harness that kills the process and then zeroes those ranges has simulated the power loss
//! that makes a lie matter. Only file contents are modelled: a lied directory fsync (of a
//! rename or a new file's entry) is taken as durable anyway.
//!
//! The shim works on programs whose `fsync`/`fdatasync` go through the C library's exported
//! symbols, as Rust's `File::sync_all` and `File::sync_data` do on Linux with glibc.
//! `sync_file_range`, `syncfs` and `O_SYNC`/`O_DSYNC` writes are not intercepted (raft-wal
//! uses none of them).

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use libc::{c_int, c_void, iovec, off_t, size_t, ssize_t};

/// The environment variable naming the control file.
pub const CONTROL_ENV: &str = "RAFTKV_FSYNC_FAULT_CONTROL";
/// The environment variable naming the ledger of lied ranges.
pub const LEDGER_ENV: &str = "RAFTKV_FSYNC_FAULT_LEDGER";

/// What a sync does, as the control file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The real call.
    Pass,
    /// Fails with `EIO`, syncing nothing.
    Fail,
    /// Returns success without syncing.
    Lie,
}

impl Mode {
    /// The word the control file holds for this mode.
    pub fn word(self) -> &'static str {
        match self {
            Mode::Pass => "pass",
            Mode::Fail => "fail",
            Mode::Lie => "lie",
        }
    }

    /// Reads a control file's contents; anything unknown is `Pass`.
    pub fn parse(text: &str) -> Mode {
        match text.trim() {
            "fail" => Mode::Fail,
            "lie" => Mode::Lie,
            _ => Mode::Pass,
        }
    }
}

struct Settings {
    control: std::path::PathBuf,
    ledger: Option<std::path::PathBuf>,
}

/// `None` when the shim is loaded but not asked to do anything.
fn settings() -> Option<&'static Settings> {
    static SETTINGS: OnceLock<Option<Settings>> = OnceLock::new();
    SETTINGS
        .get_or_init(|| {
            let control = std::env::var_os(CONTROL_ENV)?;
            Some(Settings {
                control: control.into(),
                ledger: std::env::var_os(LEDGER_ENV).map(Into::into),
            })
        })
        .as_ref()
}

/// Bytes written per descriptor since its last real sync: (first, one past the last).
fn unsynced() -> std::sync::MutexGuard<'static, HashMap<c_int, (u64, u64)>> {
    static UNSYNCED: OnceLock<Mutex<HashMap<c_int, (u64, u64)>>> = OnceLock::new();
    UNSYNCED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn note_written(fd: c_int, offset: i64, written: ssize_t) {
    if written <= 0 || offset < 0 || settings().is_none() {
        return;
    }
    let (start, end) = (offset as u64, offset as u64 + written as u64);
    unsynced()
        .entry(fd)
        .and_modify(|range| *range = (range.0.min(start), range.1.max(end)))
        .or_insert((start, end));
}

fn current_mode(settings: &Settings) -> Mode {
    std::fs::read_to_string(&settings.control).map_or(Mode::Pass, |text| Mode::parse(&text))
}

/// Records the range `fd` wrote since its last real sync in the ledger, as a lie leaves it.
fn record_lie(settings: &Settings, fd: c_int) {
    let range = unsynced().remove(&fd);
    let (Some(ledger), Some((start, end))) = (&settings.ledger, range) else {
        return;
    };
    let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
        return;
    };
    let line = format!("{start} {end} {}\n", path.display());
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger)
    {
        // One write of the whole line, so lines from two threads never interleave.
        let _ = file.write_all(line.as_bytes());
    }
}

/// Looks up the next definition of `name` (the C library's) once, caching its address.
fn next_symbol(cache: &AtomicUsize, name: &CStr) -> usize {
    let cached = cache.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name only reads the loader's tables.
    let address = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    assert!(
        address != 0,
        "raftkv-fsync-fault: no next definition of {name:?}"
    );
    cache.store(address, Ordering::Relaxed);
    address
}

/// Declares an accessor for the real function `$name` of type `$type`.
macro_rules! real {
    ($accessor:ident, $name:literal, $type:ty) => {
        fn $accessor() -> $type {
            static CACHE: AtomicUsize = AtomicUsize::new(0);
            let address = next_symbol(&CACHE, $name);
            // SAFETY: the C library's symbol of that name has exactly this signature.
            unsafe { std::mem::transmute::<usize, $type>(address) }
        }
    };
}

type SyncFn = unsafe extern "C" fn(c_int) -> c_int;
type WriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
type WritevFn = unsafe extern "C" fn(c_int, *const iovec, c_int) -> ssize_t;
type PwriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t, off_t) -> ssize_t;
type PwritevFn = unsafe extern "C" fn(c_int, *const iovec, c_int, off_t) -> ssize_t;

real!(real_fsync, c"fsync", SyncFn);
real!(real_fdatasync, c"fdatasync", SyncFn);
real!(real_close, c"close", SyncFn);
real!(real_write, c"write", WriteFn);
real!(real_writev, c"writev", WritevFn);
real!(real_pwrite, c"pwrite", PwriteFn);
real!(real_pwrite64, c"pwrite64", PwriteFn);
real!(real_pwritev, c"pwritev", PwritevFn);
real!(real_pwritev64, c"pwritev64", PwritevFn);

/// A sync through `real`, or the fault the control file asks for.
fn sync_with(fd: c_int, real: SyncFn) -> c_int {
    let Some(settings) = settings() else {
        // SAFETY: the caller's own descriptor, passed through unchanged.
        return unsafe { real(fd) };
    };
    match current_mode(settings) {
        Mode::Pass => {
            // SAFETY: as above.
            let result = unsafe { real(fd) };
            if result == 0 {
                unsynced().remove(&fd);
            }
            result
        }
        Mode::Fail => {
            // SAFETY: errno is this thread's.
            unsafe { *libc::__errno_location() = libc::EIO };
            -1
        }
        Mode::Lie => {
            record_lie(settings, fd);
            0
        }
    }
}

/// The cursor of `fd`, or -1 when it has none (a socket or a pipe).
fn cursor(fd: c_int) -> i64 {
    if settings().is_none() {
        return -1;
    }
    // SAFETY: asks the kernel for the descriptor's position; changes nothing.
    unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }
}

/// Interposed `fsync(2)`.
///
/// # Safety
/// As the C function: `fd` is any integer; the call touches no memory of the caller's.
#[no_mangle]
pub unsafe extern "C" fn fsync(fd: c_int) -> c_int {
    sync_with(fd, real_fsync())
}

/// Interposed `fdatasync(2)`.
///
/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn fdatasync(fd: c_int) -> c_int {
    sync_with(fd, real_fdatasync())
}

/// Interposed `close(2)`: forgets the descriptor's unsynced bytes (its number may be reused).
///
/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if settings().is_some() {
        unsynced().remove(&fd);
    }
    real_close()(fd)
}

/// Interposed `write(2)`.
///
/// # Safety
/// As the C function: `buffer` holds `count` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buffer: *const c_void, count: size_t) -> ssize_t {
    let offset = cursor(fd);
    let written = real_write()(fd, buffer, count);
    note_written(fd, offset, written);
    written
}

/// Interposed `writev(2)`.
///
/// # Safety
/// As the C function: `vectors` points to `count` valid `iovec`s.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, vectors: *const iovec, count: c_int) -> ssize_t {
    let offset = cursor(fd);
    let written = real_writev()(fd, vectors, count);
    note_written(fd, offset, written);
    written
}

/// Interposed `pwrite(2)`.
///
/// # Safety
/// As the C function: `buffer` holds `count` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn pwrite(
    fd: c_int,
    buffer: *const c_void,
    count: size_t,
    offset: off_t,
) -> ssize_t {
    let written = real_pwrite()(fd, buffer, count, offset);
    note_written(fd, offset, written);
    written
}

/// Interposed `pwrite64(2)` (what Rust's `FileExt::write_at` calls).
///
/// # Safety
/// As the C function: `buffer` holds `count` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn pwrite64(
    fd: c_int,
    buffer: *const c_void,
    count: size_t,
    offset: off_t,
) -> ssize_t {
    let written = real_pwrite64()(fd, buffer, count, offset);
    note_written(fd, offset, written);
    written
}

/// Interposed `pwritev(2)`.
///
/// # Safety
/// As the C function: `vectors` points to `count` valid `iovec`s.
#[no_mangle]
pub unsafe extern "C" fn pwritev(
    fd: c_int,
    vectors: *const iovec,
    count: c_int,
    offset: off_t,
) -> ssize_t {
    let written = real_pwritev()(fd, vectors, count, offset);
    note_written(fd, offset, written);
    written
}

/// Interposed `pwritev64(2)`.
///
/// # Safety
/// As the C function: `vectors` points to `count` valid `iovec`s.
#[no_mangle]
pub unsafe extern "C" fn pwritev64(
    fd: c_int,
    vectors: *const iovec,
    count: c_int,
    offset: off_t,
) -> ssize_t {
    let written = real_pwritev64()(fd, vectors, count, offset);
    note_written(fd, offset, written);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_their_words() {
        for mode in [Mode::Pass, Mode::Fail, Mode::Lie] {
            assert_eq!(Mode::parse(&format!("{}\n", mode.word())), mode);
        }
        assert_eq!(Mode::parse("garbage"), Mode::Pass);
    }
}
