//! What a failed [`Sim`] run says: its seed (to replay it), the reason, each node's state and
//! a window of the trace of recent events.

use std::fmt::Write as _;

use super::Sim;
use crate::protocol::Message;

/// The message of a caught panic.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

impl Sim {
    pub(super) fn log_trace(&mut self, line: String) {
        if self.trace.len() >= trace_window() {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("[t{}] {line}", self.now));
    }

    /// Records `why` as the run's failure, unless one is recorded already: the first failure
    /// is the one the report names.
    pub fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }

    /// The failure report: the seed, the reason, the cluster and the recent trace.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "seed {} (replay with SIM_SEED={})", self.seed, self.seed);
        if let Some(failure) = &self.failure {
            let _ = writeln!(out, "failure: {failure}");
        }
        for (i, sim_node) in self.nodes.iter().enumerate() {
            match &sim_node.node {
                Some(node) => {
                    let _ = writeln!(out, "n{}: {node:?} app_len={}", i + 1, sim_node.app.len());
                }
                None => {
                    let _ = writeln!(out, "n{}: down", i + 1);
                }
            }
        }
        let _ = writeln!(out, "global delivered: {}", self.global.len());
        let _ = writeln!(out, "--- last events ---");
        for line in self.trace.iter().skip(self.trace.len().saturating_sub(report_lines())) {
            let _ = writeln!(out, "{line}");
        }
        out
    }

    /// The verdict of a run wrapped in `catch_unwind`: `Ok` if it neither failed a check nor
    /// panicked, else the report (a panic is recorded as the failure).
    pub fn verdict(&mut self, outcome: std::thread::Result<()>) -> Result<(), String> {
        match outcome {
            Ok(()) if self.failure.is_none() => Ok(()),
            Ok(()) => Err(self.report()),
            Err(panic) => {
                self.fail(format!("panic: {}", panic_text(&*panic)));
                Err(self.report())
            }
        }
    }
}

/// `SIM_TRACE_VOTES=1` adds election notifications to failure traces and keeps a longer
/// window of them (liveness failures are mostly about votes).
pub(super) fn trace_votes() -> bool {
    static VOTES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VOTES.get_or_init(|| std::env::var_os("SIM_TRACE_VOTES").is_some())
}

/// How many trace lines are kept.
fn trace_window() -> usize {
    if trace_votes() {
        20_000
    } else {
        400
    }
}

/// How many of them a failure report shows: all of them when votes are traced.
fn report_lines() -> usize {
    if trace_votes() {
        trace_window()
    } else {
        120
    }
}

/// A message in one short line, as the trace shows it (entries as a zxid range, snapshot chunks
/// by size).
pub fn describe(msg: &Message) -> String {
    match msg {
        Message::Proposal { entries } | Message::SyncEntries { entries } => format!(
            "{} {}..{}",
            msg.kind(),
            entries.first().map(|e| e.zxid).unwrap_or_default(),
            entries.last().map(|e| e.zxid).unwrap_or_default()
        ),
        Message::SnapChunk { bytes } => format!("SNAPCHUNK {}B", bytes.len()),
        Message::Forward { id, .. } => format!("FORWARD {id}"),
        other => format!("{other:?}"),
    }
}
