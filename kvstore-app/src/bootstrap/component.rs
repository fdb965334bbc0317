//! [`Bootstrap`], the component: forms the cluster (server) or asks for its table (joiner),
//! persists it before reporting it, and announces itself to the cluster's other nodes to catch
//! a node holding another cluster's data. See the [module docs](super).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kompics_core::rand::Rng;
use kompics_core::{
    connect_with, Component, ComponentDefinition, Context, Provide, ProvidedPort, ProvidedRef,
    Require, RequiredPort, Setup, System, TimerId,
};
use kompics_net::{route_selector, NetEvent, NetMessage, Network, NodeAddr};

use crate::partition::LookupTable;

use super::config::{BootstrapConfig, BootstrapRole};
use super::port::{BootstrapEvent, BootstrapPort, BootstrapRequest};
use super::table::{node_list as list, ClusterTable};
use super::table_store::TableStore;
use super::wire::{Hello, Wire, BOOTSTRAP_ROUTE};

/// The answer of a node to an announcement.
#[derive(Clone, Debug)]
enum Answer {
    Welcome,
    Reject(String),
}

/// Where the component is.
#[derive(Debug)]
enum Phase {
    /// Not started yet.
    Idle,
    /// Waiting for the cluster to form (server: collecting hellos; joiner: saying hello).
    Forming,
    /// The table came from the store and names other nodes: the node announces itself and
    /// waits for one of them to confirm it (a `Welcome`) before it reports `Ready`, so that a
    /// node holding another cluster's table is refused before any of its groups starts.
    Confirming,
    /// The table is on disk; the node belongs to the cluster (unless later refused).
    Ready,
    /// The node must not serve.
    Refused(String),
}

/// The Bootstrap component of one node: requires the [`Network`] (receiving only
/// [`BOOTSTRAP_ROUTE`]), provides [`BootstrapPort`]. See the [module docs](super).
pub struct Bootstrap {
    port: ProvidedPort<BootstrapPort>,
    net: RequiredPort<Network>,
    config: BootstrapConfig,
    store: Box<dyn TableStore>,
    phase: Phase,
    /// The accepted table (kept after a refusal by the cluster, to answer announcements).
    table: Option<Arc<ClusterTable>>,
    /// Server, forming: the nodes heard from, itself included.
    heard: BTreeSet<NodeAddr>,
    /// Announcements answered, by node.
    answers: BTreeMap<NodeAddr, Answer>,
    timer: Option<TimerId>,
}

impl Bootstrap {
    /// The component for `config`, keeping its table in `store`. Connect its `Network` port
    /// with [`route_selector`]`(`[`BOOTSTRAP_ROUTE`]`)`, or use [`create`](Self::create).
    pub fn new(
        setup: &mut Setup<Self>,
        config: BootstrapConfig,
        store: Box<dyn TableStore>,
    ) -> Self {
        Bootstrap {
            port: setup.provided(),
            net: setup.required(),
            config,
            store,
            phase: Phase::Idle,
            table: None,
            heard: BTreeSet::new(),
            answers: BTreeMap::new(),
            timer: None,
        }
    }

    /// Creates the component in `system`, connected to the node's `network`; `store` makes its
    /// table store (again after a restart by a supervisor). It is passive: start it.
    pub fn create(
        system: &System,
        network: &ProvidedRef<Network>,
        config: BootstrapConfig,
        store: impl Fn() -> Box<dyn TableStore> + Send + Sync + 'static,
    ) -> Component<Bootstrap> {
        let boot = system.create(move |s| Bootstrap::new(s, config.clone(), store()));
        connect_with(network, &boot.required::<Network>(), route_selector(BOOTSTRAP_ROUTE));
        boot
    }

    /// The cluster's table, once accepted (it stays after a refusal by the cluster).
    pub fn table(&self) -> Option<&Arc<ClusterTable>> {
        self.table.as_ref()
    }

    /// Whether the node is ready: it has its table and has not been refused.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    /// Why the node was refused, if it was.
    pub fn refusal(&self) -> Option<&str> {
        match &self.phase {
            Phase::Refused(reason) => Some(reason),
            _ => None,
        }
    }

    /// The node's settings.
    pub fn config(&self) -> &BootstrapConfig {
        &self.config
    }

    fn me(&self) -> NodeAddr {
        self.config.me
    }

    fn send(&mut self, to: NodeAddr, wire: &Wire) {
        match NetMessage::encode(self.config.me, to, BOOTSTRAP_ROUTE, wire) {
            Ok(msg) => self.net.trigger(msg),
            Err(e) => log::error!("bootstrap {}: cannot encode a message: {e}", self.me()),
        }
    }

    fn cancel_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
    }

    fn refuse(&mut self, ctx: &mut Context<Self>, reason: String) {
        if matches!(self.phase, Phase::Refused(_)) {
            return;
        }
        log::error!("bootstrap {}: refused: {reason}", self.me());
        self.cancel_timer(ctx);
        self.phase = Phase::Refused(reason.clone());
        self.port.trigger(BootstrapEvent::Refused { reason });
    }

    /// Persists `table` (unless it came from the store), then becomes ready and announces. A
    /// table from the store that names other nodes is only reported once one of them confirms
    /// it (see [`Phase::Confirming`]); one just formed or received from the server needs not.
    fn accept(&mut self, ctx: &mut Context<Self>, table: ClusterTable, persist: bool) -> bool {
        if persist {
            if let Err(e) = self.store.save(&table) {
                self.refuse(ctx, format!("cannot store the cluster table: {e}"));
                return false;
            }
        }
        let alone = table.nodes().iter().all(|&n| n == self.me());
        let table = Arc::new(table);
        self.table = Some(table.clone());
        self.cancel_timer(ctx);
        if persist || alone {
            self.become_ready();
        } else {
            log::info!(
                "bootstrap {}: stored {table}; waiting for another of its nodes to confirm it",
                self.me()
            );
            self.phase = Phase::Confirming;
        }
        self.announce(ctx);
        true
    }

    fn become_ready(&mut self) {
        let table = self.table.clone().expect("a node becomes ready with a table");
        log::info!("bootstrap {}: ready in {table}", self.me());
        self.phase = Phase::Ready;
        self.port.trigger(BootstrapEvent::Ready(table));
    }

    /// Where the component goes at start (or resumes after a stop).
    fn begin(&mut self, ctx: &mut Context<Self>) {
        if let Err(reason) = self.config.validate() {
            let reason = format!("node {}: invalid bootstrap configuration: {reason}", self.me());
            self.refuse(ctx, reason);
            return;
        }
        let location = self.store.location();
        match self.store.load() {
            Err(e) => self.refuse(ctx, format!("cannot load the cluster table: {e}")),
            Ok(Some(table)) => match self.config.check_table(&table, &location) {
                Some(reason) => self.refuse(ctx, reason),
                None => {
                    if let Some(n) = self.config.expected_size() {
                        if n != table.nodes().len() {
                            log::warn!(
                                "bootstrap {}: configured for {n} nodes, but the stored {table} \
                                 (the stored table wins)",
                                self.me()
                            );
                        }
                    }
                    self.accept(ctx, table, false);
                }
            },
            Ok(None) => {
                self.phase = Phase::Forming;
                match self.config.role {
                    BootstrapRole::Server { expected_nodes } => {
                        log::info!(
                            "bootstrap {}: bootstrap server of cluster {:?}, waiting for \
                             {expected_nodes} nodes",
                            self.me(),
                            self.config.cluster_name
                        );
                        self.heard.insert(self.me());
                        self.maybe_form(ctx);
                    }
                    BootstrapRole::Join { .. } => self.arm_timer(ctx),
                }
            }
        }
    }

    /// A joiner's hello loop, or a ready node's announcement loop; the first round now.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        self.cancel_timer(ctx);
        let interval = self.config.hello_interval;
        self.timer = Some(ctx.schedule_periodic(
            Duration::ZERO,
            interval,
            |b: &mut Bootstrap, ctx| b.tick(ctx),
        ));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        match (&self.phase, &self.config.role) {
            (Phase::Forming, BootstrapRole::Join { server }) => {
                let (server, hello) = (*server, Wire::Hello(self.config.hello()));
                self.send(server, &hello);
            }
            (Phase::Ready | Phase::Confirming, _) => {
                let pending = self.unanswered();
                if pending.is_empty() {
                    self.cancel_timer(ctx);
                    return;
                }
                let table = self.table.clone().expect("a ready node has a table");
                let announce = Wire::Announce {
                    cluster_id: table.cluster_id,
                    cluster_name: table.cluster_name.clone(),
                };
                for node in pending {
                    self.send(node, &announce);
                }
            }
            _ => self.cancel_timer(ctx),
        }
    }

    /// The other nodes of the table that have not answered the announcement.
    fn unanswered(&self) -> Vec<NodeAddr> {
        let Some(table) = &self.table else { return Vec::new() };
        table
            .nodes()
            .into_iter()
            .filter(|n| *n != self.me() && !self.answers.contains_key(n))
            .collect()
    }

    fn announce(&mut self, ctx: &mut Context<Self>) {
        if !self.unanswered().is_empty() {
            self.arm_timer(ctx);
        }
    }

    /// Server, forming: builds, persists and sends the table once enough nodes said hello.
    fn maybe_form(&mut self, ctx: &mut Context<Self>) {
        let BootstrapRole::Server { expected_nodes } = self.config.role else { return };
        if self.heard.len() < expected_nodes {
            return;
        }
        let nodes: Vec<NodeAddr> = self.heard.iter().copied().collect();
        let table =
            match LookupTable::build(&nodes, self.config.partitions, self.config.replication) {
                Ok(table) => table,
                Err(e) => {
                    let reason = format!("cannot place the partitions on {}: {e}", list(&nodes));
                    self.refuse(ctx, reason);
                    return;
                }
            };
        let table = ClusterTable {
            cluster_id: ctx.rng().random(),
            cluster_name: self.config.cluster_name.clone(),
            table,
        };
        log::info!("bootstrap {}: formed {table} with {}", self.me(), list(&nodes));
        let wire = Wire::Table(table.clone());
        // Persisted first: no node hears of a table that is not on the server's disk.
        if self.accept(ctx, table, true) {
            let me = self.me();
            for node in nodes.into_iter().filter(|n| *n != me) {
                self.send(node, &wire);
            }
        }
    }

    /// Why a hello cannot be accepted by a server of `name`, `P`, `R`, `expected` nodes.
    fn hello_mismatch(
        &self,
        from: NodeAddr,
        hello: &Hello,
        name: &str,
        partitions: u32,
        replication: usize,
        expected: usize,
    ) -> Option<String> {
        let mut wrong = Vec::new();
        if hello.cluster_name != name {
            wrong.push(format!("cluster name {:?} there, {name:?} here", hello.cluster_name));
        }
        if hello.partitions != partitions {
            wrong.push(format!("P={} there, P={partitions} here", hello.partitions));
        }
        if hello.replication != replication {
            wrong.push(format!("R={} there, R={replication} here", hello.replication));
        }
        if let Some(n) = hello.expected_nodes {
            if n != expected {
                wrong.push(format!("{n} expected nodes there, {expected} here"));
            }
        }
        if wrong.is_empty() {
            return None;
        }
        Some(format!(
            "bootstrap server {} refuses {from}: its configuration does not match the \
             cluster's: {}. Start {from} with the cluster's configuration",
            self.me(),
            wrong.join("; ")
        ))
    }

    fn on_hello(&mut self, ctx: &mut Context<Self>, from: NodeAddr, hello: Hello) {
        match (&self.phase, &self.config.role) {
            (Phase::Forming, BootstrapRole::Server { expected_nodes }) => {
                let c = &self.config;
                let mismatch = self.hello_mismatch(
                    from,
                    &hello,
                    &c.cluster_name,
                    c.partitions,
                    c.replication,
                    *expected_nodes,
                );
                if let Some(reason) = mismatch {
                    log::warn!("bootstrap {}: {reason}", self.me());
                    self.send(from, &Wire::Refuse { reason });
                } else if self.heard.insert(from) {
                    log::info!(
                        "bootstrap {}: hello from {from} ({} of {expected_nodes})",
                        self.me(),
                        self.heard.len()
                    );
                    self.maybe_form(ctx);
                }
            }
            (Phase::Ready, _) => {
                let table = self.table.clone().expect("a ready node has a table");
                let (name, p, r) = (
                    table.cluster_name.as_str(),
                    table.table.partition_count(),
                    table.table.replication(),
                );
                let n = table.nodes().len();
                // A misconfigured node hears of its configuration first: it is the cause.
                let mismatch = self.hello_mismatch(from, &hello, name, p, r, n);
                let reason = if !table.contains(from) {
                    let late = format!(
                        "cluster {} ({:016x}) formed without {from}; expected {n} nodes",
                        table.cluster_name, table.cluster_id
                    );
                    Some(match mismatch {
                        Some(mismatch) => format!("{mismatch} (and {late})"),
                        None => late,
                    })
                } else {
                    mismatch
                };
                match reason {
                    Some(reason) => {
                        log::warn!("bootstrap {}: {reason}", self.me());
                        self.send(from, &Wire::Refuse { reason });
                    }
                    // A node of the table that lost it before persisting: the same table again.
                    None => self.send(from, &Wire::Table((*table).clone())),
                }
            }
            (Phase::Forming, BootstrapRole::Join { .. }) => log::warn!(
                "bootstrap {}: hello from {from}, but this node is not the bootstrap server \
                 (check {from}'s configuration)",
                self.me()
            ),
            // A node confirming a stored table does not hand it out before it is confirmed;
            // the hello comes again.
            (Phase::Idle | Phase::Confirming | Phase::Refused(_), _) => {}
        }
    }

    fn is_my_server(&self, from: NodeAddr) -> bool {
        matches!(self.config.role, BootstrapRole::Join { server } if server == from)
    }

    fn on_table(&mut self, ctx: &mut Context<Self>, from: NodeAddr, table: ClusterTable) {
        if !matches!(self.phase, Phase::Forming) {
            if let Some(mine) = &self.table {
                if mine.cluster_id != table.cluster_id {
                    log::warn!(
                        "bootstrap {}: ignored {table} from {from}: this node is in {mine}",
                        self.me()
                    );
                }
            }
            return;
        }
        if !self.is_my_server(from) {
            log::warn!(
                "bootstrap {}: ignored a table from {from}, which is not this node's bootstrap \
                 server",
                self.me()
            );
            return;
        }
        let source = format!("the table sent by bootstrap server {from}");
        match self.config.check_table(&table, &source) {
            Some(reason) => self.refuse(ctx, reason),
            None => {
                self.accept(ctx, table, true);
            }
        }
    }

    fn on_announce(&mut self, from: NodeAddr, cluster_id: u64, cluster_name: String) {
        // Without a table of its own, a node cannot judge: the announcer asks again later.
        let Some(table) = self.table.clone() else { return };
        let answer = if table.cluster_id != cluster_id {
            Wire::Reject {
                reason: format!(
                    "node {} is in cluster {:?} ({:016x}), not in cluster {:?} ({cluster_id:016x})",
                    self.me(),
                    table.cluster_name,
                    table.cluster_id,
                    cluster_name
                ),
            }
        } else if !table.contains(from) {
            Wire::Reject {
                reason: format!(
                    "the table of cluster {:?} ({:016x}) at node {} does not contain {from}",
                    table.cluster_name,
                    table.cluster_id,
                    self.me()
                ),
            }
        } else {
            Wire::Welcome { cluster_id }
        };
        if let Wire::Reject { reason } = &answer {
            log::warn!("bootstrap {}: refusing the announcement of {from}: {reason}", self.me());
        }
        self.send(from, &answer);
    }

    fn on_answer(&mut self, ctx: &mut Context<Self>, from: NodeAddr, answer: Answer) {
        if !matches!(self.phase, Phase::Ready | Phase::Confirming) {
            return;
        }
        let Some(table) = self.table.clone() else { return };
        if from == self.me() || !table.contains(from) || self.answers.contains_key(&from) {
            return;
        }
        if let Answer::Reject(reason) = &answer {
            log::warn!("bootstrap {}: {from} refuses this node: {reason}", self.me());
        }
        let answer_kind = answer.clone();
        self.answers.insert(from, answer);
        let others = table.nodes().len() - 1;
        let rejections: Vec<String> = self
            .answers
            .iter()
            .filter_map(|(node, a)| match a {
                Answer::Reject(reason) => Some(format!("{node}: {reason}")),
                Answer::Welcome => None,
            })
            .collect();
        if 2 * rejections.len() > others {
            let reason = format!(
                "node {} holds the table of cluster {:?} ({:016x}) in {}, but {} of the {others} \
                 other nodes of that table refuse it ({}). This node's data belongs to another \
                 cluster: move all of it away to join as a new node: {} (the partition \
                 directories hold that cluster's logs)",
                self.me(),
                table.cluster_name,
                table.cluster_id,
                self.store.location(),
                rejections.len(),
                rejections.join("; "),
                self.store.data_locations()
            );
            self.refuse(ctx, reason);
            return;
        }
        if matches!(self.phase, Phase::Confirming) && matches!(answer_kind, Answer::Welcome) {
            // A node of the table is in its cluster: the table is this cluster's.
            self.become_ready();
        }
        if self.unanswered().is_empty() {
            self.cancel_timer(ctx);
        }
    }
}

impl ComponentDefinition for Bootstrap {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Idle => self.begin(ctx),
            // Started again after a stop, which ended the timers.
            Phase::Forming if matches!(self.config.role, BootstrapRole::Join { .. }) => {
                self.arm_timer(ctx)
            }
            Phase::Ready | Phase::Confirming => self.announce(ctx),
            Phase::Forming | Phase::Refused(_) => {}
        }
    }

    fn on_stop(&mut self, ctx: &mut Context<Self>) {
        self.cancel_timer(ctx);
    }
}

impl Provide<BootstrapPort> for Bootstrap {
    fn handle(&mut self, _ctx: &mut Context<Self>, request: BootstrapRequest) {
        let BootstrapRequest::Status = request;
        match &self.phase {
            Phase::Ready => {
                let table = self.table.clone().expect("a ready node has a table");
                self.port.trigger(BootstrapEvent::Ready(table));
            }
            Phase::Refused(reason) => {
                self.port.trigger(BootstrapEvent::Refused { reason: reason.clone() })
            }
            Phase::Idle | Phase::Forming | Phase::Confirming => {}
        }
    }
}

impl Require<Network> for Bootstrap {
    fn handle(&mut self, ctx: &mut Context<Self>, event: NetEvent) {
        let msg = match event {
            NetEvent::Deliver(msg) => msg,
            // E.g. a lookup table too large for a frame: nothing retries it, so say so loudly.
            NetEvent::SendFailed { to, route, error } if route == BOOTSTRAP_ROUTE => {
                log::error!("bootstrap {}: message to {to} not sent: {error}", self.me());
                return;
            }
            _ => return,
        };
        if msg.route != BOOTSTRAP_ROUTE {
            return;
        }
        let wire = match msg.decode::<Wire>() {
            Ok(wire) => wire,
            Err(e) => {
                log::warn!("bootstrap {}: undecodable message from {}: {e}", self.me(), msg.src);
                return;
            }
        };
        let from = msg.src;
        match wire {
            Wire::Hello(hello) => self.on_hello(ctx, from, hello),
            Wire::Table(table) => self.on_table(ctx, from, table),
            Wire::Refuse { reason } => {
                if matches!(self.phase, Phase::Forming) && self.is_my_server(from) {
                    self.refuse(ctx, reason);
                }
            }
            Wire::Announce { cluster_id, cluster_name } => {
                self.on_announce(from, cluster_id, cluster_name)
            }
            Wire::Welcome { cluster_id } => {
                if self.table.as_ref().is_some_and(|t| t.cluster_id == cluster_id) {
                    self.on_answer(ctx, from, Answer::Welcome);
                }
            }
            Wire::Reject { reason } => self.on_answer(ctx, from, Answer::Reject(reason)),
        }
    }
}
