//! The words and numbers on the plots: latencies with their unit, rates, counts, seconds,
//! percentiles as nines, and text made safe for an SVG file.

/// `value` with at most three significant digits and no trailing zeros: 1.23, 12.3, 123, 2.
pub(super) fn format_significant(value: f64) -> String {
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
pub(super) fn round_significant(value: f64) -> f64 {
    if value <= 0.0 {
        return 0.0;
    }
    let magnitude = 10f64.powi(value.log10().floor() as i32 - 2);
    (value / magnitude).round() * magnitude
}

/// A latency with its unit: "100 µs", "1.5 ms", "10 s".
pub(super) fn format_micros(micros: f64) -> String {
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
pub(super) fn format_rate(per_second: f64) -> String {
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
pub(super) fn format_count(count: u64) -> String {
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

/// A time-axis label in seconds: whole seconds bare, fractions with up to three decimals and
/// no trailing zeros ("2", "1.5", "0.25").
pub(super) fn format_seconds(seconds: f64) -> String {
    let text = format!("{seconds:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A duration for prose: "500 ms interval", "1 s interval".
pub(super) fn format_duration(micros: u64) -> String {
    format_micros(micros as f64)
}

/// The percentile `nines` nines deep: 0%, 90%, 99%, 99.9%, ...
pub(super) fn percentile_label(nines: u32) -> String {
    match nines {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        2 => "99%".to_string(),
        deeper => format!("99.{}%", "9".repeat(deeper as usize - 2)),
    }
}

/// log10(1/(1-`quantile`)), capped at `nines_max` so that quantile 1 (the maximum) lands on the
/// right edge instead of at infinity.
pub(super) fn nines_of(quantile: f64, nines_max: u32) -> f64 {
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
pub(super) fn decade_floor(value: u64) -> u32 {
    let mut remaining = value.max(1);
    let mut decade = 0;
    while remaining >= 10 {
        remaining /= 10;
        decade += 1;
    }
    decade
}

/// The exponent of the smallest power of ten at least `value` (0 for 0 and 1).
pub(super) fn decade_ceil(value: u64) -> u32 {
    let decade = decade_floor(value);
    if 10u64.checked_pow(decade) == Some(value.max(1)) {
        decade
    } else {
        decade + 1
    }
}

/// `text` with the characters XML 1.0 forbids (control characters other than tab, newline
/// and carriage return) replaced by U+FFFD, so any title makes a valid file. The SVG backend
/// escapes `&`, `<`, `>` and quotes itself.
pub(super) fn printable(text: &str) -> String {
    text.chars()
        .map(|character| match character {
            '\t' | '\n' | '\r' => character,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            _ => character,
        })
        .collect()
}
