//! Logit distillation of a pruned student from its teacher (ECLD step 2).
//!
//! * [`Student`]: a trainable f32 copy of a [`Model`] (candle `Var`s; backprop through plain
//!   tensor ops: RMSNorm, rotary embedding and softmax are written out here because candle-nn's
//!   fused kernels have no backward pass). The token embedding is frozen: it is shared with
//!   the output matrix in tied models, pruning never touches it, and it is a fifth of the
//!   weights of a 135M model (its gradient and optimizer state would cost more than the
//!   blocks'). An untied `output.weight` is trained.
//! * Loss: `τ² · KL(softmax(t/τ) ‖ softmax(s/τ))`, averaged over tokens, plus an optional
//!   `ce_weight ·` next-token cross-entropy on the training text.
//! * Optimizer: AdamW written out here rather than candle-nn's `AdamW`, whose moment
//!   estimates are private: a resumable checkpoint must save and restore them, and an
//!   optimizer that restarted from zero moments would not continue the run exactly.
//! * Checkpoints ([`CheckpointOptions`]): every K steps, atomically, a folder
//!   `step-NNNNNNNN/` with the student weights (`student.safetensors`), the optimizer state
//!   (`optimizer.safetensors`: first and second moments) and `state.json` (step, data
//!   cursor, seed, losses and a hash of everything that determines the run); a `latest`
//!   file names the newest folder. Resuming gives bit-identical weights to an uninterrupted
//!   run; a checkpoint of another configuration is refused.
//!
//! Randomness: the order of training windows is a Fisher–Yates shuffle per epoch from a
//! xoshiro256++ seeded with `(seed, epoch)`, so the data cursor `(epoch, position)` is the
//! whole RNG state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{D, DType, Device, Tensor, Var};
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use edgewise_llm::config::{ModelConfig, RopeStyle};
use edgewise_llm::error::{Error, Result};
use edgewise_llm::model::{Model, attention_mask, rope_tables};

/// Hyper-parameters of a distillation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// Optimizer steps in total (a resumed run continues up to this count).
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// AdamW learning rate (constant).
    pub lr: f64,
    /// AdamW decoupled weight decay (matrices only; norms and biases are not decayed).
    pub weight_decay: f64,
    /// AdamW β₁.
    pub beta1: f64,
    /// AdamW β₂.
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Gradient clipping by global L2 norm (0 = off).
    pub clip_norm: f64,
    /// Softmax temperature τ of the distillation loss.
    pub temperature: f64,
    /// Weight of the next-token cross-entropy added to the KL term (0 = pure KD).
    pub ce_weight: f64,
    /// Seed of the data order.
    pub seed: u64,
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            batch: 4,
            seq_len: 64,
            lr: 1e-4,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_norm: 1.0,
            temperature: 2.0,
            ce_weight: 0.0,
            seed: 0,
        }
    }
}

impl DistillConfig {
    /// Checks every field's range.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the field and its valid range.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, expected: &str, got: &dyn std::fmt::Display| {
            Err(Error::InvalidArgument(format!(
                "distillation {field} must be {expected}, got {got}"
            )))
        };
        if self.batch == 0 {
            return bad("batch", "at least 1", &self.batch);
        }
        if self.seq_len < 2 {
            return bad("seq_len", "at least 2", &self.seq_len);
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", "a positive number", &self.lr);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", "≥ 0", &self.weight_decay);
        }
        for (n, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(n, "in [0, 1)", &b);
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", "a positive number", &self.eps);
        }
        if !(self.clip_norm.is_finite() && self.clip_norm >= 0.0) {
            return bad("clip_norm", "≥ 0", &self.clip_norm);
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad("temperature", "a positive number", &self.temperature);
        }
        if !(self.ce_weight.is_finite() && self.ce_weight >= 0.0) {
            return bad("ce_weight", "≥ 0", &self.ce_weight);
        }
        Ok(())
    }
}

/// A trainable f32 copy of a model's weights (GGUF tensor names).
#[derive(Debug)]
pub struct Student {
    config: ModelConfig,
    /// Trainable weights, in a fixed order.
    params: Vec<(String, Var)>,
    /// Frozen weights (the token embedding).
    frozen: HashMap<String, Tensor>,
    index: HashMap<String, usize>,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

const EMBED: &str = "token_embd.weight";

impl Student {
    /// Dequantises every weight of `model` to f32; all but the token embedding become
    /// trainable.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn from_model(model: &Model) -> Result<Self> {
        let device = model.device().clone();
        let mut params = Vec::new();
        let mut frozen = HashMap::new();
        for (name, q) in model.named_tensors()? {
            let t = q.dequantize(&device)?.to_dtype(DType::F32)?;
            if name == EMBED {
                frozen.insert(name, t);
            } else {
                params.push((name, Var::from_tensor(&t)?));
            }
        }
        let index = params
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        let cfg = model.config().clone();
        let n_pos = cfg
            .context_length
            .min(edgewise_llm::model::MAX_ROPE_POSITIONS);
        let (cos, sin) = rope_tables(cfg.head_dim, n_pos, cfg.rope_theta, &device)?;
        Ok(Self {
            config: cfg,
            params,
            frozen,
            index,
            cos,
            sin,
            device,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The trainable weights by name.
    #[must_use]
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// Number of trainable scalars.
    #[must_use]
    pub fn trainable_count(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }

    fn w(&self, name: &str) -> Result<&Tensor> {
        if let Some(&i) = self.index.get(name) {
            return Ok(self.params[i].1.as_tensor());
        }
        self.frozen
            .get(name)
            .ok_or_else(|| Error::MissingTensor(name.to_owned()))
    }

    fn opt(&self, name: &str) -> Option<&Tensor> {
        self.w(name).ok()
    }

    /// A [`Model`] with the current weights (F32 block type; quantize it afterwards).
    ///
    /// # Errors
    /// Tensor errors.
    pub fn to_model(&self) -> Result<Model> {
        let mut get = |name: &str| -> Result<Option<QTensor>> {
            match self.opt(name) {
                Some(t) => Ok(Some(QTensor::quantize(t, GgmlDType::F32)?)),
                None => Ok(None),
            }
        };
        Model::from_tensors(self.config.clone(), &mut get, &self.device)
    }

    /// Logits `(batch·seq, vocab)` for token windows `(batch, seq)`, differentiable in the
    /// trainable weights.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for out-of-vocabulary ids or a window longer than the
    /// context; tensor errors.
    pub fn forward(&self, windows: &[Vec<u32>]) -> Result<Tensor> {
        let cfg = &self.config;
        let b = windows.len();
        let t = windows.first().map_or(0, Vec::len);
        if b == 0 || t == 0 || windows.iter().any(|w| w.len() != t) {
            return Err(Error::InvalidArgument(
                "student forward needs a non-empty batch of equal-length windows".into(),
            ));
        }
        if t > self.cos.dim(0)? {
            return Err(Error::ContextOverflow {
                needed: t,
                max: self.cos.dim(0)?,
            });
        }
        let flat: Vec<u32> = windows.iter().flatten().copied().collect();
        if let Some(&bad) = flat.iter().find(|&&x| x as usize >= cfg.vocab_size) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} out of vocabulary of {}",
                cfg.vocab_size
            )));
        }
        let e = cfg.n_embd;
        let hd = cfg.head_dim;
        let ids = Tensor::new(flat.as_slice(), &self.device)?;
        let mut x = self.w(EMBED)?.index_select(&ids, 0)?; // (b·t, e)
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        let mask = attention_mask(t, 0, cfg.sliding_window, &self.device)?;
        #[allow(clippy::cast_precision_loss)]
        let scale = 1.0 / (hd as f64).sqrt();
        for l in 0..cfg.n_layer {
            let p = format!("blk.{l}");
            let w = |n: &str| self.w(&format!("{p}.{n}"));
            let lin = |x: &Tensor, n: &str| -> Result<Tensor> {
                let y = x.matmul(&w(&format!("{n}.weight"))?.t()?)?;
                Ok(match self.opt(&format!("{p}.{n}.bias")) {
                    Some(bias) => y.broadcast_add(bias)?,
                    None => y,
                })
            };
            let (nh, nkv) = (cfg.n_head[l], cfg.n_head_kv[l]);
            let rep = nh / nkv;
            let h = rms_norm(&x, w("attn_norm.weight")?, cfg.rms_eps)?;
            let heads = |y: Tensor, n: usize| -> Result<Tensor> {
                Ok(y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?)
            };
            let mut q = heads(lin(&h, "attn_q")?, nh)?;
            let mut k = heads(lin(&h, "attn_k")?, nkv)?;
            let v = heads(lin(&h, "attn_v")?, nkv)?;
            if cfg.qk_norm {
                q = rms_norm(&q, w("attn_q_norm.weight")?, cfg.rms_eps)?;
                k = rms_norm(&k, w("attn_k_norm.weight")?, cfg.rms_eps)?;
            }
            let q = rope(&q, &cos, &sin, cfg.rope_style)?;
            let k = rope(&k, &cos, &sin, cfg.rope_style)?;
            // Query heads of one KV group fold into the row dimension (as in `Model`).
            let qg = q.reshape((b, nkv, rep * t, hd))?;
            let att = (qg.matmul(&k.t()?)? * scale)?
                .reshape((b, nkv, rep, t, t))?
                .broadcast_add(&mask)?
                .reshape((b, nkv, rep * t, t))?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let y = att
                .matmul(&v)?
                .reshape((b, nh, t, hd))?
                .transpose(1, 2)?
                .reshape((b * t, nh * hd))?;
            x = (lin(&y, "attn_output")? + x)?;
            let h = rms_norm(&x, w("ffn_norm.weight")?, cfg.rms_eps)?;
            let act = (lin(&h, "ffn_gate")?.silu()? * lin(&h, "ffn_up")?)?;
            x = (lin(&act, "ffn_down")? + x)?;
        }
        let x = rms_norm(&x, self.w("output_norm.weight")?, cfg.rms_eps)?;
        let out = self.opt("output.weight").unwrap_or(self.w(EMBED)?);
        debug_assert_eq!(x.dim(1)?, e);
        Ok(x.matmul(&out.t()?)?)
    }
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (ms + f64::from(eps))?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv)?.broadcast_mul(w)?)
}

/// Rotary embedding of `(b, heads, t, hd)` with tables `(t, hd/2)`, in plain ops.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
    let (b, h, t, hd) = x.dims4()?;
    let half = hd / 2;
    Ok(match style {
        RopeStyle::Interleaved => {
            let xp = x.reshape((b, h, t, half, 2))?;
            let x0 = xp.narrow(4, 0, 1)?;
            let x1 = xp.narrow(4, 1, 1)?;
            let c = cos.reshape((t, half, 1))?;
            let s = sin.reshape((t, half, 1))?;
            let r0 = (x0.broadcast_mul(&c)? - x1.broadcast_mul(&s)?)?;
            let r1 = (x0.broadcast_mul(&s)? + x1.broadcast_mul(&c)?)?;
            Tensor::cat(&[r0, r1], 4)?.reshape((b, h, t, hd))?
        }
        RopeStyle::Halves => {
            let x0 = x.narrow(3, 0, half)?;
            let x1 = x.narrow(3, half, half)?;
            let r0 = (x0.broadcast_mul(cos)? - x1.broadcast_mul(sin)?)?;
            let r1 = (x1.broadcast_mul(cos)? + x0.broadcast_mul(sin)?)?;
            Tensor::cat(&[r0, r1], 3)?
        }
    })
}

/// Teacher logits `(batch·seq, vocab)` for `windows` (no gradient).
///
/// # Errors
/// Model errors.
pub fn teacher_logits(teacher: &Model, windows: &[Vec<u32>]) -> Result<Tensor> {
    let rows = windows
        .iter()
        .map(|w| teacher.forward_all(w, &mut teacher.new_cache()))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&rows, 0)?.detach())
}

/// The distillation loss and its parts.
#[derive(Debug, Clone)]
pub struct Loss {
    /// `τ²·KL + ce_weight·CE`, differentiable.
    pub total: Tensor,
    /// Mean KL(teacher ‖ student) per token at temperature τ (without the τ² factor).
    pub kl: f32,
    /// Mean next-token cross-entropy of the student (nats).
    pub ce: f32,
}

/// The loss of `student_logits` against `teacher_logits` (both `(b·t, vocab)`) for token
/// windows `(b, t)`.
///
/// # Errors
/// Tensor errors.
pub fn distill_loss(
    student_logits: &Tensor,
    teacher_logits: &Tensor,
    windows: &[Vec<u32>],
    temperature: f64,
    ce_weight: f64,
) -> Result<Loss> {
    let n = student_logits.dim(0)?;
    let s = (student_logits / temperature)?;
    let tl = (teacher_logits / temperature)?;
    let log_ps = candle_nn::ops::log_softmax(&s, D::Minus1)?;
    let log_pt = candle_nn::ops::log_softmax(&tl, D::Minus1)?;
    let pt = log_pt.exp()?;
    #[allow(clippy::cast_precision_loss)]
    let kl = ((pt * (log_pt - &log_ps)?)?.sum_all()? / n as f64)?;
    // Next-token cross-entropy at τ = 1 on positions that have a successor.
    let t = windows[0].len();
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (bi, w) in windows.iter().enumerate() {
        for p in 0..t - 1 {
            rows.push(u32::try_from(bi * t + p).unwrap_or(u32::MAX));
            targets.push(w[p + 1]);
        }
    }
    let dev = student_logits.device();
    let rows = Tensor::new(rows.as_slice(), dev)?;
    let targets = Tensor::new(targets.as_slice(), dev)?.unsqueeze(1)?;
    let log_p1 = candle_nn::ops::log_softmax(&student_logits.index_select(&rows, 0)?, D::Minus1)?;
    let ce = log_p1.gather(&targets, 1)?.mean_all()?.neg()?;
    let mut total = (&kl * (temperature * temperature))?;
    if ce_weight > 0.0 {
        total = (total + (&ce * ce_weight)?)?;
    }
    Ok(Loss {
        kl: kl.to_scalar::<f32>()?,
        ce: ce.to_scalar::<f32>()?,
        total,
    })
}

/// Training text cut into fixed-length windows, with a seeded per-epoch order.
#[derive(Debug, Clone)]
pub struct TokenWindows {
    windows: Vec<Vec<u32>>,
}

impl TokenWindows {
    /// Concatenates `passages` (each followed by `separator` when given) and cuts the
    /// stream into non-overlapping windows of `seq_len` tokens (the tail is dropped).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the text gives no full window.
    pub fn new(passages: &[Vec<u32>], separator: Option<u32>, seq_len: usize) -> Result<Self> {
        let mut stream = Vec::new();
        for p in passages {
            stream.extend_from_slice(p);
            stream.extend(separator);
        }
        if seq_len == 0 || stream.len() < seq_len {
            return Err(Error::InvalidArgument(format!(
                "calibration text has {} tokens, fewer than one window of {seq_len}",
                stream.len()
            )));
        }
        Ok(Self {
            windows: stream.chunks_exact(seq_len).map(<[u32]>::to_vec).collect(),
        })
    }

    /// The windows in text order.
    #[must_use]
    pub fn windows(&self) -> &[Vec<u32>] {
        &self.windows
    }

    /// SHA-256 (hex) of the token ids, for checkpoint identity.
    #[must_use]
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for w in &self.windows {
            for t in w {
                h.update(t.to_le_bytes());
            }
        }
        hex(&h.finalize())
    }

    fn order(&self, seed: u64, epoch: u64) -> Vec<usize> {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(
            seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut o: Vec<usize> = (0..self.windows.len()).collect();
        for i in (1..o.len()).rev() {
            let j = usize::try_from(rng.next_u64() % (i as u64 + 1)).unwrap_or(0);
            o.swap(i, j);
        }
        o
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Position in the data: epoch and index into that epoch's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Epoch (each has its own shuffle).
    pub epoch: u64,
    /// Next window of the epoch's order.
    pub pos: usize,
}

impl Cursor {
    fn next_batch(&mut self, data: &TokenWindows, seed: u64, batch: usize) -> Vec<Vec<u32>> {
        let mut order = data.order(seed, self.epoch);
        let mut out = Vec::with_capacity(batch);
        while out.len() < batch {
            if self.pos >= order.len() {
                self.epoch += 1;
                self.pos = 0;
                order = data.order(seed, self.epoch);
            }
            out.push(data.windows[order[self.pos]].clone());
            self.pos += 1;
        }
        out
    }
}

/// AdamW with its state in the open (see the module docs for why not candle-nn's).
#[derive(Debug)]
struct AdamW {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl AdamW {
    fn new(params: &[(String, Var)]) -> Result<Self> {
        let zeros = || -> Result<Vec<Tensor>> {
            params
                .iter()
                .map(|(_, p)| Ok(p.as_tensor().zeros_like()?))
                .collect()
        };
        Ok(Self {
            m: zeros()?,
            v: zeros()?,
        })
    }

    /// One update at (1-based) `step`; returns the gradient norm before clipping.
    fn step(
        &mut self,
        params: &[(String, Var)],
        grads: &candle_core::backprop::GradStore,
        cfg: &DistillConfig,
        step: usize,
    ) -> Result<f32> {
        let gs: Vec<Option<&Tensor>> = params.iter().map(|(_, p)| grads.get(p)).collect();
        let mut sq = 0f64;
        for g in gs.iter().flatten() {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        let norm = sq.sqrt();
        let clip = if cfg.clip_norm > 0.0 && norm > cfg.clip_norm {
            cfg.clip_norm / norm
        } else {
            1.0
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let t = step as i32;
        let bc1 = 1.0 - cfg.beta1.powi(t);
        let bc2 = 1.0 - cfg.beta2.powi(t);
        for (i, ((_, p), g)) in params.iter().zip(gs).enumerate() {
            let Some(g) = g else { continue };
            let g = (g * clip)?;
            let m = ((&self.m[i] * cfg.beta1)? + (&g * (1.0 - cfg.beta1))?)?;
            let v = ((&self.v[i] * cfg.beta2)? + (g.sqr()? * (1.0 - cfg.beta2))?)?;
            let upd = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + cfg.eps)?)?;
            let decay = if p.rank() >= 2 {
                1.0 - cfg.lr * cfg.weight_decay
            } else {
                1.0
            };
            let next = ((p.as_tensor() * decay)? - (upd * cfg.lr)?)?;
            p.set(&next)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        #[allow(clippy::cast_possible_truncation)]
        Ok(norm as f32)
    }
}

/// Where and how often to checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    /// Folder holding `latest` and the `step-*` folders.
    pub dir: PathBuf,
    /// Save every this many steps (and after the last step); 0 = only after the last.
    pub every: usize,
    /// Continue from the newest checkpoint in `dir`.
    pub resume: bool,
    /// Anything else that determines the run (e.g. the command's pruning arguments and the
    /// base model); it enters the configuration hash.
    pub run_tag: String,
    /// Set by the caller (e.g. from `on_step`, when a time budget is spent) to end the run
    /// after the current step, with a checkpoint; a later `resume` with the same or a
    /// larger step count continues it.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

const CKPT_FORMAT: &str = "edgewise-distill-checkpoint";
const CKPT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    format: String,
    version: u32,
    step: usize,
    cursor: Cursor,
    seed: u64,
    config_hash: String,
    losses: Vec<f32>,
}

/// One step's report (for progress bars and logs).
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// 1-based step just finished.
    pub step: usize,
    /// Total steps of the run.
    pub steps: usize,
    /// Loss that was minimised.
    pub loss: f32,
    /// KL part.
    pub kl: f32,
    /// Cross-entropy (always measured).
    pub ce: f32,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
    /// Whether a checkpoint was written after this step.
    pub checkpointed: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct DistillReport {
    /// Step the run started from (0 unless resumed).
    pub start_step: usize,
    /// Loss of every step of the whole run (including resumed-from steps).
    pub losses: Vec<f32>,
}

fn config_hash(student: &Student, data: &TokenWindows, cfg: &DistillConfig, tag: &str) -> String {
    // `steps` is left out so a run may be extended on resume.
    let mut c = cfg.clone();
    c.steps = 0;
    let ident = serde_json::json!({
        "student": student.config(),
        "distill": c,
        "data": data.digest(),
        "run": tag,
    });
    hex(&Sha256::digest(ident.to_string().as_bytes()))
}

/// Trains `student` towards `teacher` on `data` for `cfg.steps` steps.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad configuration, a window length other than
/// `cfg.seq_len`, or a checkpoint of another run; [`Error::Checkpoint`] for an unreadable
/// checkpoint; I/O and tensor errors.
pub fn distill(
    teacher: &Model,
    student: &mut Student,
    data: &TokenWindows,
    cfg: &DistillConfig,
    checkpoint: Option<&CheckpointOptions>,
    on_step: &mut dyn FnMut(&StepReport),
) -> Result<DistillReport> {
    cfg.validate()?;
    if data.windows.first().map(Vec::len) != Some(cfg.seq_len) {
        return Err(Error::InvalidArgument(format!(
            "training windows have {} tokens, the configuration says seq_len {}",
            data.windows.first().map_or(0, Vec::len),
            cfg.seq_len
        )));
    }
    if teacher.config().vocab_size != student.config().vocab_size {
        return Err(Error::InvalidArgument(
            "teacher and student have different vocabularies".into(),
        ));
    }
    let hash = config_hash(student, data, cfg, checkpoint.map_or("", |c| &c.run_tag));
    let mut opt = AdamW::new(&student.params)?;
    let mut cursor = Cursor { epoch: 0, pos: 0 };
    let mut losses = Vec::new();
    let mut start = 0;
    if let Some(ck) = checkpoint.filter(|c| c.resume) {
        let st = load_checkpoint(&ck.dir, &hash, student, &mut opt)?;
        start = st.step;
        cursor = st.cursor;
        losses = st.losses;
    }
    let save_state = |dir: &Path, step, cursor, losses: &[f32], opt: &AdamW| {
        let st = CheckpointState {
            format: CKPT_FORMAT.into(),
            version: CKPT_VERSION,
            step,
            cursor,
            seed: cfg.seed,
            config_hash: hash.clone(),
            losses: losses.to_vec(),
        };
        save_checkpoint(dir, &st, student, opt)
    };
    for step in start + 1..=cfg.steps {
        let batch = cursor.next_batch(data, cfg.seed, cfg.batch);
        let t_logits = teacher_logits(teacher, &batch)?;
        let s_logits = student.forward(&batch)?;
        let loss = distill_loss(&s_logits, &t_logits, &batch, cfg.temperature, cfg.ce_weight)?;
        let grads = loss.total.backward()?;
        let grad_norm = opt.step(&student.params, &grads, cfg, step)?;
        let total = loss.total.to_scalar::<f32>()?;
        if !total.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "distillation diverged at step {step} (loss {total}); lower the learning rate"
            )));
        }
        losses.push(total);
        let mut checkpointed = false;
        if let Some(ck) = checkpoint {
            let due = step == cfg.steps || (ck.every > 0 && step.is_multiple_of(ck.every));
            if due {
                save_state(&ck.dir, step, cursor, &losses, &opt)?;
                checkpointed = true;
            }
        }
        on_step(&StepReport {
            step,
            steps: cfg.steps,
            loss: total,
            kl: loss.kl,
            ce: loss.ce,
            grad_norm,
            checkpointed,
        });
        if let Some(ck) = checkpoint
            && step < cfg.steps
            && ck
                .stop
                .as_ref()
                .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
        {
            if !checkpointed {
                save_state(&ck.dir, step, cursor, &losses, &opt)?;
            }
            break;
        }
    }
    Ok(DistillReport {
        start_step: start,
        losses,
    })
}

fn ck_err(dir: &Path, detail: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: dir.to_path_buf(),
        detail: detail.into(),
    }
}

fn save_checkpoint(dir: &Path, st: &CheckpointState, student: &Student, opt: &AdamW) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = format!("step-{:08}", st.step);
    let tmp = dir.join(format!("{name}.tmp"));
    let fin = dir.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let weights: HashMap<String, Tensor> = student
        .params
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&weights, tmp.join("student.safetensors"))?;
    let mut moments = HashMap::new();
    for (i, (n, _)) in student.params.iter().enumerate() {
        moments.insert(format!("m.{n}"), opt.m[i].clone());
        moments.insert(format!("v.{n}"), opt.v[i].clone());
    }
    candle_core::safetensors::save(&moments, tmp.join("optimizer.safetensors"))?;
    let json = serde_json::to_string_pretty(st)
        .map_err(|e| ck_err(dir, format!("cannot encode state: {e}")))?;
    write_synced(&tmp.join("state.json"), json.as_bytes())?;
    if fin.exists() {
        std::fs::remove_dir_all(&fin).map_err(|e| Error::io(&fin, e))?;
    }
    std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
    // `latest` switches atomically; older step folders go afterwards.
    let latest_tmp = dir.join("latest.tmp");
    write_synced(&latest_tmp, name.as_bytes())?;
    let latest = dir.join("latest");
    std::fs::rename(&latest_tmp, &latest).map_err(|e| Error::io(&latest, e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with("step-") && n != name {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

fn load_checkpoint(
    dir: &Path,
    hash: &str,
    student: &Student,
    opt: &mut AdamW,
) -> Result<CheckpointState> {
    let latest = dir.join("latest");
    let name = std::fs::read_to_string(&latest).map_err(|e| {
        ck_err(
            dir,
            format!("no checkpoint to resume from ({}: {e})", latest.display()),
        )
    })?;
    let step_dir = dir.join(name.trim());
    let state_path = step_dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let st: CheckpointState = serde_json::from_str(&text)
        .map_err(|e| ck_err(&state_path, format!("unreadable state: {e}")))?;
    if st.format != CKPT_FORMAT || st.version != CKPT_VERSION {
        return Err(ck_err(
            &state_path,
            format!(
                "format {} v{}, expected {CKPT_FORMAT} v{CKPT_VERSION}",
                st.format, st.version
            ),
        ));
    }
    if st.config_hash != hash {
        return Err(ck_err(
            dir,
            "the checkpoint was written by a run with another configuration (model, pruning, \
             data or distillation settings differ); use the same arguments or another \
             --checkpoint-dir",
        ));
    }
    let dev = &student.device;
    let w = candle_core::safetensors::load(step_dir.join("student.safetensors"), dev)?;
    let mo = candle_core::safetensors::load(step_dir.join("optimizer.safetensors"), dev)?;
    for (i, (n, p)) in student.params.iter().enumerate() {
        let get = |map: &HashMap<String, Tensor>, key: &str| -> Result<Tensor> {
            let t = map
                .get(key)
                .ok_or_else(|| ck_err(&step_dir, format!("tensor `{key}` missing")))?;
            if t.dims() != p.dims() {
                return Err(ck_err(
                    &step_dir,
                    format!(
                        "tensor `{key}` has shape {:?}, expected {:?}",
                        t.dims(),
                        p.dims()
                    ),
                ));
            }
            Ok(t.clone())
        };
        p.set(&get(&w, n)?)?;
        opt.m[i] = get(&mo, &format!("m.{n}"))?;
        opt.v[i] = get(&mo, &format!("v.{n}"))?;
    }
    Ok(st)
}

/// How the teacher writes the distillation text (sequence-level knowledge distillation:
/// the student is trained on text the teacher itself produces, so it learns the teacher's
/// distribution where the teacher puts its mass rather than on a small fixed corpus).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherTextConfig {
    /// Tokens the teacher writes after each prompt, at most.
    pub max_new_tokens: usize,
    /// Sampling temperature (> 0).
    pub temperature: f32,
    /// Nucleus mass in (0, 1].
    pub top_p: f32,
    /// Seed; prompt `i` samples with its own generator seeded from `(seed, i)`.
    pub seed: u64,
}

impl Default for TeacherTextConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 96,
            temperature: 0.8,
            top_p: 0.95,
            seed: 0,
        }
    }
}

/// One prompt's passage for distillation (see [`teacher_text`]).
fn teacher_passage(
    model: &Model,
    tok: &edgewise_llm::tokenizer::Tokenizer,
    index: usize,
    prompt: &str,
    cfg: &TeacherTextConfig,
) -> Result<Vec<u32>> {
    let chat = index % 2 == 1;
    let mut ids = if chat {
        let text =
            tok.apply_chat_template(&[edgewise_llm::tokenizer::ChatMessage::user(prompt)], true);
        tok.encode(&text, true)?
    } else {
        tok.encode(prompt, false)?
    };
    let sampling = edgewise_llm::sampling::Sampling::Sample {
        temperature: cfg.temperature,
        top_k: 0,
        top_p: cfg.top_p,
    };
    let seed = cfg
        .seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index as u64);
    let mut sampler = edgewise_llm::sampling::Sampler::new(sampling, seed)?;
    let stops = tok.stop_tokens();
    let (out, why) = edgewise_llm::generate::generate(
        model,
        &mut model.new_cache(),
        &ids,
        cfg.max_new_tokens,
        &mut sampler,
        &stops,
        &mut |_| true,
    )?;
    ids.extend_from_slice(&out);
    // A finished chat reply ends with the template's end-of-turn token, so the student
    // also learns where the teacher stops.
    if chat
        && why == edgewise_llm::generate::StopReason::StopToken
        && let Some(end) = tok.token_id("<|im_end|>").or(tok.eos())
    {
        ids.push(end);
    }
    Ok(ids)
}

/// The teacher's distillation text: one passage per prompt, deterministic for
/// `cfg.seed`. Even-numbered prompts are continued as plain text (passage = prompt tokens +
/// the teacher's continuation); odd-numbered ones are posed as a chat user turn (passage =
/// the templated turn + the teacher's reply), so the student sees both registers the
/// evaluation uses. `on_done(done, total)` follows progress.
///
/// # Errors
/// [`Error::InvalidArgument`] for an empty prompt list or bad sampling settings; model
/// and tokenizer errors.
pub fn teacher_text(
    model: &Model,
    tok: &edgewise_llm::tokenizer::Tokenizer,
    prompts: &[String],
    cfg: &TeacherTextConfig,
    on_done: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<u32>>> {
    if prompts.is_empty() {
        return Err(Error::InvalidArgument(
            "teacher text needs at least one prompt".into(),
        ));
    }
    if cfg.max_new_tokens == 0 {
        return Err(Error::InvalidArgument(
            "teacher text max_new_tokens must be at least 1, got 0".into(),
        ));
    }
    let mut out = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        out.push(teacher_passage(model, tok, i, p, cfg)?);
        on_done(i + 1, prompts.len());
    }
    Ok(out)
}

/// What the teacher-text cache file holds.
#[derive(Debug, Serialize, Deserialize)]
struct TeacherTextFile {
    format: String,
    key: String,
    config: TeacherTextConfig,
    passages: Vec<Vec<u32>>,
}

const TEACHER_TEXT_FORMAT: &str = "edgewise-teacher-text-v1";

/// [`teacher_text`], cached in `path` (JSON, written atomically). The cache is reused only
/// when it was made for the same `tag` (name the teacher model here), prompts and `cfg`;
/// otherwise the text is generated again and the file replaced. Returns the passages and
/// whether they came from the cache.
///
/// # Errors
/// As [`teacher_text`]; [`Error::Checkpoint`] for an unreadable or malformed cache file.
#[cfg(not(target_arch = "wasm32"))]
pub fn cached_teacher_text(
    path: &Path,
    tag: &str,
    model: &Model,
    tok: &edgewise_llm::tokenizer::Tokenizer,
    prompts: &[String],
    cfg: &TeacherTextConfig,
    on_done: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Vec<u32>>, bool)> {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    for p in prompts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.update(serde_json::to_vec(cfg).unwrap_or_default());
    let key = hex(&h.finalize());
    if path.exists() {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let f: TeacherTextFile = serde_json::from_slice(&bytes).map_err(|e| {
            ck_err(
                path,
                format!("not a teacher-text cache ({e}); delete it to generate the text again"),
            )
        })?;
        if f.format != TEACHER_TEXT_FORMAT {
            return Err(ck_err(
                path,
                format!("format {:?}, expected {TEACHER_TEXT_FORMAT:?}", f.format),
            ));
        }
        if f.key == key {
            return Ok((f.passages, true));
        }
    }
    let passages = teacher_text(model, tok, prompts, cfg, on_done)?;
    let file = TeacherTextFile {
        format: TEACHER_TEXT_FORMAT.into(),
        key,
        config: cfg.clone(),
        passages,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    edgewise_atomic_file::write_with(path, |w| {
        serde_json::to_writer(w, &file).map_err(|e| ck_err(path, e.to_string()))
    })?;
    Ok((file.passages, false))
}

/// Mean teacher-forced next-token cross-entropy (nats) of `model` over `sequences`
/// (a perplexity-style sanity measure; `exp` of it is the perplexity).
///
/// # Errors
/// Model errors; [`Error::InvalidArgument`] when no sequence has two tokens.
pub fn mean_cross_entropy(model: &Model, sequences: &[Vec<u32>]) -> Result<f32> {
    let (mut sum, mut n) = (0f64, 0usize);
    for s in sequences.iter().filter(|s| s.len() >= 2) {
        let logits = model.forward_all(&s[..s.len() - 1], &mut model.new_cache())?;
        let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let tg = Tensor::new(&s[1..], model.device())?.unsqueeze(1)?;
        let nll = lp.gather(&tg, 1)?.sum_all()?.to_scalar::<f32>()?;
        sum -= f64::from(nll);
        n += s.len() - 1;
    }
    if n == 0 {
        return Err(Error::InvalidArgument(
            "cross-entropy needs sequences of at least two tokens".into(),
        ));
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    Ok((sum / n as f64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewise_llm::model::tiny_config;

    #[test]
    fn student_forward_matches_the_engine() {
        for (arch, qk, style) in [
            (
                edgewise_llm::config::Architecture::Llama,
                false,
                RopeStyle::Interleaved,
            ),
            (
                edgewise_llm::config::Architecture::Qwen3,
                true,
                RopeStyle::Halves,
            ),
        ] {
            let mut cfg = tiny_config(2);
            cfg.arch = arch;
            cfg.qk_norm = qk;
            cfg.rope_style = style;
            let m = Model::synthetic(&cfg, 9, &Device::Cpu).unwrap();
            let s = Student::from_model(&m).unwrap();
            let w = vec![vec![1u32, 5, 9, 200, 3, 7], vec![8, 8, 1, 0, 255, 4]];
            let got = s.forward(&w).unwrap();
            let want = teacher_logits(&m.dequantized().unwrap(), &w).unwrap();
            let d = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-3, "{arch:?}: {d}");
            // And back to a model, unchanged.
            let back = s.to_model().unwrap();
            assert_eq!(back.config(), m.config());
        }
    }

    #[test]
    fn kl_is_zero_for_identical_logits_and_positive_otherwise() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1f32, 2., 3.], [0., 0., 1.]], &dev).unwrap();
        let b = Tensor::new(&[[3f32, 2., 1.], [0., 0., 1.]], &dev).unwrap();
        let w = vec![vec![0u32, 2]];
        let same = distill_loss(&a, &a, &w, 2.0, 0.0).unwrap();
        assert!(same.kl.abs() < 1e-6);
        let diff = distill_loss(&a, &b, &w, 2.0, 0.0).unwrap();
        assert!(diff.kl > 0.01);
        // CE of row 0 predicting token 2: -log softmax([1,2,3])[2].
        let want = -(3f32 - (1f32.exp() + 2f32.exp() + 3f32.exp()).ln());
        assert!((diff.ce - want).abs() < 1e-5, "{} vs {want}", diff.ce);
    }

    #[test]
    fn distillation_lowers_the_loss_on_a_tiny_model() {
        let dev = Device::Cpu;
        let teacher = Model::synthetic(&tiny_config(2), 1, &dev).unwrap();
        let stats = crate::compress::calibrate(&teacher, &[(0..32).collect()]).unwrap();
        let plan = crate::compress::PrunePlan {
            ffn_keep: 0.25,
            kv_group_keep: 0.5,
            channel_multiple: 1,
            ..Default::default()
        };
        let pruned = crate::compress::prune(&teacher, &stats, &plan).unwrap();
        let mut student = Student::from_model(&pruned).unwrap();
        // Two windows and a batch of two: every step sees the same tokens, so the loss
        // must fall steadily.
        let text: Vec<Vec<u32>> = vec![(0..32u32).map(|j| (j * 37 + 11) % 256).collect()];
        let data = TokenWindows::new(&text, None, 16).unwrap();
        let cfg = DistillConfig {
            steps: 30,
            batch: 2,
            seq_len: 16,
            lr: 3e-3,
            ..Default::default()
        };
        let r = distill(&teacher, &mut student, &data, &cfg, None, &mut |_| {}).unwrap();
        let first = r.losses[0];
        let last = r.losses[29];
        assert!(last < 0.5 * first, "{:?}", r.losses);
    }

    #[test]
    fn data_order_is_seeded_and_covers_every_window() {
        let text = vec![(0..100u32).collect::<Vec<_>>()];
        let data = TokenWindows::new(&text, None, 10).unwrap();
        let mut a = Cursor { epoch: 0, pos: 0 };
        let mut b = Cursor { epoch: 0, pos: 0 };
        let xa = a.next_batch(&data, 7, 10);
        assert_eq!(xa, b.next_batch(&data, 7, 10));
        let mut firsts: Vec<u32> = xa.iter().map(|w| w[0]).collect();
        firsts.sort_unstable();
        assert_eq!(firsts, (0..10).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(a, Cursor { epoch: 0, pos: 10 });
        a.next_batch(&data, 7, 1);
        assert_eq!(a, Cursor { epoch: 1, pos: 1 });
        assert!(TokenWindows::new(&text, None, 101).is_err());
    }
}
