//! `raftkv log-level [FILTER] [--all]`: a node's log filter, printed or changed while it runs.
//!
//! ```text
//!  no --all: the first endpoint ─► GET (or PUT FILTER) /v1/log-level ─► the filter
//!  --all:    every endpoint at once ─► a line `ENDPOINT<TAB>FILTER` each, in the order given
//!            (`ENDPOINT<TAB>error: REASON` for a node that did not answer or refused)
//! ```
//!
//! The filter is each node's own and is never forwarded, so each node is asked itself, once.
//! With --all the command exits with the worst status any node gave: 2 when a filter was
//! refused as invalid, 3 when a node did not answer.

use raftkv_client::api::LogLevelResponse;
use raftkv_client::{Client, ClientError};

use super::output::{exit_of, Exit, Output};

/// Runs `raftkv log-level`: prints the filter of the first endpoint, or of every endpoint
/// with `all`; sets it first when `filter` is given.
pub(super) async fn log_level(client: &Client, filter: Option<String>, all: bool) -> Output {
    let Some(first) = client.endpoints().first() else {
        return Output::failure(Exit::Input, "no endpoint given".into());
    };
    let endpoints: Vec<String> = if all {
        client.endpoints().to_vec()
    } else {
        vec![first.clone()]
    };
    let requests: Vec<_> = endpoints
        .iter()
        .map(|endpoint| {
            let (client, endpoint, filter) = (client.clone(), endpoint.clone(), filter.clone());
            tokio::spawn(async move {
                match filter {
                    Some(filter) => client.set_log_filter(&endpoint, &filter).await,
                    None => client.log_filter(&endpoint).await,
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(requests.len());
    for request in requests {
        results.push(match request.await {
            Ok(result) => result,
            Err(error) => Err(ClientError::Unavailable(format!(
                "the request failed: {error}"
            ))),
        });
    }
    if !all {
        return match results.pop() {
            Some(Ok(LogLevelResponse { filter })) => Output::success(filter),
            Some(Err(error)) => Output::from_error(&error),
            None => unreachable!("one endpoint was asked"),
        };
    }
    all_output(&endpoints, &results)
}

/// One line per endpoint; the exit status of the worst failure, or success.
fn all_output(endpoints: &[String], results: &[Result<LogLevelResponse, ClientError>]) -> Output {
    assert_eq!(endpoints.len(), results.len(), "one result per endpoint");
    let mut stdout = String::new();
    let mut exit = Exit::Success;
    for (endpoint, result) in endpoints.iter().zip(results) {
        match result {
            Ok(response) => stdout.push_str(&format!("{endpoint}\t{}\n", response.filter)),
            Err(error) => {
                stdout.push_str(&format!("{endpoint}\terror: {error}\n"));
                let failed = exit_of(error);
                // The worst is the highest status, a refused input (2) below an unavailable
                // node (3) below any other server error (4).
                if failed.code() > exit.code() {
                    exit = failed;
                }
            }
        }
    }
    let stderr = if exit == Exit::Success {
        Vec::new()
    } else {
        vec!["raftkv: not every node answered as asked (see its line)".to_string()]
    };
    Output {
        stdout: stdout.into_bytes(),
        stderr,
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ClientCommand};
    use super::*;

    #[test]
    fn the_filter_is_optional_and_all_is_a_switch() {
        match parse(&["log-level"]).expect("parses") {
            ClientCommand::LogLevel { filter, all } => assert_eq!((filter, all), (None, false)),
            other => panic!("{other:?}"),
        }
        match parse(&["log-level", "info,raft_node=debug", "--all"]).expect("parses") {
            ClientCommand::LogLevel { filter, all } => {
                assert_eq!(
                    (filter.as_deref(), all),
                    (Some("info,raft_node=debug"), true)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_node_gets_a_line_and_the_worst_failure_decides_the_exit() {
        let endpoints = vec!["a:1".to_string(), "b:2".to_string(), "c:3".to_string()];
        let results = vec![
            Ok(LogLevelResponse {
                filter: "debug".into(),
            }),
            Err(ClientError::Unavailable("a:1: refused".into())),
            Ok(LogLevelResponse {
                filter: "info".into(),
            }),
        ];
        let output = all_output(&endpoints, &results);
        let text = String::from_utf8(output.stdout).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], "a:1\tdebug");
        assert!(lines[1].starts_with("b:2\terror: "), "{text}");
        assert_eq!(lines[2], "c:3\tinfo");
        assert_eq!(output.exit, Exit::Unavailable);

        let answered = all_output(&endpoints[..1], &results[..1]);
        assert_eq!(answered.exit, Exit::Success);
        assert!(answered.stderr.is_empty());
    }
}
