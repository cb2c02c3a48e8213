//! `raftkv serve`: one node, its HTTP API, and a clean stop on SIGINT or SIGTERM.

use std::sync::Arc;

use axum::serve::ListenerExt;

use crate::config::ServeConfig;
use crate::http::{router, AppState};
use crate::server::KvServer;

/// Runs a node until SIGINT or SIGTERM; then stops taking requests, lets the ones in flight
/// finish, and stops the node after its writes are durable.
pub async fn serve(config: ServeConfig) -> Result<(), String> {
    let http_listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.http_addr))?;
    let server = KvServer::start(config.clone()).await?;
    let state = AppState::new(Arc::clone(&server));
    let announcer = tokio::spawn(Arc::clone(&server).announce_loop(state.forwarder()));
    tracing::info!(
        id = config.id.0,
        http = %config.http_addr,
        raft = %config.raft_addr,
        data = %config.data_dir.display(),
        "raftkv node serving"
    );
    // Answers are small and a client waits for each: send them without Nagle's delay.
    let http_listener = http_listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an HTTP connection");
        }
    });
    let served = axum::serve(http_listener, router(state))
        .with_graceful_shutdown(stop_signal())
        .await
        .map_err(|error| format!("the HTTP server failed: {error}"));
    announcer.abort();
    server.node().shutdown().await;
    tracing::info!(id = config.id.0, "raftkv node stopped");
    served
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
