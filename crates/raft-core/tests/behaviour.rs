//! Core behaviour tests: each feeds inputs and checks the exact effect.

mod common;

use bytes::Bytes;
use common::{classic_config, config, Net};
use raft_core::{
    Configuration, Entry, EntryKind, Index, LogId, MemStorage, Message, MessageBody, NodeId,
    ProposeError, Raft, Role, SnapshotMeta, Term,
};

fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    }
}

#[test]
fn single_peer_elects_itself_and_commits_after_its_write_is_durable() {
    let mut net = Net::new(1);
    net.elect(1);
    let id = net
        .peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader");
    assert_eq!(id.index, Index(2), "index 1 is the leader's no-op");
    let ready = net.peer(1).ready();
    let persist = ready.persist.expect("entry to persist");
    assert_eq!(
        net.peer(1).commit_index(),
        Index(1),
        "not committed before durable"
    );
    let persist_id = persist.id;
    net.peer(1).storage_mut().persist(persist);
    net.peer(1).on_persisted(persist_id);
    assert_eq!(net.peer(1).commit_index(), Index(2));
}

#[test]
fn a_commit_index_that_advanced_alone_asks_for_no_write_and_rides_with_the_next_one() {
    let mut net = Net::new(1);
    net.elect(1);
    net.peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader");
    let persist = net.peer(1).ready().persist.expect("entry to persist");
    let persist_id = persist.id;
    net.peer(1).storage_mut().persist(persist);
    net.peer(1).on_persisted(persist_id);
    assert_eq!(
        net.peer(1).commit_index(),
        Index(2),
        "committed once durable"
    );
    let ready = net.peer(1).ready();
    assert_eq!(
        ready.persist, None,
        "a new commit index alone is not written"
    );
    assert!(!net.peer(1).has_ready(), "nothing is left to hand out");
    net.peer(1)
        .propose(Bytes::from_static(b"y"))
        .expect("leader");
    let persist = net.peer(1).ready().persist.expect("entry to persist");
    assert_eq!(persist.entries.len(), 1);
    assert_eq!(
        persist.hard_state.map(|hard_state| hard_state.commit),
        Some(Index(2)),
        "the next write carries the commit index"
    );
}

#[test]
fn a_commit_index_that_moved_reaches_followers_in_a_notice_they_do_not_answer() {
    let mut net = Net::with_config(3, classic_config);
    net.elect(1);
    net.delivered.clear();
    net.peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader");
    net.settle();
    let commit = net.commit(1);
    assert_eq!(commit, Index(2), "the no-op and the write");
    let kinds: Vec<(u64, u64, &str)> = net
        .delivered
        .iter()
        .map(|message| (message.from.0, message.to.0, message.body.kind_name()))
        .collect();
    for follower in [2, 3] {
        assert_eq!(net.commit(follower), commit, "peer {follower} learned it");
        let notices: Vec<_> = net
            .delivered
            .iter()
            .filter(|message| message.to == NodeId(follower))
            .filter_map(|message| match message.body {
                MessageBody::Commit { commit } => Some(commit),
                _ => None,
            })
            .collect();
        assert_eq!(notices, vec![commit], "peer {follower}: {kinds:?}");
    }
    // Each follower answered its append, and nothing else.
    let answers = kinds.iter().filter(|(from, _, _)| *from != 1).count();
    assert_eq!(answers, 2, "{kinds:?}");
}

#[test]
fn three_peers_elect_one_leader_and_replicate() {
    let mut net = Net::new(3);
    net.elect(1);
    assert_eq!(net.peer(2).leader(), Some(NodeId(1)));
    assert_eq!(net.peer(3).role(), Role::Follower);
    for value in [b"a", b"b", b"c"] {
        net.peer(1)
            .propose(Bytes::from_static(value))
            .expect("leader");
    }
    net.settle();
    net.tick_all(3);
    for id in 1..=3 {
        assert_eq!(net.applied_data(id), vec!["a", "b", "c"], "peer {id}");
    }
}

#[test]
fn proposals_on_a_follower_name_the_leader() {
    let mut net = Net::new(3);
    net.elect(1);
    let error = net.peer(2).propose(Bytes::from_static(b"x")).unwrap_err();
    assert_eq!(
        error,
        ProposeError::NotLeader {
            leader: Some(NodeId(1))
        }
    );
}

#[test]
fn vote_response_waits_for_the_vote_to_be_durable() {
    let storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
    let mut raft = Raft::new(config(2), storage).expect("valid");
    raft.step(msg(
        1,
        2,
        1,
        MessageBody::VoteRequest {
            last_log: LogId::default(),
            pre_vote: false,
            leadership_transfer: false,
        },
    ))
    .expect("accepted");
    let ready = raft.ready();
    assert!(ready.messages.is_empty(), "vote sent before it was durable");
    let persist = ready.persist.expect("vote to persist");
    assert_eq!(persist.hard_state.map(|hs| hs.vote), Some(Some(NodeId(1))));
    raft.on_persisted(persist.id);
    let ready = raft.ready();
    assert_eq!(ready.messages.len(), 1);
    assert_eq!(
        ready.messages[0].body,
        MessageBody::VoteResponse {
            granted: true,
            pre_vote: false
        }
    );
}

#[test]
fn vote_is_refused_to_a_candidate_with_an_older_log() {
    let mut net = Net::three_peers_with_one_entry();
    // Peer 3 missed nothing; a candidate claiming an empty log in a later term is refused.
    net.tick_all(20); // leave the leader lease
    let result = net.peer(3).step(msg(
        2,
        3,
        9,
        MessageBody::VoteRequest {
            last_log: LogId::default(),
            pre_vote: false,
            leadership_transfer: false,
        },
    ));
    // Inside the lease the request is ignored; outside it, it is refused on log grounds.
    if result.is_ok() {
        let ready = net.peer(3).ready();
        let persist = ready.persist.expect("new term");
        assert_eq!(persist.hard_state.expect("hs").vote, None);
    }
}

#[test]
fn leader_sends_appends_before_its_own_write_and_followers_ack_after_theirs() {
    let mut net = three_led_by_1(classic_config, |_| {});
    propose_each_on_leader(&mut net, &["x"]);
    let ready = net.peer(1).ready();
    assert!(ready.persist.is_some());
    let appends: Vec<_> = ready
        .messages
        .iter()
        .filter(|m| matches!(&m.body, MessageBody::Append { entries, .. } if !entries.is_empty()))
        .collect();
    assert_eq!(
        appends.len(),
        2,
        "both followers get the entry before the leader's fsync"
    );
    let append = appends[0].clone();
    let follower = append.to;
    let raft = &mut net.peers.get_mut(&follower).expect("peer").raft;
    raft.step(append).expect("accepted");
    let ready = raft.ready();
    assert!(
        !ready
            .messages
            .iter()
            .any(|m| matches!(m.body, MessageBody::AppendResponse { .. })),
        "ack sent before durable"
    );
    let persist = ready.persist.expect("entries");
    let persist_id = persist.id;
    raft.storage_mut().persist(persist);
    raft.on_persisted(persist_id);
    let ready = raft.ready();
    assert!(matches!(
        ready.messages[0].body,
        MessageBody::AppendResponse { success: true, .. }
    ));
}

/// Figure 8: a leader must not commit an entry of an earlier term by counting replicas.
#[test]
fn entries_of_earlier_terms_are_not_committed_by_counting() {
    let config = |id: u64| {
        let mut config = config(id);
        config.pre_vote = false;
        config
    };
    let make = |id: u64| {
        let storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
        let mut raft = Raft::new(config(id), storage).expect("valid");
        // Every peer holds entry 1 of term 1; peer 1 also holds entry 2 of term 2 alone.
        let mut entries = vec![Entry {
            id: LogId::new(Term(1), Index(1)),
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"one"),
        }];
        if id == 1 {
            entries.push(Entry {
                id: LogId::new(Term(2), Index(2)),
                kind: EntryKind::Normal,
                data: Bytes::from_static(b"two"),
            });
        }
        raft.storage_mut().persist(raft_core::PersistRequest {
            id: 0,
            snapshot: None,
            entries,
            hard_state: Some(raft_core::HardState {
                term: Term(3),
                vote: None,
                commit: Index(0),
            }),
        });
        Raft::new(config(id), raft.into_storage()).expect("valid")
    };
    let mut leader = make(1);
    // Make peer 1 leader of term 4 by hand.
    for _ in 0..40 {
        leader.tick();
        if leader.role() != Role::Follower {
            break;
        }
    }
    assert_eq!(leader.role(), Role::Candidate);
    let ready = leader.ready();
    let persist = ready.persist.expect("term and vote");
    let persist_id = persist.id;
    leader.storage_mut().persist(persist);
    leader.on_persisted(persist_id);
    let requests = leader.ready().messages;
    assert_eq!(
        requests.len(),
        2,
        "vote requests released once the vote is durable"
    );
    let term = leader.term();
    leader
        .step(msg(
            2,
            1,
            term.0,
            MessageBody::VoteResponse {
                granted: true,
                pre_vote: false,
            },
        ))
        .expect("vote");
    assert_eq!(leader.role(), Role::Leader);
    // Peer 2 acknowledges index 2 (the old-term entry) but not the no-op at index 3.
    leader
        .step(msg(
            2,
            1,
            term.0,
            MessageBody::AppendResponse {
                index: Index(2),
                success: true,
                hint: LogId::default(),
            },
        ))
        .expect("ack");
    assert_eq!(
        leader.commit_index(),
        Index(0),
        "old-term entry committed by counting"
    );
    let ready = leader.ready();
    if let Some(persist) = ready.persist {
        let persist_id = persist.id;
        leader.storage_mut().persist(persist);
        leader.on_persisted(persist_id);
    }
    leader
        .step(msg(
            2,
            1,
            term.0,
            MessageBody::AppendResponse {
                index: Index(3),
                success: true,
                hint: LogId::default(),
            },
        ))
        .expect("ack");
    assert_eq!(
        leader.commit_index(),
        Index(3),
        "no-op commits the earlier entries with it"
    );
}

#[test]
fn partitioned_peer_rejoining_does_not_depose_the_leader() {
    let mut net = Net::new(3);
    net.elect(1);
    let term = net.peer(1).term();
    net.cut.insert(NodeId(3));
    net.tick_all(100);
    assert_eq!(
        net.peer(3).term(),
        term,
        "pre-vote keeps the isolated peer's term"
    );
    net.cut.clear();
    net.tick_all(10);
    assert!(net.peer(1).state().1);
    assert_eq!(net.peer(1).term(), term);
}

#[test]
fn leader_without_quorum_steps_down_within_an_election_timeout() {
    let mut net = Net::new(3);
    net.elect(1);
    net.cut.insert(NodeId(1));
    net.tick_all(2 * 10 + 1);
    assert_eq!(net.peer(1).role(), Role::Follower);
}

#[test]
fn far_behind_follower_with_divergent_log_catches_up_in_few_round_trips() {
    let mut net = Net::new(3);
    net.elect(1);
    // Peer 3 is cut off while the old leader appends 50 entries it cannot commit.
    net.cut.insert(NodeId(2));
    net.cut.insert(NodeId(3));
    for k in 0..50u8 {
        net.peer(1).propose(Bytes::from(vec![k])).expect("leader");
    }
    net.settle();
    net.cut.clear();
    net.cut.insert(NodeId(1));
    net.tick_all(60);
    let new_leader = if net.peer(2).state().1 { 2 } else { 3 };
    assert!(net.peer(new_leader).state().1);
    for k in 0..50u8 {
        net.peer(new_leader)
            .propose(Bytes::from(vec![100 + k]))
            .expect("leader");
    }
    net.settle();
    net.cut.clear();
    net.delivered.clear();
    net.tick_all(4);
    let rejections = net
        .delivered
        .iter()
        .filter(|m| m.to == NodeId(new_leader) && m.from == NodeId(1))
        .filter(|m| matches!(m.body, MessageBody::AppendResponse { success: false, .. }))
        .count();
    assert!(
        rejections <= 3,
        "{rejections} rejections: backtracking is not fast"
    );
    assert_eq!(net.applied_data(1), net.applied_data(new_leader));
    assert_eq!(net.applied_data(1).len(), 50);
}

#[test]
fn read_index_on_leader_and_follower_reflect_committed_writes() {
    let mut net = Net::three_peers_with_one_entry();
    let committed = net.commit(1);
    net.peer(1).read_index(7).expect("leader read");
    net.peer(2).read_index(8).expect("follower read");
    net.settle();
    let leader_reads = &net.peers[&NodeId(1)].read_states;
    assert_eq!(leader_reads.len(), 1);
    assert_eq!(leader_reads[0].context, 7);
    assert!(leader_reads[0].index >= committed);
    let follower_reads = &net.peers[&NodeId(2)].read_states;
    assert_eq!(follower_reads.len(), 1);
    assert_eq!(follower_reads[0].context, 8);
    assert!(follower_reads[0].index >= committed);
}

#[test]
fn read_index_fails_when_the_leader_cannot_confirm() {
    let mut net = Net::new(3);
    net.elect(1);
    net.cut.insert(NodeId(1));
    net.peer(1).read_index(1).expect("accepted");
    net.tick_all(25);
    let ready_reads = &net.peers[&NodeId(1)].read_states;
    assert!(ready_reads.is_empty(), "read served without a quorum");
}

#[test]
fn leadership_transfer_hands_over_to_the_target() {
    let mut net = Net::three_peers_with_one_entry();
    net.peer(1).transfer_leader(NodeId(3)).expect("transfer");
    net.settle();
    assert!(net.peer(3).state().1, "target is leader");
    assert_eq!(net.peer(1).role(), Role::Follower);
}

/// A 3-peer cluster whose leader (peer 1) committed `entries` while peer 3 was cut off, then
/// compacted its log into a snapshot holding `snapshot_data`; peer 3 is still cut off.
fn leader_compacted_past_lagging_follower(
    snapshot_chunk_bytes: u64,
    entries: u8,
    snapshot_data: Bytes,
) -> Net {
    let mut net = three_led_by_1(config, |config| {
        config.snapshot_chunk_bytes = snapshot_chunk_bytes
    });
    net.cut.insert(NodeId(3));
    for k in 0..entries {
        net.peer(1).propose(Bytes::from(vec![k])).expect("leader");
    }
    net.settle();
    let applied = net.peer(1).status().applied;
    net.peer(1)
        .compact(applied, snapshot_data)
        .expect("compact");
    net.settle();
    assert_eq!(net.peer(1).status().snapshot_index, applied);
    net
}

#[test]
fn compaction_then_snapshot_install_catches_up_a_lagging_follower() {
    // Several chunks of 3 bytes.
    let mut net =
        leader_compacted_past_lagging_follower(3, 20, Bytes::from_static(b"state-of-the-service"));
    net.cut.clear();
    net.tick_all(6);
    let follower = &net.peers[&NodeId(3)];
    let snapshot = follower.snapshot.as_ref().expect("installed snapshot");
    assert_eq!(snapshot.data, Bytes::from_static(b"state-of-the-service"));
    assert_eq!(net.commit(3), net.commit(1));
    assert_eq!(net.peer(3).counters().snapshots_installed, 1);
}

#[test]
fn restart_resumes_from_snapshot_and_log_tail() {
    let mut net = Net::new(1);
    net.elect(1);
    for k in 0..5u8 {
        net.peer(1).propose(Bytes::from(vec![k])).expect("leader");
    }
    net.settle();
    net.peer(1)
        .compact(Index(3), Bytes::from_static(b"snap"))
        .expect("compact");
    net.settle();
    let storage = std::mem::replace(
        &mut net.peers.get_mut(&NodeId(1)).expect("peer").raft,
        Raft::new(config(1), MemStorage::new(Configuration::new([NodeId(1)]))).expect("valid"),
    )
    .into_storage();
    let mut raft = Raft::new(config(1), storage).expect("restart");
    let ready = raft.ready();
    let snapshot = ready.snapshot_to_apply.expect("snapshot first");
    assert_eq!(snapshot.meta.last_included.index, Index(3));
    raft.on_applied(Index(3));
    let ready = raft.ready();
    let indexes: Vec<u64> = ready
        .committed_entries
        .iter()
        .map(|e| e.index().0)
        .collect();
    assert_eq!(indexes, vec![4, 5, 6]);
}

#[test]
fn bad_input_is_dropped_and_counted_not_panicked_on() {
    let mut net = Net::new(3);
    net.elect(1);
    let term = net.peer(2).term().0;
    let cases = vec![
        // A campaign from outside the configuration with a log behind ours (thesis §4.2.3).
        msg(
            9,
            2,
            term + 1,
            MessageBody::VoteRequest {
                last_log: LogId::default(),
                pre_vote: false,
                leadership_transfer: true,
            },
        ),
        msg(9, 2, term, MessageBody::TimeoutNow),
        msg(2, 3, term, MessageBody::TimeoutNow),
        msg(
            1,
            2,
            term,
            MessageBody::Append {
                prev: LogId::new(Term(0), Index(0)),
                entries: vec![Entry {
                    id: LogId::new(Term(term + 5), Index(7)),
                    kind: EntryKind::Normal,
                    data: Bytes::new(),
                }],
                commit: Index(u64::MAX),
            },
        ),
        msg(
            1,
            2,
            term,
            MessageBody::InstallSnapshot {
                meta: SnapshotMeta::default(),
                offset: 5,
                data: Bytes::new(),
                done: true,
            },
        ),
        msg(
            3,
            1,
            term,
            MessageBody::AppendResponse {
                index: Index(u64::MAX),
                success: true,
                hint: LogId::default(),
            },
        ),
        msg(
            3,
            1,
            term,
            MessageBody::InstallSnapshotResponse {
                last_included: LogId::new(Term(1), Index(99)),
                next_offset: u64::MAX,
                done: false,
            },
        ),
        msg(
            1,
            2,
            term,
            MessageBody::Heartbeat {
                commit: Index(u64::MAX),
                read_round: 0,
            },
        ),
        msg(1, 2, 0, MessageBody::TimeoutNow),
    ];
    for case in cases {
        let to = case.to.0;
        let _ = net.peer(to).step(case);
    }
    let counters2 = net.peer(2).counters();
    let counters1 = net.peer(1).counters();
    assert!(counters2.dropped_unknown_peer >= 1);
    assert!(counters2.dropped_invalid >= 2);
    assert!(counters1.dropped_invalid + counters1.dropped_ignored >= 2);
    assert!(net.peer(2).commit_index() <= net.peer(2).last_index());
    net.tick_all(3);
    assert!(net.peer(1).state().1, "cluster still healthy");
}

#[test]
fn snapshot_transfer_resumes_after_a_lost_chunk_without_restarting() {
    let snapshot_data = Bytes::from_static(b"0123456789abcdefghij"); // 5 chunks of 4 bytes
    let mut net = leader_compacted_past_lagging_follower(4, 10, snapshot_data.clone());
    net.cut.clear();
    // Lose the third chunk once.
    let lost = std::rc::Rc::new(std::cell::Cell::new(None));
    let lost_in_filter = lost.clone();
    let mut chunks_seen = 0;
    net.drop_if = Some(Box::new(move |m: &Message| {
        if let MessageBody::InstallSnapshot { offset, .. } = &m.body {
            chunks_seen += 1;
            if chunks_seen == 3 {
                lost_in_filter.set(Some(*offset));
                return true;
            }
        }
        false
    }));
    for _ in 0..60 {
        net.tick_all(1);
        if net.peers[&NodeId(3)].snapshot.is_some() {
            break;
        }
    }
    let lost_offset = lost.get();
    let follower = &net.peers[&NodeId(3)];
    assert_eq!(
        follower.snapshot.as_ref().map(|s| s.data.clone()),
        Some(snapshot_data)
    );
    let resent_from_zero = net
        .delivered
        .iter()
        .filter(|m| matches!(m.body, MessageBody::InstallSnapshot { offset: 0, .. }))
        .count();
    assert!(lost_offset.is_some_and(|offset| offset > 0));
    // The first chunk may be re-offered once after the stall, but the follower answers with
    // the offset it has, so chunks before the loss are not all sent again.
    let chunk_messages = net
        .delivered
        .iter()
        .filter(|m| matches!(m.body, MessageBody::InstallSnapshot { .. }))
        .count();
    assert!(
        resent_from_zero <= 2,
        "restarted from zero {resent_from_zero} times"
    );
    assert!(
        chunk_messages <= 5 + 2,
        "{chunk_messages} chunks for a 5-chunk snapshot"
    );
}

#[test]
fn unreachable_report_returns_follower_to_probing() {
    let mut net = Net::three_peers_with_one_entry();
    let state = |net: &mut Net| {
        net.peer(1)
            .status()
            .peers
            .iter()
            .find(|p| p.id == NodeId(2))
            .map(|p| p.state)
    };
    assert_eq!(state(&mut net), Some(raft_core::ProgressState::Replicate));
    net.peer(1).report_unreachable(NodeId(2));
    assert_eq!(state(&mut net), Some(raft_core::ProgressState::Probe));
    net.peer(1)
        .propose(Bytes::from_static(b"y"))
        .expect("leader");
    net.settle();
    assert_eq!(state(&mut net), Some(raft_core::ProgressState::Replicate));
    assert_eq!(net.applied_data(2).len(), 2);
}

#[test]
fn leadership_transfer_to_an_unreachable_peer_is_abandoned() {
    let mut net = Net::new(3);
    net.elect(1);
    net.cut.insert(NodeId(3));
    net.peer(1).transfer_leader(NodeId(3)).expect("transfer");
    assert_eq!(
        net.peer(1).propose(Bytes::from_static(b"x")),
        Err(ProposeError::TransferInProgress)
    );
    net.tick_all(11);
    assert!(net.peer(1).state().1);
    net.peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("transfer abandoned");
}

#[test]
fn a_stale_campaign_is_refused_with_the_current_term() {
    // Figure 2: the answer carries currentTerm, so a candidate that fell behind catches up;
    // without it, a peer whose term others keep raising would drop its campaigns for good.
    let storage = MemStorage::new(Configuration::new([NodeId(1), NodeId(2), NodeId(3)]));
    let mut raft = Raft::new(config(2), storage).expect("valid");
    let vote_request = |term: u64| {
        msg(
            3,
            2,
            term,
            MessageBody::VoteRequest {
                last_log: LogId::default(),
                pre_vote: false,
                leadership_transfer: false,
            },
        )
    };
    raft.step(vote_request(5)).expect("a newer term");
    let ready = raft.ready();
    if let Some(persist) = ready.persist {
        raft.on_persisted(persist.id);
    }
    let _ = raft.ready();
    assert!(raft.step(vote_request(3)).is_err(), "stale");
    let ready = raft.ready();
    assert_eq!(
        ready.messages,
        vec![msg(
            2,
            3,
            5,
            MessageBody::VoteResponse {
                granted: false,
                pre_vote: false
            }
        )]
    );
}

/// The entries of the appends to `to` among `messages`, one list per append.
fn appended_to(messages: &[Message], to: u64) -> Vec<Vec<Bytes>> {
    messages
        .iter()
        .filter(|message| message.to == NodeId(to))
        .filter_map(|message| match &message.body {
            MessageBody::Append { entries, .. } => {
                Some(entries.iter().map(|entry| entry.data.clone()).collect())
            }
            _ => None,
        })
        .collect()
}

/// Three peers made by `make` and then `tweak`, peer 1 elected.
fn three_led_by_1(
    make: fn(u64) -> raft_core::Config,
    tweak: impl Fn(&mut raft_core::Config),
) -> Net {
    let mut net = Net::with_config(3, |id| {
        let mut config = make(id);
        tweak(&mut config);
        config
    });
    net.elect(1);
    net
}

/// Proposes each value on the leader (peer 1), handing nothing out.
fn propose_each_on_leader(net: &mut Net, values: &[&'static str]) {
    for &value in values {
        net.peer(1).propose(Bytes::from(value)).expect("leader");
    }
}

/// Proposes `value` on the leader (peer 1), makes its write durable, and returns the messages
/// of that round.
fn propose_on_leader(net: &mut Net, value: &'static str) -> Vec<Message> {
    net.peer(1).propose(Bytes::from(value)).expect("leader");
    let ready = net.peer(1).ready();
    if let Some(persist) = ready.persist {
        let id = persist.id;
        net.peer(1).storage_mut().persist(persist);
        net.peer(1).on_persisted(id);
    }
    ready.messages
}

#[test]
fn a_leader_holds_a_third_partial_append_until_an_answer_and_then_sends_what_waited_together() {
    let mut net = Net::new(3);
    net.elect(1);
    let mut in_flight = Vec::new();
    for value in ["a", "b"] {
        let messages = propose_on_leader(&mut net, value);
        assert_eq!(appended_to(&messages, 2), vec![vec![Bytes::from(value)]]);
        in_flight.extend(messages.into_iter().filter(|m| m.to == NodeId(2)));
    }
    for value in ["c", "d"] {
        let messages = propose_on_leader(&mut net, value);
        assert!(
            appended_to(&messages, 2).is_empty(),
            "two partial appends are in flight: {value} waits"
        );
    }
    // Follower 2 answers the first append; the room it makes carries both waiting entries.
    let first = in_flight.remove(0);
    let follower = &mut net.peers.get_mut(&NodeId(2)).expect("peer").raft;
    follower.step(first).expect("accepted");
    let mut ready = follower.ready();
    let persist = ready.persist.take().expect("entries to persist");
    let persist_id = persist.id;
    follower.storage_mut().persist(persist);
    follower.on_persisted(persist_id);
    let answers = follower.ready().messages;
    assert_eq!(answers.len(), 1);
    net.peer(1)
        .step(answers[0].clone())
        .expect("answer accepted");
    let ready = net.peer(1).ready();
    assert_eq!(
        appended_to(&ready.messages, 2),
        vec![vec![Bytes::from("c"), Bytes::from("d")]],
        "the waiting entries travel in one append"
    );
}

#[test]
fn a_leader_fills_its_whole_window_with_full_appends() {
    // One entry per message: every append but the last of a batch is full.
    let mut net = three_led_by_1(config, |config| config.message_bytes_max = 1);
    propose_each_on_leader(&mut net, &["a", "b", "c", "d", "e"]);
    let ready = net.peer(1).ready();
    assert_eq!(
        appended_to(&ready.messages, 3),
        vec![
            vec![Bytes::from("a")],
            vec![Bytes::from("b")],
            vec![Bytes::from("c")],
            vec![Bytes::from("d")],
        ],
        "full appends fill the window; the partial last one waits (two are in flight)"
    );
}

#[test]
fn a_follower_answers_appends_made_durable_by_one_write_once() {
    let mut net = Net::with_config(3, classic_config);
    net.elect(1);
    let mut appends = Vec::new();
    for value in ["a", "b"] {
        let messages = propose_on_leader(&mut net, value);
        appends.extend(messages.into_iter().filter(|m| m.to == NodeId(3)));
    }
    assert_eq!(appends.len(), 2);
    let follower = &mut net.peers.get_mut(&NodeId(3)).expect("peer").raft;
    let mut last_persist = None;
    for append in appends {
        follower.step(append).expect("accepted");
        let persist = follower.ready().persist.expect("entries to persist");
        last_persist = Some(persist.id);
        follower.storage_mut().persist(persist);
    }
    follower.on_persisted(last_persist.expect("two writes"));
    let answers = follower.ready().messages;
    let acks: Vec<_> = answers
        .iter()
        .filter_map(|message| match message.body {
            MessageBody::AppendResponse { index, success, .. } => Some((index, success)),
            _ => None,
        })
        .collect();
    let last = net.peer(1).last_index();
    assert_eq!(
        acks,
        vec![(last, true)],
        "one answer, for the highest index"
    );
}

/// A config whose spare followers are flushed only every 1,000 ticks, so a test sees what the
/// leader does between flushes.
fn rarely_flushed_config(id: u64) -> raft_core::Config {
    let mut config = config(id);
    config.spare_flush_ticks = 1_000;
    config
}

fn entries_sent_to(net: &Net, to: u64) -> usize {
    net.delivered
        .iter()
        .filter(|message| message.to == NodeId(to))
        .map(|message| match &message.body {
            MessageBody::Append { entries, .. } => entries.len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn a_write_commits_on_the_leader_and_one_follower_and_the_spare_gets_it_at_the_next_tick() {
    let mut net = three_led_by_1(config, |_| {});
    net.delivered.clear();
    propose_each_on_leader(&mut net, &["x"]);
    net.settle();
    assert_eq!(net.commit(1), Index(2), "the leader and peer 2 commit it");
    assert_eq!(net.peer(2).last_index(), Index(2));
    assert_eq!(entries_sent_to(&net, 3), 0, "the spare waits");
    assert_eq!(net.peer(3).last_index(), Index(1));
    net.tick_all(1);
    assert_eq!(net.peer(3).last_index(), Index(2), "flushed at the tick");
    assert_eq!(net.applied_data(3), vec!["x"], "with the commit index");
}

#[test]
fn a_follower_that_stops_answering_hands_its_place_in_the_quorum_to_the_spare() {
    let mut net = Net::with_config(3, rarely_flushed_config);
    net.elect(1);
    net.cut.insert(NodeId(2));
    net.peer(1)
        .propose(Bytes::from_static(b"x"))
        .expect("leader");
    net.settle();
    // The entry was appended before the first tick; at the second and the third peer 2 is
    // still behind what the leader had a tick before.
    net.tick_all(2);
    assert_eq!(
        net.commit(1),
        Index(1),
        "behind at one tick: still counted on"
    );
    assert_eq!(net.peer(3).last_index(), Index(1));
    net.tick_all(1);
    assert_eq!(
        net.peer(3).last_index(),
        Index(2),
        "behind at two: peer 3 took its place"
    );
    assert_eq!(net.commit(1), Index(2));
}

#[test]
fn a_spare_rarely_flushed_still_gets_an_entry_once_it_is_two_ticks_behind() {
    let mut net = three_led_by_1(rarely_flushed_config, |_| {});
    propose_each_on_leader(&mut net, &["x"]);
    net.settle();
    assert_eq!(net.commit(1), Index(2), "the leader and peer 2 commit it");
    // Appended before the first tick: behind at the second and the third.
    net.tick_all(2);
    assert_eq!(
        net.peer(3).last_index(),
        Index(1),
        "one tick behind: still spare"
    );
    net.tick_all(1);
    assert_eq!(
        net.peer(3).last_index(),
        Index(2),
        "two ticks behind: no longer prompt, so no longer spared"
    );
}

#[test]
fn a_spare_that_forwards_a_read_is_sent_what_it_lacks_at_once() {
    let mut net = three_led_by_1(rarely_flushed_config, |_| {});
    propose_each_on_leader(&mut net, &["x"]);
    net.settle();
    assert_eq!(net.peer(3).last_index(), Index(1), "the spare waits");
    net.peer(3).read_index(5).expect("follower read");
    net.settle();
    assert_eq!(net.peer(3).last_index(), Index(2));
    assert_eq!(net.applied_data(3), vec!["x"]);
    let reads = &net.peers[&NodeId(3)].read_states;
    assert_eq!(reads.len(), 1);
    assert_eq!((reads[0].context, reads[0].index), (5, Index(2)));
}

#[test]
fn a_spare_far_behind_is_sent_full_messages_without_waiting_for_a_flush() {
    // Two 4-byte entries (24 bytes of header each) to a message.
    let mut net = three_led_by_1(rarely_flushed_config, |config| {
        config.message_bytes_max = 60
    });
    propose_each_on_leader(&mut net, &["aaaa", "bbbb", "cccc", "dddd", "eeee"]);
    net.settle();
    assert_eq!(net.commit(1), Index(6));
    assert_eq!(
        net.peer(3).last_index(),
        Index(5),
        "two full messages went out (indexes 2-5), the partial rest (6) waits"
    );
}
