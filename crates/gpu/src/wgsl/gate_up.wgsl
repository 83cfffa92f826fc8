// Feed-forward input: RMSNorm folded into the gate and up mat-vecs, and the SiLU gate
// applied in the same thread: act[r] = silu(gate[r]) · up[r].

struct Params {
    n_embd: u32,
    n_ff: u32,
    ty_g: u32,
    ty_u: u32,
    off_g: u32,
    off_u: u32,
    norm_off: u32,
    eps: f32,
    bias_g: u32,
    bias_u: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> consts: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> act: array<f32>;
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
    if (r >= p.n_ff) {
        return;
    }
    var g = dot_row(p.ty_g, p.off_g + r * row_words(p.ty_g, p.n_embd), p.n_embd) * scale;
    var u = dot_row(p.ty_u, p.off_u + r * row_words(p.ty_u, p.n_embd), p.n_embd) * scale;
    if (p.bias_g != 0xffffffffu) {
        g += consts[p.bias_g + r];
    }
    if (p.bias_u != 0xffffffffu) {
        u += consts[p.bias_u + r];
    }
    act[r] = g / (1.0 + exp(-g)) * u;
}
