//! Background threads: work that may take seconds of CPU (serializing a snapshot, writing its
//! file) runs on threads of lower priority, so that it takes the CPU the request path leaves
//! idle rather than competing with it, and a snapshot of a large store does not raise the
//! latency of the writes that go on meanwhile.

/// The priority background threads ask for, on the platform-independent scale of 0 (lowest)
/// to 99: about nice 10 on Linux, where a nice-0 thread then gets about nine tenths of a
/// contended core. Not the lowest: a background thread must still progress on a busy machine.
const BACKGROUND_PRIORITY: u8 = 23;

/// Lowers the calling thread's CPU priority for background work. A platform or a sandbox that
/// refuses is not an error: the work then runs at normal priority.
///
/// ```
/// let done = std::thread::spawn(|| {
///     zab_components::background::lower_current_thread_priority();
///     (0..1000u64).sum::<u64>()
/// });
/// assert_eq!(done.join().unwrap(), 499_500);
/// ```
pub fn lower_current_thread_priority() {
    let set = thread_priority::ThreadPriorityValue::try_from(BACKGROUND_PRIORITY)
        .map_err(|e| e.to_string())
        .and_then(|value| {
            thread_priority::set_current_thread_priority(
                thread_priority::ThreadPriority::Crossplatform(value),
            )
            .map_err(|e| format!("{e:?}"))
        });
    if let Err(e) = set {
        log::debug!("background thread keeps its priority: {e}");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The calling thread's nice value, from `/proc/thread-self/stat` (field 19).
    fn nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("procfs");
        // The command name (field 2) is in parentheses and may hold spaces.
        let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
        after.split(' ').nth(16).expect("field 19").parse().expect("a number")
    }

    #[test]
    fn a_background_thread_runs_nicer_than_the_rest() {
        let before = nice();
        let lowered = std::thread::spawn(|| {
            super::lower_current_thread_priority();
            nice()
        })
        .join()
        .unwrap();
        assert!(lowered > before, "nice {lowered} after lowering, {before} before");
        assert_eq!(nice(), before, "only the calling thread");
    }
}
