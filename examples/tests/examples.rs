//! Every example is built and run here, so none of them rots: each must finish (or serve) as
//! its documentation says.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long any one step may take.
const DEADLINE: Duration = Duration::from_secs(20);

fn run(binary: &str) -> Output {
    let output = Command::new(binary)
        .output()
        .unwrap_or_else(|error| panic!("{binary} does not start: {error}"));
    assert!(
        output.status.success(),
        "{binary} failed: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn bare_core_commits_the_same_commands_on_every_peer() {
    let output = run(env!("CARGO_BIN_EXE_bare_core"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("all 3 peers applied the same 5 commands"),
        "{stdout}"
    );
}

#[test]
fn in_memory_cluster_survives_a_crashed_leader_and_catches_it_up() {
    let output = run(env!("CARGO_BIN_EXE_in_memory_cluster"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("crashing the leader"), "{stdout}");
    assert!(
        stdout.contains("the restarted peer caught up: every peer applied the same log"),
        "{stdout}"
    );
}

#[test]
fn own_storage_holds_every_rule_of_the_conformance_suite() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_own_storage"));
    // Its fsyncs cost nothing on a memory file system, where there is one.
    if Path::new("/dev/shm").is_dir() {
        command.env("TMPDIR", "/dev/shm");
    }
    let output = command.output().expect("own_storage starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("FileStore holds all 20 rules"), "{stdout}");
    assert!(stdout.contains("durable-across-crash"), "{stdout}");
}

#[test]
fn simulate_checks_a_bank_under_faults_over_many_seeds() {
    let output = run(env!("CARGO_BIN_EXE_simulate"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("simulate: "), "{stdout}");
    let count = |label: &str| -> u64 {
        let at = stdout
            .find(label)
            .unwrap_or_else(|| panic!("no {label:?} in {stdout}"));
        let before = stdout[..at].trim_end();
        let digits = before
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap_or("");
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no count before {label:?} in {stdout}"))
    };
    assert!(count("crashes") > 0, "{stdout}");
    assert!(count("commands applied") > 0, "{stdout}");
    assert!(count("fingerprints") > 0, "{stdout}");
    assert!(count("snapshot round trips") > 0, "{stdout}");
    assert!(
        stdout.contains("every replica agreed with the reference replica at every index"),
        "{stdout}"
    );
}

/// One `kv_node` process, typed into through its standard input.
struct KvNode {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl KvNode {
    fn start(id: u64, peers: &str, data_dir: &Path) -> KvNode {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv_node"))
            .args([&id.to_string(), peers, &data_dir.display().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kv_node starts");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = KvNode {
            child,
            stdin,
            lines,
        };
        let ready = node.next_line();
        assert!(ready.contains("ready"), "{ready}");
        node
    }

    fn next_line(&mut self) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .expect("kv_node answers within the deadline")
    }

    /// Types `command` and returns the answer.
    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("kv_node reads its input");
        self.next_line()
    }
}

impl Drop for KvNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Types `command` into the nodes in turn until one answers starting with `ok`; returns its
/// position. Before an election, and at followers, the answers say to try again elsewhere.
fn put_anywhere(nodes: &mut [Option<KvNode>], command: &str) -> usize {
    let deadline = Instant::now() + DEADLINE;
    loop {
        for (position, node) in nodes.iter_mut().enumerate() {
            let Some(node) = node else { continue };
            let answer = node.ask(command);
            if answer.starts_with("ok") {
                return position;
            }
            assert!(
                answer.starts_with("not the leader") || answer.starts_with("busy"),
                "unexpected answer to {command}: {answer}"
            );
        }
        assert!(Instant::now() < deadline, "nobody took {command}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Three consecutive free loopback ports below the ephemeral range (where the operating
/// system never hands one out to an outgoing connection meanwhile).
fn free_ports() -> [u16; 3] {
    let start = 20_000 + (std::process::id() % 5_000) as u16 * 3;
    (start..start + 9_000)
        .step_by(3)
        .find(|&first| {
            (first..first + 3).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        })
        .map(|first| [first, first + 1, first + 2])
        .expect("three free ports")
}

#[test]
fn kv_node_replicates_across_three_processes_and_a_restarted_node_catches_up() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("temporary directory"))
        .collect();
    let peers = free_ports()
        .iter()
        .enumerate()
        .map(|(position, port)| format!("{}=127.0.0.1:{port}", position + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<Option<KvNode>> = (0..3)
        .map(|position| {
            Some(KvNode::start(
                position as u64 + 1,
                &peers,
                dirs[position].path(),
            ))
        })
        .collect();
    let leader = put_anywhere(&mut nodes, "put colour blue");
    for node in nodes.iter_mut().flatten() {
        assert_eq!(
            node.ask("get colour"),
            "colour = blue",
            "every node reads it"
        );
    }

    // The leader goes down; the other two elect another and take writes.
    nodes[leader] = None;
    put_anywhere(&mut nodes, "put size large");
    // The old leader restarts from its write-ahead log and catches up.
    nodes[leader] = Some(KvNode::start(
        leader as u64 + 1,
        &peers,
        dirs[leader].path(),
    ));
    let restarted = nodes[leader].as_mut().expect("just started");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let answer = restarted.ask("get size");
        if answer == "size = large" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node never read it: {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(restarted.ask("get colour"), "colour = blue");
}
