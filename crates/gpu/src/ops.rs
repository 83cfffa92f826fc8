//! Each kernel run once on host data: the tests check these against [`crate::reference`],
//! and they show how each kernel's buffers are laid out. [`crate::GpuModel`] records the
//! same kernels with buffers that stay on the GPU.

use crate::context::GpuContext;
use crate::error::{GpuError, Result};
use crate::kernels::{
    Kernels, NO_BIAS, Step, floats_of, groups_for, scratch, storage_f32, storage_u32, uniform,
    words_of,
};
use crate::layout::GpuWeights;
use crate::shaders::Shader;

/// Two f32 as one word of two f16 (the first in the low half), as `pack_f16x2` in `f16.wgsl`.
#[must_use]
pub fn pack_f16(a: f32, b: f32) -> u32 {
    u32::from(half::f16::from_f32(a).to_bits())
        | (u32::from(half::f16::from_f32(b).to_bits()) << 16)
}

/// The two f16 of a word as f32.
#[must_use]
pub fn unpack_f16(w: u32) -> (f32, f32) {
    (
        half::f16::from_bits((w & 0xffff) as u16).to_f32(),
        half::f16::from_bits((w >> 16) as u16).to_f32(),
    )
}

fn u32_of(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| GpuError::InvalidArgument(format!("{what} {n} exceeds u32")))
}

fn state(ctx: &GpuContext, pos: usize, known: usize) -> Result<wgpu::Buffer> {
    Ok(storage_u32(
        ctx,
        "state",
        &[u32_of(pos, "position")?, u32_of(known, "position")?, 0, 0],
    ))
}

async fn run(
    ctx: &GpuContext,
    kernels: &Kernels,
    step: &Step,
    out: &wgpu::Buffer,
    words: usize,
) -> Result<Vec<u8>> {
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("op") });
    kernels.record(&mut enc, &[step]);
    ctx.queue.submit([enc.finish()]);
    ctx.check(&format!("the `{}` kernel", step.shader.name()))?;
    ctx.read(out, 0, (words * 4) as u64).await
}

/// Concatenated words of several matrices and each one's word offset.
fn concat(ws: &[&GpuWeights]) -> (Vec<u32>, Vec<u32>) {
    let mut words = Vec::new();
    let mut offs = Vec::new();
    for w in ws {
        offs.push(u32::try_from(words.len()).unwrap_or(u32::MAX));
        words.extend_from_slice(&w.words);
    }
    (words, offs)
}

/// Constants `[pieces…]` and each piece's offset ([`NO_BIAS`] for an absent one).
fn consts(pieces: &[Option<&[f32]>]) -> (Vec<f32>, Vec<u32>) {
    let mut data = Vec::new();
    let mut offs = Vec::new();
    for p in pieces {
        match p {
            Some(v) => {
                offs.push(u32::try_from(data.len()).unwrap_or(u32::MAX));
                data.extend_from_slice(v);
            }
            None => offs.push(NO_BIAS),
        }
    }
    (data, offs)
}

/// Row `token` of `table`, dequantised (`embed` kernel).
///
/// # Errors
/// Device errors.
pub async fn embed(
    ctx: &GpuContext,
    k: &Kernels,
    table: &GpuWeights,
    token: u32,
) -> Result<Vec<f32>> {
    let w = storage_u32(ctx, "table", &table.words);
    let tokens = storage_u32(ctx, "tokens", &[token]);
    let st = state(ctx, 0, 1)?;
    let x = scratch(ctx, "x", table.cols);
    let p = uniform(
        ctx,
        "embed",
        &[
            table.ty.id(),
            u32_of(table.row_words(), "row")?,
            u32_of(table.cols, "cols")?,
        ],
    );
    let step = k.step(
        ctx,
        Shader::Embed,
        &[&w, &tokens, &st, &x, &p],
        groups_for(table.cols),
    );
    Ok(floats_of(&run(ctx, k, &step, &x, table.cols).await?))
}

/// `x + W v (+ b)` (`matvec_add` kernel).
///
/// # Errors
/// Device errors.
pub async fn matvec_add(
    ctx: &GpuContext,
    k: &Kernels,
    w: &GpuWeights,
    bias: Option<&[f32]>,
    v: &[f32],
    x: &[f32],
) -> Result<Vec<f32>> {
    let wb = storage_u32(ctx, "w", &w.words);
    let (c, offs) = consts(&[bias]);
    let cb = storage_f32(ctx, "consts", &c);
    let vb = storage_f32(ctx, "v", v);
    let xb = storage_f32(ctx, "x", x);
    let p = uniform(
        ctx,
        "matvec_add",
        &[
            w.ty.id(),
            0,
            u32_of(w.rows, "rows")?,
            u32_of(w.cols, "cols")?,
            offs[0],
        ],
    );
    let step = k.step(
        ctx,
        Shader::MatvecAdd,
        &[&wb, &cb, &vb, &xb, &p],
        groups_for(w.rows),
    );
    Ok(floats_of(&run(ctx, k, &step, &xb, w.rows).await?))
}

/// `silu(G h) · (U h)` with `h = rms_norm(x) · norm` (`gate_up` kernel).
///
/// # Errors
/// Device errors.
#[allow(clippy::too_many_arguments)]
pub async fn gate_up(
    ctx: &GpuContext,
    k: &Kernels,
    gate: &GpuWeights,
    up: &GpuWeights,
    biases: (Option<&[f32]>, Option<&[f32]>),
    norm: &[f32],
    eps: f32,
    x: &[f32],
) -> Result<Vec<f32>> {
    let (words, woffs) = concat(&[gate, up]);
    let wb = storage_u32(ctx, "w", &words);
    let (c, coffs) = consts(&[Some(norm), biases.0, biases.1]);
    let cb = storage_f32(ctx, "consts", &c);
    let xb = storage_f32(ctx, "x", x);
    let act = scratch(ctx, "act", gate.rows);
    let p = uniform(
        ctx,
        "gate_up",
        &[
            u32_of(x.len(), "n_embd")?,
            u32_of(gate.rows, "n_ff")?,
            gate.ty.id(),
            up.ty.id(),
            woffs[0],
            woffs[1],
            coffs[0],
            eps.to_bits(),
            coffs[1],
            coffs[2],
        ],
    );
    let step = k.step(
        ctx,
        Shader::GateUp,
        &[&wb, &cb, &xb, &act, &p],
        groups_for(gate.rows),
    );
    Ok(floats_of(&run(ctx, k, &step, &act, gate.rows).await?))
}

/// `W (rms_norm(x) · norm)` (`lm_head` kernel).
///
/// # Errors
/// Device errors.
pub async fn lm_head(
    ctx: &GpuContext,
    k: &Kernels,
    w: &GpuWeights,
    norm: &[f32],
    eps: f32,
    x: &[f32],
) -> Result<Vec<f32>> {
    let wb = storage_u32(ctx, "w", &w.words);
    let cb = storage_f32(ctx, "consts", norm);
    let xb = storage_f32(ctx, "x", x);
    let logits = scratch(ctx, "logits", w.rows);
    let p = uniform(
        ctx,
        "lm_head",
        &[
            u32_of(w.cols, "n_embd")?,
            u32_of(w.rows, "rows")?,
            w.ty.id(),
            0,
            eps.to_bits(),
        ],
    );
    let step = k.step(
        ctx,
        Shader::LmHead,
        &[&wb, &cb, &xb, &logits, &p],
        groups_for(w.rows),
    );
    Ok(floats_of(&run(ctx, k, &step, &logits, w.rows).await?))
}

/// What the `argmax` kernel writes: `(preds[pos], tokens[pos + 1])`.
///
/// # Errors
/// Device errors.
pub async fn argmax(
    ctx: &GpuContext,
    k: &Kernels,
    logits: &[f32],
    pos: usize,
    known: usize,
) -> Result<(u32, u32)> {
    let lb = storage_f32(ctx, "logits", logits);
    let tokens = storage_u32(ctx, "tokens", &vec![u32::MAX; pos + 2]);
    let st = state(ctx, pos, known)?;
    let preds = storage_u32(ctx, "preds", &vec![u32::MAX; pos + 1]);
    let p = uniform(ctx, "argmax", &[u32_of(logits.len(), "vocabulary")?]);
    let step = k.step(ctx, Shader::Argmax, &[&lb, &tokens, &st, &preds, &p], 1);
    let pr = words_of(&run(ctx, k, &step, &preds, pos + 1).await?);
    let tk = words_of(&ctx.read(&tokens, 0, ((pos + 2) * 4) as u64).await?);
    Ok((pr[pos], tk[pos + 1]))
}

/// Inputs of one `qkv` run.
#[derive(Debug, Clone, Copy)]
pub struct QkvInputs<'a> {
    /// Residual stream.
    pub x: &'a [f32],
    /// RMSNorm weight.
    pub norm: &'a [f32],
    /// RMSNorm epsilon.
    pub eps: f32,
    /// Projections `(n_head · head_dim, n_embd)`, `(n_kv · head_dim, n_embd)` twice.
    pub w: [&'a GpuWeights; 3],
    /// Optional biases.
    pub bias: [Option<&'a [f32]>; 3],
    /// Head size.
    pub head_dim: usize,
    /// NeoX rotary pairs.
    pub halves: bool,
    /// Position written.
    pub pos: usize,
    /// Cache capacity.
    pub max_ctx: usize,
    /// Rotary table ([`crate::rope::rope_table`]) covering `pos`.
    pub rope: &'a [f32],
}

/// Runs `qkv` and returns `(q, k, v)` as the kernel leaves them: q in pair order, k (pair
/// order) and v read from the cache at `pos`.
///
/// # Errors
/// Device errors.
pub async fn qkv(
    ctx: &GpuContext,
    k: &Kernels,
    i: QkvInputs<'_>,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let [wq, wk, wv] = i.w;
    let (words, woffs) = concat(&i.w);
    let wb = storage_u32(ctx, "w", &words);
    let (c, coffs) = consts(&[Some(i.norm), i.bias[0], i.bias[1], i.bias[2]]);
    let cb = storage_f32(ctx, "consts", &c);
    let xb = storage_f32(ctx, "x", i.x);
    let q = scratch(ctx, "q", wq.rows);
    let n_kv = wk.rows / i.head_dim;
    let half = i.head_dim / 2;
    let region = n_kv * i.max_ctx * half;
    let kv = scratch(ctx, "kv", 2 * region);
    let st = state(ctx, i.pos, i.pos + 1)?;
    let rope = storage_f32(ctx, "rope", i.rope);
    let p = uniform(
        ctx,
        "qkv",
        &[
            u32_of(i.x.len(), "n_embd")?,
            u32_of(i.head_dim, "head_dim")?,
            u32_of(wq.rows, "rows")?,
            u32_of(wk.rows, "rows")?,
            wq.ty.id(),
            wk.ty.id(),
            wv.ty.id(),
            u32::from(i.halves),
            woffs[0],
            woffs[1],
            woffs[2],
            coffs[0],
            coffs[1],
            coffs[2],
            coffs[3],
            u32_of(i.max_ctx, "max_ctx")?,
            u32_of(region, "cache")?,
            i.eps.to_bits(),
        ],
    );
    let threads = (wq.rows + 2 * wk.rows) / 2;
    let step = k.step(
        ctx,
        Shader::Qkv,
        &[&wb, &cb, &xb, &q, &kv, &st, &rope, &p],
        groups_for(threads),
    );
    let qv = floats_of(&run(ctx, k, &step, &q, wq.rows).await?);
    let cache = words_of(&ctx.read(&kv, 0, (2 * region * 4) as u64).await?);
    let mut kk = Vec::with_capacity(wk.rows);
    let mut vv = Vec::with_capacity(wk.rows);
    for h in 0..n_kv {
        for j in 0..half {
            let at = (h * i.max_ctx + i.pos) * half + j;
            let (a, b) = unpack_f16(cache[at]);
            kk.extend([a, b]);
            let (a, b) = unpack_f16(cache[region + at]);
            vv.extend([a, b]);
        }
    }
    Ok((qv, kk, vv))
}

/// The KV-cache words of one layer from per-position keys (pair order) and values:
/// `[kv head][position][head_dim / 2]`, values after keys.
#[must_use]
pub fn pack_cache(
    keys: &[Vec<f32>],
    values: &[Vec<f32>],
    n_kv: usize,
    head_dim: usize,
    max_ctx: usize,
) -> Vec<u32> {
    let half = head_dim / 2;
    let region = n_kv * max_ctx * half;
    let mut words = vec![0u32; 2 * region];
    for (t, (kt, vt)) in keys.iter().zip(values).enumerate() {
        for h in 0..n_kv {
            for j in 0..half {
                let at = (h * max_ctx + t) * half + j;
                let d = h * head_dim + 2 * j;
                words[at] = pack_f16(kt[d], kt[d + 1]);
                words[region + at] = pack_f16(vt[d], vt[d + 1]);
            }
        }
    }
    words
}

/// Runs `attention` for the newest of `keys.len()` cached positions.
///
/// # Errors
/// Device errors; [`GpuError::InvalidArgument`] for an empty cache.
#[allow(clippy::too_many_arguments)]
pub async fn attention(
    ctx: &GpuContext,
    k: &Kernels,
    q: &[f32],
    keys: &[Vec<f32>],
    values: &[Vec<f32>],
    n_head: usize,
    n_kv: usize,
    head_dim: usize,
    window: usize,
) -> Result<Vec<f32>> {
    if keys.is_empty() {
        return Err(GpuError::InvalidArgument(
            "attention over an empty cache".into(),
        ));
    }
    let max_ctx = keys.len() + 3;
    let region = n_kv * max_ctx * head_dim / 2;
    let qb = storage_f32(ctx, "q", q);
    let kv = storage_u32(
        ctx,
        "kv",
        &pack_cache(keys, values, n_kv, head_dim, max_ctx),
    );
    let st = state(ctx, keys.len() - 1, keys.len())?;
    let scores = scratch(ctx, "scores", n_head * max_ctx);
    let y = scratch(ctx, "y", n_head * head_dim);
    #[allow(clippy::cast_precision_loss)]
    let scale = 1.0 / (head_dim as f32).sqrt();
    let p = uniform(
        ctx,
        "attention",
        &[
            u32_of(n_head, "heads")?,
            u32_of(n_kv, "kv heads")?,
            u32_of(head_dim, "head_dim")?,
            u32_of(max_ctx, "max_ctx")?,
            u32_of(region, "cache")?,
            u32_of(window, "window")?,
            scale.to_bits(),
        ],
    );
    let step = k.step(
        ctx,
        Shader::Attention,
        &[&qb, &kv, &st, &scores, &y, &p],
        u32_of(n_head, "heads")?,
    );
    Ok(floats_of(&run(ctx, k, &step, &y, n_head * head_dim).await?))
}
