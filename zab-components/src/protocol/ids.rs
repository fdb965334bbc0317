//! Identifiers: peers, epochs, zxids and local proposal ids, each its own newtype.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a voting member (ZooKeeper's `sid`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct PeerId(pub u64);

/// The number of a leadership period. At most one leader establishes a given epoch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

/// A transaction id: the epoch that proposed it and its position within that epoch.
///
/// zxids are ordered by `(epoch, counter)`. Counter 0 is never used by a proposal: the first
/// proposal of an epoch has counter 1, so `Zxid { epoch, counter: 0 }` sorts before every
/// transaction of that epoch. The zxid is a struct rather than a packed `u64` so that no code can
/// overflow a counter into the epoch bits (ZOOKEEPER-1277).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Zxid {
    /// The epoch of the leader that proposed the transaction. Compared first.
    pub epoch: Epoch,
    /// The position of the transaction in its epoch, starting at 1.
    pub counter: u64,
}

/// The local id of a proposal, given out by [`crate::protocol::ZabNode::propose`]. Unique per
/// node instance; it lets the caller match the proposal's outcome to its request.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ProposalId(pub u64);

/// The local id of a read barrier, given out by [`crate::protocol::ZabNode::read`]. Unique per
/// node instance; it lets the caller match [`crate::protocol::Action::ReadReady`] (or
/// `ReadFailed`) to its read.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ReadId(pub u64);

impl Zxid {
    /// The zxid before every transaction: the state of an empty history.
    pub const ZERO: Zxid = Zxid { epoch: Epoch(0), counter: 0 };

    /// A zxid from its parts.
    pub const fn new(epoch: u64, counter: u64) -> Zxid {
        Zxid { epoch: Epoch(epoch), counter }
    }

    /// Whether a history may hold `self` right after `previous`: the next counter of the same
    /// epoch, or the first transaction of a later epoch. Every epoch's leader numbers its
    /// proposals 1, 2, 3, ... and every history is a sequence of prefixes of those, so anything
    /// else is a hole, which must never be adopted or passed on (ZOOKEEPER-4925, -2325).
    pub(crate) fn follows(self, previous: Zxid) -> bool {
        if self.epoch == previous.epoch {
            previous.counter.checked_add(1) == Some(self.counter)
        } else {
            self.epoch > previous.epoch && self.counter == 1
        }
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer{}", self.0)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.epoch.0, self.counter)
    }
}

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proposal{}", self.0)
    }
}

impl fmt::Display for ReadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "read{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxids_order_by_epoch_then_counter() {
        assert!(Zxid::new(1, 9) < Zxid::new(2, 1));
        assert!(Zxid::new(2, 1) < Zxid::new(2, 2));
        assert!(Zxid::ZERO < Zxid::new(0, 1));
        assert!(Zxid::new(1, u64::MAX) < Zxid::new(2, 0));
    }
}
