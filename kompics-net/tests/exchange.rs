//! Two transports in one process: many messages both ways at once, in order; self-delivery;
//! messages queued before the peer listens.

mod common;

use std::thread;
use std::time::Duration;

use common::{Node, ROUTE};
use kompics_net::{NetMessage, NodeAddr, TransportEvent};

const MESSAGES: u64 = 20_000;

/// Frames a sender lets wait in its queue before pausing: far below `send_queue_frames_max`,
/// whose overflow would (by design) end the session.
const WINDOW: usize = 2048;

/// Sends `count` numbered messages from `from` to `to`, pausing while `WINDOW` frames wait.
fn send_numbered(from: &Node, to: NodeAddr, count: u64) {
    for seq in 0..count {
        while from.transport.queued_frames(to) >= WINDOW {
            thread::sleep(Duration::from_micros(100));
        }
        let msg =
            NetMessage::encode(from.addr(), to, ROUTE, &(seq, "payload of some length")).unwrap();
        if let Err(e) = from.transport.send(msg) {
            panic!("send {seq} refused: {e}");
        }
    }
}

/// Receives `count` numbered messages from `from` and checks they arrive in order, in one
/// session.
fn receive_numbered(node: &Node, from: NodeAddr, count: u64) {
    let mut next = 0;
    let mut sessions_up = 0;
    while next < count {
        match node.next_event() {
            TransportEvent::Deliver(msg) => {
                assert_eq!(msg.src, from);
                assert_eq!(msg.dst, node.addr());
                let (seq, _): (u64, String) = msg.decode().unwrap();
                assert_eq!(seq, next, "out of order");
                next += 1;
            }
            TransportEvent::SessionUp(peer) => {
                assert_eq!(peer, from);
                sessions_up += 1;
            }
            TransportEvent::SessionDown(peer) => panic!("session with {peer} ended mid-test"),
        }
    }
    assert_eq!(sessions_up, 1);
}

#[test]
fn many_messages_both_ways_concurrently_arrive_in_order() {
    let a = Node::start();
    let b = Node::start();
    thread::scope(|s| {
        s.spawn(|| send_numbered(&a, b.addr(), MESSAGES));
        s.spawn(|| send_numbered(&b, a.addr(), MESSAGES));
        s.spawn(|| receive_numbered(&b, a.addr(), MESSAGES));
        receive_numbered(&a, b.addr(), MESSAGES);
    });
}

#[test]
fn a_message_to_self_is_delivered_unchanged_on_the_loop_thread() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let transport = kompics_net::TcpTransport::start(
        kompics_net::TcpConfig::new("127.0.0.1:0".parse().unwrap(), common::secret_security()),
        Box::new(move |event| {
            let thread = thread::current().name().map(str::to_owned);
            let _ = tx.send((event, thread));
        }),
    )
    .unwrap();
    let me = transport.local_addr();
    let sent = NetMessage::new(me, me, ROUTE, vec![1, 2, 3]);
    transport.send(sent.clone()).unwrap();
    let (event, thread) = rx.recv_timeout(common::WAIT).unwrap();
    assert_eq!(event, TransportEvent::Deliver(sent));
    let thread = thread.expect("the loop thread is named");
    assert!(thread.starts_with("kompics-net"), "sink ran on {thread}");
    // No socket, so no session.
    transport.shutdown();
    assert!(rx.try_iter().next().is_none());
}

#[test]
fn messages_sent_before_the_peer_listens_are_delivered_once_it_does() {
    let (listener, b_addr) = common::reserve_addr();
    drop(listener); // nothing listens there now: connects are refused and retried
    let a = Node::start();
    for i in 0..10u32 {
        a.send(b_addr, &i);
    }
    thread::sleep(Duration::from_millis(50)); // let a few attempts fail
    let b = Node::start_on(b_addr.socket_addr(), |_| {});
    for i in 0..10u32 {
        assert_eq!(b.recv_from::<u32>(a.addr()), i);
    }
    assert_eq!(a.wait_for("session up", |e| matches!(e, TransportEvent::SessionUp(_))).len(), 1);
}

#[test]
fn shutdown_reports_session_down_for_each_session() {
    let a = Node::start();
    let b = Node::start();
    common::assert_exchange(&a, &b, "before shutdown");
    let Node { transport, events } = a;
    transport.shutdown();
    let rest: Vec<_> = events.try_iter().collect();
    assert!(rest.contains(&TransportEvent::SessionDown(b.addr())), "{rest:?}");
    b.wait_for("session down", |e| matches!(e, TransportEvent::SessionDown(_)));
}

#[test]
fn large_messages_arrive_intact_and_in_order() {
    // 200 × 64 KiB: well past the loop's per-visit read and write budgets, so the transfer
    // also exercises revisiting a connection that still has work.
    const COUNT: u32 = 200;
    const SIZE: usize = 64 * 1024;
    let a = Node::start();
    let b = Node::start();
    let payload = |i: u32| -> Vec<u8> {
        (0..SIZE).map(|j| (j as u32).wrapping_mul(31).wrapping_add(i) as u8).collect()
    };
    thread::scope(|s| {
        s.spawn(|| {
            for i in 0..COUNT {
                a.transport.send(NetMessage::new(a.addr(), b.addr(), ROUTE, payload(i))).unwrap();
            }
        });
        let mut next = 0;
        while next < COUNT {
            if let TransportEvent::Deliver(msg) = b.next_event() {
                assert!(msg.payload == payload(next), "message {next} corrupted or out of order");
                next += 1;
            }
        }
    });
}

/// A payload of exactly `payload_bytes_max(frame_bytes_max)` on the largest route is sent; one
/// byte more is refused with `TooLarge` and the numbers, and the session goes on: the receiver
/// sees no `SessionDown` or new `SessionUp`, just the next messages.
#[test]
fn the_largest_payload_is_sent_and_one_byte_more_is_refused_without_ending_the_session() {
    use kompics_net::frame::message_frame_len;
    use kompics_net::{payload_bytes_max, Route, SendError};

    const FRAME_BYTES_MAX: usize = 70_000; // past the bin16 range, so payloads need bin32
    let largest_route = Route::new(u32::MAX, u32::MAX);
    let a = Node::start_with(|c| c.frame_bytes_max = FRAME_BYTES_MAX);
    let b = Node::start_with(|c| c.frame_bytes_max = FRAME_BYTES_MAX);
    a.send(b.addr(), &"open");
    assert_eq!(b.recv_from::<String>(a.addr()), "open");

    let max = payload_bytes_max(FRAME_BYTES_MAX);
    let too_large = NetMessage::new(a.addr(), b.addr(), largest_route, vec![1; max + 1]);
    assert_eq!(
        a.transport.send(too_large),
        Err(SendError::TooLarge {
            len: message_frame_len(largest_route, max + 1),
            max: FRAME_BYTES_MAX
        })
    );
    let largest = NetMessage::new(a.addr(), b.addr(), largest_route, vec![2; max]);
    a.transport.send(largest).expect("the largest payload fits");
    a.send(b.addr(), &"after");

    let events = b.wait_for(
        "the last message",
        |e| matches!(e, TransportEvent::Deliver(m) if m.route == common::ROUTE),
    );
    let [TransportEvent::Deliver(big), TransportEvent::Deliver(last)] = &events[..] else {
        panic!("expected the largest message, then the last, in the same session: {events:?}");
    };
    assert_eq!((big.route, big.payload.len()), (largest_route, max));
    assert_eq!(last.decode::<String>().unwrap(), "after");
}
