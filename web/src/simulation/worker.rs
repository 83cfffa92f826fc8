//! The simulation worker: owns the [`Race`] (one simulator per entrant, all on one seed),
//! steps it on its own clock at the chosen speed and posts a [`Frame`] per tick, so the
//! page's main thread only renders.
//!
//! Started by the `edgewise-worker` binary, which `www/worker.js` loads as a module
//! worker; talks [`ToSimulation`] / [`FromSimulation`] through [`crate::worker_scope`].

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use edgewise_policy::PolicyFile;
use gloo::timers::callback::Interval;
use wasm_bindgen::prelude::*;
use web_sys::DedicatedWorkerGlobalScope;

use super::protocol::{Frame, FromSimulation, LaneRows, LaneStatus, RaceInfo, ToSimulation};
use super::race::{Race, check_policy};
use super::this_device::ThisDevice;
use crate::entrants::Entrant;
use crate::scenario::{DEFAULT_SPEED, Scenario};
use crate::worker_scope;

/// Milliseconds between ticks of the worker's clock (at most this many frames per second:
/// 1000 / 50 = 20).
const TICK_MS: u32 = 50;
/// Most slots simulated in one tick (caps the work per frame at high speed).
const MAX_STEPS_PER_TICK: u32 = 20;
/// Ticks the final state of an episode stays on screen before the next one starts.
const HOLD_TICKS: u32 = 40;

struct SimulationWorker {
    scope: DedicatedWorkerGlobalScope,
    trained: Vec<(Entrant, Arc<PolicyFile>)>,
    statuses: Vec<LaneStatus>,
    /// The visitor's device, raced as an extra class.
    this_device: Option<ThisDevice>,
    race: Option<Race>,
    generation: u32,
    playing: bool,
    speed: u32,
    focus: Entrant,
    credit: f64,
    hold: u32,
    _timer: Option<Interval>,
}

impl SimulationWorker {
    fn post(&self, msg: &FromSimulation) {
        worker_scope::post(&self.scope, msg);
    }

    fn now_ms(&self) -> f64 {
        worker_scope::now_ms(&self.scope)
    }

    fn handle(&mut self, msg: ToSimulation) {
        match msg {
            ToSimulation::PolicyFiles(files) => self.load_policies(&files),
            ToSimulation::Configure(scenario) => self.configure(scenario),
            ToSimulation::Play(on) => {
                self.playing = on;
                self.send_frame(Vec::new(), 0.0);
            }
            ToSimulation::Step => {
                self.playing = false;
                if self.race.as_ref().is_some_and(Race::done) {
                    self.next_episode();
                }
                self.advance(1);
            }
            ToSimulation::Speed(speed) => self.speed = speed.clamp(1, 1000),
            ToSimulation::Focus(focus) => {
                self.focus = focus;
                self.send_frame(Vec::new(), 0.0);
            }
            ToSimulation::ThisDevice(device) => self.set_this_device(device.map(|d| *d)),
            ToSimulation::Restart => {
                if let Some(race) = &mut self.race {
                    race.restart();
                }
                self.started();
            }
        }
    }

    fn load_policies(&mut self, files: &[(Entrant, String)]) {
        self.trained.clear();
        self.statuses = Entrant::ALL
            .into_iter()
            .map(|id| {
                if id.file().is_none() {
                    return LaneStatus {
                        id,
                        running: true,
                        note: None,
                    };
                }
                let Some((_, text)) = files.iter().find(|(f, _)| *f == id) else {
                    return LaneStatus {
                        id,
                        running: false,
                        note: Some(format!(
                            "{} is not shipped with this build yet (no {}).",
                            id.label(),
                            id.file().unwrap_or("file")
                        )),
                    };
                };
                let problem = match PolicyFile::load(text.as_bytes()) {
                    Ok(policy) => match check_policy(&policy) {
                        None => {
                            let steps = policy
                                .meta
                                .get("env_steps")
                                .and_then(serde_json::Value::as_u64);
                            let place = if policy.meta_str("trained_in") == Some("browser") {
                                " in this browser"
                            } else {
                                ""
                            };
                            self.trained.push((id, Arc::new(policy)));
                            return LaneStatus {
                                id,
                                running: true,
                                note: steps
                                    .map(|s| format!("trained{place} for {s} simulator steps")),
                            };
                        }
                        Some(why) => why,
                    },
                    Err(e) => e.to_string(),
                };
                LaneStatus {
                    id,
                    running: false,
                    note: Some(format!(
                        "The shipped {} policy could not be used: {problem}.",
                        id.label()
                    )),
                }
            })
            .collect();
    }

    /// Races with `device` from now on; until a scenario is configured it only waits.
    /// A device the simulator rejects is reported and the race goes on without it.
    fn set_this_device(&mut self, device: Option<ThisDevice>) {
        let Some(scenario) = self.race.as_ref().map(Race::scenario) else {
            self.this_device = device;
            return;
        };
        match Race::new(scenario, self.trained.clone(), device.as_ref()) {
            Ok(race) => {
                self.this_device = device;
                self.race = Some(race);
                self.started();
            }
            Err(e) => self.post(&FromSimulation::Error(format!(
                "The simulator rejected your device: {e}"
            ))),
        }
    }

    fn configure(&mut self, scenario: Scenario) {
        match Race::new(scenario, self.trained.clone(), self.this_device.as_ref()) {
            Ok(race) => {
                self.race = Some(race);
                self.started();
            }
            Err(e) => self.post(&FromSimulation::Error(format!(
                "The simulator rejected this scenario: {e}"
            ))),
        }
    }

    fn started(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.credit = 0.0;
        self.hold = 0;
        let Some(race) = &self.race else { return };
        let config = race.config();
        let radio = &config.radio;
        let path_gain_db = |d_m: f64| {
            radio.reference_gain_db - 10.0 * radio.path_loss_exponent * d_m.max(1.0).log10()
        };
        let info = RaceInfo {
            generation: self.generation,
            scenario: race.scenario(),
            episode: race.episode(),
            slots: u32::try_from(config.slots).unwrap_or(u32::MAX),
            lanes: self.statuses.clone(),
            classes: config.classes.iter().map(|c| c.name.clone()).collect(),
            cell_radius_m: config.cell_radius_m,
            gain_range_db: (
                path_gain_db(config.cell_radius_m) - 10.0,
                path_gain_db(config.cell_radius_m / 5.0),
            ),
            slot_s: config.slot_s,
        };
        self.post(&FromSimulation::Started(info));
        self.send_frame(Vec::new(), 0.0);
    }

    fn next_episode(&mut self) {
        if let Some(race) = &mut self.race {
            race.next_episode();
        }
        self.started();
    }

    fn tick(&mut self) {
        if !self.playing || self.race.is_none() {
            return;
        }
        if self.race.as_ref().is_some_and(Race::done) {
            self.hold += 1;
            if self.hold >= HOLD_TICKS {
                self.next_episode();
            }
            return;
        }
        self.credit += f64::from(self.speed) * f64::from(TICK_MS) / 1000.0;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let steps = (self.credit.floor() as u32).min(MAX_STEPS_PER_TICK);
        if steps == 0 {
            return;
        }
        self.credit = (self.credit - f64::from(steps)).min(1.0);
        self.advance(steps);
    }

    fn advance(&mut self, steps: u32) {
        let t0 = self.now_ms();
        let mut lanes: Vec<LaneRows> = Vec::new();
        if let Some(race) = &mut self.race {
            for _ in 0..steps {
                let rows = race.step();
                if rows.is_empty() {
                    break;
                }
                for (id, row) in rows {
                    match lanes.iter_mut().find(|l| l.lane == id) {
                        Some(l) => l.rows.push(row),
                        None => lanes.push(LaneRows {
                            lane: id,
                            rows: vec![row],
                            metrics: mec::EpisodeMetrics::default(),
                        }),
                    }
                }
            }
        }
        let busy = self.now_ms() - t0;
        self.send_frame(lanes, busy);
    }

    fn send_frame(&self, mut lanes: Vec<LaneRows>, busy_ms: f64) {
        let Some(race) = &self.race else { return };
        for lane in race.lanes() {
            match lanes.iter_mut().find(|l| l.lane == lane.id()) {
                Some(l) => l.metrics = lane.metrics().clone(),
                None => lanes.push(LaneRows {
                    lane: lane.id(),
                    rows: Vec::new(),
                    metrics: lane.metrics().clone(),
                }),
            }
        }
        let frame = Frame {
            generation: self.generation,
            slot: u32::try_from(race.slot()).unwrap_or(u32::MAX),
            playing: self.playing,
            done: race.done(),
            lanes,
            network: race.network(self.focus),
            busy_ms,
        };
        self.post(&FromSimulation::Frame(frame));
    }
}

/// Installs the message handler and the clock, and tells the page the worker is ready.
///
/// # Errors
/// When this does not run in a dedicated worker.
pub fn start() -> Result<(), JsValue> {
    let scope = worker_scope::scope()?;
    let worker = Rc::new(RefCell::new(SimulationWorker {
        scope: scope.clone(),
        trained: Vec::new(),
        statuses: Vec::new(),
        this_device: None,
        race: None,
        generation: 0,
        playing: true,
        speed: DEFAULT_SPEED,
        focus: Entrant::WmPpo,
        credit: 0.0,
        hold: 0,
        _timer: None,
    }));
    worker.borrow_mut().load_policies(&[]);

    let listener = Rc::clone(&worker);
    worker_scope::listen(&scope, move |msg: Result<ToSimulation, String>| match msg {
        Ok(msg) => listener.borrow_mut().handle(msg),
        Err(e) => listener.borrow().post(&FromSimulation::Error(e)),
    });

    let timer = {
        let worker = Rc::clone(&worker);
        Interval::new(TICK_MS, move || worker.borrow_mut().tick())
    };
    worker.borrow_mut()._timer = Some(timer);
    worker.borrow().post(&FromSimulation::Ready);
    Ok(())
}
