//! The short chaos suite: every nemesis for a few seconds against three real raftkv processes,
//! then all of them at once; each run must settle, lose nothing and be linearizable.
//!
//! Network faults need root (network namespaces); without it those tests say why and pass
//! without running. `RAFTKV_CHAOS_SECONDS` (default 6) sets each run's length and
//! `RAFTKV_CHAOS_SEED` its seed (default: fixed per test; printed either way). A failing
//! run leaves its files (history, timeline, node logs, summary) in target/chaos-tests/.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use raftkv_chaos::{plan, run, Nemesis, RunOptions, Schedule};

/// Runs one at a time: each takes three nodes' worth of CPU, and the timing of faults means
/// more on a machine that is not also running other clusters.
static SERIAL: Mutex<()> = Mutex::new(());

fn raftkv_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("RAFTKV_BIN") {
        return PathBuf::from(path);
    }
    // This test's executable is target/<profile>/deps/short_suite-HASH; raftkv is built into
    // target/<profile>. Building it here makes sure it is this tree's, not a stale one.
    let profile_dir = std::env::current_exe()
        .expect("the test's own path")
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .to_path_buf();
    let mut build = std::process::Command::new(env!("CARGO"));
    build.args([
        "build", "--quiet", "--locked", "-p", "raftkv", "--bin", "raftkv",
    ]);
    // The profile this test was built with, so the binary is the one `cargo test` itself
    // builds for raftkv's own tests (and not overwritten by a differently optimized one).
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    } else {
        build.args(["--profile", "test"]);
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building raftkv failed: {status}");
    let path = profile_dir.join("raftkv");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

fn run_short(name: &str, nemeses: &[Nemesis], default_seed: u64) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let seconds: u64 = std::env::var("RAFTKV_CHAOS_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(6);
    let seed: u64 = std::env::var("RAFTKV_CHAOS_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default_seed);
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("chaos-tests")
        .join(format!("{name}-seed-{seed}"));
    let _ = std::fs::remove_dir_all(&out_dir);
    eprintln!(
        "chaos {name}: seed {seed} (replay: RAFTKV_CHAOS_SEED={seed}), {seconds} s, output in {}",
        out_dir.display()
    );
    let mut options = RunOptions::new(raftkv_bin(), out_dir.clone());
    options.nemeses = nemeses.iter().copied().collect();
    options.duration = Duration::from_secs(seconds);
    options.seed = seed;
    options.clients = 6;
    options.schedule = Schedule {
        calm: (Duration::from_millis(300), Duration::from_millis(1_500)),
        hold: (Duration::from_millis(500), Duration::from_millis(2_500)),
    };
    options.settle_timeout = Duration::from_secs(60);
    let plan = plan(&options).unwrap_or_else(|error| panic!("chaos {name}: {error}"));
    if plan.nemeses.is_empty() {
        for skipped in &plan.skipped {
            eprintln!(
                "chaos {name}: SKIPPED {}: {}",
                skipped.nemesis, skipped.reason
            );
        }
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let report = runtime
        .block_on(run(options))
        .unwrap_or_else(|error| panic!("chaos {name} (seed {seed}) could not run: {error}"));
    let summary = &report.summary;
    eprintln!("{}", summary.to_text());
    assert!(
        report.passed(),
        "chaos {name} (seed {seed}) failed; its files are in {}:\n{}",
        out_dir.display(),
        summary.to_text()
    );
    assert!(
        summary.operations.ok > 100,
        "chaos {name} (seed {seed}): too few operations succeeded to mean anything:\n{}",
        summary.to_text()
    );
    for nemesis in &summary.nemeses {
        // A run in which a nemesis never struck tested nothing of it.
        assert!(
            summary.faults.get(nemesis).copied().unwrap_or(0) > 0,
            "chaos {name} (seed {seed}): the {nemesis} nemesis never struck:\n{}",
            summary.to_text()
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn partitions() {
    run_short("partition", &[Nemesis::Partition], 11);
}

#[test]
fn kill_and_restart() {
    run_short("kill", &[Nemesis::Kill], 12);
}

#[test]
fn pause_and_resume() {
    run_short("pause", &[Nemesis::Pause], 13);
}

#[test]
fn slow_links() {
    run_short("slow", &[Nemesis::Slow], 14);
}

#[test]
fn flaky_links() {
    run_short("flaky", &[Nemesis::Flaky], 15);
}

#[test]
fn membership_churn() {
    run_short("membership", &[Nemesis::Membership], 16);
}

#[test]
fn clock_jumps() {
    run_short("clock", &[Nemesis::Clock], 17);
}

#[test]
fn every_nemesis_at_once() {
    run_short("all", &Nemesis::ALL, 18);
}
