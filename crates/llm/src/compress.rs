//! ECLD compression pieces: structured pruning and group-wise quantization, plus GGUF export.
//!
//! * Pruning (Minitron-style, activation-based): [`ActivationStats`] gathered with
//!   [`Model::observe`] on a calibration set rank FFN channels (mean |silu(gate)·up|),
//!   KV groups (sum of their query heads' output norms, so GQA stays valid) and layers
//!   (1 − cos(block input, output): a block that barely changes its input is dropped
//!   first). [`prune`] keeps the most important ones and returns a smaller model of the same
//!   architecture with dense F32 weights.
//! * Quantization: [`quantize`] re-encodes every linear weight to a ggml block type
//!   (Q8_0, Q4_0, Q4_1, Q4_K, …) with a separate type for the embedding / output matrix
//!   (mixed precision); norms stay F32.
//! * Export: [`export_gguf`] writes the model with the source file's tokenizer metadata and
//!   the (possibly per-layer) hyper-parameters, loadable by this crate and by llama.cpp.

use std::io::{Seek, Write};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, write_gguf};
use crate::model::{ActivationStats, Block, Linear, Model};

/// The committed calibration / distillation text (one passage per line; source and
/// licence in `data/calibration/README.md`).
pub const DEFAULT_CALIBRATION: &str = include_str!("../data/calibration/edgewise-prose.txt");

/// What to keep when pruning.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunePlan {
    /// Fraction of FFN channels kept per layer, in (0, 1].
    pub ffn_keep: f32,
    /// Fraction of KV groups (with their query heads) kept per layer, in (0, 1].
    pub kv_group_keep: f32,
    /// Number of whole layers removed.
    pub drop_layers: usize,
    /// Kept channel counts are rounded up to a multiple of this (32 keeps every ggml block
    /// type usable for the down projection).
    pub channel_multiple: usize,
    /// Per-layer FFN keep fractions (indexed by the original layer), overriding `ffn_keep`
    /// when non-empty: non-uniform pruning.
    pub ffn_keep_per_layer: Vec<f32>,
}

impl Default for PrunePlan {
    fn default() -> Self {
        Self {
            ffn_keep: 1.0,
            kv_group_keep: 1.0,
            drop_layers: 0,
            channel_multiple: 32,
            ffn_keep_per_layer: Vec::new(),
        }
    }
}

impl PrunePlan {
    /// Checks the fractions and the layer count against `cfg`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the field and its valid range.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        let named = [
            ("ffn_keep", self.ffn_keep),
            ("kv_group_keep", self.kv_group_keep),
        ];
        let per_layer = self
            .ffn_keep_per_layer
            .iter()
            .map(|&f| ("ffn_keep_per_layer", f));
        for (name, f) in named.into_iter().chain(per_layer) {
            if !(f > 0.0 && f <= 1.0) {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be in (0, 1] (a keep fraction; prune ratio = 1 − keep), got {f}"
                )));
            }
        }
        if !self.ffn_keep_per_layer.is_empty() && self.ffn_keep_per_layer.len() != cfg.n_layer {
            return Err(Error::InvalidArgument(format!(
                "ffn_keep_per_layer has {} entries, the model has {} layers",
                self.ffn_keep_per_layer.len(),
                cfg.n_layer
            )));
        }
        if self.drop_layers >= cfg.n_layer {
            return Err(Error::InvalidArgument(format!(
                "cannot drop {} of {} layers",
                self.drop_layers, cfg.n_layer
            )));
        }
        Ok(())
    }
}

/// Gathers activation statistics on calibration sequences.
///
/// # Errors
/// Model errors.
pub fn calibrate(model: &Model, sequences: &[Vec<u32>]) -> Result<ActivationStats> {
    let mut stats = ActivationStats::new(model.config());
    for s in sequences {
        model.observe(s, &mut stats)?;
    }
    Ok(stats)
}

/// Indices of the `k` largest scores, ascending by index.
fn top_k_indices(scores: &[f32], k: usize) -> Vec<u32> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut keep: Vec<u32> = idx[..k.min(idx.len())]
        .iter()
        .map(|&i| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    keep.sort_unstable();
    keep
}

fn keep_count(n: usize, frac: f32, multiple: usize) -> usize {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let k = ((n as f32) * frac).ceil() as usize;
    let k = if multiple > 1 {
        k.div_ceil(multiple) * multiple
    } else {
        k
    };
    k.clamp(1, n)
}

fn dense(l: &Linear, device: &Device) -> Result<Tensor> {
    Ok(l.weight().dequantize(device)?)
}

fn linear_f32(w: &Tensor, bias: Option<Tensor>) -> Result<Linear> {
    Linear::from_qtensor(QTensor::quantize(&w.contiguous()?, GgmlDType::F32)?, bias)
}

/// Row indices of whole heads.
fn head_rows(heads: &[u32], hd: usize) -> Vec<u32> {
    let hd32 = u32::try_from(hd).unwrap_or(u32::MAX);
    heads
        .iter()
        .flat_map(|&h| (h * hd32)..(h + 1) * hd32)
        .collect()
}

/// Prunes `model` by `plan`, ranking with `stats` (from [`calibrate`] on the same model).
///
/// # Errors
/// [`Error::InvalidArgument`] for fractions outside (0, 1], dropping every layer, or stats
/// of another model; tensor errors.
pub fn prune(model: &Model, stats: &ActivationStats, plan: &PrunePlan) -> Result<Model> {
    let cfg = model.config();
    plan.validate(cfg)?;
    if stats.ffn_abs.len() != cfg.n_layer || stats.tokens == 0 {
        return Err(Error::InvalidArgument(
            "activation statistics are empty or from another model".into(),
        ));
    }
    let dev = model.device();
    let hd = cfg.head_dim;
    // Layers: drop those whose output is most similar to their input.
    let redundancy: Vec<f32> = stats.layer_cos.clone();
    let mut order: Vec<usize> = (0..cfg.n_layer).collect();
    order.sort_by(|&a, &b| redundancy[b].total_cmp(&redundancy[a]).then(a.cmp(&b)));
    let dropped: Vec<usize> = order[..plan.drop_layers].to_vec();

    let mut new_cfg = cfg.clone();
    new_cfg.n_ff.clear();
    new_cfg.n_head.clear();
    new_cfg.n_head_kv.clear();
    let mut blocks = Vec::new();
    for (l, b) in model.blocks().iter().enumerate() {
        if dropped.contains(&l) {
            continue;
        }
        // FFN channels.
        let n_ff = cfg.n_ff[l];
        let ff_keep = top_k_indices(
            &stats.ffn_abs[l],
            keep_count(
                n_ff,
                plan.ffn_keep_per_layer
                    .get(l)
                    .copied()
                    .unwrap_or(plan.ffn_keep),
                plan.channel_multiple,
            ),
        );
        let ff_idx = Tensor::new(ff_keep.as_slice(), dev)?;
        let gate = dense(&b.w_gate, dev)?.index_select(&ff_idx, 0)?;
        let up = dense(&b.w_up, dev)?.index_select(&ff_idx, 0)?;
        let down = dense(&b.w_down, dev)?.index_select(&ff_idx, 1)?;
        // KV groups with their query heads.
        let (nh, nkv) = (cfg.n_head[l], cfg.n_head_kv[l]);
        let rep = nh / nkv;
        let group_score: Vec<f32> = (0..nkv)
            .map(|g| stats.head_norm[l][g * rep..(g + 1) * rep].iter().sum())
            .collect();
        let groups = top_k_indices(&group_score, keep_count(nkv, plan.kv_group_keep, 1));
        let rep32 = u32::try_from(rep).unwrap_or(u32::MAX);
        let q_heads: Vec<u32> = groups
            .iter()
            .flat_map(|&g| (g * rep32)..(g + 1) * rep32)
            .collect();
        let q_rows = Tensor::new(head_rows(&q_heads, hd).as_slice(), dev)?;
        let kv_rows = Tensor::new(head_rows(&groups, hd).as_slice(), dev)?;
        let sel_bias = |l: &Linear, rows: &Tensor| -> Result<Option<Tensor>> {
            l.bias().map(|bb| Ok(bb.index_select(rows, 0)?)).transpose()
        };
        let wq = dense(&b.wq, dev)?.index_select(&q_rows, 0)?;
        let wk = dense(&b.wk, dev)?.index_select(&kv_rows, 0)?;
        let wv = dense(&b.wv, dev)?.index_select(&kv_rows, 0)?;
        let wo = dense(&b.wo, dev)?.index_select(&q_rows, 1)?;
        blocks.push(Block {
            attn_norm: b.attn_norm.clone(),
            wq: linear_f32(&wq, sel_bias(&b.wq, &q_rows)?)?,
            wk: linear_f32(&wk, sel_bias(&b.wk, &kv_rows)?)?,
            wv: linear_f32(&wv, sel_bias(&b.wv, &kv_rows)?)?,
            wo: linear_f32(&wo, b.wo.bias().cloned())?,
            q_norm: b.q_norm.clone(),
            k_norm: b.k_norm.clone(),
            ffn_norm: b.ffn_norm.clone(),
            w_gate: linear_f32(&gate, None)?,
            w_up: linear_f32(&up, None)?,
            w_down: linear_f32(&down, None)?,
        });
        new_cfg.n_ff.push(ff_keep.len());
        new_cfg.n_head.push(q_heads.len());
        new_cfg.n_head_kv.push(groups.len());
    }
    new_cfg.n_layer = blocks.len();
    new_cfg.validate()?;
    Ok(model.with_blocks(new_cfg, blocks))
}

/// Target types for [`quantize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantSpec {
    /// Type of the attention and FFN weights.
    pub linear: GgmlDType,
    /// Type of the token embedding and output matrices.
    pub embedding: GgmlDType,
}

impl QuantSpec {
    /// Everything in Q8_0.
    pub const Q8_0: Self = Self {
        linear: GgmlDType::Q8_0,
        embedding: GgmlDType::Q8_0,
    };
    /// Q4_0 linear layers, Q8_0 embeddings (mixed precision).
    pub const Q4_0_MIXED: Self = Self {
        linear: GgmlDType::Q4_0,
        embedding: GgmlDType::Q8_0,
    };
    /// Everything in F16 (the unquantised storage of pruning-only variants).
    pub const F16: Self = Self {
        linear: GgmlDType::F16,
        embedding: GgmlDType::F16,
    };

    /// The spec for `--bits`: 8 → [`QuantSpec::Q8_0`]; 4 → [`QuantSpec::Q4_0_MIXED`]
    /// (group-wise 4-bit, blocks of 32 with one f16 scale, and the embedding/output matrix
    /// at 8 bit).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for other widths.
    pub fn for_bits(bits: u32) -> Result<Self> {
        match bits {
            8 => Ok(Self::Q8_0),
            4 => Ok(Self::Q4_0_MIXED),
            other => Err(Error::InvalidArgument(format!(
                "bits must be 8 or 4, got {other}"
            ))),
        }
    }
}

fn requant(q: &QTensor, to: GgmlDType, device: &Device) -> Result<QTensor> {
    let cols = *q.shape().dims().last().unwrap_or(&0);
    // Fall back to F16 where the row length is not a whole number of blocks.
    let to = if cols.is_multiple_of(to.block_size()) {
        to
    } else {
        GgmlDType::F16
    };
    if q.dtype() == to {
        return crate::model::clone_qtensor(q);
    }
    Ok(QTensor::quantize(&q.dequantize(device)?, to)?)
}

/// Re-encodes the model's weights by `spec` (from whatever types they have now).
///
/// # Errors
/// Tensor errors.
pub fn quantize(model: &Model, spec: QuantSpec) -> Result<Model> {
    let dev = model.device().clone();
    let mut tensors = std::collections::HashMap::new();
    for (name, q) in model.named_tensors()? {
        let is_matrix = q.shape().dims().len() == 2;
        let q = if !is_matrix {
            q
        } else if name == "token_embd.weight" || name == "output.weight" {
            requant(&q, spec.embedding, &dev)?
        } else {
            requant(&q, spec.linear, &dev)?
        };
        tensors.insert(name, q);
    }
    let mut get = |n: &str| -> Result<Option<QTensor>> { Ok(tensors.remove(n)) };
    Model::from_tensors(model.config().clone(), &mut get, &dev)
}

/// GGUF metadata describing `cfg` (per-layer arrays where layers differ).
#[must_use]
pub fn config_metadata(cfg: &ModelConfig) -> Vec<(String, Value)> {
    let varies = |v: &[usize]| v.windows(2).any(|w| w[0] != w[1]);
    // llama.cpp's `llama` loader sizes every layer from layer 0's counts; its `deci`
    // architecture (the same blocks) reads them per layer.
    let p = if cfg.arch == crate::config::Architecture::Llama
        && (varies(&cfg.n_ff) || varies(&cfg.n_head) || varies(&cfg.n_head_kv))
    {
        crate::config::DECI
    } else {
        cfg.arch.gguf_name()
    };
    let k = |s: &str| format!("{p}.{s}");
    let u = |v: usize| Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
    let per_layer = |v: &[usize]| {
        if v.windows(2).all(|w| w[0] == w[1]) {
            u(v[0])
        } else {
            Value::Array(v.iter().map(|&x| u(x)).collect())
        }
    };
    let mut md = vec![
        (
            "general.architecture".to_owned(),
            Value::String(p.to_owned()),
        ),
        (k("block_count"), u(cfg.n_layer)),
        (k("context_length"), u(cfg.context_length)),
        (k("embedding_length"), u(cfg.n_embd)),
        (k("feed_forward_length"), per_layer(&cfg.n_ff)),
        (k("attention.head_count"), per_layer(&cfg.n_head)),
        (k("attention.head_count_kv"), per_layer(&cfg.n_head_kv)),
        (k("attention.key_length"), u(cfg.head_dim)),
        (k("attention.value_length"), u(cfg.head_dim)),
        (k("rope.dimension_count"), u(cfg.head_dim)),
        (k("rope.freq_base"), Value::F32(cfg.rope_theta)),
        (
            k("attention.layer_norm_rms_epsilon"),
            Value::F32(cfg.rms_eps),
        ),
        (k("vocab_size"), u(cfg.vocab_size)),
    ];
    if let Some(w) = cfg.sliding_window {
        md.push((k("attention.sliding_window"), u(w)));
    }
    md
}

/// Writes `model` as GGUF, carrying `tokenizer.*` and descriptive `general.*` keys over from
/// `source` (the file the model came from) when given.
///
/// # Errors
/// I/O and tensor errors.
pub fn export_gguf<W: Write + Seek>(
    w: &mut W,
    model: &Model,
    source: Option<&GgufFile>,
) -> Result<()> {
    let mut md = config_metadata(model.config());
    if let Some(src) = source {
        let mut keys: Vec<&String> = src
            .metadata()
            .keys()
            .filter(|k| {
                (k.starts_with("tokenizer.") || k.starts_with("general."))
                    && !matches!(
                        k.as_str(),
                        "general.architecture" | "general.alignment" | "general.file_type"
                    )
            })
            .collect();
        keys.sort();
        for key in keys {
            md.push((key.clone(), src.metadata()[key].clone()));
        }
    }
    write_gguf(w, &md, &model.named_tensors()?)
}

/// Writes [`export_gguf`]'s output atomically (temp file + rename) to `path`.
///
/// # Errors
/// I/O and tensor errors; `path` is untouched on failure.
#[cfg(not(target_arch = "wasm32"))]
pub fn export_gguf_file(
    path: &std::path::Path,
    model: &Model,
    source: Option<&GgufFile>,
) -> Result<u64> {
    crate::gguf::write_file_atomically(path, |w| export_gguf(w, model, source))
}

/// The three ways `edgewise compress` builds a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Prune → distill → quantize.
    Ecld,
    /// Base → quantize.
    QuantOnly,
    /// Base → prune, stored F16, no distillation.
    PruneOnly,
}

/// Everything the ECLD pipeline needs besides the model and the text.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Which pipeline.
    pub method: Method,
    /// What pruning keeps (ignored by quant-only).
    pub prune: PrunePlan,
    /// Target types (ignored by prune-only, which stores F16).
    pub quant: QuantSpec,
    /// Distillation settings (ECLD only; `steps = 0` skips it).
    pub distill: crate::distill::DistillConfig,
    /// Checkpointing of the distillation, if wanted.
    pub checkpoint: Option<crate::distill::CheckpointOptions>,
    /// Windows of the text used for the activation statistics.
    pub calib_windows: usize,
}

/// What the pipeline produced.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct PipelineOutput {
    /// The compressed model (weights in their final block types).
    pub model: Model,
    /// The distillation run, for ECLD with steps > 0.
    pub distill: Option<crate::distill::DistillReport>,
}

/// Runs `opts.method` on `base` with training/calibration text `data`.
///
/// `on_step` sees every distillation step (for a progress bar).
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad plan or configuration, checkpoint errors, tensor errors.
#[cfg(not(target_arch = "wasm32"))]
pub fn run_pipeline(
    base: &Model,
    data: &crate::distill::TokenWindows,
    opts: &PipelineOptions,
    on_step: &mut dyn FnMut(&crate::distill::StepReport),
) -> Result<PipelineOutput> {
    if opts.method == Method::QuantOnly {
        return Ok(PipelineOutput {
            model: quantize(base, opts.quant)?,
            distill: None,
        });
    }
    if opts.method == Method::Ecld && opts.distill.steps > 0 {
        opts.distill.validate()?;
    }
    opts.prune.validate(base.config())?;
    let n = opts.calib_windows.clamp(1, data.windows().len());
    let stats = calibrate(base, &data.windows()[..n])?;
    let pruned = prune(base, &stats, &opts.prune)?;
    if opts.method == Method::PruneOnly {
        return Ok(PipelineOutput {
            model: quantize(&pruned, QuantSpec::F16)?,
            distill: None,
        });
    }
    let mut report = None;
    let student_model = if opts.distill.steps > 0 {
        let teacher = base.dequantized()?;
        let mut student = crate::distill::Student::from_model(&pruned)?;
        report = Some(crate::distill::distill(
            &teacher,
            &mut student,
            data,
            &opts.distill,
            opts.checkpoint.as_ref(),
            on_step,
        )?);
        student.to_model()?
    } else {
        pruned
    };
    Ok(PipelineOutput {
        model: quantize(&student_model, opts.quant)?,
        distill: report,
    })
}

/// Bytes the model's weights occupy in their current block types.
///
/// # Errors
/// Tensor errors.
pub fn weight_bytes(model: &Model) -> Result<u64> {
    Ok(model
        .named_tensors()?
        .iter()
        .map(|(_, q)| q.storage_size_in_bytes() as u64)
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tiny_config;
    use std::io::Cursor;

    fn logits(m: &Model, toks: &[u32]) -> Vec<f32> {
        m.forward(toks, &mut m.new_cache())
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn quantize_export_and_reload_round_trips() {
        let dev = Device::Cpu;
        let m = Model::synthetic(&tiny_config(2), 11, &dev).unwrap();
        let toks = [1u32, 50, 7, 200];
        let base = logits(&m, &toks);
        for spec in [QuantSpec::Q8_0, QuantSpec::Q4_0_MIXED] {
            let q = quantize(&m, spec).unwrap();
            assert_eq!(q.blocks()[0].wq.weight().dtype(), spec.linear);
            let mut buf = Cursor::new(Vec::new());
            export_gguf(&mut buf, &q, None).unwrap();
            let bytes = buf.into_inner();
            let mut r = Cursor::new(&bytes);
            let g = GgufFile::read(&mut r, "<memory>").unwrap();
            let back = Model::from_gguf(&g, &mut r, &dev).unwrap();
            assert_eq!(back.config(), q.config());
            // The reloaded file computes exactly what the in-memory quantized model does.
            assert_eq!(logits(&back, &toks), logits(&q, &toks));
            let d = max_diff(&logits(&q, &toks), &base);
            let tol = if spec == QuantSpec::Q8_0 { 0.05 } else { 0.5 };
            assert!(d < tol, "{spec:?}: {d}");
        }
    }

    #[test]
    fn pruning_gives_a_smaller_valid_model_that_round_trips() {
        let dev = Device::Cpu;
        let m = Model::synthetic(&tiny_config(3), 5, &dev).unwrap();
        let calib = vec![vec![1u32, 2, 3, 4, 5, 6, 7, 8], vec![100, 90, 80, 70]];
        let stats = calibrate(&m, &calib).unwrap();
        assert_eq!(stats.tokens, 12);
        let plan = PrunePlan {
            ffn_keep: 0.5,
            kv_group_keep: 0.5,
            drop_layers: 1,
            channel_multiple: 32,
            ffn_keep_per_layer: Vec::new(),
        };
        let p = prune(&m, &stats, &plan).unwrap();
        let c = p.config();
        assert_eq!(c.n_layer, 2);
        assert_eq!(c.n_ff, vec![64, 64]);
        assert_eq!(c.n_head_kv, vec![1, 1]);
        assert_eq!(c.n_head, vec![2, 2]);
        assert!(c.n_params() < m.config().n_params());
        let toks = [3u32, 4, 5];
        let before = logits(&p, &toks);
        let mut buf = Cursor::new(Vec::new());
        export_gguf(&mut buf, &p, None).unwrap();
        let bytes = buf.into_inner();
        let mut r = Cursor::new(&bytes);
        let g = GgufFile::read(&mut r, "<memory>").unwrap();
        let back = Model::from_gguf(&g, &mut r, &dev).unwrap();
        assert_eq!(logits(&back, &toks), before);
        // Keeping everything changes nothing.
        let same = prune(&m, &stats, &PrunePlan::default()).unwrap();
        assert!(max_diff(&logits(&same, &toks), &logits(&m, &toks)) < 1e-5);
    }

    #[test]
    fn non_uniform_layers_are_stored_as_arrays() {
        let mut cfg = tiny_config(2);
        cfg.n_ff = vec![128, 64];
        let md = config_metadata(&cfg);
        let ff = md
            .iter()
            .find(|(k, _)| k == "deci.feed_forward_length")
            .unwrap();
        assert!(matches!(&ff.1, Value::Array(v) if v.len() == 2));
        // Stored under llama.cpp's `deci` name (per-layer sizes), read back as Llama.
        assert!(
            md.iter().any(|(k, v)| k == "general.architecture"
                && matches!(v, Value::String(s) if s == "deci"))
        );
        let mut buf = Cursor::new(Vec::new());
        let m = Model::synthetic(&cfg, 1, &Device::Cpu).unwrap();
        export_gguf(&mut buf, &m, None).unwrap();
        let bytes = buf.into_inner();
        let g = GgufFile::read(&mut Cursor::new(&bytes), "<memory>").unwrap();
        let back = crate::config::ModelConfig::from_gguf(&g).unwrap();
        assert_eq!(back.arch, crate::config::Architecture::Llama);
        assert_eq!(back.n_ff, vec![128, 64]);
    }

    #[test]
    fn bad_plans_are_rejected() {
        let m = Model::synthetic(&tiny_config(1), 5, &Device::Cpu).unwrap();
        let stats = calibrate(&m, &[vec![1, 2]]).unwrap();
        let plan = PrunePlan {
            drop_layers: 1,
            ..PrunePlan::default()
        };
        assert!(prune(&m, &stats, &plan).is_err());
        let plan = PrunePlan {
            ffn_keep: 0.0,
            ..PrunePlan::default()
        };
        assert!(prune(&m, &stats, &plan).is_err());
    }
}
