//! The dedicated web worker of the edgewise page: owns the [`Race`] (one simulator per
//! policy, all on one seed), steps it on its own clock at the chosen speed and posts a
//! [`Frame`] per tick, so the page's main thread only renders.
//!
//! Loaded by `www/worker.js` as a module worker; talks [`ToWorker`] / [`FromWorker`]
//! through `postMessage`, encoded with `serde-wasm-bindgen`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use edgewise_policy::PolicyFile;
use edgewise_web::policies::PolicyId;
use edgewise_web::protocol::{Frame, FromWorker, LaneRows, LaneStatus, RaceInfo, ToWorker};
use edgewise_web::race::{Race, check_policy};
use edgewise_web::scenario::{DEFAULT_SPEED, Scenario};
use gloo::timers::callback::Interval;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

/// Milliseconds between ticks of the worker's clock (at most this many frames per second:
/// 1000 / 50 = 20).
const TICK_MS: u32 = 50;
/// Most slots simulated in one tick (caps the work per frame at high speed).
const MAX_STEPS_PER_TICK: u32 = 20;
/// Ticks the final state of an episode stays on screen before the next one starts.
const HOLD_TICKS: u32 = 40;

struct Worker {
    scope: DedicatedWorkerGlobalScope,
    trained: Vec<(PolicyId, Arc<PolicyFile>)>,
    statuses: Vec<LaneStatus>,
    race: Option<Race>,
    generation: u32,
    playing: bool,
    speed: u32,
    focus: PolicyId,
    credit: f64,
    hold: u32,
    _timer: Option<Interval>,
}

impl Worker {
    fn post(&self, msg: &FromWorker) {
        edgewise_web::worker_io::post(&self.scope, msg);
    }

    fn now_ms(&self) -> f64 {
        edgewise_web::worker_io::now_ms(&self.scope)
    }

    fn handle(&mut self, msg: ToWorker) {
        match msg {
            ToWorker::Policies(files) => self.load_policies(&files),
            ToWorker::Configure(scenario) => self.configure(scenario),
            ToWorker::Play(on) => {
                self.playing = on;
                self.send_frame(Vec::new(), 0.0);
            }
            ToWorker::Step => {
                self.playing = false;
                if self.race.as_ref().is_some_and(Race::done) {
                    self.next_episode();
                }
                self.advance(1);
            }
            ToWorker::Speed(speed) => self.speed = speed.clamp(1, 1000),
            ToWorker::Focus(focus) => {
                self.focus = focus;
                self.send_frame(Vec::new(), 0.0);
            }
            ToWorker::Restart => {
                if let Some(race) = &mut self.race {
                    race.restart();
                }
                self.started();
            }
        }
    }

    fn load_policies(&mut self, files: &[(PolicyId, String)]) {
        self.trained.clear();
        self.statuses = PolicyId::ALL
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

    fn configure(&mut self, scenario: Scenario) {
        match Race::new(scenario, self.trained.clone()) {
            Ok(race) => {
                self.race = Some(race);
                self.started();
            }
            Err(e) => self.post(&FromWorker::Error(format!(
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
        self.post(&FromWorker::Started(info));
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
        self.post(&FromWorker::Frame(frame));
    }
}

fn start() -> Result<(), JsValue> {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().dyn_into()?;
    let worker = Rc::new(RefCell::new(Worker {
        scope: scope.clone(),
        trained: Vec::new(),
        statuses: Vec::new(),
        race: None,
        generation: 0,
        playing: true,
        speed: DEFAULT_SPEED,
        focus: PolicyId::WmPpo,
        credit: 0.0,
        hold: 0,
        _timer: None,
    }));
    worker.borrow_mut().load_policies(&[]);

    let on_message = {
        let worker = Rc::clone(&worker);
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            match serde_wasm_bindgen::from_value::<ToWorker>(event.data()) {
                Ok(msg) => worker.borrow_mut().handle(msg),
                Err(e) => worker.borrow().post(&FromWorker::Error(format!(
                    "The page sent a bad message: {e}"
                ))),
            }
        })
    };
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as the page: the handler is never dropped.
    on_message.forget();

    let timer = {
        let worker = Rc::clone(&worker);
        Interval::new(TICK_MS, move || worker.borrow_mut().tick())
    };
    worker.borrow_mut()._timer = Some(timer);
    worker.borrow().post(&FromWorker::Ready);
    Ok(())
}

fn main() {
    if cfg!(target_arch = "wasm32") {
        if let Err(e) = start() {
            gloo::console::error!(e);
        }
    } else {
        eprintln!("edgewise-worker runs inside a browser (built by `cargo xtask web`).");
    }
}
