//! Three real `raftkv serve` processes per test, one module per topic: replication and
//! recovery (writes through every node, linearizable reads, a SIGKILLed leader, restarts,
//! snapshots, SIGTERM), exactly-once sessions (numeric and opaque client ids), bad input, the
//! command line, membership, leadership transfers under writes, the recovery of a node
//! restarted after an unclean stop, and the coordination API: revisions, reads at a past
//! revision, compaction, transactions (coordination) and watches (watch, read through sse),
//! leases (leases), backup and disaster recovery (backup: snapshot save and restore,
//! recover --force-new-cluster), `raftkv inspect` on a stopped node's data directory
//! (inspect, one node), and consistency checks naming a replica corrupted on disk
//! (consistency).

#[path = "../common/mod.rs"]
mod common;

mod backup;
mod bad_input;
mod cli;
mod consistency;
mod coordination;
mod inspect;
mod leases;
mod membership;
mod replication;
mod sessions;
mod sse;
mod transactions;
mod transfers;
mod unclean_restart;
mod watch;
