// Token embedding: x = row tokens[pos] of the embedding table, dequantised.

struct Params {
    ty: u32,
    row_words: u32,
    n_embd: u32,
    pad: u32,
}

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> state: State;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.n_embd) {
        return;
    }
    x[i] = deq(p.ty, tokens[state.pos] * p.row_words, p.n_embd, i);
}
