//! The key commands: `put`, `get`, `delete`, `append`, `cas` and `scan`, each one call of the
//! client and its output.

use base64::Engine as _;
use raftkv_client::api::{Consistency, KeyValue, KeyValueResponse};
use raftkv_client::{CasResponse, Client};

use super::output::{Exit, Output};

/// Read consistency of `get`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsistencyArg {
    /// Confirmed with a quorum first: sees every write acknowledged before it began.
    #[default]
    Linearizable,
    /// Served by the leader under its lease, without a round trip.
    Lease,
    /// Whatever the answering node holds; may be behind.
    Stale,
}

impl From<ConsistencyArg> for Consistency {
    fn from(argument: ConsistencyArg) -> Consistency {
        match argument {
            ConsistencyArg::Linearizable => Consistency::Linearizable,
            ConsistencyArg::Lease => Consistency::Lease,
            ConsistencyArg::Stale => Consistency::Stale,
        }
    }
}

/// The key commands (flattened into [`ClientCommand`](super::ClientCommand)).
#[derive(Debug, clap::Subcommand)]
pub enum KvCommand {
    /// Sets KEY to VALUE.
    ///
    /// Prints `OK index=I term=T`: where the write sits in the log. With --lease, KEY is
    /// attached to the lease (and deleted when it ends); without, a put detaches KEY from any
    /// lease it had.
    ///
    /// Exit status: 0 done, 1 the lease does not exist (nothing changed), 2 bad input, 3
    /// unavailable, 4 other server error.
    Put {
        /// The key (UTF-8, not empty).
        key: String,
        /// The value.
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Attach KEY to this lease (its id in hexadecimal, as `lease grant` prints it).
        #[arg(long, value_parser = super::lease::parse_lease_id)]
        lease: Option<u64>,
    },
    /// Prints KEY's value.
    ///
    /// Prints the value's bytes followed by a newline. With --revision, the value KEY had at
    /// that revision; with --json, a KeyValueResponse: the key with its value (or
    /// `value_base64`), create_revision, mod_revision and version, and the store's revision
    /// (`"kv": null` when the key does not exist).
    ///
    /// Exit status: 0 found, 1 the key does not exist, 2 bad input or a revision compacted or
    /// in the future, 3 unavailable, 4 other server error.
    Get {
        /// The key.
        key: String,
        /// How fresh the value must be (--revision and --json read linearizably).
        #[arg(long, value_enum, default_value = "linearizable", conflicts_with_all = ["revision", "json"])]
        consistency: ConsistencyArg,
        /// Read the value as of this past revision.
        #[arg(long)]
        revision: Option<u64>,
        /// Print the key with its revisions as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deletes KEY.
    ///
    /// Prints `deleted index=I term=T`, or `not found index=I term=T` when the key did not
    /// exist (still exit status 0: the key is gone either way).
    ///
    /// Exit status: 0 done, 2 bad input, 3 unavailable, 4 other server error.
    Delete {
        /// The key.
        key: String,
    },
    /// Appends SUFFIX to KEY's value (an absent key counts as empty).
    ///
    /// Prints `length=L index=I term=T`, L being the value's new length in bytes.
    ///
    /// Exit status: 0 done, 2 bad input, 3 unavailable, 4 other server error.
    Append {
        /// The key.
        key: String,
        /// The bytes to append.
        #[arg(allow_hyphen_values = true)]
        suffix: String,
    },
    /// Compare-and-swap: sets KEY to --value if it holds --expect (or is absent with --expect-absent).
    ///
    /// Prints `swapped index=I term=T` when it swapped. When it did not, prints
    /// `raftkv: not swapped; current: VALUE` to stderr, VALUE being `(absent)` when the key does
    /// not exist. Exactly one of --expect and --expect-absent is needed.
    ///
    /// Exit status: 0 swapped, 1 not swapped, 2 bad input, 3 unavailable, 4 other server error.
    Cas {
        /// The key.
        key: String,
        /// The value KEY must hold for the swap to happen.
        #[arg(
            long,
            allow_hyphen_values = true,
            conflicts_with = "expect_absent",
            required_unless_present = "expect_absent"
        )]
        expect: Option<String>,
        /// Swap only if KEY does not exist.
        #[arg(long)]
        expect_absent: bool,
        /// The value to store.
        #[arg(long, allow_hyphen_values = true)]
        value: String,
    },
    /// Lists the keys starting with --prefix, in key order.
    ///
    /// Prints one `KEY<TAB>VALUE` line per key; a value that is not UTF-8 is printed as
    /// `base64:` followed by its standard base64. When more keys follow than --limit, says so on
    /// stderr. With --revision, the keys as they were at that revision (one consistent
    /// snapshot); with --json, the ScanResponse with each key's revisions and the revision read.
    ///
    /// Exit status: 0 done, 2 bad input or a revision compacted or in the future, 3
    /// unavailable, 4 other server error.
    Scan {
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many keys.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// List the keys as of this past revision.
        #[arg(long)]
        revision: Option<u64>,
        /// Print the answer as JSON, with each key's revisions.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `command` with `client`.
pub(super) async fn execute(client: &Client, command: KvCommand) -> Output {
    match command {
        KvCommand::Put { key, value, lease } => match client
            .put_with_lease(&key, value.into_bytes(), lease.unwrap_or(0))
            .await
        {
            Ok(written) => {
                Output::success(format!("OK index={} term={}", written.index, written.term))
            }
            Err(error) => Output::from_error(&error),
        },
        KvCommand::Get {
            key,
            revision,
            json,
            ..
        } if revision.is_some() || json => match client.get_versioned(&key, revision).await {
            Ok(found) => versioned_output(&key, &found, json),
            Err(error) => Output::from_error(&error),
        },
        KvCommand::Get {
            key, consistency, ..
        } => match client.get(&key, consistency.into()).await {
            Ok(Some(value)) => {
                let mut stdout = value.to_vec();
                stdout.push(b'\n');
                Output {
                    stdout,
                    stderr: Vec::new(),
                    exit: Exit::Success,
                }
            }
            Ok(None) => Output::failure(Exit::NotFoundOrNotSwapped, format!("not found: {key}")),
            Err(error) => Output::from_error(&error),
        },
        KvCommand::Delete { key } => match client.delete(&key).await {
            Ok(deleted) => Output::success(format!(
                "{} index={} term={}",
                if deleted.deleted {
                    "deleted"
                } else {
                    "not found"
                },
                deleted.index,
                deleted.term
            )),
            Err(error) => Output::from_error(&error),
        },
        KvCommand::Append { key, suffix } => match client.append(&key, suffix.into_bytes()).await {
            Ok(appended) => Output::success(format!(
                "length={} index={} term={}",
                appended.length, appended.index, appended.term
            )),
            Err(error) => Output::from_error(&error),
        },
        KvCommand::Cas {
            key,
            expect,
            expect_absent,
            value,
        } => {
            // clap enforces this for the command line; `run` may be called directly too.
            if expect.is_some() == expect_absent {
                return Output::failure(
                    Exit::Input,
                    "cas needs exactly one of --expect and --expect-absent".to_string(),
                );
            }
            match client.cas(&key, expect.as_deref(), &value).await {
                Ok(response) => cas_output(&response),
                Err(error) => Output::from_error(&error),
            }
        }
        KvCommand::Scan {
            prefix,
            limit,
            revision,
            json,
        } => match client.scan_at(&prefix, limit, revision).await {
            Ok(scanned) if json => match serde_json::to_string(&scanned) {
                Ok(line) => Output::success(line),
                Err(error) => {
                    Output::failure(Exit::ServerError, format!("encoding the answer: {error}"))
                }
            },
            Ok(scanned) => scan_output(&scanned.items, scanned.truncated, limit),
            Err(error) => Output::from_error(&error),
        },
    }
}

/// `get --revision` / `get --json`: the value, or the whole answer as JSON; exit 1 when the
/// key does not exist at that revision.
pub(super) fn versioned_output(key: &str, found: &KeyValueResponse, json: bool) -> Output {
    let exit = if found.kv.is_some() {
        Exit::Success
    } else {
        Exit::NotFoundOrNotSwapped
    };
    if json {
        return match serde_json::to_string(found) {
            Ok(line) => Output {
                exit,
                ..Output::success(line)
            },
            Err(error) => {
                Output::failure(Exit::ServerError, format!("encoding the answer: {error}"))
            }
        };
    }
    match &found.kv {
        Some(kv) => {
            let mut stdout = match (&kv.value, &kv.value_base64) {
                (Some(value), _) => value.clone().into_bytes(),
                (None, Some(encoded)) => {
                    match base64::engine::general_purpose::STANDARD.decode(encoded) {
                        Ok(bytes) => bytes,
                        Err(error) => {
                            return Output::failure(
                                Exit::ServerError,
                                format!("the value's base64 does not decode: {error}"),
                            )
                        }
                    }
                }
                (None, None) => Vec::new(),
            };
            stdout.push(b'\n');
            Output {
                stdout,
                stderr: Vec::new(),
                exit,
            }
        }
        None => Output::failure(
            exit,
            format!("not found: {key} (at revision {})", found.revision),
        ),
    }
}

pub(super) fn cas_output(response: &CasResponse) -> Output {
    if response.ok {
        return Output::success(format!(
            "swapped index={} term={}",
            response.index, response.term
        ));
    }
    let current = response.current.as_deref().unwrap_or("(absent)");
    Output::failure(
        Exit::NotFoundOrNotSwapped,
        format!("not swapped; current: {current}"),
    )
}

pub(super) fn scan_output(items: &[KeyValue], truncated: bool, limit: usize) -> Output {
    let mut stdout = Vec::new();
    for item in items {
        stdout.extend_from_slice(item.key.as_bytes());
        stdout.push(b'\t');
        match (&item.value, &item.value_base64) {
            (Some(value), _) => stdout.extend_from_slice(value.as_bytes()),
            (None, Some(encoded)) => {
                stdout.extend_from_slice(b"base64:");
                stdout.extend_from_slice(encoded.as_bytes());
            }
            (None, None) => {}
        }
        stdout.push(b'\n');
    }
    let mut stderr = Vec::new();
    if truncated {
        stderr.push(format!(
            "raftkv: more keys follow the {} listed (--limit {limit}); raise --limit or narrow --prefix",
            items.len()
        ));
    }
    Output {
        stdout,
        stderr,
        exit: Exit::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use crate::cli::ClientCommand;

    #[test]
    fn cas_prints_swapped_or_the_current_value() {
        let mut response = CasResponse {
            ok: true,
            current: None,
            index: 12,
            term: 3,
            revision: 0,
        };
        let swapped = cas_output(&response);
        assert_eq!(swapped.exit, Exit::Success);
        assert_eq!(swapped.stdout, b"swapped index=12 term=3\n");

        response.ok = false;
        response.current = Some("red".to_string());
        let conflict = cas_output(&response);
        assert_eq!(conflict.exit.code(), 1);
        assert!(conflict.stdout.is_empty());
        assert_eq!(conflict.stderr, ["raftkv: not swapped; current: red"]);

        response.current = None;
        assert_eq!(
            cas_output(&response).stderr,
            ["raftkv: not swapped; current: (absent)"]
        );
    }

    #[test]
    fn scan_prints_tab_separated_lines_with_base64_marked() {
        let items = [
            KeyValue {
                key: "a".to_string(),
                value: Some("one".to_string()),
                value_base64: None,
                create_revision: 0,
                mod_revision: 0,
                version: 0,
            },
            KeyValue {
                key: "b".to_string(),
                value: None,
                value_base64: Some("/w==".to_string()),
                create_revision: 0,
                mod_revision: 0,
                version: 0,
            },
        ];
        let output = scan_output(&items, false, 100);
        assert_eq!(output.exit, Exit::Success);
        assert_eq!(output.stdout, b"a\tone\nb\tbase64:/w==\n");
        assert!(output.stderr.is_empty());

        let truncated = scan_output(&items, true, 2);
        assert_eq!(
            truncated.stdout, output.stdout,
            "the note does not go to stdout"
        );
        assert_eq!(truncated.stderr.len(), 1);
        assert!(truncated.stderr[0].starts_with("raftkv: more keys follow"));
    }

    #[test]
    fn cas_needs_exactly_one_expectation() {
        let usage = parse(&["cas", "k", "--value", "v"]).expect_err("neither");
        assert_eq!(usage.exit_code(), 2);
        let usage = parse(&[
            "cas",
            "k",
            "--expect",
            "a",
            "--expect-absent",
            "--value",
            "v",
        ])
        .expect_err("both");
        assert_eq!(usage.exit_code(), 2);

        match parse(&["cas", "k", "--expect", "-1", "--value", "0"]) {
            Ok(ClientCommand::Kv(KvCommand::Cas {
                expect,
                expect_absent,
                ..
            })) => {
                assert_eq!(expect.as_deref(), Some("-1"));
                assert!(!expect_absent);
            }
            other => panic!("unexpected parse: {other:?}"),
        }
        assert!(matches!(
            parse(&["cas", "k", "--expect-absent", "--value", "v"]),
            Ok(ClientCommand::Kv(KvCommand::Cas {
                expect: None,
                expect_absent: true,
                ..
            }))
        ));
    }

    #[test]
    fn defaults_and_hyphenated_values_parse() {
        assert!(matches!(
            parse(&["get", "k"]),
            Ok(ClientCommand::Kv(KvCommand::Get {
                consistency: ConsistencyArg::Linearizable,
                ..
            }))
        ));
        assert!(matches!(
            parse(&["get", "k", "--consistency", "stale"]),
            Ok(ClientCommand::Kv(KvCommand::Get {
                consistency: ConsistencyArg::Stale,
                ..
            }))
        ));
        assert!(matches!(
            parse(&["scan"]),
            Ok(ClientCommand::Kv(KvCommand::Scan { limit: 100, ref prefix, revision: None, json: false })) if prefix.is_empty()
        ));
        assert!(matches!(
            parse(&["put", "k", "-5"]),
            Ok(ClientCommand::Kv(KvCommand::Put { ref value, lease: None, .. })) if value == "-5"
        ));
        assert!(matches!(
            parse(&["put", "k", "v", "--lease", "694d7a1a2f7a3c0b"]),
            Ok(ClientCommand::Kv(KvCommand::Put {
                lease: Some(0x694d7a1a2f7a3c0b),
                ..
            }))
        ));
        assert_eq!(
            parse(&["put", "k", "v", "--lease", "0"])
                .expect_err("no lease 0")
                .exit_code(),
            2
        );
        assert_eq!(
            parse(&["get", "k", "--consistency", "eventual"])
                .expect_err("unknown consistency")
                .exit_code(),
            2
        );
    }
}
