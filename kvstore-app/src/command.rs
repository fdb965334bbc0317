//! From a parsed [`Request`] to a typed [`Command`], and from a command to what the server does
//! with it ([`Handling`]): an [`Op`] for the partition's state machine, or a reply given on the
//! spot.
//!
//! # Supported commands
//!
//! Names and subcommands are case-insensitive. Errors are Redis' texts, so clients show them as
//! they would show Redis'.
//!
//! | Command | Reply |
//! |---|---|
//! | `GET key` | the value as a bulk string, or the null bulk string if the key is missing |
//! | `SET key value` | `+OK`. With options (`NX`, `XX`, `GET`; expiry is refused for now), see [`strings`] |
//! | `DEL key` | `:1` if the key existed, else `:0`. Several keys: see [`strings`] |
//! | `CAS key expected new` | `:1` if the key held `expected` and now holds `new`, else `:0`; a missing key never matches |
//! | `PING [message]` | `+PONG`, or the message as a bulk string |
//! | `ECHO message` | the message as a bulk string |
//! | `INFO [section]` | a bulk string of `# Section` headers and `field:value` lines, built by the server ([`Handling::Info`], [`info_reply`]) |
//! | `COMMAND`, `COMMAND DOCS [name…]` | an empty array (redis-cli asks for docs at start-up; it needs only an array) |
//! | `COMMAND COUNT` | the number of commands in this table |
//! | `COMMAND LIST` | the command names |
//! | `CONFIG GET pattern…` | the parameters matching the glob patterns, a map of name → value (a flat array of pairs in RESP2): `appendonly` → `yes` (every write is in the Zab log before it is acknowledged), `databases` → `1`, `save` → empty (redis-benchmark reads `save` and `appendonly` at start-up); the front end adds `maxmemory` → the node's limit in bytes and `appendfsync` → `always` or `no` (`--no-fsync`) |
//! | `COMMAND INFO name…` | per name, Redis' entry (arity, flags, key positions; see [`introspection`]), or null for an unknown name |
//! | `CLIENT SETNAME name` | `+OK` (the server may remember the name) |
//! | `CLIENT SETINFO attr value`, `CLIENT NO-EVICT on/off`, `CLIENT NO-TOUCH on/off` | `+OK`, ignored (redis-py sends `SETINFO` on connect) |
//! | `HELLO [2\|3 [AUTH user pass] [SETNAME name]]` | switches the connection to that protocol version ([`Handling::Hello`]) and describes the server in it: a map of `server`, `version`, `proto`, `id`, `mode`, `role`, `modules` (a flat array in RESP2). Without a version, the connection keeps its protocol |
//! | `HELLO` with any other version | `-NOPROTO sorry, this protocol version is not supported` |
//! | `SELECT 0` | `+OK`; any other database is `-ERR DB index is out of range` |
//! | `QUIT` | `+OK`, then the server closes the connection |
//! | `AUTH [user] password` | `+OK` once [`crate::auth`] accepts the credentials (it checks them, and refuses other commands before them) |
//! | `RESET` | `+RESET`; the connection is back to RESP2 and, when the node has a password, unauthenticated ([`Handling::Reset`]) |
//!
//! The string and key commands (`INCR`, `APPEND`, `MGET`, `MSET`, `SCAN`, `DBSIZE`, …) and what
//! each guarantees across partitions are in [`strings`]; `CLIENT ID|GETNAME|LIST|INFO|KILL`
//! and `TIME` in [`clients`].
//!
//! Anything else is `-ERR unknown command 'name', with args beginning with: …`; a wrong
//! argument count is `-ERR wrong number of arguments for 'name' command`.
//!
//! ```
//! use kvstore_app::command::{Command, CommandLimits, ConnectionInfo, Handling};
//! use kvstore_app::resp::{Protocol, Request, RespValue};
//! use kvstore_app::store::Op;
//!
//! let limits = CommandLimits::default();
//! let request = Request::new(vec![b"get".to_vec(), b"k".to_vec()]);
//! let command = Command::parse(request, &limits).unwrap();
//! let connection = ConnectionInfo { client_id: 7, protocol: Protocol::Resp2 };
//! assert_eq!(command.into_handling(&connection), Handling::Op(Op::Get { key: b"k".to_vec() }));
//!
//! let request = Request::new(vec![b"GET".to_vec()]);
//! let error = Command::parse(request, &limits).unwrap_err();
//! assert_eq!(error.to_reply(), RespValue::error("ERR wrong number of arguments for 'get' command"));
//! ```

use std::fmt;

use crate::auth::Password;
pub mod clients;
pub mod introspection;
pub mod strings;

use crate::resp::{Oversized, Protocol, Request, RespValue};
use crate::store::{Op, OpResult};

/// Size limits on keys and values, checked when a command is parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLimits {
    /// The longest key, in bytes. Default 16 KiB.
    pub key_bytes_max: usize,
    /// The longest value (of `SET`, and each of `CAS`' two values), in bytes. Default 1 MiB,
    /// the same as [`RespLimits::bulk_bytes_max`](crate::resp::RespLimits::bulk_bytes_max).
    pub value_bytes_max: usize,
}

impl Default for CommandLimits {
    fn default() -> Self {
        CommandLimits { key_bytes_max: 16 * 1024, value_bytes_max: 1024 * 1024 }
    }
}

/// A client command, checked for arity and sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `GET key`.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// `SET key value`.
    Set {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// `DEL key`.
    Del {
        /// The key.
        key: Vec<u8>,
    },
    /// `CAS key expected new`.
    Cas {
        /// The key.
        key: Vec<u8>,
        /// The value the key must hold.
        expected: Vec<u8>,
        /// The value written on a match.
        new: Vec<u8>,
    },
    /// `PING [message]`.
    Ping(Option<Vec<u8>>),
    /// `ECHO message`.
    Echo(Vec<u8>),
    /// `INFO [section]`, the section lowercased.
    Info(Option<String>),
    /// `COMMAND [subcommand …]`.
    Command(CommandQuery),
    /// `CONFIG GET pattern…`.
    ConfigGet(Vec<Vec<u8>>),
    /// `CLIENT SETNAME name`.
    ClientSetName(Vec<u8>),
    /// A `CLIENT` subcommand acknowledged and ignored (`setinfo`, `no-evict`, `no-touch`),
    /// lowercased.
    ClientOther(String),
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello {
        /// The protocol version asked for, if any.
        protocol: Option<i64>,
        /// The `AUTH` option: user name and password (checked by [`crate::auth`]).
        auth: Option<(Vec<u8>, Password)>,
        /// The `SETNAME` option.
        client_name: Option<Vec<u8>>,
    },
    /// `SELECT db`.
    Select(i64),
    /// `QUIT`.
    Quit,
    /// `AUTH [user] password`; the credentials are checked by
    /// [`ClientAuth::admit`](crate::auth::ClientAuth::admit) before the command is handled.
    Auth {
        /// The user name; `None` for one-argument `AUTH` (the `default` user).
        user: Option<Vec<u8>>,
        /// The password.
        password: Password,
    },
    /// `RESET`: back to the state of a new connection.
    Reset,
    /// A string or key command of [`strings`] (`INCR`, `MGET`, `SCAN`, `SET` with options…).
    Strings(strings::Work),
    /// `CLIENT ID|GETNAME|LIST|INFO|KILL` or `TIME` (see [`clients`]).
    Client(clients::ClientCommand),
}

/// The forms of `COMMAND`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandQuery {
    /// `COMMAND`.
    All,
    /// `COMMAND DOCS [name…]`.
    Docs,
    /// `COMMAND COUNT`.
    Count,
    /// `COMMAND LIST [FILTERBY …]` (filters ignored).
    List,
    /// `COMMAND INFO name…`.
    Info(Vec<Vec<u8>>),
}

/// A command the server knows, as listed by `COMMAND LIST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// The lowercase name.
    pub name: &'static str,
    /// Redis' arity convention: `n > 0` means exactly `n` arguments (the name included),
    /// `n < 0` means at least `-n`.
    pub arity: i32,
}

/// Every command the server accepts.
pub const COMMAND_TABLE: &[CommandSpec] = &[
    CommandSpec { name: "get", arity: 2 },
    CommandSpec { name: "set", arity: -3 },
    CommandSpec { name: "del", arity: -2 },
    CommandSpec { name: "cas", arity: 4 },
    CommandSpec { name: "ping", arity: -1 },
    CommandSpec { name: "echo", arity: 2 },
    CommandSpec { name: "info", arity: -1 },
    CommandSpec { name: "command", arity: -1 },
    CommandSpec { name: "config", arity: -2 },
    CommandSpec { name: "client", arity: -2 },
    CommandSpec { name: "hello", arity: -1 },
    CommandSpec { name: "select", arity: 2 },
    CommandSpec { name: "quit", arity: -1 },
    CommandSpec { name: "auth", arity: -2 },
    CommandSpec { name: "reset", arity: 1 },
];

/// Every command the server accepts: [`COMMAND_TABLE`], then those of [`strings`] and
/// [`clients`].
pub fn all_commands() -> impl Iterator<Item = &'static CommandSpec> {
    COMMAND_TABLE.iter().chain(strings::COMMAND_TABLE).chain(clients::COMMAND_TABLE)
}

/// The parameters `CONFIG GET` reports, with their fixed values.
pub const CONFIG_PARAMETERS: &[(&str, &str)] =
    &[("appendonly", "yes"), ("databases", "1"), ("save", "")];

/// What the server is to do with a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Run this op on the key's partition, then reply with [`op_reply`] of its result.
    Op(Op),
    /// Send this reply.
    Reply(RespValue),
    /// Send this reply, then close the connection.
    ReplyAndClose(RespValue),
    /// `HELLO` with a version: the connection speaks `protocol` from this reply on (the reply
    /// itself included, as Redis does).
    Hello {
        /// The protocol of this reply and of every later one on the connection.
        protocol: Protocol,
        /// The server description.
        reply: RespValue,
    },
    /// Reply with the node's `INFO` text (see [`info_reply`]), limited to this section.
    Info {
        /// The section asked for, lowercased; `None` for the default sections.
        section: Option<String>,
    },
    /// `RESET`: the connection speaks RESP2 again and, if the node has a password, must
    /// authenticate again; then this reply (`+RESET`, in RESP2).
    Reset(RespValue),
    /// Run these ops, each on its key's partition, then reply with
    /// [`Plan::reply`](strings::Plan::reply) of their results.
    Plan(strings::Plan),
    /// Learn the partition count, then run [`Keyspace::plan`](strings::Keyspace::plan)'s plan.
    Keyspace(strings::Keyspace),
    /// Answer from the node's connections or clock (see [`clients`]).
    Client(clients::ClientCommand),
}

/// What a reply may need to know about the connection it goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection's number on this node, shown by `HELLO`.
    pub client_id: u64,
    /// The protocol the connection speaks now (RESP2 until a `HELLO 3`).
    pub protocol: Protocol,
}

impl Command {
    /// Checks a request and types it. An oversized request (see [`Request::oversized`]) is an
    /// error naming the argument, after the command name is checked.
    pub fn parse(request: Request, limits: &CommandLimits) -> Result<Command, CommandError> {
        let oversized = request.oversized();
        let mut args = request.into_args();
        let Some(name_bytes) = args.first() else {
            return Err(CommandError::unknown_command(&[]));
        };
        let name = String::from_utf8_lossy(name_bytes).to_ascii_lowercase();
        let Some(spec) = all_commands().find(|spec| spec.name == name) else {
            return Err(CommandError::unknown_command(&args));
        };
        if let Some(oversized) = oversized {
            return Err(CommandError::ArgumentTooLarge(oversized));
        }
        let count_ok = match spec.arity {
            exact @ 1.. => args.len() == exact as usize,
            at_least => args.len() >= at_least.unsigned_abs() as usize,
        };
        if !count_ok {
            return Err(CommandError::WrongArity { command: spec.name.to_owned() });
        }
        // The arity check above makes every index below valid.
        let take = |args: &mut Vec<Vec<u8>>, index: usize| std::mem::take(&mut args[index]);
        let command = match spec.name {
            "get" => Command::Get { key: check_key(take(&mut args, 1), limits)? },
            "set" if args.len() > 3 => Command::Strings(strings::parse_set(args, limits)?),
            "set" => {
                let key = check_key(take(&mut args, 1), limits)?;
                Command::Set { key, value: check_value(take(&mut args, 2), limits)? }
            }
            "del" if args.len() > 2 => Command::Strings(strings::parse("del", args, limits)?),
            "del" => Command::Del { key: check_key(take(&mut args, 1), limits)? },
            "cas" => {
                let key = check_key(take(&mut args, 1), limits)?;
                let expected = check_value(take(&mut args, 2), limits)?;
                Command::Cas { key, expected, new: check_value(take(&mut args, 3), limits)? }
            }
            "ping" => match args.len() {
                1 => Command::Ping(None),
                2 => Command::Ping(Some(take(&mut args, 1))),
                _ => return Err(CommandError::WrongArity { command: "ping".to_owned() }),
            },
            "echo" => Command::Echo(take(&mut args, 1)),
            "info" => match args.len() {
                1 => Command::Info(None),
                2 => Command::Info(Some(String::from_utf8_lossy(&args[1]).to_ascii_lowercase())),
                _ => return Err(CommandError::WrongArity { command: "info".to_owned() }),
            },
            "command" => Command::Command(parse_command_query(args)?),
            "config" => parse_config(args)?,
            "client" => parse_client(args)?,
            "hello" => parse_hello(args)?,
            "select" => Command::Select(parse_integer(&args[1])?),
            "quit" => Command::Quit,
            "auth" => parse_auth(args)?,
            "reset" => Command::Reset,
            "time" => Command::Client(clients::ClientCommand::Time),
            name if strings::handles(name) => Command::Strings(strings::parse(name, args, limits)?),
            other => unreachable!("command {other} is in the table but not parsed"),
        };
        Ok(command)
    }

    /// The op this command runs on its partition, if it is a key-value command.
    pub fn to_op(&self) -> Option<Op> {
        match self {
            Command::Get { key } => Some(Op::Get { key: key.clone() }),
            Command::Set { key, value } => Some(Op::Set { key: key.clone(), value: value.clone() }),
            Command::Del { key } => Some(Op::Del { key: key.clone() }),
            Command::Cas { key, expected, new } => {
                Some(Op::Cas { key: key.clone(), expected: expected.clone(), new: new.clone() })
            }
            _ => None,
        }
    }

    /// What the server does with this command: an op to run, or the exact reply.
    pub fn into_handling(self, connection: &ConnectionInfo) -> Handling {
        let reply = match self {
            Command::Get { key } => return Handling::Op(Op::Get { key }),
            Command::Set { key, value } => return Handling::Op(Op::Set { key, value }),
            Command::Del { key } => return Handling::Op(Op::Del { key }),
            Command::Cas { key, expected, new } => {
                return Handling::Op(Op::Cas { key, expected, new })
            }
            Command::Info(section) => return Handling::Info { section },
            Command::Quit => return Handling::ReplyAndClose(RespValue::ok()),
            Command::Reset => return Handling::Reset(RespValue::simple("RESET")),
            // Reaching here means the credentials were accepted (see `crate::auth`).
            Command::Auth { .. } => RespValue::ok(),
            Command::Ping(None) => RespValue::simple("PONG"),
            Command::Ping(Some(message)) | Command::Echo(message) => RespValue::bulk(message),
            Command::Command(CommandQuery::All | CommandQuery::Docs) => RespValue::array(vec![]),
            Command::Command(CommandQuery::Count) => {
                RespValue::Integer(all_commands().count() as i64)
            }
            Command::Command(CommandQuery::List) => {
                RespValue::array(all_commands().map(|spec| RespValue::bulk(spec.name)).collect())
            }
            Command::Command(CommandQuery::Info(names)) => introspection::info_reply(&names),
            Command::ConfigGet(patterns) => config_get_reply(&patterns, &[]),
            Command::ClientSetName(_) | Command::ClientOther(_) => RespValue::ok(),
            Command::Hello { protocol: None, .. } => hello_reply(connection, connection.protocol),
            Command::Hello { protocol: Some(version), .. } => {
                let protocol = match version {
                    2 => Protocol::Resp2,
                    3 => Protocol::Resp3,
                    _ => {
                        return Handling::Reply(RespValue::error(
                            "NOPROTO sorry, this protocol version is not supported",
                        ))
                    }
                };
                return Handling::Hello { protocol, reply: hello_reply(connection, protocol) };
            }
            Command::Strings(strings::Work::Plan(plan)) => return Handling::Plan(plan),
            Command::Strings(strings::Work::Keyspace(keyspace)) => {
                return Handling::Keyspace(keyspace)
            }
            Command::Client(clients::ClientCommand::Id) => {
                RespValue::Integer(i64::try_from(connection.client_id).unwrap_or(i64::MAX))
            }
            Command::Client(client) => return Handling::Client(client),
            Command::Select(0) => RespValue::ok(),
            Command::Select(_) => RespValue::error("ERR DB index is out of range"),
        };
        Handling::Reply(reply)
    }
}

fn check_key(key: Vec<u8>, limits: &CommandLimits) -> Result<Vec<u8>, CommandError> {
    if key.len() > limits.key_bytes_max {
        return Err(CommandError::KeyTooLarge { len: key.len(), limit: limits.key_bytes_max });
    }
    Ok(key)
}

fn check_value(value: Vec<u8>, limits: &CommandLimits) -> Result<Vec<u8>, CommandError> {
    if value.len() > limits.value_bytes_max {
        return Err(CommandError::ValueTooLarge {
            len: value.len(),
            limit: limits.value_bytes_max,
        });
    }
    Ok(value)
}

fn parse_integer(bytes: &[u8]) -> Result<i64, CommandError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(CommandError::NotAnInteger)
}

fn lowercase(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_lowercase()
}

fn parse_command_query(mut args: Vec<Vec<u8>>) -> Result<CommandQuery, CommandError> {
    let Some(subcommand) = args.get(1).map(|sub| lowercase(sub)) else {
        return Ok(CommandQuery::All);
    };
    match subcommand.as_str() {
        "docs" => Ok(CommandQuery::Docs),
        "list" => Ok(CommandQuery::List),
        "count" if args.len() == 2 => Ok(CommandQuery::Count),
        "count" => Err(CommandError::WrongArity { command: "command|count".to_owned() }),
        "info" => Ok(CommandQuery::Info(args.split_off(2))),
        _ => Err(CommandError::UnknownSubcommand {
            command: "COMMAND",
            subcommand: args.swap_remove(1),
        }),
    }
}

fn parse_config(mut args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    match lowercase(&args[1]).as_str() {
        "get" if args.len() >= 3 => Ok(Command::ConfigGet(args.split_off(2))),
        "get" => Err(CommandError::WrongArity { command: "config|get".to_owned() }),
        _ => Err(CommandError::UnknownSubcommand {
            command: "CONFIG",
            subcommand: args.swap_remove(1),
        }),
    }
}

fn parse_client(mut args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    let subcommand = lowercase(&args[1]);
    if clients::SUBCOMMANDS.contains(&subcommand.as_str()) {
        return clients::parse(&subcommand, &args).map(Command::Client);
    }
    let arity = match subcommand.as_str() {
        "setname" | "no-evict" | "no-touch" => 3,
        "setinfo" => 4,
        _ => {
            return Err(CommandError::UnknownSubcommand {
                command: "CLIENT",
                subcommand: args.swap_remove(1),
            })
        }
    };
    if args.len() != arity {
        return Err(CommandError::WrongArity { command: format!("client|{subcommand}") });
    }
    if subcommand == "setname" {
        let name = args.swap_remove(2);
        check_client_name(&name)?;
        return Ok(Command::ClientSetName(name));
    }
    Ok(Command::ClientOther(subcommand))
}

/// Redis' rule: a client name is printable ASCII without spaces (it appears in `CLIENT LIST`).
fn check_client_name(name: &[u8]) -> Result<(), CommandError> {
    if name.iter().all(|&byte| (b'!'..=b'~').contains(&byte)) {
        Ok(())
    } else {
        Err(CommandError::BadClientName)
    }
}

fn parse_hello(mut args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    let protocol = match args.get(1) {
        None => None,
        Some(version) => {
            Some(parse_integer(version).map_err(|_| CommandError::BadProtocolVersion)?)
        }
    };
    let mut client_name = None;
    let mut auth = None;
    let mut index = 2;
    while index < args.len() {
        let option = lowercase(&args[index]);
        let remaining = args.len() - index - 1;
        match option.as_str() {
            "auth" if remaining >= 2 => {
                let password = Password::new(std::mem::take(&mut args[index + 2]));
                auth = Some((std::mem::take(&mut args[index + 1]), password));
                index += 3;
            }
            "setname" if remaining >= 1 => {
                let name = std::mem::take(&mut args[index + 1]);
                check_client_name(&name)?;
                client_name = Some(name);
                index += 2;
            }
            _ => return Err(CommandError::HelloOption(option)),
        }
    }
    Ok(Command::Hello { protocol, auth, client_name })
}

/// `AUTH password` or `AUTH user password`; more arguments are a syntax error, as in Redis.
fn parse_auth(mut args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    match args.len() {
        2 => Ok(Command::Auth { user: None, password: Password::new(args.swap_remove(1)) }),
        3 => {
            let password = Password::new(args.swap_remove(2));
            Ok(Command::Auth { user: Some(args.swap_remove(1)), password })
        }
        _ => Err(CommandError::Syntax),
    }
}

fn hello_reply(connection: &ConnectionInfo, protocol: Protocol) -> RespValue {
    let field = |name: &str| RespValue::bulk(name);
    RespValue::Map(vec![
        (field("server"), field("kvstore")),
        (field("version"), field(env!("CARGO_PKG_VERSION"))),
        (field("proto"), RespValue::Integer(protocol.version())),
        (field("id"), RespValue::Integer(i64::try_from(connection.client_id).unwrap_or(i64::MAX))),
        (field("mode"), field("standalone")),
        (field("role"), field("master")),
        (field("modules"), RespValue::array(vec![])),
    ])
}

/// The reply to `CONFIG GET patterns…`: the [`CONFIG_PARAMETERS`] and the server's own
/// `parameters` (e.g. `maxmemory`) whose names match.
pub fn config_get_reply(patterns: &[Vec<u8>], parameters: &[(&str, &str)]) -> RespValue {
    let mut pairs = Vec::new();
    for (name, value) in CONFIG_PARAMETERS.iter().chain(parameters) {
        if patterns.iter().any(|pattern| glob_match(pattern, name.as_bytes())) {
            pairs.push((RespValue::bulk(*name), RespValue::bulk(*value)));
        }
    }
    RespValue::Map(pairs)
}

/// Case-insensitive glob matching, as `CONFIG GET` uses it (see [`crate::glob`]).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    crate::glob::glob_match_nocase(pattern, text)
}

/// The reply to an op's result: `GET` → the value or null, `SET` → `+OK`, `DEL` → `:1`/`:0`,
/// `CAS` → `:1`/`:0`.
pub fn op_reply(result: &OpResult) -> RespValue {
    match result {
        OpResult::Value(value) => RespValue::BulkString(value.clone()),
        OpResult::Stored => RespValue::ok(),
        OpResult::Deleted(existed) => RespValue::Integer(i64::from(*existed)),
        OpResult::Swapped(swapped) => RespValue::Integer(i64::from(*swapped)),
        OpResult::Integer(n) => RespValue::Integer(*n),
        OpResult::Written { written: true, .. } => RespValue::ok(),
        OpResult::Written { written: false, .. } => RespValue::null_bulk(),
        OpResult::Page { keys, .. } => {
            RespValue::array(keys.iter().map(|key| RespValue::bulk(key.0.clone())).collect())
        }
        OpResult::Refused(refusal) => strings::refusal_reply(*refusal),
        OpResult::Values(values) => RespValue::array(
            values
                .iter()
                .map(|value| RespValue::BulkString(value.as_ref().map(|v| v.0.clone())))
                .collect(),
        ),
    }
}

/// One section of the `INFO` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoSection {
    /// The section's title, e.g. `Server` (matched case-insensitively against `INFO section`).
    pub name: String,
    /// The `field:value` lines.
    pub fields: Vec<(String, String)>,
}

/// The `INFO` reply: every section (for no section, `all`, `everything` or `default`), or the one
/// named; an unknown section gives an empty string, as in Redis. Line breaks inside fields are
/// replaced by spaces so they cannot forge lines.
pub fn info_reply(sections: &[InfoSection], section: Option<&str>) -> RespValue {
    let everything = matches!(section, None | Some("all" | "everything" | "default"));
    let clean = |text: &str| text.replace(['\r', '\n'], " ");
    let mut text = String::new();
    for info in sections {
        if !everything && !section.is_some_and(|wanted| info.name.eq_ignore_ascii_case(wanted)) {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str(&format!("# {}\r\n", clean(&info.name)));
        for (field, value) in &info.fields {
            text.push_str(&format!("{}:{}\r\n", clean(field), clean(value)));
        }
    }
    RespValue::bulk(text)
}

/// A request the server refuses; the connection stays usable. [`to_reply`](Self::to_reply) is
/// the exact error reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command in [`COMMAND_TABLE`]; the text quotes the name and the first arguments.
    UnknownCommand {
        /// The reply text.
        message: String,
    },
    /// An unknown subcommand of `COMMAND`, `CONFIG` or `CLIENT`.
    UnknownSubcommand {
        /// The command, uppercase.
        command: &'static str,
        /// The subcommand as sent.
        subcommand: Vec<u8>,
    },
    /// The wrong number of arguments.
    WrongArity {
        /// The command, lowercase, with `|subcommand` for subcommands (`config|get`).
        command: String,
    },
    /// Unsupported options (`SET k v EX 10`).
    Syntax,
    /// An integer argument that is not one.
    NotAnInteger,
    /// `HELLO` with a protocol version that is not an integer.
    BadProtocolVersion,
    /// `HELLO` with an unknown option, or one missing its arguments.
    HelloOption(String),
    /// A client name with spaces or other non-printable characters.
    BadClientName,
    /// A key above [`CommandLimits::key_bytes_max`].
    KeyTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A value above [`CommandLimits::value_bytes_max`].
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// An argument the RESP parser dropped for its size.
    ArgumentTooLarge(Oversized),
    /// A form of a known command this server does not offer.
    Unsupported(&'static str),
    /// An argument of the wrong form, with Redis' text after `ERR ` (`value is not a valid
    /// float`).
    Invalid(&'static str),
}

impl CommandError {
    /// The error reply, e.g. `-ERR wrong number of arguments for 'get' command`.
    pub fn to_reply(&self) -> RespValue {
        RespValue::Error(self.to_string())
    }

    /// Redis' text: `unknown command 'NAME', with args beginning with: 'a' 'b' `, the name cut
    /// at 128 characters and the quoted arguments stopping once 128 characters are used.
    fn unknown_command(args: &[Vec<u8>]) -> CommandError {
        const QUOTED_CHARS_MAX: usize = 128;
        let name: String = args
            .first()
            .map(|name| String::from_utf8_lossy(name).chars().take(QUOTED_CHARS_MAX).collect())
            .unwrap_or_default();
        let mut quoted = String::new();
        for arg in args.iter().skip(1) {
            let used = quoted.chars().count();
            if used >= QUOTED_CHARS_MAX {
                break;
            }
            let arg: String =
                String::from_utf8_lossy(arg).chars().take(QUOTED_CHARS_MAX - used).collect();
            quoted.push_str(&format!("'{arg}' "));
        }
        CommandError::UnknownCommand {
            message: format!("ERR unknown command '{name}', with args beginning with: {quoted}"),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::UnknownCommand { message } => f.write_str(message),
            CommandError::UnknownSubcommand { command, subcommand } => {
                let subcommand: String =
                    String::from_utf8_lossy(subcommand).chars().take(128).collect();
                write!(f, "ERR unknown subcommand '{subcommand}'. Try {command} HELP.")
            }
            CommandError::WrongArity { command } => {
                write!(f, "ERR wrong number of arguments for '{command}' command")
            }
            CommandError::Syntax => f.write_str("ERR syntax error"),
            CommandError::NotAnInteger => {
                f.write_str("ERR value is not an integer or out of range")
            }
            CommandError::BadProtocolVersion => {
                f.write_str("ERR Protocol version is not an integer or out of range")
            }
            CommandError::HelloOption(option) => {
                let option: String = option.chars().take(128).collect();
                write!(f, "ERR Syntax error in HELLO option '{option}'")
            }
            CommandError::BadClientName => f.write_str(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            ),
            CommandError::KeyTooLarge { len, limit } => {
                write!(f, "ERR key too large ({len} bytes; the limit is {limit})")
            }
            CommandError::ValueTooLarge { len, limit } => {
                write!(f, "ERR value too large ({len} bytes; the limit is {limit})")
            }
            CommandError::ArgumentTooLarge(oversized) => write!(
                f,
                "ERR argument {} too large ({} bytes; the limit is {})",
                oversized.arg_index, oversized.len, oversized.limit
            ),
            CommandError::Unsupported(what) | CommandError::Invalid(what) => {
                write!(f, "ERR {what}")
            }
        }
    }
}

impl std::error::Error for CommandError {}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECTION: ConnectionInfo = ConnectionInfo { client_id: 5, protocol: Protocol::Resp2 };

    fn parse(words: &[&str]) -> Result<Command, CommandError> {
        parse_with(words, &CommandLimits::default())
    }

    fn parse_with(words: &[&str], limits: &CommandLimits) -> Result<Command, CommandError> {
        Command::parse(Request::new(words.iter().map(|w| w.as_bytes().to_vec()).collect()), limits)
    }

    /// The reply a command gets when it is not a key-value op.
    fn reply(words: &[&str]) -> RespValue {
        match parse(words) {
            Err(error) => error.to_reply(),
            Ok(command) => match command.into_handling(&CONNECTION) {
                Handling::Reply(reply)
                | Handling::ReplyAndClose(reply)
                | Handling::Reset(reply)
                | Handling::Hello { reply, .. } => reply,
                other => panic!("{words:?} is handled as {other:?}"),
            },
        }
    }

    fn error_text(words: &[&str]) -> String {
        parse(words).expect_err("should be refused").to_string()
    }

    fn bulks(items: &[&str]) -> RespValue {
        RespValue::array(items.iter().map(|item| RespValue::bulk(*item)).collect())
    }

    #[test]
    fn key_value_commands_become_ops_whatever_the_case() {
        let handling = |words: &[&str]| parse(words).unwrap().into_handling(&CONNECTION);
        assert_eq!(handling(&["gEt", "k"]), Handling::Op(Op::Get { key: b"k".to_vec() }));
        assert_eq!(
            handling(&["SET", "k", "v"]),
            Handling::Op(Op::Set { key: b"k".to_vec(), value: b"v".to_vec() })
        );
        assert_eq!(handling(&["del", "k"]), Handling::Op(Op::Del { key: b"k".to_vec() }));
        let cas = Op::Cas { key: b"k".to_vec(), expected: b"a".to_vec(), new: b"b".to_vec() };
        assert_eq!(handling(&["Cas", "k", "a", "b"]), Handling::Op(cas.clone()));
        assert_eq!(parse(&["cas", "k", "a", "b"]).unwrap().to_op(), Some(cas));
        assert_eq!(parse(&["ping"]).unwrap().to_op(), None);
    }

    #[test]
    fn op_results_reply_as_redis_types() {
        assert_eq!(op_reply(&OpResult::Value(None)), RespValue::null_bulk());
        assert_eq!(op_reply(&OpResult::Value(Some(b"v".to_vec()))), RespValue::bulk("v"));
        assert_eq!(op_reply(&OpResult::Stored), RespValue::ok());
        assert_eq!(op_reply(&OpResult::Deleted(true)), RespValue::Integer(1));
        assert_eq!(op_reply(&OpResult::Deleted(false)), RespValue::Integer(0));
        assert_eq!(op_reply(&OpResult::Swapped(true)), RespValue::Integer(1));
        assert_eq!(op_reply(&OpResult::Swapped(false)), RespValue::Integer(0));
    }

    #[test]
    fn wrong_arity_uses_redis_text() {
        for (words, name) in [
            (&["get"][..], "get"),
            (&["GET", "a", "b"], "get"),
            (&["set", "k"], "set"),
            (&["del"], "del"),
            (&["cas", "k", "a"], "cas"),
            (&["cas", "k", "a", "b", "c"], "cas"),
            (&["ping", "a", "b"], "ping"),
            (&["echo"], "echo"),
            (&["info", "a", "b"], "info"),
            (&["config"], "config"),
            (&["config", "get"], "config|get"),
            (&["client", "setname"], "client|setname"),
            (&["client", "setinfo", "lib-name"], "client|setinfo"),
            (&["command", "count", "x"], "command|count"),
            (&["select"], "select"),
        ] {
            assert_eq!(
                error_text(words),
                format!("ERR wrong number of arguments for '{name}' command")
            );
        }
    }

    #[test]
    fn unknown_commands_quote_name_and_first_args_like_redis() {
        assert_eq!(error_text(&["foo"]), "ERR unknown command 'foo', with args beginning with: ");
        assert_eq!(
            error_text(&["FOO", "a", "b c"]),
            "ERR unknown command 'FOO', with args beginning with: 'a' 'b c' "
        );
        let long = "x".repeat(300);
        let text = error_text(&["foo", &long, "next"]);
        assert_eq!(
            text,
            format!("ERR unknown command 'foo', with args beginning with: '{}' ", "x".repeat(128))
        );
        assert_eq!(
            Command::parse(Request::new(vec![]), &CommandLimits::default())
                .unwrap_err()
                .to_string(),
            "ERR unknown command '', with args beginning with: "
        );
    }

    #[test]
    fn unknown_subcommands_point_to_help() {
        assert_eq!(
            error_text(&["config", "set", "a", "b"]),
            "ERR unknown subcommand 'set'. Try CONFIG HELP."
        );
        assert_eq!(
            error_text(&["client", "pause", "x"]),
            "ERR unknown subcommand 'pause'. Try CLIENT HELP."
        );
        assert_eq!(
            error_text(&["command", "getkeys"]),
            "ERR unknown subcommand 'getkeys'. Try COMMAND HELP."
        );
    }

    #[test]
    fn sizes_are_checked_against_the_limits() {
        let limits = CommandLimits { key_bytes_max: 3, value_bytes_max: 4 };
        assert!(parse_with(&["set", "abc", "1234"], &limits).is_ok());
        assert_eq!(
            parse_with(&["set", "abcd", "1"], &limits),
            Err(CommandError::KeyTooLarge { len: 4, limit: 3 })
        );
        assert_eq!(
            parse_with(&["set", "k", "12345"], &limits),
            Err(CommandError::ValueTooLarge { len: 5, limit: 4 })
        );
        assert_eq!(
            parse_with(&["cas", "k", "12345", "1"], &limits),
            Err(CommandError::ValueTooLarge { len: 5, limit: 4 })
        );
        assert_eq!(
            parse_with(&["cas", "k", "1", "12345"], &limits),
            Err(CommandError::ValueTooLarge { len: 5, limit: 4 })
        );
        assert!(parse_with(&["get", "abcd"], &limits).is_err());
        assert!(parse_with(&["del", "abcd"], &limits).is_err());
        assert_eq!(
            parse_with(&["set", "k", "12345"], &limits).unwrap_err().to_string(),
            "ERR value too large (5 bytes; the limit is 4)"
        );
    }

    #[test]
    fn an_oversized_request_is_refused_with_a_too_large_error() {
        use crate::resp::{RequestParser, RespLimits};
        let limits = RespLimits { bulk_bytes_max: 4, ..RespLimits::default() };
        let mut parser = RequestParser::new(limits).unwrap();
        parser
            .feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\n12345\r\n*1\r\n$3\r\nFOO\r\n$3\r\nBAR\r\n");
        let request = parser.next_request().unwrap().unwrap();
        let error = Command::parse(request, &CommandLimits::default()).unwrap_err();
        assert_eq!(error.to_string(), "ERR argument 2 too large (5 bytes; the limit is 4)");
        // An unknown command is reported as such even when oversized.
        parser.feed(b"*2\r\n$3\r\nFOO\r\n$5\r\n12345\r\n");
        let request = parser.next_request().unwrap().unwrap();
        let error = Command::parse(request, &CommandLimits::default()).unwrap_err();
        assert!(error.to_string().starts_with("ERR unknown command 'FOO'"), "{error}");
    }

    #[test]
    fn set_expiry_is_refused_until_keys_can_expire() {
        assert_eq!(
            error_text(&["set", "k", "v", "EX", "10"]),
            "ERR key expiry (EX, PX, EXAT, PXAT, KEEPTTL) is not supported yet"
        );
        assert_eq!(error_text(&["set", "k", "v", "nx", "xx"]), "ERR syntax error");
    }

    #[test]
    fn ping_echo_select_quit_reply_as_redis() {
        assert_eq!(reply(&["PING"]), RespValue::simple("PONG"));
        assert_eq!(reply(&["ping", "hi"]), RespValue::bulk("hi"));
        assert_eq!(reply(&["echo", "x y"]), RespValue::bulk("x y"));
        assert_eq!(reply(&["select", "0"]), RespValue::ok());
        assert_eq!(reply(&["SELECT", "1"]), RespValue::error("ERR DB index is out of range"));
        assert_eq!(
            reply(&["select", "x"]),
            RespValue::error("ERR value is not an integer or out of range")
        );
        assert_eq!(
            parse(&["quit"]).unwrap().into_handling(&CONNECTION),
            Handling::ReplyAndClose(RespValue::ok())
        );
    }

    #[test]
    fn info_is_left_to_the_server_with_its_section() {
        let handling = |words: &[&str]| parse(words).unwrap().into_handling(&CONNECTION);
        assert_eq!(handling(&["info"]), Handling::Info { section: None });
        assert_eq!(
            handling(&["INFO", "Server"]),
            Handling::Info { section: Some("server".into()) }
        );
    }

    #[test]
    fn info_text_has_redis_layout_and_filters_sections() {
        let sections = [
            InfoSection { name: "Server".into(), fields: vec![("node".into(), "n1".into())] },
            InfoSection {
                name: "Groups".into(),
                fields: vec![
                    ("p0".into(), "leader\r\nforged:1".into()),
                    ("p1".into(), "follower".into()),
                ],
            },
        ];
        assert_eq!(
            info_reply(&sections, None),
            RespValue::bulk(
                "# Server\r\nnode:n1\r\n\r\n# Groups\r\np0:leader  forged:1\r\np1:follower\r\n"
            )
        );
        assert_eq!(info_reply(&sections, Some("all")), info_reply(&sections, None));
        assert_eq!(
            info_reply(&sections, Some("server")),
            RespValue::bulk("# Server\r\nnode:n1\r\n")
        );
        assert_eq!(info_reply(&sections, Some("nosuch")), RespValue::bulk(""));
    }

    #[test]
    fn command_introspection_replies_what_redis_cli_needs() {
        assert_eq!(reply(&["COMMAND"]), RespValue::array(vec![]));
        assert_eq!(reply(&["command", "DOCS"]), RespValue::array(vec![]));
        assert_eq!(reply(&["command", "docs", "get", "set"]), RespValue::array(vec![]));
        assert_eq!(reply(&["command", "count"]), RespValue::Integer(all_commands().count() as i64));
        assert!(all_commands().count() > COMMAND_TABLE.len(), "the string commands are listed");
        let RespValue::Array(Some(names)) = reply(&["command", "list"]) else {
            panic!("not an array")
        };
        for name in ["cas", "incr", "mget", "scan", "time"] {
            assert!(names.contains(&RespValue::bulk(name)), "{name}");
        }
        assert_eq!(
            reply(&["command", "info", "x", "y"]),
            RespValue::array(vec![RespValue::null_bulk(), RespValue::null_bulk()])
        );
    }

    #[test]
    fn config_get_answers_what_redis_benchmark_reads() {
        // In RESP2 (redis-benchmark's), a flat array of name, value pairs, as Redis sends.
        let wire = |words: &[&str]| reply(words).to_bytes();
        assert_eq!(wire(&["CONFIG", "GET", "save"]), bulks(&["save", ""]).to_bytes());
        assert_eq!(
            wire(&["config", "get", "appendonly"]),
            bulks(&["appendonly", "yes"]).to_bytes()
        );
        assert_eq!(
            wire(&["config", "get", "SAVE", "app*"]),
            bulks(&["appendonly", "yes", "save", ""]).to_bytes()
        );
        assert_eq!(
            wire(&["config", "get", "*"]),
            bulks(&["appendonly", "yes", "databases", "1", "save", ""]).to_bytes()
        );
        assert_eq!(wire(&["config", "get", "nosuch"]), b"*0\r\n");
        assert_eq!(
            wire(&["config", "get", "save", "s*"]),
            bulks(&["save", ""]).to_bytes(),
            "no duplicates"
        );
        // As a value, a map: RESP3 clients get it as one (`%`).
        assert_eq!(
            reply(&["config", "get", "save"]),
            RespValue::Map(vec![(RespValue::bulk("save"), RespValue::bulk(""))])
        );
    }

    #[test]
    fn client_subcommands_clients_send_on_connect_are_accepted() {
        assert_eq!(
            parse(&["client", "setname", "app-1"]),
            Ok(Command::ClientSetName(b"app-1".to_vec()))
        );
        assert_eq!(reply(&["CLIENT", "SETNAME", "app-1"]), RespValue::ok());
        assert_eq!(reply(&["client", "setinfo", "LIB-NAME", "redis-py"]), RespValue::ok());
        assert_eq!(reply(&["client", "no-evict", "on"]), RespValue::ok());
        assert_eq!(
            reply(&["client", "setname", "a b"]),
            RespValue::error(
                "ERR Client names cannot contain spaces, newlines or special characters."
            )
        );
    }

    fn description(proto: i64) -> RespValue {
        RespValue::Map(vec![
            (RespValue::bulk("server"), RespValue::bulk("kvstore")),
            (RespValue::bulk("version"), RespValue::bulk(env!("CARGO_PKG_VERSION"))),
            (RespValue::bulk("proto"), RespValue::Integer(proto)),
            (RespValue::bulk("id"), RespValue::Integer(5)),
            (RespValue::bulk("mode"), RespValue::bulk("standalone")),
            (RespValue::bulk("role"), RespValue::bulk("master")),
            (RespValue::bulk("modules"), RespValue::array(vec![])),
        ])
    }

    fn handling(words: &[&str], connection: &ConnectionInfo) -> Handling {
        parse(words).expect("parses").into_handling(connection)
    }

    #[test]
    fn hello_switches_the_protocol_between_resp2_and_resp3() {
        let hello = |protocol, proto| Handling::Hello { protocol, reply: description(proto) };
        assert_eq!(handling(&["hello", "3"], &CONNECTION), hello(Protocol::Resp3, 3));
        assert_eq!(handling(&["HELLO", "2"], &CONNECTION), hello(Protocol::Resp2, 2));
        assert_eq!(
            handling(&["hello", "3", "AUTH", "default", "pw", "SETNAME", "me"], &CONNECTION),
            hello(Protocol::Resp3, 3)
        );
        // Without a version: the description, in the protocol the connection speaks.
        assert_eq!(handling(&["HELLO"], &CONNECTION), Handling::Reply(description(2)));
        let resp3 = ConnectionInfo { protocol: Protocol::Resp3, ..CONNECTION };
        assert_eq!(handling(&["HELLO"], &resp3), Handling::Reply(description(3)));
        // RESP2 clients get the flat array Redis sends.
        let version = env!("CARGO_PKG_VERSION");
        let flat_start = format!(
            "*14\r\n$6\r\nserver\r\n$7\r\nkvstore\r\n$7\r\nversion\r\n${}\r\n{version}\r\n",
            version.len()
        );
        assert!(description(2).to_bytes().starts_with(flat_start.as_bytes()));
        assert_eq!(
            parse(&["hello", "2", "setname", "me"]),
            Ok(Command::Hello { protocol: Some(2), auth: None, client_name: Some(b"me".to_vec()) })
        );
        let noproto = RespValue::error("NOPROTO sorry, this protocol version is not supported");
        assert_eq!(reply(&["HELLO", "4"]), noproto);
        assert_eq!(reply(&["HELLO", "1"]), noproto);
        assert_eq!(
            reply(&["hello", "three"]),
            RespValue::error("ERR Protocol version is not an integer or out of range")
        );
        assert_eq!(
            reply(&["hello", "2", "auth", "user"]),
            RespValue::error("ERR Syntax error in HELLO option 'auth'")
        );
    }

    #[test]
    fn auth_takes_one_or_two_arguments_and_hello_keeps_its_credentials() {
        let password = |text: &str| Password::new(text.as_bytes().to_vec());
        assert_eq!(
            parse(&["AUTH", "pw"]),
            Ok(Command::Auth { user: None, password: password("pw") })
        );
        assert_eq!(
            parse(&["auth", "default", "pw"]),
            Ok(Command::Auth { user: Some(b"default".to_vec()), password: password("pw") })
        );
        assert_eq!(error_text(&["auth"]), "ERR wrong number of arguments for 'auth' command");
        assert_eq!(error_text(&["auth", "a", "b", "c"]), "ERR syntax error");
        // Credentials reaching the handling were accepted by `crate::auth`.
        assert_eq!(reply(&["auth", "pw"]), RespValue::ok());
        assert_eq!(
            parse(&["HELLO", "3", "auth", "default", "pw", "setname", "me"]),
            Ok(Command::Hello {
                protocol: Some(3),
                auth: Some((b"default".to_vec(), password("pw"))),
                client_name: Some(b"me".to_vec()),
            })
        );
    }

    #[test]
    fn reset_returns_the_connection_to_its_initial_state() {
        assert_eq!(handling(&["RESET"], &CONNECTION), Handling::Reset(RespValue::simple("RESET")));
        assert_eq!(
            error_text(&["reset", "x"]),
            "ERR wrong number of arguments for 'reset' command"
        );
    }

    #[test]
    fn glob_patterns_match_like_redis_stringmatch() {
        let yes = |pattern: &str, text: &str| glob_match(pattern.as_bytes(), text.as_bytes());
        assert!(yes("*", ""));
        assert!(yes("save", "SAVE"));
        assert!(yes("s?ve", "save"));
        assert!(yes("*end*", "appendonly"));
        assert!(yes("[abc]ppendonly", "appendonly"));
        assert!(yes("[^x]ave", "save"));
        assert!(yes("[a-z]ave", "Save"));
        assert!(yes("\\*x", "*x"));
        assert!(!yes("\\*x", "ax"));
        assert!(!yes("save?", "save"));
        assert!(!yes("[^s]ave", "save"));
        assert!(!yes("a*b", "aXbY"));
        assert!(yes("a*b*", "aXbY"));
        // Linear, not exponential, on a hostile pattern.
        let hostile = "*a".repeat(50) + "b";
        assert!(!yes(&hostile, &"a".repeat(5000)));
    }
}
