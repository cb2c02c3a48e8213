//! The client against fake nodes. Most speak HTTP/1.1 from a script ([`fake_node`]); those of
//! [`http2`] speak only HTTP/2 with prior knowledge, for [`raftkv_client::Client::with_http2`].

mod answers;
mod coordination;
mod failover;
mod fake_node;
mod http2;
mod lease;
mod requests;
mod sessions;
mod watch;
