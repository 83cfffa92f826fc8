// Attention of one query head over the KV cache (grouped-query: query head h reads kv head
// h / (n_head / n_kv_head)), causal up to the current position and windowed when
// `window` > 0. One workgroup per query head; scores go through a storage scratch row so
// the context length is not bounded by workgroup memory. The cache is read 8 dimensions
// (one 16-byte load of four f16 pairs) at a time: a cache row is head_dim / 2 words padded
// to a multiple of 4. Scores: one thread per position, against the query staged in
// workgroup memory. Output: each thread sums the values of one 8-dimension group over one
// slice of the positions, and the slices are added in order.

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
@group(0) @binding(1) var<storage, read> kv: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> state: State;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> part: array<f32, 64>;
// The query, four dimensions an entry (head_dim ≤ 256).
var<workgroup> qs: array<vec4<f32>, 64>;
// Each thread's sums for its 8 dimensions.
var<workgroup> vpart: array<vec4<f32>, 128>;

// Dimensions 0-3 and 4-7 of a 16-byte cache load.
fn lo4(v: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(unpack_f16x2(v.x), unpack_f16x2(v.y));
}

fn hi4(v: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(unpack_f16x2(v.z), unpack_f16x2(v.w));
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let h = wg.x;
    let kvh = h / (p.n_head / p.n_kv_head);
    // 16-byte loads per cache row.
    let g4 = (p.head_dim / 2u + 3u) / 4u;
    let end = state.pos + 1u;
    var start = 0u;
    if (p.window > 0u && end > p.window) {
        start = end - p.window;
    }
    let qb = h * p.head_dim;
    let kb = kvh * p.max_ctx * g4;
    let vb = p.v_region / 4u + kb;
    let sb = h * p.max_ctx;

    for (var j = tid; j < 2u * g4; j += 64u) {
        var v = vec4<f32>(0.0);
        for (var k = 0u; k < 4u; k++) {
            if (4u * j + k < p.head_dim) {
                v[k] = q[qb + 4u * j + k];
            }
        }
        qs[j] = v;
    }
    workgroupBarrier();

    var m = -3.0e38;
    for (var t = start + tid; t < end; t += 64u) {
        var s = 0.0;
        for (var j = 0u; j < g4; j++) {
            let k = kv[kb + t * g4 + j];
            s += dot(lo4(k), qs[2u * j]) + dot(hi4(k), qs[2u * j + 1u]);
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
    // Every thread reads scores the others wrote below.
    storageBarrier();

    // Thread tid: dimensions 8g .. 8g + 7 over positions start + slice, + slices, …
    let slices = 64u / g4;
    let g = tid % g4;
    let slice = tid / g4;
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    if (slice < slices) {
        for (var t = start + slice; t < end; t += slices) {
            let e = scores[sb + t];
            let v = kv[vb + t * g4 + g];
            a += e * lo4(v);
            b += e * hi4(v);
        }
    }
    vpart[2u * tid] = a;
    vpart[2u * tid + 1u] = b;
    workgroupBarrier();
    if (tid < g4) {
        var sa = vec4<f32>(0.0);
        var sbv = vec4<f32>(0.0);
        for (var k = 0u; k < slices; k++) {
            sa += vpart[2u * (k * g4 + tid)];
            sbv += vpart[2u * (k * g4 + tid) + 1u];
        }
        for (var c = 0u; c < 4u; c++) {
            let d = 8u * tid + c;
            if (d < p.head_dim) {
                y[qb + d] = sa[c] / total;
            }
            if (d + 4u < p.head_dim) {
                y[qb + d + 4u] = sbv[c] / total;
            }
        }
    }
}
