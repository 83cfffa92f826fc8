//! The environment-independent parts of `edgewise experiment`: presets, the arms compared
//! (PPO, WM-PPO and a PPO control with WM-PPO's number of gradient steps), confidence
//! intervals over seeds (Student t and a seeded percentile bootstrap), learning-curve bands
//! and steps-to-threshold.
//!
//! The app (native/) wires these to the MEC simulator and its baselines; nothing here
//! knows a simulator: populations and scenario names are opaque to this module.

use std::fmt;
use std::str::FromStr;

use edgewise_rng::Rng;
use serde::{Deserialize, Serialize};

use crate::ppo::PpoConfig;
use crate::wm_ppo::WmConfig;

/// A named experiment size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Under half an hour on two cores: 5 training seeds per arm on the population mix.
    Quick,
    /// Hours: 10 seeds, five times the steps, 10 held-out evaluation seeds.
    Full,
}

/// The populations every preset trains on at once (one per parallel environment) and
/// evaluates at.
pub const POPULATION_MIX: [usize; 4] = [10, 20, 50, 100];

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
        let common = ExperimentPlan {
            preset: self,
            seeds: Vec::new(),
            arms: Arm::ALL.to_vec(),
            train_populations: POPULATION_MIX.to_vec(),
            train_scenario: "default".into(),
            eval_populations: POPULATION_MIX.to_vec(),
            eval_scenarios: vec!["default".into(), "bursty".into()],
            env_steps: 0,
            num_envs: POPULATION_MIX.len(),
            eval_seeds: Vec::new(),
            externality_credit: 0.0,
            externality_next_slot: false,
        };
        match self {
            Self::Quick => ExperimentPlan {
                seeds: (1..=5).collect(),
                env_steps: QUICK_ENV_STEPS,
                eval_seeds: (0..5).map(|i| 10_000 + i).collect(),
                ..common
            },
            Self::Full => ExperimentPlan {
                seeds: (1..=10).collect(),
                env_steps: 5 * QUICK_ENV_STEPS,
                eval_seeds: (0..10).map(|i| 10_000 + i).collect(),
                ..common
            },
        }
    }
}

/// Real environment steps per run of the quick preset.
const QUICK_ENV_STEPS: u64 = 40_960;

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

/// One learner configuration the experiment trains: an arm of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arm {
    /// PPO with the default [`PpoConfig`].
    Ppo,
    /// WM-PPO: PPO plus the response-model ensemble (default [`WmConfig`]).
    WmPpo,
    /// The equal-gradient-steps control: PPO with as many optimizer steps per update as
    /// WM-PPO takes, world model included ([`equal_gradient_epochs`]).
    #[serde(rename = "ppo-eqgrad")]
    PpoEqualGrad,
}

impl Arm {
    /// Every arm, in table order.
    pub const ALL: [Self; 3] = [Self::Ppo, Self::WmPpo, Self::PpoEqualGrad];

    /// The name in cell ids, tables and `--arms`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ppo => "ppo",
            Self::WmPpo => "wm-ppo",
            Self::PpoEqualGrad => "ppo-eqgrad",
        }
    }

    /// Whether the arm trains the world model (the checkpoint's and policy's `algo`).
    #[must_use]
    pub fn algo(self) -> &'static str {
        match self {
            Self::Ppo | Self::PpoEqualGrad => "ppo",
            Self::WmPpo => "wm-ppo",
        }
    }

    /// The learner configuration of this arm, from the plan's base configuration.
    #[must_use]
    pub fn ppo_config(self, base: &PpoConfig, wm: &WmConfig) -> PpoConfig {
        match self {
            Self::Ppo | Self::WmPpo => base.clone(),
            Self::PpoEqualGrad => PpoConfig {
                epochs: equal_gradient_epochs(base, wm),
                ..base.clone()
            },
        }
    }

    /// Optimizer steps per update: `(actor-critic, world model)`.
    #[must_use]
    pub fn gradient_steps(self, base: &PpoConfig, wm: &WmConfig) -> (usize, usize) {
        let c = self.ppo_config(base, wm);
        let world = if self == Self::WmPpo {
            wm.train_steps
        } else {
            0
        };
        (c.epochs * c.minibatches, world)
    }
}

impl fmt::Display for Arm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown arm name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown arm {0:?}: expected one of ppo, wm-ppo, ppo-eqgrad")]
pub struct UnknownArm(pub String);

impl FromStr for Arm {
    type Err = UnknownArm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownArm(s.to_owned()))
    }
}

/// Epochs that give PPO as many optimizer steps per update as WM-PPO takes.
///
/// Per update WM-PPO takes exactly PPO's actor-critic steps (`epochs × minibatches`: the
/// counterfactual advantages change the targets, not the batches) plus `train_steps`
/// Adam steps on its response-model ensemble. The control keeps PPO's minibatch size and
/// takes the difference as extra epochs, rounded up: `epochs + ⌈train_steps /
/// minibatches⌉` (defaults: 4 + ⌈32 / 4⌉ = 12 epochs, 48 steps, as WM-PPO's 16 + 32).
#[must_use]
pub fn equal_gradient_epochs(base: &PpoConfig, wm: &WmConfig) -> usize {
    base.epochs + wm.train_steps.div_ceil(base.minibatches.max(1))
}

/// What an experiment runs: for every training seed, one run per arm on the population
/// mix (parallel environment `i` simulates `train_populations[i % len]` devices of the
/// training scenario); every learned policy is evaluated at every evaluation population
/// on every evaluation scenario. Training seeds and evaluation seeds never overlap:
/// learned policies are evaluated on held-out scenarios.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentPlan {
    /// The preset this plan came from.
    pub preset: Preset,
    /// Training seeds (one run per arm and seed).
    pub seeds: Vec<u64>,
    /// The arms compared, in table order.
    pub arms: Vec<Arm>,
    /// The population mix trained on, one population per parallel environment (cycling).
    pub train_populations: Vec<usize>,
    /// The scenario (a simulator preset name) trained on.
    pub train_scenario: String,
    /// Populations every policy is evaluated at.
    pub eval_populations: Vec<usize>,
    /// Scenarios (simulator preset names) every policy is evaluated on.
    pub eval_scenarios: Vec<String>,
    /// Real environment steps per training run (equal for every arm).
    pub env_steps: u64,
    /// Environments stepped in parallel while training.
    pub num_envs: usize,
    /// Held-out scenario seeds for evaluation.
    pub eval_seeds: Vec<u64>,
    /// Weight of the externality credit in the training rewards (the simulator's
    /// `reward.externality_credit`; evaluation rewards never include it). Plans written
    /// before it existed read 0, as they ran.
    #[serde(default)]
    pub externality_credit: f64,
    /// Settle the credit's estimate of the work an offload leaves on the edge in the next
    /// slot (the simulator's `reward.externality_settlement = "next-slot"`) instead of at
    /// the slot's end. Left out of the file when false, so plans written before it
    /// existed keep their hash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub externality_next_slot: bool,
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

fn has_duplicates<T: PartialEq>(v: &[T]) -> bool {
    v.iter().enumerate().any(|(i, x)| v[..i].contains(x))
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
        if self.arms.is_empty() {
            return bad("arms", "need at least one arm");
        }
        if has_duplicates(&self.arms) {
            return bad("arms", "lists an arm twice");
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
        if self.train_populations.len() > self.num_envs {
            return bad(
                "train_populations",
                &format!(
                    "a mix of {} populations needs at least as many parallel environments \
                     (the plan has {})",
                    self.train_populations.len(),
                    self.num_envs
                ),
            );
        }
        if has_duplicates(&self.eval_populations) {
            return bad("populations", "lists an evaluation population twice");
        }
        if self.train_scenario.is_empty() {
            return bad("train_scenario", "needs a scenario name");
        }
        if self.eval_scenarios.is_empty() || self.eval_scenarios.iter().any(String::is_empty) {
            return bad("eval_scenarios", "need at least one scenario name");
        }
        if has_duplicates(&self.eval_scenarios) {
            return bad("eval_scenarios", "lists a scenario twice");
        }
        if self.eval_seeds.is_empty() {
            return bad("eval_seeds", "need at least one evaluation seed");
        }
        if !(self.externality_credit.is_finite() && self.externality_credit >= 0.0) {
            return bad("externality_credit", "must be a number of at least 0");
        }
        if self.externality_next_slot && self.externality_credit == 0.0 {
            return bad(
                "externality_next_slot",
                "settles the externality credit, so it needs a credit above 0",
            );
        }
        if self.eval_seeds.iter().any(|s| self.seeds.contains(s)) {
            return bad("eval_seeds", "must not overlap the training seeds");
        }
        Ok(())
    }

    /// The population of each parallel training environment.
    #[must_use]
    pub fn env_populations(&self) -> Vec<usize> {
        (0..self.num_envs)
            .map(|i| self.train_populations[i % self.train_populations.len()])
            .collect()
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

/// The mean of the last `window` finite points of a curve (NaN for none): a run's final
/// value.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn final_value(curve: &[(u64, f64)], window: usize) -> f64 {
    let v: Vec<f64> = curve
        .iter()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .collect();
    let tail = &v[v.len().saturating_sub(window.max(1))..];
    if tail.is_empty() {
        f64::NAN
    } else {
        tail.iter().sum::<f64>() / tail.len() as f64
    }
}

/// The first finite point of a curve (NaN for none): a run's starting value.
#[must_use]
pub fn first_value(curve: &[(u64, f64)]) -> f64 {
    curve
        .iter()
        .map(|p| p.1)
        .find(|v| v.is_finite())
        .unwrap_or(f64::NAN)
}

/// The value `fraction` of the way from `start` to `end`: "95% of the final reward" for
/// rewards of any sign (`start + 0.95 · (end − start)`), since 95% of a negative reward
/// would lie above it.
#[must_use]
pub fn fraction_of_the_way(start: f64, end: f64, fraction: f64) -> f64 {
    start + fraction * (end - start)
}

/// A seeded percentile bootstrap over independent groups of samples.
///
/// Each of `resamples` rounds draws, for every group, as many indices as it has samples,
/// with replacement, and evaluates `stat` on them (one index list per group). Returns the
/// 2.5% and 97.5% percentiles of the finite statistics — a 95% interval — or NaNs when
/// there are none. The draws come from `seed` only, so the interval is reproducible.
#[must_use]
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
pub fn bootstrap_ci95(
    sizes: &[usize],
    resamples: usize,
    seed: u64,
    mut stat: impl FnMut(&[Vec<usize>]) -> f64,
) -> (f64, f64) {
    let mut rng = Rng::stream(seed, 0xb007_57a9);
    let mut draw: Vec<Vec<usize>> = sizes.iter().map(|&n| vec![0; n]).collect();
    let mut stats = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for (d, &n) in draw.iter_mut().zip(sizes) {
            for x in d.iter_mut() {
                *x = rng.below(n);
            }
        }
        let v = stat(&draw);
        if v.is_finite() {
            stats.push(v);
        }
    }
    if stats.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    stats.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let pos = q * (stats.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        stats[lo] + (pos - lo as f64) * (stats[hi] - stats[lo])
    };
    (at(0.025), at(0.975))
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
        let mut plan = Preset::Quick.plan();
        plan.num_envs = 3;
        let err = plan.validate().unwrap_err();
        assert_eq!(err.field, "train_populations", "{err}");
        let mut plan = Preset::Quick.plan();
        plan.arms.push(Arm::Ppo);
        assert_eq!(plan.validate().unwrap_err().field, "arms");
        let mut plan = Preset::Quick.plan();
        plan.eval_scenarios.push("default".into());
        assert_eq!(plan.validate().unwrap_err().field, "eval_scenarios");
        let mut plan = Preset::Quick.plan();
        plan.externality_next_slot = true;
        assert_eq!(
            plan.validate().unwrap_err().field,
            "externality_next_slot",
            "nothing to settle without a credit"
        );
        plan.externality_credit = 1.0;
        plan.validate().unwrap();
        let json = serde_json::to_string(&Preset::Quick.plan()).unwrap();
        assert!(
            !json.contains("externality_next_slot"),
            "left out when false, so older plans keep their hash: {json}"
        );
    }

    /// The shape issue 16 asks of both presets: at least 5 training seeds, every arm
    /// (PPO, WM-PPO and the equal-gradient control) trained once per seed on the mix of
    /// 10/20/50/100 devices (one population per parallel environment), and evaluated at
    /// those populations on the default and the bursty scenario, on held-out seeds.
    #[test]
    fn presets_train_every_arm_on_the_mix_and_evaluate_on_two_scenarios() {
        for p in Preset::ALL {
            let plan = p.plan();
            assert!(plan.seeds.len() >= 5, "{p}: {:?}", plan.seeds);
            assert_eq!(plan.arms, Arm::ALL, "{p}");
            assert_eq!(plan.train_populations, [10, 20, 50, 100], "{p}");
            assert_eq!(plan.env_populations(), [10, 20, 50, 100], "{p}");
            assert_eq!(plan.train_scenario, "default", "{p}");
            assert_eq!(plan.eval_populations, [10, 20, 50, 100], "{p}");
            assert_eq!(plan.eval_scenarios, ["default", "bursty"], "{p}");
            assert!(plan.eval_seeds.iter().all(|&s| s >= 10_000), "{p}");
            assert!(plan.eval_seeds.len() >= 5, "{p}");
        }
        let (q, f) = (Preset::Quick.plan(), Preset::Full.plan());
        assert!(f.env_steps > q.env_steps && f.seeds.len() > q.seeds.len());
        let mut plan = q;
        plan.num_envs = 6;
        assert_eq!(plan.env_populations(), [10, 20, 50, 100, 10, 20]);
    }

    #[test]
    fn the_control_takes_as_many_gradient_steps_as_wm_ppo() {
        let (base, wm) = (PpoConfig::default(), WmConfig::default());
        // WM-PPO: PPO's 4 × 4 actor-critic steps plus 32 on the ensemble.
        assert_eq!(Arm::Ppo.gradient_steps(&base, &wm), (16, 0));
        assert_eq!(Arm::WmPpo.gradient_steps(&base, &wm), (16, 32));
        assert_eq!(equal_gradient_epochs(&base, &wm), 12);
        let control = Arm::PpoEqualGrad.ppo_config(&base, &wm);
        assert_eq!((control.epochs, control.minibatches), (12, 4));
        assert_eq!(Arm::PpoEqualGrad.gradient_steps(&base, &wm), (48, 0));
        assert_eq!(
            PpoConfig {
                epochs: 4,
                ..control
            },
            base,
            "only the epochs differ"
        );
        // Rounded up when the world model's steps do not divide by the minibatches.
        let odd = WmConfig {
            train_steps: 30,
            ..wm
        };
        assert_eq!(equal_gradient_epochs(&base, &odd), 12);
        for a in Arm::ALL {
            assert_eq!(a.as_str().parse::<Arm>(), Ok(a));
        }
        assert!(
            "ppo2"
                .parse::<Arm>()
                .unwrap_err()
                .to_string()
                .contains("ppo-eqgrad")
        );
        assert_eq!(Arm::PpoEqualGrad.algo(), "ppo");
        for a in Arm::ALL {
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                a.as_str(),
                "JSON names match the command line's"
            );
        }
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_mean() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mean = |d: &[Vec<usize>]| d[0].iter().map(|&i| xs[i]).sum::<f64>() / d[0].len() as f64;
        let a = bootstrap_ci95(&[xs.len()], 2000, 7, mean);
        assert_eq!(a, bootstrap_ci95(&[xs.len()], 2000, 7, mean));
        assert_ne!(a, bootstrap_ci95(&[xs.len()], 2000, 8, mean));
        assert!(a.0 < 3.5 && a.1 > 3.5 && a.0 >= 1.0 && a.1 <= 6.0, "{a:?}");
        // Constant samples: a degenerate interval.
        assert_eq!(bootstrap_ci95(&[3], 100, 1, |_| 2.0), (2.0, 2.0));
        assert!(bootstrap_ci95(&[3], 100, 1, |_| f64::NAN).0.is_nan());
        // Two groups are drawn independently.
        let b = bootstrap_ci95(&[2, 3], 500, 1, |d| (d[0].len() * 10 + d[1].len()) as f64);
        assert_eq!(b, (23.0, 23.0));
    }

    #[test]
    fn start_final_and_the_95_percent_mark() {
        let c = vec![
            (10, f64::NAN),
            (20, -10.0),
            (30, -6.0),
            (40, -4.0),
            (50, -2.0),
        ];
        assert_eq!(first_value(&c), -10.0);
        assert_eq!(final_value(&c, 2), -3.0);
        assert_eq!(final_value(&c, 99), -5.5);
        assert!(final_value(&[], 3).is_nan());
        // Rewards are negative: 95% of the way from -10 to -2 is -2.4, above -2 × 0.95.
        assert!((fraction_of_the_way(-10.0, -2.0, 0.95) + 2.4).abs() < 1e-12);
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
