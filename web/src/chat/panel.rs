//! The on-device LLM chat panel: the chat's page side and its view in one component with
//! its own state. The LLM worker is the panel's, started when the visitor opens the
//! panel (so the page's first load never fetches the LLM's wasm or the model) and
//! terminated when the panel goes away. The state the browser tests read is mirrored in `data-*`
//! attributes of `#panel-chat`.
//!
//! Beside the answer it shows the energy model's joules per token for the device class
//! the visitor picked, at the speeds of the current answer; "Measure this device" times a
//! fixed benchmark and "Add this device to the simulation" hands the page a device class
//! with the measured speeds ([`ThisDevice`]).

use edgewise_llm::energy::{ClassEstimate, ModelWork};
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use super::energy_estimate::{DEFAULT_ENERGY_CLASS, energy_class, live_estimate};
use super::model_index::{ModelEntry, ModelIndex, megabytes};
use super::protocol::{Backend, BackendChoice, Decoding, FromLlm, GpuCheck, Stage, ToLlm};
use super::timing::{BENCH_DECODE_TOKENS, BENCH_PROMPT_TOKENS, Timing};
use crate::channel::{Received, WorkerChannel};
use crate::simulation::this_device::{Measured, THIS_DEVICE_CLASS, THIS_DEVICE_SHARE, ThisDevice};

/// Default number of new tokens per answer.
const DEFAULT_MAX_TOKENS: u32 = 64;
/// Most new tokens the page lets the visitor ask for.
const MAX_TOKENS_LIMIT: u32 = 512;
/// Seed of the sampled decoding (shown, fixed: same prompt → same answer).
const SAMPLE_SEED: u64 = 7;

/// The LLM worker (`www/llm-worker.js` loads the `edgewise-llm-worker` wasm module).
type LlmWorker = WorkerChannel<ToLlm, FromLlm>;

/// What the panel is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Loading,
    Ready,
    Generating,
    Measuring,
    NoModel,
    Failed,
}

impl Phase {
    fn key(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Loading => "loading",
            Self::Ready => "ready",
            Self::Generating => "generating",
            Self::Measuring => "measuring",
            Self::NoModel => "no-model",
            Self::Failed => "error",
        }
    }
}

/// Figures of the last answer.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    ids: Vec<u32>,
    prompt_tokens: u32,
    prefill_ms: f64,
    tok_per_s: f64,
    finish: String,
}

/// Panel messages.
#[derive(Debug)]
pub enum ChatMsg {
    /// The bundle's model list arrived (or could not be read).
    Index(Result<ModelIndex, String>),
    /// The visitor picked a model (by file) before opening the chat.
    PickModel(String),
    Open,
    Worker(Received<FromLlm>),
    Prompt(String),
    MaxTokens(String),
    ToggleSample,
    Send,
    Stop,
    Check,
    Choose(String),
    /// Time the fixed benchmark.
    Measure,
    /// The energy model's class for the estimate and the added device.
    EnergyClass(String),
    /// Hand the measured device to the simulation.
    AddDevice,
}

/// What the page gives the panel.
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct ChatProps {
    /// Receives the visitor's device when "Add this device to the simulation" is pressed.
    pub on_add_device: Callback<ThisDevice>,
    /// Whether the simulation races the visitor's device now (the network view's "Remove
    /// it" takes it out without telling the panel otherwise).
    pub in_simulation: bool,
}

/// The device class the measurement `measured` (backend and timing) of the model `model`
/// (with work `work`) gives, priced as `energy_class`.
///
/// # Errors
/// A sentence when nothing is loaded or measured yet, or as [`Timing::speed`] and
/// [`ThisDevice::build`].
pub fn device_from(
    model: Option<&ModelEntry>,
    work: Option<ModelWork>,
    measured: Option<&(Backend, Timing)>,
    energy_class: &str,
) -> Result<ThisDevice, String> {
    let (Some(model), Some(work)) = (model, work) else {
        return Err("load the model before adding this device".to_owned());
    };
    let Some((backend, timing)) = measured else {
        return Err("press “Measure this device” before adding it to the simulation".to_owned());
    };
    #[allow(clippy::cast_precision_loss)] // model files are far below 2^52 bytes
    let model_bytes = model.bytes as f64;
    ThisDevice::build(
        &Measured {
            model_variant: &model.variant,
            model_bytes,
            work,
            speed: timing.speed()?,
            backend: backend.label(),
        },
        energy_class,
    )
}

/// The chat panel component.
pub struct ChatPanel {
    worker: Option<LlmWorker>,
    phase: Phase,
    backend: Option<Backend>,
    /// Why that backend (the choice, the measured comparison, or why not WebGPU).
    backend_why: String,
    choice: BackendChoice,
    progress: Option<(Stage, u64, u64)>,
    model: Option<(ModelEntry, f64, bool)>,
    prompt: String,
    max_tokens: u32,
    sample: bool,
    output: String,
    live_ids: Vec<u32>,
    answer: Option<Answer>,
    check: Option<GpuCheck>,
    message: Option<String>,
    /// What went wrong and was handled while loading (retried downloads).
    notices: Vec<String>,
    /// Answers completed so far (lets a test wait for the next one).
    answers: u32,
    /// The loaded model's work per token (for the energy model).
    work: Option<ModelWork>,
    /// How far and how fast the current (or last) answer went.
    timing: Option<Timing>,
    /// The last "Measure this device": which backend and its timing.
    measured: Option<(Backend, Timing)>,
    /// The energy model's class the visitor picked.
    energy_class: String,
    /// The device last handed to the simulation.
    added: Option<ThisDevice>,
    /// The bundle's model list (`None` while it is being fetched).
    index: Option<Result<ModelIndex, String>>,
    /// The file the visitor chose from it (`None`: the worker takes the index's default).
    chosen: Option<String>,
}

impl Component for ChatPanel {
    type Message = ChatMsg;
    type Properties = ChatProps;

    fn create(ctx: &Context<Self>) -> Self {
        ctx.link()
            .send_future(async { ChatMsg::Index(crate::browser::fetch_model_index().await) });
        Self {
            worker: None,
            phase: Phase::Closed,
            backend: None,
            backend_why: String::new(),
            choice: BackendChoice::default(),
            progress: None,
            model: None,
            prompt: "What is the capital of France?".to_owned(),
            max_tokens: DEFAULT_MAX_TOKENS,
            sample: false,
            output: String::new(),
            live_ids: Vec::new(),
            answer: None,
            check: None,
            message: None,
            notices: Vec::new(),
            answers: 0,
            work: None,
            timing: None,
            measured: None,
            energy_class: DEFAULT_ENERGY_CLASS.to_owned(),
            added: None,
            index: None,
            chosen: None,
        }
    }

    /// Re-renders only when what is shown changes: the page rebuilds `on_add_device` on
    /// every race frame, and each needless render re-syncs the form's controlled inputs to
    /// the panel's state, undoing what the visitor typed before its `change` event.
    fn changed(&mut self, ctx: &Context<Self>, old_props: &ChatProps) -> bool {
        ctx.props().in_simulation != old_props.in_simulation
    }

    fn update(&mut self, ctx: &Context<Self>, msg: ChatMsg) -> bool {
        match msg {
            ChatMsg::Index(index) => {
                if self.chosen.is_none() {
                    self.chosen = index
                        .as_ref()
                        .ok()
                        .and_then(ModelIndex::pick)
                        .map(|m| m.file.clone());
                }
                self.index = Some(index);
            }
            // The choice is made before the download; the worker loads one model.
            ChatMsg::PickModel(file) => {
                if self.phase == Phase::Closed {
                    self.chosen = Some(file);
                }
            }
            ChatMsg::Open => {
                if self.worker.is_none() {
                    let link = ctx.link().clone();
                    let on_message = move |m| link.send_message(ChatMsg::Worker(m));
                    match LlmWorker::spawn("llm-worker.js", "the LLM worker", on_message) {
                        Ok(w) => {
                            self.worker = Some(w);
                            self.phase = Phase::Loading;
                        }
                        Err(e) => {
                            self.phase = Phase::Failed;
                            self.message = Some(e);
                        }
                    }
                }
            }
            ChatMsg::Worker(Ok(msg)) => self.on_worker(msg),
            ChatMsg::Worker(Err(e)) => {
                self.message = Some(e);
                self.phase = match self.phase {
                    Phase::Loading => Phase::Failed,
                    Phase::Generating | Phase::Measuring => Phase::Ready,
                    p => p,
                };
            }
            ChatMsg::Prompt(p) => self.prompt = p,
            ChatMsg::MaxTokens(t) => {
                if let Ok(n) = t.trim().parse::<u32>() {
                    self.max_tokens = n.clamp(1, MAX_TOKENS_LIMIT);
                }
            }
            ChatMsg::ToggleSample => self.sample = !self.sample,
            ChatMsg::Send => {
                if self.phase == Phase::Ready && !self.prompt.trim().is_empty() {
                    self.output.clear();
                    self.live_ids.clear();
                    self.answer = None;
                    self.timing = None;
                    self.message = None;
                    self.phase = Phase::Generating;
                    self.send(&ToLlm::Generate {
                        prompt: self.prompt.clone(),
                        max_tokens: self.max_tokens,
                        decoding: if self.sample {
                            Decoding::Sample { seed: SAMPLE_SEED }
                        } else {
                            Decoding::Greedy
                        },
                    });
                }
            }
            ChatMsg::Stop => self.send(&ToLlm::Stop),
            ChatMsg::Check => {
                if self.phase == Phase::Ready {
                    self.check = None;
                    self.send(&ToLlm::SelfTest);
                }
            }
            ChatMsg::Measure => {
                if self.phase == Phase::Ready {
                    self.message = None;
                    self.phase = Phase::Measuring;
                    self.send(&ToLlm::Measure);
                }
            }
            ChatMsg::EnergyClass(name) => {
                if energy_class(&name).is_ok() {
                    self.energy_class = name;
                }
            }
            ChatMsg::AddDevice => {
                match device_from(
                    self.model.as_ref().map(|m| &m.0),
                    self.work,
                    self.measured.as_ref(),
                    &self.energy_class,
                ) {
                    Ok(device) => {
                        self.message = None;
                        self.added = Some(device.clone());
                        ctx.props().on_add_device.emit(device);
                    }
                    Err(e) => self.message = Some(e),
                }
            }
            ChatMsg::Choose(key) => {
                if let Some(choice) = BackendChoice::from_key(&key) {
                    self.choice = choice;
                    // Before the model is loaded the choice goes with `Load`.
                    if self.phase == Phase::Ready {
                        self.phase = Phase::Loading;
                        self.check = None;
                        self.send(&ToLlm::UseBackend(choice));
                    }
                }
            }
        }
        true
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let ids = self
            .answer
            .as_ref()
            .map_or(&self.live_ids, |a| &a.ids)
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        html! {
            <section id="panel-chat" class="panel panel-chat" aria-labelledby="chat-title"
                data-state={self.phase.key()}
                data-backend={self.backend.as_ref().map_or("", Backend::label)}
                data-backend-choice={self.choice.key()}
                data-ids={ids}
                data-answers={self.answers.to_string()}
                data-tok-s={self.answer.as_ref().map(|a| format!("{:.2}", a.tok_per_s)).unwrap_or_default()}
                data-load-ms={self.model.as_ref().map(|m| format!("{:.0}", m.1)).unwrap_or_default()}
                data-check-positions={self.check.as_ref().map(|c| c.positions.to_string()).unwrap_or_default()}
                data-check-agree={self.check.as_ref().map(|c| c.agree.to_string()).unwrap_or_default()}
                data-check-logit-diff={self.check.as_ref().map(|c| c.max_abs_logit_diff.to_string()).unwrap_or_default()}
                data-measure-prefill={self.measured.as_ref().map(|m| format!("{:.2}", m.1.prefill_tok_s())).unwrap_or_default()}
                data-measure-decode={self.measured.as_ref().map(|m| format!("{:.2}", m.1.decode_tok_s())).unwrap_or_default()}
                data-energy-class={self.energy_class.clone()}
                data-energy-jpt={self.energy_view_estimate().map(|(e, _, _)| format!("{:.6}", e.joules_per_token)).unwrap_or_default()}
                data-device-added={self.added.as_ref().map(|d| format!("{:.6}", d.joules_per_token())).unwrap_or_default()}
                data-in-simulation={ctx.props().in_simulation.to_string()}
                data-model={self.model.as_ref().map(|m| m.0.file.clone()).or_else(|| self.chosen.clone()).unwrap_or_default()}>
                <h2 id="chat-title">{ "On-device LLM" }</h2>
                if self.phase == Phase::Closed {
                    { self.closed_view(link) }
                } else {
                    { self.status_view() }
                    { self.form_view(link) }
                    <div class="chat-answer">
                        <pre id="llm-output" class="chat-output" aria-live="polite">{ &self.output }</pre>
                        { self.energy_view() }
                    </div>
                    { self.stats_view() }
                    { self.device_view(link, ctx.props().in_simulation) }
                }
                if let Some(m) = &self.message {
                    <p id="llm-message" class="error" role="alert">{ m }</p>
                }
            </section>
        }
    }
}

impl ChatPanel {
    /// The chosen entry of the model list, when the list has arrived and names it.
    fn chosen_entry(&self) -> Option<&ModelEntry> {
        let index = self.index.as_ref()?.as_ref().ok()?;
        index.choose(self.chosen.as_deref()).ok().flatten()
    }

    /// Before the chat opens: what it is, the models with their download sizes, and the
    /// button (which says how much it will download).
    fn closed_view(&self, link: &html::Scope<Self>) -> Html {
        let on_pick = link.callback(|e: Event| {
            ChatMsg::PickModel(e.target_unchecked_into::<HtmlSelectElement>().value())
        });
        let models = match &self.index {
            Some(Ok(index)) => index.models.as_slice(),
            _ => &[],
        };
        let open = self.chosen_entry().map_or_else(
            || "Open the chat".to_owned(),
            |m| format!("Open the chat (downloads {} once)", megabytes(m.bytes)),
        );
        html! {
            <>
                <p class="chat-intro">
                    { "A compact chat model running in this page: on WebGPU where the browser \
                       has it, else in WebAssembly on the CPU. Opening the chat downloads the \
                       chosen model once and keeps it in this browser's cache." }
                </p>
                if models.len() > 1 {
                    <label class="chat-label">{ "Model " }
                        <select id="llm-variant" onchange={on_pick}>
                            { for models.iter().map(|m| html! {
                                <option value={m.file.clone()} selected={self.chosen.as_deref() == Some(m.file.as_str())}>{ m.label() }</option>
                            }) }
                        </select>
                    </label>
                } else if let Some(m) = models.first() {
                    <p id="llm-variant-only" class="chat-note">{ format!("Model: {}", m.label()) }</p>
                }
                if let Some(Err(e)) = &self.index {
                    <p class="chat-note">{ format!("The model list could not be read ({e}); the chat will try again when opened.") }</p>
                }
                <button id="llm-open" type="button" onclick={link.callback(|_| ChatMsg::Open)}>
                    { open }
                </button>
            </>
        }
    }

    fn send(&self, msg: &ToLlm) {
        if let Some(w) = &self.worker {
            w.send(msg);
        }
    }

    fn on_worker(&mut self, msg: FromLlm) {
        match msg {
            FromLlm::Ready => self.send(&ToLlm::Load {
                backend: self.choice,
                model: self.chosen.clone(),
            }),
            FromLlm::Backend { backend, why } => {
                self.backend = Some(backend);
                self.backend_why = why;
                self.progress = None;
                // A switch of an already loaded model ends here.
                if self.phase == Phase::Loading && self.model.is_some() {
                    self.phase = Phase::Ready;
                }
            }
            FromLlm::Progress { stage, done, total } => {
                self.progress = Some((stage, done, total));
            }
            FromLlm::NoModel(why) => {
                self.phase = Phase::NoModel;
                self.message = Some(why);
            }
            FromLlm::Loaded {
                model,
                load_ms,
                from_cache,
                work,
            } => {
                self.model = Some((model, load_ms, from_cache));
                self.work = Some(work);
                self.progress = None;
                self.phase = Phase::Ready;
            }
            FromLlm::Token { id, text } => {
                self.live_ids.push(id);
                self.output.push_str(&text);
            }
            FromLlm::Done {
                ids,
                finish,
                prompt_tokens,
                prefill_ms,
                tok_per_s,
            } => {
                self.answer = Some(Answer {
                    ids,
                    prompt_tokens,
                    prefill_ms,
                    tok_per_s,
                    finish: format!("{finish:?}"),
                });
                self.answers += 1;
                self.phase = Phase::Ready;
            }
            FromLlm::Timing(timing) => self.timing = Some(timing),
            FromLlm::SelfTest(check) => self.check = Some(check),
            FromLlm::Measured { backend, timing } => {
                if let Err(e) = timing.speed() {
                    self.message = Some(format!("the measurement failed: {e}"));
                }
                self.measured = Some((backend, timing));
                self.phase = Phase::Ready;
            }
            FromLlm::Notice(n) => self.notices.push(n),
            FromLlm::Error(e) => {
                self.message = Some(e);
                self.phase = match self.phase {
                    Phase::Loading if self.model.is_some() => Phase::Ready,
                    Phase::Loading => Phase::Failed,
                    Phase::Generating | Phase::Measuring => Phase::Ready,
                    p => p,
                };
            }
        }
    }

    fn status_view(&self) -> Html {
        let backend = match &self.backend {
            None => "detecting…".to_owned(),
            Some(Backend::Cpu) => "CPU (WebAssembly SIMD)".to_owned(),
            Some(Backend::WebGpu(name)) if name.is_empty() => {
                "WebGPU: the whole forward pass on the GPU".to_owned()
            }
            Some(Backend::WebGpu(name)) => {
                format!("WebGPU ({name}): the whole forward pass on the GPU")
            }
        };
        #[allow(clippy::cast_precision_loss)]
        let mb = |b: u64| b as f64 / 1e6;
        html! {
            <div class="chat-status">
                <p>
                    <span class="chat-label">{ "Backend: " }</span>
                    <span id="llm-backend">{ backend }</span>
                    if !self.backend_why.is_empty() {
                        <span id="llm-backend-why" class="chat-note">{ format!(" — {}", self.backend_why) }</span>
                    }
                </p>
                if let Some((m, load_ms, cached)) = &self.model {
                    <p id="llm-model">
                        <span class="chat-label">{ "Model: " }</span>
                        { format!("{} ({}, {:.1} MB), loaded in {:.1} s{}", m.name, m.variant, mb(m.bytes),
                            load_ms / 1000.0, if *cached { " from the browser cache" } else { "" }) }
                    </p>
                }
                for n in &self.notices {
                    <p class="chat-notice" role="status">{ n }</p>
                }
                if let Some((stage, done, total)) = self.progress {
                    <p class="chat-progress">
                        <label for="llm-progress">{ match stage {
                            Stage::Download => "Downloading the model",
                            Stage::Cache => "Reading the cached model",
                            Stage::Build => "Building the model",
                            Stage::Backend => "Setting up the backend (WebGPU upload; auto times both)",
                        } }</label>
                        if stage == Stage::Backend {
                            <progress id="llm-progress" />
                        } else {
                            <progress id="llm-progress" max={total.max(1).to_string()}
                                value={if stage == Stage::Build { total.to_string() } else { done.to_string() }} />
                            { format!(" {:.1} / {:.1} MB", mb(done), mb(total)) }
                        }
                    </p>
                } else if self.phase == Phase::Loading {
                    <p class="chat-progress">{ "Starting the LLM worker…" }</p>
                }
            </div>
        }
    }

    fn form_view(&self, link: &html::Scope<Self>) -> Html {
        let ready = self.phase == Phase::Ready;
        let on_prompt = link.callback(|e: InputEvent| {
            ChatMsg::Prompt(e.target_unchecked_into::<HtmlTextAreaElement>().value())
        });
        let on_max = link.callback(|e: Event| {
            ChatMsg::MaxTokens(e.target_unchecked_into::<HtmlInputElement>().value())
        });
        let on_key = link.batch_callback(|e: KeyboardEvent| {
            (e.key() == "Enter" && !e.shift_key()).then(|| {
                e.prevent_default();
                ChatMsg::Send
            })
        });
        html! {
            <div class="chat-form">
                <label for="llm-prompt" class="chat-label">{ "Your message" }</label>
                <textarea id="llm-prompt" rows="2" value={self.prompt.clone()}
                    oninput={on_prompt} onkeydown={on_key} />
                <div class="chat-buttons">
                    <label>{ "Max tokens " }
                        <input id="llm-max-tokens" type="number" min="1" max={MAX_TOKENS_LIMIT.to_string()}
                            value={self.max_tokens.to_string()} onchange={on_max} />
                    </label>
                    <label>
                        <input id="llm-sample" type="checkbox" checked={self.sample}
                            onchange={link.callback(|_| ChatMsg::ToggleSample)} />
                        { format!(" sample (T 0.7, top-p 0.9, seed {SAMPLE_SEED}); else greedy") }
                    </label>
                    <button id="llm-send" type="button" disabled={!ready}
                        onclick={link.callback(|_| ChatMsg::Send)}>{ "Send" }</button>
                    <button id="llm-stop" type="button" disabled={self.phase != Phase::Generating}
                        onclick={link.callback(|_| ChatMsg::Stop)}>{ "Stop" }</button>
                    <label>{ "Backend " }
                        <select id="llm-backend-choice" disabled={!matches!(self.phase, Phase::Ready | Phase::Closed)}
                            onchange={link.callback(|e: Event| {
                                ChatMsg::Choose(e.target_unchecked_into::<HtmlSelectElement>().value())
                            })}>
                            { for BackendChoice::ALL.into_iter().map(|c| html! {
                                <option value={c.key()} selected={c == self.choice}>{ c.label() }</option>
                            }) }
                        </select>
                    </label>
                    if matches!(self.backend, Some(Backend::WebGpu(_))) {
                        <button id="llm-check" type="button" disabled={!ready}
                            onclick={link.callback(|_| ChatMsg::Check)}>{ "Check the GPU against the CPU" }</button>
                    }
                </div>
            </div>
        }
    }

    /// The energy estimate shown beside the answer, the timing it used and where that
    /// comes from: the current (or last) answer once it has two tokens, else the benchmark.
    fn energy_view_estimate(&self) -> Option<(ClassEstimate, Timing, &'static str)> {
        let (model, _, _) = self.model.as_ref()?;
        let work = self.work?;
        let class = energy_class(&self.energy_class).ok()?;
        #[allow(clippy::cast_precision_loss)] // model files are far below 2^52 bytes
        let bytes = model.bytes as f64;
        let estimate = |t: &Timing, from| {
            live_estimate(&class, &work, bytes, t)
                .ok()
                .map(|e| (e, *t, from))
        };
        self.timing
            .as_ref()
            .and_then(|t| estimate(t, "this answer"))
            .or_else(|| estimate(&self.measured.as_ref()?.1, "the benchmark"))
    }

    fn energy_view(&self) -> Html {
        let body = match self.energy_view_estimate() {
            Some((e, t, from)) => html! {
                <>
                    <p class="chat-energy-value">
                        <span id="llm-energy-jpt">{ format!("{:.1} mJ", e.joules_per_token * 1000.0) }</span>
                        { " per token" }
                    </p>
                    <p class="chat-note">
                        { format!("{:.2} J for {from}: {} prompt and {} generated tokens at {:.0} prefill / \
                                   {:.1} decode tokens/s (memory {:.2} J, compute {:.2} J, static power {:.2} J)",
                            e.joules_per_query, t.prompt_tokens, t.generated, e.prefill_tok_s,
                            e.decode_tok_s, e.joules_memory, e.joules_compute, e.joules_static) }
                    </p>
                </>
            },
            None => html! {
                <p class="chat-note">{ "Shown from the second token of an answer, or after “Measure this device”." }</p>
            },
        };
        html! {
            <aside class="chat-energy" id="llm-energy" aria-live="polite">
                <h3>{ format!("Energy on a {} (energy model)", self.energy_class) }</h3>
                { body }
            </aside>
        }
    }

    /// "Measure this device", the energy model's class and "Add this device".
    fn device_view(&self, link: &html::Scope<Self>, in_simulation: bool) -> Html {
        let ready = self.phase == Phase::Ready;
        let on_class = link.callback(|e: Event| {
            ChatMsg::EnergyClass(e.target_unchecked_into::<HtmlSelectElement>().value())
        });
        let measured = self.measured.as_ref().map(|(backend, t)| match t.speed() {
            Ok(s) => format!(
                "Measured on the {}: a {}-token prompt at {:.1} tokens/s, then {} greedy tokens at \
                 {:.1} tokens/s.",
                backend.label(),
                t.prompt_tokens,
                s.prefill_tok_s,
                t.generated.saturating_sub(1),
                s.decode_tok_s
            ),
            Err(e) => format!("The measurement failed: {e}"),
        });
        html! {
            <div class="chat-device" id="llm-device">
                <h3>{ "Your device in the simulation" }</h3>
                <div class="chat-buttons">
                    <label>{ "Energy model: a " }
                        <select id="llm-energy-class" onchange={on_class}>
                            { for edgewise_llm::energy::default_classes().into_iter().map(|c| {
                                let selected = c.name == self.energy_class;
                                html! { <option value={c.name.clone()} selected={selected}>{ c.name }</option> }
                            }) }
                        </select>
                    </label>
                    <button id="llm-measure" type="button" disabled={!ready}
                        onclick={link.callback(|_| ChatMsg::Measure)}>
                        { if self.phase == Phase::Measuring { "Measuring…" } else { "Measure this device" } }
                    </button>
                    <button id="llm-add-device" type="button" disabled={!ready || self.measured.is_none()}
                        onclick={link.callback(|_| ChatMsg::AddDevice)}>{ "Add this device to the simulation" }</button>
                </div>
                <p class="chat-note">
                    { format!("The measurement prefills a fixed {BENCH_PROMPT_TOKENS}-token prompt and decodes \
                               {BENCH_DECODE_TOKENS} greedy tokens on the backend in use. The added class \
                               “{THIS_DEVICE_CLASS}” takes {:.0} % of the simulated devices, with these speeds, \
                               the energy model's J/token for the class picked here and that class's radio and \
                               memory; it is kept for this visit only, not in the page's link.",
                        THIS_DEVICE_SHARE * 100.0) }
                </p>
                if let Some(m) = measured {
                    <p id="llm-measure-result">{ m }</p>
                }
                if let Some(d) = self.added.as_ref().filter(|_| in_simulation) {
                    <p id="llm-device-added" role="status">
                        { format!("Added “{}” as a {}: {:.1} mJ per token, a budget of {:.2} J per window \
                                   at the shipped budget (the shipped classes' rule), the quality of {}. See \
                                   the cell above.",
                            d.class.name, d.energy_class, d.joules_per_token() * 1000.0,
                            d.class.energy_budget_j, d.quality_from) }
                    </p>
                }
            </div>
        }
    }

    fn stats_view(&self) -> Html {
        html! {
            <div class="chat-stats">
                if let Some(a) = &self.answer {
                    <p id="llm-stats">
                        { format!("{} tokens ({}) · prompt {} tokens in {:.0} ms · decode {:.1} tokens/s",
                            a.ids.len(), a.finish, a.prompt_tokens, a.prefill_ms, a.tok_per_s) }
                    </p>
                } else if self.phase == Phase::Generating {
                    <p id="llm-stats">{ format!("{} tokens…", self.live_ids.len()) }</p>
                }
                if let Some(c) = &self.check {
                    <p id="llm-check-result">
                        { format!("GPU vs CPU, teacher-forced over the CPU's {}-token answer: same next token \
                                   at {} of {} positions ({:.0} %); max |Δ logit| {:.3} at the last one (the CPU \
                                   path rounds activations to 8 bits, the GPU keeps f32); {:.0} ms GPU (one \
                                   submit) vs {:.0} ms CPU",
                            c.positions, c.agree, c.positions, 100.0 * c.agreement(),
                            c.max_abs_logit_diff, c.gpu_ms, c.cpu_ms) }
                    </p>
                }
            </div>
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ModelEntry {
        ModelEntry {
            file: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            name: "SmolLM2-135M-Instruct".into(),
            variant: "q4_1".into(),
            bytes: 98_362_432,
            sha256: "0".repeat(64),
        }
    }

    fn work() -> ModelWork {
        ModelWork {
            weight_bytes: 98_362_432.0,
            params: 134_515_008.0,
            kv_bytes_per_token: 46_080.0,
            attn_width: 17_280.0,
        }
    }

    fn benchmark(decode_ms: f64) -> (Backend, Timing) {
        (
            Backend::Cpu,
            Timing {
                prompt_tokens: 48,
                prefill_ms: 320.0,
                generated: 25,
                decode_ms,
            },
        )
    }

    #[test]
    fn a_measurement_becomes_the_device_class() {
        let m = benchmark(1600.0);
        let d = device_from(Some(&entry()), Some(work()), Some(&m), "phone-low").unwrap();
        let p = d.variant.per_class[THIS_DEVICE_CLASS];
        assert!((p.prefill_tok_s - 150.0).abs() < 1e-9);
        assert!((p.decode_tok_s - 15.0).abs() < 1e-9, "24 steps in 1.6 s");
        assert_eq!(d.energy_class, "phone-low");
        assert!(d.variant.source.contains("this browser (cpu)"));
    }

    #[test]
    fn adding_before_loading_or_measuring_or_after_a_failed_measurement_says_why() {
        let m = benchmark(1600.0);
        let e = device_from(None, Some(work()), Some(&m), "laptop").unwrap_err();
        assert!(e.contains("load the model"), "{e}");
        let e = device_from(Some(&entry()), Some(work()), None, "laptop").unwrap_err();
        assert!(e.contains("Measure this device"), "{e}");
        let stuck = benchmark(0.0);
        let e = device_from(Some(&entry()), Some(work()), Some(&stuck), "laptop").unwrap_err();
        assert!(
            e.contains("decode speed is inf") && e.contains("measure again"),
            "{e}"
        );
        let nan = benchmark(f64::NAN);
        let e = device_from(Some(&entry()), Some(work()), Some(&nan), "laptop").unwrap_err();
        assert!(e.contains("decode speed is NaN"), "{e}");
    }
}
