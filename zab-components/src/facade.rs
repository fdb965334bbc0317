//! The standalone Zab API, for programs that know nothing of components.
//!
//! This is the interface proposed on the ZooKeeper wiki for an extracted Zab: start it with a
//! callback, propose bytes, and receive committed transactions, status changes and state
//! transfer requests through the callback. Underneath, [`Zab::start`] runs a private runtime
//! with a TCP network, a failure detector and one [`ZabComponent`].
//!
//! The callback runs in a bridge component of its own, never in the Zab component: a slow
//! callback — a `get_state` writing a large state — delays only the calls queued behind it (the
//! deliveries that follow a snapshot request wait for `get_state`, which must see none of
//! them), while the protocol goes on with its heartbeats, proposals and commits on another of
//! the runtime's workers ([`ZabOptions::workers`], at least 2 for that reason). Zab accepts
//! the state whenever it comes.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use zab_components::facade::{Zab, ZabCallback, ZabOptions};
//! use zab_components::component::ZabStatus;
//! use zab_components::protocol::Zxid;
//! use zab_components::storage::SimDisk;
//!
//! /// A replicated counter: every delivered transaction adds one.
//! struct Counter(u64);
//! impl ZabCallback for Counter {
//!     fn deliver(&mut self, _zxid: Zxid, _payload: &[u8]) { self.0 += 1; }
//!     fn status(&mut self, status: ZabStatus) { println!("now {status:?}"); }
//!     fn get_state(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
//!         out.write_all(&self.0.to_le_bytes())
//!     }
//!     fn set_state(&mut self, input: Option<&mut dyn Read>) -> std::io::Result<()> {
//!         let mut b = [0u8; 8];
//!         self.0 = match input { Some(r) => { r.read_exact(&mut b)?; u64::from_le_bytes(b) } None => 0 };
//!         Ok(())
//!     }
//! }
//!
//! let members = vec!["127.0.0.1:7201".parse().unwrap(), "127.0.0.1:7202".parse().unwrap(),
//!                    "127.0.0.1:7203".parse().unwrap()];
//! // Every member holds the same secret (32 random bytes from a file, in real use).
//! let security = kompics_net::PeerSecurity::shared_secret("counter", &[9; 32]).unwrap();
//! let zab = Zab::start(ZabOptions::new(members[0], members.clone(), security),
//!                      Box::new(SimDisk::new()), Counter(0))?;
//! match zab.propose(b"+1".to_vec()).committed(Duration::from_secs(5)) {
//!     Ok(zxid) => println!("committed at {zxid:?}"),
//!     Err(e) => println!("not committed: {e}"),
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use kompics_core::{
    connect, Component, ComponentDefinition, Context, Mailbox, Receive, Require, RequiredPort,
    Runtime, RuntimeConfig,
};
use kompics_net::{Network, NodeAddr, PeerSecurity, TcpConfig, TcpNetwork};
use parking_lot::Mutex;

use crate::component::{
    AbEvent, AbRequest, AtomicBroadcast, ProposeFailure, ZabComponent, ZabConfig, ZabStatus,
};
use crate::failure_detector::{FailureDetector, FdConfig};
use crate::protocol::Zxid;
use crate::storage::ZabStorage;

/// What Zab tells the program. Calls come one at a time, from one of Zab's threads.
pub trait ZabCallback: Send + 'static {
    /// A committed transaction, in zxid order, each once (until a `set_state`).
    fn deliver(&mut self, zxid: Zxid, payload: &[u8]);
    /// This node's role changed; when following, the status names the leader.
    fn status(&mut self, status: ZabStatus);
    /// Write the whole state, as it is after every `deliver` so far (for a snapshot, or to
    /// bring a lagging node up to date). It does not hold up the protocol (see the module
    /// docs), but later `deliver`s wait for it: a large state is best written from a cheap
    /// capture (a persistent map) rather than under a lock the program's other threads need.
    fn get_state(&mut self, out: &mut dyn Write) -> io::Result<()>;
    /// Replace the whole state with the one read from `input` (`None`: the empty initial
    /// state); deliveries continue after it.
    fn set_state(&mut self, input: Option<&mut dyn Read>) -> io::Result<()>;
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct ZabOptions {
    /// This node's address (it listens there; it is its identity).
    pub listen: SocketAddr,
    /// Every member's address, this node's included.
    pub members: Vec<SocketAddr>,
    /// How members authenticate each other (and the cluster identity they share).
    pub security: PeerSecurity,
    /// Worker threads of the private runtime (default 2: one can run the callback while
    /// another runs the protocol). Values below 2 are raised to 2.
    pub workers: usize,
    /// Settings of the failure detector.
    pub failure_detector: FdConfig,
    /// Changes to the Zab settings (ticks, timeouts, bounds), applied after the defaults.
    pub tune: fn(&mut ZabConfig),
}

impl ZabOptions {
    /// Defaults for a member listening at `listen` among `members`, authenticating its peers as
    /// `security` says.
    pub fn new(listen: SocketAddr, members: Vec<SocketAddr>, security: PeerSecurity) -> ZabOptions {
        ZabOptions {
            listen,
            members,
            security,
            workers: 2,
            failure_detector: FdConfig::default(),
            tune: |_| {},
        }
    }
}

/// Why a proposal did not commit, and what the caller can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Nothing happened: no leader is established right now (retry later), or this node knows
    /// the leader is `leader` (retry there, or here later: followers forward proposals).
    NotLeader {
        /// The leader, if known.
        leader: Option<SocketAddr>,
    },
    /// Nothing happened: too many proposals are in flight; retry later.
    TooManyOutstanding,
    /// Nothing happened, and retrying will not help: the payload is larger than the
    /// configuration's `payload_bytes_max` (`max`).
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// The proposal may or may not commit: watch the deliveries to find out.
    OutcomeUnknown,
    /// No answer within the time waited; the outcome is unknown.
    Timeout,
    /// This node has stopped; the outcome is unknown.
    Stopped,
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { leader: Some(l) } => {
                write!(f, "not committed: the leader is {l}")
            }
            ProposeError::NotLeader { leader: None } => {
                write!(f, "not committed: no leader right now; retry")
            }
            ProposeError::TooManyOutstanding => {
                write!(f, "not committed: too many proposals in flight; retry")
            }
            ProposeError::TooLarge { max } => {
                write!(f, "not committed: the payload exceeds payload_bytes_max ({max})")
            }
            ProposeError::OutcomeUnknown => {
                write!(f, "outcome unknown: the leader changed while it was in flight")
            }
            ProposeError::Timeout => write!(f, "outcome unknown: no answer in time"),
            ProposeError::Stopped => write!(f, "outcome unknown: this node stopped"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// A proposal in flight: wait for the zxid the leader assigns, then for its commit.
#[derive(Debug)]
pub struct Proposal {
    assigned: Receiver<Zxid>,
    outcome: Receiver<Result<Zxid, ProposeError>>,
}

impl Proposal {
    /// Waits up to `timeout` for the zxid the leader assigned (a follower learns it from the
    /// leader). An error means it will never be assigned, or was not in time.
    pub fn assigned(&self, timeout: Duration) -> Result<Zxid, ProposeError> {
        match self.assigned.recv_timeout(timeout) {
            Ok(z) => Ok(z),
            Err(RecvTimeoutError::Timeout) => Err(ProposeError::Timeout),
            Err(RecvTimeoutError::Disconnected) => match self.outcome.try_recv() {
                Ok(Err(e)) => Err(e),
                Ok(Ok(z)) => Ok(z),
                Err(_) => Err(ProposeError::Stopped),
            },
        }
    }

    /// Waits up to `timeout` for the commit; `Ok` is the zxid of the committed transaction
    /// (delivered to the callback just before).
    pub fn committed(self, timeout: Duration) -> Result<Zxid, ProposeError> {
        match self.outcome.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(ProposeError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(ProposeError::Stopped),
        }
    }
}

/// A proposal handed to the bridge.
#[derive(Clone)]
struct Submit {
    payload: Vec<u8>,
    assigned: Sender<Zxid>,
    outcome: Sender<Result<Zxid, ProposeError>>,
}

impl fmt::Debug for Submit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Submit({} bytes)", self.payload.len())
    }
}

type SharedCallback = Arc<Mutex<Box<dyn ZabCallback>>>;

/// Connects the callback and the program's proposals to the Zab component.
struct Bridge {
    ab: RequiredPort<AtomicBroadcast>,
    callback: SharedCallback,
    next_tag: u64,
    waiting: BTreeMap<u64, Submit>,
    status: Arc<Mutex<ZabStatus>>,
}

impl ComponentDefinition for Bridge {}

impl Receive<Submit> for Bridge {
    fn receive(&mut self, _ctx: &mut Context<Self>, submit: Submit) {
        self.next_tag += 1;
        let payload = submit.payload.clone();
        self.waiting.insert(self.next_tag, submit);
        self.ab.trigger(AbRequest::Propose { tag: self.next_tag, payload });
    }
}

impl Require<AtomicBroadcast> for Bridge {
    fn handle(&mut self, _ctx: &mut Context<Self>, event: AbEvent) {
        match event {
            AbEvent::Deliver { zxid, payload } => self.callback.lock().deliver(zxid, &payload),
            AbEvent::Status(s) => {
                *self.status.lock() = s;
                self.callback.lock().status(s);
            }
            AbEvent::Assigned { tag, zxid } => {
                if let Some(w) = self.waiting.get(&tag) {
                    let _ = w.assigned.send(zxid);
                }
            }
            AbEvent::Committed { tag, zxid } => {
                if let Some(w) = self.waiting.remove(&tag) {
                    let _ = w.outcome.send(Ok(zxid));
                }
            }
            AbEvent::Failed { tag, reason } => {
                if let Some(w) = self.waiting.remove(&tag) {
                    let e = match reason {
                        ProposeFailure::NotLeader { leader } => {
                            ProposeError::NotLeader { leader: leader.map(|l| l.socket_addr()) }
                        }
                        ProposeFailure::TooManyOutstanding => ProposeError::TooManyOutstanding,
                        ProposeFailure::TooLarge { max } => ProposeError::TooLarge { max },
                        ProposeFailure::OutcomeUnknown => ProposeError::OutcomeUnknown,
                    };
                    let _ = w.outcome.send(Err(e));
                }
            }
            // The facade issues no read barriers.
            AbEvent::ReadReady { .. } => {}
            AbEvent::TakeSnapshot { zxid } => {
                // Here, not in the Zab component: the protocol goes on while this writes.
                let mut state = Vec::new();
                if let Err(e) = self.callback.lock().get_state(&mut state) {
                    panic!("get_state failed: {e}");
                }
                self.ab.trigger(AbRequest::SnapshotTaken { zxid, state });
            }
            AbEvent::InstallState { state, .. } => {
                let mut cb = self.callback.lock();
                let r = match state {
                    Some(bytes) => cb.set_state(Some(&mut bytes.as_slice())),
                    None => cb.set_state(None),
                };
                if let Err(e) = r {
                    panic!("set_state failed: {e}");
                }
            }
        }
    }
}

/// A running Zab node.
pub struct Zab {
    runtime: Runtime,
    submit: Mailbox<Submit>,
    status: Arc<Mutex<ZabStatus>>,
    zab: Component<ZabComponent>,
}

impl Zab {
    /// Starts a node: binds `options.listen`, recovers from `storage`, restores the callback's
    /// state from the newest snapshot (`set_state`), then joins the group.
    pub fn start(
        options: ZabOptions,
        storage: Box<dyn ZabStorage>,
        callback: impl ZabCallback,
    ) -> io::Result<Zab> {
        let me = NodeAddr(options.listen);
        let members: Vec<NodeAddr> = options.members.iter().map(|a| NodeAddr(*a)).collect();
        if !members.contains(&me) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "listen is not one of the members",
            ));
        }
        let mut config = ZabConfig::new(0, me, &members);
        (options.tune)(&mut config);
        config.validate().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("invalid Zab configuration: {e}"))
        })?;
        // Two workers at least, so that a long callback never starves the Zab component.
        let runtime = Runtime::new(RuntimeConfig::default().workers(options.workers.max(2)));
        let net = TcpNetwork::create(
            &runtime.system(),
            TcpConfig::new(options.listen, options.security.clone()),
        )?;
        let system = runtime.system();
        let network = net.provided::<Network>();
        let fd = FailureDetector::create(&system, &network, me, options.failure_detector.clone());
        // The storage was handed over once; a restarted instance would have no storage to
        // reopen, and refuses to build rather than run without one.
        let storage = Arc::new(Mutex::new(Some(storage)));
        let zab = ZabComponent::create(&system, &network, &fd.provided(), config, move || {
            storage.lock().take().expect("the standalone Zab's storage is opened once")
        });
        let status = Arc::new(Mutex::new(ZabStatus::Looking));
        let callback: SharedCallback = Arc::new(Mutex::new(Box::new(callback)));
        let (st, cb) = (status.clone(), callback);
        let bridge = runtime.create(move |s| {
            let _ = s.mailbox::<Submit>();
            Bridge {
                ab: s.required(),
                callback: cb.clone(),
                next_tag: 0,
                waiting: BTreeMap::new(),
                status: st.clone(),
            }
        });
        connect(&zab.provided::<AtomicBroadcast>(), &bridge.required::<AtomicBroadcast>());
        net.start();
        fd.start();
        bridge.start();
        zab.start();
        let submit = bridge.mailbox::<Submit>();
        Ok(Zab { runtime, submit, status, zab })
    }

    /// Proposes `payload`. The handle tells the zxid the leader assigns, then the commit.
    pub fn propose(&self, payload: Vec<u8>) -> Proposal {
        let (assigned_tx, assigned) = crossbeam_channel::bounded(1);
        let (outcome_tx, outcome) = crossbeam_channel::bounded(1);
        self.submit.tell(Submit { payload, assigned: assigned_tx, outcome: outcome_tx });
        Proposal { assigned, outcome }
    }

    /// This node's current role.
    pub fn status(&self) -> ZabStatus {
        *self.status.lock()
    }

    /// The last zxid this node delivered.
    pub fn delivered_zxid(&self) -> Option<Zxid> {
        self.zab.on_definition(|z| z.node().map(|n| n.delivered_zxid())).flatten()
    }

    /// Stops the node: its connections close and its threads are joined. Proposals still in
    /// flight report `Stopped`.
    pub fn shutdown(self) {
        self.runtime.shutdown();
    }
}
