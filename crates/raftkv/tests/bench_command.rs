//! `raftkv bench` runs the `raftkv-bench` program: found beside `raftkv`, else on PATH, with
//! the arguments after `bench` as they are, the client options in the environment, and its
//! exit status as `raftkv`'s. A stand-in script plays the load generator here; the real one is
//! driven through `raftkv bench` by crates/raftkv-bench/tests/bench.rs.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A copy of the `raftkv` binary alone in a fresh directory, so nothing sits beside it.
/// A hard link where the file system allows one (the binary is large), else a copy.
fn lone_raftkv() -> (tempfile::TempDir, PathBuf) {
    let built = Path::new(env!("CARGO_BIN_EXE_raftkv"));
    let dir = tempfile::Builder::new()
        .prefix("lone-raftkv")
        .tempdir_in(built.parent().expect("the binary's directory"))
        .expect("temporary directory");
    let path = dir.path().join("raftkv");
    if std::fs::hard_link(built, &path).is_err() {
        std::fs::copy(built, &path).expect("copy of raftkv");
    }
    (dir, path)
}

/// A `raftkv-bench` stand-in in `dir` that prints its arguments and the client options of its
/// environment, one per line, and exits with status 7.
fn fake_bench(dir: &Path) {
    let script = dir.join("raftkv-bench");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         for arg in \"$@\"; do echo \"arg=$arg\"; done\n\
         echo \"endpoints=$RAFTKV_ENDPOINTS\"\n\
         echo \"token=$RAFTKV_TOKEN\"\n\
         echo \"ca=$RAFTKV_CA_CERT\"\n\
         echo \"cert=$RAFTKV_CLIENT_CERT\"\n\
         echo \"key=$RAFTKV_CLIENT_KEY\"\n\
         exit 7\n",
    )
    .expect("stand-in written");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("stand-in executable");
}

/// Runs `raftkv` with `args` and PATH set to `path` only, and no RAFTKV_* variables of the
/// test's own environment.
fn run(raftkv: &Path, path: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(raftkv);
    for (variable, _) in std::env::vars_os() {
        if variable.to_string_lossy().starts_with("RAFTKV_") {
            command.env_remove(variable);
        }
    }
    command
        .env("PATH", path)
        .args(args)
        .output()
        .expect("raftkv runs")
}

#[test]
fn bench_runs_the_program_on_path_with_its_arguments_options_and_exit_status() {
    let (_lone, raftkv) = lone_raftkv();
    let bin = tempfile::tempdir().expect("temporary directory");
    fake_bench(bin.path());
    let output = run(
        &raftkv,
        bin.path(),
        &[
            "--endpoints",
            "127.0.0.1:1,127.0.0.1:2",
            "--token",
            "secret-token",
            "--ca-cert",
            "/tmp/ca.pem",
            "--client-cert",
            "/tmp/client.pem",
            "--client-key",
            "/tmp/client-key.pem",
            "bench",
            "--clients",
            "3",
            "--endpoints",
            "127.0.0.1:9",
            "--help",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(7),
        "the program's status: {stdout}"
    );
    // The options before `bench` go in the environment; everything after it, --help and a
    // repeated --endpoints included, goes to the program as it was given (and wins there).
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "arg=--clients",
            "arg=3",
            "arg=--endpoints",
            "arg=127.0.0.1:9",
            "arg=--help",
            "endpoints=127.0.0.1:1,127.0.0.1:2",
            "token=secret-token",
            "ca=/tmp/ca.pem",
            "cert=/tmp/client.pem",
            "key=/tmp/client-key.pem",
        ]
    );
}

#[test]
fn bench_without_the_program_says_how_to_build_it() {
    let (_lone, raftkv) = lone_raftkv();
    let empty = tempfile::tempdir().expect("temporary directory");
    let output = run(&raftkv, empty.path(), &["bench", "--clients", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cargo build --release -p raftkv-bench"),
        "{stderr}"
    );
}
