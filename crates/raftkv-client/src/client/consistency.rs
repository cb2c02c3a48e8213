//! The consistency check: one request, answered by the leader once it compared the members'
//! hashes of their state ([`crate::api::consistency`]).

use hyper::Method;

use super::answer::decode_success;
use super::transport::Call;
use super::{Client, ClientError};
use crate::api::ConsistencyCheckResponse;

impl Client {
    /// Runs a consistency check now: the leader proposes a hash check, every member hashes
    /// its state at that entry's index, and the leader compares the hashes. What it found is
    /// in the answer's `verdict`, a divergence included (it is `Ok`: the call succeeded).
    ///
    /// It changes no key, so it is retried without a session (a retry runs a check of its
    /// own). Needs an admin token on nodes run with `--auth-tokens`.
    pub async fn check_consistency(&self) -> Result<ConsistencyCheckResponse, ClientError> {
        let call = Call::empty(Method::POST, "/v1/consistency/check".to_string());
        decode_success(self.execute(&call).await?, "ConsistencyCheckResponse")
    }
}
