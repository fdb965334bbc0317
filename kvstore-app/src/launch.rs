//! Starting a real node: TCP peer network, file storage, and the RESP client port.
//!
//! [`start_node`] builds, in a running [`System`], everything one process of a cluster runs:
//! the [`TcpNetwork`] on the peer address, a [`KvNode`] whose partitions keep their logs and
//! snapshots under the data directory, and a [`RespFrontend`] behind a [`StreamServer`] on the
//! client address. `kvstore node` runs one; `kvstore demo` runs several in one process.
//!
//! The data directory holds `cluster.table` (the cluster's table, see
//! [`crate::bootstrap::FileTableStore`]), `incarnation` (the number of the last process start,
//! see [`crate::incarnation`]) and one directory per partition replicated here, `p<N>/`, with
//! that partition's Zab log and snapshots, stamped with the cluster's id (see
//! [`crate::data_dir`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kompics_core::{connect, Component, System};
use kompics_net::stream::{ByteStream, StreamConfig, StreamServer};
use kompics_net::tls::ServerTls;
use kompics_net::{Network, NodeAddr, TcpConfig, TcpNetwork};
use zab_components::storage::{StorageError, ZabStorage};
use zab_components::wal::{FileStorage, WalOptions};

use crate::auth::ClientAuth;
use crate::bootstrap::{BootstrapConfig, BootstrapRole, FileTableStore, TableStore};
use crate::frontend::{AppendFsync, FrontendConfig, RespFrontend};
use crate::incarnation::IncarnationError;
use crate::node::{KvNode, NodeConfig};
use crate::overlay::OverlayControl;
use crate::peer_auth::PeerAuth;
use crate::ports::KvPort;
use crate::replica::{MemoryLimit, SnapshotWriter};

/// What one node process needs to know.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The address other nodes reach this one at; also its id in the cluster.
    pub peer: SocketAddr,
    /// The address RESP clients connect to.
    pub client: SocketAddr,
    /// Where the table and the partitions' logs are kept.
    pub data_dir: PathBuf,
    /// Form the cluster (expecting this many nodes), or join the node at this address.
    pub role: BootstrapRole,
    /// The number of partitions.
    pub partitions: u32,
    /// The number of replicas of each partition.
    pub replication: usize,
    /// The cluster's name; nodes of differently named clusters refuse each other. It is also
    /// the cluster identity of every peer handshake (see [`crate::peer_auth`]).
    pub cluster_name: String,
    /// How the peer port authenticates other nodes.
    pub peer_auth: PeerAuth,
    /// TLS on the RESP client port (`--tls-cert-file` …); `None`, the default, is plaintext.
    pub client_tls: Option<ServerTls>,
    /// Whether the logs fsync (the default; turning it off loses acknowledged writes on a
    /// machine crash).
    pub fsync: bool,
    /// The size of a log segment file.
    pub segment_bytes: u64,
    /// The limit on the bytes of keys and values this node holds (`--maxmemory`); 0, the
    /// default, is no limit, as in Redis.
    pub maxmemory: u64,
    /// A partition's replica snapshots its store after about this many writes since its last
    /// snapshot (ZooKeeper's `snapCount`; each replica picks between half and all of it, so
    /// that replicas do not snapshot together). 0 never snapshots by count.
    pub snapshot_entries: u64,
    /// ... or after about this many bytes of written values since its last snapshot (the
    /// log's size on disk; ZooKeeper's `snapSizeLimitInKb`). 0 never snapshots by size.
    pub snapshot_bytes: u64,
    /// Bytes of delivered payloads each partition's log keeps in memory for followers that
    /// fall a little behind (older ones are read back from the log files).
    pub log_cache_bytes: u64,
    /// The password RESP clients must give (`AUTH`) before anything else; none by default.
    pub client_auth: ClientAuth,
}

impl NodeOptions {
    /// Options with the defaults: fsync on, 64 MiB segments, cluster `kvstore`, 3 partitions
    /// of 3 replicas; peers authenticated as `peer_auth` says (no default: see
    /// [`crate::peer_auth`]).
    pub fn new(
        peer: SocketAddr,
        client: SocketAddr,
        data_dir: PathBuf,
        role: BootstrapRole,
        peer_auth: PeerAuth,
    ) -> Self {
        NodeOptions {
            peer_auth,
            client_tls: None,
            peer,
            client,
            data_dir,
            role,
            partitions: 3,
            replication: 3,
            cluster_name: "kvstore".into(),
            fsync: true,
            segment_bytes: WalOptions::default().segment_bytes,
            maxmemory: 0,
            snapshot_entries: zab_components::protocol::Config::SNAPSHOT_ENTRIES_DEFAULT,
            snapshot_bytes: zab_components::protocol::Config::SNAPSHOT_BYTES_DEFAULT,
            log_cache_bytes: zab_components::protocol::Config::LOG_CACHE_BYTES_DEFAULT as u64,
            client_auth: ClientAuth::none(),
        }
    }
}

/// Why a node could not start.
#[derive(Debug)]
pub enum LaunchError {
    /// The data directory cannot be created.
    DataDir(PathBuf, io::Error),
    /// The peer address cannot be bound, or its authentication cannot be set up.
    PeerPort(SocketAddr, io::Error),
    /// The peer credentials are unusable (says why).
    PeerAuth(String),
    /// The client address cannot be bound.
    ClientPort(SocketAddr, io::Error),
    /// The data directory's incarnation number cannot be advanced (see
    /// [`crate::incarnation`]).
    Incarnation(IncarnationError),
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::DataDir(p, e) => write!(f, "data directory {}: {e}", p.display()),
            LaunchError::PeerPort(a, e) => write!(f, "peer address {a}: {e}"),
            LaunchError::PeerAuth(why) => f.write_str(why),
            LaunchError::ClientPort(a, e) => write!(f, "client address {a}: {e}"),
            LaunchError::Incarnation(e) => write!(f, "incarnation: {e}"),
        }
    }
}

impl std::error::Error for LaunchError {}

/// Why [`RunningNode::wait_ready`] returned without a ready node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// The node stopped serving ([`KvNode::fatal`]): refused by its cluster, or its data
    /// cannot be trusted. The reason says what to do; waiting longer does not help.
    Failed(String),
    /// The node is still forming its cluster (waiting for the other nodes, or for its
    /// bootstrap server): start them, or wait longer.
    Timeout {
        /// The node.
        peer: NodeAddr,
        /// How long it was given.
        timeout: Duration,
    },
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::Failed(reason) => f.write_str(reason),
            NotReady::Timeout { peer, timeout } => {
                write!(f, "node {peer} not ready after {timeout:?}")
            }
        }
    }
}

impl std::error::Error for NotReady {}

/// A node running in this process.
pub struct RunningNode {
    /// Its peer network.
    pub network: Component<TcpNetwork>,
    /// The node's component tree.
    pub node: Component<KvNode>,
    /// The client port's server.
    pub server: Component<StreamServer>,
    /// The RESP front end.
    pub frontend: Component<RespFrontend>,
    /// The peer address (bound).
    pub peer: NodeAddr,
    /// The client address (bound).
    pub client: SocketAddr,
}

impl RunningNode {
    /// Whether the node has its table and serves (or is ready to, once groups elect leaders).
    pub fn is_ready(&self) -> bool {
        self.node.on_definition(|n| n.table().is_some()).unwrap_or(false)
    }

    /// Why the node stopped serving, if it did.
    pub fn fatal(&self) -> Option<String> {
        self.node.on_definition(|n| n.fatal().map(str::to_owned)).flatten()
    }

    /// Waits until the node is ready, has failed, or `timeout` passed.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), NotReady> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(reason) = self.fatal() {
                return Err(NotReady::Failed(reason));
            }
            if self.is_ready() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(NotReady::Timeout { peer: self.peer, timeout });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the components, the network first and the client port last, so that no client
    /// is accepted before the node can serve it.
    fn start(&self) {
        self.network.start();
        self.node.start();
        self.frontend.start();
        self.server.start();
    }

    /// Stops everything of this node (its ports close).
    pub fn kill(&self) {
        self.server.kill();
        self.frontend.kill();
        self.node.kill();
        self.network.kill();
    }
}

pub use crate::data_dir::partition_dir;

/// Starts a node in `system`.
pub fn start_node(system: &System, options: &NodeOptions) -> Result<RunningNode, LaunchError> {
    let data_dir = options.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|e| LaunchError::DataDir(data_dir.clone(), e))?;
    let security =
        options.peer_auth.security(&options.cluster_name).map_err(LaunchError::PeerAuth)?;
    let network = TcpNetwork::create(system, TcpConfig::new(options.peer, security))
        .map_err(|e| LaunchError::PeerPort(options.peer, e))?;
    let peer = network.on_definition(|n| n.addr()).expect("the network exists");
    let mut stream_config = StreamConfig::new(options.client);
    stream_config.tls = options.client_tls.clone();
    let server = match StreamServer::create(system, stream_config) {
        Ok(s) => s,
        Err(e) => {
            network.kill();
            return Err(LaunchError::ClientPort(options.client, e));
        }
    };
    let client = server.on_definition(|s| s.local_addr()).expect("the server exists");
    // Before anything is sent: replies to an earlier process must not match this one's ids.
    let incarnation = match crate::incarnation::advance(&data_dir) {
        Ok(incarnation) => incarnation,
        Err(e) => {
            server.kill();
            network.kill();
            return Err(LaunchError::Incarnation(e));
        }
    };

    let bootstrap = BootstrapConfig::new(
        peer,
        options.role.clone(),
        options.partitions,
        options.replication,
        options.cluster_name.clone(),
    );
    let wal = WalOptions {
        fsync: options.fsync,
        segment_bytes: options.segment_bytes,
        ..WalOptions::default()
    };
    let logs = data_dir.clone();
    let storage = Arc::new(move |p: crate::partition::PartitionId| {
        let dir = partition_dir(&logs, p.0);
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::io(&dir, "create the partition directory", &e))?;
        FileStorage::open(&dir, wal.clone()).map(|s| Box::new(s) as Box<dyn ZabStorage>)
    });
    let stamps = data_dir.clone();
    let tables = data_dir.clone();
    let table_store =
        Arc::new(move || Box::new(FileTableStore::new(&tables)) as Box<dyn TableStore>);
    let mut config =
        NodeConfig::new(bootstrap, network.provided::<Network>(), storage, table_store);
    config.overlay.incarnation = incarnation;
    // Before any group opens its log: no partition directory of another cluster is used.
    config.data_check =
        Arc::new(move |cluster, mine| crate::data_dir::check_and_stamp(&stamps, cluster, mine));
    log::info!("node {peer}: {incarnation}");
    // Real threads here: serialize snapshots on one, off the replicas' hot path.
    config.replica.snapshots = SnapshotWriter::Thread;
    let (entries, bytes) = (options.snapshot_entries, options.snapshot_bytes);
    let cache = usize::try_from(options.log_cache_bytes).unwrap_or(usize::MAX);
    config.zab_tuning = Arc::new(move |zab| {
        zab.protocol.snapshot_entries_trigger = entries;
        zab.protocol.snapshot_bytes_trigger = bytes;
        zab.protocol.log_cache_bytes = cache;
    });
    let memory = MemoryLimit::new(options.maxmemory);
    config.replica.memory = memory.clone();
    // The node is one composite component: its overlay exists when `create` returns, and its
    // ports are the node's, so the front end is wired before anything starts.
    let node = system.create(move |s| KvNode::new(s, config.clone()));
    let mut frontend_config = FrontendConfig::new(client);
    frontend_config.memory = memory;
    frontend_config.auth = options.client_auth.clone();
    frontend_config.appendfsync = AppendFsync::from_fsync(options.fsync);
    let frontend = system.create(move |s| RespFrontend::new(s, frontend_config.clone()));
    connect(&server.provided::<ByteStream>(), &frontend.required::<ByteStream>());
    connect(&node.exported_provided::<KvPort>(), &frontend.required::<KvPort>());
    connect(&node.exported_provided::<OverlayControl>(), &frontend.required::<OverlayControl>());
    let running = RunningNode { network, node, server, frontend, peer, client };
    running.start();
    Ok(running)
}

/// Parses a memory size as Redis' configuration does: a number of bytes, optionally followed
/// (case-insensitively) by `k`, `m` or `g` (powers of 1000) or `kb`, `mb`, `gb` (powers of
/// 1024): `100mb` is 104857600.
pub fn parse_memory_size(text: &str) -> Result<u64, MemorySizeError> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let error = |kind| MemorySizeError { text: text.to_owned(), kind };
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        _ => return Err(error(MemorySizeErrorKind::UnknownUnit)),
    };
    let number: u64 = digits.parse().map_err(|_| error(MemorySizeErrorKind::NotANumber))?;
    number.checked_mul(multiplier).ok_or_else(|| error(MemorySizeErrorKind::TooLarge))
}

/// A memory size [`parse_memory_size`] cannot read: the text and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemorySizeError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub kind: MemorySizeErrorKind,
}

/// What is wrong with a memory size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemorySizeErrorKind {
    /// The unit is not one of `k`, `kb`, `m`, `mb`, `g`, `gb` (or none, or `b`).
    UnknownUnit,
    /// There is no number of bytes before the unit.
    NotANumber,
    /// The size does not fit 64 bits.
    TooLarge,
}

impl fmt::Display for MemorySizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            MemorySizeErrorKind::UnknownUnit => "unknown unit (use k, kb, m, mb, g or gb)",
            MemorySizeErrorKind::NotANumber => "not a size in bytes",
            MemorySizeErrorKind::TooLarge => "too large",
        };
        write!(f, "{:?}: {what}", self.text)
    }
}

impl std::error::Error for MemorySizeError {}

#[cfg(test)]
mod tests {
    use super::{parse_memory_size, MemorySizeErrorKind};

    #[test]
    fn memory_sizes_parse_as_in_redis() {
        assert_eq!(parse_memory_size("0"), Ok(0));
        assert_eq!(parse_memory_size("12345"), Ok(12345));
        assert_eq!(parse_memory_size("1k"), Ok(1000));
        assert_eq!(parse_memory_size("1KB"), Ok(1024));
        assert_eq!(parse_memory_size("100mb"), Ok(100 << 20));
        assert_eq!(parse_memory_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_memory_size("3m"), Ok(3_000_000));
        let kind = |text| parse_memory_size(text).unwrap_err().kind;
        assert_eq!(kind(""), MemorySizeErrorKind::NotANumber);
        assert_eq!(kind("mb"), MemorySizeErrorKind::NotANumber);
        assert_eq!(kind("10tb"), MemorySizeErrorKind::UnknownUnit);
        assert_eq!(kind("-1"), MemorySizeErrorKind::UnknownUnit);
        assert_eq!(kind("99999999999999gb"), MemorySizeErrorKind::TooLarge);
        assert_eq!(
            parse_memory_size("10tb").unwrap_err().to_string(),
            "\"10tb\": unknown unit (use k, kb, m, mb, g or gb)"
        );
    }
}
