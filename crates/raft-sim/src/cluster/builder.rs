//! How a cluster is put together before it starts: its configuration, the harness its stores
//! come from, and the user's state machine, if any.

use raft_core::testing::storage::StoreHarness;

use super::Cluster;
use crate::config::SimConfig;
use crate::machine::{MachineKind, StateMachine};
use crate::storage::{HarnessStores, Stores};

/// Starts a [`Cluster`] with a user's storage, state machine, or both. Every peer's store
/// comes from a [`StoreHarness`] (the storage conformance suite's trait, so the harness that
/// runs the suite runs the simulator too): `create` for each peer, `reopen` at every crash.
///
/// ```no_run
/// use raft_sim::{Cluster, SimConfig, WalHarness};
///
/// let mut cluster = Cluster::builder(SimConfig::new(3, 7))
///     .storage(WalHarness::new(64 * 1024, 0))
///     .build();
/// cluster.check_one_leader();
/// ```
pub struct ClusterBuilder {
    config: SimConfig,
    stores: Option<Box<dyn Stores>>,
    machine: Option<MachineKind>,
}

impl ClusterBuilder {
    pub(super) fn new(config: SimConfig) -> ClusterBuilder {
        ClusterBuilder {
            config,
            stores: None,
            machine: None,
        }
    }

    /// Every peer runs on a store `harness` creates, instead of the kind `SimConfig::storage`
    /// names. After a crash, the reopened store must hold exactly what the old one did, or the
    /// run fails with `storage-recovers-durable-state`.
    pub fn storage<H: StoreHarness + 'static>(self, harness: H) -> ClusterBuilder {
        self.stores(Box::new(HarnessStores::new(harness)))
    }

    /// Every peer runs on a store of `stores`.
    pub(crate) fn stores(mut self, stores: Box<dyn Stores>) -> ClusterBuilder {
        self.stores = Some(stores);
        self
    }

    /// Every peer runs a state machine of `kind`.
    pub(crate) fn machine_kind(mut self, kind: MachineKind) -> ClusterBuilder {
        self.machine = Some(kind);
        self
    }

    /// Every peer runs a state machine of type `M` beside the built-in digest service, the
    /// simulated clients propose `M::random_command`s, and every replica is checked against
    /// a reference replica (see [`StateMachine`] and [`crate::check_state_machine`]).
    pub fn state_machine<M: StateMachine + Default>(self) -> ClusterBuilder {
        self.machine_kind(MachineKind::of::<M>())
    }

    /// Starts the cluster: creates every peer's store and boots it.
    pub fn build(self) -> Cluster {
        let stores = match self.stores {
            Some(stores) => stores,
            None => self.config.storage.stores(),
        };
        Cluster::boot_all(self.config, stores, self.machine)
    }
}
