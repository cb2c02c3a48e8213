//! The classic tester helpers, mirroring MIT 6.824's `config.go` over virtual time.
//!
//! ```text
//!  check_one_leader ─► run until a connected peer leads (5 s virtual) ─► its id
//!  one(cmd, n, retry) ─► start on connected peers in turn ─► run until n peers applied cmd
//!  n_committed(i) ─► how many services applied index i, and the command there
//!  wait(i, n, term) ─► like 6.824's wait: back off until n applied, give up on a new term
//!  change_membership(c) ─► propose on the connected leader until accepted ─► run until a
//!                          connected leader shows it done, with no change in progress
//! ```
//!
//! Nothing here sleeps: every wait runs virtual time until a condition holds or a deadline
//! passes, and a missed deadline panics with the seed and the trace.

use bytes::Bytes;
use raft_core::{ConfChange, ConfChangeError, Configuration, Index, NodeId, Term};
use rand::Rng;

use crate::cluster::Cluster;

/// Virtual time within which a leader must emerge once a majority can talk (6.824's 5 s).
pub const LEADER_DEADLINE_MS: u64 = 5_000;
/// How long [`Cluster::one`] keeps trying to get a command committed (6.824's 10 s).
pub const AGREEMENT_DEADLINE_MS: u64 = 10_000;
/// How long [`Cluster::one`] waits for one attempt to commit (6.824's 2 s).
pub const ATTEMPT_DEADLINE_MS: u64 = 2_000;

/// How long [`Cluster::change_membership`] keeps trying to complete a change.
pub const MEMBERSHIP_DEADLINE_MS: u64 = 10_000;

/// Whether `configuration` shows `change` done, with no joint phase left.
fn change_done(configuration: &Configuration, change: ConfChange) -> bool {
    if configuration.is_joint() {
        return false;
    }
    match change {
        ConfChange::AddLearner(node) => configuration.is_member(node),
        ConfChange::Promote(node) => configuration.voters.contains(&node),
        ConfChange::Remove(node) => !configuration.is_member(node),
    }
}

/// The bytes of a numeric command (8 bytes, little endian), as the classic tests use.
pub fn command(value: u64) -> Bytes {
    Bytes::copy_from_slice(&value.to_le_bytes())
}

impl Cluster {
    /// A random command drawn from the run's generator: the state machine's
    /// (`StateMachine::random_command`) when the peers run one, else a numeric one.
    pub fn random_command(&mut self) -> Bytes {
        let Some(command) = self.random_machine_command() else {
            let value: u64 = self.rng().gen();
            return command(value);
        };
        let limit = self.config().core.proposal_bytes_max;
        if command.len() as u64 > limit {
            self.fail_scenario(&format!(
                "the state machine's random_command made a command of {} bytes, over the \
                 proposal limit of {limit} bytes (Config::proposal_bytes_max)",
                command.len()
            ));
        }
        command
    }

    /// The peer `offset` places after `peer` in id order (wrapping), so scenarios can pick
    /// "another peer" deterministically.
    pub fn peer_after(&self, peer: NodeId, offset: usize) -> NodeId {
        let ids = self.ids();
        let position = ids.iter().position(|&id| id == peer).unwrap_or(0);
        ids[(position + offset) % ids.len()]
    }

    /// Partitions `leader` and the peer after it away from the rest (a minority in a cluster
    /// of five); returns that peer and the majority side.
    pub fn partition_with_one_follower(&mut self, leader: NodeId) -> (NodeId, Vec<NodeId>) {
        let partner = self.peer_after(leader, 1);
        let majority: Vec<NodeId> = self
            .ids()
            .into_iter()
            .filter(|&id| id != leader && id != partner)
            .collect();
        self.partition(&[&[leader, partner], &majority]);
        (partner, majority)
    }

    /// Peers that run and are attached to the network.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        self.ids()
            .into_iter()
            .filter(|&id| self.is_alive(id) && self.is_connected(id))
            .collect()
    }

    /// The leader of the highest term among connected running peers, if one leads.
    pub fn connected_leader(&self) -> Option<NodeId> {
        self.highest_term_leader(self.connected_peers())
    }

    /// Any running peer that believes it is the leader, with the highest term.
    pub fn any_leader(&self) -> Option<NodeId> {
        self.highest_term_leader(self.ids())
    }

    fn highest_term_leader(&self, peers: Vec<NodeId>) -> Option<NodeId> {
        peers
            .into_iter()
            .filter_map(|id| {
                let (term, is_leader) = self.node(id)?.state();
                is_leader.then_some((term, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Runs until a connected peer is leader (at most [`LEADER_DEADLINE_MS`]) and returns it.
    pub fn check_one_leader(&mut self) -> NodeId {
        self.run_until(
            |cluster| cluster.connected_leader().is_some(),
            LEADER_DEADLINE_MS,
        );
        match self.connected_leader() {
            Some(leader) => leader,
            None => self.fail_scenario(&format!(
                "expected one leader among connected peers within {LEADER_DEADLINE_MS} ms; \
                 peers: {}",
                self.describe_peers()
            )),
        }
    }

    /// Each running peer's role, term, log and configuration, for failure reports.
    pub fn describe_peers(&self) -> String {
        self.ids()
            .into_iter()
            .filter_map(|id| {
                let node = self.node(id)?;
                let configuration = node.configuration();
                Some(format!(
                    "{id} {:?} {} commit {} last {} voters {:?} outgoing {:?} learners {:?}",
                    node.role(),
                    node.term(),
                    node.commit_index(),
                    node.last_index(),
                    configuration.voters,
                    configuration.outgoing,
                    configuration.learners
                ))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Runs until every connected running peer is in the same term (at most 1 s) and
    /// returns that term.
    pub fn check_terms(&mut self) -> Term {
        let agreed = |cluster: &Cluster| {
            let mut terms = cluster
                .connected_peers()
                .into_iter()
                .filter_map(|id| cluster.node(id).map(|node| node.term()));
            let first = terms.next();
            first.filter(|&first| terms.all(|term| term == first))
        };
        self.run_until(|cluster| agreed(cluster).is_some(), 1_000);
        match agreed(self) {
            Some(term) => term,
            None => self.fail_scenario("connected peers disagree on the term"),
        }
    }

    /// Fails unless no connected running peer believes it is the leader.
    pub fn check_no_leader(&self) {
        for id in self.connected_peers() {
            if self.node(id).is_some_and(|node| node.state().1) {
                self.fail_scenario(&format!("{id} is leader, but no leader was expected"));
            }
        }
    }

    /// How many services applied `index`, and the command applied there (6.824's
    /// `nCommitted`; the invariant checkers guarantee all of them agree).
    pub fn n_committed(&self, index: Index) -> (usize, Option<Bytes>) {
        let count = self
            .services()
            .filter(|service| service.applied() >= index)
            .count();
        (count, self.command_at(index).cloned())
    }

    /// Gets `command` committed on at least `expected_servers` peers, proposing it on the
    /// connected peers in turn (6.824's `one`). With `retry`, a failed attempt is retried
    /// until [`AGREEMENT_DEADLINE_MS`]. Returns the index it committed at.
    pub fn one(&mut self, command: Bytes, expected_servers: usize, retry: bool) -> Index {
        let started_ms = self.now_ms();
        let ids = self.ids();
        let mut next = 0;
        while self.now_ms() - started_ms < AGREEMENT_DEADLINE_MS {
            let mut proposed = None;
            for _ in 0..ids.len() {
                next = (next + 1) % ids.len();
                let id = ids[next];
                if self.is_alive(id) && self.is_connected(id) {
                    if let Some(log_id) = self.start(id, command.clone()) {
                        proposed = Some(log_id.index);
                        break;
                    }
                }
            }
            let Some(index) = proposed else {
                self.run_for(50);
                continue;
            };
            let mut lost = false;
            let committed = self.run_until(
                |cluster| {
                    let (count, applied) = cluster.n_committed(index);
                    lost = applied.as_ref().is_some_and(|applied| *applied != command)
                        || (count > 0 && applied.is_none());
                    lost || (count > 0
                        && count >= expected_servers
                        && applied.as_ref() == Some(&command))
                },
                ATTEMPT_DEADLINE_MS,
            );
            if committed && !lost {
                return index;
            }
            if !retry {
                self.fail_scenario(&format!(
                    "one({command:?}) failed to reach agreement on {expected_servers} peers"
                ));
            }
        }
        self.fail_scenario(&format!(
            "one({command:?}) failed to reach agreement on {expected_servers} peers within {AGREEMENT_DEADLINE_MS} ms; peers: {}",
            self.describe_peers()
        ))
    }

    /// Waits for `index` to be applied on `n` peers, backing off as 6.824's `wait` does.
    /// Returns the command there, or `None` if some peer moved past `start_term` (the
    /// proposal may have been lost with its leader).
    pub fn wait(&mut self, index: Index, n: usize, start_term: Option<Term>) -> Option<Bytes> {
        let mut backoff_ms = 10;
        for _ in 0..30 {
            if self.n_committed(index).0 >= n {
                break;
            }
            self.run_for(backoff_ms);
            if backoff_ms < 1_000 {
                backoff_ms *= 2;
            }
            if let Some(start_term) = start_term {
                let moved_on = self
                    .ids()
                    .into_iter()
                    .filter_map(|id| self.node(id))
                    .any(|node| node.term() > start_term);
                if moved_on {
                    return None;
                }
            }
        }
        let (count, command) = self.n_committed(index);
        if count < n {
            self.fail_scenario(&format!("only {count} peers applied {index}, wanted {n}"));
        }
        command
    }

    /// The connected leader and its configuration, if that configuration is the committed
    /// one: the leader has committed an entry of its term (so its log holds every committed
    /// entry, §5.4) and no change is in progress on it. A leader elected on a stale log may
    /// show a configuration that the next leader's log has long replaced.
    fn settled_leader(&self) -> Option<(NodeId, &Configuration)> {
        let leader = self.connected_leader()?;
        let node = self.node(leader)?;
        let committed_in_term = node.term_at(node.commit_index()).ok() == Some(node.term());
        let settled = committed_in_term && !node.configuration_change_in_progress();
        settled.then(|| (leader, node.configuration()))
    }

    /// The settled leader (see `settled_leader`), if its configuration shows `change` done.
    fn leader_done_with(&self, change: ConfChange) -> Option<NodeId> {
        let (leader, configuration) = self.settled_leader()?;
        change_done(configuration, change).then_some(leader)
    }

    /// Makes the membership change `change` (the membership counterpart of
    /// [`Cluster::one`]): proposes it on the connected leader until one accepts it, retrying
    /// after refusals (a change in progress, a learner not caught up, no leader), and runs
    /// until a connected leader shows it done with no change in progress. Returns that
    /// leader. Fails after [`MEMBERSHIP_DEADLINE_MS`].
    pub fn change_membership(&mut self, change: ConfChange) -> NodeId {
        let started_ms = self.now_ms();
        loop {
            if let Some(leader) = self.leader_done_with(change) {
                return leader;
            }
            if self.now_ms() - started_ms >= MEMBERSHIP_DEADLINE_MS {
                self.fail_scenario(&format!(
                    "{change:?} not done within {MEMBERSHIP_DEADLINE_MS} ms; peers: {}",
                    self.describe_peers()
                ));
            }
            let Some(leader) = self.connected_leader() else {
                self.run_for(50);
                continue;
            };
            match self.propose_conf_change(leader, change) {
                Ok(_) => {
                    self.run_until(
                        |cluster| cluster.leader_done_with(change).is_some(),
                        ATTEMPT_DEADLINE_MS,
                    );
                }
                Err(error @ (ConfChangeError::InvalidNode | ConfChangeError::LastVoter(_))) => {
                    self.fail_scenario(&format!("{change:?} is impossible: {error}"))
                }
                Err(_) => self.run_for(20),
            }
        }
    }

    /// Makes every peer a voter again, one change at a time (peers outside the configuration
    /// are added as learners, learners promoted), and returns the leader of the full
    /// configuration. The next change is planned from the leader's configuration each time,
    /// so a change lost with its leader is planned again. Fails unless the full
    /// configuration is in place within three times [`MEMBERSHIP_DEADLINE_MS`].
    pub fn restore_full_membership(&mut self) -> NodeId {
        let full = Configuration::new(self.ids());
        let started_ms = self.now_ms();
        loop {
            if self.now_ms() - started_ms > 3 * MEMBERSHIP_DEADLINE_MS {
                self.fail_scenario(&format!(
                    "the full membership was not restored in time; peers: {}",
                    self.describe_peers()
                ));
            }
            self.check_one_leader();
            let Some((leader, configuration)) = self.settled_leader() else {
                // Wait for the leader to commit in its term and finish any change under way.
                self.run_for(20);
                continue;
            };
            let configuration = configuration.clone();
            if configuration == full {
                return leader;
            }
            let missing = self
                .ids()
                .into_iter()
                .find(|id| !configuration.voters.contains(id));
            let change = match missing {
                Some(node) if configuration.is_learner(node) => ConfChange::Promote(node),
                Some(node) => ConfChange::AddLearner(node),
                None => self.fail_scenario(&format!(
                    "every peer votes, yet the configuration is {configuration:?}"
                )),
            };
            match self.propose_conf_change(leader, change) {
                Ok(_) => {
                    self.run_until(
                        |cluster| cluster.leader_done_with(change).is_some(),
                        ATTEMPT_DEADLINE_MS,
                    );
                }
                Err(_) => self.run_for(20),
            }
        }
    }

    /// Entries held in `peer`'s storage (the durable log beyond its snapshot).
    pub fn log_size(&self, peer: NodeId) -> usize {
        let Some(node) = self.node(peer) else {
            return 0;
        };
        match node.storage().stored_entry_count() {
            Ok(count) => count as usize,
            Err(error) => self.fail_scenario(&format!("{peer} cannot read its log: {error}")),
        }
    }

    /// The largest [`Cluster::log_size`] over running peers.
    pub fn max_log_size(&self) -> usize {
        self.ids()
            .into_iter()
            .map(|id| self.log_size(id))
            .max()
            .unwrap_or(0)
    }

    /// Requests sent so far (labrpc's RPC count: responses are not counted).
    pub fn rpc_total(&self) -> u64 {
        self.network_stats().rpc_count()
    }

    /// Bytes of requests sent so far (labrpc's byte count).
    pub fn bytes_total(&self) -> u64 {
        self.network_stats().rpc_bytes()
    }

    /// Runs until a leader is elected among the connected peers, it has committed an entry
    /// of its term, and every connected running peer applied through that entry; returns the
    /// leader. Fails after `deadline_ms`.
    pub fn wait_for_stable_leader(&mut self, deadline_ms: u64) -> NodeId {
        let stable = |cluster: &Cluster| {
            let leader = cluster.connected_leader()?;
            let node = cluster.node(leader)?;
            let commit = node.commit_index();
            let term_committed = node.term_at(commit).ok()? == node.term();
            let all_applied = cluster
                .connected_peers()
                .into_iter()
                .all(|id| cluster.service(id).applied() >= commit);
            (term_committed && all_applied).then_some(leader)
        };
        self.run_until(|cluster| stable(cluster).is_some(), deadline_ms);
        match stable(self) {
            Some(leader) => leader,
            None => self.fail_scenario(&format!(
                "no stable leader (committed in its term, applied everywhere) within {deadline_ms} ms"
            )),
        }
    }
}

/// Where an [`Agreement`] stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgreementState {
    /// Still trying.
    Pending,
    /// Committed at this index on enough peers.
    Committed(Index),
    /// Gave up; the text says why.
    Failed(String),
}

/// One client's `one()` as a step-by-step state machine, so several can run at once (the
/// classic tests run `one()` in goroutines).
#[derive(Clone, Debug)]
pub struct Agreement {
    command: Bytes,
    expected_servers: usize,
    retry: bool,
    started_ms: u64,
    next_peer: usize,
    /// The index proposed at, and when.
    attempt: Option<(Index, u64)>,
    idle_until_ms: u64,
}

impl Agreement {
    /// A client that wants `command` committed on `expected_servers` peers.
    pub fn new(
        cluster: &Cluster,
        command: Bytes,
        expected_servers: usize,
        retry: bool,
    ) -> Agreement {
        Agreement {
            command,
            expected_servers,
            retry,
            started_ms: cluster.now_ms(),
            next_peer: 0,
            attempt: None,
            idle_until_ms: 0,
        }
    }

    /// Advances the client: checks its attempt, or proposes again.
    pub fn poll(&mut self, cluster: &mut Cluster) -> AgreementState {
        let now_ms = cluster.now_ms();
        if let Some((index, since_ms)) = self.attempt {
            let (count, applied) = cluster.n_committed(index);
            let lost = match &applied {
                Some(applied) => *applied != self.command,
                None => count > 0,
            };
            if !lost && count >= self.expected_servers.max(1) {
                return AgreementState::Committed(index);
            }
            if !lost && now_ms - since_ms < ATTEMPT_DEADLINE_MS {
                return AgreementState::Pending;
            }
            if !self.retry {
                return AgreementState::Failed(format!(
                    "{:?} did not reach agreement on {} peers",
                    self.command, self.expected_servers
                ));
            }
            self.attempt = None;
        }
        if now_ms - self.started_ms >= AGREEMENT_DEADLINE_MS {
            return AgreementState::Failed(format!(
                "{:?} did not reach agreement on {} peers within {AGREEMENT_DEADLINE_MS} ms",
                self.command, self.expected_servers
            ));
        }
        if now_ms < self.idle_until_ms {
            return AgreementState::Pending;
        }
        let ids = cluster.ids();
        for _ in 0..ids.len() {
            self.next_peer = (self.next_peer + 1) % ids.len();
            let id = ids[self.next_peer];
            if cluster.is_alive(id) && cluster.is_connected(id) {
                if let Some(log_id) = cluster.start(id, self.command.clone()) {
                    self.attempt = Some((log_id.index, now_ms));
                    return AgreementState::Pending;
                }
            }
        }
        self.idle_until_ms = now_ms + 50;
        AgreementState::Pending
    }
}

impl Cluster {
    /// Runs several `one()`s at once (each a client retrying on its own) and returns the
    /// index each committed at; fails if any gives up.
    pub fn one_concurrently(&mut self, requests: Vec<(Bytes, usize, bool)>) -> Vec<Index> {
        let mut clients: Vec<Agreement> = requests
            .into_iter()
            .map(|(command, expected, retry)| Agreement::new(self, command, expected, retry))
            .collect();
        let mut done: Vec<Option<Index>> = vec![None; clients.len()];
        loop {
            for (client, slot) in clients.iter_mut().zip(done.iter_mut()) {
                if slot.is_some() {
                    continue;
                }
                match client.poll(self) {
                    AgreementState::Pending => {}
                    AgreementState::Committed(index) => *slot = Some(index),
                    AgreementState::Failed(why) => self.fail_scenario(&why),
                }
            }
            if done.iter().all(Option::is_some) {
                return done.into_iter().flatten().collect();
            }
            self.run_for(1);
        }
    }
}
