//! Ports and channels: publish semantics, FIFO per channel, selectors, disconnect.

mod common;

use std::time::Duration;

use common::*;
use kompics_core::*;

const QUIET: Duration = Duration::from_secs(10);

#[test]
fn an_indication_goes_to_every_connected_channel() {
    let sim = Simulation::new(1);
    let echo = sim.create(Echo::new);
    let sinks: Vec<_> = (0..3).map(|_| sim.create(Sink::new)).collect();
    for s in &sinks {
        connect(&echo.provided::<Numbers>(), &s.required::<Numbers>());
    }
    echo.start();
    for s in &sinks {
        s.start();
    }
    // One request from the first sink: the echo's answer is published to all three.
    sinks[0].on_definition(|s| s.port.trigger(Req(7)));
    assert!(sim.run_until_quiescent(QUIET));
    assert_eq!(echo.on_definition(|e| e.seen.clone()), Some(vec![7]));
    for s in &sinks {
        assert_eq!(s.on_definition(|s| s.seen.clone()), Some(vec![7]));
    }
}

#[test]
fn requests_from_every_requirer_reach_the_provider() {
    let sim = Simulation::new(2);
    let echo = sim.create(Echo::new);
    let sinks: Vec<_> = (0..3).map(|_| sim.create(Sink::new)).collect();
    for s in &sinks {
        connect(&echo.provided::<Numbers>(), &s.required::<Numbers>());
        s.start();
    }
    echo.start();
    for (i, s) in sinks.iter().enumerate() {
        s.on_definition(|s| s.port.trigger(Req(i as u64)));
    }
    sim.run_until_quiescent(QUIET);
    let mut seen = echo.on_definition(|e| e.seen.clone()).unwrap();
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2]);
}

#[test]
fn events_on_one_channel_arrive_in_trigger_order_threaded() {
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let (tx, rx) = crossbeam_channel::unbounded();
    let echo = rt.create(Echo::new);
    let sink = rt.create(move |s| Sink::with_out(s, tx.clone()));
    connect(&echo.provided::<Numbers>(), &sink.required::<Numbers>());
    echo.start();
    sink.start();
    const N: u64 = 20_000;
    // Triggered from this thread, in bursts, while the echo runs on the workers.
    sink.on_definition(|s| {
        for i in 0..N {
            s.port.trigger(Req(i));
        }
    });
    for i in 0..N {
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).expect("indication"), i);
    }
    rt.shutdown();
}

#[test]
fn a_selector_lets_only_matching_events_through() {
    let sim = Simulation::new(3);
    let echo = sim.create(Echo::new);
    let even = sim.create(Sink::new);
    let odd = sim.create(Sink::new);
    connect_with(
        &echo.provided::<Numbers>(),
        &even.required::<Numbers>(),
        Selector::new().indications(|Ind(n): &Ind| n % 2 == 0),
    );
    connect_with(
        &echo.provided::<Numbers>(),
        &odd.required::<Numbers>(),
        // This one also filters its own requests: only numbers below 100 reach the echo.
        Selector::new().indications(|Ind(n): &Ind| n % 2 == 1).requests(|Req(n): &Req| *n < 100),
    );
    for c in [&even, &odd] {
        c.start();
    }
    echo.start();
    even.on_definition(|s| (0..6).for_each(|i| s.port.trigger(Req(i))));
    odd.on_definition(|s| s.port.trigger(Req(101)));
    sim.run_until_quiescent(QUIET);
    assert_eq!(echo.on_definition(|e| e.seen.clone()), Some(vec![0, 1, 2, 3, 4, 5]));
    assert_eq!(even.on_definition(|s| s.seen.clone()), Some(vec![0, 2, 4]));
    assert_eq!(odd.on_definition(|s| s.seen.clone()), Some(vec![1, 3, 5]));
}

#[test]
fn a_disconnected_channel_carries_nothing_more() {
    let sim = Simulation::new(4);
    let echo = sim.create(Echo::new);
    let sink = sim.create(Sink::new);
    let channel = connect(&echo.provided::<Numbers>(), &sink.required::<Numbers>());
    echo.start();
    sink.start();
    sink.on_definition(|s| s.port.trigger(Req(1)));
    sim.run_until_quiescent(QUIET);
    assert!(channel.is_connected());
    channel.disconnect();
    channel.disconnect(); // harmless
    assert!(!channel.is_connected());
    sink.on_definition(|s| s.port.trigger(Req(2)));
    echo.on_definition(|e| e.port.trigger(Ind(3)));
    sim.run_until_quiescent(QUIET);
    assert_eq!(echo.on_definition(|e| e.seen.clone()), Some(vec![1]));
    assert_eq!(sink.on_definition(|s| s.seen.clone()), Some(vec![1]));
}

#[test]
fn triggering_on_an_unconnected_port_drops_the_event() {
    let sim = Simulation::new(5);
    let echo = sim.create(Echo::new);
    echo.start();
    echo.on_definition(|e| e.port.trigger(Ind(1)));
    assert!(sim.run_until_quiescent(QUIET));
    assert!(sim.faults().is_empty());
}
