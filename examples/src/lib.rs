//! Runnable examples live in `examples/examples/`; this library holds code they share.
