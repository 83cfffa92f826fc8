// Output projections with the residual add folded in: x[r] += (W v)[r] + b[r]. Four rows
// per slot of the cooperative mat-vec (matvec.wgsl), SLOTS * 4 rows per workgroup.

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

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> consts: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn input(i: u32) -> vec2<f32> {
    return vec2<f32>(v[i], 0.0);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let r = (wg.x * SLOTS + t / SPLIT) * 4u + vec4<u32>(0u, 1u, 2u, 3u);
    // Rows past the end compute row rows - 1 again and are not written.
    let base = p.off + min(r, vec4<u32>(p.rows - 1u)) * row_words(p.ty, p.cols);
    let y = slot_sum(rows_dot(p.ty, base, p.cols, t, true), t).dots;
    if (t % SPLIT == 0u) {
        for (var k = 0u; k < 4u; k++) {
            if (r[k] < p.rows) {
                var b = 0.0;
                if (p.bias != 0xffffffffu) {
                    b = consts[p.bias + r[k]];
                }
                x[r[k]] += y[k] + b;
            }
        }
    }
}
