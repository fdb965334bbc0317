//! Throughput ping-pong, the kompicsbenches pattern: P pinger/ponger pairs, each pinger keeps at
//! most K pings in flight and sends N in all; every ping is answered by a pong.
//!
//! ```text
//! cargo run --release -p examples --example ping_pong -- --pairs 1 --pipeline 1 --msgs 1000000
//! cargo run --release -p examples --example ping_pong -- --pairs 2 --pipeline 500 --msgs 1000000 --raw
//! ```
//!
//! It prints each run, then the median as its last line, `msgs/s: <number>`, counting pings and
//! pongs. `--raw` runs the same pattern over plain threads and crossbeam channels (two threads per
//! pair), the practical limit without a component runtime.

use std::time::{Duration, Instant};

use clap::Parser;
use crossbeam_channel::{bounded, Receiver, Sender};
use kompics_core::*;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Throughput ping-pong between component pairs")]
struct Args {
    /// Pinger/ponger pairs.
    #[arg(long, default_value_t = 1)]
    pairs: usize,
    /// Pings in flight per pair at most.
    #[arg(long, default_value_t = 1)]
    pipeline: u64,
    /// Pings per pair.
    #[arg(long, default_value_t = 1_000_000)]
    msgs: u64,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Events a component handles per scheduling (default: the runtime's).
    #[arg(long)]
    batch: Option<usize>,
    /// Plain threads and crossbeam channels instead of components.
    #[arg(long)]
    raw: bool,
}

/// The port between a pinger and its ponger: pings go in (requests), pongs come out
/// (indications). Both are empty: the benchmark counts messages, not bytes.
struct PingPort;

impl Port for PingPort {
    type Request = Ping;
    type Indication = Pong;
}

/// A request of [`PingPort`].
#[derive(Clone, Debug)]
struct Ping;

/// The answer to a [`Ping`].
#[derive(Clone, Debug)]
struct Pong;

/// Sends `total` pings, at most `pipeline` unanswered.
struct Pinger {
    port: RequiredPort<PingPort>,
    pipeline: u64,
    total: u64,
    sent: u64,
    received: u64,
    done: Sender<()>,
}

impl ComponentDefinition for Pinger {
    fn on_start(&mut self, _ctx: &mut Context<Self>) {
        while self.sent < self.pipeline.min(self.total) {
            self.sent += 1;
            self.port.trigger(Ping);
        }
    }
}

impl Require<PingPort> for Pinger {
    fn handle(&mut self, _ctx: &mut Context<Self>, _pong: Pong) {
        self.received += 1;
        if self.sent < self.total {
            self.sent += 1;
            self.port.trigger(Ping);
        } else if self.received == self.total {
            let _ = self.done.send(());
        }
    }
}

struct Ponger {
    port: ProvidedPort<PingPort>,
}

impl ComponentDefinition for Ponger {}

impl Provide<PingPort> for Ponger {
    fn handle(&mut self, _ctx: &mut Context<Self>, _ping: Ping) {
        self.port.trigger(Pong);
    }
}

fn run_components(runtime: &Runtime, args: &Args) -> Duration {
    let (done_tx, done_rx) = bounded(args.pairs);
    let mut pingers = Vec::new();
    let mut pongers = Vec::new();
    for _ in 0..args.pairs {
        let ponger = runtime.create(|s| Ponger { port: s.provided() });
        let (pipeline, total, done) = (args.pipeline, args.msgs, done_tx.clone());
        let pinger = runtime.create(move |s| Pinger {
            port: s.required(),
            pipeline,
            total,
            sent: 0,
            received: 0,
            done: done.clone(),
        });
        connect(&ponger.provided::<PingPort>(), &pinger.required::<PingPort>());
        ponger.start();
        pingers.push(pinger);
        pongers.push(ponger);
    }
    // Let the pongers start before the clock does.
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    for p in &pingers {
        p.start();
    }
    for _ in 0..args.pairs {
        done_rx.recv().expect("a pinger finished");
    }
    let elapsed = start.elapsed();
    for c in &pingers {
        c.kill();
    }
    for c in &pongers {
        c.kill();
    }
    elapsed
}

fn run_raw(args: &Args) -> Duration {
    let start = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..args.pairs {
        let (ping_tx, ping_rx): (Sender<Ping>, Receiver<Ping>) = crossbeam_channel::unbounded();
        let (pong_tx, pong_rx): (Sender<Pong>, Receiver<Pong>) = crossbeam_channel::unbounded();
        let total = args.msgs;
        let pipeline = args.pipeline.min(total);
        threads.push(std::thread::spawn(move || {
            for Ping in ping_rx.iter() {
                if pong_tx.send(Pong).is_err() {
                    break;
                }
            }
        }));
        threads.push(std::thread::spawn(move || {
            let mut sent = 0;
            while sent < pipeline {
                sent += 1;
                ping_tx.send(Ping).expect("ponger alive");
            }
            for _ in 0..total {
                pong_rx.recv().expect("ponger alive");
                if sent < total {
                    sent += 1;
                    ping_tx.send(Ping).expect("ponger alive");
                }
            }
        }));
    }
    for t in threads {
        t.join().expect("thread");
    }
    start.elapsed()
}

fn main() {
    env_logger::init();
    let args = Args::parse();
    let messages = 2 * args.msgs * args.pairs as u64;
    let runtime = (!args.raw).then(|| {
        let mut config = RuntimeConfig::default();
        if let Some(w) = args.workers {
            config = config.workers(w);
        }
        if let Some(b) = args.batch {
            config = config.batch_events(b);
        }
        Runtime::new(config)
    });
    let mode = if args.raw { "raw threads" } else { "components" };
    println!(
        "ping_pong ({mode}): pairs={} pipeline={} msgs/pair={} runs={}",
        args.pairs, args.pipeline, args.msgs, args.runs
    );
    let mut rates = Vec::new();
    for run in 0..args.runs {
        let elapsed = match &runtime {
            Some(rt) => run_components(rt, &args),
            None => run_raw(&args),
        };
        let rate = messages as f64 / elapsed.as_secs_f64();
        println!("run {run}: {:.3} s, {:.2} M msgs/s", elapsed.as_secs_f64(), rate / 1e6);
        rates.push(rate);
    }
    if let Some(rt) = runtime {
        rt.shutdown();
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    let median = rates[rates.len() / 2];
    println!("msgs/s: {median:.0}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: usize, pipeline: u64) -> Args {
        Args { pairs, pipeline, msgs: 5_000, runs: 1, workers: Some(2), batch: None, raw: false }
    }

    #[test]
    fn every_pinger_gets_all_its_pongs() {
        let runtime = Runtime::new(RuntimeConfig::default().workers(2));
        for (pairs, pipeline) in [(1, 1), (2, 1), (1, 500), (3, 10)] {
            // run_components returns only once every pinger has counted all its pongs.
            run_components(&runtime, &args(pairs, pipeline));
        }
        runtime.shutdown();
    }

    #[test]
    fn the_raw_baseline_completes() {
        run_raw(&args(2, 10));
    }
}
