//! Port export: a parent offers a child's port as its own, wired from outside right after
//! `create`; the children made by its factory survive a restart of the parent.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use crossbeam_channel::unbounded;
use kompics_core::*;

const WAIT: Duration = Duration::from_secs(10);

/// A node made of one `Echo`, whose `Numbers` port it provides by exporting the child's.
struct EchoNode {
    echo: Component<Echo>,
}

impl ComponentDefinition for EchoNode {}
impl ExportProvided<Numbers> for EchoNode {}

fn echo_node(s: &mut Setup<EchoNode>) -> EchoNode {
    let echo = s.create(Echo::new);
    s.export_provided(&echo.provided::<Numbers>());
    EchoNode { echo }
}

#[test]
fn connecting_to_an_exported_port_connects_to_the_child() {
    let sim = Simulation::new(1);
    let node = sim.create(echo_node);
    // Wired right after create: the child and the exported port exist already.
    let sink = sim.create(Sink::new);
    connect(&node.exported_provided::<Numbers>(), &sink.required::<Numbers>());
    node.start();
    sink.start();
    sink.on_definition(|s| {
        s.port.trigger(Req(1));
        s.port.trigger(Req(2));
    });
    sim.run_until_quiescent(WAIT);
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some(vec![1, 2]));
    let echo = node.on_definition(|n| n.echo.clone()).unwrap();
    assert_eq!(echo.on_definition(|e| e.seen.clone()), Some(vec![1, 2]));
    assert_eq!(echo.state(), LifecycleState::Active, "started with its parent");
}

#[test]
fn a_composite_on_the_threaded_runtime_is_wired_from_outside_without_waiting() {
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    for round in 0..20u64 {
        let node = rt.create(echo_node);
        let (tx, rx) = unbounded();
        let sink = rt.create(move |s| Sink::with_out(s, tx.clone()));
        connect(&node.exported_provided::<Numbers>(), &sink.required::<Numbers>());
        sink.start();
        node.start();
        sink.on_definition(|s| s.port.trigger(Req(round)));
        assert_eq!(rx.recv_timeout(WAIT), Ok(round));
        node.kill();
        sink.kill();
    }
    rt.shutdown();
}

/// A required port exported from a child: the child is told what the outside provides.
struct SinkNode;

impl ComponentDefinition for SinkNode {}
impl ExportRequired<Numbers> for SinkNode {}

#[test]
fn an_exported_required_port_receives_the_outside_providers_indications() {
    let sim = Simulation::new(2);
    let (tx, rx) = unbounded();
    let node = sim.create(move |s: &mut Setup<SinkNode>| {
        let tx = tx.clone();
        let sink = s.create(move |s| Sink::with_out(s, tx.clone()));
        s.export_required(&sink.required::<Numbers>());
        SinkNode
    });
    let echo = sim.create(Echo::new);
    connect(&echo.provided::<Numbers>(), &node.exported_required::<Numbers>());
    node.start();
    echo.start();
    echo.on_definition(|e| e.port.trigger(Ind(7)));
    sim.run_until_quiescent(WAIT);
    assert_eq!(rx.try_recv(), Ok(7));
}

/// A grandchild's port, exported twice: by its parent, then by the grandparent.
struct Outer;
impl ComponentDefinition for Outer {}
impl ExportProvided<Numbers> for Outer {}

#[test]
fn an_exported_port_can_be_exported_again_up_the_hierarchy() {
    let sim = Simulation::new(3);
    let outer = sim.create(|s: &mut Setup<Outer>| {
        let inner = s.create(echo_node);
        s.export_provided(&inner.exported_provided::<Numbers>());
        Outer
    });
    let sink = sim.create(Sink::new);
    connect(&outer.exported_provided::<Numbers>(), &sink.required::<Numbers>());
    outer.start();
    sink.start();
    sink.on_definition(|s| s.port.trigger(Req(5)));
    sim.run_until_quiescent(WAIT);
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some(vec![5]));
}

#[derive(Debug)]
struct Broken(u64);

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "broken at {}", self.0)
    }
}

impl std::error::Error for Broken {}

static WORKERS_BUILT: AtomicU64 = AtomicU64::new(0);

/// Echoes requests, numbering them since it was built; fails on request 13.
struct Worker {
    port: ProvidedPort<Numbers>,
    handled: u64,
}

impl ComponentDefinition for Worker {}

impl Provide<Numbers> for Worker {
    fn handle(&mut self, ctx: &mut Context<Self>, Req(n): Req) {
        if n == 13 {
            ctx.fail(Broken(n));
            return;
        }
        self.handled += 1;
        self.port.trigger(Ind(self.handled));
    }
}

/// A composite of one `Worker`; escalates its faults (the default).
struct WorkerNode;
impl ComponentDefinition for WorkerNode {}
impl ExportProvided<Numbers> for WorkerNode {}

/// Supervises a `WorkerNode` and restarts it.
struct Top {
    restarts: Arc<AtomicU64>,
}

impl ComponentDefinition for Top {
    fn on_fault(&mut self, _ctx: &mut Context<Self>, fault: &Fault) -> FaultAction {
        assert_eq!(fault.root_cause().error::<Broken>().map(|b| b.0), Some(13));
        self.restarts.fetch_add(1, Ordering::SeqCst);
        FaultAction::Restart
    }
}

impl ExportProvided<Numbers> for Top {}

#[test]
fn restarting_a_composite_restarts_its_children_and_keeps_the_exported_channels() {
    let sim = Simulation::new(4);
    let restarts = Arc::new(AtomicU64::new(0));
    let r = restarts.clone();
    let top = sim.create(move |s: &mut Setup<Top>| {
        let node = s.create(|s: &mut Setup<WorkerNode>| {
            let worker = s.create(|s| {
                WORKERS_BUILT.fetch_add(1, Ordering::SeqCst);
                Worker { port: s.provided(), handled: 0 }
            });
            s.export_provided(&worker.provided::<Numbers>());
            WorkerNode
        });
        s.export_provided(&node.exported_provided::<Numbers>());
        Top { restarts: r.clone() }
    });
    let sink = sim.create(Sink::new);
    connect(&top.exported_provided::<Numbers>(), &sink.required::<Numbers>());
    top.start();
    sink.start();
    let built = WORKERS_BUILT.load(Ordering::SeqCst);
    sink.on_definition(|s| {
        s.port.trigger(Req(1));
        s.port.trigger(Req(2));
        s.port.trigger(Req(13));
        s.port.trigger(Req(3));
    });
    sim.run_until_quiescent(WAIT);
    assert_eq!(restarts.load(Ordering::SeqCst), 1);
    assert_eq!(WORKERS_BUILT.load(Ordering::SeqCst), built + 1, "the worker was rebuilt once");
    // Before the fault: answers 1, 2. After the restart, the fresh worker counts from 1 again,
    // and the channel to the exported port still works.
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some(vec![1, 2, 1]));
    sink.on_definition(|s| s.port.trigger(Req(4)));
    sim.run_until_quiescent(WAIT);
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some(vec![1, 2, 1, 2]));
    assert!(sim.faults().is_empty());
}

#[test]
fn killing_a_composite_kills_the_children_made_by_its_factory() {
    let sim = Simulation::new(5);
    let node = sim.create(echo_node);
    node.start();
    sim.run_until_quiescent(WAIT);
    assert_eq!(sim.live_components(), 2);
    node.kill();
    sim.run_until_quiescent(WAIT);
    assert_eq!(sim.live_components(), 0);
}
