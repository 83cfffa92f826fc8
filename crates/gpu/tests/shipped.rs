//! On the shipped model (`cargo xtask setup` puts it in the model cache; a missing file
//! fails, it is not skipped): teacher-forced top-1 agreement of the GPU forward with the
//! CPU engine over fixed continuations is at least 99%.

mod common;

use common::gpu;
use edgewise_gpu::{GpuModel, reference};
use edgewise_llm::model_cache::default_model_path;
use edgewise_llm::{ChatMessage, Device, Engine};

/// Fixed question/answer pairs; the answers are the continuations scored.
const TEXTS: [(&str, &str); 2] = [
    (
        "What does a mobile edge computing server do?",
        "A mobile edge computing server sits close to the users, at a base station or an \
         access point, and runs work that phones and sensors send to it. Because it is near, \
         the round trip is short, so offloading a task there saves energy on the device \
         without the delay of a distant data centre.",
    ),
    (
        "Give me three tips for writing clear code.",
        "First, name things for what they are, so a reader does not need a comment to \
         follow. Second, keep functions short and give each one a single job. Third, write \
         tests that fail when the behaviour changes, and run them before every commit.",
    ),
];

#[test]
fn shipped_model_top1_agrees_with_cpu_engine() {
    let Some((ctx, _)) = gpu() else { return };
    let path = default_model_path().unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::from_path(&path, &Device::Cpu).unwrap();
    let (m, tok) = (&engine.model, &engine.tokenizer);
    // The engine's two CPU paths: the default one (activations quantized to 8 bits for the
    // quantized mat-muls, as ggml does) and its exact f32 reference over the same weights.
    let exact = m.dequantized().unwrap();
    let mut g = GpuModel::new(ctx, m, 512).unwrap();
    let (mut vs_exact, mut vs_default, mut cpu_paths, mut total) = (0, 0, 0, 0usize);
    for (question, answer) in TEXTS {
        let prompt = tok.apply_chat_template(&[ChatMessage::user(question)], true);
        let p = tok.encode(&prompt, true).unwrap();
        let a = tok.encode(answer, false).unwrap();
        let seq: Vec<u32> = p.iter().chain(&a).copied().collect();
        let argmaxes = |model: &edgewise_llm::Model| -> Vec<u32> {
            let all: Vec<Vec<f32>> = model
                .forward_all(&seq, &mut model.new_cache())
                .unwrap()
                .to_vec2()
                .unwrap();
            all.iter().map(|l| reference::argmax(l)).collect()
        };
        let (default_preds, exact_preds) = (argmaxes(m), argmaxes(&exact));
        g.reset();
        let gpu_preds = g.prefill_all(&seq).unwrap();
        // Positions whose prediction is a token of the answer (the continuation).
        for i in p.len() - 1..seq.len() - 1 {
            total += 1;
            vs_exact += usize::from(gpu_preds[i] == exact_preds[i]);
            vs_default += usize::from(gpu_preds[i] == default_preds[i]);
            cpu_paths += usize::from(default_preds[i] == exact_preds[i]);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let pct = |n: usize| 100.0 * n as f64 / total as f64;
    eprintln!(
        "teacher-forced top-1 agreement over {total} positions: GPU vs CPU exact f32 path \
         {vs_exact} ({:.2}%); GPU vs CPU default path {vs_default} ({:.2}%); the two CPU \
         paths with each other {cpu_paths} ({:.2}%)",
        pct(vs_exact),
        pct(vs_default),
        pct(cpu_paths)
    );
    assert!(total >= 100, "only {total} continuation positions scored");
    assert!(
        pct(vs_exact) >= 99.0,
        "GPU vs the CPU's exact path: {vs_exact}/{total}, below 99%"
    );
}
