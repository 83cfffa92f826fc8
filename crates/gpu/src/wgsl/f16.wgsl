// f16 <-> f32 in integer arithmetic. WGSL's pack2x16float/unpack2x16float would do, but
// naga accepts them only with its FLOAT16_IN_FLOAT32 capability, which the kernels never
// assume.

// The f32 value of the f16 bits in the low 16 bits of h (exact), without branches: the
// exponent is rebased for normal numbers, infinities and NaNs keep the top exponent, and
// subnormals are m · 2^-24.
fn f16_to_f32(h: u32) -> f32 {
    let em = h & 0x7fffu;
    let bits = (em << 13u) + select(0x38000000u, 0x70000000u, em >= 0x7c00u);
    let v = select(bitcast<f32>(bits), f32(em) * 5.9604644775390625e-8, em < 0x400u);
    return select(v, -v, (h & 0x8000u) != 0u);
}

// The f16 bits nearest to v (ties to even), as the host's `half` crate rounds.
fn f32_to_f16(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    let sign = (b >> 16u) & 0x8000u;
    let be = (b >> 23u) & 0xffu;
    let m = b & 0x7fffffu;
    if (be == 0xffu) {
        return sign | 0x7c00u | select(0u, 0x200u, m != 0u);
    }
    let e = i32(be) - 112;
    if (e >= 31) {
        return sign | 0x7c00u;
    }
    if (e <= 0) {
        if (e < -10) {
            return sign;
        }
        let full = m | 0x800000u;
        let shift = u32(14 - e);
        var r = full >> shift;
        let rem = full & ((1u << shift) - 1u);
        let halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (r & 1u) == 1u)) {
            r += 1u;
        }
        return sign | r;
    }
    var r = (u32(e) << 10u) | (m >> 13u);
    let rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u) == 1u)) {
        r += 1u;
    }
    return sign | r;
}

// The two f16 of a word, the low half first.
fn unpack_f16x2(w: u32) -> vec2<f32> {
    let h = vec2<u32>(w & 0xffffu, w >> 16u);
    let em = h & vec2<u32>(0x7fffu);
    let top = em >= vec2<u32>(0x7c00u);
    let bits = (em << vec2<u32>(13u)) + select(vec2<u32>(0x38000000u), vec2<u32>(0x70000000u), top);
    let sub = vec2<f32>(em) * 5.9604644775390625e-8;
    let v = select(bitcast<vec2<f32>>(bits), sub, em < vec2<u32>(0x400u));
    return select(v, -v, (h & vec2<u32>(0x8000u)) != vec2<u32>(0u));
}

// Two values as one word of f16, the first in the low half.
fn pack_f16x2(v: vec2<f32>) -> u32 {
    return f32_to_f16(v.x) | (f32_to_f16(v.y) << 16u);
}
