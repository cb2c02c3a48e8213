//! A self-contained HTML page picturing a [`Violation`]: one lane per client, one bar per entry
//! from invocation to completion, the linearized prefix numbered in green and the stuck
//! candidates in red. No script and no external asset, so the file can be attached to a bug.
//!
//! ```text
//!   client 1 │ [1. put x=1 ]        [get → 1        ]   (red: stuck)
//!   client 2 │       [2. put x=2 ]
//!            └──────┴──────┴──────┴──────  ms
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::describe::{
    completion_text, format_ms, operation_text, outcome_text, short_label, state_after_prefix,
    state_text,
};
use crate::history::Entry;
use crate::report::Violation;

const SVG_WIDTH_PX: f64 = 1100.0;
const LANE_LABEL_WIDTH_PX: f64 = 90.0;
const RIGHT_MARGIN_PX: f64 = 24.0;
const TOP_MARGIN_PX: f64 = 12.0;
/// A lane holds one or more rows; a client's unknown entry stays open to the right edge, so its
/// later entries need rows of their own.
const ROW_HEIGHT_PX: f64 = 34.0;
const BAR_HEIGHT_PX: f64 = 14.0;
const LANE_GAP_PX: f64 = 8.0;
const AXIS_HEIGHT_PX: f64 = 34.0;
const BAR_WIDTH_MIN_PX: f64 = 3.0;
/// A rough width of one label character at the font size used, to keep labels from overlapping.
const LABEL_CHAR_WIDTH_PX: f64 = 6.6;
/// How far past the last event unknown entries' bars run, as a fraction of the history's span.
const UNKNOWN_TAIL_FRACTION: f64 = 0.15;
/// About this many ticks on the time axis.
const AXIS_TICKS: f64 = 8.0;

/// What role an entry plays in the counterexample, which decides its color.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Linearized at this 1-based position of the prefix.
    Linearized(usize),
    /// A candidate after the prefix that the model rejects.
    Stuck,
    /// Neither.
    Other,
}

impl Role {
    fn colors(self) -> (&'static str, &'static str) {
        match self {
            Role::Linearized(_) => ("#8fd19e", "#2e7d32"),
            Role::Stuck => ("#ef9a9a", "#c62828"),
            Role::Other => ("#d5d5d5", "#757575"),
        }
    }
}

/// Escapes text for HTML content and attribute values alike.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(character),
        }
    }
    escaped
}

/// Maps nanoseconds to the x coordinate of the plot.
struct TimeScale {
    start_ns: u64,
    end_ns: u64,
}

impl TimeScale {
    fn x(&self, time_ns: u64) -> f64 {
        let span_ns = (self.end_ns - self.start_ns).max(1) as f64;
        let plot_width_px = SVG_WIDTH_PX - LANE_LABEL_WIDTH_PX - RIGHT_MARGIN_PX;
        LANE_LABEL_WIDTH_PX
            + (time_ns.saturating_sub(self.start_ns) as f64 / span_ns) * plot_width_px
    }

    fn right_edge_px(&self) -> f64 {
        SVG_WIDTH_PX - RIGHT_MARGIN_PX
    }
}

/// One bar placed in its lane.
struct Bar<'a> {
    entry: &'a Entry,
    role: Role,
    row: usize,
    start_px: f64,
    end_px: f64,
    label: String,
}

/// Renders the violation as a self-contained HTML page with an inline SVG timeline.
pub fn render_html(violation: &Violation) -> String {
    let roles = roles(violation);
    let scale = time_scale(&violation.history);
    let mut lanes: BTreeMap<u64, Vec<&Entry>> = BTreeMap::new();
    for entry in &violation.history {
        lanes.entry(entry.client).or_default().push(entry);
    }

    let mut svg = String::new();
    let mut lane_top_px = TOP_MARGIN_PX;
    for (lane_index, (client, entries)) in lanes.iter_mut().enumerate() {
        entries.sort_by_key(|entry| (entry.invoke_ns, entry.id));
        let bars = place_bars(entries, &roles, &scale);
        let rows = bars.iter().map(|bar| bar.row + 1).max().unwrap_or(1);
        let lane_height_px = rows as f64 * ROW_HEIGHT_PX;
        if lane_index % 2 == 0 {
            let _ = write!(
                svg,
                r##"<rect x="0" y="{:.1}" width="{SVG_WIDTH_PX}" height="{:.1}" fill="#f6f6f6"/>"##,
                lane_top_px - LANE_GAP_PX / 2.0,
                lane_height_px + LANE_GAP_PX
            );
        }
        let _ = write!(
            svg,
            r#"<text x="8" y="{:.1}" class="lane">client {client}</text>"#,
            lane_top_px + ROW_HEIGHT_PX / 2.0 + 4.0
        );
        for bar in &bars {
            svg.push_str(&bar_svg(bar, lane_top_px));
        }
        lane_top_px += lane_height_px + LANE_GAP_PX;
    }
    let axis_top_px = lane_top_px;
    svg.push_str(&axis_svg(&scale, axis_top_px));
    let height_px = axis_top_px + AXIS_HEIGHT_PX;

    let mut page = String::new();
    let title = format!("lincheck: key {:?} is not linearizable", violation.key);
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
svg text {{ font-size: 11px; font-family: ui-monospace, monospace; }}
svg text.lane {{ font-weight: bold; }}
svg text.tick {{ fill: #555; }}
.legend span {{ display: inline-block; margin-right: 18px; }}
.swatch {{ display: inline-block; width: 22px; height: 11px; vertical-align: middle; margin-right: 6px; border: 1px solid; }}
table {{ border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
tr.linearized td {{ background: #e8f5e9; }}
tr.stuck td {{ background: #ffebee; }}
</style>
</head>
<body>
<h1>{title}</h1>
{explanation}
<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_WIDTH_PX}" height="{height_px:.0}" viewBox="0 0 {SVG_WIDTH_PX} {height_px:.0}">
{svg}</svg>
{legend}
<h2>Entries</h2>
{table}
</body>
</html>
"#,
        title = escape(&title),
        explanation = explanation_html(violation),
        legend = legend_html(),
        table = table_html(violation, &roles),
    );
    page
}

fn roles(violation: &Violation) -> HashMap<u64, Role> {
    let mut roles = HashMap::new();
    for id in &violation.stuck_on {
        roles.insert(*id, Role::Stuck);
    }
    for (position, id) in violation.linearized_prefix.iter().enumerate() {
        roles.insert(*id, Role::Linearized(position + 1));
    }
    roles
}

/// From the first invocation to the last event, plus a tail for unknown entries to run into.
fn time_scale(history: &[Entry]) -> TimeScale {
    let start_ns = history
        .iter()
        .map(|entry| entry.invoke_ns)
        .min()
        .unwrap_or(0);
    let last_ns = history
        .iter()
        .map(|entry| {
            if entry.outcome.is_ok() {
                entry.complete_ns.max(entry.invoke_ns)
            } else {
                entry.invoke_ns
            }
        })
        .max()
        .unwrap_or(0);
    let span_ns = (last_ns - start_ns).max(1);
    let has_unknown = history.iter().any(|entry| !entry.outcome.is_ok());
    let tail_ns = if has_unknown {
        (span_ns as f64 * UNKNOWN_TAIL_FRACTION).ceil() as u64
    } else {
        0
    };
    let end_ns = last_ns.saturating_add(tail_ns).max(start_ns + 1);
    assert!(end_ns > start_ns);
    TimeScale { start_ns, end_ns }
}

/// Places a client's entries (sorted by invocation) in rows so that no two bars or labels
/// overlap: each goes in the first row whose last bar and label end before it starts.
fn place_bars<'a>(
    entries: &[&'a Entry],
    roles: &HashMap<u64, Role>,
    scale: &TimeScale,
) -> Vec<Bar<'a>> {
    let mut row_ends_px: Vec<f64> = Vec::new();
    let mut bars = Vec::with_capacity(entries.len());
    for &entry in entries {
        let role = roles.get(&entry.id).copied().unwrap_or(Role::Other);
        let start_px = scale.x(entry.invoke_ns);
        let end_px = if entry.outcome.is_ok() {
            scale.x(entry.complete_ns).max(start_px + BAR_WIDTH_MIN_PX)
        } else {
            scale.right_edge_px()
        };
        let label = match role {
            Role::Linearized(position) => format!("{position}. {}", short_label(entry)),
            _ => short_label(entry),
        };
        let label_end_px = start_px + label.chars().count() as f64 * LABEL_CHAR_WIDTH_PX;
        let occupied_end_px = end_px.max(label_end_px) + 4.0;
        let row = match row_ends_px
            .iter()
            .position(|&row_end_px| row_end_px <= start_px)
        {
            Some(row) => {
                row_ends_px[row] = occupied_end_px;
                row
            }
            None => {
                row_ends_px.push(occupied_end_px);
                row_ends_px.len() - 1
            }
        };
        bars.push(Bar {
            entry,
            role,
            row,
            start_px,
            end_px,
            label,
        });
    }
    bars
}

fn bar_svg(bar: &Bar<'_>, lane_top_px: f64) -> String {
    let (fill, stroke) = bar.role.colors();
    let row_top_px = lane_top_px + bar.row as f64 * ROW_HEIGHT_PX;
    let bar_top_px = row_top_px + ROW_HEIGHT_PX - BAR_HEIGHT_PX - 4.0;
    let unknown = !bar.entry.outcome.is_ok();
    let dash = if unknown {
        r#" stroke-dasharray="5 3" fill-opacity="0.35""#
    } else {
        ""
    };
    let weight = if matches!(bar.role, Role::Other) {
        "normal"
    } else {
        "bold"
    };
    format!(
        r#"<g><title>{tooltip}</title><rect x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{BAR_HEIGHT_PX}" rx="3" fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/><text x="{x:.1}" y="{label_y:.1}" font-weight="{weight}">{label}</text></g>
"#,
        tooltip = escape(&tooltip(bar)),
        x = bar.start_px,
        y = bar_top_px,
        width = bar.end_px - bar.start_px,
        label_y = bar_top_px - 4.0,
        label = escape(&bar.label),
    )
}

fn tooltip(bar: &Bar<'_>) -> String {
    let entry = bar.entry;
    let role = match bar.role {
        Role::Linearized(position) => format!("linearized as number {position}"),
        Role::Stuck => "could be next by real time, but the model rejects it".to_owned(),
        Role::Other => "not reached by the longest linearization".to_owned(),
    };
    format!(
        "entry {id}, client {client}\ninvoked {invoke} ms, completed {complete} ms\n{operation}\n{outcome}\n{role}",
        id = entry.id,
        client = entry.client,
        invoke = format_ms(entry.invoke_ns),
        complete = completion_text(entry),
        operation = operation_text(&entry.operation),
        outcome = outcome_text(&entry.outcome),
    )
}

/// A round step of 1, 2 or 5 times a power of ten giving about [`AXIS_TICKS`] ticks.
fn tick_step_ms(span_ms: f64) -> f64 {
    let raw_ms = (span_ms / AXIS_TICKS).max(1e-6);
    let magnitude = 10f64.powf(raw_ms.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * magnitude)
        .find(|step| *step >= raw_ms)
        .unwrap_or(10.0 * magnitude)
}

fn axis_svg(scale: &TimeScale, top_px: f64) -> String {
    let start_ms = scale.start_ns as f64 / 1e6;
    let end_ms = scale.end_ns as f64 / 1e6;
    let step_ms = tick_step_ms(end_ms - start_ms);
    let decimals = (-step_ms.log10().floor()).clamp(0.0, 6.0) as usize;
    let mut svg = format!(
        r##"<line x1="{LANE_LABEL_WIDTH_PX}" y1="{top_px:.1}" x2="{:.1}" y2="{top_px:.1}" stroke="#555"/>"##,
        scale.right_edge_px()
    );
    let mut tick_ms = (start_ms / step_ms).ceil() * step_ms;
    while tick_ms <= end_ms + step_ms * 1e-9 {
        let x = scale.x((tick_ms * 1e6).round() as u64);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{top_px:.1}" x2="{x:.1}" y2="{:.1}" stroke="#555"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{tick_ms:.decimals$}</text>"##,
            top_px + 5.0,
            top_px + 18.0
        );
        tick_ms += step_ms;
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">time (ms)</text>"#,
        scale.right_edge_px(),
        top_px + 31.0
    );
    svg
}

fn explanation_html(violation: &Violation) -> String {
    let state = state_after_prefix(violation)
        .map(|state| format!(" After them the key holds {}.", escape(&state_text(&state))))
        .unwrap_or_default();
    format!(
        "<p>No order of these {shown} operations (minimized from the key's {full}) respects both \
real time (an operation that completed before another was invoked comes first) and a single \
sequential key-value map, so the full history is not linearizable either.</p>\n\
<p>The numbered green bars are the longest order the search could build.{state} Each red bar \
could come next by real time, but its answer contradicts that state. Dashed bars have an unknown \
outcome: they may have taken effect at any time after they started, or never. Hover over a bar \
for its details.</p>",
        shown = violation.history.len(),
        full = violation.full_key_operations,
    )
}

fn legend_html() -> String {
    let swatch = |role: Role, text: &str| {
        let (fill, stroke) = role.colors();
        format!(
            r#"<span><i class="swatch" style="background:{fill};border-color:{stroke}"></i>{text}</span>"#
        )
    };
    format!(
        r#"<p class="legend">{}{}{}<span><i class="swatch" style="border-style:dashed"></i>unknown outcome</span></p>"#,
        swatch(Role::Linearized(1), "linearized (numbered in order)"),
        swatch(Role::Stuck, "stuck: rejected next"),
        swatch(Role::Other, "other"),
    )
}

fn table_html(violation: &Violation, roles: &HashMap<u64, Role>) -> String {
    let mut rows: Vec<&Entry> = violation.history.iter().collect();
    rows.sort_by_key(|entry| (entry.invoke_ns, entry.id));
    let mut table = String::from(
        "<table>\n<tr><th>id</th><th>client</th><th>invoke ms</th><th>complete ms</th>\
<th>operation</th><th>outcome</th><th>role</th></tr>\n",
    );
    for entry in rows {
        let (class, role) = match roles.get(&entry.id) {
            Some(Role::Linearized(position)) => ("linearized", format!("#{position}")),
            Some(Role::Stuck) => ("stuck", "stuck".to_owned()),
            _ => ("", String::new()),
        };
        let _ = writeln!(
            table,
            r#"<tr class="{class}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{role}</td></tr>"#,
            entry.id,
            entry.client,
            format_ms(entry.invoke_ns),
            completion_text(entry),
            escape(&operation_text(&entry.operation)),
            escape(&outcome_text(&entry.outcome)),
        );
    }
    table.push_str("</table>");
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn tick_steps_are_round() {
        let close = |actual: f64, expected: f64| (actual - expected).abs() < expected * 1e-9;
        assert!(close(tick_step_ms(10.0), 2.0));
        assert!(close(tick_step_ms(80.0), 10.0));
        assert!(close(tick_step_ms(0.4), 0.05));
    }
}
