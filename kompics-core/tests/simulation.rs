//! The deterministic simulator: same seed, same run; different seeds, different interleavings;
//! virtual time that jumps.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kompics_core::rand::Rng;
use kompics_core::*;

/// A client that sends numbered requests at random intervals and records the answers.
struct Client {
    port: RequiredPort<Numbers>,
    base: u64,
    sent: u64,
    answers: Vec<u64>,
}

impl ComponentDefinition for Client {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        self.send_later(ctx);
    }
}

impl Client {
    fn send_later(&mut self, ctx: &mut Context<Self>) {
        if self.sent == 20 {
            return;
        }
        let delay = Duration::from_micros(ctx.rng().random_range(0..3) * 100);
        ctx.schedule_once(delay, |c: &mut Client, ctx| {
            c.port.trigger(Req(c.base + c.sent));
            c.sent += 1;
            c.send_later(ctx);
        });
    }
}

impl Require<Numbers> for Client {
    fn handle(&mut self, _ctx: &mut Context<Self>, Ind(n): Ind) {
        self.answers.push(n);
    }
}

/// Runs 5 clients against one echo server; returns the trace hash and the server's order.
fn scenario(seed: u64) -> (u64, Vec<u64>, Vec<String>) {
    let sim = Simulation::new(seed);
    sim.enable_trace();
    let server = sim.create(Echo::new);
    let clients: Vec<_> = (0..5u64)
        .map(|i| {
            sim.create(move |s| Client {
                port: s.required(),
                base: i * 1000,
                sent: 0,
                answers: Vec::new(),
            })
        })
        .collect();
    for c in &clients {
        connect(&server.provided::<Numbers>(), &c.required::<Numbers>());
    }
    server.start();
    for c in &clients {
        c.start();
    }
    assert!(sim.run_until_quiescent(Duration::from_secs(60)), "seed {seed}: did not settle");
    for c in &clients {
        assert_eq!(c.on_definition(|c| c.answers.len()), Some(100), "seed {seed}");
    }
    let order = server.on_definition(|s| s.seen.clone()).unwrap();
    (sim.trace_hash(), order, sim.take_trace())
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in 0..100 {
        let (h1, o1, t1) = scenario(seed);
        let (h2, o2, t2) = scenario(seed);
        assert_eq!(t1, t2, "seed {seed}: traces differ");
        assert_eq!(h1, h2, "seed {seed}: trace hashes differ");
        assert_eq!(o1, o2, "seed {seed}");
    }
}

#[test]
fn different_seeds_give_different_interleavings() {
    let mut hashes = std::collections::BTreeSet::new();
    let mut orders = std::collections::BTreeSet::new();
    for seed in 0..100 {
        let (h, order, _) = scenario(seed);
        hashes.insert(h);
        orders.insert(order);
    }
    assert!(hashes.len() >= 95, "only {} distinct traces in 100 seeds", hashes.len());
    assert!(orders.len() >= 95, "only {} distinct server orders in 100 seeds", orders.len());
}

#[test]
fn the_trace_is_readable() {
    let (_, _, trace) = scenario(3);
    assert!(trace.iter().any(|l| l.contains("Init")));
    assert!(trace.iter().any(|l| l.contains("Numbers Req(")), "{:?}", &trace[..10]);
    assert!(trace.iter().any(|l| l.contains("Timeout(")));
}

/// Counts its periodic ticks.
struct Ticker {
    period: Duration,
    ticks: u64,
    last: Time,
}

impl ComponentDefinition for Ticker {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        let period = self.period;
        ctx.schedule_periodic(period, period, |t: &mut Ticker, ctx| {
            t.ticks += 1;
            t.last = ctx.now();
        });
    }
}

#[test]
fn one_simulated_hour_of_periodic_timers_across_100_components() {
    let sim = Simulation::new(11);
    let tickers: Vec<_> = (0..100)
        .map(|_| {
            sim.create(|_| Ticker { period: Duration::from_secs(1), ticks: 0, last: Time::ZERO })
        })
        .collect();
    for t in &tickers {
        t.start();
    }
    let wall = Instant::now();
    sim.run_for(Duration::from_secs(3600));
    let wall = wall.elapsed();
    println!("one simulated hour, 100 components, 360000 timer events: {wall:?} wall time");
    assert_eq!(sim.now(), Time::ZERO + Duration::from_secs(3600));
    for t in &tickers {
        let (ticks, last) = t.on_definition(|t| (t.ticks, t.last)).unwrap();
        assert_eq!(ticks, 3600);
        assert_eq!(last, Time::ZERO + Duration::from_secs(3600));
    }
    // Virtual time jumps: an hour of it cannot take an hour (nor a minute) of wall time.
    assert!(wall < Duration::from_secs(60), "virtual time did not jump: {wall:?}");
}

#[test]
fn the_same_components_run_on_both_runtimes() {
    // The Echo/Sink pair from the shared components, unchanged, on the simulator...
    let sim = Simulation::new(5);
    let echo = sim.create(Echo::new);
    let sink = sim.create(Sink::new);
    connect(&echo.provided::<Numbers>(), &sink.required::<Numbers>());
    echo.start();
    sink.start();
    sink.on_definition(|s| (0..100).for_each(|i| s.port.trigger(Req(i))));
    sim.run_until_quiescent(Duration::from_secs(1));
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some((0..100).collect()));
    // ...and on the threaded runtime.
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let (tx, rx) = crossbeam_channel::unbounded();
    let echo = rt.create(Echo::new);
    let sink = rt.create(move |s| Sink::with_out(s, tx.clone()));
    connect(&echo.provided::<Numbers>(), &sink.required::<Numbers>());
    echo.start();
    sink.start();
    sink.on_definition(|s| (0..100).for_each(|i| s.port.trigger(Req(i))));
    let got: Vec<u64> =
        (0..100).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    rt.shutdown();
}
