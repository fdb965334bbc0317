//! `COMMAND INFO name…`: what clients learn of a command besides its name. Redis' layout, one
//! array per command: name, arity, flags, first key, last key, key step, then ACL categories,
//! tips, key specifications and subcommands (empty here). Flags say whether a command writes
//! (`write`, `denyoom`: refused at the memory limit) or only reads (`readonly`), and whether it
//! is `fast` (O(1) or O(log n)); key positions let a client find the keys of a request.

use crate::resp::RespValue;

use super::{all_commands, CommandSpec};

/// The flags and key positions (first, last, step; 0 when the command has no key; a negative
/// last key counts from the end) of the command named `name` (lowercase).
fn metadata(name: &str) -> (&'static [&'static str], i64, i64, i64) {
    const WRITE_FAST: &[&str] = &["write", "denyoom", "fast"];
    const WRITE: &[&str] = &["write"];
    const READ_FAST: &[&str] = &["readonly", "fast"];
    const READ: &[&str] = &["readonly"];
    const SERVER: &[&str] = &["loading", "stale", "fast"];
    match name {
        "set" | "cas" | "incr" | "decr" | "incrby" | "decrby" | "incrbyfloat" | "append"
        | "setrange" | "setnx" | "getset" => (WRITE_FAST, 1, 1, 1),
        "getdel" => (&["write", "fast"], 1, 1, 1),
        "get" | "strlen" | "getrange" | "type" | "getex" => (READ_FAST, 1, 1, 1),
        "exists" | "mget" => (READ_FAST, 1, -1, 1),
        "del" | "unlink" => (WRITE, 1, -1, 1),
        "mset" | "msetnx" => (&["write", "denyoom"], 1, -1, 2),
        "dbsize" => (READ_FAST, 0, 0, 0),
        "keys" | "scan" => (READ, 0, 0, 0),
        "flushall" | "flushdb" => (WRITE, 0, 0, 0),
        _ => (SERVER, 0, 0, 0),
    }
}

/// The `COMMAND INFO` entry of `spec`.
fn entry(spec: &CommandSpec) -> RespValue {
    let (flags, first, last, step) = metadata(spec.name);
    RespValue::array(vec![
        RespValue::bulk(spec.name),
        RespValue::Integer(i64::from(spec.arity)),
        RespValue::array(flags.iter().map(|flag| RespValue::simple(*flag)).collect()),
        RespValue::Integer(first),
        RespValue::Integer(last),
        RespValue::Integer(step),
        RespValue::array(vec![]),
        RespValue::array(vec![]),
        RespValue::array(vec![]),
        RespValue::array(vec![]),
    ])
}

/// The reply to `COMMAND INFO names…`: each command's entry, or null for an unknown name.
pub fn info_reply(names: &[Vec<u8>]) -> RespValue {
    RespValue::array(
        names
            .iter()
            .map(|name| {
                let name = String::from_utf8_lossy(name).to_ascii_lowercase();
                all_commands().find(|spec| spec.name == name).map_or(RespValue::null_bulk(), entry)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_info_gives_arity_flags_and_key_positions() {
        let reply = info_reply(&[b"MSET".to_vec(), b"nosuch".to_vec(), b"incr".to_vec()]);
        let RespValue::Array(Some(entries)) = reply else { panic!("not an array") };
        let RespValue::Array(Some(mset)) = &entries[0] else { panic!("{:?}", entries[0]) };
        assert_eq!(mset[0], RespValue::bulk("mset"));
        assert_eq!(mset[1], RespValue::Integer(-3));
        assert_eq!(
            mset[2],
            RespValue::array(vec![RespValue::simple("write"), RespValue::simple("denyoom")])
        );
        assert_eq!(
            mset[3..6],
            [RespValue::Integer(1), RespValue::Integer(-1), RespValue::Integer(2)]
        );
        assert_eq!(mset.len(), 10);
        assert_eq!(entries[1], RespValue::null_bulk());
        let RespValue::Array(Some(incr)) = &entries[2] else { panic!("{:?}", entries[2]) };
        assert_eq!(incr[1], RespValue::Integer(2));
    }

    #[test]
    fn every_key_command_has_key_positions() {
        for spec in all_commands() {
            let (flags, first, _, _) = metadata(spec.name);
            let is_data = flags.contains(&"write") || flags.contains(&"readonly");
            let keyless = ["dbsize", "keys", "scan", "flushall", "flushdb"].contains(&spec.name);
            assert_eq!(is_data && !keyless, first == 1, "{}", spec.name);
        }
    }
}
