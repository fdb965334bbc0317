//! Replicas of one partition on Zab, in the simulator, under crashes, restarts and partitions:
//! the client histories must be linearizable (checked per key, Wing–Gong–Lowe) and every
//! acknowledged write must survive. Every failure names its seed; `SIM_SEED=s` replays one.

mod common;

use std::rc::Rc;
use std::time::Duration;

use common::history_entry;
use kompics_core::rand::rngs::SmallRng;
use kompics_core::rand::{Rng, SeedableRng};
use kompics_core::*;
use kompics_net::sim::SimNetConfig;
use kvstore_app::linearizability::{check, ClientId, HistoryOp};
use kvstore_app::partition::PartitionId;
use kvstore_app::replica::{KvPort, KvReply, KvRequest, Replica, ReplicaConfig};
use kvstore_app::store::Op;
use zab_components::component::ZabConfig;
use zab_components::testing::{sweep_seeds_from, Group};

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
        self.history.extend(history_entry(ClientId(self.id), invoke, now, op, &reply));
        self.next(ctx);
    }
}

/// The clients, each with the index of the node whose replica it talks to.
type Clients = Rc<Vec<(usize, Component<Client>)>>;

fn run(seed: u64) {
    let sim = Simulation::new(seed);
    let n = 3;
    let clients: Clients = Rc::new(
        (0..(2 * n))
            .map(|k| {
                let id = k as u64 + 1;
                let client = sim.create(move |s| Client {
                    kv: s.required(),
                    id,
                    seq: 0,
                    current: None,
                    history: Vec::new(),
                    active: true,
                });
                (k % n, client)
            })
            .collect(),
    );
    let tune = |config: &mut ZabConfig| {
        config.protocol.snapshot_entries_trigger = 50;
        config.sync_delay = (Duration::ZERO, Duration::from_millis(3));
    };
    let to_connect = clients.clone();
    let mut c = Group::new(sim, n, SimNetConfig::default(), tune, move |node| {
        let replica = node.system.create(|s| Replica::new(s, ReplicaConfig::new(PartitionId(0))));
        node.connect_app(&replica);
        for (at, client) in to_connect.iter() {
            if *at == node.index {
                connect(&replica.provided::<KvPort>(), &client.required::<KvPort>());
            }
        }
        replica
    });
    for (_, client) in clients.iter() {
        client.start();
    }
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xfeed);
    for _ in 0..40 {
        match rng.random_range(0..8) {
            0 => c.crash(rng.random_range(0..n), rng.random_range(0..3)),
            1 => c.start_first_down(),
            2 => c.partition(&[rng.random_range(0..n)]),
            3 => c.heal(),
            _ => {}
        }
        c.run(Duration::from_millis(rng.random_range(50..400)));
    }
    // Calm: heal, restart everyone, let clients finish their last operation.
    c.heal();
    c.start_all();
    c.run(Duration::from_secs(5));
    for (_, client) in clients.iter() {
        client.on_definition(|cl| cl.active = false);
    }
    c.run(TIMEOUT + Duration::from_secs(1));
    let mut history = Vec::new();
    for (_, client) in clients.iter() {
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
            n.app
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
    for seed in sweep_seeds_from(0, 10) {
        run(seed);
    }
}
