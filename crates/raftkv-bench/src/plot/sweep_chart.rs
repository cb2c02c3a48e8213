//! The SVG of a sweep: throughput against the swept parameter on top (with the values' MB/s
//! and the disk's bandwidth on a right axis when asked), p50, p99 and p99.9 latency below. The
//! output depends only on the input.
//!
//! ```text
//!  ┌──────────────────────────── title ────────────────────────────┐
//!  │ Throughput               ●───●───●──●   (MB/s ┄┄, disk ──)    │
//!  │ ops/s ┤                                                ├ MB/s │
//!  │ Latency                  p99.9 ▲, p99 ●, p50 ■                │
//!  │ log latency ┤                                                 │
//!  │             └ 1    4    16    64    256    1024 ┘ (log x)    │
//!  └───────────────────────────────────────────────────────────────┘
//! ```
//!
//! The x axis is logarithmic when every value is positive and they span a factor of ten or
//! more (clients 1…1,024, value sizes 100 B…64 KiB), else linear; its ticks are the measured
//! values themselves, drawn here rather than by the mesh (whose ticks fall on round numbers of
//! the axis). Drawn on log10 of the value, so both cases share one coordinate type.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::labels::{format_micros, format_rate, format_significant, printable};
use super::time_panel::nice_ceil_f64;
use super::{
    draw_empty_message, latency_axis_range, DrawResult, Page, COLOUR_GRID, COLOUR_GRID_MINOR,
    COLOUR_MUTED, COLOUR_TEXT, FONT, HEADER_HEIGHT, RIGHT_MARGIN, TITLE_CHARACTERS_MAX,
    X_LABEL_AREA_HEIGHT, Y_LABEL_AREA_WIDTH,
};
use crate::sweep::PointFigures;

pub(super) const COLOUR_THROUGHPUT: RGBColor = RGBColor(0x1f, 0x5f, 0x9f);
pub(super) const COLOUR_BANDWIDTH: RGBColor = RGBColor(0x8e, 0x5e, 0xa2);
pub(super) const COLOUR_DISK: RGBColor = RGBColor(0x6b, 0x6b, 0x6b);
pub(super) const COLOUR_P50: RGBColor = RGBColor(0x2a, 0x9d, 0x3a);
pub(super) const COLOUR_P99: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
pub(super) const COLOUR_P999: RGBColor = RGBColor(0xd6, 0x27, 0x28);

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 760;
/// The throughput panel; the latency panel takes the rest.
const THROUGHPUT_PANEL_HEIGHT: u32 = 340;
const MARKER_RADIUS: u32 = 4;

/// One measured point.
#[derive(Clone, Copy, Debug)]
pub struct ChartPoint {
    /// The parameter's value.
    pub value: f64,
    /// What was measured there.
    pub figures: PointFigures,
}

/// What a sweep chart shows.
#[derive(Clone, Debug)]
pub struct SweepChart {
    /// The title.
    pub title: String,
    /// A line under it: what every point shares.
    pub subtitle: String,
    /// The x axis's description.
    pub x_label: String,
    /// The points, in any order (drawn sorted by value).
    pub points: Vec<ChartPoint>,
    /// Draw the values' MB/s on a right axis.
    pub show_bandwidth: bool,
    /// The disk's sequential write bandwidth, MB/s, drawn as reference lines on that axis.
    pub disk_mb_per_sec: Vec<f64>,
}

/// Renders `chart` as SVG; an error (text for a person) only if plotting itself fails.
pub fn render(chart: &SweepChart) -> Result<String, String> {
    let mut points = chart.points.clone();
    points.retain(|point| point.value.is_finite());
    points.sort_by(|a, b| a.value.total_cmp(&b.value));
    let axis = XAxis::of(&points);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw_page(&root, chart, &points, &axis)
            .map_err(|error| format!("drawing the sweep plot: {error}"))?;
    }
    Ok(svg)
}

/// The x axis: where each value is drawn, and the axis's ends.
pub(super) struct XAxis {
    logarithmic: bool,
    low: f64,
    high: f64,
}

impl XAxis {
    pub(super) fn of(points: &[ChartPoint]) -> XAxis {
        let values: Vec<f64> = points.iter().map(|point| point.value).collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let logarithmic = !values.is_empty() && min > 0.0 && max / min >= 10.0;
        let position = |value: f64| if logarithmic { value.log10() } else { value };
        let (low, high) = if values.is_empty() {
            (0.0, 1.0)
        } else {
            let (low, high) = (position(min), position(max));
            // A margin of a tenth of the span (or of one unit) either side, so the end
            // markers are not cut by the axes.
            let margin = if high > low { (high - low) / 10.0 } else { 1.0 };
            (low - margin, high + margin)
        };
        XAxis {
            logarithmic,
            low,
            high,
        }
    }

    /// Where `value` is drawn.
    pub(super) fn position(&self, value: f64) -> f64 {
        if self.logarithmic {
            value.log10()
        } else {
            value
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.low..self.high
    }

    fn description(&self, label: &str) -> String {
        if self.logarithmic {
            format!("{label} (log scale)")
        } else {
            label.to_string()
        }
    }
}

/// A swept value as its tick label: 64, 1Ki, 64Ki, 1k, 10M, 0.9.
pub(super) fn format_value(value: f64) -> String {
    let round = (value - value.round()).abs() < 1e-9;
    if !round {
        return format_significant(value);
    }
    let whole = value.round() as u64;
    if whole >= 1 << 20 && whole.is_multiple_of(1 << 20) {
        format!("{}Mi", whole >> 20)
    } else if whole >= 1024 && whole.is_multiple_of(1024) {
        format!("{}Ki", whole >> 10)
    } else if whole >= 1_000_000 && whole.is_multiple_of(1_000_000) {
        format!("{}M", whole / 1_000_000)
    } else if whole >= 1_000 && whole.is_multiple_of(1_000) {
        format!("{}k", whole / 1_000)
    } else {
        whole.to_string()
    }
}

/// A grid line and a label under the axis at every measured value; `bottom` and `top` are the
/// panel's y range.
fn draw_x_ticks<Y: Ranged<ValueType = f64>>(
    area: &Page,
    plot: &ChartContext<SVGBackend, Cartesian2d<RangedCoordf64, Y>>,
    axis: &XAxis,
    points: &[ChartPoint],
    bottom: f64,
    top: f64,
) -> DrawResult {
    let (base_x, base_y) = area.get_base_pixel();
    let style = (FONT, 14)
        .into_font()
        .color(&COLOUR_TEXT)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for point in points {
        let x = axis.position(point.value);
        plot.plotting_area().draw(&PathElement::new(
            vec![(x, bottom), (x, top)],
            COLOUR_GRID.stroke_width(1),
        ))?;
        let (pixel_x, pixel_y) = plot.backend_coord(&(x, bottom));
        area.draw(&Text::new(
            format_value(point.value),
            (pixel_x - base_x, pixel_y - base_y + 6),
            style.clone(),
        ))?;
    }
    Ok(())
}

fn draw_page(root: &Page, chart: &SweepChart, points: &[ChartPoint], axis: &XAxis) -> DrawResult {
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER_HEIGHT);
    draw_header(&header, chart)?;
    let (top, bottom) = body.split_vertically(THROUGHPUT_PANEL_HEIGHT);
    draw_throughput(&top, chart, points, axis)?;
    draw_latency(&bottom, chart, points, axis)?;
    root.present()
}

fn draw_header(area: &Page, chart: &SweepChart) -> DrawResult {
    let cut = |text: &str| -> String {
        let text = printable(text);
        if text.chars().count() > TITLE_CHARACTERS_MAX {
            let mut cut: String = text.chars().take(TITLE_CHARACTERS_MAX - 1).collect();
            cut.push('…');
            cut
        } else {
            text
        }
    };
    let centre = Pos::new(HPos::Center, VPos::Top);
    let title_style = (FONT, 22)
        .into_font()
        .style(FontStyle::Bold)
        .color(&COLOUR_TEXT)
        .pos(centre);
    area.draw(&Text::new(
        cut(&chart.title),
        (WIDTH as i32 / 2, 12),
        title_style,
    ))?;
    let subtitle_style = (FONT, 15).into_font().color(&COLOUR_MUTED).pos(centre);
    area.draw(&Text::new(
        cut(&chart.subtitle),
        (WIDTH as i32 / 2, 40),
        subtitle_style,
    ))
}

/// The top of a linear axis from 0 holding `max`: about five steps of 1, 2 or 5.
fn linear_top(max: f64) -> (f64, usize) {
    let step = nice_ceil_f64((max / 5.0).max(f64::MIN_POSITIVE));
    let steps = (max / step).ceil().max(1.0);
    (steps * step, steps as usize + 1)
}

fn draw_throughput(
    area: &Page,
    chart: &SweepChart,
    points: &[ChartPoint],
    axis: &XAxis,
) -> DrawResult {
    let throughput_max = points
        .iter()
        .map(|point| point.figures.throughput_ops_per_sec)
        .fold(1.0, f64::max);
    let (throughput_top, throughput_labels) = linear_top(throughput_max * 1.05);
    let bandwidth_max = points
        .iter()
        .map(|point| point.figures.write_mb_per_sec)
        .chain(chart.disk_mb_per_sec.iter().copied())
        .filter(|value| value.is_finite())
        .fold(0.1, f64::max);
    let (bandwidth_top, bandwidth_labels) = linear_top(bandwidth_max * 1.05);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption("Throughput", (FONT, 18).into_font().style(FontStyle::Bold))
        .margin(8)
        .margin_right(RIGHT_MARGIN)
        .x_label_area_size(X_LABEL_AREA_HEIGHT)
        .y_label_area_size(Y_LABEL_AREA_WIDTH);
    if chart.show_bandwidth {
        builder.right_y_label_area_size(Y_LABEL_AREA_WIDTH);
    } else {
        // No right axis: the margin keeps the plot as wide as the one below.
        builder.margin_right(RIGHT_MARGIN + Y_LABEL_AREA_WIDTH);
    }
    let mut plot = builder
        .build_cartesian_2d(axis.range(), 0f64..throughput_top)?
        .set_secondary_coord(axis.range(), 0f64..bandwidth_top);
    plot.configure_mesh()
        .bold_line_style(COLOUR_GRID)
        .light_line_style(COLOUR_GRID_MINOR)
        .y_labels(throughput_labels)
        .x_labels(0)
        .disable_x_mesh()
        .y_label_formatter(&|per_second| format_rate(*per_second))
        .x_desc(axis.description(&chart.x_label))
        .y_desc("successful ops/s")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    if chart.show_bandwidth {
        plot.configure_secondary_axes()
            .y_labels(bandwidth_labels)
            .y_label_formatter(&|mb| format_significant(*mb))
            .y_desc("MB/s of values written")
            .label_style((FONT, 14).into_font().color(&COLOUR_BANDWIDTH))
            .axis_desc_style((FONT, 15).into_font().color(&COLOUR_BANDWIDTH))
            .draw()?;
    }
    draw_x_ticks(area, &plot, axis, points, 0.0, throughput_top)?;
    if points.is_empty() {
        return draw_empty_message(&plot.plotting_area().strip_coord_spec());
    }
    let throughput: Vec<(f64, f64)> = points
        .iter()
        .map(|point| {
            (
                axis.position(point.value),
                point.figures.throughput_ops_per_sec,
            )
        })
        .collect();
    let style = COLOUR_THROUGHPUT.stroke_width(2);
    plot.draw_series(LineSeries::new(throughput.clone(), style))?
        .label("successful ops/s")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    plot.draw_series(
        throughput
            .iter()
            .map(|&point| Circle::new(point, MARKER_RADIUS, COLOUR_THROUGHPUT.filled())),
    )?;
    if chart.show_bandwidth {
        let bandwidth: Vec<(f64, f64)> = points
            .iter()
            .map(|point| (axis.position(point.value), point.figures.write_mb_per_sec))
            .collect();
        let style = COLOUR_BANDWIDTH.stroke_width(2);
        plot.draw_secondary_series(DashedLineSeries::new(bandwidth.clone(), 6, 3, style))?
            .label("MB/s of values written (right axis)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        plot.draw_secondary_series(
            bandwidth
                .iter()
                .map(|&point| Circle::new(point, MARKER_RADIUS, COLOUR_BANDWIDTH.filled())),
        )?;
        for (index, &disk) in chart.disk_mb_per_sec.iter().enumerate() {
            if !disk.is_finite() {
                continue;
            }
            let style = COLOUR_DISK.stroke_width(1);
            let line = vec![(axis.low, disk), (axis.high, disk)];
            let when = match (chart.disk_mb_per_sec.len(), index) {
                (1, _) => "",
                (_, 0) => " before",
                _ => " after",
            };
            plot.draw_secondary_series(DashedLineSeries::new(line, 3, 3, style))?
                .label(format!(
                    "disk, sequential write + fdatasync{when}: {} MB/s",
                    format_significant(disk)
                ))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        }
    }
    plot.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(COLOUR_GRID)
        .label_font((FONT, 14).into_font().color(&COLOUR_TEXT))
        .draw()
}

fn draw_latency(
    area: &Page,
    chart: &SweepChart,
    points: &[ChartPoint],
    axis: &XAxis,
) -> DrawResult {
    let latencies = points.iter().flat_map(|point| {
        [
            point.figures.p50_us,
            point.figures.p99_us,
            point.figures.p999_us,
        ]
    });
    let (low, high) = match (latencies.clone().min(), latencies.max()) {
        (Some(min), Some(max)) => latency_axis_range(min, max),
        _ => latency_axis_range(100, 100_000),
    };
    let mut plot = ChartBuilder::on(area)
        .caption("Latency", (FONT, 18).into_font().style(FontStyle::Bold))
        .margin(8)
        .margin_right(RIGHT_MARGIN + Y_LABEL_AREA_WIDTH)
        .x_label_area_size(X_LABEL_AREA_HEIGHT)
        .y_label_area_size(Y_LABEL_AREA_WIDTH)
        .build_cartesian_2d(axis.range(), (low..high).log_scale())?;
    plot.configure_mesh()
        .bold_line_style(COLOUR_GRID)
        .light_line_style(COLOUR_GRID_MINOR)
        .x_labels(0)
        .disable_x_mesh()
        .y_label_formatter(&|micros| format_micros(*micros))
        .x_desc(axis.description(&chart.x_label))
        .y_desc("latency (log scale)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;
    draw_x_ticks(area, &plot, axis, points, low, high)?;
    if points.is_empty() {
        return draw_empty_message(&plot.plotting_area().strip_coord_spec());
    }
    let p50: fn(&PointFigures) -> u64 = |figures| figures.p50_us;
    let p99: fn(&PointFigures) -> u64 = |figures| figures.p99_us;
    let p999: fn(&PointFigures) -> u64 = |figures| figures.p999_us;
    for (name, latency_of, colour) in [
        ("p99.9", p999, COLOUR_P999),
        ("p99", p99, COLOUR_P99),
        ("p50", p50, COLOUR_P50),
    ] {
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|point| {
                (
                    axis.position(point.value),
                    (latency_of(&point.figures) as f64).max(1.0),
                )
            })
            .collect();
        let style = colour.stroke_width(2);
        plot.draw_series(LineSeries::new(line.clone(), style))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        plot.draw_series(
            line.iter()
                .map(|&point| Circle::new(point, MARKER_RADIUS, colour.filled())),
        )?;
    }
    plot.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(COLOUR_GRID)
        .label_font((FONT, 14).into_font().color(&COLOUR_TEXT))
        .draw()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_well_formed, hex, tags_with, texts};
    use super::*;

    fn figures(throughput: f64, p50: u64) -> PointFigures {
        PointFigures {
            throughput_ops_per_sec: throughput,
            write_mb_per_sec: throughput * 1000.0 / 1e6,
            p50_us: p50,
            p99_us: p50 * 3,
            p999_us: p50 * 10,
            ok: 1000,
            errors: 0,
        }
    }

    fn chart(values: &[f64]) -> SweepChart {
        SweepChart {
            title: "writes against clients".to_string(),
            subtitle: "256 B values".to_string(),
            x_label: "concurrent clients".to_string(),
            points: values
                .iter()
                .enumerate()
                .map(|(index, &value)| ChartPoint {
                    value,
                    figures: figures(1000.0 * (index + 1) as f64, 200 + 100 * index as u64),
                })
                .collect(),
            show_bandwidth: false,
            disk_mb_per_sec: Vec::new(),
        }
    }

    /// Markers of `colour` (the legend draws lines, not circles, so these are the points).
    fn markers(svg: &str, colour: RGBColor) -> usize {
        tags_with(svg, "<circle", &[&format!(r#"fill="{}""#, hex(colour))])
    }

    #[test]
    fn every_point_is_drawn_in_both_panels_with_its_value_as_a_tick() {
        let values = [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0];
        let svg = render(&chart(&values)).expect("renders");
        assert_well_formed(&svg);
        assert_eq!(markers(&svg, COLOUR_THROUGHPUT), values.len());
        for colour in [COLOUR_P50, COLOUR_P99, COLOUR_P999] {
            assert_eq!(markers(&svg, colour), values.len());
            let stroke = format!(r#"stroke="{}""#, hex(colour));
            assert!(tags_with(&svg, "<polyline", &[&stroke]) >= 1);
        }
        assert_eq!(markers(&svg, COLOUR_BANDWIDTH), 0, "no MB/s unless asked");
        let texts = texts(&svg);
        for expected in [
            "writes against clients",
            "256 B values",
            "Throughput",
            "Latency",
            "concurrent clients (log scale)",
            "successful ops/s",
            "p50",
            "p99",
            "p99.9",
            "1Ki",
            "256",
            "1",
        ] {
            assert!(texts.contains(&expected), "{expected:?} in {texts:?}");
        }
    }

    #[test]
    fn bandwidth_and_the_disk_lines_are_drawn_when_asked() {
        let mut chart = chart(&[100.0, 1024.0, 65536.0]);
        chart.show_bandwidth = true;
        chart.disk_mb_per_sec = vec![250.0, 230.0];
        let svg = render(&chart).expect("renders");
        assert_well_formed(&svg);
        assert_eq!(markers(&svg, COLOUR_BANDWIDTH), 3);
        let texts = texts(&svg);
        for expected in [
            "MB/s of values written",
            "disk, sequential write + fdatasync before: 250 MB/s",
            "disk, sequential write + fdatasync after: 230 MB/s",
            "64Ki",
            "100",
        ] {
            assert!(texts.contains(&expected), "{expected:?} in {texts:?}");
        }
    }

    #[test]
    fn a_narrow_or_non_positive_range_is_linear_and_nothing_degenerate_panics() {
        let linear = XAxis::of(&chart(&[3.0, 5.0, 7.0]).points);
        assert!(!linear.logarithmic);
        assert_eq!(linear.position(5.0), 5.0);
        let with_zero = XAxis::of(&chart(&[0.0, 0.5, 1.0]).points);
        assert!(!with_zero.logarithmic);
        let logarithmic = XAxis::of(&chart(&[1.0, 1024.0]).points);
        assert!(logarithmic.logarithmic);
        assert!(logarithmic.low < 0.0 && logarithmic.high > 1024f64.log10());
        for values in [vec![], vec![7.0], vec![0.0], vec![f64::NAN, 2.0]] {
            let svg = render(&chart(&values)).expect("renders");
            assert_well_formed(&svg);
        }
        let empty = render(&chart(&[])).expect("renders");
        assert!(texts(&empty).contains(&"no samples"));
    }

    #[test]
    fn the_same_points_in_any_order_render_the_same_bytes() {
        let forward = chart(&[1.0, 10.0, 100.0]);
        let mut backward = forward.clone();
        backward.points.reverse();
        assert_eq!(render(&forward), render(&backward));
    }

    #[test]
    fn values_are_labelled_in_their_natural_unit() {
        assert_eq!(format_value(100.0), "100");
        assert_eq!(format_value(1024.0), "1Ki");
        assert_eq!(format_value(65536.0), "64Ki");
        assert_eq!(format_value(1_048_576.0), "1Mi");
        assert_eq!(format_value(1000.0), "1k");
        assert_eq!(format_value(10_000_000.0), "10M");
        assert_eq!(format_value(0.9), "0.9");
        assert_eq!(format_value(7.0), "7");
    }

    /// Writes a sample for a person to look at: `PLOT_PREVIEW_DIR=dir cargo test -p
    /// raftkv-bench sweep_preview`.
    #[test]
    fn sweep_preview_renders() {
        let mut chart = chart(&[100.0, 1024.0, 4096.0, 16384.0, 65536.0]);
        chart.show_bandwidth = true;
        chart.disk_mb_per_sec = vec![12.0];
        let svg = render(&chart).expect("renders");
        assert_well_formed(&svg);
        if let Some(dir) = std::env::var_os("PLOT_PREVIEW_DIR") {
            std::fs::write(std::path::Path::new(&dir).join("sweep-preview.svg"), svg)
                .expect("written");
        }
    }
}
