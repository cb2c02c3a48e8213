//! # raftkv
//!
//! A replicated key-value store on Raft: the state machine ([`state_machine`]) and its log
//! commands ([`command`]), the node that runs them ([`server`]), the HTTP API ([`http`]),
//! metrics, configuration, the `raftkv` command line ([`cli`]), the local development
//! cluster ([`dev`]) and the load generator ([`bench`]).

#![deny(missing_docs)]

pub mod bench;
pub mod cli;
pub mod command;
pub mod config;
pub mod dev;
pub mod http;
pub mod metrics;
pub mod serve;
pub mod server;
pub mod state_machine;
