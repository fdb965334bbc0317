//! The string writes beyond `SET`/`DEL`/`CAS`: how the state machine decides each one.
//!
//! Every op here is decided by `Store::decide` from the store's contents and the op alone:
//! the same on every replica, so each is one linearizable log entry, like `SET`. A decision is
//! a list of changes and the result; a [`Refusal`] (not an integer, overflow, too long…)
//! comes with no change, so a refused op leaves the store as it was. The number rules are
//! Redis': integers are what its `string2ll` accepts (no sign `+`, no leading zeros, no
//! spaces), and a float result is printed without exponent.

use super::{Op, OpResult, Refusal, Store};
use crate::resp::parse_i64;

/// One change a write makes to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change<'a> {
    /// Write this value at this key.
    Put(&'a [u8], Vec<u8>),
    /// Remove this key.
    Remove(&'a [u8]),
    /// Remove every key.
    Clear,
}

type Decision<'a> = (Vec<Change<'a>>, OpResult);

impl Store {
    /// What applying the write `op` changes and returns, without changing anything. Ops with
    /// a path of their own in [`Store::apply`] (`Set`, `Del`, `Cas`) and reads are not
    /// decided here.
    pub(crate) fn decide<'a>(&self, op: &'a Op) -> Decision<'a> {
        let refused = |refusal| (Vec::new(), OpResult::Refused(refusal));
        match op {
            Op::IncrBy { key, by } => match self.integer_at(key) {
                Err(refusal) => refused(refusal),
                Ok(old) => match old.checked_add(*by) {
                    None => refused(Refusal::Overflow),
                    Some(new) => (vec![put(key, new.to_string())], OpResult::Integer(new)),
                },
            },
            Op::IncrByFloat { key, by_bits } => {
                let old = match self.get(key) {
                    None => 0.0,
                    Some(bytes) => match parse_float(bytes) {
                        Some(value) => value,
                        None => return refused(Refusal::NotAFloat),
                    },
                };
                let new = old + f64::from_bits(*by_bits);
                if !new.is_finite() {
                    return refused(Refusal::NanOrInfinity);
                }
                let text = format_float(new);
                (vec![put(key, text.clone())], OpResult::Value(Some(text.into_bytes())))
            }
            Op::Append { key, value, len_max } => {
                let old = self.get(key).unwrap_or_default();
                if (old.len() + value.len()) as u64 > *len_max {
                    return refused(Refusal::TooLong);
                }
                let new = [old, value].concat();
                let len = new.len() as i64;
                (vec![Change::Put(key, new)], OpResult::Integer(len))
            }
            Op::SetRange { key, offset, value, len_max } => {
                self.decide_set_range(key, *offset, value, *len_max)
            }
            Op::SetIf { key, value, condition } => {
                let old = self.get(key);
                let write = !(condition.if_missing && old.is_some()
                    || condition.if_exists && old.is_none());
                let changes = if write { vec![Change::Put(key, value.clone())] } else { vec![] };
                let old = old.filter(|_| condition.get_old).map(<[u8]>::to_vec);
                (changes, OpResult::Written { written: write, old })
            }
            Op::GetDel { key } => match self.get(key) {
                None => (vec![], OpResult::Value(None)),
                Some(old) => (vec![Change::Remove(key)], OpResult::Value(Some(old.to_vec()))),
            },
            Op::MultiSet { pairs, only_if_none_exist } => {
                if *only_if_none_exist && pairs.iter().any(|pair| self.get(&pair.key).is_some()) {
                    return (vec![], OpResult::Written { written: false, old: None });
                }
                let changes =
                    pairs.iter().map(|pair| Change::Put(&pair.key, pair.value.clone())).collect();
                (changes, OpResult::Written { written: true, old: None })
            }
            Op::Flush { .. } => (vec![Change::Clear], OpResult::Stored),
            Op::MultiDel { keys } => {
                let mut removed: Vec<&[u8]> = Vec::new();
                for key in keys {
                    if self.get(&key.0).is_some() && !removed.contains(&&key.0[..]) {
                        removed.push(&key.0);
                    }
                }
                let count = removed.len() as i64;
                (removed.into_iter().map(Change::Remove).collect(), OpResult::Integer(count))
            }
            Op::Get { .. }
            | Op::Set { .. }
            | Op::Del { .. }
            | Op::Cas { .. }
            | Op::Count { .. }
            | Op::Scan { .. }
            | Op::MultiGet { .. } => {
                unreachable!("{op:?} is applied by Store::apply or read, not decided")
            }
        }
    }

    /// The integer at `key` (0 if missing), or why it is not one.
    fn integer_at(&self, key: &[u8]) -> Result<i64, Refusal> {
        match self.get(key) {
            None => Ok(0),
            Some(bytes) => parse_i64(bytes).ok_or(Refusal::NotAnInteger),
        }
    }

    /// `SETRANGE`: as Redis, an empty `value` changes nothing (and creates no key), and the
    /// size check applies only when something is written.
    fn decide_set_range<'a>(
        &self,
        key: &'a [u8],
        offset: u64,
        value: &[u8],
        len_max: u64,
    ) -> Decision<'a> {
        let old = self.get(key);
        let old_len = old.map_or(0, <[u8]>::len);
        if value.is_empty() {
            return (vec![], OpResult::Integer(old_len as i64));
        }
        let end = offset.checked_add(value.len() as u64).filter(|&end| end <= len_max);
        let Some(end) = end else { return (vec![], OpResult::Refused(Refusal::TooLong)) };
        // `end <= len_max`, and the front end's limit fits in memory: the casts are exact.
        let (offset, end) = (offset as usize, end as usize);
        let mut new = old.unwrap_or_default().to_vec();
        if new.len() < end {
            new.resize(end, 0);
        }
        new[offset..end].copy_from_slice(value);
        let len = new.len() as i64;
        (vec![Change::Put(key, new)], OpResult::Integer(len))
    }
}

fn put(key: &[u8], text: String) -> Change<'_> {
    Change::Put(key, text.into_bytes())
}

/// A float as `INCRBYFLOAT` reads it: a decimal or exponent form (`1.5`, `-2e3`, `inf`), no
/// spaces, not NaN.
pub fn parse_float(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let value: f64 = text.parse().ok()?;
    (!value.is_nan()).then_some(value)
}

/// A finite float as `INCRBYFLOAT` prints it: plain decimal notation (no exponent), at most
/// 15 significant digits, no trailing zeros, no trailing point (`3`, `10.6`, `-0.001`).
///
/// Redis computes in `long double` and prints 17 significant digits; we compute in `f64`,
/// whose 15 significant digits are exact, so the binary noise Redis hides in its extra
/// precision is hidden here too (`0.1 + 0.2` prints `0.3` in both).
pub fn format_float(value: f64) -> String {
    // `{:.14e}` rounds to 15 significant digits: "d.dddddddddddddde±x".
    let scientific = format!("{:.14e}", value);
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}`'s exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        return "0".to_owned();
    }
    // The decimal point goes after `exponent + 1` digits.
    let point = exponent + 1;
    let (integer, fraction) = if point <= 0 {
        ("0".to_owned(), "0".repeat(point.unsigned_abs() as usize) + digits)
    } else if point as usize >= digits.len() {
        (digits.to_owned() + &"0".repeat(point as usize - digits.len()), String::new())
    } else {
        (digits[..point as usize].to_owned(), digits[point as usize..].to_owned())
    };
    if fraction.is_empty() {
        format!("{sign}{integer}")
    } else {
        format!("{sign}{integer}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Pair, SetCondition};

    fn k(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }

    fn incr(key: &str, by: i64) -> Op {
        Op::IncrBy { key: k(key), by }
    }

    fn incr_float(key: &str, by: f64) -> Op {
        Op::IncrByFloat { key: k(key), by_bits: by.to_bits() }
    }

    fn set(store: &mut Store, key: &str, value: &str) {
        store.apply(&Op::Set { key: k(key), value: k(value) });
    }

    fn value(text: &str) -> OpResult {
        OpResult::Value(Some(k(text)))
    }

    #[test]
    fn floats_print_without_exponent_or_trailing_zeros() {
        assert_eq!(format_float(3.0), "3");
        assert_eq!(format_float(10.5 + 0.1), "10.6");
        assert_eq!(format_float(0.1 + 0.2), "0.3");
        assert_eq!(format_float(-0.001), "-0.001");
        assert_eq!(format_float(5.0e3), "5000");
        assert_eq!(format_float(1.5e-7), "0.00000015");
        assert_eq!(format_float(0.0), "0");
        assert_eq!(format_float(-0.0), "0");
        assert_eq!(format_float(1e20), "100000000000000000000");
        assert_eq!(parse_float(b"1e3"), Some(1000.0));
        assert_eq!(parse_float(b"nan"), None);
        assert_eq!(parse_float(b" 1"), None);
        assert_eq!(parse_float(b"abc"), None);
    }

    #[test]
    fn incrby_counts_from_zero_and_refuses_non_integers_and_overflow() {
        let mut store = Store::new();
        assert_eq!(store.apply(&incr("n", 1)), OpResult::Integer(1));
        assert_eq!(store.apply(&incr("n", -5)), OpResult::Integer(-4));
        assert_eq!(store.get(b"n"), Some(&b"-4"[..]));
        set(&mut store, "n", &i64::MAX.to_string());
        assert_eq!(store.apply(&incr("n", 1)), OpResult::Refused(Refusal::Overflow));
        assert_eq!(store.get(b"n"), Some(i64::MAX.to_string().as_bytes()), "unchanged");
        set(&mut store, "s", "12a");
        assert_eq!(store.apply(&incr("s", 1)), OpResult::Refused(Refusal::NotAnInteger));
        set(&mut store, "s", " 1");
        assert_eq!(store.apply(&incr("s", 1)), OpResult::Refused(Refusal::NotAnInteger));
        assert_eq!(store.get(b"s"), Some(&b" 1"[..]));
    }

    #[test]
    fn incrbyfloat_stores_and_returns_the_printed_sum() {
        let mut store = Store::new();
        assert_eq!(store.apply(&incr_float("f", 10.5)), value("10.5"));
        assert_eq!(store.apply(&incr_float("f", 0.1)), value("10.6"));
        assert_eq!(store.get(b"f"), Some(&b"10.6"[..]));
        set(&mut store, "i", "5");
        assert_eq!(store.apply(&incr_float("i", -5.0)), value("0"));
        assert_eq!(
            store.apply(&incr_float("i", f64::INFINITY)),
            OpResult::Refused(Refusal::NanOrInfinity)
        );
        set(&mut store, "s", "x");
        assert_eq!(store.apply(&incr_float("s", 1.0)), OpResult::Refused(Refusal::NotAFloat));
        // An integer-only counter can be read as a float, not the other way round.
        assert_eq!(store.apply(&incr("f", 1)), OpResult::Refused(Refusal::NotAnInteger));
    }

    #[test]
    fn append_and_setrange_grow_values_up_to_their_limit() {
        let mut store = Store::new();
        let append = |value: &str, len_max| Op::Append { key: k("a"), value: k(value), len_max };
        assert_eq!(store.apply(&append("ab", 4)), OpResult::Integer(2));
        assert_eq!(store.apply(&append("cd", 4)), OpResult::Integer(4));
        assert_eq!(store.apply(&append("e", 4)), OpResult::Refused(Refusal::TooLong));
        assert_eq!(store.get(b"a"), Some(&b"abcd"[..]));

        let range = |key: &str, offset, value: &str| Op::SetRange {
            key: k(key),
            offset,
            value: k(value),
            len_max: 8,
        };
        assert_eq!(store.apply(&range("a", 1, "XY")), OpResult::Integer(4));
        assert_eq!(store.get(b"a"), Some(&b"aXYd"[..]));
        assert_eq!(store.apply(&range("z", 2, "q")), OpResult::Integer(3));
        assert_eq!(store.get(b"z"), Some(&b"\0\0q"[..]), "padded with zero bytes");
        assert_eq!(store.apply(&range("new", 5, "")), OpResult::Integer(0));
        assert_eq!(store.get(b"new"), None, "an empty write creates nothing");
        assert_eq!(store.apply(&range("a", 7, "12")), OpResult::Refused(Refusal::TooLong));
        assert_eq!(store.apply(&range("a", u64::MAX, "1")), OpResult::Refused(Refusal::TooLong));
        assert_eq!(store.get(b"a"), Some(&b"aXYd"[..]));
    }

    #[test]
    fn set_if_follows_nx_xx_and_get() {
        let mut store = Store::new();
        let cond = |if_missing, if_exists, get_old| SetCondition { if_missing, if_exists, get_old };
        let set_if = |value: &str, condition| Op::SetIf { key: k("k"), value: k(value), condition };
        let written = |written, old: Option<&str>| OpResult::Written { written, old: old.map(k) };
        assert_eq!(store.apply(&set_if("1", cond(false, true, false))), written(false, None));
        assert_eq!(store.get(b"k"), None, "XX on a missing key writes nothing");
        assert_eq!(store.apply(&set_if("1", cond(true, false, true))), written(true, None));
        assert_eq!(store.apply(&set_if("2", cond(true, false, true))), written(false, Some("1")));
        assert_eq!(store.get(b"k"), Some(&b"1"[..]));
        assert_eq!(store.apply(&set_if("3", cond(false, true, true))), written(true, Some("1")));
        assert_eq!(store.apply(&set_if("4", cond(false, false, false))), written(true, None));
        assert_eq!(store.apply(&Op::GetDel { key: k("k") }), value("4"));
        assert_eq!(store.apply(&Op::GetDel { key: k("k") }), OpResult::Value(None));
        assert!(store.is_empty());
    }

    #[test]
    fn multi_set_writes_all_or_with_nx_nothing() {
        let mut store = Store::new();
        let pairs = |items: &[(&str, &str)]| {
            items.iter().map(|(key, value)| Pair { key: k(key), value: k(value) }).collect()
        };
        let mset = |items: &[(&str, &str)], nx| Op::MultiSet {
            pairs: pairs(items),
            only_if_none_exist: nx,
        };
        let done = |written| OpResult::Written { written, old: None };
        assert_eq!(store.apply(&mset(&[("a", "1"), ("b", "2"), ("a", "3")], false)), done(true));
        assert_eq!(store.get(b"a"), Some(&b"3"[..]), "the later pair wins");
        assert_eq!(store.apply(&mset(&[("c", "1"), ("b", "9")], true)), done(false));
        assert_eq!(store.get(b"c"), None);
        assert_eq!(store.apply(&mset(&[("c", "1"), ("d", "9")], true)), done(true));
        assert_eq!(store.len(), 4);
        assert_eq!(store.apply(&Op::Count { partition: 0 }), OpResult::Integer(4));
        let bins = |keys: &[&str]| keys.iter().map(|key| crate::store::Bin(k(key))).collect();
        assert_eq!(
            store.apply(&Op::MultiGet { keys: bins(&["a", "zz", "c"]) }),
            OpResult::Values(vec![
                Some(crate::store::Bin(k("3"))),
                None,
                Some(crate::store::Bin(k("1")))
            ])
        );
        let data_bytes = store.data_bytes();
        assert_eq!(
            store.apply(&Op::MultiDel { keys: bins(&["a", "a", "zz", "c"]) }),
            OpResult::Integer(2)
        );
        assert_eq!(store.data_bytes(), data_bytes - 4, "a and c, key and value each");
        assert_eq!(store.len(), 2);
        assert_eq!(store.apply(&Op::Flush { partition: 0 }), OpResult::Stored);
        assert!(store.is_empty());
        assert_eq!(store.data_bytes(), 0);
        assert_eq!(store.scan(0, 10, None), (vec![], None));
    }
}
