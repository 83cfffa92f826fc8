//! GGUF → GPU re-layout: a quantized matrix's blocks as 4-byte words, one row after the
//! other, so WGSL (which reads the words four at a time, `array<vec4<u32>>`) can address
//! every block. Each row starts on a 16-byte boundary; in a quantized row the blocks'
//! scale words come first, then the blocks' quants, so one block's quants are one (Q4_0,
//! Q4_1) or two (Q8_0) aligned 16-byte loads. The block contents are kept (f16 scales stay
//! f16, nibbles stay nibbles): no weight is widened to f32. Word formats are described at
//! the top of `wgsl/dequant.wgsl`.

use candle_core::quantized::{GgmlDType, QTensor};
use edgewise_llm::Weight;

use crate::error::{GpuError, Result};

/// Weights per quantization block.
pub const BLOCK: usize = 32;

/// A weight format the kernels read; the discriminant is the ggml type id the WGSL
/// switches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    /// 32-bit floats.
    F32 = 0,
    /// 16-bit floats.
    F16 = 1,
    /// 4-bit, one f16 scale per 32 weights, zero point 8.
    Q4_0 = 2,
    /// 4-bit, f16 scale and minimum per 32 weights.
    Q4_1 = 3,
    /// 8-bit, one f16 scale per 32 weights.
    Q8_0 = 8,
}

impl WeightType {
    /// Every type the kernels read.
    pub const ALL: [Self; 5] = [Self::F32, Self::F16, Self::Q4_0, Self::Q4_1, Self::Q8_0];

    /// The id the WGSL switches on.
    #[must_use]
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The type of a candle/GGUF tensor, if the kernels read it.
    #[must_use]
    pub fn from_ggml(t: GgmlDType) -> Option<Self> {
        match t {
            GgmlDType::F32 => Some(Self::F32),
            GgmlDType::F16 => Some(Self::F16),
            GgmlDType::Q4_0 => Some(Self::Q4_0),
            GgmlDType::Q4_1 => Some(Self::Q4_1),
            GgmlDType::Q8_0 => Some(Self::Q8_0),
            _ => None,
        }
    }

    /// The candle/GGUF type.
    #[must_use]
    pub fn ggml(self) -> GgmlDType {
        match self {
            Self::F32 => GgmlDType::F32,
            Self::F16 => GgmlDType::F16,
            Self::Q4_0 => GgmlDType::Q4_0,
            Self::Q4_1 => GgmlDType::Q4_1,
            Self::Q8_0 => GgmlDType::Q8_0,
        }
    }

    /// Words of a row's scales, before its quants: one per block, padded to a multiple of
    /// four (0 for F32 and F16).
    #[must_use]
    pub fn scale_words(self, cols: usize) -> usize {
        match self {
            Self::F32 | Self::F16 => 0,
            Self::Q4_0 | Self::Q4_1 | Self::Q8_0 => (cols / BLOCK).next_multiple_of(4),
        }
    }

    /// Words one row of `cols` weights takes on the GPU (`row_words` in the WGSL): a
    /// multiple of four, so every row starts on a 16-byte boundary.
    #[must_use]
    pub fn row_words(self, cols: usize) -> usize {
        match self {
            Self::F32 => cols.next_multiple_of(4),
            Self::F16 => (cols / 2).next_multiple_of(4),
            Self::Q4_0 | Self::Q4_1 => self.scale_words(cols) + cols / BLOCK * 4,
            Self::Q8_0 => self.scale_words(cols) + cols / BLOCK * 8,
        }
    }

    /// Bytes of one row in the GGUF file.
    fn row_bytes(self, cols: usize) -> usize {
        match self {
            Self::F32 => cols * 4,
            Self::F16 => cols * 2,
            Self::Q4_0 => cols / BLOCK * 18,
            Self::Q4_1 => cols / BLOCK * 20,
            Self::Q8_0 => cols / BLOCK * 34,
        }
    }

    /// Columns must be a whole number of blocks (of words, for F16).
    fn col_multiple(self) -> usize {
        match self {
            Self::F32 => 1,
            Self::F16 => 2,
            Self::Q4_0 | Self::Q4_1 | Self::Q8_0 => BLOCK,
        }
    }
}

/// A matrix `(rows, cols)` (a linear layer's `(out, in)`) re-laid for the GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuWeights {
    /// Format.
    pub ty: WeightType,
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs).
    pub cols: usize,
    /// `rows * ty.row_words(cols)` words.
    pub words: Vec<u32>,
}

fn le16(b: &[u8]) -> u32 {
    u32::from(u16::from_le_bytes([b[0], b[1]]))
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl GpuWeights {
    /// Re-lays a model weight: a candle tensor through [`GpuWeights::from_qtensor`];
    /// IQ4_NL (no WGSL kernel reads its codebook yet) is refused.
    ///
    /// # Errors
    /// [`GpuError::UnsupportedType`] naming the type and the supported ones; as
    /// [`GpuWeights::from_qtensor`].
    pub fn from_weight(name: &str, w: &Weight) -> Result<Self> {
        match w {
            Weight::Ggml(q) => Self::from_qtensor(name, q),
            Weight::Iq4Nl(_) => Err(GpuError::UnsupportedType {
                name: name.to_owned(),
                ty: format!("{:?}", w.dtype()),
            }),
        }
    }

    /// Re-lays a 2-D quantized tensor `(rows, cols)`.
    ///
    /// # Errors
    /// [`GpuError::UnsupportedType`] for types the kernels do not read,
    /// [`GpuError::BadWeight`] for a shape that is not 2-D or not whole blocks.
    pub fn from_qtensor(name: &str, t: &QTensor) -> Result<Self> {
        let ty = WeightType::from_ggml(t.dtype()).ok_or_else(|| GpuError::UnsupportedType {
            name: name.to_owned(),
            ty: format!("{:?}", t.dtype()),
        })?;
        let dims = t.shape().dims();
        let (rows, cols) = match *dims {
            [r, c] => (r, c),
            [c] => (1, c),
            _ => {
                return Err(GpuError::BadWeight {
                    name: name.to_owned(),
                    problem: format!("shape {dims:?}, expected a matrix (rows, cols)"),
                });
            }
        };
        let data = t.data()?;
        Self::from_bytes(name, ty, rows, cols, &data)
    }

    /// Re-lays GGUF bytes of `rows` rows of `cols` weights of type `ty`.
    ///
    /// # Errors
    /// [`GpuError::BadWeight`] when `cols` is not a whole number of blocks or the byte
    /// count does not match the shape.
    pub fn from_bytes(
        name: &str,
        ty: WeightType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self> {
        let bad = |problem: String| GpuError::BadWeight {
            name: name.to_owned(),
            problem,
        };
        if cols == 0 || !cols.is_multiple_of(ty.col_multiple()) {
            return Err(bad(format!(
                "{cols} columns of {ty:?}, expected a positive multiple of {}",
                ty.col_multiple()
            )));
        }
        let expected = rows * ty.row_bytes(cols);
        if bytes.len() != expected {
            return Err(bad(format!(
                "{} bytes for {rows}x{cols} {ty:?}, expected {expected}",
                bytes.len()
            )));
        }
        let row_bytes = ty.row_bytes(cols);
        let mut words = Vec::with_capacity(rows * ty.row_words(cols));
        for row in bytes.chunks_exact(row_bytes) {
            let start = words.len();
            match ty {
                WeightType::F32 | WeightType::F16 => words.extend(row.chunks_exact(4).map(le32)),
                // Per block: the f16 scale (Q4_1: and the f16 minimum above it) as one word,
                // then the quants (16 bytes of nibbles, or 32 signed bytes).
                WeightType::Q4_0 | WeightType::Q4_1 | WeightType::Q8_0 => {
                    let (block, scale) = match ty {
                        WeightType::Q4_0 => (18, 2),
                        WeightType::Q4_1 => (20, 4),
                        _ => (34, 2),
                    };
                    let blocks = row.chunks_exact(block);
                    words.extend(blocks.clone().map(
                        |b| {
                            if scale == 4 { le32(b) } else { le16(b) }
                        },
                    ));
                    words.resize(start + ty.scale_words(cols), 0);
                    words.extend(blocks.flat_map(|b| b[scale..].chunks_exact(4).map(le32)));
                }
            }
            words.resize(start + ty.row_words(cols), 0);
        }
        debug_assert_eq!(words.len(), rows * ty.row_words(cols));
        Ok(Self {
            ty,
            rows,
            cols,
            words,
        })
    }

    /// Words per row.
    #[must_use]
    pub fn row_words(&self) -> usize {
        self.ty.row_words(self.cols)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};
    use edgewise_llm::iq4_nl::Iq4NlMatrix;

    use super::*;

    /// IQ4_NL weights are refused by name with the types the kernels read; candle's types
    /// go through as before.
    #[test]
    fn iq4_nl_is_refused_with_the_supported_types() {
        let x = vec![0.25f32; 2 * 64];
        let w = Weight::from(Iq4NlMatrix::quantize_plain(vec![2, 64], &x).unwrap());
        let e = GpuWeights::from_weight("blk.0.attn_q.weight", &w)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`blk.0.attn_q.weight` is IQ4_NL") && e.contains("Q4_0, Q4_1 and Q8_0"),
            "{e}"
        );
        let t = Tensor::from_vec(x, (2, 64), &Device::Cpu).unwrap();
        let q = Weight::from(QTensor::quantize(&t, GgmlDType::Q4_0).unwrap());
        let g = GpuWeights::from_weight("w", &q).unwrap();
        assert_eq!((g.ty, g.rows, g.cols), (WeightType::Q4_0, 2, 64));
    }
}
