//! A node's log filter, read and changed while it runs (admin tokens only).
//!
//! ```text
//!  GET /v1/log-level                                   → 200 LogLevelResponse
//!  PUT /v1/log-level  body: a filter as text, e.g.     → 200 LogLevelResponse (the new filter)
//!                     `info,raft_node=debug`           → 400 the parse error; the old stays
//! ```
//!
//! The filter is `RAFTKV_LOG`'s syntax (tracing's `EnvFilter`): a default level and
//! `target=level` directives, comma-separated. It is the node's own: each node is asked or
//! changed on its own, and a restart starts from `RAFTKV_LOG` again.

use serde::{Deserialize, Serialize};

/// `GET` and `PUT /v1/log-level`: the filter in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLevelResponse {
    /// The filter, as the node prints it (its directives may come in another order than
    /// written).
    pub filter: String,
}
