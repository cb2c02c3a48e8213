//! Safety invariants, one checker per concern, consulted after every simulated event.
//!
//! ```text
//!  event ─► cluster updates peer p ─┬─ ElectionSafety      at most one leader per term
//!                                    ├─ LeaderAppendOnly    a leader only appends in its term
//!                                    ├─ LogMatching         one content per LogId, one predecessor
//!                                    ├─ membership steps    configuration entries decode, are
//!                                    │                      valid and change one peer at a time
//!                                    ├─ CommittedEntries    a committed index never changes term
//!                                    ├─ durable majority    committed ⇒ on a majority of the
//!                                    │                      voters' disks (of both sets while
//!                                    │                      joint), read back intact from each
//!                                    ├─ durable before answer  votes and acks only once on disk
//!                                    ├─ LeaderCompleteness  a new leader holds every committed entry
//!                                    ├─ StateMachineSafety  one command and one state per index
//!                                    ├─ IndexMonotonic      commit and applied never go back
//!                                    ├─ DurableVote         one durable vote per term, terms grow
//!                                    ├─ ReadLinearizability ReadIndex ≥ everything committed before
//!                                    └─ Acknowledged        acked writes reach every peer (liveness)
//! ```
//!
//! A checker returns a [`Violation`]; the cluster turns it into a panic that names the
//! invariant, the seed and the recent trace. Checkers see the whole history of the run, across
//! crashes, so "two peers applied different commands at one index" is caught even when the two
//! never ran at the same time.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use raft_core::{
    Configuration, Entry, EntryKind, HardState, Index, LogId, Message, NodeId, Raft, Storage,
    StorageError, Term,
};

use crate::trace::hash_bytes;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: &'static str,
    /// What was observed.
    pub detail: String,
}

/// The result of one check.
pub type Check = Result<(), Violation>;

fn violated(invariant: &'static str, detail: String) -> Check {
    Err(Violation { invariant, detail })
}

/// At most one leader per term, ever (Raft paper §5.2, Election Safety).
#[derive(Default)]
pub(crate) struct ElectionSafety {
    leaders: BTreeMap<Term, NodeId>,
}

impl ElectionSafety {
    pub(crate) fn observe(&mut self, peer: NodeId, term: Term, is_leader: bool) -> Check {
        if !is_leader {
            return Ok(());
        }
        let leader = *self.leaders.entry(term).or_insert(peer);
        if leader != peer {
            return violated(
                "election-safety",
                format!("{peer} and {leader} were both leader in {term}"),
            );
        }
        Ok(())
    }

    /// Terms that had a leader.
    pub(crate) fn terms_with_leader(&self) -> usize {
        self.leaders.len()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct EntryFacts {
    content: u64,
    previous_term: Option<Term>,
    first_seen_on: NodeId,
}

/// A leader never overwrites or deletes entries in its log during its term (§5.3,
/// Leader Append-Only): its writes only ever append after what it wrote before.
#[derive(Default)]
pub(crate) struct LeaderAppendOnly {
    /// Per peer: (incarnation, term, last index written while leader).
    written: BTreeMap<NodeId, (u64, Term, Index)>,
}

impl LeaderAppendOnly {
    pub(crate) fn on_write(
        &mut self,
        peer: NodeId,
        incarnation: u64,
        (term, is_leader): (Term, bool),
        entries: &[Entry],
    ) -> Check {
        if !is_leader {
            self.written.remove(&peer);
            return Ok(());
        }
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        if let Some(&(seen_incarnation, seen_term, seen_last)) = self.written.get(&peer) {
            if (seen_incarnation, seen_term) == (incarnation, term) && first.index() <= seen_last {
                return violated(
                    "leader-append-only",
                    format!(
                        "leader {peer} of {term} rewrites {} after writing through {seen_last}",
                        first.id
                    ),
                );
            }
        }
        self.written.insert(peer, (incarnation, term, last.index()));
        Ok(())
    }
}

/// Every entry that reaches any peer's log has one content and one predecessor per `LogId`
/// (§5.3, Log Matching; the predecessor check makes it hold for whole prefixes by induction).
#[derive(Default)]
pub(crate) struct LogMatching {
    entries: BTreeMap<(Index, Term), EntryFacts>,
}

impl LogMatching {
    /// Records entries a peer is about to make durable; `previous` is the id of the entry
    /// before the first one in that peer's log, when it is known (not compacted).
    pub(crate) fn record(
        &mut self,
        peer: NodeId,
        previous: Option<LogId>,
        entries: &[Entry],
    ) -> Check {
        let mut previous = previous;
        for entry in entries {
            if let Some(previous) = previous {
                if previous.index.next() != entry.index() {
                    return violated(
                        "log-contiguous",
                        format!("{peer} persists {} right after {previous}", entry.id),
                    );
                }
            }
            let content = content_hash(entry);
            let facts = EntryFacts {
                content,
                previous_term: previous.map(|previous| previous.term),
                first_seen_on: peer,
            };
            let known = *self
                .entries
                .entry((entry.index(), entry.term()))
                .or_insert(facts);
            if known.content != content {
                return violated(
                    "log-matching",
                    format!(
                        "{peer} holds {} with other content than {} had",
                        entry.id, known.first_seen_on
                    ),
                );
            }
            if let (Some(known_term), Some(term)) = (known.previous_term, facts.previous_term) {
                if known_term != term {
                    return violated(
                        "log-matching",
                        format!(
                            "{peer} holds {} after an entry of t{}, {} had it after t{}",
                            entry.id, term.0, known.first_seen_on, known_term.0
                        ),
                    );
                }
            }
            previous = Some(entry.id);
        }
        Ok(())
    }

    /// The content hash of the entry first recorded at `id`.
    pub(crate) fn content(&self, id: LogId) -> Option<u64> {
        self.entries
            .get(&(id.index, id.term))
            .map(|facts| facts.content)
    }

    /// Distinct entries seen.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Configuration entries are well formed and each changes one peer at a time (thesis §4.3):
/// a joint configuration's two voter sets differ by one peer, and consecutive configuration
/// entries of one write go from a stable configuration to its joint one (the old voters
/// outgoing), from a joint one to its C_new, or add or remove one learner.
pub(crate) fn check_membership_steps(peer: NodeId, entries: &[Entry]) -> Check {
    let mut previous: Option<(LogId, Configuration)> = None;
    for entry in entries {
        if entry.kind != EntryKind::Configuration {
            continue;
        }
        let configuration = match Configuration::decode(&entry.data) {
            Ok(configuration) => configuration,
            Err(error) => {
                return violated(
                    "configuration-entry-valid",
                    format!(
                        "{peer} writes configuration entry {} that does not decode: {error}",
                        entry.id
                    ),
                )
            }
        };
        if configuration.voters.is_empty() {
            return violated(
                "configuration-entry-valid",
                format!(
                    "{peer} writes configuration entry {} without voters",
                    entry.id
                ),
            );
        }
        if configuration.is_joint()
            && configuration
                .voters
                .symmetric_difference(&configuration.outgoing)
                .count()
                != 1
        {
            return violated(
                "membership-one-peer-at-a-time",
                format!("{peer} writes joint configuration {} changing more than one voter: {configuration:?}", entry.id),
            );
        }
        if let Some((previous_id, before)) = &previous {
            let legal = if configuration.is_joint() {
                !before.is_joint() && configuration.outgoing == before.voters
            } else if before.is_joint() {
                configuration.voters == before.voters && configuration.learners == before.learners
            } else {
                configuration.voters == before.voters
                    && configuration
                        .learners
                        .symmetric_difference(&before.learners)
                        .count()
                        == 1
            };
            if !legal {
                return violated(
                    "membership-one-peer-at-a-time",
                    format!(
                        "{peer} writes {} ({configuration:?}) right after {previous_id} ({before:?})",
                        entry.id
                    ),
                );
            }
        }
        previous = Some((entry.id, configuration));
    }
    Ok(())
}

fn content_hash(entry: &Entry) -> u64 {
    let kind = match entry.kind {
        EntryKind::Normal => 1,
        EntryKind::Noop => 2,
        EntryKind::Configuration => 3,
    };
    hash_bytes(&entry.data) ^ kind
}

/// What is known committed: the term at every index any peer has counted as committed. Once
/// committed, an index never holds another entry (State Machine Safety, §5.4.3).
#[derive(Default)]
pub(crate) struct CommittedEntries {
    terms: BTreeMap<Index, Term>,
    /// Per peer: (incarnation, commit index already scanned).
    scanned: BTreeMap<NodeId, (u64, Index)>,
    max: Index,
    /// Indexes learned committed since the last [`CommittedEntries::take_fresh`], with the
    /// configuration in effect on the peer that first counted each committed.
    fresh: Vec<(LogId, Configuration)>,
}

impl CommittedEntries {
    /// Scans the part of `node`'s log that became committed since the last call.
    pub(crate) fn observe<S: Storage>(&mut self, node: &Raft<S>, incarnation: u64) -> Check {
        let peer = node.id();
        let commit = node.commit_index();
        let scanned = self.scanned.entry(peer).or_insert((incarnation, Index(0)));
        if scanned.0 != incarnation {
            *scanned = (incarnation, Index(0));
        }
        if commit <= scanned.1 {
            return Ok(());
        }
        let from = scanned.1.next();
        scanned.1 = commit;
        for index in from.0..=commit.0 {
            // Compacted entries were checked when they were committed.
            if let Ok(term) = node.term_at(Index(index)) {
                self.record(peer, LogId::new(term, Index(index)), node.configuration())?;
            }
        }
        Ok(())
    }

    /// Records that `id` is committed, as `peer` knows, whose configuration in effect is
    /// `configuration`.
    pub(crate) fn record(
        &mut self,
        peer: NodeId,
        id: LogId,
        configuration: &Configuration,
    ) -> Check {
        if id.index == Index(0) {
            return Ok(());
        }
        let known = *self.terms.entry(id.index).or_insert_with(|| {
            self.fresh.push((id, configuration.clone()));
            id.term
        });
        if known != id.term {
            return violated(
                "committed-entry-stable",
                format!(
                    "{peer} has {id} committed, but t{} was committed at that index before",
                    known.0
                ),
            );
        }
        self.max = self.max.max(id.index);
        Ok(())
    }

    /// The highest index known committed.
    pub(crate) fn max(&self) -> Index {
        self.max
    }

    /// Entries that became known committed since the last call, with the configuration of
    /// the peer that first counted each.
    pub(crate) fn take_fresh(&mut self) -> Vec<(LogId, Configuration)> {
        std::mem::take(&mut self.fresh)
    }

    /// Committed entries of terms before `term` above `floor`.
    fn before_term(&self, term: Term, floor: Index) -> impl Iterator<Item = (Index, Term)> + '_ {
        self.terms
            .range(floor.next()..)
            .map(|(&index, &entry_term)| (index, entry_term))
            .filter(move |&(_, entry_term)| entry_term < term)
    }
}

/// An entry is committed only once a majority of voters hold it durably (§5.3: "replicated it
/// on a majority"), so no combination of crashes can lose it. Checked the moment any peer
/// first counts it committed — that peer is the leader that committed it, and `configuration`
/// its configuration in effect: a majority of its voters and, while it is joint, of its
/// outgoing voters too (thesis §4.3). Learners' and other peers' disks do not count. (When the
/// commit let the leader leave a joint configuration in the same step, `configuration` is
/// C_new, whose voters are the joint configuration's incoming ones: the check is weaker than
/// the rule the leader applied, never stronger.) A disk holding the entry must give back the
/// content first written at `id` (`content`, from [`LogMatching::content`]) through
/// [`Storage::entries`], which reads a write-ahead log's segment files.
pub(crate) fn check_durable_majority<'a>(
    id: LogId,
    content: Option<u64>,
    disks: impl Iterator<Item = (NodeId, &'a dyn Storage)>,
    configuration: &Configuration,
) -> Check {
    let mut holding = BTreeSet::new();
    for (peer, disk) in disks {
        match disk.term(id.index) {
            Ok(term) if term == id.term => {
                check_stored_content(peer, disk, id, content)?;
                holding.insert(peer);
            }
            Ok(_) | Err(StorageError::Unavailable(_)) => {}
            // A snapshot beyond the index covers it.
            Err(StorageError::Compacted(_)) => {
                holding.insert(peer);
            }
            Err(StorageError::Failed(reason)) => {
                return violated(
                    "storage-never-fails",
                    format!("{peer} cannot read the term at {}: {reason}", id.index),
                )
            }
        }
    }
    let held_by_majority = |voters: &BTreeSet<NodeId>| {
        let held = voters.intersection(&holding).count();
        (held * 2 > voters.len(), held)
    };
    let sets = [
        ("voters", &configuration.voters),
        ("outgoing voters", &configuration.outgoing),
    ];
    for (name, voters) in sets {
        if voters.is_empty() && name == "outgoing voters" {
            continue;
        }
        let (majority, held) = held_by_majority(voters);
        if !majority {
            return violated(
                "commit-durable-on-majority",
                format!(
                    "{id} counted committed while only {held} of the {} {name} {voters:?} hold it \
                     on disk (disks holding it: {holding:?}; configuration {configuration:?})",
                    voters.len()
                ),
            );
        }
    }
    Ok(())
}

/// The entry `peer`'s disk gives back at `id` has the content first written there.
fn check_stored_content(
    peer: NodeId,
    disk: &dyn Storage,
    id: LogId,
    content: Option<u64>,
) -> Check {
    let Some(content) = content else {
        return Ok(());
    };
    match disk.entries(id.index, id.index.next(), u64::MAX) {
        Ok(entries) => match entries.first() {
            Some(entry) if entry.id == id && content_hash(entry) == content => Ok(()),
            Some(entry) => violated(
                "durable-entry-intact",
                format!(
                    "{peer}'s disk gives back {} with other content where {id} was written",
                    entry.id
                ),
            ),
            None => violated(
                "durable-entry-intact",
                format!("{peer}'s disk has the term of {id} but returns no entry"),
            ),
        },
        // The term came from the metadata of a snapshot through exactly this index.
        Err(StorageError::Compacted(_)) => Ok(()),
        Err(error) => violated(
            "storage-never-fails",
            format!("{peer} cannot read {id} back: {error}"),
        ),
    }
}

/// A peer answers only for what is on its disk (Raft paper Figure 2: persistent state is
/// updated "before responding to RPCs"): a granted vote is in the durable hard state, and a
/// successful append or snapshot acknowledgment covers only entries the disk holds, with the
/// same terms as the peer's log.
pub(crate) fn check_durable_before_answer<S: Storage>(
    message: &Message,
    node: &Raft<S>,
    disk: &dyn Storage,
) -> Check {
    use raft_core::MessageBody;
    // The core holds answers back until their write is durable, so one may leave after the
    // peer moved to a later term and overwrote what it answered for. Within one term a vote
    // never changes and an acknowledged prefix only grows, so answers of the current term
    // can be checked against the disk exactly. Older ones are not checked here; the
    // durable-majority check at commit time covers what they could break.
    if message.term != node.term() {
        return Ok(());
    }
    let holds = |id: LogId| match disk.term(id.index) {
        Ok(term) => term == id.term,
        Err(StorageError::Compacted(_)) => true,
        Err(_) => false,
    };
    match &message.body {
        MessageBody::VoteResponse {
            granted: true,
            pre_vote: false,
        } => {
            let durable = match disk.initial_state() {
                Ok(state) => state.hard_state,
                Err(error) => {
                    return violated(
                        "storage-never-fails",
                        format!("{} cannot read its hard state: {error}", message.from),
                    )
                }
            };
            if durable.term != message.term || durable.vote != Some(message.to) {
                return violated(
                    "durable-before-answer",
                    format!(
                        "{} granted its vote in {} to {} before persisting it (disk: {:?})",
                        message.from, message.term, message.to, durable
                    ),
                );
            }
        }
        MessageBody::AppendResponse {
            index,
            success: true,
            ..
        } if *index > Index(0) => {
            let id = match node.term_at(*index) {
                Ok(term) => LogId::new(term, *index),
                // Compacted in memory: a snapshot through it is on its way to disk at least.
                Err(_) => return Ok(()),
            };
            if !holds(id) {
                return violated(
                    "durable-before-answer",
                    format!(
                        "{} acknowledged {id} to {} before its disk held it",
                        message.from, message.to
                    ),
                );
            }
        }
        MessageBody::InstallSnapshotResponse {
            last_included,
            done: true,
            ..
        } if !holds(*last_included) => {
            return violated(
                "durable-before-answer",
                format!(
                    "{} acknowledged snapshot {last_included} to {} before its disk held it",
                    message.from, message.to
                ),
            );
        }
        _ => {}
    }
    Ok(())
}

/// A peer that becomes leader holds every entry committed in earlier terms (§5.4, Leader
/// Completeness), except those its snapshot covers.
#[derive(Default)]
pub(crate) struct LeaderCompleteness {
    checked: BTreeSet<(Term, NodeId)>,
}

impl LeaderCompleteness {
    pub(crate) fn observe<S: Storage>(
        &mut self,
        node: &Raft<S>,
        committed: &CommittedEntries,
    ) -> Check {
        let (term, is_leader) = node.state();
        if !is_leader || !self.checked.insert((term, node.id())) {
            return Ok(());
        }
        let floor = node.status().snapshot_index;
        for (index, entry_term) in committed.before_term(term, floor) {
            match node.term_at(index) {
                Ok(held) if held == entry_term => {}
                Ok(held) => {
                    return violated(
                        "leader-completeness",
                        format!(
                        "{} became leader in {term} holding t{} at {index}, where t{} is committed",
                        node.id(),
                        held.0,
                        entry_term.0
                    ),
                    )
                }
                Err(error) => {
                    return violated(
                        "leader-completeness",
                        format!(
                            "{} became leader in {term} without committed entry {} ({error})",
                            node.id(),
                            LogId::new(entry_term, index)
                        ),
                    )
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
struct AppliedFacts {
    id: LogId,
    command: Option<Bytes>,
    first_applied_by: NodeId,
}

/// No two peers apply different entries at one index, and no two reach different states at
/// one index (§5.4.3, State Machine Safety), across restarts and snapshots.
#[derive(Default)]
pub(crate) struct StateMachineSafety {
    applied: BTreeMap<Index, AppliedFacts>,
    /// The service digest after applying through each index.
    digests: BTreeMap<Index, u64>,
}

impl StateMachineSafety {
    pub(crate) fn on_apply(&mut self, peer: NodeId, entry: &Entry, digest_after: u64) -> Check {
        let command = (entry.kind == EntryKind::Normal).then(|| entry.data.clone());
        let known = self
            .applied
            .entry(entry.index())
            .or_insert_with(|| AppliedFacts {
                id: entry.id,
                command: command.clone(),
                first_applied_by: peer,
            });
        if known.id != entry.id || known.command != command {
            return violated(
                "state-machine-safety",
                format!(
                    "{peer} applied {} ({:?}), but {} applied {} at that index",
                    entry.id, entry.kind, known.first_applied_by, known.id
                ),
            );
        }
        self.check_digest(peer, entry.index(), digest_after)
    }

    pub(crate) fn on_restore(&mut self, peer: NodeId, index: Index, digest: u64) -> Check {
        self.check_digest(peer, index, digest)
    }

    fn check_digest(&mut self, peer: NodeId, index: Index, digest: u64) -> Check {
        let known = *self.digests.entry(index).or_insert(digest);
        if known != digest {
            return violated(
                "state-machine-safety",
                format!("{peer} reached another service state at {index} than an earlier peer"),
            );
        }
        Ok(())
    }

    /// The command applied at `index`, if any peer applied a normal entry there.
    pub(crate) fn command_at(&self, index: Index) -> Option<&Bytes> {
        self.applied
            .get(&index)
            .and_then(|facts| facts.command.as_ref())
    }

    /// The highest index any peer applied.
    pub(crate) fn max_applied(&self) -> Index {
        self.applied.keys().next_back().copied().unwrap_or_default()
    }
}

/// Within one incarnation of a peer, the commit and applied indexes never decrease.
#[derive(Default)]
pub(crate) struct IndexMonotonic {
    seen: BTreeMap<NodeId, (u64, Index, Index)>,
}

impl IndexMonotonic {
    pub(crate) fn observe(
        &mut self,
        peer: NodeId,
        incarnation: u64,
        commit: Index,
        applied: Index,
    ) -> Check {
        let seen = self
            .seen
            .entry(peer)
            .or_insert((incarnation, commit, applied));
        if seen.0 == incarnation {
            if commit < seen.1 {
                return violated(
                    "commit-monotonic",
                    format!("{peer} commit index went back from {} to {commit}", seen.1),
                );
            }
            if applied < seen.2 {
                return violated(
                    "applied-monotonic",
                    format!(
                        "{peer} applied index went back from {} to {applied}",
                        seen.2
                    ),
                );
            }
        }
        *seen = (incarnation, commit, applied);
        Ok(())
    }
}

/// What a peer made durable: its term never decreases, and it never records two votes in one
/// term, across crashes (§5.2: "each server will vote for at most one candidate in a term").
#[derive(Default)]
pub(crate) struct DurableVote {
    durable: BTreeMap<NodeId, HardState>,
}

impl DurableVote {
    pub(crate) fn on_persisted(&mut self, peer: NodeId, hard_state: HardState) -> Check {
        let Some(previous) = self.durable.insert(peer, hard_state) else {
            return Ok(());
        };
        if hard_state.term < previous.term {
            return violated(
                "durable-term-monotonic",
                format!(
                    "{peer} persisted {} after {}",
                    hard_state.term, previous.term
                ),
            );
        }
        if hard_state.term == previous.term
            && previous.vote.is_some()
            && hard_state.vote != previous.vote
        {
            return violated(
                "durable-vote-once",
                format!(
                    "{peer} persisted vote {:?} in {} after voting {:?}",
                    hard_state.vote, hard_state.term, previous.vote
                ),
            );
        }
        Ok(())
    }
}

/// A ReadIndex answer is at least every index known committed when the read began, so a read
/// served at it reflects every write completed before (thesis §6.4).
#[derive(Default)]
pub(crate) struct ReadLinearizability {
    pending: BTreeMap<u64, (NodeId, Index)>,
    served: u64,
}

impl ReadLinearizability {
    pub(crate) fn begin(&mut self, context: u64, peer: NodeId, committed: Index) {
        self.pending.insert(context, (peer, committed));
    }

    pub(crate) fn complete(&mut self, context: u64, peer: NodeId, index: Index) -> Check {
        let Some((origin, floor)) = self.pending.remove(&context) else {
            return violated(
                "read-index-answered-once",
                format!("{peer} got read {context} that is not pending"),
            );
        };
        if origin != peer {
            return violated(
                "read-index-answered-once",
                format!("read {context} of {origin} completed on {peer}"),
            );
        }
        if index < floor {
            return violated(
                "read-index-linearizable",
                format!(
                    "read {context} on {peer} answered {index}, but {floor} was committed before it began"
                ),
            );
        }
        self.served += 1;
        Ok(())
    }

    pub(crate) fn fail(&mut self, context: u64) {
        self.pending.remove(&context);
    }

    /// Forgets the reads of a crashed peer.
    pub(crate) fn forget_peer(&mut self, peer: NodeId) {
        self.pending.retain(|_, (origin, _)| *origin != peer);
    }

    pub(crate) fn served(&self) -> u64 {
        self.served
    }
}

/// Writes a client was told are committed (its proposal was applied where it proposed it).
/// Liveness: once faults stop, every live peer applies all of them.
#[derive(Default)]
pub(crate) struct Acknowledged {
    writes: BTreeMap<Index, u64>,
}

impl Acknowledged {
    pub(crate) fn record(&mut self, index: Index, command_hash: u64) {
        self.writes.insert(index, command_hash);
    }

    pub(crate) fn count(&self) -> usize {
        self.writes.len()
    }

    /// The highest acknowledged index.
    pub(crate) fn max(&self) -> Index {
        self.writes.keys().next_back().copied().unwrap_or_default()
    }

    /// Every acknowledged write is what the cluster applied at its index.
    pub(crate) fn check_applied(&self, applied: &StateMachineSafety) -> Check {
        for (&index, &hash) in &self.writes {
            let held = applied.command_at(index).map(|command| hash_bytes(command));
            if held != Some(hash) {
                return violated(
                    "acknowledged-writes-durable",
                    format!("the write acknowledged at {index} is not what was applied there"),
                );
            }
        }
        Ok(())
    }
}

/// All checkers of a run.
#[derive(Default)]
pub(crate) struct Invariants {
    pub(crate) election: ElectionSafety,
    pub(crate) append_only: LeaderAppendOnly,
    pub(crate) log_matching: LogMatching,
    pub(crate) committed: CommittedEntries,
    pub(crate) completeness: LeaderCompleteness,
    pub(crate) state_machine: StateMachineSafety,
    pub(crate) monotonic: IndexMonotonic,
    pub(crate) durable: DurableVote,
    pub(crate) reads: ReadLinearizability,
    pub(crate) acknowledged: Acknowledged,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: u64, index: u64, data: &'static [u8]) -> Entry {
        Entry {
            id: LogId::new(Term(term), Index(index)),
            kind: EntryKind::Normal,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn election_safety_catches_two_leaders_in_a_term() {
        let mut checker = ElectionSafety::default();
        assert!(checker.observe(NodeId(1), Term(2), true).is_ok());
        assert!(checker.observe(NodeId(1), Term(2), true).is_ok());
        assert!(checker.observe(NodeId(2), Term(3), true).is_ok());
        let error = checker
            .observe(NodeId(3), Term(2), true)
            .expect_err("two leaders");
        assert_eq!(error.invariant, "election-safety");
    }

    #[test]
    fn log_matching_catches_content_and_predecessor_conflicts() {
        let mut checker = LogMatching::default();
        let start = Some(LogId::default());
        assert!(checker
            .record(NodeId(1), start, &[entry(1, 1, b"a"), entry(1, 2, b"b")])
            .is_ok());
        assert!(checker
            .record(
                NodeId(2),
                Some(LogId::new(Term(1), Index(1))),
                &[entry(1, 2, b"b")]
            )
            .is_ok());
        assert!(checker
            .record(NodeId(3), None, &[entry(1, 2, b"X")])
            .is_err());
        assert!(checker
            .record(
                NodeId(3),
                Some(LogId::new(Term(0), Index(1))),
                &[entry(1, 2, b"b")]
            )
            .is_err());
    }

    #[test]
    fn state_machine_safety_catches_divergent_applies() {
        let mut checker = StateMachineSafety::default();
        assert!(checker.on_apply(NodeId(1), &entry(1, 1, b"a"), 7).is_ok());
        assert!(checker.on_apply(NodeId(2), &entry(1, 1, b"a"), 7).is_ok());
        assert!(checker.on_apply(NodeId(3), &entry(2, 1, b"a"), 7).is_err());
        assert!(checker.on_restore(NodeId(3), Index(1), 8).is_err());
    }

    #[test]
    fn membership_steps_catch_two_changes_at_once() {
        let configuration_entry = |index: u64, configuration: &Configuration| Entry {
            id: LogId::new(Term(1), Index(index)),
            kind: EntryKind::Configuration,
            data: configuration.encode(),
        };
        let stable = Configuration::new([NodeId(1), NodeId(2), NodeId(3)]);
        let mut joint = stable.clone();
        joint.outgoing = stable.voters.clone();
        joint.voters.insert(NodeId(4));
        let mut after = joint.clone();
        after.outgoing.clear();
        let steps = [
            configuration_entry(1, &stable),
            configuration_entry(2, &joint),
            configuration_entry(3, &after),
        ];
        assert!(check_membership_steps(NodeId(1), &steps).is_ok());
        let mut two_at_once = joint.clone();
        two_at_once.voters.insert(NodeId(5));
        let error = check_membership_steps(NodeId(1), &[configuration_entry(1, &two_at_once)])
            .expect_err("two voters added at once");
        assert_eq!(error.invariant, "membership-one-peer-at-a-time");
        let skipping_joint = [
            configuration_entry(1, &stable),
            configuration_entry(2, &after),
        ];
        assert!(check_membership_steps(NodeId(1), &skipping_joint).is_err());
    }

    #[test]
    fn durable_votes_are_once_per_term() {
        let mut checker = DurableVote::default();
        let state = |term: u64, vote: Option<u64>| HardState {
            term: Term(term),
            vote: vote.map(NodeId),
            commit: Index(0),
        };
        assert!(checker.on_persisted(NodeId(1), state(1, None)).is_ok());
        assert!(checker.on_persisted(NodeId(1), state(1, Some(2))).is_ok());
        assert!(checker.on_persisted(NodeId(1), state(1, Some(3))).is_err());
        assert!(checker.on_persisted(NodeId(1), state(0, None)).is_err());
    }
}
