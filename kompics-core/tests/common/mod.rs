//! Small components shared by the integration tests.
#![allow(dead_code)]

use crossbeam_channel::Sender;
use kompics_core::*;

/// A port carrying numbered requests and numbered answers.
pub struct Numbers;

/// A numbered request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Req(pub u64);

/// A numbered indication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ind(pub u64);

impl Port for Numbers {
    type Request = Req;
    type Indication = Ind;
}

/// Provides `Numbers`: answers each request with an indication of the same number, and
/// remembers what it saw.
pub struct Echo {
    pub port: ProvidedPort<Numbers>,
    pub seen: Vec<u64>,
}

impl Echo {
    pub fn new(s: &mut Setup<Echo>) -> Echo {
        Echo { port: s.provided(), seen: Vec::new() }
    }
}

impl ComponentDefinition for Echo {}

impl Provide<Numbers> for Echo {
    fn handle(&mut self, _ctx: &mut Context<Self>, Req(n): Req) {
        self.seen.push(n);
        self.port.trigger(Ind(n));
    }
}

/// Requires `Numbers`: records the indications it receives, optionally forwarding them to a
/// channel so a test thread can wait for them.
pub struct Sink {
    pub port: RequiredPort<Numbers>,
    pub seen: Vec<u64>,
    pub out: Option<Sender<u64>>,
}

impl Sink {
    pub fn new(s: &mut Setup<Sink>) -> Sink {
        Sink { port: s.required(), seen: Vec::new(), out: None }
    }

    pub fn with_out(s: &mut Setup<Sink>, out: Sender<u64>) -> Sink {
        Sink { port: s.required(), seen: Vec::new(), out: Some(out) }
    }
}

impl ComponentDefinition for Sink {}

impl Require<Numbers> for Sink {
    fn handle(&mut self, _ctx: &mut Context<Self>, Ind(n): Ind) {
        self.seen.push(n);
        if let Some(out) = &self.out {
            let _ = out.send(n);
        }
    }
}

/// Reads the number of CPU ticks (user + system) this process has used, from /proc.
pub fn process_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// The number of threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").expect("read /proc/self/task").count()
}
