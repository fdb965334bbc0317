//! The settings of one Zab instance ([`ZabConfig`]) and the network service its messages use.

use std::time::Duration;

use kompics_net::{NodeAddr, Route};

use crate::protocol::{Config, ConfigError, PeerId};

/// The network service number of Zab messages; the instance is the group.
pub const ZAB_SERVICE: u32 = 0x2AB;
/// Settings of one Zab instance.
#[derive(Clone, Debug)]
pub struct ZabConfig {
    /// The replication group (the instance number of the network route).
    pub group: u32,
    /// This node.
    pub me: NodeAddr,
    /// Every voting member, this node included. All members must list the same set.
    pub members: Vec<NodeAddr>,
    /// The tick period: the protocol's timeouts are counted in ticks.
    pub tick: Duration,
    /// How long a disk sync takes, drawn per sync from this range (zero: syncs complete at
    /// once). Lets the simulator model slow disks; real storage takes the time it takes (and a
    /// storage on a log thread, see [`ZabStorage::log_thread`](crate::storage::ZabStorage::log_thread), ignores it).
    pub sync_delay: (Duration, Duration),
    /// The protocol's settings; `id` and `peers` are derived from `me` and `members`.
    pub protocol: Config,
    /// The largest message payload the network carries in one frame
    /// ([`kompics_net::payload_bytes_max`] of its frame limit; by default, of the TCP
    /// transport's default frame). The instance refuses to start when the protocol's
    /// `message_bytes_max` exceeds it: such messages could never be sent.
    pub transport_payload_bytes_max: usize,
}

impl ZabConfig {
    /// Settings for group `group` with these members, ticking every 10 ms (so a session times
    /// out after 50 silent ticks, 500 ms).
    ///
    /// # Panics
    /// If `me` is not among `members`.
    pub fn new(group: u32, me: NodeAddr, members: &[NodeAddr]) -> ZabConfig {
        let mut members = members.to_vec();
        members.sort();
        members.dedup();
        let id = peer_of(&members, me).expect("this node is one of the members");
        let n = members.len() as u64;
        let peers = (1..=n).map(PeerId).collect();
        let mut protocol = Config::new(id, peers);
        // Groups sharing nodes spread their leaders: on equal histories group g prefers the
        // member at position g - 1 (mod n) of the sorted list, so group 0 the highest, as
        // without a preference.
        protocol.preferred_leader = Some(PeerId((u64::from(group) + n - 1) % n + 1));
        ZabConfig {
            group,
            me,
            members,
            tick: Duration::from_millis(10),
            sync_delay: (Duration::ZERO, Duration::ZERO),
            protocol,
            transport_payload_bytes_max: kompics_net::payload_bytes_max(
                kompics_net::FRAME_BYTES_MAX_DEFAULT,
            ),
        }
    }

    /// Checks the protocol's settings, and its byte bounds against the transport's
    /// (`transport_payload_bytes_max`), before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.protocol.clone().validate()?;
        self.protocol.check_transport(self.transport_payload_bytes_max)
    }

    /// The network route of this instance.
    pub fn route(&self) -> Route {
        Route::new(ZAB_SERVICE, self.group)
    }
}

/// Members are numbered by their position in the sorted member list, from 1.
pub(super) fn peer_of(members: &[NodeAddr], addr: NodeAddr) -> Option<PeerId> {
    members.iter().position(|m| *m == addr).map(|i| PeerId(i as u64 + 1))
}
