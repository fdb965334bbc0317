//! What kvstore-app's tests share: a cluster of real `kvstore node` processes on loopback,
//! started, killed (SIGKILL) and restarted on their data directories, and waits on what
//! `kvstore status` sees of it (the multi-process tests); how a simulated client's reply
//! enters its history (the simulator's linearizability tests).

// Each test crate compiles this module and uses a part of it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use kvstore_app::tools::status::{self, ClusterStatus};

mod history;
#[allow(unused_imports)] // each test crate uses a part of this module
pub use history::history_entry;

/// Free loopback ports (bound and released: another process could take one meanwhile, which
/// would fail the test loudly, not wrongly).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// `nodes` node processes of one cluster, node 0 its bootstrap server. Dropping it kills every
/// node and removes the data directories.
pub struct ProcessCluster {
    /// Each node's peer address.
    pub peers: Vec<SocketAddr>,
    /// Each node's client (RESP) address.
    pub clients: Vec<SocketAddr>,
    /// The directory holding each node's data directory, `node<i>`.
    dir: PathBuf,
    partitions: u32,
    replication: usize,
    children: Vec<Option<Child>>,
    /// Each node's peer authentication options: by default `--cluster-secret-file` with a
    /// secret written at creation (mode 600); see [`ProcessCluster::set_peer_auth`].
    peer_auth: Vec<Vec<String>>,
}

/// Writes `secret` to `path` (creating its directory), readable by its owner only, as an
/// operator should.
pub fn write_secret_file(path: &std::path::Path, secret: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(path.parent().expect("a file in a directory")).expect("mkdir");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("create the secret file");
    writeln!(file, "{secret}").expect("write the secret");
}

impl ProcessCluster {
    /// A cluster of `nodes` nodes, none started yet, with `partitions` partitions of
    /// `replication` replicas, its data under a temporary directory named after `name`, this
    /// process and `seed`.
    pub fn new(
        name: &str,
        seed: u64,
        nodes: usize,
        partitions: u32,
        replication: usize,
    ) -> ProcessCluster {
        let ports = free_ports(2 * nodes);
        let dir = std::env::temp_dir().join(format!("{name}-{}-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let secret_file = dir.join("cluster.secret");
        let secret: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        write_secret_file(&secret_file, &secret);
        let secret_args =
            vec!["--cluster-secret-file".to_string(), secret_file.display().to_string()];
        ProcessCluster {
            peer_auth: vec![secret_args; nodes],
            peers: ports[..nodes].iter().copied().map(loopback).collect(),
            clients: ports[nodes..].iter().copied().map(loopback).collect(),
            dir,
            partitions,
            replication,
            children: (0..nodes).map(|_| None).collect(),
        }
    }

    /// The number of nodes.
    pub fn nodes(&self) -> usize {
        self.peers.len()
    }

    /// The command line of node `i`.
    fn args(&self, i: usize) -> Vec<String> {
        let data_dir = self.data_dir(i);
        let mut args = vec![
            "node".to_string(),
            "--peer".into(),
            self.peers[i].to_string(),
            "--client".into(),
            self.clients[i].to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--partitions".into(),
            self.partitions.to_string(),
            "--replication".into(),
            self.replication.to_string(),
        ];
        args.extend(self.peer_auth[i].iter().cloned());
        if i == 0 {
            args.extend(["--expect".to_string(), self.nodes().to_string()]);
        } else {
            args.extend(["--join".to_string(), self.peers[0].to_string()]);
        }
        args
    }

    /// Replaces node `i`'s peer authentication options (for mutual TLS, or a wrong secret).
    pub fn set_peer_auth(&mut self, i: usize, args: Vec<String>) {
        self.peer_auth[i] = args;
    }

    /// The directory holding the nodes' data directories (and any files a test puts there).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Node `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{i}"))
    }

    /// Starts node `i` (again, on its data directory, after a kill).
    pub fn start(&mut self, i: usize) {
        let child = Command::new(env!("CARGO_BIN_EXE_kvstore"))
            .args(self.args(i))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kvstore node");
        self.children[i] = Some(child);
    }

    /// Starts every node.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes() {
            self.start(i);
        }
    }

    /// The process id of node `i`, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
    }

    /// SIGKILLs node `i`, if it runs, and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    /// What every node reports, each asked with `timeout`.
    pub fn status(&self, timeout: Duration) -> ClusterStatus {
        status::collect(&self.clients, timeout)
    }

    /// Waits until every partition has a leader (as the reachable nodes see it); panics with
    /// the cluster's status after `timeout`. Returns how long it took.
    pub fn wait_led(&self, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let s = self.status(Duration::from_millis(500));
            let groups = s.groups();
            if groups.len() == self.partitions as usize && groups.iter().all(|g| g.leader.is_some())
            {
                return start.elapsed();
            }
            assert!(start.elapsed() < timeout, "no leaders after {timeout:?}:\n{s}");
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// A node leading some partition, if any is known.
    pub fn some_leader(&self) -> Option<usize> {
        self.status(Duration::from_millis(300))
            .groups()
            .into_iter()
            .filter_map(|g| g.leader)
            .find_map(|l| self.peers.iter().position(|p| p.to_string() == l))
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
