//! The simulation's dedicated web worker (loaded by `www/worker.js`):
//! see [`edgewise_web::simulation::worker`].

fn main() {
    if cfg!(target_arch = "wasm32") {
        if let Err(e) = edgewise_web::simulation::worker::start() {
            gloo::console::error!(e);
        }
    } else {
        eprintln!("edgewise-worker runs inside a browser (built by `cargo xtask web`).");
    }
}
