//! The lock and election commands: `raftkv lock NAME [-- command...]` and
//! `raftkv elect NAME VALUE` / `raftkv elect NAME --observe`, on the client's [`Session`].
//!
//! ```text
//!  lock NAME ─▶ Session (lease, kept alive) ─▶ Session::lock ─▶ held
//!     no command: print `locked key=K fencing_token=N`, hold until SIGINT/SIGTERM or loss
//!     -- command: run it with RAFTKV_LOCK_KEY, RAFTKV_FENCING_TOKEN; on its exit release and
//!                 exit with its status; on loss kill it (SIGKILL) and exit 5
//!  elect NAME VALUE ─▶ Session::campaign ─▶ print `elected ...`, hold as lock does
//!  elect NAME --observe ─▶ Client::observe_election ─▶ a line per leader change
//! ```
//!
//! Whatever way the command ends (its exit, a signal, the loss), the session's lease is
//! revoked before `raftkv` exits, which deletes the lock key, so the next waiter goes at once
//! rather than a TTL later.

use std::io::Write;
use std::process::ExitStatus;

use raftkv_client::{Client, LockError, LockLost, Session, SESSION_TTL_SECONDS_DEFAULT};

use super::output::{Exit, Output};
use super::signals::Signals;

/// The lock and election commands (flattened into [`ClientCommand`](super::ClientCommand)).
#[derive(Debug, clap::Subcommand)]
pub enum LockCommand {
    /// Takes the lock NAME, waiting for the holders before us; runs COMMAND while holding it.
    ///
    /// The lock is a key `NAME/LEASE` (the session's lease in hexadecimal) attached to a lease
    /// of --ttl seconds that this process keeps alive; each waiter watches only the key just
    /// before its own. The fencing token is the lock key's create revision: it grows with every
    /// acquisition, so a resource given it can refuse a holder that lost the lock meanwhile.
    ///
    /// Without COMMAND, prints `locked key=KEY fencing_token=N` and holds the lock until
    /// SIGINT or SIGTERM. With COMMAND, runs it with RAFTKV_LOCK_KEY and RAFTKV_FENCING_TOKEN
    /// in its environment (stdout stays the command's own), and releases the lock when it
    /// exits. If the lease is lost meanwhile, the command is killed (SIGKILL).
    ///
    /// Exit status: without COMMAND 0 released after a signal; with COMMAND the command's own
    /// (128+N if a signal N ended it); 2 bad input, 3 unavailable, 4 other server error, 5 the
    /// lock was lost (its lease expired or was revoked, or its key deleted), 130 interrupted
    /// before the lock was taken.
    Lock {
        /// The lock's name (its keys are NAME/...).
        name: String,
        /// The session lease's TTL in seconds: how long the lock outlives this process if it
        /// dies without releasing it.
        #[arg(long, default_value_t = SESSION_TTL_SECONDS_DEFAULT)]
        ttl: u64,
        /// The command to run while holding the lock, after `--`.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Campaigns to lead the election NAME with VALUE, or with --observe prints its leaders.
    ///
    /// Campaigning waits until every candidate before us is gone, then prints
    /// `elected key=KEY create_revision=N value=VALUE` and leads until SIGINT or SIGTERM,
    /// resigning then. With --observe, prints the leader as `KEY<TAB>VALUE` now and at each
    /// change (`(no leader)` while nobody campaigns), until interrupted or --count lines.
    ///
    /// Exit status: 0 resigned after a signal (or --count lines printed), 2 bad input, 3
    /// unavailable, 4 other server error, 5 the leadership was lost, 130 interrupted before
    /// leading.
    Elect {
        /// The election's name (its keys are NAME/...).
        name: String,
        /// The value to proclaim as leader.
        #[arg(required_unless_present = "observe", conflicts_with = "observe")]
        value: Option<String>,
        /// Print the leader at each change instead of campaigning.
        #[arg(long)]
        observe: bool,
        /// With --observe, stop after printing this many leaders.
        #[arg(long, requires = "observe")]
        count: Option<u64>,
        /// The session lease's TTL in seconds.
        #[arg(long, default_value_t = SESSION_TTL_SECONDS_DEFAULT)]
        ttl: u64,
    },
}

/// Runs `command` with `client`.
pub(super) async fn execute(client: &Client, command: LockCommand) -> Output {
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(message) => return Output::failure(Exit::ServerError, message),
    };
    match command {
        LockCommand::Lock { name, ttl, command } => {
            lock(client, &name, ttl, &command, &mut signals).await
        }
        LockCommand::Elect {
            name,
            observe: true,
            count,
            ..
        } => observe(client, &name, count, &mut signals).await,
        LockCommand::Elect {
            name, value, ttl, ..
        } => {
            let value = value.unwrap_or_default();
            campaign(client, &name, &value, ttl, &mut signals).await
        }
    }
}

/// The output of a lock or election error.
fn lock_error(error: &LockError) -> Output {
    match error {
        LockError::Client(error) => Output::from_error(error),
        LockError::QueueTooLong { .. } => Output::failure(Exit::ServerError, error.to_string()),
        LockError::LeaseLost(_) | LockError::KeyDeleted { .. } | LockError::NotLeader { .. } => {
            Output::failure(Exit::Lost, error.to_string())
        }
    }
}

/// Prints `line` and a newline to stdout at once (the holder's line comes before the wait).
fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout does not end the hold: the lock is still wanted by whoever started us.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// Ends the session (revoking its lease deletes our keys), then gives `output`, or the
/// failure to revoke when the output was a success.
async fn close(session: Session, output: Output) -> Output {
    match session.close().await {
        Ok(()) => output,
        Err(error) if output.exit == Exit::Success => Output::from_error(&error),
        Err(error) => {
            let mut output = output;
            output
                .stderr
                .push(format!("raftkv: releasing the session's lease: {error}"));
            output
        }
    }
}

async fn lock(
    client: &Client,
    name: &str,
    ttl_seconds: u64,
    command: &[String],
    signals: &mut Signals,
) -> Output {
    let session = match Session::new(client, ttl_seconds).await {
        Ok(session) => session,
        Err(error) => return Output::from_error(&error),
    };
    let guard = tokio::select! {
        guard = session.lock(name) => match guard {
            Ok(guard) => guard,
            Err(error) => return close(session, lock_error(&error)).await,
        },
        () = signals.received() => {
            return close(session, Output::failure(Exit::Interrupted, "interrupted before the lock was taken".to_string())).await
        }
    };
    let lost = guard.lost();
    tokio::pin!(lost);
    let Some((program, arguments)) = command.split_first() else {
        print_line(&format!(
            "locked key={} fencing_token={}",
            guard.key(),
            guard.fencing_token()
        ));
        let output = tokio::select! {
            reason = &mut lost => lost_output(&reason),
            () = signals.received() => Output::empty(),
        };
        return close(session, output).await;
    };
    let child = tokio::process::Command::new(program)
        .args(arguments)
        .env("RAFTKV_LOCK_KEY", guard.key())
        .env("RAFTKV_FENCING_TOKEN", guard.fencing_token().to_string())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            return close(
                session,
                Output::failure(Exit::Input, format!("running {program:?}: {error}")),
            )
            .await
        }
    };
    let output = loop {
        tokio::select! {
            status = child.wait() => break match status {
                Ok(status) => command_output(status),
                Err(error) => Output::failure(Exit::ServerError, format!("waiting for {program:?}: {error}")),
            },
            reason = &mut lost => {
                // The lock is gone: the command must not go on acting as its holder.
                let _ = child.kill().await;
                break lost_output(&reason);
            }
            () = signals.received() => {
                // Passed on, so that a SIGTERM sent to raftkv alone ends the command too; on
                // a terminal's Ctrl-C the command got its own SIGINT already.
                if let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
                    // SAFETY: kill(2) with a pid of our own child and a valid signal number.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
            }
        }
    };
    close(session, output).await
}

/// The command's exit status as ours: its code, or 128+N when signal N ended it.
fn command_output(status: ExitStatus) -> Output {
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    let code = u8::try_from(code).unwrap_or(1);
    if code == 0 {
        return Output::empty();
    }
    Output {
        stdout: Vec::new(),
        stderr: Vec::new(),
        exit: Exit::Command(code),
    }
}

fn lost_output(reason: &LockLost) -> Output {
    Output::failure(Exit::Lost, format!("lock lost: {reason}"))
}

async fn campaign(
    client: &Client,
    name: &str,
    value: &str,
    ttl_seconds: u64,
    signals: &mut Signals,
) -> Output {
    let session = match Session::new(client, ttl_seconds).await {
        Ok(session) => session,
        Err(error) => return Output::from_error(&error),
    };
    let leadership = tokio::select! {
        leadership = session.campaign(name, value) => match leadership {
            Ok(leadership) => leadership,
            Err(error) => return close(session, lock_error(&error)).await,
        },
        () = signals.received() => {
            return close(session, Output::failure(Exit::Interrupted, "interrupted before leading".to_string())).await
        }
    };
    print_line(&format!(
        "elected key={} create_revision={} value={value}",
        leadership.key(),
        leadership.create_revision()
    ));
    let lost = leadership.lost();
    let output = tokio::select! {
        reason = lost => Output::failure(Exit::Lost, format!("leadership lost: {reason}")),
        () = signals.received() => match leadership.resign().await {
            Ok(_) => Output::empty(),
            Err(error) => Output::from_error(&error),
        },
    };
    close(session, output).await
}

async fn observe(client: &Client, name: &str, count: Option<u64>, signals: &mut Signals) -> Output {
    let mut observer = client.observe_election(name);
    let mut printed = 0;
    while count.is_none_or(|count| printed < count) {
        let leader = tokio::select! {
            next = observer.next() => next,
            () = signals.received() => return Output::empty(),
        };
        match leader {
            None => break,
            Some(Err(error)) => return lock_error(&error),
            Some(Ok(None)) => print_line("(no leader)"),
            Some(Ok(Some(leader))) => {
                let value = String::from_utf8_lossy(&leader.value);
                print_line(&format!("{}\t{value}", leader.key));
            }
        }
        printed += 1;
    }
    Output::empty()
}

#[cfg(test)]
mod tests {
    use super::super::{parse, ClientCommand};
    use super::*;

    #[test]
    fn the_lock_and_elect_commands_parse() {
        let lock = parse(&["lock", "jobs", "--ttl", "5", "--", "sh", "-c", "echo $X"]);
        assert!(matches!(
            lock,
            Ok(ClientCommand::Lock(LockCommand::Lock { ref name, ttl: 5, ref command }))
                if name == "jobs" && command == &["sh", "-c", "echo $X"]
        ));
        assert!(matches!(
            parse(&["lock", "jobs"]),
            Ok(ClientCommand::Lock(LockCommand::Lock { ttl: 60, ref command, .. })) if command.is_empty()
        ));
        assert!(matches!(
            parse(&["elect", "db", "node-1"]),
            Ok(ClientCommand::Lock(LockCommand::Elect { observe: false, value: Some(ref value), .. }))
                if value == "node-1"
        ));
        assert!(matches!(
            parse(&["elect", "db", "--observe", "--count", "2"]),
            Ok(ClientCommand::Lock(LockCommand::Elect {
                observe: true,
                value: None,
                count: Some(2),
                ..
            }))
        ));
        assert_eq!(
            parse(&["elect", "db"]).expect_err("no value").exit_code(),
            2
        );
        assert_eq!(
            parse(&["elect", "db", "v", "--observe"])
                .expect_err("both")
                .exit_code(),
            2
        );
    }

    #[test]
    fn a_commands_status_is_passed_on() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(command_output(ExitStatus::from_raw(0)).exit, Exit::Success);
        assert_eq!(
            command_output(ExitStatus::from_raw(3 << 8)).exit,
            Exit::Command(3)
        );
        // Killed by SIGKILL (9): 128 + 9.
        assert_eq!(
            command_output(ExitStatus::from_raw(9)).exit,
            Exit::Command(137)
        );
    }
}
