//! [`Recorder`]: a ready-made component that requires a port and keeps every indication.
//!
//! Testing a component usually means connecting something to its port that sends requests and
//! remembers what came back, with the time it came (in the simulator, virtual time). Every test
//! suite wrote that component again; this is the one copy.

use crate::component::setup::Setup;
use crate::component::ComponentDefinition;
use crate::context::Context;
use crate::port::{Port, Require, RequiredPort};
use crate::time::Time;

/// Requires `P` and records every indication it receives, with its arrival time.
///
/// A test creates it, connects its required port to the component under test, triggers
/// requests through [`Recorder::port`], and reads [`Recorder::events`] or
/// [`Recorder::arrivals`] through [`Component::on_definition`](crate::Component::on_definition).
///
/// # Example
///
/// ```
/// use kompics_core::*;
///
/// struct Doubling;
/// impl Port for Doubling {
///     type Request = u32;
///     type Indication = u32;
/// }
///
/// struct Doubler {
///     port: ProvidedPort<Doubling>,
/// }
/// impl ComponentDefinition for Doubler {}
/// impl Provide<Doubling> for Doubler {
///     fn handle(&mut self, _ctx: &mut Context<Self>, n: u32) {
///         self.port.trigger(2 * n);
///     }
/// }
///
/// let sim = Simulation::new(1);
/// let doubler = sim.create(|s| Doubler { port: s.provided() });
/// let recorder = sim.create(Recorder::<Doubling>::new);
/// connect(&doubler.provided::<Doubling>(), &recorder.required::<Doubling>());
/// doubler.start();
/// recorder.start();
/// recorder.on_definition(|r| r.port.trigger(21));
/// sim.run_for(std::time::Duration::from_millis(1));
/// assert_eq!(recorder.on_definition(|r| r.events().to_vec()), Some(vec![42]));
/// ```
pub struct Recorder<P: Port> {
    /// The required side of `P`: trigger requests through it.
    pub port: RequiredPort<P>,
    events: Vec<P::Indication>,
    at: Vec<Time>,
}

impl<P: Port> Recorder<P> {
    /// A recorder with nothing recorded yet; pass it to `create` as the factory.
    pub fn new(setup: &mut Setup<Self>) -> Self {
        Recorder { port: setup.required(), events: Vec::new(), at: Vec::new() }
    }

    /// The indications received so far, oldest first.
    pub fn events(&self) -> &[P::Indication] {
        &self.events
    }

    /// The indications received so far, each with the time it arrived, oldest first.
    pub fn arrivals(&self) -> impl Iterator<Item = (Time, &P::Indication)> + '_ {
        self.at.iter().copied().zip(&self.events)
    }
}

impl<P: Port> ComponentDefinition for Recorder<P> {}

impl<P: Port> Require<P> for Recorder<P> {
    fn handle(&mut self, ctx: &mut Context<Self>, indication: P::Indication) {
        self.events.push(indication);
        self.at.push(ctx.now());
    }
}
