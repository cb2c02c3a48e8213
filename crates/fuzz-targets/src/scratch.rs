//! Where targets that need files put them: memory-backed `/dev/shm` when there is one (a
//! fuzzer writes thousands of files a second), else the temporary directory. Every file and
//! directory is removed when the input is done.

use std::path::PathBuf;

/// The directory scratch files and directories are made in.
pub(crate) fn root() -> PathBuf {
    let shared_memory = PathBuf::from("/dev/shm");
    if shared_memory.is_dir() {
        shared_memory
    } else {
        std::env::temp_dir()
    }
}

/// A new empty directory, removed when dropped.
pub(crate) fn directory() -> tempfile::TempDir {
    match tempfile::Builder::new()
        .prefix("fuzz-targets-")
        .tempdir_in(root())
    {
        Ok(directory) => directory,
        // Not a finding about the input: the machine cannot run the target at all.
        Err(error) => panic!(
            "cannot make a scratch directory in {}: {error}",
            root().display()
        ),
    }
}

/// A new empty directory named `<prefix><this process's id>-...`, removed when dropped or,
/// should the process exit first, by [`remove_abandoned`] in a later process.
pub(crate) fn directory_of_this_process(prefix: &str) -> tempfile::TempDir {
    let prefix = format!("{prefix}{}-", std::process::id());
    match tempfile::Builder::new().prefix(&prefix).tempdir_in(root()) {
        Ok(directory) => directory,
        Err(error) => panic!(
            "cannot make a scratch directory in {}: {error}",
            root().display()
        ),
    }
}

/// Removes the directories [`directory_of_this_process`] made with `prefix` for processes
/// that no longer run.
pub(crate) fn remove_abandoned(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(root()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(process) = name
            .to_str()
            .and_then(|name| name.strip_prefix(prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|process| process.parse::<u32>().ok())
        else {
            continue;
        };
        let running = PathBuf::from(format!("/proc/{process}")).exists();
        if !running {
            // Best effort: another process may be removing it too.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
