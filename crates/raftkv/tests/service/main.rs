//! Three real `raftkv serve` processes per test, one module per topic: replication and
//! recovery (writes through every node, linearizable reads, a SIGKILLed leader, restarts,
//! snapshots, SIGTERM), exactly-once sessions (numeric and opaque client ids), bad input, the
//! command line, membership, and leadership transfers under writes.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod cli;
mod membership;
mod replication;
mod sessions;
mod transfers;
