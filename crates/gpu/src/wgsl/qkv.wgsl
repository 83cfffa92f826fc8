// Attention input: RMSNorm folded into the Q/K/V mat-vecs, RoPE on q and k, and the write
// of this position's k and v into the f16 KV cache. A slot of the cooperative mat-vec
// (matvec.wgsl) takes two pairs of rows of one matrix: pairs rotated together (q, k) or
// pairs of adjacent rows (v), so its lane 0 owns whole cache words.
//
// Queries and keys are stored in pair order (the two rotated dimensions next to each
// other): attention only takes dot products between them, which the order does not change.
// The cache is [kv head][position][cache row] words of two f16, a cache row being
// head_dim / 2 words padded to a multiple of 4; values follow the keys at word `v_region`.

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

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> consts: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> q: array<f32>;
@group(0) @binding(4) var<storage, read_write> kv: array<u32>;
@group(0) @binding(5) var<storage, read> state: State;
@group(0) @binding(6) var<storage, read> rope: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const NO_BIAS: u32 = 0xffffffffu;

fn input(i: u32) -> vec2<f32> {
    let v = x[i];
    return vec2<f32>(v * consts[p.norm_off + i], v * v);
}

// The two rows of pair u: rotated together for q and k (m < 2), adjacent for v.
fn pair_rows(m: u32, u: u32) -> vec2<u32> {
    if (m == 2u) {
        return vec2<u32>(2u * u, 2u * u + 1u);
    }
    let half = p.head_dim / 2u;
    let i = u % half;
    let a = (u / half) * p.head_dim + select(2u * i, i, p.halves == 1u);
    return vec2<u32>(a, a + select(1u, half, p.halves == 1u));
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let half = p.head_dim / 2u;
    let row = (half + 3u) / 4u * 4u;
    let qp = p.q_rows / 2u;
    let kp = p.kv_rows / 2u;
    // Slots: two q pairs each, then two k pairs, then two v pairs.
    let sq = (qp + 1u) / 2u;
    let sk = (kp + 1u) / 2u;
    let s = wg.x * SLOTS + t / SPLIT;
    var m = 2u;
    var u0 = 2u * (s - sq - sk);
    if (s < sq) {
        m = 0u;
        u0 = 2u * s;
    } else if (s < sq + sk) {
        m = 1u;
        u0 = 2u * (s - sq);
    }
    let np = select(kp, qp, m == 0u);
    let ty = select(select(p.ty_v, p.ty_k, m == 1u), p.ty_q, m == 0u);
    let off = select(select(p.off_v, p.off_k, m == 1u), p.off_q, m == 0u);
    let bias = select(select(p.bias_v, p.bias_k, m == 1u), p.bias_q, m == 0u);
    // A pair past the end computes the last pair again and is not written.
    let ra = pair_rows(m, min(u0, np - 1u));
    let rb = pair_rows(m, min(u0 + 1u, np - 1u));
    let rows = vec4<u32>(ra, rb);
    let sums = slot_sum(rows_dot(ty, off + rows * row_words(ty, p.n_embd), p.n_embd, t, true), t);
    var y = sums.dots * inv_rms(sums.sum, p.n_embd, p.eps);
    if (t % SPLIT != 0u) {
        return;
    }
    if (bias != NO_BIAS) {
        y += vec4<f32>(consts[bias + rows.x], consts[bias + rows.y], consts[bias + rows.z], consts[bias + rows.w]);
    }
    let pos = state.pos;
    for (var j = 0u; j < 2u; j++) {
        let u = u0 + j;
        if (u >= np) {
            break;
        }
        let head = u / half;
        let i = u % half;
        let ya = y[2u * j];
        let yb = y[2u * j + 1u];
        if (m == 2u) {
            kv[p.v_region + (head * p.max_ctx + pos) * row + i] = pack_f16x2(vec2<f32>(ya, yb));
            continue;
        }
        let r = 2u * (pos * half + i);
        let c = rope[r];
        let sn = rope[r + 1u];
        let ra = ya * c - yb * sn;
        let rb = ya * sn + yb * c;
        if (m == 0u) {
            q[head * p.head_dim + 2u * i] = ra;
            q[head * p.head_dim + 2u * i + 1u] = rb;
        } else {
            kv[(head * p.max_ctx + pos) * row + i] = pack_f16x2(vec2<f32>(ra, rb));
        }
    }
}
