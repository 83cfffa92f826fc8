//! The environment-independent parts of `edgewise experiment`: presets, confidence
//! intervals over seeds, learning-curve bands and steps-to-threshold.
//!
//! The app (native/) wires these to the MEC simulator and its baselines; nothing here
//! knows a simulator.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A named experiment size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Minutes on two cores: 3 training seeds at one population, evaluated on all.
    Quick,
    /// Hours: 5 seeds, training at every population, longer training.
    Full,
}

impl Preset {
    /// Every preset, in order.
    pub const ALL: [Self; 2] = [Self::Quick, Self::Full];

    /// The name used on the command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quick => "quick",
            Self::Full => "full",
        }
    }

    /// What the preset runs.
    #[must_use]
    pub fn plan(self) -> ExperimentPlan {
        match self {
            Self::Quick => ExperimentPlan {
                preset: self,
                seeds: vec![1, 2, 3],
                train_populations: vec![50],
                eval_populations: vec![10, 20, 50, 100],
                env_steps: 40_960,
                num_envs: 4,
                eval_seeds: (0..5).map(|i| 10_000 + i).collect(),
            },
            Self::Full => ExperimentPlan {
                preset: self,
                seeds: vec![1, 2, 3, 4, 5],
                train_populations: vec![10, 20, 50, 100],
                eval_populations: vec![10, 20, 50, 100],
                env_steps: 204_800,
                num_envs: 4,
                eval_seeds: (0..10).map(|i| 10_000 + i).collect(),
            },
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown preset name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown preset {0:?}: expected one of quick, full")]
pub struct UnknownPreset(pub String);

impl FromStr for Preset {
    type Err = UnknownPreset;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPreset(s.to_owned()))
    }
}

/// What an experiment runs. Training seeds and evaluation seeds never overlap: learned
/// policies are evaluated on held-out scenarios.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentPlan {
    /// The preset this plan came from.
    pub preset: Preset,
    /// Training seeds (one run per algorithm, seed and training population).
    pub seeds: Vec<u64>,
    /// Populations trained on.
    pub train_populations: Vec<usize>,
    /// Populations every policy is evaluated on.
    pub eval_populations: Vec<usize>,
    /// Real environment steps per training run (equal for every algorithm).
    pub env_steps: u64,
    /// Environments stepped in parallel while training.
    pub num_envs: usize,
    /// Held-out scenario seeds for evaluation.
    pub eval_seeds: Vec<u64>,
}

/// Why a plan is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid experiment {field}: {reason}")]
pub struct PlanError {
    /// The offending field.
    pub field: &'static str,
    /// What was expected.
    pub reason: String,
}

impl ExperimentPlan {
    /// Check the plan.
    ///
    /// # Errors
    /// [`PlanError`] naming the first bad field.
    pub fn validate(&self) -> Result<(), PlanError> {
        let bad = |field, reason: &str| {
            Err(PlanError {
                field,
                reason: reason.into(),
            })
        };
        if self.seeds.is_empty() {
            return bad("seeds", "need at least one training seed");
        }
        if self.env_steps == 0 {
            return bad("steps", "must be at least 1");
        }
        if self.num_envs == 0 {
            return bad("num_envs", "must be at least 1");
        }
        if self.train_populations.contains(&0) || self.eval_populations.contains(&0) {
            return bad("populations", "every population needs at least 1 device");
        }
        if self.train_populations.is_empty() || self.eval_populations.is_empty() {
            return bad("populations", "need at least one population");
        }
        if self.eval_seeds.is_empty() {
            return bad("eval_seeds", "need at least one evaluation seed");
        }
        if self.eval_seeds.iter().any(|s| self.seeds.contains(s)) {
            return bad("eval_seeds", "must not overlap the training seeds");
        }
        Ok(())
    }
}

/// A mean with the half-width of its 95% confidence interval (Student t over the
/// samples; 0 for a single sample).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Sample mean (NaN for no samples).
    pub mean: f64,
    /// Half-width of the 95% confidence interval.
    pub half_width: f64,
    /// Number of samples.
    pub n: usize,
}

impl Interval {
    /// Format as `mean ± half` with `digits` decimals (`n/a` for no samples).
    #[must_use]
    pub fn fmt(&self, digits: usize) -> String {
        if self.n == 0 || !self.mean.is_finite() {
            "n/a".into()
        } else if self.n == 1 {
            format!("{:.digits$}", self.mean)
        } else {
            format!("{:.digits$} ± {:.digits$}", self.mean, self.half_width)
        }
    }
}

/// The 97.5% quantile of Student's t distribution with `df` degrees of freedom.
#[must_use]
pub fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => 1.96,
    }
}

/// Mean and 95% confidence interval of `xs` (non-finite values are skipped).
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn mean_ci95(xs: &[f64]) -> Interval {
    let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n == 0 {
        return Interval {
            mean: f64::NAN,
            half_width: f64::NAN,
            n,
        };
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Interval {
            mean,
            half_width: 0.0,
            n,
        };
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Interval {
        mean,
        half_width: t975(n - 1) * (var / n as f64).sqrt(),
        n,
    }
}

/// Moving average over the last `window` points of a curve (`(env_steps, value)`,
/// non-finite values skipped).
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn smooth(curve: &[(u64, f64)], window: usize) -> Vec<(u64, f64)> {
    let pts: Vec<(u64, f64)> = curve
        .iter()
        .copied()
        .filter(|(_, v)| v.is_finite())
        .collect();
    let w = window.max(1);
    (0..pts.len())
        .map(|i| {
            let lo = (i + 1).saturating_sub(w);
            let s = &pts[lo..=i];
            (
                pts[i].0,
                s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64,
            )
        })
        .collect()
}

/// The first step at which the `window`-point moving average of `curve` reaches
/// `threshold` (`None` if it never does). Only full windows count, so one lucky early
/// point cannot reach it.
#[must_use]
pub fn steps_to_threshold(curve: &[(u64, f64)], threshold: f64, window: usize) -> Option<u64> {
    smooth(curve, window)
        .into_iter()
        .skip(window.max(1) - 1)
        .find(|&(_, v)| v >= threshold)
        .map(|(s, _)| s)
}

/// The value of a curve at `step`: its last point at or before `step` (NaN before the
/// first point).
#[must_use]
pub fn value_at(curve: &[(u64, f64)], step: u64) -> f64 {
    curve
        .iter()
        .take_while(|(s, _)| *s <= step)
        .last()
        .map_or(f64::NAN, |p| p.1)
}

/// Mean and 95% interval of several curves on a common grid of steps.
#[must_use]
pub fn band(curves: &[Vec<(u64, f64)>], grid: &[u64]) -> Vec<(u64, Interval)> {
    grid.iter()
        .map(|&g| {
            let vals: Vec<f64> = curves.iter().map(|c| value_at(c, g)).collect();
            (g, mean_ci95(&vals))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_validate() {
        assert_eq!("quick".parse::<Preset>(), Ok(Preset::Quick));
        assert_eq!("full".parse::<Preset>(), Ok(Preset::Full));
        let err = "fast".parse::<Preset>().unwrap_err();
        assert!(err.to_string().contains("quick, full"), "{err}");
        for p in Preset::ALL {
            p.plan().validate().unwrap();
        }
        let mut plan = Preset::Quick.plan();
        plan.eval_seeds.push(plan.seeds[0]);
        assert_eq!(plan.validate().unwrap_err().field, "eval_seeds");
    }

    #[test]
    fn confidence_interval_matches_hand_computation() {
        let ci = mean_ci95(&[1.0, 2.0, 3.0, f64::NAN]);
        assert_eq!(ci.n, 3);
        assert!((ci.mean - 2.0).abs() < 1e-12);
        // s = 1, n = 3: 4.303 / sqrt(3).
        assert!((ci.half_width - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(mean_ci95(&[5.0]).half_width, 0.0);
        assert!(mean_ci95(&[]).mean.is_nan());
        assert_eq!(mean_ci95(&[]).fmt(2), "n/a");
    }

    #[test]
    fn threshold_and_bands() {
        let c = vec![(10, 0.0), (20, 1.0), (30, 3.0), (40, 3.0)];
        assert_eq!(steps_to_threshold(&c, 2.0, 1), Some(30));
        assert_eq!(steps_to_threshold(&c, 2.0, 2), Some(30));
        assert_eq!(
            steps_to_threshold(&c, -1.0, 2),
            Some(20),
            "first full window"
        );
        assert_eq!(steps_to_threshold(&c, 2.9, 2), Some(40));
        assert_eq!(steps_to_threshold(&c, 9.0, 1), None);
        assert!(value_at(&c, 5).is_nan());
        assert_eq!(value_at(&c, 25), 1.0);
        let b = band(&[c.clone(), c], &[20, 40]);
        assert_eq!(b[1].1.mean, 3.0);
        assert_eq!(b[1].1.half_width, 0.0);
    }
}
