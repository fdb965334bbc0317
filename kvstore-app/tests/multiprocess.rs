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

/// Issue 13: a process that knows every address but holds another cluster secret dials the
/// bootstrap node of a forming cluster before the real members start. It cannot complete a
/// handshake, so it is never counted as a member, gets no answer from the cluster (its log
/// shows the refusal) and changes nothing: the cluster forms with exactly its three members
/// and serves.
#[test]
fn a_process_with_another_secret_cannot_join_reach_or_change_the_cluster() {
    let mut cluster = ProcessCluster::new("kvstore-mp-auth", 0, NODES, 1, NODES);
    let ports = common::free_ports(2);
    let intruder_peer = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let intruder_client = SocketAddr::from(([127, 0, 0, 1], ports[1]));
    let dir = std::env::temp_dir().join(format!("kvstore-mp-intruder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let wrong_secret = dir.join("wrong.secret");
    common::write_secret_file(&wrong_secret, &"ab".repeat(32));
    let log = dir.join("stderr.log");
    let mut intruder = std::process::Command::new(env!("CARGO_BIN_EXE_kvstore"))
        .args(["node", "--peer", &intruder_peer.to_string(), "--client"])
        .arg(intruder_client.to_string())
        .args(["--data-dir", &dir.join("data").display().to_string()])
        .args(["--join", &cluster.peers[0].to_string(), "--partitions", "1"])
        .args(["--replication", &NODES.to_string(), "--cluster-secret-file"])
        .arg(&wrong_secret)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn the intruder");

    cluster.start(0);
    thread::sleep(Duration::from_millis(1500)); // the intruder retries meanwhile
    cluster.start(1);
    cluster.start(2);
    cluster.wait_led(Duration::from_secs(60));

    let status = cluster.status(Duration::from_secs(2));
    for group in status.groups() {
        let members: Vec<&str> = group.members.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(members.len(), NODES, "group {}: {members:?}", group.partition);
        for m in &members {
            assert!(cluster.peers.iter().any(|p| p.to_string() == *m), "{m} is no member");
        }
    }
    let mut client = RespClient::connect(cluster.clients[1], Duration::from_secs(10)).unwrap();
    client.set(b"k", b"v").expect("the cluster serves");
    assert_eq!(client.get(b"k").unwrap(), Some(b"v".to_vec()));

    // The intruder never got a table: it has no group and no cluster id.
    let seen = kvstore_app::tools::status::collect(&[intruder_client], Duration::from_secs(2));
    assert_eq!(seen.reachable().count(), 1, "the intruder answers INFO:\n{seen}");
    for info in seen.reachable() {
        assert!(info.groups.is_empty(), "the intruder joined a group: {info:?}");
        assert_eq!(info.cluster_id, 0, "the intruder learnt a cluster id");
    }
    let _ = intruder.kill();
    let _ = intruder.wait();
    let stderr = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        stderr.contains("authentication failed"),
        "the intruder's log should show the refusal:\n{stderr}"
    );
}

/// Issue 13: `kvstore node` with no peer authentication refuses to start, naming the options.
#[test]
fn a_node_without_peer_authentication_refuses_to_start() {
    let dir = std::env::temp_dir().join(format!("kvstore-mp-noauth-{}", std::process::id()));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kvstore"))
        .args(["node", "--peer", "127.0.0.1:1", "--client", "127.0.0.1:2", "--expect", "1"])
        .args(["--data-dir", &dir.display().to_string()])
        .env_remove(kvstore_app::peer_auth::SECRET_ENV)
        .output()
        .expect("run kvstore node");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started without authentication: {stderr}");
    for option in ["--peer-tls-cert", "--cluster-secret-file", "--insecure"] {
        assert!(stderr.contains(option), "the error should name {option}: {stderr}");
    }
    assert!(!dir.exists(), "nothing may be created before the refusal");
}

/// A certificate authority minted for a test, writing PEM files under a directory.
struct TestCa {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        params.distinguished_name.push(DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa { ca: rcgen::CertifiedIssuer::self_signed(params, key).unwrap() }
    }

    /// Writes a certificate for the node at `peer` of cluster `kvstore` (its identity URI),
    /// its key (mode 600) and `trusted`'s CA certificate under `dir`; returns the options.
    fn node_files(&self, trusted: &TestCa, dir: &std::path::Path, peer: SocketAddr) -> Vec<String> {
        use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, SanType};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let uri = kompics_net::tls::identity_uri("kvstore", kompics_net::NodeAddr(peer));
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let stem = dir.join(format!("peer-{}", peer.port()));
        let (cert_file, key_file, ca_file) =
            (stem.with_extension("pem"), stem.with_extension("key"), stem.with_extension("ca"));
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&cert_file, cert.pem()).unwrap();
        common::write_secret_file(&key_file, key.serialize_pem().trim());
        std::fs::write(&ca_file, trusted.ca.pem()).unwrap();
        let path = |p: &std::path::Path| p.display().to_string();
        vec![
            "--peer-tls-cert".into(),
            path(&cert_file),
            "--peer-tls-key".into(),
            path(&key_file),
            "--peer-tls-ca".into(),
            path(&ca_file),
        ]
    }
}

/// Issue 13 with certificates: a cluster whose nodes hold certificates from its CA forms and
/// serves; a node whose certificate comes from another CA (though it trusts the cluster's CA
/// and knows every address) never gets into any group.
#[test]
fn a_mutual_tls_cluster_serves_and_a_node_with_a_foreign_certificate_stays_out() {
    let mut cluster = ProcessCluster::new("kvstore-mp-mtls", 0, NODES, 1, NODES);
    let (ca, rogue_ca) = (TestCa::new("cluster CA"), TestCa::new("rogue CA"));
    let dir = cluster.dir().join("pki");
    for i in 0..NODES {
        let args = ca.node_files(&ca, &dir, cluster.peers[i]);
        cluster.set_peer_auth(i, args);
    }
    // The rogue trusts the cluster's CA and knows every address, but its own certificate
    // comes from another CA. It dials the bootstrap node before the members start.
    let ports = common::free_ports(2);
    let rogue_peer = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let rogue_client = SocketAddr::from(([127, 0, 0, 1], ports[1]));
    let mut rogue = std::process::Command::new(env!("CARGO_BIN_EXE_kvstore"))
        .args(["node", "--peer", &rogue_peer.to_string(), "--client"])
        .arg(rogue_client.to_string())
        .args(["--data-dir", &dir.join("rogue-data").display().to_string()])
        .args(["--join", &cluster.peers[0].to_string(), "--partitions", "1"])
        .args(["--replication", &NODES.to_string()])
        .args(rogue_ca.node_files(&ca, &dir, rogue_peer))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the rogue");
    cluster.start(0);
    thread::sleep(Duration::from_millis(1000));
    cluster.start(1);
    cluster.start(2);
    cluster.wait_led(Duration::from_secs(60));
    for group in cluster.status(Duration::from_secs(2)).groups() {
        assert_eq!(group.members.len(), NODES);
        for (m, _) in &group.members {
            assert!(cluster.peers.iter().any(|p| p.to_string() == *m), "{m} is no member");
        }
    }
    let mut client = RespClient::connect(cluster.clients[2], Duration::from_secs(10)).unwrap();
    client.set(b"k", b"v").expect("the cluster serves");
    assert_eq!(client.get(b"k").unwrap(), Some(b"v".to_vec()));
    let seen = kvstore_app::tools::status::collect(&[rogue_client], Duration::from_secs(2));
    assert_eq!(seen.reachable().count(), 1, "the rogue answers INFO:\n{seen}");
    for info in seen.reachable() {
        assert!(info.groups.is_empty() && info.cluster_id == 0, "the rogue joined: {info:?}");
    }
    let _ = rogue.kill();
    let _ = rogue.wait();
}
