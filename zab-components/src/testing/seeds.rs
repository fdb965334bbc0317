//! Seeded randomness: the harness's generator and the seed list of a randomized sweep.

/// splitmix64, the harness's own copy (the core's generator is private).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The seeds of a randomized sweep: `SIM_SEED=s` alone, else `1..=SIM_SEEDS` (default
/// `default`).
pub fn sweep_seeds(default: u64) -> Vec<u64> {
    sweep_seeds_from(1, default)
}

/// The seeds of a randomized sweep that starts at seed `first`: `SIM_SEED=s` alone, else
/// `SIM_SEEDS` seeds (default `default`) from `first` on.
///
/// ```
/// # std::env::remove_var("SIM_SEED");
/// # std::env::remove_var("SIM_SEEDS");
/// assert_eq!(zab_components::testing::sweep_seeds_from(0, 3), vec![0, 1, 2]);
/// ```
pub fn sweep_seeds_from(first: u64, default: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("SIM_SEED is a number")],
        Err(_) => {
            let count =
                std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
            (first..first + count).collect()
        }
    }
}
