//! Recovery of a large log: how long [`raft_wal::Wal::open`] takes and how much memory it needs.
//!
//! ```text
//!  parent: df ─► write ~1 GiB (Appender) ─► drop the Wal
//!          ─► RUNS × child `raft-bench wal-recover <dir>` (page cache warm from the writes)
//!          ─► drop the page cache if allowed ─► child once more (cold) ─► delete the log
//!  child:  VmHWM ─► Wal::open ─► VmHWM, VmRSS, RecoveryReport, index bytes ─► one line
//! ```
//!
//! Recovery runs in a child process so that the writing phase's memory does not hide the
//! peak that recovery alone reaches.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use raft_core::{Index, Storage};

use super::{
    ok_or_panic, open_wal, remove_path, segment_bytes, spread, status_kib, Appender, ScratchDir,
    Settings, RUNS,
};

/// Free space the measurement needs on the scratch disk: the largest log with room to spare.
const FREE_BYTES_MIN: u64 = 5 << 30;
/// Name of the hidden subcommand the child runs.
const CHILD_COMMAND: &str = "wal-recover";
/// Prefix of the child's result line.
const RESULT_PREFIX: &str = "wal-recover-result";

/// A log to write and recover.
#[derive(Clone, Copy, Debug)]
struct Shape {
    entry_bytes: usize,
    batch_entries: u64,
}

/// Bytes available to an unprivileged user on the file system holding `dir`, from `df`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let output = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let available_kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(available_kib * 1024)
}

/// Empties the kernel's page cache (needs root); returns whether it worked.
fn drop_page_cache() -> bool {
    let synced = Command::new("sync")
        .status()
        .is_ok_and(|status| status.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "1\n").is_ok()
}

/// What the child reported, by key.
type ChildFigures = BTreeMap<String, u64>;

/// Recovers the log in `dir` in a child process and returns its figures.
fn recover_in_child(dir: &Path) -> ChildFigures {
    let program = ok_or_panic(std::env::current_exe(), || "find this program".into());
    let output = ok_or_panic(
        Command::new(&program).arg(CHILD_COMMAND).arg(dir).output(),
        || format!("run {} {CHILD_COMMAND}", program.display()),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{CHILD_COMMAND} {} failed ({}):\n{stdout}{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(RESULT_PREFIX))
        .unwrap_or_else(|| panic!("{CHILD_COMMAND} printed no result line:\n{stdout}"));
    line.split_whitespace()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("malformed result field {pair:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("malformed result value {pair:?}"));
            (key.to_string(), value)
        })
        .collect()
}

/// The hidden subcommand `wal-recover <dir>`: opens the log in `dir`, reads back its last
/// entry, and prints one line of `key=value` figures for the parent.
pub fn recover_child(args: &[String]) -> ExitCode {
    let [dir] = args else {
        eprintln!("usage: raft-bench {CHILD_COMMAND} <log directory>");
        return ExitCode::from(2);
    };
    let dir = Path::new(dir);
    let before_kib = status_kib("VmHWM").unwrap_or(0);
    let start = Instant::now();
    let wal = open_wal(dir);
    let open_ns = start.elapsed().as_nanos();
    let peak_kib = status_kib("VmHWM").unwrap_or(0);
    let resident_kib = status_kib("VmRSS").unwrap_or(0);
    let storage = wal.storage();
    let last = ok_or_panic(storage.last_index(), || "read the last index".into());
    let read_back = ok_or_panic(storage.entries(last, Index(last.0 + 1), u64::MAX), || {
        format!("read back entry {last}")
    });
    assert_eq!(read_back.len(), 1, "the last entry reads back");
    let report = wal.recovery_report();
    let index_bytes = ok_or_panic(storage.index_bytes(), || "read the index size".into());
    let cached_bytes = ok_or_panic(storage.cached_bytes(), || "read the cache size".into());
    println!(
        "{RESULT_PREFIX} open_ns={open_ns} segments={} records={} bytes_scanned={} entries={} \
         torn_tail_bytes={} last_index={} index_bytes={index_bytes} cached_bytes={cached_bytes} \
         hwm_before_kib={before_kib} hwm_after_kib={peak_kib} rss_after_kib={resident_kib}",
        report.segments,
        report.records,
        report.bytes_scanned,
        report.entries,
        report.torn_tail_bytes,
        last.0,
    );
    ExitCode::SUCCESS
}

/// Writes a log of `shape` entries holding `payload_bytes` of payload in `dir`; returns the
/// entries written.
fn write_log(dir: &Path, shape: Shape, payload_bytes: u64) -> u64 {
    let batches = payload_bytes.div_ceil(shape.entry_bytes as u64 * shape.batch_entries);
    let mut appender = Appender::new(open_wal(dir), shape.entry_bytes, shape.batch_entries);
    let start = Instant::now();
    for _ in 0..batches {
        appender.append_batch();
    }
    let elapsed = start.elapsed();
    let entries = appender.entries_appended();
    drop(appender.into_wal());
    let on_disk = segment_bytes(dir);
    println!(
        "wrote {entries} entries of {} B in batches of {}: {:.2} GiB payload, {:.2} GiB of segments, \
         {:.1} s ({:.0} entries/s, {:.0} MB/s written)",
        shape.entry_bytes,
        shape.batch_entries,
        (entries * shape.entry_bytes as u64) as f64 / (1u64 << 30) as f64,
        on_disk as f64 / (1u64 << 30) as f64,
        elapsed.as_secs_f64(),
        entries as f64 / elapsed.as_secs_f64(),
        on_disk as f64 / elapsed.as_secs_f64() / 1e6,
    );
    entries
}

/// Prints one row of the recovery table.
fn print_row(shape: Shape, cache: &str, open_seconds: &str, figures: &ChildFigures) {
    let field = |key: &str| figures.get(key).copied().unwrap_or(0);
    let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
    println!(
        "{:>7} {:>5} | {:>18} | {:>8} {:>9} {:>10} {:>11.0} {:>5} | {:>9.1} {:>9.1} {:>12.1} {:>10.1}",
        shape.entry_bytes,
        cache,
        open_seconds,
        field("segments"),
        field("records"),
        field("entries"),
        mib(field("bytes_scanned")),
        field("torn_tail_bytes"),
        mib(field("index_bytes")),
        mib(field("cached_bytes")),
        (field("hwm_after_kib").saturating_sub(field("hwm_before_kib"))) as f64 / 1024.0,
        field("rss_after_kib") as f64 / 1024.0,
    );
}

/// Writes, recovers and deletes one log; prints the table `header` before the figures.
fn measure(scratch: &ScratchDir, shape: Shape, payload_bytes: u64, header: &str) {
    let dir = scratch.fresh(&format!("recovery-{}", shape.entry_bytes));
    let entries = write_log(&dir, shape, payload_bytes);
    println!("{header}");
    let mut warm: Vec<ChildFigures> = (0..RUNS).map(|_| recover_in_child(&dir)).collect();
    for figures in &warm {
        assert_eq!(
            figures.get("entries"),
            Some(&entries),
            "recovery finds every written entry"
        );
        assert_eq!(
            figures.get("last_index"),
            Some(&entries),
            "recovery ends at the last entry"
        );
    }
    warm.sort_by_key(|figures| figures["open_ns"]);
    let open_seconds: Vec<f64> = warm
        .iter()
        .map(|figures| figures["open_ns"] as f64 / 1e9)
        .collect();
    // The median run's figures, memory included, represent the warm opens.
    print_row(
        shape,
        "warm",
        &format!(
            "{:.3} ({})",
            open_seconds[RUNS / 2],
            spread(&open_seconds, 2)
        ),
        &warm[RUNS / 2],
    );
    if drop_page_cache() {
        let cold = recover_in_child(&dir);
        print_row(
            shape,
            "cold",
            &format!("{:.3}", cold["open_ns"] as f64 / 1e9),
            &cold,
        );
    } else {
        println!(
            "{:>7} {:>5} | could not drop the page cache (needs root): no cold figure",
            shape.entry_bytes, "cold"
        );
    }
    remove_path(&dir);
}

/// Measures and prints recovery of a large log of 4 KiB entries, and of 100-byte entries
/// unless disabled.
pub(super) fn run(scratch: &ScratchDir, settings: &Settings) {
    println!(
        "== WAL recovery of a {:.2} GiB (payload) log: Wal::open in a child process ==",
        settings.recovery_payload_bytes as f64 / (1u64 << 30) as f64
    );
    match free_bytes(scratch.path()) {
        Some(free) if free >= FREE_BYTES_MIN => {}
        Some(free) => {
            println!(
                "skipped: {:.1} GiB free on {}, the measurement needs {} GiB",
                free as f64 / (1u64 << 30) as f64,
                scratch.path().display(),
                FREE_BYTES_MIN >> 30
            );
            return;
        }
        None => {
            println!(
                "skipped: could not learn the free space of {} from df",
                scratch.path().display()
            );
            return;
        }
    }
    let mut shapes = vec![Shape {
        entry_bytes: 4096,
        batch_entries: 256,
    }];
    if settings.recovery_small_entries {
        shapes.push(Shape {
            entry_bytes: 100,
            batch_entries: 8192,
        });
    }
    println!(
        "warm: the page cache still holds the log just written (median of {RUNS} opens, min–max); \
         cold: after `echo 1 > /proc/sys/vm/drop_caches`, one open (the hypervisor may still cache the disk)"
    );
    println!("peak growth = the child's VmHWM after Wal::open minus before it; resident = VmRSS after it");
    let header = format!(
        "{:>7} {:>5} | {:>18} | {:>8} {:>9} {:>10} {:>11} {:>5} | {:>9} {:>9} {:>12} {:>10}",
        "entry B",
        "cache",
        "open s",
        "segments",
        "records",
        "entries",
        "scanned MiB",
        "torn",
        "index MiB",
        "cache MiB",
        "peak +MiB",
        "RSS MiB"
    );
    for shape in shapes {
        measure(scratch, shape, settings.recovery_payload_bytes, &header);
    }
    if !settings.recovery_small_entries {
        println!("(the 100-byte-entry log was skipped: unset RAFT_BENCH_WAL_RECOVERY_SMALL to measure it)");
    }
    println!();
}
