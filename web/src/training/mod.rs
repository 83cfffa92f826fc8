//! The training race: PPO and WM-PPO learn the page's current scenario live, in their own
//! worker, then can replace the shipped policies in the simulation race.
//!
//! - [`protocol`]: the page ↔ trainer-worker messages;
//! - [`curve`]: learning curves and the "did it improve" statistic;
//! - [`race`]: both learners and their simulators (burn; the worker's side);
//! - [`worker`]: the trainer worker, which steps the race one iteration per task;
//! - [`page`]: the page's handle (starts the worker on the first "Start training") and
//!   what it reported;
//! - [`view`]: the panel.
//!
//! The page uses only `protocol`, `curve`, `page` and `view`, so it links none of burn.

pub mod curve;
pub mod page;
pub mod protocol;
pub mod race;
pub mod view;
pub mod worker;
