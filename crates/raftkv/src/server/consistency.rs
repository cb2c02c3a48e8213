//! Consistency checks: the leader proposes a hash check and compares every member's hash of
//! its state at that entry's index ([`super::state_hashes`]), on demand and every
//! `--consistency-check-interval`.
//!
//! ```text
//!  check_consistency (on the leader): write HashCheck ─► index I, applied here
//!    ─► every member of the configuration at once, each waited for until the check's
//!       deadline: this node's StateHashes; the others' GET /v1/consistency/hash?index=I
//!       (a StateHashFetcher: the HTTP layer's)
//!    ─► judge: consistent │ divergent: the members outside the largest group of equal
//!              hashes (every member that hashed, when no group is larger than the rest)
//!                         │ incomplete: the hashes given agree, but a member gave none
//!    ─► figures (checks, divergent members, last index); an error line naming every
//!       member's hash when they disagree
//!  consistency_loop: a check every interval while this node leads; the divergent-members
//!    gauge back to 0 when it stops leading (the next leader checks and sets its own)
//! ```
//!
//! Hashes are compared at one index, where every replica that applied the same log holds the
//! same state, so a difference is a divergence, not a replica behind. What the check cannot
//! tell is which side is right: with three members, the odd one out is named.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Weak;
use std::time::Duration;

use futures_util::future::join_all;
use raft_core::NodeId;
use raft_node::declare_metrics;
use raft_node::metrics::{add, set};
use raftkv_client::api::{
    ConsistencyCheckResponse, ConsistencyVerdict, MemberStateHash, StateHashResponse,
    StateHashState,
};
use tokio::time::Instant;

use super::state_hashes::StateHashAnswer;
use super::{KvServer, ServeError};
use crate::store::Operation;

declare_metrics! {
    /// What this node's consistency checks found, as the metrics endpoint exports it.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ConsistencyFigures;
    /// Written by each check this node runs (it runs them while it leads).
    pub struct ConsistencyCounters;

    /// Consistency checks this node ran (periodic and on demand, while it led).
    checks_total: u64 => counter("consistency_checks",
        "Consistency checks this node ran as the leader (periodic and on demand)"),
    /// Members whose hash disagreed at this node's last check (0 when all agreed, and on a
    /// node that does not lead).
    divergent_members: u64 => gauge("consistency_divergent_members",
        "Members whose state hash disagreed at the last consistency check (0: all agreed; \
         set by the leader, 0 elsewhere)"),
    /// The log index of this node's last check.
    last_check_index: u64 => gauge("consistency_last_check_index",
        "Log index at which the last consistency check compared the members' state hashes"),
}

/// How a check asks another member for its hash (the HTTP layer implements it).
pub trait StateHashFetcher: Send + Sync + 'static {
    /// The hash at `index` of the node whose HTTP API is at `http_address`, waiting up to
    /// `wait` for it; `Err` with the reason when the node could not be asked.
    fn state_hash(
        &self,
        http_address: String,
        index: u64,
        wait: Duration,
    ) -> impl Future<Output = Result<StateHashResponse, String>> + Send;
}

impl KvServer {
    /// This node's hash of its state at `index`, waiting up to `wait` while it is pending
    /// (the index not applied yet, or being hashed).
    pub async fn state_hash_at(&self, index: u64, wait: Duration) -> StateHashAnswer {
        let deadline = Instant::now() + wait;
        let mut changed = self.state_hashes.subscribe();
        let mut applied = self.applied.clone();
        loop {
            // Marked seen before the records are read, so no change in between is missed.
            changed.borrow_and_update();
            let applied_index = *applied.borrow_and_update();
            let answer = self.state_hashes.at(index, applied_index);
            if answer != StateHashAnswer::Pending {
                return answer;
            }
            tokio::select! {
                woke = changed.changed() => if woke.is_err() { return answer },
                woke = applied.changed() => if woke.is_err() { return answer },
                () = tokio::time::sleep_until(deadline) => return answer,
            }
        }
    }

    /// Runs a consistency check on this node, which must lead: proposes a hash check, then
    /// compares every member's hash at its index. Members are waited for until about three
    /// quarters of the request timeout have passed since the check began, so the answer
    /// comes within the timeout; one that has not answered by then is reported as missing.
    pub async fn check_consistency(
        &self,
        fetcher: &impl StateHashFetcher,
    ) -> Result<ConsistencyCheckResponse, ServeError> {
        let deadline = Instant::now() + self.config.request_timeout.mul_f64(0.75);
        let index = self.write(None, Operation::HashCheck).await?.index;
        let status = self.node.status().await?;
        let members: Vec<NodeId> = status.configuration.members().collect();
        let hashes = members.iter().map(|&member| async move {
            let wait = deadline.saturating_duration_since(Instant::now());
            if member == self.config.id {
                return member_hash(member, Ok(self.state_hash_at(index, wait).await));
            }
            let Some(address) = self.http_address_of(member) else {
                return member_hash(member, Err("no HTTP address announced".to_string()));
            };
            let answer = fetcher
                .state_hash(address, index, wait)
                .await
                .and_then(|response| answer_of(response, member, index));
            member_hash(member, answer)
        });
        let report = judge(index, join_all(hashes).await);
        self.note_check(&report);
        Ok(report)
    }

    /// Records `report` in the figures and the log.
    fn note_check(&self, report: &ConsistencyCheckResponse) {
        let figures = &self.consistency;
        add(&figures.checks_total, 1);
        set(&figures.divergent_members, report.divergent.len() as u64);
        set(&figures.last_check_index, report.index);
        let hashes = describe(&report.members);
        match report.verdict {
            ConsistencyVerdict::Consistent => {
                tracing::debug!(index = report.index, %hashes, "consistency check: consistent");
            }
            ConsistencyVerdict::Incomplete => tracing::warn!(
                index = report.index,
                %hashes,
                "consistency check incomplete: some members gave no state hash"
            ),
            ConsistencyVerdict::Divergent => tracing::error!(
                index = report.index,
                divergent = ?report.divergent,
                %hashes,
                "consistency check: members hold different states at the same index"
            ),
        }
    }

    /// What this node's consistency checks found.
    pub fn consistency_figures(&self) -> ConsistencyFigures {
        self.consistency.snapshot()
    }
}

/// A member's hash as the API carries it, from what it answered (or why it could not).
fn member_hash(member: NodeId, answer: Result<StateHashAnswer, String>) -> MemberStateHash {
    let (hash, revision, missing) = match answer {
        Ok(StateHashAnswer::Hashed(hash)) => (Some(hash.hex()), Some(hash.revision), None),
        Ok(StateHashAnswer::Pending) => (None, None, Some("still pending".to_string())),
        Ok(StateHashAnswer::NotHashed) => (None, None, Some("not hashed there".to_string())),
        Ok(StateHashAnswer::Forgotten) => (None, None, Some("forgotten".to_string())),
        Err(reason) => (None, None, Some(reason)),
    };
    MemberStateHash {
        id: member.0,
        hash,
        revision,
        missing,
    }
}

/// `response` from `member` as an answer about `index`; refused when it is about another node
/// or index, or says it is hashed without a hash of 64 hex digits.
fn answer_of(
    response: StateHashResponse,
    member: NodeId,
    index: u64,
) -> Result<StateHashAnswer, String> {
    if response.node != member.0 || response.index != index {
        return Err(format!(
            "answered for node {} at index {} instead",
            response.node, response.index
        ));
    }
    Ok(match response.state {
        StateHashState::Hashed => {
            let digest = response
                .hash
                .as_deref()
                .and_then(parse_digest)
                .ok_or("answered hashed without a valid hash")?;
            StateHashAnswer::Hashed(super::state_hashes::StateHash {
                digest,
                revision: response.revision.unwrap_or(0),
            })
        }
        StateHashState::Pending => StateHashAnswer::Pending,
        StateHashState::NotHashed => StateHashAnswer::NotHashed,
        StateHashState::Forgotten => StateHashAnswer::Forgotten,
    })
}

/// A SHA-256 digest from its 64 hex digits.
fn parse_digest(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(digest)
}

/// The verdict on `members`' hashes at `index` (members in any order; the report lists them
/// in id order).
pub(super) fn judge(index: u64, mut members: Vec<MemberStateHash>) -> ConsistencyCheckResponse {
    members.sort_by_key(|member| member.id);
    let mut groups: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for member in &members {
        if let Some(hash) = &member.hash {
            groups.entry(hash).or_default().push(member.id);
        }
    }
    let largest = groups.values().map(Vec::len).max().unwrap_or(0);
    let largest_groups = groups.values().filter(|ids| ids.len() == largest).count();
    let mut divergent: Vec<u64> = match (groups.len(), largest_groups) {
        (0 | 1, _) => Vec::new(),
        // One group holds more members than any other: the others are the odd ones out.
        (_, 1) => groups
            .values()
            .filter(|ids| ids.len() < largest)
            .flatten()
            .copied()
            .collect(),
        // A tie: nothing tells which side is right, so every member that hashed is named.
        _ => groups.values().flatten().copied().collect(),
    };
    divergent.sort_unstable();
    let every_member_hashed = members.iter().all(|member| member.hash.is_some());
    let verdict = if !divergent.is_empty() {
        ConsistencyVerdict::Divergent
    } else if every_member_hashed && !members.is_empty() {
        ConsistencyVerdict::Consistent
    } else {
        ConsistencyVerdict::Incomplete
    };
    if verdict == ConsistencyVerdict::Divergent {
        assert!(groups.len() >= 2, "invariant divergence-needs-two-hashes");
    }
    ConsistencyCheckResponse {
        index,
        verdict,
        members,
        divergent,
    }
}

/// `1=HASH 2=HASH 3=(missing: REASON)`, for the log.
fn describe(members: &[MemberStateHash]) -> String {
    let parts: Vec<String> = members
        .iter()
        .map(|member| match (&member.hash, &member.missing) {
            (Some(hash), _) => format!("{}={hash}", member.id),
            (None, Some(reason)) => format!("{}=(missing: {reason})", member.id),
            (None, None) => format!("{}=(missing)", member.id),
        })
        .collect();
    parts.join(" ")
}

/// Runs for as long as the server does: a consistency check every `interval`
/// (`--consistency-check-interval`) while this node leads, the first one interval after it
/// began leading. Off when the interval is zero.
pub(super) async fn consistency_loop(server: Weak<KvServer>, fetcher: impl StateHashFetcher) {
    let Some(interval) = server
        .upgrade()
        .map(|server| server.config.consistency_check_interval)
    else {
        return;
    };
    if interval.is_zero() {
        return;
    }
    // Leadership is looked at this often, so that a node that stops leading clears its gauge
    // soon after, and a short interval (tests) is kept.
    let poll = interval.min(Duration::from_secs(1));
    let mut next_check: Option<Instant> = None;
    loop {
        tokio::time::sleep(poll).await;
        let Some(server) = server.upgrade() else {
            return;
        };
        if !server.is_leader() {
            next_check = None;
            set(&server.consistency.divergent_members, 0u64);
            continue;
        }
        let due = *next_check.get_or_insert_with(|| Instant::now() + interval);
        if Instant::now() < due {
            continue;
        }
        if let Err(error) = server.check_consistency(&fetcher).await {
            // Leadership moved or the entry timed out: the next leader (or check) tries again.
            tracing::debug!(%error, "periodic consistency check not run");
        }
        next_check = Some(Instant::now() + interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdict and the divergent members when member `n` (from 1) gave `hashes[n - 1]`,
    /// the members handed to the judge last first.
    fn verdict_of(hashes: &[Option<&str>]) -> (ConsistencyVerdict, Vec<u64>) {
        let mut members: Vec<MemberStateHash> = (1..)
            .zip(hashes)
            .map(|(id, hash)| match hash {
                Some(hash) => member_hash(NodeId(id), Ok(hashed(hash))),
                None => member_hash(NodeId(id), Err("unreachable".to_string())),
            })
            .collect();
        members.reverse();
        let report = judge(12, members);
        let ids: Vec<u64> = report.members.iter().map(|member| member.id).collect();
        assert_eq!(
            ids,
            (1..=hashes.len() as u64).collect::<Vec<_>>(),
            "in id order"
        );
        assert_eq!(report.index, 12);
        (report.verdict, report.divergent)
    }

    /// A hash whose digest is `text`'s first byte, repeated.
    fn hashed(text: &str) -> StateHashAnswer {
        StateHashAnswer::Hashed(super::super::state_hashes::StateHash {
            digest: [text.as_bytes()[0]; 32],
            revision: 7,
        })
    }

    #[test]
    fn equal_hashes_from_every_member_are_consistent() {
        let all_equal = verdict_of(&[Some("a"), Some("a"), Some("a")]);
        assert_eq!(all_equal, (ConsistencyVerdict::Consistent, Vec::new()));
    }

    #[test]
    fn the_odd_member_out_is_named_divergent_even_when_another_is_missing() {
        let expected = (ConsistencyVerdict::Divergent, vec![2]);
        assert_eq!(verdict_of(&[Some("a"), Some("b"), Some("a")]), expected);
        assert_eq!(
            verdict_of(&[Some("a"), Some("b"), Some("a"), None]),
            expected
        );
    }

    #[test]
    fn a_tie_names_every_member_that_hashed() {
        let tie = verdict_of(&[Some("a"), Some("b"), None]);
        assert_eq!(tie, (ConsistencyVerdict::Divergent, vec![1, 2]));
    }

    #[test]
    fn a_member_without_a_hash_makes_agreeing_hashes_incomplete() {
        let incomplete = (ConsistencyVerdict::Incomplete, Vec::new());
        assert_eq!(verdict_of(&[Some("a"), Some("a"), None]), incomplete);
        assert_eq!(verdict_of(&[]), incomplete);
    }

    #[test]
    fn an_answer_about_another_node_or_index_or_without_a_valid_hash_is_refused() {
        let response = |node, index, hash: Option<&str>| StateHashResponse {
            node,
            index,
            state: StateHashState::Hashed,
            hash: hash.map(str::to_string),
            revision: Some(3),
        };
        let good = "0f".repeat(32);
        assert_eq!(
            answer_of(response(2, 9, Some(&good)), NodeId(2), 9),
            Ok(StateHashAnswer::Hashed(
                super::super::state_hashes::StateHash {
                    digest: [0x0f; 32],
                    revision: 3
                }
            ))
        );
        assert!(answer_of(response(3, 9, Some(&good)), NodeId(2), 9).is_err());
        assert!(answer_of(response(2, 8, Some(&good)), NodeId(2), 9).is_err());
        assert!(answer_of(response(2, 9, None), NodeId(2), 9).is_err());
        assert!(answer_of(response(2, 9, Some("xyz")), NodeId(2), 9).is_err());
        assert!(answer_of(response(2, 9, Some(&"g".repeat(64))), NodeId(2), 9).is_err());
    }
}
