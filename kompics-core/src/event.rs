//! Events: the values that flow through ports.

use std::fmt::Debug;

/// Anything that can travel through a port.
///
/// An event is cloned once per channel it goes down (Kompics' publish semantics), sent to another
/// thread, and printed in simulator traces, hence the bounds. The trait is implemented for every
/// type that meets them; there is nothing to derive.
pub trait Event: Clone + Send + Debug + 'static {}

impl<T: Clone + Send + Debug + 'static> Event for T {}
