//! How much the leader sends and when: the window of partial appends in flight, full appends,
//! coalesced acknowledgements, and spare followers flushed on a timer.

use bytes::Bytes;
use raft_core::{Index, Message, MessageBody, NodeId};

use crate::common::{classic_config, config, Net};
use crate::{propose_each_on_leader, three_led_by_1};

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
