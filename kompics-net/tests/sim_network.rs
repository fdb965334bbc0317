//! The simulated network, scenario by scenario: partition, send, heal, assert.

use std::time::Duration;

use kompics_core::*;
use kompics_net::frame::{message_frame_len, FRAME_LENGTH_BYTES};
use kompics_net::sim::{SimNet, SimNetConfig, SimNetwork};
use kompics_net::{
    payload_bytes_max, route_selector, NetEvent, NetMessage, Network, NodeAddr, Route, SendFailure,
};

const ROUTE: Route = Route::new(1, 0);

/// A recorder on one route of one node: it sends as `addr` on `route` and logs what arrives.
struct Endpoint {
    rec: Component<Recorder<Network>>,
    addr: NodeAddr,
    route: Route,
}

impl Endpoint {
    fn kill(&self) {
        self.rec.kill();
    }

    fn trigger(&self, msg: NetMessage) {
        self.rec.on_definition(|r| r.port.trigger(msg));
    }
}

struct Node {
    net: Component<SimNetwork>,
    ep: Endpoint,
}

fn addr(i: u8) -> NodeAddr {
    NodeAddr(([10, 0, 0, i], 7000).into())
}

fn node(sim: &Simulation, net: &SimNet, a: NodeAddr, route: Route) -> Node {
    let n = net.add_node(a);
    let ep = endpoint(sim, &n, a, route);
    Node { net: n, ep }
}

fn endpoint(sim: &Simulation, n: &Component<SimNetwork>, a: NodeAddr, route: Route) -> Endpoint {
    let rec = sim.create(Recorder::<Network>::new);
    connect_with(&n.provided::<Network>(), &rec.required::<Network>(), route_selector(route));
    rec.start();
    Endpoint { rec, addr: a, route }
}

fn send(ep: &Endpoint, to: NodeAddr, n: u64) {
    ep.trigger(NetMessage::encode(ep.addr, to, ep.route, &n).unwrap());
}

fn log(ep: &Endpoint) -> Vec<NetEvent> {
    ep.rec.on_definition(|r| r.events().to_vec()).unwrap()
}

/// The numbers delivered to an endpoint, in order.
fn delivered(ep: &Endpoint) -> Vec<u64> {
    log(ep)
        .iter()
        .filter_map(|e| match e {
            NetEvent::Deliver(m) => Some(m.decode::<u64>().unwrap()),
            _ => None,
        })
        .collect()
}

fn quiet(sim: &Simulation) {
    sim.run_for(Duration::from_secs(1));
}

#[test]
fn messages_arrive_in_order_after_the_session_opens() {
    let sim = Simulation::new(1);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let (a, b) = (node(&sim, &net, addr(1), ROUTE), node(&sim, &net, addr(2), ROUTE));
    for i in 0..100 {
        send(&a.ep, addr(2), i);
    }
    quiet(&sim);
    let at_b = log(&b.ep);
    assert_eq!(at_b[0], NetEvent::SessionUp(addr(1)));
    assert_eq!(delivered(&b.ep), (0..100).collect::<Vec<_>>());
    assert!(at_b.iter().all(|e| !matches!(e, NetEvent::SessionDown(_))));
    assert_eq!(log(&a.ep), vec![NetEvent::SessionUp(addr(2))]);
    // The network stamps the real sender.
    let first = at_b.iter().find_map(|e| match e {
        NetEvent::Deliver(m) => Some(m.clone()),
        _ => None,
    });
    assert_eq!(first.unwrap().src, addr(1));
}

#[test]
fn latency_is_drawn_within_the_configured_range() {
    let sim = Simulation::new(2);
    let config = SimNetConfig {
        latency_min: Duration::from_millis(10),
        latency_max: Duration::from_millis(20),
        ..SimNetConfig::default()
    };
    let net = SimNet::new(&sim.system(), config);
    let (a, b) = (node(&sim, &net, addr(1), ROUTE), node(&sim, &net, addr(2), ROUTE));
    send(&a.ep, addr(2), 1);
    sim.run_for(Duration::from_millis(9));
    assert!(delivered(&b.ep).is_empty(), "not before the minimum latency");
    sim.run_for(Duration::from_millis(12));
    assert_eq!(delivered(&b.ep), vec![1], "by the maximum latency");
}

#[test]
fn a_slow_link_delays_one_direction_only_until_reset() {
    let sim = Simulation::new(3);
    let net = SimNet::new(&sim.system(), SimNetConfig::default()); // 0.2–2 ms
    let (a, b) = (node(&sim, &net, addr(1), ROUTE), node(&sim, &net, addr(2), ROUTE));
    net.set_link_latency(addr(1), addr(2), Duration::from_millis(50), Duration::from_millis(50));
    send(&a.ep, addr(2), 1);
    send(&b.ep, addr(1), 2);
    sim.run_for(Duration::from_millis(10));
    assert_eq!(delivered(&a.ep), vec![2], "the other direction keeps the common range");
    assert!(delivered(&b.ep).is_empty(), "the slow direction is slow");
    sim.run_for(Duration::from_millis(41));
    assert_eq!(delivered(&b.ep), vec![1]);
    net.reset_link_latency(addr(1), addr(2));
    send(&a.ep, addr(2), 3);
    sim.run_for(Duration::from_millis(3));
    assert_eq!(delivered(&b.ep), vec![1, 3], "back to the common range");
}

#[test]
fn partition_send_heal() {
    let sim = Simulation::new(3);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let (a, b) = (node(&sim, &net, addr(1), ROUTE), node(&sim, &net, addr(2), ROUTE));
    net.partition(&[addr(1)], &[addr(2)]);
    send(&a.ep, addr(2), 1);
    quiet(&sim);
    assert!(log(&b.ep).is_empty(), "nothing crosses a partition");
    assert_eq!(log(&a.ep), vec![NetEvent::SessionDown(addr(2))], "the sender learns of the loss");
    net.heal();
    send(&a.ep, addr(2), 2);
    quiet(&sim);
    assert_eq!(log(&b.ep), vec![NetEvent::SessionUp(addr(1)), log(&b.ep)[1].clone()]);
    assert_eq!(delivered(&b.ep), vec![2]);
}

#[test]
fn a_partition_breaks_an_open_session_at_both_ends() {
    let sim = Simulation::new(4);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let (a, b, c) = (
        node(&sim, &net, addr(1), ROUTE),
        node(&sim, &net, addr(2), ROUTE),
        node(&sim, &net, addr(3), ROUTE),
    );
    send(&a.ep, addr(2), 0);
    send(&a.ep, addr(3), 0);
    quiet(&sim);
    // Messages in flight when the partition strikes are lost.
    for i in 1..50 {
        send(&a.ep, addr(2), i);
    }
    net.partition(&[addr(1)], &[addr(2)]);
    quiet(&sim);
    assert_eq!(log(&a.ep).last(), Some(&NetEvent::SessionDown(addr(2))));
    assert_eq!(log(&b.ep).last(), Some(&NetEvent::SessionDown(addr(1))));
    assert_eq!(delivered(&b.ep), vec![0], "in-flight messages lost");
    // The other side of a is unaffected.
    send(&a.ep, addr(3), 1);
    quiet(&sim);
    assert_eq!(delivered(&c.ep), vec![0, 1]);
    assert!(!log(&c.ep).contains(&NetEvent::SessionDown(addr(1))));
}

#[test]
fn a_crashed_node_loses_its_in_flight_messages_and_restarts_with_a_new_session() {
    let sim = Simulation::new(5);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let (a, b) = (node(&sim, &net, addr(1), ROUTE), node(&sim, &net, addr(2), ROUTE));
    send(&a.ep, addr(2), 0);
    quiet(&sim);
    for i in 1..20 {
        send(&a.ep, addr(2), i);
    }
    // Crash b: the fabric forgets it, the test kills its components.
    net.crash(addr(2));
    b.ep.kill();
    b.net.kill();
    quiet(&sim);
    assert_eq!(log(&a.ep).last(), Some(&NetEvent::SessionDown(addr(2))));
    // Restart b with fresh components: none of the old messages reach it.
    let b2 = node(&sim, &net, addr(2), ROUTE);
    quiet(&sim);
    assert!(log(&b2.ep).is_empty());
    send(&a.ep, addr(2), 100);
    quiet(&sim);
    assert_eq!(log(&b2.ep)[0], NetEvent::SessionUp(addr(1)));
    assert_eq!(delivered(&b2.ep), vec![100]);
    assert_eq!(log(&a.ep).last(), Some(&NetEvent::SessionUp(addr(2))));
}

/// Splits an endpoint's log into sessions with one peer and checks the session contract: inside
/// a session, messages are consecutive numbers in order; a gap only follows a session break.
fn check_sessions(events: &[NetEvent]) -> usize {
    let mut sessions = 0;
    let mut last: Option<u64> = None;
    let mut in_session = false;
    for e in events {
        match e {
            NetEvent::SessionUp(_) => {
                assert!(!in_session, "two SessionUps without a SessionDown between: {events:?}");
                in_session = true;
                sessions += 1;
                last = None;
            }
            NetEvent::SessionDown(_) => in_session = false,
            NetEvent::Deliver(m) => {
                assert!(in_session, "a delivery outside a session");
                let n = m.decode::<u64>().unwrap();
                if let Some(prev) = last {
                    assert_eq!(n, prev + 1, "a gap or reordering inside one session");
                }
                last = Some(n);
            }
            NetEvent::SendFailed { .. } => panic!("a send failure for a small message: {e:?}"),
        }
    }
    sessions
}

#[test]
fn lossy_links_break_sessions_but_never_reorder_or_skip_within_one() {
    for seed in 0..20 {
        let sim = Simulation::new(seed);
        let net = SimNet::new(&sim.system(), SimNetConfig::default());
        let (a, b) = (node(&sim, &net, addr(1), ROUTE), node(&sim, &net, addr(2), ROUTE));
        net.set_loss(0.02);
        for i in 0..2000 {
            send(&a.ep, addr(2), i);
            sim.run_for(Duration::from_micros(300));
        }
        quiet(&sim);
        let sessions = check_sessions(&log(&b.ep));
        assert!(sessions > 1, "seed {seed}: lossy mode broke no session");
        let (delivered_n, lost) = net.counts();
        assert!(lost > 0 && delivered_n > 0, "seed {seed}");
        // Every loss the sender could not see coming is reported to it.
        let downs = log(&a.ep).iter().filter(|e| matches!(e, NetEvent::SessionDown(_))).count();
        assert!(downs >= sessions - 1, "seed {seed}: {downs} SessionDowns for {sessions} sessions");
    }
}

#[test]
fn routes_select_the_component_instance() {
    let sim = Simulation::new(6);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let a = node(&sim, &net, addr(1), Route::new(1, 0));
    let b = node(&sim, &net, addr(2), Route::new(1, 0));
    let b_other = endpoint(&sim, &b.net, addr(2), Route::new(1, 1));
    send(&a.ep, addr(2), 10);
    a.ep.trigger(NetMessage::encode(addr(1), addr(2), Route::new(1, 1), &20u64).unwrap());
    quiet(&sim);
    assert_eq!(delivered(&b.ep), vec![10]);
    assert_eq!(delivered(&b_other), vec![20]);
    // Both see the session event.
    assert!(log(&b_other).contains(&NetEvent::SessionUp(addr(1))));
}

#[test]
fn a_message_to_the_own_node_is_delivered_without_a_session() {
    let sim = Simulation::new(7);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let a = node(&sim, &net, addr(1), ROUTE);
    send(&a.ep, addr(1), 5);
    quiet(&sim);
    assert_eq!(log(&a.ep).len(), 1);
    assert_eq!(delivered(&a.ep), vec![5]);
}

#[test]
fn the_same_seed_replays_the_same_network_run() {
    let run = |seed: u64| {
        let sim = Simulation::new(seed);
        let net = SimNet::new(&sim.system(), SimNetConfig::default());
        let nodes: Vec<_> = (1..=3).map(|i| node(&sim, &net, addr(i), ROUTE)).collect();
        net.set_loss(0.05);
        for i in 0..200u64 {
            let from = &nodes[(i % 3) as usize];
            send(&from.ep, addr(((i + 1) % 3 + 1) as u8), i);
            sim.run_for(Duration::from_micros(150));
        }
        quiet(&sim);
        (sim.trace_hash(), nodes.iter().map(|n| log(&n.ep)).collect::<Vec<_>>())
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9).0, run(10).0);
}

/// Sends a payload of `len` bytes.
fn send_bytes(ep: &Endpoint, to: NodeAddr, len: usize) {
    ep.trigger(NetMessage::new(ep.addr, to, ep.route, vec![3; len]));
}

/// When each delivery to an endpoint arrived, with its payload length.
fn arrivals(ep: &Endpoint) -> Vec<(Time, usize)> {
    ep.rec
        .on_definition(|r| {
            r.arrivals()
                .filter_map(|(at, ev)| match ev {
                    NetEvent::Deliver(m) => Some((at, m.payload.len())),
                    _ => None,
                })
                .collect()
        })
        .unwrap()
}

/// The simulated frame limit refuses exactly what TCP refuses: a payload of
/// `payload_bytes_max` on the largest route arrives, one byte more gets `SendFailed` (with the
/// numbers) at the sending component only, and the session goes on.
#[test]
fn a_message_too_large_for_a_frame_fails_to_its_sender_only_and_the_session_goes_on() {
    const FRAME_BYTES_MAX: usize = 70_000;
    let largest = Route::new(u32::MAX, u32::MAX);
    let sim = Simulation::new(3);
    let config = SimNetConfig { frame_bytes_max: FRAME_BYTES_MAX, ..SimNetConfig::default() };
    let net = SimNet::new(&sim.system(), config);
    assert_eq!(net.frame_bytes_max(), FRAME_BYTES_MAX);
    let a = node(&sim, &net, addr(1), largest);
    let a_other = endpoint(&sim, &a.net, addr(1), ROUTE);
    let b = node(&sim, &net, addr(2), largest);
    let max = payload_bytes_max(FRAME_BYTES_MAX);

    send_bytes(&a.ep, addr(2), 1);
    quiet(&sim);
    send_bytes(&a.ep, addr(2), max + 1);
    send_bytes(&a.ep, addr(2), max);
    send_bytes(&a.ep, addr(2), 2);
    quiet(&sim);

    assert_eq!(
        log(&a.ep),
        vec![
            NetEvent::SessionUp(addr(2)),
            NetEvent::SendFailed {
                to: addr(2),
                route: largest,
                error: SendFailure::TooLarge {
                    len: message_frame_len(largest, max + 1),
                    max: FRAME_BYTES_MAX
                },
            },
        ]
    );
    assert_eq!(log(&a_other), vec![NetEvent::SessionUp(addr(2))], "only the sender is told");
    let at_b = log(&b.ep);
    assert_eq!(at_b[0], NetEvent::SessionUp(addr(1)));
    assert_eq!(at_b.len(), 4, "one session, three deliveries: {at_b:?}");
    let lens: Vec<usize> = arrivals(&b.ep).iter().map(|&(_, len)| len).collect();
    assert_eq!(lens, vec![1, max, 2]);
}

/// A large message takes its size over the bandwidth to send, and what follows it on the same
/// link waits behind it (FIFO); the reverse direction and other links are not held up; a link
/// can have its own bandwidth until reset.
#[test]
fn bandwidth_delays_a_large_message_and_what_follows_it_on_its_link_only() {
    const LATENCY: Duration = Duration::from_millis(1);
    const BANDWIDTH: u64 = 1_000_000; // one byte per microsecond
    const BIG: usize = 100_000;
    let sim = Simulation::new(5);
    let config = SimNetConfig {
        latency_min: LATENCY,
        latency_max: LATENCY,
        bandwidth: Some(BANDWIDTH),
        ..SimNetConfig::default()
    };
    let net = SimNet::new(&sim.system(), config);
    let a = node(&sim, &net, addr(1), ROUTE);
    let b = node(&sim, &net, addr(2), ROUTE);
    let frame = |len| (FRAME_LENGTH_BYTES + message_frame_len(ROUTE, len)) as u64;
    let send_time = |len| Duration::from_micros(frame(len));

    // Open the sessions, then send from one instant.
    send_bytes(&a.ep, addr(2), 1);
    send_bytes(&b.ep, addr(1), 1);
    quiet(&sim);
    let t0 = sim.now();
    send_bytes(&a.ep, addr(2), BIG);
    send_bytes(&a.ep, addr(2), 10);
    send_bytes(&b.ep, addr(1), 10);
    quiet(&sim);
    let at_b = arrivals(&b.ep);
    let at_a = arrivals(&a.ep);
    assert_eq!(at_b[1].1, BIG);
    assert_eq!(at_b[1].0, t0 + send_time(BIG) + LATENCY, "sent at the bandwidth, then latency");
    assert_eq!(at_b[2].1, 10);
    assert_eq!(at_b[2].0, t0 + send_time(BIG) + send_time(10) + LATENCY, "waits behind it");
    assert_eq!(at_a[1].0, t0 + send_time(10) + LATENCY, "the reverse direction is not held up");

    // Unlimited everywhere but on a's link to b.
    net.set_bandwidth(None);
    net.set_link_bandwidth(addr(1), addr(2), BANDWIDTH);
    quiet(&sim);
    let t1 = sim.now();
    send_bytes(&a.ep, addr(2), BIG);
    send_bytes(&b.ep, addr(1), BIG);
    quiet(&sim);
    assert_eq!(arrivals(&b.ep)[3].0, t1 + send_time(BIG) + LATENCY);
    assert_eq!(arrivals(&a.ep)[2].0, t1 + LATENCY, "no limit on the other direction");

    net.reset_link_bandwidth(addr(1), addr(2));
    quiet(&sim);
    let t2 = sim.now();
    send_bytes(&a.ep, addr(2), BIG);
    quiet(&sim);
    assert_eq!(arrivals(&b.ep)[4].0, t2 + LATENCY, "back to the common (unlimited) bandwidth");
}

/// A message sent after its session broke but before the sender's network passed the
/// `SessionDown` on belongs to the broken session and is lost with it, even though the link is
/// back: it never arrives in the next session. What is sent after the `SessionDown` opens that
/// session and arrives.
#[test]
fn nothing_sent_before_a_session_down_arrives_after_it() {
    let sim = Simulation::new(9);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let a = node(&sim, &net, addr(1), ROUTE);
    let b = node(&sim, &net, addr(2), ROUTE);
    send(&a.ep, addr(2), 1);
    quiet(&sim);

    net.partition(&[addr(1)], &[addr(2)]);
    net.heal();
    // Well within the failure-detection delay: a has not heard of the break yet.
    sim.run_for(Duration::from_millis(1));
    assert_eq!(log(&a.ep), vec![NetEvent::SessionUp(addr(2))]);
    send(&a.ep, addr(2), 2);
    quiet(&sim);
    assert_eq!(log(&a.ep).last(), Some(&NetEvent::SessionDown(addr(2))));
    send(&a.ep, addr(2), 3);
    quiet(&sim);

    assert_eq!(
        log(&b.ep)
            .iter()
            .map(|e| match e {
                NetEvent::Deliver(m) => format!("deliver {}", m.decode::<u64>().unwrap()),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>(),
        vec![
            format!("{:?}", NetEvent::SessionUp(addr(1))),
            "deliver 1".to_string(),
            format!("{:?}", NetEvent::SessionDown(addr(1))),
            format!("{:?}", NetEvent::SessionUp(addr(1))),
            "deliver 3".to_string(),
        ]
    );
    assert_eq!(
        log(&a.ep),
        vec![
            NetEvent::SessionUp(addr(2)),
            NetEvent::SessionDown(addr(2)),
            NetEvent::SessionUp(addr(2)),
        ]
    );
}
