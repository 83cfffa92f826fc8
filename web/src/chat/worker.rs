//! The in-page LLM's dedicated web worker (started only when the chat panel opens).
//!
//! On `Load` it looks for WebGPU, reads `models/index.json`, takes the model (the ECLD
//! variant when shipped) from the Cache API or downloads it with progress and caches it,
//! and builds the candle engine. On `Generate` it streams tokens to the page, yielding to
//! the event loop after each one so `Stop` is heard. What runs where: the transformer
//! blocks on the CPU (candle, wasm simd128); the LM head (the largest single mat-vec of
//! a decode step) on WebGPU when an adapter exists and the head is Q8_0, else on the CPU.
//!
//! Started by the `edgewise-llm-worker` binary, which `www/llm-worker.js` loads as a
//! module worker; talks [`ToLlm`] / [`FromLlm`] through [`crate::worker_scope`]. wasm32
//! only (it drives the browser's fetch, Cache API and WebGPU).

use std::cell::{Cell, RefCell};
use std::io::Cursor;
use std::rc::Rc;

use candle_core::quantized::GgmlDType;
use edgewise_llm::{ChatMessage, Device, Engine, Sampler, Sampling, StreamDecoder};
use js_sys::{Promise, Uint8Array};
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{Cache, DedicatedWorkerGlobalScope, ReadableStreamDefaultReader, Response};

use super::gpu::{Gpu, LmHead};
use super::lm_head::{Q8Gpu, max_abs_diff};
use super::model_index::{GET_MODEL_HINT, MODEL_INDEX, ModelEntry, ModelIndex};
use super::protocol::{Backend, Decoding, Finish, FromLlm, KernelCheck, Stage, ToLlm};
use crate::worker_scope;

/// Cache API store of model files (bump the suffix to drop old entries' format).
const CACHE_NAME: &str = "edgewise-models-v1";
/// Progress messages at most this often, in bytes.
const PROGRESS_STEP: u64 = 1 << 22;
/// The prompt of the kernel self-check.
const CHECK_PROMPT: &str = "What is the capital of France?";

struct Loaded {
    engine: Engine,
    head: Option<LmHead>,
}

struct State {
    scope: DedicatedWorkerGlobalScope,
    model: RefCell<Option<Rc<Loaded>>>,
    busy: Cell<bool>,
    stop: Cell<bool>,
}

impl State {
    fn post(&self, msg: &FromLlm) {
        worker_scope::post(&self.scope, msg);
    }

    fn now_ms(&self) -> f64 {
        worker_scope::now_ms(&self.scope)
    }

    /// Lets queued messages (Stop) run.
    async fn yield_now(&self) {
        let scope = self.scope.clone();
        let promise = Promise::new(&mut |resolve, _| {
            let _ = scope.set_timeout_with_callback(&resolve);
        });
        let _ = JsFuture::from(promise).await;
    }
}

fn js_err(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

async fn fetch(state: &State, url: &str) -> Result<Response, String> {
    let response = JsFuture::from(state.scope.fetch_with_str(url))
        .await
        .map_err(|e| format!("could not fetch {url}: {}", js_err(&e)))?;
    response
        .dyn_into::<Response>()
        .map_err(|_| format!("{url}: not a response"))
}

/// Reads a response body to the end, reporting progress.
async fn read_body(
    state: &State,
    response: &Response,
    stage: Stage,
    total: u64,
) -> Result<Vec<u8>, String> {
    let body = response
        .body()
        .ok_or_else(|| "the model response has no body".to_owned())?;
    let reader: ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|_| "the model body has no default reader".to_owned())?;
    let mut bytes = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut reported = 0u64;
    state.post(&FromLlm::Progress {
        stage,
        done: 0,
        total,
    });
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| format!("reading the model failed: {}", js_err(&e)))?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .map(|d| d.is_truthy())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = js_sys::Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(|_| "a model chunk has no value".to_owned())?;
        let array: Uint8Array = value
            .dyn_into()
            .map_err(|_| "a model chunk is not bytes".to_owned())?;
        let start = bytes.len();
        bytes.resize(start + array.length() as usize, 0);
        array.copy_to(&mut bytes[start..]);
        let done = bytes.len() as u64;
        if done - reported >= PROGRESS_STEP {
            reported = done;
            state.post(&FromLlm::Progress { stage, done, total });
        }
    }
    state.post(&FromLlm::Progress {
        stage,
        done: bytes.len() as u64,
        total,
    });
    Ok(bytes)
}

/// The model bytes: from the Cache API when a complete copy is there, else downloaded
/// (and cached for next time). Returns the bytes and whether they came from the cache.
async fn model_bytes(state: &State, entry: &ModelEntry) -> Result<(Vec<u8>, bool), String> {
    let url = format!("models/{}", entry.file);
    let cache: Option<Cache> = match state.scope.caches() {
        Ok(storage) => JsFuture::from(storage.open(CACHE_NAME))
            .await
            .ok()
            .and_then(|c| c.dyn_into().ok()),
        Err(_) => None,
    };
    if let Some(cache) = &cache
        && let Ok(hit) = JsFuture::from(cache.match_with_str(&url)).await
        && let Ok(response) = hit.dyn_into::<Response>()
    {
        let bytes = read_body(state, &response, Stage::Cache, entry.bytes).await?;
        if bytes.len() as u64 == entry.bytes {
            return Ok((bytes, true));
        }
        // A stale or truncated copy: replace it.
        let _ = JsFuture::from(cache.delete_with_str(&url)).await;
    }
    let response = fetch(state, &url).await?;
    if !response.ok() {
        return Err(format!(
            "{url}: HTTP {} ({GET_MODEL_HINT})",
            response.status()
        ));
    }
    let bytes = read_body(state, &response, Stage::Download, entry.bytes).await?;
    if bytes.len() as u64 != entry.bytes {
        return Err(format!(
            "{url} has {} bytes, {MODEL_INDEX} says {}",
            bytes.len(),
            entry.bytes
        ));
    }
    if let Some(cache) = &cache {
        let array = Uint8Array::from(bytes.as_slice());
        if let Ok(copy) = Response::new_with_opt_buffer_source(Some(&array)) {
            // Best effort: a full quota only means downloading again next time.
            let _ = JsFuture::from(cache.put_with_str(&url, &copy)).await;
        }
    }
    Ok((bytes, false))
}

async fn model_index(state: &State) -> Result<Option<ModelEntry>, String> {
    let response = fetch(state, MODEL_INDEX).await?;
    if response.status() == 404 {
        return Ok(None);
    }
    if !response.ok() {
        return Err(format!("{MODEL_INDEX}: HTTP {}", response.status()));
    }
    let text = JsFuture::from(response.text().map_err(|e| js_err(&e))?)
        .await
        .map_err(|e| format!("{MODEL_INDEX}: {}", js_err(&e)))?
        .as_string()
        .unwrap_or_default();
    Ok(ModelIndex::parse(&text)?.pick().cloned())
}

/// The LM head on the GPU, or why not.
async fn gpu_head(engine: &Engine) -> Result<LmHead, String> {
    let gpu = Gpu::detect().await?;
    let output = engine.model.output();
    let weight = output.weight();
    if weight.dtype() != GgmlDType::Q8_0 || output.bias().is_some() {
        return Err(format!(
            "the WebGPU kernel handles a bias-free Q8_0 LM head; this model's is {:?}",
            weight.dtype()
        ));
    }
    let (rows, cols) = weight
        .shape()
        .dims2()
        .map_err(|e| format!("LM head shape: {e}"))?;
    let raw = weight.data().map_err(|e| format!("LM head bytes: {e}"))?;
    let q = Q8Gpu::from_gguf_bytes(&raw, rows, cols)?;
    LmHead::new(gpu, &q).await
}

async fn load(state: Rc<State>) -> Result<(), String> {
    let t0 = state.now_ms();
    let Some(entry) = model_index(&state).await? else {
        state.post(&FromLlm::NoModel(GET_MODEL_HINT.to_owned()));
        return Ok(());
    };
    let (bytes, from_cache) = model_bytes(&state, &entry).await?;
    state.post(&FromLlm::Progress {
        stage: Stage::Build,
        done: 0,
        total: entry.bytes,
    });
    state.yield_now().await;
    let engine = Engine::from_gguf(&mut Cursor::new(bytes), &entry.file, &Device::Cpu)
        .map_err(|e| format!("{}: {e}", entry.file))?;
    let (head, backend, note) = match gpu_head(&engine).await {
        Ok(head) => {
            let name = head.adapter().to_owned();
            (Some(head), Backend::WebGpu(name), String::new())
        }
        Err(why) => (None, Backend::Cpu, why),
    };
    *state.model.borrow_mut() = Some(Rc::new(Loaded { engine, head }));
    state.post(&FromLlm::Backend { backend, note });
    state.post(&FromLlm::Loaded {
        model: entry,
        load_ms: state.now_ms() - t0,
        from_cache,
    });
    Ok(())
}

/// Logits of the last of `tokens` (the LM head on the GPU when there is one).
async fn step(
    m: &Loaded,
    tokens: &[u32],
    cache: &mut edgewise_llm::KvCache,
) -> Result<Vec<f32>, String> {
    let model = &m.engine.model;
    match &m.head {
        Some(head) => {
            let h: Vec<f32> = model
                .forward_hidden(tokens, cache)
                .and_then(|t| Ok(t.to_vec1()?))
                .map_err(|e| e.to_string())?;
            head.matvec(&h).await
        }
        None => model
            .forward(tokens, cache)
            .and_then(|t| Ok(t.to_vec1()?))
            .map_err(|e| e.to_string()),
    }
}

async fn generate(
    state: Rc<State>,
    prompt: String,
    max_tokens: u32,
    decoding: Decoding,
) -> Result<(), String> {
    let m = state
        .model
        .borrow()
        .clone()
        .ok_or_else(|| "the model is not loaded yet".to_owned())?;
    let tok = &m.engine.tokenizer;
    let text = tok.apply_chat_template(&[ChatMessage::user(&prompt)], true);
    let ids = tok.encode(&text, true).map_err(|e| e.to_string())?;
    let sampling = match decoding {
        Decoding::Greedy => (Sampling::Greedy, 0),
        Decoding::Sample { seed } => (
            Sampling::Sample {
                temperature: 0.7,
                top_k: 0,
                top_p: 0.9,
            },
            seed,
        ),
    };
    let mut sampler = Sampler::new(sampling.0, sampling.1).map_err(|e| e.to_string())?;
    let stops = tok.stop_tokens();
    let mut decoder = StreamDecoder::default();
    let mut cache = m.engine.model.new_cache();
    let t0 = state.now_ms();
    let mut logits = step(&m, &ids, &mut cache).await?;
    let prefill_ms = state.now_ms() - t0;
    let t_first = state.now_ms();
    let mut out: Vec<u32> = Vec::new();
    let finish = loop {
        let next = sampler.sample(&logits).map_err(|e| e.to_string())?;
        if stops.contains(&next) {
            break Finish::EndOfTurn;
        }
        out.push(next);
        let text = decoder.push(tok, next).map_err(|e| e.to_string())?;
        state.post(&FromLlm::Token { id: next, text });
        if out.len() >= max_tokens as usize {
            break Finish::Length;
        }
        state.yield_now().await;
        if state.stop.get() {
            break Finish::Stopped;
        }
        logits = step(&m, &[next], &mut cache).await?;
    };
    let decode_s = (state.now_ms() - t_first) / 1000.0;
    // Tokens after the first, over the time spent producing them.
    #[allow(clippy::cast_precision_loss)]
    let tok_per_s = if out.len() > 1 && decode_s > 0.0 {
        (out.len() - 1) as f64 / decode_s
    } else {
        0.0
    };
    state.post(&FromLlm::Done {
        ids: out,
        finish,
        prompt_tokens: u32::try_from(ids.len()).unwrap_or(u32::MAX),
        prefill_ms,
        tok_per_s,
    });
    Ok(())
}

/// The WebGPU LM head against the exact f32 reference and candle's CPU path, on the
/// hidden state of [`CHECK_PROMPT`].
async fn self_test(state: Rc<State>) -> Result<(), String> {
    let m = state
        .model
        .borrow()
        .clone()
        .ok_or_else(|| "the model is not loaded yet".to_owned())?;
    let head = m
        .head
        .as_ref()
        .ok_or_else(|| "no WebGPU LM head on this browser".to_owned())?;
    let model = &m.engine.model;
    let tok = &m.engine.tokenizer;
    let ids = tok
        .encode(
            &tok.apply_chat_template(&[ChatMessage::user(CHECK_PROMPT)], true),
            true,
        )
        .map_err(|e| e.to_string())?;
    let mut cache = model.new_cache();
    let hidden = model
        .forward_hidden(&ids, &mut cache)
        .map_err(|e| e.to_string())?;
    let h: Vec<f32> = hidden.to_vec1().map_err(|e| e.to_string())?;
    let t0 = state.now_ms();
    let cpu: Vec<f32> = model
        .output()
        .forward(&hidden.unsqueeze(0).map_err(|e| e.to_string())?)
        .and_then(|t| Ok(t.squeeze(0)?.to_vec1()?))
        .map_err(|e| e.to_string())?;
    let cpu_ms = state.now_ms() - t0;
    let t1 = state.now_ms();
    let gpu = head.matvec(&h).await?;
    let gpu_ms = state.now_ms() - t1;
    let weight = model.output().weight();
    let (rows, cols) = weight.shape().dims2().map_err(|e| e.to_string())?;
    let raw = weight.data().map_err(|e| e.to_string())?;
    let exact = Q8Gpu::from_gguf_bytes(&raw, rows, cols)?.matvec_reference(&h);
    let argmax = |v: &[f32]| edgewise_llm::sampling::greedy(v);
    state.post(&FromLlm::SelfTest(KernelCheck {
        rows: u32::try_from(rows).unwrap_or(u32::MAX),
        cols: u32::try_from(cols).unwrap_or(u32::MAX),
        max_abs_vs_f32: max_abs_diff(&gpu, &exact),
        max_abs_vs_cpu: max_abs_diff(&gpu, &cpu),
        top1_equal: argmax(&gpu) == argmax(&cpu),
        gpu_ms,
        cpu_ms,
    }));
    Ok(())
}

/// Runs `job` unless another is running; reports its error.
fn run_exclusive<F>(state: &Rc<State>, job: F)
where
    F: std::future::Future<Output = Result<(), String>> + 'static,
{
    if state.busy.replace(true) {
        state.post(&FromLlm::Error(
            "the model is busy: wait for the current request or press Stop".to_owned(),
        ));
        return;
    }
    state.stop.set(false);
    let state = Rc::clone(state);
    spawn_local(async move {
        if let Err(e) = job.await {
            state.post(&FromLlm::Error(e));
        }
        state.busy.set(false);
    });
}

fn handle(state: &Rc<State>, msg: ToLlm) {
    match msg {
        ToLlm::Load => run_exclusive(state, load(Rc::clone(state))),
        ToLlm::Generate {
            prompt,
            max_tokens,
            decoding,
        } => run_exclusive(
            state,
            generate(Rc::clone(state), prompt, max_tokens, decoding),
        ),
        ToLlm::Stop => state.stop.set(true),
        ToLlm::SelfTest => run_exclusive(state, self_test(Rc::clone(state))),
    }
}

/// Installs the message handler and tells the page the worker is ready.
///
/// # Errors
/// When this does not run in a dedicated worker.
pub fn start() -> Result<(), JsValue> {
    let scope = worker_scope::scope()?;
    let state = Rc::new(State {
        scope: scope.clone(),
        model: RefCell::new(None),
        busy: Cell::new(false),
        stop: Cell::new(false),
    });
    let listener = Rc::clone(&state);
    worker_scope::listen(&scope, move |msg: Result<ToLlm, String>| match msg {
        Ok(msg) => handle(&listener, msg),
        Err(e) => listener.post(&FromLlm::Error(e)),
    });
    state.post(&FromLlm::Ready);
    Ok(())
}
