//! The plain-Rust core of the edgewise browser app, shared by its three wasm entries:
//!
//! - the page (`src/main.rs`, yew): renders what the worker reports and owns the controls;
//! - the dedicated worker (`src/bin/worker.rs`): runs one simulator per policy ("lanes")
//!   on the same seed and reports frames;
//! - the trainer worker (`src/bin/trainer.rs`), started only when the visitor starts a
//!   training race: PPO and WM-PPO learn the current scenario ([`training`]).
//!
//! Nothing here but [`worker_io`] touches the browser, so the rest is tested natively:
//! [`scenario`] (what the visitor chose, its URL form and presets), [`policies`] (the
//! policies raced and their colours), [`race`] (the lanes and what a frame holds),
//! [`protocol`] (the messages between page and worker), [`training`] (the training
//! race and its messages), [`llm`] (the in-page LLM's messages, model list and GPU
//! weight layout) and [`worker_io`] (posting to the page and the clock, for every worker).

pub mod csv;
pub mod llm;
pub mod policies;
pub mod protocol;
pub mod race;
pub mod scenario;
pub mod training;
pub mod worker_io;
