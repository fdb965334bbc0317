//! `CLIENT ID|GETNAME|LIST|INFO|KILL` and `TIME`: commands about the connections of a node and
//! its clock, which only the front end can answer (it holds the connections). This module
//! parses them and formats the replies from a [`ClientEntry`] per connection; the front end
//! fills the entries and closes what `KILL` matches.

use std::net::SocketAddr;
use std::time::Duration;

use crate::resp::RespValue;

use super::{CommandError, CommandSpec};

/// The commands of this module besides `CLIENT`'s subcommands (`CLIENT` itself is in
/// [`super::COMMAND_TABLE`]).
pub const COMMAND_TABLE: &[CommandSpec] = &[CommandSpec { name: "time", arity: 1 }];

/// A command about connections or the clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// `CLIENT ID`: the connection's id.
    Id,
    /// `CLIENT GETNAME`: the name `CLIENT SETNAME` (or `HELLO … SETNAME`) gave it, or null.
    GetName,
    /// `CLIENT LIST`: a line per connection of this node.
    List,
    /// `CLIENT INFO`: the line of this connection.
    Info,
    /// `CLIENT KILL …`: close the connections matching.
    Kill(KillFilter),
    /// `TIME`: the node's wall clock.
    Time,
}

/// Which connections `CLIENT KILL` closes: those matching every filter given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KillFilter {
    /// `ID id`.
    pub id: Option<u64>,
    /// `ADDR ip:port` (or the old form `CLIENT KILL ip:port`): the client's address.
    pub addr: Option<String>,
    /// `LADDR ip:port`: the address it connected to.
    pub laddr: Option<String>,
    /// `SKIPME no` clears it: whether the connection asking is spared (the default).
    pub skip_me: bool,
    /// The old form, `CLIENT KILL ip:port`, which replies `+OK` or an error instead of a count.
    pub old_form: bool,
}

/// What `CLIENT LIST` shows of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEntry {
    /// Its id.
    pub id: u64,
    /// The client's address.
    pub addr: SocketAddr,
    /// The address it connected to.
    pub laddr: SocketAddr,
    /// Its name, empty if none.
    pub name: Vec<u8>,
    /// Since it connected.
    pub age: Duration,
    /// Since its last command.
    pub idle: Duration,
    /// Its last command, lowercase (`client|list` for a subcommand), empty before the first.
    pub cmd: String,
    /// The protocol version it speaks (2 or 3).
    pub resp: i64,
}

/// Parses `CLIENT ID|GETNAME|LIST|INFO|KILL …` (`args[1]` is the subcommand, lowercased in
/// `subcommand`).
pub fn parse(subcommand: &str, args: &[Vec<u8>]) -> Result<ClientCommand, CommandError> {
    let arity_error = || CommandError::WrongArity { command: format!("client|{subcommand}") };
    match subcommand {
        "id" | "getname" | "info" if args.len() != 2 => Err(arity_error()),
        "id" => Ok(ClientCommand::Id),
        "getname" => Ok(ClientCommand::GetName),
        "info" => Ok(ClientCommand::Info),
        // `CLIENT LIST TYPE …` and `CLIENT LIST ID …` filter; not offered.
        "list" if args.len() == 2 => Ok(ClientCommand::List),
        "list" => Err(CommandError::Syntax),
        "kill" => parse_kill(&args[2..]).map(ClientCommand::Kill),
        _ => unreachable!("only the subcommands above are passed here"),
    }
}

/// The subcommands [`parse`] takes.
pub const SUBCOMMANDS: &[&str] = &["id", "getname", "list", "info", "kill"];

fn parse_kill(filters: &[Vec<u8>]) -> Result<KillFilter, CommandError> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match filters {
        [] => return Err(CommandError::WrongArity { command: "client|kill".to_owned() }),
        [addr] => {
            return Ok(KillFilter {
                addr: Some(text(addr)),
                skip_me: false,
                old_form: true,
                ..KillFilter::default()
            })
        }
        _ if filters.len() % 2 == 1 => return Err(CommandError::Syntax),
        _ => {}
    }
    let mut filter = KillFilter { skip_me: true, ..KillFilter::default() };
    for pair in filters.chunks(2) {
        let value = &pair[1];
        match pair[0].to_ascii_lowercase().as_slice() {
            b"id" => {
                let id = std::str::from_utf8(value).ok().and_then(|t| t.parse::<u64>().ok());
                let id = id.filter(|&id| id > 0 && id <= i64::MAX as u64);
                filter.id =
                    Some(id.ok_or(CommandError::Invalid("client-id should be greater than 0"))?);
            }
            b"addr" => filter.addr = Some(text(value)),
            b"laddr" => filter.laddr = Some(text(value)),
            b"skipme" => match value.to_ascii_lowercase().as_slice() {
                b"yes" => filter.skip_me = true,
                b"no" => filter.skip_me = false,
                _ => return Err(CommandError::Syntax),
            },
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(filter)
}

impl KillFilter {
    /// Whether the connection `entry` is to be closed, when `asking` is the id of the
    /// connection that sent the command.
    pub fn matches(&self, entry: &ClientEntry, asking: u64) -> bool {
        !(self.skip_me && entry.id == asking)
            && self.id.is_none_or(|id| id == entry.id)
            && self.addr.as_ref().is_none_or(|addr| *addr == entry.addr.to_string())
            && self.laddr.as_ref().is_none_or(|laddr| *laddr == entry.laddr.to_string())
    }

    /// The reply once `killed` connections matched: the count, or for the old form `+OK` or
    /// Redis' `No such client`.
    pub fn reply(&self, killed: usize) -> RespValue {
        match (self.old_form, killed) {
            (false, killed) => RespValue::Integer(killed as i64),
            (true, 0) => RespValue::error("ERR No such client"),
            (true, _) => RespValue::ok(),
        }
    }
}

impl ClientEntry {
    /// The connection's line in `CLIENT LIST`, in Redis' `field=value` format (the fields
    /// that mean something here; no trailing newline).
    pub fn line(&self) -> String {
        format!(
            "id={} addr={} laddr={} name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 cmd={} user=default resp={}",
            self.id,
            self.addr,
            self.laddr,
            String::from_utf8_lossy(&self.name),
            self.age.as_secs(),
            self.idle.as_secs(),
            if self.cmd.is_empty() { "NULL" } else { &self.cmd },
            self.resp,
        )
    }
}

/// `CLIENT LIST`'s reply: a verbatim bulk string of one line per connection, each ending with
/// a newline.
pub fn list_reply(entries: &[ClientEntry]) -> RespValue {
    let mut text = String::new();
    for entry in entries {
        text.push_str(&entry.line());
        text.push('\n');
    }
    RespValue::bulk(text)
}

/// `TIME`'s reply for a wall-clock reading `since_epoch`: seconds and microseconds as two
/// bulk strings.
pub fn time_reply(since_epoch: Duration) -> RespValue {
    RespValue::array(vec![
        RespValue::bulk(since_epoch.as_secs().to_string()),
        RespValue::bulk(since_epoch.subsec_micros().to_string()),
    ])
}

/// Keeps in `buf` the name of a request's command as sent, with `|subcommand` for commands that
/// have them (`CLIENT LIST`). Called for every request, so it only copies bytes into `buf`'s
/// allocation (each part bounded); [`command_name`] formats them when `CLIENT LIST` asks.
pub fn remember_command(buf: &mut Vec<u8>, args: &[Vec<u8>]) {
    const WITH_SUBCOMMANDS: &[&[u8]] = &[b"client", b"config", b"command"];
    /// Far more than the 64 characters shown, whatever control bytes are dropped.
    const PART_MAX: usize = 256;
    buf.clear();
    let Some(name) = args.first() else { return };
    buf.extend_from_slice(&name[..name.len().min(PART_MAX)]);
    let has_subcommands = WITH_SUBCOMMANDS.iter().any(|w| name.eq_ignore_ascii_case(w));
    if let Some(sub) = args.get(1).filter(|_| has_subcommands) {
        buf.push(b'|');
        buf.extend_from_slice(&sub[..sub.len().min(PART_MAX)]);
    }
}

/// `CLIENT LIST`'s `cmd` field for a command kept by [`remember_command`]: lowercase
/// (`client|list`), without spaces or control bytes, at most 64 characters.
pub fn command_name(remembered: &[u8]) -> String {
    let mut full = String::from_utf8_lossy(remembered).to_ascii_lowercase();
    // Shown inside a space-separated line: no spaces, no control bytes.
    full.retain(|c| c.is_ascii_graphic());
    full.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn entry(id: u64, port: u16) -> ClientEntry {
        ClientEntry {
            id,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            laddr: SocketAddr::from(([127, 0, 0, 1], 6379)),
            name: b"app".to_vec(),
            age: Duration::from_secs(12),
            idle: Duration::from_millis(2500),
            cmd: "client|list".into(),
            resp: 2,
        }
    }

    #[test]
    fn client_list_lines_use_redis_field_format() {
        assert_eq!(
            entry(7, 5000).line(),
            "id=7 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 name=app age=12 idle=2 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 cmd=client|list user=default resp=2"
        );
        let RespValue::BulkString(Some(text)) = list_reply(&[entry(1, 1), entry(2, 2)]) else {
            panic!("not a bulk string")
        };
        assert_eq!(String::from_utf8(text).unwrap().lines().count(), 2);
    }

    #[test]
    fn kill_filters_match_like_redis() {
        let kill = |words: &[&str]| {
            parse("kill", &args(words)).map(|command| match command {
                ClientCommand::Kill(filter) => filter,
                other => panic!("{other:?}"),
            })
        };
        let old = kill(&["client", "kill", "127.0.0.1:5000"]).unwrap();
        assert!(old.matches(&entry(3, 5000), 3), "the old form does not skip the asker");
        assert!(!old.matches(&entry(3, 5001), 1));
        assert_eq!(old.reply(0), RespValue::error("ERR No such client"));
        assert_eq!(old.reply(1), RespValue::ok());
        let by_id = kill(&["client", "kill", "ID", "4"]).unwrap();
        assert!(by_id.matches(&entry(4, 1), 1));
        assert!(!by_id.matches(&entry(4, 1), 4), "SKIPME yes by default");
        assert!(!by_id.matches(&entry(5, 1), 1));
        assert_eq!(by_id.reply(2), RespValue::Integer(2));
        let me_too = kill(&["client", "kill", "id", "4", "skipme", "no"]).unwrap();
        assert!(me_too.matches(&entry(4, 1), 4));
        let both =
            kill(&["client", "kill", "addr", "127.0.0.1:1", "laddr", "127.0.0.1:6379"]).unwrap();
        assert!(both.matches(&entry(9, 1), 1));
        assert!(!both.matches(&entry(9, 2), 1));
        assert_eq!(
            kill(&["client", "kill", "id", "0"]).unwrap_err().to_string(),
            "ERR client-id should be greater than 0"
        );
        assert_eq!(
            kill(&["client", "kill", "id", "4", "skipme"]).unwrap_err(),
            CommandError::Syntax
        );
        assert_eq!(kill(&["client", "kill", "user", "x"]).unwrap_err(), CommandError::Syntax);
        assert_eq!(kill(&["client", "kill", "skipme", "maybe"]).unwrap_err(), CommandError::Syntax);
    }

    #[test]
    fn arity_and_time_and_command_names() {
        assert_eq!(
            parse("getname", &args(&["client", "getname", "x"])).unwrap_err().to_string(),
            "ERR wrong number of arguments for 'client|getname' command"
        );
        assert_eq!(
            parse("list", &args(&["client", "list", "type", "normal"])),
            Err(CommandError::Syntax)
        );
        assert_eq!(
            time_reply(Duration::new(1_700_000_000, 123_456_789)),
            RespValue::array(vec![RespValue::bulk("1700000000"), RespValue::bulk("123456")])
        );
        let name = |words: &[&str]| {
            let mut buf = Vec::new();
            remember_command(&mut buf, &args(words));
            command_name(&buf)
        };
        assert_eq!(name(&["CLIENT", "List"]), "client|list");
        assert_eq!(name(&["GET", "k"]), "get");
        assert_eq!(name(&["a b\r\n"]), "ab");
    }
}
