//! Supervision: a panic is caught, the component stops, its parent decides; nothing else stops.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kompics_core::*;
use parking_lot::Mutex;

const QUIET: Duration = Duration::from_secs(10);

/// Panics on request 13; counts the requests it handled since it was (re)built.
struct Fragile {
    port: ProvidedPort<Numbers>,
    handled: Vec<u64>,
    generation: u64,
}

static GENERATIONS: AtomicU64 = AtomicU64::new(0);

impl Fragile {
    fn new(s: &mut Setup<Fragile>) -> Fragile {
        Fragile {
            port: s.provided(),
            handled: Vec::new(),
            generation: GENERATIONS.fetch_add(1, Ordering::SeqCst),
        }
    }
}

impl ComponentDefinition for Fragile {}

impl Provide<Numbers> for Fragile {
    fn handle(&mut self, _ctx: &mut Context<Self>, Req(n): Req) {
        if n == 13 {
            panic!("unlucky request {n}");
        }
        self.handled.push(n);
        self.port.trigger(Ind(n));
    }
}

/// Creates a `Fragile` child, answers faults with a fixed action and records them.
struct Supervisor {
    action: FaultAction,
    faults: Arc<Mutex<Vec<Fault>>>,
    child: Option<Component<Fragile>>,
    replacement: Option<Component<Fragile>>,
}

impl ComponentDefinition for Supervisor {
    fn on_init(&mut self, ctx: &mut Context<Self>) {
        self.child = Some(ctx.create(Fragile::new));
    }

    fn on_fault(&mut self, ctx: &mut Context<Self>, fault: &Fault) -> FaultAction {
        self.faults.lock().push(fault.clone());
        if self.action == FaultAction::Destroy {
            // Replace: a new child in place of the destroyed one.
            self.replacement = Some(ctx.create(Fragile::new));
        }
        self.action
    }
}

type Faults = Arc<Mutex<Vec<Fault>>>;

fn supervised(
    sim: &Simulation,
    action: FaultAction,
) -> (Component<Supervisor>, Faults, Component<Fragile>, Component<Sink>) {
    let faults = Arc::new(Mutex::new(Vec::new()));
    let f = faults.clone();
    let sup = sim.create(move |_| Supervisor {
        action,
        faults: f.clone(),
        child: None,
        replacement: None,
    });
    sim.run_until_quiescent(QUIET);
    let child = sup.on_definition(|s| s.child.clone().unwrap()).unwrap();
    let sink = sim.create(Sink::new);
    connect(&child.provided::<Numbers>(), &sink.required::<Numbers>());
    sup.start();
    sink.start();
    sim.run_until_quiescent(QUIET);
    (sup, faults, child, sink)
}

#[test]
fn a_panic_stops_the_component_and_reaches_its_parent() {
    let sim = Simulation::new(1);
    let (sup, faults, child, sink) = supervised(&sim, FaultAction::Stop);
    sink.on_definition(|s| [1, 13, 2].iter().for_each(|&n| s.port.trigger(Req(n))));
    sim.run_until_quiescent(QUIET);
    assert_eq!(child.state(), LifecycleState::Faulty);
    assert_eq!(sup.state(), LifecycleState::Active, "the supervisor keeps running");
    let faults = faults.lock().clone();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].component, child.id());
    assert!(faults[0].message.contains("unlucky request 13"), "{}", faults[0].message);
    assert!(faults[0].type_name.contains("Fragile"));
    // Request 2 is kept, not lost, while the child is faulty.
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some(vec![1]));
    assert!(sim.faults().is_empty(), "the supervisor handled it");
}

#[test]
fn restart_rebuilds_fresh_state_and_keeps_channels_and_queued_events() {
    let sim = Simulation::new(2);
    let (_sup, faults, child, sink) = supervised(&sim, FaultAction::Restart);
    let gen_before = child.on_definition(|c| c.generation).unwrap();
    sink.on_definition(|s| [1, 13, 2, 3].iter().for_each(|&n| s.port.trigger(Req(n))));
    sim.run_until_quiescent(QUIET);
    assert_eq!(faults.lock().len(), 1);
    assert_eq!(child.state(), LifecycleState::Active);
    let (handled, generation) = child.on_definition(|c| (c.handled.clone(), c.generation)).unwrap();
    assert!(generation > gen_before, "rebuilt from the factory");
    assert_eq!(handled, vec![2, 3], "fresh state; the queued requests were handled after restart");
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some(vec![1, 2, 3]), "the channel survived");
}

#[test]
fn destroy_kills_the_child_and_the_parent_can_replace_it() {
    let sim = Simulation::new(3);
    let (sup, _faults, child, sink) = supervised(&sim, FaultAction::Destroy);
    sink.on_definition(|s| s.port.trigger(Req(13)));
    sim.run_until_quiescent(QUIET);
    assert_eq!(child.state(), LifecycleState::Destroyed);
    let replacement = sup.on_definition(|s| s.replacement.clone().unwrap()).unwrap();
    connect(&replacement.provided::<Numbers>(), &sink.required::<Numbers>());
    replacement.start();
    sink.on_definition(|s| s.port.trigger(Req(5)));
    sim.run_until_quiescent(QUIET);
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some(vec![5]));
}

/// A supervisor of supervisors: records faults and stops the failed child.
struct Root {
    faults: Arc<Mutex<Vec<Fault>>>,
    middle: Option<Component<Supervisor>>,
}

impl ComponentDefinition for Root {
    fn on_init(&mut self, ctx: &mut Context<Self>) {
        let f = Arc::new(Mutex::new(Vec::new()));
        self.middle = Some(ctx.create(move |_| Supervisor {
            action: FaultAction::Escalate,
            faults: f.clone(),
            child: None,
            replacement: None,
        }));
    }
    fn on_fault(&mut self, _ctx: &mut Context<Self>, fault: &Fault) -> FaultAction {
        self.faults.lock().push(fault.clone());
        FaultAction::Stop
    }
}

#[test]
fn escalate_fails_the_parent_with_the_child_fault_as_cause() {
    let sim = Simulation::new(4);
    let faults = Arc::new(Mutex::new(Vec::new()));
    let f = faults.clone();
    let root = sim.create(move |_| Root { faults: f.clone(), middle: None });
    sim.run_until_quiescent(QUIET);
    root.start();
    sim.run_until_quiescent(QUIET);
    let middle = root.on_definition(|r| r.middle.clone().unwrap()).unwrap();
    let child = middle.on_definition(|m| m.child.clone().unwrap()).unwrap();
    let sink = sim.create(Sink::new);
    connect(&child.provided::<Numbers>(), &sink.required::<Numbers>());
    sink.start();
    sink.on_definition(|s| s.port.trigger(Req(13)));
    sim.run_until_quiescent(QUIET);
    assert_eq!(child.state(), LifecycleState::Faulty);
    assert_eq!(middle.state(), LifecycleState::Faulty);
    assert_eq!(root.state(), LifecycleState::Active);
    let faults = faults.lock().clone();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].component, middle.id());
    assert_eq!(faults[0].root_cause().component, child.id());
    assert!(faults[0].to_string().contains("unlucky request 13"));
}

#[test]
fn a_fault_without_a_parent_goes_to_the_runtime_handler() {
    let sim = Simulation::new(5);
    let c = sim.create(Fragile::new);
    let sink = sim.create(Sink::new);
    connect(&c.provided::<Numbers>(), &sink.required::<Numbers>());
    c.start();
    sink.start();
    sink.on_definition(|s| s.port.trigger(Req(13)));
    sim.run_until_quiescent(QUIET);
    let faults = sim.faults();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].component, c.id());

    let (tx, rx) = crossbeam_channel::unbounded();
    let rt = Runtime::new(RuntimeConfig::default().workers(2).on_fault(move |f| {
        let _ = tx.send(f.clone());
    }));
    let c = rt.create(Fragile::new);
    let sink = rt.create(Sink::new);
    connect(&c.provided::<Numbers>(), &sink.required::<Numbers>());
    c.start();
    sink.start();
    sink.on_definition(|s| s.port.trigger(Req(13)));
    let fault = rx.recv_timeout(Duration::from_secs(10)).expect("fault reported");
    assert_eq!(fault.component, c.id());
    rt.shutdown();
}

/// Counts pongs and reports when it has all of them.
struct Counter {
    port: RequiredPort<Numbers>,
    expected: u64,
    received: u64,
    done: crossbeam_channel::Sender<()>,
}

impl ComponentDefinition for Counter {
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        for i in 0..self.expected {
            self.port.trigger(Req(i));
        }
    }
}

impl Require<Numbers> for Counter {
    fn handle(&mut self, _ctx: &mut Context<Self>, Ind(n): Ind) {
        assert_eq!(n, self.received, "in order");
        self.received += 1;
        if self.received == self.expected {
            let _ = self.done.send(());
        }
    }
}

#[test]
fn one_faulty_component_among_many_busy_ones_loses_nothing_else() {
    let (fault_tx, fault_rx) = crossbeam_channel::unbounded();
    let rt = Runtime::new(RuntimeConfig::default().workers(2).on_fault(move |f| {
        let _ = fault_tx.send(f.clone());
    }));
    const PAIRS: usize = 16;
    const N: u64 = 20_000;
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let mut keep = Vec::new();
    for _ in 0..PAIRS {
        let echo = rt.create(Echo::new);
        let tx = done_tx.clone();
        let counter = rt.create(move |s| Counter {
            port: s.required(),
            expected: N,
            received: 0,
            done: tx.clone(),
        });
        connect(&echo.provided::<Numbers>(), &counter.required::<Numbers>());
        echo.start();
        keep.push((echo, counter));
    }
    // The faulty one, fed requests that make it panic, in the middle of the traffic.
    let fragile = rt.create(Fragile::new);
    let feeder = rt.create(Sink::new);
    connect(&fragile.provided::<Numbers>(), &feeder.required::<Numbers>());
    fragile.start();
    feeder.start();
    for (_, counter) in &keep {
        counter.start();
    }
    feeder.on_definition(|s| {
        (0..100).for_each(|i| s.port.trigger(Req(if i == 50 { 13 } else { i })))
    });
    for _ in 0..PAIRS {
        done_rx.recv_timeout(Duration::from_secs(30)).expect("every busy pair finished");
    }
    let fault = fault_rx.recv_timeout(Duration::from_secs(10)).expect("the fault was reported");
    assert_eq!(fault.component, fragile.id());
    assert!(fault_rx.try_recv().is_err(), "exactly one fault");
    assert_eq!(fragile.state(), LifecycleState::Faulty);
    for (echo, counter) in &keep {
        assert_eq!(echo.on_definition(|e| e.seen.len() as u64), Some(N));
        assert_eq!(counter.on_definition(|c| c.received), Some(N));
    }
    rt.shutdown();
}
