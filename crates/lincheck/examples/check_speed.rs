//! How fast the checker is on a large simulated history.
//!
//! ```text
//! cargo run --release -p lincheck --example check_speed
//! LINCHECK_SEED=7 LINCHECK_OPS=50000 LINCHECK_KEYS=5 LINCHECK_CLIENTS=20 \
//!     cargo run --release -p lincheck --example check_speed
//! ```
//!
//! The history comes from `lincheck::simulate` with its default operation mix and rates of
//! unknown and failed operations; every parameter can be set from the environment, and the seed
//! is printed so a slow case can be replayed.

use std::time::Instant;

use lincheck::simulate::{simulate, SimulationOptions};
use lincheck::{check, CheckOptions};

fn environment_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")),
        Err(_) => default,
    }
}

fn main() {
    let options = SimulationOptions {
        seed: environment_number("LINCHECK_SEED", 1),
        operations: environment_number("LINCHECK_OPS", 10_000) as usize,
        keys: environment_number("LINCHECK_KEYS", 10) as usize,
        clients: environment_number("LINCHECK_CLIENTS", 10) as usize,
        ..SimulationOptions::default()
    };
    println!(
        "seed {} (LINCHECK_SEED): {} operations (LINCHECK_OPS) over {} keys (LINCHECK_KEYS) from {} clients (LINCHECK_CLIENTS), {}% unknown, {}% failed",
        options.seed,
        options.operations,
        options.keys,
        options.clients,
        options.unknown_percent,
        options.failed_percent
    );
    let history = simulate(&options);

    let started = Instant::now();
    let report = check(&history, &CheckOptions::default());
    let elapsed = started.elapsed();

    let verdict = match &report.verdict {
        lincheck::Verdict::Linearizable => "linearizable".to_owned(),
        lincheck::Verdict::NotLinearizable(violation) => format!("NOT linearizable:\n{violation}"),
        lincheck::Verdict::Unknown { keys } => format!("unknown (budget exhausted on {keys:?})"),
    };
    println!(
        "checked {} operations on {} keys in {:.3} s, {} search steps: {verdict}",
        report.operations_checked,
        report.keys_checked,
        elapsed.as_secs_f64(),
        report.steps
    );
    let slowest = report.per_key.iter().max_by_key(|key| key.steps);
    if let Some(key) = slowest {
        println!(
            "most steps on one key: {} ({} operations, {} steps)",
            key.key, key.operations, key.steps
        );
    }
}
