//! The `raftkv serve` processes of a run: started, killed, paused, restarted, replaced.
//!
//! A node occupies a slot (a host of the [`Topology`]) and keeps its data directory there
//! across kills and restarts; a node removed from the cluster frees its slot, which a later
//! node (with a new id) may take. Each process writes its log to `node-<id>.log` in the run
//! directory, appended across restarts.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::topology::Topology;
use crate::ChaosError;

/// Where libfaketime may be installed (Debian's `faketime` package); the multithreaded build.
const LIBFAKETIME_CANDIDATES: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
];

/// The installed libfaketime, if any.
pub fn libfaketime() -> Option<PathBuf> {
    LIBFAKETIME_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// How nodes are started.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The `raftkv` executable.
    pub raftkv_bin: PathBuf,
    /// Raft tick length.
    pub tick_ms: u64,
    /// Applied bytes between snapshots: small, so snapshots and their installation happen
    /// during a run.
    pub snapshot_threshold_bytes: u64,
    /// How long a node lets a request wait for commit.
    pub request_timeout_ms: u64,
    /// Async worker threads per node.
    pub worker_threads: usize,
    /// Load libfaketime into every node so its clocks can be jumped.
    pub fake_clock: Option<PathBuf>,
    /// Load the fsync shim (crate `raftkv-fsync-fault`) into every node so its fsyncs can be
    /// made to fail or lie.
    pub fsync_shim: Option<PathBuf>,
    /// Start every node with `--distrust-unclean-restart`: with `--lossy-storage` a crash may
    /// take synced writes away without leaving damage to see, so every node restarted after
    /// a kill recovers before it votes.
    pub distrust_unclean_restart: bool,
}

/// What a node process is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// Running.
    Running,
    /// Stopped with SIGSTOP.
    Paused,
    /// Killed (or exited); its data directory is kept.
    Down,
}

/// One node: its identity, where it lives and its process.
#[derive(Debug)]
struct Node {
    id: u64,
    /// `None` for a founding member (started with `--peers`), else the HTTP address it joined
    /// through.
    join: Option<String>,
    data_dir: PathBuf,
    child: Option<Child>,
    state: ProcessState,
    /// Total forward jump of its clocks, in seconds.
    clock_offset_seconds: u64,
    /// A disk nemesis owns it: its exit is expected (not reaped and restarted), and it counts
    /// as impaired.
    quarantined: bool,
}

/// A process that ended without the harness killing it.
#[derive(Debug)]
pub struct UnexpectedExit {
    /// The node.
    pub id: u64,
    /// How it ended.
    pub status: String,
}

/// The node processes of one run.
#[derive(Debug)]
pub struct Cluster {
    topology: Topology,
    run_dir: PathBuf,
    options: NodeOptions,
    /// Occupied slots.
    nodes: BTreeMap<usize, Node>,
    founding_peers: String,
    next_id: u64,
}

impl Cluster {
    /// Starts `voters` founding members in slots 1..=voters.
    pub fn launch(
        topology: Topology,
        run_dir: &Path,
        options: NodeOptions,
        voters: usize,
    ) -> Result<Cluster, ChaosError> {
        assert!(voters >= 1 && voters <= topology.slots());
        let founding_peers = (1..=voters)
            .map(|slot| format!("{slot}={}", topology.raft_advertised(slot)))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Cluster {
            topology,
            run_dir: run_dir.to_path_buf(),
            options,
            nodes: BTreeMap::new(),
            founding_peers,
            next_id: voters as u64 + 1,
        };
        for slot in 1..=voters {
            cluster.nodes.insert(
                slot,
                Node {
                    id: slot as u64,
                    join: None,
                    data_dir: run_dir.join(format!("data-{slot}")),
                    child: None,
                    state: ProcessState::Down,
                    clock_offset_seconds: 0,
                    quarantined: false,
                },
            );
            cluster.start(slot)?;
        }
        Ok(cluster)
    }

    /// The hosts.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Every slot's HTTP address, occupied or not: a client given all of them finds the
    /// nodes that join later too.
    pub fn all_endpoints(&self) -> Vec<String> {
        (1..=self.topology.slots())
            .map(|slot| self.topology.http_addr(slot).to_string())
            .collect()
    }

    /// The occupied slots and their node ids.
    pub fn occupants(&self) -> Vec<(usize, u64)> {
        self.nodes
            .iter()
            .map(|(slot, node)| (*slot, node.id))
            .collect()
    }

    /// The slot of node `id`.
    pub fn slot_of_id(&self, id: u64) -> Option<usize> {
        self.nodes
            .iter()
            .find(|(_, node)| node.id == id)
            .map(|(slot, _)| *slot)
    }

    /// The id of the node in slot `slot`, if any.
    pub fn id_in(&self, slot: usize) -> Option<u64> {
        self.nodes.get(&slot).map(|node| node.id)
    }

    /// The process state of slot `slot`'s node.
    pub fn state(&self, slot: usize) -> Option<ProcessState> {
        self.nodes.get(&slot).map(|node| node.state)
    }

    /// Slots whose node is not running (killed or paused) or is under a disk fault.
    pub fn impaired_slots(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.state != ProcessState::Running || node.quarantined)
            .map(|(slot, _)| *slot)
            .collect()
    }

    /// A free slot for a new node.
    pub fn free_slot(&self) -> Option<usize> {
        (1..=self.topology.slots()).find(|slot| !self.nodes.contains_key(slot))
    }

    /// Starts the process of slot `slot`'s node (after a kill, on the same data directory).
    pub fn start(&mut self, slot: usize) -> Result<(), ChaosError> {
        let topology = &self.topology;
        let options = &self.options;
        let Some(node) = self.nodes.get_mut(&slot) else {
            return Err(ChaosError::Setup(format!("slot {slot} has no node")));
        };
        if node.state != ProcessState::Down {
            return Ok(());
        }
        let log_path = self.run_dir.join(format!("node-{}.log", node.id));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|error| ChaosError::Setup(format!("{}: {error}", log_path.display())))?;
        let log_for_stderr = log
            .try_clone()
            .map_err(|error| ChaosError::Setup(format!("{}: {error}", log_path.display())))?;
        let mut command = topology.command(slot, &options.raftkv_bin);
        command
            .arg("serve")
            .arg("--id")
            .arg(node.id.to_string())
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--raft-addr")
            .arg(topology.raft_bind(slot).to_string())
            .arg("--http-addr")
            .arg(topology.http_addr(slot).to_string())
            .arg("--cluster-id")
            .arg("chaos")
            .arg("--tick-ms")
            .arg(options.tick_ms.to_string())
            .arg("--snapshot-threshold-bytes")
            .arg(options.snapshot_threshold_bytes.to_string())
            .arg("--request-timeout-ms")
            .arg(options.request_timeout_ms.to_string())
            .arg("--worker-threads")
            .arg(options.worker_threads.to_string())
            // The checks read the whole change history after the run (from revision 1):
            // nothing may be compacted away before then.
            .arg("--history-retention-revisions")
            .arg("0");
        if options.distrust_unclean_restart {
            command.arg("--distrust-unclean-restart");
        }
        match &node.join {
            None => {
                command.arg("--peers").arg(&self.founding_peers);
            }
            Some(join) => {
                command
                    .arg("--join")
                    .arg(join)
                    .arg("--advertise-raft-addr")
                    .arg(topology.raft_advertised(slot).to_string());
            }
        }
        let mut preload = Vec::new();
        if let Some(library) = &options.fake_clock {
            let clock_file = self.run_dir.join(format!("clock-{}", node.id));
            write_clock_file(&clock_file, node.clock_offset_seconds)?;
            preload.push(library.display().to_string());
            command
                .env("FAKETIME_TIMESTAMP_FILE", &clock_file)
                // Re-read the offset file every second, so a jump takes effect at once.
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        if let Some(library) = &options.fsync_shim {
            preload.push(library.display().to_string());
            command
                .env(
                    "RAFTKV_FSYNC_FAULT_CONTROL",
                    fsync_control_path(&self.run_dir, node.id),
                )
                .env(
                    "RAFTKV_FSYNC_FAULT_LEDGER",
                    fsync_ledger_path(&self.run_dir, node.id),
                );
        }
        if !preload.is_empty() {
            // The loader takes a list separated by colons (or spaces).
            command.env("LD_PRELOAD", preload.join(":"));
        }
        command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_for_stderr));
        // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
        unsafe {
            command.pre_exec(|| {
                // Should the harness die without cleaning up, its nodes die with it rather than
                // live on holding addresses a later run will want.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = command
            .spawn()
            .map_err(|error| ChaosError::Setup(format!("starting {command:?}: {error}")))?;
        node.child = Some(child);
        node.state = ProcessState::Running;
        Ok(())
    }

    /// Kills slot `slot`'s node with SIGKILL (a paused one too); its data stays.
    pub fn kill(&mut self, slot: usize) {
        if let Some(node) = self.nodes.get_mut(&slot) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            node.state = ProcessState::Down;
        }
    }

    /// Stops slot `slot`'s node with SIGSTOP.
    pub fn pause(&mut self, slot: usize) {
        if let Some(node) = self.nodes.get_mut(&slot) {
            if node.state == ProcessState::Running && signal(node, libc::SIGSTOP) {
                node.state = ProcessState::Paused;
            }
        }
    }

    /// Resumes slot `slot`'s node with SIGCONT.
    pub fn resume(&mut self, slot: usize) {
        if let Some(node) = self.nodes.get_mut(&slot) {
            if node.state == ProcessState::Paused && signal(node, libc::SIGCONT) {
                node.state = ProcessState::Running;
            }
        }
    }

    /// Jumps slot `slot`'s node's clocks (wall and monotonic) forward by `seconds` more.
    pub fn jump_clock(&mut self, slot: usize, seconds: u64) -> Result<u64, ChaosError> {
        if self.options.fake_clock.is_none() {
            return Err(ChaosError::Unsupported(
                "clock jumps need libfaketime (Debian package faketime)".into(),
            ));
        }
        let Some(node) = self.nodes.get_mut(&slot) else {
            return Err(ChaosError::Setup(format!("slot {slot} has no node")));
        };
        node.clock_offset_seconds += seconds;
        write_clock_file(
            &self.run_dir.join(format!("clock-{}", node.id)),
            node.clock_offset_seconds,
        )?;
        Ok(node.clock_offset_seconds)
    }

    /// Puts a new node, with a fresh id, in slot `slot`; it joins through `join_http`.
    pub fn add_joiner(&mut self, slot: usize, join_http: String) -> Result<u64, ChaosError> {
        if self.nodes.contains_key(&slot) {
            return Err(ChaosError::Setup(format!("slot {slot} is taken")));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.nodes.insert(
            slot,
            Node {
                id,
                join: Some(join_http),
                data_dir: self.run_dir.join(format!("data-{slot}-id{id}")),
                child: None,
                state: ProcessState::Down,
                clock_offset_seconds: 0,
                quarantined: false,
            },
        );
        self.start(slot)?;
        Ok(id)
    }

    /// Starts slot `slot`'s joining node again, joining through `join_http` this time (after
    /// it exited because the node it joined through did not answer).
    pub fn rejoin_through(&mut self, slot: usize, join_http: String) -> Result<(), ChaosError> {
        if let Some(node) = self.nodes.get_mut(&slot) {
            if node.join.is_some() {
                node.join = Some(join_http);
            }
        }
        self.start(slot)
    }

    /// Kills slot `slot`'s node for good and frees the slot (its data directory is deleted).
    pub fn retire(&mut self, slot: usize) {
        self.kill(slot);
        if let Some(node) = self.nodes.remove(&slot) {
            let _ = std::fs::remove_dir_all(&node.data_dir);
        }
    }

    /// The data directory of slot `slot`'s node.
    pub fn data_dir(&self, slot: usize) -> Option<PathBuf> {
        self.nodes.get(&slot).map(|node| node.data_dir.clone())
    }

    /// The log file (stdout and stderr, appended across restarts) of node `id`.
    pub fn log_path(&self, id: u64) -> PathBuf {
        self.run_dir.join(format!("node-{id}.log"))
    }

    /// The fsync shim's ledger of node `id`: the ranges its lied syncs left unsynced.
    pub fn fsync_ledger(&self, id: u64) -> PathBuf {
        fsync_ledger_path(&self.run_dir, id)
    }

    /// The `raftkv` executable the nodes run.
    pub fn raftkv_bin(&self) -> &Path {
        &self.options.raftkv_bin
    }

    /// Tells the fsync shim of node `id` what its syncs do from now on: `pass`, `fail` or
    /// `lie` (see the `raftkv-fsync-fault` crate). Written to a temporary name and renamed, so
    /// the shim never reads half a word.
    pub fn set_fsync_mode(&self, id: u64, mode: &str) -> Result<(), ChaosError> {
        if self.options.fsync_shim.is_none() {
            return Err(ChaosError::Unsupported(
                "fsync faults need the shim (cargo build -p raftkv-fsync-fault)".into(),
            ));
        }
        let path = fsync_control_path(&self.run_dir, id);
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, format!("{mode}\n"))
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|error| ChaosError::Setup(format!("{}: {error}", path.display())))
    }

    /// Whether slot `slot`'s node is quarantined (see [`Cluster::set_quarantined`]).
    pub fn is_quarantined(&self, slot: usize) -> bool {
        self.nodes.get(&slot).is_some_and(|node| node.quarantined)
    }

    /// Puts slot `slot`'s node under (or releases it from) a disk nemesis: see
    /// [`Cluster::reap_unexpected_exits`] and [`Cluster::impaired_slots`].
    pub fn set_quarantined(&mut self, slot: usize, quarantined: bool) {
        if let Some(node) = self.nodes.get_mut(&slot) {
            node.quarantined = quarantined;
        }
    }

    /// How slot `slot`'s process ended, if it did (then the node is down).
    pub fn exit_status(&mut self, slot: usize) -> Option<String> {
        let node = self.nodes.get_mut(&slot)?;
        let status = node.child.as_mut()?.try_wait().ok()??;
        node.child = None;
        node.state = ProcessState::Down;
        Some(status.to_string())
    }

    /// Notes processes that ended on their own since the last call (a crash is a finding).
    /// Quarantined nodes are left to the nemesis that quarantined them.
    pub fn reap_unexpected_exits(&mut self) -> Vec<UnexpectedExit> {
        let mut found = Vec::new();
        for node in self.nodes.values_mut().filter(|node| !node.quarantined) {
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                found.push(UnexpectedExit {
                    id: node.id,
                    status: status.to_string(),
                });
                node.child = None;
                node.state = ProcessState::Down;
            }
        }
        found
    }

    /// Ends every fault a process is under: resumes paused nodes and starts killed ones.
    pub fn revive_all(&mut self) -> Result<(), ChaosError> {
        let slots: Vec<usize> = self.nodes.keys().copied().collect();
        for slot in slots {
            self.resume(slot);
            self.start(slot)?;
        }
        Ok(())
    }

    /// Kills every process.
    pub fn shutdown(&mut self) {
        let slots: Vec<usize> = self.nodes.keys().copied().collect();
        for slot in slots {
            self.kill(slot);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn signal(node: &Node, signal: libc::c_int) -> bool {
    let Some(child) = node.child.as_ref() else {
        return false;
    };
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return false;
    };
    // SAFETY: the pid is our own child's, not yet reaped (we hold its `Child`).
    unsafe { libc::kill(pid, signal) == 0 }
}

fn fsync_control_path(run_dir: &Path, id: u64) -> PathBuf {
    run_dir.join(format!("fsync-control-{id}"))
}

fn fsync_ledger_path(run_dir: &Path, id: u64) -> PathBuf {
    run_dir.join(format!("fsync-ledger-{id}"))
}

fn write_clock_file(path: &Path, offset_seconds: u64) -> Result<(), ChaosError> {
    std::fs::write(path, format!("+{offset_seconds}s\n"))
        .map_err(|error| ChaosError::Setup(format!("{}: {error}", path.display())))
}
