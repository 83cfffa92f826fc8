// Output projections with the residual add folded in: x[r] += (W v)[r] + b[r].

struct Params {
    ty: u32,
    off: u32,
    rows: u32,
    cols: u32,
    bias: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> consts: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn input(i: u32) -> f32 {
    return v[i];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) {
        return;
    }
    var y = dot_row(p.ty, p.off + r * row_words(p.ty, p.cols), p.cols);
    if (p.bias != 0xffffffffu) {
        y += consts[p.bias + r];
    }
    x[r] += y;
}
