//! The browser's training race, natively: the same [`TrainRace`] (same scenario, seed,
//! budget and alternation as the trainer worker), timed per learner, to compare with the
//! steps per second the page shows.
//!
//! ```sh
//! cargo run --release -p edgewise-web --example train_race -- [DEVICES] [BUDGET] [SEED]
//! ```
//! (defaults: 10 devices, 5120 real env steps per learner, seed 7: the browser test's race).

use std::time::Instant;

use edgewise_web::scenario::Scenario;
use edgewise_web::training::curve::{CurvePoint, IMPROVEMENT_WINDOW, window_means};
use edgewise_web::training::protocol::{Algo, TrainRequest};
use edgewise_web::training::race::TrainRace;

fn arg<T: std::str::FromStr>(i: usize, default: T) -> Result<T, String> {
    std::env::args().nth(i).map_or(Ok(default), |s| {
        s.parse()
            .map_err(|_| format!("argument {i} ({s:?}) is not a valid number"))
    })
}

fn main() -> Result<(), String> {
    let devices: u32 = arg(1, 10)?;
    let budget: u64 = arg(2, 5_120)?;
    let seed: u64 = arg(3, 7)?;
    let request = TrainRequest {
        scenario: Scenario::default()
            .with_seed(seed)
            .with("devices", f64::from(devices)),
        this_device: None,
        env_steps: budget,
    };
    let device = edgewise_rl::cpu_device();
    let mut race = TrainRace::new(&request, &device)?;
    let mut busy = [0.0f64; 2];
    let mut curves: [Vec<CurvePoint>; 2] = [Vec::new(), Vec::new()];
    let wall = Instant::now();
    while let Some(algo) = race.next() {
        let i = usize::from(algo == Algo::WmPpo);
        let t0 = Instant::now();
        let report = race.step(algo)?;
        busy[i] += t0.elapsed().as_secs_f64();
        curves[i].extend(report.points);
    }
    println!(
        "training race natively: {} devices, seed {seed}, {} real env steps each, {:.1} s wall",
        race.scenario().devices(),
        race.budget(),
        wall.elapsed().as_secs_f64()
    );
    for algo in Algo::ALL {
        let i = usize::from(algo == Algo::WmPpo);
        #[allow(clippy::cast_precision_loss)]
        let sps = race.budget() as f64 / busy[i];
        let (first, last) =
            window_means(&curves[i], IMPROVEMENT_WINDOW).unwrap_or((f64::NAN, f64::NAN));
        println!(
            "  {:<7} {:>6.0} env steps/s  {} episodes  reward/slot first {first:.4} -> last {last:.4}",
            algo.label(),
            sps,
            curves[i].len()
        );
    }
    Ok(())
}
