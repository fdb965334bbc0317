//! The application state the harness keeps per node (every delivered transaction, in order)
//! and its snapshot encoding.

use crate::protocol::Zxid;

/// The application state: every delivered transaction, in order.
pub type AppState = Vec<(Zxid, Vec<u8>)>;

/// The bytes of a snapshot of `state`, read back by [`decode_state`]. Written by hand into a
/// buffer reserved up front: a serializer would write each byte of a payload as an integer,
/// far too slow for states of tens of megabytes in debug builds.
///
/// ```
/// use zab_components::protocol::Zxid;
/// use zab_components::testing::{decode_state, encode_state};
///
/// let state = vec![(Zxid::new(1, 1), b"a".to_vec()), (Zxid::new(1, 2), b"bc".to_vec())];
/// assert_eq!(decode_state(&encode_state(&state)), state);
/// ```
pub fn encode_state(state: &AppState) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(state.iter().map(|(_, p)| p.len() + 20).sum());
    for (zxid, payload) in state {
        bytes.extend_from_slice(&zxid.epoch.0.to_le_bytes());
        bytes.extend_from_slice(&zxid.counter.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(payload);
    }
    bytes
}

/// The state [`encode_state`] wrote.
///
/// # Panics
/// If `bytes` were not written by [`encode_state`].
pub fn decode_state(mut bytes: &[u8]) -> AppState {
    let mut state = Vec::new();
    let take = |n: usize, bytes: &mut &[u8]| {
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        head.to_vec()
    };
    while !bytes.is_empty() {
        let epoch = u64::from_le_bytes(take(8, &mut bytes).try_into().unwrap());
        let counter = u64::from_le_bytes(take(8, &mut bytes).try_into().unwrap());
        let len = u32::from_le_bytes(take(4, &mut bytes).try_into().unwrap()) as usize;
        let payload = take(len, &mut bytes);
        state.push((Zxid::new(epoch, counter), payload));
    }
    state
}
