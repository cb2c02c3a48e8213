//! `raftkv inspect --json`: one JSON object, its field names documented in docs/operations.md
//! ("Inspecting a data directory"). Fields may be added; none is renamed or removed.

use raft_core::{Configuration, HardState, LogId};
use raft_wal::inspect::{Inspection, RecordCounts, Severity};
use serde_json::{json, Value};

use super::{file_name, EntryLine};

/// The report of `inspection`, with `entries` when `--entries` asked for them.
pub(super) fn report(inspection: &Inspection, entries: Option<&[EntryLine]>) -> Value {
    let name = |path: &std::path::Path| file_name(inspection, path);
    let segments: Vec<Value> = inspection
        .segments
        .iter()
        .map(|segment| {
            json!({
                "file": name(&segment.path),
                "sequence": segment.sequence,
                "file_bytes": segment.file_bytes,
                "data_bytes": segment.data_bytes,
                "preallocated_bytes": segment.preallocated_bytes,
                "records": records(&segment.records),
                "entry_data_bytes": segment.entry_data_bytes,
                "first_index": segment.index_range.map(|(low, _)| low.0),
                "last_index": segment.index_range.map(|(_, high)| high.0),
                "first_term": segment.term_range.map(|(low, _)| low.0),
                "last_term": segment.term_range.map(|(_, high)| high.0),
                "last_hard_state": segment.last_hard_state.as_ref().map(hard_state),
                "live_entries": segment.live_entries,
                "damage": segment.damage,
            })
        })
        .collect();
    let snapshots: Vec<Value> = inspection
        .snapshots
        .iter()
        .map(|snapshot| {
            json!({
                "file": name(&snapshot.path),
                "index": snapshot.named.index.0,
                "term": snapshot.named.term.0,
                "file_bytes": snapshot.file_bytes,
                "valid": snapshot.meta.is_some(),
                "data_bytes": snapshot.data_bytes,
                "configuration": snapshot.meta.as_ref().map(|meta| configuration(&meta.configuration)),
                "newest": snapshot.newest,
            })
        })
        .collect();
    let temporary_files: Vec<Value> = inspection
        .temporary_files
        .iter()
        .map(|file| {
            json!({
                "file": name(&file.path),
                "file_bytes": file.file_bytes,
                "staged": file.staged.map(log_id),
                "complete": file.complete,
            })
        })
        .collect();
    let findings: Vec<Value> = inspection
        .findings
        .iter()
        .map(|finding| {
            json!({
                "severity": match finding.severity {
                    Severity::Damage => "damage",
                    Severity::Repairable => "repairable",
                },
                "problem": finding.problem.name(),
                "file": name(&finding.path),
                "offset": finding.offset,
                "detail": finding.detail,
            })
        })
        .collect();
    let recovered = inspection.recovered.as_ref().map(|state| {
        json!({
            "snapshot": log_id(state.snapshot),
            "first_index": state.first_index.0,
            "last_index": state.last_index.0,
            "last_term": state.last_term.0,
            "entries": state.entries,
            "hard_state": hard_state(&state.hard_state),
            "configuration": configuration(&state.configuration),
            "configuration_index": state.configuration_index.map(|index| index.0),
        })
    });
    let other_files: Vec<String> = inspection
        .other_files
        .iter()
        .map(|path| name(path))
        .collect();
    let mut report = json!({
        "dir": inspection.dir.display().to_string(),
        "damaged": inspection.is_damaged(),
        "recovery": if inspection.recovered.is_some() { "opens" } else { "refuses" },
        "clean_shutdown": inspection.clean_shutdown,
        "suspect": inspection.suspect,
        "recovered": recovered,
        "segments": segments,
        "snapshots": snapshots,
        "temporary_files": temporary_files,
        "other_files": other_files,
        "findings": findings,
    });
    if let Some(entries) = entries {
        report["entries"] = entries
            .iter()
            .map(|entry| {
                json!({
                    "segment": entry.segment,
                    "offset": entry.offset,
                    "index": entry.index,
                    "term": entry.term,
                    "kind": entry.kind,
                    "bytes": entry.bytes,
                    "summary": entry.summary,
                })
            })
            .collect();
    }
    report
}

fn records(counts: &RecordCounts) -> Value {
    json!({
        "total": counts.total(),
        "normal_entries": counts.normal_entries,
        "noop_entries": counts.noop_entries,
        "configuration_entries": counts.configuration_entries,
        "hard_states": counts.hard_states,
        "snapshot_markers": counts.snapshot_markers,
    })
}

fn hard_state(hard_state: &HardState) -> Value {
    json!({
        "term": hard_state.term.0,
        "vote": hard_state.vote.map(|node| node.0),
        "commit": hard_state.commit.0,
    })
}

fn log_id(id: LogId) -> Value {
    json!({ "index": id.index.0, "term": id.term.0 })
}

fn configuration(configuration: &Configuration) -> Value {
    let ids = |set: &std::collections::BTreeSet<raft_core::NodeId>| {
        set.iter().map(|node| node.0).collect::<Vec<u64>>()
    };
    json!({
        "voters": ids(&configuration.voters),
        "outgoing": ids(&configuration.outgoing),
        "learners": ids(&configuration.learners),
    })
}
