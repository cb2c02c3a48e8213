//! How fast the checker is: on a large simulated history, and on the family of one-key
//! histories with many unknown deletes (`lincheck::simulate::unknown_deletes_history`), each
//! size in both its linearizable and its non-linearizable form.
//!
//! ```text
//! cargo run --release -p lincheck --example check_speed
//! LINCHECK_SEED=7 LINCHECK_OPS=50000 LINCHECK_KEYS=5 LINCHECK_CLIENTS=20 \
//!     cargo run --release -p lincheck --example check_speed
//! LINCHECK_UNKNOWN_DELETES=10,15,20,25 LINCHECK_STEPS=400000000 \
//!     cargo run --release -p lincheck --example check_speed
//! ```
//!
//! The simulated history comes from `lincheck::simulate` with its default operation mix and rates
//! of unknown and failed operations; every parameter can be set from the environment, and the
//! seed is printed so a slow case can be replayed. `LINCHECK_OPS=0` skips it;
//! `LINCHECK_UNKNOWN_DELETES` lists the sizes of the unknown-delete family (empty skips it);
//! `LINCHECK_STEPS` is the step budget per key (default: the checker's). The seconds include
//! minimizing a counterexample; the steps and the memory (the most the search held for one key,
//! estimated as the checker counts it) are the search's alone.

use std::time::Instant;

use lincheck::simulate::{simulate, unknown_deletes_history, FinalRead, SimulationOptions};
use lincheck::{check, CheckOptions, History, Report, Verdict};

fn environment_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")),
        Err(_) => default,
    }
}

/// The sizes of the unknown-delete family to run, from a comma-separated list.
fn environment_sizes(name: &str, default: &str) -> Vec<usize> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    text.split(',')
        .map(str::trim)
        .filter(|size| !size.is_empty())
        .map(|size| {
            size.parse()
                .unwrap_or_else(|_| panic!("{name} must list numbers, not {text:?}"))
        })
        .collect()
}

fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Linearizable => "linearizable".to_owned(),
        Verdict::NotLinearizable(violation) => format!("NOT linearizable:\n{violation}"),
        Verdict::Unknown { keys } => format!("unknown (budget exhausted on {keys:?})"),
    }
}

fn mebibytes(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

fn timed_check(history: &History, options: &CheckOptions) -> (Report, f64) {
    let started = Instant::now();
    let report = check(history, options);
    (report, started.elapsed().as_secs_f64())
}

fn main() {
    let options = CheckOptions {
        steps_max_per_key: environment_number(
            "LINCHECK_STEPS",
            CheckOptions::default().steps_max_per_key,
        ),
    };
    let simulation = SimulationOptions {
        seed: environment_number("LINCHECK_SEED", 1),
        operations: environment_number("LINCHECK_OPS", 10_000) as usize,
        keys: environment_number("LINCHECK_KEYS", 10) as usize,
        clients: environment_number("LINCHECK_CLIENTS", 10) as usize,
        ..SimulationOptions::default()
    };
    println!(
        "budget: {} steps per key (LINCHECK_STEPS)",
        options.steps_max_per_key
    );
    if simulation.operations > 0 {
        println!(
            "seed {} (LINCHECK_SEED): {} operations (LINCHECK_OPS) over {} keys (LINCHECK_KEYS) from {} clients (LINCHECK_CLIENTS), {}% unknown, {}% failed",
            simulation.seed,
            simulation.operations,
            simulation.keys,
            simulation.clients,
            simulation.unknown_percent,
            simulation.failed_percent
        );
        let (report, seconds) = timed_check(&simulate(&simulation), &options);
        println!(
            "checked {} operations on {} keys in {seconds:.3} s, {} search steps: {}",
            report.operations_checked,
            report.keys_checked,
            report.steps,
            verdict_text(&report.verdict)
        );
        if let Some(key) = report.per_key.iter().max_by_key(|key| key.steps) {
            println!(
                "most steps on one key: {} ({} operations, {} steps, {:.1} MiB held at most)",
                key.key,
                key.operations,
                key.steps,
                mebibytes(key.memory_bytes)
            );
        }
    }

    let sizes = environment_sizes("LINCHECK_UNKNOWN_DELETES", "10,15,20,25");
    if !sizes.is_empty() {
        println!("unknown-delete family (LINCHECK_UNKNOWN_DELETES):");
        println!(
            "{:>15} {:>10} {:>11} {:>14} {:>9} {:>9}  verdict",
            "unknown deletes", "operations", "final read", "steps", "seconds", "MiB"
        );
    }
    for size in sizes {
        for (final_read, name) in [
            (FinalRead::Linearizable, "concurrent"),
            (FinalRead::Overwritten, "overwritten"),
        ] {
            let history = unknown_deletes_history(size, final_read);
            let (report, seconds) = timed_check(&history, &options);
            let verdict = match &report.verdict {
                Verdict::Linearizable => "linearizable",
                Verdict::NotLinearizable(_) => "NOT linearizable",
                Verdict::Unknown { .. } => "unknown (budget exhausted)",
            };
            let memory_bytes = report.per_key.iter().map(|key| key.memory_bytes).max();
            println!(
                "{size:>15} {:>10} {name:>11} {:>14} {seconds:>9.3} {:>9.1}  {verdict}",
                history.len(),
                report.steps,
                mebibytes(memory_bytes.unwrap_or(0))
            );
        }
    }
}
