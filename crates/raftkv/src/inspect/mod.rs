//! `raftkv inspect DATA_DIR`: what a stopped node's data directory holds, read without changing
//! it (see [`raft_wal::inspect`]): segments and their records, checksums, the hard state,
//! snapshot files, temporary files, the configuration, damage by file and byte offset, and
//! the state recovery would rebuild at the next start.
//!
//! ```text
//!  DATA_DIR ─► raft_wal::inspect::inspect_directory_with ─► Inspection ─┬─► text (default)
//!                 └─ every entry record (with --entries) ─► EntryLine ──┴─► --json
//!  exit: 0 read (clean, or damage without --verify) · 1 damage with --verify · 2 unusable
//! ```
//!
//! The JSON form (`--json`) is for scripts: its field names are stable and documented in
//! docs/operations.md ("Inspecting a data directory"); fields may be added, none renamed.

use std::path::PathBuf;
use std::process::ExitCode;

use raft_core::{Configuration, EntryKind};
use raft_wal::inspect::{inspect_directory_with, EntryRecord, InspectError, Inspection};

use crate::store::{Command, Operation};

mod json;
mod text;

/// `raftkv inspect`: the arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The node's data directory (its `--data-dir`). The node must be stopped: a directory
    /// whose lock a running node holds is refused.
    pub data_dir: PathBuf,
    /// Exit with status 1 when damage is found (recovery would refuse to start); what recovery
    /// repairs by itself (a torn tail, a leftover temporary file) is reported but is not damage.
    #[arg(long)]
    pub verify: bool,
    /// Print one JSON object (stable field names, see docs/operations.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also list every entry record in write order: segment, offset, index, term, kind, bytes
    /// and what a command does.
    #[arg(long)]
    pub entries: bool,
}

/// Exit statuses of `raftkv inspect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InspectExit {
    /// 0: the directory was read (and, with `--verify`, holds no damage).
    Read,
    /// 1: with `--verify`, damage was found.
    Damaged,
    /// 2: the directory could not be inspected: unreadable, held by a running node, or
    /// holding no log.
    Unusable,
}

impl InspectExit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            InspectExit::Read => 0,
            InspectExit::Damaged => 1,
            InspectExit::Unusable => 2,
        }
    }
}

/// One entry record, as `--entries` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryLine {
    /// The segment's sequence number.
    pub segment: u64,
    /// The frame's offset in the segment.
    pub offset: u64,
    /// The entry's index.
    pub index: u64,
    /// The entry's term.
    pub term: u64,
    /// `normal`, `noop` or `configuration`.
    pub kind: &'static str,
    /// Bytes of entry data.
    pub bytes: u64,
    /// What it does, briefly: a command's operation and key, a configuration's members.
    pub summary: String,
}

impl EntryLine {
    fn of(record: EntryRecord<'_>) -> EntryLine {
        let entry = record.entry;
        let (kind, summary) = match entry.kind {
            EntryKind::Normal => ("normal", describe_command(&entry.data)),
            EntryKind::Noop => ("noop", "leader's first entry of its term".to_string()),
            EntryKind::Configuration => (
                "configuration",
                match Configuration::decode(&entry.data) {
                    Ok(configuration) => describe_configuration(&configuration),
                    Err(error) => format!("undecodable configuration: {error}"),
                },
            ),
        };
        EntryLine {
            segment: record.segment,
            offset: record.offset,
            index: entry.id.index.0,
            term: entry.id.term.0,
            kind,
            bytes: entry.data.len() as u64,
            summary,
        }
    }
}

/// Runs `raftkv inspect`: prints the report on stdout (errors on stderr) and returns the exit
/// status.
pub fn run(args: &InspectArgs) -> ExitCode {
    let (exit, stdout, stderr) = execute(args);
    if !stdout.is_empty() {
        print!("{stdout}");
    }
    if !stderr.is_empty() {
        eprint!("{stderr}");
    }
    ExitCode::from(exit.code())
}

/// What `raftkv inspect` prints (stdout, stderr) and its exit status, kept apart from printing
/// so that it can be tested.
pub fn execute(args: &InspectArgs) -> (InspectExit, String, String) {
    let mut entries = Vec::new();
    let inspected = inspect_directory_with(&args.data_dir, |record| {
        if args.entries {
            entries.push(EntryLine::of(record));
        }
    });
    let inspection = match inspected {
        Ok(inspection) => inspection,
        Err(error) => return (InspectExit::Unusable, String::new(), unusable(&error)),
    };
    if !inspection.holds_log() {
        let mut message = format!(
            "raftkv: {} holds no write-ahead log (no segment, no snapshot file)",
            args.data_dir.display()
        );
        let others: Vec<String> = inspection
            .other_files
            .iter()
            .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
            .collect();
        if !others.is_empty() {
            message.push_str(&format!("; it holds: {}", others.join(", ")));
        }
        message.push('\n');
        return (InspectExit::Unusable, String::new(), message);
    }
    let entries = args.entries.then_some(&entries[..]);
    let stdout = if args.json {
        let mut json = json::report(&inspection, entries).to_string();
        json.push('\n');
        json
    } else {
        text::report(&inspection, entries)
    };
    let exit = if args.verify && inspection.is_damaged() {
        InspectExit::Damaged
    } else {
        InspectExit::Read
    };
    let stderr = if exit == InspectExit::Damaged {
        let damage: Vec<String> = inspection
            .damage()
            .map(|finding| format!("raftkv: {finding}\n"))
            .collect();
        damage.concat()
    } else {
        String::new()
    };
    (exit, stdout, stderr)
}

fn unusable(error: &InspectError) -> String {
    format!("raftkv: cannot inspect: {error}\n")
}

/// The voters (and outgoing voters and learners, when there are any) of `configuration`.
fn describe_configuration(configuration: &Configuration) -> String {
    let ids = |set: &std::collections::BTreeSet<raft_core::NodeId>| {
        set.iter()
            .map(|node| node.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut text = format!("voters {}", ids(&configuration.voters));
    if !configuration.outgoing.is_empty() {
        text.push_str(&format!(
            " (joint, outgoing {})",
            ids(&configuration.outgoing)
        ));
    }
    if !configuration.learners.is_empty() {
        text.push_str(&format!(", learners {}", ids(&configuration.learners)));
    }
    text
}

/// What a command entry does, in a few words (keys are shown in full: they are the operator's
/// own; values by their size only).
fn describe_command(data: &[u8]) -> String {
    let command = match Command::decode(data) {
        Ok(command) => command,
        Err(error) => return format!("not a raftkv command: {error}"),
    };
    let operation = match &command.operation {
        Operation::Put { key, value, lease } => {
            let lease = if *lease == 0 {
                String::new()
            } else {
                format!(" lease {lease:x}")
            };
            format!("put {key:?} ({} bytes){lease}", value.len())
        }
        Operation::Delete { key } => format!("delete {key:?}"),
        Operation::Append { key, suffix } => format!("append {key:?} ({} bytes)", suffix.len()),
        Operation::Cas { key, value, .. } => format!("cas {key:?} ({} bytes)", value.len()),
        Operation::Announce {
            node, http_address, ..
        } => format!("announce node {node} at {http_address}"),
        Operation::RaftAddress { node, raft_address } => {
            format!("raft address of node {node}: {raft_address}")
        }
        Operation::Compact { revision } => format!("compact through revision {revision}"),
        Operation::Txn(txn) => format!(
            "txn ({} comparisons, {} operations on success, {} on failure)",
            txn.compare.len(),
            txn.success.len(),
            txn.failure.len()
        ),
        Operation::LeaseGrant { id, ttl_seconds } => {
            format!("lease grant {id:x} ttl {ttl_seconds}s")
        }
        Operation::LeaseRevoke { id, expired } => {
            let why = if *expired { " (expired)" } else { "" };
            format!("lease revoke {id:x}{why}")
        }
        Operation::LeaseCheckpoint { checkpoints } => {
            format!("lease checkpoint of {} leases", checkpoints.len())
        }
        Operation::HashCheck => "consistency check: every member hashes its state here".to_string(),
    };
    match &command.session {
        Some(session) => format!(
            "{operation}; session {} #{}",
            session.client_id, session.sequence
        ),
        None => operation,
    }
}

/// The path of `path` inside the inspected directory (`.` for the directory itself), as the
/// report names files.
fn file_name(inspection: &Inspection, path: &std::path::Path) -> String {
    match path.strip_prefix(&inspection.dir) {
        Ok(inside) if inside.as_os_str().is_empty() => ".".to_string(),
        Ok(inside) => inside.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::store::Session;

    #[test]
    fn commands_are_described_by_operation_key_and_size() {
        let put = Command {
            session: None,
            operation: Operation::Put {
                key: "config/a".into(),
                value: Bytes::from_static(b"12345"),
                lease: 0x1f,
            },
            request_id: Some(7),
        };
        assert_eq!(
            describe_command(&put.encode()),
            "put \"config/a\" (5 bytes) lease 1f"
        );
        let delete = Command {
            session: Some(Session {
                client_id: crate::store::sessions::ClientId::from(42),
                sequence: 3,
            }),
            operation: Operation::Delete { key: "k".into() },
            request_id: None,
        };
        assert_eq!(
            describe_command(&delete.encode()),
            "delete \"k\"; session 42 #3"
        );
        assert!(describe_command(b"\xff\xff").starts_with("not a raftkv command"));
    }

    #[test]
    fn a_directory_without_a_log_is_unusable_and_what_it_holds_is_named() {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("node-1")).expect("a node's directory");
        let args = InspectArgs {
            data_dir: dir.path().to_path_buf(),
            verify: true,
            json: false,
            entries: false,
        };
        let (exit, stdout, stderr) = execute(&args);
        assert_eq!(exit, InspectExit::Unusable);
        assert_eq!(stdout, "");
        assert!(
            stderr.contains("holds no write-ahead log") && stderr.contains("it holds: node-1"),
            "{stderr}"
        );
        let missing = InspectArgs {
            data_dir: dir.path().join("absent"),
            ..args
        };
        let (exit, _, stderr) = execute(&missing);
        assert_eq!(exit, InspectExit::Unusable);
        assert!(
            stderr.starts_with("raftkv: cannot inspect: list directory"),
            "{stderr}"
        );
        assert!(!dir.path().join("absent").exists(), "nothing is created");
    }

    #[test]
    fn configurations_name_every_set_that_is_not_empty() {
        use raft_core::NodeId;
        let plain = Configuration::new([NodeId(1), NodeId(2), NodeId(3)]);
        assert_eq!(describe_configuration(&plain), "voters 1,2,3");
        let joint = Configuration {
            voters: [NodeId(1), NodeId(4)].into_iter().collect(),
            outgoing: [NodeId(1), NodeId(2)].into_iter().collect(),
            learners: [NodeId(5)].into_iter().collect(),
        };
        assert_eq!(
            describe_configuration(&joint),
            "voters 1,4 (joint, outgoing 1,2), learners 5"
        );
    }
}
