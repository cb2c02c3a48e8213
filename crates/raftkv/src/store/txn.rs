//! Transactions: comparisons, then one of two branches of operations, applied at one revision.
//!
//! ```text
//!  Txn { compare, success, failure }
//!        │
//!        ▼
//!  validate ── refused (TxnError) ─────────────────────────► Outcome::TxnRefused { error }
//!        │ ok                    (the HTTP layer calls it before proposing; the store again,
//!        ▼                        so every replica refuses the same way)
//!  every compare holds? ── yes ──► success ──┐
//!        └──────────────── no ───► failure ──┤ each op in order, on the current state with the
//!                                            │ branch's earlier ops applied
//!                                            ▼
//!                      Outcome::Txn { succeeded, results }   (one revision for all changes)
//! ```
//!
//! The comparisons and operations are etcd's (so its API maps directly): a comparison looks at
//! a key's value, version, create revision, mod revision, existence or lease; a key that does
//! not exist has version, revisions and lease 0, and fails every comparison of its value (even
//! `!=`). A put may attach its key to a lease ([`super::lease`]): once the comparisons chose
//! the branch, a put of that branch naming a lease that does not exist refuses the whole
//! transaction before any of its operations runs.
//! A branch changes each key at most once: two puts of one key, a put and a delete of one key,
//! or a put of a key a `delete_prefix` of the branch covers are refused, since the events a
//! watcher sees for one revision could not say which came last. Deletes may overlap (the later
//! one finds the key gone and changes nothing). Validation is static, on the request alone,
//! so the store and the HTTP layer refuse exactly the same transactions.
//!
//! Every transaction is bounded: at most [`TXN_COMPARES_MAX`] comparisons and
//! [`TXN_OPERATIONS_MAX`] operations per branch (etcd's default is 128), and a scan returns at
//! most [`TXN_SCAN_LIMIT_MAX`] keys.

use bytes::Bytes;
use thiserror::Error;

use super::history::VersionedValue;

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

/// One comparison: `key`'s target `op` the operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key compared.
    pub key: String,
    /// How.
    pub op: CompareOp,
    /// What, with the operand.
    pub target: CompareTarget,
}

impl Compare {
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
    /// A put: the key before it (`None`: it did not exist).
    Put {
        /// The key's previous version.
        prev: Option<VersionedValue>,
    },
    /// A delete or a delete by prefix: how many keys it removed.
    Delete {
        /// Keys removed.
        deleted: u64,
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
}

impl Txn {
    /// `Ok` if the store will run this transaction rather than refuse it; the HTTP layer
    /// calls it before proposing, the store again before running it.
    pub fn validate(&self) -> Result<(), TxnError> {
        if self.compare.len() > TXN_COMPARES_MAX {
            return Err(TxnError::TooManyCompares {
                count: self.compare.len(),
            });
        }
        let longest = self.success.len().max(self.failure.len());
        if longest > TXN_OPERATIONS_MAX {
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
        validate_branch(&self.success)?;
        validate_branch(&self.failure)
    }
}

/// `Ok` if `branch` changes each key at most once and deletes no empty prefix. Quadratic in
/// the branch's length, which [`TXN_OPERATIONS_MAX`] bounds.
fn validate_branch(branch: &[TxnOp]) -> Result<(), TxnError> {
    for (at, op) in branch.iter().enumerate() {
        let put_key = match op {
            TxnOp::DeletePrefix { prefix } if prefix.is_empty() => {
                return Err(TxnError::EmptyDeletePrefix);
            }
            TxnOp::Put { key, .. } => key,
            _ => continue,
        };
        let conflicts = |other: &TxnOp| match other {
            TxnOp::Put { key, .. } | TxnOp::Delete { key } => key == put_key,
            TxnOp::DeletePrefix { prefix } => put_key.starts_with(prefix.as_str()),
            TxnOp::Get { .. } | TxnOp::Scan { .. } => false,
        };
        let conflicting = branch
            .iter()
            .enumerate()
            .any(|(other_at, other)| other_at != at && conflicts(other));
        if conflicting {
            return Err(TxnError::KeyChangedTwice {
                key: put_key.clone(),
            });
        }
    }
    Ok(())
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
