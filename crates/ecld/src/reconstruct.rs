//! Pruning with reconstruction: after structured pruning removes FFN channels (or query
//! heads), the projection that reads them (`ffn_down`, `attn_output`) is refitted in closed
//! form so the block's output matches the original block's on calibration activations.
//!
//! For block l with kept input columns K of the projection W `(n_embd, n)`, on calibration
//! inputs that have gone through the already-refitted blocks 0..l−1 (layer by layer, so each
//! refit also absorbs the error the earlier pruning left in its input):
//!
//! * target Y = A·Wᵀ, the original projection applied to all `n` activations A of the
//!   original block on this input;
//! * fit `[W'ᵀ; b] = argmin ‖[A_K 1]·[W'ᵀ; b] − Y‖² + λ‖W'‖²` (ridge on the weights, not on
//!   the bias; λ = `ridge` × the mean diagonal of A_Kᵀ A_K), solved by Cholesky in f64.
//!
//! The bias b absorbs the mean contribution of the removed channels (FLAP's bias
//! compensation) jointly with the least-squares weights. The Llama architecture has no
//! bias on these projections, so it is stored as an optional `blk.N.ffn_down.bias` /
//! `blk.N.attn_output.bias` tensor: our engine and distillation read it, and llama.cpp's
//! `llama` loader accepts these optional bias tensors.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use edgewise_llm::error::{Error, Result};
use edgewise_llm::model::{Block, Linear, Model};

use crate::calibration::Tracer;
use crate::compress::PrunedBlock;

/// Settings of [`refit_pruned`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefitOptions {
    /// Ridge strength relative to the mean diagonal of the Gram matrix.
    pub ridge: f64,
    /// Also refit `attn_output` in layers whose query heads were pruned.
    pub attention: bool,
}

impl Default for RefitOptions {
    fn default() -> Self {
        Self {
            ridge: 1e-2,
            attention: true,
        }
    }
}

/// Training-set fit of one refitted projection: ‖prediction − Y‖² / ‖Y‖² without and with
/// the refit.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRefit {
    /// Block index in the pruned model.
    pub block: usize,
    /// `ffn_down` or `attn_output`.
    pub tensor: &'static str,
    /// Relative error of the kept columns as they were (plain pruning).
    pub before: f64,
    /// Relative error after the refit (equal to `before` when the refit was not kept).
    pub after: f64,
    /// Whether the refitted weights replaced the pruned ones (only when they fit better).
    pub refitted: bool,
}

/// Accumulated normal equations of one projection.
struct Normal {
    /// `[A_K 1]ᵀ[A_K 1]`, `(k+1, k+1)`.
    gram: Tensor,
    /// `[A_K 1]ᵀ Y`, `(k+1, e)`.
    cross: Tensor,
    /// ‖Y‖² and ‖A_K W_Kᵀ − Y‖² (the unrefitted error).
    y2: f64,
    plain_err: f64,
}

impl Normal {
    fn add(&mut self, a_k: &Tensor, y: &Tensor, w_k: &Tensor) -> Result<()> {
        let ones = Tensor::ones((a_k.dim(0)?, 1), DType::F32, a_k.device())?;
        let a1 = Tensor::cat(&[a_k, &ones], 1)?;
        self.gram = (&self.gram + a1.t()?.matmul(&a1)?)?;
        self.cross = (&self.cross + a1.t()?.matmul(y)?)?;
        self.y2 += f64::from(y.sqr()?.sum_all()?.to_scalar::<f32>()?);
        let pred = a_k.matmul(&w_k.t()?)?;
        self.plain_err += f64::from((pred - y)?.sqr()?.sum_all()?.to_scalar::<f32>()?);
        Ok(())
    }

    fn new(k: usize, e: usize, dev: &Device) -> Result<Self> {
        Ok(Self {
            gram: Tensor::zeros((k + 1, k + 1), DType::F32, dev)?,
            cross: Tensor::zeros((k + 1, e), DType::F32, dev)?,
            y2: 0.0,
            plain_err: 0.0,
        })
    }

    /// Solves for `(W' (e, k), b (e))` and the relative training error after the fit.
    fn solve(&self, ridge: f64, dev: &Device) -> Result<(Tensor, Tensor, f64)> {
        let n = self.gram.dim(0)?;
        let e = self.cross.dim(1)?;
        let k = n - 1;
        let mut g: Vec<f64> = self
            .gram
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f64::from)
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let mean_diag = (0..k).map(|i| g[i * n + i]).sum::<f64>() / k.max(1) as f64;
        let lambda = ridge * mean_diag.max(f64::MIN_POSITIVE);
        for i in 0..k {
            g[i * n + i] += lambda;
        }
        // A tiny jitter on the bias row keeps the system definite if the ones column is
        // (numerically) a combination of the others.
        g[k * n + k] += 1e-9 * g[k * n + k].max(1.0);
        let l = cholesky(&g, n)?;
        let cross: Vec<f64> = self
            .cross
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f64::from)
            .collect();
        let theta = solve_rows(&l, n, &cross, e); // (n, e): weights (first k rows), bias
        let mut w = vec![0f32; e * k];
        let mut b = vec![0f32; e];
        for (r, row) in theta.chunks_exact(e).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                #[allow(clippy::cast_possible_truncation)]
                let v = v as f32;
                if r < k {
                    w[c * k + r] = v;
                } else {
                    b[c] = v;
                }
            }
        }
        let w = Tensor::from_vec(w, (e, k), dev)?;
        let b = Tensor::from_vec(b, e, dev)?;
        // Training error from the normal equations: ‖A1θ − Y‖² = θᵀGθ − 2θᵀC + ‖Y‖²
        // (with the unregularised G).
        let th = Tensor::cat(&[&w, &b.unsqueeze(1)?], 1)?; // (e, n)
        let quad = th
            .matmul(&self.gram)?
            .mul(&th)?
            .sum_all()?
            .to_scalar::<f32>()?;
        let lin = th.mul(&self.cross.t()?)?.sum_all()?.to_scalar::<f32>()?;
        let err = (f64::from(quad) - 2.0 * f64::from(lin) + self.y2).max(0.0);
        Ok((w, b, err / self.y2.max(f64::MIN_POSITIVE)))
    }
}

/// Lower-triangular L with L·Lᵀ = g (row-major `n × n`).
fn cholesky(g: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut l = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = g[i * n + j];
            let (ri, rj) = (&l[i * n..i * n + j], &l[j * n..j * n + j]);
            s -= ri.iter().zip(rj).map(|(a, b)| a * b).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return Err(Error::InvalidArgument(format!(
                        "least-squares refit: the Gram matrix is not positive definite at \
                         column {i} (too few calibration tokens for the kept width, or a \
                         ridge of 0)"
                    )));
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// Solves L·Lᵀ·Θ = C for `C` `(n, e)` row-major; returns Θ `(n, e)`. Row-oriented (axpy
/// over whole rows of length e), so the inner loops are contiguous.
fn solve_rows(l: &[f64], n: usize, c: &[f64], e: usize) -> Vec<f64> {
    let mut z = c.to_vec();
    for i in 0..n {
        let (done, rest) = z.split_at_mut(i * e);
        let row = &mut rest[..e];
        for j in 0..i {
            let f = l[i * n + j];
            if f != 0.0 {
                for (r, zj) in row.iter_mut().zip(&done[j * e..(j + 1) * e]) {
                    *r -= f * zj;
                }
            }
        }
        let d = l[i * n + i];
        for r in row.iter_mut() {
            *r /= d;
        }
    }
    for i in (0..n).rev() {
        let (head, tail) = z.split_at_mut((i + 1) * e);
        let row = &mut head[i * e..];
        for j in i + 1..n {
            let f = l[j * n + i];
            if f != 0.0 {
                for (r, tj) in row.iter_mut().zip(&tail[(j - i - 1) * e..(j - i) * e]) {
                    *r -= f * tj;
                }
            }
        }
        let d = l[i * n + i];
        for r in row.iter_mut() {
            *r /= d;
        }
    }
    z
}

fn f32_linear(w: &Tensor, b: Tensor) -> Result<Linear> {
    Linear::from_qtensor(
        QTensor::quantize(&w.contiguous()?, GgmlDType::F32)?,
        Some(b),
    )
}

fn dense(l: &Linear, dev: &Device) -> Result<Tensor> {
    l.weight().dequantize(dev)
}

fn head_columns(heads: &[u32], hd: usize) -> Vec<u32> {
    let hd = u32::try_from(hd).unwrap_or(u32::MAX);
    heads.iter().flat_map(|&h| h * hd..(h + 1) * hd).collect()
}

/// Refits the pruned model's `ffn_down` (and, with `opts.attention`, `attn_output`) block by
/// block against `base` on `sequences`; `map` comes from
/// [`crate::compress::prune_mapped`]. `on_block(done, total)` reports progress.
///
/// # Errors
/// [`Error::InvalidArgument`] for a map of another model or no calibration tokens; a
/// singular system; tensor errors.
pub fn refit_pruned(
    base: &Model,
    pruned: &Model,
    map: &[PrunedBlock],
    sequences: &[Vec<u32>],
    opts: RefitOptions,
    on_block: &mut dyn FnMut(usize, usize),
) -> Result<(Model, Vec<LayerRefit>)> {
    let pcfg = pruned.config().clone();
    let bcfg = base.config();
    if map.len() != pcfg.n_layer || map.iter().any(|m| m.layer >= bcfg.n_layer) {
        return Err(Error::InvalidArgument(
            "the prune map does not describe this pruned model and base".into(),
        ));
    }
    if sequences.iter().all(Vec::is_empty) {
        return Err(Error::InvalidArgument(
            "the refit needs calibration tokens".into(),
        ));
    }
    let dev = pruned.device().clone();
    let base = base.dequantized()?;
    let tracer = Tracer::new(pruned)?;
    let mut xs: Vec<Tensor> = sequences
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| tracer.embed(s))
        .collect::<Result<_>>()?;
    let mut blocks: Vec<Block> = pruned.blocks().to_vec();
    let mut report = Vec::new();
    for (i, pm) in map.iter().enumerate() {
        let ob = &base.blocks()[pm.layer];
        let (onh, onkv) = (bcfg.n_head[pm.layer], bcfg.n_head_kv[pm.layer]);
        let (pnh, pnkv) = (pcfg.n_head[i], pcfg.n_head_kv[i]);
        let e = pcfg.n_embd;
        if opts.attention && pm.q_heads.len() < onh {
            let cols = Tensor::new(head_columns(&pm.q_heads, pcfg.head_dim).as_slice(), &dev)?;
            let w_k = dense(&blocks[i].wo, &dev)?;
            let mut ne = Normal::new(cols.dim(0)?, e, &dev)?;
            for x in &xs {
                let (_, taps) = tracer.block(ob, onh, onkv, x)?;
                let y = ob.wo.forward(&taps.attn_out)?;
                let a_k = taps.attn_out.index_select(&cols, 1)?;
                ne.add(&a_k, &y, &w_k)?;
            }
            let (w, b, after) = ne.solve(opts.ridge, &dev)?;
            let before = ne.plain_err / ne.y2.max(f64::MIN_POSITIVE);
            // The ridge can cost more than it gains where plain pruning already fits well:
            // never make a projection worse on its own calibration data.
            let refitted = after < before;
            if refitted {
                blocks[i].wo = f32_linear(&w, b)?;
            }
            report.push(LayerRefit {
                block: i,
                tensor: "attn_output",
                before,
                after: if refitted { after } else { before },
                refitted,
            });
        }
        if pm.ffn_channels.len() < bcfg.n_ff[pm.layer] {
            let w_k = dense(&blocks[i].w_down, &dev)?;
            let mut ne = Normal::new(pm.ffn_channels.len(), e, &dev)?;
            for x in &xs {
                let (_, taps) = tracer.block(&blocks[i], pnh, pnkv, x)?;
                let act = (candle_nn::ops::silu(&ob.w_gate.forward(&taps.ffn_in)?)?
                    * ob.w_up.forward(&taps.ffn_in)?)?;
                let y = ob.w_down.forward(&act)?;
                ne.add(&taps.ffn_act, &y, &w_k)?;
            }
            let (w, b, after) = ne.solve(opts.ridge, &dev)?;
            let before = ne.plain_err / ne.y2.max(f64::MIN_POSITIVE);
            // The ridge can cost more than it gains where plain pruning already fits well:
            // never make a projection worse on its own calibration data.
            let refitted = after < before;
            if refitted {
                blocks[i].w_down = f32_linear(&w, b)?;
            }
            report.push(LayerRefit {
                block: i,
                tensor: "ffn_down",
                before,
                after: if refitted { after } else { before },
                refitted,
            });
        }
        for x in &mut xs {
            *x = tracer.block(&blocks[i], pnh, pnkv, x)?.0;
        }
        on_block(i + 1, map.len());
    }
    Ok((pruned.with_blocks(pcfg, blocks), report))
}

/// Mean squared difference of the final normed hidden states of `model` and `base` over
/// `sequences` (per position and channel): how far a compressed model's last layer is from
/// the original's, before the LM head.
///
/// # Errors
/// Tensor errors.
pub fn hidden_mse(base: &Model, model: &Model, sequences: &[Vec<u32>]) -> Result<f64> {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for s in sequences.iter().filter(|s| !s.is_empty()) {
        let a = crate::calibration::trace_hidden(base, s)?;
        let b = crate::calibration::trace_hidden(model, s)?;
        sum += f64::from((a - b)?.sqr()?.sum_all()?.to_scalar::<f32>()?);
        n += s.len() * model.config().n_embd;
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(sum / n.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{PrunePlan, calibrate, prune_mapped};
    use edgewise_llm::model::tiny_config;

    #[test]
    fn cholesky_solves_a_known_system() {
        // [[4, 2], [2, 3]] θ = [2, 1] → θ = [0.5, 0].
        // Two right-hand sides: [2, 1] → [0.5, 0] and [4, 2] → [1, 0], as rows of C (2, 2).
        let l = cholesky(&[4.0, 2.0, 2.0, 3.0], 2).unwrap();
        let t = solve_rows(&l, 2, &[2.0, 4.0, 1.0, 2.0], 2);
        for (got, want) in t.iter().zip([0.5, 1.0, 0.0, 0.0]) {
            assert!((got - want).abs() < 1e-12, "{t:?}");
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_err());
    }

    #[test]
    fn refit_lowers_the_error_on_held_out_sequences() {
        let dev = Device::Cpu;
        let base = Model::synthetic(&tiny_config(2), 11, &dev).unwrap();
        let seqs: Vec<Vec<u32>> = (0..12u32)
            .map(|s| (0..48).map(|t| (s * 31 + t * 7 + t * t) % 256).collect())
            .collect();
        let (train, held) = seqs.split_at(9);
        let stats = calibrate(&base, train).unwrap();
        let plan = PrunePlan {
            ffn_keep: 0.5,
            kv_group_keep: 0.5,
            ..PrunePlan::default()
        };
        let (pruned, map) = prune_mapped(&base, &stats, &plan).unwrap();
        let (refit, report) = refit_pruned(
            &base,
            &pruned,
            &map,
            train,
            RefitOptions::default(),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(report.len(), 4);
        for r in &report {
            assert!(r.refitted && r.after < r.before, "{r:?}");
        }
        let (plain, fitted) = (
            hidden_mse(&base, &pruned, held).unwrap(),
            hidden_mse(&base, &refit, held).unwrap(),
        );
        assert!(
            fitted < plain,
            "held-out hidden MSE: refit {fitted} vs plain {plain}"
        );
        // The bias is part of the model and survives a GGUF round trip.
        assert!(refit.blocks()[0].w_down.bias().is_some());
        let named = refit.named_tensors().unwrap();
        assert!(named.iter().any(|(n, _)| n == "blk.0.ffn_down.bias"));
    }
}
