//! `raftkv check consistency`: asks the leader to compare every member's hash of its state at
//! one index now, and prints each member's hash and the verdict.
//!
//! ```text
//!  POST /v1/consistency/check (retried across the nodes, forwarded to the leader)
//!    ─► ID  HASH  REVISION rows, then `consistent index=I` (exit 0)
//!                                    │ `divergent index=I members=ID,...` (exit 1)
//!                                    │ `incomplete index=I` (exit 3: a member gave no hash)
//! ```

use raftkv_client::api::{ConsistencyCheckResponse, ConsistencyVerdict};
use raftkv_client::Client;

use super::output::{table, Exit, Output};

/// The check commands.
#[derive(Debug, clap::Subcommand)]
pub enum CheckCommand {
    /// Checks the cluster.
    Check {
        /// What to check.
        #[command(subcommand)]
        what: CheckTarget,
    },
}

/// What `raftkv check` checks.
#[derive(Debug, clap::Subcommand)]
pub enum CheckTarget {
    /// Compares every member's state at one index: the leader proposes a hash check, each
    /// member hashes its state (SHA-256 of its snapshot encoding) when it applies that entry,
    /// and the hashes must all be equal.
    ///
    /// Prints a row per member (ID, HASH, REVISION, or why it gave no hash), then
    /// `consistent index=I`, `divergent index=I members=IDS` or `incomplete index=I`.
    ///
    /// Exit status: 0 consistent, 1 a member's state differs (named on stderr), 3 not every
    /// member gave a hash (down, unreachable, or it did not hash at the index) or no leader.
    /// Needs an admin token on nodes run with --auth-tokens.
    Consistency,
}

pub(super) async fn execute(client: &Client, command: CheckCommand) -> Output {
    let CheckCommand::Check { what } = command;
    match what {
        CheckTarget::Consistency => match client.check_consistency().await {
            Ok(report) => report_output(&report),
            Err(error) => Output::from_error(&error),
        },
    }
}

/// The header of the members' table.
const MEMBERS_HEADER: [&str; 3] = ["ID", "HASH", "REVISION"];

/// What `raftkv check consistency` prints for `report`, and its exit status.
fn report_output(report: &ConsistencyCheckResponse) -> Output {
    let rows: Vec<Vec<String>> = report
        .members
        .iter()
        .map(|member| match (&member.hash, member.revision) {
            (Some(hash), revision) => vec![
                member.id.to_string(),
                hash.clone(),
                revision.map_or_else(|| "-".to_string(), |revision| revision.to_string()),
            ],
            (None, _) => vec![
                member.id.to_string(),
                format!(
                    "no hash: {}",
                    member.missing.as_deref().unwrap_or("not given")
                ),
            ],
        })
        .collect();
    let mut stdout = table(&MEMBERS_HEADER, &rows);
    let index = report.index;
    let (verdict, stderr, exit) = match report.verdict {
        ConsistencyVerdict::Consistent => {
            (format!("consistent index={index}"), None, Exit::Success)
        }
        ConsistencyVerdict::Divergent => {
            let ids: Vec<String> = report.divergent.iter().map(u64::to_string).collect();
            let ids = ids.join(",");
            (
                format!("divergent index={index} members={ids}"),
                Some(format!(
                    "raftkv: diverged: member(s) {ids} hold a different state than the others \
                     at index {index}"
                )),
                Exit::Divergent,
            )
        }
        ConsistencyVerdict::Incomplete => (
            format!("incomplete index={index}"),
            Some(format!(
                "raftkv: unavailable: not every member gave its hash at index {index}"
            )),
            Exit::Unavailable,
        ),
    };
    stdout.push_str(&verdict);
    stdout.push('\n');
    Output {
        stdout: stdout.into_bytes(),
        stderr: stderr.into_iter().collect(),
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as the server sends it: members 1 and 2 hashed, 3 unreachable.
    fn report(verdict: &str, divergent: &str) -> ConsistencyCheckResponse {
        let json = format!(
            r#"{{"index": 40, "verdict": "{verdict}", "divergent": [{divergent}], "members": [
                {{"id": 1, "hash": "aa", "revision": 9}},
                {{"id": 2, "hash": "bb", "revision": 9}},
                {{"id": 3, "missing": "unreachable"}}]}}"#
        );
        serde_json::from_str(&json).expect("the API's JSON")
    }

    #[test]
    fn each_verdict_prints_the_members_and_exits_with_its_status() {
        let consistent = report_output(&report("consistent", ""));
        assert_eq!(consistent.exit.code(), 0);
        assert_eq!(
            String::from_utf8_lossy(&consistent.stdout),
            "ID  HASH  REVISION\n\
             1   aa    9\n\
             2   bb    9\n\
             3   no hash: unreachable\n\
             consistent index=40\n"
        );
        assert!(consistent.stderr.is_empty());

        let divergent = report_output(&report("divergent", "2"));
        assert_eq!(divergent.exit.code(), 1);
        assert!(
            String::from_utf8_lossy(&divergent.stdout).ends_with("divergent index=40 members=2\n")
        );
        assert_eq!(
            divergent.stderr,
            ["raftkv: diverged: member(s) 2 hold a different state than the others at index 40"]
        );

        let incomplete = report_output(&report("incomplete", ""));
        assert_eq!(incomplete.exit.code(), 3);
        assert!(String::from_utf8_lossy(&incomplete.stdout).ends_with("incomplete index=40\n"));
    }

    #[test]
    fn the_command_parses_as_main_mounts_it() {
        let parsed = super::super::parse(&["check", "consistency"]).expect("parses");
        assert!(matches!(
            parsed,
            super::super::ClientCommand::Check(CheckCommand::Check {
                what: CheckTarget::Consistency
            })
        ));
        assert!(super::super::parse(&["check"]).is_err());
    }
}
