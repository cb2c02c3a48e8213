//! The lock checks: what each holder of the lock did with its fencing token, judged against
//! the change history.
//!
//! ```text
//!  the fencing register (two keys changed only together, by a transaction)
//!    token key: the highest token it has seen      value key: a counter
//!  a fenced access with token T: if stored token > T refuse, else store T and read or write
//!
//!  checks
//!    ├─ tokens ─────── no two holdings of the lock with one token
//!    ├─ register ───── its stored token never decreases and is always some holder's token
//!    ├─ no lost update ─ every write of its counter is the previous value + 1, every accepted
//!    │                   fenced write is in the history at its revision, and the final value
//!    │                   is between the accepted writes and those plus the unanswered ones
//!    └─ information ── the counter the lock alone protects (read, then write + 1, no
//!                      transaction): increments lost, and holdings that overlapped in time
//! ```
//!
//! Why a fenced *read* stores the token too: a holder that read the counter, then stalled
//! past its lease, must not write after a newer holder has read; with only writes fenced, the
//! stale write could land between the newer holder's read and write, and an increment would
//! be lost although no token ever went down.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::revision_check::{bounded, ChangeLog};

/// The register's token key.
pub const FENCE_TOKEN_KEY: &str = "chaos/lock/fence/token";
/// The register's counter key.
pub const FENCE_VALUE_KEY: &str = "chaos/lock/fence/value";
/// The counter the lock alone protects.
pub const UNGUARDED_KEY: &str = "chaos/lock/counter";

/// A token as the register stores it: fixed width, so byte order is number order and a
/// transaction's value comparison compares tokens.
pub fn token_value(token: u64) -> String {
    format!("{token:020}")
}

/// What a holder did while it held the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockAction {
    /// Read the register's counter with its token.
    FencedRead,
    /// Wrote `value` to the register's counter with its token.
    FencedWrite {
        /// The value written.
        value: u64,
    },
    /// Read the unguarded counter.
    UnguardedRead,
    /// Wrote `value` to the unguarded counter.
    UnguardedWrite {
        /// The value written.
        value: u64,
    },
}

/// What an access got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockOutcome {
    /// Done: the value read or written, at `revision`.
    Ok {
        /// The counter's value read, or the one written.
        value: u64,
        /// The revision of the answer.
        revision: u64,
    },
    /// The register holds a higher token: refused, nothing changed.
    Refused {
        /// The token it holds.
        register_token: u64,
    },
    /// Definitely not applied.
    Failed {
        /// Why.
        reason: String,
    },
    /// No definite answer: a write may or may not have been applied.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// One access with its times on the checker's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockStep {
    /// Sent, nanoseconds since the run's start.
    pub invoke_ns: u64,
    /// Answered, or given up, nanoseconds since the run's start.
    pub complete_ns: u64,
    /// What it did.
    pub action: LockAction,
    /// What it got.
    pub outcome: LockOutcome,
}

/// One holding of the lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolding {
    /// The client.
    pub client: u64,
    /// Its holdings counted from 1.
    pub acquisition: u64,
    /// The lock key it held.
    pub key: String,
    /// Its fencing token (the key's create revision).
    pub token: u64,
    /// When it asked for the lock, nanoseconds since the run's start.
    pub requested_ns: u64,
    /// When it held it.
    pub acquired_ns: u64,
    /// When it let go (unlocked, or learned it had lost it, or stopped acting).
    pub released_ns: u64,
    /// Whether it played a holder that stalls past its lease: it gave up its lease after its
    /// fenced read and acted on after a while.
    pub stalled: bool,
    /// Its accesses, in order.
    pub steps: Vec<LockStep>,
}

/// The lock workload's figures and what it found that the lock alone does not promise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LockFigures {
    /// Holdings of the lock.
    pub holdings: u64,
    /// Of them, holders that stalled past their lease on purpose.
    pub stalled: u64,
    /// Fenced writes accepted.
    pub fenced_writes_accepted: u64,
    /// Fenced reads or writes refused for a lower token.
    pub fenced_refused: u64,
    /// Fenced writes without an answer.
    pub fenced_writes_unknown: u64,
    /// The register's counter at the end.
    pub fenced_final: u64,
    /// Unguarded increments acknowledged.
    pub unguarded_writes_acknowledged: u64,
    /// The unguarded counter at the end.
    pub unguarded_final: u64,
    /// Acknowledged unguarded increments missing from the final value (lost to a holder that
    /// acted after it lost the lock): expected, the point of fencing.
    pub unguarded_lost: u64,
    /// Pairs of holdings that overlapped in real time (a holder acting after its lease was
    /// gone and another's began).
    pub holdings_overlapping: u64,
}

/// The lock checks. Returns the anomalies and the figures.
pub fn lock_anomalies(holdings: &[LockHolding], log: &ChangeLog) -> (Vec<String>, LockFigures) {
    let mut figures = LockFigures {
        holdings: holdings.len() as u64,
        stalled: holdings.iter().filter(|holding| holding.stalled).count() as u64,
        ..LockFigures::default()
    };
    let mut anomalies = Vec::new();
    let mut by_token: BTreeMap<u64, &LockHolding> = BTreeMap::new();
    for holding in holdings {
        if let Some(other) = by_token.insert(holding.token, holding) {
            anomalies.push(format!(
                "two holdings of the lock with token {}: client {} (holding {}, key {}) and \
                 client {} (holding {}, key {})",
                holding.token,
                other.client,
                other.acquisition,
                other.key,
                holding.client,
                holding.acquisition,
                holding.key
            ));
        }
    }
    // The register as the history shows it.
    let mut register = Vec::new();
    let mut highest_token = 0u64;
    let mut previous_value = 0u64;
    for (revision, changes) in log {
        for change in changes {
            let Some(value) = &change.value else {
                if change.key == FENCE_TOKEN_KEY || change.key == FENCE_VALUE_KEY {
                    register.push(format!(
                        "revision {revision} deleted the register's {}",
                        change.key
                    ));
                }
                continue;
            };
            if change.key == FENCE_TOKEN_KEY {
                let Ok(token) = value.parse::<u64>() else {
                    register.push(format!(
                        "revision {revision} stored {value:?} as the register's token"
                    ));
                    continue;
                };
                if token < highest_token {
                    register.push(format!(
                        "the register's token went down from {highest_token} to {token} at \
                         revision {revision}"
                    ));
                }
                if !by_token.contains_key(&token) {
                    register.push(format!(
                        "revision {revision} stored token {token}, which no holder had"
                    ));
                }
                highest_token = highest_token.max(token);
            } else if change.key == FENCE_VALUE_KEY {
                let value = value.parse::<u64>().ok();
                if value != Some(previous_value + 1) {
                    register.push(format!(
                        "the register's counter went from {previous_value} to {} at revision \
                         {revision}: an increment was lost or doubled",
                        value.map_or("garbage".to_string(), |v| v.to_string())
                    ));
                }
                previous_value = value.unwrap_or(previous_value);
            } else if change.key == UNGUARDED_KEY {
                figures.unguarded_final = value.parse().unwrap_or(figures.unguarded_final);
            }
        }
    }
    figures.fenced_final = previous_value;
    for holding in holdings {
        for step in &holding.steps {
            match (&step.action, &step.outcome) {
                (LockAction::FencedWrite { value }, LockOutcome::Ok { revision, .. }) => {
                    figures.fenced_writes_accepted += 1;
                    let changes = log.get(revision).map(Vec::as_slice).unwrap_or(&[]);
                    let wrote = |key: &str, expected: &str| {
                        changes.iter().any(|change| {
                            change.key == key && change.value.as_deref() == Some(expected)
                        })
                    };
                    if !wrote(FENCE_VALUE_KEY, &value.to_string())
                        || !wrote(FENCE_TOKEN_KEY, &token_value(holding.token))
                    {
                        register.push(format!(
                            "client {}'s fenced write of {value} with token {} was accepted at \
                             revision {revision}, which does not hold it",
                            holding.client, holding.token
                        ));
                    }
                }
                (LockAction::FencedWrite { .. }, LockOutcome::Unknown { .. }) => {
                    figures.fenced_writes_unknown += 1
                }
                (
                    LockAction::FencedRead | LockAction::FencedWrite { .. },
                    LockOutcome::Refused { .. },
                ) => figures.fenced_refused += 1,
                (LockAction::UnguardedWrite { .. }, LockOutcome::Ok { .. }) => {
                    figures.unguarded_writes_acknowledged += 1
                }
                _ => {}
            }
        }
    }
    let accepted = figures.fenced_writes_accepted;
    if figures.fenced_final < accepted
        || figures.fenced_final > accepted + figures.fenced_writes_unknown
    {
        register.push(format!(
            "the register's counter ended at {} after {accepted} accepted fenced increments and \
             {} unanswered ones",
            figures.fenced_final, figures.fenced_writes_unknown
        ));
    }
    figures.unguarded_lost = figures
        .unguarded_writes_acknowledged
        .saturating_sub(figures.unguarded_final);
    let mut spans: Vec<(u64, u64)> = holdings
        .iter()
        .map(|holding| (holding.acquired_ns, holding.released_ns))
        .collect();
    spans.sort();
    for (index, (_, end)) in spans.iter().enumerate() {
        figures.holdings_overlapping += spans[index + 1..]
            .iter()
            .take_while(|(start, _)| start < end)
            .count() as u64;
    }
    anomalies.extend(bounded(register, "fencing register"));
    (anomalies, figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revision_check::Change;

    fn ms(milliseconds: u64) -> u64 {
        milliseconds * 1_000_000
    }

    fn access(at_ms: u64, action: LockAction, outcome: LockOutcome) -> LockStep {
        LockStep {
            invoke_ns: ms(at_ms),
            complete_ns: ms(at_ms + 10),
            action,
            outcome,
        }
    }

    fn ok(value: u64, revision: u64) -> LockOutcome {
        LockOutcome::Ok { value, revision }
    }

    fn holding(client: u64, token: u64, from_ms: u64, steps: Vec<LockStep>) -> LockHolding {
        LockHolding {
            client,
            acquisition: 1,
            key: format!("chaos/lock/mutex/{client:x}"),
            token,
            requested_ns: ms(from_ms),
            acquired_ns: ms(from_ms),
            released_ns: ms(from_ms + 1_000),
            stalled: false,
            steps,
        }
    }

    /// Client 1 with token 10, then client 2 with token 13, each one fenced and one
    /// unguarded increment.
    fn holdings() -> Vec<LockHolding> {
        vec![
            holding(
                1,
                10,
                1_000,
                vec![
                    access(1_100, LockAction::FencedRead, ok(0, 10)),
                    access(1_200, LockAction::FencedWrite { value: 1 }, ok(1, 11)),
                    access(1_300, LockAction::UnguardedRead, ok(0, 11)),
                    access(1_400, LockAction::UnguardedWrite { value: 1 }, ok(1, 12)),
                ],
            ),
            holding(
                2,
                13,
                2_500,
                vec![
                    access(2_600, LockAction::FencedRead, ok(1, 14)),
                    access(2_700, LockAction::FencedWrite { value: 2 }, ok(2, 15)),
                    access(2_800, LockAction::UnguardedRead, ok(1, 15)),
                    access(2_900, LockAction::UnguardedWrite { value: 2 }, ok(2, 16)),
                ],
            ),
        ]
    }

    fn token(token: u64) -> Change {
        Change::put(FENCE_TOKEN_KEY, &token_value(token))
    }

    fn log() -> ChangeLog {
        ChangeLog::from([
            (10, vec![token(10)]),
            (11, vec![token(10), Change::put(FENCE_VALUE_KEY, "1")]),
            (12, vec![Change::put(UNGUARDED_KEY, "1")]),
            (14, vec![token(13)]),
            (15, vec![token(13), Change::put(FENCE_VALUE_KEY, "2")]),
            (16, vec![Change::put(UNGUARDED_KEY, "2")]),
        ])
    }

    #[test]
    fn holders_in_turn_pass() {
        let (anomalies, figures) = lock_anomalies(&holdings(), &log());
        assert_eq!(anomalies, Vec::<String>::new());
        assert_eq!(figures.holdings, 2);
        assert_eq!(figures.fenced_writes_accepted, 2);
        assert_eq!(figures.fenced_final, 2);
        assert_eq!(figures.unguarded_final, 2);
        assert_eq!(figures.unguarded_lost, 0);
        assert_eq!(figures.holdings_overlapping, 0);
    }

    #[test]
    fn two_holdings_with_one_token_are_flagged() {
        let mut holdings = holdings();
        holdings[1].token = 10;
        let (anomalies, _) = lock_anomalies(&holdings, &log());
        assert!(
            anomalies[0].starts_with("two holdings of the lock with token 10: client 1"),
            "{anomalies:?}"
        );
    }

    #[test]
    fn a_token_going_down_at_the_register_is_flagged() {
        let mut log = log();
        log.insert(17, vec![token(10)]);
        let (anomalies, _) = lock_anomalies(&holdings(), &log);
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert!(anomalies[0].contains("went down from 13 to 10 at revision 17"));
        log.insert(18, vec![token(99)]);
        let (anomalies, _) = lock_anomalies(&holdings(), &log);
        assert!(anomalies[1].contains("stored token 99, which no holder had"));
    }

    #[test]
    fn a_lost_fenced_increment_is_flagged() {
        let mut holdings = holdings();
        // Client 2 read 0 (as if client 1's write were not there) and wrote 1.
        holdings[1].steps[0].outcome = ok(0, 14);
        holdings[1].steps[1] = access(2_700, LockAction::FencedWrite { value: 1 }, ok(1, 15));
        let mut log = log();
        log.insert(15, vec![token(13), Change::put(FENCE_VALUE_KEY, "1")]);
        let (anomalies, _) = lock_anomalies(&holdings, &log);
        assert_eq!(anomalies.len(), 2, "{anomalies:?}");
        assert!(anomalies[0].contains("went from 1 to 1 at revision 15"));
        assert!(anomalies[1].contains("ended at 1 after 2 accepted fenced increments"));
    }

    #[test]
    fn an_accepted_write_missing_from_its_revision_is_flagged() {
        let mut log = log();
        log.insert(15, vec![token(13)]);
        log.insert(17, vec![Change::put(FENCE_VALUE_KEY, "2")]);
        let (anomalies, _) = lock_anomalies(&holdings(), &log);
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert!(anomalies[0].contains("accepted at revision 15, which does not hold it"));
    }

    #[test]
    fn a_stalled_holder_is_fenced_off_and_only_the_unguarded_counter_loses() {
        // Client 1 (token 10) reads both counters, stalls past its lease; client 2 (token 13)
        // takes the lock and increments both; client 1 wakes: its fenced write is refused,
        // its unguarded write overwrites client 2's.
        let holdings = vec![
            LockHolding {
                stalled: true,
                released_ns: ms(4_000),
                ..holding(
                    1,
                    10,
                    1_000,
                    vec![
                        access(1_100, LockAction::FencedRead, ok(0, 10)),
                        access(1_150, LockAction::UnguardedRead, ok(0, 10)),
                        access(
                            3_500,
                            LockAction::FencedWrite { value: 1 },
                            LockOutcome::Refused { register_token: 13 },
                        ),
                        access(3_600, LockAction::UnguardedWrite { value: 1 }, ok(1, 17)),
                    ],
                )
            },
            holding(
                2,
                13,
                2_500,
                vec![
                    access(2_600, LockAction::FencedRead, ok(0, 14)),
                    access(2_700, LockAction::FencedWrite { value: 1 }, ok(1, 15)),
                    access(2_800, LockAction::UnguardedRead, ok(0, 15)),
                    access(2_900, LockAction::UnguardedWrite { value: 1 }, ok(1, 16)),
                ],
            ),
        ];
        let log = ChangeLog::from([
            (10, vec![token(10)]),
            (14, vec![token(13)]),
            (15, vec![token(13), Change::put(FENCE_VALUE_KEY, "1")]),
            (16, vec![Change::put(UNGUARDED_KEY, "1")]),
            (17, vec![Change::put(UNGUARDED_KEY, "1")]),
        ]);
        let (anomalies, figures) = lock_anomalies(&holdings, &log);
        assert_eq!(anomalies, Vec::<String>::new());
        assert_eq!(figures.fenced_refused, 1);
        assert_eq!(figures.unguarded_writes_acknowledged, 2);
        assert_eq!(figures.unguarded_lost, 1);
        assert_eq!(figures.holdings_overlapping, 1);
        assert_eq!(figures.stalled, 1);
    }
}
