//! Session lifecycle: a peer restarted on the same port gives SessionUp / SessionDown /
//! SessionUp in that order; simultaneous connects end with exactly one session and no lost
//! message.

mod common;

use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use common::{Node, ROUTE};
use kompics_net::{NetMessage, NodeAddr, TransportEvent};

fn sessions(events: &[TransportEvent]) -> Vec<TransportEvent> {
    events.iter().filter(|e| !matches!(e, TransportEvent::Deliver(_))).cloned().collect()
}

#[test]
fn a_peer_restarted_on_the_same_port_gets_a_new_session() {
    let a = Node::start();
    let b = Node::start();
    let b_addr = b.addr();
    let mut seen = Vec::new();

    a.send(b_addr, &"first");
    assert_eq!(b.recv_from::<String>(a.addr()), "first");
    seen.extend(a.wait_for("session up", |e| matches!(e, TransportEvent::SessionUp(_))));

    b.transport.shutdown();
    seen.extend(a.wait_for("session down", |e| matches!(e, TransportEvent::SessionDown(_))));

    let b = Node::start_on(b_addr.socket_addr(), |_| {});
    assert_eq!(b.addr(), b_addr);
    a.send(b_addr, &"second");
    assert_eq!(b.recv_from::<String>(a.addr()), "second");
    seen.extend(a.wait_for("session up", |e| matches!(e, TransportEvent::SessionUp(_))));

    assert_eq!(
        sessions(&seen),
        vec![
            TransportEvent::SessionUp(b_addr),
            TransportEvent::SessionDown(b_addr),
            TransportEvent::SessionUp(b_addr),
        ]
    );
    // And the restarted node can answer over the new session.
    b.send(a.addr(), &"reply");
    assert_eq!(a.recv_from::<String>(b_addr), "reply");
}

#[test]
fn a_restarted_peer_that_sends_first_also_gets_a_new_session() {
    let a = Node::start();
    let b = Node::start();
    let b_addr = b.addr();
    common::assert_exchange(&a, &b, "before restart");
    b.transport.shutdown();
    a.wait_for("session down", |e| matches!(e, TransportEvent::SessionDown(_)));

    let b = Node::start_on(b_addr.socket_addr(), |_| {});
    b.send(a.addr(), &"I am back");
    assert_eq!(a.recv_from::<String>(b_addr), "I am back");
    common::assert_exchange(&a, &b, "after restart");
}

const PER_ROUND: u32 = 500;

/// Both nodes start sending to each other at the same moment, so both dial.
fn simultaneous_round(round: u32) {
    let a = Node::start();
    let b = Node::start();
    let start = Barrier::new(2);
    let send_all = |from: &Node, to: NodeAddr| {
        start.wait();
        for i in 0..PER_ROUND {
            let msg = NetMessage::encode(from.addr(), to, ROUTE, &i).unwrap();
            from.transport.send(msg).unwrap();
        }
    };
    let check = |node: &Node, from: NodeAddr| {
        let mut events = Vec::new();
        let mut next = 0;
        while next < PER_ROUND {
            let event = node.next_event();
            if let TransportEvent::Deliver(msg) = &event {
                assert_eq!(msg.decode::<u32>().unwrap(), next, "round {round}: lost or reordered");
                next += 1;
            }
            events.push(event);
        }
        // Give a late, spurious session event the chance to show up.
        events.extend(node.drain_for(Duration::from_millis(100)));
        assert_eq!(
            sessions(&events),
            vec![TransportEvent::SessionUp(from)],
            "round {round}: exactly one session"
        );
    };
    thread::scope(|s| {
        s.spawn(|| send_all(&a, b.addr()));
        s.spawn(|| send_all(&b, a.addr()));
        s.spawn(|| check(&a, b.addr()));
        check(&b, a.addr());
    });
}

#[test]
fn simultaneous_connects_end_with_one_session_and_no_lost_message() {
    // The race is timing-dependent; several rounds make both orders of events likely.
    for round in 0..8 {
        simultaneous_round(round);
    }
}
