//! The live estimate beside the chat: joules per token of the current answer on the
//! device class the visitor picked, from the energy model (`edgewise_llm::energy`) with
//! the speeds this browser is showing. Plain Rust, tested natively.

use edgewise_llm::energy::{self, ClassEstimate, DeviceClass, ModelWork, QueryShape};

use super::timing::Timing;

/// The energy model's class of `name`, or a sentence naming the classes there are.
///
/// # Errors
/// When `name` is not one of [`energy::default_classes`].
pub fn energy_class(name: &str) -> Result<DeviceClass, String> {
    energy::default_class(name).map_err(|e| e.to_string())
}

/// The class picked until the visitor picks another (a browser tab most often runs on
/// a laptop or desktop).
pub const DEFAULT_ENERGY_CLASS: &str = "laptop";

/// The energy of the generation `timing` describes (its prompt, the tokens so far, at its
/// speeds) on `class`, for the model of `work` whose file has `model_bytes`.
///
/// # Errors
/// While the speeds are not both known (see [`Timing::speed`]), or the model rejects its
/// inputs, as a sentence.
pub fn live_estimate(
    class: &DeviceClass,
    work: &ModelWork,
    model_bytes: f64,
    timing: &Timing,
) -> Result<ClassEstimate, String> {
    let speed = timing.speed()?;
    let query = QueryShape {
        input_tokens: f64::from(timing.prompt_tokens),
        output_tokens: f64::from(timing.generated),
    };
    energy::estimate_measured(class, work, speed, query, model_bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M's shape: 30 layers, 9 query and 3 KV heads of 64.
    fn smollm() -> ModelWork {
        ModelWork {
            weight_bytes: 98.4e6,
            params: 134.5e6,
            kv_bytes_per_token: 30.0 * 2.0 * 3.0 * 64.0 * 4.0,
            attn_width: 30.0 * 9.0 * 64.0,
        }
    }

    fn timing(decode_ms: f64) -> Timing {
        Timing {
            prompt_tokens: 40,
            prefill_ms: 500.0,
            generated: 21,
            decode_ms,
        }
    }

    #[test]
    fn the_estimate_follows_the_observed_speed_and_the_class() {
        let laptop = energy_class(DEFAULT_ENERGY_CLASS).unwrap();
        let fast = live_estimate(&laptop, &smollm(), 98.4e6, &timing(1000.0)).unwrap();
        let slow = live_estimate(&laptop, &smollm(), 98.4e6, &timing(4000.0)).unwrap();
        assert!((fast.decode_tok_s - 20.0).abs() < 1e-9);
        // Slower decoding (5 instead of 20 tokens/s over 21 tokens) keeps the static power
        // on longer, spread over 40 + 21 tokens; nothing else changes.
        let extra = laptop.static_w * (21.0 / 5.0 - 21.0 / 20.0) / 61.0;
        assert!(
            (slow.joules_per_token - fast.joules_per_token - extra).abs() < 1e-12,
            "{} vs {}",
            slow.joules_per_token,
            fast.joules_per_token
        );
        // A phone's lower static power and energy per byte cost less at the same speed.
        let phone = energy_class("phone-high").unwrap();
        let on_phone = live_estimate(&phone, &smollm(), 98.4e6, &timing(1000.0)).unwrap();
        assert!(on_phone.joules_per_token < fast.joules_per_token);
        assert!(fast.fits && on_phone.fits);
    }

    #[test]
    fn no_estimate_before_two_tokens_and_unknown_classes_are_named() {
        let laptop = energy_class("laptop").unwrap();
        let first = Timing {
            generated: 1,
            decode_ms: 0.0,
            ..timing(0.0)
        };
        let e = live_estimate(&laptop, &smollm(), 98.4e6, &first).unwrap_err();
        assert!(e.contains("two generated tokens"), "{e}");
        let e = energy_class("tablet").unwrap_err();
        assert!(e.contains("tablet") && e.contains("expected one of"), "{e}");
    }
}
