//! Phase 2: synchronization (zab.md §3 Phase 2, §4.2).
//!
//! For each follower that acked the epoch, the leader chooses DIFF, TRUNC or SNAP from the
//! follower's last zxid alone ([`plan_sync`]), sends the missing history and NEWLEADER, and from
//! then on forwards every new PROPOSAL and COMMIT to it (TLA+ issue 1). The follower makes the
//! synchronized history durable, **then** writes currentEpoch, **then** acks NEWLEADER
//! (ZOOKEEPER-3911/4643/4646/4785). With NEWLEADER acks from a quorum (itself included) the
//! leader is established: its whole initial history is committed and it sends UPTODATE with its
//! latest commit point (TLA+ issue 3), also to followers that finish later.

use std::collections::VecDeque;

use super::action::{Action, Status};
use super::entry::Entry;
use super::ids::{Epoch, PeerId, Zxid};
use super::log::Run;
use super::message::{Message, SyncMode};
use super::node::ZabNode;
use super::role::{
    FollowerStage, LeaderStage, LearnerStage, Role, SnapReceiver, SnapSend, SnapshotMeta,
    SyncStream,
};

/// How a leader brings a follower's log to its own history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPlan {
    /// The follower's last zxid is in the leader's history: send what follows it.
    Diff {
        /// The follower's last zxid.
        last: Zxid,
    },
    /// The follower has entries the leader lacks, after `to`, all in `to`'s epoch: cut them.
    Trunc {
        /// The last zxid both have.
        to: Zxid,
    },
    /// Anything else (behind the leader's snapshot, or diverged across an epoch boundary):
    /// send the snapshot and the log after it.
    Snap,
}

/// The DIFF / TRUNC / SNAP choice over the leader's history: `base` is its snapshot's zxid and
/// `history` the zxids of its log after it, in increasing order.
///
/// Within one epoch, logs are prefixes of the epoch leader's sequence, so a follower whose last
/// zxid `f` the leader lacks shares everything up to the leader's last zxid below `f` if that
/// zxid is of `f`'s epoch: TRUNC to it. Across an epoch boundary the common point is unknown
/// from `f` alone (ZOOKEEPER-1154/1156), so the leader sends SNAP instead.
pub fn plan_sync(base: Zxid, history: &[Zxid], follower_last: Zxid) -> SyncPlan {
    plan(
        base,
        |zxid| history.binary_search(&zxid).is_ok(),
        |zxid| {
            let below = history.partition_point(|z| *z < zxid);
            if below == 0 {
                base
            } else {
                history[below - 1]
            }
        },
        follower_last,
    )
}

fn plan(
    base: Zxid,
    contains: impl Fn(Zxid) -> bool,
    last_below: impl Fn(Zxid) -> Zxid,
    follower_last: Zxid,
) -> SyncPlan {
    if follower_last == base || contains(follower_last) {
        return SyncPlan::Diff { last: follower_last };
    }
    if follower_last < base {
        return SyncPlan::Snap;
    }
    let common = last_below(follower_last);
    if common.epoch == follower_last.epoch {
        SyncPlan::Trunc { to: common }
    } else {
        SyncPlan::Snap
    }
}

impl ZabNode {
    /// currentEpoch is durable on the leader: synchronize every follower that acked the epoch.
    pub(super) fn start_synchronization(&mut self) {
        let me = self.id();
        let deadline = self.now + self.config.sync_timeout_ticks;
        let Role::Leading(leader) = &mut self.role else { return };
        leader.stage = LeaderStage::CollectingNewLeaderAcks;
        leader.deadline = deadline;
        leader.newleader_acks.insert(me);
        let waiting: Vec<PeerId> = leader
            .learners
            .iter()
            .filter(|(_, learner)| matches!(learner.stage, LearnerStage::EpochAcked { .. }))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in waiting {
            self.sync_learner(peer);
        }
        self.check_newleader_quorum();
    }

    /// Starts synchronizing a follower: DIFF / TRUNC / SNAP now, then the snapshot and the
    /// history it misses in flow-controlled windows ([`ZabNode::pump_sync`]), then NEWLEADER.
    pub(super) fn sync_learner(&mut self, peer: PeerId) {
        let now = self.now;
        let deadline = now + self.config.sync_timeout_ticks;
        let Role::Leading(leader) = &mut self.role else { return };
        let Some(learner) = leader.learners.get_mut(&peer) else { return };
        let LearnerStage::EpochAcked { last_zxid } = learner.stage else { return };
        let log = &self.log;
        let plan = plan(log.base(), |z| log.contains(z), |z| log.last_below(z), last_zxid);
        let (mode, after, snap) = match plan {
            SyncPlan::Diff { last } => (SyncMode::Diff { last }, last, None),
            SyncPlan::Trunc { to } => (SyncMode::Trunc { to }, to, None),
            SyncPlan::Snap => {
                let snap = self.snapshot.map(|meta| SnapSend {
                    zxid: meta.zxid,
                    offset: 0,
                    len: meta.state_bytes,
                });
                let state_bytes = snap.map(|snap| snap.len);
                let mode = SyncMode::Snap { zxid: log.base(), state_bytes };
                (mode, log.base(), snap)
            }
        };
        log::debug!("{me}: syncs {peer} ({last_zxid}) with {mode:?}", me = self.config.id);
        learner.stage = LearnerStage::Streaming;
        learner.deadline = deadline;
        learner.stream = Some(SyncStream {
            snap,
            after,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            sent: 0,
            reading: false,
        });
        self.send(peer, Message::SyncStart(mode));
        self.pump_sync(peer);
    }

    /// Sends a learner the next pieces of its synchronization while the window has room; once
    /// everything handed to storage so far went out, sends NEWLEADER and forwards every later
    /// PROPOSAL and COMMIT to it (nothing falls between: entries not yet written go out in the
    /// next PROPOSAL, which the learner now receives).
    ///
    /// A learner whose stream fell behind the log's base (a snapshot trimmed the entries it
    /// still needed) is dropped; it registers again and gets a SNAP.
    pub(super) fn pump_sync(&mut self, peer: PeerId) {
        let window = self.config.sync_window_bytes;
        let message_max = self.config.message_bytes_max;
        let room = message_max - Message::OVERHEAD_BYTES_MAX;
        let chunk_max = self.config.snapshot_chunk_bytes_max;
        let count_max = self.config.batch_entries_max;
        let (base, through) = (self.log.base(), self.log.written_last());
        let Role::Leading(leader) = &mut self.role else { return };
        let epoch = leader.epoch;
        let Some(learner) = leader.learners.get_mut(&peer) else { return };
        let Some(stream) =
            learner.stream.as_mut().filter(|_| learner.stage == LearnerStage::Streaming)
        else {
            return;
        };
        if stream.reading {
            return; // the next entries are being read back from disk
        }
        let mut out = Vec::new();
        let mut finished = false;
        let mut fell_behind = false;
        let mut read = None;
        // A message is at most `message_max`: send while one more surely fits the window (or
        // nothing is in flight, so the stream always moves).
        while stream.in_flight.is_empty() || stream.in_flight_bytes + message_max <= window {
            let msg = match stream.snap {
                Some(snap) if snap.offset < snap.len => {
                    // The next chunk comes from storage; `snapshot_read` sends it and goes on.
                    stream.reading = true;
                    let left = usize::try_from(snap.len - snap.offset).unwrap_or(usize::MAX);
                    read = Some(Action::ReadSnapshot {
                        peer,
                        zxid: snap.zxid,
                        offset: snap.offset,
                        bytes_max: chunk_max.min(left),
                    });
                    break;
                }
                _ => {
                    stream.snap = None;
                    if stream.after < base {
                        fell_behind = true;
                        break;
                    }
                    match self.log.run_after(stream.after, through, room, count_max) {
                        Run::Nothing => {
                            finished = true;
                            break;
                        }
                        Run::Evicted { through } => {
                            stream.reading = true;
                            read = Some(Action::ReadLog {
                                peer,
                                after: stream.after,
                                through,
                                bytes_max: room,
                            });
                            break;
                        }
                        Run::Cached(entries) => {
                            stream.after = entries.last().map_or(stream.after, |e| e.zxid);
                            Message::SyncEntries { entries }
                        }
                    }
                }
            };
            let size = msg.encoded_len_max();
            stream.in_flight.push_back(size);
            stream.in_flight_bytes += size;
            stream.sent += 1;
            out.push(msg);
        }
        if fell_behind {
            log::info!(
                "{}: {peer}'s synchronization fell behind a snapshot; dropping it",
                self.config.id
            );
            leader.learners.remove(&peer);
            return;
        }
        if finished {
            learner.stream = None;
            learner.stage = LearnerStage::Syncing { stream_last: through };
            out.push(Message::NewLeader { epoch });
        }
        for msg in out {
            self.send(peer, msg);
        }
        if let Some(read) = read {
            self.emit(read);
        }
    }

    /// Entries read back from disk for `peer`'s synchronization (`Action::ReadLog`): send them
    /// and go on. A stale answer (the stream moved on or ended) is ignored; no entries, or
    /// entries that are not the log's, drop the learner (it registers again).
    pub(super) fn continue_sync_with(&mut self, peer: PeerId, after: Zxid, entries: Vec<Entry>) {
        let room = self.config.message_bytes_max - Message::OVERHEAD_BYTES_MAX;
        let matches = !entries.is_empty() && self.log.matches_after(after, &entries);
        let (read_back, base) = (entries.len(), self.log.base());
        let Role::Leading(leader) = &mut self.role else { return };
        let Some(learner) = leader.learners.get_mut(&peer) else { return };
        let Some(stream) = learner.stream.as_mut().filter(|s| s.reading && s.after == after) else {
            return;
        };
        if !matches {
            // Which case it was tells a trimmed log (a snapshot at `base` removed the segments
            // the stream was reading: the learner gets a SNAP when it registers again) from a
            // log that does not read back as it was written.
            log::warn!(
                "{}: entries after {after} for {peer} could not be read back ({read_back} read, \
                 not matching the log; log base now {base}); dropping it",
                self.config.id
            );
            leader.learners.remove(&peer);
            return;
        }
        stream.reading = false;
        let mut messages = Vec::new();
        let mut batch: Vec<Entry> = Vec::new();
        let mut bytes = 0;
        for entry in entries {
            let size = entry.encoded_len_max();
            if !batch.is_empty() && bytes + size > room {
                messages.push(Message::SyncEntries { entries: std::mem::take(&mut batch) });
                bytes = 0;
            }
            bytes += size;
            stream.after = entry.zxid;
            batch.push(entry);
        }
        messages.push(Message::SyncEntries { entries: batch });
        for msg in &messages {
            let size = msg.encoded_len_max();
            stream.in_flight.push_back(size);
            stream.in_flight_bytes += size;
            stream.sent += 1;
        }
        for msg in messages {
            self.send(peer, msg);
        }
        self.pump_sync(peer);
    }

    /// A chunk of the snapshot read back from storage for `peer`'s SNAP
    /// (`Action::ReadSnapshot`): send it and go on. A stale answer (the stream moved on or
    /// ended) is ignored; no bytes, or more than the snapshot has left, drop the learner (it
    /// registers again, and is sent the newest snapshot).
    pub(super) fn continue_snap_with(
        &mut self,
        peer: PeerId,
        zxid: Zxid,
        offset: u64,
        bytes: Vec<u8>,
    ) {
        let Role::Leading(leader) = &mut self.role else { return };
        let Some(learner) = leader.learners.get_mut(&peer) else { return };
        let Some(stream) = learner.stream.as_mut().filter(|s| s.reading) else { return };
        let Some(snap) = stream.snap.as_mut().filter(|s| s.zxid == zxid && s.offset == offset)
        else {
            return;
        };
        if bytes.is_empty() || bytes.len() as u64 > snap.len - snap.offset {
            log::warn!(
                "{}: the snapshot at {zxid} for {peer} could not be read back from offset \
                 {offset}; dropping it",
                self.config.id
            );
            leader.learners.remove(&peer);
            return;
        }
        snap.offset += bytes.len() as u64;
        stream.reading = false;
        let msg = Message::SnapChunk { bytes };
        let size = msg.encoded_len_max();
        stream.in_flight.push_back(size);
        stream.in_flight_bytes += size;
        stream.sent += 1;
        self.send(peer, msg);
        self.pump_sync(peer);
    }

    /// SYNCACK: the learner received `received` messages of its synchronization.
    pub(super) fn on_sync_ack(&mut self, from: PeerId, received: u64) {
        let now = self.now;
        let sync_timeout = self.config.sync_timeout_ticks;
        let Role::Leading(leader) = &mut self.role else { return };
        let Some(learner) = leader.learners.get_mut(&from) else { return };
        // Acks of the last messages may arrive after NEWLEADER went out: nothing to do.
        let Some(stream) = learner.stream.as_mut() else { return };
        if received > stream.sent {
            self.violation(from, "SYNCACK for messages never sent");
            return;
        }
        while stream.sent - (stream.in_flight.len() as u64) < received {
            let size = stream.in_flight.pop_front().unwrap_or_default();
            stream.in_flight_bytes -= size;
        }
        // Progress moves the deadlines: a large synchronization that keeps moving is not cut
        // off by `sync_timeout_ticks`, which bounds silence instead.
        learner.deadline = now + sync_timeout;
        if leader.stage == LeaderStage::CollectingNewLeaderAcks {
            leader.deadline = leader.deadline.max(now + sync_timeout);
        }
        self.pump_sync(from);
    }

    /// NEWLEADER ack from a follower: it is synchronized.
    pub(super) fn on_ack_new_leader(&mut self, from: PeerId, epoch: Epoch) {
        let Role::Leading(leader) = &mut self.role else { return };
        let Some(learner) = leader.learners.get_mut(&from) else { return };
        let LearnerStage::Syncing { stream_last } = learner.stage else {
            self.violation(from, "NEWLEADER ack without NEWLEADER");
            return;
        };
        if epoch != leader.epoch {
            self.violation(from, "NEWLEADER ack for another epoch");
            return;
        }
        learner.stage = LearnerStage::Synced;
        learner.acked = learner.acked.max(stream_last);
        match leader.stage {
            LeaderStage::CollectingNewLeaderAcks => {
                leader.newleader_acks.insert(from);
                self.check_newleader_quorum();
            }
            LeaderStage::Broadcast => {
                let committed = self.committed;
                self.send(from, Message::UpToDate { committed });
                self.advance_commit();
            }
            _ => unreachable!("learners are synchronized only after currentEpoch is durable"),
        }
    }

    fn check_newleader_quorum(&mut self) {
        let Role::Leading(leader) = &self.role else { return };
        if leader.stage == LeaderStage::CollectingNewLeaderAcks
            && self.quorum.is_quorum(&leader.newleader_acks)
        {
            self.establish();
        }
    }

    /// A quorum holds the initial history durably under the new epoch: it is committed, and
    /// this node leads the epoch.
    fn establish(&mut self) {
        let Role::Leading(leader) = &mut self.role else { return };
        let epoch = leader.epoch;
        assert!(
            self.led_epoch_max.is_none_or(|led| led < epoch),
            "{}: would lead epoch {epoch} twice",
            self.config.id
        );
        self.led_epoch_max = Some(epoch);
        leader.stage = LeaderStage::Broadcast;
        leader.next_ping = self.now;
        leader.counter = 0;
        self.vote.epoch = epoch;
        let synced = leader.synced();
        self.committed = self.committed.max(self.log.last());
        let committed = self.committed;
        log::debug!("{}: established epoch {epoch}, committed {committed}", self.config.id);
        for peer in synced {
            self.send(peer, Message::UpToDate { committed });
        }
        self.set_status(Status::Leading { epoch });
        self.deliver_committed();
    }

    /// DIFF / TRUNC / SNAP from our leader.
    pub(super) fn on_sync_start(&mut self, from: PeerId, mode: SyncMode) {
        let Role::Following(follower) = &mut self.role else { return };
        if follower.leader != from {
            return;
        }
        if follower.stage != FollowerStage::AwaitingSync {
            self.violation(from, "synchronization out of order");
            return;
        }
        match mode {
            SyncMode::Diff { last } => {
                if last != self.log.last() {
                    self.violation(from, "DIFF from a zxid we do not end at");
                    return;
                }
            }
            SyncMode::Trunc { to } => {
                let known = to == self.log.base() || self.log.contains(to);
                if to < self.committed || !known {
                    self.violation(from, "TRUNC below our commit point or to an unknown zxid");
                    return;
                }
                self.log.truncate(to);
                self.emit(Action::Truncate { to });
            }
            SyncMode::Snap { zxid, state_bytes } => {
                follower.snap = Some(SnapReceiver {
                    zxid,
                    state_bytes,
                    state: Vec::new(),
                    entries: Vec::new(),
                });
            }
        }
        let Role::Following(follower) = &mut self.role else { return };
        follower.stage = FollowerStage::ReceivingSync;
        follower.sync_received = 0;
    }

    /// A piece of a SNAP's state.
    pub(super) fn on_snap_chunk(&mut self, from: PeerId, bytes: Vec<u8>) {
        let Role::Following(follower) = &mut self.role else { return };
        if follower.leader != from {
            return;
        }
        let fits = follower.stage == FollowerStage::ReceivingSync
            && follower.snap.as_ref().is_some_and(|snap| {
                snap.state_bytes.is_some_and(|size| (snap.state.len() + bytes.len()) as u64 <= size)
            });
        if !fits {
            self.violation(from, "unexpected snapshot chunk");
            return;
        }
        if let Some(snap) = follower.snap.as_mut() {
            snap.state.extend_from_slice(&bytes);
        }
        self.ack_sync_message();
    }

    /// Tells the leader one more synchronization message arrived (its flow control).
    fn ack_sync_message(&mut self) {
        let Role::Following(follower) = &mut self.role else { return };
        follower.sync_received += 1;
        let (leader, received) = (follower.leader, follower.sync_received);
        self.send(leader, Message::SyncAck { received });
    }

    /// A run of the leader's history.
    pub(super) fn on_sync_entries(&mut self, from: PeerId, entries: Vec<Entry>) {
        let Role::Following(follower) = &mut self.role else { return };
        if follower.leader != from {
            return;
        }
        if follower.stage != FollowerStage::ReceivingSync {
            self.violation(from, "history outside synchronization");
            return;
        }
        let epoch = follower.epoch;
        let mut last = match &follower.snap {
            Some(snap) => snap.entries.last().map_or(snap.zxid, |entry| entry.zxid),
            None => self.log.last(),
        };
        for entry in &entries {
            // Contiguous, not only increasing: a hole would be adopted as our history and
            // passed on if we lead (ZOOKEEPER-4925).
            if !entry.zxid.follows(last) || entry.zxid.epoch > epoch {
                self.violation(from, "history not contiguous");
                return;
            }
            last = entry.zxid;
        }
        match follower.snap.as_mut() {
            Some(snap) => snap.entries.extend(entries),
            None => {
                let written = self.log.append_written(entries);
                if !written.is_empty() {
                    self.emit(Action::Persist { entries: written });
                }
            }
        }
        self.ack_sync_message();
    }

    /// NEWLEADER: the history is complete. Make it durable before anything else.
    pub(super) fn on_new_leader(&mut self, from: PeerId, epoch: Epoch) {
        let Role::Following(follower) = &mut self.role else { return };
        if follower.leader != from {
            return;
        }
        if follower.stage != FollowerStage::ReceivingSync || epoch != follower.epoch {
            self.violation(from, "NEWLEADER out of order or for another epoch");
            return;
        }
        if let Some(snap) = follower.snap.take() {
            if snap.state_bytes.is_some_and(|size| size != snap.state.len() as u64) {
                self.violation(from, "NEWLEADER before the whole snapshot");
                return;
            }
            let state = snap.state_bytes.map(|_| snap.state);
            self.snapshot = state
                .as_ref()
                .map(|state| SnapshotMeta { zxid: snap.zxid, state_bytes: state.len() as u64 });
            self.emit(Action::InstallSnapshot {
                zxid: snap.zxid,
                state,
                entries: snap.entries.clone(),
            });
            self.log.install(snap.zxid, snap.entries);
            self.snapshot_pending = None;
            self.delivered = snap.zxid;
            self.delivered_since_snapshot = 0;
            self.delivered_bytes_since_snapshot = 0;
            self.committed = self.committed.max(snap.zxid);
        }
        let Role::Following(follower) = &mut self.role else { return };
        follower.newleader_last = self.log.last();
        follower.sync_write = self.log.write_mark();
        follower.stage = FollowerStage::PersistingHistory;
        self.persist_current_epoch_after_history();
    }

    /// Once the synchronized history is durable, write currentEpoch (never before).
    pub(super) fn persist_current_epoch_after_history(&mut self) {
        let Role::Following(follower) = &mut self.role else { return };
        if follower.stage != FollowerStage::PersistingHistory
            || !self.log.is_durable_through(follower.sync_write)
        {
            return;
        }
        follower.stage = FollowerStage::PersistingCurrentEpoch;
        let epoch = follower.epoch;
        if self.current_epoch_durable >= epoch {
            self.ack_new_leader();
        } else {
            self.write_current_epoch(epoch);
        }
    }

    /// History and currentEpoch are durable: acknowledge NEWLEADER, then any later entries.
    pub(super) fn ack_new_leader(&mut self) {
        let Role::Following(follower) = &mut self.role else { return };
        follower.stage = FollowerStage::AwaitingUpToDate;
        follower.acked = follower.newleader_last;
        let (leader, epoch) = (follower.leader, follower.epoch);
        self.vote.epoch = epoch;
        self.send(leader, Message::AckNewLeader { epoch });
        self.send_ack();
    }

    /// UPTODATE: the epoch is established; serve.
    pub(super) fn on_up_to_date(&mut self, from: PeerId, committed: Zxid) {
        let Role::Following(follower) = &mut self.role else { return };
        if follower.leader != from {
            return;
        }
        if follower.stage != FollowerStage::AwaitingUpToDate || committed > self.log.last() {
            self.violation(from, "UPTODATE out of order or beyond our log");
            return;
        }
        follower.stage = FollowerStage::Broadcast;
        let status = Status::Following { leader: follower.leader, epoch: follower.epoch };
        self.set_status(status);
        self.commit_to(committed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(epoch: u64, counter: u64) -> Zxid {
        Zxid::new(epoch, counter)
    }

    #[test]
    fn plan_cases_of_zab_md_f18() {
        let history = [z(1, 1), z(1, 2), z(1, 3), z(3, 1), z(3, 2)];
        // equal, within the log, at the base
        assert_eq!(plan_sync(Zxid::ZERO, &history, z(3, 2)), SyncPlan::Diff { last: z(3, 2) });
        assert_eq!(plan_sync(Zxid::ZERO, &history, z(1, 2)), SyncPlan::Diff { last: z(1, 2) });
        assert_eq!(
            plan_sync(Zxid::ZERO, &history, Zxid::ZERO),
            SyncPlan::Diff { last: Zxid::ZERO }
        );
        // older than the snapshot
        assert_eq!(plan_sync(z(1, 2), &history[2..], z(1, 1)), SyncPlan::Snap);
        // ahead within one epoch (an old leader's uncommitted tail)
        assert_eq!(plan_sync(Zxid::ZERO, &history, z(1, 5)), SyncPlan::Trunc { to: z(1, 3) });
        assert_eq!(plan_sync(Zxid::ZERO, &history, z(3, 4)), SyncPlan::Trunc { to: z(3, 2) });
        // ahead across an epoch boundary
        assert_eq!(plan_sync(Zxid::ZERO, &history, z(2, 1)), SyncPlan::Snap);
    }
}
