//! The `raftkv` client subcommands: `put`, `get`, `delete`, `append`, `cas`, `scan`, `status`.
//!
//! ```text
//!  argv ─► clap ─► ClientCommand ─► execute: one Client call ─► Output { stdout, stderr, exit }
//!                                                                 └─► print ─► ExitCode
//! ```
//!
//! Commands run through [`raftkv_client::Client`], so they retry across the nodes until the
//! retry deadline (20 s) when there is no leader or a node is down, and a retried write is
//! applied once. Output is meant for shell scripts:
//!
//! | exit | meaning | output |
//! |------|---------|--------|
//! | 0 | success | `put`: `OK index=I term=T`; `delete`: `deleted index=I term=T` or `not found index=I term=T`; `append`: `length=L index=I term=T`; `cas`: `swapped index=I term=T`; `get`: the value's bytes and a newline; `scan`: `key<TAB>value` lines, a value that is not UTF-8 as `base64:<standard base64>`; `status`: a table |
//! | 1 | `get`: the key does not exist; `cas`: the swap did not happen | stderr: `raftkv: not found: KEY`, or `raftkv: not swapped; current: VALUE` (`(absent)` when the key does not exist) |
//! | 2 | usage or input error: bad flags, an empty or too long key, a bad endpoint, or a request the server refused as invalid (400) or too large (413) | stderr: `raftkv: ...` (clap's own message for bad flags) |
//! | 3 | unavailable: no node answered, or there was no leader, within the retry deadline; for `status`, no node answered | stderr: `raftkv: unavailable: ...` |
//! | 4 | any other server error (401 without a valid `--token`, 403 when its role is not enough), or an answer that did not parse | stderr: `raftkv: ...` with the server's message |
//!
//! Everything but the command's result goes to stderr, prefixed `raftkv: `. With `--token`
//! (or `RAFTKV_TOKEN`, which keeps it out of the process list) every request carries
//! `Authorization: Bearer <token>`, for nodes run with `--auth-tokens`.

use std::io::Write;
use std::process::ExitCode;

use raftkv_client::api::{
    Consistency, KeyValue, MembersResponse, MembershipChangeResponse, StatusResponse,
};
use raftkv_client::{CasResponse, Client, ClientError};

/// Exit statuses, as in the module's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    /// 0: the command did what it was asked.
    Success,
    /// 1: `get` found no key, or `cas` found its condition unmet.
    NotFoundOrNotSwapped,
    /// 2: the command line or the input was wrong.
    Input,
    /// 3: no node answered, or none had a leader, before the retry deadline.
    Unavailable,
    /// 4: any other server error.
    ServerError,
}

impl Exit {
    fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::NotFoundOrNotSwapped => 1,
            Exit::Input => 2,
            Exit::Unavailable => 3,
            Exit::ServerError => 4,
        }
    }
}

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

/// The client subcommands. Exit status: 0 success, 1 not found (`get`) or not swapped (`cas`),
/// 2 usage or input error, 3 unavailable (no node or no leader within the retry deadline),
/// 4 other server error. Errors go to stderr, prefixed `raftkv: `.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Sets KEY to VALUE.
    ///
    /// Prints `OK index=I term=T`: where the write sits in the log.
    ///
    /// Exit status: 0 done, 2 bad input, 3 unavailable, 4 other server error.
    Put {
        /// The key (UTF-8, not empty).
        key: String,
        /// The value.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Prints KEY's value.
    ///
    /// Prints the value's bytes followed by a newline.
    ///
    /// Exit status: 0 found, 1 the key does not exist, 2 bad input, 3 unavailable, 4 other
    /// server error.
    Get {
        /// The key.
        key: String,
        /// How fresh the value must be.
        #[arg(long, value_enum, default_value = "linearizable")]
        consistency: ConsistencyArg,
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
    /// stderr.
    ///
    /// Exit status: 0 done, 2 bad input, 3 unavailable, 4 other server error.
    Scan {
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// At most this many keys.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// A table of every node: id, role, term, leader, commit and applied index, lag.
    ///
    /// Asks every endpoint at once and prints one row per endpoint; lag is the highest commit
    /// index among the nodes minus the node's applied index. A node that did not answer gets
    /// `unreachable: REASON`.
    ///
    /// Exit status: 0 at least one node answered, 3 none did.
    Status,
    /// Lists, adds, promotes and removes members.
    Members {
        /// What to do.
        #[command(subcommand)]
        action: MembersAction,
    },
    /// Leadership.
    Leader {
        /// What to do.
        #[command(subcommand)]
        action: LeaderAction,
    },
}

/// `raftkv members ...`
#[derive(Debug, clap::Subcommand)]
pub enum MembersAction {
    /// A table of the members: id, role (voter, learner, outgoing), Raft and HTTP addresses,
    /// and on the leader how far each has replicated.
    ///
    /// Exit status: 0 done, 3 unavailable, 4 other server error.
    List,
    /// Adds node ID, reachable for Raft at RAFT_ADDR, as a learner (it receives the log but
    /// does not vote until promoted).
    ///
    /// Exit status: 0 done, 2 refused as it stands (e.g. ID is already a member), 3
    /// unavailable, 4 other server error.
    Add {
        /// The new node's id.
        id: u64,
        /// Where the other nodes reach its Raft transport (HOST:PORT).
        raft_addr: String,
    },
    /// Makes learner ID a voter, once it has caught up with the leader.
    ///
    /// Exit status: 0 done, 1 not caught up yet (retry later), 2 refused, 3 unavailable, 4
    /// other server error.
    Promote {
        /// The learner.
        id: u64,
    },
    /// Removes member ID (the leader too: it hands over once the change commits).
    ///
    /// Exit status: 0 done, 2 refused, 3 unavailable, 4 other server error.
    Remove {
        /// The member.
        id: u64,
    },
}

/// `raftkv leader ...`
#[derive(Debug, clap::Subcommand)]
pub enum LeaderAction {
    /// Hands leadership to voter --to.
    ///
    /// Exit status: 0 the transfer started, 2 refused, 3 unavailable, 4 other server error.
    Transfer {
        /// The voter that should lead.
        #[arg(long)]
        to: u64,
    },
}

/// Runs `command` against the cluster at `endpoints` (with `token` as bearer token, when
/// given), prints its result, and returns the exit status of the module's table.
pub async fn run(
    endpoints: Vec<String>,
    token: Option<String>,
    command: ClientCommand,
) -> ExitCode {
    run_with_tls(endpoints, token, None, command).await
}

/// [`run`], over HTTPS with `tls` when given (`--ca-cert`, `--client-cert`, `--client-key`):
/// endpoints without a scheme are then reached with `https://`.
pub async fn run_with_tls(
    endpoints: Vec<String>,
    token: Option<String>,
    tls: Option<raftkv_client::ClientTls>,
    command: ClientCommand,
) -> ExitCode {
    execute_with_tls(endpoints, token.as_deref(), tls, command)
        .await
        .print()
}

async fn members(client: &Client, action: MembersAction) -> Output {
    let changed = |result: Result<MembershipChangeResponse, ClientError>, what: String| match result
    {
        Ok(change) => Output::success(format!(
            "{what} index={} term={}",
            change.index, change.term
        )),
        // A change refused for good (already a member, not a member, the last voter), like a
        // refused compare-and-swap. A learner not caught up yet or a change in progress is a
        // 503, which the client retries until its deadline.
        Err(ClientError::Server { status: 409, error }) => {
            Output::failure(Exit::NotFoundOrNotSwapped, error.error)
        }
        Err(error) => Output::from_error(&error),
    };
    match action {
        MembersAction::List => match client.members().await {
            Ok(members) => members_output(&members),
            Err(error) => Output::from_error(&error),
        },
        MembersAction::Add { id, raft_addr } => changed(
            client.add_member(id, &raft_addr).await,
            format!("added node {id} as a learner"),
        ),
        MembersAction::Promote { id } => {
            changed(client.promote(id).await, format!("promoted node {id}"))
        }
        MembersAction::Remove { id } => {
            changed(client.remove_member(id).await, format!("removed node {id}"))
        }
    }
}

/// Left-aligned columns two spaces apart, the last one unpadded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|cell| cell.to_string()).collect();
    let mut text = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn members_output(response: &MembersResponse) -> Output {
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = response
        .members
        .iter()
        .map(|member| {
            vec![
                member.id.to_string(),
                if response.leader == Some(member.id) {
                    format!("{} (leader)", member.role)
                } else {
                    member.role.clone()
                },
                member.raft_address.clone().unwrap_or_else(dash),
                member.http_address.clone().unwrap_or_else(dash),
                member
                    .match_index
                    .map_or_else(dash, |index| index.to_string()),
            ]
        })
        .collect();
    let mut stdout = table(&["ID", "ROLE", "RAFT", "HTTP", "MATCH"], &rows).into_bytes();
    if response.joint || response.change_in_progress {
        stdout.extend_from_slice(b"(a membership change is in progress)\n");
    }
    Output {
        stdout,
        stderr: Vec::new(),
        exit: Exit::Success,
    }
}

/// What a command prints and how it exits, kept apart from printing so it can be tested.
#[derive(Debug, PartialEq, Eq)]
struct Output {
    stdout: Vec<u8>,
    /// Whole lines, already prefixed `raftkv: `.
    stderr: Vec<String>,
    exit: Exit,
}

impl Output {
    fn success(line: String) -> Output {
        assert!(!line.contains('\n'), "a summary is one line");
        Output {
            stdout: format!("{line}\n").into_bytes(),
            stderr: Vec::new(),
            exit: Exit::Success,
        }
    }

    fn failure(exit: Exit, message: String) -> Output {
        assert!(
            exit != Exit::Success,
            "a failure has a non-zero exit status"
        );
        Output {
            stdout: Vec::new(),
            stderr: vec![format!("raftkv: {message}")],
            exit,
        }
    }

    fn from_error(error: &ClientError) -> Output {
        Output::failure(exit_of(error), error.to_string())
    }

    fn print(self) -> ExitCode {
        if !self.stdout.is_empty() {
            let mut stdout = std::io::stdout().lock();
            if let Err(error) = stdout.write_all(&self.stdout).and_then(|()| stdout.flush()) {
                // The operation's outcome is already decided; the exit status still reports it,
                // and the reader (a closed pipe, say) learns of the loss here.
                eprintln!("raftkv: writing the output: {error}");
            }
        }
        for line in &self.stderr {
            eprintln!("{line}");
        }
        ExitCode::from(self.exit.code())
    }
}

/// The exit status for a failed call.
fn exit_of(error: &ClientError) -> Exit {
    match error {
        ClientError::InvalidInput(_) => Exit::Input,
        // The server refused the input itself (a key or value over its configured limits, a
        // malformed request): the caller must change the input, as with a local check.
        ClientError::Server {
            status: 400 | 413, ..
        } => Exit::Input,
        ClientError::Server { .. } | ClientError::Decode(_) => Exit::ServerError,
        ClientError::Unavailable(_) => Exit::Unavailable,
    }
}

#[cfg(test)]
async fn execute(endpoints: Vec<String>, token: Option<&str>, command: ClientCommand) -> Output {
    execute_with_tls(endpoints, token, None, command).await
}

async fn execute_with_tls(
    endpoints: Vec<String>,
    token: Option<&str>,
    tls: Option<raftkv_client::ClientTls>,
    command: ClientCommand,
) -> Output {
    let client = match tls {
        Some(tls) => Client::with_tls(&endpoints, raftkv_client::ClientOptions::default(), tls),
        None => Client::new(&endpoints),
    };
    let client = client.and_then(|client| match token {
        Some(token) => client.with_bearer_token(token),
        None => Ok(client),
    });
    let client = match client {
        Ok(client) => client,
        Err(error) => return Output::from_error(&error),
    };
    match command {
        ClientCommand::Members { action } => members(&client, action).await,
        ClientCommand::Leader {
            action: LeaderAction::Transfer { to },
        } => match client.transfer_leader(to).await {
            Ok(()) => Output::success(format!("transferring leadership to node {to}")),
            Err(error) => Output::from_error(&error),
        },
        ClientCommand::Put { key, value } => match client.put(&key, value.into_bytes()).await {
            Ok(written) => {
                Output::success(format!("OK index={} term={}", written.index, written.term))
            }
            Err(error) => Output::from_error(&error),
        },
        ClientCommand::Get { key, consistency } => {
            match client.get(&key, consistency.into()).await {
                Ok(Some(value)) => {
                    let mut stdout = value.to_vec();
                    stdout.push(b'\n');
                    Output {
                        stdout,
                        stderr: Vec::new(),
                        exit: Exit::Success,
                    }
                }
                Ok(None) => {
                    Output::failure(Exit::NotFoundOrNotSwapped, format!("not found: {key}"))
                }
                Err(error) => Output::from_error(&error),
            }
        }
        ClientCommand::Delete { key } => match client.delete(&key).await {
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
        ClientCommand::Append { key, suffix } => {
            match client.append(&key, suffix.into_bytes()).await {
                Ok(appended) => Output::success(format!(
                    "length={} index={} term={}",
                    appended.length, appended.index, appended.term
                )),
                Err(error) => Output::from_error(&error),
            }
        }
        ClientCommand::Cas {
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
        ClientCommand::Scan { prefix, limit } => match client.scan(&prefix, limit).await {
            Ok(scanned) => scan_output(&scanned.items, scanned.truncated, limit),
            Err(error) => Output::from_error(&error),
        },
        ClientCommand::Status => {
            // Every node at once, so one slow node costs one request timeout, not one each.
            let requests: Vec<_> = client
                .endpoints()
                .iter()
                .map(|endpoint| {
                    let (client, endpoint) = (client.clone(), endpoint.clone());
                    tokio::spawn(async move { client.status(&endpoint).await })
                })
                .collect();
            let mut results = Vec::with_capacity(requests.len());
            for request in requests {
                results.push(match request.await {
                    Ok(Ok(status)) => Ok(status),
                    Ok(Err(error)) => Err(reason_of(&error)),
                    Err(error) => Err(format!("the request failed: {error}")),
                });
            }
            status_output(client.endpoints(), &results)
        }
    }
}

fn cas_output(response: &CasResponse) -> Output {
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

fn scan_output(items: &[KeyValue], truncated: bool, limit: usize) -> Output {
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

/// Why a node's status is missing, for its row: the client's message without the class prefix
/// the row's `unreachable:` already says.
fn reason_of(error: &ClientError) -> String {
    match error {
        ClientError::Unavailable(message) => message.clone(),
        other => other.to_string(),
    }
}

/// The status table: one row per endpoint, in the order given.
fn status_output(endpoints: &[String], results: &[Result<StatusResponse, String>]) -> Output {
    assert_eq!(endpoints.len(), results.len(), "one result per endpoint");
    let commit_index_max = results
        .iter()
        .filter_map(|result| result.as_ref().ok())
        .map(|status| status.commit_index)
        .max();
    let Some(commit_index_max) = commit_index_max else {
        return Output {
            stdout: status_table(endpoints, results, 0),
            stderr: vec!["raftkv: unavailable: no node answered".to_string()],
            exit: Exit::Unavailable,
        };
    };
    Output {
        stdout: status_table(endpoints, results, commit_index_max),
        stderr: Vec::new(),
        exit: Exit::Success,
    }
}

/// One row of the status table.
enum StatusRow {
    /// The node answered: the cells under the header.
    Answered([String; STATUS_COLUMNS]),
    /// The node did not answer.
    Unreachable { endpoint: String, reason: String },
}

const STATUS_COLUMNS: usize = 8;

const STATUS_HEADER: [&str; STATUS_COLUMNS] = [
    "ENDPOINT", "ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAG",
];

fn status_table(
    endpoints: &[String],
    results: &[Result<StatusResponse, String>],
    commit_index_max: u64,
) -> Vec<u8> {
    let rows: Vec<StatusRow> = endpoints
        .iter()
        .zip(results)
        .map(|(endpoint, result)| match result {
            Ok(status) => StatusRow::Answered([
                endpoint.clone(),
                status.id.to_string(),
                status.role.clone(),
                status.term.to_string(),
                status
                    .leader
                    .map_or_else(|| "-".to_string(), |leader| leader.to_string()),
                status.commit_index.to_string(),
                status.applied_index.to_string(),
                commit_index_max
                    .saturating_sub(status.applied_index)
                    .to_string(),
            ]),
            Err(reason) => StatusRow::Unreachable {
                endpoint: endpoint.clone(),
                reason: format!("unreachable: {reason}"),
            },
        })
        .collect();

    let mut widths = STATUS_HEADER.map(str::len);
    for row in &rows {
        match row {
            StatusRow::Answered(cells) => {
                for (width, cell) in widths.iter_mut().zip(cells) {
                    *width = (*width).max(cell.chars().count());
                }
            }
            // The reason runs across the columns after the endpoint, so only that one widens.
            StatusRow::Unreachable { endpoint, .. } => {
                widths[0] = widths[0].max(endpoint.chars().count())
            }
        }
    }

    // Cells are padded to their column's width and separated by two spaces; the last cell is
    // not padded, so no line ends in blanks.
    let line = |cells: &[&str]| {
        let mut line = String::new();
        for (column, cell) in cells.iter().enumerate() {
            if column + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[column]));
            }
        }
        line.push('\n');
        line
    };
    let mut table = line(&STATUS_HEADER);
    for row in &rows {
        table.push_str(&match row {
            StatusRow::Answered(cells) => line(&cells.each_ref().map(String::as_str)),
            StatusRow::Unreachable { endpoint, reason } => line(&[endpoint, reason]),
        });
    }
    table.into_bytes()
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use raftkv_client::api::ErrorResponse;

    use super::*;

    /// The subcommands as `main` mounts them.
    #[derive(Debug, clap::Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: ClientCommand,
    }

    fn parse(arguments: &[&str]) -> Result<ClientCommand, clap::Error> {
        TestCli::try_parse_from(std::iter::once("raftkv").chain(arguments.iter().copied()))
            .map(|cli| cli.command)
    }

    fn server_error(status: u16, message: &str) -> ClientError {
        ClientError::Server {
            status,
            error: ErrorResponse {
                error: message.to_string(),
                leader: None,
                leader_http: None,
            },
        }
    }

    fn status(
        id: u64,
        role: &str,
        leader: Option<u64>,
        commit: u64,
        applied: u64,
    ) -> StatusResponse {
        StatusResponse {
            id,
            role: role.to_string(),
            term: 3,
            leader,
            leader_http: None,
            commit_index: commit,
            applied_index: applied,
            last_log_index: commit,
            snapshot_index: 0,
            members: vec![1, 2, 3],
            followers: Vec::new(),
            keys: 0,
            http_address: String::new(),
        }
    }

    #[test]
    fn errors_map_to_the_documented_exit_statuses() {
        let cases = [
            (ClientError::InvalidInput("empty key".to_string()), 2),
            (server_error(400, "bad key"), 2),
            (server_error(413, "value too large"), 2),
            (server_error(404, "no route"), 4),
            (server_error(409, "stale request-seq"), 4),
            (server_error(500, "boom"), 4),
            (ClientError::Decode("not JSON".to_string()), 4),
            (ClientError::Unavailable("no leader".to_string()), 3),
        ];
        for (error, code) in cases {
            assert_eq!(exit_of(&error).code(), code, "{error}");
            let output = Output::from_error(&error);
            assert!(output.stdout.is_empty());
            assert_eq!(output.stderr, [format!("raftkv: {error}")]);
        }
        assert_eq!(
            Output::from_error(&server_error(400, "key is empty")).stderr,
            ["raftkv: server answered 400: key is empty"]
        );
    }

    #[test]
    fn members_table_marks_the_leader_and_a_change_in_progress() {
        let member = |id: u64, role: &str, matched: Option<u64>| raftkv_client::api::Member {
            id,
            role: role.to_string(),
            raft_address: Some(format!("10.0.0.{id}:9001")),
            http_address: (id != 4).then(|| format!("10.0.0.{id}:8001")),
            match_index: matched,
        };
        let output = members_output(&MembersResponse {
            members: vec![
                member(1, "voter", Some(40)),
                member(2, "outgoing", Some(38)),
                member(4, "learner", None),
            ],
            joint: true,
            change_in_progress: true,
            leader: Some(1),
        });
        assert_eq!(output.exit, Exit::Success);
        assert_eq!(
            String::from_utf8(output.stdout).expect("text"),
            "ID  ROLE            RAFT           HTTP           MATCH\n\
             1   voter (leader)  10.0.0.1:9001  10.0.0.1:8001  40\n\
             2   outgoing        10.0.0.2:9001  10.0.0.2:8001  38\n\
             4   learner         10.0.0.4:9001  -              -\n\
             (a membership change is in progress)\n"
        );
    }

    #[test]
    fn cas_prints_swapped_or_the_current_value() {
        let mut response = CasResponse {
            ok: true,
            current: None,
            index: 12,
            term: 3,
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
            },
            KeyValue {
                key: "b".to_string(),
                value: None,
                value_base64: Some("/w==".to_string()),
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
    fn status_table_is_aligned_with_lag_and_unreachable_rows() {
        let endpoints = [
            "127.0.0.1:8001".to_string(),
            "127.0.0.1:8002".to_string(),
            "http://127.0.0.1:8003".to_string(),
        ];
        let results = [
            Ok(status(1, "leader", Some(1), 120, 120)),
            Ok(status(2, "follower", Some(1), 118, 95)),
            Err("connection refused".to_string()),
        ];
        let output = status_output(&endpoints, &results);
        assert_eq!(output.exit, Exit::Success);
        assert!(output.stderr.is_empty());
        let expected = "\
ENDPOINT               ID  ROLE      TERM  LEADER  COMMIT  APPLIED  LAG
127.0.0.1:8001         1   leader    3     1       120     120      0
127.0.0.1:8002         2   follower  3     1       118     95       25
http://127.0.0.1:8003  unreachable: connection refused
";
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    }

    #[test]
    fn status_without_any_answer_is_unavailable() {
        let endpoints = ["127.0.0.1:8001".to_string()];
        let results = [Err("connection refused".to_string())];
        let output = status_output(&endpoints, &results);
        assert_eq!(output.exit.code(), 3);
        assert_eq!(output.stderr, ["raftkv: unavailable: no node answered"]);

        let unknown_leader = [Ok(status(1, "candidate", None, 7, 7))];
        let output = status_output(&endpoints, &unknown_leader);
        assert_eq!(output.exit.code(), 0);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "ENDPOINT        ID  ROLE       TERM  LEADER  COMMIT  APPLIED  LAG\n\
             127.0.0.1:8001  1   candidate  3     -       7       7        0\n"
        );
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
            Ok(ClientCommand::Cas {
                expect,
                expect_absent,
                ..
            }) => {
                assert_eq!(expect.as_deref(), Some("-1"));
                assert!(!expect_absent);
            }
            other => panic!("unexpected parse: {other:?}"),
        }
        assert!(matches!(
            parse(&["cas", "k", "--expect-absent", "--value", "v"]),
            Ok(ClientCommand::Cas {
                expect: None,
                expect_absent: true,
                ..
            })
        ));
    }

    #[test]
    fn defaults_and_hyphenated_values_parse() {
        assert!(matches!(
            parse(&["get", "k"]),
            Ok(ClientCommand::Get {
                consistency: ConsistencyArg::Linearizable,
                ..
            })
        ));
        assert!(matches!(
            parse(&["get", "k", "--consistency", "stale"]),
            Ok(ClientCommand::Get {
                consistency: ConsistencyArg::Stale,
                ..
            })
        ));
        assert!(matches!(
            parse(&["scan"]),
            Ok(ClientCommand::Scan { limit: 100, ref prefix }) if prefix.is_empty()
        ));
        assert!(matches!(
            parse(&["put", "k", "-5"]),
            Ok(ClientCommand::Put { ref value, .. }) if value == "-5"
        ));
        assert_eq!(
            parse(&["get", "k", "--consistency", "eventual"])
                .expect_err("unknown consistency")
                .exit_code(),
            2
        );
    }

    #[tokio::test]
    async fn input_errors_exit_2_before_anything_is_sent() {
        let bad_endpoint = execute(
            vec!["https://127.0.0.1:8001".to_string()],
            None,
            ClientCommand::Status,
        )
        .await;
        assert_eq!(bad_endpoint.exit.code(), 2);
        assert!(bad_endpoint.stderr[0].starts_with("raftkv: invalid input: endpoint"));

        // Nothing listens on port 9 of this address, and nothing is sent: the key is refused
        // first.
        let endpoints = vec!["127.0.0.1:9".to_string()];
        let empty_key = execute(
            endpoints.clone(),
            None,
            ClientCommand::Put {
                key: String::new(),
                value: "v".to_string(),
            },
        )
        .await;
        assert_eq!(empty_key.exit.code(), 2);
        assert_eq!(empty_key.stderr, ["raftkv: invalid input: empty key"]);

        let bad_token = execute(
            endpoints.clone(),
            Some("two words"),
            ClientCommand::Get {
                key: "k".to_string(),
                consistency: ConsistencyArg::Linearizable,
            },
        )
        .await;
        assert_eq!(bad_token.exit.code(), 2);
        assert!(
            !bad_token.stderr.concat().contains("two words"),
            "the token is not echoed: {:?}",
            bad_token.stderr
        );

        let both = execute(
            endpoints,
            None,
            ClientCommand::Cas {
                key: "k".to_string(),
                expect: Some("a".to_string()),
                expect_absent: true,
                value: "b".to_string(),
            },
        )
        .await;
        assert_eq!(both.exit.code(), 2);
    }
}
