//! The lease checks: recorded lease histories, the lease keys' presence seen by linearizable
//! scans and by a watcher, the terms seen on the nodes, and the authoritative change history,
//! judged against the timing rule and the documented expiry bound.
//!
//! ```text
//!  per lease: grant, attach (one transaction), keepalives, then revoke or stop
//!    ├─ never early ── no key of it deleted (by the change history's revision, at the first
//!    │                 time anything saw that revision) before its owner's deadline: the
//!    │                 latest send time of a keepalive answered with a TTL (or of the grant)
//!    │                 plus that TTL; a revoke the owner sent ends that promise
//!    ├─ together ───── all its keys deleted at one revision, by a change of its keys alone
//!    ├─ revoke ─────── after an acknowledged revoke no scan finds its keys, and the history
//!    │                 deletes them no later than the revoke's revision
//!    └─ not too late ─ no scan begun after the expiry bound finds one of its keys
//! ```
//!
//! Every time here is the checker's own monotonic clock (nanoseconds since the run's start),
//! never a node's or a client's faked one. Each check is conservative: an early deletion is
//! reported only when something saw the delete before the deadline, a late one only when a
//! scan begun after the bound still found the key.
//!
//! The expiry bound, for a lease its owner stopped keeping alive (or whose revoke got no
//! answer), with `R` the end of its owner's last call about it:
//!
//! ```text
//!  bound(t) = R + TTL + 1 s + k × (TTL + election timeout + 2 s) + leaderless
//! ```
//!
//! where `k` counts the term increases the term observer saw between `R` and `t + 1 s` (each
//! leader change lets the new leader restart the lease's clock: its TTL plus an election
//! timeout; 2 s more for the time without a promoted leader around it, and a term that rose
//! without any leader counts as a change too), and `leaderless` is the time in `[R, t]` that
//! the observer found no node leading in the highest term, or could not look at all.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::revision_check::{bounded, ChangeLog};

/// Slack of the expiry bound with a stable leader: the lessor's scan (100 ms) and the commit
/// of the revoke, with room to spare.
pub const EXPIRY_SLACK: Duration = Duration::from_secs(1);
/// Added per leader change for the time without a promoted leader around it.
pub const LEADER_CHANGE_SLACK: Duration = Duration::from_secs(2);
/// A gap between two term samples longer than this counts as time without a leader: the
/// observer could not look.
const SAMPLE_GAP_MAX: Duration = Duration::from_secs(1);
/// Term increases seen this long after a scan still count for it: one may have happened
/// before the scan and been sampled only after it.
const TERM_LOOKAHEAD: Duration = Duration::from_secs(1);

/// A call a lease client made about its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseCall {
    /// The grant (with the id the client chose).
    Grant,
    /// The transaction that put every key of the lease with the lease attached.
    Attach,
    /// One keepalive of the lease alone.
    KeepAlive,
    /// The revoke.
    Revoke,
}

/// What a lease call got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseAnswer {
    /// Answered: the TTL granted or renewed (0 from a keepalive: the lease is gone; 0 for an
    /// attach or a revoke, which carry none) and the revision of the answer.
    Ok {
        /// Seconds.
        ttl_seconds: u64,
        /// The store's revision the answer carried.
        revision: u64,
    },
    /// 404: no such lease.
    NotFound,
    /// Definitely not applied.
    Failed {
        /// Why.
        reason: String,
    },
    /// No definite answer: may or may not have been applied.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// One call with its times on the checker's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStep {
    /// Which call.
    pub call: LeaseCall,
    /// When it was sent (its first attempt), nanoseconds since the run's start.
    pub invoke_ns: u64,
    /// When its answer came or the client gave up, nanoseconds since the run's start.
    pub complete_ns: u64,
    /// What it got.
    pub answer: LeaseAnswer,
}

/// Why a client stopped keeping a lease alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseEnd {
    /// It revoked it (see the revoke step for the answer).
    Revoked,
    /// It stopped sending keepalives to let it expire.
    LeftToExpire,
    /// Its own (offset, possibly jumped) clock said its lease had expired: no keepalive was
    /// acknowledged within a TTL by that clock.
    ClockSaidExpired,
    /// A keepalive answered TTL 0 or the attach found no lease.
    ToldGone,
    /// The grant got no answer; nothing more was done with it.
    GrantUnanswered,
}

/// Everything one client did with one lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHistory {
    /// The client.
    pub client: u64,
    /// The lease id (the client chose it, so it is known even when the grant's answer is lost).
    pub id: u64,
    /// The TTL asked for, in seconds.
    pub ttl_seconds: u64,
    /// The keys the attach put with the lease.
    pub keys: Vec<String>,
    /// Its calls, in order.
    pub steps: Vec<LeaseStep>,
    /// How it ended.
    pub end: LeaseEnd,
    /// Forward jumps of the client's own clock while it held the lease, in all.
    pub client_clock_jumped_ms: u64,
}

/// A linearizable scan of the lease keys' prefix: which lease keys existed at `revision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseScan {
    /// Sent, nanoseconds since the run's start.
    pub invoke_ns: u64,
    /// Answered, nanoseconds since the run's start.
    pub complete_ns: u64,
    /// The revision it read at.
    pub revision: u64,
    /// The keys found.
    pub keys: BTreeSet<String>,
}

/// A delete the lease watcher was handed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenDelete {
    /// When it was handed over, nanoseconds since the run's start.
    pub seen_ns: u64,
    /// The delete's revision.
    pub revision: u64,
    /// The keys deleted at that revision.
    pub keys: Vec<String>,
}

/// One look of the term observer at every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermSample {
    /// When, nanoseconds since the run's start.
    pub at_ns: u64,
    /// The highest term any node reported (0: none answered).
    pub term: u64,
    /// Whether a node reported leading in that term.
    pub leader: bool,
}

/// What the lease checks need besides the histories.
#[derive(Clone, Debug, Default)]
pub struct LeaseEvidence {
    /// The scans, in any order.
    pub scans: Vec<LeaseScan>,
    /// The watcher's deletes.
    pub deletes_seen: Vec<SeenDelete>,
    /// The term samples, in time order.
    pub terms: Vec<TermSample>,
}

/// The lease workload's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LeaseFigures {
    /// Leases granted (answered).
    pub granted: u64,
    /// Grants without an answer.
    pub grants_unknown: u64,
    /// Keys attached to a lease (as the change history shows).
    pub keys_attached: u64,
    /// Keepalives answered with a TTL.
    pub keepalives_acknowledged: u64,
    /// Keepalives that failed or got no answer.
    pub keepalives_unanswered: u64,
    /// Leases revoked with an answer.
    pub revoked: u64,
    /// Leases whose keys were deleted without an acknowledged revoke (expired).
    pub expired: u64,
    /// Leases their owner gave up because by its own (offset, jumping) clock no keepalive
    /// had been acknowledged for a TTL.
    pub stopped_by_client_clock: u64,
    /// Forward jumps of the clients' clocks, in all, in milliseconds.
    pub client_clock_jumped_ms: u64,
    /// Scans of the lease keys.
    pub scans: u64,
    /// Term increases the observer saw.
    pub term_changes: u64,
    /// Over the expired leases: the least time between the owner's deadline and the first
    /// moment anything saw the deletes (how close expiry came to being early, as far as the
    /// observers can tell), in milliseconds; `None` when no lease expired.
    pub expiry_margin_min_ms: Option<i64>,
    /// Over the expired leases: the most time between the owner's last call plus the TTL and
    /// the first moment anything saw the deletes (how late expiry was, at most), in
    /// milliseconds.
    pub expiry_lateness_max_ms: Option<i64>,
}

/// The lease checks, with the election timeout (the largest randomized one) of the nodes.
/// Returns the anomalies and the figures.
pub fn lease_anomalies(
    leases: &[LeaseHistory],
    evidence: &LeaseEvidence,
    log: &ChangeLog,
    election_timeout: Duration,
) -> (Vec<String>, LeaseFigures) {
    let mut figures = LeaseFigures {
        scans: evidence.scans.len() as u64,
        term_changes: term_changes(&evidence.terms),
        ..LeaseFigures::default()
    };
    let mut early = Vec::new();
    let mut apart = Vec::new();
    let mut revoke = Vec::new();
    let mut late = Vec::new();
    let revisions = RevisionTimes::new(leases, evidence);
    let owners: BTreeMap<&str, u64> = leases
        .iter()
        .flat_map(|lease| lease.keys.iter().map(|key| (key.as_str(), lease.id)))
        .collect();
    for lease in leases {
        count(lease, &mut figures);
        let name = format!("lease {:x} (client {})", lease.id, lease.client);
        let ttl = Duration::from_secs(granted_ttl_seconds(lease));
        let attached = attached_keys(lease, log);
        figures.keys_attached += attached.len() as u64;
        let deadline_ns = owner_deadline_ns(lease, ttl);
        // The lease itself reported gone before its deadline (no key needed to see that).
        for step in &lease.steps {
            let gone = matches!(
                (&step.call, &step.answer),
                (LeaseCall::KeepAlive, LeaseAnswer::Ok { ttl_seconds: 0, .. })
                    | (
                        LeaseCall::Attach | LeaseCall::KeepAlive,
                        LeaseAnswer::NotFound
                    )
            );
            if gone && step.complete_ns < deadline_ns {
                early.push(format!(
                    "{name}: a {:?} answered at {} that the lease is gone, before its owner's \
                     deadline {}",
                    step.call,
                    seconds(step.complete_ns),
                    seconds(deadline_ns)
                ));
            }
        }
        if attached.is_empty() {
            continue;
        }
        let deleted: BTreeMap<&str, Option<u64>> = attached
            .iter()
            .map(|(key, attach)| (key.as_str(), delete_revision(log, key, *attach)))
            .collect();
        // One revoke deletes every key at one revision, by a change of that lease's keys only.
        let revisions_of_delete: BTreeSet<Option<u64>> = deleted.values().copied().collect();
        if revisions_of_delete.len() > 1 {
            apart.push(format!(
                "{name}: its keys were deleted at different revisions: {}",
                deleted
                    .iter()
                    .map(|(key, revision)| match revision {
                        Some(revision) => format!("{key} at {revision}"),
                        None => format!("{key} never"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for revision in revisions_of_delete.iter().flatten() {
            let strangers: Vec<String> = log
                .get(revision)
                .into_iter()
                .flatten()
                .filter(|change| {
                    change.value.is_some() || owners.get(change.key.as_str()) != Some(&lease.id)
                })
                .map(|change| change.key.clone())
                .collect();
            if !strangers.is_empty() {
                apart.push(format!(
                    "{name}: revision {revision} deletes its keys together with other changes \
                     ({})",
                    strangers.join(", ")
                ));
            }
        }
        // Never early.
        for (key, revision) in &deleted {
            let Some(revision) = revision else { continue };
            if let Some((seen_ns, by)) = revisions.first_seen(*revision) {
                if seen_ns < deadline_ns {
                    early.push(format!(
                        "{name}: {key} was deleted at revision {revision}, which {by} saw at {}, \
                         before its owner's deadline {} ({})",
                        seconds(seen_ns),
                        seconds(deadline_ns),
                        deadline_reason(lease, ttl)
                    ));
                }
            }
        }
        // An acknowledged revoke.
        let acknowledged_revoke = lease.steps.iter().find_map(|step| match step {
            LeaseStep {
                call: LeaseCall::Revoke,
                answer: LeaseAnswer::Ok { revision, .. },
                complete_ns,
                ..
            } => Some((*complete_ns, *revision)),
            _ => None,
        });
        if let Some((acknowledged_ns, revoke_revision)) = acknowledged_revoke {
            for (key, revision) in &deleted {
                if revision.is_none_or(|revision| revision > revoke_revision) {
                    revoke.push(format!(
                        "{name}: {key} outlived the revoke answered at revision \
                         {revoke_revision} (deleted {})",
                        match revision {
                            Some(revision) => format!("at {revision}"),
                            None => "never".to_string(),
                        }
                    ));
                }
            }
            if let Some(scan) = evidence.scans.iter().find(|scan| {
                scan.invoke_ns > acknowledged_ns && attached.keys().any(|k| scan.keys.contains(k))
            }) {
                revoke.push(format!(
                    "{name}: a scan begun at {} (revision {}) found its keys after the revoke \
                     was acknowledged at {}",
                    seconds(scan.invoke_ns),
                    scan.revision,
                    seconds(acknowledged_ns)
                ));
            }
            continue;
        }
        // Not too late.
        figures.expired += u64::from(revisions_of_delete.iter().any(Option::is_some));
        let reference_ns = lease
            .steps
            .iter()
            .map(|step| step.complete_ns)
            .max()
            .unwrap_or(0);
        if let Some(scan) = evidence.scans.iter().find(|scan| {
            attached.keys().any(|key| scan.keys.contains(key))
                && scan.invoke_ns
                    > bound_ns(
                        reference_ns,
                        scan.invoke_ns,
                        ttl,
                        election_timeout,
                        evidence,
                    )
        }) {
            late.push(format!(
                "{name}: a scan begun at {} (revision {}) still found its keys, past the expiry \
                 bound {} (its owner's last call ended at {}, TTL {} s, {} term changes, {:.1} s \
                 without a leader since)",
                seconds(scan.invoke_ns),
                scan.revision,
                seconds(bound_ns(
                    reference_ns,
                    scan.invoke_ns,
                    ttl,
                    election_timeout,
                    evidence
                )),
                seconds(reference_ns),
                ttl.as_secs(),
                terms_between(&evidence.terms, reference_ns, scan.invoke_ns),
                leaderless_ns(&evidence.terms, reference_ns, scan.invoke_ns) as f64 / 1e9
            ));
        }
        if let Some(revision) = revisions_of_delete.iter().flatten().min() {
            if let Some((seen_ns, _)) = revisions.first_seen(*revision) {
                let margin = seen_ns as i64 - deadline_ns as i64;
                figures.expiry_margin_min_ms = Some(
                    figures
                        .expiry_margin_min_ms
                        .map_or(margin / 1_000_000, |m| m.min(margin / 1_000_000)),
                );
                let lateness = seen_ns as i64 - (reference_ns + nanos(ttl)) as i64;
                figures.expiry_lateness_max_ms = Some(
                    figures
                        .expiry_lateness_max_ms
                        .map_or(lateness / 1_000_000, |m| m.max(lateness / 1_000_000)),
                );
            }
        }
    }
    let mut anomalies = Vec::new();
    anomalies.extend(bounded(early, "lease expired early"));
    anomalies.extend(bounded(apart, "lease keys deleted apart"));
    anomalies.extend(bounded(revoke, "revoked lease's keys survived"));
    anomalies.extend(bounded(late, "lease expired late"));
    (anomalies, figures)
}

fn count(lease: &LeaseHistory, figures: &mut LeaseFigures) {
    for step in &lease.steps {
        match (step.call, &step.answer) {
            (LeaseCall::Grant, LeaseAnswer::Ok { .. }) => figures.granted += 1,
            (LeaseCall::Grant, LeaseAnswer::Unknown { .. }) => figures.grants_unknown += 1,
            (LeaseCall::KeepAlive, LeaseAnswer::Ok { ttl_seconds, .. }) if *ttl_seconds > 0 => {
                figures.keepalives_acknowledged += 1
            }
            (LeaseCall::KeepAlive, LeaseAnswer::Failed { .. } | LeaseAnswer::Unknown { .. }) => {
                figures.keepalives_unanswered += 1
            }
            (LeaseCall::Revoke, LeaseAnswer::Ok { .. }) => figures.revoked += 1,
            _ => {}
        }
    }
    figures.stopped_by_client_clock += u64::from(lease.end == LeaseEnd::ClockSaidExpired);
    figures.client_clock_jumped_ms += lease.client_clock_jumped_ms;
}

/// The TTL the grant answered, else the one asked.
fn granted_ttl_seconds(lease: &LeaseHistory) -> u64 {
    lease
        .steps
        .iter()
        .find_map(|step| match (step.call, &step.answer) {
            (LeaseCall::Grant, LeaseAnswer::Ok { ttl_seconds, .. }) => Some(*ttl_seconds),
            _ => None,
        })
        .unwrap_or(lease.ttl_seconds)
}

/// Until when the lease's keys must exist: the latest send time of the grant or of a
/// keepalive answered with a TTL, plus that TTL; no later than the first revoke sent.
fn owner_deadline_ns(lease: &LeaseHistory, ttl: Duration) -> u64 {
    let mut deadline = 0;
    for step in &lease.steps {
        match (step.call, &step.answer) {
            (LeaseCall::Grant, _) => deadline = deadline.max(step.invoke_ns + nanos(ttl)),
            (LeaseCall::KeepAlive, LeaseAnswer::Ok { ttl_seconds, .. }) if *ttl_seconds > 0 => {
                deadline = deadline.max(step.invoke_ns + ttl_seconds * 1_000_000_000)
            }
            _ => {}
        }
    }
    match lease
        .steps
        .iter()
        .find(|step| step.call == LeaseCall::Revoke)
    {
        Some(revoke) => deadline.min(revoke.invoke_ns),
        None => deadline,
    }
}

fn deadline_reason(lease: &LeaseHistory, ttl: Duration) -> String {
    let last = lease
        .steps
        .iter()
        .filter(|step| {
            step.call == LeaseCall::Grant
                || matches!(
                    (step.call, &step.answer),
                    (LeaseCall::KeepAlive, LeaseAnswer::Ok { ttl_seconds, .. }) if *ttl_seconds > 0
                )
        })
        .max_by_key(|step| step.invoke_ns);
    match last {
        Some(step) => format!(
            "the {:?} sent at {} was answered, TTL {} s",
            step.call,
            seconds(step.invoke_ns),
            ttl.as_secs()
        ),
        None => "no call".to_string(),
    }
}

/// The lease's keys the change history shows put, with the revision of their first put.
fn attached_keys(lease: &LeaseHistory, log: &ChangeLog) -> BTreeMap<String, u64> {
    let mut attached = BTreeMap::new();
    for key in &lease.keys {
        if let Some(revision) = log.iter().find_map(|(revision, changes)| {
            changes
                .iter()
                .any(|change| &change.key == key && change.value.is_some())
                .then_some(*revision)
        }) {
            attached.insert(key.clone(), revision);
        }
    }
    attached
}

/// The first delete of `key` after `attach`.
fn delete_revision(log: &ChangeLog, key: &str, attach: u64) -> Option<u64> {
    log.range(attach + 1..).find_map(|(revision, changes)| {
        changes
            .iter()
            .any(|change| change.key == key && change.value.is_none())
            .then_some(*revision)
    })
}

/// When something first showed the store at or past each revision: the latest revision seen
/// by each moment, so a delete is known to have happened by then.
struct RevisionTimes {
    /// (time, revision, who), sorted by time.
    seen: Vec<(u64, u64, &'static str)>,
}

impl RevisionTimes {
    fn new(leases: &[LeaseHistory], evidence: &LeaseEvidence) -> RevisionTimes {
        let mut seen: Vec<(u64, u64, &'static str)> = Vec::new();
        seen.extend(
            evidence
                .scans
                .iter()
                .map(|scan| (scan.complete_ns, scan.revision, "a scan")),
        );
        seen.extend(
            evidence
                .deletes_seen
                .iter()
                .map(|delete| (delete.seen_ns, delete.revision, "the lease watcher")),
        );
        for lease in leases {
            for step in &lease.steps {
                if let LeaseAnswer::Ok { revision, .. } = step.answer {
                    seen.push((step.complete_ns, revision, "a lease call's answer"));
                }
            }
        }
        seen.sort();
        RevisionTimes { seen }
    }

    /// The first moment anything had seen `revision` or a later one, and what.
    fn first_seen(&self, revision: u64) -> Option<(u64, &'static str)> {
        self.seen
            .iter()
            .find(|(_, seen, _)| *seen >= revision)
            .map(|(at, _, by)| (*at, *by))
    }
}

/// The expiry bound for a lease whose owner's last call ended at `reference_ns`, as judged by
/// a scan at `at_ns` (see the module's documentation).
pub fn bound_ns(
    reference_ns: u64,
    at_ns: u64,
    ttl: Duration,
    election_timeout: Duration,
    evidence: &LeaseEvidence,
) -> u64 {
    let changes = terms_between(&evidence.terms, reference_ns, at_ns);
    reference_ns
        + nanos(ttl)
        + nanos(EXPIRY_SLACK)
        + changes * nanos(ttl + election_timeout + LEADER_CHANGE_SLACK)
        + leaderless_ns(&evidence.terms, reference_ns, at_ns)
}

/// Term increases seen between `from_ns` and `to_ns` plus [`TERM_LOOKAHEAD`].
fn terms_between(terms: &[TermSample], from_ns: u64, to_ns: u64) -> u64 {
    let before = terms
        .iter()
        .filter(|sample| sample.at_ns <= from_ns && sample.term > 0)
        .map(|sample| sample.term)
        .max();
    let until = terms
        .iter()
        .filter(|sample| sample.at_ns <= to_ns + nanos(TERM_LOOKAHEAD))
        .map(|sample| sample.term)
        .max();
    match (before, until) {
        (Some(before), Some(until)) => until.saturating_sub(before),
        // Nothing seen before: every term seen since its first counts.
        (None, Some(until)) => {
            let first = terms
                .iter()
                .find(|sample| sample.term > 0)
                .map_or(until, |sample| sample.term);
            until - first + 1
        }
        _ => 0,
    }
}

/// Time within `[from_ns, to_ns]` that the observer saw no leader in the highest term, or
/// could not look (a gap between samples above [`SAMPLE_GAP_MAX`]).
fn leaderless_ns(terms: &[TermSample], from_ns: u64, to_ns: u64) -> u64 {
    let mut total = 0;
    for pair in terms.windows(2) {
        let (sample, next) = (pair[0], pair[1]);
        let gap = next.at_ns.saturating_sub(sample.at_ns);
        if sample.leader && gap <= nanos(SAMPLE_GAP_MAX) {
            continue;
        }
        let start = sample.at_ns.max(from_ns);
        let end = next.at_ns.min(to_ns);
        total += end.saturating_sub(start);
    }
    // Past the last sample nobody looked.
    if let Some(last) = terms.last() {
        let start = last.at_ns.max(from_ns);
        total += to_ns
            .saturating_sub(start)
            .saturating_sub(nanos(SAMPLE_GAP_MAX));
    }
    total
}

fn term_changes(terms: &[TermSample]) -> u64 {
    let mut highest = 0;
    let mut changes = 0;
    for sample in terms {
        if sample.term > highest {
            changes += u64::from(highest > 0);
            highest = sample.term;
        }
    }
    changes
}

fn nanos(duration: Duration) -> u64 {
    crate::workload::nanos(duration)
}

fn seconds(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revision_check::Change;

    const ELECTION_TIMEOUT: Duration = Duration::from_millis(600);
    const A: &str = "chaos/lease/1/1/a";
    const B: &str = "chaos/lease/1/1/b";

    fn ms(milliseconds: u64) -> u64 {
        milliseconds * 1_000_000
    }

    fn step(call: LeaseCall, invoke_ms: u64, complete_ms: u64, answer: LeaseAnswer) -> LeaseStep {
        LeaseStep {
            call,
            invoke_ns: ms(invoke_ms),
            complete_ns: ms(complete_ms),
            answer,
        }
    }

    fn ok(ttl_seconds: u64, revision: u64) -> LeaseAnswer {
        LeaseAnswer::Ok {
            ttl_seconds,
            revision,
        }
    }

    /// Lease 1, TTL 3 s, keys A and B attached at revision 11, kept alive until the keepalive
    /// sent at 4.0 s (owner's deadline 7.0 s, last call ended 4.1 s: bound 8.1 s with a stable
    /// leader), then left to expire; deleted at revision 20.
    fn lease() -> LeaseHistory {
        LeaseHistory {
            client: 1,
            id: 1,
            ttl_seconds: 3,
            keys: vec![A.to_string(), B.to_string()],
            steps: vec![
                step(LeaseCall::Grant, 1_000, 1_100, ok(3, 10)),
                step(LeaseCall::Attach, 1_100, 1_200, ok(0, 11)),
                step(LeaseCall::KeepAlive, 2_000, 2_100, ok(3, 11)),
                step(LeaseCall::KeepAlive, 3_000, 3_100, ok(3, 11)),
                step(LeaseCall::KeepAlive, 4_000, 4_100, ok(3, 11)),
            ],
            end: LeaseEnd::LeftToExpire,
            client_clock_jumped_ms: 0,
        }
    }

    fn log() -> ChangeLog {
        ChangeLog::from([
            (11, vec![Change::put(A, "1"), Change::put(B, "1")]),
            (20, vec![Change::delete(A), Change::delete(B)]),
        ])
    }

    fn scan(invoke_ms: u64, revision: u64, keys: &[&str]) -> LeaseScan {
        LeaseScan {
            invoke_ns: ms(invoke_ms),
            complete_ns: ms(invoke_ms + 100),
            revision,
            keys: keys.iter().map(|key| key.to_string()).collect(),
        }
    }

    /// A stable leader in term 2 sampled every 200 ms for 20 s; scans before and after the
    /// expiry; the watcher sees the deletes at 7.4 s.
    fn evidence() -> LeaseEvidence {
        LeaseEvidence {
            scans: vec![
                scan(1_300, 11, &[A, B]),
                scan(6_500, 15, &[A, B]),
                scan(7_500, 20, &[]),
            ],
            deletes_seen: vec![SeenDelete {
                seen_ns: ms(7_400),
                revision: 20,
                keys: vec![A.to_string(), B.to_string()],
            }],
            terms: (0..100)
                .map(|i| TermSample {
                    at_ns: ms(i * 200),
                    term: 2,
                    leader: true,
                })
                .collect(),
        }
    }

    fn check(leases: &[LeaseHistory], evidence: &LeaseEvidence, log: &ChangeLog) -> Vec<String> {
        lease_anomalies(leases, evidence, log, ELECTION_TIMEOUT).0
    }

    #[test]
    fn a_lease_that_expires_between_its_deadline_and_its_bound_passes() {
        let (anomalies, figures) =
            lease_anomalies(&[lease()], &evidence(), &log(), ELECTION_TIMEOUT);
        assert_eq!(anomalies, Vec::<String>::new());
        assert_eq!(figures.granted, 1);
        assert_eq!(figures.keys_attached, 2);
        assert_eq!(figures.keepalives_acknowledged, 3);
        assert_eq!(figures.expired, 1);
        // First seen deleted at 7.4 s: 400 ms after the deadline 7.0 s, 300 ms after 4.1 s + 3 s.
        assert_eq!(figures.expiry_margin_min_ms, Some(400));
        assert_eq!(figures.expiry_lateness_max_ms, Some(300));
    }

    #[test]
    fn a_delete_seen_before_the_owners_deadline_is_early() {
        let mut evidence = evidence();
        evidence.deletes_seen[0].seen_ns = ms(6_900);
        let anomalies = check(&[lease()], &evidence, &log());
        assert_eq!(anomalies.len(), 2, "{anomalies:?}");
        assert!(
            anomalies[0].contains("deleted at revision 20, which the lease watcher saw at 6.900 s")
        );
        assert!(anomalies[0].contains("before its owner's deadline 7.000 s"));
    }

    #[test]
    fn a_keepalive_answered_gone_before_the_deadline_is_early() {
        let mut lease = lease();
        lease
            .steps
            .push(step(LeaseCall::KeepAlive, 5_000, 5_100, ok(0, 12)));
        let anomalies = check(&[lease], &evidence(), &log());
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert!(anomalies[0].contains("answered at 5.100 s that the lease is gone"));
    }

    #[test]
    fn a_scan_missing_the_keys_before_the_deadline_is_early() {
        let mut evidence = evidence();
        evidence.scans.push(scan(6_600, 20, &[]));
        let anomalies = check(&[lease()], &evidence, &log());
        assert!(
            anomalies
                .iter()
                .any(|a| a.contains("which a scan saw at 6.700 s")),
            "{anomalies:?}"
        );
    }

    #[test]
    fn a_revoke_sent_ends_the_owners_promise() {
        let mut lease = lease();
        lease.steps.push(step(
            LeaseCall::Revoke,
            5_000,
            5_100,
            LeaseAnswer::Unknown {
                reason: "timeout".into(),
            },
        ));
        let mut evidence = evidence();
        evidence.deletes_seen[0].seen_ns = ms(5_050);
        assert_eq!(check(&[lease], &evidence, &log()), Vec::<String>::new());
    }

    #[test]
    fn keys_of_one_lease_deleted_at_two_revisions_are_flagged() {
        let log = ChangeLog::from([
            (11, vec![Change::put(A, "1"), Change::put(B, "1")]),
            (20, vec![Change::delete(A)]),
            (21, vec![Change::delete(B)]),
        ]);
        let anomalies = check(&[lease()], &evidence(), &log);
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert!(anomalies[0].contains("deleted at different revisions"));
        assert!(anomalies[0].contains("at 20") && anomalies[0].contains("at 21"));
    }

    #[test]
    fn a_revision_deleting_other_keys_with_the_leases_is_flagged() {
        let log = ChangeLog::from([
            (11, vec![Change::put(A, "1"), Change::put(B, "1")]),
            (
                20,
                vec![Change::delete(A), Change::delete(B), Change::put("x", "1")],
            ),
        ]);
        let anomalies = check(&[lease()], &evidence(), &log);
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert!(anomalies[0].contains("together with other changes (x)"));
    }

    /// Lease 1 revoked at 5.0 s, answered at 5.1 s at revision 20.
    fn revoked() -> LeaseHistory {
        let mut lease = lease();
        lease
            .steps
            .push(step(LeaseCall::Revoke, 5_000, 5_100, ok(0, 20)));
        lease.end = LeaseEnd::Revoked;
        lease
    }

    /// The evidence of a lease revoked at 5.0 s: scans until then find its keys, the watcher
    /// sees the deletes at 5.1 s.
    fn revoked_evidence() -> LeaseEvidence {
        let mut evidence = evidence();
        evidence.scans.retain(|scan| scan.invoke_ns < ms(5_000));
        evidence.deletes_seen[0].seen_ns = ms(5_100);
        evidence
    }

    #[test]
    fn an_acknowledged_revoke_whose_keys_are_gone_passes() {
        let mut evidence = revoked_evidence();
        evidence.scans.push(scan(5_200, 20, &[]));
        assert_eq!(check(&[revoked()], &evidence, &log()), Vec::<String>::new());
    }

    #[test]
    fn keys_found_after_an_acknowledged_revoke_are_flagged() {
        let mut evidence = revoked_evidence();
        evidence.scans.push(scan(5_200, 20, &[A]));
        let anomalies = check(&[revoked()], &evidence, &log());
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert!(
            anomalies[0].contains("found its keys after the revoke was acknowledged at 5.100 s")
        );
        let log = ChangeLog::from([
            (11, vec![Change::put(A, "1"), Change::put(B, "1")]),
            (22, vec![Change::delete(A), Change::delete(B)]),
        ]);
        let anomalies = check(&[revoked()], &LeaseEvidence::default(), &log);
        assert_eq!(anomalies.len(), 2, "{anomalies:?}");
        assert!(
            anomalies[0].contains("outlived the revoke answered at revision 20 (deleted at 22)")
        );
    }

    #[test]
    fn keys_found_past_the_bound_are_late_unless_leadership_changed() {
        let mut evidence = evidence();
        // Bound with a stable leader: 4.1 + 3 + 1 = 8.1 s.
        evidence.scans.push(scan(8_000, 19, &[A, B]));
        assert_eq!(check(&[lease()], &evidence, &log()), Vec::<String>::new());
        evidence.scans.push(scan(8_200, 19, &[A, B]));
        let anomalies = check(&[lease()], &evidence, &log());
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert!(anomalies[0].contains("past the expiry bound 8.100 s"));
        // A new term at 5 s adds TTL + election timeout + 2 s = 5.6 s.
        for sample in evidence.terms.iter_mut().filter(|s| s.at_ns >= ms(5_000)) {
            sample.term = 3;
        }
        assert_eq!(check(&[lease()], &evidence, &log()), Vec::<String>::new());
        assert_eq!(
            bound_ns(
                ms(4_100),
                ms(8_200),
                Duration::from_secs(3),
                ELECTION_TIMEOUT,
                &evidence
            ),
            ms(13_700)
        );
    }

    #[test]
    fn time_without_a_leader_or_without_samples_extends_the_bound() {
        let mut evidence = evidence();
        // No leader from 5.0 s to 6.0 s, no sample from 6.0 s to 7.6 s.
        for sample in evidence.terms.iter_mut() {
            if (ms(5_000)..ms(6_000)).contains(&sample.at_ns) {
                sample.leader = false;
            }
        }
        evidence
            .terms
            .retain(|sample| !(ms(6_001)..ms(7_500)).contains(&sample.at_ns));
        assert_eq!(
            bound_ns(
                ms(4_100),
                ms(9_000),
                Duration::from_secs(3),
                ELECTION_TIMEOUT,
                &evidence
            ),
            ms(8_100 + 1_000 + 1_600)
        );
    }

    #[test]
    fn keys_never_deleted_and_seen_at_the_end_are_late() {
        let log = ChangeLog::from([(11, vec![Change::put(A, "1"), Change::put(B, "1")])]);
        let mut evidence = evidence();
        evidence.scans = vec![scan(15_000, 30, &[A, B])];
        evidence.deletes_seen.clear();
        let anomalies = check(&[lease()], &evidence, &log);
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert!(anomalies[0].contains("still found its keys"));
    }
}
