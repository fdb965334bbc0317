//! The failure detector in the simulator: crashes are suspected, partitions heal into restores,
//! false suspicions grow the timeout.

use std::time::Duration;

use kompics_core::*;
use kompics_net::sim::{SimNet, SimNetConfig, SimNetwork};
use kompics_net::{route_selector, Network, NodeAddr};
use zab_components::failure_detector::*;

/// Records what the detector says.
struct Watcher {
    fd: RequiredPort<FailureDetectorPort>,
    events: Vec<(Time, FdEvent)>,
}

impl ComponentDefinition for Watcher {}

impl Require<FailureDetectorPort> for Watcher {
    fn handle(&mut self, ctx: &mut Context<Self>, event: FdEvent) {
        self.events.push((ctx.now(), event));
    }
}

struct Node {
    net: Component<SimNetwork>,
    fd: Component<FailureDetector>,
    watcher: Component<Watcher>,
}

fn addr(i: u8) -> NodeAddr {
    NodeAddr(([10, 0, 0, i], 7000).into())
}

fn start_node(
    sim: &Simulation,
    net: &SimNet,
    me: NodeAddr,
    peers: &[NodeAddr],
    config: &FdConfig,
) -> Node {
    let n = net.add_node(me);
    let config = config.clone();
    let fd = sim.create(move |s| FailureDetector::new(s, me, config.clone()));
    connect_with(&n.provided::<Network>(), &fd.required::<Network>(), route_selector(FD_ROUTE));
    let watcher = sim.create(|s| Watcher { fd: s.required(), events: Vec::new() });
    connect(&fd.provided::<FailureDetectorPort>(), &watcher.required::<FailureDetectorPort>());
    fd.start();
    watcher.start();
    let peers = peers.to_vec();
    watcher.on_definition(|w| {
        peers.iter().filter(|p| **p != me).for_each(|p| w.fd.trigger(FdRequest::Monitor(*p)))
    });
    Node { net: n, fd, watcher }
}

fn events(node: &Node) -> Vec<FdEvent> {
    node.watcher.on_definition(|w| w.events.iter().map(|(_, e)| e.clone()).collect()).unwrap()
}

fn cluster(seed: u64, n: u8, config: &FdConfig) -> (Simulation, SimNet, Vec<Node>) {
    let sim = Simulation::new(seed);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    let addrs: Vec<_> = (1..=n).map(addr).collect();
    let nodes = addrs.iter().map(|a| start_node(&sim, &net, *a, &addrs, config)).collect();
    (sim, net, nodes)
}

#[test]
fn a_healthy_cluster_suspects_nobody() {
    let (sim, _net, nodes) = cluster(1, 3, &FdConfig::default());
    sim.run_for(Duration::from_secs(30));
    for n in &nodes {
        assert!(events(n).is_empty(), "{:?}", events(n));
    }
}

#[test]
fn a_crashed_node_is_suspected_by_all_within_its_timeout() {
    let config = FdConfig::default();
    let (sim, net, nodes) = cluster(2, 3, &config);
    sim.run_for(Duration::from_secs(1));
    let crashed_at = sim.now();
    net.crash(addr(3));
    nodes[2].fd.kill();
    nodes[2].watcher.kill();
    nodes[2].net.kill();
    sim.run_for(Duration::from_secs(2));
    for n in &nodes[..2] {
        let evs = n.watcher.on_definition(|w| w.events.clone()).unwrap();
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert_eq!(evs[0].1, FdEvent::Suspect(addr(3)));
        let delay = evs[0].0 - crashed_at;
        // Silent for more than the timeout since it was last heard (at most a period before the
        // crash), noticed at the next round.
        assert!(delay > config.timeout_initial - config.heartbeat_period, "{delay:?}");
        assert!(
            delay
                <= config.timeout_initial + 2 * config.heartbeat_period + Duration::from_millis(10),
            "{delay:?}"
        );
    }
}

#[test]
fn a_partition_is_suspected_and_healing_restores_with_a_longer_timeout() {
    let config = FdConfig::default();
    let (sim, net, nodes) = cluster(3, 3, &config);
    sim.run_for(Duration::from_secs(1));
    net.partition(&[addr(1)], &[addr(2), addr(3)]);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(events(&nodes[0]), vec![FdEvent::Suspect(addr(2)), FdEvent::Suspect(addr(3))]);
    assert_eq!(events(&nodes[1]), vec![FdEvent::Suspect(addr(1))]);
    net.heal();
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        events(&nodes[0]),
        vec![
            FdEvent::Suspect(addr(2)),
            FdEvent::Suspect(addr(3)),
            FdEvent::Restore(addr(2)),
            FdEvent::Restore(addr(3))
        ]
    );
    let timeout = nodes[0].fd.on_definition(|f| f.timeout_of(addr(2))).unwrap().unwrap();
    assert_eq!(
        timeout,
        config.timeout_initial + config.timeout_increment,
        "eventually perfect: the timeout grew"
    );
    assert!(nodes[0].fd.on_definition(|f| f.suspected()).unwrap().is_empty());
}

#[test]
fn slow_links_stop_causing_suspicions_once_the_timeout_has_grown() {
    // Latency above the initial timeout: the detector suspects falsely at first, then learns.
    let config = FdConfig { timeout_initial: Duration::from_millis(60), ..FdConfig::default() };
    let sim = Simulation::new(4);
    let net = SimNet::new(&sim.system(), SimNetConfig::default());
    net.set_latency(Duration::from_millis(80), Duration::from_millis(120));
    let addrs = [addr(1), addr(2)];
    let a = start_node(&sim, &net, addrs[0], &addrs, &config);
    let _b = start_node(&sim, &net, addrs[1], &addrs, &config);
    sim.run_for(Duration::from_secs(30));
    let evs = a.watcher.on_definition(|w| w.events.clone()).unwrap();
    assert!(!evs.is_empty(), "slow links cause false suspicions at first");
    let last = evs.last().unwrap().0;
    assert!(last < Time::ZERO + Duration::from_secs(10), "suspicions stop: last at {last:?}");
    assert_eq!(evs.last().unwrap().1, FdEvent::Restore(addr(2)));
}

#[test]
fn monitoring_is_counted_per_requester() {
    let (sim, net, nodes) = cluster(5, 2, &FdConfig::default());
    // A second requester of the same peer, then one Unmonitor: still monitored.
    nodes[0].watcher.on_definition(|w| w.fd.trigger(FdRequest::Monitor(addr(2))));
    nodes[0].watcher.on_definition(|w| w.fd.trigger(FdRequest::Unmonitor(addr(2))));
    sim.run_for(Duration::from_secs(1));
    net.crash(addr(2));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(events(&nodes[0]), vec![FdEvent::Suspect(addr(2))]);
    nodes[0].watcher.on_definition(|w| w.fd.trigger(FdRequest::Unmonitor(addr(2))));
    sim.run_for(Duration::from_millis(10));
    assert_eq!(nodes[0].fd.on_definition(|f| f.timeout_of(addr(2))).unwrap(), None);
}
