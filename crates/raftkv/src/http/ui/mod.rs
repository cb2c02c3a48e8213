//! The live dashboard: `GET /ui` (a page, its script and its style, embedded in the binary)
//! and `GET /v1/ui/events`, the feed it draws from (Server-Sent Events).
//!
//! ```text
//!  browser ─► /ui, /ui/app.js, /ui/style.css   public, static: no data in them
//!          ─► /v1/ui/events (the read role, as /v1/status; the page sends its token)
//!               ─► FeedHub: one gathering task while any page is connected (feed)
//!               ◄─ `event: cluster` once a second and at once on a change of leader or term:
//!                  members (role, term, indexes, lag, snapshot, health, voter or learner),
//!                  leader, pending membership change, throughput, p99s, fsync, events
//!          ─► admin actions: the API's own routes (/v1/leader/transfer, /v1/members...,
//!             /v1/compact) with the admin token, after a confirmation on the page
//! ```
//!
//! The page fetches nothing from elsewhere (its Content-Security-Policy allows only this
//! origin), needs no build step, and draws its charts on canvases with its own code. It reads
//! the feed with `fetch` rather than `EventSource`, which cannot send an `Authorization`
//! header.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::ApiError;
use super::AppState;

mod feed;
mod view;

pub(crate) use feed::FeedHub;

/// The page's files: name under `/ui/`, content type, bytes.
const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    ),
];

/// Only this origin, for everything: the page can load and call nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /ui` and `GET /ui/`: the page.
pub(super) async fn page() -> Response {
    asset_response("index.html")
}

/// `GET /ui/{asset}`: one of the page's files.
pub(super) async fn asset(Path(name): Path<String>) -> Response {
    asset_response(&name)
}

fn asset_response(name: &str) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(asset, _, _)| *asset == name) else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("no file /ui/{name}")).into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Revalidated each time, so a node upgraded in place serves its own page.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        Bytes::from_static(bytes),
    )
        .into_response()
}

/// `GET /v1/ui/events`: the cluster as this node sees it, as Server-Sent Events, for as long
/// as the page stays; 503 when too many pages are connected.
pub(super) async fn events(State(state): State<AppState>) -> Response {
    let Some(subscription) = state.ui.subscribe(&state) else {
        return ApiError::unavailable(
            format!(
                "{} dashboards are connected to this node already; retry later",
                feed::SUBSCRIBERS_MAX
            ),
            &state.server,
        )
        .into_response();
    };
    let hub = Arc::clone(&state.ui);
    let frames = futures_util::stream::unfold(
        (subscription, feed::Cursor::default(), true),
        move |(mut subscription, cursor, first)| {
            let hub = Arc::clone(&hub);
            async move {
                let mut first = first;
                loop {
                    if !first && subscription.version.changed().await.is_err() {
                        return None; // The hub is gone: the server stops.
                    }
                    first = false;
                    subscription.version.mark_unchanged();
                    if let Some((frame, next)) = hub.frame_after(cursor) {
                        return Some((Ok::<Bytes, Infallible>(frame), (subscription, next, false)));
                    }
                }
            }
        },
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(frames),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type_and_the_policy_and_others_are_not_found() {
        for (name, content_type, bytes) in ASSETS {
            let response = asset_response(name);
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            assert_eq!(
                response.headers().get(header::CONTENT_TYPE),
                Some(&HeaderValue::from_static(content_type))
            );
            assert!(response
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY));
            assert!(!bytes.is_empty());
        }
        assert_eq!(
            asset_response("../Cargo.toml").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(asset_response("missing.js").status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for (name, _, bytes) in ASSETS {
            let text = std::str::from_utf8(bytes).expect("the assets are UTF-8");
            for outside in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(outside), "{name} contains {outside}");
            }
        }
    }
}
