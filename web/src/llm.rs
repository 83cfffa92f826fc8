//! The in-page LLM's plain-Rust side: the page ↔ LLM-worker messages, the model list
//! the page is served with (`models/index.json`, written by `cargo xtask web`), and the
//! GPU layout of the Q8_0 LM head with its CPU reference mat-vec (what the WebGPU kernel
//! in `src/bin/llm_worker/gpu.rs` is checked against).
//!
//! Nothing here touches the browser, so it is tested natively.

use serde::{Deserialize, Serialize};

/// Path of the model list, relative to the page.
pub const MODEL_INDEX: &str = "models/index.json";

/// The command that fills the model cache (shown when the bundle ships no model).
pub const GET_MODEL_HINT: &str = "no model is shipped with this build: run `cargo xtask setup` (downloads the model into \
     the cache), then `cargo xtask web`";

/// One model file of the bundle (an entry of `models/index.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// File name inside `models/`.
    pub file: String,
    /// Human-readable name.
    pub name: String,
    /// `"ecld"` for the compressed deployment variant, else the quantisation (`"q4_1"`).
    pub variant: String,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// `models/index.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIndex {
    /// Every model file shipped.
    pub models: Vec<ModelEntry>,
}

/// Variant name of the ECLD-compressed model (preferred when shipped).
pub const ECLD_VARIANT: &str = "ecld";

impl ModelIndex {
    /// Parses the index.
    ///
    /// # Errors
    /// A message naming the problem when `text` is not `{"models": [{file, name, variant,
    /// bytes}, ...]}`, or a file name is not a plain name (no `/`, `\` or `..`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let index: Self = serde_json::from_str(text).map_err(|e| {
            format!("{MODEL_INDEX} is not {{\"models\": [{{file, name, variant, bytes}}]}}: {e}")
        })?;
        for m in &index.models {
            if m.file.is_empty()
                || m.file.contains('/')
                || m.file.contains('\\')
                || m.file.contains("..")
            {
                return Err(format!(
                    "{MODEL_INDEX}: model file {:?} is not a plain file name",
                    m.file
                ));
            }
        }
        Ok(index)
    }

    /// The model the page loads: the ECLD variant when shipped, else the first listed.
    pub fn pick(&self) -> Option<&ModelEntry> {
        self.models
            .iter()
            .find(|m| m.variant == ECLD_VARIANT)
            .or_else(|| self.models.first())
    }
}

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

/// Q8_0: 32 weights per block, an f16 scale then 32 `i8`.
pub const Q8_0_BLOCK: usize = 32;
const Q8_0_BYTES: usize = 34;

/// The LM head laid out for the GPU: a GGUF Q8_0 matrix (`rows` × `cols`, row-major
/// blocks of 34 bytes) split into 4-byte-aligned arrays, since WGSL reads storage in
/// `u32` words and a 34-byte block straddles them. The values are unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Q8Gpu {
    /// Rows (output features).
    pub rows: usize,
    /// Columns (input features), a multiple of 32.
    pub cols: usize,
    /// Four `i8` per word, little-endian; row `r` block `b` starts at word
    /// `(r · cols/32 + b) · 8`.
    pub quants: Vec<u32>,
    /// One scale per block, same order.
    pub scales: Vec<f32>,
}

impl Q8Gpu {
    /// Splits raw GGUF Q8_0 bytes.
    ///
    /// # Errors
    /// When `cols` is not a multiple of 32 or `raw` is not `rows · cols/32 · 34` bytes.
    pub fn from_gguf_bytes(raw: &[u8], rows: usize, cols: usize) -> Result<Self, String> {
        if cols == 0 || !cols.is_multiple_of(Q8_0_BLOCK) {
            return Err(format!(
                "Q8_0 rows must hold a multiple of {Q8_0_BLOCK} weights, got {cols}"
            ));
        }
        let blocks = rows * cols / Q8_0_BLOCK;
        if raw.len() != blocks * Q8_0_BYTES {
            return Err(format!(
                "a {rows}×{cols} Q8_0 matrix is {} bytes, got {}",
                blocks * Q8_0_BYTES,
                raw.len()
            ));
        }
        let mut quants = Vec::with_capacity(blocks * 8);
        let mut scales = Vec::with_capacity(blocks);
        for block in raw.chunks_exact(Q8_0_BYTES) {
            scales.push(half::f16::from_le_bytes([block[0], block[1]]).to_f32());
            quants.extend(
                block[2..]
                    .chunks_exact(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
            );
        }
        Ok(Self {
            rows,
            cols,
            quants,
            scales,
        })
    }

    /// Weight `(r, c)` as f32.
    pub fn weight(&self, r: usize, c: usize) -> f32 {
        let block = r * self.cols / Q8_0_BLOCK + c / Q8_0_BLOCK;
        let i = c % Q8_0_BLOCK;
        let word = self.quants[block * 8 + i / 4];
        #[allow(clippy::cast_possible_truncation)]
        let q = (word >> (8 * (i % 4))) as u8 as i8;
        self.scales[block] * f32::from(q)
    }

    /// `W x` in f64 accumulation: the exact reference the GPU kernel is compared with.
    ///
    /// # Panics
    /// When `x.len() != cols`.
    pub fn matvec_reference(&self, x: &[f32]) -> Vec<f32> {
        assert_eq!(x.len(), self.cols, "input length must equal the columns");
        #[allow(clippy::cast_possible_truncation)]
        (0..self.rows)
            .map(|r| {
                (0..self.cols)
                    .map(|c| f64::from(self.weight(r, c)) * f64::from(x[c]))
                    .sum::<f64>() as f32
            })
            .collect()
    }
}

/// Largest |a − b| (∞ when the lengths differ).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, variant: &str) -> ModelEntry {
        ModelEntry {
            file: file.into(),
            name: file.into(),
            variant: variant.into(),
            bytes: 1,
        }
    }

    #[test]
    fn index_prefers_the_ecld_variant() {
        let mut index = ModelIndex {
            models: vec![entry("a.gguf", "q4_1")],
        };
        assert_eq!(index.pick().map(|m| m.file.as_str()), Some("a.gguf"));
        index.models.push(entry("b.gguf", ECLD_VARIANT));
        assert_eq!(index.pick().map(|m| m.file.as_str()), Some("b.gguf"));
        assert_eq!(ModelIndex::default().pick(), None);
    }

    #[test]
    fn index_parses_and_rejects_paths() {
        let text = r#"{"models":[{"file":"m.gguf","name":"M","variant":"q4_1","bytes":5}]}"#;
        let index = ModelIndex::parse(text).unwrap();
        assert_eq!(index.models[0].bytes, 5);
        let bad = text.replace("m.gguf", "../m.gguf");
        assert!(
            ModelIndex::parse(&bad)
                .unwrap_err()
                .contains("plain file name")
        );
        assert!(ModelIndex::parse("[]").unwrap_err().contains("models"));
    }

    #[test]
    fn q8_layout_round_trips_weights() {
        // 2 rows × 32 cols: scale 0.5 and 2.0, quants 0..32 and -1..-33 (as i8).
        let mut raw = Vec::new();
        for (scale, base) in [(0.5f32, 0i8), (2.0, -1)] {
            raw.extend_from_slice(&half::f16::from_f32(scale).to_le_bytes());
            for i in 0..32i8 {
                raw.push((if base < 0 { -1 - i } else { i }).to_le_bytes()[0]);
            }
        }
        let q = Q8Gpu::from_gguf_bytes(&raw, 2, 32).unwrap();
        assert_eq!(q.quants.len(), 16);
        assert_eq!(q.weight(0, 5), 2.5);
        assert_eq!(q.weight(1, 0), -2.0);
        assert_eq!(q.weight(1, 31), -64.0);
        let x = vec![1.0; 32];
        let y = q.matvec_reference(&x);
        assert_eq!(y, vec![0.5 * 496.0, 2.0 * -528.0]);
    }

    #[test]
    fn q8_layout_rejects_bad_shapes() {
        assert!(
            Q8Gpu::from_gguf_bytes(&[0; 34], 1, 30)
                .unwrap_err()
                .contains("multiple")
        );
        assert!(
            Q8Gpu::from_gguf_bytes(&[0; 33], 1, 32)
                .unwrap_err()
                .contains("34 bytes")
        );
    }

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
