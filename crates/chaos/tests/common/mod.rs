//! What the chaos crate's test files share.

use std::path::PathBuf;

/// The raftkv binary, built with the profile this test was built with (so it is this tree's
/// and the one `cargo test` itself builds), in the returned target/<profile>.
///
/// It builds what `cargo test --workspace` builds, not raftkv alone: `cargo build -p raftkv`
/// resolves features without the dev-dependencies' (tokio's `test-util`, raft-wal's
/// `fuzzing`), so after `cargo test --workspace` it rebuilt tokio and all above it, about three
/// minutes of the CI run, and overwrote the binary the other tests had just been built with.
/// The same selection finds everything fresh (0.2 s).
#[allow(dead_code)] // the fsync shim's test needs only the shim
pub fn build_raftkv_with_this_profile() -> PathBuf {
    cargo_build_with_this_profile(&["--workspace", "--tests"])
}

/// The fsync shim (`libraftkv_fsync_fault.so`, a cdylib that `--tests` does not link), built
/// with the profile this test was built with, in the returned target/<profile>. It depends on
/// libc alone, so building it by itself rebuilds nothing else.
pub fn build_fsync_shim_with_this_profile() -> PathBuf {
    cargo_build_with_this_profile(&["-p", "raftkv-fsync-fault", "--lib"])
}

fn cargo_build_with_this_profile(selection: &[&str]) -> PathBuf {
    // This test's executable is target/<profile>/deps/NAME-HASH.
    let profile_dir = std::env::current_exe()
        .expect("the test's own path")
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let mut build = std::process::Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "--locked"]).args(selection);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    } else {
        build.args(["--profile", "test"]);
    }
    let status = build.status().expect("cargo runs");
    assert!(
        status.success(),
        "cargo build {selection:?} failed: {status}"
    );
    profile_dir
}
