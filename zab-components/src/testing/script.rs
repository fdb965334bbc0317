//! Helpers for scripted scenarios over a [`Sim`]: run until the cluster (or its live part)
//! converges, propose a batch, end the faults, and read what the leader chose to send.

use super::Sim;
use crate::protocol::{Message, Phase, SyncMode, Zxid};

impl Sim {
    /// Whether every live node is in broadcast under one leader, fully delivered, with the
    /// leader's state and nothing pending on its disk ([`Sim::converged`] without the
    /// crashed nodes).
    pub fn live_converged(&self) -> bool {
        let Some(leader) = self.leader() else { return false };
        let leader_id = self.nodes[leader].id;
        self.nodes.iter().filter(|n| n.node.is_some()).all(|n| {
            let node = n.node.as_ref().expect("filtered on live nodes");
            node.phase() == Phase::Broadcast
                && node.leader() == Some(leader_id)
                && node.delivered_zxid() == node.last_zxid()
                && n.app == self.nodes[leader].app
                && n.disk.pending().is_empty()
        })
    }

    /// Runs fault-free for up to `max_steps` until every node (all must be up) has converged;
    /// returns the leader.
    ///
    /// # Panics
    /// With the report, if the cluster does not converge in time.
    pub fn converge(&mut self, max_steps: usize) -> usize {
        assert!(self.run_until(max_steps, |s| s.converged()), "no convergence:\n{}", self.report());
        self.leader().expect("converged means one leader")
    }

    /// Runs fault-free for up to `max_steps` until the live nodes have converged; returns the
    /// leader.
    ///
    /// # Panics
    /// With the report, if the live nodes do not converge in time.
    pub fn converge_live(&mut self, max_steps: usize) -> usize {
        let converged = self.run_until(max_steps, |s| s.live_converged());
        assert!(converged, "no convergence among the live nodes:\n{}", self.report());
        self.leader().expect("converged means one leader")
    }

    /// Proposes `count` fresh payloads at node `at`, one by one.
    ///
    /// # Panics
    /// With the report, if the node refuses one.
    pub fn propose_n(&mut self, at: usize, count: usize) {
        for _ in 0..count {
            self.propose(at).unwrap_or_else(|e| panic!("propose failed: {e}\n{}", self.report()));
        }
    }

    /// Ends the faults: heals every partition and hold, lets every stalled disk flow and
    /// restarts every crashed node (the calm phase after a chaos phase).
    pub fn calm(&mut self) {
        self.heal();
        for i in 0..self.nodes.len() {
            self.nodes[i].disk_stalled = false;
            self.restart(i);
        }
    }

    /// The messages `from` sent to `to` while [`Sim::record_sent`] was on.
    pub fn sent_to(&self, from: usize, to: usize) -> Vec<&Message> {
        let (from, to) = (self.nodes[from].id, self.nodes[to].id);
        self.sent.iter().filter(|s| s.from == from && s.to == to).map(|s| &s.msg).collect()
    }

    /// The sync modes `leader` chose for `follower` while [`Sim::record_sent`] was on.
    pub fn sync_modes(&self, leader: usize, follower: usize) -> Vec<SyncMode> {
        let modes = self.sent_to(leader, follower).into_iter().filter_map(|msg| match msg {
            Message::SyncStart(mode) => Some(*mode),
            _ => None,
        });
        modes.collect()
    }

    /// Whether some node delivered `zxid`.
    pub fn delivered_anywhere(&self, zxid: Zxid) -> bool {
        self.global.iter().any(|(z, _)| *z == zxid)
    }
}
