//! Helpers shared by the cluster and transport tests.

#![allow(dead_code)] // Each test file uses a different part.

use std::future::Future;
use std::time::Duration;

/// How long any awaited outcome may take; generous, as the machines running the tests are
/// shared and slow at times.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `condition` until it yields a value, failing the test after [`DEADLINE`].
pub async fn wait_for<T>(what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(what, || condition().then_some(())).await
}

/// Awaits `future`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within_deadline<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub mod cluster;
