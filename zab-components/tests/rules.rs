//! One test per protocol rule: put a node in a known state, feed one event, assert the exact
//! actions. Section numbers refer to `shared/research/zab.md`.

use zab_components::protocol::{
    plan_sync, Action, Config, Entry, Epoch, EpochKind, InitError, Message, Notification, PeerId,
    PeerState, Phase, ProposalFailure, ProposalId, ProposeError, Recovered, Snapshot, Status,
    SyncMode, SyncPlan, Vote, ZabNode, Zxid,
};

const A: PeerId = PeerId(1);
const B: PeerId = PeerId(2);
const C: PeerId = PeerId(3);

fn z(epoch: u64, counter: u64) -> Zxid {
    Zxid::new(epoch, counter)
}

fn entry(epoch: u64, counter: u64) -> Entry {
    Entry::new(z(epoch, counter), format!("t{epoch}.{counter}").into_bytes())
}

fn entries(zxids: &[(u64, u64)]) -> Vec<Entry> {
    zxids.iter().map(|(e, c)| entry(*e, *c)).collect()
}

fn config(id: PeerId) -> Config {
    let mut config = Config::new(id, vec![A, B, C]);
    config.finalize_wait_ticks = 0;
    config.notification_backoff_min_ticks = 2;
    config.notification_backoff_max_ticks = 8;
    config.session_timeout_ticks = 10;
    config.heartbeat_interval_ticks = 3;
    config.sync_timeout_ticks = 20;
    config.snapshot_entries_trigger = 0;
    config
}

/// A looking node in a five-node ensemble, so that one other vote is not a quorum.
fn five_node_looking(id: PeerId) -> ZabNode {
    let mut cfg = config(id);
    cfg.peers = (1..=5).map(PeerId).collect();
    let mut node = ZabNode::new(cfg, recovered(0, 0, vec![])).unwrap();
    node.drain_actions();
    node
}

fn recovered(accepted: u64, current: u64, log: Vec<Entry>) -> Recovered {
    Recovered {
        accepted_epoch: Epoch(accepted),
        current_epoch: Epoch(current),
        snapshot: None,
        log,
    }
}

fn new_node(id: PeerId, recovered: Recovered) -> ZabNode {
    node_with(config(id), recovered)
}

fn node_with(config: Config, recovered: Recovered) -> ZabNode {
    let mut node = ZabNode::new(config, recovered).unwrap();
    node.drain_actions();
    node
}

fn looking(vote: Vote, round: u64) -> Message {
    Message::Notification(Notification {
        vote,
        round,
        state: PeerState::Looking,
        accepted_epoch: vote.epoch,
    })
}

fn decided(vote: Vote, round: u64, state: PeerState) -> Message {
    Message::Notification(Notification { vote, round, state, accepted_epoch: vote.epoch })
}

fn sends(actions: &[Action]) -> Vec<(PeerId, Message)> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send { to, msg } => Some((*to, msg.clone())),
            _ => None,
        })
        .collect()
}

fn without_sends(actions: &[Action]) -> Vec<Action> {
    actions.iter().filter(|a| !matches!(a, Action::Send { .. })).cloned().collect()
}

/// C elected by A's vote, FOLLOWERINFO from A and the new epoch accepted durably:
/// LEADERINFO has gone to A.
fn leader_collecting_epoch_acks(log: Vec<Entry>, accepted: u64, current: u64) -> ZabNode {
    leader_collecting_epoch_acks_with(config(C), log, accepted, current)
}

fn leader_collecting_epoch_acks_with(
    cfg: Config,
    log: Vec<Entry>,
    accepted: u64,
    current: u64,
) -> ZabNode {
    let mut c = node_with(cfg, recovered(accepted, current, log));
    let vote = c.vote();
    c.step(A, looking(vote, 1));
    assert_eq!(c.phase(), Phase::Discovery);
    c.step(A, Message::FollowerInfo { accepted_epoch: Epoch(accepted), attempt: 1 });
    let epoch = Epoch(accepted + 1);
    c.epoch_persisted(EpochKind::Accepted, epoch);
    c.drain_actions();
    c
}

/// C established as leader of epoch `accepted + 1` with A synchronized (B absent).
fn leader_in_broadcast(log: Vec<Entry>, accepted: u64, current: u64) -> ZabNode {
    leader_in_broadcast_with(config(C), log, accepted, current)
}

fn leader_in_broadcast_with(cfg: Config, log: Vec<Entry>, accepted: u64, current: u64) -> ZabNode {
    let mut c = leader_collecting_epoch_acks_with(cfg, log, accepted, current);
    let epoch = Epoch(accepted + 1);
    let last = c.last_zxid();
    c.step(
        A,
        Message::AckEpoch { epoch, current_epoch: Epoch(current), last_zxid: last, fresh: true },
    );
    c.epoch_persisted(EpochKind::Current, epoch);
    c.step(A, Message::AckNewLeader { epoch });
    assert_eq!(c.status(), Status::Leading { epoch });
    c.drain_actions();
    c
}

/// A following C: C's vote arrives, A registers.
fn follower_registered(log: Vec<Entry>, accepted: u64, current: u64) -> ZabNode {
    follower_registered_with(config(A), log, accepted, current)
}

fn follower_registered_with(cfg: Config, log: Vec<Entry>, accepted: u64, current: u64) -> ZabNode {
    let mut a = node_with(cfg, recovered(accepted, current, log));
    let leader_vote = Vote { leader: C, zxid: z(99, 0), epoch: Epoch(current) };
    a.step(C, looking(leader_vote, 1));
    // B agrees, a quorum: decide.
    a.step(B, looking(leader_vote, 1));
    assert_eq!(a.leader(), Some(C));
    a.drain_actions();
    a
}

/// A synchronized with C by an empty DIFF in epoch `epoch`, in broadcast.
fn follower_in_broadcast(log: Vec<Entry>, epoch: u64) -> ZabNode {
    let mut a = follower_registered(log, epoch - 1, epoch - 1);
    let epoch = Epoch(epoch);
    a.step(C, Message::LeaderInfo { epoch, attempt: 1 });
    a.epoch_persisted(EpochKind::Accepted, epoch);
    let last = a.last_zxid();
    a.step(C, Message::SyncStart(SyncMode::Diff { last }));
    a.step(C, Message::NewLeader { epoch });
    a.epoch_persisted(EpochKind::Current, epoch);
    a.step(C, Message::UpToDate { committed: last });
    assert_eq!(a.phase(), Phase::Broadcast);
    a.drain_actions();
    a
}

/// An ACKEPOCH for `epoch` from a follower at `current` epoch whose last zxid is `last`.
fn ack_epoch(epoch: u64, current: u64, last: Zxid, fresh: bool) -> Message {
    Message::AckEpoch { epoch: Epoch(epoch), current_epoch: Epoch(current), last_zxid: last, fresh }
}

/// B, with an empty history, joins C, the established leader of `epoch`: it registers and
/// acks the epoch, and C starts synchronizing it (NEWLEADER sent, not yet acked).
fn empty_b_joins(c: &mut ZabNode, epoch: u64) {
    c.step(B, Message::FollowerInfo { accepted_epoch: Epoch(0), attempt: 1 });
    c.step(B, ack_epoch(epoch, 0, Zxid::ZERO, true));
}

/// `ticks` ticks of C, each answered by A's PONG (A stays alive, B is silent).
fn ticks_answered_by_a(c: &mut ZabNode, ticks: usize) {
    for _ in 0..ticks {
        c.tick();
        c.step(A, Message::Pong);
    }
}

// ----- §5: fast leader election -------------------------------------------------------------

/// §5: votes are ordered by (currentEpoch, last zxid, server id).
#[test]
fn vote_ordering_is_epoch_then_zxid_then_id() {
    let vote = |leader, zxid, epoch| Vote { leader: PeerId(leader), zxid, epoch: Epoch(epoch) };
    assert!(
        vote(1, z(1, 1), 2) > vote(3, z(1, 9), 1),
        "a later currentEpoch wins over a longer log"
    );
    assert!(vote(1, z(1, 5), 1) > vote(3, z(1, 4), 1), "then the later zxid");
    assert!(vote(3, z(1, 5), 1) > vote(1, z(1, 5), 1), "then the higher id");
}

/// §5 step 1: a node starts looking by voting for itself and telling every peer.
#[test]
fn a_starting_node_votes_for_itself_and_notifies_every_peer() {
    let mut node = ZabNode::new(config(B), recovered(2, 2, entries(&[(2, 1)]))).unwrap();
    let own = Vote { leader: B, zxid: z(2, 1), epoch: Epoch(2) };
    let expected = Message::Notification(Notification {
        vote: own,
        round: 1,
        state: PeerState::Looking,
        accepted_epoch: Epoch(2),
    });
    assert_eq!(sends(&node.drain_actions()), vec![(A, expected.clone()), (C, expected)]);
}

/// §5 step 3: a better vote in the same round is adopted and broadcast.
#[test]
fn a_looking_node_adopts_a_better_vote_and_rebroadcasts_it() {
    let mut a = five_node_looking(A);
    let better = Vote { leader: B, zxid: z(1, 3), epoch: Epoch(1) };
    a.step(B, looking(better, 1));
    assert_eq!(a.vote(), better);
    let sent = sends(&a.drain_actions());
    assert_eq!(sent.len(), 4, "to every other peer");
    assert!(sent.iter().all(|(_, msg)| matches!(
        msg,
        Message::Notification(n) if n.vote == better && n.round == 1 && n.state == PeerState::Looking
    )));
}

/// §5 step 3: a notification from a lower round is answered with our vote.
#[test]
fn a_notification_from_a_lower_round_is_answered_with_our_vote() {
    let mut a = five_node_looking(A);
    a.step(B, looking(Vote { leader: C, zxid: z(0, 0), epoch: Epoch(0) }, 2));
    a.drain_actions();
    assert_eq!(a.round(), 2);
    // Now in round 2; a round-1 notification gets our round-2 vote back, and nothing else.
    a.step(C, looking(Vote { leader: C, zxid: z(0, 0), epoch: Epoch(0) }, 1));
    let sent = sends(&a.drain_actions());
    assert_eq!(sent.len(), 1);
    assert!(matches!(&sent[0], (to, Message::Notification(n)) if *to == C && n.round == 2));
}

/// §5 step 3: a worse vote of our round is answered with ours, to its sender only (it may
/// have missed our notification); an equal vote gets no answer.
#[test]
fn a_worse_vote_of_our_round_is_answered_with_ours() {
    let mut c = five_node_looking(C);
    let ours = c.vote();
    c.step(A, looking(Vote { leader: A, zxid: z(0, 0), epoch: Epoch(0) }, 1));
    assert_eq!(c.vote(), ours, "kept");
    let sent = sends(&c.drain_actions());
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        matches!(&sent[0], (to, Message::Notification(n)) if *to == A && n.vote == ours && n.round == 1)
    );
    c.step(B, looking(ours, 1));
    assert!(sends(&c.drain_actions()).is_empty(), "nothing to tell a peer that agrees");
}

/// §5 step 3: with a quorum on our vote we wait `finalize_wait_ticks` for a better one.
#[test]
fn the_decision_waits_for_the_finalize_wait() {
    let mut cfg = config(C);
    cfg.finalize_wait_ticks = 2;
    let mut c = ZabNode::new(cfg, recovered(0, 0, vec![])).unwrap();
    let vote = c.vote();
    c.step(A, looking(vote, 1));
    assert_eq!(c.phase(), Phase::Election, "quorum reached, still waiting");
    c.tick();
    assert_eq!(c.phase(), Phase::Election);
    c.tick();
    assert_eq!(c.phase(), Phase::Discovery, "decided LEADING after the wait");
    assert_eq!(c.leader(), Some(C));
}

/// §5 step 2: notifications are resent while the election lasts, with growing intervals.
#[test]
fn notifications_are_resent_with_exponential_backoff() {
    let mut a = new_node(A, recovered(0, 0, vec![]));
    let mut resend_ticks = Vec::new();
    for tick in 1..=40 {
        a.tick();
        if !sends(&a.drain_actions()).is_empty() {
            resend_ticks.push(tick);
        }
    }
    let gaps: Vec<u64> = resend_ticks.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(resend_ticks.len() >= 4, "{resend_ticks:?}");
    assert!(gaps.windows(2).all(|w| w[1] >= w[0] || w[1] >= 8), "{gaps:?}");
    assert!(gaps.iter().all(|gap| *gap <= 8 + 2), "capped at the max (+jitter): {gaps:?}");
}

/// §5 step 5: a FOLLOWING node answers a LOOKING one with its decided vote and state.
#[test]
fn a_following_node_answers_a_looking_peer_with_its_vote() {
    let mut a = follower_in_broadcast(vec![], 1);
    a.step(B, looking(Vote { leader: B, zxid: z(0, 0), epoch: Epoch(0) }, 1));
    let sent = sends(&a.drain_actions());
    assert!(matches!(
        &sent[..],
        [(to, Message::Notification(n))]
            if *to == B && n.state == PeerState::Following && n.vote.leader == C
    ));
}

/// §5: a follower leaves when its leader starts a new election (a later round), not when a
/// notification the leader sent before deciding, of the round we decided in, arrives late.
#[test]
fn a_follower_leaves_only_on_a_new_election_of_its_leader() {
    let mut a = follower_in_broadcast(vec![], 1);
    let leader_vote = Vote { leader: C, zxid: z(99, 0), epoch: Epoch(0) };
    a.step(C, looking(leader_vote, a.round()));
    assert_eq!(a.phase(), Phase::Broadcast, "a stale notification of our round");
    assert_eq!(a.leader(), Some(C));
    let sent = sends(&a.drain_actions());
    assert!(
        matches!(&sent[..], [(to, Message::Notification(n))] if *to == C && n.state == PeerState::Following),
        "answered with our decided vote: {sent:?}"
    );
    a.step(C, looking(leader_vote, a.round() + 1));
    assert_eq!(a.phase(), Phase::Election, "the leader runs a new election");
}

/// §5 step 4 (ZOOKEEPER-1732): a restarted node follows the established leader once a quorum
/// reports it and the leader itself says LEADING, without a new election.
#[test]
fn a_late_node_joins_the_established_leader_from_out_of_election_votes() {
    let mut b = new_node(B, recovered(1, 1, vec![]));
    let established = Vote { leader: C, zxid: z(1, 0), epoch: Epoch(4) };
    b.step(A, decided(established, 7, PeerState::Following));
    assert_eq!(b.phase(), Phase::Election, "a follower's word is not enough");
    b.step(C, decided(established, 7, PeerState::Leading));
    assert_eq!(b.leader(), Some(C));
    assert_eq!(b.round(), 7);
    assert_eq!(
        sends(&b.drain_actions()),
        vec![(C, Message::FollowerInfo { accepted_epoch: Epoch(1), attempt: 1 })]
    );
}

/// §5 step 4: checkLeader — followers alone cannot make us follow a leader that never said
/// it leads.
#[test]
fn out_of_election_votes_need_the_leader_to_confirm() {
    let mut b = new_node(B, recovered(0, 0, vec![]));
    let claimed = Vote { leader: C, zxid: z(1, 0), epoch: Epoch(4) };
    b.step(A, decided(claimed, 7, PeerState::Following));
    b.step(C, decided(claimed, 7, PeerState::Following));
    assert_eq!(b.phase(), Phase::Election);
}

// ----- §3 Phase 1, §4.1: discovery ----------------------------------------------------------

/// §4.1 step 3: the leader waits for FOLLOWERINFO from a quorum, picks an epoch above every
/// acceptedEpoch, and persists it as its own acceptedEpoch before sending LEADERINFO.
#[test]
fn leader_persists_accepted_epoch_before_sending_leaderinfo() {
    let mut c = new_node(C, recovered(2, 2, vec![]));
    let vote = c.vote();
    c.step(A, looking(vote, 1));
    c.drain_actions();
    c.step(A, Message::FollowerInfo { accepted_epoch: Epoch(5), attempt: 1 });
    assert_eq!(
        c.drain_actions(),
        vec![Action::PersistEpoch { kind: EpochKind::Accepted, epoch: Epoch(6) }],
        "epoch = max(acceptedEpoch) + 1; nothing is sent before it is durable"
    );
    c.epoch_persisted(EpochKind::Accepted, Epoch(6));
    assert_eq!(
        sends(&c.drain_actions()),
        vec![(A, Message::LeaderInfo { epoch: Epoch(6), attempt: 1 })]
    );
}

/// §3 step 1.3: a follower makes a new epoch durable before answering ACKEPOCH.
#[test]
fn follower_persists_accepted_epoch_before_sending_ackepoch() {
    let mut a = follower_registered(entries(&[(1, 1), (1, 2)]), 1, 1);
    a.step(C, Message::LeaderInfo { epoch: Epoch(2), attempt: 1 });
    assert_eq!(
        a.drain_actions(),
        vec![Action::PersistEpoch { kind: EpochKind::Accepted, epoch: Epoch(2) }]
    );
    a.epoch_persisted(EpochKind::Accepted, Epoch(2));
    assert_eq!(sends(&a.drain_actions()), vec![(C, ack_epoch(2, 1, z(1, 2), true))]);
}

/// §3 step 1.3: a LEADERINFO below our acceptedEpoch sends us back to election.
#[test]
fn follower_rejects_an_epoch_below_its_accepted_epoch() {
    let mut a = follower_registered(vec![], 5, 3);
    a.step(C, Message::LeaderInfo { epoch: Epoch(4), attempt: 1 });
    assert_eq!(a.phase(), Phase::Election);
    assert!(!a.drain_actions().iter().any(|a| matches!(a, Action::PersistEpoch { .. })));
}

/// §4.1 step 4: an epoch accepted before is acknowledged as "not fresh" (ZooKeeper's -1).
#[test]
fn an_already_accepted_epoch_is_acked_as_not_fresh() {
    let mut a = follower_registered(vec![], 4, 3);
    a.step(C, Message::LeaderInfo { epoch: Epoch(4), attempt: 1 });
    let actions = a.drain_actions();
    assert_eq!(actions, vec![Action::Send { to: C, msg: ack_epoch(4, 3, Zxid::ZERO, false) }]);
}

/// §4.1 step 5: a non-fresh ACKEPOCH does not count towards the epoch's quorum.
#[test]
fn a_non_fresh_ackepoch_does_not_count_towards_the_quorum() {
    let mut c = leader_collecting_epoch_acks(vec![], 0, 0);
    c.step(A, ack_epoch(1, 0, Zxid::ZERO, false));
    assert!(c.drain_actions().is_empty(), "no currentEpoch write without a fresh quorum");
    assert_eq!(c.phase(), Phase::Discovery);
}

/// §4.1 step 5: the leader aborts when a follower's (currentEpoch, last zxid) is ahead of its own.
#[test]
fn leader_aborts_when_a_follower_is_ahead() {
    let mut c = leader_collecting_epoch_acks(entries(&[(1, 1)]), 1, 1);
    c.step(A, ack_epoch(2, 1, z(1, 2), true));
    assert_eq!(c.phase(), Phase::Election);
    assert!(!c.drain_actions().iter().any(|a| matches!(a, Action::PersistEpoch { .. })));
}

/// §4.1 step 5 + ZOOKEEPER-4643: with a quorum of fresh acks, the leader writes currentEpoch
/// only once its own history is durable.
#[test]
fn leader_makes_its_history_durable_before_current_epoch() {
    let mut c = leader_collecting_epoch_acks(vec![], 0, 0);
    c.step(A, ack_epoch(1, 0, Zxid::ZERO, true));
    assert_eq!(
        c.drain_actions(),
        vec![Action::PersistEpoch { kind: EpochKind::Current, epoch: Epoch(1) }]
    );
    // NEWLEADER goes out only once currentEpoch is durable.
    c.epoch_persisted(EpochKind::Current, Epoch(1));
    assert_eq!(
        sends(&c.drain_actions()),
        vec![
            (A, Message::SyncStart(SyncMode::Diff { last: Zxid::ZERO })),
            (A, Message::NewLeader { epoch: Epoch(1) })
        ]
    );
}

// ----- §4.2: synchronization ----------------------------------------------------------------

fn sync_leader(leader_log: Vec<Entry>, follower_last: Zxid, follower_current: u64) -> Vec<Message> {
    let mut c = leader_collecting_epoch_acks(leader_log, 3, 3);
    c.step(A, ack_epoch(4, follower_current, follower_last, true));
    c.epoch_persisted(EpochKind::Current, Epoch(4));
    sends(&c.drain_actions()).into_iter().map(|(_, msg)| msg).collect()
}

/// Asserts what a leader with log (1,1), (1,2), (3,1) sends a follower whose last zxid is
/// `follower_last` and current epoch `follower_current`: a SYNCSTART with `mode`, then
/// `sent_entries`, then NEWLEADER.
fn assert_synced_with(
    follower_last: Zxid,
    follower_current: u64,
    mode: SyncMode,
    sent_entries: &[(u64, u64)],
) {
    let log = entries(&[(1, 1), (1, 2), (3, 1)]);
    let sent = sync_leader(log, follower_last, follower_current);
    let expected = vec![
        Message::SyncStart(mode),
        Message::SyncEntries { entries: entries(sent_entries) },
        Message::NewLeader { epoch: Epoch(4) },
    ];
    assert_eq!(sent, expected);
}

/// §4.2 table "in window": a follower whose last zxid the leader has gets DIFF and the rest.
#[test]
fn leader_sends_diff_to_a_follower_that_is_a_prefix() {
    assert_synced_with(z(1, 1), 1, SyncMode::Diff { last: z(1, 1) }, &[(1, 2), (3, 1)]);
}

/// §4.2, ZOOKEEPER-1154, F3: a follower with uncommitted transactions of an older epoch is
/// truncated to the last common zxid, then gets the leader's later history.
#[test]
fn leader_sends_trunc_when_the_follower_has_uncommitted_txns_of_an_older_epoch() {
    assert_synced_with(z(1, 4), 1, SyncMode::Trunc { to: z(1, 2) }, &[(3, 1)]);
}

/// §4.2, F18: a follower that diverged in an epoch the leader never saw is never truncated
/// across the epoch boundary: it gets SNAP.
#[test]
fn snap_instead_of_trunc_across_an_epoch_boundary() {
    let snap = SyncMode::Snap { zxid: Zxid::ZERO, state_bytes: None };
    assert_synced_with(z(2, 5), 2, snap, &[(1, 1), (1, 2), (3, 1)]);
}

/// §4.2 "otherwise": a follower behind the leader's snapshot gets the snapshot, in chunks,
/// then the log after it.
#[test]
fn leader_sends_snap_in_chunks_to_a_follower_behind_its_snapshot() {
    let mut c = leader_snapping_a();
    let (actions, reads) = answering_snapshot_reads(&mut c, b"0123456789", |bytes| bytes);
    // The state is read back from storage a chunk at a time, not kept by the node.
    assert_eq!(reads, [(z(1, 2), 0, 4), (z(1, 2), 4, 4), (z(1, 2), 8, 2)]);
    let sent: Vec<Message> = sends(&actions).into_iter().map(|(_, m)| m).collect();
    let tail = &sent[sent.len() - 6..];
    assert_eq!(
        tail,
        &[
            Message::SyncStart(SyncMode::Snap { zxid: z(1, 2), state_bytes: Some(10) }),
            Message::SnapChunk { bytes: b"0123".to_vec() },
            Message::SnapChunk { bytes: b"4567".to_vec() },
            Message::SnapChunk { bytes: b"89".to_vec() },
            Message::SyncEntries { entries: entries(&[(3, 1)]) },
            Message::NewLeader { epoch: Epoch(4) },
        ]
    );
}

/// C, leader of epoch 4 with the snapshot (1,2) "0123456789" (sent in chunks of 4 bytes) and
/// the log (3,1), once A at (1,1) acked the epoch: C is about to SNAP A. Its actions are not
/// drained.
fn leader_snapping_a() -> ZabNode {
    let mut cfg = config(C);
    cfg.snapshot_chunk_bytes_max = 4;
    let snapshot = Snapshot { zxid: z(1, 2), state: b"0123456789".to_vec() };
    let rec = Recovered {
        accepted_epoch: Epoch(3),
        current_epoch: Epoch(3),
        snapshot: Some(snapshot),
        log: entries(&[(3, 1)]),
    };
    let mut c = ZabNode::new(cfg, rec).unwrap();
    let vote = c.vote();
    c.step(A, looking(vote, 1));
    c.step(A, Message::FollowerInfo { accepted_epoch: Epoch(1), attempt: 1 });
    c.epoch_persisted(EpochKind::Accepted, Epoch(4));
    c.step(A, ack_epoch(4, 1, z(1, 1), true));
    c.epoch_persisted(EpochKind::Current, Epoch(4));
    c
}

/// Drains `node`'s actions, answering each `ReadSnapshot` from `state` (passed through
/// `answer`, which may spoil it), until no read is left; returns every action and the reads
/// asked for (zxid, offset, bytes_max).
fn answering_snapshot_reads(
    node: &mut ZabNode,
    state: &[u8],
    answer: impl Fn(Vec<u8>) -> Vec<u8>,
) -> (Vec<Action>, Vec<(Zxid, u64, usize)>) {
    let (mut all, mut reads) = (Vec::new(), Vec::new());
    loop {
        let actions = node.drain_actions();
        if actions.is_empty() {
            return (all, reads);
        }
        for action in &actions {
            if let Action::ReadSnapshot { peer, zxid, offset, bytes_max } = *action {
                reads.push((zxid, offset, bytes_max));
                let start = (offset as usize).min(state.len());
                let end = (start + bytes_max).min(state.len());
                node.snapshot_read(peer, zxid, offset, answer(state[start..end].to_vec()));
            }
        }
        all.extend(actions);
    }
}

/// A leader whose SNAP cannot be read back (the snapshot was replaced, the disk failed, the
/// file is corrupt: no bytes) drops that learner instead of sending it part of a snapshot and
/// NEWLEADER; a stale answer (for an offset the stream is not at) changes nothing.
#[test]
fn a_snap_that_cannot_be_read_back_drops_the_learner() {
    let mut c = leader_snapping_a();
    // A stale answer first: ignored.
    c.snapshot_read(A, z(1, 2), 8, b"89".to_vec());
    // The second chunk fails.
    let failed = std::cell::Cell::new(0);
    let (actions, reads) = answering_snapshot_reads(&mut c, b"0123456789", |bytes| {
        failed.set(failed.get() + 1);
        if failed.get() == 2 {
            Vec::new()
        } else {
            bytes
        }
    });
    assert_eq!(reads, [(z(1, 2), 0, 4), (z(1, 2), 4, 4)], "no read after the failed one");
    let sent: Vec<Message> = sends(&actions).into_iter().map(|(_, m)| m).collect();
    let chunks: Vec<&Message> =
        sent.iter().filter(|m| matches!(m, Message::SnapChunk { .. })).collect();
    assert_eq!(chunks, [&Message::SnapChunk { bytes: b"0123".to_vec() }]);
    assert!(!sent.iter().any(|m| matches!(m, Message::NewLeader { .. })), "{sent:?}");
    // The learner is gone: a late answer for it changes nothing.
    c.snapshot_read(A, z(1, 2), 4, b"4567".to_vec());
    assert!(sends(&c.drain_actions()).is_empty());
}

/// The actions but the SYNCACKs a follower sends for flow control.
fn without_sync_acks(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|action| !matches!(action, Action::Send { msg: Message::SyncAck { .. }, .. }))
        .collect()
}

/// §4.2 follower side (ZOOKEEPER-3911/4643/4646/4785): synced transactions are made durable,
/// THEN currentEpoch is written, THEN NEWLEADER is acknowledged.
#[test]
fn follower_persists_history_then_current_epoch_then_acks_newleader() {
    let mut a = follower_registered(entries(&[(1, 1)]), 1, 1);
    a.step(C, Message::LeaderInfo { epoch: Epoch(2), attempt: 1 });
    a.epoch_persisted(EpochKind::Accepted, Epoch(2));
    a.drain_actions();
    a.step(C, Message::SyncStart(SyncMode::Diff { last: z(1, 1) }));
    a.step(C, Message::SyncEntries { entries: entries(&[(1, 2), (1, 3)]) });
    a.step(C, Message::NewLeader { epoch: Epoch(2) });
    assert_eq!(
        without_sync_acks(a.drain_actions()),
        vec![Action::Persist { entries: entries(&[(1, 2), (1, 3)]) }]
    );
    a.persisted(z(1, 3));
    assert_eq!(
        a.drain_actions(),
        vec![Action::PersistEpoch { kind: EpochKind::Current, epoch: Epoch(2) }]
    );
    a.epoch_persisted(EpochKind::Current, Epoch(2));
    assert_eq!(
        a.drain_actions(),
        vec![Action::Send { to: C, msg: Message::AckNewLeader { epoch: Epoch(2) } }]
    );
}

/// §4.2 TRUNC on the follower: the divergent suffix is cut before the new history is written.
#[test]
fn follower_truncates_to_the_common_zxid_before_appending() {
    let mut a = follower_registered(entries(&[(1, 1), (1, 2), (1, 3)]), 1, 1);
    a.step(C, Message::LeaderInfo { epoch: Epoch(3), attempt: 1 });
    a.epoch_persisted(EpochKind::Accepted, Epoch(3));
    a.drain_actions();
    a.step(C, Message::SyncStart(SyncMode::Trunc { to: z(1, 1) }));
    a.step(C, Message::SyncEntries { entries: entries(&[(2, 1)]) });
    assert_eq!(
        without_sync_acks(a.drain_actions()),
        vec![Action::Truncate { to: z(1, 1) }, Action::Persist { entries: entries(&[(2, 1)]) }]
    );
    assert_eq!(a.last_zxid(), z(2, 1));
}

/// ZOOKEEPER-3642: a SNAP is installed as one atomic action (state and log together) when
/// NEWLEADER arrives, never piecemeal.
#[test]
fn snap_is_installed_atomically_with_the_history_after_it() {
    let mut a = follower_registered(entries(&[(1, 1)]), 1, 1);
    a.step(C, Message::LeaderInfo { epoch: Epoch(3), attempt: 1 });
    a.epoch_persisted(EpochKind::Accepted, Epoch(3));
    a.drain_actions();
    a.step(C, Message::SyncStart(SyncMode::Snap { zxid: z(2, 4), state_bytes: Some(3) }));
    a.step(C, Message::SnapChunk { bytes: b"ab".to_vec() });
    a.step(C, Message::SnapChunk { bytes: b"c".to_vec() });
    a.step(C, Message::SyncEntries { entries: entries(&[(2, 5)]) });
    assert!(
        without_sync_acks(a.drain_actions()).is_empty(),
        "nothing but flow-control acks before NEWLEADER"
    );
    a.step(C, Message::NewLeader { epoch: Epoch(3) });
    assert_eq!(
        a.drain_actions(),
        vec![Action::InstallSnapshot {
            zxid: z(2, 4),
            state: Some(b"abc".to_vec()),
            entries: entries(&[(2, 5)])
        }]
    );
    a.persisted(z(2, 5));
    assert_eq!(
        a.drain_actions(),
        vec![Action::PersistEpoch { kind: EpochKind::Current, epoch: Epoch(3) }]
    );
}

/// TLA+ issue 1 (§3.6): proposals made after the leader sent NEWLEADER to a joiner, before its
/// ack, are sent to the joiner too.
#[test]
fn proposals_made_while_a_follower_syncs_reach_it() {
    let mut c = leader_in_broadcast(vec![], 0, 0);
    empty_b_joins(&mut c, 1);
    c.drain_actions();
    c.propose(b"x".to_vec()).unwrap();
    let sent = sends(&c.drain_actions());
    let proposal = Message::Proposal { entries: vec![Entry::new(z(1, 1), b"x".to_vec())] };
    assert!(sent.contains(&(B, proposal.clone())), "{sent:?}");
    assert!(sent.contains(&(A, proposal)));
}

/// TLA+ issue 3 (§3.6): UPTODATE carries the leader's latest commit, not the NEWLEADER zxid.
#[test]
fn uptodate_carries_the_latest_commit() {
    let mut c = leader_in_broadcast(vec![], 0, 0);
    empty_b_joins(&mut c, 1);
    c.propose(b"x".to_vec()).unwrap();
    c.persisted(z(1, 1));
    c.step(A, Message::Ack { zxid: z(1, 1) });
    assert_eq!(c.committed_zxid(), z(1, 1));
    c.drain_actions();
    c.step(B, Message::AckNewLeader { epoch: Epoch(1) });
    assert_eq!(sends(&c.drain_actions()), vec![(B, Message::UpToDate { committed: z(1, 1) })]);
}

/// TLA+ issue 2 (§3.6): a PROPOSAL for a zxid already in the synced history is ignored.
#[test]
fn a_duplicate_proposal_from_the_synced_history_is_ignored() {
    let mut a = follower_in_broadcast(entries(&[(1, 1)]), 2);
    a.step(C, Message::Proposal { entries: entries(&[(1, 1), (2, 1)]) });
    assert_eq!(a.drain_actions(), vec![Action::Persist { entries: entries(&[(2, 1)]) }]);
    assert_eq!(a.protocol_violations(), 0);
}

/// F8 (ZOOKEEPER-4394): a COMMIT arriving after the NEWLEADER ack but before UPTODATE is
/// applied once.
#[test]
fn a_commit_before_uptodate_is_applied_once() {
    let mut a = follower_registered(vec![], 0, 0);
    a.step(C, Message::LeaderInfo { epoch: Epoch(1), attempt: 1 });
    a.epoch_persisted(EpochKind::Accepted, Epoch(1));
    a.step(C, Message::SyncStart(SyncMode::Diff { last: Zxid::ZERO }));
    a.step(C, Message::NewLeader { epoch: Epoch(1) });
    a.epoch_persisted(EpochKind::Current, Epoch(1));
    a.step(C, Message::Proposal { entries: entries(&[(1, 1)]) });
    a.persisted(z(1, 1));
    a.drain_actions();
    a.step(C, Message::Commit { zxid: z(1, 1) });
    a.step(C, Message::UpToDate { committed: z(1, 1) });
    let delivered: Vec<Action> =
        a.drain_actions().into_iter().filter(|a| matches!(a, Action::Deliver { .. })).collect();
    assert_eq!(delivered, vec![Action::Deliver { zxid: z(1, 1), payload: b"t1.1".to_vec() }]);
}

// ----- §3 Phase 3, §4.3: broadcast ----------------------------------------------------------

/// §3 step 3.3: the leader commits only once a quorum (itself included) acknowledged.
#[test]
fn commit_only_after_quorum_ack() {
    let mut c = leader_in_broadcast(vec![], 0, 0);
    c.propose(b"x".to_vec()).unwrap();
    c.drain_actions();
    c.persisted(z(1, 1));
    assert_eq!(c.committed_zxid(), Zxid::ZERO, "the leader alone is not a quorum of three");
    assert!(c.drain_actions().is_empty());
    c.step(A, Message::Ack { zxid: z(1, 1) });
    assert_eq!(
        c.drain_actions(),
        vec![
            Action::Send { to: A, msg: Message::Commit { zxid: z(1, 1) } },
            Action::Deliver { zxid: z(1, 1), payload: b"x".to_vec() },
            Action::ProposalCommitted { id: ProposalId(1), zxid: z(1, 1) },
        ]
    );
}

/// §4.3: the leader's own ack counts only once its own write completed.
#[test]
fn the_leader_counts_itself_only_after_its_persist_completed() {
    let mut c = leader_in_broadcast(vec![], 0, 0);
    c.propose(b"x".to_vec()).unwrap();
    c.step(A, Message::Ack { zxid: z(1, 1) });
    assert_eq!(c.committed_zxid(), Zxid::ZERO);
    c.persisted(z(1, 1));
    assert_eq!(c.committed_zxid(), z(1, 1));
}

/// §3 step 3.2: a follower acknowledges a proposal only after the write covering it completed.
#[test]
fn ack_only_after_persisted() {
    let mut a = follower_in_broadcast(vec![], 1);
    a.step(C, Message::Proposal { entries: entries(&[(1, 1), (1, 2)]) });
    assert_eq!(a.drain_actions(), vec![Action::Persist { entries: entries(&[(1, 1), (1, 2)]) }]);
    a.persisted(z(1, 2));
    assert_eq!(
        a.drain_actions(),
        vec![Action::Send { to: C, msg: Message::Ack { zxid: z(1, 2) } }]
    );
}

/// §3 step 3.4: commits are delivered strictly in zxid order, each once, and only once durable.
#[test]
fn commits_are_delivered_in_zxid_order() {
    let mut a = follower_in_broadcast(vec![], 1);
    a.step(C, Message::Proposal { entries: entries(&[(1, 1), (1, 2)]) });
    a.step(C, Message::Proposal { entries: entries(&[(1, 3)]) });
    a.step(C, Message::Commit { zxid: z(1, 3) });
    a.drain_actions();
    a.persisted(z(1, 2));
    let delivered: Vec<Zxid> = without_sends(&a.drain_actions())
        .into_iter()
        .filter_map(|a| match a {
            Action::Deliver { zxid, .. } => Some(zxid),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec![z(1, 1), z(1, 2)], "(1,3) is committed but not durable yet");
    a.persisted(z(1, 3));
    assert!(without_sends(&a.drain_actions())
        .contains(&Action::Deliver { zxid: z(1, 3), payload: b"t1.3".to_vec() }));
}

/// ZOOKEEPER-4925: a proposal that leaves a gap is refused (and the follower re-syncs).
#[test]
fn a_proposal_with_a_gap_is_refused() {
    let mut a = follower_in_broadcast(vec![], 1);
    a.step(C, Message::Proposal { entries: entries(&[(1, 2)]) });
    assert_eq!(a.protocol_violations(), 1);
    assert_eq!(a.phase(), Phase::Election);
    assert_eq!(a.last_zxid(), Zxid::ZERO);
}

/// ZOOKEEPER-4685: a proposal ack must never precede the NEWLEADER ack.
#[test]
fn an_ack_before_the_newleader_ack_is_a_violation() {
    let mut c = leader_in_broadcast(vec![], 0, 0);
    empty_b_joins(&mut c, 1);
    c.step(B, Message::Ack { zxid: Zxid::ZERO });
    assert_eq!(c.protocol_violations(), 1);
}

/// §4.3 group commit: proposals made between two inputs travel as one write and one PROPOSAL.
#[test]
fn proposals_are_batched() {
    let mut c = leader_in_broadcast(vec![], 0, 0);
    for payload in [b"x", b"y", b"z"] {
        c.propose(payload.to_vec()).unwrap();
    }
    let actions = without_sends(&c.drain_actions());
    let persists: Vec<&Action> =
        actions.iter().filter(|a| matches!(a, Action::Persist { .. })).collect();
    assert_eq!(persists.len(), 1);
    assert!(matches!(persists[0], Action::Persist { entries } if entries.len() == 3));
}

/// §4.3: the number of uncommitted proposals is bounded; a refusal changes nothing.
#[test]
fn outstanding_proposals_are_bounded_and_a_refusal_changes_nothing() {
    let mut cfg = config(C);
    cfg.outstanding_proposals_max = 2;
    let mut c = leader_in_broadcast_with(cfg, vec![], 0, 0);
    c.propose(b"1".to_vec()).unwrap();
    c.propose(b"2".to_vec()).unwrap();
    let before = c.last_zxid();
    assert_eq!(
        c.propose(b"3".to_vec()),
        Err(ProposeError::TooManyOutstanding { outstanding_max: 2 })
    );
    assert_eq!(c.last_zxid(), before);
}

/// Errors leave state unchanged: proposing without an established leader is refused.
#[test]
fn proposing_without_a_leader_is_refused_and_changes_nothing() {
    let mut a = new_node(A, recovered(0, 0, vec![]));
    assert_eq!(a.propose(b"x".to_vec()), Err(ProposeError::NoLeader));
    assert!(a.drain_actions().is_empty());
    assert_eq!(a.last_zxid(), Zxid::ZERO);
}

/// §4.3: a follower forwards proposals to the leader and reports the zxid it gets.
#[test]
fn a_follower_forwards_proposals_to_the_leader() {
    let mut a = follower_in_broadcast(vec![], 1);
    let id = a.propose(b"x".to_vec()).unwrap();
    assert_eq!(
        a.drain_actions(),
        vec![Action::Send { to: C, msg: Message::Forward { id, payload: b"x".to_vec() } }]
    );
    a.step(C, Message::ForwardResult { id, result: Ok(z(1, 1)) });
    assert_eq!(a.drain_actions(), vec![Action::ProposalAssigned { id, zxid: z(1, 1) }]);
}

/// §4.3: the leader proposes a forwarded payload and answers with its zxid.
#[test]
fn the_leader_proposes_forwarded_payloads() {
    let mut c = leader_in_broadcast(vec![], 0, 0);
    c.step(A, Message::Forward { id: ProposalId(9), payload: b"x".to_vec() });
    let actions = c.drain_actions();
    assert_eq!(
        actions[0],
        Action::Send {
            to: A,
            msg: Message::ForwardResult { id: ProposalId(9), result: Ok(z(1, 1)) }
        }
    );
    assert!(
        actions.contains(&Action::Persist { entries: vec![Entry::new(z(1, 1), b"x".to_vec())] })
    );
}

/// §3.7, §4.3: a leader whose synchronized followers fall silent for the session timeout
/// steps down.
#[test]
fn a_leader_that_loses_its_quorum_steps_down() {
    let mut c = leader_in_broadcast(vec![], 0, 0);
    let id = c.propose(b"x".to_vec()).unwrap();
    let mut ticks = 0;
    while c.phase() == Phase::Broadcast {
        c.tick();
        ticks += 1;
        assert!(ticks <= 12, "still leading after {ticks} silent ticks");
    }
    let actions = c.drain_actions();
    assert!(actions.contains(&Action::StatusChanged(Status::Looking)));
    assert!(
        actions.contains(&Action::ProposalFailed { id, reason: ProposalFailure::OutcomeUnknown })
    );
}

/// §3.7: a follower whose leader session ends goes back to election; its forwarded proposals'
/// outcome is unknown.
#[test]
fn a_follower_returns_to_election_when_its_leader_session_ends() {
    let mut a = follower_in_broadcast(vec![], 1);
    let id = a.propose(b"x".to_vec()).unwrap();
    a.drain_actions();
    a.session_ended(C);
    let actions = a.drain_actions();
    assert_eq!(a.phase(), Phase::Election);
    assert!(
        actions.contains(&Action::ProposalFailed { id, reason: ProposalFailure::OutcomeUnknown })
    );
    assert!(actions.contains(&Action::StatusChanged(Status::Looking)));
}

/// §3.7: a follower abandons a leader that stays silent for the session timeout, or a leader
/// the failure detector suspects once it has also been silent for half of it.
#[test]
fn a_follower_abandons_a_suspected_or_silent_leader() {
    // Silent: abandoned after the session timeout (10 ticks), not before.
    let mut a = follower_in_broadcast(vec![], 1);
    for _ in 0..10 {
        a.tick();
    }
    assert_eq!(a.phase(), Phase::Broadcast);
    a.tick();
    assert_eq!(a.phase(), Phase::Election);
    // Suspected after half the session timeout (5 ticks) of silence: abandoned at once.
    let mut a = follower_in_broadcast(vec![], 1);
    for _ in 0..5 {
        a.tick();
    }
    a.peer_suspected(C);
    assert_eq!(a.phase(), Phase::Election);
    assert!(a.drain_actions().contains(&Action::StatusChanged(Status::Looking)));
    // Suspected while its messages keep coming (a large transfer delaying the detector's
    // heartbeats): kept while it is heard, abandoned once half the session timeout passes
    // without a message.
    let mut a = follower_in_broadcast(vec![], 1);
    a.peer_suspected(C);
    for _ in 0..6 {
        a.tick();
        a.step(C, Message::Ping);
        assert_eq!(a.phase(), Phase::Broadcast, "the leader is heard: it stays");
    }
    for _ in 0..4 {
        a.tick();
    }
    assert_eq!(a.phase(), Phase::Broadcast);
    a.tick();
    assert_eq!(a.phase(), Phase::Election, "suspected and silent for half the session timeout");
    // Restored before the silence: the suspicion no longer counts; only the session timeout.
    let mut a = follower_in_broadcast(vec![], 1);
    a.peer_suspected(C);
    a.peer_restored(C);
    for _ in 0..10 {
        a.tick();
    }
    assert_eq!(a.phase(), Phase::Broadcast);
    // A suspicion of another peer is not the leader's.
    let mut a = follower_in_broadcast(vec![], 1);
    for _ in 0..8 {
        a.tick();
    }
    a.peer_suspected(B);
    assert_eq!(a.phase(), Phase::Broadcast);
}

/// F28 (ZOOKEEPER-1277): once the counter is exhausted the leader refuses proposals and steps
/// down when everything it proposed is committed.
#[test]
fn counter_exhaustion_forces_the_leader_to_step_down() {
    let mut cfg = config(C);
    cfg.counter_max = 1;
    let mut c = leader_in_broadcast_with(cfg, vec![], 0, 0);
    c.propose(b"last".to_vec()).unwrap();
    assert_eq!(c.propose(b"more".to_vec()), Err(ProposeError::EpochExhausted));
    c.persisted(z(1, 1));
    c.step(A, Message::Ack { zxid: z(1, 1) });
    c.tick();
    assert_eq!(c.phase(), Phase::Election);
}

/// A restarted follower that promised a later epoch to a failed leader makes the established
/// leader step down, so that the next epoch admits it.
#[test]
fn an_established_leader_steps_down_for_a_follower_with_a_later_accepted_epoch() {
    let mut c = leader_in_broadcast(vec![], 0, 0);
    c.step(B, Message::FollowerInfo { accepted_epoch: Epoch(5), attempt: 1 });
    assert_eq!(c.phase(), Phase::Election);
}

// ----- recovery and snapshots ---------------------------------------------------------------

/// zab.md §6: inconsistent epoch files are refused at start.
#[test]
fn recovery_refuses_inconsistent_state() {
    let err = ZabNode::new(config(A), recovered(1, 2, vec![])).unwrap_err();
    assert_eq!(err, InitError::EpochsInverted { accepted: Epoch(1), current: Epoch(2) });
    let log = entries(&[(1, 1), (1, 2), (1, 1)]);
    let err = ZabNode::new(config(A), recovered(2, 2, log)).unwrap_err();
    assert_eq!(err, InitError::LogNotIncreasing { previous: z(1, 2), next: z(1, 1) });
    let err = ZabNode::new(config(A), recovered(1, 1, entries(&[(2, 1)]))).unwrap_err();
    assert_eq!(err, InitError::LogAheadOfAcceptedEpoch { zxid: z(2, 1), accepted: Epoch(1) });
}

/// zab.md §6, ZOOKEEPER-2325 / -4925 (scenarios F13, F15, F27): a log that skips transactions
/// (its snapshot deleted, a record dropped) is refused, whatever the gap; a log that continues
/// its snapshot, or starts a later epoch at counter 1, is accepted.
#[test]
fn recovery_refuses_a_log_with_a_gap() {
    let err = ZabNode::new(config(A), recovered(1, 1, entries(&[(1, 4), (1, 5)]))).unwrap_err();
    assert_eq!(err, InitError::LogGap { previous: Zxid::ZERO, next: z(1, 4) });
    let err = ZabNode::new(config(A), recovered(2, 2, entries(&[(1, 1), (1, 3)]))).unwrap_err();
    assert_eq!(err, InitError::LogGap { previous: z(1, 1), next: z(1, 3) });
    let err = ZabNode::new(config(A), recovered(2, 2, entries(&[(1, 1), (2, 2)]))).unwrap_err();
    assert_eq!(err, InitError::LogGap { previous: z(1, 1), next: z(2, 2) });
    let mut snapshot_then_log = recovered(3, 3, entries(&[(1, 5), (3, 1)]));
    snapshot_then_log.snapshot = Some(Snapshot { zxid: z(1, 4), state: vec![1] });
    assert!(ZabNode::new(config(A), snapshot_then_log.clone()).is_ok());
    snapshot_then_log.snapshot = None;
    let err = ZabNode::new(config(A), snapshot_then_log).unwrap_err();
    assert_eq!(err, InitError::LogGap { previous: Zxid::ZERO, next: z(1, 5) });
}

/// ZOOKEEPER-4925 (scenario F27): a synchronization stream must continue the follower's log
/// without a hole; a stream that skips a transaction is a violation and nothing is written.
#[test]
fn a_synchronization_stream_with_a_gap_is_refused() {
    let mut a = follower_registered(entries(&[(1, 1), (1, 2)]), 1, 1);
    a.step(C, Message::LeaderInfo { epoch: Epoch(2), attempt: 1 });
    a.epoch_persisted(EpochKind::Accepted, Epoch(2));
    a.drain_actions();
    a.step(C, Message::SyncStart(SyncMode::Diff { last: z(1, 2) }));
    a.step(C, Message::SyncEntries { entries: entries(&[(1, 3), (1, 5)]) });
    assert_eq!(a.protocol_violations(), 1);
    assert_eq!(a.phase(), Phase::Election);
    assert_eq!(a.last_zxid(), z(1, 2));
    assert!(!a.drain_actions().iter().any(|action| matches!(action, Action::Persist { .. })));
    // After a SNAP the stream continues the snapshot's zxid, not the old log.
    let mut b = follower_registered(entries(&[(1, 1)]), 1, 1);
    b.step(C, Message::LeaderInfo { epoch: Epoch(2), attempt: 1 });
    b.epoch_persisted(EpochKind::Accepted, Epoch(2));
    b.step(C, Message::SyncStart(SyncMode::Snap { zxid: z(1, 4), state_bytes: Some(1) }));
    b.step(C, Message::SnapChunk { bytes: vec![7] });
    b.step(C, Message::SyncEntries { entries: entries(&[(1, 6)]) });
    assert_eq!(b.protocol_violations(), 1, "(1,6) does not follow the snapshot at (1,4)");
}

/// zab.md §6: after recovery nothing beyond the snapshot counts as delivered; the log tail is
/// "accepted, not delivered" until a leader says it is committed.
#[test]
fn recovery_delivers_nothing_beyond_the_snapshot() {
    let rec = Recovered {
        accepted_epoch: Epoch(2),
        current_epoch: Epoch(2),
        snapshot: Some(Snapshot { zxid: z(1, 2), state: vec![1] }),
        log: entries(&[(2, 1)]),
    };
    let mut a = ZabNode::new(config(A), rec).unwrap();
    assert_eq!(a.delivered_zxid(), z(1, 2));
    assert_eq!(a.committed_zxid(), z(1, 2));
    assert!(!a.drain_actions().iter().any(|a| matches!(a, Action::Deliver { .. })));
}

/// zab.md §6: a snapshot is asked for after enough deliveries, covers exactly the delivered
/// state, and trims the in-memory log once stored.
#[test]
fn snapshots_are_taken_at_the_delivered_zxid_and_trim_the_log() {
    let mut cfg = config(A);
    cfg.snapshot_entries_trigger = 2;
    let mut a = ZabNode::new(cfg, recovered(1, 1, vec![])).unwrap();
    let leader_vote = Vote { leader: C, zxid: z(0, 0), epoch: Epoch(1) };
    a.step(C, looking(leader_vote, 1));
    a.step(B, looking(leader_vote, 1));
    a.step(C, Message::LeaderInfo { epoch: Epoch(2), attempt: 1 });
    a.epoch_persisted(EpochKind::Accepted, Epoch(2));
    a.step(C, Message::SyncStart(SyncMode::Diff { last: Zxid::ZERO }));
    a.step(C, Message::NewLeader { epoch: Epoch(2) });
    a.epoch_persisted(EpochKind::Current, Epoch(2));
    a.step(C, Message::UpToDate { committed: Zxid::ZERO });
    a.step(C, Message::Proposal { entries: entries(&[(2, 1), (2, 2)]) });
    a.persisted(z(2, 2));
    a.drain_actions();
    a.step(C, Message::Commit { zxid: z(2, 2) });
    let actions = without_sends(&a.drain_actions());
    assert_eq!(actions.last(), Some(&Action::TakeSnapshot { zxid: z(2, 2) }));
    a.snapshot_taken(z(2, 2), 5);
    assert_eq!(a.delivered_zxid(), z(2, 2));
    // A later SNAP from this node would ship that state.
    assert_eq!(plan_sync(z(2, 2), &[], z(2, 1)), SyncPlan::Snap);
}

// ----- issue 12: byte bounds, flow control, incarnations ------------------------------------

/// Small byte bounds: a message of at most 1 KiB, payloads of at most 800 bytes, a 2 KiB
/// synchronization window.
fn small_messages(id: PeerId) -> Config {
    let mut cfg = config(id);
    cfg.message_bytes_max = 1024;
    cfg.payload_bytes_max = 800;
    cfg.snapshot_chunk_bytes_max = 512;
    cfg.sync_window_bytes = 2048;
    cfg
}

fn payload_entries(from: u64, count: u64, bytes: usize) -> Vec<Entry> {
    (from..from + count).map(|c| Entry::new(z(1, c), vec![c as u8; bytes])).collect()
}

/// A payload that could never be sent is refused at `propose`, on a leader and on a follower,
/// and nothing changes.
#[test]
fn a_payload_above_payload_bytes_max_is_refused_and_changes_nothing() {
    let mut c = leader_in_broadcast_with(small_messages(C), vec![], 0, 0);
    assert_eq!(c.propose(vec![0; 801]), Err(ProposeError::TooLarge { len: 801, max: 800 }));
    assert!(c.drain_actions().is_empty());
    assert_eq!(c.last_zxid(), Zxid::ZERO);
    assert!(c.propose(vec![0; 800]).is_ok(), "the bound itself is accepted");

    let mut a = follower_in_broadcast(vec![], 2);
    let max = config(A).payload_bytes_max;
    let refused = a.propose(vec![0; max + 1]);
    assert_eq!(refused, Err(ProposeError::TooLarge { len: max + 1, max }));
    assert!(a.drain_actions().is_empty(), "nothing is forwarded");
}

/// A leader refuses a forwarded payload above its bound (the members' configurations differ)
/// with a reason the follower reports, instead of logging what it could never replicate.
#[test]
fn a_forwarded_payload_above_the_bound_is_refused() {
    let mut c = leader_in_broadcast_with(small_messages(C), vec![], 0, 0);
    c.step(A, Message::Forward { id: ProposalId(7), payload: vec![1; 900] });
    assert_eq!(
        sends(&c.drain_actions()),
        vec![(
            A,
            Message::ForwardResult { id: ProposalId(7), result: Err(ProposalFailure::TooLarge) }
        )]
    );
    assert_eq!(c.last_zxid(), Zxid::ZERO);
}

/// Proposals made in one drain travel in batches, each PROPOSAL within message_bytes_max as
/// MessagePack really encodes it; the batches together carry every proposal in order.
#[test]
fn proposal_batches_are_cut_to_message_bytes_max() {
    let mut c = leader_in_broadcast_with(small_messages(C), vec![], 0, 0);
    for i in 0..10u8 {
        c.propose(vec![i; 300]).unwrap();
    }
    let actions = c.drain_actions();
    let mut carried = Vec::new();
    for (to, msg) in sends(&actions) {
        let Message::Proposal { entries } = &msg else { continue };
        assert_eq!(to, A);
        let encoded = rmp_serde::to_vec(&msg).unwrap().len();
        assert!(msg.encoded_len_max() <= 1024 && encoded <= 1024, "{encoded} bytes");
        carried.extend(entries.iter().map(|e| e.zxid));
    }
    assert_eq!(carried, (1..=10).map(|c| z(1, c)).collect::<Vec<_>>());
    let persisted: Vec<usize> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Persist { entries } => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert!(persisted.len() >= 4, "several writes, one per batch: {persisted:?}");
    assert_eq!(persisted.iter().sum::<usize>(), 10);
}

/// Synchronization goes out in windows: the leader keeps at most sync_window_bytes of SNAP
/// chunks and history unacknowledged, sends more as SYNCACKs arrive, and sends NEWLEADER only
/// after the whole history, in order and without gaps.
#[test]
fn synchronization_is_flow_controlled_by_sync_acks() {
    let log = payload_entries(1, 20, 300);
    let mut c = leader_collecting_epoch_acks_with(small_messages(C), log, 1, 1);
    c.step(A, ack_epoch(2, 0, Zxid::ZERO, true));
    c.epoch_persisted(EpochKind::Current, Epoch(2));
    let mut received: Vec<Zxid> = Vec::new();
    let mut acked = 0u64;
    let mut in_flight: Vec<usize> = Vec::new();
    let mut newleader = false;
    for _round in 0..100 {
        for (to, msg) in sends(&c.drain_actions()) {
            assert_eq!(to, A);
            match &msg {
                Message::SyncEntries { entries } => {
                    assert!(!newleader);
                    received.extend(entries.iter().map(|e| e.zxid));
                    in_flight.push(msg.encoded_len_max());
                }
                Message::NewLeader { .. } => newleader = true,
                _ => {}
            }
        }
        assert!(in_flight.iter().sum::<usize>() <= 2048, "window exceeded: {in_flight:?}");
        if newleader {
            break;
        }
        assert!(!in_flight.is_empty(), "the stream stalled with nothing in flight");
        // Acknowledge the oldest message in flight only.
        in_flight.remove(0);
        acked += 1;
        c.step(A, Message::SyncAck { received: acked });
    }
    assert!(newleader, "NEWLEADER after the stream");
    assert_eq!(received, (1..=20).map(|n| z(1, n)).collect::<Vec<_>>());
    assert!(acked >= 5, "the window made the leader wait for acks ({acked})");
    assert_eq!(c.protocol_violations(), 0);
}

/// A SYNCACK for messages never sent is a violation of that learner: the leader drops it and
/// keeps its own role.
#[test]
fn a_leader_drops_a_misbehaving_learner_and_keeps_leading() {
    let mut c = leader_in_broadcast(vec![], 0, 0);
    empty_b_joins(&mut c, 1);
    c.drain_actions();
    c.step(B, Message::AckNewLeader { epoch: Epoch(1) });
    c.step(A, Message::Ack { zxid: z(5, 5) });
    assert_eq!(c.protocol_violations(), 1);
    assert_eq!(c.status(), Status::Leading { epoch: Epoch(1) }, "one bad learner does not depose");
    c.drain_actions();
    // A is no longer a learner: its heartbeats stop, B's go on.
    for _ in 0..4 {
        c.tick();
    }
    let pinged: Vec<PeerId> = sends(&c.drain_actions())
        .into_iter()
        .filter(|(_, m)| *m == Message::Ping)
        .map(|(to, _)| to)
        .collect();
    assert!(pinged.contains(&B) && !pinged.contains(&A), "{pinged:?}");
}

/// A learner being synchronized answers slowly (its answers queue behind the transfer): it is
/// dropped after sync_timeout_ticks of silence, not after the shorter session timeout, and
/// every SYNCACK restarts its deadline.
#[test]
fn a_syncing_learner_is_held_to_the_sync_timeout() {
    let mut cfg = small_messages(C);
    cfg.session_timeout_ticks = 10;
    cfg.sync_timeout_ticks = 20;
    let mut c = leader_in_broadcast_with(cfg, payload_entries(1, 20, 300), 1, 1);
    empty_b_joins(&mut c, 2);
    c.drain_actions();
    let pings_to_b = |c: &mut ZabNode| {
        sends(&c.drain_actions()).iter().filter(|(to, m)| *to == B && *m == Message::Ping).count()
    };
    ticks_answered_by_a(&mut c, 15);
    assert!(pings_to_b(&mut c) > 0, "B silent for 15 ticks is still a learner");
    c.step(B, Message::SyncAck { received: 1 });
    ticks_answered_by_a(&mut c, 15);
    c.drain_actions();
    ticks_answered_by_a(&mut c, 3);
    assert!(pings_to_b(&mut c) > 0, "an ack moved B's deadline");
    ticks_answered_by_a(&mut c, 10);
    c.drain_actions();
    ticks_answered_by_a(&mut c, 4);
    assert_eq!(pings_to_b(&mut c), 0, "B dropped after sync_timeout_ticks of silence");
    assert_eq!(c.status(), Status::Leading { epoch: Epoch(2) });
}

/// A LEADERINFO answering a registration of an earlier incarnation (queued for this peer when
/// it restarted) is not taken for the answer to this one.
#[test]
fn a_leaderinfo_for_an_earlier_incarnation_is_ignored() {
    let mut cfg = config(A);
    cfg.incarnation = 1_000;
    let mut a = follower_registered_with(cfg, vec![], 1, 1);
    a.step(C, Message::LeaderInfo { epoch: Epoch(2), attempt: 1 });
    assert!(a.drain_actions().is_empty(), "the earlier incarnation's answer is ignored");
    assert_eq!(a.accepted_epoch(), Epoch(1));
    a.step(C, Message::LeaderInfo { epoch: Epoch(2), attempt: 1_001 });
    assert_eq!(
        a.drain_actions(),
        vec![Action::PersistEpoch { kind: EpochKind::Accepted, epoch: Epoch(2) }]
    );
}

/// Snapshots are also asked for by delivered payload bytes, so large values bound the log a
/// node keeps and replays, whatever the number of entries.
#[test]
fn snapshots_are_triggered_by_delivered_bytes() {
    let mut cfg = Config::new(A, vec![A]);
    cfg.snapshot_entries_trigger = 0;
    cfg.snapshot_bytes_trigger = 1_000;
    let mut node = node_with(cfg, recovered(0, 0, vec![]));
    let drive = |node: &mut ZabNode| -> bool {
        let mut asked = false;
        loop {
            let actions = node.drain_actions();
            if actions.is_empty() {
                return asked;
            }
            for action in actions {
                match action {
                    Action::Persist { entries } => node.persisted(entries.last().unwrap().zxid),
                    Action::PersistEpoch { kind, epoch } => node.epoch_persisted(kind, epoch),
                    Action::TakeSnapshot { .. } => asked = true,
                    _ => {}
                }
            }
        }
    };
    while !matches!(node.status(), Status::Leading { .. }) {
        node.tick();
        drive(&mut node);
    }
    node.propose(vec![0; 300]).unwrap();
    assert!(!drive(&mut node), "300 bytes are below every threshold (500..=1000)");
    let mut asked_after = None;
    for n in 2..=4 {
        node.propose(vec![0; 300]).unwrap();
        if drive(&mut node) {
            asked_after = Some(n);
            break;
        }
    }
    assert!(asked_after.is_some(), "a snapshot once 1,000 bytes were delivered");
}
