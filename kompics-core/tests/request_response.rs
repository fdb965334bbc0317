//! Request/response: an answer goes to its requester alone; `ask` from outside answers, times
//! out or fails, never hangs; the simulator answers asks deterministically.

use std::time::Duration;

use crossbeam_channel::{unbounded, Sender};
use kompics_core::*;

const WAIT: Duration = Duration::from_secs(10);

/// Doubles numbers; every request is answered to its sender alone.
struct Doubling;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Doubled(u64);

impl Port for Doubling {
    type Request = Request<u64, Doubled>;
    type Indication = Doubled;
}

struct Doubler {
    port: ProvidedPort<Doubling>,
    /// Also announce every answer down every channel (to show the difference).
    broadcast: bool,
}

impl ComponentDefinition for Doubler {}

impl Provide<Doubling> for Doubler {
    fn handle(&mut self, _ctx: &mut Context<Self>, request: Request<u64, Doubled>) {
        let n = *request.payload();
        if self.broadcast {
            self.port.trigger(Doubled(1_000_000 + n));
        }
        request.reply(Doubled(2 * n));
    }
}

/// Asks for the doubles of its numbers when it starts; records what comes back.
struct Asker {
    port: RequiredPort<Doubling>,
    numbers: Vec<u64>,
    answers: Vec<u64>,
    out: Option<Sender<u64>>,
}

impl ComponentDefinition for Asker {
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        for n in self.numbers.clone() {
            self.port.request(n);
        }
    }
}

impl Require<Doubling> for Asker {
    fn handle(&mut self, _ctx: &mut Context<Self>, Doubled(n): Doubled) {
        self.answers.push(n);
        if let Some(out) = &self.out {
            let _ = out.send(n);
        }
    }
}

fn asker(numbers: Vec<u64>) -> impl Fn(&mut Setup<Asker>) -> Asker + Send + Sync + 'static {
    move |s| Asker { port: s.required(), numbers: numbers.clone(), answers: Vec::new(), out: None }
}

#[test]
fn two_requirers_on_one_provider_each_get_only_their_own_answers() {
    let sim = Simulation::new(11);
    let doubler = sim.create(|s| Doubler { port: s.provided(), broadcast: false });
    let a = sim.create(asker(vec![1, 2, 3]));
    let b = sim.create(asker(vec![10, 20]));
    connect(&doubler.provided::<Doubling>(), &a.required::<Doubling>());
    connect(&doubler.provided::<Doubling>(), &b.required::<Doubling>());
    for c in [&a, &b] {
        c.start();
    }
    doubler.start();
    sim.run_until_quiescent(WAIT);
    assert_eq!(a.on_definition(|a| a.answers.clone()), Some(vec![2, 4, 6]));
    assert_eq!(b.on_definition(|b| b.answers.clone()), Some(vec![20, 40]));
}

#[test]
fn answers_skip_other_channels_while_indications_still_go_down_all_of_them() {
    let sim = Simulation::new(12);
    let doubler = sim.create(|s| Doubler { port: s.provided(), broadcast: true });
    let a = sim.create(asker(vec![1]));
    let b = sim.create(asker(vec![]));
    connect(&doubler.provided::<Doubling>(), &a.required::<Doubling>());
    connect(&doubler.provided::<Doubling>(), &b.required::<Doubling>());
    a.start();
    b.start();
    doubler.start();
    sim.run_until_quiescent(WAIT);
    assert_eq!(a.on_definition(|a| a.answers.clone()), Some(vec![1_000_001, 2]));
    assert_eq!(b.on_definition(|b| b.answers.clone()), Some(vec![1_000_001]));
}

#[test]
fn requirers_on_the_threaded_runtime_get_only_their_own_answers() {
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let doubler = rt.create(|s| Doubler { port: s.provided(), broadcast: false });
    let mut outs = Vec::new();
    for base in [100u64, 200, 300] {
        let (tx, rx) = unbounded();
        let numbers: Vec<u64> = (base..base + 50).collect();
        let c = rt.create(move |s| Asker {
            port: s.required(),
            numbers: numbers.clone(),
            answers: Vec::new(),
            out: Some(tx.clone()),
        });
        connect(&doubler.provided::<Doubling>(), &c.required::<Doubling>());
        c.start();
        outs.push((base, rx));
    }
    doubler.start();
    for (base, rx) in outs {
        let got: Vec<u64> = (0..50).map(|_| rx.recv_timeout(WAIT).expect("an answer")).collect();
        let want: Vec<u64> = (base..base + 50).map(|n| 2 * n).collect();
        assert_eq!(got, want);
        assert!(rx.try_recv().is_err(), "no one else's answers");
    }
    rt.shutdown();
}

#[test]
fn ask_from_outside_gets_the_answer() {
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let doubler = rt.create(|s| Doubler { port: s.provided(), broadcast: false });
    doubler.start();
    let port = doubler.provided::<Doubling>();
    for n in 0..100 {
        assert_eq!(port.ask(n).wait(WAIT), Ok(Doubled(2 * n)));
    }
    rt.shutdown();
}

#[test]
fn ask_times_out_when_the_provider_does_not_answer() {
    let rt = Runtime::new(RuntimeConfig::default().workers(1));
    // Never started: the request is kept, unanswered.
    let doubler = rt.create(|s| Doubler { port: s.provided(), broadcast: false });
    let pending = doubler.provided::<Doubling>().ask(4);
    assert_eq!(pending.wait(Duration::from_millis(20)), Err(AskError::Timeout));
    rt.shutdown();
}

#[test]
fn ask_fails_instead_of_hanging_when_the_provider_is_killed() {
    let rt = Runtime::new(RuntimeConfig::default().workers(1));
    let doubler = rt.create(|s| Doubler { port: s.provided(), broadcast: false });
    let port = doubler.provided::<Doubling>();
    // Queued at a provider that has not started, then killed with it.
    let pending = port.ask(4);
    doubler.kill();
    assert_eq!(pending.wait(WAIT), Err(AskError::Dropped));
    // Asked after it was killed.
    assert_eq!(port.ask(5).wait(WAIT), Err(AskError::Dropped));
    rt.shutdown();
}

/// Keeps requests and answers them later, on a timer: the provider is not blocked meanwhile.
struct Deferred {
    _port: ProvidedPort<Doubling>,
}

impl ComponentDefinition for Deferred {}

impl Provide<Doubling> for Deferred {
    fn handle(&mut self, ctx: &mut Context<Self>, request: Request<u64, Doubled>) {
        let (n, responder) = request.into_parts();
        ctx.schedule_once(Duration::from_millis(n), move |_, _| {
            responder.reply(Doubled(2 * n));
        });
    }
}

#[test]
fn the_simulator_answers_an_ask_during_run_for() {
    let sim = Simulation::new(3);
    let deferred = sim.create(|s| Deferred { _port: s.provided() });
    deferred.start();
    let mut pending = deferred.provided::<Doubling>().ask(50);
    assert!(pending.try_result().is_none(), "nothing runs until the simulation does");
    sim.run_for(Duration::from_millis(49));
    assert!(pending.try_result().is_none(), "the answer is due at 50 ms of virtual time");
    sim.run_for(Duration::from_millis(1));
    assert_eq!(pending.try_result(), Some(Ok(Doubled(100))));
    assert_eq!(pending.try_result(), None, "taken");
}

#[test]
fn run_until_answered_times_out_in_virtual_time() {
    let sim = Simulation::new(4);
    let deferred = sim.create(|s| Deferred { _port: s.provided() });
    deferred.start();
    let mut pending = deferred.provided::<Doubling>().ask(5_000);
    assert_eq!(
        sim.run_until_answered(&mut pending, Duration::from_secs(1)),
        Err(AskError::Timeout)
    );
    assert_eq!(sim.now(), Time::ZERO + Duration::from_secs(1));
    assert_eq!(sim.run_until_answered(&mut pending, Duration::from_secs(10)), Ok(Doubled(10_000)));
}

#[test]
fn asks_in_the_simulator_replay_exactly_from_a_seed() {
    fn run(seed: u64) -> (Vec<(u64, u64)>, u64) {
        let sim = Simulation::new(seed);
        sim.enable_trace();
        let deferred = sim.create(|s| Deferred { _port: s.provided() });
        let doubler = sim.create(|s| Doubler { port: s.provided(), broadcast: false });
        deferred.start();
        doubler.start();
        let mut pendings: Vec<_> = (1..20)
            .map(|n| {
                let port = if n % 2 == 0 { deferred.provided() } else { doubler.provided() };
                port.ask(n)
            })
            .collect();
        let mut answered = Vec::new();
        while answered.len() < pendings.len() && sim.step() {
            for (i, p) in pendings.iter_mut().enumerate() {
                if let Some(Ok(Doubled(d))) = p.try_result() {
                    answered.push((i as u64, sim.steps() * 1_000 + d));
                }
            }
        }
        (answered, sim.trace_hash())
    }
    let first = run(99);
    assert_eq!(first.0.len(), 19);
    assert_eq!(first, run(99));
}

#[test]
fn an_ask_dropped_in_the_simulator_fails_without_waiting() {
    let sim = Simulation::new(5);
    let doubler = sim.create(|s| Doubler { port: s.provided(), broadcast: false });
    let mut pending = doubler.provided::<Doubling>().ask(1);
    doubler.kill();
    assert_eq!(
        sim.run_until_answered(&mut pending, Duration::from_secs(3600)),
        Err(AskError::Dropped)
    );
    assert_eq!(sim.now(), Time::ZERO, "no virtual time spent waiting");
}
