//! Scheduling policies: the baselines of the paper's comparison.
//!
//! - always-local / always-offload: fixed rules;
//! - random: each device flips a fair coin per slot;
//! - greedy: the action with the lower *expected* latency, from what a device can know
//!   (last slot's channel, last slot's number of offloaders, the edge backlog), never
//!   running locally beyond its remaining energy budget;
//! - oracle: greedy with perfect information (the true current channel, the exact set of
//!   offloaders in the slot and the exact edge queue), which also keeps the running
//!   accuracy and hallucination within their constraints. It is a reference bound for
//!   myopic scheduling, not a deployable policy.

use std::fmt;
use std::str::FromStr;

use crate::rng::SimRng;
use crate::sim::{Action, Simulator};

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
    /// Greedy with the true channel and exact queue, constraint-aware (a bound).
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
            rng: SimRng::new(seed),
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
    baseline(kind, crate::rng::derive_seed(scenario_seed, POLICY_STREAM))
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
    rng: SimRng,
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

impl Greedy {
    /// Expected latency of offloading device `u`'s pending queries, updating the
    /// simulated worker queue as if they were sent.
    fn offload_latency(&mut self, sim: &Simulator, u: usize, share_hz: f64, commit: bool) -> f64 {
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
        worst
    }

    fn local_latency(sim: &Simulator, u: usize) -> f64 {
        let d = &sim.devices()[u];
        d.local_backlog_s + sim.local_service_s(u, d.pending_input_tokens, d.pending_output_tokens)
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
        let metrics = sim.metrics();
        let (edge_a, edge_h) = sim.edge_quality();
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
            // Running quality totals (episode so far) for the oracle's constraint check.
            let mut count = metrics.queries as f64;
            let mut acc_sum = metrics.accuracy * count;
            let mut hal_sum = metrics.hallucination_rate * count;
            let mut used = 0usize;
            for (u, action) in actions.iter_mut().enumerate().take(n) {
                let d = &sim.devices()[u];
                if d.pending == 0 {
                    *action = Action::Offload;
                    continue;
                }
                let local = Self::local_latency(sim, u);
                let energy_ok =
                    sim.local_energy_j(u, d.pending_input_tokens, d.pending_output_tokens)
                        <= d.energy_left_j();
                let off = self.offload_latency(sim, u, share, false);
                let mut go_local = energy_ok && local < off.min(max_lat);
                if self.oracle && go_local {
                    let (la, lh) = sim.local_quality(u);
                    let k = f64::from(d.pending);
                    let a = (acc_sum + la * k) / (count + k);
                    let h = (hal_sum + lh * k) / (count + k);
                    go_local = a >= cfg.qos.min_accuracy && h <= cfg.qos.max_hallucination;
                }
                let k = f64::from(d.pending);
                count += k;
                if go_local {
                    let (la, lh) = sim.local_quality(u);
                    acc_sum += la * k;
                    hal_sum += lh * k;
                    *action = Action::Local;
                } else {
                    acc_sum += edge_a * k;
                    hal_sum += edge_h * k;
                    self.offload_latency(sim, u, share, true);
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
