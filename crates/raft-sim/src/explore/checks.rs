//! The simulator's invariant checkers (`crate::invariants`), fed one explored world at a time.
//!
//! The checkers keep history (who led which term, what was committed or applied where); the
//! explorer keeps that history in the world itself ([`Ghost`], part of the digest), so each
//! world is checked by fresh checkers loaded from its own past, whatever path reached it.

use raft_core::{Entry, HardState, Index, LogId, NodeId, Storage};

use super::world::{Applied, Ghost, World};
use crate::invariants::{
    check_durable_majority, CommittedEntries, DurableVote, ElectionSafety, LeaderCompleteness,
    LogMatching, LostWrites, StateMachineSafety, Violation,
};

/// Every check of one world; records what it learned committed in its history.
pub(super) fn check_world(world: &mut World) -> Result<(), Violation> {
    for peer in &world.peers {
        if let Some(error) = peer.raft.fatal_error() {
            return Err(Violation {
                invariant: "peer-never-stops",
                detail: format!("{} stopped: {error}", peer.raft.id()),
            });
        }
        if let Some(violation) = peer.raft.safety_violation() {
            return Err(Violation {
                invariant: "committed-entries-never-overwritten",
                detail: format!("{} stopped: {violation}", peer.raft.id()),
            });
        }
        // The core's own invariants in every explored state, whatever the build profile.
        let broken = peer.raft.invariant_violations();
        if let Some(first) = broken.first() {
            let list: Vec<String> = broken.iter().map(ToString::to_string).collect();
            return Err(Violation {
                invariant: first.invariant,
                detail: format!("{} (core self-check): {}", peer.raft.id(), list.join("; ")),
            });
        }
    }

    let mut election = ElectionSafety::default();
    for &(term, leader) in &world.ghost.leaders {
        election.observe(leader, term, true)?;
    }

    let mut log_matching = LogMatching::default();
    for peer in &world.peers {
        let raft = &peer.raft;
        let entries = raft
            .entries(Index(1), raft.last_index().next())
            .map_err(|error| Violation {
                invariant: "storage-never-fails",
                detail: format!("{} cannot read its log: {error}", raft.id()),
            })?;
        log_matching.record(raft.id(), Some(LogId::default()), &entries)?;
    }
    for (_, message) in &world.network {
        if let raft_core::MessageBody::Append { prev, entries, .. } = &message.body {
            log_matching.record(message.from, Some(*prev), entries)?;
        }
    }

    // What was committed before, then what each peer counts committed now: the fresh ones
    // must be on a majority of the disks of the configuration that counted them.
    let mut committed = CommittedEntries::default();
    for (&index, &term) in &world.ghost.committed {
        let peer = world.peers[0].raft.id();
        committed.record(
            peer,
            LogId::new(term, index),
            world.peers[0].raft.configuration(),
        )?;
    }
    committed.take_fresh();
    for peer in &world.peers {
        committed.observe(&peer.raft, 0)?;
    }
    for (id, configuration) in committed.take_fresh() {
        let disks = world
            .peers
            .iter()
            .map(|peer| (peer.raft.id(), peer.raft.storage() as &dyn Storage));
        check_durable_majority(
            id,
            log_matching.content(id),
            disks,
            &configuration,
            &LostWrites::default(),
        )?;
        world.ghost.committed.insert(id.index, id.term);
    }

    // Leader completeness is a property of the moment of election (§5.4): a leader holds
    // every entry committed before it won. A deposed leader that has not heard of a newer
    // term may lack entries committed since, legitimately.
    if let Some(slot) = world.new_leader {
        LeaderCompleteness::default().observe(&world.peers[slot].raft, &committed)?;
    }
    Ok(())
}

/// State-machine safety for one entry a peer applies, against everything applied before.
pub(super) fn on_apply(
    ghost: &mut Ghost,
    peer: NodeId,
    entry: &Entry,
    machine_after: u64,
) -> Result<(), Violation> {
    let mut checker = StateMachineSafety::default();
    if let Some(known) = ghost.applied.get(&entry.index()) {
        checker.on_apply(known.first_by, &known.entry, known.machine_after)?;
    }
    checker.on_apply(peer, entry, machine_after)?;
    ghost
        .applied
        .entry(entry.index())
        .or_insert_with(|| Applied {
            entry: entry.clone(),
            machine_after,
            first_by: peer,
        });
    Ok(())
}

/// One durable vote per term, and terms that never go back, at every write.
pub(super) fn durable_vote(
    peer: NodeId,
    before: HardState,
    after: HardState,
) -> Result<(), Violation> {
    let mut checker = DurableVote::default();
    checker.on_persisted(peer, before)?;
    checker.on_persisted(peer, after)
}
