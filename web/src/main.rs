//! edgewise in the browser: trained offloading policies race the baselines on one
//! simulated mobile-edge cell, live.
//!
//! This binary is the page: it only renders and owns the controls (the root component is
//! `edgewise_web::app::App`). The work runs in three dedicated web workers, each its own
//! binary: the simulation (`src/bin/worker.rs`, a frame per tick), the training race
//! (`src/bin/trainer.rs`, PPO vs WM-PPO learning live, started on the first "Start
//! training") and the on-device LLM chat (`llm-worker/src/main.rs`, started when the chat
//! panel opens). Everything else is the library `edgewise_web`.

fn main() {
    yew::Renderer::<edgewise_web::app::App>::new().render();
}
