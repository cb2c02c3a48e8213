//! The simulated disk: each persist request completes after a random latency, in the order the
//! core handed them out.
//!
//! ```text
//!  ready.persist ─► completion = max(now + latency + slow extra, previous completion)
//!                ─► DiskDone event ─► storage.persist(request) ─► core.on_persisted(id)
//! ```
//!
//! A crash loses every write still in flight: the events carry the incarnation that issued
//! them and are ignored once it is gone.

use rand::Rng;

use crate::config::DiskConfig;
use crate::SimRng;

pub(crate) struct Disk {
    config: DiskConfig,
    /// Extra latency of each peer's writes (slow peers).
    slow_us: Vec<u64>,
    /// Completion time of each peer's latest write. Invariant: writes of one peer complete in
    /// the order they were issued.
    last_done_us: Vec<u64>,
}

impl Disk {
    pub(crate) fn new(config: DiskConfig, peers: usize) -> Disk {
        assert!(
            config.latency_min_us <= config.latency_max_us,
            "disk latency range is empty"
        );
        Disk {
            config,
            slow_us: vec![0; peers],
            last_done_us: vec![0; peers],
        }
    }

    pub(crate) fn set_slow(&mut self, peer: usize, extra_us: u64) {
        self.slow_us[peer] = extra_us;
    }

    /// When a write issued now by `peer` completes.
    pub(crate) fn completion_us(&mut self, peer: usize, now_us: u64, rng: &mut SimRng) -> u64 {
        let latency = rng.gen_range(self.config.latency_min_us..=self.config.latency_max_us);
        let done = (now_us + latency + self.slow_us[peer]).max(self.last_done_us[peer]);
        self.last_done_us[peer] = done;
        done
    }
}
