//! The records of the outcomes a session caches, in a snapshot (tags in the diagram of
//! [`super`]).

use bytes::Bytes;

use super::{SnapshotError, VersionRecord};
use crate::store::{
    LeaseError, Outcome, RangeResult, RevisionError, TxnError, TxnOpOutcome, VersionedValue,
};

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct OutcomeRecord {
    #[prost(
        oneof = "OutcomeKind",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16"
    )]
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
    #[prost(message, tag = "8")]
    Compacted(CompactedRecord),
    #[prost(message, tag = "9")]
    CompactRefused(RevisionErrorRecord),
    #[prost(message, tag = "10")]
    Txn(TxnOutcomeRecord),
    #[prost(message, tag = "11")]
    TxnRefused(TxnErrorRecord),
    #[prost(message, tag = "12")]
    LeaseGranted(LeaseGrantedRecord),
    #[prost(message, tag = "13")]
    LeaseRevoked(LeaseRevokedRecord),
    #[prost(message, tag = "14")]
    LeaseCheckpointed(EmptyRecord),
    #[prost(message, tag = "15")]
    LeaseRefused(LeaseErrorRecord),
    #[prost(message, tag = "16")]
    HashCheckMarked(EmptyRecord),
}

#[derive(Clone, PartialEq, prost::Message)]
struct LeaseGrantedRecord {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    ttl_seconds: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LeaseRevokedRecord {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    keys_deleted: u64,
    #[prost(bool, tag = "3")]
    expired: bool,
}

/// A [`LeaseError`]: `kind` 1 not found, 2 already exists, 3 invalid id.
#[derive(Clone, PartialEq, prost::Message)]
struct LeaseErrorRecord {
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(uint64, tag = "2")]
    id: u64,
}

impl From<&LeaseError> for LeaseErrorRecord {
    fn from(error: &LeaseError) -> LeaseErrorRecord {
        let (kind, id) = match *error {
            LeaseError::NotFound { id } => (1, id),
            LeaseError::AlreadyExists { id } => (2, id),
            LeaseError::InvalidId { id } => (3, id),
        };
        LeaseErrorRecord { kind, id }
    }
}

impl TryFrom<LeaseErrorRecord> for LeaseError {
    type Error = SnapshotError;

    fn try_from(record: LeaseErrorRecord) -> Result<LeaseError, SnapshotError> {
        let id = record.id;
        Ok(match record.kind {
            1 => LeaseError::NotFound { id },
            2 => LeaseError::AlreadyExists { id },
            3 => LeaseError::InvalidId { id },
            _ => {
                return Err(SnapshotError::Malformed {
                    what: "session",
                    reason: "a cached lease refusal of an unknown kind",
                })
            }
        })
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct TxnOutcomeRecord {
    #[prost(bool, tag = "1")]
    succeeded: bool,
    #[prost(message, repeated, tag = "2")]
    results: Vec<TxnOpOutcomeRecord>,
}

impl TxnOutcomeRecord {
    /// The record of a transaction's (or a nested one's) results.
    fn of(succeeded: bool, results: &[TxnOpOutcome]) -> TxnOutcomeRecord {
        TxnOutcomeRecord {
            succeeded,
            results: results.iter().map(TxnOpOutcomeRecord::from).collect(),
        }
    }

    /// Whether the comparisons held, and each operation's result.
    fn into_parts(self) -> Result<(bool, Vec<TxnOpOutcome>), SnapshotError> {
        let results = self
            .results
            .into_iter()
            .map(TxnOpOutcome::try_from)
            .collect::<Result<_, _>>()?;
        Ok((self.succeeded, results))
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct TxnOpOutcomeRecord {
    #[prost(oneof = "TxnOpOutcomeKind", tags = "1, 2, 3, 4, 5, 6, 7")]
    kind: Option<TxnOpOutcomeKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum TxnOpOutcomeKind {
    #[prost(message, tag = "1")]
    Put(OptionalVersionRecord),
    #[prost(message, tag = "2")]
    Delete(DeletedCountRecord),
    #[prost(message, tag = "3")]
    Get(OptionalVersionRecord),
    #[prost(message, tag = "4")]
    Scan(ScanOutcomeRecord),
    #[prost(message, tag = "5")]
    DeleteRange(DeleteRangeOutcomeRecord),
    #[prost(message, tag = "6")]
    Range(RangeOutcomeRecord),
    #[prost(message, tag = "7")]
    Txn(TxnOutcomeRecord),
}

#[derive(Clone, PartialEq, prost::Message)]
struct DeleteRangeOutcomeRecord {
    #[prost(uint64, tag = "1")]
    deleted: u64,
    #[prost(message, repeated, tag = "2")]
    prev: Vec<VersionRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RangeOutcomeRecord {
    #[prost(message, repeated, tag = "1")]
    kvs: Vec<VersionRecord>,
    #[prost(bool, tag = "2")]
    more: bool,
    #[prost(uint64, tag = "3")]
    count: u64,
}

fn version_records(items: &[(String, VersionedValue)]) -> Vec<VersionRecord> {
    items
        .iter()
        .map(|(key, version)| VersionRecord::from((key.as_str(), version)))
        .collect()
}

fn versions_from_records(records: Vec<VersionRecord>) -> Vec<(String, VersionedValue)> {
    records.into_iter().map(VersionRecord::into_parts).collect()
}

/// A version or none (the key field unused).
#[derive(Clone, PartialEq, prost::Message)]
struct OptionalVersionRecord {
    #[prost(message, optional, tag = "1")]
    version: Option<VersionRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct DeletedCountRecord {
    #[prost(uint64, tag = "1")]
    deleted: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScanOutcomeRecord {
    #[prost(message, repeated, tag = "1")]
    items: Vec<VersionRecord>,
    #[prost(bool, tag = "2")]
    truncated: bool,
}

/// A [`TxnError`]: `kind` 1 too many compares, 2 too many operations, 3 key changed twice,
/// 4 empty delete prefix, 5 exists ordered, 6 key not found, 7 a range read's revision
/// (in `revision`).
#[derive(Clone, PartialEq, prost::Message)]
struct TxnErrorRecord {
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(string, tag = "2")]
    key: String,
    #[prost(uint64, tag = "3")]
    count: u64,
    #[prost(message, optional, tag = "4")]
    revision: Option<RevisionErrorRecord>,
}

impl From<&TxnError> for TxnErrorRecord {
    fn from(error: &TxnError) -> TxnErrorRecord {
        let (kind, key, count) = match error {
            TxnError::TooManyCompares { count } => (1, String::new(), *count),
            TxnError::TooManyOperations { count } => (2, String::new(), *count),
            TxnError::KeyChangedTwice { key } => (3, key.clone(), 0),
            TxnError::EmptyDeletePrefix => (4, String::new(), 0),
            TxnError::ExistsOrdered { key } => (5, key.clone(), 0),
            TxnError::KeyNotFound { key } => (6, key.clone(), 0),
            TxnError::Revision(_) => (7, String::new(), 0),
        };
        let revision = match error {
            TxnError::Revision(error) => Some(RevisionErrorRecord::from(error)),
            _ => None,
        };
        TxnErrorRecord {
            kind,
            key,
            count: count as u64,
            revision,
        }
    }
}

impl TryFrom<TxnErrorRecord> for TxnError {
    type Error = SnapshotError;

    fn try_from(record: TxnErrorRecord) -> Result<TxnError, SnapshotError> {
        let count = usize::try_from(record.count).unwrap_or(usize::MAX);
        Ok(match record.kind {
            1 => TxnError::TooManyCompares { count },
            2 => TxnError::TooManyOperations { count },
            3 => TxnError::KeyChangedTwice { key: record.key },
            4 => TxnError::EmptyDeletePrefix,
            5 => TxnError::ExistsOrdered { key: record.key },
            6 => TxnError::KeyNotFound { key: record.key },
            7 => match record.revision {
                Some(revision) => TxnError::Revision(RevisionError::from(revision)),
                None => {
                    return Err(SnapshotError::Malformed {
                        what: "session",
                        reason: "a cached range refusal without its revision error",
                    })
                }
            },
            _ => {
                return Err(SnapshotError::Malformed {
                    what: "session",
                    reason: "a cached transaction refusal of an unknown kind",
                })
            }
        })
    }
}

fn version_record(version: &Option<VersionedValue>) -> OptionalVersionRecord {
    OptionalVersionRecord {
        version: version
            .as_ref()
            .map(|version| VersionRecord::from(("", version))),
    }
}

fn version_from_record(record: OptionalVersionRecord) -> Option<VersionedValue> {
    record.version.map(|version| version.into_parts().1)
}

impl From<&TxnOpOutcome> for TxnOpOutcomeRecord {
    fn from(outcome: &TxnOpOutcome) -> TxnOpOutcomeRecord {
        let kind = match outcome {
            TxnOpOutcome::Put { prev } => TxnOpOutcomeKind::Put(version_record(prev)),
            TxnOpOutcome::Delete { deleted } => {
                TxnOpOutcomeKind::Delete(DeletedCountRecord { deleted: *deleted })
            }
            TxnOpOutcome::Get { value } => TxnOpOutcomeKind::Get(version_record(value)),
            TxnOpOutcome::Scan { items, truncated } => TxnOpOutcomeKind::Scan(ScanOutcomeRecord {
                items: version_records(items),
                truncated: *truncated,
            }),
            TxnOpOutcome::DeleteRange { deleted, prev } => {
                TxnOpOutcomeKind::DeleteRange(DeleteRangeOutcomeRecord {
                    deleted: *deleted,
                    prev: version_records(prev),
                })
            }
            TxnOpOutcome::Range(result) => TxnOpOutcomeKind::Range(RangeOutcomeRecord {
                kvs: version_records(&result.kvs),
                more: result.more,
                count: result.count,
            }),
            TxnOpOutcome::Txn { succeeded, results } => {
                TxnOpOutcomeKind::Txn(TxnOutcomeRecord::of(*succeeded, results))
            }
        };
        TxnOpOutcomeRecord { kind: Some(kind) }
    }
}

impl TryFrom<TxnOpOutcomeRecord> for TxnOpOutcome {
    type Error = SnapshotError;

    fn try_from(record: TxnOpOutcomeRecord) -> Result<TxnOpOutcome, SnapshotError> {
        let kind = record.kind.ok_or(SnapshotError::Malformed {
            what: "session",
            reason: "a cached transaction result missing or of an unknown kind",
        })?;
        Ok(match kind {
            TxnOpOutcomeKind::Put(prev) => TxnOpOutcome::Put {
                prev: version_from_record(prev),
            },
            TxnOpOutcomeKind::Delete(deleted) => TxnOpOutcome::Delete {
                deleted: deleted.deleted,
            },
            TxnOpOutcomeKind::Get(value) => TxnOpOutcome::Get {
                value: version_from_record(value),
            },
            TxnOpOutcomeKind::Scan(scan) => TxnOpOutcome::Scan {
                items: versions_from_records(scan.items),
                truncated: scan.truncated,
            },
            TxnOpOutcomeKind::DeleteRange(delete) => TxnOpOutcome::DeleteRange {
                deleted: delete.deleted,
                prev: versions_from_records(delete.prev),
            },
            TxnOpOutcomeKind::Range(range) => TxnOpOutcome::Range(RangeResult {
                kvs: versions_from_records(range.kvs),
                more: range.more,
                count: range.count,
            }),
            TxnOpOutcomeKind::Txn(txn) => {
                let (succeeded, results) = txn.into_parts()?;
                TxnOpOutcome::Txn { succeeded, results }
            }
        })
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct CompactedRecord {
    #[prost(uint64, tag = "1")]
    compact_revision: u64,
}

/// A [`RevisionError`]: `compacted` tells its kind.
#[derive(Clone, PartialEq, prost::Message)]
struct RevisionErrorRecord {
    #[prost(bool, tag = "1")]
    compacted: bool,
    #[prost(uint64, tag = "2")]
    requested: u64,
    #[prost(uint64, tag = "3")]
    compact_revision: u64,
    #[prost(uint64, tag = "4")]
    current: u64,
}

impl From<&RevisionError> for RevisionErrorRecord {
    fn from(error: &RevisionError) -> RevisionErrorRecord {
        match *error {
            RevisionError::Compacted {
                requested,
                compact_revision,
                current,
            } => RevisionErrorRecord {
                compacted: true,
                requested,
                compact_revision,
                current,
            },
            RevisionError::Future {
                requested,
                current,
                compact_revision,
            } => RevisionErrorRecord {
                compacted: false,
                requested,
                compact_revision,
                current,
            },
        }
    }
}

impl From<RevisionErrorRecord> for RevisionError {
    fn from(record: RevisionErrorRecord) -> RevisionError {
        if record.compacted {
            RevisionError::Compacted {
                requested: record.requested,
                compact_revision: record.compact_revision,
                current: record.current,
            }
        } else {
            RevisionError::Future {
                requested: record.requested,
                current: record.current,
                compact_revision: record.compact_revision,
            }
        }
    }
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
            Outcome::Compacted { compact_revision } => OutcomeKind::Compacted(CompactedRecord {
                compact_revision: *compact_revision,
            }),
            Outcome::CompactRefused { error } => {
                OutcomeKind::CompactRefused(RevisionErrorRecord::from(error))
            }
            Outcome::Txn { succeeded, results } => {
                OutcomeKind::Txn(TxnOutcomeRecord::of(*succeeded, results))
            }
            Outcome::TxnRefused { error } => OutcomeKind::TxnRefused(TxnErrorRecord::from(error)),
            Outcome::LeaseGranted { id, ttl_seconds } => {
                OutcomeKind::LeaseGranted(LeaseGrantedRecord {
                    id: *id,
                    ttl_seconds: *ttl_seconds,
                })
            }
            Outcome::LeaseRevoked {
                id,
                keys_deleted,
                expired,
            } => OutcomeKind::LeaseRevoked(LeaseRevokedRecord {
                id: *id,
                keys_deleted: *keys_deleted,
                expired: *expired,
            }),
            Outcome::LeaseCheckpointed => OutcomeKind::LeaseCheckpointed(EmptyRecord {}),
            Outcome::HashCheckMarked => OutcomeKind::HashCheckMarked(EmptyRecord {}),
            Outcome::LeaseRefused { error } => {
                OutcomeKind::LeaseRefused(LeaseErrorRecord::from(error))
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
            OutcomeKind::Compacted(compacted) => Outcome::Compacted {
                compact_revision: compacted.compact_revision,
            },
            OutcomeKind::CompactRefused(error) => Outcome::CompactRefused {
                error: RevisionError::from(error),
            },
            OutcomeKind::Txn(txn) => {
                let (succeeded, results) = txn.into_parts()?;
                Outcome::Txn { succeeded, results }
            }
            OutcomeKind::TxnRefused(error) => Outcome::TxnRefused {
                error: TxnError::try_from(error)?,
            },
            OutcomeKind::LeaseGranted(granted) => Outcome::LeaseGranted {
                id: granted.id,
                ttl_seconds: granted.ttl_seconds,
            },
            OutcomeKind::LeaseRevoked(revoked) => Outcome::LeaseRevoked {
                id: revoked.id,
                keys_deleted: revoked.keys_deleted,
                expired: revoked.expired,
            },
            OutcomeKind::LeaseCheckpointed(EmptyRecord {}) => Outcome::LeaseCheckpointed,
            OutcomeKind::HashCheckMarked(EmptyRecord {}) => Outcome::HashCheckMarked,
            OutcomeKind::LeaseRefused(error) => Outcome::LeaseRefused {
                error: LeaseError::try_from(error)?,
            },
        })
    }
}
