// Feed-forward input: RMSNorm folded into the gate and up mat-vecs, and the SiLU gate
// applied in the same workgroup: act[r] = silu(gate[r]) · up[r]. A slot of the cooperative
// mat-vec (matvec.wgsl) takes rows r and r + 1 of both matrices, SLOTS * 2 outputs per
// workgroup; when gate and up differ in type each is its own pass over the input.

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

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> consts: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> act: array<f32>;
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
    let r0 = (wg.x * SLOTS + t / SPLIT) * 2u;
    let r = vec4<u32>(r0, r0 + 1u, r0, r0 + 1u);
    let rc = min(r, vec4<u32>(p.n_ff - 1u));
    let g = p.off_g + rc * row_words(p.ty_g, p.n_embd);
    let u = p.off_u + rc * row_words(p.ty_u, p.n_embd);
    var acc: vec4<f32>;
    if (p.ty_g == p.ty_u) {
        acc = rows_dot(p.ty_g, vec4<u32>(g.xy, u.xy), p.n_embd, t, true);
    } else {
        let a = rows_dot(p.ty_g, g, p.n_embd, t, true);
        // The second pass stages the same input again: count its squares once.
        sumsq = 0.0;
        let b = rows_dot(p.ty_u, u, p.n_embd, t, false);
        acc = vec4<f32>(a.xy, b.xy);
    }
    let s = slot_sum(acc, t);
    let y = s.dots * inv_rms(s.sum, p.n_embd, p.eps);
    if (t % SPLIT == 0u) {
        for (var k = 0u; k < 2u; k++) {
            if (r[k] < p.n_ff) {
                var gv = y[k];
                var uv = y[k + 2u];
                if (p.bias_g != 0xffffffffu) {
                    gv += consts[p.bias_g + r[k]];
                }
                if (p.bias_u != 0xffffffffu) {
                    uv += consts[p.bias_u + r[k]];
                }
                act[r[k]] = gv / (1.0 + exp(-gv)) * uv;
            }
        }
    }
}
