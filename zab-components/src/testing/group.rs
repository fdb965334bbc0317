//! A Zab group of whole nodes in the component simulator: per node a simulated network, a
//! failure detector, a [`ZabComponent`] on a [`SimDisk`] and the application under test, with
//! crashes that lose unsynced writes, restarts and partitions.

use std::time::Duration;

use kompics_core::{
    connect, Component, ComponentDefinition, Lifecycle, Require, Simulation, System, Time,
};
use kompics_net::sim::{SimNet, SimNetConfig, SimNetwork};
use kompics_net::{Network, NodeAddr};

use crate::component::{AtomicBroadcast, ZabComponent, ZabConfig};
use crate::failure_detector::{FailureDetector, FdConfig};
use crate::storage::SimDisk;

/// What the application factory of a [`Group`] gets to build a node's application with.
pub struct NodeSetup<'a> {
    /// The node's index in the group.
    pub index: usize,
    /// The runtime to create components in.
    pub system: &'a System,
    /// The node's network component (for components that watch the network).
    pub net: &'a Component<SimNetwork>,
    /// The node's Zab instance (created, not started).
    pub zab: &'a Component<ZabComponent>,
}

impl NodeSetup<'_> {
    /// Connects `app` to the node's [`AtomicBroadcast`] port.
    pub fn connect_app<C: ComponentDefinition + Require<AtomicBroadcast>>(
        &self,
        app: &Component<C>,
    ) {
        connect(&self.zab.provided::<AtomicBroadcast>(), &app.required::<AtomicBroadcast>());
    }
}

/// The components of a live [`Group`] node.
pub struct GroupNode<A> {
    /// The node's simulated network.
    pub net: Component<SimNetwork>,
    /// Its failure detector.
    pub fd: Component<FailureDetector>,
    /// Its Zab instance.
    pub zab: Component<ZabComponent>,
    /// The application under test: one component, or several (a struct of components that
    /// implements [`Lifecycle`]). Created at every start of the node, killed at its crash; it
    /// starts after the failure detector and before Zab.
    pub app: A,
}

/// Builds a node's application; see [`Group::new`].
type AppFactory<A> = Box<dyn Fn(&NodeSetup<'_>) -> A>;

/// A Zab group (group 0) of whole nodes in a [`Simulation`]. Node `i` has address [`addr`]`(i)`
/// and a [`SimDisk`] that survives its crashes; a test drives virtual time with
/// [`Group::run`], faults with [`Group::crash`], [`Group::partition`] and [`Group::heal`], and
/// looks at its application through [`Group::node`].
///
/// ```
/// use std::time::Duration;
///
/// use kompics_core::*;
/// use kompics_net::sim::SimNetConfig;
/// use zab_components::component::{AbEvent, AtomicBroadcast};
/// use zab_components::testing::Group;
///
/// /// The application under test: counts deliveries.
/// struct Counter {
///     _ab: RequiredPort<AtomicBroadcast>,
///     delivered: usize,
/// }
/// impl ComponentDefinition for Counter {}
/// impl Require<AtomicBroadcast> for Counter {
///     fn handle(&mut self, _ctx: &mut Context<Self>, event: AbEvent) {
///         if let AbEvent::Deliver { .. } = event {
///             self.delivered += 1;
///         }
///     }
/// }
///
/// let sim = Simulation::new(7);
/// let mut group = Group::new(sim, 3, SimNetConfig::default(), |_| {}, |node| {
///     let app = node.system.create(|s| Counter { _ab: s.required(), delivered: 0 });
///     node.connect_app(&app);
///     app
/// });
/// group.run(Duration::from_secs(2));
/// group.crash(0, 0);
/// group.run(Duration::from_secs(2));
/// group.start(0);
/// group.run(Duration::from_secs(2));
/// assert_eq!(group.up().count(), 3);
/// ```
pub struct Group<A: Lifecycle> {
    /// The simulation the group runs in.
    pub sim: Simulation,
    /// The simulated network.
    pub net: SimNet,
    /// The members' addresses, by index.
    pub addrs: Vec<NodeAddr>,
    /// Each node's disk (shared with its Zab instance while up).
    pub disks: Vec<SimDisk>,
    /// Each node's components; `None` while crashed.
    pub nodes: Vec<Option<GroupNode<A>>>,
    tune: Box<dyn Fn(&mut ZabConfig)>,
    app: AppFactory<A>,
    tag_last: u64,
}

/// The address of a [`Group`]'s node `i`.
pub fn addr(i: usize) -> NodeAddr {
    NodeAddr(([10, 0, 0, i as u8 + 1], 5000).into())
}

impl<A: Lifecycle> Group<A> {
    /// Creates and starts `n` nodes in `sim` on a network configured by `net`. Each node's Zab
    /// configuration is `ZabConfig::new(0, me, members)` changed by `tune`; `app` builds the
    /// node's application at each start (and connects it, see [`NodeSetup::connect_app`]).
    pub fn new(
        sim: Simulation,
        n: usize,
        net: SimNetConfig,
        tune: impl Fn(&mut ZabConfig) + 'static,
        app: impl Fn(&NodeSetup<'_>) -> A + 'static,
    ) -> Group<A> {
        let net = SimNet::new(&sim.system(), net);
        let addrs: Vec<NodeAddr> = (0..n).map(addr).collect();
        let mut group = Group {
            sim,
            net,
            disks: addrs.iter().map(|_| SimDisk::new()).collect(),
            nodes: addrs.iter().map(|_| None).collect(),
            addrs,
            tune: Box::new(tune),
            app: Box::new(app),
            tag_last: 0,
        };
        for i in 0..n {
            group.start(i);
        }
        group
    }

    /// Starts node `i` from its disk (does nothing if it is up).
    pub fn start(&mut self, i: usize) {
        if self.nodes[i].is_some() {
            return;
        }
        let me = self.addrs[i];
        let disk = self.disks[i].clone();
        let mut config = ZabConfig::new(0, me, &self.addrs);
        (self.tune)(&mut config);
        let net = self.net.add_node(me);
        let system = self.sim.system();
        let network = net.provided::<Network>();
        let fd = FailureDetector::create(&system, &network, me, FdConfig::default());
        let zab = ZabComponent::create(&system, &network, &fd.provided(), config, move || {
            Box::new(disk.clone())
        });
        let app = (self.app)(&NodeSetup { index: i, system: &system, net: &net, zab: &zab });
        fd.start();
        app.start();
        zab.start();
        self.nodes[i] = Some(GroupNode { net, fd, zab, app });
    }

    /// Crashes node `i`: its components die, its sessions end, and of its unsynced writes only
    /// the oldest `keep` survive.
    pub fn crash(&mut self, i: usize, keep: usize) {
        let Some(node) = self.nodes[i].take() else { return };
        self.net.crash(self.addrs[i]);
        node.app.kill();
        node.zab.kill();
        node.fd.kill();
        node.net.kill();
        self.disks[i].crash(keep);
    }

    /// Starts the crashed node with the lowest index, if any.
    pub fn start_first_down(&mut self) {
        if let Some(i) = self.nodes.iter().position(Option::is_none) {
            self.start(i);
        }
    }

    /// Starts every crashed node.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// Cuts the nodes of `side` off from the others (both ways) until [`Group::heal`].
    pub fn partition(&self, side: &[usize]) {
        let (inside, outside): (Vec<usize>, Vec<usize>) =
            (0..self.addrs.len()).partition(|i| side.contains(i));
        let addrs =
            |nodes: Vec<usize>| nodes.into_iter().map(|i| self.addrs[i]).collect::<Vec<_>>();
        let (inside, outside) = (addrs(inside), addrs(outside));
        self.net.partition(&inside, &outside);
    }

    /// Ends every partition.
    pub fn heal(&self) {
        self.net.heal();
    }

    /// Node `i`'s components.
    ///
    /// # Panics
    /// If node `i` is down.
    pub fn node(&self, i: usize) -> &GroupNode<A> {
        self.nodes[i].as_ref().unwrap_or_else(|| panic!("node {i} is down"))
    }

    /// The live nodes: their indices and components.
    pub fn up(&self) -> impl Iterator<Item = (usize, &GroupNode<A>)> {
        self.nodes.iter().enumerate().filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
    }

    /// Runs the simulation for `duration` of virtual time.
    pub fn run(&self, duration: Duration) {
        self.sim.run_for(duration);
    }

    /// The current virtual time.
    pub fn now(&self) -> Time {
        self.sim.now()
    }

    /// A proposal tag not handed out before in this group (1, 2, 3, ...), so that tags name
    /// proposals across nodes and restarts.
    pub fn fresh_tag(&mut self) -> u64 {
        self.tag_last += 1;
        self.tag_last
    }

    /// The simulation's seed.
    pub fn seed(&self) -> u64 {
        self.sim.seed()
    }
}
