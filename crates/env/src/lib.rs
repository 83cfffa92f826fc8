//! The vectorised multi-agent environment interface shared by simulators and learners.
//!
//! A learner (crate `rl`) drives any [`VecEnv`]: a batch of `num_envs` independent
//! environments, each with `agents_per_env` decision makers that share one policy
//! (CartPole has one agent; the MEC simulator has one agent per device). Observations,
//! actions and rewards are flat, row-major buffers owned by the caller, so stepping a
//! batch allocates nothing.
//!
//! Environments whose agents can decide one after another within a step, each seeing the
//! choices already made, also implement [`SequentialVecEnv`].
//!
//! This crate has no dependencies and never does I/O: it is the only thing the
//! learner knows about a simulator.

/// Summary of one finished episode, reported by [`VecEnv::drain_finished`].
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeInfo {
    /// Index of the environment in the batch.
    pub env: usize,
    /// Undiscounted sum of the environment-level reward over the episode.
    pub episode_return: f64,
    /// Number of steps in the episode.
    pub length: usize,
    /// Domain metrics (for MEC: latency, violation rate, accuracy, ...).
    pub extras: Vec<(&'static str, f64)>,
}

/// A batch of environments stepped in lock-step.
///
/// Buffer layouts (all row-major):
/// - observations: `num_envs * agents_per_env * obs_dim`
/// - actions and action masks: `num_envs * agents_per_env`
/// - rewards: `num_envs * agents_per_env` (an agent's share of its environment's reward)
/// - dones: `num_envs`
///
/// When an environment's episode ends, `step` reports `done = true` for it and writes
/// the first observation of the next episode (auto-reset), as is standard for
/// vectorised PPO.
///
/// An episode ends in one of two ways, and learners must tell them apart:
/// - **terminated**: the task itself ended (the pole fell); nothing follows, so the
///   value after the last step is zero;
/// - **truncated**: an outside limit cut it (a time limit, the end of a simulated
///   horizon); the task would have gone on, so a learner bootstraps from the value of
///   the observation the episode ended in. [`VecEnv::truncations`] reports which `done`s
///   of the last step were truncations, with those final observations (which auto-reset
///   has already replaced in the `obs` buffer).
pub trait VecEnv {
    /// Number of environments in the batch.
    fn num_envs(&self) -> usize;
    /// Decision makers per environment (all share one policy).
    fn agents_per_env(&self) -> usize;
    /// Features per agent observation.
    fn obs_dim(&self) -> usize;
    /// Number of discrete actions per agent.
    fn num_actions(&self) -> usize;
    /// Reset every environment; environment `i` is seeded from `seed` and `i`.
    fn reset(&mut self, seed: u64, obs: &mut [f32]);
    /// Apply one action per agent and advance every environment by one step.
    fn step(&mut self, actions: &[u32], obs: &mut [f32], rewards: &mut [f32], dones: &mut [bool]);
    /// Which agents have a decision to make this step (`true` = its action matters).
    /// Learners may skip masked-out agents in their loss. Default: all active.
    fn active_agents(&self, mask: &mut [bool]) {
        mask.fill(true);
    }
    /// After [`VecEnv::step`]: which environments' episodes were *truncated* in that step
    /// (`truncated`, `num_envs` entries; `true` implies the step reported `done`), and for
    /// each of them the final observation of the cut episode, written into its rows of
    /// `final_obs` (laid out like the observation buffer; the rows of other environments
    /// are left untouched). Default: every `done` is a termination.
    fn truncations(&self, truncated: &mut [bool], final_obs: &mut [f32]) {
        let _ = final_obs;
        truncated.fill(false);
    }
    /// After [`VecEnv::step`]: corrections to the rewards of the step *before* it that
    /// the environment could only work out now (a cost that shows up a step late), laid
    /// out like the rewards; every entry is written, zero where there is none. Returns
    /// whether any entry may be non-zero. An environment whose previous step ended an
    /// episode reports none for it, and a learner that cannot apply one (its previous
    /// step belongs to a batch already learned from) keeps the reward it had. Default:
    /// none.
    fn late_rewards(&self, late: &mut [f32]) -> bool {
        late.fill(0.0);
        false
    }
    /// Move the summaries of episodes finished since the last call into `out`.
    fn drain_finished(&mut self, out: &mut Vec<EpisodeInfo>);
    /// This batch as a [`SequentialVecEnv`], if it supports sequential decisions (so a
    /// learner generic over `VecEnv` can use them where offered). Default: `None`.
    fn as_sequential(&mut self) -> Option<&mut dyn SequentialVecEnv> {
        None
    }
}

/// Optional extension of [`VecEnv`]: coordinated (sequential) decisions within a step.
///
/// In the plain protocol every agent of an environment decides at once from the state
/// before the step, so agents that see the same state choose alike (and, say, all congest
/// one server). Here an environment's deciding agents act one after another in a
/// *broadcast order*, and each sees what the agents before it committed. Per step, for
/// every environment `env`:
///
/// 1. [`SequentialVecEnv::decision_order`] lists the agents that decide this step, in
///    order (agents not listed have no decision to make; see [`VecEnv::active_agents`]);
/// 2. for each listed agent in turn: [`SequentialVecEnv::observe_agent`] writes its
///    observation given the commitments so far, the learner chooses, and
///    [`SequentialVecEnv::commit`] announces the choice;
/// 3. [`VecEnv::step`] advances as usual: a committed agent's action is the one it
///    committed (its entry in `actions` is ignored), every other agent's comes from
///    `actions`; commitments are cleared.
///
/// The observations [`VecEnv::step`] and [`VecEnv::reset`] write are those of the plain
/// protocol (nothing committed yet), i.e. what the first agent in the order sees.
/// Learners may batch across environments by position in the order. The methods take
/// `&mut self` so that a batch of batches (a population mix) can reach its parts through
/// [`VecEnv::as_sequential`].
pub trait SequentialVecEnv: VecEnv {
    /// The agents of environment `env` that decide in the current step, in the order
    /// they decide (written into `order`, replacing its contents).
    fn decision_order(&mut self, env: usize, order: &mut Vec<usize>);
    /// Write the observation (`obs_dim` values) of agent `agent` of environment `env`,
    /// given what was committed so far in this step.
    fn observe_agent(&mut self, env: usize, agent: usize, obs: &mut [f32]);
    /// Announce agent `agent`'s action for this step; the observations of agents after
    /// it reflect it.
    ///
    /// # Panics
    /// Implementations may panic when an agent commits twice in one step.
    fn commit(&mut self, env: usize, agent: usize, action: u32);
}
