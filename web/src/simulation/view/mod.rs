//! The simulation's panels. Each module turns the [`crate::app::App`] state into markup
//! and holds no state of its own.

pub mod charts;
pub mod controls;
pub mod entrants;
pub mod network;
pub mod scores;
