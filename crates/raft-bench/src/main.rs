//! `raft-bench`: prints figures for the consensus core and the simulator.
//!
//! ```text
//! cargo run --release -p raft-bench -- core     # committed entries/s, 1..1024 writers
//! cargo run --release -p raft-bench -- sim      # simulated seconds per real second
//! cargo run --release -p raft-bench             # both
//! ```
//!
//! Figures are measured, never asserted; run on an idle machine and compare ratios.

mod core_throughput;
mod sim_speed;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    match what {
        "core" => core_throughput::run(),
        "sim" => sim_speed::run(),
        "all" => {
            core_throughput::run();
            sim_speed::run();
        }
        other => {
            eprintln!("unknown benchmark {other:?}; expected core, sim or all");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
