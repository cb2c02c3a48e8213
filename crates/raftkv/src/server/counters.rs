//! The service's own counters (the node keeps its own), each declared once with
//! [`raft_node::declare_metrics!`]: its field, its metric name and its help. The request paths
//! count into [`ServiceCounters`]; the metrics endpoint takes a [`ServiceFigures`] snapshot
//! and walks it with `for_each`, as it walks the node's figures.

use raft_node::declare_metrics;

declare_metrics! {
    /// The service's counters at one moment, as the metrics endpoint exports them.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ServiceFigures;
    /// Counters of the service itself (the node keeps its own), written as requests go.
    pub struct ServiceCounters;

    /// HTTP requests this node forwarded to the leader's HTTP API.
    forwarded_total: u64 => counter("kv_requests_forwarded",
        "HTTP requests this node forwarded to the leader's HTTP API"),
    /// etcd gRPC calls this node relayed to the leader's gRPC API.
    grpc_calls_forwarded_total: u64 => counter("kv_grpc_calls_forwarded",
        "etcd gRPC calls this node relayed to the leader's gRPC API"),
    /// Snapshots the service took of its state.
    snapshots_taken_total: u64 => counter("kv_snapshots_taken",
        "Snapshots the service took of its state"),
    /// Writes answered not committed (leadership changed).
    writes_not_committed_total: u64 => counter("kv_writes_not_committed",
        "Writes answered not committed (leadership changed)"),
    /// Writes answered with an unknown outcome (timeout or snapshot).
    writes_unknown_total: u64 => counter("kv_writes_outcome_unknown",
        "Writes answered with an unknown outcome (timeout or snapshot)"),
    /// Requests that waited for a leadership change (a transfer) to pass instead of being
    /// refused.
    held_for_leadership_change_total: u64 => counter("kv_requests_held_for_leadership_change",
        "Requests that waited for a leadership change (a transfer) to pass instead of being refused"),
    /// Leases renewed by keepalives this node answered as the promoted leader (one per lease
    /// renewed, not per request).
    lease_keepalives_answered_total: u64 => counter("kv_lease_keepalives_answered",
        "Leases renewed by keepalives this node answered as the leader (one per lease renewed)"),
    /// Revokes this node proposed as the leader for leases past their deadline.
    leases_expired_total: u64 => counter("kv_leases_expired",
        "Revokes this node proposed as the leader for leases past their deadline"),
    /// Lease checkpoints (a lease's remaining TTL) this node proposed as the leader.
    lease_checkpoints_proposed_total: u64 => counter("kv_lease_checkpoints_proposed",
        "Lease checkpoints (remaining TTLs recorded in the log) this node proposed as the leader"),
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use raft_node::metrics::MetricValue;

    use super::*;

    #[test]
    fn each_counter_is_exported_once_under_its_metric_name() {
        let counters = ServiceCounters::default();
        counters
            .writes_unknown_total
            .fetch_add(3, Ordering::Relaxed);
        counters.forwarded_total.fetch_add(1, Ordering::Relaxed);
        let figures = counters.snapshot();
        let mut exported = Vec::new();
        figures.for_each(|descriptor, value| exported.push((descriptor.name, value)));
        assert_eq!(
            exported,
            [
                ("kv_requests_forwarded", MetricValue::Counter(1)),
                ("kv_grpc_calls_forwarded", MetricValue::Counter(0)),
                ("kv_snapshots_taken", MetricValue::Counter(0)),
                ("kv_writes_not_committed", MetricValue::Counter(0)),
                ("kv_writes_outcome_unknown", MetricValue::Counter(3)),
                (
                    "kv_requests_held_for_leadership_change",
                    MetricValue::Counter(0)
                ),
                ("kv_lease_keepalives_answered", MetricValue::Counter(0)),
                ("kv_leases_expired", MetricValue::Counter(0)),
                ("kv_lease_checkpoints_proposed", MetricValue::Counter(0)),
            ]
        );
    }
}
