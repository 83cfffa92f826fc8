//! Rollout storage and generalised advantage estimation (GAE(λ)).
//!
//! Rows are `[t][agent]` row-major: `steps × agents` real rows, then any extra rows a
//! world model appends (imagined samples; they carry their own advantages and returns).

/// What one rollout collected, plus its advantages and returns once computed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Rollout {
    /// Normalised observations, `rows × obs_dim`.
    pub obs: Vec<f32>,
    pub actions: Vec<u32>,
    /// Log-probability of the action under the policy that acted.
    pub logp: Vec<f32>,
    /// Critic values at collection time.
    pub values: Vec<f32>,
    /// (Scaled) rewards.
    pub rewards: Vec<f32>,
    pub dones: Vec<bool>,
    /// The episode was cut by a limit (a `done` that is not a termination).
    pub truncated: Vec<bool>,
    /// Value of the final observation of a truncated episode (0 elsewhere): the
    /// bootstrap that replaces the next value, which belongs to the next episode.
    pub final_values: Vec<f32>,
    /// The agent had a decision to make ([`edgewise_env::VecEnv::active_agents`]).
    pub active: Vec<bool>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
    /// Loss weight per row: 1 for real samples, less for imagined ones.
    pub weights: Vec<f32>,
}

impl Rollout {
    /// Size every array for `rows` real rows of `obs_dim` features, dropping rows
    /// appended by the previous update.
    pub fn resize(&mut self, rows: usize, obs_dim: usize) {
        self.obs.resize(rows * obs_dim, 0.0);
        self.actions.resize(rows, 0);
        self.logp.resize(rows, 0.0);
        self.values.resize(rows, 0.0);
        self.rewards.resize(rows, 0.0);
        self.dones.resize(rows, false);
        self.truncated.resize(rows, false);
        self.final_values.resize(rows, 0.0);
        self.active.resize(rows, true);
        self.weights.resize(rows, 1.0);
    }

    /// GAE(λ) advantages and returns of the `steps × agents` real rows, bootstrapping
    /// from `last_values` (one per agent, the value after the last step). A `done`
    /// cuts the trace; after a truncation the value of the cut episode's final
    /// observation (`final_values`) stands in for the next value, after a termination 0.
    pub fn gae(
        &mut self,
        steps: usize,
        agents: usize,
        last_values: &[f32],
        gamma: f32,
        lambda: f32,
    ) {
        let n = agents;
        self.advantages.resize(steps * n, 0.0);
        self.returns.resize(steps * n, 0.0);
        for (i, &bootstrap) in last_values.iter().enumerate() {
            let mut last = 0.0f32;
            for t in (0..steps).rev() {
                let k = t * n + i;
                let next_value = if t + 1 == steps {
                    bootstrap
                } else {
                    self.values[k + n]
                };
                let not_done = if self.dones[k] { 0.0 } else { 1.0 };
                let after = if self.dones[k] {
                    self.final_values[k]
                } else {
                    next_value
                };
                let delta = self.rewards[k] + gamma * after - self.values[k];
                last = delta + gamma * lambda * not_done * last;
                self.advantages[k] = last;
                self.returns[k] = last + self.values[k];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_with_lambda_one_is_the_discounted_return_minus_the_value() {
        // One agent, three steps, no done, bootstrap 2.
        let mut r = Rollout::default();
        r.resize(3, 1);
        r.rewards.copy_from_slice(&[1.0, 0.0, 3.0]);
        r.values.copy_from_slice(&[0.5, 0.25, 1.0]);
        r.gae(3, 1, &[2.0], 0.5, 1.0);
        let g0 = 1.0 + 0.5 * 0.0 + 0.25 * 3.0 + 0.125 * 2.0;
        assert!((r.returns[0] - g0).abs() < 1e-6, "{:?}", r.returns);
        assert!((r.advantages[0] - (g0 - 0.5)).abs() < 1e-6);
        // λ = 0: one-step TD errors.
        r.gae(3, 1, &[2.0], 0.5, 0.0);
        assert!((r.advantages[1] - (0.0 + 0.5 * 1.0 - 0.25)).abs() < 1e-6);
    }
}
