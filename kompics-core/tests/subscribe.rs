//! Several event types per port direction: one handler per type, and a component receives only
//! the types it subscribed to.

use std::time::Duration;

use kompics_core::*;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Get(pub &'static str);
#[derive(Clone, Debug, PartialEq, Eq)]
struct Put(pub &'static str, pub u64);
#[derive(Clone, Debug, PartialEq, Eq)]
struct Value(pub Option<u64>);
#[derive(Clone, Debug, PartialEq, Eq)]
struct Changed(pub &'static str);

port_events! {
    /// Requests of the store.
    #[derive(Clone, Debug)]
    enum KvRequest {
        Get(Request<Get, Value>),
        Put(Put),
    }
}

port_events! {
    /// Indications of the store.
    #[derive(Clone, Debug)]
    enum KvIndication {
        Value(Value),
        Changed(Changed),
    }
}

struct Kv;

impl Port for Kv {
    type Request = KvRequest;
    type Indication = KvIndication;
}

/// Handles gets and puts in two handlers.
struct Store {
    port: ProvidedPort<Kv>,
    data: Vec<(&'static str, u64)>,
}

impl ComponentDefinition for Store {}

impl ProvideEvent<Kv, Request<Get, Value>> for Store {
    fn handle(&mut self, _ctx: &mut Context<Self>, get: Request<Get, Value>) {
        let key = get.payload().0;
        let value = self.data.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v);
        get.reply(Value(value));
    }
}

impl ProvideEvent<Kv, Put> for Store {
    fn handle(&mut self, _ctx: &mut Context<Self>, Put(key, value): Put) {
        self.data.push((key, value));
        self.port.trigger(Changed(key).into());
    }
}

subscribe!(Store: Provide<Kv> { Request<Get, Value>, Put });

/// Puts, then gets; handles values and changes separately.
struct Client {
    port: RequiredPort<Kv>,
    values: Vec<Option<u64>>,
    changes: Vec<&'static str>,
}

impl ComponentDefinition for Client {
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        self.port.trigger(Put("a", 1).into());
        self.port.trigger(Put("b", 2).into());
        self.port.request(Get("a"));
        self.port.request(Get("zzz"));
    }
}

impl RequireEvent<Kv, Value> for Client {
    fn handle(&mut self, _ctx: &mut Context<Self>, Value(v): Value) {
        self.values.push(v);
    }
}

impl RequireEvent<Kv, Changed> for Client {
    fn handle(&mut self, _ctx: &mut Context<Self>, Changed(key): Changed) {
        self.changes.push(key);
    }
}

subscribe!(Client: Require<Kv> { Value, Changed });

/// Watches changes only: it has no handler for values.
struct Watcher {
    _port: RequiredPort<Kv>,
    changes: Vec<&'static str>,
}

impl ComponentDefinition for Watcher {}

impl RequireEvent<Kv, Changed> for Watcher {
    fn handle(&mut self, _ctx: &mut Context<Self>, Changed(key): Changed) {
        self.changes.push(key);
    }
}

subscribe!(Watcher: Require<Kv> { Changed });

/// The single-enum form, on the same port: sees every indication.
struct Everything {
    _port: RequiredPort<Kv>,
    seen: Vec<String>,
}

impl ComponentDefinition for Everything {}

impl Require<Kv> for Everything {
    fn handle(&mut self, _ctx: &mut Context<Self>, indication: KvIndication) {
        self.seen.push(format!("{indication:?}"));
    }
}

#[test]
fn each_event_type_goes_to_its_own_handler() {
    let sim = Simulation::new(1);
    let store = sim.create(|s| Store { port: s.provided(), data: Vec::new() });
    let client = sim.create(|s| Client { port: s.required(), values: vec![], changes: vec![] });
    connect(&store.provided::<Kv>(), &client.required::<Kv>());
    store.start();
    client.start();
    sim.run_until_quiescent(WAIT);
    assert_eq!(client.on_definition(|c| c.values.clone()), Some(vec![Some(1), None]));
    assert_eq!(client.on_definition(|c| c.changes.clone()), Some(vec!["a", "b"]));
}

#[test]
fn a_component_receives_only_the_event_types_it_subscribed_to() {
    let sim = Simulation::new(2);
    sim.enable_trace();
    let store = sim.create(|s| Store { port: s.provided(), data: Vec::new() });
    let client = sim.create(|s| Client { port: s.required(), values: vec![], changes: vec![] });
    let watcher = sim.create(|s| Watcher { _port: s.required(), changes: vec![] });
    let everything = sim.create(|s| Everything { _port: s.required(), seen: vec![] });
    connect(&store.provided::<Kv>(), &client.required::<Kv>());
    connect(&store.provided::<Kv>(), &watcher.required::<Kv>());
    connect(&store.provided::<Kv>(), &everything.required::<Kv>());
    start_all(&[&store, &client, &watcher, &everything]);
    // Values are answers to the client alone; to see a value go down every channel, trigger one.
    store.on_definition(|s| s.port.trigger(Value(Some(9)).into()));
    sim.run_until_quiescent(WAIT);
    assert_eq!(watcher.on_definition(|w| w.changes.clone()), Some(vec!["a", "b"]));
    assert_eq!(everything.on_definition(|e| e.seen.len()), Some(3), "2 changes and the value");
    // The watcher handled exactly its two changes: the value never reached its queue.
    let watcher_port_events = sim
        .take_trace()
        .iter()
        .filter(|line| line.contains(&format!(" {} ", watcher.id())) && line.contains("Kv"))
        .count();
    assert_eq!(watcher_port_events, 2);
}

/// Subscribing to a port whose events are not an enum: the type is its own only case.
struct PlainPort;

impl Port for PlainPort {
    type Request = u64;
    type Indication = ();
}

struct Adder {
    _port: ProvidedPort<PlainPort>,
    total: u64,
}

impl ComponentDefinition for Adder {}

impl ProvideEvent<PlainPort, u64> for Adder {
    fn handle(&mut self, _ctx: &mut Context<Self>, n: u64) {
        self.total += n;
    }
}

subscribe!(Adder: Provide<PlainPort> { u64 });

struct Feeder {
    port: RequiredPort<PlainPort>,
}

impl ComponentDefinition for Feeder {
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        for n in 1..=4 {
            self.port.trigger(n);
        }
    }
}

impl Require<PlainPort> for Feeder {
    fn handle(&mut self, _ctx: &mut Context<Self>, _: ()) {}
}

#[test]
fn subscribe_works_on_a_port_whose_events_are_not_an_enum() {
    let sim = Simulation::new(3);
    let adder = sim.create(|s| Adder { _port: s.provided(), total: 0 });
    let feeder = sim.create(|s| Feeder { port: s.required() });
    connect(&adder.provided::<PlainPort>(), &feeder.required::<PlainPort>());
    adder.start();
    feeder.start();
    sim.run_until_quiescent(WAIT);
    assert_eq!(adder.on_definition(|a| a.total), Some(10));
}

#[test]
fn an_ask_for_a_type_the_provider_does_not_handle_is_dropped_at_once() {
    /// Handles puts only.
    struct PutsOnly {
        _port: ProvidedPort<Kv>,
    }
    impl ComponentDefinition for PutsOnly {}
    impl ProvideEvent<Kv, Put> for PutsOnly {
        fn handle(&mut self, _ctx: &mut Context<Self>, _put: Put) {}
    }
    subscribe!(PutsOnly: Provide<Kv> { Put });

    let sim = Simulation::new(4);
    let store = sim.create(|s| PutsOnly { _port: s.provided() });
    store.start();
    let mut pending = store.provided::<Kv>().ask(Get("a"));
    assert_eq!(sim.run_until_answered(&mut pending, WAIT), Err(AskError::Dropped));
}
