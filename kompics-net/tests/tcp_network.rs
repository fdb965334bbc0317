//! The TCP Network component: two runtimes in one process exchange messages over loopback; a
//! peer killed and restarted on the same port reconnects, with session events in order.

use std::net::SocketAddr;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use kompics_core::*;
use kompics_net::frame::message_frame_len;
use kompics_net::{
    route_selector, NetEvent, NetMessage, Network, NodeAddr, PeerSecurity, Route, SendFailure,
    TcpConfig, TcpNetwork,
};

const ROUTE: Route = Route::new(9, 0);
const WAIT: Duration = Duration::from_secs(10);

/// Sends what it is told to, forwards what the network says to a test channel.
struct Endpoint {
    net: RequiredPort<Network>,
    me: NodeAddr,
    route: Route,
    out: Sender<NetEvent>,
}

/// Tells an endpoint to send a payload of this many bytes.
#[derive(Clone, Debug)]
struct SendBytes(NodeAddr, usize);

impl Receive<SendBytes> for Endpoint {
    fn receive(&mut self, _ctx: &mut Context<Self>, SendBytes(to, len): SendBytes) {
        self.net.trigger(NetMessage::new(self.me, to, self.route, vec![7; len]));
    }
}

impl ComponentDefinition for Endpoint {}

impl Require<Network> for Endpoint {
    fn handle(&mut self, _ctx: &mut Context<Self>, event: NetEvent) {
        let _ = self.out.send(event);
    }
}

impl Receive<(NodeAddr, u64)> for Endpoint {
    fn receive(&mut self, _ctx: &mut Context<Self>, (to, n): (NodeAddr, u64)) {
        self.net.trigger(NetMessage::encode(self.me, to, self.route, &n).unwrap());
    }
}

struct Node {
    runtime: Runtime,
    addr: NodeAddr,
    net: Component<TcpNetwork>,
    send: Mailbox<(NodeAddr, u64)>,
    events: Receiver<NetEvent>,
}

/// An endpoint component on `route`, connected to `net`: its send mailboxes and its events.
fn endpoint(
    runtime: &Runtime,
    net: &Component<TcpNetwork>,
    route: Route,
) -> (Mailbox<(NodeAddr, u64)>, Mailbox<SendBytes>, Receiver<NetEvent>) {
    let addr = net.on_definition(|n| n.addr()).unwrap();
    let (tx, events) = crossbeam_channel::unbounded();
    let ep = runtime.create(move |s| {
        let _ = s.mailbox::<(NodeAddr, u64)>();
        let _ = s.mailbox::<SendBytes>();
        Endpoint { net: s.required(), me: addr, route, out: tx.clone() }
    });
    connect_with(&net.provided::<Network>(), &ep.required::<Network>(), route_selector(route));
    ep.start();
    (ep.mailbox::<(NodeAddr, u64)>(), ep.mailbox::<SendBytes>(), events)
}

/// Shared-secret mode, so these component tests run over TLS.
fn security() -> PeerSecurity {
    PeerSecurity::shared_secret("tcp-network-tests", &[7; 32]).unwrap()
}

fn node(listen: SocketAddr) -> Node {
    node_with(TcpConfig::new(listen, security()))
}

fn node_with(config: TcpConfig) -> Node {
    let runtime = Runtime::new(RuntimeConfig::default().workers(1));
    let net = TcpNetwork::create(&runtime.system(), config).expect("bind");
    let addr = net.on_definition(|n| n.addr()).unwrap();
    let (send, _, events) = endpoint(&runtime, &net, ROUTE);
    net.start();
    Node { runtime, addr, net, send, events }
}

fn next(n: &Node) -> NetEvent {
    n.events.recv_timeout(WAIT).expect("a network event")
}

fn number(e: &NetEvent) -> u64 {
    match e {
        NetEvent::Deliver(m) => m.decode::<u64>().unwrap(),
        other => panic!("expected a delivery, got {other:?}"),
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn two_runtimes_exchange_messages_in_order_over_loopback() {
    let (a, b) = (node(loopback()), node(loopback()));
    for i in 0..1000 {
        a.send.tell((b.addr, i));
        b.send.tell((a.addr, i));
    }
    for n in [&a, &b] {
        let other = if std::ptr::eq(n, &a) { b.addr } else { a.addr };
        assert_eq!(next(n), NetEvent::SessionUp(other));
        for i in 0..1000 {
            let e = next(n);
            assert_eq!(number(&e), i);
            let NetEvent::Deliver(m) = e else { unreachable!() };
            assert_eq!((m.src, m.dst, m.route), (other, n.addr, ROUTE));
        }
    }
    a.runtime.shutdown();
    b.runtime.shutdown();
}

#[test]
fn a_killed_and_restarted_peer_reconnects_with_session_events_in_order() {
    let a = node(loopback());
    let b = node(loopback());
    let b_addr = b.addr;
    a.send.tell((b_addr, 1));
    assert_eq!(next(&a), NetEvent::SessionUp(b_addr));
    assert_eq!(next(&b), NetEvent::SessionUp(a.addr));
    assert_eq!(number(&next(&b)), 1);
    // Kill b: its runtime kills the network component, which closes its sockets.
    b.runtime.shutdown();
    assert_eq!(next(&a), NetEvent::SessionDown(b_addr));
    // Restart b on the same port; a's next message reconnects.
    let b2 = node(b_addr.socket_addr());
    assert_eq!(b2.addr, b_addr);
    a.send.tell((b_addr, 2));
    assert_eq!(next(&a), NetEvent::SessionUp(b_addr));
    assert_eq!(next(&b2), NetEvent::SessionUp(a.addr));
    assert_eq!(number(&next(&b2)), 2);
    assert!(a.events.try_recv().is_err(), "nothing else at a");
    a.runtime.shutdown();
    b2.runtime.shutdown();
}

#[test]
fn a_message_to_the_own_node_is_delivered() {
    let a = node(loopback());
    a.send.tell((a.addr, 7));
    assert_eq!(number(&next(&a)), 7);
    a.runtime.shutdown();
}

#[test]
fn binding_a_taken_address_is_a_clear_error() {
    let a = node(loopback());
    let rt = Runtime::new(RuntimeConfig::default().workers(1));
    let err =
        match TcpNetwork::create(&rt.system(), TcpConfig::new(a.addr.socket_addr(), security())) {
            Ok(_) => panic!("bound a taken address"),
            Err(e) => e,
        };
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    rt.shutdown();
    a.runtime.shutdown();
}

/// A message too large for a frame is refused: its sender alone gets `SendFailed` with the
/// numbers (another component of the node does not), no `SessionDown` is reported anywhere,
/// and later messages go on in the same session.
#[test]
fn a_message_too_large_for_a_frame_fails_to_its_sender_only_and_the_session_goes_on() {
    const FRAME_BYTES_MAX: usize = 4096;
    const OTHER: Route = Route::new(9, 1);
    let config = |listen| {
        let mut c = TcpConfig::new(listen, security());
        c.frame_bytes_max = FRAME_BYTES_MAX;
        c
    };
    let a = node_with(config(loopback()));
    let b = node_with(config(loopback()));
    let (_, a_bytes, _) = endpoint(&a.runtime, &a.net, ROUTE);
    let (_, _, other_events) = endpoint(&a.runtime, &a.net, OTHER);
    let (b_other, _, _) = endpoint(&b.runtime, &b.net, OTHER);

    a.send.tell((b.addr, 1));
    assert_eq!(next(&a), NetEvent::SessionUp(b.addr));
    assert_eq!(next(&b), NetEvent::SessionUp(a.addr));
    assert_eq!(number(&next(&b)), 1);

    a_bytes.tell(SendBytes(b.addr, FRAME_BYTES_MAX));
    assert_eq!(
        next(&a),
        NetEvent::SendFailed {
            to: b.addr,
            route: ROUTE,
            error: SendFailure::TooLarge {
                len: message_frame_len(ROUTE, FRAME_BYTES_MAX),
                max: FRAME_BYTES_MAX,
            },
        }
    );
    a.send.tell((b.addr, 2));
    assert_eq!(number(&next(&b)), 2, "the same session, no SessionDown or SessionUp between");
    b.send.tell((a.addr, 3));
    assert_eq!(number(&next(&a)), 3, "no SessionDown at the sender");
    // Events reach a channel in order: had the failure gone to the other component too, it
    // would come before this delivery.
    b_other.tell((a.addr, 4));
    let other: Vec<NetEvent> = (0..2).map(|_| other_events.recv_timeout(WAIT).unwrap()).collect();
    assert_eq!(other[0], NetEvent::SessionUp(b.addr));
    assert_eq!(number(&other[1]), 4);
    a.runtime.shutdown();
    b.runtime.shutdown();
}
