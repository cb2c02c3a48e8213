//! Exhaustive exploration (`raft_sim::explore`): every state of a small cluster within the
//! bounds, the safety invariants in each. The unplanted run must find nothing; the same
//! bounds with a planted bug (votes granted without the log check) must find it, with a
//! shortest trace. `RAFT_EXPLORE_*` variables widen the bounds (see `Bounds::with_env`;
//! bigger runs: `cargo run --release -p raft-sim --example explore -- --help`).

use raft_sim::explore::{explore, Bounds, Persistence, PlantedBug};

fn bounds() -> Bounds {
    match Bounds::small().with_env() {
        Ok(bounds) => bounds,
        Err(message) => panic!("bad RAFT_EXPLORE_* setting: {message}"),
    }
}

#[test]
fn every_reachable_state_is_safe() {
    let bounds = bounds();
    let report = explore(&bounds);
    println!("{report}");
    if let Some(counterexample) = &report.counterexample {
        panic!("the explorer found a violation:\n{counterexample}");
    }
    let limited = bounds.states_max.is_some();
    assert!(
        report.complete || limited,
        "the search stopped early: {report}"
    );
    // A search that visited almost nothing tested nothing: at these bounds leaders are
    // elected in both terms, their no-ops replicated and committed.
    assert!(
        report.states > 1_000,
        "only {} states: {report}",
        report.states
    );
    assert!(
        report.depth_max >= 12,
        "depth {}: {report}",
        report.depth_max
    );
}

/// Slow disks and a crash: writes complete one at a time, in any order relative to
/// everything else, and a crash loses those still queued. The space grows fast, so the run
/// takes every interleaving of up to 11 actions (`RAFT_EXPLORE_DEPTH_MAX` for more).
#[test]
fn every_short_interleaving_with_slow_disks_crashes_and_duplicates_is_safe() {
    let bounds = Bounds {
        commands_max: 1,
        crashes_max: 1,
        duplicates_max: 1,
        persistence: Persistence::Deferred,
        depth_max: Some(11),
        ..Bounds::small()
    };
    let bounds = match bounds.with_env() {
        Ok(bounds) => bounds,
        Err(message) => panic!("bad RAFT_EXPLORE_* setting: {message}"),
    };
    let report = explore(&bounds);
    println!("{report}");
    if let Some(counterexample) = &report.counterexample {
        panic!("the explorer found a violation:\n{counterexample}");
    }
    assert!(
        report.complete || bounds.states_max.is_some(),
        "the search stopped early: {report}"
    );
    assert!(
        report.states > 10_000,
        "only {} states: {report}",
        report.states
    );
}

#[test]
fn votes_granted_without_the_log_check_break_leader_completeness() {
    let bounds = Bounds {
        planted_bug: Some(PlantedBug::VoteWithoutLogCheck),
        ..bounds()
    };
    let report = explore(&bounds);
    println!("{report}");
    let Some(counterexample) = &report.counterexample else {
        panic!("the planted bug was not found: {report}");
    };
    assert_eq!(
        counterexample.violation.invariant, "leader-completeness",
        "{counterexample}"
    );
    // The shortest way there, found breadth first: n1 wins t1 with n2's vote, its no-op
    // reaches n3 and commits; n2, whose copy was lost, campaigns in t2 and wins n3's vote,
    // which the log check would have refused. Wider bounds cannot make it longer.
    if Bounds::small().with_env() == Ok(Bounds::small()) {
        assert_eq!(counterexample.length, 12, "{counterexample}");
    }
    assert!(counterexample.length <= 12, "{counterexample}");
    assert_eq!(counterexample.steps.len(), counterexample.length);
    let text = counterexample.to_string();
    assert!(
        text.contains("Vote term=2"),
        "the trace shows the vote: {text}"
    );
}
