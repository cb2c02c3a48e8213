//! Client authentication of the HTTP API: bearer tokens with roles, read from the file given
//! with `--auth-tokens`.
//!
//! ```text
//!  request ─► route's guard: public route? ── yes ──────────────────────────────► handler
//!                 │ no
//!                 ├─ no / malformed / unknown `Authorization: Bearer` ─► 401 + WWW-Authenticate
//!                 ├─ token's role below the route's requirement ───────► 403
//!                 └─ role enough ─────────────────────────────────────────────────► handler
//! ```
//!
//! # The token file
//!
//! TOML, one `[[token]]` table per token:
//!
//! ```toml
//! [[token]]
//! name = "dashboards"   # who holds it: shown in errors about the file, never the token
//! role = "read-only"    # read-only | read-write | admin
//! # SHA-256 of the token, 64 hex digits: `printf %s "$TOKEN" | sha256sum`
//! token_sha256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
//!
//! [[token]]
//! name = "nodes"
//! role = "admin"
//! token = "the token itself, at least 16 visible ASCII characters"
//! ```
//!
//! Each entry has a unique `name`, a `role`, and exactly one of `token` (the token itself) or
//! `token_sha256` (its digest). Digests are the better choice: a stolen copy of the file then
//! lets nobody in. Tokens are visible ASCII without spaces (what fits in a header), at least
//! [`TOKEN_BYTES_MIN`] long, so they cannot be guessed; the same token twice is refused, as it
//! would have two roles.
//!
//! # Roles
//!
//! Each role includes the ones before it:
//!
//! | role | may |
//! |---|---|
//! | `read-only` | `GET` a key, scan, `/v1/status`, `/v1/members`, `/metrics`, the demo `/get`, the dashboard's feed `/v1/ui/events` |
//! | `read-write` | also put, delete, append, compare-and-swap, the demo `/set` |
//! | `admin` | also add, promote and remove members, transfer leadership, read and set the log filter (`/v1/log-level`), and the nodes' own `/v1/internal/announce` (which records where a member is reached, so it is as strong as a membership change) |
//!
//! A route or method this table does not name needs `admin`: a route added later without a
//! thought for its role fails closed. `/metrics` and `/v1/status` are open to anyone when the
//! node runs with `--public-metrics` / `--public-status` (for scrapers and load balancers'
//! health checks); by default they need a read-only token like every other read, since
//! status names the members' addresses and metrics tell the data's size. The dashboard's
//! files (`/ui`) are open to anyone: they hold no data, and its feed follows `/v1/status`.
//!
//! # Between nodes
//!
//! A node forwards a client's request to the leader with the client's `Authorization` header
//! as it came, and the leader checks it again: a follower's word is not taken for it. A node's
//! own calls (announcing its addresses, joining) need a token of role `admin` in the other
//! nodes' files: the one in the file given with `--cluster-token-file`, else the first `admin`
//! entry of `--auth-tokens` given as `token` (a digest cannot be sent). A node with
//! `--auth-tokens` and neither refuses to start, as its followers could not announce
//! themselves and forwarding to them would fail later, far from the cause.
//!
//! # Refusals
//!
//! 401 with `WWW-Authenticate: Bearer realm="raftkv"` when the token is missing, malformed or
//! unknown (one answer for all three: which it was would help a guesser), 403 when it is
//! valid but its role is not enough. Both are JSON errors like the API's others and are
//! counted in `raftkv_auth_refusals_total{reason="unauthenticated"|"forbidden"}`. Tokens are
//! compared as SHA-256 digests against every entry, in time that does not depend on where
//! they differ.
//!
//! # Where
//!
//! `token` (a bearer token's text), `digest` (tokens as SHA-256 digests, compared in constant
//! time), `token_file` (the file parsed into a [`TokenStore`]), `policy` (the role each route
//! needs, the check, the refusals), and here [`Access`], what the flags amount to. The router's
//! middleware ([`crate::http`]) applies the policy to every route.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod digest;
mod policy;
#[cfg(test)]
mod test_tokens;
mod token;
mod token_file;

pub use policy::{required_role, AccessPolicy, Refusal, Role};
pub use token::{BearerToken, TOKEN_BYTES_MAX, TOKEN_BYTES_MIN};
pub use token_file::{TokenFileError, TokenStore, TOKENS_MAX};

/// What `--auth-tokens` and `--cluster-token-file` amount to.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The policy, or `None` when the API is open to anyone (no `--auth-tokens`).
    pub policy: Option<Arc<AccessPolicy>>,
    /// The token this node sends on its own calls to other nodes (announce, join).
    pub node_token: Option<BearerToken>,
    /// Where it all came from, for [`Access::reload`].
    files: AccessFiles,
}

/// The settings [`Access::load`] was given.
#[derive(Clone, Debug, Default)]
struct AccessFiles {
    auth_tokens: Option<PathBuf>,
    cluster_token_file: Option<PathBuf>,
    public_metrics: bool,
    public_status: bool,
}

impl Access {
    /// Loads the token file (if any) and the cluster token (if any), and checks that together
    /// they let this node make its own calls: with a token file, the node's token must be one
    /// of its `admin` tokens.
    pub fn load(
        auth_tokens: Option<&Path>,
        cluster_token_file: Option<&Path>,
        public_metrics: bool,
        public_status: bool,
    ) -> Result<Access, String> {
        let cluster_token = cluster_token_file
            .map(BearerToken::from_file)
            .transpose()
            .map_err(|reason| format!("--cluster-token-file {reason}"))?;
        if let Some(path) = cluster_token_file {
            warn_if_others_may_read(path);
        }
        let files = AccessFiles {
            auth_tokens: auth_tokens.map(Path::to_path_buf),
            cluster_token_file: cluster_token_file.map(Path::to_path_buf),
            public_metrics,
            public_status,
        };
        let Some(path) = auth_tokens else {
            return Ok(Access {
                policy: None,
                node_token: cluster_token,
                files,
            });
        };
        let tokens = TokenStore::load(path)
            .map_err(|error| format!("--auth-tokens {}: {error}", path.display()))?;
        if tokens.holds_tokens {
            warn_if_others_may_read(path);
        }
        let node_token = match cluster_token {
            Some(token) => {
                if tokens.role_of(token.secret().as_bytes()) != Some(Role::Admin) {
                    return Err(format!(
                        "--cluster-token-file: its token is not an admin token of --auth-tokens \
                         {}; the other nodes would refuse this node's own calls",
                        path.display()
                    ));
                }
                token
            }
            None => tokens.first_admin_token().cloned().ok_or_else(|| {
                format!(
                    "--auth-tokens {}: this node needs an admin token for its own calls to the \
                     other nodes (announcing its address, joining): give --cluster-token-file, \
                     or add an entry with role = \"admin\" and `token` (not only its digest)",
                    path.display()
                )
            })?,
        };
        Ok(Access {
            policy: Some(Arc::new(AccessPolicy::new(
                tokens,
                public_metrics,
                public_status,
            ))),
            node_token: Some(node_token),
            files,
        })
    }

    /// The files [`Access::reload`] reads: the token file of `--auth-tokens` and the
    /// `--cluster-token-file`; none without a token file (the cluster token alone is the
    /// node's own, which does not change while it runs).
    pub fn token_files(&self) -> Vec<PathBuf> {
        match &self.files.auth_tokens {
            Some(tokens) => std::iter::once(tokens.clone())
                .chain(self.files.cluster_token_file.clone())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Reads the token file (and the cluster token file) again and, if they pass the checks
    /// of a start and the new tokens still hold this node's own token as `admin`, checks every
    /// request from now on against the new tokens, wherever this policy is shared (the HTTP
    /// and the gRPC API). Returns how many tokens are in force, `None` without a token file;
    /// on an error nothing changes.
    ///
    /// The node's own token is not replaced: it is what the node sends on its own calls
    /// until it restarts, so a file that no longer accepts it is refused (the other nodes,
    /// given the same file, would refuse this node's calls).
    pub fn reload(&self) -> Result<Option<usize>, String> {
        let (Some(policy), Some(path)) = (&self.policy, &self.files.auth_tokens) else {
            return Ok(None);
        };
        let fresh = Access::load(
            Some(path),
            self.files.cluster_token_file.as_deref(),
            self.files.public_metrics,
            self.files.public_status,
        )?;
        let Some(fresh_policy) = fresh.policy else {
            unreachable!("a token file makes a policy");
        };
        if let Some(own) = &self.node_token {
            if fresh_policy.role_of(own.secret().as_bytes()) != Some(Role::Admin) {
                return Err(format!(
                    "--auth-tokens {}: it no longer holds this node's own token as an admin \
                     token; the node sends that token to the other nodes until it restarts, so \
                     keep it in the file until every node has restarted with a new one",
                    path.display()
                ));
            }
        }
        let tokens = fresh_policy.tokens();
        let count = tokens.len();
        policy.replace_tokens(tokens);
        Ok(Some(count))
    }
}

/// Warns when the file at `path`, which holds tokens, may be read by users other than its
/// owner: a copy of a token is a key to the cluster.
fn warn_if_others_may_read(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return; // Read successfully a moment ago; nothing useful to say.
    };
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "this file holds tokens and other users may read it (chmod 600 it, or store \
             token_sha256 digests instead)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::test_tokens::{sha256_hex, ADMIN, WRITER};
    use super::*;

    #[test]
    fn the_node_token_is_the_cluster_token_file_else_the_first_admin_token() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let tokens = dir.path().join("tokens.toml");
        let hashed_only = dir.path().join("hashed.toml");
        let cluster = dir.path().join("cluster-token");
        let stranger = dir.path().join("stranger-token");
        std::fs::write(
            &tokens,
            format!(
                "[[token]]\nname = \"w\"\nrole = \"read-write\"\ntoken = \"{WRITER}\"\n\
                 [[token]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n"
            ),
        )
        .expect("writes");
        std::fs::write(
            &hashed_only,
            format!(
                "[[token]]\nname = \"a\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n",
                sha256_hex(ADMIN)
            ),
        )
        .expect("writes");
        std::fs::write(&cluster, format!("{ADMIN}\n")).expect("writes");
        std::fs::write(&stranger, format!("{WRITER}\n")).expect("writes");

        let access = Access::load(Some(&tokens), None, false, false).expect("valid");
        assert!(access.policy.is_some());
        assert_eq!(
            access.node_token.as_ref().map(BearerToken::secret),
            Some(ADMIN)
        );

        let error = Access::load(Some(&hashed_only), None, false, false).expect_err("no token");
        assert!(error.contains("needs an admin token"), "{error}");
        let access = Access::load(Some(&hashed_only), Some(&cluster), false, false).expect("valid");
        assert_eq!(
            access.node_token.as_ref().map(BearerToken::secret),
            Some(ADMIN)
        );

        let error =
            Access::load(Some(&tokens), Some(&stranger), false, false).expect_err("not admin");
        assert!(error.contains("not an admin token"), "{error}");
        assert!(!error.contains(WRITER), "{error}");

        let open = Access::load(None, Some(&cluster), false, false).expect("valid");
        assert!(open.policy.is_none());
        assert!(open.node_token.is_some());
        let error = Access::load(Some(&dir.path().join("missing.toml")), None, false, false)
            .expect_err("no file");
        assert!(error.contains("cannot read"), "{error}");
    }
}
