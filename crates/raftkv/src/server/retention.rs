//! Automatic compaction by retention: the leader proposes `Compact` through the log so that
//! the history holds about the last `--history-retention-revisions` revisions and/or the
//! last `--history-retention` of time.
//!
//! ```text
//!  every CHECK_INTERVAL, while this node leads:
//!    sample (monotonic now, revision) ─► by count: revision − N + 1
//!                                     ─► by age:   the revision current D ago (samples)
//!    target = the later of the two ─► target ≥ compact revision + step? ─► propose Compact
//! ```
//!
//! The store stays clock-free: time enters only here, on the leader, which turns an age into
//! a revision and proposes that revision; every replica applies the same `Compact` entry.
//! A new leader starts sampling afresh, so compaction by age resumes once it has led for the
//! retention period (history is then kept a little longer, never shorter).

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::KvServer;
use crate::settings::CoordinationSettings;
use crate::store::{Operation, Outcome};

/// How often the leader looks at the history's length.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Most samples of (time, revision) kept for compaction by age: one per check, so about an
/// hour at two a second; older ones are thinned (every other dropped) beyond it.
const SAMPLES_MAX: usize = 8192;

/// Where the leader samples the revision over time, to find the revision current an age ago.
#[derive(Debug, Default)]
pub(super) struct RevisionClock {
    /// Oldest first; times and revisions both ascending.
    samples: VecDeque<(Instant, u64)>,
}

impl RevisionClock {
    /// Records that `revision` is current at `now`.
    fn sample(&mut self, now: Instant, revision: u64) {
        if let Some((time, last)) = self.samples.back() {
            assert!(
                *time <= now && *last <= revision,
                "invariant samples-ascend"
            );
            if *last == revision {
                return; // Only the first time a revision was seen matters.
            }
        }
        if self.samples.len() == SAMPLES_MAX {
            // Thin the older half: resolution is kept where it matters, at the cut.
            let kept: VecDeque<_> = self
                .samples
                .iter()
                .enumerate()
                .filter(|(position, _)| *position >= SAMPLES_MAX / 2 || position % 2 == 0)
                .map(|(_, sample)| *sample)
                .collect();
            self.samples = kept;
        }
        self.samples.push_back((now, revision));
    }

    /// The newest revision current at or before `now − age` (`None`: this leader has not
    /// seen that long yet); samples older than it are dropped.
    fn revision_before(&mut self, now: Instant, age: Duration) -> Option<u64> {
        let cut = now.checked_sub(age)?;
        while self.samples.len() >= 2 && self.samples[1].0 <= cut {
            self.samples.pop_front();
        }
        self.samples
            .front()
            .filter(|(time, _)| *time <= cut)
            .map(|(_, revision)| *revision)
    }

    fn clear(&mut self) {
        self.samples.clear();
    }
}

/// The revision to compact at, if any, given the store's `revision` and the settings.
pub(super) fn compaction_target(
    settings: &CoordinationSettings,
    revision: u64,
    by_age: Option<u64>,
) -> Option<u64> {
    let keep = settings.history_retention_revisions;
    let by_count = (keep > 0 && revision > keep).then(|| revision - keep + 1);
    let target = by_count.max(by_age)?;
    assert!(target <= revision, "invariant compaction-not-in-the-future");
    Some(target)
}

/// Smallest advance of the compaction revision worth a log entry: a sixteenth of the count
/// kept (at least one), so a busy store proposes about sixteen compactions per retention.
fn step(settings: &CoordinationSettings) -> u64 {
    (settings.history_retention_revisions / 16).max(1)
}

/// Runs for as long as the server does; proposes compactions while it leads.
pub(super) async fn compaction_loop(server: Weak<KvServer>) {
    let Some(settings) = server.upgrade().map(|server| server.config.coordination) else {
        return;
    };
    if settings.history_retention_revisions == 0 && settings.history_retention.is_none() {
        return;
    }
    let mut clock = RevisionClock::default();
    let mut interval = tokio::time::interval(CHECK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(server) = server.upgrade() else {
            return;
        };
        if !server.is_leader() {
            clock.clear();
            continue;
        }
        compact_once(&server, &settings, &mut clock).await;
    }
}

async fn compact_once(
    server: &Arc<KvServer>,
    settings: &CoordinationSettings,
    clock: &mut RevisionClock,
) {
    let now = Instant::now();
    let (revision, compact_revision) = {
        let state = server.state();
        (state.revision(), state.compact_revision())
    };
    clock.sample(now, revision);
    let by_age = settings
        .history_retention
        .and_then(|age| clock.revision_before(now, age));
    let Some(target) = compaction_target(settings, revision, by_age) else {
        return;
    };
    if target < compact_revision + step(settings) {
        return;
    }
    match server
        .write(None, Operation::Compact { revision: target })
        .await
    {
        Ok(result) => match result.outcome {
            Outcome::Compacted { compact_revision } => {
                tracing::debug!(compact_revision, "history compacted by retention");
            }
            other => tracing::warn!(?other, target, "automatic compaction refused"),
        },
        // Leadership moved or the write timed out: the next leader (or the next check) tries
        // again.
        Err(error) => tracing::debug!(%error, target, "automatic compaction not proposed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(keep: u64, age: Option<Duration>) -> CoordinationSettings {
        CoordinationSettings {
            history_retention_revisions: keep,
            history_retention: age,
            ..CoordinationSettings::default()
        }
    }

    #[test]
    fn the_target_keeps_the_last_revisions_and_the_later_cut_of_count_and_age_wins() {
        assert_eq!(compaction_target(&settings(10, None), 10, None), None);
        assert_eq!(
            compaction_target(&settings(10, None), 25, None),
            Some(16),
            "revisions 16..=25: ten kept"
        );
        assert_eq!(compaction_target(&settings(0, None), 25, Some(7)), Some(7));
        assert_eq!(
            compaction_target(&settings(10, None), 25, Some(20)),
            Some(20)
        );
        assert_eq!(
            compaction_target(&settings(10, None), 25, Some(3)),
            Some(16)
        );
        assert_eq!(compaction_target(&settings(0, None), 25, None), None);
    }

    #[test]
    fn the_revision_an_age_ago_is_the_newest_sampled_before_the_cut() {
        let mut clock = RevisionClock::default();
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        clock.sample(at(0), 1);
        clock.sample(at(10), 5);
        clock.sample(at(20), 9);
        clock.sample(at(30), 9);
        assert_eq!(
            clock.revision_before(at(5), Duration::from_secs(60)),
            None,
            "not led that long"
        );
        assert_eq!(
            clock.revision_before(at(25), Duration::from_secs(10)),
            Some(5)
        );
        assert_eq!(
            clock.revision_before(at(31), Duration::from_secs(10)),
            Some(9)
        );
        for second in 0..(SAMPLES_MAX as u64 * 2) {
            clock.sample(at(100 + second), 10 + second);
        }
        assert!(clock.samples.len() <= SAMPLES_MAX);
        let newest = clock.samples.back().copied().expect("samples");
        assert_eq!(newest.1, 10 + SAMPLES_MAX as u64 * 2 - 1);
    }
}
