//! One node of the key-value store, as a component tree.
//!
//! [`KvNode`] is the parent of everything a node runs besides its network and its client front
//! end:
//!
//! ```text
//!                       front end (RESP)          other nodes
//!                           │ KvPort, OverlayControl   ▲
//!   KvNode ┌────────────────▼───────────┐             │ Network (shared by all)
//!          │ Overlay ──KvPort──▶ Replica p0 ◀─AtomicBroadcast─ Zab p0 ──┤
//!          │    │    ──KvPort──▶ Replica p2 ◀─AtomicBroadcast─ Zab p2 ──┤
//!          │ Bootstrap ── BootstrapPort ──▶ KvNode                      │
//!          │ FailureDetector ◀──────────────────────────────────────────┘
//!          └────────────────────────────┘
//! ```
//!
//! Its factory creates the failure detector, the [`Bootstrap`] and the [`Overlay`], and exports
//! the overlay's [`KvPort`] and [`OverlayControl`] as the node's own: a front end is wired to
//! `node.exported_provided::<KvPort>()` right after `create`, with nothing to wait for. When the
//! bootstrap reports the cluster's table, the node creates, for every partition whose group it
//! belongs to, a Zab instance on that partition's storage and a [`Replica`], connects the
//! replica to the overlay (a selector lets each replica see only its partition's requests), and
//! installs the table in the overlay, which starts routing.
//!
//! A refusal by the bootstrap, or a fault of a child (a log that cannot be opened, a corrupt
//! snapshot), stops the node's work and is kept in [`KvNode::fatal`], for the process to report
//! and exit: a node never serves with a table or a state it cannot trust.

use std::sync::Arc;

use kompics_core::{
    connect, connect_with, Component, ComponentDefinition, Context, ExportProvided, Fault,
    FaultAction, ProvidedRef, Require, RequiredPort, Selector, Setup,
};
use kompics_net::{route_selector, Network, NodeAddr, Route};
use zab_components::component::{AtomicBroadcast, ZabComponent, ZabConfig};
use zab_components::failure_detector::{FailureDetector, FailureDetectorPort, FdConfig, FD_ROUTE};
use zab_components::storage::{StorageError, ZabStorage};

use crate::bootstrap::{
    Bootstrap, BootstrapConfig, BootstrapEvent, BootstrapPort, ClusterTable, TableStore,
    BOOTSTRAP_SERVICE,
};
use crate::overlay::{Overlay, OverlayConfig, OverlayControl, OverlayRequest, OVERLAY_ROUTE};
use crate::partition::PartitionId;
use crate::ports::{KvPort, KvRequest, ReplicaStatusPort};
use crate::replica::{Replica, ReplicaConfig};

/// Opens the Zab storage of one partition on this node (called again when an instance is
/// rebuilt after a fault).
pub type StorageFactory =
    Arc<dyn Fn(PartitionId) -> Result<Box<dyn ZabStorage>, StorageError> + Send + Sync>;

/// Opens the store of this node's copy of the cluster table.
pub type TableStoreFactory = Arc<dyn Fn() -> Box<dyn TableStore> + Send + Sync>;

/// Checks, once the table is known and before any group starts, that the node's stored data
/// belongs to that cluster (and prepares it for the node's partitions, given as the second
/// argument); the error, a message naming what is foreign, refuses the node.
pub type DataCheck = Arc<dyn Fn(&ClusterTable, &[PartitionId]) -> Result<(), String> + Send + Sync>;

/// Adjusts the settings of a partition's Zab instance (timeouts, snapshot thresholds, a
/// simulated disk's speed) before it is created.
pub type ZabTuning = Arc<dyn Fn(&mut ZabConfig) + Send + Sync>;

/// Everything a node needs.
#[derive(Clone)]
pub struct NodeConfig {
    /// How the node finds its cluster; `bootstrap.me` is this node's peer address.
    pub bootstrap: BootstrapConfig,
    /// The failure detector's settings.
    pub fd: FdConfig,
    /// The overlay's settings (its `me` is set from `bootstrap.me`).
    pub overlay: OverlayConfig,
    /// The settings of every replica (its partition is set per replica).
    pub replica: ReplicaConfig,
    /// Applied to every Zab instance's settings.
    pub zab_tuning: ZabTuning,
    /// The storage of each partition's log and snapshots.
    pub storage: StorageFactory,
    /// Where the cluster table is kept.
    pub table_store: TableStoreFactory,
    /// Checks the stored data against the table before the groups start. Default: accepts
    /// all (a simulated node's storage knows no other cluster).
    pub data_check: DataCheck,
    /// The node's network, shared by all its components.
    pub network: ProvidedRef<Network>,
}

impl NodeConfig {
    /// A node with default settings for every component.
    pub fn new(
        bootstrap: BootstrapConfig,
        network: ProvidedRef<Network>,
        storage: StorageFactory,
        table_store: TableStoreFactory,
    ) -> NodeConfig {
        let me = bootstrap.me;
        NodeConfig {
            bootstrap,
            fd: FdConfig::default(),
            overlay: OverlayConfig::new(me),
            replica: ReplicaConfig::new(PartitionId(0)),
            zab_tuning: Arc::new(|_| {}),
            storage,
            table_store,
            data_check: Arc::new(|_, _| Ok(())),
            network,
        }
    }

    /// This node's peer address.
    pub fn me(&self) -> NodeAddr {
        self.bootstrap.me
    }
}

/// The components of one partition on this node.
pub struct LocalGroup {
    /// The partition.
    pub partition: PartitionId,
    /// Its Zab instance.
    pub zab: Component<ZabComponent>,
    /// Its state machine.
    pub replica: Component<Replica>,
}

/// One node: the parent of its failure detector, bootstrap, overlay, and of a Zab instance and
/// a replica per partition it replicates.
pub struct KvNode {
    /// Where the bootstrap's table (or refusal) arrives; the node only receives on it.
    _bootstrap_port: RequiredPort<BootstrapPort>,
    /// The bootstrap child, held for the node's lifetime.
    _bootstrap: Component<Bootstrap>,
    control: RequiredPort<OverlayControl>,
    config: NodeConfig,
    overlay: Component<Overlay>,
    fd: Component<FailureDetector>,
    table: Option<Arc<ClusterTable>>,
    groups: Vec<LocalGroup>,
    fatal: Option<String>,
}

impl KvNode {
    /// A node, with its failure detector, bootstrap and overlay (the groups come with the
    /// table). Its [`KvPort`] and [`OverlayControl`] are the overlay's, exported: connect a
    /// front end to them at once.
    ///
    /// Not meant to be restarted: its supervisor should stop or replace it, as its own
    /// `on_fault` does for its children (a restart would rebuild its children with empty
    /// state while the groups it created from the table are gone).
    pub fn new(setup: &mut Setup<Self>, config: NodeConfig) -> Self {
        let me = config.me();
        let network = config.network.clone();
        let bootstrap_port = setup.required();
        let control = setup.required();

        let fd_config = config.fd.clone();
        let fd = setup.create(move |s| FailureDetector::new(s, me, fd_config.clone()));
        connect_with(&network, &fd.required::<Network>(), route_selector(FD_ROUTE));

        let bootstrap_config = config.bootstrap.clone();
        let table_store = config.table_store.clone();
        let bootstrap =
            setup.create(move |s| Bootstrap::new(s, bootstrap_config.clone(), table_store()));
        connect_with(
            &network,
            &bootstrap.required::<Network>(),
            route_selector(Route::new(BOOTSTRAP_SERVICE, 0)),
        );

        let mut overlay_config = config.overlay.clone();
        overlay_config.me = me;
        let overlay = setup.create(move |s| Overlay::new(s, overlay_config.clone()));
        connect_with(&network, &overlay.required::<Network>(), route_selector(OVERLAY_ROUTE));
        connect(&fd.provided::<FailureDetectorPort>(), &overlay.required::<FailureDetectorPort>());
        setup.export_provided(&overlay.provided::<KvPort>());
        setup.export_provided(&overlay.provided::<OverlayControl>());
        // The node's own ports: their channels carry events once `create` returns.
        connect(&bootstrap.provided::<BootstrapPort>(), &bootstrap_port.share());
        connect(&overlay.provided::<OverlayControl>(), &control.share());

        KvNode {
            _bootstrap_port: bootstrap_port,
            _bootstrap: bootstrap,
            control,
            config,
            overlay,
            fd,
            table: None,
            groups: Vec::new(),
            fatal: None,
        }
    }

    /// The overlay (its [`KvPort`] and [`OverlayControl`] are also the node's, exported).
    pub fn overlay(&self) -> &Component<Overlay> {
        &self.overlay
    }

    /// The cluster's table, once known.
    pub fn table(&self) -> Option<&Arc<ClusterTable>> {
        self.table.as_ref()
    }

    /// The partitions this node replicates, with their components (empty before the table).
    pub fn groups(&self) -> &[LocalGroup] {
        &self.groups
    }

    /// Why this node stopped serving, if it did: a refusal by its cluster or a failed
    /// component. The process should report it and exit.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    fn fail(&mut self, ctx: &mut Context<Self>, reason: String) {
        log::error!("node {}: {reason}", self.config.me());
        if self.fatal.is_none() {
            self.fatal = Some(reason);
        }
        // Stop serving: the overlay answers nothing more, the groups stop voting.
        self.overlay.stop();
        for g in &self.groups {
            g.zab.stop();
            g.replica.stop();
        }
        let _ = ctx;
    }

    fn create_groups(&mut self, ctx: &mut Context<Self>, cluster: Arc<ClusterTable>) {
        let me = self.config.me();
        let overlay = self.overlay.clone();
        let fd = self.fd.clone();
        let network = self.config.network.clone();
        let table = &cluster.table;
        let partition_count = table.partition_count();
        let mine = table.partitions_of(&me);
        if let Err(reason) = (self.config.data_check)(&cluster, &mine) {
            return self.fail(ctx, reason);
        }
        for partition in mine {
            let members = table.group(partition).to_vec();
            let mut zab_config = ZabConfig::new(partition.0, me, &members);
            (self.config.zab_tuning)(&mut zab_config);
            if let Err(e) = zab_config.validate() {
                return self
                    .fail(ctx, format!("partition {partition}: invalid Zab configuration: {e}"));
            }
            // Open the storage once here, so that a log that cannot be opened is reported as
            // such rather than as a fault of the instance.
            let storage = self.config.storage.clone();
            let first = match storage(partition) {
                Ok(s) => s,
                Err(e) => {
                    return self
                        .fail(ctx, format!("cannot open the log of partition {partition}: {e}"))
                }
            };
            let first = parking_lot::Mutex::new(Some(first));
            let route: Route = zab_config.route();
            let zab = ctx.create(move |s| {
                let storage = first.lock().take().unwrap_or_else(|| {
                    storage(partition).unwrap_or_else(|e| {
                        panic!("cannot reopen the log of partition {partition}: {e}")
                    })
                });
                ZabComponent::new(s, zab_config.clone(), storage)
            });
            connect_with(&network, &zab.required::<Network>(), route_selector(route));
            connect(&fd.provided::<FailureDetectorPort>(), &zab.required::<FailureDetectorPort>());
            let mut replica_config = self.config.replica.clone();
            replica_config.partition = partition;
            let replica = ctx.create(move |s| Replica::new(s, replica_config.clone()));
            connect(&zab.provided::<AtomicBroadcast>(), &replica.required::<AtomicBroadcast>());
            connect_with(
                &replica.provided::<KvPort>(),
                &overlay.required::<KvPort>(),
                Selector::new()
                    .requests(move |r: &KvRequest| r.op.partition(partition_count) == partition),
            );
            connect(
                &replica.provided::<ReplicaStatusPort>(),
                &overlay.required::<ReplicaStatusPort>(),
            );
            replica.start();
            zab.start();
            self.groups.push(LocalGroup { partition, zab, replica });
        }
        self.control.trigger(OverlayRequest::Install {
            table: Arc::new(cluster.table.clone()),
            cluster_name: cluster.cluster_name.clone(),
            cluster_id: cluster.cluster_id,
        });
        log::info!(
            "node {me}: cluster {} ({:#x}) ready; replicating {:?}",
            cluster.cluster_name,
            cluster.cluster_id,
            self.groups.iter().map(|g| g.partition.0).collect::<Vec<_>>()
        );
        self.table = Some(cluster);
    }
}

impl ExportProvided<KvPort> for KvNode {}

impl ExportProvided<OverlayControl> for KvNode {}

impl ComponentDefinition for KvNode {
    fn on_fault(&mut self, ctx: &mut Context<Self>, fault: &Fault) -> FaultAction {
        let cause = fault.root_cause();
        self.fail(ctx, format!("{} failed: {}", cause.type_name, cause.message));
        FaultAction::Stop
    }
}

impl Require<BootstrapPort> for KvNode {
    fn handle(&mut self, ctx: &mut Context<Self>, event: BootstrapEvent) {
        match event {
            BootstrapEvent::Ready(table) => {
                if self.table.is_none() && self.fatal.is_none() {
                    self.create_groups(ctx, table);
                }
            }
            BootstrapEvent::Refused { reason } => {
                self.fail(ctx, format!("refused by the cluster: {reason}"))
            }
        }
    }
}

impl Require<OverlayControl> for KvNode {
    fn handle(&mut self, _ctx: &mut Context<Self>, _info: crate::overlay::OverlayInfo) {
        // Never called: the overlay's only indication is the answer to an INFO request, which
        // goes to its requester alone, and the node asks for none.
    }
}
