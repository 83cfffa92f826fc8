//! What a world model is given, and what it reports, when it assists a PPO update.
//!
//! PPO hands its model-based helper (WM-PPO's [`crate::wm_ppo`] or the GRU ablation's
//! [`crate::gru_assist`]) the finished rollout — after GAE, before the update — with the
//! networks that collected it, and the helper may change the rollout's advantages and
//! returns or append weighted samples.

use edgewise_policy::Mlp;

/// The rollout's shape and the learner's state a helper may read.
#[derive(Debug)]
pub(crate) struct AssistInput<'a> {
    /// Vector steps in the rollout.
    pub steps: usize,
    /// Agent rows per step.
    pub agents: usize,
    pub obs_dim: usize,
    pub num_actions: usize,
    pub gamma: f32,
    pub lambda: f32,
    /// Normalised observations are clipped to ±this.
    pub obs_clip: f32,
    /// Normalised observation after the last step (`agents × obs_dim`).
    pub last_obs: &'a [f32],
    pub actor: &'a Mlp,
    pub critic: &'a Mlp,
}

/// What a helper did to one update (all zero / `None` for plain PPO).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct AssistReport {
    /// Held-out validation error of the model on this rollout, before training on it.
    pub error: Option<f64>,
    /// Held-out error on the action-dependent observation features (WM-PPO).
    pub error_response: Option<f64>,
    /// Held-out error on the per-action reward (WM-PPO).
    pub error_reward: Option<f64>,
    /// Mean ensemble disagreement on the counterfactual advantages (WM-PPO).
    pub spread: Option<f64>,
    /// How much the model was trusted (0 = not used, 1 = fully).
    pub trust: f64,
    /// Imagined samples appended.
    pub imagined: usize,
    /// Real samples whose advantage took a counterfactual part.
    pub counterfactual: usize,
}
