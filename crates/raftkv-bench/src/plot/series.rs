//! The run cut into intervals (p50, p99, throughput and the slowest sample of each) and the
//! samples chosen for the scatter: data only, no drawing.
//!
//! ```text
//!  samples ─► TimeSeries::from_samples ─► per interval: HdrHistogram p50/p99, successes,
//!                                          index of the slowest sample
//!          ─► downsample(samples, series) ─► at most SCATTER_POINTS_MAX indexes to draw
//! ```

use hdrhistogram::Histogram;

use super::Sample;

/// The most samples drawn in the scatter. Beyond a few tens of thousands of points a scatter is a
/// solid smear that only makes the file large and slow to open.
pub(super) const SCATTER_POINTS_MAX: usize = 20_000;

/// Failed samples are all drawn up to this many, so rare failures never vanish in sampling;
/// beyond it they are drawn in proportion to their share of the run.
pub(super) const FAILED_POINTS_ALWAYS: usize = 1_000;

/// The number of intervals the run is cut into, at most. Intervals are rounded up to a 1, 2 or 5
/// step (100 ms, 200 ms, 1 s, ...), so a long run has between 40 and 100 of them.
pub(super) const INTERVALS_MAX: u64 = 100;

/// Fewer intervals for a sparse run, so each holds about this many samples on average: with
/// fewer, percentiles and throughput per interval are mostly noise.
pub(super) const SAMPLES_PER_INTERVAL_MIN: u64 = 20;

/// The shortest time axis, so that a run whose samples all complete at once still has a width.
pub(super) const RUN_MICROS_MIN: u64 = 1_000;

/// The time axis when there are no samples.
pub(super) const RUN_MICROS_EMPTY: u64 = 10_000_000;

/// The slowest latency the per-interval histograms hold (an hour); slower samples count as
/// an hour in the p50 and p99 lines, and are still drawn where they are in the scatter.
const LATENCY_MAX_MICROS: u64 = 3_600_000_000;

/// Statistics of one interval of the run.
#[derive(Clone, Debug)]
pub(super) struct IntervalStats {
    pub(super) start_micros: u64,
    /// Between half and one and a half intervals for the last one, which ends with the run.
    pub(super) width_micros: u64,
    /// Successful operations, for throughput.
    pub(super) ok_count: u64,
    /// Over all operations, failed ones included: a timeout is latency the client saw.
    pub(super) latency_p50_micros: Option<u64>,
    pub(super) latency_p99_micros: Option<u64>,
    /// The index in `samples` of the slowest operation, kept by downsampling so spikes show.
    pub(super) latency_max_index: Option<usize>,
}

impl IntervalStats {
    pub(super) fn middle_micros(&self) -> f64 {
        self.start_micros as f64 + self.width_micros as f64 / 2.0
    }

    pub(super) fn throughput_per_second(&self) -> f64 {
        assert!(self.width_micros > 0, "interval must have a width");
        self.ok_count as f64 * 1_000_000.0 / self.width_micros as f64
    }
}

/// The run cut into intervals.
#[derive(Clone, Debug)]
pub(super) struct TimeSeries {
    /// Invariant: every sample completed before `run_micros`, and it is at least `RUN_MICROS_MIN`.
    pub(super) run_micros: u64,
    pub(super) interval_micros: u64,
    pub(super) intervals: Vec<IntervalStats>,
}

impl TimeSeries {
    pub(super) fn from_samples(samples: &[Sample]) -> TimeSeries {
        let at_max_micros = samples.iter().map(|sample| sample.at_micros).max();
        let run_micros = at_max_micros
            .map_or(RUN_MICROS_EMPTY, |at| at.saturating_add(1))
            .max(RUN_MICROS_MIN);
        let intervals_target =
            (samples.len() as u64 / SAMPLES_PER_INTERVAL_MIN).clamp(1, INTERVALS_MAX);
        let interval_micros = nice_ceil(run_micros.div_ceil(intervals_target));
        // Rounded to the nearest count, so the last interval (which ends with the run) is between
        // half and one and a half intervals wide: a sliver at the end would hold a handful of
        // samples and draw noisy percentiles and throughput.
        let remainder_micros = run_micros % interval_micros;
        let interval_count = (run_micros / interval_micros
            + u64::from(remainder_micros >= interval_micros - remainder_micros))
        .max(1);
        assert!(interval_count >= 1, "a run has at least one interval");
        assert!(interval_count <= INTERVALS_MAX, "intervals are bounded");
        let interval_count = interval_count as usize;

        // One histogram per interval, bounded by the run's slowest sample so an interval costs
        // memory for the range it can hold, not for an hour.
        let latency_max_micros = samples
            .iter()
            .map(|sample| sample.latency_micros.clamp(1, LATENCY_MAX_MICROS))
            .max()
            .unwrap_or(1)
            .max(2);
        let mut latencies: Vec<Histogram<u64>> = (0..interval_count)
            .map(|_| {
                Histogram::new_with_bounds(1, latency_max_micros, 3)
                    .expect("histogram bounds of at least 1..2 are valid")
            })
            .collect();
        let mut ok_counts = vec![0u64; interval_count];
        let mut max_indexes: Vec<Option<usize>> = vec![None; interval_count];
        for (index, sample) in samples.iter().enumerate() {
            // The last interval also takes the rest of the run past the last whole interval.
            let interval = ((sample.at_micros / interval_micros) as usize).min(interval_count - 1);
            latencies[interval].saturating_record(sample.latency_micros.max(1));
            if sample.ok {
                ok_counts[interval] += 1;
            }
            let slower = match max_indexes[interval] {
                Some(current) => sample.latency_micros > samples[current].latency_micros,
                None => true,
            };
            if slower {
                max_indexes[interval] = Some(index);
            }
        }

        let intervals = (0..interval_count)
            .map(|interval| {
                let start_micros = interval as u64 * interval_micros;
                let end_micros = if interval + 1 == interval_count {
                    run_micros
                } else {
                    start_micros + interval_micros
                };
                let histogram = &latencies[interval];
                let at = |quantile: f64| {
                    (!histogram.is_empty()).then(|| histogram.value_at_quantile(quantile))
                };
                IntervalStats {
                    start_micros,
                    width_micros: end_micros - start_micros,
                    ok_count: ok_counts[interval],
                    latency_p50_micros: at(0.50),
                    latency_p99_micros: at(0.99),
                    latency_max_index: max_indexes[interval],
                }
            })
            .collect();
        TimeSeries {
            run_micros,
            interval_micros,
            intervals,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.intervals
            .iter()
            .all(|stats| stats.latency_max_index.is_none())
    }
}

/// The indexes of the samples to draw, in order: at most `SCATTER_POINTS_MAX` of them. Every
/// interval's slowest sample is kept, so spikes show; then failed samples, all of them up to
/// `FAILED_POINTS_ALWAYS`, beyond that every k-th so they keep at least their share of the
/// scatter; then every k-th successful sample to fill the rest.
///
/// NB: failures are thinned too when there are many, so a run where everything fails still
/// renders a bounded file, and 1% of failures does not paint the whole panel red; the stride keeps
/// their spread over time visible and the legend gives their exact count.
pub(super) fn downsample(samples: &[Sample], series: &TimeSeries) -> Vec<usize> {
    let mut keep = vec![false; samples.len()];
    for index in series
        .intervals
        .iter()
        .filter_map(|stats| stats.latency_max_index)
    {
        keep[index] = true;
    }
    let budget = SCATTER_POINTS_MAX - series.intervals.len();
    let failed_count = samples.iter().filter(|sample| !sample.ok).count();
    let ok_count = samples.len() - failed_count;
    // Below `budget`, since the share is floored and `failed_count < samples.len()` when any
    // sample succeeded: successful samples always keep some of the budget.
    let failed_share =
        (failed_count as u128 * budget as u128 / samples.len().max(1) as u128) as usize;
    let failed_target = failed_count.min(failed_share.max(FAILED_POINTS_ALWAYS));
    let failed_stride = failed_count.div_ceil(failed_target.max(1)).max(1);
    let failed_kept = failed_count.div_ceil(failed_stride);
    assert!(failed_kept <= budget, "failures stay within the budget");
    if ok_count > 0 {
        assert!(failed_kept < budget, "successes keep part of the budget");
    }
    let ok_stride = ok_count.div_ceil(budget - failed_kept).max(1);

    let (mut failed_seen, mut ok_seen) = (0usize, 0usize);
    for (index, sample) in samples.iter().enumerate() {
        let (seen, stride) = if sample.ok {
            (&mut ok_seen, ok_stride)
        } else {
            (&mut failed_seen, failed_stride)
        };
        if seen.is_multiple_of(stride) {
            keep[index] = true;
        }
        *seen += 1;
    }

    let kept: Vec<usize> = (0..samples.len()).filter(|&index| keep[index]).collect();
    assert!(
        kept.len() <= SCATTER_POINTS_MAX,
        "scatter must stay within its limit"
    );
    kept
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `value`, or `value` itself where
/// that would overflow.
pub(super) fn nice_ceil(value: u64) -> u64 {
    let value = value.max(1);
    let mut magnitude: u64 = 1;
    loop {
        for multiplier in [1, 2, 5] {
            match magnitude.checked_mul(multiplier) {
                Some(candidate) if candidate >= value => return candidate,
                Some(_) => {}
                None => return value,
            }
        }
        match magnitude.checked_mul(10) {
            Some(next) => magnitude = next,
            None => return value,
        }
    }
}
