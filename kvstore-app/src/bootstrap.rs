//! The Bootstrap component: forms a cluster once, remembers it for ever.
//!
//! A new cluster forms around one **bootstrap server**. Every other node (a **joiner**) sends it
//! a `Hello` (its cluster name, partition count `P`, replication degree `R` and the cluster size
//! it expects) every [`BootstrapConfig::hello_interval`]. When the server has heard from
//! `expected_nodes` distinct nodes, itself included, it builds the [`LookupTable`] (`P`
//! partitions, `R` replicas each, balanced over the nodes, several groups per node), draws a
//! random cluster id, **persists** the [`ClusterTable`] through its [`TableStore`], sends it to
//! every node and reports [`BootstrapEvent::Ready`]. A joiner persists the table before it
//! reports `Ready`; so nothing ever acts on a table that is not on disk.
//!
//! A node that finds a table in its store at start checks it against its configuration (cluster
//! name, `P`, `R`, and that the table contains the node) and is `Ready` at once, without the
//! network: a restarted node rejoins without the bootstrap server. A node that crashed before it
//! persisted the table sends `Hello` again and the server sends it the same table.
//!
//! Refusals, each reported as [`BootstrapEvent::Refused`] with a message that says what to do
//! (and logged):
//!
//! - a joiner whose name, `P`, `R` or expected size differ from the server's is refused by the
//!   server, with both values in the message;
//! - a node that contacts the server after the cluster formed without it is refused (`cluster
//!   <name> (<id>) formed without <addr>; expected N nodes`);
//! - a node whose stored table does not match its configuration is refused at start, the message
//!   naming both values and the store (the data directory's `cluster.table`);
//! - a node holding **another cluster's** table (an old data directory): once `Ready`, every
//!   node announces its cluster id to the other nodes of its table, retrying until each has
//!   answered. A node of another cluster, or whose table lacks the announcer, answers with a
//!   refusal. A node reports `Refused` when a majority of the other nodes of its table refuse it:
//!   one stale node cannot stop a healthy cluster, but the stale node itself is stopped. So
//!   `Refused` may follow `Ready`; the node must then stop serving.
//!
//! A `Ready` node never changes its table. Time is read only through timers and randomness only
//! through the context's generator, so simulated runs are deterministic.
//!
//! A three-node cluster in the simulator:
//!
//! ```
//! use std::time::Duration;
//! use kompics_core::Simulation;
//! use kompics_net::sim::{SimNet, SimNetConfig};
//! use kompics_net::{Network, NodeAddr};
//! use kvstore_app::bootstrap::{Bootstrap, BootstrapConfig, BootstrapRole, MemTableStore};
//!
//! let sim = Simulation::new(1);
//! let net = SimNet::new(&sim.system(), SimNetConfig::default());
//! let addrs: Vec<NodeAddr> =
//!     (1..=3).map(|i| NodeAddr(([10, 0, 0, i], 7000).into())).collect();
//! let mut nodes = Vec::new();
//! for &me in &addrs {
//!     let role = if me == addrs[0] {
//!         BootstrapRole::Server { expected_nodes: 3 }
//!     } else {
//!         BootstrapRole::Join { server: addrs[0] }
//!     };
//!     let config = BootstrapConfig::new(me, role, 4, 3, "demo");
//!     let store = MemTableStore::new(); // FileTableStore::new(data_dir) on a real node
//!     let network = net.add_node(me);
//!     let boot = Bootstrap::create(&sim.system(), &network.provided::<Network>(), config,
//!         move || Box::new(store.clone()));
//!     boot.start();
//!     nodes.push((network, boot));
//! }
//! let table = |i: usize| nodes[i].1.on_definition(|b| b.table().cloned()).flatten();
//! assert!(sim.run_until_cond(Duration::from_secs(5), || (0..3).all(|i| table(i).is_some())));
//! let formed = table(0).unwrap();
//! assert_eq!(formed.table.partition_count(), 4);
//! assert!((1..3).all(|i| table(i).unwrap() == formed));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kompics_core::rand::Rng;
use kompics_core::{
    connect_with, Component, ComponentDefinition, Context, Port, Provide, ProvidedPort,
    ProvidedRef, Require, RequiredPort, Setup, System, TimerId,
};
use kompics_net::{route_selector, NetEvent, NetMessage, Network, NodeAddr, Route};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::partition::LookupTable;

/// The network service number of bootstrap messages (see [`Route`]); one instance, 0, per node.
pub const BOOTSTRAP_SERVICE: u32 = 0xB007;

/// The route of bootstrap messages: [`BOOTSTRAP_SERVICE`], instance 0.
pub const BOOTSTRAP_ROUTE: Route = Route::new(BOOTSTRAP_SERVICE, 0);

/// A formed cluster: its identity and the placement of its partitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterTable {
    /// Drawn at random by the bootstrap server when the cluster formed; two clusters, even of
    /// the same name and nodes, have different ids.
    pub cluster_id: u64,
    /// The configured name of the cluster.
    pub cluster_name: String,
    /// Partition → group. Its partition count is `P`, its group size `R`.
    pub table: LookupTable<NodeAddr>,
}

impl ClusterTable {
    /// The nodes of the cluster, sorted.
    pub fn nodes(&self) -> Vec<NodeAddr> {
        self.table.nodes()
    }

    /// Whether `node` is one of the cluster's nodes.
    pub fn contains(&self, node: NodeAddr) -> bool {
        self.table.iter().any(|(_, group)| group.contains(&node))
    }
}

impl fmt::Display for ClusterTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {:?} ({:016x}): {} nodes, P={}, R={}",
            self.cluster_name,
            self.cluster_id,
            self.nodes().len(),
            self.table.partition_count(),
            self.table.replication()
        )
    }
}

/// What a node does when it has no table yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapRole {
    /// The bootstrap server: it forms the cluster once `expected_nodes` nodes (itself included)
    /// have said hello.
    Server {
        /// The size of the cluster, this node included.
        expected_nodes: usize,
    },
    /// A joiner: it says hello to `server` until it receives the table.
    Join {
        /// The bootstrap server.
        server: NodeAddr,
    },
}

/// Settings of the [`Bootstrap`] component.
#[derive(Clone, Debug)]
pub struct BootstrapConfig {
    /// This node.
    pub me: NodeAddr,
    /// Server or joiner.
    pub role: BootstrapRole,
    /// The number of partitions `P` (at least 1).
    pub partitions: u32,
    /// The replication degree `R`: nodes per group (at least 1, at most the cluster size).
    pub replication: usize,
    /// The cluster's name: a node configured for another name is refused.
    pub cluster_name: String,
    /// How often a joiner says hello, and how often a node repeats its announcement to the
    /// nodes that have not answered it. Default 200 ms.
    pub hello_interval: Duration,
    /// The cluster size a joiner expects, sent in its hello: the server refuses a joiner that
    /// expects another size. `None` (the default) accepts the server's. A server uses its
    /// role's `expected_nodes` and ignores this.
    pub expected_nodes: Option<usize>,
}

impl BootstrapConfig {
    /// A configuration with the default `hello_interval` (200 ms) and no expected size for a
    /// joiner.
    pub fn new(
        me: NodeAddr,
        role: BootstrapRole,
        partitions: u32,
        replication: usize,
        cluster_name: impl Into<String>,
    ) -> BootstrapConfig {
        BootstrapConfig {
            me,
            role,
            partitions,
            replication,
            cluster_name: cluster_name.into(),
            hello_interval: Duration::from_millis(200),
            expected_nodes: None,
        }
    }

    /// The cluster size this node expects: the server's `expected_nodes`, or a joiner's
    /// [`expected_nodes`](Self::expected_nodes).
    pub fn expected_size(&self) -> Option<usize> {
        match self.role {
            BootstrapRole::Server { expected_nodes } => Some(expected_nodes),
            BootstrapRole::Join { .. } => self.expected_nodes,
        }
    }

    /// Checks that the settings can form a cluster; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.partitions == 0 {
            return Err("the partition count P must be at least 1".into());
        }
        if self.replication == 0 {
            return Err("the replication degree R must be at least 1".into());
        }
        if self.hello_interval.is_zero() {
            return Err("hello_interval must not be zero".into());
        }
        if let BootstrapRole::Join { server } = self.role {
            if server == self.me {
                return Err(format!(
                    "node {} is configured to join itself: a bootstrap server has the Server role",
                    self.me
                ));
            }
        }
        if let Some(n) = self.expected_size() {
            if n < self.replication {
                return Err(format!(
                    "{n} expected nodes cannot hold R={} distinct replicas of each partition",
                    self.replication
                ));
            }
        }
        Ok(())
    }

    fn hello(&self) -> Hello {
        Hello {
            cluster_name: self.cluster_name.clone(),
            partitions: self.partitions,
            replication: self.replication,
            expected_nodes: self.expected_size(),
        }
    }

    /// Why `table` cannot be this node's table, or `None` if it can. `source` says where it
    /// came from, for the message.
    fn check_table(&self, table: &ClusterTable, source: &str) -> Option<String> {
        let mut wrong = Vec::new();
        if table.cluster_name != self.cluster_name {
            wrong.push(format!(
                "cluster name {:?} there, {:?} here",
                table.cluster_name, self.cluster_name
            ));
        }
        if table.table.partition_count() != self.partitions {
            wrong.push(format!(
                "P={} there, P={} here",
                table.table.partition_count(),
                self.partitions
            ));
        }
        if table.table.replication() != self.replication {
            wrong.push(format!(
                "R={} there, R={} here",
                table.table.replication(),
                self.replication
            ));
        }
        if !wrong.is_empty() {
            return Some(format!(
                "node {}: the table of cluster {:?} ({:016x}) in {source} does not match this \
                 node's configuration: {}. Start the node with the cluster's configuration, or \
                 move {source} away to join a new cluster",
                self.me,
                table.cluster_name,
                table.cluster_id,
                wrong.join("; ")
            ));
        }
        if !table.contains(self.me) {
            return Some(format!(
                "node {}: the table of cluster {:?} ({:016x}) in {source} does not contain this \
                 node (its nodes: {}): it belongs to another node",
                self.me,
                table.cluster_name,
                table.cluster_id,
                list(&table.nodes())
            ));
        }
        None
    }
}

fn list(nodes: &[NodeAddr]) -> String {
    nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
}

/// Why a [`TableStore`] could not load or save the table. The message names the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStoreError {
    /// What went wrong, where, and what to do about it.
    pub message: String,
}

impl TableStoreError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> TableStoreError {
        TableStoreError { message: message.into() }
    }
}

impl fmt::Display for TableStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TableStoreError {}

/// Where a node keeps its [`ClusterTable`] across restarts.
pub trait TableStore: Send {
    /// The stored table, `None` if there is none. A damaged one is an error, never `None`.
    fn load(&mut self) -> Result<Option<ClusterTable>, TableStoreError>;

    /// Stores `table` durably, replacing any earlier one atomically.
    fn save(&mut self, table: &ClusterTable) -> Result<(), TableStoreError>;

    /// Where the table is kept, for messages (a file's path).
    fn location(&self) -> String {
        "the table store".to_owned()
    }
}

/// The file format: magic, version, payload length, CRC-32C, then the payload (the table in
/// MessagePack). The checksum covers the version, the length and the payload.
const MAGIC: [u8; 8] = *b"kvtable\n";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 4 + 4;
/// A table of a few thousand nodes is far below this; a larger length is corruption.
const PAYLOAD_MAX: usize = 64 << 20;

/// A [`TableStore`] in the file `cluster.table` of a directory (the node's data directory).
///
/// The file is versioned and checksummed (CRC-32C); it is replaced atomically: written to
/// `cluster.table.tmp`, synced, renamed over `cluster.table`, and the directory synced. A file
/// that is truncated, corrupt or of an unknown version is an error naming the file; it is never
/// taken for a missing one.
#[derive(Clone, Debug)]
pub struct FileTableStore {
    dir: PathBuf,
}

impl FileTableStore {
    /// The name of the table file in the directory.
    pub const FILE_NAME: &'static str = "cluster.table";

    /// The store in directory `dir` (created at the first save if missing).
    pub fn new(dir: impl Into<PathBuf>) -> FileTableStore {
        FileTableStore { dir: dir.into() }
    }

    /// The path of the table file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(Self::FILE_NAME)
    }

    fn tmp_path(&self) -> PathBuf {
        self.dir.join(format!("{}.tmp", Self::FILE_NAME))
    }

    fn io_error(path: &Path, doing: &str, e: io::Error) -> TableStoreError {
        TableStoreError::new(format!(
            "{}: cannot {doing}: {e} (check the disk, free space and permissions)",
            path.display()
        ))
    }

    fn corrupt(path: &Path, what: impl fmt::Display) -> TableStoreError {
        TableStoreError::new(format!(
            "{}: {what}: the cluster table is damaged; restore it from a backup, or move it away \
             to join a new cluster as a new node",
            path.display()
        ))
    }

    /// The bytes of `table` in the file format.
    fn encode(table: &ClusterTable) -> Result<Vec<u8>, TableStoreError> {
        let payload = rmp_serde::to_vec(table)
            .map_err(|e| TableStoreError::new(format!("cannot encode the cluster table: {e}")))?;
        Ok(Self::frame(&payload))
    }

    /// `payload` behind the header.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[8..16]), payload);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<ClusterTable, TableStoreError> {
        if bytes.len() < HEADER_LEN {
            if !MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
                return Err(Self::corrupt(path, "not a cluster table file (bad magic)"));
            }
            return Err(Self::corrupt(
                path,
                format_args!(
                    "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
                    bytes.len()
                ),
            ));
        }
        if bytes[..8] != MAGIC {
            return Err(Self::corrupt(path, "not a cluster table file (bad magic)"));
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let version = word(8);
        if version != FORMAT_VERSION {
            return Err(TableStoreError::new(format!(
                "{}: cluster table format version {version} is not supported (this build reads \
                 version {FORMAT_VERSION}); run a matching build",
                path.display()
            )));
        }
        let len = word(12) as usize;
        let stored_crc = word(16);
        let payload = &bytes[HEADER_LEN..];
        if len > PAYLOAD_MAX || payload.len() < len {
            return Err(Self::corrupt(
                path,
                format_args!(
                    "truncated: the header announces {len} bytes of table, the file holds {}",
                    payload.len()
                ),
            ));
        }
        if payload.len() > len {
            return Err(Self::corrupt(
                path,
                format_args!("{} unexpected bytes after the table", payload.len() - len),
            ));
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[8..16]), payload);
        if crc != stored_crc {
            return Err(Self::corrupt(
                path,
                format_args!("checksum mismatch (stored {stored_crc:08x}, computed {crc:08x})"),
            ));
        }
        rmp_serde::from_slice(payload)
            .map_err(|e| Self::corrupt(path, format_args!("undecodable table: {e}")))
    }
}

impl TableStore for FileTableStore {
    fn load(&mut self) -> Result<Option<ClusterTable>, TableStoreError> {
        let path = self.path();
        // A leftover `cluster.table.tmp` is an interrupted save: it never counted.
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::io_error(&path, "read the cluster table", e)),
        };
        Self::decode(&path, &bytes).map(Some)
    }

    fn save(&mut self, table: &ClusterTable) -> Result<(), TableStoreError> {
        let bytes = Self::encode(table)?;
        fs::create_dir_all(&self.dir)
            .map_err(|e| Self::io_error(&self.dir, "create the data directory", e))?;
        let (tmp, path) = (self.tmp_path(), self.path());
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Self::io_error(&tmp, "create", e))?;
        file.write_all(&bytes).map_err(|e| Self::io_error(&tmp, "write", e))?;
        file.sync_all().map_err(|e| Self::io_error(&tmp, "sync", e))?;
        drop(file);
        fs::rename(&tmp, &path)
            .map_err(|e| Self::io_error(&path, "rename the temporary file over", e))?;
        let dir = File::open(&self.dir)
            .map_err(|e| Self::io_error(&self.dir, "open the directory to sync it", e))?;
        dir.sync_all().map_err(|e| Self::io_error(&self.dir, "sync the directory", e))
    }

    fn location(&self) -> String {
        self.path().display().to_string()
    }
}

/// A [`TableStore`] in memory, for tests and the simulator. Clones share the table, so a
/// simulated node restarted with a clone of its store finds the table it saved.
#[derive(Clone, Debug, Default)]
pub struct MemTableStore {
    table: Arc<Mutex<Option<ClusterTable>>>,
}

impl MemTableStore {
    /// An empty store.
    pub fn new() -> MemTableStore {
        MemTableStore::default()
    }

    /// The stored table.
    pub fn get(&self) -> Option<ClusterTable> {
        self.table.lock().clone()
    }

    /// Replaces the stored table (e.g. to give a node another cluster's table, or none).
    pub fn set(&self, table: Option<ClusterTable>) {
        *self.table.lock() = table;
    }
}

impl TableStore for MemTableStore {
    fn load(&mut self) -> Result<Option<ClusterTable>, TableStoreError> {
        Ok(self.get())
    }

    fn save(&mut self, table: &ClusterTable) -> Result<(), TableStoreError> {
        self.set(Some(table.clone()));
        Ok(())
    }

    fn location(&self) -> String {
        "the in-memory table store".to_owned()
    }
}

/// The port of the [`Bootstrap`] component.
pub struct BootstrapPort;

/// Requests to the [`Bootstrap`] component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapRequest {
    /// Repeat the outcome ([`BootstrapEvent::Ready`] or [`BootstrapEvent::Refused`]) if there
    /// is one yet, for a component connected after it was reported.
    Status,
}

/// What the [`Bootstrap`] component reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapEvent {
    /// The node belongs to this cluster: the table is on disk and will not change.
    Ready(Arc<ClusterTable>),
    /// The node must not serve (it may follow `Ready`): its configuration does not match the
    /// cluster's, the cluster formed without it, the majority of its cluster refuse it, or its
    /// table store failed. The reason says which, and what to do.
    Refused {
        /// The reason, for the operator.
        reason: String,
    },
}

impl Port for BootstrapPort {
    type Request = BootstrapRequest;
    type Indication = BootstrapEvent;
}

/// What a joiner says to the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Hello {
    cluster_name: String,
    partitions: u32,
    replication: usize,
    expected_nodes: Option<usize>,
}

/// The messages bootstrap components exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Wire {
    /// Joiner → server: please send me the table.
    Hello(Hello),
    /// Server → joiner: the cluster's table.
    Table(ClusterTable),
    /// Server → joiner: you cannot join.
    Refuse { reason: String },
    /// Ready node → the other nodes of its table: I am in your cluster.
    Announce { cluster_id: u64, cluster_name: String },
    /// Yes, you are.
    Welcome { cluster_id: u64 },
    /// No, you are not.
    Reject { reason: String },
}

/// The answer of a node to an announcement.
#[derive(Clone, Debug)]
enum Answer {
    Welcome,
    Reject(String),
}

/// Where the component is.
#[derive(Debug)]
enum Phase {
    /// Not started yet.
    Idle,
    /// Waiting for the cluster to form (server: collecting hellos; joiner: saying hello).
    Forming,
    /// The table is on disk; the node belongs to the cluster (unless later refused).
    Ready,
    /// The node must not serve.
    Refused(String),
}

/// The Bootstrap component of one node: requires the [`Network`] (receiving only
/// [`BOOTSTRAP_ROUTE`]), provides [`BootstrapPort`]. See the [module docs](self).
pub struct Bootstrap {
    port: ProvidedPort<BootstrapPort>,
    net: RequiredPort<Network>,
    config: BootstrapConfig,
    store: Box<dyn TableStore>,
    phase: Phase,
    /// The accepted table (kept after a refusal by the cluster, to answer announcements).
    table: Option<Arc<ClusterTable>>,
    /// Server, forming: the nodes heard from, itself included.
    heard: BTreeSet<NodeAddr>,
    /// Announcements answered, by node.
    answers: BTreeMap<NodeAddr, Answer>,
    timer: Option<TimerId>,
}

impl Bootstrap {
    /// The component for `config`, keeping its table in `store`. Connect its `Network` port
    /// with [`route_selector`]`(`[`BOOTSTRAP_ROUTE`]`)`, or use [`create`](Self::create).
    pub fn new(
        setup: &mut Setup<Self>,
        config: BootstrapConfig,
        store: Box<dyn TableStore>,
    ) -> Self {
        Bootstrap {
            port: setup.provided(),
            net: setup.required(),
            config,
            store,
            phase: Phase::Idle,
            table: None,
            heard: BTreeSet::new(),
            answers: BTreeMap::new(),
            timer: None,
        }
    }

    /// Creates the component in `system`, connected to the node's `network`; `store` makes its
    /// table store (again after a restart by a supervisor). It is passive: start it.
    pub fn create(
        system: &System,
        network: &ProvidedRef<Network>,
        config: BootstrapConfig,
        store: impl Fn() -> Box<dyn TableStore> + Send + Sync + 'static,
    ) -> Component<Bootstrap> {
        let boot = system.create(move |s| Bootstrap::new(s, config.clone(), store()));
        connect_with(network, &boot.required::<Network>(), route_selector(BOOTSTRAP_ROUTE));
        boot
    }

    /// The cluster's table, once accepted (it stays after a refusal by the cluster).
    pub fn table(&self) -> Option<&Arc<ClusterTable>> {
        self.table.as_ref()
    }

    /// Whether the node is ready: it has its table and has not been refused.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    /// Why the node was refused, if it was.
    pub fn refusal(&self) -> Option<&str> {
        match &self.phase {
            Phase::Refused(reason) => Some(reason),
            _ => None,
        }
    }

    /// The node's settings.
    pub fn config(&self) -> &BootstrapConfig {
        &self.config
    }

    fn me(&self) -> NodeAddr {
        self.config.me
    }

    fn send(&mut self, to: NodeAddr, wire: &Wire) {
        match NetMessage::encode(self.config.me, to, BOOTSTRAP_ROUTE, wire) {
            Ok(msg) => self.net.trigger(msg),
            Err(e) => log::error!("bootstrap {}: cannot encode a message: {e}", self.me()),
        }
    }

    fn cancel_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
    }

    fn refuse(&mut self, ctx: &mut Context<Self>, reason: String) {
        if matches!(self.phase, Phase::Refused(_)) {
            return;
        }
        log::error!("bootstrap {}: refused: {reason}", self.me());
        self.cancel_timer(ctx);
        self.phase = Phase::Refused(reason.clone());
        self.port.trigger(BootstrapEvent::Refused { reason });
    }

    /// Persists `table` (unless it came from the store), then becomes ready and announces.
    fn accept(&mut self, ctx: &mut Context<Self>, table: ClusterTable, persist: bool) -> bool {
        if persist {
            if let Err(e) = self.store.save(&table) {
                self.refuse(ctx, format!("cannot store the cluster table: {e}"));
                return false;
            }
        }
        log::info!("bootstrap {}: ready in {table}", self.me());
        let table = Arc::new(table);
        self.table = Some(table.clone());
        self.phase = Phase::Ready;
        self.cancel_timer(ctx);
        self.port.trigger(BootstrapEvent::Ready(table));
        self.announce(ctx);
        true
    }

    /// Where the component goes at start (or resumes after a stop).
    fn begin(&mut self, ctx: &mut Context<Self>) {
        if let Err(reason) = self.config.validate() {
            let reason = format!("node {}: invalid bootstrap configuration: {reason}", self.me());
            self.refuse(ctx, reason);
            return;
        }
        let location = self.store.location();
        match self.store.load() {
            Err(e) => self.refuse(ctx, format!("cannot load the cluster table: {e}")),
            Ok(Some(table)) => match self.config.check_table(&table, &location) {
                Some(reason) => self.refuse(ctx, reason),
                None => {
                    if let Some(n) = self.config.expected_size() {
                        if n != table.nodes().len() {
                            log::warn!(
                                "bootstrap {}: configured for {n} nodes, but the stored {table} \
                                 (the stored table wins)",
                                self.me()
                            );
                        }
                    }
                    self.accept(ctx, table, false);
                }
            },
            Ok(None) => {
                self.phase = Phase::Forming;
                match self.config.role {
                    BootstrapRole::Server { expected_nodes } => {
                        log::info!(
                            "bootstrap {}: bootstrap server of cluster {:?}, waiting for \
                             {expected_nodes} nodes",
                            self.me(),
                            self.config.cluster_name
                        );
                        self.heard.insert(self.me());
                        self.maybe_form(ctx);
                    }
                    BootstrapRole::Join { .. } => self.arm_timer(ctx),
                }
            }
        }
    }

    /// A joiner's hello loop, or a ready node's announcement loop; the first round now.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        self.cancel_timer(ctx);
        let interval = self.config.hello_interval;
        self.timer = Some(ctx.schedule_periodic(
            Duration::ZERO,
            interval,
            |b: &mut Bootstrap, ctx| b.tick(ctx),
        ));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        match (&self.phase, &self.config.role) {
            (Phase::Forming, BootstrapRole::Join { server }) => {
                let (server, hello) = (*server, Wire::Hello(self.config.hello()));
                self.send(server, &hello);
            }
            (Phase::Ready, _) => {
                let pending = self.unanswered();
                if pending.is_empty() {
                    self.cancel_timer(ctx);
                    return;
                }
                let table = self.table.clone().expect("a ready node has a table");
                let announce = Wire::Announce {
                    cluster_id: table.cluster_id,
                    cluster_name: table.cluster_name.clone(),
                };
                for node in pending {
                    self.send(node, &announce);
                }
            }
            _ => self.cancel_timer(ctx),
        }
    }

    /// The other nodes of the table that have not answered the announcement.
    fn unanswered(&self) -> Vec<NodeAddr> {
        let Some(table) = &self.table else { return Vec::new() };
        table
            .nodes()
            .into_iter()
            .filter(|n| *n != self.me() && !self.answers.contains_key(n))
            .collect()
    }

    fn announce(&mut self, ctx: &mut Context<Self>) {
        if !self.unanswered().is_empty() {
            self.arm_timer(ctx);
        }
    }

    /// Server, forming: builds, persists and sends the table once enough nodes said hello.
    fn maybe_form(&mut self, ctx: &mut Context<Self>) {
        let BootstrapRole::Server { expected_nodes } = self.config.role else { return };
        if self.heard.len() < expected_nodes {
            return;
        }
        let nodes: Vec<NodeAddr> = self.heard.iter().copied().collect();
        let table =
            match LookupTable::build(&nodes, self.config.partitions, self.config.replication) {
                Ok(table) => table,
                Err(e) => {
                    let reason = format!("cannot place the partitions on {}: {e}", list(&nodes));
                    self.refuse(ctx, reason);
                    return;
                }
            };
        let table = ClusterTable {
            cluster_id: ctx.rng().random(),
            cluster_name: self.config.cluster_name.clone(),
            table,
        };
        log::info!("bootstrap {}: formed {table} with {}", self.me(), list(&nodes));
        let wire = Wire::Table(table.clone());
        // Persisted first: no node hears of a table that is not on the server's disk.
        if self.accept(ctx, table, true) {
            let me = self.me();
            for node in nodes.into_iter().filter(|n| *n != me) {
                self.send(node, &wire);
            }
        }
    }

    /// Why a hello cannot be accepted by a server of `name`, `P`, `R`, `expected` nodes.
    fn hello_mismatch(
        &self,
        from: NodeAddr,
        hello: &Hello,
        name: &str,
        partitions: u32,
        replication: usize,
        expected: usize,
    ) -> Option<String> {
        let mut wrong = Vec::new();
        if hello.cluster_name != name {
            wrong.push(format!("cluster name {:?} there, {name:?} here", hello.cluster_name));
        }
        if hello.partitions != partitions {
            wrong.push(format!("P={} there, P={partitions} here", hello.partitions));
        }
        if hello.replication != replication {
            wrong.push(format!("R={} there, R={replication} here", hello.replication));
        }
        if let Some(n) = hello.expected_nodes {
            if n != expected {
                wrong.push(format!("{n} expected nodes there, {expected} here"));
            }
        }
        if wrong.is_empty() {
            return None;
        }
        Some(format!(
            "bootstrap server {} refuses {from}: its configuration does not match the \
             cluster's: {}. Start {from} with the cluster's configuration",
            self.me(),
            wrong.join("; ")
        ))
    }

    fn on_hello(&mut self, ctx: &mut Context<Self>, from: NodeAddr, hello: Hello) {
        match (&self.phase, &self.config.role) {
            (Phase::Forming, BootstrapRole::Server { expected_nodes }) => {
                let c = &self.config;
                let mismatch = self.hello_mismatch(
                    from,
                    &hello,
                    &c.cluster_name,
                    c.partitions,
                    c.replication,
                    *expected_nodes,
                );
                if let Some(reason) = mismatch {
                    log::warn!("bootstrap {}: {reason}", self.me());
                    self.send(from, &Wire::Refuse { reason });
                } else if self.heard.insert(from) {
                    log::info!(
                        "bootstrap {}: hello from {from} ({} of {expected_nodes})",
                        self.me(),
                        self.heard.len()
                    );
                    self.maybe_form(ctx);
                }
            }
            (Phase::Ready, _) => {
                let table = self.table.clone().expect("a ready node has a table");
                let (name, p, r) = (
                    table.cluster_name.as_str(),
                    table.table.partition_count(),
                    table.table.replication(),
                );
                let n = table.nodes().len();
                // A misconfigured node hears of its configuration first: it is the cause.
                let mismatch = self.hello_mismatch(from, &hello, name, p, r, n);
                let reason = if !table.contains(from) {
                    let late = format!(
                        "cluster {} ({:016x}) formed without {from}; expected {n} nodes",
                        table.cluster_name, table.cluster_id
                    );
                    Some(match mismatch {
                        Some(mismatch) => format!("{mismatch} (and {late})"),
                        None => late,
                    })
                } else {
                    mismatch
                };
                match reason {
                    Some(reason) => {
                        log::warn!("bootstrap {}: {reason}", self.me());
                        self.send(from, &Wire::Refuse { reason });
                    }
                    // A node of the table that lost it before persisting: the same table again.
                    None => self.send(from, &Wire::Table((*table).clone())),
                }
            }
            (Phase::Forming, BootstrapRole::Join { .. }) => log::warn!(
                "bootstrap {}: hello from {from}, but this node is not the bootstrap server \
                 (check {from}'s configuration)",
                self.me()
            ),
            (Phase::Idle | Phase::Refused(_), _) => {}
        }
    }

    fn is_my_server(&self, from: NodeAddr) -> bool {
        matches!(self.config.role, BootstrapRole::Join { server } if server == from)
    }

    fn on_table(&mut self, ctx: &mut Context<Self>, from: NodeAddr, table: ClusterTable) {
        if !matches!(self.phase, Phase::Forming) {
            if let Some(mine) = &self.table {
                if mine.cluster_id != table.cluster_id {
                    log::warn!(
                        "bootstrap {}: ignored {table} from {from}: this node is in {mine}",
                        self.me()
                    );
                }
            }
            return;
        }
        if !self.is_my_server(from) {
            log::warn!(
                "bootstrap {}: ignored a table from {from}, which is not this node's bootstrap \
                 server",
                self.me()
            );
            return;
        }
        let source = format!("the table sent by bootstrap server {from}");
        match self.config.check_table(&table, &source) {
            Some(reason) => self.refuse(ctx, reason),
            None => {
                self.accept(ctx, table, true);
            }
        }
    }

    fn on_announce(&mut self, from: NodeAddr, cluster_id: u64, cluster_name: String) {
        // Without a table of its own, a node cannot judge: the announcer asks again later.
        let Some(table) = self.table.clone() else { return };
        let answer = if table.cluster_id != cluster_id {
            Wire::Reject {
                reason: format!(
                    "node {} is in cluster {:?} ({:016x}), not in cluster {:?} ({cluster_id:016x})",
                    self.me(),
                    table.cluster_name,
                    table.cluster_id,
                    cluster_name
                ),
            }
        } else if !table.contains(from) {
            Wire::Reject {
                reason: format!(
                    "the table of cluster {:?} ({:016x}) at node {} does not contain {from}",
                    table.cluster_name,
                    table.cluster_id,
                    self.me()
                ),
            }
        } else {
            Wire::Welcome { cluster_id }
        };
        if let Wire::Reject { reason } = &answer {
            log::warn!("bootstrap {}: refusing the announcement of {from}: {reason}", self.me());
        }
        self.send(from, &answer);
    }

    fn on_answer(&mut self, ctx: &mut Context<Self>, from: NodeAddr, answer: Answer) {
        if !matches!(self.phase, Phase::Ready) {
            return;
        }
        let Some(table) = self.table.clone() else { return };
        if from == self.me() || !table.contains(from) || self.answers.contains_key(&from) {
            return;
        }
        if let Answer::Reject(reason) = &answer {
            log::warn!("bootstrap {}: {from} refuses this node: {reason}", self.me());
        }
        self.answers.insert(from, answer);
        let others = table.nodes().len() - 1;
        let rejections: Vec<String> = self
            .answers
            .iter()
            .filter_map(|(node, a)| match a {
                Answer::Reject(reason) => Some(format!("{node}: {reason}")),
                Answer::Welcome => None,
            })
            .collect();
        if 2 * rejections.len() > others {
            let reason = format!(
                "node {} holds the table of cluster {:?} ({:016x}) in {}, but {} of the {others} \
                 other nodes of that table refuse it ({}). This node's data belongs to another \
                 cluster: move {} away to join as a new node",
                self.me(),
                table.cluster_name,
                table.cluster_id,
                self.store.location(),
                rejections.len(),
                rejections.join("; "),
                self.store.location()
            );
            self.refuse(ctx, reason);
        } else if self.unanswered().is_empty() {
            self.cancel_timer(ctx);
        }
    }
}

impl ComponentDefinition for Bootstrap {
    fn on_start(&mut self, ctx: &mut Context<Self>) {
        match self.phase {
            Phase::Idle => self.begin(ctx),
            // Started again after a stop, which ended the timers.
            Phase::Forming if matches!(self.config.role, BootstrapRole::Join { .. }) => {
                self.arm_timer(ctx)
            }
            Phase::Ready => self.announce(ctx),
            Phase::Forming | Phase::Refused(_) => {}
        }
    }

    fn on_stop(&mut self, ctx: &mut Context<Self>) {
        self.cancel_timer(ctx);
    }
}

impl Provide<BootstrapPort> for Bootstrap {
    fn handle(&mut self, _ctx: &mut Context<Self>, request: BootstrapRequest) {
        let BootstrapRequest::Status = request;
        match &self.phase {
            Phase::Ready => {
                let table = self.table.clone().expect("a ready node has a table");
                self.port.trigger(BootstrapEvent::Ready(table));
            }
            Phase::Refused(reason) => {
                self.port.trigger(BootstrapEvent::Refused { reason: reason.clone() })
            }
            Phase::Idle | Phase::Forming => {}
        }
    }
}

impl Require<Network> for Bootstrap {
    fn handle(&mut self, ctx: &mut Context<Self>, event: NetEvent) {
        let msg = match event {
            NetEvent::Deliver(msg) => msg,
            // E.g. a lookup table too large for a frame: nothing retries it, so say so loudly.
            NetEvent::SendFailed { to, route, error } if route == BOOTSTRAP_ROUTE => {
                log::error!("bootstrap {}: message to {to} not sent: {error}", self.me());
                return;
            }
            _ => return,
        };
        if msg.route != BOOTSTRAP_ROUTE {
            return;
        }
        let wire = match msg.decode::<Wire>() {
            Ok(wire) => wire,
            Err(e) => {
                log::warn!("bootstrap {}: undecodable message from {}: {e}", self.me(), msg.src);
                return;
            }
        };
        let from = msg.src;
        match wire {
            Wire::Hello(hello) => self.on_hello(ctx, from, hello),
            Wire::Table(table) => self.on_table(ctx, from, table),
            Wire::Refuse { reason } => {
                if matches!(self.phase, Phase::Forming) && self.is_my_server(from) {
                    self.refuse(ctx, reason);
                }
            }
            Wire::Announce { cluster_id, cluster_name } => {
                self.on_announce(from, cluster_id, cluster_name)
            }
            Wire::Welcome { cluster_id } => {
                if self.table.as_ref().is_some_and(|t| t.cluster_id == cluster_id) {
                    self.on_answer(ctx, from, Answer::Welcome);
                }
            }
            Wire::Reject { reason } => self.on_answer(ctx, from, Answer::Reject(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("kvstore-bootstrap-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn addr(i: u8) -> NodeAddr {
        NodeAddr(([10, 0, 0, i], 7000).into())
    }

    fn sample(id: u64) -> ClusterTable {
        let nodes: Vec<NodeAddr> = (1..=5).map(addr).collect();
        ClusterTable {
            cluster_id: id,
            cluster_name: "kv".into(),
            table: LookupTable::build(&nodes, 6, 3).unwrap(),
        }
    }

    #[test]
    fn a_table_round_trips_through_the_file() {
        let dir = TempDir::new("roundtrip");
        let mut store = FileTableStore::new(dir.0.join("data"));
        assert_eq!(store.load(), Ok(None), "no directory, no table");
        store.save(&sample(7)).unwrap();
        assert_eq!(store.load(), Ok(Some(sample(7))));
        assert_eq!(FileTableStore::new(dir.0.join("data")).load(), Ok(Some(sample(7))));
        assert!(store.location().ends_with("cluster.table"));
    }

    #[test]
    fn a_save_replaces_the_table_atomically() {
        let dir = TempDir::new("atomic");
        let mut store = FileTableStore::new(&dir.0);
        store.save(&sample(1)).unwrap();
        store.save(&sample(2)).unwrap();
        assert_eq!(store.load(), Ok(Some(sample(2))));
        assert!(!store.tmp_path().exists(), "the temporary is renamed away");
        // A save interrupted before its rename leaves a temporary, which never counts...
        fs::write(store.tmp_path(), b"half a table").unwrap();
        assert_eq!(store.load(), Ok(Some(sample(2))));
        // ...and the next save goes through it.
        store.save(&sample(3)).unwrap();
        assert_eq!(store.load(), Ok(Some(sample(3))));
        let names: Vec<String> = fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["cluster.table"]);
    }

    fn load_error(dir: &TempDir, bytes: &[u8]) -> String {
        let mut store = FileTableStore::new(&dir.0);
        fs::write(store.path(), bytes).unwrap();
        let error = store.load().expect_err("a damaged file is an error").message;
        assert!(error.contains(&store.path().display().to_string()), "names the file: {error}");
        error
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_the_file() {
        let dir = TempDir::new("corrupt");
        let good = FileTableStore::encode(&sample(9)).unwrap();
        for cut in [0, 5, HEADER_LEN - 1, HEADER_LEN, good.len() - 1] {
            let error = load_error(&dir, &good[..cut]);
            assert!(error.contains("truncated"), "cut at {cut}: {error}");
        }
        for at in [HEADER_LEN + 3, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            let error = load_error(&dir, &bad);
            assert!(error.contains("checksum mismatch"), "flip at {at}: {error}");
        }
        let mut bad = good.clone();
        bad[12] ^= 1; // the length
        let error = load_error(&dir, &bad);
        assert!(error.contains("truncated") || error.contains("unexpected bytes"), "{error}");
        let mut longer = good.clone();
        longer.push(0);
        assert!(load_error(&dir, &longer).contains("unexpected bytes"));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(load_error(&dir, &bad).contains("bad magic"));
        assert!(load_error(&dir, b"hello").contains("bad magic"));
        let mut bad = good.clone();
        bad[8] = 2; // the version
        assert!(load_error(&dir, &bad).contains("version 2 is not supported"));
        // A checksummed payload that is not a valid table (here: a group with a node twice).
        let payload = rmp_serde::to_vec(&(1u64, "kv", (vec![vec![addr(1), addr(1)]],))).unwrap();
        let bytes = FileTableStore::frame(&payload);
        assert!(load_error(&dir, &bytes).contains("undecodable table"));
    }

    #[test]
    fn the_mem_store_is_shared_by_its_clones() {
        let store = MemTableStore::new();
        let mut clone = store.clone();
        assert_eq!(clone.load(), Ok(None));
        clone.save(&sample(4)).unwrap();
        assert_eq!(store.get(), Some(sample(4)));
        store.set(None);
        assert_eq!(clone.load(), Ok(None));
    }

    #[test]
    fn a_stored_table_is_checked_against_the_configuration() {
        let me = addr(1);
        let config =
            BootstrapConfig::new(me, BootstrapRole::Server { expected_nodes: 5 }, 6, 3, "kv");
        assert_eq!(config.check_table(&sample(1), "/d/cluster.table"), None);
        let mut other = config.clone();
        other.partitions = 8;
        other.cluster_name = "other".into();
        let reason = other.check_table(&sample(1), "/d/cluster.table").unwrap();
        assert!(reason.contains("P=6 there, P=8 here"), "{reason}");
        assert!(reason.contains("\"kv\" there, \"other\" here"), "{reason}");
        assert!(reason.contains("/d/cluster.table"), "{reason}");
        let stranger =
            BootstrapConfig::new(addr(9), BootstrapRole::Join { server: me }, 6, 3, "kv");
        let reason = stranger.check_table(&sample(1), "/d/cluster.table").unwrap();
        assert!(reason.contains("does not contain this node"), "{reason}");
    }

    #[test]
    fn impossible_configurations_are_named() {
        let me = addr(1);
        let server =
            |n| BootstrapConfig::new(me, BootstrapRole::Server { expected_nodes: n }, 6, 3, "kv");
        assert_eq!(server(3).validate(), Ok(()));
        assert!(server(2).validate().unwrap_err().contains("R=3"));
        let mut zero = server(3);
        zero.partitions = 0;
        assert!(zero.validate().unwrap_err().contains("partition count"));
        let selfish = BootstrapConfig::new(me, BootstrapRole::Join { server: me }, 6, 3, "kv");
        assert!(selfish.validate().unwrap_err().contains("join itself"));
    }
}
