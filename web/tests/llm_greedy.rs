//! The browser LLM test (`tests/browser/llm.test.mjs`) expects the page to produce the
//! same greedy tokens as the native engine. This test is where those expected ids come
//! from: it runs the native `Engine` on the shipped model and checks the fixture
//! `tests/browser/fixtures/llm-greedy.json` against it, so the fixture cannot drift from
//! the engine. `EDGEWISE_WRITE_FIXTURE=1` rewrites the fixture instead (after a
//! deliberate change of model or engine).
//!
//! Needs the shipped model (`cargo xtask setup`); fails with that instruction otherwise.

use std::path::PathBuf;

use edgewise_llm::model_cache::default_model_path;
use edgewise_llm::{ChatMessage, Device, Engine, Sampler, Sampling, generate};
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
    let mut sampler = Sampler::new(Sampling::Greedy, 0).expect("sampler");
    let mut cache = engine.model.new_cache();
    let (ids, _) = generate(
        &engine.model,
        &mut cache,
        &prompt,
        NEW_TOKENS,
        &mut sampler,
        &engine.tokenizer.stop_tokens(),
        &mut |_| true,
    )
    .expect("generate");
    let decoded = engine.tokenizer.decode(&ids, true).expect("decode");
    let want = json!({
        "prompt": PROMPT,
        "new_tokens": NEW_TOKENS,
        "model": model.file_name().map(|n| n.to_string_lossy().into_owned()),
        "ids": ids,
        "text": decoded,
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
