//! The RESP front end: a node's client port, speaking the Redis protocol.
//!
//! [`RespFrontend`] sits between a byte-stream server ([`ByteStream`], e.g. kompics-net's
//! `StreamServer` on the node's client address) and the node's [`Overlay`](crate::overlay):
//!
//! - bytes of each connection go through a [`RequestParser`]; each request becomes a
//!   [`Command`], whose [`Handling`] says whether it is an operation for the store (sent to the
//!   overlay on [`KvPort`]), `INFO` (asked of the overlay on [`OverlayControl`]), or a reply the
//!   front end gives itself (`PING`, `COMMAND`, `HELLO`, errors…);
//! - replies go back **in request order**, however the operations of a pipeline complete: each
//!   request takes a slot in its connection's queue, and the queue is flushed from the front as
//!   slots fill;
//! - the operations of one connection also **take effect** in request order, as Redis
//!   clients expect of a pipeline (`SET k v` then `GET k` reads `v`): consecutive writes go out
//!   together, and so do consecutive reads, but a read waits for the writes before it to be
//!   answered, and a write for the reads before it (a read is served by a barrier at the
//!   group's leader, not through the log, so it would otherwise overtake a write in flight);
//! - a connection with [`FrontendConfig::pipeline_max`] requests in flight, or as many ops
//!   (an `MGET` of 1,000 keys in several partitions is 1,000 ops), is not read from until half
//!   of them are answered (the server pauses the socket), so a client cannot make the node
//!   buffer without bound;
//! - malformed input gets its RESP error, then the connection is closed (as Redis does: the
//!   stream cannot be resynchronised); oversized and unknown commands get an error and the
//!   connection stays usable.
//!
//! - a command of several ops ([`Handling::Plan`]: `MGET`, `DEL k…`, `DBSIZE`…) takes one slot;
//!   its ops go out like single ones (in order with the connection's other reads or writes),
//!   and the slot is filled when the last is answered (see `frontend/multi.rs`);
//! - a command that must know the partition count ([`Handling::Keyspace`]: `DBSIZE`, `SCAN`,
//!   `MSET`…) waits for the overlay to tell it, once, and the connection reads nothing more
//!   meanwhile, so its commands still take effect in order.
//!
//! Errors of the store become RESP errors that say what happened: `-TRYAGAIN` when the
//! operation did not happen (the partition had no leader, or was overloaded), and
//! `-OUTCOME_UNKNOWN` when it may have happened.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use kompics_core::{ComponentDefinition, Context, Require, RequiredPort, Setup, Time};
use kompics_net::stream::{ByteStream, ConnId, StreamEvent, StreamRequest};

use crate::auth::{Admission, ClientAuth};
use crate::command::clients;
use crate::command::strings::Keyspace;
use crate::command::{
    config_get_reply, info_reply, op_reply, Command, CommandLimits, ConnectionInfo, Handling,
    InfoSection,
};
use crate::info::{GroupInfo, InfoZxid, NodeInfo, NodeStats, Role};
use crate::overlay::{InfoQuery, OverlayControl, OverlayInfo};
use crate::ports::{KvError, KvPort, KvReply, KvRequest, OOM_MESSAGE};
use crate::replica::MemoryLimit;
use crate::resp::{Protocol, RequestParser, RespLimits, RespValue};
use crate::store::Op;
use zab_components::component::ZabStatus;

/// Settings of a front end.
#[derive(Clone, Debug)]
pub struct FrontendConfig {
    /// The address clients connect to (shown by `INFO`).
    pub client_addr: SocketAddr,
    /// The RESP parser's bounds.
    pub resp_limits: RespLimits,
    /// Key and value size limits.
    pub command_limits: CommandLimits,
    /// The most requests of one connection in flight, and the most ops (sent or held), before
    /// it is paused. Default 1024.
    pub pipeline_max: usize,
    /// The node's memory limit and use, for `INFO` and `CONFIG GET maxmemory` (share the one
    /// its replicas enforce). Default: no limit.
    pub memory: MemoryLimit,
    /// Whether clients must authenticate, and with which password ([`crate::auth`]).
    /// Default: no password.
    pub auth: ClientAuth,
    /// When the node's logs fsync, shown by `INFO` and `CONFIG GET appendfsync` so that a
    /// client can tell what an acknowledged write survives. Default: [`AppendFsync::Always`],
    /// the logs' default.
    pub appendfsync: AppendFsync,
    /// The wall clock `TIME` reads: the time since the Unix epoch. Default: the system's.
    pub wall_clock: fn() -> Duration,
}

/// When a node's partition logs reach the disk, named after Redis' `appendfsync`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AppendFsync {
    /// A write is acknowledged once its log entry is fsynced on a quorum (group commit): it
    /// survives the machine crash of any minority.
    #[default]
    Always,
    /// Logs are written but not fsynced (`--no-fsync`): a crash of a quorum's machines can lose
    /// the last acknowledged writes (epoch files are fsynced still, so Zab stays safe).
    No,
}

impl AppendFsync {
    /// The mode for a log whose `fsync` option is `fsync`.
    pub fn from_fsync(fsync: bool) -> AppendFsync {
        if fsync {
            AppendFsync::Always
        } else {
            AppendFsync::No
        }
    }

    /// Redis' name of the mode: `always` or `no`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::No => "no",
        }
    }
}

impl FrontendConfig {
    /// Defaults for a front end serving `client_addr`.
    pub fn new(client_addr: SocketAddr) -> FrontendConfig {
        FrontendConfig {
            client_addr,
            resp_limits: RespLimits::default(),
            command_limits: CommandLimits::default(),
            pipeline_max: 1024,
            memory: MemoryLimit::default(),
            auth: ClientAuth::none(),
            appendfsync: AppendFsync::default(),
            wall_clock: system_wall_clock,
        }
    }
}

fn system_wall_clock() -> Duration {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

mod multi;

/// The reply slot of one request, with the protocol its reply is sent in (the connection's
/// when the request was read: a `HELLO` changes it for the requests after it).
enum Slot {
    Waiting(Protocol),
    Ready(RespValue, Protocol),
}

struct Connection {
    parser: RequestParser,
    /// Reply slots in request order, and the sequence number of the front one.
    slots: VecDeque<Slot>,
    front_seq: u64,
    /// Close once the slots before this sequence number are flushed.
    close_at: Option<u64>,
    paused: bool,
    client_id: u64,
    /// The protocol of replies to requests read from now on.
    protocol: Protocol,
    /// Whether the connection may run every command (see [`crate::auth`]): from the start
    /// when the node has no password, else once `AUTH` or `HELLO … AUTH` succeeded.
    authenticated: bool,
    /// Operations sent to the overlay and not yet answered, all reads or all writes.
    ops_in_flight: usize,
    /// Whether those are reads.
    reads_in_flight: bool,
    /// Operations held back until those in flight are answered, with their waiters.
    held: VecDeque<(Waiter, Op)>,
    /// A [`Handling::Keyspace`] command waits for the partition count: read nothing more.
    awaiting_table: bool,
    /// What `CLIENT LIST` shows.
    peer: SocketAddr,
    name: Vec<u8>,
    opened: Time,
    last_command_at: Time,
    last_command: Vec<u8>,
}

impl Connection {
    fn next_seq(&self) -> u64 {
        self.front_seq + self.slots.len() as u64
    }
}

/// What a request sent to the overlay waits in.
#[derive(Clone, Copy)]
struct Waiter {
    conn: ConnId,
    seq: u64,
    /// For an op of a [`Handling::Plan`], its index among the plan's ops.
    part: Option<usize>,
}

/// What an `OverlayInfo` asked of the overlay is for.
enum InfoWant {
    /// An `INFO` reply, limited to this section.
    Section(Waiter, Option<String>),
    /// The partition count, for the commands in [`RespFrontend::parked`].
    Table,
}

/// The RESP front end of a node.
pub struct RespFrontend {
    stream: RequiredPort<ByteStream>,
    kv: RequiredPort<KvPort>,
    control: RequiredPort<OverlayControl>,
    config: FrontendConfig,
    connections: HashMap<ConnId, Connection>,
    /// Operations in flight, by request id.
    ops: HashMap<u64, Waiter>,
    /// `INFO`s asked of the overlay, oldest first, with what each is for. The overlay
    /// answers each in its handler, so the answers come back in the order asked (one channel
    /// is FIFO) and to this front end alone: the oldest waiter takes the next answer.
    infos: VecDeque<InfoWant>,
    /// The cluster's partition count, once an `OverlayInfo` told it (it never changes).
    partition_count: Option<u32>,
    /// Commands waiting for the partition count (at most one per connection).
    parked: Vec<(Waiter, Keyspace)>,
    /// Plans with ops in flight, by (connection, sequence number).
    gathers: HashMap<(ConnId, u64), multi::Gather>,
    next_id: u64,
    next_client_id: u64,
    started: Option<Time>,
}

impl RespFrontend {
    /// A front end; connect it to a byte-stream server and to the node's overlay.
    ///
    /// # Panics
    /// If `config.resp_limits` is not valid (see [`RespLimits::validate`]).
    pub fn new(setup: &mut Setup<Self>, config: FrontendConfig) -> Self {
        config.resp_limits.validate().expect("valid RESP limits");
        RespFrontend {
            stream: setup.required(),
            kv: setup.required(),
            control: setup.required(),
            config,
            connections: HashMap::new(),
            ops: HashMap::new(),
            infos: VecDeque::new(),
            partition_count: None,
            parked: Vec::new(),
            gathers: HashMap::new(),
            next_id: 0,
            next_client_id: 0,
            started: None,
        }
    }

    /// Open client connections.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Parses and dispatches what connection `conn` has buffered, as far as its pipeline allows.
    fn serve(&mut self, conn: ConnId, now: Time) {
        loop {
            let Some(c) = self.connections.get_mut(&conn) else { return };
            if c.close_at.is_some() || c.awaiting_table {
                break;
            }
            if c.slots.len().max(c.ops_in_flight + c.held.len()) >= self.config.pipeline_max {
                if !c.paused {
                    c.paused = true;
                    self.stream.trigger(StreamRequest::PauseReading { conn });
                }
                break;
            }
            let seq = c.next_seq();
            let request = match c.parser.next_request() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be resynchronised: answer, then close.
                    c.slots.push_back(Slot::Ready(e.to_reply(), c.protocol));
                    c.close_at = Some(seq + 1);
                    break;
                }
            };
            let connection = ConnectionInfo { client_id: c.client_id, protocol: c.protocol };
            c.slots.push_back(Slot::Waiting(c.protocol));
            clients::remember_command(&mut c.last_command, request.args());
            c.last_command_at = now;
            // Unknown commands and wrong arities are refused before authentication is looked
            // at, as in Redis.
            let handling = match Command::parse(request, &self.config.command_limits) {
                Err(e) => Handling::Reply(e.to_reply()),
                Ok(command) => match self.config.auth.admit(command, c.authenticated) {
                    Admission::Refuse(reply) => Handling::Reply(reply),
                    Admission::Run(command) => {
                        handling_of(&self.config, command, &connection, &mut c.name)
                    }
                    Admission::Authenticated(command) => {
                        // Before the next request is parsed, so it gets the normal bounds.
                        c.authenticated = true;
                        c.parser.set_authenticated(true);
                        handling_of(&self.config, command, &connection, &mut c.name)
                    }
                },
            };
            let waiter = Waiter { conn, seq, part: None };
            match handling {
                Handling::Op(op) => self.submit(waiter, op),
                Handling::Plan(plan) => self.run_plan(waiter, plan),
                Handling::Keyspace(keyspace) => self.run_keyspace(waiter, keyspace),
                Handling::Client(command) => self.client_command(waiter, command, now),
                Handling::Reply(reply) => self.fill(waiter, reply),
                Handling::Hello { protocol, reply } => {
                    let c = self.connections.get_mut(&conn).expect("checked above");
                    c.protocol = protocol;
                    // The reply to HELLO (its slot was just pushed) is already in the new protocol.
                    *c.slots.back_mut().expect("pushed above") = Slot::Ready(reply, protocol);
                }
                Handling::ReplyAndClose(reply) => {
                    if let Some(c) = self.connections.get_mut(&conn) {
                        c.close_at = Some(seq + 1);
                    }
                    self.fill(waiter, reply);
                }
                Handling::Info { section } => {
                    self.infos.push_back(InfoWant::Section(waiter, section));
                    self.control.request(InfoQuery);
                }
                Handling::Reset(reply) => {
                    let c = self.connections.get_mut(&conn).expect("checked above");
                    c.protocol = Protocol::Resp2;
                    c.name.clear();
                    c.authenticated = !self.config.auth.is_required();
                    c.parser.set_authenticated(c.authenticated);
                    *c.slots.back_mut().expect("pushed above") =
                        Slot::Ready(reply, Protocol::Resp2);
                }
            }
        }
        self.flush(conn);
    }

    /// Sends an operation of `waiter`'s connection to the overlay, or holds it until the ops
    /// of the other kind in flight are answered (see the module docs).
    fn submit(&mut self, waiter: Waiter, op: Op) {
        let Some(c) = self.connections.get_mut(&waiter.conn) else { return };
        let read = op.is_read_only();
        let joins = c.ops_in_flight == 0 || c.reads_in_flight == read;
        if c.held.is_empty() && joins {
            self.send_op(waiter, op);
        } else {
            c.held.push_back((waiter, op));
        }
    }

    /// Sends an operation of `waiter`'s connection to the overlay.
    fn send_op(&mut self, waiter: Waiter, op: Op) {
        let Some(c) = self.connections.get_mut(&waiter.conn) else { return };
        c.ops_in_flight += 1;
        c.reads_in_flight = op.is_read_only();
        self.next_id += 1;
        self.ops.insert(self.next_id, waiter);
        self.kv.trigger(KvRequest { id: self.next_id, op });
    }

    /// An operation of `conn` was answered: once none is in flight, the held ones of the same
    /// kind as the first go out together.
    fn op_done(&mut self, conn: ConnId) {
        let Some(c) = self.connections.get_mut(&conn) else { return };
        c.ops_in_flight = c.ops_in_flight.saturating_sub(1);
        if c.ops_in_flight > 0 {
            return;
        }
        let Some(read) = c.held.front().map(|(_, op)| op.is_read_only()) else { return };
        let mut batch = Vec::new();
        while c.held.front().is_some_and(|(_, op)| op.is_read_only() == read) {
            batch.extend(c.held.pop_front());
        }
        for (waiter, op) in batch {
            self.send_op(waiter, op);
        }
    }

    fn fill(&mut self, waiter: Waiter, reply: RespValue) {
        let Some(c) = self.connections.get_mut(&waiter.conn) else { return };
        let Some(i) = waiter.seq.checked_sub(c.front_seq) else { return };
        if let Some(slot) = c.slots.get_mut(i as usize) {
            if let Slot::Waiting(protocol) = *slot {
                *slot = Slot::Ready(reply, protocol);
            }
        }
    }

    /// Writes the replies ready at the front of `conn`'s queue, in one write.
    fn flush(&mut self, conn: ConnId) {
        let Some(c) = self.connections.get_mut(&conn) else { return };
        let mut out = Vec::new();
        while let Some(Slot::Ready(..)) = c.slots.front() {
            if let Some(Slot::Ready(reply, protocol)) = c.slots.pop_front() {
                reply.encode_in(protocol, &mut out);
            }
            c.front_seq += 1;
        }
        if !out.is_empty() {
            self.stream.trigger(StreamRequest::Write { conn, data: out });
        }
        if c.close_at.is_some_and(|at| c.front_seq >= at) {
            self.stream.trigger(StreamRequest::Close { conn });
            // Its Closed event removes it; nothing more is read from it meanwhile.
            c.slots.clear();
            return;
        }
        let load = c.slots.len().max(c.ops_in_flight + c.held.len());
        if c.paused && load <= self.config.pipeline_max / 2 {
            c.paused = false;
            self.stream.trigger(StreamRequest::ResumeReading { conn });
        }
    }

    /// The `INFO` text of this node.
    fn info_sections(&self, now: Time, info: &OverlayInfo) -> Vec<InfoSection> {
        let uptime = self.started.map_or(0, |t| now.saturating_since(t).as_secs());
        let mut sections = node_info(info, self.config.client_addr, uptime).to_sections();
        let memory = &self.config.memory;
        let field = |name: &str, value: String| (name.to_owned(), value);
        sections.push(InfoSection {
            name: "Memory".into(),
            fields: vec![
                // The bytes of keys and values this node's replicas hold (what the limit bounds).
                field("used_memory", memory.used_bytes().to_string()),
                field("maxmemory", memory.max_bytes.to_string()),
                field("maxmemory_policy", "noeviction".into()),
            ],
        });
        sections.push(InfoSection {
            name: "Persistence".into(),
            fields: vec![
                // Every write is in a Zab log before it is acknowledged: Redis' AOF, always on.
                field("aof_enabled", "1".into()),
                field("appendfsync", self.config.appendfsync.as_str().into()),
                // Never skipped, whatever appendfsync says (see zab-components' wal::epochs).
                field("epoch_fsync", "always".into()),
            ],
        });
        sections
    }
}

/// What the front end does with an admitted command: what [`Command::into_handling`] says,
/// except for the `CONFIG GET` parameters whose values are this node's.
fn handling_of(
    config: &FrontendConfig,
    command: Command,
    connection: &ConnectionInfo,
    name: &mut Vec<u8>,
) -> Handling {
    match command {
        // The connection's name is the front end's to keep.
        Command::ClientSetName(new_name) => {
            *name = new_name;
            Handling::Reply(RespValue::ok())
        }
        Command::Hello { client_name: Some(ref new_name), .. } => {
            *name = new_name.clone();
            command.into_handling(connection)
        }
        Command::ConfigGet(patterns) => {
            let maxmemory = config.memory.max_bytes.to_string();
            let parameters =
                [("maxmemory", maxmemory.as_str()), ("appendfsync", config.appendfsync.as_str())];
            Handling::Reply(config_get_reply(&patterns, &parameters))
        }
        command => command.into_handling(connection),
    }
}

/// The reply to a failed operation. `-TRYAGAIN` means it did not happen; `-OUTCOME_UNKNOWN` that
/// it may have.
pub fn error_reply(error: &KvError) -> RespValue {
    match error {
        KvError::TryAgain { .. } | KvError::Busy { .. } => {
            RespValue::error(format!("TRYAGAIN {error}"))
        }
        KvError::OutcomeUnknown { .. } => RespValue::error(format!("OUTCOME_UNKNOWN {error}")),
        KvError::TooLarge { .. } => RespValue::error(format!("ERR {error}")),
        KvError::OutOfMemory => RespValue::error(format!("OOM {OOM_MESSAGE}")),
    }
}

/// What `INFO` reports of a node (the format [`crate::info`] describes), from its overlay's view.
pub fn node_info(info: &OverlayInfo, client_addr: SocketAddr, uptime_s: u64) -> NodeInfo {
    let (cluster, cluster_id) = info.cluster.clone().unwrap_or_else(|| ("forming".into(), 0));
    let groups = info
        .groups
        .iter()
        .filter_map(|g| {
            let local = g.local.as_ref()?;
            let role = match local.status {
                ZabStatus::Leading { .. } => Role::Leader,
                ZabStatus::Following { .. } => Role::Follower,
                ZabStatus::Looking => Role::Looking,
            };
            Some(GroupInfo {
                partition: g.partition.0,
                role,
                leader: g.leader.map(|l| l.to_string()),
                last_zxid: local.last_applied.map(InfoZxid::from),
                members: g.members.iter().map(|m| m.to_string()).collect(),
            })
        })
        .collect();
    let s = info.stats;
    NodeInfo {
        node: info.me.to_string(),
        client_addr: client_addr.to_string(),
        cluster,
        cluster_id,
        partitions: info.groups.len() as u32,
        replication: info.replication as u32,
        uptime_s,
        groups,
        stats: NodeStats {
            ops_get: s.gets,
            ops_set: s.sets,
            ops_del: s.dels,
            ops_cas: s.cases,
            errors: s.errors,
            forwarded: s.forwarded,
        },
    }
}

impl ComponentDefinition for RespFrontend {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        self.started.get_or_insert(ctx.now());
    }
}

impl Require<ByteStream> for RespFrontend {
    fn handle(&mut self, ctx: &mut Context<Self>, event: StreamEvent) {
        match event {
            StreamEvent::Opened { conn, peer } => {
                self.next_client_id += 1;
                let mut parser = RequestParser::new(self.config.resp_limits.clone())
                    .expect("limits validated at creation");
                let authenticated = !self.config.auth.is_required();
                parser.set_authenticated(authenticated);
                self.connections.insert(
                    conn,
                    Connection {
                        parser,
                        slots: VecDeque::new(),
                        front_seq: 0,
                        close_at: None,
                        paused: false,
                        client_id: self.next_client_id,
                        protocol: Protocol::Resp2,
                        authenticated,
                        ops_in_flight: 0,
                        reads_in_flight: false,
                        held: VecDeque::new(),
                        awaiting_table: false,
                        peer,
                        name: Vec::new(),
                        opened: ctx.now(),
                        last_command_at: ctx.now(),
                        last_command: Vec::new(),
                    },
                );
                if self.partition_count.is_none() {
                    // Learn it early, so that the connection's first `DBSIZE` need not wait.
                    self.infos.push_back(InfoWant::Table);
                    self.control.request(InfoQuery);
                }
            }
            StreamEvent::Data { conn, data } => {
                if let Some(c) = self.connections.get_mut(&conn) {
                    if c.close_at.is_none() {
                        c.parser.feed(&data);
                    }
                }
                self.serve(conn, ctx.now());
            }
            StreamEvent::Closed { conn, .. } => {
                // Replies still due to it are dropped when they come.
                self.connections.remove(&conn);
                self.gathers.retain(|(gathered, _), _| *gathered != conn);
                self.parked.retain(|(waiter, _)| waiter.conn != conn);
            }
        }
    }
}

impl Require<KvPort> for RespFrontend {
    fn handle(&mut self, ctx: &mut Context<Self>, reply: KvReply) {
        let Some(waiter) = self.ops.remove(&reply.id) else { return };
        match waiter.part {
            Some(part) => self.gathered(waiter, part, reply.result),
            None => {
                let value = match &reply.result {
                    Ok(result) => op_reply(result),
                    Err(e) => error_reply(e),
                };
                self.fill(waiter, value);
            }
        }
        self.op_done(waiter.conn);
        self.flush(waiter.conn);
        // A paused connection may have requests buffered that now fit.
        self.serve(waiter.conn, ctx.now());
    }
}

impl Require<OverlayControl> for RespFrontend {
    fn handle(&mut self, ctx: &mut Context<Self>, info: OverlayInfo) {
        if self.partition_count.is_none() && !info.groups.is_empty() {
            self.partition_count = u32::try_from(info.groups.len()).ok();
        }
        match self.infos.pop_front() {
            Some(InfoWant::Section(waiter, section)) => {
                let value = info_reply(&self.info_sections(ctx.now(), &info), section.as_deref());
                self.fill(waiter, value);
                self.flush(waiter.conn);
                self.serve(waiter.conn, ctx.now());
            }
            Some(InfoWant::Table) => self.release_parked(ctx.now()),
            None => {}
        }
    }
}
