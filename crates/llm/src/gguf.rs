//! GGUF reading and writing.
//!
//! The header parser is ours (`HeaderReader`): every length and count is checked against
//! the bytes left in the file before anything is allocated from it, and each defect names
//! the key or tensor at fault. It produces candle's `gguf_file::Content`, and tensor data is
//! read by candle. Around it: every tensor's extent is checked against the file length up
//! front (so a truncated download is reported at open, naming the tensor), failures are
//! sorted into truncated / corrupt / unsupported-type errors, typed metadata getters name
//! the missing or mistyped key, and writing goes through a temp file and a rename.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};

use candle_core::Device;
use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};

use crate::error::{Error, Result};

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
    name: String,
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
        let content = HeaderReader::new(reader, file_len, name).content()?;
        for (tname, info) in &content.tensor_infos {
            let Some(elems) = info
                .shape
                .dims()
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            else {
                return Err(Error::Corrupt {
                    what: name.to_owned(),
                    detail: format!(
                        "tensor `{tname}` has dimensions {:?} whose product overflows",
                        info.shape.dims()
                    ),
                });
            };
            // An empty tensor is never a model weight, and candle would build it from a
            // dangling, unaligned pointer (found by cargo fuzz).
            if elems == 0 {
                return Err(Error::Corrupt {
                    what: name.to_owned(),
                    detail: format!(
                        "tensor `{tname}` has dimensions {:?}: every dimension must be at least 1",
                        info.shape.dims()
                    ),
                });
            }
            if elems % info.ggml_dtype.block_size() != 0 {
                return Err(Error::Corrupt {
                    what: name.to_owned(),
                    detail: format!(
                        "tensor `{tname}` has {elems} elements, not a multiple of the {:?} block size {}",
                        info.ggml_dtype,
                        info.ggml_dtype.block_size()
                    ),
                });
            }
            let end = content
                .tensor_data_offset
                .checked_add(info.offset)
                .and_then(|x| {
                    let bytes = (elems / info.ggml_dtype.block_size())
                        .checked_mul(info.ggml_dtype.type_size())?;
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
    pub fn tensor_infos(&self) -> Vec<(&str, Vec<usize>, GgmlDType)> {
        let mut v: Vec<_> = self
            .content
            .tensor_infos
            .iter()
            .map(|(n, i)| (n.as_str(), i.shape.dims().to_vec(), i.ggml_dtype))
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Whether a tensor of this name exists.
    #[must_use]
    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Reads one tensor's data.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] or an I/O / tensor error.
    pub fn tensor<R: Read + Seek>(
        &self,
        reader: &mut R,
        name: &str,
        device: &Device,
    ) -> Result<QTensor> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| Error::MissingTensor(name.to_owned()))?;
        info.read(reader, self.content.tensor_data_offset, device)
            .map_err(|e| classify_parse_error(&e, &self.name))
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

/// The candle type of a ggml tensor type id, for the types candle can compute with.
#[must_use]
pub fn ggml_dtype_from_id(type_id: u32) -> Option<GgmlDType> {
    Some(match type_id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
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

    fn content(mut self) -> Result<Content> {
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
            let Some(ggml_dtype) = ggml_dtype_from_id(type_id) else {
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
            let info = gguf_file::TensorInfo {
                ggml_dtype,
                shape: candle_core::Shape::from(dims),
                offset,
            };
            if tensor_infos.insert(tname.clone(), info).is_some() {
                return Err(self.corrupt(format!("tensor `{tname}` appears twice")));
            }
        }
        let tensor_data_offset = self
            .pos
            .div_ceil(alignment)
            .checked_mul(alignment)
            .ok_or_else(|| self.corrupt("the tensor data offset overflows".to_owned()))?;
        Ok(Content {
            magic: versioned,
            metadata,
            tensor_infos,
            tensor_data_offset,
        })
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

/// Writes a GGUF file (version 2, 32-byte alignment) to `w`.
///
/// Any `general.alignment` entry in `metadata` is replaced by [`WRITE_ALIGNMENT`], the
/// alignment the data is actually written with.
///
/// # Errors
/// I/O or tensor errors.
pub fn write_gguf<W: Write + Seek>(
    w: &mut W,
    metadata: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> Result<()> {
    let align = Value::U32(WRITE_ALIGNMENT);
    let mut md: Vec<(&str, &Value)> = metadata
        .iter()
        .filter(|(k, _)| k != "general.alignment")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    md.push(("general.alignment", &align));
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    gguf_file::write(w, &md, &ts)?;
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
    tensors: &[(String, QTensor)],
) -> Result<()> {
    edgewise_atomic_file::write_with(path, |w| write_gguf(w, metadata, tensors)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;
    use std::io::Cursor;

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
        let tensors = vec![
            (
                "a".to_owned(),
                QTensor::quantize(&a, GgmlDType::F32).unwrap(),
            ),
            (
                "b".to_owned(),
                QTensor::quantize(&b, GgmlDType::Q8_0).unwrap(),
            ),
            (
                "c".to_owned(),
                QTensor::quantize(&b, GgmlDType::Q4_1).unwrap(),
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
        assert_eq!(infos.len(), 3);
        assert_eq!(infos[1], ("b", vec![4, 64], GgmlDType::Q8_0));
        let a = g.tensor(&mut r, "a", &Device::Cpu).unwrap();
        let a = a.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        assert_eq!(a.to_vec1::<f32>().unwrap()[63], 63.0);
        let c = g.tensor(&mut r, "c", &Device::Cpu).unwrap();
        assert_eq!(c.dtype(), GgmlDType::Q4_1);
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
        bytes[type_pos..type_pos + 4].copy_from_slice(&20u32.to_le_bytes());
        let err = GgufFile::read(&mut Cursor::new(&bytes), "x").unwrap_err();
        assert!(
            matches!(
                err,
                Error::UnsupportedTensorType {
                    type_id: 20,
                    type_name: "IQ4_NL",
                    ..
                }
            ),
            "{err}"
        );
    }
}
