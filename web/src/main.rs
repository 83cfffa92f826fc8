//! edgewise in the browser: trained offloading policies race the baselines on one
//! simulated mobile-edge cell, live.
//!
//! The page (this binary, yew) only renders and owns the controls; the simulation runs in
//! a dedicated web worker (`src/bin/worker.rs`) that posts a frame per tick. The shared
//! plain-Rust core (scenario and URL state, the race, the protocol, CSV) is the library
//! `edgewise_web`. The training race (PPO vs WM-PPO learning live) runs in a second
//! worker (`src/bin/trainer.rs`) that the page starts only when asked (`trainer.rs`).

mod app;
mod browser;
mod tour;
mod trainer;
mod view;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
