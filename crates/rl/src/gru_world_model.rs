//! The first world model of WM-PPO (design §5), kept as the `wm-ppo-gru` ablation: a GRU
//! over one agent's `(observation, action)` sequence whose heads predict the next
//! observation, the reward and the continuation.
//!
//! - It works in the learner's space: normalised observations and scaled rewards, exactly
//!   what the actor and critic see, so imagined states feed them directly.
//! - It is trained on burn ([`WorldModel`], teacher-forced windows of `window` steps from a
//!   zero hidden state, sampled from a replay of the last few rollouts) and run in plain
//!   Rust ([`PlainWorldModel`], on the exported weights) for validation and imagination,
//!   like the policy during rollouts.
//! - Imagination branches from a real state with a zero hidden state, which is also how
//!   every training window starts, so the model is used the way it was trained.
//! - Its *validation error* is measured on each new rollout **before** training on it
//!   (held-out data by construction): the mean squared error of the predicted next
//!   observation (normalised features have unit variance, so this is the unexplained
//!   fraction) averaged with the reward error relative to the reward variance.

use burn::module::{Module, ParamId};
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData, activation};
use serde::{Deserialize, Serialize};

use crate::error::{Result, RlError};
use crate::model::{linear_from, orthogonal};
use edgewise_rng::Rng;
use edgewise_policy::{Dense, tanh};

/// GRU world-model and `wm-ppo-gru` hyper-parameters (every field has a default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GruWmConfig {
    /// Width of the encoder and of the GRU state. Default 64.
    pub hidden: usize,
    /// Steps per training window (and the imagination horizon H, in 3..=5). Default 4.
    pub horizon: usize,
    /// Rollouts kept for training. Default 4.
    pub replay_rollouts: usize,
    /// Gradient steps per iteration. Default 16.
    pub train_steps: usize,
    /// Windows per gradient step. Default 256.
    pub batch_windows: usize,
    /// Adam learning rate. Default 1e-3.
    pub learning_rate: f64,
    /// Windows of each new rollout used to measure the validation error. Default 512.
    pub validation_windows: usize,
    /// Fraction of real states from which imagination branches. Default 0.25.
    pub branch_fraction: f64,
    /// Largest weight of the model-based value target in the blend (at zero model
    /// error; it falls linearly to 0 at `error_threshold`). Default 0.5.
    pub value_blend_max: f64,
    /// Model validation error above which the model is not used at all. Default 0.5.
    pub error_threshold: f64,
    /// Loss weight of imagined samples (at zero error; scaled like the blend). Default 0.5.
    pub imagined_weight: f64,
    /// Imagined samples added per update, as a fraction of the real batch. Default 0.25.
    pub imagined_fraction: f64,
}

impl Default for GruWmConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            horizon: 4,
            replay_rollouts: 4,
            train_steps: 16,
            batch_windows: 256,
            learning_rate: 1e-3,
            validation_windows: 512,
            branch_fraction: 0.25,
            value_blend_max: 0.5,
            error_threshold: 0.5,
            imagined_weight: 0.5,
            imagined_fraction: 0.25,
        }
    }
}

impl GruWmConfig {
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
        let unit = |x: f64| (0.0..=1.0).contains(&x);
        if self.hidden == 0 {
            return bad("wm.hidden", "must be at least 1");
        }
        if !(1..=16).contains(&self.horizon) {
            return bad("wm.horizon", "must be in 1..=16 (the design uses 3..=5)");
        }
        if self.replay_rollouts == 0 || self.batch_windows == 0 || self.validation_windows == 0 {
            return bad(
                "wm.replay_rollouts/batch_windows/validation_windows",
                "must be at least 1",
            );
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("wm.learning_rate", "must be a positive number");
        }
        if !unit(self.branch_fraction) || !unit(self.value_blend_max) {
            return bad("wm.branch_fraction/value_blend_max", "must be in [0, 1]");
        }
        if !unit(self.imagined_weight) || !unit(self.imagined_fraction) {
            return bad("wm.imagined_weight/imagined_fraction", "must be in [0, 1]");
        }
        if !(self.error_threshold > 0.0 && self.error_threshold.is_finite()) {
            return bad("wm.error_threshold", "must be a positive number");
        }
        Ok(())
    }

    /// How much to trust a model with validation error `err`: 1 at zero error, falling
    /// linearly to 0 at `error_threshold` (and 0 beyond, or for NaN).
    #[must_use]
    pub fn trust(&self, err: f64) -> f64 {
        if err.is_finite() {
            (1.0 - err / self.error_threshold).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// One rollout of transitions, `[t][agent]` row-major, in the learner's space.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segment {
    /// Steps.
    pub steps: usize,
    /// Agents (rows per step).
    pub agents: usize,
    /// Normalised observations, `steps * agents * obs_dim`.
    pub obs: Vec<f32>,
    /// Normalised observation after the last step, `agents * obs_dim`.
    pub last_next_obs: Vec<f32>,
    /// Actions, `steps * agents`.
    pub actions: Vec<u32>,
    /// (Scaled) rewards, `steps * agents`.
    pub rewards: Vec<f32>,
    /// Episode ended with this step, `steps * agents`.
    pub dones: Vec<bool>,
    /// The end was a truncation (a time limit), not a termination, `steps * agents`;
    /// empty means every end was a termination. The model learns to predict
    /// continuation (not termination) for truncated ends; their next observation belongs
    /// to another episode and is not a target either way.
    pub truncated: Vec<bool>,
}

impl Segment {
    /// Whether row `row` ended its episode by a termination (not a truncation).
    #[must_use]
    pub fn terminated(&self, row: usize) -> bool {
        self.dones[row] && !self.truncated.get(row).copied().unwrap_or(false)
    }

    fn next_obs(&self, t: usize, i: usize, d: usize) -> &[f32] {
        if t + 1 < self.steps {
            let k = (t + 1) * self.agents + i;
            &self.obs[k * d..(k + 1) * d]
        } else {
            &self.last_next_obs[i * d..(i + 1) * d]
        }
    }
}

/// The GRU world model on burn.
#[derive(Module, Debug)]
pub struct WorldModel {
    /// `[obs ‖ one-hot action] → hidden`, then `tanh`.
    pub enc: Linear,
    /// Input part of the GRU gates (`hidden → 3·hidden`: update, reset, candidate).
    pub gru_x: Linear,
    /// Recurrent part of the GRU gates (`hidden → 3·hidden`).
    pub gru_h: Linear,
    /// Head hidden layer (`hidden → hidden`, then `tanh`).
    pub head1: Linear,
    /// Head output (`hidden → obs_dim + 2`: next-observation delta, reward, continuation logit).
    pub head2: Linear,
}

fn tanh_t<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activation::sigmoid(x.mul_scalar(2.0))
        .mul_scalar(2.0)
        .sub_scalar(1.0)
}

impl WorldModel {
    /// An orthogonally initialised model.
    #[must_use]
    pub fn new(
        obs_dim: usize,
        num_actions: usize,
        hidden: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let lin = |i: usize, o: usize, gain: f64, rng: &mut Rng| {
            linear_from(&orthogonal(i, o, gain, rng), &vec![0.0; o], i, o, device)
        };
        Self {
            enc: lin(obs_dim + num_actions, hidden, 1.0, rng),
            gru_x: lin(hidden, 3 * hidden, 1.0, rng),
            gru_h: lin(hidden, 3 * hidden, 1.0, rng),
            head1: lin(hidden, hidden, 1.0, rng),
            head2: lin(hidden, obs_dim + 2, 0.1, rng),
        }
    }

    /// One step for a batch: `x = [obs ‖ one-hot]`, hidden `h`; returns the new hidden
    /// state and the head output `[rows, obs_dim + 2]`.
    #[must_use]
    pub fn step(&self, x: Tensor<2>, h: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let hd = h.dims()[1];
        let e = tanh_t(self.enc.forward(x));
        let gx = self.gru_x.forward(e);
        let gh = self.gru_h.forward(h.clone());
        let z = activation::sigmoid(gx.clone().narrow(1, 0, hd) + gh.clone().narrow(1, 0, hd));
        let r = activation::sigmoid(gx.clone().narrow(1, hd, hd) + gh.clone().narrow(1, hd, hd));
        let n = tanh_t(gx.narrow(1, 2 * hd, hd) + r * gh.narrow(1, 2 * hd, hd));
        let h = (z.clone().neg().add_scalar(1.0)) * n + z * h;
        let y = self.head2.forward(tanh_t(self.head1.forward(h.clone())));
        (h, y)
    }

    fn param_ids(&self) -> Vec<(ParamId, usize)> {
        let mut out = Vec::new();
        for l in [
            &self.enc,
            &self.gru_x,
            &self.gru_h,
            &self.head1,
            &self.head2,
        ] {
            out.push((l.weight.id, 2));
            if let Some(b) = &l.bias {
                out.push((b.id, 1));
            }
        }
        out
    }

    /// Copy the weights into the plain-Rust model.
    #[must_use]
    pub fn to_plain(&self, obs_dim: usize, num_actions: usize) -> PlainWorldModel {
        let dense = |l: &Linear| {
            let net = crate::model::Net {
                layers: vec![l.clone()],
            };
            net.to_plain().layers.remove(0)
        };
        PlainWorldModel {
            obs_dim,
            num_actions,
            hidden: self.head1.weight.val().dims()[0],
            enc: dense(&self.enc),
            gru_x: dense(&self.gru_x),
            gru_h: dense(&self.gru_h),
            head1: dense(&self.head1),
            head2: dense(&self.head2),
        }
    }
}

/// The world model in plain Rust (same maths as [`WorldModel::step`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PlainWorldModel {
    obs_dim: usize,
    num_actions: usize,
    hidden: usize,
    enc: Dense,
    gru_x: Dense,
    gru_h: Dense,
    head1: Dense,
    head2: Dense,
}

/// Buffers of [`PlainWorldModel::step`].
#[derive(Debug, Default, Clone)]
pub struct WmScratch {
    x: Vec<f32>,
    e: Vec<f32>,
    gx: Vec<f32>,
    gh: Vec<f32>,
    h1: Vec<f32>,
    y: Vec<f32>,
}

/// Predictions of one imagined step, per row.
#[derive(Debug, Default, Clone)]
pub struct Prediction {
    /// Next observation (normalised), `rows * obs_dim`.
    pub next_obs: Vec<f32>,
    /// Reward, `rows`.
    pub reward: Vec<f32>,
    /// Probability that the episode continues, `rows`.
    pub cont: Vec<f32>,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl PlainWorldModel {
    /// Hidden-state width.
    #[must_use]
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Advance `rows` agents: observations `obs`, actions, hidden states `h` (updated in
    /// place); predictions go to `out`.
    pub fn step(
        &self,
        obs: &[f32],
        actions: &[u32],
        h: &mut [f32],
        s: &mut WmScratch,
        out: &mut Prediction,
    ) {
        let (d, na, hd) = (self.obs_dim, self.num_actions, self.hidden);
        let rows = actions.len();
        s.x.clear();
        for (o, &a) in obs.chunks_exact(d).zip(actions) {
            s.x.extend_from_slice(o);
            for j in 0..na {
                s.x.push(if j == a as usize { 1.0 } else { 0.0 });
            }
        }
        s.e.resize(rows * hd, 0.0);
        self.enc.forward(&s.x, rows, &mut s.e);
        s.e.iter_mut().for_each(|v| *v = tanh(*v));
        s.gx.resize(rows * 3 * hd, 0.0);
        s.gh.resize(rows * 3 * hd, 0.0);
        self.gru_x.forward(&s.e, rows, &mut s.gx);
        self.gru_h.forward(h, rows, &mut s.gh);
        for r in 0..rows {
            let gx = &s.gx[r * 3 * hd..(r + 1) * 3 * hd];
            let gh = &s.gh[r * 3 * hd..(r + 1) * 3 * hd];
            let hr = &mut h[r * hd..(r + 1) * hd];
            for j in 0..hd {
                let z = sigmoid(gx[j] + gh[j]);
                let rr = sigmoid(gx[hd + j] + gh[hd + j]);
                let n = tanh(gx[2 * hd + j] + rr * gh[2 * hd + j]);
                hr[j] = (1.0 - z) * n + z * hr[j];
            }
        }
        s.h1.resize(rows * hd, 0.0);
        self.head1.forward(h, rows, &mut s.h1);
        s.h1.iter_mut().for_each(|v| *v = tanh(*v));
        s.y.resize(rows * (d + 2), 0.0);
        self.head2.forward(&s.h1, rows, &mut s.y);
        out.next_obs.resize(rows * d, 0.0);
        out.reward.resize(rows, 0.0);
        out.cont.resize(rows, 0.0);
        for r in 0..rows {
            let y = &s.y[r * (d + 2)..(r + 1) * (d + 2)];
            for j in 0..d {
                out.next_obs[r * d + j] = obs[r * d + j] + y[j];
            }
            out.reward[r] = y[d];
            out.cont[r] = sigmoid(y[d + 1]);
        }
    }
}

/// The non-tensor state of a [`WorldModelTrainer`], for checkpoints. The replay's
/// arrays travel as binary blobs ([`encode_segment`]); only their shapes are here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WmTrainerState {
    pub config: GruWmConfig,
    pub obs_dim: usize,
    pub num_actions: usize,
    pub rng: Rng,
    pub replay: Vec<SegmentShape>,
}

/// A [`WorldModelTrainer`] taken apart for a checkpoint.
pub(crate) struct WmSnapshot {
    pub state: WmTrainerState,
    /// burnpack record of the model.
    pub model: Vec<u8>,
    /// burnpack record of its Adam state.
    pub optimizer: Vec<u8>,
    /// One [`encode_segment`] blob per replayed rollout, oldest first.
    pub replay: Vec<Vec<u8>>,
}

/// Shape of a replayed [`Segment`] (its arrays are in a blob).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentShape {
    pub steps: usize,
    pub agents: usize,
    /// Whether the segment has a `truncated` array.
    pub has_truncated: bool,
}

/// Serialise a segment's arrays, little-endian: observations, last next observations,
/// rewards (`f32`), actions (`u32`), dones and (if present) truncations (one byte each).
pub(crate) fn encode_segment(seg: &Segment) -> (SegmentShape, Vec<u8>) {
    let mut out = Vec::with_capacity(
        4 * (seg.obs.len() + seg.last_next_obs.len() + 2 * seg.rewards.len()) + 2 * seg.dones.len(),
    );
    for v in seg.obs.iter().chain(&seg.last_next_obs).chain(&seg.rewards) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for a in &seg.actions {
        out.extend_from_slice(&a.to_le_bytes());
    }
    out.extend(seg.dones.iter().map(|&b| u8::from(b)));
    out.extend(seg.truncated.iter().map(|&b| u8::from(b)));
    let shape = SegmentShape {
        steps: seg.steps,
        agents: seg.agents,
        has_truncated: !seg.truncated.is_empty(),
    };
    (shape, out)
}

/// The inverse of [`encode_segment`]; `None` if `bytes` does not have the shape's length.
pub(crate) fn decode_segment(shape: SegmentShape, obs_dim: usize, bytes: &[u8]) -> Option<Segment> {
    let rows = shape.steps.checked_mul(shape.agents)?;
    let n_obs = rows.checked_mul(obs_dim)?;
    let n_last = shape.agents.checked_mul(obs_dim)?;
    let n_trunc = if shape.has_truncated { rows } else { 0 };
    let expected = 4 * (n_obs + n_last + 2 * rows) + rows + n_trunc;
    if bytes.len() != expected {
        return None;
    }
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()
    };
    let (obs, rest) = bytes.split_at(4 * n_obs);
    let (last, rest) = rest.split_at(4 * n_last);
    let (rewards, rest) = rest.split_at(4 * rows);
    let (actions, rest) = rest.split_at(4 * rows);
    let (dones, truncated) = rest.split_at(rows);
    Some(Segment {
        steps: shape.steps,
        agents: shape.agents,
        obs: f32s(obs),
        last_next_obs: f32s(last),
        actions: actions
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
        rewards: f32s(rewards),
        dones: dones.iter().map(|&b| b != 0).collect(),
        truncated: truncated.iter().map(|&b| b != 0).collect(),
    })
}

/// Trains the world model and measures its validation error.
pub struct WorldModelTrainer {
    config: GruWmConfig,
    obs_dim: usize,
    num_actions: usize,
    device: Device,
    model: Option<WorldModel>,
    optim: ModuleOptimizer,
    param_ids: Vec<(ParamId, usize)>,
    plain: PlainWorldModel,
    replay: std::collections::VecDeque<Segment>,
    rng: Rng,
}

impl std::fmt::Debug for WorldModelTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldModelTrainer")
            .field("config", &self.config)
            .field("obs_dim", &self.obs_dim)
            .field("num_actions", &self.num_actions)
            .finish_non_exhaustive()
    }
}

/// One training window batch, ready to become tensors (`[k][window]` row-major).
#[derive(Default)]
struct Windows {
    obs: Vec<Vec<f32>>,
    onehot: Vec<Vec<f32>>,
    next: Vec<Vec<f32>>,
    reward: Vec<Vec<f32>>,
    /// Continuation target: 0 after a termination.
    cont: Vec<Vec<f32>>,
    /// Same episode at the next step: 0 after any end (termination or truncation).
    alive: Vec<Vec<f32>>,
}

impl WorldModelTrainer {
    /// A fresh model for agents with `obs_dim` features and `num_actions` actions;
    /// `device` is where it learns (wrapped with autodiff here).
    ///
    /// # Errors
    /// [`RlError::Config`] if `config` does not validate.
    pub fn new(
        config: GruWmConfig,
        obs_dim: usize,
        num_actions: usize,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        let device = device.clone().autodiff();
        let mut rng = Rng::stream(seed, 0x3d3d);
        let model = WorldModel::new(obs_dim, num_actions, config.hidden, &mut rng, &device);
        let plain = model.to_plain(obs_dim, num_actions);
        Ok(Self {
            optim: AdamConfig::new().with_epsilon(1e-5).init(),
            param_ids: model.param_ids(),
            model: Some(model),
            plain,
            replay: std::collections::VecDeque::new(),
            rng,
            config,
            obs_dim,
            num_actions,
            device,
        })
    }

    /// Everything needed to continue training exactly: the non-tensor state, the
    /// model and optimiser records, and the replay (one blob per segment).
    pub(crate) fn snapshot(&self) -> std::result::Result<WmSnapshot, String> {
        let model = self.model.as_ref().expect("model present").clone();
        let model_bytes = model
            .into_record()
            .into_bytes()
            .map_err(|e| format!("world-model record: {e:?}"))?;
        let optim_bytes = self
            .optim
            .into_bytes()
            .map_err(|e| format!("world-model optimiser record: {e:?}"))?;
        let (shapes, blobs): (Vec<_>, Vec<_>) = self.replay.iter().map(encode_segment).unzip();
        let state = WmTrainerState {
            config: self.config.clone(),
            obs_dim: self.obs_dim,
            num_actions: self.num_actions,
            rng: self.rng.clone(),
            replay: shapes,
        };
        Ok(WmSnapshot {
            state,
            model: model_bytes.to_vec(),
            optimizer: optim_bytes.to_vec(),
            replay: blobs,
        })
    }

    /// Rebuild a trainer from [`WorldModelTrainer::snapshot`]'s parts; the error says
    /// which part did not fit.
    pub(crate) fn restore(snap: WmSnapshot, device: &Device) -> std::result::Result<Self, String> {
        use burn::store::ModuleRecord;
        use burn::tensor::Bytes;
        let WmSnapshot {
            state,
            model: model_bytes,
            optimizer: optim_bytes,
            replay,
        } = snap;
        state.config.validate().map_err(|e| e.to_string())?;
        if replay.len() != state.replay.len() {
            return Err(format!(
                "{} replay segments listed, {} stored",
                state.replay.len(),
                replay.len()
            ));
        }
        let device = device.clone().autodiff();
        let mut scratch = Rng::new(0);
        let skeleton = WorldModel::new(
            state.obs_dim,
            state.num_actions,
            state.config.hidden,
            &mut scratch,
            &device,
        );
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(model_bytes))
            .map_err(|e| format!("world-model record: {e:?}"))?;
        let model = skeleton
            .try_load_record(record)
            .map_err(|e| format!("world-model record: {e:?}"))?;
        let optim = AdamConfig::new()
            .with_epsilon(1e-5)
            .init()
            .from_bytes(Bytes::from_bytes_vec(optim_bytes))
            .map_err(|e| format!("world-model optimiser record: {e:?}"))?;
        let mut segments = std::collections::VecDeque::new();
        for (i, (shape, bytes)) in state.replay.iter().zip(replay).enumerate() {
            let seg = decode_segment(*shape, state.obs_dim, &bytes)
                .ok_or_else(|| format!("replay segment {i} has the wrong length"))?;
            segments.push_back(seg);
        }
        let plain = model.to_plain(state.obs_dim, state.num_actions);
        Ok(Self {
            optim,
            param_ids: model.param_ids(),
            model: Some(model),
            plain,
            replay: segments,
            rng: state.rng,
            config: state.config,
            obs_dim: state.obs_dim,
            num_actions: state.num_actions,
            device,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &GruWmConfig {
        &self.config
    }

    /// The current model in plain Rust.
    #[must_use]
    pub fn plain(&self) -> &PlainWorldModel {
        &self.plain
    }

    /// Add a rollout to the replay (dropping the oldest beyond `replay_rollouts`).
    pub fn push(&mut self, segment: Segment) {
        self.replay.push_back(segment);
        while self.replay.len() > self.config.replay_rollouts {
            self.replay.pop_front();
        }
    }

    /// Window starts `(t, agent)` of `seg` for windows of `len` steps.
    fn sample_start(rng: &mut Rng, seg: &Segment, len: usize) -> (usize, usize) {
        let t = rng.below(seg.steps.saturating_sub(len) + 1);
        (t, rng.below(seg.agents))
    }

    /// Validation error of the current model on `seg` (teacher-forced windows of
    /// `horizon` steps from a zero hidden state, as in training): the mean of the
    /// next-observation MSE (per feature) and the reward MSE over the reward variance.
    /// Deterministic for a given segment (windows drawn from a fixed seed).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn validation_error(&self, seg: &Segment) -> f64 {
        let d = self.obs_dim;
        let len = self.config.horizon.min(seg.steps);
        if seg.steps == 0 || seg.agents == 0 {
            return f64::NAN;
        }
        let mut rng = Rng::new(0x5eed);
        let n = self.config.validation_windows;
        let starts: Vec<_> = (0..n)
            .map(|_| Self::sample_start(&mut rng, seg, len))
            .collect();
        let hd = self.plain.hidden;
        let mut h = vec![0.0; n * hd];
        let (mut obs, mut act) = (Vec::new(), Vec::new());
        let mut scratch = WmScratch::default();
        let mut pred = Prediction::default();
        let (mut obs_se, mut obs_n) = (0.0f64, 0.0f64);
        let (mut rew, mut rew_pred) = (Vec::new(), Vec::new());
        for k in 0..len {
            obs.clear();
            act.clear();
            for &(t, i) in &starts {
                let row = (t + k) * seg.agents + i;
                obs.extend_from_slice(&seg.obs[row * d..(row + 1) * d]);
                act.push(seg.actions[row]);
            }
            self.plain.step(&obs, &act, &mut h, &mut scratch, &mut pred);
            for (w, &(t, i)) in starts.iter().enumerate() {
                let row = (t + k) * seg.agents + i;
                rew.push(f64::from(seg.rewards[row]));
                rew_pred.push(f64::from(pred.reward[w]));
                if seg.dones[row] {
                    h[w * hd..(w + 1) * hd].fill(0.0);
                } else {
                    let target = seg.next_obs(t + k, i, d);
                    for (p, y) in pred.next_obs[w * d..(w + 1) * d].iter().zip(target) {
                        let e = f64::from(p - y);
                        obs_se += e * e;
                    }
                    obs_n += d as f64;
                }
            }
        }
        let m = rew.len() as f64;
        let mean = rew.iter().sum::<f64>() / m;
        let var = rew.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / m;
        // A (nearly) constant reward (CartPole) has no variance to explain: measure its
        // error against a small share of its second moment instead.
        let second = rew.iter().map(|r| r * r).sum::<f64>() / m;
        let var = var.max(0.01 * second);
        let rew_se = rew
            .iter()
            .zip(&rew_pred)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / m;
        let obs_err = if obs_n > 0.0 { obs_se / obs_n } else { 0.0 };
        0.5 * (obs_err + rew_se / var.max(1e-6))
    }

    /// `train_steps` gradient steps on windows sampled from the replay; returns the
    /// mean training loss of the last step (NaN if the replay is empty).
    #[allow(clippy::cast_precision_loss)]
    pub fn train(&mut self) -> f32 {
        let mut last = f32::NAN;
        for _ in 0..self.config.train_steps {
            last = self.train_step();
        }
        let model = self.model.as_ref().expect("model present");
        self.plain = model.to_plain(self.obs_dim, self.num_actions);
        last
    }

    fn sample_windows(&mut self, len: usize) -> Windows {
        let (d, na) = (self.obs_dim, self.num_actions);
        let b = self.config.batch_windows;
        let mut w = Windows {
            obs: vec![Vec::with_capacity(b * d); len],
            onehot: vec![Vec::with_capacity(b * na); len],
            next: vec![Vec::with_capacity(b * d); len],
            reward: vec![Vec::with_capacity(b); len],
            cont: vec![Vec::with_capacity(b); len],
            alive: vec![Vec::with_capacity(b); len],
        };
        for _ in 0..b {
            let s = self.rng.below(self.replay.len());
            let seg = &self.replay[s];
            let (t, i) = Self::sample_start(&mut self.rng, seg, len);
            for k in 0..len {
                let row = (t + k) * seg.agents + i;
                w.obs[k].extend_from_slice(&seg.obs[row * d..(row + 1) * d]);
                let a = seg.actions[row] as usize;
                w.onehot[k].extend((0..na).map(|j| if j == a { 1.0 } else { 0.0 }));
                w.next[k].extend_from_slice(seg.next_obs(t + k, i, d));
                w.reward[k].push(seg.rewards[row]);
                w.cont[k].push(if seg.terminated(row) { 0.0 } else { 1.0 });
                w.alive[k].push(if seg.dones[row] { 0.0 } else { 1.0 });
            }
        }
        w
    }

    #[allow(clippy::cast_precision_loss)]
    fn train_step(&mut self) -> f32 {
        if self.replay.is_empty() {
            return f32::NAN;
        }
        let (d, na, hd) = (self.obs_dim, self.num_actions, self.config.hidden);
        let len = self
            .config
            .horizon
            .min(self.replay.iter().map(|s| s.steps).min().unwrap_or(1))
            .max(1);
        let b = self.config.batch_windows;
        let w = self.sample_windows(len);
        let dev = &self.device;
        let model = self.model.take().expect("model present");
        let t2 = |v: &[f32], cols: usize| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), [b, cols]), dev)
        };
        let mut h = Tensor::<2>::zeros([b, hd], dev);
        let mut loss: Option<Tensor<1>> = None;
        for k in 0..len {
            let obs = t2(&w.obs[k], d);
            let x = Tensor::cat(vec![obs.clone(), t2(&w.onehot[k], na)], 1);
            let (h_new, y) = model.step(x, h);
            let cont = t2(&w.cont[k], 1);
            let alive = t2(&w.alive[k], 1);
            let pred_obs = obs + y.clone().narrow(1, 0, d);
            let obs_loss = ((pred_obs - t2(&w.next[k], d)).powi_scalar(2) * alive.clone()).sum()
                / (b * d) as f32;
            let rew_loss = (y.clone().narrow(1, d, 1) - t2(&w.reward[k], 1))
                .powi_scalar(2)
                .mean();
            let logit = y.narrow(1, d + 1, 1);
            let cont_loss = (activation::softplus(logit.clone(), 1.0) - logit * cont).mean();
            let l = obs_loss + rew_loss + cont_loss * 0.1;
            loss = Some(match loss {
                Some(acc) => acc + l,
                None => l,
            });
            h = h_new * alive;
        }
        let loss = loss.expect("at least one step") / len as f32;
        let value = loss.clone().inner().into_scalar::<f32>();
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        crate::grad_clip::clip_global_norm(&mut grads, &self.param_ids, 1.0);
        self.model = Some(self.optim.step(self.config.learning_rate, model, grads));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_segments_round_trip_and_bad_lengths_are_refused() {
        let seg = Segment {
            steps: 2,
            agents: 3,
            obs: (0..12).map(|i| i as f32 * 0.5 - 1.0).collect(),
            last_next_obs: vec![f32::MIN_POSITIVE, -0.0, 7.25, 1e30, -3.0, 0.1],
            actions: vec![0, 1, 1, 0, 1, u32::MAX],
            rewards: vec![-1.5, 0.0, 2.0, 1e-7, -0.25, 9.0],
            dones: vec![false, true, false, false, true, true],
            truncated: vec![false, true, false, false, false, true],
        };
        let (shape, bytes) = encode_segment(&seg);
        assert_eq!(decode_segment(shape, 2, &bytes), Some(seg.clone()));
        assert_eq!(decode_segment(shape, 2, &bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_segment(shape, 3, &bytes), None);
        // A segment without truncation flags stays without them.
        let plain = Segment {
            truncated: Vec::new(),
            ..seg
        };
        let (shape, bytes) = encode_segment(&plain);
        assert!(!shape.has_truncated);
        assert_eq!(decode_segment(shape, 2, &bytes), Some(plain));
    }
}
