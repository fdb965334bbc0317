//! Fallible handlers: `ctx.fail(error)` reaches the supervisor like a panic, with the typed
//! error in the fault, in the simulator and on the threaded runtime alike.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use crossbeam_channel::{unbounded, Sender};
use kompics_core::*;
use parking_lot::Mutex;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, PartialEq, Eq)]
struct DiskError {
    path: &'static str,
}

impl std::fmt::Display for DiskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write {}", self.path)
    }
}

impl std::error::Error for DiskError {}

/// Fails on request 13 with a `DiskError`, through `ok_or_fail`; echoes the others.
struct Disk {
    port: ProvidedPort<Numbers>,
    handled: Vec<u64>,
}

fn write(n: u64) -> Result<u64, DiskError> {
    if n == 13 {
        Err(DiskError { path: "/wal/13" })
    } else {
        Ok(n)
    }
}

impl ComponentDefinition for Disk {}

impl Provide<Numbers> for Disk {
    fn handle(&mut self, ctx: &mut Context<Self>, Req(n): Req) {
        let Some(n) = ctx.ok_or_fail(write(n)) else { return };
        self.handled.push(n);
        self.port.trigger(Ind(n));
    }
}

/// Creates a `Disk`, records faults, answers with a fixed action.
struct Guard {
    action: FaultAction,
    faults: Arc<Mutex<Vec<Fault>>>,
    told: Option<Sender<()>>,
    disk: Option<Component<Disk>>,
}

impl ComponentDefinition for Guard {
    fn on_fault(&mut self, _ctx: &mut Context<Self>, fault: &Fault) -> FaultAction {
        self.faults.lock().push(fault.clone());
        if let Some(t) = &self.told {
            let _ = t.send(());
        }
        self.action
    }
}

impl ExportProvided<Numbers> for Guard {}

fn guard(
    action: FaultAction,
    faults: Arc<Mutex<Vec<Fault>>>,
    told: Option<Sender<()>>,
) -> impl Fn(&mut Setup<Guard>) -> Guard + Send + Sync + 'static {
    move |s| {
        let disk = s.create(|s| Disk { port: s.provided(), handled: Vec::new() });
        s.export_provided(&disk.provided::<Numbers>());
        Guard { action, faults: faults.clone(), told: told.clone(), disk: Some(disk) }
    }
}

fn check_fault(fault: &Fault, disk: &Component<Disk>) {
    assert_eq!(fault.component, disk.id());
    assert_eq!(fault.message, "cannot write /wal/13");
    assert_eq!(fault.error::<DiskError>(), Some(&DiskError { path: "/wal/13" }));
    assert!(fault.error::<std::io::Error>().is_none(), "downcasts to its own type only");
    assert!(fault.to_string().contains("cannot write /wal/13"));
}

#[test]
fn a_failed_handler_stops_the_component_and_its_parent_gets_the_typed_error() {
    let sim = Simulation::new(1);
    let faults = Arc::new(Mutex::new(Vec::new()));
    let g = sim.create(guard(FaultAction::Stop, faults.clone(), None));
    let sink = sim.create(Sink::new);
    connect(&g.exported_provided::<Numbers>(), &sink.required::<Numbers>());
    g.start();
    sink.start();
    sink.on_definition(|s| {
        for n in [1, 13, 2, 3] {
            s.port.trigger(Req(n));
        }
    });
    sim.run_until_quiescent(WAIT);
    let disk = g.on_definition(|g| g.disk.clone().unwrap()).unwrap();
    assert_eq!(disk.state(), LifecycleState::Faulty);
    // Nothing after the failed event was handled: 2 and 3 wait for a restart.
    assert_eq!(disk.on_definition(|d| d.handled.clone()), Some(vec![1]));
    let faults = faults.lock().clone();
    assert_eq!(faults.len(), 1);
    check_fault(&faults[0], &disk);
    assert!(sim.faults().is_empty());
}

#[test]
fn a_restarted_component_handles_what_was_kept_and_can_fail_again() {
    let sim = Simulation::new(2);
    let faults = Arc::new(Mutex::new(Vec::new()));
    let g = sim.create(guard(FaultAction::Restart, faults.clone(), None));
    let sink = sim.create(Sink::new);
    connect(&g.exported_provided::<Numbers>(), &sink.required::<Numbers>());
    g.start();
    sink.start();
    sink.on_definition(|s| {
        for n in [1, 13, 2, 13, 3] {
            s.port.trigger(Req(n));
        }
    });
    sim.run_until_quiescent(WAIT);
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some(vec![1, 2, 3]));
    assert_eq!(faults.lock().len(), 2, "one fault per failure");
}

/// Fails twice in `on_start`: one fault is reported, the first.
struct FailTwice;

impl ComponentDefinition for FailTwice {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        ctx.fail(DiskError { path: "first" });
        ctx.fail(DiskError { path: "second" });
    }
}

#[test]
fn failing_twice_in_one_handler_reports_the_first_error_once() {
    let sim = Simulation::new(3);
    let c = sim.create(|_| FailTwice);
    c.start();
    sim.run_until_quiescent(WAIT);
    let faults = sim.faults();
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].error::<DiskError>().map(|e| e.path), Some("first"));
}

#[test]
fn escalated_failures_keep_the_error_in_the_root_cause() {
    let sim = Simulation::new(4);
    let faults = Arc::new(Mutex::new(Vec::new()));
    let g = sim.create(guard(FaultAction::Escalate, faults, None));
    g.start();
    let sink = sim.create(Sink::new);
    connect(&g.exported_provided::<Numbers>(), &sink.required::<Numbers>());
    sink.start();
    sink.on_definition(|s| s.port.trigger(Req(13)));
    sim.run_until_quiescent(WAIT);
    let top = sim.faults();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].component, g.id());
    assert!(top[0].error::<DiskError>().is_none(), "the parent did not fail with an error");
    let disk = g.on_definition(|g| g.disk.clone().unwrap()).unwrap();
    check_fault(top[0].root_cause(), &disk);
}

#[test]
fn fail_reaches_the_supervisor_on_the_threaded_runtime_too() {
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let faults = Arc::new(Mutex::new(Vec::new()));
    let (told_tx, told_rx) = unbounded();
    let g = rt.create(guard(FaultAction::Stop, faults.clone(), Some(told_tx)));
    let (tx, rx) = unbounded();
    let sink = rt.create(move |s| Sink::with_out(s, tx.clone()));
    connect(&g.exported_provided::<Numbers>(), &sink.required::<Numbers>());
    g.start();
    sink.start();
    sink.on_definition(|s| {
        for n in [1, 13, 2] {
            s.port.trigger(Req(n));
        }
    });
    assert_eq!(rx.recv_timeout(WAIT), Ok(1));
    told_rx.recv_timeout(WAIT).expect("the guard was told");
    let disk = g.on_definition(|g| g.disk.clone().unwrap()).unwrap();
    check_fault(&faults.lock()[0], &disk);
    assert_eq!(disk.on_definition(|d| d.handled.clone()), Some(vec![1]));
    rt.shutdown();
}

/// A top-level component failing reaches the runtime's fault handler with its error.
struct Lonely;

impl ComponentDefinition for Lonely {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        ctx.fail(DiskError { path: "/lonely" });
    }
}

#[test]
fn a_top_level_failure_reaches_the_runtime_fault_handler_with_its_error() {
    let (tx, rx) = unbounded();
    let rt = Runtime::new(RuntimeConfig::default().workers(1).on_fault(move |f| {
        let _ = tx.send(f.clone());
    }));
    let c = rt.create(|_| Lonely);
    c.start();
    let fault = rx.recv_timeout(WAIT).expect("a fault");
    assert_eq!(fault.error::<DiskError>().map(|e| e.path), Some("/lonely"));
    rt.shutdown();
}
