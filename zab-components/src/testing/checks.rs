//! The invariant checks of a [`Sim`] run: zab.md's P1–P13 on what the nodes deliver, plus: a
//! quorum of disks holds every transaction at its first delivery. Some are checked as events
//! happen, the others by [`finish`] at the end of a run.

use std::collections::BTreeMap;

use super::Sim;
use crate::protocol::{Entry, Epoch, Zxid};

/// The harness's end-of-run checks: P1–P13, no protocol violation, every live node complete;
/// panics with the report if one fails.
pub fn finish(sim: &mut Sim) {
    sim.check_converged_state();
    sim.check_properties();
    assert!(sim.failure.is_none(), "{}", sim.report());
}

impl Sim {
    pub(super) fn record_logged(&mut self, entries: &[Entry]) {
        for entry in entries {
            if let Some(previous) = self.logged.insert(entry.zxid, entry.payload.clone()) {
                if previous != entry.payload {
                    self.fail(format!("P10: two payloads logged as {}", entry.zxid));
                }
            }
        }
    }

    /// P2, P3, P8: every state is a prefix of one global sequence (extended as needed).
    pub(super) fn check_prefix(&mut self, i: usize, when: &str) {
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
    pub(super) fn check_quorum_holds(&mut self, zxid: Zxid) {
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

    /// Protocol violations counted by the live nodes.
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
}
