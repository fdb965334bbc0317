//! Your first component: a port type, a provider, a requirer, a timer, on the threaded runtime.
//!
//! ```text
//! RUST_LOG=info cargo run -p examples --example first_component
//! ```
//!
//! A `Greeter` provides the `Greeting` port: it answers each `Hello` with a `Welcome`. A
//! `Visitor` requires it: every 100 ms it says hello, and after three welcomes it is done. The
//! same two components run unchanged in the deterministic `Simulation` (see the test below).

use std::time::Duration;

use kompics_core::*;

/// The port type: `Hello` goes to the provider, `Welcome` comes back.
pub struct Greeting;

/// A request: someone says hello.
#[derive(Clone, Debug)]
pub struct Hello {
    /// Who is saying hello.
    pub name: String,
}

/// An indication: the provider's answer.
#[derive(Clone, Debug)]
pub struct Welcome {
    /// The greeting text.
    pub text: String,
}

impl Port for Greeting {
    type Request = Hello;
    type Indication = Welcome;
}

/// Provides `Greeting`, counting its visitors.
pub struct Greeter {
    greeting: ProvidedPort<Greeting>,
    visitors: u64,
}

impl ComponentDefinition for Greeter {
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        log::info!("greeter open");
    }
}

impl Provide<Greeting> for Greeter {
    fn handle(&mut self, ctx: &mut Context<Self>, hello: Hello) {
        self.visitors += 1;
        let text = format!("welcome {}, visitor #{} at {}", hello.name, self.visitors, ctx.now());
        self.greeting.trigger(Welcome { text });
    }
}

/// Requires `Greeting`: says hello on a periodic timer until it has three welcomes.
pub struct Visitor {
    greeting: RequiredPort<Greeting>,
    welcomes: u64,
    timer: Option<TimerId>,
    done: crossbeam_channel::Sender<u64>,
}

impl ComponentDefinition for Visitor {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        let period = Duration::from_millis(100);
        self.timer = Some(ctx.schedule_periodic(period, period, |v: &mut Visitor, _ctx| {
            v.greeting.trigger(Hello { name: "visitor".into() });
        }));
    }
}

impl Require<Greeting> for Visitor {
    fn handle(&mut self, ctx: &mut Context<Self>, welcome: Welcome) {
        log::info!("{}", welcome.text);
        println!("{}", welcome.text);
        self.welcomes += 1;
        if self.welcomes == 3 {
            if let Some(t) = self.timer.take() {
                ctx.cancel_timer(t);
            }
            let _ = self.done.send(self.welcomes);
        }
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let runtime = Runtime::new(RuntimeConfig::default());
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let greeter = runtime.create(|s| Greeter { greeting: s.provided(), visitors: 0 });
    let visitor = runtime.create(move |s| Visitor {
        greeting: s.required(),
        welcomes: 0,
        timer: None,
        done: done_tx.clone(),
    });
    connect(&greeter.provided::<Greeting>(), &visitor.required::<Greeting>());
    greeter.start();
    visitor.start();
    let welcomes = done_rx.recv_timeout(Duration::from_secs(10)).expect("three welcomes");
    println!("done after {welcomes} welcomes");
    runtime.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_components_run_in_the_simulator() {
        let sim = Simulation::new(1);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let greeter = sim.create(|s| Greeter { greeting: s.provided(), visitors: 0 });
        let visitor = sim.create(move |s| Visitor {
            greeting: s.required(),
            welcomes: 0,
            timer: None,
            done: tx.clone(),
        });
        connect(&greeter.provided::<Greeting>(), &visitor.required::<Greeting>());
        greeter.start();
        visitor.start();
        sim.run_for(Duration::from_secs(10));
        assert_eq!(rx.try_recv(), Ok(3));
        assert_eq!(greeter.on_definition(|g| g.visitors), Some(3));
        // Three periods of 100 ms, in virtual time.
        assert_eq!(sim.now(), Time::ZERO + Duration::from_secs(10));
    }
}
