//! The process's log: lines to stderr, filtered by a [`tracing_subscriber::EnvFilter`] that can
//! be replaced while the process runs (`GET` / `PUT /v1/log-level`, `raftkv log-level`).
//!
//! ```text
//!  tracing events ─► reload::Layer<EnvFilter> ─► fmt layer ─► stderr
//!                        ▲ set_filter(text): parsed first; a bad filter changes nothing
//! ```
//!
//! The filter starts from `RAFTKV_LOG` (else the command's default) and lives as long as the
//! process: a restart starts from `RAFTKV_LOG` again. SIGHUP does not re-read `RAFTKV_LOG` (a
//! running process's environment cannot be changed from outside); it reloads files (see
//! `crate::live_config`).
//!
//! The handle is global because the subscriber it changes is: one per process, installed by
//! [`init`]. A process that did not call it (a test that runs a server in its own process) has
//! no filter to change, and says so ([`LogFilterError::NotInstalled`]).

use std::sync::OnceLock;

use thiserror::Error;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Longest filter text accepted: a filter names a few targets, not thousands.
pub const FILTER_BYTES_MAX: usize = 4096;

/// The handle of the filter installed by [`init`].
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Why the filter could not be read or changed.
#[derive(Debug, Error)]
pub enum LogFilterError {
    /// The text is not a filter; the old one stays.
    #[error("invalid log filter: {0}")]
    Invalid(String),
    /// This process logs through no filter of [`init`]'s.
    #[error("this process's log filter cannot be changed at run time")]
    NotInstalled,
}

/// Installs the process's log: `RAFTKV_LOG` if it parses, else `default` (e.g. `info`),
/// changeable later with [`set_filter`]. Logs go to stderr, in colour on a terminal. A second
/// call (or another subscriber installed first) leaves the first in place.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_env("RAFTKV_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let (filter, handle) = reload::Layer::new(filter);
    let output = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        // Only the subscriber installed here can be changed through the handle.
        let _ = FILTER.set(handle);
    }
}

/// The filter in force, as text (directives in the filter's own order, which may differ from
/// how they were written).
pub fn current_filter() -> Result<String, LogFilterError> {
    let handle = FILTER.get().ok_or(LogFilterError::NotInstalled)?;
    handle
        .with_current(|filter| filter.to_string())
        .map_err(|_| LogFilterError::NotInstalled)
}

/// Parses `text` as a filter (`info`, `info,raft_node=debug`, `warn,raftkv::http=trace`, as
/// `RAFTKV_LOG` takes) and puts it in force for every event from now on. Returns the filter
/// now in force. A filter that does not parse changes nothing.
pub fn set_filter(text: &str) -> Result<String, LogFilterError> {
    let filter = parse_filter(text)?;
    let handle = FILTER.get().ok_or(LogFilterError::NotInstalled)?;
    handle
        .reload(filter)
        .map_err(|_| LogFilterError::NotInstalled)?;
    current_filter()
}

/// `text` as a filter, refused when empty (it would turn every line off, which is rarely
/// what was meant: `off` says so), too long, or not a filter.
pub fn parse_filter(text: &str) -> Result<EnvFilter, LogFilterError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(LogFilterError::Invalid(
            "empty (to log nothing, say `off`)".into(),
        ));
    }
    if text.len() > FILTER_BYTES_MAX {
        return Err(LogFilterError::Invalid(format!(
            "longer than {FILTER_BYTES_MAX} bytes"
        )));
    }
    EnvFilter::builder()
        .parse(text)
        .map_err(|error| LogFilterError::Invalid(format!("`{text}`: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_as_raftkv_log_does_and_bad_ones_say_why() {
        for good in [
            "info",
            "info,raft_node=debug",
            " warn ",
            "off",
            "raftkv::http=trace",
        ] {
            parse_filter(good).unwrap_or_else(|error| panic!("{good}: {error}"));
        }
        for (bad, reason) in [
            ("", "empty"),
            ("   ", "empty"),
            ("raft_node=loud", "raft_node=loud"),
            ("info,[span", "[span"),
        ] {
            let error = parse_filter(bad).expect_err(bad).to_string();
            assert!(error.contains(reason), "{bad}: {error}");
        }
        let long = "a=info,".repeat(FILTER_BYTES_MAX);
        let error = parse_filter(&long).expect_err("too long").to_string();
        assert!(error.contains("longer than"), "{error}");
    }
}
