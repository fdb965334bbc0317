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
            cmd: c.last_command.clone(),
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
