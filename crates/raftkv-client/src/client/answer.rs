//! A node's answer, and what it means for the caller: a decoded body, or a
//! [`ClientError::Server`] carrying the node's [`ErrorResponse`] (made up when the body is not
//! one, as a proxy's error page is not).

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use serde::de::DeserializeOwned;

use super::ClientError;
use crate::api::ErrorResponse;

/// Longest part of an error body quoted in an error message, in bytes.
const ERROR_QUOTE_BYTES_MAX: usize = 200;

/// A node's answer, whatever its status.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Bytes,
    /// The `Retry-After` header, when it held a number of seconds.
    pub(super) retry_after: Option<Duration>,
    /// Base URL of the leader, when a follower forwarded the request to it.
    pub(super) served_by_leader: Option<String>,
}

/// A 2xx answer's JSON body; anything else is a [`ClientError::Server`].
pub(super) fn decode_success<T: DeserializeOwned>(
    answer: Answer,
    what: &str,
) -> Result<T, ClientError> {
    if !answer.status.is_success() {
        return Err(server_error(&answer));
    }
    decode(&answer, what)
}

/// The answer's JSON body, whatever its status.
pub(super) fn decode<T: DeserializeOwned>(answer: &Answer, what: &str) -> Result<T, ClientError> {
    serde_json::from_slice(&answer.body)
        .map_err(|error| ClientError::Decode(format!("{what}: {error}: {}", quote(&answer.body))))
}

/// The answer as a [`ClientError::Server`].
pub(super) fn server_error(answer: &Answer) -> ClientError {
    ClientError::Server {
        status: answer.status.as_u16(),
        error: error_response(answer),
    }
}

/// The answer's `ErrorResponse`, or one made up from its status and text when the body is not
/// one (a proxy's page, an empty body).
pub(super) fn error_response(answer: &Answer) -> ErrorResponse {
    match serde_json::from_slice::<ErrorResponse>(&answer.body) {
        Ok(error) => error,
        Err(_) => {
            let reason = answer.status.canonical_reason().unwrap_or("unknown status");
            let error = if answer.body.is_empty() {
                reason.to_string()
            } else {
                format!("{reason}: {}", quote(&answer.body))
            };
            ErrorResponse {
                error,
                leader: None,
                leader_http: None,
            }
        }
    }
}

/// The start of a body, as text, for an error message.
fn quote(body: &[u8]) -> String {
    let shown = &body[..body.len().min(ERROR_QUOTE_BYTES_MAX)];
    let mut text = String::from_utf8_lossy(shown).into_owned();
    if body.len() > shown.len() {
        text.push('…');
    }
    text
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An answer without headers of note.
    pub(in crate::client) fn answer(status: u16, body: &'static [u8]) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).expect("a status"),
            body: Bytes::from_static(body),
            retry_after: None,
            served_by_leader: None,
        }
    }

    #[test]
    fn error_bodies_that_are_not_json_become_error_responses() {
        assert_eq!(
            error_response(&answer(502, b"<html>oops</html>")).error,
            "Bad Gateway: <html>oops</html>"
        );
        assert_eq!(error_response(&answer(413, b"")).error, "Payload Too Large");
        let long = answer(500, &[b'x'; 300]);
        let quoted = error_response(&long).error;
        assert_eq!(
            quoted.len(),
            "Internal Server Error: ".len() + 200 + '…'.len_utf8()
        );
    }
}
