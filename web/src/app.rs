//! The root component: page state (mirrored in the URL), the worker connection, and
//! what the worker reported (rows for the charts, metrics, the focused network).

use edgewise_web::csv;
use edgewise_web::policies::PolicyId;
use edgewise_web::protocol::{Frame, FromWorker, RaceInfo, ToWorker};
use edgewise_web::race::{NetworkSnap, SlotRow};
use edgewise_web::scenario::{PageState, Preset, Scenario};
use mec::EpisodeMetrics;
use yew::prelude::*;

use crate::browser::{self, SimWorker};
use crate::tour;
use crate::trainer::{TrainMsg, TrainState};
use crate::view;

/// A scenario field a slider edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Population,
    Bandwidth,
    Budget,
    Load,
    MinAccuracy,
    MaxHallucination,
}

/// Everything the page can ask the root component to do.
#[derive(Debug)]
pub enum Msg {
    /// A message (or a decoding error) from the worker.
    Worker(Result<FromWorker, String>),
    /// The shipped policies were fetched.
    PoliciesFetched(Vec<(PolicyId, String)>, Vec<String>),
    /// A slider moved (not applied until released).
    Draft(Field, f64),
    /// A slider was released: apply the draft scenario.
    Commit,
    /// A preset was picked.
    Preset(String),
    /// The seed field changed.
    SeedText(String),
    /// Slots per second.
    Speed(u32),
    TogglePlay,
    Step,
    Restart,
    /// Show or hide a policy in the charts.
    ToggleLane(PolicyId),
    /// Draw this policy's network.
    Focus(PolicyId),
    /// Hovered device (or none).
    Hover(Option<usize>),
    /// Tapped/clicked device: keep it inspected.
    Pin(usize),
    /// Tour step (none = closed).
    Tour(Option<usize>),
    ExportCsv,
    CopyLink,
    DismissNotes,
    /// The training race panel.
    Train(TrainMsg),
}

/// Rendering statistics (read by the browser tests through `data-*` attributes).
#[derive(Debug, Default, Clone, Copy)]
pub struct Perf {
    pub frames: u32,
    pub worker_busy_ms: f64,
}

/// Root component of the page.
pub struct App {
    pub state: PageState,
    pub draft: Scenario,
    pub seed_text: String,
    pub notes: Vec<String>,
    pub worker: Option<SimWorker>,
    pub worker_ready: bool,
    pub policies: Option<Vec<(PolicyId, String)>>,
    pub info: Option<RaceInfo>,
    pub history: Vec<(PolicyId, Vec<SlotRow>)>,
    pub metrics: Vec<(PolicyId, EpisodeMetrics)>,
    pub network: Option<NetworkSnap>,
    pub slot: u32,
    pub playing: bool,
    pub done: bool,
    pub hidden: Vec<PolicyId>,
    pub hover: Option<usize>,
    pub pinned: Option<usize>,
    pub tour: Option<usize>,
    pub error: Option<String>,
    pub perf: Perf,
    pub copied: bool,
    pub training: TrainState,
}

impl App {
    fn send(&self, msg: &ToWorker) {
        if let Some(w) = &self.worker {
            w.send(msg);
        }
    }

    fn sync_url(&self) {
        browser::set_location_query(&self.state.to_query());
    }

    /// Start the race once both the worker and the policy files are ready.
    fn maybe_start(&self) {
        if !self.worker_ready {
            return;
        }
        let Some(policies) = &self.policies else {
            return;
        };
        self.send(&ToWorker::Policies(policies.clone()));
        self.send(&ToWorker::Speed(self.state.speed));
        self.send(&ToWorker::Focus(self.state.focus));
        self.send(&ToWorker::Configure(self.state.scenario));
        self.send(&ToWorker::Play(self.playing));
    }

    fn apply(&mut self, scenario: Scenario) {
        let scenario = scenario.clamped();
        self.draft = scenario;
        self.seed_text = scenario.seed.to_string();
        if scenario != self.state.scenario {
            self.state.scenario = scenario;
            self.sync_url();
            self.send(&ToWorker::Configure(scenario));
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
        if self.pinned.is_some_and(|d| d >= info.scenario.population) {
            self.pinned = None;
        }
        self.hover = None;
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

    /// Run policies trained in the page in place of the shipped ones of the same lanes,
    /// and restart the simulation race with them.
    fn use_trained(&mut self, trained: Vec<(PolicyId, String)>) {
        let mut policies = self.policies.clone().unwrap_or_default();
        policies.retain(|(id, _)| !trained.iter().any(|(t, _)| t == id));
        policies.extend(trained);
        if self.worker_ready {
            self.send(&ToWorker::Policies(policies.clone()));
            self.send(&ToWorker::Configure(self.state.scenario));
            self.send(&ToWorker::Play(self.playing));
        }
        // Otherwise `maybe_start` sends them once the worker is ready.
        self.policies = Some(policies);
    }

    /// Lanes drawn in the charts, in legend order.
    pub fn visible(&self) -> Vec<(PolicyId, &[SlotRow])> {
        self.history
            .iter()
            .filter(|(id, _)| !self.hidden.contains(id))
            .map(|(id, rows)| (*id, rows.as_slice()))
            .collect()
    }

    /// The device shown in the inspector.
    pub fn inspected(&self) -> Option<usize> {
        self.hover.or(self.pinned)
    }
}

impl Component for App {
    type Message = Msg;
    type Properties = ();

    fn create(ctx: &Context<Self>) -> Self {
        let (state, notes) = PageState::from_query(&browser::location_query());
        let link = ctx.link().clone();
        let (worker, error) = match SimWorker::spawn(move |m| link.send_message(Msg::Worker(m))) {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e)),
        };
        let link = ctx.link().clone();
        yew::platform::spawn_local(async move {
            let (found, notes) = browser::fetch_policies().await;
            link.send_message(Msg::PoliciesFetched(found, notes));
        });
        let app = Self {
            state,
            draft: state.scenario,
            seed_text: state.scenario.seed.to_string(),
            notes,
            worker,
            worker_ready: false,
            policies: None,
            info: None,
            history: Vec::new(),
            metrics: Vec::new(),
            network: None,
            slot: 0,
            playing: true,
            done: false,
            hidden: PolicyId::ALL
                .into_iter()
                .filter(|p| !p.shown_by_default())
                .collect(),
            hover: None,
            pinned: None,
            tour: None,
            error,
            perf: Perf::default(),
            copied: false,
            training: TrainState::default(),
        };
        app.sync_url();
        app
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Self::Message) -> bool {
        match msg {
            Msg::Train(msg) => {
                let link = ctx.link().clone();
                let on_message = move |m| link.send_message(Msg::Train(TrainMsg::Worker(m)));
                if let Some(trained) = self.training.update(msg, self.state.scenario, on_message) {
                    self.use_trained(trained);
                }
                true
            }
            Msg::Worker(Ok(FromWorker::Ready)) => {
                self.worker_ready = true;
                self.maybe_start();
                false
            }
            Msg::Worker(Ok(FromWorker::Started(info))) => {
                self.on_started(info);
                true
            }
            Msg::Worker(Ok(FromWorker::Frame(frame))) => {
                self.on_frame(frame);
                true
            }
            Msg::Worker(Ok(FromWorker::Error(e)) | Err(e)) => {
                self.error = Some(e);
                true
            }
            Msg::PoliciesFetched(found, notes) => {
                self.policies = Some(found);
                self.notes.extend(notes);
                self.maybe_start();
                true
            }
            Msg::Draft(field, v) => {
                let d = &mut self.draft;
                match field {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    Field::Population => d.population = v.round().max(0.0) as usize,
                    Field::Bandwidth => d.bandwidth_mhz = v,
                    Field::Budget => d.budget_scale = v,
                    Field::Load => d.load = v,
                    Field::MinAccuracy => d.min_accuracy = v,
                    Field::MaxHallucination => d.max_hallucination = v,
                }
                true
            }
            Msg::Commit => {
                self.apply(self.draft);
                true
            }
            Msg::Preset(key) => {
                if let Some(p) = Preset::from_key(&key) {
                    self.apply(p.scenario(self.state.scenario.seed));
                }
                true
            }
            Msg::SeedText(text) => {
                if let Ok(seed) = text.trim().parse::<u64>() {
                    self.seed_text = text;
                    self.apply(Scenario {
                        seed,
                        ..self.state.scenario
                    });
                } else {
                    self.seed_text = text;
                }
                true
            }
            Msg::Speed(speed) => {
                self.state.speed = speed;
                self.sync_url();
                self.send(&ToWorker::Speed(speed));
                true
            }
            Msg::TogglePlay => {
                self.playing = !self.playing;
                self.send(&ToWorker::Play(self.playing));
                true
            }
            Msg::Step => {
                self.playing = false;
                self.send(&ToWorker::Step);
                true
            }
            Msg::Restart => {
                self.send(&ToWorker::Restart);
                false
            }
            Msg::ToggleLane(id) => {
                if let Some(i) = self.hidden.iter().position(|h| *h == id) {
                    self.hidden.remove(i);
                } else {
                    self.hidden.push(id);
                }
                true
            }
            Msg::Focus(id) => {
                self.state.focus = id;
                self.sync_url();
                self.send(&ToWorker::Focus(id));
                true
            }
            Msg::Hover(d) => {
                let changed = self.hover != d;
                self.hover = d;
                changed
            }
            Msg::Pin(d) => {
                self.pinned = if self.pinned == Some(d) {
                    None
                } else {
                    Some(d)
                };
                true
            }
            Msg::Tour(step) => {
                self.tour = step.filter(|s| *s < tour::STEPS.len());
                if let Some(s) = self.tour {
                    browser::scroll_to(tour::STEPS[s].target);
                }
                true
            }
            Msg::ExportCsv => {
                let episode = self.info.as_ref().map_or(0, |i| i.episode);
                let lanes: Vec<(PolicyId, &[SlotRow])> = self
                    .history
                    .iter()
                    .map(|(id, rows)| (*id, rows.as_slice()))
                    .collect();
                let text = csv::export(self.state.scenario, episode, &lanes);
                let name = format!(
                    "edgewise-race-seed{}-episode{}.csv",
                    self.state.scenario.seed,
                    episode + 1
                );
                browser::download(&name, "text/csv", &text);
                false
            }
            Msg::CopyLink => {
                browser::copy_to_clipboard(&browser::location_href());
                self.copied = true;
                true
            }
            Msg::DismissNotes => {
                self.notes.clear();
                true
            }
        }
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        view::page(self, ctx.link())
    }
}
