//! `raftkv bench --sweep PARAMETER=V1,V2,...`: one measured run per value of one parameter,
//! drawn as throughput and latency against that parameter (`--plot`), or printed as a table
//! or JSON (`--json`).
//!
//! ```text
//!  [--disk-dir: the disk's sequential write bandwidth]
//!  for each value, in the order given:
//!    the run's options with PARAMETER = value ─► background load (watchers, leases) started
//!    ─► --sweep-warmup run (discarded) ─► the measured run ─► background load stopped
//!  [--disk-dir: the bandwidth again]
//!  ──▶ table / --json  ──▶ --plot: ops/s (and MB/s) above, p50/p99/p99.9 below, log x
//! ```
//!
//! A point's run is exactly a `raftkv bench` run with that option, so a point can be checked
//! by hand. Parameters a run cannot change by itself (the cluster's size, the keys already in
//! the store) are swept by a script that runs `raftkv bench --json` against each cluster and
//! draws the reports with `raftkv bench sweep-plot` (bench/scaling.sh does both).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use raftkv_client::ClientTls;
use serde::Serialize;

use crate::background::{BackgroundFigures, BackgroundLoad};
use crate::disk::DiskBandwidth;
use crate::plot::sweep_chart::{self, ChartPoint, SweepChart};
use crate::{parse_duration, BenchArgs, Report};

/// How many bytes the disk measurement writes unless told otherwise: enough that the disk's
/// cache cannot hold it all before the final flush on this kind of machine, little enough to
/// take seconds.
const DISK_BYTES_DEFAULT: u64 = 256 << 20;

/// The sweep options of `raftkv bench`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SweepArgs {
    /// Run once per value of one parameter and report (and with --plot, draw) throughput and
    /// latency against it: `clients=1,4,16,64`, `value-size=100,1Ki,64Ki`, `keys=1k,1M`,
    /// `read-ratio=0,0.5,0.9`, `threads=1,2`, `connections=1,4`, `watchers=1,100,10k`
    /// (watches of --key-prefix open during the run), `leases=1,1k,100k` (leases of 60 s kept
    /// alive during the run, every one renewed every 2 s). Suffixes: k (1,000), M (1,000,000), Ki (1,024), Mi (1,048,576).
    #[arg(long, value_parser = parse_sweep)]
    pub sweep: Option<SweepSpec>,
    /// A run before each point's measured run, with the same options, not counted.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub sweep_warmup: Duration,
    /// With --sweep: measure the sequential write bandwidth of the disk holding this
    /// directory before and after the sweep (a scratch file, written and fdatasync'd, then
    /// removed), and draw it beside the values' MB/s.
    #[arg(long)]
    pub disk_dir: Option<PathBuf>,
    /// Bytes the disk measurement writes each time.
    #[arg(long, default_value_t = DISK_BYTES_DEFAULT, value_parser = clap::value_parser!(u64).range(1 << 20..))]
    pub disk_bytes: u64,
}

/// What a sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parameter {
    /// `--clients`.
    Clients,
    /// `--value-size`.
    ValueSize,
    /// `--keys`.
    Keys,
    /// `--read-ratio`.
    ReadRatio,
    /// `--threads` of the load generator.
    Threads,
    /// `--connections` (etcd target).
    Connections,
    /// Watches of the written prefix open during the run.
    Watchers,
    /// Leases kept alive during the run.
    Leases,
}

/// Every parameter, in the order `--help` lists them.
const PARAMETERS: [Parameter; 8] = [
    Parameter::Clients,
    Parameter::ValueSize,
    Parameter::Keys,
    Parameter::ReadRatio,
    Parameter::Threads,
    Parameter::Connections,
    Parameter::Watchers,
    Parameter::Leases,
];

impl Parameter {
    /// The name in `--sweep NAME=...`.
    pub fn name(self) -> &'static str {
        match self {
            Parameter::Clients => "clients",
            Parameter::ValueSize => "value-size",
            Parameter::Keys => "keys",
            Parameter::ReadRatio => "read-ratio",
            Parameter::Threads => "threads",
            Parameter::Connections => "connections",
            Parameter::Watchers => "watchers",
            Parameter::Leases => "leases",
        }
    }

    /// The x axis's description.
    pub fn axis_label(self) -> &'static str {
        match self {
            Parameter::Clients => "concurrent clients (one request in flight each)",
            Parameter::ValueSize => "bytes per value",
            Parameter::Keys => "distinct keys written",
            Parameter::ReadRatio => "fraction of operations that are reads",
            Parameter::Threads => "load generator threads",
            Parameter::Connections => "connections per endpoint",
            Parameter::Watchers => "watches open on the written prefix",
            Parameter::Leases => "leases kept alive",
        }
    }

    /// The smallest and largest value the option takes (a fraction for read-ratio, else a
    /// whole number).
    fn bounds(self) -> (f64, f64) {
        match self {
            Parameter::Clients => (1.0, 100_000.0),
            // The node refuses bodies over its limit anyway; this only keeps a typo's
            // gigabyte buffer from being allocated here.
            Parameter::ValueSize => (0.0, f64::from(1u32 << 30)),
            Parameter::Keys => (1.0, 100_000_000.0),
            Parameter::ReadRatio => (0.0, 1.0),
            Parameter::Threads => (1.0, f64::from(u16::MAX)),
            Parameter::Connections => (1.0, 1024.0),
            Parameter::Watchers | Parameter::Leases => (0.0, 1_000_000.0),
        }
    }

    fn is_fraction(self) -> bool {
        self == Parameter::ReadRatio
    }
}

/// A parameter and its values, as given to `--sweep`.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSpec {
    /// What varies.
    pub parameter: Parameter,
    /// Its values, in the order they run.
    pub values: Vec<f64>,
}

/// Parses `NAME=V1,V2,...`; values may carry the suffixes k, M, Ki, Mi (and a trailing B).
pub fn parse_sweep(text: &str) -> Result<SweepSpec, String> {
    let (name, list) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not PARAMETER=V1,V2,... (e.g. clients=1,16,64)"))?;
    let name = name.trim();
    let parameter = PARAMETERS
        .into_iter()
        .find(|parameter| parameter.name() == name || parameter.name().replace('-', "_") == name)
        .ok_or_else(|| {
            let known: Vec<&str> = PARAMETERS
                .iter()
                .map(|parameter| parameter.name())
                .collect();
            format!(
                "unknown sweep parameter {name:?} (one of {})",
                known.join(", ")
            )
        })?;
    let (low, high) = parameter.bounds();
    let mut values = Vec::new();
    for item in list.split(',') {
        let value = parse_quantity(item)?;
        if !parameter.is_fraction() && value.fract() != 0.0 {
            return Err(format!(
                "{}: {item:?} is not a whole number",
                parameter.name()
            ));
        }
        if !(low..=high).contains(&value) {
            return Err(format!(
                "{}: {item:?} is outside {low}..={high}",
                parameter.name()
            ));
        }
        if values.contains(&value) {
            return Err(format!("{}: {item:?} is given twice", parameter.name()));
        }
        values.push(value);
    }
    Ok(SweepSpec { parameter, values })
}

/// A number with an optional multiplier suffix: `64Ki` = 65,536, `1M` = 1,000,000, `0.9`.
pub fn parse_quantity(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let without_unit = trimmed.strip_suffix('B').unwrap_or(trimmed);
    let split = without_unit
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(without_unit.len());
    let (number, suffix) = without_unit.split_at(split);
    let multiplier = match suffix {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "Ki" | "ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown suffix {other:?} in {trimmed:?} (use k, M, Ki or Mi)"
            ))
        }
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{trimmed:?} is not a number like 64, 0.9, 1k or 64Ki"))?;
    Ok(number * multiplier)
}

impl SweepSpec {
    /// The run of one point: `base` with the parameter set to `value`, no plot of its own,
    /// no nested sweep; and the background load it asks for.
    pub fn point(&self, base: &BenchArgs, value: f64) -> (BenchArgs, BackgroundLoad) {
        let mut args = base.clone();
        args.plot = None;
        args.sweep.sweep = None;
        let mut background = BackgroundLoad::default();
        // The values were checked against the parameter's bounds when parsed.
        let whole = value as u64;
        match self.parameter {
            Parameter::Clients => args.clients = whole,
            Parameter::ValueSize => args.value_size = whole as usize,
            Parameter::Keys => args.keys = whole,
            Parameter::ReadRatio => args.read_ratio = value,
            Parameter::Threads => args.threads = whole as u16,
            Parameter::Connections => args.connections = whole,
            Parameter::Watchers => background.watchers = whole as usize,
            Parameter::Leases => background.leases = whole,
        }
        (args, background)
    }
}

/// The headline figures of one run, the ones a sweep draws.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PointFigures {
    /// Successful operations per second.
    pub throughput_ops_per_sec: f64,
    /// Bytes of values acknowledged per second, in MB (10^6 bytes).
    pub write_mb_per_sec: f64,
    /// Latency percentiles of every successful operation, in microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Successful operations.
    pub ok: u64,
    /// Failed operations.
    pub errors: u64,
}

impl PointFigures {
    /// The figures of a run's report.
    pub fn of_report(report: &Report) -> PointFigures {
        PointFigures {
            throughput_ops_per_sec: report.throughput_ops_per_sec,
            write_mb_per_sec: mb_per_sec(report.ops.writes, report.value_size, report.elapsed_secs),
            p50_us: report.latency_us.p50,
            p99_us: report.latency_us.p99,
            p999_us: report.latency_us.p999,
            ok: report.ops.ok,
            errors: report.ops.errors,
        }
    }

    /// The figures of a report as `raftkv bench --json` printed it.
    pub fn of_json(report: &serde_json::Value) -> Result<PointFigures, String> {
        let number = |path: &[&str]| -> Result<f64, String> {
            path.iter()
                .try_fold(report, |value, name| value.get(name))
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| format!("the report has no number at {}", path.join(".")))
        };
        let writes = number(&["ops", "writes"])? as u64;
        let value_size = number(&["value_size"])? as usize;
        Ok(PointFigures {
            throughput_ops_per_sec: number(&["throughput_ops_per_sec"])?,
            write_mb_per_sec: mb_per_sec(writes, value_size, number(&["elapsed_secs"])?),
            p50_us: number(&["latency_us", "p50"])? as u64,
            p99_us: number(&["latency_us", "p99"])? as u64,
            p999_us: number(&["latency_us", "p999"])? as u64,
            ok: number(&["ops", "ok"])? as u64,
            errors: number(&["ops", "errors"])? as u64,
        })
    }
}

fn mb_per_sec(writes: u64, value_size: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        writes as f64 * value_size as f64 / seconds / 1e6
    } else {
        0.0
    }
}

/// One point of a sweep, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    /// The parameter's value.
    pub value: f64,
    /// The headline figures.
    pub figures: PointFigures,
    /// What the background load (watchers, leases) saw, when there was one.
    pub background: Option<BackgroundFigures>,
    /// The run's whole report.
    pub report: Report,
}

/// The result of a sweep, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct SweepResult {
    /// What varied.
    pub parameter: Parameter,
    /// The disk's sequential write bandwidth before and after, with --disk-dir.
    pub disk: Vec<DiskBandwidth>,
    /// One per value, in the order run.
    pub points: Vec<SweepPoint>,
}

/// Runs the sweep `spec` with `args` as every point's base, and prints the result.
pub(crate) async fn run(
    endpoints: Vec<String>,
    token: Option<String>,
    tls: Option<ClientTls>,
    args: BenchArgs,
    spec: SweepSpec,
) -> ExitCode {
    match run_sweep(&endpoints, token.as_deref(), tls, &args, &spec).await {
        Ok(result) => {
            // The plot first: a closed stdout (a pager quit early) must not lose it.
            if let Some(path) = &args.plot {
                let svg = match sweep_chart::render(&chart_of(&result, &args)) {
                    Ok(svg) => svg,
                    Err(error) => {
                        eprintln!("raftkv bench: {error}");
                        return ExitCode::from(1);
                    }
                };
                if let Err(error) = std::fs::write(path, svg) {
                    eprintln!(
                        "raftkv bench: cannot write the plot to {}: {error}",
                        path.display()
                    );
                    return ExitCode::from(1);
                }
            }
            if let Err(failed) = crate::print_result(args.json, &result, || table(&result)) {
                return failed;
            }
            if result.points.iter().any(|point| point.figures.ok == 0) {
                eprintln!("raftkv bench: a point of the sweep had no successful operation");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("raftkv bench: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run_sweep(
    endpoints: &[String],
    token: Option<&str>,
    tls: Option<ClientTls>,
    args: &BenchArgs,
    spec: &SweepSpec,
) -> Result<SweepResult, String> {
    let needs_background = matches!(spec.parameter, Parameter::Watchers | Parameter::Leases);
    if needs_background && tls.is_some() {
        return Err("watcher and lease sweeps speak plain HTTP only, not HTTPS".into());
    }
    if spec.parameter == Parameter::Leases && args.target != crate::TargetKind::Raftkv {
        return Err("lease sweeps drive raftkv's HTTP API only".into());
    }
    let mut disk = Vec::new();
    if let Some(dir) = &args.sweep.disk_dir {
        disk.push(measure_disk(dir, args.sweep.disk_bytes).await?);
    }
    let mut points = Vec::new();
    for &value in &spec.values {
        let (point_args, background) = spec.point(args, value);
        let running = background
            .start(
                endpoints,
                token,
                &point_args.key_prefix,
                args.request_timeout,
                args.target,
            )
            .await?;
        if !args.sweep.sweep_warmup.is_zero() {
            let mut warmup = point_args.clone();
            warmup.ops = None;
            warmup.duration = Some(args.sweep.sweep_warmup);
            crate::run_bench(endpoints.to_vec(), token, tls.clone(), &warmup).await?;
        }
        let report = crate::run_bench(endpoints.to_vec(), token, tls.clone(), &point_args).await;
        // Stop the background load even when the run failed, so no lease or watch outlives it.
        let background = running.stop().await?;
        let report = report?;
        let figures = PointFigures::of_report(&report);
        eprintln!(
            "{}={}: {:.0} ops/s, p50 {} µs, p99 {} µs, {} errors",
            spec.parameter.name(),
            value,
            figures.throughput_ops_per_sec,
            figures.p50_us,
            figures.p99_us,
            figures.errors
        );
        points.push(SweepPoint {
            value,
            figures,
            background,
            report,
        });
    }
    if let Some(dir) = &args.sweep.disk_dir {
        disk.push(measure_disk(dir, args.sweep.disk_bytes).await?);
    }
    Ok(SweepResult {
        parameter: spec.parameter,
        disk,
        points,
    })
}

async fn measure_disk(dir: &std::path::Path, bytes: u64) -> Result<DiskBandwidth, String> {
    let dir = dir.to_path_buf();
    let measured = tokio::task::spawn_blocking(move || crate::disk::measure(&dir, bytes))
        .await
        .map_err(|error| format!("the disk measurement failed: {error}"))??;
    eprintln!(
        "disk: {:.0} MB/s sequential write with fdatasync ({} MiB in {:.2} s)",
        measured.mb_per_sec,
        measured.bytes >> 20,
        measured.seconds
    );
    Ok(measured)
}

/// The chart of a sweep's result.
fn chart_of(result: &SweepResult, args: &BenchArgs) -> SweepChart {
    let points = result
        .points
        .iter()
        .map(|point| ChartPoint {
            value: point.value,
            figures: point.figures,
        })
        .collect();
    let workload = match args.read_ratio {
        _ if result.parameter == Parameter::ReadRatio => "operations".to_string(),
        0.0 => "writes".to_string(),
        1.0 => format!("{} reads", args.consistency.name()),
        ratio => format!("{:.0}% {} reads", ratio * 100.0, args.consistency.name()),
    };
    let title = format!(
        "{} {workload} against {}",
        args.target.name(),
        result.parameter.name()
    );
    SweepChart {
        title,
        x_label: result.parameter.axis_label().to_string(),
        points,
        show_bandwidth: result.parameter == Parameter::ValueSize || !result.disk.is_empty(),
        disk_mb_per_sec: result.disk.iter().map(|disk| disk.mb_per_sec).collect(),
        subtitle: subtitle(args, result.parameter),
    }
}

/// The options every point shares, for the chart's subtitle.
fn subtitle(args: &BenchArgs, parameter: Parameter) -> String {
    let mut parts = Vec::new();
    if parameter != Parameter::Clients {
        parts.push(format!("{} clients", args.clients));
    }
    if parameter != Parameter::ValueSize {
        parts.push(format!("{} B values", args.value_size));
    }
    if parameter != Parameter::ReadRatio {
        parts.push(format!("{:.0}% reads", args.read_ratio * 100.0));
    }
    parts.push(match (args.ops, args.duration) {
        (Some(ops), _) => format!("{ops} ops per point"),
        (None, duration) => format!(
            "{} s per point",
            duration.unwrap_or(crate::DEFAULT_DURATION).as_secs_f64()
        ),
    });
    parts.join(", ")
}

/// The text table of a sweep.
fn table(result: &SweepResult) -> String {
    let mut text = format!(
        "{:>12} {:>12} {:>10} {:>10} {:>10} {:>11} {:>8}\n",
        result.parameter.name(),
        "ops/s",
        "MB/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "errors"
    );
    for point in &result.points {
        let figures = &point.figures;
        text.push_str(&format!(
            "{:>12} {:>12.0} {:>10.2} {:>10} {:>10} {:>11} {:>8}\n",
            point.value,
            figures.throughput_ops_per_sec,
            figures.write_mb_per_sec,
            figures.p50_us,
            figures.p99_us,
            figures.p999_us,
            figures.errors
        ));
    }
    for (index, disk) in result.disk.iter().enumerate() {
        text.push_str(&format!(
            "disk {}: {:.0} MB/s sequential write with fdatasync\n",
            if index == 0 { "before" } else { "after" },
            disk.mb_per_sec
        ));
    }
    text
}

/// `raftkv bench sweep-plot` options: a sweep drawn from reports of separate runs.
#[derive(Clone, Debug, clap::Args)]
pub struct SweepPlotArgs {
    /// One point: the parameter's value and a file holding one `raftkv bench --json` report,
    /// as VALUE=FILE (repeat, or comma-separate).
    #[arg(long = "point", value_delimiter = ',', required = true, value_parser = parse_point)]
    pub points: Vec<(f64, PathBuf)>,
    /// The x axis's description (e.g. "nodes in the cluster").
    #[arg(long)]
    pub x_label: String,
    /// The chart's title.
    #[arg(long, default_value = "raftkv bench")]
    pub title: String,
    /// A line under the title (what every point shares).
    #[arg(long, default_value = "")]
    pub subtitle: String,
    /// Draw the values' MB/s, with these disk bandwidths (MB/s) as reference lines.
    #[arg(long, value_delimiter = ',')]
    pub disk_mb_per_sec: Vec<f64>,
    /// Where the SVG goes.
    #[arg(long)]
    pub plot: PathBuf,
}

fn parse_point(text: &str) -> Result<(f64, PathBuf), String> {
    let (value, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not VALUE=FILE"))?;
    Ok((parse_quantity(value)?, PathBuf::from(path)))
}

/// `raftkv bench sweep-plot`: draws reports of separate runs as one sweep.
pub fn plot_reports(args: SweepPlotArgs) -> ExitCode {
    match chart_of_reports(&args).and_then(|chart| sweep_chart::render(&chart)) {
        Ok(svg) => match std::fs::write(&args.plot, svg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!(
                    "raftkv bench sweep-plot: cannot write {}: {error}",
                    args.plot.display()
                );
                ExitCode::from(1)
            }
        },
        Err(error) => {
            eprintln!("raftkv bench sweep-plot: {error}");
            ExitCode::from(2)
        }
    }
}

fn chart_of_reports(args: &SweepPlotArgs) -> Result<SweepChart, String> {
    let mut points = Vec::new();
    for (value, path) in &args.points {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let report: serde_json::Value = serde_json::from_str(&text)
            .map_err(|error| format!("{} is not a JSON report: {error}", path.display()))?;
        let figures = PointFigures::of_json(&report)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        points.push(ChartPoint {
            value: *value,
            figures,
        });
    }
    Ok(SweepChart {
        title: args.title.clone(),
        subtitle: args.subtitle.clone(),
        x_label: args.x_label.clone(),
        points,
        show_bandwidth: !args.disk_mb_per_sec.is_empty(),
        disk_mb_per_sec: args.disk_mb_per_sec.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_parse_with_suffixes_and_either_spelling() {
        let spec = parse_sweep("value-size=100,1Ki,64KiB,1k").expect("parses");
        assert_eq!(spec.parameter, Parameter::ValueSize);
        assert_eq!(spec.values, vec![100.0, 1024.0, 65536.0, 1000.0]);
        let spec = parse_sweep("read_ratio=0,0.5,1").expect("parses");
        assert_eq!(spec.parameter, Parameter::ReadRatio);
        assert_eq!(spec.values, vec![0.0, 0.5, 1.0]);
        let spec = parse_sweep("keys=1M,10M").expect("parses");
        assert_eq!(spec.values, vec![1e6, 1e7]);
    }

    #[test]
    fn bad_sweeps_are_refused_with_the_reason() {
        for (text, reason) in [
            ("clients", "PARAMETER=V1"),
            ("speed=1,2", "unknown sweep parameter"),
            ("clients=0,4", "outside"),
            ("clients=1.5", "whole number"),
            ("clients=4,4", "twice"),
            ("clients=4,", "not a number"),
            ("read-ratio=1.5", "outside"),
            ("value-size=1Gi", "unknown suffix"),
        ] {
            let error = parse_sweep(text).expect_err(text);
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn a_point_sets_its_parameter_and_nothing_else() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let base = Cli::parse_from([
            "bench",
            "--clients",
            "8",
            "--plot",
            "x.svg",
            "--sweep",
            "clients=1,2",
        ])
        .bench;
        let spec = base.sweep.sweep.clone().expect("given");
        let (point, background) = spec.point(&base, 2.0);
        assert_eq!(point.clients, 2);
        assert_eq!(point.value_size, base.value_size);
        assert!(point.plot.is_none(), "a point draws no plot of its own");
        assert!(point.sweep.sweep.is_none(), "a point is not a sweep");
        assert_eq!((background.watchers, background.leases), (0, 0));

        let spec = parse_sweep("watchers=10").expect("parses");
        let (point, background) = spec.point(&base, 10.0);
        assert_eq!(point.clients, 8);
        assert_eq!(background.watchers, 10);
        let spec = parse_sweep("value-size=64Ki").expect("parses");
        assert_eq!(spec.point(&base, 65536.0).0.value_size, 65536);
    }

    #[test]
    fn figures_read_from_a_json_report_match_the_report_itself() {
        let report = serde_json::json!({
            "throughput_ops_per_sec": 2000.0,
            "elapsed_secs": 2.0,
            "value_size": 1000,
            "ops": {"total": 4001, "ok": 4000, "errors": 1, "reads": 0, "writes": 4000},
            "latency_us": {"p50": 300, "p90": 500, "p99": 900, "p999": 2000, "max": 5000},
        });
        let figures = PointFigures::of_json(&report).expect("complete");
        assert_eq!(figures.throughput_ops_per_sec, 2000.0);
        // 4,000 values of 1,000 bytes over 2 s.
        assert_eq!(figures.write_mb_per_sec, 2.0);
        assert_eq!(
            (figures.p50_us, figures.p99_us, figures.p999_us),
            (300, 900, 2000)
        );
        assert_eq!((figures.ok, figures.errors), (4000, 1));
        let error = PointFigures::of_json(&serde_json::json!({"ops": {}})).expect_err("empty");
        assert!(error.contains("ops.writes"), "{error}");
    }

    #[test]
    fn points_parse_as_value_equals_file() {
        assert_eq!(
            parse_point("5=runs/five.json"),
            Ok((5.0, PathBuf::from("runs/five.json")))
        );
        assert!(parse_point("runs/five.json").is_err());
    }
}
