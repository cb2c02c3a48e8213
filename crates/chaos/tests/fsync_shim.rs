//! The fsync shim (crate raftkv-fsync-fault) interposes on a real program: `dd` with
//! `conv=fsync` sees its sync pass, fail with EIO, or succeed while the shim records the range
//! it left unsynced.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use raftkv_chaos::disk::{lose_unsynced, parse_ledger};

mod common;
use common::build_fsync_shim_with_this_profile;

fn shim() -> PathBuf {
    if let Some(path) = std::env::var_os("RAFTKV_FSYNC_SHIM") {
        return PathBuf::from(path);
    }
    let profile_dir = build_fsync_shim_with_this_profile();
    let path = profile_dir.join("libraftkv_fsync_fault.so");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

fn dd_with(shim: &Path, dir: &Path, mode: &str) -> Output {
    std::fs::write(dir.join("control"), format!("{mode}\n")).expect("control file");
    Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", dir.join("data").display()))
        .args(["bs=4096", "count=3", "conv=fsync"])
        .env("LD_PRELOAD", shim)
        .env("RAFTKV_FSYNC_FAULT_CONTROL", dir.join("control"))
        .env("RAFTKV_FSYNC_FAULT_LEDGER", dir.join("ledger"))
        .output()
        .expect("dd runs (coreutils)")
}

#[test]
fn syncs_pass_fail_or_lie_as_the_control_file_says() {
    let shim = shim();
    let dir = std::env::temp_dir().join(format!("fsync-shim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");

    let passed = dd_with(&shim, &dir, "pass");
    assert!(passed.status.success(), "pass: {passed:?}");
    assert!(
        !dir.join("ledger").exists(),
        "an honest sync records nothing"
    );

    let failed = dd_with(&shim, &dir, "fail");
    assert!(!failed.status.success(), "fail: dd must see its fsync fail");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("Input/output error"), "fail: {stderr}");

    let lied = dd_with(&shim, &dir, "lie");
    assert!(lied.status.success(), "lie: {lied:?}");
    let ledger = std::fs::read_to_string(dir.join("ledger")).expect("a lie is recorded");
    let ranges = parse_ledger(&ledger);
    assert_eq!(ranges.len(), 1, "{ledger}");
    assert_eq!((ranges[0].start, ranges[0].end), (0, 3 * 4096));
    assert!(ranges[0].path.ends_with("data"), "{ledger}");

    // The power loss that makes the lie matter: what was never synced is gone.
    std::fs::write(dir.join("data"), [7u8; 3 * 4096]).expect("rewrite");
    let loss = lose_unsynced(&dir.join("ledger")).expect("power loss");
    assert_eq!((loss.files, loss.bytes), (1, 3 * 4096));
    let contents = std::fs::read(dir.join("data")).expect("data");
    assert!(contents.iter().all(|&byte| byte == 0));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
