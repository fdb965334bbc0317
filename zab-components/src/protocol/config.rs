//! The node's configuration: who it is, who votes, and every timeout and bound, in ticks and counts.

use std::collections::BTreeSet;
use std::fmt;

use super::ids::PeerId;
use super::message::Message;

/// Configuration of one [`crate::protocol::ZabNode`]. Build it with [`Config::new`], adjust the
/// fields, and let [`crate::protocol::ZabNode::new`] validate it (or call [`Config::validate`]).
///
/// Time is counted in ticks: the driver calls `tick()` at a fixed period (e.g. 50–100 ms) and
/// every timeout below is a number of those calls. The ZooKeeper names are given for each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id. Must be one of `peers`.
    pub id: PeerId,
    /// The voting members, this node included. Quorums are strict majorities of this set.
    pub peers: Vec<PeerId>,
    /// Discovery plus synchronization must finish within this many ticks, on the leader (from its
    /// election until a quorum acknowledged NEWLEADER) and on a follower (from its election
    /// until UPTODATE). ZooKeeper's `initLimit`.
    pub sync_timeout_ticks: u64,
    /// Silence after which a follower gives up on its leader, and a leader stops counting a
    /// follower towards its quorum. ZooKeeper's `syncLimit`.
    pub session_timeout_ticks: u64,
    /// How often an established leader pings its followers. Must be below the session timeout.
    pub heartbeat_interval_ticks: u64,
    /// How long a looking node keeps listening for a better vote once a quorum agrees with its
    /// own (FLE's `finalizeWait`). 0 decides at once.
    pub finalize_wait_ticks: u64,
    /// First interval between resent election notifications; it doubles while no election ends.
    pub notification_backoff_min_ticks: u64,
    /// Largest interval between resent election notifications.
    pub notification_backoff_max_ticks: u64,
    /// Proposals a leader keeps uncommitted at once (and forwarded proposals a follower keeps
    /// waiting at once) before `propose` answers [`crate::protocol::ProposeError::TooManyOutstanding`].
    pub outstanding_proposals_max: usize,
    /// Entries in one PROPOSAL or synchronization message, and in one `Persist` action.
    pub batch_entries_max: usize,
    /// The largest message this node builds, in encoded bytes ([`Message::encoded_len_max`]):
    /// proposal batches, synchronization runs and snapshot chunks are cut to fit. It must not
    /// exceed what the transport carries in one frame ([`Config::check_transport`]).
    ///
    /// [`Message::encoded_len_max`]: crate::protocol::Message::encoded_len_max
    pub message_bytes_max: usize,
    /// The largest proposal payload [`crate::protocol::ZabNode::propose`] accepts (larger ones
    /// get [`crate::protocol::ProposeError::TooLarge`]). A proposal with the largest payload
    /// must fit one message, so this is at most `message_bytes_max` less the per-message
    /// overhead.
    pub payload_bytes_max: usize,
    /// Bytes of snapshot state in one SNAP chunk message.
    pub snapshot_chunk_bytes_max: usize,
    /// Synchronization data (snapshot chunks and history) a leader keeps in flight to one
    /// learner before it waits for the learner's SYNCACKs: the flow-control window. Heartbeats
    /// to a learner being synchronized queue behind at most this much.
    pub sync_window_bytes: usize,
    /// Payload bytes of delivered entries the node keeps in memory (the newest). Older
    /// payloads are dropped from memory (their zxids stay) and read back from the log on disk
    /// when a follower that far behind must be caught up. Undelivered entries always stay.
    pub log_cache_bytes: usize,
    /// Ask for a snapshot after about this many delivered transactions (randomized between half
    /// and all of it, so that replicas do not snapshot together). 0 never asks.
    pub snapshot_entries_trigger: u64,
    /// Ask for a snapshot once the payloads delivered since the last one add up to about this
    /// many bytes (randomized like the entry trigger), whatever their number. This bounds the
    /// log a node keeps in memory and replays on recovery when values are large. 0 never asks.
    pub snapshot_bytes_trigger: u64,
    /// The largest counter a zxid may carry. When a leader has used it, it steps down once its
    /// proposals commit, so that the next leader starts a new epoch (ZOOKEEPER-1277). Tests lower it.
    pub counter_max: u64,
    /// Seed of the node's own pseudo-random generator (jitter, snapshot trigger).
    pub seed: u64,
    /// Among candidates with equally recent histories, the election prefers this peer, then
    /// the highest id (`None`: the highest id). History always comes first, so this changes
    /// only who wins ties; every peer of an ensemble must name the same one. Several groups
    /// sharing nodes name different peers to spread their leaders (and their load).
    pub preferred_leader: Option<PeerId>,
    /// Distinguishes this start of the node from its earlier ones. Registrations with a leader
    /// carry it, so that the leader's answer to a registration of an earlier incarnation (still
    /// queued for the peer when it restarted) is never taken for an answer to this one. A
    /// driver sets it from a random source (the Zab component does); 0 by default.
    pub incarnation: u64,
}

/// Default for [`Config::message_bytes_max`]: 8 MiB, half of the TCP transport's default
/// frame limit.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 8 << 20;
/// Default for [`Config::payload_bytes_max`]: 4 MiB.
pub const PAYLOAD_BYTES_MAX_DEFAULT: usize = 4 << 20;

/// Why a [`Config`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `peers` does not contain `id`.
    SelfNotAPeer {
        /// The configured id.
        id: PeerId,
    },
    /// A peer is listed twice.
    DuplicatePeer {
        /// The repeated id.
        peer: PeerId,
    },
    /// A count that must be positive is zero.
    Zero {
        /// The field's name.
        field: &'static str,
    },
    /// The heartbeat would not arrive before the session timeout.
    HeartbeatNotBelowSessionTimeout {
        /// `heartbeat_interval_ticks`.
        heartbeat_interval_ticks: u64,
        /// `session_timeout_ticks`.
        session_timeout_ticks: u64,
    },
    /// `preferred_leader` is not among the peers.
    PreferredNotAPeer {
        /// The configured preference.
        peer: PeerId,
    },
    /// A byte bound cannot be met: `field` (`value`) must be at most `limit`, which `reason`
    /// explains.
    BytesAbove {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: usize,
        /// The largest value that works.
        limit: usize,
        /// Where the limit comes from.
        reason: &'static str,
    },
    /// A byte bound is too small: `field` (`value`) must be at least `limit`.
    BytesBelow {
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: usize,
        /// The smallest value that works.
        limit: usize,
        /// Where the limit comes from.
        reason: &'static str,
    },
    /// The backoff range is empty.
    BackoffRange {
        /// `notification_backoff_min_ticks`.
        min: u64,
        /// `notification_backoff_max_ticks`.
        max: u64,
    },
}

impl Config {
    /// The default of [`Config::snapshot_entries_trigger`].
    pub const SNAPSHOT_ENTRIES_DEFAULT: u64 = 100_000;
    /// The default of [`Config::snapshot_bytes_trigger`].
    pub const SNAPSHOT_BYTES_DEFAULT: u64 = 256 << 20;

    /// A configuration with ZooKeeper-like defaults for a tick of about 100 ms: sync timeout
    /// 100 ticks, session timeout 50, heartbeat 10, finalize wait 2, backoff 2..600 ticks, 1000
    /// outstanding proposals, batches of 1000 entries, messages of at most 8 MiB, payloads of
    /// at most 4 MiB, 1 MiB snapshot chunks, a 16 MiB synchronization window, 64 MiB of delivered payloads cached, a snapshot every
    /// ~100 000 transactions or ~256 MiB of payloads, and the seed taken from the id.
    pub fn new(id: PeerId, peers: Vec<PeerId>) -> Config {
        Config {
            id,
            peers,
            sync_timeout_ticks: 100,
            session_timeout_ticks: 50,
            heartbeat_interval_ticks: 10,
            finalize_wait_ticks: 2,
            notification_backoff_min_ticks: 2,
            notification_backoff_max_ticks: 600,
            outstanding_proposals_max: 1000,
            batch_entries_max: 1000,
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            payload_bytes_max: PAYLOAD_BYTES_MAX_DEFAULT,
            snapshot_chunk_bytes_max: 1 << 20,
            sync_window_bytes: 16 << 20,
            log_cache_bytes: 64 << 20,
            snapshot_entries_trigger: Config::SNAPSHOT_ENTRIES_DEFAULT,
            snapshot_bytes_trigger: Config::SNAPSHOT_BYTES_DEFAULT,
            counter_max: u64::MAX,
            seed: id.0,
            preferred_leader: None,
            incarnation: 0,
        }
    }

    /// Checks the relations between the fields and returns the config unchanged if they hold.
    pub fn validate(self) -> Result<Config, ConfigError> {
        if !self.peers.contains(&self.id) {
            return Err(ConfigError::SelfNotAPeer { id: self.id });
        }
        let mut seen = BTreeSet::new();
        for peer in &self.peers {
            if !seen.insert(*peer) {
                return Err(ConfigError::DuplicatePeer { peer: *peer });
            }
        }
        let positive: [(&'static str, u64); 11] = [
            ("sync_timeout_ticks", self.sync_timeout_ticks),
            ("session_timeout_ticks", self.session_timeout_ticks),
            ("heartbeat_interval_ticks", self.heartbeat_interval_ticks),
            ("notification_backoff_min_ticks", self.notification_backoff_min_ticks),
            ("outstanding_proposals_max", self.outstanding_proposals_max as u64),
            ("batch_entries_max", self.batch_entries_max as u64),
            ("snapshot_chunk_bytes_max", self.snapshot_chunk_bytes_max as u64),
            ("message_bytes_max", self.message_bytes_max as u64),
            ("payload_bytes_max", self.payload_bytes_max as u64),
            ("sync_window_bytes", self.sync_window_bytes as u64),
            ("counter_max", self.counter_max),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Zero { field });
        }
        if self.heartbeat_interval_ticks >= self.session_timeout_ticks {
            return Err(ConfigError::HeartbeatNotBelowSessionTimeout {
                heartbeat_interval_ticks: self.heartbeat_interval_ticks,
                session_timeout_ticks: self.session_timeout_ticks,
            });
        }
        if let Some(peer) = self.preferred_leader.filter(|p| !self.peers.contains(p)) {
            return Err(ConfigError::PreferredNotAPeer { peer });
        }
        self.check_bytes()?;
        if self.notification_backoff_min_ticks > self.notification_backoff_max_ticks {
            return Err(ConfigError::BackoffRange {
                min: self.notification_backoff_min_ticks,
                max: self.notification_backoff_max_ticks,
            });
        }
        Ok(self)
    }

    /// The relations between the byte bounds: the largest proposal and the largest snapshot
    /// chunk each fit one message, and the flow-control window holds at least one message.
    fn check_bytes(&self) -> Result<(), ConfigError> {
        let room = self.message_bytes_max.saturating_sub(Message::OVERHEAD_BYTES_MAX);
        let payload_limit = room.saturating_sub(Message::ENTRY_OVERHEAD_BYTES_MAX);
        if self.payload_bytes_max > payload_limit {
            return Err(ConfigError::BytesAbove {
                field: "payload_bytes_max",
                value: self.payload_bytes_max,
                limit: payload_limit,
                reason: "a proposal of the largest payload must fit one message of \
                         message_bytes_max",
            });
        }
        if self.snapshot_chunk_bytes_max > room {
            return Err(ConfigError::BytesAbove {
                field: "snapshot_chunk_bytes_max",
                value: self.snapshot_chunk_bytes_max,
                limit: room,
                reason: "a snapshot chunk must fit one message of message_bytes_max",
            });
        }
        if self.sync_window_bytes < self.message_bytes_max {
            return Err(ConfigError::BytesBelow {
                field: "sync_window_bytes",
                value: self.sync_window_bytes,
                limit: self.message_bytes_max,
                reason: "the synchronization window must hold one message of message_bytes_max",
            });
        }
        Ok(())
    }

    /// Checks that every message this configuration lets the node build fits what the
    /// transport carries: `transport_payload_bytes_max` is the largest message payload the
    /// transport sends (derived from its frame limit). A node whose messages
    /// could exceed it would lose them; refuse such a configuration before starting.
    pub fn check_transport(&self, transport_payload_bytes_max: usize) -> Result<(), ConfigError> {
        if self.message_bytes_max > transport_payload_bytes_max {
            return Err(ConfigError::BytesAbove {
                field: "message_bytes_max",
                value: self.message_bytes_max,
                limit: transport_payload_bytes_max,
                reason: "the transport's frame limit leaves this much room for a message",
            });
        }
        Ok(())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::SelfNotAPeer { id } => write!(f, "{id} is not among the peers"),
            ConfigError::DuplicatePeer { peer } => write!(f, "{peer} is listed twice"),
            ConfigError::Zero { field } => write!(f, "{field} must be positive"),
            ConfigError::HeartbeatNotBelowSessionTimeout {
                heartbeat_interval_ticks,
                session_timeout_ticks,
            } => write!(
                f,
                "heartbeat_interval_ticks ({heartbeat_interval_ticks}) must be below \
                 session_timeout_ticks ({session_timeout_ticks})"
            ),
            ConfigError::PreferredNotAPeer { peer } => {
                write!(f, "the preferred leader {peer} is not among the peers")
            }
            ConfigError::BytesAbove { field, value, limit, reason } => {
                write!(f, "{field} ({value}) must be at most {limit}: {reason}")
            }
            ConfigError::BytesBelow { field, value, limit, reason } => {
                write!(f, "{field} ({value}) must be at least {limit}: {reason}")
            }
            ConfigError::BackoffRange { min, max } => {
                write!(f, "notification backoff min ({min}) exceeds max ({max})")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preferred_leader_must_be_a_peer() {
        let mut config = Config::new(PeerId(1), vec![PeerId(1), PeerId(2)]);
        config.preferred_leader = Some(PeerId(2));
        assert!(config.clone().validate().is_ok());
        config.preferred_leader = Some(PeerId(3));
        let error = config.validate().unwrap_err();
        assert_eq!(error, ConfigError::PreferredNotAPeer { peer: PeerId(3) });
        assert!(error.to_string().contains("preferred leader"));
    }

    fn peers() -> Vec<PeerId> {
        vec![PeerId(1), PeerId(2), PeerId(3)]
    }

    #[test]
    fn defaults_are_valid() {
        assert!(Config::new(PeerId(1), peers()).validate().is_ok());
    }

    #[test]
    fn byte_bounds_must_fit_one_message_and_the_transport() {
        let mut c = Config::new(PeerId(1), peers());
        c.payload_bytes_max = c.message_bytes_max;
        let error = c.clone().validate().unwrap_err();
        assert!(matches!(error, ConfigError::BytesAbove { field: "payload_bytes_max", .. }));
        assert!(error.to_string().contains("message_bytes_max"), "{error}");
        let mut c = Config::new(PeerId(1), peers());
        c.snapshot_chunk_bytes_max = c.message_bytes_max;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::BytesAbove { field: "snapshot_chunk_bytes_max", .. })
        ));
        let mut c = Config::new(PeerId(1), peers());
        c.sync_window_bytes = c.message_bytes_max - 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::BytesBelow { field: "sync_window_bytes", .. })
        ));
        // The largest payload that fits is accepted.
        let mut c = Config::new(PeerId(1), peers());
        c.payload_bytes_max =
            c.message_bytes_max - Message::OVERHEAD_BYTES_MAX - Message::ENTRY_OVERHEAD_BYTES_MAX;
        let c = c.validate().unwrap();
        assert_eq!(c.check_transport(c.message_bytes_max), Ok(()));
        let error = c.check_transport(c.message_bytes_max - 1).unwrap_err();
        assert!(error.to_string().contains("frame limit"), "{error}");
    }

    #[test]
    fn refuses_self_not_a_peer() {
        let err = Config::new(PeerId(9), peers()).validate().unwrap_err();
        assert_eq!(err, ConfigError::SelfNotAPeer { id: PeerId(9) });
    }

    #[test]
    fn refuses_duplicates_zeroes_and_bad_relations() {
        let mut c = Config::new(PeerId(1), vec![PeerId(1), PeerId(1)]);
        assert_eq!(c.clone().validate(), Err(ConfigError::DuplicatePeer { peer: PeerId(1) }));
        c.peers = peers();
        c.batch_entries_max = 0;
        assert_eq!(c.clone().validate(), Err(ConfigError::Zero { field: "batch_entries_max" }));
        c.batch_entries_max = 1;
        c.heartbeat_interval_ticks = c.session_timeout_ticks;
        assert!(matches!(
            c.clone().validate(),
            Err(ConfigError::HeartbeatNotBelowSessionTimeout { .. })
        ));
        c.heartbeat_interval_ticks = 1;
        c.notification_backoff_min_ticks = 10;
        c.notification_backoff_max_ticks = 5;
        assert_eq!(c.validate(), Err(ConfigError::BackoffRange { min: 10, max: 5 }));
    }
}
