//! The root component's behaviour: how [`App`] starts, reacts to each [`Msg`] and what it
//! draws ([`crate::layout::page`]).

use yew::prelude::*;

use crate::app::{App, Msg};
use crate::browser;
use crate::entrants::Entrant;
use crate::layout;
use crate::scenario::{PageState, Preset, Scenario};
use crate::simulation::csv;
use crate::simulation::page::Update;
use crate::simulation::protocol::ToSimulation;
use crate::simulation::race::SlotRow;
use crate::tour;
use crate::training::page::TrainMsg;

impl App {
    fn sync_url(&self) {
        browser::set_location_query(&self.state.to_query());
    }

    /// Apply `scenario` (clamped): the URL, the sliders and the race follow.
    fn apply(&mut self, scenario: Scenario) {
        let scenario = scenario.clamped();
        self.draft = scenario;
        self.seed_text = scenario.seed.to_string();
        if scenario != self.state.scenario {
            self.state.scenario = scenario;
            self.sync_url();
            self.sim.send(&ToSimulation::Configure(scenario));
        }
    }
}

impl Component for App {
    type Message = Msg;
    type Properties = ();

    fn create(ctx: &Context<Self>) -> Self {
        let (state, notes) = PageState::from_query(&browser::location_query());
        let link = ctx.link().clone();
        yew::platform::spawn_local(async move {
            let (found, notes) = browser::fetch_policies().await;
            link.send_message(Msg::PoliciesFetched(found, notes));
        });
        let app = Self::new(state, notes, ctx.link());
        app.sync_url();
        app
    }

    fn update(&mut self, ctx: &Context<Self>, msg: Self::Message) -> bool {
        match msg {
            Msg::Train(msg) => {
                let link = ctx.link().clone();
                let on_message = move |m| link.send_message(Msg::Train(TrainMsg::Worker(m)));
                let this_device = self.sim.this_device.as_ref();
                if let Some(trained) =
                    self.training
                        .update(msg, self.state.scenario, this_device, on_message)
                {
                    self.sim.use_trained(trained, &self.state);
                }
                true
            }
            Msg::Simulation(received) => {
                match received.and_then(|m| self.sim.on_message(m, &self.state)) {
                    Ok(Update::Nothing) => false,
                    Ok(Update::Redraw) => true,
                    Ok(Update::Started { devices }) => {
                        if self.pinned.is_some_and(|d| d >= devices) {
                            self.pinned = None;
                        }
                        self.hover = None;
                        true
                    }
                    Err(e) => {
                        self.error = Some(e);
                        true
                    }
                }
            }
            Msg::PoliciesFetched(found, notes) => {
                self.sim.policies_fetched(found, &self.state);
                self.notes.extend(notes);
                true
            }
            Msg::Draft(key, v) => {
                self.draft = self.draft.with(key, v);
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
                    self.apply(self.state.scenario.with_seed(seed));
                } else {
                    self.seed_text = text;
                }
                true
            }
            Msg::Speed(speed) => {
                self.state.speed = speed;
                self.sync_url();
                self.sim.send(&ToSimulation::Speed(speed));
                true
            }
            Msg::TogglePlay => {
                self.sim.set_playing(!self.sim.playing);
                true
            }
            Msg::Step => {
                self.sim.playing = false;
                self.sim.send(&ToSimulation::Step);
                true
            }
            Msg::Restart => {
                self.sim.send(&ToSimulation::Restart);
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
                self.sim.send(&ToSimulation::Focus(id));
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
                let episode = self.sim.info.as_ref().map_or(0, |i| i.episode);
                let lanes: Vec<(Entrant, &[SlotRow])> = self
                    .sim
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
            Msg::ThisDevice(device) => {
                self.sim.set_this_device(device);
                true
            }
            Msg::DismissNotes => {
                self.notes.clear();
                true
            }
        }
    }

    fn view(&self, ctx: &Context<Self>) -> Html {
        layout::page(self, ctx.link())
    }
}
