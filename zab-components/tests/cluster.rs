//! Whole clusters of `ZabNode`s in the deterministic in-memory harness: elections, broadcast,
//! crashes, and the three ways of synchronizing, as stories. The fault scenarios of zab.md §11,
//! and the randomized sweep over seeds (F30), are in `scenarios.rs`.

use zab_components::protocol::{Phase, Status, SyncMode, Zxid};
use zab_components::testing::{finish, Sim};

#[test]
fn three_nodes_elect_one_leader() {
    let mut sim = Sim::new(3, 1, |_| {});
    let leader = sim.converge(20_000);
    // FLE elects the best vote: with equal histories, the highest id.
    assert_eq!(leader, 2);
    for i in 0..3 {
        let node = sim.node(i);
        assert_eq!(node.phase(), Phase::Broadcast);
        assert_eq!(node.current_epoch().0, 1);
    }
    finish(&mut sim);
}

#[test]
fn five_nodes_elect_one_leader() {
    let mut sim = Sim::new(5, 2, |_| {});
    let leader = sim.converge(20_000);
    assert_eq!(leader, 4);
    finish(&mut sim);
}

#[test]
fn single_node_cluster_leads_and_commits_alone() {
    let mut sim = Sim::new(1, 3, |_| {});
    assert_eq!(sim.converge(20_000), 0);
    sim.propose_n(0, 5);
    sim.converge(50_000);
    assert_eq!(sim.nodes[0].app.len(), 5);
    finish(&mut sim);
}

#[test]
fn proposals_commit_and_are_delivered_identically_everywhere() {
    let mut sim = Sim::new(5, 4, |c| c.outstanding_proposals_max = 100);
    let leader = sim.converge(20_000);
    for k in 0..40 {
        // On the leader and on followers (forwarded), interleaved.
        let at = if k % 3 == 0 { leader } else { k % 5 };
        sim.propose(at).unwrap();
        if k % 7 == 0 {
            sim.step_random(false, 0);
        }
    }
    assert!(sim.run_until(100_000, |s| s.converged()), "{}", sim.report());
    assert_eq!(sim.global.len(), 40);
    for node in &sim.nodes {
        assert_eq!(node.app, sim.global);
    }
    assert_eq!(sim.acknowledged.len(), 40, "every proposer learned its outcome");
    finish(&mut sim);
}

#[test]
fn leader_crash_elects_a_new_leader_and_loses_no_committed_transaction() {
    let mut sim = Sim::new(3, 5, |_| {});
    let old = sim.converge(20_000);
    sim.propose_n(old, 10);
    sim.converge(50_000);
    let committed = sim.global.clone();
    sim.crash(old);
    let new = sim.converge_live(50_000);
    assert_ne!(new, old);
    assert!(sim.node(new).current_epoch().0 >= 2);
    sim.propose_n(new, 5);
    sim.converge_live(50_000);
    assert_eq!(&sim.nodes[new].app[..10], &committed[..]);
    sim.restart(old);
    assert!(sim.run_until(50_000, |s| s.converged()), "{}", sim.report());
    assert_eq!(sim.nodes[old].app.len(), 15);
    finish(&mut sim);
}

#[test]
fn lagging_follower_syncs_by_diff() {
    let mut sim = Sim::new(3, 6, |_| {});
    let leader = sim.converge(20_000);
    sim.propose_n(leader, 3);
    sim.converge(50_000);
    let lagging = (leader + 1) % 3;
    sim.crash(lagging);
    sim.propose_n(leader, 4);
    sim.converge_live(50_000);
    sim.record_sent = true;
    sim.restart(lagging);
    assert!(sim.run_until(50_000, |s| s.converged()), "{}", sim.report());
    let leader = sim.leader().unwrap();
    let modes = sim.sync_modes(leader, lagging);
    assert!(
        matches!(modes.as_slice(), [SyncMode::Diff { last }] if *last == Zxid::new(1, 3)),
        "expected one DIFF from (1,3), got {modes:?}"
    );
    finish(&mut sim);
}

#[test]
fn divergent_follower_syncs_by_trunc() {
    // zab.md F1/F3: the old leader logs a proposal nobody else sees, is cut off, and the others
    // move on; it must cut that proposal when it rejoins.
    let mut sim = Sim::new(3, 7, |_| {});
    let old = sim.converge(20_000);
    sim.propose_n(old, 3);
    sim.converge(50_000);
    sim.isolate(old, 1_000);
    sim.propose(old).unwrap();
    sim.flush_storage(); // the stray proposal (1,4) is durable on the old leader only
    assert_eq!(sim.node(old).last_zxid(), Zxid::new(1, 4));
    // The others time out, elect among themselves, and commit in a new epoch.
    assert!(sim.run_until(50_000, |s| s.leader().is_some_and(|l| l != old)), "{}", sim.report());
    let new = sim.leader().unwrap();
    sim.propose(new).unwrap();
    assert!(
        sim.run_until(50_000, |s| s.nodes[new].app.len() == 4 && s.leader() == Some(new)),
        "{}",
        sim.report()
    );
    sim.record_sent = true;
    sim.heal();
    assert!(sim.run_until(100_000, |s| s.converged()), "{}", sim.report());
    let leader = sim.leader().unwrap();
    let modes = sim.sync_modes(leader, old);
    assert_eq!(modes.first(), Some(&SyncMode::Trunc { to: Zxid::new(1, 3) }), "{modes:?}");
    assert!(sim.nodes[old].app.iter().all(|(zxid, _)| *zxid != Zxid::new(1, 4)));
    finish(&mut sim);
}

#[test]
fn far_behind_follower_syncs_by_snap() {
    let mut sim = Sim::new(3, 8, |c| {
        c.snapshot_entries_trigger = 4;
        c.snapshot_chunk_bytes_max = 16;
    });
    let leader = sim.converge(20_000);
    sim.propose_n(leader, 2);
    sim.converge(50_000);
    let behind = (leader + 1) % 3;
    sim.crash(behind);
    sim.propose_n(leader, 30);
    sim.converge_live(50_000);
    sim.record_sent = true;
    sim.restart(behind);
    assert!(sim.run_until(100_000, |s| s.converged()), "{}", sim.report());
    let leader = sim.leader().unwrap();
    let modes = sim.sync_modes(leader, behind);
    assert!(matches!(modes.as_slice(), [SyncMode::Snap { .. }]), "{modes:?}");
    let chunks = sim.sent_kinds(leader, behind).iter().filter(|k| **k == "SNAPCHUNK").count();
    assert!(chunks > 1, "the snapshot travels in several chunks");
    assert_eq!(sim.nodes[behind].app.len(), 32);
    finish(&mut sim);
}

#[test]
fn restarted_server_joins_the_running_ensemble_without_a_new_election() {
    // zab.md §5 step 4, F21 (ZOOKEEPER-1732).
    let mut sim = Sim::new(3, 9, |_| {});
    let leader = sim.converge(20_000);
    sim.propose_n(leader, 2);
    sim.converge(50_000);
    let epoch = sim.node(leader).current_epoch();
    let joiner = (leader + 1) % 3;
    sim.crash(joiner);
    sim.restart(joiner);
    assert!(sim.run_until(50_000, |s| s.converged()), "{}", sim.report());
    assert_eq!(sim.leader(), Some(leader));
    assert_eq!(sim.node(leader).current_epoch(), epoch, "no new epoch");
    assert_eq!(
        sim.node(joiner).status(),
        Status::Following { leader: sim.nodes[leader].id, epoch }
    );
    finish(&mut sim);
}

#[test]
fn counter_exhaustion_forces_a_new_epoch() {
    // zab.md F28 (ZOOKEEPER-1277/4883).
    let mut sim = Sim::new(3, 10, |c| c.counter_max = 3);
    let leader = sim.converge(20_000);
    let epoch = sim.node(leader).current_epoch();
    for _ in 0..3 {
        sim.propose(leader).unwrap();
    }
    assert!(sim.propose(leader).is_err());
    assert!(
        sim.run_until(100_000, |s| s.converged()
            && s.node(s.leader().unwrap()).current_epoch() > epoch),
        "{}",
        sim.report()
    );
    let leader = sim.leader().unwrap();
    sim.propose_n(leader, 2);
    sim.converge(50_000);
    assert_eq!(sim.global.len(), 5);
    assert_eq!(sim.global[3].0.epoch.0, epoch.0 + 1);
    finish(&mut sim);
}

#[test]
fn a_preferred_leader_never_wins_over_a_longer_history() {
    use zab_components::protocol::PeerId;
    // The preferred peer (node 0) is down while the others commit; then the leader crashes
    // and node 0 comes back behind: the election is between node 0 and the one node that has
    // the writes, and the writes win over the preference.
    let mut sim = Sim::new(3, 44, |c| c.preferred_leader = Some(PeerId(1)));
    sim.converge(20_000);
    sim.crash(0);
    assert!(sim.run_until(50_000, |s| s.leader().is_some_and(|l| l != 0)), "{}", sim.report());
    let leader = sim.leader().unwrap();
    for _ in 0..3 {
        sim.propose(leader).unwrap();
    }
    assert!(sim.run_until(50_000, |s| s.acknowledged.len() == 3), "{}", sim.report());
    // Both others hold the writes durably (acknowledged by a quorum of two).
    let other = 3 - leader;
    assert!(sim.run_until(50_000, |s| s.nodes[other].app.len() == 3), "{}", sim.report());
    sim.crash(leader);
    sim.restart(0);
    assert!(sim.run_until(50_000, |s| s.leader().is_some()), "{}", sim.report());
    assert_eq!(sim.leader(), Some(other), "the node with the writes leads, not the preferred one");
    sim.restart(leader);
    assert!(sim.run_until(50_000, |s| s.converged()), "{}", sim.report());
    finish(&mut sim);
}
