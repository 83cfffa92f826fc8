//! `edgewise-policy`: the exported policy file of edgewise and its burn-free inference.
//!
//! This crate depends only on `serde`, `serde_json` and `thiserror` — never on a
//! deep-learning framework — and builds for `wasm32-unknown-unknown`, so the web app and
//! `edgewise simulate --policy FILE` can run a trained policy directly. The learner
//! (`edgewise-rl`, which re-exports this crate as `edgewise_rl::policy`) also uses
//! [`Mlp`] for fast rollout inference on plain `f32` slices.
//!
//! ```
//! # let bytes = edgewise_policy::PolicyFile::new(
//! #     edgewise_policy::ObsNorm { mean: vec![0.0; 2], var: vec![1.0; 2], epsilon: 1e-8, clip: 10.0 },
//! #     edgewise_policy::Mlp { layers: vec![edgewise_policy::Dense {
//! #         inputs: 2, outputs: 2, weight: vec![1.0, 0.0, 0.0, 1.0], bias: vec![0.0, 0.0] }] },
//! # ).unwrap().to_bytes();
//! let policy = edgewise_policy::PolicyFile::load(&bytes)?;
//! let probs = policy.act(&[0.5, -1.0]);        // action probabilities of one agent
//! let action = policy.greedy(&[0.5, -1.0]);    // argmax
//! assert_eq!(action, 0);
//! # assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
//! # Ok::<(), edgewise_policy::PolicyError>(())
//! ```
//!
//! # Format (`edgewise-policy`, version 1)
//!
//! A UTF-8 JSON object:
//!
//! ```json
//! {
//!   "format": "edgewise-policy",
//!   "version": 1,
//!   "obs_dim": 4,
//!   "num_actions": 2,
//!   "activation": "tanh",
//!   "obs_norm": { "mean": [..obs_dim], "var": [..obs_dim], "epsilon": 1e-8, "clip": 10.0 },
//!   "layers": [ { "inputs": 4, "outputs": 64, "weight": [..inputs*outputs], "bias": [..outputs] }, .. ],
//!   "meta": { "algo": "ppo", "env": "cartpole", "env_steps": 100000, "seed": 1 }
//! }
//! ```
//!
//! The policy maps one agent's raw observation `x` to action probabilities:
//! `z = clip((x - mean) / sqrt(var + epsilon), -clip, clip)`, then for each layer
//! `z = z · W + b` (`W` row-major `inputs × outputs`), with `tanh` between layers (not
//! after the last), and finally `softmax(z)`. Several agents of one environment (MEC
//! devices) each run the same network on their own observation row. Readers reject any
//! other `format` or `version` with [`PolicyError`]; `meta` is free-form and optional,
//! but the trainers of edgewise always write `algo`, `env` (`"cartpole"` or `"mec"`),
//! `obs_dim`, `env_steps` and `seed`, and readers that run a policy on a specific
//! environment check `env`/`obs_dim` (see [`PolicyFile::meta_str`]). A policy trained
//! with sequential decisions says so with `"decisions": "sequential"` ([`DECISIONS_KEY`]):
//! its runners let the deciding agents act one after another, each observing what the
//! ones before it committed, as in training; without the key agents decide all at once.

use serde::{Deserialize, Serialize};

/// The `meta` key that says how the agents of one environment took turns in training.
pub const DECISIONS_KEY: &str = "decisions";
/// [`DECISIONS_KEY`]'s value for one-after-another decisions in a broadcast order.
pub const SEQUENTIAL: &str = "sequential";

/// The value of the `format` field.
pub const FORMAT: &str = "edgewise-policy";
/// The format version this code reads and writes.
pub const VERSION: u32 = 1;

/// Why a policy file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON, or a field has the wrong type.
    #[error("policy file is not valid JSON for format {FORMAT} v{VERSION}: {0}")]
    Json(#[from] serde_json::Error),
    /// The `format` field is missing or names another format.
    #[error("not an {FORMAT} file (format field is {0:?})")]
    WrongFormat(Option<String>),
    /// A version this code does not read.
    #[error("{FORMAT} version {found} is not supported (this build reads version {VERSION})")]
    UnsupportedVersion {
        /// Version found in the file.
        found: u64,
    },
    /// Sizes in the file do not fit together.
    #[error("inconsistent policy file: {0}")]
    Shape(String),
    /// Activation other than `tanh`.
    #[error("unsupported activation {0:?} (expected \"tanh\")")]
    Activation(String),
}

/// One dense layer: `y = x · weight + bias`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
    /// Row-major `inputs × outputs`.
    pub weight: Vec<f32>,
    /// `outputs` entries.
    pub bias: Vec<f32>,
}

impl Dense {
    /// `out[r] = x[r] · W + b` for `rows` rows.
    pub fn forward(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        let (ni, no) = (self.inputs, self.outputs);
        for r in 0..rows {
            let xr = &x[r * ni..(r + 1) * ni];
            let yr = &mut out[r * no..(r + 1) * no];
            yr.copy_from_slice(&self.bias);
            for (k, &xk) in xr.iter().enumerate() {
                let wk = &self.weight[k * no..(k + 1) * no];
                for (y, &w) in yr.iter_mut().zip(wk) {
                    *y += xk * w;
                }
            }
        }
    }
}

/// A multi-layer perceptron with `tanh` between layers (none after the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    /// Layers in order.
    pub layers: Vec<Dense>,
}

impl Mlp {
    /// Input width.
    #[must_use]
    pub fn inputs(&self) -> usize {
        self.layers.first().map_or(0, |l| l.inputs)
    }

    /// Output width.
    #[must_use]
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// Run `rows` input rows; `out` gets `rows * outputs()` values. `scratch` is reused.
    pub fn forward(&self, x: &[f32], rows: usize, scratch: &mut MlpScratch, out: &mut [f32]) {
        let n = self.layers.len();
        let MlpScratch { a, b } = scratch;
        for (i, layer) in self.layers.iter().enumerate() {
            let len = rows * layer.outputs;
            if i + 1 == n {
                let input: &[f32] = if i == 0 { x } else { a };
                layer.forward(input, rows, &mut out[..len]);
            } else {
                b.resize(len, 0.0);
                let input: &[f32] = if i == 0 { x } else { a };
                layer.forward(input, rows, b);
                for v in b.iter_mut() {
                    *v = tanh(*v);
                }
                std::mem::swap(a, b);
            }
        }
    }

    fn check(&self) -> Result<(), PolicyError> {
        if self.layers.is_empty() {
            return Err(PolicyError::Shape("no layers".into()));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.weight.len() != l.inputs * l.outputs || l.bias.len() != l.outputs {
                return Err(PolicyError::Shape(format!(
                    "layer {i}: weight has {} values and bias {} for {}x{}",
                    l.weight.len(),
                    l.bias.len(),
                    l.inputs,
                    l.outputs
                )));
            }
            if i > 0 && self.layers[i - 1].outputs != l.inputs {
                return Err(PolicyError::Shape(format!(
                    "layer {i} takes {} inputs but layer {} gives {}",
                    l.inputs,
                    i - 1,
                    self.layers[i - 1].outputs
                )));
            }
        }
        Ok(())
    }
}

/// Reusable buffers for [`Mlp::forward`].
#[derive(Debug, Default, Clone)]
pub struct MlpScratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

/// Frozen observation-normalisation statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObsNorm {
    /// Mean per feature.
    pub mean: Vec<f32>,
    /// Variance per feature.
    pub var: Vec<f32>,
    /// Added to the variance before the square root.
    pub epsilon: f32,
    /// Normalised values are clipped to `[-clip, clip]`.
    pub clip: f32,
}

impl ObsNorm {
    /// Normalise rows of `mean.len()` features from `raw` into `out`.
    pub fn apply(&self, raw: &[f32], out: &mut [f32]) {
        let dim = self.mean.len();
        for (ri, ro) in raw.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            for d in 0..dim {
                let z = (ri[d] - self.mean[d]) / (self.var[d] + self.epsilon).sqrt();
                ro[d] = z.clamp(-self.clip, self.clip);
            }
        }
    }
}

/// A trained, exported policy: observation normaliser plus actor network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// Features per agent observation.
    pub obs_dim: usize,
    /// Discrete actions per agent.
    pub num_actions: usize,
    /// Hidden activation; only `"tanh"`.
    pub activation: String,
    /// Observation normalisation applied before the network.
    pub obs_norm: ObsNorm,
    /// The actor network (outputs logits).
    #[serde(flatten)]
    pub actor: Mlp,
    /// Free-form provenance (algorithm, environment, steps, seed, ...).
    #[serde(default)]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl PolicyFile {
    /// Build a policy file from its parts (checks that the sizes agree).
    ///
    /// # Errors
    /// [`PolicyError::Shape`] when the normaliser, network and action count disagree.
    pub fn new(obs_norm: ObsNorm, actor: Mlp) -> Result<Self, PolicyError> {
        let file = Self {
            format: FORMAT.into(),
            version: VERSION,
            obs_dim: actor.inputs(),
            num_actions: actor.outputs(),
            activation: "tanh".into(),
            obs_norm,
            actor,
            meta: serde_json::Map::new(),
        };
        file.check()?;
        Ok(file)
    }

    /// Parse and validate a policy file.
    ///
    /// # Errors
    /// [`PolicyError`] naming what is wrong: not JSON, another format, another version,
    /// or sizes that do not fit.
    pub fn load(bytes: &[u8]) -> Result<Self, PolicyError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)?;
        let format = value.get("format").and_then(|f| f.as_str());
        if format != Some(FORMAT) {
            return Err(PolicyError::WrongFormat(format.map(str::to_owned)));
        }
        let version = value.get("version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(VERSION)) {
            return Err(PolicyError::UnsupportedVersion {
                found: version.unwrap_or(0),
            });
        }
        let file: Self = serde_json::from_value(value)?;
        file.check()?;
        Ok(file)
    }

    /// Serialise to JSON bytes (the inverse of [`PolicyFile::load`]).
    ///
    /// # Panics
    /// Never in practice: every field serialises.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("policy file serialises")
    }

    fn check(&self) -> Result<(), PolicyError> {
        if self.activation != "tanh" {
            return Err(PolicyError::Activation(self.activation.clone()));
        }
        self.actor.check()?;
        if self.actor.inputs() != self.obs_dim || self.actor.outputs() != self.num_actions {
            return Err(PolicyError::Shape(format!(
                "network maps {} -> {} but obs_dim is {} and num_actions {}",
                self.actor.inputs(),
                self.actor.outputs(),
                self.obs_dim,
                self.num_actions
            )));
        }
        if self.obs_norm.mean.len() != self.obs_dim || self.obs_norm.var.len() != self.obs_dim {
            return Err(PolicyError::Shape(format!(
                "obs_norm has {} means and {} variances for obs_dim {}",
                self.obs_norm.mean.len(),
                self.obs_norm.var.len(),
                self.obs_dim
            )));
        }
        Ok(())
    }

    /// A string field of `meta` (e.g. `"env"` or `"algo"`), if present.
    #[must_use]
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta.get(key).and_then(serde_json::Value::as_str)
    }

    /// Whether the policy was trained deciding one agent after another
    /// ([`DECISIONS_KEY`] is [`SEQUENTIAL`]).
    #[must_use]
    pub fn decides_in_order(&self) -> bool {
        self.meta_str(DECISIONS_KEY) == Some(SEQUENTIAL)
    }

    /// Index of the largest value of a row (the first on ties; 0 for an empty row).
    #[must_use]
    pub fn argmax(row: &[f32]) -> u32 {
        let best = row
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0;
        u32::try_from(best).unwrap_or(0)
    }

    /// Greedy actions for many agents at once: `obs` holds rows of `obs_dim`, `actions`
    /// gets one argmax per row.
    pub fn greedy_batch(&self, obs: &[f32], actions: &mut [u32], scratch: &mut PolicyScratch) {
        let rows = obs.len() / self.obs_dim;
        let mut probs = std::mem::take(&mut scratch.probs);
        probs.resize(rows * self.num_actions, 0.0);
        self.act_batch(obs, &mut probs, scratch);
        for (a, row) in actions.iter_mut().zip(probs.chunks_exact(self.num_actions)) {
            *a = Self::argmax(row);
        }
        scratch.probs = probs;
    }

    /// Action probabilities for one agent's raw observation (`obs_dim` values).
    ///
    /// # Panics
    /// If `obs.len() != obs_dim`.
    #[must_use]
    pub fn act(&self, obs: &[f32]) -> Vec<f32> {
        assert_eq!(obs.len(), self.obs_dim, "observation length");
        let mut out = vec![0.0; self.num_actions];
        self.act_batch(obs, &mut out, &mut PolicyScratch::default());
        out
    }

    /// Action probabilities for many agents at once: `obs` holds rows of `obs_dim`,
    /// `probs` gets rows of `num_actions`.
    pub fn act_batch(&self, obs: &[f32], probs: &mut [f32], scratch: &mut PolicyScratch) {
        let rows = obs.len() / self.obs_dim;
        scratch.norm.resize(obs.len(), 0.0);
        self.obs_norm.apply(obs, &mut scratch.norm);
        self.actor
            .forward(&scratch.norm, rows, &mut scratch.mlp, probs);
        for row in probs.chunks_exact_mut(self.num_actions) {
            softmax_in_place(row);
        }
    }

    /// The most probable action for one agent.
    #[must_use]
    pub fn greedy(&self, obs: &[f32]) -> u32 {
        Self::argmax(&self.act(obs))
    }
}

/// Reusable buffers for [`PolicyFile::act_batch`].
#[derive(Debug, Default, Clone)]
pub struct PolicyScratch {
    norm: Vec<f32>,
    mlp: MlpScratch,
    probs: Vec<f32>,
}

/// `tanh` by the rational approximation used by Eigen and XLA (maximum error a few
/// ULP of `f32`), about ten times faster than the C library's `tanhf` and vectorisable.
#[must_use]
#[inline]
#[allow(clippy::excessive_precision)] // the published coefficients, verbatim
pub fn tanh(x: f32) -> f32 {
    const A1: f32 = 4.893_524_558_917_86e-3;
    const A3: f32 = 6.372_619_288_754_36e-4;
    const A5: f32 = 1.485_722_357_179_79e-5;
    const A7: f32 = 5.122_297_090_371_14e-8;
    const A9: f32 = -8.604_671_522_137_35e-11;
    const A11: f32 = 2.000_187_904_824_77e-13;
    const A13: f32 = -2.760_768_477_423_55e-16;
    const B0: f32 = 4.893_525_185_543_85e-3;
    const B2: f32 = 2.268_434_632_439e-3;
    const B4: f32 = 1.185_347_056_866_54e-4;
    const B6: f32 = 1.198_258_394_667_02e-6;
    let x = x.clamp(-7.905_311, 7.905_311);
    if x.abs() < 4e-4 {
        return x;
    }
    let x2 = x * x;
    let mut p = x2.mul_add(A13, A11);
    p = x2.mul_add(p, A9);
    p = x2.mul_add(p, A7);
    p = x2.mul_add(p, A5);
    p = x2.mul_add(p, A3);
    p = x2.mul_add(p, A1);
    p *= x;
    let mut q = x2.mul_add(B6, B4);
    q = x2.mul_add(q, B2);
    q = x2.mul_add(q, B0);
    p / q
}

/// Numerically stable softmax of one row, in place.
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> PolicyFile {
        let actor = Mlp {
            layers: vec![
                Dense {
                    inputs: 2,
                    outputs: 3,
                    weight: vec![1., 0., -1., 0., 1., 0.5],
                    bias: vec![0., 0.1, 0.],
                },
                Dense {
                    inputs: 3,
                    outputs: 2,
                    weight: vec![1., -1., 0.5, 0.5, -1., 1.],
                    bias: vec![0.2, 0.],
                },
            ],
        };
        let norm = ObsNorm {
            mean: vec![0.5, -0.5],
            var: vec![4.0, 1.0],
            epsilon: 1e-8,
            clip: 10.0,
        };
        PolicyFile::new(norm, actor).unwrap()
    }

    #[test]
    fn round_trip_and_probabilities() {
        let p = tiny();
        let back = PolicyFile::load(&p.to_bytes()).unwrap();
        assert_eq!(p, back);
        let probs = back.act(&[1.0, 2.0]);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // By hand: z = [0.25, 2.5]; h = tanh([0.25, 2.6, 1.0]); logits = h·W2 + b2.
        let h = [0.25f32.tanh(), 2.6f32.tanh(), 1.0f32.tanh()];
        let l0 = h[0] + 0.5 * h[1] - h[2] + 0.2;
        let l1 = -h[0] + 0.5 * h[1] + h[2];
        let p0 = 1.0 / (1.0 + (l1 - l0).exp());
        assert!((probs[0] - p0).abs() < 1e-6, "{probs:?} vs {p0}");
    }

    #[test]
    fn greedy_batch_matches_greedy() {
        let p = tiny();
        let obs = [1.0, 2.0, -3.0, 0.5, 0.0, 0.0];
        let mut actions = [9u32; 3];
        p.greedy_batch(&obs, &mut actions, &mut PolicyScratch::default());
        for (row, &a) in obs.chunks_exact(2).zip(&actions) {
            assert_eq!(p.greedy(row), a);
        }
        assert_eq!(PolicyFile::argmax(&[0.1, 0.7, 0.7]), 1);
        let mut with_meta = p;
        with_meta.meta.insert("env".into(), "mec".into());
        assert_eq!(with_meta.meta_str("env"), Some("mec"));
        assert_eq!(with_meta.meta_str("algo"), None);
    }

    #[test]
    fn fast_tanh_matches_std() {
        let mut worst = 0.0f32;
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            worst = worst.max((tanh(x) - x.tanh()).abs());
        }
        assert!(worst < 2e-6, "max error {worst}");
        assert!(tanh(f32::NAN).is_nan() || tanh(f32::NAN) == tanh(f32::NAN));
    }

    #[test]
    fn wrong_format_and_version_are_named() {
        let mut v: serde_json::Value = serde_json::from_slice(&tiny().to_bytes()).unwrap();
        v["version"] = 2.into();
        let err = PolicyFile::load(v.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(err, PolicyError::UnsupportedVersion { found: 2 }),
            "{err}"
        );
        assert!(err.to_string().contains("version 2"));
        v["format"] = "onnx".into();
        assert!(matches!(
            PolicyFile::load(v.to_string().as_bytes()),
            Err(PolicyError::WrongFormat(_))
        ));
        assert!(matches!(
            PolicyFile::load(b"{not json"),
            Err(PolicyError::Json(_))
        ));
    }

    #[test]
    fn inconsistent_sizes_are_rejected() {
        let mut v: serde_json::Value = serde_json::from_slice(&tiny().to_bytes()).unwrap();
        v["obs_dim"] = 5.into();
        assert!(matches!(
            PolicyFile::load(v.to_string().as_bytes()),
            Err(PolicyError::Shape(_))
        ));
    }
}
