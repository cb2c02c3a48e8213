//! The token file of `--auth-tokens` (its format is in [`crate::auth`]'s documentation),
//! parsed and validated into a [`TokenStore`], which finds a token's role.
//!
//! ```text
//!  TOML ─► [[token]] entries (name, role, token | token_sha256) ─► each checked; names and
//!          tokens unique ─► TokenStore: (name, digest, role) per entry
//!  token ─► its digest ─► compared with every entry's ─► the role, or none
//! ```

use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

use super::digest::TokenDigest;
use super::policy::Role;
use super::token::BearerToken;

/// Most entries in a token file; every request is checked against all of them.
pub const TOKENS_MAX: usize = 10_000;

/// A token file that cannot be used. The messages name entries by their `name` and never
/// quote a token.
#[derive(Debug, Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is not TOML of the expected shape.
    #[error("{0}")]
    Syntax(String),
    /// An entry is wrong.
    #[error("token entry {number} (`{name}`): {reason}")]
    Entry {
        /// The entry's position in the file, from 1.
        number: usize,
        /// Its `name`.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Two entries hold the same token, or the same name.
    #[error("token entries `{first}` and `{second}`: {reason}")]
    Duplicate {
        /// The earlier entry's name.
        first: String,
        /// The later entry's name.
        second: String,
        /// What they share.
        reason: &'static str,
    },
    /// No entries: nobody could use the API.
    #[error("no [[token]] entries: with --auth-tokens, nobody could use the API")]
    Empty,
    /// More than [`TOKENS_MAX`] entries.
    #[error("more than {TOKENS_MAX} token entries")]
    TooMany,
}

/// One `[[token]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    name: String,
    role: String,
    token: Option<String>,
    token_sha256: Option<String>,
}

/// The token file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFileSpec {
    #[serde(default)]
    token: Vec<TokenSpec>,
}

/// One accepted token.
#[derive(Clone)]
struct TokenEntry {
    name: String,
    digest: TokenDigest,
    role: Role,
}

/// The tokens of a token file, validated. Its `Debug` shows names and roles, never digests.
#[derive(Clone)]
pub struct TokenStore {
    /// Invariant: not empty; names and digests are unique.
    entries: Vec<TokenEntry>,
    /// The first `admin` entry given as `token` (not as a digest), for the node's own calls.
    first_admin_token: Option<BearerToken>,
    /// Some entry is given as `token`: the file is a secret.
    pub(super) holds_tokens: bool,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|entry| (&entry.name, entry.role.name())),
            )
            .finish()
    }
}

impl TokenStore {
    /// Reads and validates the token file at `path`.
    pub fn load(path: &Path) -> Result<TokenStore, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| TokenFileError::Unreadable {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        TokenStore::parse(&text)
    }

    /// Validates the text of a token file (the format is in the module's documentation).
    pub fn parse(text: &str) -> Result<TokenStore, TokenFileError> {
        let spec: TokenFileSpec = toml::from_str(text).map_err(|error| {
            // The error's own rendering quotes the offending line, which may hold a token:
            // say where it is instead.
            let line = error
                .span()
                .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
            TokenFileError::Syntax(match line {
                Some(line) => format!("line {line}: {}", error.message()),
                None => error.message().to_string(),
            })
        })?;
        if spec.token.is_empty() {
            return Err(TokenFileError::Empty);
        }
        if spec.token.len() > TOKENS_MAX {
            return Err(TokenFileError::TooMany);
        }
        let mut entries: Vec<TokenEntry> = Vec::with_capacity(spec.token.len());
        let mut first_admin_token = None;
        let mut holds_tokens = false;
        for (position, token) in spec.token.into_iter().enumerate() {
            let number = position + 1;
            let name = token.name.trim().to_string();
            let entry_error = |reason: String| TokenFileError::Entry {
                number,
                name: name.clone(),
                reason,
            };
            if name.is_empty() {
                return Err(entry_error("the name is empty".into()));
            }
            let role = Role::from_name(token.role.trim()).ok_or_else(|| {
                entry_error(format!(
                    "unknown role `{}` (read-only, read-write or admin)",
                    token.role
                ))
            })?;
            let (digest, plain) = match (token.token, token.token_sha256) {
                (Some(text), None) => {
                    holds_tokens = true;
                    let plain = BearerToken::new(&text).map_err(entry_error)?;
                    (plain.digest(), Some(plain))
                }
                (None, Some(hex)) => (TokenDigest::from_hex(&hex).map_err(entry_error)?, None),
                (Some(_), Some(_)) => {
                    return Err(entry_error(
                        "give `token` or `token_sha256`, not both".into(),
                    ))
                }
                (None, None) => {
                    return Err(entry_error(
                        "no token: give `token` or `token_sha256`".into(),
                    ))
                }
            };
            for earlier in &entries {
                let duplicate = if earlier.name == name {
                    Some("the same name")
                } else if earlier.digest.matches(&digest) {
                    Some("the same token")
                } else {
                    None
                };
                if let Some(reason) = duplicate {
                    return Err(TokenFileError::Duplicate {
                        first: earlier.name.clone(),
                        second: name,
                        reason,
                    });
                }
            }
            if role == Role::Admin && first_admin_token.is_none() {
                first_admin_token = plain;
            }
            entries.push(TokenEntry { name, digest, role });
        }
        assert!(!entries.is_empty(), "an empty file was refused above");
        Ok(TokenStore {
            entries,
            first_admin_token,
            holds_tokens,
        })
    }

    /// The role of `token`, if it is one of the file's. Its digest is compared with every
    /// entry's, each comparison in time independent of the bytes, so the answer's timing
    /// tells nothing about how close a guess came.
    pub fn role_of(&self, token: &[u8]) -> Option<Role> {
        let digest = TokenDigest::of(token);
        let mut found = None;
        for entry in &self.entries {
            if entry.digest.matches(&digest) {
                found = Some(entry.role);
            }
        }
        found
    }

    /// The first `admin` entry given as a token rather than a digest.
    pub fn first_admin_token(&self) -> Option<&BearerToken> {
        self.first_admin_token.as_ref()
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true: a store holds at least one token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_tokens::{sha256_hex, store, ADMIN, READER, WRITER};
    use super::*;

    #[test]
    fn tokens_are_found_by_token_or_digest_with_their_roles() {
        let store = store();
        assert_eq!(store.len(), 3);
        assert_eq!(store.role_of(READER.as_bytes()), Some(Role::ReadOnly));
        assert_eq!(store.role_of(WRITER.as_bytes()), Some(Role::ReadWrite));
        assert_eq!(store.role_of(ADMIN.as_bytes()), Some(Role::Admin));
        assert_eq!(store.role_of(b"admin-token-0123456788"), None);
        assert_eq!(store.role_of(b""), None);
        assert_eq!(
            store.first_admin_token().map(BearerToken::secret),
            Some(ADMIN)
        );
    }

    #[test]
    fn the_store_debug_shows_names_and_roles_but_no_token() {
        let shown = format!("{:?}", store());
        assert!(shown.contains("\"writer\": \"read-write\""), "{shown}");
        assert!(!shown.contains(WRITER), "{shown}");
        let token = BearerToken::new(ADMIN).expect("valid");
        assert!(!format!("{token:?}").contains(ADMIN));
    }

    #[test]
    fn bad_token_files_are_refused_with_a_reason_that_quotes_no_token() {
        let entry = |body: &str| format!("[[token]]\n{body}\n");
        let digest = sha256_hex(WRITER);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "no [[token]] entries"),
            (
                entry("name = \"a\"\nrole = \"read-only\"\ntoken = \"\""),
                "the token is empty",
            ),
            (
                entry("name = \"a\"\nrole = \"read-only\"\ntoken = \"short\""),
                "at least 16",
            ),
            (
                entry("name = \"a\"\nrole = \"read-only\"\ntoken = \"has a space in it...\""),
                "visible ASCII",
            ),
            (
                entry(&format!("name = \"a\"\nrole = \"superuser\"\ntoken = \"{WRITER}\"")),
                "unknown role `superuser`",
            ),
            (
                entry(&format!("name = \"\"\nrole = \"admin\"\ntoken = \"{WRITER}\"")),
                "the name is empty",
            ),
            (
                entry("name = \"a\"\nrole = \"admin\""),
                "no token: give `token` or `token_sha256`",
            ),
            (
                entry(&format!(
                    "name = \"a\"\nrole = \"admin\"\ntoken = \"{WRITER}\"\ntoken_sha256 = \"{digest}\""
                )),
                "not both",
            ),
            (
                entry("name = \"a\"\nrole = \"admin\"\ntoken_sha256 = \"abc\""),
                "64 hex digits",
            ),
            (
                entry(&format!(
                    "name = \"a\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"",
                    "g".repeat(64)
                )),
                "hex digits only",
            ),
            (
                format!(
                    "{}{}",
                    entry(&format!("name = \"a\"\nrole = \"admin\"\ntoken = \"{WRITER}\"")),
                    entry(&format!(
                        "name = \"b\"\nrole = \"read-only\"\ntoken_sha256 = \"{digest}\""
                    ))
                ),
                "token entries `a` and `b`: the same token",
            ),
            (
                format!(
                    "{}{}",
                    entry(&format!("name = \"a\"\nrole = \"admin\"\ntoken = \"{WRITER}\"")),
                    entry(&format!("name = \"a\"\nrole = \"admin\"\ntoken = \"{ADMIN}\""))
                ),
                "the same name",
            ),
            (
                entry(&format!(
                    "name = \"a\"\nrole = \"admin\"\ntoken = \"{WRITER}\"\nexpires = 1"
                )),
                "unknown field `expires`",
            ),
            (
                format!("[[token]]\nname = \"a\"\ntoken = \"{WRITER}"),
                "line 3",
            ),
        ];
        for (text, reason) in cases {
            let error = TokenStore::parse(&text)
                .err()
                .unwrap_or_else(|| panic!("refused: {text}"))
                .to_string();
            assert!(error.contains(reason), "{text}\n=> {error}");
            assert!(!error.contains(WRITER) && !error.contains(ADMIN), "{error}");
        }
    }
}
