//! A bearer token as a node or a client sends it: what text may be one, read from a file, and
//! put in an `Authorization` header.

use std::path::Path;

use axum::http::HeaderValue;

use super::digest::TokenDigest;

/// Shortest token accepted, in bytes: 16 random characters are beyond guessing over a network.
pub const TOKEN_BYTES_MIN: usize = 16;

/// Longest token accepted, in bytes; a header line is bounded anyway, this says so early.
pub const TOKEN_BYTES_MAX: usize = 4096;

/// A token as sent by a node or a client. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// `text` as a token, if it can be one: [`TOKEN_BYTES_MIN`] to [`TOKEN_BYTES_MAX`] visible
    /// ASCII characters (no spaces), what fits a header as it is. The reason never quotes it.
    pub fn new(text: &str) -> Result<BearerToken, String> {
        if text.is_empty() {
            return Err("the token is empty".into());
        }
        if text.len() < TOKEN_BYTES_MIN {
            return Err(format!(
                "the token is {} characters; at least {TOKEN_BYTES_MIN} are needed",
                text.len()
            ));
        }
        if text.len() > TOKEN_BYTES_MAX {
            return Err(format!("the token is longer than {TOKEN_BYTES_MAX} bytes"));
        }
        if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err("the token must be visible ASCII characters without spaces".into());
        }
        Ok(BearerToken(text.to_string()))
    }

    /// Reads a token from the first line of the file at `path` (surrounding white space
    /// ignored, so a trailing newline does not matter).
    pub fn from_file(path: &Path) -> Result<BearerToken, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let first_line = text.lines().next().unwrap_or("").trim();
        BearerToken::new(first_line).map_err(|reason| format!("{}: {reason}", path.display()))
    }

    /// The token itself, to hand to a client library.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// `Bearer <token>`, marked sensitive so that it is kept out of logs and HPACK tables.
    pub fn authorization(&self) -> HeaderValue {
        // The token is visible ASCII (checked in `new`), which is always a valid header value.
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        value.set_sensitive(true);
        value
    }

    /// The token's digest, the form it is compared in.
    pub(super) fn digest(&self) -> TokenDigest {
        TokenDigest::of(self.0.as_bytes())
    }
}
