//! The DIFF / TRUNC / SNAP choice ([`plan_sync`]) against a naive model that sees both whole
//! histories (STYLE.md 10; zab.md §4.2, ZOOKEEPER-4352).
//!
//! Histories are generated the way Zab produces them: a common prefix, then per side an
//! extension made of whole epochs that only that side saw (one epoch has one leader, so two
//! sides can only differ by epochs, except that one side may continue the prefix's last epoch
//! further than the other). The leader side may have taken a snapshot of a prefix of its
//! history.

use proptest::prelude::*;
use zab_components::protocol::{plan_sync, SyncPlan, Zxid};

/// A history: zxids in increasing order.
fn epoch_run(epoch: u64, from: u64, count: u64) -> Vec<Zxid> {
    (from..from + count).map(|counter| Zxid::new(epoch, counter)).collect()
}

#[derive(Debug, Clone)]
struct Case {
    leader: Vec<Zxid>,
    follower: Vec<Zxid>,
    snapshot_len: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(0u64..4, 0..4), // entries per prefix epoch
        0u64..3,                                  // leader continues the last prefix epoch
        0u64..3,                                  // follower continues it
        proptest::collection::vec(0u64..3, 0..3), // leader's own new epochs
        proptest::collection::vec(0u64..3, 0..3), // follower's own new epochs
        0usize..20,
        any::<bool>(),
    )
        .prop_map(
            |(prefix, lead_more, follow_more, lead_new, follow_new, snap, who_continues)| {
                let mut common = Vec::new();
                let mut epoch = 0;
                for count in prefix {
                    epoch += 1;
                    common.extend(epoch_run(epoch, 1, count));
                }
                let last_epoch = epoch;
                let next = common.last().map_or(1, |z: &Zxid| z.counter + 1);
                let mut leader = common.clone();
                let mut follower = common.clone();
                // Only one side can continue the prefix's last epoch past the other: within an
                // epoch both are prefixes of the epoch leader's sequence.
                if last_epoch > 0 {
                    let (more_l, more_f) =
                        if who_continues { (lead_more, 0) } else { (0, follow_more) };
                    let shared = lead_more.min(follow_more);
                    leader.extend(epoch_run(last_epoch, next, shared + more_l));
                    follower.extend(epoch_run(last_epoch, next, shared + more_f));
                }
                // Later epochs are disjoint: the leader's are odd offsets, the follower's even.
                for (k, count) in lead_new.into_iter().enumerate() {
                    leader.extend(epoch_run(last_epoch + 1 + 2 * k as u64, 1, count));
                }
                for (k, count) in follow_new.into_iter().enumerate() {
                    follower.extend(epoch_run(last_epoch + 2 + 2 * k as u64, 1, count));
                }
                let snapshot_len = snap.min(leader.len());
                Case { leader, follower, snapshot_len }
            },
        )
}

/// Applies a plan to the follower's history as the follower would; `None` if the plan is
/// impossible for it (DIFF from a zxid it does not end at, TRUNC to a zxid it lacks).
fn apply(plan: SyncPlan, case: &Case) -> Option<Vec<Zxid>> {
    let base = if case.snapshot_len == 0 { Zxid::ZERO } else { case.leader[case.snapshot_len - 1] };
    let after = |from: Zxid| case.leader.iter().copied().filter(move |z| *z > from);
    match plan {
        SyncPlan::Diff { last } => {
            if case.follower.last().copied().unwrap_or(Zxid::ZERO) != last {
                return None;
            }
            let mut out = case.follower.clone();
            out.extend(after(last));
            Some(out)
        }
        SyncPlan::Trunc { to } => {
            if to != Zxid::ZERO && !case.follower.contains(&to) {
                return None;
            }
            let mut out: Vec<Zxid> = case.follower.iter().copied().filter(|z| *z <= to).collect();
            out.extend(after(to));
            Some(out)
        }
        SyncPlan::Snap => {
            let mut out: Vec<Zxid> = case.leader[..case.snapshot_len].to_vec();
            out.extend(after(base));
            Some(out)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the plan, the follower ends with exactly the leader's history.
    #[test]
    fn every_plan_makes_the_follower_equal_to_the_leader(case in case()) {
        let base = if case.snapshot_len == 0 { Zxid::ZERO } else { case.leader[case.snapshot_len - 1] };
        let history = &case.leader[case.snapshot_len..];
        let follower_last = case.follower.last().copied().unwrap_or(Zxid::ZERO);
        let plan = plan_sync(base, history, follower_last);
        prop_assert_eq!(apply(plan, &case), Some(case.leader.clone()), "plan {:?}", plan);
    }

    /// SNAP only when needed: DIFF when the follower is a prefix at or after the snapshot,
    /// TRUNC when it diverged within one epoch after the snapshot; never TRUNC across epochs.
    #[test]
    fn snap_is_chosen_only_when_diff_and_same_epoch_trunc_are_impossible(case in case()) {
        let base = if case.snapshot_len == 0 { Zxid::ZERO } else { case.leader[case.snapshot_len - 1] };
        let history = &case.leader[case.snapshot_len..];
        let follower_last = case.follower.last().copied().unwrap_or(Zxid::ZERO);
        let common = case
            .leader
            .iter()
            .zip(&case.follower)
            .take_while(|(l, f)| l == f)
            .count();
        let common_last = if common == 0 { Zxid::ZERO } else { case.leader[common - 1] };
        let is_prefix = common == case.follower.len();
        let expected = if is_prefix && follower_last >= base {
            SyncPlan::Diff { last: follower_last }
        } else if !is_prefix && common_last >= base && common_last.epoch == follower_last.epoch {
            SyncPlan::Trunc { to: common_last }
        } else {
            SyncPlan::Snap
        };
        prop_assert_eq!(plan_sync(base, history, follower_last), expected);
    }
}
