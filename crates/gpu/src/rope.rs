//! The rotary tables the `qkv` kernel reads, computed on the host exactly as the CPU engine
//! computes its own (f32 `theta^(-2i/d)`, f32 `pos · freq`, f32 cos and sin): GPU `cos` of
//! large angles is not accurate enough to compute them in the shader.

/// `(cos, sin)` interleaved for positions `0..n_pos` and pairs `0..head_dim / 2`: entry
/// `2 (pos · head_dim / 2 + i)` is the cosine.
#[must_use]
pub fn rope_table(head_dim: usize, n_pos: usize, theta: f32) -> Vec<f32> {
    #[allow(clippy::cast_precision_loss)]
    let inv: Vec<f32> = (0..head_dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32))
        .collect();
    let mut out = Vec::with_capacity(n_pos * head_dim);
    for p in 0..n_pos {
        for &f in &inv {
            #[allow(clippy::cast_precision_loss)]
            let a = p as f32 * f;
            out.push(a.cos());
            out.push(a.sin());
        }
    }
    out
}

/// The `(cos, sin)` pairs of one position of `table`.
#[must_use]
pub fn at(table: &[f32], head_dim: usize, pos: usize) -> Vec<(f32, f32)> {
    let half = head_dim / 2;
    table[2 * pos * half..2 * (pos + 1) * half]
        .chunks_exact(2)
        .map(|c| (c[0], c[1]))
        .collect()
}
