//! Exhaustive exploration of a small cluster: every state reachable within [`Bounds`] is
//! visited once, breadth first, and the safety invariants are checked in each.
//!
//! ```text
//!  initial world (3 fresh peers) ─► frontier ─► pop a world ─► every enabled action:
//!     timeout(p)  a follower's or candidate's election timer fires / a leader's heartbeat
//!     deliver(m)  any message in flight, in any order      drop(m) · duplicate(m)
//!     propose(p)  a command at a leader                    persist(p): p's oldest write is durable
//!     crash(p)    p restarts from what its disk holds
//!        └─► successor ─► over a bound? discard ─► digest seen? discard
//!                        ─► check invariants ─► violation: replay the action path, print it
//!                        ─► else record (parent, action), push onto the frontier
//! ```
//!
//! A random seed finds many bugs and misses those that need one exact interleaving; within
//! its bounds the explorer misses none. Breadth first, so the first violation found comes with
//! a shortest trace to it.
//!
//! ## Why a search of our own, not `stateright`
//!
//! The core is sans-I/O: a peer is a plain value that is stepped, so a world (peers, messages
//! in flight, budgets, the checkers' history) is cloned and stepped directly, and an action is
//! one call into the real `raft_core::Raft`. `stateright`'s `Model` would take the same
//! clone-and-step (its state must be `Hash + Send + Sync`, `Debug` to print a path: a wrapper
//! around [`raft_core::Raft::hash_state`] and a printer of our own), and offers a parallel
//! checker and a web explorer. What it would not give: a trace that shows what each step
//! caused in raft-core's own `Display`, and rebuilding waiting states by replay when memory
//! runs short. On a shared two-core machine a parallel checker buys little; the search is a
//! loop of about a hundred lines (a `HashSet` of 64-bit digests, an arena of (parent, action)
//! for traces, a FIFO of worlds) and adds no dependency.
//!
//! ## The model and its choices
//!
//! - **Time** is abstracted to whole timeouts: `timeout(p)` ticks `p` until its timer fires
//!   (a follower or candidate campaigns, a leader sends a heartbeat), so the randomized
//!   election timeout only changes how many ticks that takes, not which states follow. The
//!   core's seeded generator is used only for that draw; [`raft_core::Raft::hash_state`]
//!   leaves the clocks and the generator out of the digest. CheckQuorum and leases are off
//!   (they are clock-driven: a follower that heard from a leader "recently" ignores
//!   campaigns, which whole-timeout actions do not model); PreVote is a bound
//!   ([`Bounds::pre_vote`]). Safety does not rest on either.
//! - **Persistence** is asynchronous by default ([`Persistence::Deferred`]): a write the core
//!   hands out waits in the peer's disk queue until a `persist(p)` action makes the oldest
//!   one durable (and reports it with `on_persisted`), so a crash loses exactly the writes
//!   still queued, and messages the core holds back until a write is durable wait with it
//!   (the orderings the core's hand-off exists for). [`Persistence::Immediate`] writes at
//!   once, a smaller space for larger bounds.
//! - **Apply** happens at once, when entries are handed out: applying only moves the applied
//!   cursor and the state machine (a digest of the commands), which no message or vote
//!   depends on, so making it an action would multiply states without new behaviour.
//! - **Messages** form a multiset (equal messages are one choice); the number in flight is
//!   bounded: an action after which more are in flight is not taken. Duplicates are bounded
//!   separately; drops are free (they only shrink the world).
//! - **Depth**: [`Bounds::depth_max`] limits the search to every interleaving of that many
//!   actions, for spaces (deferred writes with crashes) too large to finish otherwise.
//! - **Memory**: up to [`Bounds::frontier_worlds_max`] waiting worlds are held (about 10 KiB
//!   each); beyond that a waiting state is kept as its arena index and rebuilt by replaying
//!   its path when its turn comes (deterministic: the same actions on the same seeds).
//! - **Crashes** restart the peer at once from its disk ([`raft_core::MemStorage`]), with a
//!   fresh state machine that re-applies what the disk says is committed.
//! - **Digest**: each peer's [`raft_core::Raft::hash_state`], its disk queue, state machine
//!   digest and applied index, the multiset of messages, the budgets used, and the history the
//!   checkers need (below). 64 bits: at ten million states a collision (which would skip a
//!   state, never report a false one) has odds of about 3 in a million. No symmetry reduction:
//!   peer ids and commands appear in messages and logs, and a canonical renaming would cost
//!   more code than the states it saves at these bounds.
//!
//! ## Invariants
//!
//! The simulator's own checkers (`invariants/`), fed each world: election safety (from the
//! history of (term, leader) pairs), log matching (over every peer's log and every append in
//! flight), committed entries never change term, a newly committed entry is on a majority of
//! disks, leader completeness (a peer that becomes leader holds every entry committed so far in
//! an earlier term), state-machine safety (from the history of
//! what was applied at each index, with a state digest), one durable vote per term (at every
//! write), and no peer stopped on an error. A violation is reported with the shortest action
//! path to it, replayed and printed with raft-core's `Display` for messages and writes
//! ([`Counterexample`]).
//!
//! ## Planted bugs
//!
//! [`PlantedBug`] changes what the explorer hands the core, never the core: with
//! [`PlantedBug::VoteWithoutLogCheck`] every vote request is delivered with its `last_log`
//! rewritten to the receiver's own last entry, so every voter finds every candidate's log up
//! to date (§5.4.1's check skipped). The tests assert the explorer finds it, with its trace.

mod checks;
mod search;
mod trace;
mod world;

use std::fmt;
use std::time::Duration;

pub use search::{explore, explore_with_progress, PROGRESS_EVERY_STATES};

use crate::invariants::Violation;

/// When a write the core hands out becomes durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// At once, before anything else happens.
    Immediate,
    /// When a `persist(p)` action completes the peer's oldest write; a crash loses the rest.
    Deferred,
}

/// A bug the explorer plants by rewriting what it delivers, to show it would be found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Voters grant votes without the up-to-date log check (§5.4.1): every vote request
    /// arrives claiming the receiver's own last log entry.
    VoteWithoutLogCheck,
}

/// The bounds of an exploration; everything reachable inside them is visited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Voters of the cluster (ids 1..=peers).
    pub peers: u64,
    /// No campaign beyond this term.
    pub term_max: u64,
    /// Client commands proposed, in all.
    pub commands_max: u32,
    /// Messages in flight at once.
    pub in_flight_max: usize,
    /// Crashes (each with an immediate restart from disk), in all.
    pub crashes_max: u32,
    /// Messages duplicated, in all.
    pub duplicates_max: u32,
    /// When writes become durable.
    pub persistence: Persistence,
    /// Peers probe with a pre-vote before campaigning (thesis §9.6).
    pub pre_vote: bool,
    /// Only states within this many actions of the initial one (every interleaving of that
    /// many steps); `None`: no limit but the others.
    pub depth_max: Option<u32>,
    /// Stop after this many distinct states (the report then says it is incomplete).
    pub states_max: Option<u64>,
    /// Worlds held in memory while they wait to be expanded (about 10 KiB each for three
    /// peers); states beyond are kept as their action path and rebuilt by replaying it,
    /// trading time for memory.
    pub frontier_worlds_max: usize,
    /// A bug to plant, if any.
    pub planted_bug: Option<PlantedBug>,
}

impl Default for Bounds {
    /// 3 peers, terms up to 3, 2 commands, 4 messages in flight, 1 crash, 1 duplicate,
    /// deferred persistence, no pre-vote, 100,000 worlds in memory (about 1 GiB).
    fn default() -> Bounds {
        Bounds {
            peers: 3,
            term_max: 3,
            commands_max: 2,
            in_flight_max: 4,
            crashes_max: 1,
            duplicates_max: 1,
            persistence: Persistence::Deferred,
            pre_vote: false,
            depth_max: None,
            states_max: None,
            frontier_worlds_max: 100_000,
            planted_bug: None,
        }
    }
}

impl Bounds {
    /// The bounds of the test suite's run: 3 peers, terms up to 2, no client command (the new
    /// leaders' no-ops are the entries), 2 messages in flight, no crash or duplicate, writes
    /// durable at once. About 120,000 states: a few seconds.
    pub fn small() -> Bounds {
        Bounds {
            term_max: 2,
            commands_max: 0,
            in_flight_max: 2,
            crashes_max: 0,
            duplicates_max: 0,
            persistence: Persistence::Immediate,
            ..Bounds::default()
        }
    }

    /// `self` with any of these environment variables applied: `RAFT_EXPLORE_PEERS`,
    /// `RAFT_EXPLORE_TERMS`, `RAFT_EXPLORE_COMMANDS`, `RAFT_EXPLORE_IN_FLIGHT`,
    /// `RAFT_EXPLORE_CRASHES`, `RAFT_EXPLORE_DUPLICATES`, `RAFT_EXPLORE_DEPTH_MAX`,
    /// `RAFT_EXPLORE_STATES_MAX`,
    /// `RAFT_EXPLORE_WORLDS_IN_MEMORY` (numbers), `RAFT_EXPLORE_PERSIST` (`immediate` or
    /// `deferred`) and `RAFT_EXPLORE_PRE_VOTE` (`1` or `0`). A value that does not parse is an
    /// error naming the variable.
    pub fn with_env(mut self) -> Result<Bounds, String> {
        fn number<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
            match std::env::var(name) {
                Ok(value) => value
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={value:?} is not a number in range")),
                Err(_) => Ok(None),
            }
        }
        if let Some(peers) = number("RAFT_EXPLORE_PEERS")? {
            self.peers = peers;
        }
        if let Some(terms) = number("RAFT_EXPLORE_TERMS")? {
            self.term_max = terms;
        }
        if let Some(commands) = number("RAFT_EXPLORE_COMMANDS")? {
            self.commands_max = commands;
        }
        if let Some(in_flight) = number("RAFT_EXPLORE_IN_FLIGHT")? {
            self.in_flight_max = in_flight;
        }
        if let Some(crashes) = number("RAFT_EXPLORE_CRASHES")? {
            self.crashes_max = crashes;
        }
        if let Some(duplicates) = number("RAFT_EXPLORE_DUPLICATES")? {
            self.duplicates_max = duplicates;
        }
        if let Some(depth) = number("RAFT_EXPLORE_DEPTH_MAX")? {
            self.depth_max = Some(depth);
        }
        if let Some(states) = number("RAFT_EXPLORE_STATES_MAX")? {
            self.states_max = Some(states);
        }
        if let Some(worlds) = number("RAFT_EXPLORE_WORLDS_IN_MEMORY")? {
            self.frontier_worlds_max = worlds;
        }
        if let Ok(value) = std::env::var("RAFT_EXPLORE_PERSIST") {
            self.persistence = match value.trim() {
                "immediate" => Persistence::Immediate,
                "deferred" => Persistence::Deferred,
                _ => {
                    return Err(format!(
                        "RAFT_EXPLORE_PERSIST={value:?} is not immediate|deferred"
                    ))
                }
            };
        }
        if let Ok(value) = std::env::var("RAFT_EXPLORE_PRE_VOTE") {
            self.pre_vote = match value.trim() {
                "1" => true,
                "0" => false,
                _ => return Err(format!("RAFT_EXPLORE_PRE_VOTE={value:?} is not 1|0")),
            };
        }
        if self.peers == 0 {
            return Err("RAFT_EXPLORE_PEERS must be at least 1".to_string());
        }
        Ok(self)
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peers={} terms<={} commands<={} in-flight<={} crashes<={} duplicates<={} persist={} pre-vote={}",
            self.peers,
            self.term_max,
            self.commands_max,
            self.in_flight_max,
            self.crashes_max,
            self.duplicates_max,
            match self.persistence {
                Persistence::Immediate => "immediate",
                Persistence::Deferred => "deferred",
            },
            if self.pre_vote { "on" } else { "off" },
        )?;
        if let Some(depth_max) = self.depth_max {
            write!(f, " depth<={depth_max}")?;
        }
        if let Some(states_max) = self.states_max {
            write!(f, " states<={states_max}")?;
        }
        if let Some(bug) = self.planted_bug {
            write!(f, " planted={bug:?}")?;
        }
        Ok(())
    }
}

/// What an exploration found.
#[derive(Debug)]
pub struct ExploreReport {
    /// The bounds explored.
    pub bounds: Bounds,
    /// Distinct states visited (the initial one included).
    pub states: u64,
    /// Successors generated, seen before or not (bound-breaking ones excluded).
    pub transitions: u64,
    /// Actions on the longest shortest path to a state.
    pub depth_max: u32,
    /// The most states waiting in the frontier at once.
    pub frontier_max: usize,
    /// States rebuilt by replaying their path (the frontier held more than
    /// [`Bounds::frontier_worlds_max`] worlds).
    pub replayed: u64,
    /// Every reachable state was visited (within `depth_max`, if set): no violation stopped
    /// the search, and `states_max` was not reached.
    pub complete: bool,
    /// Wall-clock time of the search.
    pub elapsed: Duration,
    /// The first violation found (breadth first: at the smallest depth), with its trace.
    pub counterexample: Option<Counterexample>,
}

impl fmt::Display for ExploreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "explored {}: {} states, {} transitions, depth {}, frontier at most {} ({} replayed), {:.1} s, {}",
            self.bounds,
            self.states,
            self.transitions,
            self.depth_max,
            self.frontier_max,
            self.replayed,
            self.elapsed.as_secs_f64(),
            match (&self.counterexample, self.complete) {
                (Some(_), _) => "VIOLATION",
                (None, true) => "complete, no violation",
                (None, false) => "stopped at the state limit, no violation so far",
            }
        )?;
        if let Some(counterexample) = &self.counterexample {
            write!(f, "\n{counterexample}")?;
        }
        Ok(())
    }
}

/// A broken invariant and the shortest action path that breaks it.
#[derive(Clone, Debug)]
pub struct Counterexample {
    /// The invariant and what was observed.
    pub violation: Violation,
    /// One line per action (and indented lines for what it caused), oldest first.
    pub steps: Vec<String>,
    /// The peers at the end, one line each.
    pub final_state: Vec<String>,
    /// Actions in the path.
    pub length: usize,
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invariant violated: {}\n  {}\nshortest trace ({} actions):",
            self.violation.invariant, self.violation.detail, self.length
        )?;
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        writeln!(f, "final state:")?;
        for line in &self.final_state {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}
