//! The cluster driver: [`Sim`] runs `n` [`ZabNode`]s in one thread, executes their actions,
//! and schedules every next event (a delivery, a completed write, a tick, a proposal, a fault)
//! from its seeded generator.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::report::trace_votes;
use super::{decode_state, describe, encode_state, AppState, Disk, Rng, Sent, StorageOp};
use crate::protocol::{
    Action, Config, Entry, Epoch, InitError, Message, PeerId, Phase, ProposalId, ProposeError,
    ReadId, Recovered, Status, ZabNode, Zxid,
};

/// One node of a [`Sim`]: the protocol state machine (while up), its disk and application.
pub struct SimNode {
    /// Its id (its index plus one).
    pub id: PeerId,
    /// The state machine; `None` while crashed.
    pub node: Option<ZabNode>,
    /// What survives a crash, and the writes in flight.
    pub disk: Disk,
    /// The application state: what this incarnation delivered (or installed).
    pub app: AppState,
    /// How many times the node was restarted.
    pub incarnation: u64,
    /// Local proposal ids of the current incarnation → payload.
    pub(super) proposals: BTreeMap<ProposalId, Vec<u8>>,
    /// Read barriers of the current incarnation → the highest zxid acknowledged anywhere when
    /// the read was requested: the state it passes at must include it.
    pub(super) reads: BTreeMap<ReadId, Zxid>,
    /// While set, the node's storage completes nothing (a stalled disk).
    pub disk_stalled: bool,
    /// Entries read back from the durable log (`Action::ReadLog`), for the node.
    pub(super) reads_back: Vec<(PeerId, Zxid, Vec<Entry>)>,
    /// Snapshot chunks read back from the disk (`Action::ReadSnapshot`), for the node.
    pub(super) snaps_back: Vec<(PeerId, Zxid, u64, Vec<u8>)>,
}

/// A deterministic cluster of [`ZabNode`]s: see the [module docs](super).
pub struct Sim {
    /// The seed of the run: every random choice follows from it.
    pub seed: u64,
    /// The generator of the scheduler's choices.
    pub rng: Rng,
    /// The nodes, by index (node `i` has id `i + 1`).
    pub nodes: Vec<SimNode>,
    /// Each node's configuration (used at every start).
    pub(super) configs: Vec<Config>,
    pub(super) links: BTreeMap<(usize, usize), VecDeque<Message>>,
    /// Links whose messages are held (not lost) until the given tick (`u64::MAX`: until
    /// released).
    pub(super) stalled_until: BTreeMap<(usize, usize), u64>,
    /// Directed pairs cut by a partition: no session, so sends are lost.
    pub(super) cut: BTreeSet<(usize, usize)>,
    /// Percent of election notifications lost, and percent duplicated, at send time.
    pub(super) notification_faults: (u64, u64),
    /// Ticks so far.
    pub now: u64,
    /// Harness events so far (deliveries, writes, ticks, proposals, crashes, restarts): the
    /// clock of the P13 check.
    pub events: u64,
    /// Messages sent while `record_sent` was set.
    pub sent: Vec<Sent>,
    /// While set, every message sent goes to `sent` and every storage write issued to `writes`.
    pub record_sent: bool,
    /// Storage writes issued while `record_sent` was set: (node, write).
    pub writes: Vec<(usize, StorageOp)>,
    /// How many messages of each kind were sent, and how many crashes happened.
    pub counts: BTreeMap<&'static str, u64>,
    pub(super) trace: VecDeque<String>,
    // ----- checkers -----
    /// The longest delivered sequence seen: every node's state must be a prefix of it or extend it.
    pub global: AppState,
    /// Every payload ever proposed.
    pub(super) proposed: BTreeSet<Vec<u8>>,
    /// zxid → payload of every entry ever written to a log (P10).
    pub(super) logged: BTreeMap<Zxid, Vec<u8>>,
    /// Transactions acknowledged to a proposer (`ProposalCommitted`): must never be lost (P9).
    pub acknowledged: BTreeMap<Zxid, Vec<u8>>,
    /// The event at which each acknowledged transaction was acknowledged (P13).
    pub acked_at: BTreeMap<Zxid, u64>,
    /// The event at which each payload was proposed (P13).
    pub invoked_at: BTreeMap<Vec<u8>, u64>,
    /// Established leader per epoch (P7).
    pub leaders: BTreeMap<Epoch, PeerId>,
    /// Per epoch: the leader's last delivered zxid when it first proposed in it (P6).
    pub(super) first_proposal: BTreeMap<Epoch, Zxid>,
    /// Protocol violations counted by nodes that crashed since.
    pub(super) violations_lost: u64,
    /// Protocol violations a test provoked on purpose (a forged message): `check_properties`
    /// fails unless exactly this many were counted.
    pub violations_expected: u64,
    pub(super) next_payload: u64,
    /// Per mille of random events that are read barriers (×10 like `propose_percent`; 0, the
    /// default, leaves the random schedule of older tests unchanged).
    pub read_percent: u64,
    /// The first check that failed, if any.
    pub failure: Option<String>,
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

    pub(super) fn config_for(&self, i: usize) -> Config {
        let mut config = self.configs[i].clone();
        config.seed = self.seed ^ ((i as u64 + 1) << 32) ^ self.nodes[i].incarnation;
        config
    }

    pub(super) fn start(&mut self, i: usize) {
        if let Err(e) = self.try_start(i) {
            panic!("seed {}: node {} refused to restart: {e}", self.seed, i + 1)
        }
    }

    /// Starts node `i` from its disk, unless the node refuses what it finds there.
    pub(super) fn try_start(&mut self, i: usize) -> Result<(), InitError> {
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

    // ----- driving nodes -----

    pub(super) fn index(&self, id: PeerId) -> usize {
        (id.0 - 1) as usize
    }

    /// Node `i`'s state machine.
    ///
    /// # Panics
    /// If node `i` is down.
    pub fn node(&self, i: usize) -> &ZabNode {
        self.nodes[i].node.as_ref().expect("node is up")
    }

    /// Whether node `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].node.is_some()
    }

    pub(super) fn with_node(&mut self, i: usize, f: impl FnOnce(&mut ZabNode)) {
        if let Some(node) = self.nodes[i].node.as_mut() {
            f(node);
            self.drain(i);
        }
    }

    /// Executes node `i`'s actions in order.
    pub(super) fn drain(&mut self, i: usize) {
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

    pub(super) fn execute(&mut self, i: usize, action: Action) {
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
                let disk = &self.nodes[i].disk;
                let bytes = match disk.snapshot.as_ref().filter(|s| s.zxid == zxid) {
                    Some(snapshot) => snapshot.state_piece(offset, bytes_max).to_vec(),
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

    pub(super) fn deliver(&mut self, i: usize, zxid: Zxid, payload: Vec<u8>) {
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

    /// Proposes `payload` at node `i`; returns what the node answered.
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
    pub(super) fn random_up_node(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|i| self.is_up(*i)).collect();
        (!up.is_empty()).then(|| up[self.rng.below(up.len() as u64) as usize])
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

    /// Messages of the given kind sent from `from` to `to` (requires `record_sent`).
    pub fn sent_kinds(&self, from: usize, to: usize) -> Vec<&'static str> {
        let (from, to) = (self.nodes[from].id, self.nodes[to].id);
        self.sent.iter().filter(|s| s.from == from && s.to == to).map(|s| s.msg.kind()).collect()
    }
}
