//! A peer answers only for what is on its disk (Figure 2: persistent state is updated before
//! responding to RPCs): votes and acknowledgements only once durable.

use raft_core::{Index, LogId, Message, Raft, Storage, StorageError};

use super::{violated, Check};

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
