//! Each kernel run once on host data: the tests check these against [`crate::reference`],
//! and they show how each kernel's buffers are laid out. [`crate::GpuModel`] records the
//! same kernels with buffers that stay on the GPU.

use crate::context::GpuContext;
use crate::error::{GpuError, Result};
use crate::kernels::{
    Kernels, NO_BIAS, Step, cache_row_words, floats_of, groups_for, matvec_groups, qkv_groups,
    scratch, storage_f32, storage_u32, uniform, words_of,
};
use crate::layout::{GpuWeights, WeightType};
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

/// One kernel's dispatch over buffers of its own: built by a `prepare_*` function, run
/// once by the matching one-shot function, or many times to time the kernel alone.
#[derive(Debug)]
pub struct Dispatch {
    step: Step,
    /// The buffers at bindings `0..`, in order.
    buffers: Vec<wgpu::Buffer>,
}

impl Dispatch {
    fn new(
        ctx: &GpuContext,
        k: &Kernels,
        shader: Shader,
        buffers: Vec<wgpu::Buffer>,
        groups: u32,
    ) -> Result<Self> {
        Self::typed(ctx, k, shader, &[], buffers, groups)
    }

    /// A dispatch over matrices of `types` (see [`Kernels::step_typed`]).
    fn typed(
        ctx: &GpuContext,
        k: &Kernels,
        shader: Shader,
        types: &[WeightType],
        buffers: Vec<wgpu::Buffer>,
        groups: u32,
    ) -> Result<Self> {
        let refs: Vec<&wgpu::Buffer> = buffers.iter().collect();
        Ok(Self {
            step: k.step_typed(ctx, shader, types, &refs, groups)?,
            buffers,
        })
    }

    /// Records the dispatch `n` times into one compute pass, submits, and waits for the
    /// device (a read-back of four bytes).
    ///
    /// # Errors
    /// Device errors.
    pub async fn repeat(&self, ctx: &GpuContext, k: &Kernels, n: usize) -> Result<()> {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("op") });
        k.record(&mut enc, &vec![&self.step; n]);
        ctx.queue.submit([enc.finish()]);
        ctx.check(&format!("the `{}` kernel", self.step.shader.name()))?;
        ctx.read(&self.buffers[0], 0, 4).await?;
        Ok(())
    }

    /// The first `words` words of the buffer at `binding`.
    async fn read(&self, ctx: &GpuContext, binding: usize, words: usize) -> Result<Vec<u8>> {
        ctx.read(&self.buffers[binding], 0, (words * 4) as u64)
            .await
    }

    /// Runs once and reads `words` words of the buffer at `binding`.
    async fn run(
        &self,
        ctx: &GpuContext,
        k: &Kernels,
        binding: usize,
        words: usize,
    ) -> Result<Vec<u8>> {
        self.repeat(ctx, k, 1).await?;
        self.read(ctx, binding, words).await
    }
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

/// The `embed` dispatch for `token`; the row lands at binding 3.
///
/// # Errors
/// Shapes that exceed `u32`.
pub fn prepare_embed(
    ctx: &GpuContext,
    k: &Kernels,
    table: &GpuWeights,
    token: u32,
) -> Result<Dispatch> {
    let p = uniform(
        ctx,
        "embed",
        &[
            table.ty.id(),
            u32_of(table.row_words(), "row")?,
            u32_of(table.cols, "cols")?,
        ],
    );
    let buffers = vec![
        storage_u32(ctx, "table", &table.words),
        storage_u32(ctx, "tokens", &[token]),
        state(ctx, 0, 1)?,
        scratch(ctx, "x", table.cols),
        p,
    ];
    Dispatch::new(ctx, k, Shader::Embed, buffers, groups_for(table.cols))
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
    let d = prepare_embed(ctx, k, table, token)?;
    Ok(floats_of(&d.run(ctx, k, 3, table.cols).await?))
}

/// The `matvec_add` dispatch; the result lands at binding 3.
///
/// # Errors
/// Shapes that exceed `u32`.
pub fn prepare_matvec_add(
    ctx: &GpuContext,
    k: &Kernels,
    w: &GpuWeights,
    bias: Option<&[f32]>,
    v: &[f32],
    x: &[f32],
) -> Result<Dispatch> {
    let (c, offs) = consts(&[bias]);
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
    let buffers = vec![
        storage_u32(ctx, "w", &w.words),
        storage_f32(ctx, "consts", &c),
        storage_f32(ctx, "v", v),
        storage_f32(ctx, "x", x),
        p,
    ];
    Dispatch::typed(
        ctx,
        k,
        Shader::MatvecAdd,
        &[w.ty],
        buffers,
        matvec_groups(w.rows, 4),
    )
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
    let d = prepare_matvec_add(ctx, k, w, bias, v, x)?;
    Ok(floats_of(&d.run(ctx, k, 3, w.rows).await?))
}

/// The `gate_up` dispatch; the result lands at binding 3.
///
/// # Errors
/// Shapes that exceed `u32`.
#[allow(clippy::too_many_arguments)]
pub fn prepare_gate_up(
    ctx: &GpuContext,
    k: &Kernels,
    gate: &GpuWeights,
    up: &GpuWeights,
    biases: (Option<&[f32]>, Option<&[f32]>),
    norm: &[f32],
    eps: f32,
    x: &[f32],
) -> Result<Dispatch> {
    let (words, woffs) = concat(&[gate, up]);
    let (c, coffs) = consts(&[Some(norm), biases.0, biases.1]);
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
    let buffers = vec![
        storage_u32(ctx, "w", &words),
        storage_f32(ctx, "consts", &c),
        storage_f32(ctx, "x", x),
        scratch(ctx, "act", gate.rows),
        p,
    ];
    Dispatch::typed(
        ctx,
        k,
        Shader::GateUp,
        &[gate.ty, up.ty],
        buffers,
        matvec_groups(gate.rows, 2),
    )
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
    let d = prepare_gate_up(ctx, k, gate, up, biases, norm, eps, x)?;
    Ok(floats_of(&d.run(ctx, k, 3, gate.rows).await?))
}

/// The `lm_head` dispatch; the logits land at binding 3.
///
/// # Errors
/// Shapes that exceed `u32`.
pub fn prepare_lm_head(
    ctx: &GpuContext,
    k: &Kernels,
    w: &GpuWeights,
    norm: &[f32],
    eps: f32,
    x: &[f32],
) -> Result<Dispatch> {
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
    let buffers = vec![
        storage_u32(ctx, "w", &w.words),
        storage_f32(ctx, "consts", norm),
        storage_f32(ctx, "x", x),
        scratch(ctx, "logits", w.rows),
        p,
    ];
    Dispatch::typed(
        ctx,
        k,
        Shader::LmHead,
        &[w.ty],
        buffers,
        matvec_groups(w.rows, 4),
    )
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
    let d = prepare_lm_head(ctx, k, w, norm, eps, x)?;
    Ok(floats_of(&d.run(ctx, k, 3, w.rows).await?))
}

/// The `argmax` dispatch; `preds` at binding 3, `tokens` at binding 1.
///
/// # Errors
/// Shapes that exceed `u32`.
pub fn prepare_argmax(
    ctx: &GpuContext,
    k: &Kernels,
    logits: &[f32],
    pos: usize,
    known: usize,
) -> Result<Dispatch> {
    let p = uniform(ctx, "argmax", &[u32_of(logits.len(), "vocabulary")?]);
    let buffers = vec![
        storage_f32(ctx, "logits", logits),
        storage_u32(ctx, "tokens", &vec![u32::MAX; pos + 2]),
        state(ctx, pos, known)?,
        storage_u32(ctx, "preds", &vec![u32::MAX; pos + 1]),
        p,
    ];
    Dispatch::new(ctx, k, Shader::Argmax, buffers, 1)
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
    let d = prepare_argmax(ctx, k, logits, pos, known)?;
    let pr = words_of(&d.run(ctx, k, 3, pos + 1).await?);
    let tk = words_of(&d.read(ctx, 1, pos + 2).await?);
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

/// The `qkv` dispatch; q lands at binding 3, the cache at binding 4.
///
/// # Errors
/// Shapes that exceed `u32`.
pub fn prepare_qkv(ctx: &GpuContext, k: &Kernels, i: QkvInputs<'_>) -> Result<Dispatch> {
    let [wq, wk, wv] = i.w;
    let (words, woffs) = concat(&i.w);
    let (c, coffs) = consts(&[Some(i.norm), i.bias[0], i.bias[1], i.bias[2]]);
    let region = wk.rows / i.head_dim * i.max_ctx * cache_row_words(i.head_dim);
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
    let buffers = vec![
        storage_u32(ctx, "w", &words),
        storage_f32(ctx, "consts", &c),
        storage_f32(ctx, "x", i.x),
        scratch(ctx, "q", wq.rows),
        scratch(ctx, "kv", 2 * region),
        state(ctx, i.pos, i.pos + 1)?,
        storage_f32(ctx, "rope", i.rope),
        p,
    ];
    Dispatch::typed(
        ctx,
        k,
        Shader::Qkv,
        &[wq.ty, wk.ty, wv.ty],
        buffers,
        qkv_groups(wq.rows, wk.rows),
    )
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
    let [wq, wk, _] = i.w;
    let n_kv = wk.rows / i.head_dim;
    let half = i.head_dim / 2;
    let row = cache_row_words(i.head_dim);
    let region = n_kv * i.max_ctx * row;
    let d = prepare_qkv(ctx, k, i)?;
    let qv = floats_of(&d.run(ctx, k, 3, wq.rows).await?);
    let cache = words_of(&d.read(ctx, 4, 2 * region).await?);
    let mut kk = Vec::with_capacity(wk.rows);
    let mut vv = Vec::with_capacity(wk.rows);
    for h in 0..n_kv {
        for j in 0..half {
            let at = (h * i.max_ctx + i.pos) * row + j;
            let (a, b) = unpack_f16(cache[at]);
            kk.extend([a, b]);
            let (a, b) = unpack_f16(cache[region + at]);
            vv.extend([a, b]);
        }
    }
    Ok((qv, kk, vv))
}

/// The KV-cache words of one layer from per-position keys (pair order) and values:
/// `[kv head][position][cache_row_words(head_dim)]` (pairs of f16, zero-padded), values
/// after keys.
#[must_use]
pub fn pack_cache(
    keys: &[Vec<f32>],
    values: &[Vec<f32>],
    n_kv: usize,
    head_dim: usize,
    max_ctx: usize,
) -> Vec<u32> {
    let half = head_dim / 2;
    let row = cache_row_words(head_dim);
    let region = n_kv * max_ctx * row;
    let mut words = vec![0u32; 2 * region];
    for (t, (kt, vt)) in keys.iter().zip(values).enumerate() {
        for h in 0..n_kv {
            for j in 0..half {
                let at = (h * max_ctx + t) * row + j;
                let d = h * head_dim + 2 * j;
                words[at] = pack_f16(kt[d], kt[d + 1]);
                words[region + at] = pack_f16(vt[d], vt[d + 1]);
            }
        }
    }
    words
}

/// The `attention` dispatch for the newest of `keys.len()` cached positions; the result
/// lands at binding 4.
///
/// # Errors
/// [`GpuError::InvalidArgument`] for an empty cache; shapes that exceed `u32`.
#[allow(clippy::too_many_arguments)]
pub fn prepare_attention(
    ctx: &GpuContext,
    k: &Kernels,
    q: &[f32],
    keys: &[Vec<f32>],
    values: &[Vec<f32>],
    n_head: usize,
    n_kv: usize,
    head_dim: usize,
    window: usize,
) -> Result<Dispatch> {
    if keys.is_empty() {
        return Err(GpuError::InvalidArgument(
            "attention over an empty cache".into(),
        ));
    }
    let max_ctx = keys.len() + 3;
    let region = n_kv * max_ctx * cache_row_words(head_dim);
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
    let buffers = vec![
        storage_f32(ctx, "q", q),
        storage_u32(
            ctx,
            "kv",
            &pack_cache(keys, values, n_kv, head_dim, max_ctx),
        ),
        state(ctx, keys.len() - 1, keys.len())?,
        scratch(ctx, "scores", n_head * max_ctx),
        scratch(ctx, "y", n_head * head_dim),
        p,
    ];
    Dispatch::new(ctx, k, Shader::Attention, buffers, u32_of(n_head, "heads")?)
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
    let d = prepare_attention(ctx, k, q, keys, values, n_head, n_kv, head_dim, window)?;
    Ok(floats_of(&d.run(ctx, k, 4, n_head * head_dim).await?))
}
