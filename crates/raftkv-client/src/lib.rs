//! # raftkv-client
//!
//! The async Rust client of the raftkv key-value store ([`Client`]), and the JSON shapes of its
//! HTTP API ([`api`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), raftkv_client::ClientError> {
//! use raftkv_client::{Client, Consistency};
//!
//! let client = Client::new(["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"])?;
//! client.put("greeting", "hello").await?;
//! let value = client.get("greeting", Consistency::Linearizable).await?;
//! assert_eq!(value.as_deref(), Some(&b"hello"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! Failures reach the caller as [`ClientError`]s. An HTTP/2 connection that fails is also
//! logged (through `tracing`, at debug level), as nobody may have a request on it to be told.

#![deny(missing_docs)]

pub mod api;
pub mod client;
pub mod tls;

pub use api::{
    AppendResponse, CasResponse, Consistency, DeleteResponse, ErrorResponse, KeyValue,
    ScanResponse, StatusResponse, WriteResponse,
};
pub use client::{
    Client, ClientError, ClientOptions, WatchMessage, WatchRequest, WatchSelector, WatchStream,
};
pub use tls::ClientTls;
