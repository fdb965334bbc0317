//! # 3. Hierarchy and supervision
//!
//! Components form a tree. A component's **children** start and stop with it, die with it, and
//! report their failures to it: the parent is their **supervisor**.
//!
//! A parent creates children in one of two places:
//!
//! - **In its factory**, with [`Setup::create`]: the children are part of the component's
//!   structure, like its ports. The factory can connect them, to each other and to the
//!   component's own ports, and **export** their ports as the parent's own with
//!   [`Setup::export_provided`] / [`Setup::export_required`] (for a parent that implements
//!   [`ExportProvided<P>`] / [`ExportRequired<P>`]). An exported port *is* the child's port:
//!   a channel to [`Component::exported_provided`] goes straight to the child, with no
//!   forwarding hop, and it can be connected as soon as `create` returns. Outside code sees
//!   one component and wires it like any other.
//! - **In a handler**, with [`Context::create`] (typically in
//!   [`on_init`](crate::ComponentDefinition::on_init)): for children that come and go while
//!   the parent runs.
//!
//! When a handler panics, or calls [`Context::fail`] with a typed error (the way to report a
//! failed disk write without panicking; [`Context::ok_or_fail`] does it for a `Result`), the
//! component becomes faulty: its timers are cancelled, its children stopped, its queued events
//! kept. Its parent's [`on_fault`](crate::ComponentDefinition::on_fault) gets a [`Fault`] and
//! returns a [`FaultAction`]:
//!
//! - `Restart`: build the child again from its factory (fresh state), keeping its ports, its
//!   channels and its queued events, and start it. Its own factory-made children are restarted
//!   with it; those made with `Context::create` are killed (its `on_init` makes them again).
//! - `Stop`: leave it stopped; `Destroy`: kill it;
//! - `Escalate` (the default): fail the parent too, with the child's fault as the
//!   [cause](crate::Fault::cause), and let the grandparent decide. A fault that reaches the top
//!   goes to the runtime: [`RuntimeConfig::on_fault`] on threads, [`Simulation::faults`] in the
//!   simulator.
//!
//! The [`Fault`] is a plain value the supervisor may keep (to count restarts, to log, to report
//! later): its `message` is the panic text or the error's `Display`, and [`Fault::error`] gives
//! the typed error back.
//!
//! A bank made of a ledger: the bank exports the ledger's `Accounts` port (its service) and its
//! required `Audit` port (what it needs from outside). A zero deposit makes the ledger fail; the
//! bank keeps the fault and restarts the ledger.
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::*;
//!
//! #[derive(Clone, Debug)] struct Deposit(u64);
//! #[derive(Clone, Debug)] struct Balance(u64);
//! struct Accounts;
//! impl Port for Accounts { type Request = Deposit; type Indication = Balance; }
//!
//! #[derive(Clone, Debug)] struct Entry(u64);
//! struct Audit;
//! impl Port for Audit { type Request = Entry; type Indication = (); }
//!
//! #[derive(Debug)]
//! struct ZeroDeposit;
//! impl std::fmt::Display for ZeroDeposit {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         f.write_str("a deposit of zero")
//!     }
//! }
//! impl std::error::Error for ZeroDeposit {}
//!
//! // The child: provides Accounts, requires Audit.
//! struct Ledger { accounts: ProvidedPort<Accounts>, audit: RequiredPort<Audit>, balance: u64 }
//! impl ComponentDefinition for Ledger {}
//! impl Provide<Accounts> for Ledger {
//!     fn handle(&mut self, ctx: &mut Context<Self>, Deposit(amount): Deposit) {
//!         if amount == 0 {
//!             ctx.fail(ZeroDeposit); // the component fails once this handler returns
//!             return;
//!         }
//!         self.balance += amount;
//!         self.audit.trigger(Entry(amount));
//!         self.accounts.trigger(Balance(self.balance));
//!     }
//! }
//! impl Require<Audit> for Ledger {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, _ack: ()) {}
//! }
//!
//! // The parent: made of one ledger, whose ports it exports; supervises it.
//! struct Bank { ledger: Component<Ledger>, faults: Vec<Fault> }
//! impl ExportProvided<Accounts> for Bank {}
//! impl ExportRequired<Audit> for Bank {}
//! impl ComponentDefinition for Bank {
//!     fn on_fault(&mut self, _ctx: &mut Context<Self>, fault: &Fault) -> FaultAction {
//!         self.faults.push(fault.clone());
//!         FaultAction::Restart
//!     }
//! }
//!
//! // Outside the bank: a customer and an auditor.
//! struct Customer { port: RequiredPort<Accounts>, balances: Vec<u64> }
//! impl ComponentDefinition for Customer {
//!     fn on_start(&mut self, _ctx: &mut Context<Self>) {
//!         for amount in [5, 0, 7] {
//!             self.port.trigger(Deposit(amount));
//!         }
//!     }
//! }
//! impl Require<Accounts> for Customer {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, Balance(b): Balance) {
//!         self.balances.push(b);
//!     }
//! }
//! struct Auditor { _port: ProvidedPort<Audit>, entries: Vec<u64> }
//! impl ComponentDefinition for Auditor {}
//! impl Provide<Audit> for Auditor {
//!     fn handle(&mut self, _ctx: &mut Context<Self>, Entry(amount): Entry) {
//!         self.entries.push(amount);
//!     }
//! }
//!
//! let sim = Simulation::new(3);
//! let bank = sim.create(|s| {
//!     let ledger = s.create(|s| Ledger { accounts: s.provided(), audit: s.required(), balance: 0 });
//!     s.export_provided(&ledger.provided::<Accounts>());
//!     s.export_required(&ledger.required::<Audit>());
//!     Bank { ledger, faults: Vec::new() }
//! });
//! let customer = sim.create(|s| Customer { port: s.required(), balances: vec![] });
//! let auditor = sim.create(|s| Auditor { _port: s.provided(), entries: vec![] });
//! // The bank is wired like any component, right after `create`.
//! connect(&bank.exported_provided::<Accounts>(), &customer.required::<Accounts>());
//! connect(&auditor.provided::<Audit>(), &bank.exported_required::<Audit>());
//! bank.start(); // starts the ledger too
//! auditor.start();
//! customer.start();
//! sim.run_until_quiescent(Duration::from_secs(1));
//!
//! // 5 was deposited; 0 failed the ledger; the restarted ledger (fresh state, same channels)
//! // handled the 7 that was queued behind the failure.
//! assert_eq!(customer.on_definition(|c| c.balances.clone()), Some(vec![5, 7]));
//! assert_eq!(auditor.on_definition(|a| a.entries.clone()), Some(vec![5, 7]));
//! let faults = bank.on_definition(|b| b.faults.clone()).unwrap();
//! assert_eq!(faults.len(), 1);
//! assert_eq!(faults[0].message, "a deposit of zero");
//! assert!(faults[0].error::<ZeroDeposit>().is_some());
//! let ledger = bank.on_definition(|b| b.ledger.clone()).unwrap();
//! assert_eq!(faults[0].component, ledger.id());
//! assert_eq!(ledger.state(), LifecycleState::Active);
//! assert!(sim.faults().is_empty(), "the bank handled it; nothing reached the top");
//! ```
//!
//! Why supervision works this way: a component that failed is in a state nobody can trust, so
//! it is not asked to repair itself; the parent, which built it, knows whether to rebuild it,
//! leave it off, or give up in turn. Everything else keeps running. Restarting keeps the
//! channels and queued events because the *structure* (who talks to whom) did not fail, only
//! the state did.
//!
//! A factory may also connect the component's *own* ports to its children (say, a node that
//! requires the port its store provides): [`connect`](crate::connect) in the factory works,
//! and the channel carries events once `create` returns. When a restart runs the factory (or
//! `on_init`) again, connecting ports that are already connected returns the existing channel,
//! so nothing is delivered twice.
//!
//! Next: [timers](super::timers).
//!
//! [`Setup::create`]: crate::Setup::create
//! [`Setup::export_provided`]: crate::Setup::export_provided
//! [`Setup::export_required`]: crate::Setup::export_required
//! [`ExportProvided<P>`]: crate::ExportProvided
//! [`ExportRequired<P>`]: crate::ExportRequired
//! [`Component::exported_provided`]: crate::Component::exported_provided
//! [`Context::create`]: crate::Context::create
//! [`Context::fail`]: crate::Context::fail
//! [`Context::ok_or_fail`]: crate::Context::ok_or_fail
//! [`Fault`]: crate::Fault
//! [`Fault::error`]: crate::Fault::error
//! [`FaultAction`]: crate::FaultAction
//! [`RuntimeConfig::on_fault`]: crate::RuntimeConfig::on_fault
//! [`Simulation::faults`]: crate::Simulation::faults
