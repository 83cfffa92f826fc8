//! GGUF reading and writing.
//!
//! The header parser is ours (`HeaderReader`): every length and count is checked against
//! the bytes left in the file before anything is allocated from it, and each defect names
//! the key or tensor at fault. It produces candle's `gguf_file::Content`, and tensor data is
//! read by candle, except for IQ4_NL tensors (type 20), which candle cannot hold: the
//! parser keeps those apart and reads their blocks itself ([`GgufFile::weight`]). The
//! writer is ours too (candle's cannot write type 20). Around it: every tensor's extent is checked against the file length up
//! front (so a truncated download is reported at open, naming the tensor), failures are
//! sorted into truncated / corrupt / unsupported-type errors, typed metadata getters name
//! the missing or mistyped key, and writing goes through a temp file and a rename.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};

use candle_core::Device;
use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};

use crate::error::{Error, Result};
use crate::iq4_nl::Iq4NlMatrix;
use crate::weight::{Weight, WeightType};

/// Alignment (bytes) of tensor data in files this crate writes; candle's writer uses 32.
pub const WRITE_ALIGNMENT: u32 = 32;

/// The ggml name of a tensor type id (`"?"` when unknown).
#[must_use]
pub fn ggml_type_name(type_id: u32) -> &'static str {
    match type_id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => "?",
    }
}

/// Bytes that `elems` elements of `dtype` occupy.
#[must_use]
pub fn tensor_bytes(dtype: GgmlDType, elems: usize) -> usize {
    elems / dtype.block_size() * dtype.type_size()
}

/// A parsed GGUF header: metadata and tensor directory (tensor data stays in the reader).
#[derive(Debug)]
pub struct GgufFile {
    content: Content,
    /// IQ4_NL tensors, which candle's `Content` cannot describe.
    iq4_nl: HashMap<String, Iq4NlInfo>,
    name: String,
}

/// Where an IQ4_NL tensor's blocks are.
#[derive(Debug, Clone)]
struct Iq4NlInfo {
    /// Shape, outermost first.
    dims: Vec<usize>,
    /// Offset from the start of the tensor data.
    offset: u64,
}

impl GgufFile {
    /// Parses the header from `reader` and checks that every tensor's data lies inside it.
    ///
    /// `name` (a path or `<memory>`) is used in error messages.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::Corrupt`] or [`Error::UnsupportedTensorType`].
    pub fn read<R: Read + Seek>(reader: &mut R, name: &str) -> Result<Self> {
        let file_len = reader
            .seek(SeekFrom::End(0))
            .and_then(|len| reader.seek(SeekFrom::Start(0)).map(|_| len))
            .map_err(|e| Error::io(name, e))?;
        if file_len < 8 {
            return Err(Error::Truncated {
                what: name.to_owned(),
                detail: format!("{file_len} bytes, too short for a GGUF header"),
            });
        }
        let (content, iq4_nl) = HeaderReader::new(reader, file_len, name).content()?;
        let all = content
            .tensor_infos
            .iter()
            .map(|(n, i)| (n, i.shape.dims(), WeightType::Ggml(i.ggml_dtype), i.offset))
            .chain(
                iq4_nl
                    .iter()
                    .map(|(n, i)| (n, i.dims.as_slice(), WeightType::Iq4Nl, i.offset)),
            );
        for (tname, dims, ty, offset) in all {
            let Some(elems) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
                return Err(Error::Corrupt {
                    what: name.to_owned(),
                    detail: format!(
                        "tensor `{tname}` has dimensions {dims:?} whose product overflows"
                    ),
                });
            };
            // An empty tensor is never a model weight, and candle would build it from a
            // dangling, unaligned pointer (found by cargo fuzz).
            if elems == 0 {
                return Err(Error::Corrupt {
                    what: name.to_owned(),
                    detail: format!(
                        "tensor `{tname}` has dimensions {dims:?}: every dimension must be at least 1"
                    ),
                });
            }
            // IQ4_NL rows must be whole blocks (the block never straddles two rows).
            let unit = if ty == WeightType::Iq4Nl {
                dims.last().copied().unwrap_or(0)
            } else {
                elems
            };
            if unit % ty.block_size() != 0 {
                return Err(Error::Corrupt {
                    what: name.to_owned(),
                    detail: format!(
                        "tensor `{tname}` has {} {}, not a multiple of the {ty:?} block size {}",
                        unit,
                        if unit == elems {
                            "elements"
                        } else {
                            "values per row"
                        },
                        ty.block_size()
                    ),
                });
            }
            let end = content
                .tensor_data_offset
                .checked_add(offset)
                .and_then(|x| {
                    let bytes = (elems / ty.block_size()).checked_mul(ty.type_size())?;
                    x.checked_add(u64::try_from(bytes).ok()?)
                })
                .unwrap_or(u64::MAX);
            if end > file_len {
                return Err(Error::Truncated {
                    what: name.to_owned(),
                    detail: format!(
                        "tensor `{tname}` needs bytes up to {end}, the file has {file_len}"
                    ),
                });
            }
        }
        Ok(Self {
            content,
            iq4_nl,
            name: name.to_owned(),
        })
    }

    /// Opens and parses a file on disk (header only; tensors are read on demand).
    ///
    /// # Errors
    /// As [`GgufFile::read`], plus [`Error::Io`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &std::path::Path) -> Result<(Self, std::io::BufReader<std::fs::File>)> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut reader = std::io::BufReader::new(file);
        let gguf = Self::read(&mut reader, &path.display().to_string())?;
        Ok((gguf, reader))
    }

    /// The name given at open (used in messages).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All metadata.
    #[must_use]
    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    /// Tensor names and their (row-major, outermost first) shapes and types, sorted by name.
    #[must_use]
    pub fn tensor_infos(&self) -> Vec<(&str, Vec<usize>, WeightType)> {
        let mut v: Vec<_> = self
            .content
            .tensor_infos
            .iter()
            .map(|(n, i)| {
                (
                    n.as_str(),
                    i.shape.dims().to_vec(),
                    WeightType::Ggml(i.ggml_dtype),
                )
            })
            .chain(
                self.iq4_nl
                    .iter()
                    .map(|(n, i)| (n.as_str(), i.dims.clone(), WeightType::Iq4Nl)),
            )
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Whether a tensor of this name exists.
    #[must_use]
    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name) || self.iq4_nl.contains_key(name)
    }

    /// Reads one tensor of a type candle holds.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], [`Error::UnsupportedTensorType`] for an IQ4_NL tensor
    /// (read it with [`GgufFile::weight`]), or an I/O / tensor error.
    pub fn tensor<R: Read + Seek>(
        &self,
        reader: &mut R,
        name: &str,
        device: &Device,
    ) -> Result<QTensor> {
        if self.iq4_nl.contains_key(name) {
            return Err(Error::UnsupportedTensorType {
                type_id: crate::iq4_nl::TYPE_ID,
                type_name: ggml_type_name(crate::iq4_nl::TYPE_ID),
                tensor: format!(" in tensor `{name}` as a candle QTensor (read it as a Weight)"),
            });
        }
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| Error::MissingTensor(name.to_owned()))?;
        info.read(reader, self.content.tensor_data_offset, device)
            .map_err(|e| classify_parse_error(&e, &self.name))
    }

    /// Reads one tensor of any supported type, IQ4_NL included.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], [`Error::Truncated`] when the file ends inside the
    /// tensor, or an I/O / tensor error.
    pub fn weight<R: Read + Seek>(
        &self,
        reader: &mut R,
        name: &str,
        device: &Device,
    ) -> Result<Weight> {
        let Some(info) = self.iq4_nl.get(name) else {
            return self.tensor(reader, name, device).map(Weight::from);
        };
        let elems: usize = info.dims.iter().product();
        let n = elems / crate::iq4_nl::BLOCK * crate::iq4_nl::BLOCK_BYTES;
        let start = self.content.tensor_data_offset + info.offset;
        let mut bytes = vec![0u8; n];
        reader
            .seek(SeekFrom::Start(start))
            .and_then(|_| reader.read_exact(&mut bytes))
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Error::Truncated {
                        what: self.name.clone(),
                        detail: format!(
                            "IQ4_NL tensor `{name}` needs {n} bytes from offset {start}, the data ends first"
                        ),
                    }
                } else {
                    Error::io(&self.name, e)
                }
            })?;
        Ok(Weight::Iq4Nl(Iq4NlMatrix::new(info.dims.clone(), bytes)?))
    }

    /// A metadata value.
    ///
    /// # Errors
    /// [`Error::MissingMetadata`].
    pub fn get(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| Error::MissingMetadata(key.to_owned()))
    }

    /// A metadata value as an unsigned integer (any integer width).
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] or [`Error::BadMetadata`].
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        value_to_usize(self.get(key)?).ok_or_else(|| bad(key, "a non-negative integer"))
    }

    /// Like [`GgufFile::get_usize`] but `None` when the key is absent.
    ///
    /// # Errors
    /// [`Error::BadMetadata`] when present with the wrong type.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.content.metadata.get(key) {
            None => Ok(None),
            Some(v) => value_to_usize(v)
                .map(Some)
                .ok_or_else(|| bad(key, "a non-negative integer")),
        }
    }

    /// A float metadata value, `None` when absent.
    ///
    /// # Errors
    /// [`Error::BadMetadata`] when present with the wrong type.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.content.metadata.get(key) {
            None => Ok(None),
            Some(Value::F32(v)) => Ok(Some(*v)),
            #[allow(clippy::cast_possible_truncation)]
            Some(Value::F64(v)) => Ok(Some(*v as f32)),
            Some(_) => Err(bad(key, "a float")),
        }
    }

    /// A string metadata value.
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] or [`Error::BadMetadata`].
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.get(key)? {
            Value::String(s) => Ok(s),
            _ => Err(bad(key, "a string")),
        }
    }

    /// A string metadata value, `None` when absent.
    ///
    /// # Errors
    /// [`Error::BadMetadata`] when present with the wrong type.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.content.metadata.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(key, "a string")),
        }
    }

    /// An array-of-strings metadata value.
    ///
    /// # Errors
    /// [`Error::MissingMetadata`] or [`Error::BadMetadata`].
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>> {
        let Value::Array(items) = self.get(key)? else {
            return Err(bad(key, "an array of strings"));
        };
        items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.as_str()),
                _ => Err(bad(key, "an array of strings")),
            })
            .collect()
    }

    /// An array-of-integers metadata value, `None` when absent.
    ///
    /// # Errors
    /// [`Error::BadMetadata`] when present with the wrong type.
    pub fn opt_i64_array(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(v) = self.content.metadata.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(bad(key, "an array of integers"));
        };
        items
            .iter()
            .map(|v| value_to_i64(v).ok_or_else(|| bad(key, "an array of integers")))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

fn bad(key: &str, expected: &str) -> Error {
    Error::BadMetadata {
        key: key.to_owned(),
        expected: expected.to_owned(),
    }
}

fn value_to_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}

fn value_to_usize(v: &Value) -> Option<usize> {
    usize::try_from(value_to_i64(v)?).ok()
}

/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_TENSOR_DIMS: u32 = 4;

/// The candle type of a ggml tensor type id, for the types candle can compute with
/// (IQ4_NL, which only this crate computes with, is [`WeightType::from_id`]'s).
#[must_use]
pub fn ggml_dtype_from_id(type_id: u32) -> Option<GgmlDType> {
    WeightType::from_id(type_id).and_then(WeightType::ggml)
}

/// The GGUF header parser.
///
/// Every length field is checked against the bytes left in the file before anything is
/// allocated from it, so a corrupt or hostile header costs at most a small multiple of the
/// file's own size; every defect is reported with the key or tensor it concerns. The result
/// is candle's `Content`, so tensor reading stays candle's.
struct HeaderReader<'a, R> {
    r: &'a mut R,
    /// Bytes consumed so far.
    pos: u64,
    file_len: u64,
    name: &'a str,
    /// GGUF v1 stores lengths and counts as u32 (v2 and v3: u64).
    v1: bool,
}

/// Bytes a value of GGUF type `ty` occupies at least (used to bound array lengths).
fn min_value_size(ty: u32, len_size: u64) -> u64 {
    match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => len_size,
        _ => 4 + len_size,
    }
}

impl<'a, R: Read + Seek> HeaderReader<'a, R> {
    fn new(r: &'a mut R, file_len: u64, name: &'a str) -> Self {
        Self {
            r,
            pos: 0,
            file_len,
            name,
            v1: false,
        }
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::Corrupt {
            what: self.name.to_owned(),
            detail,
        }
    }

    fn remaining(&self) -> u64 {
        self.file_len.saturating_sub(self.pos)
    }

    /// Reads `n` bytes (`n` already checked against the file length by the caller or here).
    fn bytes(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<Vec<u8>> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                what: self.name.to_owned(),
                detail: format!(
                    "{} needs {n} bytes at offset {}, the file has {} left",
                    what(),
                    self.pos,
                    self.remaining()
                ),
            });
        }
        let len =
            usize::try_from(n).map_err(|_| self.corrupt(format!("{} is too large", what())))?;
        let mut buf = vec![0u8; len];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| Error::io(self.name, e))?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let b = self.bytes(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&b);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length or count: u32 in GGUF v1, u64 after.
    fn len(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        if self.v1 {
            self.u32(what).map(u64::from)
        } else {
            self.u64(what)
        }
    }

    fn len_size(&self) -> u64 {
        if self.v1 { 4 } else { 8 }
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.len(&|| format!("the length of {}", what()))?;
        if len > self.remaining() {
            return Err(Error::Truncated {
                what: self.name.to_owned(),
                detail: format!(
                    "{} claims {len} bytes at offset {}, the file has {} left",
                    what(),
                    self.pos,
                    self.remaining()
                ),
            });
        }
        let mut v = self.bytes(len, what)?;
        // Strings are not NUL-terminated by the spec, but some writers add one.
        while v.last() == Some(&0) {
            v.pop();
        }
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    fn value(&mut self, ty: u32, key: &str, nested: bool) -> Result<Value> {
        let what = || format!("the value of `{key}`");
        Ok(match ty {
            0 => Value::U8(self.array::<1>(&what)?[0]),
            1 => Value::I8(i8::from_le_bytes(self.array(&what)?)),
            2 => Value::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => Value::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => Value::U32(u32::from_le_bytes(self.array(&what)?)),
            5 => Value::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => Value::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => match self.array::<1>(&what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(self.corrupt(format!("`{key}`: bool value {b}, expected 0 or 1")));
                }
            },
            8 => Value::String(self.string(&what)?),
            9 if nested => {
                return Err(self.corrupt(format!("`{key}`: arrays of arrays are not supported")));
            }
            9 => {
                let elem_ty = self.u32(&|| format!("the element type of `{key}`"))?;
                if elem_ty > 12 {
                    return Err(self.corrupt(format!(
                        "`{key}`: unknown array element type {elem_ty} (expected 0 to 12)"
                    )));
                }
                let n = self.len(&|| format!("the length of array `{key}`"))?;
                let min = min_value_size(elem_ty, self.len_size());
                if n.saturating_mul(min) > self.remaining() {
                    return Err(Error::Truncated {
                        what: self.name.to_owned(),
                        detail: format!(
                            "array `{key}` claims {n} elements (at least {min} bytes each), the file has {} bytes left",
                            self.remaining()
                        ),
                    });
                }
                // Reserve little up front: memory then grows only with elements that are
                // really in the file.
                let mut items = Vec::with_capacity(usize::try_from(n.min(4096)).unwrap_or(0));
                for _ in 0..n {
                    items.push(self.value(elem_ty, key, true)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(u64::from_le_bytes(self.array(&what)?)),
            11 => Value::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => Value::F64(f64::from_le_bytes(self.array(&what)?)),
            other => {
                return Err(self.corrupt(format!(
                    "`{key}`: unknown value type {other} (expected 0 to 12)"
                )));
            }
        })
    }

    fn content(mut self) -> Result<(Content, HashMap<String, Iq4NlInfo>)> {
        let magic = self.array::<4>(&|| "the magic number".to_owned())?;
        if &magic != b"GGUF" {
            return Err(self.corrupt(format!(
                "not a GGUF file (starts with {magic:02x?}, expected the bytes of \"GGUF\")"
            )));
        }
        let version = self.u32(&|| "the version".to_owned())?;
        let versioned = match version {
            1 => gguf_file::VersionedMagic::GgufV1,
            2 => gguf_file::VersionedMagic::GgufV2,
            3 => gguf_file::VersionedMagic::GgufV3,
            v if v.swap_bytes() <= 3 => {
                return Err(self.corrupt(format!(
                    "big-endian GGUF (version {}) is not supported",
                    v.swap_bytes()
                )));
            }
            v => {
                return Err(
                    self.corrupt(format!("unsupported GGUF version {v} (supported: 1, 2, 3)"))
                );
            }
        };
        self.v1 = version == 1;
        let n_tensors = self.len(&|| "the tensor count".to_owned())?;
        let n_kv = self.len(&|| "the metadata count".to_owned())?;
        // A key-value pair takes at least a key length, a type and one byte; a tensor entry
        // a name length, a dimension count, a type and an offset.
        let needed = n_kv
            .saturating_mul(self.len_size() + 5)
            .saturating_add(n_tensors.saturating_mul(self.len_size() + 16));
        if needed > self.remaining() {
            return Err(Error::Truncated {
                what: self.name.to_owned(),
                detail: format!(
                    "the header declares {n_tensors} tensors and {n_kv} metadata entries (at least {needed} bytes), the file has {} bytes left",
                    self.remaining()
                ),
            });
        }
        let mut metadata = HashMap::new();
        for i in 0..n_kv {
            let key = self.string(&|| format!("metadata key #{i}"))?;
            let ty = self.u32(&|| format!("the type of `{key}`"))?;
            let value = self.value(ty, &key, false)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(self.corrupt(format!("metadata key `{key}` appears twice")));
            }
        }
        let alignment = match metadata.get("general.alignment") {
            None => gguf_file::DEFAULT_ALIGNMENT,
            Some(v) => match value_to_i64(v).and_then(|a| u64::try_from(a).ok()) {
                Some(a) if a.is_power_of_two() => a,
                _ => {
                    return Err(Error::BadMetadata {
                        key: "general.alignment".to_owned(),
                        expected: format!("a power of two, got {v:?}"),
                    });
                }
            },
        };
        let mut tensor_infos = HashMap::new();
        let mut iq4_nl = HashMap::new();
        for i in 0..n_tensors {
            let tname = self.string(&|| format!("tensor name #{i}"))?;
            let n_dims = self.u32(&|| format!("the dimension count of tensor `{tname}`"))?;
            if n_dims > MAX_TENSOR_DIMS {
                return Err(self.corrupt(format!(
                    "tensor `{tname}` has {n_dims} dimensions, at most {MAX_TENSOR_DIMS} are allowed"
                )));
            }
            let mut dims = Vec::with_capacity(MAX_TENSOR_DIMS as usize);
            for d in 0..n_dims {
                let what = || format!("dimension {d} of tensor `{tname}`");
                let dim = if self.v1 {
                    u64::from(self.u32(&what)?)
                } else {
                    self.u64(&what)?
                };
                let dim = usize::try_from(dim).map_err(|_| {
                    self.corrupt(format!(
                        "tensor `{tname}`: dimension {d} = {dim} is too large"
                    ))
                })?;
                dims.push(dim);
            }
            // GGUF lists dimensions innermost first; candle's shapes are outermost first.
            dims.reverse();
            let type_id = self.u32(&|| format!("the type of tensor `{tname}`"))?;
            let Some(ty) = WeightType::from_id(type_id) else {
                return Err(Error::UnsupportedTensorType {
                    type_id,
                    type_name: ggml_type_name(type_id),
                    tensor: format!(" in tensor `{tname}`"),
                });
            };
            let offset = self.u64(&|| format!("the data offset of tensor `{tname}`"))?;
            if offset % alignment != 0 {
                return Err(self.corrupt(format!(
                    "tensor `{tname}`: data offset {offset} is not a multiple of the alignment {alignment}"
                )));
            }
            let twice = match ty {
                WeightType::Ggml(ggml_dtype) => {
                    let info = gguf_file::TensorInfo {
                        ggml_dtype,
                        shape: candle_core::Shape::from(dims),
                        offset,
                    };
                    iq4_nl.contains_key(&tname)
                        || tensor_infos.insert(tname.clone(), info).is_some()
                }
                WeightType::Iq4Nl => {
                    tensor_infos.contains_key(&tname)
                        || iq4_nl
                            .insert(tname.clone(), Iq4NlInfo { dims, offset })
                            .is_some()
                }
            };
            if twice {
                return Err(self.corrupt(format!("tensor `{tname}` appears twice")));
            }
        }
        let tensor_data_offset = self
            .pos
            .div_ceil(alignment)
            .checked_mul(alignment)
            .ok_or_else(|| self.corrupt("the tensor data offset overflows".to_owned()))?;
        Ok((
            Content {
                magic: versioned,
                metadata,
                tensor_infos,
                tensor_data_offset,
            },
            iq4_nl,
        ))
    }
}

/// Sorts a candle parse error into this crate's variants.
fn classify_parse_error(e: &candle_core::Error, name: &str) -> Error {
    let msg = e.to_string();
    if let Some(rest) = msg.split("unknown dtype for tensor ").nth(1) {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(type_id) = digits.parse::<u32>() {
            return Error::UnsupportedTensorType {
                type_id,
                type_name: ggml_type_name(type_id),
                tensor: String::new(),
            };
        }
    }
    let truncated = msg.contains("remaining")
        || msg.contains("failed to fill whole buffer")
        || msg.to_ascii_lowercase().contains("unexpected end of file")
        || matches!(e, candle_core::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof);
    if truncated {
        Error::Truncated {
            what: name.to_owned(),
            detail: msg,
        }
    } else if msg.contains("unknown magic") {
        Error::Corrupt {
            what: name.to_owned(),
            detail: format!("not a GGUF file ({msg})"),
        }
    } else {
        Error::Corrupt {
            what: name.to_owned(),
            detail: msg,
        }
    }
}

/// Writes a GGUF file (version 2, 32-byte alignment) to `w`: the layout candle's writer
/// produces, written here because candle's cannot emit IQ4_NL (type 20).
///
/// Any `general.alignment` entry in `metadata` is replaced by [`WRITE_ALIGNMENT`], the
/// alignment the data is actually written with.
///
/// # Errors
/// I/O or tensor errors; [`Error::InvalidArgument`] for a metadata array mixing value
/// types.
pub fn write_gguf<W: Write + Seek>(
    w: &mut W,
    metadata: &[(String, Value)],
    tensors: &[(String, Weight)],
) -> Result<()> {
    let io = |e: std::io::Error| Error::io("<GGUF writer>", e);
    let align = Value::U32(WRITE_ALIGNMENT);
    let mut md: Vec<(&str, &Value)> = metadata
        .iter()
        .filter(|(k, _)| k != "general.alignment")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    md.push(("general.alignment", &align));
    let mut head = Vec::new();
    head.extend_from_slice(b"GGUF");
    head.extend_from_slice(&2u32.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(md.len() as u64).to_le_bytes());
    for (key, value) in &md {
        put_string(&mut head, key);
        head.extend_from_slice(&value_type_id(value).to_le_bytes());
        put_value(&mut head, value, key)?;
    }
    let pad = |n: usize| n.next_multiple_of(WRITE_ALIGNMENT as usize) - n;
    let mut offset = 0usize;
    for (name, t) in tensors {
        put_string(&mut head, name);
        let dims = t.dims();
        head.extend_from_slice(&u32::try_from(dims.len()).unwrap_or(u32::MAX).to_le_bytes());
        // GGUF lists dimensions innermost first.
        for &d in dims.iter().rev() {
            head.extend_from_slice(&(d as u64).to_le_bytes());
        }
        head.extend_from_slice(&t.dtype().id().to_le_bytes());
        head.extend_from_slice(&(offset as u64).to_le_bytes());
        let size = t.storage_bytes();
        offset += size + pad(size);
    }
    head.resize(head.len() + pad(head.len()), 0);
    w.write_all(&head).map_err(io)?;
    for (_, t) in tensors {
        let data = t.data()?;
        w.write_all(&data).map_err(io)?;
        w.write_all(&vec![0u8; pad(data.len())]).map_err(io)?;
    }
    Ok(())
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The GGUF value-type id of `v` (arrays: 9, whatever their elements; nested arrays
/// write their own element type).
fn value_type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value, key: &str) -> Result<()> {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(x) => put_string(out, x),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(items) => {
            // The element type is declared once; an empty array's does not matter (U32,
            // as candle writes it).
            let ty = match items.first() {
                Some(first) => value_type_id(first),
                None => 4,
            };
            for item in items {
                if value_type_id(item) != ty {
                    return Err(Error::InvalidArgument(format!(
                        "metadata `{key}`: an array mixes value types"
                    )));
                }
            }
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item, key)?;
            }
        }
    }
    Ok(())
}

/// Writes a GGUF file atomically: to `PATH.tmp`, then renamed over `path`.
///
/// # Errors
/// I/O or tensor errors; the target is untouched on failure.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_gguf_file(
    path: &std::path::Path,
    metadata: &[(String, Value)],
    tensors: &[(String, Weight)],
) -> Result<()> {
    edgewise_atomic_file::write_with(path, |w| write_gguf(w, metadata, tensors)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;
    use std::io::Cursor;

    /// The values of the IQ4_NL tensor "d" (16 blocks: 288 bytes, no padding after it).
    fn iq4_source() -> Vec<f32> {
        (0..512u16).map(|i| f32::from(i) * 0.004 - 1.0).collect()
    }

    fn sample_file() -> Vec<u8> {
        let dev = Device::Cpu;
        let a = Tensor::arange(0f32, 64., &dev)
            .unwrap()
            .reshape((2, 32))
            .unwrap();
        let b = Tensor::arange(0f32, 256., &dev)
            .unwrap()
            .affine(0.01, -1.0)
            .unwrap()
            .reshape((4, 64))
            .unwrap();
        let q = |t: &Tensor, ty| Weight::from(QTensor::quantize(t, ty).unwrap());
        let tensors = vec![
            ("a".to_owned(), q(&a, GgmlDType::F32)),
            ("b".to_owned(), q(&b, GgmlDType::Q8_0)),
            ("c".to_owned(), q(&b, GgmlDType::Q4_1)),
            (
                "d".to_owned(),
                Weight::Iq4Nl(Iq4NlMatrix::quantize_plain(vec![8, 64], &iq4_source()).unwrap()),
            ),
        ];
        let md = vec![
            (
                "general.architecture".to_owned(),
                Value::String("llama".into()),
            ),
            ("x.count".to_owned(), Value::U32(7)),
            (
                "x.list".to_owned(),
                Value::Array(vec![Value::String("p".into()), Value::String("q".into())]),
            ),
        ];
        let mut buf = Cursor::new(Vec::new());
        write_gguf(&mut buf, &md, &tensors).unwrap();
        buf.into_inner()
    }

    #[test]
    fn write_then_read_round_trips() {
        let bytes = sample_file();
        let mut r = Cursor::new(&bytes);
        let g = GgufFile::read(&mut r, "<memory>").unwrap();
        assert_eq!(g.get_str("general.architecture").unwrap(), "llama");
        assert_eq!(g.get_usize("x.count").unwrap(), 7);
        assert_eq!(g.get_str_array("x.list").unwrap(), vec!["p", "q"]);
        assert_eq!(g.get_usize("general.alignment").unwrap(), 32);
        let infos = g.tensor_infos();
        assert_eq!(infos.len(), 4);
        assert_eq!(infos[1], ("b", vec![4, 64], GgmlDType::Q8_0.into()));
        assert_eq!(infos[3], ("d", vec![8, 64], WeightType::Iq4Nl));
        let a = g.tensor(&mut r, "a", &Device::Cpu).unwrap();
        let a = a.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        assert_eq!(a.to_vec1::<f32>().unwrap()[63], 63.0);
        let c = g.tensor(&mut r, "c", &Device::Cpu).unwrap();
        assert_eq!(c.dtype(), GgmlDType::Q4_1);
    }

    /// IQ4_NL is written as type 20 with 18 bytes per 32 values and read back with the
    /// same bytes; candle's reader (`tensor`) refuses it by name.
    #[test]
    fn iq4_nl_tensors_round_trip_as_type_20() {
        let bytes = sample_file();
        // The directory entry of "d": name, 2 dims (64, 8 innermost first), type 20.
        let mut entry = vec![1u8, 0, 0, 0, 0, 0, 0, 0, b'd', 2, 0, 0, 0];
        entry.extend_from_slice(&64u64.to_le_bytes());
        entry.extend_from_slice(&8u64.to_le_bytes());
        entry.extend_from_slice(&20u32.to_le_bytes());
        assert!(bytes.windows(entry.len()).any(|w| w == entry));
        let mut r = Cursor::new(&bytes);
        let g = GgufFile::read(&mut r, "<memory>").unwrap();
        let d = g.weight(&mut r, "d", &Device::Cpu).unwrap();
        assert_eq!(d.dtype(), WeightType::Iq4Nl);
        assert_eq!(d.dims(), [8, 64]);
        assert_eq!(d.storage_bytes(), 16 * 18);
        let want = Iq4NlMatrix::quantize_plain(vec![8, 64], &iq4_source()).unwrap();
        assert_eq!(d.data().unwrap().as_ref(), want.bytes());
        // Near the source values: at most half the widest codebook gap (24 levels) times
        // the scale (≤ 1/127) away.
        let dv: Vec<f32> = d
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let src = iq4_source();
        let worst = dv
            .iter()
            .zip(&src)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 0.095, "{worst}");
        let e = g.tensor(&mut r, "d", &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("IQ4_NL") && e.contains("`d`"), "{e}");
        // Written again, the file is byte for byte the same.
        let tensors: Vec<(String, Weight)> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| ((*n).to_owned(), g.weight(&mut r, n, &Device::Cpu).unwrap()))
            .collect();
        let md: Vec<(String, Value)> = ["general.architecture", "x.count", "x.list"]
            .iter()
            .map(|k| ((*k).to_owned(), g.get(k).unwrap().clone()))
            .collect();
        let mut again = Cursor::new(Vec::new());
        write_gguf(&mut again, &md, &tensors).unwrap();
        assert_eq!(again.into_inner(), bytes);
    }

    /// A file cut inside the IQ4_NL tensor is reported as truncated at open; a directory
    /// entry whose rows are not whole blocks is corrupt.
    #[test]
    fn truncated_or_misshapen_iq4_nl_is_an_error() {
        let bytes = sample_file();
        let err =
            GgufFile::read(&mut Cursor::new(&bytes[..bytes.len() - 40]), "t.gguf").unwrap_err();
        assert!(
            matches!(&err, Error::Truncated { detail, .. } if detail.contains("`d`")),
            "{err}"
        );
        let mut bad = bytes;
        let mut entry = vec![1u8, 0, 0, 0, 0, 0, 0, 0, b'd', 2, 0, 0, 0];
        entry.extend_from_slice(&64u64.to_le_bytes());
        entry.extend_from_slice(&8u64.to_le_bytes());
        let pos = bad.windows(entry.len()).position(|w| w == entry).unwrap();
        // Rows of 48 values, 32 rows: as many values, but not whole blocks per row.
        bad[pos + 13..pos + 21].copy_from_slice(&48u64.to_le_bytes());
        bad[pos + 21..pos + 29].copy_from_slice(&32u64.to_le_bytes());
        let err = GgufFile::read(&mut Cursor::new(&bad), "t.gguf").unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { detail, .. } if detail.contains("48 values per row")),
            "{err}"
        );
    }

    #[test]
    fn truncated_file_is_reported() {
        let bytes = sample_file();
        for cut in [4, 20, bytes.len() - 10] {
            let err = GgufFile::read(&mut Cursor::new(&bytes[..cut]), "t.gguf").unwrap_err();
            assert!(matches!(err, Error::Truncated { .. }), "cut {cut}: {err}");
        }
    }

    #[test]
    fn garbage_is_corrupt() {
        let err = GgufFile::read(&mut Cursor::new(b"not a gguf file at all"), "x").unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("not a GGUF file"), "{err}");
    }

    #[test]
    fn unsupported_type_is_named() {
        let mut bytes = sample_file();
        // Find tensor "a"'s type field: name len (8) + "a" + n_dims (4) + dims (2*8) then type.
        let pat = [1u8, 0, 0, 0, 0, 0, 0, 0, b'a'];
        let pos = bytes.windows(pat.len()).position(|w| w == pat).unwrap();
        let type_pos = pos + pat.len() + 4 + 16;
        bytes[type_pos..type_pos + 4].copy_from_slice(&23u32.to_le_bytes());
        let err = GgufFile::read(&mut Cursor::new(&bytes), "x").unwrap_err();
        assert!(
            matches!(
                err,
                Error::UnsupportedTensorType {
                    type_id: 23,
                    type_name: "IQ4_XS",
                    ..
                }
            ),
            "{err}"
        );
    }
}
