//! The options of one peer ([`Config`]): its id and seed, timers, limits and protocol
//! switches. Not the cluster's membership, which is [`crate::Configuration`] (`membership.rs`).

use crate::error::ConfigError;
use crate::types::NodeId;

/// How a peer behaves. Every limit is explicit so that no queue or message grows unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This peer's id.
    pub id: NodeId,
    /// Seed of the peer's random generator (election timeouts). Same seed, same inputs: same
    /// outputs.
    pub seed: u64,
    /// The election timeout is drawn uniformly from `[election_ticks, 2 * election_ticks)`
    /// after every reset (§5.2).
    pub election_ticks: u32,
    /// A leader sends heartbeats every this many ticks. Must be below `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Probe with a pre-vote before raising the term (thesis §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum for an election timeout steps down, and
    /// followers that heard from a leader recently ignore vote requests (thesis §6.2, §4.2.3).
    pub check_quorum: bool,
    /// Append messages in flight to one follower before waiting for acknowledgements.
    pub inflight_messages_max: usize,
    /// Of those, appends that carry everything the follower lacks (a partial message, below
    /// `message_bytes_max`) in flight before further ones wait for an answer. Under load a
    /// leader otherwise sends each round's few proposals as a message of their own; waiting
    /// for an answer lets them travel together, and lets the follower answer once. Full
    /// messages (catching a follower up) still fill the whole window. Must be at least 1.
    pub partial_appends_in_flight_max: usize,
    /// Bytes of entries per append message (at least one entry is always sent).
    pub message_bytes_max: u64,
    /// Bytes per snapshot chunk.
    pub snapshot_chunk_bytes: u64,
    /// Bytes of a snapshot a follower accepts from a leader.
    pub snapshot_bytes_max: u64,
    /// Bytes of one proposal; larger ones are refused with `TooLarge`.
    pub proposal_bytes_max: u64,
    /// Bytes of proposed but uncommitted entries a leader holds before refusing proposals with
    /// `Busy`.
    pub uncommitted_bytes_max: u64,
    /// Bytes of committed entries handed out for applying and not yet reported applied with
    /// [`crate::Raft::on_applied`]: a slow service holds back further hand-outs, so the apply
    /// pipeline stays bounded (an entry larger than this still goes out, alone).
    pub apply_bytes_max: u64,
    /// Pending ReadIndex requests a leader holds before refusing more with `Busy`.
    pub pending_reads_max: usize,
    /// The clock-drift margin of lease reads (thesis §6.4.1): a leader whose heartbeat sent at
    /// tick `t` was acknowledged by a majority serves [`crate::Raft::lease_read`] without a
    /// round trip while its tick counter is below `t + election_ticks - lease_margin_ticks`.
    /// One tick covers the unknown phase between two peers' ticks; the rest covers clocks
    /// that run at different rates (2 ticks of 15 tolerate rates about 7% apart). Must be at
    /// least 1 and below `election_ticks`. Leases also need `check_quorum`, which makes
    /// followers honour them.
    pub lease_margin_ticks: u32,
    /// How many entries a learner's match index may trail the leader's last index and still be
    /// promoted to voter ([`crate::ConfChange::Promote`]), so adding a member never stalls
    /// writes: a voter far behind would leave the new majority waiting for it to catch up
    /// (thesis §4.2.1).
    pub promotion_lag_max: u64,
    /// A leader sends new entries to its *spare* followers only every this many ticks, or
    /// once a full message (`message_bytes_max`) has accumulated for one; 0 sends every
    /// follower everything at once. A spare is a voter not needed for a quorum: the leader
    /// and the first followers in id order that keep up (not more than a tick behind the
    /// leader's log at two ticks in a row) already make one, so with three voters one
    /// follower is a spare. Each write is then made durable by a majority rather than by
    /// every peer: where peers share a disk (or a host's I/O budget), a third fdatasync at
    /// the same moment slows the two that commit (on one virtual disk, 3 files syncing at
    /// once take twice as long as one). A spare lags by at most this many ticks, and by no
    /// more than three whatever the setting, since a spare that has not kept up is no
    /// longer prompt and is sent everything; it is flushed at once when it forwards a read,
    /// and is no spare for 20 ticks after it forwards a proposal or a read (it serves clients).
    /// A follower that falls behind (silent, or slowed by its disk) loses its place to a
    /// spare within three ticks. Joint configurations and transfer targets are never spared.
    pub spare_flush_ticks: u32,
    /// Proposals a follower holds forwarded to the leader ([`crate::Raft::propose_or_forward`])
    /// and not yet answered, sent or not; more are refused with `Busy`.
    pub forwards_pending_max: usize,
    /// Proposals in one [`crate::MessageBody::ForwardProposal`]: a follower sends a round's
    /// forwarded proposals in messages of at most this many (and at most `message_bytes_max`
    /// bytes, one proposal at least), and a leader drops a message with more as invalid, which
    /// bounds its work per message.
    pub forward_batch_max: usize,
}

impl Config {
    /// Defaults suited to a 10 ms tick: election timeout 150–300 ms, heartbeat every 30 ms.
    pub fn new(id: NodeId, seed: u64) -> Config {
        Config {
            id,
            seed,
            election_ticks: 15,
            heartbeat_ticks: 3,
            pre_vote: true,
            check_quorum: true,
            inflight_messages_max: 64,
            partial_appends_in_flight_max: 2,
            message_bytes_max: 1024 * 1024,
            snapshot_chunk_bytes: 1024 * 1024,
            snapshot_bytes_max: 4 * 1024 * 1024 * 1024,
            proposal_bytes_max: 8 * 1024 * 1024,
            uncommitted_bytes_max: 256 * 1024 * 1024,
            apply_bytes_max: 16 * 1024 * 1024,
            pending_reads_max: 65_536,
            lease_margin_ticks: 2,
            promotion_lag_max: 1_000,
            spare_flush_ticks: 1,
            forwards_pending_max: 16_384,
            forward_batch_max: 1_024,
        }
    }

    /// Checks the values make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |reason: &str| Err(ConfigError(reason.to_string()));
        if self.id == NodeId(0) {
            return invalid("id must not be 0");
        }
        if self.heartbeat_ticks == 0 {
            return invalid("heartbeat_ticks must be at least 1");
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return invalid("election_ticks must be greater than heartbeat_ticks");
        }
        if self.inflight_messages_max == 0 {
            return invalid("inflight_messages_max must be at least 1");
        }
        if self.partial_appends_in_flight_max == 0 {
            return invalid("partial_appends_in_flight_max must be at least 1");
        }
        if self.message_bytes_max == 0 || self.snapshot_chunk_bytes == 0 {
            return invalid("message_bytes_max and snapshot_chunk_bytes must be at least 1");
        }
        if self.apply_bytes_max == 0 || self.pending_reads_max == 0 {
            return invalid("apply_bytes_max and pending_reads_max must be at least 1");
        }
        if self.lease_margin_ticks == 0 || self.lease_margin_ticks >= self.election_ticks {
            return invalid("lease_margin_ticks must be at least 1 and below election_ticks");
        }
        if self.forwards_pending_max == 0 || self.forward_batch_max == 0 {
            return invalid("forwards_pending_max and forward_batch_max must be at least 1");
        }
        if self.proposal_bytes_max > self.uncommitted_bytes_max {
            return invalid("proposal_bytes_max must not exceed uncommitted_bytes_max");
        }
        Ok(())
    }
}
