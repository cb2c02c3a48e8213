//! The simulated network: who can reach whom, how long a message takes, what gets lost or
//! duplicated, and per-kind message and byte counts.
//!
//! ```text
//!  ready.messages ─► count (kind, bytes) ─► reachable? ── no ──► dropped (sender told: unreachable)
//!                                              │ yes
//!                                              ▼
//!                        unreliable: lost? duplicated? extra delay; responses: long hold-back
//!                                              ▼
//!                               Deliver event(s) at now + delay ─► reachable again at arrival?
//! ```
//!
//! Reachability has three levels: a peer can be disconnected on its own (as in labrpc),
//! connected peers talk only within their partition group, and single directed links can be
//! cut (asymmetric, non-transitive faults).

use rand::Rng;

use crate::config::NetworkConfig;
use crate::SimRng;
use raft_core::MessageBody;

/// Names of the message kinds, in the order of `kind_index`; they match
/// [`MessageBody::kind_name`].
pub const KIND_NAMES: [&str; 18] = [
    "PreVote",
    "Vote",
    "PreVoteResp",
    "VoteResp",
    "Append",
    "AppendResp",
    "Heartbeat",
    "HeartbeatResp",
    "InstallSnapshot",
    "InstallSnapshotResp",
    "TimeoutNow",
    "ReadIndex",
    "ReadIndexResp",
    "Commit",
    "RecoveryProbe",
    "RecoveryProbeResp",
    "ForwardProposal",
    "ForwardProposalResp",
];

fn kind_index(body: &MessageBody) -> usize {
    match body {
        MessageBody::VoteRequest { pre_vote: true, .. } => 0,
        MessageBody::VoteRequest { .. } => 1,
        MessageBody::VoteResponse { pre_vote: true, .. } => 2,
        MessageBody::VoteResponse { .. } => 3,
        MessageBody::Append { .. } => 4,
        MessageBody::AppendResponse { .. } => 5,
        MessageBody::Heartbeat { .. } => 6,
        MessageBody::HeartbeatResponse { .. } => 7,
        MessageBody::InstallSnapshot { .. } => 8,
        MessageBody::InstallSnapshotResponse { .. } => 9,
        MessageBody::TimeoutNow => 10,
        MessageBody::ReadIndexRequest { .. } => 11,
        MessageBody::ReadIndexResponse { .. } => 12,
        MessageBody::Commit { .. } => 13,
        MessageBody::RecoveryProbe => 14,
        MessageBody::RecoveryProbeResponse { .. } => 15,
        MessageBody::ForwardProposal { .. } => 16,
        MessageBody::ForwardProposalResponse { .. } => 17,
    }
}

/// Whether a message kind is a request (an "RPC" in labrpc's counting) rather than an answer.
fn is_request(kind: usize) -> bool {
    matches!(kind, 0 | 1 | 4 | 6 | 8 | 10 | 11 | 13 | 14 | 16)
}

/// Counts for one message kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Bytes handed to the network ([`MessageBody::size_bytes`]).
    pub bytes: u64,
    /// Copies delivered to a live peer.
    pub delivered: u64,
    /// Messages or copies that never arrived.
    pub dropped: u64,
    /// Extra copies the network made.
    pub duplicated: u64,
}

/// Message and byte counts per kind since the cluster started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    kinds: [KindStats; 18],
}

impl NetworkStats {
    /// The counts of the kind named `name` (see [`KIND_NAMES`]); zero for unknown names.
    pub fn kind(&self, name: &str) -> KindStats {
        KIND_NAMES
            .iter()
            .position(|&known| known == name)
            .map(|index| self.kinds[index])
            .unwrap_or_default()
    }

    /// Every kind with its counts.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, KindStats)> + '_ {
        KIND_NAMES.iter().copied().zip(self.kinds.iter().copied())
    }

    /// Requests sent (labrpc's RPC count: answers are not counted).
    pub fn rpc_count(&self) -> u64 {
        self.sum(|kind, stats| if is_request(kind) { stats.sent } else { 0 })
    }

    /// Bytes of requests sent (labrpc's byte count).
    pub fn rpc_bytes(&self) -> u64 {
        self.sum(|kind, stats| if is_request(kind) { stats.bytes } else { 0 })
    }

    /// Messages of every kind sent.
    pub fn messages(&self) -> u64 {
        self.sum(|_, stats| stats.sent)
    }

    /// Bytes of every kind sent.
    pub fn bytes(&self) -> u64 {
        self.sum(|_, stats| stats.bytes)
    }

    fn sum(&self, value: impl Fn(usize, &KindStats) -> u64) -> u64 {
        self.kinds
            .iter()
            .enumerate()
            .map(|(kind, stats)| value(kind, stats))
            .sum()
    }
}

/// What the network does with one message.
pub(crate) enum Fate {
    /// Sender and receiver cannot reach each other.
    Unreachable,
    /// Lost by the unreliable network.
    Lost,
    /// Delivered after each of these delays (two for a duplicate).
    Deliver { delays_us: [u64; 2], copies: usize },
}

/// Reachability, fault settings and counters.
pub(crate) struct Network {
    config: NetworkConfig,
    /// Partition group of each peer; peers talk only within a group.
    group: Vec<u32>,
    /// Whether each peer is attached to the network at all.
    connected: Vec<bool>,
    /// Extra one-way delay of messages from or to each peer (slow peers).
    slow_us: Vec<u64>,
    /// Directed links that carry nothing: (from, to).
    cut_links: std::collections::BTreeSet<(usize, usize)>,
    stats: NetworkStats,
}

impl Network {
    pub(crate) fn new(config: NetworkConfig, peers: usize) -> Network {
        assert!(
            config.delay_min_us <= config.delay_max_us,
            "network delay range is empty"
        );
        Network {
            config,
            group: vec![0; peers],
            connected: vec![true; peers],
            slow_us: vec![0; peers],
            cut_links: Default::default(),
            stats: NetworkStats::default(),
        }
    }

    pub(crate) fn config(&self) -> &NetworkConfig {
        &self.config
    }

    pub(crate) fn stats(&self) -> &NetworkStats {
        &self.stats
    }

    pub(crate) fn set_reliable(&mut self, reliable: bool) {
        self.config.reliable = reliable;
    }

    pub(crate) fn set_long_reordering(&mut self, long_reordering: bool) {
        self.config.long_reordering = long_reordering;
    }

    pub(crate) fn set_slow(&mut self, peer: usize, extra_us: u64) {
        self.slow_us[peer] = extra_us;
    }

    pub(crate) fn is_connected(&self, peer: usize) -> bool {
        self.connected[peer]
    }

    pub(crate) fn set_connected(&mut self, peer: usize, connected: bool) {
        self.connected[peer] = connected;
    }

    /// Puts each listed group of peers in its own partition; unlisted peers are alone.
    pub(crate) fn partition(&mut self, groups: &[Vec<usize>]) {
        let peers = self.group.len();
        for (peer, group) in self.group.iter_mut().enumerate() {
            // Alone unless listed: a group number no listed group uses.
            *group = (groups.len() + peer) as u32;
        }
        for (number, members) in groups.iter().enumerate() {
            for &peer in members {
                assert!(peer < peers, "partition names peer index {peer} of {peers}");
                self.group[peer] = number as u32;
            }
        }
    }

    pub(crate) fn cut_link(&mut self, from: usize, to: usize) {
        self.cut_links.insert((from, to));
    }

    /// Everyone connected, one partition, every link up.
    pub(crate) fn heal(&mut self) {
        self.cut_links.clear();
        self.group.iter_mut().for_each(|group| *group = 0);
        self.connected
            .iter_mut()
            .for_each(|connected| *connected = true);
    }

    pub(crate) fn can_reach(&self, from: usize, to: usize) -> bool {
        self.connected[from]
            && self.connected[to]
            && self.group[from] == self.group[to]
            && !self.cut_links.contains(&(from, to))
    }

    /// Counts a message and decides its fate.
    pub(crate) fn send(
        &mut self,
        from: usize,
        to: usize,
        body: &MessageBody,
        rng: &mut SimRng,
    ) -> Fate {
        let kind = kind_index(body);
        let reachable = self.can_reach(from, to);
        let stats = &mut self.stats.kinds[kind];
        stats.sent += 1;
        stats.bytes += body.size_bytes();
        if !reachable {
            stats.dropped += 1;
            return Fate::Unreachable;
        }
        let config = &self.config;
        if !config.reliable && rng.gen_bool(config.drop_probability) {
            stats.dropped += 1;
            return Fate::Lost;
        }
        let copies = if !config.reliable && rng.gen_bool(config.duplicate_probability) {
            stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut delays_us = [0; 2];
        for delay in delays_us.iter_mut().take(copies) {
            *delay = self.delay_us(from, to, kind, rng);
        }
        Fate::Deliver { delays_us, copies }
    }

    fn delay_us(&self, from: usize, to: usize, kind: usize, rng: &mut SimRng) -> u64 {
        let config = &self.config;
        let mut delay = rng.gen_range(config.delay_min_us..=config.delay_max_us);
        delay += self.slow_us[from] + self.slow_us[to];
        if !config.reliable {
            delay += rng.gen_range(0..=config.extra_delay_max_us);
        }
        if config.long_reordering
            && (config.long_reorder_requests || !is_request(kind))
            && rng.gen_bool(config.long_reorder_probability)
        {
            delay += rng.gen_range(config.long_reorder_min_us..=config.long_reorder_max_us);
        }
        delay
    }

    /// Counts a copy that arrived at a live, reachable peer.
    pub(crate) fn delivered(&mut self, body: &MessageBody) {
        self.stats.kinds[kind_index(body)].delivered += 1;
    }

    /// Counts a copy that was lost on arrival (receiver down or unreachable by then).
    pub(crate) fn dropped_on_arrival(&mut self, body: &MessageBody) {
        self.stats.kinds[kind_index(body)].dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn partitions_separate_groups_and_heal_joins_them() {
        let mut network = Network::new(NetworkConfig::default(), 5);
        network.partition(&[vec![0, 1], vec![2, 3]]);
        assert!(network.can_reach(0, 1));
        assert!(!network.can_reach(1, 2));
        assert!(!network.can_reach(4, 0), "unlisted peers are alone");
        network.set_connected(0, false);
        assert!(!network.can_reach(0, 1));
        network.heal();
        assert!(network.can_reach(0, 4));
    }

    #[test]
    fn kind_names_match_the_core() {
        let body = MessageBody::TimeoutNow;
        assert_eq!(KIND_NAMES[kind_index(&body)], body.kind_name());
        let body = MessageBody::ReadIndexResponse {
            context: 1,
            index: None,
        };
        assert_eq!(KIND_NAMES[kind_index(&body)], body.kind_name());
        let body = MessageBody::Commit {
            commit: raft_core::Index(1),
        };
        assert_eq!(KIND_NAMES[kind_index(&body)], body.kind_name());
        let body = MessageBody::RecoveryProbe;
        assert_eq!(KIND_NAMES[kind_index(&body)], body.kind_name());
        let body = MessageBody::RecoveryProbeResponse {
            last_log: raft_core::LogId::default(),
        };
        assert_eq!(KIND_NAMES[kind_index(&body)], body.kind_name());
    }

    #[test]
    fn reliable_delays_stay_in_range() {
        let mut network = Network::new(NetworkConfig::default(), 2);
        let mut rng = SimRng::seed_from_u64(7);
        for _ in 0..100 {
            match network.send(0, 1, &MessageBody::TimeoutNow, &mut rng) {
                Fate::Deliver { delays_us, copies } => {
                    assert_eq!(copies, 1);
                    assert!((1_000..=5_000).contains(&delays_us[0]));
                }
                _ => panic!("a reliable network delivers"),
            }
        }
        assert_eq!(network.stats().rpc_count(), 100);
    }
}
