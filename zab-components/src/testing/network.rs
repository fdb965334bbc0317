//! The simulated network of a [`Sim`]: one FIFO queue per directed link (a session), and the
//! faults a test can script on it: holds, partitions, lost sessions, injected, dropped and
//! tampered messages.

use super::{describe, Sim};
use crate::protocol::{Message, PeerId};

/// One message sent, for assertions about the protocol's choices.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The sender.
    pub from: PeerId,
    /// The addressee.
    pub to: PeerId,
    /// The message.
    pub msg: Message,
}

impl Sim {
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

    pub(super) fn deliverable_links(&self) -> Vec<(usize, usize)> {
        self.links
            .iter()
            .filter(|(link, queue)| {
                !queue.is_empty()
                    && self.stalled_until.get(link).is_none_or(|until| self.now >= *until)
            })
            .map(|(link, _)| *link)
            .collect()
    }

    pub(super) fn end_sessions_of(&mut self, i: usize) {
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
}
