//! Networked ping-pong: a pinger and a ponger in two processes, over TCP on loopback.
//!
//! ```text
//! # terminal 1: the ponger answers every ping, until interrupted
//! cargo run --release -p examples --example net_ping_pong -- ponger --listen 127.0.0.1:7101
//! # terminal 2: the pinger sends 100000 pings, 100 in flight, and prints throughput and latency
//! cargo run --release -p examples --example net_ping_pong -- pinger --listen 127.0.0.1:7102 \
//!     --peer 127.0.0.1:7101 --msgs 100000 --pipeline 100
//! ```
//!
//! Both sides are ordinary components talking through the `Network` port; the `TcpNetwork`
//! component carries the messages (serialised with rmp-serde).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use crossbeam_channel::Sender;
use kompics_core::*;
use kompics_net::{
    route_selector, NetEvent, NetMessage, Network, NodeAddr, Route, TcpConfig, TcpNetwork,
};
use serde::{Deserialize, Serialize};

/// The route both sides use.
const ROUTE: Route = Route::new(100, 0);

#[derive(Parser, Debug)]
#[command(about = "Ping-pong between two processes over TCP")]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// Answer pings until interrupted.
    Ponger {
        /// The address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Send pings to a ponger and report.
    Pinger {
        /// The address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// The ponger's address.
        #[arg(long)]
        peer: SocketAddr,
        /// Pings to send.
        #[arg(long, default_value_t = 100_000)]
        msgs: u64,
        /// Pings in flight at most.
        #[arg(long, default_value_t = 100)]
        pipeline: u64,
    },
}

/// What travels between the two.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Msg {
    /// A ping with its sequence number and send time (nanoseconds of the pinger's clock).
    Ping(u64, u64),
    /// The answer, echoing the ping.
    Pong(u64, u64),
}

/// Answers every ping.
pub struct Ponger {
    net: RequiredPort<Network>,
    me: NodeAddr,
    answered: u64,
}

impl ComponentDefinition for Ponger {}

impl Require<Network> for Ponger {
    fn handle(&mut self, _ctx: &mut Context<Self>, event: NetEvent) {
        match event {
            NetEvent::Deliver(m) => match m.decode::<Msg>() {
                Ok(Msg::Ping(seq, at)) => {
                    let reply = NetMessage::encode(self.me, m.src, ROUTE, &Msg::Pong(seq, at))
                        .expect("encode a pong");
                    self.net.trigger(reply);
                    self.answered += 1;
                }
                Ok(other) => log::warn!("unexpected {other:?}"),
                Err(e) => log::warn!("undecodable message from {}: {e}", m.src),
            },
            NetEvent::SessionUp(p) => log::info!("session with {p} up"),
            NetEvent::SessionDown(p) => log::info!("session with {p} down"),
            NetEvent::SendFailed { to, error, .. } => log::error!("pong to {to} not sent: {error}"),
        }
    }
}

/// The pinger's final report.
#[derive(Clone, Debug)]
pub struct Report {
    /// Pings answered.
    pub msgs: u64,
    /// From the first ping to the last pong.
    pub elapsed: Duration,
    /// Round-trip latencies, in nanoseconds, sorted.
    pub rtts: Vec<u64>,
}

/// Keeps `pipeline` pings in flight until `total` are answered.
pub struct Pinger {
    net: RequiredPort<Network>,
    me: NodeAddr,
    peer: NodeAddr,
    total: u64,
    pipeline: u64,
    sent: u64,
    rtts: Vec<u64>,
    started: Option<Time>,
    done: Sender<Report>,
}

impl Pinger {
    fn ping(&mut self, ctx: &mut Context<Self>) {
        let msg = Msg::Ping(self.sent, ctx.now().as_nanos());
        let m = NetMessage::encode(self.me, self.peer, ROUTE, &msg).expect("encode a ping");
        self.net.trigger(m);
        self.sent += 1;
    }
}

impl ComponentDefinition for Pinger {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        self.started = Some(ctx.now());
        while self.sent < self.pipeline.min(self.total) {
            self.ping(ctx);
        }
    }
}

impl Require<Network> for Pinger {
    fn handle(&mut self, ctx: &mut Context<Self>, event: NetEvent) {
        match event {
            NetEvent::Deliver(m) => {
                if let Ok(Msg::Pong(_, at)) = m.decode::<Msg>() {
                    self.rtts.push(ctx.now().as_nanos().saturating_sub(at));
                    if self.sent < self.total {
                        self.ping(ctx);
                    } else if self.rtts.len() as u64 == self.total {
                        let mut rtts = std::mem::take(&mut self.rtts);
                        rtts.sort_unstable();
                        let elapsed = ctx.now() - self.started.unwrap_or(Time::ZERO);
                        let _ = self.done.send(Report { msgs: self.total, elapsed, rtts });
                    }
                }
            }
            NetEvent::SessionUp(p) => log::info!("session with {p} up"),
            NetEvent::SessionDown(p) => {
                // Pings in flight may be lost: this simple benchmark gives up.
                log::error!("session with {p} ended before all pongs arrived");
            }
            // A ping cannot be too large; should one be refused, its pong never comes.
            NetEvent::SendFailed { to, error, .. } => log::error!("ping to {to} not sent: {error}"),
        }
    }
}

/// Pinger and ponger share a built-in secret, so the benchmark measures the authenticated,
/// encrypted transport production runs (`TcpConfig` has no plaintext default). Never reuse a
/// secret from source code in production: use 32 random bytes from a private file.
pub fn example_security() -> kompics_net::PeerSecurity {
    kompics_net::PeerSecurity::shared_secret(
        "ping-pong",
        b"net_ping_pong example secret, 32+ bytes",
    )
    .expect("a valid secret")
}

/// Starts a ponger on `runtime` listening at `listen`; returns its bound address.
pub fn start_ponger(runtime: &Runtime, listen: SocketAddr) -> std::io::Result<NodeAddr> {
    let net = TcpNetwork::create(&runtime.system(), TcpConfig::new(listen, example_security()))?;
    let me = net.on_definition(|n| n.addr()).expect("alive");
    let ponger = runtime.create(move |s| Ponger { net: s.required(), me, answered: 0 });
    connect_with(&net.provided::<Network>(), &ponger.required::<Network>(), route_selector(ROUTE));
    net.start();
    ponger.start();
    Ok(me)
}

/// Starts a pinger on `runtime`; the report arrives on `done`.
pub fn start_pinger(
    runtime: &Runtime,
    listen: SocketAddr,
    peer: NodeAddr,
    total: u64,
    pipeline: u64,
    done: Sender<Report>,
) -> std::io::Result<()> {
    let net = TcpNetwork::create(&runtime.system(), TcpConfig::new(listen, example_security()))?;
    let me = net.on_definition(|n| n.addr()).expect("alive");
    let pinger = runtime.create(move |s| Pinger {
        net: s.required(),
        me,
        peer,
        total,
        pipeline,
        sent: 0,
        rtts: Vec::with_capacity(total as usize),
        started: None,
        done: done.clone(),
    });
    connect_with(&net.provided::<Network>(), &pinger.required::<Network>(), route_selector(ROUTE));
    net.start();
    pinger.start();
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Duration::from_nanos(sorted.get(i).copied().unwrap_or(0))
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let runtime = Runtime::new(RuntimeConfig::default());
    match args.role {
        Role::Ponger { listen } => {
            let me = start_ponger(&runtime, listen).expect("start the ponger");
            println!("ponger listening on {me}; interrupt to stop");
            loop {
                std::thread::park();
            }
        }
        Role::Pinger { listen, peer, msgs, pipeline } => {
            let (tx, rx) = crossbeam_channel::bounded(1);
            start_pinger(&runtime, listen, NodeAddr(peer), msgs, pipeline, tx)
                .expect("start the pinger");
            let report =
                rx.recv_timeout(Duration::from_secs(300)).expect("all pongs within 5 minutes");
            let rate = report.msgs as f64 / report.elapsed.as_secs_f64();
            println!(
                "{} pings answered in {:.3} s: {:.0} round trips/s; rtt p50 {:?} p99 {:?}",
                report.msgs,
                report.elapsed.as_secs_f64(),
                rate,
                percentile(&report.rtts, 0.5),
                percentile(&report.rtts, 0.99)
            );
            runtime.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_runtimes_play_ping_pong_over_loopback() {
        let pong_rt = Runtime::new(RuntimeConfig::default().workers(1));
        let ping_rt = Runtime::new(RuntimeConfig::default().workers(1));
        let ponger = start_ponger(&pong_rt, "127.0.0.1:0".parse().unwrap()).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        start_pinger(&ping_rt, "127.0.0.1:0".parse().unwrap(), ponger, 2_000, 50, tx).unwrap();
        let report = rx.recv_timeout(Duration::from_secs(30)).expect("every ping answered");
        assert_eq!(report.msgs, 2_000);
        assert_eq!(report.rtts.len(), 2_000);
        ping_rt.shutdown();
        pong_rt.shutdown();
    }
}
