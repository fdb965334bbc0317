//! How a simulated client's reply enters its history.

use kvstore_app::ports::{KvError, KvReply};
use kvstore_app::store::Op;
use kvstore_app::tools::linearizability::{ClientId, HistoryOp};

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
