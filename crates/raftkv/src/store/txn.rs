//! Transactions: comparisons, then one of two branches of operations, applied at one revision.
//!
//! ```text
//!  Txn { compare, success, failure }
//!        │
//!        ▼
//!  validate ── refused (TxnError) ─────────────────────────► Outcome::TxnRefused { error }
//!        │ ok                    (the front ends call it before proposing; the store again,
//!        ▼                        so every replica refuses the same way)
//!  choose: every compare holds? ── yes ─► success ─┐  nested transactions of the chosen
//!          └────────────────────── no ──► failure ─┤  branch choose theirs too, all against
//!                                                  │  the state before any operation runs
//!  check the chosen path: leases exist, keys that a put keeps the value or lease of exist,
//!  range revisions readable ── refused ──► LeaseRefused / TxnRefused (nothing changed)
//!        ▼
//!  each op of the chosen path in order, on the current state with the earlier ops applied
//!        ▼
//!  Outcome::Txn { succeeded, results }   (one revision for all changes)
//! ```
//!
//! The comparisons and operations are etcd's (so its API maps directly): a comparison looks at
//! a key's value, version, create revision, mod revision, existence or lease; a key that does
//! not exist has version, revisions and lease 0, and fails every comparison of its value (even
//! `!=`). A comparison over a range of keys holds when it holds for every key of the range;
//! over a range without keys, as for a missing key. A put may attach its key to a lease
//! ([`super::lease`]): once the comparisons chose the path, a put of that path naming a lease
//! that does not exist refuses the whole transaction before any of its operations runs.
//!
//! A transaction changes each key at most once, whichever branches run: two puts of one key, a
//! put and a delete of one key, or a put of a key a range delete covers are refused, since the
//! events a watcher sees for one revision could not say which came last. The rule is etcd's
//! (`duplicate key given in txn request`), checked over nested transactions as etcd does: the
//! two branches of one nested transaction never both run, so they may put the same key. It is
//! slightly stricter than etcd's in one case: a nested transaction's put followed by a later
//! sibling's delete of the key is refused here (etcd lets it through and records two changes of
//! one key at one revision). Deletes may overlap (the later one finds the key gone and
//! changes nothing). Validation is static, on the request
//! alone, so the store and the front ends refuse exactly the same transactions.
//!
//! Every transaction is bounded: at most [`TXN_COMPARES_MAX`] comparisons and
//! [`TXN_OPERATIONS_MAX`] operations per branch (etcd's default is 128), a nested transaction
//! counting against what its parent left of that bound (as in etcd), and a scan returns at
//! most [`TXN_SCAN_LIMIT_MAX`] keys.

use bytes::Bytes;
use thiserror::Error;

use super::history::{RevisionError, VersionedValue};
use super::range::{KeyRange, RangeEnd};
use super::range_query::{RangeQuery, RangeResult};

/// Most comparisons in one transaction.
pub const TXN_COMPARES_MAX: usize = 128;
/// Most operations in one branch of a transaction.
pub const TXN_OPERATIONS_MAX: usize = 128;
/// Most keys one scan of a transaction returns (a larger limit is lowered to it).
pub const TXN_SCAN_LIMIT_MAX: usize = 10_000;

/// How a comparison compares the key's target with the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`: the key's target is less than the operand.
    Less,
    /// `>`: the key's target is greater than the operand.
    Greater,
}

/// What a comparison looks at, with the operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// The value, compared as bytes; a key that does not exist fails every value comparison.
    Value(Bytes),
    /// The version (0: the key does not exist).
    Version(u64),
    /// The create revision (0: the key does not exist).
    CreateRevision(u64),
    /// The mod revision (0: the key does not exist).
    ModRevision(u64),
    /// Whether the key exists (with `=` and `!=` only).
    Exists(bool),
    /// The id of the lease the key is attached to (0: none, or the key does not exist).
    Lease(u64),
}

/// One comparison: `key`'s target `op` the operand (or every key's of `[key, range_end)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key compared, or the start of the range.
    pub key: String,
    /// [`RangeEnd::Single`] for the key alone; otherwise the comparison must hold for every
    /// key of the range (for a range without keys, as for a missing key).
    pub range_end: RangeEnd,
    /// How.
    pub op: CompareOp,
    /// What, with the operand.
    pub target: CompareTarget,
}

impl Compare {
    /// A comparison of the key `key` alone.
    pub fn key(key: impl Into<String>, op: CompareOp, target: CompareTarget) -> Compare {
        Compare {
            key: key.into(),
            range_end: RangeEnd::Single,
            op,
            target,
        }
    }

    /// The keys compared.
    pub fn range(&self) -> KeyRange {
        KeyRange {
            start: self.key.clone(),
            end: self.range_end.clone(),
        }
    }

    /// Whether the comparison holds for the key's current version (`None`: it does not exist).
    pub fn holds(&self, current: Option<&VersionedValue>) -> bool {
        let ordering = match (&self.target, current) {
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(operand), Some(current)) => current.value[..].cmp(&operand[..]),
            (CompareTarget::Version(operand), _) => {
                current.map_or(0, |current| current.version).cmp(operand)
            }
            (CompareTarget::CreateRevision(operand), _) => current
                .map_or(0, |current| current.create_revision)
                .cmp(operand),
            (CompareTarget::ModRevision(operand), _) => current
                .map_or(0, |current| current.mod_revision)
                .cmp(operand),
            (CompareTarget::Exists(operand), _) => current.is_some().cmp(operand),
            (CompareTarget::Lease(operand), _) => {
                current.map_or(0, |current| current.lease).cmp(operand)
            }
        };
        match self.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Less => ordering.is_lt(),
            CompareOp::Greater => ordering.is_gt(),
        }
    }
}

/// One operation of a transaction's branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    /// Sets `key` to `value`, attached to `lease` (detached from any lease when 0).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Bytes,
        /// The lease to attach the key to (0: none). A lease that does not exist when the
        /// branch is chosen refuses the whole transaction ([`super::LeaseError::NotFound`]).
        lease: u64,
    },
    /// Sets `key`, keeping its current value or its current lease (etcd's put with
    /// `ignore_value` or `ignore_lease`); the key must exist when the path is chosen, else the
    /// whole transaction is refused ([`TxnError::KeyNotFound`]).
    PutKeeping {
        /// The key.
        key: String,
        /// The new value; `None` keeps the current one.
        value: Option<Bytes>,
        /// The new lease (0: none); `None` keeps the current one.
        lease: Option<u64>,
    },
    /// Removes `key` (nothing if it does not exist).
    Delete {
        /// The key.
        key: String,
    },
    /// Removes every key starting with `prefix` (not empty).
    DeletePrefix {
        /// The prefix.
        prefix: String,
    },
    /// Removes every key of a range (etcd's `DeleteRange`).
    DeleteRange {
        /// The keys.
        range: KeyRange,
        /// Answer with the keys as they were ([`TxnOpOutcome::DeleteRange::prev`]).
        prev_kv: bool,
    },
    /// Reads `key`.
    Get {
        /// The key.
        key: String,
    },
    /// Reads the keys starting with `prefix`, in key order.
    Scan {
        /// The prefix (empty: every key).
        prefix: String,
        /// Most keys returned; at most [`TXN_SCAN_LIMIT_MAX`] are, whatever it says.
        limit: usize,
    },
    /// Reads a range as etcd's `Range` does ([`super::range_query`]); a revision that is
    /// compacted or in the future refuses the whole transaction.
    Range(RangeQuery),
    /// A nested transaction: its comparisons are evaluated with the outer ones, against the
    /// state before any operation runs.
    Txn(Txn),
}

/// A transaction: if every comparison holds, `success` runs, else `failure`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    /// The comparisons (none: the success branch runs).
    pub compare: Vec<Compare>,
    /// The operations when every comparison holds.
    pub success: Vec<TxnOp>,
    /// The operations otherwise.
    pub failure: Vec<TxnOp>,
}

/// What one operation of a transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOpOutcome {
    /// A put (either kind): the key before it (`None`: it did not exist).
    Put {
        /// The key's previous version.
        prev: Option<VersionedValue>,
    },
    /// A delete or a delete by prefix: how many keys it removed.
    Delete {
        /// Keys removed.
        deleted: u64,
    },
    /// A range delete: how many keys it removed, and which when asked.
    DeleteRange {
        /// Keys removed.
        deleted: u64,
        /// The keys removed as they were, in key order, when the operation asked for them.
        prev: Vec<(String, VersionedValue)>,
    },
    /// A get: the key (`None`: it does not exist).
    Get {
        /// The key's version.
        value: Option<VersionedValue>,
    },
    /// A scan: the keys with their versions, in key order.
    Scan {
        /// The keys.
        items: Vec<(String, VersionedValue)>,
        /// More keys with the prefix followed the last one returned.
        truncated: bool,
    },
    /// A range read.
    Range(RangeResult),
    /// A nested transaction.
    Txn {
        /// Whether its comparisons held.
        succeeded: bool,
        /// Each operation's result, in the order of its branch that ran.
        results: Vec<TxnOpOutcome>,
    },
}

/// Why a transaction is refused before it runs. Each message states the rule.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum TxnError {
    /// More comparisons than [`TXN_COMPARES_MAX`].
    #[error("a transaction has at most {TXN_COMPARES_MAX} comparisons; this one has {count}")]
    TooManyCompares {
        /// The comparisons given.
        count: usize,
    },
    /// A branch with more operations than [`TXN_OPERATIONS_MAX`].
    #[error(
        "a transaction's branch has at most {TXN_OPERATIONS_MAX} operations; this one has \
         {count}"
    )]
    TooManyOperations {
        /// The operations of the longer branch.
        count: usize,
    },
    /// A branch would change one key twice.
    #[error(
        "a transaction's branch changes each key at most once; this one changes {key:?} twice \
         (two puts, a put and a delete, or a put under a delete_prefix)"
    )]
    KeyChangedTwice {
        /// The key.
        key: String,
    },
    /// A `delete_prefix` with the empty prefix (it would empty the store).
    #[error("delete_prefix with the empty prefix is refused: it would delete every key")]
    EmptyDeletePrefix,
    /// An existence comparison with `<` or `>`.
    #[error("an exists comparison (on {key:?}) takes = or != only")]
    ExistsOrdered {
        /// The key compared.
        key: String,
    },
    /// A put keeping the value or the lease of a key that does not exist (on the chosen path).
    #[error("a put keeping the value or lease of {key:?} needs the key, which does not exist")]
    KeyNotFound {
        /// The key.
        key: String,
    },
    /// A range read of the chosen path at a revision the store cannot read.
    #[error("a range read of the transaction: {0}")]
    Revision(RevisionError),
}

impl Txn {
    /// `Ok` if the store will run this transaction rather than refuse it; the front ends
    /// call it before proposing, the store again before running it.
    pub fn validate(&self) -> Result<(), TxnError> {
        self.validate_bounds(TXN_OPERATIONS_MAX)?;
        for branch in [&self.success, &self.failure] {
            // One operation cannot change a key twice (a nested transaction might): the
            // single put of etcd's Put RPC skips the bookkeeping.
            let single = match &branch[..] {
                [] => true,
                [op] => !matches!(op, TxnOp::Txn(_)),
                _ => false,
            };
            if !single {
                branch_writes(branch)?;
            }
        }
        Ok(())
    }

    /// The bounds and the comparisons' form, at every level of nesting. As in etcd, a nested
    /// transaction's comparisons and branches count against what its parent left of
    /// `operations_max` (so the nesting is bounded too).
    fn validate_bounds(&self, operations_max: usize) -> Result<(), TxnError> {
        let compares_max = operations_max.min(TXN_COMPARES_MAX);
        if self.compare.len() > compares_max {
            return Err(TxnError::TooManyCompares {
                count: self.compare.len(),
            });
        }
        let longest = self.success.len().max(self.failure.len());
        if longest > operations_max {
            return Err(TxnError::TooManyOperations { count: longest });
        }
        for compare in &self.compare {
            let ordered = matches!(compare.op, CompareOp::Less | CompareOp::Greater);
            if ordered && matches!(compare.target, CompareTarget::Exists(_)) {
                return Err(TxnError::ExistsOrdered {
                    key: compare.key.clone(),
                });
            }
        }
        let left = operations_max - longest.max(self.compare.len());
        for op in self.success.iter().chain(&self.failure) {
            match op {
                TxnOp::DeletePrefix { prefix } if prefix.is_empty() => {
                    return Err(TxnError::EmptyDeletePrefix);
                }
                TxnOp::Txn(nested) => nested.validate_bounds(left)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Keys a range delete removes, as a span of byte strings.
#[derive(Clone, Copy, Debug)]
struct Deletion<'a> {
    start: &'a str,
    end: DeletionEnd<'a>,
}

#[derive(Clone, Copy, Debug)]
enum DeletionEnd<'a> {
    /// The start key alone.
    Key,
    /// Keys starting with the start.
    Prefix,
    /// Keys before this one.
    Before(&'a [u8]),
    /// Every key from the start on.
    Unbounded,
}

impl<'a> Deletion<'a> {
    fn of(op: &'a TxnOp) -> Option<Deletion<'a>> {
        let (start, end) = match op {
            TxnOp::Delete { key } => (key, DeletionEnd::Key),
            TxnOp::DeletePrefix { prefix } => (prefix, DeletionEnd::Prefix),
            TxnOp::DeleteRange { range, .. } => (
                &range.start,
                match &range.end {
                    RangeEnd::Single => DeletionEnd::Key,
                    RangeEnd::Unbounded => DeletionEnd::Unbounded,
                    RangeEnd::Before(end) => DeletionEnd::Before(end),
                },
            ),
            _ => return None,
        };
        Some(Deletion { start, end })
    }

    /// Whether `key` (at or after the start) is in the span.
    fn reaches(&self, key: &str) -> bool {
        match self.end {
            DeletionEnd::Key => key == self.start,
            DeletionEnd::Prefix => key.starts_with(self.start),
            DeletionEnd::Before(end) => key.as_bytes() < end,
            DeletionEnd::Unbounded => true,
        }
    }
}

/// What one branch (with its nested transactions, both of their branches) may change.
#[derive(Default)]
struct BranchWrites<'a> {
    puts: Vec<&'a str>,
    deletions: Vec<Deletion<'a>>,
}

/// Whose a put or a deletion is, within one branch: an operation of the branch itself, or the
/// nested transaction at that position.
type Owner = usize;
/// The owner of the branch's own deletions, which no put of the branch may meet.
const OWNER_BRANCH: Owner = usize::MAX;

/// What `branch` changes, or [`TxnError::KeyChangedTwice`] if a run of it could change a key
/// twice (see the module documentation). Each level sorts what it holds once, so this costs
/// `O(n log n)` per level of nesting for `n` operations, whatever the request.
fn branch_writes(branch: &[TxnOp]) -> Result<BranchWrites<'_>, TxnError> {
    let mut puts: Vec<(&str, Owner)> = Vec::new();
    let mut deletions: Vec<(Deletion<'_>, Owner)> = Vec::new();
    for (at, op) in branch.iter().enumerate() {
        match op {
            TxnOp::Put { key, .. } | TxnOp::PutKeeping { key, .. } => puts.push((key, at)),
            TxnOp::Txn(nested) => {
                let then = branch_writes(&nested.success)?;
                let otherwise = branch_writes(&nested.failure)?;
                // The two branches never both run: a key both put is one change.
                let mut nested_puts = then.puts;
                nested_puts.extend(otherwise.puts);
                nested_puts.sort_unstable();
                nested_puts.dedup();
                puts.extend(nested_puts.into_iter().map(|key| (key, at)));
                deletions.extend(
                    then.deletions
                        .into_iter()
                        .chain(otherwise.deletions)
                        .map(|deletion| (deletion, at)),
                );
            }
            _ => {
                if let Some(deletion) = Deletion::of(op) {
                    deletions.push((deletion, OWNER_BRANCH));
                }
            }
        }
    }
    if puts.is_empty() {
        return Ok(BranchWrites {
            puts: Vec::new(),
            deletions: deletions
                .into_iter()
                .map(|(deletion, _)| deletion)
                .collect(),
        });
    }
    puts.sort_unstable();
    // Within one owner keys are distinct (a nested transaction's were deduplicated, and a put
    // is one key), so equal neighbours belong to two owners.
    if let Some(pair) = puts.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(TxnError::KeyChangedTwice {
            key: pair[0].0.to_owned(),
        });
    }
    // next_other[i]: the first position after i whose owner differs from i's.
    let mut next_other = vec![puts.len(); puts.len()];
    for at in (0..puts.len().saturating_sub(1)).rev() {
        next_other[at] = if puts[at + 1].1 != puts[at].1 {
            at + 1
        } else {
            next_other[at + 1]
        };
    }
    for (deletion, owner) in &deletions {
        let first = puts.partition_point(|(key, _)| *key < deletion.start);
        let Some(&(key, put_owner)) = puts.get(first) else {
            continue;
        };
        if !deletion.reaches(key) {
            continue;
        }
        // A nested transaction's own puts and deletions were checked inside it (or are in
        // branches that never both run): only another owner's put in the span conflicts.
        let conflicting = if put_owner != *owner {
            Some(key)
        } else {
            puts.get(next_other[first])
                .map(|(key, _)| *key)
                .filter(|key| deletion.reaches(key))
        };
        if let Some(key) = conflicting {
            return Err(TxnError::KeyChangedTwice {
                key: key.to_owned(),
            });
        }
    }
    Ok(BranchWrites {
        puts: puts.into_iter().map(|(key, _)| key).collect(),
        deletions: deletions
            .into_iter()
            .map(|(deletion, _)| deletion)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(value: &'static [u8], version: u64) -> VersionedValue {
        VersionedValue {
            value: Bytes::from_static(value),
            create_revision: 2,
            mod_revision: 5,
            version,
            lease: 7,
        }
    }

    fn compare(op: CompareOp, target: CompareTarget) -> Compare {
        Compare {
            key: "k".into(),
            range_end: RangeEnd::Single,
            op,
            target,
        }
    }

    #[test]
    fn a_missing_key_fails_every_value_comparison_and_has_zero_revisions() {
        for op in [
            CompareOp::Equal,
            CompareOp::NotEqual,
            CompareOp::Less,
            CompareOp::Greater,
        ] {
            let value = compare(op, CompareTarget::Value(Bytes::from_static(b"x")));
            assert!(!value.holds(None), "{op:?}");
        }
        assert!(compare(CompareOp::Equal, CompareTarget::Version(0)).holds(None));
        assert!(compare(CompareOp::Equal, CompareTarget::ModRevision(0)).holds(None));
        assert!(compare(CompareOp::Equal, CompareTarget::CreateRevision(0)).holds(None));
        assert!(compare(CompareOp::Equal, CompareTarget::Exists(false)).holds(None));
        assert!(compare(CompareOp::NotEqual, CompareTarget::Exists(true)).holds(None));
    }

    #[test]
    fn comparisons_order_the_key_against_the_operand() {
        let current = version(b"b", 3);
        let holds = |op, target| compare(op, target).holds(Some(&current));
        assert!(holds(
            CompareOp::Greater,
            CompareTarget::Value(Bytes::from_static(b"a"))
        ));
        assert!(holds(
            CompareOp::Less,
            CompareTarget::Value(Bytes::from_static(b"ba"))
        ));
        assert!(holds(CompareOp::Equal, CompareTarget::Version(3)));
        assert!(holds(CompareOp::Less, CompareTarget::ModRevision(6)));
        assert!(!holds(CompareOp::Greater, CompareTarget::CreateRevision(2)));
        assert!(holds(CompareOp::NotEqual, CompareTarget::CreateRevision(1)));
        assert!(holds(CompareOp::Equal, CompareTarget::Exists(true)));
        assert!(holds(CompareOp::Equal, CompareTarget::Lease(7)));
        assert!(holds(CompareOp::Greater, CompareTarget::Lease(6)));
        assert!(!holds(CompareOp::Equal, CompareTarget::Lease(0)));
        assert!(compare(CompareOp::Equal, CompareTarget::Lease(0)).holds(None));
    }

    #[test]
    fn a_branch_changing_a_key_twice_or_deleting_everything_is_refused() {
        let put = |key: &str| TxnOp::Put {
            key: key.into(),
            value: Bytes::new(),
            lease: 0,
        };
        let delete = |key: &str| TxnOp::Delete { key: key.into() };
        let delete_prefix = |prefix: &str| TxnOp::DeletePrefix {
            prefix: prefix.into(),
        };
        let refused = |branch: Vec<TxnOp>| {
            let in_success = Txn {
                success: branch.clone(),
                ..Txn::default()
            };
            let in_failure = Txn {
                failure: branch,
                ..Txn::default()
            };
            let error = in_success.validate().err();
            assert_eq!(in_failure.validate().err(), error, "both branches checked");
            error
        };
        let twice = Some(TxnError::KeyChangedTwice { key: "a/1".into() });
        assert_eq!(refused(vec![put("a/1"), put("a/1")]), twice);
        assert_eq!(refused(vec![delete("a/1"), put("a/1")]), twice);
        assert_eq!(refused(vec![put("a/1"), delete_prefix("a/")]), twice);
        assert_eq!(
            refused(vec![delete_prefix("")]),
            Some(TxnError::EmptyDeletePrefix)
        );
        assert_eq!(
            refused(vec![
                put("a/1"),
                put("a/2"),
                delete("b"),
                delete("b"),
                delete_prefix("c"),
                delete_prefix("c/d"),
                TxnOp::Get { key: "a/1".into() },
            ]),
            None,
            "distinct puts, and deletes that overlap only each other"
        );
        let too_long = vec![TxnOp::Get { key: "k".into() }; TXN_OPERATIONS_MAX + 1];
        assert_eq!(
            refused(too_long),
            Some(TxnError::TooManyOperations {
                count: TXN_OPERATIONS_MAX + 1
            })
        );
        let ordered_exists = Txn {
            compare: vec![compare(CompareOp::Less, CompareTarget::Exists(true))],
            ..Txn::default()
        };
        assert_eq!(
            ordered_exists.validate(),
            Err(TxnError::ExistsOrdered { key: "k".into() })
        );
    }
}
