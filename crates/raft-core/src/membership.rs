//! Cluster membership: who votes, who only learns, and — while a change is under way by joint
//! consensus (thesis §4.3) — the two voter sets that must both agree.
//!
//! ```text
//!  stable        voters = C          outgoing = {}     learners = L
//!  joint         voters = C_new      outgoing = C_old  learners = L   (both majorities needed)
//!  members()     voters ∪ outgoing ∪ learners: every peer the leader replicates to
//! ```
//!
//! A configuration travels inside the log as the data of an
//! [`crate::EntryKind::Configuration`] entry, in the binary format of
//! [`Configuration::encode`]; it takes effect on a peer as soon as the entry is in its log,
//! committed or not (thesis §4.1).
//!
//! How the membership changes (joint consensus, the configuration history a follower falls
//! back on) is the child module `change`.

mod change;

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes};
use thiserror::Error;

use crate::types::NodeId;

pub use change::ConfChange;
pub(crate) use change::ConfigurationHistory;

/// The membership of the cluster. Quorum decisions (votes, commit, CheckQuorum, read
/// confirmations) are always taken against a value of this type: a majority of `voters`
/// and, while the configuration is joint, a majority of `outgoing` as well (thesis §4.3).
/// Learners receive the log and snapshots but never vote and never count.
///
/// Invariant (checked by [`Configuration::validate`]): no set names `NodeId(0)`; learners are
/// in neither voter set; a joint configuration has incoming voters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Configuration {
    /// The voters of the configuration being moved to (C_new), or the only voter set when the
    /// configuration is not joint.
    pub voters: BTreeSet<NodeId>,
    /// The voters of the configuration being left (C_old) while the configuration is joint;
    /// empty otherwise.
    pub outgoing: BTreeSet<NodeId>,
    /// Peers that receive the log and snapshots but never vote or count towards a quorum.
    pub learners: BTreeSet<NodeId>,
}

/// Why bytes or a value are not a valid [`Configuration`].
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfigurationError {
    /// The encoding ends before the configuration does.
    #[error("configuration encoding is truncated")]
    Truncated,
    /// The encoding is of a version this build does not know.
    #[error("unknown configuration encoding version {0}")]
    UnknownVersion(u8),
    /// A varint is longer than needed or overflows 64 bits.
    #[error("malformed varint in a configuration encoding")]
    MalformedVarint,
    /// The node ids of a set are not strictly increasing (the encoding is canonical).
    #[error("node ids of a configuration set are not strictly increasing")]
    Unordered,
    /// `NodeId(0)` is never a peer.
    #[error("node id 0 in a configuration")]
    ZeroNode,
    /// A peer is both a learner and a voter.
    #[error("{0} is both a learner and a voter")]
    LearnerVotes(NodeId),
    /// A joint configuration must have incoming voters.
    #[error("joint configuration without incoming voters")]
    JointWithoutVoters,
    /// Bytes follow the encoded configuration.
    #[error("{0} bytes after the encoded configuration")]
    TrailingBytes(usize),
}

/// The version byte of the encoding [`Configuration::encode`] writes.
const ENCODING_VERSION: u8 = 1;
/// A varint holds at most 64 bits in ten bytes of seven.
const VARINT_BYTES_MAX: usize = 10;

impl Configuration {
    /// A stable configuration of the given voters, with no learners.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Configuration {
        Configuration {
            voters: voters.into_iter().collect(),
            outgoing: BTreeSet::new(),
            learners: BTreeSet::new(),
        }
    }

    /// Whether `node` is a voter in either voter set; the same as [`Configuration::is_voter`].
    /// Learners are not contained: every caller asks "may this peer vote / campaign / lead".
    pub fn contains(&self, node: NodeId) -> bool {
        self.is_voter(node)
    }

    /// Whether `node` votes: it is in `voters` or, while joint, in `outgoing`.
    pub fn is_voter(&self, node: NodeId) -> bool {
        self.voters.contains(&node) || self.outgoing.contains(&node)
    }

    /// Whether `node` is a learner.
    pub fn is_learner(&self, node: NodeId) -> bool {
        self.learners.contains(&node)
    }

    /// Whether `node` is a voter or a learner.
    pub fn is_member(&self, node: NodeId) -> bool {
        self.is_voter(node) || self.is_learner(node)
    }

    /// Whether a change is half way: two voter sets must agree (thesis §4.3).
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Every peer the configuration names — voters of both sets and learners — in id order,
    /// each once. The leader replicates to all of them.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        let all: BTreeSet<NodeId> = self
            .voters
            .iter()
            .chain(&self.outgoing)
            .chain(&self.learners)
            .copied()
            .collect();
        all.into_iter()
    }

    /// Every voter of both sets, in id order, each once: the peers a candidate asks for votes.
    pub fn voting_members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.union(&self.outgoing).copied()
    }

    /// Checks the invariant documented on the type.
    pub fn validate(&self) -> Result<(), ConfigurationError> {
        let zero = NodeId(0);
        if self.voters.contains(&zero)
            || self.outgoing.contains(&zero)
            || self.learners.contains(&zero)
        {
            return Err(ConfigurationError::ZeroNode);
        }
        if let Some(&learner) = self.learners.iter().find(|&&id| self.is_voter(id)) {
            return Err(ConfigurationError::LearnerVotes(learner));
        }
        if self.is_joint() && self.voters.is_empty() {
            return Err(ConfigurationError::JointWithoutVoters);
        }
        Ok(())
    }

    /// The configuration in its stable binary form, the data of a configuration entry:
    ///
    /// ```text
    ///  configuration := version u8 (= 1) | set voters | set outgoing | set learners
    ///  set           := count varint | node id varint * count      (strictly increasing)
    ///  varint        := unsigned LEB128, shortest form, at most 10 bytes
    /// ```
    ///
    /// The form is canonical: one configuration has one encoding, and
    /// [`Configuration::decode`] accepts nothing else.
    pub fn encode(&self) -> Bytes {
        let ids = self.voters.len() + self.outgoing.len() + self.learners.len();
        let mut out = Vec::with_capacity(1 + 3 * VARINT_BYTES_MAX + ids * 2);
        out.put_u8(ENCODING_VERSION);
        for set in [&self.voters, &self.outgoing, &self.learners] {
            put_varint(&mut out, set.len() as u64);
            for node in set {
                put_varint(&mut out, node.0);
            }
        }
        Bytes::from(out)
    }

    /// Decodes [`Configuration::encode`]'s form and checks [`Configuration::validate`]'s
    /// invariant. Arbitrary bytes give an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Configuration, ConfigurationError> {
        let mut cursor = bytes;
        let (&version, rest) = cursor.split_first().ok_or(ConfigurationError::Truncated)?;
        if version != ENCODING_VERSION {
            return Err(ConfigurationError::UnknownVersion(version));
        }
        cursor = rest;
        let mut sets: [BTreeSet<NodeId>; 3] = Default::default();
        for set in sets.iter_mut() {
            let count = take_varint(&mut cursor)?;
            // Every id takes at least a byte: a larger count is a lie about the length.
            if count > cursor.len() as u64 {
                return Err(ConfigurationError::Truncated);
            }
            let mut previous = 0u64;
            for _ in 0..count {
                let id = take_varint(&mut cursor)?;
                if id == 0 {
                    return Err(ConfigurationError::ZeroNode);
                }
                if id <= previous {
                    return Err(ConfigurationError::Unordered);
                }
                previous = id;
                set.insert(NodeId(id));
            }
        }
        if !cursor.is_empty() {
            return Err(ConfigurationError::TrailingBytes(cursor.len()));
        }
        let [voters, outgoing, learners] = sets;
        let configuration = Configuration {
            voters,
            outgoing,
            learners,
        };
        configuration.validate()?;
        Ok(configuration)
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn take_varint(cursor: &mut &[u8]) -> Result<u64, ConfigurationError> {
    let mut value = 0u64;
    for position in 0..VARINT_BYTES_MAX {
        let (&byte, rest) = cursor.split_first().ok_or(ConfigurationError::Truncated)?;
        *cursor = rest;
        let bits = u64::from(byte & 0x7f);
        // The tenth byte may only carry the 64th bit.
        if position == VARINT_BYTES_MAX - 1 && bits > 1 {
            return Err(ConfigurationError::MalformedVarint);
        }
        value |= bits << (7 * position);
        if byte & 0x80 == 0 {
            // A zero last byte (other than a lone zero) means a longer form than needed.
            if position > 0 && byte == 0 {
                return Err(ConfigurationError::MalformedVarint);
            }
            return Ok(value);
        }
    }
    Err(ConfigurationError::MalformedVarint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(values: &[u64]) -> BTreeSet<NodeId> {
        values.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn a_joint_configuration_with_learners_has_a_known_encoding() {
        let configuration = Configuration {
            voters: ids(&[1, 2, 300]),
            outgoing: ids(&[1, 2]),
            learners: ids(&[4]),
        };
        let encoded = configuration.encode();
        assert_eq!(
            &encoded[..],
            &[1, 3, 1, 2, 0xac, 0x02, 2, 1, 2, 1, 4],
            "version, then each set as a count and varint ids"
        );
        assert_eq!(Configuration::decode(&encoded), Ok(configuration));
    }

    #[test]
    fn members_and_roles() {
        let configuration = Configuration {
            voters: ids(&[1, 2, 4]),
            outgoing: ids(&[1, 2, 3]),
            learners: ids(&[5]),
        };
        assert!(configuration.is_joint());
        assert!(configuration.is_voter(NodeId(3)), "outgoing voters vote");
        assert!(configuration.contains(NodeId(4)));
        assert!(!configuration.contains(NodeId(5)), "learners do not vote");
        assert!(configuration.is_learner(NodeId(5)));
        assert!(configuration.is_member(NodeId(5)));
        assert!(!configuration.is_member(NodeId(6)));
        let members: Vec<u64> = configuration.members().map(|id| id.0).collect();
        assert_eq!(members, vec![1, 2, 3, 4, 5]);
        let voting: Vec<u64> = configuration.voting_members().map(|id| id.0).collect();
        assert_eq!(voting, vec![1, 2, 3, 4]);
    }

    #[test]
    fn invalid_encodings_are_refused() {
        let cases: Vec<(&[u8], ConfigurationError)> = vec![
            (&[], ConfigurationError::Truncated),
            (&[2, 0, 0, 0], ConfigurationError::UnknownVersion(2)),
            (&[1, 1], ConfigurationError::Truncated),
            (&[1, 5, 1, 2], ConfigurationError::Truncated),
            (&[1, 2, 2, 1, 0, 0], ConfigurationError::Unordered),
            (&[1, 1, 0, 0, 0], ConfigurationError::ZeroNode),
            (
                &[1, 1, 0x81, 0x00, 0, 0],
                ConfigurationError::MalformedVarint,
            ),
            (
                &[1, 1, 1, 0, 1, 1],
                ConfigurationError::LearnerVotes(NodeId(1)),
            ),
            (&[1, 0, 1, 1, 0], ConfigurationError::JointWithoutVoters),
            (&[1, 0, 0, 0, 9], ConfigurationError::TrailingBytes(1)),
            (
                &[
                    1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0,
                ],
                ConfigurationError::MalformedVarint,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(Configuration::decode(bytes), Err(expected), "{bytes:?}");
        }
    }

    #[test]
    fn the_largest_node_id_roundtrips() {
        let configuration = Configuration::new([NodeId(u64::MAX)]);
        assert_eq!(
            Configuration::decode(&configuration.encode()),
            Ok(configuration)
        );
    }

    fn node_set() -> impl Strategy<Value = BTreeSet<NodeId>> {
        proptest::collection::btree_set(
            prop_oneof![1u64..20, any::<u64>().prop_map(|id| id.max(1))],
            0..6,
        )
        .prop_map(|set| set.into_iter().map(NodeId).collect())
    }

    proptest! {
        #[test]
        fn valid_configurations_roundtrip(voters in node_set(), outgoing in node_set(), learners in node_set()) {
            let learners = learners.into_iter().filter(|id| !voters.contains(id) && !outgoing.contains(id)).collect();
            let configuration = Configuration { voters, outgoing, learners };
            prop_assume!(configuration.validate().is_ok());
            prop_assert_eq!(Configuration::decode(&configuration.encode()), Ok(configuration));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_decode_canonically(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(configuration) = Configuration::decode(&bytes) {
                prop_assert_eq!(&configuration.encode()[..], &bytes[..]);
            }
        }
    }
}
