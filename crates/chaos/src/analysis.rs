//! What a run found: the checks that need no cluster (appends, copies, availability) and the
//! summary written at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use lincheck::{Entry, Operation, Outcome, Report, Verdict};
use serde::Serialize;

use crate::nemesis::FaultRecord;

/// One node's copy of the keys, as it answered a stale scan.
pub type Copy = BTreeMap<String, String>;

/// Differences shown per anomaly at most; the rest are counted.
const EXAMPLES_MAX: usize = 5;

/// Checks every log key's final value against the appends made to it: every acknowledged
/// append is there exactly once, no append is there twice, nothing is there that no client
/// appended, and no append that definitely failed took effect. `final_values` holds the value
/// read after the cluster settled (`None`: the key is absent). An append's token is its suffix
/// without the trailing comma.
pub fn append_anomalies(
    entries: &[Entry],
    final_values: &BTreeMap<String, Option<String>>,
) -> Vec<String> {
    #[derive(Default)]
    struct Appends<'a> {
        acknowledged: BTreeSet<&'a str>,
        unknown: BTreeSet<&'a str>,
        failed: BTreeSet<&'a str>,
    }
    let mut by_key: BTreeMap<&str, Appends> = BTreeMap::new();
    for entry in entries {
        let Operation::Append { key, suffix } = &entry.operation else {
            continue;
        };
        let appends = by_key.entry(key).or_default();
        let token = suffix.trim_end_matches(',');
        match entry.outcome {
            Outcome::Ok { .. } => appends.acknowledged.insert(token),
            Outcome::Unknown { .. } => appends.unknown.insert(token),
            Outcome::Failed { .. } => appends.failed.insert(token),
        };
    }
    let mut anomalies = Vec::new();
    for (key, appends) in by_key {
        let Some(final_value) = final_values.get(key) else {
            anomalies.push(format!("{key}: its final value was never read"));
            continue;
        };
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for token in final_value
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|token| !token.is_empty())
        {
            *seen.entry(token).or_default() += 1;
        }
        let lost: Vec<&str> = appends
            .acknowledged
            .iter()
            .filter(|token| !seen.contains_key(*token))
            .copied()
            .collect();
        let doubled: Vec<&str> = seen
            .iter()
            .filter(|(_, count)| **count > 1)
            .map(|(token, _)| *token)
            .collect();
        let phantom: Vec<&str> = seen
            .keys()
            .filter(|token| {
                !appends.acknowledged.contains(*token)
                    && !appends.unknown.contains(*token)
                    && !appends.failed.contains(*token)
            })
            .copied()
            .collect();
        let failed_but_applied: Vec<&str> = seen
            .keys()
            .filter(|token| appends.failed.contains(*token))
            .copied()
            .collect();
        for (what, tokens) in [
            ("acknowledged appends missing", lost),
            ("appends applied more than once", doubled),
            ("values no client appended", phantom),
            ("appends refused yet applied", failed_but_applied),
        ] {
            if !tokens.is_empty() {
                anomalies.push(format!("{key}: {what}: {}", examples(&tokens)));
            }
        }
    }
    anomalies
}

/// Compares the nodes' copies, each named by its node id: every difference from the first copy
/// is an anomaly (after the cluster settled they must all be equal).
pub fn copy_anomalies(copies: &[(u64, Copy)]) -> Vec<String> {
    let Some((reference_id, reference)) = copies.first() else {
        return Vec::new();
    };
    let mut anomalies = Vec::new();
    for (id, copy) in &copies[1..] {
        let keys: BTreeSet<&String> = reference.keys().chain(copy.keys()).collect();
        let differing: Vec<String> = keys
            .into_iter()
            .filter(|key| reference.get(*key) != copy.get(*key))
            .map(|key| {
                format!(
                    "{key} is {:?} on node {reference_id} but {:?} on node {id}",
                    reference.get(key),
                    copy.get(key)
                )
            })
            .collect();
        if !differing.is_empty() {
            anomalies.push(format!(
                "nodes {reference_id} and {id} differ after settling: {}",
                examples(&differing)
            ));
        }
    }
    anomalies
}

fn examples<T: AsRef<str>>(items: &[T]) -> String {
    let mut text = items
        .iter()
        .take(EXAMPLES_MAX)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > EXAMPLES_MAX {
        let _ = write!(text, " and {} more", items.len() - EXAMPLES_MAX);
    }
    text
}

/// How well the cluster served while faults were in force and while none was.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Availability {
    /// Operations invoked while some fault that lasts (not an instant one) was in force.
    pub operations_during_faults: u64,
    /// The share of those that succeeded.
    pub ok_fraction_during_faults: Option<f64>,
    /// Operations invoked while no such fault was in force.
    pub operations_outside_faults: u64,
    /// The share of those that succeeded.
    pub ok_fraction_outside_faults: Option<f64>,
    /// The longest time between two successful completions, or from the first invocation to
    /// the first success.
    pub longest_gap_seconds: f64,
}

/// Splits `entries` by whether a lasting fault of `faults` was in force at invocation.
/// A fault still in force at the end (no end time) lasts to the end of time.
pub fn availability(entries: &[Entry], faults: &[FaultRecord]) -> Availability {
    let intervals: Vec<(u64, u64)> = faults
        .iter()
        .map(|fault| (fault.start_ns, fault.end_ns.unwrap_or(u64::MAX)))
        .filter(|(start, end)| end > start)
        .collect();
    let mut figures = Availability::default();
    let (mut ok_during, mut ok_outside) = (0u64, 0u64);
    for entry in entries {
        let during = intervals
            .iter()
            .any(|(start, end)| (*start..*end).contains(&entry.invoke_ns));
        let ok = entry.outcome.is_ok();
        if during {
            figures.operations_during_faults += 1;
            ok_during += u64::from(ok);
        } else {
            figures.operations_outside_faults += 1;
            ok_outside += u64::from(ok);
        }
    }
    let fraction = |ok: u64, all: u64| (all > 0).then(|| ok as f64 / all as f64);
    figures.ok_fraction_during_faults = fraction(ok_during, figures.operations_during_faults);
    figures.ok_fraction_outside_faults = fraction(ok_outside, figures.operations_outside_faults);
    let mut completions: Vec<u64> = entries
        .iter()
        .filter(|entry| entry.outcome.is_ok())
        .map(|entry| entry.complete_ns)
        .collect();
    completions.sort_unstable();
    let first_invocation = entries.iter().map(|entry| entry.invoke_ns).min();
    let mut previous = first_invocation.unwrap_or(0);
    let mut longest = 0u64;
    for completion in completions {
        longest = longest.max(completion.saturating_sub(previous));
        previous = completion;
    }
    figures.longest_gap_seconds = longest as f64 / 1e9;
    figures
}

/// Operations by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutcomeCounts {
    /// All of them.
    pub total: u64,
    /// Answered with success.
    pub ok: u64,
    /// Definitely not applied.
    pub failed: u64,
    /// Maybe applied: no definite answer.
    pub unknown: u64,
}

impl OutcomeCounts {
    /// Counts one operation with `outcome`.
    pub fn add(&mut self, outcome: &Outcome) {
        self.total += 1;
        match outcome {
            Outcome::Ok { .. } => self.ok += 1,
            Outcome::Failed { .. } => self.failed += 1,
            Outcome::Unknown { .. } => self.unknown += 1,
        }
    }
}

/// Counts `entries` by outcome, in all and per operation kind.
pub fn count_outcomes(entries: &[Entry]) -> (OutcomeCounts, BTreeMap<String, OutcomeCounts>) {
    let mut all = OutcomeCounts::default();
    let mut by_kind: BTreeMap<String, OutcomeCounts> = BTreeMap::new();
    for entry in entries {
        all.add(&entry.outcome);
        by_kind
            .entry(entry.operation.kind_name().to_string())
            .or_default()
            .add(&entry.outcome);
    }
    (all, by_kind)
}

/// Latency of the successful operations, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencyFigures {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// The latency figures of the successful entries: HdrHistogram's `value_at_quantile` over
/// microseconds with 3 significant digits, the definition the load generator's reports and
/// the latency plot use, so a p50 here reads like theirs.
pub fn latency_figures(entries: &[Entry]) -> LatencyFigures {
    // 1 µs to an hour, as the latency plot's histogram; a slower operation counts as an hour.
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .expect("constant histogram bounds are valid");
    for entry in entries.iter().filter(|entry| entry.outcome.is_ok()) {
        let micros = entry.complete_ns.saturating_sub(entry.invoke_ns) / 1_000;
        histogram.saturating_record(micros.max(1));
    }
    if histogram.is_empty() {
        return LatencyFigures::default();
    }
    let at = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1e3;
    LatencyFigures {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: at(1.0),
    }
}

/// What the linearizability checker said.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LincheckFigures {
    /// `linearizable`, `not linearizable` or `unknown` (the search ran out of budget).
    pub verdict: String,
    /// Keys checked.
    pub keys_checked: usize,
    /// Entries checked (failed ones are left out).
    pub operations_checked: usize,
    /// Search steps.
    pub steps: u64,
    /// Keys whose search ran out of budget.
    pub unknown_keys: Vec<String>,
    /// Wall time of the check.
    pub seconds: f64,
}

impl LincheckFigures {
    /// The figures of `report`, which took `seconds`.
    pub fn of(report: &Report, seconds: f64) -> LincheckFigures {
        let (verdict, unknown_keys) = match &report.verdict {
            Verdict::Linearizable => ("linearizable", Vec::new()),
            Verdict::NotLinearizable(_) => ("not linearizable", Vec::new()),
            Verdict::Unknown { keys } => ("unknown", keys.clone()),
        };
        LincheckFigures {
            verdict: verdict.to_string(),
            keys_checked: report.keys_checked,
            operations_checked: report.operations_checked,
            steps: report.steps,
            unknown_keys,
            seconds,
        }
    }
}

/// A nemesis that was asked for and not run, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The nemesis.
    pub nemesis: String,
    /// Why it could not run here.
    pub reason: String,
}

/// Everything a run found, written as `summary.json` and `summary.txt`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// The seed: the same seed replays the same schedule of faults and operations (the timing
    /// of real processes still varies).
    pub seed: u64,
    /// Founding voters.
    pub nodes: usize,
    /// `namespaces` or `loopback`.
    pub isolation: String,
    /// The nemeses that ran.
    pub nemeses: Vec<String>,
    /// The nemeses asked for that could not run here.
    pub skipped: Vec<Skipped>,
    /// How long the clients ran.
    pub workload_seconds: f64,
    /// The operations of the clients (the final reads not included).
    pub operations: OutcomeCounts,
    /// The same per operation kind.
    pub operations_by_kind: BTreeMap<String, OutcomeCounts>,
    /// Faults injected per nemesis.
    pub faults: BTreeMap<String, u64>,
    /// Service while faults were in force and while none was.
    pub availability: Availability,
    /// Latency of the successful operations.
    pub latency: LatencyFigures,
    /// How long the cluster took to settle once healed; `None` if it did not.
    pub settle_seconds: Option<f64>,
    /// The linearizability check.
    pub lincheck: LincheckFigures,
    /// Node processes that exited without being killed.
    pub unexpected_exits: Vec<String>,
    /// The bank workload, the watchers and the revisions.
    pub coordination: CoordinationFigures,
    /// Everything found wrong. Empty when the run passed.
    pub anomalies: Vec<String>,
}

/// What the bank workload did, what the watchers were handed, and the revisions checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CoordinationFigures {
    /// The workloads that ran: `kv`, `bank`.
    pub workloads: Vec<String>,
    /// Reads of every account, by outcome.
    pub bank_reads: OutcomeCounts,
    /// Transfers, by outcome (a failed comparison counts as ok: it was answered).
    pub bank_transfers: OutcomeCounts,
    /// Transfers whose comparison failed (an account changed since the read): retried later.
    pub bank_transfers_compare_failed: u64,
    /// Operations acknowledged with a revision (both workloads), checked for real-time order.
    pub operations_with_revision: u64,
    /// Watchers run.
    pub watchers: u64,
    /// Events (changes of one key) delivered to them, in all.
    pub watch_events_delivered: u64,
    /// Progress notifications delivered to them.
    pub watch_progress_delivered: u64,
    /// Streams the watchers reopened at one past their last revision.
    pub watchers_resumed: u64,
    /// The revision every member reached after healing, per member id.
    pub member_revisions: BTreeMap<u64, u64>,
    /// Revisions in the change history read after the run.
    pub history_revisions: u64,
    /// The lease workload, when it ran and its checks could run.
    pub leases: Option<crate::lease_check::LeaseFigures>,
    /// The lock workload, when it ran and its checks could run.
    pub locks: Option<crate::lock_check::LockFigures>,
}

impl Summary {
    /// Whether the run found nothing wrong and the history was proven linearizable.
    pub fn passed(&self) -> bool {
        self.anomalies.is_empty() && self.lincheck.verdict == "linearizable"
    }

    /// The summary for a person.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let verdict = if self.passed() {
            "PASSED"
        } else if self.anomalies.is_empty() {
            "NOT VERIFIED"
        } else {
            "FAILED"
        };
        let _ = writeln!(
            text,
            "{verdict}: seed {}, {} nodes ({}), nemeses: {}",
            self.seed,
            self.nodes,
            self.isolation,
            if self.nemeses.is_empty() {
                "none".to_string()
            } else {
                self.nemeses.join(", ")
            }
        );
        for skipped in &self.skipped {
            let _ = writeln!(text, "  skipped {}: {}", skipped.nemesis, skipped.reason);
        }
        let operations = &self.operations;
        let _ = writeln!(
            text,
            "operations: {} in {:.1} s ({} ok, {} failed, {} unknown)",
            operations.total,
            self.workload_seconds,
            operations.ok,
            operations.failed,
            operations.unknown
        );
        for (kind, counts) in &self.operations_by_kind {
            let _ = writeln!(
                text,
                "  {kind:<7} {:>8} ({} ok, {} failed, {} unknown)",
                counts.total, counts.ok, counts.failed, counts.unknown
            );
        }
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(nemesis, count)| format!("{nemesis} {count}"))
            .collect();
        let _ = writeln!(
            text,
            "faults injected: {} ({})",
            self.faults.values().sum::<u64>(),
            faults.join(", ")
        );
        let percent = |fraction: Option<f64>| match fraction {
            Some(fraction) => format!("{:.1}%", fraction * 100.0),
            None => "-".to_string(),
        };
        let availability = &self.availability;
        let _ = writeln!(
            text,
            "availability: {} ok during faults ({} ops), {} ok outside faults ({} ops), \
             longest stretch without a success {:.1} s",
            percent(availability.ok_fraction_during_faults),
            availability.operations_during_faults,
            percent(availability.ok_fraction_outside_faults),
            availability.operations_outside_faults,
            availability.longest_gap_seconds
        );
        let _ = writeln!(
            text,
            "latency of successes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.latency.p50_ms, self.latency.p99_ms, self.latency.max_ms
        );
        match self.settle_seconds {
            Some(seconds) => {
                let _ = writeln!(text, "settled {seconds:.1} s after healing");
            }
            None => {
                let _ = writeln!(text, "did not settle after healing");
            }
        }
        let lincheck = &self.lincheck;
        let _ = writeln!(
            text,
            "lincheck: {} ({} keys, {} operations, {} steps, {:.2} s){}",
            lincheck.verdict,
            lincheck.keys_checked,
            lincheck.operations_checked,
            lincheck.steps,
            lincheck.seconds,
            if lincheck.unknown_keys.is_empty() {
                String::new()
            } else {
                format!("; out of budget on {}", examples(&lincheck.unknown_keys))
            }
        );
        let coordination = &self.coordination;
        if coordination.workloads.iter().any(|w| w == "bank") {
            let (reads, transfers) = (&coordination.bank_reads, &coordination.bank_transfers);
            let _ = writeln!(
                text,
                "bank: {} reads ({} ok, {} failed), {} transfers ({} ok of which {} found an \
                 account changed, {} failed, {} unknown)",
                reads.total,
                reads.ok,
                reads.failed,
                transfers.total,
                transfers.ok,
                coordination.bank_transfers_compare_failed,
                transfers.failed,
                transfers.unknown
            );
        }
        let _ = writeln!(
            text,
            "watch: {} watchers, {} events and {} progress notifications delivered, {} resumes",
            coordination.watchers,
            coordination.watch_events_delivered,
            coordination.watch_progress_delivered,
            coordination.watchers_resumed
        );
        let _ = writeln!(
            text,
            "revisions: {} operations answered with one, {} in the history, members at {}",
            coordination.operations_with_revision,
            coordination.history_revisions,
            coordination
                .member_revisions
                .iter()
                .map(|(id, revision)| format!("{id}:{revision}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if let Some(leases) = &coordination.leases {
            let milliseconds = |value: Option<i64>| match value {
                Some(value) => format!("{value} ms"),
                None => "-".to_string(),
            };
            let _ = writeln!(
                text,
                "leases: {} granted ({} unanswered), {} keys attached, {} keepalives acknowledged \
                 ({} unanswered), {} revoked, {} expired; {} given up by their client's own \
                 clock ({:.1} s of forward jumps in all); {} scans, {} term changes",
                leases.granted,
                leases.grants_unknown,
                leases.keys_attached,
                leases.keepalives_acknowledged,
                leases.keepalives_unanswered,
                leases.revoked,
                leases.expired,
                leases.stopped_by_client_clock,
                leases.client_clock_jumped_ms as f64 / 1000.0,
                leases.scans,
                leases.term_changes
            );
            let _ = writeln!(
                text,
                "  expiry: deletes first seen at least {} after the owner's deadline, at most {} \
                 after the owner's last call + TTL",
                milliseconds(leases.expiry_margin_min_ms),
                milliseconds(leases.expiry_lateness_max_ms)
            );
        }
        if let Some(locks) = &coordination.locks {
            let _ = writeln!(
                text,
                "locks: {} holdings ({} stalled past their lease on purpose), fenced counter {} \
                 ({} accepted, {} unanswered, {} refused for a lower token)",
                locks.holdings,
                locks.stalled,
                locks.fenced_final,
                locks.fenced_writes_accepted,
                locks.fenced_writes_unknown,
                locks.fenced_refused
            );
            let _ = writeln!(
                text,
                "  unguarded counter (information: the lock alone cannot promise it): {} after \
                 {} acknowledged increments, {} lost; {} pairs of holdings overlapped in time",
                locks.unguarded_final,
                locks.unguarded_writes_acknowledged,
                locks.unguarded_lost,
                locks.holdings_overlapping
            );
        }
        for exit in &self.unexpected_exits {
            let _ = writeln!(text, "unexpected exit: {exit}");
        }
        if self.anomalies.is_empty() {
            let _ = writeln!(text, "anomalies: none");
        } else {
            let _ = writeln!(text, "anomalies: {}", self.anomalies.len());
            for anomaly in &self.anomalies {
                let _ = writeln!(text, "  - {anomaly}");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::Nemesis;
    use lincheck::Output;

    fn append(id: u64, key: &str, token: &str, outcome: Outcome) -> Entry {
        Entry {
            id,
            client: id,
            operation: Operation::Append {
                key: key.into(),
                suffix: format!("{token},"),
            },
            invoke_ns: id * 10,
            complete_ns: id * 10 + 5,
            outcome,
        }
    }

    fn acknowledged() -> Outcome {
        Outcome::Ok {
            output: Output::Append { length: None },
        }
    }

    fn unknown() -> Outcome {
        Outcome::Unknown {
            reason: "timed out".into(),
        }
    }

    fn failed() -> Outcome {
        Outcome::Failed {
            reason: "refused".into(),
        }
    }

    #[test]
    fn an_intact_log_key_has_no_anomaly_whatever_became_of_unknown_appends() {
        let entries = [
            append(1, "k", "1.1", acknowledged()),
            append(2, "k", "2.1", unknown()),
            append(3, "k", "3.1", unknown()),
            append(4, "k", "1.2", acknowledged()),
        ];
        let finals = BTreeMap::from([("k".to_string(), Some("1.1,2.1,1.2,".to_string()))]);
        assert_eq!(append_anomalies(&entries, &finals), Vec::<String>::new());
    }

    #[test]
    fn lost_doubled_phantom_and_refused_appends_are_each_reported() {
        let entries = [
            append(1, "k", "1.1", acknowledged()),
            append(2, "k", "2.1", acknowledged()),
            append(3, "k", "3.1", failed()),
            append(4, "k", "4.1", unknown()),
        ];
        let finals = BTreeMap::from([("k".to_string(), Some("1.1,4.1,4.1,9.9,3.1,".to_string()))]);
        let anomalies = append_anomalies(&entries, &finals);
        assert_eq!(anomalies.len(), 4, "{anomalies:?}");
        assert!(anomalies[0].contains("missing: 2.1"), "{anomalies:?}");
        assert!(
            anomalies[1].contains("more than once: 4.1"),
            "{anomalies:?}"
        );
        assert!(
            anomalies[2].contains("no client appended: 9.9"),
            "{anomalies:?}"
        );
        assert!(
            anomalies[3].contains("refused yet applied: 3.1"),
            "{anomalies:?}"
        );
    }

    #[test]
    fn an_unread_or_absent_log_key_loses_its_acknowledged_appends() {
        let entries = [append(1, "k", "1.1", acknowledged())];
        let unread = append_anomalies(&entries, &BTreeMap::new());
        assert!(unread[0].contains("never read"), "{unread:?}");
        let absent = append_anomalies(&entries, &BTreeMap::from([("k".to_string(), None)]));
        assert!(absent[0].contains("missing: 1.1"), "{absent:?}");
    }

    #[test]
    fn copies_that_differ_are_reported_with_the_keys() {
        let copy = |pairs: &[(&str, &str)]| -> Copy {
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        };
        let same = [(1, copy(&[("a", "1")])), (2, copy(&[("a", "1")]))];
        assert!(copy_anomalies(&same).is_empty());
        let differ = [
            (1, copy(&[("a", "1"), ("b", "2")])),
            (2, copy(&[("a", "1")])),
            (3, copy(&[("a", "x"), ("b", "2")])),
        ];
        let anomalies = copy_anomalies(&differ);
        assert_eq!(anomalies.len(), 2, "{anomalies:?}");
        assert!(anomalies[0].contains("b is Some(\"2\") on node 1 but None on node 2"));
        assert!(anomalies[1].contains("nodes 1 and 3"));
    }

    #[test]
    fn availability_splits_operations_by_the_faults_in_force_at_invocation() {
        let get = |id: u64, invoke_ns: u64, complete_ns: u64, ok: bool| Entry {
            id,
            client: 1,
            operation: Operation::Get { key: "k".into() },
            invoke_ns,
            complete_ns,
            outcome: if ok {
                Outcome::Ok {
                    output: Output::Get { value: None },
                }
            } else {
                failed()
            },
        };
        let entries = [
            get(1, 0, 1_000_000_000, true),
            get(2, 2_000_000_000, 2_100_000_000, false),
            get(3, 2_500_000_000, 4_000_000_000, true),
            get(4, 5_000_000_000, 5_100_000_000, true),
        ];
        let fault = |start_ns, end_ns| FaultRecord {
            nemesis: Nemesis::Partition,
            detail: String::new(),
            start_ns,
            end_ns,
        };
        let faults = [
            fault(1_500_000_000, Some(3_000_000_000)),
            // An instant fault covers no operation.
            fault(5_000_000_000, Some(5_000_000_000)),
        ];
        let figures = availability(&entries, &faults);
        assert_eq!(figures.operations_during_faults, 2);
        assert_eq!(figures.ok_fraction_during_faults, Some(0.5));
        assert_eq!(figures.operations_outside_faults, 2);
        assert_eq!(figures.ok_fraction_outside_faults, Some(1.0));
        assert!((figures.longest_gap_seconds - 3.0).abs() < 1e-9);
    }
}
