//! The bounded send queue and the other ways `send` can refuse a message.

mod common;

use std::time::{Duration, Instant};

use common::{hello, plaintext, reserve_addr, welcome, Node, RawPeer, ROUTE, WAIT};
use kompics_net::{Frame, NetMessage, NodeAddr, SendError, TransportEvent};

const QUEUE_MAX: usize = 64;
const BIG: usize = 64 * 1024;

fn numbered(from: NodeAddr, to: NodeAddr, seq: u64) -> NetMessage {
    let mut payload = seq.to_be_bytes().to_vec();
    payload.resize(BIG, 0xab);
    NetMessage::new(from, to, ROUTE, payload)
}

fn seq_of(frame: &Frame) -> u64 {
    match frame {
        Frame::Message { payload, .. } => u64::from_be_bytes(payload[..8].try_into().unwrap()),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Accepts the node's next connection on `listener` and completes the handshake as `me`.
fn accept_session(listener: &std::net::TcpListener, node: NodeAddr, me: NodeAddr) -> RawPeer {
    let (stream, _) = listener.accept().unwrap();
    let mut raw = RawPeer::from_stream(stream);
    assert_eq!(raw.read_frame(), Some(hello(node)));
    raw.write_frame(&welcome(me));
    raw
}

#[test]
fn a_full_send_queue_ends_the_session_and_the_next_send_starts_a_new_one() {
    // The peer is a raw socket that completes the handshake and then stops reading, so the
    // kernel buffers fill and frames pile up in the node's queue.
    let (listener, peer) = reserve_addr();
    let a = Node::start_with(|c| {
        plaintext(c);
        c.send_queue_frames_max = QUEUE_MAX;
    });
    a.transport.send(numbered(a.addr(), peer, 0)).unwrap();
    let mut raw = accept_session(&listener, a.addr(), peer);
    a.wait_for("session up", |e| *e == TransportEvent::SessionUp(peer));

    let mut seq = 1;
    let err = loop {
        match a.transport.send(numbered(a.addr(), peer, seq)) {
            Ok(()) => seq += 1,
            Err(e) => break e,
        }
        assert!(seq < 100_000, "the queue never filled");
        // Once frames wait (the socket is blocked), give the loop time to see each one, so
        // the overflow happens while the loop is waiting for a writable event that a peer
        // which stopped reading never sends. (Regression: the overflow was not noticed then.)
        if a.transport.queued_frames(peer) > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    assert_eq!(err, SendError::QueueFull { peer, frames_max: QUEUE_MAX });
    // Sent after the overflow: belongs to the next session.
    let after = seq + 1;
    a.transport.send(numbered(a.addr(), peer, after)).unwrap();

    let events = a.wait_for("session down", |e| matches!(e, TransportEvent::SessionDown(_)));
    assert_eq!(events, vec![TransportEvent::SessionDown(peer)]);

    // The old connection delivered a gap-free prefix of what was sent, then ended.
    let mut expected = 0;
    while let Some(frame) = raw.read_frame() {
        assert_eq!(seq_of(&frame), expected, "a message inside the session was skipped");
        expected += 1;
    }
    assert!(expected < seq, "everything arrived, so the queue cannot have been full");

    // The message sent after the overflow opens a new session and comes first in it.
    let mut raw = accept_session(&listener, a.addr(), peer);
    a.wait_for("new session up", |e| *e == TransportEvent::SessionUp(peer));
    assert_eq!(seq_of(&raw.read_frame().unwrap()), after);
}

#[test]
fn messages_wait_in_the_queue_while_there_is_no_session() {
    let (listener, peer) = reserve_addr();
    drop(listener);
    let a = Node::start_with(|c| {
        plaintext(c);
        c.send_queue_frames_max = 3;
    });
    for seq in 0..3 {
        a.transport.send(numbered(a.addr(), peer, seq)).unwrap();
    }
    assert_eq!(a.transport.queued_frames(peer), 3);
    // Full without a session: the queue is dropped, and users learn that messages to the
    // peer were lost as they would in a session: SessionDown.
    assert!(matches!(
        a.transport.send(numbered(a.addr(), peer, 3)),
        Err(SendError::QueueFull { .. })
    ));
    assert_eq!(a.transport.queued_frames(peer), 0);
    assert_eq!(a.next_event(), TransportEvent::SessionDown(peer));
    common::wait_for_warning(&[&peer.to_string(), "with no session up"]);
    assert!(a.drain_for(Duration::from_millis(50)).is_empty());
}

#[test]
fn a_message_larger_than_the_frame_bound_is_refused_and_nothing_changes() {
    let a = Node::start_with(|c| c.frame_bytes_max = 4096);
    let b = Node::start();
    let too_big = NetMessage::new(a.addr(), b.addr(), ROUTE, vec![0; 5000]);
    assert!(matches!(a.transport.send(too_big), Err(SendError::TooLarge { max: 4096, .. })));
    assert_eq!(a.transport.queued_frames(b.addr()), 0);
    common::assert_exchange(&a, &b, "after refusing a large message");
}

#[test]
fn an_unroutable_destination_is_refused() {
    let a = Node::start();
    for dst in ["0.0.0.0:4000", "127.0.0.1:0"] {
        let dst = NodeAddr(dst.parse().unwrap());
        assert_eq!(
            a.transport.send(NetMessage::new(a.addr(), dst, ROUTE, vec![])),
            Err(SendError::InvalidDestination(dst))
        );
    }
}

#[test]
fn sends_fail_once_the_loop_has_stopped() {
    let a = Node::start();
    let me = a.addr();
    let b = kompics_net::TcpTransport::start(
        kompics_net::TcpConfig::new("127.0.0.1:0".parse().unwrap(), common::secret_security()),
        Box::new(|event| {
            if let TransportEvent::Deliver(_) = event {
                panic!("sink panics on purpose (test)");
            }
        }),
    )
    .unwrap();
    let b_addr = b.local_addr();
    b.send(NetMessage::new(b_addr, b_addr, ROUTE, vec![])).unwrap();
    let deadline = Instant::now() + WAIT;
    while b.is_running() {
        assert!(Instant::now() < deadline, "loop still running after its sink panicked");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(b.send(NetMessage::new(b_addr, me, ROUTE, vec![])), Err(SendError::Stopped));
}

#[test]
fn an_overflow_during_the_handshake_is_reported_before_the_session_starts() {
    let (listener, peer) = reserve_addr();
    let a = Node::start_with(|c| {
        plaintext(c);
        c.send_queue_frames_max = 3;
    });
    for seq in 0..3 {
        a.transport.send(numbered(a.addr(), peer, seq)).unwrap();
    }
    // The connection is open and the hello read, but the welcome is held back.
    let (stream, _) = listener.accept().unwrap();
    let mut raw = RawPeer::from_stream(stream);
    assert_eq!(raw.read_frame(), Some(hello(a.addr())));
    assert!(matches!(
        a.transport.send(numbered(a.addr(), peer, 3)),
        Err(SendError::QueueFull { .. })
    ));
    a.transport.send(numbered(a.addr(), peer, 4)).unwrap();
    raw.write_frame(&welcome(peer));

    // Whether the loop notices the overflow before or while the welcome arrives, the lost
    // queue is reported first, then the session starts with the message sent after it.
    let events = a.wait_for("session up", |e| matches!(e, TransportEvent::SessionUp(_)));
    assert_eq!(events, vec![TransportEvent::SessionDown(peer), TransportEvent::SessionUp(peer)]);
    assert_eq!(seq_of(&raw.read_frame().unwrap()), 4);
}
