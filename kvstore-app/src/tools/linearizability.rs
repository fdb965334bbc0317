//! A linearizability checker for client histories of the store (Wing & Gong's search with
//! Lowe's improvements, as in Knossos and Porcupine).
//!
//! A history is what clients observed: each operation with its invocation time, and either its
//! response time and result or [`Outcome::Unknown`] (the client timed out or lost its
//! connection). The history is linearizable if every operation can be given a single instant
//! between its invocation and its response at which it took effect, such that the results are
//! those of a sequential [`Store`](crate::store::Store) applying them in that order. An operation
//! with an unknown outcome may take effect at any instant after its invocation, or never.
//!
//! Keys are independent registers, and linearizability is compositional (Herlihy & Wing), so the
//! history is split per key and each key is checked alone. Per key the search keeps Lowe's
//! doubly-linked list of call and return events (an operation can be linearized next only if
//! it was invoked before every pending operation's response), and memoizes each
//! (set of linearized operations, register value) pair it has explored, so no configuration is
//! searched twice.
//!
//! Operation A precedes B only if A's response time is *strictly* below B's invocation time;
//! equal times count as concurrent.
//!
//! On failure the checker returns the key and a small set of that key's operations that cannot
//! be linearized together (the key's history shrunk while it stays non-linearizable, see
//! [`Violation::ops`]), plus the longest linearization the search found.
//!
//! ```
//! use kvstore_app::tools::linearizability::{check, ClientId, HistoryOp};
//! use kvstore_app::store::{Op, OpResult};
//!
//! let set = Op::Set { key: b"k".to_vec(), value: b"1".to_vec() };
//! let get = Op::Get { key: b"k".to_vec() };
//! let writer = HistoryOp::returned(ClientId(1), 0, 10, set, OpResult::Stored);
//! // A read that starts after the write returned must see it...
//! let fresh = HistoryOp::returned(ClientId(2), 11, 12, get.clone(), OpResult::Value(Some(b"1".to_vec())));
//! assert!(check(&[writer.clone(), fresh]).is_ok());
//! // ...and a stale read is caught.
//! let stale = HistoryOp::returned(ClientId(2), 11, 12, get, OpResult::Value(None));
//! assert!(check(&[writer, stale]).is_err());
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::resp::parse_i64;
use crate::store::strings::{format_float, parse_float};
use crate::store::{Op, OpResult, Refusal, SetCondition};

/// Which client issued an operation (for the explanation; the check does not need it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// How an operation ended, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The client got this result at this time.
    Returned {
        /// The response time.
        at: u64,
        /// The result.
        result: OpResult,
    },
    /// No response (timeout, lost connection): the operation may have taken effect at any time
    /// after its invocation, or never.
    Unknown,
}

/// One operation in a client history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryOp {
    /// The client that issued it.
    pub client: ClientId,
    /// The invocation time (any unit, the same for the whole history).
    pub invoke: u64,
    /// The operation.
    pub op: Op,
    /// How it ended.
    pub outcome: Outcome,
}

impl HistoryOp {
    /// An operation that returned `result` at time `response`.
    pub fn returned(
        client: ClientId,
        invoke: u64,
        response: u64,
        op: Op,
        result: OpResult,
    ) -> Self {
        HistoryOp { client, invoke, op, outcome: Outcome::Returned { at: response, result } }
    }

    /// An operation whose outcome is unknown.
    pub fn unknown(client: ClientId, invoke: u64, op: Op) -> Self {
        HistoryOp { client, invoke, op, outcome: Outcome::Unknown }
    }

    /// The response time, if the operation returned.
    pub fn response(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Returned { at, .. } => Some(at),
            Outcome::Unknown => None,
        }
    }

    /// The observed result, if the operation returned.
    pub fn result(&self) -> Option<&OpResult> {
        match &self.outcome {
            Outcome::Returned { result, .. } => Some(result),
            Outcome::Unknown => None,
        }
    }
}

impl fmt::Display for HistoryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |bytes: &[u8]| format!("\"{}\"", bytes.escape_ascii());
        write!(f, "client {} ", self.client.0)?;
        match self.response() {
            Some(at) => write!(f, "[{}, {}] ", self.invoke, at)?,
            None => write!(f, "[{}, ?] ", self.invoke)?,
        }
        match &self.op {
            Op::Get { key } => write!(f, "GET {}", text(key))?,
            Op::Set { key, value } => write!(f, "SET {} {}", text(key), text(value))?,
            Op::Del { key } => write!(f, "DEL {}", text(key))?,
            Op::Cas { key, expected, new } => {
                write!(f, "CAS {} {} {}", text(key), text(expected), text(new))?
            }
            other => write!(f, "{other:?}")?,
        }
        match self.result() {
            None => write!(f, " -> unknown"),
            Some(OpResult::Value(None)) => write!(f, " -> nil"),
            Some(OpResult::Value(Some(value))) => write!(f, " -> {}", text(value)),
            Some(OpResult::Stored) => write!(f, " -> OK"),
            Some(OpResult::Deleted(existed)) => write!(f, " -> {}", u8::from(*existed)),
            Some(OpResult::Swapped(swapped)) => write!(f, " -> {}", u8::from(*swapped)),
            Some(other) => write!(f, " -> {other:?}"),
        }
    }
}

/// Why a history was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// The history itself is inconsistent (a bug in the test harness, not in the store).
    Malformed {
        /// The index of the offending operation in the input.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The history is not linearizable.
    NotLinearizable(Violation),
}

/// The evidence that a history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key whose operations cannot be linearized.
    pub key: Vec<u8>,
    /// A small set of that key's operations, with their indices in the input, that cannot be
    /// linearized together. Found by shrinking the key's history: first forgetting observed
    /// results (a read is dropped, a write's outcome becomes unknown) while the history stays
    /// non-linearizable — this only relaxes constraints, so the returned operations left are a
    /// genuine contradiction — then dropping unknown-outcome writes of values nobody observed.
    /// When `minimal` is set, forgetting any one more result makes the rest linearizable.
    pub ops: Vec<(usize, HistoryOp)>,
    /// Whether shrinking ran to the end (it stops after [`SHRINK_CHECKS_MAX`] searches).
    pub minimal: bool,
    /// The input indices of the longest sequence of the key's operations the search managed to
    /// linearize, in linearization order: where it got stuck.
    pub longest_linearization: Vec<usize>,
}

/// The most searches spent shrinking a violation to a minimal set of operations.
pub const SHRINK_CHECKS_MAX: usize = 2_000;

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Malformed { index, reason } => {
                write!(f, "malformed history: operation #{index}: {reason}")
            }
            CheckError::NotLinearizable(violation) => violation.fmt(f),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key \"{}\" is not linearizable; these {} operations cannot be linearized together{}:",
            self.key.escape_ascii(),
            self.ops.len(),
            if self.minimal { "" } else { " (not fully shrunk)" }
        )?;
        for (index, op) in &self.ops {
            writeln!(f, "  #{index} {op}")?;
        }
        write!(f, "longest linearization found:")?;
        for index in &self.longest_linearization {
            write!(f, " #{index}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CheckError {}

/// Checks that `history` is linearizable with respect to the store's sequential semantics.
pub fn check(history: &[HistoryOp]) -> Result<(), CheckError> {
    validate(history)?;
    let mut by_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (index, entry) in history.iter().enumerate() {
        // A read whose outcome is unknown neither changed the register nor constrains it; kept,
        // it would stay pending for the whole search and double the states to explore.
        if entry.op.is_read_only() && entry.outcome == Outcome::Unknown {
            continue;
        }
        by_key.entry(entry.op.key()).or_default().push(index);
    }
    for (key, indices) in by_key {
        let register = Register::new(history, &indices);
        if let Err(longest) = register.search() {
            let (ops, minimal) = register.shrink();
            return Err(CheckError::NotLinearizable(Violation {
                key: key.to_vec(),
                ops: ops.into_iter().map(|index| (index, history[index].clone())).collect(),
                minimal,
                longest_linearization: longest,
            }));
        }
    }
    Ok(())
}

fn validate(history: &[HistoryOp]) -> Result<(), CheckError> {
    for (index, entry) in history.iter().enumerate() {
        if let Outcome::Returned { at, result } = &entry.outcome {
            if !models(&entry.op) {
                return Err(CheckError::Malformed {
                    index,
                    reason: "an operation the checker does not model",
                });
            }
            if *at < entry.invoke {
                return Err(CheckError::Malformed { index, reason: "response before invocation" });
            }
            if !entry.op.result_matches_kind(result) {
                return Err(CheckError::Malformed {
                    index,
                    reason: "result of another kind of operation",
                });
            }
        }
    }
    Ok(())
}

/// Whether the register model covers `op`: the single-key ops whose effect on one key is
/// all there is to them.
fn models(op: &Op) -> bool {
    matches!(
        op,
        Op::Get { .. }
            | Op::Set { .. }
            | Op::Del { .. }
            | Op::Cas { .. }
            | Op::IncrBy { .. }
            | Op::IncrByFloat { .. }
            | Op::Append { .. }
            | Op::SetIf { .. }
            | Op::GetDel { .. }
    )
}

/// The byte strings a register holds, numbered: [`ABSENT`] is none, `n ≥ 1` is `bytes[n - 1]`.
/// Values computed during the search (an `INCR`'s sum, an `APPEND`'s concatenation) get their
/// number when first met; equal bytes always get the same one, so the memo table stays sound.
#[derive(Clone, Debug, Default)]
struct Interner {
    ids: HashMap<Vec<u8>, Value>,
    bytes: Vec<Vec<u8>>,
}

impl Interner {
    fn intern(&mut self, bytes: &[u8]) -> Value {
        if let Some(&value) = self.ids.get(bytes) {
            return value;
        }
        self.bytes.push(bytes.to_vec());
        let value = self.bytes.len() as Value;
        self.ids.insert(bytes.to_vec(), value);
        value
    }

    fn bytes(&self, value: Value) -> Option<&[u8]> {
        (value != ABSENT).then(|| &self.bytes[value as usize - 1][..])
    }
}

/// A register value: 0 is "no such key", others are interned values.
type Value = u32;
const ABSENT: Value = 0;

/// One operation of a key's history, compiled for the search.
#[derive(Clone, Copy, Debug)]
struct RegisterOp {
    /// The index in the caller's history.
    index: usize,
    invoke: u64,
    /// `None` for an unknown outcome: it then returns after everything else.
    response: Option<u64>,
    kind: Kind,
}

/// An operation and what it observed (`None`: not observed).
#[derive(Clone, Copy, Debug)]
enum Kind {
    Get(Value),
    Set(Value),
    Del(Option<bool>),
    Cas {
        expected: Value,
        new: Value,
        swapped: Option<bool>,
    },
    /// `INCRBY by`, with the new value or the refusal seen.
    IncrBy {
        by: i64,
        seen: Option<Result<i64, Refusal>>,
    },
    /// `INCRBYFLOAT`, with the new value (as printed) or the refusal seen.
    IncrByFloat {
        by_bits: u64,
        seen: Option<Result<Value, Refusal>>,
    },
    /// `APPEND suffix`, with the new length or the refusal seen.
    Append {
        suffix: Value,
        len_max: u64,
        seen: Option<Result<i64, Refusal>>,
    },
    /// `SET value` under `condition`, with (written, old value or ABSENT) seen.
    SetIf {
        value: Value,
        condition: SetCondition,
        seen: Option<(bool, Value)>,
    },
    /// `GETDEL`, with the value seen.
    GetDel(Option<Value>),
}

impl Kind {
    /// The register after this operation, if it can return what was observed from `state`.
    fn step(self, state: Value, values: &mut Interner) -> Option<Value> {
        match self {
            Kind::Get(seen) => (seen == state).then_some(state),
            Kind::Set(value) => Some(value),
            Kind::Del(existed) => {
                existed.is_none_or(|existed| existed == (state != ABSENT)).then_some(ABSENT)
            }
            Kind::Cas { expected, new, swapped } => {
                let matches = state == expected;
                swapped.is_none_or(|swapped| swapped == matches).then_some(if matches {
                    new
                } else {
                    state
                })
            }
            Kind::IncrBy { by, seen } => {
                let old = match values.bytes(state) {
                    None => Ok(0),
                    Some(bytes) => parse_i64(bytes).ok_or(Refusal::NotAnInteger),
                };
                let outcome = old.and_then(|old| old.checked_add(by).ok_or(Refusal::Overflow));
                if seen.is_some_and(|seen| seen != outcome) {
                    return None;
                }
                Some(match outcome {
                    Ok(new) => values.intern(new.to_string().as_bytes()),
                    Err(_) => state,
                })
            }
            Kind::IncrByFloat { by_bits, seen } => {
                let old = match values.bytes(state) {
                    None => Ok(0.0),
                    Some(bytes) => parse_float(bytes).ok_or(Refusal::NotAFloat),
                };
                let outcome = old.and_then(|old| {
                    let new = old + f64::from_bits(by_bits);
                    if new.is_finite() {
                        Ok(values.intern(format_float(new).as_bytes()))
                    } else {
                        Err(Refusal::NanOrInfinity)
                    }
                });
                if seen.is_some_and(|seen| seen != outcome) {
                    return None;
                }
                Some(outcome.unwrap_or(state))
            }
            Kind::Append { suffix, len_max, seen } => {
                let mut new = values.bytes(state).unwrap_or_default().to_vec();
                new.extend_from_slice(values.bytes(suffix).unwrap_or_default());
                let outcome = if new.len() as u64 > len_max {
                    Err(Refusal::TooLong)
                } else {
                    Ok(new.len() as i64)
                };
                if seen.is_some_and(|seen| seen != outcome) {
                    return None;
                }
                Some(if outcome.is_ok() { values.intern(&new) } else { state })
            }
            Kind::SetIf { value, condition, seen } => {
                let exists = state != ABSENT;
                let write = !(condition.if_missing && exists || condition.if_exists && !exists);
                let old = if condition.get_old { state } else { ABSENT };
                seen.is_none_or(|seen| seen == (write, old)).then_some(if write {
                    value
                } else {
                    state
                })
            }
            Kind::GetDel(seen) => seen.is_none_or(|seen| seen == state).then_some(ABSENT),
        }
    }

    /// Whether the value this operation writes depends on the register's value (so removing
    /// an earlier write changes what it writes, not only what later reads see).
    fn computes(self) -> bool {
        matches!(self, Kind::IncrBy { .. } | Kind::IncrByFloat { .. } | Kind::Append { .. })
    }

    /// The same operation with its observation forgotten; `None` for a read, which without its
    /// observation constrains nothing.
    fn relaxed(self) -> Option<Kind> {
        match self {
            Kind::Get(_) => None,
            Kind::Set(value) => Some(Kind::Set(value)),
            Kind::Del(_) => Some(Kind::Del(None)),
            Kind::Cas { expected, new, .. } => Some(Kind::Cas { expected, new, swapped: None }),
            Kind::IncrBy { by, .. } => Some(Kind::IncrBy { by, seen: None }),
            Kind::IncrByFloat { by_bits, .. } => Some(Kind::IncrByFloat { by_bits, seen: None }),
            Kind::Append { suffix, len_max, .. } => {
                Some(Kind::Append { suffix, len_max, seen: None })
            }
            Kind::SetIf { value, condition, .. } => {
                Some(Kind::SetIf { value, condition, seen: None })
            }
            Kind::GetDel(_) => Some(Kind::GetDel(None)),
        }
    }

    /// The register value this operation's observation says was there, if it pins one.
    fn observed(self) -> Option<Value> {
        match self {
            Kind::Get(seen) => Some(seen),
            Kind::Cas { expected, swapped: Some(true), .. } => Some(expected),
            Kind::Del(Some(false)) => Some(ABSENT),
            Kind::GetDel(Some(seen)) => Some(seen),
            Kind::SetIf { condition, seen: Some((_, old)), .. } if condition.get_old => Some(old),
            _ => None,
        }
    }

    /// The register value this operation may write.
    fn written(self) -> Option<Value> {
        match self {
            Kind::Get(_) => None,
            Kind::Set(value) | Kind::Cas { new: value, .. } | Kind::SetIf { value, .. } => {
                Some(value)
            }
            Kind::Del(_) | Kind::GetDel(_) => Some(ABSENT),
            // Computed from the register: not known statically (see `computes`).
            Kind::IncrBy { .. } | Kind::IncrByFloat { .. } | Kind::Append { .. } => None,
        }
    }
}

/// The history of one key, ready to search.
struct Register {
    ops: Vec<RegisterOp>,
    /// The values the ops name; the search adds the ones it computes to its own copy.
    values: Interner,
}

impl Register {
    fn new(history: &[HistoryOp], indices: &[usize]) -> Register {
        let mut values = Interner::default();
        let mut intern = |bytes: &[u8]| values.intern(bytes);
        let integer_seen = |result: Option<&OpResult>| match result {
            Some(OpResult::Integer(n)) => Some(Ok(*n)),
            Some(OpResult::Refused(refusal)) => Some(Err(*refusal)),
            _ => None,
        };
        let mut ops = Vec::with_capacity(indices.len());
        for &index in indices {
            let entry = &history[index];
            let result = entry.result();
            let kind = match (&entry.op, result) {
                // A read nobody saw constrains nothing.
                (Op::Get { .. }, None) => continue,
                (Op::Get { .. }, Some(OpResult::Value(seen))) => {
                    Kind::Get(seen.as_deref().map_or(ABSENT, &mut intern))
                }
                (Op::Set { value, .. }, _) => Kind::Set(intern(value)),
                (Op::Del { .. }, Some(OpResult::Deleted(existed))) => Kind::Del(Some(*existed)),
                (Op::Del { .. }, _) => Kind::Del(None),
                (Op::Cas { expected, new, .. }, result) => Kind::Cas {
                    expected: intern(expected),
                    new: intern(new),
                    swapped: match result {
                        Some(OpResult::Swapped(swapped)) => Some(*swapped),
                        _ => None,
                    },
                },
                (Op::IncrBy { by, .. }, result) => {
                    Kind::IncrBy { by: *by, seen: integer_seen(result) }
                }
                (Op::IncrByFloat { by_bits, .. }, result) => Kind::IncrByFloat {
                    by_bits: *by_bits,
                    seen: match result {
                        Some(OpResult::Value(Some(text))) => Some(Ok(intern(text))),
                        Some(OpResult::Refused(refusal)) => Some(Err(*refusal)),
                        _ => None,
                    },
                },
                (Op::Append { value, len_max, .. }, result) => Kind::Append {
                    suffix: intern(value),
                    len_max: *len_max,
                    seen: integer_seen(result),
                },
                (Op::SetIf { value, condition, .. }, result) => Kind::SetIf {
                    value: intern(value),
                    condition: *condition,
                    seen: match result {
                        Some(OpResult::Written { written, old }) => {
                            Some((*written, old.as_deref().map_or(ABSENT, &mut intern)))
                        }
                        _ => None,
                    },
                },
                (Op::GetDel { .. }, result) => Kind::GetDel(match result {
                    Some(OpResult::Value(seen)) => {
                        Some(seen.as_deref().map_or(ABSENT, &mut intern))
                    }
                    _ => None,
                }),
                (Op::Get { .. }, Some(_)) => unreachable!("validated: results match their ops"),
                (other, _) => unreachable!("validated: {other:?} is modelled"),
            };
            ops.push(RegisterOp { index, invoke: entry.invoke, response: entry.response(), kind });
        }
        Register { ops, values }
    }

    /// Searches for a linearization of all returned operations (unknown ones optional).
    /// On failure returns the longest linearization found, as input indices.
    fn search(&self) -> Result<(), Vec<usize>> {
        Search::new(&self.ops, self.values.clone()).run()
    }

    /// Shrinks the (non-linearizable) history to a small explanation, in two phases, each
    /// trying runs of operations first and halving the run down to single operations:
    ///
    /// 1. relax observations: a returned operation becomes one with an unknown outcome (a read
    ///    is dropped), while the history stays non-linearizable. Relaxing only removes
    ///    constraints, so what remains is a genuine contradiction among the observed results.
    /// 2. drop unknown-outcome operations that write no value a remaining observation reads,
    ///    while the history stays non-linearizable.
    ///
    /// Returns input indices, and whether both phases finished within the budget.
    fn shrink(&self) -> (Vec<usize>, bool) {
        let mut current = self.ops.clone();
        let mut checks_left = SHRINK_CHECKS_MAX;
        let values = &self.values;
        let finished = reduce(&mut current, &mut checks_left, values, relax_observations)
            && reduce(&mut current, &mut checks_left, values, drop_unobserved_writes);
        (current.iter().map(|op| op.index).collect(), finished)
    }
}

/// Repeatedly applies `change` to runs of `current` (halving the run length down to 1, then
/// single operations until nothing changes), keeping each changed history that is still not
/// linearizable. `change` returns `None` when it has nothing to change in the run, and must make
/// progress (fewer operations or fewer observations) when it returns `Some`. Returns `false` if
/// the budget ran out first.
fn reduce(
    current: &mut Vec<RegisterOp>,
    checks_left: &mut usize,
    values: &Interner,
    change: fn(&[RegisterOp], std::ops::Range<usize>) -> Option<Vec<RegisterOp>>,
) -> bool {
    let mut run = (current.len() / 2).max(1);
    loop {
        let mut changed = false;
        let mut start = 0;
        while start < current.len() {
            let end = (start + run).min(current.len());
            if let Some(candidate) = change(current, start..end) {
                if *checks_left == 0 {
                    return false;
                }
                *checks_left -= 1;
                let mut search = Search::new(&candidate, values.clone());
                search.steps_max = Some(SHRINK_SEARCH_STEPS_MAX);
                if search.run().is_err() {
                    let shrank = candidate.len() < current.len();
                    *current = candidate;
                    changed = true;
                    if shrank {
                        // Operations moved into this position: look at it again.
                        continue;
                    }
                }
            }
            start = end;
        }
        if run == 1 && !changed {
            return true;
        }
        run = (run / 2).max(1);
    }
}

/// Phase 1 of shrinking: forget what the returned operations in `range` observed.
fn relax_observations(
    ops: &[RegisterOp],
    range: std::ops::Range<usize>,
) -> Option<Vec<RegisterOp>> {
    if ops[range.clone()].iter().all(|op| op.response.is_none()) {
        return None;
    }
    let mut relaxed = ops[..range.start].to_vec();
    for op in &ops[range.clone()] {
        if op.response.is_none() {
            relaxed.push(*op);
        } else if let Some(kind) = op.kind.relaxed() {
            relaxed.push(RegisterOp { response: None, kind, ..*op });
        }
    }
    relaxed.extend_from_slice(&ops[range.end..]);
    Some(relaxed)
}

/// Phase 2 of shrinking: remove the unknown-outcome operations in `range` whose written value
/// no returned operation observes. (Removing the writer of an observed value would manufacture
/// a phantom read that the real history does not contain.)
fn drop_unobserved_writes(
    ops: &[RegisterOp],
    range: std::ops::Range<usize>,
) -> Option<Vec<RegisterOp>> {
    if ops.iter().any(|op| op.kind.computes()) {
        // What an INCR or APPEND writes depends on every write before it: removing any
        // write could change a value some observation reads. Keep them all.
        return None;
    }
    let observed: HashSet<Value> = ops.iter().filter_map(|op| op.kind.observed()).collect();
    let removable = |op: &RegisterOp| {
        op.response.is_none() && op.kind.written().is_none_or(|value| !observed.contains(&value))
    };
    if !ops[range.clone()].iter().any(removable) {
        return None;
    }
    let mut kept = ops[..range.start].to_vec();
    kept.extend(ops[range.clone()].iter().filter(|op| !removable(op)));
    kept.extend_from_slice(&ops[range.end..]);
    Some(kept)
}

/// Lowe's search over one register's operations.
struct Search<'a> {
    ops: &'a [RegisterOp],
    /// Doubly-linked list of events; node `2i` is op `i`'s call, `2i + 1` its return, and node
    /// `HEAD` the sentinel. `NIL` ends the list.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Search steps allowed before giving up (`None`: unbounded).
    steps_max: Option<u64>,
    /// The register's values, growing with those the search computes.
    values: Interner,
}

const NIL: usize = usize::MAX;

/// The most steps one search may take while shrinking a violation. Relaxing observations adds
/// pending operations, and each can double the states a search explores; a shrinking search
/// that runs out of steps counts as "not shown to stay non-linearizable", so the change is not
/// kept and the reported operations remain a proven contradiction.
pub const SHRINK_SEARCH_STEPS_MAX: u64 = 200_000;

impl<'a> Search<'a> {
    fn new(ops: &'a [RegisterOp], values: Interner) -> Search<'a> {
        let head = 2 * ops.len();
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            // Calls sort before returns at equal times: equal times are concurrent.
            events.push((op.invoke, 0, 2 * i));
            // An unknown outcome returns after everything, so it never forces anything.
            events.push((op.response.unwrap_or(u64::MAX), 1, 2 * i + 1));
        }
        // Unknown returns all sit at u64::MAX; ties keep a fixed order via the node number.
        events.sort_unstable();
        let mut next = vec![NIL; head + 1];
        let mut prev = vec![NIL; head + 1];
        let mut last = head;
        for &(_, _, node) in &events {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        Search { ops, next, prev, steps_max: None, values }
    }

    fn head(&self) -> usize {
        2 * self.ops.len()
    }

    /// Unlinks op `i`'s call and return events.
    fn lift(&mut self, i: usize) {
        for node in [2 * i, 2 * i + 1] {
            let (before, after) = (self.prev[node], self.next[node]);
            self.next[before] = after;
            if after != NIL {
                self.prev[after] = before;
            }
        }
    }

    /// Relinks op `i`'s events, in the reverse order of [`lift`](Self::lift) (dancing links).
    fn unlift(&mut self, i: usize) {
        for node in [2 * i + 1, 2 * i] {
            let (before, after) = (self.prev[node], self.next[node]);
            self.next[before] = node;
            if after != NIL {
                self.prev[after] = node;
            }
        }
    }

    fn run(mut self) -> Result<(), Vec<usize>> {
        let mut returned_left = self.ops.iter().filter(|op| op.response.is_some()).count();
        let mut linearized = BitSet::new(self.ops.len());
        let mut seen: HashSet<(BitSet, Value)> = HashSet::new();
        let mut stack: Vec<(usize, Value)> = Vec::new();
        let mut longest: Vec<usize> = Vec::new();
        let mut state = ABSENT;
        let mut entry = self.next[self.head()];
        let mut steps: u64 = 0;
        while returned_left > 0 {
            steps += 1;
            if self.steps_max.is_some_and(|max| steps > max) {
                // Inconclusive: callers treat it as "no violation shown".
                return Ok(());
            }
            if entry != NIL && entry % 2 == 0 {
                let i = entry / 2;
                if let Some(after) = self.ops[i].kind.step(state, &mut self.values) {
                    linearized.insert(i);
                    if seen.insert((linearized.clone(), after)) {
                        stack.push((i, state));
                        state = after;
                        self.lift(i);
                        if self.ops[i].response.is_some() {
                            returned_left -= 1;
                        }
                        if stack.len() > longest.len() {
                            longest = stack.iter().map(|&(i, _)| self.ops[i].index).collect();
                        }
                        entry = self.next[self.head()];
                        continue;
                    }
                    linearized.remove(i);
                }
                entry = self.next[entry];
            } else {
                // A pending return (or the end): nothing invoked before it can go next. Undo
                // the last choice and try the following candidate.
                let Some((i, before)) = stack.pop() else {
                    return Err(longest);
                };
                state = before;
                linearized.remove(i);
                self.unlift(i);
                if self.ops[i].response.is_some() {
                    returned_left += 1;
                }
                entry = self.next[2 * i];
            }
        }
        Ok(())
    }
}

/// A fixed-size bit set, hashable for the memo table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    fn new(bits: usize) -> BitSet {
        BitSet { words: vec![0; bits.div_ceil(64)] }
    }

    fn insert(&mut self, bit: usize) {
        self.words[bit / 64] |= 1 << (bit % 64);
    }

    fn remove(&mut self, bit: usize) {
        self.words[bit / 64] &= !(1 << (bit % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Vec<u8> {
        k.as_bytes().to_vec()
    }
    fn get(c: u64, invoke: u64, response: u64, seen: Option<&str>) -> HistoryOp {
        HistoryOp::returned(
            ClientId(c),
            invoke,
            response,
            Op::Get { key: key("k") },
            OpResult::Value(seen.map(key)),
        )
    }
    fn set(c: u64, invoke: u64, response: u64, value: &str) -> HistoryOp {
        HistoryOp::returned(
            ClientId(c),
            invoke,
            response,
            Op::Set { key: key("k"), value: key(value) },
            OpResult::Stored,
        )
    }
    fn set_unknown(c: u64, invoke: u64, value: &str) -> HistoryOp {
        HistoryOp::unknown(ClientId(c), invoke, Op::Set { key: key("k"), value: key(value) })
    }
    fn del(c: u64, invoke: u64, response: u64, existed: bool) -> HistoryOp {
        HistoryOp::returned(
            ClientId(c),
            invoke,
            response,
            Op::Del { key: key("k") },
            OpResult::Deleted(existed),
        )
    }
    fn cas(
        c: u64,
        invoke: u64,
        response: u64,
        expected: &str,
        new: &str,
        swapped: bool,
    ) -> HistoryOp {
        HistoryOp::returned(
            ClientId(c),
            invoke,
            response,
            Op::Cas { key: key("k"), expected: key(expected), new: key(new) },
            OpResult::Swapped(swapped),
        )
    }
    fn cas_unknown(c: u64, invoke: u64, expected: &str, new: &str) -> HistoryOp {
        HistoryOp::unknown(
            ClientId(c),
            invoke,
            Op::Cas { key: key("k"), expected: key(expected), new: key(new) },
        )
    }

    fn violation(history: &[HistoryOp]) -> Violation {
        match check(history) {
            Err(CheckError::NotLinearizable(violation)) => violation,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    fn culprits(history: &[HistoryOp]) -> Vec<usize> {
        let violation = violation(history);
        assert!(violation.minimal);
        let mut indices: Vec<usize> = violation.ops.iter().map(|(index, _)| *index).collect();
        indices.sort();
        indices
    }

    #[test]
    fn the_empty_history_and_a_sequential_one_are_linearizable() {
        assert_eq!(check(&[]), Ok(()));
        let history = [
            get(1, 0, 1, None),
            set(1, 2, 3, "a"),
            get(1, 4, 5, Some("a")),
            cas(1, 6, 7, "a", "b", true),
            cas(1, 8, 9, "a", "c", false),
            get(1, 10, 11, Some("b")),
            del(1, 12, 13, true),
            del(1, 14, 15, false),
            cas(1, 16, 17, "b", "x", false),
            get(1, 18, 19, None),
        ];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn concurrent_writes_may_take_effect_in_either_order() {
        let history = [set(1, 0, 10, "a"), set(2, 0, 10, "b"), get(3, 11, 12, Some("a"))];
        assert_eq!(check(&history), Ok(()));
        let history = [set(1, 0, 10, "a"), set(2, 0, 10, "b"), get(3, 11, 12, Some("b"))];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        assert_eq!(check(&[set(1, 0, 10, "a"), get(2, 5, 6, None)]), Ok(()));
        assert_eq!(check(&[set(1, 0, 10, "a"), get(2, 5, 6, Some("a"))]), Ok(()));
    }

    #[test]
    fn equal_times_count_as_concurrent() {
        assert_eq!(check(&[set(1, 0, 5, "a"), get(2, 5, 6, None)]), Ok(()));
        assert!(check(&[set(1, 0, 5, "a"), get(2, 6, 7, None)]).is_err());
    }

    #[test]
    fn a_stale_read_is_caught() {
        let history = [set(1, 0, 1, "a"), set(1, 2, 3, "b"), get(2, 4, 5, Some("a"))];
        assert_eq!(culprits(&history), [0, 1, 2]);
        // Unrelated reads and writes are left out of the explanation.
        let history = [
            set(1, 0, 1, "x"),
            get(3, 0, 1, Some("x")),
            set(1, 2, 3, "a"),
            get(3, 2, 3, None),
            set(1, 4, 5, "b"),
            get(2, 6, 7, Some("a")),
            get(3, 8, 9, Some("b")),
        ];
        let culprits = culprits(&history);
        assert!(culprits.starts_with(&[2, 4, 5]) && culprits.len() <= 4, "{culprits:?}");
    }

    #[test]
    fn reads_going_back_in_time_are_caught() {
        // The write is concurrent with both reads, but once one read saw it, a later read
        // cannot miss it.
        let history = [set(1, 0, 100, "a"), get(2, 10, 20, Some("a")), get(3, 30, 40, None)];
        assert_eq!(culprits(&history), [0, 1, 2]);
    }

    #[test]
    fn a_lost_write_is_caught() {
        let history = [
            set(1, 0, 1, "a"),
            set(2, 2, 3, "b"),
            get(1, 4, 5, Some("a")),
            get(1, 6, 7, Some("b")),
        ];
        assert_eq!(culprits(&history), [0, 1, 2, 3]);
        // Acknowledged, then gone.
        assert!(check(&[set(1, 0, 1, "a"), get(2, 2, 3, None)]).is_err());
    }

    #[test]
    fn a_value_never_written_is_caught() {
        let history = [set(1, 0, 1, "a"), get(2, 0, 5, Some("phantom"))];
        assert_eq!(culprits(&history), [1]);
    }

    #[test]
    fn cas_results_must_agree_with_the_register() {
        // A CAS that succeeded on a value that was never there.
        assert_eq!(culprits(&[cas(1, 0, 1, "a", "b", true)]), [0]);
        // A missing key never matches.
        assert_eq!(culprits(&[del(1, 0, 1, false), cas(1, 2, 3, "", "b", true)]), [1]);
        // A CAS that failed although the value matched.
        assert_eq!(culprits(&[set(1, 0, 1, "a"), cas(1, 2, 3, "a", "b", false)]), [0, 1]);
        // Two CASes from the same value cannot both succeed.
        let history =
            [set(1, 0, 1, "a"), cas(2, 2, 10, "a", "b", true), cas(3, 2, 10, "a", "c", true)];
        assert_eq!(culprits(&history), [0, 1, 2]);
        // One may, concurrently, whichever the read says won.
        let history = [
            set(1, 0, 1, "a"),
            cas(2, 2, 10, "a", "b", true),
            cas(3, 2, 10, "a", "c", false),
            get(1, 11, 12, Some("b")),
        ];
        assert_eq!(check(&history), Ok(()));
        // A CAS whose effect is not visible afterwards.
        assert!(check(&[set(1, 0, 1, "a"), cas(1, 2, 3, "a", "b", true), get(1, 4, 5, Some("a"))])
            .is_err());
    }

    #[test]
    fn del_results_must_agree_with_the_register() {
        assert!(check(&[del(1, 0, 1, true)]).is_err());
        assert!(check(&[set(1, 0, 1, "a"), del(1, 2, 3, false)]).is_err());
        assert!(check(&[set(1, 0, 1, "a"), del(1, 2, 3, true), get(1, 4, 5, Some("a"))]).is_err());
        assert_eq!(check(&[set(1, 0, 1, "a"), del(1, 2, 3, true), get(1, 4, 5, None)]), Ok(()));
    }

    #[test]
    fn an_unknown_write_may_take_effect_late() {
        // Invoked at 0, no response; a read long after sees it, and reads before did not.
        let history = [set_unknown(1, 0, "a"), get(2, 100, 101, None), get(2, 200, 201, Some("a"))];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn an_unknown_write_may_never_take_effect() {
        let history = [set_unknown(1, 0, "a"), get(2, 100, 101, None), get(2, 200, 201, None)];
        assert_eq!(check(&history), Ok(()));
        assert_eq!(check(&[cas_unknown(1, 0, "x", "y")]), Ok(()));
    }

    #[test]
    fn an_unknown_write_takes_effect_at_most_once_and_not_before_its_invocation() {
        // Seen, then overwritten, then seen again: it cannot happen twice.
        let history = [
            set_unknown(1, 0, "a"),
            get(2, 10, 11, Some("a")),
            set(2, 12, 13, "b"),
            get(2, 14, 15, Some("a")),
        ];
        assert!(check(&history).is_err());
        // Seen before it was invoked.
        let history = [get(2, 0, 1, Some("a")), set_unknown(1, 5, "a")];
        assert_eq!(culprits(&history), [0, 1]);
    }

    #[test]
    fn an_unknown_cas_may_explain_a_later_value() {
        let history = [set(1, 0, 1, "a"), cas_unknown(1, 2, "a", "b"), get(2, 50, 51, Some("b"))];
        assert_eq!(check(&history), Ok(()));
        let history = [set(1, 0, 1, "z"), cas_unknown(1, 2, "a", "b"), get(2, 50, 51, Some("b"))];
        assert!(check(&history).is_err(), "the CAS cannot match");
    }

    #[test]
    fn unknown_reads_are_ignored() {
        let history = [
            set(1, 0, 1, "a"),
            HistoryOp::unknown(ClientId(2), 0, Op::Get { key: key("k") }),
            get(1, 2, 3, Some("a")),
        ];
        assert_eq!(check(&history), Ok(()));
    }

    #[test]
    fn keys_are_independent_and_the_violation_names_the_key() {
        let other = |op: Op, result: OpResult, t: u64| {
            HistoryOp::returned(ClientId(9), t, t + 1, op, result)
        };
        let history = [
            other(Op::Set { key: key("j"), value: key("1") }, OpResult::Stored, 0),
            set(1, 0, 1, "a"),
            other(Op::Get { key: key("j") }, OpResult::Value(Some(key("1"))), 2),
            get(1, 4, 5, Some("b")),
        ];
        let violation = violation(&history);
        assert_eq!(violation.key, key("k"));
        assert_eq!(violation.ops.iter().map(|(index, _)| *index).collect::<Vec<_>>(), [3]);
        let text = violation.to_string();
        assert!(text.contains("key \"k\""), "{text}");
        assert!(text.contains("#3 client 1 [4, 5] GET \"k\" -> \"b\""), "{text}");
    }

    #[test]
    fn the_longest_linearization_shows_where_the_search_got_stuck() {
        let history = [
            set(1, 0, 1, "a"),
            get(1, 2, 3, Some("a")),
            set(1, 4, 5, "b"),
            get(1, 6, 7, Some("a")),
        ];
        assert_eq!(violation(&history).longest_linearization, [0, 1, 2]);
    }

    #[test]
    fn malformed_histories_are_reported_as_such() {
        let backwards = set(1, 10, 5, "a");
        assert_eq!(
            check(&[backwards]),
            Err(CheckError::Malformed { index: 0, reason: "response before invocation" })
        );
        let wrong_kind =
            HistoryOp::returned(ClientId(1), 0, 1, Op::Get { key: key("k") }, OpResult::Stored);
        assert!(matches!(
            check(&[set(1, 0, 1, "a"), wrong_kind]),
            Err(CheckError::Malformed { index: 1, .. })
        ));
    }

    #[test]
    fn many_concurrent_clients_stay_fast_thanks_to_memoization() {
        // 12 writers all concurrent, then a read of one value: 12! orders without memoization.
        let mut history: Vec<HistoryOp> = (0..12).map(|c| set(c, 0, 100, &c.to_string())).collect();
        history.push(get(99, 101, 102, Some("7")));
        assert_eq!(check(&history), Ok(()));
        history.push(get(99, 103, 104, Some("8")));
        assert!(check(&history).is_err());
    }

    fn incr(c: u64, invoke: u64, response: u64, seen: i64) -> HistoryOp {
        let op = Op::IncrBy { key: key("k"), by: 1 };
        HistoryOp::returned(ClientId(c), invoke, response, op, OpResult::Integer(seen))
    }
    fn append(c: u64, invoke: u64, response: u64, suffix: &str, len: i64) -> HistoryOp {
        let op = Op::Append { key: key("k"), value: key(suffix), len_max: 100 };
        HistoryOp::returned(ClientId(c), invoke, response, op, OpResult::Integer(len))
    }
    fn set_nx(c: u64, invoke: u64, response: u64, value: &str, written: bool) -> HistoryOp {
        let condition = SetCondition { if_missing: true, if_exists: false, get_old: false };
        let op = Op::SetIf { key: key("k"), value: key(value), condition };
        HistoryOp::returned(
            ClientId(c),
            invoke,
            response,
            op,
            OpResult::Written { written, old: None },
        )
    }
    fn getdel(c: u64, invoke: u64, response: u64, seen: Option<&str>) -> HistoryOp {
        let op = Op::GetDel { key: key("k") };
        HistoryOp::returned(ClientId(c), invoke, response, op, OpResult::Value(seen.map(key)))
    }

    #[test]
    fn increments_count_in_a_single_order() {
        // Two concurrent INCRs from 0 return 1 and 2, in either order.
        assert!(check(&[incr(1, 0, 10, 2), incr(2, 1, 11, 1), get(3, 12, 13, Some("2"))]).is_ok());
        // Both returning 1 is a lost update.
        assert!(check(&[incr(1, 0, 10, 1), incr(2, 1, 11, 1)]).is_err());
        // An INCR of a value that is not an integer is refused, and changes nothing.
        let refused = HistoryOp::returned(
            ClientId(2),
            3,
            4,
            Op::IncrBy { key: key("k"), by: 1 },
            OpResult::Refused(Refusal::NotAnInteger),
        );
        assert!(check(&[set(1, 0, 2, "x"), refused.clone(), get(3, 5, 6, Some("x"))]).is_ok());
        assert!(check(&[set(1, 0, 2, "7"), refused]).is_err(), "7 is an integer");
        // An INCR with an unknown outcome may have happened, once.
        let unknown = HistoryOp::unknown(ClientId(1), 0, Op::IncrBy { key: key("k"), by: 1 });
        assert!(check(&[unknown.clone(), get(2, 5, 6, Some("1"))]).is_ok());
        assert!(check(&[unknown.clone(), get(2, 5, 6, None)]).is_ok());
        assert!(check(&[unknown, get(2, 5, 6, Some("2"))]).is_err());
    }

    #[test]
    fn float_increments_are_checked_against_their_printed_sums() {
        let float = |c: u64, invoke: u64, response: u64, by: f64, seen: &str| {
            let op = Op::IncrByFloat { key: key("k"), by_bits: by.to_bits() };
            HistoryOp::returned(ClientId(c), invoke, response, op, OpResult::Value(Some(key(seen))))
        };
        assert!(check(&[float(1, 0, 1, 0.1, "0.1"), float(2, 2, 3, 0.2, "0.3")]).is_ok());
        assert!(check(&[float(1, 0, 1, 0.1, "0.1"), float(2, 2, 3, 0.2, "0.2")]).is_err());
        assert!(check(&[float(1, 0, 5, 0.1, "0.3"), float(2, 1, 6, 0.2, "0.2")]).is_ok());
    }

    #[test]
    fn appends_keep_real_time_order() {
        assert!(check(&[
            append(1, 0, 1, "a", 1),
            append(2, 2, 3, "b", 2),
            get(3, 4, 5, Some("ab"))
        ])
        .is_ok());
        // "b" was appended after "a" returned: "ba" is impossible.
        assert!(check(&[
            append(1, 0, 1, "a", 1),
            append(2, 2, 3, "b", 2),
            get(3, 4, 5, Some("ba"))
        ])
        .is_err());
        // Concurrent: either order, but lengths must agree with it.
        assert!(check(&[
            append(1, 0, 5, "a", 2),
            append(2, 1, 6, "b", 1),
            get(3, 7, 8, Some("ba"))
        ])
        .is_ok());
        assert!(check(&[append(1, 0, 5, "a", 2), append(2, 1, 6, "b", 2)]).is_err());
    }

    #[test]
    fn set_nx_lets_one_writer_win_and_getdel_takes_a_value_once() {
        assert!(check(&[set_nx(1, 0, 10, "a", true), set_nx(2, 1, 11, "b", false)]).is_ok());
        assert!(check(&[set_nx(1, 0, 10, "a", true), set_nx(2, 1, 11, "b", true)]).is_err());
        assert!(check(&[
            set(1, 0, 1, "v"),
            getdel(2, 2, 10, Some("v")),
            getdel(3, 3, 11, None),
            get(4, 12, 13, None),
        ])
        .is_ok());
        // Two GETDELs cannot both take the one value.
        let twice = [set(1, 0, 1, "v"), getdel(2, 2, 10, Some("v")), getdel(3, 3, 11, Some("v"))];
        let violation = violation(&twice);
        assert!(violation.ops.len() <= 3, "{violation:?}");
    }
}
