//! What a device's policy sees each slot: [`OBS_DIM`] features per device.
//!
//! Design rules (issue 16): no feature is constant within a training run (nothing like
//! `N / 100`), so an observation normaliser never divides by a zero spread; the greedy
//! rule's own inputs are features (expected local and offload latency, energy against the
//! budget, device class), so a learner need not rediscover a division; and times and
//! backlogs pass through `symlog(x) = sign(x)·ln(1 + |x|)` (x in seconds), so a congested
//! edge (a 60 s backlog → 4.1) stays distinguishable from a busy one (6 s → 1.9) instead
//! of clipping. Fractions stay in [0, 1] at every population.
//!
//! | # | feature | transform |
//! |---|---------|-----------|
//! | 0 | last slot's channel gain estimate, dB | (g + 90) / 20 |
//! | 1 | distance to the edge server | / cell radius |
//! | 2 | energy left in the budget window | / budget |
//! | 3 | budget window elapsed | fraction |
//! | 4 | episode elapsed | fraction |
//! | 5 | pending queries | symlog(count) |
//! | 6 | local backlog (own model busy) | symlog(s) |
//! | 7 | local service time of the pending queries | symlog(s) |
//! | 8 | expected local latency = 6 + 7 | symlog(s) |
//! | 9 | expected uplink time (estimated gain, expected share) | symlog(s) |
//! | 10 | edge wait: first edge worker free (after this slot's announced offloads) | symlog(s) |
//! | 11 | edge service time of the pending queries (prompt and answer tokens) | symlog(s) |
//! | 12 | expected offload latency: uplink + edge wait + own edge service + downlink | symlog(s) |
//! | 13 | expected local − expected offload latency (greedy's decision variable) | symlog(s), signed |
//! | 14 | energy headroom if run locally: (left − local energy) | / budget |
//! | 15 | energy headroom if offloaded: (left − transmit and idle energy) | / budget |
//! | 16 | expected accuracy of the pending queries on the device − `qos.min_accuracy` | × 5 |
//! | 17 | local variant's hallucination rate − `qos.max_hallucination` | × 5 |
//! | 18 | expected accuracy gain of offloading the pending queries (edge − local) | × 5 |
//! | 19–21 | device class, one-hot (classes beyond the third share slot 21) | 0/1 |
//! | 22 | devices that offloaded last slot | / N |
//! | 23 | devices with pending queries this slot | / N |
//! | 24 | this slot's demand: edge time of every pending query, per worker | symlog(s) |
//! | 25 | mean edge worker wait (queued edge work per worker) | symlog(s) |
//! | 26 | episode accuracy so far − `qos.min_accuracy` (0 before any answer) | × 5 |
//! | 27 | episode hallucination so far − `qos.max_hallucination` (0 before any answer) | × 5 |
//! | 28 | devices that announced an offload earlier in this slot (0 all-at-once) | / N |
//! | 29 | edge work announced earlier in this slot, per worker (0 all-at-once) | symlog(s) |
//!
//! "Expected" means from what a device may know: last slot's channel, the expected number
//! of devices sharing the uplink ([`Simulator::expected_offloaders`]), and the edge
//! workers' free times the edge broadcasts (with the offloads announced earlier in the
//! slot queued behind them, [`Simulator::projected_edge_free_at`]). For a device with
//! nothing pending the service, uplink and offload terms are 0 and the quality terms use
//! its variant's base accuracy.

use crate::sim::{Action, Simulator};

/// Features per device in [`Simulator::observe`].
pub const OBS_DIM: usize = 30;

/// Names of the observation features, in order (for docs, plots and the web app).
pub const OBS_FEATURES: [&str; OBS_DIM] = [
    "channel estimate ((dB + 90) / 20)",
    "distance to edge / cell radius",
    "energy budget left (fraction)",
    "budget window elapsed (fraction)",
    "episode elapsed (fraction)",
    "pending queries (symlog)",
    "local backlog (symlog s)",
    "local service time of pending (symlog s)",
    "expected local latency (symlog s)",
    "expected uplink time (symlog s)",
    "edge wait for a worker (symlog s)",
    "edge service time of pending (symlog s)",
    "expected offload latency (symlog s)",
    "expected local − offload latency (symlog s)",
    "energy headroom if local (fraction of budget)",
    "energy headroom if offloaded (fraction of budget)",
    "local expected accuracy − constraint (×5)",
    "local hallucination − constraint (×5)",
    "accuracy gain of offloading (×5)",
    "class 1 (one-hot)",
    "class 2 (one-hot)",
    "class 3+ (one-hot)",
    "devices offloading last slot (fraction)",
    "devices with pending queries (fraction)",
    "slot demand per edge worker (symlog s)",
    "mean edge worker wait (symlog s)",
    "episode accuracy so far − constraint (×5)",
    "episode hallucination so far − constraint (×5)",
    "offloads announced this slot (fraction)",
    "edge work announced this slot per worker (symlog s)",
];

/// Number of device-class one-hot slots (features 19–21).
const CLASS_SLOTS: usize = 3;
/// Index of the first class slot.
const CLASS_FEATURE: usize = 19;

/// `sign(x)·ln(1 + |x|)`: compressive, odd, and the identity near 0.
#[must_use]
pub fn symlog(x: f64) -> f64 {
    if x < 0.0 {
        -libm::log1p(-x)
    } else {
        libm::log1p(x)
    }
}

/// Inverse of [`symlog`].
#[must_use]
pub fn symexp(y: f64) -> f64 {
    if y < 0.0 {
        -libm::expm1(-y)
    } else {
        libm::expm1(y)
    }
}

/// The slot-wide part of every device's observation.
struct SlotView {
    now: f64,
    share_hz: f64,
    window_phase: f64,
    elapsed: f64,
    last_offloaders: f64,
    deciding: f64,
    demand: f64,
    mean_wait: f64,
    acc_margin: f64,
    hal_margin: f64,
    announced_offloads: f64,
    announced_work: f64,
}

impl Simulator {
    /// Write the observation of every device into `out` (`num_devices * OBS_DIM`); the
    /// features are listed in the table of this module's documentation.
    ///
    /// # Panics
    /// If `out` has the wrong length.
    pub fn observe(&self, out: &mut [f32]) {
        assert_eq!(
            out.len(),
            self.num_devices() * OBS_DIM,
            "observation buffer length"
        );
        let view = self.slot_view();
        let mut workers = Vec::with_capacity(self.config().edge.workers);
        for (u, o) in out.chunks_exact_mut(OBS_DIM).enumerate() {
            self.observe_with(&view, u, o, &mut workers);
        }
    }

    /// Write device `u`'s observation (`OBS_DIM` values) into `out`: what
    /// [`Simulator::observe`] writes for it, for a device deciding in turn after the
    /// announcements of this slot.
    ///
    /// # Panics
    /// If `out` has the wrong length or `u` is not a device.
    pub fn observe_device(&self, u: usize, out: &mut [f32]) {
        assert_eq!(out.len(), OBS_DIM, "observation buffer length");
        let mut workers = Vec::with_capacity(self.config().edge.workers);
        self.observe_with(&self.slot_view(), u, out, &mut workers);
    }

    fn slot_view(&self) -> SlotView {
        let cfg = self.config();
        let n = self.num_devices().max(1) as f64;
        let now = self.now_s();
        let workers = cfg.edge.workers.max(1) as f64;
        let deciding = self.devices().iter().filter(|d| d.pending > 0).count() as f64;
        let demand_s: f64 = self
            .devices()
            .iter()
            .map(|d| self.edge_service_s(d.pending_input_tokens, d.pending_output_tokens))
            .sum();
        let queued: f64 = self
            .projected_edge_free_at()
            .iter()
            .map(|&t| (t - now).max(0.0))
            .sum();
        let (qa, qh) = (cfg.qos.min_accuracy, cfg.qos.max_hallucination);
        let (answered, acc_sum, hal_sum) = self.quality_so_far();
        let (acc_margin, hal_margin) = if answered > 0 {
            let k = answered as f64;
            ((acc_sum / k - qa) * 5.0, (hal_sum / k - qh) * 5.0)
        } else {
            (0.0, 0.0)
        };
        let c = self.commitments();
        SlotView {
            now,
            share_hz: cfg.radio.bandwidth_hz / self.expected_offloaders() as f64,
            window_phase: (self.slot() % cfg.energy_window_slots) as f64
                / cfg.energy_window_slots as f64,
            elapsed: self.slot() as f64 / cfg.slots as f64,
            last_offloaders: self.last_offloaders() as f64 / n,
            deciding: deciding / n,
            demand: symlog(demand_s / workers),
            mean_wait: symlog(queued / workers),
            acc_margin,
            hal_margin,
            announced_offloads: c.offloaders as f64 / n,
            announced_work: symlog(c.edge_work_s / workers),
        }
    }

    fn observe_with(&self, v: &SlotView, u: usize, o: &mut [f32], workers: &mut Vec<f64>) {
        let cfg = self.config();
        let (qa, qh) = (cfg.qos.min_accuracy, cfg.qos.max_hallucination);
        let d = &self.devices()[u];
        let p = self.params(u);
        let (tin, tout) = (d.pending_input_tokens, d.pending_output_tokens);
        let budget = d.energy_budget_j;
        let left = d.energy_left_j();

        let local_s = self.local_service_s(u, tin, tout);
        let local_latency = d.local_backlog_s + local_s;
        workers.clear();
        workers.extend_from_slice(self.projected_edge_free_at());
        let edge_wait = (workers.iter().fold(f64::INFINITY, |m, &t| m.min(t)) - v.now).max(0.0);
        let off = self.project_offload(u, self.gain_lin(u, false), v.share_hz, workers);
        let local_e = self.local_energy_j(u, tin, tout);
        let off_e = self.offload_energy_j(u, off.uplink_s, off.latency_s);
        let (local_acc, acc_gain) = self.pending_accuracy(u);

        let f: [f64; OBS_DIM] = [
            (d.estimated_gain_db + 90.0) / 20.0,
            d.distance_m() / cfg.cell_radius_m,
            left / budget,
            v.window_phase,
            v.elapsed,
            symlog(f64::from(d.pending)),
            symlog(d.local_backlog_s),
            symlog(local_s),
            symlog(local_latency),
            symlog(off.uplink_s),
            symlog(edge_wait),
            symlog(self.edge_service_s(tin, tout)),
            symlog(off.latency_s),
            symlog(local_latency - off.latency_s),
            (left - local_e) / budget,
            (left - off_e) / budget,
            (local_acc - qa) * 5.0,
            (p.hallucination - qh) * 5.0,
            acc_gain * 5.0,
            0.0,
            0.0,
            0.0,
            v.last_offloaders,
            v.deciding,
            v.demand,
            v.mean_wait,
            v.acc_margin,
            v.hal_margin,
            v.announced_offloads,
            v.announced_work,
        ];
        for (dst, src) in o.iter_mut().zip(f) {
            *dst = src as f32;
        }
        o[CLASS_FEATURE + d.class.min(CLASS_SLOTS - 1)] = 1.0;
    }

    /// Mean expected accuracy of device `u`'s pending queries if answered locally, and the
    /// mean gain from answering them on the edge instead (the variant's base figures
    /// when nothing is pending).
    fn pending_accuracy(&self, u: usize) -> (f64, f64) {
        let k = f64::from(self.devices()[u].pending);
        if k == 0.0 {
            let local = self.params(u).accuracy;
            return (local, self.edge_quality().0 - local);
        }
        let (local, _) = self.pending_quality(u, Action::Local);
        let (edge, _) = self.pending_quality(u, Action::Offload);
        (local / k, (edge - local) / k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlog_is_odd_compressive_and_invertible() {
        assert_eq!(symlog(0.0), 0.0);
        assert!((symlog(1.0) - core::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(symlog(-3.0), -symlog(3.0));
        assert!(symlog(60.0) < 4.2 && symlog(6.0) > 1.9);
        for x in [-100.0, -1.5, 0.0, 0.25, 7.0, 1e4] {
            assert!(
                (symexp(symlog(x)) - x).abs() <= 1e-12 * x.abs().max(1.0),
                "{x}"
            );
        }
    }
}
