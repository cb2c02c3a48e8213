//! Golden interaction tests: scripts in `testdata/` drive the sans-I/O [`Raft`] directly and
//! record every [`Ready`] it hands out, as text, next to the commands that caused it. The
//! expected output lives in the script; a change in behaviour shows as a diff of that text.
//!
//! ```text
//!  testdata/NAME.txt ─► goldenscript parser ─► GoldenRunner::run ─► Net (tests/common)
//!       ▲                                             │                 Raft × N, queue, cuts
//!       └── UPDATE_GOLDENFILES=1 rewrites ◄── output ◄┘ each Ready through display.rs
//! ```
//!
//! Run them with `cargo test -p raft-core --test golden`; after an intended change, rewrite
//! the expected output with
//!
//! ```sh
//! UPDATE_GOLDENFILES=1 cargo test -p raft-core --test golden
//! ```
//!
//! and read the diff (`git diff crates/raft-core/tests/golden`) before committing it.
//!
//! Why `goldenscript`: its files are in the style of etcd raft's datadriven `testdata/*.txt`
//! (commands, `---`, their output), the form the issue asks for; toyDB's Raft tests use it and
//! it is maintained (0.8, on the 2024 edition); it has `!` for a command expected to fail,
//! `(...)` to silence setup, and one variable rewrites every expected output. `datadriven`
//! (the Rust port of cockroach's) has the same file form but pulls in `futures` through its
//! default features and has neither expected failures nor silencing; `expect-test` and `insta`
//! keep one snapshot per assertion, inline or in a file of their own, which suits a value
//! rather than a conversation of many commands. A dev-dependency only.
//!
//! The command language is described in [`GoldenRunner::run`] and in docs/testing.md.
//! Determinism: every peer's random generator is seeded from the script's `cluster seed=N`
//! (printed in the output) and the peer id, the network is a FIFO queue, and peers are
//! visited in id order, so a script's output is the same on every run.

#[path = "../common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::{Net, Peer};
use raft_core::{
    ConfChange, Config, Configuration, Entry, EntryKind, HardState, Index, LogId, MemStorage,
    Message, MessageBody, NodeId, PersistRequest, ProgressState, Raft, Snapshot, Term,
};

type Outcome = Result<String, Box<dyn Error>>;

/// What a peer's service has been handed to apply and not applied yet (`apply hold`).
enum ToApply {
    Snapshot(Snapshot),
    Entries(Vec<Entry>),
}

/// How one peer's disk and state machine behave, beyond what [`Peer`] holds.
#[derive(Default)]
struct Service {
    /// Writes wait for a `persist` command instead of completing at once.
    disk_held: bool,
    held_writes: VecDeque<PersistRequest>,
    /// Committed entries and snapshots wait for an `apply` command.
    apply_held: bool,
    held_applies: VecDeque<ToApply>,
    /// Reads the core reported failed, for `applied`.
    failed_reads: Vec<u64>,
}

/// Writes a `restart` loses although storage reported them durable (a disk that lied about
/// its syncs, then lost power).
struct Loss {
    /// How many of the last entries are gone.
    entries: usize,
    /// The older hard state the storage holds instead (its commit is ignored).
    hard_state: Option<HardState>,
    /// Whether the storage reports `possibly_lost_writes`.
    recover: bool,
}

/// Runs one script. A fresh runner per script: scripts do not share state.
#[derive(Default)]
struct GoldenRunner {
    net: Option<Net>,
    configs: BTreeMap<NodeId, Config>,
    services: BTreeMap<NodeId, Service>,
}

/// The options `cluster` takes, with their defaults.
struct ClusterOptions {
    peers: u64,
    voters: u64,
    seed: u64,
    election: u32,
    heartbeat: u32,
    pre_vote: bool,
    check_quorum: bool,
    spare_flush: u32,
    lease_margin: u32,
    chunk: u64,
    message_bytes: u64,
    inflight: usize,
}

impl GoldenRunner {
    fn net(&mut self) -> Result<&mut Net, Box<dyn Error>> {
        self.net
            .as_mut()
            .ok_or_else(|| "no cluster: start the script with `cluster`".into())
    }

    fn raft(&mut self, id: NodeId) -> Result<&mut Raft<MemStorage>, Box<dyn Error>> {
        Ok(&mut self.peer(id)?.raft)
    }

    fn peer(&mut self, id: NodeId) -> Result<&mut Peer, Box<dyn Error>> {
        self.net()?
            .peers
            .get_mut(&id)
            .ok_or_else(|| format!("no peer {}", id.0).into())
    }

    fn ids(&self) -> Vec<NodeId> {
        self.net
            .as_ref()
            .map(|net| net.peers.keys().copied().collect())
            .unwrap_or_default()
    }

    fn cluster(&mut self, options: ClusterOptions) -> Outcome {
        if options.voters == 0 || options.voters > options.peers {
            return Err("cluster needs 1 <= voters <= peers".into());
        }
        let make = |id: u64| {
            let mut config = Config::new(NodeId(id), options.seed);
            config.election_ticks = options.election;
            config.heartbeat_ticks = options.heartbeat;
            config.pre_vote = options.pre_vote;
            config.check_quorum = options.check_quorum;
            config.spare_flush_ticks = options.spare_flush;
            config.lease_margin_ticks = options.lease_margin;
            config.snapshot_chunk_bytes = options.chunk;
            config.message_bytes_max = options.message_bytes;
            config.inflight_messages_max = options.inflight;
            config
        };
        for id in 1..=options.peers {
            make(id).validate()?;
            self.configs.insert(NodeId(id), make(id));
            self.services.insert(NodeId(id), Service::default());
        }
        self.net = Some(Net::with_members(options.peers, options.voters, make));
        let o = &options;
        Ok(format!(
            "peers={} voters={} seed={} election={} heartbeat={} pre_vote={} check_quorum={} \
             spare_flush={} lease_margin={} chunk={} message_bytes={} inflight={}\n",
            o.peers,
            o.voters,
            o.seed,
            o.election,
            o.heartbeat,
            o.pre_vote,
            o.check_quorum,
            o.spare_flush,
            o.lease_margin,
            o.chunk,
            o.message_bytes,
            o.inflight
        ))
    }

    /// Takes and handles every `Ready` the peer has, printing each.
    fn process_ready(&mut self, id: NodeId, out: &mut String) -> Result<(), Box<dyn Error>> {
        loop {
            let raft = self.raft(id)?;
            if !raft.has_ready() {
                return Ok(());
            }
            let ready = raft.ready();
            if ready.is_empty() {
                // A leader's `has_ready` is true while replication is due, even when nothing
                // turns out to be sendable; `ready()` then clears it.
                return Ok(());
            }
            for line in ready.to_string().lines() {
                writeln!(out, "{}: {line}", id.0)?;
            }
            self.net()?.queue.extend(ready.messages);
            if let Some(write) = ready.persist {
                let service = self.services.entry(id).or_default();
                if service.disk_held {
                    service.held_writes.push_back(write);
                } else {
                    self.write(id, write)?;
                }
            }
            let mut applies = Vec::new();
            if let Some(snapshot) = ready.snapshot_to_apply {
                applies.push(ToApply::Snapshot(snapshot));
            }
            if !ready.committed_entries.is_empty() {
                applies.push(ToApply::Entries(ready.committed_entries));
            }
            for apply in applies {
                let service = self.services.entry(id).or_default();
                if service.apply_held {
                    service.held_applies.push_back(apply);
                } else {
                    self.apply(id, apply)?;
                }
            }
            self.peer(id)?.read_states.extend(ready.read_states);
            self.services
                .entry(id)
                .or_default()
                .failed_reads
                .extend(ready.failed_reads);
        }
    }

    /// Makes one write durable and reports it.
    fn write(&mut self, id: NodeId, write: PersistRequest) -> Result<(), Box<dyn Error>> {
        let raft = self.raft(id)?;
        let persist_id = write.id;
        raft.storage_mut().persist(write);
        raft.on_persisted(persist_id);
        Ok(())
    }

    /// Applies one hand-out to the peer's state machine and reports it.
    fn apply(&mut self, id: NodeId, apply: ToApply) -> Result<(), Box<dyn Error>> {
        let peer = self.peer(id)?;
        match apply {
            ToApply::Snapshot(snapshot) => {
                let index = snapshot.meta.last_included.index;
                peer.applied.retain(|entry| entry.index() > index);
                peer.raft.on_applied(index);
                peer.snapshot = Some(snapshot);
            }
            ToApply::Entries(entries) => {
                if let Some(last) = entries.last().map(Entry::index) {
                    peer.applied.extend(entries);
                    peer.raft.on_applied(last);
                }
            }
        }
        Ok(())
    }

    /// Hands one message to its addressee, unless a cut separates the two. Returns whether it
    /// arrived; a step error is printed.
    fn deliver(&mut self, message: Message, out: &mut String) -> Result<bool, Box<dyn Error>> {
        let net = self.net()?;
        if net.cut.contains(&message.from) || net.cut.contains(&message.to) {
            return Ok(false);
        }
        let to = message.to;
        net.delivered.push(message.clone());
        let Some(peer) = net.peers.get_mut(&to) else {
            return Ok(false);
        };
        if let Err(error) = peer.raft.step(message) {
            writeln!(out, "{}: step error: {error}", to.0)?;
        }
        Ok(true)
    }

    /// Readies every peer (or the given ones) and delivers every message until nothing moves.
    fn stabilize(&mut self, only: &[NodeId], out: &mut String) -> Result<(), Box<dyn Error>> {
        let ids = if only.is_empty() {
            self.ids()
        } else {
            only.to_vec()
        };
        for _round in 0..10_000 {
            for &id in &ids {
                self.process_ready(id, out)?;
            }
            let queue = std::mem::take(&mut self.net()?.queue);
            if queue.is_empty() {
                return Ok(());
            }
            let mut kept = VecDeque::new();
            for message in queue {
                if only.is_empty() || ids.contains(&message.to) {
                    self.deliver(message, out)?;
                } else {
                    kept.push_back(message);
                }
            }
            let net = self.net()?;
            kept.extend(net.queue.drain(..));
            net.queue = kept;
            if !only.is_empty()
                && !self.net()?.queue.iter().any(|m| ids.contains(&m.to))
                && !ids.iter().any(|&id| {
                    self.net
                        .as_ref()
                        .is_some_and(|net| net.peers[&id].raft.has_ready())
                })
            {
                return Ok(());
            }
        }
        Err("stabilize: still moving after 10000 rounds".into())
    }

    fn status(&mut self, id: NodeId, out: &mut String) -> Result<(), Box<dyn Error>> {
        let status = self.raft(id)?.status();
        writeln!(
            out,
            "{}: {:?} term={} leader={} commit={} applied={} last={} snapshot={} conf=({}){}",
            id.0,
            status.role,
            status.term.0,
            status
                .leader
                .map_or("none".to_string(), |l| l.0.to_string()),
            status.commit.0,
            status.applied.0,
            status.last_index.0,
            status.snapshot_index.0,
            status.configuration,
            if status.configuration_change_in_progress {
                " changing"
            } else {
                ""
            }
        )?;
        for peer in status.peers {
            let state = match peer.state {
                ProgressState::Probe => "probe".to_string(),
                ProgressState::Replicate => "replicate".to_string(),
                ProgressState::Snapshot(index) => format!("snapshot@{}", index.0),
            };
            writeln!(
                out,
                "{}:   progress {} match={} next={} {state}{}",
                id.0,
                peer.id.0,
                peer.match_index.0,
                peer.next_index.0,
                if peer.learner { " learner" } else { "" }
            )?;
        }
        if let Some(recovery) = status.recovery {
            let ids = |ids: &[NodeId]| {
                let ids: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
                ids.join(",")
            };
            writeln!(
                out,
                "{}:   recovering {:?} answered={{{}}} awaiting={{{}}} term_floor={} log_floor={}",
                id.0,
                recovery.phase,
                ids(&recovery.answered),
                ids(&recovery.awaiting),
                recovery.term_floor.0,
                recovery.log_floor
            )?;
        }
        Ok(())
    }

    /// `N: 1.1:noop 1.2 "x" ...`: the peer's log after its snapshot, with command bytes.
    fn log(&mut self, id: NodeId, out: &mut String) -> Result<(), Box<dyn Error>> {
        let raft = self.raft(id)?;
        let first = raft.snapshot_index().next();
        let last = raft.last_index();
        let entries = if last >= first {
            raft.entries(first, last.next())?
        } else {
            Vec::new()
        };
        write!(out, "{}: snapshot={}", id.0, raft.snapshot_index().0)?;
        for entry in &entries {
            write!(out, " {}", describe(entry))?;
        }
        writeln!(out)?;
        Ok(())
    }

    /// `N: applied snapshot(T.I)=TEXT T.I=x ...`: what the peer's state machine holds, then
    /// the reads it was answered and those that failed.
    fn applied(&mut self, id: NodeId, out: &mut String) -> Result<(), Box<dyn Error>> {
        let peer = self.peer(id)?;
        write!(out, "{}: applied", id.0)?;
        if let Some(snapshot) = &peer.snapshot {
            write!(
                out,
                " snapshot({})={}",
                snapshot.meta.last_included,
                text(&snapshot.data)
            )?;
        }
        for entry in &peer.applied {
            write!(out, " {}", describe(entry))?;
        }
        writeln!(out)?;
        for read in &peer.read_states {
            writeln!(
                out,
                "{}:   read context={} index={}",
                id.0, read.context, read.index.0
            )?;
        }
        for context in &self.services.entry(id).or_default().failed_reads {
            writeln!(out, "{}:   failed read context={context}", id.0)?;
        }
        Ok(())
    }

    /// Restarts a peer from what its storage holds: unfinished writes and unapplied entries
    /// are lost, as in a crash; messages queued to or from it are dropped. With `loss`, the
    /// storage also loses writes it reported durable first (see [`common::lose_writes`]).
    fn restart(
        &mut self,
        id: NodeId,
        loss: Option<Loss>,
        out: &mut String,
    ) -> Result<(), Box<dyn Error>> {
        let config = self
            .configs
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("no peer {}", id.0))?;
        let net = self.net()?;
        let old = net
            .peers
            .remove(&id)
            .ok_or_else(|| format!("no peer {}", id.0))?;
        let mut storage = old.raft.into_storage();
        if let Some(loss) = loss {
            storage = common::lose_writes(storage, loss.entries, loss.hard_state, loss.recover);
            let hard = storage.hard_state();
            writeln!(
                out,
                "{}: lost writes: last={} hard=(term={} vote={} commit={}) possibly_lost_writes={}",
                id.0,
                storage
                    .stored_entries()
                    .last()
                    .map_or(storage.snapshot_meta().last_included, |entry| entry.id),
                hard.term.0,
                hard.vote
                    .map_or("none".to_string(), |vote| vote.0.to_string()),
                hard.commit.0,
                loss.recover
            )?;
        }
        let raft = Raft::new(config, storage)?;
        net.peers.insert(
            id,
            Peer {
                raft,
                applied: Vec::new(),
                snapshot: None,
                read_states: Vec::new(),
                forwarded: Vec::new(),
            },
        );
        net.queue.retain(|m| m.to != id && m.from != id);
        let service = self.services.entry(id).or_default();
        service.held_writes.clear();
        service.held_applies.clear();
        self.process_ready(id, out)
    }
}

/// The text of a command's bytes (the scripts propose readable ones).
fn text(data: &Bytes) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// One entry: `term.index` and its command, `:noop`, or `:conf(...)`.
fn describe(entry: &Entry) -> String {
    match entry.kind {
        EntryKind::Normal => format!("{}={}", entry.id, text(&entry.data)),
        EntryKind::Noop => format!("{}:noop", entry.id),
        EntryKind::Configuration => match Configuration::decode(&entry.data) {
            Ok(configuration) => format!("{}:conf({configuration})", entry.id),
            Err(_) => format!("{}:conf(undecodable)", entry.id),
        },
    }
}

fn parse_node(value: &str) -> Result<NodeId, Box<dyn Error>> {
    let id: u64 = value
        .parse()
        .map_err(|_| format!("not a peer id: {value:?}"))?;
    Ok(NodeId(id))
}

fn parse_log_id(value: &str) -> Result<LogId, Box<dyn Error>> {
    let (term, index) = value
        .split_once('.')
        .ok_or_else(|| format!("not a log id (term.index): {value:?}"))?;
    Ok(LogId::new(Term(term.parse()?), Index(index.parse()?)))
}

/// Messages a `deliver` or `drop` picks: by sender, addressee and kind.
struct Filter {
    from: Option<NodeId>,
    to: Option<NodeId>,
    kind: Option<String>,
}

impl Filter {
    fn matches(&self, message: &Message) -> bool {
        self.from.is_none_or(|from| message.from == from)
            && self.to.is_none_or(|to| message.to == to)
            && self
                .kind
                .as_deref()
                .is_none_or(|kind| message.body.kind_name() == kind)
    }
}

impl goldenscript::Runner for GoldenRunner {
    type Command = goldenscript::Command;

    /// The command language (peers are numbers, `ID...` is one or more of them; where it is
    /// optional, none means every peer):
    ///
    /// ```text
    /// cluster [peers=3] [voters=PEERS] [seed=7] [election=10] [heartbeat=2] [pre_vote=true]
    ///         [check_quorum=true] [spare_flush=0] [lease_margin=2] [chunk=1048576]
    ///         [message_bytes=1048576] [inflight=64]
    ///                         peers 1..=peers; 1..=voters form the configuration, the rest
    ///                         start empty (new servers); prints the options in force
    /// tick ID... [n=1]        ticks each peer n times (nothing handed out yet)
    /// campaign ID             ticks the peer until its election timer fires
    /// advance [ID...] n=N     n rounds of: tick each peer once, then stabilize
    /// process_ready [ID...]   takes and prints every Ready, queues its messages, persists
    ///                         and applies (unless held)
    /// stabilize [ID...]       process_ready and deliver until nothing moves (only messages
    ///                         to the given peers are delivered)
    /// deliver [from=ID] [to=ID] [kind=K] [n=N]   delivers matching queued messages (the first
    ///                         n), printing each; a message across a cut is lost
    /// drop [from=ID] [to=ID] [kind=K] [n=N]      loses matching queued messages, printing each
    /// queue                   prints the messages in flight
    /// cut ID... / heal [ID...]  isolates peers (their messages are lost) / reconnects them
    /// disk ID hold|auto       writes wait for `persist` / complete at once (default)
    /// persist ID [upto=N]     completes held writes (through persist id N), reported at once
    /// apply_mode ID hold|auto committed entries wait for `apply` / apply at once (default)
    /// apply ID                applies what is held
    /// propose ID DATA...      proposes each command
    /// conf_change ID add_learner|promote|remove NODE
    /// transfer ID TARGET      leadership transfer
    /// read_index ID CONTEXT / lease_read ID CONTEXT
    /// compact ID [index=APPLIED] data=TEXT   takes a snapshot holding TEXT
    /// restart ID [lose_entries=N] [term=T [vote=ID|none]] [recover=true]
    ///                         crash and restart from storage; with lose_entries or term, the
    ///                         storage first loses its last N entries and/or goes back to an
    ///                         older term and vote, and reports possibly_lost_writes=recover
    /// step ID from=ID term=T vote|prevote last=T.I   hands the peer a vote request
    /// status [ID...] / log [ID...] / applied [ID...] / counters ID
    /// ```
    /// Every peer checks its own invariants after every command, so a script that drives the
    /// core into a broken state fails there, naming the invariant.
    fn end_command(
        &mut self,
        _: &goldenscript::Command,
        _: &goldenscript::Context,
    ) -> Result<String, Box<dyn Error>> {
        if let Some(net) = &self.net {
            for peer in net.peers.values() {
                peer.raft.check_invariants();
            }
        }
        Ok(String::new())
    }

    fn run(&mut self, command: &goldenscript::Command, _: &goldenscript::Context) -> Outcome {
        let mut out = String::new();
        let mut args = command.consume_args();
        let name = command.name.as_str();
        // Parses a key's value with FromStr, or gives the default.
        macro_rules! key {
            ($key:literal, $default:expr) => {
                match args.take_key($key) {
                    Some(value) => value
                        .parse()
                        .map_err(|e| format!("{}={value:?}: {e}", $key))?,
                    None => $default,
                }
            };
        }
        match name {
            "cluster" => {
                let peers: u64 = key!("peers", 3);
                let options = ClusterOptions {
                    peers,
                    voters: key!("voters", peers),
                    seed: key!("seed", 7),
                    election: key!("election", 10),
                    heartbeat: key!("heartbeat", 2),
                    pre_vote: key!("pre_vote", true),
                    check_quorum: key!("check_quorum", true),
                    spare_flush: key!("spare_flush", 0),
                    lease_margin: key!("lease_margin", 2),
                    chunk: key!("chunk", 1024 * 1024),
                    message_bytes: key!("message_bytes", 1024 * 1024),
                    inflight: key!("inflight", 64),
                };
                args.reject_next()?;
                return self.cluster(options);
            }
            "tick" => {
                let n: u32 = key!("n", 1);
                let ids = positional_nodes(&mut args)?;
                args.reject_next()?;
                for id in ids {
                    for _ in 0..n {
                        self.raft(id)?.tick();
                    }
                }
            }
            "campaign" => {
                let id = one_node(&mut args)?;
                args.reject_next()?;
                let raft = self.raft(id)?;
                let role = raft.role();
                let term = raft.term();
                for ticks in 1..=1_000 {
                    raft.tick();
                    if raft.role() != role || raft.term() != term {
                        writeln!(out, "{}: election timer fired after {ticks} ticks", id.0)?;
                        return Ok(out);
                    }
                }
                return Err(format!("peer {} did not campaign within 1000 ticks", id.0).into());
            }
            "advance" => {
                let n: u32 = key!("n", 1);
                let mut ids = positional_nodes(&mut args)?;
                args.reject_next()?;
                if ids.is_empty() {
                    ids = self.ids();
                }
                for _ in 0..n {
                    for &id in &ids {
                        self.raft(id)?.tick();
                    }
                    self.stabilize(&[], &mut out)?;
                }
            }
            "process_ready" => {
                let mut ids = positional_nodes(&mut args)?;
                args.reject_next()?;
                if ids.is_empty() {
                    ids = self.ids();
                }
                for id in ids {
                    self.process_ready(id, &mut out)?;
                }
            }
            "stabilize" => {
                let ids = positional_nodes(&mut args)?;
                args.reject_next()?;
                self.stabilize(&ids, &mut out)?;
            }
            "deliver" | "drop" => {
                let filter = Filter {
                    from: args.take_key("from").map(parse_node).transpose()?,
                    to: args.take_key("to").map(parse_node).transpose()?,
                    kind: args.take_key("kind").map(str::to_string),
                };
                let mut left: usize = key!("n", usize::MAX);
                args.reject_next()?;
                let queue = std::mem::take(&mut self.net()?.queue);
                let mut kept = VecDeque::new();
                for message in queue {
                    if left == 0 || !filter.matches(&message) {
                        kept.push_back(message);
                        continue;
                    }
                    left -= 1;
                    if name == "drop" {
                        writeln!(out, "drop {message}")?;
                    } else {
                        let cut = &self.net()?.cut;
                        let lost = cut.contains(&message.from) || cut.contains(&message.to);
                        let verb = if lost { "lost (cut)" } else { "deliver" };
                        writeln!(out, "{verb} {message}")?;
                        self.deliver(message, &mut out)?;
                    }
                }
                let net = self.net()?;
                kept.extend(net.queue.drain(..));
                net.queue = kept;
            }
            "queue" => {
                args.reject_next()?;
                for message in &self.net()?.queue {
                    writeln!(out, "{message}")?;
                }
            }
            "cut" => {
                let ids = positional_nodes(&mut args)?;
                args.reject_next()?;
                self.net()?.cut.extend(ids);
            }
            "heal" => {
                let ids = positional_nodes(&mut args)?;
                args.reject_next()?;
                let net = self.net()?;
                if ids.is_empty() {
                    net.cut.clear();
                } else {
                    for id in ids {
                        net.cut.remove(&id);
                    }
                }
            }
            "disk" | "apply_mode" => {
                let id = one_node(&mut args)?;
                let mode = args.next_pos().ok_or("hold or auto")?;
                args.reject_next()?;
                let held = match mode {
                    "hold" => true,
                    "auto" => false,
                    other => return Err(format!("hold or auto, not {other:?}").into()),
                };
                let service = self.services.entry(id).or_default();
                if name == "disk" {
                    service.disk_held = held;
                } else {
                    service.apply_held = held;
                }
            }
            "persist" => {
                let id = one_node(&mut args)?;
                let upto: Option<u64> = args.take_key("upto").map(str::parse).transpose()?;
                args.reject_next()?;
                // Every due write is stored, then reported once with the highest id (a
                // batched fsync): `on_persisted(n)` covers every earlier write too.
                let mut last = None;
                loop {
                    let service = self.services.entry(id).or_default();
                    let due = service
                        .held_writes
                        .front()
                        .is_some_and(|write| upto.is_none_or(|upto| write.id <= upto));
                    let Some(write) = due.then(|| service.held_writes.pop_front()).flatten() else {
                        break;
                    };
                    last = Some(write.id);
                    self.raft(id)?.storage_mut().persist(write);
                }
                if let Some(last) = last {
                    writeln!(out, "{}: persisted through #{last}", id.0)?;
                    self.raft(id)?.on_persisted(last);
                }
            }
            "apply" => {
                let id = one_node(&mut args)?;
                args.reject_next()?;
                while let Some(apply) = self
                    .services
                    .entry(id)
                    .or_default()
                    .held_applies
                    .pop_front()
                {
                    match &apply {
                        ToApply::Snapshot(snapshot) => writeln!(
                            out,
                            "{}: applied snapshot {}",
                            id.0, snapshot.meta.last_included
                        )?,
                        ToApply::Entries(entries) => {
                            let list: Vec<String> = entries.iter().map(describe).collect();
                            writeln!(out, "{}: applied {}", id.0, list.join(" "))?;
                        }
                    }
                    self.apply(id, apply)?;
                }
            }
            "propose" => {
                let id = one_node(&mut args)?;
                let mut data = Vec::new();
                while let Some(value) = args.next_pos() {
                    data.push(value.to_string());
                }
                args.reject_next()?;
                if data.is_empty() {
                    return Err("propose needs at least one command".into());
                }
                for value in data {
                    let log_id = self.raft(id)?.propose(Bytes::from(value.clone()))?;
                    writeln!(out, "{}: proposed {value} at {log_id}", id.0)?;
                }
            }
            "conf_change" => {
                let id = one_node(&mut args)?;
                let kind = args.next_pos().ok_or("add_learner, promote or remove")?;
                let node = one_node(&mut args)?;
                args.reject_next()?;
                let change = match kind {
                    "add_learner" => ConfChange::AddLearner(node),
                    "promote" => ConfChange::Promote(node),
                    "remove" => ConfChange::Remove(node),
                    other => return Err(format!("unknown change {other:?}").into()),
                };
                let log_id = self.raft(id)?.propose_conf_change(change)?;
                writeln!(out, "{}: proposed {kind} {} at {log_id}", id.0, node.0)?;
            }
            "transfer" => {
                let id = one_node(&mut args)?;
                let target = one_node(&mut args)?;
                args.reject_next()?;
                self.raft(id)?.transfer_leader(target)?;
            }
            "read_index" | "lease_read" => {
                let id = one_node(&mut args)?;
                let context: u64 = args.next_pos().ok_or("a read context")?.parse()?;
                args.reject_next()?;
                let raft = self.raft(id)?;
                if name == "read_index" {
                    raft.read_index(context)?;
                } else {
                    raft.lease_read(context)?;
                }
            }
            "compact" => {
                let id = one_node(&mut args)?;
                let index: Option<u64> = args.take_key("index").map(str::parse).transpose()?;
                let data = args.take_key("data").ok_or("data=TEXT")?.to_string();
                args.reject_next()?;
                let raft = self.raft(id)?;
                let index = index.map_or_else(|| raft.status().applied, Index);
                raft.compact(index, Bytes::from(data))?;
                writeln!(out, "{}: compacted through {}", id.0, index.0)?;
            }
            "restart" => {
                let id = one_node(&mut args)?;
                let entries: Option<usize> =
                    args.take_key("lose_entries").map(str::parse).transpose()?;
                let term: Option<u64> = args.take_key("term").map(str::parse).transpose()?;
                let vote = match args.take_key("vote") {
                    None | Some("none") => None,
                    Some(vote) => Some(parse_node(vote)?),
                };
                let recover: bool = key!("recover", true);
                args.reject_next()?;
                let loss = (entries.is_some() || term.is_some()).then(|| Loss {
                    entries: entries.unwrap_or(0),
                    hard_state: term.map(|term| HardState {
                        term: Term(term),
                        vote,
                        commit: Index(0),
                    }),
                    recover,
                });
                self.restart(id, loss, &mut out)?;
            }
            "step" => {
                let id = one_node(&mut args)?;
                let from = parse_node(args.take_key("from").ok_or("from=ID")?)?;
                let term: u64 = args.take_key("term").ok_or("term=T")?.parse()?;
                let last = parse_log_id(args.take_key("last").ok_or("last=T.I")?)?;
                let kind = args.next_pos().ok_or("vote or prevote")?;
                args.reject_next()?;
                let pre_vote = match kind {
                    "vote" => false,
                    "prevote" => true,
                    other => return Err(format!("vote or prevote, not {other:?}").into()),
                };
                let message = Message {
                    from,
                    to: id,
                    term: Term(term),
                    body: MessageBody::VoteRequest {
                        last_log: last,
                        pre_vote,
                        leadership_transfer: false,
                    },
                };
                writeln!(out, "step {message}")?;
                if let Err(error) = self.raft(id)?.step(message) {
                    writeln!(out, "{}: step error: {error}", id.0)?;
                }
            }
            "counters" => {
                let id = one_node(&mut args)?;
                args.reject_next()?;
                let counters = self.raft(id)?.counters();
                writeln!(out, "{}: {counters:?}", id.0)?;
            }
            "status" | "log" | "applied" => {
                let mut ids = positional_nodes(&mut args)?;
                args.reject_next()?;
                if ids.is_empty() {
                    ids = self.ids();
                }
                for id in ids {
                    match name {
                        "status" => self.status(id, &mut out)?,
                        "log" => self.log(id, &mut out)?,
                        _ => self.applied(id, &mut out)?,
                    }
                }
            }
            other => return Err(format!("unknown command {other:?}").into()),
        }
        Ok(out)
    }
}

fn positional_nodes(
    args: &mut goldenscript::ArgumentConsumer<'_>,
) -> Result<Vec<NodeId>, Box<dyn Error>> {
    let mut ids = Vec::new();
    while let Some(value) = args.next_pos() {
        ids.push(parse_node(value)?);
    }
    Ok(ids)
}

fn one_node(args: &mut goldenscript::ArgumentConsumer<'_>) -> Result<NodeId, Box<dyn Error>> {
    parse_node(args.next_pos().ok_or("a peer id")?)
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/testdata")
}

/// Set to 1, the expected output of every script run is rewritten instead of compared (read
/// by goldenscript's `goldenfile`; named here to say which scripts were rewritten).
const UPDATE_VARIABLE: &str = "UPDATE_GOLDENFILES";

fn run_script(name: &str) {
    let path = testdata().join(format!("{name}.txt"));
    if std::env::var(UPDATE_VARIABLE).is_ok_and(|value| value == "1") {
        eprintln!("{}: rewriting its expected output", path.display());
    }
    if let Err(error) = goldenscript::run(&mut GoldenRunner::default(), &path) {
        panic!("{}: {error}", path.display());
    }
}

/// One test per script, so a failure names its script.
macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_script(stringify!($name));
            }
        )*

        /// Every script in testdata/ is run by a test above: none is forgotten.
        #[test]
        fn every_script_has_a_test() {
            let listed: BTreeSet<&str> = [$(stringify!($name)),*].into_iter().collect();
            let mut found = BTreeSet::new();
            for entry in std::fs::read_dir(testdata()).expect("testdata is readable") {
                let path = entry.expect("testdata entry").path();
                if let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) {
                    found.insert(stem.to_string());
                }
            }
            let missing: Vec<&String> =
                found.iter().filter(|name| !listed.contains(name.as_str())).collect();
            assert!(missing.is_empty(), "scripts without a test in main.rs: {missing:?}");
        }
    };
}

scripts!(
    basic_election,
    check_quorum,
    durability,
    fast_backtracking,
    flow_control,
    joint_consensus,
    leadership_transfer,
    prevote,
    reads,
    recovery,
    reelection,
    replication,
    snapshot,
    spare_followers,
);
