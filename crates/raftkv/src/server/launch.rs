//! `raftkv serve`: one node from its settings, its HTTP API, a clean stop on SIGINT or SIGTERM.

use std::sync::Arc;

use axum::serve::ListenerExt;

use super::KvServer;
use crate::http::{router, AppState};
use crate::settings::{HttpSettings, ServeConfig};

/// Runs a node until SIGINT or SIGTERM; then stops taking requests, lets the ones in flight
/// finish, and stops the node after its writes are durable. `http` says who may use the API
/// and the limits its server holds; `tls` whether the API is served over HTTPS and the Raft
/// transport over mutual TLS.
pub async fn serve(
    config: ServeConfig,
    http: HttpSettings,
    tls: crate::tls::NodeTls,
) -> Result<(), String> {
    let http_listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.http_addr))?;
    let grpc_listener = match config.grpc_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|error| format!("cannot listen on {addr}: {error}"))?,
        ),
        None => None,
    };
    let server =
        KvServer::start_with_tls(config.clone(), http.access.node_token.clone(), tls.clone())
            .await?;
    let state = AppState::new(Arc::clone(&server))
        .with_access(&http.access)
        .with_limits(&http.limits);
    match &http.access.policy {
        Some(policy) => tracing::info!(
            tokens = policy.tokens().len(),
            "HTTP API requires bearer tokens"
        ),
        None if !config.http_addr.ip().is_loopback() => tracing::warn!(
            http = %config.http_addr,
            "the HTTP API is unauthenticated and listens beyond loopback: anyone who can \
             reach it can read, write and change the membership (give --auth-tokens)"
        ),
        None => {}
    }
    let announcer = tokio::spawn(Arc::clone(&server).announce_loop(state.forwarder()));
    let consistency_checker = tokio::spawn(super::consistency::consistency_loop(
        Arc::downgrade(&server),
        state.forwarder(),
    ));
    tracing::info!(
        id = config.id.0,
        http = %config.http_addr,
        grpc = ?config.grpc_addr,
        raft = %config.raft_addr,
        data = %config.data_dir.display(),
        https = tls.https(),
        peer_tls = tls.peer().is_some(),
        "raftkv node serving"
    );
    // Answers are small and a client waits for each: send them without Nagle's delay.
    let http_listener = http_listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an HTTP connection");
        }
    });
    let metrics = state.metrics();
    // TLS and token files reloaded on SIGHUP and when they change, for as long as the node
    // serves.
    let live_config = crate::live_config::LiveConfig::new(
        config.id,
        tls.clone(),
        http.access.clone(),
        Arc::clone(&metrics),
        http.config_watch_interval,
    );
    tracing::debug!(?live_config, "watching configuration files");
    let live_config = tokio::spawn(live_config.run());
    let router = router(state);
    // The etcd API stops taking calls when the HTTP API does.
    let (grpc_stop, grpc_stopped) = tokio::sync::watch::channel(false);
    let grpc = grpc_listener.map(|listener| {
        // The same tokens and roles as the HTTP API's.
        let api =
            crate::grpc::EtcdApi::new(Arc::clone(&server)).with_policy(http.access.policy.clone());
        let mut stopped = grpc_stopped;
        tokio::spawn(crate::grpc::serve(listener, api, async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        }))
    });
    // Watches are answers that never end by themselves: they are cancelled (`stopping`, with
    // where to resume) when the stop begins, so that the connections can finish.
    let stopping = {
        let server = Arc::clone(&server);
        async move {
            stop_signal().await;
            server.watch_hub().stop();
            let _ = grpc_stop.send(true);
        }
    };
    match tls.http_listener(http_listener) {
        // The same server and limits; the streams it gets do their TLS handshake first.
        Ok(listener) => {
            crate::limits::serve_http(listener, router, http.limits, metrics, stopping).await
        }
        Err(http_listener) => {
            crate::limits::serve_http(http_listener, router, http.limits, metrics, stopping).await
        }
    }
    if let Some(grpc) = grpc {
        match grpc.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the etcd gRPC API stopped with an error"),
            Err(error) => tracing::warn!(%error, "the etcd gRPC API task failed"),
        }
    }
    announcer.abort();
    live_config.abort();
    consistency_checker.abort();
    server.node().shutdown().await;
    tracing::info!(id = config.id.0, "raftkv node stopped");
    Ok(())
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
