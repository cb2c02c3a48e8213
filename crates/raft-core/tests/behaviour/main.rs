//! Core behaviour tests: each feeds inputs and checks the exact effect. One module per topic:
//!
//! ```text
//!  election       campaigns, votes, stepping down, leadership transfer
//!  replication    appends, acknowledgements, commitment, catching up
//!  flow_control   the window of appends in flight, spare followers
//!  snapshots      compaction, chunked transfer, restart from a snapshot
//!  reads          ReadIndex on the leader and through a follower
//!  faults         bad input, unreachable peers
//!  self_check     caller bugs panic, impossible commits refused, committed entries never overwritten
//! ```

#[path = "../common/mod.rs"]
mod common;

mod election;
mod faults;
mod flow_control;
mod reads;
mod replication;
mod self_check;
mod snapshots;

use bytes::Bytes;
use common::Net;
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

/// Three peers made by `make` and then `tweak`, peer 1 elected.
pub(crate) fn three_led_by_1(
    make: fn(u64) -> raft_core::Config,
    tweak: impl Fn(&mut raft_core::Config),
) -> Net {
    let mut net = Net::with_config(3, |id| {
        let mut config = make(id);
        tweak(&mut config);
        config
    });
    net.elect(1);
    net
}

/// Proposes each value on the leader (peer 1), handing nothing out.
pub(crate) fn propose_each_on_leader(net: &mut Net, values: &[&'static str]) {
    for &value in values {
        net.peer(1).propose(Bytes::from(value)).expect("leader");
    }
}
