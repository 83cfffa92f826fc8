//! The in-page LLM's dedicated web worker (loaded by `www/llm-worker.js` when the chat
//! opens): see `edgewise_web::chat::worker`.

fn main() {
    #[cfg(target_arch = "wasm32")]
    if let Err(e) = edgewise_web::chat::worker::start() {
        gloo::console::error!(e);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("edgewise-llm-worker runs inside a browser (built by `cargo xtask web`).");
}
