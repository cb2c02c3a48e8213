//! The one text form of what peers exchange and what the core hands out: `Display` for
//! [`Message`], [`MessageBody`], [`Configuration`], [`HardState`], [`SoftState`] and
//! [`Ready`]. Logs, the simulator's traces and golden interaction files all print through it,
//! so a message reads the same everywhere.
//!
//! ```text
//!  1->2 Append term=3 prev=2.5 commit=5 entries=[3.6:noop 3.7..3.8]
//!  2->1 AppendResp term=3 index=8 success=true hint=0.0
//!  ready (one line per part, messages one a line):
//!    soft role=Leader leader=1
//!    persist #4 entries=[3.6:noop 3.7..3.8] hard=(term=3 vote=1 commit=5)
//!    send 1->2 Append term=3 ...
//!    apply entries=[3.6:noop]
//! ```
//!
//! The form is stable: every field that matters to the protocol is printed, in a fixed order,
//! as `key=value`; a log id is `term.index`; a node is its number; a set is `{1,2,3}`. Entries
//! print as their log ids, a run of normal entries of one term as `first..last`, a no-op with
//! `:noop` and a configuration entry with the configuration it carries. Command bytes are not
//! printed (the protocol never looks at them), only the size of snapshot data.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;

use crate::error::ProposeError;
use crate::message::{Message, MessageBody};
use crate::ready::{PersistRequest, ReadState, Ready, SoftState};
use crate::types::{Configuration, Entry, EntryKind, HardState, NodeId, Snapshot};

impl fmt::Display for Message {
    /// `from->to Kind term=T fields...`, one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}->{} {} term={}",
            self.from.0,
            self.to.0,
            self.body.kind_name(),
            self.term.0
        )?;
        write_body_fields(f, &self.body)
    }
}

impl fmt::Display for MessageBody {
    /// `Kind fields...`, one line (the message's form without sender, receiver and term).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind_name())?;
        write_body_fields(f, self)
    }
}

/// The fields of `body`, each preceded by a space.
fn write_body_fields(f: &mut fmt::Formatter<'_>, body: &MessageBody) -> fmt::Result {
    match body {
        MessageBody::VoteRequest {
            last_log,
            pre_vote: _, // in the kind name
            leadership_transfer,
        } => write!(f, " last={last_log} transfer={leadership_transfer}"),
        MessageBody::VoteResponse {
            granted,
            pre_vote: _, // in the kind name
        } => write!(f, " granted={granted}"),
        MessageBody::Append {
            prev,
            entries,
            commit,
        } => {
            write!(f, " prev={prev} commit={} entries=", commit.0)?;
            write_entries(f, entries)
        }
        MessageBody::AppendResponse {
            index,
            success,
            hint,
        } => write!(f, " index={} success={success} hint={hint}", index.0),
        MessageBody::Heartbeat { commit, read_round } => {
            write!(f, " commit={} read_round={read_round}", commit.0)
        }
        MessageBody::Commit { commit } => write!(f, " commit={}", commit.0),
        MessageBody::HeartbeatResponse { read_round } => write!(f, " read_round={read_round}"),
        MessageBody::InstallSnapshot {
            meta,
            offset,
            data,
            done,
        } => write!(
            f,
            " last={} conf=({}) offset={offset} bytes={} done={done}",
            meta.last_included,
            meta.configuration,
            data.len()
        ),
        MessageBody::InstallSnapshotResponse {
            last_included,
            next_offset,
            done,
        } => write!(
            f,
            " last={last_included} next_offset={next_offset} done={done}"
        ),
        MessageBody::TimeoutNow => Ok(()),
        MessageBody::ReadIndexRequest { context } => write!(f, " context={context}"),
        MessageBody::ReadIndexResponse { context, index } => match index {
            Some(index) => write!(f, " context={context} index={}", index.0),
            None => write!(f, " context={context} index=none"),
        },
        MessageBody::RecoveryProbe => Ok(()),
        MessageBody::RecoveryProbeResponse { last_log } => write!(f, " last={last_log}"),
        MessageBody::ForwardProposal {
            session,
            first_id,
            proposals,
        } => {
            let bytes: usize = proposals.iter().map(Bytes::len).sum();
            write!(f, " session={session} ids=")?;
            write_id_range(f, *first_id, proposals.len())?;
            write!(f, " bytes={bytes}")
        }
        MessageBody::ForwardProposalResponse {
            session,
            first_id,
            outcomes,
        } => {
            write!(f, " session={session} ids=")?;
            write_id_range(f, *first_id, outcomes.len())?;
            f.write_str(" outcomes=[")?;
            for (position, outcome) in outcomes.iter().enumerate() {
                if position > 0 {
                    f.write_str(" ")?;
                }
                match outcome {
                    Ok(id) => write!(f, "{id}")?,
                    Err(ProposeError::NotLeader { .. }) => f.write_str("not-leader")?,
                    Err(ProposeError::TooLarge { .. }) => f.write_str("too-large")?,
                    Err(ProposeError::Busy) => f.write_str("busy")?,
                    Err(ProposeError::TransferInProgress) => f.write_str("transfer")?,
                    Err(ProposeError::NotVoter(_)) => f.write_str("not-voter")?,
                }
            }
            f.write_str("]")
        }
    }
}

/// `first..last` of `count` consecutive forward ids (`first` alone for one, `first..` and
/// nothing for none).
fn write_id_range(f: &mut fmt::Formatter<'_>, first: u64, count: usize) -> fmt::Result {
    match count {
        0 => write!(f, "{first}.."),
        1 => write!(f, "{first}"),
        _ => write!(f, "{first}..{}", first.wrapping_add(count as u64 - 1)),
    }
}

/// `[a b c]`: each entry's log id, a run of consecutive normal entries of one term as
/// `first..last`, a no-op as `id:noop`, a configuration entry as `id:conf(...)`.
fn write_entries(f: &mut fmt::Formatter<'_>, entries: &[Entry]) -> fmt::Result {
    f.write_str("[")?;
    let mut position = 0;
    while position < entries.len() {
        if position > 0 {
            f.write_str(" ")?;
        }
        let entry = &entries[position];
        match entry.kind {
            EntryKind::Normal => {
                let mut last = position;
                while entries.get(last + 1).is_some_and(|next| {
                    next.kind == EntryKind::Normal
                        && next.id.term == entry.id.term
                        && next.id.index.0 == entries[last].id.index.0.wrapping_add(1)
                }) {
                    last += 1;
                }
                if last == position {
                    write!(f, "{}", entry.id)?;
                } else {
                    write!(f, "{}..{}", entry.id, entries[last].id)?;
                }
                position = last;
            }
            EntryKind::Noop => write!(f, "{}:noop", entry.id)?,
            EntryKind::Configuration => match Configuration::decode(&entry.data) {
                Ok(configuration) => write!(f, "{}:conf({configuration})", entry.id)?,
                Err(_) => write!(f, "{}:conf(undecodable)", entry.id)?,
            },
        }
        position += 1;
    }
    f.write_str("]")
}

/// `{1,2,3}`.
fn write_set(f: &mut fmt::Formatter<'_>, set: &BTreeSet<NodeId>) -> fmt::Result {
    f.write_str("{")?;
    for (position, node) in set.iter().enumerate() {
        if position > 0 {
            f.write_str(",")?;
        }
        write!(f, "{}", node.0)?;
    }
    f.write_str("}")
}

impl fmt::Display for Configuration {
    /// `voters={1,2,4}`, then ` outgoing={1,2,3}` while joint and ` learners={5}` when there are
    /// any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("voters=")?;
        write_set(f, &self.voters)?;
        if !self.outgoing.is_empty() {
            f.write_str(" outgoing=")?;
            write_set(f, &self.outgoing)?;
        }
        if !self.learners.is_empty() {
            f.write_str(" learners=")?;
            write_set(f, &self.learners)?;
        }
        Ok(())
    }
}

/// A node or `none`.
struct OptionalNode(Option<NodeId>);

impl fmt::Display for OptionalNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(node) => write!(f, "{}", node.0),
            None => f.write_str("none"),
        }
    }
}

impl fmt::Display for HardState {
    /// `term=3 vote=1 commit=5` (`vote=none` before a vote).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "term={} vote={} commit={}",
            self.term.0,
            OptionalNode(self.vote),
            self.commit.0
        )
    }
}

impl fmt::Display for SoftState {
    /// `role=Leader leader=1` (`leader=none` when no leader is known).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "role={:?} leader={}",
            self.role,
            OptionalNode(self.leader)
        )
    }
}

/// `last=3.100 conf=(...) bytes=N`.
fn write_snapshot(f: &mut fmt::Formatter<'_>, snapshot: &Snapshot) -> fmt::Result {
    write!(
        f,
        "last={} conf=({}) bytes={}",
        snapshot.meta.last_included,
        snapshot.meta.configuration,
        snapshot.data.len()
    )
}

impl fmt::Display for PersistRequest {
    /// `#id`, then ` snapshot=(...)`, ` entries=[...]` and ` hard=(...)` for the parts present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.id)?;
        if let Some(snapshot) = &self.snapshot {
            f.write_str(" snapshot=(")?;
            write_snapshot(f, snapshot)?;
            f.write_str(")")?;
        }
        if !self.entries.is_empty() {
            f.write_str(" entries=")?;
            write_entries(f, &self.entries)?;
        }
        if let Some(hard_state) = &self.hard_state {
            write!(f, " hard=({hard_state})")?;
        }
        Ok(())
    }
}

impl fmt::Display for ReadState {
    /// `context=C index=I`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "context={} index={}", self.context, self.index.0)
    }
}

impl fmt::Display for Ready {
    /// One line per part, in the order the caller acts on them, each message on its own line;
    /// nothing for an empty `Ready`:
    ///
    /// ```text
    /// soft role=Leader leader=1
    /// persist #4 entries=[3.6:noop] hard=(term=3 vote=1 commit=0)
    /// send 1->2 Append term=3 prev=2.5 commit=0 entries=[3.6:noop]
    /// apply snapshot last=2.5 conf=(voters={1,2,3}) bytes=10
    /// apply entries=[2.4..2.5]
    /// read context=7 index=5
    /// failed read context=8
    /// forwarded id=3 placed=3.9
    /// forwarded id=4 refused: busy: too many uncommitted proposals or pending reads
    /// forwarded id=5 unanswered
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines = Lines { f, first: true };
        if let Some(soft_state) = &self.soft_state {
            lines.start()?;
            write!(lines.f, "soft {soft_state}")?;
        }
        if let Some(persist) = &self.persist {
            lines.start()?;
            write!(lines.f, "persist {persist}")?;
        }
        for message in &self.messages {
            lines.start()?;
            write!(lines.f, "send {message}")?;
        }
        if let Some(snapshot) = &self.snapshot_to_apply {
            lines.start()?;
            lines.f.write_str("apply snapshot ")?;
            write_snapshot(lines.f, snapshot)?;
        }
        if !self.committed_entries.is_empty() {
            lines.start()?;
            lines.f.write_str("apply entries=")?;
            write_entries(lines.f, &self.committed_entries)?;
        }
        for read in &self.read_states {
            lines.start()?;
            write!(lines.f, "read {read}")?;
        }
        for context in &self.failed_reads {
            lines.start()?;
            write!(lines.f, "failed read context={context}")?;
        }
        for (id, outcome) in &self.forwarded {
            lines.start()?;
            write!(lines.f, "forwarded id={}", id.0)?;
            match outcome {
                Ok(placed) => write!(lines.f, " placed={placed}")?,
                Err(crate::ForwardError::Refused(error)) => write!(lines.f, " refused: {error}")?,
                Err(crate::ForwardError::Unanswered) => lines.f.write_str(" unanswered")?,
            }
        }
        Ok(())
    }
}

/// Writes lines separated by newlines (none after the last).
struct Lines<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    first: bool,
}

impl Lines<'_, '_> {
    fn start(&mut self) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.f.write_str("\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::message::MessageBody;
    use crate::ready::PersistRequest;
    use crate::types::{Index, LogId, Role, SnapshotMeta, Term};

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(Term(term), Index(index))
    }

    fn message(body: MessageBody) -> String {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body,
        }
        .to_string()
    }

    fn entry(term: u64, index: u64, kind: EntryKind, data: Bytes) -> Entry {
        Entry {
            id: id(term, index),
            kind,
            data,
        }
    }

    fn joint() -> Configuration {
        Configuration {
            voters: [NodeId(1), NodeId(2), NodeId(4)].into_iter().collect(),
            outgoing: [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect(),
            learners: [NodeId(5)].into_iter().collect(),
        }
    }

    /// Every kind of message, pinned: golden interaction files depend on this text.
    #[test]
    fn every_message_kind_has_its_pinned_line() {
        let table = [
            (
                MessageBody::VoteRequest {
                    last_log: id(3, 9),
                    pre_vote: true,
                    leadership_transfer: false,
                },
                "1->2 PreVote term=3 last=3.9 transfer=false",
            ),
            (
                MessageBody::VoteRequest {
                    last_log: id(3, 9),
                    pre_vote: false,
                    leadership_transfer: true,
                },
                "1->2 Vote term=3 last=3.9 transfer=true",
            ),
            (
                MessageBody::VoteResponse {
                    granted: false,
                    pre_vote: true,
                },
                "1->2 PreVoteResp term=3 granted=false",
            ),
            (
                MessageBody::Append {
                    prev: id(2, 4),
                    entries: Vec::new(),
                    commit: Index(4),
                },
                "1->2 Append term=3 prev=2.4 commit=4 entries=[]",
            ),
            (
                MessageBody::AppendResponse {
                    index: Index(6),
                    success: false,
                    hint: id(2, 3),
                },
                "1->2 AppendResp term=3 index=6 success=false hint=2.3",
            ),
            (
                MessageBody::Heartbeat {
                    commit: Index(6),
                    read_round: 17,
                },
                "1->2 Heartbeat term=3 commit=6 read_round=17",
            ),
            (
                MessageBody::HeartbeatResponse { read_round: 17 },
                "1->2 HeartbeatResp term=3 read_round=17",
            ),
            (
                MessageBody::Commit { commit: Index(9) },
                "1->2 Commit term=3 commit=9",
            ),
            (
                MessageBody::InstallSnapshot {
                    meta: SnapshotMeta {
                        last_included: id(3, 100),
                        configuration: joint(),
                    },
                    offset: 4096,
                    data: Bytes::from_static(b"chunk"),
                    done: true,
                },
                "1->2 InstallSnapshot term=3 last=3.100 \
                 conf=(voters={1,2,4} outgoing={1,2,3} learners={5}) offset=4096 bytes=5 done=true",
            ),
            (
                MessageBody::InstallSnapshotResponse {
                    last_included: id(3, 100),
                    next_offset: 5096,
                    done: false,
                },
                "1->2 InstallSnapshotResp term=3 last=3.100 next_offset=5096 done=false",
            ),
            (MessageBody::TimeoutNow, "1->2 TimeoutNow term=3"),
            (
                MessageBody::ReadIndexRequest { context: 99 },
                "1->2 ReadIndex term=3 context=99",
            ),
            (
                MessageBody::ReadIndexResponse {
                    context: 99,
                    index: Some(Index(6)),
                },
                "1->2 ReadIndexResp term=3 context=99 index=6",
            ),
            (
                MessageBody::ReadIndexResponse {
                    context: 98,
                    index: None,
                },
                "1->2 ReadIndexResp term=3 context=98 index=none",
            ),
            (MessageBody::RecoveryProbe, "1->2 RecoveryProbe term=3"),
            (
                MessageBody::RecoveryProbeResponse { last_log: id(3, 7) },
                "1->2 RecoveryProbeResp term=3 last=3.7",
            ),
            (
                MessageBody::ForwardProposal {
                    session: 7,
                    first_id: 5,
                    proposals: vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cde")],
                },
                "1->2 ForwardProposal term=3 session=7 ids=5..6 bytes=5",
            ),
            (
                MessageBody::ForwardProposalResponse {
                    session: 7,
                    first_id: 5,
                    outcomes: vec![Ok(id(3, 10)), Err(crate::ProposeError::Busy)],
                },
                "1->2 ForwardProposalResp term=3 session=7 ids=5..6 outcomes=[3.10 busy]",
            ),
        ];
        for (body, line) in table {
            assert_eq!(message(body.clone()), line);
            // The body alone is the same text without the addressing and term.
            let alone = body.to_string();
            assert_eq!(
                line.replace(" term=3", "").strip_prefix("1->2 "),
                Some(alone.as_str())
            );
        }
    }

    /// Runs of normal entries of one term collapse; a term change, a gap, a no-op or a
    /// configuration entry breaks the run.
    #[test]
    fn entries_print_as_runs_of_log_ids() {
        let normal = |term, index| entry(term, index, EntryKind::Normal, Bytes::from("x"));
        let entries = vec![
            entry(3, 5, EntryKind::Noop, Bytes::new()),
            normal(3, 6),
            normal(3, 7),
            normal(3, 8),
            normal(4, 9),
            entry(
                4,
                10,
                EntryKind::Configuration,
                Configuration::new([NodeId(1), NodeId(2)]).encode(),
            ),
            entry(4, 11, EntryKind::Configuration, Bytes::from_static(b"\xff")),
            normal(4, 12),
            normal(4, 14),
        ];
        let line = message(MessageBody::Append {
            prev: id(3, 4),
            entries,
            commit: Index(4),
        });
        assert_eq!(
            line,
            "1->2 Append term=3 prev=3.4 commit=4 entries=[3.5:noop 3.6..3.8 4.9 \
             4.10:conf(voters={1,2}) 4.11:conf(undecodable) 4.12 4.14]"
        );
    }

    #[test]
    fn a_ready_prints_one_line_per_part_and_per_message() {
        assert_eq!(Ready::default().to_string(), "");
        let noop = entry(3, 6, EntryKind::Noop, Bytes::new());
        let ready = Ready {
            soft_state: Some(SoftState {
                role: Role::Leader,
                leader: Some(NodeId(1)),
            }),
            persist: Some(PersistRequest {
                id: 4,
                snapshot: Some(Snapshot {
                    meta: SnapshotMeta {
                        last_included: id(2, 5),
                        configuration: Configuration::new([NodeId(1), NodeId(2), NodeId(3)]),
                    },
                    data: Bytes::from_static(b"0123456789"),
                }),
                entries: vec![noop.clone()],
                hard_state: Some(HardState {
                    term: Term(3),
                    vote: Some(NodeId(1)),
                    commit: Index(5),
                }),
            }),
            messages: vec![
                Message {
                    from: NodeId(1),
                    to: NodeId(2),
                    term: Term(3),
                    body: MessageBody::TimeoutNow,
                },
                Message {
                    from: NodeId(1),
                    to: NodeId(3),
                    term: Term(3),
                    body: MessageBody::Commit { commit: Index(5) },
                },
            ],
            snapshot_to_apply: None,
            committed_entries: vec![noop],
            read_states: vec![ReadState {
                context: 7,
                index: Index(5),
            }],
            failed_reads: vec![8],
            forwarded: vec![
                (crate::ForwardId(3), Ok(id(3, 9))),
                (
                    crate::ForwardId(4),
                    Err(crate::ForwardError::Refused(ProposeError::Busy)),
                ),
                (crate::ForwardId(5), Err(crate::ForwardError::Unanswered)),
            ],
        };
        assert_eq!(
            ready.to_string(),
            "soft role=Leader leader=1\n\
             persist #4 snapshot=(last=2.5 conf=(voters={1,2,3}) bytes=10) entries=[3.6:noop] \
             hard=(term=3 vote=1 commit=5)\n\
             send 1->2 TimeoutNow term=3\n\
             send 1->3 Commit term=3 commit=5\n\
             apply entries=[3.6:noop]\n\
             read context=7 index=5\n\
             failed read context=8\n\
             forwarded id=3 placed=3.9\n\
             forwarded id=4 refused: busy: too many uncommitted proposals or pending reads\n\
             forwarded id=5 unanswered"
        );
        let restart = Ready {
            soft_state: Some(SoftState {
                role: Role::Follower,
                leader: None,
            }),
            snapshot_to_apply: ready.persist.and_then(|persist| persist.snapshot),
            ..Ready::default()
        };
        assert_eq!(
            restart.to_string(),
            "soft role=Follower leader=none\n\
             apply snapshot last=2.5 conf=(voters={1,2,3}) bytes=10"
        );
        let no_vote = HardState {
            term: Term(2),
            vote: None,
            commit: Index(0),
        };
        assert_eq!(no_vote.to_string(), "term=2 vote=none commit=0");
    }
}
