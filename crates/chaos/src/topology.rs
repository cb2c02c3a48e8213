//! Where the nodes live and how their network is cut.
//!
//! As root, every node slot gets a network namespace of its own, joined by a bridge that lives
//! in a namespace of its own; the harness reaches the bridge through one more veth pair, whose
//! root-side end holds the harness address `.254`:
//!
//! ```text
//!   root namespace (harness, clients, link proxies on 10.213.R.254)
//!        │ veth
//!   ┌────┴──────────── rkc-R-br: bridge br0 + nftables table `bridge chaos` ───────┐
//!   │ veth              │ veth              │ veth                                   │
//!   rkc-R-n1 (.1)       rkc-R-n2 (.2)       rkc-R-n3 (.3)   ...  one per node slot
//! ```
//!
//! Partitions and random loss are nftables rules on the bridge, replaced in one transaction,
//! so a fault starts and heals in milliseconds. Raft traffic goes through the harness's link
//! proxies (see [`crate::proxy`]) so that delay and jitter can be added in user space (this
//! kernel has no `tc netem` and no NFQUEUE); the rules therefore match both a node's direct
//! traffic to another node and its traffic to and from that node's proxy port.
//!
//! Without root the nodes listen on distinct loopback addresses `127.213.R.n` instead, and the
//! network nemeses are unavailable (the suite says so and skips them).
//!
//! Every address and name used is created here: the subnet index `R` is claimed by creating the
//! bridge namespace (or, on loopback, by binding a lock socket), so concurrent runs never share
//! one, and namespaces left by a run whose process died are removed before reuse.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::ChaosError;

/// Port every node's Raft transport listens on, at its own address.
pub const RAFT_PORT: u16 = 7000;
/// Port every node's HTTP API listens on, at its own address.
pub const HTTP_PORT: u16 = 8000;
/// The link proxy of slot `s` listens on the harness address at this port plus `s`.
pub const PROXY_PORT_BASE: u16 = 7100;
/// Slots are numbered from 1; the last octet 254 is the harness.
pub const SLOTS_MAX: usize = 32;
/// Subnet indexes tried, `10.213.R.0/24` or `127.213.R.0/24`.
const RUN_INDEX_RANGE: std::ops::RangeInclusive<u8> = 1..=250;
/// Where the owner of each claimed subnet index is written, to clean up after a dead run.
const OWNER_DIRECTORY: &str = "/run/raftkv-chaos";

/// How the nodes are separated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// One network namespace per node, a bridge with nftables between them (needs root).
    Namespaces,
    /// Distinct loopback addresses; no network faults.
    Loopback,
}

/// The network faults in force: replaced as a whole on every change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFaults {
    /// Ordered slot pairs `(from, to)` whose packets are dropped.
    pub blocked: BTreeSet<(usize, usize)>,
    /// Ordered slot pairs `(from, to)` losing this percentage of their packets at random.
    pub loss_percent: BTreeMap<(usize, usize), u8>,
}

impl NetworkFaults {
    /// Whether there is no fault at all.
    pub fn is_healed(&self) -> bool {
        self.blocked.is_empty() && self.loss_percent.is_empty()
    }
}

/// The hosts of one run, torn down on drop.
#[derive(Debug)]
pub struct Topology {
    isolation: Isolation,
    run_index: u8,
    slots: usize,
    /// On loopback, the socket whose address claims the run index.
    _loopback_claim: Option<TcpListener>,
    torn_down: bool,
}

impl Topology {
    /// Creates `slots` hosts: namespaces when `isolation` asks for them (the caller checks
    /// root), else loopback addresses.
    pub fn create(slots: usize, isolation: Isolation) -> Result<Topology, ChaosError> {
        if slots == 0 || slots > SLOTS_MAX {
            return Err(ChaosError::Setup(format!(
                "between 1 and {SLOTS_MAX} node slots, not {slots}"
            )));
        }
        match isolation {
            Isolation::Namespaces => create_namespaces(slots),
            Isolation::Loopback => create_loopback(slots),
        }
    }

    /// Number of node slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The address of node slot `slot` (1-based).
    pub fn node_ip(&self, slot: usize) -> Ipv4Addr {
        assert!((1..=self.slots).contains(&slot), "slot {slot} out of range");
        self.address(slot as u8)
    }

    /// The harness's own address: link proxies listen here, clients connect from here.
    pub fn harness_ip(&self) -> Ipv4Addr {
        self.address(254)
    }

    fn address(&self, last: u8) -> Ipv4Addr {
        match self.isolation {
            Isolation::Namespaces => Ipv4Addr::new(10, 213, self.run_index, last),
            Isolation::Loopback => Ipv4Addr::new(127, 213, self.run_index, last),
        }
    }

    /// Where slot `slot`'s Raft transport listens.
    pub fn raft_bind(&self, slot: usize) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.node_ip(slot)), RAFT_PORT)
    }

    /// Where the other nodes dial slot `slot`: its link proxy in namespaces, else its listener.
    pub fn raft_advertised(&self, slot: usize) -> SocketAddr {
        match self.isolation {
            Isolation::Namespaces => self.proxy_listen(slot),
            Isolation::Loopback => self.raft_bind(slot),
        }
    }

    /// Where slot `slot`'s link proxy listens.
    pub fn proxy_listen(&self, slot: usize) -> SocketAddr {
        SocketAddr::new(
            IpAddr::V4(self.harness_ip()),
            PROXY_PORT_BASE + u16::try_from(slot).unwrap_or(0),
        )
    }

    /// Where slot `slot`'s HTTP API listens.
    pub fn http_addr(&self, slot: usize) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.node_ip(slot)), HTTP_PORT)
    }

    /// The slot whose address is `ip`, if any.
    pub fn slot_of(&self, ip: IpAddr) -> Option<usize> {
        let IpAddr::V4(ip) = ip else { return None };
        let octets = ip.octets();
        let slot = usize::from(octets[3]);
        (ip == self.address(octets[3]) && (1..=self.slots).contains(&slot)).then_some(slot)
    }

    /// A command running `program` on slot `slot`'s host.
    pub fn command(&self, slot: usize, program: &std::path::Path) -> Command {
        match self.isolation {
            Isolation::Namespaces => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", &self.node_namespace(slot)])
                    .arg(program);
                command
            }
            Isolation::Loopback => Command::new(program),
        }
    }

    fn bridge_namespace(&self) -> String {
        bridge_namespace(self.run_index)
    }

    fn node_namespace(&self, slot: usize) -> String {
        format!("rkc-{}-n{slot}", self.run_index)
    }

    /// Replaces the network faults in force with `faults`, in one nftables transaction.
    pub fn apply_network(&self, faults: &NetworkFaults) -> Result<(), ChaosError> {
        if self.isolation != Isolation::Namespaces {
            if faults.is_healed() {
                return Ok(());
            }
            return Err(ChaosError::Unsupported(
                "network faults need network namespaces (run as root)".into(),
            ));
        }
        let mut script = String::from("flush chain bridge chaos links\n");
        for &(from, to) in &faults.blocked {
            for rule in self.link_matches(from, to) {
                let _ = writeln!(script, "add rule bridge chaos links {rule} drop");
            }
        }
        for (&(from, to), &percent) in &faults.loss_percent {
            for rule in self.link_matches(from, to) {
                let _ = writeln!(
                    script,
                    "add rule bridge chaos links {rule} numgen random mod 100 < {} drop",
                    percent.min(100)
                );
            }
        }
        run_with_input(
            Command::new("ip").args(["netns", "exec", &self.bridge_namespace(), "nft", "-f", "-"]),
            &script,
        )
    }

    /// nftables matches for the packets that carry data from slot `from` to slot `to`: direct
    /// traffic, `from`'s connections to `to`'s proxy, and the answers on `to`'s connections to
    /// `from`'s proxy.
    fn link_matches(&self, from: usize, to: usize) -> [String; 3] {
        let (from_ip, to_ip, harness) = (self.node_ip(from), self.node_ip(to), self.harness_ip());
        [
            format!("ip saddr {from_ip} ip daddr {to_ip}"),
            format!(
                "ip saddr {from_ip} ip daddr {harness} tcp dport {}",
                self.proxy_listen(to).port()
            ),
            format!(
                "ip saddr {harness} tcp sport {} ip daddr {to_ip}",
                self.proxy_listen(from).port()
            ),
        ]
    }

    /// Stops using the hosts: removes the namespaces (their veths go with them).
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        if self.isolation == Isolation::Namespaces {
            // Deleting the harness end of its veth at once (both ends go) leaves no name for
            // the next run of this index to collide with while the namespaces are destroyed.
            let _ =
                run(Command::new("ip").args(["link", "del", &format!("rkc{}h", self.run_index)]));
            remove_namespaces(self.run_index);
            let _ = std::fs::remove_file(owner_file(self.run_index));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn bridge_namespace(run_index: u8) -> String {
    format!("rkc-{run_index}-br")
}

fn owner_file(run_index: u8) -> PathBuf {
    PathBuf::from(OWNER_DIRECTORY).join(format!("{run_index}.pid"))
}

fn create_loopback(slots: usize) -> Result<Topology, ChaosError> {
    for run_index in RUN_INDEX_RANGE {
        let claim = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 213, run_index, 254)), 7999);
        if let Ok(listener) = TcpListener::bind(claim) {
            return Ok(Topology {
                isolation: Isolation::Loopback,
                run_index,
                slots,
                _loopback_claim: Some(listener),
                torn_down: false,
            });
        }
    }
    Err(ChaosError::Setup(
        "every loopback subnet 127.213.1-250.0/24 is in use".into(),
    ))
}

fn create_namespaces(slots: usize) -> Result<Topology, ChaosError> {
    std::fs::create_dir_all(OWNER_DIRECTORY)
        .map_err(|error| ChaosError::Setup(format!("{OWNER_DIRECTORY}: {error}")))?;
    let routes = run_output(Command::new("ip").args(["-4", "route", "show"]))?;
    let run_index = claim_run_index(&routes)?;
    let topology = Topology {
        isolation: Isolation::Namespaces,
        run_index,
        slots,
        _loopback_claim: None,
        torn_down: false,
    };
    // On any failure below, dropping `topology` removes what was created.
    build_namespaces(&topology)?;
    Ok(topology)
}

/// Claims a subnet index by creating its bridge namespace; a namespace left by a dead run is
/// removed and its index reused.
fn claim_run_index(routes: &str) -> Result<u8, ChaosError> {
    for run_index in RUN_INDEX_RANGE {
        let subnet = format!("10.213.{run_index}.");
        let routed_elsewhere = routes
            .lines()
            .any(|line| line.starts_with(&subnet) && !line.contains(&format!("rkc{run_index}h")));
        if routed_elsewhere {
            continue;
        }
        let namespace = bridge_namespace(run_index);
        if run(Command::new("ip").args(["netns", "add", &namespace])).is_ok() {
            let _ = std::fs::write(owner_file(run_index), std::process::id().to_string());
            return Ok(run_index);
        }
        if owner_is_dead(run_index) {
            remove_namespaces(run_index);
            if run(Command::new("ip").args(["netns", "add", &namespace])).is_ok() {
                let _ = std::fs::write(owner_file(run_index), std::process::id().to_string());
                return Ok(run_index);
            }
        }
    }
    Err(ChaosError::Setup(
        "no free subnet among 10.213.1-250.0/24".into(),
    ))
}

fn owner_is_dead(run_index: u8) -> bool {
    let Ok(text) = std::fs::read_to_string(owner_file(run_index)) else {
        return true;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return true;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    !alive
}

fn remove_namespaces(run_index: u8) {
    let prefix = format!("rkc-{run_index}-");
    let listed = run_output(Command::new("ip").args(["netns", "list"])).unwrap_or_default();
    for line in listed.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(&prefix) {
            let _ = run(Command::new("ip").args(["netns", "del", name]));
        }
    }
}

fn build_namespaces(topology: &Topology) -> Result<(), ChaosError> {
    let index = topology.run_index;
    let bridge = topology.bridge_namespace();
    let harness = topology.harness_ip();
    let ip = |args: &[&str]| run(Command::new("ip").args(args));
    ip(&["-n", &bridge, "link", "set", "lo", "up"])?;
    ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &bridge, "link", "set", "br0", "up"])?;
    let harness_end = format!("rkc{index}h");
    let harness_peer = format!("rkc{index}hb");
    // The harness end lives in the root namespace; the kernel may still be destroying the one
    // of the previous run of this index (a namespace's veths go asynchronously when it is
    // deleted), and the index is ours now, so a leftover is removed rather than collided with.
    let _ = ip(&["link", "del", &harness_end]);
    ip(&[
        "link",
        "add",
        &harness_end,
        "type",
        "veth",
        "peer",
        "name",
        &harness_peer,
        "netns",
        &bridge,
    ])?;
    ip(&[
        "-n",
        &bridge,
        "link",
        "set",
        &harness_peer,
        "master",
        "br0",
        "up",
    ])?;
    ip(&["addr", "add", &format!("{harness}/24"), "dev", &harness_end])?;
    ip(&["link", "set", &harness_end, "up"])?;
    for slot in 1..=topology.slots {
        let namespace = topology.node_namespace(slot);
        let inner = format!("rkc{index}n{slot}");
        let outer = format!("rkc{index}n{slot}b");
        ip(&["netns", "add", &namespace])?;
        ip(&[
            "-n", &bridge, "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns",
            &namespace,
        ])?;
        ip(&["-n", &bridge, "link", "set", &outer, "master", "br0", "up"])?;
        ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        let address = format!("{}/24", topology.node_ip(slot));
        ip(&["-n", &namespace, "addr", "add", &address, "dev", &inner])?;
        ip(&["-n", &namespace, "link", "set", &inner, "up"])?;
    }
    run_with_input(
        Command::new("ip").args(["netns", "exec", &bridge, "nft", "-f", "-"]),
        "add table bridge chaos\n\
         add chain bridge chaos links { type filter hook forward priority 0; policy accept; }\n",
    )
}

fn run(command: &mut Command) -> Result<(), ChaosError> {
    run_output(command).map(|_| ())
}

fn run_output(command: &mut Command) -> Result<String, ChaosError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| ChaosError::Setup(format!("{command:?}: {error}")))?;
    if !output.status.success() {
        return Err(ChaosError::Setup(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn run_with_input(command: &mut Command, input: &str) -> Result<(), ChaosError> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| ChaosError::Setup(format!("{command:?}: {error}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|error| ChaosError::Setup(format!("{command:?}: {error}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| ChaosError::Setup(format!("{command:?}: {error}")))?;
    if !output.status.success() {
        return Err(ChaosError::Setup(format!(
            "{command:?} failed: {}\ninput:\n{input}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// Whether this process runs as root (network namespaces need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the tools the namespace topology needs are installed.
pub fn namespace_tools_missing() -> Vec<&'static str> {
    ["ip", "nft"]
        .into_iter()
        .filter(|tool| {
            Command::new(tool)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect()
}
