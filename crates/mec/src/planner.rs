//! The clairvoyant planner: a reference for how much reward foresight can buy, not a
//! deployable policy.
//!
//! The simulator is `Clone` and its exogenous randomness (arrivals, sizes, channels,
//! mobility, and the scenario processes) never depends on the actions, so a copy stepped
//! forward shows the real future of the episode. Each slot the planner scores candidate
//! schedules for the deciding devices — greedy's, the oracle's, then single-device flips
//! of the best so far, for the devices closest to indifference — by stepping a copy with
//! the candidate and then `horizon` more slots under the oracle, summing the slot rewards
//! (the reward metric itself). It commits the best. Everything is deterministic.
//!
//! Its cost is (2 + `max_flips`) × (1 + `horizon`) simulated slots per real slot, so it
//! serves the headroom table (`docs/results/headroom.md`), not the browser.

use crate::baselines::Greedy;
use crate::policy::Policy;
use crate::sim::{Action, Simulator};

/// Lookahead on the real future (see the module documentation).
pub struct Planner {
    horizon: usize,
    max_flips: usize,
    greedy: Greedy,
    oracle: Greedy,
    base: Greedy,
    candidate: Vec<Action>,
    best: Vec<Action>,
    rollout_actions: Vec<Action>,
    order: Vec<(f64, usize)>,
}

impl Default for Planner {
    /// Six slots of lookahead, up to twelve flips per slot.
    fn default() -> Self {
        Self::new(6, 12)
    }
}

impl Planner {
    /// A planner that looks `horizon` slots past the decided one and tries up to
    /// `max_flips` single-device changes per slot.
    #[must_use]
    pub fn new(horizon: usize, max_flips: usize) -> Self {
        Self {
            horizon,
            max_flips,
            greedy: Greedy::new(false),
            oracle: Greedy::new(true),
            base: Greedy::new(true),
            candidate: Vec::new(),
            best: Vec::new(),
            rollout_actions: Vec::new(),
            order: Vec::new(),
        }
    }

    /// Sum of the slot rewards of `actions` now and `horizon` oracle-run slots after,
    /// on a copy of `sim`.
    fn value(&mut self, sim: &Simulator, actions: &[Action]) -> f64 {
        let mut copy = sim.clone();
        let mut total = copy.step(actions).reward;
        self.rollout_actions.resize(actions.len(), Action::Local);
        for _ in 0..self.horizon {
            if copy.done() {
                break;
            }
            self.base.decide(&copy, &mut self.rollout_actions);
            total += copy.step(&self.rollout_actions).reward;
        }
        total
    }

    /// Deciding devices ordered by how close they are to indifference between running
    /// locally and offloading (smallest latency gap first), at most `max_flips`.
    fn flip_order(&mut self, sim: &Simulator) {
        let share = sim.config().radio.bandwidth_hz / sim.expected_offloaders() as f64;
        let mut workers = Vec::new();
        self.order.clear();
        for (u, d) in sim.devices().iter().enumerate() {
            if d.pending == 0 {
                continue;
            }
            let local = d.local_backlog_s
                + sim.local_service_s(u, d.pending_input_tokens, d.pending_output_tokens);
            workers.clear();
            workers.extend_from_slice(sim.edge_free_at());
            let off = sim.project_offload(u, sim.gain_lin(u, true), share, &mut workers);
            self.order.push(((local - off.latency_s).abs(), u));
        }
        self.order
            .sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        self.order.truncate(self.max_flips);
    }
}

impl Policy for Planner {
    fn name(&self) -> &str {
        "planner"
    }

    fn decide(&mut self, sim: &Simulator, actions: &mut [Action]) {
        if sim.done() || sim.devices().iter().all(|d| d.pending == 0) {
            self.oracle.decide(sim, actions);
            return;
        }
        self.best.resize(actions.len(), Action::Local);
        self.candidate.resize(actions.len(), Action::Local);
        self.oracle.decide(sim, &mut self.best);
        let best = std::mem::take(&mut self.best);
        let mut best_value = self.value(sim, &best);
        self.best = best;
        let mut candidate = std::mem::take(&mut self.candidate);
        self.greedy.decide(sim, &mut candidate);
        let v = self.value(sim, &candidate);
        if v > best_value {
            best_value = v;
            self.best.copy_from_slice(&candidate);
        }
        self.flip_order(sim);
        for i in 0..self.order.len() {
            let u = self.order[i].1;
            candidate.copy_from_slice(&self.best);
            candidate[u] = match candidate[u] {
                Action::Local => Action::Offload,
                Action::Offload => Action::Local,
            };
            let v = self.value(sim, &candidate);
            if v > best_value {
                best_value = v;
                self.best.copy_from_slice(&candidate);
            }
        }
        self.candidate = candidate;
        actions.copy_from_slice(&self.best);
    }
}
