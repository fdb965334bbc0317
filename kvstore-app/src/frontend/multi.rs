//! The front end's side of commands that are more than one op ([`Plan`]s), that need the
//! partition count ([`Keyspace`]), or that are about the node's connections
//! ([`ClientCommand`]).
//!
//! A plan's ops go out through [`RespFrontend::submit`] like single ops, so they keep the
//! connection's order rules; each carries its index in the plan, and the [`Gather`] of the
//! plan's slot collects the results until the last arrives. If any op failed, the reply is
//! that failure; when a write plan failed only in part, the error says so, since some of its
//! ops did take effect.

use kompics_core::Time;
use kompics_net::stream::StreamRequest;

use crate::command::clients::{self, ClientCommand, ClientEntry};
use crate::command::strings::{Keyspace, Plan};
use crate::ports::KvError;
use crate::resp::RespValue;
use crate::store::OpResult;

use super::{error_reply, RespFrontend, Waiter};

/// The results of a plan's ops, as they arrive.
pub(super) struct Gather {
    plan: Plan,
    results: Vec<Option<Result<OpResult, KvError>>>,
    missing: usize,
}

impl Gather {
    /// The reply once every result is in.
    fn reply(self) -> RespValue {
        let total = self.results.len();
        let results: Vec<Result<OpResult, KvError>> =
            self.results.into_iter().map(|result| result.expect("every result is in")).collect();
        let done = results.iter().filter(|result| result.is_ok()).count();
        match results.iter().find_map(|result| result.as_ref().err()) {
            None => {
                let results: Vec<OpResult> = results.into_iter().flatten().collect();
                self.plan.reply(&results)
            }
            Some(error) if done > 0 && !self.plan.is_read_only() => RespValue::error(format!(
                "OUTCOME_UNKNOWN partially applied: {done} of {total} operations took effect; another failed: {error}"
            )),
            Some(error) => error_reply(error),
        }
    }
}

impl RespFrontend {
    /// Sends a plan's ops; its reply fills `waiter`'s slot once all are answered.
    pub(super) fn run_plan(&mut self, waiter: Waiter, plan: Plan) {
        if plan.ops.is_empty() {
            let reply = plan.reply(&[]);
            return self.fill(waiter, reply);
        }
        let ops = plan.ops.clone();
        let gather = Gather { results: vec![None; ops.len()], missing: ops.len(), plan };
        self.gathers.insert((waiter.conn, waiter.seq), gather);
        for (part, op) in ops.into_iter().enumerate() {
            self.submit(Waiter { part: Some(part), ..waiter }, op);
        }
    }

    /// One op of a plan was answered.
    pub(super) fn gathered(
        &mut self,
        waiter: Waiter,
        part: usize,
        result: Result<OpResult, KvError>,
    ) {
        let key = (waiter.conn, waiter.seq);
        let Some(gather) = self.gathers.get_mut(&key) else { return };
        if let Some(slot) = gather.results.get_mut(part) {
            if slot.replace(result).is_none() {
                gather.missing -= 1;
            }
        }
        if gather.missing == 0 {
            let gather = self.gathers.remove(&key).expect("found above");
            self.fill(waiter, gather.reply());
        }
    }

    /// Plans and runs a command that needs the partition count, or parks it (and the rest of
    /// its connection) until the overlay tells the count.
    pub(super) fn run_keyspace(&mut self, waiter: Waiter, keyspace: Keyspace) {
        match self.partition_count {
            Some(count) => match keyspace.plan(count) {
                Ok(plan) => self.run_plan(waiter, plan),
                Err(reply) => self.fill(waiter, reply),
            },
            None => {
                if let Some(c) = self.connections.get_mut(&waiter.conn) {
                    c.awaiting_table = true;
                }
                self.parked.push((waiter, keyspace));
                self.infos.push_back(super::InfoWant::Table);
                self.control.request(crate::overlay::InfoQuery);
            }
        }
    }

    /// The overlay answered a question about the table: run the parked commands (or, if the
    /// node has no table yet, refuse them: nothing happened), then serve their connections on.
    pub(super) fn release_parked(&mut self, now: Time) {
        for (waiter, keyspace) in std::mem::take(&mut self.parked) {
            if let Some(c) = self.connections.get_mut(&waiter.conn) {
                c.awaiting_table = false;
            }
            if self.partition_count.is_some() {
                self.run_keyspace(waiter, keyspace);
            } else {
                self.fill(
                    waiter,
                    RespValue::error(
                        "TRYAGAIN the cluster's partition table is not known yet; the command did not run",
                    ),
                );
            }
            self.flush(waiter.conn);
            self.serve(waiter.conn, now);
        }
    }

    /// `CLIENT GETNAME|LIST|INFO|KILL`, `TIME`.
    pub(super) fn client_command(&mut self, waiter: Waiter, command: ClientCommand, now: Time) {
        let reply = match command {
            ClientCommand::Id => {
                let id = self.connections.get(&waiter.conn).map_or(0, |c| c.client_id);
                RespValue::Integer(i64::try_from(id).unwrap_or(i64::MAX))
            }
            ClientCommand::GetName => match self.connections.get(&waiter.conn) {
                Some(c) if !c.name.is_empty() => RespValue::bulk(c.name.clone()),
                _ => RespValue::null_bulk(),
            },
            ClientCommand::List => clients::list_reply(&self.client_entries(now)),
            ClientCommand::Info => {
                let mine = self.client_entries(now).into_iter().find(|entry| {
                    self.connections.get(&waiter.conn).is_some_and(|c| c.client_id == entry.id)
                });
                RespValue::bulk(mine.map(|entry| entry.line() + "\n").unwrap_or_default())
            }
            ClientCommand::Kill(filter) => {
                let asking = self.connections.get(&waiter.conn).map_or(0, |c| c.client_id);
                let victims: Vec<_> = self
                    .connections
                    .iter()
                    // One already closing (killed, or after QUIT) is not killed twice.
                    .filter(|(_, c)| c.close_at.is_none())
                    .filter(|(_, c)| filter.matches(&self.entry(c, now), asking))
                    .map(|(&conn, _)| conn)
                    .collect();
                for &conn in &victims {
                    if conn == waiter.conn {
                        // Itself: the reply goes out first, then the connection closes.
                        if let Some(c) = self.connections.get_mut(&conn) {
                            c.close_at = Some(waiter.seq + 1);
                        }
                    } else if let Some(c) = self.connections.get_mut(&conn) {
                        // Nothing more is read, run or answered (as Redis drops a killed
                        // client's pending commands); its Closed event removes it.
                        c.close_at = Some(c.front_seq);
                        c.slots.clear();
                        c.held.clear();
                        self.parked.retain(|(parked, _)| parked.conn != conn);
                        self.stream.trigger(StreamRequest::Close { conn });
                    }
                }
                filter.reply(victims.len())
            }
            ClientCommand::Time => clients::time_reply((self.config.wall_clock)()),
        };
        self.fill(waiter, reply);
    }

    fn client_entries(&self, now: Time) -> Vec<ClientEntry> {
        let mut entries: Vec<_> = self.connections.values().map(|c| self.entry(c, now)).collect();
        entries.sort_by_key(|entry| entry.id);
        entries
    }

    fn entry(&self, c: &super::Connection, now: Time) -> ClientEntry {
        ClientEntry {
            id: c.client_id,
            addr: c.peer,
            laddr: self.config.client_addr,
            name: c.name.clone(),
            age: now.saturating_since(c.opened),
            idle: now.saturating_since(c.last_command_at),
            cmd: clients::command_name(&c.last_command),
            resp: c.protocol.version(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::strings::Combine;
    use crate::partition::PartitionId;
    use crate::store::Op;

    fn gather(
        ops: Vec<Op>,
        combine: Combine,
        results: Vec<Result<OpResult, KvError>>,
    ) -> RespValue {
        let missing = 0;
        let results = results.into_iter().map(Some).collect();
        Gather { plan: Plan { ops, combine }, results, missing }.reply()
    }

    fn del(key: &str) -> Op {
        Op::Del { key: key.as_bytes().to_vec() }
    }

    #[test]
    fn a_plan_replies_its_combination_or_its_first_error() {
        let partition = PartitionId(1);
        assert_eq!(
            gather(
                vec![del("a"), del("b")],
                Combine::CountFound,
                vec![Ok(OpResult::Deleted(true)), Ok(OpResult::Deleted(true))]
            ),
            RespValue::Integer(2)
        );
        // Nothing happened anywhere: the error as it is, TRYAGAIN.
        let nothing = gather(
            vec![Op::Get { key: b"a".to_vec() }, Op::Get { key: b"b".to_vec() }],
            Combine::Values,
            vec![Ok(OpResult::Value(None)), Err(KvError::TryAgain { partition })],
        );
        assert!(
            matches!(&nothing, RespValue::Error(e) if e.starts_with("TRYAGAIN")),
            "{nothing:?}"
        );
        // A write that took effect in part must not say it did not happen.
        let partial = gather(
            vec![del("a"), del("b")],
            Combine::CountFound,
            vec![Ok(OpResult::Deleted(true)), Err(KvError::TryAgain { partition })],
        );
        let RespValue::Error(text) = partial else { panic!("{partial:?}") };
        assert!(text.starts_with("OUTCOME_UNKNOWN partially applied: 1 of 2"), "{text}");
    }
}

/// The front end in the simulator between a fake byte-stream server and a fake overlay that
/// serves every partition from a [`Store`](crate::store::Store) of its own: the paths of plans,
/// of commands that wait for the partition count, and of `CLIENT KILL`, step by step.
#[cfg(test)]
mod simulated {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::time::Duration;

    use kompics_core::{
        connect, start_all, Component, ComponentDefinition, Context, Provide, ProvidedPort, Setup,
        Simulation,
    };
    use kompics_net::stream::{ByteStream, CloseReason, ConnId, StreamEvent, StreamRequest};
    use kompics_net::NodeAddr;

    use crate::frontend::{FrontendConfig, RespFrontend};
    use crate::overlay::{GroupView, OverlayControl, OverlayInfo, OverlayRequest, OverlayStats};
    use crate::partition::PartitionId;
    use crate::ports::{KvPort, KvReply, KvRequest};
    use crate::resp::{ReplyParser, RespValue};
    use crate::store::Store;

    /// Records what the front end writes and closes; clients' bytes are triggered into it.
    struct FakeServer {
        port: ProvidedPort<ByteStream>,
        written: BTreeMap<u64, Vec<u8>>,
        closed: Vec<u64>,
        /// `true` for each PauseReading, `false` for each ResumeReading, in order.
        pauses: Vec<bool>,
    }

    impl ComponentDefinition for FakeServer {}

    impl Provide<ByteStream> for FakeServer {
        fn handle(&mut self, _ctx: &mut Context<Self>, request: StreamRequest) {
            match request {
                StreamRequest::Write { conn, data } => {
                    self.written.entry(conn.0).or_default().extend(data)
                }
                StreamRequest::Close { conn } => self.closed.push(conn.0),
                StreamRequest::PauseReading { .. } => self.pauses.push(true),
                StreamRequest::ResumeReading { .. } => self.pauses.push(false),
            }
        }
    }

    /// Serves ops from one store per partition; tells the partition count once `installed`.
    struct FakeOverlay {
        kv: ProvidedPort<KvPort>,
        /// Answers go back through `Request::reply`; nothing is triggered on it.
        _control: ProvidedPort<OverlayControl>,
        stores: Vec<Store>,
        installed: bool,
    }

    impl ComponentDefinition for FakeOverlay {}

    impl Provide<KvPort> for FakeOverlay {
        fn handle(&mut self, _ctx: &mut Context<Self>, request: KvRequest) {
            let partition = request.op.partition(self.stores.len() as u32);
            let result = self.stores[partition.0 as usize].apply(&request.op);
            self.kv.trigger(KvReply { id: request.id, result: Ok(result) });
        }
    }

    impl Provide<OverlayControl> for FakeOverlay {
        fn handle(&mut self, _ctx: &mut Context<Self>, request: OverlayRequest) {
            let OverlayRequest::Info(request) = request else { return };
            let partitions = if self.installed { self.stores.len() as u32 } else { 0 };
            let groups = (0..partitions)
                .map(|p| GroupView {
                    partition: PartitionId(p),
                    members: vec![],
                    local: None,
                    leader: None,
                })
                .collect();
            request.reply(OverlayInfo {
                me: NodeAddr(([10, 0, 0, 1], 7000).into()),
                cluster: None,
                replication: 1,
                groups,
                suspected: vec![],
                stats: OverlayStats::default(),
            });
        }
    }

    struct Bench {
        sim: Simulation,
        server: Component<FakeServer>,
        overlay: Component<FakeOverlay>,
    }

    impl Bench {
        fn new() -> Bench {
            Bench::with_pipeline_max(1024)
        }

        fn with_pipeline_max(pipeline_max: usize) -> Bench {
            let sim = Simulation::new(3);
            let addr: SocketAddr = "10.0.0.1:6379".parse().unwrap();
            let config = FrontendConfig { pipeline_max, ..FrontendConfig::new(addr) };
            let frontend = sim.create(move |s| RespFrontend::new(s, config.clone()));
            let server = sim.create(|s: &mut Setup<FakeServer>| FakeServer {
                port: s.provided(),
                written: BTreeMap::new(),
                closed: vec![],
                pauses: vec![],
            });
            let overlay = sim.create(|s: &mut Setup<FakeOverlay>| FakeOverlay {
                kv: s.provided(),
                _control: s.provided(),
                stores: vec![Store::new(); 4],
                installed: false,
            });
            connect(&server.provided::<ByteStream>(), &frontend.required::<ByteStream>());
            connect(&overlay.provided::<KvPort>(), &frontend.required::<KvPort>());
            connect(&overlay.provided::<OverlayControl>(), &frontend.required::<OverlayControl>());
            start_all(&[&frontend, &server, &overlay]);
            let bench = Bench { sim, server, overlay };
            bench.settle();
            bench
        }

        fn settle(&self) {
            self.sim.run_until_quiescent(Duration::from_secs(5));
        }

        fn event(&self, event: StreamEvent) {
            self.server.on_definition(|s| s.port.trigger(event));
            self.settle();
        }

        fn open(&self, conn: u64, port: u16) {
            let peer = SocketAddr::from(([127, 0, 0, 1], port));
            self.event(StreamEvent::Opened { conn: ConnId(conn), peer });
        }

        fn send(&self, conn: u64, text: &str) {
            self.event(StreamEvent::Data { conn: ConnId(conn), data: text.as_bytes().to_vec() });
        }

        /// Every reply written to `conn` so far, parsed.
        fn replies(&self, conn: u64) -> Vec<RespValue> {
            let bytes = self.server.on_definition(|s| s.written.get(&conn).cloned()).flatten();
            let mut parser = ReplyParser::default();
            parser.feed(&bytes.unwrap_or_default());
            std::iter::from_fn(|| parser.next_value().unwrap()).collect()
        }
    }

    #[test]
    fn keyspace_commands_wait_for_the_table_and_keep_request_order() {
        let bench = Bench::new();
        bench.open(1, 5001);
        // No table yet: DBSIZE did not run, and the SET after it did, in order.
        bench.send(1, "DBSIZE\r\nSET a 1\r\n");
        let replies = bench.replies(1);
        assert!(
            matches!(&replies[0], RespValue::Error(e) if e.starts_with("TRYAGAIN")),
            "{replies:?}"
        );
        assert_eq!(replies[1], RespValue::ok());
        // The table is known now: the first keyspace command learns it, and the commands
        // after it (read in the same batch) wait for it, then run in order.
        bench.overlay.on_definition(|o| o.installed = true);
        bench.send(1, "MSET b 2 c 3 d 4\r\nDBSIZE\r\nMGET a b nosuch\r\nDEL a b c\r\nDBSIZE\r\n");
        let bulks = |items: &[Option<&str>]| {
            RespValue::array(
                items.iter().map(|i| i.map_or(RespValue::null_bulk(), RespValue::bulk)).collect(),
            )
        };
        assert_eq!(
            bench.replies(1)[2..],
            [
                RespValue::ok(),
                RespValue::Integer(4),
                bulks(&[Some("1"), Some("2"), None]),
                RespValue::Integer(3),
                RespValue::Integer(1),
            ]
        );
        // SCAN walks all four partitions with COUNT 1 and finds the one key left.
        let mut cursor = "0".to_string();
        let mut found = Vec::new();
        let mut calls = 0;
        loop {
            bench.send(1, &format!("SCAN {cursor} COUNT 1\r\n"));
            let RespValue::Array(Some(page)) = bench.replies(1).pop().unwrap() else { panic!() };
            let RespValue::BulkString(Some(next)) = &page[0] else { panic!("{page:?}") };
            let RespValue::Array(Some(keys)) = &page[1] else { panic!("{page:?}") };
            found.extend(keys.iter().cloned());
            cursor = String::from_utf8(next.clone()).unwrap();
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(found, vec![RespValue::bulk("d")]);
        assert!(calls >= 4, "one page per partition at least: {calls}");
    }

    #[test]
    fn a_command_of_many_ops_counts_against_the_pipeline_bound() {
        let bench = Bench::with_pipeline_max(4);
        bench.open(1, 5001);
        bench.overlay.on_definition(|o| o.installed = true);
        // Six keys over four partitions: six ops for one request, beyond the bound of 4.
        let keys = (0..6).map(|i| format!("key{i}")).collect::<Vec<_>>().join(" ");
        bench.send(1, &format!("MGET {keys}\r\nGET key0\r\n"));
        assert_eq!(bench.replies(1).len(), 2, "both answered once the ops returned");
        assert_eq!(
            bench.server.on_definition(|s| s.pauses.clone()),
            Some(vec![true, false]),
            "paused while the six ops were out, resumed after"
        );
    }

    #[test]
    fn client_kill_closes_the_other_connection_and_list_shows_both() {
        let bench = Bench::new();
        bench.open(1, 5001);
        bench.open(2, 5002);
        bench.send(2, "CLIENT SETNAME worker\r\n");
        bench.send(
            1,
            "CLIENT LIST\r\nCLIENT GETNAME\r\nCLIENT KILL 127.0.0.1:5002\r\nCLIENT KILL ID 2\r\n",
        );
        let replies = bench.replies(1);
        let RespValue::BulkString(Some(list)) = &replies[0] else { panic!("{replies:?}") };
        let list = String::from_utf8(list.clone()).unwrap();
        assert_eq!(list.lines().count(), 2, "{list}");
        assert!(
            list.contains("id=2 addr=127.0.0.1:5002 laddr=10.0.0.1:6379 name=worker "),
            "{list}"
        );
        assert!(
            list.contains("id=1 addr=127.0.0.1:5001") && list.contains("cmd=client|list"),
            "{list}"
        );
        assert_eq!(replies[1], RespValue::null_bulk());
        assert_eq!(replies[2], RespValue::ok());
        assert_eq!(replies[3], RespValue::Integer(0), "already being closed: not killed twice");
        assert_eq!(bench.server.on_definition(|s| s.closed.clone()), Some(vec![2]));
        bench.event(StreamEvent::Closed { conn: ConnId(2), reason: CloseReason::Requested });
        bench.send(1, "CLIENT KILL ID 2\r\nCLIENT ID\r\n");
        assert_eq!(bench.replies(1)[4..], [RespValue::Integer(0), RespValue::Integer(1)]);
    }
}
