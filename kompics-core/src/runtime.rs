//! The two runtimes that execute components: threaded and simulated.

pub(crate) mod simulation;
pub(crate) mod threaded;
mod timer_thread;

/// A 64-bit mix (SplitMix64's finaliser): turns a seed and an id into an independent seed.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
