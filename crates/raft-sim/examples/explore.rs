//! Explores every reachable state of a small cluster within the given bounds and prints the
//! figures (states, time, peak memory) or the shortest trace to a violation.
//!
//! ```text
//! cargo run --release -p raft-sim --example explore -- [--peers N] [--terms N] [--commands N] \
//!     [--in-flight N] [--crashes N] [--duplicates N] [--persist immediate|deferred] [--pre-vote] \
//!     [--depth-max N] [--states-max N] [--worlds-in-memory N] [--plant vote-without-log-check]
//! cargo run --release -p raft-sim --example explore -- --terms 3 --commands 1   (minutes)
//! ```
//!
//! Without flags it explores `Bounds::small()` (the test suite's bounds: terms up to 2, no
//! command, 2 messages in flight, no crash or duplicate, writes durable at once; seconds);
//! each flag widens one bound. Exit status: 0 when the exploration found no violation, 1 when
//! it found one, 2 on a bad argument.

use std::process::ExitCode;

use raft_sim::explore::{explore_with_progress, Bounds, Persistence, PlantedBug};

fn main() -> ExitCode {
    let bounds = match parse(std::env::args().skip(1)) {
        Ok(bounds) => bounds,
        Err(message) => {
            eprintln!("explore: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!("exploring {bounds}");
    let report = explore_with_progress(&bounds, |so_far| {
        eprintln!(
            "  {} states, depth {}, frontier {}, {:.0} s, peak memory {} MiB",
            so_far.states,
            so_far.depth_max,
            so_far.frontier_max,
            so_far.elapsed.as_secs_f64(),
            peak_memory_kib().unwrap_or(0) / 1024
        );
    });
    println!("{report}");
    if let Some(peak) = peak_memory_kib() {
        println!("peak memory (VmHWM): {} MiB", peak / 1024);
    }
    if report.counterexample.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

const USAGE: &str = "usage: explore [--peers N] [--terms N] [--commands N] [--in-flight N] \
[--crashes N] [--duplicates N] [--persist immediate|deferred] [--pre-vote] [--depth-max N] [--states-max N] \
[--worlds-in-memory N] [--plant vote-without-log-check]";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Bounds, String> {
    let mut bounds = Bounds::small();
    while let Some(flag) = args.next() {
        if flag == "--pre-vote" {
            bounds.pre_vote = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err("help".to_string());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--peers" => bounds.peers = number()?,
            "--terms" => bounds.term_max = number()?,
            "--commands" => bounds.commands_max = narrow(&flag, number()?)?,
            "--in-flight" => bounds.in_flight_max = narrow(&flag, number()?)?,
            "--crashes" => bounds.crashes_max = narrow(&flag, number()?)?,
            "--duplicates" => bounds.duplicates_max = narrow(&flag, number()?)?,
            "--states-max" => bounds.states_max = Some(number()?),
            "--depth-max" => bounds.depth_max = Some(narrow(&flag, number()?)?),
            "--worlds-in-memory" => bounds.frontier_worlds_max = narrow(&flag, number()?)?,
            "--persist" => {
                bounds.persistence = match value.as_str() {
                    "immediate" => Persistence::Immediate,
                    "deferred" => Persistence::Deferred,
                    other => return Err(format!("--persist: {other:?} is not immediate|deferred")),
                }
            }
            "--plant" => {
                bounds.planted_bug = match value.as_str() {
                    "vote-without-log-check" => Some(PlantedBug::VoteWithoutLogCheck),
                    other => return Err(format!("--plant: unknown bug {other:?}")),
                }
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if bounds.peers == 0 {
        return Err("--peers must be at least 1".to_string());
    }
    Ok(bounds)
}

fn narrow<T: TryFrom<u64>>(flag: &str, value: u64) -> Result<T, String> {
    T::try_from(value).map_err(|_| format!("{flag}: {value} is too large"))
}

/// The process's peak resident memory, from /proc (Linux); `None` elsewhere.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
