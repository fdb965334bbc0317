//! Scenarios: their processes run at the times their composition says, a seed replays a run
//! exactly, and a failure reports its seed, a replay command, the scenario and the log.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use kompics_core::scenario::{Dist, Failure, Process, Run, Scenario, World};
use kompics_core::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at(n: u64) -> Time {
    Time::ZERO + ms(n)
}

/// A world of a simulation and a register the events write, so a test can see what they did.
struct Register {
    sim: Simulation,
    values: Vec<u64>,
    /// `run_until` fails once virtual time reaches this.
    fail_at: Option<Time>,
}

impl Register {
    fn new(seed: u64) -> Register {
        Register { sim: Simulation::new(seed), values: Vec::new(), fail_at: None }
    }
}

impl World for Register {
    fn now(&self) -> Time {
        self.sim.now()
    }

    fn run_until(&mut self, until: Time) -> Result<(), String> {
        self.sim.run_until(until);
        match self.fail_at {
            Some(t) if self.sim.now() >= t => Err(format!("the register broke at {t}")),
            _ => Ok(()),
        }
    }

    fn report(&self) -> String {
        format!("register holds {:?}\n", self.values)
    }
}

/// A process whose events write random values and note them.
fn writer(name: &str, count: usize, every: impl Into<Dist>) -> Process<Register> {
    Process::new(name).every(every).raise(count, "write", |w: &mut Register, ctx| {
        let v = ctx.uniform(0..1_000_000u64);
        w.values.push(v);
        ctx.note(v);
    })
}

/// Random gaps, random values, two kinds of events interleaved, a parallel process.
fn random_scenario() -> Scenario<Register> {
    let mut s = Scenario::new("random");
    let a = s.start_at(
        Dist::uniform(ms(0), ms(100)),
        writer("a", 5, Dist::exponential(ms(30)))
            .raise(5, "clear", |w: &mut Register, _| w.values.clear()),
    );
    s.start_after_start(
        a,
        Dist::uniform(ms(1), ms(50)),
        writer("b", 5, Dist::uniform(ms(1), ms(40))),
    );
    s
}

fn run(s: &Scenario<Register>, seed: u64) -> Run {
    s.run(seed, &mut Register::new(seed)).expect("the scenario passes")
}

#[test]
fn same_seed_same_log() {
    let s = random_scenario();
    for seed in 0..5 {
        let first = run(&s, seed);
        assert_eq!(first.log.len(), 15);
        assert_eq!(first, run(&s, seed), "seed {seed} ran differently twice");
    }
}

#[test]
fn different_seeds_give_different_logs() {
    let s = random_scenario();
    let logs: Vec<Run> = (0..5).map(|seed| run(&s, seed)).collect();
    for i in 0..logs.len() {
        for j in i + 1..logs.len() {
            assert_ne!(logs[i].log, logs[j].log, "seeds {i} and {j} gave the same log");
        }
    }
    // Not only the values: the times and the order of the kinds change too.
    let orders: std::collections::BTreeSet<Vec<String>> = logs
        .iter()
        .map(|r| r.log.iter().map(|e| format!("{} {}", e.at, e.event)).collect())
        .collect();
    assert_eq!(orders.len(), logs.len(), "some seeds ran the same events at the same times");
}

#[test]
fn a_process_runs_its_first_event_at_its_start_and_the_next_ones_an_interval_apart() {
    let mut s = Scenario::new("constant");
    s.start_at(ms(10), writer("a", 4, ms(25)));
    let r = run(&s, 1);
    assert_eq!(r.times_of("a"), vec![at(10), at(35), at(60), at(85)]);
    assert_eq!(r.end, at(85));
    let names: Vec<&str> = r.log.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["write#1", "write#2", "write#3", "write#4"]);
}

#[test]
fn in_sequence_a_process_starts_a_delay_after_the_previous_one_ends() {
    let mut s = Scenario::new("sequence");
    let a = s.start_at(ms(0), writer("a", 3, ms(10)));
    let b = s.start_after_end(a, ms(100), writer("b", 2, ms(5)));
    s.start_after_end(b, ms(0), writer("c", 1, ms(1)));
    let r = run(&s, 2);
    assert_eq!(r.times_of("a"), vec![at(0), at(10), at(20)]);
    assert_eq!(r.times_of("b"), vec![at(120), at(125)]);
    assert_eq!(r.times_of("c"), vec![at(125)]);
    let order: Vec<&str> = r.log.iter().map(|e| e.process.as_str()).collect();
    assert_eq!(order, ["a", "a", "a", "b", "b", "c"]);
}

#[test]
fn in_parallel_a_process_starts_a_delay_after_the_other_starts_and_they_interleave() {
    let mut s = Scenario::new("parallel");
    let a = s.start_at(ms(0), writer("a", 3, ms(10)));
    s.start_after_start(a, ms(5), writer("b", 3, ms(10)));
    let r = run(&s, 3);
    assert_eq!(r.times_of("a"), vec![at(0), at(10), at(20)]);
    assert_eq!(r.times_of("b"), vec![at(5), at(15), at(25)]);
    let order: Vec<&str> = r.log.iter().map(|e| e.process.as_str()).collect();
    assert_eq!(order, ["a", "b", "a", "b", "a", "b"]);
}

#[test]
fn events_at_the_same_time_run_in_the_order_they_were_scheduled() {
    let mut s = Scenario::new("ties");
    let a = s.start_at(ms(0), writer("a", 2, ms(10)));
    s.start_after_start(a, ms(10), writer("b", 1, ms(1)));
    let r = run(&s, 4);
    // b's start was scheduled when a started, before a scheduled its second event.
    let order: Vec<(Time, &str)> = r.log.iter().map(|e| (e.at, e.process.as_str())).collect();
    assert_eq!(order, [(at(0), "a"), (at(10), "b"), (at(10), "a")]);
}

#[test]
fn the_world_runs_between_events() {
    struct Ticker(u64);
    impl ComponentDefinition for Ticker {
        fn on_start(&mut self, ctx: &mut Context<Self>) {
            ctx.schedule_periodic(ms(1), ms(1), |t: &mut Ticker, _| t.0 += 1);
        }
    }
    let mut s = Scenario::new("ticker");
    let start = s.start_at(
        ms(0),
        Process::once("start", |sim: &mut Simulation, _| {
            sim.create(|_| Ticker(0)).start();
        }),
    );
    // A Simulation is a world on its own: 50 ms of a 1 ms timer are at least 50 events.
    s.start_after_end(
        start,
        ms(50),
        Process::once("look", |sim: &mut Simulation, ctx| {
            ctx.note(sim.steps());
            if sim.steps() >= 50 {
                Ok(())
            } else {
                Err(format!("only {} steps ran in 50 ms", sim.steps()))
            }
        }),
    );
    let r = s.run(1, &mut Simulation::new(1)).expect("the ticker ticked");
    assert_eq!(r.log[1].at, at(50));
}

#[test]
fn end_after_end_stops_the_run_with_events_left() {
    let mut s = Scenario::new("end");
    let a = s.start_at(ms(0), writer("a", 2, ms(10)));
    s.start_at(ms(0), writer("forever", 1000, ms(7)));
    s.end_after_end(a, ms(30));
    let mut world = Register::new(5);
    let r = s.run(5, &mut world).expect("passes");
    assert_eq!(r.end, at(40));
    assert_eq!(world.sim.now(), at(40), "the world ran until the end");
    assert_eq!(r.times_of("forever").last(), Some(&at(35)));
}

fn failing(at_write: usize) -> Scenario<Register> {
    let mut s = Scenario::new("failing");
    s.start_at(
        ms(0),
        Process::new("w").every(ms(10)).raise(5, "write", move |w: &mut Register, ctx| {
            w.values.push(ctx.index() as u64);
            ctx.note(format!("value {}", ctx.index()));
            if ctx.index() == at_write {
                Err(format!("write {at_write} refused"))
            } else {
                Ok(())
            }
        }),
    );
    s
}

fn failure_of(s: &Scenario<Register>, seed: u64, world: &mut Register) -> Box<Failure> {
    match s.run(seed, world) {
        Ok(run) => panic!("the scenario passed: {run:?}"),
        Err(failure) => failure,
    }
}

#[test]
fn a_failed_event_reports_seed_replay_scenario_and_log() {
    let s = failing(3);
    let f = failure_of(&s, 4242, &mut Register::new(4242));
    assert_eq!(f.seed, 4242);
    assert_eq!(f.at, at(20));
    assert!(f.cause.contains("write 3 refused"), "{}", f.cause);
    assert_eq!(f.log.len(), 3, "the log stops at the failing event");
    assert_eq!(f.log[2].note, "value 3");
    let text = f.to_string();
    assert!(text.contains("seed 4242"), "{text}");
    let replay = text.lines().find(|l| l.starts_with("replay: ")).expect("a replay line");
    assert!(replay.contains("SIM_SEED=4242 cargo test"), "{replay}");
    assert!(replay.contains("--test scenario"), "{replay}");
    assert!(replay.contains("a_failed_event_reports_seed_replay_scenario_and_log"), "{replay}");
    assert!(text.contains("scenario \"failing\""), "{text}");
    assert!(text.contains("5× write, every 10ms"), "{text}");
    assert!(text.contains("write#3 — value 3"), "{text}");
    assert!(text.contains("register holds [1, 2, 3]"), "the world's report: {text}");
}

#[test]
fn a_panic_in_an_event_is_a_failure_with_its_message() {
    let mut s = Scenario::new("panics");
    s.start_at(ms(7), Process::once("boom", |_: &mut Register, _| -> () { panic!("kaboom") }));
    let f = failure_of(&s, 9, &mut Register::new(9));
    assert!(f.cause.contains("panic: kaboom"), "{}", f.cause);
    assert_eq!(f.at, at(7));
    assert_eq!(f.log.len(), 1);
    assert!(f.to_string().contains("SIM_SEED=9"));
}

#[test]
fn a_failed_world_check_stops_the_run() {
    let s = failing(99);
    let mut world = Register::new(1);
    world.fail_at = Some(at(25));
    let f = failure_of(&s, 1, &mut world);
    assert!(f.cause.contains("the register broke"), "{}", f.cause);
    assert_eq!(f.log.len(), 3, "the events before the check ran, not the later ones");
}

#[test]
fn a_sweep_runs_every_seed_and_names_those_that_failed() {
    // Seeds whose run writes an odd value first fail.
    let mut s = Scenario::new("odd");
    s.start_at(ms(0), writer("w", 1, ms(1)));
    s.start_at(
        ms(1),
        Process::once("check", |w: &mut Register, _| {
            if w.values[0] % 2 == 0 {
                Ok(())
            } else {
                Err(format!("odd {}", w.values[0]))
            }
        }),
    );
    let seeds: Vec<u64> = (0..20).collect();
    let mut passed = Vec::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        s.sweep(&seeds, Register::new, |w, run| passed.push((run.seed, w.values[0])))
    }));
    let message = *outcome.expect_err("some seeds fail").downcast::<String>().unwrap();
    let failed: Vec<u64> =
        seeds.iter().copied().filter(|seed| !passed.iter().any(|(p, _)| p == seed)).collect();
    assert!(!failed.is_empty() && !passed.is_empty(), "both kinds of seed: {passed:?}");
    assert!(passed.iter().all(|(_, v)| v % 2 == 0));
    assert!(
        message.starts_with(&format!(
            "{} of 20 seeds of scenario odd failed: {failed:?}",
            failed.len()
        )),
        "{message}"
    );
    assert!(message.contains(&format!("SIM_SEED={}", failed[0])), "{message}");
}

#[test]
fn raised_kinds_run_as_often_as_raised_in_an_order_that_depends_on_the_seed() {
    let mut s: Scenario<Register> = Scenario::new("kinds");
    s.start_at(
        ms(0),
        Process::new("mix").every(ms(1)).raise(3, "x", |_: &mut Register, _| {}).raise(
            5,
            "y",
            |_: &mut Register, _| {},
        ),
    );
    let orders: std::collections::BTreeSet<String> = (0..10)
        .map(|seed| {
            let r = run(&s, seed);
            assert_eq!(r.log.iter().filter(|e| e.event.starts_with("x#")).count(), 3);
            assert_eq!(r.log.iter().filter(|e| e.event.starts_with("y#")).count(), 5);
            r.log.iter().map(|e| &e.event[..1]).collect()
        })
        .collect();
    assert!(orders.len() > 5, "the order barely depends on the seed: {orders:?}");
}

#[test]
fn distributions_stay_in_range_and_have_their_mean() {
    use kompics_core::rand::{rngs::SmallRng, SeedableRng};
    let mut rng = SmallRng::seed_from_u64(3);
    let uniform = Dist::uniform(ms(50), ms(60));
    let draws: Vec<Duration> = (0..2000).map(|_| uniform.sample(&mut rng)).collect();
    assert!(draws.iter().all(|d| ms(50) <= *d && *d <= ms(60)));
    assert!(draws.iter().any(|d| *d < ms(51)) && draws.iter().any(|d| *d > ms(59)));
    let exponential = Dist::exponential(ms(100));
    let total: Duration = (0..20_000).map(|_| exponential.sample(&mut rng)).sum();
    let mean = total / 20_000;
    assert!(ms(95) < mean && mean < ms(105), "exponential mean {mean:?}");
    assert_eq!(Dist::from(ms(3)).sample(&mut rng), ms(3));
}
