//! How fast the model ran in this browser: the timing of one generation or of the fixed
//! benchmark ("Measure this device"), and the prefill and decode speeds that follow from
//! it. Plain Rust, tested natively; the worker that times is wasm32 only.

use edgewise_llm::energy::HostSpeed;
use serde::{Deserialize, Serialize};

/// The benchmark's prompt, before it is cut to [`BENCH_PROMPT_TOKENS`]: fixed prose, so
/// every browser prefills the same tokens (no chat template: it is not a conversation).
pub const BENCH_PROMPT: &str = "The harbour town woke slowly. Fishing boats came in with \
    the tide, gulls circled over the market, and the baker opened his shutters to the smell \
    of fresh bread. Children ran along the sea wall while their parents argued about the \
    price of mackerel, the weather, and the new road that was meant to bring visitors from \
    the city. Nobody agreed on anything, but everyone stayed for a second cup of coffee.";

/// Prompt tokens the benchmark prefills in one step (a short chat message's length).
pub const BENCH_PROMPT_TOKENS: usize = 48;

/// Greedy tokens the benchmark decodes after the one the prefill picks (enough to average
/// over a few dozen steps, few enough to finish in seconds on a phone).
pub const BENCH_DECODE_TOKENS: usize = 24;

/// The timing of a prompt and the tokens generated after it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Prompt tokens prefilled.
    pub prompt_tokens: u32,
    /// Milliseconds for the prompt (up to and including the pick of the first token).
    pub prefill_ms: f64,
    /// Tokens generated so far (the first one included).
    pub generated: u32,
    /// Milliseconds for the tokens after the first (`generated − 1` decode steps).
    pub decode_ms: f64,
}

impl Timing {
    /// Prompt tokens per second.
    #[must_use]
    pub fn prefill_tok_s(&self) -> f64 {
        f64::from(self.prompt_tokens) / (self.prefill_ms / 1000.0)
    }

    /// Decode steps per second (the first token belongs to the prefill).
    #[must_use]
    pub fn decode_tok_s(&self) -> f64 {
        f64::from(self.generated.saturating_sub(1)) / (self.decode_ms / 1000.0)
    }

    /// Both speeds, when both are measured.
    ///
    /// # Errors
    /// A sentence naming the speed that is missing (fewer than two tokens generated) or
    /// not a finite number > 0 (a clock that did not advance, an empty prompt), and what
    /// was expected.
    pub fn speed(&self) -> Result<HostSpeed, String> {
        if self.generated < 2 {
            return Err(format!(
                "the decode speed needs at least two generated tokens, {} so far",
                self.generated
            ));
        }
        let speed = HostSpeed {
            prefill_tok_s: self.prefill_tok_s(),
            decode_tok_s: self.decode_tok_s(),
        };
        for (what, tok_s, tokens, ms) in [
            (
                "prefill",
                speed.prefill_tok_s,
                self.prompt_tokens,
                self.prefill_ms,
            ),
            (
                "decode",
                speed.decode_tok_s,
                self.generated - 1,
                self.decode_ms,
            ),
        ] {
            if !(tok_s.is_finite() && tok_s > 0.0) {
                return Err(format!(
                    "the measured {what} speed is {tok_s} tokens/s ({tokens} tokens in {ms} ms); \
                     expected a finite speed > 0: measure again"
                ));
            }
        }
        Ok(speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            prompt_tokens: 48,
            prefill_ms: 400.0,
            generated: 25,
            decode_ms: 2000.0,
        }
    }

    #[test]
    fn speeds_count_the_first_token_with_the_prompt() {
        let s = timing().speed().unwrap();
        assert!((s.prefill_tok_s - 120.0).abs() < 1e-9);
        assert!((s.decode_tok_s - 12.0).abs() < 1e-9, "24 steps in 2 s");
    }

    #[test]
    fn missing_or_broken_speeds_are_named() {
        let one = Timing {
            generated: 1,
            decode_ms: 0.0,
            ..timing()
        };
        assert!(
            one.speed()
                .unwrap_err()
                .contains("at least two generated tokens")
        );
        let stuck = Timing {
            decode_ms: 0.0,
            ..timing()
        };
        let e = stuck.speed().unwrap_err();
        assert!(
            e.contains("decode speed is inf") && e.contains("24 tokens in 0 ms"),
            "{e}"
        );
        let nan = Timing {
            prefill_ms: f64::NAN,
            ..timing()
        };
        assert!(nan.speed().unwrap_err().contains("prefill speed is NaN"));
        let empty = Timing {
            prompt_tokens: 0,
            ..timing()
        };
        assert!(empty.speed().unwrap_err().contains("prefill speed is 0"));
    }
}
