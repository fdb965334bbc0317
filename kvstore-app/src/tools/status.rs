//! The cluster at a glance (`kvstore status`): [`collect`] asks every node for `INFO`, parses
//! it into a [`NodeInfo`], and [`ClusterStatus`]'s `Display` shows each node (reachable, or DOWN
//! with the error) and each partition group (members, leader, each member's role and last zxid,
//! members down). What a node reports is [`crate::info`]'s contract.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use super::client::RespClient;
use crate::auth::Password;
use crate::info::{GroupInfo, InfoParseError, InfoZxid, NodeInfo, Role};

/// One endpoint's answer: its [`NodeInfo`], or why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The client address asked.
    pub endpoint: SocketAddr,
    /// What it reported, or why it did not.
    pub info: Result<NodeInfo, QueryError>,
}

/// The answers of every endpoint asked, in the order given to [`collect`]. `Display` renders
/// the cluster at a glance; [`groups`](Self::groups) is the per-partition view it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    /// One per endpoint.
    pub nodes: Vec<NodeStatus>,
}

/// How one member of a group is doing, as the member itself reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// The member answered `INFO` and lists this group.
    Up {
        /// Its role.
        role: Role,
        /// Its last zxid in the group.
        last_zxid: Option<InfoZxid>,
        /// The leader it follows.
        leader: Option<String>,
    },
    /// No reachable node reported with this peer address (it is down, or was not asked).
    Down,
}

/// One partition group as seen by all reachable nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    /// The partition.
    pub partition: u32,
    /// Every member any node listed, in first-seen order, with its state.
    pub members: Vec<(String, MemberState)>,
    /// The leader: the member that reports itself leader, or failing that the leader named by
    /// most members. `None` if nobody knows one.
    pub leader: Option<String>,
    /// Disagreements worth a look (two self-declared leaders, members naming different leaders,
    /// different member lists).
    pub notes: Vec<String>,
}

impl GroupView {
    /// The members no reachable node reported for.
    pub fn down(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|(_, state)| *state == MemberState::Down)
            .map(|(member, _)| member.as_str())
            .collect()
    }
}

impl ClusterStatus {
    /// The reachable nodes' reports.
    pub fn reachable(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().filter_map(|node| node.info.as_ref().ok())
    }

    /// Each partition group, by partition number, merged from every reachable node's report.
    pub fn groups(&self) -> Vec<GroupView> {
        // partition → (node → its group line)
        let mut reports: BTreeMap<u32, Vec<(&str, &GroupInfo)>> = BTreeMap::new();
        for info in self.reachable() {
            for group in &info.groups {
                reports.entry(group.partition).or_default().push((&info.node, group));
            }
        }
        let mut views = Vec::new();
        for (partition, reports) in reports {
            let mut notes = Vec::new();
            let mut members: Vec<String> = Vec::new();
            for (_, group) in &reports {
                for member in &group.members {
                    if !members.contains(member) {
                        members.push(member.clone());
                    }
                }
            }
            let lists: BTreeSet<BTreeSet<&String>> =
                reports.iter().map(|(_, group)| group.members.iter().collect()).collect();
            if lists.len() > 1 {
                notes.push("members disagree on the member list".to_owned());
            }
            let reporting: BTreeMap<&str, &GroupInfo> = reports.iter().copied().collect();
            let members: Vec<(String, MemberState)> = members
                .into_iter()
                .map(|member| {
                    let state = match reporting.get(member.as_str()) {
                        Some(group) => MemberState::Up {
                            role: group.role.clone(),
                            last_zxid: group.last_zxid,
                            leader: group.leader.clone(),
                        },
                        None => MemberState::Down,
                    };
                    (member, state)
                })
                .collect();
            let self_declared: Vec<&str> = reports
                .iter()
                .filter(|(_, group)| group.role == Role::Leader)
                .map(|(node, _)| *node)
                .collect();
            if self_declared.len() > 1 {
                notes.push(format!("several nodes claim to lead: {}", self_declared.join(", ")));
            }
            let mut named: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, group) in &reports {
                if let Some(leader) = &group.leader {
                    *named.entry(leader).or_default() += 1;
                }
            }
            if named.len() > 1 {
                let names: Vec<&str> = named.keys().copied().collect();
                notes.push(format!("members name different leaders: {}", names.join(", ")));
            }
            let most_named = named
                .iter()
                .max_by_key(|(name, count)| (**count, std::cmp::Reverse(**name)))
                .map(|(name, _)| *name);
            let leader = self_declared.first().copied().or(most_named).map(str::to_owned);
            views.push(GroupView { partition, members, leader, notes });
        }
        views
    }
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_cluster(f)?;
        self.fmt_nodes(f)?;
        self.fmt_groups(f)
    }
}

impl ClusterStatus {
    /// The first line: which cluster, and how many of its nodes answered.
    fn fmt_cluster(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reachable: Vec<&NodeInfo> = self.reachable().collect();
        let clusters: BTreeSet<(&str, u64)> =
            reachable.iter().map(|info| (info.cluster.as_str(), info.cluster_id)).collect();
        match (clusters.len(), reachable.first()) {
            (1, Some(info)) => write!(
                f,
                "cluster {} (id {}): {} partitions, replication {}",
                info.cluster, info.cluster_id, info.partitions, info.replication
            )?,
            (0, _) | (_, None) => f.write_str("cluster: unknown (no node reachable)")?,
            _ => {
                let names: Vec<String> =
                    clusters.iter().map(|(name, id)| format!("{name} (id {id})")).collect();
                write!(f, "cluster: NODES DISAGREE: {}", names.join(", "))?
            }
        }
        writeln!(f, "; {} of {} nodes reachable", reachable.len(), self.nodes.len())
    }

    /// A line per endpoint: up with its counters, or down with the error.
    fn fmt_nodes(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "nodes:")?;
        for node in &self.nodes {
            match &node.info {
                Ok(info) => {
                    let s = &info.stats;
                    writeln!(
                        f,
                        "  {:<21}  up    node {}  uptime {} s  get {} set {} del {} cas {} \
                         errors {} forwarded {}",
                        node.endpoint.to_string(),
                        info.node,
                        info.uptime_s,
                        s.ops_get,
                        s.ops_set,
                        s.ops_del,
                        s.ops_cas,
                        s.errors,
                        s.forwarded
                    )?;
                }
                Err(error) => writeln!(f, "  {:<21}  DOWN  {error}", node.endpoint.to_string())?,
            }
        }
        Ok(())
    }

    /// Per partition: its leader, the members down, each member's role and progress, and
    /// what the members disagree on.
    fn fmt_groups(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups = self.groups();
        if groups.is_empty() {
            return Ok(());
        }
        writeln!(f, "partitions:")?;
        for group in &groups {
            let down = group.down();
            write!(
                f,
                "  p{:<4} leader {}",
                group.partition,
                group.leader.as_deref().unwrap_or("NONE")
            )?;
            if down.is_empty() {
                writeln!(f)?;
            } else {
                writeln!(
                    f,
                    "  ({} of {} members down: {})",
                    down.len(),
                    group.members.len(),
                    down.join(", ")
                )?;
            }
            for (member, state) in &group.members {
                match state {
                    MemberState::Up { role, last_zxid, .. } => {
                        let zxid =
                            last_zxid.map(|z| z.to_string()).unwrap_or_else(|| "none".into());
                        writeln!(f, "        {member:<21}  {:<9} last_zxid {zxid}", role.as_str())?;
                    }
                    MemberState::Down => writeln!(f, "        {member:<21}  DOWN (no report)")?,
                }
            }
            for note in &group.notes {
                writeln!(f, "        ! {note}")?;
            }
        }
        Ok(())
    }
}

/// Asks every endpoint (a node's client address) for `INFO`, all in parallel, each connection
/// and call bounded by `timeout`.
pub fn collect(endpoints: &[SocketAddr], timeout: Duration) -> ClusterStatus {
    collect_auth(endpoints, timeout, None)
}

/// [`collect`] from nodes that require a password (`--requirepass`): each connection sends
/// `AUTH password` first.
pub fn collect_auth(
    endpoints: &[SocketAddr],
    timeout: Duration,
    password: Option<&Password>,
) -> ClusterStatus {
    let nodes = thread::scope(|scope| {
        let handles: Vec<_> = endpoints
            .iter()
            .map(|&endpoint| {
                scope.spawn(move || NodeStatus {
                    endpoint,
                    info: query(endpoint, timeout, password),
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(endpoints)
            .map(|(handle, &endpoint)| {
                handle.join().unwrap_or(NodeStatus { endpoint, info: Err(QueryError::Panicked) })
            })
            .collect()
    });
    ClusterStatus { nodes }
}

fn query(
    endpoint: SocketAddr,
    timeout: Duration,
    password: Option<&Password>,
) -> Result<NodeInfo, QueryError> {
    let mut client = RespClient::connect(endpoint, timeout)
        .map_err(|error| QueryError::Connect(error.to_string()))?;
    if let Some(password) = password {
        client.auth(password).map_err(|error| QueryError::Info(format!("AUTH: {error}")))?;
    }
    let text = client.info(None).map_err(|error| QueryError::Info(error.to_string()))?;
    NodeInfo::parse(&text).map_err(QueryError::Parse)
}

/// Why an endpoint has no [`NodeInfo`] in a [`ClusterStatus`]. The texts are the client's, kept
/// as text so that a status can be compared and cloned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// No connection: the node is down, or the address is not a node's client address.
    Connect(String),
    /// Connected, but `INFO` failed (timed out, or the connection broke): the node is stuck or
    /// overloaded.
    Info(String),
    /// The reply does not follow the `INFO` contract: the node runs another version.
    Parse(InfoParseError),
    /// The thread asking the node panicked: a bug in this tool.
    Panicked,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Connect(error) => write!(f, "cannot connect: {error}"),
            QueryError::Info(error) => write!(f, "INFO failed: {error}"),
            QueryError::Parse(error) => error.fmt(f),
            QueryError::Panicked => f.write_str("the query thread panicked"),
        }
    }
}

impl std::error::Error for QueryError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::fixtures::{example, group, node};
    use crate::info::Role;

    #[test]
    fn groups_merge_the_members_reports() {
        let leader = example();
        let follower = node(
            2,
            vec![
                group(0, Role::Follower, Some("127.0.0.1:7001"), Some((3, 16))),
                group(2, Role::Leader, Some("127.0.0.1:7002"), Some((3, 17))),
                group(1, Role::Looking, None, Some((2, 4))),
            ],
        );
        let status = ClusterStatus {
            nodes: vec![
                NodeStatus { endpoint: "127.0.0.1:6379".parse().unwrap(), info: Ok(leader) },
                NodeStatus { endpoint: "127.0.0.1:6380".parse().unwrap(), info: Ok(follower) },
                NodeStatus {
                    endpoint: "127.0.0.1:6381".parse().unwrap(),
                    info: Err(QueryError::Connect("refused".into())),
                },
            ],
        };
        let groups = status.groups();
        assert_eq!(groups.iter().map(|g| g.partition).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(groups[0].leader.as_deref(), Some("127.0.0.1:7001"));
        assert_eq!(groups[1].leader, None);
        assert_eq!(groups[2].leader.as_deref(), Some("127.0.0.1:7002"));
        for group in &groups {
            assert_eq!(group.down(), ["127.0.0.1:7003"]);
            assert!(group.notes.is_empty(), "{:?}", group.notes);
        }
        assert_eq!(
            groups[0].members[1].1,
            MemberState::Up {
                role: Role::Follower,
                last_zxid: Some(InfoZxid { epoch: 3, counter: 16 }),
                leader: Some("127.0.0.1:7001".into())
            }
        );
        let shown = status.to_string();
        assert!(
            shown.starts_with(
                "cluster demo (id 1234567): 3 partitions, replication 3; 2 of 3 nodes reachable\n"
            ),
            "{shown}"
        );
        assert!(shown.contains("127.0.0.1:6381         DOWN  cannot connect: refused"), "{shown}");
        assert!(
            shown.contains("p0    leader 127.0.0.1:7001  (1 of 3 members down: 127.0.0.1:7003)"),
            "{shown}"
        );
        assert!(shown.contains("p1    leader NONE"), "{shown}");
        assert!(shown.contains("127.0.0.1:7003         DOWN (no report)\n"), "{shown}");
        assert!(shown.contains("127.0.0.1:7002         follower  last_zxid 3:16"), "{shown}");
    }

    #[test]
    fn disagreements_are_noted() {
        let a = node(1, vec![group(0, Role::Leader, Some("127.0.0.1:7001"), None)]);
        let b = node(2, vec![group(0, Role::Leader, Some("127.0.0.1:7002"), None)]);
        let status = ClusterStatus {
            nodes: vec![
                NodeStatus { endpoint: "127.0.0.1:1".parse().unwrap(), info: Ok(a) },
                NodeStatus { endpoint: "127.0.0.1:2".parse().unwrap(), info: Ok(b) },
            ],
        };
        let notes = &status.groups()[0].notes;
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(status.to_string().contains("! several nodes claim to lead"));
    }
}
