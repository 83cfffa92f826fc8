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
use edgewise_policy::{Mlp, MlpScratch, ObsNorm, PolicyFile, softmax_in_place};
use serde::{Deserialize, Serialize};

use crate::assist::{AssistInput, AssistReport};
use crate::error::{Result, RlError};
use crate::grad_clip::clip_global_norm;
use crate::gru_assist::GruAssist;
use crate::gru_world_model::{GruWmConfig, WorldModelTrainer};
use crate::model::ActorCritic;
use crate::normalize::{ObsNormalizer, RewardScaler};
use crate::rollout::Rollout;
use crate::sequential::{Decision, decide_in_order};
use crate::wm_ppo::{WmAssist, WmConfig};
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
    /// Smallest standard deviation a raw feature is divided by (see
    /// [`ObsNormalizer`]). Default 0.1: environments here scale their features to
    /// O(1), so a feature that was constant while training reads at most `Δ / 0.1`
    /// standard deviations when it moves by `Δ`.
    pub obs_std_floor: f64,
    /// Gather the observation statistics over the agents the environment marks active
    /// ([`VecEnv::active_agents`]) only. Default true: idle agents' zeros would
    /// otherwise set the scale of the features of the agents that decide.
    pub obs_stats_active_only: bool,
    /// Scale rewards by the running std of the discounted return. Default true.
    pub scale_rewards: bool,
    /// Clip scaled rewards to ±this. Default 10.
    pub reward_clip: f64,
    /// Hidden layer widths of both networks. Default `[64, 64]`.
    pub hidden: Vec<usize>,
    /// Adam ε. Default 1e-5.
    pub adam_epsilon: f32,
    /// Where the environment offers it ([`VecEnv::as_sequential`]), let the deciding
    /// agents of an environment act one after another in its broadcast order, each
    /// observing what the agents before it committed, instead of all at once from one
    /// shared state (where agents that see the same state choose alike and herd).
    /// Default true; a configuration or checkpoint written before the field existed
    /// reads as false (the all-at-once protocol it was trained with).
    #[serde(default)]
    pub sequential_decisions: bool,
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
            obs_std_floor: 0.1,
            obs_stats_active_only: true,
            scale_rewards: true,
            reward_clip: 10.0,
            hidden: vec![64, 64],
            adam_epsilon: 1e-5,
            sequential_decisions: true,
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
        if !(self.obs_std_floor >= 0.0 && self.obs_std_floor.is_finite()) {
            return bad("obs_std_floor", "must be a non-negative number");
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
    /// WM-PPO: held-out error on the action-dependent observation features.
    pub wm_error_response: Option<f64>,
    /// WM-PPO: held-out error on the per-action reward.
    pub wm_error_reward: Option<f64>,
    /// WM-PPO: mean ensemble disagreement on the counterfactual advantages.
    pub wm_spread: Option<f64>,
    /// WM-PPO: real samples whose advantage took a counterfactual part.
    pub counterfactual: usize,
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
    pub(crate) assist: Option<ModelAssist>,
}

/// The model-based helper of a WM-PPO learner.
#[derive(Debug)]
pub(crate) enum ModelAssist {
    /// WM-PPO: an ensemble model of the action-dependent response, used for
    /// counterfactual per-action advantages ([`crate::wm_ppo`]).
    Response(Box<WmAssist>),
    /// The `wm-ppo-gru` ablation ([`crate::gru_assist`]).
    Gru(Box<GruAssist>),
}

impl std::fmt::Debug for Ppo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ppo")
            .field("state", &self.state)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
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
            obs_norm: ObsNormalizer::new(spec.obs_dim, config.obs_clip, config.obs_std_floor),
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
            assist: None,
        }
    }

    /// A WM-PPO learner (design §5, rebuilt on the simulator's structure): PPO as
    /// [`Ppo::new`], plus an ensemble model of the action-dependent response (the
    /// observation features an action changes, and the per-action reward) trained on the
    /// collected transitions; exogenous features are replayed from the real rollout, and
    /// the model's counterfactual per-action advantages are blended into PPO's, weighted
    /// by the model's held-out error and its ensemble spread ([`crate::wm_ppo`]).
    ///
    /// # Errors
    /// [`RlError::Config`] if either configuration does not validate or names features
    /// the environment does not have.
    pub fn with_world_model(
        config: PpoConfig,
        wm: WmConfig,
        env: &dyn VecEnv,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        let mut ppo = Self::new(config, env, device, seed)?;
        let spec = ppo.state.spec;
        let assist = WmAssist::new(wm, spec.obs_dim, spec.num_actions, device, seed)?;
        ppo.assist = Some(ModelAssist::Response(Box::new(assist)));
        Ok(ppo)
    }

    /// The `wm-ppo-gru` ablation (the first WM-PPO): PPO plus a per-agent GRU world model
    /// of the whole next observation, used for model-based value targets and short
    /// imagination rollouts, each weighted by the model's validation error.
    ///
    /// # Errors
    /// [`RlError::Config`] if either configuration does not validate.
    pub fn with_gru_world_model(
        config: PpoConfig,
        wm: GruWmConfig,
        env: &dyn VecEnv,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        let mut ppo = Self::new(config, env, device, seed)?;
        let spec = ppo.state.spec;
        let trainer = WorldModelTrainer::new(wm, spec.obs_dim, spec.num_actions, device, seed)?;
        ppo.assist = Some(ModelAssist::Gru(Box::new(GruAssist {
            trainer,
            rng: Rng::stream(seed, 0x1a9),
        })));
        Ok(ppo)
    }

    /// Whether this learner uses a world model (WM-PPO or its GRU ablation).
    #[must_use]
    pub fn has_world_model(&self) -> bool {
        self.assist.is_some()
    }

    /// The algorithm's name: `ppo`, `wm-ppo` or `wm-ppo-gru`.
    #[must_use]
    pub fn algo(&self) -> &'static str {
        match self.assist {
            None => "ppo",
            Some(ModelAssist::Response(_)) => "wm-ppo",
            Some(ModelAssist::Gru(_)) => "wm-ppo-gru",
        }
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
                var: s.floored_var().iter().map(|&v| v as f32).collect(),
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
        if self.state.config.sequential_decisions {
            // Runners of the file decide in broadcast order where the environment offers
            // it, as in training (`edgewise_policy::DECISIONS_KEY`).
            file.meta.insert(
                edgewise_policy::DECISIONS_KEY.into(),
                edgewise_policy::SEQUENTIAL.into(),
            );
        }
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
        let last_obs = self.compute_gae();
        let report = self.run_assist(&last_obs);
        let lr = self.learning_rate();
        let mut stats = self.update(lr);
        // A model with nothing held out yet reports NaN: that is "no measurement" (`None`),
        // which also keeps the stats comparable and serialisable as JSON.
        let measured = |e: Option<f64>| e.filter(|v| v.is_finite());
        stats.wm_error = measured(report.error);
        stats.wm_trust = report.trust;
        stats.imagined = report.imagined;
        stats.wm_error_response = measured(report.error_response);
        stats.wm_error_reward = measured(report.error_reward);
        stats.wm_spread = measured(report.spread);
        stats.counterfactual = report.counterfactual;
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
        buf.resize(t_max * n, d);

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
        let mut late = vec![0.0f32; n];
        let mut env_dones = vec![false; spec.num_envs];
        let mut agent_dones = vec![false; n];
        let mut env_truncated = vec![false; spec.num_envs];
        let mut final_raw = vec![0.0f32; n * d];
        let mut final_norm = vec![0.0f32; spec.agents_per_env * d];
        let mut final_values = vec![0.0f32; spec.agents_per_env];
        let mut actions = vec![0u32; n];
        let mut scratch = MlpScratch::default();
        let mut order = Vec::new();
        let cfg = &self.state.config;

        for t in 0..t_max {
            let rows = t * n..(t + 1) * n;
            let active = &mut buf.active[rows.clone()];
            env.active_agents(active);
            let obs_t = &mut buf.obs[t * n * d..(t + 1) * n * d];
            let logp_t = &mut buf.logp[rows.clone()];
            let sequential = if cfg.sequential_decisions {
                env.as_sequential()
            } else {
                None
            };
            if let Some(seq) = sequential {
                // Decide first (rows normalised with the statistics so far), then merge
                // the rows the agents decided on: the committed-work features exist only
                // in those, so statistics of the plain rows would never see them move.
                let norm = cfg.normalize_observations.then_some(&self.state.obs_norm);
                decide_in_order(
                    seq,
                    &mut Decision {
                        actor: &self.actor,
                        norm,
                        rng: &mut self.state.rng,
                        scratch: &mut scratch,
                        order: &mut order,
                        agents_per_env: spec.agents_per_env,
                        d,
                        a,
                    },
                    raw,
                    obs_t,
                    &mut logits,
                    &mut actions,
                    logp_t,
                );
                if cfg.normalize_observations {
                    let keep = cfg.obs_stats_active_only.then_some(&*active);
                    self.state.obs_norm.stats.update(raw, keep);
                }
            } else {
                if cfg.normalize_observations {
                    let keep = cfg.obs_stats_active_only.then_some(&*active);
                    self.state.obs_norm.stats.update(raw, keep);
                    self.state.obs_norm.normalize(raw, obs_t);
                } else {
                    obs_t.copy_from_slice(raw);
                }
                self.actor.forward(obs_t, n, &mut scratch, &mut logits);
                for i in 0..n {
                    let p = &mut logits[i * a..(i + 1) * a];
                    softmax_in_place(p);
                    let act = self.state.rng.categorical(p);
                    actions[i] = u32::try_from(act).unwrap_or(0);
                    logp_t[i] = p[act].max(1e-30).ln();
                }
            }
            self.critic.forward(obs_t, n, &mut scratch, &mut values);
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
            // A cost the environment could price only now belongs to the previous step's
            // rewards; the first step's refers to a rollout already learned from.
            if t > 0 && env.late_rewards(&mut late) {
                let prev = &mut buf.rewards[(t - 1) * n..t * n];
                for (r, &l) in prev.iter_mut().zip(&late) {
                    if l != 0.0 {
                        *r = if cfg.scale_rewards {
                            self.state.reward_scaler.add_late(*r, l)
                        } else {
                            *r + l
                        };
                    }
                }
            }
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

    /// GAE over the collected rollout; returns the normalised observation after its
    /// last step (the bootstrap state, which a world model needs too).
    #[allow(clippy::cast_possible_truncation)]
    fn compute_gae(&mut self) -> Vec<f32> {
        let spec = self.state.spec;
        let (n, d) = (spec.agents(), spec.obs_dim);
        let cfg = &self.state.config;
        let raw = self.raw_obs.as_ref().expect("collected");
        let mut next_obs = vec![0.0; n * d];
        if cfg.normalize_observations {
            self.state.obs_norm.normalize(raw, &mut next_obs);
        } else {
            next_obs.copy_from_slice(raw);
        }
        let mut last_values = vec![0.0; n];
        self.critic
            .forward(&next_obs, n, &mut MlpScratch::default(), &mut last_values);
        self.buf.gae(
            cfg.rollout_steps,
            n,
            &last_values,
            cfg.gamma as f32,
            cfg.gae_lambda as f32,
        );
        next_obs
    }

    /// Let the world model (if any) work on the rollout between GAE and the update.
    #[allow(clippy::cast_possible_truncation)]
    fn run_assist(&mut self, last_obs: &[f32]) -> AssistReport {
        let Self {
            assist,
            state,
            buf,
            actor,
            critic,
            ..
        } = self;
        let Some(assist) = assist.as_mut() else {
            return AssistReport::default();
        };
        let spec = state.spec;
        let input = AssistInput {
            steps: state.config.rollout_steps,
            agents: spec.agents(),
            obs_dim: spec.obs_dim,
            num_actions: spec.num_actions,
            gamma: state.config.gamma as f32,
            lambda: state.config.gae_lambda as f32,
            obs_clip: state.config.obs_clip as f32,
            last_obs,
            actor,
            critic,
        };
        match assist {
            ModelAssist::Response(wm) => wm.assist(&input, buf),
            ModelAssist::Gru(gru) => gru.assist(&input, buf),
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

    /// Two environments of one agent; each step pays 1, and a step later revises the
    /// previous step's reward of environment 0 by its step count (a cost found late).
    struct LateCost {
        t: u32,
    }

    impl VecEnv for LateCost {
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
            obs.fill(0.0);
        }
        fn step(&mut self, _: &[u32], obs: &mut [f32], rewards: &mut [f32], dones: &mut [bool]) {
            self.t += 1;
            rewards.fill(1.0);
            dones.fill(false);
            obs.fill(0.0);
        }
        #[allow(clippy::cast_precision_loss)]
        fn late_rewards(&self, late: &mut [f32]) -> bool {
            late[0] = self.t as f32;
            late[1] = 0.0;
            true
        }
        fn drain_finished(&mut self, _: &mut Vec<EpisodeInfo>) {}
    }

    #[test]
    #[allow(clippy::cast_precision_loss)]
    fn late_rewards_revise_the_previous_step_and_the_first_is_dropped() {
        let config = PpoConfig {
            rollout_steps: 4,
            normalize_observations: false,
            scale_rewards: false,
            ..PpoConfig::default()
        };
        let mut env = LateCost { t: 0 };
        let mut ppo = Ppo::new(config.clone(), &env, &crate::cpu_device(), 1).unwrap();
        ppo.collect(&mut env);
        // Step t (1-based) revises row t-2 by t; the last row waits for a step that
        // belongs to the next rollout.
        assert_eq!(ppo.buf.rewards, [3.0, 1.0, 4.0, 1.0, 5.0, 1.0, 1.0, 1.0]);
        ppo.collect(&mut env);
        assert_eq!(ppo.buf.rewards, [7.0, 1.0, 8.0, 1.0, 9.0, 1.0, 1.0, 1.0]);

        // Scaled: the revision is divided by the scale the step was scaled with, and
        // the sum clipped; the statistics are those of the rewards alone.
        let mut scaled = Ppo::new(
            PpoConfig {
                scale_rewards: true,
                reward_clip: 3.0,
                ..config
            },
            &LateCost { t: 0 },
            &crate::cpu_device(),
            1,
        )
        .unwrap();
        let mut env = LateCost { t: 0 };
        scaled.collect(&mut env);
        let mut plain = RewardScaler::new(2, scaled.state.config.gamma, 3.0);
        let mut want = Vec::new();
        for t in 0..4 {
            let mut r = [1.0f32; 2];
            plain.scale(&mut r, &[false; 2]);
            want.extend_from_slice(&r);
            if t > 0 {
                want[(t - 1) * 2] = plain.add_late(want[(t - 1) * 2], (t + 1) as f32);
            }
        }
        assert_eq!(scaled.buf.rewards, want);
        assert_eq!(scaled.state.reward_scaler, plain);
        assert!(want.contains(&3.0), "the clip should bite: {want:?}");
    }

    /// One environment of four agents; only agent 0 ever has a decision to make, and the
    /// idle agents observe zeros (a zero-inflated feature, like an edge backlog).
    struct OneBusy {
        t: usize,
    }

    impl VecEnv for OneBusy {
        fn num_envs(&self) -> usize {
            1
        }
        fn agents_per_env(&self) -> usize {
            4
        }
        fn obs_dim(&self) -> usize {
            1
        }
        fn num_actions(&self) -> usize {
            2
        }
        fn reset(&mut self, _seed: u64, obs: &mut [f32]) {
            self.t = 0;
            self.write(obs);
        }
        fn step(&mut self, _: &[u32], obs: &mut [f32], rewards: &mut [f32], dones: &mut [bool]) {
            self.t += 1;
            rewards.fill(0.0);
            dones[0] = false;
            self.write(obs);
        }
        fn active_agents(&self, mask: &mut [bool]) {
            mask.fill(false);
            mask[0] = true;
        }
        fn drain_finished(&mut self, _: &mut Vec<EpisodeInfo>) {}
    }

    impl OneBusy {
        #[allow(clippy::cast_precision_loss)]
        fn write(&self, obs: &mut [f32]) {
            obs.fill(0.0);
            obs[0] = 4.0 + (self.t % 5) as f32;
        }
    }

    #[test]
    fn observation_statistics_come_from_active_agents_only() {
        let config = PpoConfig {
            rollout_steps: 50,
            ..PpoConfig::default()
        };
        let mut env = OneBusy { t: 0 };
        let mut ppo = Ppo::new(config.clone(), &env, &crate::cpu_device(), 3).unwrap();
        ppo.collect(&mut env);
        let s = &ppo.state.obs_norm.stats;
        assert!((s.mean[0] - 6.0).abs() < 0.1, "mean {}", s.mean[0]);
        assert!((s.var[0] - 2.0).abs() < 0.2, "var {}", s.var[0]);
        // The busiest active value is in distribution (about 1.4 std), and the exported
        // policy file normalises exactly as the learner does.
        let mut z = [0.0f32];
        ppo.state.obs_norm.normalize(&[8.0], &mut z);
        assert!(z[0] > 1.0 && z[0] < 2.0, "{z:?}");
        let file = ppo.policy();
        let mut z_file = [0.0f32];
        file.obs_norm.apply(&[8.0], &mut z_file);
        assert!((z[0] - z_file[0]).abs() < 1e-6, "{z:?} vs {z_file:?}");

        // The old behaviour, for contrast: idle zeros drag the mean down and the busy
        // value reads as an outlier.
        let mut all = Ppo::new(
            PpoConfig {
                obs_stats_active_only: false,
                ..config
            },
            &env,
            &crate::cpu_device(),
            3,
        )
        .unwrap();
        all.collect(&mut env);
        all.state.obs_norm.normalize(&[8.0], &mut z);
        assert!(
            all.state.obs_norm.stats.mean[0] < 2.0 && z[0] > 2.0,
            "{z:?}"
        );
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
        let _ = ppo.compute_gae();
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
