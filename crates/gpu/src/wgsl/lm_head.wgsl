// The LM head: the final RMSNorm folded into the vocabulary mat-vec. Four rows per slot of
// the cooperative mat-vec (matvec.wgsl), SLOTS * 4 rows per workgroup.

struct Params {
    n_embd: u32,
    rows: u32,
    ty: u32,
    norm_off: u32,
    eps: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> consts: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn input(i: u32) -> vec2<f32> {
    let v = x[i];
    return vec2<f32>(v * consts[p.norm_off + i], v * v);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let r = (wg.x * SLOTS + t / SPLIT) * 4u + vec4<u32>(0u, 1u, 2u, 3u);
    let base = min(r, vec4<u32>(p.rows - 1u)) * row_words(p.ty, p.n_embd);
    let s = slot_sum(rows_dot(p.ty, base, p.n_embd, t, true), t);
    let y = s.dots * inv_rms(s.sum, p.n_embd, p.eps);
    if (t % SPLIT == 0u) {
        for (var k = 0u; k < 4u; k++) {
            if (r[k] < p.rows) {
                logits[r[k]] = y[k];
            }
        }
    }
}
