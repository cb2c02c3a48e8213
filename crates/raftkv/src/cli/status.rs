//! `raftkv status`: every node asked at once, one row each, with how far each has applied
//! behind the highest commit index any of them reported, and the phase of a node recovering
//! after an unclean restart.

use raftkv_client::api::{RecoveryStatus, StatusResponse};
use raftkv_client::{Client, ClientError};

use super::output::{table, Exit, Output};

/// Asks every endpoint of `client` for its status at once, so one slow node costs one request
/// timeout, not one each.
pub(super) async fn status(client: &Client) -> Output {
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

/// The status table's header.
const STATUS_HEADER: [&str; 9] = [
    "ENDPOINT", "ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAG", "RECOVERY",
];

/// The status table: a row of cells per node that answered, and `unreachable: REASON` after
/// the endpoint of one that did not.
fn status_table(
    endpoints: &[String],
    results: &[Result<StatusResponse, String>],
    commit_index_max: u64,
) -> Vec<u8> {
    let rows: Vec<Vec<String>> = endpoints
        .iter()
        .zip(results)
        .map(|(endpoint, result)| match result {
            Ok(status) => vec![
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
                recovery_cell(status.recovery.as_ref()),
            ],
            Err(reason) => vec![endpoint.clone(), format!("unreachable: {reason}")],
        })
        .collect();
    table(&STATUS_HEADER, &rows).into_bytes()
}

/// `-` for a node not recovering; else its phase and, while it waits for voters, which:
/// `probing (awaiting 2,3)`.
fn recovery_cell(recovery: Option<&RecoveryStatus>) -> String {
    let Some(recovery) = recovery else {
        return "-".to_string();
    };
    if recovery.awaiting.is_empty() {
        return recovery.phase.clone();
    }
    let awaiting: Vec<String> = recovery.awaiting.iter().map(u64::to_string).collect();
    format!("{} (awaiting {})", recovery.phase, awaiting.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            recovery: None,
            load: None,
        }
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
ENDPOINT               ID  ROLE      TERM  LEADER  COMMIT  APPLIED  LAG  RECOVERY
127.0.0.1:8001         1   leader    3     1       120     120      0    -
127.0.0.1:8002         2   follower  3     1       118     95       25   -
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
            "ENDPOINT        ID  ROLE       TERM  LEADER  COMMIT  APPLIED  LAG  RECOVERY\n\
             127.0.0.1:8001  1   candidate  3     -       7       7        0    -\n"
        );
    }

    #[test]
    fn a_recovering_node_shows_its_phase_and_the_voters_it_waits_for() {
        let recovery = |phase: &str, answered: Vec<u64>, awaiting: Vec<u64>| RecoveryStatus {
            phase: phase.to_string(),
            answered,
            awaiting,
            term_floor: 3,
            log_floor_index: 118,
            log_floor_term: 3,
        };
        let endpoints = [
            "127.0.0.1:8001".to_string(),
            "127.0.0.1:8002".to_string(),
            "127.0.0.1:8003".to_string(),
        ];
        let mut probing = status(2, "follower", None, 0, 0);
        probing.recovery = Some(recovery("probing", vec![1], vec![3]));
        let mut catching_up = status(3, "follower", Some(1), 100, 100);
        catching_up.recovery = Some(recovery("catching-up", vec![1, 2], vec![]));
        let results = [
            Ok(status(1, "leader", Some(1), 120, 120)),
            Ok(probing),
            Ok(catching_up),
        ];
        let output = status_output(&endpoints, &results);
        assert_eq!(output.exit, Exit::Success);
        let expected = "\
ENDPOINT        ID  ROLE      TERM  LEADER  COMMIT  APPLIED  LAG  RECOVERY
127.0.0.1:8001  1   leader    3     1       120     120      0    -
127.0.0.1:8002  2   follower  3     -       0       0        120  probing (awaiting 3)
127.0.0.1:8003  3   follower  3     1       100     100      20   catching-up
";
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    }
}
