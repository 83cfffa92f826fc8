//! A CPU reference of every kernel: the test oracle. Plain f32 loops, written for clarity;
//! where the GPU stores f16 (the KV cache) the reference rounds the same values to f16.

use crate::layout::{BLOCK, GpuWeights, WeightType};

/// All weights of `w` as f32, row-major, read from the re-laid words (mirrors `deq` in
/// `dequant.wgsl`; its own check is against candle's dequantisation of the GGUF bytes).
#[must_use]
pub fn dequantize(w: &GpuWeights) -> Vec<f32> {
    let rw = w.row_words();
    let mut out = Vec::with_capacity(w.rows * w.cols);
    for r in 0..w.rows {
        let row = &w.words[r * rw..(r + 1) * rw];
        for i in 0..w.cols {
            out.push(deq(w.ty, row, w.cols, i));
        }
    }
    out
}

fn f16_lo(word: u32) -> f32 {
    half::f16::from_bits((word & 0xffff) as u16).to_f32()
}

fn f16_hi(word: u32) -> f32 {
    half::f16::from_bits((word >> 16) as u16).to_f32()
}

fn deq(ty: WeightType, row: &[u32], cols: usize, i: usize) -> f32 {
    let (blk, j) = (i / BLOCK, i % BLOCK);
    let quants = &row[ty.scale_words(cols)..];
    match ty {
        WeightType::F32 => f32::from_bits(row[i]),
        WeightType::F16 => {
            let word = row[i / 2];
            if i.is_multiple_of(2) {
                f16_lo(word)
            } else {
                f16_hi(word)
            }
        }
        WeightType::Q8_0 => {
            let byte = quants[blk * 8 + j / 4].to_le_bytes()[j % 4];
            f16_lo(row[blk]) * f32::from(byte.cast_signed())
        }
        WeightType::Q4_0 | WeightType::Q4_1 => {
            let byte = quants[blk * 4 + (j % 16) / 4].to_le_bytes()[j % 4];
            let q = f32::from(if j < 16 { byte & 0xf } else { byte >> 4 });
            if ty == WeightType::Q4_0 {
                f16_lo(row[blk]) * (q - 8.0)
            } else {
                f16_lo(row[blk]) * q + f16_hi(row[blk])
            }
        }
    }
}

/// `x / sqrt(mean(x²) + eps) · g`.
#[must_use]
pub fn rms_norm(x: &[f32], g: &[f32], eps: f32) -> Vec<f32> {
    #[allow(clippy::cast_precision_loss)]
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (ms + eps).sqrt();
    x.iter().zip(g).map(|(v, g)| v * inv * g).collect()
}

/// `W x` for `w` row-major `(rows, x.len())`.
#[must_use]
pub fn matvec(w: &[f32], rows: usize, x: &[f32]) -> Vec<f32> {
    let cols = x.len();
    (0..rows)
        .map(|r| {
            w[r * cols..(r + 1) * cols]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum()
        })
        .collect()
}

fn add_bias(mut y: Vec<f32>, bias: Option<&[f32]>) -> Vec<f32> {
    if let Some(b) = bias {
        y.iter_mut().zip(b).for_each(|(y, b)| *y += b);
    }
    y
}

/// Row `token` of the embedding table `(vocab, cols)`.
#[must_use]
pub fn embed(table: &[f32], cols: usize, token: usize) -> Vec<f32> {
    table[token * cols..(token + 1) * cols].to_vec()
}

/// The two dimensions of a head rotated together by pair `i`.
#[must_use]
pub fn rope_pair(head_dim: usize, halves: bool, i: usize) -> (usize, usize) {
    if halves {
        (i, i + head_dim / 2)
    } else {
        (2 * i, 2 * i + 1)
    }
}

/// Rotates every head of `v` at one position and returns it in pair order (the two
/// rotated dimensions of each pair next to each other). `cs` holds `(cos, sin)` for each
/// pair of this position.
#[must_use]
pub fn rope(v: &[f32], head_dim: usize, halves: bool, cs: &[(f32, f32)]) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for (h, head) in v.chunks_exact(head_dim).enumerate() {
        for (i, &(c, s)) in cs.iter().enumerate() {
            let (a, b) = rope_pair(head_dim, halves, i);
            out[h * head_dim + 2 * i] = head[a] * c - head[b] * s;
            out[h * head_dim + 2 * i + 1] = head[a] * s + head[b] * c;
        }
    }
    out
}

/// Rounds to f16 and back, as the KV cache stores.
#[must_use]
pub fn f16_round(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

/// One dense projection of the `qkv` kernel: weights row-major and an optional bias.
#[derive(Debug, Clone, Copy)]
pub struct Proj<'a> {
    /// `(rows, cols)` row-major.
    pub w: &'a [f32],
    /// Output rows.
    pub rows: usize,
    /// Optional bias of `rows`.
    pub bias: Option<&'a [f32]>,
}

/// What `qkv` produces for one position.
#[derive(Debug, Clone, PartialEq)]
pub struct QkvOut {
    /// Rotated queries in pair order.
    pub q: Vec<f32>,
    /// Rotated keys in pair order, rounded to f16.
    pub k: Vec<f32>,
    /// Values, rounded to f16.
    pub v: Vec<f32>,
}

/// The `qkv` kernel: RMSNorm, the three projections, RoPE of q and k, f16 for the cache.
#[must_use]
#[allow(clippy::too_many_arguments)]
pub fn qkv(
    x: &[f32],
    norm: &[f32],
    eps: f32,
    wq: Proj<'_>,
    wk: Proj<'_>,
    wv: Proj<'_>,
    head_dim: usize,
    halves: bool,
    cs: &[(f32, f32)],
) -> QkvOut {
    let h = rms_norm(x, norm, eps);
    let proj = |p: Proj<'_>| add_bias(matvec(p.w, p.rows, &h), p.bias);
    QkvOut {
        q: rope(&proj(wq), head_dim, halves, cs),
        k: f16_round(&rope(&proj(wk), head_dim, halves, cs)),
        v: f16_round(&proj(wv)),
    }
}

/// The `attention` kernel for the newest position: `q` `(n_head · head_dim)` in pair
/// order; `keys[t]` and `values[t]` `(n_kv_head · head_dim)` for every cached position
/// (keys in pair order); `window` 0 for none. Returns `(n_head · head_dim)`.
#[must_use]
pub fn attention(
    q: &[f32],
    keys: &[Vec<f32>],
    values: &[Vec<f32>],
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    window: usize,
) -> Vec<f32> {
    let end = keys.len();
    let start = if window > 0 && end > window {
        end - window
    } else {
        0
    };
    #[allow(clippy::cast_precision_loss)]
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut y = vec![0.0; n_head * head_dim];
    for h in 0..n_head {
        let kvh = h / (n_head / n_kv_head);
        let qh = &q[h * head_dim..(h + 1) * head_dim];
        let kv = kvh * head_dim..(kvh + 1) * head_dim;
        let scores: Vec<f32> = (start..end)
            .map(|t| {
                qh.iter()
                    .zip(&keys[t][kv.clone()])
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
                    * scale
            })
            .collect();
        let mx = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = scores.iter().map(|s| (s - mx).exp()).collect();
        let total: f32 = e.iter().sum();
        for (j, t) in (start..end).enumerate() {
            for d in 0..head_dim {
                y[h * head_dim + d] += e[j] * values[t][kvh * head_dim + d] / total;
            }
        }
    }
    y
}

/// The `matvec_add` kernel: `x + W v (+ b)`.
#[must_use]
pub fn matvec_add(x: &[f32], w: &[f32], v: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let y = add_bias(matvec(w, x.len(), v), bias);
    x.iter().zip(y).map(|(a, b)| a + b).collect()
}

/// `silu(g) · u`.
#[must_use]
pub fn silu_gate(g: &[f32], u: &[f32]) -> Vec<f32> {
    g.iter()
        .zip(u)
        .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
        .collect()
}

/// The `gate_up` kernel: RMSNorm, gate and up projections, SiLU gate.
#[must_use]
pub fn gate_up(x: &[f32], norm: &[f32], eps: f32, gate: Proj<'_>, up: Proj<'_>) -> Vec<f32> {
    let h = rms_norm(x, norm, eps);
    let g = add_bias(matvec(gate.w, gate.rows, &h), gate.bias);
    let u = add_bias(matvec(up.w, up.rows, &h), up.bias);
    silu_gate(&g, &u)
}

/// The `lm_head` kernel: final RMSNorm and the vocabulary projection.
#[must_use]
pub fn lm_head(x: &[f32], norm: &[f32], eps: f32, w: &[f32], rows: usize) -> Vec<f32> {
    matvec(w, rows, &rms_norm(x, norm, eps))
}

/// The `argmax` kernel: the lowest index of the largest value (0 when none is finite or
/// larger than -3.4e38).
#[must_use]
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = (-3.4e38_f32, None);
    for (i, &v) in logits.iter().enumerate() {
        if v > best.0 {
            best = (v, Some(i));
        }
    }
    best.1.map_or(0, |i| u32::try_from(i).unwrap_or(u32::MAX))
}
