//! A deterministic in-memory cluster for driving `ZabNode`s: one FIFO queue per directed link,
//! a simulated disk per node (writes become durable one by one, in order; a crash keeps a random
//! prefix of the unsynced writes), a seeded PRNG choosing every next event, and checkers for
//! zab.md's P1–P13 on what the nodes deliver (plus: a quorum of disks holds every transaction
//! at its first delivery).
//!
//! Everything is ordered (`BTreeMap`, `Vec`), so a seed replays a run exactly.
//!
//! Besides the random schedulers, scenario tests script exact interleavings with:
//! - links: [`Sim::hold`] / [`Sim::release`] one direction, [`Sim::queued`] to look at what is
//!   in flight, [`Sim::deliver_until`] to deliver up to a given message, [`Sim::partition`]
//!   to cut a group off (sessions end, later sends are lost until [`Sim::heal`]);
//! - faulty peers and networks: [`Sim::inject`], [`Sim::drop_queued`], [`Sim::tamper_queued`],
//!   and [`Sim::set_notification_faults`] (loss and duplication of election notifications);
//! - disks: [`Sim::pending_writes`], [`Sim::complete_storage`], `disk_stalled`, crashes that
//!   keep an exact number of unsynced writes ([`Sim::crash_keeping`]) or tear the next one
//!   ([`Sim::crash_tearing`]), prepared disks ([`Sim::with_disks`]), and restarts that may be
//!   refused ([`Sim::try_restart`]);
//! - per-node configurations ([`Sim::new_per_node`]).

#![allow(dead_code)] // each test file uses a different part of the harness

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use zab_components::protocol::{
    Action, Config, Entry, Epoch, EpochKind, InitError, Message, PeerId, Phase, ProposalId,
    ProposeError, ReadId, Recovered, Snapshot, Status, ZabNode, Zxid,
};

/// splitmix64, the harness's own copy (the core's generator is private).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The application state: every delivered transaction, in order.
pub type AppState = Vec<(Zxid, Vec<u8>)>;

/// The completion call a durable write makes on its node.
type Completion = Box<dyn FnOnce(&mut ZabNode)>;

/// A storage write waiting to become durable (the node's storage actions, as the disk sees them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageOp {
    Append(Vec<Entry>),
    Epoch(EpochKind, Epoch),
    Truncate(Zxid),
    Install { zxid: Zxid, state: Option<Vec<u8>>, entries: Vec<Entry> },
    Snapshot { zxid: Zxid, state: Vec<u8> },
}

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub accepted_epoch: Epoch,
    pub current_epoch: Epoch,
    pub snapshot: Option<Snapshot>,
    pub log: Vec<Entry>,
    pending: VecDeque<StorageOp>,
}

impl Disk {
    /// A prepared disk: what a node finds when it (re)starts, nothing pending.
    pub fn new(accepted: u64, current: u64, snapshot: Option<Snapshot>, log: Vec<Entry>) -> Disk {
        Disk {
            accepted_epoch: Epoch(accepted),
            current_epoch: Epoch(current),
            snapshot,
            log,
            pending: VecDeque::new(),
        }
    }

    /// The writes issued but not yet durable, oldest first.
    pub fn pending(&self) -> &VecDeque<StorageOp> {
        &self.pending
    }

    /// The zxids of the durable log (after the snapshot).
    pub fn log_zxids(&self) -> Vec<Zxid> {
        self.log.iter().map(|entry| entry.zxid).collect()
    }
}

pub struct SimNode {
    pub id: PeerId,
    pub node: Option<ZabNode>,
    pub disk: Disk,
    pub app: AppState,
    pub incarnation: u64,
    /// Local proposal ids of the current incarnation → payload.
    proposals: BTreeMap<ProposalId, Vec<u8>>,
    /// Read barriers of the current incarnation → the highest zxid acknowledged anywhere when
    /// the read was requested: the state it passes at must include it.
    reads: BTreeMap<ReadId, Zxid>,
    /// While set, the node's storage completes nothing (a stalled disk).
    pub disk_stalled: bool,
    /// Entries read back from the durable log (`Action::ReadLog`), for the node.
    reads_back: Vec<(PeerId, Zxid, Vec<Entry>)>,
    /// Snapshot chunks read back from the disk (`Action::ReadSnapshot`), for the node.
    snaps_back: Vec<(PeerId, Zxid, u64, Vec<u8>)>,
}

/// One message sent, for assertions about the protocol's choices.
#[derive(Clone, Debug)]
pub struct Sent {
    pub from: PeerId,
    pub to: PeerId,
    pub msg: Message,
}

pub struct Sim {
    pub seed: u64,
    pub rng: Rng,
    pub nodes: Vec<SimNode>,
    /// Each node's configuration (used at every start).
    configs: Vec<Config>,
    links: BTreeMap<(usize, usize), VecDeque<Message>>,
    /// Links whose messages are held (not lost) until the given tick (`u64::MAX`: until
    /// released).
    stalled_until: BTreeMap<(usize, usize), u64>,
    /// Directed pairs cut by a partition: no session, so sends are lost.
    cut: BTreeSet<(usize, usize)>,
    /// Percent of election notifications lost, and percent duplicated, at send time.
    notification_faults: (u64, u64),
    pub now: u64,
    /// Harness events so far (deliveries, writes, ticks, proposals, crashes, restarts): the
    /// clock of the P13 check.
    pub events: u64,
    pub sent: Vec<Sent>,
    /// While set, every message sent goes to `sent` and every storage write issued to `writes`.
    pub record_sent: bool,
    /// Storage writes issued while `record_sent` was set: (node, write).
    pub writes: Vec<(usize, StorageOp)>,
    /// How many messages of each kind were sent, and how many crashes happened.
    pub counts: BTreeMap<&'static str, u64>,
    trace: VecDeque<String>,
    // ----- checkers -----
    /// The longest delivered sequence seen: every node's state must be a prefix of it or extend it.
    pub global: AppState,
    /// Every payload ever proposed.
    proposed: BTreeSet<Vec<u8>>,
    /// zxid → payload of every entry ever written to a log (P10).
    logged: BTreeMap<Zxid, Vec<u8>>,
    /// Transactions acknowledged to a proposer (`ProposalCommitted`): must never be lost (P9).
    pub acknowledged: BTreeMap<Zxid, Vec<u8>>,
    /// The event at which each acknowledged transaction was acknowledged (P13).
    pub acked_at: BTreeMap<Zxid, u64>,
    /// The event at which each payload was proposed (P13).
    pub invoked_at: BTreeMap<Vec<u8>, u64>,
    /// Established leader per epoch (P7).
    pub leaders: BTreeMap<Epoch, PeerId>,
    /// Per epoch: the leader's last delivered zxid when it first proposed in it (P6).
    first_proposal: BTreeMap<Epoch, Zxid>,
    /// Protocol violations counted by nodes that crashed since.
    violations_lost: u64,
    /// Protocol violations a test provoked on purpose (a forged message): `check_properties`
    /// fails unless exactly this many were counted.
    pub violations_expected: u64,
    next_payload: u64,
    /// Per mille of random events that are read barriers (×10 like `propose_percent`; 0, the
    /// default, leaves the random schedule of older tests unchanged).
    pub read_percent: u64,
    pub failure: Option<String>,
}

/// The harness's end-of-run checks: P1–P13, no protocol violation, every live node complete;
/// panics with the report if one fails.
pub fn finish(sim: &mut Sim) {
    sim.check_converged_state();
    sim.check_properties();
    assert!(sim.failure.is_none(), "{}", sim.report());
}

/// The seeds of a randomized sweep: `SIM_SEED=s` alone, else `1..=SIM_SEEDS` (default
/// `default`).
pub fn sweep_seeds(default: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("SIM_SEED is a number")],
        Err(_) => {
            let count =
                std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
            (1..=count).collect()
        }
    }
}

/// The message of a caught panic.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Harness timing: ticks are slow relative to messages, as with a 100 ms tick on a LAN.
pub fn sim_config(id: PeerId, peers: Vec<PeerId>) -> Config {
    let mut config = Config::new(id, peers);
    config.sync_timeout_ticks = 40;
    config.session_timeout_ticks = 12;
    config.heartbeat_interval_ticks = 3;
    config.finalize_wait_ticks = 1;
    config.notification_backoff_min_ticks = 1;
    config.notification_backoff_max_ticks = 8;
    config.outstanding_proposals_max = 32;
    config.batch_entries_max = 8;
    config.snapshot_chunk_bytes_max = 64;
    config.snapshot_entries_trigger = 0;
    config
}

pub fn encode_state(state: &AppState) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (zxid, payload) in state {
        bytes.extend_from_slice(&zxid.epoch.0.to_le_bytes());
        bytes.extend_from_slice(&zxid.counter.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(payload);
    }
    bytes
}

pub fn decode_state(mut bytes: &[u8]) -> AppState {
    let mut state = Vec::new();
    let take = |n: usize, bytes: &mut &[u8]| {
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        head.to_vec()
    };
    while !bytes.is_empty() {
        let epoch = u64::from_le_bytes(take(8, &mut bytes).try_into().unwrap());
        let counter = u64::from_le_bytes(take(8, &mut bytes).try_into().unwrap());
        let len = u32::from_le_bytes(take(4, &mut bytes).try_into().unwrap()) as usize;
        let payload = take(len, &mut bytes);
        state.push((Zxid::new(epoch, counter), payload));
    }
    state
}

impl Sim {
    /// `n` nodes with ids 1..=n, configured by `sim_config` and then `tweak`.
    pub fn new(n: usize, seed: u64, tweak: impl Fn(&mut Config)) -> Sim {
        Sim::new_per_node(n, seed, |_, config| tweak(config))
    }

    /// `n` nodes with ids 1..=n; node `i` (index, from 0) is configured by `sim_config` and
    /// then `tweak(i, ..)`, so that nodes may differ (e.g. only one takes snapshots).
    pub fn new_per_node(n: usize, seed: u64, tweak: impl Fn(usize, &mut Config)) -> Sim {
        Sim::with_disks(vec![Disk::default(); n], seed, tweak)
    }

    /// One node per prepared disk (ids 1..=n), each starting from what its disk holds, as after
    /// a restart. The payloads on the disks count as proposed and logged by an earlier primary
    /// (P1, P10); a snapshot's state counts as delivered on that node.
    pub fn with_disks(disks: Vec<Disk>, seed: u64, tweak: impl Fn(usize, &mut Config)) -> Sim {
        let n = disks.len();
        let peers: Vec<PeerId> = (1..=n as u64).map(PeerId).collect();
        let configs = (0..n)
            .map(|i| {
                let mut config = sim_config(peers[i], peers.clone());
                tweak(i, &mut config);
                config
            })
            .collect();
        let mut sim = Sim {
            seed,
            rng: Rng::new(seed),
            nodes: Vec::new(),
            configs,
            links: BTreeMap::new(),
            stalled_until: BTreeMap::new(),
            cut: BTreeSet::new(),
            notification_faults: (0, 0),
            now: 0,
            events: 0,
            sent: Vec::new(),
            record_sent: false,
            writes: Vec::new(),
            counts: BTreeMap::new(),
            trace: VecDeque::new(),
            global: Vec::new(),
            proposed: BTreeSet::new(),
            logged: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
            acked_at: BTreeMap::new(),
            invoked_at: BTreeMap::new(),
            leaders: BTreeMap::new(),
            first_proposal: BTreeMap::new(),
            violations_lost: 0,
            violations_expected: 0,
            next_payload: 0,
            read_percent: 0,
            failure: None,
        };
        for (id, disk) in peers.into_iter().zip(disks) {
            let snapshot_entries =
                disk.snapshot.as_ref().map(|s| decode_state(&s.state)).unwrap_or_default();
            for (zxid, payload) in snapshot_entries {
                sim.proposed.insert(payload.clone());
                sim.logged.insert(zxid, payload);
            }
            for entry in &disk.log {
                sim.proposed.insert(entry.payload.clone());
                sim.record_logged(std::slice::from_ref(entry));
            }
            sim.nodes.push(SimNode {
                id,
                node: None,
                disk,
                app: Vec::new(),
                incarnation: 0,
                proposals: BTreeMap::new(),
                reads: BTreeMap::new(),
                disk_stalled: false,
                reads_back: Vec::new(),
                snaps_back: Vec::new(),
            });
        }
        for i in 0..n {
            sim.start(i);
        }
        sim
    }

    fn config_for(&self, i: usize) -> Config {
        let mut config = self.configs[i].clone();
        config.seed = self.seed ^ ((i as u64 + 1) << 32) ^ self.nodes[i].incarnation;
        config
    }

    fn start(&mut self, i: usize) {
        if let Err(e) = self.try_start(i) {
            panic!("seed {}: node {} refused to restart: {e}", self.seed, i + 1)
        }
    }

    /// Starts node `i` from its disk, unless the node refuses what it finds there.
    fn try_start(&mut self, i: usize) -> Result<(), InitError> {
        self.events += 1;
        let config = self.config_for(i);
        let disk = &self.nodes[i].disk;
        let recovered = Recovered {
            accepted_epoch: disk.accepted_epoch,
            current_epoch: disk.current_epoch,
            snapshot: disk.snapshot.clone(),
            log: disk.log.clone(),
        };
        let app = disk.snapshot.as_ref().map(|s| decode_state(&s.state)).unwrap_or_default();
        let node = ZabNode::new(config, recovered)?;
        self.nodes[i].node = Some(node);
        self.nodes[i].app = app;
        self.nodes[i].proposals.clear();
        self.nodes[i].reads.clear();
        self.check_prefix(i, "restart");
        self.log_trace(format!("start n{}", i + 1));
        self.drain(i);
        Ok(())
    }

    // ----- the trace, for failure reports -----

    fn log_trace(&mut self, line: String) {
        if self.trace.len() >= trace_window() {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("[t{}] {line}", self.now));
    }

    pub fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }

    /// The failure report: the seed, the reason, the cluster and the recent trace.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "seed {} (replay with SIM_SEED={})", self.seed, self.seed);
        if let Some(failure) = &self.failure {
            let _ = writeln!(out, "failure: {failure}");
        }
        for (i, sim_node) in self.nodes.iter().enumerate() {
            match &sim_node.node {
                Some(node) => {
                    let _ = writeln!(out, "n{}: {node:?} app_len={}", i + 1, sim_node.app.len());
                }
                None => {
                    let _ = writeln!(out, "n{}: down", i + 1);
                }
            }
        }
        let _ = writeln!(out, "global delivered: {}", self.global.len());
        let _ = writeln!(out, "--- last events ---");
        for line in self.trace.iter().skip(self.trace.len().saturating_sub(report_lines())) {
            let _ = writeln!(out, "{line}");
        }
        out
    }

    // ----- driving nodes -----

    fn index(&self, id: PeerId) -> usize {
        (id.0 - 1) as usize
    }

    pub fn node(&self, i: usize) -> &ZabNode {
        self.nodes[i].node.as_ref().expect("node is up")
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].node.is_some()
    }

    fn with_node(&mut self, i: usize, f: impl FnOnce(&mut ZabNode)) {
        if let Some(node) = self.nodes[i].node.as_mut() {
            f(node);
            self.drain(i);
        }
    }

    /// Executes node `i`'s actions in order.
    fn drain(&mut self, i: usize) {
        loop {
            let Some(node) = self.nodes[i].node.as_mut() else { return };
            let actions = node.drain_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                self.execute(i, action);
            }
            // Log read-backs are answered at once, from the durable log.
            for (peer, after, entries) in std::mem::take(&mut self.nodes[i].reads_back) {
                if let Some(node) = self.nodes[i].node.as_mut() {
                    node.log_read(peer, after, entries);
                }
            }
            for (peer, zxid, offset, bytes) in std::mem::take(&mut self.nodes[i].snaps_back) {
                if let Some(node) = self.nodes[i].node.as_mut() {
                    node.snapshot_read(peer, zxid, offset, bytes);
                }
            }
        }
    }

    fn execute(&mut self, i: usize, action: Action) {
        let me = self.nodes[i].id;
        match action {
            Action::Send { to, msg } => {
                let j = self.index(to);
                *self.counts.entry(msg.kind()).or_default() += 1;
                if self.record_sent {
                    self.sent.push(Sent { from: me, to, msg: msg.clone() });
                }
                let votes = matches!(msg, Message::Notification(_)) && trace_votes();
                if votes || !matches!(msg, Message::Ping | Message::Pong | Message::Notification(_))
                {
                    self.log_trace(format!("n{} -> n{}: {}", i + 1, j + 1, describe(&msg)));
                }
                if !self.is_up(j) || self.cut.contains(&(i, j)) {
                    return; // no session: the message is lost
                }
                let mut copies = 1;
                if matches!(msg, Message::Notification(_)) {
                    let (drop, duplicate) = self.notification_faults;
                    if drop > 0 && self.rng.chance(drop) {
                        *self.counts.entry("notification dropped").or_default() += 1;
                        return;
                    }
                    if duplicate > 0 && self.rng.chance(duplicate) {
                        *self.counts.entry("notification duplicated").or_default() += 1;
                        copies = 2;
                    }
                }
                let queue = self.links.entry((i, j)).or_default();
                for _ in 1..copies {
                    queue.push_back(msg.clone());
                }
                queue.push_back(msg);
            }
            Action::ReadLog { peer, after, through, bytes_max } => {
                *self.counts.entry("log read-backs").or_default() += 1;
                let mut entries = Vec::new();
                let mut bytes = 0;
                let durable = &self.nodes[i].disk.log;
                for entry in durable.iter().filter(|e| e.zxid > after && e.zxid <= through) {
                    if !entries.is_empty() && bytes + entry.encoded_len_max() > bytes_max {
                        break;
                    }
                    bytes += entry.encoded_len_max();
                    entries.push(entry.clone());
                }
                self.nodes[i].reads_back.push((peer, after, entries));
            }
            Action::ReadSnapshot { peer, zxid, offset, bytes_max } => {
                // From the durable disk, as a file reader would: a snapshot replaced meanwhile
                // reads as nothing.
                *self.counts.entry("snapshot read-backs").or_default() += 1;
                let bytes = match self.nodes[i].disk.snapshot.as_ref().filter(|s| s.zxid == zxid) {
                    Some(snapshot) => {
                        let start = (offset as usize).min(snapshot.state.len());
                        let end = start.saturating_add(bytes_max).min(snapshot.state.len());
                        snapshot.state[start..end].to_vec()
                    }
                    None => Vec::new(),
                };
                self.nodes[i].snaps_back.push((peer, zxid, offset, bytes));
            }
            Action::Persist { entries } => {
                self.record_logged(&entries);
                self.issue(i, StorageOp::Append(entries));
            }
            Action::PersistEpoch { kind, epoch } => {
                self.issue(i, StorageOp::Epoch(kind, epoch));
            }
            Action::Truncate { to } => {
                self.log_trace(format!("n{} truncates to {to}", i + 1));
                self.issue(i, StorageOp::Truncate(to));
            }
            Action::InstallSnapshot { zxid, state, entries } => {
                self.log_trace(format!("n{} installs snapshot {zxid} + {}", i + 1, entries.len()));
                self.record_logged(&entries);
                self.nodes[i].app = state.as_deref().map(decode_state).unwrap_or_default();
                if self.nodes[i].app.last().map_or(Zxid::ZERO, |(z, _)| *z) != zxid {
                    self.fail(format!("n{} snapshot {zxid} does not end at its zxid", i + 1));
                }
                self.check_prefix(i, "snapshot install");
                self.issue(i, StorageOp::Install { zxid, state, entries });
            }
            Action::TakeSnapshot { zxid } => {
                let last = self.nodes[i].app.last().map_or(Zxid::ZERO, |(z, _)| *z);
                if last != zxid {
                    self.fail(format!("n{}: TakeSnapshot at {zxid} but state is at {last}", i + 1));
                }
                let state = encode_state(&self.nodes[i].app);
                self.issue(i, StorageOp::Snapshot { zxid, state });
            }
            Action::Deliver { zxid, payload } => self.deliver(i, zxid, payload),
            Action::StatusChanged(status) => {
                self.log_trace(format!("n{} status {status:?}", i + 1));
                if let Status::Leading { epoch } = status {
                    if let Some(other) = self.leaders.insert(epoch, me) {
                        if other != me {
                            self.fail(format!("P7: {other} and {me} both established {epoch}"));
                        }
                    }
                }
            }
            Action::ProposalAssigned { id, zxid } => {
                let leading = matches!(self.node(i).status(), Status::Leading { .. });
                if leading && !self.first_proposal.contains_key(&zxid.epoch) {
                    let delivered = self.nodes[i].app.last().map_or(Zxid::ZERO, |(z, _)| *z);
                    self.first_proposal.insert(zxid.epoch, delivered);
                }
                let _ = id;
            }
            Action::ProposalCommitted { id, zxid } => {
                let Some(payload) = self.nodes[i].proposals.remove(&id) else {
                    self.fail(format!("n{}: committed unknown proposal {id}", i + 1));
                    return;
                };
                let applied = self.nodes[i].app.last().cloned();
                if applied != Some((zxid, payload.clone())) {
                    self.fail(format!(
                        "n{}: {id} committed as {zxid} but that is not what it delivered",
                        i + 1
                    ));
                }
                self.acknowledged.insert(zxid, payload);
                self.acked_at.insert(zxid, self.events);
            }
            Action::ProposalFailed { id, .. } => {
                self.nodes[i].proposals.remove(&id);
            }
            Action::ReadReady { id } => {
                let Some(needed) = self.nodes[i].reads.remove(&id) else {
                    self.fail(format!("n{}: unknown read {id} passed", i + 1));
                    return;
                };
                let at = self.nodes[i].app.last().map_or(Zxid::ZERO, |(z, _)| *z);
                if at < needed {
                    self.fail(format!(
                        "n{}: read {id} passed at {at}, but {needed} was acknowledged before \
                         it was requested (a stale read)",
                        i + 1
                    ));
                }
                self.log_trace(format!("n{} read {id} passes at {at}", i + 1));
                *self.counts.entry("read passed").or_default() += 1;
            }
            Action::ReadFailed { id, .. } => {
                if self.nodes[i].reads.remove(&id).is_none() {
                    self.fail(format!("n{}: unknown read {id} failed", i + 1));
                }
                *self.counts.entry("read failed").or_default() += 1;
            }
        }
    }

    /// Queues a storage write on node `i`'s disk.
    fn issue(&mut self, i: usize, op: StorageOp) {
        if self.record_sent {
            self.writes.push((i, op.clone()));
        }
        self.nodes[i].disk.pending.push_back(op);
    }

    fn record_logged(&mut self, entries: &[Entry]) {
        for entry in entries {
            if let Some(previous) = self.logged.insert(entry.zxid, entry.payload.clone()) {
                if previous != entry.payload {
                    self.fail(format!("P10: two payloads logged as {}", entry.zxid));
                }
            }
        }
    }

    fn deliver(&mut self, i: usize, zxid: Zxid, payload: Vec<u8>) {
        let last = self.nodes[i].app.last().map_or(Zxid::ZERO, |(z, _)| *z);
        if zxid <= last {
            self.fail(format!("n{}: delivered {zxid} after {last}", i + 1));
        }
        if !self.proposed.contains(&payload) {
            self.fail(format!("P1: n{} delivered {zxid} that nobody proposed", i + 1));
        }
        self.nodes[i].app.push((zxid, payload));
        self.check_prefix(i, "deliver");
    }

    /// P2, P3, P8: every state is a prefix of one global sequence (extended as needed).
    fn check_prefix(&mut self, i: usize, when: &str) {
        let app = &self.nodes[i].app;
        let common = app.len().min(self.global.len());
        // Only the newest element can differ for a delivery; a restored state is checked whole.
        let from = if when == "deliver" { common.saturating_sub(1) } else { 0 };
        let pairs = app.iter().zip(&self.global).enumerate().take(common).skip(from);
        for (k, (mine, theirs)) in pairs {
            if mine != theirs {
                let (mine, theirs) = (mine.0, theirs.0);
                self.fail(format!(
                    "P3/P8 ({when}): n{} has {mine} at position {k} where others have {theirs}",
                    i + 1
                ));
                return;
            }
        }
        if app.len() > self.global.len() {
            let extra: Vec<_> = app[self.global.len()..].to_vec();
            for (zxid, _) in &extra {
                self.check_quorum_holds(*zxid);
            }
            self.global.extend(extra);
        }
    }

    /// P9's premise, at a transaction's first delivery anywhere: a quorum of the disks holds it
    /// durably (in the log, or under a snapshot at or after it), so no crash pattern that
    /// leaves a quorum able to restart can lose it.
    fn check_quorum_holds(&mut self, zxid: Zxid) {
        let holders = self
            .nodes
            .iter()
            .filter(|n| {
                n.disk.snapshot.as_ref().is_some_and(|s| s.zxid >= zxid)
                    || n.disk.log.iter().rev().any(|e| e.zxid == zxid)
            })
            .count();
        if holders * 2 <= self.nodes.len() {
            let why = format!("P9: {zxid} delivered while only {holders} disks hold it");
            self.fail(why);
        }
    }

    // ----- events -----

    /// Delivers the next message on link (i, j).
    pub fn deliver_on(&mut self, i: usize, j: usize) -> bool {
        let Some(msg) = self.links.get_mut(&(i, j)).and_then(|q| q.pop_front()) else {
            return false;
        };
        self.events += 1;
        let from = self.nodes[i].id;
        self.with_node(j, |node| node.step(from, msg));
        true
    }

    fn deliverable_links(&self) -> Vec<(usize, usize)> {
        self.links
            .iter()
            .filter(|(link, queue)| {
                !queue.is_empty()
                    && self.stalled_until.get(link).is_none_or(|until| self.now >= *until)
            })
            .map(|(link, _)| *link)
            .collect()
    }

    fn storage_pending(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                self.is_up(*i)
                    && !self.nodes[*i].disk_stalled
                    && !self.nodes[*i].disk.pending.is_empty()
            })
            .collect()
    }

    /// Makes node `i`'s oldest pending write durable and reports it.
    pub fn complete_storage(&mut self, i: usize) -> bool {
        let Some(op) = self.nodes[i].disk.pending.pop_front() else { return false };
        self.events += 1;
        let report = self.apply_storage(i, op);
        if let Some(report) = report {
            self.with_node(i, report);
        }
        true
    }

    /// Applies a write to the disk; returns the completion call for the node.
    fn apply_storage(&mut self, i: usize, op: StorageOp) -> Option<Completion> {
        let disk = &mut self.nodes[i].disk;
        match op {
            StorageOp::Append(entries) => {
                let last =
                    disk.log.last().map(|e| e.zxid).or(disk.snapshot.as_ref().map(|s| s.zxid));
                if let (Some(last), Some(first)) = (last, entries.first()) {
                    if first.zxid <= last {
                        let why = format!("n{}: append {} after {last} on disk", i + 1, first.zxid);
                        self.fail(why);
                    }
                }
                let up_to = entries.last().expect("non-empty persist").zxid;
                self.nodes[i].disk.log.extend(entries);
                Some(Box::new(move |node: &mut ZabNode| node.persisted(up_to)))
            }
            StorageOp::Epoch(kind, epoch) => {
                let (old, other_ok) = match kind {
                    EpochKind::Accepted => (disk.accepted_epoch, true),
                    EpochKind::Current => (disk.current_epoch, epoch <= disk.accepted_epoch),
                };
                if epoch < old || !other_ok {
                    self.fail(format!("P11: n{} epoch {kind:?} {old} -> {epoch}", i + 1));
                }
                let disk = &mut self.nodes[i].disk;
                match kind {
                    EpochKind::Accepted => disk.accepted_epoch = epoch,
                    EpochKind::Current => disk.current_epoch = epoch,
                }
                Some(Box::new(move |node: &mut ZabNode| node.epoch_persisted(kind, epoch)))
            }
            StorageOp::Truncate(to) => {
                disk.log.retain(|entry| entry.zxid <= to);
                None
            }
            StorageOp::Install { zxid, state, entries } => {
                let up_to = entries.last().map_or(zxid, |entry| entry.zxid);
                disk.snapshot = state.map(|state| Snapshot { zxid, state });
                disk.log = entries;
                Some(Box::new(move |node: &mut ZabNode| node.persisted(up_to)))
            }
            StorageOp::Snapshot { zxid, state } => {
                disk.snapshot = Some(Snapshot { zxid, state: state.clone() });
                disk.log.retain(|entry| entry.zxid > zxid);
                let len = state.len() as u64;
                Some(Box::new(move |node: &mut ZabNode| node.snapshot_taken(zxid, len)))
            }
        }
    }

    /// Completes every pending write everywhere (a quiet disk).
    pub fn flush_storage(&mut self) {
        while let Some(&i) = self.storage_pending().first() {
            self.complete_storage(i);
        }
    }

    /// One tick for every live node.
    pub fn tick(&mut self) {
        self.now += 1;
        self.events += 1;
        for i in 0..self.nodes.len() {
            self.with_node(i, |node| node.tick());
        }
    }

    /// One tick for `nodes` only: the others are paused (a stopped process, a long GC pause)
    /// and notice no time passing.
    pub fn tick_only(&mut self, nodes: &[usize]) {
        self.now += 1;
        self.events += 1;
        for &i in nodes {
            self.with_node(i, |node| node.tick());
        }
    }

    /// Delivers every deliverable message and completes every pending write among `nodes`
    /// (links to or from other nodes are left alone), until nothing moves.
    pub fn pump_among(&mut self, nodes: &[usize]) {
        loop {
            let mut moved = false;
            for &i in nodes {
                for &j in nodes {
                    let open = self.stalled_until.get(&(i, j)).is_none_or(|u| self.now >= *u);
                    if i != j && open {
                        while self.deliver_on(i, j) {
                            moved = true;
                        }
                    }
                }
                if !self.nodes[i].disk_stalled && self.is_up(i) {
                    while self.complete_storage(i) {
                        moved = true;
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Proposes a fresh payload at node `i`.
    pub fn propose(&mut self, i: usize) -> Result<ProposalId, ProposeError> {
        self.next_payload += 1;
        let payload = format!("v{}-n{}", self.next_payload, i + 1).into_bytes();
        self.propose_payload(i, payload)
    }

    /// Proposes `count` fresh payloads at node `i` in one go, so that a leader sends them as
    /// one batch (one write, one PROPOSAL per follower).
    pub fn propose_many(&mut self, i: usize, count: usize) -> Vec<Vec<u8>> {
        self.events += 1;
        let mut payloads = Vec::new();
        for _ in 0..count {
            self.next_payload += 1;
            let payload = format!("v{}-n{}", self.next_payload, i + 1).into_bytes();
            let node = self.nodes[i].node.as_mut().expect("proposing on a live node");
            let id = node.propose(payload.clone()).expect("the node accepts the proposal");
            self.invoked_at.insert(payload.clone(), self.events);
            self.proposed.insert(payload.clone());
            self.nodes[i].proposals.insert(id, payload.clone());
            payloads.push(payload);
        }
        self.drain(i);
        payloads
    }

    pub fn propose_payload(
        &mut self,
        i: usize,
        payload: Vec<u8>,
    ) -> Result<ProposalId, ProposeError> {
        self.events += 1;
        let node = self.nodes[i].node.as_mut().expect("proposing on a live node");
        let result = node.propose(payload.clone());
        if let Ok(id) = result {
            self.invoked_at.insert(payload.clone(), self.events);
            self.proposed.insert(payload.clone());
            self.nodes[i].proposals.insert(id, payload);
        }
        self.drain(i);
        result
    }

    /// Asks node `i` for a read barrier; its outcome is checked against every write
    /// acknowledged by now.
    pub fn read(&mut self, i: usize) -> Result<ReadId, ProposeError> {
        self.events += 1;
        let needed = self.acknowledged.keys().next_back().copied().unwrap_or(Zxid::ZERO);
        let node = self.nodes[i].node.as_mut().expect("reading on a live node");
        let result = node.read();
        if let Ok(id) = result {
            self.nodes[i].reads.insert(id, needed);
        }
        self.drain(i);
        result
    }

    /// Read barriers of node `i` still waiting.
    pub fn reads_waiting(&self, i: usize) -> usize {
        self.nodes[i].reads.len()
    }

    /// Crashes node `i`: a random prefix of its unsynced writes survives, the rest is lost;
    /// its sessions end.
    pub fn crash(&mut self, i: usize) {
        if !self.is_up(i) {
            return;
        }
        let pending = self.nodes[i].disk.pending.len() as u64;
        let survive = if pending == 0 { 0 } else { self.rng.below(pending + 1) };
        self.crash_tearing(i, survive as usize, 0);
    }

    /// Crashes node `i` at an exact point: its oldest `keep` unsynced writes reach the disk (as
    /// if synced just before the power went), the others are lost.
    pub fn crash_keeping(&mut self, i: usize, keep: usize) {
        self.crash_tearing(i, keep, 0);
    }

    /// Like [`Sim::crash_keeping`], and the write after those `keep` is torn: if it appends
    /// entries, its first `torn_entries` reach the log (recovery has cut the half-written
    /// record after them), the rest of it is lost. Other writes are all-or-nothing (epoch
    /// files and snapshots are written to a temporary file and renamed).
    pub fn crash_tearing(&mut self, i: usize, keep: usize, torn_entries: usize) {
        let Some(node) = self.nodes[i].node.take() else { return };
        self.events += 1;
        *self.counts.entry("crash").or_default() += 1;
        self.violations_lost += node.protocol_violations();
        let pending = self.nodes[i].disk.pending.len();
        let keep = keep.min(pending);
        for _ in 0..keep {
            let op = self.nodes[i].disk.pending.pop_front().expect("pending write");
            let _ = self.apply_storage(i, op);
        }
        let mut torn = 0;
        if let Some(StorageOp::Append(entries)) = self.nodes[i].disk.pending.front() {
            torn = torn_entries.min(entries.len());
            let prefix = entries[..torn].to_vec();
            if !prefix.is_empty() {
                let _ = self.apply_storage(i, StorageOp::Append(prefix));
            }
        }
        self.nodes[i].disk.pending.clear();
        self.nodes[i].app.clear();
        self.nodes[i].proposals.clear();
        self.nodes[i].reads.clear();
        self.log_trace(format!(
            "crash n{} ({keep}/{pending} unsynced writes kept, {torn} entries torn)",
            i + 1
        ));
        self.end_sessions_of(i);
    }

    /// Restarts a crashed node from its disk.
    pub fn restart(&mut self, i: usize) {
        if self.is_up(i) {
            return;
        }
        self.nodes[i].incarnation += 1;
        self.start(i);
    }

    /// Restarts a crashed node from its disk, or returns why the node refused to start (it
    /// then stays down).
    pub fn try_restart(&mut self, i: usize) -> Result<(), InitError> {
        if self.is_up(i) {
            return Ok(());
        }
        self.nodes[i].incarnation += 1;
        let result = self.try_start(i);
        if let Err(e) = &result {
            self.log_trace(format!("n{} refused to start: {e}", i + 1));
        }
        result
    }

    /// The writes node `i` issued that are not durable yet, oldest first.
    pub fn pending_writes(&self, i: usize) -> &VecDeque<StorageOp> {
        self.nodes[i].disk.pending()
    }

    fn end_sessions_of(&mut self, i: usize) {
        for j in 0..self.nodes.len() {
            if j != i {
                self.break_link(i, j);
            }
        }
    }

    /// Breaks the session between i and j: messages in flight both ways are lost.
    pub fn break_link(&mut self, i: usize, j: usize) {
        self.links.remove(&(i, j));
        self.links.remove(&(j, i));
        self.stalled_until.remove(&(i, j));
        self.stalled_until.remove(&(j, i));
        let (id_i, id_j) = (self.nodes[i].id, self.nodes[j].id);
        self.with_node(i, |node| node.session_ended(id_j));
        self.with_node(j, |node| node.session_ended(id_i));
    }

    /// Holds every message to and from `i` for `ticks` ticks (a temporary partition).
    pub fn isolate(&mut self, i: usize, ticks: u64) {
        self.log_trace(format!("isolate n{} for {ticks} ticks", i + 1));
        for j in 0..self.nodes.len() {
            if j != i {
                self.stalled_until.insert((i, j), self.now + ticks);
                self.stalled_until.insert((j, i), self.now + ticks);
            }
        }
    }

    /// Ends every partition and every hold: held messages flow again, cut pairs can open new
    /// sessions.
    pub fn heal(&mut self) {
        self.log_trace("heal".into());
        self.stalled_until.clear();
        self.cut.clear();
    }

    /// Cuts `side` off from the other nodes: the sessions across end (messages in flight are
    /// lost, both ends are told) and no new session forms until [`Sim::heal`], so later
    /// messages across are lost. Links inside each side keep working.
    pub fn partition(&mut self, side: &[usize]) {
        self.log_trace(format!("partition {:?} from the rest", side.iter().map(|i| i + 1)));
        for &i in side {
            for j in 0..self.nodes.len() {
                if !side.contains(&j) {
                    self.cut.insert((i, j));
                    self.cut.insert((j, i));
                    self.break_link(i, j);
                }
            }
        }
    }

    /// Holds the messages from `i` to `j` (one direction) until [`Sim::release`] or
    /// [`Sim::heal`]: they stay in flight, in order, and the session stays up.
    pub fn hold(&mut self, i: usize, j: usize) {
        self.stalled_until.insert((i, j), u64::MAX);
    }

    /// Lets the messages from `i` to `j` flow again.
    pub fn release(&mut self, i: usize, j: usize) {
        self.stalled_until.remove(&(i, j));
    }

    /// The messages in flight from `i` to `j`, oldest first.
    pub fn queued(&self, i: usize, j: usize) -> Vec<&Message> {
        self.links.get(&(i, j)).map(|queue| queue.iter().collect()).unwrap_or_default()
    }

    /// Delivers the messages in flight from `i` to `j`, in order (held or not), up to and
    /// including the first one `pred` accepts. Returns whether one did.
    pub fn deliver_until(&mut self, i: usize, j: usize, pred: impl Fn(&Message) -> bool) -> bool {
        while let Some(msg) = self.links.get(&(i, j)).and_then(|queue| queue.front()) {
            let hit = pred(msg);
            self.deliver_on(i, j);
            if hit {
                return true;
            }
        }
        false
    }

    /// Puts `msg` in flight from `i` to `j`, after what is queued, as if `i` had sent it: a
    /// faulty peer or a forged packet.
    pub fn inject(&mut self, i: usize, j: usize, msg: Message) {
        self.log_trace(format!("inject n{} -> n{}: {}", i + 1, j + 1, describe(&msg)));
        if self.is_up(j) {
            self.links.entry((i, j)).or_default().push_back(msg);
        }
    }

    /// Removes the messages in flight from `i` to `j` that `pred` accepts, without ending the
    /// session; returns how many. Only election notifications may be lost this way between
    /// correct peers (they are stateless and resent); losing anything else breaks the FIFO
    /// session contract and models a faulty network.
    pub fn drop_queued(&mut self, i: usize, j: usize, pred: impl Fn(&Message) -> bool) -> usize {
        let Some(queue) = self.links.get_mut(&(i, j)) else { return 0 };
        let before = queue.len();
        queue.retain(|msg| !pred(msg));
        before - queue.len()
    }

    /// Rewrites the messages in flight from `i` to `j` (a faulty sender or a corrupting
    /// network).
    pub fn tamper_queued(&mut self, i: usize, j: usize, mut f: impl FnMut(&mut Message)) {
        if let Some(queue) = self.links.get_mut(&(i, j)) {
            queue.iter_mut().for_each(&mut f);
        }
    }

    /// From now on, `drop_percent` % of the election notifications sent are lost and
    /// `duplicate_percent` % of the others arrive twice (FLE tolerates both).
    pub fn set_notification_faults(&mut self, drop_percent: u64, duplicate_percent: u64) {
        self.notification_faults = (drop_percent, duplicate_percent);
    }

    // ----- schedulers -----

    /// One random event. With `chaos`, faults are among the choices.
    pub fn step_random(&mut self, chaos: bool, propose_percent: u64) {
        let roll = self.rng.below(1000);
        let n = self.nodes.len();
        let fault_until = if chaos { 12 } else { 0 };
        let propose_until = fault_until + propose_percent * 10;
        let read_until = propose_until + self.read_percent * 10;
        let tick_until = read_until + 30;
        if roll < fault_until {
            let i = self.rng.below(n as u64) as usize;
            match self.rng.below(8) {
                0 => self.crash(i),
                1 | 2 => self.restart(i),
                3 if n > 1 => {
                    let j = (i + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                    self.log_trace(format!("break n{}-n{}", i + 1, j + 1));
                    self.break_link(i, j);
                }
                4 => {
                    let ticks = 1 + self.rng.below(30);
                    self.isolate(i, ticks);
                }
                5 => {
                    let side: Vec<usize> = (0..n).filter(|_| self.rng.chance(40)).collect();
                    if !side.is_empty() && side.len() < n {
                        self.partition(&side);
                    }
                }
                6 => self.heal(),
                _ => {
                    self.nodes[i].disk_stalled = !self.nodes[i].disk_stalled;
                    let state = self.nodes[i].disk_stalled;
                    self.log_trace(format!("n{} disk stalled: {state}", i + 1));
                }
            }
            return;
        }
        if roll < propose_until {
            if let Some(i) = self.random_up_node() {
                let _ = self.propose(i);
            }
            return;
        }
        if roll < read_until {
            if let Some(i) = self.random_up_node() {
                let _ = self.read(i);
            }
            return;
        }
        if roll < tick_until {
            self.tick();
            return;
        }
        let links = self.deliverable_links();
        let disks = self.storage_pending();
        if links.is_empty() && disks.is_empty() {
            self.tick();
            return;
        }
        let total = links.len() * 2 + disks.len();
        let pick = self.rng.below(total as u64) as usize;
        if pick < links.len() * 2 {
            let (i, j) = links[pick / 2];
            self.deliver_on(i, j);
        } else {
            let i = disks[pick - links.len() * 2];
            self.complete_storage(i);
        }
    }

    /// A live node chosen at random, if any is up.
    fn random_up_node(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|i| self.is_up(*i)).collect();
        (!up.is_empty()).then(|| up[self.rng.below(up.len() as u64) as usize])
    }

    /// The verdict of a run wrapped in `catch_unwind`: `Ok` if it neither failed a check nor
    /// panicked, else the report (a panic is recorded as the failure).
    pub fn verdict(&mut self, outcome: std::thread::Result<()>) -> Result<(), String> {
        match outcome {
            Ok(()) if self.failure.is_none() => Ok(()),
            Ok(()) => Err(self.report()),
            Err(panic) => {
                self.fail(format!("panic: {}", panic_text(&*panic)));
                Err(self.report())
            }
        }
    }

    /// Runs fault-free random steps until `done` holds (checked every step) or `max_steps`.
    pub fn run_until(&mut self, max_steps: usize, mut done: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            if self.failure.is_some() {
                return false;
            }
            self.step_random(false, 0);
        }
        done(self)
    }

    /// Like [`Sim::settle`], but stops as soon as `done` holds (checked before every event);
    /// returns whether it does.
    pub fn settle_until(&mut self, mut done: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..100_000 {
            if done(self) {
                return true;
            }
            if let Some(&(i, j)) = self.deliverable_links().first() {
                self.deliver_on(i, j);
            } else if let Some(&i) = self.storage_pending().first() {
                self.complete_storage(i);
            } else {
                return done(self);
            }
        }
        panic!("seed {}: the cluster does not settle", self.seed);
    }

    /// Delivers messages and completes writes until nothing is left (no ticks).
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            let links = self.deliverable_links();
            if let Some(&(i, j)) = links.first() {
                self.deliver_on(i, j);
                continue;
            }
            let disks = self.storage_pending();
            if let Some(&i) = disks.first() {
                self.complete_storage(i);
                continue;
            }
            return;
        }
        panic!("seed {}: the cluster does not settle", self.seed);
    }

    // ----- observations -----

    /// The established leader, if exactly one live node leads in broadcast.
    pub fn leader(&self) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                self.nodes[*i].node.as_ref().is_some_and(|node| {
                    matches!(node.status(), Status::Leading { .. })
                        && node.phase() == Phase::Broadcast
                })
            })
            .collect();
        match leaders.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Whether every live node is in broadcast under one leader, all logs fully committed and
    /// delivered, and all states equal.
    pub fn converged(&self) -> bool {
        let Some(leader) = self.leader() else { return false };
        let leader_id = self.nodes[leader].id;
        let reference = &self.nodes[leader].app;
        self.nodes.iter().all(|sim_node| {
            let Some(node) = &sim_node.node else { return false };
            node.phase() == Phase::Broadcast
                && node.leader() == Some(leader_id)
                && node.delivered_zxid() == node.last_zxid()
                && sim_node.app == *reference
                && sim_node.disk.pending.is_empty()
        })
    }

    pub fn live_violations(&self) -> u64 {
        self.nodes.iter().filter_map(|n| n.node.as_ref()).map(|n| n.protocol_violations()).sum()
    }

    /// P4, P5, P6, P9 and no protocol violations, over the whole run. (P1, P2, P3, P7, P8,
    /// P10 and P11 are checked as events happen.)
    pub fn check_properties(&mut self) {
        // P5 (and total order): the global sequence strictly increases.
        if let Some(pair) = self.global.windows(2).find(|pair| pair[0].0 >= pair[1].0) {
            let why = format!("P5: {} delivered before {}", pair[0].0, pair[1].0);
            self.fail(why);
        }
        // P4: within an epoch, delivered counters are 1, 2, 3, ... without a gap.
        let mut expected: BTreeMap<Epoch, u64> = BTreeMap::new();
        for (zxid, _) in &self.global {
            let next = expected.entry(zxid.epoch).or_insert(1);
            if zxid.counter != *next {
                let why = format!("P4: {zxid} delivered where counter {} was due", next);
                self.fail(why);
                break;
            }
            *next += 1;
        }
        // P6: a leader delivered every earlier-epoch transaction anyone delivers before proposing.
        for (epoch, delivered) in self.first_proposal.clone() {
            if let Some((zxid, _)) =
                self.global.iter().find(|(zxid, _)| zxid.epoch < epoch && *zxid > delivered)
            {
                self.fail(format!(
                    "P6: leader of {epoch} proposed having delivered only {delivered}, \
                     but {zxid} of an earlier epoch is delivered"
                ));
            }
        }
        // P9: acknowledged transactions are in the global sequence, with their payload.
        let positions: BTreeMap<Zxid, &Vec<u8>> =
            self.global.iter().map(|(z, p)| (*z, p)).collect();
        for (zxid, payload) in &self.acknowledged {
            if positions.get(zxid) != Some(&payload) {
                self.failure.get_or_insert(format!("P9: acknowledged {zxid} is lost"));
            }
        }
        self.check_linearizable();
        let violations = self.violations_lost + self.live_violations();
        if violations != self.violations_expected {
            let expected = self.violations_expected;
            self.fail(format!("{violations} protocol violations ({expected} expected)"));
        }
    }

    /// P13 for the replicated log: the delivered sequence is a linearization of the proposals.
    /// A transaction acknowledged before another was proposed precedes it (real-time order);
    /// proposals without an acknowledgement may take effect or not (indeterminate).
    pub fn check_linearizable(&mut self) {
        let mut acked: Vec<(u64, Zxid)> = self.acked_at.iter().map(|(z, t)| (*t, *z)).collect();
        acked.sort();
        let mut highest = Vec::with_capacity(acked.len());
        let mut max = Zxid::ZERO;
        for (_, zxid) in &acked {
            max = max.max(*zxid);
            highest.push(max);
        }
        for (zxid, payload) in &self.global {
            let Some(invoked) = self.invoked_at.get(payload) else { continue };
            let before = acked.partition_point(|(at, _)| at < invoked);
            if before > 0 && highest[before - 1] >= *zxid {
                let earlier = highest[before - 1];
                let why = format!(
                    "P13: {zxid} was proposed after {earlier} was acknowledged, but precedes it"
                );
                self.failure.get_or_insert(why);
                return;
            }
        }
    }

    /// P9/P12 at the end of a run: every live node holds the whole global sequence.
    pub fn check_converged_state(&mut self) {
        for i in 0..self.nodes.len() {
            if self.is_up(i) && self.nodes[i].app.len() < self.global.len() {
                let why = format!(
                    "P9/P12: n{} converged with {} transactions, {} were delivered somewhere",
                    i + 1,
                    self.nodes[i].app.len(),
                    self.global.len()
                );
                self.fail(why);
            }
        }
    }

    /// Messages of the given kind sent from `from` to `to` (requires `record_sent`).
    pub fn sent_kinds(&self, from: usize, to: usize) -> Vec<&'static str> {
        let (from, to) = (self.nodes[from].id, self.nodes[to].id);
        self.sent.iter().filter(|s| s.from == from && s.to == to).map(|s| s.msg.kind()).collect()
    }
}

/// `SIM_TRACE_VOTES=1` adds election notifications to failure traces and keeps a longer
/// window of them (liveness failures are mostly about votes).
fn trace_votes() -> bool {
    static VOTES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VOTES.get_or_init(|| std::env::var_os("SIM_TRACE_VOTES").is_some())
}

/// How many trace lines are kept.
fn trace_window() -> usize {
    if trace_votes() {
        20_000
    } else {
        400
    }
}

/// How many of them a failure report shows: all of them when votes are traced.
fn report_lines() -> usize {
    if trace_votes() {
        trace_window()
    } else {
        120
    }
}

pub fn describe(msg: &Message) -> String {
    match msg {
        Message::Proposal { entries } | Message::SyncEntries { entries } => format!(
            "{} {}..{}",
            msg.kind(),
            entries.first().map(|e| e.zxid).unwrap_or_default(),
            entries.last().map(|e| e.zxid).unwrap_or_default()
        ),
        Message::SnapChunk { bytes } => format!("SNAPCHUNK {}B", bytes.len()),
        Message::Forward { id, .. } => format!("FORWARD {id}"),
        other => format!("{other:?}"),
    }
}
