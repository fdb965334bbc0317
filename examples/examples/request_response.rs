//! Request/response and port export: a composite node answers each requester alone.
//!
//! ```text
//! cargo run -p examples --example request_response
//! ```
//!
//! A `Node` is one composite component: its factory creates a `Store` child and exports the
//! child's `Kv` port as the node's own, so `main` wires two `Client`s to the node right after
//! creating it, with no waiting for the child to exist. Each client's `Get`s are answered to
//! that client alone (`Request` / `reply`), while `Changed` goes to every client, and each
//! client handles the two event types in two handlers (`subscribe!`). Finally `main`, outside
//! the runtime, asks the node for a value and waits for the answer with a timeout.

use std::time::Duration;

use crossbeam_channel::Sender;
use kompics_core::*;

/// Reads a key; answered to the requester alone.
#[derive(Clone, Debug)]
pub struct Get(pub String);

/// Writes a key.
#[derive(Clone, Debug)]
pub struct Put(pub String, pub u64);

/// The answer to a `Get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value(pub String, pub Option<u64>);

/// Told to every client when a key changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed(pub String);

port_events! {
    /// What goes to the store.
    #[derive(Clone, Debug)]
    pub enum KvRequest {
        /// A read, answered to its sender.
        Get(Request<Get, Value>),
        /// A write.
        Put(Put),
    }
}

port_events! {
    /// What comes from the store.
    #[derive(Clone, Debug)]
    pub enum KvIndication {
        /// An answer to one `Get`.
        Value(Value),
        /// News for everyone.
        Changed(Changed),
    }
}

/// The key-value port.
pub struct Kv;

impl Port for Kv {
    type Request = KvRequest;
    type Indication = KvIndication;
}

/// Keeps the data; one handler per request type.
pub struct Store {
    port: ProvidedPort<Kv>,
    data: std::collections::BTreeMap<String, u64>,
}

impl ComponentDefinition for Store {}

impl ProvideEvent<Kv, Request<Get, Value>> for Store {
    fn handle(&mut self, _ctx: &mut Context<Self>, get: Request<Get, Value>) {
        let key = get.payload().0.clone();
        let value = self.data.get(&key).copied();
        get.reply(Value(key, value));
    }
}

impl ProvideEvent<Kv, Put> for Store {
    fn handle(&mut self, _ctx: &mut Context<Self>, Put(key, value): Put) {
        self.data.insert(key.clone(), value);
        self.port.trigger(Changed(key).into());
    }
}

subscribe!(Store: Provide<Kv> { Request<Get, Value>, Put });

/// A node: one composite component whose `Kv` port is its store's.
pub struct Node {
    store: Component<Store>,
}

impl ComponentDefinition for Node {
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        log::info!("node started with store {}", self.store.id());
    }
}

impl ExportProvided<Kv> for Node {}

impl Node {
    /// The node's factory: creates the store and exports its port.
    pub fn new(s: &mut Setup<Node>) -> Node {
        let store = s.create(|s| Store { port: s.provided(), data: Default::default() });
        s.export_provided(&store.provided::<Kv>());
        Node { store }
    }
}

/// Writes its own key, then reads it back; reports its answers and the changes it saw.
pub struct Client {
    port: RequiredPort<Kv>,
    name: String,
    report: Sender<String>,
}

impl ComponentDefinition for Client {
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        self.port.trigger(Put(self.name.clone(), self.name.len() as u64).into());
        self.port.request(Get(self.name.clone()));
    }
}

impl RequireEvent<Kv, Value> for Client {
    fn handle(&mut self, _ctx: &mut Context<Self>, Value(key, value): Value) {
        let _ = self.report.send(format!("{}: got {key} = {value:?}", self.name));
    }
}

impl RequireEvent<Kv, Changed> for Client {
    fn handle(&mut self, _ctx: &mut Context<Self>, Changed(key): Changed) {
        let _ = self.report.send(format!("{}: {key} changed", self.name));
    }
}

subscribe!(Client: Require<Kv> { Value, Changed });

/// Creates a node and two clients on `system`, wired at once; returns the node.
pub fn build(system: &System, report: Sender<String>) -> Component<Node> {
    let node = system.create(Node::new);
    for name in ["alice", "bob"] {
        let report = report.clone();
        let client = system.create(move |s| Client {
            port: s.required(),
            name: name.to_string(),
            report: report.clone(),
        });
        connect(&node.exported_provided::<Kv>(), &client.required::<Kv>());
        client.start();
    }
    node.start();
    node
}

fn main() {
    env_logger::init();
    let runtime = Runtime::new(RuntimeConfig::default());
    let (tx, rx) = crossbeam_channel::unbounded();
    let node = build(&runtime.system(), tx);
    // Two answers (one each) and four change notices (two each).
    for _ in 0..6 {
        println!("{}", rx.recv_timeout(Duration::from_secs(10)).expect("a report"));
    }
    let answer = node.exported_provided::<Kv>().ask(Get("alice".into()));
    println!("main: {:?}", answer.wait(Duration::from_secs(10)));
    runtime.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_gets_its_own_answer_and_everyones_changes() {
        let sim = Simulation::new(7);
        let (tx, rx) = crossbeam_channel::unbounded();
        let node = build(&sim.system(), tx);
        sim.run_until_quiescent(Duration::from_secs(1));
        let mut reports: Vec<String> = rx.try_iter().collect();
        reports.sort();
        assert_eq!(
            reports,
            [
                "alice: alice changed",
                "alice: bob changed",
                "alice: got alice = Some(5)",
                "bob: alice changed",
                "bob: bob changed",
                "bob: got bob = Some(3)",
            ]
        );
        let mut pending = node.exported_provided::<Kv>().ask(Get("bob".into()));
        let answer = sim.run_until_answered(&mut pending, Duration::from_secs(1));
        assert_eq!(answer, Ok(Value("bob".into(), Some(3))));
    }
}
