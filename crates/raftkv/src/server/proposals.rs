//! Writes: a proposal under a request id, its waiter, and the answer the apply loop settles.
//!
//! ```text
//!  write ─► register Waiter(request id) ─► node.start_command_with(Command) ─► placed(index)
//!    │     (Route::Leader; Route::AnyNode: start_command_or_forward, which a   │
//!    │      follower hands to the leader over the Raft transport)              │
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
//!
//! A follower's write ([`Route::AnyNode`]) is handed to the leader over the Raft transport and
//! answered by the follower once it applied the entry itself, so a read on it right after sees
//! the write. A leader's refusal is a definite no; a forward that can get no answer (the
//! leader went away) leaves the waiter in place: if the entry commits, applying it here
//! answers the write, else the request timeout answers "outcome unknown".
//!
//! Every node's apply loop sees every node's entries, so a request id must name the node that
//! proposed it: see [`RequestIds`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use raft_core::{Index, Term};
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
            // A waiter that knows its index is answered only by the entry at that index: an
            // entry elsewhere under the same id (proposed by an earlier run of this node, see
            // `RequestIds`) is not its own.
            let its_own = self
                .by_request
                .get(&request)
                .is_some_and(|waiter| waiter.placed_at.is_none_or(|at| at == index));
            if its_own {
                if let Some(waiter) = self.by_request.remove(&request) {
                    if let Some(at) = waiter.placed_at {
                        self.by_index.remove(&at);
                    }
                    self.settled
                        .push((waiter.reply, Resolution::Applied(result)));
                }
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
        self.write_on(Route::Leader, session, operation).await
    }

    /// Proposes `operation` by the way `route` says and waits until this node applied it; a
    /// proposal refused for a leadership transfer is proposed again once it ends.
    pub async fn write_on(
        &self,
        route: Route,
        session: Option<Session>,
        operation: Operation,
    ) -> Result<WriteResult, ServeError> {
        // Each attempt carries a request id of its own (`place_on`).
        let command = Command {
            session,
            operation,
            request_id: None,
        };
        self.through_leadership_change(|| async {
            let placed = self.place_on(route, &command)?;
            self.answer_of(placed).await
        })
        .await
    }

    /// Hands `command` to the node at once, under a request id of its own, without waiting;
    /// refused unless this node leads ([`Route::Leader`]).
    ///
    /// The node takes commands in the order they are handed over, so a command placed here
    /// lands in the log before any command handed over after this returns: the lessor relies
    /// on that to order a lease checkpoint before the keepalives that must clear it.
    pub(super) fn place(&self, command: &Command) -> Result<PlacedWrite, ServeError> {
        self.place_on(Route::Leader, command)
    }

    /// Hands `command` to the node at once, under a request id of its own, by the way
    /// `route` says, without waiting.
    fn place_on(&self, route: Route, command: &Command) -> Result<PlacedWrite, ServeError> {
        let request = self.request_ids.next();
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
        let placed = move |placed: Result<(Index, Term), NodeError>| {
            let mut waiters = lock_waiters(&waiters);
            match placed {
                Ok((index, _)) => waiters.placed(request, index.0),
                // The leader may have placed it: applying it here answers the write, else the
                // request timeout does ("outcome unknown").
                Err(NodeError::ForwardUnanswered) => {}
                Err(error) => {
                    if let Some(waiter) = waiters.by_request.remove(&request) {
                        let _ = waiter.reply.send(Resolution::Refused(error));
                    }
                }
            }
        };
        let command = command.encode_for_request(request);
        let proposed = match route {
            Route::Leader => self.node.start_command_with(command, placed),
            Route::AnyNode => self.node.start_command_or_forward(command, placed),
        };
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

/// Where a write may be proposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// On the leader only: a follower refuses it ([`ServeError::NotLeader`]). For what only
    /// the leader may decide: leases, membership, the leader's own housekeeping.
    Leader,
    /// On any node: a follower hands the proposal to the leader over the Raft transport and
    /// answers once it applied the entry itself. For plain store writes.
    AnyNode,
}

/// The request ids of one run of a node: the node's id in the top [`NODE_ID_BITS`] bits, so
/// that no two nodes' ids meet (every node's apply loop sees every node's entries and looks
/// their ids up among its own waiters), then a counter from a random start, so that a
/// restarted node's ids are unlikely to meet those of its earlier run still in the log (and
/// a waiter that knows its index is answered only by the entry there: `Waiters::applied`).
pub(super) struct RequestIds {
    node_prefix: u64,
    next: AtomicU64,
}

/// Bits of a request id that hold the node's id: node ids below 2^20 (a million) keep ids of
/// different nodes apart for certain; larger ids are folded into them (two nodes whose ids
/// agree in their low 20 bits could then share ids).
const NODE_ID_BITS: u32 = 20;

/// Bits of a request id that count: 2^44 requests per run before the counter wraps.
const COUNTER_BITS: u32 = u64::BITS - NODE_ID_BITS;

impl RequestIds {
    /// The ids of node `node` for this run, starting at a counter value drawn from `random`
    /// (the lower half of the counter's range, so a run never wraps in practice).
    pub(super) fn new(node: u64, random: u64) -> RequestIds {
        let counter_mask = (1u64 << COUNTER_BITS) - 1;
        RequestIds {
            node_prefix: (node & ((1u64 << NODE_ID_BITS) - 1)) << COUNTER_BITS,
            next: AtomicU64::new(random & (counter_mask >> 1)),
        }
    }

    /// The next id.
    fn next(&self) -> u64 {
        let counter_mask = (1u64 << COUNTER_BITS) - 1;
        self.node_prefix | (self.next.fetch_add(1, Ordering::Relaxed) & counter_mask)
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

    #[test]
    fn request_ids_of_different_nodes_never_meet_whatever_their_random_starts() {
        // The largest starts, so the counters are as close to the next node's range as they
        // can be.
        let first = RequestIds::new(1, u64::MAX);
        let second = RequestIds::new(2, u64::MAX);
        let first_ids: Vec<u64> = (0..1000).map(|_| first.next()).collect();
        assert!(
            first_ids.windows(2).all(|pair| pair[0] < pair[1]),
            "distinct"
        );
        for id in (0..1000).map(|_| second.next()) {
            assert_eq!(id >> COUNTER_BITS, 2, "node 2's prefix");
            assert!(!first_ids.contains(&id));
        }
        assert!(first_ids.iter().all(|id| id >> COUNTER_BITS == 1));
        let random_start = RequestIds::new(7, 0).next();
        assert_eq!(
            random_start,
            7 << COUNTER_BITS,
            "a zero start counts from 0"
        );
    }

    #[test]
    fn a_waiter_placed_at_an_index_is_answered_only_by_its_own_entry_there() {
        let mut waiters = Waiters::default();
        let (reply, mut answered) = answer();
        waiters.by_request.insert(
            5,
            Waiter {
                reply,
                placed_at: None,
            },
        );
        waiters.placed(5, 10);
        let result = |index| WriteResult {
            outcome: Outcome::Put,
            index,
            term: 1,
            revision: 2,
        };
        // Another entry under the same id (an earlier run's) before its index: not its own.
        waiters.applied(8, Some(5), Some(result(8)));
        assert!(waiters.by_request.contains_key(&5));
        waiters.applied(10, Some(5), Some(result(10)));
        deliver(std::mem::take(&mut waiters.settled));
        assert!(matches!(
            answered.try_recv(),
            Ok(Resolution::Applied(WriteResult { index: 10, .. }))
        ));

        // Not placed yet (a forwarded proposal's placement still on its way): the id decides.
        let (reply, mut answered) = answer();
        waiters.by_request.insert(
            6,
            Waiter {
                reply,
                placed_at: None,
            },
        );
        waiters.applied(11, Some(6), Some(result(11)));
        deliver(std::mem::take(&mut waiters.settled));
        assert!(matches!(answered.try_recv(), Ok(Resolution::Applied(_))));
        // Its placement arriving afterwards finds nothing to do.
        waiters.placed(6, 11);
        assert!(waiters.by_index.is_empty());
    }
}
