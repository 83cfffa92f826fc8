// The cooperative mat-vec shared by qkv, gate_up, matvec_add and lm_head: a workgroup of
// WG threads works on SLOTS groups of four rows; the SPLIT neighbouring threads of a slot
// share its rows, thread `lane` taking words lane, lane + SPLIT, … of each row, so
// neighbouring threads read neighbouring words. The input vector is staged in workgroup
// memory a tile at a time (each value read from storage once per workgroup, not once per
// row), the four rows of a slot share each staged value they read, and the SPLIT partial
// sums of a row are added in lane order at the end. Weights are read as stored: no f32
// copy of a weight ever exists.
//
// Needs `w: array<u32>`, dequant.wgsl, and from the including kernel
// `fn input(i: u32) -> vec2<f32>`: input i (as the mat-vec multiplies it) and what it
// adds to `sumsq` (x² for a folded RMSNorm, else 0). `WG` and `SPLIT` come from
// shaders.rs (`MATVEC_WG`, `MATVEC_SPLIT`), which sizes the dispatches.

const SLOTS: u32 = WG / SPLIT;
// Input values staged at a time (a multiple of 32, so a tile holds whole blocks).
const TILE: u32 = 1024u;

var<workgroup> xs: array<vec4<f32>, TILE / 4u>;
var<workgroup> part: array<vec4<f32>, WG>;
var<workgroup> sq_part: array<f32, WG>;

// This thread's share of Σ input(i).y over every staged tile.
var<private> sumsq: f32;

// Stages inputs c0 .. c0 + n (n ≤ TILE) into `xs`, zero-padded to whole vec4s.
fn stage(c0: u32, n: u32, t: u32) {
    workgroupBarrier();
    for (var j = t; j < (n + 3u) / 4u; j += WG) {
        var v = vec4<f32>(0.0);
        for (var k = 0u; k < 4u; k++) {
            if (4u * j + k < n) {
                let a = input(c0 + 4u * j + k);
                v[k] = a.x;
                sumsq += a.y;
            }
        }
        xs[j] = v;
    }
    workgroupBarrier();
}

// Staged input i of the tile.
fn xat(i: u32) -> f32 {
    return xs[i / 4u][i % 4u];
}

// The four values of a Q8_0 word, as signed bytes.
fn q8x4(q: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// Σ q·x over the 8 weights of one Q4 word (low nibbles against xlo, high against xhi).
fn q4dot(q: u32, xlo: vec4<f32>, xhi: vec4<f32>) -> f32 {
    let v = vec4<u32>(q);
    let lo = vec4<f32>((v >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u));
    let hi = vec4<f32>((v >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u));
    return dot(lo, xlo) + dot(hi, xhi);
}

// One Q4 word's contribution: the block's header `h` (f16 scale, f16 minimum for Q4_1),
// Σ q·x of the word and Σ x of its inputs.
fn q4term(ty: u32, h: u32, sq: f32, sx: f32) -> f32 {
    let dm = unpack_f16x2(h);
    return select(dm.x * sq + dm.y * sx, dm.x * (sq - 8.0 * sx), ty == 2u);
}

// This thread's partial dot products of the staged tile (n inputs from column c0) with
// four rows of type `ty` whose tile words start at `b`.
fn tile_dot(ty: u32, b: vec4<u32>, n: u32, lane: u32) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    switch ty {
        case 0u: {
            for (var u = lane; u < n; u += SPLIT) {
                let wv = bitcast<vec4<f32>>(vec4<u32>(w[b.x + u], w[b.y + u], w[b.z + u], w[b.w + u]));
                acc += wv * xat(u);
            }
        }
        case 1u: {
            for (var u = lane; u < n / 2u; u += SPLIT) {
                let x2 = vec2<f32>(xat(2u * u), xat(2u * u + 1u));
                acc += vec4<f32>(
                    dot(unpack_f16x2(w[b.x + u]), x2),
                    dot(unpack_f16x2(w[b.y + u]), x2),
                    dot(unpack_f16x2(w[b.z + u]), x2),
                    dot(unpack_f16x2(w[b.w + u]), x2),
                );
            }
        }
        case 8u: {
            // Word u holds inputs 4u .. 4u + 3: word u % 8 of block u / 8.
            for (var u = lane; u < n / 4u; u += SPLIT) {
                let xv = xs[u];
                let o = (u / 8u) * 9u;
                let d = u % 8u + 1u;
                acc += vec4<f32>(
                    f16_to_f32(w[b.x + o] & 0xffffu) * dot(q8x4(w[b.x + o + d]), xv),
                    f16_to_f32(w[b.y + o] & 0xffffu) * dot(q8x4(w[b.y + o + d]), xv),
                    f16_to_f32(w[b.z + o] & 0xffffu) * dot(q8x4(w[b.z + o + d]), xv),
                    f16_to_f32(w[b.w + o] & 0xffffu) * dot(q8x4(w[b.w + o + d]), xv),
                );
            }
        }
        default: {
            // Word k of a block holds inputs 4k .. 4k + 3 (low nibbles) and 16 + 4k ..
            // 19 + 4k (high nibbles).
            for (var u = lane; u < n / 8u; u += SPLIT) {
                let blk = u / 4u;
                let k = u % 4u;
                let xlo = xs[blk * 8u + k];
                let xhi = xs[blk * 8u + 4u + k];
                let sx = dot(xlo + xhi, vec4<f32>(1.0));
                let o = blk * 5u;
                acc += vec4<f32>(
                    q4term(ty, w[b.x + o], q4dot(w[b.x + o + 1u + k], xlo, xhi), sx),
                    q4term(ty, w[b.y + o], q4dot(w[b.y + o + 1u + k], xlo, xhi), sx),
                    q4term(ty, w[b.z + o], q4dot(w[b.z + o + 1u + k], xlo, xhi), sx),
                    q4term(ty, w[b.w + o], q4dot(w[b.w + o + 1u + k], xlo, xhi), sx),
                );
            }
        }
    }
    return acc;
}

// This thread's partial dot products of the input (`cols` values) with four rows of type
// `ty` whose first words are `base`. Every thread of the workgroup must call it, with the
// same `cols`.
fn rows_dot(ty: u32, base: vec4<u32>, cols: u32, t: u32) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < cols; c0 += TILE) {
        let n = min(TILE, cols - c0);
        stage(c0, n, t);
        acc += tile_dot(ty, base + vec4<u32>(row_words(ty, c0)), n, t % SPLIT);
    }
    return acc;
}

// The four dot products of this thread's slot, complete in its lane 0 (the other lanes
// get partial sums). Every thread of the workgroup must call it.
fn slot_sum(acc: vec4<f32>, t: u32) -> vec4<f32> {
    workgroupBarrier();
    part[t] = acc;
    workgroupBarrier();
    var s = vec4<f32>(0.0);
    if (t % SPLIT == 0u) {
        for (var l = 0u; l < SPLIT; l++) {
            s += part[t + l];
        }
    }
    return s;
}

// 1 / sqrt(sumsq over the workgroup / n + eps), after rows_dot. Every thread of the
// workgroup must call it.
fn inv_rms(t: u32, n: u32, eps: f32) -> f32 {
    sq_part[t] = sumsq;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h >>= 1u) {
        if (t < h) {
            sq_part[t] += sq_part[t + h];
        }
        workgroupBarrier();
    }
    return 1.0 / sqrt(sq_part[0] / f32(n) + eps);
}
