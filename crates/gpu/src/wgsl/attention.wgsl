// Attention of one query head over the KV cache (grouped-query: query head h reads kv head
// h / (n_head / n_kv_head)), causal up to the current position and windowed when
// `window` > 0. One workgroup per query head; scores go through a storage scratch row so
// the context length is not bounded by workgroup memory.

struct Params {
    n_head: u32,
    n_kv_head: u32,
    head_dim: u32,
    max_ctx: u32,
    v_region: u32,
    window: u32,
    scale: f32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kv: array<u32>;
@group(0) @binding(2) var<storage, read> state: State;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let h = wg.x;
    let kvh = h / (p.n_head / p.n_kv_head);
    let half = p.head_dim / 2u;
    let end = state.pos + 1u;
    var start = 0u;
    if (p.window > 0u && end > p.window) {
        start = end - p.window;
    }
    let qb = h * p.head_dim;
    let kb = kvh * p.max_ctx * half;
    let sb = h * p.max_ctx;

    var m = -3.0e38;
    for (var t = start + tid; t < end; t += 64u) {
        var s = 0.0;
        for (var i = 0u; i < half; i++) {
            let k = unpack_f16x2(kv[kb + t * half + i]);
            s += q[qb + 2u * i] * k.x + q[qb + 2u * i + 1u] * k.y;
        }
        s *= p.scale;
        scores[sb + t] = s;
        m = max(m, s);
    }
    part[tid] = m;
    workgroupBarrier();
    for (var r = 32u; r > 0u; r >>= 1u) {
        if (tid < r) {
            part[tid] = max(part[tid], part[tid + r]);
        }
        workgroupBarrier();
    }
    let mx = part[0];
    workgroupBarrier();

    var sum = 0.0;
    for (var t = start + tid; t < end; t += 64u) {
        let e = exp(scores[sb + t] - mx);
        scores[sb + t] = e;
        sum += e;
    }
    part[tid] = sum;
    workgroupBarrier();
    for (var r = 32u; r > 0u; r >>= 1u) {
        if (tid < r) {
            part[tid] += part[tid + r];
        }
        workgroupBarrier();
    }
    let total = part[0];
    // Every thread reads every score below.
    storageBarrier();

    for (var i = tid; i < half; i += 64u) {
        var acc = vec2<f32>(0.0, 0.0);
        for (var t = start; t < end; t++) {
            acc += scores[sb + t] * unpack_f16x2(kv[p.v_region + kb + t * half + i]);
        }
        y[qb + 2u * i] = acc.x / total;
        y[qb + 2u * i + 1u] = acc.y / total;
    }
}
