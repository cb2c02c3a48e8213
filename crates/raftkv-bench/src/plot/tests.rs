//! The plots' tests: what the SVG holds (texts, dots by colour, lines, bands), the sampling
//! limits, and the labels.

use hdrhistogram::Histogram;

use super::distribution_panel::COLOUR_DISTRIBUTION;
use super::labels::*;
use super::series::*;
use super::time_panel::{nice_ceil_f64, BAND_OPACITY, COLOUR_FAILED, COLOUR_OK};
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
                ..Default::default()
            }
        })
        .collect()
}

fn render(title: &str, samples: &[Sample], histogram: &Histogram<u64>) -> String {
    render_svg(title, samples, histogram).expect("renders")
}

fn empty_histogram() -> Histogram<u64> {
    Histogram::<u64>::new(3).expect("valid precision")
}

/// The colour as the SVG writes it.
pub(super) fn hex(colour: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", colour.0, colour.1, colour.2)
}

/// Every text drawn, unescaped only as far as the SVG writes it (one line each).
pub(super) fn texts(svg: &str) -> Vec<&str> {
    svg.split("<text ")
        .skip(1)
        .filter_map(|rest| {
            let body = &rest[rest.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim())
        })
        .collect()
}

/// The tags named `tag` (e.g. "<circle") whose attributes contain every one of `attributes`.
pub(super) fn tags_with(svg: &str, tag: &str, attributes: &[&str]) -> usize {
    svg.split(tag)
        .skip(1)
        .filter(|rest| {
            let element = &rest[..rest.find('>').unwrap_or(rest.len())];
            attributes
                .iter()
                .all(|attribute| element.contains(attribute))
        })
        .count()
}

/// Dots drawn for failed samples (the legend's swatch is opaque, these are not).
fn failed_dots(svg: &str) -> usize {
    let fill = format!(r#"fill="{}""#, hex(COLOUR_FAILED));
    tags_with(svg, "<circle", &[&fill, r#"opacity="0.85""#])
}

pub(super) fn assert_well_formed(svg: &str) {
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
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
}

#[test]
fn renders_both_panels_with_their_axes_dots_and_lines() {
    let samples = synthetic(5_000, 10_000_000, 50);
    let svg = render("run", &samples, &histogram_of(&samples));
    assert_well_formed(&svg);
    let texts = texts(&svg);
    for expected in [
        "run",
        "5,000 operations over 10 s, 100 failed",
        "Latency over time",
        "Latency distribution",
        "latency (log scale)",
        "throughput (successful ops/s)",
        "time since start (s); p50, p99 and throughput per 100 ms interval",
        "90%",
        "99.999%",
        "failed (100)",
        "p50",
        "p99",
        "throughput (right axis)",
        "count",
    ] {
        assert!(texts.contains(&expected), "{expected:?} in {texts:?}");
    }
    // Every failure is drawn (100 of them, fewer than always kept), and the ok dots too.
    assert_eq!(failed_dots(&svg), 100);
    let ok_fill = format!(r#"fill="{}""#, hex(COLOUR_OK));
    assert!(tags_with(&svg, "<circle", &[&ok_fill]) > 4_000);
    // p50 and p99 per interval, the dashed throughput, the distribution curve.
    for colour in ["#2A9D3A", "#FF7F0E", "#8E5EA2", &hex(COLOUR_DISTRIBUTION)] {
        let stroke = format!(r#"stroke="{colour}""#);
        assert!(tags_with(&svg, "<polyline", &[&stroke]) >= 2, "{colour}");
    }
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
    let svg = render_svg_with_bands("faults", &samples, &histogram, &bands).expect("renders");
    assert_well_formed(&svg);
    let translucent = format!(r#"opacity="{BAND_OPACITY}""#);
    assert_eq!(tags_with(&svg, "<rect", &[&translucent]), 3, "one per band");
    let first_row = format!(r#"fill="{}""#, hex(time_panel::BAND_COLOURS[0]));
    let second_row = format!(r#"fill="{}""#, hex(time_panel::BAND_COLOURS[1]));
    assert_eq!(tags_with(&svg, "<rect", &[&translucent, &first_row]), 2);
    assert_eq!(tags_with(&svg, "<rect", &[&translucent, &second_row]), 1);
    let texts = texts(&svg);
    assert!(texts.contains(&"partition") && texts.contains(&"clock"));
    let plain = render("faults", &samples, &histogram);
    assert_eq!(tags_with(&plain, "<rect", &[&translucent]), 0);
    // The last band ends after the last sample, so the axis reaches 14 s.
    assert!(
        texts.contains(&"14"),
        "the time axis reaches 14 s: {texts:?}"
    );
}

#[test]
fn empty_input_draws_axes_and_a_message() {
    let svg = render("empty", &[], &empty_histogram());
    assert_well_formed(&svg);
    let texts = texts(&svg);
    assert_eq!(
        texts.iter().filter(|text| **text == "no samples").count(),
        2
    );
    assert_eq!(
        svg.matches("<circle").count(),
        2,
        "only the legend's swatches"
    );
    assert!(texts.contains(&"100 µs"), "default latency axis: {texts:?}");
    assert!(texts.contains(&"100 ms"), "default latency axis: {texts:?}");
    assert!(texts.contains(&"0%"), "percentile axis: {texts:?}");
    assert!(texts.contains(&"no operations recorded"));
}

#[test]
fn samples_without_a_histogram_draw_only_the_top_panel() {
    let samples = synthetic(100, 1_000_000, 0);
    let svg = render("half", &samples, &empty_histogram());
    assert_well_formed(&svg);
    let texts = texts(&svg);
    assert_eq!(
        texts.iter().filter(|text| **text == "no samples").count(),
        1
    );
}

#[test]
fn title_is_escaped() {
    let title = r#"a & b <script> "quoted" 'single'"#;
    let svg = render(title, &[], &empty_histogram());
    assert_well_formed(&svg);
    assert!(svg.contains("a &amp; b &lt;script&gt; &quot;quoted&quot; &apos;single&apos;"));
    assert!(!svg.contains("<script>"));
}

#[test]
fn control_characters_become_replacement_characters() {
    assert_eq!(printable("a\u{0}b\u{1b}c\n"), "a\u{fffd}b\u{fffd}c\n");
    let svg = render("bell\u{7}", &[], &empty_histogram());
    assert!(texts(&svg).contains(&"bell\u{fffd}"));
}

#[test]
fn downsampling_caps_a_million_samples() {
    let samples = synthetic(1_000_000, 60_000_000, 100);
    let svg = render("big", &samples, &histogram_of(&samples));
    assert_well_formed(&svg);
    let circles = svg.matches("<circle").count();
    // Two legend swatches besides the scatter.
    assert!(circles <= SCATTER_POINTS_MAX + 2, "{circles} circles");
    assert!(
        circles >= SCATTER_POINTS_MAX / 2,
        "{circles} circles: scatter still dense"
    );
    // 10,000 failures, more than always drawn and more than their 1% share: every tenth is
    // drawn, plus any that was the slowest of its interval.
    let failed = failed_dots(&svg);
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
            ..Default::default()
        })
        .collect();
    let svg = render("failures", &samples, &histogram_of(&samples));
    assert_well_formed(&svg);
    assert_eq!(failed_dots(&svg), 4, "samples 0, 3, 6 and 9 failed");
    assert!(texts(&svg).contains(&"failed (4)"));
}

#[test]
fn same_input_renders_the_same_output() {
    let samples = synthetic(30_000, 30_000_000, 37);
    let histogram = histogram_of(&samples);
    let first = render("same", &samples, &histogram);
    let second = render("same", &samples, &histogram);
    assert_eq!(first, second);
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let cases: [Vec<Sample>; 4] = [
        vec![Sample {
            at_micros: 0,
            latency_micros: 0,
            ok: true,
            ..Default::default()
        }],
        vec![
            Sample {
                at_micros: 0,
                latency_micros: 5,
                ok: false,
                ..Default::default()
            };
            3
        ],
        vec![Sample {
            at_micros: u64::MAX,
            latency_micros: u64::MAX,
            ok: true,
            ..Default::default()
        }],
        // Out of order, with a gap of empty intervals.
        vec![
            Sample {
                at_micros: 9_000_000,
                latency_micros: 1_000,
                ok: true,
                ..Default::default()
            },
            Sample {
                at_micros: 10,
                latency_micros: 2_000,
                ok: true,
                ..Default::default()
            },
        ],
    ];
    for samples in &cases {
        assert_well_formed(&render("edge", samples, &empty_histogram()));
        assert_well_formed(&render("edge", samples, &histogram_of(samples)));
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
fn interval_percentiles_are_hdr_quantiles() {
    // The first interval holds latencies 1..=100 µs (exact at 3 significant digits): HdrHistogram's
    // value at quantile, as the report's summary reads it.
    let samples: Vec<Sample> = (1..=100)
        .map(|latency_micros| Sample {
            at_micros: 0,
            latency_micros,
            ok: true,
            ..Default::default()
        })
        .collect();
    let series = TimeSeries::from_samples(&samples);
    assert!(series.intervals[1..]
        .iter()
        .all(|stats| stats.latency_p50_micros.is_none()));
    let histogram = histogram_of(&samples);
    let stats = &series.intervals[0];
    assert_eq!(stats.latency_p50_micros, Some(50));
    assert_eq!(stats.latency_p99_micros, Some(99));
    assert_eq!(
        stats.latency_p50_micros,
        Some(histogram.value_at_quantile(0.5))
    );
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
    assert_eq!(latency_axis_range(0, 0), (1.0, 10.0));
    assert_eq!(latency_axis_range(150, 20_000), (100.0, 100_000.0));
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
    assert_eq!(format_seconds(1.5), "1.5");
    assert_eq!(format_seconds(20.0), "20");
    assert_eq!(format_seconds(0.25), "0.25");
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

/// Writes sample plots for a person to look at: `PLOT_PREVIEW_DIR=dir cargo test -p
/// raftkv-bench preview`. Without the variable it only renders them.
#[test]
fn preview_renders() {
    let samples = synthetic(20_000, 12_000_000, 97);
    let histogram = histogram_of(&samples);
    let bands = [
        Band {
            start_micros: 2_000_000,
            end_micros: 4_000_000,
            row: "partition".to_string(),
        },
        Band {
            start_micros: 7_000_000,
            end_micros: 7_000_000,
            row: "kill".to_string(),
        },
    ];
    let svg = render_svg_with_bands("preview", &samples, &histogram, &bands).expect("renders");
    assert_well_formed(&svg);
    if let Some(dir) = std::env::var_os("PLOT_PREVIEW_DIR") {
        std::fs::write(std::path::Path::new(&dir).join("preview.svg"), svg).expect("written");
    }
}
