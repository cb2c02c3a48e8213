//! The breadth-first search: a FIFO of worlds, a set of digests seen, and an arena of
//! (parent, action) from which a trace is rebuilt.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use super::checks::check_world;
use super::trace::counterexample;
use super::world::{Action, World};
use super::{Bounds, ExploreReport};
use crate::invariants::Violation;

/// How a state was first reached: from the state at `parent` in the arena, by `action`.
struct Reached {
    parent: u32,
    action: Option<Action>,
    depth: u32,
}

/// Visits every state reachable within `bounds`, breadth first, checking every invariant in
/// each; stops at the first violation (a shortest one) or at `bounds.states_max`.
pub fn explore(bounds: &Bounds) -> ExploreReport {
    explore_with_progress(bounds, |_| {})
}

/// Distinct states between two calls of the progress callback.
pub const PROGRESS_EVERY_STATES: u64 = 1 << 20;

/// [`explore`], calling `progress` with the figures so far every [`PROGRESS_EVERY_STATES`]
/// states (for long runs).
pub fn explore_with_progress(
    bounds: &Bounds,
    mut progress: impl FnMut(&ExploreReport),
) -> ExploreReport {
    let started = Instant::now();
    let mut initial = World::initial(bounds);
    let mut report = ExploreReport {
        bounds: bounds.clone(),
        states: 1,
        transitions: 0,
        depth_max: 0,
        frontier_max: 1,
        replayed: 0,
        complete: false,
        elapsed: started.elapsed(),
        counterexample: None,
    };
    let mut arena = vec![Reached {
        parent: 0,
        action: None,
        depth: 0,
    }];
    if let Err(violation) = check_world(&mut initial) {
        report.counterexample = Some(counterexample(bounds, &[], violation));
        return finish(report, started);
    }
    let mut seen = HashSet::new();
    seen.insert(initial.digest());
    // Worlds waiting to be expanded; past `frontier_worlds_max` of them only the arena index
    // is kept, and the world is rebuilt by replaying its path when its turn comes.
    let mut frontier = VecDeque::from([(0u32, Some(initial))]);
    let mut worlds_held = 1usize;

    while let Some((at, world)) = frontier.pop_front() {
        let world = match world {
            Some(world) => {
                worlds_held -= 1;
                world
            }
            None => {
                report.replayed += 1;
                replay(bounds, &path_to(&arena, at), |_, _, _, _, _| {})
            }
        };
        for action in world.actions(bounds) {
            let mut next = world.clone();
            let Some(outcome) = next.take(bounds, action, None) else {
                continue;
            };
            report.transitions += 1;
            let violation = match outcome {
                Ok(()) => {
                    if !seen.insert(next.digest()) {
                        continue;
                    }
                    check_world(&mut next).err()
                }
                Err(violation) => Some(violation),
            };
            let depth = arena[at as usize].depth + 1;
            let index = u32::try_from(arena.len()).expect("fewer than 2^32 states");
            arena.push(Reached {
                parent: at,
                action: Some(action),
                depth,
            });
            report.states += 1;
            if report.states.is_multiple_of(PROGRESS_EVERY_STATES) {
                report.elapsed = started.elapsed();
                progress(&report);
            }
            report.depth_max = report.depth_max.max(depth);
            if let Some(violation) = violation {
                let path = path_to(&arena, index);
                report.counterexample = Some(counterexample(bounds, &path, violation));
                return finish(report, started);
            }
            if bounds.states_max.is_some_and(|max| report.states >= max) {
                return finish(report, started);
            }
            if bounds.depth_max.is_some_and(|max| depth >= max) {
                continue;
            }
            if worlds_held < bounds.frontier_worlds_max {
                worlds_held += 1;
                frontier.push_back((index, Some(next)));
            } else {
                frontier.push_back((index, None));
            }
        }
        report.frontier_max = report.frontier_max.max(frontier.len());
    }
    report.complete = true;
    finish(report, started)
}

fn finish(mut report: ExploreReport, started: Instant) -> ExploreReport {
    report.elapsed = started.elapsed();
    report
}

/// The actions from the initial state to the state at `index`, oldest first.
fn path_to(arena: &[Reached], mut index: u32) -> Vec<Action> {
    let mut path = Vec::new();
    while let Some(action) = arena[index as usize].action {
        path.push(action);
        index = arena[index as usize].parent;
    }
    path.reverse();
    path
}

/// Replays `path` from the initial state, calling `on_step` after each action with the world
/// before it, what it caused and the violation it led to, if any.
pub(super) fn replay(
    bounds: &Bounds,
    path: &[Action],
    mut on_step: impl FnMut(usize, Action, &World, super::world::Effects, Option<&Violation>),
) -> World {
    let mut world = World::initial(bounds);
    for (number, &action) in path.iter().enumerate() {
        let before = world.clone();
        let mut effects = super::world::Effects::default();
        let outcome = world.take(bounds, action, Some(&mut effects));
        // The checks also record in the world's history what became committed, as they did
        // when the search first took this step.
        let violation = match outcome {
            Some(Err(violation)) => Some(violation),
            _ => check_world(&mut world).err(),
        };
        on_step(number, action, &before, effects, violation.as_ref());
    }
    world
}
