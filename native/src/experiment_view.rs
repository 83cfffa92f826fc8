//! What the `edgewise experiment` plots show, computed from the results by
//! `experiment.rs` and drawn by `plots.rs` (which therefore never imports the experiment).

use edgewise_rl::experiment::Interval;

/// A learning curve: `(env_steps, value)` points.
pub type Curve = Vec<(u64, f64)>;
/// One arm's curves over seeds.
pub type AlgoCurves = (String, Vec<Curve>);
/// Per policy, per evaluation population, the mean latency interval.
pub type LatencySeries = Vec<(String, Vec<(usize, Interval)>)>;

/// What the plots need.
pub struct View {
    /// What the runs trained on, for the learning-curve title (e.g. "10/20/50/100 devices").
    pub trained_on: String,
    /// Learning curves per arm (one curve per seed).
    pub curves: Vec<AlgoCurves>,
    /// Reference lines on the learning-curve plot: name and episode return.
    pub refs: Vec<(String, f64)>,
    /// WM-PPO validation-error curves, one per seed.
    pub wm_error: Vec<Curve>,
    /// Per evaluation scenario: policy → per evaluation population, mean latency.
    pub latency: Vec<(String, LatencySeries)>,
    /// Real environment steps per run.
    pub env_steps: u64,
}
