// Attention input: RMSNorm folded into the Q/K/V mat-vecs, RoPE on q and k, and the write
// of this position's k and v into the f16 KV cache. One thread per pair of rows rotated
// together (q, k) or per pair of adjacent rows (v), so a thread owns whole cache words.
//
// Queries and keys are stored in pair order (the two rotated dimensions next to each
// other): attention only takes dot products between them, which the order does not change.
// The cache is [kv head][position][head_dim / 2] words of two f16; values follow the keys
// at word `v_region`.

struct Params {
    n_embd: u32,
    head_dim: u32,
    q_rows: u32,
    kv_rows: u32,
    ty_q: u32,
    ty_k: u32,
    ty_v: u32,
    // 1: NeoX pairs (i, i + head_dim / 2); 0: adjacent pairs (2i, 2i + 1).
    halves: u32,
    off_q: u32,
    off_k: u32,
    off_v: u32,
    norm_off: u32,
    bias_q: u32,
    bias_k: u32,
    bias_v: u32,
    max_ctx: u32,
    v_region: u32,
    eps: f32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> consts: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> q: array<f32>;
@group(0) @binding(4) var<storage, read_write> kv: array<u32>;
@group(0) @binding(5) var<storage, read> state: State;
@group(0) @binding(6) var<storage, read> rope: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const NO_BIAS: u32 = 0xffffffffu;

fn input(i: u32) -> f32 {
    return x[i] * consts[p.norm_off + i];
}

// Row r of one projection of the normalised input (`scale` is 1 / rms).
fn project(ty: u32, off: u32, bias: u32, r: u32, scale: f32) -> f32 {
    var y = dot_row(ty, off + r * row_words(ty, p.n_embd), p.n_embd) * scale;
    if (bias != NO_BIAS) {
        y += consts[bias + r];
    }
    return y;
}

@compute @workgroup_size(64)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let scale = inv_rms(tid, p.n_embd, p.eps);
    let half = p.head_dim / 2u;
    let qp = p.q_rows / 2u;
    let kp = p.kv_rows / 2u;
    let t = gid.x;
    let pos = state.pos;
    if (t < qp + kp) {
        let is_q = t < qp;
        let u = select(t - qp, t, is_q);
        let head = u / half;
        let i = u % half;
        let a = head * p.head_dim + select(2u * i, i, p.halves == 1u);
        let b = a + select(1u, half, p.halves == 1u);
        var ya: f32;
        var yb: f32;
        if (is_q) {
            ya = project(p.ty_q, p.off_q, p.bias_q, a, scale);
            yb = project(p.ty_q, p.off_q, p.bias_q, b, scale);
        } else {
            ya = project(p.ty_k, p.off_k, p.bias_k, a, scale);
            yb = project(p.ty_k, p.off_k, p.bias_k, b, scale);
        }
        let r = 2u * (pos * half + i);
        let c = rope[r];
        let s = rope[r + 1u];
        let ra = ya * c - yb * s;
        let rb = ya * s + yb * c;
        if (is_q) {
            q[head * p.head_dim + 2u * i] = ra;
            q[head * p.head_dim + 2u * i + 1u] = rb;
        } else {
            kv[(head * p.max_ctx + pos) * half + i] = pack_f16x2(vec2<f32>(ra, rb));
        }
    } else if (t < qp + 2u * kp) {
        let u = t - qp - kp;
        let head = u / half;
        let i = u % half;
        let va = project(p.ty_v, p.off_v, p.bias_v, 2u * u, scale);
        let vb = project(p.ty_v, p.off_v, p.bias_v, 2u * u + 1u, scale);
        kv[p.v_region + (head * p.max_ctx + pos) * half + i] = pack_f16x2(vec2<f32>(va, vb));
    }
}
