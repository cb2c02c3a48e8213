//! The store (`raftkv::store`): the key-value state machine and its command encoding, one
//! file per topic: each operation's semantics ([`operations`]), exactly-once sessions and their
//! eviction ([`sessions`]), snapshots ([`snapshots`]), the command encoding ([`commands`]),
//! leases ([`leases`]), and properties over random command sequences and hostile bytes ([`properties`]).
//!
//! This file holds what they share: a machine fed consecutive indexes and operation builders.

mod apply_cost;
mod commands;
mod etcd_kv;
mod history_model;
mod leases;
mod operations;
mod properties;
mod revisions;
mod sessions;
mod snapshots;
mod transactions;

use bytes::Bytes;
use raftkv::store::{ClientId, Command, Operation, Outcome, Session, StateMachine, VersionedValue};

const SESSIONS_MAX: usize = 16;

/// A machine fed consecutive indexes.
struct Harness {
    machine: StateMachine,
    index: u64,
}

impl Harness {
    fn new(sessions_max: usize) -> Harness {
        Harness {
            machine: StateMachine::new(sessions_max),
            index: 0,
        }
    }

    fn apply_bytes(&mut self, data: &[u8]) -> Outcome {
        self.index += 1;
        let outcome = self.machine.apply(self.index, data);
        self.machine.check_invariants();
        assert_eq!(self.machine.applied_index(), self.index);
        outcome
    }

    /// Applies `operation` without a session.
    fn apply(&mut self, operation: Operation) -> Outcome {
        self.apply_bytes(&encode(None, operation))
    }

    /// Applies `operation` as request `sequence` of client `client_id`.
    fn apply_as(&mut self, client_id: u64, sequence: u64, operation: Operation) -> Outcome {
        self.apply_bytes(&encode(Some((client_id, sequence)), operation))
    }

    fn get(&self, key: &str) -> Option<&[u8]> {
        self.machine.get(key).map(|value| &value[..])
    }
}

fn encode(session: Option<(u64, u64)>, operation: Operation) -> Bytes {
    Command {
        session: session.map(|(client_id, sequence)| Session {
            client_id: ClientId::number(client_id),
            sequence,
        }),
        operation,
        request_id: None,
    }
    .encode()
}

fn put(key: &str, value: &'static [u8]) -> Operation {
    Operation::Put {
        key: key.into(),
        value: Bytes::from_static(value),
        lease: 0,
    }
}

fn delete(key: &str) -> Operation {
    Operation::Delete { key: key.into() }
}

fn append(key: &str, suffix: &'static [u8]) -> Operation {
    Operation::Append {
        key: key.into(),
        suffix: Bytes::from_static(suffix),
    }
}

fn cas(key: &str, expect: Option<&'static [u8]>, value: &'static [u8]) -> Operation {
    Operation::Cas {
        key: key.into(),
        expect: expect.map(Bytes::from_static),
        value: Bytes::from_static(value),
    }
}

fn cas_failed(current: Option<&'static [u8]>) -> Outcome {
    Outcome::Cas {
        swapped: false,
        current: current.map(Bytes::from_static),
    }
}

const CAS_SWAPPED: Outcome = Outcome::Cas {
    swapped: true,
    current: None,
};
