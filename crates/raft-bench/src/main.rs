//! `raft-bench`: prints figures for the consensus core, the simulator, the write-ahead log and a
//! 3-peer cluster of real nodes.
//!
//! ```text
//! cargo run --release -p raft-bench -- core     # committed entries/s, 1..1024 writers
//! cargo run --release -p raft-bench -- sim      # simulated seconds per real second
//! cargo run --release -p raft-bench -- wal      # synced appends vs the disk, group commit, recovery
//! cargo run --release -p raft-bench -- node     # 3 nodes on loopback TCP: commands/s, latency vs floor
//! cargo run --release -p raft-bench             # all of them
//! cargo run --release -p raft-bench -- floor --dir DIR [--json]
//!     # not part of `all`: ~2 s of fdatasync (4 KiB appends, alone and 3 files at once) and
//!     # loopback round trips in DIR; medians, p90s and the floor of one replicated write,
//!     # 2 × fdatasync + round trip (bench/compare-etcd.sh reads the JSON)
//! ```
//!
//! Figures are measured, never asserted; run on an idle machine and compare ratios.

mod core_throughput;
mod floor;
mod node_throughput;
mod sim_speed;
mod wal_throughput;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    match what {
        "core" => core_throughput::run(),
        "sim" => sim_speed::run(),
        "wal" => wal_throughput::run(),
        "node" => node_throughput::run(),
        "floor" => return floor::run(&args[1..]),
        // Hidden: the child process in which `wal` measures recovery.
        "wal-recover" => return wal_throughput::recover_child(&args[1..]),
        "all" => {
            core_throughput::run();
            sim_speed::run();
            wal_throughput::run();
            node_throughput::run();
        }
        other => {
            eprintln!("unknown benchmark {other:?}; expected core, sim, wal, node, floor or all");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
