// The fused dequantise mat-vec: Σ_i W[row, i] · input(i), reading the blocks as stored
// (no f32 copy of a weight ever exists). Needs `w`, dequant.wgsl and `fn input(i: u32) -> f32`
// from the including kernel, which is how norms are folded into the product.

fn dot_row(ty: u32, base: u32, cols: u32) -> f32 {
    var acc = 0.0;
    switch ty {
        case 0u: {
            for (var i = 0u; i < cols; i++) {
                acc += bitcast<f32>(w[base + i]) * input(i);
            }
        }
        case 1u: {
            for (var i = 0u; i < cols / 2u; i++) {
                let v = unpack_f16x2(w[base + i]);
                acc += v.x * input(2u * i) + v.y * input(2u * i + 1u);
            }
        }
        case 8u: {
            for (var blk = 0u; blk < cols / 32u; blk++) {
                let b = base + blk * 9u;
                let c = blk * 32u;
                var s = 0.0;
                for (var k = 0u; k < 8u; k++) {
                    let q = w[b + 1u + k];
                    let i = c + 4u * k;
                    s += sbyte(q, 0u) * input(i) + sbyte(q, 1u) * input(i + 1u)
                        + sbyte(q, 2u) * input(i + 2u) + sbyte(q, 3u) * input(i + 3u);
                }
                acc += unpack_f16x2(w[b]).x * s;
            }
        }
        default: {
            // Q4_0 and Q4_1: Σ q·x and Σ x per block, then one scale (and offset) per block.
            for (var blk = 0u; blk < cols / 32u; blk++) {
                let b = base + blk * 5u;
                let c = blk * 32u;
                var sq = 0.0;
                var sx = 0.0;
                for (var k = 0u; k < 4u; k++) {
                    let q = w[b + 1u + k];
                    for (var j = 0u; j < 4u; j++) {
                        let byte = (q >> (8u * j)) & 0xffu;
                        let lo = input(c + 4u * k + j);
                        let hi = input(c + 16u + 4u * k + j);
                        sq += f32(byte & 0xfu) * lo + f32(byte >> 4u) * hi;
                        sx += lo + hi;
                    }
                }
                let dm = unpack_f16x2(w[b]);
                if (ty == 2u) {
                    acc += dm.x * (sq - 8.0 * sx);
                } else {
                    acc += dm.x * sq + dm.y * sx;
                }
            }
        }
    }
    return acc;
}
