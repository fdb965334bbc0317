//! Request/response: a request that is answered to its requester alone.
//!
//! The answer travels back to the requester directly; see [`Request`] for the rules.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::channel::Inbox;
use crate::component::core::{enqueue, Schedulable};
use crate::event::Event;

/// A request and the means to answer it: the reply goes back to whoever sent the request, and
/// to no one else.
///
/// An indication triggered on a provided port goes down every channel of the port. That is
/// right for news (a leader change, a delivered message), wrong for an answer: every requester
/// would see every other requester's answers and need ids to pick out its own. A [`Request`]
/// carries a [`Responder`] bound to where it came from, so the provider answers it with
/// [`Request::reply`] and the answer reaches that requester only, as an indication of its
/// required port, whatever other channels the port has. No ids, no filtering, one hop back.
///
/// - A component asks with [`RequiredPort::request`](crate::RequiredPort::request); the answer
///   arrives at its `Require` handler like any indication, but only at this component.
/// - Code outside the runtime (a test, a `main`, another thread) asks with
///   [`ProvidedRef::ask`](crate::ProvidedRef::ask) and gets a [`Pending`] answer:
///   [`Pending::wait`] blocks with a timeout on the threaded runtime;
///   [`Simulation::run_until_answered`](crate::Simulation::run_until_answered) (or
///   [`Pending::try_result`] after `run_for`) gets it deterministically in the simulator.
///
/// A port declares which of its requests expect an answer in its types: the request type (or a
/// variant of the request enum) is a `Request<Q, A>`, and `A` converts into the port's
/// indication type. The compiler checks both.
///
/// ```
/// use std::time::Duration;
/// use kompics_core::*;
///
/// struct Square;
/// #[derive(Clone, Debug)]
/// struct Root(u64);
/// impl Port for Square {
///     type Request = Request<u64, Root>; // ask a number, get back its root
///     type Indication = Root;
/// }
///
/// struct Squarer { _port: ProvidedPort<Square> }
/// impl ComponentDefinition for Squarer {}
/// impl Provide<Square> for Squarer {
///     fn handle(&mut self, _ctx: &mut Context<Self>, request: Request<u64, Root>) {
///         let root = (*request.payload() as f64).sqrt() as u64;
///         request.reply(Root(root)); // to the one who asked, not down every channel
///     }
/// }
///
/// let sim = Simulation::new(1);
/// let squarer = sim.create(|s| Squarer { _port: s.provided() });
/// squarer.start();
/// let mut pending = squarer.provided::<Square>().ask(81);
/// let Root(root) = sim.run_until_answered(&mut pending, Duration::from_secs(1)).unwrap();
/// assert_eq!(root, 9);
/// ```
///
/// The cost is one reference-count increment per request and none per answer beyond the event
/// itself: the responder of a required port is allocated once, with the port.
///
/// `Q` is what is asked, `A` the answer. Use it as a port's request type, or as the type of a
/// variant of the request enum (see [`port_events!`](crate::port_events)). Cloning a request
/// (once per channel, when it is triggered on a port with several) clones the responder: each
/// provider that gets it may answer.
pub struct Request<Q, A> {
    payload: Q,
    responder: Responder<A>,
}

impl<Q, A> Request<Q, A> {
    /// A request whose answer goes to `responder`. Components do not need this:
    /// [`RequiredPort::request`](crate::RequiredPort::request) and
    /// [`ProvidedRef::ask`](crate::ProvidedRef::ask) build the request.
    pub fn new(payload: Q, responder: Responder<A>) -> Self {
        Request { payload, responder }
    }

    /// What is asked.
    pub fn payload(&self) -> &Q {
        &self.payload
    }

    /// Answers the request: `answer` goes to the requester alone. Returns false if the
    /// requester is gone (killed, or an `ask` that timed out) and the answer was dropped.
    pub fn reply(self, answer: A) -> bool {
        self.responder.reply(answer)
    }

    /// Splits the request, to keep the responder and answer later (after a disk write, after
    /// a quorum acknowledged): the requester waits, the provider goes on with other events.
    pub fn into_parts(self) -> (Q, Responder<A>) {
        (self.payload, self.responder)
    }
}

impl<Q: Clone, A> Clone for Request<Q, A> {
    fn clone(&self) -> Self {
        Request { payload: self.payload.clone(), responder: self.responder.clone() }
    }
}

impl<Q: fmt::Debug, A> fmt::Debug for Request<Q, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({:?} -> {:?})", self.payload, self.responder)
    }
}

/// Where the answer to one request goes: the required port of the requester, or the
/// [`Pending`] of an `ask`. Answering consumes it.
pub struct Responder<A> {
    to: ReplyTo<A>,
}

enum ReplyTo<A> {
    Port(Arc<dyn ReplySink<A>>),
    Ask(Sender<A>),
    Nobody,
}

impl<A> Clone for Responder<A> {
    fn clone(&self) -> Self {
        let to = match &self.to {
            ReplyTo::Port(sink) => ReplyTo::Port(sink.clone()),
            ReplyTo::Ask(tx) => ReplyTo::Ask(tx.clone()),
            ReplyTo::Nobody => ReplyTo::Nobody,
        };
        Responder { to }
    }
}

impl<A> fmt::Debug for Responder<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.to {
            ReplyTo::Port(_) => f.write_str("port"),
            ReplyTo::Ask(_) => f.write_str("ask"),
            ReplyTo::Nobody => f.write_str("nobody"),
        }
    }
}

impl<A> Responder<A> {
    /// A responder that drops the answer: for requests whose sender wants no answer, and for
    /// tests that call a handler directly.
    pub fn nobody() -> Self {
        Responder { to: ReplyTo::Nobody }
    }

    pub(crate) fn port(sink: Arc<dyn ReplySink<A>>) -> Self {
        Responder { to: ReplyTo::Port(sink) }
    }

    /// Sends `answer` to the requester alone; false if it is gone and the answer was dropped.
    pub fn reply(self, answer: A) -> bool {
        match self.to {
            ReplyTo::Port(sink) => sink.deliver(answer),
            ReplyTo::Ask(tx) => tx.try_send(answer).is_ok(),
            ReplyTo::Nobody => false,
        }
    }
}

/// Something that takes answers of type `A` back to a requester, seen without its type.
pub(crate) trait ReplySink<A>: Send + Sync {
    fn deliver(&self, answer: A) -> bool;
}

/// The answer path of one required port: straight into its inbox, past its channels.
pub(crate) struct PortReplier<I> {
    pub(crate) inbox: Arc<Inbox<I>>,
    pub(crate) target: Weak<dyn Schedulable>,
    /// The requester's subscription: an answer it does not handle is dropped, like an
    /// indication it does not handle.
    pub(crate) accepts: Option<fn(&I) -> bool>,
}

impl<I: Event, A: Into<I>> ReplySink<A> for PortReplier<I> {
    fn deliver(&self, answer: A) -> bool {
        let event: I = answer.into();
        if self.accepts.is_some_and(|accepts| !accepts(&event)) {
            return false;
        }
        match self.target.upgrade() {
            Some(target) => {
                enqueue(&target, || self.inbox.queue.push(event));
                true
            }
            None => false,
        }
    }
}

/// Why an `ask` got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskError {
    /// No answer within the time allowed. The request may still be handled later; its answer
    /// is then dropped.
    Timeout,
    /// The request was dropped unanswered: the provider was killed or no longer exists, it does
    /// not handle this request type, or it dropped the request without replying.
    Dropped,
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Timeout => f.write_str("no answer in time"),
            AskError::Dropped => f.write_str("the request was dropped unanswered"),
        }
    }
}

impl std::error::Error for AskError {}

/// The answer to an [`ask`](crate::ProvidedRef::ask), once it comes.
///
/// If every copy of the request is dropped without an answer (the provider was killed, say),
/// the pending answer resolves to [`AskError::Dropped`] at once instead of waiting out its
/// timeout.
pub struct Pending<A> {
    rx: Receiver<A>,
    done: Option<Result<A, AskError>>,
    taken: bool,
}

impl<A> fmt::Debug for Pending<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.done {
            None => "waiting",
            Some(Ok(_)) => "answered",
            Some(Err(_)) => "dropped",
        };
        write!(f, "Pending<{}>({state})", std::any::type_name::<A>())
    }
}

impl<A> Pending<A> {
    /// A pending answer and the responder that resolves it.
    pub(crate) fn new() -> (Pending<A>, Responder<A>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        (Pending { rx, done: None, taken: false }, Responder { to: ReplyTo::Ask(tx) })
    }

    /// Blocks the calling thread until the answer comes, the request is dropped, or `timeout`
    /// passes. For the threaded runtime; never call it from a handler (it would block a
    /// worker), nor in a simulation (nothing runs while the driver waits: use
    /// [`Simulation::run_until_answered`](crate::Simulation::run_until_answered)).
    pub fn wait(mut self, timeout: Duration) -> Result<A, AskError> {
        if let Some(done) = self.done.take() {
            return done;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(answer) => Ok(answer),
            Err(RecvTimeoutError::Timeout) => Err(AskError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(AskError::Dropped),
        }
    }

    /// The answer if it has come, or the error if the request was dropped; `None` while it may
    /// still come. Once it returned `Some`, later calls return `None`: the result was taken.
    pub fn try_result(&mut self) -> Option<Result<A, AskError>> {
        self.poll();
        let done = self.done.take();
        self.taken |= done.is_some();
        done
    }

    /// Whether [`try_result`](Pending::try_result) would return `Some`.
    pub fn is_resolved(&mut self) -> bool {
        self.poll();
        self.done.is_some()
    }

    fn poll(&mut self) {
        if self.done.is_none() && !self.taken {
            match self.rx.try_recv() {
                Ok(answer) => self.done = Some(Ok(answer)),
                Err(TryRecvError::Disconnected) => self.done = Some(Err(AskError::Dropped)),
                Err(TryRecvError::Empty) => {}
            }
        }
    }
}
