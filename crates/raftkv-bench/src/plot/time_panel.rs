//! The top panel: latency over time. Fault bands behind, the sampled operations as dots (failed
//! ones red, on top), p50 and p99 per interval as lines, throughput per interval as a dashed
//! line on the right axis.
//!
//! ```text
//!  x: seconds since start (linear)   y: latency µs (log, whole decades)   y2: ops/s (linear)
//!  bands ─► scatter (ok, failed) ─► p50, p99 lines ─► throughput ─► legend
//! ```

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::labels::{format_count, format_duration, format_micros, format_rate, format_seconds};
use super::series::{downsample, IntervalStats, TimeSeries};
use super::{
    draw_empty_message, latency_axis_range, Band, DrawResult, Page, Sample, COLOUR_GRID,
    COLOUR_GRID_MINOR, COLOUR_TEXT, FONT, RIGHT_MARGIN, X_LABEL_AREA_HEIGHT, Y_LABEL_AREA_WIDTH,
};

pub(super) const COLOUR_OK: RGBColor = RGBColor(0x4c, 0x78, 0xa8);
pub(super) const COLOUR_FAILED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const COLOUR_P50: RGBColor = RGBColor(0x2a, 0x9d, 0x3a);
const COLOUR_P99: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const COLOUR_THROUGHPUT: RGBColor = RGBColor(0x8e, 0x5e, 0xa2);

/// Dot radii in pixels: failures larger, so a few stand out in a dense scatter.
const RADIUS_OK: u32 = 2;
const RADIUS_FAILED: u32 = 3;

/// The latency axis when there is nothing to draw: 100 µs to 100 ms.
const LATENCY_DEFAULT_MICROS: (u64, u64) = (100, 100_000);

/// The band colours, cycled through by row.
pub(super) const BAND_COLOURS: [RGBColor; 7] = [
    RGBColor(0xe4, 0x57, 0x56),
    RGBColor(0xf5, 0x85, 0x18),
    RGBColor(0x54, 0xa2, 0x4b),
    RGBColor(0xb2, 0x79, 0xa2),
    RGBColor(0x9d, 0x75, 0x5d),
    RGBColor(0x4c, 0x78, 0xa8),
    RGBColor(0x72, 0xb7, 0xb2),
];
pub(super) const BAND_OPACITY: f64 = 0.16;
/// The narrowest band drawn, in pixels, so an instant stays visible.
const BAND_WIDTH_MIN_PIXELS: f64 = 1.5;

/// Draws the panel into `area`.
pub(super) fn draw(
    area: &Page,
    samples: &[Sample],
    series: &TimeSeries,
    bands: &[Band],
) -> DrawResult {
    let run_seconds = series.run_micros as f64 / 1e6;
    let latencies = samples.iter().map(|sample| sample.latency_micros);
    let (latency_min, latency_max) = match (latencies.clone().min(), latencies.max()) {
        (Some(min), Some(max)) => (min, max),
        _ => LATENCY_DEFAULT_MICROS,
    };
    let (latency_low, latency_high) = latency_axis_range(latency_min, latency_max);
    let throughput_max = series
        .intervals
        .iter()
        .map(IntervalStats::throughput_per_second)
        .fold(0.0, f64::max);
    // About five steps of 1, 2 or 5, the top rounded up to a whole step.
    let throughput_step = nice_ceil_f64((throughput_max / 5.0).max(1.0));
    let throughput_top = (throughput_max / throughput_step).ceil().max(1.0) * throughput_step;

    let mut chart = ChartBuilder::on(area)
        .caption(
            "Latency over time",
            (FONT, 18).into_font().style(FontStyle::Bold),
        )
        .margin(8)
        // Room for the rotated right axis title, which plotters sets at the page's edge.
        .margin_right(RIGHT_MARGIN)
        .x_label_area_size(X_LABEL_AREA_HEIGHT)
        .y_label_area_size(Y_LABEL_AREA_WIDTH)
        .right_y_label_area_size(Y_LABEL_AREA_WIDTH)
        .build_cartesian_2d(0f64..run_seconds, (latency_low..latency_high).log_scale())?
        .set_secondary_coord(0f64..run_seconds, 0f64..throughput_top);

    let time_label = if series.is_empty() {
        "time since start (s)".to_string()
    } else {
        format!(
            "time since start (s); p50, p99 and throughput per {} interval",
            format_duration(series.interval_micros)
        )
    };
    chart
        .configure_mesh()
        .bold_line_style(COLOUR_GRID)
        .light_line_style(COLOUR_GRID_MINOR)
        .x_labels(11)
        .x_label_formatter(&|seconds| format_seconds(*seconds))
        .y_label_formatter(&|micros| format_micros(*micros))
        .x_desc(time_label)
        .y_desc("latency (log scale)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    let throughput_steps = (throughput_top / throughput_step).round() as usize + 1;
    chart
        .configure_secondary_axes()
        .y_labels(throughput_steps)
        .y_label_formatter(&|per_second| format_rate(*per_second))
        .y_desc("throughput (successful ops/s)")
        .label_style((FONT, 14).into_font().color(&COLOUR_THROUGHPUT))
        .axis_desc_style((FONT, 15).into_font().color(&COLOUR_THROUGHPUT))
        .draw()?;

    draw_bands(&mut chart, bands, run_seconds, (latency_low, latency_high))?;
    let plot = chart.plotting_area().strip_coord_spec();
    if samples.is_empty() {
        draw_empty_message(&plot)?;
    } else {
        let kept = downsample(samples, series);
        let point = |sample: &Sample| {
            (
                sample.at_micros as f64 / 1e6,
                (sample.latency_micros as f64).max(1.0),
            )
        };
        // Translucent, more so when dense, so overlaps show as darker regions.
        let ok_opacity = if kept.len() > 2_000 { 0.35 } else { 0.7 };
        let ok_style = COLOUR_OK.mix(ok_opacity).filled();
        chart.draw_series(
            kept.iter()
                .map(|&index| &samples[index])
                .filter(|sample| sample.ok)
                .map(|sample| Circle::new(point(sample), RADIUS_OK, ok_style)),
        )?;
        let failed_style = COLOUR_FAILED.mix(0.85).filled();
        chart.draw_series(
            kept.iter()
                .map(|&index| &samples[index])
                .filter(|sample| !sample.ok)
                .map(|sample| Circle::new(point(sample), RADIUS_FAILED, failed_style)),
        )?;
        let p50: fn(&IntervalStats) -> Option<u64> = |stats| stats.latency_p50_micros;
        let p99: fn(&IntervalStats) -> Option<u64> = |stats| stats.latency_p99_micros;
        for (latency_of, colour) in [(p50, COLOUR_P50), (p99, COLOUR_P99)] {
            for segment in interval_segments(series, latency_of) {
                chart.draw_series(LineSeries::new(segment, colour.stroke_width(2)))?;
            }
        }
        let throughput: Vec<(f64, f64)> = series
            .intervals
            .iter()
            .map(|stats| (stats.middle_micros() / 1e6, stats.throughput_per_second()))
            .collect();
        if throughput.len() >= 2 {
            let style = COLOUR_THROUGHPUT.stroke_width(2);
            chart.draw_secondary_series(DashedLineSeries::new(throughput, 6, 3, style))?;
        }
    }
    draw_legend(&mut chart, samples)
}

/// The chart of this panel: time against log latency, and time against throughput.
type TimeChart<'a, 'b> = plotters::chart::DualCoordChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, LogCoord<f64>>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The legend, top right inside the plot: empty series carry the entries, so the order and
/// the swatches are the same whether or not there was anything to draw.
fn draw_legend<'a, 'b: 'a>(chart: &mut TimeChart<'a, 'b>, samples: &[Sample]) -> DrawResult {
    let failed_count = samples.iter().filter(|sample| !sample.ok).count() as u64;
    let dot = |colour: RGBColor, radius: u32| {
        move |(x, y): (i32, i32)| Circle::new((x + 8, y), radius + 1, colour.filled())
    };
    let line = |colour: RGBColor| {
        move |(x, y): (i32, i32)| {
            PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
        }
    };
    let none = std::iter::empty::<PathElement<(f64, f64)>>;
    chart
        .draw_series(none())?
        .label("ok")
        .legend(dot(COLOUR_OK, RADIUS_OK));
    chart
        .draw_series(none())?
        .label(format!("failed ({})", format_count(failed_count)))
        .legend(dot(COLOUR_FAILED, RADIUS_FAILED));
    chart
        .draw_series(none())?
        .label("p50")
        .legend(line(COLOUR_P50));
    chart
        .draw_series(none())?
        .label("p99")
        .legend(line(COLOUR_P99));
    chart
        .draw_series(none())?
        .label("throughput (right axis)")
        .legend(line(COLOUR_THROUGHPUT));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(COLOUR_GRID)
        .label_font((FONT, 14).into_font().color(&COLOUR_TEXT))
        .draw()
}

/// Shades every band in its row's lane: the plot's height is split evenly between the rows,
/// each labelled at its top left in its colour.
fn draw_bands(
    chart: &mut TimeChart,
    bands: &[Band],
    run_seconds: f64,
    (latency_low, latency_high): (f64, f64),
) -> DrawResult {
    if bands.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<&str> = Vec::new();
    for band in bands {
        if !rows.contains(&band.row.as_str()) {
            rows.push(&band.row);
        }
    }
    let (width_pixels, height_pixels) = chart.plotting_area().dim_in_pixel();
    let seconds_min = BAND_WIDTH_MIN_PIXELS * run_seconds / f64::from(width_pixels.max(1));
    // A lane's edges are evenly spaced in pixels, so in log latency.
    let (log_low, log_high) = (latency_low.log10(), latency_high.log10());
    let lane_edge = |fraction: f64| 10f64.powf(log_high - fraction * (log_high - log_low));
    let lane_height_pixels = f64::from(height_pixels) / rows.len() as f64;
    for (index, row) in rows.iter().enumerate() {
        let colour = BAND_COLOURS[index % BAND_COLOURS.len()];
        let top = lane_edge(index as f64 / rows.len() as f64);
        let bottom = lane_edge((index + 1) as f64 / rows.len() as f64);
        let style = colour.mix(BAND_OPACITY).filled();
        chart.draw_series(bands.iter().filter(|band| band.row == *row).map(|band| {
            let start = (band.start_micros as f64 / 1e6).min(run_seconds);
            let end = (band.end_micros as f64 / 1e6).min(run_seconds);
            let end = end.max(start + seconds_min);
            Rectangle::new([(start, top), (end, bottom)], style)
        }))?;
        let label_at = (4, (lane_height_pixels * index as f64) as i32 + 4);
        let label_style = (FONT, 14)
            .into_font()
            .color(&colour)
            .pos(Pos::new(HPos::Left, VPos::Top));
        let plot = chart.plotting_area().strip_coord_spec();
        plot.draw(&Text::new(row.to_string(), label_at, label_style))?;
    }
    Ok(())
}

/// A per-interval latency through the middle of each interval, as segments broken where an
/// interval has no samples; an isolated interval is a flat segment across its width.
fn interval_segments(
    series: &TimeSeries,
    latency_of: impl Fn(&IntervalStats) -> Option<u64>,
) -> Vec<Vec<(f64, f64)>> {
    let mut segments = Vec::new();
    let mut segment: Vec<(f64, f64)> = Vec::new();
    let mut segment_first: Option<&IntervalStats> = None;
    let mut flush = |segment: &mut Vec<(f64, f64)>, first: Option<&IntervalStats>| {
        match (segment.len(), first) {
            (0, _) => {}
            (1, Some(stats)) => {
                let left = stats.start_micros as f64 / 1e6;
                let right = stats.start_micros.saturating_add(stats.width_micros) as f64 / 1e6;
                segments.push(vec![(left, segment[0].1), (right, segment[0].1)]);
            }
            _ => segments.push(segment.clone()),
        }
        segment.clear();
    };
    for stats in &series.intervals {
        match latency_of(stats) {
            Some(micros) => {
                if segment.is_empty() {
                    segment_first = Some(stats);
                }
                segment.push((stats.middle_micros() / 1e6, (micros as f64).max(1.0)));
            }
            None => flush(&mut segment, segment_first),
        }
    }
    flush(&mut segment, segment_first);
    segments
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `value`, for positive `value`.
pub(super) fn nice_ceil_f64(value: f64) -> f64 {
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
