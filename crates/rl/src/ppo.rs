//! Proximal Policy Optimisation with the standard implementation details.
//!
//! Rollouts run the policy in plain Rust on `f32` slices ([`Mlp`], copied from the burn
//! module after every update) because a batch of a few dozen agents is far too small for
//! a tensor framework's per-operation overhead to pay off; the learning itself (losses,
//! gradients, Adam) runs on burn's autodiff.
//!
//! Details, as in the well-known "37 implementation details of PPO": vectorised
//! environments, GAE(λ), clipped surrogate objective, clipped value loss, per-minibatch
//! advantage normalisation, entropy bonus, orthogonal initialisation (√2 hidden, 0.01
//! policy head, 1 value head), Adam (ε = 1e-5) with linear learning-rate annealing,
//! several epochs of shuffled minibatches, global gradient-norm clipping, running
//! observation normalisation and reward scaling by the running std of the discounted
//! return. Actions are discrete and factorised per agent: every agent of every
//! environment is one row through the same network, so one policy serves any
//! `agents_per_env`. Agents that [`VecEnv::active_agents`] marks inactive are left out
//! of the policy and entropy terms and of the advantage statistics.

use burn::module::ParamId;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData, activation};
use edgewise_env::{EpisodeInfo, VecEnv};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RlError};
use crate::model::ActorCritic;
use crate::normalize::{ObsNormalizer, RewardScaler};
use crate::policy::{Mlp, MlpScratch, ObsNorm, PolicyFile, softmax_in_place};
use crate::wm::{Prediction, Segment, WmConfig, WmScratch, WorldModelTrainer};
use edgewise_rng::Rng;

/// PPO hyper-parameters. Every field has a default (see [`PpoConfig::default`]), so a
/// TOML/JSON file needs only the fields it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// Environment steps (`num_envs` per vector step) over which the learning rate is
    /// annealed to zero; also the default training budget. Default 100 000.
    pub total_env_steps: u64,
    /// Vector steps per rollout (per environment). Default 128.
    pub rollout_steps: usize,
    /// Adam learning rate at the start. Default 2.5e-4.
    pub learning_rate: f64,
    /// Anneal the learning rate linearly to zero over `total_env_steps`. Default true.
    pub anneal_lr: bool,
    /// Discount factor γ. Default 0.99.
    pub gamma: f64,
    /// GAE λ. Default 0.95.
    pub gae_lambda: f64,
    /// Minibatches per epoch. Default 4.
    pub minibatches: usize,
    /// Passes over each rollout. Default 4.
    pub epochs: usize,
    /// Surrogate clipping range ε. Default 0.2.
    pub clip_coef: f32,
    /// Clip the value loss around the old values with the same ε. Default true.
    pub clip_value_loss: bool,
    /// Weight of the value loss. Default 0.5.
    pub value_coef: f32,
    /// Weight of the entropy bonus. Default 0.01.
    pub entropy_coef: f32,
    /// Global gradient-norm limit. Default 0.5.
    pub max_grad_norm: f32,
    /// Normalise advantages per minibatch. Default true.
    pub normalize_advantages: bool,
    /// Running observation normalisation. Default true.
    pub normalize_observations: bool,
    /// Clip normalised observations to ±this. Default 10.
    pub obs_clip: f64,
    /// Scale rewards by the running std of the discounted return. Default true.
    pub scale_rewards: bool,
    /// Clip scaled rewards to ±this. Default 10.
    pub reward_clip: f64,
    /// Hidden layer widths of both networks. Default `[64, 64]`.
    pub hidden: Vec<usize>,
    /// Adam ε. Default 1e-5.
    pub adam_epsilon: f32,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            total_env_steps: 100_000,
            rollout_steps: 128,
            learning_rate: 2.5e-4,
            anneal_lr: true,
            gamma: 0.99,
            gae_lambda: 0.95,
            minibatches: 4,
            epochs: 4,
            clip_coef: 0.2,
            clip_value_loss: true,
            value_coef: 0.5,
            entropy_coef: 0.01,
            max_grad_norm: 0.5,
            normalize_advantages: true,
            normalize_observations: true,
            obs_clip: 10.0,
            scale_rewards: true,
            reward_clip: 10.0,
            hidden: vec![64, 64],
            adam_epsilon: 1e-5,
        }
    }
}

impl PpoConfig {
    /// Check every field; the error names the first bad one.
    ///
    /// # Errors
    /// [`RlError::Config`] for a field out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| {
            Err(RlError::Config {
                field,
                reason: reason.into(),
            })
        };
        if self.rollout_steps == 0 {
            return bad("rollout_steps", "must be at least 1");
        }
        if self.minibatches == 0 {
            return bad("minibatches", "must be at least 1");
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if !positive(self.learning_rate) {
            return bad("learning_rate", "must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return bad("gamma", "must be in [0, 1]");
        }
        if !(0.0..=1.0).contains(&self.gae_lambda) {
            return bad("gae_lambda", "must be in [0, 1]");
        }
        if !positive(f64::from(self.clip_coef)) {
            return bad("clip_coef", "must be positive");
        }
        if !positive(f64::from(self.max_grad_norm)) {
            return bad("max_grad_norm", "must be positive");
        }
        if !positive(self.obs_clip) {
            return bad("obs_clip", "must be positive");
        }
        if !positive(self.reward_clip) {
            return bad("reward_clip", "must be positive");
        }
        if self.hidden.contains(&0) {
            return bad("hidden", "layer widths must be at least 1");
        }
        if self.total_env_steps == 0 {
            return bad("total_env_steps", "must be at least 1");
        }
        Ok(())
    }
}

fn positive(x: f64) -> bool {
    x > 0.0 && x.is_finite()
}

/// Sizes of the environment batch a learner was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvSpec {
    /// Environments in the batch.
    pub num_envs: usize,
    /// Agents per environment.
    pub agents_per_env: usize,
    /// Features per agent observation.
    pub obs_dim: usize,
    /// Actions per agent.
    pub num_actions: usize,
}

impl EnvSpec {
    /// Read the sizes of `env`.
    pub fn of(env: &dyn VecEnv) -> Self {
        Self {
            num_envs: env.num_envs(),
            agents_per_env: env.agents_per_env(),
            obs_dim: env.obs_dim(),
            num_actions: env.num_actions(),
        }
    }

    /// Agent rows per vector step.
    #[must_use]
    pub fn agents(&self) -> usize {
        self.num_envs * self.agents_per_env
    }

    pub(crate) fn check(&self, env: &dyn VecEnv) -> Result<()> {
        let got = Self::of(env);
        if got == *self {
            Ok(())
        } else {
            Err(RlError::EnvMismatch(format!(
                "learner built for {self:?}, environment is {got:?}"
            )))
        }
    }
}

/// Statistics of one rollout-and-update iteration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationStats {
    /// Iterations completed (this one included).
    pub iteration: u64,
    /// Environment steps taken so far.
    pub env_steps: u64,
    /// Learning rate used for this update.
    pub learning_rate: f64,
    /// Mean return of the episodes that finished during this rollout (NaN if none).
    pub mean_return: f64,
    /// Episodes that finished during this rollout.
    pub episodes: usize,
    /// Policy loss of the last minibatch.
    pub policy_loss: f32,
    /// Value loss of the last minibatch.
    pub value_loss: f32,
    /// Mean entropy of the last minibatch.
    pub entropy: f32,
    /// Approximate KL(old‖new) over the last epoch.
    pub approx_kl: f32,
    /// Fraction of samples whose ratio was clipped in the last epoch.
    pub clip_fraction: f32,
    /// WM-PPO: the world model's validation error on this rollout, measured before
    /// training on it (`None` for plain PPO).
    pub wm_error: Option<f64>,
    /// WM-PPO: how much the model was trusted this iteration (0 = not used, 1 = fully).
    pub wm_trust: f64,
    /// WM-PPO: imagined samples added to this update.
    pub imagined: usize,
}

/// Learner state that is not tensors: serialised into checkpoints as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PpoState {
    pub config: PpoConfig,
    pub spec: EnvSpec,
    pub seed: u64,
    pub rng: Rng,
    pub obs_norm: ObsNormalizer,
    pub reward_scaler: RewardScaler,
    pub iteration: u64,
    pub env_steps: u64,
}

/// A PPO learner bound to one environment shape.
pub struct Ppo {
    pub(crate) state: PpoState,
    pub(crate) device: Device,
    pub(crate) model: Option<ActorCritic>,
    pub(crate) optim: ModuleOptimizer,
    param_ids: Vec<(ParamId, usize)>,
    actor: Mlp,
    critic: Mlp,
    /// Raw observations of the current step; `None` until the environments are reset.
    raw_obs: Option<Vec<f32>>,
    buf: Rollout,
    finished: Vec<EpisodeInfo>,
    pub(crate) wm: Option<Box<WmAssist>>,
}

/// The world-model part of WM-PPO.
#[derive(Debug)]
pub(crate) struct WmAssist {
    pub(crate) trainer: WorldModelTrainer,
    pub(crate) rng: Rng,
}

impl std::fmt::Debug for Ppo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ppo")
            .field("state", &self.state)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Rollout storage, `[t][agent]` row-major.
#[derive(Debug, Default, Clone)]
struct Rollout {
    obs: Vec<f32>,
    actions: Vec<u32>,
    logp: Vec<f32>,
    values: Vec<f32>,
    rewards: Vec<f32>,
    dones: Vec<bool>,
    /// The episode was cut by a limit (a `done` that is not a termination).
    truncated: Vec<bool>,
    /// Value of the final observation of a truncated episode (0 elsewhere): the
    /// bootstrap that replaces the next value, which belongs to the next episode.
    final_values: Vec<f32>,
    active: Vec<bool>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
    /// Loss weight per row: 1 for real samples, less for imagined ones (appended after
    /// the real rows by WM-PPO).
    weights: Vec<f32>,
}

impl Ppo {
    /// A fresh learner for environments shaped like `env`. All randomness (weight
    /// initialisation, action sampling, minibatch shuffling, environment seeds) is drawn
    /// from `seed`; `device` is where burn learns (wrapped with autodiff here).
    ///
    /// # Errors
    /// [`RlError::Config`] if `config` does not validate.
    pub fn new(config: PpoConfig, env: &dyn VecEnv, device: &Device, seed: u64) -> Result<Self> {
        config.validate()?;
        let spec = EnvSpec::of(env);
        if spec.agents() == 0 || spec.obs_dim == 0 || spec.num_actions == 0 {
            return Err(RlError::EnvMismatch(format!("empty environment {spec:?}")));
        }
        let device = device.clone().autodiff();
        device.seed(seed);
        let mut rng = Rng::new(seed);
        let model = ActorCritic::new(
            spec.obs_dim,
            &config.hidden,
            spec.num_actions,
            &mut rng,
            &device,
        );
        let state = PpoState {
            obs_norm: ObsNormalizer::new(spec.obs_dim, config.obs_clip),
            reward_scaler: RewardScaler::new(spec.agents(), config.gamma, config.reward_clip),
            config,
            spec,
            seed,
            rng,
            iteration: 0,
            env_steps: 0,
        };
        Ok(Self::assemble(state, device, model))
    }

    pub(crate) fn assemble(state: PpoState, device: Device, model: ActorCritic) -> Self {
        let optim = AdamConfig::new()
            .with_epsilon(state.config.adam_epsilon)
            .init();
        let param_ids = model.param_ids();
        let actor = model.actor.to_plain();
        let critic = model.critic.to_plain();
        Self {
            state,
            device,
            model: Some(model),
            optim,
            param_ids,
            actor,
            critic,
            raw_obs: None,
            buf: Rollout::default(),
            finished: Vec::new(),
            wm: None,
        }
    }

    /// A WM-PPO learner (design §5): PPO as [`Ppo::new`], plus a GRU world model trained
    /// on the collected transitions and used for model-based value targets and short
    /// imagination rollouts, each weighted by the model's validation error.
    ///
    /// # Errors
    /// [`RlError::Config`] if either configuration does not validate.
    pub fn with_world_model(
        config: PpoConfig,
        wm: WmConfig,
        env: &dyn VecEnv,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        let mut ppo = Self::new(config, env, device, seed)?;
        let spec = ppo.state.spec;
        let trainer = WorldModelTrainer::new(wm, spec.obs_dim, spec.num_actions, device, seed)?;
        ppo.wm = Some(Box::new(WmAssist {
            trainer,
            rng: Rng::stream(seed, 0x1a9),
        }));
        Ok(ppo)
    }

    /// Whether this learner uses a world model (WM-PPO).
    #[must_use]
    pub fn has_world_model(&self) -> bool {
        self.wm.is_some()
    }

    /// The hyper-parameters.
    #[must_use]
    pub fn config(&self) -> &PpoConfig {
        &self.state.config
    }

    /// Environment steps taken so far.
    #[must_use]
    pub fn env_steps(&self) -> u64 {
        self.state.env_steps
    }

    /// Iterations (rollout + update) completed so far.
    #[must_use]
    pub fn iteration(&self) -> u64 {
        self.state.iteration
    }

    /// The environment shape this learner drives.
    #[must_use]
    pub fn spec(&self) -> EnvSpec {
        self.state.spec
    }

    /// Episodes finished since the last call (for logging).
    pub fn drain_finished(&mut self, out: &mut Vec<EpisodeInfo>) {
        out.append(&mut self.finished);
    }

    /// The current policy as an exportable, burn-free [`PolicyFile`].
    ///
    /// # Panics
    /// Never: the networks are consistent by construction.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)]
    pub fn policy(&self) -> PolicyFile {
        let norm = if self.state.config.normalize_observations {
            let s = &self.state.obs_norm;
            ObsNorm {
                mean: s.stats.mean.iter().map(|&m| m as f32).collect(),
                var: s.stats.var.iter().map(|&v| v as f32).collect(),
                epsilon: s.epsilon as f32,
                clip: s.clip as f32,
            }
        } else {
            let d = self.state.spec.obs_dim;
            ObsNorm {
                mean: vec![0.0; d],
                var: vec![1.0; d],
                epsilon: 0.0,
                clip: f32::MAX,
            }
        };
        let mut file = PolicyFile::new(norm, self.actor.clone()).expect("consistent policy");
        file.meta
            .insert("env_steps".into(), self.state.env_steps.into());
        file.meta.insert("seed".into(), self.state.seed.into());
        file.meta
            .insert("obs_dim".into(), self.state.spec.obs_dim.into());
        file
    }

    /// Learning rate for the coming update.
    #[allow(clippy::cast_precision_loss)]
    fn learning_rate(&self) -> f64 {
        let c = &self.state.config;
        if !c.anneal_lr {
            return c.learning_rate;
        }
        let per_iter = (self.state.spec.num_envs * c.rollout_steps) as f64;
        let total_iters = (c.total_env_steps as f64 / per_iter).ceil().max(1.0);
        let frac = 1.0 - self.state.iteration as f64 / total_iters;
        c.learning_rate * frac.max(0.0)
    }

    /// Ask the next iteration to restart the environments (from a seed derived from the
    /// run seed and the iteration), as happens after loading a checkpoint.
    pub(crate) fn restart_envs(&mut self) {
        self.raw_obs = None;
    }

    /// One iteration: collect `rollout_steps` vector steps from `env`, then update.
    ///
    /// # Errors
    /// [`RlError::EnvMismatch`] if `env` has another shape than the learner.
    pub fn iterate(&mut self, env: &mut dyn VecEnv) -> Result<IterationStats> {
        self.state.spec.check(env)?;
        let before = self.finished.len();
        self.collect(env);
        let episodes = &self.finished[before..];
        #[allow(clippy::cast_precision_loss)]
        let mean_return = if episodes.is_empty() {
            f64::NAN
        } else {
            episodes.iter().map(|e| e.episode_return).sum::<f64>() / episodes.len() as f64
        };
        let episodes = episodes.len();
        self.compute_gae();
        let (wm_error, wm_trust, imagined) = self.wm_assist();
        let lr = self.learning_rate();
        let mut stats = self.update(lr);
        stats.wm_error = wm_error;
        stats.wm_trust = wm_trust;
        stats.imagined = imagined;
        self.state.iteration += 1;
        stats.iteration = self.state.iteration;
        stats.env_steps = self.state.env_steps;
        stats.learning_rate = lr;
        stats.mean_return = mean_return;
        stats.episodes = episodes;
        Ok(stats)
    }

    /// Train until `env_steps` environment steps have been taken in total, calling
    /// `on_iteration` after each iteration.
    ///
    /// # Errors
    /// As [`Ppo::iterate`].
    pub fn train(
        &mut self,
        env: &mut dyn VecEnv,
        env_steps: u64,
        mut on_iteration: impl FnMut(&IterationStats),
    ) -> Result<()> {
        while self.state.env_steps < env_steps {
            let s = self.iterate(env)?;
            on_iteration(&s);
        }
        Ok(())
    }

    fn collect(&mut self, env: &mut dyn VecEnv) {
        let spec = self.state.spec;
        let (n, d, a) = (spec.agents(), spec.obs_dim, spec.num_actions);
        let t_max = self.state.config.rollout_steps;
        let buf = &mut self.buf;
        buf.obs.resize(t_max * n * d, 0.0);
        buf.actions.resize(t_max * n, 0);
        buf.logp.resize(t_max * n, 0.0);
        buf.values.resize(t_max * n, 0.0);
        buf.rewards.resize(t_max * n, 0.0);
        buf.dones.resize(t_max * n, false);
        buf.truncated.resize(t_max * n, false);
        buf.final_values.resize(t_max * n, 0.0);
        buf.active.resize(t_max * n, true);
        buf.weights.resize(t_max * n, 1.0);

        let raw = self.raw_obs.get_or_insert_with(|| {
            let mut o = vec![0.0; n * d];
            let env_seed =
                edgewise_rng::splitmix64(self.state.seed ^ self.state.iteration.rotate_left(32));
            env.reset(env_seed, &mut o);
            o
        });
        let mut logits = vec![0.0f32; n * a];
        let mut values = vec![0.0f32; n];
        let mut rewards = vec![0.0f32; n];
        let mut env_dones = vec![false; spec.num_envs];
        let mut agent_dones = vec![false; n];
        let mut env_truncated = vec![false; spec.num_envs];
        let mut final_raw = vec![0.0f32; n * d];
        let mut final_norm = vec![0.0f32; spec.agents_per_env * d];
        let mut final_values = vec![0.0f32; spec.agents_per_env];
        let mut actions = vec![0u32; n];
        let mut scratch = MlpScratch::default();
        let cfg = &self.state.config;

        for t in 0..t_max {
            let rows = t * n..(t + 1) * n;
            let active = &mut buf.active[rows.clone()];
            env.active_agents(active);
            let obs_t = &mut buf.obs[t * n * d..(t + 1) * n * d];
            if cfg.normalize_observations {
                self.state.obs_norm.stats.update(raw, None);
                self.state.obs_norm.normalize(raw, obs_t);
            } else {
                obs_t.copy_from_slice(raw);
            }
            self.actor.forward(obs_t, n, &mut scratch, &mut logits);
            self.critic.forward(obs_t, n, &mut scratch, &mut values);
            for i in 0..n {
                let p = &mut logits[i * a..(i + 1) * a];
                softmax_in_place(p);
                let act = self.state.rng.categorical(p);
                actions[i] = u32::try_from(act).unwrap_or(0);
                buf.logp[t * n + i] = p[act].max(1e-30).ln();
            }
            buf.values[rows.clone()].copy_from_slice(&values);
            buf.actions[rows.clone()].copy_from_slice(&actions);
            env.step(&actions, raw, &mut rewards, &mut env_dones);
            env.truncations(&mut env_truncated, &mut final_raw);
            for (i, d) in agent_dones.iter_mut().enumerate() {
                *d = env_dones[i / spec.agents_per_env];
            }
            if cfg.scale_rewards {
                self.state.reward_scaler.scale(&mut rewards, &agent_dones);
            }
            buf.rewards[rows.clone()].copy_from_slice(&rewards);
            buf.dones[rows.clone()].copy_from_slice(&agent_dones);
            // Truncated episodes: bootstrap from the value of their final observation.
            let per = spec.agents_per_env;
            for e in 0..spec.num_envs {
                let k0 = t * n + e * per;
                let cut = env_truncated[e] && env_dones[e];
                buf.truncated[k0..k0 + per].fill(cut);
                if !cut {
                    buf.final_values[k0..k0 + per].fill(0.0);
                    continue;
                }
                let src = &final_raw[e * per * d..(e + 1) * per * d];
                if cfg.normalize_observations {
                    self.state.obs_norm.normalize(src, &mut final_norm);
                } else {
                    final_norm.copy_from_slice(src);
                }
                self.critic
                    .forward(&final_norm, per, &mut scratch, &mut final_values);
                buf.final_values[k0..k0 + per].copy_from_slice(&final_values);
            }
            self.state.env_steps += spec.num_envs as u64;
        }
        env.drain_finished(&mut self.finished);
    }

    #[allow(clippy::cast_possible_truncation)]
    fn compute_gae(&mut self) {
        let spec = self.state.spec;
        let (n, d) = (spec.agents(), spec.obs_dim);
        let t_max = self.state.config.rollout_steps;
        let (gamma, lambda) = (
            self.state.config.gamma as f32,
            self.state.config.gae_lambda as f32,
        );
        // Bootstrap values of the observation after the last step.
        let raw = self.raw_obs.as_ref().expect("collected");
        let mut next_obs = vec![0.0; n * d];
        if self.state.config.normalize_observations {
            self.state.obs_norm.normalize(raw, &mut next_obs);
        } else {
            next_obs.copy_from_slice(raw);
        }
        let mut last_values = vec![0.0; n];
        self.critic
            .forward(&next_obs, n, &mut MlpScratch::default(), &mut last_values);

        let buf = &mut self.buf;
        buf.advantages.resize(t_max * n, 0.0);
        buf.returns.resize(t_max * n, 0.0);
        for (i, &bootstrap) in last_values.iter().enumerate() {
            let mut last = 0.0f32;
            for t in (0..t_max).rev() {
                let k = t * n + i;
                let next_value = if t + 1 == t_max {
                    bootstrap
                } else {
                    buf.values[k + n]
                };
                let not_done = if buf.dones[k] { 0.0 } else { 1.0 };
                // After a truncation the episode would have gone on: its value is that
                // of the final observation (0 after a termination).
                let after = if buf.dones[k] {
                    buf.final_values[k]
                } else {
                    next_value
                };
                let delta = buf.rewards[k] + gamma * after - buf.values[k];
                last = delta + gamma * lambda * not_done * last;
                buf.advantages[k] = last;
                buf.returns[k] = last + buf.values[k];
            }
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn update(&mut self, lr: f64) -> IterationStats {
        let spec = self.state.spec;
        let d = spec.obs_dim;
        let batch = self.buf.actions.len();
        let mb_size = (batch / self.state.config.minibatches).max(1);
        let mut order: Vec<usize> = (0..batch).collect();
        let mut stats = IterationStats::default();
        let mut mb = Minibatch::default();
        for epoch in 0..self.state.config.epochs {
            self.state.rng.shuffle(&mut order);
            let mut kl_sum = 0.0f64;
            let mut clip_sum = 0.0f64;
            let mut count = 0usize;
            for chunk in order.chunks(mb_size) {
                mb.fill(&self.buf, chunk, d, self.state.config.normalize_advantages);
                if mb.active_count == 0 {
                    continue;
                }
                let out = self.step_minibatch(&mb, lr, epoch + 1 == self.state.config.epochs);
                stats.policy_loss = out.policy_loss;
                stats.value_loss = out.value_loss;
                stats.entropy = out.entropy;
                kl_sum += out.kl_sum;
                clip_sum += out.clip_sum;
                count += mb.active_count;
            }
            if count > 0 {
                stats.approx_kl = (kl_sum / count as f64) as f32;
                stats.clip_fraction = (clip_sum / count as f64) as f32;
            }
        }
        let model = self.model.as_ref().expect("model present");
        self.actor = model.actor.to_plain();
        self.critic = model.critic.to_plain();
        stats
    }

    /// WM-PPO's use of the world model, between GAE and the update: measure the model on
    /// the new rollout (held out), train it, then — weighted by how much its error lets
    /// us trust it — blend model-based value targets into the GAE returns of a random
    /// subset of real states and append imagined samples branched from them.
    /// Returns (validation error, trust, imagined samples added).
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::too_many_lines
    )]
    fn wm_assist(&mut self) -> (Option<f64>, f64, usize) {
        let Self {
            wm,
            state,
            buf,
            actor,
            critic,
            raw_obs,
            ..
        } = self;
        let Some(wm) = wm.as_mut() else {
            return (None, 0.0, 0);
        };
        let spec = state.spec;
        let (n, d, na) = (spec.agents(), spec.obs_dim, spec.num_actions);
        let t_max = state.config.rollout_steps;
        let total = t_max * n;
        let raw = raw_obs.as_ref().expect("collected");
        let mut last = vec![0.0; n * d];
        if state.config.normalize_observations {
            state.obs_norm.normalize(raw, &mut last);
        } else {
            last.copy_from_slice(raw);
        }
        let seg = Segment {
            steps: t_max,
            agents: n,
            obs: buf.obs[..total * d].to_vec(),
            last_next_obs: last,
            actions: buf.actions[..total].to_vec(),
            rewards: buf.rewards[..total].to_vec(),
            dones: buf.dones[..total].to_vec(),
            truncated: buf.truncated[..total].to_vec(),
        };
        let err = wm.trainer.validation_error(&seg);
        wm.trainer.push(seg);
        wm.trainer.train();
        let cfg = wm.trainer.config().clone();
        let trust = cfg.trust(err);
        if trust <= 0.0 {
            return (Some(err), 0.0, 0);
        }
        let (gamma, lambda) = (state.config.gamma as f32, state.config.gae_lambda as f32);
        let clip = state.config.obs_clip as f32;
        let hzn = cfg.horizon;

        // Branch starts: a random subset of the real states.
        let n_starts = ((total as f64 * cfg.branch_fraction).round() as usize).clamp(1, total);
        let mut starts: Vec<usize> = (0..total).collect();
        wm.rng.shuffle(&mut starts);
        starts.truncate(n_starts);

        let plain = wm.trainer.plain();
        let hd = plain.hidden();
        let mut h = vec![0.0; n_starts * hd];
        let mut obs: Vec<f32> = Vec::with_capacity(n_starts * d);
        for &k in &starts {
            obs.extend_from_slice(&buf.obs[k * d..(k + 1) * d]);
        }
        let mut acts: Vec<u32> = starts.iter().map(|&k| buf.actions[k]).collect();
        // Per imagined step k (1..=hzn): state, and (k < hzn) action, logp; values for all.
        let mut states: Vec<Vec<f32>> = vec![Vec::new(); hzn + 1];
        let mut actions: Vec<Vec<u32>> = vec![Vec::new(); hzn + 1];
        let mut logps: Vec<Vec<f32>> = vec![Vec::new(); hzn + 1];
        let mut values: Vec<Vec<f32>> = vec![Vec::new(); hzn + 1];
        let mut rewards: Vec<Vec<f32>> = vec![Vec::new(); hzn];
        let mut conts: Vec<Vec<f32>> = vec![Vec::new(); hzn];
        let mut scratch = WmScratch::default();
        let mut mlp = MlpScratch::default();
        let mut pred = Prediction::default();
        let mut logits = vec![0.0f32; n_starts * na];
        for k in 0..hzn {
            if k > 0 {
                actor.forward(&obs, n_starts, &mut mlp, &mut logits);
                let mut lp = Vec::with_capacity(n_starts);
                for (i, p) in logits.chunks_exact_mut(na).enumerate() {
                    softmax_in_place(p);
                    let a = wm.rng.categorical(p);
                    acts[i] = u32::try_from(a).unwrap_or(0);
                    lp.push(p[a].max(1e-30).ln());
                }
                actions[k].clone_from(&acts);
                logps[k] = lp;
            }
            plain.step(&obs, &acts, &mut h, &mut scratch, &mut pred);
            if k == 0 {
                // The first step is real: use the real reward and termination.
                rewards[0] = starts.iter().map(|&j| buf.rewards[j]).collect();
                conts[0] = starts
                    .iter()
                    .map(|&j| {
                        if buf.dones[j] && !buf.truncated[j] {
                            0.0
                        } else {
                            1.0
                        }
                    })
                    .collect();
            } else {
                rewards[k].clone_from(&pred.reward);
                conts[k].clone_from(&pred.cont);
            }
            obs.clone_from(&pred.next_obs);
            obs.iter_mut().for_each(|v| *v = v.clamp(-clip, clip));
            states[k + 1].clone_from(&obs);
            let mut v = vec![0.0; n_starts];
            critic.forward(&obs, n_starts, &mut mlp, &mut v);
            values[k + 1] = v;
        }

        // (1) Model-based value targets blended into the GAE returns.
        let alpha = (cfg.value_blend_max * trust) as f32;
        for (i, &j) in starts.iter().enumerate() {
            let (mut g, mut disc, mut alive) = (0.0f32, 1.0f32, 1.0f32);
            for k in 0..hzn {
                g += disc * alive * rewards[k][i];
                alive *= conts[k][i];
                disc *= gamma;
            }
            g += disc * alive * values[hzn][i];
            buf.returns[j] = (1.0 - alpha) * buf.returns[j] + alpha * g;
        }

        // (2) Imagined samples (states 1..hzn-1) with GAE inside the imagined branch.
        let cap = (total as f64 * cfg.imagined_fraction).round() as usize;
        if hzn < 2 || cap == 0 || cfg.imagined_weight <= 0.0 {
            return (Some(err), trust, 0);
        }
        let mut candidates: Vec<(usize, usize, f32, f32)> = Vec::new(); // (k, i, adv, weight)
        for i in 0..n_starts {
            let mut adv = 0.0f32;
            let mut alive_at = vec![1.0f32; hzn + 1];
            for k in 0..hzn {
                alive_at[k + 1] = alive_at[k] * conts[k][i];
            }
            let mut advs = vec![0.0f32; hzn];
            for k in (1..hzn).rev() {
                let c = conts[k][i];
                let delta = rewards[k][i] + gamma * c * values[k + 1][i] - values[k][i];
                adv = delta + gamma * lambda * c * adv;
                advs[k] = adv;
            }
            for (k, &a) in advs.iter().enumerate().skip(1) {
                candidates.push((k, i, a, alive_at[k]));
            }
        }
        wm.rng.shuffle(&mut candidates);
        candidates.truncate(cap);
        let w = (cfg.imagined_weight * trust) as f32;
        for &(k, i, adv, alive) in &candidates {
            buf.obs.extend_from_slice(&states[k][i * d..(i + 1) * d]);
            buf.actions.push(actions[k][i]);
            buf.logp.push(logps[k][i]);
            let v = values[k][i];
            buf.values.push(v);
            buf.advantages.push(adv);
            buf.returns.push(adv + v);
            buf.active.push(true);
            buf.weights.push(w * alive);
        }
        (Some(err), trust, candidates.len())
    }

    /// One gradient step on a minibatch; returns loss statistics.
    #[allow(clippy::cast_precision_loss)]
    fn step_minibatch(&mut self, mb: &Minibatch, lr: f64, measure: bool) -> StepOut {
        let cfg = &self.state.config;
        let dev = &self.device;
        let m = mb.actions.len();
        let d = self.state.spec.obs_dim;
        let model = self.model.take().expect("model present");

        let obs = Tensor::<2>::from_data(TensorData::new(mb.obs.clone(), [m, d]), dev);
        let actions = Tensor::<2, Int>::from_data(TensorData::new(mb.actions.clone(), [m, 1]), dev);
        let f1 = |v: &Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [m]), dev);
        let (old_logp, adv, ret, old_v, mask) = (
            f1(&mb.logp),
            f1(&mb.adv),
            f1(&mb.ret),
            f1(&mb.old_v),
            f1(&mb.mask),
        );
        let n_active = mb.weight_sum.max(1e-6);
        let vmask = f1(&mb.vmask);
        let v_weight = mb.vmask.iter().sum::<f32>().max(1e-6);

        let logits = model.actor.forward(obs.clone());
        let logp_all = activation::log_softmax(logits, 1);
        let logp = logp_all.clone().gather(1, actions).reshape([m]);
        let entropy = (logp_all.clone().exp() * logp_all)
            .sum_dim(1)
            .reshape([m])
            .neg();
        let ratio = (logp - old_logp).exp();
        let c = cfg.clip_coef;
        let surr1 = adv.clone() * ratio.clone();
        let surr2 = adv * ratio.clone().clamp(1.0 - c, 1.0 + c);
        let policy_loss = (surr1.min_pair(surr2) * mask.clone()).sum().neg() / n_active;
        let entropy_mean = (entropy * mask).sum() / n_active;

        let v = model.critic.forward(obs).reshape([m]);
        let v_loss_unclipped = (v.clone() - ret.clone()).powi_scalar(2);
        let value_loss = if cfg.clip_value_loss {
            let v_clipped = old_v.clone() + (v - old_v).clamp(-c, c);
            let v_loss_clipped = (v_clipped - ret).powi_scalar(2);
            (v_loss_unclipped.max_pair(v_loss_clipped) * vmask).sum() * (0.5 / v_weight)
        } else {
            (v_loss_unclipped * vmask).sum() * (0.5 / v_weight)
        };
        let loss = policy_loss.clone() - entropy_mean.clone() * cfg.entropy_coef
            + value_loss.clone() * cfg.value_coef;

        let mut out = StepOut::default();
        if measure {
            let r = ratio
                .inner()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap_or_default();
            for (i, &ri) in r.iter().enumerate() {
                if mb.mask[i] > 0.0 {
                    let lr_i = ri.max(1e-30).ln();
                    out.kl_sum += f64::from((ri - 1.0) - lr_i);
                    if (ri - 1.0).abs() > c {
                        out.clip_sum += 1.0;
                    }
                }
            }
            out.policy_loss = policy_loss.inner().into_scalar::<f32>();
            out.value_loss = value_loss.inner().into_scalar::<f32>();
            out.entropy = entropy_mean.inner().into_scalar::<f32>();
        }

        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        clip_global_norm(&mut grads, &self.param_ids, cfg.max_grad_norm);
        self.model = Some(self.optim.step(lr, model, grads));
        out
    }
}

#[derive(Debug, Default)]
struct StepOut {
    policy_loss: f32,
    value_loss: f32,
    entropy: f32,
    kl_sum: f64,
    clip_sum: f64,
}

/// One minibatch gathered from the rollout, ready to become tensors.
#[derive(Debug, Default)]
struct Minibatch {
    obs: Vec<f32>,
    actions: Vec<i64>,
    logp: Vec<f32>,
    adv: Vec<f32>,
    ret: Vec<f32>,
    old_v: Vec<f32>,
    mask: Vec<f32>,
    vmask: Vec<f32>,
    active_count: usize,
    weight_sum: f32,
}

impl Minibatch {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    fn fill(&mut self, buf: &Rollout, idx: &[usize], d: usize, normalize_adv: bool) {
        self.obs.clear();
        self.actions.clear();
        self.logp.clear();
        self.adv.clear();
        self.ret.clear();
        self.old_v.clear();
        self.mask.clear();
        self.vmask.clear();
        for &k in idx {
            self.obs.extend_from_slice(&buf.obs[k * d..(k + 1) * d]);
            self.actions.push(i64::from(buf.actions[k]));
            self.logp.push(buf.logp[k]);
            self.adv.push(buf.advantages[k]);
            self.ret.push(buf.returns[k]);
            self.old_v.push(buf.values[k]);
            self.mask
                .push(if buf.active[k] { buf.weights[k] } else { 0.0 });
            self.vmask.push(buf.weights[k]);
        }
        self.active_count = idx.iter().filter(|&&k| buf.active[k]).count();
        self.weight_sum = self.mask.iter().sum();
        if normalize_adv && self.active_count > 1 {
            let n = self.active_count as f64;
            let act = || {
                self.adv
                    .iter()
                    .zip(&self.mask)
                    .filter(|(_, m)| **m > 0.0)
                    .map(|(a, _)| f64::from(*a))
            };
            let mean = act().sum::<f64>() / n;
            let var = act().map(|a| (a - mean) * (a - mean)).sum::<f64>() / (n - 1.0);
            let std = var.sqrt() + 1e-8;
            for a in &mut self.adv {
                *a = ((f64::from(*a) - mean) / std) as f32;
            }
        }
    }
}

/// Scale all gradients together so that their global L2 norm is at most `max_norm`.
pub(crate) fn clip_global_norm(
    grads: &mut GradientsParams,
    ids: &[(ParamId, usize)],
    max_norm: f32,
) {
    let mut sq = Vec::with_capacity(ids.len());
    for &(id, rank) in ids {
        let s = match rank {
            1 => grads.get::<1>(id).map(|g| g.powi_scalar(2).sum()),
            _ => grads.get::<2>(id).map(|g| g.powi_scalar(2).sum()),
        };
        sq.extend(s);
    }
    if sq.is_empty() {
        return;
    }
    let norm = Tensor::cat(sq, 0).sum().into_scalar::<f32>().sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for &(id, rank) in ids {
            match rank {
                1 => {
                    if let Some(g) = grads.remove::<1>(id) {
                        grads.register(id, g.mul_scalar(scale));
                    }
                }
                _ => {
                    if let Some(g) = grads.remove::<2>(id) {
                        grads.register(id, g.mul_scalar(scale));
                    }
                }
            }
        }
    }
}

/// Environments in the CartPole batch used by [`cartpole_config`].
pub const CARTPOLE_ENVS: usize = 8;

/// Hyper-parameters that solve CartPole-v1 quickly with [`CARTPOLE_ENVS`] environments.
#[must_use]
pub fn cartpole_config() -> PpoConfig {
    PpoConfig {
        ..PpoConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two environments whose episodes last `LEN` steps with reward 1 and observation
    /// `steps / 10`; environment 0's ends are truncations, environment 1's terminations.
    struct Chain {
        steps: [usize; 2],
        truncated: bool,
        finals: [f32; 2],
    }

    const LEN: usize = 5;

    impl VecEnv for Chain {
        fn num_envs(&self) -> usize {
            2
        }
        fn agents_per_env(&self) -> usize {
            1
        }
        fn obs_dim(&self) -> usize {
            1
        }
        fn num_actions(&self) -> usize {
            2
        }
        fn reset(&mut self, _seed: u64, obs: &mut [f32]) {
            self.steps = [0; 2];
            obs.fill(0.0);
        }
        #[allow(clippy::cast_precision_loss)]
        fn step(&mut self, _: &[u32], obs: &mut [f32], rewards: &mut [f32], dones: &mut [bool]) {
            self.truncated = false;
            for e in 0..2 {
                self.steps[e] += 1;
                rewards[e] = 1.0;
                dones[e] = self.steps[e] == LEN;
                self.finals[e] = self.steps[e] as f32 / 10.0;
                if dones[e] {
                    self.steps[e] = 0;
                    self.truncated |= e == 0;
                }
                obs[e] = self.steps[e] as f32 / 10.0;
            }
        }
        fn truncations(&self, truncated: &mut [bool], final_obs: &mut [f32]) {
            truncated[0] = self.truncated;
            truncated[1] = false;
            if self.truncated {
                final_obs[0] = self.finals[0];
            }
        }
        fn drain_finished(&mut self, _: &mut Vec<EpisodeInfo>) {}
    }

    #[test]
    fn truncation_bootstraps_from_the_final_observation_and_termination_does_not() {
        let config = PpoConfig {
            rollout_steps: 8,
            normalize_observations: false,
            scale_rewards: false,
            ..PpoConfig::default()
        };
        let mut env = Chain {
            steps: [0; 2],
            truncated: false,
            finals: [0.0; 2],
        };
        let mut ppo = Ppo::new(config, &env, &crate::cpu_device(), 4).unwrap();
        ppo.collect(&mut env);
        ppo.compute_gae();
        let gamma = 0.99f32;
        let mut v_final = [0.0f32];
        ppo.critic
            .forward(&[0.5], 1, &mut MlpScratch::default(), &mut v_final);
        assert!(
            v_final[0].abs() > 1e-4,
            "untrained critic is not exactly zero"
        );
        let buf = &ppo.buf;
        let end = (LEN - 1) * 2; // row of env 0 at the step its episode ends
        assert!(buf.dones[end] && buf.truncated[end]);
        assert!(buf.dones[end + 1] && !buf.truncated[end + 1]);
        let truncated_target = 1.0 + gamma * v_final[0];
        assert!(
            (buf.returns[end] - truncated_target).abs() < 1e-5,
            "{} vs {truncated_target}",
            buf.returns[end]
        );
        assert!(
            (buf.returns[end + 1] - 1.0).abs() < 1e-6,
            "{}",
            buf.returns[end + 1]
        );
        // Not the value of the next episode's first observation.
        let mut v_reset = [0.0f32];
        ppo.critic
            .forward(&[0.0], 1, &mut MlpScratch::default(), &mut v_reset);
        assert!((v_reset[0] - v_final[0]).abs() > 1e-6);
    }
}
