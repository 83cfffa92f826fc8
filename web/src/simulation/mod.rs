//! The simulation race: every entrant runs its own copy of one simulated cell on the same
//! seed, live, in the simulation worker.
//!
//! - [`protocol`]: the page ↔ simulation-worker messages;
//! - [`race`]: the lanes and what a frame holds (plain Rust, tested natively);
//! - [`class_tally`]: each device class's questions in a lane (how a class is scheduled);
//! - [`this_device`]: the visitor's browser as an extra device class ("add this device");
//! - [`worker`]: the simulation worker, which steps the race on its own clock;
//! - [`page`]: the page's handle (the worker's channel and what it reported);
//! - [`csv`]: the race's CSV export;
//! - [`view`]: the controls, the entrant chips, the network, the scoreboard, the charts.

pub mod class_tally;
pub mod csv;
pub mod page;
pub mod protocol;
pub mod race;
pub mod this_device;
pub mod view;
pub mod worker;
