//! Scheduling policies: the baselines of the paper's comparison.
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

use std::fmt;
use std::str::FromStr;

use crate::metrics::quality_deficits;
use crate::sim::{Action, Simulator};
use edgewise_rng::{Rng, derive_seed};

/// Something that chooses an action for every device each slot.
pub trait Policy {
    /// Short name for tables.
    fn name(&self) -> &str;
    /// Fill `actions` (one per device) for the simulator's current slot.
    fn decide(&mut self, sim: &Simulator, actions: &mut [Action]);
}

/// The baseline policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Every query runs on its device.
    AlwaysLocal,
    /// Every query goes to the edge.
    AlwaysOffload,
    /// A fair coin per device and slot.
    Random,
    /// Lower expected latency under the last channel estimate, within the energy budget.
    Greedy,
    /// Perfect information, minimising the reward's own cost one slot ahead (a reference).
    Oracle,
}

impl PolicyKind {
    /// Every baseline, in table order.
    pub const ALL: [Self; 5] = [
        Self::AlwaysLocal,
        Self::AlwaysOffload,
        Self::Random,
        Self::Greedy,
        Self::Oracle,
    ];

    /// The kebab-case name used on the command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlwaysLocal => "always-local",
            Self::AlwaysOffload => "always-offload",
            Self::Random => "random",
            Self::Greedy => "greedy",
            Self::Oracle => "oracle",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown policy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown policy {0:?}: expected one of always-local, always-offload, random, greedy, oracle"
)]
pub struct UnknownPolicy(pub String);

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

/// Build a baseline policy; `seed` feeds the random policy only.
#[must_use]
pub fn baseline(kind: PolicyKind, seed: u64) -> Box<dyn Policy> {
    match kind {
        PolicyKind::AlwaysLocal => Box::new(Fixed {
            action: Action::Local,
            name: "always-local",
        }),
        PolicyKind::AlwaysOffload => Box::new(Fixed {
            action: Action::Offload,
            name: "always-offload",
        }),
        PolicyKind::Random => Box::new(RandomPolicy {
            rng: Rng::new(seed),
        }),
        PolicyKind::Greedy => Box::new(Greedy {
            oracle: false,
            workers: Vec::new(),
        }),
        PolicyKind::Oracle => Box::new(Greedy {
            oracle: true,
            workers: Vec::new(),
        }),
    }
}

/// Stream index that separates a baseline's own randomness from the scenario's.
const POLICY_STREAM: u64 = 0x0090_11c7;

/// The baseline as run on scenario `scenario_seed` by the CLI, the web app and the
/// cross-platform determinism probe: its own seed is derived from the scenario's, so one
/// number reproduces the whole run.
#[must_use]
pub fn scenario_baseline(kind: PolicyKind, scenario_seed: u64) -> Box<dyn Policy> {
    baseline(kind, derive_seed(scenario_seed, POLICY_STREAM))
}

struct Fixed {
    action: Action,
    name: &'static str,
}

impl Policy for Fixed {
    fn name(&self) -> &str {
        self.name
    }
    fn decide(&mut self, _sim: &Simulator, actions: &mut [Action]) {
        actions.fill(self.action);
    }
}

struct RandomPolicy {
    rng: Rng,
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

struct Greedy {
    oracle: bool,
    workers: Vec<f64>,
}

/// Expected finish of offloading one device's pending queries.
#[derive(Debug, Clone, Copy)]
struct OffloadEstimate {
    /// Decision to last answer, seconds.
    latency_s: f64,
    /// Total uplink time of the queries, seconds.
    uplink_s: f64,
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
        let now = sim.now_s();
        let rate = sim.uplink_rate_bps(u, sim.gain_lin(u, self.oracle), share_hz);
        let mut workers = std::mem::take(&mut self.workers);
        let saved = if commit { None } else { Some(workers.clone()) };
        let mut t_up = now;
        let mut worst = 0.0f64;
        for q in sim.pending_of(u) {
            t_up += q.uplink_bits / rate;
            let (w, free) =
                workers
                    .iter()
                    .copied()
                    .enumerate()
                    .fold(
                        (0, f64::INFINITY),
                        |b, (i, t)| if t < b.1 { (i, t) } else { b },
                    );
            let finish = free.max(t_up) + sim.edge_service_s(q.input_tokens, q.output_tokens);
            workers[w] = finish;
            worst = worst.max(finish + sim.downlink_s(q.output_tokens) - now);
        }
        self.workers = saved.unwrap_or(workers);
        OffloadEstimate {
            latency_s: worst,
            uplink_s: t_up - now,
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
        let (a, h) = choice.quality;
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
        let (da1, dh1) = deficits(&quality.with(k, a, h));
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
    /// Accuracy and hallucination rate of the model that answers.
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
    fn with(self, k: f64, accuracy: f64, hallucination: f64) -> Self {
        Self {
            count: self.count + k,
            accuracy_sum: self.accuracy_sum + k * accuracy,
            hallucination_sum: self.hallucination_sum + k * hallucination,
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
        let edge_quality = sim.edge_quality();
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
                    quality: sim.local_quality(u),
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
                        quality: edge_quality,
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
                    quality = quality.with(k, local.quality.0, local.quality.1);
                    *action = Action::Local;
                } else {
                    quality = quality.with(k, edge_quality.0, edge_quality.1);
                    self.offload(sim, u, share, true);
                    *action = Action::Offload;
                    used += 1;
                }
            }
            offloaders = used.max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in PolicyKind::ALL {
            assert_eq!(k.as_str().parse::<PolicyKind>().unwrap(), k);
        }
        let e = "fastest".parse::<PolicyKind>().unwrap_err().to_string();
        assert!(e.contains("fastest") && e.contains("greedy"), "{e}");
    }
}
