//! # raftkv
//!
//! A replicated key-value store on Raft: the state machine ([`state_machine`]) and its log
//! commands ([`command`]), the node that runs them ([`server`]), the HTTP API ([`http`]),
//! client authentication ([`auth`]), the HTTP server's limits ([`limits`]), metrics,
//! configuration, the `raftkv` command line ([`cli`]) and the local development
//! cluster ([`dev`]). The load generator (`raftkv bench`) is the `raftkv-bench` crate.

#![deny(missing_docs)]

pub mod auth;
pub mod certs;
pub mod cli;
pub mod command;
pub mod config;
pub mod dev;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod serve;
pub mod server;
pub mod state_machine;
pub mod tls;
