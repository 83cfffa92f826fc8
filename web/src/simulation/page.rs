//! The page's side of the simulation race: the simulation worker's channel, the policy
//! files to race, and what the worker reported (the race's facts, each lane's rows and
//! metrics, the focused network). The root component forwards the worker's messages
//! here; the views read it.

use mec::EpisodeMetrics;

use super::protocol::{Frame, FromSimulation, RaceInfo, ToSimulation};
use super::race::{NetworkSnap, SlotRow};
use super::this_device::ThisDevice;
use crate::channel::{Received, WorkerChannel};
use crate::entrants::Entrant;
use crate::scenario::PageState;

/// The simulation worker (`www/worker.js` loads the `edgewise-worker` wasm module).
pub type SimulationWorker = WorkerChannel<ToSimulation, FromSimulation>;

/// Rendering statistics (read by the browser tests through `data-*` attributes).
#[derive(Debug, Default, Clone, Copy)]
pub struct Perf {
    /// Frames received from the worker.
    pub frames: u32,
    /// Milliseconds the worker spent simulating the last frame.
    pub worker_busy_ms: f64,
}

/// The simulation race as the page sees it.
#[derive(Debug)]
pub struct Simulation {
    worker: Option<SimulationWorker>,
    ready: bool,
    /// The trained entrants' policy files (`None` until the shipped ones are fetched).
    policies: Option<Vec<(Entrant, String)>>,
    /// The visitor's device raced as an extra class (kept for this visit, not in the URL).
    pub this_device: Option<ThisDevice>,
    /// The race's facts (none before the first `Started`).
    pub info: Option<RaceInfo>,
    /// Each running lane's rows of the current episode, in legend order.
    pub history: Vec<(Entrant, Vec<SlotRow>)>,
    /// Each lane's episode metrics so far.
    pub metrics: Vec<(Entrant, EpisodeMetrics)>,
    /// The focused lane's network.
    pub network: Option<NetworkSnap>,
    /// Current slot.
    pub slot: u32,
    /// Whether the worker's clock runs (what the page asked for until it reports).
    pub playing: bool,
    /// Whether the episode is over.
    pub done: bool,
    /// Rendering statistics.
    pub perf: Perf,
}

/// What a worker message changed for the rest of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Nothing to redraw.
    Nothing,
    /// Redraw.
    Redraw,
    /// A race (re)started with `devices` devices: redraw, drop selections beyond them.
    Started {
        /// Devices in the new race.
        devices: usize,
    },
}

impl Simulation {
    /// Starts the simulation worker; `on_message` re-enters the page with what it
    /// reports. On failure the page runs without it and shows the returned sentence.
    pub fn spawn(
        on_message: impl Fn(Received<FromSimulation>) + 'static,
    ) -> (Self, Option<String>) {
        let (worker, error) =
            match SimulationWorker::spawn("worker.js", "the simulation worker", on_message) {
                Ok(w) => (Some(w), None),
                Err(e) => (None, Some(e)),
            };
        let sim = Self {
            worker,
            ready: false,
            policies: None,
            this_device: None,
            info: None,
            history: Vec::new(),
            metrics: Vec::new(),
            network: None,
            slot: 0,
            playing: true,
            done: false,
            perf: Perf::default(),
        };
        (sim, error)
    }

    /// Sends a command to the worker (dropped when there is none).
    pub fn send(&self, msg: &ToSimulation) {
        if let Some(w) = &self.worker {
            w.send(msg);
        }
    }

    /// Runs or pauses the clock.
    pub fn set_playing(&mut self, on: bool) {
        self.playing = on;
        self.send(&ToSimulation::Play(on));
    }

    /// The shipped policy files were fetched: start the race if the worker is ready.
    pub fn policies_fetched(&mut self, found: Vec<(Entrant, String)>, state: &PageState) {
        self.policies = Some(found);
        self.start(state);
    }

    /// Race `trained` (policy files trained in the page) in place of the shipped ones of
    /// the same entrants, restarting the race on `state`'s scenario.
    pub fn use_trained(&mut self, trained: Vec<(Entrant, String)>, state: &PageState) {
        let mut policies = self.policies.take().unwrap_or_default();
        policies.retain(|(id, _)| !trained.iter().any(|(t, _)| t == id));
        policies.extend(trained);
        self.policies = Some(policies);
        self.start(state);
    }

    /// Races with the visitor's device as an extra class (or, `None`, without it).
    pub fn set_this_device(&mut self, device: Option<ThisDevice>) {
        self.send(&ToSimulation::ThisDevice(device.clone().map(Box::new)));
        self.this_device = device;
    }

    /// Sends everything a race needs once both the worker and the policy files are ready
    /// (whichever comes last calls this usefully).
    fn start(&self, state: &PageState) {
        let (true, Some(policies)) = (self.ready, &self.policies) else {
            return;
        };
        self.send(&ToSimulation::PolicyFiles(policies.clone()));
        self.send(&ToSimulation::Speed(state.speed));
        self.send(&ToSimulation::Focus(state.focus));
        self.send(&ToSimulation::ThisDevice(
            self.this_device.clone().map(Box::new),
        ));
        self.send(&ToSimulation::Configure(state.scenario));
        self.send(&ToSimulation::Play(self.playing));
    }

    /// Takes in a message from the worker (errors are the caller's to show).
    pub fn on_message(&mut self, msg: FromSimulation, state: &PageState) -> Result<Update, String> {
        match msg {
            FromSimulation::Ready => {
                self.ready = true;
                self.start(state);
                Ok(Update::Nothing)
            }
            FromSimulation::Started(info) => {
                let devices = info.scenario.devices();
                self.on_started(info);
                Ok(Update::Started { devices })
            }
            FromSimulation::Frame(frame) => {
                self.on_frame(frame);
                Ok(Update::Redraw)
            }
            FromSimulation::Error(e) => Err(e),
        }
    }

    fn on_started(&mut self, info: RaceInfo) {
        self.history = info
            .lanes
            .iter()
            .filter(|l| l.running)
            .map(|l| (l.id, Vec::with_capacity(info.slots as usize)))
            .collect();
        self.metrics.clear();
        self.slot = 0;
        self.done = false;
        self.info = Some(info);
    }

    fn on_frame(&mut self, frame: Frame) {
        if self.info.as_ref().map(|i| i.generation) != Some(frame.generation) {
            return;
        }
        for lane in frame.lanes {
            if let Some((_, rows)) = self.history.iter_mut().find(|(id, _)| *id == lane.lane) {
                rows.extend(lane.rows);
            }
            match self.metrics.iter_mut().find(|(id, _)| *id == lane.lane) {
                Some((_, m)) => *m = lane.metrics,
                None => self.metrics.push((lane.lane, lane.metrics)),
            }
        }
        self.slot = frame.slot;
        self.playing = frame.playing;
        self.done = frame.done;
        self.network = frame.network;
        self.perf.frames = self.perf.frames.wrapping_add(1);
        self.perf.worker_busy_ms = frame.busy_ms;
    }

    /// The lanes not in `hidden`, in legend order, with their rows.
    pub fn visible(&self, hidden: &[Entrant]) -> Vec<(Entrant, &[SlotRow])> {
        self.history
            .iter()
            .filter(|(id, _)| !hidden.contains(id))
            .map(|(id, rows)| (*id, rows.as_slice()))
            .collect()
    }
}
