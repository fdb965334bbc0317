//! Large values under faults, with real processes (issue 12): three `kvstore node` processes on
//! loopback (fsync on, 3 partitions, replication 3), several clients pipelining `SET`s of
//! 1 MiB values to every node, while nodes (a partition leader at least once) are killed with
//! SIGKILL and restarted on the same data directory. Afterwards:
//!
//! - every partition has a leader within [`LED_WITHIN`] of the end of the faults, and every
//!   node serves every partition within [`SERVE_WITHIN`];
//! - for every key, `GET` from **every** node returns a value that can be the key's last write:
//!   each key has a single writer client, so its writes are totally ordered by the client, and
//!   the admissible values are the last acknowledged one (`+OK`), or one issued after it whose
//!   outcome is unknown (`-OUTCOME_UNKNOWN`, or the connection broke before the reply). One more
//!   case is linearizable and admitted (and counted): a write left without an answer on an
//!   *earlier connection* (abandoned when it broke) may take effect after a later write acknowledged
//!   on a new connection, since nothing orders the two. Never a value that was not written, never
//!   a write refused with `-TRYAGAIN` (it did not happen), never an older acknowledged value, never
//!   an unanswered write that an acknowledged one followed on the same connection (one
//!   connection's operations take effect in request order). Values are checked byte for byte:
//!   the first 16 bytes name the client and sequence number, the rest is filler derived from both.
//! - every node's peak resident set (`VmHWM`, of every incarnation: read just before each kill
//!   and at the end) stays below the budget of [`rss_budget`], whose formula is documented there.
//!
//! `KV_MP_SECONDS` sets how long the faulty phase lasts (default 12 s; one kill per 4 s, at
//! least 2); `KV_MP_SEED` the seed of the fault schedule, the clients and the filler.
//!
//! The `kvstore` binary is the one cargo built for this test's profile (debug under
//! `cargo test`, which this workspace builds optimized); the sizes are the full ones (1 MiB
//! values, 2 clients per node, batches of 4), about 1-1.5 GiB written in the default 12 s on two
//! cores, and the default run takes 20-30 s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kvstore_app::info::Role;
use kvstore_app::partition::partition_of;
use kvstore_app::resp::RespValue;
use kvstore_app::tools::client::{is_outcome_unknown_text, is_tryagain_text, RespClient};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

mod common;
use common::ProcessCluster;

const NODES: usize = 3;
const PARTITIONS: u32 = 3;
const REPLICATION: usize = 3;
const CLIENTS_PER_NODE: usize = 2;
const CLIENTS: usize = NODES * CLIENTS_PER_NODE;
/// Keys per client; each key is written by its client only.
const KEYS_PER_CLIENT: usize = 8;
/// The largest value the store accepts (`CommandLimits::value_bytes_max`).
const VALUE_BYTES: usize = 1 << 20;
/// `SET`s per pipelined batch.
const BATCH: usize = 4;
/// The value's header: `c<client:2>s<seq:12>`.
const HEADER_BYTES: usize = 16;
/// How soon after the faults end every partition must have a leader.
const LED_WITHIN: Duration = Duration::from_secs(10);
/// How soon after the faults end every node must serve every partition (a node restarted last
/// replays its log, up to ~256 MiB per group, and catches up on what it missed).
const SERVE_WITHIN: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;

/// A process' resident set figures from `/proc/<pid>/status`, in bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Rss {
    /// Peak (`VmHWM`).
    peak: u64,
    /// Current (`VmRSS`).
    current: u64,
}

fn read_rss(pid: u32) -> Option<Rss> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    };
    Some(Rss { peak: field("VmHWM:")?, current: field("VmRSS:")? })
}

/// The nodes, and the RSS of each incarnation of each, read just before it was killed or at the
/// end.
struct Cluster {
    nodes: ProcessCluster,
    rss: Vec<Vec<Rss>>,
    /// Per node, the bytes of log files each incarnation found on disk when it started (0 for
    /// the first): what it replays, and holds in memory until delivered again.
    recovered: Vec<Vec<u64>>,
}

impl Cluster {
    /// Records the incarnation's RSS, then SIGKILLs it.
    fn kill(&mut self, i: usize) {
        if let Some(rss) = self.nodes.pid(i).and_then(read_rss) {
            self.rss[i].push(rss);
        }
        self.nodes.kill(i);
    }

    /// Restarts node `i`, noting the log it will recover.
    fn restart(&mut self, i: usize) {
        self.recovered[i].push(log_bytes(&self.nodes.data_dir(i)));
        self.nodes.start(i);
    }

    /// Records the RSS of every live incarnation (at the end).
    fn record_rss(&mut self) {
        for i in 0..NODES {
            if let Some(rss) = self.nodes.pid(i).and_then(read_rss) {
                self.rss[i].push(rss);
            }
        }
    }

    /// Whether every node answers `INFO` with every partition group led by a leader its
    /// members agree on, with this node a leader or follower in it.
    fn all_serving(&self) -> Result<(), String> {
        let s = self.nodes.status(Duration::from_millis(500));
        let groups = s.groups();
        let ok = s.nodes.iter().all(|n| n.info.is_ok())
            && groups.len() == PARTITIONS as usize
            && groups.iter().all(|g| g.leader.is_some() && g.notes.is_empty())
            && s.reachable().all(|n| {
                n.groups.len() == PARTITIONS as usize
                    && n.groups.iter().all(|g| {
                        matches!(g.role, Role::Leader | Role::Follower) && g.leader.is_some()
                    })
            });
        if ok {
            Ok(())
        } else {
            Err(s.to_string())
        }
    }

    fn wait_serving(&self, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            match self.all_serving() {
                Ok(()) => return start.elapsed(),
                Err(s) => assert!(
                    start.elapsed() < timeout,
                    "not every partition led and every node serving after {timeout:?}:\n{s}"
                ),
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn key_name(client: usize, k: usize) -> Vec<u8> {
    format!("large-c{client}-k{k}").into_bytes()
}

/// The filler the values' bodies are cut from: 2 MiB from the seed.
fn filler(seed: u64) -> Arc<Vec<u8>> {
    let mut bytes = vec![0u8; 2 * VALUE_BYTES];
    SmallRng::seed_from_u64(seed ^ 0xf111).fill_bytes(&mut bytes);
    Arc::new(bytes)
}

/// Writes the value of `client`'s write number `seq` into `out` (`VALUE_BYTES` long).
fn make_value(fill: &[u8], client: usize, seq: u64, out: &mut [u8]) {
    let header = format!("c{client:02}s{seq:012}");
    assert_eq!(header.len(), HEADER_BYTES);
    out[..HEADER_BYTES].copy_from_slice(header.as_bytes());
    let offset = ((client as u64 * 7919 + seq * 104_729) % VALUE_BYTES as u64) as usize;
    out[HEADER_BYTES..].copy_from_slice(&fill[offset..offset + VALUE_BYTES - HEADER_BYTES]);
}

/// The (client, seq) a value's header names, if it parses.
fn parse_header(value: &[u8]) -> Option<(usize, u64)> {
    let header = std::str::from_utf8(value.get(..HEADER_BYTES)?).ok()?;
    let rest = header.strip_prefix('c')?;
    let (client, seq) = rest.split_once('s')?;
    Some((client.parse().ok()?, seq.parse().ok()?))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// `+OK`.
    Acked,
    /// `-TRYAGAIN`: did not happen.
    NotDone,
    /// `-OUTCOME_UNKNOWN`, or no reply (the connection broke): may have happened.
    Unknown,
}

#[derive(Clone, Debug)]
struct Write {
    seq: u64,
    key: usize,
    /// The connection (numbered from 1 per client) it was sent on.
    conn: u64,
    outcome: Outcome,
}

#[derive(Default)]
struct ClientLog {
    /// In issue order (also the order of the acknowledgements).
    writes: Vec<Write>,
    connections: u64,
    /// Replies that are none of `+OK`, `-TRYAGAIN`, `-OUTCOME_UNKNOWN`.
    unexpected: Vec<String>,
}

/// One client: batches of `BATCH` pipelined `SET`s of its own keys, at its home node first.
fn client_loop(
    id: usize,
    seed: u64,
    endpoints: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    fill: Arc<Vec<u8>>,
) -> ClientLog {
    let mut rng = SmallRng::seed_from_u64(seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9));
    let home = id % endpoints.len();
    let keys: Vec<Vec<u8>> = (0..KEYS_PER_CLIENT).map(|k| key_name(id, k)).collect();
    let mut log = ClientLog::default();
    let mut conn: Option<RespClient> = None;
    let mut attempt = 0;
    let mut seq = 0u64;
    let mut value = vec![0u8; VALUE_BYTES];
    while !stop.load(Ordering::Relaxed) {
        if conn.as_ref().is_none_or(|c| c.is_broken()) {
            // Home first, then the others in turn while it is down.
            let at = endpoints[(home + attempt) % endpoints.len()];
            attempt += 1;
            match RespClient::connect(at, Duration::from_secs(2)) {
                Ok(mut c) => {
                    // Long: a reply waits at most the leader wait (2 s) plus the work queued
                    // ahead of it; a timeout would abandon requests that may still happen.
                    c.set_timeouts(Some(Duration::from_secs(30)), Some(Duration::from_secs(30)))
                        .expect("timeouts");
                    conn = Some(c);
                    log.connections += 1;
                    attempt = 0;
                }
                Err(_) => {
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        let c = conn.as_mut().unwrap();
        let first = log.writes.len();
        for _ in 0..BATCH {
            let key = rng.random_range(0..KEYS_PER_CLIENT);
            seq += 1;
            make_value(&fill, id, seq, &mut value);
            c.send(&[b"SET", &keys[key], &value]).expect("buffering a request");
            log.writes.push(Write { seq, key, conn: log.connections, outcome: Outcome::Unknown });
        }
        for w in &mut log.writes[first..] {
            w.outcome = match c.recv() {
                Ok(RespValue::SimpleString(s)) if s == "OK" => Outcome::Acked,
                Ok(RespValue::Error(text)) if is_tryagain_text(&text) => Outcome::NotDone,
                Ok(RespValue::Error(text)) if is_outcome_unknown_text(&text) => Outcome::Unknown,
                Ok(other) => {
                    log.unexpected.push(format!("{other:?}"));
                    Outcome::Unknown
                }
                Err(_) => Outcome::Unknown, // broken: reconnect after the batch
            };
        }
    }
    log
}

/// The peak RSS budget of one node, in bytes, and how it is made up. Every node hosts every
/// group (R = nodes), so per node:
///
/// - `base`: 128 MiB — code, thread stacks, runtime, allocator (an idle node is ~10-20 MiB);
/// - `3 × live`: `live` = keys × 1 MiB, the data every node holds; counted three times: the
///   store, a snapshot's frozen view keeping overwritten values alive while it is serialized,
///   and the serialized snapshot (`Vec<u8>`) itself;
/// - `2 × log`: the in-memory Zab log holds every payload since the group's last snapshot (it
///   is asked for at ~`snapshot_bytes_trigger` = 256 MiB of payloads, and the log trimmed once
///   that snapshot is durable), so per group at most min(256 MiB + a batch, the bytes written
///   to that partition during the run); doubled because the trigger counts *delivered*
///   payloads only: a restarted learner holds its recovered log and, until it has delivered
///   them, the entries it missed (what was written while it was down, synced in windows), and
///   every node holds copies in flight (WAL write buffer, proposal and sync frames queued to
///   peers, the replica's decoded copy before it replaces the stored value);
/// - recovery: a restarted node reads each group's WAL segments whole (64 MiB,
///   `segment_bytes`) while decoding them, the 3 groups at once;
/// - sync windows: 16 MiB (`sync_window_bytes`) per learner, 2 learners per group, 3 groups;
/// - client buffers: every client's pipeline (`BATCH` × 1 MiB) three times (RESP read buffer,
///   the parsed request, the forwarded message), at whichever node it ended up on.
/// - per incarnation, added by the caller: the log files it recovered, which it holds until
///   it has delivered them again. A node killed before its snapshot was durable recovers
///   everything since the previous one, which may be more than the snapshot trigger.
fn rss_budget(live: u64, sent_per_partition: &[u64]) -> (u64, String) {
    let base = 128 * MIB;
    let trigger = 256 * MIB + BATCH as u64 * MIB;
    let log: u64 = sent_per_partition.iter().map(|&sent| sent.min(trigger)).sum();
    let recovery = PARTITIONS as u64 * 64 * MIB;
    let windows = PARTITIONS as u64 * (REPLICATION as u64 - 1) * 16 * MIB;
    let clients = CLIENTS as u64 * BATCH as u64 * MIB * 3;
    let budget = base + 3 * live + 2 * log + recovery + windows + clients;
    let text = format!(
        "budget {} MiB = base {} + 3 × live {} + 2 × log {} + recovery {} + sync windows {} \
         + client buffers {}",
        budget / MIB,
        base / MIB,
        live / MIB,
        log / MIB,
        recovery / MIB,
        windows / MIB,
        clients / MIB
    );
    (budget, text)
}

fn run(seed: u64, seconds: u64) {
    let test_start = Instant::now();
    let nodes = ProcessCluster::new("kvstore-mp-large", seed, NODES, PARTITIONS, REPLICATION);
    let mut cluster =
        Cluster { nodes, rss: vec![Vec::new(); NODES], recovered: vec![vec![0]; NODES] };
    cluster.nodes.start_all();
    cluster.wait_serving(Duration::from_secs(60));

    let fill = filler(seed);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (endpoints, stop, fill) =
                (cluster.nodes.clients.clone(), stop.clone(), fill.clone());
            thread::spawn(move || client_loop(id, seed, endpoints, stop, fill))
        })
        .collect();

    // Faults: `kills` cycles over `seconds`; in each, one node is killed at a random point of
    // the cycle's first half and restarted 0.3-1.5 s later. The first victim leads a partition.
    let mut rng = SmallRng::seed_from_u64(seed);
    let kills = (seconds / 4).max(2);
    let cycle = Duration::from_secs(seconds) / kills as u32;
    let mut leader_kills = 0;
    let faults_start = Instant::now();
    for k in 0..kills {
        let cycle_start = faults_start + cycle * k as u32;
        let at = cycle_start + cycle.mul_f64(rng.random_range(0.2..0.5));
        thread::sleep(at.saturating_duration_since(Instant::now()));
        let leader = cluster.nodes.some_leader();
        let victim = match leader {
            Some(l) if leader_kills == 0 || rng.random_bool(0.5) => l,
            _ => rng.random_range(0..NODES),
        };
        if leader == Some(victim) {
            leader_kills += 1;
        }
        eprintln!(
            "seed {seed}: kill {} of node {victim}{} at {:.1?}",
            k + 1,
            if leader == Some(victim) { " (a leader)" } else { "" },
            faults_start.elapsed()
        );
        cluster.kill(victim);
        thread::sleep(Duration::from_millis(rng.random_range(300..1500)));
        cluster.restart(victim);
    }
    thread::sleep(
        (faults_start + Duration::from_secs(seconds)).saturating_duration_since(Instant::now()),
    );
    // Calm: every partition led, then every node serving, clients still writing.
    let led_after = cluster.nodes.wait_led(LED_WITHIN);
    let served_after = led_after + cluster.wait_serving(SERVE_WITHIN);
    eprintln!(
        "seed {seed}: after the faults, every partition led in {led_after:.1?}, every node \
         serving every partition in {served_after:.1?}"
    );
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<ClientLog> =
        workers.into_iter().map(|w| w.join().expect("client thread")).collect();
    // Let writes still waiting in a node (for a leader, at most 2 s) settle before reading.
    thread::sleep(Duration::from_secs(3));

    // Every key, from every node.
    let mut reads: Vec<Vec<Vec<Option<Vec<u8>>>>> = Vec::new(); // [node][client][key]
    for (n, &endpoint) in cluster.nodes.clients.iter().enumerate() {
        let mut c = RespClient::connect(endpoint, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("seed {seed}: connect to node {n} for the reads: {e}"));
        let mut per_client = Vec::new();
        for client in 0..CLIENTS {
            let mut per_key = Vec::new();
            for k in 0..KEYS_PER_CLIENT {
                let key = key_name(client, k);
                let value = c.get(&key).unwrap_or_else(|e| {
                    panic!("seed {seed}: GET {} at node {n}: {e}", String::from_utf8_lossy(&key))
                });
                per_key.push(value);
            }
            per_client.push(per_key);
        }
        reads.push(per_client);
    }
    cluster.record_rss();

    // Figures.
    let count = |o: Outcome| -> usize {
        logs.iter().map(|l| l.writes.iter().filter(|w| w.outcome == o).count()).sum()
    };
    let (acked, not_done, unknown) =
        (count(Outcome::Acked), count(Outcome::NotDone), count(Outcome::Unknown));
    let connections: u64 = logs.iter().map(|l| l.connections).sum();
    eprintln!(
        "seed {seed}: {kills} kills ({leader_kills} of a leader); {} SETs of 1 MiB: {acked} acknowledged, \
         {not_done} TRYAGAIN, {unknown} unknown; {connections} client connections",
        acked + not_done + unknown
    );

    // Checks.
    let mut errors: Vec<String> = Vec::new();
    for (client, log) in logs.iter().enumerate() {
        for u in &log.unexpected {
            errors.push(format!("client {client}: unexpected reply {u}"));
        }
    }
    let mut late_unknown = 0;
    for (client, log) in logs.iter().enumerate() {
        let by_seq: BTreeMap<u64, (usize, &Write)> =
            log.writes.iter().enumerate().map(|(i, w)| (w.seq, (i, w))).collect();
        for k in 0..KEYS_PER_CLIENT {
            let name = String::from_utf8_lossy(&key_name(client, k)).into_owned();
            let last_ack =
                log.writes.iter().rposition(|w| w.key == k && w.outcome == Outcome::Acked);
            let mut seen = Vec::new();
            for (n, node_reads) in reads.iter().enumerate() {
                let read = &node_reads[client][k];
                seen.push(read.as_deref().and_then(parse_header));
                let Some(value) = read else {
                    if let Some(i) = last_ack {
                        errors.push(format!(
                            "{name} at node {n}: missing, but seq {} was acknowledged",
                            log.writes[i].seq
                        ));
                    }
                    continue;
                };
                let Some((owner, seq)) = parse_header(value) else {
                    errors.push(format!(
                        "{name} at node {n}: a value never written ({} bytes, header {:?})",
                        value.len(),
                        String::from_utf8_lossy(&value[..value.len().min(HEADER_BYTES)])
                    ));
                    continue;
                };
                let mut expected = vec![0u8; VALUE_BYTES];
                make_value(&fill, owner, seq, &mut expected);
                if owner != client || *value != expected {
                    errors.push(format!(
                        "{name} at node {n}: value c{owner}s{seq} is not what was written \
                         ({} bytes; owner {owner}, expected {client})",
                        value.len()
                    ));
                    continue;
                }
                let Some(&(i, w)) = by_seq.get(&seq) else {
                    errors.push(format!("{name} at node {n}: seq {seq} was never sent"));
                    continue;
                };
                if w.key != k {
                    errors.push(format!("{name} at node {n}: seq {seq} was sent to key {}", w.key));
                    continue;
                }
                let verdict = match (w.outcome, last_ack) {
                    (Outcome::NotDone, _) => Err("refused with TRYAGAIN"),
                    (_, None) => Ok(()),
                    (_, Some(a)) if i == a => Ok(()),
                    (Outcome::Unknown, Some(a)) if i > a => Ok(()),
                    (Outcome::Acked, Some(_)) => Err("an older acknowledged value"),
                    (Outcome::Unknown, Some(a)) if log.writes[a].conn == w.conn => Err(
                        "an unanswered write that an acknowledged one followed on the same connection",
                    ),
                    (Outcome::Unknown, Some(_)) => {
                        late_unknown += 1;
                        Ok(())
                    }
                };
                if let Err(why) = verdict {
                    errors.push(format!(
                        "{name} at node {n}: seq {seq} ({:?}, conn {}) is {why}; the last acknowledged is {:?}",
                        w.outcome, w.conn, last_ack.map(|a| (log.writes[a].seq, log.writes[a].conn))
                    ));
                }
            }
            if seen.iter().any(|s| *s != seen[0]) {
                errors.push(format!("{name}: the nodes disagree: {seen:?}"));
            }
        }
    }
    if late_unknown > 0 {
        eprintln!("seed {seed}: {late_unknown} reads of an unanswered write from an abandoned connection (linearizable)");
    }

    // RSS.
    let live = (CLIENTS * KEYS_PER_CLIENT) as u64 * VALUE_BYTES as u64;
    let mut sent_per_partition = vec![0u64; PARTITIONS as usize];
    for (client, log) in logs.iter().enumerate() {
        for w in &log.writes {
            let p = partition_of(&key_name(client, w.key), PARTITIONS).0 as usize;
            sent_per_partition[p] += VALUE_BYTES as u64;
        }
    }
    let (budget, budget_text) = rss_budget(live, &sent_per_partition);
    eprintln!(
        "seed {seed}: bytes sent per partition (MiB): {:?}; {budget_text}",
        sent_per_partition.iter().map(|b| b / MIB).collect::<Vec<_>>()
    );
    for (n, incarnations) in cluster.rss.iter().enumerate() {
        let shown: Vec<String> = incarnations
            .iter()
            .zip(&cluster.recovered[n])
            .map(|(r, rec)| {
                let (peak, now, rec) = (r.peak / MIB, r.current / MIB, rec / MIB);
                format!("peak {peak} MiB / now {now} MiB (recovered a {rec} MiB log)")
            })
            .collect();
        eprintln!("seed {seed}: node {n} RSS per incarnation: {}", shown.join(", "));
        for (r, &recovered) in incarnations.iter().zip(&cluster.recovered[n]) {
            if r.peak > budget + recovered {
                errors.push(format!(
                    "node {n}: peak RSS {} MiB exceeds the budget ({budget_text} + the log it \
                     recovered {} MiB)",
                    r.peak / MIB,
                    recovered / MIB
                ));
            }
        }
    }
    eprintln!("seed {seed}: the test took {:.1?}", test_start.elapsed());

    assert!(errors.is_empty(), "seed {seed}: {} problems:\n{}", errors.len(), errors.join("\n"));
    assert!(kills >= 2 && leader_kills >= 1, "seed {seed}: too few kills");
    assert!(acked >= CLIENTS, "seed {seed}: only {acked} writes acknowledged");
}

#[test]
fn large_pipelined_sets_survive_kill9_and_restart() {
    let seed = std::env::var("KV_MP_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let seconds = std::env::var("KV_MP_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    run(seed, seconds);
}

/// The bytes of the Zab log segment files below `dir` (every partition, every generation).
fn log_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += log_bytes(&path);
        } else if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log.")) {
            total += entry.metadata().map_or(0, |m| m.len());
        }
    }
    total
}
