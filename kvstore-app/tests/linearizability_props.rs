//! The checker against histories made by a real sequential store: every operation takes effect
//! at one instant inside its interval, so the history is linearizable by construction and must
//! be accepted; corrupting one observed result must be caught.

use kvstore_app::store::{Op, OpResult, Store};
use kvstore_app::tools::linearizability::{check, CheckError, ClientId, HistoryOp};
use proptest::prelude::*;

/// How a generated operation ends.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Takes effect and the client sees the result.
    Returned,
    /// Takes effect, but the client never hears back.
    TimedOutApplied,
    /// Never takes effect, and the client never hears back.
    TimedOutLost,
}

#[derive(Clone, Debug)]
struct Planned {
    client: u64,
    op: Op,
    before: u64,
    after: u64,
    fate: Fate,
}

fn planned_op() -> impl Strategy<Value = Planned> {
    let key = (0u8..3).prop_map(|k| format!("k{k}").into_bytes());
    let value = || (0u8..4).prop_map(|v| format!("v{v}").into_bytes());
    let op = prop_oneof![
        3 => key.clone().prop_map(|key| Op::Get { key }),
        3 => (key.clone(), value()).prop_map(|(key, value)| Op::Set { key, value }),
        1 => key.clone().prop_map(|key| Op::Del { key }),
        2 => (key, value(), value()).prop_map(|(key, expected, new)| Op::Cas { key, expected, new }),
    ];
    let fate = prop_oneof![
        8 => Just(Fate::Returned),
        1 => Just(Fate::TimedOutApplied),
        1 => Just(Fate::TimedOutLost),
    ];
    (0u64..4, op, 0u64..40, 0u64..40, fate).prop_map(|(client, op, before, after, fate)| Planned {
        client,
        op,
        before,
        after,
        fate,
    })
}

/// Runs the plan on a real store: operation `i` takes effect at time `10·i + 50`, inside an
/// interval stretching `before` and `after` around it, so intervals overlap freely.
fn history_of(plan: &[Planned]) -> Vec<HistoryOp> {
    let mut store = Store::new();
    let mut history = Vec::new();
    for (i, planned) in plan.iter().enumerate() {
        let at = 10 * i as u64 + 50;
        let invoke = at - planned.before;
        let client = ClientId(planned.client);
        let entry = match planned.fate {
            Fate::Returned => {
                let result = store.apply(&planned.op);
                HistoryOp::returned(client, invoke, at + planned.after, planned.op.clone(), result)
            }
            Fate::TimedOutApplied => {
                store.apply(&planned.op);
                HistoryOp::unknown(client, invoke, planned.op.clone())
            }
            Fate::TimedOutLost => HistoryOp::unknown(client, invoke, planned.op.clone()),
        };
        history.push(entry);
    }
    history
}

fn shuffled_history() -> impl Strategy<Value = Vec<HistoryOp>> {
    prop::collection::vec(planned_op(), 0..40)
        .prop_flat_map(|plan| Just(history_of(&plan)).prop_shuffle())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn histories_of_a_real_store_are_accepted(history in shuffled_history()) {
        if let Err(error) = check(&history) {
            return Err(TestCaseError::fail(format!("{error}")));
        }
    }

    #[test]
    fn a_read_of_a_value_never_written_is_always_caught(
        history in shuffled_history(),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut history = history;
        let reads: Vec<usize> = (0..history.len())
            .filter(|&i| matches!(history[i].op, Op::Get { .. }) && history[i].response().is_some())
            .collect();
        prop_assume!(!reads.is_empty());
        let corrupted = reads[pick.index(reads.len())];
        let response = history[corrupted].response().unwrap();
        history[corrupted] = HistoryOp::returned(
            history[corrupted].client,
            history[corrupted].invoke,
            response,
            history[corrupted].op.clone(),
            OpResult::Value(Some(b"never written".to_vec())),
        );
        match check(&history) {
            Err(CheckError::NotLinearizable(violation)) => {
                prop_assert_eq!(&violation.key[..], history[corrupted].op.key());
                prop_assert!(violation.ops.iter().any(|(index, _)| *index == corrupted), "{}", violation);
            }
            other => prop_assert!(false, "not caught: {:?}", other),
        }
    }

    #[test]
    fn flipping_a_cas_or_del_result_is_caught_when_operations_do_not_overlap(
        plan in prop::collection::vec(planned_op(), 1..20),
        pick in any::<prop::sample::Index>(),
    ) {
        // Sequential intervals and no timeouts: the only linearization is the real order, so
        // any changed boolean result contradicts it.
        let plan: Vec<Planned> = plan
            .into_iter()
            .map(|p| Planned { before: 0, after: 0, fate: Fate::Returned, ..p })
            .collect();
        let mut history = history_of(&plan);
        let flippable: Vec<usize> = (0..history.len())
            .filter(|&i| matches!(history[i].result(), Some(OpResult::Deleted(_) | OpResult::Swapped(_))))
            .collect();
        prop_assume!(!flippable.is_empty());
        let flipped = flippable[pick.index(flippable.len())];
        let entry = &history[flipped];
        let result = match entry.result() {
            Some(OpResult::Deleted(existed)) => OpResult::Deleted(!existed),
            Some(OpResult::Swapped(swapped)) => OpResult::Swapped(!swapped),
            _ => unreachable!(),
        };
        history[flipped] = HistoryOp::returned(entry.client, entry.invoke, entry.response().unwrap(), entry.op.clone(), result);
        prop_assert!(check(&history).is_err());
    }
}
