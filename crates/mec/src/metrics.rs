//! Episode metrics: what a scheduling policy achieved.

use serde::{Deserialize, Serialize};

/// Summary of an episode (or of the part run so far).
///
/// Latency counts every query: a dropped query is charged `max_latency_s`. Accuracy counts
/// a dropped query as not answered correctly (and not as a hallucination).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeMetrics {
    /// Slots simulated.
    pub slots: usize,
    /// Queries scheduled (completed + dropped).
    pub queries: usize,
    /// Queries rejected because their latency would exceed `max_latency_s`.
    pub dropped: usize,
    /// Fraction of queries offloaded to the edge.
    pub offload_fraction: f64,
    /// Mean latency per query, seconds.
    pub mean_latency_s: f64,
    /// 95th-percentile latency, seconds.
    pub p95_latency_s: f64,
    /// Mean energy a device spent per budget window, joules.
    pub energy_per_window_j: f64,
    /// Mean energy budget per window, joules.
    pub energy_budget_j: f64,
    /// Share of device-windows whose energy exceeded the budget.
    pub energy_violation_rate: f64,
    /// Effective accuracy over all queries.
    pub accuracy: f64,
    /// Hallucination rate over all queries.
    pub hallucination_rate: f64,
    /// Whether effective accuracy met `qos.min_accuracy`.
    pub accuracy_ok: bool,
    /// Whether hallucination met `qos.max_hallucination`.
    pub hallucination_ok: bool,
    /// Mean environment reward per slot.
    pub reward: f64,
}

/// Running sums from which [`EpisodeMetrics`] is computed.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricsAccumulator {
    pub slots: usize,
    pub latencies: Vec<f32>,
    pub latency_sum: f64,
    pub dropped: usize,
    pub offloaded: usize,
    pub accuracy_sum: f64,
    pub hallucination_sum: f64,
    pub windows: usize,
    pub violated_windows: usize,
    pub window_energy_sum: f64,
    pub window_budget_sum: f64,
    pub reward_sum: f64,
}

/// The episode's quality shortfall so far, in query units: how much accuracy is missing
/// below `min_accuracy` and how much hallucination lies above `max_hallucination`, over
/// `queries` answers whose accuracies sum to `accuracy_sum` and hallucination rates to
/// `hallucination_sum`. Both are 0 while the running averages meet the constraints.
///
/// The reward charges each query the *increase* of these deficits, so an episode's
/// penalties add up to `queries · (violation of each constraint by the episode average)`:
/// the accuracy-deficit and hallucination-excess terms of design §3.
#[must_use]
pub fn quality_deficits(
    queries: f64,
    accuracy_sum: f64,
    hallucination_sum: f64,
    min_accuracy: f64,
    max_hallucination: f64,
) -> (f64, f64) {
    (
        (min_accuracy * queries - accuracy_sum).max(0.0),
        (hallucination_sum - max_hallucination * queries).max(0.0),
    )
}

impl MetricsAccumulator {
    pub fn summary(&self, min_accuracy: f64, max_hallucination: f64) -> EpisodeMetrics {
        let n = self.latencies.len();
        #[allow(clippy::cast_precision_loss)]
        let per = |x: f64, d: usize| if d == 0 { 0.0 } else { x / d as f64 };
        let p95 = if n == 0 {
            0.0
        } else {
            let mut v = self.latencies.clone();
            let k = ((n as f64) * 0.95).ceil() as usize;
            let k = k.clamp(1, n) - 1;
            let (_, x, _) = v.select_nth_unstable_by(k, f32::total_cmp);
            f64::from(*x)
        };
        let accuracy = per(self.accuracy_sum, n);
        let hallucination_rate = per(self.hallucination_sum, n);
        EpisodeMetrics {
            slots: self.slots,
            queries: n,
            dropped: self.dropped,
            offload_fraction: per(self.offloaded as f64, n),
            mean_latency_s: per(self.latency_sum, n),
            p95_latency_s: p95,
            energy_per_window_j: per(self.window_energy_sum, self.windows),
            energy_budget_j: per(self.window_budget_sum, self.windows),
            energy_violation_rate: per(self.violated_windows as f64, self.windows),
            accuracy,
            hallucination_rate,
            accuracy_ok: n == 0 || accuracy + 1e-12 >= min_accuracy,
            hallucination_ok: n == 0 || hallucination_rate <= max_hallucination + 1e-12,
            reward: per(self.reward_sum, self.slots),
        }
    }
}
