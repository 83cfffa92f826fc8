//! The edgewise browser app, shared by its four wasm entries (each a thin binary; the LLM
//! worker's is the package `web/llm-worker`, built at a faster optimisation level):
//!
//! - the page (`src/main.rs`, yew): renders what the workers report and owns the controls;
//! - the simulation worker (`src/bin/worker.rs`): one simulator per entrant ("lanes") on
//!   the same seed, reporting frames ([`simulation`]);
//! - the trainer worker (`src/bin/trainer.rs`), started only when the visitor starts a
//!   training race: PPO and WM-PPO learn the current scenario ([`training`]);
//! - the LLM worker (`llm-worker/src/main.rs`), started only when the chat panel opens: a
//!   compact LLM answers in the page ([`chat`]).
//!
//! Each feature folder holds its `protocol` (page ↔ worker messages), its `worker`, the
//! page's side (`page`, or the chat's `panel`) and its view. Shared by all: [`scenario`]
//! (what the visitor chose, its URL form and presets, from `mec::KNOBS`), [`entrants`]
//! (who races and their colours), [`wire`] (the one message encoding), [`channel`] (the
//! page's end of a worker) and [`worker_scope`] (a worker's end). The page shell is
//! [`app`] (state and messages), [`root`] (update and view), [`layout`] (the page's
//! panels in order), [`format`] (numbers and units), [`browser`] (URL, downloads) and
//! [`tour`].
//!
//! Everything but the channels, the workers and the views is plain Rust, tested natively.

pub mod app;
pub mod browser;
pub mod channel;
pub mod chat;
pub mod entrants;
pub mod format;
pub mod layout;
pub mod root;
pub mod scenario;
pub mod simulation;
pub mod tour;
pub mod training;
pub mod wire;
pub mod worker_scope;
