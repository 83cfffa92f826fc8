//! Splitting a learner iteration's wall time into rollout and learning, from outside.
//!
//! The learner library reads no clock, so the app wraps the environment: an iteration
//! starts with the rollout and the learner drains the environment's finished episodes
//! once, when its rollout ends (`Ppo::collect`); everything after that (advantages, the
//! world model, imagination, the gradient updates) is learning. [`RolloutClock`] notes
//! the time of that drain and [`RolloutClock::split`] turns it into the two parts.

use std::time::{Duration, Instant};

use edgewise_env::{EpisodeInfo, VecEnv};

/// A [`VecEnv`] that remembers when its finished episodes were last drained.
pub struct RolloutClock<'a> {
    inner: &'a mut dyn VecEnv,
    drained_at: Option<Instant>,
}

/// Rollout and learning time of one iteration.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Split {
    pub rollout: Duration,
    pub learn: Duration,
}

impl<'a> RolloutClock<'a> {
    pub fn new(inner: &'a mut dyn VecEnv) -> Self {
        Self {
            inner,
            drained_at: None,
        }
    }

    /// The split of the iteration that started at `started` and ended at `ended`, or
    /// `None` when the learner did not drain the environment during it (the split is
    /// then unknown rather than guessed).
    pub fn split(&mut self, started: Instant, ended: Instant) -> Option<Split> {
        let drained = self.drained_at.take()?;
        if drained < started || drained > ended {
            return None;
        }
        Some(Split {
            rollout: drained - started,
            learn: ended - drained,
        })
    }
}

impl VecEnv for RolloutClock<'_> {
    fn num_envs(&self) -> usize {
        self.inner.num_envs()
    }
    fn agents_per_env(&self) -> usize {
        self.inner.agents_per_env()
    }
    fn obs_dim(&self) -> usize {
        self.inner.obs_dim()
    }
    fn num_actions(&self) -> usize {
        self.inner.num_actions()
    }
    fn reset(&mut self, seed: u64, obs: &mut [f32]) {
        self.inner.reset(seed, obs);
    }
    fn step(&mut self, actions: &[u32], obs: &mut [f32], rewards: &mut [f32], dones: &mut [bool]) {
        self.inner.step(actions, obs, rewards, dones);
    }
    fn active_agents(&self, mask: &mut [bool]) {
        self.inner.active_agents(mask);
    }
    fn truncations(&self, truncated: &mut [bool], final_obs: &mut [f32]) {
        self.inner.truncations(truncated, final_obs);
    }
    fn late_rewards(&self, late: &mut [f32]) -> bool {
        self.inner.late_rewards(late)
    }
    fn drain_finished(&mut self, out: &mut Vec<EpisodeInfo>) {
        self.inner.drain_finished(out);
        self.drained_at = Some(Instant::now());
    }
}
