//! SIGINT and SIGTERM for the commands that hold something until interrupted (`lock`, `elect`,
//! `lease keepalive`): they release what they hold before exiting instead of dying at once.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Listens for SIGINT (Ctrl-C) and SIGTERM from its creation on; signals that come before
/// [`Signals::received`] is awaited are not lost.
pub(super) struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Installs the handlers (for the whole process, until it exits).
    pub(super) fn new() -> Result<Signals, String> {
        let listen = |kind: SignalKind| {
            signal(kind).map_err(|error| format!("listening for signals: {error}"))
        };
        Ok(Signals {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
        })
    }

    /// Resolves at the next SIGINT or SIGTERM.
    pub(super) async fn received(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
