//! The in-page LLM's dedicated web worker (started only when the chat panel opens).
//!
//! On `Load` it reads `models/index.json`, takes the model the visitor chose (by default the
//! ECLD variant when shipped) from the Cache API or downloads it with progress ([`download`](super::download)), builds
//! the candle engine, and sets up the backend the visitor chose ([`backend`](super::backend),
//! [`choice`](super::choice)): the whole forward pass on WebGPU, or candle on the wasm CPU
//! path. On `Generate` it streams tokens (and their timing) to the page, yielding to the
//! event loop after each one so `Stop` is heard. On `Measure` it times a fixed benchmark
//! on the backend in use ("Measure this device").
//!
//! Started by the `edgewise-llm-worker` binary, which `www/llm-worker.js` loads as a
//! module worker; talks [`ToLlm`] / [`FromLlm`] through [`crate::worker_scope`]. wasm32
//! only (it drives the browser's fetch, Cache API and WebGPU).

use std::cell::{Cell, RefCell};
use std::io::Cursor;
use std::rc::Rc;

use edgewise_gpu::GpuModel;
use edgewise_llm::energy::ModelWork;
use edgewise_llm::{ChatMessage, Device, Engine, Sampler, Sampling, StreamDecoder};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::DedicatedWorkerGlobalScope;

use super::backend::{self, Runner};
use super::choice;
use super::download;
use super::model_index::{GET_MODEL_HINT, ModelEntry};
use super::protocol::{Backend, BackendChoice, Decoding, Finish, FromLlm, GpuCheck, Stage, ToLlm};
use super::timing::{BENCH_DECODE_TOKENS, BENCH_PROMPT, BENCH_PROMPT_TOKENS, Timing};
use crate::worker_scope;

/// The prompt of the GPU check and of `auto`'s timing.
const CHECK_PROMPT: &str = "What is the capital of France?";
/// Answer tokens the GPU check compares.
const CHECK_TOKENS: usize = 16;
/// Prompt tokens before `auto` times a decode step.
const TIMING_PROMPT_TOKENS: usize = 8;

struct State {
    scope: DedicatedWorkerGlobalScope,
    model: RefCell<Option<Rc<Loaded>>>,
    /// Whether the model came from the Cache API.
    from_cache: Cell<bool>,
    /// The model on WebGPU, once set up (taken out while a job uses it).
    gpu: RefCell<Option<GpuModel>>,
    /// Why WebGPU cannot run the model, once that is known.
    gpu_error: RefCell<Option<String>>,
    /// Whether generations run on the GPU.
    use_gpu: Cell<bool>,
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

struct Loaded {
    engine: Engine,
    entry: ModelEntry,
}

/// The model file, read and built into the CPU engine (always: it also holds the
/// tokenizer, and is the fallback).
async fn load_model(state: &State, chosen: Option<&str>) -> Result<Option<Loaded>, String> {
    let Some(entry) = download::model_index(&state.scope, chosen).await? else {
        state.post(&FromLlm::NoModel(GET_MODEL_HINT.to_owned()));
        return Ok(None);
    };
    let (bytes, from_cache) = download::model_bytes(&state.scope, &entry).await?;
    state.from_cache.set(from_cache);
    state.post(&FromLlm::Progress {
        stage: Stage::Build,
        done: 0,
        total: entry.bytes,
    });
    state.yield_now().await;
    let engine = Engine::from_gguf(&mut Cursor::new(bytes), &entry.file, &Device::Cpu)
        .map_err(|e| format!("{}: {e}", entry.file))?;
    Ok(Some(Loaded { engine, entry }))
}

/// The loaded model, or the error a request before `Load` gets.
fn loaded(state: &State) -> Result<Rc<Loaded>, String> {
    state
        .model
        .borrow()
        .clone()
        .ok_or_else(|| "the model is not loaded yet".to_owned())
}

/// The chat-template token ids of a single user message.
fn chat_ids(engine: &Engine, prompt: &str) -> Result<Vec<u32>, String> {
    let tok = &engine.tokenizer;
    tok.encode(
        &tok.apply_chat_template(&[ChatMessage::user(prompt)], true),
        true,
    )
    .map_err(|e| e.to_string())
}

/// Sets up the backend `choice` leads to (putting the model on WebGPU the first time it is
/// needed; for `auto`, timing a decode step on each) and tells the page which and why.
async fn use_backend(state: &State, m: &Loaded, choice: BackendChoice) -> Result<(), String> {
    state.post(&FromLlm::Progress {
        stage: Stage::Backend,
        done: 0,
        total: 0,
    });
    state.yield_now().await;
    if choice != BackendChoice::Cpu
        && state.gpu.borrow().is_none()
        && state.gpu_error.borrow().is_none()
    {
        match backend::gpu_model(&m.engine).await {
            Ok(g) => *state.gpu.borrow_mut() = Some(g),
            Err(e) => *state.gpu_error.borrow_mut() = Some(e),
        }
    }
    let mut slot = state.gpu.take();
    let timed = match (&mut slot, choice) {
        (Some(gpu), BackendChoice::Auto) => time_both(state, m, gpu).await,
        _ => Ok(None),
    };
    let adapter = slot.as_ref().map(|g| g.context().adapter().name.clone());
    let backend = slot.as_ref().map(backend::gpu_backend);
    *state.gpu.borrow_mut() = slot;
    let gpu_error = state.gpu_error.borrow().clone().unwrap_or_default();
    let offered = adapter.as_deref().ok_or(gpu_error.as_str());
    let (use_gpu, why) = choice::decide(choice, offered, timed?);
    state.use_gpu.set(use_gpu);
    state.post(&FromLlm::Backend {
        backend: if use_gpu {
            backend.unwrap_or(Backend::Cpu)
        } else {
            Backend::Cpu
        },
        why,
    });
    Ok(())
}

/// Milliseconds per decode step on the GPU and on the CPU, after a short prompt.
async fn time_both(
    state: &State,
    m: &Loaded,
    gpu: &mut GpuModel,
) -> Result<Option<(f64, f64)>, String> {
    let ids = chat_ids(&m.engine, CHECK_PROMPT)?;
    let prompt = &ids[..ids.len().min(TIMING_PROMPT_TOKENS)];
    let now = || state.now_ms();
    let gpu_ms = backend::time_decode(&mut Runner::gpu(gpu), prompt, &now).await?;
    let cpu_ms = backend::time_decode(&mut Runner::cpu(&m.engine.model), prompt, &now).await?;
    Ok(Some((gpu_ms, cpu_ms)))
}

async fn load(
    state: Rc<State>,
    choice: BackendChoice,
    model: Option<String>,
) -> Result<(), String> {
    let t0 = state.now_ms();
    let fresh = state.model.borrow().is_none();
    if fresh {
        let Some(m) = load_model(&state, model.as_deref()).await? else {
            return Ok(());
        };
        *state.model.borrow_mut() = Some(Rc::new(m));
    }
    let m = loaded(&state)?;
    use_backend(&state, &m, choice).await?;
    if fresh {
        #[allow(clippy::cast_precision_loss)] // model files are far below 2^52 bytes
        let weight_bytes = m.entry.bytes as f64;
        state.post(&FromLlm::Loaded {
            model: m.entry.clone(),
            load_ms: state.now_ms() - t0,
            from_cache: state.from_cache.get(),
            work: ModelWork::new(m.engine.model.config(), weight_bytes),
        });
    }
    Ok(())
}

async fn switch(state: Rc<State>, choice: BackendChoice) -> Result<(), String> {
    let m = loaded(&state)?;
    use_backend(&state, &m, choice).await
}

async fn generate(
    state: Rc<State>,
    prompt: String,
    max_tokens: u32,
    decoding: Decoding,
) -> Result<(), String> {
    let m = loaded(&state)?;
    let mut slot = state.gpu.take();
    let runner = match (&mut slot, state.use_gpu.get()) {
        (Some(gpu), true) => Runner::gpu(gpu),
        _ => Runner::cpu(&m.engine.model),
    };
    let result = answer(&state, &m.engine, runner, &prompt, max_tokens, decoding).await;
    *state.gpu.borrow_mut() = slot;
    result
}

/// Streams the answer to `prompt` from `runner` to the page.
async fn answer(
    state: &State,
    engine: &Engine,
    mut runner: Runner<'_>,
    prompt: &str,
    max_tokens: u32,
    decoding: Decoding,
) -> Result<(), String> {
    let tok = &engine.tokenizer;
    let ids = chat_ids(engine, prompt)?;
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
    let t0 = state.now_ms();
    let mut next = runner.step(&ids, &mut sampler).await?;
    let prefill_ms = state.now_ms() - t0;
    let t_first = state.now_ms();
    let prompt_tokens = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    let mut out: Vec<u32> = Vec::new();
    let finish = loop {
        if stops.contains(&next) {
            break Finish::EndOfTurn;
        }
        out.push(next);
        let text = decoder.push(tok, next).map_err(|e| e.to_string())?;
        state.post(&FromLlm::Token { id: next, text });
        state.post(&FromLlm::Timing(Timing {
            prompt_tokens,
            prefill_ms,
            generated: u32::try_from(out.len()).unwrap_or(u32::MAX),
            decode_ms: state.now_ms() - t_first,
        }));
        if out.len() >= max_tokens as usize {
            break Finish::Length;
        }
        state.yield_now().await;
        if state.stop.get() {
            break Finish::Stopped;
        }
        next = runner.step(&[next], &mut sampler).await?;
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
        prompt_tokens,
        prefill_ms,
        tok_per_s,
    });
    Ok(())
}

/// "Measure this device": the fixed benchmark ([`BENCH_PROMPT`] cut to
/// [`BENCH_PROMPT_TOKENS`], then [`BENCH_DECODE_TOKENS`] greedy steps) on the backend in
/// use.
async fn measure(state: Rc<State>) -> Result<(), String> {
    let m = loaded(&state)?;
    let ids = m
        .engine
        .tokenizer
        .encode(BENCH_PROMPT, true)
        .map_err(|e| e.to_string())?;
    if ids.len() < BENCH_PROMPT_TOKENS {
        return Err(format!(
            "the benchmark prompt is {} tokens with this model's tokenizer; expected at least              {BENCH_PROMPT_TOKENS}",
            ids.len()
        ));
    }
    let prompt = &ids[..BENCH_PROMPT_TOKENS];
    let mut slot = state.gpu.take();
    let (mut runner, backend) = match (&mut slot, state.use_gpu.get()) {
        (Some(gpu), true) => {
            let backend = backend::gpu_backend(gpu);
            (Runner::gpu(gpu), backend)
        }
        _ => (Runner::cpu(&m.engine.model), Backend::Cpu),
    };
    let now = || state.now_ms();
    let result = backend::benchmark(&mut runner, prompt, BENCH_DECODE_TOKENS, &now).await;
    drop(runner);
    *state.gpu.borrow_mut() = slot;
    state.post(&FromLlm::Measured {
        backend,
        timing: result?,
    });
    Ok(())
}

/// The WebGPU forward pass against the CPU path: [`CHECK_PROMPT`] and the CPU's greedy
/// answer to it, teacher-forced through the GPU in one submit.
async fn self_test(state: Rc<State>) -> Result<(), String> {
    let m = loaded(&state)?;
    let mut slot = state.gpu.take();
    let result = match &mut slot {
        Some(gpu) => check_gpu(&state, &m.engine, gpu).await,
        None => Err("WebGPU is not set up in this browser; there is nothing to check".to_owned()),
    };
    *state.gpu.borrow_mut() = slot;
    state.post(&FromLlm::SelfTest(result?));
    Ok(())
}

async fn check_gpu(state: &State, engine: &Engine, gpu: &mut GpuModel) -> Result<GpuCheck, String> {
    let prompt = chat_ids(engine, CHECK_PROMPT)?;
    let stops = engine.tokenizer.stop_tokens();
    let model = &engine.model;
    let t0 = state.now_ms();
    let mut cache = model.new_cache();
    let mut logits = Runner::cpu_logits(model, &prompt, &mut cache)?;
    let mut answer = Vec::new();
    // The logits the answer's last token was chosen from (after prompt + answer[..n-1]).
    let mut last = Vec::new();
    while answer.len() < CHECK_TOKENS {
        let next = edgewise_llm::sampling::greedy(&logits);
        if stops.contains(&next) {
            break;
        }
        answer.push(next);
        last = std::mem::take(&mut logits);
        if answer.len() < CHECK_TOKENS {
            logits = Runner::cpu_logits(model, &[next], &mut cache)?;
        }
    }
    let cpu_ms = state.now_ms() - t0;
    if answer.is_empty() {
        return Err("the CPU path ended its answer at once; nothing to compare".to_owned());
    }
    let mut input = prompt.clone();
    input.extend_from_slice(&answer[..answer.len() - 1]);
    gpu.reset();
    let t1 = state.now_ms();
    let preds = gpu
        .prefill_all_async(&input)
        .await
        .map_err(|e| e.to_string())?;
    let gpu_ms = state.now_ms() - t1;
    let gpu_logits = gpu.logits_async().await.map_err(|e| e.to_string())?;
    gpu.reset();
    let agree = preds[prompt.len() - 1..]
        .iter()
        .zip(&answer)
        .filter(|(p, a)| p == a)
        .count();
    let max_abs_logit_diff = gpu_logits
        .iter()
        .zip(&last)
        .fold(0f32, |m, (g, c)| m.max((g - c).abs()));
    Ok(GpuCheck {
        positions: u32::try_from(answer.len()).unwrap_or(u32::MAX),
        agree: u32::try_from(agree).unwrap_or(u32::MAX),
        max_abs_logit_diff,
        gpu_ms,
        cpu_ms,
    })
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
        ToLlm::Load { backend, model } => {
            run_exclusive(state, load(Rc::clone(state), backend, model));
        }
        ToLlm::UseBackend(choice) => run_exclusive(state, switch(Rc::clone(state), choice)),
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
        ToLlm::Measure => run_exclusive(state, measure(Rc::clone(state))),
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
        from_cache: Cell::new(false),
        gpu: RefCell::new(None),
        gpu_error: RefCell::new(None),
        use_gpu: Cell::new(false),
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
