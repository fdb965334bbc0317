//! Which cluster the partition directories of a node's data directory belong to.
//!
//! A data directory holds `cluster.table` and one directory `p<N>/` per partition the node
//! replicates, with that partition's Zab log. The table says which cluster the node is in; the
//! logs did not, so a node whose `p<N>/` came from another cluster (an old data directory
//! reused, or only `cluster.table` moved away after a refusal) would bring that cluster's
//! history, maybe with a higher epoch, into its group, where Zab would take it for its own.
//!
//! So each `p<N>/` is stamped with the id of the cluster it was created for (the file
//! [`STAMP_FILE`], written and fsynced before the partition's log is opened), and
//! [`check_and_stamp`] checks every `p<N>/` present against the node's table before any group
//! starts: a directory of another cluster, or a non-empty one without a stamp, stops the node
//! with a message naming each such directory.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::bootstrap::ClusterTable;
use crate::partition::PartitionId;

/// The file in a partition directory naming the cluster whose data it holds: the cluster id in
/// hexadecimal (16 digits), a space, the cluster's name, a newline.
pub const STAMP_FILE: &str = "cluster.id";

/// The directory of partition `p`'s log under `data_dir`.
pub fn partition_dir(data_dir: &Path, partition: u32) -> PathBuf {
    data_dir.join(format!("p{partition}"))
}

/// The partition directories (`p<N>/`) under `data_dir`, sorted by partition; none if
/// `data_dir` does not exist.
pub fn partition_dirs(data_dir: &Path) -> io::Result<Vec<(u32, PathBuf)>> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(|n| n.strip_prefix('p')) else { continue };
        let canonical = number.parse::<u32>().ok().filter(|n| n.to_string() == number);
        if let (Some(partition), true) = (canonical, entry.file_type()?.is_dir()) {
            dirs.push((partition, entry.path()));
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// What a partition directory's stamp says.
#[derive(Debug, PartialEq, Eq)]
enum Stamp {
    /// Stamped with this cluster id.
    Cluster(u64),
    /// No stamp, and nothing else in the directory: a directory created but never used.
    Empty,
    /// No stamp, but other files: data of an unknown cluster.
    Missing,
    /// A stamp that cannot be read as one (its first characters).
    Unreadable(String),
}

fn read_stamp(dir: &Path) -> io::Result<Stamp> {
    match std::fs::read_to_string(dir.join(STAMP_FILE)) {
        Ok(text) => {
            let id = text.split_whitespace().next().and_then(|h| u64::from_str_radix(h, 16).ok());
            Ok(id
                .map_or_else(|| Stamp::Unreadable(text.chars().take(40).collect()), Stamp::Cluster))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let empty = std::fs::read_dir(dir)?.next().is_none();
            Ok(if empty { Stamp::Empty } else { Stamp::Missing })
        }
        Err(e) => Err(e),
    }
}

/// Checks that every partition directory under `data_dir` belongs to `cluster`, then creates
/// and stamps the directories of the partitions in `mine` that have none. Nothing is created
/// when a directory of another cluster is found: the error names each one and what to do.
pub fn check_and_stamp(
    data_dir: &Path,
    cluster: &ClusterTable,
    mine: &[PartitionId],
) -> Result<(), String> {
    let io_error = |path: &Path, e: io::Error| format!("{}: {e}", path.display());
    let mut foreign = String::new();
    for (_, dir) in partition_dirs(data_dir).map_err(|e| io_error(data_dir, e))? {
        let what = match read_stamp(&dir).map_err(|e| io_error(&dir, e))? {
            Stamp::Cluster(id) if id == cluster.cluster_id => continue,
            Stamp::Empty => continue,
            Stamp::Cluster(id) => format!("cluster {id:016x}"),
            Stamp::Missing => format!("no {STAMP_FILE}: an unknown cluster"),
            Stamp::Unreadable(text) => format!("unreadable {STAMP_FILE} {text:?}"),
        };
        let _ = write!(
            foreign,
            "{}{} ({what})",
            if foreign.is_empty() { "" } else { ", " },
            dir.display()
        );
    }
    if !foreign.is_empty() {
        return Err(format!(
            "{foreign} hold data of another cluster than this node's, {:?} ({:016x}) in {}: \
             move them away before starting this node (if one is this cluster's own, write \
             \"{:016x}\" into its {STAMP_FILE})",
            cluster.cluster_name,
            cluster.cluster_id,
            data_dir.join(crate::bootstrap::FileTableStore::FILE_NAME).display(),
            cluster.cluster_id,
        ));
    }
    let stamp = format!("{:016x} {}\n", cluster.cluster_id, cluster.cluster_name);
    for partition in mine {
        let dir = partition_dir(data_dir, partition.0);
        let path = dir.join(STAMP_FILE);
        if path.exists() {
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        zab_components::wal::files::write_atomic(&path, stamp.as_bytes(), true)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::LookupTable;
    use crate::test_dir::TempDir;
    use kompics_net::NodeAddr;

    fn cluster(id: u64) -> ClusterTable {
        let nodes: Vec<NodeAddr> =
            (1..=3).map(|i| NodeAddr(([10, 0, 0, i], 7000).into())).collect();
        let table = LookupTable::build(&nodes, 3, 3).unwrap();
        ClusterTable { cluster_id: id, cluster_name: "c".into(), table }
    }

    #[test]
    fn own_directories_are_stamped_once_and_accepted_again() {
        let scratch = TempDir::new("data-dir-own");
        let dir = scratch.path();
        let mine = [PartitionId(0), PartitionId(2)];
        check_and_stamp(dir, &cluster(0xab), &mine).unwrap();
        let stamp = std::fs::read_to_string(dir.join("p2").join(STAMP_FILE)).unwrap();
        assert_eq!(stamp, "00000000000000ab c\n");
        assert!(!dir.join("p1").exists());
        std::fs::write(dir.join("p0").join("log.0"), b"entries").unwrap();
        check_and_stamp(dir, &cluster(0xab), &mine).unwrap();
        // Not a partition directory: ignored.
        std::fs::create_dir_all(dir.join("p01")).unwrap();
        std::fs::create_dir_all(dir.join("pX")).unwrap();
        assert_eq!(partition_dirs(dir).unwrap().len(), 2);
    }

    #[test]
    fn another_clusters_directories_are_named_and_nothing_is_created() {
        let scratch = TempDir::new("data-dir-foreign");
        let dir = scratch.path();
        check_and_stamp(dir, &cluster(1), &[PartitionId(0)]).unwrap();
        std::fs::create_dir_all(dir.join("p1")).unwrap();
        std::fs::write(dir.join("p1").join("acceptedEpoch"), "7\n").unwrap();
        let error = check_and_stamp(dir, &cluster(2), &[PartitionId(0), PartitionId(2)])
            .expect_err("another cluster's data");
        let p0 = dir.join("p0").display().to_string();
        let p1 = dir.join("p1").display().to_string();
        assert!(error.contains(&format!("{p0} (cluster 0000000000000001)")), "{error}");
        assert!(error.contains(&format!("{p1} (no cluster.id: an unknown cluster)")), "{error}");
        assert!(error.contains("move them away"), "{error}");
        assert!(!dir.join("p2").exists(), "nothing created on refusal");
    }
}
