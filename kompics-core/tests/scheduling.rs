//! The threaded scheduler: bounded batches (fairness) and a ping-pong pair kept on one worker.

mod common;

use std::thread::ThreadId;
use std::time::Duration;

use common::*;
use kompics_core::*;

/// Answers each request and records which thread handled it.
struct Ponger {
    port: ProvidedPort<Numbers>,
    threads: Vec<ThreadId>,
}

impl ComponentDefinition for Ponger {}

impl Provide<Numbers> for Ponger {
    fn handle(&mut self, _ctx: &mut Context<Self>, Req(n): Req) {
        self.threads.push(std::thread::current().id());
        self.port.trigger(Ind(n));
    }
}

/// Sends the next request on each answer (pipeline 1), recording threads.
struct Pinger {
    port: RequiredPort<Numbers>,
    total: u64,
    threads: Vec<ThreadId>,
    done: crossbeam_channel::Sender<()>,
}

impl ComponentDefinition for Pinger {
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        self.port.trigger(Req(0));
    }
}

impl Require<Numbers> for Pinger {
    fn handle(&mut self, _ctx: &mut Context<Self>, Ind(n): Ind) {
        self.threads.push(std::thread::current().id());
        if n + 1 < self.total {
            self.port.trigger(Req(n + 1));
        } else {
            let _ = self.done.send(());
        }
    }
}

fn switches(threads: &[ThreadId]) -> usize {
    threads.windows(2).filter(|w| w[0] != w[1]).count()
}

#[test]
fn a_ping_pong_pair_stays_on_one_worker() {
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let (tx, rx) = crossbeam_channel::unbounded();
    const N: u64 = 20_000;
    let ponger = rt.create(|s| Ponger { port: s.provided(), threads: Vec::new() });
    let pinger = rt.create(move |s| Pinger {
        port: s.required(),
        total: N,
        threads: Vec::new(),
        done: tx.clone(),
    });
    connect(&ponger.provided::<Numbers>(), &pinger.required::<Numbers>());
    ponger.start();
    pinger.start();
    rx.recv_timeout(Duration::from_secs(30)).expect("finished");
    let a = pinger.on_definition(|p| p.threads.clone()).unwrap();
    let b = ponger.on_definition(|p| p.threads.clone()).unwrap();
    // Interleave: each ping handled, then its pong. A pair on one worker switches thread only
    // when it first settles; a scheduler that woke another worker per message would switch
    // thousands of times.
    let mut both = Vec::new();
    for (x, y) in b.iter().zip(&a) {
        both.push(*x);
        both.push(*y);
    }
    let s = switches(&both);
    println!("thread switches over {} handled events: {s}", both.len());
    assert!(s <= 20, "the pair moved between threads {s} times");
    rt.shutdown();
}

/// Handles a flood of requests, noting how many it had handled when the other component ran.
struct Flooded {
    _port: ProvidedPort<Numbers>,
    handled: u64,
}

impl ComponentDefinition for Flooded {}

impl Provide<Numbers> for Flooded {
    fn handle(&mut self, _ctx: &mut Context<Self>, _req: Req) {
        self.handled += 1;
    }
}

#[test]
fn a_busy_component_yields_its_worker_after_a_batch() {
    // One worker, so the two components can only interleave through the batch bound.
    const FLOOD: u64 = 200_000;
    let rt = Runtime::new(RuntimeConfig::default().workers(1).batch_events(32));
    let flooded = rt.create(|s| Flooded { _port: s.provided(), handled: 0 });
    let feeder = rt.create(Sink::new);
    connect(&flooded.provided::<Numbers>(), &feeder.required::<Numbers>());
    feeder.on_definition(|s| (0..FLOOD).for_each(|i| s.port.trigger(Req(i))));
    let (tx, rx) = crossbeam_channel::unbounded();
    let echo = rt.create(Echo::new);
    let f2 = flooded.clone();
    let probe = rt.create(move |s| {
        let f2 = f2.clone();
        let tx = tx.clone();
        Probe { port: s.required(), flooded: f2, tx }
    });
    connect(&echo.provided::<Numbers>(), &probe.required::<Numbers>());
    echo.start();
    probe.start();
    // Start the flooded component and, right behind it, ask the echo for an answer.
    flooded.start();
    probe.on_definition(|p| p.port.trigger(Req(1)));
    let handled_then = rx.recv_timeout(Duration::from_secs(30)).expect("the probe got its answer");
    println!("the flooded component had handled {handled_then} of {FLOOD} when the probe ran");
    assert!(handled_then < FLOOD, "the probe waited for the whole flood");
    rt.shutdown();
}

/// On its answer, reports how far the flooded component had got. It reads the flooded
/// component's progress through an atomic-free snapshot taken by `on_definition` from the test
/// thread, so it sends a marker and the test reads the count.
struct Probe {
    port: RequiredPort<Numbers>,
    flooded: Component<Flooded>,
    tx: crossbeam_channel::Sender<u64>,
}

impl ComponentDefinition for Probe {}

impl Require<Numbers> for Probe {
    fn handle(&mut self, _ctx: &mut Context<Self>, _ind: Ind) {
        // With one worker the flooded component is not running now, so this does not block.
        let handled = self.flooded.on_definition(|f| f.handled).unwrap_or(0);
        let _ = self.tx.send(handled);
    }
}

#[test]
fn an_endless_ping_pong_pair_does_not_starve_other_components() {
    // One worker; the pair keeps itself ready forever through the LIFO slot.
    let rt = Runtime::new(RuntimeConfig::default().workers(1));
    let (never_tx, _never_rx) = crossbeam_channel::unbounded();
    let ponger = rt.create(|s| Ponger { port: s.provided(), threads: Vec::new() });
    let pinger = rt.create(move |s| Pinger {
        port: s.required(),
        total: u64::MAX,
        threads: Vec::new(),
        done: never_tx.clone(),
    });
    connect(&ponger.provided::<Numbers>(), &pinger.required::<Numbers>());
    ponger.start();
    pinger.start();
    std::thread::sleep(Duration::from_millis(20));
    let (tx, rx) = crossbeam_channel::unbounded();
    let echo = rt.create(Echo::new);
    let sink = rt.create(move |s| Sink::with_out(s, tx.clone()));
    connect(&echo.provided::<Numbers>(), &sink.required::<Numbers>());
    echo.start();
    sink.start();
    sink.on_definition(|s| s.port.trigger(Req(42)));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).expect("answered despite the busy pair"),
        42
    );
    pinger.kill();
    ponger.kill();
    rt.shutdown();
}
