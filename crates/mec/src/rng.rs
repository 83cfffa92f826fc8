//! Seeded, portable randomness.
//!
//! Every draw goes through [`SimRng`]: a xoshiro256++ generator plus samplers written on
//! top of the `libm` crate, so the same seed gives bit-identical trajectories on every
//! platform (x86-64, aarch64, wasm32). We do not use `rand_distr` here because its
//! samplers switch to the platform's `std` math as soon as any crate in the build turns
//! on `num-traits/std`, and platform `exp`/`ln` differ in the last bit between glibc
//! and the wasm build.

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The simulator's random number generator.
#[derive(Debug, Clone)]
pub struct SimRng {
    inner: Xoshiro256PlusPlus,
}

impl SimRng {
    /// A generator seeded from a 64-bit seed (SplitMix64 expansion).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }

    /// Next raw 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next_u64() >> 11) as f64;
        x * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `(0, 1]`, safe for logarithms.
    pub fn uniform_open0(&mut self) -> f64 {
        1.0 - self.uniform()
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// A pair of independent standard normals (Marsaglia's polar method: one `log` and
    /// one `sqrt`, no trigonometry).
    pub fn normal_pair(&mut self) -> (f64, f64) {
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = libm::sqrt(-2.0 * libm::log(s) / s);
                return (u * f, v * f);
            }
        }
    }

    /// Poisson draw by Knuth's product method, given `exp(-lambda)` precomputed.
    /// Meant for the small rates of query arrivals (validated ≤ 30 per slot).
    pub fn poisson_with_limit(&mut self, exp_neg_lambda: f64) -> u32 {
        let mut k = 0u32;
        let mut p = self.uniform_open0();
        while p > exp_neg_lambda {
            k += 1;
            p *= self.uniform_open0();
        }
        k
    }

    /// Log-normal draw with the given *mean* and log-space standard deviation `sigma`.
    pub fn lognormal_mean(&mut self, mean: f64, sigma: f64) -> f64 {
        let mu = libm::log(mean) - 0.5 * sigma * sigma;
        let (z, _) = self.normal_pair();
        libm::exp(mu + sigma * z)
    }
}

/// Mix a seed with a stream index (SplitMix64 finaliser) to derive independent seeds.
#[must_use]
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed
        ^ stream
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_in_range_and_deterministic() {
        let mut a = SimRng::new(42);
        let mut b = SimRng::new(42);
        for _ in 0..1000 {
            let x = a.uniform();
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x.to_bits(), b.uniform().to_bits());
        }
    }

    #[test]
    fn poisson_mean_matches_rate() {
        let mut r = SimRng::new(1);
        let lambda: f64 = 0.7;
        let l = libm::exp(-lambda);
        let n = 200_000;
        let sum: u64 = (0..n).map(|_| u64::from(r.poisson_with_limit(l))).sum();
        #[allow(clippy::cast_precision_loss)]
        let mean = sum as f64 / f64::from(n);
        assert!((mean - lambda).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn lognormal_mean_matches() {
        let mut r = SimRng::new(3);
        let n = 200_000;
        let mean = (0..n).map(|_| r.lognormal_mean(128.0, 0.5)).sum::<f64>() / f64::from(n);
        assert!((mean - 128.0).abs() < 1.5, "mean {mean}");
    }

    #[test]
    fn normal_moments() {
        let mut r = SimRng::new(9);
        let n = 100_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let (a, b) = r.normal_pair();
            s += a + b;
            s2 += a * a + b * b;
        }
        let m = s / f64::from(2 * n);
        let v = s2 / f64::from(2 * n) - m * m;
        assert!(m.abs() < 0.01 && (v - 1.0).abs() < 0.02, "mean {m} var {v}");
    }

    #[test]
    fn derived_seeds_differ() {
        assert_ne!(derive_seed(1, 0), derive_seed(1, 1));
        assert_ne!(derive_seed(1, 0), derive_seed(2, 0));
    }
}
