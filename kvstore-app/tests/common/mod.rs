//! What kvstore-app's simulated clients share: how a reply enters a client history.

use kvstore_app::linearizability::{ClientId, HistoryOp};
use kvstore_app::replica::KvError;
use kvstore_app::replica::KvReply;
use kvstore_app::store::Op;

/// The history entry of `client`'s operation `op`, invoked at `invoke` and answered by `reply`
/// at `now`: returned, unknown (it may or may not have happened), or none (an error that says
/// it did not happen, so it is no part of the history).
pub fn history_entry(
    client: ClientId,
    invoke: u64,
    now: u64,
    op: Op,
    reply: &KvReply,
) -> Option<HistoryOp> {
    match &reply.result {
        Ok(result) => Some(HistoryOp::returned(client, invoke, now, op, result.clone())),
        Err(KvError::OutcomeUnknown { .. }) => Some(HistoryOp::unknown(client, invoke, op)),
        Err(
            KvError::TryAgain { .. }
            | KvError::Busy { .. }
            | KvError::TooLarge { .. }
            | KvError::OutOfMemory,
        ) => None,
    }
}
