//! The bearer token file of `raftkv serve --auth-tokens FILE` and the `Authorization` header
//! checked against it ([`raftkv::auth`]).

use axum::http::{header, HeaderMap, HeaderValue, Method};
use raftkv::auth::{AccessPolicy, Role, TokenStore};

use crate::{split_parts, Seed};

/// `data` as a token file, then after a [`crate::PART_SEPARATOR`] as the value of an
/// `Authorization` header (more parts: more such headers). Parsing fails or gives a store of at
/// least one token; checking the headers against it never panics, and lets in exactly the
/// roles the store gives the token (two headers let in nobody); the first admin token kept in
/// clear is let in on every route.
pub fn token_file(data: &[u8]) {
    let parts = split_parts(data);
    let Ok(text) = std::str::from_utf8(parts[0]) else {
        return;
    };
    let Ok(store) = TokenStore::parse(text) else {
        return;
    };
    assert!(!store.is_empty(), "a token file holds a token");
    let admin = store.first_admin_token().map(|token| token.authorization());
    let sent: Vec<HeaderValue> = parts[1..]
        .iter()
        .filter_map(|bytes| HeaderValue::from_bytes(bytes).ok())
        .collect();
    // The role the store gives the one token sent, if one was sent as `Bearer <token>`.
    let role = match sent.as_slice() {
        [value] => bearer(value.as_bytes()).and_then(|token| store.role_of(token)),
        _ => None,
    };
    let policy = AccessPolicy::new(store, false, false);
    let mut headers = HeaderMap::new();
    for value in sent {
        headers.append(header::AUTHORIZATION, value);
    }
    for (route, method, needs) in [
        ("/v1/kv/{key}", Method::GET, Role::ReadOnly),
        ("/v1/kv/{key}", Method::PUT, Role::ReadWrite),
        ("/v1/members", Method::POST, Role::Admin),
    ] {
        let admitted = policy.check(route, &method, &headers).is_ok();
        assert_eq!(
            admitted,
            role.is_some_and(|role| role >= needs),
            "{method} {route} with role {role:?}"
        );
    }
    if let Some(admin) = admin {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, admin);
        for (route, method) in [
            ("/v1/kv/{key}", Method::DELETE),
            ("/v1/members/{id}/promote", Method::POST),
            ("/metrics", Method::GET),
        ] {
            assert!(
                policy.check(route, &method, &headers).is_ok(),
                "the admin token is let in to {method} {route}"
            );
        }
    }
}

/// The token of a `Bearer <token>` header value as the node should read it: the scheme in any
/// case, one space, the token with spaces around it ignored.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|byte| *byte == b' ')?;
    let (scheme, rest) = value.split_at(space);
    let token = rest.trim_ascii();
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

/// Seeds of [`token_file`]: the README's example file with each kind of header.
pub(crate) fn token_file_seeds() -> Vec<Seed> {
    let file = r#"[[token]]
name = "dashboards"
role = "read-only"
token_sha256 = "8a2f0b5cbe1d0ba4d1c0c5d0a0f5ce0a4b1ee8b0e6d7b9d4c3e2f1a0b9c8d7e6"

[[token]]
name = "writer"
role = "read-write"
token = "writer-token-0123456789"

[[token]]
name = "nodes"
role = "admin"
token = "admin-token-0123456789abcdef"
"#;
    let with = |headers: &[&str]| {
        let mut parts: Vec<&[u8]> = vec![file.as_bytes()];
        parts.extend(headers.iter().map(|header| header.as_bytes()));
        let mut joined = crate::join_parts(0, &parts);
        joined.remove(0); // This target has no flags byte.
        joined
    };
    vec![
        ("file_only", file.as_bytes().to_vec()),
        ("writer", with(&["Bearer writer-token-0123456789"])),
        (
            "admin_lowercase",
            with(&["bearer  admin-token-0123456789abcdef "]),
        ),
        ("unknown", with(&["Bearer not-a-token-of-this-file"])),
        (
            "two_headers",
            with(&[
                "Bearer writer-token-0123456789",
                "Bearer admin-token-0123456789abcdef",
            ]),
        ),
        ("basic", with(&["Basic d3JpdGVyOnRva2Vu"])),
    ]
}
