//! A user's state machine under the simulator: every peer runs one beside the built-in digest
//! service, and the checks below hold it to what replication needs of it.
//!
//! ```text
//!  committed entry i ─► peer's machine.apply(i, command) ─► fingerprint ═╗
//!       └─ first peer to apply i ─► reference replica.apply(i, command) ─► fingerprint[i]
//!  snapshot due      ─► machine.snapshot() ─► fresh.restore(i, bytes) ─► fingerprints equal?
//!  snapshot to apply ─► fresh.restore(i, bytes) ─► fingerprint ══════════╣ equal to
//!                                                                        ╚ fingerprint[i]?
//! ```
//!
//! The reference replica is one more instance of the machine that never crashes and applies
//! every committed command exactly once, in order, from an empty state. When a peer's
//! fingerprint differs from the reference's at the same index, the failure names the cause:
//! - `machine-deterministic`: the peer applied every command from an empty state too, or two
//!   fresh machines replaying the commands from an empty state do not both reach the
//!   reference's fingerprint: `apply` depends on something besides the commands;
//! - `machine-replicas-agree`: the peer's state came from a snapshot (a leader's, or its own
//!   after a restart) and the replays agree with the reference: the snapshot lost or changed
//!   part of the state.
//!
//! A snapshot that does not restore to the state it was taken from fails at once
//! (`machine-snapshot-round-trip`), and a panic in the machine fails the run with
//! `machine-panicked`.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};

use bytes::Bytes;
use raft_core::{Entry, EntryKind, Index, NodeId};

use crate::cluster::panic_message;
use crate::invariants::{Check, Violation};
use crate::trace::hash_bytes;
use crate::SimRng;

/// A replicated state machine of the user's, to be run by every simulated peer (see
/// [`crate::check_state_machine`]). `Default` is the empty state every peer starts from.
///
/// Determinism is the contract: the state after `apply` must depend only on the state before
/// and the command (and its index) — not on a clock, a random generator, a hash map's
/// iteration order or anything else outside the log.
pub trait StateMachine: 'static {
    /// Applies the command committed at `index` (the next index; configuration entries and
    /// the leaders' empty entries are not handed to the machine).
    fn apply(&mut self, index: Index, command: &[u8]);

    /// The whole state, serialized: what a lagging or restarted peer restores from.
    fn snapshot(&self) -> Bytes;

    /// Replaces the state with one serialized by [`StateMachine::snapshot`] through `index`.
    /// An error means the bytes are not a snapshot of this machine.
    fn restore(&mut self, index: Index, snapshot: &[u8]) -> Result<(), String>;

    /// A digest of the state: equal states must have equal fingerprints, and unequal ones
    /// should not. The default hashes [`StateMachine::snapshot`], which suits a canonical
    /// encoding (a `BTreeMap`, say); override it when the encoding is not.
    fn fingerprint(&self) -> u64 {
        hash_bytes(&self.snapshot())
    }

    /// A command for the simulated clients to propose, drawn from the run's generator (so the
    /// seed fixes the workload). Keep commands small: each is one log entry.
    fn random_command(rng: &mut SimRng) -> Bytes
    where
        Self: Sized;
}

/// How a cluster makes machines and commands, fixed by the machine's type.
#[derive(Clone, Copy)]
pub(crate) struct MachineKind {
    pub(crate) new_machine: fn() -> Box<dyn StateMachine>,
    pub(crate) random_command: fn(&mut SimRng) -> Bytes,
}

impl MachineKind {
    pub(crate) fn of<M: StateMachine + Default>() -> MachineKind {
        fn new_machine<M: StateMachine + Default>() -> Box<dyn StateMachine> {
            Box::new(M::default())
        }
        MachineKind {
            new_machine: new_machine::<M>,
            random_command: M::random_command,
        }
    }
}

/// Counts of what the state-machine checks did in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineCounters {
    /// Commands the peers' machines applied (the reference replica's not counted).
    pub commands_applied: u64,
    /// Fingerprints compared with the reference replica's at the same index.
    pub fingerprints_compared: u64,
    /// Snapshots restored into a fresh machine right after they were taken.
    pub snapshots_round_tripped: u64,
    /// Snapshots a peer's machine restored from (a leader's, or its own after a restart).
    pub snapshots_restored: u64,
}

impl std::ops::AddAssign for MachineCounters {
    fn add_assign(&mut self, other: MachineCounters) {
        self.commands_applied += other.commands_applied;
        self.fingerprints_compared += other.fingerprints_compared;
        self.snapshots_round_tripped += other.snapshots_round_tripped;
        self.snapshots_restored += other.snapshots_restored;
    }
}

/// One peer's machine and where its state came from.
pub(crate) struct PeerMachine {
    state: Box<dyn StateMachine>,
    /// The snapshot this incarnation's state was restored from, if any.
    restored_at: Option<Index>,
}

impl PeerMachine {
    /// The machine.
    pub(crate) fn state(&self) -> &dyn StateMachine {
        self.state.as_ref()
    }
}

/// Runs `call` on a machine, turning a panic into a violation.
fn guarded<T>(what: &str, call: impl FnOnce() -> T) -> Result<T, Violation> {
    panic::catch_unwind(AssertUnwindSafe(call)).map_err(|payload| Violation {
        invariant: "machine-panicked",
        detail: format!("{what} panicked: {}", panic_message(payload.as_ref())),
    })
}

/// The machines' side of a cluster: the reference replica and every fingerprint it passed.
pub(crate) struct Machines {
    kind: MachineKind,
    reference: Box<dyn StateMachine>,
    reference_applied: Index,
    /// The reference's fingerprint after each index it applied (configuration entries keep
    /// the one before).
    fingerprints: BTreeMap<Index, u64>,
    /// Every command the reference applied, to replay when a replica disagrees.
    commands: BTreeMap<Index, Bytes>,
    pub(crate) counters: MachineCounters,
}

impl Machines {
    pub(crate) fn new(kind: MachineKind) -> Machines {
        let reference = (kind.new_machine)();
        let empty = reference.fingerprint();
        Machines {
            kind,
            reference,
            reference_applied: Index(0),
            fingerprints: BTreeMap::from([(Index(0), empty)]),
            commands: BTreeMap::new(),
            counters: MachineCounters::default(),
        }
    }

    pub(crate) fn random_command(&self, rng: &mut SimRng) -> Bytes {
        (self.kind.random_command)(rng)
    }

    /// A machine in the empty state, for a peer that boots.
    pub(crate) fn boot(&self) -> PeerMachine {
        PeerMachine {
            state: (self.kind.new_machine)(),
            restored_at: None,
        }
    }

    /// `peer`'s machine applies `entry` (committed, the next index); the reference replica
    /// applies it too if no peer has, and the two fingerprints must agree.
    pub(crate) fn apply(
        &mut self,
        peer: NodeId,
        machine: &mut PeerMachine,
        entry: &Entry,
    ) -> Check {
        let index = entry.index();
        assert!(
            index <= self.reference_applied.next(),
            "invariant violated: reference-replica-in-step\n  {peer} applies {index}, the \
             reference replica only reached {}",
            self.reference_applied
        );
        if index > self.reference_applied {
            self.apply_to_reference(entry)?;
        }
        if entry.kind != EntryKind::Normal {
            return Ok(());
        }
        guarded(&format!("{peer}'s apply of {index}"), || {
            machine.state.apply(index, &entry.data)
        })?;
        self.counters.commands_applied += 1;
        let fingerprint = guarded("fingerprint", || machine.state.fingerprint())?;
        self.compare(peer, machine, index, fingerprint)
    }

    fn apply_to_reference(&mut self, entry: &Entry) -> Check {
        let index = entry.index();
        let fingerprint = if entry.kind == EntryKind::Normal {
            let reference = &mut self.reference;
            self.commands.insert(index, entry.data.clone());
            guarded(&format!("the reference replica's apply of {index}"), || {
                reference.apply(index, &entry.data);
                reference.fingerprint()
            })?
        } else {
            self.fingerprints[&self.reference_applied]
        };
        self.reference_applied = index;
        self.fingerprints.insert(index, fingerprint);
        Ok(())
    }

    /// `peer`'s machine at `index` against the reference replica at that index.
    fn compare(
        &mut self,
        peer: NodeId,
        machine: &PeerMachine,
        index: Index,
        fingerprint: u64,
    ) -> Check {
        let Some(&expected) = self.fingerprints.get(&index) else {
            panic!(
                "invariant violated: reference-replica-in-step\n  {peer} is at {index}, the \
                 reference replica passed {}",
                self.reference_applied
            );
        };
        self.counters.fingerprints_compared += 1;
        if fingerprint == expected {
            return Ok(());
        }
        let detail = |how: &str, why: &str| {
            format!(
                "{peer}'s machine, {how}, has fingerprint {fingerprint:#x} at {index}, where \
                 the reference replica (every command applied once, in order, from an empty \
                 state) has {expected:#x}: {why}"
            )
        };
        let nondeterministic = |how: &str| Violation {
            invariant: "machine-deterministic",
            detail: detail(
                how,
                "apply depends on something besides the commands (a clock, a random \
                 generator, a hash map's iteration order, global state)",
            ),
        };
        let Some(restored_at) = machine.restored_at else {
            return Err(nondeterministic(
                "which applied every command from an empty state too",
            ));
        };
        let how =
            format!("restored from a snapshot at {restored_at} and applied the commands after");
        let replays = self.replay_agrees(index)? && self.replay_agrees(index)?;
        if !replays {
            return Err(nondeterministic(&format!(
                "{how} (and fresh machines replaying every command disagree with the reference \
                 too)"
            )));
        }
        Err(Violation {
            invariant: "machine-replicas-agree",
            detail: detail(
                &how,
                "the snapshot lost or changed part of the state (fresh machines replaying every \
                 command agree with the reference)",
            ),
        })
    }

    /// Whether a fresh machine applying every command through `index` from an empty state
    /// reaches the reference's fingerprint there.
    fn replay_agrees(&self, index: Index) -> Result<bool, Violation> {
        let mut fresh = (self.kind.new_machine)();
        let fingerprint = guarded("a replay from an empty state", || {
            for (&at, command) in self.commands.range(..=index) {
                fresh.apply(at, command);
            }
            fresh.fingerprint()
        })?;
        Ok(fingerprint == self.fingerprints[&index])
    }

    /// `peer`'s machine is due a snapshot at `index`: takes it, restores it into a fresh
    /// machine that must reach the same fingerprint, and returns it.
    pub(crate) fn take_snapshot(
        &mut self,
        peer: NodeId,
        machine: &PeerMachine,
        index: Index,
    ) -> Result<Bytes, Violation> {
        let snapshot = guarded("snapshot", || machine.state.snapshot())?;
        let mut fresh = (self.kind.new_machine)();
        let round_trip = |detail: String| Violation {
            invariant: "machine-snapshot-round-trip",
            detail,
        };
        if let Err(reason) = guarded("restore", || fresh.restore(index, &snapshot))? {
            return Err(round_trip(format!(
                "{peer}'s machine refused its own snapshot at {index} ({} bytes): {reason}",
                snapshot.len()
            )));
        }
        let (before, after) = guarded("fingerprint", || {
            (machine.state.fingerprint(), fresh.fingerprint())
        })?;
        if before != after {
            return Err(round_trip(format!(
                "{peer}'s machine took a snapshot at {index} ({} bytes) with fingerprint \
                 {before:#x}; a fresh machine restored from it has {after:#x}",
                snapshot.len()
            )));
        }
        self.counters.snapshots_round_tripped += 1;
        Ok(snapshot)
    }

    /// `peer` restores a snapshot through `index`: a fresh machine restored from `data`, whose
    /// fingerprint must be the reference replica's at `index`.
    pub(crate) fn restore(
        &mut self,
        peer: NodeId,
        index: Index,
        data: &[u8],
    ) -> Result<PeerMachine, Violation> {
        let mut state = (self.kind.new_machine)();
        if let Err(reason) = guarded("restore", || state.restore(index, data))? {
            return Err(Violation {
                invariant: "machine-snapshot-round-trip",
                detail: format!(
                    "{peer}'s machine refused a snapshot at {index} ({} bytes) that a machine \
                     took: {reason}",
                    data.len()
                ),
            });
        }
        let machine = PeerMachine {
            state,
            restored_at: Some(index),
        };
        let fingerprint = guarded("fingerprint", || machine.state.fingerprint())?;
        self.counters.snapshots_restored += 1;
        self.compare(peer, &machine, index, fingerprint)?;
        Ok(machine)
    }
}
