//! The scripted scenarios, one per rule: writes a peer could make, each followed by a check of
//! everything the store reads back against an expectation written out by hand (never against
//! `MemStorage`, so that the suite holds the reference implementation to the rules too).

mod configuration;
mod log;
mod order;
mod snapshot;

pub(super) use configuration::{
    configuration_across_reopen, configuration_fallback, configuration_from_snapshot,
    configuration_newest_entry,
};
pub(super) use log::{
    append_read_back, bootstrap_state, conflicting_suffix, entries_max_bytes, entries_size_bytes,
    hard_state, out_of_range_reads,
};
pub(super) use order::{batch_order, durable_across_crash, reader_visibility, request_order};
pub(super) use snapshot::{
    compaction, snapshot_commit, snapshot_discards_disagreeing_log, stale_snapshot_ignored,
};
