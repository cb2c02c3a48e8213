//! What the chaos crate's test files share.

use std::path::PathBuf;

/// Builds `package` with the profile this test was built with, so the artifact is this tree's
/// and the one `cargo test` itself builds; returns target/<profile>.
pub fn build_with_this_profile(package: &str, extra: &[&str]) -> PathBuf {
    // This test's executable is target/<profile>/deps/NAME-HASH.
    let profile_dir = std::env::current_exe()
        .expect("the test's own path")
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let mut build = std::process::Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "--locked", "-p", package]);
    build.args(extra);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    } else {
        build.args(["--profile", "test"]);
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building {package} failed: {status}");
    profile_dir
}
