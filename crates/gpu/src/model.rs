//! [`GpuModel`]: the whole Llama-family forward pass on the GPU. Weights stay in their
//! GGUF block formats, the KV cache is preallocated (f16 pairs), every bind group is built
//! once, each call records one command encoder with one submit, and greedy decoding keeps
//! the chosen token on the GPU (argmax writes it where the next embedding reads it), so
//! only a token id comes back.
//!
//! Per token: `embed`, then five dispatches per layer (`qkv`, `attention`, `matvec_add`
//! for the output projection + residual, `gate_up`, `matvec_add` for the down projection
//! + residual), then `lm_head` and `argmax` where logits are wanted, then `advance`.

use std::sync::Arc;

use candle_core::Tensor;
use edgewise_llm::Model;
use edgewise_llm::model::Linear;

use crate::context::GpuContext;
use crate::error::{GpuError, Result};
use crate::kernels::{
    Kernels, NO_BIAS, Step, bytes_u32, cache_row_words, floats_of, groups_for, matvec_groups,
    qkv_groups, scratch, storage_f32, storage_u32, uniform, words_of,
};
use crate::layout::{GpuWeights, WeightType};
use crate::rope::rope_table;
use crate::shaders::Shader;

/// Shape facts the host needs after construction.
#[derive(Debug, Clone, Copy)]
struct Dims {
    vocab: usize,
    max_ctx: usize,
}

/// The forward pass resident on one device.
#[derive(Debug)]
pub struct GpuModel {
    ctx: GpuContext,
    kernels: Kernels,
    dims: Dims,
    /// Embedding and every layer.
    body: Vec<Step>,
    /// LM head and argmax.
    head: Vec<Step>,
    advance: Step,
    state: wgpu::Buffer,
    tokens: wgpu::Buffer,
    preds: wgpu::Buffer,
    logits: wgpu::Buffer,
    pred_read: wgpu::Buffer,
    /// Buffers the bind groups refer to (kept alive with the model).
    _buffers: Vec<wgpu::Buffer>,
    pos: usize,
    /// The GPU holds its own greedy choice at `tokens[pos]`.
    pending: bool,
    weight_bytes: u64,
}

fn u32_of(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| GpuError::InvalidArgument(format!("{what} {n} exceeds u32")))
}

fn vec1(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// Appends `v` to `consts` and returns its offset.
fn push(consts: &mut Vec<f32>, v: &[f32]) -> Result<u32> {
    let at = u32_of(consts.len(), "constant offset")?;
    consts.extend_from_slice(v);
    Ok(at)
}

fn push_bias(consts: &mut Vec<f32>, l: &Linear) -> Result<u32> {
    match l.bias() {
        Some(b) => push(consts, &vec1(b)?),
        None => Ok(NO_BIAS),
    }
}

fn check_size(ctx: &GpuContext, what: &str, bytes: u64) -> Result<()> {
    let limit = ctx.limits().max_storage_buffer_binding_size;
    if bytes > limit {
        return Err(GpuError::OverLimit {
            what: what.to_owned(),
            needed: bytes,
            limit,
            limit_name: "maxStorageBufferBindingSize",
        });
    }
    Ok(())
}

/// One layer's matrices re-laid and concatenated.
struct LayerWeights {
    words: Vec<u32>,
    /// `(type, word offset)` of q, k, v, o, gate, up, down.
    at: [(WeightType, u32); 7],
}

fn layer_weights(l: usize, lins: [&Linear; 7]) -> Result<LayerWeights> {
    const NAMES: [&str; 7] = [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    let mut words = Vec::new();
    let mut at = [(WeightType::F32, 0); 7];
    for (i, lin) in lins.iter().enumerate() {
        let g = GpuWeights::from_weight(&format!("blk.{l}.{}.weight", NAMES[i]), lin.weight())?;
        at[i] = (g.ty, u32_of(words.len(), "weight offset")?);
        words.extend_from_slice(&g.words);
    }
    Ok(LayerWeights { words, at })
}

impl GpuModel {
    /// Uploads `model` and builds every bind group, with a KV cache of `max_context`
    /// positions (at most the model's context length).
    ///
    /// # Errors
    /// [`GpuError::UnsupportedModel`] (Qwen3's per-head q/k norm, odd head size),
    /// [`GpuError::UnsupportedType`] for a weight type the kernels do not read,
    /// [`GpuError::OverLimit`] when a buffer exceeds WebGPU's default binding size,
    /// device errors.
    #[allow(clippy::too_many_lines)]
    pub fn new(ctx: &GpuContext, model: &Model, max_context: usize) -> Result<Self> {
        let cfg = model.config();
        if cfg.qk_norm {
            return Err(GpuError::UnsupportedModel(
                "per-head RMSNorm of queries and keys (Qwen3) has no GPU kernel".into(),
            ));
        }
        let hd = cfg.head_dim;
        if !hd.is_multiple_of(2) {
            return Err(GpuError::UnsupportedModel(format!(
                "head size {hd} is odd; rotary pairs need an even head size"
            )));
        }
        if hd > 256 {
            return Err(GpuError::UnsupportedModel(format!(
                "head size {hd} is over the attention kernel's 256"
            )));
        }
        let max_ctx = max_context.min(cfg.context_length);
        if max_ctx == 0 {
            return Err(GpuError::InvalidArgument(
                "a KV cache of 0 positions was asked for".into(),
            ));
        }
        let e = cfg.n_embd;
        let eps = cfg.rms_eps.to_bits();
        let halves = u32::from(cfg.rope_style == edgewise_llm::RopeStyle::Halves);
        let max_heads = cfg.n_head.iter().copied().max().unwrap_or(0);
        let max_ff = cfg.n_ff.iter().copied().max().unwrap_or(0);
        let kernels = Kernels::new(ctx)?;
        let mut keep = Vec::new();
        let mut weight_bytes = 0u64;

        // Activations and sequence state.
        let state = storage_u32(ctx, "state", &[0, 0, 0, 0]);
        let tokens = scratch(ctx, "tokens", max_ctx + 1);
        let preds = scratch(ctx, "preds", max_ctx);
        let x = scratch(ctx, "x", e);
        let q = scratch(ctx, "q", max_heads * hd);
        let y = scratch(ctx, "y", max_heads * hd);
        let act = scratch(ctx, "act", max_ff);
        check_size(
            ctx,
            "the attention scores",
            (max_heads * max_ctx * 4) as u64,
        )?;
        let scores = scratch(ctx, "scores", max_heads * max_ctx);
        let logits = scratch(ctx, "logits", cfg.vocab_size);
        check_size(ctx, "the rotary table", (max_ctx * hd * 4) as u64)?;
        let rope = storage_f32(ctx, "rope", &rope_table(hd, max_ctx, cfg.rope_theta));
        let pred_read = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("preds readback"),
            size: (max_ctx * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        // Embedding table, and the LM head (the same buffer when the file ties them).
        let embed_w = GpuWeights::from_weight("token_embd.weight", model.embedding())?;
        let embed_bytes = (embed_w.words.len() * 4) as u64;
        check_size(ctx, "token_embd.weight", embed_bytes)?;
        weight_bytes += embed_bytes;
        let embed_buf = storage_u32(ctx, "token_embd", &embed_w.words);
        let tied = Arc::ptr_eq(model.output().weight(), model.embedding());
        let (head_w, head_buf) = if tied {
            (None, None)
        } else {
            let w = GpuWeights::from_weight("output.weight", model.output().weight())?;
            let bytes = (w.words.len() * 4) as u64;
            check_size(ctx, "output.weight", bytes)?;
            weight_bytes += bytes;
            let b = storage_u32(ctx, "output", &w.words);
            (Some(w), Some(b))
        };
        let (head_ty, head_buf_ref) = match (&head_w, &head_buf) {
            (Some(w), Some(b)) => (w.ty, b),
            _ => (embed_w.ty, &embed_buf),
        };
        let out_norm = storage_f32(ctx, "output_norm", &vec1(model.output_norm())?);

        let mut body = vec![kernels.step(
            ctx,
            Shader::Embed,
            &[
                &embed_buf,
                &tokens,
                &state,
                &x,
                &uniform(
                    ctx,
                    "embed",
                    &[
                        embed_w.ty.id(),
                        u32_of(embed_w.row_words(), "row")?,
                        u32_of(e, "n_embd")?,
                    ],
                ),
            ],
            groups_for(e),
        )?];

        #[allow(clippy::cast_precision_loss)]
        let scale = 1.0 / (hd as f32).sqrt();
        let window = u32_of(cfg.sliding_window.unwrap_or(0), "window")?;
        for (l, b) in model.blocks().iter().enumerate() {
            let (nh, nkv, ff) = (cfg.n_head[l], cfg.n_head_kv[l], cfg.n_ff[l]);
            if nkv == 0 || !nh.is_multiple_of(nkv) {
                return Err(GpuError::UnsupportedModel(format!(
                    "layer {l}: {nh} query heads are not a multiple of {nkv} kv heads"
                )));
            }
            let lw = layer_weights(
                l,
                [&b.wq, &b.wk, &b.wv, &b.wo, &b.w_gate, &b.w_up, &b.w_down],
            )?;
            let bytes = (lw.words.len() * 4) as u64;
            check_size(ctx, &format!("the weights of layer {l}"), bytes)?;
            weight_bytes += bytes;
            let w = storage_u32(ctx, &format!("blk.{l}"), &lw.words);
            let mut c = Vec::new();
            let attn_norm = push(&mut c, &vec1(&b.attn_norm)?)?;
            let ffn_norm = push(&mut c, &vec1(&b.ffn_norm)?)?;
            let bias = [
                push_bias(&mut c, &b.wq)?,
                push_bias(&mut c, &b.wk)?,
                push_bias(&mut c, &b.wv)?,
                push_bias(&mut c, &b.wo)?,
                push_bias(&mut c, &b.w_gate)?,
                push_bias(&mut c, &b.w_up)?,
                push_bias(&mut c, &b.w_down)?,
            ];
            let consts = storage_f32(ctx, &format!("blk.{l} constants"), &c);
            let region = nkv * max_ctx * cache_row_words(hd);
            check_size(
                ctx,
                &format!("the KV cache of layer {l}"),
                (2 * region * 4) as u64,
            )?;
            let kv = scratch(ctx, &format!("blk.{l} kv"), 2 * region);
            let at = lw.at;
            let qkv_p = uniform(
                ctx,
                "qkv",
                &[
                    u32_of(e, "n_embd")?,
                    u32_of(hd, "head_dim")?,
                    u32_of(nh * hd, "rows")?,
                    u32_of(nkv * hd, "rows")?,
                    at[0].0.id(),
                    at[1].0.id(),
                    at[2].0.id(),
                    halves,
                    at[0].1,
                    at[1].1,
                    at[2].1,
                    attn_norm,
                    bias[0],
                    bias[1],
                    bias[2],
                    u32_of(max_ctx, "max_ctx")?,
                    u32_of(region, "cache")?,
                    eps,
                ],
            );
            body.push(kernels.step_typed(
                ctx,
                Shader::Qkv,
                &[at[0].0, at[1].0, at[2].0],
                &[&w, &consts, &x, &q, &kv, &state, &rope, &qkv_p],
                qkv_groups(nh * hd, nkv * hd),
            )?);
            let att_p = uniform(
                ctx,
                "attention",
                &[
                    u32_of(nh, "heads")?,
                    u32_of(nkv, "kv heads")?,
                    u32_of(hd, "head_dim")?,
                    u32_of(max_ctx, "max_ctx")?,
                    u32_of(region, "cache")?,
                    window,
                    scale.to_bits(),
                ],
            );
            body.push(kernels.step(
                ctx,
                Shader::Attention,
                &[&q, &kv, &state, &scores, &y, &att_p],
                u32_of(nh, "heads")?,
            )?);
            let wo_p = uniform(
                ctx,
                "attn_output",
                &[
                    at[3].0.id(),
                    at[3].1,
                    u32_of(e, "rows")?,
                    u32_of(nh * hd, "cols")?,
                    bias[3],
                ],
            );
            body.push(kernels.step_typed(
                ctx,
                Shader::MatvecAdd,
                &[at[3].0],
                &[&w, &consts, &y, &x, &wo_p],
                matvec_groups(e, 4),
            )?);
            let gu_p = uniform(
                ctx,
                "gate_up",
                &[
                    u32_of(e, "n_embd")?,
                    u32_of(ff, "n_ff")?,
                    at[4].0.id(),
                    at[5].0.id(),
                    at[4].1,
                    at[5].1,
                    ffn_norm,
                    eps,
                    bias[4],
                    bias[5],
                ],
            );
            body.push(kernels.step_typed(
                ctx,
                Shader::GateUp,
                &[at[4].0, at[5].0],
                &[&w, &consts, &x, &act, &gu_p],
                matvec_groups(ff, 2),
            )?);
            let down_p = uniform(
                ctx,
                "ffn_down",
                &[
                    at[6].0.id(),
                    at[6].1,
                    u32_of(e, "rows")?,
                    u32_of(ff, "cols")?,
                    bias[6],
                ],
            );
            body.push(kernels.step_typed(
                ctx,
                Shader::MatvecAdd,
                &[at[6].0],
                &[&w, &consts, &act, &x, &down_p],
                matvec_groups(e, 4),
            )?);
            keep.extend([w, consts, kv]);
        }

        let vocab = cfg.vocab_size;
        let head_p = uniform(
            ctx,
            "lm_head",
            &[
                u32_of(e, "n_embd")?,
                u32_of(vocab, "vocabulary")?,
                head_ty.id(),
                0,
                eps,
            ],
        );
        let head_groups = matvec_groups(vocab, 4);
        let max_groups = ctx.limits().max_compute_workgroups_per_dimension;
        if head_groups > max_groups {
            return Err(GpuError::UnsupportedModel(format!(
                "a vocabulary of {vocab} rows needs {head_groups} LM-head workgroups, over \
                 this device's maxComputeWorkgroupsPerDimension of {max_groups}"
            )));
        }
        let argmax_p = uniform(ctx, "argmax", &[u32_of(vocab, "vocabulary")?]);
        let head = vec![
            kernels.step_typed(
                ctx,
                Shader::LmHead,
                &[head_ty],
                &[head_buf_ref, &out_norm, &x, &logits, &head_p],
                head_groups,
            )?,
            kernels.step(
                ctx,
                Shader::Argmax,
                &[&logits, &tokens, &state, &preds, &argmax_p],
                1,
            )?,
        ];
        let advance = kernels.step(ctx, Shader::Advance, &[&state], 1)?;
        ctx.check("uploading the model")?;
        keep.extend([x, q, y, act, scores, rope, embed_buf, out_norm]);
        keep.extend(head_buf);
        Ok(Self {
            ctx: ctx.clone(),
            kernels,
            dims: Dims { vocab, max_ctx },
            body,
            head,
            advance,
            state,
            tokens,
            preds,
            logits,
            pred_read,
            _buffers: keep,
            pos: 0,
            pending: false,
            weight_bytes,
        })
    }

    /// The adapter this model runs on.
    #[must_use]
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Positions processed so far.
    #[must_use]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// KV-cache capacity in positions.
    #[must_use]
    pub fn max_context(&self) -> usize {
        self.dims.max_ctx
    }

    /// Bytes of weights on the GPU (what one token reads).
    #[must_use]
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// Forgets the sequence (the cache is overwritten as positions are reached again).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.pending = false;
    }

    /// Forgets every position from `len` on (no-op when `len >= position()`); the next
    /// prefill continues at `len`. The KV cache beyond `len` is not cleared: attention
    /// reads only positions below the current one, and each is written again before it
    /// is read. After a truncation [`GpuModel::decode`] needs a prefill first (the GPU's
    /// own last choice belongs to the forgotten positions).
    pub fn truncate(&mut self, len: usize) {
        if len < self.pos {
            self.pos = len;
            self.pending = false;
        }
    }

    /// Records `n` token steps (logits for every one when `all`, else for the last),
    /// copies their predictions, submits, and reads them back.
    async fn run(&mut self, n: usize, all: bool) -> Result<Vec<u32>> {
        let mut steps: Vec<&Step> = Vec::with_capacity(n * (self.body.len() + 3));
        for i in 0..n {
            steps.extend(self.body.iter());
            if all || i + 1 == n {
                steps.extend(self.head.iter());
            }
            steps.push(&self.advance);
        }
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("tokens"),
            });
        self.kernels.record(&mut enc, &steps);
        let (first, count) = if all {
            (self.pos, n)
        } else {
            (self.pos + n - 1, 1)
        };
        enc.copy_buffer_to_buffer(
            &self.preds,
            (first * 4) as u64,
            &self.pred_read,
            0,
            (count * 4) as u64,
        );
        self.ctx.queue.submit([enc.finish()]);
        self.ctx.check("the forward pass")?;
        let out = words_of(&self.ctx.map(&self.pred_read, (count * 4) as u64).await?);
        self.pos += n;
        self.pending = true;
        Ok(out)
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(GpuError::InvalidArgument("empty token sequence".into()));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.dims.vocab) {
            return Err(GpuError::InvalidArgument(format!(
                "token id {bad} out of vocabulary of {}",
                self.dims.vocab
            )));
        }
        let needed = self.pos + tokens.len();
        if needed > self.dims.max_ctx {
            return Err(GpuError::ContextOverflow {
                needed,
                max: self.dims.max_ctx,
            });
        }
        Ok(())
    }

    fn write_tokens(&self, tokens: &[u32]) -> Result<()> {
        let known = u32_of(self.pos + tokens.len(), "position")?;
        let pos = u32_of(self.pos, "position")?;
        self.ctx
            .queue
            .write_buffer(&self.tokens, (self.pos * 4) as u64, &bytes_u32(tokens));
        self.ctx
            .queue
            .write_buffer(&self.state, 0, &bytes_u32(&[pos, known, 0, 0]));
        Ok(())
    }

    /// Runs `tokens` (positions `position()..`) in one submit and returns the greedy next
    /// token; its logits are then available from [`GpuModel::logits_async`].
    ///
    /// # Errors
    /// [`GpuError::InvalidArgument`] (empty or out-of-vocabulary input),
    /// [`GpuError::ContextOverflow`], device errors.
    pub async fn prefill_async(&mut self, tokens: &[u32]) -> Result<u32> {
        self.check_tokens(tokens)?;
        self.write_tokens(tokens)?;
        Ok(self.run(tokens.len(), false).await?[0])
    }

    /// Like [`GpuModel::prefill_async`] but returns the greedy prediction after every input
    /// position (teacher forcing).
    ///
    /// # Errors
    /// As [`GpuModel::prefill_async`].
    pub async fn prefill_all_async(&mut self, tokens: &[u32]) -> Result<Vec<u32>> {
        self.check_tokens(tokens)?;
        self.write_tokens(tokens)?;
        self.run(tokens.len(), true).await
    }

    /// Runs the token the GPU chose last (it never leaves the GPU) and returns the next
    /// greedy choice: one submit, one 4-byte read-back.
    ///
    /// # Errors
    /// [`GpuError::InvalidArgument`] before any prefill, [`GpuError::ContextOverflow`],
    /// device errors.
    pub async fn decode_async(&mut self) -> Result<u32> {
        if !self.pending {
            return Err(GpuError::InvalidArgument(
                "decode needs a prefill first (there is no token to continue from)".into(),
            ));
        }
        if self.pos + 1 > self.dims.max_ctx {
            return Err(GpuError::ContextOverflow {
                needed: self.pos + 1,
                max: self.dims.max_ctx,
            });
        }
        Ok(self.run(1, false).await?[0])
    }

    /// The logits of the last position that produced a prediction.
    ///
    /// # Errors
    /// Device errors.
    pub async fn logits_async(&self) -> Result<Vec<f32>> {
        Ok(floats_of(
            &self
                .ctx
                .read(&self.logits, 0, (self.dims.vocab * 4) as u64)
                .await?,
        ))
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl GpuModel {
    /// [`GpuModel::prefill_async`], blocking.
    ///
    /// # Errors
    /// As [`GpuModel::prefill_async`].
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<u32> {
        crate::block::block_on(self.prefill_async(tokens))
    }

    /// [`GpuModel::prefill_all_async`], blocking.
    ///
    /// # Errors
    /// As [`GpuModel::prefill_all_async`].
    pub fn prefill_all(&mut self, tokens: &[u32]) -> Result<Vec<u32>> {
        crate::block::block_on(self.prefill_all_async(tokens))
    }

    /// [`GpuModel::decode_async`], blocking.
    ///
    /// # Errors
    /// As [`GpuModel::decode_async`].
    pub fn decode(&mut self) -> Result<u32> {
        crate::block::block_on(self.decode_async())
    }

    /// [`GpuModel::logits_async`], blocking.
    ///
    /// # Errors
    /// As [`GpuModel::logits_async`].
    pub fn logits(&self) -> Result<Vec<f32>> {
        crate::block::block_on(self.logits_async())
    }
}
