//! The bottom panel: the latency distribution as the classic HdrHistogram percentile plot, with
//! the headline numbers in a box the curve does not cross.
//!
//! ```text
//!  x: nines, log10(1/(1-p)): 0% 90% 99% 99.9% ...   y: latency µs (log, whole decades)
//!  histogram.iter_quantiles ─► curve ─► summary box (count, p50, p90, p99, p99.9, max)
//! ```

use hdrhistogram::Histogram;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::labels::{decade_ceil, format_count, format_micros, nines_of, percentile_label};
use super::{
    draw_empty_message, latency_axis_range, DrawResult, Page, COLOUR_GRID, COLOUR_GRID_MINOR,
    COLOUR_MUTED, COLOUR_TEXT, FONT, RIGHT_MARGIN, X_LABEL_AREA_HEIGHT, Y_LABEL_AREA_WIDTH,
};

pub(super) const COLOUR_DISTRIBUTION: RGBColor = RGBColor(0x1f, 0x5f, 0x9f);

/// The percentile axis runs to at least 99.999% and at most 99.99999%, further only when the
/// histogram holds enough values to say something about that tail.
pub(super) const NINES_MIN: u32 = 5;
const NINES_MAX: u32 = 7;

/// `iter_quantiles(1)` gives one point per halving of the distance to 100%, about three per
/// decade of the 1/(1-p) axis; five gives a smooth curve and still only ~100 points for 10^6
/// values.
const QUANTILE_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The latency axis when the histogram is empty: 100 µs to 100 ms.
const LATENCY_DEFAULT_MICROS: (u64, u64) = (100, 100_000);

/// Draws the panel into `area`.
pub(super) fn draw(area: &Page, histogram: &Histogram<u64>) -> DrawResult {
    let nines_max = decade_ceil(histogram.len()).clamp(NINES_MIN, NINES_MAX);
    let (latency_min, latency_max) = if histogram.is_empty() {
        LATENCY_DEFAULT_MICROS
    } else {
        (histogram.min(), histogram.max().max(histogram.min()))
    };
    let (latency_low, latency_high) = latency_axis_range(latency_min, latency_max);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Latency distribution",
            (FONT, 18).into_font().style(FontStyle::Bold),
        )
        .margin(8)
        // No right axis here: the margin keeps the plot as wide as the one above.
        .margin_right(RIGHT_MARGIN + Y_LABEL_AREA_WIDTH)
        .x_label_area_size(X_LABEL_AREA_HEIGHT)
        .y_label_area_size(Y_LABEL_AREA_WIDTH)
        .build_cartesian_2d(
            0f64..f64::from(nines_max),
            (latency_low..latency_high).log_scale(),
        )?;
    chart
        .configure_mesh()
        .bold_line_style(COLOUR_GRID)
        .light_line_style(COLOUR_GRID_MINOR)
        .x_labels(nines_max as usize + 1)
        .x_label_formatter(&|nines| {
            // Only whole nines are labelled: 90%, 99%, ...
            if (nines - nines.round()).abs() < 1e-9 {
                percentile_label(nines.round() as u32)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|micros| format_micros(*micros))
        .x_desc("percentile (spaced by 1/(1−p): each step is ten times rarer)")
        .y_desc("latency (log scale)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;

    if histogram.is_empty() {
        draw_empty_message(&chart.plotting_area().strip_coord_spec())?;
    } else {
        let mut points: Vec<(f64, f64)> = histogram
            .iter_quantiles(QUANTILE_TICKS_PER_HALF_DISTANCE)
            .map(|value| {
                (
                    nines_of(value.quantile_iterated_to(), nines_max),
                    (value.value_iterated_to() as f64).max(1.0),
                )
            })
            .collect();
        // Start at 0% so that a histogram of a single value still draws a line.
        if let Some(&(nines, latency)) = points.first() {
            if nines > 0.0 {
                points.insert(0, (0.0, latency));
            }
        }
        let style = COLOUR_DISTRIBUTION.stroke_width(2);
        chart
            .draw_series(LineSeries::new(points, style))?
            .label("latency at percentile (all recorded operations)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(COLOUR_GRID)
            .label_font((FONT, 14).into_font().color(&COLOUR_TEXT))
            .draw()?;
        draw_summary(&chart, histogram, nines_max)?;
    }
    Ok(())
}

type DistributionChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, LogCoord<f64>>,
>;

/// The headline numbers in a box in a corner the curve does not cross: the bottom right if
/// the curve passes above it, else the top left if the curve passes below it (the curve only
/// rises, so checking the box's near corner is enough), else the bottom right over the curve.
fn draw_summary(
    chart: &DistributionChart,
    histogram: &Histogram<u64>,
    nines_max: u32,
) -> DrawResult {
    const LINE_HEIGHT: i32 = 18;
    const VALUE_OFFSET: i32 = 56;
    const MARGIN: i32 = 10;
    let mut rows = vec![("count", format_count(histogram.len()))];
    for (name, quantile) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
        let micros = histogram.value_at_quantile(quantile) as f64;
        rows.push((name, format_micros(micros)));
    }
    rows.push(("max", format_micros(histogram.max() as f64)));

    let plot = chart.plotting_area().strip_coord_spec();
    let (x_pixels, y_pixels) = chart.plotting_area().get_pixel_range();
    let (width, height) = (x_pixels.end - x_pixels.start, y_pixels.end - y_pixels.start);
    let size = (150, LINE_HEIGHT * rows.len() as i32 + 10);
    // The curve's height at `x` pixels from the plot's left, from the plot's top.
    let curve_y_at = |x: i32| {
        let nines = f64::from(x) / f64::from(width.max(1)) * f64::from(nines_max);
        let quantile = 1.0 - 10f64.powf(-nines);
        let latency = (histogram.value_at_quantile(quantile) as f64).max(1.0);
        chart.backend_coord(&(nines, latency)).1 - y_pixels.start
    };
    let bottom_right = (width - MARGIN - size.0, height - MARGIN - size.1);
    let top_left = (MARGIN, MARGIN + 30);
    let corner = if curve_y_at(bottom_right.0) < bottom_right.1 - MARGIN {
        bottom_right
    } else if curve_y_at(top_left.0 + size.0) > top_left.1 + size.1 + MARGIN {
        top_left
    } else {
        bottom_right
    };
    let (left, top) = corner;
    plot.draw(&Rectangle::new(
        [(left, top), (left + size.0, top + size.1)],
        WHITE.filled(),
    ))?;
    plot.draw(&Rectangle::new(
        [(left, top), (left + size.0, top + size.1)],
        COLOUR_GRID.stroke_width(1),
    ))?;
    let at_left = Pos::new(HPos::Left, VPos::Bottom);
    for (index, (name, value)) in rows.iter().enumerate() {
        let baseline = top + LINE_HEIGHT * (index as i32 + 1);
        let name_style = (FONT, 14).into_font().color(&COLOUR_MUTED).pos(at_left);
        plot.draw(&Text::new(
            name.to_string(),
            (left + 10, baseline),
            name_style,
        ))?;
        let value_style = (FONT, 15).into_font().color(&COLOUR_TEXT).pos(at_left);
        let value_at = (left + 10 + VALUE_OFFSET, baseline);
        plot.draw(&Text::new(value.clone(), value_at, value_style))?;
    }
    Ok(())
}
