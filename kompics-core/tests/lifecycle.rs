//! Lifecycle: create, start, stop, kill; hooks; propagation to children; and the rule for events
//! that reach a component that is not running (see the `component` module docs).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use kompics_core::*;
use parking_lot::Mutex;

const QUIET: Duration = Duration::from_secs(10);

type Log = Arc<Mutex<Vec<String>>>;

/// Records its hooks and the requests it handles into a shared log, and creates `children`
/// children of its own kind in `on_init`.
struct Recorder {
    name: String,
    log: Log,
    port: ProvidedPort<Numbers>,
    children: usize,
    child_handles: Vec<Component<Recorder>>,
}

impl Recorder {
    fn factory(
        name: &str,
        log: &Log,
        children: usize,
    ) -> impl Fn(&mut Setup<Recorder>) -> Recorder {
        let (name, log) = (name.to_string(), log.clone());
        move |s| Recorder {
            name: name.clone(),
            log: log.clone(),
            port: s.provided(),
            children,
            child_handles: Vec::new(),
        }
    }

    fn note(&self, what: &str) {
        self.log.lock().push(format!("{} {what}", self.name));
    }
}

impl ComponentDefinition for Recorder {
    fn on_init(&mut self, ctx: &mut Context<Self>) {
        self.note("init");
        for i in 0..self.children {
            let name = format!("{}.{i}", self.name);
            let child = ctx.create(Recorder::factory(&name, &self.log, 0));
            self.child_handles.push(child);
        }
    }
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        self.note("start");
    }
    fn on_stop(&mut self, _ctx: &mut Context<Self>) {
        self.note("stop");
    }
    fn on_kill(&mut self, _ctx: &mut Context<Self>) {
        self.note("kill");
    }
}

impl Provide<Numbers> for Recorder {
    fn handle(&mut self, _ctx: &mut Context<Self>, Req(n): Req) {
        self.note(&format!("req {n}"));
        self.port.trigger(Ind(n));
    }
}

fn entries(log: &Log, prefix: &str) -> Vec<String> {
    log.lock().iter().filter(|l| l.starts_with(prefix)).cloned().collect()
}

#[test]
fn events_sent_before_start_are_handled_after_start_in_order() {
    let sim = Simulation::new(1);
    let log = Log::default();
    let rec = sim.create(Recorder::factory("r", &log, 0));
    let sink = sim.create(Sink::new);
    connect(&rec.provided::<Numbers>(), &sink.required::<Numbers>());
    sink.start();
    sink.on_definition(|s| (0..3).for_each(|i| s.port.trigger(Req(i))));
    sim.run_until_quiescent(QUIET);
    // Created but not started: init ran, the requests wait.
    assert_eq!(rec.state(), LifecycleState::Passive);
    assert_eq!(entries(&log, "r"), ["r init"]);
    rec.start();
    sim.run_until_quiescent(QUIET);
    assert_eq!(entries(&log, "r"), ["r init", "r start", "r req 0", "r req 1", "r req 2"]);
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some(vec![0, 1, 2]));
}

#[test]
fn a_stopped_component_keeps_its_events_until_started_again() {
    let sim = Simulation::new(2);
    let log = Log::default();
    let rec = sim.create(Recorder::factory("r", &log, 0));
    let sink = sim.create(Sink::new);
    connect(&rec.provided::<Numbers>(), &sink.required::<Numbers>());
    rec.start();
    sink.start();
    sim.run_until_quiescent(QUIET);
    rec.stop();
    sim.run_until_quiescent(QUIET);
    assert_eq!(rec.state(), LifecycleState::Passive);
    sink.on_definition(|s| s.port.trigger(Req(9)));
    sim.run_until_quiescent(QUIET);
    assert_eq!(entries(&log, "r"), ["r init", "r start", "r stop"]);
    rec.start();
    sim.run_until_quiescent(QUIET);
    assert_eq!(entries(&log, "r"), ["r init", "r start", "r stop", "r start", "r req 9"]);
    // Starting an active component does nothing.
    rec.start();
    sim.run_until_quiescent(QUIET);
    assert_eq!(entries(&log, "r").len(), 5);
}

#[test]
fn start_and_stop_propagate_to_children() {
    let sim = Simulation::new(3);
    let log = Log::default();
    let parent = sim.create(Recorder::factory("p", &log, 2));
    sim.run_until_quiescent(QUIET);
    let children = parent.on_definition(|p| p.child_handles.clone()).unwrap();
    assert_eq!(children.len(), 2);
    assert!(children.iter().all(|c| c.state() == LifecycleState::Passive));
    parent.start();
    sim.run_until_quiescent(QUIET);
    assert!(children.iter().all(|c| c.state() == LifecycleState::Active));
    assert_eq!(entries(&log, "p.0"), ["p.0 init", "p.0 start"]);
    parent.stop();
    sim.run_until_quiescent(QUIET);
    assert!(children.iter().all(|c| c.state() == LifecycleState::Passive));
    assert_eq!(entries(&log, "p.1"), ["p.1 init", "p.1 start", "p.1 stop"]);
}

#[test]
fn kill_runs_hooks_destroys_children_and_drops_later_events() {
    let sim = Simulation::new(4);
    let log = Log::default();
    let parent = sim.create(Recorder::factory("p", &log, 1));
    let sink = sim.create(Sink::new);
    let channel = connect(&parent.provided::<Numbers>(), &sink.required::<Numbers>());
    parent.start();
    sink.start();
    sim.run_until_quiescent(QUIET);
    let child = parent.on_definition(|p| p.child_handles[0].clone()).unwrap();
    let live_before = sim.live_components();
    parent.kill();
    sim.run_until_quiescent(QUIET);
    assert_eq!(parent.state(), LifecycleState::Destroyed);
    assert_eq!(child.state(), LifecycleState::Destroyed);
    assert_eq!(sim.live_components(), live_before - 2);
    assert_eq!(entries(&log, "p "), ["p init", "p start", "p stop", "p kill"]);
    assert_eq!(entries(&log, "p.0"), ["p.0 init", "p.0 start", "p.0 stop", "p.0 kill"]);
    // Its channels were disconnected: a request now goes nowhere.
    assert!(!channel.is_connected());
    sink.on_definition(|s| s.port.trigger(Req(1)));
    sim.run_until_quiescent(QUIET);
    assert!(entries(&log, "p req").is_empty());
    assert!(parent.on_definition(|_| ()).is_none(), "state dropped");
    // Killing twice is harmless.
    parent.kill();
    sim.run_until_quiescent(QUIET);
}

#[test]
fn events_already_queued_at_a_killed_component_are_dropped() {
    let sim = Simulation::new(5);
    let log = Log::default();
    let rec = sim.create(Recorder::factory("r", &log, 0));
    let sink = sim.create(Sink::new);
    connect(&rec.provided::<Numbers>(), &sink.required::<Numbers>());
    sink.start();
    sim.run_until_quiescent(QUIET);
    // Queued while passive, then killed before it ever started.
    sink.on_definition(|s| s.port.trigger(Req(1)));
    rec.kill();
    sim.run_until_quiescent(QUIET);
    assert_eq!(entries(&log, "r"), ["r init", "r kill"]);
    assert_eq!(sink.on_definition(|s| s.seen.len()), Some(0));
}

/// Stops itself from a handler.
struct SelfStopper {
    /// Never triggered on: the port exists (and receives requests) without it being used.
    _port: ProvidedPort<Numbers>,
    handled: u64,
}

impl ComponentDefinition for SelfStopper {}

impl Provide<Numbers> for SelfStopper {
    fn handle(&mut self, ctx: &mut Context<Self>, Req(n): Req) {
        self.handled += 1;
        if n == 0 {
            ctx.stop_self();
        }
        if n == 99 {
            ctx.kill_self();
        }
    }
}

#[test]
fn a_component_can_stop_and_kill_itself() {
    let sim = Simulation::new(6);
    let c = sim.create(|s| SelfStopper { _port: s.provided(), handled: 0 });
    let sink = sim.create(Sink::new);
    connect(&c.provided::<Numbers>(), &sink.required::<Numbers>());
    c.start();
    sink.start();
    sim.run_until_quiescent(QUIET);
    sink.on_definition(|s| s.port.trigger(Req(0)));
    sim.run_until_quiescent(QUIET);
    assert_eq!(c.state(), LifecycleState::Passive);
    c.start();
    sink.on_definition(|s| s.port.trigger(Req(99)));
    sim.run_until_quiescent(QUIET);
    assert_eq!(c.state(), LifecycleState::Destroyed);
}
