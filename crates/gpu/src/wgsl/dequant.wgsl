// Weight formats are ggml type ids; layout.rs re-lays the GGUF blocks into 4-byte words,
// each row starting on a 16-byte boundary (its words padded with zeros to a multiple of 4).
// F32: one word per weight. F16: two weights per word (the even one in the low half).
// Q4_0, Q4_1, Q8_0: a row's scale words first, one per block of 32 weights (the f16 scale in
// the low half; Q4_1's f16 minimum in the high half), padded to a multiple of 4, then each
// block's quants: 4 words of nibbles for Q4 (weight j < 16 in the low nibble of byte j,
// weight 16 + j in its high nibble), 8 words of signed bytes for Q8_0.
// Needs `w: array<vec4<u32>>` bound by the including kernel.

// Word i of the weights.
fn word(i: u32) -> u32 {
    return w[i >> 2u][i & 3u];
}

// Words of the scales of a row of `cols` weights (0 for F32 and F16).
fn scale_words(ty: u32, cols: u32) -> u32 {
    if (ty == 0u || ty == 1u) {
        return 0u;
    }
    return (cols / 32u + 3u) / 4u * 4u;
}

// Words one row of `cols` weights takes (a multiple of 4).
fn row_words(ty: u32, cols: u32) -> u32 {
    switch ty {
        case 0u: { return (cols + 3u) / 4u * 4u; }
        case 1u: { return (cols / 2u + 3u) / 4u * 4u; }
        case 8u: { return scale_words(ty, cols) + cols / 32u * 8u; }
        default: { return scale_words(ty, cols) + cols / 32u * 4u; }
    }
}

// Byte k (0..3) of v as a signed integer.
fn sbyte(v: u32, k: u32) -> f32 {
    return f32(bitcast<i32>(v << (24u - 8u * k)) >> 24u);
}

// Weight i of the row of `cols` weights that starts at word `base`.
fn deq(ty: u32, base: u32, cols: u32, i: u32) -> f32 {
    let blk = i / 32u;
    let j = i % 32u;
    let quants = base + scale_words(ty, cols);
    switch ty {
        case 0u: {
            return bitcast<f32>(word(base + i));
        }
        case 1u: {
            let v = unpack_f16x2(word(base + i / 2u));
            return select(v.x, v.y, (i & 1u) == 1u);
        }
        case 8u: {
            return unpack_f16x2(word(base + blk)).x * sbyte(word(quants + blk * 8u + j / 4u), j % 4u);
        }
        default: {
            let byte = (word(quants + blk * 4u + (j % 16u) / 4u) >> (8u * (j % 4u))) & 0xffu;
            let q = f32(select(byte & 0xfu, byte >> 4u, j >= 16u));
            let dm = unpack_f16x2(word(base + blk));
            if (ty == 2u) {
                return dm.x * (q - 8.0);
            }
            return dm.x * q + dm.y;
        }
    }
}
