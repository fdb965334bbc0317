//! The store against a naive model, and its snapshots against corruption.

use std::collections::HashMap;

use kvstore_app::store::{Op, OpResult, Store};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let key = prop::collection::vec(0u8..4, 0..3);
    let value = prop::collection::vec(0u8..3, 0..3);
    prop_oneof![
        key.clone().prop_map(|key| Op::Get { key }),
        (key.clone(), value.clone()).prop_map(|(key, value)| Op::Set { key, value }),
        key.clone().prop_map(|key| Op::Del { key }),
        (key, value.clone(), value).prop_map(|(key, expected, new)| Op::Cas { key, expected, new }),
    ]
}

/// The model: a hash map and the contract written out plainly.
fn model_apply(model: &mut HashMap<Vec<u8>, Vec<u8>>, op: &Op) -> OpResult {
    match op {
        Op::Get { key } => OpResult::Value(model.get(key).cloned()),
        Op::Set { key, value } => {
            model.insert(key.clone(), value.clone());
            OpResult::Stored
        }
        Op::Del { key } => OpResult::Deleted(model.remove(key).is_some()),
        Op::Cas { key, expected, new } => {
            let swap = model.get(key) == Some(expected);
            if swap {
                model.insert(key.clone(), new.clone());
            }
            OpResult::Swapped(swap)
        }
    }
}

proptest! {
    #[test]
    fn the_store_behaves_like_the_model(ops in prop::collection::vec(op(), 0..60)) {
        let mut store = Store::new();
        let mut model = HashMap::new();
        for op in &ops {
            prop_assert_eq!(store.apply(op), model_apply(&mut model, op));
        }
        prop_assert_eq!(store.len(), model.len());
        let bytes: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        prop_assert_eq!(store.data_bytes(), bytes);
        let restored = Store::restore(&store.snapshot()).unwrap();
        prop_assert_eq!(restored.snapshot(), store.snapshot());
        prop_assert_eq!(&restored, &store);
    }

    #[test]
    fn replicas_applying_the_same_ops_agree_byte_for_byte(ops in prop::collection::vec(op(), 0..60)) {
        let encoded: Vec<Vec<u8>> = ops.iter().map(Op::to_bytes).collect();
        let mut leader = Store::new();
        let mut follower = Store::new();
        for (op, bytes) in ops.iter().zip(&encoded) {
            let decoded = Op::from_bytes(bytes).unwrap();
            prop_assert_eq!(&decoded, op);
            prop_assert_eq!(leader.apply(op), follower.apply(&decoded));
        }
        prop_assert_eq!(leader.snapshot(), follower.snapshot());
    }

    #[test]
    fn garbage_never_panics_restore_or_decode(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        let _ = Store::restore(&bytes);
        let _ = Op::from_bytes(&bytes);
        let _ = OpResult::from_bytes(&bytes);
    }

    #[test]
    fn a_corrupted_snapshot_is_refused(
        ops in prop::collection::vec(op(), 1..30),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut store = Store::new();
        for op in &ops {
            store.apply(op);
        }
        let mut snapshot = store.snapshot();
        let at = position.index(snapshot.len());
        snapshot[at] ^= flip;
        prop_assert!(Store::restore(&snapshot).is_err());
    }
}
