//! edgewise in the browser: the MEC simulator running live in the page.
//!
//! A visitor picks a population, a baseline offloading policy and a seed; the page runs
//! the simulator slot by slot, draws the network and a latency chart, and keeps the
//! episode metrics against the QoS constraints. The simulation itself is the plain Rust
//! model in [`model`]; the components only render it and tick it with a `gloo` timer.
//!
//! This crate never trains or loads models and depends on no ML crate.

mod app;
mod model;
mod view;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
