//! The baselines of the paper's comparison.
//!
//! - always-local / always-offload: fixed rules;
//! - random: each device flips a fair coin per slot;
//! - greedy: the action with the lower *expected* latency, from what a device can know
//!   (last slot's channel, last slot's number of offloaders, the edge backlog), never
//!   running locally beyond its remaining energy budget;
//! - oracle: perfect information (the true current channel, the exact set of offloaders
//!   in the slot and the exact edge queue), choosing per device the action with the lower
//!   cost under the simulator's own reward (latency, growth of the episode's accuracy
//!   deficit and hallucination excess, energy overrun). It looks one slot ahead, so it
//!   is a perfect-information reference, not an upper bound, and not a deployable policy.

use crate::metrics::quality_deficits;
use crate::policy::Policy;
use edgewise_rng::Rng;
use crate::sim::{Action, OffloadEstimate, Simulator};

/// The same action for every device, always.
pub(crate) struct Fixed {
    action: Action,
    name: &'static str,
}

impl Fixed {
    pub(crate) fn new(action: Action, name: &'static str) -> Self {
        Self { action, name }
    }
}

impl Policy for Fixed {
    fn name(&self) -> &str {
        self.name
    }
    fn decide(&mut self, _sim: &Simulator, actions: &mut [Action]) {
        actions.fill(self.action);
    }
}

/// A fair coin per device and slot.
pub(crate) struct RandomPolicy {
    rng: Rng,
}

impl RandomPolicy {
    pub(crate) fn new(rng: Rng) -> Self {
        Self { rng }
    }
}

impl Policy for RandomPolicy {
    fn name(&self) -> &str {
        "random"
    }
    fn decide(&mut self, _sim: &Simulator, actions: &mut [Action]) {
        for a in actions {
            *a = if self.rng.next_u64() >> 63 == 0 {
                Action::Local
            } else {
                Action::Offload
            };
        }
    }
}

/// The greedy rule, or with perfect information the oracle.
pub(crate) struct Greedy {
    oracle: bool,
    workers: Vec<f64>,
}

impl Greedy {
    /// The greedy baseline (`oracle = false`) or the oracle (`true`).
    pub(crate) fn new(oracle: bool) -> Self {
        Self {
            oracle,
            workers: Vec::new(),
        }
    }
}

impl Greedy {
    /// Expected latency of offloading device `u`'s pending queries, updating the
    /// simulated worker queue as if they were sent when `commit`.
    fn offload(
        &mut self,
        sim: &Simulator,
        u: usize,
        share_hz: f64,
        commit: bool,
    ) -> OffloadEstimate {
        let gain = sim.gain_lin(u, self.oracle);
        if commit {
            sim.project_offload(u, gain, share_hz, &mut self.workers)
        } else {
            let mut scratch = self.workers.clone();
            sim.project_offload(u, gain, share_hz, &mut scratch)
        }
    }

    fn local_latency(sim: &Simulator, u: usize) -> f64 {
        let d = &sim.devices()[u];
        d.local_backlog_s + sim.local_service_s(u, d.pending_input_tokens, d.pending_output_tokens)
    }

    /// The oracle's cost of one choice for device `u`'s pending queries: the negated
    /// reward the simulator would give them (latency, the growth of the episode's
    /// accuracy deficit and hallucination excess from the running totals `quality`, and
    /// the energy overrun).
    fn lagrangian_cost(sim: &Simulator, u: usize, choice: Choice, quality: &RunningQuality) -> f64 {
        let cfg = sim.config();
        let (rw, qos) = (&cfg.reward, &cfg.qos);
        let d = &sim.devices()[u];
        let k = f64::from(d.pending);
        let deficits = |q: &RunningQuality| {
            quality_deficits(
                q.count,
                q.accuracy_sum,
                q.hallucination_sum,
                qos.min_accuracy,
                qos.max_hallucination,
            )
        };
        let (da0, dh0) = deficits(quality);
        let (da1, dh1) = deficits(&quality.with(k, choice.quality));
        let overrun = (choice.energy_j - d.energy_left_j().max(0.0)).max(0.0);
        k * choice.latency_s.min(cfg.max_latency_s) / rw.latency_scale_s
            + rw.accuracy_weight * (da1 - da0)
            + rw.hallucination_weight * (dh1 - dh0)
            + rw.energy_weight * overrun / d.energy_budget_j
    }
}

/// One option for a device's pending queries, as the oracle prices it.
#[derive(Debug, Clone, Copy)]
struct Choice {
    latency_s: f64,
    /// Sums over the queries of the expected accuracy and hallucination rate of the
    /// model that answers ([`Simulator::pending_quality`]).
    quality: (f64, f64),
    energy_j: f64,
}

/// Episode quality totals: the simulator's so far plus this slot's decisions.
#[derive(Debug, Clone, Copy)]
struct RunningQuality {
    count: f64,
    accuracy_sum: f64,
    hallucination_sum: f64,
}

impl RunningQuality {
    /// The totals with `k` more answers whose accuracies and hallucination rates sum
    /// to `sums`.
    fn with(self, k: f64, sums: (f64, f64)) -> Self {
        Self {
            count: self.count + k,
            accuracy_sum: self.accuracy_sum + sums.0,
            hallucination_sum: self.hallucination_sum + sums.1,
        }
    }
}

impl Policy for Greedy {
    fn name(&self) -> &str {
        if self.oracle { "oracle" } else { "greedy" }
    }

    fn decide(&mut self, sim: &Simulator, actions: &mut [Action]) {
        let n = sim.num_devices();
        let cfg = sim.config();
        let max_lat = cfg.max_latency_s;
        // Oracle: fixed-point on the number of offloaders (it knows everyone's choice);
        // greedy: assumes last slot's count plus itself.
        let rounds = if self.oracle { 3 } else { 1 };
        let mut offloaders = (sim.last_offloaders() + 1).min(n.max(1));
        for _ in 0..rounds {
            self.workers.clear();
            self.workers.extend_from_slice(sim.edge_free_at());
            if !self.oracle {
                // Greedy sees only the published backlog (when the first worker frees up)
                // and assumes every worker frees up then.
                let backlog_end = sim.now_s() + sim.edge_backlog_s();
                self.workers.fill(backlog_end);
            }
            let share = cfg.radio.bandwidth_hz / offloaders.max(1) as f64;
            let (answered, accuracy_sum, hallucination_sum) = sim.quality_so_far();
            let mut quality = RunningQuality {
                count: answered as f64,
                accuracy_sum,
                hallucination_sum,
            };
            let mut used = 0usize;
            for (u, action) in actions.iter_mut().enumerate().take(n) {
                let d = &sim.devices()[u];
                if d.pending == 0 {
                    *action = Action::Offload;
                    continue;
                }
                let local = Choice {
                    latency_s: Self::local_latency(sim, u),
                    quality: sim.pending_quality(u, Action::Local),
                    energy_j: sim.local_energy_j(
                        u,
                        d.pending_input_tokens,
                        d.pending_output_tokens,
                    ),
                };
                let off = self.offload(sim, u, share, false);
                let go_local = if self.oracle {
                    // Perfect information, and the reward's own trade-off between latency,
                    // the quality constraints and energy.
                    let offload = Choice {
                        latency_s: off.latency_s,
                        quality: sim.pending_quality(u, Action::Offload),
                        energy_j: sim.offload_energy_j(u, off.uplink_s, off.latency_s),
                    };
                    Self::lagrangian_cost(sim, u, local, &quality)
                        < Self::lagrangian_cost(sim, u, offload, &quality)
                } else {
                    // Latency first, within the energy budget.
                    local.energy_j <= d.energy_left_j()
                        && local.latency_s < off.latency_s.min(max_lat)
                };
                let k = f64::from(d.pending);
                if go_local {
                    quality = quality.with(k, local.quality);
                    *action = Action::Local;
                } else {
                    quality = quality.with(k, sim.pending_quality(u, Action::Offload));
                    self.offload(sim, u, share, true);
                    *action = Action::Offload;
                    used += 1;
                }
            }
            offloaders = used.max(1);
        }
    }
}
