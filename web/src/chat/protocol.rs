//! Messages between the chat panel and the LLM worker: what the page asks
//! ([`ToLlm`]) and what the worker reports ([`FromLlm`]).

use edgewise_llm::energy::ModelWork;
use serde::{Deserialize, Serialize};

use super::model_index::ModelEntry;
use super::timing::Timing;

/// How the next token is chosen (the page's choice, sent with each request).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Decoding {
    /// Most likely token (deterministic; what the tests use).
    Greedy,
    /// Temperature 0.7, top-p 0.9, from the given seed.
    Sample { seed: u64 },
}

/// Which backend the visitor asked for (the panel's selector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BackendChoice {
    /// Time one decode step on each and keep the faster (a software WebGPU adapter is
    /// usually slower than the wasm CPU path; a real GPU is not).
    #[default]
    Auto,
    /// The whole forward pass on WebGPU, whatever the adapter.
    WebGpu,
    /// The wasm CPU path.
    Cpu,
}

impl BackendChoice {
    /// Every choice, in the selector's order.
    pub const ALL: [Self; 3] = [Self::Auto, Self::WebGpu, Self::Cpu];

    /// The selector's option value (and `data-backend-choice`).
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::WebGpu => "webgpu",
            Self::Cpu => "cpu",
        }
    }

    /// The selector's option text.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Auto => "auto (the faster on this device)",
            Self::WebGpu => "WebGPU",
            Self::Cpu => "CPU (WebAssembly)",
        }
    }

    /// The choice whose [`key`](Self::key) is `key`.
    #[must_use]
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.key() == key)
    }
}

/// Page → LLM worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToLlm {
    /// Fetch (or take from the Cache API) and load the model, then set up `backend`.
    Load {
        /// The backend the visitor asked for.
        backend: BackendChoice,
        /// The file of `models/index.json` the visitor chose; none: the index's default
        /// ([`ModelIndex::pick`](super::model_index::ModelIndex::pick)).
        #[serde(default)]
        model: Option<String>,
    },
    /// Switch the loaded model to another backend (nothing is downloaded again).
    UseBackend(BackendChoice),
    /// Answer `prompt` as a single-turn chat.
    Generate {
        /// The user's message.
        prompt: String,
        /// Most new tokens.
        max_tokens: u32,
        /// Greedy or sampled.
        decoding: Decoding,
    },
    /// Stop the running generation after the current token.
    Stop,
    /// Check the WebGPU forward pass against the CPU path on the loaded model.
    SelfTest,
    /// Time the fixed benchmark (`timing::BENCH_*`) on the backend in use.
    Measure,
}

/// Where the forward pass runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// Everything on the CPU (wasm simd128).
    Cpu,
    /// The whole forward pass on WebGPU (adapter description); only token ids (and, when
    /// sampling, the logits) come back.
    WebGpu(String),
}

impl Backend {
    /// Short label for the page (`data-backend` too).
    pub fn label(&self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::WebGpu(_) => "webgpu",
        }
    }
}

/// Load stage reported with progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Downloading the file.
    Download,
    /// Reading from the Cache API.
    Cache,
    /// Parsing GGUF and building the model.
    Build,
    /// Putting the model on WebGPU and, for `auto`, timing both backends.
    Backend,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    /// The model ended its turn.
    EndOfTurn,
    /// `max_tokens` reached.
    Length,
    /// The page pressed Stop.
    Stopped,
}

/// The GPU forward pass checked against the CPU path on the loaded model: a fixed chat
/// prompt and the CPU's greedy answer to it, teacher-forced through both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuCheck {
    /// Positions whose next-token prediction was compared (the answer's).
    pub positions: u32,
    /// Of those, how many the GPU and the CPU predict alike.
    pub agree: u32,
    /// max |GPU − CPU| over the logits after the last position. The CPU path quantizes
    /// activations to 8 bits (as ggml does); the GPU multiplies them in f32, so the two
    /// differ by that rounding, not by an error of either.
    pub max_abs_logit_diff: f32,
    /// Milliseconds for the GPU's teacher-forced pass (one submit).
    pub gpu_ms: f64,
    /// Milliseconds for the CPU's pass over the same positions.
    pub cpu_ms: f64,
}

impl GpuCheck {
    /// The share of positions predicted alike.
    #[must_use]
    pub fn agreement(&self) -> f64 {
        if self.positions == 0 {
            0.0
        } else {
            f64::from(self.agree) / f64::from(self.positions)
        }
    }
}

/// LLM worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromLlm {
    /// The worker runs and waits for `Load`.
    Ready,
    /// Backend set up, and why this one.
    Backend {
        /// What runs the forward pass.
        backend: Backend,
        /// Why this backend (the choice, a measured comparison, or why WebGPU cannot be
        /// used), as a sentence.
        why: String,
    },
    /// Load progress.
    Progress {
        /// What is happening.
        stage: Stage,
        /// Bytes done.
        done: u64,
        /// Bytes expected (0 = unknown).
        total: u64,
    },
    /// No model in the bundle (or the index is unreadable): what to do.
    NoModel(String),
    /// Model ready.
    Loaded {
        /// Which file.
        model: ModelEntry,
        /// Milliseconds from `Load` to ready.
        load_ms: f64,
        /// Whether the bytes came from the Cache API.
        from_cache: bool,
        /// The model's work per token, for the energy model.
        work: ModelWork,
    },
    /// A new token (text may be empty while a UTF-8 sequence is incomplete).
    Token {
        /// Token id.
        id: u32,
        /// Text it completes.
        text: String,
    },
    /// How far the running generation got and how fast (after the prompt and after
    /// each token).
    Timing(Timing),
    /// Generation finished.
    Done {
        /// Every generated id (stop token excluded).
        ids: Vec<u32>,
        /// Why it ended.
        finish: Finish,
        /// Prompt length in tokens.
        prompt_tokens: u32,
        /// Milliseconds for the prompt (first token).
        prefill_ms: f64,
        /// Decode speed after the first token, tokens per second.
        tok_per_s: f64,
    },
    /// Result of `SelfTest`.
    SelfTest(GpuCheck),
    /// Result of `Measure`.
    Measured {
        /// The backend that ran it.
        backend: Backend,
        /// Its timing.
        timing: Timing,
    },
    /// Something went wrong and was handled (a corrupt cached copy, a retried download): a
    /// sentence for the page.
    Notice(String),
    /// Something failed (a sentence for the page).
    Error(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_json() {
        let msg = FromLlm::Done {
            ids: vec![1, 2],
            finish: Finish::Length,
            prompt_tokens: 3,
            prefill_ms: 1.5,
            tok_per_s: 10.0,
        };
        let back: FromLlm = serde_json::from_str(&serde_json::to_string(&msg).unwrap()).unwrap();
        assert_eq!(back, msg);
        assert_eq!(Backend::WebGpu("x".into()).label(), "webgpu");
    }

    #[test]
    fn backend_choices_round_trip_through_their_keys() {
        for c in BackendChoice::ALL {
            assert_eq!(BackendChoice::from_key(c.key()), Some(c));
        }
        assert_eq!(BackendChoice::from_key("gpu"), None);
        assert_eq!(BackendChoice::default(), BackendChoice::Auto);
    }

    #[test]
    fn gpu_check_agreement_is_a_share() {
        let c = GpuCheck {
            positions: 8,
            agree: 6,
            max_abs_logit_diff: 0.1,
            gpu_ms: 1.0,
            cpu_ms: 1.0,
        };
        assert!((c.agreement() - 0.75).abs() < 1e-12);
        assert!(
            GpuCheck {
                positions: 0,
                agree: 0,
                ..c
            }
            .agreement()
            .abs()
                < 1e-12
        );
    }
}
