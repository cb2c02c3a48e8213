//! What a caller driving the core from outside (its own loop, transport and storage) relies on:
//! the driving loop ends when the peer stops, every message is a request, a response or a
//! notice as [`MessageBody::kind`] says, and what counts as applied.

mod common;

use bytes::Bytes;
use common::{config, Net};
use raft_core::{
    CompactError, Configuration, Entry, Index, MemStorage, Message, MessageBody, MessageKind,
    NodeId, ProposeError, Raft, Snapshot, Storage, StorageError, Term,
};

/// [`MemStorage`] whose entry reads fail once `fail_entries` is set, as a disk that went bad.
struct FailingReads {
    inner: MemStorage,
    fail_entries: bool,
}

impl Storage for FailingReads {
    fn initial_state(&self) -> Result<raft_core::InitialState, StorageError> {
        self.inner.initial_state()
    }

    fn entries(&self, low: Index, high: Index, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if self.fail_entries {
            return Err(StorageError::Failed("injected read failure".into()));
        }
        self.inner.entries(low, high, max_bytes)
    }

    fn term(&self, index: Index) -> Result<Term, StorageError> {
        self.inner.term(index)
    }

    fn first_index(&self) -> Result<Index, StorageError> {
        self.inner.first_index()
    }

    fn last_index(&self) -> Result<Index, StorageError> {
        self.inner.last_index()
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.inner.snapshot()
    }
}

/// The driving loop of the crate documentation, bounded so that a loop that would spin fails
/// the test instead of hanging it. Returns how many rounds it took.
fn drive_until_quiet(raft: &mut Raft<FailingReads>) -> usize {
    const ROUNDS_MAX: usize = 1_000;
    let mut rounds = 0;
    while raft.has_ready() {
        rounds += 1;
        assert!(rounds < ROUNDS_MAX, "has_ready stays true: the loop spins");
        let ready = raft.ready();
        if let Some(persist) = ready.persist {
            let id = persist.id;
            raft.storage_mut().inner.persist(persist);
            raft.on_persisted(id);
        }
        if let Some(last) = ready.committed_entries.last() {
            raft.on_applied(last.index());
        }
    }
    rounds
}

#[test]
fn a_peer_stopped_by_a_failed_read_says_so_and_its_driving_loop_ends() {
    let storage = FailingReads {
        inner: MemStorage::new(Configuration::new([NodeId(1)])),
        fail_entries: false,
    };
    let mut raft = Raft::new(config(1), storage).expect("valid config");
    for _ in 0..100 {
        if raft.state().1 {
            break;
        }
        raft.tick();
        drive_until_quiet(&mut raft);
    }
    assert!(raft.state().1, "a single voter elects itself");
    assert!(!raft.is_stopped());

    raft.storage_mut().fail_entries = true;
    raft.propose(Bytes::from_static(b"x")).expect("leader");
    // The write commits; handing the entry out for applying reads it back and fails.
    drive_until_quiet(&mut raft);
    assert!(raft.is_stopped(), "the failed read stopped the peer");
    assert_eq!(
        raft.fatal_error(),
        Some(&StorageError::Failed("injected read failure".into()))
    );
    assert!(!raft.has_ready());
    assert!(raft.ready().is_empty());
    // Nothing it is asked for later would ever be answered: it refuses.
    raft.tick();
    assert!(!raft.has_ready(), "a tick wakes nothing");
    assert_eq!(
        raft.propose(Bytes::from_static(b"y")),
        Err(ProposeError::NotLeader { leader: None })
    );
    assert_eq!(
        raft.read_index(1),
        Err(ProposeError::NotLeader { leader: None })
    );
    assert_eq!(
        raft.lease_read(2),
        Err(ProposeError::NotLeader { leader: None })
    );
}

/// Every message delivered in `net` until it is quiet, each with the messages its recipient
/// sent as it handled it (as `Net::settle` does, which cannot tell them apart).
fn settle_recording(net: &mut Net, log: &mut Vec<(Message, Vec<Message>)>) {
    while let Some(message) = net.queue.pop_front() {
        if net.cut.contains(&message.from) || net.cut.contains(&message.to) {
            continue;
        }
        let to = message.to;
        let queued_before = net.queue.len();
        let _ = net.peer(to.0).step(message.clone());
        net.process_ready(to);
        let reaction = net.queue.range(queued_before..).cloned().collect();
        log.push((message, reaction));
    }
}

fn tick_recording(net: &mut Net, ticks: u32, log: &mut Vec<(Message, Vec<Message>)>) {
    for _ in 0..ticks {
        let ids: Vec<NodeId> = net.peers.keys().copied().collect();
        for id in ids {
            net.peer(id.0).tick();
            net.process_ready(id);
        }
        settle_recording(net, log);
    }
}

/// Whether `response` answers `request` (the pairs of [`MessageBody::kind`]'s table).
fn answers(response: &MessageBody, request: &MessageBody) -> bool {
    match (response, request) {
        (
            MessageBody::VoteResponse { pre_vote, .. },
            MessageBody::VoteRequest {
                pre_vote: asked, ..
            },
        ) => pre_vote == asked,
        (
            MessageBody::ReadIndexResponse { context, .. },
            MessageBody::ReadIndexRequest { context: asked },
        ) => context == asked,
        (MessageBody::AppendResponse { .. }, MessageBody::Append { .. })
        | (MessageBody::HeartbeatResponse { .. }, MessageBody::Heartbeat { .. })
        | (MessageBody::InstallSnapshotResponse { .. }, MessageBody::InstallSnapshot { .. }) => {
            true
        }
        _ => false,
    }
}

/// A cluster goes through everything that makes each kind of message: pre-votes and votes,
/// appends, heartbeats, commit notices, a snapshot sent to a lagging follower, a read forwarded
/// by a follower and a leadership transfer. Every response it delivers answers a request its
/// recipient sent before (or tells a stale leader of a newer term), and nobody answers a
/// notice.
#[test]
fn every_response_answers_a_request_and_no_notice_is_answered() {
    let mut net = Net::new(3);
    let mut log = Vec::new();
    // Elect peer 1 (pre-vote, then vote), recording.
    for _ in 0..100 {
        net.peer(1).tick();
        net.process_ready(NodeId(1));
        if !net.queue.is_empty() {
            break;
        }
    }
    settle_recording(&mut net, &mut log);
    assert!(net.peer(1).state().1, "peer 1 leads");
    // Peer 3 misses a few writes, which the leader then compacts away.
    net.cut.insert(NodeId(3));
    for value in 0..5u8 {
        net.peer(1)
            .propose(Bytes::from(vec![value]))
            .expect("leader");
        net.process_ready(NodeId(1));
        settle_recording(&mut net, &mut log);
    }
    tick_recording(&mut net, 3, &mut log);
    let applied = net.peer(1).status().applied;
    net.peer(1)
        .compact(applied, Bytes::from_static(b"state"))
        .expect("compact");
    net.process_ready(NodeId(1));
    net.cut.clear();
    tick_recording(&mut net, 6, &mut log);
    assert_eq!(net.peer(3).counters().snapshots_installed, 1);
    // A read through a follower, then a write the followers learn the commit of by notice.
    net.peer(2)
        .read_index(42)
        .expect("follower knows its leader");
    net.process_ready(NodeId(2));
    settle_recording(&mut net, &mut log);
    net.peer(1)
        .propose(Bytes::from_static(b"y"))
        .expect("leader");
    net.process_ready(NodeId(1));
    settle_recording(&mut net, &mut log);
    // Leadership moves to peer 3.
    net.peer(1).transfer_leader(NodeId(3)).expect("transfer");
    net.process_ready(NodeId(1));
    settle_recording(&mut net, &mut log);
    tick_recording(&mut net, 3, &mut log);
    assert!(net.peer(3).state().1, "peer 3 took over");

    let seen: std::collections::BTreeSet<&str> = log
        .iter()
        .map(|(message, _)| message.body.kind_name())
        .collect();
    let every_kind = [
        "PreVote",
        "PreVoteResp",
        "Vote",
        "VoteResp",
        "Append",
        "AppendResp",
        "Heartbeat",
        "HeartbeatResp",
        "Commit",
        "InstallSnapshot",
        "InstallSnapshotResp",
        "TimeoutNow",
        "ReadIndex",
        "ReadIndexResp",
    ];
    for kind in every_kind {
        assert!(seen.contains(kind), "no {kind} in the run: {seen:?}");
    }

    for (position, (message, reaction)) in log.iter().enumerate() {
        let earlier = &log[..position];
        match message.body.kind() {
            MessageKind::Response => {
                let answered = earlier.iter().any(|(request, _)| {
                    request.from == message.to
                        && request.to == message.from
                        && request.body.kind() == MessageKind::Request
                        && answers(&message.body, &request.body)
                });
                let stale_leader_told = matches!(
                    message.body,
                    MessageBody::AppendResponse { success: false, .. }
                ) && earlier.iter().any(|(stale, _)| {
                    stale.from == message.to
                        && stale.to == message.from
                        && stale.term < message.term
                });
                assert!(
                    answered || stale_leader_told,
                    "{message:?} answers nothing its recipient asked"
                );
            }
            MessageKind::Notice => {
                let answer = reaction.iter().find(|sent| {
                    sent.to == message.from && sent.body.kind() == MessageKind::Response
                });
                assert_eq!(answer, None, "{message:?} was answered");
            }
            MessageKind::Request => {}
        }
    }
}

/// The core counts a snapshot from the leader as handed out, not as applied: until the service
/// reports it with `on_applied`, the applied index stays where it was, and with it what the
/// service may compact. The entries after it are handed out meanwhile.
#[test]
fn a_snapshot_from_the_leader_counts_as_applied_once_reported() {
    let mut net = Net::new(3);
    net.elect(1);
    net.cut.insert(NodeId(3));
    for value in 0..5u8 {
        net.peer(1)
            .propose(Bytes::from(vec![value]))
            .expect("leader");
    }
    net.settle();
    let snapshot_index = net.peer(1).status().applied;
    net.peer(1)
        .compact(snapshot_index, Bytes::from_static(b"state"))
        .expect("compact");
    net.peer(1)
        .propose(Bytes::from_static(b"after"))
        .expect("leader");
    net.settle();
    net.cut.clear();

    // Drive peer 3 by hand: deliver to it, and apply without reporting the snapshot.
    let applied_before = net.peer(3).status().applied;
    let mut snapshot_seen = None;
    let mut applied_after_snapshot = Vec::new();
    for _ in 0..20 {
        net.peer(1).tick();
        net.process_ready(NodeId(1));
        while let Some(message) = net.queue.pop_front() {
            let to = message.to;
            let _ = net.peer(to.0).step(message);
            if to != NodeId(3) {
                net.process_ready(to);
                continue;
            }
            let peer = &mut net.peers.get_mut(&NodeId(3)).expect("peer 3").raft;
            while peer.has_ready() {
                let ready = peer.ready();
                if let Some(persist) = ready.persist {
                    let id = persist.id;
                    peer.storage_mut().persist(persist);
                    peer.on_persisted(id);
                }
                if let Some(snapshot) = ready.snapshot_to_apply {
                    snapshot_seen = Some(snapshot.meta.last_included.index);
                }
                applied_after_snapshot.extend(ready.committed_entries.iter().map(Entry::index));
                net.queue.extend(ready.messages);
            }
        }
    }
    assert_eq!(snapshot_seen, Some(snapshot_index), "peer 3 installed it");
    assert_eq!(
        applied_after_snapshot,
        vec![snapshot_index.next()],
        "the entry after the snapshot is handed out without the snapshot reported"
    );
    let peer = net.peer(3);
    assert_eq!(
        peer.status().applied,
        applied_before,
        "not applied until reported"
    );
    assert!(
        matches!(
            peer.compact(snapshot_index.next(), Bytes::new()),
            Err(CompactError::NotApplied { .. })
        ),
        "the service may not compact what it has not reported applied"
    );
    peer.on_applied(snapshot_index);
    assert_eq!(peer.status().applied, snapshot_index);
    peer.on_applied(snapshot_index.next());
    assert_eq!(peer.status().applied, snapshot_index.next());
    assert_eq!(peer.compact(snapshot_index.next(), Bytes::new()), Ok(()));
}
