//! `kvstore`: run a node, a demo cluster, a benchmark or a status check.
//!
//! ```text
//! kvstore demo                       a 3-node cluster in this process, RESP on 127.0.0.1:6379..
//! kvstore node --peer A --client B --data-dir D (--expect N | --join S)
//! kvstore bench --endpoints 127.0.0.1:6379,127.0.0.1:6380 --clients 64 --duration 10
//! kvstore status --endpoints 127.0.0.1:6379,127.0.0.1:6380
//! ```

/// mimalloc rather than the system allocator: every request allocates a few small buffers on
/// one thread and frees them on another, where glibc's malloc spends a lot of time (about a
/// sixth of the nodes' user time in a SET benchmark, and 10-15% less CPU per operation with
/// mimalloc, measured with scripts/kv-bench.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use kompics_core::{Runtime, RuntimeConfig};
use kompics_net::tls::{ClientAuth as TlsClientAuth, ServerTls};
use kompics_net::NodeAddr;
use kvstore_app::auth::{self, ClientAuth, Password};
use kvstore_app::bootstrap::BootstrapRole;
use kvstore_app::launch::{parse_memory_size, start_node, NodeOptions, RunningNode};
use kvstore_app::peer_auth::{self, PeerAuth};
use kvstore_app::tools::bench::{self, BenchConfig};
use kvstore_app::tools::status;

#[derive(Parser)]
#[command(
    name = "kvstore",
    version,
    about = "A partitioned, replicated, linearizable key-value store on Zab, speaking the Redis protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node of a cluster of processes.
    Node(Box<NodeArgs>),
    /// Run a whole cluster in this process, on loopback.
    Demo(DemoArgs),
    /// Closed-loop load over RESP; prints throughput and latency percentiles.
    Bench(BenchArgs),
    /// The cluster at a glance: groups, leaders, zxids, nodes down.
    Status(StatusArgs),
}

#[derive(Args, Clone)]
struct ClusterArgs {
    #[command(flatten)]
    client_auth: ClientAuthArgs,
    /// Number of partitions (every node of a cluster must agree).
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Replicas per partition (every node of a cluster must agree).
    #[arg(long, default_value_t = 3)]
    replication: usize,
    /// The cluster's name (nodes of other clusters are refused).
    #[arg(long, default_value = "kvstore")]
    cluster_name: String,
    /// Do not fsync the logs: faster, but a machine crash can lose the last acknowledged
    /// writes. The epoch files are fsynced still; INFO and CONFIG GET show `appendfsync:no`.
    #[arg(long)]
    no_fsync: bool,
    /// Worker threads of the component runtime (default: one per core). Fewer when several
    /// nodes share a machine's cores.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    /// The most bytes of keys and values a node holds, as Redis' `maxmemory`: a number of
    /// bytes or with a unit (`100mb`, `2gb`; `k`/`m`/`g` are powers of 1000). Writes that would
    /// go beyond it get `-OOM`; `DEL` always works. 0 (the default) is no limit.
    #[arg(long, default_value = "0", value_parser = parse_memory_size)]
    maxmemory: u64,
    /// A replica snapshots its partition after about this many writes since its last
    /// snapshot (between half and all of it, chosen per replica); 0: never by count.
    #[arg(long, default_value_t = zab_components::protocol::Config::SNAPSHOT_ENTRIES_DEFAULT)]
    snapshot_entries: u64,
    /// ... or after about this many bytes of written values (a size with a unit, as
    /// `--maxmemory`); 0: never by size.
    #[arg(long, default_value = "256mb", value_parser = parse_memory_size)]
    snapshot_bytes: u64,
    /// Bytes of recent writes each partition's log keeps in memory (a size with a unit), for
    /// followers a little behind; older ones are read back from the log files.
    #[arg(long, default_value = "8mb", value_parser = parse_memory_size)]
    log_cache: u64,
}

/// Client authentication (Redis' `requirepass`): the password comes from the flag, the file,
/// or `KVSTORE_REQUIREPASS`, in that order. It is never printed.
#[derive(Args, Clone)]
struct ClientAuthArgs {
    /// RESP clients must send `AUTH <password>` (or `HELLO 3 AUTH default <password>`) first.
    /// Visible to other local users in the process list: prefer the file or the environment.
    #[arg(long, value_name = "PASSWORD", conflicts_with = "requirepass_file")]
    requirepass: Option<String>,
    /// Read the client password from the first line of this file (keep it mode 600).
    #[arg(long, value_name = "FILE")]
    requirepass_file: Option<PathBuf>,
}

impl ClientAuthArgs {
    fn load(&self) -> Result<ClientAuth, String> {
        let env = std::env::var(auth::REQUIREPASS_ENV).ok();
        auth::load_requirepass(self.requirepass.clone(), self.requirepass_file.as_deref(), env)
    }
}

/// The password of `kvstore bench` and `kvstore status`, for nodes with `--requirepass`.
#[derive(Args)]
struct ClientPasswordArgs {
    /// Send `AUTH <password>` on every connection (default: `REDISCLI_AUTH`, as redis-cli).
    #[arg(short = 'a', long = "password", value_name = "PASSWORD")]
    password: Option<String>,
}

impl ClientPasswordArgs {
    fn get(&self) -> Option<Password> {
        let password = self.password.clone().or_else(|| std::env::var("REDISCLI_AUTH").ok())?;
        Some(Password::new(password.into_bytes()))
    }
}

#[derive(Args)]
struct NodeArgs {
    /// This node's peer address (its id in the cluster).
    #[arg(long)]
    peer: SocketAddr,
    /// The RESP client address.
    #[arg(long)]
    client: SocketAddr,
    /// Where this node keeps its table and logs.
    #[arg(long)]
    data_dir: PathBuf,
    /// Form a new cluster of this many nodes, this one included (the bootstrap node).
    #[arg(long, conflicts_with = "join", required_unless_present = "join")]
    expect: Option<usize>,
    /// Join the cluster formed by the bootstrap node at this peer address.
    #[arg(long)]
    join: Option<SocketAddr>,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    peer_auth: PeerAuthArgs,
    #[command(flatten)]
    client_tls: ClientTlsArgs,
}

/// TLS on the RESP client port, with Redis' option names. Without `--tls-cert-file` the
/// port is plaintext; with it, TLS only (1.3), and clients must speak TLS (`redis-cli --tls`).
#[derive(Args)]
struct ClientTlsArgs {
    /// The client port's certificate chain (PEM, leaf first); turns TLS on.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The client port's private key (PEM; keep it mode 600).
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// The CA that client certificates must chain to (needed unless --tls-auth-clients no).
    #[arg(long, requires = "tls_cert_file")]
    tls_ca_cert_file: Option<PathBuf>,
    /// Ask clients for a certificate: no, optional (the default here, unlike Redis) or yes.
    #[arg(long, default_value = "optional", requires = "tls_cert_file")]
    tls_auth_clients: TlsClientAuth,
}

impl ClientTlsArgs {
    fn resolve(&self) -> Result<Option<ServerTls>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Ok(None);
        };
        // Without a CA there is nothing to check a client certificate against: "optional"
        // then means "not asked for"; "yes" is an error.
        let auth = match (self.tls_auth_clients, &self.tls_ca_cert_file) {
            (TlsClientAuth::Optional, None) => TlsClientAuth::No,
            (auth, _) => auth,
        };
        ServerTls::from_pem_files(cert, key, self.tls_ca_cert_file.as_deref(), auth)
            .map(Some)
            .map_err(|e| format!("client port TLS: {e}"))
    }
}

/// How the peer port authenticates other nodes: exactly one of the three is required.
#[derive(Args)]
struct PeerAuthArgs {
    /// Mutual TLS: this node's certificate chain (PEM, leaf first). Its URI subject
    /// alternative name must be kompics-net://CLUSTER-NAME/PEER-ADDRESS.
    #[arg(long)]
    peer_tls_cert: Option<PathBuf>,
    /// Mutual TLS: this node's private key (PEM; keep it mode 600).
    #[arg(long)]
    peer_tls_key: Option<PathBuf>,
    /// Mutual TLS: the CA certificate every member's certificate chains to (PEM).
    #[arg(long)]
    peer_tls_ca: Option<PathBuf>,
    /// Shared secret: a file holding it (32 random bytes or more, e.g. `openssl rand -hex 32`;
    /// keep it mode 600). Or set KVSTORE_CLUSTER_SECRET.
    #[arg(long)]
    cluster_secret_file: Option<PathBuf>,
    /// Run the peer port without authentication or encryption: any host that reaches it can
    /// act as a member. Only for trusted networks and tests.
    #[arg(long)]
    insecure: bool,
}

impl PeerAuthArgs {
    fn resolve(&self) -> Result<PeerAuth, String> {
        PeerAuth::from_sources(
            (self.peer_tls_cert.clone(), self.peer_tls_key.clone(), self.peer_tls_ca.clone()),
            self.cluster_secret_file.as_deref(),
            std::env::var(peer_auth::SECRET_ENV).ok(),
            self.insecure,
        )
    }
}

#[derive(Args)]
struct DemoArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// First RESP port (node i listens on port + i); 0 picks free ports.
    #[arg(long, default_value_t = 6379)]
    client_port: u16,
    /// First peer port (node i listens on port + i); 0 picks free ports.
    #[arg(long, default_value_t = 7379)]
    peer_port: u16,
    /// Data directory (default: a new directory under the system's temp dir, removed at exit).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run this many seconds of load (16 clients, 50% reads) once the cluster is up.
    #[arg(long)]
    workload: Option<u64>,
    /// Exit after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// RESP endpoints, comma-separated; clients are spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<SocketAddr>,
    /// Concurrent clients (each one request at a time).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Threads driving the clients (each drives its share with non-blocking sockets).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Fraction of GETs (0 = all SET, 1 = all GET).
    #[arg(long, default_value_t = 0.5)]
    read_ratio: f64,
    /// SET every key once before measuring (so GETs find values).
    #[arg(long)]
    populate: bool,
    #[command(flatten)]
    auth: ClientPasswordArgs,
}

#[derive(Args)]
struct StatusArgs {
    /// RESP endpoints of the nodes, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<SocketAddr>,
    #[command(flatten)]
    auth: ClientPasswordArgs,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node(args) => run_node(*args),
        Command::Demo(args) => run_demo(args),
        Command::Bench(args) => run_bench(args),
        Command::Status(args) => run_status(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kvstore: {message}");
            ExitCode::from(2)
        }
    }
}

/// Set by Ctrl-C or SIGTERM.
fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    if let Err(e) = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst)) {
        log::warn!("cannot install the Ctrl-C handler: {e}");
    }
    flag
}

fn runtime(cluster: &ClusterArgs) -> Runtime {
    let mut config = RuntimeConfig::default();
    if let Some(workers) = cluster.workers {
        config = config.workers(usize::from(workers));
    }
    Runtime::new(config)
}

fn run_node(args: NodeArgs) -> Result<(), String> {
    let role = match (args.expect, args.join) {
        (Some(n), None) => BootstrapRole::Server { expected_nodes: n },
        (None, Some(server)) => BootstrapRole::Join { server: NodeAddr(server) },
        _ => return Err("give exactly one of --expect N and --join ADDR".into()),
    };
    let peer_auth = args.peer_auth.resolve()?;
    let mut options = NodeOptions::new(args.peer, args.client, args.data_dir, role, peer_auth);
    options.client_tls = args.client_tls.resolve()?;
    apply_cluster_args(&mut options, &args.cluster);
    options.client_auth = args.cluster.client_auth.load()?;
    let stop = stop_flag();
    let rt = runtime(&args.cluster);
    let node = start_node(&rt.system(), &options).map_err(|e| e.to_string())?;
    println!(
        "kvstore node {}: RESP on {} ({}); peers: {}; waiting for the cluster",
        node.peer,
        node.client,
        if options.client_tls.is_some() { "TLS" } else { "plaintext" },
        options.peer_auth.describe()
    );
    let mut announced = false;
    while !stop.load(Ordering::SeqCst) {
        if let Some(reason) = node.fatal() {
            return Err(format!("node {}: {reason}", node.peer));
        }
        if !announced && node.is_ready() {
            println!("kvstore node {}: cluster ready", node.peer);
            announced = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    node.kill();
    Ok(())
}

fn apply_cluster_args(options: &mut NodeOptions, cluster: &ClusterArgs) {
    options.partitions = cluster.partitions;
    options.replication = cluster.replication;
    options.cluster_name = cluster.cluster_name.clone();
    options.fsync = !cluster.no_fsync;
    options.maxmemory = cluster.maxmemory;
    options.snapshot_entries = cluster.snapshot_entries;
    options.snapshot_bytes = cluster.snapshot_bytes;
    options.log_cache_bytes = cluster.log_cache;
}

fn run_demo(args: DemoArgs) -> Result<(), String> {
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let stop = stop_flag();
    let (data_dir, temporary) = match args.data_dir.clone() {
        Some(d) => (d, false),
        None => {
            let d = std::env::temp_dir().join(format!("kvstore-demo-{}", std::process::id()));
            (d, true)
        }
    };
    let result = demo(&args, &data_dir, &stop);
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

fn port(base: u16, i: usize) -> u16 {
    if base == 0 {
        0
    } else {
        base + i as u16
    }
}

fn demo(args: &DemoArgs, data_dir: &std::path::Path, stop: &AtomicBool) -> Result<(), String> {
    let client_auth = args.cluster.client_auth.load()?;
    // The demo's own clients (status, workload) use the password it serves with.
    let password = client_auth.password().cloned();
    let rt = runtime(&args.cluster);
    let system = rt.system();
    let mut nodes: Vec<RunningNode> = Vec::new();
    let started = Instant::now();
    // The demo's nodes all live here: a fresh random secret authenticates them to each other
    // with no set-up, and nothing outside this process can join.
    let peer_auth = PeerAuth::random_secret();
    for i in 0..args.nodes {
        let peer: SocketAddr = ([127, 0, 0, 1], port(args.peer_port, i)).into();
        let client: SocketAddr = ([127, 0, 0, 1], port(args.client_port, i)).into();
        let role = match nodes.first() {
            None => BootstrapRole::Server { expected_nodes: args.nodes },
            Some(first) => BootstrapRole::Join { server: first.peer },
        };
        let dir = data_dir.join(format!("node{i}"));
        let mut options = NodeOptions::new(peer, client, dir, role, peer_auth.clone());
        apply_cluster_args(&mut options, &args.cluster);
        options.client_auth = client_auth.clone();
        // Small segments: a demo needs no 64 MiB preallocation per partition.
        options.segment_bytes = 4 * 1024 * 1024;
        let node = start_node(&system, &options).map_err(|e| e.to_string())?;
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_ready(Duration::from_secs(30)).map_err(|e| e.to_string())?;
    }
    let endpoints: Vec<SocketAddr> = nodes.iter().map(|n| n.client).collect();
    wait_for_leaders(&endpoints, password.as_ref(), Duration::from_secs(30))?;
    println!(
        "kvstore demo: {} nodes, {} partitions × {} replicas, ready in {:.1} s (data in {})",
        args.nodes,
        args.cluster.partitions,
        args.cluster.replication,
        started.elapsed().as_secs_f64(),
        data_dir.display()
    );
    for n in &nodes {
        println!("  node {}  RESP {}", n.peer, n.client);
    }
    let first = endpoints[0];
    let last = endpoints[endpoints.len() - 1];
    // The password is never printed: redis-cli prompts for it.
    let ask = if password.is_some() { " --askpass" } else { "" };
    println!("try:  redis-cli -h {} -p {}{ask} SET greeting hello", first.ip(), first.port());
    println!("      redis-cli -h {} -p {}{ask} GET greeting", last.ip(), last.port());
    println!("{}", status::collect_auth(&endpoints, Duration::from_secs(2), password.as_ref()));
    if let Some(seconds) = args.workload {
        let config = BenchConfig {
            endpoints: endpoints.clone(),
            clients: 16,
            duration: Duration::from_secs(seconds),
            warmup: Duration::from_millis(500),
            read_ratio: 0.5,
            password: password.clone(),
            ..BenchConfig::default()
        };
        println!("workload: {} clients, 50% GET / 50% SET, {seconds} s", config.clients);
        let report = bench::run(&config, |p| {
            if !stop.load(Ordering::SeqCst) {
                eprintln!("  {p}");
            }
        })
        .map_err(|e| format!("workload: {e}"))?;
        println!("{report}");
    }
    let deadline = args.duration.map(|s| started + Duration::from_secs(s));
    if deadline.is_none() {
        println!("serving until Ctrl-C");
    }
    while !stop.load(Ordering::SeqCst) && deadline.is_none_or(|d| Instant::now() < d) {
        for n in &nodes {
            if let Some(reason) = n.fatal() {
                return Err(format!("node {}: {reason}", n.peer));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in &nodes {
        n.kill();
    }
    Ok(())
}

/// Waits until every partition has a leader, as the nodes report it.
fn wait_for_leaders(
    endpoints: &[SocketAddr],
    password: Option<&Password>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = status::collect_auth(endpoints, Duration::from_secs(1), password);
        let partitions = s.reachable().next().map_or(0, |n| n.partitions as usize);
        let groups = s.groups();
        if partitions > 0 && groups.len() == partitions && groups.iter().all(|g| g.leader.is_some())
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("no leader in every partition after {timeout:?}:\n{s}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_bench(args: BenchArgs) -> Result<(), String> {
    let config = BenchConfig {
        endpoints: args.endpoints,
        clients: args.clients,
        threads: args.threads,
        duration: Duration::from_secs(args.duration),
        warmup: Duration::from_secs(args.warmup),
        value_size: args.value_size,
        keys: args.keys,
        read_ratio: args.read_ratio,
        password: args.auth.get(),
        ..BenchConfig::default()
    };
    if args.populate {
        bench::populate(&config).map_err(|e| format!("populate: {e}"))?;
    }
    println!(
        "bench: {} clients over {} endpoints, {}% GET, {} B values, {} keys, {} s",
        config.clients,
        config.endpoints.len(),
        (config.read_ratio * 100.0).round(),
        config.value_size,
        config.keys,
        args.duration
    );
    let report = bench::run(&config, |p| eprintln!("  {p}")).map_err(|e| e.to_string())?;
    println!("{report}");
    Ok(())
}

fn run_status(args: StatusArgs) -> Result<(), String> {
    let s = status::collect_auth(&args.endpoints, Duration::from_secs(2), args.auth.get().as_ref());
    println!("{s}");
    Ok(())
}
