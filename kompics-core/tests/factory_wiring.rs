//! Channels made while a component is built: a factory connects the component's own ports to
//! its children, and a restart (which runs the factory and `on_init` again on the same ports)
//! does not connect them a second time.

mod common;

use std::time::Duration;

use common::*;
use kompics_core::*;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Broken;

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("broken")
    }
}

impl std::error::Error for Broken {}

/// Requires `Numbers` from its own `Echo` child, connected by its factory; sends `Req(n)` for
/// each `n` in `sends` when it starts, and fails on receiving `Ind(13)`.
struct Client {
    port: RequiredPort<Numbers>,
    sends: Vec<u64>,
    seen: Vec<u64>,
}

impl ComponentDefinition for Client {
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        for n in std::mem::take(&mut self.sends) {
            self.port.trigger(Req(n));
        }
    }
}

impl Require<Numbers> for Client {
    fn handle(&mut self, ctx: &mut Context<Self>, Ind(n): Ind) {
        if n == 13 {
            ctx.fail(Broken);
            return;
        }
        self.seen.push(n);
    }
}

fn client(s: &mut Setup<Client>, sends: Vec<u64>) -> Client {
    let echo = s.create(Echo::new);
    let port = s.required::<Numbers>();
    connect(&echo.provided::<Numbers>(), &port.share());
    Client { port, sends, seen: Vec::new() }
}

/// Creates one `Client` as its child, in `on_init`, and restarts it when it fails.
struct Parent {
    child: Option<Component<Client>>,
}

impl ComponentDefinition for Parent {
    fn on_init(&mut self, ctx: &mut Context<Self>) {
        self.child = Some(ctx.create(|s| client(s, Vec::new())));
    }

    fn on_fault(&mut self, _ctx: &mut Context<Self>, _fault: &Fault) -> FaultAction {
        FaultAction::Restart
    }
}

#[test]
fn a_factory_connects_the_components_own_port_to_a_child() {
    let sim = Simulation::new(1);
    let client = sim.create(|s| client(s, vec![1, 2]));
    client.start();
    sim.run_until_quiescent(WAIT);
    assert_eq!(client.on_definition(|c| c.seen.clone()), Some(vec![1, 2]));
}

#[test]
fn a_factory_connects_the_components_own_port_on_the_threaded_runtime() {
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let client = rt.create(|s| client(s, vec![7]));
    client.start();
    let deadline = std::time::Instant::now() + WAIT;
    while client.on_definition(|c| c.seen.len()) != Some(1) {
        assert!(std::time::Instant::now() < deadline, "no answer through the factory's channel");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(client.on_definition(|c| c.seen.clone()), Some(vec![7]));
    rt.shutdown();
}

#[test]
fn a_channel_disconnected_in_the_factory_stays_disconnected() {
    let sim = Simulation::new(2);
    let client = sim.create(|s| {
        let echo = s.create(Echo::new);
        let port = s.required::<Numbers>();
        let channel = connect(&echo.provided::<Numbers>(), &port.share());
        assert!(channel.is_connected(), "connected as soon as connect returns");
        channel.disconnect();
        Client { port, sends: vec![1], seen: Vec::new() }
    });
    client.start();
    sim.run_until_quiescent(WAIT);
    assert_eq!(client.on_definition(|c| c.seen.clone()), Some(vec![]));
}

#[test]
fn restarting_a_component_does_not_double_the_channels_its_factory_made() {
    let sim = Simulation::new(3);
    let parent = sim.create(|_| Parent { child: None });
    parent.start();
    sim.run_until_quiescent(WAIT);
    let client = parent.on_definition(|p| p.child.clone()).flatten().expect("created");
    // Req(13) comes back as Ind(13), which fails the client; its parent restarts it, and the
    // factory runs again on the same ports and the same child.
    client.on_definition(|c| c.port.trigger(Req(13)));
    sim.run_until_quiescent(WAIT);
    assert_eq!(client.state(), LifecycleState::Active, "restarted");
    client.on_definition(|c| c.port.trigger(Req(5)));
    sim.run_until_quiescent(WAIT);
    assert_eq!(client.on_definition(|c| c.seen.clone()), Some(vec![5]), "one answer, not two");
}

/// Connects its own required port to its factory-made child in `on_init`, which runs again
/// after a restart.
struct LateWired {
    echo: Component<Echo>,
    port: RequiredPort<Numbers>,
    seen: Vec<u64>,
}

impl ComponentDefinition for LateWired {
    fn on_init(&mut self, _ctx: &mut Context<Self>) {
        connect(&self.echo.provided::<Numbers>(), &self.port.share());
    }
}

impl Require<Numbers> for LateWired {
    fn handle(&mut self, ctx: &mut Context<Self>, Ind(n): Ind) {
        if n == 13 {
            ctx.fail(Broken);
            return;
        }
        self.seen.push(n);
    }
}

#[test]
fn restarting_a_component_does_not_double_the_channels_its_on_init_made_to_its_structure() {
    struct Parent {
        child: Option<Component<LateWired>>,
    }
    impl ComponentDefinition for Parent {
        fn on_init(&mut self, ctx: &mut Context<Self>) {
            self.child = Some(ctx.create(|s| LateWired {
                echo: s.create(Echo::new),
                port: s.required(),
                seen: Vec::new(),
            }));
        }
        fn on_fault(&mut self, _ctx: &mut Context<Self>, _fault: &Fault) -> FaultAction {
            FaultAction::Restart
        }
    }
    let sim = Simulation::new(4);
    let parent = sim.create(|_| Parent { child: None });
    parent.start();
    sim.run_until_quiescent(WAIT);
    let child = parent.on_definition(|p| p.child.clone()).flatten().expect("created");
    child.on_definition(|c| c.port.trigger(Req(13)));
    sim.run_until_quiescent(WAIT);
    assert_eq!(child.state(), LifecycleState::Active, "restarted");
    child.on_definition(|c| c.port.trigger(Req(5)));
    sim.run_until_quiescent(WAIT);
    assert_eq!(child.on_definition(|c| c.seen.clone()), Some(vec![5]), "one answer, not two");
}
