//! The coordination commands: `txn`, `watch` and `compact` (reads at a revision are flags of
//! `get` and `scan`, in `kv`).
//!
//! ```text
//!  txn -f FILE|-  ──── JSON TxnRequest, or the line syntax ──┐
//!  txn --compare C --success OP --failure OP ─ line syntax ──┼─▶ Client::txn ─▶ branch, results
//!  txn (stdin) ─────── line syntax, prompted on a terminal ──┘
//!  watch KEY [--prefix] [--revision N] ─▶ Client::watch ─▶ a line per event, as they come
//!  compact N ─▶ Client::compact
//! ```

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use raftkv_client::api::{
    EventType, TxnOp, TxnOpResult, TxnRequest, TxnResponse, VersionedKeyValue, WatchEvents,
};
use raftkv_client::{Client, ClientError, WatchMessage, WatchRequest};

use super::output::{Exit, Output};
use super::txn_syntax::{parse_compare, parse_op, parse_txn};

/// The coordination commands (flattened into [`ClientCommand`](super::ClientCommand)).
#[derive(Debug, clap::Subcommand)]
pub enum CoordinationCommand {
    /// Runs a transaction: if every comparison holds, the success operations, else the
    /// failure ones, atomically at one revision.
    ///
    /// The transaction comes from -f FILE (`-`: stdin) as a JSON TxnRequest or in the line
    /// syntax; or from --compare/--success/--failure, each a line of that syntax; or, with none
    /// of these, in the line syntax from stdin (prompted on a terminal). The line syntax is three
    /// blocks ended by blank lines: comparisons such as `version(k) = 0`, `value(k) != "x"`,
    /// `mod(k) > 5`, `create(k) < 9`, `exists(k) = true`; then the success operations `put k v`,
    /// `del k`, `del --prefix p`, `get k`, `scan p [limit]`; then the failure operations
    /// (docs/coordination.md has it all).
    ///
    /// Prints `succeeded revision=R index=I term=T` (or `failed ...`: the failure branch
    /// ran), then a line per operation: `put KEY prev=VALUE|(absent)`, `del KEY deleted=N`,
    /// `get KEY VALUE create=C mod=M version=V` or `get KEY (absent)`, `scan PREFIX keys=N`
    /// followed by `KEY<TAB>VALUE` lines. --json prints the TxnResponse instead.
    ///
    /// Exit status: 0 the comparisons held, 1 they did not (the failure branch ran), 2 bad
    /// input (the line and the fault are named) or a transaction the server refused, 3
    /// unavailable, 4 other server error.
    Txn {
        /// The transaction, as JSON or the line syntax; `-` reads stdin.
        #[arg(short = 'f', long = "file", conflicts_with_all = ["compare", "success", "failure"])]
        file: Option<PathBuf>,
        /// A comparison, such as `version(k) = 0` (repeatable).
        #[arg(long, allow_hyphen_values = true)]
        compare: Vec<String>,
        /// An operation of the success branch, such as `put k v` (repeatable).
        #[arg(long, allow_hyphen_values = true)]
        success: Vec<String>,
        /// An operation of the failure branch, such as `get k` (repeatable).
        #[arg(long, allow_hyphen_values = true)]
        failure: Vec<String>,
        /// Print the answer as JSON (a TxnResponse).
        #[arg(long)]
        json: bool,
    },
    /// Prints the changes of KEY (or with --prefix, of every key starting with it) as they
    /// happen, from --revision on (default: from now), until interrupted or --count events.
    ///
    /// One line per event: `REVISION<TAB>put<TAB>KEY<TAB>VALUE` or
    /// `REVISION<TAB>delete<TAB>KEY` (a value that is not UTF-8 as `base64:...`); with
    /// --progress also `REVISION<TAB>progress` while nothing changes; with --json a
    /// WatchEvents object per revision instead. The watch resumes by itself on another node
    /// when its node fails, with no event missed or repeated.
    ///
    /// Exit status: 0 --count events printed, 2 the start revision is compacted or bad input,
    /// 3 no node served the watch for the retry deadline, 4 other server error.
    Watch {
        /// The key, or with --prefix the prefix.
        key: String,
        /// Watch every key starting with KEY.
        #[arg(long)]
        prefix: bool,
        /// The first revision whose changes are printed (a past one replays the history).
        #[arg(long)]
        revision: Option<u64>,
        /// Also print progress lines, asking the node for one every --progress-interval-ms.
        #[arg(long)]
        progress: bool,
        /// How often a node reports progress while nothing changes, in milliseconds (10 to
        /// 3,600,000). A connection silent for three intervals is replaced.
        #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
        progress_interval_ms: u64,
        /// Stop after printing this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Print each revision's events as a JSON WatchEvents object, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Forgets the history before REVISION: reads and watches at older revisions fail
    /// afterwards; REVISION itself stays readable.
    ///
    /// Prints `compacted compact_revision=C revision=R index=I term=T`.
    ///
    /// Exit status: 0 done, 2 REVISION is past the current revision, 3 unavailable, 4 other
    /// server error.
    Compact {
        /// The oldest revision to keep.
        revision: u64,
    },
}

/// Runs `command` with `client`, writing a watch's lines to stdout as they come.
pub(super) async fn execute(client: &Client, command: CoordinationCommand) -> Output {
    match command {
        CoordinationCommand::Txn {
            file,
            compare,
            success,
            failure,
            json,
        } => {
            let request = match read_request(file, &compare, &success, &failure) {
                Ok(request) => request,
                Err(message) => return Output::failure(Exit::Input, message),
            };
            match client.txn(&request).await {
                Ok(response) if json => json_output(&response, response.succeeded),
                Ok(response) => txn_output(&request, &response),
                Err(error) => Output::from_error(&error),
            }
        }
        CoordinationCommand::Watch {
            key,
            prefix,
            revision,
            progress,
            progress_interval_ms,
            count,
            json,
        } => {
            let request = WatchRequest {
                selector: if prefix {
                    raftkv_client::WatchSelector::Prefix(key)
                } else {
                    raftkv_client::WatchSelector::Key(key)
                },
                start_revision: revision,
                progress_interval: Some(Duration::from_millis(progress_interval_ms)),
            };
            let format = WatchFormat { progress, json };
            let mut stdout = std::io::stdout();
            watch(client, request, format, count, &mut stdout).await
        }
        CoordinationCommand::Compact { revision } => match client.compact(revision).await {
            Ok(compacted) => Output::success(format!(
                "compacted compact_revision={} revision={} index={} term={}",
                compacted.compact_revision, compacted.revision, compacted.index, compacted.term
            )),
            Err(error) => Output::from_error(&error),
        },
    }
}

/// The transaction the flags, the file or stdin give.
fn read_request(
    file: Option<PathBuf>,
    compare: &[String],
    success: &[String],
    failure: &[String],
) -> Result<TxnRequest, String> {
    if let Some(path) = file {
        let text = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| format!("reading stdin: {error}"))?;
            text
        } else {
            std::fs::read_to_string(&path)
                .map_err(|error| format!("reading {}: {error}", path.display()))?
        };
        let name = if path.as_os_str() == "-" {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        return parse_text(&text).map_err(|error| format!("{name}: {error}"));
    }
    if !(compare.is_empty() && success.is_empty() && failure.is_empty()) {
        let flagged =
            |flag: &str, index: usize, error: String| format!("--{flag} #{}: {error}", index + 1);
        let mut request = TxnRequest::default();
        for (index, line) in compare.iter().enumerate() {
            request
                .compare
                .push(parse_compare(line).map_err(|error| flagged("compare", index, error))?);
        }
        for (index, line) in success.iter().enumerate() {
            request
                .success
                .push(parse_op(line).map_err(|error| flagged("success", index, error))?);
        }
        for (index, line) in failure.iter().enumerate() {
            request
                .failure
                .push(parse_op(line).map_err(|error| flagged("failure", index, error))?);
        }
        return Ok(request);
    }
    read_interactively()
}

/// A JSON TxnRequest (text starting with `{`), else the line syntax.
fn parse_text(text: &str) -> Result<TxnRequest, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|error| format!("not a JSON TxnRequest: {error}"))
    } else {
        parse_txn(text)
    }
}

/// The line syntax from stdin; on a terminal each block is prompted for on stderr, and a
/// mistake is reported at once with its line.
fn read_interactively() -> Result<TxnRequest, String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let prompts = [
        "compares (e.g. version(k) = 0), a blank line to end:",
        "success requests (put k v, del k, del --prefix p, get k, scan p [limit]), a blank line to end:",
        "failure requests, a blank line to end:",
    ];
    let mut text = String::new();
    let mut block = 0;
    if terminal {
        eprintln!("{}", prompts[0]);
    }
    for line in stdin.lines() {
        let line = line.map_err(|error| format!("reading stdin: {error}"))?;
        text.push_str(&line);
        text.push('\n');
        if line.trim().is_empty() {
            block += 1;
            if terminal && block == prompts.len() {
                break;
            }
            if terminal {
                eprintln!("{}", prompts[block]);
            }
        } else if terminal {
            // Checked now, so a typo is caught while the rest is still to be typed.
            parse_txn(&text).map_err(|error| format!("stdin: {error}"))?;
        }
    }
    parse_txn(&text).map_err(|error| format!("stdin: {error}"))
}

/// A serializable answer printed as one line of JSON; exit 1 when `ok` is false.
fn json_output<T: serde::Serialize>(answer: &T, ok: bool) -> Output {
    match serde_json::to_string(answer) {
        Ok(line) => Output {
            exit: if ok {
                Exit::Success
            } else {
                Exit::NotFoundOrNotSwapped
            },
            ..Output::success(line)
        },
        Err(error) => Output::failure(Exit::ServerError, format!("encoding the answer: {error}")),
    }
}

/// `succeeded|failed revision=R index=I term=T` and a line (or lines) per operation.
pub(super) fn txn_output(request: &TxnRequest, response: &TxnResponse) -> Output {
    let branch = if response.succeeded {
        &request.success
    } else {
        &request.failure
    };
    let mut lines = vec![format!(
        "{} revision={} index={} term={}",
        if response.succeeded {
            "succeeded"
        } else {
            "failed"
        },
        response.revision,
        response.index,
        response.term
    )];
    for (index, result) in response.results.iter().enumerate() {
        let op = branch.get(index);
        match (op, result) {
            (Some(TxnOp::Put { key, .. }), TxnOpResult::Put { prev }) => lines.push(format!(
                "put {key} prev={}",
                prev.as_ref().map_or("(absent)".to_string(), value_text)
            )),
            (Some(TxnOp::Delete { key }), TxnOpResult::Delete { deleted }) => {
                lines.push(format!("del {key} deleted={deleted}"))
            }
            (Some(TxnOp::DeletePrefix { prefix }), TxnOpResult::Delete { deleted }) => {
                lines.push(format!("del --prefix {prefix} deleted={deleted}"))
            }
            (Some(TxnOp::Get { key }), TxnOpResult::Get { kv }) => lines.push(match kv {
                Some(kv) => format!(
                    "get {key} {} create={} mod={} version={}",
                    value_text(kv),
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version
                ),
                None => format!("get {key} (absent)"),
            }),
            (Some(TxnOp::Scan { prefix, .. }), TxnOpResult::Scan { items, truncated }) => {
                lines.push(format!(
                    "scan {prefix} keys={}{}",
                    items.len(),
                    if *truncated { " truncated" } else { "" }
                ));
                for item in items {
                    lines.push(format!("{}\t{}", item.key, value_text(item)));
                }
            }
            // The answer does not match the request: print what the answer says.
            (_, result) => lines.push(format!("{result:?}")),
        }
    }
    Output {
        stdout: format!("{}\n", lines.join("\n")).into_bytes(),
        stderr: Vec::new(),
        exit: if response.succeeded {
            Exit::Success
        } else {
            Exit::NotFoundOrNotSwapped
        },
    }
}

/// A value as the CLI prints it: the text, or `base64:` and its base64.
pub(super) fn value_text(kv: &VersionedKeyValue) -> String {
    match (&kv.value, &kv.value_base64) {
        (Some(value), _) => value.clone(),
        (None, Some(encoded)) => format!("base64:{encoded}"),
        (None, None) => String::new(),
    }
}

/// What `watch` prints.
#[derive(Clone, Copy, Debug)]
pub(super) struct WatchFormat {
    pub(super) progress: bool,
    pub(super) json: bool,
}

/// Follows `request`, writing each message's lines to `out` as it comes, until `count` events
/// are printed or the watch ends with an error.
pub(super) async fn watch(
    client: &Client,
    request: WatchRequest,
    format: WatchFormat,
    count: Option<u64>,
    out: &mut impl Write,
) -> Output {
    let mut stream = client.watch(request);
    let mut printed: u64 = 0;
    if count == Some(0) {
        return Output::empty();
    }
    while let Some(message) = stream.next().await {
        let lines = match message {
            Ok(WatchMessage::Events(events)) => {
                let room = count.map_or(u64::MAX, |count| count - printed);
                let lines = watch_lines(&events, format.json, room);
                printed += if format.json {
                    (events.events.len() as u64).min(room)
                } else {
                    lines.len() as u64
                };
                lines
            }
            Ok(WatchMessage::Progress(progress)) if format.progress => {
                if format.json {
                    vec![format!("{{\"progress\":{}}}", progress.revision)]
                } else {
                    vec![format!("{}\tprogress", progress.revision)]
                }
            }
            Ok(WatchMessage::Progress(_)) => Vec::new(),
            Err(error) => return watch_error(&error),
        };
        for line in lines {
            match writeln!(out, "{line}").and_then(|()| out.flush()) {
                Ok(()) => {}
                // The reader went away (`raftkv watch k | head -n 1`): it has what it wanted.
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Output::empty()
                }
                Err(error) => {
                    return Output::failure(
                        Exit::ServerError,
                        format!("writing the output: {error}"),
                    )
                }
            }
        }
        if count.is_some_and(|count| printed >= count) {
            return Output::empty();
        }
    }
    Output::failure(
        Exit::ServerError,
        "the watch ended without a reason".to_string(),
    )
}

fn watch_error(error: &ClientError) -> Output {
    let mut output = Output::from_error(error);
    if let ClientError::Compacted {
        compact_revision, ..
    } = error
    {
        output.stderr.push(format!(
            "raftkv: watch again with --revision {compact_revision} or later"
        ));
    }
    output
}

/// The lines of one revision's events (at most `room` events).
fn watch_lines(events: &WatchEvents, json: bool, room: u64) -> Vec<String> {
    if json {
        let mut shown = events.clone();
        shown
            .events
            .truncate(usize::try_from(room).unwrap_or(usize::MAX));
        return serde_json::to_string(&shown).map_or_else(|_| Vec::new(), |line| vec![line]);
    }
    events
        .events
        .iter()
        .take(usize::try_from(room).unwrap_or(usize::MAX))
        .map(|event| match event.kind {
            EventType::Put => format!(
                "{}\tput\t{}\t{}",
                events.revision,
                event.kv.key,
                value_text(&event.kv)
            ),
            EventType::Delete => format!("{}\tdelete\t{}", events.revision, event.kv.key),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use raftkv_client::api::{Compare, CompareOp, CompareTarget, WatchEvent};

    use super::super::parse;
    use super::*;
    use crate::cli::ClientCommand;

    fn kv(key: &str, value: &str, revision: u64) -> VersionedKeyValue {
        VersionedKeyValue {
            key: key.to_string(),
            value: Some(value.to_string()),
            value_base64: None,
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        }
    }

    #[test]
    fn txn_prints_the_branch_each_result_and_the_revision() {
        let request = TxnRequest {
            compare: vec![Compare {
                key: "k".to_string(),
                op: CompareOp::Equal,
                target: CompareTarget::Version(0),
            }],
            success: vec![
                TxnOp::Put {
                    key: "k".to_string(),
                    value: Some("v".to_string()),
                    value_base64: None,
                    lease: None,
                },
                TxnOp::DeletePrefix {
                    prefix: "tmp/".to_string(),
                },
                TxnOp::Scan {
                    prefix: "k".to_string(),
                    limit: None,
                },
            ],
            failure: vec![TxnOp::Get {
                key: "k".to_string(),
            }],
        };
        let succeeded = TxnResponse {
            succeeded: true,
            results: vec![
                TxnOpResult::Put { prev: None },
                TxnOpResult::Delete { deleted: 2 },
                TxnOpResult::Scan {
                    items: vec![kv("k", "v", 8)],
                    truncated: false,
                },
            ],
            revision: 8,
            index: 30,
            term: 2,
        };
        let output = txn_output(&request, &succeeded);
        assert_eq!(output.exit, Exit::Success);
        assert_eq!(
            String::from_utf8(output.stdout).expect("text"),
            "succeeded revision=8 index=30 term=2\nput k prev=(absent)\n\
             del --prefix tmp/ deleted=2\nscan k keys=1\nk\tv\n"
        );
        let failed = TxnResponse {
            succeeded: false,
            results: vec![TxnOpResult::Get {
                kv: Some(kv("k", "v", 8)),
            }],
            revision: 9,
            index: 31,
            term: 2,
        };
        let output = txn_output(&request, &failed);
        assert_eq!(output.exit.code(), 1);
        assert_eq!(
            String::from_utf8(output.stdout).expect("text"),
            "failed revision=9 index=31 term=2\nget k v create=8 mod=8 version=1\n"
        );
    }

    #[test]
    fn watch_lines_are_tab_separated_and_bounded_by_the_count() {
        let events = WatchEvents {
            revision: 12,
            events: vec![
                WatchEvent {
                    kind: EventType::Put,
                    kv: kv("a", "1", 12),
                },
                WatchEvent {
                    kind: EventType::Delete,
                    kv: VersionedKeyValue {
                        value: None,
                        ..kv("b", "", 0)
                    },
                },
            ],
        };
        assert_eq!(
            watch_lines(&events, false, u64::MAX),
            ["12\tput\ta\t1", "12\tdelete\tb"]
        );
        assert_eq!(watch_lines(&events, false, 1), ["12\tput\ta\t1"]);
        let json = watch_lines(&events, true, 1);
        assert_eq!(json.len(), 1);
        let parsed: WatchEvents = serde_json::from_str(&json[0]).expect("json");
        assert_eq!(parsed.events.len(), 1);
    }

    #[test]
    fn flags_of_the_transaction_are_lines_of_the_syntax_and_errors_name_the_flag() {
        let request = read_request(
            None,
            &["version(k) = 0".to_string()],
            &["put k v".to_string(), "get k".to_string()],
            &["get k".to_string()],
        )
        .expect("valid");
        assert_eq!(
            (
                request.compare.len(),
                request.success.len(),
                request.failure.len()
            ),
            (1, 2, 1)
        );
        let error = read_request(None, &[], &["put k".to_string(), "frob".to_string()], &[])
            .expect_err("bad");
        assert_eq!(error, "--success #1: `put` needs a value after the key");
    }

    #[test]
    fn a_file_is_json_or_the_line_syntax() {
        let dir = tempfile::tempdir().expect("dir");
        let json = dir.path().join("txn.json");
        std::fs::write(
            &json,
            r#"{"compare":[{"key":"k","op":"=","version":0}],"success":[{"put":{"key":"k","value":"v"}}]}"#,
        )
        .expect("write");
        let parsed = read_request(Some(json), &[], &[], &[]).expect("json");
        assert_eq!(parsed.success.len(), 1);
        let lines = dir.path().join("txn.txt");
        std::fs::write(&lines, "version(k) = 0\n\nput k\n").expect("write");
        let error = read_request(Some(lines.clone()), &[], &[], &[]).expect_err("bad line");
        assert_eq!(
            error,
            format!(
                "{}: line 3: `put` needs a value after the key",
                lines.display()
            )
        );
        let missing =
            read_request(Some(dir.path().join("none")), &[], &[], &[]).expect_err("missing file");
        assert!(missing.starts_with("reading "), "{missing}");
    }

    #[test]
    fn arguments_parse() {
        match parse(&["txn", "-f", "-", "--json"]) {
            Ok(ClientCommand::Coordination(CoordinationCommand::Txn {
                file: Some(file),
                json: true,
                ..
            })) => assert_eq!(file, PathBuf::from("-")),
            other => panic!("unexpected parse: {other:?}"),
        }
        assert_eq!(
            parse(&["txn", "-f", "t.json", "--success", "get k"])
                .expect_err("file and flags")
                .exit_code(),
            2
        );
        match parse(&[
            "watch",
            "svc/",
            "--prefix",
            "--revision",
            "7",
            "--progress",
            "--count",
            "3",
        ]) {
            Ok(ClientCommand::Coordination(CoordinationCommand::Watch {
                key,
                prefix: true,
                revision: Some(7),
                progress: true,
                progress_interval_ms: 5000,
                count: Some(3),
                json: false,
            })) => assert_eq!(key, "svc/"),
            other => panic!("unexpected parse: {other:?}"),
        }
        assert_eq!(
            parse(&["watch", "k", "--progress-interval-ms", "0"])
                .expect_err("zero interval")
                .exit_code(),
            2
        );
        assert!(parse(&["watch", "k", "--progress-interval-ms", "10"]).is_ok());
        assert!(matches!(
            parse(&["compact", "42"]),
            Ok(ClientCommand::Coordination(CoordinationCommand::Compact {
                revision: 42
            }))
        ));
        assert_eq!(
            parse(&["compact", "-3"]).expect_err("negative").exit_code(),
            2
        );
    }
}
