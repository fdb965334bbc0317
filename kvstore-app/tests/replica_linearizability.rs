//! Replicas of one partition on Zab, in the simulator, under crashes, restarts and partitions:
//! the client histories must be linearizable (checked per key, Wing–Gong–Lowe) and every
//! acknowledged write must survive. Every failure names its seed; `SIM_SEED=s` replays one.

use std::time::Duration;

use kompics_core::rand::rngs::SmallRng;
use kompics_core::rand::{Rng, SeedableRng};
use kompics_core::*;
use kompics_net::sim::{SimNet, SimNetConfig, SimNetwork};
use kompics_net::{Network, NodeAddr};
use kvstore_app::linearizability::{check, ClientId, HistoryOp};
use kvstore_app::partition::PartitionId;
use kvstore_app::replica::{KvError, KvPort, KvReply, KvRequest, Replica, ReplicaConfig};
use kvstore_app::store::Op;
use zab_components::component::{AtomicBroadcast, ZabComponent, ZabConfig};
use zab_components::failure_detector::{FailureDetector, FdConfig};
use zab_components::storage::SimDisk;

const KEYS: [&[u8]; 3] = [b"x", b"y", b"z"];
const TIMEOUT: Duration = Duration::from_secs(3);

/// A closed-loop client: one operation at a time, recorded with its times.
struct Client {
    kv: RequiredPort<KvPort>,
    id: u64,
    seq: u64,
    current: Option<(u64, u64, Op)>,
    history: Vec<HistoryOp>,
    active: bool,
}

impl Client {
    fn next(&mut self, ctx: &mut Context<Self>) {
        if !self.active {
            return;
        }
        let key = KEYS[ctx.rng().random_range(0..KEYS.len())].to_vec();
        let v = vec![ctx.rng().random_range(0..4u8)];
        let op = match ctx.rng().random_range(0..10) {
            0..=3 => Op::Get { key },
            4..=6 => Op::Set { key, value: v },
            7 => Op::Del { key },
            _ => Op::Cas { key, expected: v, new: vec![ctx.rng().random_range(0..4u8)] },
        };
        self.seq += 1;
        let id = (self.id << 32) | self.seq;
        let now = ctx.now().as_nanos();
        self.current = Some((id, now, op.clone()));
        self.kv.trigger(KvRequest { id, op });
        ctx.schedule_once(TIMEOUT, move |c: &mut Client, ctx| {
            if let Some((cur, invoke, op)) = c.current.take_if(|(cur, _, _)| *cur == id) {
                let _ = cur;
                c.history.push(HistoryOp::unknown(ClientId(c.id), invoke, op));
                c.next(ctx);
            }
        });
    }
}

impl ComponentDefinition for Client {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        self.next(ctx);
    }
}

impl Require<KvPort> for Client {
    fn handle(&mut self, ctx: &mut Context<Self>, reply: KvReply) {
        let Some((id, invoke, op)) = self.current.take_if(|(id, _, _)| *id == reply.id) else {
            return;
        };
        let _ = id;
        let now = ctx.now().as_nanos();
        match reply.result {
            Ok(result) => {
                self.history.push(HistoryOp::returned(ClientId(self.id), invoke, now, op, result))
            }
            Err(KvError::OutcomeUnknown { .. }) => {
                self.history.push(HistoryOp::unknown(ClientId(self.id), invoke, op))
            }
            // Did not happen: not part of the history.
            Err(
                KvError::TryAgain { .. }
                | KvError::Busy { .. }
                | KvError::TooLarge { .. }
                | KvError::OutOfMemory,
            ) => {}
        }
        self.next(ctx);
    }
}

struct Node {
    net: Component<SimNetwork>,
    fd: Component<FailureDetector>,
    zab: Component<ZabComponent>,
    replica: Component<Replica>,
}

struct Cluster {
    sim: Simulation,
    net: SimNet,
    addrs: Vec<NodeAddr>,
    disks: Vec<SimDisk>,
    nodes: Vec<Option<Node>>,
    clients: Vec<(usize, Component<Client>)>,
}

impl Cluster {
    fn start(&mut self, i: usize) {
        let me = self.addrs[i];
        let mut config = ZabConfig::new(0, me, &self.addrs);
        config.protocol.snapshot_entries_trigger = 50;
        config.sync_delay = (Duration::ZERO, Duration::from_millis(3));
        let disk = self.disks[i].clone();
        let net = self.net.add_node(me);
        let system = self.sim.system();
        let network = net.provided::<Network>();
        let fd = FailureDetector::create(&system, &network, me, FdConfig::default());
        let zab = ZabComponent::create(&system, &network, &fd.provided(), config, move || {
            Box::new(disk.clone())
        });
        let replica = self.sim.create(|s| Replica::new(s, ReplicaConfig::new(PartitionId(0))));
        connect(&zab.provided::<AtomicBroadcast>(), &replica.required::<AtomicBroadcast>());
        for (at, c) in &self.clients {
            if *at == i {
                connect(&replica.provided::<KvPort>(), &c.required::<KvPort>());
            }
        }
        fd.start();
        replica.start();
        zab.start();
        self.nodes[i] = Some(Node { net, fd, zab, replica });
    }

    fn crash(&mut self, i: usize, keep: usize) {
        let Some(n) = self.nodes[i].take() else { return };
        self.net.crash(self.addrs[i]);
        n.replica.kill();
        n.zab.kill();
        n.fd.kill();
        n.net.kill();
        self.disks[i].crash(keep);
    }
}

fn run(seed: u64) {
    let sim = Simulation::new(seed);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let n = 3;
    let addrs: Vec<NodeAddr> =
        (0..n).map(|i| NodeAddr(([10, 0, 0, i as u8 + 1], 6000).into())).collect();
    let disks = (0..n).map(|_| SimDisk::new()).collect();
    let nodes = (0..n).map(|_| None).collect();
    let mut c = Cluster { sim, net, disks, addrs, nodes, clients: Vec::new() };
    for k in 0..(2 * n) {
        let id = k as u64 + 1;
        let client = c.sim.create(move |s| Client {
            kv: s.required(),
            id,
            seq: 0,
            current: None,
            history: Vec::new(),
            active: true,
        });
        c.clients.push((k % n, client));
    }
    for i in 0..n {
        c.start(i);
    }
    for (_, client) in &c.clients {
        client.start();
    }
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xfeed);
    for _ in 0..40 {
        match rng.random_range(0..8) {
            0 => {
                let i = rng.random_range(0..n);
                let keep = rng.random_range(0..3);
                c.crash(i, keep);
            }
            1 => {
                if let Some(i) = (0..n).find(|i| c.nodes[*i].is_none()) {
                    c.start(i);
                }
            }
            2 => {
                let i = rng.random_range(0..n);
                let others: Vec<NodeAddr> =
                    (0..n).filter(|j| *j != i).map(|j| c.addrs[j]).collect();
                c.net.partition(&[c.addrs[i]], &others);
            }
            3 => c.net.heal(),
            _ => {}
        }
        c.sim.run_for(Duration::from_millis(rng.random_range(50..400)));
    }
    // Calm: heal, restart everyone, let clients finish their last operation.
    c.net.heal();
    for i in 0..n {
        if c.nodes[i].is_none() {
            c.start(i);
        }
    }
    c.sim.run_for(Duration::from_secs(5));
    for (_, client) in &c.clients {
        client.on_definition(|cl| cl.active = false);
    }
    c.sim.run_for(TIMEOUT + Duration::from_secs(1));
    let mut history = Vec::new();
    for (_, client) in &c.clients {
        history.extend(client.on_definition(|cl| cl.history.clone()).unwrap());
    }
    let returned = history.iter().filter(|h| h.response().is_some()).count();
    assert!(returned > 20, "seed {seed}: only {returned} operations returned");
    if let Err(e) = check(&history) {
        panic!("seed {seed}: not linearizable:\n{e}");
    }
    // Every replica converged to the same data; every acknowledged write is in it, or was
    // overwritten by a later operation (which the linearizability check already covers).
    let stores: Vec<Vec<(Vec<u8>, Vec<u8>)>> = c
        .nodes
        .iter()
        .flatten()
        .map(|n| {
            n.replica
                .on_definition(|r| {
                    r.store().iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
                })
                .unwrap()
        })
        .collect();
    for s in &stores {
        assert_eq!(s, &stores[0], "seed {seed}: replicas diverge");
    }
}

#[test]
fn replica_histories_are_linearizable_under_faults() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => (0..std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10))
            .collect(),
    };
    for seed in seeds {
        run(seed);
    }
}
