//! A node's log filter: [`Client::log_filter`] and [`Client::set_log_filter`], each asking one
//! node (the filter is each node's own), once, like [`Client::status`].

use bytes::Bytes;
use hyper::Method;

use super::transport::Call;
use super::Client;
use crate::api::LogLevelResponse;
use crate::ClientError;

impl Client {
    /// The log filter of the one node at `endpoint` (needs an admin token on a node with
    /// tokens). A node that does not answer is [`ClientError::Unavailable`].
    pub async fn log_filter(&self, endpoint: &str) -> Result<LogLevelResponse, ClientError> {
        let call = Call::empty(Method::GET, "/v1/log-level".to_string());
        self.ask_one(endpoint, &call, "LogLevelResponse").await
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
        self.ask_one(endpoint, &call, "LogLevelResponse").await
    }
}
