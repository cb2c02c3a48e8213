//! Core behaviour tests: each feeds inputs and checks the exact effect. One module per topic:
//!
//! ```text
//!  replication    Figure 8 (logs built by hand)
//!  faults         bad input, unreachable peers
//!  forward        proposals forwarded by followers: placed, refused, duplicated, stale
//!  recovery       a peer that lost acknowledged writes: each danger, with and without recovery
//!  self_check     caller bugs panic, impossible commits refused, committed entries never overwritten
//! ```
//!
//! Elections, votes, transfers, replication, flow control, spare followers, snapshots and reads
//! are golden interaction scripts: tests/golden/testdata/*.txt.

#[path = "../common/mod.rs"]
mod common;

mod faults;
mod forward;
mod recovery;
mod replication;
mod self_check;

use raft_core::{Message, MessageBody, NodeId, Term};

/// A message from `from` to `to` in `term`.
pub(crate) fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    }
}
