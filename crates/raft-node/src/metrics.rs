//! One declaration per figure: a counter, a gauge or a latency histogram is named, typed,
//! documented and described for an exporter in one line of
//! [`declare_metrics!`](crate::declare_metrics!), which generates everything that used to list
//! it again.
//!
//! ```text
//!  declare_metrics! { /// doc
//!                     name: Type => counter("exported_name", "help"), ... }
//!     ├─► cells struct     one cell per figure (AtomicU64, or an Arc<LatencyHistogram>),
//!     │                    written by the hot path with `add` / `set`, read with `snapshot()`
//!     ├─► snapshot struct  one documented `pub` field per figure, typed (Term, Index, u64...)
//!     └─► snapshot.for_each(|descriptor, value| ...)
//!                          what an exporter walks: name, help, and the value with its kind
//! ```
//!
//! The node's [`crate::NodeMetrics`] and the TCP transport's
//! [`crate::transport::tcp::TcpCounters`] are declared this way, and a Prometheus collector
//! (raftkv's `/metrics`) encodes them by walking [`crate::NodeMetrics::for_each`]: adding a
//! figure is one line, and its exported name cannot drift from its field.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use raft_core::{Index, NodeId, Term};
use raft_wal::{HistogramSnapshot, LatencyHistogram};

/// What an exporter needs to know of a figure besides its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricDescriptor {
    /// The exported name, without an exporter's prefix or a counter's `_total` suffix (a
    /// Prometheus client adds both), e.g. `raft_term`.
    pub name: &'static str,
    /// One line for a human reading the exposition.
    pub help: &'static str,
}

/// A figure's value, tagged with its kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricValue<'a> {
    /// Counts from the start and never decreases.
    Counter(u64),
    /// Goes up and down (an index, a term, a 0/1 flag).
    Gauge(u64),
    /// How long something took, each time.
    Histogram(&'a HistogramSnapshot),
}

impl MetricValue<'_> {
    /// `value` as a counter (the constructor [`declare_metrics!`](crate::declare_metrics!)
    /// calls for `counter(...)`).
    pub fn counter<N: Number>(value: &N) -> MetricValue<'static> {
        MetricValue::Counter(value.to_u64())
    }

    /// `value` as a gauge (for `gauge(...)`).
    pub fn gauge<N: Number>(value: &N) -> MetricValue<'static> {
        MetricValue::Gauge(value.to_u64())
    }

    /// `value` as a histogram (for `histogram(...)`).
    pub fn histogram(value: &HistogramSnapshot) -> MetricValue<'_> {
        MetricValue::Histogram(value)
    }
}

/// A figure kept in one `AtomicU64`: a count, or a value with a numeric newtype.
pub trait Number: Copy {
    /// The value as stored.
    fn to_u64(self) -> u64;
    /// The value stored as `raw`.
    fn from_u64(raw: u64) -> Self;
}

impl Number for u64 {
    fn to_u64(self) -> u64 {
        self
    }
    fn from_u64(raw: u64) -> u64 {
        raw
    }
}

impl Number for bool {
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
    fn from_u64(raw: u64) -> bool {
        raw != 0
    }
}

impl Number for Term {
    fn to_u64(self) -> u64 {
        self.0
    }
    fn from_u64(raw: u64) -> Term {
        Term(raw)
    }
}

impl Number for Index {
    fn to_u64(self) -> u64 {
        self.0
    }
    fn from_u64(raw: u64) -> Index {
        Index(raw)
    }
}

/// No node has id 0, so 0 stands for none.
impl Number for Option<NodeId> {
    fn to_u64(self) -> u64 {
        match self {
            Some(id) => {
                assert_ne!(id, NodeId(0), "invariant node-id-nonzero");
                id.0
            }
            None => 0,
        }
    }
    fn from_u64(raw: u64) -> Option<NodeId> {
        (raw != 0).then_some(NodeId(raw))
    }
}

/// A type a figure of the snapshot struct can have, and the cell that holds it meanwhile.
pub trait Figure: Sized {
    /// Where the figure is kept between snapshots, written without a lock.
    type Cell: Default + std::fmt::Debug + Send + Sync;
    /// The figure now (each cell read on its own: monitoring needs no ordering between them).
    fn read(cell: &Self::Cell) -> Self;
}

impl<N: Number> Figure for N {
    type Cell = AtomicU64;
    fn read(cell: &AtomicU64) -> N {
        N::from_u64(cell.load(Ordering::Relaxed))
    }
}

impl Figure for HistogramSnapshot {
    /// Shared with whoever records into it (for the node, its storage thread).
    type Cell = Arc<LatencyHistogram>;
    fn read(cell: &Arc<LatencyHistogram>) -> HistogramSnapshot {
        cell.snapshot()
    }
}

/// Adds `amount` to a counter's cell.
pub fn add(cell: &AtomicU64, amount: u64) {
    cell.fetch_add(amount, Ordering::Relaxed);
}

/// Sets a gauge's cell to `value`.
pub fn set<N: Number>(cell: &AtomicU64, value: N) {
    cell.store(value.to_u64(), Ordering::Relaxed);
}

/// Declares a set of figures once: a snapshot struct with one documented `pub` field per
/// line, a cells struct the hot path writes without locks (`AtomicU64` per number, the
/// shared `Arc<LatencyHistogram>` per histogram) with `snapshot()` to read them all, and
/// `for_each` on the snapshot, which visits every exported figure with its
/// [`MetricDescriptor`] and [`MetricValue`].
///
/// A line is `/// doc`, `field: Type`, and, for a figure an exporter shows,
/// `=> kind("name", "help")` with kind `counter`, `gauge` or `histogram`. A field without it
/// is in both structs but not visited. The cells struct's fields share the snapshot's docs;
/// its visibility applies to its fields too.
///
/// ```
/// use raft_node::declare_metrics;
/// use raft_node::metrics::{add, MetricValue};
///
/// declare_metrics! {
///     /// What the cache did.
///     #[derive(Clone, Debug, PartialEq)]
///     pub struct CacheFigures;
///     /// Where the cache counts, as it goes.
///     struct CacheCells;
///     /// Lookups answered from the cache.
///     hits_total: u64 => counter("cache_hits", "Lookups answered from the cache"),
///     /// Lookups that missed; not exported.
///     misses_total: u64,
/// }
///
/// let cells = CacheCells::default();
/// add(&cells.hits_total, 3);
/// let figures = cells.snapshot();
/// assert_eq!((figures.hits_total, figures.misses_total), (3, 0));
/// let mut exported = Vec::new();
/// figures.for_each(|descriptor, value| exported.push((descriptor.name, value)));
/// assert_eq!(exported, [("cache_hits", MetricValue::Counter(3))]);
/// ```
#[macro_export]
macro_rules! declare_metrics {
    (
        $(#[$snapshot_meta:meta])*
        $snapshot_vis:vis struct $snapshot:ident;
        $(#[$cells_meta:meta])*
        $cells_vis:vis struct $cells:ident;
        $(
            $(#[doc = $doc:expr])*
            $field:ident: $type:ty $(=> $kind:ident($name:expr, $help:expr))?,
        )*
    ) => {
        $(#[$snapshot_meta])*
        $snapshot_vis struct $snapshot {
            $(
                $(#[doc = $doc])*
                pub $field: $type,
            )*
        }

        $(#[$cells_meta])*
        #[derive(Debug, Default)]
        $cells_vis struct $cells {
            $(
                $(#[doc = $doc])*
                $cells_vis $field: <$type as $crate::metrics::Figure>::Cell,
            )*
        }

        impl $cells {
            /// Every figure now, each read on its own.
            #[allow(dead_code)]
            $cells_vis fn snapshot(&self) -> $snapshot {
                $snapshot {
                    $($field: <$type as $crate::metrics::Figure>::read(&self.$field),)*
                }
            }
        }

        impl $snapshot {
            /// Calls `visit` with each exported figure, in declaration order: its name and
            /// help, and its value tagged with its kind.
            // A set with no exported figure (a test's counters) never calls `visit`.
            #[allow(dead_code, unused_mut, unused_variables)]
            pub fn for_each<'a>(
                &'a self,
                mut visit: impl FnMut(
                    &'static $crate::metrics::MetricDescriptor,
                    $crate::metrics::MetricValue<'a>,
                ),
            ) {
                $($({
                    const DESCRIPTOR: $crate::metrics::MetricDescriptor =
                        $crate::metrics::MetricDescriptor { name: $name, help: $help };
                    visit(&DESCRIPTOR, $crate::metrics::MetricValue::$kind(&self.$field));
                })?)*
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    declare_metrics! {
        #[derive(Clone, Debug, PartialEq)]
        struct Figures;
        struct Cells;
        /// A counter.
        events_total: u64 => counter("events", "Events"),
        /// A gauge with a newtype.
        term: Term => gauge("term", "Term"),
        /// Not exported.
        leader: Option<NodeId>,
        /// A histogram.
        latency: HistogramSnapshot => histogram("latency_seconds", "Latency"),
    }

    #[test]
    fn a_snapshot_reads_every_cell_and_for_each_visits_the_exported_ones_in_order() {
        let cells = Cells::default();
        add(&cells.events_total, 2);
        add(&cells.events_total, 3);
        set(&cells.term, Term(7));
        set(&cells.leader, Some(NodeId(4)));
        cells.latency.record(std::time::Duration::from_millis(1));
        let figures = cells.snapshot();
        assert_eq!(figures.events_total, 5);
        assert_eq!(figures.term, Term(7));
        assert_eq!(figures.leader, Some(NodeId(4)));
        assert_eq!(figures.latency.count, 1);
        let mut visited = Vec::new();
        figures.for_each(|descriptor, value| visited.push((descriptor.name, value)));
        assert_eq!(
            visited,
            [
                ("events", MetricValue::Counter(5)),
                ("term", MetricValue::Gauge(7)),
                ("latency_seconds", MetricValue::Histogram(&figures.latency)),
            ]
        );
    }

    #[test]
    fn no_leader_is_stored_as_zero_and_read_back_as_none() {
        let cells = Cells::default();
        assert_eq!(cells.snapshot().leader, None);
        set(&cells.leader, Some(NodeId(9)));
        set(&cells.leader, None::<NodeId>);
        assert_eq!(cells.leader.load(Ordering::Relaxed), 0);
        assert_eq!(cells.snapshot().leader, None);
    }
}
