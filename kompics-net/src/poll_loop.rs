//! What the two mio event loops of this crate share: the TCP transport's
//! ([`crate::tcp`]) and the stream server's ([`crate::stream`]).
//!
//! Both own a listener and a waker, sleep in `mio::Poll` until a socket is ready, a requester
//! wakes them or a deadline is due, and visit again, before sleeping, the connections that used
//! up a budget. [`run`] is that round, once; each loop says through [`PollLoop`] what it does
//! with a ready listener, a ready socket, a wake-up and the end of a round. The helpers below
//! are the steps both take the same way: accepting, registering a connection, revisiting.

use std::fmt::Display;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};

/// The listening socket's token.
pub(crate) const LISTENER: Token = Token(0);
/// The waker's token.
pub(crate) const WAKER: Token = Token(1);
/// Readiness events taken from the OS per poll.
const EVENTS_CAPACITY: usize = 1024;

/// One event loop, as [`run`] drives it.
pub(crate) trait PollLoop {
    /// Names the loop in log lines (e.g. `kstream 127.0.0.1:6379`).
    fn label(&self) -> String;

    /// The loop's poll instance.
    fn poll_mut(&mut self) -> &mut Poll;

    /// How long to sleep: zero while connections wait for a revisit, else until the next
    /// deadline, or for ever.
    fn poll_timeout(&self) -> Option<Duration>;

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
        let timeout = lp.poll_timeout();
        if let Err(e) = lp.poll_mut().poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error!("{}: poll failed, stopping: {e}", lp.label());
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
