//! An idle runtime parks its threads: it uses (almost) no CPU.
//!
//! Alone in its test binary so that no other test's threads are counted.

mod common;

use std::time::Duration;

use common::*;
use kompics_core::*;

#[test]
fn an_idle_runtime_uses_almost_no_cpu() {
    let rt = Runtime::new(RuntimeConfig::default().workers(4));
    // Some components, started, connected, with a far-away timer: idle but alive.
    let echo = rt.create(Echo::new);
    let sink = rt.create(Sink::new);
    connect(&echo.provided::<Numbers>(), &sink.required::<Numbers>());
    echo.start();
    sink.start();
    sink.on_definition(|s| (0..1000).for_each(|i| s.port.trigger(Req(i))));
    std::thread::sleep(Duration::from_millis(200)); // let the burst drain and workers park
    let ticks_per_sec = 100; // USER_HZ on Linux
    let before = process_cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = process_cpu_ticks() - before;
    println!("CPU used over an idle second: {} ms", used * 1000 / ticks_per_sec);
    // 5% of one core; a spinning worker would use 100% per worker.
    assert!(used * 1000 / ticks_per_sec <= 50, "idle runtime used {used} ticks in one second");
    rt.shutdown();
}
