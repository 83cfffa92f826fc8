//! Next-token selection: greedy, or temperature with top-k / top-p, from a seeded PRNG.

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How to pick the next token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Sampling {
    /// Always the most likely token (ties: the lowest id).
    Greedy,
    /// Sample from the softmax at `temperature`, restricted to the `top_k` most likely
    /// (0 = no limit), then to the smallest set whose probability reaches `top_p` (1 = no
    /// limit).
    Sample {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Keep this many candidates at most (0 = all).
        top_k: usize,
        /// Nucleus mass in (0, 1].
        top_p: f32,
    },
}

/// A sampler with its own seeded PRNG (identical draws on every platform).
#[derive(Debug, Clone)]
pub struct Sampler {
    sampling: Sampling,
    rng: Xoshiro256PlusPlus,
}

impl Sampler {
    /// A sampler; `seed` fixes the sequence of draws.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a non-positive temperature or `top_p` outside (0, 1].
    pub fn new(sampling: Sampling, seed: u64) -> Result<Self> {
        if let Sampling::Sample {
            temperature, top_p, ..
        } = sampling
        {
            if !(temperature > 0.0 && temperature.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "temperature must be positive, got {temperature}"
                )));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(Error::InvalidArgument(format!(
                    "top_p must be in (0, 1], got {top_p}"
                )));
            }
        }
        Ok(Self {
            sampling,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        })
    }

    /// How this sampler picks (a GPU backend can pick greedily on the device).
    #[must_use]
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// Picks a token from logits over the vocabulary.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for empty logits.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(Error::InvalidArgument("empty logits".into()));
        }
        let Sampling::Sample {
            temperature,
            top_k,
            top_p,
        } = self.sampling
        else {
            return Ok(greedy(logits));
        };
        let mut idx: Vec<u32> = (0..u32::try_from(logits.len()).unwrap_or(u32::MAX)).collect();
        // NaN logits sort last and get zero weight.
        let key = |i: &u32| {
            let v = logits[*i as usize];
            if v.is_nan() { f32::NEG_INFINITY } else { v }
        };
        idx.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
        if top_k > 0 {
            idx.truncate(top_k.max(1));
        }
        let max = key(&idx[0]);
        let mut probs: Vec<f32> = idx
            .iter()
            .map(|i| ((key(i) - max) / temperature).exp())
            .collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (n, p) in probs.iter().enumerate() {
                acc += p;
                if acc >= top_p {
                    keep = n + 1;
                    break;
                }
            }
            probs.truncate(keep);
            idx.truncate(keep);
        }
        let total: f32 = probs.iter().sum();
        let r = self.uniform() * total;
        let mut acc = 0.0;
        for (p, &i) in probs.iter().zip(&idx) {
            acc += p;
            if r < acc {
                return Ok(i);
            }
        }
        Ok(*idx.last().unwrap_or(&0))
    }

    /// A uniform draw in [0, 1) with 24 bits of precision.
    fn uniform(&mut self) -> f32 {
        #[allow(clippy::cast_precision_loss)]
        let v = (self.rng.next_u32() >> 8) as f32;
        v / 16_777_216.0
    }
}

/// Index of the largest value (lowest index on ties; NaN never wins).
#[must_use]
pub fn greedy(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    u32::try_from(best).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_max() {
        let mut s = Sampler::new(Sampling::Greedy, 0).unwrap();
        assert_eq!(s.sample(&[0.1, 3.0, 2.0, 3.0]).unwrap(), 1);
        assert_eq!(greedy(&[f32::NAN, 1.0]), 1);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_respects_top_k() {
        let logits: Vec<f32> = (0..100u8).map(|i| f32::from(i) / 10.0).collect();
        let cfg = Sampling::Sample {
            temperature: 1.0,
            top_k: 3,
            top_p: 1.0,
        };
        let draw = |seed| {
            let mut s = Sampler::new(cfg, seed).unwrap();
            (0..50)
                .map(|_| s.sample(&logits).unwrap())
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert!(a.iter().all(|&t| t >= 97));
        assert!(a.iter().any(|&t| t != a[0]));
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        let logits = [10.0, 0.0, 0.0, 0.0];
        let mut s = Sampler::new(
            Sampling::Sample {
                temperature: 1.0,
                top_k: 0,
                top_p: 0.5,
            },
            1,
        )
        .unwrap();
        assert!((0..20).all(|_| s.sample(&logits).unwrap() == 0));
    }

    #[test]
    fn bad_parameters_are_rejected() {
        let bad = Sampling::Sample {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        };
        assert!(Sampler::new(bad, 0).is_err());
    }
}
