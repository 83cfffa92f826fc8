//! The training race's dedicated web worker (loaded by `www/trainer.js` when a race
//! starts): see [`edgewise_web::training::worker`].

fn main() {
    if cfg!(target_arch = "wasm32") {
        if let Err(e) = edgewise_web::training::worker::start() {
            gloo::console::error!(e);
        }
    } else {
        eprintln!("edgewise-trainer runs inside a browser (built by `cargo xtask web`).");
    }
}
