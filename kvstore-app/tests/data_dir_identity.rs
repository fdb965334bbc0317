//! A node's data directory and its identity, with real nodes in this process (TCP on loopback,
//! file logs): each start takes a new incarnation from the data directory, and a node whose
//! partition directories hold another cluster's logs is refused before any of its groups
//! starts, with a message naming those directories (issue 13).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kompics_core::{Runtime, RuntimeConfig};
use kvstore_app::bootstrap::{BootstrapRole, FileTableStore};
use kvstore_app::data_dir::{partition_dirs, STAMP_FILE};
use kvstore_app::incarnation::INCARNATION_FILE;
use kvstore_app::launch::{start_node, NodeOptions, NotReady, RunningNode};
use kvstore_app::peer_auth::PeerAuth;

/// Starts three nodes forming a cluster, in `dirs`; the first is the bootstrap server.
fn start_cluster(rt: &Runtime, name: &str, dirs: [&Path; 3]) -> Vec<RunningNode> {
    let mut nodes: Vec<RunningNode> = Vec::new();
    for dir in dirs {
        let role = match nodes.first() {
            None => BootstrapRole::Server { expected_nodes: 3 },
            Some(first) => BootstrapRole::Join { server: first.peer },
        };
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut options =
            NodeOptions::new(any, any, dir.to_path_buf(), role, PeerAuth::secret(&[8; 32]));
        options.segment_bytes = 1 << 20;
        options.fsync = false;
        options.cluster_name = name.to_owned();
        nodes.push(start_node(&rt.system(), &options).expect("start node"));
    }
    nodes
}

fn incarnation(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(INCARNATION_FILE)).unwrap().trim().to_owned()
}

#[test]
fn a_node_with_another_clusters_partition_logs_is_refused_before_its_groups_start() {
    let rt = Runtime::new(RuntimeConfig::default().workers(2));
    let root: PathBuf =
        std::env::temp_dir().join(format!("kvstore-identity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let old: Vec<PathBuf> = (0..3).map(|i| root.join(format!("old{i}"))).collect();

    // Cluster "kv" forms; its nodes stamp the partition directories they create.
    let first = start_cluster(&rt, "kv", [&old[0], &old[1], &old[2]]);
    for n in &first {
        n.wait_ready(Duration::from_secs(30)).expect("first cluster ready");
    }
    for n in &first {
        n.kill();
    }
    let reused = &old[0];
    let stamped = partition_dirs(reused).unwrap();
    assert!(!stamped.is_empty());
    assert!(stamped.iter().all(|(_, dir)| dir.join(STAMP_FILE).exists()));
    assert_eq!(incarnation(reused), "1");

    // The operator moves only cluster.table away and starts a new cluster of the same name
    // with that directory: the node must not bring the old logs into the new groups.
    std::fs::remove_file(reused.join(FileTableStore::FILE_NAME)).unwrap();
    let fresh = [root.join("new1"), root.join("new2")];
    let second = start_cluster(&rt, "kv", [reused, &fresh[0], &fresh[1]]);
    let refused = second[0].wait_ready(Duration::from_secs(30));
    let Err(NotReady::Failed(reason)) = refused else { panic!("not refused: {refused:?}") };
    for (_, dir) in &stamped {
        assert!(reason.contains(&dir.display().to_string()), "{reason}");
    }
    assert!(reason.contains("another cluster"), "{reason}");
    let groups = second[0].node.on_definition(|n| n.groups().len());
    assert_eq!(groups, Some(0), "no group started with the foreign logs");
    assert_eq!(incarnation(reused), "2", "every start takes a new incarnation");
    for n in &second {
        n.kill();
    }
    let _ = std::fs::remove_dir_all(&root);
}
