//! The browser LLM test (`tests/browser/llm.test.mjs`) expects the page to produce the
//! same greedy tokens as the native engine. This test is where those expected ids come
//! from: it runs the native `Engine` on the shipped model and checks the fixture
//! `tests/browser/fixtures/llm-greedy.json` against it, so the fixture cannot drift from
//! the engine. `ids` are the CPU path's (activations rounded to 8 bits, as ggml does),
//! which the page's wasm CPU path must reproduce; `ids_f32` are the exact f32 path's
//! (`Model::dequantized`, the same weights), which the page's WebGPU forward pass
//! multiplies like and must reproduce. `EDGEWISE_WRITE_FIXTURE=1` rewrites the fixture instead (after a
//! deliberate change of model or engine).
//!
//! Needs the shipped model (`cargo xtask setup`); fails with that instruction otherwise.

use std::path::PathBuf;

use edgewise_llm::model_cache::default_model_path;
use edgewise_llm::{ChatMessage, Device, Engine, Model, Sampler, Sampling, generate};
use serde_json::{Value, json};

const PROMPT: &str = "What is the capital of France?";
const NEW_TOKENS: usize = 8;

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/fixtures/llm-greedy.json")
}

#[test]
fn browser_fixture_matches_the_native_engine() {
    let model = default_model_path().unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::from_path(&model, &Device::Cpu).expect("load the shipped model");
    let text = engine
        .tokenizer
        .apply_chat_template(&[ChatMessage::user(PROMPT)], true);
    let prompt = engine.tokenizer.encode(&text, true).expect("encode");
    let greedy = |m: &Model| {
        let mut sampler = Sampler::new(Sampling::Greedy, 0).expect("sampler");
        let mut cache = m.new_cache();
        generate(
            m,
            &mut cache,
            &prompt,
            NEW_TOKENS,
            &mut sampler,
            &engine.tokenizer.stop_tokens(),
            &mut |_| true,
        )
        .expect("generate")
        .0
    };
    let ids = greedy(&engine.model);
    let ids_f32 = greedy(&engine.model.dequantized().expect("dequantize"));
    let decode = |ids: &[u32]| engine.tokenizer.decode(ids, true).expect("decode");
    let want = json!({
        "prompt": PROMPT,
        "new_tokens": NEW_TOKENS,
        "model": model.file_name().map(|n| n.to_string_lossy().into_owned()),
        "ids": ids,
        "text": decode(&ids),
        "ids_f32": ids_f32,
        "text_f32": decode(&ids_f32),
    });
    let path = fixture_path();
    if std::env::var_os("EDGEWISE_WRITE_FIXTURE").is_some() {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(&want).expect("json") + "\n",
        )
        .expect("write fixture");
        std::fs::rename(&tmp, &path).expect("rename fixture");
    }
    let have: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (EDGEWISE_WRITE_FIXTURE=1 writes it)",
            path.display()
        )
    }))
    .expect("fixture is JSON");
    assert_eq!(
        have,
        want,
        "{} no longer matches the native engine (rewrite it with EDGEWISE_WRITE_FIXTURE=1 \
         if the change is intended)",
        path.display()
    );
}
