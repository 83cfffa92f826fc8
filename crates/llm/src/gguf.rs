//! GGUF reading and writing.
//!
//! Parsing is candle's (`candle_core::quantized::gguf_file`); this module adds what a user
//! needs around it: every tensor's extent is checked against the file length up front (so a
//! truncated download is reported at open, naming the tensor), parse failures are sorted
//! into truncated / corrupt / unsupported-type errors, typed metadata getters name the
//! missing or mistyped key, and writing goes through a temp file and a rename.

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
        let content = Content::read(reader).map_err(|e| classify_parse_error(&e, name))?;
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

/// The fuzzing entry point (`crates/llm/fuzz`, and `tests/gguf_fuzz.rs` without nightly):
/// treats `bytes` as an untrusted GGUF file and goes as far as it can — header, every
/// tensor, model configuration, tokenizer, model — returning the first error. It must never
/// panic, abort or allocate much more than the input's size implies.
///
/// # Errors
/// Whatever the input's first defect is.
pub fn fuzz_parse(bytes: &[u8]) -> Result<()> {
    let mut r = std::io::Cursor::new(bytes);
    let g = GgufFile::read(&mut r, "<fuzz>")?;
    let dev = Device::Cpu;
    for (name, _, _) in g.tensor_infos() {
        g.tensor(&mut r, name, &dev)?;
    }
    let _ = crate::tokenizer::Tokenizer::from_gguf(&g);
    let cfg = crate::config::ModelConfig::from_gguf(&g)?;
    // The rotary tables and weights scale with the configuration, not the input: only
    // build models whose weights the file can actually hold.
    let rope = cfg
        .head_dim
        .saturating_mul(cfg.context_length.min(crate::model::MAX_ROPE_POSITIONS));
    let sizes_fit = cfg.head_dim <= 4096
        && rope <= bytes.len().saturating_mul(64)
        && cfg.n_embd <= bytes.len()
        && checked_params(&cfg).is_some_and(|n| n <= bytes.len().saturating_mul(8));
    if sizes_fit {
        crate::model::Model::from_gguf(&g, &mut r, &dev)?;
    }
    Ok(())
}

/// `cfg.n_params()` without overflow.
fn checked_params(cfg: &crate::config::ModelConfig) -> Option<usize> {
    let mut n = cfg.vocab_size.checked_mul(cfg.n_embd)?;
    for l in 0..cfg.n_layer {
        let heads = cfg.n_head[l]
            .checked_add(cfg.n_head_kv[l])?
            .checked_mul(2)?;
        let attn = cfg.n_embd.checked_mul(cfg.head_dim)?.checked_mul(heads)?;
        let ffn = cfg.n_embd.checked_mul(cfg.n_ff[l])?.checked_mul(3)?;
        n = n.checked_add(attn)?.checked_add(ffn)?;
    }
    Some(n)
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
    write_file_atomically(path, |w| write_gguf(w, metadata, tensors)).map(|_| ())
}

/// Runs `write` on a buffered `PATH.tmp`, syncs it and renames it over `path`; returns the
/// bytes written. On any error the temporary file is removed and `path` is untouched.
///
/// # Errors
/// I/O errors (naming the file) or whatever `write` returns.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_file_atomically(
    path: &std::path::Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<()>,
) -> Result<u64> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        let len = file.metadata().map_err(|e| Error::io(&tmp, e))?.len();
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        Ok(len)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
