//! The lease commands: `raftkv lease grant|keepalive|revoke|ttl|list`. Lease ids are printed
//! and read in hexadecimal, as etcdctl does (`put --lease ID` in `kv` reads them the same way).
//!
//! ```text
//!  lease grant TTL [--id ID] ─▶ Client::lease_grant ─▶ lease ID granted with TTL(Ns)
//!  lease keepalive ID [--once] ─▶ Client::keep_alive ─▶ lease ID keepalived with TTL(N) ...
//!  lease revoke ID ─▶ Client::lease_revoke      lease ttl ID [--keys]      lease list
//! ```

use std::io::Write;

use raftkv_client::api::{LeaseTimeToLiveResponse, LEASE_ID_MAX};
use raftkv_client::{Client, ClientError, LeaseLost, LeaseStatus};

use super::output::{Exit, Output};
use super::signals::Signals;

/// What `raftkv lease` does.
#[derive(Debug, clap::Subcommand)]
pub enum LeaseAction {
    /// Grants a lease of TTL seconds.
    ///
    /// Prints `lease ID granted with TTL(Ns)`, ID in hexadecimal (N is the TTL granted: the
    /// cluster raises one below its minimum). Keys put with `--lease ID` are deleted together
    /// when the lease is revoked or expires (no keepalive reached the leader for its TTL).
    ///
    /// Exit status: 0 granted, 2 bad input (a TTL above the cluster's maximum, an id in use), 3
    /// unavailable, 4 other server error.
    Grant {
        /// The time to live, in seconds.
        ttl: u64,
        /// The id wanted, in hexadecimal (default: the node picks one).
        #[arg(long, value_parser = parse_lease_id)]
        id: Option<u64>,
    },
    /// Keeps lease ID alive: a keepalive every third of its TTL until interrupted.
    ///
    /// Prints `lease ID keepalived with TTL(N)` for each acknowledged keepalive; with --once
    /// sends one and exits.
    ///
    /// Exit status: 0 interrupted (or --once done), 1 the lease does not exist (any more), 3
    /// unavailable, 5 the lease was lost (no keepalive acknowledged within its TTL).
    Keepalive {
        /// The lease, in hexadecimal.
        #[arg(value_parser = parse_lease_id)]
        id: u64,
        /// Send one keepalive and exit.
        #[arg(long)]
        once: bool,
    },
    /// Revokes lease ID, deleting every key attached to it (all at one revision).
    ///
    /// Prints `lease ID revoked (K keys deleted, revision R)`.
    ///
    /// Exit status: 0 revoked, 1 the lease does not exist, 2 bad input, 3 unavailable, 4 other
    /// server error.
    Revoke {
        /// The lease, in hexadecimal.
        #[arg(value_parser = parse_lease_id)]
        id: u64,
    },
    /// Prints lease ID's granted and remaining TTL, with --keys its keys too.
    ///
    /// Prints `lease ID granted with TTL(Gs), remaining(Rs)`, and with --keys
    /// `, attached keys([K1 K2])` on the same line.
    ///
    /// Exit status: 0 found, 1 the lease does not exist, 2 bad input, 3 unavailable, 4 other
    /// server error.
    Ttl {
        /// The lease, in hexadecimal.
        #[arg(value_parser = parse_lease_id)]
        id: u64,
        /// List the keys attached to it.
        #[arg(long)]
        keys: bool,
    },
    /// Lists every lease.
    ///
    /// Prints `found N leases`, then one id (hexadecimal) per line, ascending.
    ///
    /// Exit status: 0 done, 3 unavailable, 4 other server error.
    List,
}

/// A lease id as etcdctl prints it: 16 hexadecimal digits.
pub(super) fn lease_hex(id: u64) -> String {
    format!("{id:016x}")
}

/// A lease id given in hexadecimal (etcdctl's format; an optional `0x`), 1 ..= i64::MAX.
pub(super) fn parse_lease_id(text: &str) -> Result<u64, String> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(format!(
            "{text:?} is not a lease id: lease ids are hexadecimal, as `lease grant` prints them"
        ));
    }
    let id = u64::from_str_radix(digits, 16)
        .map_err(|_| format!("lease id {text} is too large (at most {LEASE_ID_MAX:x})"))?;
    if id == 0 || id > LEASE_ID_MAX {
        return Err(format!(
            "lease id {text} is not in 1..={LEASE_ID_MAX:x} (0 means no lease)"
        ));
    }
    Ok(id)
}

/// Runs `action` with `client`; a keepalive's lines are written as they come.
pub(super) async fn execute(client: &Client, action: LeaseAction) -> Output {
    match action {
        LeaseAction::Grant { ttl, id } => match client.lease_grant(ttl, id).await {
            Ok(granted) => Output::success(format!(
                "lease {} granted with TTL({}s)",
                lease_hex(granted.id),
                granted.ttl_seconds
            )),
            Err(error) => Output::from_error(&error),
        },
        LeaseAction::Keepalive { id, once: true } => {
            match client.lease_keep_alive_once(&[id]).await {
                Ok(answer) => match answer.leases.first() {
                    Some(lease) if lease.ttl_seconds > 0 => Output::success(format!(
                        "lease {} keepalived with TTL({})",
                        lease_hex(id),
                        lease.ttl_seconds
                    )),
                    _ => Output::from_error(&not_found(id)),
                },
                Err(error) => Output::from_error(&error),
            }
        }
        LeaseAction::Keepalive { id, once: false } => keep_alive(client, id).await,
        LeaseAction::Revoke { id } => match client.lease_revoke(id).await {
            Ok(revoked) => Output::success(format!(
                "lease {} revoked ({} keys deleted, revision {})",
                lease_hex(revoked.id),
                revoked.keys_deleted,
                revoked.revision
            )),
            Err(error) => Output::from_error(&error),
        },
        LeaseAction::Ttl { id, keys } => match client.lease_time_to_live(id, keys).await {
            Ok(answer) => Output::success(ttl_line(&answer)),
            Err(error) => Output::from_error(&error),
        },
        LeaseAction::List => match client.lease_list().await {
            Ok(list) => {
                let mut text = format!("found {} leases\n", list.ids.len());
                for id in &list.ids {
                    text.push_str(&lease_hex(*id));
                    text.push('\n');
                }
                Output {
                    stdout: text.into_bytes(),
                    stderr: Vec::new(),
                    exit: Exit::Success,
                }
            }
            Err(error) => Output::from_error(&error),
        },
    }
}

fn not_found(id: u64) -> ClientError {
    ClientError::LeaseNotFound {
        id,
        message: "the leader answered TTL 0".to_string(),
    }
}

/// `lease ID granted with TTL(Gs), remaining(Rs)[, attached keys([K ...])]`, etcdctl's line.
fn ttl_line(answer: &LeaseTimeToLiveResponse) -> String {
    let mut line = format!(
        "lease {} granted with TTL({}s), remaining({}s)",
        lease_hex(answer.id),
        answer.granted_ttl_seconds,
        answer.ttl_seconds
    );
    if let Some(keys) = &answer.keys {
        line.push_str(&format!(", attached keys([{}])", keys.join(" ")));
    }
    line
}

/// Keeps `id` alive, a line per acknowledged keepalive, until a signal or the lease's loss.
async fn keep_alive(client: &Client, id: u64) -> Output {
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(message) => return Output::failure(Exit::ServerError, message),
    };
    let keeper = tokio::select! {
        keeper = client.keep_alive(id) => match keeper {
            Ok(keeper) => keeper,
            Err(error) => return Output::from_error(&error),
        },
        () = signals.received() => return Output::empty(),
    };
    let mut status = keeper.status();
    let mut stdout = std::io::stdout();
    loop {
        let line = match &*status.borrow_and_update() {
            LeaseStatus::Alive { ttl_seconds, .. } => {
                format!(
                    "lease {} keepalived with TTL({ttl_seconds})\n",
                    lease_hex(id)
                )
            }
            LeaseStatus::Lost { reason } => return lost_output(id, reason),
        };
        if stdout
            .write_all(line.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The reader went away (a closed pipe): nobody follows the keepalives any more.
            keeper.stop().await;
            return Output::empty();
        }
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    let reason = keeper.lost().await;
                    return lost_output(id, &reason);
                }
            }
            () = signals.received() => {
                keeper.stop().await;
                return Output::empty();
            }
        }
    }
}

fn lost_output(id: u64, reason: &LeaseLost) -> Output {
    match reason {
        LeaseLost::NotFound => Output::from_error(&not_found(id)),
        other => Output::failure(Exit::Lost, format!("lease {} lost: {other}", lease_hex(id))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ClientCommand};
    use super::*;

    #[test]
    fn lease_ids_are_hexadecimal_both_ways() {
        assert_eq!(parse_lease_id("694d7a1a2f7a3c0b"), Ok(0x694d7a1a2f7a3c0b));
        assert_eq!(parse_lease_id("0x2A"), Ok(42));
        assert_eq!(parse_lease_id("2a"), Ok(42));
        assert_eq!(lease_hex(42), "000000000000002a");
        assert_eq!(
            parse_lease_id(&lease_hex(0x694d7a1a2f7a3c0b)),
            Ok(0x694d7a1a2f7a3c0b)
        );
        assert_eq!(parse_lease_id("7fffffffffffffff"), Ok(LEASE_ID_MAX));
        for bad in [
            "",
            "0",
            "0x",
            "-1",
            "12g",
            "8000000000000000",
            "1ffffffffffffffff",
        ] {
            assert!(parse_lease_id(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn the_lease_commands_parse() {
        assert!(matches!(
            parse(&["lease", "grant", "60"]),
            Ok(ClientCommand::Lease {
                action: LeaseAction::Grant { ttl: 60, id: None }
            })
        ));
        assert!(matches!(
            parse(&["lease", "grant", "60", "--id", "2a"]),
            Ok(ClientCommand::Lease {
                action: LeaseAction::Grant {
                    ttl: 60,
                    id: Some(42)
                }
            })
        ));
        assert!(matches!(
            parse(&["lease", "keepalive", "2a", "--once"]),
            Ok(ClientCommand::Lease {
                action: LeaseAction::Keepalive { id: 42, once: true }
            })
        ));
        assert!(matches!(
            parse(&["lease", "ttl", "2a", "--keys"]),
            Ok(ClientCommand::Lease {
                action: LeaseAction::Ttl { id: 42, keys: true }
            })
        ));
        assert!(matches!(
            parse(&["lease", "revoke", "2a"]),
            Ok(ClientCommand::Lease {
                action: LeaseAction::Revoke { id: 42 }
            })
        ));
        assert!(matches!(
            parse(&["lease", "list"]),
            Ok(ClientCommand::Lease {
                action: LeaseAction::List
            })
        ));
        let bad = parse(&["lease", "revoke", "42x"]).expect_err("not hex");
        assert_eq!(bad.exit_code(), 2);
    }

    #[test]
    fn the_ttl_line_is_etcdctls() {
        let mut answer = LeaseTimeToLiveResponse {
            id: 0x694d7a1a2f7a3c0b,
            granted_ttl_seconds: 60,
            ttl_seconds: 58,
            keys: None,
            revision: 9,
        };
        assert_eq!(
            ttl_line(&answer),
            "lease 694d7a1a2f7a3c0b granted with TTL(60s), remaining(58s)"
        );
        answer.keys = Some(vec!["a".to_string(), "b".to_string()]);
        assert_eq!(
            ttl_line(&answer),
            "lease 694d7a1a2f7a3c0b granted with TTL(60s), remaining(58s), attached keys([a b])"
        );
    }
}
