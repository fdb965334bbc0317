//! Group commit in the Zab component: durability before every acknowledgement, and few syncs
//! for many proposals.
//!
//! Each node's storage is wrapped in a [`Checked`] storage that keeps a ledger of what has been
//! written and what a sync has made durable; a [`Tap`] between the Zab component and the
//! network checks every message the component sends against that ledger (an ACK only for
//! durable entries, an ACKEPOCH or NEWLEADER ack only for a durable epoch), and the application
//! checks every delivery and commit notice. Skipping a sync anywhere makes these tests fail.
//!
//! They run in the deterministic simulator (the storage called inline, with and without a
//! modelled sync delay, crashes included) and on the threaded runtime over TCP loopback (the
//! storage on its log thread, with a slow sync). The burst tests bound the number of syncs a
//! burst of proposals costs (counts, not timings).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kompics_core::*;
use kompics_net::sim::{SimNet, SimNetConfig, SimNetwork};
use kompics_net::{NetEvent, NetMessage, Network, NodeAddr, TcpConfig, TcpNetwork};
use parking_lot::Mutex;
use zab_components::component::*;
use zab_components::failure_detector::*;
use zab_components::protocol::{Entry, Epoch, EpochKind, Message, Recovered, Snapshot, Zxid};
use zab_components::storage::{SimDisk, StorageError};
use zab_components::testing::{Hooked, StorageHooks};

/// What one node has written and what is durable, as its storage was told.
#[derive(Debug, Default)]
struct Ledger {
    written_last: Zxid,
    written_accepted: Epoch,
    written_current: Epoch,
    /// Every entry of the current history up to this zxid is durable.
    durable_last: Zxid,
    durable_accepted: Epoch,
    durable_current: Epoch,
    syncs: u64,
}

/// Violations found by any checker of a test, with the node they concern.
type Violations = Arc<Mutex<Vec<String>>>;

/// Storage hooks that keep a [`Ledger`] of what the storage was told.
struct Checked {
    ledger: Arc<Mutex<Ledger>>,
    /// Whether the component should run it on a log thread.
    log_thread: bool,
    /// How long a sync takes (a slow device; only for the threaded runtime).
    sync_time: Duration,
}

impl StorageHooks for Checked {
    fn recovered(&mut self, r: &Recovered) {
        let mut l = self.ledger.lock();
        let last = r.log.last().map(|e| e.zxid);
        let last = last.or(r.snapshot.as_ref().map(|s| s.zxid)).unwrap_or(Zxid::ZERO);
        (l.written_last, l.durable_last) = (last, last);
        (l.written_accepted, l.durable_accepted) = (r.accepted_epoch, r.accepted_epoch);
        (l.written_current, l.durable_current) = (r.current_epoch, r.current_epoch);
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        if let Some(last) = entries.last() {
            self.ledger.lock().written_last = last.zxid;
        }
        Ok(())
    }

    fn truncate(&mut self, to: Zxid) -> Result<(), StorageError> {
        let mut l = self.ledger.lock();
        l.written_last = l.written_last.min(to);
        l.durable_last = l.durable_last.min(to);
        Ok(())
    }

    fn write_epoch(&mut self, kind: EpochKind, epoch: Epoch) -> Result<(), StorageError> {
        let mut l = self.ledger.lock();
        match kind {
            EpochKind::Accepted => l.written_accepted = epoch,
            EpochKind::Current => l.written_current = epoch,
        }
        Ok(())
    }

    fn install(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        let mut l = self.ledger.lock();
        let base = snapshot.map_or(Zxid::ZERO, |s| s.zxid);
        l.written_last = entries.last().map_or(base, |e| e.zxid);
        // A new history: none of it is durable before the next sync.
        l.durable_last = Zxid::ZERO;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if !self.sync_time.is_zero() {
            std::thread::sleep(self.sync_time);
        }
        Ok(())
    }

    fn synced(&mut self) {
        let mut l = self.ledger.lock();
        l.durable_last = l.written_last;
        l.durable_accepted = l.written_accepted;
        l.durable_current = l.written_current;
        l.syncs += 1;
    }

    fn log_thread(&self) -> Option<bool> {
        Some(self.log_thread)
    }
}

/// Sits between a Zab component and its network and checks what the component sends.
struct Tap {
    up: ProvidedPort<Network>,
    down: RequiredPort<Network>,
    me: NodeAddr,
    ledger: Arc<Mutex<Ledger>>,
    violations: Violations,
}

impl ComponentDefinition for Tap {}

impl Provide<Network> for Tap {
    fn handle(&mut self, _ctx: &mut Context<Self>, m: NetMessage) {
        if let Ok(msg) = m.decode::<Message>() {
            let l = self.ledger.lock();
            let bad = match &msg {
                Message::Ack { zxid } => *zxid > l.durable_last,
                Message::AckEpoch { epoch, .. } => *epoch > l.durable_accepted,
                Message::AckNewLeader { epoch } => *epoch > l.durable_current,
                _ => false,
            };
            if bad {
                self.violations
                    .lock()
                    .push(format!("{}: sent {msg:?} before it was durable: {l:?}", self.me));
            }
        }
        self.down.trigger(m);
    }
}

impl Require<Network> for Tap {
    fn handle(&mut self, _ctx: &mut Context<Self>, event: NetEvent) {
        self.up.trigger(event);
    }
}

/// The application: counts commits of its own proposals and checks every delivery and commit
/// notice against the ledger. Told a number, it proposes that many at once.
struct App {
    ab: RequiredPort<AtomicBroadcast>,
    me: NodeAddr,
    ledger: Arc<Mutex<Ledger>>,
    violations: Violations,
    status: Option<ZabStatus>,
    next_tag: u64,
    committed: BTreeMap<u64, Zxid>,
    delivered: Vec<Zxid>,
}

impl App {
    fn check(&self, what: &str, zxid: Zxid) {
        let l = self.ledger.lock();
        if zxid > l.durable_last {
            self.violations
                .lock()
                .push(format!("{}: {what} {zxid:?} before it was durable: {l:?}", self.me));
        }
    }
}

impl ComponentDefinition for App {}

impl Require<AtomicBroadcast> for App {
    fn handle(&mut self, _ctx: &mut Context<Self>, event: AbEvent) {
        match event {
            AbEvent::Deliver { zxid, .. } => {
                self.check("delivered", zxid);
                self.delivered.push(zxid);
            }
            AbEvent::Committed { tag, zxid } => {
                self.check("committed", zxid);
                self.committed.insert(tag, zxid);
            }
            AbEvent::Status(s) => self.status = Some(s),
            AbEvent::TakeSnapshot { zxid } => {
                self.ab.trigger(AbRequest::SnapshotTaken { zxid, state: Vec::new() })
            }
            AbEvent::InstallState { zxid, .. } => {
                self.delivered.retain(|z| *z <= zxid);
            }
            AbEvent::Assigned { .. } | AbEvent::Failed { .. } | AbEvent::ReadReady { .. } => {}
        }
    }
}

impl Receive<u64> for App {
    fn receive(&mut self, _ctx: &mut Context<Self>, n: u64) {
        for _ in 0..n {
            self.next_tag += 1;
            self.ab.trigger(AbRequest::Propose { tag: self.next_tag, payload: vec![7; 100] });
        }
    }
}

fn new_app(s: &mut Setup<App>, me: NodeAddr, ledger: &Arc<Mutex<Ledger>>, v: &Violations) -> App {
    let _ = s.mailbox::<u64>();
    App {
        ab: s.required(),
        me,
        ledger: ledger.clone(),
        violations: v.clone(),
        status: None,
        next_tag: 0,
        committed: BTreeMap::new(),
        delivered: Vec::new(),
    }
}

/// One node's components.
struct Parts {
    net: Option<Component<SimNetwork>>,
    tap: Component<Tap>,
    fd: Component<FailureDetector>,
    zab: Component<ZabComponent>,
    app: Component<App>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Parts {
    fn kill(&self) {
        self.app.kill();
        self.zab.kill();
        self.fd.kill();
        self.tap.kill();
        if let Some(net) = &self.net {
            net.kill();
        }
    }

    fn status(&self) -> Option<ZabStatus> {
        self.app.on_definition(|a| a.status).flatten()
    }

    fn committed(&self) -> usize {
        self.app.on_definition(|a| a.committed.len()).unwrap_or(0)
    }

    fn syncs(&self) -> u64 {
        self.ledger.lock().syncs
    }
}

/// Builds one node on `network` (the tap goes between it and the Zab component).
#[allow(clippy::too_many_arguments)]
fn node(
    system: &System,
    network: &ProvidedRef<Network>,
    config: ZabConfig,
    disk: SimDisk,
    log_thread: bool,
    sync_time: Duration,
    violations: &Violations,
) -> Parts {
    let me = config.me;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (l, v) = (ledger.clone(), violations.clone());
    let tap = system.create(move |s| Tap {
        up: s.provided(),
        down: s.required(),
        me,
        ledger: l.clone(),
        violations: v.clone(),
    });
    connect(network, &tap.required::<Network>());
    let fd = FailureDetector::create(system, network, me, FdConfig::default());
    let l = ledger.clone();
    let zab = ZabComponent::create(system, &tap.provided::<Network>(), &fd.provided(), config, {
        move || {
            let hooks = Checked { ledger: l.clone(), log_thread, sync_time };
            Box::new(Hooked { inner: Box::new(disk.clone()), hooks })
        }
    });
    let (l, v) = (ledger.clone(), violations.clone());
    let app = system.create(move |s| new_app(s, me, &l, &v));
    connect(&zab.provided::<AtomicBroadcast>(), &app.required::<AtomicBroadcast>());
    tap.start();
    fd.start();
    app.start();
    zab.start();
    Parts { net: None, tap, fd, zab, app, ledger }
}

fn leader_of(parts: &[Option<Parts>]) -> Option<usize> {
    let leaders: Vec<usize> = (0..parts.len())
        .filter(|i| {
            parts[*i]
                .as_ref()
                .is_some_and(|p| matches!(p.status(), Some(ZabStatus::Leading { .. })))
        })
        .collect();
    let followers = parts
        .iter()
        .flatten()
        .filter(|p| matches!(p.status(), Some(ZabStatus::Following { .. })))
        .count();
    (leaders.len() == 1 && followers + 1 == parts.iter().flatten().count()).then(|| leaders[0])
}

/// A simulated group of three with checked storages.
struct SimGroup {
    sim: Simulation,
    net: SimNet,
    addrs: Vec<NodeAddr>,
    disks: Vec<SimDisk>,
    parts: Vec<Option<Parts>>,
    sync_delay: (Duration, Duration),
    violations: Violations,
}

impl SimGroup {
    fn new(seed: u64, sync_delay: (Duration, Duration)) -> SimGroup {
        let sim = Simulation::new(seed);
        let net = SimNet::new(&sim.system(), SimNetConfig::default());
        let addrs: Vec<NodeAddr> =
            (0..3).map(|i| NodeAddr(([10, 0, 0, i + 1], 5000).into())).collect();
        let mut g = SimGroup {
            sim,
            net,
            disks: addrs.iter().map(|_| SimDisk::new()).collect(),
            addrs,
            parts: vec![None, None, None],
            sync_delay,
            violations: Violations::default(),
        };
        for i in 0..3 {
            g.start(i);
        }
        g
    }

    fn start(&mut self, i: usize) {
        let mut config = ZabConfig::new(0, self.addrs[i], &self.addrs);
        config.sync_delay = self.sync_delay;
        config.protocol.snapshot_entries_trigger = 40;
        let net = self.net.add_node(self.addrs[i]);
        let system = self.sim.system();
        let disk = self.disks[i].clone();
        let mut p = node(
            &system,
            &net.provided::<Network>(),
            config,
            disk,
            false,
            Duration::ZERO,
            &self.violations,
        );
        p.net = Some(net);
        self.parts[i] = Some(p);
    }

    fn crash(&mut self, i: usize, keep: usize) {
        if let Some(p) = self.parts[i].take() {
            self.net.crash(self.addrs[i]);
            p.kill();
            self.disks[i].crash(keep);
        }
    }

    fn await_leader(&self) -> usize {
        for _ in 0..500 {
            self.sim.run_for(Duration::from_millis(20));
            if let Some(l) = leader_of(&self.parts) {
                return l;
            }
        }
        panic!("seed {}: no leader", self.sim.seed());
    }

    fn propose(&self, i: usize, n: u64) {
        if let Some(p) = &self.parts[i] {
            p.app.mailbox::<u64>().tell(n);
        }
    }

    fn committed(&self, i: usize) -> usize {
        self.parts[i].as_ref().map_or(0, |p| p.committed())
    }

    fn syncs(&self) -> u64 {
        self.parts.iter().flatten().map(|p| p.syncs()).sum()
    }

    fn assert_no_violation(&self) {
        let v = self.violations.lock();
        assert!(v.is_empty(), "seed {}: {} violations, first: {}", self.sim.seed(), v.len(), v[0]);
    }
}

/// Elections, broadcast, crashes that lose unsynced writes, restarts and state transfers in
/// the simulator: nothing is acknowledged, delivered or reported committed before it is durable.
#[test]
fn no_acknowledgement_precedes_durability_in_the_simulator() {
    let delays = [(Duration::ZERO, Duration::ZERO), (Duration::ZERO, Duration::from_millis(4))];
    for seed in 0..12u64 {
        let delay = delays[(seed % 2) as usize];
        let mut g = SimGroup::new(seed, delay);
        let leader = g.await_leader();
        g.propose(leader, 30);
        g.sim.run_for(Duration::from_millis(300));
        assert_eq!(g.committed(leader), 30, "seed {seed}: the first burst commits");
        // A follower and then the leader crash, each losing some unsynced writes.
        let follower = (leader + 1) % 3;
        g.propose(leader, 20);
        g.sim.run_for(Duration::from_millis(seed % 5));
        g.crash(follower, (seed % 3) as usize);
        g.sim.run_for(Duration::from_millis(200));
        g.start(follower);
        let leader = g.await_leader();
        g.propose(leader, 50);
        g.sim.run_for(Duration::from_millis(seed % 7));
        g.crash(leader, (seed % 2) as usize);
        g.sim.run_for(Duration::from_millis(300));
        g.start(leader);
        let leader = g.await_leader();
        g.propose(leader, 60);
        g.sim.run_for(Duration::from_secs(2));
        g.assert_no_violation();
        let delivered: Vec<usize> = g
            .parts
            .iter()
            .flatten()
            .map(|p| p.app.on_definition(|a| a.delivered.len()).unwrap_or(0))
            .collect();
        assert!(delivered.iter().all(|d| *d > 0), "seed {seed}: deliveries {delivered:?}");
    }
}

/// With a modelled sync delay, a burst of proposals at the leader costs a few syncs per node,
/// not one per proposal (or per PROPOSAL message): one sync covers every write made meanwhile.
#[test]
fn a_burst_of_proposals_shares_syncs_in_the_simulator() {
    const N: u64 = 200;
    for seed in 0..4u64 {
        let g = SimGroup::new(seed, (Duration::from_millis(1), Duration::from_millis(3)));
        let leader = g.await_leader();
        g.sim.run_for(Duration::from_millis(100));
        let before = g.syncs();
        g.propose(leader, N);
        g.sim.run_for(Duration::from_secs(1));
        assert_eq!(g.committed(leader), N as usize, "seed {seed}: the burst commits");
        let syncs = g.syncs() - before;
        eprintln!("seed {seed}: {syncs} syncs (3 nodes) for a burst of {N}");
        assert!(syncs <= 3 * 4, "seed {seed}: {syncs} syncs (3 nodes) for a burst of {N}");
        g.assert_no_violation();
    }
}

/// The same trace twice for the same seed: the flush events keep simulations deterministic.
#[test]
fn the_simulation_stays_deterministic() {
    let run = |seed: u64| {
        let g = SimGroup::new(seed, (Duration::ZERO, Duration::ZERO));
        let leader = g.await_leader();
        g.propose(leader, 25);
        g.sim.run_for(Duration::from_millis(500));
        let logs: Vec<Vec<Zxid>> = g
            .parts
            .iter()
            .flatten()
            .map(|p| p.app.on_definition(|a| a.delivered.clone()).unwrap_or_default())
            .collect();
        (g.sim.now(), g.syncs(), logs)
    };
    for seed in [3u64, 11] {
        assert_eq!(run(seed), run(seed), "seed {seed}");
    }
}

/// A group on the threaded runtime over TCP loopback, each storage on its log thread with a
/// slow (1 ms) sync.
struct TcpGroup {
    runtime: Runtime,
    parts: Vec<Option<Parts>>,
    violations: Violations,
}

impl TcpGroup {
    fn new(sync_time: Duration) -> TcpGroup {
        let runtime = Runtime::new(RuntimeConfig::default());
        let system = runtime.system();
        let nets: Vec<_> = (0..3)
            .map(|_| {
                TcpNetwork::create(
                    &system,
                    TcpConfig::new("127.0.0.1:0".parse().unwrap(), tcp_security()),
                )
                .unwrap()
            })
            .collect();
        let addrs: Vec<NodeAddr> =
            nets.iter().map(|n| n.on_definition(|x| x.addr()).unwrap()).collect();
        let violations = Violations::default();
        let mut parts = Vec::new();
        for (net, &me) in nets.iter().zip(&addrs) {
            net.start();
            let config = ZabConfig::new(0, me, &addrs);
            let p = node(
                &system,
                &net.provided::<Network>(),
                config,
                SimDisk::new(),
                true,
                sync_time,
                &violations,
            );
            parts.push(Some(p));
        }
        TcpGroup { runtime, parts, violations }
    }

    fn await_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(l) = leader_of(&self.parts) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no leader within 30 s");
    }

    fn await_committed(&self, i: usize, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.parts[i].as_ref().is_some_and(|p| p.committed() >= n) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("{n} proposals not committed within 60 s");
    }

    fn syncs(&self) -> u64 {
        self.parts.iter().flatten().map(|p| p.syncs()).sum()
    }

    fn assert_no_violation(&self) {
        let v = self.violations.lock();
        assert!(v.is_empty(), "{} violations, first: {}", v.len(), v[0]);
    }
}

/// With the storage on a log thread, a burst of N proposals costs far fewer than N syncs per
/// node (the thread covers with one sync everything that arrived while it was busy), and no
/// acknowledgement, delivery or commit notice precedes its sync.
#[test]
fn a_burst_of_proposals_shares_syncs_on_the_log_thread() {
    const N: u64 = 400;
    let g = TcpGroup::new(Duration::from_millis(1));
    let leader = g.await_leader();
    let app = g.parts[leader].as_ref().map(|p| p.app.mailbox::<u64>()).unwrap();
    // Warm up (sessions, the first batch), then the measured burst.
    app.tell(10);
    g.await_committed(leader, 10);
    let before = g.syncs();
    app.tell(N);
    g.await_committed(leader, 10 + N as usize);
    let syncs = g.syncs() - before;
    eprintln!("{syncs} syncs (3 nodes) for a burst of {N} proposals");
    g.assert_no_violation();
    assert!(syncs <= N / 4, "{syncs} syncs (3 nodes) for a burst of {N} proposals");
    // Closed loop from followers too (forwarded proposals), still checked.
    for (i, p) in g.parts.iter().enumerate() {
        if i != leader {
            if let Some(p) = p {
                p.app.mailbox::<u64>().tell(50);
            }
        }
    }
    for i in 0..3 {
        if i != leader {
            g.await_committed(i, 50);
        }
    }
    g.assert_no_violation();
    for p in g.parts.iter().flatten() {
        p.kill();
    }
    g.runtime.shutdown();
}

/// The nodes' shared secret: sessions run over TLS, as in production.
fn tcp_security() -> kompics_net::PeerSecurity {
    kompics_net::PeerSecurity::shared_secret("zab-group-commit", &[6; 32]).unwrap()
}
