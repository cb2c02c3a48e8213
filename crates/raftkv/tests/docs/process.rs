//! Processes the runner starts: foreground commands run to completion under a deadline, and
//! background servers held by a guard that stops them (SIGTERM, then SIGKILL for them and the
//! children they started) when dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any awaited outcome may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often a wait for a condition looks again.
pub const POLL: Duration = Duration::from_millis(50);

/// A foreground command's result.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// For failure messages.
    pub fn describe(&self) -> String {
        format!(
            "exit {:?}; stdout: {:?}; stderr: {:?}",
            self.code,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(1500);
    let start = (start..text.len())
        .find(|at| text.is_char_boundary(*at))
        .unwrap_or(0);
    &text[start..]
}

/// Runs `command` to completion; kills it and fails past `deadline`.
pub fn run(command: &mut Command, deadline: Duration) -> Result<Finished, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start {command:?}: {error}"))?;
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let give_up = Instant::now() + deadline;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < give_up => std::thread::sleep(POLL / 5),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let finished = Finished {
        code: status.and_then(|status| status.code()),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    match status {
        Some(_) => Ok(finished),
        None => Err(format!(
            "still running after {deadline:?}: {}",
            finished.describe()
        )),
    }
}

fn read_all(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// A server in the background; stopped when dropped.
pub struct Background {
    pub name: String,
    child: Child,
    /// Its stdout's lines, when captured.
    lines: Option<mpsc::Receiver<String>>,
    /// The lines read so far.
    pub seen: Vec<String>,
    /// Where its output (or its stderr, when stdout is captured) goes.
    pub log: PathBuf,
}

impl Background {
    /// Starts `command`, its stdout read line by line when `capture_stdout`, else to `log`.
    pub fn spawn(
        name: &str,
        command: &mut Command,
        capture_stdout: bool,
        log: &Path,
    ) -> Result<Background, String> {
        let file = std::fs::File::create(log).map_err(|error| format!("{log:?}: {error}"))?;
        let stdout = match capture_stdout {
            true => Stdio::piped(),
            false => Stdio::from(file.try_clone().map_err(|error| error.to_string())?),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(file))
            .spawn()
            .map_err(|error| format!("cannot start {name}: {error}"))?;
        let lines = child.stdout.take().map(|stdout| {
            let (sender, receiver) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
            receiver
        });
        Ok(Background {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout until a line starts with `prefix` (after indentation).
    pub fn wait_for_line(&mut self, prefix: &str) -> Result<String, String> {
        let lines = self.lines.as_ref().ok_or("stdout is not captured")?;
        let give_up = Instant::now() + DEADLINE;
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.trim_start().starts_with(prefix) {
                        return Ok(line);
                    }
                }
                Err(error) => {
                    return Err(format!(
                        "{} printed no line starting with {prefix:?} ({error}); stdout:\n{}\n{}",
                        self.name,
                        self.seen.join("\n"),
                        self.log_tail()
                    ))
                }
            }
        }
    }

    /// `Some` once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} ---\n{}", self.log.display(), tail(&text))
    }

    /// The processes it started (`raftkv dev`'s nodes), from /proc.
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// SIGTERM, then SIGKILL (for it and its children) if it has not exited by the deadline.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        let children = self.children();
        signal(self.pid(), libc::SIGTERM);
        let give_up = Instant::now() + DEADLINE;
        while Instant::now() < give_up {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(POLL);
        }
        for child in children {
            signal(child, libc::SIGKILL);
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a pid this test started and a valid signal number has no
        // memory-safety preconditions.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The pids whose parent is `parent`, read from /proc/*/stat.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the name may hold spaces and parentheses.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ppid = after_name
            .split_whitespace()
            .nth(1)
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children.sort_unstable();
    children
}

/// Polls `condition` until it holds, fails, or the deadline passes.
pub fn wait_until(
    what: &str,
    mut condition: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let give_up = Instant::now() + DEADLINE;
    let mut last = String::new();
    loop {
        match condition() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(error) if error.starts_with("fatal: ") => return Err(error),
            Err(error) => last = error,
        }
        if Instant::now() >= give_up {
            return Err(format!("{what}: not within {DEADLINE:?} (last: {last})"));
        }
        std::thread::sleep(POLL * 2);
    }
}
