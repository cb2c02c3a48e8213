//! The step budget bounds the search and turns into an unknown verdict, deterministically.

use lincheck::simulate::{simulate, SimulationOptions};
use lincheck::{check, CheckOptions, KeyResult, Verdict};

fn big_concurrent_history() -> lincheck::History {
    simulate(&SimulationOptions {
        seed: 99,
        operations: 3_000,
        keys: 2,
        clients: 12,
        ..SimulationOptions::default()
    })
}

#[test]
fn tiny_budget_on_a_big_concurrent_history_gives_unknown() {
    let history = big_concurrent_history();
    let options = CheckOptions {
        steps_max_per_key: 100,
    };
    let report = check(&history, &options);
    let Verdict::Unknown { keys } = &report.verdict else {
        panic!("expected unknown, got {:?}", report.verdict);
    };
    assert_eq!(keys, &["k0", "k1"]);
    assert!(report
        .per_key
        .iter()
        .all(|key| key.result == KeyResult::BudgetExhausted && key.steps == 100));
    assert_eq!(report.steps, 200);
}

#[test]
fn default_budget_on_the_same_history_answers() {
    let report = check(&big_concurrent_history(), &CheckOptions::default());
    assert!(report.verdict.is_linearizable(), "{:?}", report.verdict);
}

#[test]
fn steps_are_the_same_on_every_run() {
    let history = big_concurrent_history();
    let first = check(&history, &CheckOptions::default());
    let second = check(&history, &CheckOptions::default());
    assert_eq!(first, second);
    assert!(first.steps > 0);
}
