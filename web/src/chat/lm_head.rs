//! The GPU layout of the Q8_0 LM head and its CPU reference mat-vec: what the WebGPU
//! kernel ([`super::gpu`], wasm only) reads and is checked against. Plain Rust, tested
//! natively.

/// Q8_0: 32 weights per block, an f16 scale then 32 `i8`.
pub const Q8_0_BLOCK: usize = 32;
const Q8_0_BYTES: usize = 34;

/// The LM head laid out for the GPU: a GGUF Q8_0 matrix (`rows` × `cols`, row-major
/// blocks of 34 bytes) split into 4-byte-aligned arrays, since WGSL reads storage in
/// `u32` words and a 34-byte block straddles them. The values are unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Q8Gpu {
    /// Rows (output features).
    pub rows: usize,
    /// Columns (input features), a multiple of 32.
    pub cols: usize,
    /// Four `i8` per word, little-endian; row `r` block `b` starts at word
    /// `(r · cols/32 + b) · 8`.
    pub quants: Vec<u32>,
    /// One scale per block, same order.
    pub scales: Vec<f32>,
}

impl Q8Gpu {
    /// Splits raw GGUF Q8_0 bytes.
    ///
    /// # Errors
    /// When `cols` is not a multiple of 32 or `raw` is not `rows · cols/32 · 34` bytes.
    pub fn from_gguf_bytes(raw: &[u8], rows: usize, cols: usize) -> Result<Self, String> {
        if cols == 0 || !cols.is_multiple_of(Q8_0_BLOCK) {
            return Err(format!(
                "Q8_0 rows must hold a multiple of {Q8_0_BLOCK} weights, got {cols}"
            ));
        }
        let blocks = rows * cols / Q8_0_BLOCK;
        if raw.len() != blocks * Q8_0_BYTES {
            return Err(format!(
                "a {rows}×{cols} Q8_0 matrix is {} bytes, got {}",
                blocks * Q8_0_BYTES,
                raw.len()
            ));
        }
        let mut quants = Vec::with_capacity(blocks * 8);
        let mut scales = Vec::with_capacity(blocks);
        for block in raw.chunks_exact(Q8_0_BYTES) {
            scales.push(half::f16::from_le_bytes([block[0], block[1]]).to_f32());
            quants.extend(
                block[2..]
                    .chunks_exact(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            );
        }
        Ok(Self {
            rows,
            cols,
            quants,
            scales,
        })
    }

    /// Weight `(r, c)` as f32.
    pub fn weight(&self, r: usize, c: usize) -> f32 {
        let block = r * self.cols / Q8_0_BLOCK + c / Q8_0_BLOCK;
        let i = c % Q8_0_BLOCK;
        let word = self.quants[block * 8 + i / 4];
        #[allow(clippy::cast_possible_truncation)]
        let q = (word >> (8 * (i % 4))) as u8 as i8;
        self.scales[block] * f32::from(q)
    }

    /// `W x` in f64 accumulation: the exact reference the GPU kernel is compared with.
    ///
    /// # Panics
    /// When `x.len() != cols`.
    pub fn matvec_reference(&self, x: &[f32]) -> Vec<f32> {
        assert_eq!(x.len(), self.cols, "input length must equal the columns");
        #[allow(clippy::cast_possible_truncation)]
        (0..self.rows)
            .map(|r| {
                (0..self.cols)
                    .map(|c| f64::from(self.weight(r, c)) * f64::from(x[c]))
                    .sum::<f64>() as f32
            })
            .collect()
    }
}

/// Largest |a − b| (∞ when the lengths differ).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_layout_round_trips_weights() {
        // 2 rows × 32 cols: scale 0.5 and 2.0, quants 0..32 and -1..-33 (as i8).
        let mut raw = Vec::new();
        for (scale, base) in [(0.5f32, 0i8), (2.0, -1)] {
            raw.extend_from_slice(&half::f16::from_f32(scale).to_le_bytes());
            for i in 0..32i8 {
                raw.push((if base < 0 { -1 - i } else { i }).to_le_bytes()[0]);
            }
        }
        let q = Q8Gpu::from_gguf_bytes(&raw, 2, 32).unwrap();
        assert_eq!(q.quants.len(), 16);
        assert_eq!(q.weight(0, 5), 2.5);
        assert_eq!(q.weight(1, 0), -2.0);
        assert_eq!(q.weight(1, 31), -64.0);
        let x = vec![1.0; 32];
        let y = q.matvec_reference(&x);
        assert_eq!(y, vec![0.5 * 496.0, 2.0 * -528.0]);
    }

    #[test]
    fn q8_layout_rejects_bad_shapes() {
        assert!(
            Q8Gpu::from_gguf_bytes(&[0; 34], 1, 30)
                .unwrap_err()
                .contains("multiple")
        );
        assert!(
            Q8Gpu::from_gguf_bytes(&[0; 33], 1, 32)
                .unwrap_err()
                .contains("34 bytes")
        );
    }
}
