//! The whole forward on small synthetic models against the CPU engine's logits (its exact
//! f32 path over the same quantized weights): every weight type, both rotary layouts,
//! biases, grouped-query attention, a sliding window and per-layer sizes (a pruned model).

mod common;

use std::collections::HashMap;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use common::{assert_close, gpu, uniform};
use edgewise_gpu::{GpuError, GpuModel, reference};
use edgewise_llm::model::tiny_config;
use edgewise_llm::{Architecture, Model, ModelConfig, RopeStyle, Weight};

/// A synthetic model with its matrices quantized to `ty`, and optional q/k/v biases.
fn model(cfg: &ModelConfig, ty: GgmlDType, biases: bool, seed: u64) -> Model {
    let base = Model::synthetic(cfg, seed, &Device::Cpu).unwrap();
    let mut map: HashMap<String, Weight> = HashMap::new();
    for (name, t) in base.named_tensors().unwrap() {
        let q = if t.dims().len() == 2 {
            QTensor::quantize(&t.dequantize(&Device::Cpu).unwrap(), ty)
                .unwrap()
                .into()
        } else {
            t
        };
        map.insert(name, q);
    }
    if biases {
        for l in 0..cfg.n_layer {
            let hd = cfg.head_dim;
            for (i, (n, rows)) in [
                ("attn_q", cfg.n_head[l] * hd),
                ("attn_k", cfg.n_head_kv[l] * hd),
                ("attn_v", cfg.n_head_kv[l] * hd),
            ]
            .into_iter()
            .enumerate()
            {
                let v = uniform(seed ^ (100 * l + i) as u64, rows, 0.5);
                let t = Tensor::from_vec(v, rows, &Device::Cpu).unwrap();
                map.insert(
                    format!("blk.{l}.{n}.bias"),
                    QTensor::quantize(&t, GgmlDType::F32).unwrap().into(),
                );
            }
        }
    }
    Model::from_weights(cfg.clone(), &mut |n| Ok(map.remove(n)), &Device::Cpu).unwrap()
}

fn top2_gap(l: &[f32]) -> f32 {
    let mut s = l.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    s[0] - s[1]
}

/// Prefill in two chunks, then greedy decode, each step's logits against the CPU engine's.
fn agrees(what: &str, m: &Model) {
    let Some((ctx, _)) = gpu() else { return };
    let cpu = m.dequantized().unwrap();
    let mut cache = cpu.new_cache();
    let mut g = GpuModel::new(ctx, m, 64).unwrap();
    let toks = [5u32, 17, 200, 3, 99, 42];
    let mut next = 0;
    for (i, chunk) in [&toks[..4], &toks[4..]].into_iter().enumerate() {
        next = g.prefill(chunk).unwrap();
        let want: Vec<f32> = cpu.forward(chunk, &mut cache).unwrap().to_vec1().unwrap();
        let got = g.logits().unwrap();
        assert_close(&format!("{what}: prefill chunk {i}"), &got, &want, 1e-2);
        if top2_gap(&want) > 1e-2 {
            assert_eq!(
                next,
                reference::argmax(&want),
                "{what}: prefill chunk {i} argmax"
            );
        }
    }
    for step in 0..4 {
        let want: Vec<f32> = cpu.forward(&[next], &mut cache).unwrap().to_vec1().unwrap();
        next = g.decode().unwrap();
        let got = g.logits().unwrap();
        assert_close(&format!("{what}: decode step {step}"), &got, &want, 1e-2);
        if top2_gap(&want) > 1e-2 {
            assert_eq!(
                next,
                reference::argmax(&want),
                "{what}: decode step {step} argmax"
            );
        }
    }
    assert_eq!(g.position(), toks.len() + 4);
}

#[test]
fn llama_forward_matches_cpu_for_every_weight_type() {
    let cfg = tiny_config(2);
    for ty in [
        GgmlDType::Q4_1,
        GgmlDType::Q4_0,
        GgmlDType::Q8_0,
        GgmlDType::F16,
        GgmlDType::F32,
    ] {
        agrees(&format!("{ty:?}"), &model(&cfg, ty, false, 7));
    }
}

#[test]
fn qwen2_layout_with_biases_matches_cpu() {
    let mut cfg = tiny_config(2);
    cfg.arch = Architecture::Qwen2;
    cfg.rope_style = RopeStyle::Halves;
    cfg.n_head_kv = vec![1; 2];
    agrees("qwen2", &model(&cfg, GgmlDType::Q8_0, true, 11));
}

#[test]
fn sliding_window_matches_cpu() {
    let mut cfg = tiny_config(2);
    cfg.sliding_window = Some(3);
    agrees("window 3", &model(&cfg, GgmlDType::Q4_1, false, 13));
}

#[test]
fn per_layer_sizes_match_cpu() {
    let mut cfg = tiny_config(2);
    cfg.n_ff = vec![128, 96];
    cfg.n_head = vec![4, 2];
    cfg.n_head_kv = vec![2, 1];
    agrees("pruned", &model(&cfg, GgmlDType::Q4_1, false, 17));
}

#[test]
fn teacher_forced_predictions_are_each_positions_argmax() {
    let Some((ctx, _)) = gpu() else { return };
    let m = model(&tiny_config(2), GgmlDType::Q4_1, false, 19);
    let cpu = m.dequantized().unwrap();
    let toks = [9u32, 8, 7, 250, 1, 0, 33];
    let preds = GpuModel::new(ctx, &m, 16)
        .unwrap()
        .prefill_all(&toks)
        .unwrap();
    let all: Vec<Vec<f32>> = cpu
        .forward_all(&toks, &mut cpu.new_cache())
        .unwrap()
        .to_vec2()
        .unwrap();
    assert_eq!(preds.len(), toks.len());
    for (i, (p, l)) in preds.iter().zip(&all).enumerate() {
        if top2_gap(l) > 1e-2 {
            assert_eq!(*p, reference::argmax(l), "position {i}");
        }
    }
}

/// A model with IQ4_NL linear layers (no WGSL kernel for it) is refused at upload,
/// naming the tensor, the type and the types the kernels read.
#[test]
fn iq4_nl_models_are_refused_by_type() {
    let Some((ctx, _)) = gpu() else { return };
    let base = model(&tiny_config(1), GgmlDType::Q8_0, false, 1);
    let mut map: HashMap<String, Weight> = HashMap::new();
    for (name, t) in base.named_tensors().unwrap() {
        let q = if name.contains("attn_q") {
            let x: Vec<f32> = t
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            edgewise_llm::iq4_nl::Iq4NlMatrix::quantize_plain(t.dims().to_vec(), &x)
                .unwrap()
                .into()
        } else {
            t
        };
        map.insert(name, q);
    }
    let cfg = base.config().clone();
    let m = Model::from_weights(cfg, &mut |n| Ok(map.remove(n)), &Device::Cpu).unwrap();
    let Err(e) = GpuModel::new(ctx, &m, 4) else {
        panic!("an IQ4_NL model was uploaded")
    };
    let msg = e.to_string();
    assert!(
        matches!(e, GpuError::UnsupportedType { .. })
            && msg.contains("blk.0.attn_q.weight")
            && msg.contains("IQ4_NL")
            && msg.contains("Q8_0"),
        "{msg}"
    );
}

#[test]
fn bad_calls_are_clear_errors() {
    let Some((ctx, _)) = gpu() else { return };
    let m = model(&tiny_config(1), GgmlDType::Q8_0, false, 1);
    let mut g = GpuModel::new(ctx, &m, 4).unwrap();
    assert!(matches!(g.decode(), Err(GpuError::InvalidArgument(_))));
    assert!(matches!(g.prefill(&[]), Err(GpuError::InvalidArgument(_))));
    assert!(matches!(
        g.prefill(&[256]),
        Err(GpuError::InvalidArgument(_))
    ));
    assert!(matches!(
        g.prefill(&[1, 2, 3, 4, 5]),
        Err(GpuError::ContextOverflow { needed: 5, max: 4 })
    ));
    g.prefill(&[1, 2, 3]).unwrap();
    g.decode().unwrap();
    assert!(matches!(g.decode(), Err(GpuError::ContextOverflow { .. })));
    g.reset();
    g.prefill(&[1]).unwrap();
}

#[test]
fn qwen3_qk_norm_is_refused_with_a_reason() {
    let Some((ctx, _)) = gpu() else { return };
    let mut cfg = tiny_config(1);
    cfg.arch = Architecture::Qwen3;
    cfg.qk_norm = true;
    let m = Model::synthetic(&cfg, 1, &Device::Cpu).unwrap();
    let e = GpuModel::new(ctx, &m, 8).unwrap_err();
    assert!(e.to_string().contains("Qwen3"), "{e}");
}

#[test]
fn truncate_then_prefill_matches_a_fresh_run() {
    let Some((ctx, _)) = gpu() else { return };
    let m = model(&tiny_config(2), GgmlDType::Q4_1, false, 23);
    let mut fresh = GpuModel::new(ctx, &m, 16).unwrap();
    let want_next = fresh.prefill(&[4, 8, 15, 16]).unwrap();
    let want = fresh.logits().unwrap();
    let mut g = GpuModel::new(ctx, &m, 16).unwrap();
    g.prefill(&[4, 8, 99, 77, 3]).unwrap();
    g.decode().unwrap();
    g.truncate(2);
    assert_eq!(g.position(), 2);
    assert!(matches!(g.decode(), Err(GpuError::InvalidArgument(_))));
    assert_eq!(g.prefill(&[15, 16]).unwrap(), want_next);
    assert_close("after truncate", &g.logits().unwrap(), &want, 1e-5);
    g.truncate(10);
    assert_eq!(g.position(), 4, "truncating past the end changes nothing");
}
