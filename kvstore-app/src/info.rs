//! What a node reports of itself in its `INFO` reply, as [`NodeInfo`]: the front end renders it
//! ([`NodeInfo::to_sections`]) and tools read it back ([`NodeInfo::parse`]; the cluster-status
//! tool, [`tools::status`](crate::tools::status), shows a whole cluster from it).
//!
//! # The `INFO` contract
//!
//! A node's `INFO` reply (built with [`info_reply`](crate::command::info_reply), which renders each section as
//! `# Name\r\n` followed by `field:value\r\n` lines, sections separated by an empty line) holds
//! these sections; [`NodeInfo::to_sections`] produces exactly them and [`NodeInfo::parse`] reads
//! them back:
//!
//! ```text
//! # Server
//! node:127.0.0.1:7001            the node's peer address, which is its id in the cluster
//! client_addr:127.0.0.1:6379     where it serves RESP
//! cluster:demo                   the cluster's name
//! cluster_id:1234567             the cluster's numeric id (u64)
//! partitions:3                   the number of partitions (u32)
//! replication:3                  the replication factor (u32)
//! uptime_s:12                    seconds since the node started (u64)
//!
//! # Groups                       one line per partition group this node is a member of
//! p0:role=leader,leader=127.0.0.1:7001,last_zxid=3:17,members=127.0.0.1:7001|127.0.0.1:7002|127.0.0.1:7003
//! p2:role=follower,leader=127.0.0.1:7002,last_zxid=3:17,members=…
//! p1:role=looking,leader=none,last_zxid=none,members=…
//!
//! # Stats                        counters since start (u64 each)
//! ops_get:10
//! ops_set:5
//! ops_del:0
//! ops_cas:1
//! errors:0
//! forwarded:3
//! ```
//!
//! - A group line is `p<partition>:` then comma-separated `name=value` pairs in any order:
//!   `role` (`leader`, `follower`, `looking`, or any other word, kept as
//!   [`Role::Other`]), `leader` (a peer address or `none`), `last_zxid` (`epoch:counter` or
//!   `none`), `members` (peer addresses separated by `|`, possibly empty).
//! - Sections and fields not listed here (e.g. a Redis-style `# Keyspace`) are ignored, as are
//!   unknown names inside a group line, so either side may add some.
//! - `node` is required; any other missing field reads as its default (empty, 0, no groups).
//!   A present field with a malformed value is an [`InfoParseError`].
//! - Groups keep the order the node listed them in.
//!
//! ```
//! use kvstore_app::command::info_reply;
//! use kvstore_app::resp::RespValue;
//! use kvstore_app::info::{NodeInfo, Role};
//!
//! let text = "# Server\r\nnode:10.0.0.1:7001\r\npartitions:1\r\n\r\n# Groups\r\n\
//!             p0:role=leader,leader=10.0.0.1:7001,last_zxid=2:5,members=10.0.0.1:7001\r\n";
//! let info = NodeInfo::parse(text).unwrap();
//! assert_eq!(info.groups[0].role, Role::Leader);
//! let RespValue::BulkString(Some(rendered)) = info_reply(&info.to_sections(), None) else {
//!     unreachable!()
//! };
//! assert_eq!(NodeInfo::parse(std::str::from_utf8(&rendered).unwrap()).unwrap(), info);
//! ```

use std::fmt;
use std::str::FromStr;

use crate::command::InfoSection;

/// A zxid as `INFO` shows it: `epoch:counter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InfoZxid {
    /// The epoch.
    pub epoch: u64,
    /// The counter within the epoch.
    pub counter: u64,
}

impl From<zab_components::protocol::Zxid> for InfoZxid {
    fn from(zxid: zab_components::protocol::Zxid) -> Self {
        InfoZxid { epoch: zxid.epoch.0, counter: zxid.counter }
    }
}

impl fmt::Display for InfoZxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch, self.counter)
    }
}

impl FromStr for InfoZxid {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let (epoch, counter) = text.split_once(':').ok_or(())?;
        Ok(InfoZxid {
            epoch: epoch.parse().map_err(|_| ())?,
            counter: counter.parse().map_err(|_| ())?,
        })
    }
}

/// A node's role in one partition group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// It leads the group.
    Leader,
    /// It follows the leader.
    Follower,
    /// It is electing a leader (or syncing with a new one).
    Looking,
    /// A role word this version does not know.
    Other(String),
}

impl Role {
    /// The word used in `INFO`.
    pub fn as_str(&self) -> &str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Looking => "looking",
            Role::Other(word) => word,
        }
    }

    fn parse(word: &str) -> Role {
        match word {
            "leader" => Role::Leader,
            "follower" => Role::Follower,
            "looking" => Role::Looking,
            other => Role::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the `# Groups` section: this node's view of one partition group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// The partition number (`p<partition>`).
    pub partition: u32,
    /// This node's role in the group.
    pub role: Role,
    /// The leader this node knows of, by peer address.
    pub leader: Option<String>,
    /// The zxid of the last transaction this node has in the group's log.
    pub last_zxid: Option<InfoZxid>,
    /// The group's members, by peer address.
    pub members: Vec<String>,
}

/// The `# Stats` section: counters since the node started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// `GET`s served.
    pub ops_get: u64,
    /// `SET`s served.
    pub ops_set: u64,
    /// `DEL`s served.
    pub ops_del: u64,
    /// `CAS`s served.
    pub ops_cas: u64,
    /// Error replies sent.
    pub errors: u64,
    /// Requests forwarded to another node (the leader of the key's partition).
    pub forwarded: u64,
}

/// What one node reports in `INFO`; see the [module documentation](self) for the format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's peer address, its id in the cluster.
    pub node: String,
    /// Where it serves RESP.
    pub client_addr: String,
    /// The cluster's name.
    pub cluster: String,
    /// The cluster's numeric id.
    pub cluster_id: u64,
    /// The number of partitions.
    pub partitions: u32,
    /// The replication factor.
    pub replication: u32,
    /// Seconds since the node started.
    pub uptime_s: u64,
    /// The groups this node is a member of, in the order listed.
    pub groups: Vec<GroupInfo>,
    /// Its counters.
    pub stats: NodeStats,
}

/// `INFO` text that does not follow the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InfoParseError {
    /// No `node` field in `# Server`.
    MissingNode,
    /// A known field with a value that does not parse.
    BadField {
        /// The section, e.g. `Server`.
        section: String,
        /// The field, e.g. `cluster_id`.
        field: String,
        /// The value as sent.
        value: String,
    },
}

impl fmt::Display for InfoParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoParseError::MissingNode => f.write_str("INFO has no node field in # Server"),
            InfoParseError::BadField { section, field, value } => {
                write!(f, "INFO # {section}: bad value for {field}: {value:?}")
            }
        }
    }
}

impl std::error::Error for InfoParseError {}

impl NodeInfo {
    /// The `# Server`, `# Groups` and `# Stats` sections, in the format of the
    /// [module documentation](self), for [`info_reply`](crate::command::info_reply).
    pub fn to_sections(&self) -> Vec<InfoSection> {
        let field = |name: &str, value: String| (name.to_owned(), value);
        let server = InfoSection {
            name: "Server".to_owned(),
            fields: vec![
                field("node", self.node.clone()),
                field("client_addr", self.client_addr.clone()),
                field("cluster", self.cluster.clone()),
                field("cluster_id", self.cluster_id.to_string()),
                field("partitions", self.partitions.to_string()),
                field("replication", self.replication.to_string()),
                field("uptime_s", self.uptime_s.to_string()),
            ],
        };
        let groups = InfoSection {
            name: "Groups".to_owned(),
            fields: self
                .groups
                .iter()
                .map(|group| {
                    let none = || "none".to_owned();
                    let value = format!(
                        "role={},leader={},last_zxid={},members={}",
                        group.role,
                        group.leader.clone().unwrap_or_else(none),
                        group.last_zxid.map(|zxid| zxid.to_string()).unwrap_or_else(none),
                        group.members.join("|"),
                    );
                    (format!("p{}", group.partition), value)
                })
                .collect(),
        };
        let stats = &self.stats;
        let stats = InfoSection {
            name: "Stats".to_owned(),
            fields: vec![
                field("ops_get", stats.ops_get.to_string()),
                field("ops_set", stats.ops_set.to_string()),
                field("ops_del", stats.ops_del.to_string()),
                field("ops_cas", stats.ops_cas.to_string()),
                field("errors", stats.errors.to_string()),
                field("forwarded", stats.forwarded.to_string()),
            ],
        };
        vec![server, groups, stats]
    }

    /// Parses a node's `INFO` text (lines ending in `\r\n` or `\n`).
    pub fn parse(text: &str) -> Result<NodeInfo, InfoParseError> {
        let mut info = NodeInfo::default();
        let mut node = None;
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(name) = line.strip_prefix('#') {
                section = name.trim().to_owned();
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue; // blank lines and anything that is not a field
            };
            let bad = || InfoParseError::BadField {
                section: section.clone(),
                field: name.to_owned(),
                value: value.to_owned(),
            };
            let number = |value: &str| value.parse::<u64>().map_err(|_| bad());
            match section.to_ascii_lowercase().as_str() {
                "server" => match name {
                    "node" => node = Some(value.to_owned()),
                    "client_addr" => info.client_addr = value.to_owned(),
                    "cluster" => info.cluster = value.to_owned(),
                    "cluster_id" => info.cluster_id = number(value)?,
                    "partitions" => info.partitions = value.parse().map_err(|_| bad())?,
                    "replication" => info.replication = value.parse().map_err(|_| bad())?,
                    "uptime_s" => info.uptime_s = number(value)?,
                    _ => {}
                },
                "groups" => {
                    let Some(partition) = name.strip_prefix('p') else { continue };
                    let partition = partition.parse().map_err(|_| bad())?;
                    info.groups.push(parse_group(partition, value).ok_or_else(bad)?);
                }
                "stats" => {
                    let stats = &mut info.stats;
                    let counter = match name {
                        "ops_get" => &mut stats.ops_get,
                        "ops_set" => &mut stats.ops_set,
                        "ops_del" => &mut stats.ops_del,
                        "ops_cas" => &mut stats.ops_cas,
                        "errors" => &mut stats.errors,
                        "forwarded" => &mut stats.forwarded,
                        _ => continue,
                    };
                    *counter = number(value)?;
                }
                _ => {}
            }
        }
        info.node = node.ok_or(InfoParseError::MissingNode)?;
        Ok(info)
    }
}

/// Parses `role=…,leader=…,last_zxid=…,members=…`; `None` if a known pair is malformed.
fn parse_group(partition: u32, value: &str) -> Option<GroupInfo> {
    let mut group = GroupInfo {
        partition,
        role: Role::Other(String::new()),
        leader: None,
        last_zxid: None,
        members: Vec::new(),
    };
    let optional = |text: &str| (text != "none" && !text.is_empty()).then(|| text.to_owned());
    for pair in value.split(',') {
        let (name, text) = pair.split_once('=')?;
        match name {
            "role" => group.role = Role::parse(text),
            "leader" => group.leader = optional(text),
            "last_zxid" => {
                group.last_zxid = match optional(text) {
                    None => None,
                    Some(text) => Some(text.parse().ok()?),
                }
            }
            "members" => {
                group.members =
                    text.split('|').filter(|m| !m.is_empty()).map(str::to_owned).collect()
            }
            _ => {}
        }
    }
    Some(group)
}

#[cfg(test)]
mod tests {
    use super::fixtures::example;
    use super::*;
    use crate::command::info_reply;
    use crate::resp::RespValue;

    /// `INFO` as a node would answer it (all sections).
    fn render_info_text(info: &NodeInfo) -> String {
        match info_reply(&info.to_sections(), None) {
            RespValue::BulkString(Some(bytes)) => String::from_utf8(bytes).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let text = "# Server\r\nnode:127.0.0.1:7001\r\nclient_addr:127.0.0.1:6379\r\ncluster:demo\r\n\
            cluster_id:1234567\r\npartitions:3\r\nreplication:3\r\nuptime_s:12\r\n\r\n\
            # Groups\r\n\
            p0:role=leader,leader=127.0.0.1:7001,last_zxid=3:17,members=127.0.0.1:7001|127.0.0.1:7002|127.0.0.1:7003\r\n\
            p2:role=follower,leader=127.0.0.1:7002,last_zxid=3:17,members=127.0.0.1:7001|127.0.0.1:7002|127.0.0.1:7003\r\n\
            p1:role=looking,leader=none,last_zxid=none,members=127.0.0.1:7001|127.0.0.1:7002|127.0.0.1:7003\r\n\r\n\
            # Stats\r\nops_get:10\r\nops_set:5\r\nops_del:0\r\nops_cas:1\r\nerrors:0\r\nforwarded:3\r\n\r\n\
            # Keyspace\r\ndb0:keys=3,expires=0\r\n";
        assert_eq!(NodeInfo::parse(text).unwrap(), example());
    }

    #[test]
    fn parse_of_render_is_identity() {
        let mut info = example();
        assert_eq!(NodeInfo::parse(&render_info_text(&info)).unwrap(), info);
        info.groups.push(GroupInfo {
            partition: 9,
            role: Role::Other("observing".into()),
            leader: None,
            last_zxid: Some(InfoZxid { epoch: 0, counter: 0 }),
            members: vec![],
        });
        info.cluster_id = u64::MAX;
        assert_eq!(NodeInfo::parse(&render_info_text(&info)).unwrap(), info);
        let bare = NodeInfo { node: "n".into(), ..NodeInfo::default() };
        assert_eq!(NodeInfo::parse(&render_info_text(&bare)).unwrap(), bare);
    }

    #[test]
    fn the_rendering_is_exactly_the_contract() {
        let text = render_info_text(&example());
        assert!(
            text.starts_with("# Server\r\nnode:127.0.0.1:7001\r\nclient_addr:127.0.0.1:6379\r\n")
        );
        assert!(text.contains(
            "# Groups\r\np0:role=leader,leader=127.0.0.1:7001,last_zxid=3:17,\
             members=127.0.0.1:7001|127.0.0.1:7002|127.0.0.1:7003\r\n"
        ));
        assert!(text.contains("p1:role=looking,leader=none,last_zxid=none,members="));
        assert!(text.ends_with("errors:0\r\nforwarded:3\r\n"));
    }

    #[test]
    fn malformed_known_fields_are_errors_and_unknown_ones_are_ignored() {
        assert_eq!(NodeInfo::parse("# Server\r\nuptime_s:1\r\n"), Err(InfoParseError::MissingNode));
        let bad = NodeInfo::parse("# Server\r\nnode:n\r\ncluster_id:x\r\n").unwrap_err();
        assert!(matches!(bad, InfoParseError::BadField { ref field, .. } if field == "cluster_id"));
        for line in ["p0:role=leader,last_zxid=3", "px:role=leader", "p0:role"] {
            let text = format!("# Server\r\nnode:n\r\n# Groups\r\n{line}\r\n");
            assert!(NodeInfo::parse(&text).is_err(), "{line}");
        }
        let text = "# Server\nnode:n\nfuture:1\n# Groups\np4:role=follower,color=red\n\
                    # Stats\nops_get:2\nnew_counter:x\n# Other\nnode:m\n";
        let info = NodeInfo::parse(text).unwrap();
        assert_eq!(info.node, "n");
        assert_eq!(info.groups[0].partition, 4);
        assert_eq!(info.groups[0].role, Role::Follower);
        assert_eq!(info.stats.ops_get, 2);
    }

    #[test]
    fn zxids_convert_from_zab() {
        use zab_components::protocol::{Epoch, Zxid};
        let zxid = InfoZxid::from(Zxid { epoch: Epoch(3), counter: 17 });
        assert_eq!(zxid.to_string(), "3:17");
        assert_eq!("3:17".parse::<InfoZxid>(), Ok(zxid));
    }
}

/// Node reports for the tests of this module and of the status tool.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn group(
        partition: u32,
        role: Role,
        leader: Option<&str>,
        zxid: Option<(u64, u64)>,
    ) -> GroupInfo {
        GroupInfo {
            partition,
            role,
            leader: leader.map(str::to_owned),
            last_zxid: zxid.map(|(epoch, counter)| InfoZxid { epoch, counter }),
            members: vec![
                "127.0.0.1:7001".into(),
                "127.0.0.1:7002".into(),
                "127.0.0.1:7003".into(),
            ],
        }
    }

    pub(crate) fn node(n: u16, groups: Vec<GroupInfo>) -> NodeInfo {
        NodeInfo {
            node: format!("127.0.0.1:{}", 7000 + n),
            client_addr: format!("127.0.0.1:{}", 6378 + n),
            cluster: "demo".into(),
            cluster_id: 1234567,
            partitions: 3,
            replication: 3,
            uptime_s: 12,
            groups,
            stats: NodeStats {
                ops_get: 10,
                ops_set: 5,
                ops_del: 0,
                ops_cas: 1,
                errors: 0,
                forwarded: 3,
            },
        }
    }

    pub(crate) fn example() -> NodeInfo {
        node(
            1,
            vec![
                group(0, Role::Leader, Some("127.0.0.1:7001"), Some((3, 17))),
                group(2, Role::Follower, Some("127.0.0.1:7002"), Some((3, 17))),
                group(1, Role::Looking, None, None),
            ],
        )
    }
}
