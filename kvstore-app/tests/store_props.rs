//! The store against a naive model, and its snapshots against corruption.

use std::collections::HashMap;

use kvstore_app::store::{Bin, Op, OpResult, Pair, Refusal, SetCondition, Store};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    let key = prop::collection::vec(0u8..4, 0..3);
    let value = prop::collection::vec(0u8..3, 0..3);
    prop_oneof![
        key.clone().prop_map(|key| Op::Get { key }),
        (key.clone(), value.clone()).prop_map(|(key, value)| Op::Set { key, value }),
        key.clone().prop_map(|key| Op::Del { key }),
        (key.clone(), value.clone(), value.clone()).prop_map(|(key, expected, new)| Op::Cas {
            key,
            expected,
            new
        }),
        // The string writes: values of digits 0..3 are often integers, sometimes not ("01").
        (key.clone(), -3i64..3).prop_map(|(key, by)| Op::IncrBy { key, by }),
        (key.clone(), value.clone(), 0u64..5).prop_map(|(key, value, len_max)| Op::Append {
            key,
            value,
            len_max
        }),
        (key.clone(), value.clone(), any::<[bool; 3]>()).prop_map(|(key, value, [a, b, c])| {
            Op::SetIf {
                key,
                value,
                condition: SetCondition { if_missing: a, if_exists: b, get_old: c },
            }
        }),
        key.clone().prop_map(|key| Op::GetDel { key }),
        prop::collection::vec(key.clone(), 1..4)
            .prop_map(|keys| Op::MultiGet { keys: keys.into_iter().map(Bin).collect() }),
        prop::collection::vec(key.clone(), 1..4)
            .prop_map(|keys| Op::MultiDel { keys: keys.into_iter().map(Bin).collect() }),
        (prop::collection::vec((key, value), 1..3), any::<bool>()).prop_map(|(pairs, nx)| {
            Op::MultiSet {
                pairs: pairs.into_iter().map(|(key, value)| Pair { key, value }).collect(),
                only_if_none_exist: nx,
            }
        }),
    ]
    .prop_map(|op| match op {
        // The generator's digits are bytes 0..3; make integer-looking text of them.
        Op::Set { key, value } => Op::Set { key, value: digits(value) },
        Op::Append { key, value, len_max } => Op::Append { key, value: digits(value), len_max },
        other => other,
    })
}

fn digits(value: Vec<u8>) -> Vec<u8> {
    value.into_iter().map(|byte| b'0' + byte).collect()
}

/// The integer rules, plainly: Rust's parser, minus what Redis refuses ('+', leading zeros, -0).
fn model_integer(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if canonical {
        text.parse().ok()
    } else {
        None
    }
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
        Op::IncrBy { key, by } => {
            let old = match model.get(key) {
                None => 0,
                Some(bytes) => match model_integer(bytes) {
                    Some(old) => old,
                    None => return OpResult::Refused(Refusal::NotAnInteger),
                },
            };
            match old.checked_add(*by) {
                None => OpResult::Refused(Refusal::Overflow),
                Some(new) => {
                    model.insert(key.clone(), new.to_string().into_bytes());
                    OpResult::Integer(new)
                }
            }
        }
        Op::Append { key, value, len_max } => {
            let mut new = model.get(key).cloned().unwrap_or_default();
            new.extend_from_slice(value);
            if new.len() as u64 > *len_max {
                return OpResult::Refused(Refusal::TooLong);
            }
            let len = new.len() as i64;
            model.insert(key.clone(), new);
            OpResult::Integer(len)
        }
        Op::SetIf { key, value, condition } => {
            let old = model.get(key).cloned();
            let written = match old {
                Some(_) => !condition.if_missing,
                None => !condition.if_exists,
            };
            if written {
                model.insert(key.clone(), value.clone());
            }
            OpResult::Written { written, old: if condition.get_old { old } else { None } }
        }
        Op::GetDel { key } => OpResult::Value(model.remove(key)),
        Op::MultiSet { pairs, only_if_none_exist } => {
            let written = !*only_if_none_exist || pairs.iter().all(|p| !model.contains_key(&p.key));
            if written {
                for pair in pairs {
                    model.insert(pair.key.clone(), pair.value.clone());
                }
            }
            OpResult::Written { written, old: None }
        }
        Op::MultiGet { keys } => {
            OpResult::Values(keys.iter().map(|key| model.get(&key.0).cloned().map(Bin)).collect())
        }
        Op::MultiDel { keys } => OpResult::Integer(
            keys.iter().filter(|key| model.remove(&key.0).is_some()).count() as i64,
        ),
        other => unreachable!("the generator makes no {other:?}"),
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
