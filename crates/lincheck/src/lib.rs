//! # lincheck
//!
//! A linearizability checker for key-value histories (Herlihy & Wing, 1990): given what each
//! client asked and was told, and when, is there one order of the operations that respects real
//! time and the behavior of a single sequential map?
//!
//! ```text
//!   recorder ──▶ History (JSON Lines) ──▶ check() ──▶ Report
//!                                          │  split by key (linearizability is local)
//!                                          │  search each key: Wing & Gong + Lowe's cache
//!                                          │  minimize the first failing key
//!                                          ▼
//!                                        Violation ──▶ Display (text table) / render_html()
//! ```
//!
//! The search follows Porcupine (Athalye): a list of call and return events sorted by time,
//! backtracking over which pending call to linearize next, and a cache of (linearized set,
//! state) pairs already explored. It is deterministic and bounded by a step budget per key
//! ([`CheckOptions::steps_max_per_key`]), not by wall-clock time, so the same history gets the
//! same answer on any machine.
//!
//! Semantics the recorder should know:
//! - An [`Outcome::Failed`] entry is dropped: it definitely did not take effect.
//! - An [`Outcome::Unknown`] entry never completes: it may take effect at any point after its
//!   invocation, or never, and its output is not checked.
//! - Timestamps that tie between a return and an invocation count as concurrent (the permissive
//!   reading): only `complete_ns < invoke_ns` orders two entries.

#![deny(missing_docs)]

mod append_log;
mod describe;
mod history;
mod html;
mod minimize;
mod model;
mod report;
mod search;
pub mod simulate;

pub use history::{Entry, History, HistoryError, Operation, Outcome, Output};
pub use html::render_html;
pub use report::{
    check, check_key, CheckOptions, KeyReport, KeyResult, Report, Verdict, Violation,
};
