//! Log entries and snapshots: the data that Zab replicates.

use serde::{Deserialize, Serialize};

use super::ids::Zxid;

/// One transaction of the history: its zxid and the application's opaque payload.
///
/// Payloads must be idempotent state updates (zab.md §1): a transaction may be applied on top of a
/// state that already contains it only through a snapshot install, never twice otherwise, but the
/// application should not depend on that.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where the entry sits in the total order.
    pub zxid: Zxid,
    /// The transaction, opaque to Zab (one byte string on the wire).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// The application's state after delivering every transaction up to and including `zxid`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last transaction the state contains.
    pub zxid: Zxid,
    /// The state, serialized by the application (one byte string on the wire).
    #[serde(with = "serde_bytes")]
    pub state: Vec<u8>,
}

impl Snapshot {
    /// Up to `bytes_max` bytes of the state from `offset` on (none past its end): what a
    /// storage's reader returns for `LogReader::read_snapshot`.
    pub fn state_piece(&self, offset: u64, bytes_max: usize) -> &[u8] {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.state.len());
        let end = start.saturating_add(bytes_max).min(self.state.len());
        &self.state[start..end]
    }
}

impl Entry {
    /// An upper bound on this entry's encoded size inside a message.
    pub fn encoded_len_max(&self) -> usize {
        super::message::Message::ENTRY_OVERHEAD_BYTES_MAX + self.payload.len()
    }

    /// An entry from its parts.
    pub fn new(zxid: Zxid, payload: impl Into<Vec<u8>>) -> Entry {
        Entry { zxid, payload: payload.into() }
    }
}
