// The cooperative mat-vec shared by qkv, gate_up, matvec_add and lm_head: a workgroup of
// WG threads works on SLOTS groups of four rows; the SPLIT neighbouring threads of a slot
// share its rows, thread `lane` taking blocks lane, lane + SPLIT, … of each row (a block:
// 32 weights of Q4_0/Q4_1/Q8_0, whose quants are one or two aligned 16-byte loads and whose
// scale word sits beside its neighbours' at the row's start; 8 weights of F16; 4 of F32),
// so neighbouring threads read neighbouring words. The input vector is staged in workgroup
// memory a tile at a time (each value read from storage once per workgroup, not once per
// row), the four rows of a slot share each staged value they read, and the SPLIT partial
// sums of a row are added in lane order at the end. Weights are read as stored: no f32
// copy of a weight ever exists.
//
// Needs `w: array<vec4<u32>>`, dequant.wgsl, and from the including kernel
// `fn input(i: u32) -> vec2<f32>`: input i (as the mat-vec multiplies it) and what it
// adds to `sumsq` (x² for a folded RMSNorm, else 0). `WG` and `SPLIT` come from
// shaders.rs (`MATVEC_WG`, `MATVEC_SPLIT`), which sizes the dispatches; so does `TY`: the
// one weight type this module is compiled for, or ANY_TYPE.

const SLOTS: u32 = WG / SPLIT;
const ANY_TYPE: u32 = 0xffffffffu;
// Input values staged at a time (a multiple of 32, so a tile holds whole blocks).
const TILE: u32 = 1024u;

var<workgroup> xs: array<vec4<f32>, TILE / 4u>;
var<workgroup> part: array<vec4<f32>, WG>;
// Σ input(i).y: each thread's share, then each lane's sum over one group of SLOTS threads.
var<workgroup> sq_part: array<f32, WG>;
var<workgroup> sq_group: array<f32, WG>;

// This thread's share of Σ input(i).y over every staged tile.
var<private> sumsq: f32;

// Stages inputs c0 .. c0 + n (n ≤ TILE) into `xs`, zero-padded to a whole block. `fresh`:
// nothing has read `xs` yet in this invocation, so no barrier is needed before writing.
fn stage(c0: u32, n: u32, t: u32, fresh: bool) {
    if (!fresh) {
        workgroupBarrier();
    }
    for (var j = t; j < (n + 31u) / 32u * 8u; j += WG) {
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
    sq_part[t] = sumsq;
    workgroupBarrier();
}

// The 32 staged inputs of block k of the tile.
struct Block {
    x0: vec4<f32>,
    x1: vec4<f32>,
    x2: vec4<f32>,
    x3: vec4<f32>,
    x4: vec4<f32>,
    x5: vec4<f32>,
    x6: vec4<f32>,
    x7: vec4<f32>,
}

fn staged(k: u32) -> Block {
    let i = 8u * k;
    return Block(xs[i], xs[i + 1u], xs[i + 2u], xs[i + 3u], xs[i + 4u], xs[i + 5u], xs[i + 6u], xs[i + 7u]);
}

// Σ x over a block.
fn block_sum(x: Block) -> f32 {
    return dot((x.x0 + x.x1) + (x.x2 + x.x3) + (x.x4 + x.x5) + (x.x6 + x.x7), vec4<f32>(1.0));
}

// The 4-bit values of a word, low nibbles (`hi` false) or high nibbles.
fn nibbles(q: u32, hi: bool) -> vec4<f32> {
    let s = select(vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(4u, 12u, 20u, 28u), hi);
    return vec4<f32>((vec4<u32>(q) >> s) & vec4<u32>(15u));
}

// Σ q·x over a Q4 block's 32 quants: word k holds weights 4k .. 4k + 3 (low nibbles) and
// 16 + 4k .. 19 + 4k (high nibbles).
fn q4_dot(q: vec4<u32>, x: Block) -> f32 {
    let lo = dot(nibbles(q.x, false), x.x0) + dot(nibbles(q.y, false), x.x1)
        + dot(nibbles(q.z, false), x.x2) + dot(nibbles(q.w, false), x.x3);
    let hi = dot(nibbles(q.x, true), x.x4) + dot(nibbles(q.y, true), x.x5)
        + dot(nibbles(q.z, true), x.x6) + dot(nibbles(q.w, true), x.x7);
    return lo + hi;
}

// The four signed bytes of a word.
fn bytes4(q: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// Σ q·x over a Q8_0 block's 32 quants (word k holds weights 4k .. 4k + 3).
fn q8_dot(a: vec4<u32>, b: vec4<u32>, x: Block) -> f32 {
    return (dot(bytes4(a.x), x.x0) + dot(bytes4(a.y), x.x1) + dot(bytes4(a.z), x.x2) + dot(bytes4(a.w), x.x3))
        + (dot(bytes4(b.x), x.x4) + dot(bytes4(b.y), x.x5) + dot(bytes4(b.z), x.x6) + dot(bytes4(b.w), x.x7));
}

// A Q4 block's value from its scale word (f16 scale d, Q4_1's f16 minimum m), Σ q·x and
// Σ x: d (Σ q·x - 8 Σ x) for Q4_0, d Σ q·x + m Σ x for Q4_1.
fn q4_value(ty: u32, scale: u32, sq: f32, sx: f32) -> f32 {
    let dm = unpack_f16x2(scale);
    return select(dm.x * sq + dm.y * sx, dm.x * (sq - 8.0 * sx), ty == 2u);
}

// Σ w·x over 8 F16 weights (a vec4 of words) and 8 inputs.
fn f16_dot(q: vec4<u32>, a: vec4<f32>, b: vec4<f32>) -> f32 {
    let p = unpack_f16x2(q.x);
    let r = unpack_f16x2(q.y);
    let s = unpack_f16x2(q.z);
    let u = unpack_f16x2(q.w);
    return dot(vec4<f32>(p, r), a) + dot(vec4<f32>(s, u), b);
}

// This thread's partial dot products of the staged tile (n inputs from column c0) with four
// rows of type `ty` and `cols` columns whose first words are `base`.
fn tile_dot(ty_any: u32, base: vec4<u32>, cols: u32, c0: u32, n: u32, lane: u32) -> vec4<f32> {
    // A constant in a module compiled for one type: the other cases compile away.
    let ty = select(ty_any, TY, TY != ANY_TYPE);
    var acc = vec4<f32>(0.0);
    // The rows' first vec4s, and where their quants start.
    let r = base / 4u;
    let qv = r + vec4<u32>(scale_words(ty, cols) / 4u);
    switch ty {
        case 0u: {
            let o = r + vec4<u32>(c0 / 4u);
            for (var u = lane; u < (n + 3u) / 4u; u += SPLIT) {
                let x = xs[u];
                acc += vec4<f32>(
                    dot(bitcast<vec4<f32>>(w[o.x + u]), x),
                    dot(bitcast<vec4<f32>>(w[o.y + u]), x),
                    dot(bitcast<vec4<f32>>(w[o.z + u]), x),
                    dot(bitcast<vec4<f32>>(w[o.w + u]), x),
                );
            }
        }
        case 1u: {
            let o = r + vec4<u32>(c0 / 8u);
            for (var u = lane; u < (n + 7u) / 8u; u += SPLIT) {
                let a = xs[2u * u];
                let b = xs[2u * u + 1u];
                acc += vec4<f32>(
                    f16_dot(w[o.x + u], a, b),
                    f16_dot(w[o.y + u], a, b),
                    f16_dot(w[o.z + u], a, b),
                    f16_dot(w[o.w + u], a, b),
                );
            }
        }
        case 8u: {
            for (var k = lane; k < n / 32u; k += SPLIT) {
                let blk = c0 / 32u + k;
                let x = staged(k);
                let d = vec4<f32>(
                    unpack_f16x2(word(base.x + blk)).x,
                    unpack_f16x2(word(base.y + blk)).x,
                    unpack_f16x2(word(base.z + blk)).x,
                    unpack_f16x2(word(base.w + blk)).x,
                );
                let q = qv + vec4<u32>(2u * blk);
                acc += d * vec4<f32>(
                    q8_dot(w[q.x], w[q.x + 1u], x),
                    q8_dot(w[q.y], w[q.y + 1u], x),
                    q8_dot(w[q.z], w[q.z + 1u], x),
                    q8_dot(w[q.w], w[q.w + 1u], x),
                );
            }
        }
        default: {
            for (var k = lane; k < n / 32u; k += SPLIT) {
                let blk = c0 / 32u + k;
                let x = staged(k);
                let sx = block_sum(x);
                let q = qv + vec4<u32>(blk);
                acc += vec4<f32>(
                    q4_value(ty, word(base.x + blk), q4_dot(w[q.x], x), sx),
                    q4_value(ty, word(base.y + blk), q4_dot(w[q.y], x), sx),
                    q4_value(ty, word(base.z + blk), q4_dot(w[q.z], x), sx),
                    q4_value(ty, word(base.w + blk), q4_dot(w[q.w], x), sx),
                );
            }
        }
    }
    return acc;
}

// This thread's partial dot products of the input (`cols` values) with four rows of type
// `ty` whose first words are `base` (multiples of 4). Every thread of the workgroup must
// call it, with the same `cols`; `first`: the invocation's first call.
fn rows_dot(ty: u32, base: vec4<u32>, cols: u32, t: u32, first: bool) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < cols; c0 += TILE) {
        let n = min(TILE, cols - c0);
        stage(c0, n, t, first && c0 == 0u);
        acc += tile_dot(ty, base, cols, c0, n, t % SPLIT);
    }
    return acc;
}

// The four dot products of this thread's slot in `.xyzw` and Σ input(i).y over the whole
// input in `.sum`, complete in the slot's lane 0 (other lanes get partial sums). Called
// once, by every thread of the workgroup, after rows_dot. The sum of squares goes in two
// steps without a barrier of its own: lane l first adds the shares of threads l * SLOTS ..
// l * SLOTS + SLOTS - 1 (staged before the last staging barrier), then lane 0 adds its
// slot's SPLIT lane sums, which cover every thread.
struct SlotSums {
    dots: vec4<f32>,
    sum: f32,
}

fn slot_sum(acc: vec4<f32>, t: u32) -> SlotSums {
    let lane = t % SPLIT;
    var g = 0.0;
    for (var j = 0u; j < SLOTS; j++) {
        g += sq_part[lane * SLOTS + j];
    }
    part[t] = acc;
    sq_group[t] = g;
    workgroupBarrier();
    var out = SlotSums(vec4<f32>(0.0), 0.0);
    if (lane == 0u) {
        for (var l = 0u; l < SPLIT; l++) {
            out.dots += part[t + l];
            out.sum += sq_group[t + l];
        }
    }
    return out;
}

// 1 / sqrt(sum / n + eps) for a folded RMSNorm.
fn inv_rms(sum: f32, n: u32, eps: f32) -> f32 {
    return 1.0 / sqrt(sum / f32(n) + eps);
}
