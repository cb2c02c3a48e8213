//! `raftkv inspect`'s readable report: the verdict and the recovered state first, then a table
//! per kind of file, the findings, and the entries when asked for.

use std::fmt::Write as _;

use raft_wal::inspect::Inspection;

use super::{describe_configuration, file_name, EntryLine};
use crate::cli::output::table;

/// The report of `inspection`, with `entries` when `--entries` asked for them.
pub(super) fn report(inspection: &Inspection, entries: Option<&[EntryLine]>) -> String {
    let name = |path: &std::path::Path| file_name(inspection, path);
    let yes_no = |flag: bool| if flag { "yes" } else { "no" };
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(text, "data directory  {}", inspection.dir.display());
    let _ = writeln!(
        text,
        "stopped cleanly {}   suspect {}",
        yes_no(inspection.clean_shutdown),
        yes_no(inspection.suspect)
    );
    match (&inspection.recovered, inspection.damage().next()) {
        (Some(state), _) => {
            let _ = writeln!(text, "recovery        opens");
            let _ = writeln!(
                text,
                "hard state      term {}, vote {}, commit {}",
                state.hard_state.term.0,
                state
                    .hard_state
                    .vote
                    .map_or("none".to_string(), |node| node.0.to_string()),
                state.hard_state.commit.0
            );
            let _ = writeln!(
                text,
                "log             snapshot through index {} (term {}); entries {}..={} ({} live), last term {}",
                state.snapshot.index.0,
                state.snapshot.term.0,
                state.first_index.0,
                state.last_index.0,
                state.entries,
                state.last_term.0
            );
            let from = match state.configuration_index {
                Some(index) => format!("entry {}", index.0),
                None => "the snapshot".to_string(),
            };
            let _ = writeln!(
                text,
                "configuration   {} (from {from})",
                describe_configuration(&state.configuration)
            );
        }
        (None, Some(first)) => {
            let _ = writeln!(
                text,
                "recovery        REFUSES to start at {}{}: {}",
                name(&first.path),
                first
                    .offset
                    .map_or(String::new(), |offset| format!(" byte {offset}")),
                first.detail
            );
        }
        (None, None) => {
            let _ = writeln!(text, "recovery        nothing to recover");
        }
    }

    let rows: Vec<Vec<String>> = inspection
        .segments
        .iter()
        .map(|segment| {
            let range = |pair: Option<(u64, u64)>| {
                pair.map_or("-".to_string(), |(low, high)| format!("{low}..={high}"))
            };
            vec![
                name(&segment.path),
                segment.file_bytes.to_string(),
                segment.data_bytes.to_string(),
                segment.records.total().to_string(),
                segment.records.entries().to_string(),
                range(segment.index_range.map(|(low, high)| (low.0, high.0))),
                range(segment.term_range.map(|(low, high)| (low.0, high.0))),
                segment.live_entries.to_string(),
                segment.damage.to_string(),
            ]
        })
        .collect();
    let _ = write!(
        text,
        "\nsegments ({})\n{}",
        rows.len(),
        table(
            &["FILE", "BYTES", "DATA", "RECORDS", "ENTRIES", "INDEXES", "TERMS", "LIVE", "DAMAGE"],
            &rows
        )
    );

    let rows: Vec<Vec<String>> = inspection
        .snapshots
        .iter()
        .map(|snapshot| {
            let (checks, members) = match &snapshot.meta {
                Some(meta) => ("ok", describe_configuration(&meta.configuration)),
                None => ("DAMAGED", "-".to_string()),
            };
            vec![
                name(&snapshot.path),
                snapshot.named.index.0.to_string(),
                snapshot.named.term.0.to_string(),
                snapshot.file_bytes.to_string(),
                snapshot
                    .data_bytes
                    .map_or("-".to_string(), |bytes| bytes.to_string()),
                checks.to_string(),
                if snapshot.newest { "newest" } else { "older" }.to_string(),
                members,
            ]
        })
        .collect();
    let _ = write!(
        text,
        "\nsnapshots ({})\n{}",
        rows.len(),
        table(
            &[
                "FILE",
                "INDEX",
                "TERM",
                "BYTES",
                "DATA",
                "CHECKS",
                "ROLE",
                "CONFIGURATION"
            ],
            &rows
        )
    );

    if !inspection.temporary_files.is_empty() {
        let rows: Vec<Vec<String>> = inspection
            .temporary_files
            .iter()
            .map(|file| {
                vec![
                    name(&file.path),
                    file.file_bytes.to_string(),
                    file.staged.map_or("-".to_string(), |id| {
                        format!("index {} term {}", id.index.0, id.term.0)
                    }),
                    yes_no(file.complete).to_string(),
                ]
            })
            .collect();
        let _ = write!(
            text,
            "\ntemporary files ({})\n{}",
            rows.len(),
            table(&["FILE", "BYTES", "STAGED", "COMPLETE"], &rows)
        );
    }
    if !inspection.other_files.is_empty() {
        let others: Vec<String> = inspection
            .other_files
            .iter()
            .map(|path| name(path))
            .collect();
        let _ = writeln!(text, "\nother files: {}", others.join(", "));
    }

    let _ = writeln!(text, "\nfindings ({})", inspection.findings.len());
    for finding in &inspection.findings {
        let mut line = finding.to_string();
        // Full paths make long lines: the table above names files inside the directory.
        let full = finding.path.display().to_string();
        line = line.replacen(&full, &name(&finding.path), 1);
        let _ = writeln!(text, "  {line}");
    }

    if let Some(entries) = entries {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|entry| {
                vec![
                    entry.segment.to_string(),
                    entry.offset.to_string(),
                    entry.index.to_string(),
                    entry.term.to_string(),
                    entry.kind.to_string(),
                    entry.bytes.to_string(),
                    entry.summary.clone(),
                ]
            })
            .collect();
        let _ = write!(
            text,
            "\nentries in write order ({}; later ones replace earlier ones at the same index)\n{}",
            rows.len(),
            table(
                &["SEGMENT", "OFFSET", "INDEX", "TERM", "KIND", "BYTES", "WHAT"],
                &rows
            )
        );
    }
    text
}
