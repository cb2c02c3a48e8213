//! A self-contained SVG report of a load generator's run: latency over time on top, the latency
//! distribution below. The SVG is written by hand, so the report needs no plotting crate, and the
//! output depends only on the input: the same run always renders to the same bytes.
//!
//! ```text
//!  render_svg(title, samples, histogram)
//!    ├─ TimeSeries::from_samples ─► per interval: p50, p99, slowest sample, successes
//!    ├─ downsample               ─► at most SCATTER_POINTS_MAX samples to draw
//!    ├─ draw_time_panel          ─► scatter, failures, p50/p99 lines, throughput (right axis)
//!    └─ draw_distribution_panel  ─► latency by percentile on the 1/(1-p) axis, summary box
//!
//!  ┌───────────────────────── title ─────────────────────────┐
//!  │ Latency over time                         legend        │
//!  │ log latency ┤  · ·:·  ·  ·:· ·  ╱╲  ·    ├ ops/s        │
//!  │             └──────────── seconds ───────┘              │
//!  │ Latency distribution                      legend        │
//!  │ log latency ┤              ____/‾‾‾‾‾‾‾‾‾‾‾┤             │
//!  │             │   ___/‾‾‾‾‾‾      [summary] │             │
//!  │             └ 0%  90%  99%  99.9%  99.99% ┘             │
//!  └─────────────────────────────────────────────────────────┘
//! ```

use hdrhistogram::Histogram;

/// One completed operation, as the load generator records it.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When the operation completed, in microseconds since the run started.
    pub at_micros: u64,
    /// How long it took, in microseconds.
    pub latency_micros: u64,
    /// False if it failed (drawn in a different colour).
    pub ok: bool,
}

/// Renders a two-panel SVG: latency over time and the latency distribution.
///
/// The top panel draws `samples` (downsampled to at most 20,000 points, keeping the slowest
/// sample of every interval and every failure while there are few), the p50 and p99 latency of
/// every interval and the throughput of successful operations. The bottom panel draws `histogram` as the classic
/// HdrHistogram percentile plot. Either input may be empty: the panel then shows its axes and
/// "no samples".
pub fn render_svg(title: &str, samples: &[Sample], histogram: &Histogram<u64>) -> String {
    render_svg_with_bands(title, samples, histogram, &[])
}

/// A stretch of the run to shade behind the latency-over-time panel, such as a fault in force.
#[derive(Clone, Debug)]
pub struct Band {
    /// Its start, in microseconds since the run started.
    pub start_micros: u64,
    /// Its end, in microseconds since the run started (equal to the start for an instant).
    pub end_micros: u64,
    /// Its row: bands of one row share a colour and a lane label, so families of faults stay
    /// apart. Rows are drawn in order of first appearance.
    pub row: String,
}

/// [`render_svg`] with `bands` shaded behind the latency-over-time panel, one translucent lane
/// per distinct row, labelled on the right. An instant band is drawn as a thin line.
pub fn render_svg_with_bands(
    title: &str,
    samples: &[Sample],
    histogram: &Histogram<u64>,
    bands: &[Band],
) -> String {
    let mut series = TimeSeries::from_samples(samples);
    let band_end = bands.iter().map(|band| band.end_micros).max().unwrap_or(0);
    series.run_micros = series.run_micros.max(band_end);
    let mut svg = Svg::new(WIDTH, HEIGHT);
    draw_header(&mut svg, title, samples, &series);
    draw_bands(&mut svg, samples, &series, bands);
    draw_time_panel(&mut svg, samples, &series);
    draw_distribution_panel(&mut svg, histogram);
    svg.finish()
}

// ------------------------------------------------------------------------------------------------
// Layout and limits
// ------------------------------------------------------------------------------------------------

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 800.0;
const FONT_FAMILY: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

/// The plot area of the top panel, inside its axes.
const TIME_AREA: Area = Area {
    left: 90.0,
    top: 88.0,
    width: 810.0,
    height: 280.0,
};

/// The plot area of the bottom panel, inside its axes.
const DISTRIBUTION_AREA: Area = Area {
    left: 90.0,
    top: 462.0,
    width: 810.0,
    height: 268.0,
};

/// The most samples drawn in the scatter. Beyond a few tens of thousands of points a scatter is a
/// solid smear that only makes the file large and slow to open.
const SCATTER_POINTS_MAX: usize = 20_000;

/// Failed samples are all drawn up to this many, so rare failures never vanish in sampling;
/// beyond it they are drawn in proportion to their share of the run.
const FAILED_POINTS_ALWAYS: usize = 1_000;

/// The number of intervals the run is cut into, at most. Intervals are rounded up to a 1, 2 or 5
/// step (100 ms, 200 ms, 1 s, ...), so a long run has between 40 and 100 of them.
const INTERVALS_MAX: u64 = 100;

/// Fewer intervals for a sparse run, so each holds about this many samples on average: with
/// fewer, percentiles and throughput per interval are mostly noise.
const SAMPLES_PER_INTERVAL_MIN: u64 = 20;

/// The shortest time axis, so that a run whose samples all complete at once still has a width.
const RUN_MICROS_MIN: u64 = 1_000;

/// The time axis when there are no samples.
const RUN_MICROS_EMPTY: u64 = 10_000_000;

/// The latency axis when there is nothing to draw: 100 µs to 100 ms.
const LATENCY_DEFAULT_MICROS: (u64, u64) = (100, 100_000);

/// The percentile axis runs to at least 99.999% and at most 99.99999%, further only when the
/// histogram holds enough values to say something about that tail.
const NINES_MIN: u32 = 5;
const NINES_MAX: u32 = 7;

/// `iter_quantiles(1)` gives one point per halving of the distance to 100%, about three per
/// decade of the 1/(1-p) axis; five gives a smooth curve and still only ~100 points for 10^6
/// values.
const QUANTILE_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The longest title drawn, in characters; longer ones are cut so they stay on the page.
const TITLE_CHARACTERS_MAX: usize = 90;

const COLOUR_TEXT: &str = "#222222";
const COLOUR_MUTED: &str = "#6b6b6b";
const COLOUR_AXIS: &str = "#444444";
const COLOUR_GRID: &str = "#e3e3e3";
const COLOUR_GRID_MINOR: &str = "#f1f1f1";
const COLOUR_OK: &str = "#4c78a8";
const COLOUR_FAILED: &str = "#d62728";
const COLOUR_P50: &str = "#2a9d3a";
const COLOUR_P99: &str = "#ff7f0e";
const COLOUR_THROUGHPUT: &str = "#8e5ea2";
const COLOUR_DISTRIBUTION: &str = "#1f5f9f";

const RADIUS_OK: f64 = 1.6;
const RADIUS_FAILED: f64 = 2.8;

/// A rectangle on the page, in pixels.
#[derive(Clone, Copy, Debug)]
struct Area {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

impl Area {
    fn right(&self) -> f64 {
        self.left + self.width
    }

    fn bottom(&self) -> f64 {
        self.top + self.height
    }

    fn centre_x(&self) -> f64 {
        self.left + self.width / 2.0
    }

    fn centre_y(&self) -> f64 {
        self.top + self.height / 2.0
    }
}

// ------------------------------------------------------------------------------------------------
// Scales
// ------------------------------------------------------------------------------------------------

/// Maps a domain interval linearly onto a pixel interval, clamping values outside the domain to
/// its ends so nothing is drawn outside the plot area.
#[derive(Clone, Copy, Debug)]
struct LinearScale {
    domain_min: f64,
    domain_max: f64,
    pixel_min: f64,
    pixel_max: f64,
}

impl LinearScale {
    fn new(domain_min: f64, domain_max: f64, pixel_min: f64, pixel_max: f64) -> LinearScale {
        assert!(domain_min.is_finite(), "scale domain must be finite");
        assert!(domain_max.is_finite(), "scale domain must be finite");
        assert!(domain_max > domain_min, "scale domain must not be empty");
        LinearScale {
            domain_min,
            domain_max,
            pixel_min,
            pixel_max,
        }
    }

    fn pixel(&self, value: f64) -> f64 {
        assert!(value.is_finite(), "scaled value must be finite");
        let fraction =
            (value.clamp(self.domain_min, self.domain_max) - self.domain_min) / self.domain_span();
        self.pixel_min + fraction * (self.pixel_max - self.pixel_min)
    }

    /// The domain value drawn at `pixel`, clamped to the domain: the inverse of `pixel`.
    fn domain_value(&self, pixel: f64) -> f64 {
        assert!(pixel.is_finite(), "pixel must be finite");
        assert!(
            self.pixel_max != self.pixel_min,
            "pixel range must not be empty"
        );
        let fraction = (pixel - self.pixel_min) / (self.pixel_max - self.pixel_min);
        (self.domain_min + fraction * self.domain_span()).clamp(self.domain_min, self.domain_max)
    }

    fn domain_span(&self) -> f64 {
        self.domain_max - self.domain_min
    }
}

/// A latency axis on a log scale over whole decades, from 10^`decade_min` to 10^`decade_max` µs.
#[derive(Clone, Copy, Debug)]
struct LogScale {
    decade_min: u32,
    decade_max: u32,
    linear: LinearScale,
}

impl LogScale {
    /// The smallest run of whole decades holding `micros_min..=micros_max`, drawn from the bottom
    /// of `area` to its top. A latency of 0 is drawn as 1 µs, the lowest a log scale can show.
    fn covering(micros_min: u64, micros_max: u64, area: Area) -> LogScale {
        assert!(
            micros_min <= micros_max,
            "latency range must not be inverted"
        );
        let decade_min = decade_floor(micros_min);
        let decade_max = decade_ceil(micros_max).max(decade_min + 1);
        let linear = LinearScale::new(
            f64::from(decade_min),
            f64::from(decade_max),
            area.bottom(),
            area.top,
        );
        LogScale {
            decade_min,
            decade_max,
            linear,
        }
    }

    fn pixel(&self, micros: f64) -> f64 {
        self.linear.pixel(micros.max(1.0).log10())
    }
}

/// The percentile axis: position is the number of nines, log10(1/(1-p)), so 90% is 1, 99% is 2.
#[derive(Clone, Copy, Debug)]
struct PercentileScale {
    nines_max: u32,
    linear: LinearScale,
}

impl PercentileScale {
    fn new(nines_max: u32, area: Area) -> PercentileScale {
        assert!(nines_max > 0, "percentile axis needs at least one nine");
        let linear = LinearScale::new(0.0, f64::from(nines_max), area.left, area.right());
        PercentileScale { nines_max, linear }
    }

    fn pixel(&self, quantile: f64) -> f64 {
        self.linear.pixel(nines_of(quantile, self.nines_max))
    }

    /// The quantile drawn at pixel `x`, the inverse of `pixel`.
    fn quantile(&self, x: f64) -> f64 {
        let nines = self.linear.domain_value(x);
        1.0 - 10f64.powf(-nines)
    }
}

/// log10(1/(1-`quantile`)), capped at `nines_max` so that quantile 1 (the maximum) lands on the
/// right edge instead of at infinity.
fn nines_of(quantile: f64, nines_max: u32) -> f64 {
    let remaining = 1.0 - quantile.clamp(0.0, 1.0);
    let remaining_min = 10f64.powi(-(nines_max as i32));
    if remaining <= remaining_min {
        return f64::from(nines_max);
    }
    let nines = -remaining.log10();
    assert!(
        nines.is_finite(),
        "nines of a quantile below the cap must be finite"
    );
    nines.clamp(0.0, f64::from(nines_max))
}

/// The exponent of the largest power of ten at most `value` (0 for 0 and 1).
fn decade_floor(value: u64) -> u32 {
    let mut remaining = value.max(1);
    let mut decade = 0;
    while remaining >= 10 {
        remaining /= 10;
        decade += 1;
    }
    decade
}

/// The exponent of the smallest power of ten at least `value` (0 for 0 and 1).
fn decade_ceil(value: u64) -> u32 {
    let decade = decade_floor(value);
    if 10u64.checked_pow(decade) == Some(value.max(1)) {
        decade
    } else {
        decade + 1
    }
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `value`, or `value` itself where
/// that would overflow.
fn nice_ceil(value: u64) -> u64 {
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

/// The smallest 1, 2 or 5 times a power of ten that is at least `value`, for positive `value`.
fn nice_ceil_f64(value: f64) -> f64 {
    assert!(value.is_finite(), "nice step of a finite value");
    assert!(value > 0.0, "nice step of a positive value");
    let magnitude = 10f64.powi(value.log10().floor() as i32);
    for multiplier in [1.0, 2.0, 5.0] {
        // Allow for rounding in log10 so that exactly 2000 stays 2000.
        if multiplier * magnitude >= value * (1.0 - 1e-9) {
            return multiplier * magnitude;
        }
    }
    10.0 * magnitude
}

// ------------------------------------------------------------------------------------------------
// Data: per-interval statistics and downsampling
// ------------------------------------------------------------------------------------------------

/// Statistics of one interval of the run.
#[derive(Clone, Debug)]
struct IntervalStats {
    start_micros: u64,
    /// Between half and one and a half intervals for the last one, which ends with the run.
    width_micros: u64,
    /// Successful operations, for throughput.
    ok_count: u64,
    /// Over all operations, failed ones included: a timeout is latency the client saw.
    latency_p50_micros: Option<u64>,
    latency_p99_micros: Option<u64>,
    /// The index in `samples` of the slowest operation, kept by downsampling so spikes show.
    latency_max_index: Option<usize>,
}

impl IntervalStats {
    fn middle_micros(&self) -> f64 {
        self.start_micros as f64 + self.width_micros as f64 / 2.0
    }

    fn throughput_per_second(&self) -> f64 {
        assert!(self.width_micros > 0, "interval must have a width");
        self.ok_count as f64 * 1_000_000.0 / self.width_micros as f64
    }
}

/// The run cut into intervals.
#[derive(Clone, Debug)]
struct TimeSeries {
    /// Invariant: every sample completed before `run_micros`, and it is at least `RUN_MICROS_MIN`.
    run_micros: u64,
    interval_micros: u64,
    intervals: Vec<IntervalStats>,
}

impl TimeSeries {
    fn from_samples(samples: &[Sample]) -> TimeSeries {
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

        let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); interval_count];
        let mut ok_counts = vec![0u64; interval_count];
        let mut max_indexes: Vec<Option<usize>> = vec![None; interval_count];
        for (index, sample) in samples.iter().enumerate() {
            // The last interval also takes the rest of the run past the last whole interval.
            let interval = ((sample.at_micros / interval_micros) as usize).min(interval_count - 1);
            latencies[interval].push(sample.latency_micros);
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
                let sorted = &mut latencies[interval];
                sorted.sort_unstable();
                IntervalStats {
                    start_micros,
                    width_micros: end_micros - start_micros,
                    ok_count: ok_counts[interval],
                    latency_p50_micros: percentile_of_sorted(sorted, 0.50),
                    latency_p99_micros: percentile_of_sorted(sorted, 0.99),
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

    fn is_empty(&self) -> bool {
        self.intervals
            .iter()
            .all(|stats| stats.latency_max_index.is_none())
    }
}

/// The nearest-rank `quantile` of `sorted`, or `None` when it is empty.
fn percentile_of_sorted(sorted: &[u64], quantile: f64) -> Option<u64> {
    assert!(
        (0.0..=1.0).contains(&quantile),
        "quantile must be in [0, 1]"
    );
    if sorted.is_empty() {
        return None;
    }
    let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The indexes of the samples to draw, in order: at most `SCATTER_POINTS_MAX` of them. Every
/// interval's slowest sample is kept, so spikes show; then failed samples, all of them up to
/// `FAILED_POINTS_ALWAYS`, beyond that every k-th so they keep at least their share of the
/// scatter; then every k-th successful sample to fill the rest.
///
/// NB: failures are thinned too when there are many, so a run where everything fails still
/// renders a bounded file, and 1% of failures does not paint the whole panel red; the stride keeps
/// their spread over time visible and the legend gives their exact count.
fn downsample(samples: &[Sample], series: &TimeSeries) -> Vec<usize> {
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

// ------------------------------------------------------------------------------------------------
// SVG writing
// ------------------------------------------------------------------------------------------------

/// Where a text's `x` is.
#[derive(Clone, Copy, Debug)]
enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn attribute(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// How a text looks.
#[derive(Clone, Copy, Debug)]
struct TextStyle {
    size: f64,
    colour: &'static str,
    bold: bool,
}

const STYLE_TITLE: TextStyle = TextStyle {
    size: 20.0,
    colour: COLOUR_TEXT,
    bold: true,
};
const STYLE_PANEL_TITLE: TextStyle = TextStyle {
    size: 15.0,
    colour: COLOUR_TEXT,
    bold: true,
};
const STYLE_LABEL: TextStyle = TextStyle {
    size: 13.0,
    colour: COLOUR_TEXT,
    bold: false,
};
const STYLE_TICK: TextStyle = TextStyle {
    size: 12.0,
    colour: COLOUR_AXIS,
    bold: false,
};
const STYLE_NOTE: TextStyle = TextStyle {
    size: 12.0,
    colour: COLOUR_MUTED,
    bold: false,
};
const STYLE_EMPTY: TextStyle = TextStyle {
    size: 16.0,
    colour: COLOUR_MUTED,
    bold: false,
};

/// A stroke: colour, width and an optional dash pattern.
#[derive(Clone, Copy, Debug)]
struct Stroke {
    colour: &'static str,
    width: f64,
    dash: Option<&'static str>,
}

impl Stroke {
    const fn solid(colour: &'static str, width: f64) -> Stroke {
        Stroke {
            colour,
            width,
            dash: None,
        }
    }

    fn attributes(&self) -> String {
        let dash = match self.dash {
            Some(pattern) => format!(r#" stroke-dasharray="{pattern}""#),
            None => String::new(),
        };
        format!(
            r#"stroke="{}" stroke-width="{}"{dash}"#,
            self.colour, self.width
        )
    }
}

const STROKE_AXIS: Stroke = Stroke::solid(COLOUR_AXIS, 1.0);
const STROKE_GRID: Stroke = Stroke::solid(COLOUR_GRID, 1.0);
const STROKE_GRID_MINOR: Stroke = Stroke::solid(COLOUR_GRID_MINOR, 1.0);
const STROKE_P50: Stroke = Stroke::solid(COLOUR_P50, 2.0);
const STROKE_P99: Stroke = Stroke::solid(COLOUR_P99, 2.0);
const STROKE_THROUGHPUT: Stroke = Stroke {
    colour: COLOUR_THROUGHPUT,
    width: 1.6,
    dash: Some("6 3"),
};
const STROKE_DISTRIBUTION: Stroke = Stroke::solid(COLOUR_DISTRIBUTION, 2.4);

/// An SVG document being written. Coordinates are printed with one decimal, which is finer than
/// a pixel and keeps the file small.
struct Svg {
    text: String,
}

impl Svg {
    fn new(width: f64, height: f64) -> Svg {
        let mut text = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT_FAMILY}">"#
        );
        text.push('\n');
        text.push_str(&format!(
            r#"<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#
        ));
        text.push('\n');
        Svg { text }
    }

    fn line(&mut self, from: (f64, f64), to: (f64, f64), stroke: Stroke) {
        self.text.push_str(&format!(
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" {}/>"#,
            from.0,
            from.1,
            to.0,
            to.1,
            stroke.attributes()
        ));
        self.text.push('\n');
    }

    fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke) {
        let coordinates: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        self.text.push_str(&format!(
            r#"<polyline points="{}" fill="none" stroke-linejoin="round" {}/>"#,
            coordinates.join(" "),
            stroke.attributes()
        ));
        self.text.push('\n');
    }

    /// A circle inheriting its fill from the enclosing group.
    fn circle(&mut self, centre: (f64, f64), radius: f64) {
        self.text.push_str(&format!(
            r#"<circle cx="{:.1}" cy="{:.1}" r="{radius}"/>"#,
            centre.0, centre.1
        ));
        self.text.push('\n');
    }

    fn rect(&mut self, area: Area, fill: &str, stroke: Stroke) {
        self.text.push_str(&format!(
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}" {}/>"#,
            area.left,
            area.top,
            area.width,
            area.height,
            stroke.attributes()
        ));
        self.text.push('\n');
    }

    /// `content` is escaped here, so any string may be passed.
    fn text(&mut self, at: (f64, f64), anchor: Anchor, style: TextStyle, content: &str) {
        self.text_rotated(at, anchor, style, 0, content);
    }

    fn text_rotated(
        &mut self,
        at: (f64, f64),
        anchor: Anchor,
        style: TextStyle,
        degrees: i32,
        content: &str,
    ) {
        let rotate = if degrees == 0 {
            String::new()
        } else {
            format!(r#" transform="rotate({degrees} {:.1} {:.1})""#, at.0, at.1)
        };
        let weight = if style.bold {
            r#" font-weight="bold""#
        } else {
            ""
        };
        self.text.push_str(&format!(
            r#"<text x="{:.1}" y="{:.1}" font-size="{}" fill="{}" text-anchor="{}"{weight}{rotate}>{}</text>"#,
            at.0,
            at.1,
            style.size,
            style.colour,
            anchor.attribute(),
            escape_xml(content)
        ));
        self.text.push('\n');
    }

    /// Opens a group whose children share `attributes`; close it with `close_group`.
    fn open_group(&mut self, attributes: &str) {
        self.text.push_str(&format!("<g {attributes}>\n"));
    }

    fn close_group(&mut self) {
        self.text.push_str("</g>\n");
    }

    fn finish(mut self) -> String {
        self.text.push_str("</svg>\n");
        self.text
    }
}

/// `text` made safe for XML character data and attribute values. Characters XML 1.0 forbids
/// (control characters other than tab, newline and carriage return) become U+FFFD.
fn escape_xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(character),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => escaped.push('\u{fffd}'),
            _ => escaped.push(character),
        }
    }
    escaped
}

// ------------------------------------------------------------------------------------------------
// Number formatting
// ------------------------------------------------------------------------------------------------

/// `value` with at most three significant digits and no trailing zeros: 1.23, 12.3, 123, 2.
fn format_significant(value: f64) -> String {
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// `value` rounded to three significant digits, so that 999.7 is labelled 1 ms, not 1000 µs.
fn round_significant(value: f64) -> f64 {
    if value <= 0.0 {
        return 0.0;
    }
    let magnitude = 10f64.powi(value.log10().floor() as i32 - 2);
    (value / magnitude).round() * magnitude
}

/// A latency with its unit: "100 µs", "1.5 ms", "10 s".
fn format_micros(micros: f64) -> String {
    let micros = round_significant(micros);
    if micros < 1_000.0 {
        format!("{} µs", format_significant(micros))
    } else if micros < 1_000_000.0 {
        format!("{} ms", format_significant(micros / 1_000.0))
    } else {
        format!("{} s", format_significant(micros / 1_000_000.0))
    }
}

/// A rate for the throughput axis: "800", "1.2k", "3M".
fn format_rate(per_second: f64) -> String {
    let per_second = round_significant(per_second);
    if per_second < 1_000.0 {
        format_significant(per_second)
    } else if per_second < 1_000_000.0 {
        format!("{}k", format_significant(per_second / 1_000.0))
    } else {
        format!("{}M", format_significant(per_second / 1_000_000.0))
    }
}

/// A count with thousands separators: 1,234,567.
fn format_count(count: u64) -> String {
    let digits = count.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// A time-axis label in seconds, with as many decimals as `step_micros` needs.
fn format_seconds(micros: u64, step_micros: u64) -> String {
    let decimals = 6 - decade_floor(step_micros).min(6) as usize;
    format!("{:.decimals$}", micros as f64 / 1_000_000.0)
}

/// A duration for prose: "500 ms interval", "1 s interval".
fn format_duration(micros: u64) -> String {
    format_micros(micros as f64)
}

/// The percentile `nines` nines deep: 0%, 90%, 99%, 99.9%, ...
fn percentile_label(nines: u32) -> String {
    match nines {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        2 => "99%".to_string(),
        deeper => format!("99.{}%", "9".repeat(deeper as usize - 2)),
    }
}

// ------------------------------------------------------------------------------------------------
// Axes, legend and shared pieces
// ------------------------------------------------------------------------------------------------

/// A latency axis on the left of `area`: grid lines at every decade (labelled) and at 2× and 5×
/// (labelled too when the axis spans two decades or fewer, so it never has only two labels).
fn draw_latency_axis(svg: &mut Svg, area: Area, scale: &LogScale) {
    let label_minor = scale.decade_max - scale.decade_min <= 2;
    for decade in scale.decade_min..=scale.decade_max {
        let power = 10f64.powi(decade as i32);
        let y = scale.pixel(power);
        svg.line((area.left, y), (area.right(), y), STROKE_GRID);
        svg.line((area.left - 5.0, y), (area.left, y), STROKE_AXIS);
        let label_at = (area.left - 8.0, y + 4.0);
        svg.text(label_at, Anchor::End, STYLE_TICK, &format_micros(power));
        if decade == scale.decade_max {
            continue;
        }
        for multiplier in [2.0, 5.0] {
            let y = scale.pixel(power * multiplier);
            svg.line((area.left, y), (area.right(), y), STROKE_GRID_MINOR);
            if label_minor {
                let label_at = (area.left - 8.0, y + 4.0);
                let label = format_micros(power * multiplier);
                svg.text(label_at, Anchor::End, STYLE_NOTE, &label);
            }
        }
    }
    let label_at = (area.left - 70.0, area.centre_y());
    let label = "latency (log scale)";
    svg.text_rotated(label_at, Anchor::Middle, STYLE_LABEL, -90, label);
}

/// The frame around a plot area, drawn last so it sits on top of grid lines.
fn draw_frame(svg: &mut Svg, area: Area) {
    svg.rect(area, "none", STROKE_AXIS);
}

/// "no samples", in the middle of `area`.
fn draw_empty_message(svg: &mut Svg, area: Area) {
    let at = (area.centre_x(), area.centre_y());
    svg.text(at, Anchor::Middle, STYLE_EMPTY, "no samples");
}

/// What a legend entry shows next to its label.
#[derive(Clone, Copy, Debug)]
enum Swatch {
    Dot { colour: &'static str, radius: f64 },
    Line(Stroke),
}

/// One legend entry.
#[derive(Clone, Debug)]
struct LegendItem {
    swatch: Swatch,
    label: String,
}

/// A legend on one row, its right end at `right`, its baseline at `baseline`. Text widths are
/// estimated from the character count so the layout is deterministic without font metrics.
fn draw_legend(svg: &mut Svg, right: f64, baseline: f64, items: &[LegendItem]) {
    const SWATCH_WIDTH: f64 = 22.0;
    const GAP_WIDTH: f64 = 18.0;
    const CHARACTER_WIDTH: f64 = 6.6;
    let widths: Vec<f64> = items
        .iter()
        .map(|item| SWATCH_WIDTH + item.label.chars().count() as f64 * CHARACTER_WIDTH)
        .collect();
    let total = widths.iter().sum::<f64>() + GAP_WIDTH * items.len().saturating_sub(1) as f64;
    let mut x = right - total;
    let middle = baseline - 4.0;
    for (item, width) in items.iter().zip(&widths) {
        match item.swatch {
            Swatch::Dot { colour, radius } => {
                svg.open_group(&format!(r#"fill="{colour}""#));
                svg.circle((x + 8.0, middle), radius + 1.0);
                svg.close_group();
            }
            Swatch::Line(stroke) => svg.line((x, middle), (x + 16.0, middle), stroke),
        }
        svg.text(
            (x + SWATCH_WIDTH, baseline),
            Anchor::Start,
            STYLE_LABEL,
            &item.label,
        );
        x += width + GAP_WIDTH;
    }
}

// ------------------------------------------------------------------------------------------------
// The page header
// ------------------------------------------------------------------------------------------------

fn draw_header(svg: &mut Svg, title: &str, samples: &[Sample], series: &TimeSeries) {
    let title: String = if title.chars().count() > TITLE_CHARACTERS_MAX {
        let mut cut: String = title.chars().take(TITLE_CHARACTERS_MAX - 1).collect();
        cut.push('…');
        cut
    } else {
        title.to_string()
    };
    svg.text((WIDTH / 2.0, 30.0), Anchor::Middle, STYLE_TITLE, &title);

    let failed_count = samples.iter().filter(|sample| !sample.ok).count() as u64;
    let subtitle = if samples.is_empty() {
        "no operations recorded".to_string()
    } else {
        format!(
            "{} operations over {} s, {} failed",
            format_count(samples.len() as u64),
            format_significant(series.run_micros as f64 / 1_000_000.0),
            format_count(failed_count)
        )
    };
    svg.text((WIDTH / 2.0, 50.0), Anchor::Middle, STYLE_NOTE, &subtitle);
}

// ------------------------------------------------------------------------------------------------
// Panel 1: latency over time
// ------------------------------------------------------------------------------------------------

/// The scales of the top panel.
#[derive(Clone, Copy, Debug)]
struct TimeScales {
    time: LinearScale,
    latency: LogScale,
    throughput: LinearScale,
    /// The step of the throughput axis, in operations per second.
    throughput_step: f64,
}

impl TimeScales {
    fn new(samples: &[Sample], series: &TimeSeries, area: Area) -> TimeScales {
        let time = LinearScale::new(0.0, series.run_micros as f64, area.left, area.right());
        let latencies = samples.iter().map(|sample| sample.latency_micros);
        let (latency_min, latency_max) = match (latencies.clone().min(), latencies.max()) {
            (Some(min), Some(max)) => (min, max),
            _ => LATENCY_DEFAULT_MICROS,
        };
        let latency = LogScale::covering(latency_min, latency_max, area);

        let throughput_max = series
            .intervals
            .iter()
            .map(IntervalStats::throughput_per_second)
            .fold(0.0, f64::max);
        // About five steps of 1, 2 or 5, the top rounded up to a whole step.
        let throughput_step = nice_ceil_f64((throughput_max / 5.0).max(1.0));
        let throughput_top = ((throughput_max / throughput_step).ceil()).max(1.0) * throughput_step;
        let throughput = LinearScale::new(0.0, throughput_top, area.bottom(), area.top);
        TimeScales {
            time,
            latency,
            throughput,
            throughput_step,
        }
    }

    fn point(&self, sample: &Sample) -> (f64, f64) {
        (
            self.time.pixel(sample.at_micros as f64),
            self.latency.pixel(sample.latency_micros as f64),
        )
    }
}

fn draw_time_panel(svg: &mut Svg, samples: &[Sample], series: &TimeSeries) {
    let area = TIME_AREA;
    let scales = TimeScales::new(samples, series, area);
    let failed_count = samples.iter().filter(|sample| !sample.ok).count() as u64;
    let title_at = (area.left, area.top - 14.0);
    svg.text(
        title_at,
        Anchor::Start,
        STYLE_PANEL_TITLE,
        "Latency over time",
    );
    draw_time_legend(svg, area, failed_count);

    draw_latency_axis(svg, area, &scales.latency);
    draw_time_axis(svg, area, series, &scales.time);
    draw_throughput_axis(svg, area, &scales);
    if samples.is_empty() {
        draw_empty_message(svg, area);
    } else {
        draw_scatter(svg, samples, &downsample(samples, series), &scales);
        draw_throughput_line(svg, series, &scales);
        let p50 = |stats: &IntervalStats| stats.latency_p50_micros;
        let p99 = |stats: &IntervalStats| stats.latency_p99_micros;
        draw_interval_line(svg, series, &scales, p50, STROKE_P50);
        draw_interval_line(svg, series, &scales, p99, STROKE_P99);
    }
    draw_frame(svg, area);
}

/// The band colours, cycled through by row.
const BAND_COLOURS: [&str; 7] = [
    "#e45756", "#f58518", "#54a24b", "#b279a2", "#9d755d", "#4c78a8", "#72b7b2",
];
const BAND_OPACITY: f64 = 0.16;
/// The narrowest band drawn, in pixels, so an instant stays visible.
const BAND_WIDTH_MIN: f64 = 1.5;

/// Shades every band in its row's lane of the time panel: the panel's height is split evenly
/// between the rows.
fn draw_bands(svg: &mut Svg, samples: &[Sample], series: &TimeSeries, bands: &[Band]) {
    if bands.is_empty() {
        return;
    }
    let area = TIME_AREA;
    let scales = TimeScales::new(samples, series, area);
    let mut rows: Vec<&str> = Vec::new();
    for band in bands {
        if !rows.contains(&band.row.as_str()) {
            rows.push(&band.row);
        }
    }
    let lane_height = area.height / rows.len() as f64;
    for (index, row) in rows.iter().enumerate() {
        let colour = BAND_COLOURS[index % BAND_COLOURS.len()];
        let top = area.top + lane_height * index as f64;
        svg.open_group(&format!(
            r#"class="band" fill="{colour}" fill-opacity="{BAND_OPACITY}""#
        ));
        for band in bands.iter().filter(|band| band.row == *row) {
            let left = scales.time.pixel(band.start_micros as f64).max(area.left);
            let right = scales.time.pixel(band.end_micros as f64).min(area.right());
            let width = (right - left).max(BAND_WIDTH_MIN);
            svg.text.push_str(&format!(
                r#"<rect x="{left:.1}" y="{top:.1}" width="{width:.1}" height="{lane_height:.1}"/>"#
            ));
            svg.text.push('\n');
        }
        svg.close_group();
        svg.text(
            (area.left + 4.0, top + 12.0),
            Anchor::Start,
            TextStyle {
                colour,
                ..STYLE_TICK
            },
            row,
        );
    }
}

fn draw_time_legend(svg: &mut Svg, area: Area, failed_count: u64) {
    let items = [
        LegendItem {
            swatch: Swatch::Dot {
                colour: COLOUR_OK,
                radius: RADIUS_OK,
            },
            label: "ok".to_string(),
        },
        LegendItem {
            swatch: Swatch::Dot {
                colour: COLOUR_FAILED,
                radius: RADIUS_FAILED,
            },
            label: format!("failed ({})", format_count(failed_count)),
        },
        LegendItem {
            swatch: Swatch::Line(STROKE_P50),
            label: "p50".to_string(),
        },
        LegendItem {
            swatch: Swatch::Line(STROKE_P99),
            label: "p99".to_string(),
        },
        LegendItem {
            swatch: Swatch::Line(STROKE_THROUGHPUT),
            label: "throughput (right axis)".to_string(),
        },
    ];
    draw_legend(svg, area.right(), area.top - 14.0, &items);
}

/// Seconds since the start along the bottom of `area`, with about ten labelled ticks.
fn draw_time_axis(svg: &mut Svg, area: Area, series: &TimeSeries, scale: &LinearScale) {
    let step_micros = nice_ceil(series.run_micros.div_ceil(10));
    let mut tick_micros: u64 = 0;
    while tick_micros <= series.run_micros {
        let x = scale.pixel(tick_micros as f64);
        svg.line((x, area.top), (x, area.bottom()), STROKE_GRID);
        svg.line((x, area.bottom()), (x, area.bottom() + 5.0), STROKE_AXIS);
        let label = format_seconds(tick_micros, step_micros);
        svg.text(
            (x, area.bottom() + 19.0),
            Anchor::Middle,
            STYLE_TICK,
            &label,
        );
        match tick_micros.checked_add(step_micros) {
            Some(next) => tick_micros = next,
            None => break,
        }
    }
    let label = if series.is_empty() {
        "time since start (s)".to_string()
    } else {
        format!(
            "time since start (s); p50, p99 and throughput per {} interval",
            format_duration(series.interval_micros)
        )
    };
    let label_at = (area.centre_x(), area.bottom() + 40.0);
    svg.text(label_at, Anchor::Middle, STYLE_LABEL, &label);
}

/// Successful operations per second on the right of `area`.
fn draw_throughput_axis(svg: &mut Svg, area: Area, scales: &TimeScales) {
    let step = scales.throughput_step;
    let steps = (scales.throughput.domain_span() / step).round() as u64;
    for index in 0..=steps {
        let value = index as f64 * step;
        let y = scales.throughput.pixel(value);
        svg.line((area.right(), y), (area.right() + 5.0, y), STROKE_AXIS);
        let label_at = (area.right() + 8.0, y + 4.0);
        let style = TextStyle {
            colour: COLOUR_THROUGHPUT,
            ..STYLE_TICK
        };
        svg.text(label_at, Anchor::Start, style, &format_rate(value));
    }
    let label_at = (area.right() + 62.0, area.centre_y());
    let style = TextStyle {
        colour: COLOUR_THROUGHPUT,
        ..STYLE_LABEL
    };
    let label = "throughput (successful ops/s)";
    svg.text_rotated(label_at, Anchor::Middle, style, 90, label);
}

/// The kept samples as dots: successful ones translucent (more so when dense, so overlaps show
/// as darker regions), failed ones red and on top.
fn draw_scatter(svg: &mut Svg, samples: &[Sample], kept: &[usize], scales: &TimeScales) {
    let ok_opacity = if kept.len() > 2_000 { 0.35 } else { 0.7 };
    svg.open_group(&format!(
        r#"class="ok" fill="{COLOUR_OK}" fill-opacity="{ok_opacity}""#
    ));
    for sample in kept.iter().map(|&index| &samples[index]) {
        if sample.ok {
            svg.circle(scales.point(sample), RADIUS_OK);
        }
    }
    svg.close_group();
    svg.open_group(&format!(
        r#"class="failed" fill="{COLOUR_FAILED}" fill-opacity="0.85""#
    ));
    for sample in kept.iter().map(|&index| &samples[index]) {
        if !sample.ok {
            svg.circle(scales.point(sample), RADIUS_FAILED);
        }
    }
    svg.close_group();
}

/// A per-interval latency through the middle of each interval, broken where an interval has no
/// samples; an isolated interval is drawn as a flat segment across its width.
fn draw_interval_line(
    svg: &mut Svg,
    series: &TimeSeries,
    scales: &TimeScales,
    latency_of: impl Fn(&IntervalStats) -> Option<u64>,
    stroke: Stroke,
) {
    let mut segment: Vec<(f64, f64)> = Vec::new();
    let mut segment_first: Option<&IntervalStats> = None;
    let mut flush = |segment: &mut Vec<(f64, f64)>, first: Option<&IntervalStats>| {
        match (segment.len(), first) {
            (0, _) => {}
            (1, Some(stats)) => {
                let left = scales.time.pixel(stats.start_micros as f64);
                let end = stats.start_micros.saturating_add(stats.width_micros);
                let right = scales.time.pixel(end as f64);
                svg.line((left, segment[0].1), (right, segment[0].1), stroke);
            }
            _ => svg.polyline(segment, stroke),
        }
        segment.clear();
    };
    for stats in &series.intervals {
        match latency_of(stats) {
            Some(micros) => {
                if segment.is_empty() {
                    segment_first = Some(stats);
                }
                let x = scales.time.pixel(stats.middle_micros());
                segment.push((x, scales.latency.pixel(micros as f64)));
            }
            None => flush(&mut segment, segment_first),
        }
    }
    flush(&mut segment, segment_first);
}

fn draw_throughput_line(svg: &mut Svg, series: &TimeSeries, scales: &TimeScales) {
    let points: Vec<(f64, f64)> = series
        .intervals
        .iter()
        .map(|stats| {
            let x = scales.time.pixel(stats.middle_micros());
            (x, scales.throughput.pixel(stats.throughput_per_second()))
        })
        .collect();
    if points.len() >= 2 {
        svg.polyline(&points, STROKE_THROUGHPUT);
    }
}

// ------------------------------------------------------------------------------------------------
// Panel 2: latency distribution
// ------------------------------------------------------------------------------------------------

fn draw_distribution_panel(svg: &mut Svg, histogram: &Histogram<u64>) {
    let area = DISTRIBUTION_AREA;
    let title_at = (area.left, area.top - 14.0);
    svg.text(
        title_at,
        Anchor::Start,
        STYLE_PANEL_TITLE,
        "Latency distribution",
    );
    let legend = [LegendItem {
        swatch: Swatch::Line(STROKE_DISTRIBUTION),
        label: "latency at percentile (all recorded operations)".to_string(),
    }];
    draw_legend(svg, area.right(), area.top - 14.0, &legend);

    let nines_max = decade_ceil(histogram.len()).clamp(NINES_MIN, NINES_MAX);
    let percentile = PercentileScale::new(nines_max, area);
    let (latency_min, latency_max) = if histogram.is_empty() {
        LATENCY_DEFAULT_MICROS
    } else {
        (histogram.min(), histogram.max().max(histogram.min()))
    };
    let latency = LogScale::covering(latency_min, latency_max, area);

    draw_latency_axis(svg, area, &latency);
    draw_percentile_axis(svg, area, &percentile);
    if histogram.is_empty() {
        draw_empty_message(svg, area);
    } else {
        draw_percentile_curve(svg, histogram, &percentile, &latency);
        draw_distribution_summary(svg, area, histogram, &percentile, &latency);
    }
    draw_frame(svg, area);
}

/// Ticks at 0%, 90%, 99%, ... along the bottom of `area`.
fn draw_percentile_axis(svg: &mut Svg, area: Area, scale: &PercentileScale) {
    for nines in 0..=scale.nines_max {
        let x = scale.linear.pixel(f64::from(nines));
        svg.line((x, area.top), (x, area.bottom()), STROKE_GRID);
        svg.line((x, area.bottom()), (x, area.bottom() + 5.0), STROKE_AXIS);
        let label = percentile_label(nines);
        svg.text(
            (x, area.bottom() + 19.0),
            Anchor::Middle,
            STYLE_TICK,
            &label,
        );
    }
    let label = "percentile (spaced by 1/(1−p): each step is ten times rarer)";
    let label_at = (area.centre_x(), area.bottom() + 40.0);
    svg.text(label_at, Anchor::Middle, STYLE_LABEL, label);
}

fn draw_percentile_curve(
    svg: &mut Svg,
    histogram: &Histogram<u64>,
    percentile: &PercentileScale,
    latency: &LogScale,
) {
    let mut points: Vec<(f64, f64)> = histogram
        .iter_quantiles(QUANTILE_TICKS_PER_HALF_DISTANCE)
        .map(|value| {
            (
                percentile.pixel(value.quantile_iterated_to()),
                latency.pixel(value.value_iterated_to() as f64),
            )
        })
        .collect();
    // Start at 0% so that a histogram of a single value still draws a line.
    if let Some(&(x, y)) = points.first() {
        let left = percentile.pixel(0.0);
        if x > left {
            points.insert(0, (left, y));
        }
    }
    if points.len() >= 2 {
        svg.polyline(&points, STROKE_DISTRIBUTION);
    }
}

/// The headline numbers in a box in a corner the curve does not cross.
fn draw_distribution_summary(
    svg: &mut Svg,
    area: Area,
    histogram: &Histogram<u64>,
    percentile: &PercentileScale,
    latency: &LogScale,
) {
    const LINE_HEIGHT: f64 = 17.0;
    const VALUE_OFFSET: f64 = 52.0;
    let mut rows = vec![("count", format_count(histogram.len()))];
    for (name, quantile) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
        let micros = histogram.value_at_quantile(quantile) as f64;
        rows.push((name, format_micros(micros)));
    }
    rows.push(("max", format_micros(histogram.max() as f64)));

    let box_size = (140.0, LINE_HEIGHT * rows.len() as f64 + 8.0);
    let box_area = summary_placement(area, box_size, histogram, percentile, latency);
    svg.open_group(r#"class="summary""#);
    svg.rect(box_area, "white", STROKE_GRID);
    for (index, (name, value)) in rows.iter().enumerate() {
        let baseline = box_area.top + LINE_HEIGHT * (index as f64 + 1.0);
        let name_at = (box_area.left + 10.0, baseline);
        svg.text(name_at, Anchor::Start, STYLE_NOTE, name);
        let value_at = (box_area.left + 10.0 + VALUE_OFFSET, baseline);
        svg.text(value_at, Anchor::Start, STYLE_LABEL, value);
    }
    svg.close_group();
}

/// Where the summary box goes: the bottom right if the curve passes above it, else the top left
/// if the curve passes below it (the curve only rises, so checking the box's near corner is
/// enough), else the bottom right over the curve, which hides part of a curve that spans most of
/// the panel's height within its first and last 150 pixels.
fn summary_placement(
    area: Area,
    size: (f64, f64),
    histogram: &Histogram<u64>,
    percentile: &PercentileScale,
    latency: &LogScale,
) -> Area {
    const MARGIN: f64 = 10.0;
    let curve_y_at =
        |x: f64| latency.pixel(histogram.value_at_quantile(percentile.quantile(x)) as f64);
    let bottom_right = Area {
        left: area.right() - MARGIN - size.0,
        top: area.bottom() - MARGIN - size.1,
        width: size.0,
        height: size.1,
    };
    if curve_y_at(bottom_right.left) < bottom_right.top - MARGIN {
        return bottom_right;
    }
    let top_left = Area {
        left: area.left + MARGIN,
        top: area.top + MARGIN,
        width: size.0,
        height: size.1,
    };
    if curve_y_at(top_left.right()) > top_left.bottom() + MARGIN {
        return top_left;
    }
    bottom_right
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram_of(samples: &[Sample]) -> Histogram<u64> {
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        for sample in samples {
            histogram
                .record(sample.latency_micros.clamp(1, 3_600_000_000))
                .expect("value within bounds");
        }
        histogram
    }

    /// A deterministic run: `count` samples over `run_micros`, latencies spread over three
    /// decades, every `failed_every`-th failed (0: none).
    fn synthetic(count: u64, run_micros: u64, failed_every: u64) -> Vec<Sample> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..count)
            .map(|index| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                Sample {
                    at_micros: index * run_micros / count.max(1),
                    latency_micros: 100 + (state >> 33) % 100_000,
                    ok: failed_every == 0 || index % failed_every != 0,
                }
            })
            .collect()
    }

    #[test]
    fn bands_are_shaded_one_lane_per_row_and_widen_the_time_axis() {
        let samples = synthetic(1_000, 10_000_000, 0);
        let histogram = histogram_of(&samples);
        let band = |start_micros, end_micros, row: &str| Band {
            start_micros,
            end_micros,
            row: row.to_string(),
        };
        let bands = [
            band(1_000_000, 3_000_000, "partition"),
            band(5_000_000, 5_000_000, "clock"),
            band(6_000_000, 14_000_000, "partition"),
        ];
        let svg = render_svg_with_bands("faults", &samples, &histogram, &bands);
        assert_well_formed(&svg);
        assert_eq!(
            svg.matches(r#"class="band""#).count(),
            2,
            "one group per row"
        );
        assert!(svg.contains(">partition</text>") && svg.contains(">clock</text>"));
        let plain = render_svg("faults", &samples, &histogram);
        assert!(!plain.contains(r#"class="band""#));
        // The last band ends after the last sample, so the axis reaches 14 s.
        assert!(svg.contains(">14</text>"), "the time axis reaches 14 s");
    }

    fn assert_well_formed(svg: &str) {
        let trimmed = svg.trim();
        assert!(
            trimmed.starts_with("<svg"),
            "starts with <svg: {}",
            &trimmed[..40]
        );
        assert!(trimmed.ends_with("</svg>"), "ends with </svg>");
        assert!(!svg.contains("NaN"), "no NaN in the output");
        assert!(
            !svg.to_lowercase().contains("inf"),
            "no infinity in the output"
        );
        assert_eq!(svg.matches("<g ").count(), svg.matches("</g>").count());
    }

    fn circle_count(svg: &str) -> usize {
        svg.matches("<circle").count()
    }

    /// The circles inside the group of failed samples.
    fn failed_group(svg: &str) -> &str {
        let start = svg
            .find(r#"<g class="failed""#)
            .expect("failed group present");
        let end = start + svg[start..].find("</g>").expect("failed group closed");
        &svg[start..end]
    }

    #[test]
    fn renders_a_well_formed_svg() {
        let samples = synthetic(5_000, 10_000_000, 50);
        let svg = render_svg("run", &samples, &histogram_of(&samples));
        assert_well_formed(&svg);
        assert!(svg.contains("Latency over time"));
        assert!(svg.contains("Latency distribution"));
        assert!(svg.contains(">99.999%<"));
        assert!(svg.contains(">90%<"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn empty_input_draws_axes_and_a_message() {
        let histogram = Histogram::<u64>::new(3).expect("valid precision");
        let svg = render_svg("empty", &[], &histogram);
        assert_well_formed(&svg);
        assert_eq!(svg.matches(">no samples<").count(), 2);
        assert_eq!(circle_count(&svg), 2, "only the legend's swatches");
        assert!(svg.contains(">100 µs<"), "default latency axis");
        assert!(svg.contains(">100 ms<"), "default latency axis");
        assert!(svg.contains(">0%<"), "percentile axis");
    }

    #[test]
    fn samples_without_a_histogram_draw_only_the_top_panel() {
        let samples = synthetic(100, 1_000_000, 0);
        let histogram = Histogram::<u64>::new(3).expect("valid precision");
        let svg = render_svg("half", &samples, &histogram);
        assert_well_formed(&svg);
        assert_eq!(svg.matches(">no samples<").count(), 1);
    }

    #[test]
    fn title_is_escaped() {
        let title = r#"a & b <script> "quoted" 'single'"#;
        let svg = render_svg(
            title,
            &[],
            &Histogram::<u64>::new(3).expect("valid precision"),
        );
        assert_well_formed(&svg);
        assert!(svg.contains("a &amp; b &lt;script&gt; &quot;quoted&quot; &apos;single&apos;"));
        assert!(!svg.contains("<script>"));
    }

    #[test]
    fn control_characters_become_replacement_characters() {
        assert_eq!(escape_xml("a\u{0}b\u{1b}c\n"), "a\u{fffd}b\u{fffd}c\n");
    }

    #[test]
    fn downsampling_caps_a_million_samples() {
        let samples = synthetic(1_000_000, 60_000_000, 100);
        let svg = render_svg("big", &samples, &histogram_of(&samples));
        assert_well_formed(&svg);
        let circles = circle_count(&svg);
        // Two legend swatches besides the scatter.
        assert!(circles <= SCATTER_POINTS_MAX + 2, "{circles} circles");
        assert!(
            circles >= SCATTER_POINTS_MAX / 2,
            "{circles} circles: scatter still dense"
        );
        // 10,000 failures, more than always drawn and more than their 1% share: every tenth is
        // drawn, plus any that was the slowest of its interval.
        let failed = failed_group(&svg).matches("<circle").count();
        assert!(failed >= FAILED_POINTS_ALWAYS, "{failed} failed circles");
        assert!(
            failed <= FAILED_POINTS_ALWAYS + INTERVALS_MAX as usize,
            "{failed} failed circles"
        );
    }

    #[test]
    fn downsampling_caps_a_run_where_everything_fails() {
        let samples = synthetic(1_000_000, 60_000_000, 1);
        assert!(samples.iter().all(|sample| !sample.ok));
        let series = TimeSeries::from_samples(&samples);
        let kept = downsample(&samples, &series);
        assert!(kept.len() <= SCATTER_POINTS_MAX);
        assert!(kept.len() >= SCATTER_POINTS_MAX / 2, "still dense");
    }

    #[test]
    fn downsampling_keeps_every_failure_and_interval_maximum() {
        let mut samples = synthetic(200_000, 20_000_000, 1_000);
        // A spike that every-k-th sampling would skip.
        samples[123_457].latency_micros = 9_000_000;
        let series = TimeSeries::from_samples(&samples);
        let kept = downsample(&samples, &series);
        assert!(kept.len() <= SCATTER_POINTS_MAX);
        assert!(
            kept.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted, no duplicates"
        );
        assert!(kept.contains(&123_457));
        let failed_total = samples.iter().filter(|sample| !sample.ok).count();
        let failed_kept = kept.iter().filter(|&&index| !samples[index].ok).count();
        assert_eq!(failed_kept, failed_total);
        for stats in &series.intervals {
            let index = stats.latency_max_index.expect("every interval has samples");
            assert!(kept.contains(&index));
        }
    }

    #[test]
    fn failed_samples_are_red() {
        let samples: Vec<Sample> = (0..10)
            .map(|index| Sample {
                at_micros: index * 100_000,
                latency_micros: 1_000 + index * 10,
                ok: index % 3 != 0,
            })
            .collect();
        let svg = render_svg("failures", &samples, &histogram_of(&samples));
        assert_well_formed(&svg);
        let group = failed_group(&svg);
        assert!(group.contains(&format!(r#"fill="{COLOUR_FAILED}""#)));
        assert_eq!(
            group.matches("<circle").count(),
            4,
            "samples 0, 3, 6 and 9 failed"
        );
        assert!(svg.contains(">failed (4)<"));
    }

    #[test]
    fn same_input_renders_the_same_output() {
        let samples = synthetic(30_000, 30_000_000, 37);
        let histogram = histogram_of(&samples);
        let first = render_svg("same", &samples, &histogram);
        let second = render_svg("same", &samples, &histogram);
        assert_eq!(first, second);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let histogram = Histogram::<u64>::new(3).expect("valid precision");
        let cases: [Vec<Sample>; 4] = [
            vec![Sample {
                at_micros: 0,
                latency_micros: 0,
                ok: true,
            }],
            vec![
                Sample {
                    at_micros: 0,
                    latency_micros: 5,
                    ok: false,
                };
                3
            ],
            vec![Sample {
                at_micros: u64::MAX,
                latency_micros: u64::MAX,
                ok: true,
            }],
            // Out of order, with a gap of empty intervals.
            vec![
                Sample {
                    at_micros: 9_000_000,
                    latency_micros: 1_000,
                    ok: true,
                },
                Sample {
                    at_micros: 10,
                    latency_micros: 2_000,
                    ok: true,
                },
            ],
        ];
        for samples in &cases {
            assert_well_formed(&render_svg("edge", samples, &histogram));
            assert_well_formed(&render_svg("edge", samples, &histogram_of(samples)));
        }
    }

    #[test]
    fn intervals_cover_the_run() {
        let series = TimeSeries::from_samples(&synthetic(10_000, 60_000_000, 0));
        assert_eq!(series.interval_micros, 1_000_000);
        assert_eq!(series.intervals.len(), 60);
        let covered: u64 = series
            .intervals
            .iter()
            .map(|stats| stats.width_micros)
            .sum();
        assert_eq!(covered, series.run_micros);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_of_sorted(&sorted, 0.50), Some(50));
        assert_eq!(percentile_of_sorted(&sorted, 0.99), Some(99));
        assert_eq!(percentile_of_sorted(&[7], 0.99), Some(7));
        assert_eq!(percentile_of_sorted(&[], 0.5), None);
    }

    #[test]
    fn decades_and_nice_steps() {
        assert_eq!((decade_floor(0), decade_ceil(0)), (0, 0));
        assert_eq!((decade_floor(1_000), decade_ceil(1_000)), (3, 3));
        assert_eq!((decade_floor(1_001), decade_ceil(1_001)), (3, 4));
        assert_eq!(decade_ceil(u64::MAX), 20);
        assert_eq!(nice_ceil(0), 1);
        assert_eq!(nice_ceil(3), 5);
        assert_eq!(nice_ceil(600_000), 1_000_000);
        assert_eq!(nice_ceil(u64::MAX), u64::MAX);
        assert_eq!(nice_ceil_f64(2_000.0), 2_000.0);
        assert_eq!(nice_ceil_f64(0.3), 0.5);
    }

    #[test]
    fn labels_read_naturally() {
        assert_eq!(format_micros(100.0), "100 µs");
        assert_eq!(format_micros(1_000.0), "1 ms");
        assert_eq!(format_micros(10_000.0), "10 ms");
        assert_eq!(format_micros(1_234.0), "1.23 ms");
        assert_eq!(format_micros(999.7), "1 ms");
        assert_eq!(format_micros(2_000_000.0), "2 s");
        assert_eq!(format_rate(1_200.0), "1.2k");
        assert_eq!(format_rate(800.0), "800");
        assert_eq!(format_count(1_234_567), "1,234,567");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_seconds(1_500_000, 500_000), "1.5");
        assert_eq!(format_seconds(20_000_000, 5_000_000), "20");
        let labels: Vec<String> = (0..=5).map(percentile_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }

    #[test]
    fn percentile_axis_caps_the_maximum() {
        assert_eq!(nines_of(0.0, 5), 0.0);
        assert!((nines_of(0.99, 5) - 2.0).abs() < 1e-9);
        assert_eq!(nines_of(1.0, 5), 5.0);
        assert_eq!(nines_of(0.999_999_9, 5), 5.0);
    }
}
