//! State shared between the threads that call [`super::TcpTransport::send`] and the event loop.
//!
//! Senders encode each message straight into the destination peer's [`Outbox`] (one byte
//! buffer per peer, under a mutex), so the loop never encodes and a send costs no allocation
//! once the buffer has grown. The loop takes a peer's whole buffer at once by swapping it with
//! its own empty write buffer: that is the write batching, with no copy.
//!
//! Waking the loop costs a syscall, so it happens only when needed: a peer's outbox is put on
//! the `ready` list (and the loop woken) only when it is not already `listed`, and
//! the loop's `Wakeup` makes any number of wake-ups before the loop runs cost one syscall.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::error::SendError;
use crate::address::NodeAddr;
use crate::frame::{encode_message, message_frame_len, FrameError};
use crate::hasher::FastHashBuilder;
use crate::message::NetMessage;
use crate::poll_loop::Wakeup;

/// Frames waiting for one peer, and what the loop and the senders tell each other about it.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Encoded frames, back to back, in send order.
    pub(crate) bytes: Vec<u8>,
    /// Number of frames in `bytes`.
    pub(crate) frames: usize,
    /// The loop will look at this outbox again without being told: the peer is on the ready
    /// list, or its connection is waiting to be writable. Senders wake the loop only when this
    /// is false.
    pub(crate) listed: bool,
    /// The session currently up with this peer (set and cleared by the loop).
    pub(crate) session: Option<u64>,
    /// A send found the queue full and dropped it; the loop has not yet dealt with that.
    pub(crate) overflowed: bool,
    /// The session that was up at that overflow, if any: the loop must end it.
    pub(crate) reset_session: Option<u64>,
    /// How many session ends there have been for this peer: incremented under this lock where
    /// the queue is dropped for one (by the loop as it reports a `SessionDown`, or by a send
    /// that overflows the queue, whose `SessionDown` the loop reports later). Every
    /// `SessionDown` carries the count at its report, so a sender that passes back the count it
    /// has seen (`Shared::send` with a fence) can tell whether its message was meant for a
    /// session that has already ended.
    pub(crate) downs: u64,
}

/// What the loop must do about an overflow it has just noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// No overflow, or it concerned a session that has ended (and was reported) since.
    Handled,
    /// It happened during the current session: end that session.
    EndSession,
    /// It happened while no session was up: report `SessionDown` (queued messages were lost).
    ReportDown,
}

impl Outbox {
    /// Takes the pending overflow, if any, given the session the loop has up now.
    pub(crate) fn take_overflow(&mut self, current: Option<u64>) -> Overflow {
        if !std::mem::take(&mut self.overflowed) {
            return Overflow::Handled;
        }
        match self.reset_session.take() {
            None => Overflow::ReportDown,
            Some(session) if Some(session) == current => Overflow::EndSession,
            Some(_) => Overflow::Handled,
        }
    }
}

/// Everything the senders and the loop share.
pub(crate) struct Shared {
    /// This node.
    pub(crate) local: NodeAddr,
    frame_bytes_max: usize,
    send_queue_frames_max: usize,
    peers_max: usize,
    outboxes: RwLock<HashMap<NodeAddr, Arc<Mutex<Outbox>>, FastHashBuilder>>,
    /// Peers whose outbox got frames since the loop last looked.
    ready: Mutex<Vec<NodeAddr>>,
    /// Messages this node sent to itself, delivered by the loop.
    local_queue: Mutex<VecDeque<NetMessage>>,
    wakeup: Wakeup,
    running: AtomicBool,
}

impl Shared {
    /// Shared state for a transport on `local`.
    pub(crate) fn new(
        local: NodeAddr,
        frame_bytes_max: usize,
        send_queue_frames_max: usize,
        peers_max: usize,
        wakeup: Wakeup,
    ) -> Self {
        Shared {
            local,
            frame_bytes_max,
            send_queue_frames_max,
            peers_max,
            outboxes: RwLock::new(HashMap::default()),
            ready: Mutex::new(Vec::new()),
            local_queue: Mutex::new(VecDeque::new()),
            wakeup,
            running: AtomicBool::new(true),
        }
    }

    /// Queues `msg` for its destination (see `TcpTransport::send`). With `fence: Some(seen)`,
    /// a message to a peer for which more than `seen` `SessionDown`s have been reported is
    /// discarded (`Ok(false)`): the sender sent it before learning that its session had ended,
    /// so it belongs to that session and is covered by the `SessionDown` still on its way.
    pub(crate) fn send(&self, msg: NetMessage, fence: Option<u64>) -> Result<bool, SendError> {
        if !self.is_running() {
            return Err(SendError::Stopped);
        }
        // Refused before anything changes: a message that cannot be sent is its sender's error,
        // not a loss inside the session (see `crate::port`). Checked for messages to this node
        // too, which need no frame, so that what a component may send does not depend on
        // where its peer runs.
        let len = message_frame_len(msg.route, msg.payload.len());
        if len > self.frame_bytes_max {
            return Err(SendError::TooLarge { len, max: self.frame_bytes_max });
        }
        if msg.dst == self.local {
            return self.send_local(msg).map(|()| true);
        }
        if !msg.dst.is_routable() {
            return Err(SendError::InvalidDestination(msg.dst));
        }
        {
            let outboxes = self.outboxes.read();
            if let Some(outbox) = outboxes.get(&msg.dst) {
                return self.enqueue(outbox, &msg, fence);
            }
        }
        let outbox = self.outbox(msg.dst)?;
        self.enqueue(&outbox, &msg, fence)
    }

    /// The outbox for `peer`, created if new (bounded by `peers_max`).
    pub(crate) fn outbox(&self, peer: NodeAddr) -> Result<Arc<Mutex<Outbox>>, SendError> {
        let mut outboxes = self.outboxes.write();
        let count = outboxes.len();
        match outboxes.get(&peer) {
            Some(outbox) => Ok(Arc::clone(outbox)),
            None if count >= self.peers_max => Err(SendError::TooManyPeers { max: self.peers_max }),
            None => Ok(Arc::clone(outboxes.entry(peer).or_default())),
        }
    }

    /// Frames waiting in `peer`'s outbox (not yet taken by its connection).
    pub(crate) fn queued_frames(&self, peer: NodeAddr) -> usize {
        if peer == self.local {
            return self.local_queue.lock().len();
        }
        self.outboxes.read().get(&peer).map_or(0, |outbox| outbox.lock().frames)
    }

    fn enqueue(
        &self,
        outbox: &Mutex<Outbox>,
        msg: &NetMessage,
        fence: Option<u64>,
    ) -> Result<bool, SendError> {
        let mut ob = outbox.lock();
        if fence.is_some_and(|seen| seen < ob.downs) {
            return Ok(false);
        }
        if ob.frames >= self.send_queue_frames_max {
            // Documented policy: end the session rather than drop one message inside it.
            ob.bytes.clear();
            ob.frames = 0;
            // This is the point the SessionDown the loop will report stands for: fenced
            // senders that have not seen it yet are discarded from here on.
            ob.downs += 1;
            ob.overflowed = true;
            ob.reset_session = ob.session;
            // Always tell the loop, even if the outbox is listed: "listed" may only mean that
            // a writable event will bring the loop back, and a peer that stopped reading (the
            // usual reason for a full queue) never produces one.
            ob.listed = true;
            self.ready.lock().push(msg.dst);
            drop(ob);
            self.wake();
            return Err(SendError::QueueFull {
                peer: msg.dst,
                frames_max: self.send_queue_frames_max,
            });
        }
        encode_message(msg.route, &msg.payload, &mut ob.bytes, self.frame_bytes_max).map_err(
            |e| match e {
                FrameError::Oversized { len, max } => SendError::TooLarge { len, max },
                other => SendError::Encode(other.to_string()),
            },
        )?;
        ob.frames += 1;
        let newly_listed = self.list(&mut ob, msg.dst);
        drop(ob);
        if newly_listed {
            self.wake();
        }
        Ok(true)
    }

    /// Puts `peer` on the ready list unless the loop already knows to look at it.
    fn list(&self, ob: &mut Outbox, peer: NodeAddr) -> bool {
        if ob.listed {
            return false;
        }
        ob.listed = true;
        self.ready.lock().push(peer);
        true
    }

    fn send_local(&self, msg: NetMessage) -> Result<(), SendError> {
        let mut queue = self.local_queue.lock();
        if queue.len() >= self.send_queue_frames_max {
            return Err(SendError::QueueFull {
                peer: self.local,
                frames_max: self.send_queue_frames_max,
            });
        }
        let was_empty = queue.is_empty();
        queue.push_back(msg);
        drop(queue);
        // A non-empty queue means a wake-up is already on its way.
        if was_empty {
            self.wake();
        }
        Ok(())
    }

    /// Wakes the loop unless a wake-up is already pending.
    pub(crate) fn wake(&self) {
        self.wakeup.wake();
    }

    /// Called by the loop on a wake-up, before it drains the lists.
    pub(crate) fn take_wake(&self) {
        self.wakeup.take();
    }

    /// Takes the ready list, leaving `into` (emptied) in its place to reuse its allocation.
    pub(crate) fn take_ready(&self, into: &mut Vec<NodeAddr>) {
        into.clear();
        std::mem::swap(&mut *self.ready.lock(), into);
    }

    /// Takes every message this node sent to itself.
    pub(crate) fn take_local(&self, into: &mut VecDeque<NetMessage>) {
        into.clear();
        std::mem::swap(&mut *self.local_queue.lock(), into);
    }

    /// Asks the loop to stop and wakes it.
    pub(crate) fn request_stop(&self) {
        self.wakeup.request_stop();
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.wakeup.stop_requested()
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Marks the loop as gone; later sends fail with [`SendError::Stopped`].
    pub(crate) fn set_stopped(&self) {
        self.running.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overflowed_during(session: Option<u64>) -> Outbox {
        Outbox { overflowed: true, reset_session: session, ..Outbox::default() }
    }

    #[test]
    fn no_overflow_needs_nothing() {
        assert_eq!(Outbox::default().take_overflow(Some(1)), Overflow::Handled);
    }

    #[test]
    fn an_overflow_during_the_current_session_ends_it() {
        let mut ob = overflowed_during(Some(4));
        assert_eq!(ob.take_overflow(Some(4)), Overflow::EndSession);
        assert_eq!(ob.take_overflow(Some(4)), Overflow::Handled, "taken once");
    }

    #[test]
    fn an_overflow_during_an_ended_session_was_already_reported() {
        assert_eq!(overflowed_during(Some(4)).take_overflow(Some(5)), Overflow::Handled);
        assert_eq!(overflowed_during(Some(4)).take_overflow(None), Overflow::Handled);
    }

    #[test]
    fn an_overflow_without_a_session_is_reported_as_session_down() {
        assert_eq!(overflowed_during(None).take_overflow(None), Overflow::ReportDown);
    }
}
