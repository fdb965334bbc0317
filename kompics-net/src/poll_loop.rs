//! What the two mio event loops of this crate share: the TCP transport's
//! ([`crate::tcp`]) and the stream server's ([`crate::stream`]).
//!
//! Both own a listener and a waker, sleep in `mio::Poll` until a socket is ready, a requester
//! wakes them or a deadline is due, and visit again, before sleeping, the connections that used
//! up a budget. [`run`] is that round, once; each loop says through [`PollLoop`] what it does
//! with a ready listener, a ready socket, a wake-up and the end of a round. [`Wakeup`] is how
//! other threads wake a loop or stop it. The helpers below are the steps both take the same
//! way: accepting, registering a connection, revisiting.

use std::fmt::Display;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};

/// The listening socket's token.
pub(crate) const LISTENER: Token = Token(0);
/// The waker's token.
pub(crate) const WAKER: Token = Token(1);
/// Readiness events taken from the OS per poll.
const EVENTS_CAPACITY: usize = 1024;

/// One event loop, as [`run`] drives it.
pub(crate) trait PollLoop {
    /// What the loop's log lines start with, before its address (e.g. `kstream`).
    const NAME: &'static str;

    /// The address the loop listens on, for its log lines.
    fn local_addr(&self) -> SocketAddr;

    /// The loop's poll instance.
    fn poll_mut(&mut self) -> &mut Poll;

    /// Whether connections used up a budget and wait for a revisit: then the loop only
    /// collects what else is ready, without sleeping.
    fn revisits_pending(&self) -> bool;

    /// The next deadline (a handshake, a backoff, a lingering connection), if any.
    fn next_deadline(&self) -> Option<Instant>;

    /// The listener is readable: accept what waits (see [`accept_next`]).
    fn accept_all(&mut self);

    /// A connection's socket is ready.
    fn on_socket(&mut self, token: Token, event: &Event);

    /// The waker fired; `false` if the loop was asked to stop.
    fn on_wake(&mut self) -> bool;

    /// The round's events are handled: revisit, fire deadlines, report.
    fn end_round(&mut self);
}

/// Runs rounds of `lp` until its waker asks it to stop or polling fails. The caller closes what
/// is left.
pub(crate) fn run<L: PollLoop>(lp: &mut L) {
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    loop {
        let timeout = if lp.revisits_pending() {
            Some(Duration::ZERO)
        } else {
            lp.next_deadline().map(|at| at.saturating_duration_since(Instant::now()))
        };
        if let Err(e) = lp.poll_mut().poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error!("{} {}: poll failed, stopping: {e}", L::NAME, lp.local_addr());
            return;
        }
        let mut woken = false;
        for event in events.iter() {
            match event.token() {
                LISTENER => lp.accept_all(),
                WAKER => woken = true,
                token => lp.on_socket(token, event),
            }
        }
        // The stop request is checked only after the round's socket events are handled, as
        // both loops always did: nothing already read is dropped.
        if woken && !lp.on_wake() {
            return;
        }
        lp.end_round();
    }
}

/// The next connection waiting on `listener`, or `None` when there is none for now (or accept
/// failed, which is logged under `label`; the next connection retries). Interrupted and aborted
/// accepts are skipped.
pub(crate) fn accept_next(
    listener: &TcpListener,
    label: impl Display,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        match listener.accept() {
            Ok(accepted) => return Some(accepted),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => {
                // Typically out of file descriptors.
                log::warn!("{label}: accept failed: {e}");
                return None;
            }
        }
    }
}

/// Registers a connection for readable and writable interest, once, edge-triggered, and turns
/// Nagle off: both loops batch their writes already, so Nagle would only add latency.
pub(crate) fn register_connection(
    registry: &Registry,
    stream: &mut TcpStream,
    token: Token,
) -> io::Result<()> {
    registry.register(stream, token, Interest::READABLE | Interest::WRITABLE)?;
    let _ = stream.set_nodelay(true);
    Ok(())
}

/// Visits once more each connection listed in `list(lp)` (those that used up a budget), and
/// keeps the list's allocation unless visiting refilled it.
pub(crate) fn revisit<L, T: Copy>(
    lp: &mut L,
    list: fn(&mut L) -> &mut Vec<T>,
    mut visit: impl FnMut(&mut L, T),
) {
    let mut ids = std::mem::take(list(lp));
    for &id in &ids {
        visit(lp, id);
    }
    ids.clear();
    let again = list(lp);
    if again.is_empty() {
        *again = ids;
    }
}

/// How other threads wake a loop (its [`WAKER`]) and ask it to stop. Waking costs a syscall, so
/// wake-ups coalesce: any number of them before the loop runs cost one.
pub(crate) struct Wakeup {
    waker: Waker,
    /// A wake-up is on its way: requesters need not wake the loop again.
    pending: AtomicBool,
    stop: AtomicBool,
    /// The loop's name and address, for log lines.
    label: String,
}

impl Wakeup {
    /// The waker of the loop polling `registry`; `label` names the loop in log lines.
    pub(crate) fn new(registry: &Registry, label: String) -> io::Result<Wakeup> {
        Ok(Wakeup {
            waker: Waker::new(registry, WAKER)?,
            pending: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            label,
        })
    }

    /// Wakes the loop unless a wake-up is already pending. Call it after queueing the work.
    pub(crate) fn wake(&self) {
        // SeqCst pairs with `take`: a requester that sees `true` here knows the loop has not
        // yet cleared the flag, so it will take the queued work after this requester's push.
        if !self.pending.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::error!("{}: cannot wake the event loop: {e}", self.label);
            }
        }
    }

    /// Called by the loop on a wake-up, before it takes the queued work.
    pub(crate) fn take(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    /// Asks the loop to stop and wakes it.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            log::error!("{}: cannot wake the event loop to stop it: {e}", self.label);
        }
    }

    /// Whether the loop was asked to stop.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
