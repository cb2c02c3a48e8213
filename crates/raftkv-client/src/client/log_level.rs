//! A node's log filter: [`Client::log_filter`] and [`Client::set_log_filter`], each asking one
//! node (the filter is each node's own), once, like [`Client::status`].

use bytes::Bytes;
use hyper::Method;

use super::answer::decode_success;
use super::endpoint::parse_endpoint;
use super::transport::{Call, Exchange};
use super::Client;
use crate::api::LogLevelResponse;
use crate::ClientError;

impl Client {
    /// The log filter of the one node at `endpoint` (needs an admin token on a node with
    /// tokens). A node that does not answer is [`ClientError::Unavailable`].
    pub async fn log_filter(&self, endpoint: &str) -> Result<LogLevelResponse, ClientError> {
        let call = Call::empty(Method::GET, "/v1/log-level".to_string());
        self.ask_one(endpoint, &call).await
    }

    /// Sets the log filter of the one node at `endpoint` to `filter` (`RAFTKV_LOG`'s syntax,
    /// e.g. `info,raft_node=debug`); returns the filter now in force. A filter the node
    /// cannot parse is [`ClientError::Server`] with status 400, and changes nothing.
    pub async fn set_log_filter(
        &self,
        endpoint: &str,
        filter: &str,
    ) -> Result<LogLevelResponse, ClientError> {
        let call = Call::octets(
            Method::PUT,
            "/v1/log-level".to_string(),
            Bytes::copy_from_slice(filter.as_bytes()),
        );
        self.ask_one(endpoint, &call).await
    }

    /// Sends `call` to the node at `endpoint` once, with the request timeout; other nodes are
    /// never tried, since the answer is about this one.
    async fn ask_one(&self, endpoint: &str, call: &Call) -> Result<LogLevelResponse, ClientError> {
        let inner = &self.inner;
        let base_url = parse_endpoint(endpoint.trim(), inner.http.https)?;
        let exchange = inner
            .http
            .attempt(
                &base_url,
                call,
                inner.authorization.as_ref(),
                inner.options.request_timeout,
            )
            .await;
        match exchange {
            Exchange::Answered(answer) => decode_success(answer, "LogLevelResponse"),
            Exchange::Failed(failure) => Err(ClientError::Unavailable(format!(
                "{base_url}: {}",
                failure.description
            ))),
            Exchange::Final(error) => Err(error),
        }
    }
}
