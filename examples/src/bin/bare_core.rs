//! The bare consensus core, driven by hand: three peers in one process, their messages carried
//! by a queue, their storage in memory. Everything `raft-node` does for a service, in one loop:
//! tick, deliver, persist then report, send, apply then report.
//!
//! Run it: `cargo run -p raft-examples --bin bare_core`

use std::collections::VecDeque;
use std::error::Error;

use raft_node::core::{Config, Configuration, EntryKind, MemStorage, Message, NodeId, Raft};
use raft_node::Bytes;

/// Commands the example commits.
const COMMANDS: usize = 5;
/// Virtual time it may take: an election takes at most two election timeouts of 10-20 ticks.
const TICKS_MAX: usize = 1_000;

fn main() -> Result<(), Box<dyn Error>> {
    let voters = Configuration::new([NodeId(1), NodeId(2), NodeId(3)]);
    let mut peers = Vec::new();
    for id in voters.members() {
        // The seed fixes the peer's randomized election timeout: the same seeds, the same run.
        let storage = MemStorage::new(voters.clone());
        peers.push(Raft::new(Config::new(id, id.0), storage)?);
    }
    let mut applied: Vec<Vec<Bytes>> = vec![Vec::new(); peers.len()];
    let mut network: VecDeque<Message> = VecDeque::new();
    let mut proposed = 0;
    for _ in 0..TICKS_MAX {
        for peer in &mut peers {
            peer.tick();
        }
        // Deliver what was sent. A message the core refuses (stale, misaddressed) is dropped,
        // as a network may drop any message: Raft copes.
        while let Some(message) = network.pop_front() {
            let to = message.to.0 as usize - 1;
            let _ = peers[to].step(message);
            for (index, peer) in peers.iter_mut().enumerate() {
                drive(peer, &mut network, &mut applied[index]);
            }
        }
        for (index, peer) in peers.iter_mut().enumerate() {
            drive(peer, &mut network, &mut applied[index]);
        }
        if let Some(leader) = peers.iter_mut().find(|peer| peer.state().1) {
            if proposed < COMMANDS && leader.propose(Bytes::from(format!("x={proposed}"))).is_ok() {
                proposed += 1;
            }
        }
        if applied.iter().all(|log| log.len() == COMMANDS) {
            break;
        }
    }
    for (index, log) in applied.iter().enumerate() {
        println!("peer {} applied {:?}", index + 1, log);
    }
    if applied
        .iter()
        .any(|log| log.len() != COMMANDS || *log != applied[0])
    {
        return Err("the peers did not all apply the same commands".into());
    }
    println!(
        "all {} peers applied the same {COMMANDS} commands",
        peers.len()
    );
    Ok(())
}

/// Hands out everything `peer` has ready: its messages to the network, its writes to storage
/// (reported back once "durable", which releases the messages that had to wait for them),
/// committed commands to the state machine (here, the list `applied`).
fn drive(peer: &mut Raft<MemStorage>, network: &mut VecDeque<Message>, applied: &mut Vec<Bytes>) {
    // Safe as written: a core stopped by a storage failure has nothing ready.
    while peer.has_ready() {
        let ready = peer.ready();
        network.extend(ready.messages);
        if let Some(write) = ready.persist {
            let id = write.id;
            peer.storage_mut().persist(write);
            peer.on_persisted(id);
        }
        if let Some(snapshot) = ready.snapshot_to_apply {
            // A service would replace its state with `snapshot.data`; this one never compacts.
            peer.on_applied(snapshot.meta.last_included.index);
        }
        for entry in ready.committed_entries {
            // No-ops (a new leader's first entry) and configuration entries take an index too:
            // they are reported applied like commands, though there is nothing to apply.
            if entry.kind == EntryKind::Normal {
                applied.push(entry.data.clone());
            }
            peer.on_applied(entry.index());
        }
    }
}
