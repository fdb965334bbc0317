//! The string and key commands beyond `GET`/`SET`/`DEL`/`CAS`: how each is parsed, which ops it
//! runs on which partitions, and how their results become the one reply Redis would send.
//!
//! A command becomes [`Work`]: either a [`Plan`] (ops addressed by key, runnable at once) or a
//! [`Keyspace`] command that needs the cluster's partition count first (the front end learns it
//! from its overlay, then calls [`Keyspace::plan`]). The front end runs a plan's ops — each on
//! its own partition, linearizable there — and gives [`Plan::reply`] their results in order.
//!
//! # What each command guarantees
//!
//! | Command | Ops | Guarantee |
//! |---|---|---|
//! | `INCR`, `DECR`, `INCRBY`, `DECRBY`, `INCRBYFLOAT`, `APPEND`, `SETRANGE`, `SETNX`, `SET … NX\|XX GET`, `GETSET`, `GETDEL` | one write op | linearizable, like `SET` |
//! | `STRLEN`, `GETRANGE`, `TYPE`, `EXISTS key`, `GETEX key` | one `GET` | linearizable, like `GET` (the value travels to the front end, which measures or cuts it) |
//! | `MGET`, `EXISTS k…`, `DEL k…`, `UNLINK k…` | one `MultiGet`/`MultiDel` if every key is in one partition, else one op per key | atomic in one partition (e.g. keys with one hash tag); per key across partitions, each linearizable |
//! | `MSET` | one `MultiSet` if every key is in one partition, else one `SET` per key | atomic in one partition; per key across partitions |
//! | `MSETNX` | one `MultiSet` | atomic; keys of several partitions get `-CROSSSLOT` |
//! | `DBSIZE` | one `Count` per partition | the sum of per-partition counts, each linearizable; not a snapshot of the whole store |
//! | `KEYS`, `SCAN` | `Scan` pages per partition | each page linearizable; `SCAN` returns every key present for the whole scan at least once |
//! | `FLUSHALL`, `FLUSHDB` | one `Flush` per partition | each partition's flush is atomic; not atomic across partitions |

use crate::partition::partition_of;
use crate::resp::parse_i64;
use crate::resp::RespValue;
use crate::store::strings::parse_float;
use crate::store::{Bin, Op, OpResult, Pair, Refusal, SetCondition, SCAN_POSITION_END};

use super::{check_key, check_value, CommandError, CommandLimits, CommandSpec};

/// The commands of this module, with Redis' arities (see [`CommandSpec`]).
pub const COMMAND_TABLE: &[CommandSpec] = &[
    CommandSpec { name: "incr", arity: 2 },
    CommandSpec { name: "decr", arity: 2 },
    CommandSpec { name: "incrby", arity: 3 },
    CommandSpec { name: "decrby", arity: 3 },
    CommandSpec { name: "incrbyfloat", arity: 3 },
    CommandSpec { name: "append", arity: 3 },
    CommandSpec { name: "setrange", arity: 4 },
    CommandSpec { name: "setnx", arity: 3 },
    CommandSpec { name: "getset", arity: 3 },
    CommandSpec { name: "getdel", arity: 2 },
    CommandSpec { name: "getex", arity: -2 },
    CommandSpec { name: "strlen", arity: 2 },
    CommandSpec { name: "getrange", arity: 4 },
    CommandSpec { name: "exists", arity: -2 },
    CommandSpec { name: "type", arity: 2 },
    CommandSpec { name: "mget", arity: -2 },
    CommandSpec { name: "mset", arity: -3 },
    CommandSpec { name: "msetnx", arity: -3 },
    CommandSpec { name: "unlink", arity: -2 },
    CommandSpec { name: "dbsize", arity: 1 },
    CommandSpec { name: "keys", arity: 2 },
    CommandSpec { name: "scan", arity: -2 },
    CommandSpec { name: "flushall", arity: -1 },
    CommandSpec { name: "flushdb", arity: -1 },
];

/// What a string or key command amounts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Ops ready to run.
    Plan(Plan),
    /// A command that needs the partition count to be planned.
    Keyspace(Keyspace),
}

/// Ops to run, each on its partition, and how to build the reply from their results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The ops, all reads or all writes, in the order their results are combined.
    pub ops: Vec<Op>,
    /// How the results become the reply.
    pub combine: Combine,
}

/// How a [`Plan`]'s results become its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Combine {
    /// One op; its result shaped.
    Single(Shape),
    /// `MGET`: the values (or nulls) in order.
    Values,
    /// `EXISTS`, `DEL`, `UNLINK`: how many results say "it was there".
    CountFound,
    /// `MSET` per key, `FLUSHALL`: `+OK`.
    Ok,
    /// `DBSIZE`: the sum of the counts.
    Sum,
    /// `KEYS`: every page's keys.
    Keys,
    /// `SCAN`: one page of `partition` among `partition_count`, as `[cursor, keys]`.
    Scan {
        /// The partition scanned.
        partition: u32,
        /// How many there are.
        partition_count: u32,
    },
}

/// How one op's result becomes a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// As [`op_reply`](super::op_reply) gives it: integers, values, refusals as errors.
    Plain,
    /// `SETNX`, `MSETNX`: `:1` if written, else `:0`.
    WrittenAsInteger,
    /// `SET … NX|XX`, atomic `MSET`: `+OK` if written, else null.
    WrittenAsOk,
    /// `SET … GET`, `GETSET`: the old value, or null.
    OldValue,
    /// `STRLEN` of a `GET`.
    Length,
    /// `TYPE` of a `GET`: `string` or `none`.
    Type,
    /// `GETRANGE start end` of a `GET`.
    Range(i64, i64),
    /// `EXISTS` of a `MultiGet`: how many values are there.
    CountSome,
}

/// A command that reaches every partition, or must know whether its keys share one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keyspace {
    /// `DBSIZE`.
    DbSize,
    /// `KEYS pattern`.
    Keys(Vec<u8>),
    /// `SCAN cursor [MATCH pattern] [COUNT count]`.
    Scan {
        /// The cursor: the partition in the high 16 bits, the scan position in the low 48.
        cursor: u64,
        /// `MATCH`.
        pattern: Option<Vec<u8>>,
        /// `COUNT`: keys to examine, ≥ 1.
        count: u64,
    },
    /// `FLUSHALL`, `FLUSHDB`.
    Flush,
    /// `MGET`, `EXISTS`, `DEL` or `UNLINK` of several keys.
    Several {
        /// Which.
        command: Several,
        /// The keys, in request order.
        keys: Vec<Vec<u8>>,
    },
    /// `MSET` (`only_if_none_exist: false`) or `MSETNX`.
    MultiSet {
        /// The pairs, in request order.
        pairs: Vec<Pair>,
        /// `MSETNX`.
        only_if_none_exist: bool,
    },
}

/// The commands of several keys that read or remove each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Several {
    /// `MGET`.
    Get,
    /// `EXISTS`.
    Exists,
    /// `DEL`, `UNLINK`.
    Del,
}

/// Whether `name` (lowercase) is a command of this module.
pub fn handles(name: &str) -> bool {
    COMMAND_TABLE.iter().any(|spec| spec.name == name)
}

/// Parses a command of this module; its arity is already checked against [`COMMAND_TABLE`].
pub fn parse(
    name: &str,
    mut args: Vec<Vec<u8>>,
    limits: &CommandLimits,
) -> Result<Work, CommandError> {
    let mut take = |index: usize| std::mem::take(&mut args[index]);
    let one =
        |op: Op, shape: Shape| Work::Plan(Plan { ops: vec![op], combine: Combine::Single(shape) });
    let work = match name {
        "incr" | "decr" | "incrby" | "decrby" | "incrbyfloat" => {
            let key = check_key(take(1), limits)?;
            one(parse_counter(name, key, args.get(2))?, Shape::Plain)
        }
        "append" => {
            let key = check_key(take(1), limits)?;
            let value = check_value(take(2), limits)?;
            one(Op::Append { key, value, len_max: limits.value_bytes_max as u64 }, Shape::Plain)
        }
        "setrange" => {
            let key = check_key(take(1), limits)?;
            let offset = parse_i64(&take(2)).ok_or(CommandError::NotAnInteger)?;
            let offset = u64::try_from(offset)
                .map_err(|_| CommandError::Invalid("offset is out of range"))?;
            let value = check_value(take(3), limits)?;
            let op = Op::SetRange { key, offset, value, len_max: limits.value_bytes_max as u64 };
            one(op, Shape::Plain)
        }
        "setnx" | "getset" => {
            let key = check_key(take(1), limits)?;
            let value = check_value(take(2), limits)?;
            let setnx = name == "setnx";
            let condition = SetCondition { if_missing: setnx, if_exists: false, get_old: !setnx };
            let shape = if setnx { Shape::WrittenAsInteger } else { Shape::OldValue };
            one(Op::SetIf { key, value, condition }, shape)
        }
        "getdel" => one(Op::GetDel { key: check_key(take(1), limits)? }, Shape::Plain),
        "getex" => {
            let key = check_key(take(1), limits)?;
            parse_getex_options(&args[2..])?;
            one(Op::Get { key }, Shape::Plain)
        }
        "strlen" | "type" => {
            let shape = if name == "strlen" { Shape::Length } else { Shape::Type };
            one(Op::Get { key: check_key(take(1), limits)? }, shape)
        }
        "getrange" => {
            let key = check_key(take(1), limits)?;
            let start = parse_i64(&take(2)).ok_or(CommandError::NotAnInteger)?;
            let end = parse_i64(&take(3)).ok_or(CommandError::NotAnInteger)?;
            one(Op::Get { key }, Shape::Range(start, end))
        }
        "exists" | "mget" | "del" | "unlink" => per_key(name, args, limits)?,
        "mset" | "msetnx" => Work::Keyspace(Keyspace::MultiSet {
            pairs: parse_pairs(name, args, limits)?,
            only_if_none_exist: name == "msetnx",
        }),
        "dbsize" => Work::Keyspace(Keyspace::DbSize),
        "keys" => Work::Keyspace(Keyspace::Keys(take(1))),
        "scan" => parse_scan(args)?,
        "flushall" | "flushdb" => {
            // `ASYNC` and `SYNC` choose how Redis frees memory; here the flush is one log
            // entry per partition either way.
            match &args[1..] {
                [] => {}
                [mode]
                    if mode.eq_ignore_ascii_case(b"async")
                        || mode.eq_ignore_ascii_case(b"sync") => {}
                _ => return Err(CommandError::Syntax),
            }
            Work::Keyspace(Keyspace::Flush)
        }
        other => unreachable!("{other} is in strings::COMMAND_TABLE but not parsed"),
    };
    Ok(work)
}

/// `INCR`, `DECR`, `INCRBY n`, `DECRBY n`, `INCRBYFLOAT f` on `key`; `amount` is the third
/// argument, present exactly when the arity says so.
fn parse_counter(name: &str, key: Vec<u8>, amount: Option<&Vec<u8>>) -> Result<Op, CommandError> {
    let integer = || amount.and_then(|amount| parse_i64(amount)).ok_or(CommandError::NotAnInteger);
    let by = match name {
        "incr" => 1,
        "decr" => -1,
        "incrby" => integer()?,
        // Redis refuses to negate i64::MIN rather than overflow.
        "decrby" => {
            integer()?.checked_neg().ok_or(CommandError::Invalid("decrement would overflow"))?
        }
        _ => {
            let by = amount
                .and_then(|amount| parse_float(amount))
                .ok_or(CommandError::Invalid("value is not a valid float"))?;
            return Ok(Op::IncrByFloat { key, by_bits: by.to_bits() });
        }
    };
    Ok(Op::IncrBy { key, by })
}

/// `EXISTS`, `MGET`, `DEL`, `UNLINK`: one op for one key; for several, a [`Keyspace::Several`]
/// (one op if they share a partition, else one per key).
fn per_key(name: &str, args: Vec<Vec<u8>>, limits: &CommandLimits) -> Result<Work, CommandError> {
    if args.len() > 2 {
        let keys: Result<Vec<Vec<u8>>, _> =
            args.into_iter().skip(1).map(|key| check_key(key, limits)).collect();
        let command = match name {
            "exists" => Several::Exists,
            "mget" => Several::Get,
            _ => Several::Del,
        };
        return Ok(Work::Keyspace(Keyspace::Several { command, keys: keys? }));
    }
    let keys = args.into_iter().skip(1).map(|key| check_key(key, limits));
    let (ops, combine): (Result<Vec<Op>, _>, _) = match name {
        "exists" => (keys.map(|key| key.map(|key| Op::Get { key })).collect(), Combine::CountFound),
        "mget" => (keys.map(|key| key.map(|key| Op::Get { key })).collect(), Combine::Values),
        _ => (keys.map(|key| key.map(|key| Op::Del { key })).collect(), Combine::CountFound),
    };
    Ok(Work::Plan(Plan { ops: ops?, combine }))
}

fn parse_pairs(
    name: &str,
    args: Vec<Vec<u8>>,
    limits: &CommandLimits,
) -> Result<Vec<Pair>, CommandError> {
    if args.len() % 2 == 0 {
        return Err(CommandError::WrongArity { command: name.to_owned() });
    }
    let mut rest = args.into_iter().skip(1);
    let mut pairs = Vec::new();
    while let (Some(key), Some(value)) = (rest.next(), rest.next()) {
        pairs.push(Pair { key: check_key(key, limits)?, value: check_value(value, limits)? });
    }
    Ok(pairs)
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]`, with Redis' rules for
/// conflicting options. Expiry parses (so a wrong form gets Redis' error) but is refused:
/// keys cannot expire yet.
pub fn parse_set(mut args: Vec<Vec<u8>>, limits: &CommandLimits) -> Result<Work, CommandError> {
    let key = check_key(std::mem::take(&mut args[1]), limits)?;
    let value = check_value(std::mem::take(&mut args[2]), limits)?;
    let mut condition = SetCondition { if_missing: false, if_exists: false, get_old: false };
    let mut expiry = false;
    let mut keep_ttl = false;
    let mut index = 3;
    while index < args.len() {
        let option = args[index].to_ascii_uppercase();
        match option.as_slice() {
            b"NX" if !condition.if_exists => condition.if_missing = true,
            b"XX" if !condition.if_missing => condition.if_exists = true,
            b"GET" => condition.get_old = true,
            b"KEEPTTL" if !expiry => keep_ttl = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if !expiry && !keep_ttl => {
                let Some(amount) = args.get(index + 1) else { return Err(CommandError::Syntax) };
                let amount = parse_i64(amount).ok_or(CommandError::NotAnInteger)?;
                if amount <= 0 {
                    return Err(CommandError::Invalid("invalid expire time in 'set' command"));
                }
                expiry = true;
                index += 1;
            }
            _ => return Err(CommandError::Syntax),
        }
        index += 1;
    }
    if expiry || keep_ttl {
        return Err(CommandError::Unsupported(
            "key expiry (EX, PX, EXAT, PXAT, KEEPTTL) is not supported yet",
        ));
    }
    let shape = match (condition.get_old, condition.if_missing || condition.if_exists) {
        (true, _) => Shape::OldValue,
        (false, true) => Shape::WrittenAsOk,
        // Plain `SET k v` with no option left: the old path's op and reply.
        (false, false) => {
            return Ok(Work::Plan(Plan {
                ops: vec![Op::Set { key, value }],
                combine: Combine::Single(Shape::Plain),
            }))
        }
    };
    Ok(Work::Plan(Plan {
        ops: vec![Op::SetIf { key, value, condition }],
        combine: Combine::Single(shape),
    }))
}

/// `GETEX`'s options, checked as Redis checks them; any of them is refused, since keys cannot
/// expire yet (without options, `GETEX` is a `GET`).
fn parse_getex_options(options: &[Vec<u8>]) -> Result<(), CommandError> {
    let mut index = 0;
    let mut seen = false;
    while index < options.len() {
        match options[index].to_ascii_uppercase().as_slice() {
            b"PERSIST" if !seen => {}
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if !seen => {
                let Some(amount) = options.get(index + 1) else { return Err(CommandError::Syntax) };
                let amount = parse_i64(amount).ok_or(CommandError::NotAnInteger)?;
                if amount <= 0 {
                    return Err(CommandError::Invalid("invalid expire time in 'getex' command"));
                }
                index += 1;
            }
            _ => return Err(CommandError::Syntax),
        }
        seen = true;
        index += 1;
    }
    if seen {
        return Err(CommandError::Unsupported(
            "key expiry (EX, PX, EXAT, PXAT, PERSIST) is not supported yet",
        ));
    }
    Ok(())
}

fn parse_scan(args: Vec<Vec<u8>>) -> Result<Work, CommandError> {
    // Redis' own text for a cursor that is not an unsigned integer.
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or(CommandError::Invalid("invalid cursor"))?;
    let mut pattern = None;
    let mut count = 10;
    let mut only_none = false;
    let mut index = 2;
    while index < args.len() {
        let Some(argument) = args.get(index + 1) else { return Err(CommandError::Syntax) };
        match args[index].to_ascii_lowercase().as_slice() {
            b"match" => pattern = Some(argument.clone()),
            b"count" => {
                count = parse_i64(argument).ok_or(CommandError::NotAnInteger)?;
                if count < 1 {
                    return Err(CommandError::Syntax);
                }
            }
            // Every key is a string: `TYPE string` filters nothing, another type everything.
            b"type" => only_none = !argument.eq_ignore_ascii_case(b"string"),
            _ => return Err(CommandError::Syntax),
        }
        index += 2;
    }
    if only_none {
        // No key is of another type: the scan is over at once, with nothing to run.
        return Ok(Work::Plan(Plan {
            ops: vec![],
            combine: Combine::Scan { partition: 0, partition_count: 1 },
        }));
    }
    Ok(Work::Keyspace(Keyspace::Scan { cursor, pattern, count: count as u64 }))
}

impl Keyspace {
    /// The plan of this command in a cluster of `partition_count` partitions, or the error
    /// reply that it cannot be run there.
    pub fn plan(self, partition_count: u32) -> Result<Plan, RespValue> {
        let every = |op: fn(u32) -> Op| (0..partition_count).map(op).collect::<Vec<_>>();
        Ok(match self {
            Keyspace::DbSize => {
                Plan { ops: every(|partition| Op::Count { partition }), combine: Combine::Sum }
            }
            Keyspace::Flush => {
                Plan { ops: every(|partition| Op::Flush { partition }), combine: Combine::Ok }
            }
            Keyspace::Keys(pattern) => Plan {
                ops: (0..partition_count)
                    .map(|partition| Op::Scan {
                        partition,
                        from: 0,
                        count_max: u64::MAX,
                        pattern: Some(Bin(pattern.clone())),
                    })
                    .collect(),
                combine: Combine::Keys,
            },
            Keyspace::Scan { cursor, pattern, count } => {
                if u64::from(partition_count) > SCAN_CURSOR_PARTITIONS {
                    return Err(RespValue::error("ERR SCAN supports at most 65536 partitions"));
                }
                let partition = cursor / SCAN_POSITION_END;
                if partition >= u64::from(partition_count) {
                    return Err(RespValue::error("ERR invalid cursor"));
                }
                let partition = partition as u32;
                let op = Op::Scan {
                    partition,
                    from: cursor % SCAN_POSITION_END,
                    count_max: count,
                    pattern: pattern.map(Bin),
                };
                Plan { ops: vec![op], combine: Combine::Scan { partition, partition_count } }
            }
            Keyspace::Several { command, keys } => several(command, keys, partition_count),
            Keyspace::MultiSet { pairs, only_if_none_exist } => {
                let first = partition_of(&pairs[0].key, partition_count);
                let together =
                    pairs.iter().all(|pair| partition_of(&pair.key, partition_count) == first);
                if together {
                    let shape = if only_if_none_exist {
                        Shape::WrittenAsInteger
                    } else {
                        Shape::WrittenAsOk
                    };
                    Plan {
                        ops: vec![Op::MultiSet { pairs, only_if_none_exist }],
                        combine: Combine::Single(shape),
                    }
                } else if only_if_none_exist {
                    return Err(RespValue::error(
                        "CROSSSLOT Keys in request don't hash to the same slot",
                    ));
                } else {
                    let ops = pairs
                        .into_iter()
                        .map(|Pair { key, value }| Op::Set { key, value })
                        .collect();
                    Plan { ops, combine: Combine::Ok }
                }
            }
        })
    }
}

/// The plan of `MGET`/`EXISTS`/`DEL` of several keys: one op, atomic, if every key is in one
/// partition; else one op per key, each linearizable on its own.
fn several(command: Several, keys: Vec<Vec<u8>>, partition_count: u32) -> Plan {
    let first = partition_of(&keys[0], partition_count);
    if keys.iter().all(|key| partition_of(key, partition_count) == first) {
        let keys = keys.into_iter().map(Bin).collect();
        let (op, shape) = match command {
            Several::Get => (Op::MultiGet { keys }, Shape::Plain),
            Several::Exists => (Op::MultiGet { keys }, Shape::CountSome),
            Several::Del => (Op::MultiDel { keys }, Shape::Plain),
        };
        return Plan { ops: vec![op], combine: Combine::Single(shape) };
    }
    let (ops, combine) = match command {
        Several::Get => (keys.into_iter().map(|key| Op::Get { key }).collect(), Combine::Values),
        Several::Exists => {
            (keys.into_iter().map(|key| Op::Get { key }).collect(), Combine::CountFound)
        }
        Several::Del => {
            (keys.into_iter().map(|key| Op::Del { key }).collect(), Combine::CountFound)
        }
    };
    Plan { ops, combine }
}

/// How many partitions a `SCAN` cursor can name: its high 16 bits.
const SCAN_CURSOR_PARTITIONS: u64 = 1 << 16;

impl Plan {
    /// Whether every op only reads (then the plan goes out with the connection's reads).
    pub fn is_read_only(&self) -> bool {
        self.ops.iter().all(Op::is_read_only)
    }

    /// The reply, from the results of [`ops`](Plan::ops) in order.
    pub fn reply(&self, results: &[OpResult]) -> RespValue {
        match &self.combine {
            Combine::Single(shape) => match results.first() {
                Some(result) => shape_reply(*shape, result),
                None => RespValue::error("ERR no result"),
            },
            Combine::Values => RespValue::array(
                results
                    .iter()
                    .map(|result| match result {
                        OpResult::Value(value) => RespValue::BulkString(value.clone()),
                        _ => RespValue::null_bulk(),
                    })
                    .collect(),
            ),
            Combine::CountFound => RespValue::Integer(
                results
                    .iter()
                    .filter(|result| {
                        matches!(result, OpResult::Value(Some(_)) | OpResult::Deleted(true))
                    })
                    .count() as i64,
            ),
            Combine::Ok => RespValue::ok(),
            Combine::Sum => RespValue::Integer(
                results
                    .iter()
                    .map(|result| if let OpResult::Integer(n) = result { *n } else { 0 })
                    .sum(),
            ),
            Combine::Keys => RespValue::array(
                results
                    .iter()
                    .flat_map(|result| match result {
                        OpResult::Page { keys, .. } => keys.as_slice(),
                        _ => &[],
                    })
                    .map(|key| RespValue::bulk(key.0.clone()))
                    .collect(),
            ),
            Combine::Scan { partition, partition_count } => {
                let (keys, next) = match results.first() {
                    Some(OpResult::Page { keys, next }) => (keys.as_slice(), *next),
                    _ => (&[][..], None),
                };
                let cursor = match next {
                    Some(position) => u64::from(*partition) * SCAN_POSITION_END + position,
                    None if partition + 1 < *partition_count => {
                        u64::from(partition + 1) * SCAN_POSITION_END
                    }
                    None => 0,
                };
                RespValue::array(vec![
                    RespValue::bulk(cursor.to_string()),
                    RespValue::array(
                        keys.iter().map(|key| RespValue::bulk(key.0.clone())).collect(),
                    ),
                ])
            }
        }
    }
}

fn shape_reply(shape: Shape, result: &OpResult) -> RespValue {
    match (shape, result) {
        (_, OpResult::Refused(refusal)) => refusal_reply(*refusal),
        (Shape::WrittenAsInteger, OpResult::Written { written, .. }) => {
            RespValue::Integer(i64::from(*written))
        }
        (Shape::WrittenAsOk, OpResult::Written { written: true, .. }) => RespValue::ok(),
        (Shape::WrittenAsOk, OpResult::Written { written: false, .. }) => RespValue::null_bulk(),
        (Shape::OldValue, OpResult::Written { old, .. }) => RespValue::BulkString(old.clone()),
        (Shape::Length, OpResult::Value(value)) => {
            RespValue::Integer(value.as_ref().map_or(0, Vec::len) as i64)
        }
        (Shape::Type, OpResult::Value(value)) => {
            RespValue::simple(if value.is_some() { "string" } else { "none" })
        }
        (Shape::CountSome, OpResult::Values(values)) => {
            RespValue::Integer(values.iter().filter(|value| value.is_some()).count() as i64)
        }
        (Shape::Range(start, end), OpResult::Value(value)) => {
            RespValue::bulk(range(value.as_deref().unwrap_or_default(), start, end).to_vec())
        }
        (_, result) => super::op_reply(result),
    }
}

/// `GETRANGE`'s slice, with Redis' rules: negative indices count from the end, both ends are
/// clamped to the value, and an empty or inverted range is empty.
fn range(value: &[u8], start: i64, end: i64) -> &[u8] {
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return &[];
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end.min(len - 1) };
    if len == 0 || start > end {
        return &[];
    }
    &value[start as usize..=end as usize]
}

/// Redis' error for each [`Refusal`].
pub fn refusal_reply(refusal: Refusal) -> RespValue {
    RespValue::error(match refusal {
        Refusal::NotAnInteger => "ERR value is not an integer or out of range",
        Refusal::Overflow => "ERR increment or decrement would overflow",
        Refusal::NotAFloat => "ERR value is not a valid float",
        Refusal::NanOrInfinity => "ERR increment would produce NaN or Infinity",
        Refusal::TooLong => "ERR string exceeds maximum allowed size",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, ConnectionInfo, Handling};
    use crate::resp::{Protocol, Request};

    const CONNECTION: ConnectionInfo = ConnectionInfo { client_id: 1, protocol: Protocol::Resp2 };

    fn handling(words: &[&str]) -> Result<Handling, String> {
        let limits = CommandLimits { key_bytes_max: 64, value_bytes_max: 16 };
        let request = Request::new(words.iter().map(|w| w.as_bytes().to_vec()).collect());
        Command::parse(request, &limits)
            .map(|command| command.into_handling(&CONNECTION))
            .map_err(|error| error.to_string())
    }

    fn plan(words: &[&str]) -> Plan {
        match handling(words) {
            Ok(Handling::Plan(plan)) => plan,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    fn keyspace(words: &[&str]) -> Keyspace {
        match handling(words) {
            Ok(Handling::Keyspace(keyspace)) => keyspace,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    fn error(words: &[&str]) -> String {
        handling(words).expect_err("refused")
    }

    fn k(text: &str) -> Vec<u8> {
        text.as_bytes().to_vec()
    }

    fn value(text: &str) -> OpResult {
        OpResult::Value(Some(k(text)))
    }

    #[test]
    fn counters_parse_their_increment_like_redis() {
        assert_eq!(plan(&["INCR", "n"]).ops, vec![Op::IncrBy { key: k("n"), by: 1 }]);
        assert_eq!(plan(&["decr", "n"]).ops, vec![Op::IncrBy { key: k("n"), by: -1 }]);
        assert_eq!(plan(&["incrby", "n", "-7"]).ops, vec![Op::IncrBy { key: k("n"), by: -7 }]);
        assert_eq!(plan(&["decrby", "n", "7"]).ops, vec![Op::IncrBy { key: k("n"), by: -7 }]);
        let not_integer = "ERR value is not an integer or out of range";
        assert_eq!(error(&["incrby", "n", "1.5"]), not_integer);
        assert_eq!(error(&["incrby", "n", "+1"]), not_integer);
        assert_eq!(error(&["incrby", "n", "99999999999999999999"]), not_integer);
        assert_eq!(error(&["decrby", "n", "-9223372036854775808"]), "ERR decrement would overflow");
        assert_eq!(error(&["incr"]), "ERR wrong number of arguments for 'incr' command");
        assert_eq!(error(&["incr", "a", "b"]), "ERR wrong number of arguments for 'incr' command");
        assert_eq!(
            plan(&["incrbyfloat", "f", "1e2"]).ops,
            vec![Op::IncrByFloat { key: k("f"), by_bits: 100f64.to_bits() }]
        );
        assert_eq!(error(&["incrbyfloat", "f", "abc"]), "ERR value is not a valid float");
        assert_eq!(error(&["incrbyfloat", "f", "nan"]), "ERR value is not a valid float");
    }

    #[test]
    fn refusals_reply_with_redis_texts() {
        let reply = |words: &[&str], result: OpResult| plan(words).reply(&[result]);
        assert_eq!(reply(&["incr", "n"], OpResult::Integer(3)), RespValue::Integer(3));
        assert_eq!(
            reply(&["incr", "n"], OpResult::Refused(Refusal::Overflow)),
            RespValue::error("ERR increment or decrement would overflow")
        );
        assert_eq!(
            reply(&["incr", "n"], OpResult::Refused(Refusal::NotAnInteger)),
            RespValue::error("ERR value is not an integer or out of range")
        );
        assert_eq!(
            reply(&["append", "a", "x"], OpResult::Refused(Refusal::TooLong)),
            RespValue::error("ERR string exceeds maximum allowed size")
        );
        assert_eq!(
            reply(&["incrbyfloat", "f", "1"], OpResult::Refused(Refusal::NanOrInfinity)),
            RespValue::error("ERR increment would produce NaN or Infinity")
        );
        assert_eq!(reply(&["incrbyfloat", "f", "1"], value("10.6")), RespValue::bulk("10.6"));
    }

    #[test]
    fn append_and_setrange_carry_the_value_limit() {
        assert_eq!(
            plan(&["append", "a", "xy"]).ops,
            vec![Op::Append { key: k("a"), value: k("xy"), len_max: 16 }]
        );
        assert_eq!(
            plan(&["setrange", "a", "3", "xy"]).ops,
            vec![Op::SetRange { key: k("a"), offset: 3, value: k("xy"), len_max: 16 }]
        );
        assert_eq!(error(&["setrange", "a", "-1", "x"]), "ERR offset is out of range");
        assert_eq!(
            error(&["setrange", "a", "x", "x"]),
            "ERR value is not an integer or out of range"
        );
    }

    #[test]
    fn set_options_follow_redis_rules() {
        let set_if = |words: &[&str]| match &plan(words).ops[..] {
            [Op::SetIf { condition, .. }] => *condition,
            other => panic!("{other:?}"),
        };
        let nx = set_if(&["set", "k", "v", "nx"]);
        assert!(nx.if_missing && !nx.if_exists && !nx.get_old);
        let xx_get = set_if(&["SET", "k", "v", "XX", "get"]);
        assert!(!xx_get.if_missing && xx_get.if_exists && xx_get.get_old);
        assert_eq!(plan(&["set", "k", "v", "nx"]).combine, Combine::Single(Shape::WrittenAsOk));
        assert_eq!(plan(&["set", "k", "v", "get"]).combine, Combine::Single(Shape::OldValue));
        for conflict in [
            &["set", "k", "v", "nx", "xx"][..],
            &["set", "k", "v", "xx", "nx"],
            &["set", "k", "v", "ex", "10", "px", "100"],
            &["set", "k", "v", "keepttl", "ex", "10"],
            &["set", "k", "v", "ex"],
            &["set", "k", "v", "bogus"],
        ] {
            assert_eq!(error(conflict), "ERR syntax error", "{conflict:?}");
        }
        assert_eq!(
            error(&["set", "k", "v", "ex", "x"]),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            error(&["set", "k", "v", "px", "0"]),
            "ERR invalid expire time in 'set' command"
        );
        let no_expiry = "ERR key expiry (EX, PX, EXAT, PXAT, KEEPTTL) is not supported yet";
        assert_eq!(error(&["set", "k", "v", "nx", "px", "30000"]), no_expiry);
        assert_eq!(error(&["set", "k", "v", "keepttl"]), no_expiry);
        // SETNX and GETSET are SET with a condition.
        let setnx = plan(&["setnx", "k", "v"]);
        assert_eq!(
            setnx.reply(&[OpResult::Written { written: false, old: None }]),
            RespValue::Integer(0)
        );
        let getset = plan(&["getset", "k", "v"]);
        assert_eq!(
            getset.reply(&[OpResult::Written { written: true, old: Some(k("old")) }]),
            RespValue::bulk("old")
        );
        assert_eq!(
            plan(&["set", "k", "v", "xx"])
                .reply(&[OpResult::Written { written: false, old: None }]),
            RespValue::null_bulk()
        );
    }

    #[test]
    fn getex_without_options_is_a_get_and_expiry_options_are_refused() {
        assert_eq!(plan(&["getex", "k"]).ops, vec![Op::Get { key: k("k") }]);
        let refused = "ERR key expiry (EX, PX, EXAT, PXAT, PERSIST) is not supported yet";
        assert_eq!(error(&["getex", "k", "ex", "10"]), refused);
        assert_eq!(error(&["getex", "k", "persist"]), refused);
        assert_eq!(error(&["getex", "k", "ex", "10", "persist"]), "ERR syntax error");
        assert_eq!(error(&["getex", "k", "px"]), "ERR syntax error");
        assert_eq!(error(&["getex", "k", "px", "0"]), "ERR invalid expire time in 'getex' command");
    }

    #[test]
    fn reads_shape_a_get() {
        let get = |words: &[&str], seen: Option<&str>| {
            let plan = plan(words);
            assert_eq!(plan.ops, vec![Op::Get { key: k(words[1]) }]);
            plan.reply(&[OpResult::Value(seen.map(k))])
        };
        assert_eq!(get(&["strlen", "k"], Some("hello")), RespValue::Integer(5));
        assert_eq!(get(&["strlen", "k"], None), RespValue::Integer(0));
        assert_eq!(get(&["type", "k"], Some("")), RespValue::simple("string"));
        assert_eq!(get(&["type", "k"], None), RespValue::simple("none"));
        assert_eq!(get(&["exists", "k"], Some("x")), RespValue::Integer(1));
        // Redis' own GETRANGE examples, on "This is a string".
        let text = Some("This is a string");
        assert_eq!(get(&["getrange", "k", "0", "3"], text), RespValue::bulk("This"));
        assert_eq!(get(&["getrange", "k", "-3", "-1"], text), RespValue::bulk("ing"));
        assert_eq!(get(&["getrange", "k", "0", "-1"], text), RespValue::bulk("This is a string"));
        assert_eq!(get(&["getrange", "k", "10", "100"], text), RespValue::bulk("string"));
        assert_eq!(get(&["getrange", "k", "5", "3"], text), RespValue::bulk(""));
        assert_eq!(get(&["getrange", "k", "-1", "-5"], text), RespValue::bulk(""));
        assert_eq!(get(&["getrange", "k", "0", "3"], None), RespValue::bulk(""));
    }

    /// Two keys in different partitions of 4, and a key in the same partition as `a`.
    fn apart_and_together() -> (String, String) {
        let part = |key: &str| partition_of(key.as_bytes(), 4);
        let apart = (0..100).map(|i| format!("k{i}")).find(|key| part(key) != part("a")).unwrap();
        let together =
            (0..100).map(|i| format!("k{i}")).find(|key| part(key) == part("a")).unwrap();
        (apart, together)
    }

    #[test]
    fn multi_key_commands_across_partitions_run_one_op_per_key_and_combine_in_order() {
        let (b, _) = apart_and_together();
        let several = |words: &[&str]| keyspace(words).plan(4).unwrap();
        let mget = several(&["mget", "a", &b, "a"]);
        assert_eq!(mget.ops.len(), 3);
        assert!(mget.is_read_only());
        assert_eq!(
            mget.reply(&[value("1"), OpResult::Value(None), value("1")]),
            RespValue::array(vec![
                RespValue::bulk("1"),
                RespValue::null_bulk(),
                RespValue::bulk("1")
            ])
        );
        let exists = several(&["exists", "a", "a", &b]);
        assert_eq!(
            exists.reply(&[value("1"), value("1"), OpResult::Value(None)]),
            RespValue::Integer(2),
            "a key named twice counts twice, as in Redis"
        );
        for name in ["del", "unlink"] {
            let del = several(&[name, "a", &b]);
            assert_eq!(del.ops, vec![Op::Del { key: k("a") }, Op::Del { key: k(&b) }]);
            assert!(!del.is_read_only());
            assert_eq!(
                del.reply(&[OpResult::Deleted(true), OpResult::Deleted(false)]),
                RespValue::Integer(1)
            );
        }
        // One key: one op, no partition count needed.
        assert_eq!(plan(&["exists", "a"]).ops, vec![Op::Get { key: k("a") }]);
        assert_eq!(
            error(&["mset", "a", "1", "b"]),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(error(&["msetnx", "a"]), "ERR wrong number of arguments for 'msetnx' command");
    }

    #[test]
    fn multi_key_commands_in_one_partition_are_one_atomic_op() {
        let (_, c) = apart_and_together();
        let several = |words: &[&str]| keyspace(words).plan(4).unwrap();
        let keys = vec![Bin(k("a")), Bin(k(&c)), Bin(k("a"))];
        let mget = several(&["mget", "a", &c, "a"]);
        assert_eq!(mget.ops, vec![Op::MultiGet { keys: keys.clone() }]);
        let values = OpResult::Values(vec![Some(Bin(k("1"))), None, Some(Bin(k("1")))]);
        assert_eq!(
            mget.reply(std::slice::from_ref(&values)),
            RespValue::array(vec![
                RespValue::bulk("1"),
                RespValue::null_bulk(),
                RespValue::bulk("1")
            ])
        );
        let exists = several(&["exists", "a", &c, "a"]);
        assert_eq!(exists.ops, vec![Op::MultiGet { keys: keys.clone() }]);
        assert_eq!(exists.reply(&[values]), RespValue::Integer(2));
        let del = several(&["unlink", "a", &c, "a"]);
        assert_eq!(del.ops, vec![Op::MultiDel { keys }]);
        assert_eq!(del.reply(&[OpResult::Integer(1)]), RespValue::Integer(1));
    }

    #[test]
    fn mset_is_atomic_in_one_partition_and_msetnx_refuses_several() {
        // Find two keys in different partitions of 4, and two in the same.
        let part = |key: &str| partition_of(key.as_bytes(), 4);
        let other = (0..100).map(|i| format!("k{i}")).find(|key| part(key) != part("a")).unwrap();
        let same = (0..100).map(|i| format!("k{i}")).find(|key| part(key) == part("a")).unwrap();
        let mset = |words: &[&str]| keyspace(words).plan(4);
        let together = mset(&["mset", "a", "1", &same, "2"]).unwrap();
        assert!(matches!(&together.ops[..], [Op::MultiSet { only_if_none_exist: false, .. }]));
        assert_eq!(
            together.reply(&[OpResult::Written { written: true, old: None }]),
            RespValue::ok()
        );
        let apart = mset(&["mset", "a", "1", &other, "2"]).unwrap();
        assert_eq!(
            apart.ops,
            vec![Op::Set { key: k("a"), value: k("1") }, Op::Set { key: k(&other), value: k("2") }]
        );
        assert_eq!(apart.reply(&[OpResult::Stored, OpResult::Stored]), RespValue::ok());
        assert_eq!(
            mset(&["msetnx", "a", "1", &other, "2"]),
            Err(RespValue::error("CROSSSLOT Keys in request don't hash to the same slot"))
        );
        let nx = mset(&["msetnx", "a", "1", &same, "2"]).unwrap();
        assert_eq!(
            nx.reply(&[OpResult::Written { written: false, old: None }]),
            RespValue::Integer(0)
        );
    }

    #[test]
    fn keys_with_one_hash_tag_are_written_atomically() {
        let plan =
            keyspace(&["msetnx", "{user:1}:name", "ada", "{user:1}:email", "a@b", "user:1", "x"])
                .plan(64)
                .unwrap();
        assert!(
            matches!(&plan.ops[..], [Op::MultiSet { only_if_none_exist: true, pairs }] if pairs.len() == 3)
        );
    }

    #[test]
    fn whole_keyspace_commands_fan_out_to_every_partition() {
        let dbsize = keyspace(&["dbsize"]).plan(3).unwrap();
        assert_eq!(dbsize.ops, (0..3).map(|partition| Op::Count { partition }).collect::<Vec<_>>());
        assert_eq!(
            dbsize.reply(&[OpResult::Integer(2), OpResult::Integer(0), OpResult::Integer(5)]),
            RespValue::Integer(7)
        );
        let flush = keyspace(&["flushall", "ASYNC"]).plan(2).unwrap();
        assert_eq!(flush.ops, vec![Op::Flush { partition: 0 }, Op::Flush { partition: 1 }]);
        assert_eq!(error(&["flushdb", "now"]), "ERR syntax error");
        let keys = keyspace(&["keys", "user:*"]).plan(2).unwrap();
        let page = |keys: &[&str]| OpResult::Page {
            keys: keys.iter().map(|key| Bin(k(key))).collect(),
            next: None,
        };
        assert_eq!(
            keys.reply(&[page(&["user:1"]), page(&["user:2", "user:3"])]),
            RespValue::array(vec![
                RespValue::bulk("user:1"),
                RespValue::bulk("user:2"),
                RespValue::bulk("user:3")
            ])
        );
    }

    #[test]
    fn scan_cursors_walk_the_partitions_in_turn() {
        let scan = |cursor: u64, partitions| {
            keyspace(&["scan", &cursor.to_string(), "MATCH", "a*", "COUNT", "5"]).plan(partitions)
        };
        let first = scan(0, 3).unwrap();
        assert_eq!(
            first.ops,
            vec![Op::Scan { partition: 0, from: 0, count_max: 5, pattern: Some(Bin(k("a*"))) }]
        );
        let cursor = |plan: &Plan, next| match plan.reply(&[OpResult::Page { keys: vec![], next }])
        {
            RespValue::Array(Some(items)) => items[0].clone(),
            other => panic!("{other:?}"),
        };
        // More in partition 0: the cursor stays there; done: the next partition; the last done: 0.
        assert_eq!(cursor(&first, Some(77)), RespValue::bulk("77"));
        assert_eq!(cursor(&first, None), RespValue::bulk((1u64 << 48).to_string()));
        let last = scan((2 << 48) + 9, 3).unwrap();
        assert_eq!(
            last.ops,
            vec![Op::Scan { partition: 2, from: 9, count_max: 5, pattern: Some(Bin(k("a*"))) }]
        );
        assert_eq!(cursor(&last, None), RespValue::bulk("0"));
        assert_eq!(scan(3 << 48, 3), Err(RespValue::error("ERR invalid cursor")));
        assert_eq!(error(&["scan", "x"]), "ERR invalid cursor");
        assert_eq!(error(&["scan", "0", "count", "0"]), "ERR syntax error");
        assert_eq!(error(&["scan", "0", "match"]), "ERR syntax error");
        // Only strings exist: another type ends the scan at once.
        let hashes = plan(&["scan", "0", "type", "hash"]);
        assert!(hashes.ops.is_empty());
        assert_eq!(
            hashes.reply(&[]),
            RespValue::array(vec![RespValue::bulk("0"), RespValue::array(vec![])])
        );
        assert!(matches!(handling(&["scan", "0", "type", "string"]), Ok(Handling::Keyspace(_))));
    }
}
