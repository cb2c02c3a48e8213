//! `raftkv status`: every node asked at once, one row each, with how far each has applied
//! behind the highest commit index any of them reported.

use raftkv_client::api::StatusResponse;
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
const STATUS_HEADER: [&str; 8] = [
    "ENDPOINT", "ID", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAG",
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
            ],
            Err(reason) => vec![endpoint.clone(), format!("unreachable: {reason}")],
        })
        .collect();
    table(&STATUS_HEADER, &rows).into_bytes()
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
}
