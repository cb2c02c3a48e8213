//! The service's own counters (the node keeps its own), each declared once: its field, its
//! metric name and its help, from which the atomic struct and the list the metrics encoder
//! reads ([`ServiceCounters::values`]) are generated.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter's value now, with what the metrics endpoint calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterValue {
    /// The metric's name, without the registry's prefix and the `_total` suffix.
    pub name: &'static str,
    /// The metric's help text.
    pub help: &'static str,
    /// The count.
    pub value: u64,
}

/// Declares the service counters once: `field => "metric_name", "help";`.
macro_rules! service_counters {
    ($($field:ident => $name:literal, $help:literal;)*) => {
        /// Counters of the service itself (the node keeps its own), exported as metrics.
        #[derive(Debug, Default)]
        pub struct ServiceCounters {
            $(
                #[doc = $help]
                pub $field: AtomicU64,
            )*
        }

        impl ServiceCounters {
            /// Every counter's name, help and value now, in the order declared.
            pub fn values(&self) -> Vec<CounterValue> {
                vec![$(CounterValue {
                    name: $name,
                    help: $help,
                    value: self.$field.load(Ordering::Relaxed),
                },)*]
            }
        }
    };
}

service_counters! {
    forwarded_total => "kv_requests_forwarded",
        "Requests this node forwarded to the leader";
    snapshots_taken_total => "kv_snapshots_taken",
        "Snapshots the service took of its state";
    writes_not_committed_total => "kv_writes_not_committed",
        "Writes answered not committed (leadership changed)";
    writes_unknown_total => "kv_writes_outcome_unknown",
        "Writes answered with an unknown outcome (timeout or snapshot)";
    held_for_leadership_change_total => "kv_requests_held_for_leadership_change",
        "Requests that waited for a leadership change (a transfer) to pass instead of being refused";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_is_listed_once_under_its_metric_name() {
        let counters = ServiceCounters::default();
        counters
            .writes_unknown_total
            .fetch_add(3, Ordering::Relaxed);
        counters.forwarded_total.fetch_add(1, Ordering::Relaxed);
        let values = counters.values();
        let names: Vec<&str> = values.iter().map(|counter| counter.name).collect();
        assert_eq!(
            names,
            [
                "kv_requests_forwarded",
                "kv_snapshots_taken",
                "kv_writes_not_committed",
                "kv_writes_outcome_unknown",
                "kv_requests_held_for_leadership_change",
            ]
        );
        let value = |name: &str| {
            values
                .iter()
                .find(|counter| counter.name == name)
                .map(|counter| counter.value)
        };
        assert_eq!(value("kv_writes_outcome_unknown"), Some(3));
        assert_eq!(value("kv_requests_forwarded"), Some(1));
        assert_eq!(value("kv_snapshots_taken"), Some(0));
    }
}
