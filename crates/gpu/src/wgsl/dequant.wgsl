// Weight formats are ggml type ids; layout.rs re-lays the GGUF blocks into 4-byte words:
// F32: one word per weight. F16: two weights per word (the even one in the low half).
// Q4_0, Q4_1: five words per 32 weights; word 0 holds the f16 scale (low half) and, for
// Q4_1, the f16 minimum (high half); words 1-4 are the block's 16 bytes of nibbles
// (weight j < 16 in the low nibble of byte j, weight 16 + j in its high nibble).
// Q8_0: nine words per 32 weights; word 0 the f16 scale, words 1-8 the 32 signed bytes.
// Needs `w: array<u32>` bound by the including kernel.

// Words one row of `cols` weights takes.
fn row_words(ty: u32, cols: u32) -> u32 {
    switch ty {
        case 0u: { return cols; }
        case 1u: { return cols / 2u; }
        case 8u: { return cols / 32u * 9u; }
        default: { return cols / 32u * 5u; }
    }
}

// Byte k (0..3) of v as a signed integer.
fn sbyte(v: u32, k: u32) -> f32 {
    return f32(bitcast<i32>(v << (24u - 8u * k)) >> 24u);
}

// Weight i of the row that starts at word `base`.
fn deq(ty: u32, base: u32, i: u32) -> f32 {
    switch ty {
        case 0u: {
            return bitcast<f32>(w[base + i]);
        }
        case 1u: {
            let v = unpack_f16x2(w[base + i / 2u]);
            return select(v.x, v.y, (i & 1u) == 1u);
        }
        case 8u: {
            let b = base + (i / 32u) * 9u;
            let j = i % 32u;
            return unpack_f16x2(w[b]).x * sbyte(w[b + 1u + j / 4u], j % 4u);
        }
        default: {
            let b = base + (i / 32u) * 5u;
            let j = i % 32u;
            let byte = (w[b + 1u + (j % 16u) / 4u] >> (8u * (j % 4u))) & 0xffu;
            let q = f32(select(byte & 0xfu, byte >> 4u, j >= 16u));
            let dm = unpack_f16x2(w[b]);
            if (ty == 2u) {
                return dm.x * (q - 8.0);
            }
            return dm.x * q + dm.y;
        }
    }
}
