//! An application for testing the Zab component: a replicated log of payloads that records
//! everything the component tells it.

use std::time::Duration;

use kompics_core::{ComponentDefinition, Context, Require, RequiredPort, Setup, Time};

use super::{decode_state, encode_state, AppState};
use crate::component::{AbEvent, AbRequest, AtomicBroadcast, ProposeFailure, ZabStatus};
use crate::protocol::Zxid;

/// When a [`LogApp`] answers the component's snapshot requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotAnswer {
    /// In the handler of the request.
    Now,
    /// This long (virtual time) after the request, with the state captured at the request.
    After(Duration),
    /// Never by itself: the answers wait in [`LogApp::held`] for the test.
    Hold,
}

/// A replicated log of payloads, as the application on a Zab component's
/// [`AtomicBroadcast`] port: its state is the log itself (snapshots are
/// [`encode_state`]). It asserts that deliveries come in zxid order and that a snapshot is
/// requested at its last delivery, and records every status, commit, failure and read barrier
/// with its virtual time, for the test to look at (`Component::on_definition`).
///
/// ```
/// use std::time::Duration;
///
/// use kompics_core::Simulation;
/// use kompics_net::sim::SimNetConfig;
/// use zab_components::testing::{Group, LogApp, SnapshotAnswer};
///
/// let sim = Simulation::new(3);
/// let mut group = Group::new(sim, 3, SimNetConfig::default(), |_| {}, |node| {
///     let app = node.system.create(|s| LogApp::new(s, SnapshotAnswer::Now));
///     node.connect_app(&app);
///     app
/// });
/// group.run(Duration::from_secs(3));
/// let tag = group.fresh_tag();
/// group.node(0).app.on_definition(|a| a.propose(tag, b"x".to_vec()));
/// group.run(Duration::from_secs(1));
/// for i in 0..3 {
///     let log = group.node(i).app.on_definition(|a| a.log.clone()).unwrap();
///     assert_eq!(log.len(), 1, "node {i} delivered the proposal");
/// }
/// ```
pub struct LogApp {
    /// The port to the Zab component.
    pub ab: RequiredPort<AtomicBroadcast>,
    /// Every delivered transaction, in order (replaced by an installed state).
    pub log: AppState,
    /// When snapshot requests are answered.
    pub answer: SnapshotAnswer,
    /// Captured states not answered yet ([`SnapshotAnswer::Hold`]), oldest first.
    pub held: Vec<(Zxid, Vec<u8>)>,
    /// The last status.
    pub status: Option<ZabStatus>,
    /// Every status, with the time it arrived.
    pub statuses: Vec<(Time, ZabStatus)>,
    /// This node's proposals reported committed: tag, zxid, time.
    pub committed: Vec<(u64, Zxid, Time)>,
    /// This node's proposals reported failed.
    pub failed: Vec<(u64, ProposeFailure)>,
    /// Read barriers passed: tag, and the last delivery when it passed.
    pub reads: Vec<(u64, Option<Zxid>)>,
}

impl LogApp {
    /// An empty log whose snapshot requests are answered as `answer` says.
    pub fn new(setup: &mut Setup<LogApp>, answer: SnapshotAnswer) -> LogApp {
        LogApp {
            ab: setup.required(),
            log: Vec::new(),
            answer,
            held: Vec::new(),
            status: None,
            statuses: Vec::new(),
            committed: Vec::new(),
            failed: Vec::new(),
            reads: Vec::new(),
        }
    }

    /// Proposes `payload` under `tag`.
    pub fn propose(&mut self, tag: u64, payload: Vec<u8>) {
        self.ab.trigger(AbRequest::Propose { tag, payload });
    }

    /// The zxid of the last delivery (zero if none).
    pub fn last_zxid(&self) -> Zxid {
        self.log.last().map_or(Zxid::ZERO, |(zxid, _)| *zxid)
    }

    fn snapshot_requested(&mut self, ctx: &mut Context<Self>, zxid: Zxid) {
        assert_eq!(self.last_zxid(), zxid, "snapshot at the last delivery");
        // Captured now, answered when the application chooses.
        let state = encode_state(&self.log);
        match self.answer {
            SnapshotAnswer::Now => self.ab.trigger(AbRequest::SnapshotTaken { zxid, state }),
            SnapshotAnswer::After(delay) => {
                ctx.schedule_once(delay, move |a: &mut LogApp, _ctx| {
                    a.ab.trigger(AbRequest::SnapshotTaken { zxid, state })
                });
            }
            SnapshotAnswer::Hold => self.held.push((zxid, state)),
        }
    }
}

impl ComponentDefinition for LogApp {}

impl Require<AtomicBroadcast> for LogApp {
    fn handle(&mut self, ctx: &mut Context<Self>, event: AbEvent) {
        match event {
            AbEvent::Deliver { zxid, payload } => {
                let last = self.last_zxid();
                assert!(zxid > last, "delivered out of order: {zxid:?} after {last:?}");
                self.log.push((zxid, payload));
            }
            AbEvent::Status(status) => {
                self.status = Some(status);
                self.statuses.push((ctx.now(), status));
            }
            AbEvent::Assigned { .. } => {}
            AbEvent::Committed { tag, zxid } => self.committed.push((tag, zxid, ctx.now())),
            AbEvent::Failed { tag, reason } => self.failed.push((tag, reason)),
            AbEvent::ReadReady { tag } => {
                let at = self.log.last().map(|(zxid, _)| *zxid);
                self.reads.push((tag, at));
            }
            AbEvent::TakeSnapshot { zxid } => self.snapshot_requested(ctx, zxid),
            AbEvent::InstallState { zxid, state } => {
                self.log = state.as_deref().map(decode_state).unwrap_or_default();
                assert!(self.log.last().is_none_or(|(z, _)| *z == zxid));
            }
        }
    }
}
