//! The reference: [`MemStorage`] fed the same requests, and the model state that turns an
//! abstract step into a request a Raft peer could make.

use super::generate::*;
use super::*;

/// The reference: [`MemStorage`] plus what a Raft peer remembers to make valid requests.
pub(super) struct Model {
    pub(super) storage: MemStorage,
    /// The newest term used anywhere.
    pub(super) term: u64,
    pub(super) next_id: u64,
}

impl Model {
    pub(super) fn new() -> Model {
        Model {
            storage: MemStorage::new(bootstrap()),
            term: 1,
            next_id: 1,
        }
    }

    fn snapshot_index(&self) -> u64 {
        self.storage.snapshot_meta().last_included.index.0
    }

    fn last_index(&self) -> u64 {
        self.storage
            .last_index()
            .expect("MemStorage reads do not fail")
            .0
    }

    fn commit(&self) -> u64 {
        self.storage.hard_state().commit.0
    }

    fn hard_state(&self, term: u64, vote: Option<u64>, commit: u64) -> HardState {
        HardState {
            term: Term(term),
            vote: vote.map(NodeId),
            commit: Index(commit),
        }
    }

    /// The concrete request `step` stands for in the current state. The caller applies it to
    /// `storage` before asking for the next one.
    pub(super) fn request(&mut self, step: &Step) -> PersistRequest {
        let snapshot_index = self.snapshot_index();
        let last = self.last_index();
        let commit = self.commit();
        assert!(
            snapshot_index <= commit && commit <= last,
            "Model: snapshot <= commit <= last"
        );
        let mut request = PersistRequest {
            id: self.next_id,
            ..PersistRequest::default()
        };
        self.next_id += 1;
        match step {
            Step::Append {
                entries,
                commit: advance,
            } => {
                let term = self.term;
                request.entries = (last + 1..)
                    .zip(entries)
                    .map(|(index, spec)| entry(index, term, spec))
                    .collect();
                if let Some(selector) = advance {
                    let new_last = last + entries.len() as u64;
                    let vote = self.storage.hard_state().vote.map(|vote| vote.0);
                    request.hard_state =
                        Some(self.hard_state(term, vote, pick(*selector, commit, new_last)));
                }
            }
            Step::Overwrite { start, entries } => {
                self.term += 1;
                let term = self.term;
                let start = pick(*start, commit + 1, last + 1);
                request.entries = (start..)
                    .zip(entries)
                    .map(|(index, spec)| entry(index, term, spec))
                    .collect();
            }
            Step::HardState {
                new_term,
                vote,
                commit: selector,
            } => {
                if *new_term {
                    self.term += 1;
                }
                request.hard_state =
                    Some(self.hard_state(self.term, *vote, pick(*selector, commit, last)));
            }
            Step::Compact {
                at,
                voters,
                data_bytes,
            } => {
                let (index, term) = if snapshot_index == last {
                    let base = self.storage.snapshot_meta().last_included;
                    (base.index.0, base.term.0)
                } else {
                    let index = pick(*at, snapshot_index + 1, last);
                    let term = self
                        .storage
                        .term(Index(index))
                        .expect("compacted entry is stored");
                    (index, term.0)
                };
                request.snapshot = Some(snapshot(index, term, *voters, *data_bytes));
            }
            Step::Install {
                beyond,
                at,
                overlap,
                entries,
                hard_state,
                voters,
                data_bytes,
            } => {
                self.term += 1;
                let term = self.term;
                let index = if *beyond || commit == last {
                    pick(*at, last + 1, last + 4)
                } else {
                    pick(*at, commit + 1, last)
                };
                request.snapshot = Some(snapshot(index, term, *voters, *data_bytes));
                let start = index + 1 - pick(*overlap, 0, 2).min(index);
                request.entries = (start..)
                    .zip(entries)
                    .map(|(index, spec)| entry(index, term, spec))
                    .collect();
                if *hard_state {
                    request.hard_state = Some(self.hard_state(term, None, index));
                }
            }
            Step::Stale { at, term } => {
                let index = pick(*at, 0, snapshot_index);
                request.snapshot = Some(snapshot(index, pick(*term, 0, self.term), 0, 7));
            }
        }
        request
    }
}
