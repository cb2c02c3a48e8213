//! A fast path for keys that only take reads and appends: the longest value read fixes the
//! order of every append that took effect, so a linearization can be built directly and
//! checked against real time in O(n log n), however many appends have unknown outcomes.
//!
//! The general search is exponential in the number of concurrent operations, and an append
//! whose outcome is unknown stays concurrent with everything after it; a long log key under
//! faults can hold dozens of them. Here:
//!
//! 1. the longest value read, V, must extend every other value read;
//! 2. V is cut into the appended suffixes, each matched to the one append that wrote it (a
//!    suffix appended twice, or a cut with two candidates, gives up);
//! 3. appends in V take V's order; an unknown append not in V never took effect; an
//!    acknowledged append not in V gives up (it would go after V's reads);
//! 4. a read of the first k suffixes goes right after the k-th append;
//! 5. that order must respect real time: no operation may complete before another one that
//!    comes earlier in the order is invoked.
//!
//! Finding such an order proves the key linearizable. Giving up proves nothing: the caller
//! falls back to the general search, which also finds and explains any violation.

use std::collections::HashMap;

use crate::history::{Entry, Operation, Outcome, Output};

/// Whether a linearization of `entries` (one key, no failed entries) was found this way.
/// `false` means "not shown", never "not linearizable".
pub(crate) fn witness(entries: &[&Entry]) -> bool {
    build_order(entries).is_some_and(|ranked| respects_real_time(&ranked))
}

/// An operation's place in the candidate order and its real-time interval.
struct Ranked {
    /// Appends take even ranks 2k (k ≥ 1, the k-th suffix of V); reads of k suffixes take
    /// 2k + 1. Reads of equal rank may go in any order among themselves.
    rank: u64,
    invoke_ns: u64,
    /// `u64::MAX` for an unknown outcome: it may take effect at any later time.
    complete_ns: u64,
}

fn build_order(entries: &[&Entry]) -> Option<Vec<Ranked>> {
    // Values read, and the appends, by suffix.
    let mut reads: Vec<(&Entry, Option<&str>)> = Vec::new();
    let mut appends_by_suffix: HashMap<&str, &Entry> = HashMap::new();
    for entry in entries {
        match (&entry.operation, &entry.outcome) {
            (
                Operation::Get { .. },
                Outcome::Ok {
                    output: Output::Get { value },
                },
            ) => reads.push((entry, value.as_deref())),
            // A read without an answer constrains nothing.
            (Operation::Get { .. }, _) => {}
            (Operation::Append { suffix, .. }, Outcome::Ok { .. } | Outcome::Unknown { .. }) => {
                if suffix.is_empty() || appends_by_suffix.insert(suffix, entry).is_some() {
                    return None;
                }
            }
            (Operation::Append { .. }, Outcome::Failed { .. }) => {}
            _ => return None,
        }
    }
    let longest: &str = reads
        .iter()
        .filter_map(|(_, value)| *value)
        .max_by_key(|value| value.len())
        .unwrap_or("");

    // Cut V into suffixes: `ends[k]` is the length of V after its k-th suffix.
    let mut ends: Vec<usize> = vec![0];
    let mut in_value: Vec<&Entry> = Vec::new();
    let mut position = 0;
    while position < longest.len() {
        let rest = &longest[position..];
        let mut candidates = appends_by_suffix
            .iter()
            .filter(|(suffix, _)| rest.starts_with(**suffix));
        let (suffix, entry) = candidates.next()?;
        // Two candidates, or the one candidate taken already (applied twice): not this way.
        if candidates.next().is_some() || in_value.iter().any(|taken| taken.id == entry.id) {
            return None;
        }
        position += suffix.len();
        ends.push(position);
        in_value.push(entry);
    }
    let mut ranked = Vec::with_capacity(entries.len());
    for (k, entry) in in_value.iter().enumerate() {
        let k = k as u64 + 1;
        if let Outcome::Ok {
            output: Output::Append {
                length: Some(length),
            },
        } = &entry.outcome
        {
            // The length it answered is V's length after it.
            if *length != ends[k as usize] as u64 {
                return None;
            }
        }
        ranked.push(Ranked {
            rank: 2 * k,
            invoke_ns: entry.invoke_ns,
            complete_ns: completion(entry),
        });
    }
    let acknowledged_missing = appends_by_suffix
        .values()
        .any(|entry| entry.outcome.is_ok() && !in_value.iter().any(|taken| taken.id == entry.id));
    if acknowledged_missing {
        return None;
    }
    for (entry, value) in reads {
        // An absent key reads as `None`; once appended to it exists, even as a prefix.
        let k = match value {
            None => 0,
            Some(value) => {
                let k = ends.iter().position(|&end| end == value.len())?;
                if k == 0 || !longest.starts_with(value) {
                    return None;
                }
                k
            }
        };
        ranked.push(Ranked {
            rank: 2 * k as u64 + 1,
            invoke_ns: entry.invoke_ns,
            complete_ns: completion(entry),
        });
    }
    Some(ranked)
}

fn completion(entry: &Entry) -> u64 {
    match entry.outcome {
        Outcome::Unknown { .. } => u64::MAX,
        _ => entry.complete_ns.max(entry.invoke_ns),
    }
}

/// Whether no operation completes before another that precedes it in the order is invoked:
/// for every operation B, each operation of a higher rank completes after B is invoked.
fn respects_real_time(ranked: &[Ranked]) -> bool {
    let mut by_rank: Vec<&Ranked> = ranked.iter().collect();
    by_rank.sort_by_key(|operation| operation.rank);
    // Walking down the ranks, the earliest completion among the higher ranks seen so far.
    let mut earliest_later_completion = u64::MAX;
    let mut index = by_rank.len();
    while index > 0 {
        let rank = by_rank[index - 1].rank;
        let mut group_start = index;
        while group_start > 0 && by_rank[group_start - 1].rank == rank {
            group_start -= 1;
        }
        let group = &by_rank[group_start..index];
        if group
            .iter()
            .any(|operation| earliest_later_completion < operation.invoke_ns)
        {
            return false;
        }
        for operation in group {
            earliest_later_completion = earliest_later_completion.min(operation.complete_ns);
        }
        index = group_start;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(id: u64, suffix: &str, invoke_ns: u64, complete_ns: u64, outcome: Outcome) -> Entry {
        Entry {
            id,
            client: id,
            operation: Operation::Append {
                key: "log".into(),
                suffix: suffix.into(),
            },
            invoke_ns,
            complete_ns,
            outcome,
        }
    }

    fn read(id: u64, value: Option<&str>, invoke_ns: u64, complete_ns: u64) -> Entry {
        Entry {
            id,
            client: id,
            operation: Operation::Get { key: "log".into() },
            invoke_ns,
            complete_ns,
            outcome: Outcome::Ok {
                output: Output::Get {
                    value: value.map(str::to_string),
                },
            },
        }
    }

    fn acknowledged(length: u64) -> Outcome {
        Outcome::Ok {
            output: Output::Append {
                length: Some(length),
            },
        }
    }

    fn unknown() -> Outcome {
        Outcome::Unknown {
            reason: "timed out".into(),
        }
    }

    fn shown(entries: &[Entry]) -> bool {
        witness(&entries.iter().collect::<Vec<_>>())
    }

    #[test]
    fn many_unknown_appends_are_ordered_by_the_final_read() {
        let mut entries = vec![read(0, None, 0, 5)];
        let mut value = String::new();
        for id in 1..=60u64 {
            let suffix = format!("{id},");
            // Every append's outcome is unknown; every third one took effect.
            if id % 3 == 0 {
                value.push_str(&suffix);
            }
            entries.push(append(id, &suffix, id * 10, id * 10 + 5, unknown()));
        }
        entries.push(read(100, Some(&value), 10_000, 10_005));
        assert!(shown(&entries));
    }

    #[test]
    fn a_stale_read_is_not_shown() {
        let entries = [
            append(1, "a,", 0, 10, acknowledged(2)),
            append(2, "b,", 20, 30, acknowledged(4)),
            // Invoked after "b," was acknowledged, yet it misses it.
            read(3, Some("a,"), 40, 50),
            read(4, Some("a,b,"), 60, 70),
        ];
        assert!(!shown(&entries));
    }

    #[test]
    fn appends_in_an_order_real_time_forbids_are_not_shown() {
        let entries = [
            append(1, "a,", 0, 10, acknowledged(4)),
            append(2, "b,", 20, 30, acknowledged(2)),
            read(3, Some("b,a,"), 40, 50),
        ];
        assert!(!shown(&entries));
    }

    #[test]
    fn concurrent_reads_and_appends_in_any_consistent_order_are_shown() {
        let entries = [
            append(1, "a,", 0, 100, acknowledged(2)),
            read(2, None, 10, 20),
            read(3, Some("a,"), 30, 40),
            append(4, "b,", 35, 200, unknown()),
            read(5, Some("a,"), 150, 160),
            read(6, Some("a,b,"), 300, 310),
        ];
        assert!(shown(&entries));
    }

    #[test]
    fn ambiguous_or_unexplained_values_give_up() {
        // Two appends of the same suffix: which one took effect is not known.
        let twice = [
            append(1, "a,", 0, 10, unknown()),
            append(2, "a,", 0, 10, unknown()),
            read(3, Some("a,"), 20, 30),
        ];
        assert!(!shown(&twice));
        // An append applied twice.
        let doubled = [
            append(1, "a,", 0, 10, unknown()),
            read(2, Some("a,a,"), 20, 30),
        ];
        assert!(!shown(&doubled));
        // A value nobody appended.
        let phantom = [
            append(1, "a,", 0, 10, acknowledged(2)),
            read(2, Some("x,"), 20, 30),
        ];
        assert!(!shown(&phantom));
        // An acknowledged append no read saw.
        let unseen = [append(1, "a,", 0, 10, acknowledged(2)), read(2, None, 5, 8)];
        assert!(!shown(&unseen));
        // Reads that do not extend one another.
        let forked = [
            append(1, "a,", 0, 10, unknown()),
            append(2, "b,", 0, 10, unknown()),
            read(3, Some("a,"), 20, 30),
            read(4, Some("b,"), 20, 30),
        ];
        assert!(!shown(&forked));
    }
}
