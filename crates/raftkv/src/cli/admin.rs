//! The cluster's administration commands: `members list | add | promote | remove` and
//! `leader transfer`.

use raftkv_client::api::{MembersResponse, MembershipChangeResponse};
use raftkv_client::{Client, ClientError};

use super::output::{table, Exit, Output};

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

/// Runs `raftkv members ACTION` with `client`.
pub(super) async fn members(client: &Client, action: MembersAction) -> Output {
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

/// Runs `raftkv leader ACTION` with `client`.
pub(super) async fn leader(client: &Client, action: LeaderAction) -> Output {
    match action {
        LeaderAction::Transfer { to } => match client.transfer_leader(to).await {
            Ok(()) => Output::success(format!("transferring leadership to node {to}")),
            Err(error) => Output::from_error(&error),
        },
    }
}

/// The members table, and a line when a change is in progress.
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

#[cfg(test)]
mod tests {
    use super::*;

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
            cluster_id: None,
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
}
