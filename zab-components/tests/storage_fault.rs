//! A storage error stops the Zab instance through `ctx.fail`: its supervisor gets a `Fault`
//! carrying the typed [`ZabFault`] (and through it the storage's `StorageError`), not a panic
//! string, and nothing after the failed write is carried out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kompics_core::*;
use kompics_net::sim::{SimNet, SimNetConfig};
use kompics_net::{Network, NodeAddr, TcpConfig, TcpNetwork};
use zab_components::component::*;
use zab_components::failure_detector::*;
use zab_components::protocol::Entry;
use zab_components::storage::{SimDisk, StorageError};
use zab_components::testing::{Hooked, StorageHooks};

/// Hooks that fail a [`SimDisk`]'s appends (or recovery) once `fail_appends`
/// (`fail_recover`) is set; driven from a log thread if `log_thread`.
struct Failing {
    fail_appends: Arc<AtomicBool>,
    fail_recover: bool,
    log_thread: bool,
}

fn full() -> StorageError {
    let enospc = std::io::Error::from(std::io::ErrorKind::StorageFull);
    StorageError::io(std::path::Path::new("wal-0"), "append to", &enospc)
}

fn bad_checksum() -> StorageError {
    StorageError::Corrupt {
        path: "wal-0".into(),
        offset: Some(4096),
        problem: "bad checksum".into(),
    }
}

impl StorageHooks for Failing {
    fn recover(&mut self) -> Result<(), StorageError> {
        if self.fail_recover {
            return Err(bad_checksum());
        }
        Ok(())
    }

    fn append(&mut self, _entries: &[Entry]) -> Result<(), StorageError> {
        if self.fail_appends.load(Ordering::SeqCst) {
            return Err(full());
        }
        Ok(())
    }

    fn log_thread(&self) -> Option<bool> {
        Some(self.log_thread)
    }
}

/// Records what the instance tells it.
#[derive(Default)]
struct App {
    ab: Option<RequiredPort<AtomicBroadcast>>,
    status: Option<ZabStatus>,
    committed: Vec<u64>,
}

impl ComponentDefinition for App {}

impl Require<AtomicBroadcast> for App {
    fn handle(&mut self, _ctx: &mut Context<Self>, event: AbEvent) {
        match event {
            AbEvent::Status(s) => self.status = Some(s),
            AbEvent::Committed { tag, .. } => self.committed.push(tag),
            _ => {}
        }
    }
}

struct Node {
    sim: Simulation,
    zab: Component<ZabComponent>,
    app: Component<App>,
    fail_appends: Arc<AtomicBool>,
}

/// A one-member group (it leads alone) on a failing disk.
fn node(seed: u64, fail_recover: bool) -> Node {
    let sim = Simulation::new(seed);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let me = NodeAddr(([10, 0, 0, 1], 5000).into());
    let config = ZabConfig::new(3, me, &[me]);
    let network = net.add_node(me).provided::<Network>();
    let system = sim.system();
    let fd = FailureDetector::create(&system, &network, me, FdConfig::default());
    let fail_appends = Arc::new(AtomicBool::new(false));
    let flag = fail_appends.clone();
    let disk = SimDisk::new();
    let zab = ZabComponent::create(&system, &network, &fd.provided(), config, move || {
        let hooks = Failing { fail_appends: flag.clone(), fail_recover, log_thread: false };
        Box::new(Hooked { inner: Box::new(disk.clone()), hooks })
    });
    let app = sim.create(|s| App { ab: Some(s.required()), ..App::default() });
    connect(&zab.provided::<AtomicBroadcast>(), &app.required::<AtomicBroadcast>());
    fd.start();
    app.start();
    zab.start();
    Node { sim, zab, app, fail_appends }
}

fn zab_fault(fault: &Fault) -> &ZabFault {
    fault.root_cause().error::<ZabFault>().unwrap_or_else(|| panic!("not a ZabFault: {fault}"))
}

#[test]
fn a_failed_append_stops_the_instance_and_the_supervisor_gets_the_storage_error() {
    let n = node(1, false);
    let leading = n.sim.run_until_cond(Duration::from_secs(10), || {
        matches!(n.app.on_definition(|a| a.status).flatten(), Some(ZabStatus::Leading { .. }))
    });
    assert!(leading, "a one-member group elects itself");
    // One proposal commits on a good disk.
    let propose = |tag: u64| {
        n.app.on_definition(|a| {
            let payload = vec![tag as u8];
            a.ab.as_mut().unwrap().trigger(AbRequest::Propose { tag, payload })
        });
    };
    propose(1);
    n.sim.run_for(Duration::from_secs(1));
    assert_eq!(n.app.on_definition(|a| a.committed.clone()), Some(vec![1]));
    assert!(n.sim.faults().is_empty());

    n.fail_appends.store(true, Ordering::SeqCst);
    propose(2);
    n.sim.run_for(Duration::from_secs(1));
    assert_eq!(n.zab.state(), LifecycleState::Faulty);
    let faults = n.sim.faults();
    assert_eq!(faults.len(), 1, "one fault: {faults:?}");
    assert_eq!(faults[0].component, n.zab.id());
    let fault = zab_fault(&faults[0]);
    assert!(matches!(fault, ZabFault::Storage { group: 3, .. }), "{fault:?}");
    // The component names the operation that failed; the storage's typed error is kept.
    let error = fault.storage_error().expect("a storage fault");
    assert_eq!(error, &full().during("append"));
    assert_eq!(error.to_string(), format!("append: {}", full()));
    assert!(matches!(error.root(), StorageError::Io { kind: std::io::ErrorKind::StorageFull, .. }));
    assert_eq!(faults[0].message, format!("zab group 3: storage {error}"));
    // Nothing after the failed write happened: the proposal was not committed.
    assert_eq!(n.app.on_definition(|a| a.committed.clone()), Some(vec![1]));
}

#[test]
fn a_storage_that_cannot_recover_fails_the_instance_before_it_starts() {
    let n = node(2, true);
    n.sim.run_for(Duration::from_secs(1));
    assert_eq!(n.zab.state(), LifecycleState::Faulty);
    let faults = n.sim.faults();
    assert_eq!(faults.len(), 1, "one fault, not a second one from on_start: {faults:?}");
    let fault = zab_fault(&faults[0]);
    assert_eq!(fault.storage_error(), Some(&bad_checksum()));
    // The instance never ran: no status reached the application.
    assert_eq!(n.app.on_definition(|a| a.status).flatten(), None);
}

/// On the threaded runtime, with the storage on a log thread: the write fails there, the
/// thread reports it, and the runtime's fault handler gets the typed error.
#[test]
fn a_write_failing_on_the_log_thread_reaches_the_fault_handler_typed() {
    let (tx, faults) = std::sync::mpsc::channel::<Fault>();
    let runtime = Runtime::new(RuntimeConfig::default().workers(2).on_fault(move |f| {
        let _ = tx.send(f.clone());
    }));
    let system = runtime.system();
    let net =
        TcpNetwork::create(&system, TcpConfig::new("127.0.0.1:0".parse().unwrap(), tcp_security()))
            .unwrap();
    let me = net.on_definition(|n| n.addr()).unwrap();
    let network = net.provided::<Network>();
    let fd = FailureDetector::create(&system, &network, me, FdConfig::default());
    // Only appends fail: the epochs are written, so the instance leads, then fails on the
    // first proposal.
    let fail_appends = Arc::new(AtomicBool::new(true));
    let disk = SimDisk::new();
    let config = ZabConfig::new(5, me, &[me]);
    let zab = ZabComponent::create(&system, &network, &fd.provided(), config, move || {
        let hooks =
            Failing { fail_appends: fail_appends.clone(), fail_recover: false, log_thread: true };
        Box::new(Hooked { inner: Box::new(disk.clone()), hooks })
    });
    let app = system.create(|s| App { ab: Some(s.required()), ..App::default() });
    connect(&zab.provided::<AtomicBroadcast>(), &app.required::<AtomicBroadcast>());
    net.start();
    fd.start();
    app.start();
    zab.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !matches!(app.on_definition(|a| a.status).flatten(), Some(ZabStatus::Leading { .. })) {
        assert!(std::time::Instant::now() < deadline, "a one-member group elects itself");
        std::thread::sleep(Duration::from_millis(5));
    }
    app.on_definition(|a| {
        let ab = a.ab.as_mut().unwrap();
        ab.trigger(AbRequest::Propose { tag: 1, payload: b"x".to_vec() })
    });
    let fault = faults.recv_timeout(Duration::from_secs(10)).expect("a fault");
    assert_eq!(fault.component, zab.id());
    let fault = zab_fault(&fault);
    assert!(matches!(fault, ZabFault::Storage { group: 5, .. }), "{fault:?}");
    let error = fault.storage_error().expect("a storage fault");
    assert_eq!(error.root(), &full(), "{error}");
    assert_eq!(app.on_definition(|a| a.committed.clone()), Some(vec![]));
}

/// The nodes' shared secret: sessions run over TLS, as in production.
fn tcp_security() -> kompics_net::PeerSecurity {
    kompics_net::PeerSecurity::shared_secret("zab-storage-fault", &[6; 32]).unwrap()
}
