//! # fuzz-targets
//!
//! One function per decoder of bytes that come from outside the process, each taking arbitrary
//! bytes and asserting what must hold for every input: it never panics, never allocates from
//! a length it did not check, and whatever decodes re-encodes to bytes that decode to the same
//! value.
//!
//! ```text
//!  fuzz/fuzz_targets/<target>.rs ──► libFuzzer (nightly, fuzz/run.sh) ─┐
//!  tests/short_fuzz.rs: seeds, fuzz/corpus, fuzz/regressions, mutants ─┴─► fuzz_targets::<target>(bytes)
//!
//!  peer wire      wire_message  wire_handshake  wire_frames                 raft_node::wire
//!  write-ahead    wal_record  wal_segment  wal_recovery  snapshot_file      raft_wal
//!  raftkv         kv_command  kv_snapshot  http_request  config_file        raftkv
//!                 token_file
//! ```
//!
//! Each [`Target`] also makes its seeds with the real encoders (`cargo run -p fuzz-targets
//! --example write_corpus` writes them to `fuzz/corpus/<target>/`). A target whose input
//! needs more than one value starts with a flags byte or splits on [`PART_SEPARATOR`], as its
//! documentation says.

#![deny(missing_docs)]

mod auth;
mod config;
mod http;
mod kv;
mod scratch;
mod wal;
mod wire;

pub use auth::token_file;
pub use config::config_file;
pub use http::http_request;
pub use kv::{kv_command, kv_snapshot};
pub use wal::{snapshot_file, wal_record, wal_recovery, wal_segment};
pub use wire::{wire_frames, wire_handshake, wire_message};

/// Separates the parts of an input that holds several files or values (chosen to be rare in
/// binary data and easy to spot in a corpus file).
pub const PART_SEPARATOR: &[u8] = b"\n--part--\n";

/// A named seed input.
pub type Seed = (&'static str, Vec<u8>);

/// One fuzz target.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Its name: the function, the file in `fuzz/fuzz_targets/` and the corpus directory.
    pub name: &'static str,
    /// Runs one input, panicking if a property fails.
    pub run: fn(&[u8]),
    /// Small valid inputs made by the real encoders.
    pub seeds: fn() -> Vec<Seed>,
    /// Whether every allocation the target makes happens on the calling thread and is bounded
    /// by the input's size (targets that drive a running server are not).
    pub allocations_bounded: bool,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "wire_message",
        run: wire_message,
        seeds: wire::message_seeds,
        allocations_bounded: true,
    },
    Target {
        name: "wire_handshake",
        run: wire_handshake,
        seeds: wire::handshake_seeds,
        allocations_bounded: true,
    },
    Target {
        name: "wire_frames",
        run: wire_frames,
        seeds: wire::frames_seeds,
        allocations_bounded: true,
    },
    Target {
        name: "wal_record",
        run: wal_record,
        seeds: wal::record_seeds,
        allocations_bounded: true,
    },
    Target {
        name: "wal_segment",
        run: wal_segment,
        seeds: wal::segment_seeds,
        allocations_bounded: true,
    },
    Target {
        name: "wal_recovery",
        run: wal_recovery,
        seeds: wal::recovery_seeds,
        allocations_bounded: false,
    },
    Target {
        name: "snapshot_file",
        run: snapshot_file,
        seeds: wal::snapshot_file_seeds,
        allocations_bounded: true,
    },
    Target {
        name: "kv_command",
        run: kv_command,
        seeds: kv::command_seeds,
        allocations_bounded: true,
    },
    Target {
        name: "kv_snapshot",
        run: kv_snapshot,
        seeds: kv::snapshot_seeds,
        allocations_bounded: true,
    },
    Target {
        name: "http_request",
        run: http_request,
        seeds: http::request_seeds,
        allocations_bounded: false,
    },
    Target {
        name: "config_file",
        run: config_file,
        seeds: config::config_seeds,
        allocations_bounded: true,
    },
    Target {
        name: "token_file",
        run: token_file,
        seeds: auth::token_file_seeds,
        allocations_bounded: true,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}

/// `bytes` cut at every [`PART_SEPARATOR`].
pub fn split_parts(bytes: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = bytes;
    while let Some(at) = rest
        .windows(PART_SEPARATOR.len())
        .position(|window| window == PART_SEPARATOR)
    {
        parts.push(&rest[..at]);
        rest = &rest[at + PART_SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}

/// `parts` joined with [`PART_SEPARATOR`], after a flags byte.
pub fn join_parts(flags: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut joined = vec![flags];
    for (position, part) in parts.iter().enumerate() {
        if position > 0 {
            joined.extend_from_slice(PART_SEPARATOR);
        }
        joined.extend_from_slice(part);
    }
    joined
}
