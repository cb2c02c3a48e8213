//! # raftkv
//!
//! A replicated key-value store on Raft: the store, a deterministic state machine with its log
//! commands, client sessions and snapshot format ([`store`]); the server runtime that runs it on
//! a Raft node and launches `raftkv serve` ([`server`]) from its settings ([`settings`]); the
//! HTTP API ([`http`]), client authentication ([`auth`]), the HTTP server's limits ([`limits`]),
//! TLS ([`tls`], [`certs`]), metrics, the `raftkv` command line ([`cli`]), the local
//! development cluster ([`dev`]), backup, restore and disaster recovery ([`backup`]), the
//! offline inspection of a data directory ([`inspect`]). The load generator (`raftkv bench`)
//! is the `raftkv-bench` crate.

#![deny(missing_docs)]

pub mod auth;
pub mod backup;
pub mod certs;
pub mod cli;
pub mod dev;
pub mod grpc;
pub mod http;
pub mod inspect;
pub mod limits;
pub mod live_config;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod settings;
pub mod store;
pub mod tls;
pub mod watch;
