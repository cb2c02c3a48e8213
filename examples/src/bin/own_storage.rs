//! A storage engine of your own under `raft-node`, checked by the storage conformance suite.
//!
//! `FileStore` is a small durable store: every batch of requests the node hands it is appended
//! to one file and fsynced, then applied to an in-memory copy that the core reads. Opening it
//! replays the file. (A production store would also checksum its records and rewrite the file
//! after a snapshot; this one keeps the example short.) `check_storage` then holds it to every
//! rule the core relies on, with a crash and reopen after every write.
//!
//! Run it: `cargo run -p raft-examples --bin own_storage`

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use raft_node::bytes::{Buf, BufMut, BytesMut};
use raft_node::core::testing::storage::{check_storage, BoxError, Rule, StoreHarness};
use raft_node::core::wire::{
    decode_entry, decode_snapshot_meta, encode_entry, encode_snapshot_meta,
};
use raft_node::core::{HardState, LogId, MemStorage, PersistRequest, Snapshot, SnapshotMeta};
use raft_node::{Bytes, Configuration, Index, LogStore, NodeId, SharedMemStorage, Term};

/// The log file: the bootstrap configuration, then one record per request, each
/// `length u32 | record`, in the order written.
struct FileStore {
    dir: PathBuf,
    file: File,
    state: SharedMemStorage,
}

impl FileStore {
    /// Opens the store in `dir`, replaying what it holds; a new one starts from `bootstrap`,
    /// which it writes down first: a restarted peer must find its configuration again.
    fn open(dir: &Path, bootstrap: &Configuration) -> Result<FileStore, BoxError> {
        let path = dir.join("requests.log");
        let mut contents = Vec::new();
        if path.exists() {
            File::open(&path)?.read_to_end(&mut contents)?;
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut records = Bytes::from(contents);
        let first = next_record(&mut records);
        let bootstrap = match first {
            Some(record) => decode_snapshot_meta(record)?.configuration,
            None => {
                let meta = SnapshotMeta {
                    last_included: LogId::default(),
                    configuration: bootstrap.clone(),
                };
                let mut record = BytesMut::new();
                encode_snapshot_meta(&meta, &mut record);
                file.set_len(0)?;
                write_records(&mut file, [record])?;
                bootstrap.clone()
            }
        };
        let mut state = MemStorage::new(bootstrap);
        while let Some(record) = next_record(&mut records) {
            state.persist(decode_request(record)?);
        }
        Ok(FileStore {
            dir: dir.to_path_buf(),
            file,
            state: SharedMemStorage::from_storage(state),
        })
    }
}

/// The next whole record; `None` at the end, or before a record a crash cut short (it was
/// never acknowledged).
fn next_record(records: &mut Bytes) -> Option<Bytes> {
    let length = u32::from_be_bytes(records.get(..4)?.try_into().ok()?) as usize;
    if records.len() < 4 + length {
        return None;
    }
    records.advance(4);
    Some(records.split_to(length))
}

/// Appends `length u32 | record` for each record, then makes it durable.
fn write_records(
    file: &mut File,
    records: impl IntoIterator<Item = BytesMut>,
) -> std::io::Result<()> {
    let mut buffer = BytesMut::new();
    for record in records {
        buffer.put_u32(record.len() as u32);
        buffer.put_slice(&record);
    }
    file.write_all(&buffer)?;
    file.sync_data()
}

impl LogStore for FileStore {
    type Reader = SharedMemStorage;
    type Error = std::io::Error;

    fn reader(&self) -> SharedMemStorage {
        self.state.clone()
    }

    fn write(&mut self, requests: Vec<PersistRequest>) -> Result<(), std::io::Error> {
        write_records(&mut self.file, requests.iter().map(encode_request))?;
        // Durable now: only from here may the core read it.
        self.state.write(requests).map_err(|never| match never {})
    }
}

/// `snapshot? | entries | hard state?`, each part length-prefixed.
fn encode_request(request: &PersistRequest) -> BytesMut {
    let mut out = BytesMut::new();
    let mut part = BytesMut::new();
    out.put_u8(u8::from(request.snapshot.is_some()));
    if let Some(snapshot) = &request.snapshot {
        encode_snapshot_meta(&snapshot.meta, &mut part);
        put_part(&mut out, &part.split());
        put_part(&mut out, &snapshot.data);
    }
    out.put_u32(request.entries.len() as u32);
    for entry in &request.entries {
        encode_entry(entry, &mut part);
        put_part(&mut out, &part.split());
    }
    out.put_u8(u8::from(request.hard_state.is_some()));
    if let Some(hard_state) = request.hard_state {
        out.put_u64(hard_state.term.0);
        out.put_u64(hard_state.vote.map_or(0, |vote| vote.0));
        out.put_u64(hard_state.commit.0);
    }
    out
}

fn put_part(out: &mut BytesMut, part: &[u8]) {
    out.put_u32(part.len() as u32);
    out.put_slice(part);
}

fn decode_request(mut record: Bytes) -> Result<PersistRequest, BoxError> {
    let mut request = PersistRequest::default();
    if get_u8(&mut record)? == 1 {
        let meta = decode_snapshot_meta(get_part(&mut record)?)?;
        let data = get_part(&mut record)?;
        request.snapshot = Some(Snapshot { meta, data });
    }
    for _ in 0..get_u64_parts(&mut record, 4)? {
        request.entries.push(decode_entry(get_part(&mut record)?)?);
    }
    if get_u8(&mut record)? == 1 {
        let [term, vote, commit] = [(); 3].map(|()| get_u64_parts(&mut record, 8));
        request.hard_state = Some(HardState {
            term: Term(term?),
            vote: Some(NodeId(vote?)).filter(|vote| vote.0 != 0),
            commit: Index(commit?),
        });
    }
    Ok(request)
}

fn get_u8(record: &mut Bytes) -> Result<u8, BoxError> {
    Ok(get_u64_parts(record, 1)? as u8)
}

/// A big-endian integer of `bytes` bytes (1, 4 or 8).
fn get_u64_parts(record: &mut Bytes, bytes: usize) -> Result<u64, BoxError> {
    if record.len() < bytes {
        return Err("record cut short".into());
    }
    Ok(record.get_uint(bytes))
}

fn get_part(record: &mut Bytes) -> Result<Bytes, BoxError> {
    let length = get_u64_parts(record, 4)? as usize;
    if record.len() < length {
        return Err("record cut short".into());
    }
    Ok(record.split_to(length))
}

/// How the suite makes and crashes stores: a directory each; a crash drops the store without
/// closing anything and opens the directory again.
struct Harness {
    root: PathBuf,
    stores: u32,
}

impl StoreHarness for Harness {
    type Store = FileStore;

    fn create(&mut self, bootstrap: &Configuration) -> Result<FileStore, BoxError> {
        self.stores += 1;
        let dir = self.root.join(format!("store-{}", self.stores));
        std::fs::create_dir_all(&dir)?;
        FileStore::open(&dir, bootstrap)
    }

    fn reopen(&mut self, store: FileStore) -> Result<FileStore, BoxError> {
        let dir = store.dir.clone();
        drop(store);
        // A reopened store replays its file; the bootstrap counts only for a new one.
        FileStore::open(&dir, &Configuration::default())
    }
}

fn main() -> Result<(), BoxError> {
    let root = std::env::temp_dir().join(format!("own-storage-{}", std::process::id()));
    let report = check_storage(Harness {
        root: root.clone(),
        stores: 0,
    });
    std::fs::remove_dir_all(&root)?;
    println!(
        "FileStore holds all {} rules ({} writes, {} crashes and reopens):",
        Rule::ALL.len(),
        report.writes(),
        report.reopens()
    );
    for rule in Rule::ALL {
        println!("  {}", rule.name());
    }
    Ok(())
}
