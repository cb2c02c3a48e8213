//! The snapshot format: the whole store at one applied index, as the bytes a leader sends a
//! follower that is too far behind and a node writes beside its log.
//!
//! ```text
//!  SnapshotRecord
//!    1 version        uint32: 1, or 2 when a session's client id is text; anything else
//!                     is refused
//!    2 applied_index  uint64
//!    3 entries        repeated { 1 key: string, 2 value: bytes }                 key order
//!    4 sessions       repeated { 1 client_id, 2 sequence, 3 last_active_index: uint64,
//!                                4 outcome: OutcomeRecord, 5 applied_index,
//!                                6 applied_term, 7 text_client_id: bytes }      client order
//!    5 addresses      repeated { 1 node: uint64, 2 http_address: string }        node order
//!    6 raft_addresses repeated { 1 node: uint64, 2 address: string }             node order
//!  OutcomeRecord oneof: 1 put {}, 2 deleted { 1 existed }, 3 appended { 1 length },
//!    4 cas { 1 swapped, 2 current: optional bytes }, 5 announced {}, 6 rejected { 1 reason },
//!    7 stale_sequence { 1 last }
//! ```
//!
//! A session's client id is field 1 when it is a number, field 7 (with field 1 zero) when it
//! is text ([`ClientId`]). Text ids came later, so a snapshot holding one says version 2: an
//! older build, which would read every such session as client 0, refuses it instead. A
//! snapshot without one stays version 1, byte for byte what older releases wrote and read.
//!
//! NB: the snapshot is built as one buffer in memory; a store much larger than memory would need
//! a streamed format.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message as _;
use thiserror::Error;

use super::sessions::{ClientId, ClientIdError, ClientSession};
use super::{entry_bytes, Outcome, StateMachine};

/// The newest snapshot format this build reads and writes: 2, with text client ids. It writes
/// [`SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS`] when every session's client id is a number.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;

/// The snapshot format of older releases, whose client ids were all numbers; still read, and
/// still written when every client id is a number.
pub const SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS: u32 = 1;

/// Why snapshot bytes could not be restored.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// The bytes are not a well-formed protobuf snapshot.
    #[error("undecodable snapshot: {0}")]
    Undecodable(String),
    /// The snapshot is in a format this build does not read (or is not a snapshot at all).
    #[error("snapshot format version {version} is not supported (1 to {supported} are)")]
    UnsupportedVersion {
        /// The snapshot's format version.
        version: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The snapshot decodes but contradicts itself.
    #[error("malformed snapshot {what}: {reason}")]
    Malformed {
        /// Which part.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl StateMachine {
    /// Serialized state: data, sessions (with cached outcomes), announced addresses, applied
    /// index. Equal states give equal bytes.
    pub fn snapshot(&self) -> Bytes {
        self.snapshot_image().encode()
    }

    /// A copy of the state for [`SnapshotImage::encode`], so that the slow part, encoding
    /// (about 100 ms for 25 MB), can run off the apply path and without the state's lock.
    pub fn snapshot_image(&self) -> SnapshotImage {
        let version = if self.sessions.has_text_id() {
            SNAPSHOT_FORMAT_VERSION
        } else {
            SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS
        };
        let record = SnapshotRecord {
            version,
            applied_index: self.applied_index,
            entries: self
                .data
                .iter()
                .map(|(key, value)| EntryRecord {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|(client_id, session)| SessionRecord {
                    client_id: client_id.as_number().unwrap_or(0),
                    sequence: session.sequence,
                    last_active_index: session.last_active_index,
                    outcome: Some(OutcomeRecord::from(&session.outcome)),
                    applied_index: session.applied_at.0,
                    applied_term: session.applied_at.1,
                    text_client_id: client_id.as_text().cloned().unwrap_or_default(),
                })
                .collect(),
            addresses: self
                .http_addresses
                .iter()
                .map(|(node, http_address)| AddressRecord {
                    node: *node,
                    http_address: http_address.clone(),
                })
                .collect(),
            raft_addresses: self
                .raft_addresses
                .iter()
                .map(|(node, address)| AddressRecord {
                    node: *node,
                    http_address: address.clone(),
                })
                .collect(),
        };
        SnapshotImage { record }
    }

    /// The machine `data` (from [`StateMachine::snapshot`]) describes, keeping at most
    /// `sessions_max` sessions (the least recently active are evicted if the snapshot holds
    /// more). Never panics, whatever the bytes.
    pub fn restore(data: &[u8], sessions_max: usize) -> Result<StateMachine, SnapshotError> {
        let record = SnapshotRecord::decode(data)
            .map_err(|error| SnapshotError::Undecodable(error.to_string()))?;
        if !(SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS..=SNAPSHOT_FORMAT_VERSION)
            .contains(&record.version)
        {
            return Err(SnapshotError::UnsupportedVersion {
                version: record.version,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        let mut machine = StateMachine::new(sessions_max);
        machine.applied_index = record.applied_index;
        for entry in record.entries {
            // Keys are written in increasing order; requiring it also refuses duplicates.
            if let Some((last_key, _)) = machine.data.last_key_value() {
                if *last_key >= entry.key {
                    return Err(SnapshotError::Malformed {
                        what: "entries",
                        reason: "keys not in strictly increasing order",
                    });
                }
            }
            machine.data_bytes += entry_bytes(&entry.key, &entry.value);
            machine.data.insert(entry.key, entry.value);
        }
        for session in record.sessions {
            if session.last_active_index > record.applied_index
                || session.applied_index > session.last_active_index
            {
                return Err(SnapshotError::Malformed {
                    what: "session",
                    reason: "active after the applied index",
                });
            }
            let outcome = Outcome::try_from(session.outcome.unwrap_or_default())?;
            let client_id = session_client_id(session.client_id, &session.text_client_id)?;
            let inserted = machine.sessions.insert_restored(
                client_id,
                ClientSession {
                    sequence: session.sequence,
                    outcome,
                    last_active_index: session.last_active_index,
                    applied_at: (session.applied_index, session.applied_term),
                },
            );
            if !inserted {
                return Err(SnapshotError::Malformed {
                    what: "session",
                    reason: "client id appears twice",
                });
            }
        }
        machine.http_addresses = addresses_by_node(record.addresses, "address")?;
        machine.raft_addresses = addresses_by_node(record.raft_addresses, "raft address")?;
        machine.sessions.evict_beyond_limit();
        machine.check_invariants();
        Ok(machine)
    }
}

/// The addresses of a snapshot's `records` by node; `what` names them when a node appears twice.
fn addresses_by_node(
    records: Vec<AddressRecord>,
    what: &'static str,
) -> Result<BTreeMap<u64, String>, SnapshotError> {
    let mut addresses = BTreeMap::new();
    for record in records {
        if addresses.insert(record.node, record.http_address).is_some() {
            return Err(SnapshotError::Malformed {
                what,
                reason: "node appears twice",
            });
        }
    }
    Ok(addresses)
}

/// The client id of a snapshot's session record: `text` when it is not empty (and `number`
/// then zero), else `number`.
fn session_client_id(number: u64, text: &[u8]) -> Result<ClientId, SnapshotError> {
    if text.is_empty() {
        return Ok(ClientId::number(number));
    }
    if number != 0 {
        return Err(SnapshotError::Malformed {
            what: "session",
            reason: "both a numeric and a text client id",
        });
    }
    ClientId::parse(text).map_err(|_: ClientIdError| SnapshotError::Malformed {
        what: "session",
        reason: "the text client id is not a valid one",
    })
}

/// The state machine at one applied index, detached from it (values are shared, not copied).
#[derive(Debug)]
pub struct SnapshotImage {
    record: SnapshotRecord,
}

impl SnapshotImage {
    /// The snapshot's bytes: what [`StateMachine::snapshot`] gives for the same state.
    pub fn encode(&self) -> Bytes {
        Bytes::from(self.record.encode_to_vec())
    }
}

/// The protobuf form of a snapshot; tags are listed in the module documentation.
#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotRecord {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(uint64, tag = "2")]
    applied_index: u64,
    #[prost(message, repeated, tag = "3")]
    entries: Vec<EntryRecord>,
    #[prost(message, repeated, tag = "4")]
    sessions: Vec<SessionRecord>,
    #[prost(message, repeated, tag = "5")]
    addresses: Vec<AddressRecord>,
    /// Raft addresses, in the same record shape (its `http_address` field holds the address).
    #[prost(message, repeated, tag = "6")]
    raft_addresses: Vec<AddressRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EntryRecord {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SessionRecord {
    #[prost(uint64, tag = "1")]
    client_id: u64,
    #[prost(uint64, tag = "2")]
    sequence: u64,
    #[prost(uint64, tag = "3")]
    last_active_index: u64,
    #[prost(message, optional, tag = "4")]
    outcome: Option<OutcomeRecord>,
    #[prost(uint64, tag = "5")]
    applied_index: u64,
    #[prost(uint64, tag = "6")]
    applied_term: u64,
    /// The client id when it is text (then `client_id` is 0); empty when it is a number.
    #[prost(bytes = "bytes", tag = "7")]
    text_client_id: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AddressRecord {
    #[prost(uint64, tag = "1")]
    node: u64,
    #[prost(string, tag = "2")]
    http_address: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OutcomeRecord {
    #[prost(oneof = "OutcomeKind", tags = "1, 2, 3, 4, 5, 6, 7")]
    kind: Option<OutcomeKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum OutcomeKind {
    #[prost(message, tag = "1")]
    Put(EmptyRecord),
    #[prost(message, tag = "2")]
    Deleted(DeletedRecord),
    #[prost(message, tag = "3")]
    Appended(AppendedRecord),
    #[prost(message, tag = "4")]
    Cas(CasOutcomeRecord),
    #[prost(message, tag = "5")]
    Announced(EmptyRecord),
    #[prost(message, tag = "6")]
    Rejected(RejectedRecord),
    #[prost(message, tag = "7")]
    StaleSequence(StaleSequenceRecord),
}

#[derive(Clone, PartialEq, prost::Message)]
struct EmptyRecord {}

#[derive(Clone, PartialEq, prost::Message)]
struct DeletedRecord {
    #[prost(bool, tag = "1")]
    existed: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AppendedRecord {
    #[prost(uint64, tag = "1")]
    length: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CasOutcomeRecord {
    #[prost(bool, tag = "1")]
    swapped: bool,
    /// Explicit presence, so that an absent key differs from an empty value.
    #[prost(bytes = "bytes", optional, tag = "2")]
    current: Option<Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RejectedRecord {
    #[prost(string, tag = "1")]
    reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StaleSequenceRecord {
    #[prost(uint64, tag = "1")]
    last: u64,
}

impl From<&Outcome> for OutcomeRecord {
    fn from(outcome: &Outcome) -> OutcomeRecord {
        let kind = match outcome {
            Outcome::Put => OutcomeKind::Put(EmptyRecord {}),
            Outcome::Deleted { existed } => {
                OutcomeKind::Deleted(DeletedRecord { existed: *existed })
            }
            Outcome::Appended { length } => {
                OutcomeKind::Appended(AppendedRecord { length: *length })
            }
            Outcome::Cas { swapped, current } => OutcomeKind::Cas(CasOutcomeRecord {
                swapped: *swapped,
                current: current.clone(),
            }),
            Outcome::Announced => OutcomeKind::Announced(EmptyRecord {}),
            Outcome::Rejected { reason } => OutcomeKind::Rejected(RejectedRecord {
                reason: reason.clone(),
            }),
            Outcome::StaleSequence { last } => {
                OutcomeKind::StaleSequence(StaleSequenceRecord { last: *last })
            }
        };
        OutcomeRecord { kind: Some(kind) }
    }
}

impl TryFrom<OutcomeRecord> for Outcome {
    type Error = SnapshotError;

    fn try_from(record: OutcomeRecord) -> Result<Outcome, SnapshotError> {
        let kind = record.kind.ok_or(SnapshotError::Malformed {
            what: "session",
            reason: "cached outcome missing or of an unknown kind",
        })?;
        Ok(match kind {
            OutcomeKind::Put(EmptyRecord {}) => Outcome::Put,
            OutcomeKind::Deleted(deleted) => Outcome::Deleted {
                existed: deleted.existed,
            },
            OutcomeKind::Appended(appended) => Outcome::Appended {
                length: appended.length,
            },
            OutcomeKind::Cas(cas) => {
                if cas.swapped && cas.current.is_some() {
                    return Err(SnapshotError::Malformed {
                        what: "session",
                        reason: "a swapped compare-and-swap reports a current value",
                    });
                }
                Outcome::Cas {
                    swapped: cas.swapped,
                    current: cas.current,
                }
            }
            OutcomeKind::Announced(EmptyRecord {}) => Outcome::Announced,
            OutcomeKind::Rejected(rejected) => Outcome::Rejected {
                reason: rejected.reason,
            },
            OutcomeKind::StaleSequence(stale) => Outcome::StaleSequence { last: stale.last },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Applied, Command, Operation, Session};

    /// Every outcome kind survives the snapshot encoding, including the ones never cached.
    #[test]
    fn every_outcome_roundtrips_through_its_record() {
        let outcomes = [
            Outcome::Put,
            Outcome::Deleted { existed: true },
            Outcome::Appended { length: 9 },
            Outcome::Cas {
                swapped: false,
                current: Some(Bytes::new()),
            },
            Outcome::Cas {
                swapped: false,
                current: None,
            },
            Outcome::Cas {
                swapped: true,
                current: None,
            },
            Outcome::Announced,
            Outcome::Rejected {
                reason: "bad".into(),
            },
            Outcome::StaleSequence { last: 4 },
        ];
        for outcome in outcomes {
            let record = OutcomeRecord::decode(&OutcomeRecord::from(&outcome).encode_to_vec()[..])
                .expect("decodes");
            assert_eq!(Outcome::try_from(record), Ok(outcome));
        }
    }

    #[test]
    fn restore_refuses_duplicate_sessions() {
        let session = SessionRecord {
            client_id: 1,
            sequence: 1,
            last_active_index: 1,
            outcome: Some(OutcomeRecord::from(&Outcome::Put)),
            applied_index: 1,
            applied_term: 1,
            text_client_id: Bytes::new(),
        };
        let record = SnapshotRecord {
            version: SNAPSHOT_FORMAT_VERSION,
            applied_index: 2,
            entries: Vec::new(),
            sessions: vec![session.clone(), session],
            addresses: Vec::new(),
            raft_addresses: Vec::new(),
        };
        assert!(matches!(
            StateMachine::restore(&record.encode_to_vec(), 10),
            Err(SnapshotError::Malformed { .. })
        ));
    }

    /// The session and snapshot records as releases before text client ids wrote them.
    mod older {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct SnapshotRecord {
            #[prost(uint32, tag = "1")]
            pub version: u32,
            #[prost(uint64, tag = "2")]
            pub applied_index: u64,
            #[prost(message, repeated, tag = "3")]
            pub entries: Vec<super::EntryRecord>,
            #[prost(message, repeated, tag = "4")]
            pub sessions: Vec<SessionRecord>,
            #[prost(message, repeated, tag = "5")]
            pub addresses: Vec<super::AddressRecord>,
            #[prost(message, repeated, tag = "6")]
            pub raft_addresses: Vec<super::AddressRecord>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct SessionRecord {
            #[prost(uint64, tag = "1")]
            pub client_id: u64,
            #[prost(uint64, tag = "2")]
            pub sequence: u64,
            #[prost(uint64, tag = "3")]
            pub last_active_index: u64,
            #[prost(message, optional, tag = "4")]
            pub outcome: Option<super::OutcomeRecord>,
            #[prost(uint64, tag = "5")]
            pub applied_index: u64,
            #[prost(uint64, tag = "6")]
            pub applied_term: u64,
        }
    }

    fn put_command(client_id: ClientId, sequence: u64, key: &str, value: &'static [u8]) -> Bytes {
        Command {
            session: Some(Session {
                client_id,
                sequence,
            }),
            operation: Operation::Put {
                key: key.into(),
                value: Bytes::from_static(value),
            },
            request_id: None,
        }
        .encode()
    }

    /// A snapshot an older release wrote (version 1, no text ids) restores with its sessions:
    /// a retry of the request it cached is answered from it, not applied again.
    #[test]
    fn an_older_snapshot_restores_with_its_sessions() {
        let older = older::SnapshotRecord {
            version: 1,
            applied_index: 5,
            entries: vec![EntryRecord {
                key: "k".into(),
                value: Bytes::from_static(b"first"),
            }],
            sessions: vec![older::SessionRecord {
                client_id: 7,
                sequence: 3,
                last_active_index: 4,
                outcome: Some(OutcomeRecord::from(&Outcome::Put)),
                applied_index: 4,
                applied_term: 2,
            }],
            addresses: Vec::new(),
            raft_addresses: Vec::new(),
        };
        let bytes = older.encode_to_vec();
        let mut machine = StateMachine::restore(&bytes, 10).expect("restores");
        machine.check_invariants();
        assert_eq!(machine.sessions(), 1);
        assert_eq!(machine.snapshot(), bytes, "written back byte for byte");
        let retry = machine.apply_entry(6, 3, &put_command(ClientId::number(7), 3, "k", b"again"));
        assert_eq!(
            retry,
            Applied {
                outcome: Outcome::Put,
                index: 4,
                term: 2
            },
            "answered from the session"
        );
        assert_eq!(machine.get("k"), Some(&Bytes::from_static(b"first")));
    }

    /// Text client ids go in a field of their own under version 2, which an older build
    /// refuses instead of reading every such session as client 0.
    #[test]
    fn a_snapshot_with_a_text_client_id_is_version_2_and_round_trips() {
        let uuid = ClientId::parse(b"3f2504e0-4f89-11d3-9a0c-0305e82c3301").expect("valid");
        let mut machine = StateMachine::new(10);
        machine.apply(1, &put_command(ClientId::number(7), 1, "a", b"1"));
        machine.apply(2, &put_command(uuid.clone(), 1, "b", b"2"));
        let snapshot = machine.snapshot();
        let older = older::SnapshotRecord::decode(&snapshot[..]).expect("decodes");
        assert_eq!(older.version, SNAPSHOT_FORMAT_VERSION);
        assert_ne!(older.version, SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS);
        let mut restored = StateMachine::restore(&snapshot, 10).expect("restores");
        restored.check_invariants();
        assert_eq!(restored.snapshot(), snapshot);
        let retry = restored.apply_entry(3, 1, &put_command(uuid.clone(), 1, "b", b"again"));
        assert_eq!(retry.index, 2, "the text id's session survived");
        assert_eq!(restored.get("b"), Some(&Bytes::from_static(b"2")));
        // Once the text id's session is evicted, the snapshot is version 1 again.
        let mut numeric = StateMachine::new(1);
        numeric.apply(1, &put_command(uuid, 1, "b", b"2"));
        numeric.apply(2, &put_command(ClientId::number(7), 1, "a", b"1"));
        let record = SnapshotRecord::decode(&numeric.snapshot()[..]).expect("decodes");
        assert_eq!(record.version, SNAPSHOT_FORMAT_VERSION_NUMERIC_IDS);
    }

    #[test]
    fn restore_refuses_a_session_with_two_ids_or_a_bad_text_id() {
        let session = |client_id, text: &'static [u8]| SessionRecord {
            client_id,
            sequence: 1,
            last_active_index: 1,
            outcome: Some(OutcomeRecord::from(&Outcome::Put)),
            applied_index: 1,
            applied_term: 1,
            text_client_id: Bytes::from_static(text),
        };
        for bad in [session(7, b"ab"), session(0, b"a b")] {
            let record = SnapshotRecord {
                version: SNAPSHOT_FORMAT_VERSION,
                applied_index: 2,
                entries: Vec::new(),
                sessions: vec![bad],
                addresses: Vec::new(),
                raft_addresses: Vec::new(),
            };
            assert!(matches!(
                StateMachine::restore(&record.encode_to_vec(), 10),
                Err(SnapshotError::Malformed {
                    what: "session",
                    ..
                })
            ));
        }
    }
}
