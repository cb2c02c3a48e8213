//! Writes: a proposal under a request id, its waiter, and the answer the apply loop settles.
//!
//! ```text
//!  write ─► register Waiter(request id) ─► node.start_command_with(Command) ─► placed(index)
//!                                                                               │
//!  apply loop: Waiters::applied(index, request id) ─► Resolution ◄──────────────┘
//!              └► every waiter placed at or below the index and not applied there:
//!                 NotCommitted (another entry won that index)
//!              Answers: settled answers go to the HTTP runtime a batch at a time
//! ```
//!
//! A waiter is registered under a request id carried in the command before it is proposed, so
//! its outcome cannot be missed however fast the entry commits. A write is answered only once
//! it is applied; a write whose entry lost its index to another leader's entry is answered
//! "not committed" (a definite no), and one swallowed by an installed snapshot or a timeout is
//! answered "outcome unknown" (the session makes a retry safe).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use raft_node::NodeError;
use tokio::sync::{mpsc, oneshot};

use super::{KvServer, ServeError};
use crate::store::{Command, Operation, Outcome, Session};

/// What a write achieved, and where it sits in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteResult {
    /// The state machine's answer.
    pub outcome: Outcome,
    /// Log index of the entry.
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
    /// The store's revision after the write (the write's own when it changed a key; for a
    /// retry answered from its session, the first application's).
    pub revision: u64,
}

pub(super) enum Resolution {
    Applied(WriteResult),
    NotCommitted,
    /// A snapshot replaced the state before the entry was seen applied.
    ReplacedBySnapshot,
    /// The node did not take the proposal (not the leader, busy, stopped).
    Refused(NodeError),
}

struct Waiter {
    reply: oneshot::Sender<Resolution>,
    /// Where the entry was placed, once the event loop proposed it.
    placed_at: Option<u64>,
}

/// Writes this node proposed and not yet answered.
#[derive(Default)]
pub(super) struct Waiters {
    by_request: HashMap<u64, Waiter>,
    /// Index → request id, for waiters that know their index.
    by_index: BTreeMap<u64, u64>,
    /// Highest index the apply loop finished. Invariant: no waiter in `by_index` at or below
    /// it (each was resolved when that index was applied).
    applied_through: u64,
    /// Answers the apply loop settled and has not handed over yet (see [`Answers`]).
    settled: AnswerBatch,
}

/// A batch of settled writes' answers, from the apply loop to the HTTP runtime.
type AnswerBatch = Vec<(oneshot::Sender<Resolution>, Resolution)>;

/// Hands the apply loop's answers to the HTTP runtime a batch at a time. Answered one by one
/// from the node's thread, each answer cost a syscall to wake the HTTP runtime (tokio wakes a
/// runtime's I/O driver on every task scheduled from another thread); delivered together by a
/// task on that runtime, the writes it answers become ready together, locally.
pub(super) struct Answers {
    batches: mpsc::UnboundedSender<AnswerBatch>,
}

impl Answers {
    /// Spawns the delivering task on the current runtime (the HTTP one).
    pub(super) fn start() -> Answers {
        let (batches, mut incoming) = mpsc::unbounded_channel::<AnswerBatch>();
        tokio::spawn(async move {
            while let Some(batch) = incoming.recv().await {
                deliver(batch);
            }
        });
        Answers { batches }
    }

    /// Delivers `batch` through the HTTP runtime, or here if that runtime is gone. A lone
    /// answer goes straight to its task: one wake either way, and one task hop fewer.
    fn hand_over(&self, batch: AnswerBatch) {
        if batch.len() <= 1 {
            deliver(batch);
        } else if let Err(mpsc::error::SendError(batch)) = self.batches.send(batch) {
            deliver(batch);
        }
    }
}

fn deliver(batch: AnswerBatch) {
    for (reply, resolution) in batch {
        let _ = reply.send(resolution);
    }
}

impl Waiters {
    /// Records where `request` was placed; answers at once if that index is already past.
    fn placed(&mut self, request: u64, index: u64) {
        let applied_through = self.applied_through;
        let Some(waiter) = self.by_request.get_mut(&request) else {
            return; // Already answered: applied before its placement was known.
        };
        if index <= applied_through {
            // Applied entries at that index resolved their own waiter; this one lost it.
            if let Some(waiter) = self.by_request.remove(&request) {
                let _ = waiter.reply.send(Resolution::NotCommitted);
            }
            return;
        }
        waiter.placed_at = Some(index);
        self.by_index.insert(index, request);
    }

    /// The entry at `index` was applied; `request` is the request id it carried, if any.
    pub(super) fn applied(
        &mut self,
        index: u64,
        request: Option<u64>,
        result: Option<WriteResult>,
    ) {
        if let (Some(request), Some(result)) = (request, result) {
            if let Some(waiter) = self.by_request.remove(&request) {
                if let Some(at) = waiter.placed_at {
                    self.by_index.remove(&at);
                }
                self.settled
                    .push((waiter.reply, Resolution::Applied(result)));
            }
        }
        self.settle_through(index, || Resolution::NotCommitted);
    }

    /// Answers every placed waiter at or below `index` (their entries did not apply there).
    pub(super) fn settle_through(&mut self, index: u64, resolution: impl Fn() -> Resolution) {
        self.applied_through = self.applied_through.max(index);
        // Oldest first, stopping at the first later one: this runs for every applied entry, and
        // splitting the map instead copied every later waiter each time (quadratic in the
        // writes in flight).
        while let Some(entry) = self.by_index.first_entry() {
            if *entry.key() > index {
                break;
            }
            let request = entry.remove();
            if let Some(waiter) = self.by_request.remove(&request) {
                self.settled.push((waiter.reply, resolution()));
            }
        }
    }
}

fn lock_waiters(waiters: &Mutex<Waiters>) -> MutexGuard<'_, Waiters> {
    waiters
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KvServer {
    /// The writes waiting for their entries, locked.
    pub(super) fn waiters(&self) -> MutexGuard<'_, Waiters> {
        lock_waiters(&self.waiters)
    }

    /// Sends the answers the apply loop settled so far on their way.
    pub(super) fn hand_over_answers(&self) {
        let settled = std::mem::take(&mut self.waiters().settled);
        self.answers.hand_over(settled);
    }

    /// Proposes `operation` on this node (which must lead) and waits until it is applied; a
    /// proposal refused for a leadership transfer is proposed again once it ends.
    pub async fn write(
        &self,
        session: Option<Session>,
        operation: Operation,
    ) -> Result<WriteResult, ServeError> {
        // Each attempt carries a request id of its own (`write_once`).
        let command = Command {
            session,
            operation,
            request_id: None,
        };
        self.through_leadership_change(|| self.write_once(&command))
            .await
    }

    /// Proposes `command` once, under a request id of its own, and waits until it is applied.
    async fn write_once(&self, command: &Command) -> Result<WriteResult, ServeError> {
        let placed = self.place(command)?;
        self.answer_of(placed).await
    }

    /// Hands `command` to the node at once, under a request id of its own, without waiting.
    ///
    /// The node takes commands in the order they are handed over, so a command placed here
    /// lands in the log before any command handed over after this returns: the lessor relies
    /// on that to order a lease checkpoint before the keepalives that must clear it.
    pub(super) fn place(&self, command: &Command) -> Result<PlacedWrite, ServeError> {
        let request = self.request_base | self.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.waiters().by_request.insert(
            request,
            Waiter {
                reply,
                placed_at: None,
            },
        );
        // The event loop records the placement itself, so this task wakes once, answered.
        let waiters = Arc::clone(&self.waiters);
        let proposed =
            self.node
                .start_command_with(command.encode_for_request(request), move |placed| {
                    let mut waiters = lock_waiters(&waiters);
                    match placed {
                        Ok((index, _)) => waiters.placed(request, index.0),
                        Err(error) => {
                            if let Some(waiter) = waiters.by_request.remove(&request) {
                                let _ = waiter.reply.send(Resolution::Refused(error));
                            }
                        }
                    }
                });
        if let Err(error) = proposed {
            self.waiters().by_request.remove(&request);
            return Err(error.into());
        }
        Ok(PlacedWrite { request, answer })
    }

    /// Waits until the command [`KvServer::place`] handed over is applied (or refused, or the
    /// request timeout passes).
    pub(super) async fn answer_of(&self, placed: PlacedWrite) -> Result<WriteResult, ServeError> {
        let PlacedWrite { request, answer } = placed;
        match tokio::time::timeout(self.config.request_timeout, answer).await {
            Ok(Ok(Resolution::Applied(result))) => Ok(result),
            Ok(Ok(Resolution::Refused(error))) => Err(error.into()),
            Ok(Ok(Resolution::NotCommitted)) => {
                self.counters
                    .writes_not_committed_total
                    .fetch_add(1, Ordering::Relaxed);
                Err(ServeError::NotCommitted)
            }
            Ok(Ok(Resolution::ReplacedBySnapshot)) => {
                self.counters
                    .writes_unknown_total
                    .fetch_add(1, Ordering::Relaxed);
                Err(ServeError::ReplacedBySnapshot)
            }
            Ok(Err(_)) => Err(ServeError::ApplyLoopEnded),
            Err(_) => {
                let mut waiters = self.waiters();
                if let Some(waiter) = waiters.by_request.remove(&request) {
                    if let Some(at) = waiter.placed_at {
                        waiters.by_index.remove(&at);
                    }
                }
                drop(waiters);
                self.counters
                    .writes_unknown_total
                    .fetch_add(1, Ordering::Relaxed);
                Err(ServeError::TimedOut {
                    within: self.config.request_timeout,
                })
            }
        }
    }
}

/// A command handed to the node by [`KvServer::place`], whose answer is still to come.
pub(super) struct PlacedWrite {
    request: u64,
    answer: oneshot::Receiver<Resolution>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> (oneshot::Sender<Resolution>, oneshot::Receiver<Resolution>) {
        oneshot::channel()
    }

    fn is_not_committed(received: Result<Resolution, oneshot::error::TryRecvError>) -> bool {
        matches!(received, Ok(Resolution::NotCommitted))
    }

    #[test]
    fn a_batch_of_answers_is_delivered_by_the_http_runtime_and_a_lone_one_at_once() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let answers = runtime.block_on(async { Answers::start() });
        let (lone, mut lone_answer) = answer();
        answers.hand_over(vec![(lone, Resolution::NotCommitted)]);
        assert!(
            is_not_committed(lone_answer.try_recv()),
            "delivered at once"
        );

        let (first, mut first_answer) = answer();
        let (second, second_answer) = answer();
        answers.hand_over(vec![
            (first, Resolution::NotCommitted),
            (second, Resolution::NotCommitted),
        ]);
        assert!(
            first_answer.try_recv().is_err(),
            "waits for the HTTP runtime"
        );
        runtime.block_on(async {
            assert!(matches!(first_answer.await, Ok(Resolution::NotCommitted)));
            assert!(matches!(second_answer.await, Ok(Resolution::NotCommitted)));
        });

        // With the HTTP runtime gone, the apply loop delivers its answers itself.
        drop(runtime);
        let (first, mut first_answer) = answer();
        let (second, mut second_answer) = answer();
        answers.hand_over(vec![
            (first, Resolution::NotCommitted),
            (second, Resolution::NotCommitted),
        ]);
        assert!(is_not_committed(first_answer.try_recv()));
        assert!(is_not_committed(second_answer.try_recv()));
    }
}
