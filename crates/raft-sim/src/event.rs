//! The event queue: everything that happens in a run is an [`Event`] at a virtual time.
//!
//! ```text
//!  schedule(at, event) ──► BinaryHeap keyed by (at, sequence) ──► pop() earliest first
//! ```
//!
//! The sequence number breaks ties in scheduling order, so two events at the same virtual time
//! always run in the same order and a seed replays exactly.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use raft_core::{Message, PersistRequest};

/// Something that happens to one peer at a point of virtual time.
#[derive(Debug)]
pub(crate) enum Event {
    /// The peer's clock ticks.
    Tick { peer: usize, incarnation: u64 },
    /// A message arrives at `message.to`. `from_incarnation` is the sender's incarnation when
    /// it sent the message: a crash loses the messages it had not yet delivered.
    Deliver {
        message: Message,
        from_incarnation: u64,
    },
    /// A write to the peer's disk completes.
    DiskDone {
        peer: usize,
        incarnation: u64,
        request: PersistRequest,
    },
    /// The peer's driving loop runs (after a proposal, read or restart, or a batching
    /// delay).
    Flush { peer: usize, incarnation: u64 },
    /// The service finishes applying the oldest batch in the peer's apply queue.
    ApplyDone { peer: usize, incarnation: u64 },
}

struct Scheduled {
    at_us: u64,
    sequence: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.sequence) == (other.at_us, other.sequence)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.sequence).cmp(&(self.at_us, self.sequence))
    }
}

/// Pending events ordered by time, then by the order they were scheduled in.
#[derive(Default)]
pub(crate) struct EventQueue {
    heap: BinaryHeap<Scheduled>,
    sequence: u64,
}

impl EventQueue {
    pub(crate) fn schedule(&mut self, at_us: u64, event: Event) {
        self.sequence += 1;
        self.heap.push(Scheduled {
            at_us,
            sequence: self.sequence,
            event,
        });
    }

    /// The time of the earliest pending event.
    pub(crate) fn next_time_us(&self) -> Option<u64> {
        self.heap.peek().map(|scheduled| scheduled.at_us)
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, Event)> {
        self.heap
            .pop()
            .map(|scheduled| (scheduled.at_us, scheduled.event))
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_by_scheduling_order() {
        let mut queue = EventQueue::default();
        queue.schedule(
            5,
            Event::Tick {
                peer: 0,
                incarnation: 0,
            },
        );
        queue.schedule(
            3,
            Event::Tick {
                peer: 1,
                incarnation: 0,
            },
        );
        queue.schedule(
            5,
            Event::Tick {
                peer: 2,
                incarnation: 0,
            },
        );
        let order: Vec<(u64, usize)> = std::iter::from_fn(|| queue.pop())
            .map(|(at, event)| match event {
                Event::Tick { peer, .. } => (at, peer),
                _ => unreachable!("only ticks were scheduled"),
            })
            .collect();
        assert_eq!(order, vec![(3, 1), (5, 0), (5, 2)]);
    }
}
