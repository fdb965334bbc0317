//! # 4. Timers
//!
//! A component asks its [`Context`] for timers:
//!
//! - [`schedule_once(delay, callback)`](crate::Context::schedule_once) runs `callback` once,
//!   `delay` from now;
//! - [`schedule_periodic(delay, period, callback)`](crate::Context::schedule_periodic) runs it
//!   `delay` from now and then every `period`, spaced from the previous deadline (no drift);
//! - [`cancel_timer(id)`](crate::Context::cancel_timer) stops one, by the [`TimerId`] the
//!   scheduling call returned; its callback never runs again, even if its expiry is already
//!   queued. It returns whether the timer was still scheduled.
//!
//! A callback gets `&mut` the component and its context, and runs as an event of the component:
//! one at a time with its other handlers, never concurrently, so it can use the component's
//! state freely. Stopping, killing or failing a component cancels all its timers (a restarted
//! component schedules them again, typically in [`on_start`](crate::ComponentDefinition::on_start)).
//!
//! Time comes from [`Context::now`] too, never from the system clock: on the threaded runtime it
//! is monotonic time since the runtime started; in the simulator it is virtual time, which the
//! simulator moves to the next timer when nothing else is ready. That is why the test below can
//! assert exact instants.
//!
//! A watchdog beats every 100 ms and gives up at 350 ms:
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::*;
//!
//! struct Watchdog { beats: Vec<Time>, beat: Option<TimerId>, gave_up: bool }
//! impl ComponentDefinition for Watchdog {
//!     fn on_start(&mut self, ctx: &mut Context<Self>) {
//!         let period = Duration::from_millis(100);
//!         self.beat = Some(ctx.schedule_periodic(period, period, |w: &mut Watchdog, ctx| {
//!             w.beats.push(ctx.now());
//!         }));
//!         ctx.schedule_once(Duration::from_millis(350), |w: &mut Watchdog, ctx| {
//!             let beat = w.beat.take().expect("scheduled in on_start");
//!             w.gave_up = ctx.cancel_timer(beat); // true: it was still scheduled
//!             assert!(!ctx.cancel_timer(beat), "cancelling twice finds nothing");
//!         });
//!     }
//! }
//!
//! let sim = Simulation::new(4);
//! let dog = sim.create(|_| Watchdog { beats: vec![], beat: None, gave_up: false });
//! dog.start();
//! sim.run_for(Duration::from_secs(10)); // ten virtual seconds, in microseconds of real time
//!
//! let ms = |n| Time::ZERO + Duration::from_millis(n);
//! assert_eq!(dog.on_definition(|w| w.beats.clone()), Some(vec![ms(100), ms(200), ms(300)]));
//! assert_eq!(dog.on_definition(|w| w.gave_up), Some(true));
//! assert_eq!(sim.now(), ms(10_000));
//! ```
//!
//! Stopping cancels the timers; starting again is the component's cue to schedule them anew:
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::*;
//!
//! struct Ticker { ticks: u32 }
//! impl ComponentDefinition for Ticker {
//!     fn on_start(&mut self, ctx: &mut Context<Self>) {
//!         let second = Duration::from_secs(1);
//!         ctx.schedule_periodic(second, second, |t: &mut Ticker, _ctx| t.ticks += 1);
//!     }
//! }
//!
//! let sim = Simulation::new(5);
//! let ticker = sim.create(|_| Ticker { ticks: 0 });
//! ticker.start();
//! sim.run_for(Duration::from_millis(3500));
//! ticker.stop();
//! sim.run_for(Duration::from_secs(10)); // stopped: no ticks
//! assert_eq!(ticker.on_definition(|t| t.ticks), Some(3));
//! ticker.start();
//! sim.run_for(Duration::from_millis(2500));
//! assert_eq!(ticker.on_definition(|t| t.ticks), Some(5));
//! ```
//!
//! The same components run on the threaded [`Runtime`](crate::Runtime), where timers fire in
//! real time from one timer thread. Timer callbacks are also how a component waits: to retry
//! later, to time out a request it sent, to batch work; it never sleeps in a handler, which
//! would hold a worker thread (and, in the simulator, would not move virtual time).
//!
//! Next: [request/response](super::request_response).
//!
//! [`Context`]: crate::Context
//! [`Context::now`]: crate::Context::now
//! [`TimerId`]: crate::TimerId
