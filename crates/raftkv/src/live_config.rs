//! Live configuration: the TLS certificates and keys, the CAs and the token file of a running
//! node are read again on SIGHUP and when their content changes, and put in force without a
//! restart if they pass the checks of a start; otherwise the files in force stay, and an ERROR
//! line says why.
//!
//! ```text
//!  SIGHUP ──────────────────────────────────► reload every kind configured
//!  every --config-watch-interval-ms (1 s):
//!    hash each file ─► changed since in force, and the same as one poll ago (settled)?
//!                      and not the content a reload refused already? ─► reload its kind
//!  reload tls / ca ─► NodeTls::reload: every TLS file read and checked; then swapped in
//!  reload tokens  ─► Access::reload: the token file read and checked; then swapped in
//!    ok ─► INFO, raftkv_config_reloads_total{what,result="ok"}, last-success timestamp
//!    failed ─► ERROR with the reason, {result="failed"}; the files in force stay
//! ```
//!
//! # Why polling
//!
//! A node has three to six such files, each a few kilobytes (a token file of the maximum
//! 10,000 entries is about a megabyte). Reading and hashing them once a second costs
//! microseconds, and it sees every way a file can change: written in place, renamed into
//! place, or swapped behind a symbolic link as Kubernetes does with mounted secrets, on any
//! filesystem. A file-notification crate (inotify) would add a dependency and a thread, and
//! needs care for each of those cases (a watch on a replaced file or directory goes silent).
//!
//! A change is acted on once its content has stayed the same for one interval, so a file
//! caught half-written (or a certificate written before its key) is not reported as invalid:
//! the reload comes about one to two intervals after the last write. Content a reload refused
//! is not retried until it changes again, so a bad file gives one ERROR line, not one a
//! second. SIGHUP reloads at once, whatever the hashes say.
//!
//! # What changes
//!
//! New TLS handshakes (HTTPS, gRPC, the node's calls to the other nodes, the Raft transport)
//! use the new certificate and CA; connections already made keep theirs, and sessions the
//! HTTPS server remembered for resumption are forgotten. New requests are checked against the
//! new tokens. The node's own token (`--cluster-token-file`, or the first admin token) is the
//! one it started with, and a token file that no longer accepts it is refused.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raft_core::NodeId;
use sha2::{Digest, Sha256};

use crate::auth::Access;
use crate::metrics::{Metrics, ReloadLabels, ReloadWhatLabels};
use crate::tls::NodeTls;

/// What a reload is about; its label in the metrics and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// The certificates and keys (`--tls-cert`, `--tls-key`, `--peer-tls-cert`,
    /// `--peer-tls-key`).
    Tls,
    /// The CAs (`--tls-ca`, `--peer-tls-ca`).
    Ca,
    /// The token file (`--auth-tokens`) and the cluster token file.
    Tokens,
}

impl What {
    /// Whether this kind is TLS material (certificates, keys, CAs).
    pub fn is_tls(self) -> bool {
        matches!(self, What::Tls | What::Ca)
    }

    /// The `what` label.
    pub fn label(self) -> &'static str {
        match self {
            What::Tls => "tls",
            What::Ca => "ca",
            What::Tokens => "tokens",
        }
    }
}

/// Why a reload happens; its label in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    Signal,
    FileChange,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::FileChange => "file change",
        }
    }
}

/// The content of a group's files, one SHA-256 per file (`None`: unreadable now).
type Fingerprint = Vec<Option<[u8; 32]>>;

/// The files of one kind and what is known of them.
struct Group {
    what: What,
    files: Vec<PathBuf>,
    /// The content in force (read at start or by the last successful reload).
    in_force: Fingerprint,
    /// The content one poll ago: a change is acted on once it stays for one interval.
    seen: Fingerprint,
    /// Content a reload refused: not tried again until it changes.
    refused: Option<Fingerprint>,
}

impl Group {
    fn new(what: What, files: Vec<PathBuf>) -> Option<Group> {
        let mut unique: Vec<PathBuf> = Vec::with_capacity(files.len());
        for file in files {
            // One file often serves twice (the HTTPS and the peer certificate).
            if !unique.contains(&file) {
                unique.push(file);
            }
        }
        if unique.is_empty() {
            return None;
        }
        // NB: hashed a moment after the node read the files at start; a file changed in that
        // moment is taken up at the next change or SIGHUP. Passing the content read at start
        // down to here would close the gap at the cost of threading it through the settings.
        let now = fingerprint(&unique);
        Some(Group {
            what,
            files: unique,
            in_force: now.clone(),
            seen: now,
            refused: None,
        })
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hashes stay out of logs: they are digests of files that may hold tokens.
        formatter
            .debug_struct("Group")
            .field("what", &self.what)
            .field("files", &self.files)
            .field("refused", &self.refused.is_some())
            .finish_non_exhaustive()
    }
}

/// Hashes every file of `files`.
fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|file| {
            std::fs::read(file)
                .ok()
                .map(|bytes| Sha256::digest(&bytes).into())
        })
        .collect()
}

/// Watches a node's TLS and token files and reloads them (see the module doc). Made by
/// [`LiveConfig::new`] as the node starts, run by [`LiveConfig::run`] until the node stops.
pub struct LiveConfig {
    id: NodeId,
    tls: NodeTls,
    access: Access,
    metrics: Arc<Metrics>,
    /// Between polls of the files; zero: on SIGHUP only.
    interval: Duration,
    /// SIGHUP, watched from [`LiveConfig::new`] on (until then the signal's default action,
    /// ending the process, applies); `None` if it cannot be watched.
    hangups: Option<tokio::signal::unix::Signal>,
    /// Invariant: one group per kind at most, each with at least one file.
    groups: Vec<Group>,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LiveConfig")
            .field("id", &self.id)
            .field("interval", &self.interval)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

impl LiveConfig {
    /// The watcher of node `id`'s files of `tls` and `access`, as they are in force now
    /// (just loaded), polled every `interval` (zero: never; SIGHUP only). Sets the metrics'
    /// last-success time of each kind configured to now, and their counts to zero. SIGHUP is
    /// watched from here on, so it no longer ends the process; call within the runtime.
    pub fn new(
        id: NodeId,
        tls: NodeTls,
        access: Access,
        metrics: Arc<Metrics>,
        interval: Duration,
    ) -> LiveConfig {
        let paths = tls.paths();
        let certificates = [
            &paths.http_certificate,
            &paths.http_key,
            &paths.peer_certificate,
            &paths.peer_key,
        ];
        let authorities = [&paths.http_client_ca, &paths.peer_ca];
        let groups: Vec<Group> = [
            Group::new(
                What::Tls,
                certificates.into_iter().flatten().cloned().collect(),
            ),
            Group::new(
                What::Ca,
                authorities.into_iter().flatten().cloned().collect(),
            ),
            Group::new(What::Tokens, access.token_files()),
        ]
        .into_iter()
        .flatten()
        .collect();
        for group in &groups {
            for result in ["ok", "failed"] {
                drop(metrics.config_reloads.get_or_create(&ReloadLabels {
                    what: group.what.label(),
                    result,
                }));
            }
            metrics
                .config_reload_last_success
                .get_or_create(&ReloadWhatLabels {
                    what: group.what.label(),
                })
                .set(unix_seconds());
        }
        let hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hangups) => Some(hangups),
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP; files are reloaded when they change only");
                None
            }
        };
        LiveConfig {
            id,
            tls,
            access,
            metrics,
            interval,
            hangups,
            groups,
        }
    }

    /// The kinds of file watched (those configured).
    pub fn watched(&self) -> Vec<What> {
        self.groups.iter().map(|group| group.what).collect()
    }

    /// Reloads on SIGHUP and on changes seen by polling, until the task is dropped.
    pub async fn run(mut self) {
        let mut hangups = self.hangups.take();
        let mut ticks = (!self.interval.is_zero()).then(|| {
            let mut ticks = tokio::time::interval(self.interval);
            // A node that was paused polls once when it resumes, not once per missed tick.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        loop {
            let hangup = async {
                match &mut hangups {
                    Some(hangups) => hangups.recv().await,
                    None => std::future::pending().await,
                }
            };
            let tick = async {
                match &mut ticks {
                    Some(ticks) => ticks.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = hangup => {
                    if received.is_none() {
                        // The signal stream ended: only polling is left.
                        hangups = None;
                        continue;
                    }
                    self.reload_all();
                }
                _ = tick => self.poll(),
            }
        }
    }

    /// Reloads every kind of file configured, as SIGHUP does.
    pub fn reload_all(&mut self) {
        let every: Vec<What> = self.watched();
        if every.is_empty() {
            tracing::info!("SIGHUP: no TLS or token files to reload");
            return;
        }
        self.reload(&every, Trigger::Signal);
    }

    /// Reloads the kinds whose files changed and have settled since the last poll.
    pub fn poll(&mut self) {
        let mut changed = Vec::new();
        for group in &mut self.groups {
            let now = fingerprint(&group.files);
            let settled = now == group.seen;
            group.seen = now;
            if group.seen == group.in_force || !settled {
                continue;
            }
            if group.refused.as_ref() == Some(&group.seen) {
                continue;
            }
            changed.push(group.what);
        }
        if !changed.is_empty() {
            self.reload(&changed, Trigger::FileChange);
        }
    }

    /// Reloads the kinds `whats` and records the outcome of each.
    fn reload(&mut self, whats: &[What], trigger: Trigger) {
        assert!(!whats.is_empty(), "a reload of something");
        // Hashed before the files are read for the reload: if one changes in between, the
        // next poll sees content other than what is recorded as in force and reloads again.
        let before: Vec<Fingerprint> = self
            .groups
            .iter()
            .map(|group| fingerprint(&group.files))
            .collect();
        // The certificates and the CAs are checked against each other (the node's own
        // certificate must verify against the CA), so a reload of either reads both.
        let tls_result = whats.iter().any(|what| what.is_tls()).then(|| {
            self.tls
                .reload(self.id)
                .map(|()| None)
                .map_err(|(setting, reason)| format!("{setting}: {reason}"))
        });
        let tokens_result = whats.contains(&What::Tokens).then(|| self.access.reload());
        let mut outcomes = Vec::new();
        for (group, content) in self.groups.iter_mut().zip(before) {
            let result = if group.what.is_tls() {
                &tls_result
            } else {
                &tokens_result
            };
            // This kind's files were not read.
            let Some(result) = result else { continue };
            // What was read is in force, or was refused, whether or not this kind asked for
            // the reload: a CA refused with one certificate may do with the next.
            if result.is_ok() {
                group.in_force = content.clone();
                group.refused = None;
            } else {
                group.refused = Some(content.clone());
            }
            group.seen = content;
            if whats.contains(&group.what) {
                outcomes.push((group.what, group.files.clone(), result.clone()));
            }
        }
        for (what, files, result) in outcomes {
            self.record(what, trigger, &files, result);
        }
    }

    /// Logs and counts the outcome of reloading `what` from `files`; `Ok` holds how many
    /// tokens are in force (for `tokens`).
    fn record(
        &self,
        what: What,
        trigger: Trigger,
        files: &[PathBuf],
        result: Result<Option<usize>, String>,
    ) {
        let files: Vec<String> = files
            .iter()
            .map(|file| file.display().to_string())
            .collect();
        let files = files.join(", ");
        let outcome = match result {
            Ok(tokens) => {
                match tokens {
                    Some(tokens) => tracing::info!(
                        what = what.label(),
                        trigger = trigger.label(),
                        %files,
                        tokens,
                        "configuration reloaded: new requests are checked against the new tokens"
                    ),
                    None => tracing::info!(
                        what = what.label(),
                        trigger = trigger.label(),
                        %files,
                        "configuration reloaded: new TLS handshakes use the new files"
                    ),
                }
                self.metrics
                    .config_reload_last_success
                    .get_or_create(&ReloadWhatLabels { what: what.label() })
                    .set(unix_seconds());
                "ok"
            }
            Err(reason) => {
                tracing::error!(
                    what = what.label(),
                    trigger = trigger.label(),
                    %files,
                    %reason,
                    "configuration reload refused: the files in force stay in force"
                );
                "failed"
            }
        };
        self.metrics
            .config_reloads
            .get_or_create(&ReloadLabels {
                what: what.label(),
                result: outcome,
            })
            .inc();
    }
}

/// Now, in whole seconds since the Unix epoch (0 for a clock before it).
fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
