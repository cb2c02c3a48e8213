//! Three real `raftkv serve` processes per test, one module per topic: replication and
//! recovery (writes through every node, linearizable reads, a SIGKILLed leader, restarts,
//! snapshots, SIGTERM), exactly-once sessions (numeric and opaque client ids), bad input, the
//! command line, membership, leadership transfers under writes, and the recovery of a node
//! restarted after an unclean stop.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod cli;
mod membership;
mod replication;
mod sessions;
mod transfers;
mod unclean_restart;
