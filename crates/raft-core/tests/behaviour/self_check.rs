//! The core checks itself: a caller's mistake panics with what it did wrong, impossible input
//! from the network is refused (never panicked on), and a leader that asks a follower to
//! overwrite a committed entry stops that follower.

use bytes::Bytes;
use raft_core::{
    Entry, EntryKind, Index, LogId, MessageBody, NodeId, ProposeError, SafetyViolation, StepError,
    Term,
};

use crate::common::Net;
use crate::msg;

#[test]
#[should_panic(expected = "caller bug: on_persisted(99) names a write never handed out")]
fn reporting_a_write_never_handed_out_is_a_caller_bug() {
    let mut net = Net::three_peers_with_one_entry();
    net.peer(2).on_persisted(99);
}

#[test]
fn reporting_a_write_again_changes_nothing() {
    let mut net = Net::three_peers_with_one_entry();
    let before = net.peer(2).status();
    net.peer(2).on_persisted(1);
    assert_eq!(net.peer(2).status(), before);
    assert!(!net.peer(2).has_ready());
}

#[test]
#[should_panic(
    expected = "caller bug: on_applied(i9) beyond the last index handed out for applying (i2)"
)]
fn reporting_entries_applied_that_were_never_handed_out_is_a_caller_bug() {
    let mut net = Net::three_peers_with_one_entry();
    assert_eq!(net.peer(1).status().applied, Index(2));
    net.peer(1).on_applied(Index(9));
}

/// A commit index beyond the follower's log could only come from a leader that believes the
/// follower acknowledged entries it does not hold: refused and counted, not clamped, and the
/// heartbeat is still answered (the echo vouches for the leader's reads).
#[test]
fn a_commit_index_beyond_the_log_is_refused_not_clamped() {
    let mut net = Net::three_peers_with_one_entry();
    let term = net.peer(2).term().0;
    let (commit, last) = (net.commit(2), net.peer(2).last_index());
    let beyond = Index(last.0 + 3);
    let heartbeat = msg(
        1,
        2,
        term,
        MessageBody::Heartbeat {
            commit: beyond,
            read_round: 5,
        },
    );
    assert_eq!(
        net.peer(2).step(heartbeat),
        Err(StepError::Invalid(
            "commit index beyond this follower's log"
        ))
    );
    assert_eq!(net.commit(2), commit);
    let answers = net.peer(2).ready().messages;
    assert!(
        answers.iter().any(|message| message.to == NodeId(1)
            && message.body == MessageBody::HeartbeatResponse { read_round: 5 }),
        "the heartbeat is answered: {answers:?}"
    );
    let notice = msg(1, 2, term, MessageBody::Commit { commit: beyond });
    assert_eq!(
        net.peer(2).step(notice),
        Err(StepError::Invalid(
            "commit index beyond this follower's log"
        ))
    );
    assert_eq!(net.commit(2), commit);
    assert_eq!(net.peer(2).counters().dropped_invalid, 2);
    // Within the log the same notice is adopted.
    let within = msg(1, 2, term, MessageBody::Commit { commit: last });
    assert_eq!(net.peer(2).step(within), Ok(()));
    assert_eq!(net.commit(2), last);
}

/// Follower 2 commits the entry at index 2; then peer 3, claiming leadership of a newer term
/// (a peer that lost its disk, say), sends an append that replaces it. Follower 2 stops with a
/// violation naming the term, the index and the sender, counts it, and refuses everything after.
#[test]
fn an_append_overwriting_a_committed_entry_stops_the_follower() {
    let mut net = Net::three_peers_with_one_entry();
    // A commit notice tells the followers the entry is committed.
    net.tick_all(3);
    let term = net.peer(2).term();
    let committed = net.commit(2);
    assert_eq!(
        committed,
        Index(2),
        "the no-op and \"x\" are committed on 2"
    );
    let ours = net.peer(2).term_at(committed).expect("held");
    let forged_term = Term(term.0 + 1);
    let forged = msg(
        3,
        2,
        forged_term.0,
        MessageBody::Append {
            prev: LogId::new(ours, Index(1)),
            entries: vec![Entry {
                id: LogId::new(forged_term, committed),
                kind: EntryKind::Normal,
                data: Bytes::from_static(b"not x"),
            }],
            commit: Index(0),
        },
    );
    let expected = SafetyViolation {
        term: forged_term,
        index: committed,
        sender: NodeId(3),
        ours,
        theirs: forged_term,
        committed,
    };
    assert_eq!(
        net.peer(2).step(forged.clone()),
        Err(StepError::SafetyViolation(expected.clone()))
    );
    let text = expected.to_string();
    assert!(
        text.contains(&format!("{} (leader in term {forged_term})", NodeId(3)))
            && text.contains(&format!("committed entry {committed}")),
        "the error names sender, term and index: {text}"
    );
    let follower = net.peer(2);
    assert!(follower.is_stopped());
    assert_eq!(follower.safety_violation(), Some(&expected));
    assert_eq!(follower.status().safety_violation, Some(expected.clone()));
    assert_eq!(follower.counters().safety_violations, 1);
    assert_eq!(
        follower.entries(committed, committed.next()).expect("held")[0].data,
        Bytes::from_static(b"x"),
        "the committed entry is untouched"
    );
    // Every later input is refused; nothing more is handed out.
    assert_eq!(
        follower.step(forged),
        Err(StepError::SafetyViolation(expected))
    );
    assert!(matches!(
        follower.read_index(1),
        Err(ProposeError::NotLeader { .. })
    ));
    follower.tick();
    assert!(!follower.has_ready());
    assert!(follower.ready().is_empty());
    assert_eq!(follower.counters().safety_violations, 1);
}

/// A correct leader's appends that reach into the committed prefix (a retransmission) match
/// it and are accepted: the check refuses only a contradiction.
#[test]
fn a_retransmitted_append_within_the_committed_prefix_is_accepted() {
    let mut net = Net::three_peers_with_one_entry();
    net.tick_all(3);
    let term = net.peer(2).term();
    let entries = net.peer(1).entries(Index(1), Index(3)).expect("held");
    let again = msg(
        1,
        2,
        term.0,
        MessageBody::Append {
            prev: LogId::default(),
            entries,
            commit: Index(2),
        },
    );
    assert_eq!(net.peer(2).step(again), Ok(()));
    assert!(!net.peer(2).is_stopped());
    assert_eq!(net.peer(2).counters().safety_violations, 0);
}

/// The same from the consistency check: an append whose `prev` at the commit index names
/// another term contradicts the committed entry there, whatever it carries.
#[test]
fn a_prev_contradicting_the_commit_index_stops_the_follower() {
    let mut net = Net::three_peers_with_one_entry();
    net.tick_all(3);
    let term = net.peer(2).term();
    let committed = net.commit(2);
    let ours = net.peer(2).term_at(committed).expect("held");
    let claimed = Term(ours.0 + 1);
    let forged = msg(
        1,
        2,
        term.0,
        MessageBody::Append {
            prev: LogId::new(claimed, committed),
            entries: Vec::new(),
            commit: Index(0),
        },
    );
    let Err(StepError::SafetyViolation(violation)) = net.peer(2).step(forged) else {
        panic!("the contradiction was not refused as a safety violation");
    };
    assert_eq!(
        (
            violation.index,
            violation.ours,
            violation.theirs,
            violation.sender
        ),
        (committed, ours, claimed, NodeId(1))
    );
    assert!(net.peer(2).is_stopped());
}
