//! Each kernel timed alone on the shipped model's shapes (SmolLM2-135M: 576 wide, 9 query
//! and 3 kv heads of 64, 1536 feed-forward, 49152 vocabulary), with random weights: one
//! dispatch recorded REPEAT times into one submit, the best of five such submits, per
//! dispatch. On Linux the time is the process's CPU time (every thread's, from
//! `/proc/self/task/*/schedstat`), which a busy machine disturbs less than wall time; on a
//! software adapter such as lavapipe that is the kernels' own cost. Elsewhere, wall time.
//!
//! `cargo run --release -p edgewise-gpu --example kernel_time -- [REPEAT] [POSITION…]`
//! (default 20 repeats; attention at positions 40 and 400).

use std::time::Instant;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use edgewise_gpu::kernels::Kernels;
use edgewise_gpu::ops::{self, Dispatch, QkvInputs};
use edgewise_gpu::{GpuContext, GpuWeights, block_on, rope};

const E: usize = 576;
const FF: usize = 1536;
const HEADS: usize = 9;
const KV_HEADS: usize = 3;
const HD: usize = 64;
const VOCAB: usize = 49_152;
const LAYERS: f64 = 30.0;

/// Deterministic values in [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            #[allow(clippy::cast_precision_loss)]
            let u = (s >> 40) as f32 / 16_777_216.0;
            u * 2.0 - 1.0
        })
        .collect()
}

fn weights(seed: u64, ty: GgmlDType, rows: usize, cols: usize) -> GpuWeights {
    let t = Tensor::from_vec(values(seed, rows * cols), (rows, cols), &Device::Cpu).unwrap();
    GpuWeights::from_qtensor("w", &QTensor::quantize(&t, ty).unwrap()).unwrap()
}

/// Nanoseconds every thread of this process has run on a CPU, where Linux says.
fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Milliseconds per dispatch, the best of five submits of `n`.
fn time(ctx: &GpuContext, k: &Kernels, d: &Dispatch, n: usize) -> f64 {
    block_on(d.repeat(ctx, k, 1)).unwrap();
    (0..5)
        .map(|_| {
            let (t, c) = (Instant::now(), cpu_ns());
            block_on(d.repeat(ctx, k, n)).unwrap();
            #[allow(clippy::cast_precision_loss)]
            let s = match (c, cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 * 1e-9,
                _ => t.elapsed().as_secs_f64(),
            };
            #[allow(clippy::cast_precision_loss)]
            let ms = s * 1e3 / n as f64;
            ms
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(20, |s| s.parse().expect("REPEAT"));
    let mut positions: Vec<usize> = args.map(|s| s.parse().expect("POSITION")).collect();
    if positions.is_empty() {
        positions = vec![40, 400];
    }
    let ctx = GpuContext::new().unwrap();
    println!("adapter: {}", ctx.adapter());
    let k = Kernels::new(&ctx).unwrap();
    let q4 = GgmlDType::Q4_1;
    let x = values(1, E);
    let norm: Vec<f32> = values(2, E).iter().map(|v| 1.0 + 0.5 * v).collect();
    let eps = 1e-5;

    let (wq, wk, wv) = (
        weights(3, q4, HEADS * HD, E),
        weights(4, q4, KV_HEADS * HD, E),
        weights(5, q4, KV_HEADS * HD, E),
    );
    let max_ctx = 1024;
    let table = rope::rope_table(HD, max_ctx, 10_000.0);
    let qkv = ops::prepare_qkv(
        &ctx,
        &k,
        QkvInputs {
            x: &x,
            norm: &norm,
            eps,
            w: [&wq, &wk, &wv],
            bias: [None, None, None],
            head_dim: HD,
            halves: false,
            pos: 7,
            max_ctx,
            rope: &table,
        },
    )
    .unwrap();
    let wo = weights(6, q4, E, HEADS * HD);
    let o = ops::prepare_matvec_add(&ctx, &k, &wo, None, &values(7, HEADS * HD), &x).unwrap();
    let (wg, wu) = (weights(8, q4, FF, E), weights(9, q4, FF, E));
    let gu = ops::prepare_gate_up(&ctx, &k, &wg, &wu, (None, None), &norm, eps, &x).unwrap();
    let wd = weights(10, q4, E, FF);
    let down = ops::prepare_matvec_add(&ctx, &k, &wd, None, &values(11, FF), &x).unwrap();
    let head_w = weights(12, GgmlDType::Q8_0, VOCAB, E);
    let head = ops::prepare_lm_head(&ctx, &k, &head_w, &norm, eps, &x).unwrap();
    let argmax = ops::prepare_argmax(&ctx, &k, &values(13, VOCAB), 0, 1).unwrap();

    let t_qkv = time(&ctx, &k, &qkv, n);
    let t_o = time(&ctx, &k, &o, n);
    let t_gu = time(&ctx, &k, &gu, n);
    let t_down = time(&ctx, &k, &down, n);
    let t_head = time(&ctx, &k, &head, n.div_ceil(4));
    let t_argmax = time(&ctx, &k, &argmax, n);
    println!("qkv (576 -> 960, Q4_1, RoPE, cache write): {t_qkv:.3} ms");
    println!("matvec_add attn_output (576 -> 576, Q4_1): {t_o:.3} ms");
    println!("gate_up (576 -> 2 x 1536, Q4_1): {t_gu:.3} ms");
    println!("matvec_add ffn_down (1536 -> 576, Q4_1): {t_down:.3} ms");
    println!("lm_head (576 -> 49152, Q8_0): {t_head:.3} ms");
    println!("argmax (49152): {t_argmax:.3} ms");
    let mut t_att = 0.0;
    for &pos in &positions {
        let keys: Vec<Vec<f32>> = (0..=pos)
            .map(|t| values(100 + t as u64, KV_HEADS * HD))
            .collect();
        let vals: Vec<Vec<f32>> = (0..=pos)
            .map(|t| values(5000 + t as u64, KV_HEADS * HD))
            .collect();
        let att = ops::prepare_attention(
            &ctx,
            &k,
            &values(14, HEADS * HD),
            &keys,
            &vals,
            HEADS,
            KV_HEADS,
            HD,
            0,
        )
        .unwrap();
        t_att = time(&ctx, &k, &att, n);
        println!("attention at position {pos}: {t_att:.3} ms");
    }
    let layer = t_qkv + t_o + t_gu + t_down;
    println!(
        "per token, kernels alone: 30 layers x {layer:.3} ms mat-vecs + 30 x {t_att:.3} ms attention \
         (last position) + {:.3} ms head and argmax = {:.1} ms",
        t_head + t_argmax,
        LAYERS * (layer + t_att) + t_head + t_argmax
    );
}
