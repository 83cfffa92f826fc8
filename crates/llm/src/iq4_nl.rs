//! The IQ4_NL block format (GGUF type 20), which candle 0.11 cannot hold.
//!
//! A block is 32 weights in 18 bytes: an f16 scale `d`, then 16 bytes of 4-bit indices,
//! low nibbles for weights 0..16 and high nibbles for weights 16..32 (Q4_0's order). A
//! weight is `d · CODEBOOK[index]`. The codebook is non-linear (denser near zero, where
//! most weights are), so at Q4_0's size it follows a bell-shaped block more closely than
//! sixteen evenly spaced levels.
//!
//! [`Iq4NlMatrix`] keeps a tensor's blocks as stored (row-major, rows of whole blocks);
//! this module decodes them and has the plain nearest-level encoder (the reference the
//! importance-weighted one in `edgewise-ecld` is measured against). The matrix product
//! lives in [`crate::kernels`].

use std::sync::Arc;

use candle_core::{Device, Tensor};
use half::f16;
use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::error::{Error, Result};

/// The GGUF / ggml type id of IQ4_NL.
pub const TYPE_ID: u32 = 20;
/// Weights per block.
pub const BLOCK: usize = 32;
/// Bytes per block: the f16 scale and 16 bytes of nibbles.
pub const BLOCK_BYTES: usize = 18;
/// The sixteen levels a 4-bit index selects, ascending; a weight is `d · CODEBOOK[i]`.
pub const CODEBOOK: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// One block as stored.
#[derive(Clone, Copy, Debug, FromBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlockIq4Nl {
    /// The scale, an f16 value (little-endian bytes).
    pub d: [u8; 2],
    /// Index of weight `j` in the low nibble of byte `j` (j < 16) or the high nibble of
    /// byte `j − 16`.
    pub qs: [u8; BLOCK / 2],
}

impl BlockIq4Nl {
    /// The scale as f32.
    #[must_use]
    pub fn scale(&self) -> f32 {
        f16::from_bits(u16::from_le_bytes(self.d)).to_f32()
    }

    /// The 32 codebook indices in weight order.
    #[must_use]
    pub fn indices(&self) -> [u8; BLOCK] {
        std::array::from_fn(|j| {
            if j < BLOCK / 2 {
                self.qs[j] & 0x0F
            } else {
                self.qs[j - BLOCK / 2] >> 4
            }
        })
    }

    /// The 32 weights.
    #[must_use]
    pub fn decode(&self) -> [f32; BLOCK] {
        let d = self.scale();
        self.indices()
            .map(|i| d * f32::from(CODEBOOK[usize::from(i)]))
    }
}

/// Appends one block with scale `d` (rounded to f16 as stored) and indices `idx`
/// (each < 16) to `out`.
pub fn push_block(d: f32, idx: &[u8; BLOCK], out: &mut Vec<u8>) {
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    for j in 0..BLOCK / 2 {
        out.push((idx[j] & 0x0F) | (idx[j + BLOCK / 2] << 4));
    }
}

/// The index of the codebook level nearest to `v` (in units of the scale); ties go to the
/// lower level.
#[must_use]
pub fn nearest_index(v: f32) -> u8 {
    // Binary search over the fifteen midpoints between neighbouring levels.
    let (mut lo, mut hi) = (0usize, CODEBOOK.len() - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let boundary = 0.5 * (f32::from(CODEBOOK[mid]) + f32::from(CODEBOOK[mid + 1]));
        if v > boundary {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    #[allow(clippy::cast_possible_truncation)]
    let i = lo as u8;
    i
}

/// The plain encoder: each block's signed extreme maps to the outermost level on its side
/// (`d = max / −127` or `max / 113`, whichever reaches it), every weight to its nearest
/// level. The reference rounding the importance-weighted encoder must beat.
///
/// # Errors
/// [`Error::InvalidArgument`] when `x` is not a whole number of blocks.
pub fn quantize_plain(x: &[f32]) -> Result<Vec<u8>> {
    if !x.len().is_multiple_of(BLOCK) {
        return Err(Error::InvalidArgument(format!(
            "IQ4_NL encodes whole blocks of {BLOCK} values, got {}",
            x.len()
        )));
    }
    let mut out = Vec::with_capacity(x.len() / BLOCK * BLOCK_BYTES);
    for b in x.chunks_exact(BLOCK) {
        let max = b
            .iter()
            .copied()
            .fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
        // The larger outer level (−127) takes a negative extreme; a positive one maps to
        // −127 with a negative scale, so both ends of the codebook stay usable.
        let d = f16::from_f32(max / f32::from(CODEBOOK[0])).to_f32();
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        let idx: [u8; BLOCK] = std::array::from_fn(|j| nearest_index(b[j] * id));
        push_block(d, &idx, &mut out);
    }
    Ok(out)
}

/// An IQ4_NL tensor: its shape (outermost first, rows along the last dimension) and its
/// blocks as stored.
#[derive(Clone, Debug)]
pub struct Iq4NlMatrix {
    dims: Vec<usize>,
    bytes: Arc<[u8]>,
}

impl Iq4NlMatrix {
    /// Wraps stored blocks, checking them against the shape.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the last dimension is not a whole number of blocks
    /// or the byte count does not match the shape.
    pub fn new(dims: Vec<usize>, bytes: impl Into<Arc<[u8]>>) -> Result<Self> {
        let bytes = bytes.into();
        let cols = dims.last().copied().unwrap_or(0);
        if cols == 0 || !cols.is_multiple_of(BLOCK) {
            return Err(Error::InvalidArgument(format!(
                "IQ4_NL tensor of shape {dims:?}: rows of {cols} values, expected a positive multiple of {BLOCK}"
            )));
        }
        let expected = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .map(|n| n / BLOCK * BLOCK_BYTES);
        if expected != Some(bytes.len()) {
            return Err(Error::InvalidArgument(format!(
                "IQ4_NL tensor of shape {dims:?}: {} bytes, expected {} ({BLOCK_BYTES} per {BLOCK} values)",
                bytes.len(),
                expected.map_or_else(|| "an overflowing size".to_owned(), |e| e.to_string())
            )));
        }
        Ok(Self { dims, bytes })
    }

    /// Encodes `x` (shape `dims`) with [`quantize_plain`].
    ///
    /// # Errors
    /// As [`quantize_plain`] and [`Iq4NlMatrix::new`].
    pub fn quantize_plain(dims: Vec<usize>, x: &[f32]) -> Result<Self> {
        let cols = dims.last().copied().unwrap_or(0);
        if cols == 0 || !cols.is_multiple_of(BLOCK) {
            return Err(Error::InvalidArgument(format!(
                "IQ4_NL needs rows that are a positive multiple of {BLOCK} values, shape {dims:?}"
            )));
        }
        Self::new(dims, quantize_plain(x)?)
    }

    /// The shape, outermost first.
    #[must_use]
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Values per row (the last dimension).
    #[must_use]
    pub fn cols(&self) -> usize {
        self.dims.last().copied().unwrap_or(0)
    }

    /// Number of rows (the product of the other dimensions).
    #[must_use]
    pub fn rows(&self) -> usize {
        self.dims[..self.dims.len().saturating_sub(1)]
            .iter()
            .product()
    }

    /// The stored bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The blocks, row after row.
    #[must_use]
    pub fn blocks(&self) -> &[BlockIq4Nl] {
        // `new` checked the length against whole 18-byte blocks.
        <[BlockIq4Nl]>::ref_from_bytes(&self.bytes).unwrap_or(&[])
    }

    /// Decodes row `r` into `out` (`cols` values).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a row out of range or an `out` of another length.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        let (rows, cols) = (self.rows(), self.cols());
        if r >= rows || out.len() != cols {
            return Err(Error::InvalidArgument(format!(
                "IQ4_NL row {r} into {} values: the tensor has {rows} rows of {cols}",
                out.len()
            )));
        }
        let kb = cols / BLOCK;
        for (b, o) in self.blocks()[r * kb..(r + 1) * kb]
            .iter()
            .zip(out.chunks_exact_mut(BLOCK))
        {
            o.copy_from_slice(&b.decode());
        }
        Ok(())
    }

    /// Every value, row-major.
    #[must_use]
    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.blocks().iter().flat_map(BlockIq4Nl::decode).collect()
    }

    /// The decoded tensor on `device`.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn dequantize(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.to_f32_vec(),
            self.dims.clone(),
            device,
        )?)
    }

    /// Rows `ids` decoded, `(ids.len(), cols)` (an embedding lookup).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an id out of range; tensor errors.
    pub fn gather_rows(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        let cols = self.cols();
        let mut out = vec![0f32; ids.len() * cols];
        for (&id, o) in ids.iter().zip(out.chunks_exact_mut(cols)) {
            self.dequantize_row(id as usize, o)?;
        }
        Ok(Tensor::from_vec(out, (ids.len(), cols), device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_index_picks_the_closest_level() {
        for (i, &k) in CODEBOOK.iter().enumerate() {
            assert_eq!(usize::from(nearest_index(f32::from(k))), i);
        }
        assert_eq!(nearest_index(-1000.0), 0);
        assert_eq!(nearest_index(1000.0), 15);
        // The boundary between −10 and 1 is −4.5.
        assert_eq!(nearest_index(-4.4), 8);
        assert_eq!(nearest_index(-4.6), 7);
    }

    #[test]
    fn blocks_decode_to_scale_times_level_in_nibble_order() {
        // Weight j gets index j % 16: low nibbles first, then high nibbles.
        let idx: [u8; BLOCK] = std::array::from_fn(|j| u8::try_from(j % 16).unwrap_or(0));
        let mut bytes = Vec::new();
        push_block(0.5, &idx, &mut bytes);
        assert_eq!(bytes.len(), BLOCK_BYTES);
        assert_eq!(bytes[2], 0x00);
        assert_eq!(bytes[3], 0x11);
        let m = Iq4NlMatrix::new(vec![1, 32], bytes).unwrap();
        let v = m.to_f32_vec();
        for j in 0..BLOCK {
            assert_eq!(v[j], 0.5 * f32::from(CODEBOOK[j % 16]), "weight {j}");
        }
    }

    #[test]
    fn plain_encoding_lands_on_levels_and_round_trips_a_grid() {
        // Values exactly on the grid of a representable scale come back exactly.
        let x: Vec<f32> = (0..64)
            .map(|j| 0.25 * f32::from(CODEBOOK[(j * 7) % 16]))
            .collect();
        let mut x = x;
        x[0] = 0.25 * -127.0; // the extreme sets d = 0.25
        x[32] = 0.25 * -127.0;
        let m = Iq4NlMatrix::quantize_plain(vec![2, 32], &x).unwrap();
        assert_eq!(m.to_f32_vec(), x);
        let mut row = vec![0f32; 32];
        m.dequantize_row(1, &mut row).unwrap();
        assert_eq!(row, x[32..]);
    }

    #[test]
    fn bad_shapes_and_lengths_are_refused() {
        let e = Iq4NlMatrix::new(vec![2, 40], vec![0u8; 45])
            .unwrap_err()
            .to_string();
        assert!(e.contains("multiple of 32"), "{e}");
        let e = Iq4NlMatrix::new(vec![2, 32], vec![0u8; 35])
            .unwrap_err()
            .to_string();
        assert!(e.contains("35 bytes, expected 36"), "{e}");
        assert!(quantize_plain(&[0.0; 33]).is_err());
        let m = Iq4NlMatrix::new(vec![2, 32], vec![0u8; 36]).unwrap();
        assert!(m.dequantize_row(2, &mut [0.0; 32]).is_err());
        assert!(m.gather_rows(&[5], &Device::Cpu).is_err());
    }
}
