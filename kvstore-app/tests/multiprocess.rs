//! Real `kvstore node` processes on loopback, concurrent RESP clients, and `kill -9` and restart
//! of random nodes, leaders included. The clients' history must be linearizable (one register
//! per key; an operation without an answer may or may not have happened) and every write
//! acknowledged must be in the final state (checked by the same history: final reads follow).
//!
//! `KV_MP_SECONDS` sets how long the faulty phase lasts (default 12 s); `KV_MP_SEED` the seed
//! of the fault schedule and of the clients.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kvstore_app::store::{Op, OpResult};
use kvstore_app::tools::client::{ClientError, RespClient};
use kvstore_app::tools::linearizability::{check, ClientId, HistoryOp};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod common;
use common::ProcessCluster;

const NODES: usize = 3;
const KEYS: [&[u8]; 4] = [b"alpha", b"beta", b"gamma", b"delta"];

/// One closed-loop client: random operations at random nodes, recorded.
fn client_loop(
    id: u64,
    seed: u64,
    endpoints: Vec<SocketAddr>,
    start: Instant,
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<HistoryOp>>>,
) -> (u64, u64) {
    let mut rng = SmallRng::seed_from_u64(seed ^ id.wrapping_mul(0x9e37_79b9));
    let mut conn: Option<RespClient> = None;
    let (mut ok, mut failed) = (0u64, 0u64);
    let now = || start.elapsed().as_nanos() as u64;
    while !stop.load(Ordering::Relaxed) {
        if conn.as_ref().is_none_or(|c| c.is_broken()) {
            let at = endpoints[rng.random_range(0..endpoints.len())];
            conn = RespClient::connect(at, Duration::from_secs(8)).ok();
            if conn.is_none() {
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        let c = conn.as_mut().unwrap();
        let key = KEYS[rng.random_range(0..KEYS.len())].to_vec();
        let v = format!("{id}-{}", rng.random_range(0..1000u32)).into_bytes();
        let op = match rng.random_range(0..10) {
            0..=3 => Op::Get { key },
            4..=6 => Op::Set { key, value: v },
            7 => Op::Del { key },
            _ => {
                let expected = format!("{}-{}", rng.random_range(1..4), rng.random_range(0..1000))
                    .into_bytes();
                Op::Cas { key, expected, new: v }
            }
        };
        let invoke = now();
        let result: Result<OpResult, ClientError> = match &op {
            Op::Get { key } => c.get(key).map(OpResult::Value),
            Op::Set { key, value } => c.set(key, value).map(|()| OpResult::Stored),
            Op::Del { key } => c.del(key).map(|n| OpResult::Deleted(n == 1)),
            Op::Cas { key, expected, new } => c.cas(key, expected, new).map(OpResult::Swapped),
            other => unreachable!("this workload makes no {other:?}"),
        };
        let client = ClientId(id);
        let mut h = history.lock().unwrap();
        match result {
            Ok(r) => {
                ok += 1;
                h.push(HistoryOp::returned(client, invoke, now(), op, r));
            }
            Err(e) if e.is_tryagain() => failed += 1, // did not happen
            Err(e) => {
                assert!(
                    e.is_io() || e.is_outcome_unknown(),
                    "client {id}: unexpected error {e} for {op:?}"
                );
                failed += 1;
                h.push(HistoryOp::unknown(client, invoke, op));
            }
        }
    }
    (ok, failed)
}

fn run(seed: u64, seconds: u64) {
    let mut cluster = ProcessCluster::new("kvstore-mp", seed, NODES, 3, 3);
    cluster.start_all();
    cluster.wait_led(Duration::from_secs(60));

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let history = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (1..=6u64)
        .map(|id| {
            let (endpoints, stop, history) =
                (cluster.clients.clone(), stop.clone(), history.clone());
            thread::spawn(move || client_loop(id, seed, endpoints, start, stop, history))
        })
        .collect();

    let mut rng = SmallRng::seed_from_u64(seed);
    let mut kills = 0;
    let faulty_until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < faulty_until {
        thread::sleep(Duration::from_millis(rng.random_range(600..1500)));
        // Half the time a leader of some partition, else any node.
        let leader = cluster.some_leader();
        let victim = match leader {
            Some(l) if rng.random_bool(0.5) => l,
            _ => rng.random_range(0..NODES),
        };
        cluster.kill(victim);
        kills += 1;
        thread::sleep(Duration::from_millis(rng.random_range(200..1200)));
        cluster.start(victim);
    }
    // Calm: every node up, leaders elected, clients keep going a little, then stop.
    cluster.wait_led(Duration::from_secs(60));
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    for w in workers {
        ok += w.join().expect("client thread").0;
    }
    // Final reads of every key, from a fresh client, after everything else returned.
    let mut final_client = RespClient::connect(cluster.clients[0], Duration::from_secs(10))
        .expect("connect for the final reads");
    let mut h = history.lock().unwrap();
    for key in KEYS {
        let invoke = start.elapsed().as_nanos() as u64;
        let value = final_client.get(key).expect("final read");
        let at = start.elapsed().as_nanos() as u64;
        h.push(HistoryOp::returned(
            ClientId(0),
            invoke,
            at,
            Op::Get { key: key.to_vec() },
            OpResult::Value(value),
        ));
    }
    eprintln!("seed {seed}: {kills} kills, {ok} operations acknowledged, {} recorded", h.len());
    assert!(kills >= 2, "seed {seed}: too few kills ({kills})");
    assert!(ok > 50, "seed {seed}: only {ok} operations acknowledged");
    if let Err(e) = check(&h) {
        panic!("seed {seed}: the history is not linearizable:\n{e}");
    }
}

#[test]
fn kill9_and_restart_keep_histories_linearizable() {
    let seed = std::env::var("KV_MP_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let seconds = std::env::var("KV_MP_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    run(seed, seconds);
}
