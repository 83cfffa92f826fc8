//! WM-PPO's world model: what one agent's action does over one step.
//!
//! In the MEC simulator (and any environment of the kind) arrivals, query sizes,
//! channels and mobility never depend on actions: they are *exogenous*, and a model
//! that tries to predict them learns noise. This model predicts only the
//! action-dependent *response* — the change over the step of the observation features
//! an action moves (queues, energy, quality totals; [`crate::wm_ppo::WmConfig`] names
//! them, default all) and the agent's reward — from the agent's normalised observation
//! and action. Counterfactuals then replay the exogenous part from the real rollout
//! (common random numbers) and move only the response.
//!
//! - An ensemble of `members` small `tanh` MLPs, initialised and trained on different
//!   random draws; their disagreement measures what the data do not pin down.
//! - Trained on burn ([`Ensemble`]) on a replay of the last few rollouts' transitions
//!   of *active* agents (the only ones whose action matters), run in plain Rust
//!   ([`ResponseModel`]).
//! - Its held-out error is measured on each new rollout before training on it, per
//!   target group: the unexplained fraction of the response's and of the reward's
//!   variance.

use std::collections::VecDeque;

use burn::module::{Module, ParamId};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use edgewise_policy::{Mlp, MlpScratch};
use serde::{Deserialize, Serialize};

use crate::model::Net;
use edgewise_rng::Rng;

/// Transitions of active agents: inputs and targets, row-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transitions {
    /// Normalised observations, `rows × obs_dim`.
    pub obs: Vec<f32>,
    /// Actions, `rows`.
    pub actions: Vec<u32>,
    /// Targets, `rows × (response + 1)`: the change of each response feature over the
    /// step, then the (scaled) reward.
    pub targets: Vec<f32>,
}

impl Transitions {
    /// Number of transitions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// The ensemble on burn.
#[derive(Module, Debug)]
pub struct Ensemble {
    /// Members, each `[obs ‖ one-hot action] → hidden → hidden → response + 1`.
    pub members: Vec<Net>,
}

/// The ensemble in plain Rust.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseModel {
    /// One network per member.
    pub members: Vec<Mlp>,
    obs_dim: usize,
    num_actions: usize,
    outputs: usize,
}

impl ResponseModel {
    /// Outputs per member and row: response features + 1 (the reward).
    #[must_use]
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Predict every member's targets for `obs` rows taking `actions`; `out[m]` gets
    /// `rows × outputs()` values.
    pub fn predict(
        &self,
        obs: &[f32],
        actions: &[u32],
        scratch: &mut MlpScratch,
        out: &mut Vec<Vec<f32>>,
    ) {
        let rows = actions.len();
        let x = inputs(obs, actions, self.obs_dim, self.num_actions);
        out.resize(self.members.len(), Vec::new());
        for (net, o) in self.members.iter().zip(out.iter_mut()) {
            o.resize(rows * self.outputs, 0.0);
            net.forward(&x, rows, scratch, o);
        }
    }
}

/// `[obs ‖ one-hot action]` rows.
fn inputs(obs: &[f32], actions: &[u32], d: usize, na: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(actions.len() * (d + na));
    for (o, &a) in obs.chunks_exact(d).zip(actions) {
        x.extend_from_slice(o);
        x.extend((0..na).map(|j| if j == a as usize { 1.0 } else { 0.0 }));
    }
    x
}

/// Sizes and training settings of the model (part of [`crate::wm_ppo::WmConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelShape {
    /// Features per observation.
    pub obs_dim: usize,
    /// Actions per agent.
    pub num_actions: usize,
    /// Indices of the response features.
    pub response: Vec<usize>,
    /// Ensemble members.
    pub members: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Rollouts kept for training.
    pub replay_rollouts: usize,
    /// Gradient steps per rollout.
    pub train_steps: usize,
    /// Transitions per member per gradient step.
    pub batch: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
}

/// Held-out error of the model per target group: the unexplained fraction of each
/// group's variance (0 = perfect, 1 = no better than the mean; NaN when undefined).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupErrors {
    /// On the change of the response features (pooled over features).
    pub response: f64,
    /// On the reward.
    pub reward: f64,
}

/// The non-tensor state of a [`ResponseTrainer`], for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResponseTrainerState {
    pub shape: ModelShape,
    pub rng: Rng,
    pub trained: bool,
    /// Rows of each replayed rollout (their arrays travel as blobs).
    pub replay_rows: Vec<usize>,
}

/// A [`ResponseTrainer`] taken apart for a checkpoint.
pub(crate) struct ResponseSnapshot {
    pub state: ResponseTrainerState,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
    pub replay: Vec<Vec<u8>>,
}

/// Trains the ensemble and measures its held-out error.
pub struct ResponseTrainer {
    shape: ModelShape,
    device: Device,
    model: Option<Ensemble>,
    optim: ModuleOptimizer,
    param_ids: Vec<(ParamId, usize)>,
    plain: ResponseModel,
    replay: VecDeque<Transitions>,
    rng: Rng,
    trained: bool,
}

impl std::fmt::Debug for ResponseTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseTrainer")
            .field("shape", &self.shape)
            .field("trained", &self.trained)
            .finish_non_exhaustive()
    }
}

fn build(shape: &ModelShape, rng: &mut Rng, device: &Device) -> Ensemble {
    let sizes = [
        shape.obs_dim + shape.num_actions,
        shape.hidden,
        shape.hidden,
        shape.response.len() + 1,
    ];
    Ensemble {
        members: (0..shape.members)
            .map(|_| Net::new(&sizes, 0.1, rng, device))
            .collect(),
    }
}

fn to_plain(model: &Ensemble, shape: &ModelShape) -> ResponseModel {
    ResponseModel {
        members: model.members.iter().map(Net::to_plain).collect(),
        obs_dim: shape.obs_dim,
        num_actions: shape.num_actions,
        outputs: shape.response.len() + 1,
    }
}

impl ResponseTrainer {
    /// A fresh ensemble of the given shape; `device` is where it learns (wrapped with
    /// autodiff here).
    #[must_use]
    pub fn new(shape: ModelShape, device: &Device, seed: u64) -> Self {
        let device = device.clone().autodiff();
        let mut rng = Rng::stream(seed, 0x7e5_9053);
        let model = build(&shape, &mut rng, &device);
        let plain = to_plain(&model, &shape);
        Self {
            optim: AdamConfig::new().with_epsilon(1e-5).init(),
            param_ids: model.members.iter().flat_map(Net::param_ids).collect(),
            model: Some(model),
            plain,
            replay: VecDeque::new(),
            rng,
            trained: false,
            shape,
            device,
        }
    }

    /// The model's shape and settings.
    #[must_use]
    pub fn shape(&self) -> &ModelShape {
        &self.shape
    }

    /// The current ensemble in plain Rust.
    #[must_use]
    pub fn plain(&self) -> &ResponseModel {
        &self.plain
    }

    /// Whether it has been trained at least once (an untrained model is never trusted).
    #[must_use]
    pub fn trained(&self) -> bool {
        self.trained
    }

    /// Held-out error per target group on `data`, with the ensemble's mean prediction.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn errors(&self, data: &Transitions) -> GroupErrors {
        let rows = data.len();
        let k = self.shape.response.len();
        let width = k + 1;
        if rows == 0 {
            return GroupErrors {
                response: f64::NAN,
                reward: f64::NAN,
            };
        }
        let mut out = Vec::new();
        self.plain.predict(
            &data.obs,
            &data.actions,
            &mut MlpScratch::default(),
            &mut out,
        );
        let members = out.len() as f64;
        // Per output column: sum of squared errors, sum of values, sum of squares.
        let mut sse = vec![0.0f64; width];
        let mut sum = vec![0.0f64; width];
        let mut sq = vec![0.0f64; width];
        for r in 0..rows {
            for c in 0..width {
                let y = f64::from(data.targets[r * width + c]);
                let p = out.iter().map(|o| f64::from(o[r * width + c])).sum::<f64>() / members;
                sse[c] += (p - y) * (p - y);
                sum[c] += y;
                sq[c] += y * y;
            }
        }
        let n = rows as f64;
        // A (nearly) constant target has no variance to explain: measure its error
        // against a small share of its second moment instead (as the GRU model does).
        let sst = |c: usize| {
            let var = sq[c] - sum[c] * sum[c] / n;
            var.max(0.01 * sq[c]).max(1e-9 * n)
        };
        let response = if k == 0 {
            0.0
        } else {
            (0..k).map(|c| sse[c]).sum::<f64>() / (0..k).map(sst).sum::<f64>()
        };
        GroupErrors {
            response,
            reward: sse[k] / sst(k),
        }
    }

    /// Error per target group on the model's own training data (the replay): what it
    /// could not fit. With exogenous noise in the targets this stays well above 0 even
    /// for a perfect model, so WM-PPO trusts the *gap* between held-out and fitted error.
    #[must_use]
    pub fn fit_errors(&self) -> GroupErrors {
        let mut all = Transitions::default();
        for t in &self.replay {
            all.obs.extend_from_slice(&t.obs);
            all.actions.extend_from_slice(&t.actions);
            all.targets.extend_from_slice(&t.targets);
        }
        self.errors(&all)
    }

    /// Add a rollout's transitions to the replay (dropping the oldest beyond
    /// `replay_rollouts`); empty ones are ignored.
    pub fn push(&mut self, data: Transitions) {
        if data.is_empty() {
            return;
        }
        self.replay.push_back(data);
        while self.replay.len() > self.shape.replay_rollouts {
            self.replay.pop_front();
        }
    }

    /// `train_steps` gradient steps, each on a fresh random batch per member; returns
    /// the last step's loss (NaN with an empty replay).
    #[allow(clippy::cast_precision_loss)]
    pub fn train(&mut self) -> f32 {
        if self.replay.is_empty() {
            return f32::NAN;
        }
        let width = self.shape.response.len() + 1;
        // Scale each target group by its replay variance, so that features and reward
        // weigh alike whatever their units.
        let (mut sum, mut sq, mut n) = (vec![0.0f64; width], vec![0.0f64; width], 0.0f64);
        for seg in &self.replay {
            for row in seg.targets.chunks_exact(width) {
                for (c, &y) in row.iter().enumerate() {
                    sum[c] += f64::from(y);
                    sq[c] += f64::from(y) * f64::from(y);
                }
                n += 1.0;
            }
        }
        #[allow(clippy::cast_possible_truncation)]
        let inv_var: Vec<f32> = (0..width)
            .map(|c| {
                let var = (sq[c] / n - (sum[c] / n).powi(2)).max(0.01 * sq[c] / n);
                (1.0 / var.max(1e-6)) as f32
            })
            .collect();
        let mut last = f32::NAN;
        for _ in 0..self.shape.train_steps {
            last = self.train_step(&inv_var);
        }
        let model = self.model.as_ref().expect("model present");
        self.plain = to_plain(model, &self.shape);
        self.trained = true;
        last
    }

    #[allow(clippy::cast_precision_loss)]
    fn train_step(&mut self, inv_var: &[f32]) -> f32 {
        let (d, na) = (self.shape.obs_dim, self.shape.num_actions);
        let width = inv_var.len();
        let k = width - 1;
        let b = self.shape.batch;
        let dev = &self.device;
        let model = self.model.take().expect("model present");
        // Response columns share one weight (pooled, as in the held-out error).
        let resp_w = if k == 0 {
            0.0
        } else {
            inv_var[..k].iter().sum::<f32>() / k as f32
        };
        let mut col_w: Vec<f32> = vec![resp_w / k.max(1) as f32; k];
        col_w.push(inv_var[k]);
        let w = Tensor::<2>::from_data(TensorData::new(col_w, [1, width]), dev);
        let mut loss: Option<Tensor<1>> = None;
        for net in &model.members {
            let (mut obs, mut acts, mut ys) = (
                Vec::with_capacity(b * d),
                Vec::with_capacity(b),
                Vec::with_capacity(b * width),
            );
            for _ in 0..b {
                let s = self.rng.below(self.replay.len());
                let seg = &self.replay[s];
                let r = self.rng.below(seg.len());
                obs.extend_from_slice(&seg.obs[r * d..(r + 1) * d]);
                acts.push(seg.actions[r]);
                ys.extend_from_slice(&seg.targets[r * width..(r + 1) * width]);
            }
            let x = inputs(&obs, &acts, d, na);
            let x = Tensor::<2>::from_data(TensorData::new(x, [b, d + na]), dev);
            let y = Tensor::<2>::from_data(TensorData::new(ys, [b, width]), dev);
            let err = (net.forward(x) - y).powi_scalar(2) * w.clone();
            let l = err.sum() / b as f32;
            loss = Some(match loss {
                Some(acc) => acc + l,
                None => l,
            });
        }
        let loss = loss.expect("at least one member");
        let value = loss.clone().inner().into_scalar::<f32>();
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        crate::grad_clip::clip_global_norm(&mut grads, &self.param_ids, 1.0);
        self.model = Some(self.optim.step(self.shape.learning_rate, model, grads));
        value
    }

    /// Everything needed to continue training exactly.
    pub(crate) fn snapshot(&self) -> Result<ResponseSnapshot, String> {
        let model = self.model.as_ref().expect("model present").clone();
        let model = model
            .into_record()
            .into_bytes()
            .map_err(|e| format!("world-model record: {e:?}"))?
            .to_vec();
        let optimizer = self
            .optim
            .into_bytes()
            .map_err(|e| format!("world-model optimiser record: {e:?}"))?
            .to_vec();
        Ok(ResponseSnapshot {
            state: ResponseTrainerState {
                shape: self.shape.clone(),
                rng: self.rng.clone(),
                trained: self.trained,
                replay_rows: self.replay.iter().map(Transitions::len).collect(),
            },
            model,
            optimizer,
            replay: self.replay.iter().map(encode).collect(),
        })
    }

    /// Rebuild from [`ResponseTrainer::snapshot`]'s parts; the error says what did not fit.
    pub(crate) fn restore(snap: ResponseSnapshot, device: &Device) -> Result<Self, String> {
        use burn::store::ModuleRecord;
        use burn::tensor::Bytes;
        let ResponseSnapshot {
            state,
            model,
            optimizer,
            replay,
        } = snap;
        if replay.len() != state.replay_rows.len() {
            return Err(format!(
                "{} replay rollouts listed, {} stored",
                state.replay_rows.len(),
                replay.len()
            ));
        }
        let device = device.clone().autodiff();
        let skeleton = build(&state.shape, &mut Rng::new(0), &device);
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(model))
            .map_err(|e| format!("world-model record: {e:?}"))?;
        let model = skeleton
            .try_load_record(record)
            .map_err(|e| format!("world-model record: {e:?}"))?;
        let optim = AdamConfig::new()
            .with_epsilon(1e-5)
            .init()
            .from_bytes(Bytes::from_bytes_vec(optimizer))
            .map_err(|e| format!("world-model optimiser record: {e:?}"))?;
        let mut segments = VecDeque::new();
        for (i, (&rows, bytes)) in state.replay_rows.iter().zip(&replay).enumerate() {
            let t = decode(rows, &state.shape, bytes)
                .ok_or_else(|| format!("replay rollout {i} has the wrong length"))?;
            segments.push_back(t);
        }
        let plain = to_plain(&model, &state.shape);
        Ok(Self {
            optim,
            param_ids: model.members.iter().flat_map(Net::param_ids).collect(),
            model: Some(model),
            plain,
            replay: segments,
            rng: state.rng,
            trained: state.trained,
            shape: state.shape,
            device,
        })
    }
}

/// Little-endian arrays: observations and targets (`f32`), then actions (`u32`).
fn encode(t: &Transitions) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * (t.obs.len() + t.targets.len() + t.actions.len()));
    for v in t.obs.iter().chain(&t.targets) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for a in &t.actions {
        out.extend_from_slice(&a.to_le_bytes());
    }
    out
}

fn decode(rows: usize, shape: &ModelShape, bytes: &[u8]) -> Option<Transitions> {
    let width = shape.response.len() + 1;
    let (n_obs, n_tgt) = (rows * shape.obs_dim, rows * width);
    if bytes.len() != 4 * (n_obs + n_tgt + rows) {
        return None;
    }
    let word = |c: &[u8]| <[u8; 4]>::try_from(c).expect("4 bytes");
    let mut words = bytes.chunks_exact(4);
    let obs = words
        .by_ref()
        .take(n_obs)
        .map(|c| f32::from_le_bytes(word(c)))
        .collect();
    let targets = words
        .by_ref()
        .take(n_tgt)
        .map(|c| f32::from_le_bytes(word(c)))
        .collect();
    let actions = words.map(|c| u32::from_le_bytes(word(c))).collect();
    Some(Transitions {
        obs,
        actions,
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> ModelShape {
        ModelShape {
            obs_dim: 2,
            num_actions: 2,
            response: vec![0],
            members: 3,
            hidden: 16,
            replay_rollouts: 2,
            train_steps: 200,
            batch: 64,
            learning_rate: 3e-3,
        }
    }

    /// Feature 0 responds to the action (+0.5 for action 1, −0.5 for action 0); the
    /// reward is 1 − |x1| − action; feature 1 is exogenous noise (not a target).
    fn data(rows: usize, seed: u64) -> Transitions {
        let mut rng = Rng::new(seed);
        let mut t = Transitions::default();
        for _ in 0..rows {
            #[allow(clippy::cast_possible_truncation)]
            let (x0, x1) = (rng.normal() as f32, rng.normal() as f32);
            let a = u32::from(rng.uniform() < 0.5);
            #[allow(clippy::cast_precision_loss)]
            let af = a as f32;
            t.obs.extend_from_slice(&[x0, x1]);
            t.actions.push(a);
            t.targets
                .extend_from_slice(&[af - 0.5, 1.0 - x1.abs() - af]);
        }
        t
    }

    #[test]
    fn learns_the_response_and_its_held_out_error_falls() {
        let mut tr = ResponseTrainer::new(shape(), &crate::cpu_device(), 1);
        let held_out = data(500, 9);
        let before = tr.errors(&held_out);
        assert!(before.response >= 0.9 && before.reward >= 0.5, "{before:?}");
        assert!(!tr.trained());
        tr.push(data(2000, 1));
        tr.train();
        let after = tr.errors(&held_out);
        assert!(tr.trained());
        assert!(after.response < 0.05, "{after:?}");
        assert!(after.reward < 0.2, "{after:?}");
        // The predicted action effect is the real one (+1 on feature 0, −1 on reward).
        let mut out = Vec::new();
        tr.plain().predict(
            &[0.3, -0.2, 0.3, -0.2],
            &[0, 1],
            &mut MlpScratch::default(),
            &mut out,
        );
        for o in &out {
            assert!((o[2] - o[0] - 1.0).abs() < 0.2, "{o:?}");
            assert!((o[3] - o[1] + 1.0).abs() < 0.3, "{o:?}");
        }
    }

    #[test]
    fn snapshots_restore_exactly_and_bad_blobs_are_refused() {
        let dev = crate::cpu_device();
        let mut a = ResponseTrainer::new(
            ModelShape {
                train_steps: 3,
                ..shape()
            },
            &dev,
            2,
        );
        a.push(data(100, 1));
        a.train();
        a.push(data(50, 2));
        let snap = a.snapshot().unwrap();
        let bad = ResponseSnapshot {
            state: snap.state.clone(),
            model: snap.model.clone(),
            optimizer: snap.optimizer.clone(),
            replay: vec![snap.replay[0].clone(), snap.replay[1][..8].to_vec()],
        };
        assert!(
            ResponseTrainer::restore(bad, &dev)
                .unwrap_err()
                .contains("replay rollout 1")
        );
        let mut b = ResponseTrainer::restore(snap, &dev).unwrap();
        a.train();
        b.train();
        assert_eq!(a.plain(), b.plain());
    }
}
