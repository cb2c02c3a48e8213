//! What a caller driving the core from outside (its own loop, transport and storage) relies on:
//! the driving loop ends when the peer stops.

mod common;

use bytes::Bytes;
use common::config;
use raft_core::{
    Configuration, Entry, Index, MemStorage, NodeId, ProposeError, Raft, Snapshot, Storage,
    StorageError, Term,
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
