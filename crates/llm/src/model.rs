//! The Llama-family forward pass with a KV cache, on quantized weights.
//!
//! Linear layers keep their GGUF block layout and multiply through candle's `QMatMul`
//! (the activations are quantized on the fly, as ggml does), so a Q4_1 file runs without
//! dequantising its weights; Q4_1 layers on the CPU (and, in the wasm build, the Q8_0 LM
//! head) take [`crate::kernels::matmul`] instead, which gives candle's bits faster. IQ4_NL weights (which candle cannot hold) are
//! multiplied by [`crate::kernels::matmul_iq4_nl`] on the CPU and dequantised once on any
//! other device. Only norms (already F32 in the file) are plain tensors.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{D, DType, Device, Module, Tensor};

use crate::config::{ModelConfig, RopeStyle};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::weight::Weight;

/// A linear layer `y = x Wᵀ (+ b)` whose weight stays quantized.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Arc<Weight>,
    product: Product,
    bias: Option<Tensor>,
}

/// How a [`Linear`] multiplies.
#[derive(Debug, Clone)]
enum Product {
    /// candle's `QMatMul`; with `own` (a CPU weight of a type this crate has a kernel
    /// for, shared with `mm`) through [`crate::kernels::matmul`] first: same bits, faster.
    Candle {
        mm: QMatMul,
        own: Option<Arc<QTensor>>,
    },
    /// An IQ4_NL weight on the CPU (its blocks shared with the layer's weight):
    /// [`crate::kernels::matmul_iq4_nl`].
    Iq4Nl(crate::iq4_nl::Iq4NlMatrix),
}

impl Linear {
    fn new(weight: Weight, bias: Option<Tensor>, device: &Device) -> Result<Self> {
        Self::from_arc(Arc::new(weight), bias, device)
    }

    fn from_arc(weight: Arc<Weight>, bias: Option<Tensor>, device: &Device) -> Result<Self> {
        let product = match &*weight {
            Weight::Ggml(q) => Product::Candle {
                mm: QMatMul::from_arc(q.clone())?,
                own: (crate::kernels::has_kernel(q.dtype()) && q.device().is_cpu())
                    .then(|| q.clone()),
            },
            Weight::Iq4Nl(m) if device.is_cpu() => Product::Iq4Nl(m.clone()),
            // No IQ4_NL kernel off the CPU: multiply the dequantised matrix there.
            Weight::Iq4Nl(m) => Product::Candle {
                mm: QMatMul::Tensor(m.dequantize(device)?),
                own: None,
            },
        };
        Ok(Self {
            weight,
            product,
            bias,
        })
    }

    /// The quantized weight, `(out, in)`.
    #[must_use]
    pub fn weight(&self) -> &Arc<Weight> {
        &self.weight
    }

    /// The bias, if any.
    #[must_use]
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `x Wᵀ (+ b)` for `x` of shape `(…, in)`.
    ///
    /// # Errors
    /// Shape mismatches and tensor errors.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.product {
            Product::Iq4Nl(m) => crate::kernels::matmul_iq4_nl(m, x)?,
            Product::Candle { mm, own: Some(q) } => match crate::kernels::matmul(q, x)? {
                Some(y) => y,
                None => mm.forward(x)?,
            },
            Product::Candle { mm, own: None } => mm.forward(x)?,
        };
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// One transformer block's weights.
#[derive(Debug, Clone)]
pub struct Block {
    /// Pre-attention RMSNorm weight.
    pub attn_norm: Tensor,
    /// Query projection.
    pub wq: Linear,
    /// Key projection.
    pub wk: Linear,
    /// Value projection.
    pub wv: Linear,
    /// Output projection.
    pub wo: Linear,
    /// Qwen3 per-head RMSNorm on queries.
    pub q_norm: Option<Tensor>,
    /// Qwen3 per-head RMSNorm on keys.
    pub k_norm: Option<Tensor>,
    /// Pre-FFN RMSNorm weight.
    pub ffn_norm: Tensor,
    /// FFN gate projection.
    pub w_gate: Linear,
    /// FFN up projection.
    pub w_up: Linear,
    /// FFN down projection.
    pub w_down: Linear,
}

/// Per-layer key/value cache, preallocated: each layer keeps `(1, n_kv, capacity,
/// head_dim)` buffers written in place, so a decode step copies only its own rows (the
/// capacity doubles when full, an amortised constant per token) instead of concatenating
/// the whole cache every token. Attention reads a narrowed view of the filled part.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    pos: usize,
}

/// One layer's key and value buffers, `(1, n_kv, capacity, head_dim)`.
#[derive(Debug)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

/// Positions a layer's buffers hold at first (grown by doubling).
const KV_INITIAL_CAPACITY: usize = 256;

impl Clone for KvCache {
    /// A deep copy: the buffers are written in place, so a clone must not share them.
    fn clone(&self) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref().map(|l| LayerKv {
                    k: deep_copy(&l.k),
                    v: deep_copy(&l.v),
                })
            })
            .collect();
        Self {
            layers,
            pos: self.pos,
        }
    }
}

/// A tensor with storage of its own (CPU copies cannot fail short of allocation).
fn deep_copy(t: &Tensor) -> Tensor {
    t.copy()
        .unwrap_or_else(|e| panic!("copying a KV cache buffer: {e}"))
}

impl KvCache {
    /// An empty cache for `n_layer` layers.
    #[must_use]
    pub fn new(n_layer: usize) -> Self {
        Self {
            layers: (0..n_layer).map(|_| None).collect(),
            pos: 0,
        }
    }

    /// Number of positions already processed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether no position has been processed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Forgets everything (the buffers are kept for reuse).
    pub fn clear(&mut self) {
        self.pos = 0;
    }

    /// Forgets the positions from `len` on (nothing when `len` is not below
    /// [`KvCache::len`]); the next forward continues at `len`.
    pub fn truncate(&mut self, len: usize) {
        self.pos = self.pos.min(len);
    }

    /// Writes layer `l`'s keys and values `(1, n_kv, seq, head_dim)` (contiguous) at the
    /// current position and returns views of all positions so far, `(1, n_kv, pos + seq,
    /// head_dim)`. The position advances once per forward, after the last layer.
    fn append(&mut self, l: usize, k: &Tensor, v: &Tensor, max: usize) -> Result<(Tensor, Tensor)> {
        let (_, n_kv, seq, hd) = k.dims4()?;
        let pos = self.pos;
        let need = pos + seq;
        let have = match &self.layers[l] {
            Some(b) => b.k.dim(2)?,
            None => 0,
        };
        if need > have {
            let cap = need
                .next_power_of_two()
                .max(KV_INITIAL_CAPACITY)
                .min(max.max(need));
            let k_buf = Tensor::zeros((1, n_kv, cap, hd), k.dtype(), k.device())?;
            let v_buf = Tensor::zeros((1, n_kv, cap, hd), v.dtype(), v.device())?;
            if let Some(old) = &self.layers[l]
                && pos > 0
            {
                k_buf.slice_set(&old.k.narrow(2, 0, pos)?.contiguous()?, 2, 0)?;
                v_buf.slice_set(&old.v.narrow(2, 0, pos)?.contiguous()?, 2, 0)?;
            }
            self.layers[l] = Some(LayerKv { k: k_buf, v: v_buf });
        }
        let Some(buf) = &self.layers[l] else {
            return Err(Error::InvalidArgument(format!(
                "KV cache layer {l} missing"
            )));
        };
        buf.k.slice_set(k, 2, pos)?;
        buf.v.slice_set(v, 2, pos)?;
        Ok((buf.k.narrow(2, 0, need)?, buf.v.narrow(2, 0, need)?))
    }
}

/// Activation statistics gathered during forward passes, for importance-based pruning.
#[derive(Debug, Clone)]
pub struct ActivationStats {
    /// Per layer, per FFN channel: Σ over tokens of |silu(gate)·up|.
    pub ffn_abs: Vec<Vec<f32>>,
    /// Per layer, per query head: Σ over tokens of ‖attention output of the head‖₂.
    pub head_norm: Vec<Vec<f32>>,
    /// Per layer: Σ over tokens of cos(block input, block output) (high = redundant layer).
    pub layer_cos: Vec<f32>,
    /// Tokens observed.
    pub tokens: usize,
}

impl ActivationStats {
    /// Zeroed statistics shaped for `cfg`.
    #[must_use]
    pub fn new(cfg: &ModelConfig) -> Self {
        Self {
            ffn_abs: cfg.n_ff.iter().map(|&n| vec![0.0; n]).collect(),
            head_norm: cfg.n_head.iter().map(|&n| vec![0.0; n]).collect(),
            layer_cos: vec![0.0; cfg.n_layer],
            tokens: 0,
        }
    }
}

fn add_into(acc: &mut [f32], t: &Tensor) -> Result<()> {
    for (a, v) in acc.iter_mut().zip(t.to_vec1::<f32>()?) {
        *a += v;
    }
    Ok(())
}

/// A loaded Llama-family model.
#[derive(Debug, Clone)]
pub struct Model {
    config: ModelConfig,
    embed: Arc<Weight>,
    blocks: Vec<Block>,
    output_norm: Tensor,
    output: Linear,
    tied_output: bool,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// Positions for which rotary tables are precomputed at most (the context may be longer
/// in the file; generation beyond this fails with [`Error::ContextOverflow`]).
pub const MAX_ROPE_POSITIONS: usize = 32_768;

impl Model {
    /// Loads a model from a parsed GGUF file and its reader.
    ///
    /// # Errors
    /// Configuration, missing-tensor, shape and I/O errors.
    pub fn from_gguf<R: Read + Seek>(
        g: &GgufFile,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self> {
        let config = ModelConfig::from_gguf(g)?;
        let mut get = |name: &str| -> Result<Option<Weight>> {
            if g.has_tensor(name) {
                g.weight(reader, name, device).map(Some)
            } else {
                Ok(None)
            }
        };
        Self::from_weights(config, &mut get, device)
    }

    /// Loads a model from a GGUF file on disk.
    ///
    /// # Errors
    /// As [`Model::from_gguf`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_path(path: &std::path::Path, device: &Device) -> Result<(Self, GgufFile)> {
        let (g, mut reader) = GgufFile::open(path)?;
        let m = Self::from_gguf(&g, &mut reader, device)?;
        Ok((m, g))
    }

    /// Builds a model from named tensors (GGUF names) and a configuration.
    ///
    /// # Errors
    /// Missing-tensor and shape errors.
    pub fn from_tensors(
        config: ModelConfig,
        get: &mut dyn FnMut(&str) -> Result<Option<QTensor>>,
        device: &Device,
    ) -> Result<Self> {
        Self::from_weights(config, &mut |n| Ok(get(n)?.map(Weight::from)), device)
    }

    /// Builds a model from named weights of any supported type (IQ4_NL included).
    ///
    /// # Errors
    /// Missing-tensor and shape errors.
    pub fn from_weights(
        config: ModelConfig,
        get: &mut dyn FnMut(&str) -> Result<Option<Weight>>,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let (e, hd) = (config.n_embd, config.head_dim);
        let mut need = |name: &str, shape: &[usize]| need_tensor(get, name, shape);
        let embed = Arc::new(need("token_embd.weight", &[config.vocab_size, e])?);
        let dense = |q: Weight| -> Result<Tensor> { q.dequantize(device) };
        let output_norm = dense(need("output_norm.weight", &[e])?)?;
        let mut blocks = Vec::with_capacity(config.n_layer);
        for l in 0..config.n_layer {
            let (h, kv, ff) = (config.n_head[l], config.n_head_kv[l], config.n_ff[l]);
            let p = format!("blk.{l}");
            let mut lin = |n: &str, shape: &[usize], bias_len: usize| -> Result<Linear> {
                linear(&mut need, &p, n, shape, bias_len, device)
            };
            let wq = lin("attn_q", &[h * hd, e], h * hd)?;
            let wk = lin("attn_k", &[kv * hd, e], kv * hd)?;
            let wv = lin("attn_v", &[kv * hd, e], kv * hd)?;
            let wo = lin("attn_output", &[e, h * hd], e)?;
            let w_gate = lin("ffn_gate", &[ff, e], ff)?;
            let w_up = lin("ffn_up", &[ff, e], ff)?;
            let w_down = lin("ffn_down", &[e, ff], e)?;
            let (q_norm, k_norm) = if config.qk_norm {
                (
                    Some(dense(need(&format!("{p}.attn_q_norm.weight"), &[hd])?)?),
                    Some(dense(need(&format!("{p}.attn_k_norm.weight"), &[hd])?)?),
                )
            } else {
                (None, None)
            };
            blocks.push(Block {
                attn_norm: dense(need(&format!("{p}.attn_norm.weight"), &[e])?)?,
                wq,
                wk,
                wv,
                wo,
                q_norm,
                k_norm,
                ffn_norm: dense(need(&format!("{p}.ffn_norm.weight"), &[e])?)?,
                w_gate,
                w_up,
                w_down,
            });
        }
        let (output, tied_output) = match get("output.weight")? {
            Some(w) => {
                if w.dims() != [config.vocab_size, e] {
                    return Err(Error::ShapeMismatch {
                        name: "output.weight".into(),
                        actual: w.dims().to_vec(),
                        expected: vec![config.vocab_size, e],
                    });
                }
                (Linear::new(w, None, device)?, false)
            }
            None => (Linear::from_arc(embed.clone(), None, device)?, true),
        };
        let n_pos = config.context_length.min(MAX_ROPE_POSITIONS);
        let (cos, sin) = rope_tables(hd, n_pos, config.rope_theta, device)?;
        Ok(Self {
            config,
            embed,
            blocks,
            output_norm,
            output,
            tied_output,
            cos,
            sin,
            device: device.clone(),
        })
    }

    /// A copy whose linear layers multiply with dequantised f32 weights (the reference
    /// path: exact f32 arithmetic on the same weights, without activation quantization).
    ///
    /// # Errors
    /// Tensor errors.
    pub fn dequantized(&self) -> Result<Self> {
        let deq = |l: &Linear| -> Result<Linear> {
            Ok(Linear {
                weight: l.weight.clone(),
                product: Product::Candle {
                    mm: QMatMul::Tensor(l.weight.dequantize(&self.device)?),
                    own: None,
                },
                bias: l.bias.clone(),
            })
        };
        let mut m = self.clone();
        for b in &mut m.blocks {
            for l in [
                &mut b.wq,
                &mut b.wk,
                &mut b.wv,
                &mut b.wo,
                &mut b.w_gate,
                &mut b.w_up,
                &mut b.w_down,
            ] {
                *l = deq(l)?;
            }
        }
        m.output = deq(&m.output)?;
        Ok(m)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device the weights live on.
    #[must_use]
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The transformer blocks.
    #[must_use]
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The most positions a forward can reach (the context length, at most
    /// [`MAX_ROPE_POSITIONS`]).
    #[must_use]
    pub fn max_positions(&self) -> usize {
        self.cos.dims().first().copied().unwrap_or(0)
    }

    /// A fresh KV cache for this model.
    #[must_use]
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.n_layer)
    }

    /// All weights as GGUF-named quantized tensors (for export), in file order.
    ///
    /// # Errors
    /// Tensor errors while re-wrapping dense norms.
    pub fn named_tensors(&self) -> Result<Vec<(String, Weight)>> {
        let dense =
            |t: &Tensor| -> Result<Weight> { Ok(QTensor::quantize(t, GgmlDType::F32)?.into()) };
        let copy = |q: &Weight| -> Result<Weight> { q.try_clone() };
        let mut v = vec![("token_embd.weight".to_owned(), copy(&self.embed)?)];
        for (l, b) in self.blocks.iter().enumerate() {
            let p = format!("blk.{l}");
            v.push((format!("{p}.attn_norm.weight"), dense(&b.attn_norm)?));
            for (n, lin) in [
                ("attn_q", &b.wq),
                ("attn_k", &b.wk),
                ("attn_v", &b.wv),
                ("attn_output", &b.wo),
            ] {
                v.push((format!("{p}.{n}.weight"), copy(&lin.weight)?));
                if let Some(bias) = &lin.bias {
                    v.push((format!("{p}.{n}.bias"), dense(bias)?));
                }
            }
            if let (Some(qn), Some(kn)) = (&b.q_norm, &b.k_norm) {
                v.push((format!("{p}.attn_q_norm.weight"), dense(qn)?));
                v.push((format!("{p}.attn_k_norm.weight"), dense(kn)?));
            }
            v.push((format!("{p}.ffn_norm.weight"), dense(&b.ffn_norm)?));
            for (n, lin) in [
                ("ffn_gate", &b.w_gate),
                ("ffn_up", &b.w_up),
                ("ffn_down", &b.w_down),
            ] {
                v.push((format!("{p}.{n}.weight"), copy(&lin.weight)?));
                // Optional (the pruning refit's bias compensation); the loader reads it.
                if let Some(bias) = &lin.bias {
                    v.push((format!("{p}.{n}.bias"), dense(bias)?));
                }
            }
        }
        v.push(("output_norm.weight".to_owned(), dense(&self.output_norm)?));
        if !self.tied_output {
            v.push(("output.weight".to_owned(), copy(&self.output.weight)?));
        }
        Ok(v)
    }

    /// Runs `tokens` (positions `cache.len()..`) and returns the logits of the last one,
    /// shape `(vocab,)`.
    ///
    /// # Errors
    /// [`Error::ContextOverflow`], [`Error::InvalidArgument`] for an empty or out-of-vocab
    /// input, tensor errors.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let h = self.hidden(tokens, cache, None)?;
        let last = h.narrow(0, tokens.len() - 1, 1)?;
        Ok(self.output.forward(&last)?.squeeze(0)?)
    }

    /// Like [`Model::forward`] but stops before the output projection: the final hidden
    /// state (after the output norm) of the last token, shape `(n_embd,)`. With
    /// [`Model::output`] this lets a caller run the LM head elsewhere (the browser app
    /// runs it on WebGPU).
    ///
    /// # Errors
    /// As [`Model::forward`].
    pub fn forward_hidden(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let h = self.hidden(tokens, cache, None)?;
        Ok(h.narrow(0, tokens.len() - 1, 1)?.squeeze(0)?)
    }

    /// The output projection (LM head), weight `(vocab, n_embd)` as stored (the token
    /// embedding when the file ties them).
    pub fn output(&self) -> &Linear {
        &self.output
    }

    /// The token embedding table `(vocab, n_embd)` as stored (the GPU path uploads it).
    #[must_use]
    pub fn embedding(&self) -> &Arc<Weight> {
        &self.embed
    }

    /// The final RMSNorm weight `(n_embd,)`.
    #[must_use]
    pub fn output_norm(&self) -> &Tensor {
        &self.output_norm
    }

    /// Like [`Model::forward`] but returns the logits of every input position,
    /// shape `(tokens.len(), vocab)`.
    ///
    /// # Errors
    /// As [`Model::forward`].
    pub fn forward_all(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let h = self.hidden(tokens, cache, None)?;
        self.output.forward(&h)
    }

    /// Runs `tokens` without a persistent cache, accumulating activation statistics.
    ///
    /// # Errors
    /// As [`Model::forward`], or [`Error::InvalidArgument`] when `stats` was shaped for
    /// another model.
    pub fn observe(&self, tokens: &[u32], stats: &mut ActivationStats) -> Result<()> {
        if stats.ffn_abs.len() != self.config.n_layer {
            return Err(Error::InvalidArgument(
                "activation statistics shaped for another model".into(),
            ));
        }
        let mut cache = self.new_cache();
        self.hidden(tokens, &mut cache, Some(stats))?;
        stats.tokens += tokens.len();
        Ok(())
    }

    /// Final hidden states `(seq, n_embd)` after the output norm.
    fn hidden(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        mut stats: Option<&mut ActivationStats>,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let seq = tokens.len();
        if seq == 0 {
            return Err(Error::InvalidArgument("empty token sequence".into()));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} out of vocabulary of {}",
                cfg.vocab_size
            )));
        }
        let pos = cache.pos;
        let max = self.cos.dim(0)?;
        if pos + seq > max {
            return Err(Error::ContextOverflow {
                needed: pos + seq,
                max,
            });
        }
        let mut x = self.embed.embedding(tokens, &self.device)?; // (seq, e)
        let cos = self.cos.narrow(0, pos, seq)?;
        let sin = self.sin.narrow(0, pos, seq)?;
        let mask = if seq > 1 || cfg.sliding_window.is_some() {
            Some(self.mask(seq, pos)?)
        } else {
            None
        };
        let hd = cfg.head_dim;
        #[allow(clippy::cast_precision_loss)]
        let scale = 1.0 / (hd as f64).sqrt();
        for (l, b) in self.blocks.iter().enumerate() {
            let (nh, nkv) = (cfg.n_head[l], cfg.n_head_kv[l]);
            let rep = nh / nkv;
            let residual = x.clone();
            let block_in = x.clone();
            let hn = candle_nn::ops::rms_norm(&x, &b.attn_norm, cfg.rms_eps)?;
            let q =
                b.wq.forward(&hn)?
                    .reshape((1, seq, nh, hd))?
                    .transpose(1, 2)?;
            let k =
                b.wk.forward(&hn)?
                    .reshape((1, seq, nkv, hd))?
                    .transpose(1, 2)?;
            let v =
                b.wv.forward(&hn)?
                    .reshape((1, seq, nkv, hd))?
                    .transpose(1, 2)?;
            let (q, k) = match (&b.q_norm, &b.k_norm) {
                (Some(qn), Some(kn)) => (
                    candle_nn::ops::rms_norm(&q.contiguous()?, qn, cfg.rms_eps)?,
                    candle_nn::ops::rms_norm(&k.contiguous()?, kn, cfg.rms_eps)?,
                ),
                _ => (q.contiguous()?, k.contiguous()?),
            };
            let (q, k) = match cfg.rope_style {
                RopeStyle::Interleaved => (
                    candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?,
                ),
                RopeStyle::Halves => (
                    candle_nn::rotary_emb::rope(&q, &cos, &sin)?,
                    candle_nn::rotary_emb::rope(&k, &cos, &sin)?,
                ),
            };
            let v = v.contiguous()?;
            let (k, v) = cache.append(l, &k, &v, max)?;
            let t = k.dim(2)?;
            // Grouped-query attention without copying K/V: fold the `rep` query heads of a
            // group into the row dimension.
            let qg = q.reshape((1, nkv, rep * seq, hd))?;
            let att = (qg.matmul(&k.t()?)? * scale)?;
            let att = match &mask {
                Some(m) => att
                    .reshape((1, nkv, rep, seq, t))?
                    .broadcast_add(m)?
                    .reshape((1, nkv, rep * seq, t))?,
                None => att,
            };
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att.matmul(&v)?; // (1, nkv, rep*seq, hd)
            let y = y.reshape((1, nh, seq, hd))?;
            if let Some(s) = stats.as_deref_mut() {
                let norms = y.sqr()?.sum_keepdim(3)?.sqrt()?.sum((0, 2, 3))?;
                add_into(&mut s.head_norm[l], &norms)?;
            }
            let y = y.transpose(1, 2)?.reshape((seq, nh * hd))?;
            x = (b.wo.forward(&y)? + residual)?;
            let residual = x.clone();
            let hn = candle_nn::ops::rms_norm(&x, &b.ffn_norm, cfg.rms_eps)?;
            let act = (candle_nn::ops::silu(&b.w_gate.forward(&hn)?)? * b.w_up.forward(&hn)?)?;
            if let Some(s) = stats.as_deref_mut() {
                add_into(&mut s.ffn_abs[l], &act.abs()?.sum(0)?)?;
            }
            x = (b.w_down.forward(&act)? + residual)?;
            if let Some(s) = stats.as_deref_mut() {
                // Cosine between this block's input and output, summed over tokens.
                let dot = (&block_in * &x)?.sum(1)?;
                let n = (block_in.sqr()?.sum(1)? * x.sqr()?.sum(1)?)?.sqrt()?;
                let cos = (dot / n)?.sum_all()?.to_scalar::<f32>()?;
                s.layer_cos[l] += cos;
            }
        }
        cache.pos += seq;
        Ok(candle_nn::ops::rms_norm(
            &x,
            &self.output_norm,
            cfg.rms_eps,
        )?)
    }

    /// Additive attention mask `(seq, pos + seq)`: causal, and windowed when configured.
    fn mask(&self, seq: usize, pos: usize) -> Result<Tensor> {
        attention_mask(seq, pos, self.config.sliding_window, &self.device)
    }
}

fn need_tensor(
    get: &mut dyn FnMut(&str) -> Result<Option<Weight>>,
    name: &str,
    shape: &[usize],
) -> Result<Weight> {
    let t = get(name)?.ok_or_else(|| Error::MissingTensor(name.to_owned()))?;
    if t.dims() != shape {
        return Err(Error::ShapeMismatch {
            name: name.to_owned(),
            actual: t.dims().to_vec(),
            expected: shape.to_vec(),
        });
    }
    Ok(t)
}

/// Loads `{prefix}.{n}.weight` and, when present, `{prefix}.{n}.bias`.
fn linear(
    need: &mut dyn FnMut(&str, &[usize]) -> Result<Weight>,
    prefix: &str,
    n: &str,
    shape: &[usize],
    bias_len: usize,
    device: &Device,
) -> Result<Linear> {
    let w = need(&format!("{prefix}.{n}.weight"), shape)?;
    let bname = format!("{prefix}.{n}.bias");
    let bias = match need(&bname, &[bias_len]) {
        Ok(b) => Some(b.dequantize(device)?),
        Err(Error::MissingTensor(_)) => None,
        Err(e) => return Err(e),
    };
    Linear::new(w, bias, device)
}

/// Copies a quantized tensor (same type, same bytes).
///
/// # Errors
/// Tensor errors.
pub fn clone_qtensor(q: &QTensor) -> Result<QTensor> {
    let data = q.data()?;
    Ok(candle_core::quantized::ggml_file::qtensor_from_ggml(
        q.dtype(),
        &data,
        q.shape().dims().to_vec(),
        &q.device(),
    )?)
}

/// Additive attention mask `(seq, pos + seq)` for `seq` queries after `pos` cached
/// positions: causal, and limited to the last `window` positions when given. The research
/// pipeline's own forward passes use it too, so they mask exactly as the engine does.
///
/// # Errors
/// Tensor errors.
pub fn attention_mask(
    seq: usize,
    pos: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    let t = pos + seq;
    let window = window.unwrap_or(usize::MAX);
    let data: Vec<f32> = (0..seq)
        .flat_map(|i| {
            let qpos = pos + i;
            (0..t).map(move |j| {
                if j > qpos || qpos - j >= window {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(data, (seq, t), device)?)
}

/// Rotary tables `(n_pos, hd/2)` (cos, sin) for base `theta`, shared with the research
/// pipeline's forward passes.
///
/// # Errors
/// Tensor errors.
pub fn rope_tables(
    hd: usize,
    n_pos: usize,
    theta: f32,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    #[allow(clippy::cast_precision_loss)]
    let inv: Vec<f32> = (0..hd / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / hd as f32))
        .collect();
    let inv = Tensor::from_vec(inv, (1, hd / 2), device)?;
    #[allow(clippy::cast_precision_loss)]
    let pos: Vec<f32> = (0..n_pos).map(|p| p as f32).collect();
    let pos = Tensor::from_vec(pos, (n_pos, 1), device)?;
    let freqs = pos.broadcast_mul(&inv)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

/// Convenience: the index and value of the largest logit.
///
/// # Errors
/// Tensor errors.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits
        .argmax(D::Minus1)?
        .to_dtype(DType::U32)?
        .to_scalar::<u32>()?)
}

/// Metadata keys a GGUF export should carry over unchanged from the source file.
#[must_use]
pub fn passthrough_metadata_key(key: &str) -> bool {
    key.starts_with("tokenizer.") || key.starts_with("general.")
}

/// Counts of tensors per ggml type (for reports).
#[must_use]
pub fn type_histogram(tensors: &[(String, Weight)]) -> HashMap<String, usize> {
    let mut h = HashMap::new();
    for (_, t) in tensors {
        *h.entry(format!("{:?}", t.dtype())).or_insert(0) += 1;
    }
    h
}

impl Model {
    /// A model with seeded random F32 weights (for tests and examples; no file needed).
    ///
    /// # Errors
    /// Configuration and tensor errors.
    pub fn synthetic(config: &ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        use rand_core::{RngCore, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let (e, hd) = (config.n_embd, config.head_dim);
        let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
        shapes.insert("token_embd.weight".into(), vec![config.vocab_size, e]);
        shapes.insert("output_norm.weight".into(), vec![e]);
        for l in 0..config.n_layer {
            let (h, kv, ff) = (config.n_head[l], config.n_head_kv[l], config.n_ff[l]);
            for (n, s) in [
                ("attn_norm", vec![e]),
                ("ffn_norm", vec![e]),
                ("attn_q", vec![h * hd, e]),
                ("attn_k", vec![kv * hd, e]),
                ("attn_v", vec![kv * hd, e]),
                ("attn_output", vec![e, h * hd]),
                ("ffn_gate", vec![ff, e]),
                ("ffn_up", vec![ff, e]),
                ("ffn_down", vec![e, ff]),
                ("attn_q_norm", vec![hd]),
                ("attn_k_norm", vec![hd]),
            ] {
                shapes.insert(format!("blk.{l}.{n}.weight"), s);
            }
        }
        let mut get = |name: &str| -> Result<Option<QTensor>> {
            let Some(shape) = shapes.get(name) else {
                return Ok(None);
            };
            let n: usize = shape.iter().product();
            let is_norm = shape.len() == 1;
            #[allow(clippy::cast_precision_loss)]
            let scale = if is_norm {
                0.2
            } else {
                1.0 / (shape[1] as f32).sqrt()
            };
            let data: Vec<f32> = (0..n)
                .map(|_| {
                    #[allow(clippy::cast_precision_loss)]
                    let u = (rng.next_u32() >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0;
                    if is_norm { 1.0 + u * scale } else { u * scale }
                })
                .collect();
            let t = Tensor::from_vec(data, shape.clone(), device)?;
            Ok(Some(QTensor::quantize(&t, GgmlDType::F32)?))
        };
        Self::from_tensors(config.clone(), &mut get, device)
    }

    /// Replaces the transformer blocks and configuration (used by pruning).
    pub fn with_blocks(&self, config: ModelConfig, blocks: Vec<Block>) -> Self {
        Self {
            config,
            blocks,
            ..self.clone()
        }
    }
}

impl Linear {
    /// A linear layer from a weight `(out, in)` and optional bias.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn from_qtensor(weight: QTensor, bias: Option<Tensor>) -> Result<Self> {
        let device = weight.device();
        Self::new(weight.into(), bias, &device)
    }

    /// A linear layer from a weight of any supported type, multiplied on `device`.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn from_weight(weight: Weight, bias: Option<Tensor>, device: &Device) -> Result<Self> {
        Self::new(weight, bias, device)
    }
}

/// A small configuration for tests: `n_layer` blocks of width 64, vocabulary 256.
#[must_use]
pub fn tiny_config(n_layer: usize) -> ModelConfig {
    ModelConfig {
        arch: crate::config::Architecture::Llama,
        n_layer,
        n_embd: 64,
        n_ff: vec![128; n_layer],
        n_head: vec![4; n_layer],
        n_head_kv: vec![2; n_layer],
        head_dim: 16,
        vocab_size: 256,
        context_length: 256,
        rope_theta: 10_000.0,
        rope_style: RopeStyle::Interleaved,
        rms_eps: 1e-5,
        qk_norm: false,
        sliding_window: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `m` with every matrix (the tied embedding too) re-encoded as IQ4_NL by the plain
    /// encoder.
    fn iq4_nl_copy(m: &Model) -> Model {
        let mut named: HashMap<String, Weight> = m
            .named_tensors()
            .unwrap()
            .into_iter()
            .map(|(n, w)| {
                if w.dims().len() == 2 {
                    let x: Vec<f32> = w
                        .dequantize(&Device::Cpu)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    let q = crate::iq4_nl::Iq4NlMatrix::quantize_plain(w.dims().to_vec(), &x);
                    (n, q.unwrap().into())
                } else {
                    (n, w)
                }
            })
            .collect();
        Model::from_weights(
            m.config().clone(),
            &mut |n| Ok(named.remove(n)),
            &Device::Cpu,
        )
        .unwrap()
    }

    /// A model whose linears and embedding are IQ4_NL runs through the IQ4_NL kernel and
    /// gives the logits of the same weights decoded to f32 (up to the activations' Q8_0
    /// rounding), and survives a GGUF round trip bit for bit.
    #[test]
    fn iq4_nl_model_matches_its_dequantized_weights_and_round_trips() {
        let base = Model::synthetic(&tiny_config(2), 9, &Device::Cpu).unwrap();
        let m = iq4_nl_copy(&base);
        assert_eq!(
            m.blocks()[0].w_down.weight().dtype(),
            crate::weight::WeightType::Iq4Nl
        );
        assert_eq!(m.embedding().dtype(), crate::weight::WeightType::Iq4Nl);
        let toks = [5u32, 17, 200, 3, 99, 42];
        let logits = |m: &Model| -> Vec<f32> {
            m.forward(&toks, &mut m.new_cache())
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let (ours, reference) = (logits(&m), logits(&m.dequantized().unwrap()));
        let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs()));
        let diff = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 0.02 * scale, "max diff {diff}, logit scale {scale}");
        assert!(
            diff > 0.0,
            "the kernel quantizes activations, the reference does not"
        );
        // The quantization itself moved the logits much more than the kernel does.
        let to_base = logits(&base)
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(to_base > diff, "{to_base} vs {diff}");
        let mut buf = std::io::Cursor::new(Vec::new());
        crate::export::export_gguf(&mut buf, &m, None).unwrap();
        let bytes = buf.into_inner();
        let mut r = std::io::Cursor::new(&bytes);
        let g = GgufFile::read(&mut r, "<memory>").unwrap();
        let back = Model::from_gguf(&g, &mut r, &Device::Cpu).unwrap();
        assert_eq!(logits(&back), ours);
    }

    #[test]
    fn kv_cache_decode_equals_full_prefill() {
        for arch in [
            crate::config::Architecture::Llama,
            crate::config::Architecture::Qwen3,
        ] {
            let mut cfg = tiny_config(2);
            cfg.arch = arch;
            cfg.qk_norm = arch == crate::config::Architecture::Qwen3;
            if cfg.qk_norm {
                cfg.rope_style = RopeStyle::Halves;
            }
            let m = Model::synthetic(&cfg, 3, &Device::Cpu).unwrap();
            let toks = [5u32, 17, 200, 3, 99, 42];
            let mut c = m.new_cache();
            let full: Vec<f32> = m.forward(&toks, &mut c).unwrap().to_vec1().unwrap();
            let mut c = m.new_cache();
            m.forward(&toks[..4], &mut c).unwrap();
            m.forward(&toks[4..5], &mut c).unwrap();
            let step: Vec<f32> = m.forward(&toks[5..], &mut c).unwrap().to_vec1().unwrap();
            let diff = full
                .iter()
                .zip(&step)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-4, "{arch:?}: {diff}");
            assert_eq!(c.len(), 6);
        }
    }

    /// Past the initial capacity (the buffers grow), after a rollback (`truncate`) and
    /// in a cloned cache, decoding gives the logits of a fresh full prefill.
    #[test]
    fn kv_cache_grows_truncates_and_clones() {
        let mut cfg = tiny_config(2);
        cfg.context_length = 1024;
        let m = Model::synthetic(&cfg, 5, &Device::Cpu).unwrap();
        #[allow(clippy::cast_possible_truncation)]
        let toks: Vec<u32> = (0..300u32).map(|i| (i * 37 + 11) % 256).collect();
        let logits = |c: &mut KvCache, t: &[u32]| -> Vec<f32> {
            m.forward(t, c).unwrap().to_vec1().unwrap()
        };
        let close = |a: &[f32], b: &[f32]| {
            let d = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-4, "max |diff| {d}");
        };
        let full = logits(&mut m.new_cache(), &toks);
        let mut c = m.new_cache();
        logits(&mut c, &toks[..250]);
        for &t in &toks[250..299] {
            logits(&mut c, &[t]);
        }
        let snapshot = c.clone();
        close(&logits(&mut c, &toks[299..]), &full);
        assert_eq!(c.len(), 300);
        // The clone was not disturbed by the original's writes.
        let mut s = snapshot;
        close(&logits(&mut s, &toks[299..]), &full);
        // Roll back 40 positions, write other tokens there, then roll back again and
        // replay the real ones.
        c.truncate(260);
        assert_eq!(c.len(), 260);
        logits(&mut c, &[1, 2, 3, 4, 5]);
        c.truncate(260);
        close(&logits(&mut c, &toks[260..]), &full);
        c.clear();
        assert!(c.is_empty());
        close(&logits(&mut c, &toks), &full);
    }

    #[test]
    fn sliding_window_limits_attention() {
        let mut cfg = tiny_config(1);
        cfg.sliding_window = Some(2);
        let m = Model::synthetic(&cfg, 1, &Device::Cpu).unwrap();
        // With a window of 2 the first token cannot influence the logits at position 3.
        let a: Vec<f32> = m
            .forward(&[1, 2, 3, 4], &mut m.new_cache())
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = m
            .forward(&[9, 2, 3, 4], &mut m.new_cache())
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let m = Model::synthetic(&tiny_config(1), 1, &Device::Cpu).unwrap();
        assert!(matches!(
            m.forward(&[], &mut m.new_cache()),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            m.forward(&[999], &mut m.new_cache()),
            Err(Error::InvalidArgument(_))
        ));
        let long = vec![1u32; 300];
        assert!(matches!(
            m.forward(&long, &mut m.new_cache()),
            Err(Error::ContextOverflow { .. })
        ));
    }
}
