// The LM head: the final RMSNorm folded into the vocabulary mat-vec.

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

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> consts: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn input(i: u32) -> f32 {
    return x[i] * consts[p.norm_off + i];
}

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let scale = inv_rms(tid, p.n_embd, p.eps);
    let r = gid.x;
    if (r >= p.rows) {
        return;
    }
    logits[r] = dot_row(p.ty, r * row_words(p.ty, p.n_embd), p.n_embd) * scale;
}
