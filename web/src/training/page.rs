//! The page's side of the training race: the trainer worker (started on the first
//! "Start training", so the page's first load never downloads burn) and what it reported
//! (learning curves, steps per second, the finished policies). Rendered by
//! [`super::view`]; the root component forwards [`TrainMsg`]s here.

use super::curve::{CurvePoint, IMPROVEMENT_WINDOW, window_means};
use super::protocol::{Algo, FromTrainer, Progress, ToTrainer, TrainRequest};
use super::race::DEFAULT_BUDGET;
use crate::channel::{Received, WorkerChannel};
use crate::entrants::Entrant;
use crate::scenario::Scenario;
use crate::simulation::this_device::ThisDevice;

/// The trainer worker (`www/trainer.js` loads the `edgewise-trainer` wasm module).
type TrainerWorker = WorkerChannel<ToTrainer, FromTrainer>;

/// What the training panel can ask for.
#[derive(Debug)]
pub enum TrainMsg {
    /// A budget was picked (real env steps per algorithm).
    Budget(u64),
    /// Start a race on the page's current scenario.
    Start,
    /// Stop the race; keep the policies as they are.
    Stop,
    /// A message (or a decoding error) from the trainer worker.
    Worker(Received<FromTrainer>),
    /// Install the trained policies in the simulation race.
    Use,
}

/// Where the training race is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing started yet.
    Idle,
    /// The trainer worker is downloading / compiling its wasm.
    Loading,
    /// Training.
    Running,
    /// Ended (budget reached or stopped); policies available.
    Finished,
}

impl Phase {
    /// Stable name (the panel's `data-phase`, read by the browser test).
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Loading => "loading",
            Self::Running => "running",
            Self::Finished => "finished",
        }
    }
}

/// One learner as the page sees it.
#[derive(Debug, Clone, Default)]
pub struct LaneView {
    /// Finished episodes, oldest first.
    pub curve: Vec<CurvePoint>,
    /// Real environment steps taken.
    pub env_steps: u64,
    /// Iterations completed.
    pub iterations: u64,
    /// Milliseconds of computation so far.
    pub busy_ms: f64,
    /// World-model validation error of the last iteration (WM-PPO).
    pub wm_error: Option<f64>,
    /// World-model trust of the last iteration (WM-PPO).
    pub wm_trust: f64,
}

impl LaneView {
    /// Real environment steps per second of the learner's own computation.
    #[must_use]
    pub fn steps_per_s(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        (self.busy_ms > 0.0).then(|| self.env_steps as f64 / (self.busy_ms / 1000.0))
    }

    /// Mean reward per slot of the first and last episodes (see [`window_means`]).
    #[must_use]
    pub fn improvement(&self) -> Option<(f64, f64)> {
        window_means(&self.curve, IMPROVEMENT_WINDOW)
    }
}

/// The training race's state in the page.
#[derive(Debug)]
pub struct TrainState {
    worker: Option<TrainerWorker>,
    ready: bool,
    pending: Option<TrainRequest>,
    /// Selected budget.
    pub budget: u64,
    /// The race being shown.
    pub generation: Option<u32>,
    /// Budget of the race being shown (per algorithm).
    pub total: u64,
    /// The scenario it trains on.
    pub scenario: Option<Scenario>,
    /// Where it is.
    pub phase: Phase,
    /// Whether it was stopped before the budget.
    pub stopped: bool,
    /// PPO, then WM-PPO.
    pub lanes: [LaneView; 2],
    /// The finished policies (`edgewise-policy` text).
    pub policies: Option<Vec<(Algo, String)>>,
    /// Whether they were installed in the simulation.
    pub used: bool,
    /// Milliseconds from "Start" to the worker's first progress (wasm download + compile).
    pub load_ms: Option<f64>,
    started_at: f64,
    /// The last problem (shown in the panel).
    pub error: Option<String>,
}

impl Default for TrainState {
    fn default() -> Self {
        Self {
            worker: None,
            ready: false,
            pending: None,
            budget: DEFAULT_BUDGET,
            generation: None,
            total: 0,
            scenario: None,
            phase: Phase::Idle,
            stopped: false,
            lanes: [LaneView::default(), LaneView::default()],
            policies: None,
            used: false,
            load_ms: None,
            started_at: 0.0,
            error: None,
        }
    }
}

fn index(algo: Algo) -> usize {
    usize::from(algo == Algo::WmPpo)
}

fn now_ms() -> f64 {
    gloo::utils::window()
        .performance()
        .map_or_else(js_sys::Date::now, |p| p.now())
}

impl TrainState {
    /// The lane of `algo`.
    #[must_use]
    pub fn lane(&self, algo: Algo) -> &LaneView {
        &self.lanes[index(algo)]
    }

    /// Real environment steps both learners took together, and the race's total.
    #[must_use]
    pub fn progress(&self) -> (u64, u64) {
        (self.lanes.iter().map(|l| l.env_steps).sum(), self.total * 2)
    }

    /// Handle a message. `on_message` re-enters the component with worker messages.
    /// Returns policies to install in the simulation race (on [`TrainMsg::Use`]).
    pub fn update(
        &mut self,
        msg: TrainMsg,
        scenario: Scenario,
        this_device: Option<&ThisDevice>,
        on_message: impl Fn(Received<FromTrainer>) + 'static,
    ) -> Option<Vec<(Entrant, String)>> {
        match msg {
            TrainMsg::Budget(b) => self.budget = b,
            TrainMsg::Start => self.start(scenario, this_device, on_message),
            TrainMsg::Stop => {
                if let Some(w) = &self.worker {
                    w.send(&ToTrainer::Stop);
                }
            }
            TrainMsg::Worker(Ok(msg)) => self.on_worker(msg),
            TrainMsg::Worker(Err(e)) => {
                // The worker failed (or spoke gibberish): drop it; the next start spawns
                // a fresh one.
                self.error = Some(e);
                self.worker = None;
                self.ready = false;
                self.pending = None;
                if self.phase != Phase::Finished {
                    self.phase = Phase::Idle;
                }
            }
            TrainMsg::Use => {
                let policies = self.policies.as_ref()?;
                self.used = true;
                return Some(
                    policies
                        .iter()
                        .map(|(a, text)| (a.entrant(), text.clone()))
                        .collect(),
                );
            }
        }
        None
    }

    fn start(
        &mut self,
        scenario: Scenario,
        this_device: Option<&ThisDevice>,
        on_message: impl Fn(Received<FromTrainer>) + 'static,
    ) {
        let request = TrainRequest {
            scenario,
            this_device: this_device.cloned(),
            env_steps: self.budget,
        };
        self.error = None;
        self.generation = None;
        self.lanes = [LaneView::default(), LaneView::default()];
        self.policies = None;
        self.used = false;
        self.stopped = false;
        self.scenario = Some(scenario.clamped());
        self.total = self.budget;
        self.load_ms = None;
        self.started_at = now_ms();
        if self.worker.is_none() {
            match TrainerWorker::spawn("trainer.js", "the training worker", on_message) {
                Ok(w) => self.worker = Some(w),
                Err(e) => {
                    self.error = Some(e);
                    self.phase = Phase::Idle;
                    return;
                }
            }
        }
        if self.ready {
            self.phase = Phase::Running;
            if let Some(w) = &self.worker {
                w.send(&ToTrainer::Start(Box::new(request)));
            }
        } else {
            self.phase = Phase::Loading;
            self.pending = Some(request);
        }
    }

    fn on_worker(&mut self, msg: FromTrainer) {
        match msg {
            FromTrainer::Ready => {
                self.ready = true;
                if let (Some(request), Some(w)) = (self.pending.take(), &self.worker) {
                    self.phase = Phase::Running;
                    w.send(&ToTrainer::Start(Box::new(request)));
                }
            }
            FromTrainer::Started {
                generation,
                budget,
                scenario,
            } => {
                self.generation = Some(generation);
                self.total = budget;
                self.scenario = Some(scenario);
                self.phase = Phase::Running;
            }
            FromTrainer::Progress(Progress {
                generation,
                report,
                busy_ms,
            }) => {
                if self.generation != Some(generation) {
                    return;
                }
                if self.load_ms.is_none() {
                    self.load_ms = Some(now_ms() - self.started_at);
                }
                let lane = &mut self.lanes[index(report.algo)];
                lane.curve.extend(report.points);
                lane.env_steps = report.env_steps;
                lane.iterations = report.iteration;
                lane.busy_ms = busy_ms;
                lane.wm_error = report.wm_error;
                lane.wm_trust = report.wm_trust;
            }
            FromTrainer::Finished {
                generation,
                stopped,
                policies,
            } => {
                if self.generation != Some(generation) {
                    return;
                }
                self.phase = Phase::Finished;
                self.stopped = stopped;
                self.policies = Some(policies);
            }
            FromTrainer::Error(e) => {
                self.error = Some(e);
                if self.phase != Phase::Finished {
                    self.phase = Phase::Idle;
                }
            }
        }
    }
}
