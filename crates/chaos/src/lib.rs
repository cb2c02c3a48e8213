//! Jepsen-style fault suite for raftkv: real `raftkv serve` processes, faults injected from
//! outside, a recorded client history checked for linearizability.
//!
//! ```text
//!   run(options)
//!    ├─ Topology      one network namespace per node and a bridge with nftables (root),
//!    │                else distinct loopback addresses
//!    ├─ LinkProxies   user-space TCP relays on every Raft link, for delay and jitter
//!    ├─ Cluster       the raftkv processes: start, kill -9, SIGSTOP/SIGCONT, join, retire
//!    ├─ clients       sessions doing get/put/cas/delete/append (kv), and transfers and
//!    │                whole reads of a bank's accounts by transaction (bank), every
//!    │                operation recorded with the revision it was answered; leases with
//!    │                keys kept alive by clients whose own clocks jump (lease), holders of
//!    │                a lock with a fencing register (lock)
//!    ├─ watchers      key and prefix watches through every node, resuming after faults
//!    ├─ nemeses       one loop per fault family, all at once with --nemesis all
//!    └─ after the run heal, settle, read every key, compare every node's copy, check the
//!                     history (lincheck), look for lost or doubled appends, read every
//!                     node's change history and check the bank, the watchers and the
//!                     revisions against it (revision_check), write the reports
//! ```
//!
//! A run's findings are its [`analysis::Summary`]'s anomalies: a history that is not
//! linearizable, an acknowledged append missing from (or doubled in) the final value, nodes whose
//! copies differ after the cluster settled, a cluster that did not settle once healed, and a node
//! process that exited on its own, and what [`revision_check`] finds: a bank read that does not
//! sum to the total or a transfer not exactly at its revision, a watcher's gap, repeat or
//! split transaction, revisions out of real-time order or different on the members; and what
//! [`lease_check`] and [`lock_check`] find: a lease's key deleted before its owner's deadline
//! or kept past the expiry bound, a lease's keys deleted apart, a revoked lease's keys still
//! there, two lock holdings with one token, a token going down at the fencing register, or a
//! fenced increment lost. Everything
//! of a run is written to its output directory: `history.jsonl`, `bank.jsonl`,
//! `watchers.jsonl`, `leases.jsonl`, `lease-scans.jsonl`, `lease-deletes.jsonl`,
//! `terms.jsonl`, `locks.jsonl`, `nemesis.jsonl`, `summary.json`, `summary.txt`, `latency.svg`, the nodes'
//! logs, and `violation.txt` / `violation.html` when the history is not linearizable.

pub mod analysis;
pub mod bank;
pub mod cluster;
pub mod disk;
pub mod disk_faults;
pub mod lease_check;
pub mod leases;
pub mod lock_check;
pub mod locks;
pub mod nemesis;
pub mod proxy;
pub mod revision_check;
pub mod run;
pub mod topology;
pub mod watchers;
pub mod workload;

pub use analysis::Summary;
pub use nemesis::{parse_nemeses, Nemesis, Schedule};
pub use run::{plan, run, Plan, RunOptions, RunReport, Workload};
pub use topology::Isolation;

/// What stops a run from being carried out (as opposed to what a run finds, which is in its
/// summary).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The environment could not be set up: namespaces, addresses, files or processes.
    #[error("setup failed: {0}")]
    Setup(String),
    /// The fault asked for cannot be injected on this machine.
    #[error("unsupported here: {0}")]
    Unsupported(String),
    /// The cluster never became ready to serve.
    #[error("the cluster did not start: {0}")]
    NotReady(String),
    /// Writing the run's output failed.
    #[error("writing {path}: {source}")]
    Output {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}
