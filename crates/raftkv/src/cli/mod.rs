//! The `raftkv` client subcommands: `put`, `get`, `delete`, `append`, `cas`, `scan`, `txn`,
//! `watch`, `compact`, `lease`, `lock`, `elect`, `status`, `members`, `leader`, `log-level`.
//!
//! ```text
//!  argv ─► clap ─► ClientCommand ─► execute: one Client call ─► Output { stdout, stderr, exit }
//!                                                                 └─► print ─► ExitCode
//!                   watch: a line per event written as it comes ──┘ (Output: the ending)
//! ```
//!
//! Commands run through [`raftkv_client::Client`], so they retry across the nodes until the
//! retry deadline (20 s) when there is no leader or a node is down, and a retried write is
//! applied once. Output is meant for shell scripts:
//!
//! | exit | meaning | output |
//! |------|---------|--------|
//! | 0 | success | `put`: `OK index=I term=T`; `delete`: `deleted index=I term=T` or `not found index=I term=T`; `append`: `length=L index=I term=T`; `cas`: `swapped index=I term=T`; `get`: the value's bytes and a newline (`--json`: the key with its revisions); `scan`: `key<TAB>value` lines, a value that is not UTF-8 as `base64:<standard base64>`; `txn`: `succeeded revision=R index=I term=T` and a line per operation; `watch`: `REVISION<TAB>put<TAB>KEY<TAB>VALUE` / `REVISION<TAB>delete<TAB>KEY` lines until `--count`; `compact`: `compacted compact_revision=C revision=R index=I term=T`; `status`: a table |
//! | 1 | `get`: the key does not exist (at `--revision`); `cas`: the swap did not happen; `txn`: a comparison failed (the failure branch ran; its results are printed after `failed revision=R ...`) | stderr: `raftkv: not found: KEY`, or `raftkv: not swapped; current: VALUE` (`(absent)` when the key does not exist) |
//! | 2 | usage or input error: bad flags, an empty or too long key, a bad endpoint, a transaction that does not parse (the line is named), a revision compacted or in the future, or a request the server refused as invalid (400) or too large (413) | stderr: `raftkv: ...` (clap's own message for bad flags) |
//! | 3 | unavailable: no node answered, or there was no leader, within the retry deadline; for `status`, no node answered; for `watch`, no node served it for the retry deadline | stderr: `raftkv: unavailable: ...` |
//! | 4 | any other server error (401 without a valid `--token`, 403 when its role is not enough), or an answer that did not parse | stderr: `raftkv: ...` with the server's message |
//! | 1 | `check consistency`: a member's state differs from the others' at the check's index | stdout: a row per member, then `divergent index=I members=IDS`; stderr: `raftkv: diverged: ...` |
//! | 5 | `lock`, `elect`, `lease keepalive`: the lease (and with it the lock or leadership) was lost; `lock` killed its command | stderr: `raftkv: lock lost: ...` |
//! | 130 | `lock`, `elect`: interrupted (SIGINT, SIGTERM) before the lock or leadership was taken | stderr: `raftkv: interrupted ...` |
//!
//! A lease that does not exist is exit status 1 (`raftkv: lease ID not found: ...`), a grant
//! of an id in use 2. `raftkv lock NAME -- COMMAND` exits with COMMAND's own status.
//!
//! Everything but the command's result goes to stderr, prefixed `raftkv: `. With `--token`
//! (or `RAFTKV_TOKEN`, which keeps it out of the process list) every request carries
//! `Authorization: Bearer <token>`, for nodes run with `--auth-tokens`.
//!
//! One module per command group: `kv` (the key commands), `coordination` (`txn`, `watch`,
//! `compact`; `txn_syntax` parses the transactions' line syntax), `lease` (`lease ...`, lease
//! ids in hexadecimal), `lock` (`lock`, `elect`; `signals` lets them release on SIGINT and
//! SIGTERM), `admin` (membership and
//! leadership), `status`, and `output` (what a command prints and its exit status). A new
//! group (transactions, leases, locks) is a module of its own with its commands' enum,
//! flattened into [`ClientCommand`] like [`KvCommand`].

use std::process::ExitCode;

use raftkv_client::Client;

mod admin;
mod check;
mod coordination;
mod kv;
mod lease;
mod lock;
mod log_level;
pub(crate) mod output;
mod signals;
mod status;
mod txn_syntax;

pub use admin::{LeaderAction, MembersAction};
pub use check::{CheckCommand, CheckTarget};
pub use coordination::CoordinationCommand;
pub use kv::{ConsistencyArg, KvCommand};
pub use lease::LeaseAction;
pub use lock::LockCommand;

use output::Output;

/// The client subcommands. Exit status: 0 success, 1 not found (`get`), not swapped (`cas`) or
/// comparisons unmet (`txn`),
/// 2 usage or input error, 3 unavailable (no node or no leader within the retry deadline),
/// 4 other server error. Errors go to stderr, prefixed `raftkv: `.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// The key commands: put, get, delete, append, cas, scan.
    #[command(flatten)]
    Kv(KvCommand),
    /// The coordination commands: txn, watch, compact.
    #[command(flatten)]
    Coordination(CoordinationCommand),
    /// Leases: grant, keepalive, revoke, ttl, list (ids in hexadecimal, as etcdctl's).
    ///
    /// A lease has a TTL; keys put with `--lease ID` are deleted together when it is revoked or
    /// expires, which happens when no keepalive reached the leader for its TTL.
    Lease {
        /// What to do.
        #[command(subcommand)]
        action: LeaseAction,
    },
    /// The lock and election commands: lock, elect.
    #[command(flatten)]
    Lock(LockCommand),
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
    /// Prints a node's log filter, or sets it while the node runs (admin token needed).
    ///
    /// Asks the first endpoint, or every endpoint with --all (a line `ENDPOINT<TAB>FILTER`
    /// each). FILTER is RAFTKV_LOG's syntax, e.g. `info,raft_node=debug`; a node restarted
    /// starts from its RAFTKV_LOG again.
    ///
    /// Exit status: 0 done, 2 the filter was refused as invalid (the old one stays), 3 a node
    /// did not answer, 4 other server error (401 or 403 without an admin token).
    LogLevel {
        /// The new filter; without it the filter in force is printed.
        filter: Option<String>,
        /// Every endpoint, not only the first.
        #[arg(long)]
        all: bool,
    },
    /// The check commands: check consistency.
    #[command(flatten)]
    Check(CheckCommand),
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
        ClientCommand::Kv(command) => kv::execute(&client, command).await,
        ClientCommand::Coordination(command) => coordination::execute(&client, command).await,
        ClientCommand::Lease { action } => lease::execute(&client, action).await,
        ClientCommand::Lock(command) => lock::execute(&client, command).await,
        ClientCommand::Status => status::status(&client).await,
        ClientCommand::Members { action } => admin::members(&client, action).await,
        ClientCommand::Leader { action } => admin::leader(&client, action).await,
        ClientCommand::LogLevel { filter, all } => log_level::log_level(&client, filter, all).await,
        ClientCommand::Check(command) => check::execute(&client, command).await,
    }
}

/// Parses `arguments` as `main` mounts the subcommands, for the command groups' tests.
#[cfg(test)]
fn parse(arguments: &[&str]) -> Result<ClientCommand, clap::Error> {
    /// The subcommands as `main` mounts them.
    #[derive(Debug, clap::Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: ClientCommand,
    }
    use clap::Parser;
    TestCli::try_parse_from(std::iter::once("raftkv").chain(arguments.iter().copied()))
        .map(|cli| cli.command)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ClientCommand::Kv(KvCommand::Put {
                key: String::new(),
                value: "v".to_string(),
                lease: None,
            }),
        )
        .await;
        assert_eq!(empty_key.exit.code(), 2);
        assert_eq!(empty_key.stderr, ["raftkv: invalid input: empty key"]);

        let bad_token = execute(
            endpoints.clone(),
            Some("two words"),
            ClientCommand::Kv(KvCommand::Get {
                key: "k".to_string(),
                consistency: ConsistencyArg::Linearizable,
                revision: None,
                json: false,
            }),
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
            ClientCommand::Kv(KvCommand::Cas {
                key: "k".to_string(),
                expect: Some("a".to_string()),
                expect_absent: true,
                value: "b".to_string(),
            }),
        )
        .await;
        assert_eq!(both.exit.code(), 2);
    }
}
