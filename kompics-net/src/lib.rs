//! kompics-net: the Network port of the Kompics component model.
//!
//! This crate will hold the `Network` port (send a message to a node; deliveries and session
//! events back), a TCP implementation on mio (the only code in the workspace that imports mio)
//! and a simulated network with latency, loss, reordering and partitions for the deterministic
//! simulator. See `shared/DESIGN.md` (kompics-net).

pub mod address;
mod bytes;
pub mod frame;
pub mod message;

pub use address::NodeAddr;
pub use frame::{Frame, FrameDecoder, FrameError, FrameKind, WIRE_VERSION};
pub use message::{CodecError, NetMessage, Route};
