//! The replicated service each peer runs: a state machine that applies commands in log order,
//! takes snapshots of itself and restores from them.
//!
//! ```text
//!  ready.snapshot_to_apply ─► Service::restore(decode(data))
//!  ready.committed_entries ─► Service::apply(entry) ... ─► core.on_applied(last)
//!                                 └─ every K applied ─► core.compact(applied, encode())
//! ```
//!
//! The state is a digest chained over every command applied (with its index), so two peers
//! agree on the state at an index exactly when they applied the same commands up to it. A
//! snapshot carries the digest, the command count and optional filler bytes (so that it spans
//! several chunks); decoding verifies all of it, so a snapshot damaged in transfer is caught.
//!
//! When the peers also run a user's state machine (`crate::StateMachine`), its snapshot rides
//! in the same one, after the filler, with its length and hash in the header:
//!
//! ```text
//!  RAFTSIM1 │ applied │ digest │ commands │ filler bytes │ filler
//!  RAFTSIM2 │ applied │ digest │ commands │ filler bytes │ machine bytes │ machine hash │ filler │ machine
//! ```

use bytes::Bytes;
use raft_core::{Entry, EntryKind, Index};

use crate::trace::{hash_bytes, Digest};

const MAGIC: u64 = 0x5241_4654_5349_4d31; // "RAFTSIM1"
const MAGIC_WITH_MACHINE: u64 = 0x5241_4654_5349_4d32; // "RAFTSIM2"
const HEADER_BYTES: usize = 5 * 8;
const HEADER_WITH_MACHINE_BYTES: usize = 7 * 8;

/// One peer's state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    applied: Index,
    digest: Digest,
    commands: u64,
    last_snapshot: Index,
}

impl Default for Service {
    fn default() -> Service {
        Service::new()
    }
}

impl Service {
    /// An empty state machine.
    pub fn new() -> Service {
        Service {
            applied: Index(0),
            digest: Digest::default(),
            commands: 0,
            last_snapshot: Index(0),
        }
    }

    /// The last index applied (or restored from a snapshot).
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// The digest of the state: of every command applied, with its index.
    pub fn digest(&self) -> u64 {
        self.digest.value()
    }

    /// Commands (normal entries) applied, counting those a restored snapshot covers.
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// The index of the last snapshot taken or restored.
    pub fn last_snapshot(&self) -> Index {
        self.last_snapshot
    }

    /// Applies the next entry. Returns an error text when it is not the next index.
    pub(crate) fn apply(&mut self, entry: &Entry) -> Result<(), String> {
        if entry.index() != self.applied.next() {
            return Err(format!(
                "applied {} after {}: entries must be applied in order without gaps",
                entry.index(),
                self.applied
            ));
        }
        if entry.kind == EntryKind::Normal {
            self.digest.mix(&[entry.index().0, hash_bytes(&entry.data)]);
            self.commands += 1;
        }
        self.applied = entry.index();
        Ok(())
    }

    /// Whether a snapshot is due after applying, every `interval` entries.
    pub(crate) fn snapshot_due(&self, interval: Option<u64>) -> bool {
        interval.is_some_and(|interval| self.applied.0 >= self.last_snapshot.0 + interval.max(1))
    }

    /// Records that a snapshot through the applied index was handed to the core.
    pub(crate) fn snapshot_taken(&mut self) {
        self.last_snapshot = self.applied;
    }

    /// Serializes the state, with `padding_bytes` of verifiable filler and, if given, a user
    /// state machine's snapshot.
    pub(crate) fn encode(&self, padding_bytes: usize, machine: Option<&[u8]>) -> Bytes {
        let machine_bytes = machine.map_or(0, <[u8]>::len);
        let mut out = Vec::with_capacity(HEADER_WITH_MACHINE_BYTES + padding_bytes + machine_bytes);
        let magic = if machine.is_some() {
            MAGIC_WITH_MACHINE
        } else {
            MAGIC
        };
        let header = [
            magic,
            self.applied.0,
            self.digest.value(),
            self.commands,
            padding_bytes as u64,
        ];
        for word in header {
            out.extend_from_slice(&word.to_le_bytes());
        }
        if let Some(machine) = machine {
            out.extend_from_slice(&(machine.len() as u64).to_le_bytes());
            out.extend_from_slice(&hash_bytes(machine).to_le_bytes());
        }
        out.extend((0..padding_bytes).map(|position| filler(self.digest.value(), position)));
        out.extend_from_slice(machine.unwrap_or_default());
        Bytes::from(out)
    }

    /// Restores a state from a snapshot that covers entries through `index`; returns it with
    /// the user state machine's snapshot, if the snapshot holds one.
    pub(crate) fn decode(data: &[u8], index: Index) -> Result<(Service, Option<&[u8]>), String> {
        let word = |position: usize| {
            let mut bytes = [0u8; 8];
            let start = position * 8;
            bytes.copy_from_slice(data.get(start..start + 8)?);
            Some(u64::from_le_bytes(bytes))
        };
        let short = || {
            format!(
                "snapshot of {} bytes is shorter than its header",
                data.len()
            )
        };
        let magic = word(0).ok_or_else(short)?;
        let header_bytes = match magic {
            MAGIC => HEADER_BYTES,
            MAGIC_WITH_MACHINE => HEADER_WITH_MACHINE_BYTES,
            _ => return Err(format!("snapshot has a bad magic number {magic:#x}")),
        };
        let header: Vec<u64> = (0..header_bytes / 8)
            .map(word)
            .collect::<Option<_>>()
            .ok_or_else(short)?;
        let (applied, digest, commands, padding) = (header[1], header[2], header[3], header[4]);
        if applied != index.0 {
            return Err(format!(
                "snapshot data covers index {applied} but its metadata says {}",
                index.0
            ));
        }
        let (machine_bytes, machine_hash) = match header.get(5..7) {
            Some(&[length, hash]) => (length, Some(hash)),
            _ => (0, None),
        };
        let body = &data[header_bytes..];
        if body.len() as u64 != padding.saturating_add(machine_bytes) {
            return Err(format!(
                "snapshot holds {} bytes after its header, which says {padding} of filler and \
                 {machine_bytes} of state machine",
                body.len()
            ));
        }
        let (body, machine) = body.split_at(padding as usize);
        if let Some(position) = body
            .iter()
            .enumerate()
            .position(|(position, &byte)| byte != filler(digest, position))
        {
            return Err(format!("snapshot filler damaged at byte {position}"));
        }
        if machine_hash.is_some_and(|hash| hash != hash_bytes(machine)) {
            return Err("the state machine's part of the snapshot is damaged".to_string());
        }
        let service = Service {
            applied: index,
            digest: Digest::from_value(digest),
            commands,
            last_snapshot: index,
        };
        Ok((service, machine_hash.map(|_| machine)))
    }
}

fn filler(digest: u64, position: usize) -> u8 {
    (digest.rotate_left((position % 64) as u32) as u8) ^ (position as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{LogId, Term};

    fn entry(index: u64, data: &'static [u8]) -> Entry {
        Entry {
            id: LogId::new(Term(1), Index(index)),
            kind: EntryKind::Normal,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn snapshot_round_trips_and_detects_damage() {
        let mut service = Service::new();
        service.apply(&entry(1, b"a")).expect("in order");
        service.apply(&entry(2, b"b")).expect("in order");
        let data = service.encode(100, None);
        let (restored, machine) = Service::decode(&data, Index(2)).expect("valid snapshot");
        assert_eq!(machine, None);
        assert_eq!(restored.digest(), service.digest());
        assert_eq!(restored.commands(), 2);
        let mut damaged = data.to_vec();
        damaged[HEADER_BYTES + 50] ^= 1;
        assert!(Service::decode(&damaged, Index(2)).is_err());
        assert!(Service::decode(&data[..data.len() - 1], Index(2)).is_err());
        assert!(Service::decode(&data, Index(3)).is_err());
    }

    #[test]
    fn a_state_machine_snapshot_rides_along_and_damage_to_it_is_caught() {
        let mut service = Service::new();
        service.apply(&entry(1, b"a")).expect("in order");
        let data = service.encode(10, Some(b"machine state"));
        let (restored, machine) = Service::decode(&data, Index(1)).expect("valid snapshot");
        assert_eq!(machine, Some(&b"machine state"[..]));
        assert_eq!(restored.digest(), service.digest());
        let empty = service.encode(0, Some(b""));
        assert_eq!(
            Service::decode(&empty, Index(1)).map(|(_, m)| m),
            Ok(Some(&b""[..]))
        );
        let mut damaged = data.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(Service::decode(&damaged, Index(1)).is_err());
        assert!(Service::decode(&data[..data.len() - 1], Index(1)).is_err());
        assert!(Service::decode(&data[..20], Index(1)).is_err());
    }

    #[test]
    fn apply_refuses_gaps() {
        let mut service = Service::new();
        assert!(service.apply(&entry(2, b"x")).is_err());
    }
}
