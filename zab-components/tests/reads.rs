//! Read barriers (`ZabNode::read`): linearizable reads confirmed by a quorum of the leader's
//! epoch, with nothing written to any log. The harness checks every barrier that passes: the
//! state it passes at must hold every transaction acknowledged anywhere before the read was
//! requested (no stale read), and it is a prefix of the one history (no uncommitted read).
//!
//! `SIM_SEEDS=n` sets the number of seeds of the random sweep (default 150), `SIM_SEED=s`
//! replays one.

use std::panic::{catch_unwind, AssertUnwindSafe};

use zab_components::protocol::{Message, ProposeError, Status};
use zab_components::testing::{finish, sweep_seeds, Sim};

fn passed(sim: &Sim) -> u64 {
    sim.counts.get("read passed").copied().unwrap_or(0)
}

fn failed(sim: &Sim) -> u64 {
    sim.counts.get("read failed").copied().unwrap_or(0)
}

fn sent(sim: &Sim, kind: &str) -> u64 {
    sim.counts.get(kind).copied().unwrap_or(0)
}

#[test]
fn a_read_at_the_leader_passes_after_one_round_and_writes_nothing() {
    let mut sim = Sim::new(3, 11, |_| {});
    let leader = sim.converge(50_000);
    sim.propose_n(leader, 5);
    sim.converge(100_000);
    let logged = sim.nodes[leader].disk.log.len();
    let pings = sent(&sim, "READPING");
    sim.read(leader).unwrap();
    assert_eq!(sim.reads_waiting(leader), 1, "a quorum must confirm first");
    assert!(sim.run_until(10_000, |s| s.reads_waiting(leader) == 0), "{}", sim.report());
    assert_eq!(passed(&sim), 1);
    assert_eq!(sent(&sim, "READPING") - pings, 2, "one ping per follower");
    assert_eq!(sim.nodes[leader].disk.log.len(), logged, "a read writes nothing");
    finish(&mut sim);
}

#[test]
fn a_single_node_group_confirms_its_reads_alone() {
    let mut sim = Sim::new(1, 12, |_| {});
    let leader = sim.converge(50_000);
    sim.propose_n(leader, 3);
    sim.converge(100_000);
    sim.read(leader).unwrap();
    assert_eq!(sim.reads_waiting(leader), 0);
    assert_eq!(passed(&sim), 1);
    finish(&mut sim);
}

#[test]
fn reads_requested_together_share_one_round() {
    let mut sim = Sim::new(5, 13, |c| c.outstanding_proposals_max = 100);
    let leader = sim.converge(50_000);
    sim.propose_n(leader, 3);
    sim.converge(100_000);
    sim.record_sent = true;
    for _ in 0..20 {
        sim.read(leader).unwrap();
    }
    assert!(sim.run_until(10_000, |s| s.reads_waiting(leader) == 0), "{}", sim.report());
    assert_eq!(passed(&sim), 20);
    // The first read's round may have left before the others were requested; the others wait
    // for the next round together. At most two rounds (a heartbeat during a round resends its
    // pings to followers that have not answered yet: same round number, not a new round).
    let rounds: std::collections::BTreeSet<u64> = sim
        .sent
        .iter()
        .filter_map(|sent| match sent.msg {
            Message::ReadPing { round, .. } => Some(round),
            _ => None,
        })
        .collect();
    assert!((1..=2).contains(&rounds.len()), "rounds {rounds:?} for 20 reads");
    finish(&mut sim);
}

#[test]
fn a_read_at_a_follower_sees_every_write_acknowledged_before_it() {
    let mut sim = Sim::new(3, 14, |_| {});
    let leader = sim.converge(50_000);
    let follower = (leader + 1) % 3;
    for round in 0..10 {
        // Writes through the other follower, acknowledged; then a read through this one.
        sim.propose_n((leader + 2) % 3, 2);
        sim.converge(100_000);
        sim.read(follower).unwrap();
        assert!(sim.run_until(10_000, |s| s.reads_waiting(follower) == 0), "round {round}");
    }
    assert_eq!(passed(&sim), 10);
    assert_eq!(sent(&sim, "READREQUEST"), 10);
    assert_eq!(sent(&sim, "READRESULT"), 10);
    // The last writes may still be on their way to the reader's disk.
    assert!(sim.run_until(10_000, |s| s.converged()), "{}", sim.report());
    finish(&mut sim);
}

#[test]
fn a_read_waits_for_the_followers_own_deliveries() {
    let mut sim = Sim::new(3, 15, |_| {});
    let leader = sim.converge(50_000);
    let follower = (leader + 1) % 3;
    // The follower's disk stalls: the leader commits with the other follower, and answers the
    // follower's read at a point the follower has not delivered yet.
    sim.nodes[follower].disk_stalled = true;
    commit_acknowledged(&mut sim, leader, 4);
    sim.read(follower).unwrap();
    let answered = |s: &Sim| s.queued(leader, follower).iter().any(|m| is_read_result(m));
    assert!(sim.run_until(10_000, answered), "{}", sim.report());
    assert!(sim.run_until(2_000, |s| s.queued(leader, follower).is_empty()));
    assert_eq!(sim.reads_waiting(follower), 1, "not before its own deliveries");
    assert_eq!(passed(&sim), 0);
    sim.nodes[follower].disk_stalled = false;
    assert!(sim.run_until(10_000, |s| s.reads_waiting(follower) == 0), "{}", sim.report());
    assert_eq!(passed(&sim), 1);
    finish(&mut sim);
}

fn is_read_result(msg: &Message) -> bool {
    matches!(msg, Message::ReadResult { .. })
}

/// Proposes `count` at `at` and runs until they are acknowledged (without waiting for every
/// node to deliver them, as `commit` does).
fn commit_acknowledged(sim: &mut Sim, at: usize, count: usize) {
    let before = sim.acknowledged.len();
    for _ in 0..count {
        sim.propose(at).unwrap();
    }
    let done = |s: &Sim| s.acknowledged.len() == before + count;
    assert!(sim.run_until(50_000, done), "{}", sim.report());
}

#[test]
fn reads_are_refused_without_a_leader() {
    let mut sim = Sim::new(3, 16, |_| {});
    // Nobody leads yet.
    for i in 0..3 {
        assert_eq!(sim.read(i), Err(ProposeError::NoLeader));
    }
    finish(&mut sim);
}

/// The stale-leader story: the leader pauses (no ticks, its links held but not broken), the
/// others elect a new leader and acknowledge a write, then the old leader, still believing it
/// leads, is asked for a read. Its round's pings reach followers of a newer epoch, who do not
/// answer: the read never passes with the old state; it fails when the old leader steps down.
#[test]
fn a_paused_deposed_leader_cannot_serve_a_stale_read() {
    for seed in 0..8 {
        // Five nodes: the followers of the new epoch are enough for a quorum of the old one,
        // were they to answer its round.
        let mut sim = Sim::new(5, 100 + seed, |_| {});
        let old = sim.converge(50_000);
        sim.propose_n(old, 3);
        sim.converge(100_000);
        let others: Vec<usize> = (0..5).filter(|i| *i != old).collect();
        for &j in &others {
            sim.hold(old, j);
            sim.hold(j, old);
        }
        let old_epoch = sim.node(old).current_epoch();
        // The others time the leader out and elect one of them.
        let mut new = None;
        for _ in 0..2_000 {
            sim.tick_only(&others);
            sim.pump_among(&others);
            new = others.iter().copied().find(
                |&i| matches!(sim.node(i).status(), Status::Leading { epoch } if epoch > old_epoch),
            );
            if new.is_some() {
                break;
            }
        }
        let new = new.unwrap_or_else(|| panic!("seed {seed}: no new leader\n{}", sim.report()));
        let before = sim.acknowledged.len();
        sim.propose(new).unwrap();
        for _ in 0..200 {
            sim.pump_among(&others);
            if sim.acknowledged.len() > before {
                break;
            }
            sim.tick_only(&others);
        }
        assert!(sim.acknowledged.len() > before, "seed {seed}: no write acknowledged");
        // The old leader still believes it leads.
        assert!(matches!(sim.node(old).status(), Status::Leading { epoch } if epoch == old_epoch));
        sim.read(old).unwrap();
        assert_eq!(sim.reads_waiting(old), 1);
        // The old leader's messages arrive, then the others' answers, before any tick: the
        // harness fails the run on a stale read.
        for &j in &others {
            sim.release(old, j);
            while sim.deliver_on(old, j) {}
        }
        for &j in &others {
            // Election notifications may be lost: the old leader must not rely on hearing
            // that its followers moved on.
            sim.drop_queued(j, old, |m| matches!(m, Message::Notification(_)));
            sim.release(j, old);
            while sim.deliver_on(j, old) {}
        }
        assert!(sim.failure.is_none(), "seed {seed}: {}", sim.report());
        assert_eq!(passed(&sim), 0, "seed {seed}: the deposed leader served a read");
        sim.heal();
        assert!(sim.run_until(50_000, |s| s.converged()), "seed {seed}: {}", sim.report());
        assert_eq!(sim.reads_waiting(old), 0, "seed {seed}");
        assert_eq!(passed(&sim), 0, "seed {seed}: the deposed leader served a read");
        assert_eq!(failed(&sim), 1, "seed {seed}");
        // Reads work again, everywhere.
        for i in 0..5 {
            sim.read(i).unwrap();
        }
        assert!(sim.run_until(10_000, |s| (0..5).all(|i| s.reads_waiting(i) == 0)));
        assert_eq!(passed(&sim), 5, "seed {seed}");
        finish(&mut sim);
    }
}

/// A round whose ping was lost with a broken session is sent again with the next heartbeat,
/// once the follower is synchronized again; the read then passes.
#[test]
fn a_round_lost_with_a_session_is_sent_again() {
    let mut sim = Sim::new(3, 17, |_| {});
    let leader = sim.converge(50_000);
    sim.propose_n(leader, 2);
    sim.converge(100_000);
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    sim.crash(b);
    sim.read(leader).unwrap();
    // The ping to `a` is lost with its session.
    assert!(sim.queued(leader, a).iter().any(|m| matches!(m, Message::ReadPing { .. })));
    sim.break_link(leader, a);
    assert!(sim.run_until(20_000, |s| s.reads_waiting(leader) == 0), "{}", sim.report());
    // Passed (the leader kept its role while `a` re-registered) or failed (it stepped down
    // meanwhile): either way, never stale, and a new read passes.
    assert_eq!(passed(&sim) + failed(&sim), 1);
    sim.restart(b);
    let leader = sim.converge(50_000);
    sim.read(leader).unwrap();
    assert!(sim.run_until(10_000, |s| s.reads_waiting(leader) == 0), "{}", sim.report());
    finish(&mut sim);
}

/// Reads fail, not hang, when the node leaves its role; they are counted per node.
#[test]
fn reads_fail_when_the_node_leaves_its_role() {
    let mut sim = Sim::new(3, 18, |_| {});
    let leader = sim.converge(50_000);
    let follower = (leader + 1) % 3;
    sim.hold(follower, leader);
    sim.read(follower).unwrap();
    // The follower gives up on its leader (it hears nothing while its link is held the other
    // way too).
    sim.hold(leader, follower);
    let gone = |s: &Sim| s.reads_waiting(follower) == 0;
    for _ in 0..100 {
        sim.tick();
        if gone(&sim) {
            break;
        }
    }
    assert!(gone(&sim), "{}", sim.report());
    assert_eq!(failed(&sim), 1);
    sim.heal();
    assert!(sim.run_until(50_000, |s| s.converged()));
    finish(&mut sim);
}

fn run_seed(seed: u64) -> Result<(u64, u64), String> {
    let n = if seed % 3 == 0 { 5 } else { 3 };
    let mut sim = Sim::new(n, seed, |c| {
        c.snapshot_entries_trigger = if seed % 2 == 0 { 6 } else { 0 };
    });
    sim.read_percent = 4;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        for _ in 0..6_000 {
            sim.step_random(true, 4);
            if sim.failure.is_some() {
                return;
            }
        }
        sim.calm();
        if !sim.run_until(60_000, |s| s.converged()) {
            sim.fail("no convergence after the faults stopped".into());
            return;
        }
        sim.check_converged_state();
        sim.check_properties();
    }));
    let stats = (passed(&sim), failed(&sim));
    sim.verdict(outcome).map(|()| stats)
}

/// Random crashes, restarts, partitions, held links and stalled disks, with reads and writes
/// anywhere: no read passes stale, P1–P13 hold, and many reads pass.
#[test]
fn random_faults_never_give_a_stale_read() {
    let seeds = sweep_seeds(150);
    let (mut ok, mut refused) = (0, 0);
    let mut failures = Vec::new();
    for &seed in &seeds {
        match run_seed(seed) {
            Ok((p, f)) => {
                ok += p;
                refused += f;
            }
            Err(report) => failures.push((seed, report)),
        }
    }
    if let Some((seed, report)) = failures.first() {
        panic!(
            "{} of {} seeds failed (SIM_SEED={seed} replays the first):\n{report}",
            failures.len(),
            seeds.len()
        );
    }
    if seeds.len() >= 20 {
        assert!(ok > 50 * seeds.len() as u64, "only {ok} reads passed over {} seeds", seeds.len());
        assert!(refused > 0, "no read ever failed: the faults never hit one");
    }
}
