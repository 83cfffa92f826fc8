//! Running observation normalisation and reward scaling (burn-free).
//!
//! These follow the conventions of the widely used Gym wrappers (`NormalizeObservation`,
//! `NormalizeReward`): statistics are merged batch by batch with Chan's parallel
//! algorithm in `f64`; rewards are divided by the running standard deviation of the
//! discounted return, without subtracting a mean.

use serde::{Deserialize, Serialize};

/// Per-feature running mean and variance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningMeanStd {
    /// Running mean per feature.
    pub mean: Vec<f64>,
    /// Running (population) variance per feature.
    pub var: Vec<f64>,
    /// Effective number of samples merged so far (starts at a tiny epsilon).
    pub count: f64,
}

impl RunningMeanStd {
    /// Statistics for `dim` features: mean 0, variance 1, count ~0.
    #[must_use]
    pub fn new(dim: usize) -> Self {
        Self {
            mean: vec![0.0; dim],
            var: vec![1.0; dim],
            count: 1e-4,
        }
    }

    /// Number of features.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Merge a batch of `rows` (row-major, `rows.len() = n * dim`); rows whose `keep` is
    /// false are skipped (pass `None` to keep all).
    #[allow(clippy::cast_precision_loss)]
    pub fn update(&mut self, rows: &[f32], keep: Option<&[bool]>) {
        let dim = self.dim();
        let n_rows = rows.len() / dim;
        let kept = |r: usize| keep.is_none_or(|k| k[r]);
        let n = (0..n_rows).filter(|&r| kept(r)).count();
        if n == 0 {
            return;
        }
        let nf = n as f64;
        for d in 0..dim {
            let mut sum = 0.0;
            for r in (0..n_rows).filter(|&r| kept(r)) {
                sum += f64::from(rows[r * dim + d]);
            }
            let batch_mean = sum / nf;
            let mut m2 = 0.0;
            for r in (0..n_rows).filter(|&r| kept(r)) {
                let x = f64::from(rows[r * dim + d]) - batch_mean;
                m2 += x * x;
            }
            let delta = batch_mean - self.mean[d];
            let total = self.count + nf;
            self.mean[d] += delta * nf / total;
            let m_a = self.var[d] * self.count;
            self.var[d] = (m_a + m2 + delta * delta * self.count * nf / total) / total;
        }
        self.count += nf;
    }
}

/// Observation normaliser: `clip((x - mean) / sqrt(max(var, floor²) + eps), -clip, clip)`.
///
/// The standard-deviation floor (`std_floor`, in the feature's raw units) keeps a feature
/// that happened to be (nearly) constant while the statistics were gathered — a
/// population size during a run at one population, a flag that never fired — from being
/// divided by ~1e-4 and clipped to `±clip` the first time it moves: a change of `Δ` is
/// at most `Δ / std_floor` standard deviations. Which rows enter the statistics is the
/// learner's choice ([`RunningMeanStd::update`]'s `keep`): PPO passes the agents the
/// environment marks active, so features that are zero for idle agents are scaled by
/// the rows that decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObsNormalizer {
    /// The running statistics.
    pub stats: RunningMeanStd,
    /// Added to the (floored) variance before the square root.
    pub epsilon: f64,
    /// Normalised values are clipped to `[-clip, clip]`.
    pub clip: f64,
    /// Smallest standard deviation a feature is divided by (raw units).
    pub std_floor: f64,
}

impl ObsNormalizer {
    /// A normaliser for `dim` features.
    #[must_use]
    pub fn new(dim: usize, clip: f64, std_floor: f64) -> Self {
        Self {
            stats: RunningMeanStd::new(dim),
            epsilon: 1e-8,
            clip,
            std_floor,
        }
    }

    /// The variance each feature is divided by the root of (before `epsilon`): the
    /// running variance, floored at `std_floor²`. Exported policy files store these, so
    /// their `(x - mean) / sqrt(var + epsilon)` is exactly [`ObsNormalizer::normalize`].
    #[must_use]
    pub fn floored_var(&self) -> Vec<f64> {
        let floor = self.std_floor * self.std_floor;
        self.stats.var.iter().map(|&v| v.max(floor)).collect()
    }

    /// Normalise `raw` (row-major rows of `dim`) into `out` with the current statistics.
    #[allow(clippy::cast_possible_truncation)]
    pub fn normalize(&self, raw: &[f32], out: &mut [f32]) {
        let dim = self.stats.dim();
        let scale: Vec<f32> = self
            .floored_var()
            .iter()
            .map(|v| (1.0 / (v + self.epsilon).sqrt()) as f32)
            .collect();
        let mean: Vec<f32> = self.stats.mean.iter().map(|&m| m as f32).collect();
        let clip = self.clip as f32;
        for (row_in, row_out) in raw.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            for d in 0..dim {
                row_out[d] = ((row_in[d] - mean[d]) * scale[d]).clamp(-clip, clip);
            }
        }
    }
}

/// Reward scaler: divides each reward stream by the running standard deviation of its
/// discounted return (one stream per agent), then clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardScaler {
    /// Running statistics of the discounted return (one feature).
    pub stats: RunningMeanStd,
    /// Discounted return so far, per reward stream.
    pub returns: Vec<f64>,
    /// Discount used for the return.
    pub gamma: f64,
    /// Scaled rewards are clipped to `[-clip, clip]`.
    pub clip: f64,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl RewardScaler {
    /// A scaler for `streams` reward streams.
    #[must_use]
    pub fn new(streams: usize, gamma: f64, clip: f64) -> Self {
        Self {
            stats: RunningMeanStd::new(1),
            returns: vec![0.0; streams],
            gamma,
            clip,
            epsilon: 1e-8,
        }
    }

    /// Scale `rewards` in place (one per stream); `dones[s]` ends stream `s`'s return.
    #[allow(clippy::cast_possible_truncation)]
    pub fn scale(&mut self, rewards: &mut [f32], dones: &[bool]) {
        let mut rets = Vec::with_capacity(rewards.len());
        for (ret, &r) in self.returns.iter_mut().zip(rewards.iter()) {
            *ret = *ret * self.gamma + f64::from(r);
            rets.push(*ret as f32);
        }
        self.stats.update(&rets, None);
        let std = (self.stats.var[0] + self.epsilon).sqrt();
        for r in rewards.iter_mut() {
            *r = (f64::from(*r) / std).clamp(-self.clip, self.clip) as f32;
        }
        for (ret, &d) in self.returns.iter_mut().zip(dones) {
            if d {
                *ret = 0.0;
            }
        }
    }

    /// A reward already scaled by [`RewardScaler::scale`] with a late correction
    /// (`late`, unscaled) added at the current scale and clipped again. The statistics
    /// do not move: the correction is a revision of a reward they have already seen.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)]
    pub fn add_late(&self, scaled: f32, late: f32) -> f32 {
        let std = (self.stats.var[0] + self.epsilon).sqrt();
        (f64::from(scaled) + f64::from(late) / std).clamp(-self.clip, self.clip) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_constant_in_training_does_not_explode_when_it_moves() {
        // Feature 0 is constant (a population size at one population), feature 1 varies.
        let rows: Vec<f32> = (0..500)
            .flat_map(|i| [0.5, ((i * 7) % 11) as f32 * 0.1])
            .collect();
        let mut norm = ObsNormalizer::new(2, 10.0, 0.1);
        norm.stats.update(&rows, None);
        assert!(norm.stats.var[0] < 1e-6, "constant feature has no variance");
        let mut out = [0.0f32; 2];
        norm.normalize(&[1.0, 0.5], &mut out);
        // 0.5 away from its training value is 5 floored standard deviations, not ±clip.
        assert!((out[0] - 5.0).abs() < 1e-3, "{out:?}");
        // Without the floor it would have been clipped at the limit.
        let unfloored = ObsNormalizer {
            std_floor: 0.0,
            ..norm.clone()
        };
        unfloored.normalize(&[1.0, 0.5], &mut out);
        assert!((out[0] - 10.0).abs() < 1e-6, "{out:?}");
        // A varying feature with std above the floor is untouched by it.
        let var1 = norm.floored_var()[1];
        assert!((var1 - norm.stats.var[1]).abs() < 1e-12);
    }

    #[test]
    fn statistics_over_kept_rows_only() {
        // A zero-inflated feature: 0 on idle rows (90%), spread on active ones.
        let mut rows = Vec::new();
        let mut keep = Vec::new();
        for i in 0..1000 {
            let active = i % 10 == 0;
            rows.push(if active { 1.0 + (i % 7) as f32 } else { 0.0 });
            keep.push(active);
        }
        let mut all = RunningMeanStd::new(1);
        all.update(&rows, None);
        let mut act = RunningMeanStd::new(1);
        act.update(&rows, Some(&keep));
        assert!((act.mean[0] - 4.0).abs() < 0.2, "{}", act.mean[0]);
        assert!(all.mean[0] < 0.5, "{}", all.mean[0]);
        // Over all rows, a busy active value sits many std out; over active rows it does not.
        let z = |s: &RunningMeanStd| (7.0 - s.mean[0]) / s.var[0].sqrt();
        assert!(z(&all) > 3.0 && z(&act) < 2.0, "{} {}", z(&all), z(&act));
    }

    #[test]
    fn running_stats_match_batch_stats() {
        let xs: Vec<f32> = (0..1000)
            .map(|i| ((i * 37) % 101) as f32 * 0.1 - 3.0)
            .collect();
        let mut rms = RunningMeanStd::new(1);
        for chunk in xs.chunks(64) {
            rms.update(chunk, None);
        }
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = xs
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            (rms.mean[0] - mean).abs() < 1e-3,
            "{} vs {mean}",
            rms.mean[0]
        );
        assert!(
            (rms.var[0] - var).abs() / var < 1e-3,
            "{} vs {var}",
            rms.var[0]
        );
    }
}
