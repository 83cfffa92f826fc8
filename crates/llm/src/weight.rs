//! A model weight in any stored type: a candle `QTensor` for the ggml types candle
//! computes with, or an [`Iq4NlMatrix`] for IQ4_NL, which candle 0.11 lacks.
//!
//! Everything that passes weights around (the GGUF reader and writer, the model, export,
//! the research pipeline, the GPU upload) speaks [`Weight`] and [`WeightType`], so a new
//! block type needs no change outside the files that decode and multiply it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::iq4_nl::{self, Iq4NlMatrix};

/// A stored weight type.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    /// A type candle holds.
    Ggml(GgmlDType),
    /// IQ4_NL (GGUF type 20): blocks of 32, an f16 scale and 4-bit indices into a
    /// non-linear codebook.
    Iq4Nl,
}

/// The ggml type ids of candle's types, both directions from one table.
const GGML_IDS: [(u32, GgmlDType); 15] = [
    (0, GgmlDType::F32),
    (1, GgmlDType::F16),
    (2, GgmlDType::Q4_0),
    (3, GgmlDType::Q4_1),
    (6, GgmlDType::Q5_0),
    (7, GgmlDType::Q5_1),
    (8, GgmlDType::Q8_0),
    (9, GgmlDType::Q8_1),
    (10, GgmlDType::Q2K),
    (11, GgmlDType::Q3K),
    (12, GgmlDType::Q4K),
    (13, GgmlDType::Q5K),
    (14, GgmlDType::Q6K),
    (15, GgmlDType::Q8K),
    (30, GgmlDType::BF16),
];

impl WeightType {
    /// The type of a GGUF type id, for the types this crate can compute with.
    #[must_use]
    pub fn from_id(type_id: u32) -> Option<Self> {
        if type_id == iq4_nl::TYPE_ID {
            return Some(Self::Iq4Nl);
        }
        GGML_IDS
            .iter()
            .find(|(id, _)| *id == type_id)
            .map(|&(_, t)| Self::Ggml(t))
    }

    /// The GGUF type id.
    #[must_use]
    pub fn id(self) -> u32 {
        match self {
            Self::Iq4Nl => iq4_nl::TYPE_ID,
            Self::Ggml(t) => GGML_IDS
                .iter()
                .find(|(_, g)| *g == t)
                .map_or(u32::MAX, |&(id, _)| id),
        }
    }

    /// Values per block.
    #[must_use]
    pub fn block_size(self) -> usize {
        match self {
            Self::Ggml(t) => t.block_size(),
            Self::Iq4Nl => iq4_nl::BLOCK,
        }
    }

    /// Bytes per block.
    #[must_use]
    pub fn type_size(self) -> usize {
        match self {
            Self::Ggml(t) => t.type_size(),
            Self::Iq4Nl => iq4_nl::BLOCK_BYTES,
        }
    }

    /// The candle type, when candle holds this type.
    #[must_use]
    pub fn ggml(self) -> Option<GgmlDType> {
        match self {
            Self::Ggml(t) => Some(t),
            Self::Iq4Nl => None,
        }
    }
}

impl From<GgmlDType> for WeightType {
    fn from(t: GgmlDType) -> Self {
        Self::Ggml(t)
    }
}

impl PartialEq<GgmlDType> for WeightType {
    fn eq(&self, other: &GgmlDType) -> bool {
        *self == Self::Ggml(*other)
    }
}

/// As candle prints its types (`Q4_0`, `Q4K`), and `IQ4_NL`; reports and histograms key
/// on this text.
impl fmt::Debug for WeightType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ggml(t) => write!(f, "{t:?}"),
            Self::Iq4Nl => f.write_str("IQ4_NL"),
        }
    }
}

impl fmt::Display for WeightType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A stored tensor.
#[derive(Debug)]
pub enum Weight {
    /// A type candle holds and multiplies (shared with the layer's `QMatMul`).
    Ggml(Arc<QTensor>),
    /// IQ4_NL, multiplied by [`crate::kernels`].
    Iq4Nl(Iq4NlMatrix),
}

impl From<QTensor> for Weight {
    fn from(q: QTensor) -> Self {
        Self::Ggml(Arc::new(q))
    }
}

impl From<Iq4NlMatrix> for Weight {
    fn from(m: Iq4NlMatrix) -> Self {
        Self::Iq4Nl(m)
    }
}

impl Weight {
    /// The stored type.
    #[must_use]
    pub fn dtype(&self) -> WeightType {
        match self {
            Self::Ggml(q) => WeightType::Ggml(q.dtype()),
            Self::Iq4Nl(_) => WeightType::Iq4Nl,
        }
    }

    /// The shape, outermost first.
    #[must_use]
    pub fn dims(&self) -> &[usize] {
        match self {
            Self::Ggml(q) => q.shape().dims(),
            Self::Iq4Nl(m) => m.dims(),
        }
    }

    /// The candle tensor, when candle holds this type.
    #[must_use]
    pub fn as_qtensor(&self) -> Option<&QTensor> {
        match self {
            Self::Ggml(q) => Some(q),
            Self::Iq4Nl(_) => None,
        }
    }

    /// The bytes as stored in GGUF.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn data(&self) -> Result<Cow<'_, [u8]>> {
        Ok(match self {
            Self::Ggml(q) => q.data()?,
            Self::Iq4Nl(m) => Cow::Borrowed(m.bytes()),
        })
    }

    /// Bytes the stored blocks occupy.
    #[must_use]
    pub fn storage_bytes(&self) -> usize {
        match self {
            Self::Ggml(q) => q.storage_size_in_bytes(),
            Self::Iq4Nl(m) => m.bytes().len(),
        }
    }

    /// The values as a dense f32 tensor on `device`.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn dequantize(&self, device: &Device) -> Result<Tensor> {
        Ok(match self {
            Self::Ggml(q) => q.dequantize(device)?,
            Self::Iq4Nl(m) => m.dequantize(device)?,
        })
    }

    /// Rows `ids` of a matrix as f32, `(ids.len(), cols)`: the embedding lookup.
    ///
    /// # Errors
    /// An id out of range; tensor errors.
    pub fn embedding(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        match self {
            Self::Ggml(q) => Ok(q.embedding(&Tensor::new(ids, device)?)?),
            Self::Iq4Nl(m) => m.gather_rows(ids, device),
        }
    }

    /// A copy with the same type and bytes.
    ///
    /// # Errors
    /// Tensor errors.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(match self {
            Self::Ggml(q) => {
                let data = q.data()?;
                Self::from(candle_core::quantized::ggml_file::qtensor_from_ggml(
                    q.dtype(),
                    &data,
                    q.shape().dims().to_vec(),
                    &q.device(),
                )?)
            }
            Self::Iq4Nl(m) => Self::Iq4Nl(m.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ids_round_trip_and_iq4_nl_is_20() {
        for id in 0..64 {
            if let Some(t) = WeightType::from_id(id) {
                assert_eq!(t.id(), id, "{t:?}");
            }
        }
        assert_eq!(WeightType::from_id(20), Some(WeightType::Iq4Nl));
        assert_eq!(WeightType::Iq4Nl.to_string(), "IQ4_NL");
        assert_eq!(format!("{:?}", WeightType::from(GgmlDType::Q4_0)), "Q4_0");
        assert_eq!(WeightType::Iq4Nl.type_size(), 18);
        assert_eq!(WeightType::Iq4Nl.block_size(), 32);
        assert!(WeightType::from_id(23).is_none());
        assert!(WeightType::Ggml(GgmlDType::Q8_0) == GgmlDType::Q8_0);
    }

    #[test]
    fn an_iq4_nl_weight_decodes_and_looks_up_rows() {
        let x: Vec<f32> = (0..128).map(|i| (i as f32 - 64.0) / 50.0).collect();
        let m = Iq4NlMatrix::quantize_plain(vec![2, 64], &x).unwrap();
        let w = Weight::from(m);
        assert_eq!(w.dtype(), WeightType::Iq4Nl);
        assert_eq!(w.storage_bytes(), 4 * 18);
        let dense: Vec<f32> = w
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let rows: Vec<f32> = w
            .embedding(&[1, 0], &Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(rows[..64], dense[64..]);
        assert_eq!(rows[64..], dense[..64]);
        let c = w.try_clone().unwrap();
        assert_eq!(c.data().unwrap(), w.data().unwrap());
    }
}
