//! Three real `raftkv serve` processes per test, one module per topic: replication and
//! recovery (writes through every node, linearizable reads, a SIGKILLed leader, restarts,
//! snapshots, SIGTERM), exactly-once sessions (numeric and opaque client ids), bad input, the
//! command line, membership, and leadership transfers under writes.

use bytes::Bytes;
use raftkv_client::api::ErrorResponse;

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod cli;
mod membership;
mod replication;
mod sessions;
mod transfers;

/// The JSON error of an error answer's body; a body that is not one fails the test.
pub(crate) fn error_of(body: &Bytes) -> ErrorResponse {
    serde_json::from_slice(body).unwrap_or_else(|error| {
        panic!(
            "error bodies are JSON ({error}): {}",
            String::from_utf8_lossy(body)
        )
    })
}
