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
//! Revisions, transactions and watch (docs/coordination.md is the guide):
//!
//! ```no_run
//! # async fn example() -> Result<(), raftkv_client::ClientError> {
//! use raftkv_client::api::{Compare, CompareOp, CompareTarget, TxnOp, TxnRequest};
//! use raftkv_client::{Client, ClientError, WatchMessage, WatchRequest};
//!
//! let client = Client::new(["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"])?;
//!
//! // Take a lock if nobody holds it, atomically; read it either way.
//! let take_lock = TxnRequest {
//!     compare: vec![Compare {
//!         key: "lock".into(),
//!         op: CompareOp::Equal,
//!         target: CompareTarget::Version(0),
//!     }],
//!     success: vec![TxnOp::Put { key: "lock".into(), value: Some("me".into()), value_base64: None, lease: None }],
//!     failure: vec![TxnOp::Get { key: "lock".into() }],
//! };
//! let answer = client.txn(&take_lock).await?;
//! println!("took the lock: {} (revision {})", answer.succeeded, answer.revision);
//!
//! // The key with its revisions, now and as it was at an earlier revision.
//! let now = client.get_versioned("lock", None).await?;
//! if let Some(kv) = &now.kv {
//!     println!("version {} last changed at revision {}", kv.version, kv.mod_revision);
//! }
//! match client.get_versioned("lock", Some(1)).await {
//!     Ok(then) => println!("at revision 1: {:?}", then.kv),
//!     Err(ClientError::Compacted { compact_revision, .. }) => {
//!         println!("history before revision {compact_revision} is compacted")
//!     }
//!     Err(other) => return Err(other),
//! }
//!
//! // Every change under "config/" from the next revision on; the stream resumes by itself
//! // on another node if its node fails, without a gap or a repeat.
//! let mut watch = client.watch(WatchRequest::prefix("config/", Some(now.revision + 1)));
//! while let Some(message) = watch.next().await {
//!     match message? {
//!         WatchMessage::Events(batch) => {
//!             for event in &batch.events {
//!                 println!("{} {:?} {}", batch.revision, event.kind, event.kv.key);
//!             }
//!         }
//!         WatchMessage::Progress(progress) => println!("up to date at {}", progress.revision),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`WatchStream`] is a `futures_core::Stream` too, for use with stream combinators.
//!
//! Leases, locks and elections (docs/leases.md is the guide): a [`Session`] is a lease kept
//! alive by a [`LeaseKeeper`]; its locks hand out fencing tokens.
//!
//! ```no_run
//! # async fn example() -> Result<(), raftkv_client::LockError> {
//! use raftkv_client::{Client, Session, SESSION_TTL_SECONDS_DEFAULT};
//!
//! let client = Client::new(["127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"])?;
//!
//! // A key that lives as long as this process keeps its lease alive.
//! let lease = client.lease_grant(10, None).await?;
//! client.put_with_lease("services/web/1", "10.0.0.1:80", lease.id).await?;
//! let keeper = client.keep_alive(lease.id).await?;
//!
//! // A lock: wait for it, then pass the fencing token to what it guards.
//! let session = Session::new(&client, SESSION_TTL_SECONDS_DEFAULT).await?;
//! let guard = session.lock("jobs/nightly").await?;
//! let token = guard.fencing_token();
//! tokio::select! {
//!     reason = guard.lost() => println!("lost the lock: {reason}"),
//!     () = async { println!("working with fencing token {token}") } => {}
//! }
//! guard.unlock().await?;
//!
//! // An election, and whoever watches it.
//! let mut observer = client.observe_election("db-primary");
//! let leadership = session.campaign("db-primary", "node-1").await?;
//! if let Some(Ok(Some(leader))) = observer.next().await {
//!     println!("leader: {} (revision {})", leader.key, leader.create_revision);
//! }
//! leadership.resign().await?;
//! session.close().await?;
//! keeper.revoke().await?;
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
    Client, ClientError, ClientOptions, ElectionLeader, ElectionObserver, Leadership, LeaseKeeper,
    LeaseLost, LeaseStatus, LockError, LockGuard, LockLost, Session, SnapshotDownload,
    WatchMessage, WatchRequest, WatchSelector, WatchStream, SESSION_TTL_SECONDS_DEFAULT,
};
pub use tls::ClientTls;

#[cfg(test)]
mod tests {
    /// The Rust example of docs/coordination.md is the crate documentation's, which the doc
    /// tests compile: the two must not drift apart.
    /// The first Rust block of the guide `page` and the crate docs' example after `heading`,
    /// as the guide shows it (the hidden `# ` lines left out).
    fn guide_and_crate_example(page: &str, heading: &str) -> (String, String) {
        let block = page
            .split("```rust\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a rust block in the guide");
        let example = include_str!("lib.rs")
            .split(heading)
            .nth(1)
            .and_then(|rest| rest.split("//! ```no_run\n").nth(1))
            .and_then(|rest| rest.split("//! ```").next())
            .expect("the example in the crate docs");
        let shown: String = example
            .lines()
            .map(|line| line.strip_prefix("//!").unwrap_or(line))
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .filter(|line| !line.starts_with("# "))
            .map(|line| format!("{line}\n"))
            .collect();
        (block.to_string(), shown)
    }

    #[test]
    fn the_guide_shows_the_compiled_coordination_example() {
        let (block, shown) = guide_and_crate_example(
            include_str!("../../../docs/coordination.md"),
            "//! Revisions, transactions and watch",
        );
        assert_eq!(block, shown);
    }

    #[test]
    fn the_lease_guide_shows_the_compiled_lease_example() {
        let (block, shown) = guide_and_crate_example(
            include_str!("../../../docs/leases.md"),
            "//! Leases, locks and elections",
        );
        assert_eq!(block, shown);
    }
}
