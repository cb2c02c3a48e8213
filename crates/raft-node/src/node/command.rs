//! The requests [`RaftNode`] queues for the event loop, each with the channel (or callback)
//! its answer goes back on.
//!
//! ```text
//!  RaftNode::start_command ─► Command::Propose(data, Placement::Reply) ─► event loop
//!                                                  ◄── oneshot: (index, term) or NodeError
//!  RaftNode::start_command_with ─► Placement::Callback, called on the loop (once, or with
//!                                  Stopped when dropped uncalled)
//!  RaftNode::start_command_or_forward ─► Command::ProposeOrForward: the same callback, held
//!                                  by the loop while a follower's forward awaits its answer
//! ```

use bytes::Bytes;
use raft_core::{ConfChange, Index, NodeId, Status, Term};
use tokio::sync::oneshot;

#[cfg(doc)]
use super::RaftNode;
use super::{NodeError, StopReason};

/// What a read waits for: the index to apply before serving it.
pub(super) type ReadReply = oneshot::Sender<Result<Index, NodeError>>;

/// Who learns where a proposal was placed.
pub(super) enum Placement {
    /// A task awaiting [`RaftNode::start_command`].
    Reply(oneshot::Sender<Placed>),
    /// A callback of [`RaftNode::start_command_with`], run on the event loop.
    Callback(PlacedCallback),
}

/// The callback of [`RaftNode::start_command_with`]: called once, with the proposal's place,
/// or with [`NodeError::Stopped`] when dropped uncalled (the event loop ended first).
pub(super) struct PlacedCallback(pub(super) Option<Box<dyn FnOnce(Placed) + Send>>);

/// Where a proposal was placed, or why it was not.
pub(super) type Placed = Result<(Index, Term), NodeError>;

impl PlacedCallback {
    pub(super) fn call(mut self, result: Placed) {
        if let Some(placed) = self.0.take() {
            placed(result);
        }
    }
}

impl Drop for PlacedCallback {
    fn drop(&mut self) {
        if let Some(placed) = self.0.take() {
            placed(Err(NodeError::Stopped(StopReason::Shutdown)));
        }
    }
}

/// A request for the event loop.
pub(super) enum Command {
    Propose(Bytes, Placement),
    ProposeOrForward(Bytes, PlacedCallback),
    ReadIndex(ReadReply),
    LeaseRead(ReadReply),
    Snapshot(Index, Bytes, oneshot::Sender<Result<(), NodeError>>),
    Transfer(NodeId, oneshot::Sender<Result<(), NodeError>>),
    ChangeMembership(
        ConfChange,
        oneshot::Sender<Result<(Index, Term), NodeError>>,
    ),
    Status(oneshot::Sender<Status>),
    Shutdown,
}

impl Command {
    /// Answers the request with `error` without running it.
    pub(super) fn refuse(self, error: NodeError) {
        match self {
            Command::Propose(_, Placement::Reply(reply)) => {
                let _ = reply.send(Err(error));
            }
            Command::Propose(_, Placement::Callback(placed))
            | Command::ProposeOrForward(_, placed) => placed.call(Err(error)),
            Command::ReadIndex(reply) | Command::LeaseRead(reply) => {
                let _ = reply.send(Err(error));
            }
            Command::Snapshot(_, _, reply) | Command::Transfer(_, reply) => {
                let _ = reply.send(Err(error));
            }
            Command::ChangeMembership(_, reply) => {
                let _ = reply.send(Err(error));
            }
            // Dropping the reply tells the caller the node stopped.
            Command::Status(_) | Command::Shutdown => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn a_placement_callback_is_called_once_and_hears_of_a_stop_if_dropped_uncalled() {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let callback = |heard: &Arc<Mutex<Vec<_>>>| {
            let heard = Arc::clone(heard);
            PlacedCallback(Some(Box::new(move |place| {
                heard.lock().expect("not poisoned").push(place)
            })))
        };
        callback(&heard).call(Ok((Index(3), Term(2))));
        drop(callback(&heard));
        let heard = heard.lock().expect("not poisoned");
        assert_eq!(
            *heard,
            vec![
                Ok((Index(3), Term(2))),
                Err(NodeError::Stopped(StopReason::Shutdown))
            ]
        );
    }
}
