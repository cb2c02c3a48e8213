//! The SVG report of a load generator's run, drawn with `plotters`: latency over time on top,
//! the latency distribution below. The output depends only on the input: the same run always
//! renders to the same bytes.
//!
//! ```text
//!  render_svg(title, samples, histogram)            (render_svg_with_bands: + fault bands)
//!    ├─ series::TimeSeries::from_samples ─► per interval: p50, p99 (HdrHistogram), slowest
//!    │                                      sample, successes
//!    ├─ series::downsample               ─► at most SCATTER_POINTS_MAX samples to draw
//!    ├─ time_panel::draw                 ─► bands, scatter, failures, p50/p99 lines,
//!    │                                      throughput on the right axis
//!    └─ distribution_panel::draw         ─► latency by percentile on the 1/(1-p) axis,
//!                                           summary box
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
//!
//! Text is written as SVG `<text>` for the viewer to set: plotters is built without font
//! loading, so it needs no system font libraries, and estimates text sizes for the layout.

mod distribution_panel;
mod labels;
mod series;
pub mod sweep_chart;
mod time_panel;

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use labels::{format_count, format_significant, printable};
use series::TimeSeries;

/// One completed operation, as the load generator records it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// When the operation completed, in microseconds since the run started.
    pub at_micros: u64,
    /// How long it took, in microseconds.
    pub latency_micros: u64,
    /// False if it failed (drawn in a different colour).
    pub ok: bool,
    /// How long its request itself took, in microseconds: `latency_micros` less the time an
    /// open-loop operation waited for its turn behind slower ones (equal in a closed loop).
    pub service_micros: u64,
    /// True for a read, false for a write.
    pub read: bool,
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

/// Renders a two-panel SVG: latency over time and the latency distribution.
///
/// The top panel draws `samples` (downsampled to at most 20,000 points, keeping the slowest
/// sample of every interval and every failure while there are few), the p50 and p99 latency of
/// every interval and the throughput of successful operations. The bottom panel draws
/// `histogram` as the classic HdrHistogram percentile plot. Either input may be empty: the
/// panel then shows its axes and "no samples". An error (text for a person) only if plotting
/// itself fails.
pub fn render_svg(
    title: &str,
    samples: &[Sample],
    histogram: &Histogram<u64>,
) -> Result<String, String> {
    render_svg_with_bands(title, samples, histogram, &[])
}

/// [`render_svg`] with `bands` shaded behind the latency-over-time panel, one translucent lane
/// per distinct row, labelled at its left. An instant band is drawn as a thin line.
pub fn render_svg_with_bands(
    title: &str,
    samples: &[Sample],
    histogram: &Histogram<u64>,
    bands: &[Band],
) -> Result<String, String> {
    let mut series = TimeSeries::from_samples(samples);
    let band_end = bands.iter().map(|band| band.end_micros).max().unwrap_or(0);
    series.run_micros = series.run_micros.max(band_end);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw_page(&root, title, samples, &series, histogram, bands)
            .map_err(|error| format!("drawing the plot: {error}"))?;
    }
    Ok(svg)
}

/// What drawing on an SVG page can fail with.
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// A region of the SVG page in pixels.
type Page<'a> = DrawingArea<SVGBackend<'a>, Shift>;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 800;
/// The title and the line under it.
const HEADER_HEIGHT: u32 = 62;
/// The latency-over-time panel; the distribution panel takes the rest.
const TIME_PANEL_HEIGHT: u32 = 378;
const FONT: &str = "sans-serif";

/// The longest title drawn, in characters; longer ones are cut so they stay on the page.
const TITLE_CHARACTERS_MAX: usize = 90;

const COLOUR_TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
const COLOUR_MUTED: RGBColor = RGBColor(0x6b, 0x6b, 0x6b);
const COLOUR_GRID: RGBColor = RGBColor(0xe3, 0xe3, 0xe3);
const COLOUR_GRID_MINOR: RGBColor = RGBColor(0xf1, 0xf1, 0xf1);

/// Left and right label areas, the same in both panels so their plot areas line up.
const Y_LABEL_AREA_WIDTH: u32 = 86;
const X_LABEL_AREA_HEIGHT: u32 = 48;
/// Right of both panels, past the right axis.
const RIGHT_MARGIN: u32 = 26;

fn draw_page(
    root: &Page,
    title: &str,
    samples: &[Sample],
    series: &TimeSeries,
    histogram: &Histogram<u64>,
    bands: &[Band],
) -> DrawResult {
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER_HEIGHT);
    draw_header(&header, title, samples, series)?;
    let (top, bottom) = body.split_vertically(TIME_PANEL_HEIGHT);
    time_panel::draw(&top, samples, series, bands)?;
    distribution_panel::draw(&bottom, histogram)?;
    root.present()
}

fn draw_header(area: &Page, title: &str, samples: &[Sample], series: &TimeSeries) -> DrawResult {
    let title = printable(title);
    let title: String = if title.chars().count() > TITLE_CHARACTERS_MAX {
        let mut cut: String = title.chars().take(TITLE_CHARACTERS_MAX - 1).collect();
        cut.push('…');
        cut
    } else {
        title
    };
    let centre = Pos::new(HPos::Center, VPos::Top);
    let title_style = (FONT, 24)
        .into_font()
        .style(FontStyle::Bold)
        .color(&COLOUR_TEXT)
        .pos(centre);
    area.draw(&Text::new(title, (WIDTH as i32 / 2, 12), title_style))?;

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
    let subtitle_style = (FONT, 15).into_font().color(&COLOUR_MUTED).pos(centre);
    area.draw(&Text::new(subtitle, (WIDTH as i32 / 2, 40), subtitle_style))
}

/// "no samples", in the middle of a panel's plot area (`plot` in pixels, from its top left).
fn draw_empty_message(plot: &Page) -> DrawResult {
    let (width, height) = plot.dim_in_pixel();
    let style = (FONT, 20)
        .into_font()
        .color(&COLOUR_MUTED)
        .pos(Pos::new(HPos::Center, VPos::Center));
    let centre = (width as i32 / 2, height as i32 / 2);
    plot.draw(&Text::new("no samples", centre, style))
}

/// The smallest run of whole decades holding `micros_min..=micros_max`, as a latency axis's
/// ends in microseconds. A latency of 0 is drawn as 1 µs, the lowest a log axis can show.
fn latency_axis_range(micros_min: u64, micros_max: u64) -> (f64, f64) {
    assert!(
        micros_min <= micros_max,
        "latency range must not be inverted"
    );
    let decade_min = labels::decade_floor(micros_min);
    let decade_max = labels::decade_ceil(micros_max).max(decade_min + 1);
    (10f64.powi(decade_min as i32), 10f64.powi(decade_max as i32))
}

#[cfg(test)]
mod tests;
