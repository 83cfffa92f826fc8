//! The engine's prefill and greedy decode speed in WebAssembly outside the browser, for
//! timing and profiling the wasm CPU path (`node --cpu-prof` names every Rust function).
//! Same work as `crates/llm/examples/speed.rs`; the browser's own figure is
//! `tests/browser/llm-speed.mjs`. Built only on request, not by `cargo xtask test`:
//!
//! ```sh
//! cargo build -p edgewise-wasm-speed --target wasm32-unknown-unknown --profile web
//! node tests/wasm-speed/run.mjs \
//!     TARGET_DIR/wasm32-unknown-unknown/web/edgewise_wasm_speed.wasm MODEL.gguf [RUNS]
//! ```
//!
//! (`[profile.web.package.edgewise-wasm-speed]` builds it at the LLM worker's level.)
//! `node tests/wasm-speed/chromium.mjs MODULE MODEL [RUNS]` runs the same module in headless
//! Chromium. Adding `--config 'target.wasm32-unknown-unknown.rustflags=["-C",
//! "target-feature=+relaxed-simd"]'` (and another target directory) to the build gives the
//! relaxed-SIMD variant, whose Q4_1 decode kernel uses the 8-bit dot product (Chromium has
//! relaxed SIMD; Node 20 needs `--experimental-wasm-relaxed-simd`).
//!
//! A plain C-ABI module (no wasm-bindgen): the script copies the model into the module's
//! memory (`alloc`, `load`) and calls `bench`; the module imports only `env.now`
//! (milliseconds, `performance.now`). Natively it builds to nothing.
#![cfg_attr(target_arch = "wasm32", allow(unsafe_code))]

#[cfg(target_arch = "wasm32")]
mod module {
    use std::cell::RefCell;
    use std::io::Cursor;

    use edgewise_llm::{Device, Engine, model};

    unsafe extern "C" {
        /// Milliseconds from the host (`performance.now()`).
        fn now() -> f64;
    }

    thread_local! {
        static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    }

    /// A buffer of `len` bytes the host fills (ownership passes back in `load`).
    #[unsafe(no_mangle)]
    pub extern "C" fn alloc(len: usize) -> *mut u8 {
        let mut v = vec![0u8; len];
        let p = v.as_mut_ptr();
        std::mem::forget(v);
        p
    }

    /// Loads a GGUF model from a buffer made by `alloc(len)`: 0 on success, 1 on error.
    #[unsafe(no_mangle)]
    pub extern "C" fn load(ptr: *mut u8, len: usize) -> i32 {
        // SAFETY: `ptr` and `len` come from `alloc(len)`, which leaked a Vec of exactly
        // that length and capacity; the host calls `load` once per buffer.
        let bytes = unsafe { Vec::from_raw_parts(ptr, len, len) };
        match Engine::from_gguf(&mut Cursor::new(bytes), "model", &Device::Cpu) {
            Ok(e) => {
                ENGINE.with(|cell| *cell.borrow_mut() = Some(e));
                0
            }
            Err(_) => 1,
        }
    }

    /// Prefills `prefill` tokens, then decodes `decode` greedy tokens after them; writes
    /// the two rates (tok/s) to `out[0]`, `out[1]` and returns the greedy ids' checksum
    /// (0 when no model is loaded or the forward pass fails).
    #[unsafe(no_mangle)]
    pub extern "C" fn bench(prefill: usize, decode: usize, out: *mut f64) -> u64 {
        let run = |engine: &Engine| -> edgewise_llm::Result<(f64, f64, u64)> {
            let text = "Mobile edge computing lets phones offload language-model queries to a \
                        nearby server when the radio channel is good, and answer locally \
                        otherwise. ";
            let ids = engine
                .tokenizer
                .encode(&text.repeat(prefill / 8 + 9), false)?;
            let mut cache = engine.model.new_cache();
            // SAFETY: an import without arguments or memory access.
            let t0 = unsafe { now() };
            let mut next = model::argmax(&engine.model.forward(&ids[..prefill], &mut cache)?)?;
            // SAFETY: as above.
            let t1 = unsafe { now() };
            let mut checksum = 0u64;
            for _ in 0..decode {
                next = model::argmax(&engine.model.forward(&[next], &mut cache)?)?;
                checksum = checksum.wrapping_mul(31).wrapping_add(u64::from(next));
            }
            // SAFETY: as above.
            let t2 = unsafe { now() };
            #[allow(clippy::cast_precision_loss)]
            let rate = |n: usize, ms: f64| n as f64 / (ms / 1000.0);
            Ok((rate(prefill, t1 - t0), rate(decode, t2 - t1), checksum))
        };
        ENGINE.with(|cell| match cell.borrow().as_ref().map(run) {
            Some(Ok((p, d, sum))) => {
                // SAFETY: the host passes a buffer of two f64 from `alloc(16)`.
                unsafe {
                    out.write_unaligned(p);
                    out.add(1).write_unaligned(d);
                }
                sum
            }
            _ => 0,
        })
    }
}
