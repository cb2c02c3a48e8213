//! Configuration entries decode, are valid, and change one peer at a time (thesis §4.3).

use raft_core::{Configuration, Entry, EntryKind, LogId, NodeId};

use super::{violated, Check};

/// Configuration entries are well formed and each changes one peer at a time (thesis §4.3):
/// a joint configuration's two voter sets differ by one peer, and consecutive configuration
/// entries of one write go from a stable configuration to its joint one (the old voters
/// outgoing), from a joint one to its C_new, or add or remove one learner.
pub(crate) fn check_membership_steps(peer: NodeId, entries: &[Entry]) -> Check {
    let mut previous: Option<(LogId, Configuration)> = None;
    for entry in entries {
        if entry.kind != EntryKind::Configuration {
            continue;
        }
        let configuration = match Configuration::decode(&entry.data) {
            Ok(configuration) => configuration,
            Err(error) => {
                return violated(
                    "configuration-entry-valid",
                    format!(
                        "{peer} writes configuration entry {} that does not decode: {error}",
                        entry.id
                    ),
                )
            }
        };
        if configuration.voters.is_empty() {
            return violated(
                "configuration-entry-valid",
                format!(
                    "{peer} writes configuration entry {} without voters",
                    entry.id
                ),
            );
        }
        if configuration.is_joint()
            && configuration
                .voters
                .symmetric_difference(&configuration.outgoing)
                .count()
                != 1
        {
            return violated(
                "membership-one-peer-at-a-time",
                format!("{peer} writes joint configuration {} changing more than one voter: {configuration:?}", entry.id),
            );
        }
        if let Some((previous_id, before)) = &previous {
            let legal = if configuration.is_joint() {
                !before.is_joint() && configuration.outgoing == before.voters
            } else if before.is_joint() {
                configuration.voters == before.voters && configuration.learners == before.learners
            } else {
                configuration.voters == before.voters
                    && configuration
                        .learners
                        .symmetric_difference(&before.learners)
                        .count()
                        == 1
            };
            if !legal {
                return violated(
                    "membership-one-peer-at-a-time",
                    format!(
                        "{peer} writes {} ({configuration:?}) right after {previous_id} ({before:?})",
                        entry.id
                    ),
                );
            }
        }
        previous = Some((entry.id, configuration));
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    use raft_core::{Configuration, Entry, EntryKind, Index, LogId, NodeId, Term};

    use super::*;

    #[test]
    fn membership_steps_catch_two_changes_at_once() {
        let configuration_entry = |index: u64, configuration: &Configuration| Entry {
            id: LogId::new(Term(1), Index(index)),
            kind: EntryKind::Configuration,
            data: configuration.encode(),
        };
        let stable = Configuration::new([NodeId(1), NodeId(2), NodeId(3)]);
        let mut joint = stable.clone();
        joint.outgoing = stable.voters.clone();
        joint.voters.insert(NodeId(4));
        let mut after = joint.clone();
        after.outgoing.clear();
        let steps = [
            configuration_entry(1, &stable),
            configuration_entry(2, &joint),
            configuration_entry(3, &after),
        ];
        assert!(check_membership_steps(NodeId(1), &steps).is_ok());
        let mut two_at_once = joint.clone();
        two_at_once.voters.insert(NodeId(5));
        let error = check_membership_steps(NodeId(1), &[configuration_entry(1, &two_at_once)])
            .expect_err("two voters added at once");
        assert_eq!(error.invariant, "membership-one-peer-at-a-time");
        let skipping_joint = [
            configuration_entry(1, &stable),
            configuration_entry(2, &after),
        ];
        assert!(check_membership_steps(NodeId(1), &skipping_joint).is_err());
    }
}
