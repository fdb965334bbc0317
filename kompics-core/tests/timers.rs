//! Timers: once, periodic, cancel; timeouts arrive as events; time comes from the context.

use std::time::{Duration, Instant};

use kompics_core::rand::Rng;
use kompics_core::*;

/// Records (timer name, time) for each expiry.
#[derive(Default)]
struct Clocky {
    fired: Vec<(&'static str, Time)>,
    periodic: Option<TimerId>,
    cancel_after: usize,
    tx: Option<crossbeam_channel::Sender<Time>>,
}

impl ComponentDefinition for Clocky {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        ctx.schedule_once(Duration::from_millis(30), |c: &mut Clocky, ctx| {
            c.fired.push(("once", ctx.now()));
            if let Some(tx) = &c.tx {
                let _ = tx.send(ctx.now());
            }
        });
        let cancelled = ctx.schedule_once(Duration::from_millis(10), |c: &mut Clocky, ctx| {
            c.fired.push(("cancelled", ctx.now()))
        });
        assert!(ctx.cancel_timer(cancelled));
        assert!(!ctx.cancel_timer(cancelled), "cancelling twice reports false");
        self.periodic = Some(ctx.schedule_periodic(
            Duration::from_millis(5),
            Duration::from_millis(10),
            |c: &mut Clocky, ctx| {
                c.fired.push(("tick", ctx.now()));
                let ticks = c.fired.iter().filter(|(n, _)| *n == "tick").count();
                if ticks == c.cancel_after {
                    // Cancelling a periodic timer from its own callback stops it.
                    let id = c.periodic.expect("armed");
                    assert!(ctx.cancel_timer(id));
                }
            },
        ));
    }
}

fn ms(n: u64) -> Time {
    Time::ZERO + Duration::from_millis(n)
}

#[test]
fn once_periodic_and_cancel_in_virtual_time() {
    let sim = Simulation::new(1);
    let c = sim.create(|_| Clocky { cancel_after: 4, ..Default::default() });
    c.start();
    sim.run_for(Duration::from_secs(1));
    let fired = c.on_definition(|c| c.fired.clone()).unwrap();
    assert_eq!(
        fired,
        vec![
            ("tick", ms(5)),
            ("tick", ms(15)),
            ("tick", ms(25)),
            ("once", ms(30)),
            ("tick", ms(35))
        ]
    );
}

#[test]
fn stopping_a_component_cancels_its_timers() {
    let sim = Simulation::new(2);
    let c = sim.create(|_| Clocky { cancel_after: usize::MAX, ..Default::default() });
    c.start();
    sim.run_until(ms(16));
    c.stop();
    sim.run_for(Duration::from_secs(1));
    let fired = c.on_definition(|c| c.fired.clone()).unwrap();
    assert_eq!(fired, vec![("tick", ms(5)), ("tick", ms(15))]);
    // Started again, it schedules afresh from on_start.
    c.start();
    sim.run_for(Duration::from_millis(6));
    assert_eq!(c.on_definition(|c| c.fired.len()).unwrap(), 3);
}

#[test]
fn timers_fire_on_the_threaded_runtime_after_their_delay() {
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let (tx, rx) = crossbeam_channel::unbounded();
    let c =
        rt.create(move |_| Clocky { cancel_after: 3, tx: Some(tx.clone()), ..Default::default() });
    let started = Instant::now();
    c.start();
    let at = rx.recv_timeout(Duration::from_secs(10)).expect("the one-shot timer fired");
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert!(at >= ms(30));
    // Let the periodic timer run out (it cancels itself after 3 ticks).
    std::thread::sleep(Duration::from_millis(100));
    let fired = c.on_definition(|c| c.fired.clone()).unwrap();
    let ticks: Vec<_> = fired.iter().filter(|(n, _)| *n == "tick").collect();
    assert_eq!(ticks.len(), 3, "{fired:?}");
    assert!(!fired.iter().any(|(n, _)| *n == "cancelled"));
    // Periodic deadlines are 5 ms, then every 10 ms: no expiry runs before its deadline.
    for (k, (_, at)) in ticks.iter().enumerate() {
        assert!(*at >= ms(5 + 10 * k as u64), "tick {k} at {at:?}");
    }
    rt.shutdown();
}

/// Draws from its context's generator.
struct Dice {
    rolls: Vec<u32>,
}

impl ComponentDefinition for Dice {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        self.rolls = (0..8).map(|_| ctx.rng().random_range(0..1000)).collect();
    }
}

#[test]
fn the_context_random_generator_is_seeded_by_the_runtime() {
    let rolls = |seed: u64| {
        let sim = Simulation::new(seed);
        let d = sim.create(|_| Dice { rolls: Vec::new() });
        d.start();
        sim.run_until_quiescent(Duration::from_secs(1));
        d.on_definition(|d| d.rolls.clone()).unwrap()
    };
    assert_eq!(rolls(7), rolls(7));
    assert_ne!(rolls(7), rolls(8));
    let threaded = |seed: u64| {
        let rt = Runtime::new(RuntimeConfig::default().workers(1).seed(seed));
        let d = rt.create(|_| Dice { rolls: Vec::new() });
        d.start();
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.on_definition(|d| d.rolls.is_empty()).unwrap() {
            assert!(Instant::now() < deadline);
            std::thread::yield_now();
        }
        d.on_definition(|d| d.rolls.clone()).unwrap()
    };
    assert_eq!(threaded(3), threaded(3));
}
