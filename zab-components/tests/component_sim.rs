//! The Zab component in the simulator: whole nodes (simulated network, failure detector, Zab,
//! an application) with crashes, restarts, partitions and slow disks. Every failure names its
//! seed; `SIM_SEED=s` replays one seed of the sweep.

use std::collections::BTreeMap;
use std::time::Duration;

use kompics_core::rand::rngs::SmallRng;
use kompics_core::rand::{Rng, SeedableRng};
use kompics_core::*;
use kompics_net::sim::SimNetConfig;
use zab_components::component::*;
use zab_components::protocol::Zxid;
use zab_components::testing::{sweep_seeds_from, Group, LogApp, SnapshotAnswer};

/// The group under test.
type Cluster = Group<Component<LogApp>>;

fn cluster(seed: u64, n: usize, tune: fn(&mut ZabConfig)) -> Cluster {
    build_cluster(seed, n, tune, |_| SnapshotAnswer::Now, SimNetConfig::default())
}

fn cluster_with_answers(
    seed: u64,
    n: usize,
    tune: fn(&mut ZabConfig),
    answer: fn(usize) -> SnapshotAnswer,
) -> Cluster {
    build_cluster(seed, n, tune, answer, SimNetConfig::default())
}

fn cluster_with_net(seed: u64, n: usize, tune: fn(&mut ZabConfig), net: SimNetConfig) -> Cluster {
    build_cluster(seed, n, tune, |_| SnapshotAnswer::Now, net)
}

fn build_cluster(
    seed: u64,
    n: usize,
    tune: fn(&mut ZabConfig),
    answer: fn(usize) -> SnapshotAnswer,
    net: SimNetConfig,
) -> Cluster {
    Group::new(Simulation::new(seed), n, net, tune, move |node| {
        let answer = answer(node.index);
        let app = node.system.create(move |s| LogApp::new(s, answer));
        node.connect_app(&app);
        app
    })
}

/// What the tests observe and do through the nodes' applications.
trait Apps {
    /// What node `i`'s application shows, through `f`; `None` while the node is down.
    fn app<R>(&self, i: usize, f: impl FnOnce(&mut LogApp) -> R) -> Option<R>;
    fn leader(&self) -> Option<usize>;
    fn propose(&mut self, i: usize, payload: &[u8]) -> u64;
    fn log(&self, i: usize) -> Vec<(Zxid, Vec<u8>)>;
    fn committed(&self, i: usize) -> Vec<(u64, Zxid)>;
    fn status(&self, i: usize) -> Option<ZabStatus>;
    /// Runs until some node leads (and every live node agrees on it), up to `limit`.
    fn await_leader(&self, limit: Duration) -> usize;
    /// Runs until one of `nodes` leads and the others of `nodes` follow it, up to `limit`.
    fn await_leader_among(&self, nodes: &[usize], limit: Duration) -> usize;
    fn epoch_of(&self, i: usize) -> zab_components::protocol::Epoch;
    /// Every live node's log is a prefix of the longest; returns the longest.
    fn check_prefixes(&self) -> Vec<(Zxid, Vec<u8>)>;
}

impl Apps for Cluster {
    fn app<R>(&self, i: usize, f: impl FnOnce(&mut LogApp) -> R) -> Option<R> {
        self.nodes[i].as_ref().and_then(|p| p.app.on_definition(|a| f(a)))
    }

    fn leader(&self) -> Option<usize> {
        let leaders: Vec<usize> = self
            .up()
            .map(|(i, _)| i)
            .filter(|i| matches!(self.status(*i), Some(ZabStatus::Leading { .. })))
            .collect();
        leaders.last().copied()
    }

    fn propose(&mut self, i: usize, payload: &[u8]) -> u64 {
        let tag = self.fresh_tag();
        let payload = payload.to_vec();
        self.app(i, |a| a.propose(tag, payload));
        tag
    }

    fn log(&self, i: usize) -> Vec<(Zxid, Vec<u8>)> {
        self.app(i, |a| a.log.clone()).unwrap_or_default()
    }

    fn committed(&self, i: usize) -> Vec<(u64, Zxid)> {
        let committed = self.app(i, |a| a.committed.iter().map(|(t, z, _)| (*t, *z)).collect());
        committed.unwrap_or_default()
    }

    fn status(&self, i: usize) -> Option<ZabStatus> {
        self.app(i, |a| a.status).flatten()
    }

    fn await_leader(&self, limit: Duration) -> usize {
        let deadline = self.sim.now() + limit;
        while self.sim.now() < deadline {
            self.run(Duration::from_millis(20));
            if let Some(l) = self.leader() {
                let following =
                    Some(ZabStatus::Following { leader: self.addrs[l], epoch: self.epoch_of(l) });
                let all = self.up().all(|(i, _)| i == l || self.status(i) == following);
                if all {
                    return l;
                }
            }
        }
        panic!("seed {}: no leader within {limit:?}", self.sim.seed());
    }

    fn await_leader_among(&self, nodes: &[usize], limit: Duration) -> usize {
        let deadline = self.sim.now() + limit;
        while self.sim.now() < deadline {
            self.run(Duration::from_millis(20));
            for &l in nodes {
                if !matches!(self.status(l), Some(ZabStatus::Leading { .. })) {
                    continue;
                }
                let following =
                    Some(ZabStatus::Following { leader: self.addrs[l], epoch: self.epoch_of(l) });
                if nodes.iter().all(|&i| i == l || self.status(i) == following) {
                    return l;
                }
            }
        }
        panic!("seed {}: no leader among {nodes:?} within {limit:?}", self.sim.seed());
    }

    fn epoch_of(&self, i: usize) -> zab_components::protocol::Epoch {
        match self.status(i) {
            Some(ZabStatus::Leading { epoch }) | Some(ZabStatus::Following { epoch, .. }) => epoch,
            _ => zab_components::protocol::Epoch(0),
        }
    }

    fn check_prefixes(&self) -> Vec<(Zxid, Vec<u8>)> {
        let logs: Vec<_> = self.up().map(|(i, _)| self.log(i)).collect();
        let longest = logs.iter().max_by_key(|l| l.len()).cloned().unwrap_or_default();
        for l in &logs {
            assert_eq!(&longest[..l.len()], &l[..], "seed {}: logs diverge", self.seed());
        }
        longest
    }
}

fn default_tune(_: &mut ZabConfig) {}

#[test]
fn three_nodes_elect_one_leader_and_deliver_identically() {
    let mut c = cluster(1, 3, default_tune);
    let leader = c.await_leader(Duration::from_secs(5));
    // Proposals from every node: followers forward them to the leader.
    for k in 0..30u8 {
        c.propose(k as usize % 3, &[k]);
    }
    c.run(Duration::from_secs(2));
    let log = c.check_prefixes();
    assert_eq!(log.len(), 30);
    for i in 0..3 {
        assert_eq!(c.log(i), log, "node {i}");
    }
    let mut payloads: Vec<u8> = log.iter().map(|(_, p)| p[0]).collect();
    payloads.sort();
    assert_eq!(payloads, (0..30).collect::<Vec<_>>());
    // Each proposer heard of its own proposals' commits.
    let total: usize = (0..3).map(|i| c.committed(i).len()).sum();
    assert_eq!(total, 30);
    assert!(c.leader() == Some(leader));
}

#[test]
fn a_proposal_to_a_looking_node_fails_with_nothing_done() {
    let mut c = cluster(2, 3, default_tune);
    // At time zero nobody leads yet.
    let tag = c.propose(0, b"early");
    c.run(Duration::from_millis(1));
    let failed = c.app(0, |a| a.failed.clone()).unwrap();
    assert_eq!(failed, vec![(tag, ProposeFailure::NotLeader { leader: None })]);
    c.await_leader(Duration::from_secs(5));
    c.run(Duration::from_secs(1));
    assert!(c.log(0).is_empty(), "the refused proposal never happened");
}

/// A message the network refuses (here a forwarded proposal too large for a frame) ends the
/// peer's session on the sender's side: the follower leaves its leader (so its proposal fails
/// rather than waiting forever), rejoins, and later proposals commit.
#[test]
fn a_message_refused_by_the_network_ends_the_session_with_its_peer() {
    const FRAME_BYTES_MAX: usize = 4096;
    let config = SimNetConfig { frame_bytes_max: FRAME_BYTES_MAX, ..SimNetConfig::default() };
    let mut c = cluster_with_net(4, 3, default_tune, config);
    let leader = c.await_leader(Duration::from_secs(5));
    let follower = (leader + 1) % 3;
    let failed = |c: &Cluster| c.app(follower, |a| a.failed.clone()).unwrap();
    let tag = c.propose(follower, &vec![1; 2 * FRAME_BYTES_MAX]);
    c.run(Duration::from_millis(100));
    assert!(
        failed(&c).iter().any(|(t, _)| *t == tag),
        "the follower gave up its leader and failed the proposal: {:?}",
        failed(&c)
    );
    c.await_leader(Duration::from_secs(5));
    let small = c.propose(follower, b"small");
    c.run(Duration::from_secs(1));
    assert!(c.committed(follower).iter().any(|(t, _)| *t == small));
    assert!(c.check_prefixes().iter().all(|(_, p)| p.len() < FRAME_BYTES_MAX));
}

#[test]
fn leader_crash_elects_a_new_leader_and_loses_no_committed_transaction() {
    let mut c = cluster(3, 3, default_tune);
    let leader = c.await_leader(Duration::from_secs(5));
    for k in 0..10u8 {
        c.propose(leader, &[k]);
    }
    c.run(Duration::from_secs(1));
    let before = c.check_prefixes();
    assert_eq!(before.len(), 10);
    let crashed_at = c.sim.now();
    c.crash(leader, 0);
    let new_leader = c.await_leader(Duration::from_secs(10));
    assert_ne!(new_leader, leader);
    println!("failover: {:?} of simulated time", c.sim.now() - crashed_at);
    c.propose(new_leader, b"after");
    c.run(Duration::from_secs(1));
    let after = c.check_prefixes();
    assert_eq!(&after[..10], &before[..], "committed transactions survive");
    assert_eq!(after.len(), 11);
    // The old leader comes back and catches up.
    c.start(leader);
    c.run(Duration::from_secs(5));
    assert_eq!(c.log(leader), after);
}

#[test]
fn a_minority_partition_stalls_and_heals() {
    let mut c = cluster(4, 3, default_tune);
    let leader = c.await_leader(Duration::from_secs(5));
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    // Isolate the leader: the two others elect a new one and go on.
    c.partition(&[leader]);
    let tag = c.propose(leader, b"isolated");
    c.run(Duration::from_secs(3));
    let majority_leader = c.leader().expect("the majority elects a leader");
    assert!(others.contains(&majority_leader));
    c.propose(majority_leader, b"majority");
    c.run(Duration::from_secs(1));
    c.heal();
    c.run(Duration::from_secs(5));
    let log = c.check_prefixes();
    for i in 0..3 {
        assert_eq!(c.log(i), log, "node {i} converged");
    }
    assert!(log.iter().any(|(_, p)| p == b"majority"));
    // The isolated leader's proposal either committed or was reported as failed or unknown.
    let committed = c.committed(leader).iter().any(|(t, _)| *t == tag);
    let in_log = log.iter().any(|(_, p)| p == b"isolated");
    if committed {
        assert!(in_log, "a reported commit is in the log");
    }
}

fn snapshot_often(config: &mut ZabConfig) {
    config.protocol.snapshot_entries_trigger = 5;
}

#[test]
fn snapshots_flow_through_the_application_and_a_restarted_node_recovers_from_one() {
    let mut c = cluster(5, 3, snapshot_often);
    let leader = c.await_leader(Duration::from_secs(5));
    for k in 0..23u8 {
        c.propose(leader, &[k]);
        c.run(Duration::from_millis(20));
    }
    c.run(Duration::from_secs(1));
    let log = c.check_prefixes();
    assert_eq!(log.len(), 23);
    let follower = (0..3).find(|i| *i != leader).unwrap();
    assert!(c.disks[follower].contents().snapshot.is_some(), "a snapshot was stored");
    c.crash(follower, usize::MAX);
    c.start(follower);
    c.run(Duration::from_secs(5));
    assert_eq!(c.log(follower), log, "state rebuilt from the snapshot and the log");
}

#[test]
fn slow_disks_delay_commits_but_lose_nothing_acknowledged() {
    fn slow(config: &mut ZabConfig) {
        config.sync_delay = (Duration::from_millis(1), Duration::from_millis(30));
    }
    let mut c = cluster(6, 3, slow);
    let leader = c.await_leader(Duration::from_secs(10));
    for k in 0..50u8 {
        c.propose(k as usize % 3, &[k]);
    }
    c.run(Duration::from_secs(3));
    let committed: Vec<_> = (0..3).flat_map(|i| c.committed(i)).collect();
    // Crash everything at once, losing every unsynced write; restart.
    for i in 0..3 {
        c.crash(i, 0);
    }
    for i in 0..3 {
        c.start(i);
    }
    c.await_leader(Duration::from_secs(10));
    c.run(Duration::from_secs(3));
    let log = c.check_prefixes();
    for (_, zxid) in committed {
        assert!(log.iter().any(|(z, _)| *z == zxid), "committed {zxid:?} lost");
    }
    let _ = leader;
}

/// A randomized sweep over whole nodes: crashes with random loss of unsynced writes, restarts,
/// partitions and heals, slow disks; then a calm phase in which every node must converge. Checks
/// that logs are prefixes of each other and that every acknowledged proposal survives.
#[test]
fn randomized_sweep_over_whole_nodes() {
    for seed in sweep_seeds_from(0, 50) {
        sweep_one(seed);
    }
}

fn sweep_one(seed: u64) {
    fn slowish(config: &mut ZabConfig) {
        config.sync_delay = (Duration::ZERO, Duration::from_millis(5));
        config.protocol.snapshot_entries_trigger = 20;
    }
    let n = if seed % 2 == 0 { 3 } else { 5 };
    let mut c = cluster(seed, n, slowish);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let mut acked: BTreeMap<u64, Zxid> = BTreeMap::new();
    let mut k = 0u32;
    for _ in 0..60 {
        match rng.random_range(0..10) {
            0 => c.crash(rng.random_range(0..n), rng.random_range(0..4)),
            1 => c.start_first_down(),
            2 => c.partition(&(0..rng.random_range(1..n)).collect::<Vec<_>>()),
            3 => c.heal(),
            _ => {
                let i = rng.random_range(0..n);
                k += 1;
                c.propose(i, &k.to_le_bytes());
            }
        }
        c.run(Duration::from_millis(rng.random_range(10..300)));
        for i in 0..n {
            for (tag, zxid) in c.committed(i) {
                acked.insert(tag, zxid);
            }
        }
    }
    // Calm phase: everyone up, no partition.
    c.heal();
    c.start_all();
    c.run(Duration::from_secs(10));
    let log = c.check_prefixes();
    for i in 0..n {
        assert_eq!(c.log(i).len(), log.len(), "seed {seed}: node {i} did not converge");
    }
    for (tag, zxid) in &acked {
        assert!(
            log.iter().any(|(z, _)| z == zxid),
            "seed {seed}: acknowledged proposal {tag} at {zxid:?} lost"
        );
    }
    if std::env::var("SIM_STATS").is_ok() {
        println!("seed {seed}: {n} nodes, {} delivered, {} acknowledged", log.len(), acked.len());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (z, p) in &log {
        assert!(seen.insert(p.clone()), "seed {seed}: {p:?} delivered twice (at {z:?})");
    }
}

/// Issue 12: a snapshot must not pause the component. Every application answers its snapshot
/// requests 2 s (virtual) after them — four session timeouts — with the state captured at the
/// request. Before, the component stopped all its actions (heartbeats included) until the
/// answer, and the followers deposed the leader at its first snapshot.
#[test]
fn a_leader_whose_snapshots_take_2s_keeps_leading_and_the_group_converges() {
    let slow = |_| SnapshotAnswer::After(Duration::from_secs(2));
    let mut c = cluster_with_answers(7, 3, snapshot_often, slow);
    let leader = c.await_leader(Duration::from_secs(5));
    let epoch = c.epoch_of(leader);
    for k in 0..60u8 {
        c.propose(leader, &[k]);
        c.run(Duration::from_millis(50));
        assert_eq!(c.leader(), Some(leader), "leadership lost after {k} proposals");
        assert_eq!(c.epoch_of(leader), epoch, "a new epoch after {k} proposals");
    }
    // Stated bound: with snapshots outstanding, every node has every transaction 1 s after the
    // last proposal (deliveries never wait for a snapshot).
    c.run(Duration::from_secs(1));
    let log = c.check_prefixes();
    assert_eq!(log.len(), 60);
    for i in 0..3 {
        assert_eq!(c.log(i), log, "node {i} converged");
    }
    // The late answers were stored.
    c.run(Duration::from_secs(3));
    for i in 0..3 {
        let snapshot = c.disks[i].contents().snapshot;
        assert!(snapshot.is_some_and(|s| s.zxid > Zxid::ZERO), "node {i} stored a snapshot");
    }
    // Recovery from those snapshots and the log after them restores every node's state.
    for i in 0..3 {
        c.crash(i, usize::MAX);
    }
    for i in 0..3 {
        c.start(i);
    }
    c.await_leader(Duration::from_secs(10));
    c.run(Duration::from_secs(2));
    for i in 0..3 {
        assert_eq!(c.log(i), log, "node {i} recovered");
    }
}

/// An answer that arrives after an `InstallSnapshot` voided its request is dropped: storing it
/// would put an older snapshot in place of the installed one.
#[test]
fn a_snapshot_answer_superseded_by_an_install_is_ignored() {
    // Node 0 holds its answers; group 0 prefers the highest member as leader.
    let hold_on_0 = |i| if i == 0 { SnapshotAnswer::Hold } else { SnapshotAnswer::Now };
    let mut c = cluster_with_answers(8, 3, snapshot_often, hold_on_0);
    let leader = c.await_leader(Duration::from_secs(5));
    assert_ne!(leader, 0, "the test needs node 0 to follow");
    for k in 0..8u8 {
        c.propose(leader, &[k]);
        c.run(Duration::from_millis(20));
    }
    c.run(Duration::from_millis(500));
    let held = c.app(0, |a| a.held.clone()).unwrap();
    let (stale, stale_state) = held.first().cloned().expect("node 0 was asked for a snapshot");
    assert!(c.disks[0].contents().snapshot.is_none());
    // Node 0 falls behind the others' snapshots, then comes back: the leader sends its state.
    c.partition(&[0]);
    let leader = c.await_leader_among(&[1, 2], Duration::from_secs(5));
    for k in 8..40u8 {
        c.propose(leader, &[k]);
        c.run(Duration::from_millis(20));
    }
    c.heal();
    c.run(Duration::from_secs(5));
    let log = c.check_prefixes();
    assert_eq!(c.log(0), log, "node 0 caught up");
    let installed = c.disks[0].contents().snapshot.expect("node 0 installed a snapshot");
    assert!(installed.zxid > stale, "installed {:?}, stale {stale:?}", installed.zxid);
    // The stale answer arrives now: nothing changes.
    c.app(0, |a| {
        a.ab.trigger(AbRequest::SnapshotTaken { zxid: stale, state: stale_state.clone() })
    });
    c.run(Duration::from_secs(1));
    assert_eq!(c.disks[0].contents().snapshot.map(|s| s.zxid), Some(installed.zxid));
    // And the group goes on; node 0 recovers from what it stored.
    c.propose(leader, b"after");
    c.run(Duration::from_secs(1));
    let log = c.check_prefixes();
    assert_eq!(log.len(), 41);
    c.crash(0, usize::MAX);
    c.start(0);
    c.run(Duration::from_secs(5));
    assert_eq!(c.log(0), log, "node 0 recovered");
}
