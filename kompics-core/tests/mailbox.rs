//! Mailboxes: events told from other threads, under the same lifecycle rule as port events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kompics_core::*;

/// Collects (sender, sequence) pairs told to it and reports when it has `expected` of them.
struct Collector {
    got: Vec<(u32, u64)>,
    in_handler: Arc<AtomicBool>,
    expected: usize,
    done: crossbeam_channel::Sender<()>,
}

impl ComponentDefinition for Collector {}

impl Receive<(u32, u64)> for Collector {
    fn receive(&mut self, _ctx: &mut Context<Self>, event: (u32, u64)) {
        // Shared with nothing else: set while this component's handler runs, to catch two
        // handlers of one component at once.
        assert!(!self.in_handler.swap(true, Ordering::SeqCst), "two handlers ran at once");
        self.got.push(event);
        self.in_handler.store(false, Ordering::SeqCst);
        if self.got.len() == self.expected {
            let _ = self.done.send(());
        }
    }
}

#[test]
fn many_threads_tell_one_component_one_handler_at_a_time_each_thread_in_order() {
    const THREADS: u32 = 4;
    const N: u64 = 10_000;
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let (tx, rx) = crossbeam_channel::unbounded();
    let collector = rt.create(move |s| {
        let _ = s.mailbox::<(u32, u64)>();
        Collector {
            got: Vec::new(),
            in_handler: Arc::default(),
            expected: (THREADS as u64 * N) as usize,
            done: tx.clone(),
        }
    });
    collector.start();
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let mailbox = collector.mailbox::<(u32, u64)>();
            std::thread::spawn(move || (0..N).for_each(|i| assert!(mailbox.tell((t, i)))))
        })
        .collect();
    senders.into_iter().for_each(|h| h.join().unwrap());
    rx.recv_timeout(Duration::from_secs(30)).expect("all events arrived");
    let got = collector.on_definition(|c| c.got.clone()).unwrap();
    for t in 0..THREADS {
        let mine: Vec<u64> = got.iter().filter(|(s, _)| *s == t).map(|(_, i)| *i).collect();
        assert_eq!(mine, (0..N).collect::<Vec<_>>(), "thread {t}'s events in order, none lost");
    }
    rt.shutdown();
}

#[test]
fn told_events_wait_for_start_and_are_dropped_after_kill() {
    let sim = Simulation::new(1);
    let (tx, _rx) = crossbeam_channel::unbounded();
    let c = sim.create(move |s| {
        let _ = s.mailbox::<(u32, u64)>();
        Collector {
            got: Vec::new(),
            in_handler: Arc::default(),
            expected: usize::MAX,
            done: tx.clone(),
        }
    });
    let mailbox = c.mailbox::<(u32, u64)>();
    mailbox.tell((0, 1));
    sim.run_until_quiescent(Duration::from_secs(1));
    assert_eq!(c.on_definition(|c| c.got.len()), Some(0), "kept while not started");
    c.start();
    sim.run_until_quiescent(Duration::from_secs(1));
    assert_eq!(c.on_definition(|c| c.got.clone()), Some(vec![(0, 1)]));
    c.kill();
    sim.run_until_quiescent(Duration::from_secs(1));
    mailbox.tell((0, 2));
    sim.run_until_quiescent(Duration::from_secs(1));
    assert_eq!(c.on_definition(|c| c.got.len()), None, "destroyed");
    drop(c);
    drop(sim);
    assert!(!mailbox.tell((0, 3)), "the component no longer exists");
}
