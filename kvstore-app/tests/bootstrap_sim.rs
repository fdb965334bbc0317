//! Clusters forming in the simulator: every node gets the same balanced table; restarted nodes
//! rejoin from their stores even while the bootstrap server is down; misconfigured, late and
//! stale nodes are refused with a clear message while the cluster is not; message loss and
//! partitions delay formation but do not prevent it.
//!
//! Every test runs a few seeds (`SIM_SEEDS=n` for more, `SIM_SEED=s` to replay one); every
//! failure names its seed, and every wait is bounded in virtual time.

use std::sync::Arc;
use std::time::Duration;

use kompics_core::rand::rngs::SmallRng;
use kompics_core::rand::{Rng, SeedableRng};
use kompics_core::*;
use kompics_net::sim::{SimNet, SimNetConfig, SimNetwork};
use kompics_net::{Network, NodeAddr};
use kvstore_app::bootstrap::{
    Bootstrap, BootstrapConfig, BootstrapEvent, BootstrapPort, BootstrapRequest, BootstrapRole,
    ClusterTable, MemTableStore,
};
use kvstore_app::partition::LookupTable;

const P: u32 = 6;
const R: usize = 3;
const NAME: &str = "kv";
/// The bound of every wait for an outcome.
const LIMIT: Duration = Duration::from_secs(20);

/// Records what its node's Bootstrap reports.
type Probe = Recorder<BootstrapPort>;

struct Node {
    net: Component<SimNetwork>,
    boot: Component<Bootstrap>,
    probe: Component<Probe>,
}

/// The outcome a probe saw last.
#[derive(Clone, Debug)]
enum Outcome {
    Pending,
    Ready(Arc<ClusterTable>),
    Refused(String),
}

struct Cluster {
    seed: u64,
    sim: Simulation,
    net: SimNet,
    addrs: Vec<NodeAddr>,
    configs: Vec<BootstrapConfig>,
    stores: Vec<MemTableStore>,
    nodes: Vec<Option<Node>>,
}

fn addr(i: usize) -> NodeAddr {
    NodeAddr(([10, 0, 0, i as u8 + 1], 7000).into())
}

impl Cluster {
    /// `n` nodes configured as one cluster of `expected` nodes, node 0 the server; none started.
    fn new(seed: u64, n: usize, expected: usize) -> Cluster {
        let sim = Simulation::new(seed);
        let net = SimNet::new(&sim.system(), SimNetConfig::default());
        let addrs: Vec<NodeAddr> = (0..n).map(addr).collect();
        let configs = addrs
            .iter()
            .map(|&me| {
                let role = if me == addrs[0] {
                    BootstrapRole::Server { expected_nodes: expected }
                } else {
                    BootstrapRole::Join { server: addrs[0] }
                };
                BootstrapConfig::new(me, role, P, R, NAME)
            })
            .collect();
        let stores = (0..n).map(|_| MemTableStore::new()).collect();
        let nodes = (0..n).map(|_| None).collect();
        Cluster { seed, sim, net, addrs, configs, stores, nodes }
    }

    fn start(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let me = self.addrs[i];
        let net = self.net.add_node(me);
        let store = self.stores[i].clone();
        let system = self.sim.system();
        let boot = Bootstrap::create(
            &system,
            &net.provided::<Network>(),
            self.configs[i].clone(),
            move || Box::new(store.clone()),
        );
        let probe = self.sim.create(Probe::new);
        connect(&boot.provided::<BootstrapPort>(), &probe.required::<BootstrapPort>());
        probe.start();
        boot.start();
        self.nodes[i] = Some(Node { net, boot, probe });
    }

    fn start_all(&mut self) {
        for i in 0..self.addrs.len() {
            self.start(i);
        }
    }

    fn crash(&mut self, i: usize) {
        let Some(node) = self.nodes[i].take() else { return };
        self.net.crash(self.addrs[i]);
        node.probe.kill();
        node.boot.kill();
        node.net.kill();
    }

    fn events(&self, i: usize) -> Vec<BootstrapEvent> {
        let Some(node) = &self.nodes[i] else { return Vec::new() };
        node.probe.on_definition(|p| p.events().to_vec()).unwrap_or_default()
    }

    fn outcome(&self, i: usize) -> Outcome {
        match self.events(i).last() {
            None => Outcome::Pending,
            Some(BootstrapEvent::Ready(t)) => Outcome::Ready(t.clone()),
            Some(BootstrapEvent::Refused { reason }) => Outcome::Refused(reason.clone()),
        }
    }

    fn ready(&self, i: usize) -> Option<Arc<ClusterTable>> {
        match self.outcome(i) {
            Outcome::Ready(t) => Some(t),
            _ => None,
        }
    }

    fn refusal(&self, i: usize) -> Option<String> {
        match self.outcome(i) {
            Outcome::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// Runs until `done`, at most [`LIMIT`] of virtual time; fails naming the seed and `what`.
    fn run_until(&self, what: &str, mut done: impl FnMut(&Cluster) -> bool) {
        if !self.sim.run_until_cond(LIMIT, || done(self)) {
            let outcomes: Vec<String> =
                (0..self.addrs.len()).map(|i| format!("{i}: {:?}", self.outcome(i))).collect();
            panic!("seed {}: not {what} within {LIMIT:?}:\n{}", self.seed, outcomes.join("\n"));
        }
    }

    fn until_ready(&self, nodes: &[usize]) {
        self.run_until("ready", |c| nodes.iter().all(|&i| c.ready(i).is_some()));
    }

    fn until_refused(&self, i: usize) -> String {
        self.run_until("refused", |c| c.refusal(i).is_some());
        self.refusal(i).unwrap()
    }

    /// No node of `nodes` ever reported anything but one `Ready`, all with the same table,
    /// which their stores hold; returns it.
    fn assert_one_table(&self, nodes: &[usize]) -> Arc<ClusterTable> {
        let seed = self.seed;
        let table = self.ready(nodes[0]).unwrap_or_else(|| panic!("seed {seed}: 0 not ready"));
        for &i in nodes {
            let events = self.events(i);
            assert!(
                events.iter().all(|e| *e == BootstrapEvent::Ready(table.clone())),
                "seed {seed}: node {i} reported {events:?}, the cluster is {table}"
            );
            assert_eq!(events.len(), 1, "seed {seed}: node {i} reported {events:?}");
            assert_eq!(self.stores[i].get().as_ref(), Some(&*table), "seed {seed}: store of {i}");
        }
        table
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => {
            (0..std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4)).collect()
        }
    }
}

fn assert_balanced(seed: u64, table: &ClusterTable, addrs: &[NodeAddr]) {
    assert_eq!(table.cluster_name, NAME);
    assert_eq!(table.table.partition_count(), P, "seed {seed}");
    assert_eq!(table.table.replication(), R, "seed {seed}");
    assert_eq!(table.nodes(), addrs, "seed {seed}: every node is in the table");
    let replicas = P as usize * R;
    let (lo, hi) = (replicas / addrs.len(), replicas.div_ceil(addrs.len()));
    for node in addrs {
        let held = table.table.partitions_of(node).len();
        assert!(lo <= held && held <= hi, "seed {seed}: {node} holds {held} replicas");
    }
}

/// A formed cluster of `n` nodes, all ready, settled (announcements answered).
fn formed(seed: u64, n: usize) -> (Cluster, Arc<ClusterTable>) {
    let mut c = Cluster::new(seed, n, n);
    c.start_all();
    let all: Vec<usize> = (0..n).collect();
    c.until_ready(&all);
    c.sim.run_for(Duration::from_secs(1));
    let table = c.assert_one_table(&all);
    (c, table)
}

#[test]
fn five_nodes_form_one_balanced_cluster() {
    for seed in seeds() {
        let (c, table) = formed(seed, 5);
        assert_balanced(seed, &table, &c.addrs);
        // A late subscriber asks for the outcome.
        let node = c.nodes[3].as_ref().unwrap();
        let late = c.sim.create(Probe::new);
        connect(&node.boot.provided::<BootstrapPort>(), &late.required::<BootstrapPort>());
        late.start();
        late.on_definition(|p| p.port.trigger(BootstrapRequest::Status));
        c.sim.run_for(Duration::from_millis(10));
        assert_eq!(
            late.on_definition(|p| p.events().to_vec()),
            Some(vec![BootstrapEvent::Ready(table)])
        );
    }
}

#[test]
fn the_same_seed_forms_the_same_cluster() {
    let run = |seed| {
        let (c, table) = formed(seed, 5);
        (table.cluster_id, c.sim.trace_hash(), c.sim.steps())
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).0, run(12).0, "cluster ids are drawn from the seed");
}

#[test]
fn joiners_started_before_the_server_still_form() {
    for seed in seeds() {
        let mut c = Cluster::new(seed, 5, 5);
        for i in 1..5 {
            c.start(i);
            c.sim.run_for(Duration::from_millis(150));
        }
        c.sim.run_for(Duration::from_secs(2));
        assert!((1..5).all(|i| matches!(c.outcome(i), Outcome::Pending)), "seed {seed}");
        c.start(0);
        c.until_ready(&[0, 1, 2, 3, 4]);
        c.sim.run_for(Duration::from_secs(1));
        let table = c.assert_one_table(&[0, 1, 2, 3, 4]);
        assert_balanced(seed, &table, &c.addrs);
    }
}

#[test]
fn restarted_nodes_rejoin_with_the_same_table_even_without_the_server() {
    for seed in seeds() {
        let (mut c, table) = formed(seed, 5);
        // The server down, every other node restarts from its store.
        c.crash(0);
        for i in 1..5 {
            c.crash(i);
            c.sim.run_for(Duration::from_millis(50));
            c.start(i);
            c.until_ready(&[i]);
        }
        // Then the server itself.
        c.start(0);
        c.until_ready(&[0]);
        c.sim.run_for(Duration::from_secs(1));
        assert_eq!(c.assert_one_table(&[0, 1, 2, 3, 4]), table, "seed {seed}");
        // A node that lost its table (it crashed before persisting it) gets the same one from
        // the server.
        c.crash(3);
        c.stores[3].set(None);
        c.start(3);
        c.until_ready(&[3]);
        c.sim.run_for(Duration::from_secs(1));
        assert_eq!(c.assert_one_table(&[0, 1, 2, 3, 4]), table, "seed {seed}");
    }
}

#[test]
fn mismatched_configurations_are_refused_with_both_values() {
    type Change = fn(&mut BootstrapConfig);
    let cases: [(Change, &str); 4] = [
        (|c| c.partitions = 8, "P=8 there, P=6 here"),
        (|c| c.replication = 2, "R=2 there, R=3 here"),
        (|c| c.cluster_name = "other".into(), "cluster name \"other\" there, \"kv\" here"),
        (|c| c.expected_nodes = Some(7), "7 expected nodes there, 4 here"),
    ];
    for seed in seeds() {
        for (change, message) in cases {
            // Four good nodes form; the fifth, misconfigured, is refused.
            let mut c = Cluster::new(seed, 5, 4);
            change(&mut c.configs[4]);
            c.start_all();
            let reason = c.until_refused(4);
            assert!(reason.contains(message), "seed {seed}: {reason:?} lacks {message:?}");
            assert!(reason.contains(&c.addrs[4].to_string()), "seed {seed}: {reason}");
            c.until_ready(&[0, 1, 2, 3]);
            c.sim.run_for(Duration::from_secs(1));
            c.assert_one_table(&[0, 1, 2, 3]);
            assert!(c.stores[4].get().is_none(), "seed {seed}: a refused node stores nothing");
        }
        // A node restarted with a configuration that does not match its stored table.
        let (mut c, _) = formed(seed, 5);
        c.crash(2);
        c.configs[2].replication = 2;
        c.start(2);
        let reason = c.until_refused(2);
        assert!(reason.contains("R=3 there, R=2 here"), "seed {seed}: {reason}");
        assert!(reason.contains("in-memory table store"), "seed {seed}: names the store: {reason}");
        assert!(c.events(2).len() == 1, "seed {seed}: refused at once, never ready");
    }
}

#[test]
fn a_sixth_node_after_formation_is_refused() {
    for seed in seeds() {
        let mut c = Cluster::new(seed, 6, 5);
        for i in 0..5 {
            c.start(i);
        }
        c.until_ready(&[0, 1, 2, 3, 4]);
        c.start(5);
        let reason = c.until_refused(5);
        let table = c.ready(0).unwrap();
        let expected = format!(
            "cluster kv ({:016x}) formed without {}; expected 5 nodes",
            table.cluster_id, c.addrs[5]
        );
        assert!(reason.contains(&expected), "seed {seed}: {reason}");
        c.sim.run_for(Duration::from_secs(1));
        c.assert_one_table(&[0, 1, 2, 3, 4]);
    }
}

#[test]
fn a_node_with_another_clusters_table_is_refused_and_the_cluster_is_not() {
    for seed in seeds() {
        let (mut c, table) = formed(seed, 5);
        // Node 4 comes back with an old data directory: same nodes, another cluster.
        let mut old = (*table).clone();
        old.cluster_id = table.cluster_id.wrapping_add(1);
        c.crash(4);
        c.stores[4].set(Some(old.clone()));
        c.start(4);
        let reason = c.until_refused(4);
        // Refused before it ever reported Ready: its groups never started (issue 13).
        let events = c.events(4);
        assert!(
            matches!(&events[..], [BootstrapEvent::Refused { .. }]),
            "seed {seed}: never ready: {events:?}"
        );
        assert!(reason.contains("of the 4 other nodes"), "seed {seed}: {reason}");
        assert!(reason.contains(&format!("{:016x}", table.cluster_id)), "seed {seed}: {reason}");
        assert_eq!(c.stores[4].get(), Some(old), "seed {seed}: the stale table is left alone");
        c.sim.run_for(Duration::from_secs(2));
        c.assert_one_table(&[0, 1, 2, 3]);

        // A new address whose old table names some of the cluster's nodes, and not itself in
        // theirs: refused too, the cluster unmoved. The old table has 0, 1, 2 and itself (5).
        let mut c = Cluster::new(seed, 6, 5);
        for i in 0..5 {
            c.start(i);
        }
        c.until_ready(&[0, 1, 2, 3, 4]);
        let stale_nodes = [c.addrs[0], c.addrs[1], c.addrs[2], c.addrs[5]];
        let stale = ClusterTable {
            cluster_id: 42,
            cluster_name: NAME.into(),
            table: LookupTable::build(&stale_nodes, P, R).unwrap(),
        };
        c.stores[5].set(Some(stale));
        c.start(5);
        let reason = c.until_refused(5);
        assert!(reason.contains("of the 3 other nodes"), "seed {seed}: {reason}");
        c.sim.run_for(Duration::from_secs(2));
        c.assert_one_table(&[0, 1, 2, 3, 4]);
    }
}

#[test]
fn one_stale_node_cannot_stop_the_cluster_even_among_its_peers() {
    for seed in seeds() {
        // Node 4 starts with a stale table of the same nodes before the cluster forms: it is
        // never heard by the server, so the cluster is of 4; then node 4 announces to them.
        let mut c = Cluster::new(seed, 5, 4);
        let stale = ClusterTable {
            cluster_id: 7,
            cluster_name: NAME.into(),
            table: LookupTable::build(&c.addrs, P, R).unwrap(),
        };
        c.stores[4].set(Some(stale));
        c.start_all();
        c.until_refused(4);
        c.until_ready(&[0, 1, 2, 3]);
        c.sim.run_for(Duration::from_secs(2));
        c.assert_one_table(&[0, 1, 2, 3]);
    }
}

#[test]
fn loss_partitions_and_crashes_during_formation_still_converge() {
    for seed in seeds() {
        let mut c = Cluster::new(seed, 5, 5);
        let mut rng = SmallRng::seed_from_u64(seed ^ 0xb007);
        c.net.set_loss(0.2);
        c.start_all();
        for _ in 0..30 {
            match rng.random_range(0..6) {
                0 => {
                    let i = rng.random_range(0..5);
                    c.crash(i);
                }
                1 => {
                    if let Some(i) = (0..5).find(|&i| c.nodes[i].is_none()) {
                        c.start(i);
                    }
                }
                2 => {
                    let i = rng.random_range(0..5);
                    let others: Vec<NodeAddr> =
                        (0..5).filter(|&j| j != i).map(|j| c.addrs[j]).collect();
                    c.net.partition(&[c.addrs[i]], &others);
                }
                3 => c.net.heal(),
                _ => {}
            }
            c.sim.run_for(Duration::from_millis(rng.random_range(20..300)));
        }
        c.net.heal();
        c.net.set_loss(0.0);
        for i in 0..5 {
            if c.nodes[i].is_none() {
                c.start(i);
            }
        }
        c.until_ready(&[0, 1, 2, 3, 4]);
        c.sim.run_for(Duration::from_secs(2));
        // Restarts may have seen Ready before; every node holds the one table and none was
        // ever refused.
        let table = c.ready(0).unwrap();
        for i in 0..5 {
            let events = c.events(i);
            assert!(
                events.iter().all(|e| *e == BootstrapEvent::Ready(table.clone())),
                "seed {seed}: node {i}: {events:?}"
            );
            assert_eq!(c.stores[i].get().as_ref(), Some(&*table), "seed {seed}: node {i}");
        }
        assert_balanced(seed, &table, &c.addrs);
    }
}
