//! Time as components see it.
//!
//! Components never read the system clock: they ask their context for [`Time`], which the
//! threaded runtime takes from a monotonic clock and the simulator from its virtual clock.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, counted from the start of the runtime that owns the component.
///
/// Under the simulator this is virtual time: it only moves when the simulator jumps to the next
/// timer, so a simulated hour takes as long as its events take to process.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time {
    nanos: u64,
}

impl Time {
    /// The start of the runtime.
    pub const ZERO: Time = Time { nanos: 0 };

    /// The time `nanos` nanoseconds after the start of the runtime.
    pub const fn from_nanos(nanos: u64) -> Time {
        Time { nanos }
    }

    /// Nanoseconds since the start of the runtime.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// The time elapsed since the start of the runtime.
    pub const fn since_start(self) -> Duration {
        Duration::from_nanos(self.nanos)
    }

    /// The duration from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    /// Saturates at the far future instead of overflowing: a timer "never" is still ordered.
    fn add(self, rhs: Duration) -> Time {
        let rhs = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Time { nanos: self.nanos.saturating_add(rhs) }
    }
}

impl Sub<Time> for Time {
    type Output = Duration;

    fn sub(self, rhs: Time) -> Duration {
        self.saturating_since(rhs)
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.since_start())
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.since_start();
        write!(f, "{}.{:09}s", d.as_secs(), d.subsec_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_saturates_and_sub_never_underflows() {
        let t = Time::from_nanos(10);
        assert_eq!((t + Duration::from_nanos(5)).as_nanos(), 15);
        assert_eq!((t + Duration::MAX).as_nanos(), u64::MAX);
        assert_eq!(Time::ZERO - t, Duration::ZERO);
        assert_eq!(t - Time::ZERO, Duration::from_nanos(10));
    }
}
