// f16 <-> f32 in integer arithmetic. WGSL's pack_f16x2/unpack_f16x2 would do, but
// wgpu allows them on lavapipe only with `shader-f16`, which the kernels never assume.

// The f32 value of the f16 bits in the low 16 bits of h (exact).
fn f16_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        // Zero and subnormals: m · 2^-24.
        let v = f32(m) * 5.9604644775390625e-8;
        return select(v, -v, sign != 0u);
    }
    if (e == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
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
    return vec2<f32>(f16_to_f32(w & 0xffffu), f16_to_f32(w >> 16u));
}

// Two values as one word of f16, the first in the low half.
fn pack_f16x2(v: vec2<f32>) -> u32 {
    return f32_to_f16(v.x) | (f32_to_f16(v.y) << 16u);
}
