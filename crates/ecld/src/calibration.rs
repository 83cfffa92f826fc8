//! A block-by-block forward of a [`Model`] that exposes what every linear layer sees: the
//! inputs the importance matrix sums over, and the FFN activations the pruning refit solves
//! on.
//!
//! The engine's forward (`Model::hidden`) keeps its intermediate tensors to itself (it is
//! the hot path of the browser and the CLI); this copy runs the same blocks with the same
//! `Linear`s and candle-nn ops, one block at a time, so a caller can stop after any block,
//! change it and continue (layer-by-layer reconstruction). A test checks it against the
//! engine's final hidden state, so the two cannot drift apart silently.

use candle_core::{D, Device, Tensor};

use edgewise_llm::config::RopeStyle;
use edgewise_llm::error::{Error, Result};
use edgewise_llm::model::{Block, MAX_ROPE_POSITIONS, Model, attention_mask, rope_tables};

/// What one block's linear layers saw on one sequence (all `(seq, width)`).
#[derive(Debug, Clone)]
pub struct BlockTaps {
    /// Input of `attn_q`, `attn_k` and `attn_v` (after the attention norm), `(seq, n_embd)`.
    pub attn_in: Tensor,
    /// Input of `attn_output` (concatenated head outputs), `(seq, n_head·head_dim)`.
    pub attn_out: Tensor,
    /// Input of `ffn_gate` and `ffn_up` (after the FFN norm), `(seq, n_embd)`.
    pub ffn_in: Tensor,
    /// Input of `ffn_down`: `silu(gate)·up`, `(seq, n_ff)`.
    pub ffn_act: Tensor,
}

/// Runs a model's blocks one at a time on calibration sequences.
#[derive(Debug, Clone)]
pub struct Tracer {
    embed: Tensor,
    output_norm: Tensor,
    cos: Tensor,
    sin: Tensor,
    rms_eps: f32,
    head_dim: usize,
    rope_style: RopeStyle,
    sliding_window: Option<usize>,
    device: Device,
}

fn named(model: &Model, name: &str) -> Result<Tensor> {
    let q = model
        .named_tensors()?
        .into_iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| Error::MissingTensor(name.to_owned()))?
        .1;
    q.dequantize(model.device())
}

impl Tracer {
    /// A tracer sharing `model`'s embedding, output norm and rotary tables (the blocks are
    /// passed to [`Tracer::block`], so a pruned copy of the blocks can run in between).
    ///
    /// # Errors
    /// Tensor errors.
    pub fn new(model: &Model) -> Result<Self> {
        let cfg = model.config();
        let device = model.device().clone();
        let n_pos = cfg.context_length.min(MAX_ROPE_POSITIONS);
        let (cos, sin) = rope_tables(cfg.head_dim, n_pos, cfg.rope_theta, &device)?;
        Ok(Self {
            embed: named(model, "token_embd.weight")?,
            output_norm: named(model, "output_norm.weight")?,
            cos,
            sin,
            rms_eps: cfg.rms_eps,
            head_dim: cfg.head_dim,
            rope_style: cfg.rope_style,
            sliding_window: cfg.sliding_window,
            device,
        })
    }

    /// Token embeddings `(seq, n_embd)`: the input of the first block.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty sequence, out-of-vocabulary ids or one longer
    /// than the rotary tables.
    pub fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        let vocab = self.embed.dim(0)?;
        if tokens.is_empty() {
            return Err(Error::InvalidArgument("empty token sequence".into()));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} out of vocabulary of {vocab}"
            )));
        }
        let max = self.cos.dim(0)?;
        if tokens.len() > max {
            return Err(Error::ContextOverflow {
                needed: tokens.len(),
                max,
            });
        }
        let ids = Tensor::new(tokens, &self.device)?;
        Ok(self.embed.index_select(&ids, 0)?)
    }

    /// The final norm of the last block's output (what the LM head multiplies).
    ///
    /// # Errors
    /// Tensor errors.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(
            x,
            &self.output_norm,
            self.rms_eps,
        )?)
    }

    /// Runs block `b` (with `n_head` query heads and `n_head_kv` KV groups) on `x`
    /// `(seq, n_embd)` from position 0; returns its output and what its linears saw.
    ///
    /// # Errors
    /// Shape mismatches and tensor errors.
    pub fn block(
        &self,
        b: &Block,
        n_head: usize,
        n_head_kv: usize,
        x: &Tensor,
    ) -> Result<(Tensor, BlockTaps)> {
        let (seq, _) = x.dims2()?;
        let (nh, nkv, hd) = (n_head, n_head_kv, self.head_dim);
        if nkv == 0 || !nh.is_multiple_of(nkv) {
            return Err(Error::InvalidArgument(format!(
                "{nh} query heads cannot share {nkv} KV groups"
            )));
        }
        let rep = nh / nkv;
        let cos = self.cos.narrow(0, 0, seq)?;
        let sin = self.sin.narrow(0, 0, seq)?;
        let attn_in = candle_nn::ops::rms_norm(x, &b.attn_norm, self.rms_eps)?;
        let split = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((1, seq, n, hd))?.transpose(1, 2)?.contiguous()?)
        };
        let q = split(b.wq.forward(&attn_in)?, nh)?;
        let k = split(b.wk.forward(&attn_in)?, nkv)?;
        let v = split(b.wv.forward(&attn_in)?, nkv)?;
        let (q, k) = match (&b.q_norm, &b.k_norm) {
            (Some(qn), Some(kn)) => (
                candle_nn::ops::rms_norm(&q, qn, self.rms_eps)?,
                candle_nn::ops::rms_norm(&k, kn, self.rms_eps)?,
            ),
            _ => (q, k),
        };
        let (q, k) = match self.rope_style {
            RopeStyle::Interleaved => (
                candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?,
                candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?,
            ),
            RopeStyle::Halves => (
                candle_nn::rotary_emb::rope(&q, &cos, &sin)?,
                candle_nn::rotary_emb::rope(&k, &cos, &sin)?,
            ),
        };
        #[allow(clippy::cast_precision_loss)]
        let scale = 1.0 / (hd as f64).sqrt();
        let qg = q.reshape((1, nkv, rep * seq, hd))?;
        let att = (qg.matmul(&k.t()?)? * scale)?
            .reshape((1, nkv, rep, seq, seq))?
            .broadcast_add(&attention_mask(seq, 0, self.sliding_window, &self.device)?)?
            .reshape((1, nkv, rep * seq, seq))?;
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let attn_out = att
            .matmul(&v)?
            .reshape((1, nh, seq, hd))?
            .transpose(1, 2)?
            .reshape((seq, nh * hd))?;
        let x = (b.wo.forward(&attn_out)? + x)?;
        let ffn_in = candle_nn::ops::rms_norm(&x, &b.ffn_norm, self.rms_eps)?;
        let ffn_act =
            (candle_nn::ops::silu(&b.w_gate.forward(&ffn_in)?)? * b.w_up.forward(&ffn_in)?)?;
        let out = (b.w_down.forward(&ffn_act)? + x)?;
        Ok((
            out,
            BlockTaps {
                attn_in,
                attn_out,
                ffn_in,
                ffn_act,
            },
        ))
    }
}

/// Σ over rows of `x²`, per column: `(n, w)` → `w` values.
///
/// # Errors
/// Tensor errors.
pub fn column_sum_sq(x: &Tensor) -> Result<Vec<f32>> {
    Ok(x.sqr()?.sum(0)?.to_vec1::<f32>()?)
}

/// Runs the whole model through the tracer and returns the final normed hidden state of
/// every position, `(seq, n_embd)` (for checking the tracer against the engine).
///
/// # Errors
/// As [`Tracer::block`].
pub fn trace_hidden(model: &Model, tokens: &[u32]) -> Result<Tensor> {
    let t = Tracer::new(model)?;
    let cfg = model.config();
    let mut x = t.embed(tokens)?;
    for (l, b) in model.blocks().iter().enumerate() {
        x = t.block(b, cfg.n_head[l], cfg.n_head_kv[l], &x)?.0;
    }
    t.final_norm(&x)
}

/// Largest |a − b| over two tensors of the same shape.
///
/// # Errors
/// Shape mismatches.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    Ok((a - b)?
        .abs()?
        .flatten_all()?
        .max(D::Minus1)?
        .to_scalar::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewise_llm::model::tiny_config;

    #[test]
    fn tracer_matches_the_engine() {
        let dev = Device::Cpu;
        for (qk, style, window) in [
            (false, RopeStyle::Interleaved, None),
            (true, RopeStyle::Halves, Some(3)),
        ] {
            let mut cfg = tiny_config(2);
            cfg.qk_norm = qk;
            cfg.rope_style = style;
            cfg.sliding_window = window;
            if qk {
                cfg.arch = edgewise_llm::config::Architecture::Qwen3;
            }
            let m = Model::synthetic(&cfg, 5, &dev).unwrap();
            let tokens = [3u32, 17, 200, 5, 9, 9, 41];
            let ours = trace_hidden(&m, &tokens).unwrap();
            let last = ours
                .narrow(0, tokens.len() - 1, 1)
                .unwrap()
                .squeeze(0)
                .unwrap();
            let engine = m.forward_hidden(&tokens, &mut m.new_cache()).unwrap();
            let d = max_abs_diff(&last, &engine).unwrap();
            assert!(d < 1e-4, "tracer differs from the engine by {d} (qk {qk})");
        }
    }

    #[test]
    fn tracer_refuses_bad_tokens() {
        let m = Model::synthetic(&tiny_config(1), 1, &Device::Cpu).unwrap();
        let t = Tracer::new(&m).unwrap();
        assert!(t.embed(&[]).is_err());
        assert!(t.embed(&[256]).is_err());
    }
}
