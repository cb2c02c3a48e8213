//! The log times every fdatasync it performs into a histogram shared with its readers, also
//! once the log has moved to another thread.

use std::sync::mpsc;

use bytes::Bytes;
use raft_core::{Configuration, Entry, EntryKind, Index, LogId, NodeId, PersistRequest, Term};
use raft_wal::{Wal, WalOptions};

fn voters() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

fn append_request(id: u64) -> PersistRequest {
    PersistRequest {
        id,
        snapshot: None,
        entries: vec![Entry {
            id: LogId::new(Term(1), Index(id)),
            kind: EntryKind::Normal,
            data: Bytes::from(format!("command {id}")),
        }],
        hard_state: None,
    }
}

#[test]
fn every_write_records_one_fdatasync() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut wal = Wal::open(dir.path(), voters(), WalOptions::default()).expect("opens");
    let latency = wal.sync_latency();
    assert_eq!(
        latency.snapshot().count,
        0,
        "opening a new log syncs no segment write"
    );
    for id in 1..=3 {
        wal.persist(append_request(id)).expect("durable");
    }
    let snapshot = latency.snapshot();
    assert_eq!(snapshot.count, 3);
    assert_eq!(snapshot.cumulative_counts.last(), Some(&3));
    assert!(snapshot.sum_seconds > 0.0);
}

#[test]
fn the_histogram_stays_readable_after_the_log_moves_to_another_thread() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = Wal::open(dir.path(), voters(), WalOptions::default()).expect("opens");
    let latency = wal.sync_latency();
    let (done_sender, done) = mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut wal = wal;
        let written = wal.write([append_request(1), append_request(2)]);
        done_sender
            .send(written.expect("durable"))
            .expect("test listens");
        wal
    });
    assert_eq!(done.recv().expect("reported"), Some(2));
    assert_eq!(latency.snapshot().count, 1, "one batch, one fdatasync");
    drop(writer.join().expect("the writer returns the log"));
}

#[test]
fn skipped_syncs_are_not_recorded() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = WalOptions {
        unsafe_no_sync: true,
        ..WalOptions::default()
    };
    let mut wal = Wal::open(dir.path(), voters(), options).expect("opens");
    wal.persist(append_request(1)).expect("written");
    assert_eq!(wal.sync_latency().snapshot().count, 0);
}
