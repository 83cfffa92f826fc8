//! Reading Hugging Face checkpoints (`config.json` + `*.safetensors`) into a [`Model`].
//!
//! The safetensors parsing is candle's; this module maps the Hugging Face tensor names to
//! the GGUF ones used everywhere else in this crate and reads the configuration. For the
//! Llama and Mistral families the query/key rows are permuted from the Hugging Face
//! rotary layout (halves) to the GGUF one (adjacent pairs), as llama.cpp's converter does,
//! so a model read here exports to a GGUF that llama.cpp runs. Qwen keeps the halves
//! layout in GGUF too and needs no permutation.

use std::collections::HashMap;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use serde_json::Value as Json;

use edgewise_llm::config::{Architecture, ModelConfig, RopeStyle};
use edgewise_llm::error::{Error, Result};
use edgewise_llm::model::Model;

fn field(cfg: &Json, key: &str) -> Result<usize> {
    let v = cfg
        .get(key)
        .ok_or_else(|| Error::MissingMetadata(format!("config.json: {key}")))?;
    v.as_u64()
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| Error::BadMetadata {
            key: format!("config.json: {key}"),
            expected: "a non-negative integer".into(),
        })
}

fn opt_field(cfg: &Json, key: &str) -> Result<Option<usize>> {
    match cfg.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(_) => field(cfg, key).map(Some),
    }
}

fn opt_f32(cfg: &Json, key: &str) -> Result<Option<f32>> {
    match cfg.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => {
            #[allow(clippy::cast_possible_truncation)]
            let x = v.as_f64().ok_or_else(|| Error::BadMetadata {
                key: format!("config.json: {key}"),
                expected: "a number".into(),
            })? as f32;
            Ok(Some(x))
        }
    }
}

/// Parses a Hugging Face `config.json`; also returns whether the output matrix is tied to
/// the embedding.
///
/// # Errors
/// [`Error::UnknownArchitecture`] for a `model_type` other than llama, mistral, qwen2 or
/// qwen3; [`Error::MissingMetadata`] / [`Error::BadMetadata`] naming the field.
pub fn config_from_hf_json(text: &str) -> Result<(ModelConfig, bool)> {
    let cfg: Json = serde_json::from_str(text).map_err(|e| Error::BadMetadata {
        key: "config.json".into(),
        expected: format!("a JSON object ({e})"),
    })?;
    let model_type = cfg
        .get("model_type")
        .and_then(Json::as_str)
        .ok_or_else(|| Error::MissingMetadata("config.json: model_type".into()))?;
    let arch = Architecture::from_gguf_name(model_type)?;
    let n_layer = field(&cfg, "num_hidden_layers")?;
    let n_embd = field(&cfg, "hidden_size")?;
    let n_head = field(&cfg, "num_attention_heads")?;
    let n_head_kv = opt_field(&cfg, "num_key_value_heads")?.unwrap_or(n_head);
    if n_head == 0 {
        return Err(Error::BadMetadata {
            key: "config.json: num_attention_heads".into(),
            expected: "a positive integer".into(),
        });
    }
    let head_dim = opt_field(&cfg, "head_dim")?.unwrap_or(n_embd / n_head);
    let use_window = cfg
        .get("use_sliding_window")
        .and_then(Json::as_bool)
        .unwrap_or(arch == Architecture::Mistral);
    let config = ModelConfig {
        arch,
        n_layer,
        n_embd,
        n_ff: vec![field(&cfg, "intermediate_size")?; n_layer],
        n_head: vec![n_head; n_layer],
        n_head_kv: vec![n_head_kv; n_layer],
        head_dim,
        vocab_size: field(&cfg, "vocab_size")?,
        context_length: opt_field(&cfg, "max_position_embeddings")?.unwrap_or(2048),
        rope_theta: opt_f32(&cfg, "rope_theta")?.unwrap_or(10_000.0),
        rope_style: match arch {
            Architecture::Llama | Architecture::Mistral => RopeStyle::Interleaved,
            Architecture::Qwen2 | Architecture::Qwen3 => RopeStyle::Halves,
        },
        rms_eps: opt_f32(&cfg, "rms_norm_eps")?.unwrap_or(1e-5),
        qk_norm: arch == Architecture::Qwen3,
        sliding_window: if use_window {
            opt_field(&cfg, "sliding_window")?
        } else {
            None
        },
    };
    config.validate()?;
    let tied = cfg
        .get("tie_word_embeddings")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    Ok((config, tied))
}

/// The GGUF name of a Hugging Face tensor name (`None` for tensors the model does not use,
/// such as rotary caches).
#[must_use]
pub fn gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, tail) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = tail.rsplit_once('.')?;
    let short = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{kind}"))
}

/// Row order taking a Hugging Face (halves) q/k projection of `heads` heads to the GGUF
/// (adjacent pairs) layout: GGUF row `(h, 2i + p)` is HF row `(h, p·hd/2 + i)`.
#[must_use]
pub fn rope_permutation(heads: usize, head_dim: usize) -> Vec<u32> {
    let half = head_dim / 2;
    (0..heads)
        .flat_map(|h| {
            (0..head_dim).map(move |j| {
                let (i, p) = (j / 2, j % 2);
                u32::try_from(h * head_dim + p * half + i).unwrap_or(u32::MAX)
            })
        })
        .collect()
}

/// Builds a model from Hugging Face-named tensors and a configuration (from
/// [`config_from_hf_json`]). Weights are kept as F32 (quantize them with
/// [`crate::compress::quantize`]).
///
/// # Errors
/// Missing-tensor and shape errors (named in GGUF terms), tensor errors.
pub fn model_from_hf_tensors(
    tensors: HashMap<String, Tensor>,
    config: ModelConfig,
    tied: bool,
    device: &Device,
) -> Result<Model> {
    let permute = config.rope_style == RopeStyle::Interleaved;
    let mut by_gguf: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in tensors {
        let Some(g) = gguf_name(&name) else { continue };
        if tied && g == "output.weight" {
            continue;
        }
        let mut t = t.to_dtype(DType::F32)?;
        if permute {
            let heads = |l: &str, kv: bool| -> Option<usize> {
                let l: usize = l.parse().ok()?;
                Some(if kv {
                    *config.n_head_kv.get(l)?
                } else {
                    *config.n_head.get(l)?
                })
            };
            let parts: Vec<&str> = g.split('.').collect();
            if let [_, l, which @ ("attn_q" | "attn_k"), _] = parts.as_slice()
                && let Some(h) = heads(l, *which == "attn_k")
                && t.dim(0)? == h * config.head_dim
            {
                let idx = Tensor::new(rope_permutation(h, config.head_dim).as_slice(), device)?;
                t = t.index_select(&idx, 0)?;
            }
        }
        by_gguf.insert(g, t);
    }
    let mut get = |name: &str| -> Result<Option<QTensor>> {
        by_gguf
            .remove(name)
            .map(|t| Ok(QTensor::quantize(&t.contiguous()?, GgmlDType::F32)?))
            .transpose()
    };
    Model::from_tensors(config, &mut get, device)
}

/// Loads a Hugging Face model folder: `config.json` and every `*.safetensors` file in it
/// (single file or shards).
///
/// # Errors
/// [`Error::Io`] for unreadable files, [`Error::InvalidArgument`] when the folder has no
/// safetensors file, and the errors of [`config_from_hf_json`] / [`model_from_hf_tensors`].
#[cfg(not(target_arch = "wasm32"))]
pub fn load_hf_dir(dir: &std::path::Path, device: &Device) -> Result<Model> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let (config, tied) = config_from_hf_json(&text)?;
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{} has no *.safetensors file",
            dir.display()
        )));
    }
    let mut tensors = HashMap::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        let part =
            candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| Error::Corrupt {
                what: f.display().to_string(),
                detail: format!("not a readable safetensors file ({e})"),
            })?;
        tensors.extend(part);
    }
    model_from_hf_tensors(tensors, config, tied, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgewise_llm::model::tiny_config;

    /// Hugging Face tensors of `m` (inverse of the mapping above).
    fn to_hf(m: &Model) -> HashMap<String, Tensor> {
        let cfg = m.config();
        let mut out = HashMap::new();
        let inverse: HashMap<String, String> = (0..cfg.n_layer)
            .flat_map(|l| {
                [
                    "input_layernorm",
                    "post_attention_layernorm",
                    "self_attn.q_proj",
                    "self_attn.k_proj",
                    "self_attn.v_proj",
                    "self_attn.o_proj",
                    "self_attn.q_norm",
                    "self_attn.k_norm",
                    "mlp.gate_proj",
                    "mlp.up_proj",
                    "mlp.down_proj",
                ]
                .map(|n| format!("model.layers.{l}.{n}.weight"))
            })
            .chain([
                "model.embed_tokens.weight".into(),
                "model.norm.weight".into(),
            ])
            .map(|hf| (gguf_name(&hf).unwrap(), hf))
            .collect();
        for (g, q) in m.named_tensors().unwrap() {
            let mut t = q.dequantize(&Device::Cpu).unwrap();
            let parts: Vec<&str> = g.split('.').collect();
            if cfg.rope_style == RopeStyle::Interleaved
                && let [_, _, "attn_q" | "attn_k", _] = parts.as_slice()
            {
                let h = t.dim(0).unwrap() / cfg.head_dim;
                let perm = rope_permutation(h, cfg.head_dim);
                let mut inv = vec![0u32; perm.len()];
                for (j, &p) in perm.iter().enumerate() {
                    inv[p as usize] = u32::try_from(j).unwrap();
                }
                t = t
                    .index_select(&Tensor::new(inv.as_slice(), &Device::Cpu).unwrap(), 0)
                    .unwrap();
            }
            out.insert(inverse[&g].clone(), t);
        }
        out
    }

    #[test]
    fn hf_checkpoint_loads_to_the_same_model() {
        for (arch, mt) in [
            (Architecture::Llama, "llama"),
            (Architecture::Qwen3, "qwen3"),
        ] {
            let mut cfg = tiny_config(2);
            cfg.arch = arch;
            cfg.qk_norm = arch == Architecture::Qwen3;
            if cfg.qk_norm {
                cfg.rope_style = RopeStyle::Halves;
            }
            let m = Model::synthetic(&cfg, 5, &Device::Cpu).unwrap();
            let dir = std::env::temp_dir().join(format!("edgewise-hf-{mt}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            candle_core::safetensors::save(&to_hf(&m), dir.join("model.safetensors")).unwrap();
            let json = serde_json::json!({
                "model_type": mt,
                "num_hidden_layers": 2,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "head_dim": 16,
                "vocab_size": 256,
                "max_position_embeddings": 256,
                "rope_theta": 10000.0,
                "rms_norm_eps": 1e-5,
                "tie_word_embeddings": true
            });
            std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
            let back = load_hf_dir(&dir, &Device::Cpu).unwrap();
            assert_eq!(back.config(), m.config());
            let toks = [3u32, 9, 27, 81];
            let a: Vec<f32> = m
                .forward(&toks, &mut m.new_cache())
                .unwrap()
                .to_vec1()
                .unwrap();
            let b: Vec<f32> = back
                .forward(&toks, &mut back.new_cache())
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(a, b, "{mt}");
            std::fs::write(dir.join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
            let e = load_hf_dir(&dir, &Device::Cpu).unwrap_err();
            assert!(matches!(e, Error::UnknownArchitecture(_)), "{e}");
            std::fs::write(dir.join("model.safetensors"), b"garbage").unwrap();
            std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
            let e = load_hf_dir(&dir, &Device::Cpu).unwrap_err();
            assert!(e.to_string().contains("not a readable safetensors"), "{e}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
