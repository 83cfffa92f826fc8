//! The training race's dedicated web worker: owns a [`TrainRace`] (PPO and WM-PPO on the
//! page's scenario, burn's CPU backend) and runs it one learner iteration per task,
//! posting a [`Progress`] after each, so a `Stop` or a new `Start` is handled between
//! iterations and the page's main thread never trains.
//!
//! Started by the `edgewise-trainer` binary, which `www/trainer.js` loads as a module
//! worker only when the visitor starts a race: the page's first load never downloads
//! burn. Talks [`ToTrainer`] / [`FromTrainer`] through [`crate::worker_scope`].

use std::cell::RefCell;
use std::rc::Rc;

use gloo::timers::callback::Timeout;
use wasm_bindgen::prelude::*;
use web_sys::DedicatedWorkerGlobalScope;

use super::protocol::{Algo, FromTrainer, Progress, ToTrainer, TrainRequest};
use super::race::TrainRace;
use crate::worker_scope;

struct Trainer {
    scope: DedicatedWorkerGlobalScope,
    race: Option<TrainRace>,
    generation: u32,
    /// Milliseconds each learner has computed, in [`Algo::ALL`] order.
    busy_ms: [f64; 2],
}

type Shared = Rc<RefCell<Trainer>>;

impl Trainer {
    fn post(&self, msg: &FromTrainer) {
        worker_scope::post(&self.scope, msg);
    }

    fn now_ms(&self) -> f64 {
        worker_scope::now_ms(&self.scope)
    }

    fn start(&mut self, request: &TrainRequest) -> bool {
        self.generation = self.generation.wrapping_add(1);
        self.busy_ms = [0.0; 2];
        match TrainRace::new(request, &edgewise_rl::cpu_device()) {
            Ok(race) => {
                self.post(&FromTrainer::Started {
                    generation: self.generation,
                    budget: race.budget(),
                    scenario: race.scenario(),
                });
                self.race = Some(race);
                true
            }
            Err(e) => {
                self.race = None;
                self.post(&FromTrainer::Error(format!(
                    "The training race could not start: {e}"
                )));
                false
            }
        }
    }

    /// Report the policies and drop the race.
    fn finish(&mut self, stopped: bool) {
        let Some(race) = self.race.take() else { return };
        match race.policies() {
            Ok(policies) => self.post(&FromTrainer::Finished {
                generation: self.generation,
                stopped,
                policies,
            }),
            Err(e) => self.post(&FromTrainer::Error(e)),
        }
    }

    /// One iteration of the learner that is behind; false when there is nothing to do.
    fn step(&mut self) -> bool {
        let Some(algo) = self.race.as_ref().and_then(TrainRace::next) else {
            return false;
        };
        let t0 = self.now_ms();
        let result = self.race.as_mut().map(|r| r.step(algo));
        let index = usize::from(algo == Algo::WmPpo);
        self.busy_ms[index] += self.now_ms() - t0;
        match result {
            Some(Ok(report)) => {
                self.post(&FromTrainer::Progress(Progress {
                    generation: self.generation,
                    report,
                    busy_ms: self.busy_ms[index],
                }));
                if self.race.as_ref().is_some_and(TrainRace::done) {
                    self.finish(false);
                    return false;
                }
                true
            }
            Some(Err(e)) => {
                self.race = None;
                self.post(&FromTrainer::Error(e));
                false
            }
            None => false,
        }
    }
}

/// Run one iteration in a fresh task, then schedule the next: between two iterations the
/// worker's event loop delivers the page's messages. A task of an older race stops.
fn schedule(trainer: &Shared, generation: u32) {
    let trainer = Rc::clone(trainer);
    Timeout::new(0, move || {
        let more = {
            let mut t = trainer.borrow_mut();
            t.generation == generation && t.step()
        };
        if more {
            schedule(&trainer, generation);
        }
    })
    .forget();
}

fn handle(trainer: &Shared, msg: &ToTrainer) {
    match msg {
        ToTrainer::Start(request) => {
            let started = trainer.borrow_mut().start(request);
            if started {
                let generation = trainer.borrow().generation;
                schedule(trainer, generation);
            }
        }
        ToTrainer::Stop => trainer.borrow_mut().finish(true),
    }
}

/// Installs the message handler and tells the page the worker is ready.
///
/// # Errors
/// When this does not run in a dedicated worker.
pub fn start() -> Result<(), JsValue> {
    let scope = worker_scope::scope()?;
    let trainer: Shared = Rc::new(RefCell::new(Trainer {
        scope: scope.clone(),
        race: None,
        generation: 0,
        busy_ms: [0.0; 2],
    }));
    let listener = Rc::clone(&trainer);
    worker_scope::listen(&scope, move |msg: Result<ToTrainer, String>| match msg {
        Ok(msg) => handle(&listener, &msg),
        Err(e) => listener.borrow().post(&FromTrainer::Error(e)),
    });
    trainer.borrow().post(&FromTrainer::Ready);
    Ok(())
}
