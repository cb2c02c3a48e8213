//! Building blocks of the suite's requests: entries, snapshots, configurations and hard states
//! whose contents follow from their identity, so that a replaced entry differs from its
//! replacement in its bytes and not only in its term.

use bytes::Bytes;
use rand::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::ready::PersistRequest;
use crate::types::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, NodeId, Snapshot, SnapshotMeta, Term,
};

/// The configuration most scenarios start from.
pub(super) fn bootstrap() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

/// A configuration chosen by `selector`, so that a store that keeps only part of one is
/// caught: its low six bits pick the voters among peers 1..=6 (peer 1 when none is picked),
/// bit 6 makes it joint (the outgoing voters are the incoming ones moved up by one), bit 7
/// adds two learners.
pub(super) fn configuration(selector: u64) -> Configuration {
    let mut voters: Vec<NodeId> = (0..6)
        .filter(|bit| selector >> bit & 1 == 1)
        .map(|bit| NodeId(bit + 1))
        .collect();
    if voters.is_empty() {
        voters.push(NodeId(1));
    }
    let mut configuration = Configuration::new(voters.iter().copied());
    if selector >> 6 & 1 == 1 {
        configuration.outgoing = voters.iter().map(|voter| NodeId(voter.0 + 1)).collect();
    }
    if selector >> 7 & 1 == 1 {
        configuration.learners = [NodeId(11), NodeId(12)].into_iter().collect();
    }
    configuration
}

/// Three configurations unlike [`bootstrap`] and unlike each other: four voters; joint with
/// learners; joint with five incoming voters.
pub(super) fn configurations() -> [Configuration; 3] {
    [
        configuration(0b0000_1111),
        configuration(0b1100_0011),
        configuration(0b0101_1111),
    ]
}

/// `bytes` pseudo-random bytes that follow from the entry or snapshot `(index, term)`; `salt`
/// tells kinds of payload apart.
pub(super) fn data(index: u64, term: u64, salt: u64, bytes: usize) -> Bytes {
    let seed = index ^ term.rotate_left(21) ^ salt.rotate_left(42);
    let mut generator = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut out = vec![0; bytes];
    generator.fill_bytes(&mut out);
    Bytes::from(out)
}

/// A normal entry with `bytes` bytes of data.
pub(super) fn normal(term: u64, index: u64, bytes: usize) -> Entry {
    Entry {
        id: LogId::new(Term(term), Index(index)),
        kind: EntryKind::Normal,
        data: data(index, term, 1, bytes),
    }
}

/// The empty entry of a new leader.
pub(super) fn noop(term: u64, index: u64) -> Entry {
    Entry {
        id: LogId::new(Term(term), Index(index)),
        kind: EntryKind::Noop,
        data: Bytes::new(),
    }
}

/// A configuration entry carrying `configuration`.
pub(super) fn configuration_entry(term: u64, index: u64, configuration: &Configuration) -> Entry {
    Entry {
        id: LogId::new(Term(term), Index(index)),
        kind: EntryKind::Configuration,
        data: configuration.encode(),
    }
}

/// Normal entries of `term` at `indexes`, of assorted sizes (empty, small, a few hundred
/// bytes, now and then a few kilobytes).
pub(super) fn normals(term: u64, indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes
        .map(|index| {
            let bytes = match index % 7 {
                0 => 0,
                3 => 3000 + (index % 5) as usize * 100,
                other => (other * 37 + index % 11) as usize,
            };
            normal(term, index, bytes)
        })
        .collect()
}

/// A snapshot through `(term, index)` holding `configuration`; `salt` varies its data, so two
/// snapshots of one index can be told apart.
pub(super) fn snapshot(
    term: u64,
    index: u64,
    configuration: &Configuration,
    salt: u64,
) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::new(Term(term), Index(index)),
            configuration: configuration.clone(),
        },
        data: data(index, term, 100 + salt, 40 + (salt % 3) as usize * 500),
    }
}

/// The snapshot of a new store: nothing covered, the bootstrap configuration.
pub(super) fn empty_snapshot(bootstrap: &Configuration) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::default(),
            configuration: bootstrap.clone(),
        },
        data: Bytes::new(),
    }
}

/// A hard state.
pub(super) fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.map(NodeId),
        commit: Index(commit),
    }
}

/// A request that appends `entries` (its id is set when it is written).
pub(super) fn append(entries: Vec<Entry>) -> PersistRequest {
    PersistRequest {
        entries,
        ..PersistRequest::default()
    }
}

/// A request that appends `entries` and writes `hard_state` (a commit of them, say).
pub(super) fn append_with(entries: Vec<Entry>, hard_state: HardState) -> PersistRequest {
    PersistRequest {
        entries,
        hard_state: Some(hard_state),
        ..PersistRequest::default()
    }
}

/// A request that stores a snapshot from a leader and writes `hard_state` along.
pub(super) fn install_with(snapshot: Snapshot, hard_state: HardState) -> PersistRequest {
    PersistRequest {
        snapshot: Some(snapshot),
        hard_state: Some(hard_state),
        ..PersistRequest::default()
    }
}

/// A request that writes a hard state.
pub(super) fn save(hard_state: HardState) -> PersistRequest {
    PersistRequest {
        hard_state: Some(hard_state),
        ..PersistRequest::default()
    }
}

/// A request that stores a snapshot.
pub(super) fn install(snapshot: Snapshot) -> PersistRequest {
    PersistRequest {
        snapshot: Some(snapshot),
        ..PersistRequest::default()
    }
}
