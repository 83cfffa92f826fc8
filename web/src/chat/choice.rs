//! How the chat's backend follows from the visitor's choice, what WebGPU offered and,
//! for `auto`, the measured speed of each: plain Rust, tested natively (the worker that
//! measures is wasm32 only, in `backend.rs`).

use super::protocol::BackendChoice;

/// Which backend `choice` leads to, given what WebGPU offered (`gpu`: the model on it, or
/// why not) and, for `auto`, the measured milliseconds per decode step of each. Returns
/// whether to use the GPU and why, as a sentence for the panel.
#[must_use]
pub fn decide(
    choice: BackendChoice,
    gpu: Result<&str, &str>,
    timed: Option<(f64, f64)>,
) -> (bool, String) {
    match (choice, gpu) {
        (BackendChoice::Cpu, _) => (false, "you chose the CPU".to_owned()),
        (_, Err(why)) => (false, format!("WebGPU cannot be used here: {why}")),
        (BackendChoice::WebGpu, Ok(adapter)) => {
            (true, format!("you chose WebGPU; adapter: {adapter}"))
        }
        (BackendChoice::Auto, Ok(adapter)) => match timed {
            Some((gpu_ms, cpu_ms)) => {
                let use_gpu = gpu_ms < cpu_ms;
                let rate = |ms: f64| if ms > 0.0 { 1000.0 / ms } else { 0.0 };
                (
                    use_gpu,
                    format!(
                        "auto: one decode step took {gpu_ms:.0} ms on WebGPU ({adapter}, {:.1} \
                         tokens/s) and {cpu_ms:.0} ms on the CPU ({:.1} tokens/s); the {} is used",
                        rate(gpu_ms),
                        rate(cpu_ms),
                        if use_gpu { "GPU" } else { "CPU" }
                    ),
                )
            }
            None => (true, format!("auto: WebGPU adapter {adapter}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_choice_never_uses_the_gpu() {
        let (gpu, why) = decide(BackendChoice::Cpu, Ok("SwiftShader"), Some((1.0, 100.0)));
        assert!(!gpu);
        assert!(why.contains("you chose the CPU"));
    }

    #[test]
    fn without_webgpu_every_choice_falls_back_with_the_reason() {
        for c in [BackendChoice::Auto, BackendChoice::WebGpu] {
            let (gpu, why) = decide(c, Err("navigator.gpu is missing"), None);
            assert!(!gpu);
            assert!(why.contains("navigator.gpu is missing"), "{why}");
        }
    }

    #[test]
    fn auto_keeps_the_faster_and_says_both_speeds() {
        let (gpu, why) = decide(BackendChoice::Auto, Ok("SwiftShader"), Some((400.0, 50.0)));
        assert!(!gpu);
        assert!(
            why.contains("400 ms") && why.contains("50 ms") && why.contains("20.0 tokens/s"),
            "{why}"
        );
        assert!(why.ends_with("the CPU is used"), "{why}");
        let (gpu, why) = decide(BackendChoice::Auto, Ok("a GPU"), Some((2.0, 50.0)));
        assert!(gpu, "{why}");
        assert!(why.ends_with("the GPU is used"), "{why}");
    }

    #[test]
    fn a_forced_webgpu_choice_uses_even_a_slow_adapter() {
        let (gpu, why) = decide(
            BackendChoice::WebGpu,
            Ok("SwiftShader"),
            Some((400.0, 50.0)),
        );
        assert!(gpu);
        assert!(why.contains("SwiftShader"), "{why}");
    }
}
