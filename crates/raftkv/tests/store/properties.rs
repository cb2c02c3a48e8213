//! Properties: random command sequences (with sessions, retries, stale requests, undecodable
//! entries and skipped indexes) applied to a machine, to a second machine snapshotted and
//! restored part-way, and to a naive model, which all three must agree on; and hostile bytes,
//! which never panic.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// A naive reference: linear scans instead of ordered indexes.
struct Model {
    data: BTreeMap<String, Bytes>,
    /// `(client_id, sequence, outcome, last_active_index)`.
    sessions: Vec<(ClientId, u64, Outcome, u64)>,
    sessions_max: usize,
    addresses: BTreeMap<u64, String>,
}

impl Model {
    fn apply(&mut self, index: u64, data: &[u8]) -> Outcome {
        let command = match Command::decode(data) {
            Ok(command) => command,
            Err(error) => {
                return Outcome::Rejected {
                    reason: error.to_string(),
                }
            }
        };
        if let Some(session) = command.session {
            let found = self
                .sessions
                .iter_mut()
                .find(|(client_id, ..)| *client_id == session.client_id);
            if let Some((_, sequence, outcome, last_active_index)) = found {
                if session.sequence < *sequence {
                    return Outcome::StaleSequence { last: *sequence };
                }
                if session.sequence == *sequence {
                    *last_active_index = index;
                    return outcome.clone();
                }
            }
            let outcome = self.execute(command.operation);
            self.sessions
                .retain(|(client_id, ..)| *client_id != session.client_id);
            self.sessions
                .push((session.client_id, session.sequence, outcome.clone(), index));
            while self.sessions.len() > self.sessions_max {
                let oldest = (0..self.sessions.len())
                    .min_by_key(|&at| (self.sessions[at].3, self.sessions[at].0.clone()))
                    .expect("not empty");
                self.sessions.remove(oldest);
            }
            outcome
        } else {
            self.execute(command.operation)
        }
    }

    fn execute(&mut self, operation: Operation) -> Outcome {
        match operation {
            Operation::Put {
                key,
                value,
                lease: _,
            } => {
                self.data.insert(key, value);
                Outcome::Put
            }
            Operation::Delete { key } => Outcome::Deleted {
                existed: self.data.remove(&key).is_some(),
            },
            Operation::Append { key, suffix } => {
                let mut value = self.data.get(&key).map(|v| v.to_vec()).unwrap_or_default();
                value.extend_from_slice(&suffix);
                let length = value.len() as u64;
                self.data.insert(key, Bytes::from(value));
                Outcome::Appended { length }
            }
            Operation::Cas { key, expect, value } => {
                let current = self.data.get(&key).cloned();
                if current == expect {
                    self.data.insert(key, value);
                    Outcome::Cas {
                        swapped: true,
                        current: None,
                    }
                } else {
                    Outcome::Cas {
                        swapped: false,
                        current,
                    }
                }
            }
            Operation::Announce {
                node, http_address, ..
            } => {
                self.addresses.insert(node, http_address);
                Outcome::Announced
            }
            // Raft addresses are checked by their own test; the model only acknowledges them.
            Operation::RaftAddress { .. } => Outcome::Announced,
            // Revisions, compaction, transactions and leases are checked against a model of
            // their own (history_model.rs).
            Operation::Compact { .. }
            | Operation::Txn(_)
            | Operation::LeaseGrant { .. }
            | Operation::LeaseRevoke { .. }
            | Operation::LeaseCheckpoint { .. }
            | Operation::HashCheck => {
                unreachable!("not generated here")
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// Apply a command at the next index.
    Apply(Command),
    /// Apply the previous command's bytes again, as a client retry that was committed twice.
    Retry,
    /// Apply bytes that are probably not a command.
    Garbage(Vec<u8>),
    /// Skip the next index (a no-op entry).
    Skip,
}

fn small_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "a", "ab", "b", "ba"]).prop_map(String::from)
}

/// Values from a tiny alphabet, so that compare-and-swap expectations often match.
fn small_value() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(0u8..2, 0..3).prop_map(Bytes::from)
}

fn small_operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        3 => (small_key(), small_value()).prop_map(|(key, value)| Operation::Put { key, value, lease: 0 }),
        2 => small_key().prop_map(|key| Operation::Delete { key }),
        2 => (small_key(), small_value())
            .prop_map(|(key, suffix)| Operation::Append { key, suffix }),
        3 => (small_key(), prop::option::of(small_value()), small_value())
            .prop_map(|(key, expect, value)| Operation::Cas { key, expect, value }),
        1 => (1u64..4, prop::sample::select(vec!["h1:1", "h2:2"])).prop_map(
            |(node, http_address)| Operation::Announce {
                node,
                http_address: http_address.into(),
                grpc_address: None,
            }
        ),
    ]
}

/// A few client ids, numbers and texts, so that sessions meet often; `007` and `7` are two.
fn small_client_id() -> impl Strategy<Value = ClientId> {
    prop_oneof![
        (0u64..5).prop_map(ClientId::number),
        prop::sample::select(vec![
            "7",
            "007",
            "a",
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        ])
        .prop_map(|text| ClientId::parse(text.as_bytes()).expect("a valid client id")),
    ]
}

fn small_command() -> impl Strategy<Value = Command> {
    let session = prop::option::weighted(
        0.8,
        (small_client_id(), 0u64..6).prop_map(|(client_id, sequence)| Session {
            client_id,
            sequence,
        }),
    );
    (session, small_operation()).prop_map(|(session, operation)| Command {
        session,
        operation,
        request_id: None,
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => small_command().prop_map(Step::Apply),
        3 => Just(Step::Retry),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Step::Garbage),
        1 => Just(Step::Skip),
    ]
}

fn any_command() -> impl Strategy<Value = Command> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from);
    let operation = prop_oneof![
        (any::<String>(), bytes()).prop_map(|(key, value)| Operation::Put {
            key,
            value,
            lease: 0
        }),
        any::<String>().prop_map(|key| Operation::Delete { key }),
        (any::<String>(), bytes()).prop_map(|(key, suffix)| Operation::Append { key, suffix }),
        (any::<String>(), prop::option::of(bytes()), bytes())
            .prop_map(|(key, expect, value)| Operation::Cas { key, expect, value }),
        (
            any::<u64>(),
            any::<String>(),
            prop::option::of(any::<String>())
        )
            .prop_map(|(node, http_address, grpc_address)| Operation::Announce {
                node,
                http_address,
                grpc_address
            }),
    ];
    let client_id = prop_oneof![
        any::<u64>().prop_map(ClientId::number),
        "[!-~]{1,128}"
            .prop_map(|text| ClientId::parse(text.as_bytes()).expect("a valid client id")),
    ];
    let session =
        prop::option::of(
            (client_id, any::<u64>()).prop_map(|(client_id, sequence)| Session {
                client_id,
                sequence,
            }),
        );
    (session, operation).prop_map(|(session, operation)| Command {
        session,
        operation,
        request_id: None,
    })
}

/// A byte edit: overwrite, truncate at, or insert at a position (taken modulo the length).
fn mutations() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 1..4)
}

fn mutate(mut bytes: Vec<u8>, mutations: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(position, kind, byte) in mutations {
        let at = position % (bytes.len() + 1);
        match kind {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.truncate(at),
            _ => bytes.insert(at, byte),
        }
    }
    bytes
}

proptest! {
    /// Two replicas apply the same log, one of them snapshotted and restored part-way: both give
    /// the same outcomes and end in the same state, and the data and outcomes match the model.
    #[test]
    fn replicas_agree_across_snapshot_and_restore_and_match_the_model(
        steps in prop::collection::vec(step(), 0..60),
        restore_at in any::<prop::sample::Index>(),
        sessions_max in 0usize..4,
    ) {
        let restore_at = restore_at.index(steps.len() + 1);
        let mut straight = StateMachine::new(sessions_max);
        let mut restored = StateMachine::new(sessions_max);
        let mut model = Model {
            data: BTreeMap::new(),
            sessions: Vec::new(),
            sessions_max,
            addresses: BTreeMap::new(),
        };
        let mut index = 0;
        let mut previous = Bytes::new();
        for (at, step) in steps.iter().enumerate() {
            if at == restore_at {
                let snapshot = restored.snapshot();
                restored = StateMachine::restore(&snapshot, sessions_max).expect("restores");
                prop_assert_eq!(restored.snapshot(), snapshot);
            }
            index += 1;
            let data = match step {
                Step::Apply(command) => command.encode(),
                Step::Retry => previous.clone(),
                Step::Garbage(bytes) => Bytes::from(bytes.clone()),
                Step::Skip => {
                    straight.skip(index);
                    restored.skip(index);
                    continue;
                }
            };
            previous = data.clone();
            let outcome = straight.apply(index, &data);
            prop_assert_eq!(&restored.apply(index, &data), &outcome);
            prop_assert_eq!(&model.apply(index, &data), &outcome, "step {}: {:?}", at, step);
            straight.check_invariants();
            restored.check_invariants();
        }
        prop_assert_eq!(straight.snapshot(), restored.snapshot());
        prop_assert_eq!(straight.applied_index(), index);
        prop_assert_eq!(restored.applied_index(), index);
        let (items, more) = straight.scan("", usize::MAX);
        prop_assert!(!more);
        prop_assert_eq!(items, model.data.clone().into_iter().collect::<Vec<_>>());
        prop_assert_eq!(straight.keys(), model.data.len());
        prop_assert_eq!(straight.sessions(), model.sessions.len());
        for node in 0..4 {
            prop_assert_eq!(
                straight.http_address(node),
                model.addresses.get(&node).map(String::as_str)
            );
        }
    }

    /// A snapshot image taken part-way is the state at that moment, whatever the machine does
    /// afterwards (its keys are shared with the machine until either changes them): it
    /// encodes to the bytes a snapshot taken then gives, and the live machine is not changed
    /// by it.
    #[test]
    fn an_image_taken_while_writes_go_on_encodes_the_state_it_was_taken_at(
        steps in prop::collection::vec(step(), 0..60),
        image_at in any::<prop::sample::Index>(),
        sessions_max in 0usize..4,
    ) {
        let image_at = image_at.index(steps.len() + 1);
        let mut machine = StateMachine::new(sessions_max);
        let mut untouched = StateMachine::new(sessions_max);
        let mut taken = None;
        let mut previous = Bytes::new();
        for (at, step) in steps.iter().enumerate() {
            if at == image_at {
                taken = Some((machine.snapshot(), machine.snapshot_image()));
            }
            let index = at as u64 + 1;
            let data = match step {
                Step::Apply(command) => command.encode(),
                Step::Retry => previous.clone(),
                Step::Garbage(bytes) => Bytes::from(bytes.clone()),
                Step::Skip => {
                    machine.skip(index);
                    untouched.skip(index);
                    continue;
                }
            };
            previous = data.clone();
            prop_assert_eq!(machine.apply(index, &data), untouched.apply(index, &data));
        }
        let (bytes_then, image) =
            taken.unwrap_or_else(|| (machine.snapshot(), machine.snapshot_image()));
        prop_assert_eq!(image.encode(), bytes_then);
        machine.check_invariants();
        prop_assert_eq!(machine.snapshot(), untouched.snapshot());
    }

    #[test]
    fn command_encoding_roundtrips(command in any_command()) {
        prop_assert_eq!(Command::decode(&command.encode()), Ok(command));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = Command::decode(&bytes);
    }

    #[test]
    fn decoding_a_damaged_command_never_panics(
        command in any_command(),
        mutations in mutations(),
    ) {
        let damaged = mutate(command.encode().to_vec(), &mutations);
        if let Ok(decoded) = Command::decode(&damaged) {
            // Whatever survived must itself be a command that encodes and decodes.
            prop_assert_eq!(Command::decode(&decoded.encode()), Ok(decoded));
        }
    }

    #[test]
    fn restoring_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = StateMachine::restore(&bytes, SESSIONS_MAX);
    }

    #[test]
    fn restoring_a_damaged_snapshot_never_panics(
        steps in prop::collection::vec(small_command(), 0..12),
        mutations in mutations(),
        sessions_max in 0usize..4,
    ) {
        let mut machine = StateMachine::new(sessions_max);
        for (at, command) in steps.iter().enumerate() {
            machine.apply(at as u64 + 1, &command.encode());
        }
        let damaged = mutate(machine.snapshot().to_vec(), &mutations);
        if let Ok(restored) = StateMachine::restore(&damaged, sessions_max) {
            restored.check_invariants();
            let again = StateMachine::restore(&restored.snapshot(), sessions_max)
                .expect("a restored machine's snapshot restores");
            prop_assert_eq!(again.snapshot(), restored.snapshot());
        }
    }
}
