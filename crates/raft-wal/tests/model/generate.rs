//! What the model test draws: operations over abstract selectors, and the entries,
//! configurations and snapshots they make.

use super::*;

/// Largest payload of a generated entry, most of the time.
pub(super) const DATA_BYTES_MAX: usize = 300;
/// Largest payload of the occasional large entry.
pub(super) const LARGE_DATA_BYTES_MAX: usize = 6000;
/// Most entries one generated request appends.
pub(super) const ENTRIES_PER_REQUEST_MAX: usize = 8;

/// One entry to append: the index and term come from the model's state.
#[derive(Clone)]
pub(super) struct EntrySpec {
    pub(super) noop: bool,
    /// A configuration entry (its configuration follows from its index and term), which the
    /// log tracks for `initial_state`.
    pub(super) configuration: bool,
    pub(super) data_bytes: usize,
}

impl std::fmt::Debug for EntrySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.noop {
            write!(f, "noop")
        } else if self.configuration {
            write!(f, "configuration")
        } else {
            write!(f, "{}B", self.data_bytes)
        }
    }
}

/// One request, described relative to whatever state the log is in when it is made. Every
/// `u64` field is a selector that [`Model::request`] maps into the valid range.
#[derive(Clone, Debug)]
pub(super) enum Step {
    /// Entries at last + 1 in the current term, optionally with a commit advance.
    Append {
        entries: Vec<EntrySpec>,
        commit: Option<u64>,
    },
    /// Entries of a new term replacing the suffix from an uncommitted index.
    Overwrite { start: u64, entries: Vec<EntrySpec> },
    /// A new term, vote and (non-decreasing) commit.
    HardState {
        new_term: bool,
        vote: Option<u64>,
        commit: u64,
    },
    /// A snapshot the log agrees with (the service compacting its log). With no entries to
    /// compact, a snapshot at the current base, which changes nothing.
    Compact {
        at: u64,
        voters: u64,
        data_bytes: usize,
    },
    /// A snapshot from a leader of a new term that the log disagrees with, beyond the last
    /// entry or with another term at its index, optionally followed by entries (some of which
    /// it may already cover) and a hard state.
    Install {
        beyond: bool,
        at: u64,
        overlap: u64,
        entries: Vec<EntrySpec>,
        hard_state: bool,
        voters: u64,
        data_bytes: usize,
    },
    /// A snapshot at or below the current base: ignored.
    Stale { at: u64, term: u64 },
}

#[derive(Clone, Debug)]
pub(super) enum Operation {
    /// One request through `Wal::persist`.
    Persist(Step),
    /// Several requests through one `Wal::write`.
    Write(Vec<Step>),
    /// Drop the log and open the directory again.
    Reopen,
}

/// The options of one case.
#[derive(Clone, Debug)]
pub(super) struct CaseOptions {
    pub(super) segment_bytes_max: u64,
    pub(super) cache_bytes_max: u64,
}

impl CaseOptions {
    pub(super) fn wal_options(&self) -> WalOptions {
        WalOptions {
            segment_bytes_max: self.segment_bytes_max,
            cache_bytes_max: self.cache_bytes_max,
            unsafe_no_sync: true,
            // Every reopen is a crash: the model expects each to report possible losses.
            distrust_unclean_shutdown: true,
            ..WalOptions::default()
        }
    }
}

pub(super) fn entry_spec() -> impl Strategy<Value = EntrySpec> {
    prop_oneof![
        6 => (0..=DATA_BYTES_MAX).prop_map(|data_bytes| EntrySpec { noop: false, configuration: false, data_bytes }),
        1 => Just(EntrySpec { noop: true, configuration: false, data_bytes: 0 }),
        1 => Just(EntrySpec { noop: false, configuration: true, data_bytes: 0 }),
        // Payloads of 2 KiB and more are written from their own buffers, not copied.
        1 => (2000..=LARGE_DATA_BYTES_MAX).prop_map(|data_bytes| EntrySpec { noop: false, configuration: false, data_bytes }),
    ]
}

pub(super) fn entry_specs(minimum: usize) -> impl Strategy<Value = Vec<EntrySpec>> {
    vec(entry_spec(), minimum..=ENTRIES_PER_REQUEST_MAX)
}

pub(super) fn step() -> impl Strategy<Value = Step> {
    let selector = || 0u64..1000;
    prop_oneof![
        8 => (entry_specs(1), proptest::option::of(selector()))
            .prop_map(|(entries, commit)| Step::Append { entries, commit }),
        3 => (selector(), entry_specs(1))
            .prop_map(|(start, entries)| Step::Overwrite { start, entries }),
        2 => (any::<bool>(), proptest::option::of(1u64..=3), selector())
            .prop_map(|(new_term, vote, commit)| Step::HardState { new_term, vote, commit }),
        3 => (selector(), selector(), 0..=DATA_BYTES_MAX)
            .prop_map(|(at, voters, data_bytes)| Step::Compact { at, voters, data_bytes }),
        2 => (any::<bool>(), selector(), selector(), entry_specs(0), any::<bool>(), selector(), 0..=DATA_BYTES_MAX)
            .prop_map(|(beyond, at, overlap, entries, hard_state, voters, data_bytes)| Step::Install {
                beyond, at, overlap, entries, hard_state, voters, data_bytes,
            }),
        1 => (selector(), selector()).prop_map(|(at, term)| Step::Stale { at, term }),
    ]
}

pub(super) fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        12 => step().prop_map(Operation::Persist),
        3 => vec(step(), 2..=4).prop_map(Operation::Write),
        2 => Just(Operation::Reopen),
    ]
}

pub(super) fn case_options() -> impl Strategy<Value = CaseOptions> {
    let cache = prop_oneof![Just(0u64), 64u64..2048, Just(1u64 << 20)];
    (128u64..=4096, cache).prop_map(|(segment_bytes_max, cache_bytes_max)| CaseOptions {
        segment_bytes_max,
        cache_bytes_max,
    })
}

pub(super) fn case() -> impl Strategy<Value = (CaseOptions, Vec<Operation>)> {
    (case_options(), vec(operation(), 1..=OPERATIONS_MAX))
}

pub(super) fn bootstrap() -> Configuration {
    Configuration::new([NodeId(1), NodeId(2), NodeId(3)])
}

/// `lowest + selector` folded into `lowest..=highest`.
pub(super) fn pick(selector: u64, lowest: u64, highest: u64) -> u64 {
    assert!(lowest <= highest, "pick: empty range {lowest}..={highest}");
    lowest + selector % (highest - lowest + 1)
}

/// Deterministic bytes for the entry or snapshot at `index` of `term`, so that a replaced entry
/// differs from its replacement in content and not only in term.
pub(super) fn data(index: u64, term: u64, bytes: usize) -> Bytes {
    let mut state =
        index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ term.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut out = Vec::with_capacity(bytes);
    for _ in 0..bytes {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.push((state >> 56) as u8);
    }
    Bytes::from(out)
}

/// A configuration chosen by `selector`: one to five voters, sometimes joint, sometimes with
/// learners.
pub(super) fn configuration(selector: u64) -> Configuration {
    let voters = 1 + selector % 5;
    let mut configuration = Configuration::new((1..=voters).map(NodeId));
    if (selector / 5) % 3 == 1 {
        configuration.outgoing = (1..=voters + 1).map(NodeId).collect();
    }
    if (selector / 15) % 2 == 1 {
        configuration.learners = [NodeId(7), NodeId(8)].into_iter().collect();
    }
    configuration
}

pub(super) fn entry(index: u64, term: u64, spec: &EntrySpec) -> Entry {
    let (kind, data) = if spec.noop {
        (EntryKind::Noop, Bytes::new())
    } else if spec.configuration {
        (
            EntryKind::Configuration,
            configuration(index.wrapping_mul(7) ^ term).encode(),
        )
    } else {
        (EntryKind::Normal, data(index, term, spec.data_bytes))
    };
    Entry {
        id: LogId::new(Term(term), Index(index)),
        kind,
        data,
    }
}

pub(super) fn snapshot(index: u64, term: u64, voters: u64, data_bytes: usize) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            last_included: LogId::new(Term(term), Index(index)),
            configuration: configuration(voters),
        },
        data: data(index, term ^ 0xFF, data_bytes),
    }
}
