//! What the `edgewise experiment` plots show, computed from the results by
//! `experiment.rs` and drawn by `plots.rs` (which therefore never imports the experiment).

use edgewise_rl::experiment::Interval;

/// A learning curve: `(env_steps, value)` points.
pub type Curve = Vec<(u64, f64)>;
/// One algorithm's curves over seeds.
pub type AlgoCurves = (String, Vec<Curve>);
/// Per training population: per-algorithm curves and reference lines (name, value).
pub type PopCurves = (usize, Vec<AlgoCurves>, Vec<(String, f64)>);

/// What the plots need.
pub struct View {
    /// Learning curves per training population.
    pub curves: Vec<PopCurves>,
    /// WM-PPO validation-error curves per training population.
    pub wm_error: Vec<(usize, Vec<Curve>)>,
    /// Policy → per evaluation population, mean latency interval.
    pub latency: Vec<(String, Vec<(usize, Interval)>)>,
    /// Real environment steps per run.
    pub env_steps: u64,
}
