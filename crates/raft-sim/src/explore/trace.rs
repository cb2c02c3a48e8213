//! A counterexample as text: the action path replayed from the initial state, each action
//! with what it caused, printed as raft-core prints messages and writes.

use std::fmt::Write as _;

use raft_core::{Index, Role};

use super::search::replay;
use super::world::{Action, World};
use super::{Bounds, Counterexample};
use crate::invariants::Violation;

/// Replays `path` and describes every step.
pub(super) fn counterexample(
    bounds: &Bounds,
    path: &[Action],
    violation: Violation,
) -> Counterexample {
    let mut steps = Vec::new();
    let world = replay(bounds, path, |number, action, before, effects, _| {
        let mut text = format!("{:>3}. {}", number + 1, describe(action, before));
        for line in &effects.lines {
            let _ = write!(text, "\n       {line}");
        }
        steps.push(text);
    });
    Counterexample {
        violation,
        length: path.len(),
        steps,
        final_state: describe_world(&world),
    }
}

fn describe(action: Action, world: &World) -> String {
    let id = |slot: usize| world.peers[slot].raft.id();
    let message = |key: u64| {
        world
            .network
            .iter()
            .find(|(found, _)| *found == key)
            .map_or_else(|| "?".to_string(), |(_, message)| message.to_string())
    };
    match action {
        Action::Timeout(slot) if world.peers[slot].raft.role() == Role::Leader => {
            format!("heartbeat timeout at {}", id(slot))
        }
        Action::Timeout(slot) => format!("election timeout at {}", id(slot)),
        Action::Deliver(key) => format!("deliver {}", message(key)),
        Action::Drop(key) => format!("drop {}", message(key)),
        Action::Duplicate(key) => format!("duplicate {}", message(key)),
        Action::Propose(slot) => format!("propose c{} at {}", world.commands_proposed, id(slot)),
        Action::Persist(slot) => format!("disk of {} completes its oldest write", id(slot)),
        Action::Crash(slot) => format!("crash {} and restart it from its disk", id(slot)),
    }
}

/// One line per peer: role, term, vote, log, commit, and what its disk holds.
pub(super) fn describe_world(world: &World) -> Vec<String> {
    let mut lines: Vec<String> = world
        .peers
        .iter()
        .map(|peer| {
            let raft = &peer.raft;
            let log: Vec<String> = raft
                .entries(Index(1), raft.last_index().next())
                .unwrap_or_default()
                .iter()
                .map(|entry| entry.id.to_string())
                .collect();
            format!(
                "{}: {:?} {} vote={} log=[{}] commit={} disk: {} entries, {} writes queued",
                raft.id(),
                raft.role(),
                raft.term(),
                raft.hard_state()
                    .vote
                    .map_or_else(|| "-".to_string(), |vote| vote.to_string()),
                log.join(" "),
                raft.commit_index(),
                raft.storage().stored_entries().count(),
                peer.writes.len()
            )
        })
        .collect();
    for (_, message) in &world.network {
        lines.push(format!("in flight: {message}"));
    }
    lines
}
