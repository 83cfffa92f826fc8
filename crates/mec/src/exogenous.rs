//! The scenario processes that make foresight pay: bursty (Markov-modulated) arrivals,
//! time-correlated background load on the edge, and per-query difficulty.
//!
//! They are exogenous: drawn from their own random stream (derived from the episode
//! seed), in a fixed order, never reading an action, so every policy run on a seed faces
//! the same bursts, loads and difficulties (common random numbers). A process that is off
//! draws nothing, and the scenario's main stream is never touched, so a configuration with
//! every process off reproduces the plain simulator bit for bit.

use crate::config::SimConfig;
use edgewise_rng::{Rng, derive_seed};

/// Stream index of the scenario processes, apart from the main scenario draws.
const EXOGENOUS_STREAM: u64 = 0x0e_a0_9e_05;

/// Highest background load the clipped process can reach.
const MAX_LOAD: f64 = 0.95;

/// State of the scenario processes in the current slot.
#[derive(Debug, Clone)]
pub(crate) struct Exogenous {
    rng: Rng,
    /// Whether the cell is in a burst this slot.
    burst: bool,
    /// `exp(-rate)` of the calm and the burst state (Poisson sampling).
    exp_neg_rate: (f64, f64),
    /// Background load's deviation from its mean (Gauss–Markov).
    load_dev: f64,
    /// Edge service slowdown `1 / (1 − ρ)` this slot (exactly 1 with no load).
    slowdown: f64,
}

impl Exogenous {
    /// Initial state for an episode of `config` seeded with `seed` (stationary draws).
    pub(crate) fn new(config: &SimConfig, seed: u64) -> Self {
        let mut rng = Rng::new(derive_seed(seed, EXOGENOUS_STREAM));
        let b = &config.bursts;
        let (burst, exp_neg_rate) = if b.enabled() {
            let (calm, high) = b.rates(config.arrival_rate);
            (
                rng.uniform() < b.burst_share(),
                (libm::exp(-calm), libm::exp(-high)),
            )
        } else {
            let e = libm::exp(-config.arrival_rate);
            (false, (e, e))
        };
        let e = &config.edge;
        let load_dev = if e.background_load_sigma > 0.0 {
            rng.normal_pair().0 * e.background_load_sigma
        } else {
            0.0
        };
        let mut s = Self {
            rng,
            burst,
            exp_neg_rate,
            load_dev,
            slowdown: 1.0,
        };
        s.update_slowdown(config);
        s
    }

    fn update_slowdown(&mut self, config: &SimConfig) {
        let e = &config.edge;
        self.slowdown = if e.background_load > 0.0 || e.background_load_sigma > 0.0 {
            1.0 / (1.0 - (e.background_load + self.load_dev).clamp(0.0, MAX_LOAD))
        } else {
            1.0
        };
    }

    /// Move the processes to the next slot.
    pub(crate) fn advance(&mut self, config: &SimConfig) {
        let b = &config.bursts;
        if b.enabled() {
            let u = self.rng.uniform();
            self.burst = if self.burst {
                u >= b.exit_prob
            } else {
                u < b.enter_prob
            };
        }
        let e = &config.edge;
        if e.background_load_sigma > 0.0 {
            let rho = e.background_load_correlation;
            let z = self.rng.normal_pair().0;
            self.load_dev =
                rho * self.load_dev + libm::sqrt(1.0 - rho * rho) * e.background_load_sigma * z;
        }
        self.update_slowdown(config);
    }

    /// `exp(-rate)` of this slot's per-device Poisson arrivals.
    pub(crate) fn exp_neg_rate(&self) -> f64 {
        if self.burst {
            self.exp_neg_rate.1
        } else {
            self.exp_neg_rate.0
        }
    }

    /// Whether the cell is in a burst this slot.
    pub(crate) fn in_burst(&self) -> bool {
        self.burst
    }

    /// Edge service slowdown from background load this slot (≥ 1).
    pub(crate) fn slowdown(&self) -> f64 {
        self.slowdown
    }

    /// Background load ρ this slot.
    pub(crate) fn load(&self) -> f64 {
        1.0 - 1.0 / self.slowdown
    }

    /// A new query's difficulty, as the logit shift `difficulty_sigma · z` (0 when off).
    pub(crate) fn draw_difficulty(&mut self, config: &SimConfig) -> f64 {
        let s = config.query.difficulty_sigma;
        if s > 0.0 {
            s * self.rng.normal_pair().0
        } else {
            0.0
        }
    }
}

/// Probability that a model of accuracy `accuracy` answers a query of difficulty
/// `shift` correctly: `σ(logit(accuracy) − shift)`; exactly `accuracy` when `shift` is 0.
#[must_use]
pub fn query_accuracy(accuracy: f64, shift: f64) -> f64 {
    if shift == 0.0 || accuracy <= 0.0 || accuracy >= 1.0 {
        return accuracy;
    }
    let logit = libm::log(accuracy / (1.0 - accuracy)) - shift;
    1.0 / (1.0 + libm::exp(-logit))
}

/// Mean of [`query_accuracy`] over difficulties `sigma · z`, z ~ N(0, 1) (a fixed
/// midpoint rule on z ∈ [−8, 8], so the same on every platform).
#[must_use]
pub fn mean_query_accuracy(accuracy: f64, sigma: f64) -> f64 {
    if sigma == 0.0 {
        return accuracy;
    }
    const STEPS: u32 = 3200;
    let h = 16.0 / f64::from(STEPS);
    let (mut sum, mut weight) = (0.0, 0.0);
    for i in 0..STEPS {
        let z = -8.0 + (f64::from(i) + 0.5) * h;
        let w = libm::exp(-0.5 * z * z);
        sum += w * query_accuracy(accuracy, sigma * z);
        weight += w;
    }
    sum / weight
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_moves_accuracy_the_right_way() {
        assert_eq!(query_accuracy(0.4, 0.0), 0.4);
        assert!(query_accuracy(0.4, 1.0) < 0.4);
        assert!(query_accuracy(0.4, -1.0) > 0.4);
        assert_eq!(query_accuracy(1.0, 3.0), 1.0);
        // Symmetric in logit space.
        let (a, b) = (query_accuracy(0.5, 0.7), query_accuracy(0.5, -0.7));
        assert!((a + b - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mean_accuracy_under_difficulty() {
        assert_eq!(mean_query_accuracy(0.3, 0.0), 0.3);
        assert!((mean_query_accuracy(0.5, 2.0) - 0.5).abs() < 1e-9);
        // Spread pulls the mean toward 1/2.
        let m = mean_query_accuracy(1.0 / 6.0, 1.5);
        assert!(m > 1.0 / 6.0 && m < 0.5, "{m}");
        let mut r = Rng::new(4);
        let n = 200_000;
        let mc = (0..n)
            .map(|_| query_accuracy(1.0 / 6.0, 1.5 * r.normal_pair().0))
            .sum::<f64>()
            / f64::from(n);
        assert!((mc - m).abs() < 0.003, "{mc} vs {m}");
    }

    #[test]
    fn bursts_keep_the_mean_rate_and_come_in_runs() {
        let mut cfg = SimConfig::default();
        cfg.bursts.factor = 5.0;
        let mut x = Exogenous::new(&cfg, 3);
        let (n, mut bursts, mut runs, mut rate_sum) = (200_000, 0, 0, 0.0);
        let mut was = x.in_burst();
        for _ in 0..n {
            x.advance(&cfg);
            let r = -libm::log(x.exp_neg_rate());
            rate_sum += r;
            if x.in_burst() {
                bursts += 1;
                if !was {
                    runs += 1;
                }
            }
            was = x.in_burst();
        }
        let share = f64::from(bursts) / f64::from(n);
        assert!((share - 0.2).abs() < 0.01, "burst share {share}");
        let mean_run = f64::from(bursts) / f64::from(runs);
        assert!((mean_run - 5.0).abs() < 0.3, "mean burst length {mean_run}");
        let mean_rate = rate_sum / f64::from(n);
        assert!((mean_rate - cfg.arrival_rate).abs() < 0.003, "{mean_rate}");
    }

    #[test]
    fn background_load_is_correlated_and_clipped() {
        let mut cfg = SimConfig::default();
        cfg.edge.background_load = 0.4;
        cfg.edge.background_load_sigma = 0.2;
        cfg.edge.background_load_correlation = 0.95;
        let mut x = Exogenous::new(&cfg, 8);
        let loads: Vec<f64> = (0..50_000)
            .map(|_| {
                x.advance(&cfg);
                x.load()
            })
            .collect();
        assert!(loads.iter().all(|&l| (0.0..=MAX_LOAD + 1e-12).contains(&l)));
        let mean = loads.iter().sum::<f64>() / loads.len() as f64;
        assert!((mean - 0.4).abs() < 0.03, "mean {mean}");
        let var = loads.iter().map(|l| (l - mean) * (l - mean)).sum::<f64>() / loads.len() as f64;
        let cov = loads
            .windows(2)
            .map(|w| (w[0] - mean) * (w[1] - mean))
            .sum::<f64>()
            / (loads.len() - 1) as f64;
        assert!(cov / var > 0.85, "lag-1 correlation {}", cov / var);
        // Off: no slowdown at all.
        let x = Exogenous::new(&SimConfig::default(), 8);
        assert_eq!(x.slowdown(), 1.0);
    }
}
