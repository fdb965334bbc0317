//! Whole-cluster simulator tests of the key-value store: every node is a [`KvNode`] (bootstrap,
//! failure detector, overlay, a Zab instance and a replica per group it belongs to) on a
//! simulated network, and clients are components connected to a node's overlay, so every
//! operation goes through routing, forwarding and the groups' Zab instances.
//!
//! Scenarios (after the original project's simulation tests, id2203.md §5): boot, routing from
//! every node, a burst of concurrent operations, a crashed primary, a group that loses its
//! majority, an isolated node, and a sweep of random crashes, restarts and partitions whose
//! client history must be linearizable. The sweep's driver is a [`Scenario`] (boot, random
//! faults, calm, checks), whose failure report prints the events that ran. Each failure names
//! its seed; `SIM_SEED=s` replays one seed, `SIM_SEEDS=n` runs seeds `0..n`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::history_entry;
use kompics_core::rand::rngs::SmallRng;
use kompics_core::rand::{Rng, SeedableRng};
use kompics_core::scenario::{self, Dist, Process, ProcessId, Scenario, World};
use kompics_core::*;
use kompics_net::sim::{SimNet, SimNetConfig, SimNetwork};
use kompics_net::{Network, NodeAddr};
use kvstore_app::bootstrap::{
    BootstrapConfig, BootstrapRole, ClusterTable, MemTableStore, TableStore,
};
use kvstore_app::linearizability::{check, ClientId, HistoryOp};
use kvstore_app::node::{KvNode, NodeConfig, StorageFactory, TableStoreFactory};
use kvstore_app::overlay::{InfoQuery, OverlayControl, OverlayInfo};
use kvstore_app::partition::{partition_of, PartitionId};
use kvstore_app::replica::{KvError, KvPort, KvReply, KvRequest, SnapshotWriter};
use kvstore_app::store::{Op, OpResult, SetCondition};
use zab_components::component::{ZabConfig, ZabStatus};
use zab_components::protocol::Zxid;
use zab_components::storage::{SimDisk, ZabStorage};

/// How long a random client waits for an answer before it records the outcome as unknown:
/// longer than the overlay's own deadline (5 s), which answers first when its node is alive.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(7);

/// The seeds to run: `SIM_SEED` alone, else `0..SIM_SEEDS` (default `default`).
fn seeds(default: u64) -> Vec<u64> {
    scenario::seeds(0, default)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A client connected to one node's overlay. Scripted: the test sends operations (any number at
/// once) and reads the answers. Random: one operation at a time on `keys`, while `active`.
/// Either way it records a history for the linearizability checker: an `Ok` is a returned
/// operation, `OutcomeUnknown` or a (random client's) timeout an unknown one, `TryAgain` and
/// `Busy` did not happen.
struct Client {
    kv: RequiredPort<KvPort>,
    id: u64,
    seq: u64,
    /// Sent and not yet answered: request id → (invocation time, operation).
    outstanding: BTreeMap<u64, (u64, Op)>,
    /// Answers of scripted requests, by request id.
    answers: BTreeMap<u64, Result<OpResult, KvError>>,
    history: Vec<HistoryOp>,
    /// The keys of a random client (empty: scripted).
    keys: Vec<Vec<u8>>,
    active: bool,
}

impl Client {
    fn new(setup: &mut Setup<Self>, id: u64, keys: Vec<Vec<u8>>) -> Self {
        Client {
            kv: setup.required(),
            id,
            seq: 0,
            outstanding: BTreeMap::new(),
            answers: BTreeMap::new(),
            history: Vec::new(),
            active: !keys.is_empty(),
            keys,
        }
    }

    /// Sends `op` at time `now`; returns the request id.
    fn send(&mut self, now: u64, op: Op) -> u64 {
        self.seq += 1;
        let id = (self.id << 32) | self.seq;
        self.outstanding.insert(id, (now, op.clone()));
        self.kv.trigger(KvRequest { id, op });
        id
    }

    /// The random client's next operation.
    fn next(&mut self, ctx: &mut Context<Self>) {
        if !self.active || self.keys.is_empty() {
            return;
        }
        let key = self.keys[ctx.rng().random_range(0..self.keys.len())].clone();
        let v = vec![b'0' + ctx.rng().random_range(0..4u8)];
        // Values are digits, so INCR mostly counts, and an APPEND makes them non-integers
        // (INCR is refused) until a SET; APPEND is refused beyond 4 bytes.
        let op = match ctx.rng().random_range(0..15) {
            0..=3 => Op::Get { key },
            4..=5 => Op::Set { key, value: v },
            6 => Op::Del { key },
            7 => Op::Cas { key, expected: v, new: vec![b'0' + ctx.rng().random_range(0..4u8)] },
            8..=9 => Op::IncrBy { key, by: 1 },
            10 => Op::Append { key, value: v, len_max: 4 },
            11 => Op::SetIf {
                key,
                value: v,
                condition: SetCondition { if_missing: true, if_exists: false, get_old: false },
            },
            12 => Op::GetDel { key },
            _ => Op::IncrByFloat { key, by_bits: 0.5f64.to_bits() },
        };
        let id = self.send(ctx.now().as_nanos(), op);
        ctx.schedule_once(CLIENT_TIMEOUT, move |c: &mut Client, ctx| {
            if let Some((invoke, op)) = c.outstanding.remove(&id) {
                c.history.push(HistoryOp::unknown(ClientId(c.id), invoke, op));
                c.next(ctx);
            }
        });
    }

    /// The history, with every operation still unanswered counted as unknown.
    fn full_history(&self) -> Vec<HistoryOp> {
        let mut h = self.history.clone();
        for (invoke, op) in self.outstanding.values() {
            h.push(HistoryOp::unknown(ClientId(self.id), *invoke, op.clone()));
        }
        h
    }
}

impl ComponentDefinition for Client {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        self.next(ctx);
    }
}

impl Require<KvPort> for Client {
    fn handle(&mut self, ctx: &mut Context<Self>, reply: KvReply) {
        let Some((invoke, op)) = self.outstanding.remove(&reply.id) else {
            return; // answered after its timeout: already recorded as unknown
        };
        let now = ctx.now().as_nanos();
        self.history.extend(history_entry(ClientId(self.id), invoke, now, op, &reply));
        if self.keys.is_empty() {
            self.answers.insert(reply.id, reply.result);
        } else {
            self.next(ctx);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------------------------

struct Node {
    net: Component<SimNetwork>,
    kv: Component<KvNode>,
}

/// What a replica holds: its data, sorted.
type Contents = Vec<(Vec<u8>, Vec<u8>)>;

/// One replica, as the test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ReplicaView {
    status: ZabStatus,
    last_applied: Option<Zxid>,
    contents: Contents,
}

struct Cluster {
    seed: u64,
    sim: Simulation,
    net: SimNet,
    addrs: Vec<NodeAddr>,
    partitions: u32,
    replication: usize,
    /// Per node, the disk of each partition, kept across restarts.
    disks: Vec<Arc<Mutex<BTreeMap<PartitionId, SimDisk>>>>,
    /// Per node, its table store, kept across restarts.
    tables: Vec<MemTableStore>,
    nodes: Vec<Option<Node>>,
    /// Clients and the node they are connected to.
    clients: Vec<(usize, Component<Client>)>,
}

impl Cluster {
    /// `n` nodes forming a cluster of `partitions` partitions replicated `replication` times,
    /// started (not yet formed), with `scripted` scripted clients per node.
    fn new(seed: u64, n: usize, partitions: u32, replication: usize, scripted: usize) -> Cluster {
        let sim = Simulation::new(seed);
        Cluster::with_sim(sim, n, partitions, replication, scripted)
    }

    fn with_sim(
        sim: Simulation,
        n: usize,
        partitions: u32,
        replication: usize,
        scripted: usize,
    ) -> Cluster {
        let net = SimNet::new(&sim.system(), SimNetConfig::default());
        let addrs: Vec<NodeAddr> =
            (0..n).map(|i| NodeAddr(([10, 0, 0, i as u8 + 1], 7000).into())).collect();
        let mut c = Cluster {
            seed: sim.seed(),
            sim,
            net,
            addrs,
            partitions,
            replication,
            disks: (0..n).map(|_| Arc::new(Mutex::new(BTreeMap::new()))).collect(),
            tables: (0..n).map(|_| MemTableStore::new()).collect(),
            nodes: (0..n).map(|_| None).collect(),
            clients: Vec::new(),
        };
        for i in 0..n {
            c.start(i);
        }
        // The nodes create their overlays when they initialise.
        c.sim.run_for(ms(1));
        for i in 0..n {
            for _ in 0..scripted {
                c.add_client(i, Vec::new());
            }
        }
        c
    }

    fn n(&self) -> usize {
        self.addrs.len()
    }

    /// Creates and starts node `i` on its stores (its clients are attached by `attach`).
    fn start(&mut self, i: usize) {
        let me = self.addrs[i];
        let role = if i == 0 {
            BootstrapRole::Server { expected_nodes: self.n() }
        } else {
            BootstrapRole::Join { server: self.addrs[0] }
        };
        let network = self.net.add_node(me);
        let disks = self.disks[i].clone();
        let storage: StorageFactory = Arc::new(move |p| {
            let disk = disks.lock().unwrap().entry(p).or_default().clone();
            Ok(Box::new(disk) as Box<dyn ZabStorage>)
        });
        let store = self.tables[i].clone();
        let table_store: TableStoreFactory =
            Arc::new(move || Box::new(store.clone()) as Box<dyn TableStore>);
        let mut config = NodeConfig::new(
            BootstrapConfig::new(me, role, self.partitions, self.replication, "sim"),
            network.provided::<Network>(),
            storage,
            table_store,
        );
        config.zab_tuning = Arc::new(|z: &mut ZabConfig| {
            z.sync_delay = (Duration::ZERO, ms(3));
            z.protocol.snapshot_entries_trigger = 50;
        });
        // Snapshots answered late — longer than a session timeout (500 ms) — as a slow
        // background serialization would: every test here, crashes and the linearizability
        // sweeps included, runs with snapshot answers arriving after further deliveries.
        config.replica.snapshots = SnapshotWriter::Inline { delay: ms(700) };
        let kv = self.sim.create(move |s| KvNode::new(s, config.clone()));
        kv.start();
        self.nodes[i] = Some(Node { net: network, kv });
    }

    /// Connects node `i`'s clients to its (new) overlay.
    fn attach(&self, i: usize) {
        let node = self.nodes[i]
            .as_ref()
            .unwrap_or_else(|| panic!("seed {}: node {i} is down", self.seed));
        for (at, c) in &self.clients {
            if *at == i {
                connect(&node.kv.exported_provided::<KvPort>(), &c.required::<KvPort>());
            }
        }
    }

    fn add_client(&mut self, i: usize, keys: Vec<Vec<u8>>) -> Component<Client> {
        let id = self.clients.len() as u64 + 1;
        let client = self.sim.create(move |s| Client::new(s, id, keys.clone()));
        if let Some(node) = self.nodes[i].as_ref() {
            connect(&node.kv.exported_provided::<KvPort>(), &client.required::<KvPort>());
        }
        // A scripted client runs at once; random ones start when the test says so.
        if client.on_definition(|c| c.keys.is_empty()).unwrap_or(false) {
            client.start();
        }
        self.clients.push((i, client.clone()));
        client
    }

    /// Node `i` crashes: its sessions end, its components die, of each disk's unsynced writes
    /// only the first `keep` survive.
    fn crash(&mut self, i: usize, keep: usize) {
        let Some(node) = self.nodes[i].take() else { return };
        self.net.crash(self.addrs[i]);
        node.kv.kill();
        node.net.kill();
        for disk in self.disks[i].lock().unwrap().values() {
            disk.crash(keep);
        }
    }

    /// Node `i` starts again on its stores; its clients are reconnected.
    fn restart(&mut self, i: usize) {
        self.start(i);
        self.sim.run_for(ms(1));
        self.attach(i);
    }

    fn alive(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    fn table_of(&self, i: usize) -> Option<ClusterTable> {
        self.nodes[i].as_ref()?.kv.on_definition(|k| k.table().map(|t| (**t).clone())).flatten()
    }

    /// The cluster's table, as node 0 (or the first node that has one) knows it.
    fn table(&self) -> ClusterTable {
        (0..self.n())
            .find_map(|i| self.table_of(i))
            .unwrap_or_else(|| panic!("seed {}: no node has a table", self.seed))
    }

    fn members(&self, p: PartitionId) -> Vec<usize> {
        let table = self.table();
        table.table.group(p).iter().map(|a| self.index(*a)).collect()
    }

    fn index(&self, addr: NodeAddr) -> usize {
        self.addrs.iter().position(|a| *a == addr).expect("a node of the cluster")
    }

    fn overlay_info(&self, i: usize) -> Option<OverlayInfo> {
        let overlay = self.nodes[i].as_ref()?.kv.on_definition(|k| k.overlay().clone())?;
        overlay.on_definition(|o| o.info())
    }

    /// Node `i`'s replicas, by partition.
    fn replicas(&self, i: usize) -> BTreeMap<PartitionId, ReplicaView> {
        let Some(node) = &self.nodes[i] else { return BTreeMap::new() };
        let groups = node
            .kv
            .on_definition(|k| {
                k.groups().iter().map(|g| (g.partition, g.replica.clone())).collect::<Vec<_>>()
            })
            .unwrap_or_default();
        groups
            .into_iter()
            .filter_map(|(p, r)| {
                r.on_definition(|r| ReplicaView {
                    status: r.status(),
                    last_applied: r.last_applied(),
                    contents: r.store().iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
                })
                .map(|v| (p, v))
            })
            .collect()
    }

    /// The node that leads partition `p` with a majority of its group following it.
    fn leader(&self, p: PartitionId) -> Option<usize> {
        let members = self.members(p);
        let views: Vec<(usize, ZabStatus)> = members
            .iter()
            .filter_map(|&i| self.replicas(i).get(&p).map(|v| (i, v.status)))
            .collect();
        views.iter().find_map(|&(i, status)| {
            let ZabStatus::Leading { epoch } = status else { return None };
            let followers = views
                .iter()
                .filter(|(_, s)| *s == ZabStatus::Following { leader: self.addrs[i], epoch })
                .count();
            (1 + followers > members.len() / 2).then_some(i)
        })
    }

    fn all_led(&self) -> bool {
        (0..self.partitions).all(|p| self.leader(PartitionId(p)).is_some())
    }

    /// Boots the cluster: every node has the table and every group a leader.
    fn boot(&self) {
        let formed = self.sim.run_until_cond(secs(20), || {
            (0..self.n()).all(|i| self.table_of(i).is_some()) && self.all_led()
        });
        assert!(
            formed,
            "seed {}: the cluster did not form with a leader in every group",
            self.seed
        );
    }

    /// Whether the live replicas of every group hold the same data at the same point.
    fn converged(&self) -> bool {
        let views: Vec<BTreeMap<PartitionId, ReplicaView>> =
            (0..self.n()).map(|i| self.replicas(i)).collect();
        (0..self.partitions).all(|p| {
            let p = PartitionId(p);
            let mut of_p = views.iter().filter_map(|v| v.get(&p));
            let Some(first) = of_p.next() else { return true };
            of_p.all(|v| v.last_applied == first.last_applied && v.contents == first.contents)
        })
    }

    /// Waits until the replicas of every group converge, and asserts that they did, naming the
    /// group that differs.
    fn assert_converged(&self, limit: Duration) {
        if self.sim.run_until_cond(limit, || self.converged()) {
            return;
        }
        let mut report = String::new();
        for i in 0..self.n() {
            for (p, v) in self.replicas(i) {
                report.push_str(&format!(
                    "\n  node {i} partition {}: {:?} at {:?}: {:?}",
                    p.0, v.status, v.last_applied, v.contents
                ));
            }
        }
        panic!("seed {}: replicas did not converge within {limit:?}:{report}", self.seed);
    }

    /// The `k`-th scripted client of node `i`.
    fn client(&self, i: usize, k: usize) -> &Component<Client> {
        self.clients
            .iter()
            .filter(|(at, c)| *at == i && c.on_definition(|c| c.keys.is_empty()).unwrap())
            .map(|(_, c)| c)
            .nth(k)
            .unwrap_or_else(|| panic!("node {i} has no scripted client {k}"))
    }

    fn send(&self, client: &Component<Client>, op: Op) -> u64 {
        let now = self.sim.now().as_nanos();
        client.on_definition(|c| c.send(now, op)).expect("a live client")
    }

    fn answer(&self, client: &Component<Client>, id: u64) -> Option<Result<OpResult, KvError>> {
        client.on_definition(|c| c.answers.get(&id).cloned()).flatten()
    }

    /// Sends `op` through node `i` and waits up to `limit` for the answer.
    fn op(&self, i: usize, op: Op, limit: Duration) -> Option<Result<OpResult, KvError>> {
        let client = self.client(i, 0).clone();
        let id = self.send(&client, op);
        self.sim.run_until_cond(limit, || self.answer(&client, id).is_some());
        self.answer(&client, id)
    }

    /// Sends `op` through node `i` until it succeeds, for at most `limit` in all.
    fn op_until_ok(&self, i: usize, op: &Op, limit: Duration) -> OpResult {
        let deadline = self.sim.now() + limit;
        let mut last = None;
        while self.sim.now() < deadline {
            let left = deadline - self.sim.now();
            match self.op(i, op.clone(), left) {
                Some(Ok(r)) => return r,
                Some(Err(e)) => {
                    last = Some(e);
                    self.sim.run_for(ms(20));
                }
                None => break,
            }
        }
        panic!(
            "seed {}: {op:?} through node {i} did not succeed within {limit:?} (last error: {last:?})",
            self.seed
        );
    }

    fn history(&self) -> Vec<HistoryOp> {
        self.clients
            .iter()
            .flat_map(|(_, c)| c.on_definition(|c| c.full_history()).unwrap())
            .collect()
    }

    fn assert_linearizable(&self) {
        let history = self.history();
        if let Err(e) = check(&history) {
            panic!("seed {}: the history is not linearizable:\n{e}", self.seed);
        }
    }
}

/// Requests the overlays forwarded, over all nodes.
fn stats_forwarded_total(c: &Cluster) -> u64 {
    (0..c.n()).filter_map(|i| c.overlay_info(i)).map(|info| info.stats.forwarded).sum()
}

/// `per_partition` keys of each partition (`k0`, `k1`, … in order, skipping those of full
/// partitions), by partition.
fn keys_by_partition(partitions: u32, per_partition: usize) -> BTreeMap<PartitionId, Vec<Vec<u8>>> {
    let mut keys: BTreeMap<PartitionId, Vec<Vec<u8>>> = BTreeMap::new();
    for n in 0.. {
        if keys.len() == partitions as usize && keys.values().all(|k| k.len() == per_partition) {
            break;
        }
        let key = format!("k{n}").into_bytes();
        let slot = keys.entry(partition_of(&key, partitions)).or_default();
        if slot.len() < per_partition {
            slot.push(key);
        }
    }
    keys
}

fn get(key: &[u8]) -> Op {
    Op::Get { key: key.to_vec() }
}

fn set(key: &[u8], value: &[u8]) -> Op {
    Op::Set { key: key.to_vec(), value: value.to_vec() }
}

fn value(v: &[u8]) -> OpResult {
    OpResult::Value(Some(v.to_vec()))
}

/// An error that says the operation did not happen or may have: never a result.
fn is_refusal(r: &Option<Result<OpResult, KvError>>) -> bool {
    matches!(r, Some(Err(KvError::TryAgain { .. } | KvError::OutcomeUnknown { .. })))
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// Boot: five nodes agree on one table, and every partition's group elects a leader that the
/// overlays of its members know.
#[test]
fn boot_every_node_gets_the_table_and_every_group_a_leader() {
    for seed in seeds(3) {
        let c = Cluster::new(seed, 5, 6, 3, 1);
        c.boot();
        let table = c.table();
        assert_eq!(table.table.partition_count(), 6, "seed {seed}");
        assert_eq!(table.table.replication(), 3, "seed {seed}");
        assert_eq!(table.nodes(), c.addrs, "seed {seed}: the table holds every node");
        for i in 0..c.n() {
            let mine = c.table_of(i).unwrap();
            assert_eq!(mine, table, "seed {seed}: node {i} has another table");
            let local: Vec<PartitionId> = c.replicas(i).keys().copied().collect();
            assert_eq!(
                local,
                table.table.partitions_of(&c.addrs[i]),
                "seed {seed}: node {i} replicates other partitions than its table says"
            );
            assert!(!local.is_empty(), "seed {seed}: node {i} replicates nothing");
        }
        // Each overlay knows the table and, for its own groups, the leader — once every
        // member has joined its group (a majority may have elected without a slow member).
        let members_know = |c: &Cluster| {
            (0..c.n()).all(|i| {
                c.overlay_info(i).is_some_and(|info| {
                    info.groups.iter().filter(|g| g.members.contains(&c.addrs[i])).all(|g| {
                        g.leader.is_some() && g.leader == c.leader(g.partition).map(|l| c.addrs[l])
                    })
                })
            })
        };
        let joined = c.sim.run_until_cond(secs(10), || members_know(&c));
        assert!(joined, "seed {seed}: some member does not follow its group's leader");
        for i in 0..c.n() {
            let info = c.overlay_info(i).unwrap();
            assert_eq!(info.replication, 3, "seed {seed}: node {i}");
            assert_eq!(
                info.cluster.as_ref().map(|(name, id)| (name.as_str(), *id)),
                Some(("sim", table.cluster_id)),
                "seed {seed}: node {i}"
            );
            assert_eq!(info.groups.len(), 6, "seed {seed}: node {i}");
            for g in &info.groups {
                assert_eq!(g.members, table.table.group(g.partition), "seed {seed}: node {i}");
                if g.members.contains(&c.addrs[i]) {
                    let leader = c.leader(g.partition).map(|l| c.addrs[l]);
                    assert!(
                        leader.is_some(),
                        "seed {seed}: partition {} lost its leader",
                        g.partition
                    );
                    assert_eq!(
                        g.leader, leader,
                        "seed {seed}: node {i} names another leader of partition {}",
                        g.partition
                    );
                    assert!(g.local.is_some(), "seed {seed}: node {i} has no local status");
                }
            }
        }
    }
}

/// Leaders spread: with three nodes and three groups of three, each node leads one group (the
/// groups prefer different members on equal histories), so no node carries every leader's load.
#[test]
fn boot_spreads_the_leaders_over_the_nodes() {
    for seed in seeds(3) {
        let c = Cluster::new(seed, 3, 3, 3, 0);
        c.boot();
        let leaders: BTreeSet<usize> = (0..3).filter_map(|p| c.leader(PartitionId(p))).collect();
        assert_eq!(leaders.len(), 3, "seed {seed}: leaders on nodes {leaders:?}");
    }
}

/// Routing: a SET through one node is read through every other node, members of the key's
/// group and non-members alike; the keys cover every partition.
#[test]
fn routing_a_write_through_one_node_is_read_through_every_other() {
    for seed in seeds(2) {
        let c = Cluster::new(seed, 5, 6, 3, 1);
        c.boot();
        let keys = keys_by_partition(6, 2);
        let mut n = 0;
        for (p, ks) in &keys {
            let members = c.members(*p);
            for key in ks {
                let writer = n % c.n();
                n += 1;
                let v = format!("v-{}", String::from_utf8_lossy(key)).into_bytes();
                let r = c.op(writer, set(key, &v), secs(6));
                assert_eq!(r, Some(Ok(OpResult::Stored)), "seed {seed}: SET through node {writer}");
                let readers: Vec<usize> = (0..c.n()).filter(|r| *r != writer).collect();
                assert!(readers.iter().any(|r| members.contains(r)), "a member reads");
                assert!(readers.iter().any(|r| !members.contains(r)), "a non-member reads");
                for reader in readers {
                    let r = c.op(reader, get(key), secs(6));
                    assert_eq!(
                        r,
                        Some(Ok(value(&v))),
                        "seed {seed}: GET {:?} (partition {p}, group {members:?}) through node \
                         {reader}, written through node {writer}",
                        String::from_utf8_lossy(key)
                    );
                }
            }
        }
        // Non-members forwarded; members (the leaders, mostly) served for others.
        let mut served = 0;
        for i in 0..c.n() {
            let stats = c.overlay_info(i).unwrap().stats;
            assert!(stats.forwarded > 0, "seed {seed}: node {i} forwarded nothing");
            assert_eq!(stats.errors, 0, "seed {seed}: node {i} answered errors");
            served += stats.served_for_others;
        }
        assert!(served >= stats_forwarded_total(&c), "seed {seed}: forwards went unserved");
        c.assert_converged(secs(2));
        c.assert_linearizable();
    }
}

/// Burst: clients at every node fire many operations at once; all are answered `Ok`, the
/// history (with a final read of every key) is linearizable, and the replicas of every group
/// end identical.
#[test]
fn burst_of_concurrent_operations_from_every_node() {
    for seed in seeds(2) {
        let c = Cluster::new(seed, 5, 6, 3, 2);
        c.boot();
        let keys: Vec<Vec<u8>> = keys_by_partition(6, 2).into_values().flatten().collect();
        let mut rng = SmallRng::seed_from_u64(seed ^ 0xb0b);
        let mut sent = Vec::new();
        for (ci, (_, client)) in c.clients.iter().enumerate() {
            for n in 0..15 {
                let key = keys[rng.random_range(0..keys.len())].clone();
                let v = format!("c{ci}-{n}").into_bytes();
                let op = match rng.random_range(0..10) {
                    0..=3 => get(&key),
                    4..=6 => set(&key, &v),
                    7 => Op::Del { key },
                    _ => Op::Cas {
                        key,
                        expected: format!(
                            "c{}-{}",
                            rng.random_range(0..10),
                            rng.random_range(0..15)
                        )
                        .into_bytes(),
                        new: v,
                    },
                };
                sent.push((client.clone(), c.send(client, op)));
            }
        }
        let all = c
            .sim
            .run_until_cond(secs(10), || sent.iter().all(|(cl, id)| c.answer(cl, *id).is_some()));
        assert!(all, "seed {seed}: not every operation of the burst was answered");
        for (client, id) in &sent {
            let r = c.answer(client, *id).unwrap();
            assert!(r.is_ok(), "seed {seed}: an operation of the burst failed: {r:?}");
        }
        // A final read of every key, through a node chosen per key.
        for (n, key) in keys.iter().enumerate() {
            let r = c.op(n % c.n(), get(key), secs(6));
            assert!(matches!(r, Some(Ok(_))), "seed {seed}: final GET failed: {r:?}");
        }
        c.assert_converged(secs(2));
        c.assert_linearizable();
        // The final reads agree with the replicas' data.
        let table = c.table();
        for key in &keys {
            let p = table.table.partition_of_key(key);
            let holder = c.members(p)[0];
            let stored = c.replicas(holder)[&p]
                .contents
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone());
            let read = c.op(holder, get(key), secs(6));
            assert_eq!(read, Some(Ok(OpResult::Value(stored))), "seed {seed}");
        }
    }
}

/// Crash the primary: the leader of a key's group crashes; operations on the key through the
/// other nodes succeed again within a bounded time, under a new leader, and the value
/// acknowledged before the crash is still read.
#[test]
fn crash_the_primary_of_a_group() {
    for seed in seeds(3) {
        let mut c = Cluster::new(seed, 5, 6, 3, 1);
        c.boot();
        let key = b"k-primary".to_vec();
        let p = c.table().table.partition_of_key(&key);
        let r = c.op(1, set(&key, b"before"), secs(6));
        assert_eq!(r, Some(Ok(OpResult::Stored)), "seed {seed}");
        let old = c.leader(p).unwrap();
        let old_epoch = match c.replicas(old)[&p].status {
            ZabStatus::Leading { epoch } => epoch,
            s => panic!("seed {seed}: {s:?}"),
        };
        let crashed_at = c.sim.now();
        c.crash(old, 0);
        for i in (0..c.n()).filter(|i| *i != old) {
            let r = c.op_until_ok(i, &get(&key), secs(8));
            assert_eq!(r, value(b"before"), "seed {seed}: node {i} reads a lost write");
        }
        let recovered = c.sim.now() - crashed_at;
        assert!(recovered < secs(8), "seed {seed}: took {recovered:?}");
        let new = c.leader(p).expect("a new leader");
        assert_ne!(new, old, "seed {seed}");
        match c.replicas(new)[&p].status {
            ZabStatus::Leading { epoch } => {
                assert!(epoch > old_epoch, "seed {seed}: epoch {epoch:?} after {old_epoch:?}")
            }
            s => panic!("seed {seed}: {s:?}"),
        }
        let writer = (0..c.n()).find(|i| *i != old && *i != new).unwrap();
        assert_eq!(c.op_until_ok(writer, &set(&key, b"after"), secs(5)), OpResult::Stored);
        for i in (0..c.n()).filter(|i| *i != old) {
            assert_eq!(c.op(i, get(&key), secs(6)), Some(Ok(value(b"after"))), "seed {seed}");
        }
        // The old primary comes back as a follower and catches up.
        c.restart(old);
        assert_eq!(c.op_until_ok(old, &get(&key), secs(8)), value(b"after"), "seed {seed}");
        c.assert_converged(secs(5));
        c.assert_linearizable();
    }
}

/// Majority loss: two of the three members of one group crash. Its keys get errors, never a
/// value; keys of groups that keep a majority still work; once the two are back, the
/// acknowledged values are there.
#[test]
fn majority_loss_makes_a_group_refuse_and_the_rest_serve() {
    for seed in seeds(3) {
        let mut c = Cluster::new(seed, 5, 6, 3, 1);
        c.boot();
        let keys = keys_by_partition(6, 1);
        for (p, ks) in &keys {
            let v = format!("v{}", p.0).into_bytes();
            let r = c.op(p.0 as usize % c.n(), set(&ks[0], &v), secs(6));
            assert_eq!(r, Some(Ok(OpResult::Stored)), "seed {seed}");
        }
        let lost = PartitionId(seed as u32 % 6);
        let members = c.members(lost);
        let (down, up) = (vec![members[0], members[1]], members[2]);
        for &i in &down {
            c.crash(i, 1);
        }
        c.sim.run_for(ms(300));
        let table = c.table();
        let lost_key = &keys[&lost][0];
        let mut attempted = BTreeSet::new();
        attempted.insert(format!("v{}", lost.0).into_bytes());
        for i in (0..c.n()).filter(|i| c.alive(*i)) {
            let r = c.op(i, get(lost_key), secs(8));
            assert!(
                is_refusal(&r),
                "seed {seed}: GET of a key of partition {lost} (members {members:?}, {down:?} \
                 down) through node {i} (member: {}) answered {r:?}",
                i == up
            );
            let v = format!("lost-{i}").into_bytes();
            let r = c.op(i, set(lost_key, &v), secs(8));
            assert!(is_refusal(&r), "seed {seed}: SET through node {i} answered {r:?}");
            attempted.insert(v);
        }
        // The groups that keep a majority serve, reads and writes, through every live node.
        for (p, ks) in &keys {
            let crashed = table.table.group(*p).iter().filter(|a| down.contains(&c.index(**a)));
            if crashed.count() >= 2 {
                continue;
            }
            let v = format!("v{}", p.0).into_bytes();
            for i in (0..c.n()).filter(|i| c.alive(*i)) {
                assert_eq!(c.op_until_ok(i, &get(&ks[0]), secs(8)), value(&v), "seed {seed}");
            }
            let w = format!("w{}", p.0).into_bytes();
            assert_eq!(c.op_until_ok(up, &set(&ks[0], &w), secs(8)), OpResult::Stored);
        }
        for &i in &down {
            c.restart(i);
        }
        for i in 0..c.n() {
            match c.op_until_ok(i, &get(lost_key), secs(10)) {
                OpResult::Value(Some(v)) if attempted.contains(&v) => {}
                r => panic!("seed {seed}: after the restart node {i} reads {r:?}"),
            }
        }
        for (p, ks) in &keys {
            let r = c.op_until_ok(0, &get(&ks[0]), secs(8));
            let ok = if *p == lost {
                matches!(&r, OpResult::Value(Some(v)) if attempted.contains(v))
            } else {
                [value(format!("v{}", p.0).as_bytes()), value(format!("w{}", p.0).as_bytes())]
                    .contains(&r)
            };
            assert!(ok, "seed {seed}: partition {p} reads {r:?}");
        }
        c.assert_converged(secs(5));
        c.assert_linearizable();
    }
}

/// An isolated node: its clients' requests get errors, never stale values, while the rest of
/// the cluster goes on writing; after the heal everything works and the replicas converge.
#[test]
fn an_isolated_node_answers_errors_not_stale_values() {
    for seed in seeds(3) {
        let c = Cluster::new(seed, 5, 6, 3, 1);
        c.boot();
        let keys = keys_by_partition(6, 1);
        for (p, ks) in &keys {
            let r = c.op(0, set(&ks[0], format!("old{}", p.0).as_bytes()), secs(6));
            assert_eq!(r, Some(Ok(OpResult::Stored)), "seed {seed}");
        }
        // Isolate a node that leads a group, so that the cut also forces an election.
        let x = c.leader(PartitionId(seed as u32 % 6)).unwrap();
        let others: Vec<NodeAddr> = (0..c.n()).filter(|i| *i != x).map(|i| c.addrs[i]).collect();
        c.net.partition(&[c.addrs[x]], &others);
        // Everything through x at once, while the others write new values.
        let cx = c.client(x, 0).clone();
        let isolated: Vec<u64> = keys.values().map(|ks| c.send(&cx, get(&ks[0]))).collect();
        let rest = (0..c.n()).find(|i| *i != x).unwrap();
        for (p, ks) in &keys {
            let new = format!("new{}", p.0).into_bytes();
            assert_eq!(c.op_until_ok(rest, &set(&ks[0], &new), secs(8)), OpResult::Stored);
        }
        let done = c
            .sim
            .run_until_cond(secs(8), || isolated.iter().all(|id| c.answer(&cx, *id).is_some()));
        assert!(done, "seed {seed}: the isolated node left requests unanswered");
        let mut later = Vec::new();
        for (p, ks) in &keys {
            later.push((*p, c.send(&cx, get(&ks[0]))));
        }
        c.sim.run_until_cond(secs(8), || later.iter().all(|(_, id)| c.answer(&cx, *id).is_some()));
        for id in isolated.iter().chain(later.iter().map(|(_, id)| id)) {
            let r = c.answer(&cx, *id);
            assert!(is_refusal(&r), "seed {seed}: isolated node {x} answered {r:?}");
        }
        c.net.heal();
        for (p, ks) in &keys {
            let new = format!("new{}", p.0).into_bytes();
            assert_eq!(c.op_until_ok(x, &get(&ks[0]), secs(10)), value(&new), "seed {seed}");
        }
        c.assert_converged(secs(5));
        c.assert_linearizable();
    }
}

/// The overlay's deadline: a request no member can serve is answered `TryAgain` when its own
/// timeout (5 s) has passed, neither before nor long after, and a later request keeps its
/// later deadline (one expiry timer serves them all, set for the oldest).
#[test]
fn an_unservable_request_is_refused_at_its_deadline() {
    for seed in seeds(2) {
        let c = Cluster::new(seed, 5, 6, 3, 1);
        c.boot();
        let keys = keys_by_partition(6, 1);
        let p = PartitionId(seed as u32 % 6);
        let members = c.members(p);
        let x = (0..c.n()).find(|i| !members.contains(i)).expect("a node outside the group");
        let member_addrs: Vec<NodeAddr> = members.iter().map(|m| c.addrs[*m]).collect();
        c.net.partition(&[c.addrs[x]], &member_addrs);
        let cx = c.client(x, 0).clone();
        let key = &keys[&p][0];
        let first = c.send(&cx, get(key));
        c.sim.run_for(secs(1));
        let second = c.send(&cx, get(key));
        c.sim.run_for(ms(3_900));
        assert_eq!(c.answer(&cx, first), None, "seed {seed}: answered before its deadline");
        c.sim.run_for(ms(200));
        let r = c.answer(&cx, first);
        assert!(
            matches!(r, Some(Err(KvError::TryAgain { partition })) if partition == p),
            "seed {seed}: at its deadline the first request got {r:?}"
        );
        assert_eq!(c.answer(&cx, second), None, "seed {seed}: expired with the first one");
        c.sim.run_for(ms(1_000));
        let r = c.answer(&cx, second);
        assert!(
            matches!(r, Some(Err(KvError::TryAgain { .. }))),
            "seed {seed}: at its deadline the second request got {r:?}"
        );
        c.net.heal();
        assert_eq!(c.op_until_ok(x, &get(key), secs(10)), OpResult::Value(None), "seed {seed}");
    }
}

/// Forwarded writes keep their order when the route changes. A node outside the group holds a
/// stale hint naming the old leader, now a follower behind a slow link. A write sent there
/// (which the follower passes on to the leader) must not be overtaken by the next write of the
/// same connection, sent once a reply names the new leader: the later write takes effect last.
#[test]
fn a_forwarded_write_is_not_overtaken_when_a_hint_changes_the_route() {
    for seed in seeds(3) {
        let c = Cluster::new(seed, 5, 6, 3, 2);
        c.boot();
        let key = b"k-order".to_vec();
        let p = c.table().table.partition_of_key(&key);
        let members = c.members(p);
        let x = (0..c.n()).find(|i| !members.contains(i)).expect("a node outside the group");
        let hint = |c: &Cluster| {
            let info = c.overlay_info(x)?;
            let group = info.groups.iter().find(|g| g.partition == p)?;
            group.leader.map(|a| c.index(a))
        };
        // x learns the leader from a reply.
        assert_eq!(c.op_until_ok(x, &set(&key, b"0"), secs(5)), OpResult::Stored, "seed {seed}");
        let old = c.leader(p).expect("a leader");
        assert_eq!(hint(&c), Some(old), "seed {seed}: x's hint");
        // The old leader is cut off from its group (not from x): another member takes over,
        // and after the heal the old leader follows it. x sends nothing meanwhile, so its
        // hint still names the old leader.
        let others: Vec<NodeAddr> =
            members.iter().filter(|m| **m != old).map(|m| c.addrs[*m]).collect();
        c.net.partition(&[c.addrs[old]], &others);
        assert!(
            c.sim.run_until_cond(secs(10), || c.leader(p).is_some_and(|l| l != old)),
            "seed {seed}: no new leader"
        );
        let new = c.leader(p).unwrap();
        c.net.heal();
        let following = ZabStatus::Following { leader: c.addrs[new], epoch: Default::default() };
        assert!(
            c.sim.run_until_cond(secs(10), || {
                matches!(c.replicas(old).get(&p).map(|v| v.status),
                    Some(ZabStatus::Following { leader, .. }) if leader == c.addrs[new])
            }),
            "seed {seed}: the old leader does not follow the new one ({following:?})"
        );
        assert_eq!(hint(&c), Some(old), "seed {seed}: x's hint changed without a reply");
        // The link from x to the old leader becomes slow.
        c.net.set_link_latency(c.addrs[x], c.addrs[old], ms(50), ms(50));
        let (reader, writer) = (c.client(x, 0).clone(), c.client(x, 1).clone());
        let served = |c: &Cluster| c.overlay_info(old).map_or(0, |i| i.stats.served_for_others);
        let before = served(&c);
        let read = c.send(&reader, get(&key));
        assert!(c.sim.run_until_cond(secs(1), || served(&c) > before), "seed {seed}");
        // The read reached the old leader; its answer will name the new one. The first write
        // goes the old way, the second after the hint changed.
        let first = c.send(&writer, set(&key, b"1"));
        assert!(c.sim.run_until_cond(secs(1), || hint(&c) == Some(new)), "seed {seed}");
        assert_eq!(c.answer(&writer, first), None, "seed {seed}: the race did not happen");
        let second = c.send(&writer, set(&key, b"2"));
        assert!(
            c.sim.run_until_cond(secs(6), || {
                c.answer(&writer, first).is_some() && c.answer(&writer, second).is_some()
            }),
            "seed {seed}: the writes were not answered"
        );
        assert_eq!(c.answer(&reader, read), Some(Ok(value(b"0"))), "seed {seed}");
        assert_eq!(c.answer(&writer, first), Some(Ok(OpResult::Stored)), "seed {seed}");
        assert_eq!(c.answer(&writer, second), Some(Ok(OpResult::Stored)), "seed {seed}");
        c.net.reset_link_latency(c.addrs[x], c.addrs[old]);
        for i in 0..c.n() {
            assert_eq!(
                c.op(i, get(&key), secs(5)),
                Some(Ok(value(b"2"))),
                "seed {seed}: node {i} reads the first write: it took effect after the second"
            );
        }
        c.assert_linearizable();
    }
}

/// Forwarded writes stuck at a suspected member do not hold up the writes behind them: once
/// the member is suspected, they are answered `OutcomeUnknown` (they may still take effect),
/// and the next write goes to another member, long before the stuck ones' deadline.
#[test]
fn writes_queued_behind_a_suspected_member_go_elsewhere() {
    for seed in seeds(3) {
        let c = Cluster::new(seed, 5, 6, 3, 1);
        c.boot();
        let key = b"k-stuck".to_vec();
        let p = c.table().table.partition_of_key(&key);
        let members = c.members(p);
        let x = (0..c.n()).find(|i| !members.contains(i)).expect("a node outside the group");
        assert_eq!(c.op_until_ok(x, &set(&key, b"0"), secs(5)), OpResult::Stored, "seed {seed}");
        let leader = c.leader(p).expect("a leader");
        // Everything between x and the leader now takes 30 s: the session stands, but the
        // failure detectors hear nothing.
        let (ax, al) = (c.addrs[x], c.addrs[leader]);
        c.net.set_link_latency(ax, al, secs(30), secs(30));
        c.net.set_link_latency(al, ax, secs(30), secs(30));
        let cx = c.client(x, 0).clone();
        let stuck = [c.send(&cx, set(&key, b"1")), c.send(&cx, set(&key, b"2"))];
        let suspected =
            |c: &Cluster| c.overlay_info(x).is_some_and(|i| i.suspected.contains(&c.addrs[leader]));
        assert!(c.sim.run_until_cond(secs(4), || suspected(&c)), "seed {seed}: no suspicion");
        let sent_at = c.sim.now();
        let next = c.send(&cx, set(&key, b"3"));
        assert!(
            c.sim.run_until_cond(secs(3), || c.answer(&cx, next).is_some()),
            "seed {seed}: the next write waited for the stuck ones"
        );
        assert_eq!(c.answer(&cx, next), Some(Ok(OpResult::Stored)), "seed {seed}");
        assert!(c.sim.now() - sent_at < secs(3), "seed {seed}");
        for id in stuck {
            let r = c.answer(&cx, id);
            assert!(
                matches!(r, Some(Err(KvError::OutcomeUnknown { partition })) if partition == p),
                "seed {seed}: a stuck write was answered {r:?}"
            );
        }
        c.net.reset_link_latency(ax, al);
        c.net.reset_link_latency(al, ax);
        c.sim.run_for(secs(31));
        c.assert_converged(secs(5));
        c.assert_linearizable();
    }
}

/// The sweep's cluster is a scenario world: the scenario's events act on it and its simulation
/// runs between them.
impl World for Cluster {
    fn now(&self) -> Time {
        self.sim.now()
    }

    fn run_until(&mut self, until: Time) -> Result<(), String> {
        self.sim.run_until(until);
        Ok(())
    }

    fn report(&self) -> String {
        let up: Vec<usize> = (0..self.n()).filter(|i| self.alive(*i)).collect();
        let returned = self.history().iter().filter(|h| h.response().is_some()).count();
        format!("nodes up: {up:?}; {returned} client operations returned\n")
    }
}

/// The sweep's cluster: five nodes, four partitions replicated three times, a scripted client
/// and two random clients (started at boot) at every node.
fn sweep_cluster(sim: Simulation) -> Cluster {
    let mut c = Cluster::with_sim(sim, 5, 4, 3, 1);
    let keys: Vec<Vec<u8>> = keys_by_partition(4, 2).into_values().flatten().collect();
    for i in 0..c.n() {
        for _ in 0..2 {
            c.add_client(i, keys.clone());
        }
    }
    c
}

/// The sweep's driver: boot and start the clients; `rounds` rounds of random faults (each two
/// crashes with torn disks, two restarts, an isolation, a split and a heal, in a random order,
/// 50–880 ms apart); then calm: heal, restart everyone, let the clients run 4 s, stop them
/// and give their last operations time to finish. Returns the scenario and its last process,
/// after which a test adds its checks.
fn random_faults(rounds: usize) -> (Scenario<Cluster>, ProcessId) {
    let mut s = Scenario::new("kv cluster under random faults");
    let boot = s.start_at(
        Duration::ZERO,
        Process::once("boot", |c: &mut Cluster, _| {
            c.boot();
            for (_, client) in &c.clients {
                client.start();
            }
        }),
    );
    let faults = Process::new("faults")
        .every(Dist::uniform(ms(50), ms(880)))
        .raise(2 * rounds, "crash", |c: &mut Cluster, ctx| {
            let i = ctx.uniform(0..c.n());
            let keep = ctx.uniform(0..3);
            ctx.note(if c.alive(i) {
                format!("node {i}, {keep} unsynced writes per disk kept")
            } else {
                format!("node {i} already down")
            });
            c.crash(i, keep);
        })
        .raise(2 * rounds, "restart", |c: &mut Cluster, ctx| {
            let down: Vec<usize> = (0..c.n()).filter(|i| !c.alive(*i)).collect();
            match ctx.choose(&down) {
                Some(&i) => {
                    ctx.note(format!("node {i}"));
                    c.restart(i);
                }
                None => ctx.note("no node down"),
            }
        })
        .raise(rounds, "isolate", |c: &mut Cluster, ctx| {
            let i = ctx.uniform(0..c.n());
            let others: Vec<NodeAddr> =
                (0..c.n()).filter(|j| *j != i).map(|j| c.addrs[j]).collect();
            ctx.note(format!("node {i}"));
            c.net.partition(&[c.addrs[i]], &others);
        })
        .raise(rounds, "split", |c: &mut Cluster, ctx| {
            let cut = ctx.uniform(1..c.n());
            ctx.note(format!("nodes 0..{cut} | {cut}..{}", c.n()));
            let (l, r) = c.addrs.split_at(cut);
            c.net.partition(l, r);
        })
        .raise(rounds, "heal", |c: &mut Cluster, _| c.net.heal());
    let faults = s.start_after_end(boot, Duration::ZERO, faults);
    let calm = s.start_after_end(
        faults,
        Dist::uniform(ms(50), ms(880)),
        Process::once("heal and restart all", |c: &mut Cluster, _| {
            c.net.heal();
            for i in 0..c.n() {
                if !c.alive(i) {
                    c.restart(i);
                }
            }
        }),
    );
    let stop = s.start_after_end(
        calm,
        secs(4),
        Process::once("stop clients", |c: &mut Cluster, _| {
            for (_, client) in &c.clients {
                client.on_definition(|cl| cl.active = false);
            }
        }),
    );
    // The clients' last operations are answered or time out by then.
    let done = s.start_after_end(stop, CLIENT_TIMEOUT + secs(1), Process::new("clients done"));
    (s, done)
}

/// The sweep: random crashes (with torn disks), restarts, isolations and splits under clients
/// at every node; the history is linearizable and the replicas of every group converge.
#[test]
fn linearizable_through_overlays_under_random_faults() {
    let (mut scenario, done) = random_faults(3);
    scenario.start_after_end(
        done,
        Duration::ZERO,
        Process::once("check", |c: &mut Cluster, ctx| -> Result<(), String> {
            let history = c.history();
            let returned = history.iter().filter(|h| h.response().is_some()).count();
            ctx.note(format!("{returned} of {} operations returned", history.len()));
            if returned <= 50 {
                return Err(format!("only {returned} operations returned"));
            }
            // The string writes are part of what is checked, not only generated.
            for (name, made) in [
                ("INCR", &(|op: &Op| matches!(op, Op::IncrBy { .. })) as &dyn Fn(&Op) -> bool),
                ("APPEND", &|op: &Op| matches!(op, Op::Append { .. })),
                ("SET NX", &|op: &Op| matches!(op, Op::SetIf { .. })),
                ("GETDEL", &|op: &Op| matches!(op, Op::GetDel { .. })),
                ("INCRBYFLOAT", &|op: &Op| matches!(op, Op::IncrByFloat { .. })),
            ] {
                if !history.iter().any(|h| h.response().is_some() && made(&h.op)) {
                    return Err(format!("no {name} returned"));
                }
            }
            check(&history).map_err(|e| format!("the history is not linearizable:\n{e}"))?;
            c.assert_converged(secs(5));
            // After the calm, every group has a leader again.
            if !c.all_led() {
                return Err("a group has no leader after the calm".into());
            }
            Ok(())
        }),
    );
    scenario.sweep(&seeds(6), |seed| sweep_cluster(Simulation::new(seed)), |_, _| {});
}

/// The same seed gives the same run: the same scenario log, the same trace and the same
/// history.
#[test]
fn same_seed_same_run() {
    let seed = seeds(1)[0] + 77;
    let (scenario, _) = random_faults(1);
    let run = || {
        let sim = Simulation::new(seed);
        sim.enable_trace();
        let mut c = sweep_cluster(sim);
        let log = scenario.run(seed, &mut c).unwrap_or_else(|f| panic!("{f}")).log;
        let mut history: Vec<String> = c.history().iter().map(|h| format!("{h:?}")).collect();
        history.sort();
        (c.sim.trace_hash(), c.sim.steps(), history, log)
    };
    let (hash_a, steps_a, history_a, log_a) = run();
    let (hash_b, steps_b, history_b, log_b) = run();
    assert!(!history_a.is_empty(), "seed {seed}: an empty history");
    assert_eq!(log_a.len(), 10, "seed {seed}: boot, 7 faults, calm, stop: {log_a:?}");
    assert_eq!(log_a, log_b, "seed {seed}: the scenario ran differently");
    assert_eq!(steps_a, steps_b, "seed {seed}: the runs took different steps");
    assert_eq!(history_a, history_b, "seed {seed}: the runs have different histories");
    assert_eq!(hash_a, hash_b, "seed {seed}: the runs have different traces");
}

/// The node is one composite component: its overlay's ports are the node's, exported, so they
/// can be wired and used right after `create`, before it starts — nothing waits for the
/// overlay to exist. An INFO asked through the exported control port before the start is
/// answered once the node runs, to the asker.
#[test]
fn a_node_is_wired_through_its_exported_ports_before_it_starts() {
    let sim = Simulation::new(1);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let me = NodeAddr(([10, 0, 0, 1], 7000).into());
    let network = net.add_node(me);
    let storage: StorageFactory = Arc::new(|_| Ok(Box::new(SimDisk::new()) as Box<dyn ZabStorage>));
    let table_store: TableStoreFactory =
        Arc::new(|| Box::new(MemTableStore::default()) as Box<dyn TableStore>);
    let role = BootstrapRole::Server { expected_nodes: 1 };
    let config = NodeConfig::new(
        BootstrapConfig::new(me, role, 2, 1, "solo"),
        network.provided::<Network>(),
        storage,
        table_store,
    );
    let kv = sim.create(move |s| KvNode::new(s, config.clone()));
    let mut early = kv.exported_provided::<OverlayControl>().ask(InfoQuery);
    network.start();
    kv.start();
    let info = sim.run_until_answered(&mut early, secs(5)).expect("answered once started");
    assert_eq!(info.me, me);
    let formed =
        sim.run_until_cond(secs(10), || kv.on_definition(|k| k.table().is_some()).unwrap_or(false));
    assert!(formed, "the one-node cluster formed");
    let mut late = kv.exported_provided::<OverlayControl>().ask(InfoQuery);
    let info = sim.run_until_answered(&mut late, secs(5)).expect("answered");
    assert_eq!(info.cluster.map(|(name, _)| name), Some("solo".to_string()));
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
}
