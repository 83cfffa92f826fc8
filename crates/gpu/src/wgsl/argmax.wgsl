// Greedy choice on the GPU, so only a token id comes back: preds[pos] = argmax(logits)
// (the lowest index among equal maxima), and when the host supplied no token for the next
// position the choice becomes it.

struct Params {
    n: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> state: State;
@group(0) @binding(3) var<storage, read_write> preds: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

const NONE: u32 = 0xffffffffu;

var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_i: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) tid: u32) {
    var bv = -3.4e38;
    var bi = NONE;
    for (var i = tid; i < p.n; i += 256u) {
        let v = logits[i];
        if (v > bv) {
            bv = v;
            bi = i;
        }
    }
    best_v[tid] = bv;
    best_i[tid] = bi;
    workgroupBarrier();
    for (var r = 128u; r > 0u; r >>= 1u) {
        if (tid < r) {
            let ov = best_v[tid + r];
            let oi = best_i[tid + r];
            if (ov > best_v[tid] || (ov == best_v[tid] && oi < best_i[tid])) {
                best_v[tid] = ov;
                best_i[tid] = oi;
            }
        }
        workgroupBarrier();
    }
    if (tid == 0u) {
        // Every logit -inf or NaN: token 0 rather than an id outside the vocabulary.
        let id = select(best_i[0], 0u, best_i[0] == NONE);
        preds[state.pos] = id;
        if (state.pos + 1u >= state.known) {
            tokens[state.pos + 1u] = id;
        }
    }
}
