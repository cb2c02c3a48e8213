//! The cluster as the dashboard shows it, and the pure arithmetic behind it: rates and
//! percentiles from two readings of the members' histograms, and the events (elections,
//! leader changes, members lost and back, membership changes) told by two observations.
//!
//! ```text
//!  reading N-1 ─┐
//!  reading N  ──┴─► LoadDelta (per bucket, summed over the members) ─► rate, p99 ─► Sample
//!  observed N-1 ┐
//!  observed N  ─┴─► events_between ─► "term 7: election", "node 2 unreachable", ...
//! ```
//!
//! Nothing here does I/O or reads a clock: the feed (`feed`) gathers and times, this module
//! computes, so its tests give readings and assert exact figures.

use std::collections::BTreeMap;

use raftkv_client::api::LatencyBuckets;
use serde::Serialize;

/// One member as the serving node sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(super) struct MemberView {
    /// The member's id.
    pub(super) id: u64,
    /// Its HTTP address, once it published it.
    pub(super) http_address: Option<String>,
    /// `voter`, `learner`, or `outgoing` (a voter being removed while a change is joint).
    pub(super) membership: &'static str,
    /// Whether it answered its status in time.
    pub(super) reachable: bool,
    /// Why it did not, when it did not.
    pub(super) unreachable_reason: Option<String>,
    /// `leader`, `follower`, `candidate` or `precandidate`, as it said.
    pub(super) role: Option<String>,
    /// Its term.
    pub(super) term: Option<u64>,
    /// Its commit index.
    pub(super) commit_index: Option<u64>,
    /// Its applied index.
    pub(super) applied_index: Option<u64>,
    /// Its last log index.
    pub(super) last_log_index: Option<u64>,
    /// The last index its snapshot covers.
    pub(super) snapshot_index: Option<u64>,
    /// Entries it has yet to apply up to the highest commit index any member reported.
    pub(super) lag: Option<u64>,
    /// While it recovers after an unclean restart: the phase.
    pub(super) recovering: Option<String>,
    /// Keys it holds.
    pub(super) keys: Option<u64>,
    /// The 99th percentile of its log's fsyncs since the previous reading, in milliseconds
    /// (none when it made none).
    pub(super) fsync_p99_ms: Option<f64>,
}

/// The cluster's figures over one interval between two readings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(super) struct Sample {
    /// Its place in the feed's series (increasing).
    pub(super) seq: u64,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub(super) at_ms: u64,
    /// Writes of keys answered per second, summed over the members that answered.
    pub(super) writes_per_second: f64,
    /// Reads of keys answered per second, likewise.
    pub(super) reads_per_second: f64,
    /// 99th percentile of the writes' answer time, in milliseconds.
    pub(super) write_p99_ms: Option<f64>,
    /// 99th percentile of the reads' answer time, in milliseconds.
    pub(super) read_p99_ms: Option<f64>,
    /// 99th percentile of the members' log fsyncs, in milliseconds.
    pub(super) fsync_p99_ms: Option<f64>,
    /// The highest commit index reported.
    pub(super) commit_index: u64,
}

/// Something that happened in the cluster, for the page's event list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) struct ClusterEvent {
    /// Its place in the feed's list (increasing).
    pub(super) seq: u64,
    /// When the feed noticed it, in milliseconds since the Unix epoch.
    pub(super) at_ms: u64,
    /// `election`, `leader`, `down`, `up`, `membership` or `info`.
    pub(super) kind: &'static str,
    /// What happened, for a person.
    pub(super) text: String,
}

/// What events are told from: the cluster at one reading.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Observed {
    /// The highest term the serving node or any member reported.
    pub(super) term: u64,
    /// The leader the serving node knows.
    pub(super) leader: Option<u64>,
    /// Each member's membership (`voter`, `learner`, `outgoing`) and whether it answered.
    pub(super) members: BTreeMap<u64, (&'static str, bool)>,
    /// A membership change is under way.
    pub(super) change_in_progress: bool,
}

/// The events between two observations, oldest first, as `(kind, text)`.
pub(super) fn events_between(before: &Observed, now: &Observed) -> Vec<(&'static str, String)> {
    let mut events = Vec::new();
    if now.term > before.term {
        match now.leader {
            Some(leader) => events.push((
                "leader",
                format!("term {}: node {leader} elected leader", now.term),
            )),
            None => events.push(("election", format!("term {}: election", now.term))),
        }
    } else if now.leader != before.leader {
        match now.leader {
            Some(leader) => events.push((
                "leader",
                format!("term {}: node {leader} is leader", now.term),
            )),
            None => events.push(("election", format!("term {}: leader lost", now.term))),
        }
    }
    for (id, (membership, reachable)) in &now.members {
        match before.members.get(id) {
            None => events.push(("membership", format!("node {id} joined as {membership}"))),
            Some((was, _)) if was != membership => {
                events.push(("membership", format!("node {id} is now {membership}")))
            }
            Some(_) => {}
        }
        let was_reachable = before
            .members
            .get(id)
            .is_none_or(|(_, reachable)| *reachable);
        if was_reachable && !reachable {
            events.push(("down", format!("node {id} unreachable")));
        } else if !was_reachable && *reachable {
            events.push(("up", format!("node {id} reachable again")));
        }
    }
    for id in before.members.keys() {
        if !now.members.contains_key(id) {
            events.push(("membership", format!("node {id} removed")));
        }
    }
    if now.change_in_progress != before.change_in_progress {
        let text = match now.change_in_progress {
            true => "membership change under way",
            false => "membership change done",
        };
        events.push(("membership", text.to_string()));
    }
    events
}

/// Observations between two readings of latency histograms, summed over members.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct LoadDelta {
    /// The bounds every added histogram has (the first one's).
    bounds_micros: Vec<u64>,
    /// Observations per bucket (not cumulative); the last one is above every bound.
    in_bucket: Vec<u64>,
    /// Observations in all.
    count: u64,
}

impl LoadDelta {
    /// Adds what a member observed between `previous` and `now`. A count that went down means
    /// the member restarted: `now` counts from its start. A histogram with other bounds than
    /// the first one added (a member of another version) is left out.
    pub(super) fn add(&mut self, previous: Option<&LatencyBuckets>, now: &LatencyBuckets) {
        if now.cumulative_counts.len() != now.bounds_micros.len() {
            return; // Malformed: a member's answer is not trusted to be well-formed.
        }
        if self.bounds_micros.is_empty() && self.count == 0 {
            self.bounds_micros.clone_from(&now.bounds_micros);
            self.in_bucket = vec![0; now.bounds_micros.len() + 1];
        }
        if now.bounds_micros != self.bounds_micros {
            return;
        }
        let previous = previous
            .filter(|previous| previous.bounds_micros == now.bounds_micros)
            .filter(|previous| previous.cumulative_counts.len() == now.cumulative_counts.len())
            .filter(|previous| previous.count <= now.count);
        let Some(previous) = previous else {
            // The first reading of a member (or one after its restart) tells nothing about
            // the interval; a restarted member's counts start again from zero.
            return;
        };
        let mut below_before = 0;
        let mut below_now = 0;
        for (bucket, (before, after)) in previous
            .cumulative_counts
            .iter()
            .zip(&now.cumulative_counts)
            .enumerate()
        {
            let in_bucket_before = before.saturating_sub(below_before);
            let in_bucket_now = after.saturating_sub(below_now);
            self.in_bucket[bucket] += in_bucket_now.saturating_sub(in_bucket_before);
            below_before = *before;
            below_now = *after;
        }
        let above_before = previous.count.saturating_sub(below_before);
        let above_now = now.count.saturating_sub(below_now);
        let last = self.in_bucket.len() - 1;
        self.in_bucket[last] += above_now.saturating_sub(above_before);
        self.count += now.count - previous.count;
    }

    /// Observations in all.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// The `quantile` (0 to 1) of the observations, in milliseconds, interpolated within its
    /// bucket as Prometheus' `histogram_quantile` does; one above every bound counts as the
    /// highest bound. `None` without observations.
    pub(super) fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        assert!(
            (0.0..=1.0).contains(&quantile),
            "invariant quantile-in-range"
        );
        if self.count == 0 {
            return None;
        }
        let rank = quantile * self.count as f64;
        let mut below = 0u64;
        let mut lower_micros = 0u64;
        for (bucket, in_bucket) in self.in_bucket.iter().enumerate() {
            let Some(&upper_micros) = self.bounds_micros.get(bucket) else {
                return Some(lower_micros as f64 / 1000.0);
            };
            if *in_bucket > 0 && (below + in_bucket) as f64 >= rank {
                let within = (rank - below as f64) / *in_bucket as f64;
                let micros = lower_micros as f64 + within * (upper_micros - lower_micros) as f64;
                return Some(micros / 1000.0);
            }
            below += in_bucket;
            lower_micros = upper_micros;
        }
        Some(lower_micros as f64 / 1000.0)
    }
}

/// Entries a member has yet to apply up to `commit_max`, the highest commit index reported.
pub(super) fn lag(commit_max: u64, applied_index: u64) -> u64 {
    commit_max.saturating_sub(applied_index)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A histogram with bounds 1, 2, 4 ms holding `in_bucket` observations per bucket (the
    /// fourth: above 4 ms).
    fn buckets(in_bucket: [u64; 4]) -> LatencyBuckets {
        let mut cumulative = 0;
        let mut cumulative_counts = Vec::new();
        for count in &in_bucket[..3] {
            cumulative += count;
            cumulative_counts.push(cumulative);
        }
        LatencyBuckets {
            bounds_micros: vec![1000, 2000, 4000],
            cumulative_counts,
            count: in_bucket.iter().sum(),
        }
    }

    #[test]
    fn the_delta_of_two_readings_sums_over_members_and_skips_first_readings() {
        let mut delta = LoadDelta::default();
        delta.add(Some(&buckets([10, 0, 0, 0])), &buckets([10, 100, 0, 0]));
        delta.add(Some(&buckets([0, 0, 0, 0])), &buckets([0, 0, 5, 1]));
        delta.add(None, &buckets([1000, 0, 0, 0]));
        assert_eq!(delta.count(), 106);
        assert_eq!(delta.in_bucket, [0, 100, 5, 1]);
    }

    #[test]
    fn a_member_that_restarted_or_has_other_bounds_is_left_out() {
        let mut delta = LoadDelta::default();
        delta.add(Some(&buckets([0, 0, 0, 0])), &buckets([3, 0, 0, 0]));
        delta.add(Some(&buckets([50, 0, 0, 0])), &buckets([2, 0, 0, 0]));
        let mut other = buckets([0, 9, 0, 0]);
        other.bounds_micros = vec![1000, 3000, 4000];
        delta.add(Some(&buckets([0, 0, 0, 0])), &other);
        let mut malformed = buckets([0, 9, 0, 0]);
        malformed.cumulative_counts.pop();
        delta.add(Some(&buckets([0, 0, 0, 0])), &malformed);
        assert_eq!(delta.count(), 3);
        assert_eq!(delta.in_bucket, [3, 0, 0, 0]);
    }

    #[test]
    fn the_p99_is_interpolated_within_its_bucket_and_capped_at_the_last_bound() {
        let mut delta = LoadDelta::default();
        assert_eq!(delta.quantile_ms(0.99), None);
        // 100 observations, 50 in (1, 2] ms and 50 in (2, 4] ms: the 99th is the 49th of the
        // second bucket, 2 + 49/50 × 2 ms.
        delta.add(Some(&buckets([0, 0, 0, 0])), &buckets([0, 50, 50, 0]));
        assert_eq!(delta.quantile_ms(0.99), Some(3.96));
        assert_eq!(delta.quantile_ms(0.5), Some(2.0));
        let mut slow = LoadDelta::default();
        slow.add(Some(&buckets([0, 0, 0, 0])), &buckets([1, 0, 0, 99]));
        assert_eq!(
            slow.quantile_ms(0.99),
            Some(4.0),
            "above every bound: the last"
        );
    }

    fn observed(term: u64, leader: Option<u64>, members: &[(u64, &'static str, bool)]) -> Observed {
        Observed {
            term,
            leader,
            members: members
                .iter()
                .map(|(id, membership, reachable)| (*id, (*membership, *reachable)))
                .collect(),
            change_in_progress: false,
        }
    }

    #[test]
    fn elections_leader_changes_and_lost_members_are_told() {
        let three = [(1, "voter", true), (2, "voter", true), (3, "voter", true)];
        let before = observed(3, Some(1), &three);
        assert_eq!(events_between(&before, &before), []);
        let two_down = [(1, "voter", true), (2, "voter", false), (3, "voter", true)];
        assert_eq!(
            events_between(&before, &observed(4, None, &two_down)),
            [
                ("election", "term 4: election".to_string()),
                ("down", "node 2 unreachable".to_string()),
            ]
        );
        assert_eq!(
            events_between(&observed(4, None, &two_down), &observed(4, Some(3), &three)),
            [
                ("leader", "term 4: node 3 is leader".to_string()),
                ("up", "node 2 reachable again".to_string()),
            ]
        );
        assert_eq!(
            events_between(&before, &observed(5, Some(2), &three)),
            [("leader", "term 5: node 2 elected leader".to_string())]
        );
    }

    #[test]
    fn membership_changes_are_told() {
        let before = observed(3, Some(1), &[(1, "voter", true), (2, "voter", true)]);
        let mut now = observed(3, Some(1), &[(1, "voter", true), (3, "learner", false)]);
        now.change_in_progress = true;
        assert_eq!(
            events_between(&before, &now),
            [
                ("membership", "node 3 joined as learner".to_string()),
                ("down", "node 3 unreachable".to_string()),
                ("membership", "node 2 removed".to_string()),
                ("membership", "membership change under way".to_string()),
            ]
        );
        let promoted = observed(3, Some(1), &[(1, "voter", true), (3, "voter", true)]);
        assert_eq!(
            events_between(&now, &promoted),
            [
                ("membership", "node 3 is now voter".to_string()),
                ("up", "node 3 reachable again".to_string()),
                ("membership", "membership change done".to_string()),
            ]
        );
    }

    #[test]
    fn lag_is_what_is_left_to_apply_up_to_the_highest_commit() {
        assert_eq!(lag(120, 100), 20);
        assert_eq!(lag(100, 120), 0, "a member may report after a newer commit");
    }
}
