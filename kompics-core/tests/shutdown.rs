//! Shutdown kills every component (running their hooks) and joins every thread.
//!
//! Alone in its test binary so that the thread count is this test's alone.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use kompics_core::*;

struct Hooked {
    kills: Arc<AtomicUsize>,
}

impl ComponentDefinition for Hooked {
    fn on_init(&mut self, ctx: &mut Context<Self>) {
        // A child too: it must be killed with its parent.
        let kills = self.kills.clone();
        let _child = ctx.create(move |_| Leaf { kills: kills.clone() });
    }
    fn on_kill(&mut self, _ctx: &mut Context<Self>) {
        self.kills.fetch_add(1, Ordering::SeqCst);
    }
}

struct Leaf {
    kills: Arc<AtomicUsize>,
}

impl ComponentDefinition for Leaf {
    fn on_kill(&mut self, _ctx: &mut Context<Self>) {
        self.kills.fetch_add(1, Ordering::SeqCst);
    }
}

/// The thread count once it reaches `expected`, or after 2 s. A joined thread's entry in
/// /proc can outlive the join by a moment while the kernel reaps it; a thread that was not
/// joined stays, and the count never comes down.
fn settled_thread_count(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let n = thread_count();
        if n == expected || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn shutdown_kills_every_component_and_joins_every_thread() {
    let baseline = thread_count();
    let rt = Runtime::new(RuntimeConfig::default().workers(3));
    assert_eq!(thread_count(), baseline + 4, "3 workers and a timer thread");
    let kills = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let k = kills.clone();
        let c = rt.create(move |_| Hooked { kills: k.clone() });
        c.start();
    }
    rt.shutdown();
    assert_eq!(kills.load(Ordering::SeqCst), 20, "every component and child ran on_kill");
    assert_eq!(settled_thread_count(baseline), baseline, "every runtime thread was joined");

    // Dropping a runtime does the same.
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let echo = rt.create(Echo::new);
    echo.start();
    drop(rt);
    assert_eq!(settled_thread_count(baseline), baseline);
    assert_eq!(echo.state(), LifecycleState::Destroyed);
}
