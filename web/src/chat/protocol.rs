//! Messages between the chat panel and the LLM worker: what the page asks
//! ([`ToLlm`]) and what the worker reports ([`FromLlm`]).

use serde::{Deserialize, Serialize};

use super::model_index::ModelEntry;

/// How the next token is chosen (the page's choice, sent with each request).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Decoding {
    /// Most likely token (deterministic; what the tests use).
    Greedy,
    /// Temperature 0.7, top-p 0.9, from the given seed.
    Sample { seed: u64 },
}

/// Page → LLM worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToLlm {
    /// Detect the backend, fetch (or take from the Cache API) and load the model.
    Load,
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
    /// Check the WebGPU LM-head kernel against the CPU on the loaded model.
    SelfTest,
}

/// Where the decode-time matmuls run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// Everything on the CPU (wasm simd128).
    Cpu,
    /// The LM head on WebGPU (adapter description), the blocks on the CPU.
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

/// The GPU kernel check, as measured on the loaded model's LM head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelCheck {
    /// Rows × columns of the head.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// max |GPU − exact f32 reference| over all rows.
    pub max_abs_vs_f32: f32,
    /// max |GPU − candle's quantised CPU path (Q8 activations)|.
    pub max_abs_vs_cpu: f32,
    /// Whether the argmax agrees with the CPU path.
    pub top1_equal: bool,
    /// Milliseconds for one GPU mat-vec (upload, dispatch, read back).
    pub gpu_ms: f64,
    /// Milliseconds for one CPU mat-vec (candle).
    pub cpu_ms: f64,
}

/// LLM worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromLlm {
    /// The worker runs and waits for `Load`.
    Ready,
    /// Backend chosen (with why the GPU is not used, if it is not).
    Backend {
        /// What runs the decode.
        backend: Backend,
        /// Why WebGPU is not used (or an empty string).
        note: String,
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
    },
    /// A new token (text may be empty while a UTF-8 sequence is incomplete).
    Token {
        /// Token id.
        id: u32,
        /// Text it completes.
        text: String,
    },
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
    SelfTest(KernelCheck),
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
}
