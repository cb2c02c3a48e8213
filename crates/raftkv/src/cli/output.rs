//! What a command prints and how it exits ([`Output`], the exit statuses of the module
//! table in [`crate::cli`]), kept apart from printing so that it can be tested, and the
//! aligned tables the listing commands print.

use std::io::Write;
use std::process::ExitCode;

use raftkv_client::ClientError;

/// Exit statuses, as in the module's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Exit {
    /// 0: the command did what it was asked.
    Success,
    /// 1: `get` found no key, or `cas` or `txn` found its condition unmet.
    NotFoundOrNotSwapped,
    /// 2: the command line or the input was wrong.
    Input,
    /// 3: no node answered, or none had a leader, before the retry deadline.
    Unavailable,
    /// 4: any other server error.
    ServerError,
    /// 5: a lease, lock or leadership held by the command was lost.
    Lost,
    /// 130 (128 + SIGINT): interrupted before the lock or leadership was taken.
    Interrupted,
    /// 1: `check consistency` found a member whose state differs from the others'.
    Divergent,
    /// The status of the command `raftkv lock` ran (not 0).
    Command(u8),
}

impl Exit {
    pub(super) fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::NotFoundOrNotSwapped => 1,
            Exit::Input => 2,
            Exit::Unavailable => 3,
            Exit::ServerError => 4,
            Exit::Lost => 5,
            Exit::Interrupted => 130,
            Exit::Divergent => 1,
            Exit::Command(code) => code,
        }
    }
}

/// What a command prints and how it exits, kept apart from printing so it can be tested.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Output {
    /// The command's result.
    pub(super) stdout: Vec<u8>,
    /// Whole lines, already prefixed `raftkv: `.
    pub(super) stderr: Vec<String>,
    /// How the command exits.
    pub(super) exit: Exit,
}

impl Output {
    pub(super) fn success(line: String) -> Output {
        assert!(!line.contains('\n'), "a summary is one line");
        Output {
            stdout: format!("{line}\n").into_bytes(),
            stderr: Vec::new(),
            exit: Exit::Success,
        }
    }

    /// Success with nothing (more) to print: a command that printed as it went.
    pub(super) fn empty() -> Output {
        Output {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit: Exit::Success,
        }
    }

    pub(super) fn failure(exit: Exit, message: String) -> Output {
        assert!(
            exit != Exit::Success,
            "a failure has a non-zero exit status"
        );
        Output {
            stdout: Vec::new(),
            stderr: vec![format!("raftkv: {message}")],
            exit,
        }
    }

    pub(super) fn from_error(error: &ClientError) -> Output {
        Output::failure(exit_of(error), error.to_string())
    }

    pub(super) fn print(self) -> ExitCode {
        if !self.stdout.is_empty() {
            let mut stdout = std::io::stdout().lock();
            if let Err(error) = stdout.write_all(&self.stdout).and_then(|()| stdout.flush()) {
                // The operation's outcome is already decided; the exit status still reports it,
                // and the reader (a closed pipe, say) learns of the loss here.
                eprintln!("raftkv: writing the output: {error}");
            }
        }
        for line in &self.stderr {
            eprintln!("{line}");
        }
        ExitCode::from(self.exit.code())
    }
}

/// The exit status for a failed call.
pub(super) fn exit_of(error: &ClientError) -> Exit {
    match error {
        ClientError::InvalidInput(_) => Exit::Input,
        // The server refused the input itself (a key or value over its configured limits, a
        // malformed request): the caller must change the input, as with a local check.
        ClientError::Server {
            status: 400 | 413, ..
        } => Exit::Input,
        // A revision the store cannot serve: the caller must ask for another one.
        ClientError::Compacted { .. } | ClientError::FutureRevision { .. } => Exit::Input,
        ClientError::Server { .. } | ClientError::Decode(_) => Exit::ServerError,
        // A lease that does not exist is "not found", like a key; an id in use is the
        // caller's to change.
        ClientError::LeaseNotFound { .. } => Exit::NotFoundOrNotSwapped,
        ClientError::LeaseAlreadyExists { .. } => Exit::Input,
        ClientError::Unavailable(_) => Exit::Unavailable,
    }
}

/// Left-aligned columns two spaces apart, the last cell of each line unpadded. A row shorter
/// than the header runs its last cell across the columns left (a reason in place of the
/// cells), which widens none of them.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        let sized = if row.len() < header.len() {
            &row[..row.len().saturating_sub(1)]
        } else {
            &row[..]
        };
        for (width, cell) in widths.iter_mut().zip(sized) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|cell| cell.to_string()).collect();
    let mut text = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use raftkv_client::api::ErrorResponse;

    use super::*;

    fn server_error(status: u16, message: &str) -> ClientError {
        ClientError::Server {
            status,
            error: ErrorResponse {
                error: message.to_string(),
                leader: None,
                leader_http: None,
            },
        }
    }

    #[test]
    fn errors_map_to_the_documented_exit_statuses() {
        let cases = [
            (ClientError::InvalidInput("empty key".to_string()), 2),
            (server_error(400, "bad key"), 2),
            (server_error(413, "value too large"), 2),
            (server_error(404, "no route"), 4),
            (server_error(409, "stale request-seq"), 4),
            (server_error(500, "boom"), 4),
            (ClientError::Decode("not JSON".to_string()), 4),
            (ClientError::Unavailable("no leader".to_string()), 3),
            (
                ClientError::LeaseNotFound {
                    id: 42,
                    message: "revoked".to_string(),
                },
                1,
            ),
            (
                ClientError::LeaseAlreadyExists {
                    id: 42,
                    message: "in use".to_string(),
                },
                2,
            ),
            (
                ClientError::Compacted {
                    requested: 3,
                    compact_revision: 10,
                    revision: 40,
                },
                2,
            ),
            (
                ClientError::FutureRevision {
                    requested: 50,
                    revision: 40,
                    compact_revision: 10,
                },
                2,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(exit_of(&error).code(), code, "{error}");
            let output = Output::from_error(&error);
            assert!(output.stdout.is_empty());
            assert_eq!(output.stderr, [format!("raftkv: {error}")]);
        }
        assert_eq!(
            Output::from_error(&server_error(400, "key is empty")).stderr,
            ["raftkv: server answered 400: key is empty"]
        );
    }
}
