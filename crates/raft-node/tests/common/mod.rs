//! Helpers shared by the cluster tests.

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

pub mod cluster;
